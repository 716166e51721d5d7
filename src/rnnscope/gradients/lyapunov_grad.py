"""Differentiable Lyapunov exponents: the QR (Benettin) method with autograd through every step (gradient flossing).

Engelken (2023, "Gradient flossing", NeurIPS) regularises the top k Lyapunov exponents of an RNN's forward
dynamics towards a target by gradient descent on the network's weights. The exponents are the same finite-time
QR estimate as lyapunov.lyapunov_spectrum (the same sweep, `_frame_sweep`, the same seeded frame), here kept
in the autograd graph:

    s_t = F_theta(x_t, s_{t-1}),  J_t = ds_t/ds_{t-1} (B, S, S)            cell.forward, cell.jacobian (analytic)
    Q_0 = qr(N(0, 1)^{S x k})  (B, S, k), seeded                         the frame (a torch.Generator(seed))
    Q <- J_t Q;   every `every` steps  Q, R = qr(Q)                        torch.linalg.qr (reduced, differentiable)
    lambda_i(theta) = (1 / n) sum_{QRs after the warm-up} ln |R_ii|       n = the steps they span

so d lambda_i / d theta flows through the trajectory s_t(theta), every J_t(theta) and every QR factorisation
(torch.linalg.qr's backward, defined for a full-rank S x k block, k <= S). The log domain keeps it finite for any
T. Signs: Householder QR may return R_ii < 0 (Q's column i then points the other way); ln |R_ii| is the same for
either sign and its derivative is dR_ii / R_ii, so no sign fix is needed (a zero R_ii, a frame that collapsed, has
no gradient: it is an InputError from the sweep when R is not finite). The exponents are sorted descending per
sequence (a permutation: the gradient follows it) and averaged over the B sequences.

The start s_0: given, or `start` as core.unroll.initial_state (auto: a seeded random state for an autonomous
run, zeros for a driven one); `warmup` QR steps are discarded (Engelken's code: 10 + ceil(T / 10)).

Cost: T Jacobians (B, S, S), T products (B, S, S) @ (B, S, k), T / every QRs (B, S, k); the backward keeps
all of them: memory O(T B S^2) (for flossing, B is small: Engelken's code uses one sequence).

Example:
    >>> from rnnscope.core.cells import ElmanCell
    >>> W = torch.diag(torch.tensor([0.5, 2.0], dtype=torch.float64)).requires_grad_()
    >>> cell = ElmanCell(W, torch.zeros(2, 1, dtype=torch.float64), torch.zeros(2, dtype=torch.float64), "identity")
    >>> lam = lyapunov_exponents(cell, torch.zeros(200, 1, 1, dtype=torch.float64), k=2, warmup=20)
    >>> [round(v, 6) for v in lam.tolist()]                 # ln 2, ln 0.5
    [0.693147, -0.693147]
    >>> lam.sum().backward()                                 # d (ln|w_11| + ln|w_22|) / dW = diag(1/w)
    >>> [round(v, 6) for v in W.grad.diagonal().tolist()]
    [2.0, 0.5]
"""

from __future__ import annotations

import torch

from ..core.cells import Cell
from ..core.unroll import Trace, initial_state, unroll
from .lyapunov import _check_args, _frame_sweep

__all__ = ["lyapunov_exponents", "initial_frame"]


def initial_frame(B: int, S: int, k: int, seed: int, dtype: torch.dtype) -> torch.Tensor:
    """Q_0 (B, S, k): the orthonormal frame of lyapunov_spectrum, qr(N(0, 1)) from torch.Generator().manual_seed(seed)
    drawn in float64 (the same frame in every dtype)."""
    gen = torch.Generator().manual_seed(int(seed))
    return torch.linalg.qr(torch.randn(B, S, k, generator=gen, dtype=torch.float64).to(dtype))[0]


def lyapunov_exponents(cell: Cell, x, s0=None, *, k: int, warmup: int = 0, every: int = 1, seed: int = 0,
                       start: str = "auto", start_seed: int = 0, per_sequence: bool = False,
                       through_states: bool = True) -> torch.Tensor:
    """The top k Lyapunov exponents of the cell along its trajectory on x, differentiable (see the module docstring).

    x: inputs (T, B, D) or (T, D); s0: the start (B, S) or (S,), or None (`start`, `start_seed`: as
    gradients.lyapunov.lyapunov). warmup: steps discarded; every: steps between QRs; seed: the frame Q_0's.
    Returns (k,) natural log per step, descending, the mean over the sequences; per_sequence=True: (B, k).
    The values equal lyapunov(cell, x, s0, k=k, warmup=warmup, every=every, seed=seed).exponents (same code);
    their gradients reach every tensor of the cell that requires grad (and s0, x if they do).

    Example:
        >>> from rnnscope.core.build import random_cell
        >>> cell = random_cell("elman", hidden=8, gain=2.0, seed=0)
        >>> lyapunov_exponents(cell, torch.zeros(300, 1, 1, dtype=torch.float64), k=3, warmup=30).shape
        torch.Size([3])
    """
    s0, _ = initial_state(cell, x, s0, start=start, seed=start_seed)
    trace = unroll(cell, x, s0)
    if not through_states:  # the trajectory held fixed: only J_t's explicit dependence on the weights is differentiated
        trace = Trace(trace.states.detach(), trace.preacts.detach(), trace.inputs.detach())
    T, B, S = trace.T, trace.B, cell.state_size
    k = _check_args(T, S, k, every, warmup, 1)
    Q = initial_frame(B, S, k, seed, cell.dtype)  # (B, S, k) Q_0
    logs, spans, _ = _frame_sweep(cell, trace, Q, every, warmup, k)  # n x (B, k) ln |R_ii|, in the graph
    per_seq = (torch.stack(logs).sum(0) / sum(spans)).sort(dim=1, descending=True).values  # (B, k)
    return per_seq if per_sequence else per_seq.mean(0)  # (B, k) | (k,)
