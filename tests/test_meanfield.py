"""meanfield.py against an independent adaptive quadrature, closed forms and simulated random networks.

The reference below shares nothing with the library: scipy.integrate.quad over the N(0, 1) density
(not Gauss-Hermite), math.tanh instead of torch, scipy.optimize.brentq for the fixed point and for the
critical line.
"""

import math

import numpy as np
import pytest
from scipy.integrate import quad
from scipy.optimize import brentq

import rnnscope.dynamics.meanfield as mf
from rnnscope.core.errors import InputError


# --------------------------------------------------------------------------------------------------
# reference: adaptive quadrature + brentq


def _gauss_mean(f, q):
    """E_z[f(sqrt(q) z)], z ~ N(0, 1), by adaptive quadrature on the two half-lines (relu's kink is at 0)."""
    if q == 0.0:
        return f(0.0)
    s = math.sqrt(q)

    def integrand(z):
        return f(s * z) * math.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)

    # |z| > 40 carries mass below 1e-340: the finite interval loses nothing
    return sum(quad(integrand, a, b, epsabs=1e-16, epsrel=1e-13, limit=400)[0] for a, b in ((-40.0, 0.0), (0.0, 40.0)))


def _sigmoid(x):
    return 0.5 * (1.0 + math.tanh(0.5 * x))  # overflow-free form of 1 / (1 + e^-x)


PHI = {
    "tanh": (math.tanh, lambda x: 1.0 - math.tanh(x) ** 2),
    "sigmoid": (_sigmoid, lambda x: _sigmoid(x) * (1.0 - _sigmoid(x))),
    "relu": (lambda x: max(x, 0.0), lambda x: 1.0 if x > 0 else 0.0),
}


def ref_q_star(sw2, sb2, name="tanh"):
    phi, _ = PHI[name]
    hi = sw2 + sb2 if name != "relu" else 1e6  # |phi| <= 1 keeps V(q) below sigma_w^2 + sigma_b^2

    def V(q):
        return sw2 * _gauss_mean(lambda a: phi(a) ** 2, q) + sb2

    if V(0.0) == 0.0:
        # q = 0 is a fixed point; the other one is the root of V(q)/q - 1, if V(q)/q > 1 near 0
        tiny = 1e-12
        if V(tiny) / tiny <= 1.0:
            return 0.0
        return brentq(lambda q: V(q) / q - 1.0, tiny, hi, xtol=1e-15, rtol=1e-14)
    return brentq(lambda q: V(q) - q, 0.0, hi, xtol=1e-15, rtol=1e-14)


def ref_chi1(sw2, sb2, name="tanh"):
    _, dphi = PHI[name]
    return sw2 * _gauss_mean(lambda a: dphi(a) ** 2, ref_q_star(sw2, sb2, name))


def ref_critical(sb2, name="tanh", lo=0.5, hi=5.0):
    return brentq(lambda s: ref_chi1(s, sb2, name) - 1.0, lo, hi, xtol=1e-13, rtol=1e-14)


# --------------------------------------------------------------------------------------------------
# against the reference


SB2_LINE = [0.0, 0.001, 0.01, 0.05, 0.1, 0.2, 0.5]


def test_critical_line_matches_adaptive_quadrature():
    got = mf.critical_line(SB2_LINE)
    assert len(got) == len(SB2_LINE)
    for sb2, value in zip(SB2_LINE, got):
        # At sigma_b^2 = 0, chi_1 - 1 grows only like (sigma_w^2 - 1)^2 / 3 above the root, so the reference's
        # brentq itself places it only to ~1e-8 (1e-6 allowed). Elsewhere the difference is Gauss-Hermite's
        # error: 2e-9 at sigma_b^2 = 0.5 (q* = 1.97), 1e-14 for sigma_b^2 <= 0.1 (module docstring).
        assert value == pytest.approx(ref_critical(sb2), abs=1e-6 if sb2 == 0 else 1e-8), sb2
        assert mf.critical_sigma_w2(sb2) == value
    assert got[0] == 1.0  # the closed form: q* = 0 and chi_1 = sigma_w^2 up to sigma_w^2 = 1


