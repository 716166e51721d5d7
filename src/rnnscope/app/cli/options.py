"""The command line's option parsers and shared option types, each defined once.

A parser gets the raw value (a string from the command line, or the default) and returns the converted value or
raises ValueError("expected X, got Y"); `main` prefixes the option's name. The model options of `profile` and
`lyapunov` (a random model or --weights; --inputs or random/zero inputs) are one block, `model_options`, which
adds them to a command and hands it one `ModelOptions`.

Example:
    >>> positive_int("3"), seed("0"), finite_float("1e-3"), choice(("a", "b"))("b")
    (3, 0, 0.001, 'b')
    >>> positive_int("0")
    Traceback (most recent call last):
    ...
    ValueError: expected a positive integer, got 0
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
import os
from pathlib import Path
from typing import Annotated, Callable, Sequence

import typer
from typer._click.core import ParameterSource

from ...core.build import DTYPES
from ...core.vocab import ACTIVATIONS, ANALYSIS_KINDS, MATRIX_INITS
from ...runs.progress import progress_enabled

__all__ = ["choice", "positive_int", "nonnegative_int", "seed", "finite_float", "nonnegative_float", "path", "port",
           "cell_option", "cell_options",
           "explicit", "ModelOptions", "model_options", "CellOpt", "ActivationOpt", "HiddenOpt", "SeedOpt", "JsonOpt",
           "DbOpt", "WorkersOpt", "SchedulerOpt", "RetryOpt", "QuietOpt", "progress_enabled"]


# ----------------------------------------------------------------------------- parsers

def choice(choices: Sequence[str]) -> Callable[[object], str]:
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


def _integer(what: str, lo: int, hi: float = float("inf")) -> Callable[[object], int]:
    """A parser of whole numbers lo <= i < hi whose error says `expected <what>, got ...`."""
    def parse(v: object) -> int:
        try:
            i = _int_text(v)
        except ValueError:
            raise ValueError(f"expected {what}, got {str(v)!r}") from None
        if not lo <= i < hi:
            raise ValueError(f"expected {what}, got {i}")
        return i
    return parse


positive_int = _integer("a positive integer", 1)
nonnegative_int = _integer("an integer >= 0", 0)
seed = _integer("an integer seed in [0, 2^63)", 0, 2**63)


def finite_float(v: object) -> float:
    try:
        f = float(str(v).strip()) if not isinstance(v, (int, float)) or isinstance(v, bool) else float(v)
    except ValueError:
        raise ValueError(f"expected a finite number, got {str(v)!r}") from None
    if not math.isfinite(f):
        raise ValueError(f"expected a finite number, got {str(v)!r}")
    return f


def nonnegative_float(v: object) -> float:
    f = finite_float(v)
    if f < 0:
        raise ValueError(f"expected a finite number >= 0, got {f}")
    return f


def positive_float(v: object) -> float:
    f = finite_float(v)
    if f <= 0:
        raise ValueError(f"expected a finite number > 0, got {f}")
    return f


def cell_option(v: object) -> tuple[str, float | int | str]:
    """--cell-option KEY=VALUE: a modern cell's own option (core.build.random_cell's **options), the value a number
    where it reads as one (an integer where it is whole: heads=4), else the word (forget=exp)."""
    s = str(v)
    key, sep, val = s.partition("=")
    key = key.strip().replace("-", "_")
    if not sep or not key.isidentifier() or not val.strip():
        raise ValueError(f"expected KEY=VALUE (e.g. r_min=0.9), got {s!r}")
    val = val.strip()
    try:
        return key, _int_text(val)
    except ValueError:
        pass
    try:
        return key, finite_float(val)
    except ValueError:
        return key, val


def cell_options(texts: Sequence[str] | None, given: dict | None = None) -> dict:
    """Every --cell-option KEY=VALUE (cell_option) added to the options given by their own flags (--r-min ...): a
    dict for core.build.random_cell's **options; a key given twice is an InputError."""
    from ...core.errors import InputError
    opts = dict(given or {})
    for text in texts or []:
        try:
            key, value = cell_option(text)
        except ValueError as e:
            raise InputError(f"cell-option: {e}") from None
        if key in opts:
            raise InputError(f"cell-option: expected each option once, got {key} twice")
        opts[key] = value
    return opts


def start_state(v: object) -> str:
    """--h0: one of core.unroll.START_STATES, or a file name (checked when it is read)."""
    return str(path(v))


NAME_MAX = 255  # bytes in one part of a path (Linux, macOS); longer parts fail in open() with ENAMETOOLONG


