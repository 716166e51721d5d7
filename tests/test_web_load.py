"""web (load): the explorer's server under 20 concurrent users, client disconnects, worker deaths and shutdown.

A real uvicorn server runs on 127.0.0.1 (port 0) in a thread (rnnscope.app.web.server.background), its computations
in the app's pool of worker processes (ComputePool), and is asked from threads with urllib (raw sockets where a
client must vanish mid-request). Everything stays on loopback and is bounded: about 30 s on 2 cores.

The references: every answer under load equals the answer to the same URL asked alone (JSON equality, timing
fields "seconds" left out); a long computation's own duration, measured here, is what a cancelled one would have
cost; the kernel's process table says whether a worker is gone.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import subprocess
import sys
import signal
import socket
import statistics
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlencode, urlparse

import pytest

from rnnscope.app.web.server import background, create_app

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from process_table import session_processes  # noqa: E402

# What the page asks for while a learner moves the sliders: /api/explore for the setting, then /api/heatmap (Elman
# and Pal), over presets and small edits of them (server time about 5 to 60 ms each here).
MIX = [
    ("explore", dict(hidden=32, length=200, gain=0.9)),
    ("explore", dict(hidden=32, length=200, gain=1.1)),
    ("heatmap", dict(hidden=32, length=200, gain=1.1)),
    ("explore", dict(activation="sigmoid", hidden=5, length=20, rho=3.0, input_scale=1.0)),
    ("explore", dict(cell="lstm", hidden=16, length=100, input_scale=0.5)),
    ("explore", dict(cell="mingru", hidden=32, length=200, input_scale=1.0)),
    ("explore", dict(cell="lru", hidden=16, length=300, input_scale=1.0, r_min=0.9, r_max=0.99)),
    ("heatmap", dict(hidden=16, length=100, sigma_max=1.5, input_scale=0.5)),
]
USERS = 20
ROUNDS = 8  # test_twenty_users_...: serial and concurrent parts in turn
THINK = 20  # the window in which each user sends one request, in serial mean latencies
CAPACITY = 1.4  # cores the pool's workers must get, all busy, for the users' test to measure the server
LONG = ("profile", dict(hidden=256, length=700, input_scale=0.5))  # T B S^3 = 1.17e10, just within the budget:
# the longest computation a request may ask for (about 1.5 s of one core here)
SHORT = ("explore", dict(hidden=8, length=50, input_scale=0.5))
LEAVE = 0.1  # seconds a vanishing client waits before it closes its socket


def _url(base: str, view: str, query: dict) -> str:
    return f"{base}api/{view}?{urlencode(query)}"


def fetch(url: str, timeout: float = 120) -> tuple[int, bytes, float]:
    """(status, body, seconds) of a GET; an HTTP error status is returned, not raised."""
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            status, body = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, body = e.code, e.read()
    return status, body, time.perf_counter() - start


def untimed(obj):
    """The JSON value without its timing fields (every key "seconds", at any depth)."""
    if isinstance(obj, dict):
        return {k: untimed(v) for k, v in obj.items() if k != "seconds"}
    if isinstance(obj, list):
        return [untimed(v) for v in obj]
    return obj


def p95(xs: list[float]) -> float:
    """The 95th percentile (statistics.quantiles, inclusive: interpolated between order statistics)."""
    return statistics.quantiles(xs, n=20, method="inclusive")[18]


def gone(pid: int) -> bool:
    """Whether no process has this id any more (a zombie still counts as there)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except FileNotFoundError:
        return True
    return stat[stat.rindex(b")") + 2:][:1] == b"X"


def vanish(base: str, view: str, query: dict) -> None:
    """Send a GET on a raw socket and close it at once: a client that leaves (a closed tab, an aborted fetch)."""
    u = urlparse(base)
    with socket.create_connection((u.hostname, u.port), timeout=10) as s:
        s.sendall(f"GET /api/{view}?{urlencode(query)} HTTP/1.1\r\nHost: {u.hostname}\r\n\r\n".encode())
        time.sleep(LEAVE)  # the request has arrived and is queued or running


