"""flow.jacobian_profile against independent references.

Every expected value is computed here, never pasted:
- explicit products P_k = ds_t/ds_k = J_t ... J_{k+1} multiplied out in float64 from the other end
  (J_{k+1} first, then J_{k+2} on the left, ...: the opposite association to the profile's running
  product), renormalised after every factor so that the log-scale is carried apart, with the one-step
  Jacobians from torch.func.jacrev of cell.step (not cell.jacobian), and norms from
  torch.linalg.svdvals / torch.linalg.matrix_norm;
- closed forms where the product is known exactly (identity activation with W = g Q, Q orthogonal;
  symmetric W = R diag(d) R^T; nilpotent W; commuting diagonal-in-one-basis products).

Tolerances, on the natural log of the norm (|log10 est - log10 ref| * ln 10 is the relative error):
spectral 1e-6 (the issue's requirement), Frobenius 1e-10, float64. float32: see test_float32.
Legend: T time, B batch, S state size, D input size.
"""

from __future__ import annotations

import bisect
import json
import math
import subprocess
import sys
import textwrap

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rnnscope import ElmanCell, FunctionCell, jacobian_profile, random_cell, unroll

F64 = torch.float64
LN10 = math.log(10.0)
SPEC_TOL = 1e-6  # relative, spectral norm (issue item 6)
FRO_TOL = 1e-10  # relative, Frobenius norm
ACTS = ("sigmoid", "tanh", "relu", "identity")


# ----------------------------------------------------------------------------------------------
# independent references
# ----------------------------------------------------------------------------------------------

def jacrev_jacobians(cell, trace, t: int | None = None) -> torch.Tensor:
    """J[j-1] = ds_j/ds_{j-1} for j = 1..t, (t, B, S, S), by torch.func.jacrev of cell.step (float64)."""
    t = trace.T if t is None else t
    x, s = trace.inputs[:t], trace.states[:t]  # x_j and s_{j-1} for j = 1..t
    _, B, D = x.shape
    S = s.shape[-1]

    def one(xi, si):  # one example: (D,), (S,) -> (S,)
        return cell.step(xi.unsqueeze(0), si.unsqueeze(0)).squeeze(0)

    J = torch.func.vmap(torch.func.jacrev(one, argnums=1))(x.reshape(-1, D), s.reshape(-1, S))
    return J.reshape(t, B, S, S).to(F64)


