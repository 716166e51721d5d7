"""What several claims' experiments share: measurements, bound lines, judgements, figures, two experiments.

Column-vector convention throughout: the Elman step h_t = phi(W_hh h_{t-1} + W_xh x_t + b_h) has
dh_t/dh_{t-1} = diag(phi'(a_t)) W_hh; the Pal step h_t = W_hh phi(h_{t-1}) + W_xh x_t + b_h has
W_hh diag(phi'(h_{t-1})). Every product is measured by the engine (gradients.flow.jacobian_profile;
T time, B batch, S state size, D input size):

    log10_products(cell, x)[b, k-1] = log10 ||dh_T/dh_k||_2,   dh_T/dh_k = J_T ... J_{k+1},   x (T, B, D)
    bound_line(T, rate)[k-1]        = (T - k) log10(rate)       the Pascanu bound (gamma sigma_max)^(T-k) in log10

bound_search draws random non-normal RNNs on both sides of gamma sigma_max = 1 and reports the largest
excess of the measured log-norm over that bound (<= 0: the bound holds). counterexample_evidence and
counterexample_figure turn a seeds.counterexamples.Counterexample into a claim's evidence and figure.
The experiments used by two claims live here too: derivative_facts / derivative_figure (sup |phi'|,
seeds 000 and 003) and clipping (Pascanu's norm clipping, seeds 000 and 004).

Example:
    >>> bound_line(4, 10.0)
    (3.0, 2.0, 1.0, 0.0)
    >>> sigma, rho = sigma_rho(torch.tensor([[0.5, 3.0], [0.0, 0.5]], dtype=DT))  # non-normal: rho < sigma_max
    >>> round(sigma, 4), round(rho, 4)
    (3.0811, 0.5)
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from ..core.activations import get_activation
from ..core.cells import ElmanCell, PalCell
from ..core.heads import Head
from ..core.results import FigureSpec, Series
from ..core.unroll import unroll
from ..gradients.bptt import bptt
from ..gradients.flow import jacobian_profile
from .claim_types import Finding
from .counterexamples import Counterexample

__all__ = ["DT", "rng", "k_axis", "log10_products", "bound_line", "sigma_rho", "random_svd_matrix",
           "counterexample_evidence", "grows_below_eigen_bound", "verdict", "counterexample_figure", "bound_search",
           "derivative_facts", "derivative_figure", "clipping"]

DT = torch.float64


# ---------------------------------------------------------------------------------------- measurements

def rng(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def k_axis(T: int) -> tuple[float, ...]:
    return tuple(float(k) for k in range(1, T + 1))


def log10_products(cell, x: torch.Tensor, h0: torch.Tensor | None = None) -> torch.Tensor:
    """log10 ||dh_T/dh_k||_2 for k = 1..T, per sequence: x (T, B, D) -> (B, T)."""
    return jacobian_profile(cell, unroll(cell, x, h0)).log10_spectral


def bound_line(T: int, rate: float) -> tuple[float, ...]:
    """(T - k) log10(rate) for k = 1..T: the log of (gamma lambda)^(T-k)."""
    return tuple((T - k) * math.log10(rate) for k in range(1, T + 1))


def sigma_rho(W: torch.Tensor) -> tuple[float, float]:
    return float(torch.linalg.svdvals(W)[0]), float(torch.linalg.eigvals(W).abs().max())


def random_svd_matrix(S: int, sigma_max: float, gen: torch.Generator) -> torch.Tensor:
    """W = U diag(s) V^T with Haar U, V and s_1 = sigma_max > s_2 ... : generically non-normal (rho < sigma_max)."""
    U, _ = torch.linalg.qr(torch.randn(S, S, generator=gen, dtype=DT))
    V, _ = torch.linalg.qr(torch.randn(S, S, generator=gen, dtype=DT))
    s = torch.sort(torch.rand(S, generator=gen, dtype=DT), descending=True).values
    s = sigma_max * s / s[0]
    return U @ torch.diag(s) @ V.T  # (S, S)


def counterexample_evidence(ce: Counterexample) -> dict:
    """The shared evidence of a counterexample: its W_hh facts and how far the products grow."""
    sigma, rho = sigma_rho(ce.W_hh)
    gam = get_activation(ce.activation).gamma
    return {"spectral_radius": rho, "sigma_max": sigma, "gamma": gam, "inv_gamma": 1 / gam,
            "log10_norm_first": float(ce.log10_norms[0]), "T": int(ce.log10_norms.shape[0]),
            "measured_log10_rate_per_step": ce.rate_per_step,
            "eigenvalue_promise_log10_rate": math.log10(gam * rho) if rho > 0 else None,
            "counterexample": ce.to_dict()}


def grows_below_eigen_bound(ce: Counterexample) -> bool:
    """The counterexample refutes an eigenvalue condition: gamma rho(W_hh) < 1, yet ||dh_T/dh_1|| > 1."""
    _, rho = sigma_rho(ce.W_hh)
    return get_activation(ce.activation).gamma * rho < 1 and float(ce.log10_norms[0]) > 0


def verdict(ok: bool, if_ok: str, otherwise: str) -> str:
    """The verdict the measurement supports: if_ok when the expected evidence came out, otherwise the other."""
    return if_ok if ok else otherwise


def counterexample_figure(ce: Counterexample, title: str) -> FigureSpec:
    sigma, rho = sigma_rho(ce.W_hh)
    gam = get_activation(ce.activation).gamma
    T = ce.log10_norms.shape[0]
    return FigureSpec(title, "k", "log10 ||dh_T/dh_k||_2", (
        Series("measured along the counterexample", k_axis(T), tuple(ce.log10_norms.tolist())),
        Series(f"singular-value bound (gamma sigma_max)^(T-k), gamma sigma_max = {gam * sigma:.3g}",
               k_axis(T), bound_line(T, gam * sigma), "dashed"),
        Series(f"eigenvalue 'promise' (gamma rho)^(T-k), gamma rho = {gam * rho:.3g}",
               k_axis(T), bound_line(T, gam * rho), "dotted"),
    ))


def bound_search(cell: str, activation: str, trials: int = 24, seed: int = 0) -> tuple[dict, FigureSpec]:
    """Random search for a violation of ||dh_t/dh_k||_2 <= (gamma sigma_max)^(t-k).

    Each trial: S ~ U{2..16}, W_hh = U diag(s) V^T with sigma_max = c/gamma, c ~ U(0.3, 1.6) (both sides
    of 1/gamma), strongly non-normal; W_xh, b_h ~ N(0, 1); inputs N(0, scale^2) with scale ~ U(0.1, 3)
    (from the linear regime into saturation); B = 4 sequences, T = 40. The excess is the largest
    log10 ||dh_T/dh_k||_2 - (T - k) log10(gamma sigma_max) over k < T: the bound holds iff it is <= 0.
    """
    gen = rng(seed)
    act = get_activation(activation)
    T, B = 40, 4
    worst, worst_curve = -math.inf, None
    excesses = []
    for _ in range(trials):
        S = int(torch.randint(2, 17, (1,), generator=gen))
        c = 0.3 + 1.3 * float(torch.rand((), generator=gen, dtype=DT))
        W = random_svd_matrix(S, c / act.gamma, gen)
        W_xh = torch.randn(S, 2, generator=gen, dtype=DT)
        b = torch.randn(S, generator=gen, dtype=DT)
        scale = 0.1 + 2.9 * float(torch.rand((), generator=gen, dtype=DT))
        x = scale * torch.randn(T, B, 2, generator=gen, dtype=DT)
        kind = ElmanCell if cell == "elman" else PalCell
        L = log10_products(kind(W, W_xh, b, act), x)  # (B, T)
        bound = torch.tensor(bound_line(T, c), dtype=DT)  # gamma sigma_max = c
        ex = float((L[:, :-1] - bound[:-1]).max())
        excesses.append(ex)
        if ex > worst:
            worst, worst_curve = ex, (L[int((L[:, :-1] - bound[:-1]).max(1).values.argmax())], bound, c)
    curve, bound, c = worst_curve
    fig = FigureSpec(f"{cell} ({activation}): the trial closest to the bound (gamma sigma_max = {c:.3g})", "k",
                     "log10 ||dh_T/dh_k||_2", (Series("measured", k_axis(T), tuple(curve.tolist())),
                                               Series("bound (gamma sigma_max)^(T-k)", k_axis(T),
                                                      tuple(bound.tolist()), "dashed")))
    return {"trials": trials, "sequences_per_trial": B, "T": T, "max_excess_decades": worst,
            "median_excess_decades": float(np.median(excesses))}, fig


# ---------------------------------------------------------------------------------------- shared experiments

def derivative_facts(name: str) -> dict:
    """sup |phi'| by autograd on a fine grid, its argmax, and phi there."""
    act = get_activation(name)
    a = torch.linspace(-10, 10, 400001, dtype=DT, requires_grad=True)  # step 5e-5, 0 on the grid
    (d,) = torch.autograd.grad(act.phi(a).sum(), a)
    a = a.detach()
    i = int(d.argmax())
    return {"sup_derivative": float(d[i]), "argmax_preactivation": float(a[i]), "value_at_argmax": float(act.phi(a[i])),
            "derivative_at_pm_1": float(d[(a - 1).abs().argmin()])}