@pytest.mark.parametrize("sigma_w, sigma_b", [(0.5, 0.1), (1.2, 0.0), (1.0, 0.05), (1.5, 0.3), (2.0, 0.5), (1.8, 1.0)])
def test_q_star_and_chi1_match_adaptive_quadrature(sigma_w, sigma_b):
    sw2, sb2 = sigma_w**2, sigma_b**2
    q_ref, chi_ref = ref_q_star(sw2, sb2), ref_chi1(sw2, sb2)
    # 1e-7: q* <= 2.9 on this grid, where the 201-point Gauss-Hermite rule errs by < 1e-7 (module docstring;
    # 1e-9 below q* = 2)
    assert mf.q_star(sw2, sb2) == pytest.approx(q_ref, rel=1e-7, abs=1e-15)
    assert mf.chi1(sw2, sb2) == pytest.approx(chi_ref, rel=1e-7)
    m = mf.mean_field(sigma_w, sigma_b)
    assert (m.activation, m.sigma_w, m.sigma_b) == ("tanh", sigma_w, sigma_b)
    assert m.q_star == pytest.approx(q_ref, rel=1e-7, abs=1e-15)
    assert m.chi1 == pytest.approx(chi_ref, rel=1e-7)
    assert m.predicted_rate_per_step == pytest.approx(0.5 * math.log(chi_ref), abs=1e-7)
    assert m.xi == pytest.approx(-1.0 / math.log(chi_ref), rel=1e-5)  # negative above the critical line
    assert (m.xi < 0) == (chi_ref > 1)


def test_relu_q_star_matches_adaptive_quadrature():
    # the library uses the closed form; the reference integrates relu^2 and relu'^2 numerically
    for sw2, sb2 in [(0.5, 0.2), (1.5, 0.3), (1.9, 1.0)]:
        assert mf.q_star(sw2, sb2, "relu") == pytest.approx(ref_q_star(sw2, sb2, "relu"), rel=1e-10)
        assert mf.chi1(sw2, sb2, "relu") == pytest.approx(ref_chi1(sw2, sb2, "relu"), rel=1e-10)


def test_sigmoid_critical_point_within_the_documented_quadrature_error():
    ref = ref_critical(0.1, "sigmoid", lo=50.0, hi=200.0)
    err201 = abs(mf.critical_sigma_w2(0.1, "sigmoid") - ref)
    err370 = abs(mf.critical_sigma_w2(0.1, "sigmoid", points=370) - ref)
    # The crossing sits at q* ~ 50 where Gauss-Hermite is coarse: 0.4% at 201 points (module docstring)
    assert err201 < 5e-3 * ref
    assert err370 < err201  # and more points help


# --------------------------------------------------------------------------------------------------
# closed forms


@pytest.mark.parametrize("sigma_w", [0.3, 0.7, 0.95, 1.0])
def test_tanh_without_bias_below_one(sigma_w):
    sw2 = sigma_w**2
    assert mf.q_star(sw2, 0.0) == 0.0
    assert mf.chi1(sw2, 0.0) == pytest.approx(sw2, rel=1e-15)
    m = mf.mean_field(sigma_w, 0.0)
    assert m.critical_sigma_w2 == 1.0
    if sigma_w == 1.0:
        assert m.xi == math.inf and m.predicted_rate_per_step == 0.0
        assert m.to_dict()["xi"] is None  # JSON has no Infinity
    else:
        assert m.xi == pytest.approx(-1.0 / math.log(sw2), rel=1e-14)
        assert m.predicted_rate_per_step == pytest.approx(math.log(sigma_w), rel=1e-14)


