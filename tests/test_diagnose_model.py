"""diagnose on whole models (interop/capture.py): models trained here for a few seconds on real text (the standard
library's pydoc_data.topics), their recurrent submodules found by hooks, every layer's and direction's
dL/dh_k and dL/dc_k against an independent reference: the same model with each recurrent submodule's forward
replaced by an explicit loop over nn.LSTMCell / GRUCell / RNNCell built from its weights, the user's head and
loss on top, retain_grad on every per-step state, float64."""

from __future__ import annotations

import copy
import math

import pydoc_data.topics

import pytest
import torch
from torch import nn

from rnnscope.core.errors import InputError
from rnnscope.interop.diagnose import diagnose

F64 = torch.float64
TEXT = "".join(pydoc_data.topics.topics.values())
CHARS = sorted(set(TEXT))
IDS = torch.tensor([CHARS.index(c) for c in TEXT[:20000]])
V = len(CHARS)
RTOL = 1e-9


def batch(T: int, B: int, seed: int) -> torch.Tensor:
    """B windows of T + 1 characters of real text (B, T + 1)."""
    g = torch.Generator().manual_seed(seed)
    start = torch.randint(0, IDS.numel() - T - 1, (B,), generator=g)
    return torch.stack([IDS[s:s + T + 1] for s in start.tolist()])


def ce(logits, y):
    return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))


def train(model, make, steps: int = 25):
    """A few Adam steps in float32 on (inputs, targets) = make(step); returns (first loss, last loss)."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for i in range(steps):
        x, y = make(i)
        loss = ce(model(*x) if isinstance(x, tuple) else model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses[0], losses[-1]


# ------------------------------------------------------------------------------------------- the models

class First(nn.Module):
    def forward(self, out):
        return out[0]


class CharLM(nn.Module):
    """nn.Embedding -> 2-layer recurrent module (batch_first) -> nn.Linear: logits of the next character."""

    def __init__(self, kind: str, H: int = 24):
        super().__init__()
        self.emb = nn.Embedding(V, 12)
        self.rnn = {"lstm": nn.LSTM, "gru": nn.GRU}[kind](12, H, num_layers=2, batch_first=True)
        self.head = nn.Linear(H, V)

    def forward(self, ids, hx=None):
        return self.head(self.rnn(self.emb(ids), hx)[0])


class StatefulLM(CharLM):
    """The char-LM of truncated BPTT: the state (h_n, c_n) returned beside the logits."""

    def forward(self, ids, hx=None):
        out, state = self.rnn(self.emb(ids), hx)
        return self.head(out), state


def rnn_lm(H: int = 24) -> nn.Module:
    """The same with nn.RNN, nested in an nn.Sequential."""
    return nn.Sequential(nn.Embedding(V, 12), nn.RNN(12, H, num_layers=2, batch_first=True), First(), nn.Linear(H, V))


class BiClassifier(nn.Module):
    """Embedding -> bidirectional 2-layer LSTM (dropout between layers, time-major) -> h_n of the top layer's two
    directions -> a class (is the window's first character a letter?)."""

    def __init__(self, H: int = 16):
        super().__init__()
        self.emb = nn.Embedding(V, 10)
        self.lstm = nn.LSTM(10, H, num_layers=2, bidirectional=True, dropout=0.3)
        self.out = nn.Linear(2 * H, 2)

    def forward(self, ids):  # ids (T, B)
        _, (h_n, _) = self.lstm(self.emb(ids))
        return self.out(torch.cat([h_n[-2], h_n[-1]], -1))


RNNS = {"lstm": nn.LSTM, "gru": nn.GRU}


class Encoder(nn.Module):
    def __init__(self, kind: str, H: int):
        super().__init__()
        self.emb = nn.Embedding(V, 10)
        self.rnn = RNNS[kind](10, H, num_layers=2, batch_first=True)

    def forward(self, ids):
        return self.rnn(self.emb(ids))[1]  # h_n (2, B, H), LSTM (h_n, c_n)


class Seq2Seq(nn.Module):
    """Encoder of the first half -> decoder of the second half from h0 = the encoder's h_n (c_n) -> head."""

    def __init__(self, kind: str = "gru", H: int = 20):
        super().__init__()
        self.encoder = Encoder(kind, H)
        self.dec_emb = nn.Embedding(V, 10)
        self.decoder = RNNS[kind](10, H, num_layers=2, batch_first=True)
        self.head = nn.Sequential(nn.Linear(H, H), nn.Tanh(), nn.Linear(H, V))

    def forward(self, src, tgt_in):
        return self.head(self.decoder(self.dec_emb(tgt_in), self.encoder(src))[0])


# ------------------------------------------------------------------------------------------ the reference

def cell_loop(rnn: nn.RNNBase, store: dict, name: str):
    """A forward for rnn: explicit nn.*Cell loops with its weights; every h_k (c_k) kept in store[(name, l, dir)]
    with retain_grad, in the direction's own time order."""
    kind = type(rnn).__name__

    def cell(l, sfx):
        din = rnn.input_size if l == 0 else rnn.hidden_size * (2 if rnn.bidirectional else 1)
        c = {"LSTM": nn.LSTMCell, "GRU": nn.GRUCell}.get(kind)
        c = c(din, rnn.hidden_size, dtype=F64) if c else nn.RNNCell(din, rnn.hidden_size, nonlinearity=rnn.nonlinearity,
                                                                     dtype=F64)
        with torch.no_grad():
            for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(c, w).copy_(getattr(rnn, f"{w}_l{l}{sfx}"))
        return c

    def forward(x, hx=None):
        x = x.transpose(0, 1) if rnn.batch_first else x  # (T, B, D)
        T, B = x.shape[:2]
        dirs = 2 if rnn.bidirectional else 1
        hx = None if hx is None else (hx if isinstance(hx, tuple) else (hx,))
        hn, cn = [], []
        for l in range(rnn.num_layers):
            outs = []
            for d in range(dirs):
                c = cell(l, "_reverse" if d else "")
                i = l * dirs + d
                h = torch.zeros(B, rnn.hidden_size, dtype=F64) if hx is None else hx[0][i]
                cc = torch.zeros(B, rnn.hidden_size, dtype=F64) if hx is None or len(hx) < 2 else hx[1][i]
                hs, cs = [], []
                for k in range(T):
                    xk = x[T - 1 - k] if d else x[k]
                    if kind == "LSTM":
                        h, cc = c(xk, (h, cc))
                        cc.retain_grad()
                        cs.append(cc)
                    else:
                        h = c(xk, h)
                    h.retain_grad()
                    hs.append(h)
                store[(name, l, d)] = (hs, cs)
                hn.append(h)
                cn.append(cc)
                outs.append(torch.stack(hs[::-1] if d else hs))  # position order
            x = torch.cat(outs, -1)
        out = x.transpose(0, 1) if rnn.batch_first else x
        h_n = torch.stack(hn)
        return (out, (h_n, torch.stack(cn))) if kind == "LSTM" else (out, h_n)

    return forward


def reference(model, inputs, loss_fn):
    """{(module, layer, direction): (||dL/dh_k|| (B, T), ||dL/dc_k|| (B, T) or None)} by autograd through cell loops."""
    store: dict = {}
    subs = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.RNNBase)]
    for n, m in subs:
        m.forward = cell_loop(m, store, n)
    try:
        args = inputs if isinstance(inputs, tuple) else (inputs,)
        L = loss_fn(model(*args))
        L.backward()
    finally:
        for _, m in subs:
            del m.forward
    norms = lambda ts: torch.stack([torch.zeros(t.shape[0], dtype=F64) if t.grad is None else
                                    torch.linalg.vector_norm(t.grad, dim=-1) for t in ts], 1)
    return float(L.detach()), {k: (norms(hs), norms(cs) if cs else None) for k, (hs, cs) in store.items()}


