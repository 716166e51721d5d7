"""Seed 000_0183f85bd5403c3d.txt (lecture notes "RNN vanishing/exploding gradient problem"), as experiments.

The notes review backpropagation through a deep net, y_l = a(W_l y_{l-1} + b_l), whose loss gradient
flows back as L'_(l-1) = L'_(l) diag(a'(z_l)) W_l, then unroll an RNN into a T-layer net with tied
weights and read the gradient's fate off W_hh^k. The experiments: the backward step against jacrev and
autograd, sup sigmoid' = 1/4, the untied copies of W_hh summing to BPTT's gradient, dh_t/dh_(t-k) = W_hh^k
for the identity activation, the scalar powers (the condition is |W| < 1), a non-normal W with rho < 1 whose
powers first grow, one sigmoid unit (a' = 1/4) whose gradient doubles every step, and norm clipping
(shared with seed 004, in seeds.measurements).

Example:
    >>> [c.id for c in CLAIMS][:2]
    ['000-backward-step', '000-sigmoid-derivative']
    >>> _identity_power().verdict
    'holds'
"""

from __future__ import annotations

import math

import torch

from ..core.activations import get_activation
from ..core.cells import ElmanCell
from ..core.heads import Head
from ..core.results import FigureSpec, Series
from ..core.unroll import unroll
from ..gradients.bptt import bptt
from .claim_types import Claim, Finding, claim
from .counterexamples import measure
from .measurements import (DT, clipping, counterexample_evidence, counterexample_figure, derivative_facts, derivative_figure,
                           k_axis, log10_products, rng, sigma_rho, verdict)

__all__ = ["CLAIMS"]


# ---------------------------------------------------------------------------------------- the experiments

def _backward_step() -> Finding:
    """y_l = a(W_l y_{l-1} + b_l): dy_l/dy_{l-1} = diag(a'(z_l)) W_l (jacrev), and the loss gradient recursion."""
    gen = rng(1)
    L, n = 6, 12
    Ws = [torch.randn(n, n, generator=gen, dtype=DT) for _ in range(L)]
    bs = [torch.randn(n, generator=gen, dtype=DT) for _ in range(L)]
    y0 = torch.randn(n, generator=gen, dtype=DT)
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
    grad = torch.ones(n, dtype=DT)
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
    return Finding(verdict(err_step < 1e-12 and err_grad < 1e-12, "holds", "refuted"),
                   {"layers": L, "width": n, "max_abs_error_one_step_jacobian": err_step,
                             "relative_error_input_gradient_vs_autograd": err_grad}, figure=fig)


def _sigmoid_derivative() -> Finding:
    ev = derivative_facts("sigmoid")
    ok = abs(ev["sup_derivative"] - 0.25) < 1e-12 and abs(ev["argmax_preactivation"]) < 1e-9
    return Finding("holds" if ok else "refuted", ev, figure=derivative_figure(["sigmoid"]))


def _unrolled_deep() -> Finding:
    """Untie W_hh into T copies W^(1..T) (one per layer of the unrolled net): dE/dW_hh = sum_k dE/dW^(k)."""
    gen = rng(2)
    S, D, T = 5, 3, 12
    cell = ElmanCell(0.8 * torch.randn(S, S, generator=gen, dtype=DT) / S**0.5, torch.randn(S, D, generator=gen, dtype=DT),
                     torch.randn(S, generator=gen, dtype=DT), "tanh")
    head = Head(torch.randn(2, S, generator=gen, dtype=DT), torch.zeros(2, dtype=DT), "mse")
    x, y = torch.randn(T, D, generator=gen, dtype=DT), torch.randn(T, 2, generator=gen, dtype=DT)
    h0 = torch.randn(S, generator=gen, dtype=DT)
    r = bptt(cell, head, x, y, h0.unsqueeze(0))  # hand-derived, tied weights
    copies = [cell.W_hh.clone().requires_grad_(True) for _ in range(T)]
    h, E = h0, torch.zeros((), dtype=DT)
    for t in range(T):  # layer t of the unrolled net has its own copy of W_hh
        h = torch.tanh(copies[t] @ h + cell.W_xh @ x[t] + cell.b_h)
        E = E + 0.5 * ((head.W_hy @ h + head.b_y - y[t]) ** 2).sum()
    grads = torch.autograd.grad(E, copies)
    total = torch.stack(grads).sum(0)
    err = float((total - r.grads["W_hh"]).abs().max() / r.grads["W_hh"].abs().max())
    fig = FigureSpec("An unrolled RNN is a T-layer net with tied weights: the gradient of each layer's copy",
                     "layer k (time step)", "log10 ||dE/dW^(k)||_F",
                     (Series("untied copy k (autograd)", k_axis(T), tuple(math.log10(float(g.norm())) for g in grads), "points"),))
    return Finding(verdict(err < 1e-12, "holds", "refuted"), {"T": T, "S": S, "relative_error_sum_of_copies_vs_bptt": err,
                             "loss_bptt": float(r.loss), "loss_unrolled": float(E.detach())}, figure=fig)


