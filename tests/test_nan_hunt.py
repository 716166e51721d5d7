"""NaN hunting (interop/nan_hunt.py): where a recurrent model's forward state, loss, backward adjoint or parameter
gradient first goes non-finite or blows up. References: explicit nn.RNNCell / LSTMCell / GRUCell loops with the
module's weights (in its own dtype for overflow, float64 with retain_grad for adjoints), closed forms of
trajectories built by hand (relu with W_hh = c I), torch.autograd's own .grad in float32, and the rule applied by
hand (statistics.median over the finite log10 norms, a plain loop over the steps in the forward / backward order)."""

from __future__ import annotations

import json
import math
import statistics

import pytest
import torch
from torch import nn

from rnnscope.interop.nan_hunt import (NonFinite, adjoint_blowup, forward_blowup, hunt, nonfinite_parameters,
                                       tolerant_rerun)
from rnnscope.interop.torch_models import rerun

from test_diagnose_model import reference  # autograd through nn.*Cell loops, float64, retain_grad on every h_k

F32, F64 = torch.float32, torch.float64


def cell_states(rnn: nn.RNNBase, x: torch.Tensor, dtype=F32) -> dict:
    """{(layer, direction index): states (T, B, S)} by an explicit nn.*Cell loop in dtype (own time order; LSTM
    (h, c)); x time-major (T, B, D). No fused kernel, no rnnscope code."""
    kind = type(rnn).__name__
    T, B = x.shape[:2]
    dirs = 2 if rnn.bidirectional else 1
    out, inp = {}, x.to(dtype)
    for l in range(rnn.num_layers):
        outs = []
        for d in range(dirs):
            sfx = f"_l{l}" + ("_reverse" if d else "")
            din = inp.shape[2]
            c = {"LSTM": nn.LSTMCell, "GRU": nn.GRUCell}.get(kind)
            c = c(din, rnn.hidden_size, dtype=dtype) if c else nn.RNNCell(din, rnn.hidden_size, bias=rnn.bias,
                                                                             nonlinearity=rnn.nonlinearity, dtype=dtype)
            with torch.no_grad():
                for w in ("weight_ih", "weight_hh") + (("bias_ih", "bias_hh") if rnn.bias else ()):
                    getattr(c, w).copy_(getattr(rnn, w + sfx))
                h = torch.zeros(B, rnn.hidden_size, dtype=dtype)
                cc = torch.zeros(B, rnn.hidden_size, dtype=dtype)
                states = []
                for k in range(T):
                    xk = inp[T - 1 - k] if d else inp[k]
                    if kind == "LSTM":
                        h, cc = c(xk, (h, cc))
                        states.append(torch.cat([h, cc], -1))
                    else:
                        h = c(xk, h)
                        states.append(h)
            s = torch.stack(states)  # (T, B, S)
            out[(l, d)] = s
            outs.append(s[:, :, :rnn.hidden_size].flip(0) if d else s[:, :, :rnn.hidden_size])
        inp = torch.cat(outs, -1)
    return out


def first_bad(s: torch.Tensor) -> tuple[int, int] | None:
    """(step 1..T, sequence) of the first non-finite state of (T, B, S), by a plain loop."""
    for k in range(s.shape[0]):
        for b in range(s.shape[1]):
            if not bool(torch.isfinite(s[k, b]).all()):
                return k + 1, b
    return None


def by_hand(y: torch.Tensor, backward: bool = False):
    """The rule by hand on log10 norms y (T, B): median of the finite ones (statistics.median), then the first
    (step, sequence) in the forward order (k = 1..T) or the backward one (k = T..1) with y nan, +inf or > m + 6."""
    vals = [float(v) for v in y.reshape(-1) if math.isfinite(float(v))]
    m = statistics.median(vals)
    ks = range(y.shape[0] - 1, -1, -1) if backward else range(y.shape[0])
    for k in ks:
        for b in range(y.shape[1]):
            v = float(y[k, b])
            if math.isnan(v) or v == math.inf or v > m + 6:
                return k + 1, b, m
    return None, None, m


def log10_norms(s: torch.Tensor) -> torch.Tensor:
    return torch.log10(torch.linalg.vector_norm(s.to(F64), dim=-1))


