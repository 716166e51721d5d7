"""Backpropagation through time, derived by hand, with the per-step contributions.

For the vanilla cells (Elman, Pal) with a head (heads.py), the loss E = sum_{t in steps} E_t has

    dE/dW = sum_t dE_t/dW = sum_t sum_{k<=t} (dE_t/dh_t) (prod_{j=k+1}^{t} dh_j/dh_{j-1}) (d+h_k/dW)     (seed 004)

where d+h_k/dW is the immediate partial (h_{k-1} held fixed, seed 001 Lemma 1). The backward pass
computes the same sum in O(T B S^2) by the adjoint recursion (adjoint.sweep, the one copy)

    delta_T = dE/dh_T,     delta_{k-1} = delta_k dh_k/dh_{k-1} + dE_{k-1}/dh_{k-1}

and the per-step contributions C[t, k] = (dE_t/dh_k) (d+h_k/dW) keep the two indices apart,
so that sum_{k<=t} C[t, k] = dE_t/dW exactly.

Legend: T time, B batch, S state size, D input size, O output size.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field

import torch

from ..core.cells import Cell, ElmanCell, PalCell
from ..core.errors import InputError
from ..core.heads import Head
from ..core.unroll import unroll
from .adjoint import sweep

__all__ = ["BPTTResult", "bptt"]

_CONTRIBUTION_BYTES_LIMIT = 2 * 1024**3  # "full" contributions hold T*T*S*(S+D+1) numbers


@dataclass(frozen=True)
class BPTTResult:
    """Loss, gradients, adjoints dE/dh_k and the per-step contributions of a hand-derived BPTT."""

    loss: torch.Tensor  # scalar
    grads: dict[str, torch.Tensor]  # W_hh (S,S), W_xh (S,D), b_h (S,), W_hy (O,S), b_y (O,)
    adjoints: torch.Tensor  # (T+1, B, S): dE/dh_k for k = 0..T (total derivative through the future)
    contributions_norm: dict[str, torch.Tensor]  # name -> (T, T): [t-1, k-1] = ||C[t, k]||_F, 0 for k > t
    contributions: dict[str, torch.Tensor] | None = field(default=None)  # name -> (T, T, *shape) when asked


def _immediate(cell: Cell, delta: torch.Tensor, h_prev: torch.Tensor, a: torch.Tensor,
               x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One backward step of a vanilla cell for adjoint rows delta (..., B, S) at step k.

    Returns the immediate-partial gradients (dW_hh (..., S, S), dW_xh (..., S, D), db_h (..., S))
    that flow through step k, and the adjoint passed on to h_{k-1}.
    """
    if isinstance(cell, ElmanCell):
        z = delta * cell.activation.dphi(a)  # dE/da_k: through h_k = phi(a_k)
        dW_hh = torch.einsum("...bi,bj->...ij", z, h_prev)  # through a_k = W_hh h_{k-1}: z h_{k-1}^T
        dW_xh = torch.einsum("...bi,bj->...ij", z, x)  # through a_k = ... + W_xh x_k: z x_k^T
        db_h = z.sum(-2)  # through a_k = ... + b_h
        delta_prev = z @ cell.W_hh  # dE/dh_{k-1}: back through W_hh
    else:  # PalCell
        p = cell.activation.phi(h_prev)  # phi(h_{k-1}) (B, S)
        dW_hh = torch.einsum("...bi,bj->...ij", delta, p)  # through h_k = W_hh phi(h_{k-1}): delta phi(h_{k-1})^T
        dW_xh = torch.einsum("...bi,bj->...ij", delta, x)  # through h_k = ... + W_xh x_k
        db_h = delta.sum(-2)  # through h_k = ... + b_h
        delta_prev = (delta @ cell.W_hh) * cell.activation.dphi(h_prev)  # back through W_hh, then phi'(h_{k-1})
    return dW_hh, dW_xh, db_h, delta_prev