def _identity_power() -> Finding:
    gen = rng(3)
    S, T = 6, 30
    W = 1.05 * torch.randn(S, S, generator=gen, dtype=DT) / S**0.5
    cell = ElmanCell(W, torch.randn(S, 1, generator=gen, dtype=DT), torch.zeros(S, dtype=DT), "identity")
    L = log10_products(cell, torch.randn(T, 1, 1, generator=gen, dtype=DT))[0]  # (T,)
    powers = [math.log10(float(torch.linalg.matrix_norm(torch.linalg.matrix_power(W, T - k), 2))) for k in range(1, T + 1)]
    err = max(abs(float(a) - b) for a, b in zip(L, powers))
    fig = FigureSpec("Identity activation: dh_T/dh_k = W_hh^(T-k)", "k", "log10 ||.||_2",
                     (Series("engine: product of Jacobians", k_axis(T), tuple(L.tolist())),
                      Series("||W_hh^(T-k)||_2 (matrix power)", k_axis(T), tuple(powers), "dashed")))
    return Finding(verdict(err < 1e-10, "holds", "refuted"), {"T": T, "S": S, "max_abs_log10_difference": err}, figure=fig)


def _scalar_power() -> Finding:
    T = 101
    ws = (-1.5, -0.9, 0.5, 0.9, 1.0, 1.1, 1.5)
    series, at100 = [], {}
    for w in ws:  # a 1-unit linear RNN: dh_T/dh_k = w^(T-k), measured by the engine
        cell = ElmanCell(torch.tensor([[w]], dtype=DT), torch.ones(1, 1, dtype=DT), torch.zeros(1, dtype=DT), "identity")
        L = log10_products(cell, torch.zeros(T, 1, 1, dtype=DT))[0].flip(0)  # element d is distance d = T - k
        at100[str(w)] = float(L[100])
        series.append(Series(f"W = {w}", tuple(float(d) for d in range(T)), tuple(L.tolist()),
                             "dashed" if w < 0 else "solid"))
    fig = FigureSpec("Scalar W: log10 |W^d| against the distance d", "d", "log10 |W^d|", tuple(series))
    ok = at100["-1.5"] > 0 and at100["1.5"] > 0 and at100["0.5"] < 0 and at100["0.9"] < 0  # -1.5 < 1 grows
    return Finding(verdict(ok, "holds-with-correction", "holds"), {"log10_abs_W_power_100": at100, "W_values": list(ws)},
                   correction=("|W|^k -> 0 when |W| < 1 and -> infinity when |W| > 1: the condition is on |W| "
                               "(W = -1.5 < 1 grows in magnitude; W = -0.9 oscillates while it decays; W = 1 stays)."),
                   figure=fig)


