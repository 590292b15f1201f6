"""Matrix-product-operator (MPO) linear layers (second paper, Liu et al. 2025, eq. 4 and 6, Table 1).

Model and conventions
---------------------
A dense ``torch.nn.Linear(N_in, N_out)`` stores ``W`` of shape ``(N_out, N_in)`` and computes ``y = x W^T + b``.
With ``N_in = prod_k I_k`` and ``N_out = prod_k J_k`` (n factors each; a factor may be 1) the matrix
``M = W^T`` of shape ``(N_in, N_out)`` is read as the 2n-index tensor ``M[i_1..i_n, j_1..j_n]`` (row-major
reshapes, ``i_1`` and ``j_1`` the slowest indices) and written as the MPO of eq. 4:

    M[i_1..i_n, j_1..j_n] = sum_{d_1..d_{n-1}} A_1[d_0, i_1, j_1, d_1] .. A_n[d_{n-1}, i_n, j_n, d_n]

with core ``A_k`` of shape ``(D_{k-1}, I_k, J_k, D_k)`` and ``D_0 = D_n = 1``. The bias is kept dense (Sec. 4.3).

Parameter count (eq. 6, written for general bonds): ``N_MPO = sum_k D_{k-1} I_k J_k D_k + N_out``. With the
paper's uniform bond ``D_1 = .. = D_{n-1} = chi`` this is
``sum_{k=2}^{n-1} I_k J_k chi^2 + (I_1 J_1 + I_n J_n) chi + N_out``, the formula printed as eq. 6 (the printed
``prod`` and ``I_0`` are read as ``sum`` and ``I_1``; only this reading reproduces Table 1). The dense layer has
``N_ori = (N_in + 1) N_out``. :data:`TABLE1_ROWS` lists the five rows of Table 1; every printed count and ratio
is reproduced exactly by :func:`mpo_parameter_count` (see ``tests/test_mpo.py``). In the notation
``T^{J_1..J_n}_{I_1..I_n}(chi)`` the subscripts are the input factors and the superscripts the output factors.
The paper counts the nominal bond chi even where it exceeds the largest rank a bond can carry (row 5: the first
bond sits between a 1 x 1 core and the rest, so its rank is at most 1 but chi = 2 is counted);
:class:`MPOLinear` built directly with ``bond_dims`` keeps those nominal bonds, :meth:`MPOLinear.from_dense`
never creates a bond larger than the rank bound.

TT-SVD initialisation (Oseledets, SIAM J. Sci. Comput. 33, 2295 (2011), Alg. 1): group each pair
``(i_k, j_k)`` into one index, then sweep left to right with truncated SVDs, keeping at most ``max_bond``
singular values per bond. If ``delta_k`` is the Frobenius norm of the singular values discarded at bond k, the
reconstruction error obeys ``||M - M_hat||_F <= sqrt(sum_k delta_k^2)`` (Oseledets 2011, Thm. 2.2), with
equality when only one bond truncates (Eckart-Young for that SVD). :attr:`MPOLinear.discarded_norms` keeps the
``delta_k`` of the last TT-SVD.

Forward pass: the input ``x`` of shape ``(B, N_in)`` is reshaped to ``(B, I_1, .., I_n)`` and contracted core
by core (one ``einsum`` per core, cost ``O(B sum_k D_{k-1} D_k J_1..J_k I_k..I_n)``); the dense matrix is never
built. It equals ``x @ to_dense().T + bias`` up to float rounding.

Payload of an exchange (:func:`compressed_payload_pairs`): a model of P parameters sent at ``b`` bits per
parameter is ``P b`` bits; a Bell pair carries ``bits_per_pair`` bits (2 with superdense coding, 1 with
teleportation of one classical bit, or less than 1 when the pairs distil secret key), so an exchange needs
``ceil(P b / bits_per_pair)`` pairs. A smaller (MPO) model therefore needs proportionally fewer pairs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ceas_gym.config import ConfigError, check_int, check_range

__all__ = [
    "TABLE1_ROWS",
    "MPOLinear",
    "Table1Row",
    "compressed_payload_pairs",
    "dense_parameter_count",
    "mpo_parameter_count",
]


@dataclass(frozen=True)
class Table1Row:
    """One row of the paper's Table 1.

    Attributes:
        model: Model name as printed (FCNN or CNN).
        in_features: N_in of the original linear layer.
        out_features: N_out of the original linear layer.
        in_factors: I_1..I_n (the subscripts of the T symbol).
        out_factors: J_1..J_n (the superscripts).
        bond: The uniform bond dimension chi.
        printed_original: N_ori as printed.
        printed_mpo: N_MPO as printed.
        printed_ratio_percent: eta = N_MPO / N_ori as printed (percent, one decimal).
    """

    model: str
    in_features: int
    out_features: int
    in_factors: tuple[int, ...]
    out_factors: tuple[int, ...]
    bond: int
    printed_original: int
    printed_mpo: int
    printed_ratio_percent: float


# Liu et al., Sci. China Inf. Sci. 68, 180503 (2025), Table 1. (The extracted text labels the FCNN rows
# "ECNN"/"FUNN"; the caption and Sec. 5.1 name the model FCNN.)
TABLE1_ROWS: tuple[Table1Row, ...] = (
    Table1Row("FCNN", 784, 256, (4, 7, 7, 4), (4, 4, 4, 4), 8, 200960, 4096, 2.0),
    Table1Row("FCNN", 256, 10, (4, 4, 4, 4), (1, 1, 10, 1), 4, 2570, 746, 29.0),
    Table1Row("CNN", 400, 120, (2, 2, 5, 10, 2), (2, 2, 5, 3, 2), 4, 48120, 1096, 2.3),
    Table1Row("CNN", 120, 84, (2, 2, 5, 3, 2), (1, 2, 3, 7, 2), 4, 10164, 748, 7.4),
    Table1Row("CNN", 84, 10, (1, 2, 3, 7, 2), (1, 1, 2, 5, 1), 2, 850, 188, 22.1),
)


def _check_factors(name: str, factors: Sequence[int]) -> tuple[int, ...]:
    values = tuple(factors)
    if len(values) < 1:
        raise ConfigError(f"{name}: expected at least one factor, got {values!r}")
    for k, value in enumerate(values):
        check_int(f"{name}[{k}]", value, 1)
    return values


def _bond_tuple(bond_dims: int | Sequence[int], num_cores: int) -> tuple[int, ...]:
    """Full bond list ``(D_0=1, D_1..D_{n-1}, D_n=1)`` from a uniform chi or the n-1 inner bonds."""
    if isinstance(bond_dims, int):
        check_int("bond_dims", bond_dims, 1)
        inner = (bond_dims,) * (num_cores - 1)
    else:
        inner = tuple(bond_dims)
        if len(inner) != num_cores - 1:
            raise ConfigError(
                f"bond_dims: expected {num_cores - 1} inner bond dimensions (one per bond), got {len(inner)}"
            )
        for k, value in enumerate(inner):
            check_int(f"bond_dims[{k}]", value, 1)
    return (1, *inner, 1)


def mpo_parameter_count(
    in_factors: Sequence[int], out_factors: Sequence[int], bond_dims: int | Sequence[int], bias: bool = True
) -> int:
    """Trainable parameters of an MPO layer: ``sum_k D_{k-1} I_k J_k D_k (+ N_out)`` (eq. 6).

    Args:
        in_factors: I_1..I_n.
        out_factors: J_1..J_n (same length).
        bond_dims: Uniform chi or the n-1 inner bonds.
        bias: Whether the dense bias (N_out parameters) is counted, as the paper does.

    Returns:
        The parameter count.
    """
    ins = _check_factors("in_factors", in_factors)
    outs = _check_factors("out_factors", out_factors)
    if len(ins) != len(outs):
        raise ConfigError(f"out_factors: expected {len(ins)} factors like in_factors, got {len(outs)}")
    bonds = _bond_tuple(bond_dims, len(ins))
    cores = sum(bonds[k] * ins[k] * outs[k] * bonds[k + 1] for k in range(len(ins)))
    return cores + (math.prod(outs) if bias else 0)


def dense_parameter_count(in_features: int, out_features: int, bias: bool = True) -> int:
    """Parameters of a dense linear layer, ``(N_in + 1) N_out`` with bias."""
    check_int("in_features", in_features, 1)
    check_int("out_features", out_features, 1)
    return (in_features + (1 if bias else 0)) * out_features


def compressed_payload_pairs(num_parameters: int, bits_per_parameter: int = 32, bits_per_pair: float = 2.0) -> int:
    """Bell pairs one model exchange consumes: ``ceil(num_parameters * bits_per_parameter / bits_per_pair)``.

    Args:
        num_parameters: Parameters sent (count), e.g. :attr:`MPOLinear.num_parameters` summed over layers.
        bits_per_parameter: Bits per parameter (32 for float32, 16 for half precision, 8 when quantised).
        bits_per_pair: Classical bits one Bell pair carries (2 with superdense coding; 1 with one-time-pad key
            or teleported bits; below 1 when pairs are distilled into secret key).

    Returns:
        Pairs per exchange (pairs).
    """
    check_int("num_parameters", num_parameters, 0)
    check_int("bits_per_parameter", bits_per_parameter, 1)
    check_range("bits_per_pair", bits_per_pair, 0.0, 2.0, low_inclusive=False)
    return math.ceil(num_parameters * bits_per_parameter / bits_per_pair - 1e-9)


class MPOLinear(torch.nn.Module):
    """A linear layer whose ``(N_in, N_out)`` weight matrix is an MPO (eq. 4) plus a dense bias.

    Args:
        in_factors: I_1..I_n with ``prod I_k = N_in``.
        out_factors: J_1..J_n with ``prod J_k = N_out`` (same length n; factors of 1 are allowed).
        bond_dims: Uniform chi or the n-1 inner bond dimensions.
        bias: Whether to keep a dense bias of N_out entries.
        generator: Seeds the random initialisation (cores drawn so the contracted weight has a variance of
            about ``1 / N_in``, like ``nn.Linear``); None uses a generator seeded with 0.
        dtype: Parameter dtype.
    """

    def __init__(
        self,
        in_factors: Sequence[int],
        out_factors: Sequence[int],
        bond_dims: int | Sequence[int],
        bias: bool = True,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        self.in_factors = _check_factors("in_factors", in_factors)
        self.out_factors = _check_factors("out_factors", out_factors)
        if len(self.in_factors) != len(self.out_factors):
            raise ConfigError(
                f"out_factors: expected {len(self.in_factors)} factors like in_factors, got {len(self.out_factors)}"
            )
        self.in_features = math.prod(self.in_factors)
        self.out_features = math.prod(self.out_factors)
        bonds = _bond_tuple(bond_dims, len(self.in_factors))
        if generator is None:
            generator = torch.Generator().manual_seed(0)
        # Var of a contracted entry = prod_k (D_k var_k) / D_n; choose var_k so the product is 1 / N_in.
        n = len(self.in_factors)
        target = (1.0 / self.in_features) ** (1.0 / n)
        cores = []
        for k in range(n):
            shape = (bonds[k], self.in_factors[k], self.out_factors[k], bonds[k + 1])
            scale = math.sqrt(target / bonds[k])
            cores.append(torch.nn.Parameter(scale * torch.randn(shape, generator=generator, dtype=dtype)))
        self.cores = torch.nn.ParameterList(cores)
        self.bias = torch.nn.Parameter(torch.zeros(self.out_features, dtype=dtype)) if bias else None
        self.discarded_norms: tuple[float, ...] = ()

    @property
    def bond_dims(self) -> tuple[int, ...]:
        """The inner bond dimensions D_1..D_{n-1}."""
        return tuple(int(core.shape[3]) for core in self.cores[:-1])

    @property
    def num_parameters(self) -> int:
        """Trainable parameters: core entries plus the bias (eq. 6)."""
        return sum(int(core.numel()) for core in self.cores) + (self.out_features if self.bias is not None else 0)

    @classmethod
    def from_dense(
        cls,
        linear: torch.nn.Linear,
        in_factors: Sequence[int],
        out_factors: Sequence[int],
        max_bond: int,
    ) -> MPOLinear:
        """TT-SVD of a dense layer's weight, keeping at most ``max_bond`` singular values per bond.

        Args:
            linear: The dense layer (its weight is ``(N_out, N_in)``).
            in_factors: I_1..I_n, product N_in.
            out_factors: J_1..J_n, product N_out.
            max_bond: Largest bond dimension kept (chi >= 1).

        Returns:
            The MPO layer; its :attr:`discarded_norms` hold the Frobenius norm of the discarded singular
            values at each bond.

        Raises:
            ConfigError: If the factors do not multiply to the layer's sizes.
        """
        if not isinstance(linear, torch.nn.Linear):
            raise ConfigError(f"linear: expected a torch.nn.Linear, got {type(linear).__name__}")
        ins = _check_factors("in_factors", in_factors)
        outs = _check_factors("out_factors", out_factors)
        check_int("max_bond", max_bond, 1)
        if math.prod(ins) != linear.in_features:
            raise ConfigError(f"in_factors = {ins}: product {math.prod(ins)} != in_features {linear.in_features}")
        if math.prod(outs) != linear.out_features:
            raise ConfigError(f"out_factors = {outs}: product {math.prod(outs)} != out_features {linear.out_features}")
        if len(ins) != len(outs):
            raise ConfigError(f"out_factors: expected {len(ins)} factors like in_factors, got {len(outs)}")
        n = len(ins)
        weight = linear.weight.detach()
        work_dtype = torch.float64
        tensor = weight.T.to(work_dtype).reshape(*ins, *outs)
        # interleave to (i_1, j_1, i_2, j_2, ..)
        order = [axis for k in range(n) for axis in (k, n + k)]
        remainder = tensor.permute(order).reshape(-1)
        cores: list[torch.Tensor] = []
        discarded: list[float] = []
        rank = 1
        for k in range(n - 1):
            rows = rank * ins[k] * outs[k]
            matrix = remainder.reshape(rows, -1)
            u, s, vh = torch.linalg.svd(matrix, full_matrices=False)
            keep = min(max_bond, int(s.numel()))
            discarded.append(float(torch.linalg.vector_norm(s[keep:])))
            cores.append(u[:, :keep].reshape(rank, ins[k], outs[k], keep))
            remainder = s[:keep, None] * vh[:keep]
            rank = keep
        cores.append(remainder.reshape(rank, ins[-1], outs[-1], 1))
        layer = cls(ins, outs, [int(c.shape[3]) for c in cores[:-1]], bias=linear.bias is not None)
        with torch.no_grad():
            for target, core in zip(layer.cores, cores, strict=True):
                target.data = core.to(weight.dtype).clone()
            if linear.bias is not None and layer.bias is not None:
                layer.bias.data = linear.bias.detach().clone()
            for parameter in layer.parameters():
                parameter.data = parameter.data.to(weight.dtype)
        layer.discarded_norms = tuple(discarded)
        return layer

    def to_dense(self) -> torch.Tensor:
        """Contract the cores into the dense weight, shape ``(N_out, N_in)`` (``nn.Linear`` layout)."""
        n = len(self.cores)
        result = self.cores[0].reshape(self.in_factors[0] * self.out_factors[0], -1)  # (i1 j1, D1)
        for k in range(1, n):
            core = self.cores[k]
            result = (result @ core.reshape(core.shape[0], -1)).reshape(-1, core.shape[3])
        # result is (i_1, j_1, .., i_n, j_n) flattened
        shape = [dim for k in range(n) for dim in (self.in_factors[k], self.out_factors[k])]
        tensor = result.reshape(shape)
        order = [2 * k for k in range(n)] + [2 * k + 1 for k in range(n)]
        return tensor.permute(order).reshape(self.in_features, self.out_features).T

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """Contract ``inputs`` of shape ``(..., N_in)`` with the MPO core by core; returns ``(..., N_out)``."""
        if inputs.shape[-1] != self.in_features:
            raise ConfigError(f"inputs: expected last dimension {self.in_features}, got {tuple(inputs.shape)}")
        lead = inputs.shape[:-1]
        batch = math.prod(lead)
        state = inputs.reshape(batch, 1, 1, self.in_features)  # (B, outputs so far, bond, inputs left)
        for k, core in enumerate(self.cores):
            rest = state.shape[3] // self.in_factors[k]
            state = state.reshape(batch, state.shape[1], core.shape[0], self.in_factors[k], rest)
            state = torch.einsum("bpaix,aioc->bpocx", state, core)
            state = state.reshape(batch, -1, core.shape[3], rest)
        output = state.reshape(*lead, self.out_features)
        return output + self.bias if self.bias is not None else output

    def extra_repr(self) -> str:
        """Factors and bonds, for ``print(module)``."""
        return f"in_factors={self.in_factors}, out_factors={self.out_factors}, bond_dims={self.bond_dims}"
