"""Resumable parameter sweeps: a grid of configs, run as tasks on a local process pool or a dask.distributed
cluster, every finished run written to a SQLite results store (store.py) as it completes.

    spec (TOML: name, task, [grid], [fixed]) --expand--> configs = grid_1 x grid_2 x ... (+ fixed)
    key(config) = sha256(canonical JSON {"task": task, "config": config})
    run_sweep: skip keys already 'done' (and 'failed', unless retry_failed) --> submit the rest through a
               concurrent.futures Executor (ProcessPoolExecutor, or distributed's client.get_executor())
               --> the coordinator, the only writer, records each (status, metrics, error, seconds, host)

Resuming is re-running: a sweep killed at any point (Ctrl-C, SIGKILL of the coordinator, a lost machine)
is continued by running the same spec against the same db; finished runs are never repeated nor
rewritten. A task is a named function config -> metrics dict, given by a name of TASKS or a dotted
path "package.module:function" that every worker can import.

Worker deaths (a task that segfaults, is OOM-killed, calls os._exit; a dask worker lost): the pool is
restarted and every config that was in flight is resubmitted once, alone (nothing else in flight), so
a second death is attributed to that config without doubt; a config whose worker died twice is
recorded 'failed' with error "worker died (...)". Innocent configs that shared the first break finish
in their solo run.

Example:
    >>> spec = SweepSpec("scan", "probe", grid={"x": parse_range("0:11:12")}, fixed={"sleep": 0.1})
    >>> report = run_sweep(spec, "runs.db", workers=2)                     # doctest: +SKIP
    >>> report.done, run_sweep(spec, "runs.db").skipped                    # doctest: +SKIP
    (12, 12)
    >>> run_sweep(spec, "runs.db", scheduler="tcp://10.0.0.5:8786")        # doctest: +SKIP
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import dataclasses
import hashlib
import importlib
import itertools
import json
import math
import multiprocessing
import os
import re
import signal
import socket
import time
import tomllib
import traceback
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable

from ..core.errors import InputError
from .progress import ProgressBar
from ..core.results import jsonable
from .store import Store, canonical_json

__all__ = ["TASKS", "SweepSpec", "SweepReport", "parse_range", "load_spec", "expand", "config_key",
           "load_task", "probe", "run_sweep"]

TASKS = MappingProxyType({
    "probe": "rnnscope.runs.sweep:probe",
    "phase-point": "rnnscope.dynamics.phase:run_point",
    "train": "rnnscope.lab.train:run_config",
    "study-point": "rnnscope.lab.studies:run_point",
})
SCHEDULER_TIMEOUT_S = 10.0  # connecting to a dask scheduler: refused at once, silent for at most this long
MAX_DEATHS = 2  # a config whose worker died this many times is recorded failed

_TASK_PATH = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$")
_SCHEDULER = re.compile(r"^tcp://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):(\d{1,5})$")
_RANGE_ERROR = "range: expected START:STOP:COUNT or a comma-separated list, got {!r}"


# ---------------------------------------------------------------------------------------- ranges, specs

def _number(text: str, whole: str) -> int | float:
    s = text.strip()
    try:
        return int(s)
    except ValueError:
        pass
    try:
        v = float(s)
    except ValueError:
        raise InputError(_RANGE_ERROR.format(whole)) from None
    if not math.isfinite(v):
        raise InputError(_RANGE_ERROR.format(whole) + " (values must be finite)")
    return v


def parse_range(text: str) -> list:
    """The values of a range string.

        "START:STOP:COUNT"  COUNT evenly spaced values from START to STOP inclusive, like numpy.linspace:
                            v_i = START + i (STOP - START) / (COUNT - 1), v_{COUNT-1} = STOP; COUNT = 1 gives [START]
        "a,b,c"             those values
        "a"                 one value

    Integers stay integers when every part is an integer and (for a range) every value is integral
    ("1:9:5" -> [1, 3, 5, 7, 9]); otherwise every value is a float ("1:10:4" -> [1.0, 4.0, 7.0, 10.0],
    "1,2.5" -> [1.0, 2.5]).

    Example:
        >>> parse_range("0.5:3:6")
        [0.5, 1.0, 1.5, 2.0, 2.5, 3.0]
        >>> parse_range("1:9:5"), parse_range("1,2,5"), parse_range("7")
        ([1, 3, 5, 7, 9], [1, 2, 5], [7])
    """
    if not isinstance(text, str) or not text.strip():
        raise InputError(_RANGE_ERROR.format(text))
    if ":" in text:
        parts = text.split(":")
        if len(parts) != 3:
            raise InputError(_RANGE_ERROR.format(text))
        start, stop = _number(parts[0], text), _number(parts[1], text)
        try:
            count = int(parts[2].strip())
        except ValueError:
            raise InputError(_RANGE_ERROR.format(text) + " (COUNT must be a whole number)") from None
        if count < 1:
            raise InputError(_RANGE_ERROR.format(text) + " (COUNT must be at least 1)")
        if count == 1:
            return [start]
        if isinstance(start, int) and isinstance(stop, int) and (stop - start) % (count - 1) == 0:
            step = (stop - start) // (count - 1)
            return [start + i * step for i in range(count)]
        start, stop = float(start), float(stop)
        step = (stop - start) / (count - 1)  # numpy.linspace: i * step + start, the last value exactly STOP
        return [i * step + start for i in range(count - 1)] + [stop]
    values = [_number(p, text) for p in text.split(",")]
    if all(isinstance(v, int) for v in values):
        return values
    return [float(v) for v in values]


def _scalar(value: Any, where: str) -> Any:
    if getattr(value, "ndim", None) == 0 and hasattr(value, "item"):  # a numpy or torch scalar
        value = value.item()
    if isinstance(value, bool) or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InputError(f"{where}: expected finite numbers, got {value!r}")
        return value
    raise InputError(f"{where}: expected a number, string or boolean, got {type(value).__name__} {value!r}")


@dataclasses.dataclass(frozen=True)
class SweepSpec:
    """A sweep: a task run on every point of a grid.

    name   the sweep's name, stored with every run (str, not empty)
    task   a name in TASKS ("probe", "phase-point") or "package.module:function"; resolved on use
    grid   {parameter: values}: a list of scalars, or a range string for parse_range ("0.5:3:40");
           the configs are the cartesian product, in key order with the last key varying fastest
    fixed  {parameter: value}: the same in every config (scalars, or lists of scalars)

    Example:
        >>> SweepSpec("scan", "probe", grid={"x": "0:1:3", "cell": ["elman", "gru"]}, fixed={"sleep": 0}).grid
        {'x': [0.0, 0.5, 1.0], 'cell': ['elman', 'gru']}
    """

    name: str
    task: str
    grid: dict = dataclasses.field(default_factory=dict)
    fixed: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.strip():
            raise InputError(f"name: expected a non-empty sweep name, got {self.name!r}")
        if not isinstance(self.task, str) or not self.task.strip():
            raise InputError(f"task: expected a task name or 'package.module:function', got {self.task!r}")
        if not isinstance(self.grid, dict):
            raise InputError(f"grid: expected a table {{parameter: values}}, got {type(self.grid).__name__}")
        if not isinstance(self.fixed, dict):
            raise InputError(f"fixed: expected a table {{parameter: value}}, got {type(self.fixed).__name__}")
        grid = {}
        for k, v in self.grid.items():
            if not isinstance(k, str) or not k:
                raise InputError(f"grid: expected parameter names, got {k!r}")
            if isinstance(v, str):
                try:
                    v = parse_range(v)
                except InputError as e:
                    raise InputError(f"grid.{k}: {e}") from None
            elif isinstance(v, (int, float)):
                v = [v]
            if not isinstance(v, (list, tuple)) or not v:
                raise InputError(f"grid.{k}: expected a non-empty list of values or a range string, got {v!r}")
            v = [_scalar(x, f"grid.{k}") for x in v]
            seen = [canonical_json(x) for x in v]
            dups = sorted({s for s in seen if seen.count(s) > 1})
            if dups:
                raise InputError(f"grid.{k}: expected distinct values, got repeated {', '.join(dups)}")
            grid[k] = v
        fixed = {}
        for k, v in self.fixed.items():
            if not isinstance(k, str) or not k:
                raise InputError(f"fixed: expected parameter names, got {k!r}")
            if k in grid:
                raise InputError(f"fixed.{k}: expected a parameter not in grid, got it in both")
            where = f"fixed.{k}"
            fixed[k] = [_scalar(x, where) for x in v] if isinstance(v, (list, tuple)) else _scalar(v, where)
        object.__setattr__(self, "grid", grid)
        object.__setattr__(self, "fixed", fixed)

    def to_dict(self) -> dict:
        return {"name": self.name, "task": self.task, "grid": {k: list(v) for k, v in self.grid.items()},
                "fixed": dict(self.fixed)}


def load_spec(path) -> SweepSpec:
    """A SweepSpec from a TOML file.

        name = "gain-scan"
        task = "probe"                  # or "phase-point", or "package.module:function"
        [grid]
        x = "0.5:3:40"                  # a range string (parse_range) ...
        cell = ["elman", "gru"]         # ... or a list
        [fixed]
        sleep = 0.1

    Example:
        >>> spec = load_spec("scan.toml")            # doctest: +SKIP
    """
    p = Path(path)
    if not p.is_file():
        what = "no such file" if not p.exists() else "a directory or special file"
        raise InputError(f"spec: expected a TOML sweep file, got {str(p)!r} ({what})")
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"spec: expected a valid TOML file, got {str(p)!r} ({e})") from None
    unknown = sorted(set(data) - {"name", "task", "grid", "fixed"})
    if unknown:
        raise InputError(f"spec: expected the keys name, task, [grid], [fixed], got unknown {', '.join(unknown)} "
                         f"in {str(p)!r}")
    for k in ("name", "task"):
        if not isinstance(data.get(k), str):
            got = "none" if k not in data else repr(data[k])
            raise InputError(f"spec: expected {k} = \"...\" (a string), got {got} in {str(p)!r}")
    for k in ("grid", "fixed"):
        if not isinstance(data.get(k, {}), dict):
            raise InputError(f"spec: expected a [{k}] table, got {k} = {data[k]!r} in {str(p)!r}")
    try:
        return SweepSpec(data["name"], data["task"], dict(data.get("grid", {})), dict(data.get("fixed", {})))
    except InputError as e:
        raise InputError(f"spec {str(p)!r}: {e}") from None


def expand(spec: SweepSpec) -> list[dict]:
    """Every config of the sweep: the cartesian product of the grid values in key order (the last key
    varies fastest), each merged with fixed. An empty grid gives one config, fixed itself.

    Example:
        >>> expand(SweepSpec("s", "probe", grid={"a": [1, 2], "b": ["u", "v"]}, fixed={"c": 0}))
        [{'a': 1, 'b': 'u', 'c': 0}, {'a': 1, 'b': 'v', 'c': 0}, {'a': 2, 'b': 'u', 'c': 0}, {'a': 2, 'b': 'v', 'c': 0}]
    """
    keys = list(spec.grid)
    return [{**dict(zip(keys, combo)), **spec.fixed} for combo in itertools.product(*spec.grid.values())]


def config_key(task: str, config: dict) -> str:
    """sha256 hex of the canonical JSON of {"task": task, "config": config} (sorted keys, floats as repr):
    the same for equal configs whatever their key order; 1 and 1.0 are different configs.

    Example:
        >>> config_key("probe", {"x": 1, "y": 2}) == config_key("probe", {"y": 2, "x": 1})
        True
    """
    text = canonical_json({"task": task, "config": config})
    return hashlib.sha256(text.encode("ascii")).hexdigest()


# ------------------------------------------------------------------------------------------------ tasks

def _task_path(task: str) -> str:
    path = TASKS.get(task, task)
    if not _TASK_PATH.match(path):
        raise InputError(f"task: expected one of {', '.join(TASKS)} or 'package.module:function', got {task!r}")
    return path


def _import_task(path: str) -> Callable[[dict], dict]:
    module, _, name = path.partition(":")
    fn = getattr(importlib.import_module(module), name)
    if not callable(fn):
        raise TypeError(f"{path} is a {type(fn).__name__}, not a function")
    return fn


def load_task(task: str) -> Callable[[dict], dict]:
    """The function of a task: a name of TASKS or "package.module:function", imported now.

    Example:
        >>> load_task("probe")({"x": 3, "deterministic": True})
        {'x': 3, 'x2': 9}
    """
    path = _task_path(task)
    try:
        return _import_task(path)
    except Exception as e:  # ImportError, AttributeError, TypeError, or the module's own import error
        raise InputError(f"task: expected an importable function for {task!r}, got {path!r} "
                         f"({type(e).__name__}: {e})") from None


def probe(config: dict) -> dict:
    """The built-in diagnostic task (tests, benchmarks, checking a cluster). Options, in the order applied:

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
        metrics = _import_task(path)(dict(config))
        if not isinstance(metrics, dict):
            raise TypeError(f"task {path} returned {type(metrics).__name__}, expected a dict of metrics")
        metrics = jsonable(metrics)
        json.dumps(metrics, allow_nan=False)  # not JSON-able: fails here, as this task's error
        return "done", metrics, None, time.perf_counter() - t0, host
    except (Exception, SystemExit) as exc:
        return "failed", None, _error_text(exc), time.perf_counter() - t0, host


