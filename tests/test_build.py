"""core.build and core.files: initialisations checked by their defining properties, loading checked by errors."""

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
    with pytest.raises(rs.InputError, match=r"expected a \.npz file written by numpy \(np\.savez\), got a text file "
                                            r"\(it starts 'not a zip archive at all'\)") as e:
        rs.load_npz(junk)
    assert "allow_pickle" not in str(e.value)
    nan = tmp_path / "nan.npz"
    np.savez(nan, W_hh=np.array([[np.nan]]))
    with pytest.raises(rs.InputError, match="finite"):
        rs.load_npz(nan)
    obj = tmp_path / "obj.npy"
    np.save(obj, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(rs.InputError, match="inputs: expected a numeric array, got an array of Python objects") as e:
        rs.load_npy(obj, "inputs")
    assert "allow_pickle" not in str(e.value)
    good = tmp_path / "x.npy"
    np.save(good, np.arange(6.0).reshape(3, 2))
    assert np.array_equal(rs.load_npy(good, "inputs"), np.arange(6.0).reshape(3, 2))
    with pytest.raises(rs.InputError, match="directory"):
        rs.load_npy(tmp_path, "inputs")


# ------------------------------------------------------------------------- assemble_model (the CLI's model options)

def test_assemble_model_random_matches_random_cell_and_seeded_inputs():
    from rnnscope.core.build import assemble_model
    m = assemble_model("gru", hidden=5, input_size=2, length=7, batch=3, gain=0.8, init="orthogonal", seed=4,
                       input_scale=0.5)
    ref = rs.random_cell("gru", hidden=5, input_size=2, gain=0.8, init="orthogonal", seed=4)
    assert torch.equal(m.cell.W_hh, ref.W_hh) and torch.equal(m.cell.W_xh, ref.W_xh)
    # inputs: 0.5 N(0, 1) from numpy's generator seeded [seed, 1], apart from the weights' torch generator
    assert np.array_equal(m.x, 0.5 * np.random.default_rng([4, 1]).standard_normal((7, 3, 2)))
    assert (m.T, m.s0, m.inputs) == (7, None, "random N(0, 0.5^2), seed 4")
    assert m.model == {"source": "random", "hidden": 5, "input_size": 2, "gain": 0.8, "init": "orthogonal", "seed": 4,
                       "dtype": "float64"}
    z = assemble_model(hidden=3, length=4, dtype="float32")
    assert np.array_equal(z.x, np.zeros((4, 1, 1))) and z.inputs == "zeros" and z.cell.W_hh.dtype == torch.float32


def test_assemble_model_from_files(tmp_path):
    from rnnscope.core.build import assemble_model
    rng = np.random.default_rng(0)
    arrays = {"W_hh": rng.standard_normal((4, 4)), "W_xh": rng.standard_normal((4, 2)), "b_h": np.zeros(4)}
    np.savez(tmp_path / "w.npz", **arrays)
    x = rng.standard_normal((6, 2)).astype(np.float16)  # any float type: read as float64
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "h0.npy", np.ones(4, dtype=np.int32))
    m = assemble_model("pal", "relu", weights=tmp_path / "w.npz", inputs=tmp_path / "x.npy", h0=tmp_path / "h0.npy")
    assert np.array_equal(m.cell.W_hh.numpy(), arrays["W_hh"]) and type(m.cell).__name__ == "PalCell"
    assert m.x.dtype == np.float64 and np.array_equal(m.x, x.astype(np.float64)) and m.T == 6
    assert m.s0.dtype == np.float64 and np.array_equal(m.s0, np.ones(4))
    assert m.model == {"source": "weights", "weights": str(tmp_path / "w.npz"), "dtype": "float64"}
    assert m.inputs == f"file {tmp_path / 'x.npy'}"
    np.save(tmp_path / "x3.npy", np.zeros((6, 3)))
    with pytest.raises(rs.InputError, match="input size D = 2"):
        assemble_model(weights=tmp_path / "w.npz", inputs=tmp_path / "x3.npy")


