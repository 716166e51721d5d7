"""CellRNN (lab/cell_networks.py): the modern cells as training modules, checked against the core cells.

    forward    = core.unroll.unroll(cell, x).states' h part, float64, to 1e-12, every kind and method
    gradients  = autograd through an explicit loop of the core cell's step, built here from leaf tensors
    as_cell    round trip through arrays; differentiable=True reaches the parameters
    build_model, a short fit + snapshot (and train, once TrainConfig takes the modern kinds)
"""

from __future__ import annotations

import dataclasses
import math
from types import SimpleNamespace

import pytest
import torch

from rnnscope.core.build import cell_from_arrays
from rnnscope.core.errors import InputError
from rnnscope.core.modern_cells import MODERN_CELLS
from rnnscope.core.orthogonal_cells import ExpRNNCell
from rnnscope.core.unroll import unroll
from rnnscope.core.vocab import MODERN_KINDS, TRAIN_CELL_KINDS, CELL_KINDS
from rnnscope.lab.cell_networks import SCAN_KINDS, CellRNN, default_method
from rnnscope.lab.fit import fit
from rnnscope.lab.networks import as_cell, build_model
from rnnscope.lab.snapshot import gradient_snapshot
from rnnscope.lab.tasks import get_task

F64 = torch.float64
D, H, B, T = 3, 6, 4, 9
OPTIONS = {"lru": {"r_min": 0.5, "r_max": 0.95}, "slstm": {"recurrent_init": "standard", "bias_init": "standard"},
           "indrnn": {"activation": "tanh"}}  # non-zero R for sLSTM; a smooth phi for IndRNN (relu' has a kink)


def _rnn(kind: str, **kw) -> CellRNN:
    return CellRNN(kind, D, H, seed=3, dtype=F64, **{**OPTIONS.get(kind, {}), **kw})


def _methods(kind: str) -> list[str]:
    return [m for m in ("loop", *getattr(MODERN_CELLS[kind], "scan_methods", ())) if (kind, m) != ("mamba", "log")]


def _x(seed: int = 0) -> torch.Tensor:
    return torch.randn(B, T, D, generator=torch.Generator().manual_seed(seed), dtype=F64)  # (B, T, D)


@pytest.mark.parametrize("kind", MODERN_KINDS)
def test_forward_equals_unroll_for_every_method(kind):
    rnn = _rnn(kind)
    x = _x()
    s0 = 0.3 * torch.randn(B, rnn.state_size, generator=torch.Generator().manual_seed(1), dtype=F64)
    if kind == "slstm":
        s0[:, 2 * H:3 * H] = s0[:, 2 * H:3 * H].abs() + 0.5  # the normaliser n_{t-1} > 0
    cell = rnn.as_cell()
    for h0 in (None, s0):
        trace = unroll(cell, x.transpose(0, 1), None if h0 is None else h0)  # (T+1, B, S)
        want = trace.states[1:, :, :cell.h_size].transpose(0, 1)  # (B, T, h_size)
        for method in _methods(kind):
            rnn.method = method
            with torch.no_grad():
                out, s_T = rnn(x, None if h0 is None else h0.unsqueeze(0))
            assert out.shape == (B, T, rnn.hidden_size) and s_T.shape == (1, B, rnn.state_size)
            assert torch.allclose(out, want, rtol=0, atol=1e-12), (method, (out - want).abs().max())
            assert torch.allclose(s_T[0], trace.states[-1], rtol=0, atol=1e-12), method


def _reference_grads(rnn: CellRNN, x: torch.Tensor, R: torch.Tensor) -> dict:
    """d/dtheta of sum(R * h_1..h_T) through an explicit loop of the core cell's step, the cell built here from leaf
    copies of rnn's parameters (expRNN: A = P - P^T, W_hh = matrix_exp(A))."""
    ref = rnn.as_cell()
    leaves = {n: p.detach().clone().requires_grad_(True) for n, p in rnn.named_parameters()}
    fields = {f.name: getattr(ref, f.name) for f in dataclasses.fields(ref) if f.init}
    if isinstance(ref, ExpRNNCell):
        A = leaves["P"] - leaves["P"].T
        fields.update(A=A, W_hh=torch.linalg.matrix_exp(A), W_xh=leaves["W_xh"], b_h=leaves["b_h"])
    else:
        fields.update(leaves)
    cell = type(ref)(**fields)
    s, hs = cell.zero_state(x.shape[0]), []
    for t in range(x.shape[1]):
        s = cell.step(x[:, t], s)  # s_t = f(x_t, s_{t-1})   (B, S)
        hs.append(s[:, :cell.h_size])
    loss = (torch.stack(hs, 1) * R).sum()
    return dict(zip(leaves, torch.autograd.grad(loss, list(leaves.values()))))


