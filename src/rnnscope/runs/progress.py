"""One rich progress bar for long loops (sweeps, training), or nothing when disabled; and the one rule for
whether a command shows it (progress_enabled).

    description | bar | M/N | extra fields | elapsed | ETA

The extra fields are a rich template over the task's fields (e.g. "{task.fields[failed]} failed"),
set at creation and changed with update(). Written to the given console (default: stderr).

Example:
    >>> with ProgressBar(False, None, "scan", 10) as bar:     # disabled: every call is a no-op
    ...     bar.update(advance=1)
    >>> progress_enabled(quiet=True)
    False
"""

from __future__ import annotations

import sys

__all__ = ["ProgressBar", "progress_enabled"]


def progress_enabled(quiet: bool = False, stream=None) -> bool:
    """Whether a command shows its progress: on stderr (stream), whatever its output format (--json too, whose
    stdout stays the JSON alone), and only when stderr is a terminal (a bar in a log file or a pipe is noise) and
    --quiet was not given. The commands' one rule (sweep, phase, train, study, demo's studies)."""
    if quiet:
        return False
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # no isatty, or a closed stream
        return False


class ProgressBar:
    def __init__(self, enabled: bool, console, description: str, total: int, fields: str = "", **initial):
        self._bar = None
        if not enabled:
            return
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)
        columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn()]
        if fields:
            columns.append(TextColumn(fields))
        columns += [TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn()]
        self._bar = Progress(*columns, console=console or Console(stderr=True))
        self._task = self._bar.add_task(description, total=total, **initial)

    @property
    def enabled(self) -> bool:
        return self._bar is not None

    def __enter__(self):
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *exc):
        if self._bar is not None:
            self._bar.stop()

    def update(self, advance: int = 0, **fields) -> None:
        """Advance the count and/or set fields."""
        if self._bar is not None:
            self._bar.update(self._task, advance=advance, **fields)

    def print(self, text: str) -> None:
        """A line above the bar."""
        if self._bar is not None:
            self._bar.console.print(text)