def max_rel_error(d, ref) -> float:
    """max over every (module, layer, direction, sequence, k) of |10^got - ref| / ref (and the zeros agree)."""
    worst = 0.0
    assert sorted(ref) == sorted((ld.module, ld.layer, int(ld.direction == "reverse")) for ld in d.layers)
    for ld in d.layers:
        gh, gc = ref[(ld.module, ld.layer, int(ld.direction == "reverse"))]
        pairs = [(ld.per_sequence_adjoint_h, gh)] + ([(ld.per_sequence_adjoint_c, gc)] if gc is not None else [])
        if gc is None:
            assert ld.per_sequence_adjoint_c is None
        for got, r in pairs:
            assert got.shape == r.shape
            assert torch.equal(torch.isneginf(got), r == 0)
            nz = r > 0
            worst = max(worst, float(((10.0 ** got[nz] - r[nz]).abs() / r[nz]).max()))
    return worst


def grad_norms(model, inputs, loss_fn) -> dict[str, float]:
    """||dL/dtheta_name|| of every named parameter, by autograd through the model itself (its .grad restored)."""
    args = inputs if isinstance(inputs, tuple) else (inputs,)
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss_fn(model(*args)), [p for _, p in named], allow_unused=True)
    return {n: 0.0 if g is None else float(torch.linalg.vector_norm(g)) for (n, _), g in zip(named, grads)}


