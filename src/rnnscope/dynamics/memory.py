"""The curse of memory (Zucchet & Orvieto 2024): without any exploding gradient, the sensitivity of a recurrent
state to its parameters blows up as the memory lengthens; normalisation and the eigenvalue parameterisation tame it.

The scalar linear recurrence with a gain gamma (gamma = 1: plain; gamma = sqrt(1 - lambda^2): LRU's normalisation)

    h_t = lambda h_{t-1} + gamma x_t,      0 < lambda < 1 (|lambda| < 1 for the formulas),

driven by unit-variance stationary Gaussian inputs of autocorrelation rho, the AR(1) process
x_t = rho x_{t-1} + sqrt(1 - rho^2) e_t (e_t ~ N(0, 1) white, so E[x_t x_{t-k}] = rho^|k|).

Forward variance. In steady state h_t = gamma sum_{k>=0} lambda^k x_{t-k}, so E[h_t^2] = gamma^2 G(lambda, lambda) with

    G(a, b) = sum_{j,k>=0} a^j b^k rho^|j-k| = (1 - rho^2 a b) / ((1 - a b)(1 - rho a)(1 - rho b))

(the diagonal j = k gives 1/(1 - ab); the terms k = j + m, m >= 1, give 1/(1 - ab) b rho/(1 - b rho), and j = k + m
the same with a; over the common denominator the numerator is 1 - rho^2 a b). Hence, for gamma = 1,

    E[h_t^2] = (1 + rho lambda) / ((1 - rho lambda)(1 - lambda^2))            (= 1/(1 - lambda^2) at rho = 0)

and with gamma^2 = 1 - lambda^2 (normalised) E[h_t^2] = (1 + rho lambda)/(1 - rho lambda): O(1), = 1 at rho = 0.

Parameter sensitivity. Let the parameter p set lambda(p) and gamma(p), with lambda' = dlambda/dp, gamma' = dgamma/dp.
Differentiating the recurrence gives the forward (RTRL) recursion

    s_t = dh_t/dp = lambda' h_{t-1} + lambda s_{t-1} + gamma' x_t,

and in steady state s_t = sum_k c_k x_{t-k} with c_k = gamma' lambda^k + gamma lambda' k lambda^(k-1). With
H = sum lambda^k x_{t-k} and K = sum k lambda^(k-1) x_{t-k}: E|H|^2 = G, E[H conj K] = dG/db, E|K|^2 = d2G/dadb
(at a = lambda, b = conj lambda), so

    E|s_t|^2 = gamma'^2 G + 2 gamma Re(gamma' conj(lambda') dG/db) + gamma^2 |lambda'|^2 d2G/dadb.

With A = dln G/da = -rho^2 b/N + b/(1 - ab) + rho/(1 - rho a) (N = 1 - rho^2 ab), B the same with a, b swapped, and
C = d2 ln G/dadb = 1/(1 - ab)^2 - rho^2/N^2: dG/db = G B and d2G/dadb = G (A B + C). These are the closed forms this
module computes (`closed_form`), exact for every case below and every rho. Worked out for real lambda:

    plain, p = lambda (gamma = 1):
        E[(dh/dlambda)^2] = (1 + 2 rho lambda + lambda^2 - rho^2 lambda^2 - 2 rho lambda^3 - rho^2 lambda^4)
                            / ((1 - rho lambda)^2 (1 - lambda^2)^3)
                          = (1 + lambda^2) / (1 - lambda^2)^3  at rho = 0       (sum_k k^2 mu^(k-1), mu = lambda^2)
    normalised, p = lambda (gamma = sqrt(1 - lambda^2), gamma' = -lambda/gamma, the dgamma/dlambda term included):
        E[(dh/dlambda)^2] = (1 + rho lambda) / ((1 - rho lambda)(1 - lambda^2)^2)   (= 1/(1 - lambda^2)^2 at rho = 0:
                            mu/(1-mu)^2 - 2 mu/(1-mu)^2 + (1+mu)/(1-mu)^2)
    exponential, p = nu with lambda = exp(-exp(nu)), normalised: dlambda/dnu = -lambda exp(nu) = lambda ln lambda,
        dh/dnu = (lambda ln lambda) dh/dlambda, E[(dh/dnu)^2] = (lambda ln lambda)^2 E[(dh/dlambda)^2] -> 1/4 as
        lambda -> 1 at rho = 0 (ln lambda ~ lambda - 1): the growth is gone.

So the plain sensitivity grows as (1 - lambda)^-3, the normalised one as (1 - lambda)^-2 although its forward
variance stays 1, and the exponential parameterisation of the normalised recurrence keeps it bounded.

Complex (lambda = r e^{i theta}, complex h, real inputs; circular complex inputs of the same autocorrelation give
the same E|.|^2, which see only E[x_t conj x_{t-k}] = rho^|k|): a = lambda, b = conj lambda above. At rho = 0:

    complex, p = r (gamma = 1):       E|h|^2 = 1/(1 - r^2),   E|dh/dr|^2 = (1 + r^2)/(1 - r^2)^3
    lru, lambda = exp(-exp(nu) + i theta), gamma = sqrt(1 - r^2) (LRU's parameterisation):
        p = nu:      E|h|^2 = 1,   E|dh/dnu|^2 = (r ln r)^2/(1 - r^2)^2 -> 1/4
        p = theta:   E|h|^2 = 1,   E|dh/dtheta|^2 = r^2 (1 + r^2)/(1 - r^2)^2      (dlambda/dtheta = i lambda):
                     the angle's sensitivity still grows as (1 - r)^-2; neither the normalisation nor nu reaches it.

tanh, for contrast: a dense h_t = tanh(g Q h_{t-1} + x_t), Q (hidden x hidden) Haar orthogonal, x_t AR(1) per unit,
g -> 1 plays lambda. Its linear version (no tanh) has per unit E[h^2] = 1/(1 - g^2) and E[(dh/dg)^2] =
(1 + g^2)/(1 - g^2)^3 at rho = 0 (Q orthogonal: ||Q^k x|| = ||x||), the `closed` reported for it (none at rho != 0,
where it depends on Q's spectrum). dh_T/dg is measured in forward mode, dh_t/dg = (1 - h_t^2)(Q h_{t-1} +
g Q dh_{t-1}/dg) step by step (equal to torch.func.jvp through the recurrence to 1e-12, tested;
tanh_sensitivity(autograd=True) runs the jvp itself, three times slower); saturation keeps both moments far below
the linear formula (`agree` is None: no agreement is expected).

Monte Carlo. Each lambda runs `sequences` independent sequences from h_0 = s_0 = 0 for steps = burn_in / (1 - lambda)
(at least 64, rounded up to whole blocks of 256 steps: the transient decays as (t (1 - lambda))^2 lambda^(2t), below
2e-5 of the stationary value at burn_in = 8) and keeps the final h_T, s_T: E[.] is their mean, the standard error
std/sqrt(sequences), and a row agrees when |MC - closed| <= 4 standard errors for both moments. The recursion above is
applied a block of 256 steps at a time as one matrix product, whose coefficients are the recursion's own responses
to unit inputs (`block_map`; linear, so exact: tested against the step-by-step recursion).
Float64 throughout; each lambda's inputs come from its own generator, seeded by (seed, lambda).

Example (sequences kept small for the doctest; the defaults take a few seconds):
    >>> m = memory_sensitivity((0.5, 0.9), sequences=2000, cases=("plain", "normalised"))
    >>> [(r.case, r.lam, round(r.sens_closed, 3)) for r in m.rows]
    [('plain', 0.5, 2.963), ('normalised', 0.5, 1.778), ('plain', 0.9, 263.887), ('normalised', 0.9, 27.701)]
    >>> all(r.agree for r in m.rows)
    True
"""

