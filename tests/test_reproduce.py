"""reproduce (and reproduce_002, seed 002's notebook): every number behind the seeds' figures against an independent
computation in the test.

Seed 002's notebook is re-executed here from its own lines (with a local RandomState instead of
np.random.seed); matrix products by np.linalg.multi_dot; true-state Jacobians by torch.func.jacrev;
norms and spectra by np.linalg; Theorem 2's terms by jacrev with respect to the copy of W used at step k0.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from matplotlib.image import imread

from rnnscope.core.cells import PalCell
from rnnscope.core.errors import InputError
from rnnscope.seeds.reproduce import SEED_FILES, Reproduction, _nonnormal_setup, reproduce
from rnnscope.seeds.reproduce_002 import notebook_002
from rnnscope.gradients.rtrl import theorem1

NAMES = ["000-powers", "001-theorem2", "002-vanishing-example", "002-vanishing-example-log", "002-exploding-example",
         "002-exploding-example-log", "002-sigmoid-tangents", "003-derivatives", "003-bound"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("figures")
    reps = reproduce("all", out)
    return out, {r.name: r for r in reps}, [r.name for r in reps]


# ------------------------------------------------------------------------------ seed 002: the notebook, verbatim

def _notebook(example: int):
    """The notebook's cells for one example, with RandomState(12345) in place of np.random.seed(12345)."""
    rng = np.random.RandomState(12345)
    t = 20
    if example == 1:
        h = rng.randn(5, t)
        x = rng.randn(5, t)
        b_h = rng.randn(5, 1)
        W_hx = rng.randn(5, 5)
        eig = rng.rand(5) * 4
    else:
        h = np.zeros((5, t))
        x = np.zeros((5, t))
        b_h = np.zeros((5, 1))
        W_hx = rng.randn(5, 5)
        eig = 4 + rng.rand(5) * 10
    Q = rng.randn(5, 5)
    W_hh = Q @ np.diag(eig) @ np.linalg.inv(Q)

    def sigmoid(x):
        return 1 / (1 + np.exp(-x))

    def sigmoid_gradient(x):
        return sigmoid(x) * (1 - sigmoid(x))

    def prod(k):
        p = 1
        for i in range(t - 1, k - 2, -1):
            p *= W_hh.T @ np.diag(sigmoid_gradient(W_hh @ h[:, i] + W_hx @ x[:, i] + b_h))
        return p

    product = np.zeros(20)
    for k in range(t):
        product[k] = np.max(prod(k + 1))
    return dict(t=t, h=h, x=x, b=b_h[:, 0], W_hx=W_hx, W_hh=W_hh, product=product, sg=sigmoid_gradient)


@pytest.mark.parametrize("example", [1, 2])
def test_notebook_002_draws_as_the_notebook(example):
    """notebook_002 (which the claims of seed 002 use too) draws what the notebook's cells draw, in their order."""
    nb, d = _notebook(example), notebook_002(example)
    assert d["t"] == nb["t"] == 20
    for key, ref in (("W_hh", nb["W_hh"]), ("W_hx", nb["W_hx"]), ("x", nb["x"]), ("h", nb["h"]), ("b_h", nb["b"][:, None])):
        np.testing.assert_array_equal(d[key], ref, err_msg=key)


