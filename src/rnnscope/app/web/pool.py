"""The explorer's compute pool: worker processes that run the computations of rnnscope.app.explorer.

    pool = ComputePool(workers)            (None: os.cpu_count())
    await pool.start()                     fork the workers (the web app's lifespan does this)
    answer = await pool.run((view, payload, limits), gone)
    await pool.close()                     stop and join every worker

One process per worker, each computing one request at a time on one torch thread, so that requests run in
parallel (in one process the engine's per-step loops hold Python's GIL between small torch calls: two computations
at once each ran 2-3 times slower, measured). A job is (view, payload, limits): view one of explorer.VIEWS with an
ExplorerConfig (explorer.compute), or "memory" with {"lambdas", "rho", "sequences", "seed"}
(explorer_modern.memory_view); the worker answers ("ok", the JSON bytes, compute seconds), ("refused", the
InputError's one line) or ("failed", what went wrong), so the server only relays bytes.

Workers are forks of multiprocessing's forkserver, which imports this module (and with it torch and the explorer)
once: a worker starts in milliseconds (spawn where there is no forkserver). Jobs wait for a free worker in
arrival order. `gone` is a future that completes when the client disconnects (disconnected(receive) makes one from
an ASGI receive channel): a waiting job then leaves the queue; a running one's worker is killed (SIGKILL: its
computation stops at once) and a fresh one forked in its place. A worker that dies by itself (killed, out of
memory) is replaced, written to stderr with its exit, and its job run once more on another worker; a second
death raises WorkerDied for that job alone. close() tells idle workers to exit, kills busy ones and joins them
all: no process is left behind. Like any program that starts forkserver or spawn processes, a script that runs
the pool keeps its code under `if __name__ == "__main__":` (the workers import the main script).

Example:
    >>> import asyncio
    >>> from rnnscope.app.explorer import LIMITS, ExplorerConfig
    >>> async def one():
    ...     pool, never = ComputePool(1), asyncio.get_running_loop().create_future()  # a client that stays
    ...     try:
    ...         return await pool.run(("spectrum", ExplorerConfig(hidden=4), LIMITS), never)
    ...     finally:
    ...         await pool.close()
    >>> from concurrent.futures import ThreadPoolExecutor
    >>> with ThreadPoolExecutor(1) as thread:  # asyncio.run in a thread of its own (no event loop running there)
    ...     kind, body, seconds = thread.submit(asyncio.run, one()).result()
    >>> kind, body[:12]
    ('ok', b'{"cell":"elm')
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import os
import signal
import sys
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor

import torch

from ...core.errors import InputError
from ...core.processes import exit_text, watch_coordinator
from ..explorer import Limits, compute
from ..explorer_modern import memory_view

__all__ = ["ComputePool", "WorkerDied", "ClientGone", "PoolClosed", "disconnected"]

_START_METHOD = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"


def _answer(view: str, payload, limits: Limits) -> tuple:
    """One job in a worker: ("ok", JSON bytes, compute seconds) | ("refused", message) | ("failed", message).

    view "memory": payload {"lambdas", "rho", "sequences", "seed"} (explorer_modern.memory_view); "ping": nothing
    (the pool's start-up check); any other explorer.compute(view, payload: ExplorerConfig, limits). The bytes are
    what starlette's JSONResponse would send (no NaN, compact separators, UTF-8).
    """
    if view == "ping":
        return ("ok", b"", 0.0)
    start = time.perf_counter()
    try:
        if view == "memory":
            out = memory_view(payload["lambdas"], payload["rho"], payload["sequences"], payload["seed"], limits)
        else:
            out = compute(view, payload, limits)
        body = json.dumps(out, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")).encode("utf-8")
    except InputError as e:
        return ("refused", " ".join(str(e).split()))
    except Exception as e:  # a bug, not the request's fault: 500 with what happened, the worker lives on
        traceback.print_exc()  # the server's log (the worker's stderr is the server's)
        return ("failed", f"{type(e).__name__}: {' '.join(str(e).split())}")
    return ("ok", body, time.perf_counter() - start)


def _worker_main(conn, server: int) -> None:
    """A worker process of ComputePool: answer the jobs (view, payload, limits) that arrive on conn, one at a time,
    until None arrives or the server's end closes (the server has gone: EOF). A server killed mid-computation ends
    the worker too, within core.processes.WATCH_PERIOD_S (watch_coordinator). Ctrl-C is the server's (it stops the
    workers); one torch thread (the pool runs one worker per core)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    watch_coordinator(server)
    torch.set_num_threads(1)
    with conn:
        while True:
            try:
                job = conn.recv()
            except (EOFError, OSError):
                return
            if job is None:
                return
            try:
                conn.send(_answer(*job))
            except (OSError, ValueError):
                return


class WorkerDied(Exception):
    """The worker process running a job ended before it answered (the server's log says how)."""


class ClientGone(Exception):
    """The client disconnected before its answer was ready: its work was dropped or stopped."""


