"""web (the explorer's JSON API) and explorer: numbers against the CLI, the library and independent references,
the limits and errors, static files without path traversal, the claims report, and a load test on loopback.

A real uvicorn server runs on 127.0.0.1 in a thread (rnnscope.app.web.server.background) and is asked with
`requests`, as a learner's browser or script would: no TestClient (it would need httpx, and would skip the
HTTP layer whose errors, headers and paths are under test here).

Independent references: numpy's eig and svd of the W_hh the API returns, and W_hh rebuilt here from the
documented recipe (models.random_cell at gain 1, times rho / max|eig|); a numpy forward pass for the
pre-activations; torch.autograd for the BPTT gradients; the CLI's own --json for the profile.
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.client
import importlib.resources
import json
import math
import re
import socket
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
import requests
import torch

from rnnscope.gradients.profile import profile as library_profile
from rnnscope.app.cli import main
from rnnscope.core.errors import InputError
from rnnscope.app.explorer import (LIMITS, PRESETS, ExplorerConfig, Limits, build, check_budget, explore,
                                   peak_numbers, profile_view)
from rnnscope.core.build import random_cell
from rnnscope.app.web.server import background, create_app
from rnnscope.app.explorer_modern import MEMORY_CASES
from rnnscope.core.unroll import unroll
from rnnscope.dynamics.memory import closed_form, coefficients, memory_sensitivity
from rnnscope.gradients.bounds import weight_facts

F64 = torch.float64


def _fake_report(out: Path) -> None:
    """A stand-in for the claims report (the real one runs every claim: about a minute)."""
    time.sleep(0.2)
    (out / "claims").mkdir()
    (out / "claims" / "c.png").write_bytes(b"\x89PNG fake")
    (out / "index.html").write_text("<!DOCTYPE html><title>rnnscope report</title><h1>claims report</h1>\n")


@pytest.fixture(scope="module")
def url():
    with background(create_app(report_builder=_fake_report)) as base:
        yield base


def get(url, path, **params):
    r = requests.get(url + path, params=params, timeout=60)
    return r


def ok(url, path, **params):
    r = get(url, path, **params)
    assert r.status_code == 200, (path, params, r.status_code, r.text[:300])
    return r.json()


def close(a, b, tol=1e-12):
    """Lists of numbers (None for -inf / NaN) equal to a relative tolerance."""
    a, b = np.array([np.nan if v is None else v for v in a], float), np.array([np.nan if v is None else v for v in b], float)
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=tol, atol=tol, equal_nan=True))


# ----------------------------------------------------------------------------------- numbers

def test_profile_equals_the_cli_json_and_the_library(url, capsys):
    q = dict(cell="elman", activation="tanh", hidden=16, length=60, gain=1.5, seed=3, input_scale=0.5, batch=2)
    api = ok(url, "api/profile", **q)
    code = main(["profile", "--cell", "elman", "--activation", "tanh", "--hidden", "16", "--length", "60", "--gain", "1.5",
                 "--seed", "3", "--input-scale", "0.5", "--batch", "2", "--json"])
    out, err = capsys.readouterr()
    assert code == 0 and err == ""
    cli = json.loads(out)
    assert set(api) == set(cli)  # the same object ...
    for k in cli:
        if k == "seconds":
            continue
        if k == "model":  # ... whose model record adds how W_hh was scaled
            assert {kk: api[k][kk] for kk in cli[k]} == cli[k]
            assert api[k]["scale"] == "gain" and api[k]["factor"] == 1.0
        elif isinstance(cli[k], list) and cli[k] and not isinstance(cli[k][0], list):
            assert close(api[k], cli[k]), k
        elif k == "per_sequence":
            for kk in cli[k]:
                assert all(close(a, c) for a, c in zip(api[k][kk], cli[k][kk])), kk
        else:
            assert api[k] == cli[k], k
    # and the library's analysis.profile on the model rebuilt here from the documented recipe
    cell = random_cell("elman", "tanh", hidden=16, input_size=1, gain=1.5, seed=3)
    x = 0.5 * np.random.default_rng([3, 1]).standard_normal((60, 2, 1))
    p = library_profile(cell, torch.as_tensor(x))
    assert close(api["log10_spectral"], p.log10_spectral.tolist())
    assert close(api["log10_adjoint"], p.log10_adjoint.tolist())
    assert api["verdict"] == p.verdict and api["sigma_max"] == pytest.approx(p.sigma_max, rel=1e-14)


@pytest.mark.parametrize("scale,value,init", [("rho", 3.0, "normal"), ("sigma_max", 3.0, "normal"),
                                              ("rho", 0.9, "orthogonal"), ("gain", 1.3, "normal")])
def test_spectrum_equals_numpy_eig_and_svd_of_the_w_used(url, scale, value, init):
    S = 12
    sp = ok(url, "api/spectrum", activation="sigmoid", hidden=S, length=10, init=init, seed=5, **{scale: value})
    W = np.array(sp["W_hh"])
    # the W the API used is the documented recipe: the init at gain 1, rescaled (or at the gain)
    base = random_cell("elman", "sigmoid", hidden=S, gain=value if scale == "gain" else 1.0, init=init, seed=5).W_hh.numpy()
    if scale == "rho":
        base = base * value / np.abs(np.linalg.eigvals(base)).max()
    elif scale == "sigma_max":
        base = base * value / np.linalg.svd(base, compute_uv=False)[0]
    np.testing.assert_allclose(W, base, rtol=1e-12, atol=1e-14)
    ev = np.linalg.eigvals(W)
    got = np.array(sp["blocks"][0]["eigenvalues"]["re"]) + 1j * np.array(sp["blocks"][0]["eigenvalues"]["im"])
    key = lambda z: (round(z.real, 9), round(z.imag, 9))  # noqa: E731
    np.testing.assert_allclose(sorted(got, key=key), sorted(ev, key=key), rtol=1e-10, atol=1e-12)
    sv = np.linalg.svd(W, compute_uv=False)
    np.testing.assert_allclose(sp["blocks"][0]["singular_values"], sv, rtol=1e-12)
    assert sp["spectral_radius"] == pytest.approx(np.abs(ev).max(), rel=1e-12)
    assert sp["sigma_max"] == pytest.approx(sv[0], rel=1e-12)
    if scale != "gain":
        assert (sp["spectral_radius"] if scale == "rho" else sp["sigma_max"]) == pytest.approx(value, rel=1e-12)
    assert sp["gamma"] == 0.25 and sp["inv_gamma"] == 4.0
    assert sp["tests"] == {"rho_below_inv_gamma": bool(np.abs(ev).max() < 4), "sigma_max_below_inv_gamma": bool(sv[0] < 4)}
    assert sp["verdict"] == ("vanishing guaranteed" if sv[0] < 4 else "exploding possible")


def test_profile_bound_is_gamma_sigma_max_to_the_distance(url):
    d = ok(url, "api/profile", activation="sigmoid", hidden=8, length=30, sigma_max=3.2, input_scale=1.0)
    T = 30
    expected = [(T - k) * math.log10(0.25 * 3.2) for k in range(1, T + 1)]
    assert close(d["log10_bound"], expected, tol=1e-12)
    assert d["verdict"] == "vanishing guaranteed"
    assert all(s <= b + 1e-9 for s, b in zip(d["log10_spectral"], d["log10_bound"]))  # the bound holds


def test_seed002_presets_reproduce_the_experiment_and_its_correction(url):
    """The lesson of the explorer, through the API: the seed's eigenvalue reading against the singular value."""
    c = next(p.config for p in PRESETS if p.name == "seed002-vanishing")
    q = dict(cell=c.cell, activation=c.activation, hidden=c.hidden, length=c.length, input_scale=c.input_scale,
             init=c.init, bias=c.bias, seed=c.seed)
    by_rho = ok(url, "api/explore", rho=c.value, **q)
    assert by_rho["spectrum"]["spectral_radius"] == pytest.approx(3.0)  # "largest eigenvalue below 4"
    assert by_rho["measured"]["regime"] == "vanishing"  # the seed's figure: early contributions vanish
    assert by_rho["profile"]["verdict"] == "exploding possible"  # but the eigenvalue promised nothing:
    assert by_rho["spectrum"]["sigma_max"] > 4 and by_rho["spectrum"]["tests"]["rho_below_inv_gamma"]
    assert "eigenvalue test would wrongly promise vanishing" in by_rho["profile"]["note"]
    by_sigma = ok(url, "api/explore", sigma_max=c.value, **q)  # the correction: the same number as sigma_max
    assert by_sigma["spectrum"]["sigma_max"] == pytest.approx(3.0)
    assert by_sigma["profile"]["verdict"] == "vanishing guaranteed"
    assert by_sigma["measured"]["regime"] == "vanishing"

    c = next(p.config for p in PRESETS if p.name == "seed002-exploding")
    d = ok(url, "api/profile", cell="elman", activation="sigmoid", hidden=5, length=20, rho=9.0, bias="centred",
           seed=c.seed)
    # centred, zero inputs: every a_t = 0, so every Jacobian is sigmoid'(0) W_hh = W_hh / 4 exactly
    W = np.array(ok(url, "api/spectrum", activation="sigmoid", hidden=5, length=20, rho=9.0, bias="centred")["W_hh"])
    ref = [math.log10(np.linalg.norm(np.linalg.matrix_power(W / 4, 20 - k), 2)) for k in range(1, 21)]
    assert close(d["log10_spectral"], ref, tol=1e-9)
    assert d["verdict"] == "exploding possible" and d["log10_spectral"][0] > 5  # it explodes, as the seed shows


