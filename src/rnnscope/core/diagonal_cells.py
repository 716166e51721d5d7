"""Cells whose one-step Jacobian is diagonal (or complex-diagonal): what they share, and the five of them.

    kind     module               recurrence                                          J_t = ds_t/ds_{t-1}
    lru      linear_recurrences   h_t = lambda * h_{t-1} + gamma * (B x_t)   complex   2x2 blocks of lambda_j
    mamba    linear_recurrences   h_t[d, n] = exp(Delta_t[d] A[d, n]) h_{t-1}[d, n] + Delta_t[d] B_t[n] x_t[d]
                                                                                      diag(exp(Delta_t A))
    mingru   min_rnns             h_t = (1 - z_t) h_{t-1} + z_t g(htilde_t)           diag(1 - z_t)
    minlstm  min_rnns             h_t = f'_t h_{t-1} + i'_t g(htilde_t)               diag(f'_t)
    indrnn   min_rnns             h_t = phi(W_xh x_t + u * h_{t-1} + b_h)             diag(phi'(a_t) u)

The first four are linear in the state with input-dependent coefficients, s_t = a_t * s_{t-1} + b_t elementwise
(`transition`), so a whole sequence is one scan (`scan`: core/scan.py); IndRNN is not (phi acts on the state).
The cells live in the two modules named above (both build on DiagonalCell here); they can be imported from this
module too (loaded on first use, so that either module may be imported first).

DiagonalCell gives each of them, from its factored VJP (cell_contract), whose first factor F[0] is the diagonal
d_t of J_t = diag(d_t) (LRU overrides the Jacobian with its 2x2 blocks):

    jacobian(x, s_prev)  diag_embed(d_t)                                  (B, S, S)
    log_unit_gains(x, s_prev), unit_of_state()   log |d_t| per unit (LRU: log |lambda_j| for the pair of
                         coordinates (Re h_j, Im h_j)): the profile in closed form (gradients.diagonal_flow)
    vjp(x, s_prev, g)    vjp_apply(vjp_factors(x, s_prev, a), g)[0]       (B, S): g * d_t, J never formed
    array_names / to_arrays / from_arrays    the dataclass's tensor fields by name (a weights .npz)
    scan(x, s0, method)  states (T+1, B, S) by "log" | "associative" | "sequential" (the cell's scan_methods)

Legend: T time, B batch, S state size, D input size, H hidden, N state size per channel (mamba) or units (lru).

Example:
    >>> from rnnscope.core.diagonal_cells import MinGRUCell
    >>> cell = MinGRUCell.random(3, 2, seed=0)
    >>> x = torch.randn(6, 4, 2, dtype=torch.float64)
    >>> J = cell.jacobian(x[0], torch.zeros(4, 3, dtype=torch.float64))
    >>> bool((J == torch.diag_embed(torch.diagonal(J, dim1=-2, dim2=-1))).all())   # diagonal
    True
    >>> cell.scan(x).shape                                    # s_0..s_6
    torch.Size([7, 4, 3])
"""

from __future__ import annotations

import dataclasses
import importlib
import math
from typing import Callable, Mapping

import numpy as np
import torch

from .cell_contract import Cell, check_matrix, sized_generator
from .errors import InputError
from .scan import associative_scan, log_space_scan, sequential_scan
from .vocab import check

__all__ = ["DiagonalCell", "LRUCell", "MambaCell", "MinGRUCell", "MinLSTMCell", "IndRNNCell", "SCAN_METHODS",
           "check_fields", "check_option", "sized_generator", "linear_init"]

SCAN_METHODS = ("log", "associative", "sequential")
_HOMES = {"LRUCell": "linear_recurrences", "MambaCell": "linear_recurrences", "MinGRUCell": "min_rnns",
          "MinLSTMCell": "min_rnns", "IndRNNCell": "min_rnns"}


