"""`rnnscope diagnose`: the JSON numbers against step-by-step autograd through nn.*Cell loops, the human output,
the figure, and the error contract (one line on stderr, exit code 2) for bad files, shapes and options."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rnnscope.app.cli import main
from torch_reference import log10_norms, make_module, module_grad_norm, reference

ARCH = "lstm:input=3,hidden=3,layers=2,bidirectional"


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def files(tmp_path):
    m = make_module("lstm", 2, True, False, True, dtype=torch.float32, seed=3, scale=0.7)
    torch.save(m.state_dict(), tmp_path / "m.pt")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((9, 2, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", rng.standard_normal((9, 2, 6)).astype(np.float32))  # every step, mse
    np.save(tmp_path / "c.npy", rng.integers(0, 6, size=(2,)))  # the last step's classes, ce
    return tmp_path, m, x


def _check_against_reference(j, m, x, loss_fn, spectral: bool = False):
    """The float32 module is analysed as a float64 copy (the default): the reference is float64 autograd."""
    m64 = copy.deepcopy(m).double()
    ref = reference(m64, torch.as_tensor(x, dtype=torch.float64), loss_fn)
    assert j["loss"] == pytest.approx(ref["loss"], rel=1e-12)
    assert j["model_dtype"] == "float32" and j["dtype"] == "float64" and j["agreement"] < 1e-5
    assert [(l["layer"], l["direction"]) for l in j["layers"]] == [(0, "forward"), (0, "reverse"), (1, "forward"),
                                                                   (1, "reverse")]
    for l in j["layers"]:
        key = (l["layer"], 0 if l["direction"] == "forward" else 1)
        for name, g in (("log10_adjoint_h", ref["gh"][key]), ("log10_adjoint_c", ref["gc"][key])):
            want = log10_norms(g).mean(0).tolist()  # batch mean of the logs
            got = [-np.inf if v is None else v for v in l[name]]
            np.testing.assert_allclose(got, want, atol=1e-9)
        assert l["sigma_max"] == pytest.approx(float(torch.linalg.svdvals(getattr(
            m64, f"weight_hh_l{key[0]}" + ("_reverse" if key[1] else "")).detach())[0]), rel=1e-12)
        assert l["gamma"] is None and isinstance(l["verdict"], str)
        assert (len(l["log10_spectral"]) == 9) if spectral else l["log10_spectral"] is None
    x64 = torch.as_tensor(x, dtype=torch.float64)
    assert j["gradient_norm"] == pytest.approx(module_grad_norm(m64, x64, loss_fn), rel=1e-10)
    m64.zero_grad()
    out = m64(x64)[0]
    (out[-1].sum() if loss_fn is None else loss_fn(out)).backward()
    assert [(p["name"], p["gradient_norm"]) for p in j["parameters"]] == [
        (n, pytest.approx(float(torch.linalg.vector_norm(p.grad)), rel=1e-10)) for n, p in m64.named_parameters()]


def test_json_default_loss_equals_autograd(files, capsys):
    d, m, x = files
    code, out, err = run(capsys, "diagnose", d / "m.pt", "--arch", ARCH, "--inputs", d / "x.npy", "--json",
                         "--jacobian-sequences", "2")
    assert code == 0 and err == ""
    j = json.loads(out)
    assert {"layers", "advice", "seconds"} <= set(j) and j["loss_kind"] == "sum of the last output"
    assert j["jacobian_sequences"] == 2 and j["jacobian_seconds"] > 0
    _check_against_reference(j, m, x, None, spectral=True)


def test_json_with_mse_and_ce_targets_equals_autograd(files, capsys):
    d, m, x = files
    y = torch.as_tensor(np.load(d / "y.npy"), dtype=torch.float64)
    code, out, _ = run(capsys, "diagnose", d / "m.pt", "--arch", ARCH, "--inputs", d / "x.npy", "--targets",
                       d / "y.npy", "--json", "--jacobian-sequences", "1")
    assert code == 0
    _check_against_reference(json.loads(out), m, x, lambda o: F.mse_loss(o, y), spectral=True)
    c = torch.as_tensor(np.load(d / "c.npy"))
    code, out, _ = run(capsys, "diagnose", d / "m.pt", "--arch", ARCH, "--inputs", d / "x.npy", "--targets",
                       d / "c.npy", "--loss", "ce", "--json", "--jacobian-sequences", "0")
    assert code == 0
    j = json.loads(out)
    assert j["layers"][0]["log10_spectral"] is None and j["jacobian_sequences"] == 0
    _check_against_reference_ce = lambda o: F.cross_entropy(o[-1], c)  # noqa: E731
    ref = reference(m.double(), torch.as_tensor(x, dtype=torch.float64), _check_against_reference_ce)
    assert j["loss"] == pytest.approx(ref["loss"], rel=1e-12)
    np.testing.assert_allclose(j["layers"][0]["log10_adjoint_h"], log10_norms(ref["gh"][(0, 0)]).mean(0), atol=1e-9)


def test_human_output_plot_and_trusted_whole_module(files, capsys):
    d, m, x = files
    code, out, err = run(capsys, "diagnose", d / "m.pt", "--arch", ARCH, "--inputs", d / "x.npy", "--plot",
                         d / "fig.png")
    assert code == 0 and err == ""
    assert "rnnscope diagnose" in out and "verdicts" in out and "advice" in out and "layer 1 reverse" in out
    assert (d / "fig.png").stat().st_size > 20_000
    torch.save(m, d / "whole.pt")
    code, out, err = run(capsys, "diagnose", d / "whole.pt", "--inputs", d / "x.npy", "--trust", "--json")
    assert code == 0
    _check_against_reference(json.loads(out), m, x, None)


@pytest.mark.parametrize("args,match", [
    (["{d}/whole.pt", "--inputs", "{d}/x.npy"], "refused by default: pass --trust"),
    (["{d}/m.pt", "--inputs", "{d}/x.npy"], "expected --arch"),
    (["{d}/m.pt", "--arch", "lstm:input=4,hidden=3,layers=2,bidirectional", "--inputs", "{d}/x.npy"], "does not fit"),
    (["{d}/m.pt", "--arch", "lstm:input=3", "--inputs", "{d}/x.npy"], "hidden="),
    (["{d}/m.pt", "--arch", "tcn:input=3,hidden=3", "--inputs", "{d}/x.npy"], "KIND one of"),
    (["{d}/m.pt", "--arch", ARCH, "--inputs", "{d}/x5.npy"], "input size D = 3"),
    (["{d}/m.pt", "--arch", ARCH, "--inputs", "{d}/x.npy", "--targets", "{d}/ybatch.npy"], r"expected shape \(9, 2, 6\)"),
    (["{d}/m.pt", "--arch", ARCH, "--inputs", "{d}/x.npy", "--loss", "ce"], "--loss without --targets"),
    (["{d}/m.pt", "--arch", ARCH, "--inputs", "{d}/x.npy", "--targets", "{d}/y.npy", "--loss", "ce"], "integer class"),
    (["{d}/corrupt.pt", "--arch", ARCH, "--inputs", "{d}/x.npy"], "readable torch file"),
    (["{d}/missing.pt", "--arch", ARCH, "--inputs", "{d}/x.npy"], "no such file"),
    (["{d}/linear.pt", "--trust", "--inputs", "{d}/x.npy"], "expected nn.RNN.*got Linear"),
    (["{d}/m.pt", "--arch", ARCH, "--inputs", "{d}/corrupt.pt"], r"inputs: expected a single \.npy array.*got a zip"),
    (["{d}/m.pt", "--arch", ARCH, "--inputs", "{d}/x.npy", "--plot", "{d}/f.gif"], ".png, .svg, .pdf"),
    (["{d}/m.pt", "--arch", ARCH, "--inputs", "{d}/x.npy", "--loss", "l1", "--targets", "{d}/y.npy"], "one of mse, ce"),
])
def test_bad_input_is_one_line_and_exit_2(files, capsys, args, match):
    d, m, _ = files
    torch.save(m, d / "whole.pt")
    torch.save(torch.nn.Linear(2, 2), d / "linear.pt")
    (d / "corrupt.pt").write_bytes(b"PK\x03\x04 not really a zip" * 3)
    np.save(d / "x5.npy", np.zeros((9, 2, 5), dtype=np.float32))
    np.save(d / "ybatch.npy", np.zeros((9, 3, 6), dtype=np.float32))  # 3 sequences against 2 inputs
    code, out, err = run(capsys, "diagnose", *[a.format(d=d) for a in args])
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("rnnscope diagnose: error: ") and "Traceback" not in err
    import re
    assert re.search(match, err), err


# ------------------------------------------------------------------- SETUP.py: the user's whole model and loss

SETUP = '''
import pydoc_data.topics
import torch
from torch import nn

TEXT = "".join(pydoc_data.topics.topics.values())[:700]
CHARS = sorted(set(TEXT))
T, STARTS = 48, (0, 150, 300, 450, 600)


class CharLM(nn.Module):
    """nn.Embedding -> 2-layer nn.LSTM (batch_first) -> nn.Linear: logits of the next character."""

    def __init__(self, V, H=12):
        super().__init__()
        self.emb = nn.Embedding(V, 6)
        self.rnn = nn.LSTM(6, H, num_layers=2, batch_first=True)
        self.head = nn.Linear(H, V)

    def forward(self, ids):
        return self.head(self.rnn(self.emb(ids))[0])


def ce(logits, y):  # cross-entropy over every step
    return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))


def setup():
    torch.manual_seed(0)
    ids = torch.tensor([CHARS.index(c) for c in TEXT])
    x = torch.stack([ids[s:s + T] for s in STARTS[:4]])
    y = torch.stack([ids[s + 1:s + T + 1] for s in STARTS[:4]])
    model = CharLM(len(CHARS)).double()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(15):  # a few steps of training on the text
        loss = ce(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model, x, ce, y


def as_dict():
    model, x, loss_fn, y = setup()
    return {"model": model, "inputs": x, "loss_fn": loss_fn, "targets": y}


def chatty():
    print("loading the char-LM")  # the user's prints go to stderr, never into the JSON
    return setup()


def last_step():
    model, x, _, y = setup()
    return model, x, lambda out: ce(out[:, -1], y[:, -1])
'''


@pytest.fixture
def setup_py(tmp_path):
    f = tmp_path / "charlm_setup.py"
    f.write_text(SETUP)
    return f


def _api(setup_py, function, **kw):
    """The Python API's diagnose on what FUNCTION returns (the file run independently of the CLI, by runpy)."""
    import runpy
    from rnnscope.interop.diagnose import diagnose
    got = runpy.run_path(str(setup_py))[function]()
    if isinstance(got, dict):
        got = (got["model"], got["inputs"], got["loss_fn"], got.get("targets"))
    model, x, loss_fn, y = (*got, None)[:4]
    return diagnose(model, x, loss_fn, targets=y, **kw), (model, x, loss_fn, y)