def relu_rnn(H: int, w_hh: float, w_ih, T_dtype=F32) -> nn.RNN:
    rnn = nn.RNN(1, H, nonlinearity="relu", dtype=T_dtype)
    with torch.no_grad():
        rnn.weight_hh_l0.copy_(w_hh * torch.eye(H))
        rnn.weight_ih_l0.copy_(torch.tensor(w_ih).reshape(H, 1))
        rnn.bias_ih_l0.zero_()
        rnn.bias_hh_l0.zero_()
    return rnn


# ------------------------------------------------------------------------------------------- forward

def test_relu_state_overflows_float32_at_the_spike_step():
    """h_k = h_{k-1} + W_ih x_k (relu, W_hh = I, inputs >= 0): at step 37 of sequence 2 the input 3e38 makes the
    first entry 2 x 3e38 > finfo(float32).max = 3.4e38: inf there, finite everywhere before."""
    torch.manual_seed(0)
    rnn = relu_rnn(3, 1.0, [2.0, 1.0, 0.5])
    x = torch.rand(50, 4, 1) * 0.1
    x[36, 2] = 3e38
    assert 2 * 3e38 > torch.finfo(F32).max > 1 * 3e38 + 50  # the closed form: only the first entry overflows
    ref = cell_states(rnn, x)[(0, 0)]
    assert first_bad(ref) == (37, 2) and torch.isinf(ref[36, 2, 0]) and torch.isfinite(ref[36, 2, 1:]).all()
    r = forward_blowup([("", rerun(rnn, x))])
    assert (r.where, r.module, r.layer, r.direction, r.step, r.position, r.sequence, r.what) == (
        "forward", "", 0, "forward", 37, 37, 2, "inf")
    assert r.log10_value == math.inf and r.dtype == "float32"
    y = log10_norms(ref)
    _, _, m = by_hand(y)
    assert abs(r.log10_median - m) < 1e-5
    assert "becomes inf at step 37 (position 37, sequence 2)" in r.message()


def test_nan_input_names_layer_0_and_the_reverse_steps_position():
    """A NaN in the input at position 37 of sequence 2 (T = 50): every later state of that sequence is NaN in both
    layers; layer 0 is named (the root), and in a bidirectional stack its reverse direction meets position 37
    first, at its own step 50 + 1 - 37 = 14."""
    torch.manual_seed(1)
    x = torch.randn(50, 4, 3)
    x[36, 2, 1] = float("nan")
    uni = nn.RNN(3, 6, num_layers=2)
    ref = cell_states(uni, x)
    assert first_bad(ref[(0, 0)]) == (37, 2) and first_bad(ref[(1, 0)]) == (37, 2)  # both layers: the same step
    run = tolerant_rerun(uni, x)  # rerun refuses non-finite inputs; the cells' own steps, unchecked
    for l in range(2):
        got, want = run.runs[l].trace.states[1:], ref[(l, 0)]
        assert torch.equal(torch.isnan(got), torch.isnan(want))
        assert torch.allclose(got.nan_to_num(), want.nan_to_num(), atol=1e-5)
    r = forward_blowup([("enc", run)])
    assert (r.module, r.layer, r.direction, r.step, r.position, r.sequence, r.what) == ("enc", 0, "forward", 37, 37,
                                                                                       2, "nan")
    assert math.isnan(r.log10_value)
    bi = nn.RNN(3, 6, num_layers=2, bidirectional=True)
    ref = cell_states(bi, x)
    assert first_bad(ref[(0, 1)]) == (14, 2) and first_bad(ref[(0, 0)]) == (37, 2)
    r = forward_blowup([("enc", tolerant_rerun(bi, x))])
    assert (r.layer, r.direction, r.step, r.position, r.sequence) == (0, "reverse", 14, 37, 2)
    # a batch_first module: the same position, read from (B, T, D)
    bf = nn.RNN(3, 6, num_layers=2, batch_first=True)
    r = forward_blowup([("a", rerun(bf, torch.randn(4, 50, 3))), ("b", tolerant_rerun(bf, x.transpose(0, 1)))])
    assert (r.module, r.layer, r.step, r.sequence) == ("b", 0, 37, 2)  # the first call is clean: the second named


