"""Lyapunov spectra of the state dynamics s_t = F(x_t, s_{t-1}) along a trajectory, by the QR (Benettin) method.

The Lyapunov exponents are the growth rates of the singular values of the Jacobian product,

    lambda_i = lim_{T -> inf} (1/T) ln sigma_i(J_T J_{T-1} ... J_1),      J_t = ds_t/ds_{t-1}   (S, S)

(natural log per step). They are computed without ever forming the product: an orthonormal frame
Q_0 (S, k) is carried along, Q <- J_t Q, and every `every` steps re-orthonormalised, Q R = qr(Q);
the logs of |diag(R)| are summed (the log domain: nothing overflows however long T is):

    lambda_i ~ (1 / n) sum_{steps after warm-up} ln |R_ii|,        n = steps after warm-up.

The first `warmup` steps align the frame with the dynamics and are discarded (a QR is taken at step `warmup`
whatever `every` is, so the counted steps are exactly T - warmup: `steps`). With every > 1 the
product of `every` Jacobians must not spread the k directions beyond float64's precision: if
(lambda_1 - lambda_k) every exceeds ~ln(1e10) the run stops and asks for a smaller `every`. For a linear RNN with
fixed W the exponents are ln |eig_i(W)| sorted descending (tested). The standard error of the largest
exponent comes from contiguous blocks of the run (`blocks` of them, per sequence): stderr =
std(block means) / sqrt(number of blocks). The Kaplan-Yorke dimension is
j + (lambda_1 + ... + lambda_j) / |lambda_{j+1}|, with j the largest index whose partial sum is >= 0
(0 if lambda_1 < 0; k if every partial sum of the k computed exponents is >= 0).

The start matters. An autonomous run (no input) from s_0 = 0 with zero bias never leaves the fixed point
s = 0, and the exponents are then ln |eig(J(0))| (for h = W tanh(h): ln |eig(W)|), those of the fixed point,
whatever the attractor does. So `lyapunov` starts an autonomous run from a seeded random state (N(0, 1) per
entry by default: core.unroll.initial_state) and discards a warm-up of T // 10 steps, as Engelken's
algorithm does (random start, transient discarded); a driven run starts at 0 unless told otherwise. Whichever
start was used is recorded (`start`), and a run whose trajectory sits on a fixed point after the warm-up
(no unit moves by more than 1e-9 (1 + |s|) in a step) carries a warning saying so.

Cost: T one-step Jacobians (formed in chunks, batched over steps), T products (B, S, S) @ (B, S, k),
T/every QR factorisations of (B, S, k); memory O(C B S^2) beyond the trace (C steps per chunk).

Example:
    >>> from rnnscope.core.cells import ElmanCell
    >>> cell = ElmanCell(torch.diag(torch.tensor([0.5, 2.0], dtype=torch.float64)),
    ...                  torch.zeros(2, 1, dtype=torch.float64), torch.zeros(2, dtype=torch.float64), "identity")
    >>> ly = lyapunov(cell, torch.zeros(200, 1, 1, dtype=torch.float64))
    >>> [round(v, 6) for v in ly.exponents.tolist()]          # ln 2, ln 0.5: a linear map's are its own
    [0.693147, -0.693147]
    >>> ly.start, ly.warmup
    ('random N(0, 1^2), seed 0', 20)
"""

from __future__ import annotations

import dataclasses
import math
import time
from contextlib import nullcontext
from dataclasses import dataclass

import torch

from ..core.cells import Cell
from ..core.errors import InputError
from ..core.results import jsonable
from ..core.threads import SMALL_STATE, torch_threads
from ..core.unroll import Trace, initial_state, unroll

__all__ = ["LyapunovSpectrum", "lyapunov", "lyapunov_spectrum", "kaplan_yorke"]

_CHUNK_BYTES = 64 * 1024**2  # one chunk of Jacobians (C, B, S, S) stays below this
_SPREAD = 1e-10  # with every > 1: a direction shrunk by more than this relative to the first has lost ~6+ digits


