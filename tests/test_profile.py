"""gradients.profile against explicit Jacobian products (svdvals), autograd adjoints and closed forms."""

import json
import math

import pytest
import torch

import rnnscope as rs

F64 = torch.float64


def _explicit(cell, trace, t):
    """log10 ||ds_t/ds_k||_2 and _F for k = 1..t by explicit, renormalised products: (B, t) each."""
    B, S = trace.B, cell.state_size
    spec = torch.zeros(B, t, dtype=F64)
    fro = torch.zeros(B, t, dtype=F64)
    fro[:, t - 1] = 0.5 * math.log10(S)
    P, L = torch.eye(S, dtype=F64).expand(B, S, S), torch.zeros(B, dtype=F64)
    for k in range(t - 1, 0, -1):
        P = P @ cell.jacobian(trace.inputs[k], trace.states[k])
        n = torch.linalg.matrix_norm(P)
        P, L = P / n[:, None, None], L + torch.log10(n)
        spec[:, k - 1] = L + torch.log10(torch.linalg.svdvals(P)[:, 0])
        fro[:, k - 1] = L
    return spec, fro


def _autograd_adjoint_norms(cell, x, t):
    states = []
    s = cell.zero_state(x.shape[1]).requires_grad_()
    for i in range(t):
        s = cell.step(x[i], s)
        s.retain_grad()
        states.append(s)
    H = getattr(cell, "hidden_size", cell.state_size)
    s[:, :H].sum().backward()
    return torch.stack([st.grad.norm(dim=1) for st in states]).T  # (B, t)


@pytest.mark.parametrize("kind,act", [("elman", "tanh"), ("pal", "sigmoid"), ("elman", "relu"), ("lstm", None), ("gru", None)])
@pytest.mark.parametrize("t", [None, 17])
def test_profile_matches_independent_references(kind, act, t):
    gen = torch.Generator().manual_seed(2)
    cell = rs.random_cell(kind, act or "tanh", hidden=5, input_size=3, gain=1.7, seed=4)
    x = torch.randn(30, 3, 3, generator=gen, dtype=F64)
    p = rs.profile(cell, x, t=t)
    tt = t or 30
    spec, fro = _explicit(cell, rs.unroll(cell, x), tt)
    assert p.t == tt and p.per_sequence_spectral.shape == (3, tt)
    assert torch.allclose(p.per_sequence_spectral, spec, rtol=0, atol=1e-9)
    assert torch.allclose(p.per_sequence_frobenius, fro, rtol=0, atol=1e-10)
    assert torch.allclose(p.log10_spectral, spec.mean(0), rtol=0, atol=1e-9)
    adj = _autograd_adjoint_norms(cell, x, tt)
    assert torch.allclose(10 ** p.per_sequence_adjoint, adj, rtol=1e-10, atol=0)
    assert p.state == ("(h, c)" if kind == "lstm" else "h")
    if kind in ("elman", "pal"):
        W = cell.W_hh
        gs = cell.activation.gamma * float(torch.linalg.svdvals(W)[0])
        d = torch.arange(tt - 1, -1, -1, dtype=F64)
        assert torch.allclose(p.log10_bound, d * math.log10(gs), atol=1e-12)
        assert (p.per_sequence_spectral <= p.log10_bound + 1e-9).all()  # Pascanu's bound holds
    else:
        assert p.log10_bound is None


