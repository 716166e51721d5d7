"""The results store of parameter sweeps: one SQLite file, one row per finished run.

Schema (PRAGMA user_version = 1, PRAGMA application_id = 0x726E6E73 "rnns"):

    runs(key      TEXT PRIMARY KEY,   sha256 of canonical JSON {"task": task, "config": config}
         sweep    TEXT,               the sweep's name (the first sweep that ran this config)
         task     TEXT,               the task's name ("phase-point", "train" or "pkg.mod:function")
         config   TEXT,               canonical JSON: sorted keys, no spaces, floats as repr
         metrics  TEXT,               JSON object, NULL exactly when status = 'failed'
         status   TEXT,               'done' or 'failed'
         error    TEXT,               "Type: message (at file:line in function)", NULL when done
         seconds  REAL,               the task's wall-clock time in its worker
         host     TEXT,               socket.gethostname() of the worker
         finished TEXT)               ISO 8601 UTC time the coordinator recorded it

Write contract: only finished runs are written, each by one INSERT statement in autocommit mode (its own
transaction), so a process killed at any instant leaves either the whole row or nothing. A key is
written once; the only overwrite is a retry replacing a 'failed' row (INSERT ... ON CONFLICT(key) DO
UPDATE ... WHERE runs.status = 'failed'): a 'done' row is never changed. WAL journal with
synchronous=NORMAL: readers (export, a second terminal) never block the writer, and a committed row
survives a killed process. CHECK constraints make a 'done' row without metrics, or a 'failed' row
without an error, impossible.

Example:
    >>> import pathlib, tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = pathlib.Path(tmp.name) / "runs.db"
    >>> with Store(path) as db:
    ...     db.record("ab12", "scan", "phase-point", {"x": 1}, {"x2": 1}, "done", None, 0.01, "node1")
    ...     db.finished_keys()
    {'ab12'}
    >>> print(export(path, "csv"), end="")                            # doctest: +ELLIPSIS
    key,sweep,task,status,error,seconds,host,finished,config.x,metrics.x2
    ab12,scan,phase-point,done,,0.01,node1,...,1,1
    >>> tmp.cleanup()
"""

from __future__ import annotations

import csv
import io
import json
import math
import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..core.errors import InputError
from ..core.results import jsonable

__all__ = ["Store", "export", "canonical_json", "spec_rows", "SCHEMA_VERSION", "STATUSES"]

SCHEMA_VERSION = 1
APPLICATION_ID = 0x726E6E73  # "rnns": marks a SQLite file as an rnnscope results store
STATUSES = ("done", "failed")
BUSY_TIMEOUT_MS = 30_000  # a reader holding the WAL checkpoint back never fails a write, it delays it
SQLITE_HEADER = b"SQLite format 3\x00"
COLUMNS = ("key", "sweep", "task", "config", "metrics", "status", "error", "seconds", "host", "finished")

_SCHEMA = ("""
CREATE TABLE IF NOT EXISTS runs (
    key      TEXT PRIMARY KEY NOT NULL,
    sweep    TEXT NOT NULL,
    task     TEXT NOT NULL,
    config   TEXT NOT NULL,
    metrics  TEXT,
    status   TEXT NOT NULL CHECK (status IN ('done', 'failed')),
    error    TEXT,
    seconds  REAL,
    host     TEXT,
    finished TEXT NOT NULL,
    CHECK ((status = 'done') = (metrics IS NOT NULL)),
    CHECK (status = 'done' OR error IS NOT NULL)
)""", "CREATE INDEX IF NOT EXISTS runs_sweep_status ON runs (sweep, status)")

_UPSERT = f"""
INSERT INTO runs ({", ".join(COLUMNS)}) VALUES ({", ".join("?" * len(COLUMNS))})
ON CONFLICT(key) DO UPDATE SET
    sweep = excluded.sweep, task = excluded.task, config = excluded.config, metrics = excluded.metrics,
    status = excluded.status, error = excluded.error, seconds = excluded.seconds, host = excluded.host,
    finished = excluded.finished
WHERE runs.status = 'failed'
"""


def _plain(value: Any, where: str) -> Any:
    """value as plain JSON data (numpy scalars to Python, tuples to lists); non-finite floats refused."""
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InputError(f"{where}: expected finite numbers, got {value!r}")
        return value
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", None) == 0:  # numpy/torch scalar
        return _plain(value.item(), where)
    if isinstance(value, (list, tuple)):
        return [_plain(v, where) for v in value]
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise InputError(f"{where}: expected string keys, got {k!r}")
            out[k] = _plain(v, f"{where}.{k}")
        return out
    raise InputError(f"{where}: expected JSON values (numbers, strings, booleans, lists), "
                     f"got {type(value).__name__} {value!r}")


