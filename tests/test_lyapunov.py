"""lyapunov: the QR (Benettin) spectrum against closed forms, determinants, and mean-field theory computed here.

References: ln |eig(W)| for a linear RNN (exact); sum of all exponents = (1/T) sum_t ln |det J_t| with J_t from
torch.func.jacrev (an identity of the QR method: prod_i R_ii = det of the product); the mean-field rate
(1/2) ln chi_1 by scipy quadrature in this file, and ln rho(W) below the edge of chaos (Sompolinsky, Crisanti & Sommers 1988; mean field as in Poole et al. 2016).
"""

import math

import numpy as np
import pytest
import torch

import rnnscope as rs
from rnnscope.core.errors import InputError
from rnnscope.gradients.lyapunov import kaplan_yorke, lyapunov

F64 = torch.float64


def _linear(W):
    S = W.shape[0]
    return rs.ElmanCell(W, torch.ones(S, 1, dtype=F64), torch.zeros(S, dtype=F64), "identity")


@pytest.mark.parametrize("every,x_value", [(1, 0.0), (1, 0.7), (5, 0.0), (8, 0.3)])
def test_linear_rnn_exponents_are_log_abs_eigenvalues(every, x_value):
    """W = V diag(lam) V^-1 with distinct real |lam| (non-normal V): exponents = ln |lam| sorted, to 1e-6."""
    gen = torch.Generator().manual_seed(1)
    lam = torch.tensor([1.3, -1.1, 0.9, 0.6, -0.35, 0.1], dtype=F64)
    V = torch.randn(6, 6, generator=gen, dtype=F64) + 2 * torch.eye(6, dtype=F64)
    W = V @ torch.diag(lam) @ torch.linalg.inv(V)
    T = 800
    x = torch.full((T, 1, 1), x_value, dtype=F64)  # constant input: the Jacobian is W on every step
    ly = lyapunov(_linear(W), x, torch.randn(1, 6, generator=gen, dtype=F64), every=every, warmup=200)
    ref = np.sort(np.log(np.abs(np.linalg.eigvals(W.numpy()))))[::-1]
    np.testing.assert_allclose(ly.exponents.numpy(), ref, atol=1e-6, rtol=0)
    assert ly.max_exponent == pytest.approx(ref[0], abs=1e-6)


def test_linear_normal_rotations_with_complex_pairs():
    """W = Q blockdiag(r_i R(theta_i)) Q^T: every pair of exponents is ln r_i (complex eigenvalue pairs)."""
    gen = torch.Generator().manual_seed(2)
    Q, _ = torch.linalg.qr(torch.randn(6, 6, generator=gen, dtype=F64))
    blocks = []
    for r, th in ((1.2, 0.3), (0.8, 1.1), (0.5, 2.0)):
        blocks.append(r * torch.tensor([[math.cos(th), -math.sin(th)], [math.sin(th), math.cos(th)]], dtype=F64))
    W = Q @ torch.block_diag(*blocks) @ Q.T
    ly = lyapunov(_linear(W), torch.zeros(300, 1, 1, dtype=F64), every=3, warmup=50)
    ref = np.log(np.abs(np.linalg.eigvals(W.numpy())))
    np.testing.assert_allclose(ly.exponents.numpy(), np.sort(ref)[::-1], atol=1e-9, rtol=0)


@pytest.mark.parametrize("kind", ["elman", "pal", "lstm", "gru"])
def test_sum_of_exponents_is_mean_log_det_of_jacrev_jacobians(kind):
    cell = rs.random_cell(kind, "tanh", hidden=5, input_size=2, gain=1.4, seed=3)
    T = 60
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(T, 1, 2, generator=gen, dtype=F64)
    ly = lyapunov(cell, x, every=1 if kind in ("lstm", "gru") else 3)  # the LSTM spreads > 10 decades in 3 steps
    tr = rs.unroll(cell, x)
    logdet = 0.0
    for t in range(T):
        J = torch.func.jacrev(lambda s: cell.step(x[t], s.unsqueeze(0))[0])(tr.states[t, 0])
        logdet += float(torch.linalg.slogdet(J).logabsdet)
    assert float(ly.exponents.sum()) == pytest.approx(logdet / T, rel=1e-8)  # LSTM: ill-conditioned J, ~1e-9
    assert list(ly.exponents) == sorted(ly.exponents.tolist(), reverse=True)


