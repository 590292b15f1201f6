"""ALIE and IPM (ByzFL's definitions) by hand, their use of each network's honest vectors in the CEAS round."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ceas_gym.config import ConfigError
from ceas_gym.envs.ceas_config import make_ceas_config
from ceas_gym.envs.ceas_round import CEASRound
from ceas_gym.learning.attacks import make_attack

HONEST = torch.tensor([[[1.0, 2.0], [3.0, 6.0]], [[0.0, 0.0], [2.0, -4.0]]], dtype=torch.float64)  # 2 networks


def test_alie_is_the_mean_plus_tau_population_deviations_per_network() -> None:
    rows = torch.zeros(3, 2, dtype=torch.float64)
    attacked = make_attack("alie").apply_groups(rows, [2, 1], [0, 0], [torch.Generator()] * 2, honest=HONEST)
    # network 0: mean (2, 4), population std (1, 2); network 1: mean (1, -2), std (1, 2); tau = 1.5
    assert attacked.tolist() == [[3.5, 7.0], [3.5, 7.0], [2.5, 1.0]]
    tau = make_attack("alie", tau=-1.0).apply_groups(rows[:1], [1], [0], [torch.Generator()], honest=HONEST[:1])
    assert tau.tolist() == [[1.0, 2.0]]


def test_ipm_is_minus_tau_times_the_mean_and_an_empty_group_gets_no_row() -> None:
    rows = torch.zeros(2, 2, dtype=torch.float64)
    attacked = make_attack("ipm").apply_groups(rows, [0, 2], [0, 0], [torch.Generator()] * 2, honest=HONEST)
    assert attacked.tolist() == [[-2.0, 4.0], [-2.0, 4.0]]
    single = make_attack("ipm", tau=0.5)(rows[:1], 0, torch.Generator(), honest=HONEST[0])
    assert single.tolist() == [[-1.0, -2.0]]


def test_omniscient_attacks_refuse_to_run_without_the_honest_vectors() -> None:
    with pytest.raises(ConfigError, match="needs the honest nodes' vectors"):
        make_attack("alie")(torch.zeros(1, 2), 0, torch.Generator())
    with pytest.raises(ConfigError, match=r"honest: expected \(groups = 2"):
        make_attack("ipm").apply_groups(torch.zeros(2, 2), [1, 1], [0, 0], [None, None], honest=HONEST[:1])


def test_a_switching_attacker_hands_the_honest_vectors_to_its_omniscient_phase() -> None:
    switching = make_attack("switching", attacks=["scaling", "ipm"], period=1)
    assert switching.needs_honest
    rows = torch.ones(2, 2, dtype=torch.float64)
    generators = [torch.Generator(), torch.Generator()]
    mixed = switching.apply_groups(rows, [1, 1], [0, 1], generators, honest=HONEST)  # scaling, then ipm
    assert mixed.tolist() == [[1.6, 1.6], [-2.0, 4.0]]  # network 1: -2 x its mean (1, -2)


@pytest.mark.parametrize(("attack", "target"), [("alie", "weights"), ("ipm", "update")])
def test_in_the_round_each_copys_attackers_use_that_copys_honest_nodes(attack: str, target: str) -> None:
    config = make_ceas_config("small", learning={"attack": attack, "attack_target": target})
    state = CEASRound(config, copies=2)
    state.reset(np.arange(2), [np.random.default_rng(seed) for seed in (1, 2)])
    start = state.params.clone()
    submitted = state._local_round()
    trained = state._trained
    n, byzantine = state.num_nodes, state.instance.byzantine
    for copy in range(2):
        rows = slice(copy * n, (copy + 1) * n)
        honest = (trained[rows][~byzantine] - (0 if target == "weights" else start[rows][~byzantine]))[None]
        vector = make_attack(attack).from_honest(honest)[0]
        expected = vector if target == "weights" else start[rows][byzantine] + vector
        torch.testing.assert_close(submitted[rows][byzantine], expected.expand_as(submitted[rows][byzantine]))
        assert torch.equal(submitted[rows][~byzantine], trained[rows][~byzantine])  # honest nodes submit their own
    assert not torch.equal(submitted[:n][byzantine], submitted[n:][byzantine])  # the copies' data differ