@pytest.mark.parametrize("kind", MODERN_KINDS)
def test_parameter_gradients_equal_an_explicit_loop(kind):
    rnn = _rnn(kind)
    x = _x(2)
    R = torch.randn(B, T, rnn.hidden_size, generator=torch.Generator().manual_seed(5), dtype=F64)
    want = _reference_grads(rnn, x, R)
    for method in _methods(kind):
        rnn.method = method
        rnn.zero_grad(set_to_none=True)
        out, _ = rnn(x)
        (out * R).sum().backward()
        for name, p in rnn.named_parameters():
            scale = max(1.0, float(want[name].abs().max()))
            assert torch.allclose(p.grad, want[name], rtol=0, atol=1e-11 * scale), (method, name)


def test_default_methods_and_training_through_the_scan():
    assert {k: default_method(k, 64) for k in SCAN_KINDS} == dict.fromkeys(SCAN_KINDS, "associative")
    assert default_method("mamba", 640) == "loop" and default_method("cornn", 8) == "loop"
    assert CellRNN("mamba", 10, 64).method == "loop" and CellRNN("mamba", 2, 64).method == "associative"
    rnn = _rnn("mingru")
    assert rnn.method == "associative"
    out, _ = rnn(_x())
    out.sum().backward()  # autograd through the associative scan
    assert all(torch.isfinite(p.grad).all() for p in rnn.parameters())
    with pytest.raises(InputError, match="method: expected one of loop, log, associative, sequential, got 'scan'"):
        rnn.method = "scan"
    with pytest.raises(InputError, match="method: expected one of loop, got 'log'"):
        _rnn("cornn", method="log")
    with pytest.raises(InputError, match="method: expected one of loop, associative, sequential, got 'log'"):
        _rnn("mamba", method="log")  # NaN gradients (an empty sign part of b_t)


def test_input_errors():
    rnn = _rnn("lru")
    with pytest.raises(InputError, match=r"x: expected shape \(B, T, 3\) with T >= 1, got \(4, 9, 2\)"):
        rnn(torch.zeros(4, 9, 2, dtype=F64))
    with pytest.raises(InputError, match=r"h0: expected shape \(1, 4, 12\) or \(4, 12\), got \(4, 6\)"):
        rnn(_x(), torch.zeros(4, 6, dtype=F64))
    with pytest.raises(InputError, match="cell: expected one of lru, .*, got 'elman'"):
        CellRNN("elman", 2, 4)
    with pytest.raises(InputError, match="options: expected"):
        CellRNN("lru", 2, 4, forget="exp")
    with pytest.raises(InputError, match="dtype: expected a floating-point torch.dtype or None, got 'float64'"):
        rnn.as_cell("float64")


@pytest.mark.parametrize("kind", MODERN_KINDS)
def test_as_cell_round_trip(kind):
    rnn = CellRNN(kind, D, H, seed=1, **OPTIONS.get(kind, {}))  # float32 parameters
    cell = rnn.as_cell()
    assert cell.dtype == torch.float32 and cell.kind == kind and cell.h_size == rnn.hidden_size
    tensors = [getattr(cell, n) for n in cell.array_names() if isinstance(getattr(cell, n), torch.Tensor)]
    assert tensors and not any(t.requires_grad for t in tensors)
    c64 = rnn.as_cell(F64)
    arrays = c64.to_arrays()
    act = getattr(c64, "activation", None)
    opts = {"forget": c64.forget} if kind == "slstm" else {}
    again = (cell_from_arrays(kind, act.name if act else None, arrays, dtype=F64) if not opts
             else MODERN_CELLS[kind].from_arrays(arrays, F64, **opts))
    x = _x(4)
    assert torch.equal(unroll(again, x.transpose(0, 1)).states, unroll(c64, x.transpose(0, 1)).states)
    for n, p in rnn.named_parameters():
        if n != "P":
            assert torch.equal(getattr(c64, n), p.detach().to(F64)), n
    if kind == "exprnn":
        P = rnn.P.detach().to(F64)
        assert torch.equal(c64.A, P - P.T)
        assert torch.allclose(c64.W_hh.T @ c64.W_hh, torch.eye(H, dtype=F64), atol=1e-12)
    # differentiable: a function of the cell's fields reaches the parameters
    dc = rnn.as_cell(F64, differentiable=True)
    names = ("W_hh", *dc.array_names())
    total = sum(getattr(dc, n).sum() for n in names if isinstance(getattr(dc, n, None), torch.Tensor))
    total.backward()
    assert all(p.grad is not None for p in rnn.parameters())
    # the lab's as_cell: the module's own dtype by default, torch modules too
    assert as_cell(rnn).dtype == torch.float32 and as_cell(rnn, dtype=F64).dtype == F64
    assert as_cell(torch.nn.LSTM(2, 3, batch_first=True)).dtype == torch.float32


