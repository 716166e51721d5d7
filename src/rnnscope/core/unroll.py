"""Unrolling: the one forward time loop.

    s_t, a_t = cell.forward(x_t, s_{t-1}),   t = 1..T

(computed as cell.forward_driven(u_t, s_{t-1}) with the drives u_t = cell.drive(x_t) of all steps formed
in one product first; for cells with Cell.step_into and nothing that needs autograd, the same lines in place:
the drives' buffer becomes the pre-activations and each s_t is written into the states' buffer).

Trace keeps everything later stages need: states s_0..s_T (T+1, B, S), pre-activations a_1..a_T
(T, B, A) and the inputs x_1..x_T (T, B, D). Index convention: states[t] is s_t, so states[0] is
s_0 (the initial state) and inputs[t-1] is x_t, preacts[t-1] is a_t.

The start s_0 (`initial_state`): zeros, given, or a seeded random N(0, scale^2) per entry. An autonomous run
(every input 0) from s_0 = 0 with zero bias never leaves the fixed point s = 0, so whatever is measured on it
belongs to that fixed point (its Jacobian's eigenvalues), not to the attractor: the default start ("auto") is
random for an autonomous run and zeros for a driven one. `Trace.fixed_point` says whether a trace sits still.

Example:
    >>> from rnnscope.core.cells import ElmanCell
    >>> cell = ElmanCell(torch.eye(2) * 0.5, torch.ones(2, 1), torch.zeros(2), "tanh")
    >>> trace = unroll(cell, torch.zeros(5, 1, 1))
    >>> trace.states.shape, trace.T
    (torch.Size([6, 1, 2]), 5)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .cells import Cell
from .errors import InputError
from .threads import step_threads

__all__ = ["Trace", "unroll", "as_batched_inputs", "initial_state", "START_STATES", "FIXED_POINT_TOL"]

START_STATES = ("auto", "zeros", "random")
FIXED_POINT_TOL = 1e-9  # a step moves the state by at most this, relative to 1 + |s|: it sits on a fixed point


@dataclass(frozen=True)
class Trace:
    """The forward pass of a cell over a batch of sequences."""

    states: torch.Tensor  # (T+1, B, S) s_0..s_T
    preacts: torch.Tensor  # (T, B, A)   a_1..a_T
    inputs: torch.Tensor  # (T, B, D)   x_1..x_T

    @property
    def T(self) -> int:
        return self.inputs.shape[0]

    @property
    def B(self) -> int:
        return self.inputs.shape[1]

    def truncated(self, t: int) -> "Trace":
        """The trace of the first t steps (s_0..s_t)."""
        if not 1 <= t <= self.T:
            raise InputError(f"t: expected 1 <= t <= T={self.T}, got {t}")
        return Trace(self.states[: t + 1], self.preacts[:t], self.inputs[:t])

    def fixed_point(self, after: int = 0, tol: float = FIXED_POINT_TOL) -> bool:
        """Whether every sequence sits on a fixed point from step `after` on:

            max_{t > after} ||s_t - s_{t-1}||_inf <= tol (1 + ||s_t||_inf)      for every sequence b
        """
        s = self.states[after:]  # (T+1-after, B, S)
        if s.shape[0] < 2:
            return False
        step = (s[1:] - s[:-1]).abs().amax(-1)  # (n, B) the largest move of a unit per step
        size = s[1:].abs().amax(-1)  # (n, B)
        return bool((step <= tol * (1 + size)).all())


def as_batched_inputs(x, dtype: torch.dtype, input_size: int | None = None, *, finite: bool = True) -> torch.Tensor:
    """Inputs (T, D) or (T, B, D) (tensor or array) -> (T, B, D) tensor of the given dtype; NaN / Inf refused
    unless finite=False (the NaN hunt re-runs what the model received)."""
    x = torch.as_tensor(x)
    if x.dim() == 2:
        x = x.unsqueeze(1)  # (T, D) -> (T, 1, D)
    if x.dim() != 3:
        raise InputError(f"inputs: expected shape (T, D) or (T, B, D), got {tuple(x.shape)}")
    if x.shape[0] < 1:
        raise InputError(f"inputs: expected at least one time step (T >= 1), got T = {x.shape[0]}")
    if input_size is not None and x.shape[2] != input_size:
        raise InputError(f"inputs: expected input size D = {input_size} (from the weights), got D = {x.shape[2]}")
    x = x.to(dtype)
    if finite and not torch.isfinite(x).all():
        raise InputError("inputs: expected finite numbers, got NaN or Inf")
    return x


def initial_state(cell: Cell, x, s0=None, *, start: str = "auto", scale: float = 1.0,
                  seed: int = 0) -> tuple[torch.Tensor | None, str]:
    """The start s_0 of a run over inputs x (T, B, D) and how it was chosen (a phrase for the output).

        s0 given          s0 as it is                                 "given"
        start "zeros"     s_0 = 0 (unroll's default)                  "zeros"
        start "random"    s_0 ~ N(0, scale^2) per entry (B, S), from numpy's default_rng([seed, 3]): a stream
                          of its own, apart from the weights' (seed) and the CLI's inputs' ([seed, 1])
        start "auto"      "random" when the run is autonomous (every x_t = 0), else "zeros"

    Example:
        >>> from rnnscope.core.cells import ElmanCell
        >>> cell = ElmanCell(torch.eye(3), torch.ones(3, 1), torch.zeros(3), "tanh")
        >>> s0, how = initial_state(cell, torch.zeros(10, 2, 1))
        >>> tuple(s0.shape), how
        ((2, 3), 'random N(0, 1^2), seed 0')
        >>> initial_state(cell, torch.ones(10, 2, 1))
        (None, 'zeros')
    """
    if s0 is not None:
        return s0, "given"
    if start not in START_STATES:
        raise InputError(f"start: expected one of {', '.join(START_STATES)}, got {start!r}")
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 < scale < float("inf"):
        raise InputError(f"start scale: expected a positive finite number, got {scale!r}")
    x = as_batched_inputs(x, cell.dtype, cell.input_size)
    if start == "auto":
        start = "random" if not bool(x.any()) else "zeros"
    if start == "zeros":
        return None, "zeros"
    rng = np.random.default_rng([seed, 3])
    s0 = torch.as_tensor(scale * rng.standard_normal((x.shape[1], cell.state_size)))  # (B, S)
    return s0.to(cell.dtype), f"random N(0, {scale:g}^2), seed {seed}"


def unroll(cell: Cell, x, s0=None, *, finite: bool = True) -> Trace:
    """Run the cell over x (T, B, D) from s0 (B, S) (zeros if None) and record the Trace. finite=False: NaN / Inf
    in x or s0 are run as they are (the NaN hunt), not refused.

    Cost O(T B S (S + D)); memory O(T B (S + A + D)).
    """
    x = as_batched_inputs(x, cell.dtype, cell.input_size, finite=finite)
    B = x.shape[1]
    if s0 is None:
        s0 = cell.zero_state(B)
    s0 = torch.as_tensor(s0).to(cell.dtype)
    if s0.dim() == 1:
        s0 = s0.unsqueeze(0).expand(B, -1)  # one initial state shared by the batch
    if s0.shape != (B, cell.state_size):
        raise InputError(f"initial state: expected shape ({cell.state_size},) or ({B}, {cell.state_size}), got {tuple(s0.shape)}")
    if finite and not torch.isfinite(s0).all():
        raise InputError("initial state: expected finite numbers, got NaN or Inf")
    u = cell.drive(x)  # (T, B, U): the state-independent part of every step, in one product
    if _in_place(cell, x, u, s0):
        return _unroll_into(cell, x, u, s0)
    states, preacts = [s0], []
    s = s0
    with step_threads(cell.state_size):  # small per-step products: one thread (threads.py)
        for u_t in u.unbind(0):  # unbind, not u[t]: under autograd u[t]'s backward would fill a (T, B, U) each step
            s, a = cell.forward_driven(u_t, s)  # (B, S), (B, A)
            states.append(s)
            preacts.append(a)
    return Trace(torch.stack(states), torch.stack(preacts), x)


def _in_place(cell: Cell, x: torch.Tensor, u: torch.Tensor, s0: torch.Tensor) -> bool:
    """Whether the loop may run in place (Cell.step_into): the cell has it, nothing needs autograd, and the drives
    u are a tensor of their own (not x itself), to become the pre-activations."""
    if getattr(cell, "step_into", None) is None or u.untyped_storage().data_ptr() == x.untyped_storage().data_ptr():
        return False
    if not torch.is_grad_enabled():
        return True
    return not any(isinstance(v, torch.Tensor) and v.requires_grad for v in (u, s0, *getattr(cell, "__dict__", {}).values()))


def _unroll_into(cell: Cell, x: torch.Tensor, u: torch.Tensor, s0: torch.Tensor) -> Trace:
    """The same loop written into two buffers: the drives u (T, B, A) become the pre-activations a_t in place and
    every s_t goes into states[t] (T+1, B, S): no tensor per step, no stacking (a (T, B, 4H) float64 buffer is
    tens of MB, each new one paid in page faults)."""
    T, B = u.shape[0], u.shape[1]
    states = torch.empty(T + 1, B, cell.state_size, dtype=s0.dtype)
    states[0] = s0
    with step_threads(cell.state_size):  # small per-step products: one thread (threads.py)
        for t in range(T):
            cell.step_into(u[t], states[t], states[t + 1])  # u[t] <- a_t, states[t + 1] <- s_t
    return Trace(states, u, x)
