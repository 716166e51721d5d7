"""interop/advice.py: every number an advice line names, against an independent computation.

    clip threshold   AutoClip's p-th percentile of a history against numpy.percentile
    gate facts       mean f, b_f, the rest of z_f (LSTM) and mean z (GRU) against an explicit nn.LSTMCell /
                     nn.GRUCell loop computing the gates from the torch module's own weights
    memory horizon   d = ln(1e-3)/ln(f) against a direct simulation (the smallest d with f^d <= 1e-3)
    vanilla line     present for a small-weight nn.RNN whose credit (autograd of each E_t alone) dies within
                     20 steps, absent for the identity relu RNN whose credit holds exactly
    LSTM line        present for an LSTM with forget bias -3, absent with +5 (verdicts checked against autograd)
    parameter table  from given numbers: norms, shares of the squared total, alignment
"""

from __future__ import annotations

import dataclasses
import math
import re

import numpy as np
import pytest
import torch

from rnnscope import diagnose
from rnnscope.core.errors import InputError
from rnnscope.interop.advice import advice, clip_threshold, gate_facts, memory_horizon
from rnnscope.interop.torch_models import rerun
from rnnscope.interop.verdicts import Diagnosis, LayerDiagnosis

F64 = torch.float64


def _num(line: str, before: str) -> float:
    """The number right after `before` in a line."""
    m = re.search(re.escape(before) + r"\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?|inf)", line)
    assert m, (before, line)
    return float(m.group(1))


def _layer(**kw) -> LayerDiagnosis:
    base = dict(layer=0, direction="forward", cell="elman", state="h", h_size=4, state_size=4,
                per_sequence_adjoint_h=torch.zeros(2, 30, dtype=F64), per_sequence_adjoint_c=None,
                per_sequence_spectral=None, per_sequence_spectral_hh=None, per_sequence_spectral_cc=None,
                per_sequence_carry_share=None, log10_gradient_norm=None, sigma_max=None, sigma_max_gates=None,
                gamma=None, spectral_radius=None, theory_verdict="no a-priori bound (gated cell)", note="",
                rate_per_step=None, horizon=None, horizon_kind=None, far_distance=None, last_loss_step=30,
                rate_source="credit", verdict="")
    base.update(kw)
    return LayerDiagnosis(**base)


def _sim_horizon(f: float) -> int:
    """The smallest d with f^d <= 1e-3, by multiplying."""
    d, v = 0, 1.0
    while v > 1e-3:
        d, v = d + 1, v * f
    return d


# ------------------------------------------------------------------------------------------------ clipping

@pytest.mark.parametrize("p", [10.0, 2.5, 50.0, 90.0])
def test_clip_threshold_is_autoclips_percentile_of_the_history(p):
    rng = np.random.default_rng(0)
    hist = list(np.exp(rng.normal(1.0, 0.7, 57)))
    noisy = hist[:20] + [float("nan"), None, float("inf")] + hist[20:]  # non-finite entries are skipped
    ref = float(np.percentile(np.array(hist), p))
    thr, src, n = clip_threshold(math.log10(5.0), noisy, p)
    assert src == "history" and n == 57 and thr == pytest.approx(ref, rel=1e-12)
    line = [a for a in advice((), math.log10(5.0), 30, history=noisy, percentile=p) if a.startswith("clipping")]
    assert len(line) == 1
    assert _num(line[0], "max_norm=") == pytest.approx(ref, rel=2e-3)  # printed to 3 significant digits
    assert f"the {p:g}-th percentile" in line[0] and "over the 57 recorded training steps" in line[0]
    assert "AutoClip" in line[0] and _num(line[0], "this batch's ||dL/dtheta|| =") == pytest.approx(5.0)


def test_clip_from_one_batch_says_so():
    (line,) = advice((), math.log10(7.3), 30)
    assert line.startswith("clipping: ||dL/dtheta|| = 7.3 on this batch") and "one batch only" in line
    assert "pass the monitor's history for AutoClip's percentile" in line
    assert _num(line, "near it (") == pytest.approx(0.5 * 7.3, rel=2e-3) and _num(line, " to ") == pytest.approx(73)
    assert clip_threshold(math.log10(7.3), [3.0]) == (pytest.approx(7.3), "batch", 1)  # one past norm: too few
    (line1,) = advice((), math.log10(7.3), 30, history=[3.0, float("nan")])
    assert "the history has 1 finite norm(s), 2 needed" in line1
    assert advice((), None, 30) == () and clip_threshold(None) == (None, "", 0)
    (huge,) = advice((), 400.0, 30)  # beyond float64: the norm in powers of ten
    assert "||dL/dtheta|| = 10^400.0 on this batch" in huge and "(10^399.7 to 10^401.0" in huge
    with pytest.raises(InputError, match="percentile: expected a number in"):
        clip_threshold(0.0, [1.0, 2.0], 120.0)
    with pytest.raises(InputError, match="history: expected past gradient norms"):
        clip_threshold(0.0, ["a", 2.0])


