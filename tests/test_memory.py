"""memory: the curse of memory. References computed here, without rnnscope's formulas: the closed forms written
out by hand (and by direct double sums over the impulse responses), the derivatives by torch.func.jvp through the
step-by-step recurrence with lambda(p), gamma(p) written as torch functions of the parameter, the Monte Carlo
means against the closed forms within 4 standard errors."""

from __future__ import annotations

import json
import math

import pytest
import torch

from rnnscope.core.errors import InputError
from rnnscope.dynamics.memory import (BLOCK, CASES, ar1_inputs, block_map, closed_form, coefficients,
                                      memory_sensitivity, orthogonal, parameter_value, plot_memory,
                                      sensitivity_recurrence, tanh_sensitivity)

# torch's forward mode loads its jvp decompositions through torch.jit.script once, which warns (torch 2.13)
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")

F64, C128 = torch.float64, torch.complex128
LINEAR = [(c, p) for c, p, _ in CASES if c != "tanh"]
THETA = 0.7


def lam_gamma(case, param, p, lam, theta=THETA):
    """(lambda(p), gamma(p)) as torch functions of the parameter's value p, the other parameters at (lam, theta)."""
    one = torch.ones((), dtype=F64)
    if case == "plain":
        return p.to(C128), one
    if case == "normalised":
        return p.to(C128), torch.sqrt(1 - p * p)
    if case == "exponential":
        lam_ = torch.exp(-torch.exp(p))
        return lam_.to(C128), torch.sqrt(1 - lam_ * lam_)
    if case == "complex":
        return p * torch.exp(1j * torch.tensor(theta, dtype=F64)), one
    nu = p if param == "nu" else torch.tensor(math.log(-math.log(lam)), dtype=F64)
    th = p if param == "theta" else torch.tensor(theta, dtype=F64)
    r = torch.exp(-torch.exp(nu))
    return r * torch.exp(1j * th), torch.sqrt(1 - r * r)


def h_final(case, param, p, lam, x):
    """h_T of h_t = lambda(p) h_{t-1} + gamma(p) x_t from h_0 = 0, step by step (x (T, B) real)."""
    lam_, gamma = lam_gamma(case, param, p, lam)
    h = torch.zeros(x.shape[1:], dtype=C128)
    for t in range(x.shape[0]):
        h = lam_ * h + gamma * x[t]
    return h


def series(c, rho, K=2000):
    """E|h|^2, E|dh/dp|^2 as direct double sums over the impulse responses (independent of G)."""
    k = torch.arange(K, dtype=F64)
    lam = torch.tensor(c.lam, dtype=C128)
    pw = lam ** k
    a = c.gamma * pw
    b = c.gamma_p * pw + c.gamma * c.lam_p * k * torch.cat([torch.ones(1, dtype=C128), pw[:-1]])
    R = (rho ** (k[:, None] - k[None, :]).abs()).to(C128)
    return float((a @ R @ a.conj()).real), float((b @ R @ b.conj()).real)


# ----------------------------------------------------------------------------- closed forms

@pytest.mark.parametrize("lam", [0.3, 0.9, 0.99, 0.999])
@pytest.mark.parametrize("rho", [0.0, 0.6, -0.4])
def test_closed_forms_written_out(lam, rho):
    h2, s2 = closed_form(coefficients("plain", "lambda", lam), rho)
    assert h2 == pytest.approx((1 + rho * lam) / ((1 - rho * lam) * (1 - lam ** 2)), rel=1e-11)
    num = 1 + 2 * rho * lam + lam ** 2 - rho ** 2 * lam ** 2 - 2 * rho * lam ** 3 - rho ** 2 * lam ** 4
    assert s2 == pytest.approx(num / ((1 - rho * lam) ** 2 * (1 - lam ** 2) ** 3), rel=1e-11)
    if rho == 0:
        assert s2 == pytest.approx((1 + lam ** 2) / (1 - lam ** 2) ** 3, rel=1e-11)
    h2n, s2n = closed_form(coefficients("normalised", "lambda", lam), rho)
    assert h2n == pytest.approx((1 + rho * lam) / (1 - rho * lam), rel=1e-11)   # O(1): = 1 at rho = 0
    assert s2n == pytest.approx((1 + rho * lam) / ((1 - rho * lam) * (1 - lam ** 2) ** 2), rel=1e-10)
    h2e, s2e = closed_form(coefficients("exponential", "nu", lam), rho)
    assert h2e == pytest.approx(h2n, rel=1e-12)
    assert s2e == pytest.approx((lam * math.log(lam)) ** 2 * s2n, rel=1e-10)  # the chain rule dlambda/dnu


