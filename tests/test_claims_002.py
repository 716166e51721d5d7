"""claims_002 (seed 002_87b582d44353f60f.txt, the NumPy notebook): the notebook's random draws re-executed here
from np.random.seed(12345) as the notebook does, their spectra by numpy, the exploding example's true-state
Jacobian product multiplied out, and the transpose in the notebook's Jacobian against jacrev.
"""

import math

import numpy as np
import pytest
import torch
from claims_reference import F64, claim_results

from rnnscope.seeds import claims_002


@pytest.fixture(scope="module")
def results():
    return claim_results(c.id for c in claims_002.CLAIMS)


def _notebook(example):
    """Seed 002's cells, re-executed with the global seed, as the notebook does."""
    np.random.seed(12345)
    t = 20
    if example == 1:
        np.random.randn(5, t)  # h: random noise (drawn, so that the later draws match the notebook's)
        x, b_h, W_hx = np.random.randn(5, t), np.random.randn(5, 1), np.random.randn(5, 5)
        eig = np.random.rand(5) * 4
    else:
        x, b_h = np.zeros((5, t)), np.zeros((5, 1))  # h = zeros draws nothing
        W_hx = np.random.randn(5, 5)
        eig = 4 + np.random.rand(5) * 10
    Q = np.random.randn(5, 5)
    return Q @ np.diag(eig) @ np.linalg.inv(Q), W_hx, b_h, x


def test_notebook_example_eigen_and_singular_values(results):
    W, *_ = _notebook(1)
    ev = results["002-eigenvalue-vanishing"].evidence["notebook_vanishing_example"]
    rho, sigma = np.abs(np.linalg.eigvals(W)).max(), np.linalg.svd(W, compute_uv=False)[0]
    assert ev["spectral_radius"] == pytest.approx(rho, rel=1e-9) and rho < 4
    assert ev["sigma_max"] == pytest.approx(sigma, rel=1e-9) and sigma > 4


def test_notebook_exploding_example_vanishes_on_true_states(results):
    W, W_hx, b_h, x = _notebook(2)
    sig = lambda a: 1 / (1 + np.exp(-a))  # noqa: E731
    h, Js = np.zeros(5), []
    for i in range(20):
        a = W @ h + W_hx @ x[:, i] + b_h[:, 0]
        Js.append(np.diag(sig(a) * (1 - sig(a))) @ W)
        h = sig(a)
    P = np.linalg.multi_dot(Js[::-1][:-1])  # dh_20/dh_1 = J_20 ... J_2
    ev = results["002-exploding-not-sufficient"].evidence
    assert np.abs(np.linalg.eigvals(W)).min() > 4
    assert math.log10(np.linalg.norm(P, 2)) == pytest.approx(ev["log10_norm_first"], abs=1e-6)
    assert ev["log10_norm_first"] < -10


def test_jacobian_transpose_claim_independently():
    """diag(s'(a)) W is the Jacobian; W^T diag(s'(a)) is its transpose (an independent random case)."""
    gen = torch.Generator().manual_seed(99)
    W, U, b = (torch.randn(*s, generator=gen, dtype=F64) for s in ((4, 4), (4, 2), (4,)))
    h, x = torch.randn(4, generator=gen, dtype=F64), torch.randn(2, generator=gen, dtype=F64)
    J = torch.func.jacrev(lambda s: torch.sigmoid(W @ s + U @ x + b))(h)
    a = W @ h + U @ x + b
    seed_form = W.T @ torch.diag(torch.sigmoid(a) * (1 - torch.sigmoid(a)))
    assert torch.allclose(J.T, seed_form, atol=1e-15) and not torch.allclose(J, seed_form, atol=1e-3)

