"""cells.py against independent references: torch.func.jacrev (vmapped), torch.autograd, torch.nn.LSTMCell /
torch.nn.GRUCell, and a hand-written closed-form Jacobian for a user step function. float64 unless stated."""

import pytest
import torch

import rnnscope as rs

F64 = torch.float64
ACTS = ["sigmoid", "tanh", "relu", "identity"]
B, S, D, H = 3, 4, 3, 3
TOL = dict(rtol=1e-12, atol=1e-12)


def _randn(gen, *shape, scale=1.0, dtype=F64):
    return (torch.randn(*shape, generator=gen, dtype=F64) * scale).to(dtype)


def _vanilla(form, act, seed=0, dtype=F64):
    g = torch.Generator().manual_seed(seed)
    cls = rs.ElmanCell if form == "elman" else rs.PalCell
    return cls(_randn(g, S, S, scale=0.7, dtype=dtype), _randn(g, S, D, scale=0.6, dtype=dtype),
               _randn(g, S, scale=0.4, dtype=dtype), act)


def _gated(kind, seed=0):
    g = torch.Generator().manual_seed(seed)
    G = 4 if kind == "lstm" else 3
    cls = rs.LSTMCell if kind == "lstm" else rs.GRUCell
    return cls(_randn(g, G * H, D, scale=0.6), _randn(g, G * H, H, scale=0.7), _randn(g, G * H, scale=0.4),
               _randn(g, G * H, scale=0.4))


P = 2  # projection size of the projected LSTM


def _proj_lstm(seed=0):
    g = torch.Generator().manual_seed(seed)
    return rs.ProjLSTMCell(_randn(g, 4 * H, D, scale=0.6), _randn(g, 4 * H, P, scale=0.9), _randn(g, 4 * H, scale=0.4),
                           _randn(g, 4 * H, scale=0.4), W_hr=_randn(g, P, H, scale=0.9))


# a user step function with its Jacobian written out by hand (the closed-form reference)
_gf = torch.Generator().manual_seed(7)
_W, _U, _V = _randn(_gf, S, S, scale=0.7), _randn(_gf, S, D, scale=0.6), _randn(_gf, S, S, scale=0.5)


def _user_step(x, h):  # x (D,), h (S,) -> (S,)
    return torch.tanh(_W @ h + _U @ x) + 0.5 * h * torch.sigmoid(_V @ h)


def _user_jacobian(x, h):  # (B, D), (B, S) -> (B, S, S), closed form
    t = torch.tanh(h @ _W.T + x @ _U.T)  # (B, S)
    sg = torch.sigmoid(h @ _V.T)  # (B, S)
    return ((1 - t * t).unsqueeze(-1) * _W + 0.5 * torch.diag_embed(sg)
            + (0.5 * h * sg * (1 - sg)).unsqueeze(-1) * _V)


def _function_cell():
    return rs.FunctionCell(_user_step, state_size=S, input_size=D)


def _all_cells():
    cells = [pytest.param(_vanilla(f, a), id=f"{f}-{a}") for f in ("elman", "pal") for a in ACTS]
    cells += [pytest.param(_gated("lstm"), id="lstm"), pytest.param(_gated("gru"), id="gru"),
              pytest.param(_proj_lstm(), id="lstm-proj"), pytest.param(_function_cell(), id="function")]
    return cells


