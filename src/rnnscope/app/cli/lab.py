"""The training-lab commands: `rnnscope tasks sample` (a seeded batch of a long-memory task), `train` (one run with
Pascanu's remedies) and `study` (a training study as a resumable sweep, its table and figure).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated

import torch
import typer

from ...core.errors import InputError
from .entry import app
from ...lab.criteria import CRITERION_NAMES
from .options import (DbOpt, HiddenOpt, JsonOpt, QuietOpt, RetryOpt, SchedulerOpt, SeedOpt, WorkersOpt, cell_options,
                      choice, finite_float, nonnegative_float, nonnegative_int, path, positive_int, progress_enabled)
from .output import check_configs, console, echo_json, exit_if_failed, exit_if_interrupted, fmt, spread

__all__ = ["tasks_app", "tasks_sample", "train", "study"]


# ----------------------------------------------------------------------------- tasks

tasks_app = typer.Typer(help="The long-memory tasks of the literature (adding, multiplication, temporal order, "
                             "permutation, memorization, copy).", no_args_is_help=True)
app.add_typer(tasks_app, name="tasks")


@tasks_app.command("sample", help="Write a seeded batch of a task to FILE.npz: x (N, T, D), y, mask.")
def tasks_sample(
    task: Annotated[str, typer.Option(metavar="NAME", help="adding-hs97, adding-pascanu, adding-le, multiplication, "
                                      "temporal-order, temporal-order-3bit, permutation, memorization (Pascanu's: "
                                      "6 classes, loss at every step), memorization-recall (5 classes, loss at the "
                                      "recall), copy, delayed-xor, delayed-copy (Engelken 2023: L is the delay).")],
    length: Annotated[int, typer.Option(parser=positive_int, metavar="L", help="The nominal length L.")],
    out: Annotated[Path, typer.Option(parser=path, metavar="FILE.npz", help="Where to write x, y, mask.")],
    n: Annotated[int, typer.Option("--n", parser=positive_int, metavar="N", help="Sequences.")] = 16,
    seed: SeedOpt = 0,
    as_json: JsonOpt = False,
) -> None:
    from ...lab.tasks import get_task
    t = get_task(task)
    if out.suffix != ".npz":
        raise InputError(f"out: expected a file name ending in .npz, got {str(out)!r}")
    if not (out.parent if str(out.parent) else Path(".")).is_dir():
        raise InputError(f"out: expected an existing folder for {str(out)!r}, got {str(out.parent)!r} (no such folder)")
    from ...core.budget import check_batch_memory
    check_batch_memory(n, length + length // 10 + 20, t.input_size, t.output_size)  # T' <= L + L/10 + 20 (any task)
    batch = t.sample(n, length, torch.Generator().manual_seed(seed))
    try:
        batch.save(out)
    except OSError as e:
        raise InputError(f"out: expected a writable file, got {str(out)!r} ({type(e).__name__}: {e})") from None
    d = {"task": t.to_dict(), "file": str(out), "x": list(batch.x.shape), "y": list(batch.y.shape),
         "mask": list(batch.mask.shape), "masked_steps": int(batch.mask.sum()), "baseline_loss": t.baseline_loss(length),
         "seed": seed}
    if as_json:
        echo_json(d)
    else:
        console().print(f"{t.name}: {n} sequences of {batch.length} steps (nominal L = {length}) written to {out}: "
                        f"x {tuple(batch.x.shape)}, y {tuple(batch.y.shape)}, mask {tuple(batch.mask.shape)}; "
                        f"memoryless baseline loss {t.baseline_loss(length):.4g}")


# ----------------------------------------------------------------------------- train

def _length_range(text: str | None) -> tuple[int, int] | None:
    """--length-range MIN:MAX as (MIN, MAX), or None."""
    if text is None:
        return None
    parts = text.split(":")
    try:
        lo, hi = (int(p) for p in parts) if len(parts) == 2 else (0, -1)
    except ValueError:
        lo, hi = 0, -1
    if not 1 <= lo <= hi:
        raise InputError(f"--length-range: expected MIN:MAX, two integers with 1 <= MIN <= MAX, got {text!r}")
    return lo, hi


@app.command(help="Train an RNN on a long-memory task with Pascanu's remedies (norm/value/adaptive clipping, the "
                  "Omega regularizer, the inits); evaluations with the task's success criterion and gradient-flow "
                  "snapshots every --eval-every steps; early stop on success; TensorBoard and the results store.")
def train(
    task: Annotated[str, typer.Option(metavar="NAME", help="A task of rnnscope tasks (e.g. adding-pascanu, copy).")],
    length: Annotated[int | None, typer.Option(parser=positive_int, metavar="L",
                                               help="The task's nominal length (with --length-range: its MAX).")] = None,
    cell: Annotated[str, typer.Option(metavar="KIND", help="elman, pal, lstm or gru; or a modern kind: lru, mingru, "
                                      "minlstm, mamba, slstm, indrnn, cornn, exprnn (its paper's init).")] = "elman",
    activation: Annotated[str, typer.Option(metavar="PHI", help="tanh, sigmoid or relu (elman, pal).")] = "tanh",
    hidden: HiddenOpt = 50,
    init: Annotated[str, typer.Option(metavar="INIT", help="default, sigmoid, basic-tanh, smart-tanh, normal, "
                                      "orthogonal, identity.")] = "default",
    optimizer: Annotated[str, typer.Option(metavar="OPT", help="sgd, momentum, rmsprop or adam.")] = "sgd",
    lr: Annotated[float, typer.Option(parser=finite_float, metavar="X", help="Learning rate.")] = 0.01,
    batch: Annotated[int, typer.Option(parser=positive_int, metavar="B", help="Sequences per update.")] = 20,
    steps: Annotated[int, typer.Option(parser=positive_int, metavar="N", help="Updates at most.")] = 10_000,
    clip_norm: Annotated[float | None, typer.Option("--clip-norm", parser=nonnegative_float, metavar="C",
                                                    help="Pascanu's norm clipping at C (with the NaN/Inf fallback).")] = None,
    clip_value: Annotated[float | None, typer.Option("--clip-value", parser=nonnegative_float, metavar="C",
                                                     help="Element-wise clipping at +-C.")] = None,
    clip_adaptive: Annotated[float | None, typer.Option("--clip-adaptive", parser=nonnegative_float, metavar="X",
                                                        help="Clip at X times the running mean gradient norm.")] = None,
    regularizer_alpha: Annotated[float, typer.Option("--regularizer-alpha", parser=nonnegative_float, metavar="A",
                                                     help="Pascanu's Omega regularizer weight (elman, pal).")] = 0.0,
    seed: SeedOpt = 0,
    eval_every: Annotated[int, typer.Option("--eval-every", parser=positive_int, metavar="N")] = 100,
    eval_size: Annotated[int | None, typer.Option("--eval-size", parser=positive_int, metavar="N",
                                                  help="Fresh sequences per evaluation (default: the criterion's, "
                                                       "1,000 lenient, 10,000 pascanu).")] = None,
    length_range: Annotated[str | None, typer.Option("--length-range", metavar="MIN:MAX",
                                                     help="Draw the nominal length L ~ U{MIN..MAX} per batch, for "
                                                          "training and evaluation (Pascanu's code: 50:199).")] = None,
    criterion: Annotated[str, typer.Option("--criterion", parser=choice(CRITERION_NAMES), metavar="NAME",
                                           help="Success: lenient (error rate < 1% of the evaluation's sequences) or "
                                                "pascanu (zero errors in >= 10,000, Pascanu's code).")] = "lenient",
    flossing_k: Annotated[int, typer.Option("--flossing-k", parser=nonnegative_int, metavar="K",
                                            help="Gradient flossing (Engelken 2023): push the top K Lyapunov exponents "
                                                 "towards 0; K alone records them at every evaluation. 0 = off.")] = 0,
    flossing_alpha: Annotated[float, typer.Option("--flossing-alpha", parser=nonnegative_float, metavar="A",
                                                  help="Flossing throughout: add A sum_i lambda_i^2 to every update's "
                                                       "loss (needs --flossing-k).")] = 0.0,
    flossing_steps: Annotated[int, typer.Option("--flossing-steps", parser=nonnegative_int, metavar="N",
                                                help="Pre-flossing: N updates of mean_i lambda_i^2 (AdamW, lr 1e-3) before "
                                                     "training; also the updates of each interflossing session.")] = 0,
    flossing_every: Annotated[int, typer.Option("--flossing-every", parser=nonnegative_int, metavar="M",
                                                help="Interflossing: --flossing-steps flossing updates every M training "
                                                     "updates. 0 = pre-flossing only.")] = 0,
    cell_option: Annotated[list[str] | None, typer.Option(
        "--cell-option", metavar="KEY=VALUE",
        help="A modern cell's own option, repeatable: lru r_min, r_max (the ring init), max_phase; mamba dt_min, "
             "dt_max; slstm heads, forget; indrnn u_max, activation; cornn dt, gamma, epsilon; exprnn skew_init, "
             "activation.")] = None,
    log_dir: Annotated[Path | None, typer.Option("--log-dir", parser=path, metavar="DIR",
                                                 help="TensorBoard logs.")] = None,
    db: Annotated[Path | None, typer.Option("--db", parser=path, metavar="FILE", help="Record the run in this store.")] = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    from ...lab.train import TrainConfig, train as run_train
    cfg = TrainConfig(task=task, length=length, cell=cell, activation=activation, hidden=hidden, init=init,
                      optimizer=optimizer, lr=lr, batch=batch, steps=steps, clip_norm=clip_norm, clip_value=clip_value,
                      clip_adaptive=clip_adaptive, regularizer_alpha=regularizer_alpha, seed=seed,
                      eval_every=eval_every, eval_size=eval_size, length_range=_length_range(length_range),
                      criterion=criterion, flossing_k=flossing_k, flossing_alpha=flossing_alpha,
                      flossing_steps=flossing_steps, flossing_every=flossing_every,
                      cell_options=cell_options(cell_option))
    from ...lab.tasks import get_task
    get_task(task)  # the name, checked before anything is opened
    writer = store = None
    try:
        if log_dir is not None:
            if log_dir.exists() and not log_dir.is_dir():
                raise InputError(f"log-dir: expected a folder, got {str(log_dir)!r} (a file)")
            from torch.utils.tensorboard import SummaryWriter
            writer = SummaryWriter(str(log_dir))
        if db is not None:
            from ...runs.store import Store
            store = Store(db)
        from ...core.threads import SMALL_STATE, torch_threads
        with torch_threads(1) if hidden <= SMALL_STATE else contextlib.nullcontext():  # small nets: one thread
            result = run_train(cfg, progress=progress_enabled(quiet), writer=writer, store=store)
    finally:
        if writer is not None:
            writer.close()
        if store is not None:
            store.close()
    d = result.to_dict()
    if as_json:
        echo_json(d)
        return
    from rich.table import Table
    con = console()
    con.print(f"[bold]rnnscope train[/bold]: {task} L = {cfg.length_label()}, {cell} ({activation}), H = {hidden}, "
              f"{optimizer} lr {lr:g}, clip {cfg.clip() or 'off'}, alpha {regularizer_alpha:g}, success "
              f"{d['criterion']['name']} ({d['criterion']['rule']}): [bold]{d['status']}[/bold] after "
              f"{d['steps']} steps ({d['seconds']:.1f} s); final loss {fmt(d['final_loss'])} (baseline "
              f"{fmt(d['baseline_loss'])}), error rate {fmt(d['final_error_rate'])}")
    fl = d.get("flossing")
    if fl and fl.get("pre_before"):
        con.print(f"flossing ({', '.join(fl['phases']) or 'measure only'}, k = {fl['k']}): lambda_1 "
                  f"{fmt(fl['pre_before'][0])} -> {fmt(fl['pre_after'][0])} after pre-flossing; {fl['updates']} "
                  f"flossing updates")
    for rec in d["history"]:
        if rec.get("lyapunov"):
            rec["lambda_1"] = rec["lyapunov"][0]
    tab = Table(title="evaluations")
    keys = [k for k in ("step", "loss", "error_rate", "grad_norm", "clipped", "lambda_1")
            if d["history"] and k in d["history"][0]]
    for k in keys:
        tab.add_column(k, justify="right")
    for rec in [d["history"][i] for i in spread(list(range(len(d["history"]))), 12)]:
        tab.add_row(*[fmt(rec.get(k)) if not isinstance(rec.get(k), (bool, int)) else str(rec.get(k)) for k in keys])
    con.print(tab)


# ----------------------------------------------------------------------------- study

@app.command(help="Run a training study (pascanu: SGD vs SGD-C vs SGD-CR; cells: Elman vs LSTM vs GRU; modern: the "
                  "classics vs LRU, minGRU, sLSTM and a flossed Elman, on adding, copy and real text) as a resumable "
                  "sweep; print its table and write its figure (success rate or loss / baseline against length).")
def study(
    name: Annotated[str, typer.Argument(metavar="NAME", help="pascanu, cells, modern, or a study .toml file.")],
    db: DbOpt = Path("rnnscope-results.sqlite"),
    workers: WorkersOpt = None,
    scheduler: SchedulerOpt = None,
    retry_failed: RetryOpt = False,
    quick: Annotated[bool, typer.Option("--quick", help="The short version (as in make demo).")] = False,
    faithful: Annotated[bool, typer.Option("--faithful", help="The source's own setup, the study's [faithful] section "
                                           "(pascanu: L ~ U{50..199}, zero errors in 10,000; hours per run).")] = False,
    plot: Annotated[Path | None, typer.Option(parser=path, metavar="FILE",
                                              help="The figure; default study-NAME.png beside --db.")] = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    from ...core.plots import check_plot_path
    from ...lab.studies import load_study, plot_study, study_spec, study_table, study_title
    from ...runs.store import spec_rows
    from ...runs.runner import run_sweep
    if quick and faithful:
        raise InputError("study: expected --quick or --faithful, got both")
    version = "faithful" if faithful else "quick" if quick else "full"
    s = load_study(name)
    if plot is None:
        plot = db.with_name(f"study-{s.name}{'' if version == 'full' else '-' + version}.png")
    check_plot_path(plot)
    spec = study_spec(s, version=version)
    check_configs(spec)
    report = run_sweep(spec, db, workers=workers, scheduler=scheduler, retry_failed=retry_failed,
                       progress=progress_enabled(quiet))
    exit_if_interrupted(report, db)
    rows = spec_rows(db, spec)
    table = study_table(rows)
    title = study_title(s, rows, version)
    plot_study(table, plot, measure=s.measure, title=title)
    out = {"study": s.name, "quick": quick, "version": version, "title": title,
           "criterion": sorted({r.criterion for r in table}), "sweep": report.to_dict(), "db": str(db),
           "plot": str(plot), "table": [r.to_dict() for r in table]}
    if as_json:
        echo_json(out)
        exit_if_failed(report, db)
        return
    from rich.table import Table
    con = console()
    tab = Table(title=title)
    for col in ("task", "method", "length", "runs", "solved", "success rate", "loss / baseline", "mean steps"):
        tab.add_column(col, justify="left" if col in ("task", "method") else "right")
    for r in table:
        tab.add_row(r.task, r.method, r.length_label, str(r.runs), str(r.solved), f"{r.success_rate:.2f}",
                    fmt(r.mean_loss_over_baseline, ".3f"), fmt(r.mean_steps, ".0f"))
    con.print(tab)
    con.print(f"{report.done} runs now, {report.skipped} already in {db}, {report.failed} failed; figure: {plot}")
    exit_if_failed(report, db)