@pytest.mark.parametrize("example,name", [(1, "002-vanishing-example"), (2, "002-exploding-example")])
def test_002_three_ways_against_independent_computations(run, example, name):
    nb, n = _notebook(example), run[1][name].numbers
    t, W, sg = nb["t"], nb["W_hh"], nb["sg"]
    aw, mt, tr = n["as_written"], n["matrix_notebook_h"], n["true_states"]
    # (1) as written: the notebook's own plotted values
    np.testing.assert_allclose(aw["values"], nb["product"], rtol=1e-12, atol=0)
    # ... which are maxima of Hadamard products of the vectors W^T sigma'(a_i), a_i with b_h as a vector
    a = [W @ nb["h"][:, i] + nb["W_hx"] @ nb["x"][:, i] + nb["b"] for i in range(t)]  # (5,) each
    v = np.stack([W.T @ sg(a_i) for a_i in a])  # (t, 5)
    hadamard = np.stack([np.prod(v[k - 1:], axis=0) for k in range(1, t + 1)])  # (t, 5)
    np.testing.assert_allclose(aw["vectors"], hadamard, rtol=1e-12, atol=0)
    np.testing.assert_allclose(aw["values"], hadamard.max(1), rtol=1e-12, atol=0)
    np.testing.assert_allclose(aw["norms"], np.linalg.norm(hadamard, axis=1), rtol=1e-12)
    # (2) matrix products in the notebook's order, W^T D_{t-1} ... W^T D_{k-1}
    factors = [W.T @ np.diag(sg(a_i)) for a_i in a]
    mats = [np.linalg.multi_dot(factors[::-1][: t - k + 1]) if t - k + 1 > 1 else factors[-1] for k in range(1, t + 1)]
    np.testing.assert_allclose(mt["values"], [m.max() for m in mats], rtol=1e-10)
    np.testing.assert_allclose(mt["norms"], [np.linalg.svd(m, compute_uv=False)[0] for m in mats], rtol=1e-10)
    # (3) true states: jacrev of the step along the recomputed trajectory, dh_t/dh_{k-1} = J_t ... J_k
    Wt, Ut, bt = (torch.tensor(m) for m in (W, nb["W_hx"], nb["b"]))
    xt = torch.tensor(nb["x"])
    step = lambda h, i: torch.sigmoid(Wt @ h + Ut @ xt[:, i - 1] + bt)  # noqa: E731  h_i from h_{i-1}
    hs = [torch.zeros(5, dtype=torch.float64)]
    for i in range(1, t + 1):
        hs.append(step(hs[-1], i))
    J = [torch.func.jacrev(step)(hs[i - 1], i) for i in range(1, t + 1)]  # J[i-1] = dh_i/dh_{i-1}
    P, ref = torch.eye(5, dtype=torch.float64), [None] * t
    for k in range(t, 0, -1):
        P = P @ J[k - 1]
        ref[k - 1] = P
    np.testing.assert_allclose(tr["values"], [float(p.max()) for p in ref], rtol=1e-9)
    np.testing.assert_allclose(tr["norms"], [float(torch.linalg.svdvals(p)[0]) for p in ref], rtol=1e-9)
    assert tr["norm_k1"] == tr["norms"][0] and aw["norm_k1"] == aw["norms"][0]
    # rho and sigma_max
    assert n["rho"] == pytest.approx(np.abs(np.linalg.eigvals(W)).max(), rel=1e-12)
    assert n["sigma_max"] == pytest.approx(np.linalg.svd(W, compute_uv=False)[0], rel=1e-12)


def test_002_what_the_examples_show(run):
    ex1, ex2 = run[1]["002-vanishing-example"].numbers, run[1]["002-exploding-example"].numbers
    assert ex1["rho"] < 4 < ex1["sigma_max"]  # the eigenvalue condition holds, the singular-value one does not
    # example 2: at h = 0 the matrix products grow, on the true states they vanish (saturation)
    grow, true = ex2["matrix_notebook_h"]["norms"], ex2["true_states"]["norms"]
    assert grow[0] > 1e6 * grow[-1] and true[0] < 1e-50 * true[-1]
    assert max(ex2["max_dsigmoid_per_step"][2:]) < 1e-3 < 0.25 == ex2["max_dsigmoid_per_step"][0]
    cap = run[1]["002-exploding-example"].caption
    for phrase in ("Hadamard product", "(5, 1)", "saturates", "singular values", "not a Jacobian product"):
        assert phrase in cap


