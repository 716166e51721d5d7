"""How the commands print: one JSON object (--json) or rich tables, numbers formatted alike, long rows thinned.

Example:
    >>> fmt(0.123456), fmt(None), fmt(float("inf")), fmt(3, "+d")
    ('0.1235', '-', 'inf', '+3')
    >>> spread(list(range(1, 101)), 5)
    [1, 26, 51, 75, 100]
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import typer

from ...core.errors import InputError
from ...core.results import jsonable
from ..console import make_console

__all__ = ["console", "fmt", "echo_json", "spread", "exit_if_interrupted", "check_configs", "exit_if_failed"]

console = make_console


def fmt(v, spec: str = ".4g") -> str:
    """v formatted by spec; '-' for None, 'inf'/'nan' as they are."""
    if v is None:
        return "-"
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return format(v, spec)


def echo_json(d) -> None:
    """d as one line of strict JSON (tensors and arrays as lists, no NaN) on stdout."""
    sys.stdout.write(json.dumps(jsonable(d), allow_nan=False) + "\n")
    sys.stdout.flush()


def spread(items: list[int], n: int) -> list[int]:
    """At most n items, evenly spread, first and last included."""
    if len(items) <= n:
        return items
    return sorted({items[round(i * (len(items) - 1) / (n - 1))] for i in range(n)})


def exit_if_interrupted(report, db: Path) -> None:
    """Ctrl-C during a sweep: what finished is in the store; say so and exit 130."""
    if report.interrupted:
        sys.stderr.write(f"rnnscope: {report.done + report.skipped} of {report.total} configs are finished in {db}; "
                         f"{report.remaining} remain: run the same command again to finish them\n")
        raise typer.Exit(130)


def check_configs(spec) -> None:
    """Every config of a sweep of a built-in task checked before anything is dispatched (a bad key fails here, in
    one line, not as failed rows in the store): phase-point by dynamics.phase.check_point, train by
    TrainConfig.from_dict, study-point by lab.studies.check_point. A task of the user's own is not checked."""
    from ...runs.spec import expand
    if spec.task == "phase-point":
        from ...dynamics.phase import check_point
    elif spec.task == "train":
        from ...lab.train import TrainConfig
        check_point = TrainConfig.from_dict
    elif spec.task == "study-point":
        from ...lab.studies import check_point
    else:
        return
    for i, config in enumerate(expand(spec)):
        try:
            check_point(config)
        except InputError as e:
            raise InputError(f"config {i + 1} of sweep {spec.name!r} ({spec.task}): {e}") from None


def exit_if_failed(report, db: Path) -> None:
    """Exit code 3 (documented in the README) when configs failed: their rows are in the store with the error."""
    if report.failed:
        sys.stderr.write(f"rnnscope: {report.failed} of {report.total} configs failed; their errors: rnnscope results "
                         f"--db {db}; --retry-failed runs them again\n")
        raise typer.Exit(3)
