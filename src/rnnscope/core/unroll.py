"""Unrolling: the one forward time loop.

    s_t, a_t = cell.forward(x_t, s_{t-1}),   t = 1..T

(computed as cell.forward_driven(u_t, s_{t-1}) with the drives u_t = cell.drive(x_t) of all steps formed
in one product first).

Trace keeps everything later stages need: states s_0..s_T (T+1, B, S), pre-activations a_1..a_T
(T, B, A) and the inputs x_1..x_T (T, B, D). Index convention: states[t] is s_t, so states[0] is
s_0 (the initial state) and inputs[t-1] is x_t, preacts[t-1] is a_t.

Example:
    >>> cell = ElmanCell(torch.eye(2) * 0.5, torch.ones(2, 1), torch.zeros(2), "tanh")
    >>> trace = unroll(cell, torch.zeros(5, 1, 1))
    >>> trace.states.shape, trace.T
    (torch.Size([6, 1, 2]), 5)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .cells import Cell
from .errors import InputError

__all__ = ["Trace", "unroll", "as_batched_inputs"]


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


def as_batched_inputs(x, dtype: torch.dtype, input_size: int | None = None) -> torch.Tensor:
    """Inputs (T, D) or (T, B, D) (tensor or array) -> (T, B, D) tensor of the given dtype."""
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
    if not torch.isfinite(x).all():
        raise InputError("inputs: expected finite numbers, got NaN or Inf")
    return x


def unroll(cell: Cell, x, s0=None) -> Trace:
    """Run the cell over x (T, B, D) from s0 (B, S) (zeros if None) and record the Trace.

    Cost O(T B S (S + D)); memory O(T B (S + A + D)).
    """
    x = as_batched_inputs(x, cell.dtype, cell.input_size)
    T, B, _ = x.shape
    if s0 is None:
        s0 = cell.zero_state(B)
    s0 = torch.as_tensor(s0).to(cell.dtype)
    if s0.dim() == 1:
        s0 = s0.unsqueeze(0).expand(B, -1)  # one initial state shared by the batch
    if s0.shape != (B, cell.state_size):
        raise InputError(f"initial state: expected shape ({cell.state_size},) or ({B}, {cell.state_size}), got {tuple(s0.shape)}")
    if not torch.isfinite(s0).all():
        raise InputError("initial state: expected finite numbers, got NaN or Inf")
    u = cell.drive(x)  # (T, B, U): the state-independent part of every step, in one product
    states, preacts = [s0], []
    s = s0
    for t in range(T):
        s, a = cell.forward_driven(u[t], s)  # (B, S), (B, A)
        states.append(s)
        preacts.append(a)
    return Trace(torch.stack(states), torch.stack(preacts), x)