def _config(cell: str, **kw) -> SimpleNamespace:
    """What build_model reads of a TrainConfig (TrainConfig itself checks cell against its own list)."""
    return SimpleNamespace(**{"cell": cell, "activation": "tanh", "hidden": 8, "init": "default", "seed": 0,
                              "dtype": "float32", **kw})


@pytest.mark.parametrize("kind", MODERN_KINDS)
def test_build_model(kind):
    m = build_model(_config(kind, cell_options=OPTIONS.get(kind, {})), 2, 3)
    assert isinstance(m.rnn, CellRNN) and m.rnn.kind == kind and m.readout.in_features == m.rnn.hidden_size
    out, h = m(torch.zeros(5, 7, 2))
    assert out.shape == (5, 7, 3) and h.shape == (5, 7, m.rnn.hidden_size) and out.dtype == torch.float32
    again = build_model(_config(kind, cell_options=OPTIONS.get(kind, {})), 2, 3)  # seeded: the same weights
    assert all(torch.equal(p, q) for p, q in zip(m.parameters(), again.parameters()))


def test_build_model_options_and_refusals():
    m = build_model(_config("lru", cell_options={"r_min": 0.9, "r_max": 0.99}), 2, 1)
    assert 0.9 <= m.rnn.as_cell().spectral_radius <= 0.99
    assert build_model(_config("indrnn"), 2, 1).rnn.as_cell().activation.name == "relu"  # the paper's, not config's
    with pytest.raises(InputError, match="init: expected 'default' for the lru cell .*, got 'orthogonal'"):
        build_model(_config("lru", init="orthogonal"), 2, 1)
    with pytest.raises(InputError, match="options: expected"):
        build_model(_config("mingru", cell_options={"r_min": 0.5}), 2, 1)
    with pytest.raises(InputError, match="cell_options: expected none for the gru cell, got 'r_min'"):
        build_model(_config("gru", cell_options={"r_min": 0.5}), 2, 1)
    assert type(build_model(_config("gru"), 2, 1).rnn) is torch.nn.GRU  # no cell_options attribute: as before


@pytest.mark.parametrize("kind", MODERN_KINDS)
def test_short_fit_and_snapshot(kind):
    task = get_task("adding-le")
    model = build_model(_config(kind, cell_options=OPTIONS.get(kind, {})), task.input_size, task.output_size)
    gen = torch.Generator().manual_seed(0)
    batches = [task.sample(8, 12, gen) for _ in range(6)]
    hist = fit(model, batches, lambda m, b: task.loss(m(b.x)[0], b), steps=6,
               optimizer=torch.optim.RMSprop(model.parameters(), lr=1e-3), clip_norm=1.0)
    assert hist.status == "finished" and hist.steps == 6 and all(math.isfinite(v) for v in hist.losses)
    snap = gradient_snapshot(model, task.sample(3, 12, gen), task.loss)
    assert snap.profile.shape == (13,) and bool(torch.isfinite(snap.profile).all())


def test_train_runs_a_modern_cell_and_its_options_reach_the_cell():
    from rnnscope.lab.train import TrainConfig, train

    cfg = TrainConfig("adding-le", 10, cell="mingru", hidden=6, steps=10, eval_every=5, eval_size=50,
                      snapshot_size=4, optimizer="rmsprop", lr=1e-3)
    r = train(cfg, progress=False)
    assert r.steps == 10 and len(r.history) == 2
    assert all(math.isfinite(v) for v in r.history[-1]["profile"])
    lru = TrainConfig("adding-le", 10, cell="lru", hidden=6, cell_options={"r_min": 0.9, "r_max": 0.99})
    rnn = build_model(lru, 2, 1).rnn
    lam = torch.exp(-torch.exp(rnn.nu_log.detach().double()))  # |lambda| from the parameters (the paper's formula)
    assert bool(((lam >= 0.9) & (lam <= 0.99)).all())
    for bad, match in ((dict(cell="lru", init="orthogonal"), "init: expected 'default' for lru"),
                       (dict(cell="indrnn", activation="relu"), "activation: expected the default 'tanh'"),
                       (dict(cell="gru", cell_options={"r_min": 0.5}), "cell_options: expected none for gru"),
                       (dict(cell="lru", cell_options=[1]), "cell_options: expected a dict")):
        with pytest.raises(InputError, match=match):
            TrainConfig("adding-le", 10, **bad)


def test_train_cell_kinds():
    assert TRAIN_CELL_KINDS == CELL_KINDS + MODERN_KINDS
