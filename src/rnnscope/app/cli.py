"""The command line: `rnnscope profile`, `bptt`, `claims`, `reproduce`, `demo`.

    rnnscope profile [--cell elman|pal|lstm|gru] [--activation sigmoid|tanh|relu|identity]
                     [--hidden S --input-size D --gain g --init normal|orthogonal|identity --seed N]
                     [--weights W.npz] [--inputs X.npy | --length T --batch B --input-scale X] [--h0 H.npy]
                     [--t t] [--dtype float64|float32] [--json] [--plot FILE.png|.svg|.pdf]
    rnnscope bptt    --cell elman|pal --activation ... --weights W.npz --inputs X.npy --targets Y.npy
                     [--head mse|ce] [--loss-at all|last] [--h0 H.npy] [--json]
    rnnscope lyapunov [the model options of profile] [--k K] [--every N] [--warmup N] [--blocks N] [--json]
    rnnscope theory  --sigma-w X --sigma-b Y [--activation tanh] [--json]
    rnnscope phase   [--sigma-w 0.5:3:40 --sigma-b 0:1:40 --hidden S --length T --seeds K | --spec FILE.toml]
                     [--db FILE] [--workers N | --scheduler tcp://HOST:PORT] [--retry-failed] [--plot FILE] [--json]
    rnnscope sweep   SPEC.toml [--db FILE] [--workers N | --scheduler URL] [--retry-failed] [--json]
    rnnscope results --db FILE [--json | --csv] [--sweep NAME]
    rnnscope tasks sample --task NAME --length L [--n N] [--seed S] --out FILE.npz
    rnnscope train   --task NAME --length L [--cell --activation --hidden --init --optimizer --lr --batch --steps]
                     [--clip-norm C | --clip-value C | --clip-adaptive X] [--regularizer-alpha A] [--seed S]
                     [--eval-every N --eval-size N] [--log-dir DIR] [--db FILE] [--json]
    rnnscope study   NAME [--workers N | --scheduler URL] [--db FILE] [--quick] [--plot FILE] [--json]
    rnnscope claims  [--only ID[,ID...]] [--json]
    rnnscope reproduce SEED|all [--out DIR] [--json]
    rnnscope demo    [--out DIR] [--quick]
    rnnscope serve   [--host 127.0.0.1] [--port 8765] [--open] [--report DIR]
    rnnscope diagnose MODEL.pt --inputs X.npy [--targets Y.npy] [--loss mse|ce] [--arch SPEC] [--trust]
                     [--jacobian-sequences N] [--json] [--plot FILE]

Human-readable tables by default (rich), the same data as one JSON object with --json.

Errors: bad input of any kind (an option value, a file, a shape, an unknown option) gives exactly one
line on stderr, `rnnscope <command>: error: <what was expected>, got <what arrived>`, and exit code 2;
anything unexpected gives one line and exit code 1. Never a traceback, never a usage box: `main`
runs the typer/click command with standalone_mode=False and turns the exceptions into that line.

Example:
    >>> main(["profile", "--hidden", "8", "--length", "50", "--gain", "0.5", "--json"])   # doctest: +SKIP
    {"cell": "elman", "activation": "tanh", ...}
    0
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import math
import sys
import time
from pathlib import Path
from typing import Annotated, Callable, Sequence

import numpy as np
import torch
import typer
from typer._click import exceptions as click_exc
from typer._click.core import ParameterSource
from typer.main import get_command

from ..core.activations import ACTIVATIONS
from ..gradients.profile import Profile, profile_trace
from ..gradients.bptt import bptt as run_bptt
from ..core.cells import CELL_KINDS
from ..core.errors import InputError
from ..core.files import load_npy, load_npz
from ..core.heads import HEAD_KINDS, LOSS_AT
from ..core.build import DTYPES, INITS, cell_from_arrays, get_dtype, head_from_arrays, random_cell
from ..core.results import jsonable
from ..core.unroll import unroll

__all__ = ["app", "main"]

COMMANDS = ("profile", "bptt", "lyapunov", "theory", "phase", "sweep", "results", "tasks", "train", "study",
            "claims", "reproduce", "demo", "serve", "diagnose")
_MEMORY_LIMIT = 4 * 1024**3  # bytes: the trace and working space a CLI run may ask for
_BPTT_MAX_T = 4096  # the T x T contributions table (JSON) and the O(T^2 S^2) per-step partials
_BPTT_ROWS_BYTES = 1024**3  # one backward step holds up to T rows of (S, S + D + 1) partials

app = typer.Typer(
    name="rnnscope",
    help="rnnscope: a gradient-flow laboratory for recurrent neural networks. "
         "Exact Jacobian-product profiles, hand-derived BPTT, and a demo of vanishing and exploding gradients.",
    add_completion=False,
    pretty_exceptions_enable=False,
    no_args_is_help=False,
)


# ----------------------------------------------------------------------------- option parsers
# Each parser gets the raw value (a string from the command line, or the default) and returns the
# converted value or raises ValueError("expected X, got Y"); main() prefixes the option's name.

def _choice(choices: Sequence[str]) -> Callable[[object], str]:
    def parse(v: object) -> str:
        s = str(v)
        if s not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}, got {s!r}")
        return s
    return parse


def _int_text(v: object) -> int:
    if isinstance(v, bool):
        raise ValueError
    if isinstance(v, int):
        return v
    return int(str(v).strip())  # "3.0", "1e3", "" -> ValueError


def _positive_int(v: object) -> int:
    try:
        i = _int_text(v)
    except ValueError:
        raise ValueError(f"expected a positive integer, got {str(v)!r}") from None
    if i < 1:
        raise ValueError(f"expected a positive integer, got {i}")
    return i


def _nonnegative_int(v: object) -> int:
    try:
        n = _int_text(v)
    except ValueError:
        raise ValueError(f"expected an integer >= 0, got {str(v)!r}") from None
    if n < 0:
        raise ValueError(f"expected an integer >= 0, got {n}")
    return n


def _seed(v: object) -> int:
    try:
        i = _int_text(v)
    except ValueError:
        raise ValueError(f"expected an integer seed in [0, 2^63), got {str(v)!r}") from None
    if not 0 <= i < 2**63:
        raise ValueError(f"expected an integer seed in [0, 2^63), got {i}")
    return i


def _finite_float(v: object) -> float:
    try:
        f = float(str(v).strip()) if not isinstance(v, (int, float)) or isinstance(v, bool) else float(v)
    except ValueError:
        raise ValueError(f"expected a finite number, got {str(v)!r}") from None
    if not math.isfinite(f):
        raise ValueError(f"expected a finite number, got {str(v)!r}")
    return f


def _nonnegative_float(v: object) -> float:
    f = _finite_float(v)
    if f < 0:
        raise ValueError(f"expected a finite number >= 0, got {f}")
    return f


def _path(v: object) -> Path:
    s = str(v)
    if not s or "\x00" in s:
        raise ValueError(f"expected a file name, got {s!r}")
    return Path(s)


# ----------------------------------------------------------------------------- helpers

def _explicit(ctx: typer.Context, name: str) -> bool:
    """Whether the option was given on the command line (not its default)."""
    return ctx.get_parameter_source(name) not in (None, ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP)


def _check_memory(T: int, B: int, S: int, D: int, A: int, itemsize: int) -> None:
    """Refuse a run whose weights, trace and working space would exceed the CLI's memory limit, before
    allocating anything. S state size, D input size, A pre-activation width (S; 4H for LSTM, 3H for GRU)."""
    numbers = A * (S + D) + (T + 1) * B * (3 * S + A + D) + 6 * B * S * S
    need = numbers * itemsize
    if need > _MEMORY_LIMIT:
        raise InputError(f"size: expected a problem that fits in {_MEMORY_LIMIT / 1024**3:.0f} GiB, got T={T}, B={B}, "
                         f"S={S}, D={D} (about {need / 1024**3:.3g} GiB); use the Python API for larger runs")


def _sizes(cell) -> tuple[int, int, int]:
    """(S, D, A) of a built cell."""
    A = cell.W_hh.shape[0] if hasattr(cell, "W_hh") else cell.state_size
    return cell.state_size, cell.input_size, A


def _check_finite_states(trace, dtype: str) -> None:
    """The forward pass must stay finite: an overflowing RNN (e.g. identity or relu with huge weights) has no profile."""
    bad = ~torch.isfinite(trace.states.reshape(trace.states.shape[0], -1)).all(1)  # (T+1,)
    if bool(bad.any()):
        k = int(torch.nonzero(bad)[0])
        raise InputError(f"weights/inputs: expected a forward pass with finite states, got inf or NaN in s_{k} "
                         f"(the RNN overflows {dtype}; scale down the weights or inputs)")


def _float64(a: np.ndarray) -> np.ndarray:
    """A loaded array as float64 (float16, longdouble, ints, bool alike). Values beyond float64's range become
    inf, which the cells, unroll and heads refuse with their own 'expected finite numbers' errors."""
    with np.errstate(over="ignore", invalid="ignore"):
        return np.asarray(a, dtype=np.float64)


def _targets(a: np.ndarray) -> np.ndarray:
    """Targets as int64 class indices (integer files) or float64 (float files); bool stays bool (and is refused)."""
    if a.dtype.kind in "iu":
        return a.astype(np.int64)  # uint64 beyond 2^63 wraps negative: refused by the class-range check
    return a if a.dtype.kind == "b" else _float64(a)


def _console():
    from .demo import make_console
    return make_console()


def _fmt(v, spec: str = ".4g") -> str:
    if v is None:
        return "-"
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return format(v, spec)


def _echo_json(d: dict) -> None:
    sys.stdout.write(json.dumps(jsonable(d), allow_nan=False) + "\n")
    sys.stdout.flush()


def _distances(t: int) -> list[int]:
    """Distances d = t - k to tabulate: 0, 1, 2, 5, 10, 20, 50, ... below t, and the farthest, t - 1."""
    out, base = [0], 1
    while base < t:
        out += [m * base for m in (1, 2, 5) if m * base < t]
        base *= 10
    return sorted(set(out) | {t - 1})


# ----------------------------------------------------------------------------- profile

# The model options shared by `profile` and `lyapunov` (a random model or --weights; --inputs or random/zero inputs).
CellOpt = Annotated[str, typer.Option(parser=_choice(CELL_KINDS), metavar="KIND",
                                      help="elman, pal, lstm or gru; lstm uses the full state (h, c).")]
ActivationOpt = Annotated[str, typer.Option(parser=_choice(tuple(ACTIVATIONS)), metavar="PHI",
                                            help="sigmoid, tanh, relu or identity: phi of the vanilla cells.")]
HiddenOpt = Annotated[int, typer.Option(parser=_positive_int, metavar="S", help="Random model: hidden size.")]
InputSizeOpt = Annotated[int, typer.Option("--input-size", parser=_positive_int, metavar="D",
                                           help="Random model: input size.")]
LengthOpt = Annotated[int, typer.Option(parser=_positive_int, metavar="T", help="Steps T when no --inputs file is given.")]
BatchOpt = Annotated[int, typer.Option(parser=_positive_int, metavar="B", help="Sequences B when no --inputs file is given.")]
GainOpt = Annotated[float, typer.Option(parser=_finite_float, metavar="g",
                                        help="Random model: W_hh gain (normal: N(0, g^2/S)).")]
InitOpt = Annotated[str, typer.Option(parser=_choice(INITS), metavar="INIT",
                                      help="Random model: W_hh = normal, orthogonal or identity (times g).")]
SeedOpt = Annotated[int, typer.Option(parser=_seed, metavar="N", help="Seed of the random model and inputs.")]
DtypeOpt = Annotated[str, typer.Option(parser=_choice(tuple(DTYPES)), metavar="DTYPE",
                                       help="float64 or float32: the analysis' floating point type.")]
WeightsOpt = Annotated[Path | None, typer.Option(parser=_path, metavar="FILE.npz",
                                                 help="Arrays W_hh, W_xh, b_h (optional W_hy, b_y; b_hh for lstm/gru).")]
InputsOpt = Annotated[Path | None, typer.Option(parser=_path, metavar="FILE.npy",
                                                help="Inputs (T, D) or (T, B, D); zeros of --length steps if omitted.")]
H0Opt = Annotated[Path | None, typer.Option("--h0", parser=_path, metavar="FILE.npy",
                                            help="Initial state (S,) or (B, S) (lstm: (h, c) stacked, 2H); zeros if omitted.")]
InputScaleOpt = Annotated[float, typer.Option("--input-scale", parser=_nonnegative_float, metavar="X",
                                              help="Random inputs N(0, X^2) (seeded) instead of zeros; 0 = zeros.")]
JsonOpt = Annotated[bool, typer.Option("--json", metavar="", help="Print one JSON object instead of tables.")]


@dataclasses.dataclass(frozen=True)
class _Model:
    cell: object  # the Cell
    x: np.ndarray  # (T, B, D) or (T, D)
    s0: np.ndarray | None
    model: dict  # how the cell was made (for the JSON)
    inputs: str  # how the inputs were made
    T: int


def _model(ctx: typer.Context, cell: str, activation: str, hidden: int, input_size: int, length: int, batch: int,
           gain: float, init: str, seed: int, dtype: str, weights: Path | None, inputs: Path | None,
           h0: Path | None, input_scale: float) -> _Model:
    """The cell, inputs and start state of a command with the model options, validated."""
    dt = get_dtype(dtype)
    gated = cell in ("lstm", "gru")
    if gated and _explicit(ctx, "activation"):
        raise InputError(f"activation: expected no --activation for the gated cell {cell} (its nonlinearities are "
                         f"fixed: sigmoid gates, tanh), got {activation!r}")
    if weights is not None:
        given = [f"--{n.replace('_', '-')}" for n in ("hidden", "input_size", "gain", "init") if _explicit(ctx, n)]
        if given:
            raise InputError(f"weights: expected either --weights or the random model's {', '.join(given)}, got both")
        arrays = {k: _float64(v) for k, v in load_npz(weights, "weights").items()}
        model_cell = cell_from_arrays(cell, activation, arrays, dtype=dt)
        allowed = {"W_hh", "W_xh", "b_h", "W_hy", "b_y"} | ({"b_hh"} if gated else set())
        extra = sorted(set(arrays) - allowed)
        if extra:
            raise InputError(f"weights: expected only arrays named {', '.join(sorted(allowed))}, got also {', '.join(map(repr, extra))}")
        head_from_arrays(arrays, getattr(model_cell, "hidden_size", model_cell.state_size), dtype=dt)  # shape checks only
        model = {"source": "weights", "weights": str(weights)}
    else:
        G = {"lstm": 4, "gru": 3}.get(cell, 1)
        S_rand = 2 * hidden if cell == "lstm" else hidden
        _check_memory(length if inputs is None else 1, batch if inputs is None else 1, S_rand, input_size,
                      G * hidden, torch.finfo(dt).bits // 8)
        model_cell = random_cell(cell, activation, hidden=hidden, input_size=input_size, gain=gain, init=init,
                                 seed=seed, dtype=dt)
        model = {"source": "random", "hidden": hidden, "input_size": input_size, "gain": gain, "init": init, "seed": seed}
    model["dtype"] = dtype
    D = model_cell.input_size
    if inputs is not None:
        given = [f"--{n.replace('_', '-')}" for n in ("length", "batch", "input_scale") if _explicit(ctx, n)]
        if given:
            raise InputError(f"inputs: expected either --inputs or {', '.join(given)}, got both")
        x = _float64(load_npy(inputs, "inputs"))
        if x.ndim not in (2, 3):
            raise InputError(f"inputs: expected shape (T, D) or (T, B, D), got {x.shape}")
        T, B = x.shape[0], (x.shape[1] if x.ndim == 3 else 1)
        if T < 1 or B < 1:
            raise InputError(f"inputs: expected at least one step and one sequence, got shape {x.shape}")
        if x.shape[-1] != D:
            raise InputError(f"inputs: expected input size D = {D} (the weights' W_xh has {D} columns), got D = {x.shape[-1]}")
        input_desc = f"file {inputs}"
        _check_memory(T, B, *_sizes(model_cell), torch.finfo(dt).bits // 8)
    else:
        T, B = length, batch
        _check_memory(T, B, *_sizes(model_cell), torch.finfo(dt).bits // 8)
        if input_scale > 0:
            rng = np.random.default_rng([seed, 1])  # its own stream, apart from the weights' generator
            x = input_scale * rng.standard_normal((T, B, D))
            input_desc = f"random N(0, {input_scale:g}^2), seed {seed}"
        else:
            x = np.zeros((T, B, D))
            input_desc = "zeros"
    s0 = _float64(load_npy(h0, "h0")) if h0 is not None else None
    return _Model(model_cell, x, s0, model, input_desc, T)


@app.command(help="The gradient-flow profile log10 ||ds_t/ds_k|| (spectral, Frobenius) and log10 ||dL/ds_k|| "
                  "for every k, with gamma, sigma_max, rho, the bound (gamma sigma_max)^(t-k) and the verdict. "
                  "A random model by default; --weights FILE.npz to analyse given numbers.")
def profile(
    ctx: typer.Context,
    cell: CellOpt = "elman",
    activation: ActivationOpt = "tanh",
    hidden: HiddenOpt = 32,
    input_size: InputSizeOpt = 1,
    length: LengthOpt = 100,
    batch: BatchOpt = 1,
    gain: GainOpt = 1.0,
    init: InitOpt = "normal",
    seed: SeedOpt = 0,
    dtype: DtypeOpt = "float64",
    weights: WeightsOpt = None,
    inputs: InputsOpt = None,
    h0: H0Opt = None,
    t: Annotated[int | None, typer.Option("--t", parser=_positive_int, metavar="t",
                                          help="Profile into step t instead of T.")] = None,
    input_scale: InputScaleOpt = 0.0,
    as_json: JsonOpt = False,
    plot: Annotated[Path | None, typer.Option(parser=_path, metavar="FILE",
                                              help="Write the profile against the bound to FILE (.png, .svg, .pdf).")] = None,
) -> None:
    if plot is not None:
        from ..core.plots import check_plot_path  # matplotlib only when a figure is asked for
        check_plot_path(plot)
    m = _model(ctx, cell, activation, hidden, input_size, length, batch, gain, init, seed, dtype, weights, inputs,
               h0, input_scale)
    if t is not None and t > m.T:
        raise InputError(f"t: expected 1 <= t <= T = {m.T}, got {t}")
    start = time.perf_counter()
    trace = unroll(m.cell, torch.as_tensor(m.x), None if m.s0 is None else torch.as_tensor(m.s0))
    _check_finite_states(trace, dtype)
    p = profile_trace(m.cell, trace, t=t)
    p = dataclasses.replace(p, seconds=time.perf_counter() - start)  # unroll and analysis, as analysis.profile
    if plot is not None:
        from ..core.plots import plot_profile
        plot_profile(p, plot)
    extra = {"model": m.model, "inputs": m.inputs, "T": m.T, "h0": "zeros" if h0 is None else f"file {h0}",
             "plot": None if plot is None else str(plot)}
    if as_json:
        _echo_json({**p.to_dict(), **extra})
    else:
        _print_profile(p, extra)


def _print_profile(p: Profile, extra: dict) -> None:
    from rich.table import Table
    con = _console()
    what = p.cell if p.activation is None else f"{p.cell} ({p.activation})"
    con.print(f"[bold]rnnscope profile[/bold]: {what}, state {p.state} (S = {p.state_size}), "
              f"T = {extra['T']}, t = {p.t}, B = {p.batch}; model {extra['model']['source']}, inputs {extra['inputs']}")
    con.print(f"[bold]verdict[/bold]: {p.verdict}")
    con.print(f"note: {p.note}")
    facts = Table(show_header=False, box=None, pad_edge=False)
    inv = None if not p.gamma else 1.0 / p.gamma
    for name, v in (("gamma = sup|phi'|", _fmt(p.gamma)), ("1/gamma", _fmt(inv)), ("sigma_max(W_hh)", _fmt(p.sigma_max)),
                    ("rho(W_hh)", _fmt(p.spectral_radius)),
                    ("rate (log10 / step, tail)", _fmt(p.rate_per_step, "+.4f")),
                    ("horizon (10^3)", "none within t" if p.horizon is None else f"{p.horizon} steps ({p.horizon_kind})"),
                    ("seconds", _fmt(p.seconds, ".3f"))):
        facts.add_row(name, v)
    con.print(facts)
    tab = Table(title=f"log10 norms into step t = {p.t} (batch mean)")
    for col in ("k", "t - k", "||ds_t/ds_k||_2", "||ds_t/ds_k||_F", "||dL/ds_k||", "bound (g s)^(t-k)"):
        tab.add_column(col, justify="right")
    spec, frob, adj = p.log10_spectral.tolist(), p.log10_frobenius.tolist(), p.log10_adjoint.tolist()
    bound = None if p.log10_bound is None else p.log10_bound.tolist()
    for d in _distances(p.t):
        i = p.t - d - 1  # element k-1 with k = t - d
        tab.add_row(str(i + 1), str(d), _fmt(spec[i], ".4f"), _fmt(frob[i], ".4f"), _fmt(adj[i], ".4f"),
                    "-" if bound is None else _fmt(bound[i], ".4f"))
    con.print(tab)
    if extra["plot"]:
        con.print(f"figure written to {extra['plot']}")


# ----------------------------------------------------------------------------- bptt

@app.command(help="Hand-derived BPTT of an Elman or Pal RNN with an MSE or cross-entropy head: the loss, every "
                  "gradient and the per-step contributions ||part of dE_t/dW_hh through step k||_F.")
def bptt(
    cell: Annotated[str, typer.Option(parser=_choice(("elman", "pal")), metavar="KIND",
                                      help="elman or pal.")] = "elman",
    activation: Annotated[str, typer.Option(parser=_choice(tuple(ACTIVATIONS)), metavar="PHI",
                                            help="sigmoid, tanh, relu or identity.")] = "tanh",
    weights: Annotated[Path, typer.Option(parser=_path, metavar="FILE.npz",
                                          help="Arrays W_hh (S,S), W_xh (S,D), b_h (S,), optional W_hy (O,S), b_y (O,); "
                                               "without W_hy the identity head o_t = h_t.")] = ...,
    inputs: Annotated[Path, typer.Option(parser=_path, metavar="FILE.npy", help="Inputs (T, D) or (T, B, D).")] = ...,
    targets: Annotated[Path, typer.Option(parser=_path, metavar="FILE.npy",
                                          help="mse: floats (T, O) or (T, B, O); ce: class indices (T,) or (T, B).")] = ...,
    head: Annotated[str, typer.Option(parser=_choice(HEAD_KINDS), metavar="HEAD",
                                      help="mse (0.5 ||o_t - y_t||^2) or ce (softmax cross-entropy), batch mean.")] = "mse",
    loss_at: Annotated[str, typer.Option("--loss-at", parser=_choice(LOSS_AT), metavar="WHERE",
                                         help="all (E = sum_t E_t) or last (E = E_T).")] = "all",
    h0: Annotated[Path | None, typer.Option("--h0", parser=_path, metavar="FILE.npy",
                                            help="Initial state (S,) or (B, S); zeros if omitted.")] = None,
    as_json: Annotated[bool, typer.Option("--json", metavar="", help="Print one JSON object instead of tables.")] = False,
) -> None:
    arrays = {k: _float64(v) for k, v in load_npz(weights, "weights").items()}
    model_cell = cell_from_arrays(cell, activation, arrays)
    extra = sorted(set(arrays) - {"W_hh", "W_xh", "b_h", "W_hy", "b_y"})
    if extra:
        raise InputError(f"weights: expected only arrays named W_hh, W_xh, b_h, W_hy, b_y, got also {', '.join(map(repr, extra))}")
    S, D = model_cell.state_size, model_cell.input_size
    out_head = head_from_arrays(arrays, S, head)
    readout = "W_hy h_t + b_y (from the weights)" if "W_hy" in arrays else "identity: o_t = h_t (no W_hy in the weights)"
    x = _float64(load_npy(inputs, "inputs"))
    if x.ndim not in (2, 3):
        raise InputError(f"inputs: expected shape (T, D) or (T, B, D), got {x.shape}")
    if x.shape[-1] != D:
        raise InputError(f"inputs: expected input size D = {D} (the weights' W_xh has {D} columns), got D = {x.shape[-1]}")
    T = x.shape[0]
    if T > _BPTT_MAX_T or T * S * (S + D + 1) * 8 > _BPTT_ROWS_BYTES:
        raise InputError(f"inputs: expected T <= {_BPTT_MAX_T} and T*S*(S+D+1) <= {_BPTT_ROWS_BYTES // 8} for the "
                         f"T x T contributions, got T = {T}, S = {S}, D = {D}")
    y = _targets(load_npy(targets, "targets"))
    s0 = _float64(load_npy(h0, "h0")) if h0 is not None else None
    _check_finite_states(unroll(model_cell, torch.as_tensor(x), None if s0 is None else torch.as_tensor(s0)), "float64")
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
        _echo_json(d)
    else:
        _print_bptt(d)


def _print_bptt(d: dict) -> None:
    from rich.table import Table
    con = _console()
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
        rows = _spread(rows, 8)
        cols = _spread(cols, 8)
        note = " (a selection of t and k; --json gives all)"
    tab = Table(title="per-step contributions ||part of dE_t/dW_hh through step k||_F" + note)
    tab.add_column("t \\ k", justify="right")
    for k in cols:
        tab.add_column(str(k), justify="right", no_wrap=True)
    for t in rows:
        tab.add_row(str(t), *[("." if k > t else f"{float(C[t - 1, k - 1]):.2e}") for k in cols])
    con.print(tab)


def _spread(items: list[int], n: int) -> list[int]:
    """At most n items, evenly spread, first and last included."""
    if len(items) <= n:
        return items
    return sorted({items[round(i * (len(items) - 1) / (n - 1))] for i in range(n)})


# ----------------------------------------------------------------------------- lyapunov

@app.command(help="The Lyapunov spectrum (natural log per step) of the state dynamics along a trajectory, by the QR "
                  "(Benettin) method: the same model options as profile; driven by --inputs or random inputs, or "
                  "autonomous (zero inputs).")
def lyapunov(
    ctx: typer.Context,
    cell: CellOpt = "elman",
    activation: ActivationOpt = "tanh",
    hidden: HiddenOpt = 32,
    input_size: InputSizeOpt = 1,
    length: LengthOpt = 1000,
    batch: BatchOpt = 1,
    gain: GainOpt = 1.0,
    init: InitOpt = "normal",
    seed: SeedOpt = 0,
    dtype: DtypeOpt = "float64",
    weights: WeightsOpt = None,
    inputs: InputsOpt = None,
    h0: H0Opt = None,
    input_scale: InputScaleOpt = 0.0,
    k: Annotated[int | None, typer.Option("--k", parser=_positive_int, metavar="K",
                                          help="The top K exponents (default: all S).")] = None,
    every: Annotated[int, typer.Option(parser=_positive_int, metavar="N",
                                       help="Re-orthonormalise (QR) every N steps.")] = 1,
    warmup: Annotated[int | None, typer.Option(parser=_nonnegative_int, metavar="N",
                                               help="Steps discarded while the frame aligns (default T/10).")] = None,
    blocks: Annotated[int, typer.Option(parser=_positive_int, metavar="N",
                                        help="Blocks per sequence for the standard error of the top exponent.")] = 10,
    as_json: JsonOpt = False,
) -> None:
    from ..gradients.lyapunov import lyapunov_spectrum
    m = _model(ctx, cell, activation, hidden, input_size, length, batch, gain, init, seed, dtype, weights, inputs,
               h0, input_scale)
    warm = m.T // 10 if warmup is None else warmup
    start = time.perf_counter()
    trace = unroll(m.cell, torch.as_tensor(m.x), None if m.s0 is None else torch.as_tensor(m.s0))
    _check_finite_states(trace, dtype)
    ly = lyapunov_spectrum(m.cell, trace, k=k, every=every, warmup=warm, blocks=blocks, seed=seed)
    d = {**ly.to_dict(), "seconds": time.perf_counter() - start, "model": m.model, "inputs": m.inputs, "T": m.T,
         "h0": "zeros" if h0 is None else f"file {h0}"}
    if as_json:
        _echo_json(d)
        return
    from rich.table import Table
    con = _console()
    con.print(f"[bold]rnnscope lyapunov[/bold]: {ly.cell}, S = {ly.state_size}, B = {ly.batch}, T = {m.T} "
              f"(warm-up {ly.warmup}, QR every {ly.every}); model {m.model['source']}, inputs {m.inputs}")
    con.print(f"max exponent {_fmt(ly.max_exponent)} +- {_fmt(ly.stderr, '.2g')} per step (natural log); "
              f"Kaplan-Yorke dimension {_fmt(ly.kaplan_yorke_dimension)}; {ly.seconds:.3g} s")
    tab = Table(title=f"the top {ly.k} exponents")
    for col in ("i", "lambda_i (ln / step)", "e^lambda_i (factor / step)"):
        tab.add_column(col, justify="right")
    for i in _spread(list(range(ly.k)), 12):
        v = float(ly.exponents[i])
        tab.add_row(str(i + 1), f"{v:+.6f}", f"{math.exp(v):.4g}")
    con.print(tab)


# ----------------------------------------------------------------------------- theory, phase, sweep, results

@app.command(help="Mean-field theory of random vanilla RNNs (W ~ N(0, sigma_w^2/S), b ~ N(0, sigma_b^2)): q*, "
                  "chi_1, the depth scale xi, the critical sigma_w^2 (chi_1 = 1) at this sigma_b^2, and the "
                  "predicted per-step gradient log-growth 0.5 ln chi_1, by Gauss-Hermite quadrature.")
def theory(
    sigma_w: Annotated[float, typer.Option("--sigma-w", parser=_finite_float, metavar="X",
                                           help="Standard deviation of W_ij times sqrt(S).")] = 1.0,
    sigma_b: Annotated[float, typer.Option("--sigma-b", parser=_nonnegative_float, metavar="Y",
                                           help="Standard deviation of the biases.")] = 0.0,
    activation: ActivationOpt = "tanh",
    as_json: JsonOpt = False,
) -> None:
    from ..dynamics.meanfield import mean_field
    mf = mean_field(sigma_w, sigma_b, activation)
    if as_json:
        _echo_json(mf.to_dict())
        return
    con = _console()
    con.print(f"[bold]rnnscope theory[/bold]: random {activation} RNN, sigma_w = {sigma_w:g}, sigma_b = {sigma_b:g}")
    for name, v, what in (("q*", mf.q_star, "fixed point of the pre-activation variance"),
                          ("chi_1", mf.chi1, "sigma_w^2 E[phi'(sqrt(q*) z)^2]"),
                          ("0.5 ln chi_1", mf.predicted_rate_per_step, "predicted gradient log-growth per step"),
                          ("xi", mf.xi, "depth scale -1/ln chi_1 (steps)"),
                          ("critical sigma_w^2", mf.critical_sigma_w2, f"chi_1 = 1 at sigma_b^2 = {sigma_b ** 2:g}")):
        con.print(f"  {name:>18s} = {_fmt(v, '.6g'):>12s}   {what}")
    phase = "chaotic (gradients grow)" if mf.chi1 > 1 else "ordered (gradients vanish)" if mf.chi1 < 1 else "critical"
    con.print(f"  phase: {phase}")


_RangeOpt = Annotated[str | None, typer.Option(metavar="START:STOP:COUNT", help="A range or a comma-separated list.")]
DbOpt = Annotated[Path, typer.Option("--db", parser=_path, metavar="FILE", help="The SQLite results store.")]
WorkersOpt = Annotated[int | None, typer.Option(parser=_positive_int, metavar="N",
                                                help="Local worker processes (default: the CPU count).")]
SchedulerOpt = Annotated[str | None, typer.Option(metavar="tcp://HOST:PORT",
                                                  help="Run on this dask.distributed scheduler instead.")]
RetryOpt = Annotated[bool, typer.Option("--retry-failed", help="Run configs recorded as failed again.")]


def _check_interrupted(report, db: Path) -> None:
    """Ctrl-C during a sweep: what finished is in the store; say so and exit 130."""
    if report.interrupted:
        sys.stderr.write(f"rnnscope: {report.done + report.skipped} of {report.total} configs are finished in {db}; "
                         f"{report.remaining} remain: run the same command again to finish them\n")
        raise typer.Exit(130)


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
    length: Annotated[int, typer.Option(parser=_positive_int, metavar="T",
                                        help="Steps per network (the first half is discarded).")] = 200,
    seeds: Annotated[int, typer.Option(parser=_positive_int, metavar="K", help="Random networks per point.")] = 1,
    activation: ActivationOpt = "tanh",
    spec: Annotated[Path | None, typer.Option(parser=_path, metavar="FILE.toml",
                                              help="A sweep spec (task phase-point) instead of the options above.")] = None,
    db: DbOpt = Path("rnnscope-results.sqlite"),
    workers: WorkersOpt = None,
    scheduler: SchedulerOpt = None,
    retry_failed: RetryOpt = False,
    plot: Annotated[Path | None, typer.Option(parser=_path, metavar="FILE",
                                              help="The heatmap (.png, .svg, .pdf); default phase.png beside --db.")] = None,
    as_json: JsonOpt = False,
) -> None:
    from ..dynamics.phase import PHASE_TASK, measured_crossing, phase_configs, phase_table, plot_phase
    from ..dynamics.meanfield import critical_sigma_w2
    from ..runs.store import Store
    from ..runs.sweep import SweepSpec, config_key, expand, load_spec, parse_range, run_sweep
    if plot is None:
        plot = db.with_name("phase.png") if db.suffix else Path("phase.png")
    from ..core.plots import check_plot_path
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
    _check_interrupted(report, db)
    keys = {config_key(sw.task, c) for c in expand(sw)}
    with Store(db) as store:
        rows = [r for r in store.rows() if r["key"] in keys]
    table = phase_table(rows)
    if not table:
        raise InputError(f"phase: expected finished grid points in {str(db)!r}, got none "
                         f"({report.failed} failed: rnnscope results --db {db})")
    lyap = dict(measured_crossing(table, "lyapunov_max"))
    comparison = [{"sigma_b": b, "measured_sigma_w": w, "lyapunov_sigma_w": lyap.get(b),
                   "theory_sigma_w": math.sqrt(critical_sigma_w2(b * b, act))} for b, w in measured_crossing(table)]
    fig_ok = len({r.sigma_w for r in table}) >= 2 and len({r.sigma_b for r in table}) >= 2
    if fig_ok:
        plot_phase(table, plot, activation=act)
    out = {"sweep": report.to_dict(), "db": str(db), "plot": str(plot) if fig_ok else None,
           "points": [r.to_dict() for r in table], "critical_line": comparison}
    if as_json:
        _echo_json(out)
        return
    from rich.table import Table
    con = _console()
    r = report
    con.print(f"[bold]rnnscope phase[/bold]: {len(table)} grid points in {db} ({r.done} run now, {r.skipped} already "
              f"there, {r.failed} failed; {r.seconds:.1f} s)")
    tab = Table(title="edge of chaos: where the measured gradient rate crosses 0, against mean field (chi_1 = 1)")
    for col in ("sigma_b", "gradient rate = 0 at sigma_w", "Lyapunov = 0 at sigma_w", "theory sigma_w", "difference"):
        tab.add_column(col, justify="right")
    for c in [comparison[i] for i in _spread(list(range(len(comparison))), 12)]:
        tab.add_row(f"{c['sigma_b']:.3g}", f"{c['measured_sigma_w']:.4g}", _fmt(c["lyapunov_sigma_w"]),
                    f"{c['theory_sigma_w']:.4g}", f"{c['measured_sigma_w'] - c['theory_sigma_w']:+.3f}")
    con.print(tab)
    if fig_ok:
        con.print(f"heatmap: {plot}; every point: rnnscope results --db {db} --csv")


@app.command(help="Run any sweep spec (TOML: name, task, [grid], [fixed]) into the results store; resumable.")
def sweep(
    spec: Annotated[Path, typer.Argument(parser=_path, metavar="SPEC.toml", help="The sweep spec.")],
    db: DbOpt = Path("rnnscope-results.sqlite"),
    workers: WorkersOpt = None,
    scheduler: SchedulerOpt = None,
    retry_failed: RetryOpt = False,
    as_json: JsonOpt = False,
) -> None:
    from ..runs.sweep import load_spec, run_sweep
    report = run_sweep(load_spec(spec), db, workers=workers, scheduler=scheduler, retry_failed=retry_failed,
                       progress=not as_json)
    _check_interrupted(report, db)
    if as_json:
        _echo_json(report.to_dict())
    else:
        d = report.to_dict()
        _console().print(f"sweep {d['sweep']!r}: {d['total']} configs, {d['done']} run now, {d['skipped']} already "
                         f"finished, {d['failed']} failed, {d['remaining']} remaining ({d['seconds']:.1f} s); "
                         f"rows in {db}")


@app.command(help="Export the results store: every run with its config, metrics, status, error, seconds, host.")
def results(
    db: Annotated[Path, typer.Option("--db", parser=_path, metavar="FILE", help="The SQLite results store.")],
    as_json: Annotated[bool, typer.Option("--json", help="A JSON list of runs (the default).")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV, one row per run, config.* and metrics.* columns.")] = False,
    sweep_name: Annotated[str | None, typer.Option("--sweep", metavar="NAME", help="Only this sweep's runs.")] = None,
) -> None:
    from ..runs.store import export
    if as_json and as_csv:
        raise InputError("format: expected one of --json or --csv, got both")
    if not db.exists():
        raise InputError(f"db: expected an existing results file, got {str(db)!r} (no such file)")
    text = export(db, "csv" if as_csv else "json", sweep=sweep_name)
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()


# ----------------------------------------------------------------------------- tasks, study

tasks_app = typer.Typer(help="The long-memory tasks of the literature (adding, multiplication, temporal order, "
                             "permutation, memorization, copy).", no_args_is_help=True)
app.add_typer(tasks_app, name="tasks")


@tasks_app.command("sample", help="Write a seeded batch of a task to FILE.npz: x (N, T, D), y, mask.")
def tasks_sample(
    task: Annotated[str, typer.Option(metavar="NAME", help="adding-hs97, adding-pascanu, adding-le, multiplication, "
                                      "temporal-order, temporal-order-3bit, permutation, memorization, copy.")],
    length: Annotated[int, typer.Option(parser=_positive_int, metavar="L", help="The nominal length L.")],
    out: Annotated[Path, typer.Option(parser=_path, metavar="FILE.npz", help="Where to write x, y, mask.")],
    n: Annotated[int, typer.Option("--n", parser=_positive_int, metavar="N", help="Sequences.")] = 16,
    seed: SeedOpt = 0,
    as_json: JsonOpt = False,
) -> None:
    from ..lab.tasks import get_task
    t = get_task(task)
    if out.suffix != ".npz":
        raise InputError(f"out: expected a file name ending in .npz, got {str(out)!r}")
    if not (out.parent if str(out.parent) else Path(".")).is_dir():
        raise InputError(f"out: expected an existing folder for {str(out)!r}, got {str(out.parent)!r} (no such folder)")
    batch = t.sample(n, length, torch.Generator().manual_seed(seed))
    try:
        batch.save(out)
    except OSError as e:
        raise InputError(f"out: expected a writable file, got {str(out)!r} ({type(e).__name__}: {e})") from None
    d = {"task": t.to_dict(), "file": str(out), "x": list(batch.x.shape), "y": list(batch.y.shape),
         "mask": list(batch.mask.shape), "masked_steps": int(batch.mask.sum()), "baseline_loss": t.baseline_loss(length),
         "seed": seed}
    if as_json:
        _echo_json(d)
    else:
        _console().print(f"{t.name}: {n} sequences of {batch.length} steps (nominal L = {length}) written to {out}: "
                         f"x {tuple(batch.x.shape)}, y {tuple(batch.y.shape)}, mask {tuple(batch.mask.shape)}; "
                         f"memoryless baseline loss {t.baseline_loss(length):.4g}")


# ----------------------------------------------------------------------------- train

_OptFloat = Annotated[float | None, typer.Option(parser=_nonnegative_float, metavar="X")]


@app.command(help="Train an RNN on a long-memory task with Pascanu's remedies (norm/value/adaptive clipping, the "
                  "Omega regularizer, the inits); evaluations with the task's success criterion and gradient-flow "
                  "snapshots every --eval-every steps; early stop on success; TensorBoard and the results store.")
def train(
    task: Annotated[str, typer.Option(metavar="NAME", help="A task of rnnscope tasks (e.g. adding-pascanu, copy).")],
    length: Annotated[int, typer.Option(parser=_positive_int, metavar="L", help="The task's nominal length.")],
    cell: Annotated[str, typer.Option(metavar="KIND", help="elman, pal, lstm or gru.")] = "elman",
    activation: Annotated[str, typer.Option(metavar="PHI", help="tanh, sigmoid or relu (elman, pal).")] = "tanh",
    hidden: HiddenOpt = 50,
    init: Annotated[str, typer.Option(metavar="INIT", help="default, sigmoid, basic-tanh, smart-tanh, orthogonal, "
                                      "identity.")] = "default",
    optimizer: Annotated[str, typer.Option(metavar="OPT", help="sgd, momentum, rmsprop or adam.")] = "sgd",
    lr: Annotated[float, typer.Option(parser=_finite_float, metavar="X", help="Learning rate.")] = 0.01,
    batch: Annotated[int, typer.Option(parser=_positive_int, metavar="B", help="Sequences per update.")] = 20,
    steps: Annotated[int, typer.Option(parser=_positive_int, metavar="N", help="Updates at most.")] = 10_000,
    clip_norm: Annotated[float | None, typer.Option("--clip-norm", parser=_nonnegative_float, metavar="C",
                                                    help="Pascanu's norm clipping at C (with the NaN/Inf fallback).")] = None,
    clip_value: Annotated[float | None, typer.Option("--clip-value", parser=_nonnegative_float, metavar="C",
                                                     help="Element-wise clipping at +-C.")] = None,
    clip_adaptive: Annotated[float | None, typer.Option("--clip-adaptive", parser=_nonnegative_float, metavar="X",
                                                        help="Clip at X times the running mean gradient norm.")] = None,
    regularizer_alpha: Annotated[float, typer.Option("--regularizer-alpha", parser=_nonnegative_float, metavar="A",
                                                     help="Pascanu's Omega regularizer weight (elman, pal).")] = 0.0,
    seed: SeedOpt = 0,
    eval_every: Annotated[int, typer.Option("--eval-every", parser=_positive_int, metavar="N")] = 100,
    eval_size: Annotated[int, typer.Option("--eval-size", parser=_positive_int, metavar="N")] = 1000,
    log_dir: Annotated[Path | None, typer.Option("--log-dir", parser=_path, metavar="DIR",
                                                 help="TensorBoard logs.")] = None,
    db: Annotated[Path | None, typer.Option("--db", parser=_path, metavar="FILE", help="Record the run in this store.")] = None,
    as_json: JsonOpt = False,
) -> None:
    from ..lab.train import TrainConfig, train as run_train
    cfg = TrainConfig(task=task, length=length, cell=cell, activation=activation, hidden=hidden, init=init,
                      optimizer=optimizer, lr=lr, batch=batch, steps=steps, clip_norm=clip_norm, clip_value=clip_value,
                      clip_adaptive=clip_adaptive, regularizer_alpha=regularizer_alpha, seed=seed,
                      eval_every=eval_every, eval_size=eval_size)
    from ..lab.tasks import get_task
    get_task(task)  # the name, checked before anything is opened
    writer = store = None
    try:
        if log_dir is not None:
            if log_dir.exists() and not log_dir.is_dir():
                raise InputError(f"log-dir: expected a folder, got {str(log_dir)!r} (a file)")
            from torch.utils.tensorboard import SummaryWriter
            writer = SummaryWriter(str(log_dir))
        if db is not None:
            from ..runs.store import Store
            store = Store(db)
        from ..core.threads import SMALL_STATE, torch_threads
        with torch_threads(1) if hidden <= SMALL_STATE else contextlib.nullcontext():  # small nets: one thread
            result = run_train(cfg, progress=not as_json, writer=writer, store=store)
    finally:
        if writer is not None:
            writer.close()
        if store is not None:
            store.close()
    d = result.to_dict()
    if as_json:
        _echo_json(d)
        return
    from rich.table import Table
    con = _console()
    con.print(f"[bold]rnnscope train[/bold]: {task} L = {length}, {cell} ({activation}), H = {hidden}, {optimizer} "
              f"lr {lr:g}, clip {cfg.clip() or 'off'}, alpha {regularizer_alpha:g}: [bold]{d['status']}[/bold] after "
              f"{d['steps']} steps ({d['seconds']:.1f} s); final loss {_fmt(d['final_loss'])} (baseline "
              f"{_fmt(d['baseline_loss'])}), error rate {_fmt(d['final_error_rate'])}")
    tab = Table(title="evaluations")
    keys = [k for k in ("step", "loss", "error_rate", "grad_norm", "clipped") if d["history"] and k in d["history"][0]]
    for k in keys:
        tab.add_column(k, justify="right")
    for rec in [d["history"][i] for i in _spread(list(range(len(d["history"]))), 12)]:
        tab.add_row(*[_fmt(rec.get(k)) if not isinstance(rec.get(k), (bool, int)) else str(rec.get(k)) for k in keys])
    con.print(tab)


# ----------------------------------------------------------------------------- study

@app.command(help="Run a training study (pascanu: SGD vs SGD-C vs SGD-CR; cells: Elman vs LSTM vs GRU) as a resumable "
                  "sweep; print its table and write its figure (success rate or loss / baseline against length).")
def study(
    name: Annotated[str, typer.Argument(metavar="NAME", help="pascanu, cells, or a study .toml file.")],
    db: DbOpt = Path("rnnscope-results.sqlite"),
    workers: WorkersOpt = None,
    scheduler: SchedulerOpt = None,
    retry_failed: RetryOpt = False,
    quick: Annotated[bool, typer.Option("--quick", help="The short version (as in make demo).")] = False,
    plot: Annotated[Path | None, typer.Option(parser=_path, metavar="FILE",
                                              help="The figure; default study-NAME.png beside --db.")] = None,
    as_json: JsonOpt = False,
) -> None:
    from ..lab.studies import load_study, plot_study, study_spec, study_table
    from ..runs.store import Store
    from ..runs.sweep import config_key, expand, run_sweep
    s = load_study(name)
    if plot is None:
        plot = db.with_name(f"study-{s.name}{'-quick' if quick else ''}.png")
    from ..core.plots import check_plot_path
    check_plot_path(plot)
    spec = study_spec(s, quick=quick)
    report = run_sweep(spec, db, workers=workers, scheduler=scheduler, retry_failed=retry_failed, progress=not as_json)
    _check_interrupted(report, db)
    keys = {config_key(spec.task, c) for c in expand(spec)}
    with Store(db) as store:
        rows = [r for r in store.rows() if r["key"] in keys]
    table = study_table(rows)
    plot_study(table, plot, measure=s.measure, title=f"study {s.name}: {s.description}")
    out = {"study": s.name, "quick": quick, "sweep": report.to_dict(), "db": str(db), "plot": str(plot),
           "table": [r.to_dict() for r in table]}
    if as_json:
        _echo_json(out)
        return
    from rich.table import Table
    con = _console()
    tab = Table(title=f"study {s.name}{' (quick)' if quick else ''}: {s.description}")
    for col in ("task", "method", "length", "runs", "solved", "success rate", "loss / baseline", "mean steps"):
        tab.add_column(col, justify="left" if col in ("task", "method") else "right")
    for r in table:
        tab.add_row(r.task, r.method, str(r.length), str(r.runs), str(r.solved), f"{r.success_rate:.2f}",
                    _fmt(r.mean_loss_over_baseline, ".3f"), _fmt(r.mean_steps, ".0f"))
    con.print(tab)
    con.print(f"{report.done} runs now, {report.skipped} already in {db}, {report.failed} failed; figure: {plot}")


# ----------------------------------------------------------------------------- claims

_VERDICT_STYLE = {"holds": "green", "holds-with-correction": "yellow", "refuted": "bold red"}


def _evidence_summary(ev: dict, n: int = 4) -> str:
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
                items.append(f"{prefix}{k}={_fmt(v, '.3g')}")
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
    from ..seeds.claims import run_claims
    ids = None if not only else [i.strip() for v in only for i in v.split(",") if i.strip()]
    if only and not ids:
        raise InputError("--only: expected claim ids (see rnnscope claims), got an empty value")
    results = run_claims(ids)
    if as_json:
        sys.stdout.write(json.dumps([r.to_dict() for r in results], allow_nan=False) + "\n")
        sys.stdout.flush()
        return
    from rich.table import Table
    con = _console()
    tab = Table(title="The seeds' claims, run as experiments", show_lines=True)
    for col, kw in (("id", dict(no_wrap=True)), ("seed", dict(no_wrap=True)), ("statement", dict(ratio=3)),
                    ("verdict", dict(no_wrap=True)), ("evidence", dict(ratio=2)), ("s", dict(justify="right"))):
        tab.add_column(col, overflow="fold", **kw)
    for r in results:
        ev = _evidence_summary(r.evidence)
        if "counterexample" in r.evidence:
            ev += "; counterexample in --json"
        tab.add_row(r.id, r.seed[:3], r.statement, f"[{_VERDICT_STYLE[r.verdict]}]{r.verdict}[/]", ev, f"{r.seconds:.2f}")
    con.print(tab)
    counts = {v: sum(r.verdict == v for r in results) for v in _VERDICT_STYLE}
    con.print(", ".join(f"{n} {v}" for v, n in counts.items()) + f" of {len(results)} claims; corrections and "
              f"counterexamples: rnnscope claims --json (or the report of rnnscope demo)")


# ----------------------------------------------------------------------------- reproduce

@app.command(help="Reproduce a seed's figures as the source computes them and correctly: PNG, SVG and a "
                  "caption file per figure in DIR. SEED: 000, 001, 002, 003 (or a seed file name), or all.")
def reproduce(
    seed: Annotated[str, typer.Argument(metavar="SEED", help="000, 001, 002, 003, a seed file name, or all.")],
    out: Annotated[Path, typer.Option(parser=_path, metavar="DIR", help="Folder for the figures.")]
    = Path("rnnscope-report"),
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list of the figures written.")] = False,
) -> None:
    from ..seeds.reproduce import reproduce as run_reproduce
    figs = run_reproduce(seed, out)
    if as_json:
        sys.stdout.write(json.dumps([jsonable(f.to_dict()) for f in figs], allow_nan=False) + "\n")
        sys.stdout.flush()
        return
    from rich.table import Table
    con = _console()
    tab = Table(title=f"Reproductions written to {out}/")
    for col in ("seed", "figure", "files", "title"):
        tab.add_column(col, overflow="fold", no_wrap=col in ("seed", "figure"))
    for f in figs:
        tab.add_row(f.seed[:3], f.name, f"{f.png}, {f.svg}, {f.caption_file}", f.title)
    con.print(tab)


# ----------------------------------------------------------------------------- demo

@app.command(help="The main job: sigmoid and tanh Elman RNNs below and above 1/gamma and a non-normal W_hh "
                  "with rho < 1/gamma < sigma_max; figures and summary.json in DIR, a summary table here.")
def demo(
    out: Annotated[Path, typer.Option(parser=_path, metavar="DIR", help="Folder for the figures and summary.json.")]
    = Path("rnnscope-report"),
    quick: Annotated[bool, typer.Option("--quick", metavar="", help="A smaller, faster run (S = 32, T = 100, B = 2).")] = False,
) -> None:
    from .demo import run_demo
    run_demo(out, quick=quick)


# ----------------------------------------------------------------------------- serve

def _port(v: object) -> int:
    try:
        i = _int_text(v)
    except ValueError:
        raise ValueError(f"expected a port number in [0, 65535], got {str(v)!r}") from None
    if not 0 <= i <= 65535:
        raise ValueError(f"expected a port number in [0, 65535], got {i}")
    return i


@app.command(help="The explorer: a local web page where sliders move the model and the gradient-flow views follow "
                  "(profile against the bound, eigenvalues and singular values of W_hh, per-step contributions, "
                  "saturation), with its JSON API under /api. Ctrl-C stops it.")
def serve(
    host: Annotated[str, typer.Option(metavar="HOST", help="Address to listen on (loopback unless told otherwise).")]
    = "127.0.0.1",
    port: Annotated[int, typer.Option(parser=_port, metavar="PORT", help="Port (0: any free one).")] = 8765,
    open_browser: Annotated[bool, typer.Option("--open", metavar="", help="Open the page in the default browser.")] = False,
    report: Annotated[Path | None, typer.Option(parser=_path, metavar="DIR",
                                                help="The claims report to link (a folder with index.html); default "
                                                     "./rnnscope-report if present, else generated on first visit.")]
    = None,
) -> None:
    from .web import serve as run_server
    run_server(host, port, open_browser=open_browser, report_dir=report)


# ----------------------------------------------------------------------------- diagnose

@app.command(help="Diagnose a saved PyTorch nn.RNN / nn.LSTM / nn.GRU: exact per-step gradient flow of every layer "
                  "and direction (log10 ||dL/dh_k||, ||dL/dc_k||, ||ds_T/ds_k||_2), sigma_max against 1/gamma, the "
                  "rate, the horizon, a verdict and advice. MODEL.pt: a state_dict with --arch, or a whole pickled "
                  "module with --trust.")
def diagnose(
    ctx: typer.Context,
    model: Annotated[Path, typer.Argument(parser=_path, metavar="MODEL.pt", help="A state_dict (torch.save(m.state_dict())) "
                                          "or, with --trust, a whole pickled module.")],
    inputs: Annotated[Path, typer.Option(parser=_path, metavar="FILE.npy",
                                         help="Inputs (T, D), (T, B, D), or (B, T, D) with batch_first.")],
    targets: Annotated[Path | None, typer.Option(parser=_path, metavar="FILE.npy",
                                                 help="Targets of every step or of the last step (see --loss); "
                                                      "without them L = sum of the last top-layer output.")] = None,
    loss: Annotated[str, typer.Option(parser=_choice(("mse", "ce")), metavar="LOSS",
                                      help="mse (float targets shaped like the output) or ce (class indices).")] = "mse",
    arch: Annotated[str | None, typer.Option(metavar="SPEC", help="For a state_dict: KIND:input=D,hidden=H[,layers=L]"
                                             "[,bidirectional][,batch_first][,proj=P][,bias=false], KIND = rnn_tanh, "
                                             "rnn_relu, lstm or gru.")] = None,
    trust: Annotated[bool, typer.Option("--trust", help="Allow a whole pickled module (unpickling runs code from the "
                                                        "file: only for files you trust).")] = False,
    jacobian_sequences: Annotated[int, typer.Option("--jacobian-sequences", parser=_nonnegative_int, metavar="N",
                                                    help="Sequences in the Jacobian-product profile (O(T S^3) each); "
                                                         "0 = skip it.")] = 4,
    as_json: JsonOpt = False,
    plot: Annotated[Path | None, typer.Option(parser=_path, metavar="FILE",
                                              help="Write the figure (heatmap and profiles) to FILE (.png, .svg, .pdf).")] = None,
) -> None:
    from ..interop.diagnose import diagnose as run_diagnose, target_loss
    from ..interop.torch_models import load_model, module_dtype, module_kind

    if plot is not None:
        from ..core.plots import check_plot_path
        check_plot_path(plot)
    if targets is None and _explicit(ctx, "loss"):
        raise InputError(f"loss: expected --targets FILE.npy to compute {loss} against, got --loss without --targets")
    module = load_model(model, arch, trust=trust)
    x = load_npy(inputs, "inputs")
    if x.dtype.kind not in "fiu":
        raise InputError(f"inputs: expected real numbers, got dtype {x.dtype}")
    if x.ndim in (2, 3):  # refuse a run that would not fit before allocating it (other shapes: diagnose's error)
        H = module.hidden_size
        P = getattr(module, "proj_size", 0) or H
        G = {"lstm": 4, "gru": 3}.get(module_kind(module)[:4].rstrip("_"), 1)
        runs = getattr(module, "num_layers", 1) * (2 if getattr(module, "bidirectional", False) else 1)
        T, B = (x.shape[0], x.shape[1] if x.ndim == 3 else 1)
        if x.ndim == 3 and getattr(module, "batch_first", False):
            T, B = B, T
        _check_memory(T * runs, B, P + H if G == 4 else H, x.shape[-1], G * H, torch.finfo(module_dtype(module)).bits // 8)
    loss_fn = None
    if targets is not None:
        y = _targets(load_npy(targets, "targets"))
        loss_fn = target_loss(loss, y, batch_first=bool(getattr(module, "batch_first", False)))
    d = run_diagnose(module, _float64(x), loss_fn, jacobian=jacobian_sequences > 0,
                     jacobian_sequences=max(jacobian_sequences, 1))
    if plot is not None:
        d.plot(plot)
    extra = {"model_file": str(model), "inputs": str(inputs), "targets": None if targets is None else str(targets),
             "loss_name": None if targets is None else loss, "plot": None if plot is None else str(plot)}
    if as_json:
        _echo_json({**d.to_dict(), **extra})
    else:
        _print_diagnosis(d, extra)


def _print_diagnosis(d, extra: dict) -> None:
    from rich.table import Table
    con = _console()
    con.print(f"[bold]rnnscope diagnose[/bold]: {extra['model_file']} ({d.model}, {d.num_layers} layer(s) x "
              f"{d.num_directions} direction(s), {d.dtype}), inputs {extra['inputs']}: T = {d.T}, B = {d.batch}")
    con.print(f"loss = {_fmt(d.loss)} ({d.loss_kind if extra['loss_name'] is None else extra['loss_name'] + ' against ' + extra['targets']})"
              + ("" if d.gradient_norm is None else f", ||dL/dtheta|| = {_fmt(d.gradient_norm)}"))
    tab = Table(title="Gradient flow per layer: log10 norms, batch means (k counts each direction's own steps)")
    for col in ("layer", "dir", "cell", "sigma_max(W_hh)", "1/gamma", "dL/dh_1", "dL/dh_T", "ds_T/ds_1", "rate/step",
                "horizon", "carry"):
        tab.add_column(col, justify="left" if col in ("dir", "cell") else "right", no_wrap=True)
    for l in d.layers:
        a = l.log10_adjoint_h
        tab.add_row(str(l.layer), l.direction, l.cell, _fmt(l.sigma_max), _fmt(None if not l.gamma else 1 / l.gamma),
                    _fmt(float(a[0]), ".2f"), _fmt(float(a[-1]), ".2f"),
                    "-" if l.log10_spectral is None else _fmt(float(l.log10_spectral[0]), ".2f"),
                    _fmt(l.rate_per_step, "+.3f"), "-" if l.horizon is None else f"{l.horizon} {l.horizon_kind}",
                    _fmt(l.far_carry_share(), ".2f"))
    con.print(tab)
    con.print("[bold]verdicts[/bold]")
    for l in d.layers:
        con.print(f"  {l.name}: {l.verdict}; weights: {l.theory_verdict}")
    con.print("[bold]advice[/bold]")
    for a in d.advice:
        con.print(f"  - {a}")
    con.print(f"seconds: {d.seconds:.3f}")
    if extra["plot"]:
        con.print(f"figure written to {extra['plot']}")


# ----------------------------------------------------------------------------- entry point

def _one_line(s: str) -> str:
    return " ".join(str(s).split())


def _option_name(e: click_exc.ClickException) -> str | None:
    param = getattr(e, "param", None)
    if param is not None:
        opts = getattr(param, "opts", None) or []
        return opts[0] if opts else getattr(param, "name", None)
    return None


def _usage_message(e: click_exc.UsageError, command: str | None) -> str:
    """Rewrite click's usage errors into 'what: expected X, got Y'."""
    where = f"rnnscope {command} --help" if command else "rnnscope --help"
    if isinstance(e, click_exc.NoSuchOption):
        cmd = getattr(getattr(e, "ctx", None), "command", None)
        known = sorted({o for p in getattr(cmd, "params", []) for o in getattr(p, "opts", []) if o.startswith("-")})
        hint = f" (did you mean {', '.join(sorted(e.possibilities))}?)" if e.possibilities else ""
        return f"option: expected one of {', '.join(known) or 'the options in ' + where}, got {e.option_name!r}{hint}"
    if isinstance(e, click_exc.MissingParameter):
        return f"{_option_name(e)}: expected a value (the option is required), got none"
    if isinstance(e, click_exc.BadParameter):
        msg = e.message.removeprefix("Value error, ")
        if "expected" not in msg:
            msg = f"expected a valid value, got: {msg}"
        return f"{_option_name(e) or 'argument'}: {msg}"
    if isinstance(e, click_exc.BadOptionUsage):
        if "requires an argument" in e.message:
            return f"{e.option_name}: expected a value after the option, got none"
        return f"{e.option_name}: expected a valid use (see {where}), got: {e.message}"
    msg = e.format_message()
    if msg.startswith("Got unexpected extra argument"):
        return f"arguments: expected only options (see {where}), got unexpected extra{msg.removeprefix('Got unexpected extra')}"
    return f"expected valid arguments (see {where}), got: {msg}"