class PoolClosed(Exception):
    """The pool has stopped (or cannot start workers): nothing more runs."""


class _Worker:
    """One worker process and the server's end of its pipe. Its status is read only through the pipe (EOF: it
    ended) and, once, by reap(): multiprocessing's exit-code reads must not run in two threads at once."""

    def __init__(self, ctx) -> None:
        ours, theirs = ctx.Pipe(duplex=True)
        self.process = ctx.Process(target=_worker_main, args=(theirs, os.getpid()), name="rnnscope-explorer-worker",
                                   daemon=True)
        self.process.start()
        theirs.close()  # the worker's end lives in the worker only: its death is EOF here
        self.conn = ours
        self.pid: int = self.process.pid
        self._lock = threading.Lock()
        self._reaped = False
        self._how = "running"

    def call(self, job) -> tuple:
        """Send a job, wait for its answer (in a thread of the pool's: this blocks); WorkerDied if the process ends."""
        try:
            self.conn.send(job)
            return self.conn.recv()
        except (EOFError, OSError):
            raise WorkerDied("its process ended") from None

    def ended(self) -> bool:
        """For an idle worker (no call in flight): whether its process has ended (its pipe reads EOF)."""
        try:
            return self.conn.poll()
        except (OSError, ValueError):
            return True

    def kill(self) -> None:
        """SIGKILL, unless already reaped (its pid may then belong to another process)."""
        with self._lock:
            if not self._reaped:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)

    def reap(self, timeout: float = 5.0) -> str:
        """Join the process (killed, or told to exit), close the pipe; its exit in words. Idempotent."""
        with self._lock:
            if self._reaped:
                return self._how
            self.process.join(timeout)
            if self.process.exitcode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
                self.process.join(timeout)
            code = self.process.exitcode
            self._how = exit_text(code)
            self._reaped = code is not None
            self.conn.close()
            if self._reaped:
                self.process.close()
        return self._how


