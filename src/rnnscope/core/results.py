"""Turning results into JSON (tensors to nested lists, non-finite numbers to null), and figure data.

JSON has no Infinity or NaN: log10 of an exactly zero norm (-inf) and "not computed" (NaN) become null.

A FigureSpec is a figure as data (title, axis labels, named series): results carry one so that the
CLI can print them as JSON and plots.plot_spec can draw them, without the producer importing matplotlib.

Example:
    >>> jsonable({"a": torch.tensor([1.0, float("-inf")]), "b": 2})
    {'a': [1.0, None], 'b': 2}
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import torch

__all__ = ["jsonable", "Series", "FigureSpec"]


@dataclasses.dataclass(frozen=True)
class Series:
    """One line of a figure: y against x. style: "solid", "dashed", "dotted", "dashdot" or "points"."""

    label: str
    x: tuple[float, ...]
    y: tuple[float, ...]  # non-finite values leave a gap in the line
    style: str = "solid"

    def to_dict(self) -> dict:
        return {"label": self.label, "x": list(self.x), "y": list(self.y), "style": self.style}


@dataclasses.dataclass(frozen=True)
class FigureSpec:
    """A line figure as data: what plots.plot_spec draws. y values are plotted as given (logs already taken)."""

    title: str
    xlabel: str
    ylabel: str
    series: tuple[Series, ...]

    def to_dict(self) -> dict:
        return {"title": self.title, "xlabel": self.xlabel, "ylabel": self.ylabel,
                "series": [s.to_dict() for s in self.series]}

    @classmethod
    def from_dict(cls, d: dict) -> "FigureSpec":
        """The inverse of to_dict (after JSON: null y values come back as NaN)."""
        nan = float("nan")
        return cls(d["title"], d["xlabel"], d["ylabel"], tuple(
            Series(s["label"], tuple(float(v) for v in s["x"]),
                   tuple(nan if v is None else float(v) for v in s["y"]), s.get("style", "solid"))
            for s in d["series"]))


def jsonable(x: Any) -> Any:
    """Recursively convert tensors, arrays, dataclasses and non-finite floats into plain JSON values."""
    if isinstance(x, torch.Tensor):
        return jsonable(x.detach().cpu().tolist())
    if isinstance(x, np.ndarray):
        return jsonable(x.tolist())
    if isinstance(x, (np.floating, np.integer)):
        return jsonable(x.item())
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return jsonable(x.to_dict() if hasattr(x, "to_dict") else dataclasses.asdict(x))
    return x