def path(v: object) -> Path:
    """A file or folder name: not empty, no NUL, no part longer than NAME_MAX bytes (refused here, by the option's
    name, rather than by the operating system after the computation)."""
    s = str(v)
    if not s or "\x00" in s:
        raise ValueError(f"expected a file name, got {s!r}")
    longest = max(len(os.fsencode(part)) for part in s.split(os.sep))
    if longest > NAME_MAX:
        raise ValueError(f"expected a file name whose parts have at most {NAME_MAX} bytes, got {s!r} "
                         f"(a part of {longest} bytes)")
    return Path(s)


def port(v: object) -> int:
    try:
        i = _int_text(v)
    except ValueError:
        raise ValueError(f"expected a port number in [0, 65535], got {str(v)!r}") from None
    if not 0 <= i <= 65535:
        raise ValueError(f"expected a port number in [0, 65535], got {i}")
    return i


def explicit(ctx: typer.Context, name: str) -> bool:
    """Whether the option was given on the command line (not its default)."""
    return ctx.get_parameter_source(name) not in (None, ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP)


# ----------------------------------------------------------------------------- shared option types

CellOpt = Annotated[str, typer.Option(parser=choice(ANALYSIS_KINDS), metavar="KIND",
                                      help="elman, pal, lstm or gru (lstm: the full state (h, c)); after the seeds: "
                                           "lru, mingru, minlstm, mamba, slstm, indrnn, cornn, exprnn.")]
ActivationOpt = Annotated[str, typer.Option(parser=choice(ACTIVATIONS), metavar="PHI",
                                            help="sigmoid, tanh, relu or identity: phi of the vanilla cells.")]
HiddenOpt = Annotated[int, typer.Option(parser=positive_int, metavar="S", help="Random model: hidden size.")]
SeedOpt = Annotated[int, typer.Option(parser=seed, metavar="N", help="Seed of the random model and inputs.")]
JsonOpt = Annotated[bool, typer.Option("--json", metavar="", help="Print one JSON object instead of tables.")]
DbOpt = Annotated[Path, typer.Option("--db", parser=path, metavar="FILE", help="The SQLite results store.")]
WorkersOpt = Annotated[int | None, typer.Option(parser=positive_int, metavar="N",
                                                help="Local worker processes (default: the CPU count).")]
SchedulerOpt = Annotated[str | None, typer.Option(metavar="tcp://HOST:PORT",
                                                  help="Run on this dask.distributed scheduler instead.")]
RetryOpt = Annotated[bool, typer.Option("--retry-failed", help="Run configs recorded as failed again.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", help="No progress bar. It goes to stderr, whatever the output "
                                        "format (--json too), and only when stderr is a terminal.")]
# a command with QuietOpt passes progress_enabled(quiet) (runs.progress: the one rule) to the library


# ----------------------------------------------------------------------------- the model block

_START_HELP = {"auto": "random for an autonomous run (zero inputs, which never leave the fixed point 0), else zeros.",
               "zeros": "zeros."}


def _model_block(length: int, start: str = "zeros") -> list[tuple[str, object, object]]:
    """(name, option type, default) of the model options, in their --help order; `length` is the command's T,
    `start` the rule for the initial state when --h0 is not given ("zeros" or "auto")."""
    start_help = _START_HELP[start]
    return [
        ("cell", CellOpt, "elman"),
        ("activation", ActivationOpt, "tanh"),
        ("hidden", HiddenOpt, 32),
        ("input_size", Annotated[int, typer.Option("--input-size", parser=positive_int, metavar="D",
                                                   help="Random model: input size.")], 1),
        ("length", Annotated[int, typer.Option(parser=positive_int, metavar="T",
                                               help="Steps T when no --inputs file is given.")], length),
        ("batch", Annotated[int, typer.Option(parser=positive_int, metavar="B",
                                              help="Sequences B when no --inputs file is given.")], 1),
        ("gain", Annotated[float, typer.Option(parser=finite_float, metavar="g",
                                               help="Random model: W_hh gain (normal: N(0, g^2/S)).")], 1.0),
        ("init", Annotated[str, typer.Option(parser=choice(MATRIX_INITS), metavar="INIT",
                                             help="Random model: W_hh = normal, orthogonal or identity (times g).")],
         "normal"),
        ("seed", SeedOpt, 0),
        ("dtype", Annotated[str, typer.Option(parser=choice(tuple(DTYPES)), metavar="DTYPE",
                                              help="float64 or float32: the analysis' floating point type.")],
         "float64"),
        ("weights", Annotated[Path | None, typer.Option(parser=path, metavar="FILE.npz",
                                                        help="Arrays W_hh, W_xh, b_h (optional W_hy, b_y; b_hh for "
                                                             "lstm/gru).")], None),
        ("inputs", Annotated[Path | None, typer.Option(parser=path, metavar="FILE.npy",
                                                       help="Inputs (T, D) or (T, B, D); zeros of --length steps if "
                                                            "omitted.")], None),
        ("h0", Annotated[str | None, typer.Option("--h0", parser=start_state, metavar="zeros|random|FILE.npy",
                                                  help="Initial state: zeros, random (N(0, X^2) per entry, "
                                                       "--h0-scale, seeded apart from the weights) or a file (S,) "
                                                       "or (B, S) (lstm: (h, c) stacked, 2H). Default: " + start_help
                                                  )], None),
        ("h0_scale", Annotated[float, typer.Option("--h0-scale", parser=positive_float, metavar="X",
                                                   help="The scale of --h0 random.")], 1.0),
        ("input_scale", Annotated[float, typer.Option("--input-scale", parser=nonnegative_float, metavar="X",
                                                      help="Random inputs N(0, X^2) (seeded) instead of zeros; "
                                                           "0 = zeros.")], 0.0),
        ("r_min", Annotated[float | None, typer.Option("--r-min", parser=nonnegative_float, metavar="R",
                                                       help="lru: the smallest |lambda| of the ring its eigenvalues "
                                                            "are drawn on (default 0, the paper's).")], None),
        ("r_max", Annotated[float | None, typer.Option("--r-max", parser=positive_float, metavar="R",
                                                       help="lru: the largest |lambda| (default 1, the paper's; "
                                                            "every |lambda| < 1).")], None),
        ("cell_option", Annotated[list[str] | None, typer.Option(
            "--cell-option", metavar="KEY=VALUE",
            help="A modern cell's own option, repeatable: lru max_phase; mamba dt_min, dt_max; slstm heads, forget "
                 "(sigmoid | exp); indrnn u_max; cornn dt, gamma, epsilon; exprnn skew_init (henaff | cayley).")], None),
    ]