@pytest.mark.parametrize("sw2, sb2", [(0.5, 0.0), (1.0, 0.25), (1.99, 0.1), (2.0, 0.1), (4.0, 0.0), (9.0, 1.0)])
def test_relu_closed_forms(sw2, sb2):
    assert mf.chi1(sw2, sb2, "relu") == sw2 / 2  # phi' is 0 or 1 with probability 1/2
    expected_q = sb2 / (1 - sw2 / 2) if sw2 < 2 else math.inf  # q = sigma_w^2 q / 2 + sigma_b^2
    assert mf.q_star(sw2, sb2, "relu") == pytest.approx(expected_q, rel=1e-15)
    assert mf.critical_sigma_w2(sb2, "relu") == 2.0


@pytest.mark.parametrize("sw2, sb2", [(0.25, 0.0), (0.5, 0.3), (0.99, 0.01), (1.5, 0.2)])
def test_identity_closed_forms(sw2, sb2):
    assert mf.chi1(sw2, sb2, "identity") == sw2
    expected_q = sb2 / (1 - sw2) if sw2 < 1 else math.inf  # q = sigma_w^2 q + sigma_b^2
    assert mf.q_star(sw2, sb2, "identity") == pytest.approx(expected_q, rel=1e-14)
    assert mf.critical_sigma_w2(sb2, "identity") == 1.0


def test_to_dict_keys_and_non_finite_values():
    d = mf.mean_field(1.5, 0.1, "relu").to_dict()  # sigma_w^2 = 2.25 >= 2: the variance diverges
    assert list(d) == ["activation", "sigma_w", "sigma_b", "q_star", "chi1", "xi", "critical_sigma_w2",
                       "predicted_rate_per_step"]
    assert d["q_star"] is None
    assert d["chi1"] == pytest.approx(2.25 / 2, rel=1e-15)
    assert d["xi"] == pytest.approx(-1 / math.log(1.125), rel=1e-14)
    assert d["predicted_rate_per_step"] == pytest.approx(0.5 * math.log(1.125), rel=1e-14)


def test_chi1_increases_with_sigma_w2_for_tanh():
    # the critical line is unique because chi_1 is increasing in sigma_w^2 at fixed sigma_b^2 (tanh)
    # (checked on the library's values: q* <= 11 on this grid, where the quadrature's error, <= 1e-3, is far
    # below the step between neighbouring points; the reference agrees at the ends)
    sw2 = np.linspace(0.05, 10.0, 50)
    for sb2 in [0.0, 0.01, 0.5, 2.0]:
        chi = np.array([mf.chi1(s, sb2) for s in sw2])
        assert np.all(np.diff(chi) > 1e-3), sb2
        assert chi[0] == pytest.approx(ref_chi1(sw2[0], sb2), rel=1e-8)
        assert chi[-1] == pytest.approx(ref_chi1(sw2[-1], sb2), rel=2e-3)


def test_no_crossing_in_the_bracket_gives_nan(monkeypatch):
    # chi_1 <= sigma_w^2 gamma^2 = sigma_w^2 < 1 on [1e-6, 1e-3]: no critical point there
    monkeypatch.setattr(mf, "CRITICAL_BRACKET", (1e-6, 1e-3))
    assert math.isnan(mf.critical_sigma_w2(0.1))
    assert mf.mean_field(0.5, 0.1).to_dict()["critical_sigma_w2"] is None


# --------------------------------------------------------------------------------------------------
# simulated random networks