def lstm_cell_reference(model, x, y, loss_fn):
    """The char-LM with its nn.LSTM replaced by explicit nn.LSTMCell loops (float64) carrying its weights, the head
    and loss on top, retain_grad on every h_k and c_k: {layer: (dL/dh (B, T, H), dL/dc (B, T, H))} and L."""
    rnn = model.rnn
    inp = model.emb(x)  # (B, T, D)
    B, T = x.shape
    kept = {}
    for l in range(rnn.num_layers):
        cell = torch.nn.LSTMCell(inp.shape[-1], rnn.hidden_size, dtype=torch.float64)
        with torch.no_grad():
            for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(cell, w).copy_(getattr(rnn, f"{w}_l{l}"))
        h = c = torch.zeros(B, rnn.hidden_size, dtype=torch.float64)
        hs, cs = [], []
        for k in range(T):
            h, c = cell(inp[:, k], (h, c))
            h.retain_grad()
            c.retain_grad()
            hs.append(h)
            cs.append(c)
        kept[l] = (hs, cs)
        inp = torch.stack(hs, 1)
    L = loss_fn(model.head(inp), y) if y is not None else loss_fn(model.head(inp))
    L.backward()
    return {l: (torch.stack([h.grad for h in hs], 1), torch.stack([c.grad for c in cs], 1))
            for l, (hs, cs) in kept.items()}, float(L.detach())