# ----------------------------------------------------------------------------------------------- gate facts

def _loop_gates(m, x):
    """The second gate, sigmoid(W_ih[H:2H] x_t + b_ih[H:2H] + W_hh[H:2H] h_{t-1} + b_hh[H:2H]) (T, B, H), of an
    nn.LSTM's (f: gates i, f, g, o) or nn.GRU's (z: gates r, z, n) layer 0, stepping its nn.*Cell with its weights."""
    H = m.hidden_size
    lstm = isinstance(m, torch.nn.LSTM)
    c = (torch.nn.LSTMCell if lstm else torch.nn.GRUCell)(x.shape[2], H).double()
    with torch.no_grad():
        for p in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(c, p).copy_(getattr(m, p + "_l0"))
    h = torch.zeros(x.shape[1], H, dtype=F64)
    s, gs = ((h, torch.zeros_like(h)) if lstm else h), []
    with torch.no_grad():
        for t in range(x.shape[0]):
            hp = s[0] if lstm else s
            a = (x[t] @ m.weight_ih_l0[H:2 * H].T + m.bias_ih_l0[H:2 * H]
                 + hp @ m.weight_hh_l0[H:2 * H].T + m.bias_hh_l0[H:2 * H])
            gs.append(torch.sigmoid(a))
            s = c(x[t], s)
    return torch.stack(gs)


def test_lstm_gate_facts_equal_an_lstmcell_loop():
    torch.manual_seed(3)
    m = torch.nn.LSTM(3, 6).double()
    with torch.no_grad():
        m.bias_ih_l0[6:12].uniform_(-2, 2)
    x = torch.randn(17, 4, 3, dtype=F64)
    run = rerun(m, x).runs[0]
    g = gate_facts(run.cell, run.trace)
    f = _loop_gates(m, x)  # (T, B, H)
    bf = (m.bias_ih_l0 + m.bias_hh_l0)[6:12].detach()
    torch.testing.assert_close(g["forget_gate_units"], f.mean((0, 1)), rtol=0, atol=1e-12)
    assert g["forget_gate"] == pytest.approx(float(f.mean()), abs=1e-12)
    assert g["forget_bias"] == pytest.approx(float(bf.mean()), abs=1e-12)
    assert g["forget_rest"] == pytest.approx(float((torch.logit(f) - bf).mean()), abs=1e-9)
    # a mask of the real steps: means over those only
    valid = torch.arange(17)[:, None] < torch.tensor([17, 5, 11, 1])[None, :]
    gm = gate_facts(run.cell, run.trace, valid)
    assert gm["forget_gate"] == pytest.approx(float(f[valid].mean()), abs=1e-12)
    with pytest.raises(InputError, match=r"valid: expected a \(T, B\)"):
        gate_facts(run.cell, run.trace, valid[:3])


def test_gru_update_gate_and_other_cells():
    torch.manual_seed(4)
    m = torch.nn.GRU(3, 5).double()
    x = torch.randn(13, 3, 3, dtype=F64)
    run = rerun(m, x).runs[0]
    assert gate_facts(run.cell, run.trace) == {"update_gate": pytest.approx(float(_loop_gates(m, x).mean()), abs=1e-12)}
    r = rerun(torch.nn.RNN(3, 5).double(), x).runs[0]
    assert gate_facts(r.cell, r.trace) == {}


# ---------------------------------------------------------------------------------------- memory horizon

@pytest.mark.parametrize("f", [0.05, 0.5, 0.731, 0.9, 0.97, 0.9993])
def test_memory_horizon_against_simulation(f):
    assert math.ceil(memory_horizon(f)) == _sim_horizon(f)
    assert memory_horizon(1.0) == math.inf and memory_horizon(0.0) == 0.0