@pytest.mark.parametrize("name", ["002-vanishing-example", "002-exploding-example"])
def test_002_log_companion(run, name):
    lin, log = run[1][name].numbers, run[1][name + "-log"].numbers
    t = lin["t"]
    k = np.arange(1, t + 1)
    smax = np.linalg.svd(_notebook(1 if "vanishing" in name else 2)["W_hh"], compute_uv=False)[0]
    np.testing.assert_allclose(log["log10_pascanu_bound"], (t - k + 1) * np.log10(smax / 4), rtol=1e-12)
    np.testing.assert_allclose(log["log10_as_written_max_abs"], np.log10(np.abs(lin["as_written"]["vectors"]).max(1)))
    for key, lkey in (("matrix_notebook_h", "log10_matrix_notebook_h"), ("true_states", "log10_true_states")):
        np.testing.assert_allclose(log[lkey], np.log10(lin[key]["norms"]), rtol=1e-12)
        assert np.all(np.array(log[lkey]) <= np.array(log["log10_pascanu_bound"]) + 1e-9)  # the bound holds


def test_002_sigmoid_tangents(run):
    n = run[1]["002-sigmoid-tangents"].numbers
    assert n["max_sigmoid_gradient"] == pytest.approx(0.25, abs=1e-15) and n["argmax"] == 0.0
    x = np.array(n["tangent_points"])
    np.testing.assert_allclose(n["tangent_gradients"], 1 / (4 * np.cosh(x / 2) ** 2), rtol=1e-12)  # sigma' closed form


# ------------------------------------------------------------------------------ seeds 000, 001, 003