@pytest.mark.parametrize("r", [0.5, 0.95, 0.999])
def test_complex_closed_forms_white(r):
    mu = r * r
    h2, s2 = closed_form(coefficients("complex", "r", r, THETA), 0.0)
    assert h2 == pytest.approx(1 / (1 - mu), rel=1e-11)
    assert s2 == pytest.approx((1 + mu) / (1 - mu) ** 3, rel=1e-10)
    h2, s2 = closed_form(coefficients("lru", "nu", r, THETA), 0.0)
    assert h2 == pytest.approx(1.0, rel=1e-11)
    assert s2 == pytest.approx((r * math.log(r)) ** 2 / (1 - mu) ** 2, rel=1e-10)
    h2, s2 = closed_form(coefficients("lru", "theta", r, THETA), 0.0)
    assert s2 == pytest.approx(mu * (1 + mu) / (1 - mu) ** 2, rel=1e-10)


@pytest.mark.parametrize("case,param", LINEAR)
@pytest.mark.parametrize("rho", [0.0, 0.5, -0.7])
def test_closed_form_against_double_sums(case, param, rho):
    c = coefficients(case, param, 0.8, THETA)
    h2, s2 = closed_form(c, rho)
    rh2, rs2 = series(c, rho, K=400)
    assert h2 == pytest.approx(rh2, rel=1e-10)
    assert s2 == pytest.approx(rs2, rel=1e-10)


# ----------------------------------------------------------------------------- derivatives against autograd

@pytest.mark.parametrize("case,param", LINEAR)
def test_sensitivity_recursion_against_jvp(case, param):
    lam = 0.93
    x = torch.randn(60, 5, generator=torch.Generator().manual_seed(1), dtype=F64)
    p0 = torch.tensor(parameter_value(case, param, lam, THETA), dtype=F64)
    h_ref, dh_ref = torch.func.jvp(lambda p: h_final(case, param, p, lam, x), (p0,), (torch.ones((), dtype=F64),))
    h, s = sensitivity_recurrence(x, coefficients(case, param, lam, THETA))
    assert torch.allclose(h, h_ref, rtol=0, atol=1e-12)
    assert torch.allclose(s, dh_ref, rtol=0, atol=1e-12 * max(1.0, float(dh_ref.abs().max())))
    # the analytic coefficients are the derivatives of lambda(p), gamma(p)
    (l_, g_), (lp, gp) = torch.func.jvp(lambda p: lam_gamma(case, param, p, lam), (p0,), (torch.ones((), dtype=F64),))
    c = coefficients(case, param, lam, THETA)
    assert abs(complex(lp) - c.lam_p) < 1e-14 and abs(float(gp) - c.gamma_p) < 1e-14
    assert abs(complex(l_) - c.lam) < 1e-15 and abs(float(g_) - c.gamma) < 1e-15


def test_exponential_chain_rule_against_autograd():
    """dh/dnu through lambda = exp(-exp(nu)) by reverse-mode autograd equals (lambda ln lambda) dh/dlambda."""
    lam = 0.97
    x = torch.randn(200, 3, generator=torch.Generator().manual_seed(2), dtype=F64)
    nu = torch.tensor(math.log(-math.log(lam)), dtype=F64, requires_grad=True)
    lam_ = torch.exp(-torch.exp(nu))
    h = torch.zeros(3, dtype=F64)
    for t in range(x.shape[0]):
        h = lam_ * h + torch.sqrt(1 - lam_ * lam_) * x[t]
    grads = [torch.autograd.grad(h[i], nu, retain_graph=True)[0] for i in range(3)]
    _, s_lam = sensitivity_recurrence(x, coefficients("normalised", "lambda", lam))
    _, s_nu = sensitivity_recurrence(x, coefficients("exponential", "nu", lam))
    for i in range(3):
        assert float(grads[i]) == pytest.approx(lam * math.log(lam) * float(s_lam[i].real), abs=1e-12)
        assert float(grads[i]) == pytest.approx(float(s_nu[i].real), abs=1e-12)


