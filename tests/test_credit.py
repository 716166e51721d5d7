"""interop/credit.py: the credit-assignment profile G(d) = mean log10 ||dE_t/dh_{t-d}|| against per-loss autograd.

The reference is written here: each (layer, direction) unrolled as an explicit nn.*Cell loop with the module's
weights, every h_k kept with retain_grad, and for each anchor t the backward of E_t alone (float64).
"""

from __future__ import annotations

import math

import pytest
import torch

from rnnscope import diagnose
from rnnscope.interop.credit import anchor_steps

F64 = torch.float64


def _module(kind: str, layers: int, bidirectional: bool, seed: int, scale: float = 1.0):
    torch.manual_seed(seed)
    cls = {"rnn": torch.nn.RNN, "gru": torch.nn.GRU, "lstm": torch.nn.LSTM}[kind]
    m = cls(3, 5, num_layers=layers, bidirectional=bidirectional).double()
    with torch.no_grad():
        for n, p in m.named_parameters():
            if n.startswith("weight_hh"):
                p.mul_(scale)
    return m


def _cell_loop(m, x):
    """The module as nn.*Cell loops: (output (T, B, dirs P), {(layer, direction): [h_1..h_T] own time order})."""
    kind = type(m).__name__
    cell_cls = {"RNN": torch.nn.RNNCell, "GRU": torch.nn.GRUCell, "LSTM": torch.nn.LSTMCell}[kind]
    dirs = 2 if m.bidirectional else 1
    T, B, _ = x.shape
    hs = {}
    inp = x
    for l in range(m.num_layers):
        outs = []
        for d, name in enumerate(["forward", "reverse"][:dirs]):
            sfx = f"_l{l}" + ("_reverse" if d else "")
            kw = {"nonlinearity": m.nonlinearity} if kind == "RNN" else {}
            c = cell_cls(inp.shape[2], m.hidden_size, **kw).double()
            with torch.no_grad():
                for p in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    getattr(c, p).copy_(getattr(m, p + sfx))
            h = torch.zeros(B, m.hidden_size, dtype=F64)
            s = (h, torch.zeros_like(h)) if kind == "LSTM" else h
            seq = []
            for k in range(T):
                pos = k if d == 0 else T - 1 - k
                s = c(inp[pos], s)
                hk = s[0] if kind == "LSTM" else s
                hk.retain_grad()
                seq.append(hk)
            hs[(l, name)] = seq
            o = torch.stack(seq)
            outs.append(o if d == 0 else o.flip(0))
        inp = torch.cat(outs, -1)
    return inp, hs


def _reference_credit(m, x, head, anchors, term=None):
    """G(d) of every (layer, direction) by autograd of each E_t alone: term(y_t), default sum (tanh(head(y_t)))^2."""
    T, B = x.shape[0], x.shape[1]
    sums = {}
    for t in anchors:
        y, hs = _cell_loop(m, x)
        E = torch.tanh(head(y[t - 1])).pow(2).sum() if term is None else term(y[t - 1])
        E.backward()
        for key, seq in hs.items():
            a = t if key[1] == "forward" else T + 1 - t
            g = torch.stack([seq[a - 1 - d].grad for d in range(a)])  # (a, B, P): d = 0..a-1
            lg = torch.log10(torch.linalg.vector_norm(g, dim=-1))  # (a, B)
            s, n = sums.setdefault(key, (torch.zeros(T, dtype=F64), torch.zeros(T, dtype=F64)))
            s[:a] += lg.sum(1)
            n[:a] += B
    return {k: s[:int(torch.nonzero(n).max()) + 1] / n[:int(torch.nonzero(n).max()) + 1] for k, (s, n) in sums.items()}


@pytest.mark.parametrize("kind,layers,bidirectional", [("rnn", 2, False), ("gru", 1, True), ("lstm", 2, False),
                                                       ("lstm", 1, True)])