def test_000_powers(run):
    n = run[1]["000-powers"].numbers
    W = np.array([[0.9, 5.0], [0.0, 0.8]])
    norms = [np.linalg.norm(np.linalg.matrix_power(W, k), 2) for k in range(81)]
    assert n["peak_norm"] == pytest.approx(max(norms), rel=1e-12) and n["peak_k"] == int(np.argmax(norms))
    k = np.arange(81)
    closed = [np.linalg.norm([[0.9**j, 5 * (0.9**j - 0.8**j) / 0.1], [0, 0.8**j]], 2) for j in k]  # triangular power
    np.testing.assert_allclose(n["log10_norms_nonnormal"], np.log10(closed), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(n["log10_norms_normal"], k * np.log10(0.9), atol=1e-12)
    assert n["last_k_norm_above_1"] == max(j for j in k if closed[j] > 1)
    assert n["log10_abs_W_pow_50"]["-1.1"] == pytest.approx(math.log10(abs((-1.1) ** 50)), rel=1e-12)  # grows: W < 1
    assert n["log10_abs_W_pow_50"]["-1.1"] > 0 > n["log10_abs_W_pow_50"]["0.9"]


def test_001_theorem2_terms_by_jacrev(run):
    n = run[1]["001-theorem2"].numbers
    k0, T = n["k0"], n["T"]
    W, U, x = _nonnormal_setup(0.9, n["n"], T)
    assert n["sigma_max"] == pytest.approx(np.linalg.svd(W.numpy(), compute_uv=False)[0], rel=1e-12)
    assert n["rho"] == pytest.approx(np.abs(np.linalg.eigvals(W.numpy())).max(), rel=1e-12)
    assert np.all(np.array(n["log10_F"]) < np.array(n["log10_bound"]))  # Theorem 2 with singular values

    def h_t(Ws, t):  # h_t = W_r tanh(h_{r-1}) + U x_r, with its own copy W_r of W at every step r
        h = torch.zeros(W.shape[0], dtype=W.dtype)
        for r in range(1, t + 1):
            h = Ws[r - 1] @ torch.tanh(h) + U @ x[r - 1]
        return h

    for t in (k0 + 1, k0 + 7, 40):
        Ws = W.expand(t, *W.shape).clone()
        Jall = torch.func.jacrev(h_t)(Ws, t).reshape(W.shape[0], t, -1)  # (n, t, n^2): dh_t/dW_r flattened row-wise
        F = Jall[:, k0 - 1]  # F(k0, t) = dh_t/dW_{k0}  (n, n^2)
        assert 10 ** n["log10_F"][t - k0 - 1] == pytest.approx(float(torch.linalg.matrix_norm(F, 2)), rel=1e-9)
        cell = PalCell(W, U, torch.zeros(W.shape[0], dtype=W.dtype), "tanh")  # the reference's sum over k is Theorem 1
        torch.testing.assert_close(Jall.sum(1), theorem1(cell, x, t), rtol=1e-10, atol=1e-12)


def test_003_derivatives(run):
    n = run[1]["003-derivatives"].numbers
    assert n["max_dsigmoid"] == 0.25 and n["argmax_dsigmoid"] == 0.0 and n["sigmoid_at_argmax"] == 0.5
    assert n["max_dtanh"] == 1.0 and n["argmax_dtanh"] == 0.0
    assert n["max_abs_diff_dsigmoid_closed_form"] < 1e-15 and n["max_abs_diff_dtanh_closed_form"] < 1e-15
    assert n["dsigmoid_at_a_one_half"] == pytest.approx(math.exp(-0.5) / (1 + math.exp(-0.5)) ** 2, rel=1e-14)


def test_003_bound_against_jacrev_products(run):
    n = run[1]["003-bound"].numbers
    t = n["t"]
    W, U, x = _nonnormal_setup(1.5, n["n"], t)
    smax = np.linalg.svd(W.numpy(), compute_uv=False)[0]
    assert n["norm_W"] == pytest.approx(smax, rel=1e-12) == 1.5
    step = lambda h, i: torch.tanh(W @ h + U @ x[i - 1])  # noqa: E731
    hs = [torch.zeros(W.shape[0], dtype=W.dtype)]
    for i in range(1, t + 1):
        hs.append(step(hs[-1], i))
    P, ref = torch.eye(W.shape[0], dtype=W.dtype), [0.0] * t
    for k in range(t, 0, -1):  # ref[k-1] = log10 ||dh_t/dh_k||_2, dh_t/dh_{k-1} = (dh_t/dh_k) J_k
        ref[k - 1] = math.log10(float(torch.linalg.svdvals(P)[0]))
        P = P @ torch.func.jacrev(step)(hs[k - 1], k)
    np.testing.assert_allclose(n["log10_dh_t_dh_k"], ref, atol=1e-9)
    k = np.arange(1, t + 1)
    np.testing.assert_allclose(n["log10_bound"], (t - k) * np.log10(smax), rtol=1e-12)
    assert np.all(np.array(ref) <= np.array(n["log10_bound"]) + 1e-12)


# ------------------------------------------------------------------------------ files and errors

def test_files_captions_and_json(run):
    out, reps, names = run
    assert names == NAMES
    for r in reps.values():
        assert isinstance(r, Reproduction) and r.seed in SEED_FILES.values()
        assert (r.png, r.svg, r.caption_file) == (f"{r.name}.png", f"{r.name}.svg", f"{r.name}.txt")
        img = imread(out / r.png)
        assert img.ndim == 3 and img.shape[0] > 300 and float(img[..., :3].std()) > 0.01  # an image, not blank
        svg = (out / r.svg).read_text(encoding="utf-8")
        assert svg.lstrip().startswith("<?xml") and "</svg>" in svg
        text = (out / r.caption_file).read_text(encoding="utf-8")
        assert r.caption in text and r.title in text and len(r.caption) > 200
        assert text.endswith(f"Source: the seed document {r.seed}\n")  # its file name, no path
        d = json.loads(json.dumps(r.to_dict(), allow_nan=False))
        assert d["name"] == r.name and d["numbers"] == json.loads(json.dumps(r.numbers))


def test_seed_argument_and_out_folder(tmp_path):
    reps = reproduce(SEED_FILES["000"], tmp_path / "new" / "dir")  # a file name works; missing folders are made
    assert [r.name for r in reps] == ["000-powers"] and (tmp_path / "new" / "dir" / "000-powers.png").is_file()
    msg = r"seed: expected one of 000, 001, 002, 003, all \(or a seed file name\), got 'xyz'"
    with pytest.raises(InputError, match=msg):
        reproduce("xyz", tmp_path)
    with pytest.raises(InputError, match="expected"):
        reproduce(2, tmp_path)
    f = tmp_path / "a-file"
    f.write_text("x")
    with pytest.raises(InputError, match="out: expected a folder, got"):
        reproduce("000", f)