def test_linear_profile_closed_form_and_json():
    g, S, T = 0.9, 4, 80  # horizon ceil(3 / -log10 0.9) = 66 < T
    cell = rs.ElmanCell(g * torch.eye(S, dtype=F64), torch.zeros(S, 1, dtype=F64), torch.zeros(S, dtype=F64), "identity")
    p = rs.profile(cell, torch.zeros(T, 1, dtype=F64))
    d = torch.arange(T - 1, -1, -1, dtype=F64)
    assert torch.allclose(p.log10_spectral, d * math.log10(g), atol=1e-12)
    assert torch.allclose(p.log10_frobenius, d * math.log10(g) + 0.5 * math.log10(S), atol=1e-12)
    # L = sum of h_T: dL/dh_k = (g^(T-k)) 1, norm sqrt(S) g^(T-k)
    assert torch.allclose(p.log10_adjoint, d * math.log10(g) + 0.5 * math.log10(S), atol=1e-12)
    assert p.rate_per_step == pytest.approx(math.log10(g), rel=1e-10)
    assert p.horizon == math.ceil(3 / -math.log10(g)) and p.horizon_kind == "fallen"
    assert rs.profile(cell, torch.zeros(40, 1, dtype=F64)).horizon is None  # not reached within 40 steps
    d_json = json.loads(json.dumps(p.to_dict(), allow_nan=False))
    for key in ("log10_spectral", "log10_frobenius", "log10_adjoint", "per_sequence", "rate_per_step", "horizon",
                "gamma", "sigma_max", "spectral_radius", "verdict", "note", "seconds", "state"):
        assert key in d_json
    assert len(d_json["log10_spectral"]) == T
    assert d_json["per_sequence"]["log10_spectral"][0] == pytest.approx(d_json["log10_spectral"])


def test_exactly_vanishing_profile_gives_null_in_json():
    # nilpotent W, identity activation: ds_T/ds_k = W^(T-k) = 0 once T-k >= S
    S, T = 3, 8
    W = torch.triu(torch.ones(S, S, dtype=F64), diagonal=1)
    cell = rs.ElmanCell(W, torch.zeros(S, 1, dtype=F64), torch.zeros(S, dtype=F64), "identity")
    d = rs.profile(cell, torch.zeros(T, 1, dtype=F64)).to_dict()
    assert d["log10_spectral"][: T - S] == [None] * (T - S)
    assert d["log10_spectral"][T - S] is not None
    json.dumps(d, allow_nan=False)


def test_profile_with_per_step_loss_terms_matches_autograd():
    """direct = dL/ds_k at every step (L = sum_k <c_k, s_k>): the adjoint profile comes from the VJP sweep."""
    gen = torch.Generator().manual_seed(8)
    cell = rs.random_cell("gru", hidden=4, input_size=2, seed=1)
    T, B = 25, 2
    x = torch.randn(T, B, 2, generator=gen, dtype=F64)
    c = torch.randn(T, B, 4, generator=gen, dtype=F64)
    p = rs.profile(cell, x, direct=c)
    states, s = [], cell.zero_state(B).requires_grad_()
    for i in range(T):
        s = cell.step(x[i], s)
        s.retain_grad()
        states.append(s)
    sum((c[i] * states[i]).sum() for i in range(T)).backward()
    ref = torch.stack([st.grad.norm(dim=1) for st in states]).T
    assert torch.allclose(10 ** p.per_sequence_adjoint, ref, rtol=1e-10, atol=0)


def test_a_trajectory_on_a_fixed_point_is_profiled_with_a_warning():
    """Zero inputs from s_0 = 0 (tanh, no bias) never move: every Jacobian is W_hh (phi'(0) = 1), the profile is
    ||W_hh^(t-k)||_2 (numpy matrix powers) and it carries the warning; a driven run carries none."""
    import numpy as np
    import rnnscope as rs
    cell = rs.random_cell("elman", "tanh", hidden=6, gain=0.9, seed=2)
    T = 12
    p = rs.profile(cell, torch.zeros(T, 1, 1, dtype=torch.float64))
    W = cell.W_hh.numpy()
    ref = [np.log10(np.linalg.norm(np.linalg.matrix_power(W, T - k), 2)) for k in range(1, T + 1)]
    np.testing.assert_allclose(p.log10_spectral.numpy(), ref, atol=1e-10)
    assert p.warnings == (rs.gradients.profile.FIXED_POINT_WARNING,) and p.to_dict()["warnings"] == list(p.warnings)
    driven = rs.profile(cell, torch.randn(T, 1, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64))
    assert driven.warnings == () and driven.to_dict()["warnings"] == []