def test_top_exponent_matches_growth_of_explicit_product():
    """The top exponent over T steps is (1/T) ln sigma_1(J_T ... J_1) up to O(1/T) frame effects."""
    cell = rs.random_cell("elman", "tanh", hidden=8, gain=2.0, seed=5)
    T = 400
    x = torch.randn(T, 1, 1, generator=torch.Generator().manual_seed(6), dtype=F64)
    ly = lyapunov(cell, x)
    tr = rs.unroll(cell, x)
    logn, P = 0.0, torch.eye(8, dtype=F64)
    for t in range(T):
        P = cell.jacobian(x[t], tr.states[t])[0] @ P
        n = torch.linalg.matrix_norm(P, 2)
        logn, P = logn + math.log(float(n)), P / n
    assert ly.max_exponent == pytest.approx(logn / T, abs=0.02)


def _chi1_quad(g, sigma_b=0.0):
    """(1/2) ln chi_1 for tanh by scipy quadrature (independent of rnnscope.dynamics.meanfield)."""
    from scipy import integrate, optimize
    pdf = lambda z: math.exp(-z * z / 2) / math.sqrt(2 * math.pi)  # noqa: E731

    def E(f, q):
        return integrate.quad(lambda z: f(math.sqrt(q) * z) * pdf(z), -12, 12, limit=200)[0]
    fixed = lambda q: g * g * E(lambda a: math.tanh(a) ** 2, q) + sigma_b**2 - q  # noqa: E731
    q = optimize.brentq(fixed, 1e-9, 100.0) if fixed(1e-9) > 0 else 0.0
    chi = g * g * (E(lambda a: (1 - math.tanh(a) ** 2) ** 2, q) if q > 0 else 1.0)
    return 0.5 * math.log(chi)


@pytest.mark.slow
@pytest.mark.parametrize("g", [0.8, 0.95, 1.5, 2.0, 3.0])
def test_random_tanh_networks_n400_against_theory(g):
    """h_{t+1} = W tanh(h_t), W ~ N(0, g^2/N), N = 400, 3000 steps: above the edge of chaos
    the maximal exponent is the mean-field (1/2) ln chi_1 (quadrature here) within 0.03 (finite-N and finite-T
    fluctuations, averaged over 2 networks); below it the state sits at 0 and the exponent is ln rho(W)."""
    N, T = 400, 3000
    vals, refs = [], []
    for seed in range(2):
        gen = torch.Generator().manual_seed(100 + seed)
        W = g * torch.randn(N, N, generator=gen, dtype=F64) / math.sqrt(N)
        cell = rs.PalCell(W, torch.zeros(N, 1, dtype=F64), torch.zeros(N, dtype=F64), "tanh")
        ly = lyapunov(cell, torch.zeros(T, 1, 1, dtype=F64), torch.randn(1, N, generator=gen, dtype=F64), k=1, warmup=500)
        vals.append(ly.max_exponent)
        refs.append(math.log(float(torch.linalg.eigvals(W).abs().max())) if g < 1 else _chi1_quad(g))
    assert np.mean(vals) == pytest.approx(np.mean(refs), abs=0.03)


def test_kaplan_yorke_dimension_by_hand():
    assert kaplan_yorke([0.5, -0.2, -1.0]) == pytest.approx(2 + 0.3 / 1.0)
    assert kaplan_yorke([0.1, -0.4]) == pytest.approx(1 + 0.1 / 0.4)
    assert kaplan_yorke([-0.1, -0.4]) == 0.0
    assert kaplan_yorke([0.3, 0.2]) == 2.0