def test_lstm_line_numbers():
    T = 40
    f, b, r = 0.3, -1.2, 0.35
    d = _layer(cell="lstm", state="(h, c)", forget_gate=f, forget_bias=b, forget_rest=r)
    (line,) = [a for a in advice((d,), None, T) if "b_f" in a]
    assert "mean f = 0.3 < 0.8" in line and "mean b_f = b_ih_f + b_hh_f = -1.2" in line
    assert math.ceil(_num(line, "d = ln(1e-3)/ln(f) =")) == _sim_horizon(f)
    f1 = float(torch.sigmoid(torch.tensor(1.0 + r, dtype=F64)))
    assert _num(line, "f = sigmoid(1 + r) =") == pytest.approx(f1, rel=2e-3)
    assert math.ceil(_num(line, "the mean rest of z_f, horizon")) == _sim_horizon(f1)
    lo = float(torch.sigmoid(torch.tensor(math.log(1) + r, dtype=F64)))  # u = 1
    hi = float(torch.sigmoid(torch.tensor(math.log(T - 1) + r, dtype=F64)))  # u = T_max - 1
    assert f"T_max = {T}" in line and "b_i = -b_f" in line
    m = re.search(r"f from (\S+) to (\S+), horizons (\S+) to (\S+) steps", line)
    flo, fhi, dlo, dhi = map(float, m.groups())
    assert flo == pytest.approx(lo, rel=2e-3) and fhi == pytest.approx(hi, rel=2e-3)
    assert math.ceil(dlo) == _sim_horizon(lo) and math.ceil(dhi) == _sim_horizon(hi)
    # needed: chrono's T_max is the distance the user asks for
    (l2,) = [a for a in advice((d,), None, T, needed=200) if "b_f" in a]
    assert "T_max = 200" in l2 and "against 200 steps needed" in l2
    # a large f, stable, a high carry share: no forget-gate line
    share = torch.full((2, 30), 0.9, dtype=F64)
    ok = _layer(cell="lstm", forget_gate=0.99, forget_bias=5.0, forget_rest=0.0, per_sequence_carry_share=share)
    assert not any("b_f" in a for a in advice((ok,), None, T))
    low = dataclasses.replace(ok, per_sequence_carry_share=torch.full((2, 30), 0.2, dtype=F64))
    (l3,) = [a for a in advice((low,), None, T) if "b_f" in a]
    assert "carry share 20% < 50% for k <= 15" in l3


def test_gru_line_numbers():
    T = 50
    d = _layer(cell="gru", update_gate=0.6, horizon=12, horizon_kind="fallen")
    (line,) = [a for a in advice((d,), None, T) if "update-gate bias" in a]
    assert "the credit falls by 10^3 at d = 12" in line and "mean z = 0.6" in line
    assert math.ceil(_num(line, "d = ln(1e-3)/ln(z) =")) == _sim_horizon(0.6)
    zt = _num(line, "; z =")
    assert zt ** (T - 1) == pytest.approx(1e-3, rel=1e-2) and f"(horizon {T - 1} steps)" in line  # z*^(T-1) = 1e-3
    assert _num(line, "needs b_z about") == pytest.approx(math.log(zt / (1 - zt)) - math.log(0.6 / 0.4), rel=2e-3)
    assert not any("update-gate bias" in a for a in advice((dataclasses.replace(d, horizon_kind=None),), None, T))


def test_exploding_line_names_the_sigma_max_to_aim_for():
    d = _layer(sigma_max=2.5, gamma=1.0, theory_verdict="exploding possible", horizon=4, horizon_kind="risen")
    (line,) = [a for a in advice((d,), None, 30) if "exploding" in a]
    assert "grows by 10^3 within 4 steps" in line and "clip" in line
    assert "aim for sigma_max(W_hh) = 2.5 below 1/gamma = 1" in line
    assert _num(line, "scale W_hh by") == pytest.approx(1 / 2.5)
    relu = dataclasses.replace(d, gamma=0.5)  # 1/gamma = 2
    (l2,) = [a for a in advice((relu,), None, 30) if "exploding" in a]
    assert _num(l2, "below 1/gamma =") == 2 and _num(l2, "scale W_hh by") == pytest.approx(2 / 2.5)


# ------------------------------------------------------------------------------- lines on diagnosed models

