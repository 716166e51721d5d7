"""claims_001 (seed 001_28bb9cc7f1f7e16d.txt, S. Pal 2019): Theorem 4's counterexample by jacrev through the Pal
recurrence, Theorem 3's growth rates from numpy's eigenvectors, Lemma 3's counterexample by SVD, and the HV of
Lemma 2 / Theorem 1 (literal for n = 1 only).
"""

import math

import numpy as np
import pytest
import torch
from claims_reference import F64, claim_results, recompute_counterexample

from rnnscope.seeds import claims_001


@pytest.fixture(scope="module")
def results():
    return claim_results(c.id for c in claims_001.CLAIMS)


def test_theorem4_hypothesis_holds_and_gradient_stays_bounded(results):
    ev = results["001-theorem4"].evidence
    ce = ev["counterexample"]
    W, x = torch.tensor(ce["W_hh"], dtype=F64), torch.tensor(ce["inputs"], dtype=F64)
    _, states = recompute_counterexample(ce)
    lam_star = (1 - np.tanh(states[:-1]) ** 2).min()  # min over units and steps of s'(h_{r-1})
    eps = np.linalg.norm(W.numpy(), 2) * lam_star - 1
    assert eps > 1 and abs(eps - ev["epsilon"]) < 1e-9

    def states_of(Wm):  # the Pal recurrence from h_0 = 0, W_xh = I: all states h_1..h_T (T, n)
        h, out = torch.zeros(W.shape[0], dtype=F64), []
        for i in range(x.shape[0]):
            h = Wm @ torch.tanh(h) + x[i]
            out.append(h)
        return torch.stack(out)
    norms = torch.func.jacrev(states_of)(W).flatten(1).norm(dim=1).numpy()  # (T,) ||dh_t/dW_R||_F by autograd
    T = len(norms)
    assert norms[T // 2:].max() <= norms[: T // 2].max()  # no growth, let alone to infinity
    assert norms[-1] == pytest.approx(ev["norm_dh_dW_at_T"], rel=1e-9)
    assert norms[T // 2:].max() == pytest.approx(ev["max_norm_dh_dW_second_half"], rel=1e-9)


def test_theorem3_rates_from_numpy_eigenvectors(results):
    ev = results["001-theorem3"].evidence
    W = np.array(ev["W_hh"])
    lam, Q = np.linalg.eig(W)  # right eigenvectors
    lamT, P = np.linalg.eig(W.T)  # eigenvectors of W^T
    i2, j1, j2 = np.argsort(-np.abs(lam))[1], np.argsort(-np.abs(lamT))[0], np.argsort(-np.abs(lamT))[1]
    L = ev["steps"]

    def rate(v):
        logs = [math.log10(np.linalg.norm(np.linalg.matrix_power(W.T, l) @ v)) for l in (L // 2, L)]
        return (logs[1] - logs[0]) / (L - L // 2)
    assert rate(Q[:, i2].real) == pytest.approx(ev["right_eigenvector_q2"]["log10_rate_per_step"], abs=1e-9)
    assert rate(Q[:, i2].real) == pytest.approx(math.log10(abs(lamT[j1])), abs=1e-3)  # grows like lambda_1
    assert rate(P[:, j2].real) == pytest.approx(math.log10(abs(lamT[j2])), abs=1e-9)  # lambda_2, exactly


def test_lemma3_counterexample_by_svd(results):
    ev = results["001-lemma3"].evidence
    A = np.array(ev["A"])
    s = np.linalg.svd(A, compute_uv=False)
    assert np.abs(np.linalg.eigvals(A)).min() == pytest.approx(1.0)
    assert ev["norm_AB_over_norm_B"] == pytest.approx(s[-1], rel=1e-9) and s[-1] < 0.5


def test_rtrl_claims_literal_hv_wrong_for_n3(results):
    for cid in ("001-lemma2", "001-theorem1"):
        ev = results[cid].evidence
        assert ev["n3_literal_max_relative_error"] > 0.5
        assert max(ev["n1_literal_max_relative_error"], ev["n3_corrected_max_relative_error"]) < 1e-12