def test_simulated_network_matches_q_star_and_chi1():
    sigma_w, sigma_b, N, T, B = 1.5, 0.3, 1000, 200, 32
    rng = np.random.default_rng(0)
    sum_a2 = sum_dphi2 = 0.0
    # float32 halves the memory traffic of the 6400 matrix-vector products; the statistics agree with a
    # float64 run to ~1e-6 (chaos amplifies rounding by e^(0.03 T) ~ 400 in 200 steps), far below 5%.
    f32 = np.float32
    for _ in range(B):
        W_hh = rng.standard_normal((N, N), dtype=f32) * f32(sigma_w / math.sqrt(N))  # (S, S), var sigma_w^2 / S
        b_h = rng.standard_normal(N, dtype=f32) * f32(sigma_b)                        # (S,), var sigma_b^2
        h = np.tanh(rng.standard_normal(N, dtype=f32))                                # (S,)
        for t in range(T):
            a = W_hh @ h + b_h
            h = np.tanh(a)
            if t >= T // 2:  # the last 100 steps; sums in float64
                sum_a2 += float(np.mean(a * a, dtype=np.float64))
                sum_dphi2 += float(np.mean((1.0 - h * h) ** 2, dtype=np.float64))
    n = B * (T - T // 2)
    q_emp, chi_emp = sum_a2 / n, sigma_w**2 * sum_dphi2 / n
    # Tolerance 5%. This point is close to the edge of chaos (chi_1 = 1.06), where one network of N = 1000
    # fluctuates a lot from the mean field: over 128 networks the per-network time averages scatter by 6%
    # (q) and 2.6% (chi_1) with a finite-N bias of about +1% (q) and -0.5% (chi_1). Pooling B = 32
    # networks brings the standard error to ~1.1% and ~0.5%: 5% is > 3.5 standard errors beyond the bias.
    assert q_emp == pytest.approx(ref_q_star(sigma_w**2, sigma_b**2), rel=0.05)
    assert chi_emp == pytest.approx(ref_chi1(sigma_w**2, sigma_b**2), rel=0.05)
    assert q_emp == pytest.approx(mf.q_star(sigma_w**2, sigma_b**2), rel=0.05)
    assert chi_emp == pytest.approx(mf.chi1(sigma_w**2, sigma_b**2), rel=0.05)


# --------------------------------------------------------------------------------------------------
# bad inputs


@pytest.mark.parametrize("call, what", [
    (lambda: mf.mean_field(0.0, 0.1), "sigma-w"),
    (lambda: mf.mean_field(-1.0, 0.1), "sigma-w"),
    (lambda: mf.mean_field(float("nan"), 0.1), "sigma-w"),
    (lambda: mf.mean_field(float("inf"), 0.1), "sigma-w"),
    (lambda: mf.mean_field("1.5", 0.1), "sigma-w"),
    (lambda: mf.mean_field(True, 0.1), "sigma-w"),
    (lambda: mf.mean_field(1e200, 0.1), "sigma-w"),  # sigma_w^2 overflows
    (lambda: mf.mean_field(1.0, 1e200), "sigma-b"),
    (lambda: mf.mean_field(1.5, -0.1), "sigma-b"),
    (lambda: mf.mean_field(1.5, float("inf")), "sigma-b"),
    (lambda: mf.mean_field(1.5, 0.1, "softplus"), "activation"),
    (lambda: mf.mean_field(1.5, 0.1, points=2), "points"),
    (lambda: mf.mean_field(1.5, 0.1, points=201.0), "points"),
    (lambda: mf.mean_field(1.5, 0.1, points=371), "points"),
    (lambda: mf.q_star(0.0, 0.1), "sigma-w2"),
    (lambda: mf.q_star(1.0, -1e-3), "sigma-b2"),
    (lambda: mf.chi1(float("nan"), 0.1), "sigma-w2"),
    (lambda: mf.chi1(1.0, 0.1, None), "activation"),
    (lambda: mf.critical_sigma_w2(-0.5), "sigma-b2"),
    (lambda: mf.critical_sigma_w2(0.1, points=1), "points"),
    (lambda: mf.critical_line([0.1, -0.2]), "sigma-b2"),
    (lambda: mf.critical_line([[0.1, 0.2]]), "sigma-b2"),
    (lambda: mf.critical_line("0.1"), "sigma-b2 values"),
    (lambda: mf.critical_line(0.1), "sigma-b2 values"),
])
def test_bad_inputs(call, what):
    with pytest.raises(InputError, match="expected") as info:
        call()
    assert str(info.value).startswith(what + ":")
