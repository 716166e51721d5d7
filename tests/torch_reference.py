"""Independent references for the torch-module tests (test_torch_models, test_diagnose, test_monitor,
test_cli_diagnose): a module's stack re-run by a step-by-step loop over torch.nn.RNNCell / LSTMCell / GRUCell
loaded with the module's weights (a manual step, written here with torch ops, where torch has no cell: the
LSTM projection h_t = W_hr (o * tanh(c_t)), and the steps with the carry term detached), with retain_grad on
every state; one-step Jacobians by torch.func.jacrev of those steps and their explicit products.

Nothing here imports rnnscope.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn

KINDS = ("rnn_tanh", "rnn_relu", "lstm", "lstm_proj", "gru")
COMBOS = list(itertools.product(KINDS, (1, 2), (False, True), (False, True), (False, True)))
COMBO_IDS = [f"{k}-L{L}-{'bi' if b else 'uni'}-{'bf' if bf else 'tm'}-{'bias' if bias else 'nobias'}"
             for k, L, b, bf, bias in COMBOS]
D, H, P = 3, 3, 2


def make_module(kind: str, layers: int = 1, bidirectional: bool = False, batch_first: bool = False,
                bias: bool = True, dtype=torch.float64, seed: int = 0, scale: float = 0.8) -> nn.Module:
    """A tiny module with seeded weights U(-scale, scale) (larger than the default, so the flow is non-trivial)."""
    kw = dict(num_layers=layers, bidirectional=bidirectional, batch_first=batch_first, bias=bias, dtype=dtype)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if kind.startswith("rnn"):
            m = nn.RNN(D, H, nonlinearity=kind[4:], **kw)
        elif kind == "lstm":
            m = nn.LSTM(D, H, **kw)
        elif kind == "lstm_proj":
            m = nn.LSTM(D, H, proj_size=P, **kw)
        else:
            m = nn.GRU(D, H, **kw)
        with torch.no_grad():
            for p in m.parameters():
                p.uniform_(-scale, scale)
    return m


def _w(m, name, suffix):
    return getattr(m, f"{name}{suffix}", None)


def step_fn(m: nn.Module, layer: int, reverse: bool, cut: bool = False):
    """step(x (B, D_l), h, c) -> (h, c) for one (layer, direction) of m (c is None for RNN / GRU).

    nn.*Cell with the module's weights, or a manual step for the LSTM projection and for cut=True (the carry
    term's state argument detached: c_t = f * c_{t-1}.detach() + i g; h_t = (1 - z) n + z * h_{t-1}.detach()).
    """
    sfx = f"_l{layer}" + ("_reverse" if reverse else "")
    W_ih, W_hh = _w(m, "weight_ih", sfx).detach(), _w(m, "weight_hh", sfx).detach()
    b_ih, b_hh = _w(m, "bias_ih", sfx), _w(m, "bias_hh", sfx)
    b_ih = None if b_ih is None else b_ih.detach()
    b_hh = None if b_hh is None else b_hh.detach()
    W_hr = _w(m, "weight_hr", sfx)
    bias = b_ih is not None
    Din, Hh = W_ih.shape[1], W_hh.shape[0] // {nn.LSTM: 4, nn.GRU: 3}.get(type(m), 1)
    if isinstance(m, nn.LSTM) and (W_hr is not None or cut):
        W_hr = None if W_hr is None else W_hr.detach()

        def lstm(x, h, c):
            z = F.linear(x, W_ih, b_ih) + F.linear(h, W_hh, b_hh)
            i, f, g, o = z.chunk(4, dim=1)
            i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
            c_new = f * (c.detach() if cut else c) + i * g
            hm = o * torch.tanh(c_new)
            return (hm if W_hr is None else F.linear(hm, W_hr)), c_new
        return lstm
    if isinstance(m, nn.GRU) and cut:
        def gru(x, h, c):
            gi, gh = F.linear(x, W_ih, b_ih), F.linear(h, W_hh, b_hh)
            r = torch.sigmoid(gi[:, :Hh] + gh[:, :Hh])
            z = torch.sigmoid(gi[:, Hh:2 * Hh] + gh[:, Hh:2 * Hh])
            n = torch.tanh(gi[:, 2 * Hh:] + r * gh[:, 2 * Hh:])
            return (1 - z) * n + z * h.detach(), None
        return gru
    dt = W_hh.dtype
    if isinstance(m, nn.LSTM):
        cell = nn.LSTMCell(Din, Hh, bias=bias, dtype=dt)
    elif isinstance(m, nn.GRU):
        cell = nn.GRUCell(Din, Hh, bias=bias, dtype=dt)
    else:
        cell = nn.RNNCell(Din, Hh, bias=bias, nonlinearity=m.nonlinearity, dtype=dt)
    with torch.no_grad():
        cell.weight_ih.copy_(W_ih)
        cell.weight_hh.copy_(W_hh)
        if bias:
            cell.bias_ih.copy_(b_ih)
            cell.bias_hh.copy_(b_hh)
    for p in cell.parameters():
        p.requires_grad_(False)
    if isinstance(m, nn.LSTM):
        return lambda x, h, c: cell(x, (h, c))
    return lambda x, h, c: (cell(x, h), None)


def reference(m: nn.Module, x: torch.Tensor, loss_fn=None, cut: tuple[int, int] | None = None) -> dict:
    """The stack by a step-by-step loop, and autograd's dL/dh_k, dL/dc_k for every (layer, direction).

    x (T, B, D) time-major. loss_fn(output in the module's layout) or None for the sum of output[T].
    cut = (layer, direction): that one's steps have their carry term detached.
    Returns {"output", "loss", "h" / "c": {(l, d): (T, B, .) states in processing order}, "gh" / "gc": grads
             (c_k.grad: through h_k = o tanh(c_k) too), "gc_state": the state coordinate c_k's grad (later steps only),
             "inputs": {(l, d): (T, B, D_l) the inputs in processing order}}.
    """
    T, B, _ = x.shape
    dirs = 2 if m.bidirectional else 1
    Pn = m.proj_size if getattr(m, "proj_size", 0) else m.hidden_size
    lstm = isinstance(m, nn.LSTM)
    inp = x
    hs, cs, css, ins = {}, {}, {}, {}
    for l in range(m.num_layers):
        outs = []
        for d in range(dirs):
            step = step_fn(m, l, bool(d), cut == (l, d))
            h = torch.zeros(B, Pn, dtype=x.dtype, requires_grad=True)  # a graph from the start (weights are constants)
            c = torch.zeros(B, m.hidden_size, dtype=x.dtype, requires_grad=True) if lstm else None
            hl, cl, csl, xl = [], [], [], []
            for k in range(T):
                pos = T - 1 - k if d else k
                h, c = step(inp[pos], h, c)
                h.retain_grad()
                hl.append(h)
                xl.append(inp[pos].detach())
                if lstm:
                    c.retain_grad()
                    cl.append(c)
                    c = c.clone()  # the state coordinate c_k: its grad is the next steps' part only (h_k apart)
                    c.retain_grad()
                    csl.append(c)
            hs[(l, d)], cs[(l, d)], css[(l, d)], ins[(l, d)] = hl, cl, csl, torch.stack(xl)
            seq = torch.stack(hl)
            outs.append(seq.flip(0) if d else seq)
        inp = torch.cat(outs, dim=2)
    out = inp  # (T, B, dirs P)
    layout = out.transpose(0, 1) if m.batch_first else out
    L = out[-1].sum() if loss_fn is None else loss_fn(layout)
    L.backward()

    def grads(lst):
        return torch.stack([v.grad if v.grad is not None else torch.zeros_like(v) for v in lst])

    return {"output": out.detach(), "loss": float(L.detach()), "h": {k: torch.stack(v).detach() for k, v in hs.items()},
            "c": {k: torch.stack(v).detach() for k, v in cs.items() if v},
            "gh": {k: grads(v) for k, v in hs.items()}, "gc": {k: grads(v) for k, v in cs.items() if v},
            "gc_state": {k: grads(v) for k, v in css.items() if v},
            "inputs": ins}


def log10_norms(g: torch.Tensor) -> torch.Tensor:
    """(T, B, n) -> (B, T) log10 ||g_k|| per sequence."""
    return torch.log10(torch.linalg.vector_norm(g, dim=-1)).T


def jacobian_products(m: nn.Module, ref: dict, layer: int, d: int, b: int) -> tuple[torch.Tensor, torch.Tensor]:
    """ds_T/ds_k for k = 1..T of sequence b, explicit products of jacrev one-step Jacobians: (T, S, S).
    s = [h, c] for LSTM. Also returns the state split P (the size of h)."""
    step = step_fn(m, layer, bool(d))
    h, c = ref["h"][(layer, d)][:, b], (ref["c"][(layer, d)][:, b] if (layer, d) in ref["c"] else None)
    xs = ref["inputs"][(layer, d)][:, b]
    T, Pn = h.shape[0], h.shape[1]

    def one(xk, s):
        hh = s[:Pn].unsqueeze(0)
        cc = None if c is None else s[Pn:].unsqueeze(0)
        h1, c1 = step(xk.unsqueeze(0), hh, cc)
        return h1[0] if c1 is None else torch.cat([h1[0], c1[0]])

    states = h if c is None else torch.cat([h, c], dim=1)  # s_1..s_T
    S = states.shape[1]
    s0 = torch.zeros(S, dtype=h.dtype)
    prev = torch.cat([s0.unsqueeze(0), states[:-1]])  # s_0..s_{T-1}
    Js = [torch.func.jacrev(one, argnums=1)(xs[k], prev[k]) for k in range(T)]  # J_{k+1} = ds_{k+1}/ds_k
    prods = [torch.eye(S, dtype=h.dtype)]
    for k in range(T - 1, 0, -1):  # P_k = P_{k+1} J_{k+1}
        prods.append(prods[-1] @ Js[k])
    return torch.stack(prods[::-1]), Pn  # element k-1 is ds_T/ds_k


def module_grad_norm(m: nn.Module, x_layout: torch.Tensor, loss_fn=None) -> float:
    """||dL/dtheta|| over the module's parameters, by autograd through the module itself (the fused kernel)."""
    m.zero_grad()
    out, _ = m(x_layout)
    if loss_fn is None:
        last = out[:, -1] if m.batch_first else out[-1]
        L = last.sum()
    else:
        L = loss_fn(out)
    L.backward()
    return float(torch.sqrt(sum((p.grad.double() ** 2).sum() for p in m.parameters() if p.grad is not None)))


def central_difference(f, A: torch.Tensor, idx, h: float = 1e-6) -> list:
    """(f(A + h e_i) - f(A - h e_i)) / 2h for every index i of idx: central finite differences of the scalar f() in
    the entries of A (changed in place under no_grad, and restored); the error is ~ h^2 times f's third
    derivative / 6."""
    out = []
    with torch.no_grad():
        for i in idx:
            v = float(A[i])
            A[i] = v + h
            fp = float(f())
            A[i] = v - h
            fm = float(f())
            A[i] = v
            out.append((fp - fm) / (2 * h))
    return out
