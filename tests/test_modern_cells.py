"""slstm_cell, oscillator_cells, orthogonal_cells against independent references: torch.func.jacrev / torch.func.vjp
of the step, the papers' equations written out here (sLSTM per head and unstabilised, coRNN's two update lines as
its code's one linear layer, expRNN's rotations), closed forms (orthogonal products, coRNN's linear map). float64."""

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnscope.core.errors import InputError
from rnnscope.core.orthogonal_cells import ExpRNNCell, skew_blocks
from rnnscope.core.oscillator_cells import CoRNNCell
from rnnscope.core.slstm_cell import SLSTMCell
from rnnscope.core.unroll import unroll
from rnnscope.gradients.adjoint import adjoints
from rnnscope.gradients.profile import profile

F64 = torch.float64
TOL = dict(rtol=1e-12, atol=1e-12)
B, D = 3, 3


def _randn(gen, *shape, scale=1.0):
    return torch.randn(*shape, generator=gen, dtype=F64) * scale


def _slstm(forget="sigmoid", heads=2, H=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    E = H // heads
    return SLSTMCell(_randn(g, 4 * H, D, scale=0.7), _randn(g, 4, heads, E, E, scale=0.6), _randn(g, 4 * H, scale=0.5),
                     forget)


def _cornn(seed=0, H=4, dt=0.3):
    g = torch.Generator().manual_seed(seed)
    return CoRNNCell(_randn(g, H, H, scale=0.8), _randn(g, H, H, scale=0.8), _randn(g, H, D, scale=0.7),
                     _randn(g, H, scale=0.4), dt=dt, gamma=1.3, epsilon=0.9)


def _exprnn(act="tanh", seed=0, H=5):
    g = torch.Generator().manual_seed(seed)
    raw = _randn(g, H, H)
    return ExpRNNCell.from_skew(raw - raw.T, _randn(g, H, D, scale=0.7), _randn(g, H, scale=0.3), act)


def _slstm_state(cell, gen, m_shift=0.0, m_scale=1.0):
    H = cell.hidden_size
    h, c = _randn(gen, B, H, scale=0.5), _randn(gen, B, H)
    n = torch.exp(_randn(gen, B, H, scale=0.5))  # n > 0
    m = m_shift + _randn(gen, B, H, scale=m_scale)
    return torch.cat([h, c, n, m], 1)


def _inputs(cell, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = _randn(g, B, D)
    if isinstance(cell, SLSTMCell):
        return x, _slstm_state(cell, g, m_scale=2.0)
    return x, _randn(g, B, cell.state_size, scale=0.8)


def _branch(cell, x, s):
    """sel = [log f_t + m_{t-1} >= it] from the equations, (B, H)."""
    H = cell.hidden_size
    a = cell.forward(x, s)[1]
    ft, it = a[:, 2 * H:3 * H], a[:, H:2 * H]
    logf = torch.nn.functional.logsigmoid(ft) if cell.forget == "sigmoid" else ft
    return logf + s[:, 3 * H:] >= it


def _cells():
    return [pytest.param(_slstm("sigmoid"), id="slstm-sigmoid"), pytest.param(_slstm("exp", heads=1), id="slstm-exp"),
            pytest.param(_cornn(), id="cornn"), pytest.param(_exprnn("tanh"), id="exprnn-tanh"),
            pytest.param(_exprnn("sigmoid"), id="exprnn-sigmoid")]


def _jacrev(cell, x, s):
    one = lambda xb, sb: cell.step(xb.unsqueeze(0), sb.unsqueeze(0)).squeeze(0)  # noqa: E731
    return torch.func.vmap(torch.func.jacrev(one, argnums=1))(x, s)


# ------------------------------------------------------------------------------------------- Jacobians and VJPs

@pytest.mark.parametrize("cell", _cells())
def test_jacobian_and_vjp_equal_torch_func(cell):
    x, s = _inputs(cell)
    if isinstance(cell, SLSTMCell):
        sel = _branch(cell, x, s)
        assert sel.any() and (~sel).any()  # both branches of the max, in one batch
    J = cell.jacobian(x, s)
    assert J.shape == (B, cell.state_size, cell.state_size) and J.dtype == F64
    ref = _jacrev(cell, x, s)
    assert ref.abs().max() > 0.05
    torch.testing.assert_close(J, ref, **TOL)
    gv = _randn(torch.Generator().manual_seed(9), B, cell.state_size)
    _, pull = torch.func.vjp(lambda sv: cell.step(x, sv), s)
    (vref,) = pull(gv)
    torch.testing.assert_close(cell.vjp(x, s, gv), vref, **TOL)
    torch.testing.assert_close(cell.vjp(x, s, gv, cell.forward(x, s)[1]), vref, **TOL)  # with the trace's a_t
    # dL/du_t, the adjoint of the drive: torch.func.vjp of forward_driven in u
    u = cell.drive(x)
    _, pull_u = torch.func.vjp(lambda uv: cell.forward_driven(uv, s)[0], u)
    out = torch.empty_like(u)
    back, du = cell.vjp_apply(cell.vjp_factors(x, s), gv, out=out)
    torch.testing.assert_close(du, pull_u(gv)[0], **TOL)
    torch.testing.assert_close(out, du, rtol=0, atol=0)
    torch.testing.assert_close(back, vref, **TOL)


@pytest.mark.parametrize("forget", ["sigmoid", "exp"])
@pytest.mark.parametrize("branch", ["forget", "input"])
def test_slstm_jacobian_when_one_branch_of_the_max_wins(forget, branch):
    cell = _slstm(forget, heads=2, seed=3)
    g = torch.Generator().manual_seed(4)
    x = _randn(g, B, D)
    s = _slstm_state(cell, g, m_shift=30.0 if branch == "forget" else -30.0)
    sel = _branch(cell, x, s)
    assert bool(sel.all()) if branch == "forget" else not bool(sel.any())
    torch.testing.assert_close(cell.jacobian(x, s), _jacrev(cell, x, s), **TOL)
    gv = _randn(g, B, cell.state_size)
    _, pull = torch.func.vjp(lambda sv: cell.step(x, sv), s)
    torch.testing.assert_close(cell.vjp(x, s, gv), pull(gv)[0], **TOL)


@pytest.mark.parametrize("cell", _cells())
def test_factored_vjp_over_a_whole_trace_and_the_adjoint_sweep(cell):
    T = 5
    g = torch.Generator().manual_seed(21)
    x = _randn(g, T, B, D)
    s0 = _inputs(cell, seed=22)[1]
    tr = unroll(cell, x, s0)
    gv = _randn(g, T, B, cell.state_size)
    F = cell.vjp_factors(tr.inputs, tr.states[:-1], tr.preacts, tr.states[1:])  # every step at once (T, B, .)
    back, du = cell.vjp_apply(F, gv)
    for k in range(T):
        torch.testing.assert_close(back[k], cell.vjp(tr.inputs[k], tr.states[k], gv[k]), **TOL)
    # adjoints (log-domain sweep of cell.vjp) against autograd through the unrolled steps: L = sum of h_T
    s_all = [s0.clone().requires_grad_(True)]
    for k in range(T):
        s_all.append(cell.step(x[k], s_all[-1]))
        s_all[-1].retain_grad()
    s_all[-1][:, :cell.h_size].sum().backward()
    adj = adjoints(cell, tr)
    got = torch.exp(adj.scale).unsqueeze(-1) * adj.scaled  # (T+1, B, S) dL/ds_k
    torch.testing.assert_close(got[0], s_all[0].grad, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(got[2], s_all[2].grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("cell", [_slstm(), _cornn()], ids=["slstm", "cornn"])
def test_param_grads_equal_autograd(cell):
    x, s = _inputs(cell, seed=31)
    gv = _randn(torch.Generator().manual_seed(32), B, cell.state_size)
    names = {"slstm": ("W", "R", "b"), "cornn": ("W", "W_z", "V", "b")}[cell.kind]
    params = {n: getattr(cell, n).clone().requires_grad_(True) for n in names}
    c2 = dataclasses.replace(cell, **params)
    refs = torch.autograd.grad(c2.step(x, s), list(params.values()), grad_outputs=gv)
    _, du = cell.vjp_apply(cell.vjp_factors(x, s), gv)
    got = cell.param_grads(x, s, cell.forward(x, s)[1], du)
    for n, r in zip(names, refs):
        torch.testing.assert_close(got[n], r, **TOL)


# ------------------------------------------------------------------------------------------- steps vs the papers

def _slstm_unstabilised(W, R, b, forget, xs, h, c, n):
    """The sLSTM written out from the paper's equations, per head, no stabiliser: the h_t of every step."""
    H = b.shape[0] // 4
    K, E = R.shape[1], R.shape[2]
    hs = []
    for x in xs:
        pre = x @ W.T + b  # (B, 4H) gate blocks z, i, f, o
        for gate in range(4):
            for k in range(K):
                lo = gate * H + k * E
                pre[:, lo:lo + E] += h[:, k * E:(k + 1) * E] @ R[gate, k].T  # head k mixes its own units only
        zt, it, ft, ot = pre[:, :H], pre[:, H:2 * H], pre[:, 2 * H:3 * H], pre[:, 3 * H:]
        f = torch.sigmoid(ft) if forget == "sigmoid" else torch.exp(ft)
        i = torch.exp(it)
        c = f * c + i * torch.tanh(zt)
        n = f * n + i
        h = torch.sigmoid(ot) * c / n
        hs.append(h)
    return torch.stack(hs), c, n


@pytest.mark.parametrize("forget", ["sigmoid", "exp"])
@pytest.mark.parametrize("m0", [0.0, 0.7])
def test_slstm_equals_the_unstabilised_recurrence(forget, m0):
    cell = _slstm(forget, heads=2, H=6, seed=5)
    H, T = 6, 7
    g = torch.Generator().manual_seed(6)
    xs = _randn(g, T, B, D)
    h0, c0, n0 = _randn(g, B, H, scale=0.5), _randn(g, B, H), torch.exp(_randn(g, B, H, scale=0.3))
    tr = unroll(cell, xs, torch.cat([h0, c0, n0, torch.full((B, H), m0, dtype=F64)], 1))
    # matching starts: the unstabilised c~_0 = exp(m_0) c_0, n~_0 = exp(m_0) n_0
    hs, c_ref, n_ref = _slstm_unstabilised(cell.W, cell.R, cell.b, forget, xs, h0, c0 * math.exp(m0),
                                           n0 * math.exp(m0))
    torch.testing.assert_close(tr.states[1:, :, :H], hs, **TOL)
    m_T = tr.states[-1, :, 3 * H:]
    torch.testing.assert_close(torch.exp(m_T) * tr.states[-1, :, H:2 * H], c_ref, rtol=1e-11, atol=1e-12)
    torch.testing.assert_close(torch.exp(m_T) * tr.states[-1, :, 2 * H:3 * H], n_ref, rtol=1e-11, atol=1e-12)
    sel = torch.stack([_branch(cell, xs[k], tr.states[k]) for k in range(T)])
    assert sel.any() and (~sel).any()


def test_slstm_from_the_zero_state_divides_safely():
    cell = SLSTMCell.random(8, D, seed=1, recurrent_init="standard")
    x = _randn(torch.Generator().manual_seed(2), 4, B, D)
    tr = unroll(cell, x)  # s_0 = 0: n_0 = 0
    n = tr.states[1:, :, 16:24]
    assert bool((n > 0).all()) and bool(torch.isfinite(tr.states).all())
    a = tr.preacts[0]
    h1 = torch.sigmoid(a[:, 24:]) * torch.tanh(a[:, :8])  # h_1 = o_1 z_1 from c_0 = n_0 = 0
    torch.testing.assert_close(tr.states[1, :, :8], h1, **TOL)


def test_cornn_step_equals_the_papers_code():
    cell = _cornn(seed=7)
    x, s = _inputs(cell, seed=8)
    H = cell.hidden_size
    y, z = s[:, :H], s[:, H:]
    # tk-rusch/coRNN: one nn.Linear over cat(x, hz, hy), then the two update lines
    lin = torch.nn.functional.linear(torch.cat([x, z, y], 1), torch.cat([cell.V, cell.W_z, cell.W], 1), cell.b)
    z1 = z + cell.dt * (torch.tanh(lin) - cell.gamma * y - cell.epsilon * z)
    y1 = y + cell.dt * z1
    torch.testing.assert_close(cell.step(x, s), torch.cat([y1, z1], 1), **TOL)


def _expm_taylor(A, squarings=6, terms=30):
    X = A / 2 ** squarings
    E, term = torch.eye(A.shape[0], dtype=F64), torch.eye(A.shape[0], dtype=F64)
    for k in range(1, terms):
        term = term @ X / k
        E = E + term
    for _ in range(squarings):
        E = E @ E
    return E


def test_exprnn_recurrent_matrix_is_the_orthogonal_exponential():
    cell = _exprnn(seed=11, H=7)
    W, A = cell.W_hh, cell.A
    torch.testing.assert_close(W.T @ W, torch.eye(7, dtype=F64), rtol=0, atol=1e-12)
    torch.testing.assert_close(W, _expm_taylor(A), rtol=0, atol=1e-12)
    lam, U = torch.linalg.eigh(1j * A.to(torch.complex128))  # iA is Hermitian: A = -i U diag(lam) U^H
    E = (U * torch.exp(-1j * lam)) @ U.conj().T
    torch.testing.assert_close(W, E.real, rtol=0, atol=1e-12)
    assert float(E.imag.abs().max()) < 1e-12
    x, s = _inputs(cell, seed=12)
    torch.testing.assert_close(cell.step(x, s), torch.tanh(s @ W.T + x @ cell.W_xh.T + cell.b_h), **TOL)


# ------------------------------------------------------------------------------------------- closed forms

def test_exprnn_identity_products_keep_norm_one():
    cell = ExpRNNCell.random(6, 2, seed=3, activation="identity")
    x = _randn(torch.Generator().manual_seed(4), 40, 2, 2)
    p = profile(cell, x)
    assert p.per_sequence_spectral.shape == (2, 40)
    assert float(p.per_sequence_spectral.abs().max()) < 1e-10  # log10 ||W_hh^(T-k)||_2 = 0
    assert abs(p.sigma_max - 1.0) < 1e-12 and abs(float(torch.linalg.svdvals(cell.W_hh)[0]) - 1.0) < 1e-12


def test_cornn_linear_case_is_powers_of_its_map():
    H, T = 3, 30
    dt, gamma, eps = 0.1, 2.0, 3.0
    g = torch.Generator().manual_seed(5)
    Z = torch.zeros(H, H, dtype=F64)
    cell = CoRNNCell(Z, Z.clone(), _randn(g, H, 2), _randn(g, H), dt=dt, gamma=gamma, epsilon=eps)
    I = torch.eye(H, dtype=F64)
    # z_t = (1 - dt eps) z - dt gamma y + dt tanh(u);  y_t = y + dt z_t = (1 - dt^2 gamma) y + dt (1 - dt eps) z + ...
    M = torch.cat([torch.cat([(1 - dt * dt * gamma) * I, dt * (1 - dt * eps) * I], 1),
                   torch.cat([-dt * gamma * I, (1 - dt * eps) * I], 1)], 0)
    torch.testing.assert_close(cell.linear_map(), M, **TOL)
    x = _randn(g, T, 2, 2)
    torch.testing.assert_close(cell.jacobian(x[0], _randn(g, 2, 2 * H)), M.expand(2, -1, -1), **TOL)
    p = profile(cell, x)
    ref = torch.tensor([math.log10(float(torch.linalg.matrix_norm(torch.linalg.matrix_power(M, T - k), ord=2)))
                        for k in range(1, T + 1)], dtype=F64)
    torch.testing.assert_close(p.per_sequence_spectral, ref.expand(2, -1), rtol=0, atol=1e-10)
    assert ref[0] < -0.1  # damped: the product shrinks


def test_cornn_products_stay_under_the_derived_bound():
    cell = _cornn(seed=17, H=4, dt=0.2)
    T = 25
    tr = unroll(cell, _randn(torch.Generator().manual_seed(18), T, B, D), _inputs(cell, seed=19)[1])
    q = cell.jacobian_bound()
    W_inf = float(cell.W.abs().sum(1).max())
    beta = abs(1 - 0.2 * 0.9) + 0.2 * (W_inf + float(cell.W_z.abs().sum(1).max()) + 1.3)
    assert q == pytest.approx(max(beta, 1 + 0.2 * beta), rel=1e-15)
    P = torch.eye(8, dtype=F64).expand(B, -1, -1)
    for k in range(T, 0, -1):  # ds_T/ds_{k-1} = J_T ... J_k
        P = P @ cell.jacobian(tr.inputs[k - 1], tr.states[k - 1])
        norm = torch.linalg.matrix_norm(P, ord=float("inf"))
        assert bool((norm <= q ** (T - k + 1) * (1 + 1e-12)).all())


# ------------------------------------------------------------------------------------------- inits, options, arrays

def test_slstm_random_is_the_official_init():
    cell = SLSTMCell.random(8, 3, seed=0)
    assert (cell.heads, cell.hidden_size, cell.forget) == (4, 8, "sigmoid")
    assert cell.R.shape == (4, 4, 2, 2) and float(cell.R.abs().max()) == 0  # recurrent_weight_init "zeros"
    assert float(cell.W.abs().max()) <= 1 / math.sqrt(3) and float(cell.W.abs().max()) > 0.3
    b = cell.b.reshape(4, 4, 2)  # (gate z i f o, head, unit)
    torch.testing.assert_close(b[2], torch.tensor([[5.0, -7.0]] * 4, dtype=F64), **TOL)  # 5 - 12 (j/(E-1))^0.3
    assert float(b[[0, 1, 3]].abs().max()) == 0
    six = SLSTMCell.random(6, 2, seed=0, bias_init="small_init", recurrent_init="standard", heads=3, forget="exp")
    assert (six.heads, six.forget) == (3, "exp") and float(six.R.abs().max()) <= 1 / math.sqrt(6)
    assert float(six.R.abs().min()) > 0
    torch.testing.assert_close(six.b.reshape(4, 3, 2)[2], torch.tensor([[3.0, 6.0]] * 3, dtype=F64), **TOL)
    one = SLSTMCell.random(6, 2, seed=0)
    assert one.heads == 1
    pl = one.b.reshape(4, 6)[2]
    torch.testing.assert_close(pl, 5 - 12 * (torch.arange(6, dtype=F64) / 5) ** 0.3, **TOL)


def test_cornn_random_is_the_papers_code_init():
    cell = CoRNNCell.random(5, 2, seed=0)
    bound = 1 / math.sqrt(2 + 2 * 5)  # nn.Linear(D + 2H, H)
    for t in (cell.W, cell.W_z, cell.V, cell.b):
        assert float(t.abs().max()) <= bound
    assert float(torch.cat([cell.W.flatten(), cell.W_z.flatten(), cell.V.flatten()]).abs().max()) > 0.8 * bound
    assert (cell.dt, cell.gamma, cell.epsilon) == (0.042, 2.7, 4.7)
    other = CoRNNCell.random(5, 2, seed=0, dt=0.1, gamma=1, epsilon=2.5)
    assert (other.dt, other.gamma, other.epsilon) == (0.1, 1.0, 2.5)
    assert CoRNNCell.random(5, 2, seed=1).W.ne(cell.W).any()


@pytest.mark.parametrize("init", ["henaff", "cayley"])
def test_exprnn_random_is_block_diagonal_skew(init):
    H = 7
    cell = ExpRNNCell.random(H, 2, seed=2, skew_init=init)
    A = cell.A
    assert float((A + A.T).abs().max()) == 0
    s = A[torch.arange(0, H - 1, 2), torch.arange(1, H, 2)]  # the blocks' s
    torch.testing.assert_close(A, skew_blocks(s, H), rtol=0, atol=0)  # nothing off the 2x2 blocks
    assert float(A[-1].abs().max()) == 0 and float(A[:, -1].abs().max()) == 0  # odd H: the last unit alone
    if init == "henaff":
        assert float(s.abs().max()) <= math.pi and (s > 0).any() and (s < 0).any()
    else:
        assert float(s.max()) <= 0 and float(s.min()) >= -1  # -tan(t/2), t in [0, pi/2]
    c, sn = torch.cos(s), torch.sin(s)
    for k in range(H // 2):  # expm([[0, s], [-s, 0]]) = [[cos s, sin s], [-sin s, cos s]]
        blk = cell.W_hh[2 * k:2 * k + 2, 2 * k:2 * k + 2]
        torch.testing.assert_close(blk, torch.stack([torch.stack([c[k], sn[k]]), torch.stack([-sn[k], c[k]])]),
                                   rtol=0, atol=1e-13)
    assert float(cell.W_hh[-1, -1]) == pytest.approx(1.0, abs=1e-15)
    assert float(cell.b_h.abs().max()) == 0 and cell.W_xh.shape == (H, 2)


@pytest.mark.parametrize("build, word", [
    (lambda: SLSTMCell.random(6, 2, heads=4), "heads"),
    (lambda: SLSTMCell.random(6, 2, heads=0), "heads"),
    (lambda: SLSTMCell.random(6, 2, forget="relu"), "forget"),
    (lambda: SLSTMCell.random(6, 2, bias_init="ones"), "bias_init"),
    (lambda: SLSTMCell.random(6, 2, recurrent_init="eye"), "recurrent_init"),
    (lambda: SLSTMCell.random(6, 2, gain=2.0), "options"),
    (lambda: SLSTMCell.random(0, 2), "hidden"),
    (lambda: CoRNNCell.random(4, 1, dt=0.0), "dt"),
    (lambda: CoRNNCell.random(4, 1, gamma=-1.0), "gamma"),
    (lambda: CoRNNCell.random(4, 1, epsilon=float("nan")), "epsilon"),
    (lambda: CoRNNCell.random(4, 1, dt=True), "dt"),
    (lambda: CoRNNCell.random(4, 1, tau=1.0), "options"),
    (lambda: ExpRNNCell.random(4, 1, skew_init="haar"), "skew_init"),
    (lambda: ExpRNNCell.random(4, 1, activation="modrelu"), "activation"),
    (lambda: ExpRNNCell.random(4, 1, gain=1.0), "options"),
    (lambda: SLSTMCell(torch.zeros(16, 2, dtype=F64), torch.zeros(4, 2, 2, 3, dtype=F64), torch.zeros(16, dtype=F64)),
     "R"),
    (lambda: SLSTMCell(torch.zeros(12, 2, dtype=F64), torch.zeros(4, 2, 2, 2, dtype=F64), torch.zeros(16, dtype=F64)),
     "W"),
    (lambda: CoRNNCell(torch.zeros(3, 3, dtype=F64), torch.zeros(3, 2, dtype=F64), torch.zeros(3, 1, dtype=F64),
                       torch.zeros(3, dtype=F64)), "W_z"),
    (lambda: ExpRNNCell.from_skew(torch.ones(3, 3, dtype=F64), torch.zeros(3, 1, dtype=F64),
                                  torch.zeros(3, dtype=F64)), "skew"),
    (lambda: ExpRNNCell(2 * torch.eye(3, dtype=F64), torch.zeros(3, 1, dtype=F64), torch.zeros(3, dtype=F64), "tanh",
                        torch.zeros(3, 3, dtype=F64)), "orthogonal"),
    (lambda: ExpRNNCell(torch.eye(3, dtype=F64).flip(0), torch.zeros(3, 1, dtype=F64), torch.zeros(3, dtype=F64),
                        "tanh", torch.zeros(3, 3, dtype=F64)), "matrix_exp"),
    (lambda: ExpRNNCell(torch.eye(3, dtype=F64), torch.zeros(3, 1, dtype=F64), torch.zeros(3, dtype=F64)), "A"),
])
def test_bad_options_and_weights_raise_input_error(build, word):
    with pytest.raises(InputError, match="expected") as e:
        build()
    assert word in str(e.value)


@pytest.mark.parametrize("cell", _cells())
def test_from_arrays_round_trip(cell):
    names = type(cell).array_names()
    arrays = {n: np.asarray(getattr(cell, n).numpy() if isinstance(getattr(cell, n), torch.Tensor)
                            else getattr(cell, n)) for n in names}  # the fields by name, as a weights file has them
    kw = {"forget": cell.forget} if isinstance(cell, SLSTMCell) else {}
    kw = {"activation": cell.activation} if isinstance(cell, ExpRNNCell) else kw
    back = type(cell).from_arrays(arrays, **kw)
    again = type(cell).from_arrays(back.to_arrays(), **kw)
    for c in (back, again):
        for f in dataclasses.fields(cell):
            a, b = getattr(cell, f.name), getattr(c, f.name)
            if isinstance(a, torch.Tensor):
                assert torch.equal(a, b), f.name
            else:
                assert a == b, f.name
    f32 = type(cell).from_arrays(arrays, dtype=torch.float32, **kw)
    assert f32.dtype == torch.float32 and f32.step(*(t.float() for t in _inputs(cell))).dtype == torch.float32
    with pytest.raises(InputError, match="expected"):
        type(cell).from_arrays({n: v for n, v in arrays.items() if n != names[0]}, **kw)


def test_exprnn_from_arrays_checks_a_given_W_hh():
    cell = _exprnn(seed=13, H=4)
    arrays = {**cell.to_arrays(), "W_hh": cell.W_hh.numpy()}
    assert torch.equal(ExpRNNCell.from_arrays(arrays).W_hh, cell.W_hh)
    with pytest.raises(InputError, match="matrix_exp"):
        ExpRNNCell.from_arrays({**arrays, "W_hh": cell.W_hh.T.numpy()})


def test_sizes_labels_and_module_lengths():
    s, c, e = _slstm(H=4), _cornn(H=4), _exprnn(H=5)
    assert (s.kind, s.state_size, s.h_size, s.input_size, s.state_label) == ("slstm", 16, 4, D, "(h, c, n, m)")
    assert (c.kind, c.state_size, c.h_size, c.input_size, c.state_label) == ("cornn", 8, 4, D, "(y, z)")
    assert (e.kind, e.state_size, e.h_size, e.input_size, e.state_label) == ("exprnn", 5, 5, D, "h")
    assert s.forward(*_inputs(s))[1].shape == (B, 16) and c.forward(*_inputs(c))[1].shape == (B, 4)
    core = Path(__file__).resolve().parents[1] / "src" / "rnnscope" / "core"
    for name in ("slstm_cell.py", "oscillator_cells.py", "orthogonal_cells.py"):
        assert len((core / name).read_text().splitlines()) <= 600, name
