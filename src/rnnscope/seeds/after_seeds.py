"""After the seeds: each recurrence researchers use now, its guarantee stated and checked as an experiment.

The seeds stop at the Elman RNN and point to LSTM. The cells that came after (core.modern_cells) were built so
that a bound on ||ds_t/ds_k||_2 holds by construction (gradients.modern_bounds states each one). Here every
guarantee is a Claim (seeds.claim_types) whose experiment builds the cell as its paper initialises it
(core.build.random_cell), drives it with N(0, 1) inputs and measures the exact Jacobian-product profile
(gradients.profile), then judges the statement:

    c^(t-k) bound     max over sequences and k of  log10 ||ds_t/ds_k||_2 - (t-k) log10 c  <=  TOL
    equality (lru)    max |log10 ||ds_t/ds_k||_2 - (t-k) log10 max|lambda||  <=  TOL
    every step shrinks (mingru, minlstm, mamba: J_t diagonal in (0, 1))   the profile never rises as k falls
    identity phi (exprnn)   every log10 ||ds_t/ds_k||_2 = 0 exactly (to TOL): the product is orthogonal
    sLSTM             no a-priori bound is claimed: the statement is that none holds for the full state,
                      checked by a case where ||ds_t/ds_k||_2 exceeds 1 (a product that grows)

    run_after_seeds(only=None) -> [ClaimResult]          (the report's section "After the seeds")

Example:
    >>> [r.verdict for r in run_after_seeds(only=["after-lru"])]
    ['holds']
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch

from ..core.build import random_cell
from ..core.results import FigureSpec, Series
from ..gradients.bounds import weight_facts
from ..gradients.profile import Profile, profile
from .claim_types import Claim, ClaimResult, Finding
from .claims import claim_ids, run_claims

__all__ = ["AFTER_SEEDS", "SECTION", "TOL", "run_after_seeds", "after_seeds_ids"]

SECTION = "after the seeds"  # the ClaimResult.seed of these claims: the report's section, not a seed file
TOL = 1e-9  # log10 units: rounding of the float64 products
_T, _B, _H = 200, 4, 16  # steps, sequences, hidden units of every experiment


def _inputs(D: int, seed: int, T: int = _T, B: int = _B, scale: float = 1.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return scale * torch.randn(T, B, D, generator=g, dtype=torch.float64)  # (T, B, D)


def _profile(kind: str, *, seed: int = 0, D: int = 1, x_scale: float = 1.0, activation: str | None = None,
             **options) -> tuple[Profile, object]:
    cell = random_cell(kind, activation, hidden=_H, input_size=D, seed=seed, **options)
    return profile(cell, _inputs(D, seed + 1, scale=x_scale)), cell


def _excess(p: Profile, c: float) -> float:
    """max over sequences and k < t of log10 ||ds_t/ds_k||_2 - (t-k) log10 c: <= 0 when the bound holds (k = t,
    the identity, is 0 - 0 for any c and left out)."""
    dist = torch.arange(p.t - 1, 0, -1, dtype=torch.float64)  # t - k for k = 1..t-1
    return float((p.per_sequence_spectral[:, :-1] - dist * math.log10(c)).max())


def _rise(p: Profile) -> float:
    """The largest rise of log10 ||ds_t/ds_k||_2 as k falls (from k + 1 to k): <= 0 when every step shrinks."""
    s = p.per_sequence_spectral  # (B, t): element k-1 is step k
    return float((s[:, :-1] - s[:, 1:]).max())


def _figure(p: Profile, title: str, c: float | None) -> FigureSpec:
    dist = tuple(float(d) for d in range(p.t - 1, -1, -1))
    series = [Series("log10 ||ds_t/ds_k||_2 (batch mean)", dist, tuple(p.log10_spectral.tolist()))]
    if c is not None:
        series.append(Series(f"bound (t-k) log10 c, c = {c:.4g}", dist,
                             tuple(d * math.log10(c) for d in dist), "dashed"))
    return FigureSpec(title, "distance t - k (steps)", "log10 norm", tuple(series))


def _evidence(p: Profile, cell, **more) -> dict:
    return {"cell": p.cell, "state": p.state, "S": p.state_size, "T": p.t, "B": p.batch, "inputs": "N(0, 1)",
            "verdict_of_the_weights": p.verdict, "step_bound": p.step_bound, "rate_per_step": p.rate_per_step,
            "horizon": p.horizon, "log10_first": float(p.log10_spectral[0]), **more}


def _bounded(kind: str, title: str, *, shrinks: bool = False, **build) -> Callable[[], Finding]:
    """The experiment of a c^(t-k) bound (and, where each factor lies in (0, 1), of a profile that never rises)."""
    def run() -> Finding:
        p, cell = _profile(kind, **build)
        c = weight_facts(cell).step_bound
        ex = _excess(p, c)
        ev = _evidence(p, cell, max_excess_over_bound=ex)
        ok = ex <= TOL
        if shrinks:
            ev["largest_rise_per_step"] = _rise(p)
            ok = ok and ev["largest_rise_per_step"] <= TOL
        return Finding("holds" if ok else "refuted", ev, figure=_figure(p, title, c))
    return run


def _lru() -> Finding:
    p, cell = _profile("lru", r_min=0.9, r_max=0.99)
    r = float(cell.spectral_radius)
    dist = torch.arange(p.t - 1, -1, -1, dtype=torch.float64)
    err = float((p.per_sequence_spectral - dist * math.log10(r)).abs().max())
    ev = _evidence(p, cell, max_abs_lambda=r, max_abs_error_vs_closed_form=err)
    return Finding("holds" if err <= TOL else "refuted", ev,
                   figure=_figure(p, "LRU: ||ds_t/ds_k||_2 = max|lambda|^(t-k)", r))


def _exprnn_identity() -> Finding:
    p, cell = _profile("exprnn", activation="identity")
    err = float(p.per_sequence_spectral.abs().max())
    ev = _evidence(p, cell, sigma_max=weight_facts(cell).sigma_max, max_abs_log10_norm=err)
    return Finding("holds" if err <= TOL else "refuted", ev,
                   figure=_figure(p, "expRNN, identity phi: every ||ds_t/ds_k||_2 = 1", 1.0))


def _slstm() -> Finding:
    """No c^(t-k) bound with c <= 1 holds for the full state: find a product above 1 (inputs of growing scale)."""
    for scale in (1.0, 3.0, 10.0):  # the first scale whose products grow somewhere (or the last)
        p, cell = _profile("slstm", x_scale=scale)
        top = float(p.per_sequence_spectral[:, :-1].max())  # the largest log10 ||ds_t/ds_k||_2 over k < t
        if top > 0:
            break
    ev = _evidence(p, cell, input_scale=scale, largest_log10_norm=top)
    return Finding("holds" if top > 0 else "refuted", ev,
                   figure=_figure(p, f"sLSTM: the full state's products, inputs N(0, {scale:g}^2)", None))


_C = "||ds_t/ds_k||_2 <= c^(t-k)"
AFTER_SEEDS: tuple[Claim, ...] = (
    Claim("after-lru", SECTION, "LRU (Orvieto et al. 2023): with lambda = exp(-exp(nu) + i exp(theta)) the one-step "
          "Jacobian is diag(lambda), so ||ds_t/ds_k||_2 = max|lambda|^(t-k) exactly and, as every |lambda| < 1, "
          "gradients vanish geometrically and never explode.", _lru),
    Claim("after-mamba", SECTION, "Mamba's selective SSM (Gu & Dao 2023): every factor exp(Delta_t A) lies in (0, 1) "
          "(A < 0, Delta_t > 0), so ||ds_t/ds_k||_2 <= 1 and each step shrinks: never exploding; the input decides "
          "how fast memory fades.",
          _bounded("mamba", "Mamba S6: nonexpansive, the input sets the decay", shrinks=True, D=2)),
    Claim("after-mingru", SECTION, "minGRU (Feng et al. 2024): the gates see x_t alone, the Jacobian is diag(1 - z_t) "
          "with entries in (0, 1): ||ds_t/ds_k||_2 <= 1 and each step shrinks, never exploding.",
          _bounded("mingru", "minGRU: diag(1 - z_t), never exploding", shrinks=True)),
    Claim("after-minlstm", SECTION, "minLSTM (Feng et al. 2024): the Jacobian is diag(f_t / (f_t + i_t)) in (0, 1): "
          "||ds_t/ds_k||_2 <= 1 and each step shrinks, never exploding.",
          _bounded("minlstm", "minLSTM: diag(f'_t), never exploding", shrinks=True)),
    Claim("after-indrnn", SECTION, "IndRNN (Li et al. 2018): J_t = diag(phi'(a_t) u), so every unit's product is "
          "bounded by (gamma |u_i|)^(t-k) and " + _C + " with c = gamma max|u|.",
          _bounded("indrnn", "IndRNN: per-unit recurrences, c = gamma max|u|", x_scale=1.0)),
    Claim("after-exprnn", SECTION, "expRNN (Lezcano-Casado & Martinez-Rubio 2019): W_hh = expm(A), A skew-symmetric, "
          "is orthogonal, sigma_max = 1 exactly, so " + _C + " with c = gamma: only phi' can shrink the product.",
          _bounded("exprnn", "expRNN (tanh): c = gamma sigma_max = 1")),
    Claim("after-exprnn-identity", SECTION, "expRNN with the identity activation: every product of orthogonal "
          "matrices is orthogonal, ||ds_t/ds_k||_2 = 1 for every k: gradients neither vanish nor explode.",
          _exprnn_identity),
    Claim("after-cornn", SECTION, "coRNN (Rusch & Mishra 2021): the explicit oscillator scheme's Jacobian is a constant "
          "linear part L plus a term of norm at most dt sqrt(1 + dt^2) ||[W, W_z]||_2, so " + _C + " with "
          "c = ||L||_2 + dt sqrt(1 + dt^2) ||[W, W_z]||_2.",
          _bounded("cornn", "coRNN: the scheme's a-priori step bound")),
    Claim("after-slstm", SECTION, "sLSTM (Beck et al. 2024): exponential gating with a normaliser bounds h_t = o_t c_t "
          "/ n_t, but no bound ||ds_t/ds_k||_2 <= 1 holds on the full state (c, n, m, h): some products grow.",
          _slstm),
)


def after_seeds_ids() -> list[str]:
    return claim_ids(AFTER_SEEDS)


def run_after_seeds(only: Sequence[str] | None = None) -> list[ClaimResult]:
    """Run the guarantees (all, or those whose ids are in only) and return their results, in order."""
    return run_claims(only, registry=AFTER_SEEDS)
