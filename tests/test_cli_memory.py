"""cli: `rnnscope memory` runs, prints its table, its --json fields equal the library's numbers (and the closed forms
written out here), --plot writes a PNG, and every bad input gives one line on stderr and exit code 2."""

from __future__ import annotations

import json
import math

import pytest

from rnnscope.app.cli import entry, main
from rnnscope.dynamics.memory import memory_sensitivity

SMALL = ["--lambdas", "0.5,0.9", "--sequences", "400"]
REGISTERED = "memory" in entry.COMMANDS  # read before the fixture below patches it


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_memory_is_a_command():
    assert REGISTERED, "entry.COMMANDS must list 'memory': entry.main refuses a command that it does not list"


@pytest.fixture(autouse=True)
def _registered(monkeypatch):
    """Run the command even where entry.COMMANDS does not list it yet (the test above says so)."""
    if "memory" not in entry.COMMANDS:
        monkeypatch.setattr(entry, "COMMANDS", entry.COMMANDS + ("memory",))


def test_json(capsys):
    code, out, err = run(capsys, "memory", *SMALL, "--rho", "0.3", "--seed", "5", "--json")
    assert code == 0 and err == ""
    d = json.loads(out)
    assert d["lambdas"] == [0.5, 0.9] and d["rho"] == 0.3 and d["sequences"] == 400 and d["seed"] == 5
    assert d["plot"] is None and d["tolerance_se"] == 4.0 and d["burn_in"] == 8.0
    assert [(r["case"], r["param"]) for r in d["rows"][:7]] == [
        ("plain", "lambda"), ("normalised", "lambda"), ("exponential", "nu"), ("complex", "r"), ("lru", "nu"),
        ("lru", "theta"), ("tanh", "g")]
    lib = memory_sensitivity((0.5, 0.9), rho=0.3, sequences=400, seed=5)
    assert [r["sens_mc"] for r in d["rows"]] == [r.sens_mc for r in lib.rows]  # the same numbers, seeded
    plain = next(r for r in d["rows"] if r["case"] == "plain" and r["lam"] == 0.9)
    lam, rho = 0.9, 0.3
    assert plain["h2_closed"] == pytest.approx((1 + rho * lam) / ((1 - rho * lam) * (1 - lam * lam)), rel=1e-12)
    tanh = next(r for r in d["rows"] if r["case"] == "tanh")
    assert tanh["h2_closed"] is None and tanh["agree"] is None  # no linear formula at rho != 0
    assert set(d["slopes"]["plain/lambda"]) == {"sens_mc", "sens_closed", "h2_mc", "h2_closed"}


def test_table(capsys):
    code, out, err = run(capsys, "memory", *SMALL)
    assert code == 0 and err == ""
    assert "E[h^2] MC ± se" in out and "E[(dh/dp)^2] MC ± se" in out and "growth exponents" in out
    assert "12 of 12 linear rows agree within 4 standard errors" in out
    assert "MC/linear" in out  # tanh against the linear formula at rho = 0


def test_plot(capsys, tmp_path):
    png = tmp_path / "memory.png"
    code, out, err = run(capsys, "memory", *SMALL, "--plot", png, "--json")
    assert code == 0 and err == ""
    assert json.loads(out)["plot"] == str(png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("args,what", [
    (["--lambdas", "1"], "--lambdas: expected a comma-separated list of numbers in (0, 1), got '1'"),
    (["--lambdas", "0"], "--lambdas: expected"),
    (["--lambdas", "-0.5"], "--lambdas: expected"),
    (["--lambdas", "0.5,abc"], "got 'abc'"),
    (["--lambdas", "0.5,,0.9"], "got an empty entry in '0.5,,0.9'"),
    (["--lambdas", ""], "--lambdas: expected"),
    (["--lambdas", "nan"], "got 'nan'"),
    (["--lambdas", "0.9999999"], "size: expected sequences x steps"),
    (["--rho", "1"], "--rho: expected an input autocorrelation with |rho| < 1, got 1"),
    (["--rho", "-1.5"], "--rho: expected"),
    (["--rho", "inf"], "--rho: expected a finite number"),
    (["--sequences", "1"], "--sequences: expected an integer >= 2"),
    (["--sequences", "0"], "--sequences: expected a positive integer"),
    (["--sequences", "x"], "--sequences: expected"),
    (["--seed", "-1"], "--seed: expected an integer seed"),
    (["--theta", "nan"], "--theta: expected a finite number"),
    (["--burn-in", "0"], "--burn-in: expected a finite number > 0"),
    (["--plot", "out.txt"], "plot: expected a file name ending in .png"),
    (["--plot", "/no/such/folder/m.png"], "plot: expected an existing folder"),
    (["--lambdas"], "--lambdas: expected a value after the option"),
    (["--bogus"], "option: expected one of"),
])
def test_bad_input_one_line_exit_2(capsys, args, what):
    code, out, err = run(capsys, "memory", *args)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("rnnscope memory: error: ") and "Traceback" not in err
    assert what in err, err
