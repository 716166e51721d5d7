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
    log      g_k = exp(log_scale_k) u_k with ||u_k||_2 in {0, 1}: t = 100,000 steps of exploding gradients stay
             finite (profiles, diagnose). Renormalised every step (block = 1), the sum g_k J_k + d_{k-1} formed
             at the larger of the two scales; or every `block` steps (block-scaled):

                 g_k = exp(m) v_k within a block of steps, m (per row) chosen at the block's start as the
                 largest of log ||g|| and log ||d_j|| over the block's direct terms, so ||v|| <= 1 there;
                 v_{k-1} = v_k J_k + d_{k-1} exp(-m), no normalisation inside the block; the norms of the
                 block's v_k checked at its end (finite, no subnormal): a block that fails is redone step by
                 step. Exact to rounding like the per-step form, and its per-step overhead is one product.

A direct term d_k may come with a log-offset o (per row): the term is then d_k exp(o), so that rows whose
true values lie beyond the float range (an upstream already in the log domain) need not be formed.

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
from functools import cached_property

import torch

from ..core.cells import Cell
from ..core.errors import InputError
from ..core.unroll import Trace

__all__ = ["Adjoints", "sweep", "polar", "adjoints", "state_adjoint_seed", "BLOCK"]

# steps between renormalisations of the log-domain sweep by dtype: a product of 16 one-step Jacobians of norm up
# to 10^19 each stays in float64's range (10^308), 8 of norm up to 10^4.7 in float32's (10^38); a block that
# leaves the range is redone step by step, so these choose the speed only, never the result
BLOCK = {torch.float64: 16, torch.float32: 8}

VJP = Callable[[int, torch.Tensor], torch.Tensor]  # vjp(k, g) = g J_k, same shape as g
Direct = Callable[[int], "torch.Tensor | tuple | None"]  # direct(k) = d_k, or (d_k, log-offset per row), or None
# where l_k does not read s_k; d_k has the shape of g, or covers its first columns only (the h part of s = (h, c))


@dataclass(frozen=True)
class Adjoints:
    """dL/ds_k for k = 0..t in scaled form: dL/ds_k = exp(scale[k]) * scaled[k], with a finite log-scale per row.

    log_scale and unit are the log-polar form (dL/ds_k = exp(log_scale[k]) unit[k], ||unit[k]|| in {0, 1}),
    formed on first use: a caller that only needs norms of parts, or linear maps, of dL/ds_k can read the scaled
    form and skip the normalisation pass."""

    scale: torch.Tensor  # (t+1, B) natural log, finite
    scaled: torch.Tensor  # (t+1, B, S)
    vjp_log_scale: torch.Tensor | None = None  # (t+1, B): vjp(k, v) was called on v = dL/ds_k / exp(this[k])
    norms: torch.Tensor | None = None  # (t+1, B) ||scaled[k]|| when the sweep has them

    @cached_property
    def _norms(self) -> torch.Tensor:
        return torch.linalg.vector_norm(self.scaled, dim=-1) if self.norms is None else self.norms

    @cached_property
    def log_scale(self) -> torch.Tensor:
        """(t+1, B) natural log of ||dL/ds_k|| (-inf where it is exactly 0)."""
        n = self._norms
        return torch.where(n > 0, torch.log(torch.where(n > 0, n, torch.ones_like(n))) + self.scale,
                           torch.full_like(n, float("-inf")))

    @cached_property
    def unit(self) -> torch.Tensor:
        """(t+1, B, S) dL/ds_k / ||dL/ds_k|| (zero where dL/ds_k is)."""
        n = self._norms
        return self.scaled / torch.where(n > 0, n, torch.ones_like(n)).unsqueeze(-1)

    @property
    def log10_norm(self) -> torch.Tensor:
        """log10 ||dL/ds_k||_2, (t+1, B); finite even where the values overflow float64."""
        return self.log_scale / math.log(10.0)

    def values(self) -> torch.Tensor:
        """dL/ds_k (t+1, B, S) in the linear domain (inf where they overflow)."""
        v = torch.exp(self.scale).to(self.scaled.dtype).unsqueeze(-1) * self.scaled
        return torch.where(self.scaled == 0, torch.zeros_like(v), v)