def _log10_batch_mean(g):  # g (B, T, H) -> log10 ||g_k|| averaged over the batch (T,)
    return torch.log10(g.norm(dim=-1)).mean(0).numpy()


def test_setup_py_char_lm_equals_api_and_lstm_cell_loop(setup_py, capsys):
    code, out, err = run(capsys, "diagnose", setup_py, "--json")
    assert code == 0 and err == "", err
    j = json.loads(out)
    assert j["model_file"] == str(setup_py) and j["setup_function"] == "setup" and j["loss_kind"] == "loss_fn"
    assert [(l["module"], l["layer"], l["direction"]) for l in j["layers"]] == [("rnn", 0, "forward"),
                                                                               ("rnn", 1, "forward")]
    assert j["dtype"] == "float64" and j["T"] == 48 and j["batch"] == 4 and j["layers"][0]["log10_spectral"] is None
    assert [p["name"] for p in j["parameters"]][:2] == ["emb.weight", "rnn.weight_ih_l0"]  # the whole model's table
    d, (model, x, loss_fn, y) = _api(setup_py, "setup")
    assert j["loss"] == pytest.approx(d.loss, rel=1e-12)
    for got, want in zip(j["layers"], d.layers):  # the CLI is the Python API
        np.testing.assert_allclose(got["log10_adjoint_h"], want.log10_adjoint_h.numpy(), rtol=1e-12)
        np.testing.assert_allclose(got["log10_adjoint_c"], want.log10_adjoint_c.numpy(), rtol=1e-12)
    ref, L = lstm_cell_reference(model, x, y, loss_fn)  # and, independently, an nn.LSTMCell loop with retain_grad
    assert j["loss"] == pytest.approx(L, rel=1e-12)
    for l in j["layers"]:
        gh, gc = ref[l["layer"]]
        np.testing.assert_allclose(l["log10_adjoint_h"], _log10_batch_mean(gh), rtol=1e-9)
        np.testing.assert_allclose(l["log10_adjoint_c"], _log10_batch_mean(gc), rtol=1e-9)
    assert min(j["layers"][0]["log10_adjoint_h"]) < max(j["layers"][0]["log10_adjoint_h"]) - 0.1  # not a flat profile