def test_the_1e6_x_median_rule_on_finite_trajectories():
    """(a) relu with W_hh = 10 I from h_1 = W_ih x_1 (x_k = 0 after): ||h_k|| = 10^(k-1) ||h_1||, k = 1..30, in
    both sequences; the median of the 60 log10 norms is log10 ||h_1|| + 14.5, so the first step above it + 6 is
    k - 1 = 21 (closed form), finite in float32. (b) W_hh = 0.5 I, inputs 1: a steady ||h_k||; an input of 1e7
    at step 20 of sequence 1 jumps it by 10^7: named at step 20, sequence 1 (the rule by hand on a float64 loop)."""
    rnn = relu_rnn(2, 10.0, [1.0, 0.5])
    x = torch.zeros(30, 2, 1)
    x[0] = 1.0
    r = forward_blowup([("", rerun(rnn, x))])
    lh1 = math.log10(math.sqrt(1.25))
    assert (r.step, r.sequence, r.what) == (22, 0, "above 1e6 x median")
    assert abs(r.log10_median - (lh1 + 14.5)) < 1e-5 and abs(r.log10_value - (lh1 + 21)) < 1e-5
    assert torch.isfinite(rerun(rnn, x).runs[0].trace.states).all()

    torch.manual_seed(2)
    rnn = relu_rnn(3, 0.5, [1.0, 0.7, 0.2])
    x = 1.0 + 0.1 * torch.rand(40, 3, 1)
    x[19, 1] = 1e7
    y = log10_norms(cell_states(rnn, x, F64)[(0, 0)])
    k, b, m = by_hand(y)
    assert (k, b) == (20, 1)  # the construction
    r = forward_blowup([("", rerun(rnn, x))])
    assert (r.step, r.sequence, r.what) == (20, 1, "above 1e6 x median")
    assert abs(r.log10_median - m) < 1e-5 and abs(r.log10_value - float(y[19, 1])) < 1e-5
    assert forward_blowup([("", rerun(rnn, 1.0 + 0.1 * torch.rand(40, 3, 1)))]) is None  # steady: nothing


# ------------------------------------------------------------------------------------------- backward

def test_adjoint_blowup_on_hand_built_profiles():
    """The backward order (calls reversed, top layer first, k = T down to 1), -inf never flagged nor in the median,
    nan / +inf flagged, a value above log10 finfo(dtype).max flagged as inf with the dtype given."""
    T, B = 12, 3
    flat = lambda: torch.zeros(B, T, dtype=F64)
    enc0, enc1, dec0, dec1 = flat(), flat(), flat(), flat()
    enc0[1, 9] = 8.0  # call 0 layer 0, k = 10
    dec0[2, 4] = 7.0  # call 1 layer 0, k = 5
    dec0[0, 2] = 9.0  # call 1 layer 0, k = 3: later in the backward order than k = 5
    prof = [("enc", 0, "forward", enc0), ("enc", 1, "forward", enc1), ("dec", 0, "forward", dec0),
            ("dec", 1, "forward", dec1)]
    r = adjoint_blowup(prof)
    assert (r.where, r.module, r.layer, r.step, r.position, r.sequence, r.what) == ("backward", "dec", 0, 5, 5, 2,
                                                                                    "above 1e6 x median")
    assert r.log10_value == 7.0 and r.log10_median == 0.0
    dec1[0, 1] = float("nan")  # the top layer first, though its k = 2 is early
    assert (adjoint_blowup(prof).layer, adjoint_blowup(prof).step, adjoint_blowup(prof).what) == (1, 2, "nan")
    twice = [("rnn", 0, "forward", enc0), ("rnn", 0, "forward", dec0)]  # one module called twice: calls 0, 1
    assert (adjoint_blowup(twice).step, adjoint_blowup(twice).log10_value) == (5, 7.0)  # the second call first
    rev = flat()
    rev[1, 3] = float("inf")  # the reverse direction: its step 4 reads position 12 + 1 - 4 = 9
    r = adjoint_blowup([("", 0, "reverse", rev)])
    assert (r.direction, r.step, r.position, r.sequence, r.what) == ("reverse", 4, 9, 1, "inf")
    # -inf (exactly zero adjoints after the last loss step) are neither flagged nor in the median
    z = torch.full((B, T), float("-inf"), dtype=F64)
    z[:, :4] = torch.tensor([0.0, 0.5, 1.0, 1.5])
    assert adjoint_blowup([("", 0, "forward", z)]) is None
    z[1, 0] = 7.0  # the median of the 12 finite values is 1 by hand (0 0 .5 .5 .5 1 | 1 1 1.5 1.5 1.5 7): 7 = 1 + 6
    assert statistics.median([float(v) for v in z.reshape(-1) if math.isfinite(float(v))]) == 1.0
    assert adjoint_blowup([("", 0, "forward", z)]) is None  # not above
    z[1, 0] = 7.25
    r = adjoint_blowup([("", 0, "forward", z)])
    assert (r.step, r.sequence, r.log10_median) == (1, 1, 1.0)
    ov = flat() + 35.0  # every value is the median: no jump, but 10^39 overflows float32
    ov[0, 6] = 39.0
    assert adjoint_blowup([("", 0, "forward", ov)]) is None
    r = adjoint_blowup([("", 0, "forward", ov)], F32)
    assert (r.step, r.what, r.dtype) == (7, "inf", "float32")


