import numpy as np
import pytest
import torch

from ceas_gym.config import ConfigError
from ceas_gym.learning.attacks import make_attack
from ceas_gym.learning.data import load_digits_split
from ceas_gym.learning.federated import (
    FederatedConfig,
    batched_logits,
    build_client_data,
    initial_parameters,
    local_updates,
    num_model_parameters,
    run_federated,
)


@pytest.fixture(autouse=True)
def _single_thread():
    """One torch thread: tiny batched ops run faster and steadier on a shared 2-core machine."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _reference_mlp(flat: torch.Tensor, hidden: int) -> torch.nn.Module:
    if hidden == 0:
        model = torch.nn.Linear(64, 10)
        with torch.no_grad():
            model.weight.copy_(flat[:640].reshape(64, 10).T)
            model.bias.copy_(flat[640:650])
        return model
    model = torch.nn.Sequential(torch.nn.Linear(64, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 10))
    o = 0
    with torch.no_grad():
        model[0].weight.copy_(flat[o : o + 64 * hidden].reshape(64, hidden).T)
        o += 64 * hidden
        model[0].bias.copy_(flat[o : o + hidden])
        o += hidden
        model[2].weight.copy_(flat[o : o + hidden * 10].reshape(hidden, 10).T)
        o += hidden * 10
        model[2].bias.copy_(flat[o : o + 10])
    return model


@pytest.mark.parametrize("hidden", [0, 7])
def test_parameter_count_and_batched_forward_match_reference(hidden):
    assert num_model_parameters(0) == 650
    assert num_model_parameters(32) == 64 * 32 + 32 + 32 * 10 + 10
    g = torch.Generator().manual_seed(0)
    params = torch.randn(3, num_model_parameters(hidden), generator=g)
    x = torch.rand(3, 5, 64, generator=g)
    logits = batched_logits(params, x, hidden)
    for c in range(3):  # independent reference: one torch.nn model per client
        torch.testing.assert_close(logits[c], _reference_mlp(params[c], hidden)(x[c]), atol=1e-5, rtol=1e-5)


def test_one_local_step_is_plain_sgd_on_each_client():
    config = FederatedConfig(num_clients=4, local_steps=1, batch_size=6, momentum=0.0, hidden=5, weight_decay=0.01)
    data = build_client_data(config, np.random.default_rng(0), None)
    w = initial_parameters(5, torch.Generator().manual_seed(1))
    updates = local_updates(w, data, config, torch.Generator().manual_seed(2))
    draw = torch.rand(4, 6, generator=torch.Generator().manual_seed(2))  # the same index draw
    for c in range(4):
        idx = torch.minimum((draw[c] * data.counts[c]).long(), data.counts[c] - 1)
        model = _reference_mlp(w, 5)
        loss = torch.nn.functional.cross_entropy(model(data.features[c, idx]), data.labels[c, idx])
        loss.backward()
        w0 = w.clone().requires_grad_(True)
        # gradient w.r.t. the flat vector via the same layout: rebuild through batched_logits for the reference
        flat_loss = torch.nn.functional.cross_entropy(
            batched_logits(w0[None], data.features[c, idx][None], 5)[0], data.labels[c, idx]
        )
        (flat_grad,) = torch.autograd.grad(flat_loss, w0)
        expected = -config.learning_rate * (flat_grad + 0.01 * w)
        torch.testing.assert_close(updates[c], expected, atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(float(flat_loss.detach()), float(loss.detach()), atol=1e-6, rtol=1e-6)


def test_label_flip_poisons_only_malicious_clients():
    config = FederatedConfig(num_clients=8, num_malicious=3, attack="label-flip")
    data = build_client_data(config, np.random.default_rng(5), make_attack("label-flip"))
    split = load_digits_split(8, 1.0, np.random.default_rng(5), test_fraction=0.2)
    assert int(data.malicious.sum()) == 3
    for c in range(8):
        n = int(data.counts[c])
        original = torch.from_numpy(split.client_labels[c])
        expected = 9 - original if bool(data.malicious[c]) else original
        assert torch.equal(data.labels[c, :n], expected)


def test_same_seed_same_run_and_different_seed_differs():
    config = FederatedConfig(
        num_clients=6, num_malicious=2, attack="gaussian-fixed", aggregator="score", rounds=3, last_rounds=1
    )
    a, b = run_federated(config, 3), run_federated(config, 3)
    assert np.array_equal(a.accuracy, b.accuracy)
    assert np.array_equal(a.malicious, b.malicious)
    c = run_federated(config, 4)
    assert not np.array_equal(a.malicious, c.malicious) or not np.array_equal(a.accuracy, c.accuracy)


def test_honest_fedavg_learns_digits():
    result = run_federated(FederatedConfig(num_clients=10, rounds=30, last_rounds=5), 0)
    assert result.final_accuracy > 0.85
    assert result.malicious_selected_fraction == 0.0


def test_sign_flip_majority_breaks_fedavg_but_not_krum():
    # 4 of 10 flipped: FedAvg's mean shrinks to a fifth of the honest step and points partly backwards
    base = dict(num_clients=10, num_malicious=4, attack="sign-flip", rounds=8, last_rounds=2)
    fedavg = run_federated(FederatedConfig(**base, aggregator="fedavg"), 1)
    krum = run_federated(FederatedConfig(**base, aggregator="krum"), 1)
    assert krum.malicious_selected_fraction == 0.0
    assert krum.final_accuracy > fedavg.final_accuracy


def test_bad_config_names_field():
    with pytest.raises(ConfigError, match=r"FederatedConfig\.attack"):
        FederatedConfig(attack="nope")
    with pytest.raises(ConfigError, match=r"FederatedConfig\.aggregator"):
        FederatedConfig(aggregator="mean")
    with pytest.raises(ConfigError, match=r"FederatedConfig\.num_malicious"):
        FederatedConfig(num_clients=5, num_malicious=5)


def test_dp_with_loose_clip_and_no_noise_equals_plain_sgd():
    base = dict(num_clients=4, local_steps=2, batch_size=5, hidden=6)
    data = build_client_data(FederatedConfig(**base), np.random.default_rng(0), None)
    w = initial_parameters(6, torch.Generator().manual_seed(1))
    plain = local_updates(w, data, FederatedConfig(**base), torch.Generator().manual_seed(2))
    dp = local_updates(w, data, FederatedConfig(**base, dp_clip_norm=1e9), torch.Generator().manual_seed(2))
    torch.testing.assert_close(dp, plain, atol=1e-6, rtol=1e-5)


def test_dp_clipping_bounds_the_step_and_noise_has_calibrated_std():
    base = dict(num_clients=4, local_steps=1, batch_size=5, hidden=6, momentum=0.0, weight_decay=0.0)
    data = build_client_data(FederatedConfig(**base), np.random.default_rng(0), None)
    w = initial_parameters(6, torch.Generator().manual_seed(1))
    clipped = local_updates(w, data, FederatedConfig(**base, dp_clip_norm=1e-3), torch.Generator().manual_seed(2))
    lr = FederatedConfig().learning_rate
    assert bool((torch.linalg.vector_norm(clipped, dim=1) <= lr * 1e-3 * (1 + 1e-5)).all())
    # huge noise: the update is dominated by lr * sigma * C / B per coordinate
    sigma, clip = 1e4, 1.0
    noisy = local_updates(
        w, data, FederatedConfig(**base, dp_clip_norm=clip, dp_noise_multiplier=sigma), torch.Generator().manual_seed(2)
    )
    assert float(noisy.std()) == pytest.approx(lr * sigma * clip / 5, rel=0.05)


def test_dp_epsilon_uses_rounds_times_steps():
    from ceas_gym.learning.federated import dp_epsilon
    from ceas_gym.learning.privacy import rdp_epsilon

    config = FederatedConfig(rounds=10, local_steps=3, dp_clip_norm=1.0, dp_noise_multiplier=2.0)
    assert dp_epsilon(config, 1e-5) == rdp_epsilon(2.0, 30, 1e-5)
    assert dp_epsilon(FederatedConfig(), 1e-5) == float("inf")
    with pytest.raises(ConfigError, match="dp_clip_norm"):
        FederatedConfig(dp_noise_multiplier=1.0)