from __future__ import annotations

import cmath
import dataclasses
import math
import time
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from ..core.errors import InputError
from ..core.results import jsonable
from ..core.threads import torch_threads

__all__ = ["CASES", "Coefficients", "coefficients", "parameter_value", "closed_form", "ar1_inputs",
           "sensitivity_recurrence", "block_map", "MemoryRow", "MemorySensitivity", "memory_sensitivity",
           "plot_memory", "TOLERANCE_SE", "BLOCK", "MAX_WORK"]

# (case, parameter, what it is): the order of the rows for each lambda
CASES = (
    ("plain", "lambda", "h = lambda h + x"),
    ("normalised", "lambda", "h = lambda h + sqrt(1 - lambda^2) x"),
    ("exponential", "nu", "normalised, lambda = exp(-exp(nu))"),
    ("complex", "r", "h = lambda h + x, lambda = r e^{i theta}"),
    ("lru", "nu", "h = lambda h + sqrt(1 - r^2) x, lambda = exp(-exp(nu) + i theta)"),
    ("lru", "theta", "the same, sensitivity to the angle"),
    ("tanh", "g", "dense h = tanh(g Q h + x), Q orthogonal"),
)
_CASE_NAMES = tuple(dict.fromkeys(c for c, _, _ in CASES))
_LINEAR = tuple((c, p) for c, p, _ in CASES if c != "tanh")
TOLERANCE_SE = 4.0  # a Monte Carlo mean agrees with its closed form within this many standard errors
BLOCK = 256  # steps applied at once by one matrix product
MIN_STEPS = 64
MAX_WORK = 5 * 10**9  # sequences x steps (all lambdas): a few minutes at most
_CHUNK = 8192  # sequences per chunk (memory: _CHUNK x BLOCK float64)
_C128 = torch.complex128
_F64 = torch.float64


