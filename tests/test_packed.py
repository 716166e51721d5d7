"""Variable lengths (PackedSequence): torch_models.rerun(..., lengths=L) against the module's own packed run and
against a per-sequence loop over nn.*Cell (tests/torch_reference.step_fn) that never sees the padding;
own_order / valid_steps against hand loops; capture.py on whole models that pack their embeddings, its leaves'
gradients and push_back's dL/d(embedding output) against autograd through the model itself. float64."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from rnnscope.core.errors import InputError
from rnnscope.interop.capture import accumulate, capture_forward, own_forward, push_back
from rnnscope.interop.diagnose import diagnose
from rnnscope.interop.torch_models import own_order, rerun, valid_steps
from torch_reference import D, make_module, step_fn

F64 = torch.float64
LENGTHS = torch.tensor([5, 9, 2, 9, 1, 7])  # unsorted, with ties and a length-1 sequence; T = 9
pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")


def padded_inputs(L: torch.Tensor, T: int, Din: int, batch_first: bool, seed: int = 0, pad: float = 50.0):
    """(T, B, D) (or (B, T, D)) random inputs with `pad` (not zero: the padding must not matter) beyond each length."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(T, L.numel(), Din, generator=g, dtype=F64)
    x[~(torch.arange(T)[:, None] < L[None, :])] = pad
    return x.transpose(0, 1).contiguous() if batch_first else x


def own_packed(m: nn.RNNBase, x, L, hx=None, T=None):
    """The module's own packed run: (pad_packed_sequence(output) in its layout, h_n, c_n or None)."""
    with torch.no_grad():
        out, hn = m(pack_padded_sequence(x, L, batch_first=m.batch_first, enforce_sorted=False), hx)
    out = pad_packed_sequence(out, batch_first=m.batch_first, total_length=T)[0]
    return (out, *hn) if isinstance(hn, tuple) else (out, hn, None)


def loop_reference(m: nn.RNNBase, x_tm: torch.Tensor, L: torch.Tensor) -> dict:
    """Per sequence b, only its first L_b positions: {(l, d): [(L_b, S) states s_1..s_{L_b} in own order] per b}."""
    dirs = 2 if m.bidirectional else 1
    Pn = m.proj_size or m.hidden_size
    lstm = isinstance(m, nn.LSTM)
    out = {}
    for b, Lb in enumerate(L.tolist()):
        inp = x_tm[:Lb, b:b + 1]  # (L_b, 1, D): the sequence without its padding
        for l in range(m.num_layers):
            outs = []
            for d in range(dirs):
                step = step_fn(m, l, bool(d))
                h = torch.zeros(1, Pn, dtype=F64)
                c = torch.zeros(1, m.hidden_size, dtype=F64) if lstm else None
                states = []
                with torch.no_grad():
                    for k in range(Lb):
                        h, c = step(inp[Lb - 1 - k] if d else inp[k], h, c)
                        states.append(h[0] if c is None else torch.cat([h[0], c[0]]))
                out.setdefault((l, d), []).append(torch.stack(states))
                hs = torch.stack([s[:Pn] for s in states])[:, None]  # (L_b, 1, P) own order
                outs.append(hs.flip(0) if d else hs)
            inp = torch.cat(outs, dim=2)
    return out