def test_setup_py_function_and_dict_forms(setup_py, capsys):
    code, out, err = run(capsys, "diagnose", f"{setup_py}:as_dict", "--json", "--jacobian-sequences", "0")
    assert code == 0 and err == ""
    j = json.loads(out)
    assert j["setup_function"] == "as_dict" and j["layers"][0]["log10_spectral"] is None
    d, _ = _api(setup_py, "as_dict", jacobian=False)
    for got, want in zip(j["layers"], d.layers):
        np.testing.assert_allclose(got["log10_adjoint_h"], want.log10_adjoint_h.numpy(), rtol=1e-12)
    code, out, err = run(capsys, "diagnose", f"{setup_py}:last_step", "--json", "--jacobian-sequences", "0")
    assert code == 0 and err == ""
    j = json.loads(out)
    d, (model, x, loss_fn, _) = _api(setup_py, "last_step", jacobian=False)
    ref, L = lstm_cell_reference(model, x, None, loss_fn)
    assert j["loss"] == pytest.approx(L, rel=1e-12)
    for l in j["layers"]:  # a last-step loss: dL/dh_k falls with T - k
        np.testing.assert_allclose(l["log10_adjoint_h"], _log10_batch_mean(ref[l["layer"]][0]), rtol=1e-9)
        assert l["log10_adjoint_h"][0] < l["log10_adjoint_h"][-1] - 1
    code, out, err = run(capsys, "diagnose", f"{setup_py}:chatty", "--json", "--jacobian-sequences", "0")
    assert code == 0 and err == "loading the char-LM\n" and json.loads(out)["setup_function"] == "chatty"
    fig = setup_py.parent / "charlm.png"
    code, out, err = run(capsys, "diagnose", setup_py, "--jacobian-sequences", "0", "--plot", fig)  # the human output
    assert code == 0 and err == "" and "inputs of setup()" in out and "rnn layer 1 forward" in out
    assert fig.stat().st_size > 20_000


