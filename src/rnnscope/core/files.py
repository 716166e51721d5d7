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


_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip's first entry; an empty zip's end record
_OTHER_FORMATS = ((b"\x89PNG", "a PNG image"), (b"%PDF", "a PDF document"), (b"\x1f\x8b", "a gzip file"),
                  (b"\x80", "a Python pickle"), (b"\x89HDF", "an HDF5 file"))


def _file_kind(p: Path, what: str) -> str:
    """What a file is, from its first bytes: "npy", "zip" (.npz archives are zips), or words for anything else
    ("an empty file", "a text file (it starts 'W_hh = ...')", "a PNG image", ...), for the message."""
    try:
        with open(p, "rb") as fh:
            head = fh.read(512)
    except OSError as e:  # no permission to read, an I/O error
        raise InputError(f"{what}: expected a readable file, got {str(p)!r} ({type(e).__name__}: {e})") from None
    if head.startswith(_NPY_MAGIC):
        return "npy"
    if head.startswith(_ZIP_MAGIC):
        return "zip"
    if not head:
        return "an empty file"
    for magic, words in _OTHER_FORMATS:
        if head.startswith(magic):
            return words
    text = head.decode("utf-8", errors="ignore") if b"\x00" not in head else ""
    if text and sum(c.isprintable() or c in "\t\r\n" for c in text) >= 0.95 * len(text):
        first = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
        return f"a text file (it starts {first[:40]!r})" if first else "a text file of blank lines"
    return f"a file of another format (first bytes {head[:4].hex(' ')})"


def _object_array(e: Exception) -> bool:
    """Whether numpy refused an array because it holds Python objects (it loads those only by unpickling)."""
    return isinstance(e, ValueError) and "allow_pickle" in str(e)


def load_npz(path, what: str = "weights") -> dict[str, np.ndarray]:
    """All arrays of an .npz file, checked to be numeric and finite (pickled objects are refused); any other kind
    of file (a text file, a single .npy array, a zip of other files) is an InputError that says what it is."""
    p = _check_file(path, what)
    kind = _file_kind(p, what)
    if kind == "npy":
        raise InputError(f"{what}: expected an .npz archive of named arrays, got a single .npy array in {str(p)!r}")
    if kind != "zip":
        raise InputError(f"{what}: expected a .npz file written by numpy (np.savez), got {kind} in {str(p)!r}")
    try:
        # open the file here, not in np.load: numpy leaks its own handle when the zip is corrupt
        with open(p, "rb") as fh, np.load(fh, allow_pickle=False) as z:
            arrays = {}
            for k in z.files:
                try:
                    a = z[k]
                except Exception as e:
                    if _object_array(e):
                        raise InputError(f"{what}: expected numeric arrays, got an array of Python objects, {k!r} "
                                         f"(dtype object; rnnscope never unpickles), in {str(p)!r}") from None
                    raise
                if not isinstance(a, np.ndarray):  # np.load hands back a member that is not an .npy as bytes
                    raise InputError(f"{what}: expected a .npz file written by numpy (np.savez), got a zip archive "
                                     f"whose member {k!r} is not a numpy array in {str(p)!r}")
                arrays[k] = a
    except InputError:
        raise
    except Exception as e:  # a corrupt file fails in many ways (BadZipFile, zlib.error, EOFError, MemoryError, ...)
        raise InputError(f"{what}: expected a readable .npz archive, got {str(p)!r} ({type(e).__name__}: {e})") from None
    for k, a in arrays.items():
        _check_numeric(k, a, what)
    return arrays


def load_npy(path, what: str) -> np.ndarray:
    """One array from an .npy file, checked to be numeric and finite; any other kind of file (a text file, an
    .npz archive) is an InputError that says what it is."""
    p = _check_file(path, what)
    kind = _file_kind(p, what)
    if kind == "zip":
        raise InputError(f"{what}: expected a single .npy array (np.save), got a zip archive (an .npz of several "
                         f"arrays, or a .pt) in {str(p)!r}")
    if kind != "npy":
        raise InputError(f"{what}: expected a .npy file written by numpy (np.save), got {kind} in {str(p)!r}")
    try:
        with open(p, "rb") as fh:  # our handle, closed on every path (see load_npz)
            a = np.load(fh, allow_pickle=False)
    except Exception as e:  # a corrupt file fails in many ways (see load_npz)
        if _object_array(e):
            raise InputError(f"{what}: expected a numeric array, got an array of Python objects (dtype object; "
                             f"rnnscope never unpickles) in {str(p)!r}") from None
        raise InputError(f"{what}: expected a readable .npy array, got {str(p)!r} ({type(e).__name__}: {e})") from None
    return _check_numeric("the array", a, what)
