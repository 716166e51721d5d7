"""Hypothesis-generated argument lists for every command: any mix of the command's own options (read from the
click command, so a new option is fuzzed the day it is added), each given a good value or a hostile one (negative,
zero, huge, NaN, Inf, text, empty, an embedded NUL, a 5,000-character word, a folder, a text or empty file, a path
under a file), with flags and stray words.

Whatever arrives, rnnscope must answer within HANG_S seconds with exit code 0 (it ran), 2 (refused: exactly one
line `rnnscope <command>: error: ... expected ..., got ...` on stderr, nothing on stdout, no file in the folder
changed, removed or written) or 3 (a sweep whose configs failed); never 1 (a bug), never a traceback; a run that
succeeded changes no file it was not told to write. The commands whose good runs take minutes (study, claims,
reproduce, demo, serve) always get one value that must be refused; the others get small sizes among their good
values, so that a run that is accepted stays short.

References: the exit code, the captured streams and sha256 of every file (hostile_files.snapshot), independent of
rnnscope. Examples are derandomised (the same lists in CI every time); raise FUZZ_EXAMPLES to search longer.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.main import get_command

from rnnscope.app.cli import COMMANDS, app

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hostile_files import make_files, snapshot  # noqa: E402
from test_hostile_inputs import HANG_S, LINE, run_in_process  # noqa: E402

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "12"))

HOSTILE = ["-1", "0", "-0", "abc", "", " ", "nan", "inf", "-inf", "1e400", "10000000000", "2.5", "0x10", "1,2,3",
           "::", "text.npz", "text.npy", "empty.npy", "empty.npz", "trunc.npz", "dir.npz", "dir.npy", "missing.npy",
           "a_file/x.png", "a\x00b", "x" * 5000, "--", "-", "zero.npz", "nan.npz", "inf.npy", "x4d.npy", "é",
           "notdb.sqlite", "w.csv"]

INTS = ["1", "2", "3"]
FLOATS = ["0.5", "1.0", "1.5"]
GOOD = {  # small good values per option: an accepted run stays short
    "--cell": ["elman", "pal", "lstm", "gru", "lru", "mingru"], "--activation": ["tanh", "relu", "sigmoid"],
    "--hidden": ["2", "4", "8"], "--input-size": INTS, "--length": ["20", "40"], "--batch": INTS,
    "--gain": FLOATS, "--init": ["normal", "orthogonal", "identity"], "--seed": ["0", "7"],
    "--dtype": ["float32", "float64"], "--weights": ["w.npz"], "--inputs": ["x.npy", "x2d.npy"],
    "--targets": ["y.npy", "yclass.npy"], "--h0": ["zeros", "random", "h0.npy"], "--h0-scale": FLOATS,
    "--input-scale": FLOATS, "--r-min": ["0.1", "0.5"], "--r-max": ["0.9", "0.99"],
    "--cell-option": ["r_min=0.5", "dt_min=0.01"], "--t": ["5", "20"], "--plot": ["out.png", "out.svg"],
    "--head": ["mse", "ce"], "--loss-at": ["all", "last"], "--k": INTS, "--every": INTS, "--warmup": ["0", "1", "2"],
    "--blocks": INTS, "--sigma-w": ["1,2", "0.5", "1.5"], "--sigma-b": ["0", "0,0.5"], "--seeds": ["1"],
    "--spec": ["good.toml"], "--db": ["f.sqlite", "g.sqlite"], "--workers": ["1", "2"], "--scheduler": ["tcp://127.0.0.1:1"],
    "--lambdas": ["0.5,0.9", "0.9"], "--rho": ["0", "0.5"], "--sequences": ["50", "100"], "--theta": ["0.1"],
    "--burn-in": ["2", "5"], "--sweep": ["g"], "--task": ["adding-le", "copy", "delayed-xor", "temporal-order"],
    "--optimizer": ["sgd", "adam"], "--lr": ["0.01"], "--steps": INTS, "--clip-norm": ["1"], "--clip-value": ["1"],
    "--clip-adaptive": ["2"], "--regularizer-alpha": ["0.5"], "--eval-every": INTS, "--eval-size": ["4", "8"],
    "--length-range": ["5:10"], "--criterion": ["lenient", "pascanu"], "--flossing-k": ["1"],
    "--flossing-alpha": ["0.1"], "--flossing-steps": ["1"], "--flossing-every": ["1"], "--log-dir": ["logs"],
    "--n": ["2", "4"], "--out": ["t.npz"], "--loss": ["mse", "ce"], "--arch": ["lstm:input=1,hidden=8"],
    "--module": ["a", "b"], "--jacobian-sequences": ["0", "1"], "--gradient-history": ["keep.json"],
    "--only": ["001-01"], "--host": ["127.0.0.1"], "--port": ["0"], "--report": ["dir.npz"],
}
POSITIONAL = {"sweep": ["good.toml"] * 6 + ["bad.toml", "missing.toml", "huge.toml", "empty.toml", "dir.toml", "spec.json"],
              "diagnose": ["lstm.pt"] * 6 + ["two.pt", "text.pt", "empty.pt", "setup_raises.py", "setup_bad_return.py",
                           "dir.pt"],
              "study": ["pascanu", "cells", "bad.toml", "study_bad.toml"], "reproduce": ["000", "all", "001"]}
# one value each of these commands always gets, which must be refused: their good runs take minutes
MUST_FAIL = {"study": ("name", ["nosuchstudy", "bad.toml", "dir.toml", "empty.toml"]),
             "claims": ("--only", ["zzz", "", "001-01,nope", "1e400"]),
             "reproduce": ("seed", ["009", "x", "", "-1"]),
             "demo": ("--out", ["a_file", "a_file/x", "keep.png"]),
             "serve": ("--port", ["70000", "-1", "http", "1e400"])}
# options every example of these commands gets (a good or a hostile value), so that an accepted run stays short
ALWAYS = {"phase": ["--sigma-w", "--sigma-b", "--length", "--db"], "train": ["--task", "--steps", "--length"],
          "profile": ["--length"], "lyapunov": ["--length"], "bptt": ["--weights", "--inputs", "--targets"],
          "tasks sample": ["--task", "--length", "--out"], "diagnose": ["--inputs", "--arch"], "results": ["--db"]}


def _commands() -> dict:
    """{name as typed: [(option or argument name, is_flag)]} from the click commands (tasks sample included)."""
    root = get_command(app)
    out = {}
    for name, cmd in root.commands.items():
        for sub, c in (getattr(cmd, "commands", None) or {None: cmd}).items():
            key = name if sub is None else f"{name} {sub}"
            out[key] = [(p.opts[0] if p.opts and p.opts[0].startswith("-") else p.name, bool(getattr(p, "is_flag", False)))
                        for p in c.params if p.name != "help"]
    return out


SIGNATURES = _commands()


@st.composite
def argument_lists(draw, command: str) -> list[str]:
    params = SIGNATURES[command]
    options = [(n, f) for n, f in params if n.startswith("-")]
    chosen = draw(st.lists(st.sampled_from(options), max_size=6, unique=True)) if options else []
    names = {n for n, _ in chosen}
    chosen += [(n, False) for n in ALWAYS.get(command, []) if n not in names]
    argv = command.split()
    positional = [n for n, _ in params if not n.startswith("-")]
    bad_name, bad_values = MUST_FAIL.get(command, (None, None))
    def value(good: list) -> str:  # a good value half of the time (when there is one), else a hostile one
        return draw(st.sampled_from(good) | st.sampled_from(HOSTILE) if good else st.sampled_from(HOSTILE))

    for p in positional:
        if p == bad_name:
            argv.append(draw(st.sampled_from(bad_values)))
        elif draw(st.integers(0, 9)) > 0:  # sometimes left out
            argv.append(value(POSITIONAL.get(command, [])))
    for name, flag in chosen:
        if name == bad_name:
            continue
        argv.append(name)
        if not flag:
            argv.append(value(GOOD.get(name, [])))
    if bad_name and bad_name.startswith("-"):
        argv += [bad_name, draw(st.sampled_from(bad_values))]
    if draw(st.integers(0, 19)) == 0:  # a stray word
        argv.insert(draw(st.integers(1, len(argv))), draw(st.sampled_from(HOSTILE + ["--nope", "extra"])))
    return argv


def _default_output(command: str, name: str) -> bool:
    """Whether name is a file the command writes when not told where (its --help says so): the results store
    rnnscope-results.sqlite of phase, sweep and study, phase's figure phase.png beside its store, a study's
    study-NAME[-quick].png."""
    if name == "rnnscope-results.sqlite":
        return command in ("phase", "sweep", "study")
    return (command == "phase" and name == "phase.png") or (command == "study" and name.startswith("study-"))


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_files(tmp_path_factory.mktemp("fuzz"))


def test_every_command_is_fuzzed():
    assert {c.split()[0] for c in SIGNATURES} == set(COMMANDS)


@pytest.mark.parametrize("command", sorted(SIGNATURES))
def test_fuzzed_argument_lists(command, folder, capsys, monkeypatch):
    monkeypatch.chdir(folder)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    seen: list = []

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(argv=argument_lists(command))
    def check(argv):
        before = snapshot(folder)
        code, out, err, seconds = run_in_process(argv, capsys)  # None: no answer within HANG_S
        after = snapshot(folder)
        seen.append((code, seconds))
        assert code is not None, f"{argv!r}: no answer within {HANG_S} s"
        assert "Traceback" not in err + out, err
        assert code in (0, 2, 3), f"{argv!r}: exit {code}: {err}"
        if command in MUST_FAIL:
            assert code == 2, f"{argv!r}: expected a refusal, got exit {code}"
        named = {a for a in argv} | {a.split("=", 1)[-1] for a in argv}
        if code == 2:
            lines = err.splitlines()
            assert len(lines) == 1 and LINE.match(lines[0]) and out == "", (argv, err, out[:200])
            assert after == before, f"{argv!r}: refused, yet files changed: " \
                                    f"{sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))}"
        else:  # a run that succeeded wrote only what it was told to, or its documented default outputs
            changed = {k for k in before if before[k] != after.get(k)}
            assert all(k.split("/")[0] in named or _default_output(command, k) for k in changed), \
                f"{argv!r}: changed files not named: {changed}"

    check()
    codes = [c for c, _ in seen]
    print(f"{command}: {len(seen)} argument lists, exit codes {sorted(set(codes))}, "
          f"{codes.count(2)} refused, slowest {max(s for _, s in seen):.1f} s")
    assert len(seen) >= min(EXAMPLES, 5) and 2 in codes