BAD_SETUPS = {
    "syntax.py": "import torch\ndef setup(:\n    pass\n",
    "raises.py": "def setup():\n    x = 1\n    raise ValueError('no data here')\n",
    "toplevel.py": "import torch\nimport no_such_module_for_rnnscope_tests\n",
    "pair.py": "import torch\ndef setup():\n    return torch.nn.LSTM(2, 3), torch.zeros(5, 2)\n",
    "notmodel.py": "import torch\ndef setup():\n    return 'model', torch.zeros(5, 2), lambda o: o.sum()\n",
    "dictkeys.py": "import torch\ndef setup():\n    return {'model': torch.nn.LSTM(2, 3), 'inputs': torch.zeros(5, 2)}\n",
    "vector_loss.py": "import torch\ndef setup():\n    return torch.nn.LSTM(2, 3), torch.zeros(5, 2), lambda o: o.sum(-1)\n",
    "forward.py": ("import torch\nclass M(torch.nn.Module):\n    def __init__(self):\n        super().__init__()\n"
                   "        self.rnn = torch.nn.GRU(2, 3)\n    def forward(self, x):\n"
                   "        return self.rnn(x)[0] @ torch.zeros(4, 4)\n"
                   "def setup():\n    return M(), torch.zeros(5, 2), lambda o: o.sum()\n"),
}


@pytest.mark.parametrize("args,match", [
    (["{d}/missing.py"], "no such file"),
    (["{d}/charlm_setup.py:nope"], r"expected a function `nope` .* returning \(model, inputs, loss_fn\).* got no `nope` "
                                   r"\(functions defined there: .*as_dict.*setup"),
    (["{d}/syntax.py"], r"SyntaxError: .* at .*syntax.py:2$"),
    (["{d}/raises.py"], r"expected setup\(\) in .* to run, got ValueError: no data here at .*raises.py:3$"),
    (["{d}/toplevel.py"], r"ModuleNotFoundError: No module named 'no_such_module_for_rnnscope_tests' at .*toplevel.py:2$"),
    (["{d}/pair.py"], r"expected a function `setup` .* got a tuple of 2 items$"),
    (["{d}/notmodel.py"], "got model = a str, not an nn.Module"),
    (["{d}/dictkeys.py"], r"got a dict with keys \['inputs', 'model'\] \(missing loss_fn\)"),
    (["{d}/vector_loss.py"], r"loss_fn: expected a scalar.*got .*\(5,\)"),
    (["{d}/forward.py"], r"RuntimeError: .* at .*forward.py:7$"),
    (["{d}/charlm_setup.py", "--inputs", "{d}/x.npy"], "expected no --inputs with SETUP.py"),
    (["{d}/charlm_setup.py", "--module", "rnn"], "expected no --module with SETUP.py"),
    (["{d}/two.pt", "--arch", "gru:input=3,hidden=5", "--inputs", "{d}/x.npy"],
     r"expected --module PREFIX to pick one of the 2 recurrent modules in the state_dict \('decoder', 'encoder.rnn'\)"),
    (["{d}/two.pt", "--arch", "gru:input=3,hidden=5", "--module", "head", "--inputs", "{d}/x.npy"],
     r"module: expected one of the recurrent modules in the state_dict \('decoder', 'encoder.rnn'\), got 'head'"),
    (["{d}/m.pt", "--arch", ARCH, "--inputs", "{d}/ids.npy"],
     r"inputs look like token ids \(dtype int64\): pass the whole model with SETUP.py, or embedded inputs"),
    (["{d}/m.pt", "--arch", ARCH], "--inputs: expected a value"),
])
def test_setup_and_module_bad_input_is_one_line_and_exit_2(files, setup_py, capsys, args, match):
    d, m, _ = files
    for name, text in BAD_SETUPS.items():
        (d / name).write_text(text)
    torch.save(_two_modules().state_dict(), d / "two.pt")
    np.save(d / "ids.npy", np.random.default_rng(1).integers(0, 20, size=(9, 2, 3)))
    code, out, err = run(capsys, "diagnose", *[a.format(d=d) for a in args])
    assert code == 2 and out == "", out
    assert err.count("\n") == 1 and err.startswith("rnnscope diagnose: error: ") and "Traceback" not in err
    import re
    assert re.search(match, err.rstrip("\n")), err


