"""The credit-assignment profile: how much gradient reaches step k from the loss d steps ahead, exactly.

For a loss that is a sum of per-step terms, L = sum_t E_t (E_t reads the top layer's output at step t: every
language model), the adjoint ||dL/dh_k|| sums the terms of every later step and is flat by construction. What
tells whether credit travels is each term on its own:

    G(d) = mean over anchors t and sequences b of log10 ||dE_t/dh_{t-d}||,      d = 0..D

per (layer, direction), in the direction's own time order (the reverse direction's step k reads position
T + 1 - k, and "d steps ahead" counts its own steps). dE_t/dh_k is the adjoint of the same sweep as dL/dh_k
(layer_flow.sweep_stack, through every upper layer) with the direct term u = dL/d(output) kept only at the
anchor step t. Several anchors run at once as extra rows: the batch is tiled R anchors x B sequences, row
r B + b holding u_t(b) at t = t_r and zero elsewhere. When more than `anchors` steps carry a direct term,
`anchors` of them are sampled (seeded, one per stratum of equal size, spread over the sequence); the result
says which.

The case is read from u: "per-step" when u is nonzero at two or more steps, then G as above (terms of L that
read h_n / c_n directly belong to no E_t and are left out); "last-step" otherwise (a loss on the last output or
on h_n), where the loss is one term and G(d) = log10 ||dL/dh_{t-d}|| with t the direction's last step with a
direct term (the diagnosis' own adjoint profile, h_n and c_n included).

Cost: one adjoint sweep of the stack over R x B rows from the latest anchor down (no attribution, no
parameter gradients), in groups of at most _ROWS rows (anchors x sequences) to bound memory. Measured on a
char-LM (embedding -> 2-layer LSTM 128 -> head, T = 200, B = 32, float32, one thread, a shared CPU): about
0.8 of the model's forward+backward per anchor (diagnose with adjoints only: about 3x; with 4 anchors, the
default of diagnose: about 7x; rows of early anchors are swept from the latest anchor, zero until theirs).

Legend: T time, B batch, R anchors, D the largest distance (T - 1), P size of h, S state size.

Example (a linear recurrence h_k = 0.5 h_{k-1} + x_k, E_t = h_t: dE_t/dh_{t-d} = 0.5^d exactly):
    >>> m = torch.nn.RNN(1, 1, nonlinearity="relu", bias=False).double()
    >>> with torch.no_grad():
    ...     _ = m.weight_hh_l0.fill_(0.5), m.weight_ih_l0.fill_(1.0)
    >>> from rnnscope.interop.torch_models import rerun
    >>> run = rerun(m, torch.ones(12, 2, 1, dtype=torch.float64))
    >>> c = credit_profiles(run, torch.ones(12, 2, 1, dtype=torch.float64), anchors=4)[(0, "forward")]
    >>> c.case, len(c.anchors), [round(v, 5) for v in c.log10_credit[:3].tolist()]
    ('per-step', 4, [0.0, -0.30103, -0.60206])
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch

from ..core.unroll import Trace
from .layer_flow import sweep_stack
from .torch_models import StackRun

__all__ = ["CreditProfile", "credit_profiles", "credit_of", "anchor_steps", "last_step_credit"]

_ROWS = 4096  # rows (anchors x sequences) per tiled sweep: bounded memory (T x rows x S numbers per layer)


@dataclass(frozen=True)
class CreditProfile:
    """G(d) for d = 0..D of one (layer, direction): element d is the batch mean of log10 ||dE_t/dh_{t-d}||."""

    log10_credit: torch.Tensor  # (D+1,) float64; NaN where no anchor reaches that far
    case: str  # "per-step" | "last-step"
    anchors: tuple[int, ...]  # the anchor steps t (positions 1..T); last-step: (t,) in the direction's own order
    candidates: int  # steps that carry a direct term (anchors were sampled from them when more)


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


def _tiled(run: StackRun, R: int, cols: slice) -> StackRun:
    """The run with its batch columns `cols` tiled R times: row r B' + b is sequence cols[b]."""
    def tile(x):
        return None if x is None else x[:, cols].repeat(1, R, *([1] * (x.dim() - 2)))
    runs = tuple(dataclasses.replace(r, trace=Trace(tile(r.trace.states), tile(r.trace.preacts), tile(r.trace.inputs)))
                 for r in run.runs)
    return dataclasses.replace(run, runs=runs, output=tile(run.output), h_n=tile(run.h_n), c_n=tile(run.c_n))