@pytest.mark.parametrize("kwargs,match", [
    (dict(cell="lstm", given={"activation"}), "expected no --activation for the gated cell lstm"),
    (dict(weights="W", given={"hidden", "gain"}), "expected either --weights or the random model's --hidden, --gain"),
    (dict(inputs="X", given={"length", "input_scale"}), "expected either --inputs or --length, --input-scale, got both"),
    (dict(hidden=10**4, length=10**4), "size: expected a problem that fits in 4 GiB"),
])
def test_assemble_model_refusals(tmp_path, kwargs, match):
    from rnnscope.core.build import assemble_model
    np.savez(tmp_path / "W.npz", W_hh=np.eye(2), W_xh=np.ones((2, 1)), b_h=np.zeros(2))
    np.save(tmp_path / "X.npy", np.zeros((3, 1)))
    for k in ("weights", "inputs"):
        if k in kwargs:
            kwargs[k] = tmp_path / f"{kwargs[k]}.{'npz' if k == 'weights' else 'npy'}"
    with pytest.raises(rs.InputError, match=match):
        assemble_model(**kwargs)


def test_weight_names_one_allow_list(tmp_path):
    from rnnscope.core.build import assemble_model, check_weight_names, weight_names
    assert weight_names("elman") == weight_names("pal") == ("W_hh", "W_xh", "b_h", "W_hy", "b_y")
    assert set(weight_names("lstm")) == set(weight_names("gru")) == set(weight_names("elman")) | {"b_hh"}
    check_weight_names("gru", dict.fromkeys(weight_names("gru")))
    with pytest.raises(rs.InputError, match=r"expected only arrays named W_hh, W_xh, b_h, W_hy, b_y, got also 'b_hh', 'z'"):
        check_weight_names("elman", {"W_hh": 0, "b_hh": 0, "z": 0})
    np.savez(tmp_path / "w.npz", W_hh=np.eye(2), W_xh=np.ones((2, 1)), b_h=np.zeros(2), junk=np.zeros(1))
    with pytest.raises(rs.InputError, match="got also 'junk'"):
        assemble_model(weights=tmp_path / "w.npz")


def test_as_float64_and_as_targets():
    from rnnscope.core.build import as_float64, as_targets
    big = np.array([1e300], dtype=np.longdouble) * np.longdouble(1e300)  # beyond float64: becomes inf
    assert as_float64(big)[0] == np.inf or np.finfo(np.longdouble).max == np.finfo(np.float64).max
    assert as_float64(np.array([True, False])).tolist() == [1.0, 0.0]
    t = as_targets(np.array([0, 2, 255], dtype=np.uint8))
    assert t.dtype == np.int64 and t.tolist() == [0, 2, 255]
    for dt in (np.float16, np.float32, np.float64):  # kept: a message names the file's own dtype
        assert as_targets(np.array([0.5], dtype=dt)).dtype == dt
    assert as_targets(np.array([0.5], dtype=np.longdouble)).dtype == np.float64  # torch holds no longdouble
    assert as_targets(np.array([True])).dtype == np.bool_  # kept, so the heads refuse it by its type


def test_load_inputs_shapes(tmp_path):
    from rnnscope.core.build import load_inputs
    np.save(tmp_path / "x.npy", np.arange(6, dtype=np.int16).reshape(3, 1, 2))
    x = load_inputs(tmp_path / "x.npy", 2)
    assert x.dtype == np.float64 and np.array_equal(x, np.arange(6.0).reshape(3, 1, 2))
    for shape, D, match in (((4,), 1, r"expected shape \(T, D\) or \(T, B, D\), got \(4,\)"),
                            ((0, 2), 2, "at least one step"), ((3, 0, 2), 2, "at least one step"),
                            ((3, 5), 2, "expected input size D = 2 .* got D = 5")):
        np.save(tmp_path / "bad.npy", np.zeros(shape))
        with pytest.raises(rs.InputError, match=match):
            load_inputs(tmp_path / "bad.npy", D)
    np.save(tmp_path / "empty.npy", np.zeros((0, 2)))
    assert load_inputs(tmp_path / "empty.npy", 2, nonempty=False).shape == (0, 2)