# ----------------------------------------------------------------------------- the cases

@dataclass(frozen=True)
class Coefficients:
    """A linear case at one point: h_t = lam h_{t-1} + gamma x_t and its parameter p, with lam_p = dlam/dp and
    gamma_p = dgamma/dp (lam, lam_p complex; gamma, gamma_p real)."""

    lam: complex
    lam_p: complex
    gamma: float
    gamma_p: float


def coefficients(case: str, param: str, lam: float, theta: float = math.pi / 4) -> Coefficients:
    """The analytic coefficients of a linear case at magnitude lam (= r for the complex cases).

    Example:
        >>> c = coefficients("exponential", "nu", 0.5)
        >>> round(c.lam_p.real, 6) == round(0.5 * math.log(0.5), 6), round(c.gamma, 6)
        (True, 0.866025)
    """
    r = float(lam)
    one_minus = 1.0 - r * r
    lnr = math.log(r)
    if (case, param) == ("plain", "lambda"):
        return Coefficients(complex(r), 1 + 0j, 1.0, 0.0)
    if (case, param) == ("normalised", "lambda"):
        g = math.sqrt(one_minus)
        return Coefficients(complex(r), 1 + 0j, g, -r / g)
    if (case, param) == ("exponential", "nu"):
        g, lp = math.sqrt(one_minus), r * lnr
        return Coefficients(complex(r), complex(lp), g, -r * lp / g)
    phase = cmath.exp(1j * theta)
    if (case, param) == ("complex", "r"):
        return Coefficients(r * phase, phase, 1.0, 0.0)
    if (case, param) == ("lru", "nu"):
        g, rp = math.sqrt(one_minus), r * lnr  # dr/dnu = r ln r
        return Coefficients(r * phase, rp * phase, g, -r * rp / g)
    if (case, param) == ("lru", "theta"):
        return Coefficients(r * phase, 1j * r * phase, math.sqrt(one_minus), 0.0)
    raise InputError(f"case: expected one of {', '.join(f'{c}/{p}' for c, p in _LINEAR)}, got {case}/{param}")


def parameter_value(case: str, param: str, lam: float, theta: float = math.pi / 4) -> float:
    """The parameter's value at magnitude lam: lam itself, nu = ln(-ln lam), or theta."""
    return {"nu": math.log(-math.log(lam)), "theta": theta}.get(param, lam)


def closed_form(c: Coefficients, rho: float = 0.0) -> tuple[float, float]:
    """(E|h|^2, E|dh/dp|^2) in steady state, exact (the module docstring's G, dG/db, d2G/dadb at a = lam,
    b = conj lam).

    Example (plain lambda = 0.9, white inputs: 1/(1 - 0.81) and 1.81/0.19^3):
        >>> [round(v, 6) for v in closed_form(coefficients("plain", "lambda", 0.9))]
        [5.263158, 263.886864]
    """
    a, b, rho = c.lam, c.lam.conjugate(), float(rho)
    ab = a * b
    n, d1 = 1 - rho * rho * ab, 1 - ab
    G = n / (d1 * (1 - rho * a) * (1 - rho * b))
    A = -rho * rho * b / n + b / d1 + rho / (1 - rho * a)
    B = -rho * rho * a / n + a / d1 + rho / (1 - rho * b)
    C = 1 / d1 ** 2 - rho * rho / n ** 2
    Gb, Gab = G * B, G * (A * B + C)
    h2 = c.gamma ** 2 * G
    s2 = (c.gamma_p ** 2 * G + 2 * c.gamma * (c.gamma_p * c.lam_p.conjugate() * Gb).real
          + c.gamma ** 2 * abs(c.lam_p) ** 2 * Gab)
    return float(h2.real), float(s2.real)


# ----------------------------------------------------------------------------- the recursions

def ar1_inputs(e: torch.Tensor, rho: float, x0=None) -> torch.Tensor:
    """x_t = rho x_{t-1} + sqrt(1 - rho^2) e_t for t = 1..T (e: (T, ...)); x_0 = x0 (default 0), so from a draw
    x0 ~ N(0, 1) the process is stationary with unit variance."""
    c = math.sqrt(1 - rho * rho)
    x = torch.zeros_like(e[0]) if x0 is None else torch.as_tensor(x0, dtype=e.dtype).expand_as(e[0])
    out = torch.empty_like(e)
    for t in range(e.shape[0]):
        x = rho * x + c * e[t]
        out[t] = x
    return out