def _inputs(cell, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = _randn(g, B, cell.input_size)
    s = _randn(g, B, cell.state_size, scale=0.8)
    return x, s


def _jacrev_reference(cell, x, s):
    """torch.func.jacrev of the single-example step, vmapped over the batch: (B, S, S)."""
    one = lambda xb, sb: cell.step(xb.unsqueeze(0), sb.unsqueeze(0)).squeeze(0)  # noqa: E731
    return torch.func.vmap(torch.func.jacrev(one, argnums=1))(x, s)


@pytest.mark.parametrize("cell", _all_cells())
def test_jacobian_equals_jacrev(cell):
    x, s = _inputs(cell)
    if isinstance(cell, rs.ElmanCell) and cell.activation.name == "relu":
        a = cell.preactivation(x, s)
        assert a.abs().min() > 1e-3 and (a > 0).any() and (a < 0).any()  # both branches, no kink
    if isinstance(cell, rs.PalCell) and cell.activation.name == "relu":
        assert s.abs().min() > 1e-3 and (s > 0).any() and (s < 0).any()
    J = cell.jacobian(x, s)
    assert J.shape == (B, cell.state_size, cell.state_size) and J.dtype == F64
    ref = _jacrev_reference(cell, x, s)
    assert ref.abs().max() > 0.05  # non-trivial reference
    torch.testing.assert_close(J, ref, **TOL)


@pytest.mark.parametrize("cell", _all_cells())
def test_jacobian_equals_full_batch_autograd(cell):
    # a second reference that knows nothing of vmap: the (B S) x (B S) Jacobian of the batched step,
    # whose diagonal blocks are the per-example Jacobians and whose off-diagonal blocks are zero
    x, s = _inputs(cell, seed=2)
    full = torch.autograd.functional.jacobian(lambda sv: cell.step(x, sv), s)  # (B, S, B, S)
    idx = torch.arange(B)
    torch.testing.assert_close(cell.jacobian(x, s), full[idx, :, idx, :], **TOL)
    off = full.clone()
    off[idx, :, idx, :] = 0
    assert off.abs().max() == 0


def test_function_cell_jacobian_equals_closed_form():
    cell = _function_cell()
    x, s = _inputs(cell, seed=3)
    torch.testing.assert_close(cell.jacobian(x, s), _user_jacobian(x, s), **TOL)
    torch.testing.assert_close(cell.step(x, s), torch.stack([_user_step(x[b], s[b]) for b in range(B)]), **TOL)


@pytest.mark.parametrize("cell", _all_cells())
def test_vjp_equals_autograd(cell):
    x, s = _inputs(cell, seed=4)
    gvec = _randn(torch.Generator().manual_seed(5), B, cell.state_size)
    s_req = s.clone().requires_grad_(True)
    (ref,) = torch.autograd.grad(cell.step(x, s_req), s_req, grad_outputs=gvec)
    torch.testing.assert_close(cell.vjp(x, s, gvec), ref, **TOL)


def test_elman_float32_jacobian_matches_jacrev_in_float32():
    cell = _vanilla("elman", "tanh", dtype=torch.float32)
    x, s = (t.float() for t in _inputs(cell))
    J = cell.jacobian(x, s)
    assert J.dtype == torch.float32
    torch.testing.assert_close(J, _jacrev_reference(cell, x, s), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(J.double(), _jacrev_reference(_vanilla("elman", "tanh"), x.double(), s.double()),
                               rtol=1e-5, atol=1e-6)


def _torch_params(module, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(_randn(g, *p.shape, scale=0.6))
    return module


def test_lstm_step_equals_torch_lstmcell():
    m = _torch_params(torch.nn.LSTMCell(D, H, dtype=F64), 11)
    cell = rs.LSTMCell(m.weight_ih.detach(), m.weight_hh.detach(), m.bias_ih.detach(), m.bias_hh.detach())
    g = torch.Generator().manual_seed(12)
    x, h, c = _randn(g, B, D), _randn(g, B, H), _randn(g, B, H)
    with torch.no_grad():
        h1, c1 = m(x, (h, c))
    s1 = cell.step(x, torch.cat([h, c], dim=1))
    assert cell.state_size == 2 * H
    torch.testing.assert_close(s1[:, :H], h1, **TOL)
    torch.testing.assert_close(s1[:, H:], c1, **TOL)


def test_gru_step_equals_torch_grucell():
    m = _torch_params(torch.nn.GRUCell(D, H, dtype=F64), 13)
    cell = rs.GRUCell(m.weight_ih.detach(), m.weight_hh.detach(), m.bias_ih.detach(), m.bias_hh.detach())
    g = torch.Generator().manual_seed(14)
    x, h = _randn(g, B, D), _randn(g, B, H)
    with torch.no_grad():
        h1 = m(x, h)
    torch.testing.assert_close(cell.step(x, h), h1, **TOL)


def test_projected_lstm_step_equals_torch_lstm_with_proj_size():
    m = _torch_params(torch.nn.LSTM(D, H, proj_size=P, dtype=F64), 15)
    cell = rs.ProjLSTMCell(m.weight_ih_l0.detach(), m.weight_hh_l0.detach(), m.bias_ih_l0.detach(),
                           m.bias_hh_l0.detach(), W_hr=m.weight_hr_l0.detach())
    g = torch.Generator().manual_seed(16)
    x, h, c = _randn(g, B, D), _randn(g, B, P), _randn(g, B, H)
    with torch.no_grad():
        _, (h1, c1) = m(x.unsqueeze(0), (h.unsqueeze(0), c.unsqueeze(0)))  # one step of the fused module
    s1 = cell.step(x, torch.cat([h, c], dim=1))
    assert (cell.state_size, cell.h_size, cell.hidden_size) == (P + H, P, H)
    torch.testing.assert_close(s1[:, :P], h1[0], **TOL)
    torch.testing.assert_close(s1[:, P:], c1[0], **TOL)


def test_vjp_cut_holds_the_carry_term_constant():
    gvec = _randn(torch.Generator().manual_seed(8), B, 2 * H)
    # LSTM: c_{t-1} enters step t only through f * c_{t-1}; held constant, the c columns of the jacrev Jacobian go
    for cell in (_gated("lstm"), _proj_lstm()):
        x, s = _inputs(cell, seed=6)
        g = gvec[:, :cell.state_size]
        J = _jacrev_reference(cell, x, s)
        J[:, :, cell.h_size:] = 0
        torch.testing.assert_close(cell.vjp_cut(x, s, g), torch.bmm(g.unsqueeze(1), J).squeeze(1), **TOL)
    # GRU: h_t = (1 - z) n + z * h_{t-1}.detach(), written out from the weights (gate order r, z, n)
    cell = _gated("gru")
    x, h = _inputs(cell, seed=7)
    g = gvec[:, :H]
    W, U, bi, bh = cell.W_hh, cell.W_xh, cell.b_xh, cell.b_hh

    def cut_step(hv):
        gi, gh = x @ U.T + bi, hv @ W.T + bh
        r = torch.sigmoid(gi[:, :H] + gh[:, :H])
        z = torch.sigmoid(gi[:, H:2 * H] + gh[:, H:2 * H])
        n = torch.tanh(gi[:, 2 * H:] + r * gh[:, 2 * H:])
        return (1 - z) * n + z * hv.detach()
    hr = h.clone().requires_grad_(True)
    (ref,) = torch.autograd.grad(cut_step(hr), hr, g)
    torch.testing.assert_close(cell.vjp_cut(x, h, g), ref, **TOL)
    assert rs.GRUCell.has_carry and rs.LSTMCell.has_carry and not rs.ElmanCell.has_carry


@pytest.mark.parametrize("form", ["elman", "pal"])
@pytest.mark.parametrize("act", ACTS)
def test_vanilla_step_equals_formula(form, act):
    cell = _vanilla(form, act)
    x, s = _inputs(cell, seed=6)
    phi = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu, "identity": lambda a: a}[act]
    W, U, b = cell.W_hh, cell.W_xh, cell.b_h
    if form == "elman":
        ref = torch.stack([phi(W @ s[i] + U @ x[i] + b) for i in range(B)])
    else:
        ref = torch.stack([W @ phi(s[i]) + U @ x[i] + b for i in range(B)])
    torch.testing.assert_close(cell.step(x, s), ref, **TOL)


def _t(*shape):
    return torch.ones(*shape, dtype=F64)


def _nan(*shape):
    m = _t(*shape)
    m.view(-1)[0] = float("nan")
    return m


def _inf(*shape):
    m = _t(*shape)
    m.view(-1)[-1] = float("inf")
    return m


BAD_CONSTRUCTORS = {
    "elman-W_hh-not-square": lambda: rs.ElmanCell(_t(3, 4), _t(3, 2), _t(3), "tanh"),
    "elman-W_hh-vector": lambda: rs.ElmanCell(_t(3), _t(3, 2), _t(3), "tanh"),
    "elman-W_hh-list": lambda: rs.ElmanCell([[1.0]], _t(1, 2), _t(1), "tanh"),
    "elman-W_xh-rows": lambda: rs.ElmanCell(_t(3, 3), _t(4, 2), _t(3), "tanh"),
    "elman-W_xh-vector": lambda: rs.ElmanCell(_t(3, 3), _t(3), _t(3), "tanh"),
    "elman-b_h-shape": lambda: rs.ElmanCell(_t(3, 3), _t(3, 2), _t(4), "tanh"),
    "elman-W_hh-nan": lambda: rs.ElmanCell(_nan(3, 3), _t(3, 2), _t(3), "tanh"),
    "elman-b_h-inf": lambda: rs.ElmanCell(_t(3, 3), _t(3, 2), _inf(3), "tanh"),
    "elman-activation": lambda: rs.ElmanCell(_t(3, 3), _t(3, 2), _t(3), "softplus"),
    "pal-W_xh-nan": lambda: rs.PalCell(_t(3, 3), _nan(3, 2), _t(3), "sigmoid"),
    "pal-b_h-matrix": lambda: rs.PalCell(_t(3, 3), _t(3, 2), _t(3, 1), "sigmoid"),
    "lstm-W_hh-rows": lambda: rs.LSTMCell(_t(8, 2), _t(9, 2), _t(8), _t(8)),
    "lstm-W_xh-rows": lambda: rs.LSTMCell(_t(7, 2), _t(8, 2), _t(8), _t(8)),
    "lstm-b_xh-shape": lambda: rs.LSTMCell(_t(8, 2), _t(8, 2), _t(6), _t(8)),
    "lstm-b_hh-nan": lambda: rs.LSTMCell(_t(8, 2), _t(8, 2), _t(8), _nan(8)),
    "gru-W_hh-lstm-layout": lambda: rs.GRUCell(_t(8, 2), _t(8, 2), _t(8), _t(8)),
    "lstm-proj-W_hr-shape": lambda: rs.ProjLSTMCell(_t(8, 2), _t(8, 1), _t(8), _t(8), W_hr=_t(2, 2)),
    "lstm-proj-W_hh-rows": lambda: rs.ProjLSTMCell(_t(8, 2), _t(7, 1), _t(8), _t(8), W_hr=_t(1, 2)),
    "gru-W_hh-inf": lambda: rs.GRUCell(_t(6, 2), _inf(6, 2), _t(6), _t(6)),
    "function-not-callable": lambda: rs.FunctionCell(3, state_size=2, input_size=1),
}


@pytest.mark.parametrize("make", BAD_CONSTRUCTORS.values(), ids=BAD_CONSTRUCTORS.keys())
def test_bad_constructor_raises_input_error(make):
    with pytest.raises(rs.InputError, match="expected"):
        make()


def test_function_cell_with_wrong_output_shape_raises():
    cell = rs.FunctionCell(lambda x, h: torch.cat([h, h]), state_size=2, input_size=1)
    with pytest.raises(rs.InputError, match="expected"):
        cell.step(torch.zeros(2, 1, dtype=F64), torch.zeros(2, 2, dtype=F64))


@pytest.mark.parametrize("kind", ["elman-tanh", "pal-sigmoid", "elman-relu", "lstm", "lstm-proj", "gru"])
def test_factored_vjp_on_a_whole_trace_equals_jacrev_and_autograd(kind):
    """vjp_factors formed once for every step of a trace (T, B) and vjp_apply step by step: g J_k against
    jacrev of the step, dL/du_k against autograd through the drive u = drive(x) (s_{k-1} held), and the carry
    mask (0 on a row: that row's carry term held constant, as vjp_cut) against vjp_cut."""
    cell = {"elman-tanh": lambda: _vanilla("elman", "tanh"), "pal-sigmoid": lambda: _vanilla("pal", "sigmoid"),
            "elman-relu": lambda: _vanilla("elman", "relu", seed=2), "lstm": lambda: _gated("lstm"),
            "lstm-proj": _proj_lstm, "gru": lambda: _gated("gru")}[kind]()
    T = 5
    gen = torch.Generator().manual_seed(11)
    tr = rs.unroll(cell, _randn(gen, T, B, cell.input_size), _randn(gen, B, cell.state_size, scale=0.8))
    F = cell.vjp_factors(tr.inputs, tr.states[:-1], tr.preacts, tr.states[1:])  # every step at once
    g = _randn(gen, T, B, cell.state_size)
    for k in range(T):
        x, s = tr.inputs[k], tr.states[k]
        Fk = tuple(f[k] for f in F)
        got, du = cell.vjp_apply(Fk, g[k])
        J = _jacrev_reference(cell, x, s)
        torch.testing.assert_close(got, torch.bmm(g[k].unsqueeze(1), J).squeeze(1), **TOL)
        u = cell.drive(x).detach().requires_grad_(True)
        (ref_du,) = torch.autograd.grad(cell.forward_driven(u, s)[0], u, g[k])
        torch.testing.assert_close(du, ref_du, **TOL)
        torch.testing.assert_close(cell.vjp(x, s, g[k]), got, **TOL)  # the per-step form: the same math
        if cell.has_carry:
            mask = torch.tensor([[1.0], [0.0], [1.0]], dtype=F64)
            mixed = cell.vjp_apply(Fk, g[k], carry=mask)[0]
            torch.testing.assert_close(mixed[1], cell.vjp_cut(x, s, g[k])[1], **TOL)
            torch.testing.assert_close(mixed[[0, 2]], got[[0, 2]], **TOL)
