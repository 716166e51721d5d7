"""runs/store.py: the SQLite results store (write contract, refused files) and its JSON / CSV export.

References are independent of rnnscope: sqlite3 queries straight on the file (sweep_probe.db_rows, PRAGMAs,
constraint violations), the csv and json modules for exports.
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import sys
from pathlib import Path

import pytest

from rnnscope.core.errors import InputError
from rnnscope.runs.runner import run_sweep
from rnnscope.runs.spec import SweepSpec
from rnnscope.runs.store import Store, export

TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:  # sweep_probe, for this process and every worker it starts (they take its sys.path)
    sys.path.insert(0, str(TESTS))
from sweep_probe import PROBE, db_rows  # noqa: E402


# ------------------------------------------------------------------------------------------------- store

def test_store_record_contract(tmp_path):
    db = tmp_path / "s.db"
    with Store(db) as s:
        s.record("k1", "sw", "probe", {"x": 1}, {"x": 1, "v": float("inf")}, "done", None, 0.5, "h")
        s.record("k1", "other", "probe", {"x": 1}, None, "failed", "RuntimeError: late", 0.1, "h")  # done stays done
        s.record("k2", "sw", "probe", {"x": 2}, None, "failed", "RuntimeError: boom", 0.1, "h")
        s.record("k2", "sw", "probe", {"x": 2}, {"x": 2}, "done", None, 0.2, "h2")  # a retry replaces failed
        assert s.finished_keys() == {"k1", "k2"} and s.finished_keys(status="failed") == set()
        assert s.finished_keys(sweep="other") == set()
    rows = db_rows(db)
    assert [(r["key"], r["sweep"], r["status"], r["metrics"], r["error"], r["host"]) for r in rows] == [
        ("k1", "sw", "done", {"x": 1, "v": None}, None, "h"), ("k2", "sw", "done", {"x": 2}, None, "h2")]
    con = sqlite3.connect(str(db))
    try:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert con.execute("PRAGMA user_version").fetchone()[0] == 1
        with pytest.raises(sqlite3.IntegrityError):  # a done row without metrics cannot exist
            con.execute("INSERT INTO runs VALUES ('k3','s','probe','{}',NULL,'done',NULL,1.0,'h','t')")
        with pytest.raises(sqlite3.IntegrityError):
            con.execute("INSERT INTO runs VALUES ('k4','s','probe','{}',NULL,'running',NULL,1.0,'h','t')")
    finally:
        con.close()


def test_store_bad_files(tmp_path):
    with pytest.raises(InputError, match=r"^db: expected a SQLite results file, got .* \(a directory"):
        Store(tmp_path)
    text = tmp_path / "notes.txt"
    text.write_text("hello, this is not a database\n" * 10)
    with pytest.raises(InputError, match=r"^db: expected a SQLite results file, got .*notes.txt' \(not a SQLite file\)"):
        Store(text)
    other = tmp_path / "other.db"
    con = sqlite3.connect(str(other))
    con.execute("CREATE TABLE t (a)")
    con.commit()
    con.close()
    with pytest.raises(InputError, match=r"^db: expected an rnnscope results file, got .*another application"):
        Store(other)
    with pytest.raises(InputError, match=r"^db: expected a SQLite results file, got .* \(no such file\)"):
        export(tmp_path / "missing.db")
    with pytest.raises(InputError, match="format: expected json or csv, got 'xml'"):
        export(other, "xml")
    spec = SweepSpec("s", PROBE, grid={"x": [1]})
    with pytest.raises(InputError, match="^db: expected a SQLite results file"):
        run_sweep(spec, text, workers=1, progress=False)


# ---------------------------------------------------------------------------------------------- export

def test_export_json_and_csv(tmp_path):
    db = tmp_path / "runs.db"
    marker = tmp_path / "fail-{x}"
    Path(str(marker).format(x=2)).touch()
    spec = SweepSpec("ex", PROBE, grid={"x": [0, 1, 2], "tag": ["a", "b"]},
                     fixed={"deterministic": True, "fail_if_exists": str(marker), "dims": [4, 8], "on": True})
    run_sweep(spec, db, workers=2, progress=False)
    with Store(db) as s:
        rows = s.rows()
        assert s.rows(sweep="nope") == [] and len(s.rows(status="failed")) == 2
    assert json.loads(export(db, "json")) == rows == db_rows(db)
    assert json.loads(export(db, "json", sweep="ex")) == rows

    table = list(csv.reader(io.StringIO(export(db, "csv"))))
    head, body = table[0], table[1:]
    assert head == ["key", "sweep", "task", "status", "error", "seconds", "host", "finished",
                    "config.deterministic", "config.dims", "config.fail_if_exists", "config.on", "config.tag",
                    "config.x", "metrics.x", "metrics.x2"]
    assert len(body) == 6
    by_key = {r["key"]: r for r in rows}
    for line in body:
        cell = dict(zip(head, line))
        r = by_key[cell["key"]]
        x = r["config"]["x"]
        assert (cell["sweep"], cell["task"], cell["status"], cell["host"], cell["finished"]) == (
            "ex", PROBE, r["status"], r["host"] or "", r["finished"])
        assert float(cell["seconds"]) == r["seconds"]
        assert cell["config.x"] == str(x) and cell["config.tag"] == r["config"]["tag"]
        assert json.loads(cell["config.dims"]) == [4, 8] and cell["config.on"] == "true"
        if x == 2:
            assert cell["status"] == "failed" and cell["error"] == r["error"] and "probe failed" in cell["error"]
            assert cell["metrics.x"] == cell["metrics.x2"] == ""
        else:
            assert cell["status"] == "done" and cell["error"] == ""
            assert (int(cell["metrics.x"]), int(cell["metrics.x2"])) == (x, x * x)


def test_spec_rows_are_the_rows_of_that_grid(tmp_path):
    from rnnscope.runs.store import spec_rows
    db = tmp_path / "runs.db"
    a = SweepSpec("a", PROBE, grid={"x": [0, 1, 2]}, fixed={"deterministic": True})
    b = SweepSpec("b", PROBE, grid={"x": [2, 3]}, fixed={"deterministic": True, "tag": "other"})
    c = SweepSpec("c", PROBE, grid={"x": [1, 5]}, fixed={"deterministic": True})  # x = 1 already written by a
    for spec in (a, b, c):
        run_sweep(spec, db, workers=1, progress=False)
    every = db_rows(db)  # sqlite3 alone, in the order written
    assert [r["config"]["x"] for r in spec_rows(db, a)] == [0, 1, 2]
    assert spec_rows(db, a) == [r for r in every if r["sweep"] == "a"]
    assert [r["config"] for r in spec_rows(db, b)] == [{"x": 2, "deterministic": True, "tag": "other"},
                                                        {"x": 3, "deterministic": True, "tag": "other"}]
    got = spec_rows(db, c)  # its x = 1 row is sweep a's (the key is the config's, not the sweep's)
    assert [(r["sweep"], r["config"]["x"]) for r in got] == [("a", 1), ("c", 5)]
