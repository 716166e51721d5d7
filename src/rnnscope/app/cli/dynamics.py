"""The dynamics and sweep commands: `rnnscope meanfield` (alias `theory`: mean-field theory of random vanilla RNNs),
`phase` (the measured phase diagram against it, as a resumable sweep), `memory` (the curse of memory: the state's
parameter sensitivity as the memory lengthens, Monte Carlo against closed forms), `sweep` (any sweep spec into the
results store) and `results` (the store exported as JSON or CSV).

Example:
    >>> lambdas("0.5, 0.9"), rho("-0.5")
    ((0.5, 0.9), -0.5)
    >>> lambdas("0.5,1")
    Traceback (most recent call last):
    ...
    ValueError: expected a comma-separated list of numbers in (0, 1), got '1' in '0.5,1'
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Annotated

import typer

from ...core.errors import InputError
from .entry import app
from .options import (ActivationOpt, DbOpt, HiddenOpt, JsonOpt, QuietOpt, RetryOpt, SchedulerOpt, WorkersOpt,
                      finite_float, nonnegative_float, path, positive_float, positive_int, progress_enabled, seed)
from .output import check_configs, console, echo_json, exit_if_failed, exit_if_interrupted, fmt, spread

__all__ = ["meanfield", "phase", "memory", "sweep", "results", "lambdas", "rho"]


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
                          ("xi", mf.xi, "depth scale -1/ln chi_1 (steps): the squared gradient norm shrinks by e "
                           "every xi steps" if mf.xi is None or mf.xi >= 0 else
                           f"-1/ln chi_1 < 0 in the chaotic phase: its size {-mf.xi:.6g} is the divergence scale, the "
                           f"squared gradient norm grows by e every {-mf.xi:.4g} steps"),
                          ("critical sigma_w^2", mf.critical_sigma_w2, f"chi_1 = 1 at sigma_b^2 = {sigma_b ** 2:g}")):
        con.print(f"  {name:>18s} = {fmt(v, '.6g'):>12s}   {what}", markup=False)  # E[...] is not a markup tag
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
    quiet: QuietOpt = False,
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
    check_configs(sw)
    report = run_sweep(sw, db, workers=workers, scheduler=scheduler, retry_failed=retry_failed,
                       progress=progress_enabled(quiet))
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
        exit_if_failed(report, db)
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
    exit_if_failed(report, db)


# ----------------------------------------------------------------------------- memory

def lambdas(v: object) -> tuple[float, ...]:
    """--lambdas: a comma-separated list of numbers in (0, 1)."""
    text = str(v)
    out = []
    for item in text.split(","):
        try:
            f = float(item.strip())
        except ValueError:
            f = math.nan
        if not 0 < f < 1:  # NaN fails too
            what = f"{item.strip()!r}" if item.strip() else "an empty entry"
            raise ValueError(f"expected a comma-separated list of numbers in (0, 1), got {what} in {text!r}")
        out.append(f)
    return tuple(out)


def rho(v: object) -> float:
    """--rho: an autocorrelation, |rho| < 1."""
    f = finite_float(v)
    if not abs(f) < 1:
        raise ValueError(f"expected an input autocorrelation with |rho| < 1, got {f:g}")
    return f


def _at_least_two(v: object) -> int:
    i = positive_int(v)
    if i < 2:
        raise ValueError(f"expected an integer >= 2 (a standard error needs two), got {i}")
    return i


@app.command(help="The curse of memory (Zucchet & Orvieto 2024): for h_t = lambda h_{t-1} + gamma x_t as lambda -> 1, "
                  "E(h^2) and the parameter sensitivity E((dh/dp)^2) by Monte Carlo against their closed forms: plain, "
                  "normalised (gamma = sqrt(1 - lambda^2)), exponential (lambda = exp(-exp nu)), complex, LRU (nu and "
                  "theta), and a dense tanh RNN for contrast.")
def memory(
    lambda_values: Annotated[str, typer.Option(
        "--lambdas", parser=lambdas, metavar="L1,L2,...",
        help="Eigenvalue magnitudes in (0, 1) (r for the complex cases, the scale g for tanh).")
    ] = "0.5,0.9,0.99,0.999",
    input_rho: Annotated[float, typer.Option("--rho", parser=rho, metavar="RHO",
                                             help="Autocorrelation of the AR(1) inputs, |rho| < 1.")] = 0.0,
    sequences: Annotated[int, typer.Option(parser=_at_least_two, metavar="N",
                                           help="Independent sequences per lambda.")] = 10000,
    seed_value: Annotated[int, typer.Option("--seed", parser=seed, metavar="N", help="Seed of the inputs.")] = 0,
    theta: Annotated[float, typer.Option(parser=finite_float, metavar="THETA",
                                         help="Angle of the complex eigenvalue (radians).")] = math.pi / 4,
    burn_in: Annotated[float, typer.Option("--burn-in", parser=positive_float, metavar="X",
                                           help="Steps per sequence, in units of the memory 1/(1 - lambda).")] = 8.0,
    plot: Annotated[Path | None, typer.Option(parser=path, metavar="FILE.png",
                                              help="The log-log figure (.png, .svg, .pdf).")] = None,
    as_json: JsonOpt = False,
) -> None:
    from ...core.plots import check_plot_path
    from ...dynamics.memory import TOLERANCE_SE, memory_sensitivity, plot_memory
    if plot is not None:
        check_plot_path(plot)
    m = memory_sensitivity(lambda_values, rho=input_rho, sequences=sequences, seed=seed_value, theta=theta,
                           burn_in=burn_in)
    if plot is not None:
        plot_memory(m, plot)
    if as_json:
        echo_json({**m.to_dict(), "plot": str(plot) if plot is not None else None})
        return
    from rich.markup import escape
    from rich.table import Table
    con = console()
    con.print(f"[bold]rnnscope memory[/bold]: h_t = lambda h_(t-1) + gamma x_t, AR(1) inputs rho = {m.rho:g}; "
              f"{m.sequences} sequences per lambda, {m.burn_in:g}/(1 - lambda) steps each; theta = {m.theta:.4g}; "
              f"tanh: {m.tanh_sequences} sequences x {m.hidden} units ({m.seconds:.1f} s)")
    rows = m.table()
    tab = Table(title="steady state: Monte Carlo ± standard error against the closed form")
    for i, col in enumerate(rows[0]):
        tab.add_column(escape(col), justify="left" if i < 2 else "right")
    for i, r in enumerate(rows[1:]):
        if i and r[2] != rows[i][2]:
            tab.add_section()
        tab.add_row(*map(escape, r))
    con.print(tab)
    slopes = Table(title="growth exponents: log-log slope in 1/(1 - lambda) over the largest lambdas")
    for i, col in enumerate(("case", "param", "E[h^2] MC", "closed", "E[(dh/dp)^2] MC", "closed")):
        slopes.add_column(escape(col), justify="left" if i < 2 else "right")
    for key, v in m.slopes().items():
        slopes.add_row(*key.split("/"), *(fmt(v[f], ".2f") for f in ("h2_mc", "h2_closed", "sens_mc", "sens_closed")))
    con.print(slopes)
    bad = [r for r in m.rows if r.agree is False]
    judged = [r for r in m.rows if r.agree is not None]
    con.print(f"{len(judged) - len(bad)} of {len(judged)} linear rows agree within {TOLERANCE_SE:g} standard errors"
              + (": disagreeing " + ", ".join(f"{r.case}/{r.param} at {r.lam:g}" for r in bad) if bad else ""))
    if plot is not None:
        con.print(f"figure: {plot}")


# ----------------------------------------------------------------------------- sweep, results

@app.command(help="Run any sweep spec (a TOML file: name, task, and the tables grid and fixed) into the results "
                  "store; resumable.")
def sweep(
    spec: Annotated[Path, typer.Argument(parser=path, metavar="SPEC.toml", help="The sweep spec.")],
    db: DbOpt = Path("rnnscope-results.sqlite"),
    workers: WorkersOpt = None,
    scheduler: SchedulerOpt = None,
    retry_failed: RetryOpt = False,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    from ...runs.runner import run_sweep
    from ...runs.spec import load_spec
    sw = load_spec(spec)
    check_configs(sw)
    report = run_sweep(sw, db, workers=workers, scheduler=scheduler, retry_failed=retry_failed,
                       progress=progress_enabled(quiet))
    exit_if_interrupted(report, db)
    if as_json:
        echo_json(report.to_dict())
    else:
        d = report.to_dict()
        console().print(f"sweep {d['sweep']!r}: {d['total']} configs, {d['done']} run now, {d['skipped']} already "
                        f"finished, {d['failed']} failed, {d['remaining']} remaining ({d['seconds']:.1f} s); "
                        f"rows in {db}")
    exit_if_failed(report, db)


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
