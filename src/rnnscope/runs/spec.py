"""Sweep specs: a task and a grid of configs, read from TOML, expanded, and keyed for the results store.

    spec (TOML: name, task, [grid], [fixed])
    expand(spec)              configs = grid_1 x grid_2 x ... (cartesian product, the last key varying
                              fastest), each merged with fixed; an empty grid gives one config, fixed itself
    config_key(task, config)  sha256 hex of the canonical JSON {"task": task, "config": config}: the key of the
                              config's row in the store (store.canonical_json: sorted keys, floats as repr)
    parse_range(text)         "START:STOP:COUNT" -> COUNT evenly spaced values from START to STOP inclusive
                              (like numpy.linspace), "a,b,c" -> those values

Shapes: none (a config is a dict of scalars, or lists of scalars in fixed).

Example:
    >>> spec = SweepSpec("scan", "phase-point", grid={"sigma_w": "1:2:3", "seed": [0, 1]}, fixed={"hidden": 8})
    >>> expand(spec)[:2]
    [{'sigma_w': 1.0, 'seed': 0, 'hidden': 8}, {'sigma_w': 1.0, 'seed': 1, 'hidden': 8}]
    >>> len(expand(spec)), len(config_key(spec.task, expand(spec)[0]))
    (6, 64)
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import itertools
import math
import tomllib
from pathlib import Path
from typing import Any

from ..core.errors import InputError
from .store import canonical_json

__all__ = ["SweepSpec", "parse_range", "load_spec", "expand", "config_key", "MAX_CONFIGS"]

MAX_CONFIGS = 1_000_000  # a grid's configs (the product of its axes' lengths): beyond, refused before anything runs

_RANGE_ERROR = "range: expected START:STOP:COUNT or a comma-separated list, got {!r}"


def _number(text: str, whole: str) -> int | float:
    s = text.strip()
    try:
        return int(s)
    except ValueError:
        pass
    try:
        v = float(s)
    except ValueError:
        raise InputError(_RANGE_ERROR.format(whole)) from None
    if not math.isfinite(v):
        raise InputError(_RANGE_ERROR.format(whole) + " (values must be finite)")
    return v


def parse_range(text: str) -> list:
    """The values of a range string.

        "START:STOP:COUNT"  COUNT evenly spaced values from START to STOP inclusive, like numpy.linspace:
                            v_i = START + i (STOP - START) / (COUNT - 1), v_{COUNT-1} = STOP; COUNT = 1 gives [START]
        "a,b,c"             those values
        "a"                 one value

    Integers stay integers when every part is an integer and (for a range) every value is integral
    ("1:9:5" -> [1, 3, 5, 7, 9]); otherwise every value is a float ("1:10:4" -> [1.0, 4.0, 7.0, 10.0],
    "1,2.5" -> [1.0, 2.5]).

    Example:
        >>> parse_range("0.5:3:6")
        [0.5, 1.0, 1.5, 2.0, 2.5, 3.0]
        >>> parse_range("1:9:5"), parse_range("1,2,5"), parse_range("7")
        ([1, 3, 5, 7, 9], [1, 2, 5], [7])
    """
    if not isinstance(text, str) or not text.strip():
        raise InputError(_RANGE_ERROR.format(text))
    if ":" in text:
        parts = text.split(":")
        if len(parts) != 3:
            raise InputError(_RANGE_ERROR.format(text))
        start, stop = _number(parts[0], text), _number(parts[1], text)
        try:
            count = int(parts[2].strip())
        except ValueError:
            raise InputError(_RANGE_ERROR.format(text) + " (COUNT must be a whole number)") from None
        if count < 1:
            raise InputError(_RANGE_ERROR.format(text) + " (COUNT must be at least 1)")
        if count > MAX_CONFIGS:
            raise InputError(f"range: expected COUNT <= {MAX_CONFIGS:,} (a sweep's configs), got {count:,} in {text!r}")
        if count == 1:
            return [start]
        if isinstance(start, int) and isinstance(stop, int) and (stop - start) % (count - 1) == 0:
            step = (stop - start) // (count - 1)
            return [start + i * step for i in range(count)]
        start, stop = float(start), float(stop)
        step = (stop - start) / (count - 1)  # numpy.linspace: i * step + start, the last value exactly STOP
        return [i * step + start for i in range(count - 1)] + [stop]
    values = [_number(p, text) for p in text.split(",")]
    if all(isinstance(v, int) for v in values):
        return values
    return [float(v) for v in values]


def _scalar(value: Any, where: str) -> Any:
    if getattr(value, "ndim", None) == 0 and hasattr(value, "item"):  # a numpy or torch scalar
        value = value.item()
    if isinstance(value, bool) or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InputError(f"{where}: expected finite numbers, got {value!r}")
        return value
    raise InputError(f"{where}: expected a number, string or boolean, got {type(value).__name__} {value!r}")


@dataclasses.dataclass(frozen=True)
class SweepSpec:
    """A sweep: a task run on every point of a grid.

    name   the sweep's name, stored with every run (str, not empty)
    task   a name in registry.TASKS ("phase-point", "train", "study-point") or "package.module:function";
           resolved when the sweep runs, not here
    grid   {parameter: values}: a list of scalars, or a range string for parse_range ("0.5:3:40");
           the configs are the cartesian product, in key order with the last key varying fastest
    fixed  {parameter: value}: the same in every config (scalars, or lists of scalars)

    Example:
        >>> SweepSpec("scan", "train", grid={"x": "0:1:3", "cell": ["elman", "gru"]}, fixed={"steps": 10}).grid
        {'x': [0.0, 0.5, 1.0], 'cell': ['elman', 'gru']}
    """

    name: str
    task: str
    grid: dict = dataclasses.field(default_factory=dict)
    fixed: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.strip():
            raise InputError(f"name: expected a non-empty sweep name, got {self.name!r}")
        if not isinstance(self.task, str) or not self.task.strip():
            raise InputError(f"task: expected a task name or 'package.module:function', got {self.task!r}")
        if not isinstance(self.grid, dict):
            raise InputError(f"grid: expected a table {{parameter: values}}, got {type(self.grid).__name__}")
        if not isinstance(self.fixed, dict):
            raise InputError(f"fixed: expected a table {{parameter: value}}, got {type(self.fixed).__name__}")
        raw = {}
        for k, v in self.grid.items():
            if not isinstance(k, str) or not k:
                raise InputError(f"grid: expected parameter names, got {k!r}")
            if isinstance(v, str):
                try:
                    v = parse_range(v)
                except InputError as e:
                    raise InputError(f"grid.{k}: {e}") from None
            elif isinstance(v, (int, float)):
                v = [v]
            if not isinstance(v, (list, tuple)) or not v:
                raise InputError(f"grid.{k}: expected a non-empty list of values or a range string, got {v!r}")
            raw[k] = v
        total = math.prod(len(v) for v in raw.values())  # checked before any value is: a huge grid fails at once
        if total > MAX_CONFIGS:
            sizes = " x ".join(f"{k} {len(v):,}" for k, v in raw.items())
            raise InputError(f"grid: expected at most {MAX_CONFIGS:,} configs, got {total:,} ({sizes})")
        grid = {}
        for k, v in raw.items():
            v = [_scalar(x, f"grid.{k}") for x in v]
            counts = collections.Counter(canonical_json(x) for x in v)  # linear in the number of values
            dups = sorted(s for s, n in counts.items() if n > 1)
            if dups:
                raise InputError(f"grid.{k}: expected distinct values, got repeated {', '.join(dups)}")
            grid[k] = v
        fixed = {}
        for k, v in self.fixed.items():
            if not isinstance(k, str) or not k:
                raise InputError(f"fixed: expected parameter names, got {k!r}")
            if k in grid:
                raise InputError(f"fixed.{k}: expected a parameter not in grid, got it in both")
            where = f"fixed.{k}"
            fixed[k] = [_scalar(x, where) for x in v] if isinstance(v, (list, tuple)) else _scalar(v, where)
        object.__setattr__(self, "grid", grid)
        object.__setattr__(self, "fixed", fixed)

    def to_dict(self) -> dict:
        return {"name": self.name, "task": self.task, "grid": {k: list(v) for k, v in self.grid.items()},
                "fixed": dict(self.fixed)}


def load_spec(path) -> SweepSpec:
    """A SweepSpec from a TOML file.

        name = "gain-scan"
        task = "phase-point"            # a name of registry.TASKS, or "package.module:function"
        [grid]
        sigma_w = "0.5:3:40"            # a range string (parse_range) ...
        seed = [0, 1]                   # ... or a list
        [fixed]
        hidden = 64

    Example:
        >>> import pathlib, tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     f = pathlib.Path(tmp) / "scan.toml"
        ...     _ = f.write_text('name = "gain-scan"\\ntask = "phase-point"\\n[grid]\\nsigma_w = "0.5:3:6"\\n'
        ...                      'seed = [0, 1]\\n[fixed]\\nhidden = 64\\n')
        ...     spec = load_spec(f)
        >>> spec.grid, spec.fixed
        ({'sigma_w': [0.5, 1.0, 1.5, 2.0, 2.5, 3.0], 'seed': [0, 1]}, {'hidden': 64})
    """
    p = Path(path)
    if not p.is_file():
        what = "no such file" if not p.exists() else "a directory or special file"
        raise InputError(f"spec: expected a TOML sweep file, got {str(p)!r} ({what})")
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"spec: expected a valid TOML file, got {str(p)!r} ({e})") from None
    unknown = sorted(set(data) - {"name", "task", "grid", "fixed"})
    if unknown:
        raise InputError(f"spec: expected the keys name, task, [grid], [fixed], got unknown {', '.join(unknown)} "
                         f"in {str(p)!r}")
    for k in ("name", "task"):
        if not isinstance(data.get(k), str):
            got = "none" if k not in data else repr(data[k])
            raise InputError(f"spec: expected {k} = \"...\" (a string), got {got} in {str(p)!r}")
    for k in ("grid", "fixed"):
        if not isinstance(data.get(k, {}), dict):
            raise InputError(f"spec: expected a [{k}] table, got {k} = {data[k]!r} in {str(p)!r}")
    try:
        return SweepSpec(data["name"], data["task"], dict(data.get("grid", {})), dict(data.get("fixed", {})))
    except InputError as e:
        raise InputError(f"spec {str(p)!r}: {e}") from None


def expand(spec: SweepSpec) -> list[dict]:
    """Every config of the sweep: the cartesian product of the grid values in key order (the last key
    varies fastest), each merged with fixed. An empty grid gives one config, fixed itself.

    Example:
        >>> expand(SweepSpec("s", "train", grid={"a": [1, 2], "b": ["u", "v"]}, fixed={"c": 0}))
        [{'a': 1, 'b': 'u', 'c': 0}, {'a': 1, 'b': 'v', 'c': 0}, {'a': 2, 'b': 'u', 'c': 0}, {'a': 2, 'b': 'v', 'c': 0}]
    """
    keys = list(spec.grid)
    return [{**dict(zip(keys, combo)), **spec.fixed} for combo in itertools.product(*spec.grid.values())]


def config_key(task: str, config: dict) -> str:
    """sha256 hex of the canonical JSON of {"task": task, "config": config} (sorted keys, floats as repr):
    the same for equal configs whatever their key order; 1 and 1.0 are different configs.

    Example:
        >>> config_key("train", {"x": 1, "y": 2}) == config_key("train", {"y": 2, "x": 1})
        True
    """
    text = canonical_json({"task": task, "config": config})
    return hashlib.sha256(text.encode("ascii")).hexdigest()
