"""Building cells and heads: random initialisations, or given arrays (a weights file).

Random models (`random_cell`), W_hh by `init` with gain g:
    normal      W_hh ~ N(0, g^2 / S)    (the circular law: rho(W_hh) -> g, sigma_max -> 2 g as S grows)
    orthogonal  W_hh = g Q, Q Haar-orthogonal (every singular value equals g: normal, rho = sigma_max = g)
    identity    W_hh = g I               (IRNN, Le et al. 2015)
W_xh ~ N(0, 1/D), biases 0. Gated cells use the same init for each gate's H x H block of W_hh.
The recurrences after the seeds (modern_cells.MODERN_CELLS: lru, mingru, minlstm, mamba, slstm, indrnn, cornn,
exprnn) are drawn as their papers initialise them (each class's `random`), with their own options (`options`:
e.g. r_min, r_max for lru); gain and init do not apply to them.

Arrays (`cell_from_arrays`), names by direction:
    elman, pal: W_hh (S, S), W_xh (S, D), b_h (S,)
    lstm, gru:  W_hh (G H, H), W_xh (G H, D), b_h (G H,) = PyTorch's bias_ih, optional b_hh (G H,) = bias_hh
                (G = 4 for LSTM, 3 for GRU, PyTorch's gate order)
    the modern kinds: their dataclass fields (weight_names(kind)), e.g. lru: nu_log, theta_log, gamma_log, B_re, B_im
    head:       optional W_hy (O, S), b_y (O,)

A whole model as the command line takes it (`assemble_model`): a random cell or a weights file (only the
array names above: `check_weight_names`), inputs from a file or N(0, X^2) / zeros of T steps and B sequences,
an optional start state file; every size checked against the memory budget (budget.py) before it is allocated.

Example:
    >>> cell = random_cell("elman", "tanh", hidden=8, input_size=2, gain=1.5, seed=0)
    >>> cell.W_hh.shape, cell.W_xh.shape
    (torch.Size([8, 8]), torch.Size([8, 2]))
    >>> m = assemble_model(hidden=4, length=5, batch=2, input_scale=0.5)
    >>> m.x.shape, m.inputs, m.model["source"]
    ((5, 2, 1), 'random N(0, 0.5^2), seed 0', 'random')
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Collection
from pathlib import Path
from typing import Mapping

import numpy as np
import torch

from .activations import get_activation
from .budget import GATES, check_cell_memory, check_memory, random_sizes
from .cells import CELL_KINDS, Cell, ElmanCell, GRUCell, LSTMCell, PalCell
from .modern_cells import ACTIVATED, MODERN_CELLS
from .vocab import ANALYSIS_KINDS
from .errors import InputError
from .files import load_npy, load_npz
from .heads import Head
from .unroll import START_STATES, initial_state
from .vocab import MATRIX_INITS

__all__ = ["INITS", "recurrent_matrix", "random_cell", "cell_from_arrays", "head_from_arrays", "DTYPES", "get_dtype",
           "weight_names", "check_weight_names", "as_float64", "as_targets", "load_inputs", "Model", "assemble_model"]

INITS = MATRIX_INITS  # how a random W_hh is drawn (core.vocab)
DTYPES = {"float64": torch.float64, "float32": torch.float32}


def get_dtype(name: str) -> torch.dtype:
    try:
        return DTYPES[name]
    except (KeyError, TypeError):
        raise InputError(f"dtype: expected one of {', '.join(DTYPES)}, got {name!r}") from None


def _check_kind(kind: str) -> None:
    if kind not in ANALYSIS_KINDS:
        raise InputError(f"cell: expected one of {', '.join(ANALYSIS_KINDS)}, got {kind!r}")


def recurrent_matrix(S: int, gain: float, init: str, gen: torch.Generator, dtype=torch.float64) -> torch.Tensor:
    """An (S, S) recurrent matrix by init 'normal' | 'orthogonal' | 'identity', scaled by gain."""
    if init == "normal":
        return torch.randn(S, S, generator=gen, dtype=torch.float64).mul_(gain / S**0.5).to(dtype)
    if init == "orthogonal":
        Q, R = torch.linalg.qr(torch.randn(S, S, generator=gen, dtype=torch.float64))
        Q = Q * torch.sign(torch.diagonal(R))  # Haar measure (Mezzadri 2007)
        return (gain * Q).to(dtype)
    if init == "identity":
        return (gain * torch.eye(S, dtype=torch.float64)).to(dtype)
    raise InputError(f"init: expected one of {', '.join(INITS)}, got {init!r}")


def random_cell(kind: str = "elman", activation: str | None = None, *, hidden: int = 32, input_size: int = 1,
                gain: float = 1.0, init: str = "normal", seed: int = 0, dtype: torch.dtype = torch.float64,
                **options) -> Cell:
    """A random cell (see the module docstring for the distributions). activation: phi of elman, pal, indrnn and
    exprnn (None: tanh, or the paper's for indrnn (relu)); options: the modern kinds' own (their `random`)."""
    _check_kind(kind)
    if not isinstance(hidden, int) or isinstance(hidden, bool) or hidden < 1:
        raise InputError(f"hidden: expected a positive integer, got {hidden!r}")
    if not isinstance(input_size, int) or isinstance(input_size, bool) or input_size < 1:
        raise InputError(f"input-size: expected a positive integer, got {input_size!r}")
    if kind in MODERN_CELLS:
        if gain != 1.0 or init != "normal":
            what = f"gain {gain!r}" if gain != 1.0 else f"init {init!r}"
            raise InputError(f"{'gain' if gain != 1.0 else 'init'}: expected none for the {kind} cell (initialised as "
                             f"its paper does), got {what}")
        if activation is not None:
            if kind not in ACTIVATED:
                raise InputError(f"activation: expected none for the {kind} cell (its nonlinearities are fixed), got "
                                 f"{activation!r}")
            options = {**options, "activation": get_activation(activation).name}
        cls = MODERN_CELLS[kind]
        known = [n for n, p in inspect.signature(cls.random).parameters.items()
                 if p.kind is inspect.Parameter.KEYWORD_ONLY and n not in ("seed", "dtype")]
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise InputError(f"options: expected {', '.join(known) or 'none'} for the {kind} cell, got "
                             f"{', '.join(unknown)}")
        return cls.random(hidden, input_size, seed=int(seed), dtype=dtype, **options)
    if options:
        raise InputError(f"options: expected none for the {kind} cell, got {', '.join(map(repr, options))}")
    activation = "tanh" if activation is None else activation
    if not (isinstance(gain, (int, float)) and np.isfinite(gain)):
        raise InputError(f"gain: expected a finite number, got {gain!r}")
    if init not in INITS:
        raise InputError(f"init: expected one of {', '.join(INITS)}, got {init!r}")
    gen = torch.Generator().manual_seed(int(seed))
    H, D = hidden, input_size
    if kind in ("elman", "pal"):
        act = get_activation(activation)
        W_hh = recurrent_matrix(H, gain, init, gen, dtype)
        W_xh = (torch.randn(H, D, generator=gen, dtype=torch.float64) / D**0.5).to(dtype)
        cls = ElmanCell if kind == "elman" else PalCell
        return cls(W_hh, W_xh, torch.zeros(H, dtype=dtype), act)
    G = GATES[kind]
    W_hh = torch.cat([recurrent_matrix(H, gain, init, gen, dtype) for _ in range(G)])
    W_xh = (torch.randn(G * H, D, generator=gen, dtype=torch.float64) / D**0.5).to(dtype)
    zeros = torch.zeros(G * H, dtype=dtype)
    return (LSTMCell if kind == "lstm" else GRUCell)(W_xh, W_hh, zeros, zeros.clone())


def _tensor(arrays: Mapping[str, np.ndarray], name: str, dtype: torch.dtype, where: str) -> torch.Tensor:
    if name not in arrays:
        raise InputError(f"{where}: expected an array named {name!r}, got only {sorted(arrays) or 'no arrays'}")
    return torch.as_tensor(np.asarray(arrays[name], dtype=np.float64)).to(dtype)


def cell_from_arrays(kind: str, activation: str, arrays: Mapping[str, np.ndarray], *,
                     dtype: torch.dtype = torch.float64, where: str = "weights") -> Cell:
    """A cell from named arrays (a weights .npz), with shape checks that name the offending array."""
    _check_kind(kind)
    if kind in MODERN_CELLS:
        cls = MODERN_CELLS[kind]
        missing = [n for n in weight_names(kind) if n not in arrays and n not in ("W_hy", "b_y")]
        if missing:
            raise InputError(f"{where}: expected arrays named {', '.join(missing)} for {kind}, got only "
                             f"{sorted(arrays) or 'no arrays'}")
        kw = {"activation": activation} if kind in ACTIVATED and activation is not None else {}
        return cls.from_arrays({n: arrays[n] for n in weight_names(kind) if n in arrays}, dtype=dtype, **kw)
    W_hh = _tensor(arrays, "W_hh", dtype, where)
    W_xh = _tensor(arrays, "W_xh", dtype, where)
    b_h = _tensor(arrays, "b_h", dtype, where)
    if kind in ("elman", "pal"):
        act = get_activation(activation)
        if W_hh.dim() != 2 or W_hh.shape[0] != W_hh.shape[1] or W_hh.shape[0] < 1:
            raise InputError(f"{where}: expected W_hh of shape (S, S) with S >= 1, got {tuple(W_hh.shape)}")
        S = W_hh.shape[0]
        if W_xh.dim() != 2 or W_xh.shape[0] != S or W_xh.shape[1] < 1:
            raise InputError(f"{where}: expected W_xh of shape ({S}, D) with D >= 1 (S = {S} from W_hh), got "
                             f"{tuple(W_xh.shape)}")
        if tuple(b_h.shape) != (S,):
            raise InputError(f"{where}: expected b_h of shape ({S},) (S = {S} from W_hh), got {tuple(b_h.shape)}")
        return (ElmanCell if kind == "elman" else PalCell)(W_hh, W_xh, b_h, act)
    G = GATES[kind]
    if W_hh.dim() != 2 or W_hh.shape[0] != G * W_hh.shape[1] or W_hh.shape[1] < 1:
        raise InputError(f"{where}: expected W_hh of shape ({G}*H, H) with H >= 1 for {kind}, got {tuple(W_hh.shape)}")
    H = W_hh.shape[1]
    if W_xh.dim() != 2 or W_xh.shape[0] != G * H or W_xh.shape[1] < 1:
        raise InputError(f"{where}: expected W_xh of shape ({G * H}, D) with D >= 1 for {kind} (H = {H} from W_hh), "
                         f"got {tuple(W_xh.shape)}")
    if tuple(b_h.shape) != (G * H,):
        raise InputError(f"{where}: expected b_h of shape ({G * H},) for {kind} (H = {H} from W_hh), got "
                         f"{tuple(b_h.shape)}")
    b_hh = _tensor(arrays, "b_hh", dtype, where) if "b_hh" in arrays else torch.zeros(G * H, dtype=dtype)
    if tuple(b_hh.shape) != (G * H,):
        raise InputError(f"{where}: expected b_hh of shape ({G * H},) for {kind} (H = {H} from W_hh), got "
                         f"{tuple(b_hh.shape)}")
    return (LSTMCell if kind == "lstm" else GRUCell)(W_xh, W_hh, b_h, b_hh)


def head_from_arrays(arrays: Mapping[str, np.ndarray], S: int, kind: str = "mse", *,
                     dtype: torch.dtype = torch.float64, where: str = "weights") -> Head:
    """The head o = W_hy h + b_y from arrays; W_hy absent means the identity head o = h (b_y = 0)."""
    if "W_hy" not in arrays:
        if "b_y" in arrays:
            raise InputError(f"{where}: expected W_hy together with b_y, got b_y alone")
        return Head.identity(S, kind, dtype)
    W_hy = _tensor(arrays, "W_hy", dtype, where)
    if W_hy.dim() != 2 or W_hy.shape[1] != S or W_hy.shape[0] < 1:
        raise InputError(f"{where}: expected W_hy of shape (O, {S}) with O >= 1, got {tuple(W_hy.shape)}")
    b_y = _tensor(arrays, "b_y", dtype, where) if "b_y" in arrays else torch.zeros(W_hy.shape[0], dtype=dtype)
    if tuple(b_y.shape) != (W_hy.shape[0],):
        raise InputError(f"{where}: expected b_y of shape ({W_hy.shape[0]},), got {tuple(b_y.shape)}")
    return Head(W_hy, b_y, kind)


# ----------------------------------------------------------------------------- a whole model from files or seeds

def weight_names(kind: str) -> tuple[str, ...]:
    """The arrays a weights file of this cell kind may hold (the module docstring's names)."""
    if kind in MODERN_CELLS:
        return MODERN_CELLS[kind].array_names() + ("W_hy", "b_y")
    return ("W_hh", "W_xh", "b_h") + (("b_hh",) if kind in GATES else ()) + ("W_hy", "b_y")


def check_weight_names(kind: str, arrays: Mapping[str, np.ndarray], where: str = "weights") -> None:
    """An InputError naming the arrays a weights file holds beyond weight_names(kind)."""
    allowed = weight_names(kind)
    extra = sorted(set(arrays) - set(allowed))
    if extra:
        raise InputError(f"{where}: expected only arrays named {', '.join(allowed)}, got also "
                         f"{', '.join(map(repr, extra))}")


def as_float64(a: np.ndarray) -> np.ndarray:
    """A loaded array as float64 (float16, longdouble, ints, bool alike). Values beyond float64's range become
    inf, which the cells, unroll and heads refuse with their own 'expected finite numbers' errors."""
    with np.errstate(over="ignore", invalid="ignore"):
        return np.asarray(a, dtype=np.float64)


def as_targets(a: np.ndarray) -> np.ndarray:
    """Targets as int64 class indices (integer files); float16/32/64 files as they are, so that a message about
    them names the file's own dtype (the heads and losses convert them, exactly, to the analysis dtype), other
    floats (longdouble, which torch cannot hold) as float64; bool stays bool (and is refused)."""
    if a.dtype.kind in "iu":
        return a.astype(np.int64)  # uint64 beyond 2^63 wraps negative: refused by the class-range check
    if a.dtype.kind == "b" or a.dtype in (np.float16, np.float32, np.float64):
        return a
    return as_float64(a)


def load_inputs(path, D: int, *, nonempty: bool = True) -> np.ndarray:
    """Inputs (T, D) or (T, B, D) from a .npy file, as float64, for a cell of input size D; nonempty: T, B >= 1."""
    x = as_float64(load_npy(path, "inputs"))
    if x.ndim not in (2, 3):
        raise InputError(f"inputs: expected shape (T, D) or (T, B, D), got {x.shape}")
    if nonempty and (x.shape[0] < 1 or (x.ndim == 3 and x.shape[1] < 1)):
        raise InputError(f"inputs: expected at least one step and one sequence, got shape {x.shape}")
    if x.shape[-1] != D:
        raise InputError(f"inputs: expected input size D = {D} (the weights' W_xh has {D} columns), "
                         f"got D = {x.shape[-1]}")
    return x


@dataclasses.dataclass(frozen=True)
class Model:
    """A cell with its inputs and start state, and how they were made."""
    cell: Cell
    x: np.ndarray  # (T, B, D) or (T, D)
    s0: np.ndarray | None  # (S,) or (B, S); None: zeros
    model: dict  # how the cell was made: source 'random' (hidden, input_size, gain, init, seed) or 'weights'; dtype
    inputs: str  # how the inputs were made
    T: int
    start: str = "zeros"  # how s0 was made: "zeros", "random N(0, scale^2), seed n" or "file PATH"


def _flags(names, given: Collection[str]) -> list[str]:
    return [f"--{n.replace('_', '-')}" for n in names if n in given]


def assemble_model(cell: str = "elman", activation: str = "tanh", hidden: int = 32, input_size: int = 1,
                   length: int = 100, batch: int = 1, gain: float = 1.0, init: str = "normal", seed: int = 0,
                   dtype: str = "float64", weights: Path | None = None, inputs: Path | None = None,
                   h0: Path | str | None = None, input_scale: float = 0.0, h0_scale: float = 1.0,
                   start: str = "zeros", given: Collection[str] = (), options: Mapping | None = None) -> Model:
    """The validated cell, inputs and start state: a random cell (hidden, input_size, gain, init, seed) or the
    arrays of `weights` (.npz); the inputs of `inputs` (.npy, (T, D) or (T, B, D)) or `length` x `batch` steps of
    N(0, input_scale^2) (seeded apart from the weights) or zeros; the start state of `h0`: a .npy file,
    "zeros", "random" (N(0, h0_scale^2), seeded apart from the weights and inputs), or None for `start`'s rule
    (core.unroll.initial_state: "zeros", "random", or "auto": random for an autonomous run, else zeros).

    given: the names of the arguments the user set (not defaults); setting both a file and what it replaces
    (weights and hidden, inputs and length, ...) is an InputError, as is --activation for a gated cell.
    options: a modern cell's own options (random_cell's **options, e.g. {"r_min": 0.9} for lru).
    """
    dt = get_dtype(dtype)
    itemsize = torch.finfo(dt).bits // 8
    _check_kind(cell)
    options = dict(options or {})
    fixed = cell in GATES or (cell in MODERN_CELLS and cell not in ACTIVATED)
    if fixed and "activation" in given:
        what = (f"the gated cell {cell} (its nonlinearities are fixed: sigmoid gates, tanh)" if cell in ("lstm", "gru")
                else f"the {cell} cell (its nonlinearities are fixed)")
        raise InputError(f"activation: expected no --activation for {what}, got {activation!r}")
    if cell in MODERN_CELLS:
        both = _flags(("gain", "init"), given)
        if both:
            raise InputError(f"{both[0][2:]}: expected no {' or '.join(both)} for the {cell} cell (initialised as its "
                             f"paper does; its own options instead), got {both[0]}")
    if options and cell not in MODERN_CELLS:
        raise InputError(f"options: expected none for the {cell} cell, got {', '.join(sorted(options))}")
    if weights is not None:
        both = _flags(("hidden", "input_size", "gain", "init"), given)
        if both:
            raise InputError(f"weights: expected either --weights or the random model's {', '.join(both)}, got both")
        if options:
            raise InputError(f"weights: expected either --weights or the random {cell} cell's options, got both "
                             f"({', '.join(sorted(options))})")
        arrays = {k: as_float64(v) for k, v in load_npz(weights, "weights").items()}
        model_cell = cell_from_arrays(cell, activation if cell not in MODERN_CELLS or "activation" in given else None,
                                      arrays, dtype=dt)
        check_weight_names(cell, arrays)
        head_from_arrays(arrays, model_cell.h_size, dtype=dt)  # shapes only
        model = {"source": "weights", "weights": str(weights)}
    else:
        S_rand, A_rand = random_sizes(cell, hidden, input_size)
        check_memory(length if inputs is None else 1, batch if inputs is None else 1, S_rand, input_size, A_rand,
                     itemsize)
        if cell in MODERN_CELLS:
            model_cell = random_cell(cell, activation if "activation" in given else None, hidden=hidden,
                                     input_size=input_size, seed=seed, dtype=dt, **options)
            model = {"source": "random", "hidden": hidden, "input_size": input_size, "seed": seed,
                     "options": options}
        else:
            model_cell = random_cell(cell, activation, hidden=hidden, input_size=input_size, gain=gain, init=init,
                                     seed=seed, dtype=dt)
            model = {"source": "random", "hidden": hidden, "input_size": input_size, "gain": gain, "init": init,
                     "seed": seed}
    model["dtype"] = dtype
    D = model_cell.input_size
    if inputs is not None:
        both = _flags(("length", "batch", "input_scale"), given)
        if both:
            raise InputError(f"inputs: expected either --inputs or {', '.join(both)}, got both")
        x = load_inputs(inputs, D)
        T, B = x.shape[0], (x.shape[1] if x.ndim == 3 else 1)
        input_desc = f"file {inputs}"
        check_cell_memory(model_cell, T, B, itemsize)
    else:
        T, B = length, batch
        check_cell_memory(model_cell, T, B, itemsize)
        if input_scale > 0:
            rng = np.random.default_rng([seed, 1])  # its own stream, apart from the weights' generator
            x = input_scale * rng.standard_normal((T, B, D))
            input_desc = f"random N(0, {input_scale:g}^2), seed {seed}"
        else:
            x = np.zeros((T, B, D))
            input_desc = "zeros"
    if h0 is not None and str(h0) not in START_STATES:
        s0 = as_float64(load_npy(h0, "h0"))
        return Model(model_cell, x, s0, model, input_desc, T, f"file {h0}")
    s0, how = initial_state(model_cell, torch.as_tensor(x), None, start=start if h0 is None else str(h0),
                            scale=h0_scale, seed=seed)
    return Model(model_cell, x, None if s0 is None else s0.numpy(), model, input_desc, T, how)
