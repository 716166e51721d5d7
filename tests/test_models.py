"""models.py and files.py: initialisations checked by their defining properties, loading checked by errors."""

import numpy as np
import pytest
import torch

import rnnscope as rs

F64 = torch.float64


def test_orthogonal_and_identity_inits():
    gen = torch.Generator().manual_seed(0)
    Q = rs.recurrent_matrix(16, 1.3, "orthogonal", gen)
    assert torch.allclose(Q.T @ Q, 1.3**2 * torch.eye(16, dtype=F64), atol=1e-12)
    assert torch.equal(rs.recurrent_matrix(5, 0.7, "identity", gen), 0.7 * torch.eye(5, dtype=F64))


def test_normal_init_variance_statistically():
    # entries N(0, g^2/S): the sample variance of S^2 = 160,000 entries has relative sd sqrt(2/S^2) ~ 0.35%
    S, g = 400, 1.5
    W = rs.recurrent_matrix(S, g, "normal", torch.Generator().manual_seed(1))
    var = float(W.var())
    assert abs(var / (g * g / S) - 1) < 5 * (2 / S**2) ** 0.5
    assert abs(float(W.mean())) < 5 * (g / S**0.5) / S  # 5 standard errors of the mean


def test_random_cell_is_seeded_and_shaped():
    a = rs.random_cell("gru", hidden=4, input_size=2, seed=9)
    b = rs.random_cell("gru", hidden=4, input_size=2, seed=9)
    assert torch.equal(a.W_hh, b.W_hh) and a.W_hh.shape == (12, 4) and a.state_size == 4
    lstm = rs.random_cell("lstm", hidden=4, input_size=2, seed=9, dtype=torch.float32)
    assert lstm.state_size == 8 and lstm.W_hh.dtype == torch.float32


@pytest.mark.parametrize("bad", [
    dict(kind="rnn"), dict(activation="softplus"), dict(hidden=0), dict(init="xavier"), dict(gain=float("nan")),
])
def test_random_cell_rejects_bad_arguments(bad):
    args = dict(kind="elman", activation="tanh", hidden=4, init="normal", gain=1.0) | bad
    kind = args.pop("kind")
    act = args.pop("activation")
    with pytest.raises(rs.InputError, match="expected"):
        rs.random_cell(kind, act, **args)


def test_cell_from_arrays_round_trip_and_errors():
    rng = np.random.default_rng(0)
    arrays = {"W_hh": rng.normal(size=(3, 3)), "W_xh": rng.normal(size=(3, 2)), "b_h": rng.normal(size=3)}
    cell = rs.cell_from_arrays("pal", "sigmoid", arrays)
    assert np.array_equal(cell.W_hh.numpy(), arrays["W_hh"])
    with pytest.raises(rs.InputError, match="W_xh"):
        rs.cell_from_arrays("elman", "tanh", arrays | {"W_xh": rng.normal(size=(4, 2))})
    with pytest.raises(rs.InputError, match="b_h"):
        rs.cell_from_arrays("elman", "tanh", {k: v for k, v in arrays.items() if k != "b_h"})
    with pytest.raises(rs.InputError, match="4\\*H"):
        rs.cell_from_arrays("lstm", "tanh", arrays)
    lstm_arrays = {"W_hh": rng.normal(size=(8, 2)), "W_xh": rng.normal(size=(8, 3)), "b_h": rng.normal(size=8)}
    lstm = rs.cell_from_arrays("lstm", "tanh", lstm_arrays)
    assert lstm.hidden_size == 2 and torch.equal(lstm.b_hh, torch.zeros(8, dtype=F64))


def test_head_from_arrays():
    head = rs.head_from_arrays({}, 3)
    assert torch.equal(head.W_hy, torch.eye(3, dtype=F64))
    head = rs.head_from_arrays({"W_hy": np.ones((2, 3))}, 3, "ce")
    assert torch.equal(head.b_y, torch.zeros(2, dtype=F64)) and head.kind == "ce"
    with pytest.raises(rs.InputError, match="W_hy"):
        rs.head_from_arrays({"W_hy": np.ones((2, 4))}, 3)
    with pytest.raises(rs.InputError, match="b_y alone"):
        rs.head_from_arrays({"b_y": np.ones(2)}, 3)


def test_file_loading_errors(tmp_path):
    with pytest.raises(rs.InputError, match="no such file"):
        rs.load_npz(tmp_path / "missing.npz")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip archive at all")
    with pytest.raises(rs.InputError, match="readable"):
        rs.load_npz(junk)
    nan = tmp_path / "nan.npz"
    np.savez(nan, W_hh=np.array([[np.nan]]))
    with pytest.raises(rs.InputError, match="finite"):
        rs.load_npz(nan)
    obj = tmp_path / "obj.npy"
    np.save(obj, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(rs.InputError, match="readable"):
        rs.load_npy(obj, "inputs")
    good = tmp_path / "x.npy"
    np.save(good, np.arange(6.0).reshape(3, 2))
    assert np.array_equal(rs.load_npy(good, "inputs"), np.arange(6.0).reshape(3, 2))
    with pytest.raises(rs.InputError, match="directory"):
        rs.load_npy(tmp_path, "inputs")
