"""The version of rnnscope, read once from the installed package's metadata (pyproject.toml is its one source).

    >>> VERSION == importlib.metadata.version("rnnscope")
    True
"""

import importlib.metadata

__all__ = ["VERSION"]

try:
    VERSION = importlib.metadata.version("rnnscope")
except importlib.metadata.PackageNotFoundError:  # run from a source tree that was never installed
    VERSION = "0+unknown"
