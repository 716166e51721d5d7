"""`rnnscope diagnose`: the JSON numbers against step-by-step autograd through nn.*Cell loops, the human output,
the figure, and the error contract (one line on stderr, exit code 2) for bad files, shapes and options."""

from __future__ import annotations

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


def _check_against_reference(j, m, x, loss_fn):
    m64 = m.double()
    ref = reference(m64, torch.as_tensor(x, dtype=torch.float64), loss_fn)
    assert j["loss"] == pytest.approx(ref["loss"], rel=1e-5)
    assert [(l["layer"], l["direction"]) for l in j["layers"]] == [(0, "forward"), (0, "reverse"), (1, "forward"),
                                                                   (1, "reverse")]
    for l in j["layers"]:
        key = (l["layer"], 0 if l["direction"] == "forward" else 1)
        for name, g in (("log10_adjoint_h", ref["gh"][key]), ("log10_adjoint_c", ref["gc"][key])):
            want = log10_norms(g).mean(0).tolist()  # batch mean of the logs; float32 analysis vs float64 reference
            got = [-np.inf if v is None else v for v in l[name]]
            np.testing.assert_allclose(got, want, atol=2e-4)
        assert l["sigma_max"] == pytest.approx(float(torch.linalg.svdvals(getattr(
            m64, f"weight_hh_l{key[0]}" + ("_reverse" if key[1] else "")).detach())[0]), rel=1e-5)
        assert l["gamma"] is None and isinstance(l["verdict"], str) and len(l["log10_spectral"]) == 9
    assert j["gradient_norm"] == pytest.approx(module_grad_norm(m64, torch.as_tensor(x, dtype=torch.float64), loss_fn),
                                               rel=1e-4)


def test_json_default_loss_equals_autograd(files, capsys):
    d, m, x = files
    code, out, err = run(capsys, "diagnose", d / "m.pt", "--arch", ARCH, "--inputs", d / "x.npy", "--json")
    assert code == 0 and err == ""
    j = json.loads(out)
    assert {"layers", "advice", "seconds"} <= set(j) and j["loss_kind"] == "sum of the last output"
    _check_against_reference(j, m, x, None)


def test_json_with_mse_and_ce_targets_equals_autograd(files, capsys):
    d, m, x = files
    y = torch.as_tensor(np.load(d / "y.npy"), dtype=torch.float64)
    code, out, _ = run(capsys, "diagnose", d / "m.pt", "--arch", ARCH, "--inputs", d / "x.npy", "--targets",
                       d / "y.npy", "--json", "--jacobian-sequences", "1")
    assert code == 0
    _check_against_reference(json.loads(out), m, x, lambda o: F.mse_loss(o, y))
    c = torch.as_tensor(np.load(d / "c.npy"))
    code, out, _ = run(capsys, "diagnose", d / "m.pt", "--arch", ARCH, "--inputs", d / "x.npy", "--targets",
                       d / "c.npy", "--loss", "ce", "--json", "--jacobian-sequences", "0")
    assert code == 0
    j = json.loads(out)
    assert j["layers"][0]["log10_spectral"] is None and j["jacobian_sequences"] == 0
    _check_against_reference_ce = lambda o: F.cross_entropy(o[-1], c)  # noqa: E731
    ref = reference(m.double(), torch.as_tensor(x, dtype=torch.float64), _check_against_reference_ce)
    assert j["loss"] == pytest.approx(ref["loss"], rel=1e-5)
    np.testing.assert_allclose(j["layers"][0]["log10_adjoint_h"], log10_norms(ref["gh"][(0, 0)]).mean(0), atol=2e-4)


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
    (["{d}/m.pt", "--arch", ARCH, "--inputs", "{d}/corrupt.pt"], "readable .npy"),
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