def last_step_credit(adjoint_h: torch.Tensor, t_last: int) -> CreditProfile:
    """The last-step case: G(d) = batch mean of log10 ||dL/dh_{t-d}||, d = 0..t-1, from the adjoint profile
    adjoint_h (B, T) (log10, own time order) and the last step t with a direct term."""
    if t_last < 1:
        return CreditProfile(torch.full((1,), float("-inf"), dtype=torch.float64), "last-step", (), 0)
    g = adjoint_h[:, :t_last].flip(1).mean(0).to(torch.float64)
    return CreditProfile(g, "last-step", (t_last,), 1)


def credit_profiles(run: StackRun, up: torch.Tensor, *, anchors: int = 4, seed: int = 0,
                    adjoint_h: dict | None = None) -> dict[tuple[int, str], CreditProfile]:
    """G(d) of every (layer, direction) of a re-run, from u = up (T, B, dirs P) = dL/d(output), time-major.

    adjoint_h: {(layer, direction): ((B, T) log10 ||dL/dh_k||, t_last)} from the diagnosis, used in the
    last-step case (required then; without it that case gives an empty dict)."""
    T, B = up.shape[0], up.shape[1]
    carries = up.reshape(T, B, -1).ne(0).any(2)  # (T, B): which sequences have a direct term at step t
    steps = [int(t) + 1 for t in torch.nonzero(carries.any(1)).flatten()]
    if len(steps) < 2:
        if adjoint_h is None:
            return {}
        return {key: last_step_credit(a, t) for key, (a, t) in adjoint_h.items()}
    chosen = anchor_steps(steps, anchors, seed)
    R = len(chosen)
    f64 = torch.float64
    acc = {(r.layer, r.direction): (torch.zeros(T, dtype=f64), torch.zeros(T, dtype=f64)) for r in run.runs}
    per = max(1, _ROWS // R)  # sequences per group
    for lo in range(0, B, per):
        cols = slice(lo, min(B, lo + per))
        b = cols.stop - cols.start
        tiled = _tiled(run, R, cols)
        U = torch.zeros(T, R * b, up.shape[2], dtype=run.output.dtype)
        for i, t in enumerate(chosen):
            U[t - 1, i * b:(i + 1) * b] = up[t - 1, cols]  # E_t alone: the direct term at its anchor only
        res, _ = sweep_stack(tiled, U, 0.0, False, False)
        for r in run.runs:
            ah = res[(r.layer, r.direction)]["adjoint_h"].reshape(R, b, T)  # log10 ||dE_t/dh_k||, own time order
            s, n = acc[(r.layer, r.direction)]
            for i, t in enumerate(chosen):
                a = t if r.direction == "forward" else T + 1 - t  # the anchor in the direction's own order
                ok = carries[t - 1, cols]  # sequences where E_t has a direct term
                if not bool(ok.any()):
                    continue
                vals = ah[i, ok, :a].flip(1).to(f64)  # (b', a): d = 0..a-1
                s[:a] += vals.sum(0)
                n[:a] += vals.shape[0]
    out = {}
    for key, (s, n) in acc.items():
        D = int(torch.nonzero(n).max()) + 1 if bool((n > 0).any()) else 1
        g = torch.where(n[:D] > 0, s[:D] / n[:D].clamp(min=1), torch.full((D,), math.nan, dtype=f64))
        out[key] = CreditProfile(g, "per-step", tuple(chosen), len(steps))
    return out


def credit_of(run: StackRun, up: torch.Tensor, res: dict, anchors: int, seed: int = 0) -> dict:
    """credit_profiles of a re-run with the diagnosis' sweep results res (its adjoint profiles and last steps)."""
    return credit_profiles(run, up, anchors=anchors, seed=seed,
                           adjoint_h={k: (o["adjoint_h"], o["t_last"]) for k, o in res.items()})
