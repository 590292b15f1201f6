import math

import numpy as np
import pytest
import torch

from ceas_gym.config import ConfigError
from ceas_gym.learning.attacks import ATTACKS, Attack, SwitchingAttack, flip_labels, make_attack
from ceas_gym.registry import UnknownNameError


def _updates(rows=3, size=5, seed=0):
    return torch.randn(rows, size, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_registry_lists_builtin_attacks():
    builtin = {"gaussian", "gaussian-fixed", "label-flip", "reversal", "scaling", "sign-flip", "switching"}
    assert builtin <= set(ATTACKS.names())
    with pytest.raises(UnknownNameError, match="Did you mean 'scaling'"):
        make_attack("scalng")


@pytest.mark.parametrize(("name", "factor"), [("reversal", -1.05), ("scaling", 1.6), ("sign-flip", -1.0)])
def test_scaling_attacks_hand_values(name, factor):
    updates = torch.tensor([[1.0, -2.0, 0.5]], dtype=torch.float64)
    attacked = make_attack(name)(updates, 0, torch.Generator())
    torch.testing.assert_close(attacked, torch.tensor([[factor, -2 * factor, 0.5 * factor]], dtype=torch.float64))
    assert make_attack(name, factor=3.0)(updates, 0, torch.Generator())[0, 1].item() == -6.0


def test_gaussian_attack_noise_is_relative_to_row_std():
    size = 200_000
    updates = torch.cat([_updates(1, size) * 0.5, _updates(1, size, seed=1) * 4.0])
    attacked = make_attack("gaussian")(updates, 0, torch.Generator().manual_seed(2))
    noise = attacked - updates
    sigma = updates.std(dim=1, unbiased=False)
    # the noise std estimate has relative standard error 1/sqrt(2 n); allow 5 of them
    torch.testing.assert_close(noise.std(dim=1), 0.6 * sigma, rtol=5 / math.sqrt(2 * size), atol=0)
    assert torch.all(noise.mean(dim=1).abs() < 5 * 0.6 * sigma / math.sqrt(size))


def test_gaussian_fixed_attack_std():
    size = 200_000
    updates = _updates(2, size) * 7.0
    noise = make_attack("gaussian-fixed")(updates, 3, torch.Generator().manual_seed(4)) - updates
    torch.testing.assert_close(noise.std(dim=1), torch.full((2,), 0.1, dtype=torch.float64), rtol=0.02, atol=0)
    noise = make_attack("gaussian-fixed", std=2.0)(updates, 3, torch.Generator().manual_seed(4)) - updates
    assert noise.std().item() == pytest.approx(2.0, rel=0.02)


def test_label_flip():
    labels = torch.arange(10)
    assert flip_labels(labels, 10).tolist() == [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]
    assert flip_labels(torch.tensor([0, 1, 1]), 2).tolist() == [1, 0, 0]
    attack = make_attack("label-flip")
    assert attack.data_level
    assert attack.poison_labels(torch.tensor([2, 0]), 3).tolist() == [0, 2]
    updates = _updates()
    assert torch.equal(attack(updates, 0, torch.Generator()), updates)
    assert torch.equal(make_attack("scaling").poison_labels(labels, 10), labels)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 1\]"):
        flip_labels(torch.tensor([2]), 2)


def test_switching_cycle_schedule():
    attack = SwitchingAttack(["scaling", "reversal", "sign-flip"], schedule="cycle", period=2)
    updates = torch.tensor([[1.0, 2.0]], dtype=torch.float64)
    expected = [1.6, 1.6, -1.05, -1.05, -1.0, -1.0, 1.6]
    for t, factor in enumerate(expected):
        torch.testing.assert_close(attack(updates, t, torch.Generator()), factor * updates)


def test_switching_random_schedule_is_reproducible_uniform_and_constant_per_period():
    attack = SwitchingAttack(["scaling", "reversal", "sign-flip", "gaussian"], schedule="random", period=3, seed=5)
    same = SwitchingAttack(["scaling", "reversal", "sign-flip", "gaussian"], schedule="random", period=3, seed=5)
    chosen = np.array([attack.active_index(t) for t in range(0, 3 * 4000, 3)])
    assert all(attack.active_index(t) == same.active_index(t) for t in range(60))
    assert all(attack.active_index(3 * k) == attack.active_index(3 * k + 2) for k in range(50))
    counts = np.bincount(chosen, minlength=4)
    # uniform over 4: each count ~ Binomial(4000, 1/4), std ~ 27
    assert np.all(np.abs(counts - 1000) < 5 * math.sqrt(4000 * 0.25 * 0.75))
    other = SwitchingAttack(["scaling", "reversal"], schedule="random", seed=6)
    assert [other.active_index(t) for t in range(40)] != [0] * 40


def test_switching_rejects_data_level_attacks_and_bad_schedule():
    with pytest.raises(ConfigError, match="not an update-level attack"):
        SwitchingAttack(["scaling", "label-flip"])
    with pytest.raises(ConfigError, match=r"SwitchingAttack\.schedule"):
        SwitchingAttack(["scaling"], schedule="sometimes")
    with pytest.raises(ConfigError, match=r"GaussianAttack\.relative_std"):
        make_attack("gaussian", relative_std=-1.0)


def test_users_can_register_their_own_attack():
    name = "test-zero-out"

    @ATTACKS.register(name)
    class ZeroOut(Attack):
        def __call__(self, updates, round_index, generator):
            return torch.zeros_like(updates)

    try:
        assert torch.equal(make_attack(name)(_updates(), 0, torch.Generator()), torch.zeros(3, 5, dtype=torch.float64))
        switching = SwitchingAttack([name, "scaling"])
        assert torch.equal(switching(_updates(), 0, torch.Generator()), torch.zeros(3, 5, dtype=torch.float64))
    finally:
        ATTACKS._entries.pop(name)


@pytest.mark.parametrize(
    ("name", "kwargs", "rounds"),
    [
        ("gaussian", {}, [0, 0, 0]),
        ("gaussian-fixed", {"std": 0.3}, [4, 4, 4]),
        ("reversal", {}, [1, 2, 3]),
        ("scaling", {}, [0, 0, 0]),
        ("sign-flip", {}, [0, 0, 0]),
        ("switching", {}, [0, 3, 6]),  # every group in the Gaussian phase: handed over at once
        ("switching", {}, [0, 1, 2]),  # three phases: group by group
        ("label-flip", {}, [0, 0, 0]),  # the base class's default
    ],
)
def test_apply_groups_equals_each_group_attacked_alone(name, kwargs, rounds):
    attack = make_attack(name, **kwargs)
    updates = torch.randn(7, 5, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    sizes = [3, 0, 4]  # an empty group draws nothing
    seeds = [11, 12, 13]
    grouped = attack.apply_groups(updates, sizes, rounds, [torch.Generator().manual_seed(s) for s in seeds])
    alone = []
    for group, round_index, seed in zip(updates.split(sizes), rounds, seeds, strict=True):
        if group.shape[0]:
            alone.append(attack(group, round_index, torch.Generator().manual_seed(seed)))
    assert torch.equal(grouped, torch.cat(alone))  # same draws from each group's generator, bit for bit