def wait_for(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


@pytest.fixture(scope="module")
def served():
    app = create_app()  # workers: the CPU count
    with background(app) as base:
        yield base, app
        pids = app.state.pool.pids()
    assert pids and all(gone(pid) for pid in pids)  # the pool leaves no process behind


def check(u: str, status: int, body: bytes, reference: dict) -> None:
    assert status == 200, (u, status, body[:300])  # no 5xx, and no 4xx either
    assert untimed(json.loads(body)) == reference[u], u


def serial_round(urls: list[str], reference: dict) -> list[float]:
    """One user alone: every URL once, one at a time; each answer checked. The latencies."""
    out = []
    for u in urls:
        status, body, seconds = fetch(u)
        check(u, status, body, reference)
        out.append(seconds)
    return out


def users_round(urls: list[str], reference: dict, r: int, window: float) -> list[float]:
    """USERS users at once, each sending one request (user i: URL (i + r) mod len) at a moment drawn uniformly
    from [0, window]; each answer checked. The latencies."""
    rng = random.Random(r)
    delays = [rng.uniform(0, window) for _ in range(USERS)]
    start = time.perf_counter()

    def user(i: int) -> float:
        time.sleep(max(0.0, start + delays[i] - time.perf_counter()))
        u = urls[(i + r) % len(urls)]
        status, body, seconds = fetch(u)
        check(u, status, body, reference)
        return seconds

    with ThreadPoolExecutor(USERS) as users:
        return list(users.map(user, range(USERS)))


def cpu_seconds(pids: list[int]) -> float | None:
    """User + system CPU seconds of these processes so far (Linux /proc; None elsewhere)."""
    try:
        total = 0
        for pid in pids:
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read()
            fields = stat[stat.rindex(b")") + 2:].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (clock ticks)
        return total / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError):
        return None


def saturated_cores(urls: list[str], reference: dict, pids: list[int]) -> float | None:
    """The cores the pool's workers get when every one of them is busy: 4 x len(urls) requests at once, their CPU
    seconds over the wall time (answers checked). None where /proc cannot say."""
    barrier = threading.Barrier(4 * len(urls))

    def one(i: int) -> None:
        barrier.wait()
        u = urls[i % len(urls)]
        check(u, *fetch(u)[:2], reference)

    cpu, start = cpu_seconds(pids), time.perf_counter()
    with ThreadPoolExecutor(4 * len(urls)) as clients:
        list(clients.map(one, range(4 * len(urls))))
    wall, cpu_after = time.perf_counter() - start, cpu_seconds(pids)
    return None if cpu is None or cpu_after is None else (cpu_after - cpu) / wall


def test_twenty_users_p95_within_three_times_the_serial_latency(served, artifacts_dir):
    """20 concurrent users: p95 of their latencies <= 3 x the serial p95, no 5xx, every answer the serial one.

    ROUNDS rounds, each a serial part then a concurrent part, so that both see the same machine (a shared one's
    other jobs come and go over seconds):
    serial: one user alone sends every request of MIX, one at a time;
    concurrent: USERS users each send one request of MIX (user i in round r: MIX[(i + r) mod 8]: over the rounds,
    every user sends every request once) at a moment drawn uniformly within a window of THINK x the serial mean
    latency (two serial rounds before: a person changing a setting about every 0.5 s here), the round ending when
    all are answered.
    The serial latency is the p95 over the serial parts, the concurrent one the p95 over the concurrent parts.
    USERS requests in THINK serial mean latencies offer USERS / THINK = 1 core of computation: one process
    computing one request at a time would be busy all the time and its queue would grow; a pool of two workers on
    two free cores is half busy. A machine shared with other jobs may leave the pool less than that: before each
    measurement the cores its workers get when all are busy are measured (saturated_cores), and below CAPACITY
    the test is skipped, saying so (20 users offering 1 core cannot be served by less: that measures the machine,
    not the server); the measurement is made at most twice (the assertion holds for the last). Its figures are
    printed (pytest -s) and written to test-artifacts/explorer-load.json.
    """
    base, app = served
    urls = [_url(base, v, q) for v, q in MIX]
    reference = {}
    for u in urls:  # warm-up round: the answers every later one must equal
        status, body, _ = fetch(u)
        assert status == 200, (u, body[:300])
        reference[u] = untimed(json.loads(body))
    runs = []
    for attempt in range(2):
        cores = saturated_cores(urls, reference, app.state.pool.pids())
        if cores is not None and cores < CAPACITY:
            runs.append({"saturated_cores": cores})
            (artifacts_dir / "explorer-load.json").write_text(json.dumps(runs, indent=1))
            pytest.skip(f"the pool's {app.state.pool.size} workers got {cores:.2f} cores when all were busy (other "
                        f"jobs hold the rest): below the {CAPACITY} that 20 users offering 1 core need; "
                        f"measured: {runs}")
        window = THINK * statistics.mean(serial_round(urls, reference) + serial_round(urls, reference))
        serial, concurrent = [], []
        start = time.perf_counter()
        for r in range(ROUNDS):
            serial += serial_round(urls, reference)
            concurrent += users_round(urls, reference, r, window)
        figures = {"workers": app.state.pool.size, "saturated_cores": cores, "users": USERS,
                   "requests": len(concurrent),
                   "window_ms": 1e3 * window, "wall_s": time.perf_counter() - start,
                   "serial_median_ms": 1e3 * statistics.median(serial), "serial_p95_ms": 1e3 * p95(serial),
                   "concurrent_median_ms": 1e3 * statistics.median(concurrent),
                   "concurrent_p95_ms": 1e3 * p95(concurrent), "ratio_p95": p95(concurrent) / p95(serial),
                   "ratio_median": statistics.median(concurrent) / statistics.median(serial)}
        runs.append(figures)
        print(f"\nexplorer under load (attempt {attempt + 1}): " + ", ".join(
            f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in figures.items()))
        if figures["ratio_p95"] <= 3.0:
            break
    (artifacts_dir / "explorer-load.json").write_text(json.dumps(runs, indent=1))
    assert runs[-1]["ratio_p95"] <= 3.0, runs


