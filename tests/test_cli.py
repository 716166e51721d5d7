"""cli: `rnnscope profile`, `bptt`, `demo` against independent references, and its error contract.

References are computed here from the same files, without rnnscope: explicit forward passes, per-step
Jacobians from the formula (diag(phi'(a)) W_hh for Elman, W_hh diag(phi'(h)) for Pal, torch.autograd for
LSTM/GRU through torch.nn.LSTMCell/GRUCell), explicit products per k with torch.linalg.svdvals and
matrix_norm, adjoints and gradients by torch.autograd (one W_hh copy per step for the per-step parts).
"""

from __future__ import annotations

import atexit
import contextlib
import io
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rnnscope.app.cli import main

F64 = torch.float64
RNNSCOPE = Path(sys.executable).parent / "rnnscope"
GAMMA = {"sigmoid": 0.25, "tanh": 1.0, "relu": 1.0, "identity": 1.0}
PHI = {
    "sigmoid": (torch.sigmoid, lambda a: torch.sigmoid(a) * (1 - torch.sigmoid(a))),
    "tanh": (torch.tanh, lambda a: 1 - torch.tanh(a) ** 2),
    "relu": (torch.relu, lambda a: (a > 0).to(a.dtype)),
    "identity": (lambda a: a, lambda a: torch.ones_like(a)),
}


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def run_captured(argv):
    """main() with stdout/stderr captured by redirection (for hypothesis, where capsys is not per example)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def t64(a):
    return torch.as_tensor(np.asarray(a, dtype=np.float64))


# ------------------------------------------------------------------------------------- references

def ref_vanilla_forward(kind, act, W, U, b, x, h0):
    """h_0..h_T (T+1, B, S) and J_1..J_T (T, B, S, S) from the formulas."""
    phi, dphi = PHI[act]
    hs, Js = [h0], []
    for s in range(x.shape[0]):
        h = hs[-1]
        if kind == "elman":  # h_t = phi(W h + U x + b), J = diag(phi'(a)) W
            a = h @ W.T + x[s] @ U.T + b
            Js.append(torch.diag_embed(dphi(a)) @ W)
            hs.append(phi(a))
        else:  # pal: h_t = W phi(h) + U x + b, J = W diag(phi'(h))
            Js.append(W @ torch.diag_embed(dphi(h)))
            hs.append(phi(h) @ W.T + x[s] @ U.T + b)
    return torch.stack(hs), torch.stack(Js)


def ref_norms(Js, t):
    """log10 ||J_t ... J_{k+1}||_2 and _F for k = 1..t, one explicit product per k: (B, t) each."""
    B, S = Js.shape[1], Js.shape[2]
    spec, frob = torch.zeros(B, t, dtype=F64), torch.zeros(B, t, dtype=F64)
    for k in range(1, t + 1):
        P = torch.eye(S, dtype=F64).expand(B, S, S)
        for j in range(k + 1, t + 1):
            P = Js[j - 1] @ P  # left-multiply: J_t ... J_{k+1}, built from the right
        spec[:, k - 1] = torch.log10(torch.linalg.svdvals(P)[:, 0])
        frob[:, k - 1] = torch.log10(torch.linalg.matrix_norm(P))
    return spec, frob


def ref_adjoint(step, s0, x, t, H):
    """log10 ||dL/ds_k|| (B, t) for L = sum of the first H entries of s_t, by autograd."""
    states, s = [], s0.clone().requires_grad_()
    for i in range(t):
        s = step(x[i], s)
        s.retain_grad()
        states.append(s)
    s[:, :H].sum().backward()
    return torch.stack([torch.log10(q.grad.norm(dim=1)) for q in states]).T


def ref_rate(mean_spec):
    t = len(mean_spec)
    d = np.arange(t - 1, -1, -1, dtype=float)
    y = np.asarray(mean_spec, dtype=float)
    sel = (d >= (t - 1) / 2) & np.isfinite(y)
    return float(np.polyfit(d[sel], y[sel], 1)[0]) if sel.sum() >= 2 else None


def ref_horizon(mean_spec):
    y = list(mean_spec)[::-1]
    for d in range(1, len(y)):
        if y[d] <= y[0] - 3:
            return d, "fallen"
        if y[d] >= y[0] + 3:
            return d, "risen"
    return None, None


def as_tensor_nulls(v):
    """JSON lists back to tensors; null is log10 of an exactly zero norm, -inf."""
    a = np.array(v, dtype=object)
    a[a == None] = -np.inf  # noqa: E711 - elementwise comparison with None
    return torch.tensor(a.astype(float), dtype=F64)


def vanilla_files(tmp_path, S=5, D=2, T=12, B=3, gain=1.0, seed=0, W=None, head=False, O=3):
    rng = np.random.default_rng(seed)
    W = gain * rng.standard_normal((S, S)) / np.sqrt(S) if W is None else W
    arrays = dict(W_hh=W, W_xh=rng.standard_normal((S, D)), b_h=0.1 * rng.standard_normal(S))
    if head:
        arrays.update(W_hy=rng.standard_normal((O, S)), b_y=rng.standard_normal(O))
    np.savez(tmp_path / "w.npz", **arrays)
    x = rng.standard_normal((T, B, D)) if B > 1 else rng.standard_normal((T, D))
    np.save(tmp_path / "x.npy", x)
    h0 = 0.3 * rng.standard_normal((B, S))
    np.save(tmp_path / "h0.npy", h0)
    return arrays, x, h0


# ------------------------------------------------------------------------------------- help

def test_help_lists_every_command_and_option(capsys):
    code, out, err = run(capsys, "--help")
    assert code == 0 and err == ""
    for cmd in ("profile", "bptt", "lyapunov", "theory", "phase", "sweep", "results", "claims", "reproduce", "demo"):
        assert cmd in out
    code, out, _ = run(capsys, "profile", "--help")
    assert code == 0
    for opt in ("--cell", "--activation", "--hidden", "--input-size", "--length", "--batch", "--gain", "--init",
                "--seed", "--dtype", "--weights", "--inputs", "--h0", "--t", "--input-scale", "--json", "--plot"):
        assert opt in out, opt
    for choice in ("elman", "pal", "lstm", "gru", "sigmoid", "relu", "identity", "orthogonal", "float32"):
        assert choice in out, choice
    code, out, _ = run(capsys, "bptt", "--help")
    for opt in ("--cell", "--activation", "--weights", "--inputs", "--targets", "--head", "--loss-at", "--h0", "--json"):
        assert opt in out, opt
    code, out, _ = run(capsys, "demo", "--help")
    assert code == 0 and "--out" in out and "--quick" in out
    code, out, _ = run(capsys)  # no arguments: the help, not an error
    assert code == 0 and "profile" in out


# ------------------------------------------------------------------------------------- profile: numbers

VANILLA_CASES = [
    ("elman", "tanh", 0.5, 12, None),
    ("elman", "sigmoid", 3.0, 12, None),
    ("elman", "relu", 1.2, 10, 6),
    ("elman", "identity", 0.9, 9, None),
    ("pal", "tanh", 1.5, 12, 7),
    ("pal", "sigmoid", 5.0, 8, None),
]


@pytest.mark.parametrize("kind,act,gain,T,t", VANILLA_CASES)
def test_profile_json_matches_explicit_products(tmp_path, capsys, kind, act, gain, T, t):
    arrays, x, h0 = vanilla_files(tmp_path, T=T, gain=gain, seed=T)
    argv = ["profile", "--cell", kind, "--activation", act, "--weights", tmp_path / "w.npz",
            "--inputs", tmp_path / "x.npy", "--h0", tmp_path / "h0.npy", "--json"]
    if t is not None:
        argv += ["--t", t]
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    assert err == ""
    d = json.loads(out)
    tt = t or T
    W, U, b = t64(arrays["W_hh"]), t64(arrays["W_xh"]), t64(arrays["b_h"])
    xs, s0 = t64(x), t64(h0)
    hs, Js = ref_vanilla_forward(kind, act, W, U, b, xs, s0)
    spec, frob = ref_norms(Js, tt)

    phi, _ = PHI[act]

    def step(xi, h):
        return phi(h @ W.T + xi @ U.T + b) if kind == "elman" else phi(h) @ W.T + xi @ U.T + b

    adj = ref_adjoint(step, s0, xs, tt, 5)
    for key in ("log10_spectral", "log10_frobenius", "log10_adjoint", "per_sequence", "rate_per_step", "horizon",
                "gamma", "sigma_max", "spectral_radius", "verdict", "note", "seconds", "state"):
        assert key in d, key
    assert d["state"] == "h" and d["t"] == tt and d["batch"] == 3 and d["cell"] == kind and d["activation"] == act
    assert torch.allclose(as_tensor_nulls(d["per_sequence"]["log10_spectral"]), spec, atol=1e-7, rtol=0)
    assert torch.allclose(as_tensor_nulls(d["per_sequence"]["log10_frobenius"]), frob, atol=1e-10, rtol=0)
    assert torch.allclose(as_tensor_nulls(d["per_sequence"]["log10_adjoint"]), adj, atol=1e-10, rtol=0)
    assert torch.allclose(as_tensor_nulls(d["log10_spectral"]), spec.mean(0), atol=1e-7, rtol=0)
    assert torch.allclose(as_tensor_nulls(d["log10_frobenius"]), frob.mean(0), atol=1e-10, rtol=0)
    assert torch.allclose(as_tensor_nulls(d["log10_adjoint"]), adj.mean(0), atol=1e-10, rtol=0)
    # the weights' promise
    sigma = float(torch.linalg.svdvals(W)[0])
    rho = float(torch.linalg.eigvals(W).abs().max())
    g = GAMMA[act]
    assert d["gamma"] == g
    assert d["sigma_max"] == pytest.approx(sigma, rel=1e-12)
    assert d["spectral_radius"] == pytest.approx(rho, rel=1e-10)
    assert d["verdict"] == ("vanishing guaranteed" if sigma < 1 / g else "exploding possible")
    assert ("eigenvalue test" in d["note"]) == (rho < 1 / g <= sigma)
    bound = torch.tensor([(tt - k) * math.log10(g * sigma) for k in range(1, tt + 1)], dtype=F64)
    assert torch.allclose(as_tensor_nulls(d["log10_bound"]), bound, atol=1e-12, rtol=0)
    rate = ref_rate(spec.mean(0).tolist())
    assert d["rate_per_step"] == (None if rate is None else pytest.approx(rate, abs=1e-7))
    assert (d["horizon"], d["horizon_kind"]) == ref_horizon(spec.mean(0).tolist())
    assert 0 < d["seconds"] < 30
    if sigma < 1 / g:  # the theorem: every product below the bound
        assert (spec <= bound + 1e-9).all()


def test_profile_single_sequence_inputs_and_zero_h0(tmp_path, capsys):
    arrays, x, _ = vanilla_files(tmp_path, T=9, B=1, seed=5, gain=1.4)
    assert x.shape == (9, 2)
    code, out, err = run(capsys, "profile", "--weights", tmp_path / "w.npz", "--inputs", tmp_path / "x.npy", "--json")
    assert code == 0, err
    d = json.loads(out)
    _, Js = ref_vanilla_forward("elman", "tanh", t64(arrays["W_hh"]), t64(arrays["W_xh"]), t64(arrays["b_h"]),
                                t64(x)[:, None, :], torch.zeros(1, 5, dtype=F64))
    spec, frob = ref_norms(Js, 9)
    assert d["batch"] == 1 and len(d["log10_spectral"]) == 9
    assert torch.allclose(torch.tensor(d["log10_spectral"], dtype=F64), spec[0], atol=1e-7, rtol=0)
    assert torch.allclose(torch.tensor(d["log10_frobenius"], dtype=F64), frob[0], atol=1e-10, rtol=0)
    assert d["inputs"].endswith("x.npy") and d["h0"] == "zeros" and d["model"]["source"] == "weights"


def test_profile_weights_without_inputs_uses_zeros_of_length(tmp_path, capsys):
    S = 4
    W = np.diag([0.5, -0.9, 0.3, 0.7])  # identity activation, zero inputs, zero bias: J = W exactly
    np.savez(tmp_path / "w.npz", W_hh=W, W_xh=np.ones((S, 1)), b_h=np.zeros(S))
    code, out, err = run(capsys, "profile", "--activation", "identity", "--weights", tmp_path / "w.npz",
                         "--length", 20, "--batch", 2, "--json")
    assert code == 0, err
    d = json.loads(out)
    assert d["batch"] == 2 and d["t"] == 20 and d["inputs"] == "zeros"
    # ||W^(t-k)||_2 = 0.9^(t-k), ||W^(t-k)||_F = sqrt(sum lambda_i^(2(t-k)))
    ks = np.arange(1, 21)
    assert np.allclose(d["log10_spectral"], (20 - ks) * np.log10(0.9), atol=1e-9)
    fro = 0.5 * np.log10((np.abs(np.diag(W))[None, :] ** (2 * (20 - ks))[:, None]).sum(1))
    assert np.allclose(d["log10_frobenius"], fro, atol=1e-12)
    assert d["verdict"] == "vanishing guaranteed" and d["rate_per_step"] == pytest.approx(np.log10(0.9), abs=1e-9)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_profile_gated_cells_against_torch_modules(tmp_path, capsys, kind):
    H, D, T, B = 3, 2, 8, 2
    G = 4 if kind == "lstm" else 3
    rng = np.random.default_rng(7)
    arrays = dict(W_hh=rng.standard_normal((G * H, H)), W_xh=rng.standard_normal((G * H, D)),
                  b_h=rng.standard_normal(G * H), b_hh=rng.standard_normal(G * H))
    np.savez(tmp_path / "w.npz", **arrays)
    x = rng.standard_normal((T, B, D))
    np.save(tmp_path / "x.npy", x)
    code, out, err = run(capsys, "profile", "--cell", kind, "--weights", tmp_path / "w.npz",
                         "--inputs", tmp_path / "x.npy", "--json")
    assert code == 0, err
    d = json.loads(out)
    mod = (torch.nn.LSTMCell if kind == "lstm" else torch.nn.GRUCell)(D, H).double()
    with torch.no_grad():
        mod.weight_ih.copy_(t64(arrays["W_xh"]))
        mod.weight_hh.copy_(t64(arrays["W_hh"]))
        mod.bias_ih.copy_(t64(arrays["b_h"]))
        mod.bias_hh.copy_(t64(arrays["b_hh"]))
    S = 2 * H if kind == "lstm" else H

    def step(xi, s):  # s (B, S): the full state, (h, c) stacked for the LSTM
        if kind == "lstm":
            h, c = mod(xi, (s[:, :H], s[:, H:]))
            return torch.cat([h, c], 1)
        return mod(xi, s)

    xs = t64(x)
    s, Js = torch.zeros(B, S, dtype=F64), []
    for i in range(T):
        Js.append(torch.stack([torch.autograd.functional.jacobian(lambda v: step(xs[i, b:b + 1], v[None])[0], s[b])
                               for b in range(B)]))
        with torch.no_grad():
            s = step(xs[i], s)
    spec, frob = ref_norms(torch.stack(Js), T)
    adj = ref_adjoint(step, torch.zeros(B, S, dtype=F64), xs, T, H)
    assert d["state"] == ("(h, c)" if kind == "lstm" else "h") and d["state_size"] == S
    assert d["activation"] is None and d["gamma"] is None
    assert torch.allclose(as_tensor_nulls(d["per_sequence"]["log10_spectral"]), spec, atol=1e-7, rtol=0)
    assert torch.allclose(as_tensor_nulls(d["per_sequence"]["log10_frobenius"]), frob, atol=1e-10, rtol=0)
    assert torch.allclose(as_tensor_nulls(d["per_sequence"]["log10_adjoint"]), adj, atol=1e-10, rtol=0)


def test_profile_random_model_inits(capsys):
    # orthogonal: every singular value and |eigenvalue| equals the gain
    code, out, _ = run(capsys, "profile", "--init", "orthogonal", "--gain", 0.7, "--hidden", 20, "--length", 30, "--json")
    d = json.loads(out)
    assert code == 0 and d["sigma_max"] == pytest.approx(0.7, rel=1e-12)
    assert d["spectral_radius"] == pytest.approx(0.7, rel=1e-12) and d["verdict"] == "vanishing guaranteed"
    # identity init, tanh, zero inputs, zero bias: h stays 0, J = g I: log10 ||.||_2 = (t-k) log10 g exactly
    code, out, _ = run(capsys, "profile", "--init", "identity", "--gain", 1.3, "--hidden", 6, "--length", 25, "--json")
    d = json.loads(out)
    ks = np.arange(1, 26)
    assert np.allclose(d["log10_spectral"], (25 - ks) * np.log10(1.3), atol=1e-9)
    assert np.allclose(d["log10_frobenius"], (25 - ks) * np.log10(1.3) + 0.5 * np.log10(6), atol=1e-12)
    assert d["verdict"] == "exploding possible" and d["model"] == {
        "source": "random", "hidden": 6, "input_size": 1, "gain": 1.3, "init": "identity", "seed": 0, "dtype": "float64"}
    # normal init N(0, g^2/S), S = 300: sigma_max -> 2g, rho -> g (circular law), to finite-size accuracy
    code, out, _ = run(capsys, "profile", "--gain", 0.5, "--hidden", 300, "--length", 2, "--json")
    d = json.loads(out)
    assert d["sigma_max"] == pytest.approx(2 * 0.5, rel=0.08)
    assert d["spectral_radius"] == pytest.approx(0.5, rel=0.08)


def test_profile_input_scale_and_seed(capsys):
    base = ["profile", "--init", "identity", "--gain", 1.0, "--hidden", 5, "--length", 15, "--json"]
    d0 = json.loads(run(capsys, *base)[1])
    assert np.allclose(d0["log10_spectral"], 0.0, atol=1e-12)  # zero inputs: J = I exactly
    d1 = json.loads(run(capsys, *base, "--input-scale", 0.5)[1])
    d1b = json.loads(run(capsys, *base, "--input-scale", 0.5)[1])
    d2 = json.loads(run(capsys, *base, "--input-scale", 0.5, "--seed", 1)[1])
    # random inputs move tanh off 0: every phi' < 1, so ||prod diag(phi')|| = max_i prod phi'_i < 1 for k < t
    assert all(v < -1e-6 for v in d1["log10_spectral"][:-1]) and abs(d1["log10_spectral"][-1]) < 1e-12
    assert d1["log10_spectral"] == d1b["log10_spectral"]  # seeded
    assert d1["log10_spectral"] != d2["log10_spectral"]
    assert d1["inputs"].startswith("random N(0, 0.5^2)")


@pytest.mark.parametrize("dtype", ["float16", "float32", "longdouble", "int8", "uint64", "bool"])
def test_files_of_any_real_dtype_are_read_as_float64(tmp_path, capsys, dtype):
    arrays, x, _ = vanilla_files(tmp_path, T=6, B=2, seed=4)
    xs = (np.abs(x) * 3).astype(dtype)  # the numbers this dtype holds
    np.save(tmp_path / "xd.npy", xs)
    np.save(tmp_path / "x64.npy", xs.astype(np.float64))
    np.savez(tmp_path / "wd.npz", **{k: (v if dtype in ("bool", "uint64", "int8") else v.astype(dtype))
                                     for k, v in arrays.items()})
    d = json.loads(run(capsys, "profile", "--weights", tmp_path / "wd.npz", "--inputs", tmp_path / "xd.npy", "--json")[1])
    np.savez(tmp_path / "w64.npz", **{k: np.asarray(v, dtype=np.float64) for k, v in np.load(tmp_path / "wd.npz").items()})
    ref = json.loads(run(capsys, "profile", "--weights", tmp_path / "w64.npz", "--inputs", tmp_path / "x64.npy", "--json")[1])
    assert d["log10_spectral"] == ref["log10_spectral"] and d["sigma_max"] == ref["sigma_max"]
    y = np.arange(12).reshape(6, 2) % 5
    np.save(tmp_path / "y.npy", y.astype(dtype) if dtype != "bool" else y.astype(np.int64))
    code, out, err = run(capsys, "bptt", "--weights", tmp_path / "wd.npz", "--inputs", tmp_path / "xd.npy",
                         "--targets", tmp_path / "y.npy", "--head", "ce", "--json")
    assert code == 0, err
    E, _, _ = ref_bptt("elman", "tanh", dict(np.load(tmp_path / "w64.npz")), xs.astype(np.float64), y, "ce", "all", None)
    assert json.loads(out)["loss"] == pytest.approx(E, rel=1e-12)


def test_profile_float32_close_to_float64(tmp_path, capsys):
    vanilla_files(tmp_path, T=10, gain=1.2, seed=3)
    args = ["profile", "--weights", tmp_path / "w.npz", "--inputs", tmp_path / "x.npy", "--json"]
    d64 = json.loads(run(capsys, *args)[1])
    d32 = json.loads(run(capsys, *args, "--dtype", "float32")[1])
    assert d32["model"]["dtype"] == "float32"
    assert np.allclose(d32["log10_spectral"], d64["log10_spectral"], atol=1e-4)


def test_profile_human_summary_and_plot(tmp_path, capsys):
    arrays, _, _ = vanilla_files(tmp_path, T=30, gain=0.6, seed=1)
    code, out, err = run(capsys, "profile", "--weights", tmp_path / "w.npz", "--inputs", tmp_path / "x.npy",
                         "--plot", tmp_path / "p.svg")
    assert code == 0 and err == ""
    sigma = float(np.linalg.svd(arrays["W_hh"], compute_uv=False)[0])
    rho = float(np.abs(np.linalg.eigvals(arrays["W_hh"])).max())
    assert f"{sigma:.4g}" in out and f"{rho:.4g}" in out
    assert ("vanishing guaranteed" if sigma < 1 else "exploding possible") in out
    for word in ("verdict", "note", "gamma", "sigma_max", "rho", "rate", "horizon", "||ds_t/ds_k||_2"):
        assert word in out, word
    assert (tmp_path / "p.svg").read_text().lstrip().startswith(("<?xml", "<svg"))
    d = json.loads(run(capsys, "profile", "--weights", tmp_path / "w.npz", "--inputs", tmp_path / "x.npy", "--json",
                       "--plot", tmp_path / "p.png")[1])
    assert d["plot"].endswith("p.png") and (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------------------------- bptt: numbers

def ref_bptt(kind, act, arrays, x, y, head, loss_at, h0):
    """Loss, gradients and per-step contributions C[t, k] by autograd, with one W_hh copy per step k."""
    phi, _ = PHI[act]
    S = arrays["W_hh"].shape[0]
    W = t64(arrays["W_hh"])
    Ws = [W.clone().requires_grad_() for _ in range(x.shape[0])]  # step k uses Ws[k-1]
    U, b = t64(arrays["W_xh"]).requires_grad_(), t64(arrays["b_h"]).requires_grad_()
    Why = (t64(arrays["W_hy"]) if "W_hy" in arrays else torch.eye(S, dtype=F64)).requires_grad_()
    by = (t64(arrays["b_y"]) if "b_y" in arrays else torch.zeros(Why.shape[0], dtype=F64)).requires_grad_()
    xs = t64(x) if x.ndim == 3 else t64(x)[:, None, :]
    T, B = xs.shape[:2]
    h = torch.zeros(B, S, dtype=F64) if h0 is None else t64(h0).expand(B, S)
    Es = []
    for k in range(T):
        h = phi(h @ Ws[k].T + xs[k] @ U.T + b) if kind == "elman" else phi(h) @ Ws[k].T + xs[k] @ U.T + b
        o = h @ Why.T + by
        if head == "mse":
            yk = t64(y)[k] if y.ndim == 3 else t64(y)[k][None].expand(B, -1)
            Es.append(0.5 * ((o - yk) ** 2).sum(-1).mean())
        else:
            yk = torch.as_tensor(y[k]).long().reshape(-1).expand(B)
            Es.append(torch.nn.functional.cross_entropy(o, yk))
    steps = range(1, T + 1) if loss_at == "all" else [T]
    E = sum(Es[t - 1] for t in steps)
    params = [*Ws, U, b, Why, by]
    g = torch.autograd.grad(E, params, retain_graph=True)
    grads = {"W_hh": sum(g[:T]), "W_xh": g[T], "b_h": g[T + 1], "W_hy": g[T + 2], "b_y": g[T + 3]}
    C = torch.zeros(T, T, S, S, dtype=F64)
    for t in steps:
        gt = torch.autograd.grad(Es[t - 1], Ws[:t], retain_graph=True)
        for k in range(1, t + 1):
            C[t - 1, k - 1] = gt[k - 1]
    return float(E.detach()), grads, C


BPTT_CASES = [
    ("elman", "tanh", "mse", "all", True, 3),
    ("elman", "sigmoid", "ce", "last", True, 2),
    ("elman", "relu", "mse", "last", False, 1),
    ("pal", "tanh", "ce", "all", False, 3),
    ("pal", "identity", "mse", "all", True, 2),
]


@pytest.mark.parametrize("kind,act,head,loss_at,with_head,B", BPTT_CASES)
def test_bptt_json_matches_autograd(tmp_path, capsys, kind, act, head, loss_at, with_head, B):
    S, D, T, O = 4, 2, 7, 3
    arrays, x, h0 = vanilla_files(tmp_path, S=S, D=D, T=T, B=B, gain=0.9, seed=11, head=with_head, O=O)
    rng = np.random.default_rng(12)
    n_out = O if with_head else S
    if head == "mse":
        y = rng.standard_normal((T, B, n_out) if B > 1 else (T, n_out))
    else:
        y = rng.integers(0, n_out, size=(T, B) if B > 1 else (T,))
    np.save(tmp_path / "y.npy", y)
    use_h0 = B > 1
    h0_arg = ["--h0", tmp_path / "h0.npy"] if use_h0 else []
    code, out, err = run(capsys, "bptt", "--cell", kind, "--activation", act, "--weights", tmp_path / "w.npz",
                         "--inputs", tmp_path / "x.npy", "--targets", tmp_path / "y.npy", "--head", head,
                         "--loss-at", loss_at, *h0_arg, "--json")
    assert code == 0, err
    d = json.loads(out)
    E, grads, C = ref_bptt(kind, act, arrays, x, y, head, loss_at, h0 if use_h0 else None)
    assert d["loss"] == pytest.approx(E, rel=1e-12)
    for name, ref in grads.items():
        got = torch.tensor(d["grads"][name], dtype=F64)
        assert got.shape == ref.shape, name
        assert torch.allclose(got, ref, rtol=1e-10, atol=1e-12 * float(ref.abs().max() + 1)), name
    norms = torch.tensor(d["contributions_norm"], dtype=F64)
    assert norms.shape == (T, T)
    assert torch.allclose(norms, torch.linalg.matrix_norm(C), rtol=1e-10, atol=1e-14)
    assert (torch.triu(norms, 1) == 0).all()  # nothing flows from a step k > t
    # consistency of the rows with the whole: sum_k C[t, k] = dE_t/dW_hh (autograd, one shared W_hh), so
    # ||dE_t/dW_hh||_F <= sum_k ||C[t, k]||_F
    steps = range(1, T + 1) if loss_at == "all" else [T]
    for t in steps:
        assert torch.allclose(C[t - 1].sum(0), _dEt_dW(kind, act, arrays, x, y, head, t, h0 if use_h0 else None),
                              rtol=1e-10, atol=1e-13)
        assert float(torch.linalg.matrix_norm(C[t - 1].sum(0))) <= float(norms[t - 1].sum()) * (1 + 1e-12)
    if loss_at == "last":
        assert (norms[:-1] == 0).all()
    assert d["identity_head"] is (not with_head)
    assert ("identity" in d["readout"]) is (not with_head)
    assert d["head"] == head and d["loss_at"] == loss_at and d["seconds"] >= 0


def _dEt_dW(kind, act, arrays, x, y, head, t, h0):
    """dE_t/dW_hh by autograd with one shared W_hh."""
    phi, _ = PHI[act]
    S = arrays["W_hh"].shape[0]
    W = t64(arrays["W_hh"]).requires_grad_()
    U, b = t64(arrays["W_xh"]), t64(arrays["b_h"])
    Why = t64(arrays["W_hy"]) if "W_hy" in arrays else torch.eye(S, dtype=F64)
    by = t64(arrays["b_y"]) if "b_y" in arrays else torch.zeros(Why.shape[0], dtype=F64)
    xs = t64(x) if x.ndim == 3 else t64(x)[:, None, :]
    B = xs.shape[1]
    h = torch.zeros(B, S, dtype=F64) if h0 is None else t64(h0).expand(B, S)
    for k in range(t):
        h = phi(h @ W.T + xs[k] @ U.T + b) if kind == "elman" else phi(h) @ W.T + xs[k] @ U.T + b
    o = h @ Why.T + by
    if head == "mse":
        yk = t64(y)[t - 1] if y.ndim == 3 else t64(y)[t - 1][None].expand(B, -1)
        E = 0.5 * ((o - yk) ** 2).sum(-1).mean()
    else:
        E = torch.nn.functional.cross_entropy(o, torch.as_tensor(y[t - 1]).long().reshape(-1).expand(B))
    return torch.autograd.grad(E, W)[0]


def test_bptt_human_table(tmp_path, capsys):
    arrays, x, _ = vanilla_files(tmp_path, S=3, D=2, T=5, B=2, seed=2)
    np.save(tmp_path / "y.npy", np.zeros((5, 2, 3)))
    code, out, err = run(capsys, "bptt", "--weights", tmp_path / "w.npz", "--inputs", tmp_path / "x.npy",
                         "--targets", tmp_path / "y.npy")
    assert code == 0 and err == ""
    E, grads, C = ref_bptt("elman", "tanh", arrays, x, np.zeros((5, 2, 3)), "mse", "all", None)
    assert f"{E:.10g}" in out
    assert "identity" in out and "contributions" in out
    assert f"{float(torch.linalg.matrix_norm(C[4, 3])):.2e}" in out  # the entry t = 5, k = 4 of the table
    assert f"{float(torch.linalg.vector_norm(grads['W_hh'])):.6g}" in out


# ------------------------------------------------------------------------------------- bad input

def _bad_files(tmp_path: Path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    S, D = 4, 2
    ok = dict(W_hh=0.5 * rng.standard_normal((S, S)), W_xh=rng.standard_normal((S, D)), b_h=np.zeros(S))
    f = {}

    def npz(name, **arrays):
        f[name] = tmp_path / f"{name}.npz"
        np.savez(f[name], **arrays)

    def npy(name, a):
        f[name] = tmp_path / f"{name}.npy"
        np.save(f[name], a)

    npz("ok", **ok)
    npz("ok_head", **ok, W_hy=rng.standard_normal((3, S)), b_y=np.zeros(3))
    npz("W_hh_shape", **{**ok, "W_hh": np.zeros((S, S + 1))})
    npz("W_xh_rows", **{**ok, "W_xh": np.zeros((S + 1, D))})
    npz("b_h_shape", **{**ok, "b_h": np.zeros(S + 2)})
    npz("missing_W_xh", W_hh=ok["W_hh"], b_h=ok["b_h"])
    npz("nan_W_hh", **{**ok, "W_hh": np.full((S, S), np.nan)})
    npz("inf_b_h", **{**ok, "b_h": np.array([0, np.inf, 0, 0])})
    npz("W_hy_cols", **ok, W_hy=np.zeros((3, S + 1)))
    npz("b_y_alone", **ok, b_y=np.zeros(3))
    npz("extra_array", **ok, W_hx=np.zeros((2, 2)))
    npz("strings", **{**ok, "W_hh": np.array([["a"] * S] * S)})
    npz("complex", **{**ok, "W_hh": np.zeros((S, S), dtype=complex)})
    npz("lstm_bad", W_hh=np.zeros((4 * 3, 4)), W_xh=np.zeros((12, D)), b_h=np.zeros(12))
    npz("empty_npz")
    npy("x_ok", rng.standard_normal((6, 2, D)))
    npy("x_D", rng.standard_normal((6, 2, D + 1)))
    npy("x_nan", np.full((6, D), np.nan))
    npy("x_1d", np.zeros(6))
    npy("x_4d", np.zeros((6, 1, 1, D)))
    npy("x_T0", np.zeros((0, D)))
    npy("h0_shape", np.zeros(S + 1))
    npy("h0_inf", np.full(S, np.inf))
    npy("y_shape", np.zeros((6, 2, S + 1)))
    npy("y_3", np.zeros((6, 2, 3)))
    npy("y_nan", np.full((6, 2, S), np.nan))
    npy("y_ce_float", np.full((6, 2), 0.5))
    npy("y_ce_range", np.full((6, 2), 7))
    npy("x_long", np.zeros((5000, 1, D)))
    npy("x_timedelta", np.ones((6, D)).astype("timedelta64[s]"))
    npz("huge", **{**ok, "W_hh": 1e300 * np.eye(S)})  # identity activation: h overflows to inf
    npz("huge_head", **ok, W_hy=np.full((3, S), 1e300), b_y=np.zeros(3))  # finite states, infinite loss
    f["garbage"] = tmp_path / "garbage.npy"
    f["garbage"].write_bytes(b"\x93NUMPY\x01\x00garbage that is not a header")
    f["garbage_npz"] = tmp_path / "garbage.npz"
    f["garbage_npz"].write_bytes(b"PK\x03\x04 not really a zip")
    f["empty"] = tmp_path / "empty.npy"
    f["empty"].write_bytes(b"")
    f["text"] = tmp_path / "text.npz"
    f["text"].write_text("W_hh = [[1, 2], [3, 4]]\n")
    f["missing"] = tmp_path / "does-not-exist.npz"
    f["dir"] = tmp_path
    return f


P, W, X = "profile", "--weights", "--inputs"
BAD = [
    (P, "--cell", "foo"), (P, "--cell", "ELMAN"), (P, "--activation", "softplus"), (P, "--init", "zeros"),
    (P, "--dtype", "float16"), (P, "--length", "0"), (P, "--length", "-3"), (P, "--length", "2.5"),
    (P, "--hidden", "0"), (P, "--hidden", "abc"), (P, "--batch", "0"), (P, "--input-size", "-1"),
    (P, "--gain", "nan"), (P, "--gain", "inf"), (P, "--gain", "x"), (P, "--seed", "-1"), (P, "--input-scale", "-0.5"),
    (P, "--t", "0"), (P, "--length", "5", "--t", "6"), (P, "--plot", "figure.jpg"), (P, "--plot", "{tmp}/no/dir/f.png"),
    (P, "--plot", "{tmp}"),
    (P, "--foo"), (P, "--cell"), (P, "extra-argument"), (P, "--hidden", "10000000"), (P, "--length", "1000000000000"),
    (P, "--cell", "lstm", "--activation", "relu"),
    (P, W, "missing"), (P, W, "dir"), (P, W, "garbage_npz"), (P, W, "text"), (P, W, "empty"), (P, W, "x_ok"),
    (P, W, "W_hh_shape"), (P, W, "W_xh_rows"), (P, W, "b_h_shape"), (P, W, "missing_W_xh"), (P, W, "nan_W_hh"),
    (P, W, "inf_b_h"), (P, W, "W_hy_cols"), (P, W, "b_y_alone"), (P, W, "extra_array"), (P, W, "strings"),
    (P, W, "complex"), (P, W, "empty_npz"), (P, "--cell", "lstm", W, "lstm_bad"), (P, "--cell", "gru", W, "ok"),
    (P, W, "ok", "--hidden", "8"), (P, W, "ok", X, "x_ok", "--length", "7"), (P, X, "x_ok", "--input-scale", "1"),
    (P, W, "ok", X, "x_D"), (P, W, "ok", X, "x_nan"), (P, W, "ok", X, "x_1d"), (P, W, "ok", X, "x_4d"),
    (P, W, "ok", X, "x_T0"), (P, W, "ok", X, "garbage"), (P, W, "ok", X, "ok"), (P, W, "ok", X, "missing"),
    (P, W, "ok", X, "x_timedelta"), (P, "--activation", "identity", W, "huge", X, "x_ok"),
    ("bptt", "--activation", "identity", W, "huge", X, "x_ok", "--targets", "y_shape"),
    ("bptt", W, "huge_head", X, "x_ok", "--targets", "y_3"),
    (P, W, "ok", "--h0", "h0_shape"), (P, W, "ok", "--h0", "h0_inf"), (P, W, "ok", X, "x_ok", "--t", "7"),
    ("bptt",), ("bptt", W, "ok", X, "x_ok"), ("bptt", "--cell", "lstm", W, "ok", X, "x_ok", "--targets", "y_shape"),
    ("bptt", W, "ok", X, "x_ok", "--targets", "y_shape"), ("bptt", W, "ok", X, "x_ok", "--targets", "y_nan"),
    ("bptt", W, "ok", X, "x_ok", "--targets", "y_ce_float", "--head", "ce"),
    ("bptt", W, "ok", X, "x_ok", "--targets", "y_ce_range", "--head", "ce"),
    ("bptt", W, "ok", X, "x_ok", "--targets", "y_shape", "--head", "hinge"),
    ("bptt", W, "ok", X, "x_ok", "--targets", "y_shape", "--loss-at", "first"),
    ("bptt", W, "ok", X, "x_D", "--targets", "y_shape"), ("bptt", W, "W_hy_cols", X, "x_ok", "--targets", "y_shape"),
    ("bptt", W, "ok", X, "x_long", "--targets", "y_shape"), ("bptt", W, "ok", X, "x_ok", "--targets", "missing"),
    ("bptt", W, "ok", X, "x_ok", "--targets", "garbage"), ("bptt", W, "ok", X, "x_ok", "--targets", "y_shape", "--foo"),
    ("demo", "--out", "{tmp}/ok.npz"), ("demo", "--bogus"), ("nope",), ("--version",),
]


@pytest.mark.parametrize("argv", BAD, ids=[" ".join(a) for a in BAD])
def test_bad_input_gives_one_line_and_exit_2(tmp_path, capsys, argv):
    files = _bad_files(tmp_path)
    args = [str(files[a]) if a in files else a.replace("{tmp}", str(tmp_path)) for a in argv]
    code, out, err = run(capsys, *args)
    assert code == 2, (code, err)
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1 and err.endswith("\n"), err
    command = argv[0] if argv[0] in ("profile", "bptt", "demo") else None
    assert lines[0].startswith(f"rnnscope {command}: error: " if command else "rnnscope: error: "), lines[0]
    assert "expected" in lines[0] and "Traceback" not in err


def test_good_files_of_the_bad_set_work(tmp_path, capsys):
    """The fixtures the bad cases start from are themselves valid (so each bad case fails for its own reason)."""
    f = _bad_files(tmp_path)
    assert run(capsys, "profile", "--weights", f["ok"], "--inputs", f["x_ok"], "--json")[0] == 0
    np.save(tmp_path / "y.npy", np.zeros((6, 2, 3)))
    code, _, err = run(capsys, "bptt", "--weights", f["ok_head"], "--inputs", f["x_ok"], "--targets", tmp_path / "y.npy")
    assert code == 0, err
    code, _, err = run(capsys, "bptt", "--weights", f["ok"], "--inputs", f["x_ok"], "--targets", f["y_ce_range"],
                       "--head", "ce")
    assert code == 2 and "[0, 3]" in err  # S = 4 classes with the identity head


@pytest.mark.parametrize("exc,code,text", [(ValueError("boom"), 1, "unexpected ValueError: boom"),
                                            (MemoryError(), 1, "out of memory"), (KeyboardInterrupt(), 130, "interrupted")])
def test_unexpected_failures_give_one_line_and_nonzero_exit(capsys, monkeypatch, exc, code, text):
    import rnnscope.app.cli.gradients as cli

    def fail(*args, **kwargs):
        raise exc

    monkeypatch.setattr(cli, "profile_trace", fail)
    got, out, err = run(capsys, "profile", "--length", 3)
    assert got == code and out == ""
    assert err.count("\n") == 1 and err.startswith("rnnscope profile: error: ") and text in err
    assert "Traceback" not in err


# ------------------------------------------------------------------------------------- hypothesis

_SESSION_DIR = Path(tempfile.mkdtemp(prefix="rnnscope-cli-hyp-"))  # strategies write files while drawing
atexit.register(shutil.rmtree, _SESSION_DIR, ignore_errors=True)
_NAMES = ["W_hh", "W_xh", "b_h", "W_hy", "b_y", "b_hh", "junk"]


@st.composite
def array_files(draw, i):
    """A path to a random file: garbage bytes, a .npy of random shape/dtype, or an .npz of random named arrays
    (sometimes a consistent Elman model with matching inputs, so successful runs happen too)."""
    d = _SESSION_DIR / f"case{draw(st.integers(0, 10**9))}"
    d.mkdir(exist_ok=True)
    kind = draw(st.sampled_from(["garbage", "npy", "npz", "model", "inputs", "missing"]))
    shape = tuple(draw(st.lists(st.integers(0, 4), min_size=0, max_size=3)))
    dtype = draw(st.sampled_from(["float64", "float32", "float16", "longdouble", "int64", "uint8", "uint64", "bool",
                                  "complex128"]))
    fill = draw(st.sampled_from(["normal", "nan", "inf", "int"]))

    def arr(shape):
        a = np.random.default_rng(len(shape)).standard_normal(shape)
        a = {"nan": np.where(a > 0, np.nan, a), "inf": np.where(a > 1, np.inf, a), "int": np.round(3 * a)}.get(fill, a)
        with np.errstate(invalid="ignore"):
            if fill in ("nan", "inf") and np.dtype(dtype).kind not in "fc":
                a = np.nan_to_num(a)
            return np.abs(a).astype(dtype) if np.dtype(dtype).kind == "u" else a.astype(dtype)

    p = d / f"f{i}.{'npz' if kind in ('npz', 'model') else 'npy'}"
    if kind == "garbage":
        p.write_bytes(draw(st.binary(max_size=64)))
    elif kind == "npy":
        np.save(p, arr(shape))
    elif kind == "npz":
        names = draw(st.lists(st.sampled_from(_NAMES), max_size=5, unique=True))
        np.savez(p, **{n: arr(tuple(draw(st.lists(st.integers(0, 4), max_size=3)))) for n in names})
    elif kind == "model":
        S, D, O = draw(st.integers(1, 4)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
        arrays = dict(W_hh=arr((S, S)), W_xh=arr((S, D)), b_h=arr((S,)))
        if draw(st.booleans()):
            arrays.update(W_hy=arr((O, S)), b_y=arr((O,)))
        np.savez(p, **arrays)
    elif kind == "inputs":
        T, B, D = draw(st.integers(1, 6)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
        np.save(p, arr((T, B, D) if draw(st.booleans()) else (T, D)))
    return str(p)


_JUNK = st.one_of(
    st.sampled_from(["", " ", "nan", "-inf", "1e3", "abc", "0", "-1", "2.5", "999999999", "--json", "🙂", "a\nb",
                     "elman", "ce", "x.png"]),
    st.integers(-2, 12).map(str),
    st.floats(-3, 3, allow_nan=False).map(lambda v: f"{v:.3g}"),
)
_GOOD = {  # mostly-valid values per option, so that runs get past the parser and exercise the analysis
    "--cell": st.sampled_from(["elman", "pal", "lstm", "gru"]),
    "--activation": st.sampled_from(["sigmoid", "tanh", "relu", "identity"]),
    "--hidden": st.integers(1, 12).map(str), "--input-size": st.integers(1, 3).map(str),
    "--length": st.integers(1, 40).map(str), "--batch": st.integers(1, 3).map(str), "--t": st.integers(1, 40).map(str),
    "--gain": st.floats(0, 3).map(lambda v: f"{v:.3g}"), "--input-scale": st.floats(0, 3).map(lambda v: f"{v:.3g}"),
    "--init": st.sampled_from(["normal", "orthogonal", "identity"]), "--seed": st.integers(0, 5).map(str),
    "--dtype": st.sampled_from(["float64", "float32"]), "--head": st.sampled_from(["mse", "ce"]),
    "--loss-at": st.sampled_from(["all", "last"]),
}
_COMMAND_OPTIONS = {
    "profile": ["--cell", "--activation", "--hidden", "--input-size", "--length", "--batch", "--gain", "--init",
                "--seed", "--dtype", "--weights", "--inputs", "--h0", "--t", "--input-scale", "--json", "--plot"],
    "bptt": ["--cell", "--activation", "--weights", "--inputs", "--targets", "--head", "--loss-at", "--h0", "--json"],
}
_FILE_OPTIONS = {"--weights", "--inputs", "--h0", "--targets"}


@st.composite
def coherent_files(draw, command):
    """Weights, inputs, targets and h0 that fit together (Elman/Pal shapes), for runs that should succeed."""
    d = _SESSION_DIR / f"ok{draw(st.integers(0, 10**9))}"
    d.mkdir(exist_ok=True)
    S, D, O = draw(st.integers(1, 5)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    T, B = draw(st.integers(1, 8)), draw(st.integers(1, 3))
    gain = draw(st.floats(0, 4))
    rng = np.random.default_rng(draw(st.integers(0, 1000)))
    arrays = dict(W_hh=gain * rng.standard_normal((S, S)), W_xh=rng.standard_normal((S, D)), b_h=rng.standard_normal(S))
    with_head = draw(st.booleans())
    if with_head:
        arrays.update(W_hy=rng.standard_normal((O, S)), b_y=rng.standard_normal(O))
    n_out = O if with_head else S
    np.savez(d / "w.npz", **arrays)
    np.save(d / "x.npy", rng.standard_normal((T, B, D)) if B > 1 or draw(st.booleans()) else rng.standard_normal((T, D)))
    np.save(d / "h0.npy", rng.standard_normal(S))
    head = draw(st.sampled_from(["mse", "ce"]))
    y = rng.standard_normal((T, B, n_out)) if head == "mse" else rng.integers(0, n_out, size=(T, B))
    np.save(d / "y.npy", y)
    argv = ["--weights", str(d / "w.npz"), "--inputs", str(d / "x.npy")]
    if draw(st.booleans()):
        argv += ["--h0", str(d / "h0.npy")]
    if command == "bptt":
        argv += ["--targets", str(d / "y.npy"), "--head", head]
    return argv


@st.composite
def argvs(draw):
    command = draw(st.sampled_from(["profile", "bptt"]))
    argv = [command]
    if draw(st.integers(0, 2)) == 0:
        argv += draw(coherent_files(command))
    elif command == "bptt":  # the required files, most of the time
        for opt in ("--weights", "--inputs", "--targets"):
            if draw(st.integers(0, 9)) > 0:
                argv += [opt, draw(array_files(len(argv)))]
    for _ in range(draw(st.integers(0, 6))):
        foreign = draw(st.integers(0, 19)) == 0  # now and then an option this command does not have
        opt = draw(st.sampled_from(["--bogus", "-x", "--targets", "--hidden"] if foreign else _COMMAND_OPTIONS[command]))
        argv.append(opt)
        if opt == "--json":
            continue
        if opt == "--plot":
            argv.append(str(_SESSION_DIR / draw(st.sampled_from(["p.png", "p.svg", "p.pdf", "p.gif", "nodir/p.png"]))))
        elif opt in _FILE_OPTIONS:
            argv.append(draw(array_files(len(argv))))
        elif draw(st.integers(0, 19)) > 0:  # now and then the value is missing
            good = _GOOD.get(opt)
            argv.append(draw(good if good is not None and draw(st.integers(0, 3)) > 0 else _JUNK))
    return argv


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(argv=argvs())
def test_random_arguments_give_exit_0_or_one_line_exit_2(argv):
    code, out, err = run_captured(argv)
    assert "Traceback" not in out + err
    if code == 0:
        assert err == "" and out.strip()
        flags = ("--json", "--quick")  # options without a value; any other option takes the next word as its value
        as_json = any(a == "--json" and not (i and argv[i - 1].startswith("--") and argv[i - 1] not in flags)
                      for i, a in enumerate(argv))
        if as_json:
            json.loads(out)
    else:
        assert code == 2, (argv, code, err)
        lines = err.splitlines()
        assert len(lines) == 1 and "expected" in lines[0], (argv, err)
        assert lines[0].startswith(f"rnnscope {argv[0]}: error: ")


# ------------------------------------------------------------------------------------- the real console script

def _env():
    return {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "120"}


def test_console_script_help_and_error():
    r = subprocess.run([str(RNNSCOPE), "--help"], capture_output=True, text=True, env=_env(), timeout=120)
    assert r.returncode == 0 and all(c in r.stdout for c in ("profile", "bptt", "demo"))
    r = subprocess.run([str(RNNSCOPE), "profile", "--cell", "foo"], capture_output=True, text=True, env=_env(), timeout=120)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr == ("rnnscope profile: error: --cell: expected one of elman, pal, lstm, gru, lru, mingru, minlstm, "
                        "mamba, slstm, indrnn, cornn, exprnn, got 'foo'\n")


def test_console_script_profile_json(tmp_path):
    arrays, x, h0 = vanilla_files(tmp_path, T=10, gain=2.0, seed=9)
    r = subprocess.run([str(RNNSCOPE), "profile", "--weights", str(tmp_path / "w.npz"), "--inputs", str(tmp_path / "x.npy"),
                        "--h0", str(tmp_path / "h0.npy"), "--json"], capture_output=True, text=True, env=_env(), timeout=120)
    assert r.returncode == 0 and r.stderr == ""
    d = json.loads(r.stdout)
    _, Js = ref_vanilla_forward("elman", "tanh", t64(arrays["W_hh"]), t64(arrays["W_xh"]), t64(arrays["b_h"]),
                                t64(x), t64(h0))
    spec, _ = ref_norms(Js, 10)
    assert torch.allclose(torch.tensor(d["log10_spectral"], dtype=F64), spec.mean(0), atol=1e-7, rtol=0)
    assert d["verdict"] == "exploding possible"


def test_console_script_output_into_a_closed_pipe():
    """`rnnscope profile --json | head -c 10`: the reader leaves early; no traceback, no 'Exception ignored'."""
    p = subprocess.Popen([str(RNNSCOPE), "profile", "--length", "4000", "--hidden", "4", "--json"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env())
    head = p.stdout.read(10)
    p.stdout.close()
    err = p.stderr.read().decode()
    p.stderr.close()
    p.wait(timeout=120)
    assert head == b'{"cell": "'
    assert "Traceback" not in err and "Exception" not in err


# ------------------------------------------------------------------------------------- claims, reproduce

def test_claims_json_equals_the_library_and_table_lists_every_claim(capsys):
    from rnnscope.seeds.claims import claim_ids, run_claims
    code, out, err = run(capsys, "claims", "--json", "--only", "003-bound-eigen,000-identity-power")
    assert code == 0 and err == ""
    got = json.loads(out)
    assert [d["id"] for d in got] == ["000-identity-power", "003-bound-eigen"]
    ref = {r.id: r.to_dict() for r in run_claims(["000-identity-power", "003-bound-eigen"])}
    for d in got:
        assert set(d) == {"id", "seed", "statement", "verdict", "correction", "evidence", "seconds"}
        assert d["evidence"] == ref[d["id"]]["evidence"] and d["verdict"] == ref[d["id"]]["verdict"]
    assert got[1]["verdict"] == "refuted" and len(got[1]["evidence"]["counterexample"]["log10_norms"]) == 40
    code, out, err = run(capsys, "claims")
    assert code == 0 and err == ""
    for cid in claim_ids():
        assert cid in out, cid
    assert "refuted" in out and "holds-with-correction" in out


@pytest.mark.parametrize("argv,expected", [
    (["claims", "--only", "nope"], "claim id: expected one of"),
    (["claims", "--only", ","], "--only: expected claim ids"),
    (["reproduce", "999"], "seed: expected one of"),
    (["reproduce"], "expected a value"),
])
def test_claims_and_reproduce_bad_input(capsys, argv, expected):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and expected in err, err


# ------------------------------------------------------------------------------------- lyapunov

def test_lyapunov_json_linear_weights_are_log_abs_eigenvalues(tmp_path, capsys):
    """--weights of a linear RNN (identity activation): the exponents are ln |eig(W_hh)| (numpy), to 1e-6."""
    rng = np.random.default_rng(0)
    V = rng.standard_normal((4, 4)) + 2 * np.eye(4)
    W = V @ np.diag([1.2, -0.7, 0.5, 0.2]) @ np.linalg.inv(V)
    np.savez(tmp_path / "w.npz", W_hh=W, W_xh=np.ones((4, 1)), b_h=np.zeros(4))
    code, out, err = run(capsys, "lyapunov", "--activation", "identity", "--weights", tmp_path / "w.npz",
                         "--length", 600, "--warmup", 100, "--every", 2, "--json")
    assert code == 0 and err == ""
    d = json.loads(out)
    ref = np.sort(np.log(np.abs(np.linalg.eigvals(W))))[::-1]
    np.testing.assert_allclose(d["exponents"], ref, atol=1e-6)
    assert d["max_exponent"] == pytest.approx(ref[0], abs=1e-6) and d["steps"] == 500
    assert set(d) >= {"exponents", "max_exponent", "kaplan_yorke_dimension", "stderr", "seconds"}
    code, out, err = run(capsys, "lyapunov", "--hidden", 8, "--gain", 2, "--length", 300, "--input-scale", 1)
    assert code == 0 and "max exponent" in out and "Kaplan-Yorke" in out


def test_lyapunov_autonomous_run_starts_off_the_fixed_point(capsys):
    """No input, no bias: the default start is a seeded random state (numpy default_rng([seed, 3]), stated in the
    JSON), and the top exponent is the chaotic attractor's: an independent loop from that start (written here:
    h = W tanh(h), v <- J v / ||J v||, the CLI's default warm-up T/10 discarded) agrees to 1e-9; --h0 zeros
    stays on the fixed point 0 and measures ln rho(W) (numpy eigvals), with a warning."""
    import rnnscope as rs
    N, T = 80, 2000
    argv = ("lyapunov", "--cell", "pal", "--hidden", N, "--gain", 3, "--length", T, "--k", 1, "--seed", 4, "--json")
    code, out, err = run(capsys, *argv)
    assert code == 0 and err == ""
    d = json.loads(out)
    assert d["h0"] == d["start"] == "random N(0, 1^2), seed 4" and d["warnings"] == [] and d["warmup"] == T // 10
    W = rs.random_cell("pal", "tanh", hidden=N, gain=3.0, seed=4).W_hh
    h = torch.as_tensor(np.random.default_rng([4, 3]).standard_normal(N))
    v = torch.linalg.qr(torch.randn(N, 1, generator=torch.Generator().manual_seed(4), dtype=torch.float64))[0][:, 0]
    total = 0.0
    for t in range(1, T + 1):
        w = W @ ((1 - torch.tanh(h) ** 2) * v)  # J_t v, J_t = W diag(tanh'(h_{t-1}))
        h = W @ torch.tanh(h)
        v = w / w.norm()
        total += math.log(float(w.norm())) if t > T // 10 else 0.0
    assert d["max_exponent"] == pytest.approx(total / (T - T // 10), abs=1e-9)
    ln_rho = math.log(np.abs(np.linalg.eigvals(W.numpy())).max())
    assert ln_rho - d["max_exponent"] > 0.4
    code, out, err = run(capsys, *argv, "--h0", "zeros")
    z = json.loads(out)
    assert code == 0 and z["h0"] == "zeros" and len(z["warnings"]) == 1 and "fixed point" in z["warnings"][0]
    assert z["max_exponent"] == pytest.approx(ln_rho, abs=5e-3)
    code, out, err = run(capsys, *argv[:-1], "--h0", "zeros")
    assert code == 0 and "start zeros" in out and "warning: the trajectory sits on a fixed point" in out


@pytest.mark.parametrize("argv,expected", [
    (["lyapunov", "--h0", "missing.npy"], "h0: expected an existing file, got 'missing.npy'"),
    (["lyapunov", "--h0-scale", "0"], "--h0-scale: expected a finite number > 0, got 0.0"),
    (["lyapunov", "--hidden", "4", "--k", "5"], "k: expected at most the state size S = 4"),
    (["lyapunov", "--warmup", "-1"], "--warmup: expected an integer >= 0"),
    (["lyapunov", "--length", "10", "--warmup", "10"], "length: expected more than"),
    (["lyapunov", "--every", "0"], "--every: expected a positive integer"),
])
def test_lyapunov_bad_input(capsys, argv, expected):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == "" and err.count("\n") == 1 and expected in err, err


# ------------------------------------------------------------------------------------- tasks, train, study

def test_tasks_sample_writes_the_generators_batch(tmp_path, capsys):
    from rnnscope.lab.tasks import get_task
    code, out, err = run(capsys, "tasks", "sample", "--task", "adding-le", "--length", 30, "--n", 5, "--seed", 3,
                         "--out", tmp_path / "a.npz", "--json")
    assert code == 0 and err == ""
    d = json.loads(out)
    ref = get_task("adding-le").sample(5, 30, torch.Generator().manual_seed(3))
    f = np.load(tmp_path / "a.npz")
    for k in ("x", "y", "mask"):
        np.testing.assert_array_equal(f[k], getattr(ref, k).numpy())
    assert d["baseline_loss"] == pytest.approx(1 / 6) and d["x"] == [5, 30, 2]


def test_train_json_log_dir_and_db(tmp_path, capsys):
    from rnnscope.runs.store import Store
    code, out, err = run(capsys, "train", "--task", "temporal-order", "--length", 10, "--hidden", 8, "--steps", 40,
                         "--eval-every", 20, "--eval-size", 50, "--clip-norm", 1, "--regularizer-alpha", 2,
                         "--log-dir", tmp_path / "tb", "--db", tmp_path / "r.sqlite", "--json")
    assert code == 0 and err == ""
    d = json.loads(out)
    assert d["status"] in ("solved", "unsolved") and d["steps"] == 40 and len(d["history"]) == 2
    assert d["baseline_loss"] == pytest.approx(math.log(4))
    assert all(h["grad_norm"] >= 0 and len(h["profile"]) == 11 for h in d["history"])  # k = 0..T
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))
    with Store(tmp_path / "r.sqlite") as s:
        rows = s.rows()
    assert len(rows) == 1 and rows[0]["metrics"]["final_loss"] == pytest.approx(d["final_loss"])


def test_study_cli_on_a_small_study_file(tmp_path, capsys):
    spec = tmp_path / "tiny.toml"
    spec.write_text('name = "tiny"\ndescription = "two methods"\nmeasure = "success"\n'
                    '[methods.A]\nclip_norm = 1.0\n[methods.B]\nclip_value = 0.5\n'
                    '[grid]\ntask = ["temporal-order"]\nlength = [10]\nseed = [0]\n'
                    '[fixed]\nhidden = 8\nsteps = 20\neval_every = 20\neval_size = 50\n')
    code, out, err = run(capsys, "study", spec, "--db", tmp_path / "s.sqlite", "--workers", 1, "--json")
    assert code == 0, err
    d = json.loads(out)
    assert d["sweep"]["done"] == 2 and {r["method"] for r in d["table"]} == {"A", "B"}
    assert (tmp_path / "study-tiny.png").stat().st_size > 5000


@pytest.mark.parametrize("argv,expected", [
    (["train", "--task", "nope", "--length", "10"], "task: expected one of"),
    (["train", "--task", "copy", "--length", "10", "--clip-norm", "1", "--clip-value", "1"], "expected at most one of"),
    (["train", "--task", "copy", "--length", "10", "--cell", "lstm", "--regularizer-alpha", "1"], "regularizer_alpha"),
    (["tasks", "sample", "--task", "copy", "--length", "10", "--out", "x.txt"], "out: expected a file name ending in .npz"),
    (["study", "nope"], "study: expected one of pascanu, cells"),
])
def test_training_cli_bad_input(capsys, argv, expected):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == "" and err.count("\n") == 1 and expected in err, err


# ------------------------------------------------------------------------------------- meanfield (alias theory)

def test_meanfield_and_its_alias_theory_give_the_same_numbers(capsys):
    argv = ("--sigma-w", "1.7", "--sigma-b", "0.2", "--activation", "tanh", "--json")
    code, out, err = run(capsys, "meanfield", *argv)
    assert code == 0, err
    code2, out2, err2 = run(capsys, "theory", *argv)
    assert code2 == 0, err2
    assert json.loads(out) == json.loads(out2)
    # chi_1 by plain fixed-point iteration and 200-point Gauss-Hermite quadrature here (numpy alone)
    z, w = np.polynomial.hermite_e.hermegauss(200)
    w = w / w.sum()
    q = 1.0
    for _ in range(2000):
        q = 1.7**2 * float(w @ np.tanh(np.sqrt(q) * z) ** 2) + 0.2**2
    chi1 = 1.7**2 * float(w @ (1 - np.tanh(np.sqrt(q) * z) ** 2) ** 2)
    d = json.loads(out)
    assert d["q_star"] == pytest.approx(q, rel=1e-8) and d["chi1"] == pytest.approx(chi1, rel=1e-8)
    for name in ("meanfield", "theory"):
        code, out, _ = run(capsys, name, "--sigma-w", "1.7", "--sigma-b", "0.2")
        assert code == 0 and out.startswith(f"rnnscope {name}: random tanh RNN") and "chaotic" in out
    code, out, _ = run(capsys, "--help")
    assert "meanfield" in out and "Alias of meanfield" in out


# ------------------------------------------------------------------------------------- train: lengths, criteria

def test_train_length_range_and_pascanus_criterion(capsys):
    code, out, err = run(capsys, "train", "--task", "copy", "--length-range", "3:6", "--hidden", 4, "--steps", 10,
                         "--eval-every", 10, "--criterion", "pascanu", "--json")
    assert code == 0, err
    d = json.loads(out)
    assert d["criterion"]["name"] == "pascanu" and d["criterion"]["sequences"] == 10_000 and d["status"] == "unsolved"
    # copy's memoryless baseline 10 ln 8 / (L + 20), averaged over L = 3..6 (Arjovsky et al.'s layout, by hand)
    assert d["baseline_loss"] == pytest.approx(sum(10 * math.log(8) / (L + 20) for L in range(3, 7)) / 4, rel=1e-12)
    code, out, err = run(capsys, "train", "--task", "copy", "--length", 4, "--hidden", 4, "--steps", 5,
                         "--eval-every", 5, "--eval-size", 30)
    assert code == 0 and "success lenient" in out and "L = 4," in out


def test_tasks_sample_memorization_in_both_forms(tmp_path, capsys):
    for name, classes, mask, baseline in (("memorization", 6, 5 * 30, 10 * math.log(5) / 30),
                                          ("memorization-recall", 5, 5 * 10, math.log(5))):
        code, out, err = run(capsys, "tasks", "sample", "--task", name, "--length", 10, "--n", 5,
                             "--out", tmp_path / f"{name}.npz", "--json")
        assert code == 0, err
        d = json.loads(out)
        assert d["task"]["output_size"] == classes and d["masked_steps"] == mask and d["y"] == [5, 30]
        assert d["baseline_loss"] == pytest.approx(baseline, rel=1e-12)


def test_study_cli_faithful_version(tmp_path, capsys):
    spec = tmp_path / "tiny.toml"
    spec.write_text('name = "tiny"\nmeasure = "success"\n[methods.A]\nclip_norm = 1.0\n'
                    '[grid]\ntask = ["adding-le"]\nlength = [4]\nseed = [0]\n'
                    '[fixed]\nhidden = 4\nsteps = 10\neval_every = 10\neval_size = 50\nsnapshot = false\n'
                    '[faithful]\nlength = [6]\nlength_range = [3, 6]\ncriterion = "pascanu"\neval_size = 10000\n')
    code, out, err = run(capsys, "study", spec, "--faithful", "--db", tmp_path / "s.sqlite", "--workers", 1, "--json")
    assert code == 0, err
    d = json.loads(out)
    assert d["version"] == "faithful" and d["criterion"] == ["pascanu"] and d["sweep"]["done"] == 1
    assert d["table"][0]["length_range"] == [3, 6] and d["table"][0]["length"] == 6
    assert d["title"] == ("study tiny (faithful): A on adding-le at L = 3..6; 1 seed, 10 updates; "
                          "success: pascanu: zero errors in 10,000 fresh sequences")
    assert (tmp_path / "study-tiny-faithful.png").stat().st_size > 5000


@pytest.mark.parametrize("argv,expected", [
    (["train", "--task", "copy", "--length-range", "5-8"], "--length-range: expected MIN:MAX"),
    (["train", "--task", "copy", "--length-range", "8:5"], "--length-range: expected MIN:MAX"),
    (["train", "--task", "copy", "--length", "7", "--length-range", "5:8"], "length: expected 8"),
    (["train", "--task", "copy"], "length: expected an integer >= 1"),
    (["train", "--task", "copy", "--length", "5", "--criterion", "strict"], "--criterion: expected one of lenient, pascanu"),
    (["train", "--task", "copy", "--length", "5", "--criterion", "pascanu", "--eval-size", "500"],
     "eval_size: expected at least 10,000"),
    (["study", "pascanu", "--quick", "--faithful"], "expected --quick or --faithful, got both"),
    (["study", "cells", "--faithful"], "expected a [faithful] section"),
])
def test_training_cli_bad_lengths_and_criteria(capsys, argv, expected):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == "" and err.count("\n") == 1 and expected in err, err


def test_meanfield_table_keeps_its_formulas_and_explains_a_negative_depth_scale(capsys):
    """The table's text is not read as markup (E[phi'(...)^2] stays whole), and in the chaotic phase xi = -1/ln chi_1
    < 0 is reported with its meaning: the squared gradient norm grows by e every |xi| steps (|xi| from chi_1 here)."""
    code, out, err = run(capsys, "theory", "--sigma-w", "1.5")
    assert code == 0, err
    assert "sigma_w^2 E[phi'(sqrt(q*) z)^2]" in out.replace("\n", " ")
    chi1 = json.loads(run(capsys, "meanfield", "--sigma-w", "1.5", "--json")[1])["chi1"]
    flat = " ".join(out.split())
    assert "chaotic phase" in flat and f"grows by e every {1 / math.log(chi1):.4g} steps" in flat
    code, out, err = run(capsys, "sweep", "--help")
    assert code == 0 and "the tables grid and fixed" in " ".join(out.split())


def test_sweep_configs_are_checked_before_dispatch_and_failed_configs_exit_3(capsys, tmp_path):
    """A phase-point spec without sigma_w, a phase grid with length < 20 or a hidden size beyond the memory budget:
    one line, exit 2, no store created. A sweep whose configs fail when they run (a task of one's own that raises):
    its rows are recorded as failed and the command exits 3 with one line saying so (the README's exit codes)."""
    (tmp_path / "g.toml").write_text('name="g"\ntask="phase-point"\n')
    for argv, expect in (
            (["sweep", tmp_path / "g.toml", "--db", tmp_path / "s.sqlite"],
             "sigma_w: expected a number in every phase-point config, got none"),
            (["phase", "--sigma-w", "1,2", "--sigma-b", "0,1", "--length", "10", "--db", tmp_path / "p.sqlite"],
             "length: expected an integer >= 20, got 10"),
            (["phase", "--sigma-w", "1,2", "--sigma-b", "0,1", "--hidden", "200000", "--db", tmp_path / "p.sqlite"],
             "size: expected a problem that fits in 4 GiB")):
        code, out, err = run(capsys, *argv)
        assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and expect in err, err
    assert not (tmp_path / "s.sqlite").exists() and not (tmp_path / "p.sqlite").exists()
    (tmp_path / "f.toml").write_text('name="f"\ntask="os.path:basename"\n[grid]\nx = [1, 2]\n')
    code, out, err = run(capsys, "sweep", tmp_path / "f.toml", "--db", tmp_path / "f.sqlite", "--workers", "1", "--json")
    assert code == 3 and json.loads(out)["failed"] == 2
    assert err.strip().splitlines()[-1].startswith("rnnscope: 2 of 2 configs failed")


@pytest.mark.parametrize("argv, expect", [
    (["train", "--task", "copy", "--length", "10", "--steps", "1", "--hidden", "1000000"], "size: expected a problem"),
    (["train", "--task", "copy", "--length", "10", "--steps", "1", "--batch", "1000000000"], "size: expected a problem"),
    (["train", "--task", "adding-le", "--length", "1000000000", "--steps", "1"], "size: expected a problem"),
    (["train", "--task", "copy", "--length", "10", "--steps", "1", "--eval-size", "1000000000"],
     "eval_size: expected at most 1,000,000"),
    (["tasks", "sample", "--task", "adding-le", "--length", "100000000", "--n", "1000000", "--out", "t.npz"],
     "size: expected a batch that fits in 4 GiB"),
])
def test_sizes_that_would_exhaust_memory_are_refused_before_allocation(capsys, tmp_path, monkeypatch, argv, expect):
    """Issue 16, item 3: over-large sizes in train and tasks sample exit 2 with one line (they used to reach an
    allocation and exit 1), and nothing is written."""
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and expect in err, err
    assert list(tmp_path.iterdir()) == []