def _error(command: str | None, msg: str) -> None:
    prefix = f"rnnscope {command}" if command else "rnnscope"
    try:
        sys.stderr.write(f"{prefix}: error: {_one_line(msg)}\n")
        sys.stderr.flush()
    except (OSError, ValueError):  # pragma: no cover - stderr closed
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with argv (default sys.argv[1:]) and return the exit code (0, 1 or 2)."""
    args = list(sys.argv[1:] if argv is None else argv)
    args = [a if isinstance(a, str) else str(a) for a in args]
    command = args[0] if args and args[0] in COMMANDS else None
    cmd = get_command(app)
    try:
        if not args:
            args = ["--help"]
        elif not args[0].startswith("-") and command is None:
            raise InputError(f"command: expected one of {', '.join(COMMANDS)}, got {args[0]!r}")
        rv = cmd.main(args=args, prog_name="rnnscope", standalone_mode=False)
    except InputError as e:
        _error(command, str(e))
        return 2
    except click_exc.NoArgsIsHelpError:  # a command group without its subcommand: its help was printed
        return 0
    except click_exc.UsageError as e:
        _error(command, _usage_message(e, command))
        return 2
    except click_exc.ClickException as e:
        _error(command, e.format_message())
        return 2
    except typer.Abort:
        _error(command, "aborted")
        return 1
    except KeyboardInterrupt:
        _error(command, "interrupted")
        return 130
    except MemoryError:
        _error(command, "out of memory: expected a problem that fits in this machine's memory, got a larger one")
        return 1
    except OSError as e:
        if e.errno == errno.EPIPE:  # output piped into a reader that closed (e.g. | head)
            if argv is None:  # the console script: keep the interpreter's final flush quiet
                try:
                    import os
                    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                except (OSError, ValueError):  # pragma: no cover
                    pass
            return 1
        _error(command, f"unexpected {type(e).__name__}: {e}")
        return 1
    except Exception as e:  # never a traceback: one line, exit 1
        _error(command, f"unexpected {type(e).__name__}: {e} (a bug in rnnscope; please report it with the command)")
        return 1
    if rv == 130:  # typer turns KeyboardInterrupt into Exit(130), which non-standalone mode returns
        _error(command, "interrupted")
        return 130
    return rv if isinstance(rv, int) and not isinstance(rv, bool) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
