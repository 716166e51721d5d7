"""The tests' reader of the kernel's process table (/proc alone, nothing of rnnscope): which processes of a session
still run, for the fault tests that SIGKILL a coordinator (tests/test_runner.py, tests/test_web_load.py).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["session_processes"]


def session_processes(sid: int) -> dict:
    """{pid: command line} of the running (not zombie) processes of session sid, read from /proc alone: a
    coordinator started with start_new_session=True, and every process it starts, are in its session."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_bytes()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:  # ended meanwhile
            continue
        fields = stat[stat.rindex(b")") + 2:].split()  # state ppid pgrp session ...
        if int(fields[3]) == sid and fields[0] not in (b"Z", b"X"):
            found[int(entry.name)] = cmdline
    return found
