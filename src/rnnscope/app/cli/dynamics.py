"""The dynamics and sweep commands: `rnnscope meanfield` (alias `theory`: mean-field theory of random vanilla RNNs),
`phase` (the measured phase diagram against it, as a resumable sweep), `sweep` (any sweep spec into the results
store) and `results` (the store exported as JSON or CSV).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from ...core.errors import InputError
from .entry import app
from .options import (ActivationOpt, DbOpt, HiddenOpt, JsonOpt, RetryOpt, SchedulerOpt, WorkersOpt, finite_float,
                      nonnegative_float, path, positive_int)
from .output import console, echo_json, exit_if_interrupted, fmt, spread

__all__ = ["meanfield", "phase", "sweep", "results"]


# ----------------------------------------------------------------------------- meanfield (theory)

_MEANFIELD_HELP = ("Mean-field theory of random vanilla RNNs (W ~ N(0, sigma_w^2/S), b ~ N(0, sigma_b^2)): q*, "
                   "chi_1, the depth scale xi, the critical sigma_w^2 (chi_1 = 1) at this sigma_b^2, and the "
                   "predicted per-step gradient log-growth 0.5 ln chi_1, by Gauss-Hermite quadrature.")


def meanfield(
    ctx: typer.Context,
    sigma_w: Annotated[float, typer.Option("--sigma-w", parser=finite_float, metavar="X",
                                           help="Standard deviation of W_ij times sqrt(S).")] = 1.0,
    sigma_b: Annotated[float, typer.Option("--sigma-b", parser=nonnegative_float, metavar="Y",
                                           help="Standard deviation of the biases.")] = 0.0,
    activation: ActivationOpt = "tanh",
    as_json: JsonOpt = False,
) -> None:
    from ...dynamics.meanfield import mean_field
    mf = mean_field(sigma_w, sigma_b, activation)
    if as_json:
        echo_json(mf.to_dict())
        return
    con = console()
    con.print(f"[bold]rnnscope {ctx.info_name}[/bold]: random {activation} RNN, sigma_w = {sigma_w:g}, "
              f"sigma_b = {sigma_b:g}")
    for name, v, what in (("q*", mf.q_star, "fixed point of the pre-activation variance"),
                          ("chi_1", mf.chi1, "sigma_w^2 E[phi'(sqrt(q*) z)^2]"),
                          ("0.5 ln chi_1", mf.predicted_rate_per_step, "predicted gradient log-growth per step"),
                          ("xi", mf.xi, "depth scale -1/ln chi_1 (steps)"),
                          ("critical sigma_w^2", mf.critical_sigma_w2, f"chi_1 = 1 at sigma_b^2 = {sigma_b ** 2:g}")):
        con.print(f"  {name:>18s} = {fmt(v, '.6g'):>12s}   {what}")
    phase = "chaotic (gradients grow)" if mf.chi1 > 1 else "ordered (gradients vanish)" if mf.chi1 < 1 else "critical"
    con.print(f"  phase: {phase}")


app.command("meanfield", help=_MEANFIELD_HELP)(meanfield)
app.command("theory", help="Alias of meanfield, its former name. " + _MEANFIELD_HELP)(meanfield)


# ----------------------------------------------------------------------------- phase

@app.command(help="Phase diagram of random vanilla RNNs: on a (sigma_w, sigma_b) grid, the measured per-step "
                  "gradient log-growth and maximal Lyapunov exponent next to mean-field theory; a heatmap with "
                  "the theoretical critical line over the measured zero crossing. Runs as a resumable sweep "
                  "(results in --db; re-running skips finished points).")
def phase(
    sigma_w: Annotated[str, typer.Option("--sigma-w", metavar="START:STOP:COUNT",
                                         help="sigma_w values: a range or a comma-separated list.")] = "0.5:3:40",
    sigma_b: Annotated[str, typer.Option("--sigma-b", metavar="START:STOP:COUNT",
                                         help="sigma_b values: a range or a comma-separated list.")] = "0:1:40",
    hidden: HiddenOpt = 64,
    length: Annotated[int, typer.Option(parser=positive_int, metavar="T",
                                        help="Steps per network (the first half is discarded).")] = 200,
    seeds: Annotated[int, typer.Option(parser=positive_int, metavar="K", help="Random networks per point.")] = 1,
    activation: ActivationOpt = "tanh",
    spec: Annotated[Path | None, typer.Option(parser=path, metavar="FILE.toml",
                                              help="A sweep spec (task phase-point) instead of the options above.")] = None,
    db: DbOpt = Path("rnnscope-results.sqlite"),
    workers: WorkersOpt = None,
    scheduler: SchedulerOpt = None,
    retry_failed: RetryOpt = False,
    plot: Annotated[Path | None, typer.Option(parser=path, metavar="FILE",
                                              help="The heatmap (.png, .svg, .pdf); default phase.png beside --db.")] = None,
    as_json: JsonOpt = False,
) -> None:
    from ...core.plots import check_plot_path
    from ...dynamics.phase import PHASE_TASK, critical_line, phase_configs, phase_table, plot_phase
    from ...runs.store import spec_rows
    from ...runs.runner import run_sweep
    from ...runs.spec import SweepSpec, load_spec, parse_range
    if plot is None:
        plot = db.with_name("phase.png") if db.suffix else Path("phase.png")
    check_plot_path(plot)
    if spec is not None:
        sw = load_spec(spec)
        if sw.task != PHASE_TASK:
            raise InputError(f"spec: expected task = {PHASE_TASK!r} for a phase diagram, got {sw.task!r}")
    else:
        try:
            w_vals, b_vals = parse_range(sigma_w), parse_range(sigma_b)
        except InputError as e:
            raise InputError(f"--sigma-w/--sigma-b: {e}") from None
        grid, fixed = phase_configs(w_vals, b_vals, hidden=hidden, length=length, seeds=seeds, activation=activation)
        sw = SweepSpec("phase", PHASE_TASK, grid, fixed)
    act = sw.fixed.get("activation", "tanh")
    report = run_sweep(sw, db, workers=workers, scheduler=scheduler, retry_failed=retry_failed, progress=not as_json)
    exit_if_interrupted(report, db)
    table = phase_table(spec_rows(db, sw))
    if not table:
        raise InputError(f"phase: expected finished grid points in {str(db)!r}, got none "
                         f"({report.failed} failed: rnnscope results --db {db})")
    comparison = critical_line(table, act)
    fig_ok = len({r.sigma_w for r in table}) >= 2 and len({r.sigma_b for r in table}) >= 2
    if fig_ok:
        plot_phase(table, plot, activation=act)
    out = {"sweep": report.to_dict(), "db": str(db), "plot": str(plot) if fig_ok else None,
           "points": [r.to_dict() for r in table], "critical_line": comparison}
    if as_json:
        echo_json(out)
        return
    from rich.table import Table
    con = console()
    r = report
    con.print(f"[bold]rnnscope phase[/bold]: {len(table)} grid points in {db} ({r.done} run now, {r.skipped} already "
              f"there, {r.failed} failed; {r.seconds:.1f} s)")
    tab = Table(title="edge of chaos: where the measured gradient rate crosses 0, against mean field (chi_1 = 1)")
    for col in ("sigma_b", "gradient rate = 0 at sigma_w", "Lyapunov = 0 at sigma_w", "theory sigma_w", "difference"):
        tab.add_column(col, justify="right")
    for c in [comparison[i] for i in spread(list(range(len(comparison))), 12)]:
        tab.add_row(f"{c['sigma_b']:.3g}", f"{c['measured_sigma_w']:.4g}", fmt(c["lyapunov_sigma_w"]),
                    f"{c['theory_sigma_w']:.4g}", f"{c['measured_sigma_w'] - c['theory_sigma_w']:+.3f}")
    con.print(tab)
    if fig_ok:
        con.print(f"heatmap: {plot}; every point: rnnscope results --db {db} --csv")


# ----------------------------------------------------------------------------- sweep, results

@app.command(help="Run any sweep spec (TOML: name, task, [grid], [fixed]) into the results store; resumable.")
def sweep(
    spec: Annotated[Path, typer.Argument(parser=path, metavar="SPEC.toml", help="The sweep spec.")],
    db: DbOpt = Path("rnnscope-results.sqlite"),
    workers: WorkersOpt = None,
    scheduler: SchedulerOpt = None,
    retry_failed: RetryOpt = False,
    as_json: JsonOpt = False,
) -> None:
    from ...runs.runner import run_sweep
    from ...runs.spec import load_spec
    report = run_sweep(load_spec(spec), db, workers=workers, scheduler=scheduler, retry_failed=retry_failed,
                       progress=not as_json)
    exit_if_interrupted(report, db)
    if as_json:
        echo_json(report.to_dict())
    else:
        d = report.to_dict()
        console().print(f"sweep {d['sweep']!r}: {d['total']} configs, {d['done']} run now, {d['skipped']} already "
                        f"finished, {d['failed']} failed, {d['remaining']} remaining ({d['seconds']:.1f} s); "
                        f"rows in {db}")


@app.command(help="Export the results store: every run with its config, metrics, status, error, seconds, host.")
def results(
    db: Annotated[Path, typer.Option("--db", parser=path, metavar="FILE", help="The SQLite results store.")],
    as_json: Annotated[bool, typer.Option("--json", help="A JSON list of runs (the default).")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV, one row per run, config.* and metrics.* columns.")] = False,
    sweep_name: Annotated[str | None, typer.Option("--sweep", metavar="NAME", help="Only this sweep's runs.")] = None,
) -> None:
    from ...runs.store import export
    if as_json and as_csv:
        raise InputError("format: expected one of --json or --csv, got both")
    if not db.exists():
        raise InputError(f"db: expected an existing results file, got {str(db)!r} (no such file)")
    text = export(db, "csv" if as_csv else "json", sweep=sweep_name)
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()
