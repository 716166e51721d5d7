"""torch_models: the step-by-step re-run of torch modules against the modules themselves (their fused kernels),
loops over nn.*Cell and step functions against explicit loops, saved-model loading and its errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from rnnscope.core.cells import ElmanCell, FunctionCell, GRUCell, LSTMCell, ProjLSTMCell
from rnnscope.interop import torch_models
from rnnscope.core.errors import InputError
from rnnscope.interop.saved_models import load_model, parse_arch
from rnnscope.interop.torch_models import cell_from_module, layer_cells, rerun
from torch_reference import COMBO_IDS, COMBOS, D, make_module

F64, F32 = torch.float64, torch.float32
# torch's own notice when a float32 nn.LSTM with proj_size runs (its fused oneDNN kernel lacks projections)
pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")


@pytest.mark.parametrize("dtype,tol", [(F64, 1e-12), (F32, 1e-6)], ids=["float64", "float32"])
@pytest.mark.parametrize("kind,layers,bi,bf,bias", COMBOS, ids=COMBO_IDS)
def test_rerun_equals_the_module(kind, layers, bi, bf, bias, dtype, tol):
    m = make_module(kind, layers, bi, bf, bias, dtype=dtype, scale=0.5)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 6, D, generator=g, dtype=dtype) if bf else torch.randn(6, 2, D, generator=g, dtype=dtype)
    with torch.no_grad():
        out, hn = m(x)
    run = rerun(m, x)
    assert run.output.dtype == dtype
    assert float((run.module_output() - out).abs().max()) <= tol
    h_n, c_n = hn if isinstance(hn, tuple) else (hn, None)
    assert float((run.h_n - h_n).abs().max()) <= tol
    if c_n is not None:
        assert float((run.c_n - c_n).abs().max()) <= tol
    else:
        assert run.c_n is None
    assert [(r.layer, r.direction) for r in run.runs] == [(l, d) for l in range(layers)
                                                          for d in (("forward", "reverse") if bi else ("forward",))]


@pytest.mark.parametrize("dtype,tol", [(F64, 1e-12), (F32, 1e-5)], ids=["float64", "float32"])
@pytest.mark.parametrize("kind,layers,bi,bf,bias", COMBOS, ids=COMBO_IDS)
def test_fused_trace_equals_the_step_by_step_trace(kind, layers, bi, bf, bias, dtype, tol, monkeypatch):
    """rerun(fused=True) (torch's kernel for h, one product for the pre-activations, LSTM's c by a scan) against
    rerun(fused=False) (the step-by-step unroll): states and pre-activations of every (layer, direction)."""
    m = make_module(kind, layers, bi, bf, bias, dtype=dtype, scale=0.5)
    g = torch.Generator().manual_seed(2)
    x = torch.randn(3, 9, D, generator=g, dtype=dtype) if bf else torch.randn(9, 3, D, generator=g, dtype=dtype)
    ref = rerun(m, x, fused=False)
    with monkeypatch.context() as mp:  # the fused path must not fall back to the step loop for these modules
        mp.setattr(torch_models, "unroll", lambda *a, **k: pytest.fail("fused rerun fell back to unroll"))
        fast = rerun(m, x, fused=True)
    assert [(r.layer, r.direction) for r in fast.runs] == [(r.layer, r.direction) for r in ref.runs]
    for a, b in zip(fast.runs, ref.runs):
        for got, want in ((a.trace.states, b.trace.states), (a.trace.preacts, b.trace.preacts),
                          (a.trace.inputs, b.trace.inputs)):
            assert got.shape == want.shape and got.dtype == want.dtype
            assert float((got - want).abs().max()) <= tol * max(1.0, float(want.abs().max()))
    torch.testing.assert_close(fast.output, ref.output, rtol=0, atol=tol)


def test_unbatched_input_and_numpy():
    m = make_module("gru", 2, True, True, True, scale=0.5)
    x = np.random.default_rng(0).standard_normal((7, D))  # (T, D): unbatched, also with batch_first
    with torch.no_grad():
        out, hn = m(torch.as_tensor(x))
    run = rerun(m, x)
    assert run.module_output().shape == out.shape == (7, 2 * 3)
    assert float((run.module_output() - out).abs().max()) < 1e-12
    assert float((run.h_n[:, 0] - hn).abs().max()) < 1e-12


@pytest.mark.parametrize("which", ["rnn_tanh", "rnn_relu", "lstm", "gru"])
def test_cell_modules_run_as_a_loop(which):
    torch.manual_seed(3)
    cls = {"lstm": nn.LSTMCell, "gru": nn.GRUCell}.get(which, nn.RNNCell)
    kw = {"nonlinearity": which[4:]} if which.startswith("rnn") else {}
    cell = cls(D, 4, dtype=F64, **kw)
    x = torch.randn(5, 2, D, dtype=F64)
    h = torch.zeros(2, 4, dtype=F64)
    c = torch.zeros(2, 4, dtype=F64)
    outs = []
    with torch.no_grad():
        for t in range(5):
            if which == "lstm":
                h, c = cell(x[t], (h, c))
            else:
                h = cell(x[t], h)
            outs.append(h)
    run = rerun(cell, x)
    torch.testing.assert_close(run.output, torch.stack(outs), rtol=0, atol=1e-12)
    assert type(layer_cells(cell)[0][0]) is {"lstm": LSTMCell, "gru": GRUCell}.get(which, ElmanCell)


def test_function_cell_runs_as_given():
    W = torch.randn(3, 3, dtype=F64, generator=torch.Generator().manual_seed(4)) * 0.5
    fn = lambda x, h: torch.tanh(W @ h + x)  # noqa: E731
    cell = FunctionCell(fn, state_size=3, input_size=3)
    x = torch.randn(4, 2, 3, dtype=F64)
    h, outs = torch.zeros(2, 3, dtype=F64), []
    for t in range(4):
        h = torch.stack([fn(x[t, b], h[b]) for b in range(2)])
        outs.append(h)
    torch.testing.assert_close(rerun(cell, x).output, torch.stack(outs), rtol=0, atol=1e-14)


def test_layer_cells_have_the_module_weights():
    m = make_module("lstm_proj", 2, True, False, True)
    cells = layer_cells(m)
    c = cells[1][1]
    assert isinstance(c, ProjLSTMCell) and (c.hidden_size, c.h_size, c.input_size) == (3, 2, 4)
    assert torch.equal(c.W_hr, m.weight_hr_l1_reverse.detach())
    assert torch.equal(c.W_xh, m.weight_ih_l1_reverse.detach())
    e = layer_cells(make_module("rnn_relu", bias=True))[0][0]
    assert torch.equal(e.b_h, (make_module("rnn_relu").bias_ih_l0 + make_module("rnn_relu").bias_hh_l0).detach())
    assert e.activation.name == "relu"


def test_cell_from_module_takes_one_layer_one_direction():
    m = make_module("gru")
    assert isinstance(cell_from_module(m), GRUCell)
    for bad in (make_module("lstm", layers=2), make_module("gru", bidirectional=True), make_module("lstm_proj")):
        with pytest.raises(InputError, match="expected"):
            cell_from_module(bad)
    with pytest.raises(InputError, match="expected nn.RNN"):
        cell_from_module(nn.Linear(2, 2))


@pytest.mark.parametrize("make,inputs,match", [
    (lambda: nn.Linear(3, 3), torch.zeros(4, 1, 3), "expected nn.RNN"),
    (lambda: nn.Conv1d(3, 3, 1), torch.zeros(4, 1, 3), "got Conv1d"),
    (lambda: make_module("lstm"), torch.zeros(4, 1, 5, dtype=F64), r"input size D = 3 .*got D = 5"),
    (lambda: make_module("gru"), torch.zeros(4, 1, 1, 3, dtype=F64), r"expected shape \(T, D\) or \(T, B, D\)"),
    (lambda: make_module("gru", batch_first=True), torch.zeros(2, 4, 1, 3), r"\(B, T, D\)"),
    (lambda: make_module("gru"), torch.zeros(0, 2, 3, dtype=F64), "at least one time step"),
    (lambda: make_module("gru"), torch.full((4, 2, 3), float("nan"), dtype=F64), "finite"),
    (lambda: make_module("gru"), torch.zeros(4, 2, 3, dtype=torch.complex64), "real numbers"),
])
def test_bad_models_and_inputs_raise_input_errors(make, inputs, match):
    with pytest.raises(InputError, match=match):
        rerun(make(), inputs)


def test_parse_arch():
    assert parse_arch("lstm:input=3,hidden=8,layers=2,bidirectional,batch_first,proj=4,bias=false") == {
        "kind": "lstm", "input": 3, "hidden": 8, "layers": 2, "bidirectional": True, "batch_first": True, "proj": 4,
        "bias": False}
    assert parse_arch("rnn_relu:input=1,hidden=2")["layers"] == 1
    for bad, match in [("lstm", "expected KIND"), ("foo:input=1,hidden=2", "KIND one of"), ("gru:input=1", "hidden="),
                       ("gru:input=1,hidden=x", "integer"), ("gru:input=1,hidden=2,proj=1", "proj only for lstm"),
                       ("lstm:input=1,hidden=2,proj=2", "proj < hidden"), ("lstm:input=1,hidden=2,speed=3", "items"),
                       ("lstm:input=1,hidden=0", "hidden >= 1"), ("lstm:input=1,hidden=2,bias=maybe", "bias=true")]:
        with pytest.raises(InputError, match=match):
            parse_arch(bad)


def test_load_model_state_dict_prefix_trust_and_corrupt(tmp_path):
    m = make_module("lstm", 2, True, True, True, dtype=F32)
    wrapper = nn.ModuleDict({"rnn": m, "head": nn.Linear(6, 1)})
    torch.save(wrapper.state_dict(), tmp_path / "wrapped.pt")
    got = load_model(tmp_path / "wrapped.pt", "lstm:input=3,hidden=3,layers=2,bidirectional,batch_first")
    x = torch.randn(2, 5, 3)
    with torch.no_grad():
        torch.testing.assert_close(got(x)[0], m(x)[0], rtol=0, atol=0)
    torch.save(m, tmp_path / "whole.pt")
    with pytest.raises(InputError, match=r"pickled torch\.nn\.modules\.rnn\.LSTM.*--trust"):
        load_model(tmp_path / "whole.pt")
    whole = load_model(tmp_path / "whole.pt", trust=True)
    with torch.no_grad():
        torch.testing.assert_close(whole(x)[0], m(x)[0], rtol=0, atol=0)
    (tmp_path / "bad.pt").write_bytes(b"\x80\x02garbage" * 5)
    with pytest.raises(InputError, match="readable torch file"):
        load_model(tmp_path / "bad.pt", "gru:input=3,hidden=3")
    with pytest.raises(InputError, match="no such file"):
        load_model(tmp_path / "missing.pt", "gru:input=3,hidden=3")
    with pytest.raises(InputError, match="does not fit"):
        load_model(tmp_path / "wrapped.pt", "gru:input=3,hidden=3")
    torch.save(nn.Linear(2, 2), tmp_path / "linear.pt")
    with pytest.raises(InputError, match="expected nn.RNN.*got Linear"):
        load_model(tmp_path / "linear.pt", trust=True)


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_differentiable_cells_hold_the_modules_parameters(kind):
    """differentiable=True: autograd through the cell's unroll reaches the module's parameters, and equals autograd
    of the module's own forward (float64); the default cells are detached copies."""
    torch.manual_seed(0)
    m = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[kind](2, 3, batch_first=True, dtype=F64)
    x = torch.randn(2, 7, 2, dtype=F64)
    cell = cell_from_module(m, dtype=None, differentiable=True)
    assert cell.W_hh is m.weight_hh_l0
    from rnnscope.core.unroll import unroll
    h = unroll(cell, x.transpose(0, 1)).states[1:, :, :cell.h_size]  # (T, B, H)
    ours = torch.autograd.grad((h ** 2).sum(), list(m.parameters()))
    theirs = torch.autograd.grad((m(x)[0] ** 2).sum(), list(m.parameters()))
    for a, b in zip(ours, theirs):
        assert float((a - b).abs().max()) <= 1e-12
    frozen = cell_from_module(m)
    assert not frozen.W_hh.requires_grad
    assert cell_from_module(m, dtype=torch.float32, differentiable=True).W_hh.grad_fn is not None  # a cast stays in the graph
