"""runs/spec.py: ranges, grids, keys and TOML specs.

References are independent of rnnscope: numpy.linspace for ranges, itertools.product for grids, hashlib on a
JSON text written out by hand for keys. The task names here are labels (a spec resolves its task only when it
runs), so "probe" needs no import.
"""

from __future__ import annotations

import hashlib
import itertools
import textwrap

import numpy as np
import pytest

from rnnscope.core.errors import InputError
from rnnscope.runs.spec import SweepSpec, config_key, expand, load_spec, parse_range


# ------------------------------------------------------------------------------------ ranges, grids, keys

@pytest.mark.parametrize("start,stop,count", [(0.5, 3, 40), (-1, 1, 7), (0, 1, 3), (1e-3, 2, 5), (3, -2, 7),
                                              (0.1, 0.7, 13), (1, 10, 5), (2.5, 2.5, 3), (1, 10, 4), (3, -2, 6)])
def test_parse_range_is_linspace(start, stop, count):
    got = parse_range(f"{start}:{stop}:{count}")
    ref = np.linspace(start, stop, count).tolist()
    assert got == ref  # exactly, value by value
    integral = isinstance(start, int) and isinstance(stop, int) and (stop - start) % (count - 1) == 0
    assert all(type(v) is (int if integral else float) for v in got)


def test_parse_range_integers_lists_and_single_values():
    assert parse_range("1:9:5") == [1, 3, 5, 7, 9] == np.linspace(1, 9, 5).tolist()
    assert all(type(v) is int for v in parse_range("1:9:5"))
    assert parse_range("-4:4:3") == [-4, 0, 4] and all(type(v) is int for v in parse_range("-4:4:3"))
    assert parse_range("1:10:4") == [1, 4, 7, 10] and all(type(v) is int for v in parse_range("1:10:4"))
    assert parse_range("1:10:5") == [1.0, 3.25, 5.5, 7.75, 10.0] and all(type(v) is float for v in parse_range("1:10:5"))
    assert parse_range("1.0:9:5") == [1.0, 3.0, 5.0, 7.0, 9.0] and all(type(v) is float for v in parse_range("1.0:9:5"))
    assert parse_range("1:2:3") == [1.0, 1.5, 2.0]
    assert parse_range("2:5:1") == [2] and type(parse_range("2:5:1")[0]) is int
    assert parse_range("0.5:3:1") == [0.5]
    assert parse_range("1,2,5") == [1, 2, 5] and all(type(v) is int for v in parse_range("1,2,5"))
    assert parse_range("1, 2.5") == [1.0, 2.5] and all(type(v) is float for v in parse_range("1,2.5"))
    assert parse_range("7") == [7] and parse_range("-0.25") == [-0.25] and parse_range("1e-3") == [0.001]


@pytest.mark.parametrize("text", ["", "a:b:c", "1:2", "1:2:0", "1:2:-3", "1:2:2.5", "1,,2", "x", "nan", "1:inf:3",
                                  "1:2:3:4", "1,two"])
def test_parse_range_bad_text(text):
    with pytest.raises(InputError, match=r"^range: expected START:STOP:COUNT or a comma-separated list, got "):
        parse_range(text)


def test_expand_is_itertools_product():
    grid = {"a": [1, 2, 3], "cell": ["elman", "gru"], "g": [0.5, 1.0, 1.5, 2.0]}
    fixed = {"T": 100, "seed": 7}
    spec = SweepSpec("s", "probe", grid=grid, fixed=fixed)
    ref = [{"a": a, "cell": c, "g": g, "T": 100, "seed": 7} for a, c, g in itertools.product(*grid.values())]
    got = expand(spec)
    assert got == ref and len(got) == 24
    assert [list(c) for c in got] == [list(c) for c in ref]  # key order too
    assert got[1] == {"a": 1, "cell": "elman", "g": 1.0, "T": 100, "seed": 7}  # the last key varies fastest
    assert expand(SweepSpec("s", "probe", grid={"x": "0:1:3"})) == [{"x": 0.0}, {"x": 0.5}, {"x": 1.0}]
    assert expand(SweepSpec("s", "probe", fixed={"x": 1})) == [{"x": 1}]  # no grid: one config