def test_nonnormal_counterexample_grows_although_rho_is_below_one_over_gamma(url):
    d = ok(url, "api/explore", cell="elman", activation="tanh", hidden=2, length=40, rho=0.5, init="saddle")
    sp = d["spectrum"]
    W = np.array(ok(url, "api/spectrum", activation="tanh", hidden=2, length=40, rho=0.5, init="saddle")["W_hh"])
    assert np.abs(np.linalg.eigvals(W)).max() == pytest.approx(0.5, rel=1e-12)  # rho < 1/gamma = 1
    assert sp["sigma_max"] == pytest.approx(np.linalg.svd(W, compute_uv=False)[0], rel=1e-12)
    assert sp["sigma_max"] > 1
    assert d["profile"]["verdict"] == "exploding possible" and d["measured"]["regime"] == "exploding"
    assert d["profile"]["rate_per_step"] == pytest.approx(math.log10(2.0), abs=1e-3)  # ||dh_T/dh_k|| ~ 2^(T-k)
    assert d["profile"]["log10_spectral"][0] > 11


def _numpy_preacts(W, U, b, x, h0):
    """a_t = W h_{t-1} + U x_t + b, h_t = tanh(a_t): the Elman forward pass in numpy. x (T, B, D) -> (T, B, S)."""
    h, out = np.broadcast_to(h0, (x.shape[1], W.shape[0])), []
    for t in range(x.shape[0]):
        a = h @ W.T + x[t] @ U.T + b
        out.append(a)
        h = np.tanh(a)
    return np.array(out)