def __getattr__(name: str):  # the cells, from their modules on first use (PEP 562): they import this module
    if name in _HOMES:
        return getattr(importlib.import_module(f".{_HOMES[name]}", __package__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def check_fields(cell, shapes: Mapping[str, tuple[str, ...]]) -> dict[str, int]:
    """Check a cell's tensor fields against symbolic shapes, e.g. {"W": ("H", "D"), "b": ("H",)}: each a finite
    real floating-point tensor of that many dimensions, a symbol's size fixed by its first use, at least 1, one
    dtype for all. Returns the sizes {"H": ..., "D": ...}. A message names the array at fault, and for a size
    that disagrees, the array that fixed it ("b: expected shape (4,) (H = 4 from W), got (5,)").

    Example:
        >>> from types import SimpleNamespace as NS
        >>> check_fields(NS(W=torch.zeros(4, 2), b=torch.zeros(5)), {"W": ("H", "D"), "b": ("H",)})
        Traceback (most recent call last):
        ...
        rnnscope.core.errors.InputError: b: expected shape (4,) (H = 4 from W), got (5,)
    """
    sizes: dict[str, int] = {}
    source: dict[str, str] = {}  # symbol -> the array that fixed its size
    dtypes = set()
    for name, dims in shapes.items():
        m = getattr(cell, name)
        symbolic = f"({', '.join(dims)}{',' * (len(dims) == 1)})"
        if not isinstance(m, torch.Tensor) or m.dim() != len(dims):
            got = tuple(m.shape) if isinstance(m, torch.Tensor) else type(m).__name__
            raise InputError(f"{name}: expected shape {symbolic}, got {got}")
        if not m.is_floating_point():
            raise InputError(f"{name}: expected a real floating-point tensor, got {m.dtype}")
        for d, n in zip(dims, m.shape):
            if d not in sizes:
                if n < 1:
                    raise InputError(f"{name}: expected shape {symbolic} with {d} >= 1, got {tuple(m.shape)}")
                sizes[d], source[d] = n, name
        want = tuple(sizes[d] for d in dims)
        if tuple(m.shape) != want:
            why = ", ".join(dict.fromkeys(f"{d} = {sizes[d]} from {source[d]}" for d, n in zip(dims, m.shape)
                                          if n != sizes[d] and source[d] != name))
            raise InputError(f"{name}: expected shape {want}{f' ({why})' if why else ''}, got {tuple(m.shape)}")
        check_matrix(name, m, want)
        dtypes.add(m.dtype)
    if len(dtypes) > 1:
        raise InputError(f"{', '.join(shapes)}: expected one dtype, got {', '.join(sorted(map(str, dtypes)))}")
    return sizes


def check_option(name: str, value, ok: Callable[[float], bool], expected: str) -> float:
    """value as a float if it is a finite number with ok(value), else InputError 'name: expected ..., got ...'."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not ok(value):
        raise InputError(f"{name}: expected {expected}, got {value!r}")
    return float(value)


def linear_init(gen: torch.Generator, *shape: int, fan_in: int) -> torch.Tensor:
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)) in float64: nn.Linear's default for its weight and its bias."""
    return (torch.rand(*shape, generator=gen, dtype=torch.float64) * 2 - 1) / math.sqrt(fan_in)


class DiagonalCell(Cell):
    """A cell whose one-step Jacobian is diagonal (see the module docstring). Subclasses are frozen dataclasses of
    tensors (and options); vjp_factors' first factor is the diagonal of J_t (its real 2N view for LRU, which
    overrides jacobian). The linear ones give transition(u) -> (a, b) and, where b > 0 or its sign is known,
    log_transition(u) -> (log a, log |b|, sign of b or None); scan_methods lists the methods their scan allows."""

    scan_methods: tuple[str, ...] = ()  # empty: no scan (a nonlinear recurrence)
    default_scan: str = "associative"
    has_carry = False  # no separate carry term: the whole transition is one diagonal (vjp_apply's carry is ignored)

    @property
    def dtype(self) -> torch.dtype:
        return getattr(self, self.array_names()[0]).dtype

    @classmethod
    def array_names(cls) -> tuple[str, ...]:
        """The tensor fields, in order: the names of the arrays of a weights file."""
        return tuple(f.name for f in dataclasses.fields(cls) if f.type in ("torch.Tensor", torch.Tensor))

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], dtype: torch.dtype = torch.float64, **options):
        """The cell of named arrays (array_names; other names, e.g. a read-out's W_hy, b_y, are passed over), cast
        to dtype; options: the non-array fields (IndRNN's activation)."""
        names = cls.array_names()
        missing = [n for n in names if n not in arrays]
        if missing:
            raise InputError(f"{cls.kind} arrays: expected {', '.join(names)}, got "
                             f"{', '.join(sorted(arrays)) or 'none'} ({', '.join(missing)} missing)")
        return cls(**{n: torch.as_tensor(np.asarray(arrays[n])).to(dtype) for n in names}, **options)

    def jacobian(self, x, s_prev):
        return torch.diag_embed(self.vjp_factors(x, s_prev)[0])  # J_t = diag(d_t), d_t = F[0]   (B, S, S)

    def log_unit_gains(self, x: torch.Tensor, s_prev: torch.Tensor) -> torch.Tensor:
        """log c_u (..., U) for J_t = blockdiag(c_u Q_u), Q_u orthogonal and the same blocks at every step (the
        structure gradients.diagonal_flow profiles in closed form): here U = S, c_i = |d_t,i|, Q_i = sign(d_t,i)."""
        return torch.log(self.vjp_factors(x, s_prev)[0].abs())  # (..., S); log 0 = -inf for a dead unit

    def unit_of_state(self) -> torch.Tensor:
        """(S,) the unit u of each state coordinate (log_unit_gains' blocks): each coordinate its own here."""
        return torch.arange(self.state_size)

    def vjp(self, x, s_prev, g, a=None):
        return self.vjp_apply(self.vjp_factors(x, s_prev, a), g)[0]

    def transition(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise InputError(f"{self.kind}: expected a cell with a linear recurrence, got a nonlinear one (use unroll)")

    def log_transition(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        raise InputError(f"method: expected one of {', '.join(self.scan_methods)} for {self.kind}, got 'log'")

    def _scan_view(self, s: torch.Tensor) -> torch.Tensor:
        """The state (..., S) as the scan's s (the complex h for LRU)."""
        return s

    def _state_view(self, s: torch.Tensor) -> torch.Tensor:
        """The scan's s back as the state (..., S)."""
        return s

    def scan(self, x, s0=None, method: str | None = None) -> torch.Tensor:
        """The states s_0..s_T (T+1, B, S) over inputs x (T, B, D) or (T, D) from s0 (B, S) or (S,) (zeros if None),
        by a parallel scan of s_t = a_t * s_{t-1} + b_t (core/scan.py): "log" (log_space_scan), "associative" or
        "sequential" (the plain loop); None: the cell's default_scan. The same numbers as unroll(...).states."""
        from .unroll import as_batched_inputs  # here: unroll imports the cell registry, which imports this module
        if not self.scan_methods:  # IndRNN: phi acts on the state
            raise InputError(f"{self.kind}: expected a cell with a linear recurrence for scan, got a nonlinear one "
                             f"(use unroll)")
        method = self.default_scan if method is None else check("method", method, self.scan_methods)
        x = as_batched_inputs(x, self.dtype, self.input_size)
        B, S = x.shape[1], self.state_size
        s0 = torch.zeros(B, S, dtype=self.dtype) if s0 is None else torch.as_tensor(s0).to(self.dtype)
        if s0.shape in ((S,), (1, S)):
            s0 = s0.reshape(1, S).expand(B, S)  # one start shared by the batch
        if s0.shape != (B, S) or not bool(torch.isfinite(s0).all()):
            raise InputError(f"s0: expected finite numbers of shape ({S},) or ({B}, {S}), got {tuple(s0.shape)}")
        u = self.drive(x)  # (T, B, U): every step's drive in one product
        if method == "log":
            log_a, log_b, sign_b = self.log_transition(u)
            s = log_space_scan(log_a, log_b, self._scan_view(s0), sign_b=sign_b)
        else:
            a, b = self.transition(u)
            s = (associative_scan if method == "associative" else sequential_scan)(a, b, self._scan_view(s0))
        return self._state_view(s)
