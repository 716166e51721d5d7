"""The hostile-input suite: every command given what a user gets wrong (wrong types, negative and huge sizes, NaN and
Inf files, wrong shapes, empty, truncated and text files, folders for files, unwritable and unknown-extension
outputs, sizes that would exhaust memory, large grids, broken specs and setup files) must answer with exactly one
line on stderr, `rnnscope <command>: error: <what>: expected ..., got ...`, exit code 2, nothing on stdout, within
HANG_S seconds, and leave the folder as it was: no file that existed changed, none removed, none written.

The reference is independent of rnnscope: the exit code, the captured streams, and sha256 of every file in the folder
before and after (hostile_files.snapshot). Cases run in-process through `rnnscope.app.cli.main` (a subprocess each
would cost ~2 s of imports); a few run through the installed console script as well
(test_console_script_matches_in_process), to show the two behave the same.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rnnscope.app.cli import COMMANDS, main

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hostile_files import make_files, snapshot  # noqa: E402

HANG_S = 60  # a case that has not answered by then is a hang

M = ["--weights", "w.npz"]  # a good model, to combine with one bad option
X = ["--inputs", "x.npy"]
BPTT = ["bptt", "--weights", "w.npz", "--inputs", "x.npy", "--targets", "y.npy"]
SP = ["tasks", "sample", "--task", "adding-le", "--length", "10", "--out", "t.npz"]
TR = ["train", "--task", "adding-le", "--length", "10", "--steps", "1"]
PH = ["phase", "--sigma-w", "1,2", "--sigma-b", "0,1", "--hidden", "8", "--length", "40", "--db", "p.sqlite"]
DG = ["diagnose", "lstm.pt", "--inputs", "x.npy"]

# (id, argv): every case must be refused cleanly
CASES: list[tuple[str, list[str]]] = [
    # ---------------------------------------------------------------- profile
    ("profile-hidden-negative", ["profile", "--hidden", "-3"]),
    ("profile-hidden-zero", ["profile", "--hidden", "0"]),
    ("profile-hidden-text", ["profile", "--hidden", "abc"]),
    ("profile-hidden-float", ["profile", "--hidden", "2.5"]),
    ("profile-hidden-huge", ["profile", "--hidden", "1000000000000"]),
    ("profile-memory", ["profile", "--hidden", "100000", "--length", "100000"]),
    ("profile-compute", ["profile", "--hidden", "4000", "--length", "100000", "--batch", "64"]),
    ("profile-length-zero", ["profile", "--length", "0"]),
    ("profile-length-negative", ["profile", "--length", "-5"]),
    ("profile-batch-zero", ["profile", "--batch", "0"]),
    ("profile-gain-nan", ["profile", "--gain", "nan"]),
    ("profile-gain-inf", ["profile", "--gain", "inf"]),
    ("profile-gain-text", ["profile", "--gain", "big"]),
    ("profile-cell-unknown", ["profile", "--cell", "transformer"]),
    ("profile-activation-unknown", ["profile", "--activation", "swish"]),
    ("profile-init-unknown", ["profile", "--init", "xavier"]),
    ("profile-dtype-unknown", ["profile", "--dtype", "float16"]),
    ("profile-seed-negative", ["profile", "--seed", "-1"]),
    ("profile-weights-text", ["profile", "--weights", "text.npz"]),
    ("profile-weights-empty", ["profile", "--weights", "empty.npz"]),
    ("profile-weights-truncated", ["profile", "--weights", "trunc.npz"]),
    ("profile-weights-dir", ["profile", "--weights", "dir.npz"]),
    ("profile-weights-missing", ["profile", "--weights", "missing.npz"]),
    ("profile-weights-nan", ["profile", "--weights", "nan.npz"]),
    ("profile-weights-inf", ["profile", "--weights", "inf.npz"]),
    ("profile-weights-3x4", ["profile", "--weights", "shape3x4.npz"]),
    ("profile-weights-0x0", ["profile", "--weights", "zero.npz"]),
    ("profile-weights-no-whh", ["profile", "--weights", "nowhh.npz"]),
    ("profile-weights-strings", ["profile", "--weights", "strings.npz"]),
    ("profile-weights-csv", ["profile", "--weights", "w.csv"]),
    ("profile-weights-npy-text", ["profile", "--weights", "text.npy"]),
    ("profile-inputs-text", ["profile", *M, "--inputs", "text.npy"]),
    ("profile-inputs-empty", ["profile", *M, "--inputs", "empty.npy"]),
    ("profile-inputs-truncated", ["profile", *M, "--inputs", "trunc.npy"]),
    ("profile-inputs-dir", ["profile", *M, "--inputs", "dir.npy"]),
    ("profile-inputs-inf", ["profile", *M, "--inputs", "inf.npy"]),
    ("profile-inputs-4d", ["profile", *M, "--inputs", "x4d.npy"]),
    ("profile-inputs-wrong-D", ["profile", *M, "--inputs", "xD3.npy"]),
    ("profile-inputs-no-steps", ["profile", *M, "--inputs", "x0.npy"]),
    ("profile-inputs-objects", ["profile", *M, "--inputs", "xobj.npy"]),
    ("profile-inputs-strings", ["profile", *M, "--inputs", "xstr.npy"]),
    ("profile-inputs-npz", ["profile", *M, "--inputs", "w.npz"]),
    ("profile-h0-wrong-size", ["profile", *M, "--h0", "h0bad.npy"]),
    ("profile-h0-text", ["profile", *M, "--h0", "text.npy"]),
    ("profile-h0-word", ["profile", "--h0", "ones"]),
    ("profile-h0-scale-negative", ["profile", "--h0", "random", "--h0-scale", "-1"]),
    ("profile-input-scale-nan", ["profile", "--input-scale", "nan"]),
    ("profile-t-zero", ["profile", "--length", "20", "--t", "0"]),
    ("profile-t-beyond", ["profile", "--length", "20", "--t", "21"]),
    ("profile-plot-unknown-ext", ["profile", "--plot", "out.bmp"]),
    ("profile-plot-no-folder", ["profile", "--plot", "no/such/folder/out.png"]),
    ("profile-plot-under-a-file", ["profile", "--plot", "a_file/out.png"]),
    ("profile-plot-is-dir", ["profile", "--plot", "dir.npz"]),
    ("profile-bad-with-existing-plot", ["profile", "--hidden", "-3", "--plot", "keep.png"]),
    ("profile-lru-r-order", ["profile", "--cell", "lru", "--r-min", "0.9", "--r-max", "0.5"]),
    ("profile-lru-r-above-one", ["profile", "--cell", "lru", "--r-max", "1.5"]),
    ("profile-cell-option-unknown", ["profile", "--cell", "lru", "--cell-option", "foo=1"]),
    ("profile-cell-option-value", ["profile", "--cell", "mamba", "--cell-option", "dt_min=abc"]),
    ("profile-cell-option-syntax", ["profile", "--cell", "lru", "--cell-option", "novalue"]),
    ("profile-r-min-for-elman", ["profile", "--r-min", "0.5"]),
    ("profile-unknown-option", ["profile", "--hiden", "8"]),
    ("profile-missing-value", ["profile", "--hidden"]),
    ("profile-extra-argument", ["profile", "extra"]),
    # ---------------------------------------------------------------- bptt
    ("bptt-no-targets", ["bptt", *M, *X]),
    ("bptt-targets-wrong-T", [*BPTT[:-1], "ywrong.npy"]),
    ("bptt-targets-nan", [*BPTT[:-1], "nan_y.npy"]),
    ("bptt-targets-text", [*BPTT[:-1], "text.npy"]),
    ("bptt-targets-dir", [*BPTT[:-1], "dir.npy"]),
    ("bptt-ce-float-targets", [*BPTT, "--head", "ce"]),
    ("bptt-head-unknown", [*BPTT, "--head", "hinge"]),
    ("bptt-loss-at-unknown", [*BPTT, "--loss-at", "middle"]),
    ("bptt-cell-lstm", [*BPTT, "--cell", "lstm"]),
    ("bptt-h0-text", [*BPTT, "--h0", "text.npy"]),
    ("bptt-h0-wrong-size", [*BPTT, "--h0", "h0bad.npy"]),
    ("bptt-inputs-no-steps", ["bptt", *M, "--inputs", "x0.npy", "--targets", "y.npy"]),
    ("bptt-weights-nan", ["bptt", "--weights", "nan.npz", *X, "--targets", "y.npy"]),
    ("bptt-weights-truncated", ["bptt", "--weights", "trunc.npz", *X, "--targets", "y.npy"]),
    ("bptt-inputs-inf", ["bptt", *M, "--inputs", "inf.npy", "--targets", "y.npy"]),
    # ---------------------------------------------------------------- lyapunov
    ("lyapunov-k-zero", ["lyapunov", "--k", "0"]),
    ("lyapunov-k-above-S", ["lyapunov", "--hidden", "8", "--k", "9"]),
    ("lyapunov-every-zero", ["lyapunov", "--every", "0"]),
    ("lyapunov-warmup-negative", ["lyapunov", "--warmup", "-1"]),
    ("lyapunov-warmup-all", ["lyapunov", "--length", "50", "--warmup", "50"]),
    ("lyapunov-blocks-zero", ["lyapunov", "--blocks", "0"]),
    ("lyapunov-length-zero", ["lyapunov", "--length", "0"]),
    ("lyapunov-weights-text", ["lyapunov", "--weights", "text.npz"]),
    ("lyapunov-weights-0x0", ["lyapunov", "--weights", "zero.npz"]),
    ("lyapunov-gain-inf", ["lyapunov", "--gain", "inf"]),
    ("lyapunov-memory", ["lyapunov", "--hidden", "100000", "--length", "100000"]),
    ("lyapunov-dtype", ["lyapunov", "--dtype", "bfloat16"]),
    # ---------------------------------------------------------------- meanfield / theory
    ("meanfield-sigma-w-negative", ["meanfield", "--sigma-w", "-1"]),
    ("meanfield-sigma-w-nan", ["meanfield", "--sigma-w", "nan"]),
    ("meanfield-sigma-w-inf", ["meanfield", "--sigma-w", "inf"]),
    ("meanfield-sigma-w-text", ["meanfield", "--sigma-w", "one"]),
    ("meanfield-sigma-b-negative", ["meanfield", "--sigma-w", "1", "--sigma-b", "-0.5"]),
    ("meanfield-activation", ["meanfield", "--sigma-w", "1", "--activation", "gelu"]),
    ("theory-overflow", ["theory", "--sigma-w", "1e400"]),
    ("theory-unknown-option", ["theory", "--sigma", "1"]),
    # ---------------------------------------------------------------- memory
    ("memory-lambda-above-one", ["memory", "--lambdas", "0.5,1.5"]),
    ("memory-lambda-zero", ["memory", "--lambdas", "0"]),
    ("memory-lambda-text", ["memory", "--lambdas", "abc"]),
    ("memory-lambdas-empty", ["memory", "--lambdas", ""]),
    ("memory-lambdas-hole", ["memory", "--lambdas", "0.5,,0.9"]),
    ("memory-rho-above-one", ["memory", "--rho", "2"]),
    ("memory-sequences-zero", ["memory", "--sequences", "0"]),
    ("memory-sequences-huge", ["memory", "--sequences", "1000000000000"]),
    ("memory-theta-nan", ["memory", "--theta", "nan"]),
    ("memory-burn-in-negative", ["memory", "--burn-in", "-1"]),
    ("memory-plot-unknown-ext", ["memory", "--plot", "m.bmp"]),
    ("memory-plot-under-a-file", ["memory", "--plot", "a_file/m.png"]),
    # ---------------------------------------------------------------- phase
    ("phase-huge-grid", ["phase", "--sigma-w", "1:2:1000000", "--sigma-b", "0:1:1000", "--db", "p.sqlite"]),
    ("phase-grid-text", ["phase", "--sigma-w", "a:b:c", "--db", "p.sqlite"]),
    ("phase-grid-count-zero", ["phase", "--sigma-w", "1:2:0", "--db", "p.sqlite"]),
    ("phase-grid-nan", ["phase", "--sigma-w", "nan,1", "--db", "p.sqlite"]),
    ("phase-hidden-huge", [*PH[:-4], "--hidden", "200000", "--length", "40", "--db", "p.sqlite"]),
    ("phase-length-short", [*PH[:5], "--length", "10", "--db", "p.sqlite"]),
    ("phase-seeds-zero", [*PH, "--seeds", "0"]),
    ("phase-workers-zero", [*PH, "--workers", "0"]),
    ("phase-workers-negative", [*PH, "--workers", "-1"]),
    ("phase-scheduler-not-url", [*PH, "--scheduler", "localhost"]),
    ("phase-scheduler-bad-port", [*PH, "--scheduler", "tcp://127.0.0.1:99999"]),
    ("phase-spec-missing", ["phase", "--spec", "missing.toml", "--db", "p.sqlite"]),
    ("phase-spec-broken", ["phase", "--spec", "bad.toml", "--db", "p.sqlite"]),
    ("phase-db-dir", [*PH[:-2], "--db", "dir.sqlite"]),
    ("phase-db-not-sqlite", [*PH[:-2], "--db", "notdb.sqlite"]),
    ("phase-db-under-a-file", [*PH[:-2], "--db", "a_file/p.sqlite"]),
    ("phase-plot-unknown-ext", [*PH, "--plot", "p.bmp"]),
    ("phase-activation", [*PH, "--activation", "softplus"]),
    # ---------------------------------------------------------------- sweep
    ("sweep-spec-missing-file", ["sweep", "nofile.toml", "--db", "s.sqlite"]),
    ("sweep-spec-broken", ["sweep", "bad.toml", "--db", "s.sqlite"]),
    ("sweep-spec-missing-keys", ["sweep", "missing.toml", "--db", "s.sqlite"]),
    ("sweep-spec-huge-grid", ["sweep", "huge.toml", "--db", "s.sqlite"]),
    ("sweep-spec-unknown-task", ["sweep", "unknown_task.toml", "--db", "s.sqlite"]),
    ("sweep-spec-no-name", ["sweep", "noname.toml", "--db", "s.sqlite"]),
    ("sweep-spec-empty-grid", ["sweep", "empty_grid.toml", "--db", "s.sqlite"]),
    ("sweep-spec-bad-value", ["sweep", "badvalue.toml", "--db", "s.sqlite"]),
    ("sweep-spec-huge-hidden", ["sweep", "hugehidden.toml", "--db", "s.sqlite"]),
    ("sweep-spec-empty-file", ["sweep", "empty.toml", "--db", "s.sqlite"]),
    ("sweep-spec-binary", ["sweep", "binary.toml", "--db", "s.sqlite"]),
    ("sweep-spec-dir", ["sweep", "dir.toml", "--db", "s.sqlite"]),
    ("sweep-spec-json", ["sweep", "spec.json", "--db", "s.sqlite"]),
    ("sweep-db-not-sqlite", ["sweep", "good.toml", "--db", "notdb.sqlite"]),
    ("sweep-db-dir", ["sweep", "good.toml", "--db", "dir.sqlite"]),
    ("sweep-workers-zero", ["sweep", "good.toml", "--db", "s.sqlite", "--workers", "0"]),
    ("sweep-workers-and-scheduler", ["sweep", "good.toml", "--db", "s.sqlite", "--workers", "2", "--scheduler",
                                     "tcp://127.0.0.1:1"]),
    ("sweep-no-spec", ["sweep"]),
    # ---------------------------------------------------------------- results
    ("results-db-missing", ["results", "--db", "none.sqlite"]),
    ("results-db-not-sqlite", ["results", "--db", "notdb.sqlite"]),
    ("results-db-dir", ["results", "--db", "dir.sqlite"]),
    ("results-db-npz", ["results", "--db", "w.npz"]),
    ("results-json-and-csv", ["results", "--db", "notdb.sqlite", "--json", "--csv"]),
    ("results-no-db", ["results"]),
    # ---------------------------------------------------------------- tasks sample
    ("tasks-unknown-task", ["tasks", "sample", "--task", "parity", "--length", "10", "--out", "t.npz"]),
    ("tasks-length-zero", [*SP[:4], "--length", "0", "--out", "t.npz"]),
    ("tasks-length-negative", [*SP[:4], "--length", "-1", "--out", "t.npz"]),
    ("tasks-n-zero", [*SP, "--n", "0"]),
    ("tasks-n-huge", [*SP, "--n", "1000000000"]),
    ("tasks-memory", [*SP[:4], "--length", "100000000", "--n", "1000000", "--out", "t.npz"]),
    ("tasks-out-unknown-ext", [*SP[:-1], "t.txt"]),
    ("tasks-out-no-folder", [*SP[:-1], "no/such/t.npz"]),
    ("tasks-out-is-dir", [*SP[:-1], "dir.npz"]),
    ("tasks-bad-keeps-existing", [*SP[:4], "--length", "-1", "--out", "keep.npz"]),
    ("tasks-seed-text", [*SP, "--seed", "x"]),
    ("tasks-no-subcommand-option", ["tasks", "sample"]),
    ("tasks-unknown-subcommand", ["tasks", "list"]),
    # ---------------------------------------------------------------- train
    ("train-unknown-task", ["train", "--task", "parity", "--length", "10"]),
    ("train-length-zero", [*TR[:3], "--length", "0"]),
    ("train-hidden-huge", [*TR, "--hidden", "1000000"]),
    ("train-batch-huge", [*TR, "--batch", "1000000000"]),
    ("train-eval-size-huge", [*TR, "--eval-size", "1000000000"]),
    ("train-length-huge", [*TR[:3], "--length", "1000000000", "--steps", "1"]),
    ("train-lr-nan", [*TR, "--lr", "nan"]),
    ("train-lr-negative", [*TR, "--lr", "-0.1"]),
    ("train-steps-zero", [*TR[:5], "--steps", "0"]),
    ("train-clip-negative", [*TR, "--clip-norm", "-1"]),
    ("train-two-clips", [*TR, "--clip-norm", "1", "--clip-value", "1"]),
    ("train-optimizer-unknown", [*TR, "--optimizer", "lbfgs"]),
    ("train-criterion-unknown", [*TR, "--criterion", "strict"]),
    ("train-length-range-reversed", ["train", "--task", "adding-le", "--length-range", "50:10", "--steps", "1"]),
    ("train-length-range-text", ["train", "--task", "adding-le", "--length-range", "a:b", "--steps", "1"]),
    ("train-length-and-range", [*TR, "--length-range", "10:20"]),
    ("train-log-dir-is-file", [*TR, "--log-dir", "a_file"]),
    ("train-db-not-sqlite", [*TR, "--db", "notdb.sqlite"]),
    ("train-flossing-k-zero", [*TR, "--flossing-k", "0", "--flossing-steps", "5"]),
    ("train-flossing-alpha-nan", [*TR, "--flossing-k", "1", "--flossing-alpha", "nan"]),
    ("train-cell-option-unknown", [*TR, "--cell", "lru", "--cell-option", "nope=1"]),
    ("train-init-unknown", [*TR, "--init", "he"]),
    ("train-eval-every-zero", [*TR, "--eval-every", "0"]),
    ("train-cell-unknown", [*TR, "--cell", "transformer"]),
    # ---------------------------------------------------------------- study
    ("study-unknown", ["study", "nosuchstudy", "--db", "st.sqlite"]),
    ("study-toml-broken", ["study", "bad.toml", "--db", "st.sqlite"]),
    ("study-toml-dir", ["study", "dir.toml", "--db", "st.sqlite"]),
    ("study-quick-and-faithful", ["study", "pascanu", "--quick", "--faithful", "--db", "st.sqlite"]),
    ("study-workers-zero", ["study", "pascanu", "--quick", "--workers", "0", "--db", "st.sqlite"]),
    ("study-db-not-sqlite", ["study", "pascanu", "--quick", "--db", "notdb.sqlite"]),
    ("study-plot-unknown-ext", ["study", "pascanu", "--quick", "--db", "st.sqlite", "--plot", "s.bmp"]),
    ("study-scheduler-bad", ["study", "pascanu", "--quick", "--db", "st.sqlite", "--scheduler", "ftp://x:1"]),
    ("study-bad-config", ["study", "study_bad.toml", "--db", "st.sqlite"]),
    # ---------------------------------------------------------------- claims / reproduce / demo / serve
    ("claims-only-unknown", ["claims", "--only", "nope"]),
    ("claims-only-empty", ["claims", "--only", ""]),
    ("claims-only-partly-unknown", ["claims", "--only", "001-01,zzz"]),
    ("reproduce-unknown-seed", ["reproduce", "009"]),
    ("reproduce-no-seed", ["reproduce"]),
    ("reproduce-out-is-file", ["reproduce", "all", "--out", "a_file"]),
    ("demo-out-is-file", ["demo", "--out", "a_file", "--quick"]),
    ("demo-out-under-a-file", ["demo", "--out", "a_file/x", "--quick"]),
    ("serve-port-too-big", ["serve", "--port", "70000"]),
    ("serve-port-negative", ["serve", "--port", "-1"]),
    ("serve-port-text", ["serve", "--port", "http"]),
    ("serve-report-missing", ["serve", "--port", "0", "--report", "no-such-report"]),
    ("serve-report-is-file", ["serve", "--port", "0", "--report", "keep.png"]),
    # ---------------------------------------------------------------- diagnose
    ("diagnose-model-text", ["diagnose", "text.pt", *X]),
    ("diagnose-model-empty", ["diagnose", "empty.pt", *X]),
    ("diagnose-model-dir", ["diagnose", "dir.pt", *X]),
    ("diagnose-model-missing", ["diagnose", "none.pt", *X]),
    ("diagnose-model-no-layers", ["diagnose", "nolayers.pt", *X]),
    ("diagnose-two-modules", ["diagnose", "two.pt", *X]),
    ("diagnose-module-unknown", ["diagnose", "two.pt", *X, "--module", "c"]),
    ("diagnose-inputs-text", ["diagnose", "lstm.pt", "--inputs", "text.npy"]),
    ("diagnose-inputs-token-ids", ["diagnose", "lstm.pt", "--inputs", "xint.npy"]),
    ("diagnose-inputs-wrong-D", ["diagnose", "lstm.pt", "--inputs", "xD3.npy"]),
    ("diagnose-inputs-inf", ["diagnose", "lstm.pt", "--inputs", "inf.npy"]),
    ("diagnose-no-inputs", ["diagnose", "lstm.pt"]),
    ("diagnose-targets-wrong-shape", [*DG, "--targets", "ywrong.npy"]),
    ("diagnose-targets-float32-wrong", [*DG, "--targets", "y32.npy"]),
    ("diagnose-loss-unknown", [*DG, "--loss", "hinge"]),
    ("diagnose-arch-bad", [*DG, "--arch", "lstm:input=x"]),
    ("diagnose-jacobian-negative", [*DG, "--jacobian-sequences", "-1"]),
    ("diagnose-dtype", [*DG, "--dtype", "int8"]),
    ("diagnose-plot-unknown-ext", [*DG, "--plot", "d.bmp"]),
    ("diagnose-history-text", [*DG, "--gradient-history", "text.npy"]),
    ("diagnose-setup-bad-return", ["diagnose", "setup_bad_return.py"]),
    ("diagnose-setup-raises", ["diagnose", "setup_raises.py"]),
    ("diagnose-setup-syntax", ["diagnose", "setup_syntax.py"]),
    ("diagnose-setup-missing-key", ["diagnose", "setup_missing_key.py"]),
    ("diagnose-setup-no-function", ["diagnose", "setup_raises.py:nofunction"]),
    ("diagnose-setup-dir", ["diagnose", "dir.py"]),
    ("diagnose-model-unknown-ext", ["diagnose", "w.csv", *X]),
    # ---------------------------------------------------------------- names the system refuses
    ("profile-plot-name-too-long", ["profile", "--plot", "x" * 5000 + ".png"]),
    ("profile-weights-name-too-long", ["profile", "--weights", "x" * 300 + ".npz"]),
    ("sweep-spec-name-too-long", ["sweep", "x" * 5000]),
    ("diagnose-model-name-too-long", ["diagnose", "x" * 5000 + ".pt", *X]),
    ("results-db-name-too-long", ["results", "--db", "x" * 5000]),
    ("tasks-out-name-too-long", [*SP[:-1], "x" * 400 + ".npz"]),
    ("train-log-dir-name-too-long", [*TR, "--log-dir", "x" * 5000]),
    ("profile-weights-nul", ["profile", "--weights", "w\x00.npz"]),
    ("phase-db-nul", [*PH[:-2], "--db", "p\x00.sqlite"]),
    ("demo-out-name-too-long", ["demo", "--quick", "--out", "x" * 5000]),
    # ---------------------------------------------------------------- the top level
    ("top-unknown-command", ["profiles"]),
    ("top-unknown-option", ["--verbose"]),
]

LINE = re.compile(r"^rnnscope( [a-z]+)?: error: .*expected.+$")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_files(tmp_path_factory.mktemp("hostile"))


class _Hang(Exception):
    pass


def run_in_process(argv: list[str], capsys) -> tuple[int | None, str, str, float]:
    """(exit code or None for a hang, stdout, stderr, seconds) of `rnnscope argv` in this process."""
    def alarm(signum, frame):
        raise _Hang()

    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(HANG_S)
    t0 = time.perf_counter()
    try:
        code = main(list(argv))
    except _Hang:
        code = None
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    captured = capsys.readouterr()
    return code, captured.out, captured.err, time.perf_counter() - t0


def test_every_command_has_cases():
    named = {argv[0] for _, argv in CASES}
    assert set(COMMANDS) <= named, set(COMMANDS) - named
    assert len(CASES) >= 150 and len({i for i, _ in CASES}) == len(CASES)


@pytest.mark.parametrize("argv", [a for _, a in CASES], ids=[i for i, _ in CASES])
def test_refused_cleanly(argv, folder, capsys, monkeypatch):
    monkeypatch.chdir(folder)
    before = snapshot(folder)
    code, out, err, seconds = run_in_process(argv, capsys)
    after = snapshot(folder)
    assert code is not None, f"no answer within {HANG_S} s"
    assert "Traceback" not in err and "Traceback" not in out
    lines = err.splitlines()
    assert code == 2 and len(lines) == 1 and LINE.match(lines[0]), (code, err)
    assert len(lines[0]) < 1000, f"an error line of {len(lines[0])} characters"
    assert out == "", out
    changed = {k for k in before if before[k] != after.get(k)}
    assert not changed, f"files changed or removed by a refused command: {sorted(changed)}"
    assert set(after) == set(before), f"files written by a refused command: {sorted(set(after) - set(before))}"


CONSOLE = ["profile-weights-text", "phase-huge-grid", "sweep-spec-missing-keys", "train-batch-huge",
           "diagnose-inputs-token-ids", "top-unknown-command"]


@pytest.mark.parametrize("case", CONSOLE)
def test_console_script_matches_in_process(case, folder, capsys, monkeypatch):
    """The installed `rnnscope` (a fresh interpreter, nothing shared with this one) gives the same line and code."""
    argv = dict(CASES)[case]
    monkeypatch.chdir(folder)
    code, _, err, _ = run_in_process(argv, capsys)
    exe = shutil.which("rnnscope", path=os.path.dirname(sys.executable)) or shutil.which("rnnscope")
    proc = subprocess.run([exe, *argv], cwd=folder, capture_output=True, text=True, timeout=HANG_S)
    assert (proc.returncode, proc.stdout, proc.stderr) == (code, "", err)