def test_credit_profile_matches_per_loss_autograd(kind, layers, bidirectional):
    m = _module(kind, layers, bidirectional, seed=3)
    torch.manual_seed(4)
    T, B = 14, 3
    x = torch.randn(T, B, 3, dtype=F64)
    head = torch.nn.Linear(m.hidden_size * (2 if bidirectional else 1), 2).double()

    def loss(out):  # L = sum_t E_t, E_t = sum (tanh(head(y_t)))^2
        return torch.tanh(head(out)).pow(2).sum()

    d = diagnose(m, x, loss, jacobian=False, credit_anchors=5)
    anchors = d.layers[0].credit_anchors
    assert len(anchors) == 5 and len(set(anchors)) == 5 and all(1 <= t <= T for t in anchors)
    ref = _reference_credit(m, x, head, anchors)
    for ld in d.layers:
        assert ld.credit_case == "per-step" and ld.credit_anchors == anchors
        r = ref[(ld.layer, ld.direction)]
        assert ld.log10_credit.shape == r.shape
        torch.testing.assert_close(ld.log10_credit, r, rtol=0, atol=1e-9)  # log10: 1e-9 relative in the norm
    j = d.to_dict()["layers"][0]
    assert j["credit_case"] == "per-step" and j["credit_anchors"] == list(anchors) and len(j["log10_credit"]) == len(ref[(0, "forward")])


def test_all_steps_are_anchors_when_few_and_the_last_step_case_reads_the_adjoint():
    m = _module("gru", 1, False, seed=5)
    x = torch.randn(9, 2, 3, dtype=F64)
    d = diagnose(m, x, lambda out: out.pow(2).sum(), jacobian=False, credit_anchors=20)
    assert d.layers[0].credit_anchors == tuple(range(1, 10))
    # a loss on the last step only: G(d) = log10 ||dL/dh_{T-d}|| (batch mean), the adjoint profile reversed
    d = diagnose(m, x, lambda out: out[-1].pow(2).sum(), jacobian=False)
    ld = d.layers[0]
    assert ld.credit_case == "last-step" and ld.credit_anchors == (9,)
    torch.testing.assert_close(ld.log10_credit, ld.per_sequence_adjoint_h.mean(0).flip(0), rtol=0, atol=0)
    y, hs = _cell_loop(m, x)
    y[-1].pow(2).sum().backward()
    ref = torch.stack([torch.log10(torch.linalg.vector_norm(h.grad, dim=-1)) for h in hs[(0, "forward")]]).mean(1)
    torch.testing.assert_close(ld.log10_credit, ref.flip(0), rtol=0, atol=1e-9)


def test_anchor_sampling_is_seeded_and_spread():
    steps = list(range(1, 201))
    a = anchor_steps(steps, 8, seed=1)
    assert a == anchor_steps(steps, 8, seed=1) and len(a) == 8
    assert all(25 * i < t <= 25 * (i + 1) for i, t in enumerate(a))  # one per stratum of 25 steps
    m = _module("rnn", 1, False, seed=2)
    d = diagnose(m, torch.randn(60, 2, 3, dtype=F64), lambda out: out.pow(2).sum(), jacobian=False, credit_anchors=4)
    assert len(d.layers[0].credit_anchors) == 4 and len(d.layers[0].log10_credit) <= 60
    assert diagnose(m, torch.randn(6, 2, 3, dtype=F64), lambda out: out.sum(), credit_anchors=0).layers[0].log10_credit is None