def _two_modules():
    """A state_dict holding two recurrent modules ('encoder.rnn.' and 'decoder.') beside a head, float64."""
    torch.manual_seed(5)
    return torch.nn.ModuleDict({"encoder": torch.nn.ModuleDict({"rnn": torch.nn.LSTM(3, 4, num_layers=2,
                                                                                      bidirectional=True)}),
                                "decoder": torch.nn.GRU(3, 5), "head": torch.nn.Linear(5, 2)}).double()


def test_module_picks_one_recurrent_module_of_a_state_dict(files, capsys):
    from rnnscope.interop.diagnose import diagnose
    d, _, x = files
    two = _two_modules()
    torch.save(two.state_dict(), d / "two.pt")
    x64 = torch.as_tensor(x, dtype=torch.float64)
    for prefix, arch, alone in (("decoder", "gru:input=3,hidden=5", two["decoder"]),
                                ("encoder.rnn", "lstm:input=3,hidden=4,layers=2,bidirectional", two["encoder"]["rnn"])):
        code, out, err = run(capsys, "diagnose", d / "two.pt", "--arch", arch, "--module", prefix, "--inputs",
                             d / "x.npy", "--json", "--jacobian-sequences", "0")
        assert code == 0 and err == ""
        j = json.loads(out)
        want = diagnose(alone, x64, jacobian=False)  # that module diagnosed alone
        assert j["loss"] == pytest.approx(want.loss, rel=1e-12) and len(j["layers"]) == len(want.layers)
        for got, w in zip(j["layers"], want.layers):
            assert (got["layer"], got["direction"]) == (w.layer, w.direction)
            got_h = [-np.inf if v is None else v for v in got["log10_adjoint_h"]]  # JSON writes log10 0 as null
            np.testing.assert_allclose(got_h, w.log10_adjoint_h.numpy(), rtol=1e-12)
        unused = [k for k in two.state_dict() if not k.startswith(prefix + ".")]
        assert j["unused_keys"] == unused and "head.weight" in unused
        assert [n for n in j["notes"] if n.startswith(f"state_dict: {len(unused)} key(s) not used")]
    code, out, err = run(capsys, "diagnose", d / "two.pt", "--arch", "gru:input=3,hidden=5", "--module", "decoder.",
                         "--inputs", d / "x.npy", "--jacobian-sequences", "0")  # the human output says it too
    assert code == 0 and err == "" and "note: state_dict: 18 key(s) not used" in out and "head.{weight, bias}" in out


