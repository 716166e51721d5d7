"""runs/runner.py and runs/registry.py: resumable sweeps on a local process pool and a dask.distributed cluster,
including a SIGKILLed coordinator and a SIGKILLed worker, Ctrl-C, the progress bar, and bad inputs.

References are independent of rnnscope: sqlite3 queries straight on the file (sweep_probe.db_rows, PRAGMA
integrity_check, GROUP BY key), and the probe task's own log file (one line per run, written by the worker)
for how many times each config ran. The probe (tests/sweep_probe.py) is named by its path, PROBE.
"""

from __future__ import annotations

import contextlib
import io
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

import pytest
from rich.console import Console

from rnnscope.core.errors import InputError
from rnnscope.runs.registry import TASKS, load_task
from rnnscope.runs.runner import run_sweep
from rnnscope.runs.spec import SweepSpec, config_key

TESTS = Path(__file__).resolve().parent
SRC = TESTS.parent / "src"
if str(TESTS) not in sys.path:  # sweep_probe, for this process and every worker it starts (they take its sys.path)
    sys.path.insert(0, str(TESTS))
from process_table import session_processes  # noqa: E402
from sweep_probe import PROBE, db_rows, probe  # noqa: E402

# a coordinator started as a subprocess: rnnscope from this tree, and the probe's folder
SUBPROCESS_PATH = os.pathsep.join([str(SRC), str(TESTS)])


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


# ---------------------------------------------------------------------------------------------- sweeps

def test_probe_sweep_writes_then_skips(tmp_path, capfd):
    db = tmp_path / "runs.db"
    spec = SweepSpec("echo", PROBE, grid={"x": list(range(12))}, fixed={"sleep": 0.02})
    rep = run_sweep(spec, db, workers=2, progress=False)
    assert (rep.total, rep.skipped, rep.done, rep.failed, rep.interrupted) == (12, 0, 12, 0, False)
    rows = db_rows(db)
    assert len(rows) == 12 and {r["status"] for r in rows} == {"done"}
    assert sorted(r["metrics"]["x"] for r in rows) == list(range(12))
    for r in rows:
        assert r["key"] == config_key(PROBE, r["config"]) and r["sweep"] == "echo" and r["task"] == PROBE
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
    rep = run_sweep(SweepSpec("bar", PROBE, grid={"x": [1, 2, 3]}), tmp_path / "b.db", workers=1, console=console)
    assert rep.done == 3
    out = buf.getvalue()
    assert "bar" in out and "3/3" in out and "0 failed" in out


