"""The cell contract: one step and its exact one-step Jacobian, nothing more (docs/architecture.md); FunctionCell.

A cell maps (x_t, s_{t-1}) to s_t for a batch:

    forward(x_t, s_prev) -> (s_t, a_t)     x_t (B, D), s_prev (B, S), s_t (B, S), a_t (B, A)
                         = forward_driven(drive(x_t), s_prev), where drive(x) (e.g. W_xh x + b_h) is the
                         part that does not depend on the state, so unroll can form it for all steps at once
    step(x_t, s_prev)    -> s_t
    jacobian(x_t, s_prev)-> ds_t/ds_{t-1}  (B, S, S), column-vector convention J[b, i, j] = d s_t[i] / d s_{t-1}[j]
    vjp(x_t, s_prev, g)  -> g^T ds_t/ds_{t-1}  (B, S), without forming J where the cell allows
    vjp_factors(x, s_prev, a, s_new) -> F     the numbers of a step its VJP multiplies by (phi'(a_t), gates),
                         for any leading dimensions: on (T, B, .) tensors every step of a trace at once
    vjp_apply(F, g, carry) -> (g^T ds_t/ds_{t-1}, dL/du_t)   the VJP's products only, u_t = drive(x_t);
                         vjp = vjp_apply(vjp_factors(...), g)[0]: one copy of each cell's backward math, used
                         step by step or, factors formed once for a whole trace, inside a backward sweep
    step_into(z, s_prev, s_out)  optional (LSTM, GRU): forward_driven in place, for unroll's buffers without
                         autograd: z holds u_t on entry and a_t on exit, s_t is written into s_out

a_t are the pre-activations, the arguments of the step's nonlinearities (where units saturate).
Legend: T time, B batch, S state size, D input size, H hidden size (S = H, or S = 2H for LSTM).

Seed 002 writes the Jacobian as W_hh^T diag(phi'(a)): that is the row-vector (transposed) convention.
Here J = diag(phi'(a)) W_hh, whose transpose it is; norms and singular values are the same.

Time loops never live here: see unroll.py and the backward sweeps in bptt.py and flow.py.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from .errors import InputError

__all__ = ["Cell", "WeightedCell", "FunctionCell", "check_matrix", "affine", "rows", "sized_generator"]



def affine(x: torch.Tensor, W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """x W^T + b for x (..., D), W (O, D), b (O,): one 2-D product over all the leading dimensions (..., O)."""
    return torch.addmm(b, x.reshape(-1, x.shape[-1]), W.T).reshape(*x.shape[:-1], W.shape[0])


def rows(x: torch.Tensor) -> torch.Tensor:
    """x (..., n) as a matrix (N, n): the leading dimensions (steps, sequences) flattened into rows."""
    return x.reshape(-1, x.shape[-1])


def sized_generator(kind: str, hidden: int, input_size: int, seed: int, unknown, options: tuple[str, ...] = ()
                    ) -> torch.Generator:
    """The checks every modern cell's `random` starts with (no unknown options, positive sizes), and its seeded
    generator. options: the cell's own option names, for the message."""
    if unknown:
        known = ", ".join(options) if options else f"only the {kind} cell's own options"
        raise InputError(f"options: expected {known} for the {kind} cell, got {', '.join(map(repr, sorted(unknown)))}")
    for name, v in (("hidden", hidden), ("input_size", input_size)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise InputError(f"{name}: expected a positive integer, got {v!r}")
    return torch.Generator().manual_seed(int(seed))


def check_matrix(name: str, m: torch.Tensor, shape: tuple[int, ...], why: str = "") -> None:
    """m a finite tensor of this shape, else an InputError naming it; why: where the sizes come from, for the
    message ("H = 4 from W_hh"), so that a reader can tell which of two arrays disagrees."""
    why = f" ({why})" if why else ""
    if not isinstance(m, torch.Tensor):
        raise InputError(f"{name}: expected a torch.Tensor of shape {shape}{why}, got {type(m).__name__}")
    if tuple(m.shape) != tuple(shape):
        raise InputError(f"{name}: expected shape {tuple(shape)}{why}, got {tuple(m.shape)}")
    if not torch.isfinite(m).all():
        raise InputError(f"{name}: expected finite numbers, got NaN or Inf")


class Cell:
    """Base class: the contract. Subclasses implement forward and jacobian; vjp defaults to g^T J."""

    kind: str = "cell"
    state_size: int
    input_size: int
    state_label: str = "h"  # what the state s is, for reports: "h" or "(h, c)"

    @property
    def dtype(self) -> torch.dtype:  # pragma: no cover - overridden
        raise NotImplementedError

    def drive(self, x: torch.Tensor) -> torch.Tensor:
        """u = the part of the step that does not depend on the state (e.g. W_xh x + b_h): x (..., D) -> (..., U).

        unroll computes it for all T steps in one product, so the time loop only does the recurrent part.
        """
        return x

    def forward_driven(self, u: torch.Tensor, s_prev: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(s_t, a_t) from the drive u_t = drive(x_t) (B, U) and s_prev (B, S)."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor, s_prev: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(s_t, a_t): the new state (B, S) and the step's pre-activations (B, A)."""
        return self.forward_driven(self.drive(x), s_prev)

    def step(self, x: torch.Tensor, s_prev: torch.Tensor) -> torch.Tensor:
        """s_t = f(x_t, s_{t-1}); x (B, D), s_prev (B, S) -> (B, S)."""
        return self.forward(x, s_prev)[0]

    def jacobian(self, x: torch.Tensor, s_prev: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def vjp(self, x: torch.Tensor, s_prev: torch.Tensor, g: torch.Tensor, a: torch.Tensor | None = None) -> torch.Tensor:
        """g^T ds_t/ds_{t-1}: g (B, S) -> (B, S). Default: through the formed Jacobian, O(B S^2).

        a: the step's pre-activations a_t (B, A) when the caller has them (Trace.preacts): a cell may then skip
        recomputing them (an input product and a recurrent product per step). Ignored where not needed.
        """
        return torch.bmm(g.unsqueeze(1), self.jacobian(x, s_prev)).squeeze(1)

    def vjp_factors(self, x: torch.Tensor, s_prev: torch.Tensor, a: torch.Tensor | None = None,
                    s_new: torch.Tensor | None = None) -> tuple | None:
        """The numbers of a step that its VJP multiplies by, for any leading dimensions ((B, .) one step, (T, B, .)
        every step of a trace at once); a (..., A) the pre-activations and s_new (..., S) the new state when the
        caller has them (Trace.preacts, Trace.states[1:]). None: no factored VJP (vjp is used as it is)."""
        return None

    def vjp_apply(self, F: tuple, g: torch.Tensor, carry=True, out: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(g^T ds_t/ds_{t-1} (B, S), dL/du_t (B, U)) from the step's vjp_factors F and g = dL/ds_t: the products
        only. u_t = drive(x_t), so dL/dx_t = dL/du_t W_xh for the built-in cells. carry: False, or a (B, 1) mask
        of 0 / 1, holds the carry term's state argument constant on those rows (vjp_cut). out: a (B, U) buffer
        that receives dL/du_t (a sweep keeping it for every step writes it in place)."""
        raise NotImplementedError(f"{self.kind}: no factored VJP")

    def param_grads(self, x: torch.Tensor, s_prev: torch.Tensor, a: torch.Tensor, du: torch.Tensor) -> dict | None:
        """The immediate parameter gradients summed over the leading dimensions (steps, sequences): for every
        parameter field theta, sum dL/ds_t d+s_t/dtheta (s_{t-1} held), from dL/du_t = du (vjp_apply's second
        output) and the pre-activations a. None: not available in closed form (callers use autograd)."""
        return None

    @classmethod
    def array_names(cls) -> tuple[str, ...]:
        """The names of the arrays of a weights file of this cell (the modern cells' from_arrays reads them)."""
        return ()

    def to_arrays(self) -> dict:
        """{name: float64 numpy array} for every name of array_names(): from_arrays' input (a weights .npz)."""
        def array(v):  # a tensor field, or a number (coRNN's dt) as a 0-d array
            if isinstance(v, torch.Tensor):
                return v.detach().to(torch.float64).numpy().copy()
            return np.asarray(v, dtype=np.float64)
        return {n: array(getattr(self, n)) for n in self.array_names()}

    def zero_state(self, batch: int) -> torch.Tensor:
        return torch.zeros(batch, self.state_size, dtype=self.dtype)

    @property
    def h_size(self) -> int:
        """The size of the output part h of the state: s[:, :h_size] is h_t (S, or H / P for LSTM's (h, c))."""
        return self.state_size

    has_carry = False  # LSTM and GRU: an additive carry term (see vjp_cut)

    def vjp_cut(self, x: torch.Tensor, s_prev: torch.Tensor, g: torch.Tensor, a: torch.Tensor | None = None) -> torch.Tensor:
        """g^T (ds_t/ds_{t-1} with the carry term's state argument held constant) (B, S), for has_carry cells.

        The carry term copies the previous state through a gate: LSTM f_t * c_{t-1} (the cell path; c_{t-1}
        enters step t only there, so the whole c column of the Jacobian goes), GRU z_t * h_{t-1} (the update
        gate's copy: J_t - diag(z_t)). What is left are the paths through W_hh, the gates and the candidate.
        """
        raise NotImplementedError(f"{self.kind}: no carry term")


class WeightedCell(Cell):
    """A cell with weight matrices W_hh and W_xh (the built-in cells): its input size and dtype read from them."""

    @property
    def input_size(self) -> int:  # type: ignore[override]
        return self.W_xh.shape[1]

    @property
    def dtype(self) -> torch.dtype:
        return self.W_hh.dtype


class FunctionCell(Cell):
    """Any user step function s_t = fn(x_t, s_{t-1}) on one example (x (D,), s (S,)) -> (S,).

    Batched with torch.func.vmap; the Jacobian is torch.func.jacrev (vmapped), the VJP torch.func.vjp.

    Example:
        >>> W = torch.randn(3, 3, dtype=torch.float64)
        >>> cell = FunctionCell(lambda x, h: torch.tanh(W @ h + x), state_size=3, input_size=3)
        >>> cell.jacobian(torch.zeros(2, 3, dtype=torch.float64), torch.zeros(2, 3, dtype=torch.float64)).shape
        torch.Size([2, 3, 3])
    """

    kind = "function"

    def __init__(self, fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], state_size: int, input_size: int,
                 dtype: torch.dtype = torch.float64):
        if not callable(fn):
            raise InputError(f"fn: expected a callable step function, got {type(fn).__name__}")
        self.fn = fn
        self.state_size = int(state_size)
        self.input_size = int(input_size)
        self._dtype = dtype
        self._step = torch.func.vmap(fn)
        self._jac = torch.func.vmap(torch.func.jacrev(fn, argnums=1))

    @property
    def dtype(self) -> torch.dtype:
        return self._dtype

    def forward_driven(self, x, s_prev):  # the drive of a step function is x itself
        s = self._step(x, s_prev)
        if s.shape != s_prev.shape:
            raise InputError(f"step function: expected it to return a state of shape {tuple(s_prev.shape[1:])}, "
                             f"got {tuple(s.shape[1:])}")
        return s, s.new_zeros(s.shape[0], 0)

    def jacobian(self, x, s_prev):
        return self._jac(x, s_prev)  # (B, S, S)

    def vjp(self, x, s_prev, g, a=None):
        _, pullback = torch.func.vjp(lambda s: self._step(x, s), s_prev)
        return pullback(g)[0]
