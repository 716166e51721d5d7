"""The seed-document commands: `rnnscope claims` (every claim of the seeds run as an experiment and judged) and
`reproduce` (a seed's figures as the source computes them and correctly).

Example:
    >>> evidence_summary({"rate": 0.123456, "ok": True, "fit": {"slope": -1.5}, "counterexample": {"x": 1}})
    'rate=0.123, fit.slope=-1.5'
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from ...core.errors import InputError
from ...core.results import jsonable
from .entry import app
from .options import path
from .output import console, fmt

__all__ = ["claims", "reproduce", "evidence_summary"]

_VERDICT_STYLE = {"holds": "green", "holds-with-correction": "yellow", "refuted": "bold red"}


def evidence_summary(ev: dict, n: int = 4) -> str:
    """A few of the evidence's scalar numbers, 'key=value', nested keys dotted; the counterexample left out."""
    items: list[str] = []

    def walk(d: dict, prefix: str) -> None:
        for k, v in d.items():
            if len(items) >= n or k == "counterexample":
                continue
            if isinstance(v, dict):
                walk(v, f"{prefix}{k}.")
            elif isinstance(v, bool) or not isinstance(v, (int, float)):
                continue
            else:
                items.append(f"{prefix}{k}={fmt(v, '.3g')}")
    walk(ev, "")
    return ", ".join(items)


@app.command(help="Run every claim of the seed documents as an experiment and judge it: holds, "
                  "holds-with-correction or refuted, with the numbers measured (and a counterexample for "
                  "every refutation).")
def claims(
    only: Annotated[list[str] | None, typer.Option("--only", metavar="ID[,ID...]",
                                                   help="Run only these claims (repeat or comma-separate).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list of the claims' results.")] = False,
) -> None:
    from ...seeds.claims import run_claims
    ids = None if not only else [i.strip() for v in only for i in v.split(",") if i.strip()]
    if only and not ids:
        raise InputError("--only: expected claim ids (see rnnscope claims), got an empty value")
    results = run_claims(ids)
    if as_json:
        sys.stdout.write(json.dumps([r.to_dict() for r in results], allow_nan=False) + "\n")
        sys.stdout.flush()
        return
    from rich.table import Table
    con = console()
    tab = Table(title="The seeds' claims, run as experiments", show_lines=True)
    for col, kw in (("id", dict(no_wrap=True)), ("seed", dict(no_wrap=True)), ("statement", dict(ratio=3)),
                    ("verdict", dict(no_wrap=True)), ("evidence", dict(ratio=2)), ("s", dict(justify="right"))):
        tab.add_column(col, overflow="fold", **kw)
    for r in results:
        ev = evidence_summary(r.evidence)
        if "counterexample" in r.evidence:
            ev += "; counterexample in --json"
        tab.add_row(r.id, r.seed[:3], r.statement, f"[{_VERDICT_STYLE[r.verdict]}]{r.verdict}[/]", ev, f"{r.seconds:.2f}")
    con.print(tab)
    counts = {v: sum(r.verdict == v for r in results) for v in _VERDICT_STYLE}
    con.print(", ".join(f"{n} {v}" for v, n in counts.items()) + f" of {len(results)} claims; corrections and "
              f"counterexamples: rnnscope claims --json (or the report of rnnscope demo)")


@app.command(help="Reproduce a seed's figures as the source computes them and correctly: PNG, SVG and a "
                  "caption file per figure in DIR. SEED: 000, 001, 002, 003 (or a seed file name), or all.")
def reproduce(
    seed: Annotated[str, typer.Argument(metavar="SEED", help="000, 001, 002, 003, a seed file name, or all.")],
    out: Annotated[Path, typer.Option(parser=path, metavar="DIR", help="Folder for the figures.")]
    = Path("rnnscope-report"),
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list of the figures written.")] = False,
) -> None:
    from ...seeds.reproduce import reproduce as run_reproduce
    figs = run_reproduce(seed, out)
    if as_json:
        sys.stdout.write(json.dumps([jsonable(f.to_dict()) for f in figs], allow_nan=False) + "\n")
        sys.stdout.flush()
        return
    from rich.table import Table
    con = console()
    tab = Table(title=f"Reproductions written to {out}/")
    for col in ("seed", "figure", "files", "title"):
        tab.add_column(col, overflow="fold", no_wrap=col in ("seed", "figure"))
    for f in figs:
        tab.add_row(f.seed[:3], f.name, f"{f.png}, {f.svg}, {f.caption_file}", f.title)
    con.print(tab)
