"""Turning results into JSON: tensors to nested lists, non-finite numbers to null.

JSON has no Infinity or NaN: log10 of an exactly zero norm (-inf) and "not computed" (NaN) become null.

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

__all__ = ["jsonable"]


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
