"""The sweep runner: every config of a spec not yet finished in the store, run as a task on a local process
pool or a dask.distributed cluster, each finished run written to the SQLite store (store.py) as it completes.

    run_sweep(spec, db): keys = config_key(task, c) for c in expand(spec)
        skip keys already 'done' (and 'failed', unless retry_failed)
        --> submit the rest through a concurrent.futures Executor (_LocalPool: ProcessPoolExecutor on the
            forkserver; _DaskPool: distributed's client.get_executor()), at most `window` in flight
        --> the coordinator, the only writer, records each (status, metrics, error, seconds, host)

Resuming is re-running: a sweep killed at any point (Ctrl-C, SIGKILL of the coordinator, a lost machine) is
continued by running the same spec against the same db; finished runs are never repeated nor rewritten.

A killed coordinator leaves nothing running: each local worker watches it (core.processes) and ends within
WATCH_PERIOD_S of its death, whatever the signal; the forkserver and multiprocessing's resource tracker then
see their pipes close and end too. On dask, the scheduler releases a lost client's futures (queued tasks are
dropped at once; a running task finishes on its worker and its result is discarded).

Worker deaths (a task that segfaults, is OOM-killed, calls os._exit; a dask worker lost): the pool is restarted
and every config that was in flight is resubmitted once, alone (nothing else in flight), so a second death is
attributed to that config without doubt; a config whose worker died twice is recorded 'failed' with error
"worker died (...)". Innocent configs that shared the first break finish in their solo run.

Shapes: none (configs are dicts of scalars).

Example (two small phase-diagram points on one local worker; the second call finds both finished):
    >>> import pathlib, tempfile
    >>> from rnnscope.runs.spec import SweepSpec
    >>> spec = SweepSpec("scan", "phase-point", grid={"sigma_w": [0.5, 2.0]},
    ...                  fixed={"sigma_b": 0.0, "hidden": 8, "length": 40})
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     first = run_sweep(spec, pathlib.Path(tmp) / "runs.db", workers=1, progress=False)
    ...     again = run_sweep(spec, pathlib.Path(tmp) / "runs.db", workers=1, progress=False)
    >>> (first.total, first.done, first.failed), (again.skipped, again.done)
    ((2, 2, 0), (2, 0))

With a cluster: run_sweep(spec, db, scheduler="tcp://HOST:8786"), the same code path.
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import dataclasses
import json
import multiprocessing
import os
import re
import signal
import socket
import time
import traceback
from pathlib import Path
from typing import Callable

from ..core.errors import InputError
from ..core.processes import exit_text, watch_coordinator
from ..core.results import jsonable
from .progress import ProgressBar
from .registry import import_task, load_task, task_path
from .spec import SweepSpec, config_key, expand
from .store import Store

__all__ = ["SweepReport", "run_sweep", "SCHEDULER_TIMEOUT_S", "MAX_DEATHS"]

SCHEDULER_TIMEOUT_S = 10.0  # connecting to a dask scheduler: refused at once, silent for at most this long
MAX_DEATHS = 2  # a config whose worker died this many times is recorded failed

_SCHEDULER = re.compile(r"^tcp://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):(\d{1,5})$")


# ------------------------------------------------------------------------------------------- worker side

def _error_text(exc: BaseException) -> str:
    """ "Type: message (at file:line in function)", the location being the last traceback frame."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno} in {frames[-1].name})" if frames else ""
    msg = str(exc).strip().replace("\n", " ")
    return f"{type(exc).__name__}: {msg}{where}" if msg else f"{type(exc).__name__}{where}"


def _execute(path: str, config: dict) -> tuple:
    """Worker side: run one task and return (status, metrics, error, seconds, host); never raises for the
    task's own errors (it can still die: that is the coordinator's business)."""
    host = socket.gethostname()
    t0 = time.perf_counter()
    try:
        metrics = import_task(path)(dict(config))
        if not isinstance(metrics, dict):
            raise TypeError(f"task {path} returned {type(metrics).__name__}, expected a dict of metrics")
        metrics = jsonable(metrics)
        json.dumps(metrics, allow_nan=False)  # not JSON-able: fails here, as this task's error
        return "done", metrics, None, time.perf_counter() - t0, host
    except (Exception, SystemExit) as exc:
        return "failed", None, _error_text(exc), time.perf_counter() - t0, host