def polar(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """v (..., S) -> (log ||v||_2 (...), v / ||v||_2), with (-inf, 0) for a zero vector."""
    n = torch.linalg.vector_norm(v, dim=-1)
    safe = torch.where(n > 0, n, torch.ones_like(n))
    return torch.log(n), v / safe.unsqueeze(-1)


def _split(d) -> tuple[torch.Tensor, torch.Tensor | float]:
    """A direct term as (d, log-offset): d or (d, offset); the offset 0.0 when none. d may be narrower than the
    state (its first columns: the h part of (h, c))."""
    return d if isinstance(d, tuple) else (d, 0.0)


def _pad(d: torch.Tensor, width: int) -> torch.Tensor:
    if d.shape[-1] == width:
        return d
    return torch.cat([d, d.new_zeros(*d.shape[:-1], width - d.shape[-1])], -1)


def _polar_add(ls_a: torch.Tensor, u_a: torch.Tensor, d: torch.Tensor,
               off: torch.Tensor | float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """exp(ls_a) u_a + d exp(off) in log-polar form, formed at the larger of the two scales (neither term overflows)."""
    ls_d, u_d = polar(_pad(d, u_a.shape[-1]))
    ls_d = ls_d + off
    m = torch.maximum(ls_a, ls_d)  # the common scale
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))  # both zero: any finite scale
    v = torch.exp(ls_a - m).to(u_a.dtype).unsqueeze(-1) * u_a + torch.exp(ls_d - m).to(u_a.dtype).unsqueeze(-1) * u_d
    lv, u = polar(v)
    return m + lv, u


def sweep(t: int, vjp: VJP, direct: Direct, *, log_domain: bool = False,
          keep: Callable[[torch.Tensor], torch.Tensor] | None = None, block: int = 1,
          buffer: torch.Tensor | None = None):
    """The adjoints g_t..g_0 of the recursion in the module docstring.

    direct(t) must be a tensor as wide as the state (it starts the sweep); direct(k) for k < t may be None.
    linear (log_domain=False): returns the kept g_k stacked (t+1, ...): [k] = keep(g_k) (keep: identity;
    bptt keeps the sum over its rows). Differentiable when vjp and direct are. Direct terms as tensors only.
    log (log_domain=True): returns Adjoints; vjp is called on g_k / exp(vjp_log_scale[k]): the unit vector u_k
    (block = 1) or the block-scaled v_k (||v_k|| <= 1 at a block's start), so its products stay near norm 1
    however large g_k is. block: steps between renormalisations (module docstring). buffer: a flat tensor of the
    state's dtype whose first (t+1) * (rows) * S numbers may hold the scaled adjoints (log domain; a caller's
    memory reused between sweeps, so that a large (t+1, B, S) array is not paid in page faults again).
    """
    if log_domain:
        with torch.no_grad():
            return _log_sweep(t, vjp, direct, max(1, int(block)), buffer)
    keep = keep or (lambda v: v)
    g = direct(t)
    kept = [keep(g)]
    for k in range(t, 0, -1):
        g = vjp(k, g)  # g_k J_k: back through step k
        d = direct(k - 1) if k > 1 else None
        if d is not None:
            g = g + d  # + d_{k-1}, the loss terms that read s_{k-1} directly
        kept.append(keep(g))
    return torch.stack(kept[::-1])


def _log_sweep(t: int, vjp: VJP, direct: Direct, block: int, buffer: torch.Tensor | None = None) -> Adjoints:
    """The log-domain sweep, renormalised every step (block = 1) or every `block` steps (module docstring).

    State between steps: g_k = exp(m) v (m per row, finite; v = 0 for a zero g_k). Kept per step: v_k (written
    into one buffer as it is made), m_k and ||v_k||."""
    d, off = _split(direct(t))
    ls, v = polar(d)  # the first direct term spans the whole state (it starts the sweep)
    m = _finite(ls + off)
    fin = torch.finfo(v.dtype)
    lo, hi = fin.tiny ** 0.9, fin.max ** 0.9  # a block's norms stay within these (precision, overflow), or it is redone
    n = (t + 1) * v.numel()
    if buffer is not None and buffer.dtype == v.dtype and buffer.numel() >= n:
        V = buffer[:n].view(t + 1, *v.shape)  # (t+1, ..., S) in the caller's memory
    else:
        V = torch.empty(t + 1, *v.shape, dtype=v.dtype)  # (t+1, ..., S)
    M = torch.empty(t + 1, *m.shape, dtype=m.dtype)
    N = torch.empty(t + 1, *m.shape, dtype=v.dtype)
    vscale = torch.empty(t + 1, *m.shape, dtype=m.dtype)
    V[t], M[t], N[t], vscale[t] = v, m, torch.linalg.vector_norm(v, dim=-1), m
    k = t
    while k > 0:
        steps = range(k, max(0, k - block), -1)  # the vjp at steps k, k-1, ...: g_{k-1}, g_{k-2}, ...
        lo_k = steps[-1] - 1  # the block makes g_{k-1} .. g_{lo_k}: rows lo_k .. k-1 of V
        ds = [None if j == 1 else direct(j - 1) for j in steps]
        ds = [None if x is None else _split(x) for x in ds]
        m_new = _block(steps, vjp, ds, v, m, V) if block > 1 else None
        if m_new is not None:
            n = torch.linalg.vector_norm(V[lo_k:k], dim=-1)
            if bool((~torch.isfinite(n) | (n > hi) | ((n > 0) & (n < lo))).any()):
                m_new = None  # redone one step at a time, each renormalised
        if m_new is not None:
            M[lo_k:k], N[lo_k:k], vscale[lo_k + 1:k + 1] = m_new, n, m_new
            v, m = V[lo_k], m_new
        else:
            for j, dj in zip(steps, ds):
                ls, u = polar(v)
                ls = ls + m  # g_j = exp(ls) u, ||u|| in {0, 1}
                vscale[j] = _finite(ls)
                lw, u = polar(vjp(j, u))  # u_j J_j: back through step j, at unit scale
                ls = ls + lw  # log ||g_j J_j||
                if dj is not None:
                    ls, u = _polar_add(ls, u, *dj)  # + d_{j-1}
                v, m = u, _finite(ls)
                V[j - 1], M[j - 1], N[j - 1] = v, m, torch.linalg.vector_norm(v, dim=-1)
        k = lo_k
    return Adjoints(M, V, vscale, N)