def sensitivity_recurrence(x: torch.Tensor, c: Coefficients, h0=0.0, s0=0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Step by step, h_t = lam h_{t-1} + gamma x_t and s_t = lam_p h_{t-1} + lam s_{t-1} + gamma_p x_t over
    x (T, ...); returns (h_T, s_T), complex128 of x's trailing shape. s_T = dh_T/dp from h_0 = h0, s_0 = s0.

    Example (s_2 = lam_p h_1 + lam s_1 + gamma_p x_2 = 1 * 1 + 0.5 * 1 + 0 = 1.5 for the plain case):
        >>> h, s = sensitivity_recurrence(torch.ones(2, dtype=torch.float64), coefficients("plain", "lambda", 0.5))
        >>> float(h.real), float(s.real)
        (1.5, 1.0)
    """
    h = torch.zeros(x.shape[1:], dtype=_C128) + h0
    s = torch.zeros(x.shape[1:], dtype=_C128) + s0
    for t in range(x.shape[0]):
        h, s = c.lam * h + c.gamma * x[t], c.lam_p * h + c.lam * s + c.gamma_p * x[t]
    return h, s


def block_map(cases: list[Coefficients], rho: float, K: int = BLOCK) -> tuple[torch.Tensor, torch.Tensor]:
    """K steps of the AR(1) inputs and of every case's (h, s) recursion as one real linear map (A, E), read off the
    recursions' responses to unit inputs: w_{t+K} = w_t A + e E, with the state w = [x, then per case Re h, Im h,
    Re s, Im s] (B, 1 + 4n) and the noise e = [e_{t+1}, ..., e_{t+K}] (B, K). A (1+4n, 1+4n), E (K, 1+4n), float64."""
    n = len(cases)
    basis = torch.eye(K + 1, dtype=_F64)  # column j: unit in z_j, z = [x_t, e_{t+1..t+K}]
    x = ar1_inputs(basis[1:], rho, x0=basis[0])  # (K, K+1): x_{t+1..t+K} for each unit z_j
    cols = [x[-1]]
    A = torch.zeros(1 + 4 * n, 1 + 4 * n, dtype=_F64)
    unit = torch.tensor([1, 0], dtype=_C128), torch.tensor([0, 1], dtype=_C128)
    for i, c in enumerate(cases):
        h, s = sensitivity_recurrence(x, c)
        cols += [h.real, h.imag, s.real, s.imag]
        hh, ss = sensitivity_recurrence(torch.zeros(K, 2, dtype=_F64), c, h0=unit[0], s0=unit[1])
        b = 1 + 4 * i  # (h, s) -> (h', s'): complex coefficients as real 2 x 2 blocks, w A reads rows as inputs
        for src, (to_h, to_s) in enumerate(zip(hh.tolist(), ss.tolist())):
            for dst, co in ((b, to_h), (b + 2, to_s)):
                r0 = b + 2 * src
                A[r0, dst], A[r0 + 1, dst], A[r0, dst + 1], A[r0 + 1, dst + 1] = co.real, -co.imag, co.imag, co.real
    M = torch.stack(cols, dim=1)  # (K + 1, 1 + 4n): the response to [x_t, e]
    A[0] = M[0]
    return A, M[1:].contiguous()


def _seed(seed: int, lam: float, salt: int = 0) -> int:
    """A generator seed for one lambda: the same run for a lambda whatever else is in the list."""
    return int(np.random.SeedSequence([int(seed), int(round(lam * 2 ** 40)), salt]).generate_state(1, np.uint64)[0]
               % (2 ** 63))


def _steps(lam: float, burn_in: float) -> int:
    return BLOCK * math.ceil(max(burn_in / (1 - lam), MIN_STEPS) / BLOCK)


def _sums(v: torch.Tensor) -> torch.Tensor:
    """(2, n): the column sums of the samples v (B, n) and of their squares."""
    return torch.stack([v.sum(0), (v * v).sum(0)])


def _mean_se(sums: torch.Tensor, count: int) -> tuple[list[float], list[float]]:
    """The means and their standard errors (std / sqrt(count)) from _sums over count samples."""
    m = sums[0] / count
    var = (sums[1] - count * m * m).clamp_min(0) / max(count - 1, 1)
    return m.tolist(), (var / count).sqrt().tolist()


def _mc_linear(lam: float, cases: list[Coefficients], rho: float, sequences: int, steps: int, seed: int):
    """|h_T|^2 and |s_T|^2 of every case over `sequences` runs of `steps` steps: (means, stderrs), 2 per case."""
    A, E = block_map(cases, rho)
    n = len(cases)
    gen = torch.Generator().manual_seed(_seed(seed, lam))
    sums = torch.zeros(2, 2 * n, dtype=_F64)
    for start in range(0, sequences, _CHUNK):
        B = min(_CHUNK, sequences - start)
        w = torch.zeros(B, 1 + 4 * n, dtype=_F64)
        if rho:
            w[:, 0] = torch.randn(B, generator=gen, dtype=_F64)  # x_0 from the stationary N(0, 1)
        e = torch.empty(B, BLOCK, dtype=_F64)
        for _ in range(steps // BLOCK):
            torch.randn(B, BLOCK, generator=gen, dtype=_F64, out=e)
            w = torch.addmm(w @ A, e, E)
        o = w[:, 1:].reshape(B, n, 4)
        sums += _sums(torch.cat([o[..., 0] ** 2 + o[..., 1] ** 2, o[..., 2] ** 2 + o[..., 3] ** 2], dim=1))
    means, ses = _mean_se(sums, sequences)
    return [(means[i], ses[i], means[n + i], ses[n + i]) for i in range(n)]


def orthogonal(hidden: int, seed: int) -> torch.Tensor:
    """A Haar-random orthogonal matrix (QR of a Gaussian, signs fixed by diag R), seeded."""
    gen = torch.Generator().manual_seed(int(seed))
    q, r = torch.linalg.qr(torch.randn(hidden, hidden, generator=gen, dtype=_F64))
    return q * torch.sign(torch.diagonal(r))


def tanh_sensitivity(g: float, Q: torch.Tensor, sequences: int, steps: int, rho: float,
                     generator: torch.Generator, *, autograd: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(h_T, dh_T/dg), each (sequences, hidden), of h_t = tanh(g Q h_{t-1} + x_t) from h_0 = 0, x AR(1) per unit
    (x_0 ~ N(0, 1) when rho != 0, else 0; the noise drawn from `generator` a block of steps at a time).

    The derivative is forward mode: by default its recursion written out,
    dh_t/dg = (1 - h_t^2) * (Q h_{t-1} + g Q dh_{t-1}/dg) (three times faster), with autograd=True by
    torch.func.jvp through the whole recurrence; the two agree to 1e-12 (tested)."""
    c = math.sqrt(1 - rho * rho)
    hidden = Q.shape[0]
    Qt = Q.T.contiguous()

    def run(gg, tangent: bool):
        h = torch.zeros(sequences, hidden, dtype=_F64)
        dh = torch.zeros(sequences, hidden, dtype=_F64)
        x = (torch.randn(sequences, hidden, generator=generator, dtype=_F64) if rho
             else torch.zeros(sequences, hidden, dtype=_F64))
        for start in range(0, steps, BLOCK):
            e = torch.randn(min(BLOCK, steps - start), sequences, hidden, generator=generator, dtype=_F64)
            for t in range(e.shape[0]):
                x = rho * x + c * e[t]
                hq = h @ Qt
                h = torch.tanh(gg * hq + x)
                if tangent:
                    dh = (1 - h * h) * (hq + gg * (dh @ Qt))
        return h, dh

    if autograd:
        with warnings.catch_warnings():  # forward mode loads its decompositions by torch.jit.script, which warns
            warnings.filterwarnings("ignore", message=".*torch.jit.script.* is deprecated", category=DeprecationWarning)
            return torch.func.jvp(lambda gg: run(gg, False)[0], (torch.tensor(float(g), dtype=_F64),),
                                  (torch.tensor(1.0, dtype=_F64),))
    return run(float(g), True)