def assert_parameter_table(d, ref: dict[str, float], rel: float = 1e-9) -> None:
    """d.parameters (every named parameter, in the model's order) and d.gradient_norm against autograd's."""
    assert [n for n, _ in d.parameters] == list(ref)
    for n, v in d.parameters:
        assert 10.0 ** v == pytest.approx(ref[n], rel=rel, abs=1e-300), n
    assert d.gradient_norm == pytest.approx(math.sqrt(sum(v * v for v in ref.values())), rel=rel)
    if any(layer.module for layer in d.layers):  # a whole model: the norm is over all of it, and says so
        assert f"||dL/dtheta|| = {d.gradient_norm:.4g} (every parameter of the model" in d.summary()


# ------------------------------------------------------------------------------------------------ tests

@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
def test_char_lm_adjoints_equal_the_cell_loop_reference(kind):
    torch.manual_seed(0)
    model = rnn_lm() if kind == "rnn" else CharLM(kind)
    first, last = train(model, lambda i: (lambda w: (w[:, :-1], w[:, 1:]))(batch(20, 16, i)))
    assert last < first  # it learns from the text
    model = model.double()
    model.zero_grad(set_to_none=True)
    w = batch(30, 6, 99)
    x, y = w[:, :-1], w[:, 1:]
    d = diagnose(model, x, ce, targets=y, jacobian=False, attribution=False)
    assert all(p.grad is None for p in model.parameters())  # the user's gradients are left alone
    loss, ref = reference(model, x, lambda out: ce(out, y))
    assert d.loss == pytest.approx(loss, rel=1e-12)
    name = "1" if kind == "rnn" else "rnn"
    assert [(ld.module, ld.layer, ld.direction) for ld in d.layers] == [(name, 0, "forward"), (name, 1, "forward")]
    assert d.layers[0].log10_adjoint_h.shape == (30,)
    err = max_rel_error(d, ref)
    print(f"char-LM {kind}: max relative error {err:.2e}")
    assert err < RTOL
    assert_parameter_table(d, grad_norms(model, x, lambda out: ce(out, y)))  # embedding and head included


def test_user_given_initial_state_and_a_loss_on_the_returned_state():
    torch.manual_seed(1)
    model = StatefulLM("lstm").double()
    w = batch(15, 4, 7)
    x, y = w[:, :-1], w[:, 1:]
    g = torch.Generator().manual_seed(2)
    hx = (torch.randn(2, 4, 24, generator=g, dtype=F64), torch.randn(2, 4, 24, generator=g, dtype=F64))

    def loss(out):  # the logits, and a penalty on the carried state (h_n, c_n)
        logits, (h_n, c_n) = out
        return ce(logits, y) + 0.1 * (c_n ** 2).sum() + 0.05 * h_n.sum()

    d = diagnose(model, (x, hx), loss, jacobian=False)
    _, ref = reference(model, (x, hx), loss)
    err = max_rel_error(d, ref)
    print(f"stateful LSTM LM (given h0, c0; loss on h_n, c_n): max relative error {err:.2e}")
    assert err < RTOL
    d0 = diagnose(model, x, loss, jacobian=False)
    assert not torch.allclose(d0.layers[0].per_sequence_adjoint_h, d.layers[0].per_sequence_adjoint_h)


def test_bidirectional_classifier_with_h_n_readout_and_dropout_in_train_mode():
    torch.manual_seed(2)
    model = BiClassifier()

    def make(i):
        w = batch(16, 16, 200 + i)[:, :-1]
        return w.T, torch.tensor([CHARS[int(c)].isalpha() for c in w[:, 0]]).long()

    train(model, make, steps=15)
    model = model.double().train()
    x, y = make(500)
    d = diagnose(model, x, ce, targets=y, jacobian=False)
    assert model.training and model.lstm.training  # the mode is restored
    assert any("dropout 0.3" in n and "eval mode" in n for n in d.notes)
    model.eval()  # the reference without dropout
    _, ref = reference(model, x, lambda out: ce(out, y))
    assert [(ld.layer, ld.direction) for ld in d.layers] == [(0, "forward"), (0, "reverse"), (1, "forward"),
                                                              (1, "reverse")]
    err = max_rel_error(d, ref)
    print(f"BiLSTM classifier: max relative error {err:.2e}")
    assert err < RTOL
    assert all(ld.last_loss_step == x.shape[0] for ld in d.layers)  # h_n: the direct term at each direction's last step