def _finite(x: torch.Tensor) -> torch.Tensor:
    return torch.where(torch.isfinite(x), x, torch.zeros_like(x))


def _block(steps, vjp: VJP, ds: list, v: torch.Tensor, m: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
    """One block of the scaled sweep from g_k = exp(m) v: the block's scale m' (per row, the largest of log ||g_k||
    and the block's log ||d_j|| + offset), then v <- v J_j + d_{j-1} exp(off - m') at each step j, written into
    V[j - 1]. Returns m'."""
    cand = [torch.log(torch.linalg.vector_norm(v, dim=-1)) + m]
    cand += [torch.log(torch.linalg.vector_norm(dj[0], dim=-1)) + dj[1] for dj in ds if dj is not None]
    m_new = _finite(torch.stack(torch.broadcast_tensors(*cand)).amax(0) if len(cand) > 1 else cand[0])
    v = v * torch.exp(m - m_new).to(v.dtype).unsqueeze(-1)
    coef: dict = {}  # exp(off - m') per offset tensor: the block's direct terms mostly share one

    def scale(off):
        key = id(off) if isinstance(off, torch.Tensor) else off
        if key not in coef:
            coef[key] = torch.exp(off - m_new).to(v.dtype).unsqueeze(-1)
        return coef[key]

    for j, dj in zip(steps, ds):
        v = V[j - 1].copy_(vjp(j, v))  # v_j J_j: back through step j, at the block's scale
        if dj is not None:  # + d_{j-1} exp(off - m') (in place; on its first columns)
            v[..., :dj[0].shape[-1]].addcmul_(dj[0], scale(dj[1]))
    return m_new


def state_adjoint_seed(cell: Cell, B: int) -> torch.Tensor:
    """dL/ds_T for L = sum of the entries of h_T (the default loss): ones on h, zeros on c (B, S)."""
    g = torch.zeros(B, cell.state_size, dtype=cell.dtype)
    g[:, :cell.h_size] = 1.0
    return g


def adjoints(cell: Cell, trace: Trace, direct: torch.Tensor | None = None, *, t: int | None = None,
             vjp: VJP | None = None, block: int | None = None) -> Adjoints:
    """Adjoints dL/ds_k of a cell along a trace for k = 0..t, by the log-domain sweep, O(t B S^2).

        g_t = dL/ds_t (direct),   g_{k-1} = g_k ds_k/ds_{k-1} + (direct dL/ds_{k-1})

    direct: (t, B, S) explicit partials dL/ds_k for k = 1..t, or (t, B, P) their h part (the rest zero: a loss
    that reads h only), or None for L = sum of the entries of h_t.
    vjp: vjp(k, g) = g ds_k/ds_{k-1} (B, S) in place of cell.vjp on the trace's step k (a caller that keeps what
    the product passes through, e.g. LSTMCell.vjp_gates' gate adjoints).
    t = 100,000 in the exploding regime stays finite. block: steps between renormalisations (None: BLOCK of the
    cell's dtype, 16 for float64 and 8 for float32; 1: every step, in log-polar form).

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
    return sweep(t, vjp, d, log_domain=True, block=BLOCK.get(cell.dtype, 1) if block is None else block)