@pytest.mark.parametrize("rho", [0.0, 0.7])
def test_block_map_is_the_step_recursion(rho):
    """Three blocks of K steps by block_map's matrices equal the AR(1) and (h, s) recursions step by step."""
    K, B, lam = 16, 4, 0.9
    cs = [coefficients(c, p, lam, THETA) for c, p in LINEAR]
    A, E = block_map(cs, rho, K)
    gen = torch.Generator().manual_seed(3)
    x0 = torch.randn(B, generator=gen, dtype=F64)
    e = torch.randn(3 * K, B, generator=gen, dtype=F64)
    xs = ar1_inputs(e, rho, x0=x0)
    w = torch.zeros(B, 1 + 4 * len(cs), dtype=F64)
    w[:, 0] = x0
    for blk in range(3):
        w = w @ A + e[blk * K:(blk + 1) * K].T @ E
    x, o = w[:, 0], w[:, 1:].reshape(B, len(cs), 4)
    h, s = torch.complex(o[..., 0], o[..., 1]), torch.complex(o[..., 2], o[..., 3])
    assert torch.allclose(x, xs[-1], rtol=0, atol=1e-12)
    for i, c in enumerate(cs):
        h_ref, s_ref = sensitivity_recurrence(xs, c)
        assert torch.allclose(h[:, i], h_ref, rtol=0, atol=1e-12)
        assert torch.allclose(s[:, i], s_ref, rtol=0, atol=1e-11)


def test_tanh_recursion_against_jvp():
    Q = orthogonal(6, 0)
    assert torch.allclose(Q @ Q.T, torch.eye(6, dtype=F64), atol=1e-13)
    for rho in (0.0, 0.5):
        h, dh = tanh_sensitivity(0.95, Q, 5, 300, rho, torch.Generator().manual_seed(4))
        h2, dh2 = tanh_sensitivity(0.95, Q, 5, 300, rho, torch.Generator().manual_seed(4), autograd=True)
        assert torch.equal(h, h2)
        assert torch.allclose(dh, dh2, rtol=0, atol=1e-12)


# ----------------------------------------------------------------------------- Monte Carlo

@pytest.fixture(scope="module")
def white():
    return memory_sensitivity((0.5, 0.9, 0.99, 0.999), sequences=3000, seed=0)


def test_monte_carlo_agrees_with_closed_forms(white):
    linear = [r for r in white.rows if r.case != "tanh"]
    assert len(linear) == 4 * 6 and all(r.agree for r in linear)
    for r in linear:
        assert abs(r.h2_mc - r.h2_closed) <= 4 * r.h2_se and abs(r.sens_mc - r.sens_closed) <= 4 * r.sens_se
        if r.theta is None:  # real Gaussian h: sd(h^2) = sqrt(2) E[h^2]
            assert r.h2_se / r.h2_mc == pytest.approx(math.sqrt(2 / 3000), rel=0.25)
    for lam in white.lambdas:  # normalised: the forward variance is 1 at rho = 0
        assert white.row("normalised", "lambda", lam).h2_closed == pytest.approx(1.0, rel=1e-12)


def test_growth_exponents(white):
    """log E[(dh/dlambda)^2] against log 1/(1 - lambda): slope -> 3 (plain), 2 (normalised), 0 (exponential)."""
    sl = white.slopes()
    assert sl["plain/lambda"]["sens_closed"] == pytest.approx(3, abs=0.01)
    assert sl["plain/lambda"]["sens_mc"] == pytest.approx(3, abs=0.1)
    assert sl["complex/r"]["sens_mc"] == pytest.approx(3, abs=0.1)
    assert sl["normalised/lambda"]["sens_mc"] == pytest.approx(2, abs=0.1)
    assert sl["lru/theta"]["sens_mc"] == pytest.approx(2, abs=0.1)
    assert abs(sl["exponential/nu"]["sens_mc"]) < 0.1 and abs(sl["lru/nu"]["sens_mc"]) < 0.1
    assert sl["plain/lambda"]["h2_closed"] == pytest.approx(1, abs=0.01)
    # nu's sensitivity tends to 1/4 (ln lambda ~ lambda - 1)
    assert white.row("exponential", "nu", 0.999).sens_closed == pytest.approx(0.25, abs=1e-3)


