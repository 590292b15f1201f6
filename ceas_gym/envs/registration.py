"""The table of registered environments (idempotent: re-importing registers nothing twice).

Every id lives in the ``ceas_gym/`` namespace, takes JSON-serialisable keyword arguments (preset names, not
objects), and has an honest ``max_episode_steps`` equal to the preset's episode length.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym

NAMESPACE = "ceas_gym"

LITE = "ceas_gym.envs.lite:EntanglementSchedulingLiteEnv"
CEAS = "ceas_gym.envs.ceas:EntanglementSchedulingEnv"
BATCHED = "ceas_gym.envs.batched_ceas:BatchedEntanglementSchedulingEnv"  # gymnasium.make_vec(..., "vector_entry_point")
UNITARY = "ceas_gym.envs.partition_unitary:UnitaryPartitionEnv"
CIRCUIT = "ceas_gym.envs.partition_circuit:CircuitPartitionEnv"


# (id, entry point, max_episode_steps, kwargs); max_episode_steps is each preset's episode length.
# fmt: off
ENVIRONMENTS: list[tuple[str, str, int, dict[str, Any]]] = [
    (f"{NAMESPACE}/EntanglementScheduling-Lite-v0", LITE, 100, {"preset": "small"}),
    (f"{NAMESPACE}/EntanglementScheduling-Lite-Tiny-v0", LITE, 30, {"preset": "tiny"}),
    (f"{NAMESPACE}/EntanglementScheduling-Lite-Paper-v0", LITE, 300, {"preset": "paper"}),
    (f"{NAMESPACE}/EntanglementScheduling-v0", CEAS, 300, {"preset": "paper"}),
    (f"{NAMESPACE}/EntanglementScheduling-Small-v0", CEAS, 100, {"preset": "small"}),
    (f"{NAMESPACE}/EntanglementScheduling-Scarce-v0", CEAS, 300, {"preset": "paper-scarce"}),
    (f"{NAMESPACE}/UnitaryPartition-v0", UNITARY, 600, {"preset": "paper"}),
    (f"{NAMESPACE}/UnitaryPartition-Small-v0", UNITARY, 240, {"preset": "small"}),
    (f"{NAMESPACE}/CircuitPartition-v0", CIRCUIT, 500, {"preset": "paper"}),
    (f"{NAMESPACE}/CircuitPartition-Small-v0", CIRCUIT, 240, {"preset": "small"}),
    (f"{NAMESPACE}/RepeaterChain-v0", "ceas_gym.envs.repeater_chain:RepeaterChainEnv", 1000, {}),
]
# fmt: on


def register_environments() -> None:
    """Register every environment of the table that is not registered yet."""
    for env_id, entry_point, max_steps, kwargs in ENVIRONMENTS:
        if env_id in gym.registry:
            continue
        vector = BATCHED if entry_point == CEAS else None
        gym.register(
            id=env_id,
            entry_point=entry_point,
            vector_entry_point=vector,
            max_episode_steps=max_steps,
            kwargs=dict(kwargs),
        )


def registered_ids() -> list[str]:
    """Ids of this package's environments, in table order."""
    return [env_id for env_id, *_ in ENVIRONMENTS]
