"""Resumable parameter sweeps, in one import: a grid of configs run as tasks on a local process pool or a
dask.distributed cluster, every finished run written to the SQLite results store as it completes.

    spec (TOML: name, task, [grid], [fixed]) --expand--> configs = grid_1 x grid_2 x ... (+ fixed)   spec.py
    task: a name of TASKS or "package.module:function", a function config -> metrics          registry.py
    run_sweep: skip the keys already finished, run the rest, the coordinator records each     runner.py
    one row per finished run, key = sha256(canonical JSON {"task": task, "config": config})    store.py

This module holds no code of its own: it gathers the sweep's public names from the modules above, so that
`from rnnscope.runs.sweep import SweepSpec, run_sweep` keeps working.

Example:
    >>> spec = SweepSpec("scan", "phase-point", grid={"sigma_w": parse_range("0.5:3:6")}, fixed={"sigma_b": 0.0})
    >>> len(expand(spec)), load_task(spec.task).__name__
    (6, 'run_point')
"""

from __future__ import annotations

from .registry import TASKS, load_task
from .runner import SweepReport, run_sweep
from .spec import SweepSpec, config_key, expand, load_spec, parse_range

__all__ = ["TASKS", "SweepSpec", "SweepReport", "parse_range", "load_spec", "expand", "config_key",
           "load_task", "run_sweep"]