def test_stderr_shrinks_with_length_and_to_dict():
    cell = rs.random_cell("elman", "tanh", hidden=32, gain=2.0, seed=7)
    gen = torch.Generator().manual_seed(8)
    errs = []
    for T in (1000, 4000):
        ly = lyapunov(cell, torch.randn(T, 1, 1, generator=gen, dtype=F64), k=2, warmup=100)
        errs.append(ly.stderr)
    assert 0 < errs[1] < errs[0] and 0.2 < errs[1] / errs[0] < 0.9  # ~ 1/sqrt(4) = 0.5 for independent blocks
    d = ly.to_dict()
    assert set(d) >= {"exponents", "max_exponent", "kaplan_yorke_dimension", "stderr", "seconds"} and len(d["exponents"]) == 2


def test_every_too_large_for_the_spread_is_refused():
    W = torch.diag(torch.tensor([1.3, 0.1], dtype=F64))  # ln 13 = 2.56 per step between the two directions
    with pytest.raises(InputError, match="every: expected the 2 directions"):
        lyapunov(_linear(W), torch.zeros(100, 1, 1, dtype=F64), every=25)


@pytest.mark.parametrize("kw,match", [({"k": 9}, "k: expected at most"), ({"every": 0}, "every: expected"),
                                      ({"warmup": 50}, "length: expected more than"), ({"k": 0}, "k: expected")])
def test_bad_arguments(kw, match):
    cell = rs.random_cell("elman", "tanh", hidden=8, seed=0)
    with pytest.raises(InputError, match=match):
        lyapunov(cell, torch.zeros(40, 1, 1, dtype=F64), **kw)


def _qr_loop_from_random_start(W, T, warmup, seed):
    """An independent top-exponent loop for h_t = W tanh(h_{t-1}): a random start N(0, 1), the transient
    discarded, v <- J_t v / ||J_t v|| with J_t = W diag(1 - tanh^2(h_{t-1})), the logs of the norms averaged."""
    gen = torch.Generator().manual_seed(seed)
    h = torch.randn(W.shape[0], generator=gen, dtype=F64)
    v = torch.randn(W.shape[0], generator=gen, dtype=F64)
    total = 0.0
    for t in range(1, T + 1):
        w = W @ ((1 - torch.tanh(h) ** 2) * v)  # J_t v
        h = W @ torch.tanh(h)
        n = float(w.norm())
        v = w / n
        if t > warmup:
            total += math.log(n)
    return total / (T - warmup)


