"""sweep and store: ranges, grids, keys, specs, the SQLite store, and resumable runs on a local process pool
and a dask.distributed cluster, including a SIGKILLed coordinator and a SIGKILLed worker.

References are independent of rnnscope: numpy.linspace for ranges, itertools.product for grids, hashlib on a
JSON text written out by hand for keys, sqlite3 queries straight on the file (PRAGMA integrity_check,
GROUP BY key), the csv and json modules for exports, and the probe task's own log file (one line per run,
written by the worker) for how many times each config ran.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from rnnscope.core.errors import InputError
from rnnscope.runs.store import Store, export
from rnnscope.runs.sweep import TASKS, SweepSpec, config_key, expand, load_spec, load_task, parse_range, probe, run_sweep

SRC = Path(__file__).resolve().parents[1] / "src"


def db_rows(db) -> list[dict]:
    """Every row of the runs table, read with sqlite3 alone (no rnnscope), config/metrics decoded."""
    con = sqlite3.connect(str(db))
    try:
        con.row_factory = sqlite3.Row
        rows = [dict(r) for r in con.execute("SELECT * FROM runs ORDER BY rowid")]
    finally:
        con.close()
    for r in rows:
        r["config"] = json.loads(r["config"])
        r["metrics"] = None if r["metrics"] is None else json.loads(r["metrics"])
    return rows


def runs_per_x(log: Path) -> dict:
    """How many times the probe started for each x (its log: one 'x pid' line per start)."""
    counts: dict = {}
    for line in log.read_text().splitlines():
        x = int(line.split()[0])
        counts[x] = counts.get(x, 0) + 1
    return counts


def wait_for_rows(proc, db: Path, n: int, timeout: float = 60) -> None:
    """Poll db (sqlite3 alone) until it holds n 'done' rows, while proc runs."""
    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"the sweep did not write {n} rows within {timeout} s"
        if db.exists():
            con = sqlite3.connect(str(db))
            try:
                if con.execute("SELECT count(*) FROM runs WHERE status = 'done'").fetchone()[0] >= n:
                    return
            except sqlite3.OperationalError:  # the table is not created yet
                pass
            finally:
                con.close()
        time.sleep(0.05)


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ------------------------------------------------------------------------------------ ranges, grids, keys

@pytest.mark.parametrize("start,stop,count", [(0.5, 3, 40), (-1, 1, 7), (0, 1, 3), (1e-3, 2, 5), (3, -2, 7),
                                              (0.1, 0.7, 13), (1, 10, 5), (2.5, 2.5, 3), (1, 10, 4), (3, -2, 6)])
def test_parse_range_is_linspace(start, stop, count):
    got = parse_range(f"{start}:{stop}:{count}")
    ref = np.linspace(start, stop, count).tolist()
    assert got == ref  # exactly, value by value
    integral = isinstance(start, int) and isinstance(stop, int) and (stop - start) % (count - 1) == 0
    assert all(type(v) is (int if integral else float) for v in got)


def test_parse_range_integers_lists_and_single_values():
    assert parse_range("1:9:5") == [1, 3, 5, 7, 9] == np.linspace(1, 9, 5).tolist()
    assert all(type(v) is int for v in parse_range("1:9:5"))
    assert parse_range("-4:4:3") == [-4, 0, 4] and all(type(v) is int for v in parse_range("-4:4:3"))
    assert parse_range("1:10:4") == [1, 4, 7, 10] and all(type(v) is int for v in parse_range("1:10:4"))
    assert parse_range("1:10:5") == [1.0, 3.25, 5.5, 7.75, 10.0] and all(type(v) is float for v in parse_range("1:10:5"))
    assert parse_range("1.0:9:5") == [1.0, 3.0, 5.0, 7.0, 9.0] and all(type(v) is float for v in parse_range("1.0:9:5"))
    assert parse_range("1:2:3") == [1.0, 1.5, 2.0]
    assert parse_range("2:5:1") == [2] and type(parse_range("2:5:1")[0]) is int
    assert parse_range("0.5:3:1") == [0.5]
    assert parse_range("1,2,5") == [1, 2, 5] and all(type(v) is int for v in parse_range("1,2,5"))
    assert parse_range("1, 2.5") == [1.0, 2.5] and all(type(v) is float for v in parse_range("1,2.5"))
    assert parse_range("7") == [7] and parse_range("-0.25") == [-0.25] and parse_range("1e-3") == [0.001]


@pytest.mark.parametrize("text", ["", "a:b:c", "1:2", "1:2:0", "1:2:-3", "1:2:2.5", "1,,2", "x", "nan", "1:inf:3",
                                  "1:2:3:4", "1,two"])
def test_parse_range_bad_text(text):
    with pytest.raises(InputError, match=r"^range: expected START:STOP:COUNT or a comma-separated list, got "):
        parse_range(text)


def test_expand_is_itertools_product():
    grid = {"a": [1, 2, 3], "cell": ["elman", "gru"], "g": [0.5, 1.0, 1.5, 2.0]}
    fixed = {"T": 100, "seed": 7}
    spec = SweepSpec("s", "probe", grid=grid, fixed=fixed)
    ref = [{"a": a, "cell": c, "g": g, "T": 100, "seed": 7} for a, c, g in itertools.product(*grid.values())]
    got = expand(spec)
    assert got == ref and len(got) == 24
    assert [list(c) for c in got] == [list(c) for c in ref]  # key order too
    assert got[1] == {"a": 1, "cell": "elman", "g": 1.0, "T": 100, "seed": 7}  # the last key varies fastest
    assert expand(SweepSpec("s", "probe", grid={"x": "0:1:3"})) == [{"x": 0.0}, {"x": 0.5}, {"x": 1.0}]
    assert expand(SweepSpec("s", "probe", fixed={"x": 1})) == [{"x": 1}]  # no grid: one config


def test_config_key_reference_order_and_types():
    ref = hashlib.sha256(b'{"config":{"a":1,"b":0.1,"c":"elman"},"task":"probe"}').hexdigest()
    assert config_key("probe", {"a": 1, "b": 0.1, "c": "elman"}) == ref
    assert config_key("probe", {"c": "elman", "b": 0.1, "a": 1}) == ref  # dict key order does not matter
    assert config_key("probe", {"a": np.int64(1), "b": np.float64(0.1), "c": "elman"}) == ref
    assert config_key("probe", {"a": 1.0, "b": 0.1, "c": "elman"}) != ref  # 1 and 1.0 are different configs
    assert config_key("phase-point", {"a": 1, "b": 0.1, "c": "elman"}) != ref
    x = 0.1 + 0.2  # floats as repr: 0.30000000000000004, not 0.3
    assert config_key("probe", {"x": x}) == hashlib.sha256(
        ('{"config":{"x":%r},"task":"probe"}' % x).encode()).hexdigest()
    with pytest.raises(InputError, match="config.x: expected finite numbers"):
        config_key("probe", {"x": float("nan")})


# ------------------------------------------------------------------------------------------------- specs

def test_load_spec_from_toml(tmp_path):
    f = tmp_path / "scan.toml"
    f.write_text(textwrap.dedent("""
        name = "gain-scan"
        task = "probe"
        [grid]
        gain = "0.5:3:6"
        cell = ["elman", "gru"]
        T = "100,200"
        [fixed]
        sleep = 0.0
        seed = 3
    """))
    spec = load_spec(f)
    assert spec == SweepSpec("gain-scan", "probe", {"gain": np.linspace(0.5, 3, 6).tolist(),
                                                    "cell": ["elman", "gru"], "T": [100, 200]},
                             {"sleep": 0.0, "seed": 3})
    assert list(spec.grid) == ["gain", "cell", "T"]
    assert len(expand(spec)) == 6 * 2 * 2
    assert spec.to_dict()["grid"]["T"] == [100, 200]


@pytest.mark.parametrize("text,match", [
    ('name = "s"\ntask = "probe"\n[grid\n', "expected a valid TOML file"),
    ('task = "probe"\n', "expected name = \"...\" \\(a string\\), got none"),
    ('name = 3\ntask = "probe"\n', "expected name = \"...\" \\(a string\\), got 3"),
    ('name = "s"\ntask = "probe"\ncolour = 1\n', "got unknown colour"),
    ('name = "s"\ntask = "probe"\ngrid = 3\n', "expected a \\[grid\\] table"),
    ('name = "s"\ntask = "probe"\n[grid]\nx = "1:2"\n', "grid.x: range: expected START:STOP:COUNT"),
    ('name = "s"\ntask = "probe"\n[grid]\nx = []\n', "grid.x: expected a non-empty list"),
    ('name = "s"\ntask = "probe"\n[grid]\nx = [1, 1]\n', "grid.x: expected distinct values, got repeated 1"),
    ('name = "s"\ntask = "probe"\n[grid]\nx = [{a = 1}]\n', "grid.x: expected a number, string or boolean"),
    ('name = "s"\ntask = "probe"\n[grid]\nx = [1, 2]\n[fixed]\nx = 3\n', "fixed.x: expected a parameter not in grid"),
    ('name = ""\ntask = "probe"\n', "name: expected a non-empty sweep name"),
])
def test_load_spec_bad_files(tmp_path, text, match):
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(InputError, match=match):
        load_spec(f)


def test_load_spec_not_a_file(tmp_path):
    with pytest.raises(InputError, match=r"spec: expected a TOML sweep file, got .* \(no such file\)"):
        load_spec(tmp_path / "missing.toml")
    with pytest.raises(InputError, match=r"spec: expected a TOML sweep file, got .* \(a directory"):
        load_spec(tmp_path)


# ------------------------------------------------------------------------------------------------- store

def test_store_record_contract(tmp_path):
    db = tmp_path / "s.db"
    with Store(db) as s:
        s.record("k1", "sw", "probe", {"x": 1}, {"x": 1, "v": float("inf")}, "done", None, 0.5, "h")
        s.record("k1", "other", "probe", {"x": 1}, None, "failed", "RuntimeError: late", 0.1, "h")  # done stays done
        s.record("k2", "sw", "probe", {"x": 2}, None, "failed", "RuntimeError: boom", 0.1, "h")
        s.record("k2", "sw", "probe", {"x": 2}, {"x": 2}, "done", None, 0.2, "h2")  # a retry replaces failed
        assert s.finished_keys() == {"k1", "k2"} and s.finished_keys(status="failed") == set()
        assert s.finished_keys(sweep="other") == set()
    rows = db_rows(db)
    assert [(r["key"], r["sweep"], r["status"], r["metrics"], r["error"], r["host"]) for r in rows] == [
        ("k1", "sw", "done", {"x": 1, "v": None}, None, "h"), ("k2", "sw", "done", {"x": 2}, None, "h2")]
    con = sqlite3.connect(str(db))
    try:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert con.execute("PRAGMA user_version").fetchone()[0] == 1
        with pytest.raises(sqlite3.IntegrityError):  # a done row without metrics cannot exist
            con.execute("INSERT INTO runs VALUES ('k3','s','probe','{}',NULL,'done',NULL,1.0,'h','t')")
        with pytest.raises(sqlite3.IntegrityError):
            con.execute("INSERT INTO runs VALUES ('k4','s','probe','{}',NULL,'running',NULL,1.0,'h','t')")
    finally:
        con.close()


def test_store_bad_files(tmp_path):
    with pytest.raises(InputError, match=r"^db: expected a SQLite results file, got .* \(a directory"):
        Store(tmp_path)
    text = tmp_path / "notes.txt"
    text.write_text("hello, this is not a database\n" * 10)
    with pytest.raises(InputError, match=r"^db: expected a SQLite results file, got .*notes.txt' \(not a SQLite file\)"):
        Store(text)
    other = tmp_path / "other.db"
    con = sqlite3.connect(str(other))
    con.execute("CREATE TABLE t (a)")
    con.commit()
    con.close()
    with pytest.raises(InputError, match=r"^db: expected an rnnscope results file, got .*another application"):
        Store(other)
    with pytest.raises(InputError, match=r"^db: expected a SQLite results file, got .* \(no such file\)"):
        export(tmp_path / "missing.db")
    with pytest.raises(InputError, match="format: expected json or csv, got 'xml'"):
        export(other, "xml")
    spec = SweepSpec("s", "probe", grid={"x": [1]})
    with pytest.raises(InputError, match="^db: expected a SQLite results file"):
        run_sweep(spec, text, workers=1, progress=False)


# ---------------------------------------------------------------------------------------------- sweeps

def test_probe_sweep_writes_then_skips(tmp_path, capfd):
    db = tmp_path / "runs.db"
    spec = SweepSpec("echo", "probe", grid={"x": list(range(12))}, fixed={"sleep": 0.02})
    rep = run_sweep(spec, db, workers=2, progress=False)
    assert (rep.total, rep.skipped, rep.done, rep.failed, rep.interrupted) == (12, 0, 12, 0, False)
    rows = db_rows(db)
    assert len(rows) == 12 and {r["status"] for r in rows} == {"done"}
    assert sorted(r["metrics"]["x"] for r in rows) == list(range(12))
    for r in rows:
        assert r["key"] == config_key("probe", r["config"]) and r["sweep"] == "echo" and r["task"] == "probe"
        assert r["metrics"]["x"] == r["config"]["x"] and r["metrics"]["x2"] == r["config"]["x"] ** 2
        assert r["seconds"] >= 0.02 and r["host"] == socket.gethostname() and r["error"] is None
    assert len({r["metrics"]["pid"] for r in rows} - {os.getpid()}) == len({r["metrics"]["pid"] for r in rows}) >= 1

    rep2 = run_sweep(spec, db, workers=2, progress=False)
    assert (rep2.total, rep2.skipped, rep2.done, rep2.failed) == (12, 12, 0, 0)
    assert rep2.to_dict()["remaining"] == 0
    assert db_rows(db) == rows  # no new rows, finished timestamps unchanged
    assert capfd.readouterr().err == ""  # progress=False: not a character of progress output


def test_progress_bar_on_the_given_console(tmp_path):
    buf = io.StringIO()
    console = Console(file=buf, width=120, force_terminal=False)
    rep = run_sweep(SweepSpec("bar", "probe", grid={"x": [1, 2, 3]}), tmp_path / "b.db", workers=1, console=console)
    assert rep.done == 3
    out = buf.getvalue()
    assert "bar" in out and "3/3" in out and "0 failed" in out


def test_failed_runs_recorded_skipped_and_retried(tmp_path):
    db = tmp_path / "runs.db"
    marker = tmp_path / "fail-{x}"  # probe raises while the file fail-<x> exists
    for x in (1, 4):
        Path(str(marker).format(x=x)).touch()
    spec = SweepSpec("flaky", "probe", grid={"x": list(range(6))}, fixed={"fail_if_exists": str(marker)})
    rep = run_sweep(spec, db, workers=2, progress=False)
    assert (rep.done, rep.failed) == (4, 2)
    rows = {r["config"]["x"]: r for r in db_rows(db)}
    for x in (1, 4):
        assert rows[x]["status"] == "failed" and rows[x]["metrics"] is None
        assert rows[x]["error"].startswith(f"RuntimeError: probe failed on purpose (x={x}) (at sweep.py:")
        assert rows[x]["error"].endswith(" in probe)")
    assert all(rows[x]["status"] == "done" for x in (0, 2, 3, 5))

    for x in (1, 4):
        os.remove(str(marker).format(x=x))
    rep = run_sweep(spec, db, workers=2, progress=False)  # failed runs are skipped too
    assert (rep.skipped, rep.done, rep.failed) == (6, 0, 0)
    assert {r["config"]["x"]: r for r in db_rows(db)} == rows

    rep = run_sweep(spec, db, workers=2, progress=False, retry_failed=True)
    assert (rep.skipped, rep.done, rep.failed) == (4, 2, 0)
    after = db_rows(db)
    assert len(after) == 6 and {r["status"] for r in after} == {"done"}
    by_x = {r["config"]["x"]: r for r in after}
    for x in (1, 4):
        assert by_x[x]["key"] == rows[x]["key"] and by_x[x]["metrics"]["x2"] == x * x and by_x[x]["error"] is None
        assert by_x[x]["finished"] > rows[x]["finished"]
    for x in (0, 2, 3, 5):
        assert by_x[x] == rows[x]  # done rows untouched by the retry


def test_sigkill_of_the_coordinator_loses_nothing(tmp_path):
    db = tmp_path / "runs.db"
    code = textwrap.dedent(f"""
        from rnnscope.runs.sweep import SweepSpec, run_sweep
        spec = SweepSpec("killme", "probe", grid={{"x": list(range(20))}}, fixed={{"sleep": 0.3}})
        run_sweep(spec, {str(db)!r}, workers=2, progress=False)
        print("finished without being killed")
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(SRC)})
    try:
        wait_for_rows(proc, db, 4)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the coordinator, its forkserver and its workers
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL and b"finished without" not in out

    con = sqlite3.connect(str(db))
    try:
        assert con.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert con.execute("SELECT key, count(*) FROM runs GROUP BY key HAVING count(*) > 1").fetchall() == []
    finally:
        con.close()
    before = db_rows(db)
    assert 4 <= len(before) < 20
    for r in before:
        assert r["status"] == "done" and r["metrics"]["x"] == r["config"]["x"] and r["finished"]
        assert r["key"] == config_key("probe", r["config"])

    spec = SweepSpec("killme", "probe", grid={"x": list(range(20))}, fixed={"sleep": 0.3})
    rep = run_sweep(spec, db, workers=2, progress=False)
    assert (rep.total, rep.skipped, rep.done, rep.failed) == (20, len(before), 20 - len(before), 0)
    after = db_rows(db)
    assert len(after) == 20 and len({r["key"] for r in after}) == 20
    assert sorted(r["config"]["x"] for r in after) == list(range(20))
    assert after[:len(before)] == before  # the rows from before the kill: unchanged, same finished time


