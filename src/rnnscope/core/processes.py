"""Worker processes that end with the process that started them, whatever killed it.

    process_alive(pid)                 True while pid runs (exists and is not a zombie)
    exit_text(code)                    a process's exit code in words ("killed by SIGKILL", "exit code 3")
    watch_coordinator(pid, period)     in a worker: a daemon thread that ends this process (os._exit) within
                                       `period` seconds of pid's death

The sweep runner's workers and the explorer's compute workers are forks of multiprocessing's forkserver, not of
the process that uses them: no parent-death signal reaches them, and SIGKILL of their coordinator runs no handler
of its own. Each worker therefore watches its coordinator's pid and ends itself, in the middle of a computation
too; the forkserver and multiprocessing's resource tracker then see their pipes close and end as well.

Example (this process is alive; a pid that ran and was reaped is not):
    >>> import os, subprocess, sys
    >>> child = subprocess.Popen([sys.executable, "-c", "pass"]); _ = child.wait()
    >>> process_alive(os.getpid()), process_alive(child.pid)
    (True, False)
"""

from __future__ import annotations

import os
import signal
import threading
import time

__all__ = ["process_alive", "watch_coordinator", "exit_text", "WATCH_PERIOD_S"]

WATCH_PERIOD_S = 0.25  # a worker looks this often whether its coordinator still runs


def process_alive(pid: int) -> bool:
    """Whether process pid runs: it exists and is not a zombie (a killed process whose parent has not reaped it
    yet still answers os.kill(pid, 0); /proc/PID/stat's state field says 'Z' for it on Linux)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else: not our coordinator any more (the pid was reused)
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:  # no procfs (macOS): os.kill's answer is all there is
        return True
    return stat[stat.rindex(b")") + 2:][:1] not in (b"Z", b"X")  # the state follows "(comm) "


def watch_coordinator(pid: int, period: float = WATCH_PERIOD_S) -> threading.Thread:
    """Start a daemon thread that ends this process (os._exit(70), EX_SOFTWARE; nobody reads it) as soon as
    process pid has gone, whatever it is running; returns the thread."""
    def watch() -> None:
        while process_alive(pid):
            time.sleep(period)
        os._exit(70)

    thread = threading.Thread(target=watch, name="rnnscope-watch-coordinator", daemon=True)
    thread.start()
    return thread


def exit_text(code: int | None) -> str:
    """A process exit code (multiprocessing's exitcode) in words.

    Example:
        >>> exit_text(-9), exit_text(3), exit_text(None)
        ('killed by SIGKILL', 'exit code 3', 'no exit code')
    """
    if code is None:
        return "no exit code"
    if code >= 0:
        return f"exit code {code}"
    try:
        return f"killed by {signal.Signals(-code).name}"
    except ValueError:
        return f"killed by signal {-code}"