def derivative_figure(names: Sequence[str]) -> FigureSpec:
    a = torch.linspace(-6, 6, 241, dtype=DT)
    series = []
    for name in names:
        act = get_activation(name)
        x = a.clone().requires_grad_(True)
        (d,) = torch.autograd.grad(act.phi(x).sum(), x)
        series.append(Series(f"{name}'(a) (autograd)", tuple(a.tolist()), tuple(d.tolist())))
        series.append(Series(f"gamma = {act.gamma:g}", (-6.0, 6.0), (act.gamma, act.gamma), "dashed"))
    return FigureSpec("Derivatives of the activations and their suprema gamma", "pre-activation a", "phi'(a)", tuple(series))


def _clipping_experiment() -> tuple[dict, FigureSpec]:
    """Pascanu's norm clipping g <- threshold g / ||g|| (||g|| >= threshold), on two Elman RNNs, loss at T only.

    exploding: identity activation, W_hh = 1.1 Q (Q orthogonal): ||g|| grows like 1.1^T;
    vanishing: tanh, W_hh = 0.5 Q: the part of dE_T/dW_hh through step k, C[T, k], falls like 0.5^(T-k).
    Clipping scales every C[T, k] by the same factor, so the ratio C[T, 1] / C[T, T] is unchanged.
    """
    gen = rng(5)
    S, T, threshold = 16, 60, 1.0
    ev, series = {}, []
    for name, act, gain in (("exploding", "identity", 1.1), ("vanishing", "tanh", 0.5)):
        Q, _ = torch.linalg.qr(torch.randn(S, S, generator=gen, dtype=DT))
        cell = ElmanCell(gain * Q, torch.randn(S, 1, generator=gen, dtype=DT), torch.zeros(S, dtype=DT), act)
        head = Head(torch.randn(1, S, generator=gen, dtype=DT), torch.zeros(1, dtype=DT), "mse")
        x, y = torch.randn(T, 1, generator=gen, dtype=DT), torch.ones(T, 1, dtype=DT)
        h0 = torch.randn(1, S, generator=gen, dtype=DT) / S**0.5  # h_0 != 0: the k = 1 partial is not zero
        r = bptt(cell, head, x, y, h0, loss_at="last")
        g = torch.cat([v.flatten() for v in r.grads.values()])
        norm = float(g.norm())
        thr = threshold if name == "exploding" else 0.1 * norm  # make the clip fire in both cases
        scale = thr / norm if norm >= thr else 1.0  # Algorithm 1
        C = r.contributions_norm["W_hh"][T - 1]  # (T,) ||C[T, k]||_F, k = 1..T
        ev[name] = {"gain": gain, "activation": act, "grad_norm_before": norm, "threshold": thr,
                    "grad_norm_after": float((scale * g).norm()),
                    "log10_far_over_near_before": math.log10(float(C[0] / C[-1])),
                    "log10_far_over_near_after": math.log10(float(scale * C[0] / (scale * C[-1])))}
        series.append(Series(f"{name}: before clipping", k_axis(T), tuple(torch.log10(C).tolist())))
        series.append(Series(f"{name}: after clipping", k_axis(T), tuple(torch.log10(scale * C).tolist()), "dashed"))
    fig = FigureSpec(f"Norm clipping: the update is bounded, the long-range share is unchanged (S = {S}, T = {T})",
                     "k", "log10 ||part of dE_T/dW_hh through step k||_F", tuple(series))
    return ev, fig


def clipping() -> Finding:
    ev, fig = _clipping_experiment()
    bounded = ev["exploding"]["grad_norm_after"] <= ev["exploding"]["threshold"] * (1 + 1e-12)
    v = ev["vanishing"]
    unchanged = abs(v["log10_far_over_near_after"] - v["log10_far_over_near_before"]) < 1e-9
    still_vanishing = v["log10_far_over_near_after"] < -6
    return Finding("holds" if bounded and unchanged and still_vanishing else "refuted", ev, figure=fig)
