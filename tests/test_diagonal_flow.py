"""diagonal_flow: the closed-form profile of the diagonal cells and LRU against explicit products of their
one-step Jacobians (torch.func.jacrev of the step), torch.linalg.svdvals / matrix_norm, and g^T P."""

from __future__ import annotations

import pytest
import torch

import rnnscope as rs
from rnnscope.core.unroll import unroll
from rnnscope.gradients.diagonal_flow import diagonal_profile, has_unit_gains
from rnnscope.gradients.flow import jacobian_profile

F64 = torch.float64


@pytest.mark.parametrize("kind", ["lru", "mingru", "minlstm", "mamba", "indrnn"])
def test_closed_form_equals_explicit_products(kind):
    T, B = 30, 2
    cell = rs.random_cell(kind, hidden=4, input_size=2, seed=3)
    x = 2 * torch.randn(T, B, 2, dtype=F64, generator=torch.Generator().manual_seed(0))
    tr = unroll(cell, x)
    g = torch.randn(B, 3, cell.state_size, dtype=F64, generator=torch.Generator().manual_seed(1))
    p = jacobian_profile(cell, tr, carry=g)
    assert has_unit_gains(cell) and p.power_half_steps == 0  # the closed form ran, no power iteration
    P = torch.eye(cell.state_size, dtype=F64).expand(B, -1, -1)
    for k in range(T, 0, -1):  # P = ds_T/ds_k
        for name, got, ref in (("spectral", p.log10_spectral[:, k - 1], torch.linalg.svdvals(P)[:, 0]),
                               ("frobenius", p.log10_frobenius[:, k - 1], torch.linalg.matrix_norm(P)),
                               ("carried", p.log10_carried[:, :, k - 1],
                                torch.linalg.vector_norm(torch.bmm(g, P), dim=-1))):
            ref = torch.log10(ref)
            fin = torch.isfinite(ref)
            assert torch.equal(torch.isfinite(got), fin), (name, k)
            assert torch.allclose(got[fin], ref[fin], atol=1e-10, rtol=0), (name, k)
        J = torch.stack([torch.func.jacrev(lambda s, b=b: cell.step(x[k - 1, b:b + 1], s[None])[0])(tr.states[k - 1, b])
                         for b in range(B)])
        P = P @ J


def test_long_exploding_free_sequence_stays_finite_and_spectral_off():
    cell = rs.random_cell("lru", hidden=8, r_min=0.999, r_max=0.9999, seed=0)
    tr = unroll(cell, torch.zeros(20_000, 1, 1, dtype=F64))
    p = diagonal_profile(cell, tr, spectral=False)
    r = cell.spectral_radius
    assert bool(torch.isnan(p.log10_spectral).all())
    # Frobenius of the first step's product: 1/2 log10 (2 sum_j |lambda_j|^(2 (T-1)))
    lam = torch.exp(-torch.exp(cell.nu_log))
    ref = 0.5 * torch.log10(2 * (lam ** (2 * 19_999)).sum())
    assert abs(float(p.log10_frobenius[0, 0] - ref)) < 1e-9 and r < 1