class ComputePool:
    """`size` worker processes for the explorer's computations, each running one job at a time.

        pool = ComputePool(2); await pool.start()       (the app's lifespan does this)
        kind, *rest = await pool.run((view, payload, limits), gone)
        await pool.close()

    run() takes the first free worker in arrival order (asyncio.Queue: FIFO), sends the job over a pipe and waits
    for the answer in a thread, until the answer or `gone` (a future: the client's disconnect) completes. Gone while
    waiting: it leaves the queue (ClientGone). Gone while running: the worker is killed (SIGKILL: its computation
    stops at once) and a fresh one forked in its place (ClientGone). A worker found dead (before or during a job) is
    replaced and the job run once more on another worker; a second death raises WorkerDied. Workers are forks of
    multiprocessing's forkserver (spawn where there is none) with this module preloaded. close() stops every
    worker (idle ones are told to exit, busy ones killed) and joins them all: no process is left behind.
    """

    def __init__(self, size: int | None = None) -> None:
        if size is None:
            size = os.cpu_count() or 1
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise InputError(f"workers: expected a positive integer, got {size!r}")
        self.size = size
        self._ctx = multiprocessing.get_context(_START_METHOD)
        self._workers: set[_Worker] = set()  # started and not retired
        self._idle: asyncio.Queue | None = None
        self._calls: ThreadPoolExecutor | None = None
        self._tasks: set[asyncio.Task] = set()
        self._lock: asyncio.Lock | None = None
        self._started = False
        self._closed = False
        self.replaced = 0  # workers replaced after a disconnect or a death

    def pids(self) -> list[int]:
        """The process ids of the pool's workers (a killed one leaves this list at once, its replacement joins it
        once forked)."""
        return sorted(w.pid for w in self._workers)

    async def start(self) -> None:
        """Fork the workers and check that each answers (a ping); idempotent."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._started:
                return
            if self._closed:
                raise PoolClosed("pool: expected a pool that runs, got one that was closed")
            if _START_METHOD == "forkserver":  # the forkserver imports this module and torch once for every fork
                self._ctx.set_forkserver_preload([__name__])
            self._idle = asyncio.Queue()
            self._calls = ThreadPoolExecutor(2 * self.size, thread_name_prefix="rnnscope-pool")
            workers = await asyncio.to_thread(lambda: [_Worker(self._ctx) for _ in range(self.size)])
            self._workers.update(workers)
            loop = asyncio.get_running_loop()
            for w in workers:
                try:
                    await loop.run_in_executor(self._calls, w.call, ("ping", None, None))
                except WorkerDied:
                    await self.close()
                    raise PoolClosed("workers: expected worker processes that start, got one that ended (its error "
                                     "is printed above)") from None
                self._idle.put_nowait(w)
            self._started = True

    async def run(self, job: tuple, gone: asyncio.Future) -> tuple:
        """The worker's answer to job (view, payload, limits): ("ok", bytes, seconds) | ("refused", message) |
        ("failed", message). ClientGone when `gone` completes first; WorkerDied after two deaths; PoolClosed."""
        if not self._started:
            await self.start()
        loop = asyncio.get_running_loop()
        for attempt in range(2):
            worker = await self._take(gone)
            call = loop.run_in_executor(self._calls, worker.call, job)
            call.add_done_callback(_retrieve)
            try:
                await asyncio.wait({call, gone}, return_when=asyncio.FIRST_COMPLETED)
            except BaseException:  # this request's task was cancelled (the server stops): so is its work
                self._retire(worker, call)
                raise
            if not call.done():  # the client has gone: stop its computation now
                self._retire(worker, call)
                raise ClientGone()
            try:
                answer = call.result()
            except WorkerDied:
                self._retire(worker, call, f"while computing /api/{job[0]}")
                if attempt == 0:
                    continue  # once more, on another worker
                raise WorkerDied("its worker process ended twice (the server's log says how)") from None
            except BaseException:  # the job could not be sent (not picklable): a fresh worker, to be sure of its pipe
                self._retire(worker, call)
                raise
            self._idle.put_nowait(worker)
            return answer

    async def _take(self, gone: asyncio.Future) -> _Worker:
        """The next free worker (FIFO among waiting requests), or ClientGone / PoolClosed."""
        while True:
            if self._closed:
                raise PoolClosed("pool: expected a running pool, got one that is shutting down")
            get = asyncio.ensure_future(self._idle.get())
            try:
                await asyncio.wait({get, gone}, return_when=asyncio.FIRST_COMPLETED)
            except BaseException:
                if get.done() and not get.cancelled() and get.result() is not None:
                    self._idle.put_nowait(get.result())  # taken just as this request was cancelled: give it back
                get.cancel()
                raise
            if not get.done():
                get.cancel()  # asyncio.Queue keeps the worker for the next one waiting
                raise ClientGone()
            worker = get.result()
            if worker is None:  # close()'s wake-up call: pass it on to the next one waiting
                self._idle.put_nowait(None)
                raise PoolClosed("pool: expected a running pool, got one that is shutting down")
            if gone.done():
                self._idle.put_nowait(worker)
                raise ClientGone()
            if worker.ended():  # died while idle: replace it, take the next
                self._retire(worker, None, "while idle")
                continue
            return worker

    def _retire(self, worker: _Worker, call: asyncio.Future | None, death: str | None = None) -> None:
        """Kill a worker (now), reap it and fork its replacement (in the background). death: where a worker
        that ended by itself was (written to stderr with its exit); None for a kill of ours."""
        worker.kill()
        if self._closed:  # close() reaps it with the others
            return
        self._workers.discard(worker)
        task = asyncio.ensure_future(self._replace(worker, call, death))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _replace(self, old: _Worker, call: asyncio.Future | None, death: str | None) -> None:
        if call is not None:
            await asyncio.wait({call})  # its reader thread sees EOF once the process is gone
        how = await asyncio.to_thread(old.reap)
        if death is not None:
            sys.stderr.write(f"rnnscope explorer: a worker process ended {death} ({how}); replaced\n")
        if self._closed:
            return
        reason = ""
        for attempt in range(3):
            try:
                new = await asyncio.to_thread(_Worker, self._ctx)
                break
            except Exception as e:  # no fork now: try again shortly, then give up on this slot
                reason = f"{type(e).__name__}: {e}"
                await asyncio.sleep(0.5 * (attempt + 1))
        else:
            sys.stderr.write(f"rnnscope explorer: could not start a worker in place of one that ended ({reason})\n")
            if not self._workers:
                self._closed = True
                self._idle.put_nowait(None)  # wake whoever waits: nothing more can run
            return
        if self._closed:
            new.kill()
            await asyncio.to_thread(new.reap)
            return
        self.replaced += 1
        self._workers.add(new)
        self._idle.put_nowait(new)

    async def close(self) -> None:
        """Stop every worker and join it (idle ones exit when told, busy ones are killed); wake whoever waits."""
        self._closed = True
        idle = set()
        if self._idle is not None:
            while not self._idle.empty():
                idle.add(self._idle.get_nowait())
            self._idle.put_nowait(None)
        workers = list(self._workers)
        self._workers.clear()
        for w in workers:
            if w in idle:
                with contextlib.suppress(OSError, ValueError):
                    w.conn.send(None)
            else:
                w.kill()
        if self._tasks:
            await asyncio.wait(set(self._tasks))
        await asyncio.to_thread(lambda: [w.reap() for w in workers])
        if self._calls is not None:
            self._calls.shutdown(wait=True)


def _retrieve(future: asyncio.Future) -> None:
    """Mark a worker call's outcome as seen (a killed worker's WorkerDied is expected, not an error to log)."""
    if not future.cancelled():
        future.exception()


async def disconnected(receive) -> None:
    """Return when the client has disconnected: the ASGI receive channel says http.disconnect (uvicorn says so
    as soon as the connection is lost; a GET's own request message comes first and is passed over)."""
    while True:
        try:
            message = await receive()
        except Exception:  # the channel itself failed: nobody can be answered either
            return
        if message["type"] == "http.disconnect":
            return
