import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ceas_gym.config import ConfigError
from ceas_gym.learning.mpo import (
    TABLE1_ROWS,
    MPOLinear,
    compressed_payload_pairs,
    dense_parameter_count,
    mpo_parameter_count,
)


def _dense(in_features: int, out_features: int, seed: int = 0) -> torch.nn.Linear:
    layer = torch.nn.Linear(in_features, out_features).double()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(out_features, in_features, generator=generator, dtype=torch.float64))
        layer.bias.copy_(torch.randn(out_features, generator=generator, dtype=torch.float64))
    return layer


@pytest.mark.parametrize("row", TABLE1_ROWS, ids=lambda r: f"{r.model}-{r.in_features}x{r.out_features}")
def test_table1_counts_reproduced_exactly(row):
    assert math.prod(row.in_factors) == row.in_features
    assert math.prod(row.out_factors) == row.out_features
    assert dense_parameter_count(row.in_features, row.out_features) == row.printed_original
    assert mpo_parameter_count(row.in_factors, row.out_factors, row.bond) == row.printed_mpo
    layer = MPOLinear(row.in_factors, row.out_factors, row.bond)
    assert layer.num_parameters == row.printed_mpo
    assert sum(p.numel() for p in layer.parameters()) == row.printed_mpo
    assert round(100 * row.printed_mpo / row.printed_original, 1) == row.printed_ratio_percent


def test_table1_hand_computed_first_row():
    # T^{4,4,4,4}_{4,7,7,4}(8): 2 inner cores 7*4*64 each, end cores (4*4 + 4*4)*8, bias 256
    assert 2 * 7 * 4 * 64 + (16 + 16) * 8 + 256 == 4096


def test_paper_overall_fcnn_reduction():
    # Sec. 5.2: the FCNN (784-256-10) shrinks by 97.6 %
    dense = dense_parameter_count(784, 256) + dense_parameter_count(256, 10)
    mpo = TABLE1_ROWS[0].printed_mpo + TABLE1_ROWS[1].printed_mpo
    assert round(100 * (1 - mpo / dense), 1) == 97.6


@pytest.mark.parametrize(
    ("ins", "outs"),
    [((4, 4, 4), (4, 8, 8)), ((2, 3, 2), (1, 5, 2)), ((8, 8), (4, 4)), ((1, 2, 3, 7, 2), (1, 1, 2, 5, 1))],
)
def test_full_bond_reconstruction_is_exact(ins, outs):
    dense = _dense(math.prod(ins), math.prod(outs))
    layer = MPOLinear.from_dense(dense, ins, outs, max_bond=10_000)
    torch.testing.assert_close(layer.to_dense(), dense.weight.detach(), atol=1e-10, rtol=0)
    assert all(d < 1e-10 for d in layer.discarded_norms)


def test_single_bond_truncation_equals_eckart_young():
    dense = _dense(12, 10)
    layer = MPOLinear.from_dense(dense, (3, 4), (2, 5), max_bond=3)
    # independent reference: SVD of the (i1 j1, i2 j2) unfolding
    m = dense.weight.detach().T.reshape(3, 4, 2, 5).permute(0, 2, 1, 3).reshape(6, 20)
    s = torch.linalg.svdvals(m)
    expected = float(torch.sqrt((s[3:] ** 2).sum()))
    error = float(torch.linalg.norm(layer.to_dense().detach() - dense.weight.detach()))
    assert error == pytest.approx(expected, rel=1e-9)
    assert layer.discarded_norms[0] == pytest.approx(expected, rel=1e-9)
    assert layer.bond_dims == (3,)


@settings(max_examples=25, deadline=None)
@given(chi=st.integers(1, 6), seed=st.integers(0, 1000))
def test_multi_bond_error_bounded_by_discarded(chi, seed):
    dense = _dense(24, 12, seed)
    layer = MPOLinear.from_dense(dense, (2, 3, 4), (3, 2, 2), max_bond=chi)
    error = float(torch.linalg.norm(layer.to_dense().detach() - dense.weight.detach()))
    bound = math.sqrt(sum(d * d for d in layer.discarded_norms))
    assert error <= bound * (1 + 1e-9) + 1e-12
    assert max(layer.bond_dims) <= chi


def test_bond_never_exceeds_rank_bound():
    layer = MPOLinear.from_dense(_dense(84, 10), (1, 2, 3, 7, 2), (1, 1, 2, 5, 1), max_bond=2)
    assert layer.bond_dims[0] == 1  # first core is 1 x 1: rank at most 1
    assert layer.num_parameters < 188


@pytest.mark.parametrize("chi", [1, 2, 5])
def test_forward_equals_dense_reconstruction(chi):
    dense = _dense(60, 12)
    layer = MPOLinear.from_dense(dense, (3, 4, 5), (2, 3, 2), max_bond=chi)
    x = torch.randn(7, 60, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    expected = x @ layer.to_dense().T + layer.bias
    torch.testing.assert_close(layer(x), expected, atol=1e-12, rtol=1e-12)
    # extra leading dims
    torch.testing.assert_close(layer(x.reshape(7, 1, 60)).reshape(7, 12), expected, atol=1e-12, rtol=1e-12)


def test_full_bond_forward_equals_original_layer():
    dense = _dense(16, 8)
    layer = MPOLinear.from_dense(dense, (4, 4), (2, 4), max_bond=64)
    x = torch.randn(5, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(layer(x), dense(x), atol=1e-12, rtol=1e-12)


def test_random_init_forward_matches_reconstruction_and_trains():
    layer = MPOLinear((4, 4), (2, 5), 3, generator=torch.Generator().manual_seed(0))
    x = torch.randn(4, 16, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(layer(x), x @ layer.to_dense().T + layer.bias, atol=1e-5, rtol=1e-5)
    layer(x).sum().backward()
    assert all(p.grad is not None for p in layer.parameters())


def test_payload_pairs():
    assert compressed_payload_pairs(1000, 32, 2.0) == 16000
    assert compressed_payload_pairs(3, 8, 1.0) == 24
    assert compressed_payload_pairs(1, 1, 0.5) == 2
    assert compressed_payload_pairs(746, 32, 2.0) < compressed_payload_pairs(2570, 32, 2.0)


def test_bad_input_names_field():
    with pytest.raises(ConfigError, match="in_factors"):
        MPOLinear.from_dense(_dense(12, 4), (3, 5), (2, 2), max_bond=2)
    with pytest.raises(ConfigError, match="bond_dims"):
        MPOLinear((2, 2, 2), (2, 2, 2), [2])
    with pytest.raises(ConfigError, match="out_factors"):
        mpo_parameter_count((2, 2), (4,), 2)
    with pytest.raises(ConfigError, match="bits_per_pair"):
        compressed_payload_pairs(10, 32, 3.0)


def test_compression_benchmark_model_sizes_and_full_bond_equivalence():
    from evaluation.compression import build_dense, compress

    dense = build_dense(torch.Generator().manual_seed(0))
    assert sum(p.numel() for p in dense.parameters()) == 19210
    small = compress(dense, 4)
    assert sum(p.numel() for p in small.parameters()) == 704 + 256 + 746  # layer 1 cores + bias, Table 1 row 2
    exact = compress(dense, 10_000)
    x = torch.rand(5, 64, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(exact(x), dense(x), atol=1e-4, rtol=1e-4)
