"""lyapunov_grad: the differentiable exponents against lyapunov_spectrum and an independent QR loop (float64, 1e-10),
their gradients against central finite differences, and a linear cell's exponents and gradients in closed form."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch_reference import central_difference

from rnnscope.core.cells import ElmanCell, GRUCell
from rnnscope.core.errors import InputError
from rnnscope.gradients.lyapunov import lyapunov
from rnnscope.gradients.lyapunov_grad import initial_frame, lyapunov_exponents

F64 = torch.float64


def elman(S=6, D=2, g=1.5, seed=0, grad=False):
    gen = torch.Generator().manual_seed(seed)
    W = g * torch.randn(S, S, generator=gen, dtype=F64) / S ** 0.5
    U = torch.randn(S, D, generator=gen, dtype=F64)
    b = 0.1 * torch.randn(S, generator=gen, dtype=F64)
    if grad:
        W.requires_grad_(), U.requires_grad_(), b.requires_grad_()
    return ElmanCell(W, U, b, "tanh")


def inputs(T=150, B=3, D=2, seed=1):
    return torch.randn(T, B, D, generator=torch.Generator().manual_seed(seed), dtype=F64)


def reference_exponents(W, U, b, x, k, warmup, seed):
    """An independent QR loop (numpy): h_t = tanh(W h + U x_t + b) from 0, J_t = diag(1 - h_t^2) W, QR every step."""
    W, U, b, x = (np.asarray(a.detach(), dtype=np.float64) for a in (W, U, b, x))
    T, B, _ = x.shape
    Q0 = initial_frame(B, W.shape[0], k, seed, F64).numpy()
    out = np.zeros((B, k))
    for j in range(B):
        h, Q, acc = np.zeros(W.shape[0]), Q0[j], np.zeros(k)
        for t in range(1, T + 1):
            h = np.tanh(W @ h + U @ x[t - 1, j] + b)
            Q, R = np.linalg.qr((1 - h ** 2)[:, None] * W @ Q)
            if t > warmup:
                acc += np.log(np.abs(np.diag(R)))
        out[j] = np.sort(acc / (T - warmup))[::-1]
    return out.mean(0)


def test_equals_lyapunov_spectrum_and_an_independent_qr_loop():
    cell, x = elman(), inputs()
    lam = lyapunov_exponents(cell, x, k=4, warmup=20, seed=3)
    ly = lyapunov(cell, x, k=4, warmup=20, seed=3)
    assert lam.dtype == F64 and lam.shape == (4,)
    assert float((lam - ly.exponents).abs().max()) <= 1e-10
    per = lyapunov_exponents(cell, x, k=4, warmup=20, seed=3, per_sequence=True)
    assert float((per - ly.per_sequence).abs().max()) <= 1e-10
    ref = reference_exponents(cell.W_hh, cell.W_xh, cell.b_h, x, 4, 20, 3)
    assert np.abs(lam.numpy() - ref).max() <= 1e-10
    ly2 = lyapunov(cell, x, k=4, warmup=20, seed=3, every=3)  # re-orthonormalised every 3 steps: the same values
    assert float((lyapunov_exponents(cell, x, k=4, warmup=20, seed=3, every=3) - ly2.exponents).abs().max()) <= 1e-10


def test_a_gated_cell_and_an_autonomous_run_match_lyapunov():
    gen = torch.Generator().manual_seed(4)
    H, D = 5, 2
    cell = GRUCell(*(0.7 * torch.randn(*s, generator=gen, dtype=F64) for s in ((3 * H, D), (3 * H, H), (3 * H,), (3 * H,))))
    x = inputs(100, 2, D)
    assert float((lyapunov_exponents(cell, x, k=3, warmup=10) - lyapunov(cell, x, k=3, warmup=10).exponents).abs().max()) <= 1e-10
    e = elman(g=2.5)
    z = torch.zeros(200, 2, 2, dtype=F64)  # autonomous: both start from the same seeded random state
    assert float((lyapunov_exponents(e, z, k=2, warmup=20) - lyapunov(e, z, k=2, warmup=20).exponents).abs().max()) <= 1e-10


@pytest.mark.parametrize("field", ["W_hh", "W_xh", "b_h"])
def test_gradient_against_central_finite_differences(field):
    cell, x = elman(S=5, g=1.8, grad=True), inputs(60, 2)
    c = torch.tensor([1.0, -0.5, 0.25], dtype=F64)  # a mixture of the three exponents

    def f():
        return (c * lyapunov_exponents(cell, x, k=3, warmup=5, seed=1)).sum()

    f().backward()
    A = getattr(cell, field)
    gen = np.random.default_rng(0)
    idx = [tuple(int(gen.integers(n)) for n in A.shape) for _ in range(6)]
    fd = np.array(central_difference(f, A, idx))
    ad = np.array([float(A.grad[i]) for i in idx])
    assert np.abs(ad - fd).max() <= 1e-6 * max(1.0, np.abs(fd).max()), (ad, fd)  # FD error ~h^2 + rounding/h


def test_gradient_of_a_gru_cell_weight_against_finite_differences():
    gen = torch.Generator().manual_seed(2)
    H, D = 4, 1
    W = [(0.8 * torch.randn(*s, generator=gen, dtype=F64)).requires_grad_() for s in ((3 * H, D), (3 * H, H), (3 * H,), (3 * H,))]
    cell, x = GRUCell(*W), inputs(50, 2, D)

    def f():
        return lyapunov_exponents(cell, x, k=2, warmup=5).sum()

    f().backward()
    idx = [(0, 1), (5, 2), (9, 3), (11, 0)]
    fd = np.array(central_difference(f, cell.W_hh, idx))
    assert np.abs(np.array([float(cell.W_hh.grad[i]) for i in idx]) - fd).max() <= 1e-6 * max(1.0, np.abs(fd).max())


def test_linear_cell_exponents_and_gradients_in_closed_form():
    """h_t = W h_{t-1}: lambda_i = ln |eig_i(W)|, d lambda_i / dW = y_i x_i^T / (lambda_i y_i^T x_i) (left y, right x
    eigenvectors); the sum of all S exponents is ln |det W| exactly at any T, its gradient W^{-T}."""
    gen = np.random.default_rng(3)
    ev = np.array([1.2, -0.9, 0.5, 0.3])
    V = np.eye(4) + 0.3 * gen.standard_normal((4, 4))
    W = torch.tensor(V @ np.diag(ev) @ np.linalg.inv(V), dtype=F64, requires_grad=True)
    cell = ElmanCell(W, torch.zeros(4, 1, dtype=F64), torch.zeros(4, dtype=F64), "identity")
    z = torch.zeros(3000, 1, 1, dtype=F64)
    lam = lyapunov_exponents(cell, z, k=4, warmup=300)
    assert np.abs(lam.detach().numpy() - np.log(np.abs(ev))).max() <= 2e-3  # finite-time error O(1/T)
    (g_top,) = torch.autograd.grad(lam[0], W, retain_graph=True)
    Vinv = np.linalg.inv(V)
    closed = np.outer(Vinv[0], V[:, 0]) / ev[0]  # [a, b] = y_a x_b / lambda_1: y^T = row 0 of V^-1, x = column 0 of V
    assert np.abs(g_top.numpy() - closed).max() <= 2e-2 * np.abs(closed).max()
    (g_sum,) = torch.autograd.grad(lam.sum(), W)
    assert abs(float(lam.sum().detach()) - np.log(abs(np.linalg.det(W.detach().numpy())))) <= 1e-10
    assert np.abs(g_sum.numpy() - np.linalg.inv(W.detach().numpy()).T).max() <= 1e-10


def test_bad_arguments_say_expected_and_got():
    cell, x = elman(), inputs(20, 1)
    with pytest.raises(InputError, match="k: expected at most the state size S = 6"):
        lyapunov_exponents(cell, x, k=7)
    with pytest.raises(InputError, match="length: expected more than"):
        lyapunov_exponents(cell, x, k=2, warmup=20)
