"""modern_bounds: each modern cell's a-priori guarantee against its one-step Jacobians computed independently
(torch.func.jacrev of the cell's step at random inputs and states) and, for the verdicts, against cells built
to land on each side of the bound."""

from __future__ import annotations

import math

import pytest
import torch

import rnnscope as rs
from rnnscope.core.vocab import MODERN_KINDS
from rnnscope.gradients.bounds import EXPLODING, GATED, NONEXPANSIVE, VANISHING

F64 = torch.float64


def jacobians(cell, n: int = 40, scale: float = 2.0, seed: int = 0) -> torch.Tensor:
    """(n, S, S) ds_t/ds_{t-1} by jacrev at random x ~ N(0, scale^2) and states (n > 0 for sLSTM's normaliser)."""
    g = torch.Generator().manual_seed(seed)
    x = scale * torch.randn(n, cell.input_size, dtype=F64, generator=g)
    s = torch.randn(n, cell.state_size, dtype=F64, generator=g)
    if cell.kind == "slstm":  # (h, c, n, m): a positive normaliser
        H = cell.state_size // 4
        s[:, 2 * H:3 * H] = s[:, 2 * H:3 * H].abs() + 0.1
    return torch.stack([torch.func.jacrev(lambda st, i=i: cell.step(x[i:i + 1], st[None])[0])(s[i]) for i in range(n)])


@pytest.mark.parametrize("kind", MODERN_KINDS)
def test_step_bound_holds_for_every_jacobian(kind):
    cell = rs.random_cell(kind, hidden=6, input_size=3, seed=1)
    v = rs.weight_facts(cell)
    J = jacobians(cell)
    norms = torch.linalg.matrix_norm(J, ord=2)
    if v.step_bound is None:
        assert kind == "slstm" and v.verdict == GATED
        return
    assert float(norms.max()) <= v.step_bound * (1 + 1e-12), (float(norms.max()), v.step_bound)


def test_lru_bound_is_an_equality_at_every_step():
    cell = rs.random_cell("lru", hidden=5, input_size=2, r_min=0.3, r_max=0.8, seed=3)
    lam = torch.exp(-torch.exp(cell.nu_log) + 1j * torch.exp(cell.theta_log))
    norms = torch.linalg.matrix_norm(jacobians(cell), ord=2)
    assert torch.allclose(norms, lam.abs().max().expand_as(norms), atol=1e-14, rtol=0)
    v = rs.weight_facts(cell)
    assert v.verdict == VANISHING and abs(v.step_bound - float(lam.abs().max())) < 1e-15


@pytest.mark.parametrize("kind", ["mamba", "mingru", "minlstm"])
def test_diagonal_factors_lie_in_the_open_unit_interval(kind):
    cell = rs.random_cell(kind, hidden=5, input_size=3, seed=4)
    J = jacobians(cell, scale=5.0)
    off = J - torch.diag_embed(torch.diagonal(J, dim1=-2, dim2=-1))
    d = torch.diagonal(J, dim1=-2, dim2=-1)
    assert float(off.abs().max()) == 0.0
    assert bool(((d > 0) & (d < 1)).all())
    assert rs.weight_facts(cell).verdict == NONEXPANSIVE


def test_exprnn_orthogonal_and_indrnn_both_sides():
    e = rs.random_cell("exprnn", hidden=7, seed=0)
    sv = torch.linalg.svdvals(e.W_hh)
    assert float((sv - 1).abs().max()) < 1e-12
    v = rs.weight_facts(e)
    assert abs(v.sigma_max - 1) < 1e-12 and v.verdict == NONEXPANSIVE
    assert rs.weight_facts(rs.random_cell("exprnn", "sigmoid", hidden=7)).verdict == VANISHING  # gamma = 1/4
    i = rs.random_cell("indrnn", hidden=6, seed=0)  # u ~ U(0, 1), relu: gamma max|u| < 1
    assert rs.weight_facts(i).verdict == VANISHING
    big = rs.random_cell("indrnn", hidden=6, seed=0, u_max=3.0)
    vb = rs.weight_facts(big)
    assert vb.verdict == EXPLODING and abs(vb.step_bound - float(big.u.abs().max())) < 1e-15
    # the bound is attained by a unit whose pre-activation is positive: relu' = 1, |dh_i/dh_i| = |u_i|
    J = jacobians(big, scale=0.0)
    assert float(torch.linalg.matrix_norm(J, ord=2).max()) <= vb.step_bound * (1 + 1e-12)


def test_profile_reports_the_step_bound_line():
    cell = rs.random_cell("indrnn", hidden=5, seed=2)
    x = torch.randn(30, 1, 1, dtype=F64, generator=torch.Generator().manual_seed(0))
    p = rs.profile(cell, x)
    c = float(cell.u.abs().max())  # relu: gamma = 1
    dist = torch.arange(29, -1, -1, dtype=F64)
    assert torch.allclose(p.log10_bound, dist * math.log10(c), atol=1e-12, rtol=0)
    assert bool((p.log10_spectral <= p.log10_bound + 1e-9).all())
