"""gradients.bounds against closed forms, a dense grid of autograd derivatives, and explicit Jacobian products."""

import math

import pytest
import torch

import rnnscope as rs
from rnnscope.gradients.bounds import EXPLODING, VANISHING

F64 = torch.float64


@pytest.mark.parametrize("name", ["sigmoid", "tanh", "relu", "identity"])
def test_gamma_is_the_sup_of_the_derivative(name):
    act = rs.get_activation(name)
    a = torch.linspace(-12, 12, 240001, dtype=F64, requires_grad=True)  # grid contains 0 and +-tiny steps
    (d,) = torch.autograd.grad(act.phi(a).sum(), a)
    # relu's sup over a > 0 is 1; autograd uses relu'(0) = 0 at the single point 0
    assert float(d.max()) == pytest.approx(act.gamma, rel=1e-12)
    assert torch.allclose(act.dphi(a.detach()), d, rtol=0, atol=1e-15)


def _jordan(a: float, c: float) -> torch.Tensor:
    return torch.tensor([[a, c], [0.0, a]], dtype=F64)


def test_verdict_uses_singular_values_and_flags_the_eigenvalue_test():
    # rho = a (closed form, triangular); sigma_max of [[a, c], [0, a]] in closed form
    a, c = 0.5, 3.0
    sigma = math.sqrt((2 * a * a + c * c + c * math.sqrt(4 * a * a + c * c)) / 2)
    cell = rs.ElmanCell(_jordan(a, c), torch.zeros(2, 1, dtype=F64), torch.zeros(2, dtype=F64), "tanh")
    v = rs.weight_facts(cell)
    assert v.spectral_radius == pytest.approx(a, rel=1e-12)
    assert v.sigma_max == pytest.approx(sigma, rel=1e-12)
    assert v.gamma == 1.0
    assert v.verdict == EXPLODING  # sigma_max > 1 although rho < 1
    assert "eigenvalue test would wrongly promise vanishing" in v.note


@pytest.mark.parametrize("g, expected", [(0.9, VANISHING), (1.1, EXPLODING)])
def test_orthogonal_weights_verdict(g, expected):
    gen = torch.Generator().manual_seed(3)
    W = rs.recurrent_matrix(6, g, "orthogonal", gen)
    cell = rs.ElmanCell(W, torch.zeros(6, 1, dtype=F64), torch.zeros(6, dtype=F64), "tanh")
    v = rs.weight_facts(cell)
    assert v.sigma_max == pytest.approx(g, rel=1e-12)  # g Q has every singular value g
    assert v.spectral_radius == pytest.approx(g, rel=1e-12)  # and every |eigenvalue| g
    assert v.verdict == expected
    assert "eigenvalue" not in v.note  # rho and sigma_max agree: nothing to flag


def test_sigmoid_threshold_is_four():
    W = 3.9 * torch.eye(3, dtype=F64)
    cell = rs.ElmanCell(W, torch.zeros(3, 1, dtype=F64), torch.zeros(3, dtype=F64), "sigmoid")
    assert rs.weight_facts(cell).verdict == VANISHING
    cell = rs.ElmanCell(4.1 * torch.eye(3, dtype=F64), torch.zeros(3, 1, dtype=F64), torch.zeros(3, dtype=F64), "sigmoid")
    assert rs.weight_facts(cell).verdict == EXPLODING


@pytest.mark.parametrize("kind", ["elman", "pal"])
@pytest.mark.parametrize("act", ["sigmoid", "tanh", "relu"])
def test_the_bound_holds_for_every_k(kind, act):
    """||ds_T/ds_k||_2 <= (gamma sigma_max)^(T-k), checked on explicit products with svdvals."""
    gen = torch.Generator().manual_seed(11)
    S, T = 6, 25
    cell = rs.random_cell(kind, act, hidden=S, input_size=2, gain=2.0, seed=5)
    x = torch.randn(T, 2, 2, generator=gen, dtype=F64)
    tr = rs.unroll(cell, x)
    v = rs.weight_facts(cell)
    P = torch.eye(S, dtype=F64).expand(2, S, S)
    for k in range(T - 1, 0, -1):
        P = P @ cell.jacobian(tr.inputs[k], tr.states[k])  # append J_{k+1}
        lhs = torch.linalg.svdvals(P)[:, 0]
        assert (lhs <= (v.gamma * v.sigma_max) ** (T - k) * (1 + 1e-12)).all()


def test_fitted_rate_and_horizon_closed_form():
    g, T = 0.8, 60
    d = torch.arange(T - 1, -1, -1, dtype=F64)
    prof = d * math.log10(g)  # log10 ||(g I)^(T-k)|| for k = 1..T
    assert rs.fitted_rate(prof) == pytest.approx(math.log10(g), rel=1e-12)
    h, kind = rs.horizon(prof)
    assert kind == "fallen"
    assert h == math.ceil(3 / -math.log10(g) - 1e-12)
    h, kind = rs.horizon(-prof)
    assert kind == "risen" and h == math.ceil(3 / -math.log10(g) - 1e-12)
    assert rs.horizon(torch.zeros(T, dtype=F64)) == (None, None)
    assert rs.fitted_rate(torch.zeros(2, dtype=F64)) is None  # fewer than two tail points


def test_gated_and_function_cells_get_no_pascanu_verdict():
    lstm = rs.random_cell("lstm", hidden=3, input_size=2, seed=0)
    v = rs.weight_facts(lstm)
    assert v.gamma is None and v.spectral_radius is None
    assert v.sigma_max == pytest.approx(float(torch.linalg.svdvals(lstm.W_hh)[0]), rel=1e-12)
    fc = rs.FunctionCell(lambda x, h: torch.tanh(h + x), state_size=2, input_size=2)
    assert rs.weight_facts(fc).sigma_max is None
