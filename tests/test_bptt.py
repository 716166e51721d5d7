"""bptt.py (hand-derived BPTT) against torch.autograd on a forward pass written here from scratch,
central finite differences in float64, and per-step weight copies for the contributions C[t, k]."""

import pytest
import torch
import torch.nn.functional as Fn

import rnnscope as rs

F64 = torch.float64
ACTS = ["sigmoid", "tanh", "relu", "identity"]
PHI = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu, "identity": lambda a: a}
NAMES = ("W_hh", "W_xh", "b_h", "W_hy", "b_y")
T, S, D, O = 5, 4, 2, 3


def _problem(form, act, kind, batch, seed=0, T=T):
    """Random parameters, inputs, targets and h0 (all float64)."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *shape, scale=1.0: torch.randn(*shape, generator=g, dtype=F64) * scale  # noqa: E731
    p = {"W_hh": r(S, S, scale=0.9 / S**0.5), "W_xh": r(S, D, scale=0.8), "b_h": r(S, scale=0.3),
         "W_hy": r(O, S, scale=0.8), "b_y": r(O, scale=0.3)}
    x, h0 = r(T, batch, D), r(batch, S, scale=0.5)
    y = r(T, batch, O) if kind == "mse" else torch.randint(0, O, (T, batch), generator=g)
    return p, x, y, h0


def _model(form, act, kind, p):
    cls = rs.ElmanCell if form == "elman" else rs.PalCell
    return cls(p["W_hh"], p["W_xh"], p["b_h"], act), rs.Head(p["W_hy"], p["b_y"], kind)


def _forward(form, act, kind, p, x, y, h0, loss_at, retain=False):
    """E and the states h_0..h_T, by hand: nothing from rnnscope."""
    phi = PHI[act]
    h, hs, E_t = h0, [h0], {}
    for t in range(1, x.shape[0] + 1):
        if form == "elman":
            h = phi(h @ p["W_hh"].T + x[t - 1] @ p["W_xh"].T + p["b_h"])
        else:
            h = phi(h) @ p["W_hh"].T + x[t - 1] @ p["W_xh"].T + p["b_h"]
        if retain:
            h.retain_grad()
        hs.append(h)
        if loss_at == "all" or t == x.shape[0]:
            o = Fn.linear(h, p["W_hy"], p["b_y"])
            E_t[t] = (Fn.mse_loss(o, y[t - 1], reduction="sum") / (2 * o.shape[0]) if kind == "mse"
                      else Fn.cross_entropy(o, y[t - 1]))
    return sum(E_t.values()), hs, E_t


def _autograd(form, act, kind, p, x, y, h0, loss_at):
    q = {n: v.clone().requires_grad_(True) for n, v in p.items()}
    h0r = h0.clone().requires_grad_(True)
    E, hs, _ = _forward(form, act, kind, q, x, y, h0r, loss_at, retain=True)
    E.backward()
    return E.detach(), {n: q[n].grad for n in NAMES}, torch.stack([h.grad for h in hs])


def _rel(a, b):
    return float(torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b))


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("loss_at", ["all", "last"])
@pytest.mark.parametrize("kind", ["mse", "ce"])
@pytest.mark.parametrize("form", ["elman", "pal"])
@pytest.mark.parametrize("act", ACTS)
def test_gradients_loss_and_adjoints_equal_autograd(act, form, kind, loss_at, batch):
    p, x, y, h0 = _problem(form, act, kind, batch)
    cell, head = _model(form, act, kind, p)
    # B = 1 goes through the (T, D) / (T, O) / (T,) / (S,) single-sequence forms
    xs, ys, h0s = (x[:, 0], y[:, 0], h0[0]) if batch == 1 else (x, y, h0)
    res = rs.bptt(cell, head, xs, ys, h0s, loss_at=loss_at)
    E, ref, adj = _autograd(form, act, kind, p, x, y, h0, loss_at)
    torch.testing.assert_close(res.loss, E, rtol=1e-12, atol=0)
    for n in NAMES:
        assert res.grads[n].shape == p[n].shape
        assert torch.linalg.vector_norm(ref[n]) > 1e-6, n  # a non-trivial reference
        assert _rel(res.grads[n], ref[n]) < 1e-10, n
    assert res.adjoints.shape == (T + 1, batch, S)
    torch.testing.assert_close(res.adjoints, adj, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("contributions", ["none", "full"])
def test_gradients_do_not_depend_on_the_contributions_mode(contributions):
    p, x, y, h0 = _problem("elman", "tanh", "ce", 2, seed=3)
    res = rs.bptt(*_model("elman", "tanh", "ce", p), x, y, h0, contributions=contributions)
    _, ref, _ = _autograd("elman", "tanh", "ce", p, x, y, h0, "all")
    for n in NAMES:
        assert _rel(res.grads[n], ref[n]) < 1e-10, n


def test_default_h0_is_zero():
    p, x, y, _ = _problem("pal", "tanh", "mse", 2, seed=4)
    res = rs.bptt(*_model("pal", "tanh", "mse", p), x, y)
    _, ref, _ = _autograd("pal", "tanh", "mse", p, x, y, torch.zeros(2, S, dtype=F64), "all")
    for n in NAMES:
        assert _rel(res.grads[n], ref[n]) < 1e-10, n


@pytest.mark.parametrize("form, act, kind, loss_at", [
    ("elman", "tanh", "mse", "all"),
    ("pal", "sigmoid", "ce", "last"),
    ("elman", "relu", "ce", "all"),
    ("pal", "identity", "mse", "all"),
    ("elman", "sigmoid", "mse", "last"),
])
def test_gradients_equal_central_finite_differences(form, act, kind, loss_at):
    p, x, y, h0 = _problem(form, act, kind, 2, seed=5)
    res = rs.bptt(*_model(form, act, kind, p), x, y, h0, loss_at=loss_at)
    eps = 1e-6

    def E(q):
        return float(_forward(form, act, kind, q, x, y, h0, loss_at)[0])

    for n in NAMES:
        fd = torch.zeros_like(p[n])
        for i in range(p[n].numel()):
            up = {m: v.clone() for m, v in p.items()}
            dn = {m: v.clone() for m, v in p.items()}
            up[n].view(-1)[i] += eps
            dn[n].view(-1)[i] -= eps
            fd.view(-1)[i] = (E(up) - E(dn)) / (2 * eps)
        assert _rel(res.grads[n], fd) < 1e-6, n


def _per_step_reference(form, act, kind, p, x, y, h0, loss_at):
    """C[t, k] by autograd: W_hh, W_xh, b_h replaced by separate copies (equal values) at each step k;
    the gradient of E_t with respect to the step-k copy is the part of dE_t/dW flowing through step k."""
    Tn = x.shape[0]
    copies = {n: [p[n].clone().requires_grad_(True) for _ in range(Tn)] for n in ("W_hh", "W_xh", "b_h")}
    phi, h, E_t = PHI[act], h0, {}
    for t in range(1, Tn + 1):
        W, U, b = (copies[n][t - 1] for n in ("W_hh", "W_xh", "b_h"))
        h = phi(h @ W.T + x[t - 1] @ U.T + b) if form == "elman" else phi(h) @ W.T + x[t - 1] @ U.T + b
        if loss_at == "all" or t == Tn:
            o = Fn.linear(h, p["W_hy"], p["b_y"])
            E_t[t] = (Fn.mse_loss(o, y[t - 1], reduction="sum") / (2 * o.shape[0]) if kind == "mse"
                      else Fn.cross_entropy(o, y[t - 1]))
    C = {n: torch.zeros(Tn, Tn, *p[n].shape, dtype=F64) for n in copies}
    for t, Et in E_t.items():
        for n in copies:
            gs = torch.autograd.grad(Et, copies[n], retain_graph=True, allow_unused=True)
            for k, gk in enumerate(gs):
                if gk is not None:
                    C[n][t - 1, k] = gk
    return C, E_t, copies


@pytest.mark.parametrize("loss_at", ["all", "last"])
@pytest.mark.parametrize("kind", ["mse", "ce"])
@pytest.mark.parametrize("form", ["elman", "pal"])
@pytest.mark.parametrize("act", ["sigmoid", "relu", "identity"])
def test_contributions_equal_per_step_copies(act, form, kind, loss_at):
    p, x, y, h0 = _problem(form, act, kind, 2, seed=6)
    cell, head = _model(form, act, kind, p)
    res = rs.bptt(cell, head, x, y, h0, loss_at=loss_at, contributions="full")
    norms_only = rs.bptt(cell, head, x, y, h0, loss_at=loss_at)  # default contributions="norms"
    C, E_t, _ = _per_step_reference(form, act, kind, p, x, y, h0, loss_at)
    later = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)  # k > t
    no_loss = torch.tensor([t + 1 not in E_t for t in range(T)])
    for n in ("W_hh", "W_xh", "b_h"):
        full = res.contributions[n]  # (T, T, *shape)
        assert full.shape == C[n].shape
        scale = float(C[n].abs().max())
        assert scale > 1e-6
        torch.testing.assert_close(full, C[n], rtol=1e-10, atol=1e-12 * scale)
        dims = tuple(range(2, full.dim()))
        ref_norm = torch.linalg.vector_norm(C[n], dim=dims)  # Frobenius norms of the reference C[t, k]
        for r in (res, norms_only):
            cn = r.contributions_norm[n]
            assert cn.shape == (T, T)
            torch.testing.assert_close(cn, ref_norm, rtol=1e-10, atol=1e-12 * scale)
            assert (cn[later] == 0).all() and (cn[no_loss] == 0).all()
        assert (full[later] == 0).all() and (full[no_loss] == 0).all()
    # summing C[t, k] over k and t reproduces each gradient; over k alone, each dE_t/dW
    _, ref, _ = _autograd(form, act, kind, p, x, y, h0, loss_at)
    for n in ("W_hh", "W_xh", "b_h"):
        assert _rel(res.contributions[n].sum((0, 1)), ref[n]) < 1e-10, n
    q = {n: v.clone().requires_grad_(True) for n, v in p.items()}
    _, _, E_q = _forward(form, act, kind, q, x, y, h0, loss_at)
    for t, Et in E_q.items():
        g = torch.autograd.grad(Et, [q["W_hh"], q["W_xh"], q["b_h"]], retain_graph=True)
        for n, gn in zip(("W_hh", "W_xh", "b_h"), g):
            assert _rel(res.contributions[n][t - 1].sum(0), gn) < 1e-10, (n, t)


def _elman():
    p, x, y, h0 = _problem("elman", "tanh", "mse", 2)
    return p, x, y, h0, *_model("elman", "tanh", "mse", p)


def test_errors_raise_input_error():
    p, x, y, h0, cell, head = _elman()
    g = torch.Generator().manual_seed(9)
    lstm = rs.LSTMCell(torch.randn(4 * S, D, generator=g, dtype=F64), torch.randn(4 * S, S, generator=g, dtype=F64),
                       torch.zeros(4 * S, dtype=F64), torch.zeros(4 * S, dtype=F64))
    gru = rs.GRUCell(torch.randn(3 * S, D, generator=g, dtype=F64), torch.randn(3 * S, S, generator=g, dtype=F64),
                     torch.zeros(3 * S, dtype=F64), torch.zeros(3 * S, dtype=F64))
    fcell = rs.FunctionCell(lambda xx, hh: torch.tanh(hh), state_size=S, input_size=D)
    wrong_head = rs.Head(torch.zeros(O, S + 1, dtype=F64), torch.zeros(O, dtype=F64), "mse")
    cases = [
        lambda: rs.bptt(lstm, head, x, y),
        lambda: rs.bptt(gru, head, x, y),
        lambda: rs.bptt(fcell, head, x, y),
        lambda: rs.bptt(cell, wrong_head, x, y),
        lambda: rs.bptt(cell, head, x, y, contributions="some"),
        lambda: rs.bptt(cell, head, x, y, loss_at="first"),
        lambda: rs.bptt(cell, head, x, y[:, :, :2]),
        lambda: rs.bptt(cell, head, x[:, :, :1], y),
        lambda: rs.bptt(cell, head, x, y, torch.zeros(3, S, dtype=F64)),
    ]
    for make in cases:
        with pytest.raises(rs.InputError, match="expected"):
            make()


def test_full_contributions_refuse_a_huge_request():
    # T * T * S * (S + D + 1) * 8 bytes = 4000^2 * 4 * 7 * 8 = 3.6e9 > 2 GiB: asked for 'full', told to use 'norms'
    p, _, _, _, cell, head = _elman()
    with pytest.raises(rs.InputError, match="expected"):
        rs.bptt(cell, head, torch.zeros(4000, 1, D, dtype=F64), torch.zeros(4000, 1, O, dtype=F64),
                contributions="full")