@dataclass(frozen=True)
class LyapunovSpectrum:
    exponents: torch.Tensor  # (k,) natural log per step, descending, mean over the B sequences
    per_sequence: torch.Tensor  # (B, k)
    max_exponent: float
    kaplan_yorke_dimension: float
    stderr: float  # standard error of max_exponent from blocks (NaN with fewer than 2 blocks)
    steps: int  # steps averaged (after warm-up)
    warmup: int
    every: int
    k: int
    batch: int
    state_size: int
    cell: str
    seconds: float = 0.0
    start: str = "given"  # how s_0 was chosen: "given", "zeros", "random N(0, scale^2), seed n"
    warnings: tuple[str, ...] = ()  # e.g. the trajectory sits on a fixed point

    def to_dict(self) -> dict:
        return jsonable({"exponents": self.exponents, "max_exponent": self.max_exponent,
                         "kaplan_yorke_dimension": self.kaplan_yorke_dimension, "stderr": self.stderr,
                         "per_sequence": self.per_sequence, "steps": self.steps, "warmup": self.warmup,
                         "every": self.every, "k": self.k, "batch": self.batch, "state_size": self.state_size,
                         "cell": self.cell, "seconds": self.seconds, "start": self.start,
                         "warnings": list(self.warnings)})

    def _repr_html_(self) -> str:
        """A notebook's view (core.display.html_card): the scalar fields, the exponents, the warnings and
        plots.plot_lyapunov's figure."""
        from ..core.display import fields, html_card
        from ..core.plots import plot_lyapunov
        return html_card(f"Lyapunov spectrum of {self.cell}, S = {self.state_size}: lambda_1 = {self.max_exponent:.4g}",
                         {**fields(self, skip=("warnings",)), "exponents": self.exponents.tolist()},
                         lambda: plot_lyapunov(self), notes=self.warnings)


def kaplan_yorke(exponents) -> float:
    """D_KY = j + (lambda_1 + ... + lambda_j) / |lambda_{j+1}| for exponents sorted descending (see module doc)."""
    lam = [float(v) for v in exponents]
    total, j = 0.0, 0
    while j < len(lam) and total + lam[j] >= 0:
        total += lam[j]
        j += 1
    if j == 0:
        return 0.0
    if j == len(lam):
        return float(j)
    return j + total / abs(lam[j])


def _check_args(T: int, S: int, k: int | None, every: int, warmup: int, blocks: int) -> int:
    k = S if k is None else k
    for name, v, lo in (("k", k, 1), ("every", every, 1), ("warmup", warmup, 0), ("blocks", blocks, 1)):
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise InputError(f"{name}: expected an integer >= {lo}, got {v!r}")
    if k > S:
        raise InputError(f"k: expected at most the state size S = {S} exponents, got {k}")
    if warmup + every > T:
        raise InputError(f"length: expected more than warmup + every = {warmup + every} steps, got T = {T}")
    return k


def lyapunov_spectrum(cell: Cell, trace: Trace, *, k: int | None = None, every: int = 1, warmup: int = 0,
                      blocks: int = 10, seed: int = 0) -> LyapunovSpectrum:
    """The top k Lyapunov exponents (default all S) of the dynamics along a trace (see the module docstring).

    trace: states (T+1, B, S); every: steps between re-orthonormalisations; warmup: steps discarded.
    The result warns when the trajectory sits on a fixed point after the warm-up (see the module docstring).
    """
    T, B, S = trace.T, trace.B, cell.state_size
    k = _check_args(T, S, k, every, warmup, blocks)
    warnings = ()
    if trace.fixed_point(after=warmup):
        size = float(trace.states[-1].abs().amax())
        warnings = (f"the trajectory sits on a fixed point (max |s_i| = {size:.3g}, no unit moves after the warm-up): "
                    f"these are the exponents of that fixed point (the log-moduli of its Jacobian's eigenvalues), "
                    f"the attractor's only if it attracts; an autonomous run from 0 never leaves 0: start from a "
                    f"random state to see the attractor",)
    start = time.perf_counter()
    dt = cell.dtype
    gen = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(B, S, k, generator=gen, dtype=torch.float64).to(dt))  # (B, S, k) Q_0
    with torch_threads(1) if S <= SMALL_STATE else nullcontext():  # small per-step QRs: one thread (threads.py)
        logs, spans, Q = _frame_sweep(cell, trace, Q, every, warmup, k)
    steps = sum(spans)
    L = torch.stack(logs)  # (n, B, k)
    per_seq = (L.sum(0) / steps).sort(dim=1, descending=True).values  # (B, k) QR keeps the frame's order; sort anyway
    exps = per_seq.mean(0)  # (k,)
    n, nb = L.shape[0], min(blocks, L.shape[0])
    if nb >= 2:
        edges = [round(i * n / nb) for i in range(nb + 1)]
        span = torch.tensor(spans, dtype=torch.float64)
        means = torch.stack([L[a:b, :, 0].sum(0) / span[a:b].sum() for a, b in zip(edges[:-1], edges[1:])])  # (nb, B)
        stderr = float(means.flatten().std() / math.sqrt(means.numel()))
    else:
        stderr = math.nan
    return LyapunovSpectrum(exps, per_seq, float(exps[0]), kaplan_yorke(exps.tolist()), stderr, steps, warmup,
                            every, k, B, S, getattr(cell, "kind", type(cell).__name__), time.perf_counter() - start,
                            warnings=warnings)