def test_a_burst_of_100_requests_is_answered_correctly(served):
    """The issue's measure: 100 requests at once (MIX in turn). Every answer the serial one, no 5xx. Printed: the
    median and p95 (the server before the pool: 784 ms and 1.9 s), and the cores the workers used meanwhile
    (their CPU seconds over the wall time: about the worker count on a free machine, less on a busy one)."""
    base, app = served
    urls = [_url(base, v, q) for v, q in MIX]
    reference = {u: untimed(json.loads(fetch(u)[1])) for u in urls}
    barrier = threading.Barrier(100)

    def one(i: int):
        barrier.wait()
        return urls[i % len(urls)], *fetch(urls[i % len(urls)])

    pids = app.state.pool.pids()
    cpu, start = cpu_seconds(pids), time.perf_counter()
    with ThreadPoolExecutor(100) as pool:
        results = list(pool.map(one, range(100)))
    wall, cpu_after = time.perf_counter() - start, cpu_seconds(pids)
    for u, status, body, _ in results:
        check(u, status, body, reference)
    seconds = [r[3] for r in results]
    cores = "?" if cpu is None or cpu_after is None else f"{(cpu_after - cpu) / wall:.2f}"
    print(f"\n100 at once: median {1e3 * statistics.median(seconds):.0f} ms, p95 {1e3 * p95(seconds):.0f} ms, "
          f"all answered in {wall:.2f} s; the {len(pids)} workers used {cores} cores")


@pytest.fixture(scope="module")
def one_worker():
    """A server with one worker process: whatever runs holds the whole pool."""
    app = create_app(workers=1)
    with background(app) as base:
        pids = []
        yield base, app, pids
        pids.extend(app.state.pool.pids())
    assert pids and all(gone(pid) for pid in pids)  # the pool leaves no process behind


def long_seconds(base: str) -> float:
    """How long LONG takes from request to answer, alone (its own duration, measured)."""
    status, _, seconds = fetch(_url(base, *LONG))
    assert status == 200
    return seconds


def test_a_client_that_disconnects_stops_its_running_work(one_worker):
    """A long computation whose client leaves: its worker is killed and replaced, so the next request is answered
    long before the long one would have finished (within half of the time it had left, measured alone)."""
    base, app, _ = one_worker
    pool = app.state.pool
    long = long_seconds(base)
    [before] = pool.pids()
    replaced = pool.replaced
    vanish(base, *LONG)  # running on the only worker when its client leaves
    start = time.perf_counter()
    status, _, _ = fetch(_url(base, *SHORT))
    waited = time.perf_counter() - start
    assert status == 200
    assert waited < (long - LEAVE) / 2, (waited, long)  # the long one did not run to its end first
    assert wait_for(lambda: gone(before)) and pool.replaced == replaced + 1 and pool.pids() != [before]
    print(f"\nlong request {long:.2f} s alone; after its client left, the next answered in {waited:.3f} s")


