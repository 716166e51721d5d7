"""unroll.py against hand loops over torch.nn.RNNCell and whole-sequence torch.nn.LSTM / torch.nn.GRU (float64)."""

import pytest
import torch

import rnnscope as rs

F64 = torch.float64
T, B, S, D = 6, 3, 4, 2
TOL = dict(rtol=1e-12, atol=1e-12)


def _randn(gen, *shape, scale=1.0):
    return torch.randn(*shape, generator=gen, dtype=F64) * scale


def _torch_params(module, seed, scale=0.6):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(_randn(g, *p.shape, scale=scale))
    return module


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("with_s0", [False, True])
def test_elman_unroll_equals_torch_rnncell_loop(nonlinearity, with_s0):
    m = _torch_params(torch.nn.RNNCell(D, S, nonlinearity=nonlinearity, dtype=F64), 1)
    W_ih, W_hh, b_ih, b_hh = (p.detach() for p in (m.weight_ih, m.weight_hh, m.bias_ih, m.bias_hh))
    cell = rs.ElmanCell(W_hh, W_ih, b_ih + b_hh, nonlinearity)
    g = torch.Generator().manual_seed(2)
    x = _randn(g, T, B, D)
    s0 = _randn(g, B, S) if with_s0 else None
    tr = rs.unroll(cell, x, s0)
    h = s0 if with_s0 else torch.zeros(B, S, dtype=F64)
    ref_states, ref_preacts = [h], []
    with torch.no_grad():
        for t in range(T):
            ref_preacts.append(x[t] @ W_ih.T + b_ih + h @ W_hh.T + b_hh)
            h = m(x[t], h)
            ref_states.append(h)
    assert tr.T == T and tr.B == B
    torch.testing.assert_close(tr.states, torch.stack(ref_states), **TOL)
    torch.testing.assert_close(tr.preacts, torch.stack(ref_preacts), **TOL)
    torch.testing.assert_close(tr.inputs, x, rtol=0, atol=0)
    assert tr.states[-1].abs().max() > 0.1


@pytest.mark.parametrize("act", ["sigmoid", "tanh", "relu", "identity"])
def test_pal_unroll_equals_hand_loop(act):
    g = torch.Generator().manual_seed(3)
    W, U, b = _randn(g, S, S, scale=0.5), _randn(g, S, D), _randn(g, S, scale=0.3)
    x, s0 = _randn(g, T, B, D), _randn(g, B, S)
    phi = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu, "identity": lambda a: a}[act]
    h, ref = s0, [s0]
    for t in range(T):
        h = torch.stack([W @ phi(h[i]) + U @ x[t, i] + b for i in range(B)])
        ref.append(h)
    tr = rs.unroll(rs.PalCell(W, U, b, act), x, s0)
    torch.testing.assert_close(tr.states, torch.stack(ref), **TOL)
    torch.testing.assert_close(tr.preacts, torch.stack(ref[:-1]), **TOL)  # the argument of phi is h_{t-1}


def test_lstm_unroll_equals_torch_lstm():
    H = 3
    m = _torch_params(torch.nn.LSTM(D, H, dtype=F64), 4)
    cell = rs.LSTMCell(m.weight_ih_l0.detach(), m.weight_hh_l0.detach(), m.bias_ih_l0.detach(), m.bias_hh_l0.detach())
    g = torch.Generator().manual_seed(5)
    x, h0, c0 = _randn(g, T, B, D), _randn(g, B, H), _randn(g, B, H)
    with torch.no_grad():
        out, (hT, cT) = m(x, (h0.unsqueeze(0), c0.unsqueeze(0)))
    tr = rs.unroll(cell, x, torch.cat([h0, c0], dim=1))
    torch.testing.assert_close(tr.states[1:, :, :H], out, **TOL)
    torch.testing.assert_close(tr.states[-1, :, H:], cT[0], **TOL)
    torch.testing.assert_close(tr.states[-1, :, :H], hT[0], **TOL)


def test_gru_unroll_equals_torch_gru():
    H = 3
    m = _torch_params(torch.nn.GRU(D, H, dtype=F64), 6)
    cell = rs.GRUCell(m.weight_ih_l0.detach(), m.weight_hh_l0.detach(), m.bias_ih_l0.detach(), m.bias_hh_l0.detach())
    g = torch.Generator().manual_seed(7)
    x, h0 = _randn(g, T, B, D), _randn(g, B, H)
    with torch.no_grad():
        out, _ = m(x, h0.unsqueeze(0))
    tr = rs.unroll(cell, x, h0)
    torch.testing.assert_close(tr.states[1:], out, **TOL)
    torch.testing.assert_close(tr.states[0], h0, rtol=0, atol=0)