def test_adjoint_blowup_and_hunt_on_a_loss_weight_jump():
    """L = sum_t w_t sum(h_t) of a 2-layer tanh RNN with small W_hh and w_20 = 1e8 (else 1): dL/dh_k jumps by about
    10^8 at k = 20 and decays before it. The profiles of autograd through nn.RNNCell loops (float64) give layer 1,
    k = 20 by the rule; hunt on the float32 model finds the same place, and the same value."""
    torch.manual_seed(3)
    rnn = nn.RNN(2, 8, num_layers=2).double()
    with torch.no_grad():
        for l in range(2):
            getattr(rnn, f"weight_hh_l{l}").mul_(0.3)
    w = torch.ones(40, dtype=F64)
    w[19] = 1e8
    x = torch.randn(40, 3, 2, dtype=F64)
    loss = lambda out: (w.to(out.dtype)[:, None, None] * out).sum()
    _, ref = reference(rnn, x, lambda o: loss(o[0]))
    prof = [("", l, "forward", torch.log10(ref[("", l, 0)][0])) for l in range(2)]
    k, b, m = by_hand(prof[1][3].T, backward=True)
    assert k == 20  # the construction
    r = adjoint_blowup(prof)
    assert (r.layer, r.step, r.sequence, r.what) == (1, 20, b, "above 1e6 x median")
    assert abs(r.log10_median - m) < 1e-12
    h = hunt(rnn.float(), x.float(), loss)
    assert (h.where, h.module, h.layer, h.direction, h.step, h.sequence, h.parameters, h.dtype) == (
        "backward", "", 1, "forward", 20, b, (), "float32")
    assert abs(h.log10_value - r.log10_value) < 1e-5 and abs(h.log10_median - m) < 1e-4


def test_hunt_crosses_calls_backward_in_an_encoder_decoder():
    """Encoder GRU -> decoder GRU from h0 = the encoder's h_n -> head; a loss weight of 1e8 on the decoder's
    position 3: the later call (the decoder) is reached first by the backward pass, its top layer; the profiles
    of every call (through h_n into the encoder too) against autograd through cell loops (float64)."""

    class EncDec(nn.Module):
        def __init__(self):
            super().__init__()
            self.enc = nn.GRU(3, 6, num_layers=2)
            self.dec = nn.GRU(3, 6, num_layers=2)
            self.head = nn.Linear(6, 2)

        def forward(self, a, b):
            return self.head(self.dec(b, self.enc(a)[1])[0])

    torch.manual_seed(4)
    model = EncDec().double()
    a, b = torch.randn(15, 2, 3, dtype=F64), torch.randn(20, 2, 3, dtype=F64)
    w = torch.ones(20, dtype=F64)
    w[2] = 1e8  # early: the GRU carries it back with little decay, so the steps before it are few
    loss = lambda y: (w[:, None, None] * y).sum()
    _, ref = reference(model, (a, b), loss)
    prof = [(n, l, "forward", torch.log10(ref[(n, l, 0)][0])) for n in ("enc", "dec") for l in range(2)]
    r = adjoint_blowup(prof)
    h = hunt(model, (a, b), loss)
    k, seq, m = by_hand(prof[3][3].T, backward=True)
    assert (r.module, r.layer, r.step, r.sequence, r.log10_median) == ("dec", 1, 3, seq, m) and k == 3
    assert (h.where, h.module, h.layer, h.step, h.sequence) == ("backward", "dec", 1, 3, r.sequence)
    assert abs(h.log10_value - r.log10_value) < 1e-9 and abs(h.log10_median - r.log10_median) < 1e-9
    # the encoder, reached through h_n only, carries ~10^6 everywhere: no jump by hand, none found
    assert all(by_hand(p[3].T, backward=True)[0] is None for p in prof[:2]) and adjoint_blowup(prof[:2]) is None


