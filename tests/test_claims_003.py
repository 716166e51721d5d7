"""claims_003 (seed 003_442f2c9f526e9ba0.txt): the derivative bounds against the closed forms sigma(1 - sigma) and
1 - tanh^2 on a numpy grid, and the Jacobian diag(s'(a_j)) W against jacrev (an independent random case).
"""

import numpy as np
import pytest
import torch
from claims_reference import F64, claim_results

from rnnscope.seeds import claims_003


@pytest.fixture(scope="module")
def results():
    return claim_results(c.id for c in claims_003.CLAIMS)


def test_derivative_bounds_against_closed_forms(results):
    ev = results["003-derivative-bounds"].evidence
    a = np.linspace(-10, 10, 200001)
    s = 1 / (1 + np.exp(-a))
    assert ev["sigmoid"]["sup_derivative"] == pytest.approx((s * (1 - s)).max(), abs=1e-15) == 0.25
    assert ev["tanh"]["sup_derivative"] == pytest.approx((1 - np.tanh(a) ** 2).max(), abs=1e-15) == 1.0
    assert abs(ev["sigmoid"]["argmax_preactivation"]) < 1e-9 and ev["sigmoid"]["value_at_argmax"] == pytest.approx(0.5)


@pytest.mark.parametrize("act,closed", [("sigmoid", lambda a: torch.sigmoid(a) * (1 - torch.sigmoid(a))),
                                        ("tanh", lambda a: 1 - torch.tanh(a) ** 2)])
def test_jacobian_formula_independently(results, act, closed):
    """ds_j/ds_(j-1) = diag(s'(a_j)) W with s' in closed form, against jacrev; and the claim's verdict agrees."""
    gen = torch.Generator().manual_seed(7)
    W, U, b = (torch.randn(*s, generator=gen, dtype=F64) for s in ((5, 5), (5, 2), (5,)))
    s_prev, x = torch.randn(5, generator=gen, dtype=F64), torch.randn(2, generator=gen, dtype=F64)
    phi = torch.sigmoid if act == "sigmoid" else torch.tanh
    J = torch.func.jacrev(lambda s: phi(W @ s + U @ x + b))(s_prev)
    torch.testing.assert_close(J, torch.diag(closed(W @ s_prev + U @ x + b)) @ W, rtol=0, atol=1e-15)
    assert results["003-jacobian"].verdict == "holds"
    assert results["003-jacobian"].evidence["max_abs_error_vs_jacrev"][act] < 1e-12