def _mc_tanh(g: float, rho: float, sequences: int, hidden: int, steps: int, seed: int):
    """Per unit E[h_T^2] and E[(dh_T/dg)^2] of the tanh network (tanh_sensitivity), averaged over the units within
    a sequence, then over the sequences (the standard error over sequences)."""
    Q = orthogonal(hidden, seed)
    gen = torch.Generator().manual_seed(_seed(seed, g, salt=1))
    with torch_threads(1):
        h, dh = tanh_sensitivity(g, Q, sequences, steps, rho, gen)
    (mh, ms), (eh, es) = _mean_se(_sums(torch.stack([(h * h).mean(1), (dh * dh).mean(1)], dim=1)), sequences)
    return mh, eh, ms, es


# ----------------------------------------------------------------------------- results

@dataclass(frozen=True)
class MemoryRow:
    """One case at one lambda (r for the complex cases, g for tanh): the Monte Carlo means of |h_T|^2 and
    |dh_T/dparam|^2 with their standard errors, and the closed forms (None where there is none: tanh at rho != 0).
    For tanh, h is per unit and `closed` is the linear network's formula (no agreement is expected)."""

    case: str
    param: str
    lam: float
    theta: float | None
    steps: int
    sequences: int
    h2_mc: float
    h2_se: float
    h2_closed: float | None
    sens_mc: float
    sens_se: float
    sens_closed: float | None

    @property
    def h2_z(self) -> float | None:
        """(MC - closed) / stderr of E|h|^2."""
        return _z(self.h2_mc, self.h2_se, self.h2_closed)

    @property
    def sens_z(self) -> float | None:
        """(MC - closed) / stderr of E|dh/dp|^2."""
        return _z(self.sens_mc, self.sens_se, self.sens_closed)

    @property
    def agree(self) -> bool | None:
        """|MC - closed| <= TOLERANCE_SE stderr for both moments; None for tanh (the linear formula is a contrast)."""
        if self.case == "tanh" or self.h2_z is None or self.sens_z is None:
            return None
        return abs(self.h2_z) <= TOLERANCE_SE and abs(self.sens_z) <= TOLERANCE_SE

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d.update(h2_z=self.h2_z, sens_z=self.sens_z, agree=self.agree,
                 parameter_value=parameter_value(self.case, self.param, self.lam, self.theta))
        return jsonable(d)


