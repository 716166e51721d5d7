"""The hostile-input suite's working folder: good files to combine with bad ones, and every kind of bad file a user
hands a command by mistake (tests/test_hostile_inputs.py, tests/test_cli_fuzz.py).

make_files(folder) writes them; snapshot(folder) is {relative path: sha256 of the bytes, or "dir"} of everything in
it, so that a test sees any file a failed command wrote, changed or removed.

Shapes: inputs (T, B, D) = (20, 2, 1); the elman weights have S = 8, D = 1.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

__all__ = ["make_files", "snapshot", "S", "T", "B", "D"]

S, T, B, D = 8, 20, 2, 1


def _elman(rng: np.random.Generator, S: int = S, D: int = D) -> dict:
    return {"W_hh": rng.normal(0, 1 / np.sqrt(S), (S, S)), "W_xh": rng.normal(0, 1, (S, D)), "b_h": np.zeros(S)}


def make_files(folder: Path) -> Path:
    """Every file the cases name, in folder (returned)."""
    import torch

    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    good = _elman(rng)
    np.savez(folder / "w.npz", **good)
    x = rng.normal(size=(T, B, D))
    np.save(folder / "x.npy", x)
    np.save(folder / "y.npy", rng.normal(size=(T, B, S)))  # the mse head without W_hy: o_t = h_t
    np.save(folder / "h0.npy", np.zeros(S))
    np.save(folder / "yclass.npy", rng.integers(0, 3, size=(T, B)))

    np.savez(folder / "nan.npz", **{**good, "W_hh": np.full((S, S), np.nan)})
    np.savez(folder / "inf.npz", **{**good, "b_h": np.full(S, np.inf)})
    np.save(folder / "inf.npy", np.where(np.arange(T * B * D).reshape(T, B, D) == 7, np.inf, x))
    np.save(folder / "nan_y.npy", np.full((T, B, 1), np.nan))
    np.savez(folder / "shape3x4.npz", W_hh=np.zeros((3, 4)), W_xh=np.zeros((3, 1)), b_h=np.zeros(3))
    np.savez(folder / "zero.npz", W_hh=np.zeros((0, 0)), W_xh=np.zeros((0, 1)), b_h=np.zeros(0))
    np.savez(folder / "nowhh.npz", W_xh=good["W_xh"], b_h=good["b_h"])
    np.savez(folder / "wD3.npz", **_elman(rng, D=3))
    np.savez(folder / "strings.npz", W_hh=np.array(["a", "b"]), W_xh=good["W_xh"], b_h=good["b_h"])
    np.save(folder / "x2d.npy", x[:, 0, :])  # (T, D): accepted; kept for the good cases
    np.save(folder / "x4d.npy", np.zeros((2, 2, 2, 2)))
    np.save(folder / "xD3.npy", np.zeros((T, B, 3)))
    np.save(folder / "x0.npy", np.zeros((0, B, D)))
    np.save(folder / "xint.npy", rng.integers(0, 50, size=(B, T)))
    np.save(folder / "xobj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.save(folder / "xstr.npy", np.array(["a", "b"]))
    np.save(folder / "ywrong.npy", np.zeros((T + 3, B, 1)))
    np.save(folder / "y32.npy", rng.normal(size=(T, B, 1)).astype(np.float32)[:5])
    np.save(folder / "h0bad.npy", np.zeros(S + 1))

    for name in ("text.npz", "text.npy", "text.pt", "text.toml.npz"):
        (folder / name).write_text("W_hh = 1 2 3\nthis is text, not arrays\n")
    for name in ("empty.npz", "empty.npy", "empty.pt", "empty.toml"):
        (folder / name).write_bytes(b"")
    (folder / "trunc.npz").write_bytes((folder / "w.npz").read_bytes()[:200])
    (folder / "trunc.npy").write_bytes((folder / "x.npy").read_bytes()[:100])
    for name in ("dir.npz", "dir.npy", "dir.pt", "dir.toml", "dir.sqlite", "dir.py"):
        (folder / name).mkdir(exist_ok=True)
    (folder / "w.csv").write_text("1,2\n3,4\n")
    (folder / "keep.png").write_bytes(b"an existing figure: must survive a failed command")
    (folder / "keep.npz").write_bytes(b"an existing sample file: must survive a failed command")
    (folder / "keep.json").write_text('{"existing": true}\n')
    (folder / "notdb.sqlite").write_text("this is not an SQLite file\n")
    (folder / "a_file").write_text("a file where a folder is expected\n")

    lstm = torch.nn.LSTM(1, 8)
    torch.save(lstm.state_dict(), folder / "lstm.pt")
    two = torch.nn.ModuleDict({"a": torch.nn.GRU(1, 4), "b": torch.nn.GRU(1, 4)})
    torch.save(two.state_dict(), folder / "two.pt")
    torch.save({"weights": [1, 2, 3]}, folder / "nolayers.pt")
    (folder / "setup_bad_return.py").write_text("def setup():\n    return 3\n")
    (folder / "setup_raises.py").write_text("def setup():\n    raise ValueError('the user code failed')\n")
    (folder / "setup_syntax.py").write_text("def setup(:\n")
    (folder / "setup_missing_key.py").write_text(
        "import torch\ndef setup():\n    return {'model': torch.nn.GRU(1, 4)}\n")

    specs = {
        "good.toml": 'name = "g"\ntask = "phase-point"\n[fixed]\nsigma_w = 1.0\nsigma_b = 0.0\nhidden = 8\nlength = 40\n',
        "bad.toml": 'name = "b"\ntask = "phase-point"\n[grid\nsigma_w = [1.0\n',
        "missing.toml": 'name = "m"\ntask = "phase-point"\n',
        "huge.toml": 'name = "h"\ntask = "phase-point"\n[grid]\nsigma_w = "0.5:3:1000000"\nsigma_b = "0:1:10"\n',
        "unknown_task.toml": 'name = "u"\ntask = "no-such-task"\n[fixed]\nx = 1\n',
        "noname.toml": 'task = "phase-point"\n[fixed]\nsigma_w = 1.0\n',
        "empty_grid.toml": 'name = "e"\ntask = "phase-point"\n[grid]\nsigma_w = []\n[fixed]\nsigma_b = 0.0\n'
                           'hidden = 8\nlength = 40\n',
        "badvalue.toml": 'name = "v"\ntask = "phase-point"\n[fixed]\nsigma_w = "abc"\nsigma_b = 0.0\nhidden = 8\n'
                         'length = 40\n',
        "hugehidden.toml": 'name = "hh"\ntask = "phase-point"\n[fixed]\nsigma_w = 1.0\nsigma_b = 0.0\n'
                           'hidden = 200000\nlength = 40\n',
        "study_bad.toml": 'name = "s"\ntask = "train"\n[grid]\nsteps = [-1]\n',
        "binary.toml": None,
    }
    for name, text in specs.items():
        if text is None:
            (folder / name).write_bytes(bytes(range(256)))
        else:
            (folder / name).write_text(text)
    (folder / "spec.json").write_text('{"name": "j", "task": "phase-point"}\n')
    return folder


def snapshot(folder: Path) -> dict:
    """{relative path: sha256 hex of the bytes, or 'dir'} of everything under folder."""
    out = {}
    for p in sorted(folder.rglob("*")):
        rel = str(p.relative_to(folder))
        out[rel] = "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out