_OPTION_NAMES = ("r_min", "r_max", "cell_option")  # a modern cell's own options: assemble_model's `options`
_MODEL_NAMES = tuple(name for name, _, _ in _model_block(1))
_ASSEMBLE_NAMES = tuple(n for n in _MODEL_NAMES if n not in _OPTION_NAMES)


@dataclasses.dataclass(frozen=True)
class ModelOptions:
    """The model options as given: a random model (hidden, input_size, gain, init, seed) or --weights; --inputs
    or --length/--batch/--input-scale; --h0. `given` names the options typed on the command line."""
    cell: str
    activation: str
    hidden: int
    input_size: int
    length: int
    batch: int
    gain: float
    init: str
    seed: int
    dtype: str
    weights: Path | None
    inputs: Path | None
    h0: str | None  # zeros | random | a file name | None: the command's start rule
    h0_scale: float
    input_scale: float
    r_min: float | None
    r_max: float | None
    cell_option: list[str] | None
    given: frozenset[str]
    start: str = "zeros"  # the command's rule without --h0: "zeros" or "auto"

    def options(self) -> dict:
        """The modern cell's options: --r-min, --r-max and every --cell-option KEY=VALUE (a key given twice is an
        InputError)."""
        return cell_options(self.cell_option, {k: v for k, v in (("r_min", self.r_min), ("r_max", self.r_max))
                                               if v is not None})

    def build(self):
        """The validated cell, inputs and start state (core.build.assemble_model)."""
        from ...core.build import assemble_model
        return assemble_model(**{n: getattr(self, n) for n in _ASSEMBLE_NAMES}, start=self.start, given=self.given,
                              options=self.options())


def model_options(*, length: int, start: str = "zeros") -> Callable[[Callable], Callable]:
    """Give a command the model options in place of its parameter `model: ModelOptions` (length: the default T;
    start: the initial state without --h0, "zeros" or "auto", core.unroll.initial_state).

    The command's own parameters keep their places after the block; typer reads the rewritten signature.
    """
    def decorate(fn: Callable) -> Callable:
        sig = inspect.signature(fn, eval_str=True)  # the command's annotations as objects, for typer
        own = [p for p in sig.parameters.values() if p.name not in ("model", "ctx")]
        block = [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, annotation=t, default=d)
                 for n, t, d in _model_block(length, start)]
        ctx_param = inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context)
        wants_ctx = "ctx" in sig.parameters

        @functools.wraps(fn)
        def command(ctx: typer.Context, **kwargs):
            values = {n: kwargs.pop(n) for n in _MODEL_NAMES}
            m = ModelOptions(**values, given=frozenset(n for n in _MODEL_NAMES if explicit(ctx, n)), start=start)
            return fn(ctx, model=m, **kwargs) if wants_ctx else fn(model=m, **kwargs)

        params = [ctx_param] + block + [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own]
        command.__signature__ = sig.replace(parameters=params)
        command.__annotations__ = {p.name: p.annotation for p in params}
        del command.__wrapped__  # typer must read the new signature, not the wrapped one
        return command
    return decorate