def test_tanh_saturates(white):
    for lam in white.lambdas:
        r = white.row("tanh", "g", lam)
        assert r.agree is None and r.h2_mc < 1 and r.sens_mc < 1
    r = white.row("tanh", "g", 0.99)
    assert r.sens_mc / r.sens_closed < 1e-4 and r.h2_mc / r.h2_closed < 0.02
    assert abs(white.slopes()["tanh/g"]["sens_mc"]) < 0.3


def test_correlated_inputs():
    m = memory_sensitivity((0.6, 0.95), rho=0.6, sequences=3000, seed=1, cases=("plain", "normalised", "lru"))
    assert all(r.agree for r in m.rows)
    r = m.row("normalised", "lambda", 0.95)
    assert r.h2_closed == pytest.approx((1 + 0.6 * 0.95) / (1 - 0.6 * 0.95), rel=1e-12)
    assert abs(r.h2_mc - r.h2_closed) <= 4 * r.h2_se


def test_reproducible_and_independent_of_the_list():
    a = memory_sensitivity((0.9,), sequences=500, seed=3, cases=("plain",))
    b = memory_sensitivity((0.5, 0.9), sequences=500, seed=3, cases=("plain",))
    c = memory_sensitivity((0.9,), sequences=500, seed=4, cases=("plain",))
    assert a.rows[0] == b.row("plain", "lambda", 0.9)
    assert a.rows[0].h2_mc != c.rows[0].h2_mc
    assert a.rows[0].steps == BLOCK * math.ceil(8 / 0.1 / BLOCK) == 256


def test_to_dict_is_json(white):
    d = json.loads(json.dumps(white.to_dict(), allow_nan=False))
    assert d["lambdas"] == [0.5, 0.9, 0.99, 0.999] and d["agree"] is True and d["tolerance_se"] == 4.0
    assert len(d["rows"]) == 4 * 7 and set(d["slopes"]) == {f"{c}/{p}" for c, p, _ in CASES}
    row = d["rows"][0]
    assert {"case", "param", "lam", "h2_mc", "h2_se", "h2_closed", "sens_mc", "sens_se", "sens_closed", "h2_z",
            "sens_z", "agree", "steps", "sequences", "parameter_value"} <= set(row)
    assert white.table()[0][0] == "case" and len(white.table()) == 1 + 4 * 7


@pytest.mark.parametrize("kwargs,match", [
    (dict(lambdas=(0.5, 1.0)), "lambdas: expected values in \\(0, 1\\)"),
    (dict(lambdas=(0.0,)), "lambdas"),
    (dict(lambdas=(float("nan"),)), "lambdas: expected a finite number"),
    (dict(lambdas=()), "at least one"),
    (dict(rho=1.0), "rho"),
    (dict(sequences=1), "sequences"),
    (dict(seed=-1), "seed"),
    (dict(burn_in=0), "burn_in"),
    (dict(cases=("plain", "gru")), "cases: expected some of"),
    (dict(lambdas=(0.999999,)), "size: expected"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(InputError, match=match):
        memory_sensitivity(**kwargs)


def test_plot(tmp_path):
    m = memory_sensitivity((0.5, 0.9), sequences=200, cases=("plain", "normalised", "lru", "tanh"))
    fig = plot_memory(m, tmp_path / "m.png")
    assert (tmp_path / "m.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    gids = {a.get_gid() for ax in fig.axes for a in ax.get_children() if a.get_gid()}
    assert {"closed:plain/lambda", "mc:plain/lambda", "mc:tanh/g", "closed:lru/theta"} <= gids
    with pytest.raises(InputError, match="plot"):
        plot_memory(m, tmp_path / "m.txt")