def _z(mc: float, se: float, closed: float | None) -> float | None:
    return None if closed is None or se <= 0 else (mc - closed) / se


def _slope(xs: list[float], ys: list[float | None]) -> float | None:
    pts = [(math.log(x), math.log(y)) for x, y in zip(xs, ys) if y is not None and y > 0]
    if len(pts) < 2 or len({p[0] for p in pts}) < 2:
        return None
    mx, my = sum(p[0] for p in pts) / len(pts), sum(p[1] for p in pts) / len(pts)
    return sum((p[0] - mx) * (p[1] - my) for p in pts) / sum((p[0] - mx) ** 2 for p in pts)


@dataclass(frozen=True)
class MemorySensitivity:
    """The rows of `memory_sensitivity` (for each lambda, one per case and parameter) and how they were made."""

    lambdas: tuple[float, ...]
    rho: float
    theta: float
    sequences: int
    seed: int
    burn_in: float
    hidden: int
    tanh_sequences: int
    cases: tuple[str, ...]
    rows: tuple[MemoryRow, ...]
    seconds: float

    def row(self, case: str, param: str, lam: float) -> MemoryRow:
        return next(r for r in self.rows if (r.case, r.param) == (case, param) and r.lam == lam)

    def series(self) -> list[tuple[str, str]]:
        """The (case, param) pairs present, in CASES order."""
        return [(c, p) for c, p, _ in CASES if any((r.case, r.param) == (c, p) for r in self.rows)]

    def slopes(self) -> dict:
        """Growth exponents: the least-squares slope of ln E|dh/dp|^2 (and ln E|h|^2) against ln 1/(1 - lambda)
        over the upper half of the lambdas (at least two; the asymptotic regime), MC and closed form."""
        lams = sorted(self.lambdas)
        top = lams[len(lams) - max(2, math.ceil(len(lams) / 2)):] if len(lams) >= 2 else []
        out = {}
        for c, p in self.series():
            rs = [self.row(c, p, lam) for lam in top]
            xs = [1 / (1 - r.lam) for r in rs]
            out[f"{c}/{p}"] = {"sens_mc": _slope(xs, [r.sens_mc for r in rs]),
                               "sens_closed": _slope(xs, [r.sens_closed for r in rs]),
                               "h2_mc": _slope(xs, [r.h2_mc for r in rs]),
                               "h2_closed": _slope(xs, [r.h2_closed for r in rs])}
        return out

    def table(self) -> list[list[str]]:
        """The rows as text, header first: case, param, lambda, E|h|^2 MC +- se, closed, E|dh/dp|^2 MC +- se,
        closed, agree (yes / NO; for tanh MC/linear of the sensitivity)."""
        out = [["case", "param", "lambda", "E[h^2] MC ± se", "closed", "E[(dh/dp)^2] MC ± se", "closed", "agree"]]
        for r in self.rows:
            verdict = ("yes" if r.agree else "NO") if r.agree is not None else (
                "-" if r.sens_closed is None else f"MC/linear {r.sens_mc / r.sens_closed:.2g}")
            out.append([r.case, r.param, f"{r.lam:g}", f"{r.h2_mc:.4g} ± {r.h2_se:.2g}", _num(r.h2_closed),
                        f"{r.sens_mc:.4g} ± {r.sens_se:.2g}", _num(r.sens_closed), verdict])
        return out

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "rows"}
        d.update(tolerance_se=TOLERANCE_SE, block=BLOCK,
                 descriptions={f"{c}/{p}": what for c, p, what in CASES},
                 agree=all(r.agree is not False for r in self.rows),
                 slopes=self.slopes(), rows=[r.to_dict() for r in self.rows])
        return jsonable(d)

    def _repr_html_(self) -> str:  # a notebook's view (core.display): the settings, table(), plot_memory's figure
        from ..core.display import fields, html_card
        return html_card("The curse of memory: E|h|^2 and E|dh/dp|^2 by Monte Carlo against the closed forms",
                         fields(self), lambda: plot_memory(self), rows=self.table())


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:.4g}"