@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_encoder_decoder_gradients_cross_from_decoder_to_encoder(kind):
    torch.manual_seed(3)
    model = Seq2Seq(kind)

    def make(i):
        w = batch(24, 16, 300 + i)
        return (w[:, :12], w[:, 12:-1]), w[:, 13:]

    train(model, make, steps=15)
    model = model.double()
    (src, tin), y = make(600)
    d = diagnose(model, (src, tin), lambda out: ce(out, y), jacobian=False)
    _, ref = reference(model, (src, tin), lambda out: ce(out, y))
    assert sorted({ld.module for ld in d.layers}) == ["decoder", "encoder.rnn"]
    assert [ld.module for ld in d.layers] == ["encoder.rnn", "encoder.rnn", "decoder", "decoder"]  # call order
    err = max_rel_error(d, ref)
    print(f"{kind} encoder-decoder: max relative error {err:.2e}")
    assert err < RTOL
    enc = d.layer(1, "forward", "encoder.rnn")
    assert bool(torch.isfinite(enc.per_sequence_adjoint_h).all())  # reached through the decoder's h0 only


class Twice(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.GRU(3, 4)

    def forward(self, x):
        return self.rnn(self.rnn(x)[0][..., :3])[0]


@pytest.mark.parametrize("model,loss_fn,match", [
    (nn.Sequential(nn.Linear(3, 3)), lambda o: o.sum(), r"model: expected nn.RNN.*got Sequential with none"),
    (CharLM("gru").double(), lambda o: o, r"loss_fn: expected a scalar tensor, got \(2, 5, " + str(V) + r"\)"),
    (CharLM("gru").double(), None, r"loss_fn: expected a loss function .*got None"),
    (CharLM("gru").double(), lambda o, t: o.sum(), r"loss_fn: expected it to accept the model's output"),
    (Twice().double(), lambda o: o.sum(), r"rnn: expected one call per forward, got a second call"),
])
def test_bad_models_and_losses_raise_input_errors(model, loss_fn, match):
    x = (torch.zeros(2, 5, dtype=torch.long) if isinstance(model, CharLM)
         else torch.randn(5, 2, 3, dtype=F64))
    with pytest.raises(InputError, match=match):
        diagnose(model, x, loss_fn)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_low_precision_models_are_analysed_as_float64_copies(dtype):
    """A char-LM in float32 / bfloat16 / float16 is diagnosed as an upcast float64 copy: every dL/dh_k equals the
    float64 cell-loop reference on that copy, the report names the model's dtype, and the agreement is the re-run's
    distance from the model's own output in its dtype (measured here against the module itself)."""
    torch.manual_seed(3)
    model = CharLM("lstm").to(dtype)
    w = batch(24, 4, 7)
    x, y = w[:, :-1], w[:, 1:]
    d = diagnose(model, x, ce, targets=y, attribution=False)
    assert d.model_dtype == str(dtype).removeprefix("torch.") and d.dtype == "float64"
    assert all(p.dtype == dtype for p in model.parameters())  # the user's model is untouched
    m64 = copy.deepcopy(model).double()
    loss, ref = reference(m64, x, lambda out: ce(out, y))
    assert d.loss == pytest.approx(loss, rel=1e-12)
    assert max_rel_error(d, ref) < RTOL
    with torch.no_grad():
        own = model.rnn(model.emb(x))[0].double()
        exact = m64.rnn(m64.emb(x))[0]
    want = float((exact - own).abs().max()) / max(1.0, float(own.abs().max()))
    assert d.agreement == pytest.approx(want, rel=1e-6) and d.agreement < {torch.float32: 1e-5}.get(dtype, 0.1)


class Doubling(nn.LSTM):
    """A user's subclass whose forward changes its input: the re-run (nn.LSTM's math) cannot know; the
    agreement with the module's own output says so."""

    def forward(self, x, hx=None):
        return super().forward(2.0 * x, hx)


def test_a_subclass_with_its_own_forward_is_flagged_by_the_agreement():
    torch.manual_seed(5)
    model = nn.Sequential(nn.Embedding(V, 6), Doubling(6, 8, batch_first=True), First(), nn.Linear(8, V)).double()
    w = batch(12, 3, 2)
    d = diagnose(model, w[:, :-1], ce, targets=w[:, 1:])
    with torch.no_grad():  # the re-run is nn.LSTM on the input as given; the module doubles it first
        own = model[1](model[0](w[:, :-1]))[0]
        plain = nn.LSTM.forward(model[1], model[0](w[:, :-1]))[0]
    want = float((plain - own).abs().max()) / max(1.0, float(own.abs().max()))
    assert d.agreement == pytest.approx(want, rel=1e-9) and want > 1e-2
    assert any("it is re-run as nn.LSTM; does Doubling.forward do more?" in n for n in d.notes)