def _credit_reference(m, x, term, anchors):
    """G(d) of a one-layer forward nn.RNN / nn.LSTM by autograd of each E_t = term(h_t) alone over an nn.*Cell
    loop with its weights: the mean over anchors t >= d + 1 and sequences of log10 ||dE_t/dh_{t-d}||."""
    lstm = isinstance(m, torch.nn.LSTM)
    T, B, _ = x.shape
    cls = torch.nn.LSTMCell if lstm else torch.nn.RNNCell
    c = cls(x.shape[2], m.hidden_size, **({} if lstm else {"nonlinearity": m.nonlinearity})).double()
    with torch.no_grad():
        for p in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(c, p).copy_(getattr(m, p + "_l0"))
    s_, n_ = torch.zeros(T, dtype=F64), torch.zeros(T, dtype=F64)
    for t in anchors:
        h = torch.zeros(B, m.hidden_size, dtype=F64)
        s, hs = ((h, torch.zeros_like(h)) if lstm else h), []
        for k in range(t):
            s = c(x[k], s)
            hk = s[0] if lstm else s
            hk.retain_grad()
            hs.append(hk)
        term(hs[-1]).backward()
        g = torch.stack([hs[t - 1 - d].grad for d in range(t)])  # (t, B, H), d = 0..t-1
        s_[:t] += torch.log10(torch.linalg.vector_norm(g, dim=-1)).sum(1)
        n_[:t] += B
    D = int(torch.nonzero(n_).max()) + 1
    return s_[:D] / n_[:D]


def _first_fall(G: torch.Tensor) -> int | None:
    for d in range(1, G.shape[0]):
        if float(G[d]) <= float(G[0]) - 3:
            return d
    return None


VANILLA = "use a gated cell (LSTM, GRU) or an orthogonal / identity initialisation of W_hh"


def test_vanilla_line_for_a_dying_rnn_and_not_for_one_that_holds():
    torch.manual_seed(7)
    m = torch.nn.RNN(3, 5).double()
    with torch.no_grad():
        m.weight_hh_l0.mul_(0.4)
    T = 40
    x = torch.randn(T, 3, 3, dtype=F64)
    head = torch.nn.Linear(5, 2).double()
    term = lambda y: torch.tanh(head(y)).pow(2).sum()  # noqa: E731
    d = diagnose(m, x, term, jacobian=False, credit_anchors=6)  # sum_t E_t, E_t = term(h_t)
    ld = d.layers[0]
    h = _first_fall(_credit_reference(m, x, term, ld.credit_anchors))
    assert h is not None and h <= 20 and ld.horizon == h
    (line,) = [a for a in d.advice if VANILLA in a]
    assert f"the credit falls by 10^3 at d = {h} < T - 1 = {T - 1}" in line
    sig = float(torch.linalg.svdvals(m.weight_hh_l0.detach())[0])
    assert _num(line, "sigma_max(W_hh) =") == pytest.approx(sig, rel=2e-3) and "1/gamma = 1" in line
    # the identity relu RNN with small positive inputs: h_k = h_{k-1} + x_k, dE_t/dh_{t-d} = dE_t/dh_t
    m = torch.nn.RNN(1, 3, nonlinearity="relu").double()
    with torch.no_grad():
        m.weight_hh_l0.copy_(torch.eye(3))
        m.weight_ih_l0.fill_(1.0)
        m.bias_ih_l0.zero_()
        m.bias_hh_l0.zero_()
    x = 0.1 * torch.rand(T, 2, 1, dtype=F64)
    head = torch.nn.Linear(3, 1).double()
    term = lambda y: head(y).sum()  # noqa: E731
    d = diagnose(m, x, lambda out: head(out).sum(), jacobian=False, credit_anchors=6)
    G = _credit_reference(m, x, term, d.layers[0].credit_anchors)
    assert float(G.max() - G.min()) < 1e-12 and d.layers[0].horizon is None
    assert not any(VANILLA in a for a in d.advice)


def _lstm(bias_f: float):
    torch.manual_seed(9)
    m = torch.nn.LSTM(3, 5).double()
    with torch.no_grad():
        m.bias_ih_l0[5:10].fill_(bias_f)
        m.bias_hh_l0[5:10].zero_()
    return m


