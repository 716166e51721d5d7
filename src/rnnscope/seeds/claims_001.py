"""Seed 001_28bb9cc7f1f7e16d.txt (S. Pal, 2019, "Mathematical derivation of BPTT for RNN, and gradient
vanishing and exploding problems"), as experiments.

The paper writes the RNN in the Pal form h~_t = W_R s(h~_(t-1)) + W_I x_t + b_R (eq. 1) and derives

    Lemma 2     dh_t/dW_R = HV(s(h_(t-1))) + W_R diag(s'(h_(t-1))) dh_(t-1)/dW_R
    Theorem 1   dh_t/dW_R = sum_(k=1)^(t-1) (prod_(r=k+1)^t W_R diag(s'(h_(r-1)))) HV(s(h_(k-1))) + HV(s(h_(t-1)))
    Theorem 2   gamma lambda_1 < 1  =>  F(k0, t) -> 0 like (gamma lambda_1)^(t-k0)
    Theorem 3   a linear RNN's gradient grows along the first eigenvector with lambda_j > 1
    Lemma 3     ||AB|| >= lambda*(A) ||B||;   Theorem 4: ||W_R|| >= (1 + eps)/lambda*  =>  explosion

The experiments: the Elman/Pal equivalence, Lemma 2 and Theorem 1 against jacrev (HV(v) must be
I_n (x) v^T, gradients.rtrl), Theorem 2 with singular values (random search) and with eigenvalues (the
saddle counterexample), Theorem 3 with right and left eigenvectors, Lemma 3 for a Jordan block, and
Theorem 4's hypothesis met by a nilpotent-dominated W whose gradient stays bounded.

Example:
    >>> [c.id for c in CLAIMS][:3]
    ['001-elman-pal', '001-lemma2', '001-theorem1']
    >>> _theorem2_eigen().verdict
    'refuted'
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..core.activations import get_activation
from ..core.cells import ElmanCell, PalCell
from ..core.results import FigureSpec, Series
from ..core.unroll import unroll
from ..gradients.rtrl import lemma2, theorem1
from .claim_types import Claim, Finding, claim
from .counterexamples import measure, saddle
from .measurements import (DT, bound_search, counterexample_evidence, counterexample_figure, grows_below_eigen_bound,
                           k_axis, rng, verdict)

__all__ = ["CLAIMS"]


# ---------------------------------------------------------------------------------------- the experiments

def _elman_pal() -> Finding:
    """(G1) h_t = s(W h_{t-1} + U x_t + b)  <=>  (R1) h~_t = W s(h~_{t-1}) + U x_t + b with h~ = s^-1(h)."""
    gen = rng(6)
    S, D, T = 6, 2, 25
    W, U, b = torch.randn(S, S, generator=gen, dtype=DT), torch.randn(S, D, generator=gen, dtype=DT), torch.randn(S, generator=gen, dtype=DT)
    x = torch.randn(T, 1, D, generator=gen, dtype=DT)
    errs, series = {}, []
    for act in ("sigmoid", "tanh"):
        h0 = 0.4 * torch.rand(1, S, generator=gen, dtype=DT) + 0.1  # inside the range of both
        elman = unroll(ElmanCell(W, U, b, act), x, h0)
        a0 = torch.logit(h0) if act == "sigmoid" else torch.atanh(h0)  # h~_0 = s^-1(h_0)
        pal = unroll(PalCell(W, U, b, act), x, a0)
        diff = (pal.states[1:] - elman.preacts).abs().amax(dim=(1, 2))  # h~_t against a_t = s^-1(h_t)
        errs[act] = float(diff.max())
        series.append(Series(act, k_axis(T), tuple(torch.log10(diff + 1e-300).tolist()), "points"))
    fig = FigureSpec("Elman (G1) and Pal (R1) forms: |h~_t - s^-1(h_t)| per step", "t", "log10 max |difference|", tuple(series))
    return Finding(verdict(max(errs.values()) < 1e-12, "holds", "refuted"), {"max_abs_difference": errs, "T": T, "S": S},
                   figure=fig)


def _rtrl_errors(fn) -> tuple[dict, FigureSpec]:
    """Relative error of fn(cell, x, h0, hv_form) -> dh_t/dW (n, n^2) against torch.func.jacrev, n = 1 and 3."""
    ev, series = {}, []
    for n in (1, 3):
        gen = rng(7 + n)
        W = 0.9 * torch.randn(n, n, generator=gen, dtype=DT) / n**0.5
        U, b = torch.randn(n, 2, generator=gen, dtype=DT), torch.randn(n, generator=gen, dtype=DT)
        x, h0 = torch.randn(8, 2, dtype=DT, generator=gen), 0.5 * torch.randn(1, n, dtype=DT, generator=gen)
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
            series.append(Series(f"n = {n}, HV {form}", k_axis(8), tuple(math.log10(e + 1e-300) for e in errs),
                                 "solid" if form == "literal" else "dashed"))
    fig = FigureSpec("dh_t/dW_R against torch.func.jacrev (relative error)", "t", "log10 relative error", tuple(series))
    return ev, fig


def _hv_verdict(ev: dict) -> str:
    """The literal HV is exact for n = 1 and wrong for n = 3, the corrected one exact for both."""
    corrected = max(ev["n1_corrected_max_relative_error"], ev["n3_corrected_max_relative_error"]) < 1e-12
    if not corrected:
        return "refuted"
    return verdict(ev["n3_literal_max_relative_error"] > 1e-3, "holds-with-correction", "holds")


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
    ev_t, fig = bound_search("pal", "tanh", seed=8)
    ev_s, _ = bound_search("pal", "sigmoid", seed=9)
    ev = {"tanh": ev_t, "sigmoid": ev_s,
          "note": "||F(k0,t)||_2 = ||dh_t/dh_k0||_2 ||s(h_{k0-1})||_2 (||HV(v)||_2 = ||v||_2 for the corrected HV)"}
    ok = ev_t["max_excess_decades"] <= 1e-9 and ev_s["max_excess_decades"] <= 1e-9
    return Finding("holds" if ok else "refuted", ev, figure=fig)


def _theorem2_eigen() -> Finding:
    ce = saddle("tanh", "pal")
    return Finding(verdict(grows_below_eigen_bound(ce), "refuted", "holds"), counterexample_evidence(ce),
                   figure=counterexample_figure(ce, "Theorem 2 with lambda_1 an eigenvalue: rho(W_R) = 0.5 < 1/gamma, products grow"),
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
    V = torch.tensor([[1.0, 0.8, 0.3], [0.0, 0.6, 0.9], [0.2, 0.0, 0.5]], dtype=DT)
    lam = torch.tensor([1.5, 1.2, 0.5], dtype=DT)
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
    return Finding(verdict(ok, "holds-with-correction", "refuted"), ev, figure=fig, correction=(
        "The expansion dE_t/dh_t = sum_i c_i q_i must use the eigenvectors of W_R^T (left eigenvectors of W_R): "
        "then the gradient grows like lambda_j^l along q_j. With the eigenvectors of W_R itself, as written, this "
        "holds only for normal W_R: for a non-normal W_R, c_1 = 0 in that basis still leaves a component on the "
        "fastest left eigenvector, and the gradient grows like lambda_1^l."))


def _lemma3() -> Finding:
    """A = [[1, 100], [0, 1]]: every |eigenvalue| is 1, sigma_min(A) ~ 1e-4; B = v v^T with v its right singular vector."""
    A = torch.tensor([[1.0, 100.0], [0.0, 1.0]], dtype=DT)
    _, s, Vh = torch.linalg.svd(A)
    v = Vh[-1]
    B = torch.outer(v, v)
    ratio = float(torch.linalg.matrix_norm(A @ B, 2) / torch.linalg.matrix_norm(B, 2))
    lam_star = float(torch.linalg.eigvals(A).abs().min())
    gen = rng(10)
    worst_diag = math.inf
    for _ in range(200):  # diagonal A (the proof's case): ||AB|| >= min|a_ii| ||B|| always
        d = torch.randn(4, generator=gen, dtype=DT)
        Bm = torch.randn(4, 4, generator=gen, dtype=DT)
        worst_diag = min(worst_diag, float(torch.linalg.matrix_norm(torch.diag(d) @ Bm, 2)
                                           / (d.abs().min() * torch.linalg.matrix_norm(Bm, 2))))
    ds = np.linspace(0, 200, 81)
    ratios = []
    for c in ds:  # A_c = [[1, c], [0, 1]]: min ||A B|| / ||B|| = sigma_min(A_c), eigenvalues stay 1
        ratios.append(math.log10(float(torch.linalg.svdvals(torch.tensor([[1.0, c], [0.0, 1.0]], dtype=DT))[-1])))
    fig = FigureSpec("Lemma 3 for A = [[1, c], [0, 1]]: min ||AB||/||B|| = sigma_min(A), while lambda*(A) = 1",
                     "c", "log10", (Series("sigma_min(A) = min ||AB||/||B||", tuple(ds.tolist()), tuple(ratios)),
                                    Series("lambda*(A) (the lemma's bound)", (0.0, 200.0), (0.0, 0.0), "dashed")))
    ok = ratio < lam_star and worst_diag >= 1 - 1e-12
    return Finding(verdict(ok, "holds-with-correction", "holds"), {
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
    W = 0.5 * torch.eye(n, dtype=DT) + 3.0 * torch.diag(torch.ones(n - 1, dtype=DT), 1)
    gen = rng(11)
    x = 1e-3 * torch.randn(T, n, generator=gen, dtype=DT)
    cell = PalCell(W, torch.eye(n, dtype=DT), torch.zeros(n, dtype=DT), "tanh")
    tr = unroll(cell, x.unsqueeze(1))
    lam_star = float(get_activation("tanh").dphi(tr.states[:-1]).min())  # min over the trajectory of s'(h_{r-1})
    normW = float(torch.linalg.matrix_norm(W, 2))
    eps = normW * lam_star - 1
    dW = lemma2(cell, x)  # (T, n, n^2): dh_t/dW_R, corrected HV
    norms = dW.flatten(1).norm(dim=1)
    logs = torch.log10(norms)
    ce = measure("pal", "tanh", W, torch.eye(n, dtype=DT), torch.zeros(n, dtype=DT), x, torch.zeros(n, dtype=DT))
    ev = counterexample_evidence(ce)
    ev.update({"norm_W": normW, "lambda_star": lam_star, "epsilon": eps,
               "max_norm_dh_dW_first_half": float(norms[: T // 2].max()), "max_norm_dh_dW_second_half": float(norms[T // 2:].max()),
               "norm_dh_dW_at_T": float(norms[-1])})
    fig = FigureSpec(f"Theorem 4: ||W_R|| = {normW:.3g} >= (1+eps)/lambda* with eps = {eps:.3g}, yet no explosion",
                     "t (or k)", "log10", (Series("||dh_t/dW_R||_F (Lemma 2, corrected HV)", k_axis(T), tuple(logs.tolist())),
                                    Series("||dh_T/dh_k||_2 against k (the counterexample's profile)", k_axis(T),
                                           tuple(ce.log10_norms.tolist()), "dashed")))
    ok = eps > 0 and ev["max_norm_dh_dW_second_half"] <= ev["max_norm_dh_dW_first_half"]  # hypothesis met, no growth
    return Finding(verdict(ok, "refuted", "holds"), ev, figure=fig, correction=(
        "A large ||W_R|| does not make the gradient explode: the proof's step ||prod W D_r|| >= prod lambda*(D_r) "
        "||W_R||^(t-k) would need ||W^m|| >= ||W||^m, the reverse of submultiplicativity. What grows or vanishes "
        "is the product itself: its growth rate (the top Lyapunov exponent) decides, and it is <= "
        "log(gamma sigma_max) but can be far below it."))


# ---------------------------------------------------------------------------------------- the claims, in order

CLAIMS: tuple[Claim, ...] = (
    claim("001-elman-pal", "001", "With h~_t = s^-1(h_t), the Elman form h_t = s(W_R h_(t-1) + W_I x_t + b_R) becomes "
          "h~_t = W_R s(h~_(t-1)) + W_I x_t + b_R (eq. 1).", _elman_pal),
    claim("001-lemma2", "001", "Lemma 2: dh_t/dW_R = HV(s(h_(t-1))) + W_R s'(h_(t-1)) dh_(t-1)/dW_R, with HV(v) the "
          "n x n^2 matrix whose n x n blocks are all v^T.", _lemma2),
    claim("001-theorem1", "001", "Theorem 1: dh_t/dW_R = sum_(k=1)^(t-1) (prod_(r=k+1)^t W_R diag(s'(h_(r-1)))) "
          "HV(s(h_(k-1))) + HV(s(h_(t-1))).", _theorem1),
    claim("001-theorem2-singular", "001", "Theorem 2, with lambda_1 read as the largest singular value of W_R: if "
          "gamma lambda_1 < 1 then F(k0, t) -> 0 as t -> infinity, at least like (gamma lambda_1)^(t-k0).",
          _theorem2_singular),
    claim("001-theorem2-eigen", "001", "Theorem 2 as written: if the eigenvalue of W_R of largest absolute value "
          "satisfies lambda_1 < 1/gamma, then F(k0, t) -> 0 as t -> infinity.", _theorem2_eigen),
    claim("001-theorem3", "001", "Theorem 3: for a linear RNN, if dE_t/dh_t = sum_i c_i q_i over the eigenvectors q_i of "
          "W_R and j is the first index with c_j != 0 and lambda_j > 1, the gradient grows exponentially along q_j.",
          _theorem3),
    claim("001-lemma3", "001", "Lemma 3: ||AB|| >= lambda*(A) ||B|| for square A, B, with lambda*(A) the smallest "
          "absolute value of an eigenvalue of A.", _lemma3),
    claim("001-theorem4", "001", "Theorem 4: if ||W_R|| >= (1 + eps)/lambda*(diag(s')) for some eps > 0, then "
          "||dE_t/dW_R|| -> infinity as t -> infinity.", _theorem4),
)
