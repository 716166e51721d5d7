"""Mean-field theory of random vanilla RNNs: q*, chi_1, the depth scale and the critical line.

Poole et al. 2016, Schoenholz et al. 2017, Chen et al. 2018. The network, with no input:

    h_t = phi(a_t),   a_t = W_hh h_{t-1} + b_h,   W_ij ~ N(0, sigma_w^2 / S),   b_i ~ N(0, sigma_b^2)

sigma_w and sigma_b are standard deviations; the functions below that take sigma_w2 = sigma_w^2 and
sigma_b2 = sigma_b^2 work in variances, as the theory is written. For large S the pre-activations
a_t,i are Gaussian with variance q_t (the same for every unit), and q_t follows the variance map

    q_t = V(q_{t-1}),   V(q) = sigma_w^2 E_z[phi(sqrt(q) z)^2] + sigma_b^2,   z ~ N(0, 1).

- q* is the fixed point V(q*) = q* that the map reaches from q_0 = sigma_w^2 + sigma_b^2 (units of a^2).
- chi_1 = sigma_w^2 E_z[phi'(sqrt(q*) z)^2] is the mean squared singular value of the one-step
  Jacobian diag(phi'(a_t)) W_hh: a backpropagated gradient's squared norm grows by chi_1 per step,
  so its norm changes by (1/2) ln chi_1 per step (natural log; the predicted maximal Lyapunov exponent).
- xi = -1 / ln chi_1 is the depth scale (steps): squared gradient norms go as exp(-t / xi).
  xi = inf at chi_1 = 1; for chi_1 > 1 the formula gives a negative xi, reported as given: |xi| is then
  the number of steps over which the squared norm grows by a factor e.
- The critical line (edge of chaos) is chi_1 = 1: ordered (vanishing) below, chaotic (exploding) above.

Expectations are Gauss-Hermite quadratures (probabilists' Hermite, numpy's hermegauss, `points` nodes,
201 by default) of the torch phi, phi' of rnnscope.core.activations on float64 tensors, for the smooth
activations tanh and sigmoid. relu and identity use their closed forms, which are exact:

    identity: V(q) = sigma_w^2 q + sigma_b^2,     chi_1 = sigma_w^2,     critical sigma_w^2 = 1
    relu:     V(q) = sigma_w^2 q / 2 + sigma_b^2, chi_1 = sigma_w^2 / 2, critical sigma_w^2 = 2

(relu' jumps at 0, and an odd Gauss-Hermite rule puts its heaviest node, weight 0.088 for 201 points,
exactly there: the quadrature would give chi_1 = 0.456 sigma_w^2 instead of 0.5 sigma_w^2.)

Accuracy. Gauss-Hermite converges fast while phi(sqrt(q) z) is smooth on the scale of the node spacing;
tanh has poles at z = +-i pi / (2 sqrt(q)), so the rule degrades as q grows. Relative error of the
201-point rule against adaptive quadrature (scipy quad):

    q                 0.1     1       2       5       10      30      100
    E[tanh^2]         3e-16   1e-16   5e-12   1e-07   2e-05   2e-03   2e-02
    E[tanh'^2]        0       5e-15   5e-10   9e-06   1e-03   7e-02   7e-01
    E[sigmoid'^2]     0       2e-16   2e-16   3e-13   8e-09   2e-04   4e-02

On the tanh critical line q* < 2 for sigma_b^2 <= 0.5: the critical sigma_w^2 agrees with adaptive
quadrature to 2e-9 at sigma_b^2 = 0.5, 4e-13 at 0.2 and 1e-14 for sigma_b^2 <= 0.1. Sigmoid's
crossing sits at q* ~ 50: its critical sigma_w^2 (102.60 at sigma_b = 0) is ~0.4% below the
adaptive-quadrature value (103.01); 370 points (MAX_POINTS: numpy's hermegauss overflows beyond)
give 103.02. The error falls roughly like exp(-c n / q) for n points.

Example:
    >>> mf = mean_field(sigma_w=1.0, sigma_b=0.0)
    >>> mf.q_star, mf.chi1, mf.xi
    (0.0, 1.0, inf)
    >>> round(critical_sigma_w2(0.1), 4)
    1.9861
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np
import torch

from ..core.activations import ACTIVATIONS, Activation, get_activation
from ..core.errors import InputError
from ..core.results import jsonable

__all__ = ["MeanField", "mean_field", "q_star", "chi1", "critical_sigma_w2", "critical_line",
           "CRITICAL_BRACKET", "MAX_POINTS"]

# The sigma_w^2 interval searched for chi_1 = 1. Below 1e-6 chi_1 <= sigma_w^2 gamma^2 is tiny for every
# activation; 1e4 is far beyond any initialisation in use (sigmoid's crossing is near 103).
CRITICAL_BRACKET = (1e-6, 1e4)

_Q_RTOL = 1e-13          # relative accuracy of q*
_SW2_ATOL = 1e-13        # absolute accuracy of the critical sigma_w^2 (plus a few ulps)
_EPS = float(np.finfo(np.float64).eps)
# numpy's hermegauss overflows (NaN weights) beyond 370 nodes.
MAX_POINTS = 370


@dataclass(frozen=True)
class MeanField:
    """The mean-field facts of a random vanilla RNN at one (sigma_w, sigma_b).

    activation           'tanh', 'sigmoid', 'relu' or 'identity'
    sigma_w, sigma_b     standard deviations: W_ij ~ N(0, sigma_w^2 / S), b_i ~ N(0, sigma_b^2)
    q_star               fixed point of q = sigma_w^2 E[phi(sqrt(q) z)^2] + sigma_b^2 (units of a^2);
                         inf where the variance map diverges (relu: sigma_w^2 >= 2, identity: >= 1)
    chi1                 sigma_w^2 E[phi'(sqrt(q*) z)^2] (dimensionless, per step)
    xi                   -1 / ln chi1, steps; inf at chi1 = 1, negative (as the formula gives) when chi1 > 1
    critical_sigma_w2    the sigma_w^2 with chi1 = 1 at this sigma_b^2 (NaN if there is none in CRITICAL_BRACKET)
    predicted_rate_per_step  (1/2) ln chi1: natural-log change of a gradient norm per step
    """

    activation: str
    sigma_w: float
    sigma_b: float
    q_star: float
    chi1: float
    xi: float
    critical_sigma_w2: float
    predicted_rate_per_step: float

    def to_dict(self) -> dict:
        """Plain JSON values; non-finite numbers (xi = inf at criticality, q* = inf, NaN) become None."""
        return jsonable({f.name: getattr(self, f.name) for f in dataclasses.fields(self)})


# ---------------------------------------------------------------------------------------------------
# validation


def _number(x, what: str, *, positive: bool) -> float:
    expected = "a positive finite number" if positive else "a non-negative finite number"
    if isinstance(x, bool) or not isinstance(x, numbers.Real):
        raise InputError(f"{what}: expected {expected}, got {x!r}")
    v = float(x)
    if not math.isfinite(v) or v < 0 or (positive and v == 0):
        raise InputError(f"{what}: expected {expected}, got {x!r}")
    return v


def _points(points) -> int:
    if isinstance(points, bool) or not isinstance(points, numbers.Integral) or not 3 <= int(points) <= MAX_POINTS:
        raise InputError(f"points: expected an integer from 3 to {MAX_POINTS}, got {points!r}")
    return int(points)


def _activation(activation: str | Activation) -> Activation:
    act = get_activation(activation)  # raises InputError for an unknown name
    if ACTIVATIONS.get(act.name) is not act:
        raise InputError(f"activation: expected one of {', '.join(ACTIVATIONS)}, got {act.name!r}")
    return act


# ---------------------------------------------------------------------------------------------------
# numerics


@functools.lru_cache(maxsize=8)
def _hermegauss(points: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights/sqrt(2 pi), read-only: a pure function of `points`, cached because hermegauss
    solves an eigenproblem (milliseconds) and a critical-line search asks for the same rule each call."""
    z, w = np.polynomial.hermite_e.hermegauss(points)
    w = w / math.sqrt(2 * math.pi)
    z.flags.writeable = False
    w.flags.writeable = False
    return z, w


class _Gauss:
    """E_z[f(sqrt(q) z)], z ~ N(0, 1), by Gauss-Hermite quadrature with weight exp(-z^2/2)."""

    def __init__(self, points: int):
        z, w = _hermegauss(points)
        self.z = torch.tensor(z)  # (points,) float64 nodes (a copy: torch wants writeable memory)
        self.w = torch.tensor(w)  # (points,) weights summing to 1

    def mean(self, f: Callable[[torch.Tensor], torch.Tensor], q: float) -> float:
        if q == 0.0:  # a point mass at 0: exact, without the weights' rounding
            return float(f(torch.zeros(1, dtype=torch.float64))[0])
        return float(torch.dot(self.w, f(math.sqrt(q) * self.z)))


def _brent(f: Callable[[float], float], a: float, b: float, fa: float, fb: float,
           rtol: float, atol: float, maxiter: int = 500) -> float:
    """A root of f in [a, b] with f(a) f(b) <= 0: Brent's method (zeroin, Brent 1973, chapter 4).

    Inverse quadratic / secant steps, with a bisection whenever they would not shrink the bracket fast
    enough; stops when the bracket is below 4 eps |b| + max(atol, rtol |b|).
    """
    if fa == 0.0:
        return a
    if fb == 0.0:
        return b
    if (fa > 0) == (fb > 0):
        raise ValueError("bracket: expected f(a) and f(b) of opposite signs")  # internal: never user-facing
    c, fc = a, fa
    d = e = b - a
    for _ in range(maxiter):
        if (fb > 0 and fc > 0) or (fb < 0 and fc < 0):  # the root lies between a and b: c <- a
            c, fc = a, fa
            d = e = b - a
        if abs(fc) < abs(fb):  # b is the best estimate so far
            a, b, c = b, c, b
            fa, fb, fc = fb, fc, fb
        tol = 2.0 * _EPS * abs(b) + 0.5 * max(atol, rtol * abs(b))
        m = 0.5 * (c - b)
        if abs(m) <= tol or fb == 0.0:
            return b
        if abs(e) < tol or abs(fa) <= abs(fb):
            d = e = m  # bisection
        else:
            s = fb / fa
            if a == c:  # secant
                p, q = 2.0 * m * s, 1.0 - s
            else:       # inverse quadratic interpolation
                q, r = fa / fc, fb / fc
                p = s * (2.0 * m * q * (q - r) - (b - a) * (r - 1.0))
                q = (q - 1.0) * (r - 1.0) * (s - 1.0)
            if p > 0:
                q = -q
            else:
                p = -p
            e_old, e = e, d
            if 2.0 * p < 3.0 * m * q - abs(tol * q) and p < abs(0.5 * e_old * q):
                d = p / q
            else:
                d = e = m
        a, fa = b, fb
        b += d if abs(d) > tol else (tol if m > 0 else -tol)
        fb = f(b)
    return b


def _q_star(sw2: float, sb2: float, act: Activation, gauss: _Gauss) -> float:
    if act.name == "identity":  # V(q) = sigma_w^2 q + sigma_b^2
        if sw2 < 1.0:
            return sb2 / (1.0 - sw2)
        return math.inf
    if act.name == "relu":      # V(q) = sigma_w^2 q / 2 + sigma_b^2 (E[relu(sqrt(q) z)^2] = q / 2)
        if sw2 < 2.0:
            return sb2 / (1.0 - sw2 / 2.0)
        return math.inf

    # Bounded phi (tanh, sigmoid): |phi| < 1, so V maps [0, q0], q0 = sigma_w^2 + sigma_b^2, into itself;
    # V is increasing and concave (Poole et al. 2016), hence V(q) - q has one root in (0, q0] when
    # V(0) > 0. Iterating q <- V(q) from q0 reaches it monotonically (no damping needed: an increasing
    # map cannot oscillate), but at the rate V'(q*), which tends to 1 at the sigma_b = 0 transition;
    # Brent's method on V(q) - q over the same bracket finds the same point in ~10 evaluations.
    def V(q: float) -> float:
        return sw2 * gauss.mean(lambda a: act.phi(a) ** 2, q) + sb2

    q0 = sw2 + sb2
    v0 = V(0.0)  # = sigma_w^2 phi(0)^2 + sigma_b^2
    if v0 > 0.0:
        return _brent(lambda q: V(q) - q, 0.0, q0, v0, V(q0) - q0, _Q_RTOL, 0.0)
    # V(0) = 0 (tanh with sigma_b = 0): q = 0 is a fixed point. Its slope is V'(0) = sigma_w^2 phi'(0)^2;
    # if <= 1 it attracts and, V being concave, no other fixed point exists: q* = 0 (tanh, sigma_w <= 1).
    if sw2 * float(act.dphi(torch.zeros(1, dtype=torch.float64))[0]) ** 2 <= 1.0:
        return 0.0
    # Otherwise 0 repels and q* > 0 is the root of V(q)/q - 1, which tends to sigma_w^2 phi'(0)^2 - 1 > 0
    # as q -> 0 (dividing by q removes the root at 0).
    lo = 1e-200
    h_lo, h_hi = V(lo) / lo - 1.0, V(q0) / q0 - 1.0
    if h_lo <= 0.0:  # sigma_w^2 phi'(0)^2 exceeds 1 by less than the quadrature's rounding
        return 0.0
    return _brent(lambda q: V(q) / q - 1.0, lo, q0, h_lo, h_hi, _Q_RTOL, 0.0)


def _chi1(sw2: float, sb2: float, act: Activation, gauss: _Gauss, q: float | None = None) -> float:
    """chi_1 at q (default: at q*)."""
    if act.name == "identity":
        return sw2
    if act.name == "relu":  # phi' = 1 with probability 1/2 for every q > 0 (and in the limit q -> 0+)
        return sw2 / 2.0
    if q is None:
        q = _q_star(sw2, sb2, act, gauss)
    return sw2 * gauss.mean(lambda a: act.dphi(a) ** 2, q)


def _critical(sb2: float, act: Activation, gauss: _Gauss) -> float:
    if act.name == "identity":
        return 1.0
    if act.name == "relu":
        return 2.0
    phi0 = float(act.phi(torch.zeros(1, dtype=torch.float64))[0])
    dphi0 = float(act.dphi(torch.zeros(1, dtype=torch.float64))[0])
    if sb2 == 0.0 and phi0 == 0.0:
        # tanh, sigma_b = 0: for sigma_w^2 <= 1/phi'(0)^2, q* = 0 and chi_1 = sigma_w^2 phi'(0)^2 <= 1; just
        # above, chi_1 - 1 ~ (4/3) q*^2 > 0 (second order: a root-finder could place it only to ~1e-7).
        # The crossing is exactly sigma_w^2 = 1/phi'(0)^2 = 1.
        return 1.0 / dphi0 ** 2

    def f(sw2: float) -> float:
        return _chi1(sw2, sb2, act, gauss) - 1.0

    # Scan upwards in factors of 2 to the first sign change, then Brent. The scan starts at 1/gamma^2
    # (chi_1 <= gamma^2 sigma_w^2 rules out any crossing below) and never evaluates far beyond the
    # crossing, where q* is so large that the quadrature no longer resolves phi' (module docstring).
    lo, hi = CRITICAL_BRACKET
    a = max(lo, 1.0 / act.gamma ** 2)
    if a > hi:
        return math.nan
    fa = f(a)
    if fa >= 0.0:  # only possible at a = lo: the crossing, if any, lies below the bracket
        return a if fa == 0.0 else math.nan
    while a < hi:
        b = min(2.0 * a, hi)
        fb = f(b)
        if fb >= 0.0:
            return _brent(f, a, b, fa, fb, 0.0, _SW2_ATOL)
        a, fa = b, fb
    return math.nan


# ---------------------------------------------------------------------------------------------------
# public API


def q_star(sigma_w2: float, sigma_b2: float, activation: str = "tanh", points: int = 201) -> float:
    """The fixed point q* = sigma_w^2 E_z[phi(sqrt(q*) z)^2] + sigma_b^2 of the variance map, z ~ N(0, 1).

    sigma_w2 = sigma_w^2 > 0 and sigma_b2 = sigma_b^2 >= 0 are variances (W_ij ~ N(0, sigma_w^2 / S)).
    Returns the pre-activation variance (units of a^2) that the map reaches from q_0 = sigma_w^2 +
    sigma_b^2, to 1e-13 relative for tanh and sigmoid (Gauss-Hermite with `points` nodes). Closed forms:
    tanh with sigma_b = 0 and sigma_w^2 <= 1: q* = 0; relu: sigma_b^2 / (1 - sigma_w^2 / 2);
    identity: sigma_b^2 / (1 - sigma_w^2). Divergence is reported as math.inf: relu with sigma_w^2 >= 2,
    identity with sigma_w^2 >= 1 (at exactly 2 resp. 1 with sigma_b = 0 every q is a fixed point and none
    is selected: also inf). tanh and sigmoid are bounded, so their q* <= sigma_w^2 + sigma_b^2 is finite.

    Example:
        >>> round(q_star(2.0, 0.0), 6), q_star(1.0, 0.5, "relu"), q_star(2.0, 0.5, "relu")
        (0.617965, 1.0, inf)
    """
    sw2 = _number(sigma_w2, "sigma-w2", positive=True)
    sb2 = _number(sigma_b2, "sigma-b2", positive=False)
    act = _activation(activation)
    return _q_star(sw2, sb2, act, _Gauss(_points(points)))


def chi1(sigma_w2: float, sigma_b2: float, activation: str = "tanh", points: int = 201) -> float:
    """chi_1 = sigma_w^2 E_z[phi'(sqrt(q*) z)^2] at the fixed point q* of q_star (dimensionless, per step).

    The mean squared singular value of the one-step Jacobian diag(phi'(a)) W_hh: gradient norms change by
    (1/2) ln chi_1 per step. Closed forms: tanh with sigma_b = 0, sigma_w^2 <= 1: chi_1 = sigma_w^2;
    relu: sigma_w^2 / 2 (phi' is 0 or 1 with probability 1/2, for every q, also q* = inf);
    identity: sigma_w^2.

    Example:
        >>> chi1(0.64, 0.0), chi1(3.0, 1.0, "relu")
        (0.64, 1.5)
    """
    sw2 = _number(sigma_w2, "sigma-w2", positive=True)
    sb2 = _number(sigma_b2, "sigma-b2", positive=False)
    act = _activation(activation)
    return _chi1(sw2, sb2, act, _Gauss(_points(points)))


def critical_sigma_w2(sigma_b2: float, activation: str = "tanh", points: int = 201) -> float:
    """The sigma_w^2 on the critical line chi_1(sigma_w^2, sigma_b^2) = 1 (edge of chaos) at this sigma_b^2.

    Searched in CRITICAL_BRACKET = [1e-6, 1e4]: from max(1e-6, 1/gamma^2) (chi_1 <= gamma^2 sigma_w^2 rules
    out anything below; gamma = sup |phi'|) upwards in factors of 2 to the first sign change of chi_1 - 1,
    then Brent's method to ~1e-13 absolute. chi_1 is increasing in sigma_w^2 at fixed sigma_b^2 for tanh
    (checked numerically in tests/test_meanfield.py on a grid of sigma_w^2 in [0.05, 10] at sigma_b^2 =
    0, 0.01, 0.5, 2), so the crossing is unique; for sigmoid chi_1 also rises with sigma_w^2 (roughly
    like sigma_w / (6 sqrt(pi)) for large sigma_w^2), and its crossing is only as accurate as the
    quadrature (0.4% at 201 points: see the module docstring).
    Returns math.nan when chi_1 - 1 has one sign on the whole bracket (no critical point there).
    Closed forms: tanh at sigma_b^2 = 0: 1 (q* = 0 and chi_1 = sigma_w^2 up to 1, chi_1 > 1 beyond);
    identity: 1 and relu: 2 for every sigma_b^2 (chi_1 does not depend on q*). Sigmoid (phi' <= 1/4)
    crosses near sigma_w^2 = 103 at sigma_b = 0.

    Example:
        >>> critical_sigma_w2(0.0), critical_sigma_w2(0.3, "relu"), round(critical_sigma_w2(0.5), 4)
        (1.0, 2.0, 2.8432)
    """
    sb2 = _number(sigma_b2, "sigma-b2", positive=False)
    act = _activation(activation)
    return _critical(sb2, act, _Gauss(_points(points)))


def critical_line(sigma_b2_values: Iterable[float], activation: str = "tanh", points: int = 201) -> list[float]:
    """critical_sigma_w2 at each sigma_b^2 of a 1-D sequence (list, tuple, NumPy array or tensor): len(values) floats.

    Example:
        >>> [round(v, 3) for v in critical_line([0.0, 0.1, 0.5])]
        [1.0, 1.986, 2.843]
    """
    if isinstance(sigma_b2_values, (str, bytes)) or not isinstance(sigma_b2_values, Iterable):
        raise InputError(f"sigma-b2 values: expected a 1-D sequence of non-negative finite numbers, "
                         f"got {sigma_b2_values!r}")
    if isinstance(sigma_b2_values, torch.Tensor):
        sigma_b2_values = sigma_b2_values.detach().cpu().tolist()
    elif isinstance(sigma_b2_values, np.ndarray):
        sigma_b2_values = sigma_b2_values.tolist()
    values = list(sigma_b2_values)
    sb2s = [_number(v, "sigma-b2", positive=False) for v in values]  # a nested list fails here
    act = _activation(activation)
    gauss = _Gauss(_points(points))
    return [_critical(sb2, act, gauss) for sb2 in sb2s]


def mean_field(sigma_w: float, sigma_b: float, activation: str = "tanh", points: int = 201) -> MeanField:
    """q*, chi_1, xi, the critical sigma_w^2 and the predicted gradient rate at (sigma_w, sigma_b).

    sigma_w > 0 and sigma_b >= 0 are standard deviations: W_ij ~ N(0, sigma_w^2 / S), b_i ~ N(0, sigma_b^2).
    xi = -1 / ln chi_1 (steps; inf at chi_1 = 1, negative when chi_1 > 1), predicted_rate_per_step =
    (1/2) ln chi_1 (natural log per step; -inf if chi_1 = 0).

    Example:
        >>> mf = mean_field(1.5, 0.3)
        >>> round(mf.q_star, 4), round(mf.chi1, 4), round(mf.xi, 2), round(mf.predicted_rate_per_step, 4)
        (0.9608, 1.061, -16.89, 0.0296)
    """
    sw = _number(sigma_w, "sigma-w", positive=True)
    sb = _number(sigma_b, "sigma-b", positive=False)
    act = _activation(activation)
    gauss = _Gauss(_points(points))
    sw2, sb2 = sw * sw, sb * sb
    for what, x, x2 in (("sigma-w", sigma_w, sw2), ("sigma-b", sigma_b, sb2)):
        if not math.isfinite(x2):
            raise InputError(f"{what}: expected a number whose square is finite, got {x!r}")
    q = _q_star(sw2, sb2, act, gauss)
    c = _chi1(sw2, sb2, act, gauss, q)
    log_chi = math.log(c) if c > 0 else -math.inf
    xi = math.inf if log_chi == 0.0 else -1.0 / log_chi
    return MeanField(activation=act.name, sigma_w=sw, sigma_b=sb, q_star=q, chi1=c, xi=xi,
                     critical_sigma_w2=_critical(sb2, act, gauss), predicted_rate_per_step=0.5 * log_chi)