@pytest.mark.parametrize("bf", [False, True], ids=["tm", "bf"])
@pytest.mark.parametrize("bi", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("kind", ["lstm", "lstm_proj", "gru", "rnn_tanh", "rnn_relu"])
def test_rerun_with_lengths_equals_the_modules_packed_run(kind, layers, bi, bf):
    m = make_module(kind, layers, bi, bf, True, scale=0.5)
    x = padded_inputs(LENGTHS, 9, D, bf, seed=layers)
    n = layers * (2 if bi else 1)
    g = torch.Generator().manual_seed(7)
    Pn = m.proj_size or m.hidden_size
    h0 = torch.randn(n, LENGTHS.numel(), Pn, generator=g, dtype=F64)
    hx = (h0, torch.randn(n, LENGTHS.numel(), m.hidden_size, generator=g, dtype=F64)) if "lstm" in kind else h0
    for given in (None, hx):
        want = own_packed(m, x, LENGTHS, given)
        for fused in (True, False):
            run = rerun(m, x, lengths=LENGTHS, h0=given, fused=fused)
            assert torch.equal(run.lengths, LENGTHS)
            assert float((run.module_output() - want[0]).abs().max()) <= 1e-12
            assert float((run.h_n - want[1]).abs().max()) <= 1e-12
            if want[2] is None:
                assert run.c_n is None
            else:
                assert float((run.c_n - want[2]).abs().max()) <= 1e-12
            pad = ~valid_steps(9, LENGTHS)
            assert bool((run.output[pad] == 0).all())  # zeros beyond each length, as pad_packed_sequence


def test_longer_padding_than_the_longest_sequence():
    """T = 12 > max L_b = 9: the output is pad_packed_sequence(..., total_length=12)."""
    m = make_module("gru", 2, True, False, True, scale=0.5)
    x = padded_inputs(LENGTHS, 12, D, False, seed=3)
    want = own_packed(m, x, LENGTHS, T=12)
    run = rerun(m, x, lengths=LENGTHS.tolist())
    assert run.output.shape[0] == 12
    assert float((run.module_output() - want[0]).abs().max()) <= 1e-12
    assert float((run.h_n - want[1]).abs().max()) <= 1e-12


@pytest.mark.parametrize("bf", [False, True], ids=["tm", "bf"])
@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn_tanh"])
def test_traces_are_in_own_order_and_frozen_beyond_each_length(kind, bf):
    m = make_module(kind, 2, True, bf, True, scale=0.5)
    x = padded_inputs(LENGTHS, 9, D, bf, seed=5)
    x_tm = x.transpose(0, 1) if bf else x
    ref = loop_reference(m, x_tm, LENGTHS)
    run = rerun(m, x, lengths=LENGTHS)
    for r in run.runs:
        tr = r.trace
        assert torch.equal(r.lengths, LENGTHS)
        for b, Lb in enumerate(LENGTHS.tolist()):
            want = ref[(r.layer, int(r.direction == "reverse"))][b]  # (L_b, S) s_1..s_{L_b}
            assert float((tr.states[1:Lb + 1, b] - want).abs().max()) <= 1e-12, (r.name, b)
            for k in range(Lb + 1, 10):  # padding: frozen exactly
                assert torch.equal(tr.states[k, b], tr.states[Lb, b])
            assert bool((tr.inputs[Lb:, b] == 0).all()) and bool((tr.preacts[Lb:, b] == 0).all())
            if r.layer == 0:  # the step k reads position k (forward) or L_b + 1 - k (reverse)
                pos = [k if r.direction == "forward" else Lb - 1 - k for k in range(Lb)]
                assert torch.equal(tr.inputs[:Lb, b], x_tm[pos, b])
        assert torch.equal(tr.states[-1, :, :r.cell.h_size],
                           run.h_n[r.layer * 2 + (r.direction == "reverse")])  # h_n = s_T = s_{L_b}


def test_own_order_and_valid_steps_against_hand_loops():
    g = torch.Generator().manual_seed(0)
    T, L = 9, LENGTHS
    x = torch.randn(T, L.numel(), 2, 3, generator=g, dtype=F64)
    rev = own_order(x, "reverse", L)
    for b, Lb in enumerate(L.tolist()):
        for k in range(T):
            assert torch.equal(rev[k, b], x[Lb - 1 - k, b] if k < Lb else x[k, b])
    assert torch.equal(own_order(rev, "reverse", L), x)  # an involution
    assert own_order(x, "forward", L) is x and own_order(x, "forward") is x
    assert torch.equal(own_order(x, "reverse"), x.flip(0))
    assert torch.equal(own_order(x, "reverse", torch.full((L.numel(),), T)), x.flip(0))  # full lengths: a flip
    v = valid_steps(T, L)
    assert v.shape == (T, L.numel())
    assert all(bool(v[k, b]) == (k + 1 <= Lb) for k in range(T) for b, Lb in enumerate(L.tolist()))
    assert bool(valid_steps(4, None, 3).all()) and valid_steps(4, None, 3).shape == (4, 3)
    with pytest.raises(InputError, match="direction: expected one of forward, reverse, got 'up'"):
        own_order(x, "up", L)


@pytest.mark.parametrize("lengths,match", [
    (torch.tensor([2.0, 3.0]), r"lengths: expected 2 integers .*float"),
    (torch.tensor([2, 3, 1]), r"lengths: expected 2 integers .*shape \(3,\)"),
    (torch.tensor([0, 3]), r"lengths: expected 1 <= L_b <= T = 4, got 0..3"),
    (torch.tensor([5, 3]), r"lengths: expected 1 <= L_b <= T = 4, got 3..5"),
])
def test_bad_lengths_raise_input_errors(lengths, match):
    with pytest.raises(InputError, match=match):
        rerun(make_module("gru"), torch.zeros(4, 2, D, dtype=F64), lengths=lengths)
    with pytest.raises(InputError, match="lengths: expected batched inputs"):
        rerun(make_module("gru"), torch.zeros(4, D, dtype=F64), lengths=[4])


# ------------------------------------------------------------------------------------------ whole models

class PackedLM(nn.Module):
    """Embedding -> pack_padded_sequence -> LSTM / GRU -> pad_packed_sequence -> head, and h_n beside the logits."""

    def __init__(self, kind: str, bidirectional: bool, batch_first: bool, sort: bool):
        super().__init__()
        torch.manual_seed(11)
        self.emb = nn.Embedding(13, 4)
        self.rnn = {"lstm": nn.LSTM, "gru": nn.GRU}[kind](4, 5, num_layers=2, bidirectional=bidirectional,
                                                          batch_first=batch_first)
        self.head = nn.Linear(5 * (2 if bidirectional else 1), 13)
        self.bf, self.sort = batch_first, sort

    def forward(self, ids, lengths, hx=None):
        e = self.emb(ids)
        p = pack_padded_sequence(e, lengths, batch_first=self.bf, enforce_sorted=self.sort)
        out, hn = self.rnn(p, hx)
        y = pad_packed_sequence(out, batch_first=self.bf)[0]
        return self.head(y), (hn[0] if isinstance(hn, tuple) else hn)


def ids_for(L: torch.Tensor, T: int, batch_first: bool, seed: int = 0) -> torch.Tensor:
    ids = torch.randint(0, 13, (T, L.numel()), generator=torch.Generator().manual_seed(seed))
    return ids.T.contiguous() if batch_first else ids


def loss_of(out, L, batch_first):
    """Log-likelihood-like on the logits at the real positions, a small term on all of them (the padding too:
    the user's head reads it, but nothing flows from there into the packed run), and a term on h_n."""
    logits, hn = out
    mask = valid_steps(logits.shape[1 if batch_first else 0], L)
    mask = mask.T if batch_first else mask
    w = torch.linspace(0.5, 1.5, logits.shape[-1], dtype=logits.dtype)
    return (torch.log_softmax(logits, -1)[mask] * w).sum() + 0.01 * (logits ** 2).sum() + 0.3 * (hn ** 2).sum()


@pytest.mark.parametrize("kind,bi,bf,sort", [("lstm", True, True, False), ("lstm", False, False, False),
                                             ("gru", True, False, False), ("gru", False, True, True)])
def test_capture_of_a_packed_model_its_leaves_and_push_back(kind, bi, bf, sort):
    model = PackedLM(kind, bi, bf, sort).double()
    L = torch.tensor([9, 7, 7, 4, 2, 1]) if sort else LENGTHS
    ids = ids_for(L, 9, bf)
    n = 2 * (2 if bi else 1)
    hx = torch.randn(n, L.numel(), 5, dtype=F64, generator=torch.Generator().manual_seed(4))
    hx = (hx, hx.flip(1).clone()) if kind == "lstm" else hx
    with torch.no_grad():
        own_logits, own_hn = model(ids, L, hx)

    # the reference: autograd through the model itself, with dL/d(embedding output) and dL/d(padded output) kept
    kept = {}

    def keep(name, t):
        t.retain_grad()
        kept[name] = t

    hs = [model.emb.register_forward_hook(lambda mod, a, out: keep("e", out)),  # the embedding's output
          model.head.register_forward_pre_hook(lambda mod, a: keep("y", a[0]))]  # the padded output the head reads
    out = model(ids, L, hx)
    for h in hs:
        h.remove()
    out[1].retain_grad()
    loss_of(out, L, bf).backward()
    ref_de, ref_dy, ref_dhn = kept["e"].grad, kept["y"].grad, out[1].grad

    # capture, with the embedding's output replaced by a leaf of the test's own (the gradient set by hand)
    leaf = {}

    def to_leaf(mod, a, out):
        leaf["e"] = out.detach().clone().requires_grad_(True)
        return leaf["e"]
    h = model.emb.register_forward_hook(to_leaf)
    try:
        got, calls, notes = capture_forward(model, (ids, L, hx), own=own_forward(model, (ids, L, hx))[1])
    finally:
        h.remove()
    assert float((got[0].detach() - own_logits).abs().max()) <= 1e-12
    assert float((got[1].detach() - own_hn).abs().max()) <= 1e-12
    (c,) = calls
    assert c.agreement <= 1e-12
    assert torch.equal(c.lengths, L) and c.packed is not None and c.x is c.packed.data
    assert c.run.lengths is not None and torch.equal(c.run.lengths, L)
    assert "rnn: packed input, steps beyond each sequence's length (L = 1..9) excluded" in notes
    Lc = loss_of(got, L, bf)
    accumulate(calls, [Lc], [torch.ones((), dtype=F64)])
    valid = valid_steps(9, L)
    valid = (valid.T if bf else valid)[..., None]
    assert float((c.grads[1] - ref_dhn).abs().max()) <= 1e-12  # dL/dh_n
    # dL/d(output leaf): the user's padded output's at the real positions, zero beyond each length (not packed)
    assert float((c.grads[0] - torch.where(valid, ref_dy, 0.0)).abs().max()) <= 1e-12
    assert bool((ref_dy[~valid.expand_as(ref_dy)] != 0).any())  # the head does read the padding: it is dropped

    # dL/d(padded input) by the module's own packed backward, from the leaves' gradients; padding rows get noise
    xp = pad_packed_sequence(c.packed, batch_first=bf)[0].detach().requires_grad_(True)
    o, hn = model.rnn(pack_padded_sequence(xp, L, batch_first=bf, enforce_sorted=False), hx)
    outs = [pad_packed_sequence(o, batch_first=bf, total_length=9)[0]] + (list(hn) if kind == "lstm" else [hn])
    gl = [torch.zeros_like(v) if g is None else g for v, g in zip(c.leaves, c.grads)]  # c_n unread: zero
    (gx,) = torch.autograd.grad(outs, [xp], gl)
    gx = gx + torch.where(valid, 0.0, 1e3)  # push_back must drop the rows beyond each length
    fake = SimpleNamespace(leaves=(leaf["e"],), grads=[None])
    push_back(c, [fake], gx, ())
    torch.testing.assert_close(fake.grads[0], ref_de, rtol=1e-12, atol=1e-12)
    assert bool((fake.grads[0][~valid.expand_as(fake.grads[0])] == 0).all())


def packed_reference(model: PackedLM, ids, L, hx, bf: bool):
    """Per sequence b, its first L_b positions only, explicit steps (step_fn) with every h_k (c_k) kept with
    retain_grad; L = sum_b L_b (loss_of is a sum over sequences; the padded logits are the head's bias alone).
    Returns {(layer, dir): (||dL/dh_k|| (B, T), ||dL/dc_k|| or None)} in own order, NaN beyond L_b."""
    rnn = model.rnn
    dirs = 2 if rnn.bidirectional else 1
    lstm = isinstance(rnn, nn.LSTM)
    ids_tm = ids.T if bf else ids
    T, B = ids_tm.shape
    w = torch.linspace(0.5, 1.5, 13, dtype=F64)
    gh = {(l, d): torch.full((B, T), float("nan"), dtype=F64) for l in range(rnn.num_layers) for d in range(dirs)}
    gc = {k: v.clone() for k, v in gh.items()} if lstm else None
    for b, Lb in enumerate(L.tolist()):
        inp = model.emb(ids_tm[:Lb, b:b + 1])  # (L_b, 1, 4)
        kept, hn = {}, []
        for l in range(rnn.num_layers):
            outs = []
            for d in range(dirs):
                step = step_fn(rnn, l, bool(d))
                i = l * dirs + d
                h0 = hx[0] if lstm else hx
                h, c = h0[i, b:b + 1], (hx[1][i, b:b + 1] if lstm else None)
                hs, cs = [], []
                for k in range(Lb):
                    h, c = step(inp[Lb - 1 - k] if d else inp[k], h, c)
                    h.retain_grad()
                    hs.append(h)
                    if c is not None:
                        c.retain_grad()
                        cs.append(c)
                kept[(l, d)] = (hs, cs)
                hn.append(h)
                o = torch.stack(hs)  # (L_b, 1, P) own order
                outs.append(o.flip(0) if d else o)
            inp = torch.cat(outs, -1)
        logits = model.head(inp)
        Lsum = (torch.log_softmax(logits, -1) * w).sum() + 0.01 * (logits ** 2).sum() + 0.3 * (torch.stack(hn) ** 2).sum()
        Lsum.backward()
        for key, (hs, cs) in kept.items():
            gh[key][b, :Lb] = torch.stack([torch.linalg.vector_norm(t.grad) for t in hs])
            if cs:
                gc[key][b, :Lb] = torch.stack([torch.linalg.vector_norm(t.grad) for t in cs])
    return gh, gc


@pytest.mark.parametrize("kind,bi,bf,sort", [("lstm", True, True, False), ("gru", True, False, False),
                                             ("lstm", False, False, True)])
def test_diagnose_of_a_packed_model_against_per_sequence_autograd(kind, bi, bf, sort):
    """diagnose on a model that packs its embeddings: every layer's and direction's dL/dh_k (dL/dc_k) at the real
    steps against per-sequence explicit loops (autograd), NaN beyond each length, the note, and the parameter table
    (embedding and head included) against autograd through the model's own packed run."""
    model = PackedLM(kind, bi, bf, sort).double()
    L = torch.tensor([9, 7, 7, 4, 2, 1]) if sort else LENGTHS
    ids = ids_for(L, 9, bf, seed=2)
    n = 2 * (2 if bi else 1)
    hx = torch.randn(n, L.numel(), 5, dtype=F64, generator=torch.Generator().manual_seed(5))
    hx = (hx, 0.5 * hx.flip(1).clone()) if kind == "lstm" else hx
    loss = lambda out: loss_of(out, L, bf)  # noqa: E731
    d = diagnose(model, (ids, L, hx), loss, credit_anchors=3, credit_sequences=4)
    gh, gc = packed_reference(model, ids, L, hx, bf)
    assert any("packed input, steps beyond each sequence's length (L = 1..9) excluded" in x for x in d.notes)
    pad = ~valid_steps(9, L).T  # (B, T) in position order; own order of the reverse direction: the same set
    for ld in d.layers:
        key = (ld.layer, int(ld.direction == "reverse"))
        for got, ref in [(ld.per_sequence_adjoint_h, gh[key])] + ([(ld.per_sequence_adjoint_c, gc[key])] if gc else []):
            assert torch.equal(torch.isnan(got), pad) and torch.equal(torch.isnan(ref), pad)
            torch.testing.assert_close(got[~pad], torch.log10(ref[~pad]), rtol=0, atol=1e-9)
        assert torch.isfinite(ld.log10_adjoint_h).all()  # the batch means over the sequences that reach each step
    named = [(nm, p) for nm, p in model.named_parameters()]
    model.zero_grad()
    grads = torch.autograd.grad(loss(model(ids, L, hx)), [p for _, p in named])
    assert [nm for nm, _ in d.parameters] == [nm for nm, _ in named]
    for (nm, v), g in zip(d.parameters, grads):
        assert 10.0 ** v == pytest.approx(float(torch.linalg.vector_norm(g)), rel=1e-9), nm


def test_a_packed_model_that_overflows_is_reported_not_raised():
    """A packed model whose loss is NaN: no profiles, a note that the NaN hunt could not unpack, exit not raised."""
    model = PackedLM("gru", False, False, False).double()
    L = LENGTHS
    ids = ids_for(L, 9, False, seed=3)
    d = diagnose(model, (ids, L), lambda out: out[0].sum() * float("nan"))
    assert d.layers == () and d.nonfinite is None and math.isnan(d.loss)
    assert any("the NaN hunt could not run" in n for n in d.notes) and "not finite" in d.advice[0]
