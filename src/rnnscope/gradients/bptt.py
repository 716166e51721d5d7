"""Backpropagation through time, derived by hand, and adjoints dL/ds_k for any cell.

For the vanilla cells (Elman, Pal) with a head (heads.py), the loss E = sum_{t in steps} E_t has

    dE/dW = sum_t dE_t/dW = sum_t sum_{k<=t} (dE_t/dh_t) (prod_{j=k+1}^{t} dh_j/dh_{j-1}) (d+h_k/dW)     (seed 004)

where d+h_k/dW is the immediate partial (h_{k-1} held fixed, seed 001 Lemma 1). The backward sweep
computes the same sum in O(T B S^2) by the adjoint recursion

    delta_T = dE/dh_T,     delta_{k-1} = delta_k dh_k/dh_{k-1} + dE_{k-1}/dh_{k-1}

and the per-step contributions C[t, k] = (dE_t/dh_k) (d+h_k/dW) keep the two indices apart,
so that sum_{k<=t} C[t, k] = dE_t/dW exactly.

Legend: T time, B batch, S state size, D input size, O output size.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from ..core.cells import Cell, ElmanCell, PalCell
from ..core.errors import InputError
from ..core.heads import Head
from ..core.unroll import Trace, unroll

__all__ = ["BPTTResult", "bptt", "Adjoints", "adjoints", "state_adjoint_seed"]

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

    Example:
        >>> cell = ElmanCell(torch.eye(2) * 0.5, torch.ones(2, 1), torch.zeros(2), "tanh")
        >>> head = Head(torch.eye(2), torch.zeros(2), "mse")
        >>> r = bptt(cell, head, torch.ones(3, 1), torch.zeros(3, 2))
        >>> sorted(r.grads)
        ['W_hh', 'W_xh', 'W_hy', 'b_h', 'b_y']
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
    steps = set(head.loss_steps(loss_at, T))
    if contributions == "full" and T * T * S * (S + D + 1) * 8 > _CONTRIBUTION_BYTES_LIMIT:
        raise InputError(f"contributions='full': expected T*T*S*(S+D+1) <= {_CONTRIBUTION_BYTES_LIMIT // 8} numbers, "
                         f"got {T * T * S * (S + D + 1)} (T={T}, S={S}, D={D}); use 'norms'")
    h = trace.states  # (T+1, B, S)
    dt = cell.dtype
    dW_hh, dW_xh, db_h = torch.zeros(S, S, dtype=dt), torch.zeros(S, D, dtype=dt), torch.zeros(S, dtype=dt)
    dW_hy, db_y = torch.zeros_like(head.W_hy), torch.zeros_like(head.b_y)
    loss = torch.zeros((), dtype=dt)
    adj = torch.zeros(T + 1, B, S, dtype=dt)
    norms = {n: torch.zeros(T, T, dtype=dt) for n in ("W_hh", "W_xh", "b_h")}
    full = None
    if contributions == "full":
        full = {"W_hh": torch.zeros(T, T, S, S, dtype=dt), "W_xh": torch.zeros(T, T, S, D, dtype=dt),
                "b_h": torch.zeros(T, T, S, dtype=dt)}
    delta = torch.zeros(B, S, dtype=dt)  # dE/dh_k, total over all loss terms E_t with t >= k
    rows = torch.zeros(0, B, S, dtype=dt)  # dE_t/dh_k for each loss step t >= k, one row per t
    row_t: list[int] = []  # the t of each row
    for k in range(T, 0, -1):
        if k in steps:
            o = head.outputs(h[k])  # o_k = W_hy h_k + b_y (B, O)
            loss = loss + head.step_loss(o, y[k - 1])
            e = head.dE_do(o, y[k - 1])  # dE_k/do_k (B, O)
            dW_hy += e.T @ h[k]  # through o_k = W_hy h_k: needs h_k only (seed 004)
            db_y += e.sum(0)  # through o_k = ... + b_y
            direct = e @ head.W_hy  # dE_k/dh_k: back through W_hy (B, S)
            delta = delta + direct
            if contributions != "none":
                rows = torch.cat([rows, direct.unsqueeze(0)])
                row_t.append(k)
        adj[k] = delta
        # the whole sum: immediate partials at step k, weighted by the total adjoint dE/dh_k
        gW_hh, gW_xh, gb_h, delta = _immediate(cell, delta, h[k - 1], trace.preacts[k - 1], trace.inputs[k - 1])
        dW_hh += gW_hh
        dW_xh += gW_xh
        db_h += gb_h
        if contributions != "none" and row_t:
            # the same step, one row per loss step t: C[t, k] = (dE_t/dh_k) (d+h_k/dW)
            cW_hh, cW_xh, cb_h, rows = _immediate(cell, rows, h[k - 1], trace.preacts[k - 1], trace.inputs[k - 1])
            ti = torch.tensor(row_t) - 1
            norms["W_hh"][ti, k - 1] = torch.linalg.matrix_norm(cW_hh)
            norms["W_xh"][ti, k - 1] = torch.linalg.matrix_norm(cW_xh)
            norms["b_h"][ti, k - 1] = torch.linalg.vector_norm(cb_h, dim=-1)
            if full is not None:
                full["W_hh"][ti, k - 1] = cW_hh
                full["W_xh"][ti, k - 1] = cW_xh
                full["b_h"][ti, k - 1] = cb_h
    adj[0] = delta
    grads = {"W_hh": dW_hh, "W_xh": dW_xh, "b_h": db_h, "W_hy": dW_hy, "b_y": db_y}
    return BPTTResult(loss, grads, adj, norms, full)


@dataclass(frozen=True)
class Adjoints:
    """dL/ds_k for k = 0..T in log-polar form: dL/ds_k = exp(log_scale[k]) * unit[k], ||unit[k]|| in {0, 1}."""

    log_scale: torch.Tensor  # (T+1, B) natural log of ||dL/ds_k|| (-inf where it is exactly 0)
    unit: torch.Tensor  # (T+1, B, S)

    @property
    def log10_norm(self) -> torch.Tensor:
        """log10 ||dL/ds_k||_2, (T+1, B); finite even where the values overflow float64."""
        return self.log_scale / math.log(10.0)

    def values(self) -> torch.Tensor:
        """dL/ds_k (T+1, B, S) in the linear domain (inf where they overflow)."""
        scale = torch.exp(self.log_scale).unsqueeze(-1)
        return torch.where(self.unit == 0, torch.zeros_like(self.unit), scale * self.unit)


def state_adjoint_seed(cell: Cell, B: int) -> torch.Tensor:
    """dL/ds_T for L = sum of the entries of h_T (the default loss): ones on h, zeros on c (B, S)."""
    g = torch.zeros(B, cell.state_size, dtype=cell.dtype)
    g[:, :cell.h_size] = 1.0
    return g


def _polar(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """v (B, S) -> (log ||v||, v / ||v||), with (-inf, 0) for a zero vector."""
    n = torch.linalg.vector_norm(v, dim=-1)  # (B,)
    safe = torch.where(n > 0, n, torch.ones_like(n))
    return torch.log(n), v / safe.unsqueeze(-1)


def adjoints(cell: Cell, trace: Trace, direct: torch.Tensor | None = None, *, t: int | None = None,
             vjp: Callable[[int, torch.Tensor], torch.Tensor] | None = None) -> Adjoints:
    """Adjoints dL/ds_k for k = 0..t by vector-Jacobian products, O(t B S^2), in the log domain.

        g_t = dL/ds_t (direct),   g_{k-1} = g_k ds_k/ds_{k-1} + (direct dL/ds_{k-1})

    direct: (t, B, S) explicit partials dL/ds_k for k = 1..t, or (t, B, P) their h part (the rest zero: a loss
    that reads h only), or None for L = sum of the entries of h_t.
    vjp: vjp(k, g) = g ds_k/ds_{k-1} (B, S) in place of cell.vjp on the trace's step k (a caller that keeps what
    the product passes through, e.g. LSTMCell.vjp_gates' gate adjoints).
    The running vector is renormalised every step, so t = 100,000 in the exploding regime stays finite.
    """
    t = trace.T if t is None else t
    tr = trace.truncated(t)
    B, S = tr.B, cell.state_size
    if direct is None:
        direct = torch.zeros(t, B, S, dtype=cell.dtype)
        direct[-1] = state_adjoint_seed(cell, B)
        sparse = True  # only the last step carries a direct term
    else:
        direct = torch.as_tensor(direct, dtype=cell.dtype)
        if tuple(direct.shape) not in ((t, B, S), (t, B, cell.h_size)):
            raise InputError(f"direct: expected shape ({t}, {B}, {S}) or its h part ({t}, {B}, {cell.h_size}), "
                             f"got {tuple(direct.shape)}")
        sparse = bool((direct[:-1] == 0).all())
    P = direct.shape[2]  # the columns of s that direct covers: all, or h
    if vjp is None:
        def vjp(k: int, g: torch.Tensor) -> torch.Tensor:
            return cell.vjp(tr.inputs[k - 1], tr.states[k - 1], g, tr.preacts[k - 1])
    log_scale = torch.empty(t + 1, B, dtype=cell.dtype)
    unit = torch.zeros(t + 1, B, S, dtype=cell.dtype)
    ls, unit[t, :, :P] = _polar(direct[-1])
    log_scale[t], v = ls, unit[t]
    step_logs = torch.zeros(t + 1, B, dtype=cell.dtype)  # log of the per-step growth (sparse case)
    with torch.no_grad():
        for k in range(t, 0, -1):
            w = vjp(k, v)  # unit-scale g_k ds_k/ds_{k-1} (B, S)
            if sparse or k == 1:
                lg, v = _polar(w)
                if sparse:
                    step_logs[k - 1] = lg
                    unit[k - 1] = v
                    continue
                ls = ls + lg
            else:
                d = direct[k - 2]  # explicit dL/ds_{k-1}
                lw, uw = _polar(w)
                ld, ud = _polar(d)
                m = torch.maximum(ls + lw, ld)  # common scale, so neither term overflows
                m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
                uw.mul_(torch.exp(ls + lw - m).unsqueeze(-1))
                uw[:, :P].add_(torch.exp(ld - m).unsqueeze(-1) * ud)  # + the explicit term (its h part, or all)
                lg, v = _polar(uw)
                ls = m + lg
            log_scale[k - 1], unit[k - 1] = ls, v
    if sparse:
        # log ||g_k|| = log ||g_t|| + sum of the per-step log growths from t down to k
        log_scale[:t] = log_scale[t] + torch.flip(torch.cumsum(torch.flip(step_logs[:t], [0]), 0), [0])
    return Adjoints(log_scale, unit)