def _check(lambdas, rho, sequences, seed, burn_in, hidden, tanh_sequences, theta, cases) -> tuple[float, ...]:
    def real(what, v):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise InputError(f"{what}: expected a finite number, got {v!r}")
        return float(v)

    def whole(what, v, lo):
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise InputError(f"{what}: expected an integer >= {lo}, got {v!r}")

    lams = tuple(lambdas) if not isinstance(lambdas, (int, float)) else (lambdas,)
    if not lams:
        raise InputError("lambdas: expected at least one value in (0, 1), got none")
    for v in lams:
        if not 0 < real("lambdas", v) < 1:
            raise InputError(f"lambdas: expected values in (0, 1) (the memory 1/(1 - lambda) > 1), got {v!r}")
    if not abs(real("rho", rho)) < 1:
        raise InputError(f"rho: expected an input autocorrelation with |rho| < 1, got {rho!r}")
    if not real("burn_in", burn_in) > 0:
        raise InputError(f"burn_in: expected a number > 0 (steps in units of 1/(1 - lambda)), got {burn_in!r}")
    real("theta", theta)
    whole("sequences", sequences, 2)
    whole("seed", seed, 0)
    whole("hidden", hidden, 1)
    whole("tanh_sequences", tanh_sequences, 2)
    bad = [c for c in cases if c not in _CASE_NAMES]
    if bad or not cases:
        raise InputError(f"cases: expected some of {', '.join(_CASE_NAMES)}, got {', '.join(map(str, bad)) or 'none'}")
    lams = tuple(sorted({float(v) for v in lams}))
    steps = sum(_steps(v, burn_in) for v in lams)
    work = steps * (sequences * any(c != "tanh" for c in cases) + tanh_sequences * hidden * ("tanh" in cases))
    if work > MAX_WORK:
        raise InputError(f"size: expected sequences x steps <= {MAX_WORK:.0e} (a few minutes), got {work:.2g} "
                         f"({steps} steps over the lambdas); use fewer sequences or lambdas further from 1")
    return lams


def memory_sensitivity(lambdas=(0.5, 0.9, 0.99, 0.999), *, rho: float = 0.0, sequences: int = 10000, seed: int = 0,
                       burn_in: float = 8.0, theta: float = math.pi / 4, hidden: int = 16, tanh_sequences: int = 256,
                       cases=_CASE_NAMES) -> MemorySensitivity:
    """E|h|^2 and E|dh/dp|^2 in steady state by Monte Carlo against the closed forms (module docstring), for each
    lambda in (0, 1) (sorted, duplicates dropped) and each case of `cases`: plain, normalised, exponential,
    complex, lru (two rows: nu and theta), tanh.

    rho: the inputs' autocorrelation (|rho| < 1); sequences: independent runs per lambda (tanh_sequences for the tanh
    network of `hidden` units); burn_in: steps in units of 1/(1 - lambda); theta: the complex cases' angle.
    An InputError for a bad argument, or for more than MAX_WORK sequences x steps."""
    lams = _check(lambdas, rho, sequences, seed, burn_in, hidden, tanh_sequences, theta, cases)
    t0 = time.perf_counter()
    linear = [(c, p) for c, p in _LINEAR if c in cases]
    rows = []
    for lam in lams:
        steps = _steps(lam, burn_in)
        coefs = [coefficients(c, p, lam, theta) for c, p in linear]
        mc = _mc_linear(lam, coefs, float(rho), sequences, steps, seed) if linear else []
        for (c, p), co, (h2, h2se, s2, s2se) in zip(linear, coefs, mc):
            h2c, s2c = closed_form(co, rho)
            rows.append(MemoryRow(c, p, lam, theta if c in ("complex", "lru") else None, steps, sequences,
                                  h2, h2se, h2c, s2, s2se, s2c))
        if "tanh" in cases:
            h2, h2se, s2, s2se = _mc_tanh(lam, float(rho), tanh_sequences, hidden, steps, seed)
            h2c, s2c = closed_form(coefficients("plain", "lambda", lam), 0.0) if rho == 0 else (None, None)
            rows.append(MemoryRow("tanh", "g", lam, None, steps, tanh_sequences, h2, h2se, h2c, s2, s2se, s2c))
    return MemorySensitivity(lams, float(rho), float(theta), sequences, seed, float(burn_in), hidden, tanh_sequences,
                             tuple(c for c in _CASE_NAMES if c in cases), tuple(rows), time.perf_counter() - t0)


# ----------------------------------------------------------------------------- the figure