def diagonal_closed_form(log_e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Closed form for products of factors diagonal in one fixed orthonormal basis, J_j ~ diag(e_j).

    log_e (T, S): row j-1 holds log e_j. Then ds_T/ds_k has singular values prod_{j=k+1..T} e_j, so
    log10 ||.||_2 = max_i sum_{j>k} log e_j[i] / ln 10 and log10 ||.||_F = 0.5 log10 sum_i exp(2 sum_{j>k} log e_j[i]).
    Returns (spec, fro), each (T,) with element k-1 for step k.
    """
    S = log_e.shape[1]
    cum = torch.flip(torch.cumsum(torch.flip(log_e, [0]), 0), [0])  # row j-1: sum over i >= j
    logsv = torch.cat([cum[1:], torch.zeros(1, S, dtype=F64)])  # row k-1: sum over j = k+1..T
    return logsv.max(1).values / LN10, 0.5 * torch.logsumexp(2 * logsv, 1) / LN10


def explicit_products(J: torch.Tensor, ks=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Log-scale and renormalised P_k = J_t ... J_{k+1} for the steps k in ks (default 1..t), float64.

    Multiplied from the right end: P <- J_{k+1}; P <- J_j P for j = k+2..t (the profile multiplies the
    other way, P_k = P_{k+1} J_{k+1}), every product renormalised to unit Frobenius norm with the natural
    log of the scale carried in L. Exact zeros stay zero with L = -inf.
    Returns (ks (K,), L (K, B), P_hat (K, B, S, S)).
    """
    t, B, S, _ = J.shape
    J = J.to(F64)
    klist = list(range(1, t + 1)) if ks is None else sorted(set(int(k) for k in ks))
    K = len(klist)
    P = torch.eye(S, dtype=F64).expand(K, B, S, S).clone()
    L = torch.zeros(K, B, dtype=F64)
    for j in range(2, t + 1):  # J_j multiplies every product with k + 1 <= j (ks sorted: a prefix)
        m = bisect.bisect_right(klist, j - 1)
        if m == 0:
            continue
        Pn = torch.matmul(J[j - 1], P[:m])  # (m, B, S, S)
        nrm = torch.linalg.matrix_norm(Pn)  # (m, B)
        P[:m] = Pn / torch.where(nrm > 0, nrm, torch.ones_like(nrm))[..., None, None]
        L[:m] += torch.log(nrm)
    return torch.tensor(klist), L, P


def reference_profile(J: torch.Tensor, ks=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(ks, log10 ||P_k||_2 (B, K), log10 ||P_k||_F (B, K)) from explicit products and svdvals."""
    ks, L, P = explicit_products(J, ks)
    spec = (L + torch.log(torch.linalg.svdvals(P)[..., 0])) / LN10
    fro = (L + torch.log(torch.linalg.matrix_norm(P))) / LN10
    return ks, spec.T, fro.T


def assert_log10_close(est: torch.Tensor, ref: torch.Tensor, rtol: float, what: str) -> float:
    """|log10 est - log10 ref| * ln 10 <= rtol for every entry; -inf (exact zero) must match -inf exactly."""
    est, ref = est.to(F64), ref.to(F64)
    assert est.shape == ref.shape, f"{what}: shape {tuple(est.shape)} != reference {tuple(ref.shape)}"
    assert not torch.isnan(est).any(), f"{what}: NaN at (b, k-1) = {torch.nonzero(torch.isnan(est))[:5].tolist()}"
    assert not torch.isnan(ref).any(), f"{what}: NaN in the reference"
    zero = torch.isneginf(ref)
    bad_zero = zero != torch.isneginf(est)
    assert not bad_zero.any(), (f"{what}: -inf (exact zero product) mismatch at (b, k-1) = "
                                f"{torch.nonzero(bad_zero)[:5].tolist()}: est {est[bad_zero][:5].tolist()}, "
                                f"ref {ref[bad_zero][:5].tolist()}")
    assert torch.isfinite(ref[~zero]).all(), f"{what}: reference not finite"
    assert torch.isfinite(est[~zero]).all(), f"{what}: estimate not finite where the reference is"
    err = torch.where(zero, torch.zeros_like(est), (est - ref).abs() * LN10)
    worst = float(err.max()) if err.numel() else 0.0
    where = divmod(int(err.argmax()), err.shape[-1]) if err.numel() else None
    assert worst <= rtol, (f"{what}: relative error {worst:.3e} > {rtol:.1e} at (b, k-1) = {where}: "
                           f"est log10 {float(est.flatten()[err.argmax()]):.12f}, "
                           f"ref log10 {float(ref.flatten()[err.argmax()]):.12f}")
    return worst


def check_against_explicit(cell, trace, t=None, *, chunk=None, spec_tol=SPEC_TOL, fro_tol=FRO_TOL, **kw):
    """Profile vs explicit products for every k = 1..t and every sequence; returns the profile."""
    t = trace.T if t is None else t
    prof = jacobian_profile(cell, trace, t, chunk=chunk, **kw)
    _, spec, fro = reference_profile(jacrev_jacobians(cell, trace, t))
    assert prof.t == t
    assert tuple(prof.log10_spectral.shape) == (trace.B, t)
    assert tuple(prof.log10_frobenius.shape) == (trace.B, t)
    assert_log10_close(prof.log10_spectral, spec, spec_tol, "spectral")
    assert_log10_close(prof.log10_frobenius, fro, fro_tol, "Frobenius")
    return prof


# ----------------------------------------------------------------------------------------------
# cells
# ----------------------------------------------------------------------------------------------

def _gen(seed):
    return torch.Generator().manual_seed(seed)


def orthogonal(S: int, seed: int) -> torch.Tensor:
    Q, R = torch.linalg.qr(torch.randn(S, S, dtype=F64, generator=_gen(seed)))
    return Q * torch.sign(torch.diagonal(R))


def function_cell(S=5, D=3, seed=7) -> FunctionCell:
    """A step function that is none of the built-in cells: s' = tanh(W s + U x) + 0.5 sin(s) cos(V x)."""
    g = _gen(seed)
    W = torch.randn(S, S, dtype=F64, generator=g) * 1.4 / S**0.5
    U = torch.randn(S, D, dtype=F64, generator=g)
    V = torch.randn(S, D, dtype=F64, generator=g)
    return FunctionCell(lambda x, h: torch.tanh(W @ h + U @ x) + 0.5 * torch.sin(h) * torch.cos(V @ x), S, D)


def matrix_cell(S: int) -> FunctionCell:
    """A linear time-varying cell whose input IS the step Jacobian: s_t = X_t s_{t-1}, x_t = vec(X_t) (D = S^2).

    It lets a test prescribe every factor J_t = X_t of the product exactly.
    """
    return FunctionCell(lambda x, h: x.reshape(S, S) @ h, S, S * S)


def matrix_trace(cell: FunctionCell, mats: torch.Tensor):
    """Unroll the matrix cell over prescribed Jacobians mats (T, B, S, S) from s0 = 1."""
    T, B, S, _ = mats.shape
    return unroll(cell, mats.reshape(T, B, S * S), torch.ones(S, dtype=F64))


CELLS = [(kind, act) for kind in ("elman", "pal") for act in ACTS] + [("lstm", None), ("gru", None), ("function", None)]


def make_cell(kind, act, seed=0):
    if kind in ("elman", "pal"):
        return random_cell(kind, act, hidden=6, input_size=3, gain=1.3, seed=seed)
    if kind == "lstm":
        return random_cell("lstm", hidden=4, input_size=3, gain=1.5, seed=seed)  # S = 2H = 8: the full (h, c)
    if kind == "gru":
        return random_cell("gru", hidden=6, input_size=3, gain=1.5, seed=seed)
    return function_cell(S=5, D=3, seed=seed)


def random_trace(cell, T, B, seed=1, scale=1.0):
    g = _gen(seed)
    x = scale * torch.randn(T, B, cell.input_size, dtype=cell.dtype, generator=g)
    s0 = 0.5 * torch.randn(B, cell.state_size, dtype=cell.dtype, generator=g)
    return unroll(cell, x, s0)


# ----------------------------------------------------------------------------------------------
# every cell, activation, batch size and chunk length against explicit products
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("chunk", [1, 3, None], ids=["chunk1", "chunk3", "chunkdefault"])
@pytest.mark.parametrize("B", [1, 3])
@pytest.mark.parametrize("kind,act", CELLS, ids=[f"{k}-{a}" if a else k for k, a in CELLS])
def test_every_k_matches_explicit_products(kind, act, B, chunk):
    cell = make_cell(kind, act)
    trace = random_trace(cell, T=40, B=B)
    prof = check_against_explicit(cell, trace, chunk=chunk)
    S = cell.state_size
    # k = t: ds_t/ds_t = I, ||I||_2 = 1, ||I||_F = sqrt(S)
    assert torch.equal(prof.log10_spectral[:, -1], torch.zeros(B, dtype=F64))
    assert torch.allclose(prof.log10_frobenius[:, -1], torch.full((B,), 0.5 * math.log10(S), dtype=F64),
                          rtol=0, atol=1e-15)


def test_lstm_profile_is_of_the_full_state():
    """The LSTM profile is of s = (h, c) (S = 2H), not of h alone: the c -> c path (diag f) is included."""
    cell = make_cell("lstm", None)
    trace = random_trace(cell, T=30, B=2)
    prof = jacobian_profile(cell, trace)
    H = cell.hidden_size
    J = jacrev_jacobians(cell, trace)
    assert J.shape[-1] == 2 * H
    _, spec_full, _ = reference_profile(J)
    _, spec_h, _ = reference_profile(J[..., :H, :H])  # the h -> h block alone: a different (wrong) product
    assert_log10_close(prof.log10_spectral, spec_full, SPEC_TOL, "LSTM (h, c)")
    assert float((prof.log10_spectral - spec_h).abs().max()) > 1e-3


@pytest.mark.parametrize("chunk", [1, 3, None])
@pytest.mark.parametrize("kind", ["elman", "lstm", "function"])
def test_t_before_T(kind, chunk):
    """t < T: the profile of ds_t/ds_k, k = 1..t, uses the first t steps only."""
    cell = make_cell(kind, "tanh", seed=3)
    trace = random_trace(cell, T=50, B=2, seed=4)
    prof = check_against_explicit(cell, trace, t=23, chunk=chunk)
    assert tuple(prof.log10_frobenius.shape) == (2, 23)


def test_long_sequence_with_full_chunks():
    """T = 700: chunks grow 8, 16, ... up to the full chunk length and warm starts run across many chunks."""
    cell = random_cell("elman", "tanh", hidden=10, input_size=2, gain=1.8, seed=11)
    trace = random_trace(cell, T=700, B=2, seed=12)
    check_against_explicit(cell, trace)


def test_frobenius_only():
    """spectral=False: the same Frobenius profile, and no spectral numbers (NaN)."""
    cell = make_cell("gru", None)
    trace = random_trace(cell, T=45, B=2)
    prof = jacobian_profile(cell, trace, spectral=False, chunk=3)
    _, _, fro = reference_profile(jacrev_jacobians(cell, trace))
    assert_log10_close(prof.log10_frobenius, fro, FRO_TOL, "Frobenius (spectral=False)")
    assert torch.isnan(prof.log10_spectral).all()


@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(["elman", "pal"]), act=st.sampled_from(ACTS), S=st.integers(1, 7),
       B=st.integers(1, 3), T=st.integers(1, 30), gain=st.floats(0.1, 4.0), chunk=st.sampled_from([None, 1, 2, 5]),
       seed=st.integers(0, 2**16), t_frac=st.floats(0.05, 1.0))
def test_random_configurations(kind, act, S, B, T, gain, chunk, seed, t_frac):
    cell = random_cell(kind, act, hidden=S, input_size=2, gain=gain, seed=seed)
    trace = random_trace(cell, T=T, B=B, seed=seed + 1)
    t = max(1, round(t_frac * T))
    check_against_explicit(cell, trace, t=t, chunk=chunk)


# ----------------------------------------------------------------------------------------------
# near-degenerate top singular values
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("chunk", [1, 3, None])
def test_orthogonal_all_singular_values_equal(chunk):
    """identity phi, W = g Q: ds_T/ds_k = g^(T-k) Q^(T-k), every singular value g^(T-k) (fully degenerate).

    Closed form: log10 ||.||_2 = (T-k) log10 g, log10 ||.||_F = log10 sqrt(S) + (T-k) log10 g.
    """
    S, T, B, g = 6, 300, 2, 1.05
    cell = ElmanCell(g * orthogonal(S, 1), torch.randn(S, 2, dtype=F64, generator=_gen(2)), torch.zeros(S, dtype=F64),
                     "identity")
    trace = random_trace(cell, T=T, B=B)
    prof = jacobian_profile(cell, trace, chunk=chunk)
    dist = torch.arange(T - 1, -1, -1, dtype=F64)  # T - k for k = 1..T
    spec = (dist * math.log10(g)).expand(B, T)
    assert_log10_close(prof.log10_spectral, spec, SPEC_TOL, "spectral, W = g Q")
    assert_log10_close(prof.log10_frobenius, spec + 0.5 * math.log10(S), FRO_TOL, "Frobenius, W = g Q")


@pytest.mark.parametrize("chunk", [1, 3, None])
def test_top_singular_values_1_and_1_minus_1e9(chunk):
    """identity phi, W = R diag(1, 1 - 1e-9, 0.5, 0.4, 0.3) R^T (R orthogonal): W^n = R diag(d^n) R^T.

    Closed form: ||W^n||_2 = 1 exactly (the top two differ by only 1e-9 n), ||W^n||_F^2 = sum d_i^(2n).
    """
    d = torch.tensor([1.0, 1.0 - 1e-9, 0.5, 0.4, 0.3], dtype=F64)
    S, T = d.numel(), 400
    R = orthogonal(S, 5)
    cell = ElmanCell(R @ torch.diag(d) @ R.T, torch.randn(S, 1, dtype=F64, generator=_gen(6)), torch.zeros(S, dtype=F64),
                     "identity")
    trace = random_trace(cell, T=T, B=1)
    prof = jacobian_profile(cell, trace, chunk=chunk)
    n = torch.arange(T - 1, -1, -1, dtype=F64)  # T - k
    fro = 0.5 * torch.log10((d.unsqueeze(0) ** (2 * n.unsqueeze(1))).sum(1))
    assert_log10_close(prof.log10_spectral, torch.zeros(1, T, dtype=F64), SPEC_TOL, "spectral, gap 1e-9")
    assert_log10_close(prof.log10_frobenius, fro.unsqueeze(0), FRO_TOL, "Frobenius, gap 1e-9")
    # and the same through explicit products (a second, independent reference)
    _, spec_ref, fro_ref = reference_profile(jacrev_jacobians(cell, trace))
    assert_log10_close(prof.log10_spectral, spec_ref, SPEC_TOL, "spectral vs svdvals, gap 1e-9")
    assert_log10_close(prof.log10_frobenius, fro_ref, FRO_TOL, "Frobenius vs explicit, gap 1e-9")


@pytest.mark.parametrize("chunk", [1, 3, None])
def test_top_pair_ratio_0999_at_every_k(chunk):
    """Prescribed factors (matrix cell) with the top pair of singular values in ratio 0.999 for EVERY k.

    J_j = Q_j diag(e_j) Q_{j-1}^T with random orthogonal Q_j telescopes: P_k = Q_t diag(prod_{j>k} e_j) Q_k^T.
    e_t = (1, 0.999, 0.5, 0.4), e_j = (1, 1, 0.9, 0.8) for j < t: singular values of P_k are
    (1, 0.999, 0.5 0.9^(t-k-1), 0.4 0.8^(t-k-1)) -- closed form, and the right singular vectors change at every k.
    """
    S, T = 4, 120
    Qs = [orthogonal(S, 100 + j) for j in range(T + 1)]
    e = torch.tensor([1.0, 1.0, 0.9, 0.8], dtype=F64).repeat(T, 1)
    e[-1] = torch.tensor([1.0, 0.999, 0.5, 0.4], dtype=F64)
    mats = torch.stack([Qs[j + 1] @ torch.diag(e[j]) @ Qs[j].T for j in range(T)]).unsqueeze(1)  # J_{j+1}
    cell = matrix_cell(S)
    trace = matrix_trace(cell, mats)
    prof = jacobian_profile(cell, trace, chunk=chunk)
    spec, fro = diagonal_closed_form(torch.log(e))
    assert_log10_close(prof.log10_spectral, spec.unsqueeze(0), SPEC_TOL, "spectral, ratio 0.999")
    assert_log10_close(prof.log10_frobenius, fro.unsqueeze(0), FRO_TOL, "Frobenius, ratio 0.999")


@pytest.mark.parametrize("chunk", [1, 3, None])
def test_top_singular_direction_crosses(chunk):
    """The top singular value changes hands between two directions as k decreases.

    Matrix cell with J_j = Q diag(e_j) Q^T (one orthogonal Q, commuting factors):
    P_k = Q diag(prod_{j>k} e_j) Q^T. The late steps have e = (1, 0.999, 0.5, 0.3): near t the top direction
    is q_1. The early steps have e = (0.998, 1, 0.5, 0.3): deep enough (T - k > about 1.5 n_late) the top
    direction is q_2, with ||P_k||_2 / |q_1^T P_k q_1| growing without bound. A power iteration warm-started
    from the previous top left vector q_1 sits on an invariant subspace (P_k^T q_1 is parallel to q_1 up to
    rounding) and can never see q_2: the converged-looking sigma it returns is the second singular value.
    Closed form: log ||P_k||_2 = max_i sum_{j>k} log e_j[i].
    """
    S, n_early, n_late = 4, 1400, 600
    Q = orthogonal(S, 9)
    late = torch.tensor([1.0, 0.999, 0.5, 0.3], dtype=F64)
    early = torch.tensor([0.998, 1.0, 0.5, 0.3], dtype=F64)
    e = torch.cat([early.repeat(n_early, 1), late.repeat(n_late, 1)])  # e[j-1] = e_j
    cell = FunctionCell(lambda x, h: Q @ (x * (Q.T @ h)), S, S)  # J_j = Q diag(x_j) Q^T
    trace = unroll(cell, e.unsqueeze(1), torch.ones(S, dtype=F64))
    prof = jacobian_profile(cell, trace, chunk=chunk)
    spec, fro = diagonal_closed_form(torch.log(e))
    assert_log10_close(prof.log10_frobenius, fro.unsqueeze(0), FRO_TOL, "Frobenius, crossing")
    assert_log10_close(prof.log10_spectral, spec.unsqueeze(0), SPEC_TOL, "spectral, crossing top direction")


@pytest.mark.parametrize("chunk", [1, 3, None])
def test_identity_init_tanh_diagonal_products(chunk):
    """The IRNN initialisation W_hh = I (random_cell(init="identity"), the CLI's --init identity) with tanh and
    small random inputs: every J_j = diag(tanh'(a_j)) is diagonal, so P_k = diag(prod_{j>k} tanh'(a_j)).

    Closed form from the trace's pre-activations: log ||P_k||_2 = max_i sum_{j>k} log tanh'(a_{j,i}) and
    log ||P_k||_F = 0.5 log sum_i exp(2 sum_{j>k} log tanh'(a_{j,i})). Which unit has the largest product changes
    with k; a warm start that sits exactly on one coordinate axis cannot see another unit's product overtake.
    """
    S, T = 4, 2000
    cell = random_cell("elman", "tanh", hidden=S, input_size=1, gain=1.0, init="identity", seed=0)
    x = 0.1 * torch.randn(T, 1, 1, dtype=F64, generator=_gen(10))
    trace = unroll(cell, x)
    prof = jacobian_profile(cell, trace, chunk=chunk)
    logd = torch.log1p(-torch.tanh(trace.preacts[:, 0, :]) ** 2)  # (T, S): row j-1 is log tanh'(a_j)
    spec, fro = diagonal_closed_form(logd)
    assert_log10_close(prof.log10_frobenius, fro.unsqueeze(0), FRO_TOL, "Frobenius, W = I tanh")
    assert_log10_close(prof.log10_spectral, spec.unsqueeze(0), SPEC_TOL, "spectral, W = I tanh")


# ----------------------------------------------------------------------------------------------
# rank-deficient and exactly-zero products
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("chunk", [1, 3, None])
def test_relu_dead_units_rank_deficient(chunk):
    """relu with half the units dead (bias -50): every J has S/2 zero rows, every product rank <= S/2."""
    S, T, B = 8, 80, 2
    g = _gen(21)
    W = torch.randn(S, S, dtype=F64, generator=g) * 1.5 / S**0.5
    b = torch.zeros(S, dtype=F64)
    b[S // 2:] = -50.0
    cell = ElmanCell(W, torch.randn(S, 2, dtype=F64, generator=g), b, "relu")
    trace = random_trace(cell, T=T, B=B, seed=22)
    J = jacrev_jacobians(cell, trace)
    assert int(torch.linalg.matrix_rank(J[5, 0])) <= S // 2
    check_against_explicit(cell, trace, chunk=chunk)


@pytest.mark.parametrize("chunk", [1, 3, None])
def test_low_rank_W_tanh(chunk):
    """tanh with W_hh of rank 2: the products have rank 2 and S - 2 zero singular values."""
    S, T = 7, 90
    g = _gen(31)
    A, Bm = torch.randn(S, 2, dtype=F64, generator=g), torch.randn(2, S, dtype=F64, generator=g)
    cell = ElmanCell(A @ Bm * 0.8, torch.randn(S, 3, dtype=F64, generator=g), torch.zeros(S, dtype=F64), "tanh")
    trace = random_trace(cell, T=T, B=2, seed=32)
    check_against_explicit(cell, trace, chunk=chunk)


@pytest.mark.parametrize("B", [1, 2])
@pytest.mark.parametrize("chunk", [1, 3, None])
def test_nilpotent_products_are_exactly_zero(chunk, B):
    """identity phi, W strictly upper triangular (S = 5): W^n = 0 exactly for n >= S.

    The profile must say -inf for T - k >= S (not NaN, not a finite number) and be exact for T - k < S.
    Reference: closed form W^n (matrix_power) for n < S; the zero pattern is exact in floating point.
    """
    S, T = 5, 60
    W = torch.triu(torch.randn(S, S, dtype=F64, generator=_gen(41)) + 2.0, diagonal=1)
    cell = ElmanCell(W, torch.randn(S, 2, dtype=F64, generator=_gen(42)), torch.zeros(S, dtype=F64), "identity")
    trace = random_trace(cell, T=T, B=B)
    prof = jacobian_profile(cell, trace, chunk=chunk)
    spec = torch.full((T,), -math.inf, dtype=F64)
    fro = torch.full((T,), -math.inf, dtype=F64)
    for n in range(S):  # k = T - n
        Wn = torch.linalg.matrix_power(W, n)
        spec[T - 1 - n] = math.log10(float(torch.linalg.svdvals(Wn)[0]))
        fro[T - 1 - n] = math.log10(float(torch.linalg.matrix_norm(Wn)))
    assert_log10_close(prof.log10_spectral, spec.expand(B, T), SPEC_TOL, "spectral, nilpotent")
    assert_log10_close(prof.log10_frobenius, fro.expand(B, T), FRO_TOL, "Frobenius, nilpotent")


@pytest.mark.parametrize("chunk", [1, 3, None])
def test_zero_factor_in_a_batch_with_an_exploding_sequence(chunk):
    """B = 2, prescribed factors: sequence 0 has J_j = 0 at j = 31 (every P_k with k < 31 is exactly zero),
    sequence 1 explodes (random factors of gain 3). The batch's shared scaling must not spoil either one."""
    S, T = 4, 100
    g = _gen(51)
    mats = torch.randn(T, 2, S, S, dtype=F64, generator=g) / S**0.5
    mats[:, 1] *= 3.0
    mats[30, 0] = 0.0  # J_31 of sequence 0
    cell = matrix_cell(S)
    trace = matrix_trace(cell, mats)
    prof = check_against_explicit(cell, trace, chunk=chunk)
    assert torch.isneginf(prof.log10_spectral[0, :30]).all() and torch.isneginf(prof.log10_frobenius[0, :30]).all()
    assert torch.isfinite(prof.log10_spectral[0, 30:]).all()
    assert float(prof.log10_spectral[1, 0]) > 10  # sequence 1 did grow


# ----------------------------------------------------------------------------------------------
# saturation, float32
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("chunk", [1, 3, None])
def test_saturated_sigmoid(chunk):
    """Large weights saturate the sigmoid (phi' down to ~1e-30): the product underflows float64 within a few
    dozen steps; the log-domain profile must still match explicit renormalised products."""
    S, T = 6, 300
    g = _gen(61)
    cell = ElmanCell(torch.randn(S, S, dtype=F64, generator=g) * 25.0 / S**0.5, torch.randn(S, 2, dtype=F64, generator=g) * 20,
                     torch.zeros(S, dtype=F64), "sigmoid")
    trace = random_trace(cell, T=T, B=2, seed=62)
    prof = check_against_explicit(cell, trace, chunk=chunk)
    assert float(prof.log10_frobenius.min()) < -400  # far below float64's range (10^-308): log domain needed


def test_float32():
    """float32 cell: the products run in float32 and are compared with float64 explicit products of the same
    float32 Jacobians; the log-scales and the returned log10 values are float64 (no drift of the scale over
    long T). Stated tolerance, relative: 2e-4 on the spectral and the Frobenius norm for T = 200
    (float32 eps = 1.2e-7; the running product's rounding accumulates over T steps as about
    sqrt(T) S eps, ~1e-5 here; the bound leaves a margin of ~10 while a lost scale factor or a wrong k
    would be off by orders of magnitude)."""
    cell = random_cell("elman", "tanh", hidden=8, input_size=2, gain=1.6, seed=71, dtype=torch.float32)
    trace = random_trace(cell, T=200, B=2, seed=72)
    prof = jacobian_profile(cell, trace)
    assert prof.log10_spectral.dtype == torch.float64
    _, spec, fro = reference_profile(jacrev_jacobians(cell, trace))
    assert_log10_close(prof.log10_spectral, spec, 2e-4, "float32 spectral")
    assert_log10_close(prof.log10_frobenius, fro, 2e-4, "float32 Frobenius")


# ----------------------------------------------------------------------------------------------
# transient growth, exploding regimes at long T
# ----------------------------------------------------------------------------------------------

def test_non_normal_transient_growth():
    """W = 0.9 I + 1.5 N (N the upper shift, S = 6): rho(W) = 0.9 < 1 < sigma_max(W), non-normal.
    tanh with zero inputs and s_0 = 0 keeps every state at 0 (tanh'(0) = 1), so ds_T/ds_k = W^(T-k): the norm
    first grows (transient amplification) and then decays as ~0.9^(T-k).

    Closed form: (W^n)_{i, i+m} = C(n, m) 0.9^(n-m) 1.5^m, so ||W^n||_F^2 = sum_m (S - m) (C(n, m) 0.9^(n-m) 1.5^m)^2.
    W is entrywise non-negative, so its explicit products carry no cancellation (componentwise relative error
    ~ n S eps), and the spectral reference is svdvals of those products. (A rotated R W R^T would make ||W^n||
    ill-conditioned by the transient factor itself: no float64 method could then be checked to 1e-10.)
    """
    S, T, a, b = 6, 400, 0.9, 1.5
    W = a * torch.eye(S, dtype=F64) + b * torch.diag(torch.ones(S - 1, dtype=F64), 1)
    rho = float(torch.linalg.eigvals(W).abs().max())
    sigma_max = float(torch.linalg.svdvals(W)[0])
    assert rho < 1 < sigma_max
    cell = ElmanCell(W, torch.zeros(S, 1, dtype=F64), torch.zeros(S, dtype=F64), "tanh")
    trace = unroll(cell, torch.zeros(T, 1, 1, dtype=F64))
    prof = check_against_explicit(cell, trace)

    def log10_fro_closed(n: int) -> float:
        terms = [2 * (math.lgamma(n + 1) - math.lgamma(m + 1) - math.lgamma(n - m + 1) + (n - m) * math.log(a)
                      + m * math.log(b)) + math.log(S - m) for m in range(min(S, n + 1))]
        top = max(terms)
        return 0.5 * (top + math.log(sum(math.exp(x - top) for x in terms))) / LN10

    fro = torch.tensor([log10_fro_closed(T - k) for k in range(1, T + 1)], dtype=F64)
    assert_log10_close(prof.log10_frobenius, fro.unsqueeze(0), FRO_TOL, "Frobenius, closed form W^n")
    spec = prof.log10_spectral[0]
    peak_k = int(spec.argmax()) + 1
    assert 1 < T - peak_k < T - 1
    assert float(spec.max()) > 2.0  # transient growth by more than 100x although rho < 1
    assert float(spec[0]) < -3.0  # and eventual decay


def test_identity_orthogonal_exploding_T100000():
    """identity phi, W = g Q, g = 1.01, T = 100,000: ||ds_T/ds_k||_2 = g^(T-k) reaches 10^432 (float64 overflows
    at 10^308). Closed form: log10 ||.||_2 = (T-k) log10 g, log10 ||.||_F = log10 sqrt(S) + (T-k) log10 g;
    finite and exact to 1e-9 relative for every k."""
    S, T, g = 4, 100_000, 1.01
    W = g * orthogonal(S, 91)
    assert not torch.isfinite(torch.linalg.matrix_power(W, T - 1)).all()  # the naive product overflows
    cell = ElmanCell(W, torch.randn(S, 1, dtype=F64, generator=_gen(92)), torch.zeros(S, dtype=F64), "identity")
    trace = unroll(cell, torch.zeros(T, 1, 1, dtype=F64), torch.zeros(S, dtype=F64))
    prof = jacobian_profile(cell, trace)
    dist = torch.arange(T - 1, -1, -1, dtype=F64)
    spec = (dist * math.log10(g)).unsqueeze(0)
    assert float(spec[0, 0]) > 400
    assert_log10_close(prof.log10_spectral, spec, 1e-9, "spectral, T = 100,000")
    assert_log10_close(prof.log10_frobenius, spec + 0.5 * math.log10(S), 1e-9, "Frobenius, T = 100,000")


@pytest.mark.slow
def test_tanh_exploding_T20000():
    """tanh, W ~ N(0, g^2/S) with g = 3, S = 16, inputs N(0, 0.3^2), T = 20,000: chaotic, the product grows
    by ~0.07 decades per step, past 10^1000.
    Checked against renormalised explicit products (the other association) at a sample of k, every k that
    is a multiple of 500 plus the 30 steps at each end."""
    S, T = 16, 20_000
    cell = random_cell("elman", "tanh", hidden=S, input_size=2, gain=3.0, seed=103)
    trace = random_trace(cell, T=T, B=1, seed=104, scale=0.3)
    prof = jacobian_profile(cell, trace)
    ks = sorted(set(range(1, 31)) | set(range(500, T, 500)) | set(range(T - 29, T + 1)))
    ks_t, spec, fro = reference_profile(jacrev_jacobians(cell, trace), ks)
    idx = ks_t - 1
    assert float(fro[0, 0]) > 1000  # exploding far beyond float64's range
    assert_log10_close(prof.log10_spectral[:, idx], spec, SPEC_TOL, "spectral, tanh T = 20,000")
    assert_log10_close(prof.log10_frobenius[:, idx], fro, FRO_TOL, "Frobenius, tanh T = 20,000")


# ----------------------------------------------------------------------------------------------
# memory: O(B S^2) beyond the trace, not O(T S^2)
# ----------------------------------------------------------------------------------------------

_MEMORY_CHILD = textwrap.dedent("""
    import ctypes, json, sys
    import torch
    from rnnscope import jacobian_profile, random_cell, unroll
    torch.set_num_threads(1)

    def status(key):
        for line in open('/proc/self/status'):
            if line.startswith(key + ':'):
                return int(line.split()[1]) * 1024  # kB -> bytes
        raise KeyError(key)

    T, S = int(sys.argv[1]), int(sys.argv[2])
    cell = random_cell('elman', 'tanh', hidden=S, input_size=1, gain=1.5, seed=0)
    x = torch.randn(T, 1, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    jacobian_profile(cell, unroll(cell, x[:50]))  # warm-up: lazily loaded kernels and allocator pools
    libc = ctypes.CDLL('libc.so.6')
    libc.malloc_trim(0)  # give freed heap back, so that RSS counts what is live
    base = status('VmRSS')
    trace = unroll(cell, x)
    trace_bytes = sum(a.numel() * a.element_size() for a in (trace.states, trace.preacts, trace.inputs))
    libc.malloc_trim(0)  # drop unroll's temporaries: RSS is now base + the trace
    rss0 = status('VmRSS')
    with open('/proc/self/clear_refs', 'w') as f:  # reset the high-water mark to the current RSS
        f.write('5')
    prof = jacobian_profile(cell, trace)
    assert prof.log10_spectral.shape == (1, T)
    print(json.dumps({'base': base, 'rss0': rss0, 'peak': status('VmHWM'), 'trace_bytes': trace_bytes}))
""")


def _peak_beyond(T: int, S: int) -> dict:
    out = subprocess.run([sys.executable, "-c", _MEMORY_CHILD, str(T), str(S)], capture_output=True, text=True,
                         timeout=300, check=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    r["extra"] = r["peak"] - r["rss0"]  # bytes allocated by the profile beyond what existed (the trace included)
    return r


@pytest.mark.slow
def test_memory_flat_in_T():
    """Peak RSS of the profile beyond the already-built trace, at T and 8T (S = 64, B = 1), in fresh processes.

    The result itself is O(T) (two (B, T) rows: 16 T bytes) and is subtracted. An O(T S^2) implementation
    (keeping the Jacobians or the products) would need 7 T S^2 * 8 bytes = 459 MB more at 8T than at T;
    the bound is 24 MB (allocator noise and the O(C B S^2) chunk buffers, which do not depend on T).
    """
    S, T = 64, 2000
    small, large = _peak_beyond(T, S), _peak_beyond(8 * T, S)
    result_growth = 2 * 8 * (8 * T - T)
    growth = large["extra"] - small["extra"] - result_growth
    naive = 7 * T * S * S * 8
    bound = 24 * 1024**2
    assert bound < naive / 10
    assert growth < bound, (f"profile memory beyond the trace grew by {growth / 1e6:.1f} MB from T = {T} to {8 * T} "
                            f"(extra {small['extra'] / 1e6:.1f} MB -> {large['extra'] / 1e6:.1f} MB; trace "
                            f"{small['trace_bytes'] / 1e6:.1f} -> {large['trace_bytes'] / 1e6:.1f} MB)")
