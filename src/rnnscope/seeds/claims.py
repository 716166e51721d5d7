"""The seeds' claims as experiments: each one runs, measures, and judges itself.

A Claim is (id, seed file, the statement in one sentence, an experiment). The experiment returns a
Finding: a verdict, the evidence (numbers), the corrected statement where the seed's is wrong, and a
figure (results.FigureSpec). Verdicts:

    holds                   the statement, read as written, agrees with the measurement
    holds-with-correction   true once a stated correction is made (a transpose, |W| for W, singular
                            values for eigenvalues, "asymptotically"), false or ambiguous as written
    refuted                 false as written: evidence.counterexample holds a concrete RNN (weights,
                            inputs, start state) and log10 ||dh_T/dh_k||_2 along it (counterexamples.py)

Every number is computed here, by the engine (cells, unroll, flow, bptt, rtrl) or by an independent
route (torch.func.jacrev, autograd through untied copies, closed forms); nothing is pasted in. The
counterexamples come from recipes stated in counterexamples.py and in the experiments below; the
tests recompute each one with plain torch products.

Column-vector convention throughout: the Elman step h_t = phi(W_hh h_{t-1} + W_xh x_t + b_h) has
dh_t/dh_{t-1} = diag(phi'(a_t)) W_hh; the Pal step h_t = W_hh phi(h_{t-1}) + W_xh x_t + b_h has
W_hh diag(phi'(h_{t-1})).

Example:
    >>> [r.verdict for r in run_claims(only=["003-bound-eigen"])]
    ['refuted']
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch

from ..core.activations import get_activation
from ..gradients.bptt import bptt
from ..core.cells import ElmanCell, LSTMCell, PalCell
from .counterexamples import Counterexample, measure, saddle
from ..core.errors import InputError
from ..gradients.flow import jacobian_profile
from ..core.heads import Head
from ..core.build import random_cell
from .reproduce import SEED_FILES, notebook_002
from ..core.results import FigureSpec, Series, jsonable
from ..gradients.rtrl import lemma2, theorem1
from ..core.unroll import unroll

__all__ = ["VERDICTS", "SEED_FILES", "Claim", "Finding", "ClaimResult", "CLAIMS", "claim_ids", "run_claims"]

VERDICTS = ("holds", "holds-with-correction", "refuted")
_DT = torch.float64


@dataclass(frozen=True)
class Finding:
    """What an experiment found."""

    verdict: str
    evidence: dict
    correction: str | None = None
    figure: FigureSpec | None = None


@dataclass(frozen=True)
class Claim:
    id: str
    seed: str  # the seed's file name
    statement: str
    experiment: Callable[[], Finding] = field(repr=False)


@dataclass(frozen=True)
class ClaimResult:
    id: str
    seed: str
    statement: str
    verdict: str
    correction: str | None
    evidence: dict
    seconds: float
    figure: FigureSpec | None = None

    def to_dict(self, figure: bool = False) -> dict:
        """The JSON object of `rnnscope claims --json` (with the figure's data too when figure=True)."""
        d = {"id": self.id, "seed": self.seed, "statement": self.statement, "verdict": self.verdict,
             "correction": self.correction, "evidence": self.evidence, "seconds": self.seconds}
        if figure:
            d["figure"] = self.figure
        return jsonable(d)


# ----------------------------------------------------------------------------------------------- helpers

def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _k_axis(T: int) -> tuple[float, ...]:
    return tuple(float(k) for k in range(1, T + 1))


def _log10_products(cell, x: torch.Tensor, h0: torch.Tensor | None = None) -> torch.Tensor:
    """log10 ||dh_T/dh_k||_2 for k = 1..T, per sequence: x (T, B, D) -> (B, T)."""
    return jacobian_profile(cell, unroll(cell, x, h0)).log10_spectral


def _bound_line(T: int, rate: float) -> tuple[float, ...]:
    """(T - k) log10(rate) for k = 1..T: the log of (gamma lambda)^(T-k)."""
    return tuple((T - k) * math.log10(rate) for k in range(1, T + 1))


def _sigma_rho(W: torch.Tensor) -> tuple[float, float]:
    return float(torch.linalg.svdvals(W)[0]), float(torch.linalg.eigvals(W).abs().max())


def _random_svd_matrix(S: int, sigma_max: float, gen: torch.Generator) -> torch.Tensor:
    """W = U diag(s) V^T with Haar U, V and s_1 = sigma_max > s_2 ... : generically non-normal (rho < sigma_max)."""
    U, _ = torch.linalg.qr(torch.randn(S, S, generator=gen, dtype=_DT))
    V, _ = torch.linalg.qr(torch.randn(S, S, generator=gen, dtype=_DT))
    s = torch.sort(torch.rand(S, generator=gen, dtype=_DT), descending=True).values
    s = sigma_max * s / s[0]
    return U @ torch.diag(s) @ V.T  # (S, S)


def _counterexample_evidence(ce: Counterexample) -> dict:
    """The shared evidence of a counterexample: its W_hh facts and how far the products grow."""
    sigma, rho = _sigma_rho(ce.W_hh)
    gam = get_activation(ce.activation).gamma
    return {"spectral_radius": rho, "sigma_max": sigma, "gamma": gam, "inv_gamma": 1 / gam,
            "log10_norm_first": float(ce.log10_norms[0]), "T": int(ce.log10_norms.shape[0]),
            "measured_log10_rate_per_step": ce.rate_per_step,
            "eigenvalue_promise_log10_rate": math.log10(gam * rho) if rho > 0 else None,
            "counterexample": ce.to_dict()}


def _grows_below_eigen_bound(ce: Counterexample) -> bool:
    """The counterexample refutes an eigenvalue condition: gamma rho(W_hh) < 1, yet ||dh_T/dh_1|| > 1."""
    _, rho = _sigma_rho(ce.W_hh)
    return get_activation(ce.activation).gamma * rho < 1 and float(ce.log10_norms[0]) > 0


def _verdict(ok: bool, if_ok: str, otherwise: str) -> str:
    """The verdict the measurement supports: if_ok when the expected evidence came out, otherwise the other."""
    return if_ok if ok else otherwise


def _counterexample_figure(ce: Counterexample, title: str) -> FigureSpec:
    sigma, rho = _sigma_rho(ce.W_hh)
    gam = get_activation(ce.activation).gamma
    T = ce.log10_norms.shape[0]
    return FigureSpec(title, "k", "log10 ||dh_T/dh_k||_2", (
        Series("measured along the counterexample", _k_axis(T), tuple(ce.log10_norms.tolist())),
        Series(f"singular-value bound (gamma sigma_max)^(T-k), gamma sigma_max = {gam * sigma:.3g}",
               _k_axis(T), _bound_line(T, gam * sigma), "dashed"),
        Series(f"eigenvalue 'promise' (gamma rho)^(T-k), gamma rho = {gam * rho:.3g}",
               _k_axis(T), _bound_line(T, gam * rho), "dotted"),
    ))


def _bound_search(cell: str, activation: str, trials: int = 24, seed: int = 0) -> tuple[dict, FigureSpec]:
    """Random search for a violation of ||dh_t/dh_k||_2 <= (gamma sigma_max)^(t-k).

    Each trial: S ~ U{2..16}, W_hh = U diag(s) V^T with sigma_max = c/gamma, c ~ U(0.3, 1.6) (both sides
    of 1/gamma), strongly non-normal; W_xh, b_h ~ N(0, 1); inputs N(0, scale^2) with scale ~ U(0.1, 3)
    (from the linear regime into saturation); B = 4 sequences, T = 40. The excess is the largest
    log10 ||dh_T/dh_k||_2 - (T - k) log10(gamma sigma_max) over k < T: the bound holds iff it is <= 0.
    """
    gen = _gen(seed)
    act = get_activation(activation)
    T, B = 40, 4
    worst, worst_curve = -math.inf, None
    excesses = []
    for _ in range(trials):
        S = int(torch.randint(2, 17, (1,), generator=gen))
        c = 0.3 + 1.3 * float(torch.rand((), generator=gen, dtype=_DT))
        W = _random_svd_matrix(S, c / act.gamma, gen)
        W_xh = torch.randn(S, 2, generator=gen, dtype=_DT)
        b = torch.randn(S, generator=gen, dtype=_DT)
        scale = 0.1 + 2.9 * float(torch.rand((), generator=gen, dtype=_DT))
        x = scale * torch.randn(T, B, 2, generator=gen, dtype=_DT)
        kind = ElmanCell if cell == "elman" else PalCell
        L = _log10_products(kind(W, W_xh, b, act), x)  # (B, T)
        bound = torch.tensor(_bound_line(T, c), dtype=_DT)  # gamma sigma_max = c
        ex = float((L[:, :-1] - bound[:-1]).max())
        excesses.append(ex)
        if ex > worst:
            worst, worst_curve = ex, (L[int((L[:, :-1] - bound[:-1]).max(1).values.argmax())], bound, c)
    curve, bound, c = worst_curve
    fig = FigureSpec(f"{cell} ({activation}): the trial closest to the bound (gamma sigma_max = {c:.3g})", "k",
                     "log10 ||dh_T/dh_k||_2", (Series("measured", _k_axis(T), tuple(curve.tolist())),
                                               Series("bound (gamma sigma_max)^(T-k)", _k_axis(T),
                                                      tuple(bound.tolist()), "dashed")))
    return {"trials": trials, "sequences_per_trial": B, "T": T, "max_excess_decades": worst,
            "median_excess_decades": float(np.median(excesses))}, fig


def _notebook_002(example: int):
    """Seed 002's random draws (reproduce.notebook_002) as float64 tensors: W_hh, W_hx (5, 5), b_h (5,), x (5, t)."""
    d = notebook_002(example)
    return tuple(torch.as_tensor(v, dtype=_DT) for v in (d["W_hh"], d["W_hx"], d["b_h"][:, 0], d["x"]))


# ---------------------------------------------------------------------------------------- seed 000

def _backward_step() -> Finding:
    """y_l = a(W_l y_{l-1} + b_l): dy_l/dy_{l-1} = diag(a'(z_l)) W_l (jacrev), and the loss gradient recursion."""
    gen = _gen(1)
    L, n = 6, 12
    Ws = [torch.randn(n, n, generator=gen, dtype=_DT) for _ in range(L)]
    bs = [torch.randn(n, generator=gen, dtype=_DT) for _ in range(L)]
    y0 = torch.randn(n, generator=gen, dtype=_DT)
    ys, zs = [y0], []
    for W, b in zip(Ws, bs):
        zs.append(W @ ys[-1] + b)
        ys.append(torch.sigmoid(zs[-1]))
    err_step = 0.0
    for l in range(L):
        J = torch.func.jacrev(lambda y, l=l: torch.sigmoid(Ws[l] @ y + bs[l]))(ys[l])  # (n, n)
        a_prime = torch.sigmoid(zs[l]) * (1 - torch.sigmoid(zs[l]))  # a'(z_l)
        err_step = max(err_step, float((J - a_prime[:, None] * Ws[l]).abs().max()))
    # L' recursion: L'_(l-1) = L'_(l) diag(a'(z_l)) W_l, from L = sum(y_L)
    grad = torch.ones(n, dtype=_DT)
    norms = [math.log10(float(grad.norm()))]
    for l in range(L - 1, -1, -1):
        a_prime = torch.sigmoid(zs[l]) * (1 - torch.sigmoid(zs[l]))
        grad = (grad * a_prime) @ Ws[l]  # row vector times diag(a') then W_l
        norms.append(math.log10(float(grad.norm())))
    y = y0.clone().requires_grad_(True)
    out = y
    for W, b in zip(Ws, bs):
        out = torch.sigmoid(W @ out + b)
    (g_auto,) = torch.autograd.grad(out.sum(), y)
    err_grad = float((g_auto - grad).abs().max() / g_auto.abs().max())
    fig = FigureSpec("A 6-layer sigmoid net: the loss gradient flowing back, layer by layer",
                     "layers back from the loss", "log10 ||L'_(l)||",
                     (Series("L'_(l) = L'_(l+1) diag(a') W", tuple(float(i) for i in range(L + 1)), tuple(norms), "points"),))
    return Finding(_verdict(err_step < 1e-12 and err_grad < 1e-12, "holds", "refuted"),
                   {"layers": L, "width": n, "max_abs_error_one_step_jacobian": err_step,
                             "relative_error_input_gradient_vs_autograd": err_grad}, figure=fig)


def _derivative_facts(name: str) -> dict:
    """sup |phi'| by autograd on a fine grid, its argmax, and phi there."""
    act = get_activation(name)
    a = torch.linspace(-10, 10, 400001, dtype=_DT, requires_grad=True)  # step 5e-5, 0 on the grid
    (d,) = torch.autograd.grad(act.phi(a).sum(), a)
    a = a.detach()
    i = int(d.argmax())
    return {"sup_derivative": float(d[i]), "argmax_preactivation": float(a[i]), "value_at_argmax": float(act.phi(a[i])),
            "derivative_at_pm_1": float(d[(a - 1).abs().argmin()])}


def _derivative_figure(names: Sequence[str]) -> FigureSpec:
    a = torch.linspace(-6, 6, 241, dtype=_DT)
    series = []
    for name in names:
        act = get_activation(name)
        x = a.clone().requires_grad_(True)
        (d,) = torch.autograd.grad(act.phi(x).sum(), x)
        series.append(Series(f"{name}'(a) (autograd)", tuple(a.tolist()), tuple(d.tolist())))
        series.append(Series(f"gamma = {act.gamma:g}", (-6.0, 6.0), (act.gamma, act.gamma), "dashed"))
    return FigureSpec("Derivatives of the activations and their suprema gamma", "pre-activation a", "phi'(a)", tuple(series))


def _sigmoid_derivative() -> Finding:
    ev = _derivative_facts("sigmoid")
    ok = abs(ev["sup_derivative"] - 0.25) < 1e-12 and abs(ev["argmax_preactivation"]) < 1e-9
    return Finding("holds" if ok else "refuted", ev, figure=_derivative_figure(["sigmoid"]))


def _unrolled_deep() -> Finding:
    """Untie W_hh into T copies W^(1..T) (one per layer of the unrolled net): dE/dW_hh = sum_k dE/dW^(k)."""
    gen = _gen(2)
    S, D, T = 5, 3, 12
    cell = ElmanCell(0.8 * torch.randn(S, S, generator=gen, dtype=_DT) / S**0.5, torch.randn(S, D, generator=gen, dtype=_DT),
                     torch.randn(S, generator=gen, dtype=_DT), "tanh")
    head = Head(torch.randn(2, S, generator=gen, dtype=_DT), torch.zeros(2, dtype=_DT), "mse")
    x, y = torch.randn(T, D, generator=gen, dtype=_DT), torch.randn(T, 2, generator=gen, dtype=_DT)
    h0 = torch.randn(S, generator=gen, dtype=_DT)
    r = bptt(cell, head, x, y, h0.unsqueeze(0))  # hand-derived, tied weights
    copies = [cell.W_hh.clone().requires_grad_(True) for _ in range(T)]
    h, E = h0, torch.zeros((), dtype=_DT)
    for t in range(T):  # layer t of the unrolled net has its own copy of W_hh
        h = torch.tanh(copies[t] @ h + cell.W_xh @ x[t] + cell.b_h)
        E = E + 0.5 * ((head.W_hy @ h + head.b_y - y[t]) ** 2).sum()
    grads = torch.autograd.grad(E, copies)
    total = torch.stack(grads).sum(0)
    err = float((total - r.grads["W_hh"]).abs().max() / r.grads["W_hh"].abs().max())
    fig = FigureSpec("An unrolled RNN is a T-layer net with tied weights: the gradient of each layer's copy",
                     "layer k (time step)", "log10 ||dE/dW^(k)||_F",
                     (Series("untied copy k (autograd)", _k_axis(T), tuple(math.log10(float(g.norm())) for g in grads), "points"),))
    return Finding(_verdict(err < 1e-12, "holds", "refuted"), {"T": T, "S": S, "relative_error_sum_of_copies_vs_bptt": err,
                             "loss_bptt": float(r.loss), "loss_unrolled": float(E.detach())}, figure=fig)


def _identity_power() -> Finding:
    gen = _gen(3)
    S, T = 6, 30
    W = 1.05 * torch.randn(S, S, generator=gen, dtype=_DT) / S**0.5
    cell = ElmanCell(W, torch.randn(S, 1, generator=gen, dtype=_DT), torch.zeros(S, dtype=_DT), "identity")
    L = _log10_products(cell, torch.randn(T, 1, 1, generator=gen, dtype=_DT))[0]  # (T,)
    powers = [math.log10(float(torch.linalg.matrix_norm(torch.linalg.matrix_power(W, T - k), 2))) for k in range(1, T + 1)]
    err = max(abs(float(a) - b) for a, b in zip(L, powers))
    fig = FigureSpec("Identity activation: dh_T/dh_k = W_hh^(T-k)", "k", "log10 ||.||_2",
                     (Series("engine: product of Jacobians", _k_axis(T), tuple(L.tolist())),
                      Series("||W_hh^(T-k)||_2 (matrix power)", _k_axis(T), tuple(powers), "dashed")))
    return Finding(_verdict(err < 1e-10, "holds", "refuted"), {"T": T, "S": S, "max_abs_log10_difference": err}, figure=fig)


def _scalar_power() -> Finding:
    T = 101
    ws = (-1.5, -0.9, 0.5, 0.9, 1.0, 1.1, 1.5)
    series, at100 = [], {}
    for w in ws:  # a 1-unit linear RNN: dh_T/dh_k = w^(T-k), measured by the engine
        cell = ElmanCell(torch.tensor([[w]], dtype=_DT), torch.ones(1, 1, dtype=_DT), torch.zeros(1, dtype=_DT), "identity")
        L = _log10_products(cell, torch.zeros(T, 1, 1, dtype=_DT))[0].flip(0)  # element d is distance d = T - k
        at100[str(w)] = float(L[100])
        series.append(Series(f"W = {w}", tuple(float(d) for d in range(T)), tuple(L.tolist()),
                             "dashed" if w < 0 else "solid"))
    fig = FigureSpec("Scalar W: log10 |W^d| against the distance d", "d", "log10 |W^d|", tuple(series))
    ok = at100["-1.5"] > 0 and at100["1.5"] > 0 and at100["0.5"] < 0 and at100["0.9"] < 0  # -1.5 < 1 grows
    return Finding(_verdict(ok, "holds-with-correction", "holds"), {"log10_abs_W_power_100": at100, "W_values": list(ws)},
                   correction=("|W|^k -> 0 when |W| < 1 and -> infinity when |W| > 1: the condition is on |W| "
                               "(W = -1.5 < 1 grows in magnitude; W = -0.9 oscillates while it decays; W = 1 stays)."),
                   figure=fig)


def _spectral_radius() -> Finding:
    """W = Q [[0.9, c], [0, 0.8]] Q^T (c = 5): rho = 0.9 < 1, but ||W^k|| rises far above 1 before it decays."""
    gen = _gen(4)
    Q, _ = torch.linalg.qr(torch.randn(2, 2, generator=gen, dtype=_DT))
    W = Q @ torch.tensor([[0.9, 5.0], [0.0, 0.8]], dtype=_DT) @ Q.T
    T = 121
    cell = ElmanCell(W, torch.zeros(2, 1, dtype=_DT), torch.zeros(2, dtype=_DT), "identity")
    L = _log10_products(cell, torch.zeros(T, 1, 1, dtype=_DT))[0].flip(0)  # element d: log10 ||W^d||_2
    d_peak = int(L.argmax())
    above = [d for d in range(T) if L[d] > 0]
    sigma, rho = _sigma_rho(W)
    fig = FigureSpec("A non-normal W with rho = 0.9 < 1: transient growth of ||W^d||", "d", "log10 ||W^d||_2",
                     (Series("||W^d||_2 (engine)", tuple(float(d) for d in range(T)), tuple(L.tolist())),
                      Series("rho^d", tuple(float(d) for d in range(T)), tuple(d * math.log10(rho) for d in range(T)), "dotted")))
    ok = rho < 1 and float(L[d_peak]) > 0 and float(L[-1]) < 0  # grows first, vanishes in the end
    return Finding(_verdict(ok, "holds-with-correction", "holds"), {
        "W_hh": W.tolist(), "spectral_radius": rho, "sigma_max": sigma, "peak_log10_norm": float(L[d_peak]), "peak_at_power": d_peak,
        "last_power_with_norm_above_1": max(above) if above else 0, "log10_norm_at_power_120": float(L[120])},
        correction=("rho(W) < 1 makes ||W^k|| -> 0 only asymptotically: a non-normal W with rho < 1 can grow for "
                    "many steps first (here by the peak factor shown), so eigenvalues say nothing about the first "
                    "tens of steps; the largest singular value bounds every step."), figure=fig)


def _activation_decides() -> Finding:
    """One sigmoid unit, W = 8, b = -4, h_0 = 1/2: a = 0 on every step, a' = 1/4, and dh_T/dh_k = 2^(T-k)."""
    ce = measure("elman", "sigmoid", [[8.0]], [[1.0]], [-4.0], torch.zeros(40, 1, dtype=_DT), [0.5])
    ev = _counterexample_evidence(ce)
    tr = unroll(ce.make_cell(), ce.inputs.unsqueeze(1), ce.h0.unsqueeze(0))
    ev["max_activation_derivative_on_trajectory"] = float(get_activation("sigmoid").dphi(tr.preacts).max())
    ok = ev["max_activation_derivative_on_trajectory"] < 1 and float(ce.log10_norms[0]) > 0
    return Finding(_verdict(ok, "refuted", "holds"), ev, figure=_counterexample_figure(ce, "sigmoid (a' <= 1/4 < 1) and yet the gradient doubles every step"),
                   correction=("A backward step multiplies by diag(a') W, not by a' alone: it attenuates when "
                               "||diag(a') W|| < 1, guaranteed when gamma sigma_max(W) < 1; a' < 1 with a large W "
                               "(here one sigmoid unit, W = 8, a' = 1/4: a factor 2 per step) explodes."))


def _clipping_experiment() -> tuple[dict, FigureSpec]:
    """Pascanu's norm clipping g <- threshold g / ||g|| (||g|| >= threshold), on two Elman RNNs, loss at T only.

    exploding: identity activation, W_hh = 1.1 Q (Q orthogonal): ||g|| grows like 1.1^T;
    vanishing: tanh, W_hh = 0.5 Q: the part of dE_T/dW_hh through step k, C[T, k], falls like 0.5^(T-k).
    Clipping scales every C[T, k] by the same factor, so the ratio C[T, 1] / C[T, T] is unchanged.
    """
    gen = _gen(5)
    S, T, threshold = 16, 60, 1.0
    ev, series = {}, []
    for name, act, gain in (("exploding", "identity", 1.1), ("vanishing", "tanh", 0.5)):
        Q, _ = torch.linalg.qr(torch.randn(S, S, generator=gen, dtype=_DT))
        cell = ElmanCell(gain * Q, torch.randn(S, 1, generator=gen, dtype=_DT), torch.zeros(S, dtype=_DT), act)
        head = Head(torch.randn(1, S, generator=gen, dtype=_DT), torch.zeros(1, dtype=_DT), "mse")
        x, y = torch.randn(T, 1, generator=gen, dtype=_DT), torch.ones(T, 1, dtype=_DT)
        h0 = torch.randn(1, S, generator=gen, dtype=_DT) / S**0.5  # h_0 != 0: the k = 1 partial is not zero
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
        series.append(Series(f"{name}: before clipping", _k_axis(T), tuple(torch.log10(C).tolist())))
        series.append(Series(f"{name}: after clipping", _k_axis(T), tuple(torch.log10(scale * C).tolist()), "dashed"))
    fig = FigureSpec(f"Norm clipping: the update is bounded, the long-range share is unchanged (S = {S}, T = {T})",
                     "k", "log10 ||part of dE_T/dW_hh through step k||_F", tuple(series))
    return ev, fig


def _clipping() -> Finding:
    ev, fig = _clipping_experiment()
    bounded = ev["exploding"]["grad_norm_after"] <= ev["exploding"]["threshold"] * (1 + 1e-12)
    v = ev["vanishing"]
    unchanged = abs(v["log10_far_over_near_after"] - v["log10_far_over_near_before"]) < 1e-9
    still_vanishing = v["log10_far_over_near_after"] < -6
    return Finding("holds" if bounded and unchanged and still_vanishing else "refuted", ev, figure=fig)


# ---------------------------------------------------------------------------------------- seed 001

def _elman_pal() -> Finding:
    """(G1) h_t = s(W h_{t-1} + U x_t + b)  <=>  (R1) h~_t = W s(h~_{t-1}) + U x_t + b with h~ = s^-1(h)."""
    gen = _gen(6)
    S, D, T = 6, 2, 25
    W, U, b = torch.randn(S, S, generator=gen, dtype=_DT), torch.randn(S, D, generator=gen, dtype=_DT), torch.randn(S, generator=gen, dtype=_DT)
    x = torch.randn(T, 1, D, generator=gen, dtype=_DT)
    errs, series = {}, []
    for act in ("sigmoid", "tanh"):
        h0 = 0.4 * torch.rand(1, S, generator=gen, dtype=_DT) + 0.1  # inside the range of both
        elman = unroll(ElmanCell(W, U, b, act), x, h0)
        a0 = torch.logit(h0) if act == "sigmoid" else torch.atanh(h0)  # h~_0 = s^-1(h_0)
        pal = unroll(PalCell(W, U, b, act), x, a0)
        diff = (pal.states[1:] - elman.preacts).abs().amax(dim=(1, 2))  # h~_t against a_t = s^-1(h_t)
        errs[act] = float(diff.max())
        series.append(Series(act, _k_axis(T), tuple(torch.log10(diff + 1e-300).tolist()), "points"))
    fig = FigureSpec("Elman (G1) and Pal (R1) forms: |h~_t - s^-1(h_t)| per step", "t", "log10 max |difference|", tuple(series))
    return Finding(_verdict(max(errs.values()) < 1e-12, "holds", "refuted"), {"max_abs_difference": errs, "T": T, "S": S},
                   figure=fig)


def _rtrl_errors(fn) -> tuple[dict, FigureSpec]:
    """Relative error of fn(cell, x, h0, hv_form) -> dh_t/dW (n, n^2) against torch.func.jacrev, n = 1 and 3."""
    ev, series = {}, []
    for n in (1, 3):
        gen = _gen(7 + n)
        W = 0.9 * torch.randn(n, n, generator=gen, dtype=_DT) / n**0.5
        U, b = torch.randn(n, 2, generator=gen, dtype=_DT), torch.randn(n, generator=gen, dtype=_DT)
        x, h0 = torch.randn(8, 2, dtype=_DT, generator=gen), 0.5 * torch.randn(1, n, dtype=_DT, generator=gen)
        cell = PalCell(W, U, b, "tanh")

        def h_T(Wf, t):  # h_t of the Pal recurrence as a function of W_R, flattened row-major
            h = h0[0]
            for i in range(t):
                h = Wf.reshape(n, n) @ torch.tanh(h) + U @ x[i] + b
            return h
        for form in ("literal", "corrected"):
            errs = []
            for t in range(1, 9):
                ref = torch.func.jacrev(h_T)(W.flatten(), t)  # (n, n^2)
                got = fn(cell, x, h0, form, t)
                errs.append(float((got - ref).norm() / ref.norm()))
            ev[f"n{n}_{form}_max_relative_error"] = max(errs)
            series.append(Series(f"n = {n}, HV {form}", _k_axis(8), tuple(math.log10(e + 1e-300) for e in errs),
                                 "solid" if form == "literal" else "dashed"))
    fig = FigureSpec("dh_t/dW_R against torch.func.jacrev (relative error)", "t", "log10 relative error", tuple(series))
    return ev, fig


def _hv_verdict(ev: dict) -> str:
    """The literal HV is exact for n = 1 and wrong for n = 3, the corrected one exact for both."""
    corrected = max(ev["n1_corrected_max_relative_error"], ev["n3_corrected_max_relative_error"]) < 1e-12
    if not corrected:
        return "refuted"
    return _verdict(ev["n3_literal_max_relative_error"] > 1e-3, "holds-with-correction", "holds")


def _lemma2() -> Finding:
    ev, fig = _rtrl_errors(lambda cell, x, h0, form, t: lemma2(cell, x, h0, hv_form=form)[t - 1])
    return Finding(_hv_verdict(ev), ev, figure=fig, correction=(
        "Lemma 2 holds with HV(v) = I_n (x) v^T (block diagonal: dh_t[i]/dW_R[a, b] = delta_ia s(h_{t-1})_b); "
        "with every block v^T, as the seed defines HV, it is wrong for n > 1 and exact only for n = 1."))


def _theorem1() -> Finding:
    ev, fig = _rtrl_errors(lambda cell, x, h0, form, t: theorem1(cell, x, t, h0, hv_form=form))
    return Finding(_hv_verdict(ev), ev, figure=fig, correction=(
        "Theorem 1 holds with HV(v) = I_n (x) v^T and the product ordered with r = t on the left: "
        "dh_t/dW_R = sum_{k=1}^{t-1} (W diag(s'(h_{t-1})) ... W diag(s'(h_k))) HV(s(h_{k-1})) + HV(s(h_{t-1}))."))


def _theorem2_singular() -> Finding:
    ev_t, fig = _bound_search("pal", "tanh", seed=8)
    ev_s, _ = _bound_search("pal", "sigmoid", seed=9)
    ev = {"tanh": ev_t, "sigmoid": ev_s,
          "note": "||F(k0,t)||_2 = ||dh_t/dh_k0||_2 ||s(h_{k0-1})||_2 (||HV(v)||_2 = ||v||_2 for the corrected HV)"}
    ok = ev_t["max_excess_decades"] <= 1e-9 and ev_s["max_excess_decades"] <= 1e-9
    return Finding("holds" if ok else "refuted", ev, figure=fig)


def _theorem2_eigen() -> Finding:
    ce = saddle("tanh", "pal")
    return Finding(_verdict(_grows_below_eigen_bound(ce), "refuted", "holds"), _counterexample_evidence(ce),
                   figure=_counterexample_figure(ce, "Theorem 2 with lambda_1 an eigenvalue: rho(W_R) = 0.5 < 1/gamma, products grow"),
                   correction=("Theorem 2 holds with lambda_1 the largest SINGULAR value of W_R. The proof's step "
                               "||W_R|| <= |lambda_1| is true only for normal W_R; also its chain writes "
                               "||s(h_{t-1})||^(t-k0) where gamma^(t-k0) is meant."))


def _theorem3() -> Finding:
    """Linear RNN h_t = W h_{t-1} + ...: dE_t/dh_{t-l} = (W^T)^l g with g = dE_t/dh_t.

    W = V diag(1.5, 1.2, 0.5) V^-1 with V a fixed non-orthogonal basis (recipe below). Take g = q_2, the
    (right) eigenvector of W for 1.2, so c_1 = 0 in the seed's expansion, and j = 2 with lambda_2 > 1:
    read literally the gradient grows like 1.2^l along q_2. Measured: it grows like 1.5^l, along p_1,
    the eigenvector of W^T for 1.5. With g = p_2 (eigenvector of W^T) it grows like 1.2^l along p_2.
    """
    V = torch.tensor([[1.0, 0.8, 0.3], [0.0, 0.6, 0.9], [0.2, 0.0, 0.5]], dtype=_DT)
    lam = torch.tensor([1.5, 1.2, 0.5], dtype=_DT)
    W = V @ torch.diag(lam) @ torch.linalg.inv(V)
    P = torch.linalg.inv(V).T  # columns p_i: W^T p_i = lambda_i p_i (left eigenvectors of W)
    L = 40
    ev, series = {}, []
    for name, g in (("right_eigenvector_q2", V[:, 1]), ("left_eigenvector_p2", P[:, 1])):
        g = g / g.norm()
        v, logs = g.clone(), [0.0]
        for _ in range(L):
            v = W.T @ v  # one step back: dE/dh_{k-1} = W^T dE/dh_k (identity activation)
            logs.append(math.log10(float(v.norm())))
        rate = (logs[-1] - logs[L // 2]) / (L - L // 2)
        cos_q2 = float((v @ V[:, 1]).abs() / (v.norm() * V[:, 1].norm()))
        cos_p1 = float((v @ P[:, 0]).abs() / (v.norm() * P[:, 0].norm()))
        cos_p2 = float((v @ P[:, 1]).abs() / (v.norm() * P[:, 1].norm()))
        ev[name] = {"log10_rate_per_step": rate, "cos_to_q2": cos_q2, "cos_to_p1": cos_p1, "cos_to_p2": cos_p2}
        series.append(Series(f"dE_t/dh_t = {name.replace('_', ' ')}", tuple(float(i) for i in range(L + 1)), tuple(logs)))
    ev["log10_lambda"] = [math.log10(float(v)) for v in lam]
    ev["W_hh"] = W.tolist()
    ev["steps"] = L
    for i, lv in enumerate(lam.tolist()[:2]):
        series.append(Series(f"lambda_{i + 1}^l = {lv}^l", tuple(float(i) for i in range(L + 1)),
                             tuple(l * math.log10(lv) for l in range(L + 1)), "dotted"))
    fig = FigureSpec("Theorem 3, linear RNN: growth of dE_t/dh_(t-l) by which eigenvectors expand dE_t/dh_t",
                     "l (steps back)", "log10 ||dE_t/dh_(t-l)||", tuple(series))
    lit, cor = ev["right_eigenvector_q2"], ev["left_eigenvector_p2"]
    ok = (abs(lit["log10_rate_per_step"] - ev["log10_lambda"][0]) < 1e-3 and lit["cos_to_p1"] > 0.999
          and abs(cor["log10_rate_per_step"] - ev["log10_lambda"][1]) < 1e-6 and cor["cos_to_p2"] > 0.999)
    return Finding(_verdict(ok, "holds-with-correction", "refuted"), ev, figure=fig, correction=(
        "The expansion dE_t/dh_t = sum_i c_i q_i must use the eigenvectors of W_R^T (left eigenvectors of W_R): "
        "then the gradient grows like lambda_j^l along q_j. With the eigenvectors of W_R itself, as written, this "
        "holds only for normal W_R: for a non-normal W_R, c_1 = 0 in that basis still leaves a component on the "
        "fastest left eigenvector, and the gradient grows like lambda_1^l."))


def _lemma3() -> Finding:
    """A = [[1, 100], [0, 1]]: every |eigenvalue| is 1, sigma_min(A) ~ 1e-4; B = v v^T with v its right singular vector."""
    A = torch.tensor([[1.0, 100.0], [0.0, 1.0]], dtype=_DT)
    _, s, Vh = torch.linalg.svd(A)
    v = Vh[-1]
    B = torch.outer(v, v)
    ratio = float(torch.linalg.matrix_norm(A @ B, 2) / torch.linalg.matrix_norm(B, 2))
    lam_star = float(torch.linalg.eigvals(A).abs().min())
    gen = _gen(10)
    worst_diag = math.inf
    for _ in range(200):  # diagonal A (the proof's case): ||AB|| >= min|a_ii| ||B|| always
        d = torch.randn(4, generator=gen, dtype=_DT)
        Bm = torch.randn(4, 4, generator=gen, dtype=_DT)
        worst_diag = min(worst_diag, float(torch.linalg.matrix_norm(torch.diag(d) @ Bm, 2)
                                           / (d.abs().min() * torch.linalg.matrix_norm(Bm, 2))))
    ds = np.linspace(0, 200, 81)
    ratios = []
    for c in ds:  # A_c = [[1, c], [0, 1]]: min ||A B|| / ||B|| = sigma_min(A_c), eigenvalues stay 1
        ratios.append(math.log10(float(torch.linalg.svdvals(torch.tensor([[1.0, c], [0.0, 1.0]], dtype=_DT))[-1])))
    fig = FigureSpec("Lemma 3 for A = [[1, c], [0, 1]]: min ||AB||/||B|| = sigma_min(A), while lambda*(A) = 1",
                     "c", "log10", (Series("sigma_min(A) = min ||AB||/||B||", tuple(ds.tolist()), tuple(ratios)),
                                    Series("lambda*(A) (the lemma's bound)", (0.0, 200.0), (0.0, 0.0), "dashed")))
    ok = ratio < lam_star and worst_diag >= 1 - 1e-12
    return Finding(_verdict(ok, "holds-with-correction", "holds"), {
        "A": A.tolist(), "lambda_star": lam_star, "sigma_min": float(s[-1]), "norm_AB_over_norm_B": ratio,
        "diagonal_A_min_ratio_over_200_trials": worst_diag}, figure=fig, correction=(
        "||AB|| >= sigma_min(A) ||B||: the smallest SINGULAR value. With the smallest |eigenvalue|, as stated, it "
        "fails for non-normal A; it holds for diagonal A, the only case the proof uses."))


def _theorem4() -> Finding:
    """Pal tanh RNN with W = 0.5 I + 3 N (N: ones above the diagonal, 4 x 4) and inputs N(0, 1e-6), which keep
    the states small (|h| < 0.4, so lambda* = min s'(h) > 0.9): ||W|| lambda* = 1 + eps with eps ~ 2, the
    hypothesis holds, yet dh_t/dW_R stays bounded, because the products of W diag(s') are dominated by
    the nilpotent N: they decay like 0.5^k k^3. Then ||dE_t/dW_R|| <= ||dE_t/dh_t|| ||dh_t/dW_R|| stays bounded."""
    n, T = 4, 160
    W = 0.5 * torch.eye(n, dtype=_DT) + 3.0 * torch.diag(torch.ones(n - 1, dtype=_DT), 1)
    gen = _gen(11)
    x = 1e-3 * torch.randn(T, n, generator=gen, dtype=_DT)
    cell = PalCell(W, torch.eye(n, dtype=_DT), torch.zeros(n, dtype=_DT), "tanh")
    tr = unroll(cell, x.unsqueeze(1))
    lam_star = float(get_activation("tanh").dphi(tr.states[:-1]).min())  # min over the trajectory of s'(h_{r-1})
    normW = float(torch.linalg.matrix_norm(W, 2))
    eps = normW * lam_star - 1
    dW = lemma2(cell, x)  # (T, n, n^2): dh_t/dW_R, corrected HV
    norms = dW.flatten(1).norm(dim=1)
    logs = torch.log10(norms)
    ce = measure("pal", "tanh", W, torch.eye(n, dtype=_DT), torch.zeros(n, dtype=_DT), x, torch.zeros(n, dtype=_DT))
    ev = _counterexample_evidence(ce)
    ev.update({"norm_W": normW, "lambda_star": lam_star, "epsilon": eps,
               "max_norm_dh_dW_first_half": float(norms[: T // 2].max()), "max_norm_dh_dW_second_half": float(norms[T // 2:].max()),
               "norm_dh_dW_at_T": float(norms[-1])})
    fig = FigureSpec(f"Theorem 4: ||W_R|| = {normW:.3g} >= (1+eps)/lambda* with eps = {eps:.3g}, yet no explosion",
                     "t (or k)", "log10", (Series("||dh_t/dW_R||_F (Lemma 2, corrected HV)", _k_axis(T), tuple(logs.tolist())),
                                    Series("||dh_T/dh_k||_2 against k (the counterexample's profile)", _k_axis(T),
                                           tuple(ce.log10_norms.tolist()), "dashed")))
    ok = eps > 0 and ev["max_norm_dh_dW_second_half"] <= ev["max_norm_dh_dW_first_half"]  # hypothesis met, no growth
    return Finding(_verdict(ok, "refuted", "holds"), ev, figure=fig, correction=(
        "A large ||W_R|| does not make the gradient explode: the proof's step ||prod W D_r|| >= prod lambda*(D_r) "
        "||W_R||^(t-k) would need ||W^m|| >= ||W||^m, the reverse of submultiplicativity. What grows or vanishes "
        "is the product itself: its growth rate (the top Lyapunov exponent) decides, and it is <= "
        "log(gamma sigma_max) but can be far below it."))


# ---------------------------------------------------------------------------------------- seed 002

def _jacobian_002() -> Finding:
    gen = _gen(12)
    S, T = 5, 20
    cell = ElmanCell(torch.randn(S, S, generator=gen, dtype=_DT), torch.randn(S, S, generator=gen, dtype=_DT),
                     torch.randn(S, generator=gen, dtype=_DT), "sigmoid")
    x = torch.randn(T, 1, S, generator=gen, dtype=_DT)
    tr = unroll(cell, x)
    err_literal, err_transpose = 0.0, 0.0
    correct, notebook_order = torch.eye(S, dtype=_DT), torch.eye(S, dtype=_DT)
    log_c, log_n = [], []
    for i in range(T - 1, -1, -1):  # i = T..1 (0-based): dh_T/dh_k built with J_{k+1} on the right
        step = lambda h, i=i: torch.sigmoid(cell.W_hh @ h + cell.W_xh @ x[i, 0] + cell.b_h)
        J = torch.func.jacrev(step)(tr.states[i, 0])  # (S, S): dh_i/dh_{i-1}, rows = outputs
        D = torch.diag(torch.sigmoid(tr.preacts[i, 0]) * (1 - torch.sigmoid(tr.preacts[i, 0])))
        seed = cell.W_hh.T @ D  # the notebook's W_hh^T diag(sigma'(a_i))
        err_literal = max(err_literal, float((J - seed).abs().max() / J.abs().max()))
        err_transpose = max(err_transpose, float((J.T - seed).abs().max() / J.abs().max()))
        correct = correct @ J  # J_T ... J_i
        notebook_order = notebook_order @ seed  # prod over i = T..k of W^T D_i, left to right (the notebook's loop)
        log_c.append(math.log10(float(torch.linalg.matrix_norm(correct, 2))))
        log_n.append(math.log10(float(torch.linalg.matrix_norm(notebook_order, 2))))
    log_c, log_n = log_c[::-1], log_n[::-1]  # element k-1: k = 1..T factors back to step k
    fig = FigureSpec("Seed 002's product: Jacobians vs W^T diag(sigma') in the notebook's order", "k",
                     "log10 ||product over t >= i >= k||_2",
                     (Series("true dh_T/dh_(k-1) = J_T ... J_k", _k_axis(T), tuple(log_c)),
                      Series("W^T D_T W^T D_(T-1) ... (notebook order)", _k_axis(T), tuple(log_n), "dashed")))
    return Finding(_verdict(err_literal > 1e-3 and err_transpose < 1e-12, "holds-with-correction", "holds"), {
        "relative_error_W_T_diag_as_jacobian": err_literal, "relative_error_as_transpose": err_transpose,
        "max_abs_log10_difference_of_products": max(abs(a - b) for a, b in zip(log_c, log_n))}, figure=fig,
        correction=("dh_i/dh_{i-1} = diag(sigma'(a_i)) W_hh (rows: outputs); W_hh^T diag(sigma'(a_i)) is its transpose "
                    "(the row-vector layout), so the product must run the other way: (dh_t/dh_k)^T = "
                    "W^T D_{k+1} W^T D_{k+2} ... W^T D_t. In the order t >= i > k as written, the product's norm is "
                    "not that of the Jacobian product."))


def _eigen_vanishing_002() -> Finding:
    ce = saddle("sigmoid", "elman")
    ev = _counterexample_evidence(ce)
    W1 = _notebook_002(1)[0]
    s1, r1 = _sigma_rho(W1)
    ev["notebook_vanishing_example"] = {"spectral_radius": r1, "sigma_max": s1}
    return Finding(_verdict(_grows_below_eigen_bound(ce), "refuted", "holds"), ev, figure=_counterexample_figure(ce, "sigmoid RNN with largest |eigenvalue| 2 < 4: products grow"),
                   correction=("Vanishing is guaranteed when the largest SINGULAR value of W_hh is < 4 (= 1/gamma for the "
                               "sigmoid): ||dh_t/dh_k|| <= (sigma_max/4)^(t-k). The largest |eigenvalue| < 4 guarantees "
                               "nothing for a non-normal W_hh (the notebook's own example has rho < 4 < sigma_max)."))


def _singular_vanishing_002() -> Finding:
    ev, fig = _bound_search("elman", "sigmoid", seed=13)
    return Finding("holds" if ev["max_excess_decades"] <= 1e-9 else "refuted", ev, figure=fig)


def _exploding_necessary_002() -> Finding:
    ce = saddle("sigmoid", "elman", g=1.5, r=0.9)
    ev = _counterexample_evidence(ce)
    return Finding(_verdict(_grows_below_eigen_bound(ce), "refuted", "holds"), ev,
                   figure=_counterexample_figure(ce, "Exploding with every |eigenvalue| < 4 (sigmoid)"),
                   correction=(f"sigma_max(W_hh) > 4 (the largest singular value) is necessary for exploding; the largest "
                               f"|eigenvalue| > 4 is not (the products grow here by 10^{ev['log10_norm_first']:.3g} over "
                               f"{ev['T']} steps with rho = {ev['spectral_radius']:.3g} < 4). Neither is sufficient."))


def _exploding_not_sufficient_002() -> Finding:
    """The notebook's own 'exploding' W_hh (eigenvalues 4 + 10 U(0,1)) run on the true states: h_0 = 0, x = 0, b = 0."""
    W, W_hx, b, x = _notebook_002(2)
    cell = ElmanCell(W, W_hx, b, "sigmoid")
    T = x.shape[1]
    tr = unroll(cell, x.T.unsqueeze(1))  # (T, 1, 5)
    L = jacobian_profile(cell, tr).log10_spectral[0]
    dphi = get_activation("sigmoid").dphi(tr.preacts[:, 0])  # (T, 5)
    eig = torch.linalg.eigvals(W)
    sigma, rho = _sigma_rho(W)
    fig = FigureSpec("Seed 002's 'exploding' W_hh on the true states of the recurrence", "k", "log10 ||dh_T/dh_k||_2",
                     (Series("measured", _k_axis(T), tuple(L.tolist())),
                      Series(f"bound (sigma_max/4)^(T-k), sigma_max/4 = {sigma / 4:.3g}", _k_axis(T), _bound_line(T, sigma / 4), "dashed")))
    ok = float(eig.abs().min()) > 4 and float(L[0]) < -3  # every |eigenvalue| > 4, and the gradient vanishes
    return Finding(_verdict(ok, "holds", "refuted"), {"min_abs_eigenvalue": float(eig.abs().min()), "spectral_radius": rho, "sigma_max": sigma,
                             "log10_norm_first": float(L[0]), "max_sigmoid_derivative_after_step_1": float(dphi[1:].max()),
                             "T": T}, figure=fig)


# ---------------------------------------------------------------------------------------- seed 003

def _derivative_bounds() -> Finding:
    ev = {"sigmoid": _derivative_facts("sigmoid"), "tanh": _derivative_facts("tanh")}
    s, t = ev["sigmoid"], ev["tanh"]
    ok = (abs(s["sup_derivative"] - 0.25) < 1e-12 and abs(s["argmax_preactivation"]) < 1e-9 and abs(s["value_at_argmax"] - 0.5) < 1e-12
          and abs(t["sup_derivative"] - 1) < 1e-12 and abs(t["argmax_preactivation"]) < 1e-9)
    return Finding("holds" if ok else "refuted", ev, figure=_derivative_figure(["sigmoid", "tanh"]))


def _jacobian_003() -> Finding:
    gen = _gen(14)
    errs = {}
    for act in ("sigmoid", "tanh"):
        S = 7
        cell = ElmanCell(torch.randn(S, S, generator=gen, dtype=_DT), torch.randn(S, 2, generator=gen, dtype=_DT),
                         torch.randn(S, generator=gen, dtype=_DT), act)
        s_prev, x = torch.randn(S, generator=gen, dtype=_DT), torch.randn(2, generator=gen, dtype=_DT)
        ref = torch.func.jacrev(lambda s: cell.activation.phi(cell.W_hh @ s + cell.W_xh @ x + cell.b_h))(s_prev)
        a = cell.W_hh @ s_prev + cell.W_xh @ x + cell.b_h
        formula = torch.diag(cell.activation.dphi(a)) @ cell.W_hh  # diag(s'(a_j)) W
        errs[act] = float((ref - formula).abs().max())
    return Finding(_verdict(max(errs.values()) < 1e-12, "holds", "refuted"), {"max_abs_error_vs_jacrev": errs},
                   figure=_derivative_figure(["sigmoid", "tanh"]))


def _bound_singular_003() -> Finding:
    ev_t, fig = _bound_search("elman", "tanh", seed=15)
    ev_s, _ = _bound_search("elman", "sigmoid", seed=16)
    ok = ev_t["max_excess_decades"] <= 1e-9 and ev_s["max_excess_decades"] <= 1e-9
    return Finding("holds" if ok else "refuted", {"tanh": ev_t, "sigmoid": ev_s}, figure=fig)


def _bound_eigen_003() -> Finding:
    ce = saddle("tanh", "elman")
    return Finding(_verdict(_grows_below_eigen_bound(ce), "refuted", "holds"), _counterexample_evidence(ce),
                   figure=_counterexample_figure(ce, "||ds_t/ds_k|| against (gamma rho)^(t-k): tanh, rho = 0.5"),
                   correction="The bound holds with lambda = ||W||_2 = sigma_max(W), not with the spectral radius rho(W).")


# ---------------------------------------------------------------------------------------- seed 004

def _output_gradient() -> Finding:
    """o_t = softmax(V h_t), E_t = -log o_t[y]: dE_t/dV = (o_t - e_y) h_t^T, a function of h_t (and y) only."""
    gen = _gen(17)
    S, O, T = 6, 4, 10
    cell = ElmanCell(torch.randn(S, S, generator=gen, dtype=_DT) / S**0.5, torch.randn(S, 2, generator=gen, dtype=_DT),
                     torch.zeros(S, dtype=_DT), "tanh")
    V = torch.randn(O, S, generator=gen, dtype=_DT, requires_grad=True)
    x = torch.randn(T, 1, 2, generator=gen, dtype=_DT)
    h = unroll(cell, x).states[1:, 0]  # (T, S)
    y = torch.randint(0, O, (T,), generator=gen)
    errs, gnorm = [], []
    for t in range(T):
        E = torch.nn.functional.cross_entropy((V @ h[t]).unsqueeze(0), y[t:t + 1])
        (g,) = torch.autograd.grad(E, V)
        o = torch.softmax(V.detach() @ h[t], 0)
        formula = torch.outer(o - torch.nn.functional.one_hot(y[t], O).to(_DT), h[t])  # (o_t - e_y) h_t^T
        errs.append(float((g - formula).abs().max()))
        gnorm.append(math.log10(float(g.norm())))
    fig = FigureSpec("dE_t/dV from h_t alone: (o_t - e_y) h_t^T against autograd through the whole sequence", "t",
                     "log10", (Series("||dE_t/dV||_F (autograd)", _k_axis(T), tuple(gnorm)),
                               Series("max |autograd - formula|", _k_axis(T), tuple(math.log10(e + 1e-300) for e in errs), "points")))
    err = max(errs)
    return Finding(_verdict(err < 1e-12, "holds", "refuted"), {"max_abs_error_vs_autograd": err, "T": T}, figure=fig)


def _bptt_sum_004() -> Finding:
    """dE_t/dW = sum_k (prod_{j=k+1}^t dh_j/dh_{j-1}) d+h_k/dW, with the seed's factor W diag(f'(h_{j-1})) and the true diag(f'(a_j)) W."""
    gen = _gen(18)
    S, T = 4, 12
    W, U = 0.9 * torch.randn(S, S, generator=gen, dtype=_DT) / S**0.5, torch.randn(S, 1, generator=gen, dtype=_DT)
    x = torch.randn(T, 1, generator=gen, dtype=_DT)
    h0 = torch.randn(S, generator=gen, dtype=_DT)  # h_0 != 0, so dh_1/dW != 0
    cell = ElmanCell(W, U, torch.zeros(S, dtype=_DT), "tanh")
    tr = unroll(cell, x.unsqueeze(1), h0.unsqueeze(0))
    h, a = tr.states[:, 0], tr.preacts[:, 0]  # (T+1, S), (T, S)
    dphi = get_activation("tanh").dphi

    def h_t(Wf, t):  # h_t as a function of W (autograd reference)
        s = h0
        for i in range(t):
            s = torch.tanh(Wf @ s + U @ x[i])
        return s
    errs = {"seed": [], "corrected": []}
    for t in range(1, T + 1):
        ref = torch.func.jacrev(h_t)(W, t).reshape(S, S * S)  # dh_t/dW (S, S^2)
        for form in ("seed", "corrected"):
            total, P = torch.zeros(S, S * S, dtype=_DT), torch.eye(S, dtype=_DT)
            for k in range(t, 0, -1):  # d+h_k/dW = diag(f'(a_k)) (I (x) h_{k-1}^T)
                immediate = dphi(a[k - 1]).unsqueeze(1) * torch.kron(torch.eye(S, dtype=_DT), h[k - 1].unsqueeze(0))
                total = total + P @ immediate
                J = torch.diag(dphi(a[k - 1])) @ W if form == "corrected" else W @ torch.diag(dphi(h[k - 1]))
                P = P @ J  # append dh_k/dh_{k-1}
            errs[form].append(float((total - ref).norm() / ref.norm()))
    out = {"relative_error_seed": max(errs["seed"]), "relative_error_corrected": max(errs["corrected"]), "T": T}
    fig = FigureSpec("dh_t/dW as the sum over k, against torch.func.jacrev", "t", "log10 relative error",
                     (Series("seed: W f'(h_(j-1))", _k_axis(T), tuple(math.log10(e + 1e-300) for e in errs["seed"])),
                      Series("corrected: diag(f'(a_j)) W", _k_axis(T), tuple(math.log10(e + 1e-300) for e in errs["corrected"]),
                             "dashed")))
    ok = out["relative_error_seed"] > 1e-3 and out["relative_error_corrected"] < 1e-12
    return Finding(_verdict(ok, "holds-with-correction", "holds"), out, figure=fig, correction=(
        "The factor is dh_j/dh_{j-1} = diag(f'(a_j)) W with a_j = W h_{j-1} + U x_j the pre-activation of step j, "
        "not W f'(h_{j-1}) (that is the Jacobian of the other form, h_j = W f(h_{j-1}) + U x_j); the sum runs "
        "over k = 1..t with the immediate partial d+h_k/dW = diag(f'(a_k)) (I (x) h_{k-1}^T)."))


def _relu_vanishing() -> Finding:
    """ReLU Elman RNNs, S = 32, W_hh ~ N(0, g^2/S) with g = 1.2, W_xh ~ N(0, 1), inputs N(0, 1), h_0 = 0, T = 200:
    sigma_max ~ 2.3 > 1 = 1/gamma ('exploding possible'), and yet in most draws about half the units are off
    at each step and the products decay (mean field: (1/2) ln(g^2/2) < 0 per step). Eight draws are measured;
    the first one that vanishes is the example (evidence.example, the keys of a counterexample)."""
    S, T, g, draws = 32, 200, 1.2, 8
    firsts, example = [], None
    for seed in range(draws):
        gen = _gen(100 + seed)
        W = g * torch.randn(S, S, generator=gen, dtype=_DT) / S**0.5
        U, x = torch.randn(S, 1, generator=gen, dtype=_DT), torch.randn(T, 1, generator=gen, dtype=_DT)
        ce = measure("elman", "relu", W, U, torch.zeros(S, dtype=_DT), x, torch.zeros(S, dtype=_DT))
        firsts.append(float(ce.log10_norms[0]))
        if example is None and firsts[-1] < -3:
            example = ce
    ev = {"draws": draws, "vanishing_draws": sum(f < -3 for f in firsts), "log10_norm_first_per_draw": firsts,
          "gain": g, "S": S, "T": T}
    if example is None:
        return Finding("refuted", ev)
    sigma, rho = _sigma_rho(example.W_hh)
    L = example.log10_norms
    ev.update({"sigma_max": sigma, "spectral_radius": rho, "gamma": 1.0, "log10_norm_first": float(L[0]),
               "example": example.to_dict()})
    fig = FigureSpec(f"ReLU RNN, S = {S}: sigma_max = {sigma:.3g} > 1/gamma = 1, and the gradient vanishes", "k",
                     "log10 ||dh_T/dh_k||_2",
                     (Series("measured (the example)", _k_axis(T), tuple(L.tolist())),
                      Series("bound (gamma sigma_max)^(T-k)", _k_axis(T), _bound_line(T, sigma), "dashed")))
    return Finding(_verdict(sigma > 1, "holds", "refuted"), ev, figure=fig)


def _lstm_004() -> Finding:
    """LSTM over the full state (h, c), PyTorch's math: forget-gate bias +3 keeps the cell path open; a tanh
    Elman RNN of the same size and init vanishes. Exploding is not excluded: a large W_hh explodes the LSTM too."""
    T, S, B = 300, 32, 4
    gen = _gen(20)
    x = torch.randn(T, B, 1, generator=gen, dtype=_DT)
    elman = random_cell("elman", "tanh", hidden=S, input_size=1, gain=1.0, seed=20)
    L_e = _log10_products(elman, x).mean(0)
    lstm = random_cell("lstm", hidden=S, input_size=1, gain=1.0, seed=20)
    b = lstm.b_hh.clone()
    b[S:2 * S] += 3.0  # forget gate bias: f ~ sigmoid(3) = 0.95
    lstm_open = LSTMCell(lstm.W_xh, lstm.W_hh, lstm.b_xh, b)
    L_l = _log10_products(lstm_open, x).mean(0)
    big = random_cell("lstm", hidden=S, input_size=1, gain=6.0, seed=21)
    b2 = big.b_hh.clone()
    b2[S:2 * S] += 3.0
    L_big = _log10_products(LSTMCell(big.W_xh, big.W_hh, big.b_xh, b2), x).mean(0)
    fig = FigureSpec(f"LSTM (full state h, c) against a tanh RNN, S = {S}", "k", "log10 ||ds_T/ds_k||_2 (mean of 4)",
                     (Series("Elman tanh, gain 1", _k_axis(T), tuple(L_e.tolist())),
                      Series("LSTM, forget bias +3, gain 1", _k_axis(T), tuple(L_l.tolist())),
                      Series("LSTM, forget bias +3, gain 6", _k_axis(T), tuple(L_big.tolist()), "dashed")))
    ok = float(L_l[0]) > float(L_e[0]) + 10 and float(L_l[0]) > -3 and float(L_big[0]) > 0
    return Finding(_verdict(ok, "holds-with-correction", "refuted"), {
        "elman_log10_norm_first": float(L_e[0]), "lstm_log10_norm_first": float(L_l[0]),
        "lstm_large_weights_log10_norm_first": float(L_big[0]), "T": T, "S": S}, figure=fig, correction=(
        "LSTM addresses vanishing through the additive cell path c_t = f c_{t-1} + ...: with forget gates near 1 the "
        "flow over hundreds of steps survives where a tanh RNN's vanishes. It does not rule out exploding: with "
        "large recurrent weights the LSTM's full-state products can grow, and clipping is still used with LSTMs."))


# ---------------------------------------------------------------------------------------- the registry

def _c(id_: str, seed: str, statement: str, experiment: Callable[[], Finding]) -> Claim:
    return Claim(id_, SEED_FILES[seed], statement, experiment)


CLAIMS: tuple[Claim, ...] = (
    _c("000-backward-step", "000", "The backward step from layer l to l-1 multiplies the loss gradient by a'(l) f'(l), "
       "i.e. dy_l/dy_(l-1) = diag(a'(z_l)) W_l.", _backward_step),
    _c("000-sigmoid-derivative", "000", "For the sigmoid, max_z a'(z) = 0.25.", _sigmoid_derivative),
    _c("000-activation-decides", "000", "If a' < 1 (as for the sigmoid, a' <= 1/4) the backward pass attenuates the "
       "loss gradient, eventually making it go to 0.", _activation_decides),
    _c("000-unrolled-deep", "000", "An RNN unrolled over T steps is a T-layer network whose layers share W_hh, and "
       "dh_t/dW_hh = sum_k dh_t/dh_(t-k) dh_(t-k)/dW_hh.", _unrolled_deep),
    _c("000-identity-power", "000", "With identity activation, dh_t/dh_(t-k) = W_hh^k.", _identity_power),
    _c("000-scalar-power", "000", "For a scalar W_hh, W_hh^k approaches 0 as k increases when W_hh < 1 and "
       "infinity when W_hh > 1.", _scalar_power),
    _c("000-spectral-radius", "000", "For a matrix W_hh the eigenvalues decide whether W_hh^k vanishes or explodes.",
       _spectral_radius),
    _c("000-clipping", "000", "Clipping the gradient controls its explosion, but the vanishing gradient problem "
       "remains.", _clipping),
    _c("001-elman-pal", "001", "With h~_t = s^-1(h_t), the Elman form h_t = s(W_R h_(t-1) + W_I x_t + b_R) becomes "
       "h~_t = W_R s(h~_(t-1)) + W_I x_t + b_R (eq. 1).", _elman_pal),
    _c("001-lemma2", "001", "Lemma 2: dh_t/dW_R = HV(s(h_(t-1))) + W_R s'(h_(t-1)) dh_(t-1)/dW_R, with HV(v) the "
       "n x n^2 matrix whose n x n blocks are all v^T.", _lemma2),
    _c("001-theorem1", "001", "Theorem 1: dh_t/dW_R = sum_(k=1)^(t-1) (prod_(r=k+1)^t W_R diag(s'(h_(r-1)))) "
       "HV(s(h_(k-1))) + HV(s(h_(t-1))).", _theorem1),
    _c("001-theorem2-singular", "001", "Theorem 2, with lambda_1 read as the largest singular value of W_R: if "
       "gamma lambda_1 < 1 then F(k0, t) -> 0 as t -> infinity, at least like (gamma lambda_1)^(t-k0).",
       _theorem2_singular),
    _c("001-theorem2-eigen", "001", "Theorem 2 as written: if the eigenvalue of W_R of largest absolute value "
       "satisfies lambda_1 < 1/gamma, then F(k0, t) -> 0 as t -> infinity.", _theorem2_eigen),
    _c("001-theorem3", "001", "Theorem 3: for a linear RNN, if dE_t/dh_t = sum_i c_i q_i over the eigenvectors q_i of "
       "W_R and j is the first index with c_j != 0 and lambda_j > 1, the gradient grows exponentially along q_j.",
       _theorem3),
    _c("001-lemma3", "001", "Lemma 3: ||AB|| >= lambda*(A) ||B|| for square A, B, with lambda*(A) the smallest "
       "absolute value of an eigenvalue of A.", _lemma3),
    _c("001-theorem4", "001", "Theorem 4: if ||W_R|| >= (1 + eps)/lambda*(diag(s')) for some eps > 0, then "
       "||dE_t/dW_R|| -> infinity as t -> infinity.", _theorem4),
    _c("002-jacobian", "002", "dh_i/dh_(i-1) = W_hh^T diag(s'(W_hh h_(i-1) + W_hx x_i + b_h)), and the gradient's "
       "factor is the product of these over t >= i > k.", _jacobian_002),
    _c("002-eigenvalue-vanishing", "002", "With the sigmoid, vanishing gradients arise for long-term components if the "
       "largest eigenvalue of W_hh is lower than 4.", _eigen_vanishing_002),
    _c("002-singular-vanishing", "002", "Read with singular values: if the largest singular value of W_hh is lower "
       "than 4 (sigmoid), every ||dh_t/dh_k|| <= (sigma_max/4)^(t-k) vanishes.", _singular_vanishing_002),
    _c("002-exploding-necessary", "002", "Exploding gradients need the largest eigenvalue of W_hh to be larger than 4 "
       "(sigmoid): the condition is necessary.", _exploding_necessary_002),
    _c("002-exploding-not-sufficient", "002", "The condition for exploding (largest eigenvalue > 4) is not sufficient: "
       "gradients can vanish although every eigenvalue exceeds 4.", _exploding_not_sufficient_002),
    _c("003-derivative-bounds", "003", "The sigmoid's derivative is at most 1/4 (where its value is 1/2, at "
       "pre-activation 0) and tanh's at most 1 (at 0).", _derivative_bounds),
    _c("003-jacobian", "003", "ds_j/da_j = diag(s'(a_j)) and ds_j/ds_(j-1) = diag(s'(a_j)) W.", _jacobian_003),
    _c("003-bound-singular", "003", "||ds_t/ds_k|| <= (gamma lambda)^(t-k) with gamma = sup |s'| and lambda = ||W||_2.",
       _bound_singular_003),
    _c("003-bound-eigen", "003", "||ds_t/ds_k|| <= (gamma lambda)^(t-k) with lambda read as the spectral radius of W.",
       _bound_eigen_003),
    _c("004-output-gradient", "004", "dE_t/dV needs only the current hidden state h_t.", _output_gradient),
    _c("004-bptt-sum", "004", "dE_t/dW = dE_t/do_t do_t/dh_t sum_k (prod_(j=k+1)^t W f(h_(j-1))) dh_k/dW, with f "
       "the derivative of the nonlinearity upon the hidden state.", _bptt_sum_004),
    _c("004-relu-vanishing", "004", "Vanishing gradients also happen with ReLU.", _relu_vanishing),
    _c("004-clipping", "004", "Clipping fixes exploding gradients; the vanishing gradient remains.", _clipping),
    _c("004-lstm", "004", "LSTM addresses both the exploding and the vanishing gradient problems.", _lstm_004),
)


def claim_ids() -> list[str]:
    return [c.id for c in CLAIMS]


def run_claims(only: Sequence[str] | None = None, progress: Callable[[Claim], None] | None = None) -> list[ClaimResult]:
    """Run the claims (all, or those whose ids are in only) and return their results, in registry order.

    progress(claim), if given, is called before each claim runs.
    """
    known = claim_ids()
    if only is not None:
        unknown = [i for i in only if i not in known]
        if unknown:
            raise InputError(f"claim id: expected one of {', '.join(known)}, got {unknown[0]!r}")
    results = []
    for claim in CLAIMS:
        if only is not None and claim.id not in only:
            continue
        if progress is not None:
            progress(claim)
        start = time.perf_counter()
        f = claim.experiment()
        if f.verdict not in VERDICTS:  # pragma: no cover - an experiment's bug
            raise RuntimeError(f"claim {claim.id}: verdict {f.verdict!r} is not one of {VERDICTS}")
        results.append(ClaimResult(claim.id, claim.seed, claim.statement, f.verdict, f.correction, f.evidence,
                                   time.perf_counter() - start, f.figure))
    return results
