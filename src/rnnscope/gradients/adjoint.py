"""The adjoint sweep: the one backward recursion of every gradient in rnnscope.

For a loss L = sum_k l_k(s_k) over the states s_1..s_t of an unrolled cell, the adjoints g_k = dL/ds_k obey

    g_t = d_t,        g_{k-1} = g_k J_k + d_{k-1}     (k = t..1),       J_k = ds_k/ds_{k-1} (S, S),  d_0 = 0

where d_k = dl_k/ds_k is the explicit partial (the loss terms that read s_k itself). The product g_k J_k is one
vector-Jacobian product `vjp(k, g)`: the matrix J_k is never formed. A caller's vjp may keep what the product
passes through on the way (bptt: the immediate weight gradients of step k; diagnose: the LSTM gate adjoints).
Leading dimensions ride along: g may be (B, S) or (R, B, S) (bptt: one row per loss term, so that the
contribution of every loss term E_t to every step k stays apart).

One recursion, two arithmetics:

    linear   g_k as they are: the hand BPTT and the Pascanu regularizer, whose products stay near 1
    log      g_k = exp(log_scale_k) u_k with ||u_k||_2 in {0, 1}, renormalised every step, the sum
             g_k J_k + d_{k-1} formed at the larger of the two scales: t = 100,000 steps of exploding
             gradients stay finite (profiles, diagnose)

Cost: t vector-Jacobian products, O(t B S^2) for the built-in cells; memory: what is kept per step.

Example:
    >>> J = torch.tensor([[0.0, 2.0], [0.5, 0.0]], dtype=torch.float64)   # the same J_k at every step
    >>> d = lambda k: torch.tensor([[1.0, 0.0]], dtype=torch.float64) if k == 3 else None
    >>> sweep(3, lambda k, g: g @ J, d)[:, 0]          # rows k = 0..3: e_1 J^3, e_1 J^2, e_1 J, e_1
    tensor([[0., 2.],
            [1., 0.],
            [0., 2.],
            [1., 0.]], dtype=torch.float64)
    >>> a = sweep(3, lambda k, g: g @ J, d, log_domain=True)
    >>> [round(v, 6) for v in a.log10_norm[:, 0].tolist()]                  # log10 of 2, 1, 2, 1
    [0.30103, 0.0, 0.30103, 0.0]
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..core.cells import Cell
from ..core.errors import InputError
from ..core.unroll import Trace

__all__ = ["Adjoints", "sweep", "polar", "adjoints", "state_adjoint_seed"]

VJP = Callable[[int, torch.Tensor], torch.Tensor]  # vjp(k, g) = g J_k, same shape as g
Direct = Callable[[int], "torch.Tensor | None"]  # direct(k) = d_k (shape of g), or None where l_k does not read s_k


@dataclass(frozen=True)
class Adjoints:
    """dL/ds_k for k = 0..t in log-polar form: dL/ds_k = exp(log_scale[k]) * unit[k], ||unit[k]|| in {0, 1}."""

    log_scale: torch.Tensor  # (t+1, B) natural log of ||dL/ds_k|| (-inf where it is exactly 0)
    unit: torch.Tensor  # (t+1, B, S)

    @property
    def log10_norm(self) -> torch.Tensor:
        """log10 ||dL/ds_k||_2, (t+1, B); finite even where the values overflow float64."""
        return self.log_scale / math.log(10.0)

    def values(self) -> torch.Tensor:
        """dL/ds_k (t+1, B, S) in the linear domain (inf where they overflow)."""
        scale = torch.exp(self.log_scale).unsqueeze(-1)
        return torch.where(self.unit == 0, torch.zeros_like(self.unit), scale * self.unit)


def polar(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """v (..., S) -> (log ||v||_2 (...), v / ||v||_2), with (-inf, 0) for a zero vector."""
    n = torch.linalg.vector_norm(v, dim=-1)
    safe = torch.where(n > 0, n, torch.ones_like(n))
    return torch.log(n), v / safe.unsqueeze(-1)


def _polar_add(ls_a: torch.Tensor, u_a: torch.Tensor, d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """exp(ls_a) u_a + d in log-polar form, formed at the larger of the two scales (neither term overflows)."""
    ls_d, u_d = polar(d)
    m = torch.maximum(ls_a, ls_d)  # the common scale
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))  # both zero: any finite scale
    v = torch.exp(ls_a - m).unsqueeze(-1) * u_a + torch.exp(ls_d - m).unsqueeze(-1) * u_d
    lv, u = polar(v)
    return m + lv, u


def sweep(t: int, vjp: VJP, direct: Direct, *, log_domain: bool = False,
          keep: Callable[[torch.Tensor], torch.Tensor] | None = None):
    """The adjoints g_t..g_0 of the recursion in the module docstring.

    direct(t) must be a tensor (it starts the sweep); direct(k) for k < t may be None.
    linear (log_domain=False): returns the kept g_k stacked (t+1, ...): [k] = keep(g_k) (keep: identity;
    bptt keeps the sum over its rows). Differentiable when vjp and direct are.
    log (log_domain=True): returns Adjoints, log_scale (t+1, ...) and unit (t+1, ..., S); vjp is called on the
    unit vector u_k (||u_k|| <= 1), so its products stay near norm 1 however large g_k is.
    """
    g = direct(t)
    if log_domain:
        ls, u = polar(g)
        scales, units = [ls], [u]
        with torch.no_grad():
            for k in range(t, 0, -1):
                lw, u = polar(vjp(k, u))  # u_k J_k: back through step k, at unit scale
                ls = ls + lw  # log ||g_k J_k||
                d = direct(k - 1) if k > 1 else None
                if d is not None:
                    ls, u = _polar_add(ls, u, d)  # + d_{k-1}
                scales.append(ls)
                units.append(u)
        return Adjoints(torch.stack(scales[::-1]), torch.stack(units[::-1]))
    keep = keep or (lambda v: v)
    kept = [keep(g)]
    for k in range(t, 0, -1):
        g = vjp(k, g)  # g_k J_k: back through step k
        d = direct(k - 1) if k > 1 else None
        if d is not None:
            g = g + d  # + d_{k-1}, the loss terms that read s_{k-1} directly
        kept.append(keep(g))
    return torch.stack(kept[::-1])


def state_adjoint_seed(cell: Cell, B: int) -> torch.Tensor:
    """dL/ds_T for L = sum of the entries of h_T (the default loss): ones on h, zeros on c (B, S)."""
    g = torch.zeros(B, cell.state_size, dtype=cell.dtype)
    g[:, :cell.h_size] = 1.0
    return g


def adjoints(cell: Cell, trace: Trace, direct: torch.Tensor | None = None, *, t: int | None = None,
             vjp: VJP | None = None) -> Adjoints:
    """Adjoints dL/ds_k of a cell along a trace for k = 0..t, by the log-domain sweep, O(t B S^2).

        g_t = dL/ds_t (direct),   g_{k-1} = g_k ds_k/ds_{k-1} + (direct dL/ds_{k-1})

    direct: (t, B, S) explicit partials dL/ds_k for k = 1..t, or (t, B, P) their h part (the rest zero: a loss
    that reads h only), or None for L = sum of the entries of h_t.
    vjp: vjp(k, g) = g ds_k/ds_{k-1} (B, S) in place of cell.vjp on the trace's step k (a caller that keeps what
    the product passes through, e.g. LSTMCell.vjp_gates' gate adjoints).
    t = 100,000 in the exploding regime stays finite (renormalised every step).

    Example:
        >>> from rnnscope.core.build import cell_from_arrays
        >>> from rnnscope.core.unroll import unroll
        >>> import numpy as np                      # h_t = 2 h_{t-1}: dL/dh_0 = 2^T (1, 1), far past float64's range
        >>> cell = cell_from_arrays("elman", "identity", {"W_hh": 2 * np.eye(2), "W_xh": np.zeros((2, 1)),
        ...                                                 "b_h": np.zeros(2)})
        >>> a = adjoints(cell, unroll(cell, np.zeros((2000, 1, 1))))
        >>> abs(float(a.log10_norm[0, 0]) - (2000 * math.log10(2) + math.log10(math.sqrt(2)))) < 1e-9
        True
    """
    t = trace.T if t is None else t
    tr = trace.truncated(t)
    B, S = tr.B, cell.state_size
    if direct is None:
        seed = state_adjoint_seed(cell, B)

        def d(k: int) -> torch.Tensor | None:
            return seed if k == t else None
    else:
        direct = torch.as_tensor(direct, dtype=cell.dtype)
        if tuple(direct.shape) not in ((t, B, S), (t, B, cell.h_size)):
            raise InputError(f"direct: expected shape ({t}, {B}, {S}) or its h part ({t}, {B}, {cell.h_size}), "
                             f"got {tuple(direct.shape)}")
        P = direct.shape[2]  # the columns of s that direct covers: all, or h
        carries = direct.reshape(t, -1).ne(0).any(1).tolist()  # the steps with an explicit term

        def d(k: int) -> torch.Tensor | None:
            if k != t and not carries[k - 1]:
                return None
            v = direct[k - 1]  # (B, P)
            return v if P == S else torch.cat([v, v.new_zeros(B, S - P)], -1)  # (B, S): zero on c
    if vjp is None:
        def vjp(k: int, g: torch.Tensor) -> torch.Tensor:
            return cell.vjp(tr.inputs[k - 1], tr.states[k - 1], g, tr.preacts[k - 1])  # g ds_k/ds_{k-1}
    return sweep(t, vjp, d, log_domain=True)
