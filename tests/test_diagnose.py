"""diagnose: adjoints against step-by-step autograd through nn.*Cell loops, Jacobian products against explicit
products of jacrev Jacobians, the gradient norm against autograd through the module itself, the carry share
against the network with its carry term detached, closed forms, and the results' to_dict / summary / plot."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from rnnscope.interop.diagnose import diagnose, target_loss
from rnnscope.core.errors import InputError
from rnnscope.core.cells import FunctionCell
from torch_reference import (COMBO_IDS, COMBOS, D, jacobian_products, log10_norms, make_module, module_grad_norm,
                             reference)

F64 = torch.float64
T, B = 5, 2
ATOL = 1e-9  # log10 units


def _x(bf: bool, seed: int = 1, T_=T, B_=B):
    x = torch.randn(T_, B_, D, generator=torch.Generator().manual_seed(seed), dtype=F64)
    return x, (x.transpose(0, 1) if bf else x)


def _user_loss(out):  # every step matters, and nonlinearly
    return 0.5 * (out ** 2).sum() + (out * torch.linspace(-1, 1, out.shape[-1], dtype=out.dtype)).sum()


def _close_logs(got: torch.Tensor, ref: torch.Tensor, atol: float = ATOL):
    assert got.shape == ref.shape
    assert torch.equal(torch.isneginf(got), torch.isneginf(ref))  # exactly zero gradients in the same places
    fin = torch.isfinite(ref)
    torch.testing.assert_close(got[fin], ref[fin], rtol=0, atol=atol)


@pytest.mark.parametrize("kind,layers,bi,bf,bias", COMBOS, ids=COMBO_IDS)
def test_adjoints_jacobians_and_gradient_norm_equal_autograd(kind, layers, bi, bf, bias):
    m = make_module(kind, layers, bi, bf, bias)
    x, xl = _x(bf)
    loss_fn = _user_loss if layers == 1 or bias else None  # the default loss (sum of output[T]) for the rest
    d = diagnose(m, xl, loss_fn, jacobian=True, jacobian_sequences=1, attribution=False)
    ref = reference(m, x, loss_fn)
    assert d.loss == pytest.approx(ref["loss"], rel=1e-12, abs=1e-12)
    assert len(d.layers) == layers * (2 if bi else 1)
    for ld in d.layers:
        key = (ld.layer, 0 if ld.direction == "forward" else 1)
        _close_logs(ld.per_sequence_adjoint_h, log10_norms(ref["gh"][key]))
        if kind.startswith("lstm"):
            _close_logs(ld.per_sequence_adjoint_c, log10_norms(ref["gc"][key]))
        else:
            assert ld.per_sequence_adjoint_c is None
        prods, Pn = jacobian_products(m, ref, key[0], key[1], 0)  # (T, S, S) ds_T/ds_k, sequence 0
        spec = torch.log10(torch.linalg.svdvals(prods)[:, 0])
        torch.testing.assert_close(ld.per_sequence_spectral[0], spec, rtol=0, atol=1e-8)
        if kind.startswith("lstm"):
            hh = torch.log10(torch.linalg.svdvals(prods[:, :Pn, :Pn])[:, 0])
            cc = torch.log10(torch.linalg.svdvals(prods[:, Pn:, Pn:])[:, 0])
            torch.testing.assert_close(ld.per_sequence_spectral_hh[0], hh, rtol=0, atol=1e-8)
            torch.testing.assert_close(ld.per_sequence_spectral_cc[0], cc, rtol=0, atol=1e-8)
        else:
            assert ld.per_sequence_spectral_hh is None
    assert d.gradient_norm == pytest.approx(module_grad_norm(m, xl, loss_fn), rel=1e-10)


@pytest.mark.parametrize("kind,layers,bi", [("lstm", 2, False), ("lstm_proj", 1, True), ("gru", 2, True)])
def test_carry_share_equals_the_detached_carry_reference(kind, layers, bi):
    m = make_module(kind, layers, bi, False, True, seed=5, scale=1.0)
    x, _ = _x(False, seed=6, T_=7)
    d = diagnose(m, x, _user_loss, jacobian=False)
    full = reference(m, x, _user_loss)
    for ld in d.layers:
        key = (ld.layer, 0 if ld.direction == "forward" else 1)
        cut = reference(m, x, _user_loss, cut=key)  # the same network, this layer's carry term detached
        # dL/ds_k on the state (h_k, c_k): c_k's grad through the later steps only
        g = torch.cat([full["gh"][key], full["gc_state"][key]], -1) if key in full["gc"] else full["gh"][key]
        b = torch.cat([cut["gh"][key], cut["gc_state"][key]], -1) if key in cut["gc"] else cut["gh"][key]
        a = torch.linalg.vector_norm(g - b, dim=-1)
        nb = torch.linalg.vector_norm(b, dim=-1)
        want = (a / (a + nb)).T  # (B, T)
        torch.testing.assert_close(ld.per_sequence_carry_share, want, rtol=0, atol=1e-9)
        assert 0.02 < float(want.mean()) < 0.98  # a non-trivial split


def test_rnn_modules_have_no_carry_share():
    d = diagnose(make_module("rnn_tanh", 2), _x(False)[0], jacobian=False)
    assert all(ld.per_sequence_carry_share is None and ld.far_carry_share() is None for ld in d.layers)


def _linear_rnn(w: float, S: int = 4, T_: int = 40):
    """nn.RNN(tanh) with W_hh = w I and zero input weights, biases: h stays 0, so ds_T/ds_k = w^(T-k) I exactly."""
    m = nn.RNN(1, S, dtype=F64)
    with torch.no_grad():
        m.weight_hh_l0.copy_(w * torch.eye(S, dtype=F64))
        m.weight_ih_l0.zero_()
        m.bias_ih_l0.zero_()
        m.bias_hh_l0.zero_()
    return m, torch.zeros(T_, 3, 1, dtype=F64)


@pytest.mark.parametrize("dtype, T_", [(torch.float64, 400), (torch.float32, 80)])
def test_a_lower_layer_tail_beyond_the_dtype_range_against_its_closed_form(dtype, T_):
    """Two ReLU layers h^l_k = relu(a h^l_{k-1} + b x^l_k) with a = 1/100, b = 1/2, positive inputs (every unit
    active: the layers are linear), L = sum of h^1_T. Then ||dL/dh^1_k|| = a^(T-k) sqrt(H) and layer 0 collects
    the upstream b dL/dh^1_k of every step: dL/dh^0_k = b dL/dh^1_k + a dL/dh^0_{k+1} = b (T-k+1) a^(T-k) (1..1).
    Over T = 400 steps (float64) or 80 (float32) each row of layer 0's upstream spans 2 T decades, more than the
    dtype holds (about 630 and 83): each step must keep its own scale."""
    H, a, b = 3, 0.01, 0.5
    m = nn.RNN(H, H, num_layers=2, nonlinearity="relu", dtype=F64)
    with torch.no_grad():
        for l in range(2):
            getattr(m, f"weight_hh_l{l}").copy_(a * torch.eye(H, dtype=F64))
            getattr(m, f"weight_ih_l{l}").copy_(b * torch.eye(H, dtype=F64))
            getattr(m, f"bias_ih_l{l}").zero_()
            getattr(m, f"bias_hh_l{l}").zero_()
    x = torch.rand(T_, 2, H, generator=torch.Generator().manual_seed(0), dtype=F64) + 0.1
    d = diagnose(m, x, lambda out: out[-1].sum(), dtype=dtype)
    dist = torch.arange(T_ - 1, -1, -1, dtype=F64)  # T - k for k = 1..T
    top = dist * math.log10(a) + 0.5 * math.log10(H)
    below = math.log10(b) + torch.log10(dist + 1) + top
    tol = 1e-9 if dtype == torch.float64 else 1e-4  # log10 units
    for layer, want in ((1, top), (0, below)):
        got = torch.as_tensor(np.asarray(d.layers[layer].per_sequence_adjoint_h, dtype=float))  # (B, T)
        assert d.layers[layer].layer == layer
        torch.testing.assert_close(got, want.expand_as(got), rtol=0, atol=tol)
    assert float(below[0]) < (-700 if dtype == torch.float64 else -150)  # (the tail is beyond the dtype's range)


def test_closed_form_vanishing_profile_rate_horizon_and_far_distance():
    m, x = _linear_rnn(0.5)
    d = diagnose(m, x, jacobian=True)
    ld = d.layers[0]
    dist = torch.arange(39, -1, -1, dtype=F64)  # T - k for k = 1..40
    torch.testing.assert_close(ld.log10_spectral, dist * math.log10(0.5), rtol=0, atol=1e-12)
    # L = sum of h_T: dL/dh_T = ones (norm 2), dL/dh_k = 0.5^(T-k) ones
    torch.testing.assert_close(ld.log10_adjoint_h, dist * math.log10(0.5) + math.log10(2.0), rtol=0, atol=1e-12)
    assert ld.rate_per_step == pytest.approx(math.log10(0.5), abs=1e-12)
    assert (ld.horizon, ld.horizon_kind) == (10, "fallen")  # 0.5^10 < 1e-3 < 0.5^9
    assert ld.far_distance == 20  # 0.5^20 < 1e-6 < 0.5^19
    assert ld.theory_verdict == "vanishing guaranteed" and ld.sigma_max == pytest.approx(0.5) and ld.gamma == 1.0
    assert ld.verdict.startswith("vanishing") and "at d = 10 " in ld.verdict
    assert any("from 20 steps back is below 1e-6" in a for a in d.advice)
    # with jacobian=False the rate and horizon come from the adjoint profile, here the same line
    da = diagnose(m, x, jacobian=False).layers[0]
    assert da.rate_source == "adjoint" and da.rate_per_step == pytest.approx(math.log10(0.5), abs=1e-12)
    assert da.per_sequence_spectral is None and da.far_distance == 20


def test_exploding_profile_stays_finite_in_float32():
    m, x = _linear_rnn(3.0, T_=300)  # 3^299 ~ 1e142: beyond float32 by far
    m = m.float()
    d = diagnose(m, x.float(), jacobian=True, jacobian_sequences=1, dtype=torch.float32)
    ld = d.layers[0]
    assert d.dtype == "float32"
    # the adjoint passes float32's largest number (log10 3.4e38 = 38.5) at k = T - d, 2 3^d > 3.4e38: the NaN hunt
    # in the model's own float32 reports the first such step of the backward pass
    first = max(k for k in range(1, 301) if (300 - k) * math.log10(3.0) + math.log10(2.0) > math.log10(3.4028234663852886e38))
    assert d.nonfinite.where == "backward" and d.nonfinite.what == "inf" and d.nonfinite.step == first
    dist = torch.arange(299, -1, -1, dtype=F64)
    torch.testing.assert_close(ld.log10_adjoint_h, dist * math.log10(3.0) + math.log10(2.0), rtol=0, atol=1e-3)
    torch.testing.assert_close(ld.log10_spectral, dist * math.log10(3.0), rtol=0, atol=1e-3)
    assert ld.horizon_kind == "risen" and any("exploding" in a for a in d.advice)


@pytest.mark.parametrize("which", ["lstm_cell", "gru_cell", "rnn_cell", "function"])
def test_cell_loops_and_step_functions_equal_autograd(which):
    torch.manual_seed(7)
    x = torch.randn(6, 2, D, dtype=F64)
    if which == "function":
        W = torch.randn(4, 4, dtype=F64) * 0.6
        U = torch.randn(4, D, dtype=F64)
        fn = lambda xk, h: torch.tanh(W @ h + U @ xk) + 0.3 * h  # noqa: E731
        model = FunctionCell(fn, state_size=4, input_size=D)
        step = lambda xk, h: torch.tanh(h @ W.T + xk @ U.T) + 0.3 * h  # noqa: E731
    else:
        model = {"lstm_cell": nn.LSTMCell, "gru_cell": nn.GRUCell, "rnn_cell": nn.RNNCell}[which](D, 4, dtype=F64)
        step = model
    h = torch.zeros(2, 4, dtype=F64, requires_grad=True)
    c = torch.zeros(2, 4, dtype=F64, requires_grad=True)
    hs, cs = [], []
    for t in range(6):
        if which == "lstm_cell":
            h, c = step(x[t], (h, c))
            c.retain_grad()
            cs.append(c)
        else:
            h = step(x[t], h)
        h.retain_grad()
        hs.append(h)
    (torch.stack(hs) ** 2).sum().backward()
    d = diagnose(model, x, lambda out: (out ** 2).sum())
    ld = d.layers[0]
    _close_logs(ld.per_sequence_adjoint_h, log10_norms(torch.stack([v.grad for v in hs])))
    if which == "lstm_cell":
        _close_logs(ld.per_sequence_adjoint_c, log10_norms(torch.stack([v.grad for v in cs])))
    if which == "function":
        assert d.gradient_norm is None and ld.sigma_max is None
    else:
        gn = math.sqrt(sum(float((p.grad ** 2).sum()) for p in model.parameters()))
        assert d.gradient_norm == pytest.approx(gn, rel=1e-10)


def test_numpy_inputs_and_targets_with_target_loss():
    m = make_module("gru", 1, False, True, True)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 6, D))  # (B, T, D): batch_first
    y = rng.integers(0, 3, size=(3,))  # classes at the last step
    d = diagnose(m, x, target_loss("ce", y, batch_first=True), targets=None)
    with torch.no_grad():
        out, _ = m(torch.as_tensor(x))
    want = torch.nn.functional.cross_entropy(out[:, -1], torch.as_tensor(y))
    assert d.loss == pytest.approx(float(want), rel=1e-12)
    d2 = diagnose(m, x, lambda o, t: torch.nn.functional.cross_entropy(o[:, -1], t), targets=y)
    torch.testing.assert_close(d2.layers[0].per_sequence_adjoint_h, d.layers[0].per_sequence_adjoint_h, rtol=0, atol=0)
    ym = rng.standard_normal((3, 6, 3))
    d3 = diagnose(m, x, target_loss("mse", ym, batch_first=True))
    assert d3.loss == pytest.approx(float(((out - torch.as_tensor(ym)) ** 2).mean()), rel=1e-12)


@pytest.mark.parametrize("call,match", [
    (lambda m, x: diagnose(m, x, targets=np.zeros(3)), "targets without a loss_fn"),
    (lambda m, x: diagnose(m, x, lambda o: o.sum(1)), "scalar tensor"),
    (lambda m, x: diagnose(m, x, target_loss("mse", np.zeros((4, 3)))), r"targets: expected shape \(5, 2, 3\).*got \(4, 3\)"),
    (lambda m, x: diagnose(m, x, target_loss("ce", np.array([0, 5]))), r"class indices in \[0, 3\)"),
    (lambda m, x: diagnose(m, x, lambda o, t: o[:, t].sum(), targets=np.array([9])), "loss_fn: expected it to accept"),
    (lambda m, x: diagnose(m, x, jacobian_sequences=0), "jacobian_sequences"),
    (lambda m, x: diagnose(m, x[:, :, :2]), "input size D = 3"),
    (lambda m, x: diagnose(nn.Linear(3, 3), x), "expected nn.RNN"),
    (lambda m, x: target_loss("ce", np.zeros(2)), "integer class indices"),
    (lambda m, x: target_loss("l1", np.zeros(2)), "mse, ce"),
])
def test_bad_calls_raise_input_errors(call, match):
    m = make_module("gru")
    x = _x(False)[0]
    with pytest.raises(InputError, match=match):
        call(m, x)


def test_overflowing_forward_pass_is_reported_not_raised():
    """A relu RNN with W_hh = 1e30 I overflows float64 at step 12: no profiles, and the NaN hunt's finding: the first
    step whose log10 ||h_k|| exceeds the median of the finite ones by 6, from an explicit loop (numpy median)."""
    m = make_module("rnn_relu")
    with torch.no_grad():
        m.weight_hh_l0.copy_(1e30 * torch.eye(3, dtype=F64))
        m.weight_ih_l0.fill_(1.0)
    x = torch.ones(40, 1, D, dtype=F64)
    d = diagnose(m, x)
    h, norms = torch.zeros(1, 3, dtype=F64), []
    for k in range(40):
        h = torch.relu(x[k] @ m.weight_ih_l0.detach().T + m.bias_ih_l0.detach() + h @ m.weight_hh_l0.detach().T
                       + m.bias_hh_l0.detach())
        big = h.abs().max()  # ||h|| = big ||h / big||: the squares of 1e180 overflow
        norms.append(float(torch.log10(big) + torch.log10(torch.linalg.vector_norm(h / big))))
    fin = [v for v in norms if math.isfinite(v)]
    med = float(np.median(fin))
    step = next(k + 1 for k, v in enumerate(norms) if v > med + 6 or not math.isfinite(v))
    assert d.layers == () and d.nonfinite.where == "forward" and d.nonfinite.step == step
    assert d.nonfinite.log10_median == pytest.approx(med, abs=1e-9) and math.isnan(d.loss)
    assert d.advice[0] == d.nonfinite.message() and "forward pass overflows" in d.advice[1]
    assert d.to_dict()["nonfinite"]["step"] == step and d.summary().startswith("forward state of the module")

    # a NaN loss on finite states: found where it is, the profiles of a finite float64 analysis absent
    d = diagnose(make_module("gru"), _x(False)[0], lambda o: o.sum() * float("nan"))
    assert d.nonfinite.where == "loss" and d.nonfinite.what == "nan" and d.layers == ()


def test_to_dict_summary_and_plot_carry_the_numbers(tmp_path):
    m = make_module("lstm", 2, True, False, True, seed=2, scale=0.6)
    x = _x(False, T_=12, B_=3)[0]
    d = diagnose(m, x, _user_loss, jacobian=True)
    j = d.to_dict()
    assert {"layers", "advice", "seconds"} <= set(j)
    keys = {"layer", "direction", "log10_adjoint_h", "log10_adjoint_c", "log10_spectral", "sigma_max", "gamma",
            "rate_per_step", "horizon", "verdict"}
    for ld, jl in zip(d.layers, j["layers"]):
        assert keys <= set(jl)
        assert jl["log10_adjoint_h"] == pytest.approx(ld.per_sequence_adjoint_h.mean(0).tolist(), abs=1e-15)
        assert jl["sigma_max"] == pytest.approx(float(torch.linalg.svdvals(
            getattr(m, f"weight_hh_l{ld.layer}" + ("_reverse" if ld.direction == "reverse" else "")).detach())[0]))
        assert set(jl["sigma_max_gates"]) == set("ifgo")
    text = str(d)
    assert text == d.summary() and all(ld.verdict in text for ld in d.layers)
    fig = d.plot(tmp_path / "d.png")
    assert (tmp_path / "d.png").stat().st_size > 10_000
    lines = {ln.get_gid(): ln for ax in fig.axes for ln in ax.lines}
    for ld in d.layers:
        row = f"L{ld.layer} {'fwd' if ld.direction == 'forward' else 'rev'}"
        np.testing.assert_allclose(lines[f"adjoint_h:{row}"].get_ydata(), ld.log10_adjoint_h.numpy(), atol=1e-12)
        np.testing.assert_allclose(lines[f"spectral:{row}"].get_ydata(), ld.log10_spectral.numpy(), atol=1e-12)
        g = ld.log10_credit.numpy()  # the credit panel: G(d) - G(0), what the verdict reads
        np.testing.assert_allclose(lines[f"credit:{row}"].get_ydata(), g - g[0], atol=1e-12)
        np.testing.assert_allclose(lines[f"carry:{row}"].get_ydata(), ld.carry_share.numpy(), atol=1e-12)
    heat = [im for ax in fig.axes for im in ax.images if im.get_gid() == "heatmap"][0]
    np.testing.assert_allclose(np.asarray(heat.get_array()), torch.stack([ld.log10_adjoint_h for ld in d.layers]).numpy(),
                               atol=1e-12)
