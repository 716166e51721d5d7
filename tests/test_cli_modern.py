"""cli + build: `rnnscope profile --cell KIND` and `lyapunov --cell KIND` for the recurrences after the seeds,
rs.random_cell(kind, ...), --weights of a modern cell, and every bad option: one line, exit code 2.

References are computed here without rnnscope's flow or lyapunov: the cell's step differentiated by
torch.func.jacrev along the unrolled trajectory, the products multiplied out per k and torch.linalg.svdvals;
the LRU's eigenvalues from its parameters nu_log, theta_log by the paper's formula.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

import rnnscope as rs
from rnnscope.app.cli import main
from rnnscope.core.vocab import MODERN_KINDS

F64 = torch.float64
T, B = 25, 2


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def reference_profile(cell, x: torch.Tensor, s0: torch.Tensor | None = None) -> torch.Tensor:
    """log10 ||ds_T/ds_k||_2 (B, T) by jacrev of the step at every step and explicit products."""
    Tn, Bn, _ = x.shape
    s = cell.zero_state(Bn) if s0 is None else s0
    J = []
    for t in range(Tn):
        J.append(torch.stack([torch.func.jacrev(lambda st, b=b, t=t: cell.step(x[t, b:b + 1], st[None])[0])(s[b])
                              for b in range(Bn)]))  # (B, S, S) ds_t/ds_{t-1}
        s = cell.step(x[t], s)
    out = torch.empty(Bn, Tn, dtype=F64)
    P = torch.eye(cell.state_size, dtype=F64).expand(Bn, -1, -1)
    for k in range(Tn, 0, -1):  # P = ds_T/ds_k
        out[:, k - 1] = torch.log10(torch.linalg.svdvals(P)[:, 0])
        P = P @ J[k - 1]
    return out


def inputs(D: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng([seed, 1]).standard_normal((T, B, D))


@pytest.mark.parametrize("kind", MODERN_KINDS)
def test_profile_cli_every_kind_against_jacrev_products(capsys, tmp_path, kind):
    D = 2
    x = inputs(D)
    np.save(tmp_path / "x.npy", x)
    code, out, err = run(capsys, "profile", "--cell", kind, "--hidden", 4, "--input-size", D, "--inputs",
                         tmp_path / "x.npy", "--json")
    assert code == 0, err
    d = json.loads(out)
    cell = rs.random_cell(kind, hidden=4, input_size=D, seed=0)
    ref = reference_profile(cell, torch.as_tensor(x))
    got = torch.tensor([[-math.inf if v is None else v for v in row] for row in d["per_sequence"]["log10_spectral"]],
                       dtype=F64)  # null: a product that is exactly 0 (relu's dead units), log10 = -inf
    assert d["cell"] == kind and d["state_size"] == cell.state_size
    both = torch.isfinite(ref)
    assert torch.equal(torch.isfinite(got), both)
    assert torch.allclose(got[both], ref[both], atol=1e-9, rtol=0), float((got[both] - ref[both]).abs().max())
    assert d["model"]["options"] == {} and d["step_bound"] == rs.weight_facts(cell).step_bound


def test_lru_profile_is_the_closed_form_and_the_options_reach_the_cell(capsys):
    code, out, err = run(capsys, "profile", "--cell", "lru", "--hidden", 8, "--r-min", 0.9, "--r-max", 0.95,
                         "--length", 300, "--input-scale", 1, "--json")
    assert code == 0, err
    d = json.loads(out)
    cell = rs.random_cell("lru", hidden=8, r_min=0.9, r_max=0.95, seed=0)
    lam = torch.exp(-torch.exp(cell.nu_log) + 1j * torch.exp(cell.theta_log))  # the paper's parameterisation
    r = float(lam.abs().max())
    assert 0.9 <= float(lam.abs().min()) and r <= 0.95
    dist = np.arange(299, -1, -1)
    assert np.allclose(d["log10_spectral"], dist * math.log10(r), atol=1e-9, rtol=0)
    assert np.allclose(d["log10_bound"], dist * math.log10(r), atol=1e-12, rtol=0)
    assert d["verdict"] == "vanishing guaranteed" and d["model"]["options"] == {"r_min": 0.9, "r_max": 0.95}


def test_lyapunov_cli_lru_exponents_are_log_abs_lambda_twice(capsys):
    code, out, err = run(capsys, "lyapunov", "--cell", "lru", "--hidden", 3, "--r-min", 0.5, "--r-max", 0.9,
                         "--length", 4000, "--json")
    assert code == 0, err
    d = json.loads(out)
    cell = rs.random_cell("lru", hidden=3, r_min=0.5, r_max=0.9, seed=0)
    ln = (-torch.exp(cell.nu_log)).sort(descending=True).values  # ln |lambda| = -exp(nu)
    got = np.array(d["exponents"]).reshape(3, 2)  # each unit's 2x2 rotation-scaling block: a pair
    # the finite-time estimates converge as 1/n: the frame aligns with the blocks during and after the warm-up,
    # and QR splits a rotating pair unevenly at any finite n (the pair's sum converges first)
    assert np.allclose(got.sum(1), 2 * ln.numpy(), atol=2e-4, rtol=0)
    assert np.allclose(got, ln.numpy()[:, None], atol=1e-3, rtol=0)


def test_cell_option_reaches_mamba_and_slstm(capsys):
    code, out, err = run(capsys, "profile", "--cell", "mamba", "--hidden", 4, "--input-size", 2, "--cell-option",
                         "dt_min=0.01", "--cell-option", "dt-max=0.02", "--input-scale", 1, "--json")
    assert code == 0, err
    cell = rs.random_cell("mamba", hidden=4, input_size=2, dt_min=0.01, dt_max=0.02, seed=0)
    dt = torch.nn.functional.softplus(cell.b_delta)
    assert bool(((dt >= 0.01 - 1e-12) & (dt <= 0.02 + 1e-12)).all())
    assert json.loads(out)["model"]["options"] == {"dt_min": 0.01, "dt_max": 0.02}
    code, out, err = run(capsys, "profile", "--cell", "slstm", "--hidden", 4, "--cell-option", "heads=2", "--json")
    assert code == 0, err
    assert json.loads(out)["model"]["options"] == {"heads": 2}


def test_weights_file_of_a_modern_cell_round_trips(capsys, tmp_path):
    cell = rs.random_cell("mingru", hidden=3, input_size=2, seed=5)
    names = rs.core.build.weight_names("mingru")
    arrays = {n: getattr(cell, n).numpy() for n in names if hasattr(cell, n) and n not in ("W_hy", "b_y")}
    np.savez(tmp_path / "w.npz", **arrays)
    x = inputs(2)
    np.save(tmp_path / "x.npy", x)
    code, out, err = run(capsys, "profile", "--cell", "mingru", "--weights", tmp_path / "w.npz", "--inputs",
                         tmp_path / "x.npy", "--json")
    assert code == 0, err
    ref = reference_profile(cell, torch.as_tensor(x))
    assert np.allclose(json.loads(out)["per_sequence"]["log10_spectral"], ref.numpy(), atol=1e-9, rtol=0)


@pytest.mark.parametrize("argv, expect", [
    (["--cell", "lru", "--gain", "2"], "gain: expected no --gain for the lru cell"),
    (["--cell", "mingru", "--init", "orthogonal"], "init: expected no --init"),
    (["--cell", "lru", "--activation", "relu"], "activation: expected no --activation for the lru cell"),
    (["--cell", "elman", "--r-min", "0.5"], "options: expected none for the elman cell"),
    (["--cell", "lru", "--r-min", "0.9", "--r-max", "0.5"], "expected"),
    (["--cell", "lru", "--r-max", "1.5"], "expected"),
    (["--cell", "lru", "--cell-option", "nonsense"], "cell-option: expected KEY=VALUE"),
    (["--cell", "lru", "--cell-option", "colour=3"], "options: expected"),
    (["--cell", "lru", "--cell-option", "r_min=0.1", "--r-min", "0.2"], "expected each option once"),
    (["--cell", "slstm", "--hidden", "6", "--cell-option", "heads=4"], "expected"),
    (["--cell", "mamba", "--cell-option", "dt_min=-1"], "expected"),
    (["--cell", "cornn", "--cell-option", "dt=0"], "expected"),
    (["--cell", "exprnn", "--cell-option", "skew_init=xavier"], "expected"),
    (["--cell", "lru", "--weights", "w.npz", "--r-min", "0.5"], "expected either --weights"),
    (["--cell", "transformer"], "expected one of"),
])
def test_bad_modern_options_one_line_exit_2(capsys, argv, expect):
    code, out, err = run(capsys, "profile", *argv)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert expect in err, err


def test_random_cell_api_every_kind_and_its_refusals():
    for kind in MODERN_KINDS:
        c = rs.random_cell(kind, hidden=4, input_size=3, seed=2)
        again = rs.random_cell(kind, hidden=4, input_size=3, seed=2)
        assert c.kind == kind and c.input_size == 3
        s = c.step(torch.ones(1, 3, dtype=F64), c.zero_state(1))
        assert torch.equal(s, again.step(torch.ones(1, 3, dtype=F64), again.zero_state(1)))  # seeded
    with pytest.raises(rs.InputError, match="gain: expected none for the lru cell"):
        rs.random_cell("lru", gain=2.0)
    with pytest.raises(rs.InputError, match="activation: expected none for the mamba cell"):
        rs.random_cell("mamba", "tanh")
    with pytest.raises(rs.InputError, match="options: expected none for the gru cell"):
        rs.random_cell("gru", r_min=0.5)
    assert rs.random_cell("indrnn").activation.name == "relu"  # the paper's
    assert rs.random_cell("indrnn", "tanh").activation.name == "tanh"