@pytest.mark.parametrize("proj", [0, 2])
def test_lstm_spectral_h_rows_against_jacrev_products(proj):
    torch.manual_seed(6)
    m = torch.nn.LSTM(3, 4, proj_size=proj).double()
    T, B = 10, 2
    x = torch.randn(T, B, 3, dtype=F64)
    d = diagnose(m, x, lambda out: out[-1].sum(), jacobian=True, jacobian_sequences=None, credit_anchors=0)
    ld = d.layers[0]
    P, H = (proj or 4), 4
    W_ih, W_hh, b_ih, b_hh = (getattr(m, n + "_l0").detach() for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
    W_hr = m.weight_hr_l0.detach() if proj else None

    def step(s, xk):  # s = (h, c) concatenated (P + H,)
        h, cc = s[:P].unsqueeze(0), s[P:].unsqueeze(0)
        gates = xk.unsqueeze(0) @ W_ih.T + b_ih + h @ W_hh.T + b_hh  # nn.LSTM's equations, written out
        i, f, g, o = gates.chunk(4, 1)
        c2 = torch.sigmoid(f) * cc + torch.sigmoid(i) * torch.tanh(g)
        h2 = torch.sigmoid(o) * torch.tanh(c2)
        if proj:
            h2 = h2 @ W_hr.T
        return torch.cat([h2, c2], 1)[0]

    for b in range(B):
        s = [torch.zeros(P + H, dtype=F64)]
        for k in range(T):
            s.append(step(s[-1], x[k, b]))
        Js = [torch.func.jacrev(step)(s[k], x[k, b]) for k in range(T)]  # J_{k+1} = ds_{k+1}/ds_k
        prod = torch.eye(P + H, dtype=F64)
        ref_h, ref_full = [0.0] * T, [0.0] * T
        for k in range(T, 0, -1):  # prod = ds_T/ds_k
            ref_h[k - 1] = math.log10(float(torch.linalg.matrix_norm(prod[:P], ord=2)))
            ref_full[k - 1] = math.log10(float(torch.linalg.matrix_norm(prod, ord=2)))
            prod = prod @ Js[k - 1]
        torch.testing.assert_close(ld.per_sequence_spectral_h[b], torch.tensor(ref_h, dtype=F64), rtol=0, atol=1e-9)
        torch.testing.assert_close(ld.per_sequence_spectral[b], torch.tensor(ref_full, dtype=F64), rtol=0, atol=1e-9)
    assert "log10_spectral_h" in d.to_dict()["layers"][0]


# ------------------------------------------------------------------------------------------------ verdicts

def _first_move(g: torch.Tensor, decades: float = 3.0):
    """The first d with |G(d) - G(0)| >= decades and its direction, from a reference profile."""
    for dd in range(1, g.shape[0]):
        if g[dd] - g[0] <= -decades:
            return dd, "vanishing"
        if g[dd] - g[0] >= decades:
            return dd, "exploding"
    return None, "stable"


def _per_step(head):
    return lambda out: torch.tanh(head(out)).pow(2).sum()


def test_vanilla_rnn_with_small_weights_vanishes_although_the_adjoint_is_flat():
    m = _module("rnn", 1, False, seed=7, scale=0.4)
    torch.manual_seed(8)
    T, B = 40, 3
    x = torch.randn(T, B, 3, dtype=F64)
    head = torch.nn.Linear(5, 2).double()
    d = diagnose(m, x, _per_step(head), jacobian=True, credit_anchors=6)
    ld = d.layers[0]
    a = ld.log10_adjoint_h
    assert float(a.max() - a.min()) < 1.5  # ||dL/dh_k|| is flat: every step has its own loss term
    ref = _reference_credit(m, x, head, ld.credit_anchors)[(0, "forward")]
    dd, word = _first_move(ref)
    assert word == "vanishing" and dd <= 20
    assert ld.rate_source == "credit" and ld.horizon == dd
    assert ld.verdict.startswith("vanishing: credit from d steps ahead falls below 10^-3 of the immediate one "
                                 f"at d = {dd} (||dE_t/dh_{{t-d}}||, per-step loss")
    # the same model with credit_anchors=0 falls back on ||ds_T/ds_k||_2 (the old reading)
    assert diagnose(m, x, _per_step(head), jacobian=True, credit_anchors=0).layers[0].rate_source == "spectral"


def test_large_weights_on_a_short_sequence_explode():
    # relu RNN, W_hh = 2 I, positive drive: every unit stays active, dE_t/dh_{t-d} = 2^d E'_t exactly
    m = torch.nn.RNN(1, 3, nonlinearity="relu").double()
    with torch.no_grad():
        m.weight_hh_l0.copy_(2 * torch.eye(3))
        m.weight_ih_l0.fill_(1.0)
        m.bias_ih_l0.fill_(0.1)
        m.bias_hh_l0.zero_()
    x = torch.rand(14, 2, 1, dtype=F64) + 0.5
    head = torch.nn.Linear(3, 1).double()
    d = diagnose(m, x, lambda out: head(out).sum(), credit_anchors=14)
    ld = d.layers[0]
    ref = _reference_credit(m, x, head, ld.credit_anchors, term=lambda y: head(y).sum())
    dd, word = _first_move(ref[(0, "forward")])
    assert word == "exploding" and dd == math.ceil(3 / math.log10(2))  # 2^10 > 10^3 > 2^9
    assert ld.verdict.startswith(f"exploding: credit from d steps ahead rises above 10^3 of the immediate one at d = {dd} ")
    assert any("clip" in a for a in d.advice)


def test_identity_recurrence_and_an_lstm_with_forget_bias_5_hold():
    m = torch.nn.RNN(1, 3, nonlinearity="relu").double()  # h_k = h_{k-1} + x_k: dE_t/dh_{t-d} = dE_t/dh_t
    with torch.no_grad():
        m.weight_hh_l0.copy_(torch.eye(3))
        m.weight_ih_l0.fill_(1.0)
        m.bias_ih_l0.zero_()
        m.bias_hh_l0.zero_()
    x = torch.rand(50, 2, 1, dtype=F64)
    head = torch.nn.Linear(3, 1).double()
    ld = diagnose(m, x, lambda out: head(out).sum(), credit_anchors=8).layers[0]
    torch.testing.assert_close(ld.log10_credit, torch.full_like(ld.log10_credit, ld.log10_credit[0].item()), rtol=0, atol=1e-12)
    assert ld.verdict.startswith(f"stable over the measured range (d = 0..{ld.log10_credit.shape[0] - 1})")
    lstm = _module("lstm", 1, False, seed=9, scale=0.5)
    with torch.no_grad():
        H = lstm.hidden_size
        lstm.bias_ih_l0[H:2 * H].fill_(5.0)  # forget-gate bias 5: f ~ 0.993 per step
        lstm.bias_hh_l0[H:2 * H].zero_()
    torch.manual_seed(10)
    x = torch.randn(40, 3, 3, dtype=F64)
    head = torch.nn.Linear(5, 2).double()
    ld = diagnose(lstm, x, _per_step(head), jacobian=False, credit_anchors=6).layers[0]
    ref = _reference_credit(lstm, x, head, ld.credit_anchors)[(0, "forward")]
    assert _first_move(ref)[1] == "stable" and ld.verdict.startswith("stable over the measured range")


def test_last_step_loss_verdict_reads_the_adjoint_and_the_monitor_agrees_with_diagnose():
    from rnnscope.interop.monitor import GradientFlowMonitor

    m = _module("rnn", 1, False, seed=7, scale=0.4)
    x = torch.randn(40, 3, 3, dtype=F64)
    ld = diagnose(m, x, lambda out: out[-1].pow(2).sum(), jacobian=False).layers[0]
    y, hs = _cell_loop(m, x)
    y[-1].pow(2).sum().backward()
    ref = torch.stack([torch.log10(torch.linalg.vector_norm(h.grad, dim=-1)) for h in hs[(0, "forward")]]).mean(1)
    dd, word = _first_move(ref.flip(0))
    assert ld.rate_source == "adjoint" and ld.verdict.startswith(f"vanishing: credit from d steps ahead falls below "
                                                                 f"10^-3 of the immediate one at d = {dd} (||dL/dh_k||")
    head = torch.nn.Linear(5, 2).double()
    for loss in (_per_step(head), lambda out: out[-1].pow(2).sum()):
        mon = GradientFlowMonitor(m, every=1)
        got = mon.step(x, loss)
        want = diagnose(m, x, loss, **mon.options)  # the one verdict: diagnose's, with the monitor's options
        assert [l.verdict for l in got.layers] == [l.verdict for l in want.layers]
        assert got.layers[0].verdict.startswith("vanishing")


def test_a_direction_no_loss_term_reads_gets_no_credit_verdict():
    torch.manual_seed(11)
    g = torch.nn.GRU(2, 4, bidirectional=True).double()
    x = torch.randn(10, 3, 2, dtype=F64)
    d = diagnose(g, x, lambda o: o[..., :4].pow(2).sum())  # per-step loss on the forward half only
    fwd, rev = d.layer(0, "forward"), d.layer(0, "reverse")
    assert fwd.rate_source == "credit" and torch.isfinite(fwd.log10_credit).all()
    assert rev.log10_credit.isneginf().all() and rev.verdict.startswith("too short to tell")  # exactly zero credit
