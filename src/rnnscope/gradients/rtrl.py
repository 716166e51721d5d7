"""Forward-mode sensitivities dh_t/dW_hh: seed 001's Lemma 2 recursion and its Theorem 1, literally.

Seed 001 (S. Pal 2019) writes the Pascanu form h_t = W_R s(h_{t-1}) + W_I x_t + b_R and states

    Lemma 2:   dh_t/dW_R = HV(s(h_{t-1})) + W_R diag(s'(h_{t-1})) dh_{t-1}/dW_R,     dh_0/dW_R = 0
    Theorem 1: dh_t/dW_R = sum_{k=1}^{t-1} (prod_{r=k+1}^{t} W_R diag(s'(h_{r-1}))) HV(s(h_{k-1})) + HV(s(h_{t-1}))

with dh_t/dW_R an (n, n^2) matrix (W_R flattened row by row: column a*n + b is W_R[a, b]), and
HV(v) defined as the n-by-n block matrix whose every block is v^T.

Taken literally, HV(v) = ones(n, n) (x) v^T is wrong for n > 1: the immediate partial of h_t[i] with
respect to W_R[a, b] is delta_{ia} v_b, i.e. HV(v) = I_n (x) v^T (a block diagonal). The products must
also be ordered with r = t on the left. `theorem1(..., hv="literal")` computes the seed's formula as
written, `hv="corrected"` the corrected one; tests compare both with torch.func.jacrev.

The same recursion for the Elman form h_t = phi(W h_{t-1} + U x_t + b) reads
    dh_t/dW = diag(phi'(a_t)) [ I (x) h_{t-1}^T + W dh_{t-1}/dW ].
These are O(T n^4): for small n only (this is real-time recurrent learning).
"""

from __future__ import annotations

import torch

from ..core.cells import Cell, ElmanCell, PalCell
from ..core.errors import InputError
from ..core.unroll import unroll

__all__ = ["hv", "lemma2", "theorem1"]

_MAX_N = 64


def hv(v: torch.Tensor, literal: bool = False) -> torch.Tensor:
    """HV(v) (n, n^2): the seed's literal ones(n, n) (x) v^T, or the correct I_n (x) v^T."""
    n = v.shape[0]
    blocks = torch.ones(n, n, dtype=v.dtype) if literal else torch.eye(n, dtype=v.dtype)
    return torch.kron(blocks, v.unsqueeze(0))  # (n, n^2)


def _check(cell: Cell) -> None:
    if not isinstance(cell, (ElmanCell, PalCell)):
        raise InputError(f"cell: expected an Elman or Pal cell, got {getattr(cell, 'kind', type(cell).__name__)!r}")
    if cell.state_size > _MAX_N:
        raise InputError(f"state size: expected n <= {_MAX_N} for the O(T n^4) forward mode, got {cell.state_size}")


def _immediate(cell: Cell, h_prev: torch.Tensor, a: torch.Tensor, literal: bool) -> torch.Tensor:
    """d+h_t/dW_hh (n, n^2) with h_{t-1} held fixed (seed 001 Lemma 1)."""
    if isinstance(cell, PalCell):
        return hv(cell.activation.phi(h_prev), literal)  # h_t = W s(h_{t-1}) + ...: HV(s(h_{t-1}))
    return cell.activation.dphi(a).unsqueeze(-1) * hv(h_prev, literal)  # diag(phi'(a_t)) HV(h_{t-1})


def lemma2(cell: Cell, x, h0=None, hv_form: str = "corrected") -> torch.Tensor:
    """dh_t/dW_hh for t = 1..T by the forward recursion (Lemma 2), one sequence: x (T, D) -> (T, n, n^2).

    hv_form="literal" uses the seed's HV (every block v^T); "corrected" uses I (x) v^T.
    """
    if hv_form not in ("literal", "corrected"):
        raise InputError(f"hv_form: expected 'literal' or 'corrected', got {hv_form!r}")
    _check(cell)
    tr = unroll(cell, x, h0)
    if tr.B != 1:
        raise InputError(f"inputs: expected one sequence (T, D), got a batch of {tr.B}")
    h, a = tr.states[:, 0], tr.preacts[:, 0]  # (T+1, n), (T, n)
    n, T = cell.state_size, tr.T
    out = torch.empty(T, n, n * n, dtype=cell.dtype)
    dh = torch.zeros(n, n * n, dtype=cell.dtype)  # dh_0/dW = 0
    for t in range(1, T + 1):
        J = cell.jacobian(tr.inputs[t - 1], tr.states[t - 1])[0]  # dh_t/dh_{t-1} (n, n)
        dh = _immediate(cell, h[t - 1], a[t - 1], hv_form == "literal") + J @ dh  # Lemma 1: immediate + through h_{t-1}
        out[t - 1] = dh
    return out


def theorem1(cell: Cell, x, t: int | None = None, h0=None, hv_form: str = "corrected") -> torch.Tensor:
    """dh_t/dW_hh (n, n^2) by the closed form of seed 001's Theorem 1 (sum over k of Jacobian products).

    hv_form="literal" uses the seed's HV (every block v^T); "corrected" uses I (x) v^T.
    """
    if hv_form not in ("literal", "corrected"):
        raise InputError(f"hv_form: expected 'literal' or 'corrected', got {hv_form!r}")
    _check(cell)
    tr = unroll(cell, x, h0)
    if tr.B != 1:
        raise InputError(f"inputs: expected one sequence (T, D), got a batch of {tr.B}")
    t = tr.T if t is None else t
    if not 1 <= t <= tr.T:
        raise InputError(f"t: expected 1 <= t <= {tr.T}, got {t}")
    literal = hv_form == "literal"
    h, a = tr.states[:, 0], tr.preacts[:, 0]
    n = cell.state_size
    total = _immediate(cell, h[t - 1], a[t - 1], literal)  # the k = t term: HV(s(h_{t-1}))
    P = torch.eye(n, dtype=cell.dtype)  # prod_{r=k+1}^{t} J_r, built with r = t on the left
    for k in range(t - 1, 0, -1):
        P = P @ cell.jacobian(tr.inputs[k], tr.states[k])[0]  # append J_{k+1} = W diag(s'(h_k)) on the right
        total = total + P @ _immediate(cell, h[k - 1], a[k - 1], literal)
    return total
