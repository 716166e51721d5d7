"""The gradient commands: `rnnscope profile` (the Jacobian-product profile against the bound), `bptt` (hand-derived
BPTT with per-step contributions) and `lyapunov` (the QR spectrum along a trajectory).

Example:
    >>> distances(100)
    [0, 1, 2, 5, 10, 20, 50, 99]
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Annotated

import torch
import typer

from ...core.budget import GATES, check_bptt_size
from ...core.build import (as_float64, as_targets, cell_from_arrays, check_weight_names, head_from_arrays,
                           load_inputs)
from ...core.errors import InputError
from ...core.files import load_npy, load_npz
from ...core.unroll import unroll
from ...core.vocab import ACTIVATIONS, CELL_KINDS, LOSS_AT, LOSSES
from ...gradients.bptt import bptt as run_bptt
from ...gradients.profile import Profile, profile_trace
from .entry import app
from .options import JsonOpt, ModelOptions, choice, model_options, nonnegative_int, path, positive_int
from .output import console, echo_json, fmt, spread

__all__ = ["profile", "bptt", "lyapunov", "distances"]

_VANILLA = tuple(k for k in CELL_KINDS if k not in GATES)  # elman, pal: the cells of hand-derived BPTT


def check_finite_states(trace, dtype: str) -> None:
    """The forward pass must stay finite: an overflowing RNN (e.g. identity or relu with huge weights) has no profile."""
    bad = ~torch.isfinite(trace.states.reshape(trace.states.shape[0], -1)).all(1)  # (T+1,)
    if bool(bad.any()):
        k = int(torch.nonzero(bad)[0])
        raise InputError(f"weights/inputs: expected a forward pass with finite states, got inf or NaN in s_{k} "
                         f"(the RNN overflows {dtype}; scale down the weights or inputs)")


def distances(t: int) -> list[int]:
    """Distances d = t - k to tabulate: 0, 1, 2, 5, 10, 20, 50, ... below t, and the farthest, t - 1."""
    out, base = [0], 1
    while base < t:
        out += [m * base for m in (1, 2, 5) if m * base < t]
        base *= 10
    return sorted(set(out) | {t - 1})


# ----------------------------------------------------------------------------- profile

@app.command(help="The gradient-flow profile log10 ||ds_t/ds_k|| (spectral, Frobenius) and log10 ||dL/ds_k|| "
                  "for every k, with gamma, sigma_max, rho, the bound (gamma sigma_max)^(t-k) and the verdict. "
                  "A random model by default; --weights FILE.npz to analyse given numbers.")
@model_options(length=100)
def profile(
    model: ModelOptions,
    t: Annotated[int | None, typer.Option("--t", parser=positive_int, metavar="t",
                                          help="Profile into step t instead of T.")] = None,
    as_json: JsonOpt = False,
    plot: Annotated[Path | None, typer.Option(parser=path, metavar="FILE",
                                              help="Write the profile against the bound to FILE (.png, .svg, .pdf).")] = None,
) -> None:
    if plot is not None:
        from ...core.plots import check_plot_path  # matplotlib only when a figure is asked for
        check_plot_path(plot)
    m = model.build()
    if t is not None and t > m.T:
        raise InputError(f"t: expected 1 <= t <= T = {m.T}, got {t}")
    start = time.perf_counter()
    trace = unroll(m.cell, torch.as_tensor(m.x), None if m.s0 is None else torch.as_tensor(m.s0))
    check_finite_states(trace, model.dtype)
    p = profile_trace(m.cell, trace, t=t)
    p = dataclasses.replace(p, seconds=time.perf_counter() - start)  # unroll and analysis, as profile.profile
    if plot is not None:
        from ...core.plots import plot_profile
        plot_profile(p, plot)
    extra = {"model": m.model, "inputs": m.inputs, "T": m.T, "h0": m.start,
             "plot": None if plot is None else str(plot)}
    if as_json:
        echo_json({**p.to_dict(), **extra})
    else:
        _print_profile(p, extra)


def _print_profile(p: Profile, extra: dict) -> None:
    from rich.markup import escape  # mamba's state h[d, n] is not a markup tag
    from rich.table import Table
    con = console()
    what = p.cell if p.activation is None else f"{p.cell} ({p.activation})"
    con.print(f"[bold]rnnscope profile[/bold]: {what}, state {escape(p.state)} (S = {p.state_size}), "
              f"T = {extra['T']}, t = {p.t}, B = {p.batch}; model {extra['model']['source']}, inputs {extra['inputs']}")
    con.print(f"[bold]verdict[/bold]: {p.verdict}")
    con.print(f"note: {p.note}")
    for w in p.warnings:
        con.print(f"warning: {w}", markup=False, style="yellow")
    facts = Table(show_header=False, box=None, pad_edge=False)
    inv = None if not p.gamma else 1.0 / p.gamma
    for name, v in (("gamma = sup|phi'|", fmt(p.gamma)), ("1/gamma", fmt(inv)), ("sigma_max(W_hh)", fmt(p.sigma_max)),
                    ("rho(W_hh)", fmt(p.spectral_radius)), ("step bound c: ||ds_t/ds_k|| <= c^(t-k)", fmt(p.step_bound)),
                    ("rate (log10 / step, tail)", fmt(p.rate_per_step, "+.4f")),
                    ("horizon (10^3)", "none within t" if p.horizon is None else f"{p.horizon} steps ({p.horizon_kind})"),
                    ("seconds", fmt(p.seconds, ".3f"))):
        facts.add_row(name, v)
    con.print(facts)
    tab = Table(title=f"log10 norms into step t = {p.t} (batch mean)")
    for col in ("k", "t - k", "||ds_t/ds_k||_2", "||ds_t/ds_k||_F", "||dL/ds_k||", "bound c^(t-k)"):
        tab.add_column(col, justify="right")
    spec, frob, adj = p.log10_spectral.tolist(), p.log10_frobenius.tolist(), p.log10_adjoint.tolist()
    bound = None if p.log10_bound is None else p.log10_bound.tolist()
    for d in distances(p.t):
        i = p.t - d - 1  # element k-1 with k = t - d
        tab.add_row(str(i + 1), str(d), fmt(spec[i], ".4f"), fmt(frob[i], ".4f"), fmt(adj[i], ".4f"),
                    "-" if bound is None else fmt(bound[i], ".4f"))
    con.print(tab)
    if extra["plot"]:
        con.print(f"figure written to {extra['plot']}")


# ----------------------------------------------------------------------------- bptt

@app.command(help="Hand-derived BPTT of an Elman or Pal RNN with an MSE or cross-entropy head: the loss, every "
                  "gradient and the per-step contributions ||part of dE_t/dW_hh through step k||_F.")
def bptt(
    cell: Annotated[str, typer.Option(parser=choice(_VANILLA), metavar="KIND",
                                      help="elman or pal.")] = "elman",
    activation: Annotated[str, typer.Option(parser=choice(ACTIVATIONS), metavar="PHI",
                                            help="sigmoid, tanh, relu or identity.")] = "tanh",
    weights: Annotated[Path, typer.Option(parser=path, metavar="FILE.npz",
                                          help="Arrays W_hh (S,S), W_xh (S,D), b_h (S,), optional W_hy (O,S), b_y (O,); "
                                               "without W_hy the identity head o_t = h_t.")] = ...,
    inputs: Annotated[Path, typer.Option(parser=path, metavar="FILE.npy", help="Inputs (T, D) or (T, B, D).")] = ...,
    targets: Annotated[Path, typer.Option(parser=path, metavar="FILE.npy",
                                          help="mse: floats (T, O) or (T, B, O); ce: class indices (T,) or (T, B).")] = ...,
    head: Annotated[str, typer.Option(parser=choice(LOSSES), metavar="HEAD",
                                      help="mse (0.5 ||o_t - y_t||^2) or ce (softmax cross-entropy), batch mean.")] = "mse",
    loss_at: Annotated[str, typer.Option("--loss-at", parser=choice(LOSS_AT), metavar="WHERE",
                                         help="all (E = sum_t E_t) or last (E = E_T).")] = "all",
    h0: Annotated[Path | None, typer.Option("--h0", parser=path, metavar="FILE.npy",
                                            help="Initial state (S,) or (B, S); zeros if omitted.")] = None,
    as_json: JsonOpt = False,
) -> None:
    arrays = {k: as_float64(v) for k, v in load_npz(weights, "weights").items()}
    model_cell = cell_from_arrays(cell, activation, arrays)
    check_weight_names(cell, arrays)
    S, D = model_cell.state_size, model_cell.input_size
    out_head = head_from_arrays(arrays, S, head)
    readout = "W_hy h_t + b_y (from the weights)" if "W_hy" in arrays else "identity: o_t = h_t (no W_hy in the weights)"
    x = load_inputs(inputs, D, nonempty=False)  # an empty batch: bptt's own error
    T = x.shape[0]
    check_bptt_size(T, S, D)
    y = as_targets(load_npy(targets, "targets"))
    s0 = as_float64(load_npy(h0, "h0")) if h0 is not None else None
    check_finite_states(unroll(model_cell, torch.as_tensor(x), None if s0 is None else torch.as_tensor(s0)), "float64")
    start = time.perf_counter()
    r = run_bptt(model_cell, out_head, torch.as_tensor(x), torch.as_tensor(y),
                 None if s0 is None else torch.as_tensor(s0), loss_at=loss_at, contributions="norms")
    seconds = time.perf_counter() - start
    if not (torch.isfinite(r.loss) and all(bool(torch.isfinite(g).all()) for g in r.grads.values())):
        raise InputError(f"weights/targets: expected a finite loss and gradients, got loss {float(r.loss)} "
                         f"(an overflow in float64; scale down the weights, inputs or targets)")
    B = r.adjoints.shape[1]
    d = {
        "cell": cell, "activation": activation, "head": head, "readout": readout,
        "identity_head": "W_hy" not in arrays, "loss_at": loss_at,
        "T": T, "B": B, "S": S, "D": D, "O": out_head.output_size,
        "loss": float(r.loss), "grads": r.grads,
        "contributions_norm": r.contributions_norm["W_hh"],
        "contributions_norm_by_parameter": r.contributions_norm,
        "seconds": seconds,
    }
    if as_json:
        echo_json(d)
    else:
        _print_bptt(d)


def _print_bptt(d: dict) -> None:
    from rich.table import Table
    con = console()
    con.print(f"[bold]rnnscope bptt[/bold]: {d['cell']} ({d['activation']}), head {d['head']}, loss at {d['loss_at']}, "
              f"T = {d['T']}, B = {d['B']}, S = {d['S']}, D = {d['D']}, O = {d['O']}")
    con.print(f"readout: {d['readout']}")
    con.print(f"loss E = {d['loss']:.10g}   ({d['seconds']:.3f} s)")
    g = Table(title="gradients")
    g.add_column("parameter")
    g.add_column("shape", justify="right")
    g.add_column("||dE/dW||_F", justify="right")
    for name, v in d["grads"].items():
        g.add_row(name, "x".join(map(str, v.shape)) or "scalar", f"{float(torch.linalg.vector_norm(v)):.6g}")
    con.print(g)
    C = d["contributions_norm"]  # (T, T) tensor
    T = C.shape[0]
    rows = list(range(1, T + 1)) if d["loss_at"] == "all" else [T]  # the steps t that carry a loss E_t
    cols = list(range(1, T + 1))
    note = ""
    if len(rows) > 8 or len(cols) > 8:
        rows = spread(rows, 8)
        cols = spread(cols, 8)
        note = " (a selection of t and k; --json gives all)"
    tab = Table(title="per-step contributions ||part of dE_t/dW_hh through step k||_F" + note)
    tab.add_column("t \\ k", justify="right")
    for k in cols:
        tab.add_column(str(k), justify="right", no_wrap=True)
    for t in rows:
        tab.add_row(str(t), *[("." if k > t else f"{float(C[t - 1, k - 1]):.2e}") for k in cols])
    con.print(tab)


# ----------------------------------------------------------------------------- lyapunov

@app.command(help="The Lyapunov spectrum (natural log per step) of the state dynamics along a trajectory, by the QR "
                  "(Benettin) method: the same model options as profile; driven by --inputs or random inputs, or "
                  "autonomous (zero inputs: then from a seeded random state, the warm-up discarded; --h0 zeros for "
                  "the fixed point 0).")
@model_options(length=1000, start="auto")
def lyapunov(
    model: ModelOptions,
    k: Annotated[int | None, typer.Option("--k", parser=positive_int, metavar="K",
                                          help="The top K exponents (default: all S).")] = None,
    every: Annotated[int, typer.Option(parser=positive_int, metavar="N",
                                       help="Re-orthonormalise (QR) every N steps.")] = 1,
    warmup: Annotated[int | None, typer.Option(parser=nonnegative_int, metavar="N",
                                               help="Steps discarded while the frame aligns (default T/10).")] = None,
    blocks: Annotated[int, typer.Option(parser=positive_int, metavar="N",
                                        help="Blocks per sequence for the standard error of the top exponent.")] = 10,
    as_json: JsonOpt = False,
) -> None:
    from ...gradients.lyapunov import lyapunov_spectrum
    m = model.build()
    warm = m.T // 10 if warmup is None else warmup
    start = time.perf_counter()
    trace = unroll(m.cell, torch.as_tensor(m.x), None if m.s0 is None else torch.as_tensor(m.s0))
    check_finite_states(trace, model.dtype)
    ly = lyapunov_spectrum(m.cell, trace, k=k, every=every, warmup=warm, blocks=blocks, seed=model.seed)
    ly = dataclasses.replace(ly, start=m.start)
    d = {**ly.to_dict(), "seconds": time.perf_counter() - start, "model": m.model, "inputs": m.inputs, "T": m.T,
         "h0": m.start}
    if as_json:
        echo_json(d)
        return
    from rich.table import Table
    con = console()
    con.print(f"[bold]rnnscope lyapunov[/bold]: {ly.cell}, S = {ly.state_size}, B = {ly.batch}, T = {m.T} "
              f"(warm-up {ly.warmup}, QR every {ly.every}); model {m.model['source']}, inputs {m.inputs}, "
              f"start {m.start}")
    for w in ly.warnings:
        con.print(f"warning: {w}", markup=False, style="yellow")
    con.print(f"max exponent {fmt(ly.max_exponent)} +- {fmt(ly.stderr, '.2g')} per step (natural log); "
              f"Kaplan-Yorke dimension {fmt(ly.kaplan_yorke_dimension)}; {ly.seconds:.3g} s")
    tab = Table(title=f"the top {ly.k} exponents")
    for col in ("i", "lambda_i (ln / step)", "e^lambda_i (factor / step)"):
        tab.add_column(col, justify="right")
    for i in spread(list(range(ly.k)), 12):
        v = float(ly.exponents[i])
        tab.add_row(str(i + 1), f"{v:+.6f}", f"{math.exp(v):.4g}")
    con.print(tab)
