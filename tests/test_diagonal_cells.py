"""The diagonal cells (core/linear_recurrences.py, core/min_rnns.py, gathered in core/diagonal_cells.py) against
independent references: torch.func.jacrev / vjp, steps written here from the papers' equations (complex tensors
for LRU, loops over d and n for Mamba), unroll for the scans, closed-form gradient profiles and Lyapunov
exponents. float64 throughout."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as tf

from rnnscope.core.diagonal_cells import IndRNNCell, LRUCell, MambaCell, MinGRUCell, MinLSTMCell
from rnnscope.core.errors import InputError
from rnnscope.core.unroll import unroll
from rnnscope.gradients.lyapunov import lyapunov
from rnnscope.gradients.profile import profile

F64 = torch.float64
TOL = dict(rtol=1e-12, atol=1e-12)
B, D, H = 4, 3, 5
SCANNED = ("lru", "mingru", "minlstm", "mamba")


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _lru_with(moduli, phases, seed=0, D_=D):
    """An LRU with the given |lambda_j| and arg lambda_j (the paper's normalisation gamma), B random."""
    m, p, g = torch.tensor(moduli, dtype=F64), torch.tensor(phases, dtype=F64), _gen(seed)
    N = len(moduli)
    return LRUCell(torch.log(-torch.log(m)), torch.log(p), torch.log(torch.sqrt(-torch.expm1(2 * torch.log(m)))),
                   torch.randn(N, D_, generator=g, dtype=F64), torch.randn(N, D_, generator=g, dtype=F64))


def _cells():
    """Every kind, with biases and weights large enough that gates and relu units are away from the middle."""
    g = _gen(11)
    indrnn = IndRNNCell.random(H, D, seed=3, u_max=1.5)
    indrnn_tanh = IndRNNCell(indrnn.u, indrnn.W_xh, torch.randn(H, generator=g, dtype=F64) * 0.3, "tanh")
    return {
        "lru": LRUCell.random(H, D, seed=1, r_min=0.3, r_max=0.95),
        "lru-near-1": _lru_with([1 - 1e-9, 0.999999, 0.5], [0.1, 3.0, 6.0]),  # |lambda| next to the circle
        "mamba": MambaCell.random(2, D, seed=2),
        "mamba-wide-dt": MambaCell.random(3, D, seed=4, dt_min=0.05, dt_max=2.0),
        "mingru": MinGRUCell.random(H, D, seed=5),
        "minlstm": MinLSTMCell.random(H, D, seed=6),
        "indrnn": indrnn,
        "indrnn-tanh": indrnn_tanh,
    }


CELLS = _cells()


def _point(cell, seed=1, scale=2.0):
    g = _gen(seed)
    x = torch.randn(B, cell.input_size, generator=g, dtype=F64) * scale
    s = torch.randn(B, cell.state_size, generator=g, dtype=F64) * scale  # a random (negative too) start
    return x, s


@pytest.mark.parametrize("name", list(CELLS))
def test_jacobian_and_vjp_against_autograd(name):
    cell = CELLS[name]
    x, s = _point(cell)
    one = lambda xb, sb: cell.step(xb.unsqueeze(0), sb.unsqueeze(0)).squeeze(0)  # noqa: E731
    J_ref = torch.func.vmap(torch.func.jacrev(one, argnums=1))(x, s)
    J = cell.jacobian(x, s)
    torch.testing.assert_close(J, J_ref, **TOL)
    off = J - torch.diag_embed(torch.diagonal(J, dim1=-2, dim2=-1))
    if not name.startswith("lru"):
        assert bool((off == 0).all())  # diagonal
    g = torch.randn(B, cell.state_size, generator=_gen(2), dtype=F64)
    _, pull = torch.func.vjp(lambda s_: cell.step(x, s_), s)
    torch.testing.assert_close(cell.vjp(x, s, g), pull(g)[0], **TOL)
    _, a = cell.forward(x, s)
    torch.testing.assert_close(cell.vjp(x, s, g, a), pull(g)[0], **TOL)  # with the recorded pre-activations


@pytest.mark.parametrize("name", list(CELLS))
def test_factored_vjp_drive_adjoint_and_leading_dims(name):
    """vjp_apply's dL/du_t is the adjoint of the drive (torch.func.vjp through forward_driven); factors formed for
    (T, B, .) at once give every step's products; out= receives dL/du_t."""
    cell = CELLS[name]
    T = 3
    g_ = _gen(7)
    x = torch.randn(T, B, cell.input_size, generator=g_, dtype=F64)
    s = torch.randn(T, B, cell.state_size, generator=g_, dtype=F64)
    g = torch.randn(T, B, cell.state_size, generator=g_, dtype=F64)
    F = cell.vjp_factors(x, s)
    back, du = cell.vjp_apply(F, g)
    for t in range(T):
        u = cell.drive(x[t])
        _, pull = torch.func.vjp(lambda u_, s_: cell.forward_driven(u_, s_)[0], u, s[t])
        du_ref, back_ref = pull(g[t])
        torch.testing.assert_close(du[t], du_ref, **TOL)
        torch.testing.assert_close(back[t], back_ref, **TOL)
        out = torch.empty_like(du_ref)
        _, du_out = cell.vjp_apply(cell.vjp_factors(x[t], s[t]), g[t], out=out)
        assert du_out.data_ptr() == out.data_ptr()
        torch.testing.assert_close(out, du[t], **TOL)


# ----- the steps against the papers' equations, written here independently -----

def _ref_lru(c, x, s):
    N = c.nu_log.shape[0]
    lam = torch.exp(-torch.exp(c.nu_log) + 1j * torch.exp(c.theta_log))  # (N,) complex
    Bc = c.B_re + 1j * c.B_im
    h = s[:, :N] + 1j * s[:, N:]
    h_new = lam * h + torch.exp(c.gamma_log) * (x.to(torch.complex128) @ Bc.T)  # lambda h + gamma (B x)
    return torch.cat([h_new.real, h_new.imag], 1)


def _ref_mamba(c, x, s):
    Dd, N = c.A_log.shape
    out = torch.empty_like(s)
    for b in range(x.shape[0]):
        for d in range(Dd):
            k = sum(c.W_delta[d, j] * x[b, j] for j in range(Dd)) + c.b_delta[d]
            delta = math.log1p(math.exp(float(k)))  # softplus
            for n in range(N):
                Bn = sum(c.W_B[n, j] * x[b, j] for j in range(Dd))
                A = -math.exp(float(c.A_log[d, n]))
                out[b, d * N + n] = math.exp(delta * A) * s[b, d * N + n] + delta * Bn * x[b, d]
    return out


def _paper_g(v):
    return torch.where(v >= 0, v + 0.5, 1 / (1 + torch.exp(-v)))


def _ref_mingru(c, x, s):
    z = 1 / (1 + torch.exp(-(x @ c.W_z.T + c.b_z)))
    return (1 - z) * s + z * _paper_g(x @ c.W_h.T + c.b_h)


def _ref_minlstm(c, x, s):
    f = 1 / (1 + torch.exp(-(x @ c.W_f.T + c.b_f)))
    i = 1 / (1 + torch.exp(-(x @ c.W_i.T + c.b_i)))
    return f / (f + i) * s + i / (f + i) * _paper_g(x @ c.W_h.T + c.b_h)


def _ref_indrnn(c, x, s):
    return c.activation.phi(x @ c.W_xh.T + c.u * s + c.b_h)


REFS = {"lru": _ref_lru, "mamba": _ref_mamba, "mingru": _ref_mingru, "minlstm": _ref_minlstm, "indrnn": _ref_indrnn}


@pytest.mark.parametrize("name", list(CELLS))
def test_step_against_the_papers_equations(name):
    cell = CELLS[name]
    x, s = _point(cell, seed=3)
    torch.testing.assert_close(cell.step(x, s), REFS[cell.kind](cell, x, s), **TOL)


def test_mamba_output_and_layout():
    cell = CELLS["mamba"]
    x, s = _point(cell, seed=4)
    Dd, N = cell.A_log.shape
    y = cell.output(s, x)
    for b in range(B):
        for d in range(Dd):
            ref = sum(float(cell.W_C[n] @ x[b]) * float(s[b, d * N + n]) for n in range(N))
            assert abs(float(y[b, d]) - ref) < 1e-12
    assert (cell.state_size, cell.input_size, cell.d_state, cell.h_size) == (Dd * N, Dd, N, Dd * N)


# ----- scans -----

@pytest.mark.parametrize("name", ["lru", "lru-near-1", "mamba", "mamba-wide-dt", "mingru", "minlstm"])
@pytest.mark.parametrize("start", ["zeros", "random"])
def test_scan_methods_against_unroll(name, start):
    cell = CELLS[name]
    g = _gen(8)
    x = torch.randn(60, B, cell.input_size, generator=g, dtype=F64) * 2
    s0 = None if start == "zeros" else -torch.rand(B, cell.state_size, generator=g, dtype=F64) * 3  # negative
    ref = unroll(cell, x, s0).states
    for method in (None, *cell.scan_methods):
        torch.testing.assert_close(cell.scan(x, s0, method), ref, **TOL)
    if s0 is not None:  # one start (S,) for the whole batch
        torch.testing.assert_close(cell.scan(x, s0[0]), unroll(cell, x, s0[0]).states, **TOL)


def test_scan_defaults_and_refusals():
    assert MinGRUCell.default_scan == MinLSTMCell.default_scan == "log"
    assert LRUCell.default_scan == MambaCell.default_scan == "associative"
    x = torch.zeros(5, 1, D, dtype=F64)
    with pytest.raises(InputError, match="expected one of associative, sequential, got 'log'"):
        CELLS["lru"].scan(x, method="log")  # b is complex: no log-space scan
    with pytest.raises(InputError, match="expected a cell with a linear recurrence"):
        CELLS["indrnn"].scan(x)
    with pytest.raises(InputError, match="expected one of"):
        CELLS["mingru"].scan(x, method="fast")
    with pytest.raises(InputError, match="expected finite numbers of shape"):
        CELLS["mingru"].scan(x, torch.zeros(2, 7, dtype=F64))


def test_transitions_are_the_steps():
    """s_t = a_t * s_{t-1} + b_t with transition(drive(x)) for any leading dimensions (T, B, .)."""
    for name in SCANNED:
        cell = CELLS[name]
        x, s = _point(cell, seed=9)
        a, b = cell.transition(cell.drive(x.unsqueeze(0)))
        if name == "lru":
            N = cell.nu_log.shape[0]
            assert a.dtype == torch.complex128 and a.shape == (1, B, N)
            h = torch.complex(s[:, :N], s[:, N:])
            new = a[0] * h + b[0]
            torch.testing.assert_close(torch.cat([new.real, new.imag], 1), cell.step(x, s), **TOL)
        else:
            assert a.shape == b.shape == (1, B, cell.state_size)
            torch.testing.assert_close(a[0] * s + b[0], cell.step(x, s), **TOL)


# ----- closed-form profiles and Lyapunov exponents -----

def _steps_above(log_a):
    """(B, T) max_i sum_{j=k+1}^{T} log_a[j-1, b, i] for k = 1..T, from log_a (T, B, S)."""
    tail = torch.flip(torch.cumsum(torch.flip(log_a, [0]), 0), [0])  # tail[k-1] = sum_{j=k}^{T}
    return torch.cat([tail[1:], torch.zeros_like(tail[:1])]).amax(-1).T


def test_lru_profile_closed_form():
    cell = _lru_with([0.95, 0.7, 0.4], [0.3, 1.1, 2.5], seed=2, D_=2)
    T = 40
    g = _gen(12)
    x = torch.randn(T, 2, 2, generator=g, dtype=F64)
    p = profile(cell, x, torch.randn(2, 6, generator=g, dtype=F64))
    ref = (T - torch.arange(1, T + 1, dtype=F64)) * math.log10(0.95)  # (T - k) log10 max|lambda|
    torch.testing.assert_close(p.per_sequence_spectral, ref.expand(2, T), rtol=0, atol=1e-9)
    torch.testing.assert_close(p.log10_spectral, ref, rtol=0, atol=1e-9)
    assert abs(cell.spectral_radius - 0.95) < 1e-15


@pytest.mark.parametrize("name", ["mamba", "mingru"])
def test_diagonal_profile_closed_form(name):
    """log10 ||ds_t/ds_k||_2 = max_i sum_{j=k+1}^{t} log10 a_j[i]: the largest summed log diagonal factor."""
    cell = CELLS[name]
    g = _gen(13)
    T = 40
    x = torch.randn(T, 2, cell.input_size, generator=g, dtype=F64) * 2
    p = profile(cell, x, torch.randn(2, cell.state_size, generator=g, dtype=F64))
    a, _ = cell.transition(cell.drive(x))  # (T, B, S) the diagonals
    torch.testing.assert_close(p.per_sequence_spectral, _steps_above(torch.log10(a)), rtol=0, atol=1e-9)


def test_lru_lyapunov_exponents_are_log_moduli():
    moduli = [0.9, 0.5, 0.2]
    cell = _lru_with(moduli, [0.7, 2.0, 4.0], seed=3, D_=1)
    ly = lyapunov(cell, torch.zeros(300, 1, 1, dtype=F64))  # autonomous: a random start, T // 10 warm-up
    ref = torch.log(torch.tensor(moduli, dtype=F64)).repeat_interleave(2)  # each twice: (Re, Im) of a unit
    torch.testing.assert_close(ly.exponents, ref, rtol=0, atol=1e-9)


# ----- initialisations -----

def test_lru_random_init():
    cell = LRUCell.random(400, 4, seed=5, r_min=0.4, r_max=0.9, max_phase=3.14)
    mod = cell.lam.abs()
    assert bool(((mod >= 0.4) & (mod <= 0.9)).all())
    torch.testing.assert_close(torch.exp(cell.gamma_log), torch.sqrt(1 - mod ** 2), **TOL)
    theta = torch.exp(cell.theta_log)
    assert bool(((theta >= 0) & (theta <= 3.14)).all())
    assert abs(float((mod ** 2).mean()) - (0.4 ** 2 + 0.9 ** 2) / 2) < 0.02  # |lambda|^2 uniform on the ring
    assert abs(float(cell.B_re.std()) - 1 / math.sqrt(8)) < 0.02  # N(0, 1/(2D))
    assert cell.spectral_radius == pytest.approx(float(mod.max()), abs=1e-15)
    default = LRUCell.random(300, 1, seed=0)  # r_min 0, r_max 1, max_phase 6.28: the paper's
    assert bool((default.lam.abs() < 1).all()) and float(torch.exp(default.theta_log).max()) <= 6.28


def test_mamba_random_init():
    for dt_min, dt_max in ((0.001, 0.1), (0.01, 0.5)):
        cell = MambaCell.random(4, 64, seed=1, dt_min=dt_min, dt_max=dt_max)
        dt = tf.softplus(cell.b_delta)
        assert bool(((dt >= dt_min * (1 - 1e-12)) & (dt <= dt_max * (1 + 1e-12))).all())
        A = -torch.exp(cell.A_log)
        torch.testing.assert_close(A, -torch.arange(1, 5, dtype=F64).expand(64, 4), **TOL)
        assert float(cell.W_B.abs().max()) <= 1 / 8 and float(cell.W_delta.abs().max()) <= 1 / 8  # U(+-1/sqrt(D))


def test_other_random_inits_and_determinism():
    ind = IndRNNCell.random(200, 4, seed=0, u_max=0.8, activation="tanh")
    assert bool(((ind.u >= 0) & (ind.u < 0.8)).all()) and bool((ind.b_h == 0).all()) and ind.activation.name == "tanh"
    assert IndRNNCell.random(3, 2).activation.name == "relu"
    gru = MinGRUCell.random(50, 16, seed=0)
    assert float(gru.W_z.abs().max()) <= 0.25 and float(gru.b_h.abs().max()) <= 0.25  # nn.Linear U(+-1/sqrt(16))
    for cls in (LRUCell, MambaCell, MinGRUCell, MinLSTMCell, IndRNNCell):
        one, two = cls.random(3, 2, seed=4), cls.random(3, 2, seed=4)
        assert all(np.array_equal(v, two.to_arrays()[k]) for k, v in one.to_arrays().items())
        assert cls.random(3, 2, seed=4, dtype=torch.float32).dtype == torch.float32


@pytest.mark.parametrize("cls, hidden, options", [
    (LRUCell, 3, {"r_min": -0.1}), (LRUCell, 3, {"r_max": 1.5}), (LRUCell, 3, {"r_min": 0.8, "r_max": 0.5}),
    (LRUCell, 3, {"max_phase": 0.0}), (LRUCell, 3, {"r_min": float("nan")}), (LRUCell, 3, {"rmax": 0.9}),
    (MambaCell, 3, {"dt_min": 0.0}), (MambaCell, 3, {"dt_min": 0.1, "dt_max": 0.01}), (MambaCell, 3, {"dt_max": "big"}),
    (IndRNNCell, 3, {"u_max": -1.0}), (IndRNNCell, 3, {"activation": "softsign"}), (MinGRUCell, 3, {"r_min": 0.1}),
    (MinLSTMCell, 0, {}), (LRUCell, True, {}),
])
def test_bad_options_say_expected(cls, hidden, options):
    with pytest.raises(InputError, match="expected"):
        cls.random(hidden, 2, **options)


# ----- arrays -----

@pytest.mark.parametrize("name", list(CELLS))
def test_from_arrays_round_trip(name):
    cell = CELLS[name]
    arrays = cell.to_arrays()
    assert tuple(arrays) == cell.array_names()
    extra = {**arrays, "W_hy": np.zeros((2, cell.state_size)), "b_y": np.zeros(2)}  # a read-out: passed over
    kw = {"activation": cell.activation} if cell.kind == "indrnn" else {}
    again = type(cell).from_arrays(extra, **kw)
    for k, v in arrays.items():
        assert np.array_equal(again.to_arrays()[k], v)
    x, s = _point(cell, seed=5)
    assert torch.equal(again.step(x, s), cell.step(x, s))
    assert type(cell).from_arrays(arrays, dtype=torch.float32, **kw).dtype == torch.float32
    with pytest.raises(InputError, match=f"expected .*missing"):
        type(cell).from_arrays({k: v for k, v in list(arrays.items())[1:]}, **kw)


def test_field_checks_say_expected():
    lru = CELLS["lru"]
    cases = [
        lambda: LRUCell(lru.nu_log, lru.theta_log[:2], lru.gamma_log, lru.B_re, lru.B_im),  # (N,) mismatch
        lambda: LRUCell(lru.nu_log, lru.theta_log, lru.gamma_log, lru.B_re, lru.B_im[:, :1]),  # (N, D) mismatch
        lambda: LRUCell(lru.nu_log.float(), lru.theta_log, lru.gamma_log, lru.B_re, lru.B_im),  # two dtypes
        lambda: LRUCell(lru.nu_log * float("nan"), lru.theta_log, lru.gamma_log, lru.B_re, lru.B_im),
        lambda: MambaCell.from_arrays({**CELLS["mamba"].to_arrays(), "W_delta": np.zeros((3, 2))}),
        lambda: MinGRUCell(torch.zeros(2, 3), torch.zeros(2), torch.zeros(2, 3), torch.zeros(3)),
        lambda: IndRNNCell(torch.zeros(2, 1), torch.zeros(2, 3), torch.zeros(2)),
        lambda: IndRNNCell(torch.zeros(2, dtype=torch.int64), torch.zeros(2, 3), torch.zeros(2)),
    ]
    for case in cases:
        with pytest.raises(InputError, match="expected"):
            case()


def test_sizes_and_labels():
    for name, cell in CELLS.items():
        assert cell.h_size == cell.state_size and cell.kind in name and isinstance(cell.state_label, str)
    assert CELLS["lru"].state_size == 2 * H and CELLS["lru"].state_label == "(Re h, Im h)"
    x, s = _point(CELLS["lru"])
    assert CELLS["lru"].forward(x, s)[1].shape == (B, 0)
    assert CELLS["minlstm"].forward(*_point(CELLS["minlstm"]))[1].shape == (B, 3 * H)
