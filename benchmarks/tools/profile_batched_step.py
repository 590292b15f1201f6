"""Where the time of one batched CEAS step goes: wall-clock milliseconds per phase of the round.

Steps ``--copies`` copies of a CEAS environment as one :class:`BatchedEntanglementSchedulingEnv` with pre-sampled
random actions for ``--duration`` seconds (after ``--warmup`` untimed steps) and reports the mean time per step of
each phase: the round's step, local training (and the attacks around it), stamps and
their QFI, gossip (with the transport noise it applies, ``receive``), consensus, the checkpoint (probe predictions
and the BFT rule), the test-set evaluation, the observation and the infos. Phases nest (local training is inside
the local round; probe predictions inside the checkpoint), so the rows do not add up to the step. With
``--device cuda`` the learning layer runs on the GPU and the clock waits for its queued kernels at every phase
boundary, so each phase is charged its own GPU time. ``--batch-streams shared`` takes the per-round draws of all
copies from one stream (:class:`~ceas_gym.envs.ceas_config.CEASEnvConfig`'s ``batch_streams``).

python benchmarks/tools/profile_batched_step.py --env ceas_gym/EntanglementScheduling-Small-v0 --copies 64
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import gymnasium as gym
import numpy as np
import torch

import ceas_gym  # noqa: F401  (registers the environments)
import ceas_gym.envs.batched_ceas as batched_module
import ceas_gym.envs.ceas_round as round_module
import ceas_gym.envs.round_consensus as consensus_module
import ceas_gym.envs.round_gossip as gossip_module
import ceas_gym.envs.round_streams as streams_module
from evaluation.bench import PhaseTimer

# methods of the round (``env.round``, a CEASRound) and of its consensus phase (``env.round.consensus``)
ROUND_METHODS = ("step", "_local_round", "_stamps", "_evaluate_nodes", "_adopt", "observation", "infos", "reset")
CONSENSUS_METHODS = ("run", "_checkpoint")
# module-level functions the step calls by name, with the module that calls them
FUNCTIONS = (
    (round_module, "local_train"),
    (round_module, "evaluate_rows"),
    (gossip_module, "gossip_round"),
    (streams_module, "receive"),
    (consensus_module, "predict_rows"),
    (batched_module, "decode_schedule"),
)


def synchronised_clock(device: str) -> Callable[[], float]:
    """``time.perf_counter`` that first waits for the device's queued kernels, so each phase is charged its own."""
    if not device.startswith("cuda"):
        return time.perf_counter

    def clock() -> float:
        torch.cuda.synchronize()
        return time.perf_counter()

    return clock


def main() -> None:
    """Time the phases and print them."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="ceas_gym/EntanglementScheduling-Small-v0")
    parser.add_argument("--copies", type=int, default=64)
    parser.add_argument("--duration", type=float, default=8.0, help="timed seconds")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (learning.torch_threads)")
    parser.add_argument("--device", default="cpu", help="the learning layer's torch device (cpu, cuda)")
    parser.add_argument("--batch-streams", default="per-copy", choices=["per-copy", "shared"], help="per-round draws")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    timer = PhaseTimer(clock=synchronised_clock(args.device))
    totals = timer.seconds
    for module, name in FUNCTIONS:
        setattr(module, name, timer.wrap(name, getattr(module, name)))
    vector = gym.make_vec(
        args.env,
        num_envs=args.copies,
        vectorization_mode="vector_entry_point",
        learning={"torch_threads": args.threads, "device": args.device},
        batch_streams=args.batch_streams,
    )
    env = vector.unwrapped if hasattr(vector, "unwrapped") else vector
    for owner, names in ((env.round, ROUND_METHODS), (env.round.consensus, CONSENSUS_METHODS)):
        for name in names:
            if hasattr(owner, name):  # a protocol's phase may have no checkpoint
                setattr(owner, name, timer.wrap(name, getattr(owner, name)))
    vector.reset(seed=args.seed)
    space = vector.action_space
    actions = np.random.default_rng(args.seed).random((64, *space.shape)).astype(space.dtype)
    for index in range(args.warmup):
        vector.step(actions[index % len(actions)])
    totals.clear()
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < args.duration:
        vector.step(actions[steps % len(actions)])
        steps += 1
    elapsed = time.perf_counter() - start
    rate = args.copies * steps / elapsed
    print(f"{args.env} x {args.copies}: {1000 * elapsed / steps:.1f} ms per step, {rate:.0f} copy-steps/s")
    for name, seconds in sorted(totals.items(), key=lambda item: -item[1]):
        print(f"  {name.lstrip('_'):16s} {1000 * seconds / steps:7.2f} ms")


if __name__ == "__main__":
    main()
