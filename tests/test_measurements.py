"""measurements: what several claims share. The bound searches never exceed the singular-value bound, clipping
bounds the update without changing the long-range share (both read from the claims that use them), and the
measurements themselves against numpy: explicit Jacobian products by SVD, spectra, closed-form bound lines.
"""

import math

import numpy as np
import pytest
import torch
from claims_reference import F64, claim_results, recompute_counterexample

from rnnscope.core.cells import ElmanCell, PalCell
from rnnscope.seeds import measurements as M
from rnnscope.seeds.counterexamples import saddle


@pytest.fixture(scope="module")
def results():
    return claim_results(["001-theorem2-singular", "002-singular-vanishing", "003-bound-singular", "000-clipping",
                          "004-clipping"])


def test_bound_searches_never_exceed_the_singular_value_bound(results):
    for cid in ("001-theorem2-singular", "003-bound-singular"):
        for act in ("tanh", "sigmoid"):
            ev = results[cid].evidence[act]
            assert ev["max_excess_decades"] <= 1e-9 and ev["trials"] >= 20
    assert results["002-singular-vanishing"].evidence["max_excess_decades"] <= 1e-9


def test_clipping_evidence(results):
    for cid in ("000-clipping", "004-clipping"):
        ev = results[cid].evidence
        assert ev["exploding"]["grad_norm_before"] > 1e3 * ev["exploding"]["threshold"]
        assert ev["exploding"]["grad_norm_after"] == pytest.approx(ev["exploding"]["threshold"], rel=1e-12)
        v = ev["vanishing"]
        assert v["grad_norm_after"] == pytest.approx(v["threshold"], rel=1e-12)  # the clip fired
        assert v["log10_far_over_near_after"] == pytest.approx(v["log10_far_over_near_before"], abs=1e-12)
        assert v["log10_far_over_near_after"] < -10


@pytest.mark.parametrize("kind,act", [("elman", "tanh"), ("pal", "sigmoid"), ("elman", "relu")])
def test_log10_products_against_explicit_products(kind, act):
    """log10 ||dh_T/dh_k||_2 per sequence against J_T ... J_{k+1} multiplied out along the recomputed trajectory."""
    gen = torch.Generator().manual_seed(3)
    S, D, T, B = 4, 2, 15, 3
    W, U, b = (torch.randn(*s, generator=gen, dtype=F64) for s in ((S, S), (S, D), (S,)))
    x, h0 = torch.randn(T, B, D, generator=gen, dtype=F64), torch.randn(B, S, generator=gen, dtype=F64)
    cell = (ElmanCell if kind == "elman" else PalCell)(W, U, b, act)
    got = M.log10_products(cell, x, h0)  # (B, T)
    assert got.shape == (B, T)
    for i in range(B):
        ce = {"cell": kind, "activation": act, "W_hh": W.tolist(), "W_xh": U.tolist(), "b_h": b.tolist(),
              "inputs": x[:, i].tolist(), "h0": h0[i].tolist()}
        ref, _ = recompute_counterexample(ce)
        np.testing.assert_allclose(got[i].numpy(), ref, atol=1e-9, rtol=0)


def test_sigma_rho_and_random_svd_matrix_against_numpy():
    W = M.random_svd_matrix(6, 2.5, M.rng(0))
    sigma, rho = M.sigma_rho(W)
    s = np.linalg.svd(W.numpy(), compute_uv=False)
    assert sigma == pytest.approx(s[0], rel=1e-12) and s[0] == pytest.approx(2.5, rel=1e-12)
    assert rho == pytest.approx(np.abs(np.linalg.eigvals(W.numpy())).max(), rel=1e-12) and rho < sigma


def test_bound_line_closed_form():
    T, rate = 7, 0.3
    np.testing.assert_allclose(M.bound_line(T, rate), [(T - k) * math.log10(rate) for k in range(1, T + 1)], rtol=1e-15)
    assert M.k_axis(3) == (1.0, 2.0, 3.0)


def test_counterexample_evidence_and_eigen_test_of_the_saddle():
    """The saddle (rho gamma = 0.5 < 1, growth like 2^(T-k)): its evidence against numpy and the products recomputed."""
    ce = saddle("tanh", "elman")
    ev = M.counterexample_evidence(ce)
    W = ce.W_hh.numpy()
    assert ev["spectral_radius"] == pytest.approx(np.abs(np.linalg.eigvals(W)).max(), rel=1e-12)
    assert ev["sigma_max"] == pytest.approx(np.linalg.svd(W, compute_uv=False)[0], rel=1e-12)
    ref, _ = recompute_counterexample(ev["counterexample"])
    assert ev["log10_norm_first"] == pytest.approx(ref[0], abs=1e-6)
    assert ev["measured_log10_rate_per_step"] == pytest.approx(ref[0] / (len(ref) - 1), abs=1e-6)
    assert ev["eigenvalue_promise_log10_rate"] == pytest.approx(math.log10(0.5), rel=1e-12)
    assert M.grows_below_eigen_bound(ce)
    fig = M.counterexample_figure(ce, "t")
    np.testing.assert_allclose(fig.series[1].y, M.bound_line(len(ref), ev["sigma_max"]), rtol=1e-12)
