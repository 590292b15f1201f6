"""Old against new: the CEAS step of another source tree and of this one, timed in one process, alternating.

On a shared machine the speed drifts by 10 % or more within minutes, so two runs one after the other compare the
machine more than the code. This script imports ``ceas_gym`` from ``--base`` (for example a ``git worktree`` of an
older commit) and from this checkout, builds one :class:`BatchedEntanglementSchedulingEnv` of each with the same
seed, and steps them in alternating blocks with the same pre-sampled actions. It prints the best and the median
time per step of each, and the ratio of the medians. ``--single`` times the single environment instead (one
copy, ``EntanglementSchedulingEnv``); ``--protocol`` picks the consensus protocol.

git worktree add /tmp/base <commit>
python benchmarks/tools/ab_batched_step.py --base /tmp/base --copies 64 --threads 2 --blocks 30
python benchmarks/tools/ab_batched_step.py --base /tmp/base --single --preset paper --threads 2 --blocks 30
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

THIS_TREE = Path(__file__).resolve().parents[2]


def load_env(root: Path, args: argparse.Namespace) -> Any:
    """Import ``ceas_gym`` from ``root`` afresh and return a reset batched environment built from it."""
    for name in [name for name in sys.modules if name == "ceas_gym" or name.startswith("ceas_gym.")]:
        del sys.modules[name]  # the other tree's modules stay alive through the objects built from them
    sys.path.insert(0, str(root))
    try:
        module = importlib.import_module("ceas_gym.envs.ceas" if args.single else "ceas_gym.envs.batched_ceas")
    finally:
        sys.path.pop(0)
    if not Path(module.__file__).resolve().is_relative_to(root.resolve()):
        raise SystemExit(f"--base {root}: imported ceas_gym from {module.__file__} instead; is it a source tree?")
    settings = {"learning": {"torch_threads": args.threads}, "protocol": args.protocol}
    if args.single:
        env = module.EntanglementSchedulingEnv(args.preset, max_rounds=args.horizon, **settings)
    else:
        env = module.BatchedEntanglementSchedulingEnv(
            args.copies, args.preset, max_episode_steps=args.horizon, **settings
        )
    env.reset(seed=args.seed)
    return env


def step(env: Any, action: np.ndarray, single: bool) -> None:
    """One step; a single environment is reset when its episode ends (the batched one resets itself)."""
    if single:
        *_, truncated, _ = env.step(action)
        if truncated:
            env.reset()
    else:
        env.step(action)


def main() -> None:
    """Time both trees' steps in alternating blocks and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", type=Path, required=True, help="source tree of the old code (holds ceas_gym/)")
    parser.add_argument("--preset", default="small", choices=["small", "paper"])
    parser.add_argument("--copies", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (learning.torch_threads)")
    parser.add_argument("--blocks", type=int, default=30, help="timed blocks per tree")
    parser.add_argument("--block-steps", type=int, default=8, help="steps per block (a multiple of qfi_every = 4)")
    parser.add_argument("--horizon", type=int, default=100, help="episode length in rounds")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--single", action="store_true", help="time the single environment (one copy)")
    parser.add_argument("--protocol", default="ceas", help="consensus protocol")
    args = parser.parse_args()
    if not (args.base / "ceas_gym").is_dir():
        parser.error(f"--base {str(args.base)!r}: no ceas_gym/ package there")
    torch.set_num_threads(args.threads)
    envs = {"base": load_env(args.base, args), "this": load_env(THIS_TREE, args)}
    space = envs["this"].action_space
    actions = np.random.default_rng(args.seed).random((args.block_steps, *space.shape)).astype(space.dtype)
    for env in envs.values():  # warm-up: caches, allocator, first QFI refresh
        for action in actions:
            step(env, action, args.single)
    seconds: dict[str, list[float]] = {name: [] for name in envs}
    names = list(envs)
    for block in range(args.blocks):  # alternate (ABBA), so both see the same drift and neither always goes first
        for name in names if block % 2 == 0 else names[::-1]:
            env = envs[name]
            start = time.perf_counter()
            for action in actions:
                step(env, action, args.single)
            seconds[name].append((time.perf_counter() - start) / len(actions))
    copies = 1 if args.single else args.copies
    for name, values in seconds.items():
        print(
            f"{name}: {args.preset} x {copies} ({args.protocol}), best {1000 * min(values):.1f} ms, "
            f"median {1000 * statistics.median(values):.1f} ms per step ({args.blocks} blocks of {args.block_steps})"
        )
    ratio = statistics.median(seconds["this"]) / statistics.median(seconds["base"])
    paired = statistics.median(t / b for t, b in zip(seconds["this"], seconds["base"], strict=True))
    print(f"this / base: {ratio:.3f} (ratio of medians), {paired:.3f} (median of the per-block ratios)")


if __name__ == "__main__":
    main()