def test_failed_runs_recorded_skipped_and_retried(tmp_path):
    db = tmp_path / "runs.db"
    marker = tmp_path / "fail-{x}"  # probe raises while the file fail-<x> exists
    for x in (1, 4):
        Path(str(marker).format(x=x)).touch()
    spec = SweepSpec("flaky", PROBE, grid={"x": list(range(6))}, fixed={"fail_if_exists": str(marker)})
    rep = run_sweep(spec, db, workers=2, progress=False)
    assert (rep.done, rep.failed) == (4, 2)
    rows = {r["config"]["x"]: r for r in db_rows(db)}
    for x in (1, 4):
        assert rows[x]["status"] == "failed" and rows[x]["metrics"] is None
        assert rows[x]["error"].startswith(f"RuntimeError: probe failed on purpose (x={x}) (at sweep_probe.py:")
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
        from rnnscope.runs.runner import run_sweep
        from rnnscope.runs.spec import SweepSpec
        spec = SweepSpec("killme", {PROBE!r}, grid={{"x": list(range(20))}}, fixed={{"sleep": 0.3}})
        run_sweep(spec, {str(db)!r}, workers=2, progress=False)
        print("finished without being killed")
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": SUBPROCESS_PATH})
    try:
        wait_for_rows(proc, db, 4)
        assert len(session_processes(proc.pid)) >= 4  # the coordinator, its forkserver and two workers at least
        os.kill(proc.pid, signal.SIGKILL)  # the coordinator alone: what `kill -9 PID` does
        out, err = proc.communicate(timeout=30)
        deadline = time.monotonic() + 10  # every process it started ends within 10 s (the workers watch it)
        while session_processes(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = session_processes(proc.pid)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # whatever is left, so that a failure leaves nothing behind
    assert left == {}, f"alive 10 s after the coordinator was killed: {left}"
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
        assert r["key"] == config_key(PROBE, r["config"])

    spec = SweepSpec("killme", PROBE, grid={"x": list(range(20))}, fixed={"sleep": 0.3})
    rep = run_sweep(spec, db, workers=2, progress=False)
    assert (rep.total, rep.skipped, rep.done, rep.failed) == (20, len(before), 20 - len(before), 0)
    after = db_rows(db)
    assert len(after) == 20 and len({r["key"] for r in after}) == 20
    assert sorted(r["config"]["x"] for r in after) == list(range(20))
    assert after[:len(before)] == before  # the rows from before the kill: unchanged, same finished time


def test_ctrl_c_stops_cleanly_and_keeps_finished_runs(tmp_path):
    db = tmp_path / "runs.db"
    # Python's Ctrl-C handler, as a program started from a terminal has: a test run started in the background
    # (`pytest &` in a non-interactive shell) ignores SIGINT, and its children would inherit that
    code = textwrap.dedent(f"""
        import json, signal
        signal.signal(signal.SIGINT, signal.default_int_handler)
        from rnnscope.runs.runner import run_sweep
        from rnnscope.runs.spec import SweepSpec
        spec = SweepSpec("ctrl-c", {PROBE!r}, grid={{"x": list(range(12))}}, fixed={{"sleep": 0.2}})
        print(json.dumps(run_sweep(spec, {str(db)!r}, workers=2, progress=False).to_dict()))
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": SUBPROCESS_PATH})
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
    rep2 = run_sweep(SweepSpec("ctrl-c", PROBE, grid={"x": list(range(12))}, fixed={"sleep": 0.2}), db,
                     workers=2, progress=False)
    assert (rep2.skipped, rep2.done, rep2.interrupted) == (len(rows), 12 - len(rows), False)
    assert len(db_rows(db)) == 12


def test_sigkill_of_a_worker_is_resubmitted_once_then_failed(tmp_path):
    db, log = tmp_path / "runs.db", tmp_path / "runs.log"
    kill = tmp_path / "kill-{x}"
    Path(str(kill).format(x=3)).touch()  # the probe with x = 3 SIGKILLs its own worker
    spec = SweepSpec("deaths", PROBE, grid={"x": list(range(8))},
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

    spec = SweepSpec("dask", PROBE, grid={"x": list(range(10)), "y": [0.5, 2]}, fixed={"deterministic": True})
    local = run_sweep(spec, tmp_path / "local.db", workers=2, progress=False)
    kill, log = tmp_path / "kill-{x}", tmp_path / "runs.log"
    Path(str(kill).format(x=2)).touch()
    deaths = SweepSpec("dask-deaths", PROBE, grid={"x": list(range(4))},
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

def test_sigkill_of_a_dask_client_releases_its_futures(tmp_path):
    """The coordinator on a dask cluster, SIGKILLed: within 10 s the scheduler holds none of its tasks and no
    client of it; the resumed run loses and duplicates nothing (sqlite3 on the file, the probe's own log)."""
    import distributed

    db, log = tmp_path / "runs.db", tmp_path / "runs.log"
    grid = {"x": list(range(16))}
    fixed = {"sleep": 0.4, "log": str(log)}
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as watcher:
        code = textwrap.dedent(f"""
            from rnnscope.runs.runner import run_sweep
            from rnnscope.runs.spec import SweepSpec
            spec = SweepSpec("killme", {PROBE!r}, grid={grid!r}, fixed={fixed!r})
            run_sweep(spec, {str(db)!r}, scheduler={cluster.scheduler_address!r}, progress=False)
            print("finished without being killed")
        """)
        proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": SUBPROCESS_PATH})
        try:
            wait_for_rows(proc, db, 2)
            held = watcher.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks))
            assert held > 0  # the killed client's futures: queued and running on the cluster
            os.kill(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate(timeout=30)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            tasks = watcher.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks))
            clients = watcher.run_on_scheduler(lambda dask_scheduler: sorted(dask_scheduler.clients))
            if tasks == 0 and len(clients) <= 2:  # ours and the scheduler's own fire-and-forget client
                break
            time.sleep(0.1)
        assert tasks == 0, f"the scheduler still holds {tasks} tasks 10 s after their client was killed"
        assert watcher.id in clients and len(clients) <= 2, clients
        assert proc.returncode == -signal.SIGKILL and b"finished without" not in out
        before = db_rows(db)
        assert 2 <= len(before) < 16
        rep = run_sweep(SweepSpec("killme", PROBE, grid=grid, fixed=fixed), db,
                        scheduler=cluster.scheduler_address, progress=False)
    after = db_rows(db)
    assert (rep.skipped, rep.done, rep.failed) == (len(before), 16 - len(before), 0)
    assert len(after) == 16 and sorted(r["config"]["x"] for r in after) == list(range(16))
    assert after[:len(before)] == before
    runs = runs_per_x(log)  # a run the kill cut short may have started twice; a recorded one never again
    assert all(runs[r["config"]["x"]] == 1 for r in before)


# ------------------------------------------------------------------------------------------- bad inputs

def test_bad_inputs(tmp_path):
    spec = SweepSpec("s", PROBE, grid={"x": [1]})
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
    assert load_task(PROBE) is probe and "probe" not in TASKS  # the fault-injection task lives in the tests
    with pytest.raises(InputError, match=r"^task: expected one of .*, got 'probe'"):
        load_task("probe")