def test_gradient_history_dtype_and_the_human_report(files, capsys):
    """--gradient-history: the clip advice is numpy.percentile(history, 10) (AutoClip), read from .npy, from a JSON
    list and from GradientFlowMonitor.to_dict(); --dtype float32 analyses in float32; the report shows the model's
    dtype, the per-parameter table and the advice with their numbers; bad histories: one line, exit 2."""
    d, m, x = files
    hist = np.array([3.0, 1.0, 4.0, 1.5, 9.0, 2.6])
    np.save(d / "h.npy", hist)
    (d / "h.json").write_text(json.dumps(hist.tolist()))
    (d / "mon.json").write_text(json.dumps({"grad_norms": hist.tolist(), "every": 10}))
    want = float(np.percentile(hist, 10))
    for f in ("h.npy", "h.json", "mon.json"):
        code, out, err = run(capsys, "diagnose", d / "m.pt", "--arch", ARCH, "--inputs", d / "x.npy", "--json",
                             "--gradient-history", d / f)
        assert code == 0, err
        j = json.loads(out)
        line = [a for a in j["advice"] if a.startswith("clipping:")][0]
        assert j["clip_source"] == "history" and f"max_norm={want:.3g}" in line and "over the 6 recorded" in line
    code, out, _ = run(capsys, "diagnose", d / "m.pt", "--arch", ARCH, "--inputs", d / "x.npy", "--json", "--dtype",
                       "float32")
    j32 = json.loads(out)
    assert j32["dtype"] == "float32" and j32["model_dtype"] == "float32"
    code, out, err = run(capsys, "diagnose", d / "m.pt", "--arch", ARCH, "--inputs", d / "x.npy")
    assert code == 0 and err == ""
    assert "model dtype float32, analysis dtype float64" in out and "weight_hh_l1_reverse" in out and "total" in out
    assert "U[1, T_max - 1]" in out or "clipping: ||dL/dtheta||" in out  # square brackets printed as they are
    (d / "bad.json").write_text('{"grad_norms": "many"}')
    np.save(d / "one.npy", np.array([1.0]))
    for f, match in (("bad.json", "expected a 1-D list of at least 2 norms"), ("one.npy", "at least 2 norms"),
                     ("nothere.npy", "no such file")):
        code, out, err = run(capsys, "diagnose", d / "m.pt", "--arch", ARCH, "--inputs", d / "x.npy",
                             "--gradient-history", d / f)
        assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and match in err, (f, err)


def test_the_readme_example_char_lm_setup_file(capsys):
    """examples/charlm.py (the README's example), at its initialisation: the CLI's JSON is the Python API's on the
    same model, batch and loss, and the model is the one the README describes (embedding, 2-layer LSTM 128, head)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "examples" / "charlm.py"
    code, out, err = run(capsys, "diagnose", f"{path}:untrained", "--json")
    assert code == 0, err
    j = json.loads(out)
    spec = importlib.util.spec_from_file_location("charlm_example", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    model, x, loss_fn, y = mod.untrained()
    from rnnscope import diagnose
    d = diagnose(model, x, loss_fn, targets=y)
    assert (j["T"], j["batch"], j["model_dtype"]) == (200, 32, "float32")
    assert [p["name"] for p in j["parameters"]] == [n for n, _ in model.named_parameters()]
    for got, want in zip(j["layers"], d.layers):
        assert got["verdict"] == want.verdict and got["credit_case"] == "per-step"
        np.testing.assert_allclose(got["log10_credit"], want.log10_credit.numpy(), rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.float64])
def test_float_targets_for_ce_are_reported_in_the_files_dtype(files, capsys, dtype):
    """Class indices saved as floats: refused for ce, naming the dtype the file holds (numpy's name for it, read
    back here with np.load), not the float64 they are analysed in."""
    d, _, _ = files
    np.save(d / "c_float.npy", np.load(d / "c.npy").astype(dtype))
    stored = np.load(d / "c_float.npy").dtype.name
    code, out, err = run(capsys, "diagnose", d / "m.pt", "--arch", ARCH, "--inputs", d / "x.npy", "--targets",
                         d / "c_float.npy", "--loss", "ce")
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err.rstrip().endswith(f"targets: expected integer class indices for ce, got dtype {stored}"), err
    # and mse on float32 targets of every step: the same numbers as float64 ones (float32 -> float64 is exact)
    y = np.load(d / "y.npy")
    np.save(d / "y64.npy", y.astype(np.float64))
    outs = []
    for name in ("y.npy", "y64.npy"):
        code, out, err = run(capsys, "diagnose", d / "m.pt", "--arch", ARCH, "--inputs", d / "x.npy", "--targets",
                             d / name, "--json", "--jacobian-sequences", "0")
        assert code == 0, err
        outs.append(json.loads(out)["loss"])
    assert outs[0] == outs[1]