def test_ctrl_c_stops_cleanly_and_keeps_finished_runs(tmp_path):
    db = tmp_path / "runs.db"
    code = textwrap.dedent(f"""
        import json
        from rnnscope.runs.sweep import SweepSpec, run_sweep
        spec = SweepSpec("ctrl-c", "probe", grid={{"x": list(range(12))}}, fixed={{"sleep": 0.2}})
        print(json.dumps(run_sweep(spec, {str(db)!r}, workers=2, progress=False).to_dict()))
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(SRC)})
    try:
        wait_for_rows(proc, db, 2)
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole foreground group
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode == 0, err.decode()
    rep = json.loads(out.decode().strip().splitlines()[-1])
    rows = db_rows(db)
    assert rep["interrupted"] is True and rep["done"] == len(rows) and rep["remaining"] == 12 - len(rows) > 0
    assert all(r["status"] == "done" for r in rows)
    rep2 = run_sweep(SweepSpec("ctrl-c", "probe", grid={"x": list(range(12))}, fixed={"sleep": 0.2}), db,
                     workers=2, progress=False)
    assert (rep2.skipped, rep2.done, rep2.interrupted) == (len(rows), 12 - len(rows), False)
    assert len(db_rows(db)) == 12


def test_sigkill_of_a_worker_is_resubmitted_once_then_failed(tmp_path):
    db, log = tmp_path / "runs.db", tmp_path / "runs.log"
    kill = tmp_path / "kill-{x}"
    Path(str(kill).format(x=3)).touch()  # the probe with x = 3 SIGKILLs its own worker
    spec = SweepSpec("deaths", "probe", grid={"x": list(range(8))},
                     fixed={"sleep": 0.1, "kill_if_exists": str(kill), "log": str(log)})
    rep = run_sweep(spec, db, workers=2, progress=False)
    assert (rep.total, rep.done, rep.failed, rep.interrupted) == (8, 7, 1, False)
    rows = {r["config"]["x"]: r for r in db_rows(db)}
    assert rows[3]["status"] == "failed" and rows[3]["error"] == "worker died (killed by SIGKILL)"
    assert rows[3]["metrics"] is None
    assert all(rows[x]["status"] == "done" and rows[x]["metrics"]["x2"] == x * x for x in rows if x != 3)
    runs = runs_per_x(log)
    assert runs[3] == 2  # the first run, and its one resubmission (alone)
    assert set(runs) == set(range(8)) and all(n <= 2 for n in runs.values())
    assert sum(n == 2 for n in runs.values()) <= 2  # at most one innocent shared the first break with it
    rep = run_sweep(spec, db, workers=2, progress=False)  # recorded: not run again
    assert (rep.skipped, rep.done, rep.failed) == (8, 0, 0)


def test_dask_cluster_matches_local_pool(tmp_path):
    import distributed  # pinned in requirements.lock: a missing dask must fail the test, not skip it
    import dask

    spec = SweepSpec("dask", "probe", grid={"x": list(range(10)), "y": [0.5, 2]}, fixed={"deterministic": True})
    local = run_sweep(spec, tmp_path / "local.db", workers=2, progress=False)
    kill, log = tmp_path / "kill-{x}", tmp_path / "runs.log"
    Path(str(kill).format(x=2)).touch()
    deaths = SweepSpec("dask-deaths", "probe", grid={"x": list(range(4))},
                       fixed={"sleep": 0.1, "kill_if_exists": str(kill), "log": str(log)})
    # allowed-failures 0: the scheduler gives up on a task at its first lost worker (KilledWorker) instead of
    # trying it on 3 more, so that the coordinator's own one resubmission is what is tested, and fast
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}), distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None) as cluster:
        remote = run_sweep(spec, tmp_path / "dask.db", scheduler=cluster.scheduler_address, progress=False)
        again = run_sweep(spec, tmp_path / "dask.db", scheduler=cluster.scheduler_address, progress=False)
        died = run_sweep(deaths, tmp_path / "deaths.db", scheduler=cluster.scheduler_address, progress=False)
    assert (local.done, remote.done, again.skipped) == (20, 20, 20)
    a = {r["key"]: r for r in db_rows(tmp_path / "local.db")}
    b = {r["key"]: r for r in db_rows(tmp_path / "dask.db")}
    assert set(a) == set(b) and len(a) == 20
    for k in a:
        assert a[k]["metrics"] == b[k]["metrics"] == {"x": a[k]["config"]["x"], "x2": a[k]["config"]["x"] ** 2}
        assert a[k]["config"] == b[k]["config"] and b[k]["status"] == "done" and b[k]["seconds"] >= 0

    assert (died.done, died.failed) == (3, 1)
    rows = {r["config"]["x"]: r for r in db_rows(tmp_path / "deaths.db")}
    assert rows[2]["status"] == "failed" and rows[2]["error"].startswith("worker died (KilledWorker: ")
    assert all(rows[x]["status"] == "done" and rows[x]["metrics"]["x2"] == x * x for x in (0, 1, 3))
    assert runs_per_x(log)[2] == 2  # its first run and the coordinator's one resubmission


# ---------------------------------------------------------------------------------------------- export

def test_export_json_and_csv(tmp_path):
    db = tmp_path / "runs.db"
    marker = tmp_path / "fail-{x}"
    Path(str(marker).format(x=2)).touch()
    spec = SweepSpec("ex", "probe", grid={"x": [0, 1, 2], "tag": ["a", "b"]},
                     fixed={"deterministic": True, "fail_if_exists": str(marker), "dims": [4, 8], "on": True})
    run_sweep(spec, db, workers=2, progress=False)
    with Store(db) as s:
        rows = s.rows()
        assert s.rows(sweep="nope") == [] and len(s.rows(status="failed")) == 2
    assert json.loads(export(db, "json")) == rows == db_rows(db)
    assert json.loads(export(db, "json", sweep="ex")) == rows

    table = list(csv.reader(io.StringIO(export(db, "csv"))))
    head, body = table[0], table[1:]
    assert head == ["key", "sweep", "task", "status", "error", "seconds", "host", "finished",
                    "config.deterministic", "config.dims", "config.fail_if_exists", "config.on", "config.tag",
                    "config.x", "metrics.x", "metrics.x2"]
    assert len(body) == 6
    by_key = {r["key"]: r for r in rows}
    for line in body:
        cell = dict(zip(head, line))
        r = by_key[cell["key"]]
        x = r["config"]["x"]
        assert (cell["sweep"], cell["task"], cell["status"], cell["host"], cell["finished"]) == (
            "ex", "probe", r["status"], r["host"] or "", r["finished"])
        assert float(cell["seconds"]) == r["seconds"]
        assert cell["config.x"] == str(x) and cell["config.tag"] == r["config"]["tag"]
        assert json.loads(cell["config.dims"]) == [4, 8] and cell["config.on"] == "true"
        if x == 2:
            assert cell["status"] == "failed" and cell["error"] == r["error"] and "probe failed" in cell["error"]
            assert cell["metrics.x"] == cell["metrics.x2"] == ""
        else:
            assert cell["status"] == "done" and cell["error"] == ""
            assert (int(cell["metrics.x"]), int(cell["metrics.x2"])) == (x, x * x)


# ------------------------------------------------------------------------------------------- bad inputs

def test_bad_inputs(tmp_path):
    spec = SweepSpec("s", "probe", grid={"x": [1]})
    db = tmp_path / "ok.db"
    for workers in (0, -1, 1.5, True, "2"):
        with pytest.raises(InputError, match=r"^workers: expected an integer >= 1, got "):
            run_sweep(spec, db, workers=workers, progress=False)
    for sched in ("http://x", "tcp://host", "tcp://host:99999", "127.0.0.1:8786", ""):
        with pytest.raises(InputError, match=r"^scheduler: expected a dask scheduler address tcp://HOST:PORT, got "):
            run_sweep(spec, db, scheduler=sched, progress=False)
    port = closed_port()
    t0 = time.perf_counter()
    with pytest.raises(InputError, match=rf"^scheduler: expected a reachable dask scheduler, got "
                                         rf"'tcp://127.0.0.1:{port}' \(connection refused\)$"):
        run_sweep(spec, db, scheduler=f"tcp://127.0.0.1:{port}", progress=False)
    assert time.perf_counter() - t0 < 10
    with pytest.raises(InputError, match=rf"^task: expected one of {', '.join(TASKS)} or 'package.module:function', "
                                         r"got 'no such task'"):
        run_sweep(SweepSpec("s", "no such task", grid={"x": [1]}), db, progress=False)
    with pytest.raises(InputError, match=r"^task: expected an importable function for 'rnnscope.nothing:f'"):
        run_sweep(SweepSpec("s", "rnnscope.nothing:f", grid={"x": [1]}), db, progress=False)
    with pytest.raises(InputError, match=r"^spec: expected a SweepSpec, got dict"):
        run_sweep({"name": "s"}, db, progress=False)
    with pytest.raises(InputError, match=r"^db: expected a SQLite results file, got .* \(a directory"):
        run_sweep(spec, tmp_path, workers=1, progress=False)
    assert not db.exists()  # nothing was run nor written
    assert load_task("probe") is probe and load_task("rnnscope.runs.sweep:probe") is probe
