"""The rich console that the command line and the demo print their tables on.

Example:
    >>> make_console().width >= 1
    True
"""

from __future__ import annotations

import os

__all__ = ["make_console"]


def make_console():
    """A rich Console for reports: the terminal's width, or 120 columns when writing to a file or pipe."""
    from rich.console import Console
    con = Console(highlight=False)
    if not con.is_terminal and "COLUMNS" not in os.environ:
        con = Console(highlight=False, width=120)
    return con