@pytest.mark.parametrize("kind", ["lstm", "lstm_proj", "gru"])
def test_in_place_loop_equals_the_autograd_loop_and_torch(kind):
    """unroll's in-place loop (Cell.step_into: no autograd) against the step-by-step forward_driven loop it
    replaces (taken when x requires grad) and torch's own module; the inputs are left as they were."""
    H, P = 5, 3
    if kind == "gru":
        m = _torch_params(torch.nn.GRU(D, H, dtype=F64), 11)
        cell = rs.GRUCell(*(p.detach() for p in (m.weight_ih_l0, m.weight_hh_l0, m.bias_ih_l0, m.bias_hh_l0)))
    else:
        m = _torch_params(torch.nn.LSTM(D, H, proj_size=P if kind == "lstm_proj" else 0, dtype=F64), 12)
        w = [p.detach() for p in (m.weight_ih_l0, m.weight_hh_l0, m.bias_ih_l0, m.bias_hh_l0)]
        cell = rs.ProjLSTMCell(*w, W_hr=m.weight_hr_l0.detach()) if kind == "lstm_proj" else rs.LSTMCell(*w)
    g = torch.Generator().manual_seed(13)
    x = _randn(g, T, B, D)
    x_before = x.clone()
    fast = rs.unroll(cell, x)
    torch.testing.assert_close(x, x_before, rtol=0, atol=0)
    xg = x.clone().requires_grad_(True)
    slow = rs.unroll(cell, xg)  # autograd: the forward_driven loop, differentiable
    assert slow.states.requires_grad
    torch.testing.assert_close(fast.states, slow.states.detach(), **TOL)
    torch.testing.assert_close(fast.preacts, slow.preacts.detach(), **TOL)
    with torch.no_grad():
        out = m(x)[0]
    torch.testing.assert_close(fast.states[1:, :, :cell.h_size], out, **TOL)


def _elman_and_rnncell(seed=8):
    m = _torch_params(torch.nn.RNNCell(D, S, dtype=F64), seed)
    cell = rs.ElmanCell(m.weight_hh.detach(), m.weight_ih.detach(), (m.bias_ih + m.bias_hh).detach(), "tanh")
    return cell, m


def test_two_dimensional_input_is_one_sequence():
    cell, m = _elman_and_rnncell()
    x = _randn(torch.Generator().manual_seed(9), T, D)  # (T, D)
    s0 = _randn(torch.Generator().manual_seed(10), S)  # (S,): unbatched initial state
    tr = rs.unroll(cell, x, s0)
    assert tr.states.shape == (T + 1, 1, S) and tr.B == 1
    h, ref = s0, [s0]
    with torch.no_grad():
        for t in range(T):
            h = m(x[t], h)  # torch's unbatched RNNCell: (D,), (S,) -> (S,)
            ref.append(h)
    torch.testing.assert_close(tr.states[:, 0], torch.stack(ref), **TOL)


def test_shared_one_dimensional_s0_is_broadcast_over_the_batch():
    cell, m = _elman_and_rnncell()
    g = torch.Generator().manual_seed(11)
    x, s0 = _randn(g, T, B, D), _randn(g, S)
    tr = rs.unroll(cell, x, s0)
    h, ref = s0.expand(B, S), [s0.expand(B, S)]
    with torch.no_grad():
        for t in range(T):
            h = m(x[t], h)
            ref.append(h)
    torch.testing.assert_close(tr.states, torch.stack(ref), **TOL)


def test_numpy_inputs_are_accepted_and_converted():
    cell, m = _elman_and_rnncell()
    x = _randn(torch.Generator().manual_seed(12), T, B, D)
    tr = rs.unroll(cell, x.numpy(), torch.zeros(B, S, dtype=F64).numpy())
    h = torch.zeros(B, S, dtype=F64)
    with torch.no_grad():
        for t in range(T):
            h = m(x[t], h)
    assert tr.states.dtype == F64
    torch.testing.assert_close(tr.states[-1], h, **TOL)


def test_truncated_trace_is_the_first_t_steps_of_the_hand_loop():
    cell, m = _elman_and_rnncell()
    x = _randn(torch.Generator().manual_seed(13), T, B, D)
    tr = rs.unroll(cell, x).truncated(3)
    h, ref = torch.zeros(B, S, dtype=F64), [torch.zeros(B, S, dtype=F64)]
    with torch.no_grad():
        for t in range(3):
            h = m(x[t], h)
            ref.append(h)
    assert tr.T == 3 and tr.preacts.shape == (3, B, S)
    torch.testing.assert_close(tr.states, torch.stack(ref), **TOL)
    for bad in (0, T + 1):
        with pytest.raises(rs.InputError, match="expected"):
            rs.unroll(cell, x).truncated(bad)


BAD = {
    "wrong-input-size": (torch.zeros(T, B, D + 1), None),
    "input-1d": (torch.zeros(T), None),
    "input-4d": (torch.zeros(T, B, D, 1), None),
    "no-steps": (torch.zeros(0, B, D), None),
    "input-nan": (torch.full((T, B, D), float("nan")), None),
    "s0-batch": (torch.zeros(T, B, D), torch.zeros(B + 1, S)),
    "s0-size": (torch.zeros(T, B, D), torch.zeros(S + 1)),
    "s0-3d": (torch.zeros(T, B, D), torch.zeros(1, B, S)),
    "s0-inf": (torch.zeros(T, B, D), torch.full((B, S), float("inf"))),
}


@pytest.mark.parametrize("x, s0", BAD.values(), ids=BAD.keys())
def test_bad_inputs_raise_input_error(x, s0):
    cell, _ = _elman_and_rnncell()
    with pytest.raises(rs.InputError, match="expected"):
        rs.unroll(cell, x, s0)