def bptt(cell: Cell, head: Head, x, targets, h0=None, *, loss_at: str = "all",
         contributions: str = "norms") -> BPTTResult:
    """Hand-derived BPTT for an Elman or Pal cell with an MSE or cross-entropy head.

    x (T, B, D) or (T, D); targets (T, B, O) / (T, O) floats for mse, (T, B) / (T,) class indices for ce;
    loss_at "all" (E = sum_t E_t) or "last" (E = E_T); contributions "none", "norms" or "full".

    The backward pass is the adjoint sweep (adjoint.py) over R rows, row r the adjoint of one loss term E_t
    (R = 1, the total, when no contributions are asked for): its vjp at step k is `_immediate`, which also
    yields the immediate-partial gradients C[t, k] of every row. The rows of loss terms with t < k are zero
    at step k and are skipped. dE/dh_k is the sum of the rows.

    Example:
        >>> from rnnscope.core.cells import ElmanCell
        >>> cell = ElmanCell(torch.eye(2) * 0.5, torch.ones(2, 1), torch.zeros(2), "tanh")
        >>> head = Head(torch.eye(2), torch.zeros(2), "mse")
        >>> r = bptt(cell, head, torch.ones(3, 1), torch.zeros(3, 2))
        >>> list(r.grads)
        ['W_hh', 'W_xh', 'b_h', 'W_hy', 'b_y']
    """
    if not isinstance(cell, (ElmanCell, PalCell)):
        raise InputError(f"cell: expected an Elman or Pal cell for hand-derived BPTT, got {getattr(cell, 'kind', type(cell).__name__)!r}")
    if head.W_hy.shape[1] != cell.state_size:
        raise InputError(f"W_hy: expected {cell.state_size} columns (the state size), got {head.W_hy.shape[1]}")
    if contributions not in ("none", "norms", "full"):
        raise InputError(f"contributions: expected 'none', 'norms' or 'full', got {contributions!r}")
    trace = unroll(cell, x, h0)
    T, B, S, D = trace.T, trace.B, cell.state_size, cell.input_size
    y = head.check_targets(targets, T, B)
    steps = sorted(head.loss_steps(loss_at, T), reverse=True)  # the loss steps t, latest first
    if contributions == "full" and T * T * S * (S + D + 1) * 8 > _CONTRIBUTION_BYTES_LIMIT:
        raise InputError(f"contributions='full': expected T*T*S*(S+D+1) <= {_CONTRIBUTION_BYTES_LIMIT // 8} numbers, "
                         f"got {T * T * S * (S + D + 1)} (T={T}, S={S}, D={D}); use 'norms'")
    h = trace.states  # (T+1, B, S)
    dt = cell.dtype
    # the loss terms E_t and their immediate partials dE_t/dh_t, through the head
    loss = torch.zeros((), dtype=dt)
    dW_hy, db_y = torch.zeros_like(head.W_hy), torch.zeros_like(head.b_y)
    direct = {}
    for t in steps:
        o = head.outputs(h[t])  # o_t = W_hy h_t + b_y (B, O)
        loss = loss + head.step_loss(o, y[t - 1])
        e = head.dE_do(o, y[t - 1])  # dE_t/do_t (B, O)
        dW_hy += e.T @ h[t]  # through o_t = W_hy h_t: needs h_t only (seed 004)
        db_y += e.sum(0)  # through o_t = ... + b_y
        direct[t] = e @ head.W_hy  # dE_t/dh_t: back through W_hy (B, S)
    per_term = contributions != "none"
    R = len(steps) if per_term else 1
    row = {t: (r if per_term else 0) for r, t in enumerate(steps)}  # the row of each loss term
    ti = torch.tensor(steps) - 1  # [t-1] of each row (per_term)
    ascending = steps[::-1]
    grads = {"W_hh": torch.zeros(S, S, dtype=dt), "W_xh": torch.zeros(S, D, dtype=dt), "b_h": torch.zeros(S, dtype=dt)}
    norms = {n: torch.zeros(T, T, dtype=dt) for n in grads}
    full = None
    if contributions == "full":
        full = {"W_hh": torch.zeros(T, T, S, S, dtype=dt), "W_xh": torch.zeros(T, T, S, D, dtype=dt),
                "b_h": torch.zeros(T, T, S, dtype=dt)}

    def d(k: int) -> torch.Tensor | None:  # the rows' explicit partials at step k: dE_k/dh_k in E_k's row
        if k not in direct:
            return None if k != T else torch.zeros(R, B, S, dtype=dt)
        v = torch.zeros(R, B, S, dtype=dt)
        v[row[k]] = direct[k]
        return v

    def vjp(k: int, G: torch.Tensor) -> torch.Tensor:  # G (R, B, S): dE_t/dh_k per row
        n = len(steps) - bisect_left(ascending, k) if per_term else 1  # rows with t >= k (the others are zero)
        out = torch.zeros_like(G)
        c = _immediate(cell, G[:n], h[k - 1], trace.preacts[k - 1], trace.inputs[k - 1])
        out[:n] = c[3]  # dE_t/dh_{k-1}: back through step k
        for name, g in zip(("W_hh", "W_xh", "b_h"), c[:3]):  # C[t, k] = (dE_t/dh_k) (d+h_k/dW)
            grads[name] += g.sum(0)  # the whole sum: every loss term through step k
            if per_term:
                norms[name][ti[:n], k - 1] = torch.linalg.vector_norm(g.flatten(1), dim=1)
                if full is not None:
                    full[name][ti[:n], k - 1] = g
        return out

    adj = sweep(T, vjp, d, keep=lambda G: G.sum(0))  # (T+1, B, S): dE/dh_k, the sum over the loss terms
    return BPTTResult(loss, {**grads, "W_hy": dW_hy, "b_y": db_y}, adj, norms, full)