def _spectral_radius() -> Finding:
    """W = Q [[0.9, c], [0, 0.8]] Q^T (c = 5): rho = 0.9 < 1, but ||W^k|| rises far above 1 before it decays."""
    gen = rng(4)
    Q, _ = torch.linalg.qr(torch.randn(2, 2, generator=gen, dtype=DT))
    W = Q @ torch.tensor([[0.9, 5.0], [0.0, 0.8]], dtype=DT) @ Q.T
    T = 121
    cell = ElmanCell(W, torch.zeros(2, 1, dtype=DT), torch.zeros(2, dtype=DT), "identity")
    L = log10_products(cell, torch.zeros(T, 1, 1, dtype=DT))[0].flip(0)  # element d: log10 ||W^d||_2
    d_peak = int(L.argmax())
    above = [d for d in range(T) if L[d] > 0]
    sigma, rho = sigma_rho(W)
    fig = FigureSpec("A non-normal W with rho = 0.9 < 1: transient growth of ||W^d||", "d", "log10 ||W^d||_2",
                     (Series("||W^d||_2 (engine)", tuple(float(d) for d in range(T)), tuple(L.tolist())),
                      Series("rho^d", tuple(float(d) for d in range(T)), tuple(d * math.log10(rho) for d in range(T)), "dotted")))
    ok = rho < 1 and float(L[d_peak]) > 0 and float(L[-1]) < 0  # grows first, vanishes in the end
    return Finding(verdict(ok, "holds-with-correction", "holds"), {
        "W_hh": W.tolist(), "spectral_radius": rho, "sigma_max": sigma, "peak_log10_norm": float(L[d_peak]), "peak_at_power": d_peak,
        "last_power_with_norm_above_1": max(above) if above else 0, "log10_norm_at_power_120": float(L[120])},
        correction=("rho(W) < 1 makes ||W^k|| -> 0 only asymptotically: a non-normal W with rho < 1 can grow for "
                    "many steps first (here by the peak factor shown), so eigenvalues say nothing about the first "
                    "tens of steps; the largest singular value bounds every step."), figure=fig)


def _activation_decides() -> Finding:
    """One sigmoid unit, W = 8, b = -4, h_0 = 1/2: a = 0 on every step, a' = 1/4, and dh_T/dh_k = 2^(T-k)."""
    ce = measure("elman", "sigmoid", [[8.0]], [[1.0]], [-4.0], torch.zeros(40, 1, dtype=DT), [0.5])
    ev = counterexample_evidence(ce)
    tr = unroll(ce.make_cell(), ce.inputs.unsqueeze(1), ce.h0.unsqueeze(0))
    ev["max_activation_derivative_on_trajectory"] = float(get_activation("sigmoid").dphi(tr.preacts).max())
    ok = ev["max_activation_derivative_on_trajectory"] < 1 and float(ce.log10_norms[0]) > 0
    return Finding(verdict(ok, "refuted", "holds"), ev, figure=counterexample_figure(ce, "sigmoid (a' <= 1/4 < 1) and yet the gradient doubles every step"),
                   correction=("A backward step multiplies by diag(a') W, not by a' alone: it attenuates when "
                               "||diag(a') W|| < 1, guaranteed when gamma sigma_max(W) < 1; a' < 1 with a large W "
                               "(here one sigmoid unit, W = 8, a' = 1/4: a factor 2 per step) explodes."))


# ---------------------------------------------------------------------------------------- the claims, in order

CLAIMS: tuple[Claim, ...] = (
    claim("000-backward-step", "000", "The backward step from layer l to l-1 multiplies the loss gradient by a'(l) f'(l), "
          "i.e. dy_l/dy_(l-1) = diag(a'(z_l)) W_l.", _backward_step),
    claim("000-sigmoid-derivative", "000", "For the sigmoid, max_z a'(z) = 0.25.", _sigmoid_derivative),
    claim("000-activation-decides", "000", "If a' < 1 (as for the sigmoid, a' <= 1/4) the backward pass attenuates the "
          "loss gradient, eventually making it go to 0.", _activation_decides),
    claim("000-unrolled-deep", "000", "An RNN unrolled over T steps is a T-layer network whose layers share W_hh, and "
          "dh_t/dW_hh = sum_k dh_t/dh_(t-k) dh_(t-k)/dW_hh.", _unrolled_deep),
    claim("000-identity-power", "000", "With identity activation, dh_t/dh_(t-k) = W_hh^k.", _identity_power),
    claim("000-scalar-power", "000", "For a scalar W_hh, W_hh^k approaches 0 as k increases when W_hh < 1 and "
          "infinity when W_hh > 1.", _scalar_power),
    claim("000-spectral-radius", "000", "For a matrix W_hh the eigenvalues decide whether W_hh^k vanishes or explodes.",
          _spectral_radius),
    claim("000-clipping", "000", "Clipping the gradient controls its explosion, but the vanishing gradient problem "
          "remains.", clipping),
)
