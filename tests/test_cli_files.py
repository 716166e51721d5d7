"""cli and core.files: a user file that is not what the option wants (a text file as weights or inputs, an empty or
binary file, a pickle, a zip of other files, an array of Python objects) or weights of degenerate shapes is refused
in one line that says what was expected and what arrived, names the array at fault with its shape, exit code 2, and
never passes on numpy's allow_pickle hint.

References: what each file is and which array was spoiled are known here, where the files are made.
"""

from __future__ import annotations

import io
import pickle
import re
import zipfile

import numpy as np
import pytest
import torch

import rnnscope as rs
from rnnscope.app.cli import main
from rnnscope.core.build import cell_from_arrays, random_cell

TEXT = "W_hh = 1 2 3\nthis is text, not arrays\n"


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _zip_of_text() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("notes.txt", "hello")
    return buf.getvalue()


# (file name, bytes, the words the message must use for what arrived)
NOT_NUMPY = [
    ("text", TEXT.encode(), "a text file (it starts 'W_hh = 1 2 3')"),
    ("empty", b"", "an empty file"),
    ("pickle", pickle.dumps({"W_hh": [[1.0]]}), "a Python pickle"),
    ("png", b"\x89PNG\r\n\x1a\n" + bytes(40), "a PNG image"),
    ("binary", bytes(range(1, 256)), "a file of another format (first bytes 01 02 03 04)"),
]


@pytest.mark.parametrize("name,content,words", NOT_NUMPY, ids=[c[0] for c in NOT_NUMPY])
def test_a_file_that_is_not_numpys_says_what_it_is(tmp_path, name, content, words):
    for suffix, load, expected in ((".npz", lambda p: rs.load_npz(p, "weights"),
                                    "weights: expected a .npz file written by numpy (np.savez), got "),
                                   (".npy", lambda p: rs.load_npy(p, "inputs"),
                                    "inputs: expected a .npy file written by numpy (np.save), got ")):
        p = tmp_path / (name + suffix)
        p.write_bytes(content)
        with pytest.raises(rs.InputError) as e:
            load(p)
        assert str(e.value) == f"{expected}{words} in {str(p)!r}"
        assert "allow_pickle" not in str(e.value) and "pickle.load" not in str(e.value)


def test_arrays_of_objects_and_zips_of_other_files(tmp_path):
    np.savez(tmp_path / "obj.npz", W_hh=np.eye(2), W_xh=np.array([{"a": 1}, None], dtype=object))
    with pytest.raises(rs.InputError, match=r"weights: expected numeric arrays, got an array of Python objects, "
                                            r"'W_xh' \(dtype object"):
        rs.load_npz(tmp_path / "obj.npz")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(rs.InputError, match="inputs: expected a numeric array, got an array of Python objects"):
        rs.load_npy(tmp_path / "obj.npy", "inputs")
    (tmp_path / "notes.npz").write_bytes(_zip_of_text())
    with pytest.raises(rs.InputError, match=r"got a zip archive whose member 'notes.txt' is not a numpy array"):
        rs.load_npz(tmp_path / "notes.npz")
    np.savez(tmp_path / "w.npz", W_hh=np.eye(2))
    with pytest.raises(rs.InputError, match=r"inputs: expected a single \.npy array \(np\.save\), got a zip archive"):
        rs.load_npy(tmp_path / "w.npz", "inputs")
    np.save(tmp_path / "x.npy", np.zeros((3, 1)))
    with pytest.raises(rs.InputError, match=r"weights: expected an \.npz archive of named arrays, got a single \.npy"):
        rs.load_npz(tmp_path / "x.npy", "weights")


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "w.npz", W_hh=0.3 * rng.standard_normal((4, 4)), W_xh=rng.standard_normal((4, 1)),
             b_h=np.zeros(4))
    np.save(tmp_path / "x.npy", rng.standard_normal((5, 2, 1)))
    np.save(tmp_path / "y.npy", rng.standard_normal((5, 2, 4)))
    for name in ("text.npz", "text.npy"):
        (tmp_path / name).write_text(TEXT)
    return tmp_path


@pytest.mark.parametrize("argv,what,kind", [
    (["profile", "--weights", "text.npz"], "weights", ".npz"),
    (["profile", "--weights", "text.npy"], "weights", ".npz"),
    (["profile", "--weights", "w.npz", "--inputs", "text.npy"], "inputs", ".npy"),
    (["profile", "--weights", "w.npz", "--inputs", "x.npy", "--h0", "text.npy"], "h0", ".npy"),
    (["lyapunov", "--weights", "text.npz"], "weights", ".npz"),
    (["bptt", "--weights", "text.npz", "--inputs", "x.npy", "--targets", "y.npy"], "weights", ".npz"),
    (["bptt", "--weights", "w.npz", "--inputs", "x.npy", "--targets", "text.npy"], "targets", ".npy"),
])
def test_cli_text_files_are_named_as_text(folder, capsys, monkeypatch, argv, what, kind):
    monkeypatch.chdir(folder)
    code, out, err = run(capsys, *argv)
    writer = "np.savez" if kind == ".npz" else "np.save"
    assert code == 2 and out == "" and err.count("\n") == 1, err
    assert f"{what}: expected a {kind} file written by numpy ({writer}), got a text file (it starts 'W_hh = 1 2 3')" \
        in err, err
    assert "allow_pickle" not in err