# ------------------------------------------------------------------------------------------- parameters

def test_nonfinite_parameters_equal_float32_autograd_on_an_overflowing_gradient():
    """relu, W_hh = 2 I, zero biases, x_1 = 1 then 0, T = 126, L = sum(h_T): h_k = 2^(k-1) h_1 (h_1 = W_ih, entries
    0.5..1) and dL/dh_k = 2^(T-k). dL/dW_hh = sum_k dL/dh_k h_{k-1}^T = (T-1) 2^(T-2) 1 h_1^T ~ 2^131 h_1: beyond
    float32 (2^128), finite in float64; dL/dW_ih = 2^(T-1) = 2^125, dL/db = 2^T - 1: finite in float32. The names
    from the exact float64 log norms equal those whose float32 autograd .grad has non-finite entries."""
    T = 126
    rnn = relu_rnn(3, 2.0, [1.0, 0.75, 0.5])
    x = torch.zeros(T, 1, 1)
    x[0] = 1.0
    rnn.zero_grad()
    rnn(x)[0][-1].sum().backward()
    want = tuple(n for n, p in rnn.named_parameters() if not torch.isfinite(p.grad).all())
    assert want == ("weight_hh_l0",)  # the construction: only W_hh overflows
    d = relu_rnn(3, 2.0, [1.0, 0.75, 0.5], F64)
    g = torch.autograd.grad(d(x.double())[0][-1].sum(), list(d.parameters()))
    named = [(n, math.log10(float(torch.linalg.vector_norm(gi)))) for (n, _), gi in zip(d.named_parameters(), g)]
    assert abs(named[1][1] - math.log10((T - 1) * 2.0 ** (T - 2) * math.sqrt(3) * math.sqrt(1 + .75**2 + .25))) < 1e-9
    assert nonfinite_parameters(named, F32) == want
    assert nonfinite_parameters(named, F64) == ()
    # hunt: the forward grows as 2^k (the median rule: (k - 1) log10 2 > 62.5 log10 2 + 6 first at k = 84, closed
    # form), the loss is finite, and the non-finite gradients of the model's own float32 backward are named
    grads_before = [p.grad.clone() for p in rnn.parameters()]
    h = hunt(rnn, x)
    assert (h.where, h.step, h.what, h.parameters) == ("forward", 84, "above 1e6 x median", want)
    assert all(torch.equal(p.grad, g0) or (torch.isnan(p.grad) == torch.isnan(g0)).all()
               for p, g0 in zip(rnn.parameters(), grads_before))  # .grad untouched
    assert "non-finite gradients in float32: weight_hh_l0" in h.message()
    with pytest.raises(Exception, match="dtype"):
        nonfinite_parameters(named, "float32")


# ------------------------------------------------------------------------------------------- hunt

class LM(nn.Module):
    def __init__(self, V: int = 20):
        super().__init__()
        self.emb = nn.Embedding(V, 5)
        self.rnn = nn.LSTM(5, 12, num_layers=2, batch_first=True, dropout=0.3)
        self.head = nn.Linear(12, V)

    def forward(self, ids):
        return self.head(self.rnn(self.emb(ids))[0])


def test_hunt_finds_a_nan_embedding_row_at_its_position():
    """Token 0's embedding row is NaN and it occurs once, at position 37 of sequence 2: the LSTM's state is NaN
    from there (an nn.LSTMCell loop on the embeddings says so); hunt names rnn, layer 0, step 37, sequence 2. The
    model in train mode (dropout between its layers) stays so, and no .grad is written."""
    torch.manual_seed(5)
    lm = LM().train()
    with torch.no_grad():
        lm.emb.weight[0] = float("nan")
    ids = torch.randint(1, 20, (4, 60))
    ids[2, 36] = 0
    ref = cell_states(lm.rnn, lm.emb(ids).detach().transpose(0, 1))
    assert first_bad(ref[(0, 0)]) == (37, 2) and first_bad(ref[(1, 0)]) == (37, 2)
    ce = lambda logits: nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 20), ids[:, 1:].reshape(-1))
    h = hunt(lm, ids, ce)
    assert isinstance(h, NonFinite)
    assert (h.where, h.module, h.layer, h.direction, h.step, h.position, h.sequence, h.what) == (
        "forward", "rnn", 0, "forward", 37, 37, 2, "nan")
    assert lm.training and lm.rnn.training and all(p.grad is None for p in lm.parameters())
    d = h.to_dict()
    assert json.loads(json.dumps(d))["log10_value"] is None and d["module"] == "rnn"
    assert "forward state of rnn layer 0 forward becomes nan at step 37 (position 37, sequence 2)" in d["message"]


