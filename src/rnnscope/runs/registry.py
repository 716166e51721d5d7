"""The sweep tasks by name: a task is a function config dict -> metrics dict that every worker can import.

    TASKS["phase-point"] = "rnnscope.dynamics.phase:run_point"   (and "train", "study-point")
    a spec's task: a name of TASKS, or any "package.module:function" path, imported by name in the workers

The registry holds paths, not functions: this layer imports nothing above core, and a worker imports only the
task it runs. A task of your own needs no entry here: name it by its path (the module must be importable
where the workers run: on sys.path, or installed).

Example:
    >>> sorted(TASKS)
    ['phase-point', 'study-point', 'train']
    >>> load_task("phase-point").__name__, task_path("train")
    ('run_point', 'rnnscope.lab.train:run_config')
    >>> load_task("no such task")
    Traceback (most recent call last):
    ...
    rnnscope.core.errors.InputError: task: expected one of phase-point, train, study-point or 'package.module:function', got 'no such task'
"""

from __future__ import annotations

import importlib
import re
from types import MappingProxyType
from typing import Callable

from ..core.errors import InputError

__all__ = ["TASKS", "task_path", "import_task", "load_task"]

TASKS = MappingProxyType({
    "phase-point": "rnnscope.dynamics.phase:run_point",
    "train": "rnnscope.lab.train:run_config",
    "study-point": "rnnscope.lab.studies:run_point",
})

_TASK_PATH = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$")


def task_path(task: str) -> str:
    """The "package.module:function" path of a task name of TASKS, or the path itself (checked, not imported)."""
    path = TASKS.get(task, task)
    if not _TASK_PATH.match(path):
        raise InputError(f"task: expected one of {', '.join(TASKS)} or 'package.module:function', got {task!r}")
    return path


def import_task(path: str) -> Callable[[dict], dict]:
    """The function at "package.module:function" (worker side: its errors are the task's own, not InputError)."""
    module, _, name = path.partition(":")
    fn = getattr(importlib.import_module(module), name)
    if not callable(fn):
        raise TypeError(f"{path} is a {type(fn).__name__}, not a function")
    return fn


def load_task(task: str) -> Callable[[dict], dict]:
    """The function of a task: a name of TASKS or "package.module:function", imported now; InputError when it
    cannot be imported.
    """
    path = task_path(task)
    try:
        return import_task(path)
    except Exception as e:  # ImportError, AttributeError, TypeError, or the module's own import error
        raise InputError(f"task: expected an importable function for {task!r}, got {path!r} "
                         f"({type(e).__name__}: {e})") from None