def canonical_json(value: Any, where: str = "config") -> str:
    """The canonical JSON text of value: keys sorted, no whitespace, floats as repr (1.0 stays "1.0",
    so 1 and 1.0 are different configs), ASCII only; NaN and infinities are refused.

    Example:
        >>> canonical_json({"b": 0.1, "a": [1, 2.0]})
        '{"a":[1,2.0],"b":0.1}'
    """
    return json.dumps(_plain(value, where), sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False)


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


class Store:
    """An rnnscope results store (SQLite file) opened for reading and writing; a context manager.

    Store(path) creates the file (and its folder) when missing, unless create=False. Anything that is not
    an rnnscope SQLite results file (a folder, a text file, another application's database, a newer
    schema) is refused with InputError "db: expected ..., got ...".

    Example:
        >>> import pathlib, tempfile
        >>> with tempfile.TemporaryDirectory() as tmp, Store(pathlib.Path(tmp) / "runs.db") as db:
        ...     db.record("k1", "scan", "phase-point", {"x": 1}, {"x": 1, "x2": 1}, "done", None, 0.2, "node1")
        ...     db.record("k2", "scan", "phase-point", {"x": 2}, None, "failed", "RuntimeError: boom", 0.1, "node1")
        ...     [(r["config"], r["status"], r["metrics"]) for r in db.rows(sweep="scan")]
        [({'x': 1}, 'done', {'x': 1, 'x2': 1}), ({'x': 2}, 'failed', None)]
    """

    def __init__(self, path, *, create: bool = True):
        p = Path(path)
        self.path = p
        if p.exists() and not p.is_file():
            raise InputError(f"db: expected a SQLite results file, got {str(p)!r} (a directory or special file)")
        if p.is_file() and p.stat().st_size > 0:
            with open(p, "rb") as f:
                head = f.read(len(SQLITE_HEADER))
            if head != SQLITE_HEADER:
                raise InputError(f"db: expected a SQLite results file, got {str(p)!r} (not a SQLite file)")
        elif not p.exists():
            if not create:
                raise InputError(f"db: expected a SQLite results file, got {str(p)!r} (no such file)")
            try:
                p.parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise InputError(f"db: expected a SQLite results file in a folder that can be created, "
                                 f"got {str(p)!r} ({type(e).__name__}: {e})") from None
        try:
            self._conn = sqlite3.connect(str(p), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        except sqlite3.Error as e:
            raise InputError(f"db: expected a SQLite results file, got {str(p)!r} ({e})") from None
        try:
            self._open()
        except sqlite3.DatabaseError as e:
            self._conn.close()
            raise InputError(f"db: expected a SQLite results file, got {str(p)!r} ({e})") from None
        except BaseException:
            self._conn.close()
            raise

    def _open(self) -> None:
        c = self._conn
        c.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        tables = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        app_id = c.execute("PRAGMA application_id").fetchone()[0]
        version = c.execute("PRAGMA user_version").fetchone()[0]
        if tables and app_id != APPLICATION_ID:
            raise InputError(f"db: expected an rnnscope results file, got {str(self.path)!r} "
                             f"(a SQLite file of another application, tables {sorted(tables)})")
        if version > SCHEMA_VERSION:
            raise InputError(f"db: expected a results file of schema version <= {SCHEMA_VERSION}, got "
                             f"{str(self.path)!r} (schema version {version}: written by a newer rnnscope)")
        c.execute("PRAGMA journal_mode = WAL")
        c.execute("PRAGMA synchronous = NORMAL")
        if "runs" not in tables:
            c.execute("BEGIN IMMEDIATE")  # two coordinators opening a new file at once: one creates it
            try:
                for statement in _SCHEMA:
                    c.execute(statement)
                c.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                c.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                c.execute("COMMIT")
            except BaseException:
                if c.in_transaction:
                    c.execute("ROLLBACK")
                raise

    # ------------------------------------------------------------------------------------------ reads
    def finished_keys(self, sweep: str | None = None, status: str | None = "done") -> set[str]:
        """Keys of the runs with this status ('done', 'failed', or None for both), of one sweep or all."""
        if status is not None and status not in STATUSES:
            raise InputError(f"status: expected one of {', '.join(STATUSES)} or None, got {status!r}")
        q, args = "SELECT key FROM runs WHERE 1", []
        if sweep is not None:
            q, args = q + " AND sweep = ?", args + [sweep]
        if status is not None:
            q, args = q + " AND status = ?", args + [status]
        return {r[0] for r in self._conn.execute(q, args)}

    def rows(self, sweep: str | None = None, status: str | None = None) -> list[dict]:
        """Every run (of one sweep / with one status), in the order first written; config and metrics
        decoded from JSON (metrics None for failed runs)."""
        if status is not None and status not in STATUSES:
            raise InputError(f"status: expected one of {', '.join(STATUSES)} or None, got {status!r}")
        q, args = f"SELECT {', '.join(COLUMNS)} FROM runs WHERE 1", []
        if sweep is not None:
            q, args = q + " AND sweep = ?", args + [sweep]
        if status is not None:
            q, args = q + " AND status = ?", args + [status]
        out = []
        for r in self._conn.execute(q + " ORDER BY rowid", args):
            d = dict(zip(COLUMNS, r))
            d["config"] = json.loads(d["config"])
            d["metrics"] = None if d["metrics"] is None else json.loads(d["metrics"])
            out.append(d)
        return out

    # ----------------------------------------------------------------------------------------- writes
    def record(self, key: str, sweep: str, task: str, config: dict, metrics: dict | None, status: str,
               error: str | None, seconds: float | None, host: str | None) -> None:
        """Write one finished run in its own transaction (one statement, autocommit).

        A new key is inserted; a 'failed' row with this key is replaced (a retry); a 'done' row is left
        unchanged. status 'done' needs a metrics dict (non-finite floats are stored as null, like
        results.jsonable); 'failed' needs an error text.
        """
        if status not in STATUSES:
            raise InputError(f"status: expected one of {', '.join(STATUSES)}, got {status!r}")
        if status == "done" and not isinstance(metrics, dict):
            raise InputError(f"metrics: expected a dict for a 'done' run, got {type(metrics).__name__}")
        if status == "failed" and not error:
            raise InputError("error: expected the error text of a 'failed' run, got none")
        metrics_text = None
        if metrics is not None:
            metrics_text = json.dumps(jsonable(metrics), sort_keys=True, allow_nan=False)
        self._conn.execute(_UPSERT, (key, sweep, task, canonical_json(config), metrics_text, status,
                                     None if status == "done" else str(error),
                                     None if seconds is None else float(seconds), host, _utc_now()))

    def close(self) -> None:
        """Close the connection (the WAL is checkpointed into the main file by SQLite)."""
        self._conn.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def spec_rows(path, spec) -> list[dict]:
    """The rows of the store at path whose key is one of spec's expanded configs (a SweepSpec): the runs of that
    grid, whichever sweep first wrote them, in the order first written."""
    from .spec import config_key, expand  # spec.py imports this module
    keys = {config_key(spec.task, c) for c in expand(spec)}
    with Store(path) as store:
        return [r for r in store.rows() if r["key"] in keys]


def _cell(value: Any) -> str:
    """A CSV cell: strings as they are, numbers as repr, booleans true/false, null empty, lists as JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, int, float)):
        return json.dumps(value)
    return json.dumps(value, sort_keys=True)


def export(path, fmt: str = "json", sweep: str | None = None) -> str:
    """The runs of a results file as text.

    fmt "json": a JSON list of rows exactly as Store.rows returns them (config, metrics decoded).
    fmt "csv": one row per run; columns key, sweep, task, status, error, seconds, host, finished, then
    config.<k> and metrics.<k> for every key that occurs (sorted); lists and objects are JSON-encoded in
    their cell, booleans are true/false, null and missing keys are empty cells.

    Example:
        >>> import pathlib, tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = pathlib.Path(tmp) / "runs.db"
        ...     with Store(path) as db:
        ...         db.record("k1", "scan", "phase-point", {"x": 1, "dims": [4, 8]}, {"x2": 1}, "done", None, 0.2, "h")
        ...     rows = list(csv.DictReader(io.StringIO(export(path, "csv", sweep="scan"))))
        ...     as_json = json.loads(export(path, "json"))
        >>> rows[0]["config.dims"], rows[0]["metrics.x2"], as_json[0]["config"]
        ('[4, 8]', '1', {'dims': [4, 8], 'x': 1})
    """
    if fmt not in ("json", "csv"):
        raise InputError(f"format: expected json or csv, got {fmt!r}")
    with Store(path, create=False) as db:
        rows = db.rows(sweep=sweep)
    if fmt == "json":
        return json.dumps(rows, indent=1)
    ckeys = sorted({k for r in rows for k in r["config"]})
    mkeys = sorted({k for r in rows for k in (r["metrics"] or {})})
    head = ["key", "sweep", "task", "status", "error", "seconds", "host", "finished"]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(head + [f"config.{k}" for k in ckeys] + [f"metrics.{k}" for k in mkeys])
    for r in rows:
        m = r["metrics"] or {}
        w.writerow([_cell(r[h]) for h in head] + [_cell(r["config"].get(k)) for k in ckeys]
                   + [_cell(m.get(k)) for k in mkeys])
    return buf.getvalue()
