"""cli progress (runs.progress.progress_enabled): the long commands (train, study, sweep, phase) show their bar on
stderr whatever the output format, --json too, only when stderr is a terminal and not with --quiet.

Each case runs the installed `rnnscope` as a subprocess with stdout a pipe and stderr the slave end of a
pseudo-terminal (pty.openpty), or a pipe: the references are what the run's own options imply (its update count,
its sweep's number of configs), and stdout must still be one JSON object.
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from rnnscope.app.cli.options import progress_enabled

RNNSCOPE = Path(sys.executable).parent / "rnnscope"
ENV = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "120"}


def run_on_a_terminal(*argv) -> tuple[int, str, str]:
    """(exit code, stdout, what arrived on the terminal that was stderr)."""
    master, slave = pty.openpty()
    p = subprocess.Popen([str(RNNSCOPE), *map(str, argv)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=slave, env=ENV)
    os.close(slave)
    chunks: list[bytes] = []

    def drain():  # read while it runs: a full terminal buffer would block the bar
        while True:
            try:
                b = os.read(master, 4096)
            except OSError:  # EIO: every writer has closed the slave end
                return
            if not b:
                return
            chunks.append(b)
    reader = threading.Thread(target=drain)
    reader.start()
    out, _ = p.communicate(timeout=300)
    reader.join(30)
    os.close(master)
    return p.returncode, out.decode(), b"".join(chunks).decode(errors="replace")


def run_on_pipes(*argv) -> tuple[int, str, str]:
    p = subprocess.run([str(RNNSCOPE), *map(str, argv)], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       env=ENV, timeout=300)
    return p.returncode, p.stdout, p.stderr


TRAIN = ("train", "--task", "temporal-order", "--length", 10, "--hidden", 8, "--steps", 60, "--eval-every", 30,
         "--eval-size", 50, "--json")


def test_train_json_shows_its_bar_on_a_terminal_only():
    code, out, tty = run_on_a_terminal(*TRAIN)
    assert code == 0, tty
    d = json.loads(out)  # stdout: the JSON alone
    assert d["steps"] == 60
    assert "temporal-order L=10" in tty and "60/60" in tty  # the bar, at its last update: all 60 updates
    code, out, tty = run_on_a_terminal(*TRAIN, "--quiet")
    assert code == 0 and json.loads(out)["steps"] == 60 and tty == ""
    code, out, err = run_on_pipes(*TRAIN)  # stderr a pipe (a log file, CI): no bar
    assert code == 0 and json.loads(out)["steps"] == 60 and err == ""


def test_study_and_sweep_json_show_their_bars_on_a_terminal(tmp_path):
    study = tmp_path / "tiny.toml"
    study.write_text('name = "tiny"\nmeasure = "success"\n[methods.A]\nclip_norm = 1.0\n[methods.B]\nclip_value = 0.5\n'
                     '[grid]\ntask = ["temporal-order"]\nlength = [10]\nseed = [0, 1]\n'
                     '[fixed]\nhidden = 8\nsteps = 10\neval_every = 10\neval_size = 50\nsnapshot = false\n')
    n = 2 * 2  # methods x seeds
    code, out, tty = run_on_a_terminal("study", study, "--db", tmp_path / "a.sqlite", "--workers", 1, "--json")
    assert code == 0, tty
    assert json.loads(out)["sweep"]["done"] == n
    assert "study-tiny" in tty and f"{n}/{n}" in tty
    code, out, tty = run_on_a_terminal("study", study, "--db", tmp_path / "b.sqlite", "--workers", 1, "--json",
                                       "--quiet")
    assert code == 0 and json.loads(out)["sweep"]["done"] == n and tty == ""
    spec = tmp_path / "sweep.toml"
    spec.write_text('name = "grid"\ntask = "train"\n[grid]\nseed = [0, 1, 2]\n'
                    '[fixed]\ntask = "temporal-order"\nlength = 10\nhidden = 4\nsteps = 5\neval_every = 5\n'
                    'eval_size = 50\nsnapshot = false\n')
    code, out, tty = run_on_a_terminal("sweep", spec, "--db", tmp_path / "c.sqlite", "--workers", 1, "--json")
    assert code == 0, tty
    assert json.loads(out)["done"] == 3 and "grid" in tty and "3/3" in tty
    code, out, err = run_on_pipes("sweep", spec, "--db", tmp_path / "d.sqlite", "--workers", 1, "--json")
    assert code == 0 and json.loads(out)["done"] == 3 and err == ""


def test_progress_enabled_is_the_terminal_and_not_quiet(tmp_path):
    master, slave = pty.openpty()
    try:
        with open(slave, "w", closefd=False) as terminal, open(tmp_path / "log", "w") as file:
            assert progress_enabled(False, terminal) is True
            assert progress_enabled(True, terminal) is False
            assert progress_enabled(False, file) is False
    finally:
        os.close(master)
        os.close(slave)
    closed = open(tmp_path / "log")
    closed.close()
    assert progress_enabled(False, closed) is False  # a closed stderr: no bar, no error


@pytest.mark.parametrize("command", ["train", "study", "sweep", "phase", "demo"])
def test_every_long_command_has_quiet(command):
    from typer.testing import CliRunner

    from rnnscope.app.cli import app
    r = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert r.exit_code == 0 and "--quiet" in r.output
