"""The sweep tests' fault-injection task: a config in, metrics out, with sleeps, CPU work, failures and worker
deaths on demand (tests/test_runner.py, tests/test_store.py, benchmarks/sweep.py), and db_rows, the
tests' reader of a results file with sqlite3 alone (no rnnscope).

A sweep names it by its path, PROBE = "sweep_probe:probe": the tests folder must be on sys.path of the
coordinator before it starts its workers (pytest puts it there; test_sweep*.py and benchmarks/sweep.py also
insert it, and give the coordinators they start as subprocesses PYTHONPATH=src:tests). Local forkserver workers
and dask's spawned workers take the coordinator's sys.path, so every worker can import it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import time

PROBE = "sweep_probe:probe"


def probe(config: dict) -> dict:
    """The fault-injection task (the sweep tests, the sweep benchmark). Options, in the order applied:

        log            path template: append "x pid" to the file path.format(x=x) as the task starts
        sleep          seconds to sleep
        work           seconds of CPU time of this thread to burn in 128 x 128 float64 torch matmuls
                       (one torch thread): a fixed amount of work, however loaded the machine is
        kill_self      true: the task kills its own process with SIGKILL (a worker death)
        kill_if_exists path template: SIGKILL as above while the file path.format(x=x) exists
        fail           true: raise RuntimeError
        fail_if_exists path template: raise RuntimeError while the file path.format(x=x) exists
        deterministic  true: return only {"x", "x2"}

    Returns {"x": x, "x2": x**2} for x = config["x"] (x2 None when x is not a number), plus, unless
    deterministic, {"pid", "host", "matmuls", "slept"}, which vary between runs.

    Example:
        >>> probe({"x": 3, "deterministic": True})
        {'x': 3, 'x2': 9}
    """
    x = config.get("x")

    def marked(option: str) -> bool:
        template = config.get(option)
        return bool(template) and os.path.exists(str(template).format(x=x))

    if config.get("log"):
        with open(str(config["log"]).format(x=x), "a") as f:
            f.write(f"{x} {os.getpid()}\n")
    slept = float(config.get("sleep", 0) or 0)
    if slept > 0:
        time.sleep(slept)
    work, matmuls = float(config.get("work", 0) or 0), 0
    if work > 0:
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            g = torch.Generator().manual_seed(0)
            a = torch.randn(128, 128, dtype=torch.float64, generator=g) / 128**0.5  # (128, 128)
            b = torch.randn(128, 128, dtype=torch.float64, generator=g) / 128**0.5
            c = torch.empty(128, 128, dtype=torch.float64)
            t0 = time.thread_time()  # CPU seconds of this thread, not wall-clock seconds
            while time.thread_time() - t0 < work:
                for _ in range(16):
                    torch.mm(a, b, out=c)
                matmuls += 16
        finally:
            torch.set_num_threads(threads)
    if config.get("kill_self") or marked("kill_if_exists"):
        os.kill(os.getpid(), signal.SIGKILL)
    if config.get("fail") or marked("fail_if_exists"):
        raise RuntimeError(f"probe failed on purpose (x={x!r})")
    out = {"x": x, "x2": x * x if isinstance(x, (int, float)) and not isinstance(x, bool) else None}
    if not config.get("deterministic"):
        out.update(pid=os.getpid(), host=socket.gethostname(), matmuls=matmuls, slept=slept)
    return out


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