def _frame_sweep(cell: Cell, trace: Trace, Q: torch.Tensor, every: int, warmup: int, k: int):
    """Carry the frame Q (B, S, k) through the trace; return the counted ln |R_ii| (B, k), their spans, and Q."""
    T, B, S = trace.T, trace.B, cell.state_size
    dt = cell.dtype
    logs, spans = [], []  # per counted QR: ln |R_ii| (B, k), and the steps it spans since the previous QR
    last_qr = 0
    C = max(1, min(256, _CHUNK_BYTES // max(1, B * S * S * torch.finfo(dt).bits // 8)))
    for c0 in range(0, T, C):
        c1 = min(T, c0 + C)
        x = trace.inputs[c0:c1].reshape((c1 - c0) * B, -1)  # (C B, D)
        s = trace.states[c0:c1].reshape((c1 - c0) * B, S)  # (C B, S) s_{t-1}
        J = cell.jacobian(x, s).reshape(c1 - c0, B, S, S)  # (C, B, S, S) J_t = ds_t/ds_{t-1}
        for i in range(c1 - c0):
            t = c0 + i + 1
            Q = torch.bmm(J[i], Q)  # Q <- J_t Q (B, S, k)
            if t % every == 0 or t == T or t == warmup:  # a QR where the warm-up ends: no counted span reaches into it
                Q, R = torch.linalg.qr(Q)  # re-orthonormalise: (B, S, k), (B, k, k)
                if not torch.isfinite(R).all():
                    raise InputError(f"every: expected the product of {every} Jacobians to stay finite, got an "
                                     f"overflow at step {t}; use a smaller --every")
                d = torch.diagonal(R, dim1=-2, dim2=-1).abs().to(torch.float64)  # (B, k)
                if every > 1 and k > 1 and bool(((d > 0) & (d < _SPREAD * d[:, :1])).any()):
                    raise InputError(f"every: expected the {k} directions to stay within {-math.log10(_SPREAD):.0f} "
                                     f"decades of each other over {every} steps (float64 keeps ~16), got a wider "
                                     f"spread at step {t}; use a smaller --every (1 always works)")
                if t > warmup:  # counted: ln |R_ii| is the growth of frame vector i over t - last_qr steps
                    logs.append(torch.log(d))
                    spans.append(t - last_qr)
                last_qr = t
    return logs, spans, Q


def lyapunov(cell: Cell, x, s0=None, *, start: str = "auto", start_scale: float = 1.0, start_seed: int = 0,
             warmup: int | None = None, **kw) -> LyapunovSpectrum:
    """Unroll the cell on inputs x (T, B, D) or (T, D) and return lyapunov_spectrum(...) (timed in full).

    s0 (B, S) or (S,): the start; without it `start` chooses (core.unroll.initial_state): "auto" (random
    N(0, start_scale^2) for an autonomous run, zeros for a driven one), "zeros" or "random".
    warmup: steps discarded; None: T // 10 from a random start (its transient), else 0.
    """
    t0 = time.perf_counter()
    s0, how = initial_state(cell, x, s0, start=start, scale=start_scale, seed=start_seed)
    trace = unroll(cell, x, s0)
    if warmup is None:
        warmup = trace.T // 10 if how.startswith("random") else 0
    ly = lyapunov_spectrum(cell, trace, warmup=warmup, **kw)
    return dataclasses.replace(ly, seconds=time.perf_counter() - t0, start=how)