def test_activation_histogram_of_a_numpy_forward_pass(url):
    q = dict(activation="tanh", hidden=10, length=50, gain=2.5, input_scale=2.0, seed=1, batch=3)
    a = ok(url, "api/activation", **q)
    (c,) = a["curves"]
    grid = np.array(c["a"])
    np.testing.assert_allclose(c["phi"], np.tanh(grid), rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(c["dphi"], 1 - np.tanh(grid) ** 2, rtol=1e-12, atol=1e-15)
    cell = random_cell("elman", "tanh", hidden=10, gain=2.5, seed=1)
    x = 2.0 * np.random.default_rng([1, 1]).standard_normal((50, 3, 1))
    pre = _numpy_preacts(cell.W_hh.numpy(), cell.W_xh.numpy(), cell.b_h.numpy(), x, np.zeros(10)).ravel()
    counts, edges = np.histogram(np.clip(pre, -8, 8), bins=64, range=(-8, 8))
    np.testing.assert_allclose(c["edges"], edges, rtol=1e-14)
    assert c["counts"] == counts.tolist() and sum(c["counts"]) == c["count"] == 50 * 3 * 10
    assert c["outside"] == int((np.abs(pre) > 8).sum())
    assert c["saturated_fraction"] == pytest.approx(np.mean(1 - np.tanh(pre) ** 2 < 0.1), abs=1e-12)


def test_bptt_equals_autograd_and_the_heatmap_samples_it(url):
    q = dict(activation="tanh", hidden=6, length=40, gain=1.2, input_scale=1.0, seed=2, batch=2)
    d = ok(url, "api/bptt", **q)
    assert d["T"] == 40 and d["T_total"] == 40 and not d["heatmap"]["truncated"]
    cell = random_cell("elman", "tanh", hidden=6, gain=1.2, seed=2)
    x = torch.as_tensor(1.0 * np.random.default_rng([2, 1]).standard_normal((40, 2, 1)))
    y = torch.as_tensor(np.random.default_rng([2, 2]).standard_normal((40, 2, 6)))
    W = cell.W_hh.clone().requires_grad_(True)
    h, loss = torch.zeros(2, 6, dtype=F64), 0.0
    for t in range(40):  # E = sum_t mean_b 0.5 ||h_t - y_t||^2 (the identity head's MSE)
        h = torch.tanh(h @ W.T + x[t] @ cell.W_xh.T + cell.b_h)
        loss = loss + 0.5 * ((h - y[t]) ** 2).sum(-1).mean()
    loss.backward()
    assert d["loss"] == pytest.approx(float(loss.detach()), rel=1e-12)
    np.testing.assert_allclose(d["grads"]["W_hh"], W.grad.numpy(), rtol=1e-9, atol=1e-12)
    C = np.array(d["contributions_norm"])
    assert np.all(np.triu(C, 1) == 0)  # no contribution of a step after the loss step
    hm = d["heatmap"]
    idx = np.array(hm["t"]) - 1
    with np.errstate(divide="ignore"):
        ref = np.log10(C[np.ix_(idx, idx)])
    ref[np.triu_indices(len(idx), 1)] = np.nan
    ref[~np.isfinite(ref)] = np.nan
    got = np.array([[np.nan if v is None else v for v in row] for row in hm["log10_contributions_norm"]])
    np.testing.assert_allclose(got, ref, rtol=1e-12, equal_nan=True)


def test_heatmap_is_capped_and_downsampled_for_long_sequences(url):
    d = ok(url, "api/heatmap", hidden=64, length=500, gain=1.0, input_scale=0.1)
    hm = d["heatmap"]
    assert "grads" not in d and "contributions_norm" not in d  # the page's light version
    assert hm["truncated"] and d["T_total"] == 500 and d["T"] == hm["steps"] <= LIMITS.heatmap_max_steps
    assert d["T"] ** 2 * 64 * 66 <= LIMITS.heatmap_budget
    assert len(hm["t"]) <= LIMITS.heatmap_cells + 1 and hm["t"][-1] == d["T"]
    assert len(hm["log10_contributions_norm"]) == len(hm["t"])


def test_gated_cells_have_gate_blocks_and_no_heatmap(url):
    d = ok(url, "api/explore", cell="lstm", hidden=8, length=30, gain=1.1, input_scale=0.5)
    assert d["profile"]["state"] == "(h, c)" and d["profile"]["state_size"] == 16
    assert d["profile"]["verdict"] == "no a-priori bound (gated cell)" and d["spectrum"]["tests"] is None
    W = random_cell("lstm", hidden=8, gain=1.1, seed=0).W_hh.numpy()  # (4H, H)
    for i, b in enumerate(d["spectrum"]["blocks"]):
        np.testing.assert_allclose(b["singular_values"], np.linalg.svd(W[8 * i:8 * (i + 1)], compute_uv=False), rtol=1e-12)
    assert [c["activation"] for c in d["activation"]["curves"]] == ["sigmoid", "tanh"]
    assert sum(d["activation"]["curves"][0]["counts"]) == 30 * 24 and sum(d["activation"]["curves"][1]["counts"]) == 30 * 8
    r = get(url, "api/heatmap", cell="gru", hidden=8)
    assert r.status_code == 422 and "elman or pal" in r.json()["error"]


# ----------------------------------------------------------------------------------- limits and errors

BAD = [
    ({"hidden": 1}, "hidden: expected an integer in [2, 256], got '1'"),
    ({"hidden": 257}, "hidden: expected an integer in [2, 256]"),
    ({"hidden": "abc"}, "hidden: expected an integer in [2, 256], got 'abc'"),
    ({"hidden": "3.5"}, "hidden: expected an integer"),
    ({"length": 2001}, "length: expected an integer in [2, 2000]"),
    ({"length": ""}, "length: expected an integer"),
    ({"batch": 9}, "batch: expected an integer in [1, 8]"),
    ({"gain": -0.1}, "gain: expected a finite number in [0, 20]"),
    ({"gain": "nan"}, "gain: expected a finite number"),
    ({"gain": "inf"}, "gain: expected a finite number"),
    ({"rho": "1e400"}, "rho: expected a finite number"),
    ({"sigma_max": "x"}, "sigma_max: expected a finite number"),
    ({"input_scale": 11}, "input_scale: expected a finite number in [0, 10]"),
    ({"seed": -1}, "seed: expected an integer in [0, 2147483647]"),
    ({"cell": "rnn"}, "cell: expected one of elman, pal, lstm, gru, lru, mingru, minlstm, mamba, slstm, indrnn, cornn, "
                      "exprnn, got 'rnn'"),
    ({"activation": "softplus"}, "activation: expected one of sigmoid, tanh, relu, identity"),
    ({"init": "xavier"}, "init: expected one of normal, orthogonal, identity, saddle"),
    ({"bias": "one"}, "bias: expected one of zero, centred"),
    ({"gain": 1, "rho": 1}, "W_hh scale: expected one of gain, rho, sigma_max, got gain, rho"),
    ({"hiddne": 8}, "parameter: expected only cell, activation"),
    ({"cell": "lstm", "activation": "tanh"}, "activation: expected none for the gated cell lstm"),
    ({"cell": "gru", "rho": 1.0}, "rho: expected gain for the gated cell gru"),
    ({"cell": "lstm", "bias": "centred"}, "bias: expected zero for the gated cell lstm"),
    ({"init": "saddle", "hidden": 3}, "hidden: expected 2 for init saddle"),
    ({"init": "saddle", "hidden": 2, "activation": "relu"}, "activation: expected sigmoid or tanh for init saddle"),
    ({"init": "identity", "gain": 0, "rho": None, "sigma_max": None}, None),  # fine: W = 0
    ({"init": "identity", "rho": 2, "hidden": 4}, None),
    ({"hidden": 256, "length": 2000}, "length: expected T*B*S^3 <= 1.2e+10"),
    ({"cell": "lstm", "hidden": 256, "length": 100}, "length: expected T*B*S^3"),
    ({"activation": "identity", "gain": 3, "length": 2000, "input_scale": 1}, "expected a forward pass with finite states"),
    ({"activation": "relu", "init": "identity", "gain": 0, "sigma_max": None}, None),
    # the modern cells (explorer_modern): no W_hh scale, init, bias; options only for their own kind
    ({"cell": "lru", "activation": "tanh"}, "activation: expected none for the lru cell"),
    ({"cell": "mingru", "gain": 2}, "gain: expected gain 1 for the mingru cell"),
    ({"cell": "mamba", "rho": 0.5}, "rho: expected gain 1 for the mamba cell"),
    ({"cell": "slstm", "init": "orthogonal"}, "init: expected normal (unused) for the slstm cell"),
    ({"cell": "cornn", "bias": "centred"}, "bias: expected zero for the cornn cell"),
    ({"cell": "elman", "r_min": 0.5}, "r_min: expected none for the elman cell (r_min is an option of lru), got 0.5"),
    ({"cell": "lru", "dt_min": 0.01}, "dt_min: expected none for the lru cell"),
    ({"cell": "lru", "r_min": 0.9, "r_max": 0.5}, "r_max: expected a number > r_min = 0.9, got 0.5"),
    ({"cell": "lru", "r_min": 0.5, "r_max": 0.5}, "r_max: expected a number > r_min = 0.5"),
    ({"cell": "lru", "r_max": 1.5}, "r_max: expected a finite number in (0, 1] (lru only), got '1.5'"),
    ({"cell": "lru", "r_min": 1}, "r_min: expected a finite number in [0, 1)"),
    ({"cell": "lru", "r_min": "nan"}, "r_min: expected a finite number"),
    ({"cell": "mamba", "dt_min": 0.1, "dt_max": 0.01}, "dt_max: expected a number >= dt_min = 0.1, got 0.01"),
    ({"cell": "mamba", "dt_max": 0}, "dt_max: expected a finite number in [0.0001, 10] (mamba only)"),
    ({"cell": "slstm", "hidden": 256, "length": 100}, "(S = 1024 the state size, 4H: (h, c, n, m) for slstm"),
    ({"cell": "indrnn", "activation": "softplus"}, "activation: expected one of sigmoid, tanh, relu, identity"),
    ({"cell": "indrnn", "activation": "tanh"}, None),
    ({"cell": "mamba", "dt_min": 0.01, "dt_max": 0.01}, None),
]


@pytest.mark.parametrize("params,message", BAD, ids=[str(p) for p, _ in BAD])
def test_bad_parameters_get_422_with_a_message(url, params, message):
    params = {k: v for k, v in params.items() if v is not None}
    r = get(url, "api/profile", **params)
    if message is None:
        assert r.status_code == 200, r.text
        return
    assert r.status_code == 422, (params, r.status_code, r.text[:200])
    body = r.json()
    assert list(body) == ["error"] and message in body["error"], body
    assert "\n" not in body["error"]


def test_repeated_and_rho_of_zero_matrix_parameters(url):
    r = requests.get(url + "api/profile?hidden=4&hidden=5", timeout=30)
    assert r.status_code == 422 and r.json()["error"] == "hidden: expected one value, got 2"
    r = get(url, "api/spectrum", init="identity", gain=0.0)
    assert r.status_code == 200 and r.json()["spectral_radius"] == 0.0
    r = get(url, "api/spectrum", hidden=4, rho=0.0)  # a zero target is fine: W = 0
    assert r.status_code == 200 and r.json()["sigma_max"] == 0.0


def test_budgets_bound_time_and_memory():
    for cfg in (ExplorerConfig(hidden=256, length=2000), ExplorerConfig(cell="lstm", activation=None, hidden=256, length=100),
                ExplorerConfig(hidden=128, length=2000, batch=8)):
        with pytest.raises(InputError, match="expected T\\*B\\*S\\^3"):
            check_budget(cfg)
    # the largest settings allowed stay within the budgets: the trace well under 1 GB
    for cell, H in (("elman", 256), ("gru", 256), ("lstm", 128)):
        S = 2 * H if cell == "lstm" else H
        T = min(LIMITS.length[1], int(LIMITS.profile_budget // S**3))
        check_budget(ExplorerConfig(cell=cell, activation=None if cell in ("lstm", "gru") else "tanh", hidden=H, length=T))
        assert (T + 1) * (3 * S + 4 * H + 1) * 8 < 0.1 * LIMITS.memory_limit


def test_spectrum_of_lstm_256_is_its_w_hh_eigen_and_singular_values(url):
    """/api/spectrum computes no profile: lstm at H = 256 (T B S^3 = 2.7e10 at the default T = 200) is answered, with
    torch.linalg.eigvals / svdvals of the gate blocks of the W_hh that the same seed builds (rebuilt here)."""
    sp = ok(url, "api/spectrum", cell="lstm", hidden=256)
    W = random_cell("lstm", hidden=256, input_size=1, seed=0, dtype=F64).W_hh  # (4H, H): i, f, g, o
    assert torch.equal(torch.tensor(sp["W_hh"], dtype=F64), W)
    key = lambda z: (round(z.real, 8), round(z.imag, 8))  # noqa: E731
    assert [b["name"] for b in sp["blocks"]] == ["W_hh input gate i", "W_hh forget gate f", "W_hh candidate g",
                                                 "W_hh output gate o"]
    for i, b in enumerate(sp["blocks"]):
        block = W[256 * i:256 * (i + 1)]
        ev = torch.linalg.eigvals(block).numpy()
        got = np.array(b["eigenvalues"]["re"]) + 1j * np.array(b["eigenvalues"]["im"])
        np.testing.assert_allclose(sorted(got, key=key), sorted(ev, key=key), rtol=1e-9, atol=1e-11)
        np.testing.assert_allclose(b["singular_values"], torch.linalg.svdvals(block).numpy(), rtol=1e-12)
    assert sp["sigma_max"] == pytest.approx(float(torch.linalg.svdvals(W)[0]), rel=1e-12)
    assert sp["verdict"] == "no a-priori bound (gated cell)" and sp["tests"] is None


# each endpoint refused over the budget of what it computes, within LIMITS's ranges; None: answered
OWN_BUDGET = [
    ("profile", dict(hidden=256, length=2000), "length: expected T*B*S^3 <= 1.2e+10"),
    ("explore", dict(hidden=256, length=2000), "length: expected T*B*S^3 <= 1.2e+10"),
    ("spectrum", dict(hidden=256, length=2000, batch=8), None),  # eigen- and singular values of W_hh only
    ("spectrum", dict(cell="lstm", hidden=256, length=2000, batch=8), None),
    ("spectrum", dict(cell="slstm", hidden=256, length=100), None),  # its Jacobian along a 100-step trajectory
    ("spectrum", dict(cell="slstm", hidden=256, length=2000, batch=8),
     "size: expected the spectrum view's trace and working space to fit in 1 GiB, got T = 2000, B = 8, S = 1024"),
    ("activation", dict(hidden=256, length=2000, batch=8), None),  # one unroll: T B A S = 1e9
    ("activation", dict(cell="lstm", hidden=256, length=2000, batch=8),
     "size: expected the activation view's trace and working space to fit in 1 GiB, got T = 2000, B = 8, S = 512, "
     "A = 1024"),
    ("heatmap", dict(hidden=256, length=2000, batch=8), None),  # T_h steps within its own budget
    ("bptt", dict(hidden=256, length=2000), None),
]


@pytest.mark.parametrize("view,params,message", OWN_BUDGET, ids=[f"{v}-{p}" for v, p, _ in OWN_BUDGET])
def test_each_endpoint_is_held_to_the_budget_of_what_it_computes(url, view, params, message):
    r = get(url, f"api/{view}", **params)
    if message is None:
        assert r.status_code == 200, r.text[:300]
        if view in ("heatmap", "bptt"):
            d = r.json()
            S, B = 256, params.get("batch", 1)
            assert 2 <= d["T"] == d["heatmap"]["steps"] and d["T"] ** 2 * B * S * (S + 2) <= LIMITS.heatmap_budget
        return
    assert r.status_code == 422 and list(r.json()) == ["error"] and message in r.json()["error"], r.text[:300]


TIGHT = Limits(trajectory_budget=1e7, weights_budget=1e6, heatmap_budget=2e4, memory_budget=1e5)
TIGHT_CASES = [  # (view, params, the quantity named) with TIGHT's budgets
    ("activation", dict(hidden=64, length=2000, batch=2), "length: expected T*B*A*S <= 1e+07 for the trajectory "
     "(A = 64 the pre-activations' width, S = 64 the state size: a few seconds of compute), got T = 2000, B = 2, "
     "A = 64, S = 64 (1.64e+07); at this size T <= 1220"),
    ("activation", dict(hidden=64, length=1200, batch=2), None),
    ("profile", dict(hidden=64, length=2000, batch=2), "length: expected T*B*A*S <= 1e+07"),  # it unrolls too
    ("spectrum", dict(hidden=128), "hidden: expected A*S^2 <= 1e+06 for the eigen- and singular values (A = 128 the "
     "pre-activations' width, S = 128 the state size), got H = 128 (2.1e+06)"),
    ("spectrum", dict(hidden=64, length=2000, batch=2), None),  # no trajectory for elman's W_hh
    ("spectrum", dict(cell="mamba", hidden=64, length=2000, batch=2), "length: expected T*B*A*S <= 1e+07"),
    ("spectrum", dict(cell="lru", hidden=32, length=2000, batch=2), None),  # lambda: weights only
    ("heatmap", dict(hidden=128), "hidden: expected T_h^2*B*S*(S+D+1) <= 2e+04 for the (t, k) table over at least "
     "T_h = 2 steps, got B = 1, S = 128, D = 1 (6.66e+04 at T_h = 2)"),
    ("bptt", dict(hidden=64, length=500), None),
    ("memory", dict(lambdas="0.9", sequences=1000), "sequences: expected sequences x steps <= 1e+05"),
    ("memory", dict(lambdas="0.5", sequences=100), None),
]


@pytest.fixture(scope="module")
def tight_url():
    with background(create_app(workers=1, limits=TIGHT)) as base:
        yield base


@pytest.mark.parametrize("view,params,message", TIGHT_CASES, ids=[f"{v}-{p}" for v, p, _ in TIGHT_CASES])
def test_tighter_budgets_refuse_each_endpoint_by_its_own_quantity(tight_url, view, params, message):
    """Budgets that the ranges never reach are enforced too: an app with tighter Limits refuses each endpoint by the
    formula of what it computes (explorer.check_budget), and answers what stays within it."""
    r = get(tight_url, f"api/{view}", **params)
    if message is None:
        assert r.status_code == 200, r.text[:300]
        if view == "bptt":
            d = r.json()
            assert d["T"] ** 2 * 64 * 66 <= TIGHT.heatmap_budget < (d["T"] + 1) ** 2 * 64 * 66
        return
    assert r.status_code == 422 and message in r.json()["error"], r.text[:300]
    assert "\n" not in r.json()["error"]


def test_check_budget_counts_match_the_formulas():
    """peak_numbers and the time formulas of check_budget, against the counts written out here."""
    cfg = ExplorerConfig(cell="gru", activation=None, hidden=100, length=300, batch=3)
    S, A, T, B, D = 100, 300, 300, 3, 1
    weights = A * (S + D) + T * B * D + 8 * S * S
    assert peak_numbers(cfg, "spectrum") == weights
    assert peak_numbers(cfg, "activation") == weights + 8 * (T + 1) * B * (S + A + D)
    assert peak_numbers(cfg, "profile") == weights + 8 * (T + 1) * B * (S + A + D) + 6 * B * S * S + 2 * 1024**2
    Th = int(math.sqrt(LIMITS.heatmap_budget / (B * S * (S + D + 1))))
    assert peak_numbers(cfg, "heatmap") == (weights + 8 * (Th + 1) * B * (S + A + D) + 2 * Th * S * (S + D + 1)
                                            + 3 * Th * Th + 5 * (Th + 1) * B * S)
    tight = Limits(trajectory_budget=T * B * A * S, weights_budget=A * S * S)
    check_budget(cfg, tight, "activation")  # exactly at the budgets: allowed
    with pytest.raises(InputError, match="expected T\\*B\\*A\\*S"):
        check_budget(dataclasses.replace(cfg, length=T + 1), tight, "activation")
    check_budget(dataclasses.replace(cfg, length=T + 1), tight, "spectrum")  # gru's spectrum: no trajectory
    with pytest.raises(InputError, match="expected A\\*S\\^2"):
        check_budget(cfg, dataclasses.replace(tight, weights_budget=A * S * S - 1), "spectrum")
    with pytest.raises(InputError, match="view: expected one of explore, profile"):
        check_budget(cfg, view="memory")


# ----------------------------------------------------------------------------------- HEAD answers as GET

HEADS = ["/", "/static/index.html", "/static/app.js", "/static/style.css", "/static/plotly.min.js", "/static/x.js",
         "/api/meta", "/api/presets", "/api/report", "/api/openapi.json", "/api/nothing", "/report",
         "/api/explore?hidden=8&length=20", "/api/profile?hidden=8&length=20", "/api/spectrum?hidden=8",
         "/api/activation?hidden=8&length=20", "/api/bptt?hidden=8&length=20", "/api/heatmap?hidden=8&length=20",
         "/api/memory?lambdas=0.5&sequences=100", "/api/profile?hidden=1", "/api/profile?hidden=256&length=2000",
         "/api/heatmap?cell=gru&hidden=8", "/api/memory?rho=2"]
TIMED = ("/api/explore", "/api/profile?hidden=8", "/api/bptt", "/api/heatmap?hidden=8", "/api/memory?lambdas")


def _raw_response(url, method, path):
    """(status, headers, bytes after the header block) of one request on a raw socket (Connection: close)."""
    u = urlparse(url)
    with socket.create_connection((u.hostname, u.port), timeout=60) as s:
        s.sendall(f"{method} {path} HTTP/1.1\r\nHost: {u.hostname}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    return int(lines[0].split()[1]), headers, rest


@pytest.mark.parametrize("path", HEADS)
def test_head_answers_like_get_without_a_body(url, path):
    """HEAD on every GET route: the status and headers of GET (never 405), and not one byte of body."""
    g_status, g_headers, g_body = _raw_response(url, "GET", path)
    h_status, h_headers, h_body = _raw_response(url, "HEAD", path)
    assert h_status == g_status and h_status != 405, (path, h_status, g_status)
    assert h_body == b"" and len(g_body) == int(g_headers["content-length"])
    varying = {"date", "server-timing", "content-length"}
    assert set(h_headers) == set(g_headers)
    assert {k: v for k, v in h_headers.items() if k not in varying} == \
           {k: v for k, v in g_headers.items() if k not in varying}
    if path.startswith(TIMED) and g_status == 200:  # "seconds" fields: the length varies by a few digits
        assert abs(int(h_headers["content-length"]) - int(g_headers["content-length"])) <= 40
    else:
        assert h_headers["content-length"] == g_headers["content-length"]


@pytest.mark.slow
def test_the_largest_allowed_setting_computes_in_a_few_seconds(url):
    T = int(LIMITS.profile_budget // 256**3)
    start = time.perf_counter()
    d = ok(url, "api/profile", hidden=256, length=T, gain=1.0, input_scale=0.5)
    seconds = time.perf_counter() - start
    assert d["t"] == T and seconds < 10, seconds  # about 2.5 s on this 2-core machine


# ----------------------------------------------------------------------------------- static files, report

def _raw(url, path):
    """GET with the path sent exactly as written (no client-side normalisation of '..' or '%2e')."""
    u = urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


TRAVERSALS = ["/static/../server.py", "/static/%2e%2e/server.py", "/static/%2E%2E%2Fserver.py", "/static/..%2fserver.py",
              "/static/..%5cserver.py", "/static//etc/passwd", "/static/%2Fetc%2Fpasswd", "/static/static/index.html",
              "/static/./index.html", "/static/index.html%00", "/static/../../../../etc/passwd", "/static/",
              "/report/../server.py", "/report/%2e%2e/%2e%2e/etc/passwd", "/report//etc/passwd", "/report/%2Fetc%2Fpasswd",
              "/report/claims/../../x", "/report/claims/", "/report/nothing.html", "/server.py", "/..%2f..%2fetc%2fpasswd"]


def test_static_files_and_no_path_traversal(url):
    status, body = _raw(url, "/static/index.html")
    assert status == 200 and b"rnnscope explorer" in body
    assert b"http://" not in body and b"https://" not in body  # nothing from the network
    status, body = _raw(url, "/static/plotly.min.js")
    ref = (importlib.resources.files("plotly") / "package_data" / "plotly.min.js").read_bytes()
    assert status == 200 and hashlib.sha256(body).digest() == hashlib.sha256(ref).digest()
    assert _raw(url, "/")[1] == _raw(url, "/static/index.html")[1]
    assert get(url, "report/").status_code in (200, 202)  # the report's folder exists for the /report/ traversals
    for path in TRAVERSALS:
        status, body = _raw(url, path)
        assert status in (400, 404), (path, status)
        assert b"root:" not in body and b"import" not in body, path


def test_claims_report_is_generated_once_then_served(tmp_path):
    calls = []

    def builder(out):
        calls.append(out)
        _fake_report(out)

    with background(create_app(report_builder=builder)) as base:
        assert requests.get(base + "api/report", timeout=30).json()["status"] == "idle"
        r = requests.get(base + "report/", timeout=30)
        assert r.status_code == 202 and "Generating the claims report" in r.text
        for _ in range(200):
            if requests.get(base + "api/report", timeout=30).json()["status"] == "ready":
                break
            time.sleep(0.05)
        r = requests.get(base + "report/", timeout=30)
        assert r.status_code == 200 and "claims report" in r.text
        assert requests.get(base + "report/claims/c.png", timeout=30).content == b"\x89PNG fake"
        assert requests.get(base + "report", timeout=30, allow_redirects=False).status_code == 307
        folder = calls[0]
        assert len(calls) == 1 and folder.is_dir()
    assert not folder.exists()  # the temporary folder goes with the server

    given = tmp_path / "rnnscope-report"
    given.mkdir()
    (given / "index.html").write_text("<h1>the demo's report</h1>")
    with background(create_app(report_dir=given)) as base:
        assert requests.get(base + "api/report", timeout=30).json() == {"status": "ready", "error": None, "source": str(given)}
        assert requests.get(base + "report/", timeout=30).text == "<h1>the demo's report</h1>"

    def broken(out):
        raise RuntimeError("no claims today")

    with background(create_app(report_builder=broken)) as base:
        requests.get(base + "report/", timeout=30)
        for _ in range(100):
            st = requests.get(base + "api/report", timeout=30).json()
            if st["status"] == "failed":
                break
            time.sleep(0.05)
        assert st == {"status": "failed", "error": "RuntimeError: no claims today", "source": "generated from rnnscope claims"}
        assert "no claims today" in requests.get(base + "report/", timeout=30).text
    with pytest.raises(InputError, match="expected a folder with index.html"):
        create_app(report_dir=tmp_path / "nothing")


def test_meta_lists_limits_presets_and_gammas(url):
    m = ok(url, "api/meta")
    assert m["limits"]["hidden"] == [2, 256] and m["limits"]["length"] == [2, 2000]
    assert {a: v["gamma"] for a, v in m["activations"].items()} == {"sigmoid": 0.25, "tanh": 1.0, "relu": 1.0, "identity": 1.0}
    assert [p["title"] for p in m["presets"]] == ["seed 002: vanishing", "seed 002: exploding", "non-normal counterexample",
                                                  "edge of chaos", "LRU near the unit circle", "minGRU",
                                                  "Mamba: Delta decides memory"]
    for p in m["presets"]:
        build(ExplorerConfig(**p["config"]))  # every preset is a valid setting
    assert ok(url, "api/presets") == m["presets"]
    assert ok(url, "api/openapi.json")["paths"]["/api/profile"]["get"]["parameters"]


# ----------------------------------------------------------------------------------- serving

def test_serve_refuses_a_port_in_use_with_one_line(capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        code = main(["serve", "--port", str(port)])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err == (f"rnnscope serve: error: port: expected a free port on 127.0.0.1, got {port} (already in use; "
                   f"try --port {port + 1})\n")
    assert main(["serve", "--port", "70000"]) == 2
    assert "serve: error: --port: expected a port number in [0, 65535], got 70000" in capsys.readouterr().err
    assert main(["serve", "--host", "no such host.invalid"]) == 2
    assert "host: expected an address" in capsys.readouterr().err
    assert main(["serve", "--workers", "0"]) == 2
    assert capsys.readouterr().err == "rnnscope serve: error: --workers: expected a positive integer, got 0\n"


def test_fifty_concurrent_requests_are_all_answered_correctly(url):
    """A bounded load test on loopback: 50 requests at once, 10 settings, each answer equal to the library's."""
    settings = [dict(cell=c, hidden=h, length=t, seed=s, input_scale=0.5, **({"activation": a} if a else {}), **{sc: v})
                for c, a, h, t, s, sc, v in [
                    ("elman", "tanh", 8, 40, 0, "gain", 1.5), ("elman", "sigmoid", 5, 20, 1, "rho", 3.0),
                    ("elman", "sigmoid", 5, 20, 1, "sigma_max", 3.0), ("pal", "tanh", 12, 50, 2, "gain", 0.8),
                    ("elman", "relu", 16, 30, 3, "rho", 0.9), ("lstm", None, 6, 40, 4, "gain", 1.2),
                    ("gru", None, 6, 40, 5, "gain", 1.2), ("elman", "identity", 10, 25, 6, "sigma_max", 1.1),
                    ("pal", "sigmoid", 8, 30, 7, "rho", 2.0), ("elman", "tanh", 32, 60, 8, "gain", 1.0)]]
    expected = []
    for q in settings:
        scale = next(k for k in ("gain", "rho", "sigma_max") if k in q)
        cfg = ExplorerConfig(cell=q["cell"], activation=q.get("activation"), hidden=q["hidden"], length=q["length"],
                             seed=q["seed"], input_scale=0.5, scale=scale, value=q[scale])
        expected.append(profile_view(build(cfg)))
    jobs = [i % len(settings) for i in range(50)]
    barrier = threading.Barrier(50)

    def one(i):
        barrier.wait()  # all 50 at once
        t0 = time.perf_counter()
        r = requests.get(url + "api/profile", params=settings[i], timeout=120)
        return i, r.status_code, r.json(), time.perf_counter() - t0

    start = time.perf_counter()
    with ThreadPoolExecutor(50) as pool:
        results = list(pool.map(one, jobs))
    wall = time.perf_counter() - start
    for i, status, body, _ in results:
        assert status == 200, body
        exp = expected[i]
        assert body["verdict"] == exp["verdict"] and body["model"] == exp["model"]
        for k in ("log10_spectral", "log10_frobenius", "log10_adjoint"):
            assert close(body[k], exp[k], tol=1e-12), (i, k)
    assert wall < 60, wall
    print(f"50 concurrent requests: {wall:.2f} s wall, slowest {max(r[3] for r in results):.2f} s")


def test_explore_latency_at_s64_t500(url, artifacts_dir):
    """Server-side latency of what one slider change asks for at S = 64, T = 500 (explore + heatmap)."""
    q = dict(hidden=64, length=500, input_scale=0.1)
    ok(url, "api/explore", gain=1.0, **q)  # warm-up
    rows = []
    for g in (0.9, 1.0, 1.1, 1.2, 1.3):
        t0 = time.perf_counter()
        e = get(url, "api/explore", gain=g, **q)
        t1 = time.perf_counter()
        h = get(url, "api/heatmap", gain=g, **q)
        t2 = time.perf_counter()
        assert e.status_code == h.status_code == 200
        server = [float(re.search(r"compute;dur=([0-9.]+)", r.headers["Server-Timing"]).group(1)) for r in (e, h)]
        rows.append({"gain": g, "explore_ms": 1e3 * (t1 - t0), "heatmap_ms": 1e3 * (t2 - t1),
                     "explore_server_ms": server[0], "heatmap_server_ms": server[1]})
    med = {k: statistics.median(r[k] for r in rows) for k in rows[0] if k != "gain"}
    (artifacts_dir / "explorer-api-latency.json").write_text(json.dumps({"median": med, "runs": rows}, indent=1))
    assert med["explore_ms"] + med["heatmap_ms"] < 1500, med  # about 150 ms here; generous for a busy CI machine


def test_explore_is_one_unroll_of_the_same_model():
    cfg = ExplorerConfig(activation="sigmoid", hidden=5, length=20, scale="rho", value=3.0, input_scale=1.0)
    e = explore(cfg)
    p = profile_view(build(cfg))
    assert close(e["profile"]["log10_spectral"], p["log10_spectral"]) and e["config"] == cfg.to_dict()
    assert e["measured"]["log10_first"] == p["log10_spectral"][0]


def _parents() -> dict[int, int]:
    """{pid: parent pid} of every process (Linux /proc)."""
    out = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_bytes()
            except OSError:
                continue
            out[int(d.name)] = int(stat[stat.rindex(b")") + 2:].split()[1])
    return out


def _descendants(pid: int) -> list[int]:
    parents, found, todo = _parents(), [], [pid]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parents.items() if pp == p]
        found += kids
        todo += kids
    return found


def _alive(pid: int) -> bool:
    """Whether the process exists and is not a zombie."""
    try:
        stat = (Path("/proc") / str(pid) / "stat").read_bytes()
    except OSError:
        return False
    return stat[stat.rindex(b")") + 2:][:1] not in (b"Z", b"X")


def test_console_script_serves_then_stops_on_ctrl_c(tmp_path):
    """`rnnscope serve --port 0` (any free port) as a learner runs it: the page and the API answer; Ctrl-C stops it,
    and with it every process it started (the pool's workers and multiprocessing's helpers)."""
    import os
    import signal
    import subprocess
    import sys

    exe = Path(sys.executable).parent / "rnnscope"
    proc = subprocess.Popen([str(exe), "serve", "--port", "0", "--workers", "2"], cwd=tmp_path, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        line = proc.stderr.readline()
        assert line.startswith("rnnscope explorer: http://127.0.0.1:") and "Ctrl-C to stop" in line, line
        base = line.split()[2]
        for _ in range(100):
            try:
                r = requests.get(base, timeout=5)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        assert r.status_code == 200 and "rnnscope explorer" in r.text
        d = requests.get(base + "api/profile", params={"hidden": 4, "length": 10, "gain": 0.5}, timeout=30).json()
        assert d["verdict"] == "vanishing guaranteed" and d["log10_spectral"][-1] == 0.0
        family = _descendants(proc.pid)  # the forkserver, its two workers, multiprocessing's resource tracker
        assert len(family) >= 3, family
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
        assert proc.stderr.read() == "rnnscope explorer: stopped\n"
        deadline = time.monotonic() + 10  # the forkserver and the tracker see their parent's end and exit
        while any(_alive(p) for p in family) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [p for p in family if _alive(p)], family  # nothing left behind
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()


# ----------------------------------------------------------------------------------- the modern cells (issue 14)

MODERN = {"lru": 2, "mingru": 1, "minlstm": 1, "mamba": 1, "slstm": 4, "indrnn": 1, "cornn": 2, "exprnn": 1}


@pytest.mark.parametrize("kind", list(MODERN))
def test_modern_cells_profile_equals_the_library(url, kind):
    """Every modern kind: the API's profile is profile_trace of random_cell(kind, ...) on the documented inputs."""
    H, T, B = 6, 40, 2
    api = ok(url, "api/explore", cell=kind, hidden=H, length=T, batch=B, seed=4, input_scale=0.7)
    cell = random_cell(kind, hidden=H, input_size=1, seed=4)
    assert cell.state_size == MODERN[kind] * H == api["profile"]["state_size"]
    assert ExplorerConfig(cell=kind, activation=getattr(cell, "activation", None) and cell.activation.name,
                          hidden=H).state_size() == cell.state_size
    x = torch.as_tensor(0.7 * np.random.default_rng([4, 1]).standard_normal((T, B, 1)))
    p = library_profile(cell, x)
    finite = lambda t: [v if math.isfinite(v) else None for v in t.tolist()]  # noqa: E731 (JSON: -inf is null)
    assert close(api["profile"]["log10_spectral"], finite(p.log10_spectral))
    assert close(api["profile"]["log10_adjoint"], finite(p.log10_adjoint))
    facts = weight_facts(cell)
    assert api["profile"]["verdict"] == api["spectrum"]["verdict"] == facts.verdict
    assert api["spectrum"]["note"] == facts.note and api["spectrum"]["step_bound"] == facts.step_bound
    assert api["profile"]["model"]["options"] == {} and "gain" not in api["profile"]["model"]
    sp = api["spectrum"]
    if kind == "lru":
        lam = cell.lam.numpy()
        assert sp["matrix"] == "lambda" and close(sp["blocks"][0]["eigenvalues"]["re"], lam.real.tolist())
        assert close(sp["blocks"][0]["singular_values"], sorted(np.abs(lam), reverse=True))
    elif kind == "exprnn":
        W = cell.W_hh.numpy()
        assert sp["matrix"] == "W_hh" and close(sp["blocks"][0]["singular_values"], np.linalg.svd(W, compute_uv=False))
    else:  # the one-step Jacobian at the last step of sequence 1
        trace = unroll(cell, x)
        J = cell.jacobian(trace.inputs[T - 1, :1], trace.states[T - 1, :1])[0].numpy()
        assert sp["matrix"] == "jacobian" and sp["step"] == T
        np.testing.assert_allclose(sp["blocks"][0]["singular_values"], np.linalg.svd(J, compute_uv=False), rtol=1e-10,
                                   atol=1e-14)
    act = api["activation"]
    if kind in ("lru", "mingru", "minlstm", "mamba"):  # J_t = diag(a_t): the memory 1/(1 - |a_t|) of each factor
        f = act["factors"]
        assert act["curves"] == [] and f["count"] == sum(f["counts"]) == (H if kind == "lru" else T * B * cell.state_size)
        if kind != "lru":
            trace = unroll(cell, x)
            a = np.concatenate([np.diagonal(cell.jacobian(trace.inputs[t], trace.states[t]).numpy(), axis1=1, axis2=2)
                                .ravel() for t in range(T)])
            assert f["max_factor"] == pytest.approx(np.abs(a).max(), rel=1e-12) and np.abs(a).max() < 1
            counts, _ = np.histogram(np.clip(np.log10(1 / (1 - np.abs(a))), 0, 5), bins=50, range=(0, 5))
            assert f["counts"] == counts.tolist()
    elif kind in ("indrnn", "exprnn", "cornn"):
        assert [c["activation"] for c in act["curves"]] == [cell.activation.name if kind != "cornn" else "tanh"]
        assert act["curves"][0]["count"] == T * B * H
    else:
        assert act["curves"] == [] and act["factors"] is None and "no one phi" in act["note"]


def test_lru_profile_slope_is_log10_of_the_largest_lambda(url):
    """LRU: J_t = diag(lambda) (normal, constant), so ||dh_T/dh_k|| = max|lambda|^(T-k) exactly, on its bound."""
    c = next(p.config for p in PRESETS if p.name == "lru-unit-circle")
    q = dict(cell="lru", hidden=c.hidden, length=c.length, input_scale=c.input_scale, seed=c.seed, r_min=c.r_min,
             r_max=c.r_max)
    d = ok(url, "api/explore", **q)
    cell = random_cell("lru", hidden=c.hidden, seed=c.seed, r_min=c.r_min, r_max=c.r_max)
    r = float(cell.lam.abs().max())
    assert c.r_min <= np.abs(cell.lam.numpy()).min() and r <= c.r_max
    y = np.array(d["profile"]["log10_spectral"])
    T = c.length
    np.testing.assert_allclose(y, [(T - k) * math.log10(r) for k in range(1, T + 1)], rtol=0, atol=1e-9)
    assert np.diff(y) == pytest.approx(-math.log10(r), abs=1e-9)  # the slope, step by step
    assert close(d["profile"]["log10_bound"], y.tolist(), tol=1e-9)  # the bound is an equality
    assert d["spectrum"]["spectral_radius"] == pytest.approx(r, rel=1e-14)
    assert d["spectrum"]["ring"] == {"r_min": c.r_min, "r_max": c.r_max}
    assert d["profile"]["model"]["options"] == {"r_min": c.r_min, "r_max": c.r_max}
    assert d["profile"]["verdict"] == "vanishing guaranteed"


def test_modern_presets_show_what_they_say(url):
    by = {p.name: p.config for p in PRESETS}
    g = by["mingru"]
    d = ok(url, "api/explore", cell="mingru", hidden=g.hidden, length=g.length, input_scale=g.input_scale)
    y = d["profile"]["log10_spectral"]
    assert d["profile"]["verdict"] == "never exploding" and all(v <= 1e-12 for v in y)  # never above 1
    assert all(b <= a + 1e-12 for a, b in zip(y[1:], y[:-1]))  # only falls with the distance
    m = by["mamba-delta"]
    q = dict(cell="mamba", hidden=m.hidden, length=m.length, input_scale=m.input_scale, seed=m.seed)
    small = ok(url, "api/explore", dt_min=m.dt_min, dt_max=m.dt_max, **q)
    large = ok(url, "api/explore", dt_min=0.1, dt_max=1.0, **q)
    assert small["measured"]["regime"] == "neither" and small["profile"]["log10_spectral"][0] > -3  # memory kept
    assert large["measured"]["regime"] == "vanishing" and large["measured"]["horizon"] <= 10  # forgotten
    assert small["activation"]["factors"]["median_memory"] > 10 * large["activation"]["factors"]["median_memory"]
    cell = random_cell("mamba", hidden=m.hidden, seed=m.seed, dt_min=m.dt_min, dt_max=m.dt_max)
    x = torch.as_tensor(m.input_scale * np.random.default_rng([m.seed, 1]).standard_normal((m.length, 1, 1)))
    assert close(small["profile"]["log10_spectral"], library_profile(cell, x).log10_spectral.tolist())
    for p in (by["lru-unit-circle"], g, m):
        assert explore(p)["profile"]["verdict"] in ("vanishing guaranteed", "never exploding")


def test_memory_endpoint_equals_memory_sensitivity(url):
    q = dict(lambdas="0.5,0.9,0.99", rho=0.3, sequences=500, seed=2)
    d = ok(url, "api/memory", **q)
    ref = memory_sensitivity((0.5, 0.9, 0.99), rho=0.3, sequences=500, seed=2, cases=MEMORY_CASES).to_dict()
    for k in ref:
        if k not in ("seconds", "rows"):
            assert d[k] == ref[k], k
    assert len(d["rows"]) == len(ref["rows"]) == 9
    for got, exp in zip(d["rows"], ref["rows"]):
        assert {k: got[k] for k in exp} == exp
        assert got["memory"] == pytest.approx(1 / (1 - exp["lam"]), rel=1e-15)
        assert got["sens_bar"] == 2 * exp["sens_se"] and got["h2_bar"] == 2 * exp["h2_se"]
    for c in d["curves"]:  # the lines: the library's closed forms on a grid
        co = [closed_form(coefficients(c["case"], c["param"], lam), 0.3) for lam in c["lam"]]
        assert close(c["h2"], [v[0] for v in co]) and close(c["sens"], [v[1] for v in co])
        assert c["memory"][0] < 2 and c["memory"][-1] > 100
    assert [(c["case"], c["param"]) for c in d["curves"]] == [("plain", "lambda"), ("normalised", "lambda"),
                                                                ("exponential", "nu")]
    start = time.perf_counter()
    default = ok(url, "api/memory")  # the page's default: a few seconds at most
    assert time.perf_counter() - start < 10 and len(default["lambdas"]) == 9 and default["agree"]


MEMORY_BAD = [
    ({"lambdas": "0.5,x"}, "lambdas: expected 1 to 12 comma-separated numbers in [0.01, 0.9999], got '0.5,x'"),
    ({"lambdas": "1"}, "lambdas: expected 1 to 12"),
    ({"lambdas": ""}, "lambdas: expected 1 to 12"),
    ({"lambdas": ",".join(["0.5"] * 13)}, "lambdas: expected 1 to 12"),
    ({"rho": "0.99"}, "rho: expected a finite number in [-0.95, 0.95], got '0.99'"),
    ({"rho": "nan"}, "rho: expected a finite number"),
    ({"sequences": "1"}, "sequences: expected an integer in [2, 20000], got '1'"),
    ({"sequences": "2.5"}, "sequences: expected an integer"),
    ({"lambdas": "0.9999", "sequences": "20000"}, "sequences: expected sequences x steps <= 1e+08"),
    ({"seed": "-1"}, "seed: expected an integer in [0, 2147483647]"),
    ({"cell": "lru"}, "parameter: expected only lambdas, rho, sequences, seed, got 'cell'"),
]


@pytest.mark.parametrize("params,message", MEMORY_BAD, ids=[str(p)[:40] for p, _ in MEMORY_BAD])
def test_memory_bad_parameters_get_422(url, params, message):
    r = get(url, "api/memory", **params)
    assert r.status_code == 422 and message in r.json()["error"], r.text


def test_meta_lists_the_modern_cells_and_their_options(url):
    m = ok(url, "api/meta")
    assert m["cells"][4:] == list(MODERN) and m["modern_cells"] == list(MODERN)
    assert m["options"] == {"lru": {"r_min": 0.0, "r_max": 1.0}, "mamba": {"dt_min": 0.001, "dt_max": 0.1}}
    assert m["default_activation"] == {"indrnn": "relu", "exprnn": "tanh"}
    assert ok(url, "api/profile", cell="indrnn", hidden=4, length=5)["model"]["hidden"] == 4
    sp = ok(url, "api/spectrum", cell="mamba", hidden=4, length=5, input_scale=1)
    assert sp["matrix"] == "jacobian" and "W_hh" not in sp
