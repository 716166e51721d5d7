"""heads.py against torch.nn.functional (linear, mse_loss, cross_entropy) and autograd of those references."""

import numpy as np
import pytest
import torch
import torch.nn.functional as Fn

import rnnscope as rs

F64 = torch.float64
T, B, S, O = 5, 3, 4, 3
TOL = dict(rtol=1e-12, atol=1e-12)


def _head(kind, seed=0):
    g = torch.Generator().manual_seed(seed)
    return rs.Head(torch.randn(O, S, generator=g, dtype=F64), torch.randn(O, generator=g, dtype=F64), kind)


def _data(kind, seed=1, T=T, B=B):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(T, B, S, generator=g, dtype=F64)
    if kind == "mse":
        y = torch.randn(T, B, O, generator=g, dtype=F64)
    else:
        y = torch.randint(0, O, (T, B), generator=g)
    return h, y


def _ref_step_loss(kind, o, y):
    if kind == "mse":
        return Fn.mse_loss(o, y, reduction="sum") / (2 * o.shape[0])  # mean over the batch of 0.5 * sum_o
    return Fn.cross_entropy(o, y)  # mean over the batch


def test_outputs_equal_torch_linear():
    head = _head("mse")
    h, _ = _data("mse")
    torch.testing.assert_close(head.outputs(h), Fn.linear(h, head.W_hy, head.b_y), **TOL)


@pytest.mark.parametrize("kind", ["mse", "ce"])
@pytest.mark.parametrize("batch", [1, 3])
def test_step_loss_equals_torch_functional(kind, batch):
    head = _head(kind)
    h, y = _data(kind, B=batch)
    for t in range(T):
        o = head.outputs(h[t])
        ref = _ref_step_loss(kind, o, y[t])
        assert ref > 0.01
        torch.testing.assert_close(head.step_loss(o, y[t]), ref, **TOL)


@pytest.mark.parametrize("kind", ["mse", "ce"])
def test_dE_do_equals_autograd_of_the_reference_loss(kind):
    head = _head(kind)
    h, y = _data(kind)
    o = head.outputs(h[0]).detach().requires_grad_(True)
    (ref,) = torch.autograd.grad(_ref_step_loss(kind, o, y[0]), o)
    torch.testing.assert_close(head.dE_do(o.detach(), y[0]), ref, **TOL)


@pytest.mark.parametrize("kind", ["mse", "ce"])
@pytest.mark.parametrize("loss_at", ["all", "last"])
def test_sequence_loss_equals_sum_of_reference_terms(kind, loss_at):
    head = _head(kind)
    h, y = _data(kind)
    steps = range(T) if loss_at == "all" else [T - 1]
    ref = sum(_ref_step_loss(kind, Fn.linear(h[t], head.W_hy, head.b_y), y[t]) for t in steps)
    torch.testing.assert_close(head.loss(h, y, loss_at), ref, **TOL)
    assert list(head.loss_steps(loss_at, T)) == [t + 1 for t in steps]


def test_identity_head_outputs_the_state():
    head = rs.Head.identity(S)
    h, _ = _data("mse")
    torch.testing.assert_close(head.outputs(h), h, rtol=0, atol=0)


def test_check_targets_accepts_and_converts():
    mse, ce = _head("mse"), _head("ce")
    y = np.arange(T * O, dtype=np.float32).reshape(T, O)  # (T, O) means B = 1
    out = mse.check_targets(y, T, 1)
    assert out.shape == (T, 1, O) and out.dtype == F64
    assert torch.equal(out[:, 0], torch.as_tensor(y, dtype=F64))
    cls = torch.tensor([0.0, 2.0, 1.0, 1.0, 0.0], dtype=F64)  # integral floats are class indices
    out = ce.check_targets(cls, T, 1)
    assert out.dtype == torch.int64 and out.shape == (T, 1)
    assert out[:, 0].tolist() == [0, 2, 1, 1, 0]
    out = ce.check_targets(np.zeros((T, B), dtype=np.int32), T, B)
    assert out.dtype == torch.int64 and out.shape == (T, B)


BAD_TARGETS = {
    "mse-wrong-O": ("mse", torch.zeros(T, B, O + 1), B),
    "mse-wrong-T": ("mse", torch.zeros(T - 1, B, O), B),
    "mse-2d-with-batch": ("mse", torch.zeros(T, O), B),
    "mse-nan": ("mse", torch.full((T, B, O), float("nan")), B),
    "ce-wrong-shape": ("ce", torch.zeros(T, B + 1, dtype=torch.int64), B),
    "ce-1d-with-batch": ("ce", torch.zeros(T, dtype=torch.int64), B),
    "ce-too-large": ("ce", torch.full((T, B), O, dtype=torch.int64), B),
    "ce-negative": ("ce", torch.full((T, B), -1, dtype=torch.int64), B),
    "ce-non-integer": ("ce", torch.full((T, B), 0.5, dtype=F64), B),
    "ce-nan": ("ce", torch.full((T, B), float("nan"), dtype=F64), B),
    "ce-bool": ("ce", torch.zeros(T, B, dtype=torch.bool), B),
}


@pytest.mark.parametrize("kind, y, batch", BAD_TARGETS.values(), ids=BAD_TARGETS.keys())
def test_check_targets_rejects(kind, y, batch):
    with pytest.raises(rs.InputError, match="expected"):
        _head(kind).check_targets(y, T, batch)


BAD_HEADS = {
    "kind": lambda: rs.Head(torch.zeros(O, S), torch.zeros(O), "hinge"),
    "W_hy-vector": lambda: rs.Head(torch.zeros(S), torch.zeros(O), "mse"),
    "b_y-shape": lambda: rs.Head(torch.zeros(O, S), torch.zeros(O + 1), "mse"),
    "W_hy-nan": lambda: rs.Head(torch.full((O, S), float("nan")), torch.zeros(O), "mse"),
    "b_y-inf": lambda: rs.Head(torch.zeros(O, S), torch.full((O,), float("inf")), "ce"),
}


@pytest.mark.parametrize("make", BAD_HEADS.values(), ids=BAD_HEADS.keys())
def test_bad_head_raises(make):
    with pytest.raises(rs.InputError, match="expected"):
        make()


def test_bad_loss_at_raises():
    with pytest.raises(rs.InputError, match="expected"):
        _head("mse").loss_steps("first", T)