def test_config_key_reference_order_and_types():
    ref = hashlib.sha256(b'{"config":{"a":1,"b":0.1,"c":"elman"},"task":"probe"}').hexdigest()
    assert config_key("probe", {"a": 1, "b": 0.1, "c": "elman"}) == ref
    assert config_key("probe", {"c": "elman", "b": 0.1, "a": 1}) == ref  # dict key order does not matter
    assert config_key("probe", {"a": np.int64(1), "b": np.float64(0.1), "c": "elman"}) == ref
    assert config_key("probe", {"a": 1.0, "b": 0.1, "c": "elman"}) != ref  # 1 and 1.0 are different configs
    assert config_key("phase-point", {"a": 1, "b": 0.1, "c": "elman"}) != ref
    x = 0.1 + 0.2  # floats as repr: 0.30000000000000004, not 0.3
    assert config_key("probe", {"x": x}) == hashlib.sha256(
        ('{"config":{"x":%r},"task":"probe"}' % x).encode()).hexdigest()
    with pytest.raises(InputError, match="config.x: expected finite numbers"):
        config_key("probe", {"x": float("nan")})


# ------------------------------------------------------------------------------------------------- specs

def test_load_spec_from_toml(tmp_path):
    f = tmp_path / "scan.toml"
    f.write_text(textwrap.dedent("""
        name = "gain-scan"
        task = "probe"
        [grid]
        gain = "0.5:3:6"
        cell = ["elman", "gru"]
        T = "100,200"
        [fixed]
        sleep = 0.0
        seed = 3
    """))
    spec = load_spec(f)
    assert spec == SweepSpec("gain-scan", "probe", {"gain": np.linspace(0.5, 3, 6).tolist(),
                                                    "cell": ["elman", "gru"], "T": [100, 200]},
                             {"sleep": 0.0, "seed": 3})
    assert list(spec.grid) == ["gain", "cell", "T"]
    assert len(expand(spec)) == 6 * 2 * 2
    assert spec.to_dict()["grid"]["T"] == [100, 200]


@pytest.mark.parametrize("text,match", [
    ('name = "s"\ntask = "probe"\n[grid\n', "expected a valid TOML file"),
    ('task = "probe"\n', "expected name = \"...\" \\(a string\\), got none"),
    ('name = 3\ntask = "probe"\n', "expected name = \"...\" \\(a string\\), got 3"),
    ('name = "s"\ntask = "probe"\ncolour = 1\n', "got unknown colour"),
    ('name = "s"\ntask = "probe"\ngrid = 3\n', "expected a \\[grid\\] table"),
    ('name = "s"\ntask = "probe"\n[grid]\nx = "1:2"\n', "grid.x: range: expected START:STOP:COUNT"),
    ('name = "s"\ntask = "probe"\n[grid]\nx = []\n', "grid.x: expected a non-empty list"),
    ('name = "s"\ntask = "probe"\n[grid]\nx = [1, 1]\n', "grid.x: expected distinct values, got repeated 1"),
    ('name = "s"\ntask = "probe"\n[grid]\nx = [{a = 1}]\n', "grid.x: expected a number, string or boolean"),
    ('name = "s"\ntask = "probe"\n[grid]\nx = [1, 2]\n[fixed]\nx = 3\n', "fixed.x: expected a parameter not in grid"),
    ('name = ""\ntask = "probe"\n', "name: expected a non-empty sweep name"),
])
def test_load_spec_bad_files(tmp_path, text, match):
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(InputError, match=match):
        load_spec(f)


def test_load_spec_not_a_file(tmp_path):
    with pytest.raises(InputError, match=r"spec: expected a TOML sweep file, got .* \(no such file\)"):
        load_spec(tmp_path / "missing.toml")
    with pytest.raises(InputError, match=r"spec: expected a TOML sweep file, got .* \(a directory"):
        load_spec(tmp_path)


def test_large_grids_load_in_linear_time_or_are_refused_before_running():
    """Duplicate values are found by counting (a 200,000-value axis would take hours with a pairwise check), and a
    grid of more than MAX_CONFIGS configs is refused with its sizes before any value is processed."""
    from rnnscope.runs.spec import MAX_CONFIGS, SweepSpec
    s = SweepSpec("big", "phase-point", grid={"sigma_w": "0:1:200000"})
    assert len(s.grid["sigma_w"]) == 200_000 and s.grid["sigma_w"][-1] == 1.0
    with pytest.raises(InputError, match="grid.x: expected distinct values, got repeated 2"):
        SweepSpec("dup", "phase-point", grid={"x": [1, 2, 2, 3]})
    with pytest.raises(InputError, match=r"grid: expected at most 1,000,000 configs, got 2,000,000 \(a 1,000,000 x b 2\)"):
        SweepSpec("huge", "phase-point", grid={"a": f"0:1:{MAX_CONFIGS}", "b": [0, 1]})
    with pytest.raises(InputError, match="COUNT <= 1,000,000"):
        SweepSpec("huge", "phase-point", grid={"a": "0:1:1000001"})
