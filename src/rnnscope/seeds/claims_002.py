"""Seed 002_87b582d44353f60f.txt (a NumPy notebook on vanishing and exploding gradients), as experiments.

The notebook writes the Jacobian of the sigmoid RNN h_i = sigma(W_hh h_(i-1) + W_hx x_i + b_h) as
W_hh^T diag(sigma'(a_i)), multiplies these over t >= i > k, and states that the gradient vanishes when the
largest eigenvalue of W_hh is below 4 = 1/gamma and explodes only above it. The experiments: the Jacobian
against jacrev (the notebook's factor is its transpose), the eigenvalue condition refuted by the saddle
counterexample and by the notebook's own first example (rho < 4 < sigma_max), the singular-value reading
||dh_t/dh_k|| <= (sigma_max/4)^(t-k) confirmed by random search, exploding with every |eigenvalue| < 4, and
the notebook's "exploding" W_hh vanishing on the true states of the recurrence.

The notebook's random draws come from seeds.reproduce_002.notebook_002 (RandomState(12345), its order).

Example:
    >>> [c.id for c in CLAIMS][:2]
    ['002-jacobian', '002-eigenvalue-vanishing']
    >>> _exploding_not_sufficient_002().verdict
    'holds'
"""

from __future__ import annotations

import math

import torch

from ..core.activations import get_activation
from ..core.cells import ElmanCell
from ..core.results import FigureSpec, Series
from ..core.unroll import unroll
from ..gradients.flow import jacobian_profile
from .claim_types import Claim, Finding, claim
from .counterexamples import saddle
from .measurements import (DT, bound_line, bound_search, counterexample_evidence, counterexample_figure,
                           grows_below_eigen_bound, k_axis, rng, sigma_rho, verdict)
from .reproduce_002 import notebook_002

__all__ = ["CLAIMS"]


# ---------------------------------------------------------------------------------------- the experiments

def _notebook_002(example: int):
    """Seed 002's random draws (reproduce_002.notebook_002) as float64 tensors: W_hh, W_hx (5, 5), b_h (5,), x (5, t)."""
    d = notebook_002(example)
    return tuple(torch.as_tensor(v, dtype=DT) for v in (d["W_hh"], d["W_hx"], d["b_h"][:, 0], d["x"]))


def _jacobian_002() -> Finding:
    gen = rng(12)
    S, T = 5, 20
    cell = ElmanCell(torch.randn(S, S, generator=gen, dtype=DT), torch.randn(S, S, generator=gen, dtype=DT),
                     torch.randn(S, generator=gen, dtype=DT), "sigmoid")
    x = torch.randn(T, 1, S, generator=gen, dtype=DT)
    tr = unroll(cell, x)
    err_literal, err_transpose = 0.0, 0.0
    correct, notebook_order = torch.eye(S, dtype=DT), torch.eye(S, dtype=DT)
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
                     (Series("true dh_T/dh_(k-1) = J_T ... J_k", k_axis(T), tuple(log_c)),
                      Series("W^T D_T W^T D_(T-1) ... (notebook order)", k_axis(T), tuple(log_n), "dashed")))
    return Finding(verdict(err_literal > 1e-3 and err_transpose < 1e-12, "holds-with-correction", "holds"), {
        "relative_error_W_T_diag_as_jacobian": err_literal, "relative_error_as_transpose": err_transpose,
        "max_abs_log10_difference_of_products": max(abs(a - b) for a, b in zip(log_c, log_n))}, figure=fig,
        correction=("dh_i/dh_{i-1} = diag(sigma'(a_i)) W_hh (rows: outputs); W_hh^T diag(sigma'(a_i)) is its transpose "
                    "(the row-vector layout), so the product must run the other way: (dh_t/dh_k)^T = "
                    "W^T D_{k+1} W^T D_{k+2} ... W^T D_t. In the order t >= i > k as written, the product's norm is "
                    "not that of the Jacobian product."))


def _eigen_vanishing_002() -> Finding:
    ce = saddle("sigmoid", "elman")
    ev = counterexample_evidence(ce)
    W1 = _notebook_002(1)[0]
    s1, r1 = sigma_rho(W1)
    ev["notebook_vanishing_example"] = {"spectral_radius": r1, "sigma_max": s1}
    return Finding(verdict(grows_below_eigen_bound(ce), "refuted", "holds"), ev, figure=counterexample_figure(ce, "sigmoid RNN with largest |eigenvalue| 2 < 4: products grow"),
                   correction=("Vanishing is guaranteed when the largest SINGULAR value of W_hh is < 4 (= 1/gamma for the "
                               "sigmoid): ||dh_t/dh_k|| <= (sigma_max/4)^(t-k). The largest |eigenvalue| < 4 guarantees "
                               "nothing for a non-normal W_hh (the notebook's own example has rho < 4 < sigma_max)."))


def _singular_vanishing_002() -> Finding:
    ev, fig = bound_search("elman", "sigmoid", seed=13)
    return Finding("holds" if ev["max_excess_decades"] <= 1e-9 else "refuted", ev, figure=fig)


def _exploding_necessary_002() -> Finding:
    ce = saddle("sigmoid", "elman", g=1.5, r=0.9)
    ev = counterexample_evidence(ce)
    return Finding(verdict(grows_below_eigen_bound(ce), "refuted", "holds"), ev,
                   figure=counterexample_figure(ce, "Exploding with every |eigenvalue| < 4 (sigmoid)"),
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
    sigma, rho = sigma_rho(W)
    fig = FigureSpec("Seed 002's 'exploding' W_hh on the true states of the recurrence", "k", "log10 ||dh_T/dh_k||_2",
                     (Series("measured", k_axis(T), tuple(L.tolist())),
                      Series(f"bound (sigma_max/4)^(T-k), sigma_max/4 = {sigma / 4:.3g}", k_axis(T), bound_line(T, sigma / 4), "dashed")))
    ok = float(eig.abs().min()) > 4 and float(L[0]) < -3  # every |eigenvalue| > 4, and the gradient vanishes
    return Finding(verdict(ok, "holds", "refuted"), {"min_abs_eigenvalue": float(eig.abs().min()), "spectral_radius": rho, "sigma_max": sigma,
                             "log10_norm_first": float(L[0]), "max_sigmoid_derivative_after_step_1": float(dphi[1:].max()),
                             "T": T}, figure=fig)


# ---------------------------------------------------------------------------------------- the claims, in order

CLAIMS: tuple[Claim, ...] = (
    claim("002-jacobian", "002", "dh_i/dh_(i-1) = W_hh^T diag(s'(W_hh h_(i-1) + W_hx x_i + b_h)), and the gradient's "
          "factor is the product of these over t >= i > k.", _jacobian_002),
    claim("002-eigenvalue-vanishing", "002", "With the sigmoid, vanishing gradients arise for long-term components if the "
          "largest eigenvalue of W_hh is lower than 4.", _eigen_vanishing_002),
    claim("002-singular-vanishing", "002", "Read with singular values: if the largest singular value of W_hh is lower "
          "than 4 (sigmoid), every ||dh_t/dh_k|| <= (sigma_max/4)^(t-k) vanishes.", _singular_vanishing_002),
    claim("002-exploding-necessary", "002", "Exploding gradients need the largest eigenvalue of W_hh to be larger than 4 "
          "(sigmoid): the condition is necessary.", _exploding_necessary_002),
    claim("002-exploding-not-sufficient", "002", "The condition for exploding (largest eigenvalue > 4) is not sufficient: "
          "gradients can vanish although every eigenvalue exceeds 4.", _exploding_not_sufficient_002),
)
