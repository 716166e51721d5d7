"""rnnscope.lab.remedies: clipping against hand computation, the regularizer against autograd and an explicit
loop, the adjoint sweep against autograd, and the initialisations' statistics."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from rnnscope.core.activations import get_activation
from rnnscope.core.errors import InputError
from rnnscope.core.vocab import TRAIN_INITS
from rnnscope.lab.remedies import (FALLBACK_ABOVE, AdaptiveClipState, ClipResult, PascanuRegularizer,
                               clip_grad_adaptive, clip_grad_norm, clip_grad_value, init_rnn, nan_fallback,
                               pascanu_regularizer, smart_tanh_matrix, state_adjoints)
from rnnscope.lab.networks import ElmanRNN, PalRNN

f64 = torch.float64


def _params(*grads):
    """Leaf parameters (float64) with the given gradients; values 1, 2, 3, ... so 0.02 W is recognisable."""
    ps = []
    for i, g in enumerate(grads):
        g = torch.as_tensor(g, dtype=f64)
        p = torch.full_like(g, float(i + 1)).requires_grad_(True)
        p.grad = g.clone()
        ps.append(p)
    return ps


# --------------------------------------------------------------------------------------------- clipping

def test_clip_norm_scales_all_parameters_together():
    a, b = _params([3.0, 4.0], [[12.0]])  # ||g|| = sqrt(9 + 16 + 144) = 13
    r = clip_grad_norm([a, b], 6.5)
    assert r == ClipResult(13.0, True, False, 6.5)
    assert torch.equal(a.grad, torch.tensor([1.5, 2.0], dtype=f64))  # 6.5 / 13 = 1/2 of each
    assert torch.equal(b.grad, torch.tensor([[6.0]], dtype=f64))
    assert math.isclose(clip_grad_norm([a, b], 100.0).norm, 6.5, rel_tol=1e-15)


def test_clip_norm_is_a_no_op_below_the_threshold_and_fires_at_equality():
    a, b = _params([3.0, 4.0], [[12.0]])
    r = clip_grad_norm([a, b], 13.5)
    assert (r.norm, r.clipped) == (13.0, False)
    assert torch.equal(a.grad, torch.tensor([3.0, 4.0], dtype=f64)) and torch.equal(b.grad, torch.tensor([[12.0]], dtype=f64))
    r = clip_grad_norm([a, b], 13.0)  # Algorithm 1: ||g|| >= threshold
    assert r.clipped and torch.equal(a.grad, torch.tensor([3.0, 4.0], dtype=f64))


def test_clip_norm_skips_parameters_without_gradient():
    a, b = _params([3.0, 4.0], [1.0])
    b.grad = None
    r = clip_grad_norm([a, b], 1.0)
    assert r.norm == 5.0 and b.grad is None
    assert torch.allclose(a.grad, torch.tensor([0.6, 0.8], dtype=f64), rtol=0, atol=1e-15)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 2e10])
def test_nan_fallback_replaces_the_gradient_with_a_decay_of_W_hh(bad):
    W_hh, W_xh, b = _params([[1.0, bad], [0.0, 1.0]], [2.0, 3.0], [1.0])
    r = clip_grad_norm([W_hh, W_xh, b], 1.0, W_hh=W_hh)
    assert r.fallback and not r.clipped
    assert math.isnan(r.norm) or r.norm > FALLBACK_ABOVE
    assert torch.equal(W_hh.grad, 0.02 * W_hh.detach())  # Pascanu's code: .02 * W_hh
    assert torch.equal(W_xh.grad, torch.zeros(2, dtype=f64)) and torch.equal(b.grad, torch.zeros(1, dtype=f64))


def test_nan_fallback_threshold_is_1e10_and_without_W_hh_nothing_changes():
    W_hh, W_xh = _params([[1e10 * 0.6, 0.0]], [1e10 * 0.8])  # norm exactly 1e10: trusted, clipped
    r = clip_grad_norm([W_hh, W_xh], 1.0, W_hh=W_hh)
    assert not r.fallback and r.clipped and math.isclose(r.norm, 1e10)
    W_hh, W_xh = _params([[float("nan")]], [1.0])
    r = clip_grad_norm([W_hh, W_xh], 1.0)
    assert math.isnan(r.norm) and not r.clipped and not r.fallback
    assert torch.isnan(W_hh.grad).all() and torch.equal(W_xh.grad, torch.ones(1, dtype=f64))


def test_nan_fallback_sets_a_missing_gradient_and_refuses_a_foreign_W_hh():
    W_hh, W_xh = _params([[1.0]], [float("inf")])
    W_hh.grad = None
    nan_fallback([W_hh, W_xh], W_hh)
    assert torch.equal(W_hh.grad, 0.02 * W_hh.detach()) and torch.equal(W_xh.grad, torch.zeros(1, dtype=f64))
    with pytest.raises(InputError, match="W_hh"):
        clip_grad_norm([W_xh], 1.0, W_hh=torch.ones(1, requires_grad=True))


def test_clip_value_is_elementwise():
    a, b = _params([3.0, -0.5, -2.0], [[0.25]])
    r = clip_grad_value([a, b], 1.0)
    assert r.clipped and math.isclose(r.norm, math.sqrt(9 + 0.25 + 4 + 0.0625), rel_tol=1e-15)
    assert torch.equal(a.grad, torch.tensor([1.0, -0.5, -1.0], dtype=f64)) and torch.equal(b.grad, torch.tensor([[0.25]], dtype=f64))
    assert not clip_grad_value([a, b], 1.0).clipped  # nothing above 1 any more


def test_adaptive_threshold_sequence_by_hand():
    """factor 2, decay 1/2, norms 1, 2, 10, 3:
        thresholds inf, 2 x 1, 2 x 1.5, 2 x 2.25
        applied norms 1, 2, 3 (10 clipped), 3
        averages 1, (1 + 2)/2 = 1.5, (1.5 + 3)/2 = 2.25, (2.25 + 3)/2 = 2.625"""
    st = AdaptiveClipState(decay=0.5)
    w = torch.zeros(2, dtype=f64, requires_grad=True)
    want = [(1.0, math.inf, False, 1.0, 1.0), (2.0, 2.0, True, 2.0, 1.5), (10.0, 3.0, True, 3.0, 2.25),
            (3.0, 4.5, False, 3.0, 2.625)]
    for norm, thr, clipped, after, avg in want:
        w.grad = torch.tensor([0.6, 0.8], dtype=f64) * norm
        r = clip_grad_adaptive([w], st, 2.0)
        assert (r.norm, r.threshold, r.clipped) == pytest.approx((norm, thr, clipped), rel=1e-15)
        assert float(torch.linalg.vector_norm(w.grad)) == pytest.approx(after, rel=1e-15)
        assert st.average == pytest.approx(avg, rel=1e-15)
    assert st.count == 4


def test_adaptive_fallback_leaves_the_average():
    st = AdaptiveClipState(decay=0.5, average=2.0, count=3)
    W_hh, W_xh = _params([[float("nan")]], [1.0])
    r = clip_grad_adaptive([W_hh, W_xh], st, 2.0, W_hh=W_hh)
    assert r.fallback and r.threshold == 4.0 and (st.average, st.count) == (2.0, 3)


@pytest.mark.parametrize("call", [lambda p: clip_grad_norm(p, 0.0), lambda p: clip_grad_norm(p, float("nan")),
                                  lambda p: clip_grad_value(p, -1.0), lambda p: clip_grad_adaptive(p, AdaptiveClipState(), 0),
                                  lambda p: clip_grad_adaptive(p, None, 1.0), lambda p: AdaptiveClipState(decay=1.0)])
def test_clipping_refuses_bad_arguments(call):
    with pytest.raises(InputError):
        call(_params([1.0]))


# ------------------------------------------------------------------------------------------ regularizer

def _case(form: str, act: str, T=6, B=3, S=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(S, S, generator=g, dtype=f64) * 0.9
    pre = torch.randn(T, B, S, generator=g, dtype=f64)
    delta = torch.randn(T, B, S, generator=g, dtype=f64)
    delta[2, 1] = 0.0  # ||delta||^2 = 0 < 1e-20: dropped
    delta[4, 0] = 1e-11  # ||delta||^2 = 4e-22: dropped
    return W, pre, delta


def _omega_loop(W, d, delta, form, reduction, bound=1e-20):
    """Omega written directly: one term per (k, b) with the one-step Jacobian formed explicitly
    (column convention), d and delta constants, W the only variable."""
    T, B, S = delta.shape
    total, kept = torch.zeros((), dtype=W.dtype), 0
    for k in range(T):
        for b in range(B):
            den = (delta[k, b] ** 2).sum()
            if den < bound:
                continue
            J = torch.diag(d[k, b]) @ W if form == "elman" else W @ torch.diag(d[k, b])  # dh_k/dh_{k-1}
            num = ((delta[k, b] @ J) ** 2).sum()  # ||delta_k^T J_k||^2
            total = total + (num / den - 1) ** 2
            kept += 1
    return total / kept if reduction == "pascanu" else total / B


@pytest.mark.parametrize("form,act", [("elman", "tanh"), ("elman", "sigmoid"), ("pal", "tanh"), ("pal", "relu")])
@pytest.mark.parametrize("reduction", ["pascanu", "sum"])
def test_regularizer_value_and_gradient_against_autograd(form, act, reduction):
    W, pre, delta = _case(form, act)
    res = pascanu_regularizer(W, pre, delta, form, act, reduction=reduction)
    Wv = W.clone().requires_grad_(True)
    d = get_activation(act).dphi(pre).detach()  # held constant
    ref = _omega_loop(Wv, d, delta.detach(), form, reduction)
    (ref_grad,) = torch.autograd.grad(ref, Wv)
    assert ref.item() > 0.1  # a test with substance
    assert torch.allclose(res.omega, ref.detach(), rtol=1e-13, atol=0)
    assert torch.allclose(res.grad, ref_grad, rtol=1e-12, atol=1e-14)


def test_regularizer_normalisations_differ_by_kept_count_over_B():
    W, pre, delta = _case("elman", "tanh")  # T = 6, B = 3, 2 of 18 dropped: kept 16
    a = pascanu_regularizer(W, pre, delta, reduction="pascanu").omega
    s = pascanu_regularizer(W, pre, delta, reduction="sum").omega
    assert torch.allclose(s / a, torch.tensor(16 / 3, dtype=f64), rtol=1e-14)


def test_regularizer_is_zero_for_an_orthogonal_linear_step_and_when_nothing_is_kept():
    Q, _ = torch.linalg.qr(torch.randn(5, 5, generator=torch.Generator().manual_seed(1), dtype=f64))
    pre = torch.zeros(4, 2, 5, dtype=f64)  # tanh'(0) = 1: J = Q preserves every norm, r = 1
    delta = torch.randn(4, 2, 5, generator=torch.Generator().manual_seed(2), dtype=f64)
    res = pascanu_regularizer(Q, pre, delta)
    assert abs(float(res.omega)) < 1e-28 and float(res.grad.abs().max()) < 1e-13
    res = pascanu_regularizer(Q, pre, torch.zeros_like(delta))
    assert float(res.omega) == 0.0 and float(res.grad.abs().max()) == 0.0


def _vanilla_autograd_adjoints(form, act, W, U, b, x, readout, h0=None):
    """Step-by-step forward with retain_grad on every h_k; E = sum of squares of a readout at all steps."""
    phi = get_activation(act).phi
    T, B, _ = x.shape
    h = torch.zeros(B, W.shape[0], dtype=f64, requires_grad=True) if h0 is None else h0
    hs, pres = [], []
    for t in range(T):
        if form == "elman":
            a = h @ W.T + x[t] @ U.T + b
            h = phi(a)
            pres.append(a.detach())
        else:
            pres.append(h.detach())
            h = phi(h) @ W.T + x[t] @ U.T + b
        h.retain_grad()
        hs.append(h)
    H = torch.stack(hs)  # (T, B, S)
    E = (readout(H) ** 2).sum() * 0.1
    E.backward()
    return torch.stack(pres), torch.stack([h.grad for h in hs]), H


@pytest.mark.parametrize("form,act", [("elman", "tanh"), ("elman", "sigmoid"), ("pal", "tanh")])
def test_state_adjoints_against_autograd(form, act):
    g = torch.Generator().manual_seed(3)
    S, D, T, B = 5, 2, 7, 3
    W, U, b = torch.randn(S, S, generator=g, dtype=f64), torch.randn(S, D, generator=g, dtype=f64), torch.randn(S, generator=g, dtype=f64)
    x = torch.randn(T, B, D, generator=g, dtype=f64)
    V = torch.randn(2, S, generator=g, dtype=f64)
    pre, ref, H = _vanilla_autograd_adjoints(form, act, W, U, b, x, lambda h: h @ V.T)
    direct = 0.2 * (H.detach() @ V.T) @ V  # d+E/dh_k through the readout only
    got = state_adjoints(W, pre, direct, form, act)
    assert torch.allclose(got, ref, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("module", ["nn.RNN-tanh", "nn.RNN-relu", "ElmanRNN-sigmoid", "PalRNN-tanh"])
def test_module_regularizer_adds_alpha_times_the_gradient(module):
    """PascanuRegularizer on a module (hooks, h_n readout, adjoint sweep) equals pascanu_regularizer on the
    adjoints of a step-by-step autograd reference with the same weights."""
    kind, act = module.split("-")
    torch.manual_seed(0)
    S, D, T, B = 6, 3, 8, 4
    rnn = {"nn.RNN": lambda: nn.RNN(D, S, nonlinearity=act, batch_first=True, dtype=f64),
           "ElmanRNN": lambda: ElmanRNN(D, S, act, dtype=f64), "PalRNN": lambda: PalRNN(D, S, act, dtype=f64)}[kind]()
    form = "pal" if kind == "PalRNN" else "elman"
    V = torch.randn(2, S, dtype=f64)
    x = torch.randn(B, T, D, dtype=f64)
    reg = PascanuRegularizer(rnn, alpha=3.0)
    out, h_n = rnn(x)
    E = (out @ V.T).square().sum() * 0.1 + h_n.sum()  # uses both out and h_n
    E.backward()
    plain = rnn.weight_hh_l0.grad.clone()
    omega = reg.apply()
    added = rnn.weight_hh_l0.grad - plain
    # reference: the same weights, step by step
    W, U = rnn.weight_hh_l0.detach(), rnn.weight_ih_l0.detach()
    b = (rnn.bias_ih_l0 + rnn.bias_hh_l0).detach()
    xt = x.transpose(0, 1)
    phi = get_activation(act).phi
    h = torch.zeros(B, S, dtype=f64, requires_grad=True)
    hs, pres = [], []
    for t in range(T):
        if form == "elman":
            a = h @ W.T + xt[t] @ U.T + b
            pres.append(a.detach())
            h = phi(a)
        else:
            pres.append(h.detach())
            h = phi(h) @ W.T + xt[t] @ U.T + b
        h.retain_grad()
        hs.append(h)
    Hs = torch.stack(hs)
    ((Hs @ V.T).square().sum() * 0.1 + hs[-1].sum()).backward()
    delta = torch.stack([h.grad for h in hs])
    ref = pascanu_regularizer(W, torch.stack(pres), delta, form, act)
    assert math.isclose(omega, float(ref.omega), rel_tol=1e-10)
    assert torch.allclose(added, 3.0 * ref.grad, rtol=1e-9, atol=1e-12)
    reg.remove()


def test_module_regularizer_refuses_gated_and_deep_modules():
    with pytest.raises(InputError, match="rnn"):
        PascanuRegularizer(nn.LSTM(2, 3), 1.0)
    with pytest.raises(InputError, match="one layer"):
        PascanuRegularizer(nn.RNN(2, 3, num_layers=2), 1.0)
    with pytest.raises(InputError, match="alpha"):
        PascanuRegularizer(nn.RNN(2, 3), -1.0)
    with pytest.raises(InputError, match="reduction"):
        pascanu_regularizer(torch.eye(2), torch.zeros(1, 1, 2), torch.ones(1, 1, 2), reduction="mean")
    with pytest.raises(InputError, match="form"):
        pascanu_regularizer(torch.eye(2), torch.zeros(1, 1, 2), torch.ones(1, 1, 2), form="lstm")
    with pytest.raises(InputError, match="adjoints"):
        pascanu_regularizer(torch.eye(2), torch.zeros(1, 1, 2), torch.ones(2, 1, 2))


# ------------------------------------------------------------------------------------------------ inits

def _std(t: torch.Tensor) -> float:
    return float(t.detach().double().std())


@pytest.mark.parametrize("init,std", [("sigmoid", 0.01), ("basic-tanh", 0.1)])
def test_gaussian_inits_have_pascanus_standard_deviations(init, std):
    rnn, head = nn.RNN(60, 100, batch_first=True, dtype=f64), nn.Linear(100, 30, dtype=f64)
    init_rnn(rnn, head, init, torch.Generator().manual_seed(0))
    for p in (rnn.weight_hh_l0, rnn.weight_ih_l0, head.weight):  # 10,000, 6,000 and 3,000 draws
        assert abs(_std(p) / std - 1) < 0.05
        assert abs(float(p.detach().mean())) < 0.1 * std
    for bias in (rnn.bias_ih_l0, rnn.bias_hh_l0, head.bias):
        assert float(bias.detach().abs().max()) == 0.0


def test_smart_tanh_is_sparse_with_spectral_radius_095():
    rnn, head = nn.RNN(50, 50, batch_first=True, dtype=f64), nn.Linear(50, 60, dtype=f64)
    init_rnn(rnn, head, "smart-tanh", torch.Generator().manual_seed(0))
    W = rnn.weight_hh_l0.detach()
    assert ((W != 0).sum(dim=1) == 15).all()  # 15 incoming weights per unit
    assert abs(float(torch.linalg.eigvals(W).abs().max()) - 0.95) < 1e-9
    assert abs(_std(rnn.weight_ih_l0) / 0.01 - 1) < 0.05 and abs(_std(head.weight) / 0.01 - 1) < 0.05
    assert float(rnn.bias_ih_l0.detach().abs().max()) == 0.0
    small = smart_tanh_matrix(10, torch.Generator().manual_seed(1))  # hidden <= 15: all weights non-zero
    assert int((small != 0).sum()) == 100 and abs(float(torch.linalg.eigvals(small).abs().max()) - 0.95) < 1e-9


def test_orthogonal_and_identity_inits():
    rnn = nn.LSTM(3, 20, batch_first=True, dtype=f64)
    init_rnn(rnn, None, "orthogonal", torch.Generator().manual_seed(0))
    for i in range(4):  # each gate's block
        Q = rnn.weight_hh_l0.detach()[i * 20:(i + 1) * 20]
        assert torch.allclose(Q.T @ Q, torch.eye(20, dtype=f64), atol=1e-12)
    rnn = nn.RNN(3, 20, nonlinearity="relu", batch_first=True, dtype=f64)
    before = rnn.weight_ih_l0.detach().clone()
    init_rnn(rnn, None, "identity", torch.Generator().manual_seed(0))
    assert torch.equal(rnn.weight_hh_l0.detach(), torch.eye(20, dtype=f64))
    assert float(rnn.bias_ih_l0.detach().abs().max()) == 0.0 and float(rnn.bias_hh_l0.detach().abs().max()) == 0.0
    assert torch.equal(rnn.weight_ih_l0.detach(), before)  # the rest stays PyTorch's


def test_default_init_changes_nothing_and_unknown_inits_are_refused():
    rnn = nn.GRU(3, 5)
    before = [p.detach().clone() for p in rnn.parameters()]
    init_rnn(rnn, None, "default", torch.Generator().manual_seed(0))
    assert all(torch.equal(a, b) for a, b in zip(before, rnn.parameters()))
    assert set(TRAIN_INITS) == {"default", "sigmoid", "basic-tanh", "smart-tanh", "normal", "orthogonal", "identity"}
    with pytest.raises(InputError, match="init"):
        init_rnn(rnn, None, "xavier", torch.Generator())


def test_normal_init_is_gaussian_with_variance_one_over_h():
    """init "normal": W_hh ~ N(0, 1/H) (Engelken 2023's Gaussian coupling at g = 1), checked by its moments:
    mean 0 and variance 1/H to 4 standard errors over H^2 entries (Var of the sample variance ~ 2 s^4 / n)."""
    H = 200
    rnn = nn.RNN(3, H)
    before = rnn.weight_ih_l0.detach().clone()
    init_rnn(rnn, None, "normal", torch.Generator().manual_seed(0))
    W = rnn.weight_hh_l0.detach().double()
    n, var = W.numel(), 1.0 / H
    assert abs(float(W.mean())) < 4 * (var / n) ** 0.5
    assert abs(float(W.var()) - var) < 4 * var * (2 / n) ** 0.5
    assert torch.equal(rnn.weight_ih_l0.detach(), before)  # the rest stays PyTorch's
