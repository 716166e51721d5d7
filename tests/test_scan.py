"""core/scan.py: the three scans of s_t = a_t * s_{t-1} + b_t agree with each other and with the closed form
(float64)."""

import math

import pytest
import torch

from rnnscope.core.errors import InputError
from rnnscope.core.scan import associative_scan, log_space_scan, sequential_scan

F64 = torch.float64
TOL = dict(rtol=1e-12, atol=1e-12)


def _terms(T, seed=0, shape=(3, 4)):
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(T, *shape, generator=g, dtype=F64)  # (0, 1)
    b = torch.rand(T, *shape, generator=g, dtype=F64) * 2 + 1e-3  # > 0: the log-space scan's domain
    s0 = torch.randn(*shape, generator=g, dtype=F64)  # either sign
    return a, b, s0


@pytest.mark.parametrize("T", [1, 2, 7, 1000])
def test_three_scans_agree(T):
    a, b, s0 = _terms(T, seed=T)
    ref = sequential_scan(a, b, s0)
    assert ref.shape == (T + 1, 3, 4) and torch.equal(ref[0], s0)
    torch.testing.assert_close(associative_scan(a, b, s0), ref, **TOL)
    torch.testing.assert_close(log_space_scan(a.log(), b.log(), s0), ref, **TOL)
    z = torch.zeros_like(s0)  # s0 = None is the zero start
    torch.testing.assert_close(associative_scan(a, b), sequential_scan(a, b, z), **TOL)
    torch.testing.assert_close(log_space_scan(a.log(), b.log()), sequential_scan(a, b, z), **TOL)


def test_sequential_scan_is_the_loop():
    a, b, s0 = _terms(5, seed=3)
    s, out = s0.clone(), [s0]
    for t in range(5):
        s = a[t] * s + b[t]
        out.append(s)
    assert torch.equal(sequential_scan(a, b, s0), torch.stack(out))


@pytest.mark.parametrize("T", [1, 7, 1000])
def test_complex_associative_against_sequential(T):
    g = torch.Generator().manual_seed(T)
    r = torch.rand(T, 2, 5, generator=g, dtype=F64)
    phase = torch.rand(T, 2, 5, generator=g, dtype=F64) * 2 * math.pi
    a = torch.polar(r, phase)  # |a| < 1
    b = torch.complex(torch.randn(T, 2, 5, generator=g, dtype=F64), torch.randn(T, 2, 5, generator=g, dtype=F64))
    s0 = torch.complex(torch.randn(2, 5, generator=g, dtype=F64), torch.randn(2, 5, generator=g, dtype=F64))
    ref = sequential_scan(a, b, s0)
    assert ref.dtype == torch.complex128
    torch.testing.assert_close(associative_scan(a, b, s0), ref, **TOL)


def test_constant_a_closed_form():
    """s_t = a^t s_0 + sum_{k=1}^t a^(t-k) b_k, written out term by term."""
    T, a0 = 30, 0.93
    g = torch.Generator().manual_seed(5)
    b = torch.rand(T, 2, generator=g, dtype=F64) + 0.1
    s0 = torch.tensor([-1.5, 2.0], dtype=F64)
    zero = torch.zeros(2, dtype=F64)
    closed = torch.stack([a0 ** t * s0 + sum((a0 ** (t - k) * b[k - 1] for k in range(1, t + 1)), zero)
                          for t in range(T + 1)])
    a = torch.full((T, 2), a0, dtype=F64)
    for states in (sequential_scan(a, b, s0), associative_scan(a, b, s0), log_space_scan(a.log(), b.log(), s0)):
        torch.testing.assert_close(states, closed, **TOL)


def test_log_space_signed_b_and_zero_b():
    a, b, s0 = _terms(200, seed=9)
    g = torch.Generator().manual_seed(10)
    b = b * torch.randn(b.shape, generator=g, dtype=F64).sign()  # either sign
    b[5] = 0.0  # log 0 = -inf: a zero term
    ref = sequential_scan(a, b, s0)
    torch.testing.assert_close(log_space_scan(a.log(), b.abs().log(), s0, sign_b=b.sign()), ref, **TOL)


def test_broadcast_a_and_shapes():
    a, b, s0 = _terms(9, seed=2)
    a1 = a[:, :1]  # (T, 1, 4): one a for every row
    ref = sequential_scan(a1.expand_as(b), b, s0)
    torch.testing.assert_close(associative_scan(a1, b, s0), ref, **TOL)
    torch.testing.assert_close(sequential_scan(a1, b, s0), ref, **TOL)
    torch.testing.assert_close(log_space_scan(a1.log(), b.log(), s0), ref, **TOL)
    assert associative_scan(a[:, 0, 0], b[:, 0, 0]).shape == (10,)  # (T,) alone: scalars per step
    assert associative_scan(a, b, s0).dtype == F64


def test_errors_say_expected():
    a, b, s0 = _terms(4)
    cases = [
        lambda: associative_scan(a.tolist(), b),  # not a tensor
        lambda: sequential_scan(a[:0], b[:0]),  # T = 0
        lambda: associative_scan(a, b, s0[:2]),  # s0 of the wrong shape
        lambda: sequential_scan(a[:, :, :3], b),  # a not broadcastable to b
        lambda: log_space_scan(torch.full_like(a, -math.inf), b.log()),  # a = 0: log a not finite
        lambda: log_space_scan(a.log().to(torch.complex128), b.log()),  # complex logs
        lambda: log_space_scan(a.log(), b.log(), sign_b=torch.ones(4, 3)),  # sign_b of the wrong shape
    ]
    for case in cases:
        with pytest.raises(InputError, match="expected"):
            case()
