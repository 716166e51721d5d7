"""The credit-assignment profile: how much gradient reaches step k from the loss d steps ahead, exactly.

For a loss that is a sum of per-step terms, L = sum_t E_t (E_t reads the top layer's output at step t: every
language model), the adjoint ||dL/dh_k|| sums the terms of every later step and is flat by construction. What
tells whether credit travels is each term on its own:

    G(d) = mean over anchors t and sequences b of log10 ||dE_t/dh_{t-d}||,      d = 0..D

per (layer, direction), in the direction's own time order (the reverse direction's step k reads position
T + 1 - k, and "d steps ahead" counts its own steps). dE_t/dh_k is the adjoint of the same sweep as dL/dh_k
(layer_flow.sweep_stack, through every upper layer) with the direct term u = dL/d(output) kept only at the
anchor step t: extra rows of the diagnosis' own sweep (credit_rows), row (i, j) holding u_t(b_j) at t = t_i
and zero elsewhere, for R anchors and the first `sequences` sequences of the batch. When more than `anchors`
steps carry a direct term, `anchors` of them are sampled (seeded, one per stratum of equal size, spread over the
sequence); the result says which.

The case is read from u: "per-step" when u is nonzero at two or more steps, then G as above (terms of L that
read h_n / c_n directly belong to no E_t and are left out); "last-step" otherwise (a loss on the last output or
on h_n), where the loss is one term and G(d) = log10 ||dL/dh_{t-d}|| with t the direction's last step with a
direct term (the diagnosis' own adjoint profile, h_n and c_n included).

Cost: R x (sequences) more rows in the diagnosis' one sweep per layer (no second pass through the steps).

Legend: T time, B batch, R anchors, D the largest distance (T - 1), P size of h.

Example (a linear recurrence h_k = 0.5 h_{k-1} + x_k, E_t = h_t: dE_t/dh_{t-d} = 0.5^d exactly):
    >>> m = torch.nn.RNN(1, 1, nonlinearity="relu", bias=False).double()
    >>> with torch.no_grad():
    ...     _ = m.weight_hh_l0.fill_(0.5), m.weight_ih_l0.fill_(1.0)
    >>> from rnnscope.interop.torch_models import rerun
    >>> from rnnscope.interop.layer_flow import sweep_stack
    >>> run, up = rerun(m, torch.ones(12, 2, 1, dtype=torch.float64)), torch.ones(12, 2, 1, dtype=torch.float64)
    >>> rows = credit_rows(up, anchors=4)
    >>> res = sweep_stack(run, torch.cat([up, rows.up], 1), seq=torch.cat([torch.arange(2), rows.seq]))[0]
    >>> c = credit_profiles(rows, res, run)[(0, "forward")]
    >>> c.case, len(c.anchors), [round(v, 5) for v in c.log10_credit[:3].tolist()]
    ('per-step', 4, [0.0, -0.30103, -0.60206])
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .torch_models import StackRun

__all__ = ["CreditProfile", "CreditRows", "credit_rows", "credit_profiles", "anchor_steps", "last_step_credit",
           "CREDIT_SEQUENCES"]

CREDIT_SEQUENCES = 4  # sequences per anchor by default: 4 anchors x 4 sequences = 16 more rows of the sweep


@dataclass(frozen=True)
class CreditProfile:
    """G(d) for d = 0..D of one (layer, direction): element d is the batch mean of log10 ||dE_t/dh_{t-d}||."""

    log10_credit: torch.Tensor  # (D+1,) float64; NaN where no anchor reaches that far
    case: str  # "per-step" | "last-step"
    anchors: tuple[int, ...]  # the anchor steps t (positions 1..T); last-step: (t,) in the direction's own order
    candidates: int  # steps that carry a direct term (anchors were sampled from them when more)
    sequences: int = 0  # sequences per anchor (per-step case)


@dataclass(frozen=True)
class CreditRows:
    """The anchored rows of a per-step loss: row i n + j is E_{t_i} on sequence j (j < n)."""

    up: torch.Tensor  # (T, R n, O) u_t(b_j) at t = t_i, zero elsewhere
    seq: torch.Tensor  # (R n,) int64: the sequence of each row
    anchors: tuple[int, ...]  # t_1..t_R, positions 1..T
    sequences: int  # n
    candidates: int  # steps with a direct term
    carries: torch.Tensor  # (R n,) bool: whether E_{t_i} has a direct term on that row's sequence


def anchor_steps(steps: list[int], anchors: int, seed: int = 0) -> list[int]:
    """`anchors` of the given steps (all when there are no more): one per stratum of equal size, seeded.

    >>> anchor_steps(list(range(1, 101)), 4)[-1] > 75, len(anchor_steps([3, 5], 4))
    (True, 2)
    """
    if len(steps) <= anchors:
        return list(steps)
    gen = torch.Generator().manual_seed(seed)
    edges = [round(i * len(steps) / anchors) for i in range(anchors + 1)]
    return [steps[lo + int(torch.randint(hi - lo, (1,), generator=gen))] for lo, hi in zip(edges[:-1], edges[1:])]


def credit_rows(up: torch.Tensor, anchors: int = 4, sequences: int | None = CREDIT_SEQUENCES,
                seed: int = 0) -> CreditRows | None:
    """The anchored rows of u = up (T, B, O) = dL/d(output), time-major: the per-step case; None for a loss
    with a direct term at fewer than two steps (the last-step case) or anchors = 0. sequences: n (None: all B)."""
    T, B = up.shape[0], up.shape[1]
    carries = up.reshape(T, B, -1).ne(0).any(2)  # (T, B): which sequences have a direct term at step t
    steps = [int(t) + 1 for t in torch.nonzero(carries.any(1)).flatten()]
    if len(steps) < 2 or anchors < 1:
        return None
    chosen = anchor_steps(steps, anchors, seed)
    n = B if sequences is None else max(1, min(B, int(sequences)))
    U = torch.zeros(T, len(chosen) * n, up.shape[2], dtype=up.dtype)
    for i, t in enumerate(chosen):
        U[t - 1, i * n:(i + 1) * n] = up[t - 1, :n]  # E_t alone: the direct term at its anchor only
    seq = torch.arange(n).repeat(len(chosen))
    ok = torch.cat([carries[t - 1, :n] for t in chosen])
    return CreditRows(U, seq, tuple(chosen), n, len(steps), ok)


def last_step_credit(adjoint_h: torch.Tensor, t_last: int) -> CreditProfile:
    """The last-step case: G(d) = batch mean of log10 ||dL/dh_{t-d}||, d = 0..t-1, from the adjoint profile
    adjoint_h (B, T) (log10, own time order) and the last step t with a direct term."""
    if t_last < 1:
        return CreditProfile(torch.full((1,), float("-inf"), dtype=torch.float64), "last-step", (), 0)
    g = adjoint_h[:, :t_last].flip(1).nanmean(0).to(torch.float64)
    return CreditProfile(g, "last-step", (t_last,), 1)


def credit_profiles(rows: CreditRows | None, res: dict, run: StackRun) -> dict[tuple[int, str], CreditProfile]:
    """G(d) of every (layer, direction) of a re-run from the sweep results res (layer_flow.sweep_stack with the
    rows appended after the batch's): the per-step case from res[key]["rows_h"], the last-step case (rows None)
    from the batch's own adjoint profile."""
    if rows is None:
        return {key: last_step_credit(o["adjoint_h"], o["t_last"]) for key, o in res.items()}
    f64 = torch.float64
    T, n = run.output.shape[0], rows.sequences
    lengths = run.lengths
    out = {}
    for key, o in res.items():
        ah = o["rows_h"].reshape(len(rows.anchors), n, T)  # log10 ||dE_t/dh_k||, own time order
        s, c = torch.zeros(T, dtype=f64), torch.zeros(T, dtype=f64)
        for i, t in enumerate(rows.anchors):
            ok = rows.carries[i * n:(i + 1) * n]
            for j in torch.nonzero(ok).flatten().tolist():
                L = T if lengths is None else int(lengths[j])
                a = t if key[1] == "forward" else L + 1 - t  # the anchor in the direction's own order
                vals = ah[i, j, :a].flip(0).to(f64)  # d = 0..a-1
                s[:a] += vals
                c[:a] += 1
        D = int(torch.nonzero(c).max()) + 1 if bool((c > 0).any()) else 1
        g = torch.where(c[:D] > 0, s[:D] / c[:D].clamp(min=1), torch.full((D,), math.nan, dtype=f64))
        out[key] = CreditProfile(g, "per-step", rows.anchors, rows.candidates, n)
    return out