def test_autonomous_run_starts_off_the_fixed_point_and_measures_the_attractor():
    """N = 200, g = 3, T = 3000, no input, no bias: the default start is random and lands on the chaotic
    attractor: the top exponent agrees with an independent loop from another random start (0.02: finite-T
    fluctuations) and with the mean-field (1/2) ln chi_1 (0.05: finite N), far from ln rho(W)."""
    N, g, T = 200, 3.0, 3000
    gen = torch.Generator().manual_seed(11)
    W = g * torch.randn(N, N, generator=gen, dtype=F64) / math.sqrt(N)
    cell = rs.PalCell(W, torch.zeros(N, 1, dtype=F64), torch.zeros(N, dtype=F64), "tanh")
    ly = lyapunov(cell, torch.zeros(T, 1, 1, dtype=F64), k=1)
    assert ly.start == "random N(0, 1^2), seed 0" and ly.warmup == T // 10 and ly.warnings == ()
    assert ly.max_exponent == pytest.approx(_qr_loop_from_random_start(W, T, T // 10, seed=5), abs=0.02)
    assert ly.max_exponent == pytest.approx(_chi1_quad(g), abs=0.05)
    ln_rho = math.log(float(torch.linalg.eigvals(W).abs().max()))
    assert ln_rho - ly.max_exponent > 0.5
    # the fixed point on request: from zeros the state never moves, the exponent is ln rho(W), and it says so
    at0 = lyapunov(cell, torch.zeros(T, 1, 1, dtype=F64), k=1, start="zeros")
    assert at0.start == "zeros" and at0.max_exponent == pytest.approx(ln_rho, abs=5e-3)
    assert len(at0.warnings) == 1 and "fixed point" in at0.warnings[0]
    assert at0.to_dict()["start"] == "zeros" and at0.to_dict()["warnings"] == list(at0.warnings)


def test_start_rules_and_the_fixed_point_test():
    cell = rs.random_cell("elman", "tanh", hidden=4, gain=0.5, seed=1)
    s0, how = rs.initial_state(cell, torch.zeros(20, 3, 1, dtype=F64), start="auto", scale=2.0, seed=4)
    ref = torch.as_tensor(2.0 * np.random.default_rng([4, 3]).standard_normal((3, 4)))
    assert how == "random N(0, 2^2), seed 4" and torch.equal(s0, ref)
    assert rs.initial_state(cell, torch.ones(20, 3, 1, dtype=F64))[1] == "zeros"  # driven: zeros
    given = torch.ones(3, 4, dtype=F64)
    assert rs.initial_state(cell, torch.zeros(20, 3, 1, dtype=F64), given) == (given, "given")
    with pytest.raises(InputError, match="start: expected one of auto, zeros, random, got 'warm'"):
        rs.initial_state(cell, torch.zeros(5, 1, 1, dtype=F64), start="warm")
    # gain 0.5 < 1: from a random start the state decays onto 0; a driven state keeps moving
    tr = rs.unroll(cell, torch.zeros(400, 3, 1, dtype=F64), s0)
    moves = (tr.states[1:] - tr.states[:-1]).abs().amax(-1)  # (T, B)
    first_still = int((moves <= 1e-9 * (1 + tr.states[1:].abs().amax(-1))).all(1).nonzero()[0])
    assert not tr.fixed_point() and tr.fixed_point(after=first_still) and not tr.fixed_point(after=first_still - 1)
    assert not rs.unroll(cell, torch.randn(400, 3, 1, dtype=F64)).fixed_point(after=100)


def test_warmup_not_a_multiple_of_every_is_not_counted():
    """With warmup 2 and a QR every 5 the counted steps are T - warmup, and the exponents equal those of a QR at
    every step with the same warm-up (the diagonal of a product of upper-triangular factors is the product of their
    diagonals: the same sum of logs), whatever the split; a long run converges to ln 2, ln 0.5."""
    from rnnscope.core.cells import ElmanCell
    cell = ElmanCell(torch.diag(torch.tensor([2.0, 0.5], dtype=torch.float64)), torch.zeros(2, 1, dtype=torch.float64),
                     torch.zeros(2, dtype=torch.float64), "identity")
    x, s0 = torch.zeros(20, 1, 1, dtype=torch.float64), torch.tensor([[1.0, 1.0]], dtype=torch.float64)
    for warmup, every in ((2, 5), (7, 5), (0, 5), (10, 5), (3, 4)):
        ly = rs.lyapunov(cell, x, s0, every=every, warmup=warmup)
        ref = rs.lyapunov(cell, x, s0, every=1, warmup=warmup)
        assert ly.steps == ref.steps == 20 - warmup, (warmup, every)
        assert torch.allclose(ly.exponents, ref.exponents, atol=1e-12, rtol=0), (warmup, every)
    long = rs.lyapunov(cell, torch.zeros(2000, 1, 1, dtype=torch.float64), s0, every=7, warmup=3)
    assert torch.allclose(long.exponents, torch.tensor([math.log(2), math.log(0.5)], dtype=torch.float64), atol=1e-3)
