"""Seed 003_442f2c9f526e9ba0.txt (course article "Vanishing and Exploding Gradients"), as experiments.

The article bounds each backward factor of s_j = sigma(a_j), a_j = W s_(j-1) + U x_j + b:

    ds_j/da_j = diag(sigma'(a_j)),   ds_j/ds_(j-1) = diag(sigma'(a_j)) W,   ||ds_t/ds_k|| <= (gamma lambda)^(t-k)

with gamma = sup |sigma'| (1/4 for the sigmoid, 1 for tanh) and lambda "some limit" on W. The experiments:
the derivative bounds by autograd, the Jacobian against jacrev, the bound with lambda = ||W||_2 (random
search: never exceeded) and with lambda the spectral radius (refuted by the saddle counterexample).

Example:
    >>> [c.id for c in CLAIMS]
    ['003-derivative-bounds', '003-jacobian', '003-bound-singular', '003-bound-eigen']
    >>> _bound_eigen_003().verdict
    'refuted'
"""

from __future__ import annotations

import torch

from ..core.cells import ElmanCell
from .claim_types import Claim, Finding, claim
from .counterexamples import saddle
from .measurements import (DT, bound_search, counterexample_evidence, counterexample_figure, derivative_facts,
                           derivative_figure, grows_below_eigen_bound, rng, verdict)

__all__ = ["CLAIMS"]


# ---------------------------------------------------------------------------------------- the experiments

def _derivative_bounds() -> Finding:
    ev = {"sigmoid": derivative_facts("sigmoid"), "tanh": derivative_facts("tanh")}
    s, t = ev["sigmoid"], ev["tanh"]
    ok = (abs(s["sup_derivative"] - 0.25) < 1e-12 and abs(s["argmax_preactivation"]) < 1e-9 and abs(s["value_at_argmax"] - 0.5) < 1e-12
          and abs(t["sup_derivative"] - 1) < 1e-12 and abs(t["argmax_preactivation"]) < 1e-9)
    return Finding("holds" if ok else "refuted", ev, figure=derivative_figure(["sigmoid", "tanh"]))


def _jacobian_003() -> Finding:
    gen = rng(14)
    errs = {}
    for act in ("sigmoid", "tanh"):
        S = 7
        cell = ElmanCell(torch.randn(S, S, generator=gen, dtype=DT), torch.randn(S, 2, generator=gen, dtype=DT),
                         torch.randn(S, generator=gen, dtype=DT), act)
        s_prev, x = torch.randn(S, generator=gen, dtype=DT), torch.randn(2, generator=gen, dtype=DT)
        ref = torch.func.jacrev(lambda s: cell.activation.phi(cell.W_hh @ s + cell.W_xh @ x + cell.b_h))(s_prev)
        a = cell.W_hh @ s_prev + cell.W_xh @ x + cell.b_h
        formula = torch.diag(cell.activation.dphi(a)) @ cell.W_hh  # diag(s'(a_j)) W
        errs[act] = float((ref - formula).abs().max())
    return Finding(verdict(max(errs.values()) < 1e-12, "holds", "refuted"), {"max_abs_error_vs_jacrev": errs},
                   figure=derivative_figure(["sigmoid", "tanh"]))


def _bound_singular_003() -> Finding:
    ev_t, fig = bound_search("elman", "tanh", seed=15)
    ev_s, _ = bound_search("elman", "sigmoid", seed=16)
    ok = ev_t["max_excess_decades"] <= 1e-9 and ev_s["max_excess_decades"] <= 1e-9
    return Finding("holds" if ok else "refuted", {"tanh": ev_t, "sigmoid": ev_s}, figure=fig)


def _bound_eigen_003() -> Finding:
    ce = saddle("tanh", "elman")
    return Finding(verdict(grows_below_eigen_bound(ce), "refuted", "holds"), counterexample_evidence(ce),
                   figure=counterexample_figure(ce, "||ds_t/ds_k|| against (gamma rho)^(t-k): tanh, rho = 0.5"),
                   correction="The bound holds with lambda = ||W||_2 = sigma_max(W), not with the spectral radius rho(W).")


# ---------------------------------------------------------------------------------------- the claims, in order

CLAIMS: tuple[Claim, ...] = (
    claim("003-derivative-bounds", "003", "The sigmoid's derivative is at most 1/4 (where its value is 1/2, at "
          "pre-activation 0) and tanh's at most 1 (at 0).", _derivative_bounds),
    claim("003-jacobian", "003", "ds_j/da_j = diag(s'(a_j)) and ds_j/ds_(j-1) = diag(s'(a_j)) W.", _jacobian_003),
    claim("003-bound-singular", "003", "||ds_t/ds_k|| <= (gamma lambda)^(t-k) with gamma = sup |s'| and lambda = ||W||_2.",
          _bound_singular_003),
    claim("003-bound-eigen", "003", "||ds_t/ds_k|| <= (gamma lambda)^(t-k) with lambda read as the spectral radius of W.",
          _bound_eigen_003),
)