_STYLE = {("plain", "lambda"): ("C0", "o", "-", r"plain, $\partial h/\partial\lambda$"),
          ("normalised", "lambda"): ("C1", "s", "-",
                                     r"normalised $\gamma=\sqrt{1-\lambda^2}$, $\partial h/\partial\lambda$"),
          ("exponential", "nu"): ("C2", "^", "-", r"normalised, $\lambda=e^{-e^\nu}$, $\partial h/\partial\nu$"),
          ("complex", "r"): ("C3", "D", "--", r"complex $\lambda=re^{i\theta}$, $\partial h/\partial r$"),
          ("lru", "nu"): ("C4", "v", "--", r"LRU $\lambda=e^{-e^\nu+i\theta}$, normalised, $\partial h/\partial\nu$"),
          ("lru", "theta"): ("C5", "P", "--", r"LRU, $\partial h/\partial\theta$"),
          ("tanh", "g"): ("k", "X", ":", r"tanh, $W=gQ$, $\partial h/\partial g$ per unit (linear: the plain line)")}
_H_LABEL = {("plain", "lambda"): "plain", ("normalised", "lambda"): "normalised (= exponential)",
            ("complex", "r"): "complex", ("lru", "nu"): "LRU (normalised complex)",
            ("tanh", "g"): "tanh, per unit (linear: the plain line)"}


def plot_memory(result: MemorySensitivity, path=None):
    """Log-log of E|h|^2 (left) and E|dh/dp|^2 (right) against the memory 1/(1 - lambda): closed forms as lines,
    Monte Carlo means as markers with 2-stderr error bars; tanh's points against the linear formula (the plain
    line at rho = 0). Lines carry gids "closed:<case>/<param>", markers "mc:<case>/<param>". Returns the Figure."""
    from ..core.plots import check_plot_path, new_figure, save_figure
    if path is not None:
        check_plot_path(path)
    fig = new_figure((12.5, 5.4))
    axes = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    lo, hi = min(result.lambdas), max(result.lambdas)
    xs = np.geomspace(1 / (1 - lo) / 1.25, 1 / (1 - hi) * 1.25, 120)
    grid = [float(1 - 1 / v) for v in xs if v > 1]
    slopes = result.slopes()
    series = result.series()
    for k, (c, p) in enumerate(series):
        color, marker, ls, label = _STYLE[(c, p)]
        rows = [r for r in result.rows if (r.case, r.param) == (c, p)]
        x = np.array([1 / (1 - r.lam) for r in rows]) * (1 + 0.025 * (k - len(series) / 2))  # apart, visibly
        for ax, which in ((axes[0], "h2"), (axes[1], "sens")):
            if which == "h2" and (c, p) not in _H_LABEL:
                continue
            y = [getattr(r, f"{which}_mc") for r in rows]
            err = [2 * getattr(r, f"{which}_se") for r in rows]
            if c != "tanh":
                cl = [closed_form(coefficients(c, p, v, result.theta), result.rho)[which == "sens"] for v in grid]
                ax.plot([1 / (1 - v) for v in grid], cl, color=color, ls=ls, lw=1.4, gid=f"closed:{c}/{p}")
            sl = slopes.get(f"{c}/{p}", {}).get(f"{which}_mc")
            name = (_H_LABEL[(c, p)] if which == "h2" else label) + ("" if sl is None else f"  (slope {sl:.2f})")
            if c == "tanh" and result.rho != 0:
                name = name.replace("(linear: the plain line)", "")
            ax.errorbar(x, y, yerr=err, color=color, marker=marker, ms=6, ls="none", capsize=3, mfc="white"
                        if c != "tanh" else color, gid=f"mc:{c}/{p}", label=name)
    for ax, what in ((axes[0], r"forward variance $E|h_T|^2$"),
                     (axes[1], r"parameter sensitivity $E|\partial h_T/\partial p|^2$")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(r"memory $1/(1-\lambda)$  ($\lambda$ = r for the complex cases, g for tanh)")
        ax.set_ylabel(what)
        ax.grid(True, which="both", alpha=0.25)
        ax.legend(fontsize=7.5, loc="upper left")
    axes[0].set_title("Forward: normalisation keeps the variance O(1)", fontsize=10)
    axes[1].set_title(r"Backward: normalised still $\propto(1-\lambda)^{-2}$; $\nu$ removes the growth, $\theta$ keeps it",
                      fontsize=10)
    fig.suptitle(f"The curse of memory (Zucchet & Orvieto 2024): lines closed form, markers Monte Carlo ± 2 s.e.\n"
                 f"ρ = {result.rho:g}, θ = {result.theta:.3g}, {result.sequences} sequences per λ, tanh "
                 f"{result.tanh_sequences} sequences x {result.hidden} units; slopes of log-log over the largest λ",
                 fontsize=10)
    if path is not None:
        save_figure(fig, path)
    return fig
