"""The Jacobian-product profile of a cell whose one-step Jacobians are scaled orthogonal blocks: in closed form.

For the diagonal cells after the seeds (core.diagonal_cells: mingru, minlstm, mamba, indrnn) J_t = diag(d_t);
for LRU's real view J_t = blockdiag(|lambda_j| R(theta_j)), a rotation R per unit. In both J_t =
blockdiag(c_{t,u} Q_u) with Q_u orthogonal and the blocks fixed, so the products keep the form and

    ds_t/ds_k = blockdiag(C_{k,u} Q'_u),    log C_{k,u} = sum_{j=k+1}^{t} log c_{j,u}             (B, U)

whose singular values are C_{k,u} (once per coordinate of unit u). Hence, with m_u the coordinates of unit u
and g_{r,u} the part of a row vector g_r on them:

    log ||ds_t/ds_k||_2 = max_u log C_{k,u}
    log ||ds_t/ds_k||_F = 1/2 logsumexp_u (2 log C_{k,u} + log m_u)
    log ||g_r^T ds_t/ds_k|| = 1/2 logsumexp_u (2 log C_{k,u} + log ||g_{r,u}||^2)

one reverse cumulative sum of logs: O(t B S) in place of the dense profile's O(t B S^3), exact (no power
iteration, no product that can overflow: everything is a sum of logs). A dead unit (c = 0, relu) has log C =
-inf, and a product that is exactly 0 gives log10 = -inf, as the dense profile does.

Example:
    >>> import torch
    >>> from rnnscope.core.build import random_cell
    >>> from rnnscope.core.unroll import unroll
    >>> cell = random_cell("lru", hidden=3, r_min=0.5, r_max=0.8, seed=0)
    >>> p = diagonal_profile(cell, unroll(cell, torch.zeros(5, 1, 1, dtype=torch.float64)))
    >>> bool(abs(p.log10_spectral[0, 0] - 4 * math.log10(cell.spectral_radius)) < 1e-12)
    True
"""

from __future__ import annotations

import math

import torch

from ..core.cells import Cell
from ..core.unroll import Trace

__all__ = ["diagonal_profile", "has_unit_gains"]

_LN10 = math.log(10.0)
_CHUNK_NUMBERS = 2**22  # steps x sequences x units per chunk of gains


def has_unit_gains(cell: Cell) -> bool:
    """Whether the cell's Jacobians are scaled orthogonal blocks (log_unit_gains, unit_of_state)."""
    return hasattr(cell, "log_unit_gains") and hasattr(cell, "unit_of_state")


def _lse(z: torch.Tensor) -> torch.Tensor:
    """logsumexp over the last axis, -inf where every term is -inf (torch's gives NaN there)."""
    top = z.amax(-1, keepdim=True)
    safe = torch.where(torch.isfinite(top), top, torch.zeros_like(top))
    return (safe + torch.log(torch.exp(z - safe).sum(-1, keepdim=True))).squeeze(-1)


def diagonal_profile(cell: Cell, trace: Trace, t: int | None = None, *, spectral: bool = True,
                     carry: torch.Tensor | None = None):
    """jacobian_profile's result (flow.JacobianProfile) for a cell with log_unit_gains, in closed form (module
    docstring). carry (B, R, S): rows g_r whose log10 ||g_r^T ds_t/ds_k|| are returned too."""
    from .flow import JacobianProfile  # flow dispatches here

    t = trace.T if t is None else t
    tr = trace.truncated(t)
    B, S, f64 = tr.B, cell.state_size, torch.float64
    unit = cell.unit_of_state()  # (S,)
    U = int(unit.max()) + 1
    log_m = torch.log(torch.bincount(unit, minlength=U).to(f64))  # (U,) coordinates per unit
    L = torch.zeros(B, U, dtype=f64)  # log C_{k,u}, starting at k = t (the identity)
    log_spec = torch.empty(B, t, dtype=f64)
    log_fro = torch.empty(B, t, dtype=f64)
    log_car = None
    if carry is not None:
        g2 = torch.zeros(B, carry.shape[1], U, dtype=f64).index_add_(2, unit, carry.to(f64) ** 2)  # ||g_{r,u}||^2
        log_g2 = torch.log(g2)  # (B, R, U)
        log_car = torch.empty(B, carry.shape[1], t, dtype=f64)
    C = max(1, _CHUNK_NUMBERS // max(1, B * U))
    k_hi = t  # this chunk: k = k_hi down to k_lo
    while k_hi >= 1:
        k_lo = max(1, k_hi - C + 1)
        # G_k = log c_{k+1} (J_{k+1} = ds_{k+1}/ds_k at inputs[k], states[k]) for k = k_lo..k_hi; G_t = 0
        top = min(k_hi, t - 1)
        G = torch.zeros(k_hi - k_lo + 1, B, U, dtype=f64)  # row i: k = k_lo + i
        if top >= k_lo:
            n = top - k_lo + 1
            x = tr.inputs[k_lo:top + 1].reshape(n * B, -1)
            s = tr.states[k_lo:top + 1].reshape(n * B, S)
            G[:n] = cell.log_unit_gains(x, s).to(f64).reshape(n, B, U)
        # L_k = L_{k_hi + 1} + sum_{m=k}^{k_hi} G_m: a cumulative sum from k_hi down
        Lk = L + torch.flip(torch.cumsum(torch.flip(G, [0]), 0), [0])  # (n, B, U), row i: k = k_lo + i
        cols = slice(k_lo - 1, k_hi)
        log_spec[:, cols] = Lk.amax(-1).T / _LN10
        log_fro[:, cols] = 0.5 * _lse(2 * Lk + log_m).T / _LN10
        if log_car is not None:
            log_car[:, :, cols] = 0.5 * _lse(2 * Lk.unsqueeze(2) + log_g2).permute(1, 2, 0) / _LN10  # (B, R, n)
        L = Lk[0]
        k_hi = k_lo - 1
    if not spectral:
        log_spec = torch.full_like(log_fro, float("nan"))
    return JacobianProfile(log_spec, log_fro, t, 0, 0, 0, log_car, None)