def test_hunt_names_the_loss_when_the_forward_is_finite():
    """A loss that is inf (or NaN) on finite outputs: every state of the nn.LSTMCell loop is finite, hunt says
    where = "loss"; for a whole model too. A clean model and loss: nothing (None)."""
    torch.manual_seed(6)
    lstm = nn.LSTM(3, 8, num_layers=2)
    x = torch.randn(30, 4, 3)
    assert all(first_bad(s) is None for s in cell_states(lstm, x).values())
    h = hunt(lstm, x, lambda out: out.pow(2).sum() * float("inf"))
    assert (h.where, h.what, h.module, h.layer, h.step, h.parameters, h.dtype) == ("loss", "inf", "", None, None, (),
                                                                                  "float32")
    assert h.message() == "the loss is inf (float32) while every recurrent state is finite"
    h = hunt(lstm, x, lambda out, y: (out.sum() - y).log(), targets=torch.tensor(1e9))
    assert (h.where, h.what) == ("loss", "nan")
    lm = LM()
    ids = torch.randint(0, 20, (3, 25))
    assert hunt(lm, ids, lambda logits: logits.sum() + float("nan")).where == "loss"
    assert hunt(lm, ids, lambda logits: logits.pow(2).mean()) is None
    assert hunt(lstm, x) is None  # the sum of the last output
    with pytest.raises(Exception, match="loss_fn: expected a loss function"):
        hunt(lm, ids)


def test_hunt_on_a_bare_cell():
    """An nn.GRUCell loop (re-run only) with a NaN input at step 5 of sequence 1."""
    torch.manual_seed(7)
    cell = nn.GRUCell(2, 4)
    x = torch.randn(12, 3, 2)
    x[4, 1, 0] = float("nan")
    h = hunt(cell, x)
    assert (h.where, h.layer, h.direction, h.step, h.sequence, h.what) == ("forward", 0, "forward", 5, 1, "nan")
    assert hunt(cell, torch.randn(12, 3, 2), lambda out: out.sum() / 0.0).where == "loss"


def test_hunt_names_only_the_parameters_when_all_else_is_finite():
    """relu, W_hh = 0, W_ih = (1, 1), x_k = 1e18 at every step: h_k = (1e18, 1e18), uniform; L = sum_k c . h_k with
    c = (1e18, -1e18): L = 0 exactly and dL/dh_k = c at every step (uniform: no jump). dL/dW_hh[i, j] =
    sum_{k >= 2} c_i h_{k-1, j} = +-(T - 1) 1e36 and dL/dW_ih = +-T 1e36 pass 3.4e38 at T = 400; dL/db = +-T 1e18
    does not. hunt says where = "parameters" with the names float32 autograd's .grad has non-finite."""
    T = 400
    rnn = relu_rnn(2, 0.0, [1.0, 1.0])
    x = torch.full((T, 1, 1), 1e18)
    c = torch.tensor([1e18, -1e18])
    loss = lambda out: (out * c).sum()
    rnn.zero_grad()
    L = loss(rnn(x)[0])
    L.backward()
    want = tuple(n for n, p in rnn.named_parameters() if not torch.isfinite(p.grad).all())
    assert float(L.detach()) == 0.0 and want == ("weight_ih_l0", "weight_hh_l0")
    rnn.zero_grad(set_to_none=True)
    h = hunt(rnn, x, loss)
    assert (h.where, h.parameters, h.dtype) == ("parameters", want, "float32")
    assert h.message().startswith("the gradients of weight_ih_l0, weight_hh_l0 are non-finite in float32")
    d = relu_rnn(2, 0.0, [1.0, 1.0], F64)
    g = torch.autograd.grad(loss(d(x.double())[0]), list(d.parameters()))
    named = [(n, math.log10(float(torch.linalg.vector_norm(gi)))) for (n, _), gi in zip(d.named_parameters(), g)]
    assert nonfinite_parameters(dict(named), F32) == want