def _init_local_worker(threads: int, started) -> None:
    """Local pool workers: Ctrl-C is the coordinator's (it cancels and stops them); torch gets an equal
    share of the cores (cpu_count // workers) instead of every worker using all of them; `started` counts
    the workers that came up (a pool whose workers all die before this point cannot run anything)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import torch

    torch.set_num_threads(threads)
    with started.get_lock():
        started.value += 1


# ------------------------------------------------------------------------------------------------ pools

def _exit_text(code: int) -> str:
    """A process exit code in words: -9 -> "killed by SIGKILL", 3 -> "exit code 3"."""
    if code >= 0:
        return f"exit code {code}"
    try:
        return f"killed by {signal.Signals(-code).name}"
    except ValueError:
        return f"killed by signal {-code}"


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
        ctx.set_forkserver_preload(["rnnscope.runs.sweep"])
        self._seen = {}
        self._started = ctx.Value("i", 0)
        return cf.ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx, initializer=_init_local_worker,
                                      initargs=(self._threads, self._started))

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
                dead.append(_exit_text(code))
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

    Example:
        >>> spec = SweepSpec("scan", "probe", grid={"x": list(range(12))})
        >>> r = run_sweep(spec, "runs.db", workers=2, progress=False)      # doctest: +SKIP
        >>> r.to_dict()                                                     # doctest: +SKIP
        {'sweep': 'scan', 'total': 12, 'skipped': 0, 'done': 12, 'failed': 0, 'remaining': 0, ...}
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
    path = _task_path(spec.task)
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
