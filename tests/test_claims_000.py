"""claims_000 (seed 000_0183f85bd5403c3d.txt): the sigmoid counterexample, the transient growth of a non-normal
W's powers and the scalar powers, each against numpy (closed forms, matrix powers, the recomputed trajectory).
"""

import math

import numpy as np
import pytest
from claims_reference import claim_results, recompute_counterexample

from rnnscope.seeds import claims_000


@pytest.fixture(scope="module")
def results():
    return claim_results(c.id for c in claims_000.CLAIMS)


def test_activation_derivative_counterexample(results):
    ce = results["000-activation-decides"].evidence["counterexample"]
    ref, states = recompute_counterexample(ce)
    a = np.array(ce["W_hh"]) @ states[:-1].T + np.array(ce["b_h"])[:, None]
    assert (np.exp(-a) / (1 + np.exp(-a)) ** 2).max() <= 0.25  # a' <= 1/4 on every step
    assert ref[0] > 10  # and the gradient grew by more than 10 decades


def test_transient_growth_by_matrix_powers(results):
    ev = results["000-spectral-radius"].evidence
    W = np.array(ev["W_hh"])
    norms = [np.linalg.norm(np.linalg.matrix_power(W, k), 2) for k in range(121)]
    assert np.abs(np.linalg.eigvals(W)).max() < 1
    assert int(np.argmax(norms)) == ev["peak_at_power"]
    assert math.log10(max(norms)) == pytest.approx(ev["peak_log10_norm"], abs=1e-9)
    assert max(k for k in range(121) if norms[k] > 1) == ev["last_power_with_norm_above_1"]


def test_scalar_powers_closed_form(results):
    ev = results["000-scalar-power"].evidence["log10_abs_W_power_100"]
    for w, v in ev.items():
        assert v == pytest.approx(100 * math.log10(abs(float(w))), abs=1e-9)