def _init_local_worker(threads: int, started, coordinator: int) -> None:
    """Local pool workers: Ctrl-C is the coordinator's (it cancels and stops them); the worker ends within
    WATCH_PERIOD_S of its coordinator's death (core.processes.watch_coordinator); torch gets an equal share of the cores
    (cpu_count // workers) instead of every worker using all of them; `started` counts the workers that came
    up (a pool whose workers all die before this point cannot run anything)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    watch_coordinator(coordinator)
    import torch

    torch.set_num_threads(threads)
    with started.get_lock():
        started.value += 1


# ------------------------------------------------------------------------------------------------ pools


class _LocalPool:
    """A ProcessPoolExecutor on the forkserver context (the forkserver imports rnnscope and torch once;
    each worker, and each restart after a death, is a fork of it: milliseconds, not the ~2 s of spawn)."""

    def __init__(self, workers: int):
        self.workers = workers
        self.window = workers  # in flight at once: a death breaks the pool for at most `workers` configs
        self.generation = 0
        self._threads = max(1, (os.cpu_count() or 1) // workers)
        self._reasons: dict[int, str] = {}
        self._seen: dict = {}
        self.executor = self._new()

    @property
    def deaths(self) -> tuple:
        return (cf.BrokenExecutor,)

    def _new(self) -> cf.Executor:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["rnnscope.runs.runner"])
        self._seen = {}
        self._started = ctx.Value("i", 0)
        return cf.ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx, initializer=_init_local_worker,
                                      initargs=(self._threads, self._started, os.getpid()))

    def submit(self, fn, *args) -> cf.Future:
        fut = self.executor.submit(fn, *args)
        self._seen.update(getattr(self.executor, "_processes", None) or {})  # for the exit codes of a death
        return fut

    def recover(self, exc: BaseException, generation: int) -> str:
        """After a worker death seen on a future of `generation`: restart the pool once per break and say
        what happened ("killed by SIGKILL", "exit code 3", or the executor's message)."""
        if generation == self.generation:
            self.executor.shutdown(wait=True, cancel_futures=True)
            dead = []
            for p in self._seen.values():
                code = p.exitcode
                if code is None or code == 0 or code == -signal.SIGTERM:  # alive, or stopped by the broken pool
                    continue
                dead.append(exit_text(code))
            self._reasons[generation] = reason = ", ".join(sorted(set(dead))) or f"{type(exc).__name__}: {exc}"
            if self._started.value == 0:  # no worker came up: no task ran, none is to blame; stop here
                raise RuntimeError(
                    f"sweep: expected local worker processes that start, got workers that died before running a "
                    f"task ({reason}; their error is printed above). A script that calls run_sweep must keep its "
                    f"code under `if __name__ == '__main__':`, since the workers import the main script") from None
            self.generation += 1
            self.executor = self._new()
        return self._reasons.get(generation, f"{type(exc).__name__}: {exc}")

    def abort(self) -> None:
        """Ctrl-C: cancel what has not started, stop what is running, leave nothing behind."""
        for p in list((getattr(self.executor, "_processes", None) or {}).values()):
            if p.is_alive():
                p.kill()
        self.executor.shutdown(wait=True, cancel_futures=True)

    def close(self) -> None:
        self.executor.shutdown(wait=True)


class _DaskPool:
    """distributed's concurrent.futures Executor on a running scheduler. Lost workers are replaced by their
    nannies and their tasks rescheduled by the scheduler; a task that killed distributed.scheduler.
    allowed-failures + 1 workers comes back as KilledWorker, which counts as one death here."""

    def __init__(self, address: str, workers: int | None):
        from distributed import Client

        try:
            self.client = Client(address, timeout=SCHEDULER_TIMEOUT_S, set_as_default=False)
        except (OSError, TimeoutError) as e:
            raise InputError(f"scheduler: expected a reachable dask scheduler, got {address!r} "
                             f"({type(e).__name__}: {e})") from None
        self.generation = 0
        self.executor = self.client.get_executor(pure=False)  # pure=False: a resubmission is a new task
        threads = sum(self.client.nthreads().values())
        self.window = workers or max(4, 2 * threads)

    @property
    def deaths(self) -> tuple:
        from distributed.scheduler import KilledWorker

        return (cf.BrokenExecutor, KilledWorker, cf.CancelledError)

    def submit(self, fn, *args) -> cf.Future:
        return self.executor.submit(fn, *args)

    def recover(self, exc: BaseException, generation: int) -> str:
        if isinstance(exc, cf.CancelledError):
            return "task cancelled by the dask scheduler"
        text = str(exc).split(". ")[0]
        return f"{type(exc).__name__}: {text[:240]}"

    def abort(self) -> None:
        self.executor.shutdown(wait=False)  # cancels every future of this executor
        self.client.close()

    def close(self) -> None:
        self.client.close()


def _check_scheduler(scheduler: str) -> str:
    m = _SCHEDULER.match(scheduler) if isinstance(scheduler, str) else None
    if not m or not 1 <= int(m.group(2)) <= 65535:
        raise InputError(f"scheduler: expected a dask scheduler address tcp://HOST:PORT, got {scheduler!r}")
    host, port = m.group(1).strip("[]"), int(m.group(2))
    unreachable = f"scheduler: expected a reachable dask scheduler, got {scheduler!r}"
    try:  # a quick TCP check: a closed port is refused at once, distributed would retry until its timeout
        socket.create_connection((host, port), timeout=SCHEDULER_TIMEOUT_S).close()
    except socket.gaierror as e:
        raise InputError(f"{unreachable} (unknown host: {e})") from None
    except ConnectionRefusedError:
        raise InputError(f"{unreachable} (connection refused)") from None
    except TimeoutError:
        raise InputError(f"{unreachable} (no answer within {SCHEDULER_TIMEOUT_S:g} s)") from None
    except OSError as e:
        raise InputError(f"{unreachable} ({e})") from None
    return scheduler


# ----------------------------------------------------------------------------------------------- runner

@dataclasses.dataclass(frozen=True)
class SweepReport:
    """What one run_sweep call did. total = configs in the spec = skipped + done + failed + remaining;
    skipped were finished before (done, or failed without retry_failed); done/failed were recorded by
    this call; remaining > 0 only when interrupted (Ctrl-C): run the sweep again to finish them."""

    total: int
    skipped: int
    done: int
    failed: int
    seconds: float
    sweep: str
    interrupted: bool = False

    @property
    def remaining(self) -> int:
        return self.total - self.skipped - self.done - self.failed

    def to_dict(self) -> dict:
        return {"sweep": self.sweep, "total": self.total, "skipped": self.skipped, "done": self.done,
                "failed": self.failed, "remaining": self.remaining, "seconds": self.seconds,
                "interrupted": self.interrupted}


class _Progress(ProgressBar):
    """The sweep's bar (progress.py): M/N and the failed count."""

    def __init__(self, enabled: bool, console, name: str, total: int, skipped: int):
        super().__init__(enabled, console, f"{name} ({skipped} finished before)", total,
                         "{task.fields[failed]} failed", failed=0)
        self._failed = 0

    def advance(self, status: str) -> None:
        self._failed += status == "failed"
        self.update(advance=1, failed=self._failed)

    def note(self, text: str) -> None:
        self.print(text)


def _drive(pool, path: str, todo: list, record: Callable, bar: _Progress) -> None:
    """Submit todo [(key, config)] through pool, at most pool.window in flight, and record each result as
    it completes. A config in flight when a worker died is resubmitted once, alone."""
    fresh = collections.deque(todo)
    suspects: collections.deque = collections.deque()  # in flight at a worker death: rerun one at a time
    deaths: dict[str, int] = {}
    inflight: dict[cf.Future, tuple] = {}
    while fresh or suspects or inflight:
        if suspects:
            if not inflight:  # quarantine: a suspect runs with nothing else in flight
                key, config = suspects.popleft()
                inflight[pool.submit(_execute, path, config)] = (key, config, pool.generation)
        else:
            while fresh and len(inflight) < pool.window:
                key, config = fresh.popleft()
                inflight[pool.submit(_execute, path, config)] = (key, config, pool.generation)
        finished, _ = cf.wait(inflight, return_when=cf.FIRST_COMPLETED)
        for fut in finished:
            key, config, generation = inflight.pop(fut)
            try:
                status, metrics, error, seconds, host = fut.result()
            except pool.deaths as exc:
                reason = pool.recover(exc, generation)
                deaths[key] = deaths.get(key, 0) + 1
                if deaths[key] < MAX_DEATHS:
                    bar.note(f"[yellow]worker died ({reason}) running {key[:12]}: resubmitting it alone[/yellow]")
                    suspects.append((key, config))
                    continue
                status, metrics, error, seconds, host = "failed", None, f"worker died ({reason})", None, None
            except Exception as exc:  # the executor itself failed on this future (e.g. a result it could not read)
                status, metrics, error, seconds, host = "failed", None, _error_text(exc), None, None
            record(key, config, status, metrics, error, seconds, host)
            bar.advance(status)


def run_sweep(spec: SweepSpec, db, *, workers: int | None = None, scheduler: str | None = None,
              retry_failed: bool = False, progress: bool = True, console=None) -> SweepReport:
    """Run every config of spec not finished in db; record each as it completes. Resumable: call again.

    workers    local pool: the number of worker processes (default os.cpu_count()); with a scheduler:
               the most tasks in flight at once (default twice the cluster's threads, at least 4)
    scheduler  None: a local ProcessPoolExecutor (forkserver). "tcp://HOST:PORT": a running dask
               scheduler, through distributed.Client(scheduler).get_executor() (dask imported only then)
    retry_failed  rerun configs recorded 'failed' (their row is replaced); default skip them like 'done'
    progress   a rich progress bar on console (default: a Console on stderr); nothing when False

    Ctrl-C stops submitting, cancels what is queued, stops the running tasks, keeps every finished run and
    returns a report with interrupted=True. Shapes: none (configs are dicts of scalars).

    A script that calls run_sweep must keep its code under `if __name__ == "__main__":`: the local
    workers, like any forkserver or spawn child, import the main script before they run tasks.

    Example (one phase-diagram point; the report's fields):
        >>> import pathlib, tempfile
        >>> spec = SweepSpec("one", "phase-point", fixed={"sigma_w": 1.0, "sigma_b": 0.0, "hidden": 8, "length": 40})
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     r = run_sweep(spec, pathlib.Path(tmp) / "runs.db", workers=1, progress=False)
        >>> {k: v for k, v in r.to_dict().items() if k != "seconds"}
        {'sweep': 'one', 'total': 1, 'skipped': 0, 'done': 1, 'failed': 0, 'remaining': 0, 'interrupted': False}
    """
    t0 = time.perf_counter()
    if getattr(multiprocessing.current_process(), "_inheriting", False):
        raise RuntimeError("run_sweep: expected a call from the main process, got one from a worker process "
                           "that is importing the main script: put the script's code under "
                           "`if __name__ == '__main__':` (multiprocessing's rule for forkserver and spawn)")
    if not isinstance(spec, SweepSpec):
        raise InputError(f"spec: expected a SweepSpec, got {type(spec).__name__}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise InputError(f"workers: expected an integer >= 1, got {workers!r}")
    if scheduler is not None:
        _check_scheduler(scheduler)
    path = task_path(spec.task)
    load_task(spec.task)  # fail here, in the coordinator, rather than once per config in the workers
    configs = expand(spec)
    keys = [config_key(spec.task, c) for c in configs]
    with Store(db) as store:
        finished = store.finished_keys(status="done")
        if not retry_failed:
            finished |= store.finished_keys(status="failed")
        todo = [(k, c) for k, c in zip(keys, configs) if k not in finished]
        skipped = len(configs) - len(todo)
        counts = {"done": 0, "failed": 0}

        def record(key, config, status, metrics, error, seconds, host):
            store.record(key, spec.name, spec.task, config, metrics, status, error, seconds, host)
            counts[status] += 1

        interrupted = False
        if todo:
            pool = _DaskPool(scheduler, workers) if scheduler else _LocalPool(workers or os.cpu_count() or 1)
            clean = False
            try:
                with _Progress(progress, console, spec.name, len(todo), skipped) as bar:
                    _drive(pool, path, todo, record, bar)
                clean = True
            except KeyboardInterrupt:
                interrupted = True
            finally:
                if clean:
                    pool.close()
                else:  # Ctrl-C, or an error: stop the workers, keep what was recorded
                    pool.abort()
    return SweepReport(len(configs), skipped, counts["done"], counts["failed"], time.perf_counter() - t0,
                       spec.name, interrupted)