def test_a_client_that_disconnects_while_queued_never_runs(one_worker):
    """Queued behind a long computation, a request whose client leaves is dropped: the next one runs as soon as the
    long one is done, not after another long one, and no worker is killed for it."""
    base, app, _ = one_worker
    pool = app.state.pool
    long = long_seconds(base)
    replaced = pool.replaced
    with ThreadPoolExecutor(2) as clients:
        first = clients.submit(fetch, _url(base, *LONG))
        time.sleep(0.1)
        vanish(base, *LONG)  # waits for the only worker, then leaves
        third = clients.submit(fetch, _url(base, *SHORT))
        status, _, _ = first.result()
        done_first = time.perf_counter()
        status3, _, _ = third.result()
        after = time.perf_counter() - done_first
    assert status == 200 and status3 == 200
    assert after < long / 3, (after, long)  # the dropped one did not run in between
    assert pool.replaced == replaced  # nothing was running for it: nothing killed


def test_a_worker_that_dies_is_replaced_and_no_request_fails(one_worker):
    """SIGKILL to the worker while it computes, and to its replacement while idle: every request still gets its
    answer (the interrupted one is run again on the new worker), equal to the answer asked alone."""
    base, app, _ = one_worker
    pool = app.state.pool
    _, reference, long = fetch(_url(base, *LONG))
    short_reference = fetch(_url(base, *SHORT))[1]
    with ThreadPoolExecutor(2) as clients:
        running = clients.submit(fetch, _url(base, *LONG))
        time.sleep(long / 4)
        [pid] = pool.pids()
        os.kill(pid, signal.SIGKILL)  # mid-computation
        waiting = clients.submit(fetch, _url(base, *SHORT))
        status, body, _ = running.result()
        status2, body2, _ = waiting.result()
    assert status == 200 and untimed(json.loads(body)) == untimed(json.loads(reference))
    assert status2 == 200 and untimed(json.loads(body2)) == untimed(json.loads(short_reference))
    assert wait_for(lambda: gone(pid))
    [idle] = pool.pids()
    os.kill(idle, signal.SIGKILL)  # while idle
    time.sleep(0.2)
    status, body, _ = fetch(_url(base, *SHORT))
    assert status == 200 and untimed(json.loads(body)) == untimed(json.loads(short_reference))
    assert wait_for(lambda: gone(idle)) and pool.pids() != [idle]


def test_shutdown_leaves_no_worker_behind():
    app = create_app(workers=2)
    with background(app) as base:
        assert fetch(_url(base, *SHORT))[0] == 200
        pids = app.state.pool.pids()
        assert len(pids) == 2 and not any(gone(p) for p in pids)
    assert all(gone(p) for p in pids)


def test_a_killed_server_leaves_no_worker_running():
    """`rnnscope serve` SIGKILLed while its worker computes the longest request: within 10 s no process it started
    (forkserver, worker, resource tracker) runs any more (the kernel's process table, by session), and the worker
    ended before its computation would have finished (the request's own duration, measured first)."""
    exe = shutil.which("rnnscope", path=os.path.dirname(sys.executable)) or shutil.which("rnnscope")
    proc = subprocess.Popen([exe, "serve", "--port", "0", "--workers", "1"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True, text=True)
    try:
        line = proc.stderr.readline()  # "rnnscope explorer: http://127.0.0.1:PORT/  (claims report: ...)"
        base = line.split()[2]
        assert base.startswith("http://127.0.0.1:"), line
        assert wait_for(lambda: fetch(_url(base, *SHORT))[0] == 200, timeout=60)
        status, _, alone = fetch(_url(base, *LONG))  # its own duration: what an orphaned worker would go on for
        assert status == 200
        client = threading.Thread(target=lambda: _quietly(fetch, _url(base, *LONG)), daemon=True)
        client.start()
        time.sleep(0.2)  # the long computation is running on the only worker
        assert len(session_processes(proc.pid)) >= 3  # the server, its forkserver and its worker at least
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        killed = time.monotonic()
        while session_processes(proc.pid) and time.monotonic() < killed + 10:
            time.sleep(0.02)
        left, took = session_processes(proc.pid), time.monotonic() - killed
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.stderr.close()
    print(f"killed server: its processes gone {took:.2f} s later (the request alone takes {alone:.2f} s)")
    assert left == {}, f"alive 10 s after the server was killed: {left}"
    assert took < alone / 2  # the worker stopped mid-computation (within WATCH_PERIOD_S), not when it had finished


def _quietly(fn, *args):
    """fn(*args), its connection error (the server was killed under it) ignored."""
    with contextlib.suppress(OSError):
        fn(*args)
