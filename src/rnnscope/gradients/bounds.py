"""What the weights alone promise, and what a measured profile says: Pascanu et al. (2013), section 2.

For the vanilla cells the one-step Jacobian is diag(phi'(a)) W_hh (Elman) or W_hh diag(phi'(h)) (Pal), so

    ||ds_t/ds_k||_2 <= (gamma sigma_max(W_hh))^(t-k),      gamma = sup |phi'|.

- sigma_max < 1/gamma: every long-range product vanishes at least geometrically ("vanishing guaranteed").
- sigma_max >= 1/gamma is necessary, not sufficient, for exploding ("exploding possible").
The eigenvalue test of seed 002 (spectral radius rho < 1/gamma) is not sufficient: a non-normal W with
rho < 1/gamma <= sigma_max can still make products grow for many steps. The note says so whenever
rho < 1/gamma <= sigma_max.

Measured side: the fitted rate (slope of log10 ||ds_t/ds_k|| against the distance d = t - k over the
tail d >= t/2) and the horizon (the first distance where the norm has fallen or risen by 10^3).

Example:
    >>> v = pascanu_verdict(gamma=0.25, sigma_max=3.0, spectral_radius=2.0)
    >>> v.verdict
    'vanishing guaranteed'
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..core.cells import Cell, ElmanCell, PalCell

__all__ = ["Verdict", "pascanu_verdict", "weight_facts", "fitted_rate", "horizon", "VANISHING", "EXPLODING", "GATED",
           "NONEXPANSIVE"]

VANISHING = "vanishing guaranteed"
EXPLODING = "exploding possible"
GATED = "no a-priori bound (gated cell)"
NONEXPANSIVE = "never exploding"  # ||ds_t/ds_k||_2 <= 1 whatever the inputs, vanishing not guaranteed


@dataclass(frozen=True)
class Verdict:
    """What the weights alone promise. step_bound: a number c with ||ds_t/ds_{t-1}||_2 <= c at every step whatever
    the inputs, so ||ds_t/ds_k||_2 <= c^(t-k) (gamma sigma_max for the vanilla cells; max |lambda| for LRU, where
    it is an equality); None where no such bound holds."""
    gamma: float | None
    sigma_max: float | None
    spectral_radius: float | None
    verdict: str
    note: str
    step_bound: float | None = None


def pascanu_verdict(gamma: float, sigma_max: float, spectral_radius: float) -> Verdict:
    """The Pascanu sufficient condition on the largest singular value, with the eigenvalue caveat."""
    inv = 1.0 / gamma
    if sigma_max < inv:
        verdict = VANISHING
        note = (f"sigma_max(W_hh) = {sigma_max:.4g} < 1/gamma = {inv:.4g}: every ||ds_t/ds_k|| <= "
                f"({gamma * sigma_max:.4g})^(t-k).")
    else:
        verdict = EXPLODING
        note = (f"sigma_max(W_hh) = {sigma_max:.4g} >= 1/gamma = {inv:.4g}: the bound ({gamma * sigma_max:.4g})^(t-k) "
                f"no longer forces vanishing; growth is possible, not certain.")
        if spectral_radius < inv:
            note += (f" The eigenvalue test would wrongly promise vanishing: rho(W_hh) = {spectral_radius:.4g} < "
                     f"1/gamma = {inv:.4g} <= sigma_max = {sigma_max:.4g} (W_hh is non-normal; seed 002's "
                     f"condition must be read with singular values).")
    return Verdict(gamma, sigma_max, spectral_radius, verdict, note, gamma * sigma_max)


def weight_facts(cell: Cell) -> Verdict:
    """gamma, sigma_max(W_hh), rho(W_hh) and the verdict for a cell (vanilla cells get the Pascanu test; the
    recurrences after the seeds their own guarantees, modern_bounds.py)."""
    from .modern_bounds import modern_facts  # it builds on this module's verdicts
    facts = modern_facts(cell)
    if facts is not None:
        return facts
    if isinstance(cell, (ElmanCell, PalCell)):
        W = cell.W_hh.detach().to(torch.float64)
        sigma_max = float(torch.linalg.svdvals(W)[0])
        rho = float(torch.linalg.eigvals(W).abs().max())
        return pascanu_verdict(cell.activation.gamma, sigma_max, rho)
    W = getattr(cell, "W_hh", None)
    sigma_max = float(torch.linalg.svdvals(W.detach().to(torch.float64))[0]) if W is not None else None
    note = ("A gated cell has an additive path (the LSTM cell state, the GRU's z * h): no bound of the form "
            "(gamma sigma_max)^(t-k) applies; read the measured profile.")
    if W is None:
        note = "A user step function: no weights to bound; read the measured profile."
    return Verdict(None, sigma_max, None, GATED if W is not None else "no a-priori bound (step function)", note)


def fitted_rate(log10_norms: torch.Tensor) -> float | None:
    """Least-squares slope of log10 ||ds_t/ds_k|| against d = t - k over the tail d >= (t-1)/2.

    log10_norms: (t,) with element k-1 for step k. Returns log10 units per step (negative: vanishing).
    """
    t = log10_norms.shape[0]
    d = torch.arange(t - 1, -1, -1, dtype=torch.float64)  # distance of element k-1 is t - k
    y = log10_norms.to(torch.float64)
    sel = (d >= (t - 1) / 2) & torch.isfinite(y)
    if int(sel.sum()) < 2:
        return None
    d, y = d[sel], y[sel]
    dc = d - d.mean()
    return float((dc * (y - y.mean())).sum() / (dc * dc).sum())


def horizon(log10_norms: torch.Tensor, decades: float = 3.0, *, rises: bool = True) -> tuple[int | None, str | None]:
    """The first distance d = t - k at which the norm has fallen (or risen) by 10^decades from d = 0.

    log10_norms (t,): element k-1 is step k. rises=False: only a fall counts (a rise is passed over).
    """
    t = log10_norms.shape[0]
    y = log10_norms.flip(0)  # element d is distance d
    base = float(y[0])
    for d in range(1, t):
        v = float(y[d])
        if v <= base - decades or (math.isinf(v) and v < 0):
            return d, "fallen"
        if rises and v >= base + decades:
            return d, "risen"
    return None, None