@pytest.mark.parametrize("bias_f", [-3.0, 5.0])
def test_lstm_line_for_a_small_forget_bias_and_not_a_large_one(bias_f):
    m = _lstm(bias_f)
    T = 30
    torch.manual_seed(10)
    x = torch.randn(T, 3, 3, dtype=F64)
    head = torch.nn.Linear(5, 2).double()
    term = lambda y: torch.tanh(head(y)).pow(2).sum()  # noqa: E731
    d = diagnose(m, x, term, jacobian=False, credit_anchors=4)  # sum_t E_t, E_t = term(h_t)
    run = rerun(m, x).runs[0]
    g = gate_facts(run.cell, run.trace)
    g.pop("forget_gate_units")
    ld = dataclasses.replace(d.layers[0], **g)  # what diagnose passes once it is wired (the gate facts)
    lines = advice((ld,), d.log10_gradient_norm, T)
    f = float(_loop_gates(m, x).mean())
    h = _first_fall(_credit_reference(m, x, term, ld.credit_anchors))
    assert ld.horizon == h
    forget = [a for a in lines if "Set b_f = 1" in a]
    if bias_f < 0:
        assert f < 0.8 and h is not None
        (line,) = forget
        assert _num(line, "Forget gate now: mean f =") == pytest.approx(f, rel=2e-3)
        assert _num(line, "mean b_f = b_ih_f + b_hh_f =") == bias_f and f"against {T} steps needed" in line
        assert math.ceil(_num(line, "d = ln(1e-3)/ln(f) =")) == _sim_horizon(f)
        assert "chrono initialisation" in line and f"T_max = {T}" in line
    else:
        assert f > 0.8 and h is None and ld.far_carry_share() >= 0.5
        assert forget == [] and not any("chrono" in a for a in lines)


# -------------------------------------------------------------------------------------- the results' text

class _NonFinite:  # duck-typed interop/nan_hunt.NonFinite
    def message(self):
        return "non-finite: the loss is NaN at step 3 (layer 0)"

    def to_dict(self):
        return {"step": 3}


def test_parameter_table_and_summary_from_given_numbers():
    norms = {"embedding.weight": 3.0, "rnn.weight_hh_l0": 12.0, "head.bias": 4.0, "head.weight": 0.0}
    params = tuple((n, math.log10(v) if v else -math.inf) for n, v in norms.items())
    d = Diagnosis("m", 30, 2, 1, 1, 0.5, "loss_fn", (_layer(),), None, 0, "float64", ("advice one",), 0.0,
                  parameters=params, model_dtype="float32", agreement=3.2e-7, nonfinite=_NonFinite(),
                  clip_source="batch")
    table = d.parameter_table().splitlines()
    assert table[0].split() == ["parameter", "||dL/dtheta||", "share"]
    total = math.sqrt(sum(v * v for v in norms.values()))  # 13
    rows = {r.split()[0]: r.split()[1:] for r in table[1:]}
    for n, v in norms.items():
        assert float(rows[n][0]) == pytest.approx(v, rel=1e-4)
        assert float(rows[n][1].rstrip("%")) == pytest.approx(100 * v * v / total ** 2, abs=0.05)
    assert float(rows["total"][0]) == pytest.approx(total, rel=1e-4) and rows["total"][1] == "100.0%"
    assert [r.split()[0] for r in table[1:-1]] == list(norms)  # in the given order
    assert len({len(r) for r in table}) == 1  # right-aligned numbers: every row ends at the same column
    s = d.summary().splitlines()
    assert s[0] == _NonFinite().message() and s[1].startswith("rnnscope diagnose: m")
    assert "model dtype float32, analysis dtype float64" in s[2] and "3.2e-07" in s[2]
    i = s.index("||dL/dtheta|| per parameter (the whole model):")
    assert i > s.index(next(x for x in s if x.startswith("layer 0 forward"))) and s[-1] == "advice: advice one"
    assert [x.strip() for x in s[i + 1:i + 1 + len(table)]] == [r.strip() for r in table]
    j = d.to_dict()
    assert j["nonfinite"] == {"step": 3} and j["model_dtype"] == "float32" and j["clip_source"] == "batch"
    assert [p["name"] for p in j["parameters"]] == list(norms)
    assert j["parameters"][1]["share"] == pytest.approx(144 / 169, rel=1e-12)
    # without the new fields: no table, no dtype line, the old header first
    plain = Diagnosis("m", 30, 2, 1, 1, 0.5, "loss_fn", (_layer(),), None, 0, "float64", (), 0.0)
    assert plain.summary().splitlines()[0].startswith("rnnscope diagnose") and "per parameter" not in plain.summary()