def _arrays(kind: str) -> dict[str, np.ndarray]:
    """A valid weights file's arrays for kind (hidden 4, input 2): the cell's own tensors under the file's names."""
    c = random_cell(kind, "tanh" if kind in ("elman", "pal") else None, hidden=4, input_size=2, seed=0)
    if kind in ("elman", "pal"):
        t = {"W_hh": c.W_hh, "W_xh": c.W_xh, "b_h": c.b_h}
    elif kind in ("lstm", "gru"):
        t = {"W_hh": c.W_hh, "W_xh": c.W_xh, "b_h": c.b_xh, "b_hh": c.b_hh}
    else:
        t = {n: getattr(c, n) for n in type(c).array_names()}
    return {k: v.detach().numpy() if isinstance(v, torch.Tensor) else np.asarray(v) for k, v in t.items()}


# (cell, the array spoiled, its new shape): each a degenerate shape of that array alone
DEGENERATE = [("elman", "W_hh", (0, 0)), ("elman", "W_hh", (0, 5)), ("elman", "W_hh", (3, 4)),
              ("elman", "W_hh", (4, 4, 2)), ("elman", "W_xh", (4, 0)), ("elman", "W_xh", (3, 2)),
              ("elman", "b_h", (0,)), ("pal", "W_hh", (0, 0)), ("lstm", "W_hh", (0, 0)), ("lstm", "W_hh", (16, 0)),
              ("lstm", "W_xh", (16, 0)), ("gru", "W_hh", (0, 4)), ("gru", "b_hh", (12, 1)),
              ("lru", "nu_log", (0,)), ("lru", "B_re", (4, 0)), ("mingru", "W_z", (0, 0)), ("mingru", "b_h", (0,)),
              ("minlstm", "W_f", (0, 2)), ("mamba", "A_log", (0, 0)), ("mamba", "W_B", (4, 2, 1)),
              ("indrnn", "u", (0,)), ("indrnn", "W_xh", (4, 0)), ("cornn", "W", (0, 0)), ("cornn", "V", (4, 0)),
              ("slstm", "W", (16, 0)), ("exprnn", "A", (0, 0)), ("exprnn", "W_xh", (4, 0))]


@pytest.mark.parametrize("kind,name,shape", DEGENERATE, ids=[f"{k}-{n}-{s}" for k, n, s in DEGENERATE])
def test_a_degenerate_array_is_named_with_its_shape(kind, name, shape):
    arrays = {**_arrays(kind), name: np.zeros(shape)}
    with pytest.raises(rs.InputError) as e:
        cell_from_arrays(kind, None if kind not in ("elman", "pal") else "tanh", arrays)
    msg = str(e.value)
    subject = re.match(r"(?:weights: expected )?(\w+)", msg).group(1)  # the array the message is about
    assert subject == name and str(shape) in msg, msg


@pytest.mark.parametrize("kind,big,small", [("elman", "W_hh", "W_xh"), ("lru", "nu_log", "theta_log"),
                                            ("mingru", "W_z", "b_z"), ("cornn", "W", "W_z"), ("indrnn", "u", "W_xh")])
def test_arrays_that_disagree_are_both_named(kind, big, small):
    """The array that sets a size has 5 units, the next 4: the message names the one it checks and where the size
    it expected came from."""
    arrays = _arrays(kind)
    arrays[big] = np.zeros((5,) * arrays[big].ndim)
    with pytest.raises(rs.InputError) as e:
        cell_from_arrays(kind, "tanh" if kind == "elman" else None, arrays)
    msg = str(e.value)
    assert small in msg and f"5 from {big}" in msg, msg


def test_cli_a_0x0_w_hh_is_reported_as_w_hh(folder, capsys, monkeypatch):
    """The issue's case: W_hh (0, 0) beside a good W_xh (4, 1) and b_h (4,)."""
    monkeypatch.chdir(folder)
    w = dict(np.load("w.npz"))
    np.savez("zero.npz", **{**w, "W_hh": np.zeros((0, 0))})
    for command in ("profile", "lyapunov"):
        code, out, err = run(capsys, command, "--weights", "zero.npz")
        assert code == 2 and out == "" and err.count("\n") == 1
        assert "weights: expected W_hh of shape (S, S) with S >= 1, got (0, 0)" in err and "W_xh" not in err, err
    np.savez("both0.npz", W_hh=np.zeros((0, 0)), W_xh=np.zeros((0, 1)), b_h=np.zeros(0))  # nothing to divide by
    code, out, err = run(capsys, "profile", "--weights", "both0.npz")
    assert code == 2 and "W_hh" in err and "(0, 0)" in err and "unexpected" not in err, err
    assert torch.get_default_dtype() == torch.float32  # nothing above changed torch's global state


def test_bptt_float_targets_for_ce_name_the_files_dtype(folder, capsys, monkeypatch):
    monkeypatch.chdir(folder)
    np.save("c16.npy", np.full((5, 2), 0.5, dtype=np.float16))  # not class indices, in float16
    code, out, err = run(capsys, "bptt", "--weights", "w.npz", "--inputs", "x.npy", "--targets", "c16.npy",
                         "--head", "ce")
    stored = np.load("c16.npy").dtype.name
    assert code == 2 and err.rstrip().endswith(f"non-integer values (dtype {stored})"), err
