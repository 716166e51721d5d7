"""Load the user's SETUP.py for `rnnscope diagnose SETUP.py[:FUNCTION]`: the model, its inputs and its loss.

    s = load_setup("charlm_setup.py:make")     # FUNCTION defaults to `setup`

The file is the user's own Python code and is run as such (imported with importlib under a private module name,
its directory first on sys.path while it loads and while FUNCTION runs, so that it can import its neighbours).
FUNCTION() (no arguments) returns either a tuple (model, inputs, loss_fn[, targets]) or a dict with the keys
model, inputs, loss_fn and optionally targets: the arguments of rnnscope.interop.diagnose.diagnose(model, inputs,
loss_fn, targets=targets). Every failure of the user's code (no such file, a SyntaxError, an exception while
importing or in FUNCTION, no such function, a wrong return shape) is an InputError of one line that says where
(file:line) and what (type: message), never a traceback; user_code_error() does the same for an exception that
the user's model or loss raises later, inside diagnose.

Example:
    >>> split_spec("runs/setup.py:make"), split_spec("setup.py")
    (('runs/setup.py', 'make'), ('setup.py', 'setup'))
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
import traceback
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import InputError

__all__ = ["DEFAULT_FUNCTION", "Setup", "is_setup_spec", "split_spec", "load_setup", "user_code_error"]

DEFAULT_FUNCTION = "setup"
KEYS = ("model", "inputs", "loss_fn")


@dataclass(frozen=True)
class Setup:
    """What FUNCTION returned, and where it came from."""

    path: Path
    function: str
    model: object
    inputs: object
    loss_fn: object
    targets: object = None


def is_setup_spec(spec: str) -> bool:
    """A SETUP.py[:FUNCTION] argument (a .py file, optionally with a function name), not a MODEL.pt."""
    return split_spec(spec)[0].endswith(".py")


def split_spec(spec: str) -> tuple[str, str]:
    """'FILE.py:FUNCTION' -> ('FILE.py', 'FUNCTION'); 'FILE.py' -> ('FILE.py', DEFAULT_FUNCTION)."""
    s = str(spec)
    head, sep, tail = s.rpartition(":")
    if sep and head.endswith(".py") and tail.isidentifier():
        return head, tail
    return s, DEFAULT_FUNCTION


def _expected(fn: str, path) -> str:
    return (f"setup: expected a function `{fn}` in {str(path)!r} returning (model, inputs, loss_fn) or a dict with "
            f"those keys (and optionally targets)")


def _where(e: BaseException, path: Path) -> str:
    """'FILE:LINE' of the innermost frame of the traceback in the user's file (else the innermost frame)."""
    frames = traceback.extract_tb(e.__traceback__)
    mine = [f for f in frames if Path(f.filename).resolve() == path]
    f = (mine or frames or [None])[-1]
    return "" if f is None else f"{f.filename}:{f.lineno}"


def user_code_error(e: BaseException, path: Path, what: str) -> InputError | None:
    """An InputError 'what: the user's code in FILE raised TYPE: MESSAGE at FILE:LINE' when the traceback of e passes
    through the user's file; None when it does not (then it is not the user's code that failed)."""
    p = Path(path).resolve()
    if not any(Path(f.filename).resolve() == p for f in traceback.extract_tb(e.__traceback__)):
        return None
    msg = " ".join(str(e).split()) or "(no message)"
    return InputError(f"{what}: expected the code in {str(path)!r} to run, got {type(e).__name__}: {msg} at "
                      f"{_where(e, p)}")


@contextmanager
def _on_path(folder: Path):
    sys.path.insert(0, str(folder))
    try:
        yield
    finally:
        try:
            sys.path.remove(str(folder))
        except ValueError:  # pragma: no cover - the user's code removed it
            pass


def load_setup(spec: str) -> Setup:
    """Import SETUP.py, call FUNCTION() and check what it returns (see the module docstring)."""
    file, fn = split_spec(spec)
    path = Path(file)
    if not path.exists():
        raise InputError(f"setup: expected an existing Python file, got {file!r} (no such file)")
    if not path.is_file():
        raise InputError(f"setup: expected a Python file, got {file!r} (a directory or special file)")
    real = path.resolve()
    name = "_rnnscope_setup_" + hashlib.sha1(str(real).encode()).hexdigest()[:12]
    spec_ = importlib.util.spec_from_file_location(name, real)
    if spec_ is None or spec_.loader is None:  # pragma: no cover - a .py path always has a loader
        raise InputError(f"setup: expected an importable Python file, got {file!r}")
    mod = importlib.util.module_from_spec(spec_)
    sys.modules[name] = mod  # dataclasses and pickling look the module up by name
    with _on_path(real.parent):
        try:
            spec_.loader.exec_module(mod)
        except SyntaxError as e:
            sys.modules.pop(name, None)
            raise InputError(f"setup: expected valid Python in {file!r}, got SyntaxError: {e.msg} at "
                             f"{e.filename}:{e.lineno}") from None
        except (Exception, SystemExit) as e:
            sys.modules.pop(name, None)
            msg = " ".join(str(e).split()) or "(no message)"
            raise InputError(f"setup: expected {file!r} to import, got {type(e).__name__}: {msg} at "
                             f"{_where(e, real)}") from None
        f = getattr(mod, fn, None)
        if f is None:
            found = sorted(k for k, v in vars(mod).items() if callable(v) and getattr(v, "__module__", None) == name)
            raise InputError(f"{_expected(fn, file)}, got no `{fn}` (functions defined there: "
                             f"{', '.join(found) or 'none'}; pick one with {file}:FUNCTION)")
        if not callable(f):
            raise InputError(f"{_expected(fn, file)}, got `{fn}` = a {type(f).__name__}, not a function")
        try:
            got = f()
        except (Exception, SystemExit) as e:
            msg = " ".join(str(e).split()) or "(no message)"
            raise InputError(f"setup: expected {fn}() in {file!r} to run, got {type(e).__name__}: {msg} at "
                             f"{_where(e, real)}") from None
    return _checked(got, path, fn)


def _checked(got, path: Path, fn: str) -> Setup:
    """Setup from FUNCTION's return value: a tuple (model, inputs, loss_fn[, targets]) or a dict with those keys."""
    import torch

    if isinstance(got, dict):
        missing = [k for k in KEYS if k not in got]
        extra = sorted(set(got) - set(KEYS) - {"targets"}, key=str)
        if missing or extra:
            raise InputError(f"{_expected(fn, path)}, got a dict with keys {sorted(map(str, got))}"
                             + (f" (missing {', '.join(missing)})" if missing else "")
                             + (f" (unknown {', '.join(map(str, extra))})" if extra else ""))
        model, inputs, loss_fn, targets = got["model"], got["inputs"], got["loss_fn"], got.get("targets")
    elif isinstance(got, tuple) and len(got) in (3, 4):
        model, inputs, loss_fn, targets = (*got, None)[:4]
    else:
        what = f"a tuple of {len(got)} items" if isinstance(got, tuple) else f"a {type(got).__name__}"
        raise InputError(f"{_expected(fn, path)}, got {what}")
    if not isinstance(model, torch.nn.Module):
        raise InputError(f"{_expected(fn, path)}, got model = a {type(model).__name__}, not an nn.Module")
    if not callable(loss_fn):
        raise InputError(f"{_expected(fn, path)}, got loss_fn = a {type(loss_fn).__name__}, not a function")
    return Setup(path=path, function=fn, model=model, inputs=inputs, loss_fn=loss_fn, targets=targets)
