"""counterexamples: the saddle recipe against its closed form, measure() against products multiplied out.

At the saddle's fixed point every one-step Jacobian is the same J* = diag(phi'(a*)) W_hh (Elman) or
W_hh diag(phi'(h*)) (Pal), so dh_T/dh_k = J*^(T-k): numpy's matrix_power and SVD give the reference.
W_hh's eigenvalues (+-r/gamma) and the fixed point itself are checked with numpy too; measure() on a random
RNN against claims_reference.recompute_counterexample (the trajectory step by step, J_t from its definition).
"""

import json
import math

import numpy as np
import pytest
import torch
from claims_reference import F64, recompute_counterexample

from rnnscope.core.cells import ElmanCell, PalCell
from rnnscope.core.errors import InputError
from rnnscope.core.results import jsonable
from rnnscope.seeds.counterexamples import Counterexample, measure, saddle

GAMMA = {"tanh": 1.0, "sigmoid": 0.25}


def _np_phi(act):
    if act == "tanh":
        return np.tanh, lambda a: 1 - np.tanh(a) ** 2
    s = lambda a: 1 / (1 + np.exp(-a))  # noqa: E731
    return s, lambda a: s(a) * (1 - s(a))


@pytest.mark.parametrize("act", ["tanh", "sigmoid"])
@pytest.mark.parametrize("cell", ["elman", "pal"])
@pytest.mark.parametrize("g,r,T", [(2.0, 0.5, 40), (1.5, 0.9, 30)])
def test_saddle_against_its_closed_form(act, cell, g, r, T):
    ce = saddle(act, cell, g=g, r=r, T=T)
    W, h, b = ce.W_hh.numpy(), ce.h0.numpy(), ce.b_h.numpy()
    gam = GAMMA[act]
    # W_hh = (1/gamma) [[g, p], [q, -g]] with p q = r^2 - g^2: eigenvalues +-r/gamma, so gamma rho = r < 1
    np.testing.assert_allclose(np.sort(np.linalg.eigvals(W).real), [-r / gam, r / gam], rtol=1e-12)
    assert gam * np.abs(np.linalg.eigvals(W)).max() < 1 < gam * np.linalg.svd(W, compute_uv=False)[0]
    assert W[0, 0] == pytest.approx(g / gam, rel=1e-15)
    # a fixed point held by the bias alone (zero inputs): one step from h* returns h*
    phi, dphi = _np_phi(act)
    if cell == "elman":
        a = W @ h + b
        J = np.diag(dphi(a)) @ W  # dh_t/dh_{t-1} at the fixed point
        np.testing.assert_allclose(phi(a), h, atol=1e-14)
    else:
        J = W @ np.diag(dphi(h))
        np.testing.assert_allclose(W @ phi(h) + b, h, atol=1e-14)
    assert np.abs(ce.inputs.numpy()).max() == 0 and ce.inputs.shape == (T, 1)
    # the products are powers of J: log10 ||J^(T-k)||_2 for k = 1..T
    ref = [math.log10(np.linalg.norm(np.linalg.matrix_power(J, T - k), 2)) for k in range(1, T + 1)]
    np.testing.assert_allclose(ce.log10_norms.numpy(), ref, atol=1e-9, rtol=0)
    # and they grow like g^(T-k): J's top eigenvalue is g up to the saturated unit's phi'
    lam = np.abs(np.linalg.eigvals(J)).max()
    assert lam == pytest.approx(g, rel=2e-3)
    assert ce.rate_per_step == pytest.approx(ref[0] / (T - 1), abs=1e-12)
    L = ce.log10_norms.numpy()
    assert L[0] - L[1] == pytest.approx(math.log10(lam), abs=1e-3)  # the slope far from T: log10 of J's top eigenvalue


def test_measure_against_products_multiplied_out():
    gen = torch.Generator().manual_seed(5)
    S, D, T = 3, 2, 12
    W, U, b = (torch.randn(*s, generator=gen, dtype=F64) for s in ((S, S), (S, D), (S,)))
    x, h0 = torch.randn(T, D, generator=gen, dtype=F64), torch.randn(S, generator=gen, dtype=F64)
    for cell, act in (("elman", "sigmoid"), ("pal", "tanh")):
        ce = measure(cell, act, W.tolist(), U.tolist(), b.tolist(), x.tolist(), h0.tolist())  # lists are accepted
        ref, _ = recompute_counterexample(ce.to_dict())
        np.testing.assert_allclose(ce.log10_norms.numpy(), ref, atol=1e-10, rtol=0)
        assert ce.log10_norms[-1] == 0.0  # the empty product at k = T
        assert isinstance(ce.make_cell(), ElmanCell if cell == "elman" else PalCell)
        d = json.loads(json.dumps(ce.to_dict(), allow_nan=False))
        assert set(d) == {"cell", "activation", "W_hh", "W_xh", "b_h", "inputs", "h0", "log10_norms"}
        np.testing.assert_array_equal(np.array(d["W_hh"]), W.numpy())


def test_dead_relu_norms_become_null_in_json():
    """All units off (b = -5, W = 0.1 I): every product with a factor is 0, log10 = -inf, null once made JSON-safe."""
    ce = measure("elman", "relu", 0.1 * np.eye(2), np.zeros((2, 1)), [-5.0, -5.0], np.zeros((4, 1)), [1.0, 1.0])
    assert isinstance(ce, Counterexample)
    assert ce.log10_norms[:-1].tolist() == [-math.inf] * 3 and float(ce.log10_norms[-1]) == 0.0
    assert jsonable(ce.to_dict())["log10_norms"] == [None, None, None, 0.0]


@pytest.mark.parametrize("call,msg", [
    (lambda: measure("lstm", "tanh", [[1.0]], [[1.0]], [0.0], [[0.0]], [0.0]), "cell: expected 'elman' or 'pal', got 'lstm'"),
    (lambda: saddle("relu", "elman"), "activation: expected 'sigmoid' or 'tanh'"),
    (lambda: saddle("tanh", "elman", g=0.9), "saddle: expected g > 1, 0 <= r < 1, p != 0, got g=0.9"),
    (lambda: saddle("tanh", "elman", r=1.0), "saddle: expected g > 1"),
    (lambda: saddle("tanh", "elman", p=0.0), "saddle: expected g > 1"),
])
def test_bad_arguments(call, msg):
    with pytest.raises(InputError, match=msg.replace("(", r"\(").replace(")", r"\)")):
        call()
