"""The one error type for bad input: it always says what was expected and what arrived.

The CLI turns an InputError into one line on stderr and exit code 2.
"""

from __future__ import annotations

__all__ = ["InputError"]


class InputError(ValueError):
    """Bad input at a boundary (arguments, files, shapes). Message: 'what: expected X, got Y'."""
