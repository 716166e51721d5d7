"""Reading user files (.npz weights, .npy arrays) and making output folders, with errors that say what
was expected and what arrived.

Example:
    >>> import tempfile
    >>> d = output_folder(tempfile.mkdtemp() + "/run")
    >>> np.savez(d / "weights.npz", W_hh=np.eye(2), b_h=np.zeros(2))
    >>> sorted(load_npz(d / "weights.npz"))
    ['W_hh', 'b_h']
    >>> load_npy(d / "inputs.npy", "inputs")
    Traceback (most recent call last):
    ...
    rnnscope.core.errors.InputError: inputs: expected an existing file, got ...
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import InputError

__all__ = ["load_npz", "load_npy", "output_folder"]


def output_folder(path, what: str = "out", create: bool = True) -> Path:
    """The folder results are written to: refused if it is a file; created (with parents) when create is set."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise InputError(f"{what}: expected a folder, got {str(out)!r} (a file)")
    if create:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise InputError(f"{what}: expected a folder that can be created, got {str(out)!r} "
                             f"({type(e).__name__}: {e})") from None
    return out


def _check_file(path, what: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise InputError(f"{what}: expected an existing file, got {str(p)!r} (no such file)")
    if not p.is_file():
        raise InputError(f"{what}: expected a file, got {str(p)!r} (a directory or special file)")
    return p


def _check_numeric(name: str, a: np.ndarray, what: str) -> np.ndarray:
    if a.dtype.kind == "c":
        raise InputError(f"{what}: expected real numbers for {name}, got dtype {a.dtype}")
    if a.dtype.kind not in "biuf":  # bool, int, uint, float; not timedelta, datetime, strings, objects, records
        raise InputError(f"{what}: expected a numeric array for {name}, got dtype {a.dtype}")
    if np.issubdtype(a.dtype, np.floating) and not np.isfinite(a).all():
        raise InputError(f"{what}: expected finite numbers in {name}, got NaN or Inf")
    return a


def load_npz(path, what: str = "weights") -> dict[str, np.ndarray]:
    """All arrays of an .npz file, checked to be numeric and finite (pickled objects are refused)."""
    p = _check_file(path, what)
    try:
        # open the file here, not in np.load: numpy leaks its own handle when the zip is corrupt
        with open(p, "rb") as fh:
            z = np.load(fh, allow_pickle=False)
            if not isinstance(z, np.lib.npyio.NpzFile):
                raise InputError(f"{what}: expected an .npz archive of named arrays, got a single .npy array in {str(p)!r}")
            with z:
                arrays = {k: z[k] for k in z.files}
    except InputError:
        raise
    except Exception as e:  # a corrupt file fails in many ways (BadZipFile, zlib.error, EOFError, MemoryError, ...)
        raise InputError(f"{what}: expected a readable .npz archive, got {str(p)!r} ({type(e).__name__}: {e})") from None
    for k, a in arrays.items():
        _check_numeric(k, a, what)
    return arrays


def load_npy(path, what: str) -> np.ndarray:
    """One array from an .npy file, checked to be numeric and finite."""
    p = _check_file(path, what)
    try:
        with open(p, "rb") as fh:  # our handle, closed on every path (see load_npz)
            a = np.load(fh, allow_pickle=False)
            if isinstance(a, np.lib.npyio.NpzFile):
                a.close()
                raise InputError(f"{what}: expected a single .npy array, got an .npz archive {str(p)!r}")
    except InputError:
        raise
    except Exception as e:  # a corrupt file fails in many ways (see load_npz)
        raise InputError(f"{what}: expected a readable .npy array, got {str(p)!r} ({type(e).__name__}: {e})") from None
    return _check_numeric("the array", a, what)
