"""rnnscope.lab.train: models against rnnscope's cells, the gradient-flow snapshot against step-by-step autograd,
fit against a bare loop, and train's outcomes (solved, diverged), determinism, TensorBoard and the store.

Tasks here are tiny ones of the test's own, following rnnscope.lab.tasks' interface, so the runs take
fractions of a second."""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rnnscope.core.errors import InputError
from rnnscope.runs.store import Store
from rnnscope.runs.sweep import config_key
from rnnscope.lab.train import (ElmanRNN, PalRNN, TrainConfig, build_model, cell_from_module, fit, gradient_snapshot,
                            make_optimizer, run_config, train)
from rnnscope.core.unroll import unroll

f64 = torch.float64


@dataclass(frozen=True)
class ToyBatch:
    x: torch.Tensor  # (B, T, D)
    y: torch.Tensor  # (B, T, O) float | (B, T) int64
    mask: torch.Tensor  # (B, T) bool


class Echo:
    """Classification: the class at step t is the one-hot symbol input at step t - lag; the loss at the
    last step (or at every step from lag on)."""

    kind = "classification"

    def __init__(self, name="echo", symbols=2, lag=0, every_step=False):
        self.name, self.symbols, self.lag, self.every_step = name, symbols, lag, every_step
        self.input_size = self.output_size = symbols
        self.min_length = lag + 1

    def sample(self, n, length, gen):
        sym = torch.randint(0, self.symbols, (n, length), generator=gen)
        y = torch.zeros(n, length, dtype=torch.int64)
        y[:, self.lag:] = sym[:, :length - self.lag]
        mask = torch.zeros(n, length, dtype=torch.bool)
        if self.every_step:
            mask[:, self.lag:] = True
        else:
            mask[:, -1] = True
        return ToyBatch(F.one_hot(sym, self.symbols).float(), y, mask)

    def loss(self, out, batch):
        return F.cross_entropy(out[batch.mask], batch.y[batch.mask])

    def wrong(self, out, batch):
        return ((out.argmax(-1) != batch.y) & batch.mask).any(dim=1)

    def baseline_loss(self, length):
        return math.log(self.symbols)


class Delay:
    """Regression: y_t = x_{t - lag} (x ~ N(0, 1)), MSE at the last step or at every step."""

    kind = "regression"
    input_size = output_size = 1

    def __init__(self, name="delay", lag=1, every_step=True):
        self.name, self.lag, self.every_step = name, lag, every_step
        self.min_length = lag + 1

    def sample(self, n, length, gen):
        x = torch.randn(n, length, 1, generator=gen)
        y = torch.zeros(n, length, 1)
        y[:, self.lag:] = x[:, :length - self.lag]
        mask = torch.zeros(n, length, dtype=torch.bool)
        if self.every_step:
            mask[:, self.lag:] = True
        else:
            mask[:, -1] = True
        return ToyBatch(x, y, mask)

    def loss(self, out, batch):
        return ((out[batch.mask] - batch.y.to(out.dtype)[batch.mask]) ** 2).mean()

    def wrong(self, out, batch):
        return ((((out - batch.y.to(out.dtype)) ** 2).sum(-1) > 0.04) & batch.mask).any(dim=1)

    def baseline_loss(self, length):
        return 1.0


def _cfg(**kw) -> TrainConfig:
    base = dict(task="echo", length=6, hidden=8, steps=40, eval_every=10, eval_size=64, snapshot_size=16, seed=0)
    base.update(kw)
    return TrainConfig(**base)


def _strip(history):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in history]


# ------------------------------------------------------------------------------------- models and cells

@pytest.mark.parametrize("cell,act", [("elman", "tanh"), ("elman", "relu"), ("elman", "sigmoid"), ("pal", "tanh"),
                                      ("pal", "sigmoid"), ("lstm", "tanh"), ("gru", "tanh")])
def test_model_outputs_equal_the_cells_unroll_in_float32(cell, act):
    cfg = _cfg(cell=cell, activation=act, hidden=16)
    model = build_model(cfg, 3, 2)
    x = torch.randn(5, 30, 3, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out, h = model(x)
        c = cell_from_module(model.rnn, dtype=torch.float32)
        states = unroll(c, x.transpose(0, 1)).states[1:, :, :16].transpose(0, 1)  # (B, T, H) h_1..h_T
        assert float((states - h).abs().max()) < 1e-5
        assert float((out - model.readout(states)).abs().max()) < 1e-5
    assert {"elman": "ElmanCell", "pal": "PalCell", "lstm": "LSTMCell", "gru": "GRUCell"}[cell] == type(c).__name__


def test_models_are_fused_where_torch_has_them():
    assert type(build_model(_cfg(cell="elman", activation="tanh"), 2, 2).rnn) is nn.RNN
    assert type(build_model(_cfg(cell="elman", activation="sigmoid"), 2, 2).rnn) is ElmanRNN
    assert type(build_model(_cfg(cell="pal"), 2, 2).rnn) is PalRNN
    assert type(build_model(_cfg(cell="lstm"), 2, 2).rnn) is nn.LSTM
    assert build_model(_cfg(dtype="float64"), 2, 2).rnn.weight_hh_l0.dtype == f64


def test_build_model_applies_the_init():
    m = build_model(_cfg(init="identity", activation="relu", hidden=7), 2, 2)
    assert torch.equal(m.rnn.weight_hh_l0.detach(), torch.eye(7))
    m = build_model(_cfg(init="smart-tanh", hidden=30, dtype="float64"), 2, 2)
    assert ((m.rnn.weight_hh_l0 != 0).sum(1) == 15).all()


# -------------------------------------------------------------------------------------------- snapshots

def _reference_log10(model, batch, loss_fn):
    """log10 ||dL/dh_k||, k = 0..T, per sequence, by a step-by-step loop over nn.RNNCell / LSTMCell / GRUCell
    with the module's weights and retain_grad on every h_k (float64)."""
    rnn = model.rnn
    D, H = rnn.input_size, rnn.hidden_size
    kind = type(rnn)
    cell = {nn.RNN: lambda: nn.RNNCell(D, H, nonlinearity=rnn.nonlinearity, dtype=f64),
            nn.LSTM: lambda: nn.LSTMCell(D, H, dtype=f64), nn.GRU: lambda: nn.GRUCell(D, H, dtype=f64)}[kind]()
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(cell, name).copy_(getattr(rnn, f"{name}_l0"))
    x = batch.x.to(f64)
    B, T, _ = x.shape
    h = torch.zeros(B, H, dtype=f64, requires_grad=True)
    c = torch.zeros(B, H, dtype=f64, requires_grad=True)
    hs = [h]
    for t in range(T):
        if kind is nn.LSTM:
            h, c = cell(x[:, t], (h, c))
        else:
            h = cell(x[:, t], h)
        h.retain_grad()
        hs.append(h)
    out = F.linear(torch.stack(hs[1:], 1), model.readout.weight.detach().to(f64), model.readout.bias.detach().to(f64))
    loss_fn(out, batch).backward()
    return torch.stack([torch.log10(torch.linalg.vector_norm(h.grad, dim=-1)) for h in hs])  # (T+1, B)


@pytest.mark.parametrize("cell", ["elman", "lstm", "gru"])
@pytest.mark.parametrize("task", [Echo(every_step=False), Delay(every_step=True)], ids=["last-step", "every-step"])
def test_snapshot_profile_equals_step_by_step_autograd(cell, task):
    model = build_model(_cfg(cell=cell, hidden=6, task=task.name), task.input_size, task.output_size)
    batch = task.sample(5, 12, torch.Generator().manual_seed(3))
    snap = gradient_snapshot(model, batch, task.loss)
    ref = _reference_log10(model, batch, task.loss)
    assert snap.log10_norm.shape == (13, 5)
    assert torch.allclose(snap.log10_norm, ref, rtol=0, atol=1e-9)
    assert torch.allclose(snap.profile, ref.mean(1), rtol=0, atol=1e-9)


@pytest.mark.parametrize("module", ["elman-sigmoid", "pal-tanh"])
def test_snapshot_of_the_own_modules_equals_autograd_through_them(module):
    cell, act = module.split("-")
    task = Delay(every_step=True)
    model = build_model(_cfg(cell=cell, activation=act, hidden=5, task="delay", dtype="float64"), 1, 1)
    batch = task.sample(4, 9, torch.Generator().manual_seed(4))
    snap = gradient_snapshot(model, batch, task.loss)
    rnn = model.rnn
    h0 = torch.zeros(1, 4, 5, dtype=f64, requires_grad=True)
    # the modules' own forward, split at every step so that each h_k can retain its gradient
    hs, h = [h0[0]], h0
    for t in range(9):
        _, h = rnn(batch.x[:, t:t + 1].to(f64), h)
        h.retain_grad()
        hs.append(h)
    out = model.readout(torch.cat([v.transpose(0, 1) for v in hs[1:]], 1))
    task.loss(out, batch).backward()
    ref = torch.stack([torch.log10(torch.linalg.vector_norm((h0 if k == 0 else hs[k]).grad.reshape(4, 5), dim=-1))
                       for k in range(10)])
    assert torch.allclose(snap.log10_norm, ref, rtol=0, atol=1e-9)


# -------------------------------------------------------------------------------------------------- fit

def test_fit_equals_a_bare_loop_with_algorithm_1():
    torch.manual_seed(0)
    make = lambda: nn.ModuleDict({"rnn": nn.RNN(1, 8, batch_first=True, dtype=f64), "head": nn.Linear(8, 1, dtype=f64)})  # noqa: E731
    m1 = make()
    m2 = make()
    m2.load_state_dict(m1.state_dict())
    gen = torch.Generator().manual_seed(1)
    data = [(torch.randn(4, 10, 1, generator=gen, dtype=f64) * 3, torch.randn(4, 1, generator=gen, dtype=f64) * 5)
            for _ in range(20)]

    def loss_fn(m, b):
        out, _ = m["rnn"](b[0])
        return F.mse_loss(m["head"](out[:, -1]), b[1])

    hist = fit(m1, data, loss_fn, steps=20, optimizer=torch.optim.SGD(m1.parameters(), lr=0.05), clip_norm=0.5)
    opt = torch.optim.SGD(m2.parameters(), lr=0.05)
    norms = []
    for b in data:
        opt.zero_grad()
        loss_fn(m2, b).backward()
        n = float(torch.nn.utils.clip_grad_norm_(m2.parameters(), math.inf))  # the norm only: scale min(1, inf)
        if n >= 0.5:  # Algorithm 1 exactly (torch's own clipping divides by n + 1e-6)
            for p in m2.parameters():
                p.grad.mul_(0.5 / n)
        norms.append(n)
        opt.step()
    assert hist.status == "finished" and hist.steps == 20 and hist.evals == []
    assert hist.grad_norms == pytest.approx(norms, rel=1e-12)
    assert hist.clipped == [n >= 0.5 for n in norms] and any(hist.clipped)
    for p, q in zip(m1.parameters(), m2.parameters()):
        assert torch.allclose(p, q, rtol=1e-12, atol=1e-14)


def test_fit_callbacks_evaluate_and_stop():
    model = nn.ModuleDict({"rnn": nn.RNN(1, 4, batch_first=True), "head": nn.Linear(4, 1)})
    data = [(torch.randn(2, 5, 1), torch.randn(2, 1)) for _ in range(30)]

    def loss_fn(m, b):
        return F.mse_loss(m["head"](m["rnn"](b[0])[0][:, -1]), b[1])

    seen = []
    hist = fit(model, data, loss_fn, steps=100, optimizer=torch.optim.SGD(model.parameters(), lr=0.01),
               clip_value=0.1, eval_every=7, monitor=lambda r: seen.append(r["step"]),
               on_eval=lambda step, stats: {"mine": step * 2, "stop": step >= 14})
    assert hist.status == "stopped" and hist.steps == 14 and seen == list(range(1, 15))
    assert [e["step"] for e in hist.evals] == [7, 14] and [e["mine"] for e in hist.evals] == [14, 28]
    assert hist.evals[1]["clipped"] == sum(hist.clipped[7:14]) and "stop" not in hist.evals[1]
    assert hist.evals[1]["grad_norm"] == hist.grad_norms[13]
    assert hist.evals[0]["train_loss"] == pytest.approx(sum(hist.losses[:7]) / 7, rel=1e-12)
    # the batches running out: a last evaluation at the last step
    hist = fit(model, data[:10], loss_fn, steps=100, optimizer=torch.optim.SGD(model.parameters(), lr=0.01),
               eval_every=7, on_eval=lambda step, stats: None)
    assert hist.status == "finished" and hist.steps == 10 and [e["step"] for e in hist.evals] == [7, 10]
    hist = fit(model, data, loss_fn, steps=100, optimizer=torch.optim.SGD(model.parameters(), lr=0.01),
               monitor=lambda r: r["step"] == 3)
    assert hist.status == "stopped" and hist.steps == 3


def test_fit_refuses_bad_arguments():
    model = nn.RNN(1, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(InputError, match="at most one"):
        fit(model, [], lambda m, b: None, steps=1, optimizer=opt, clip_norm=1.0, clip_value=1.0)
    with pytest.raises(InputError, match="steps"):
        fit(model, [], lambda m, b: None, steps=0, optimizer=opt)
    with pytest.raises(InputError, match="optimizer"):
        fit(model, [], lambda m, b: None, steps=1, optimizer="sgd")
    with pytest.raises(InputError, match="regularizer"):
        fit(nn.LSTM(1, 2), [], lambda m, b: None, steps=1, optimizer=opt, regularizer=2.0)


# ------------------------------------------------------------------------------------------------ train

def test_early_stop_on_a_trivially_solvable_task():
    cfg = _cfg(optimizer="adam", lr=0.05, steps=1000, eval_every=10, eval_size=200)
    r = train(cfg, progress=False, task=Echo())
    assert r.status == "solved" and r.steps < 1000 and r.steps % 10 == 0
    assert r.final_error_rate < 0.01 and r.history[-1]["error_rate"] == r.final_error_rate
    assert r.steps == r.history[-1]["step"] and r.baseline_loss == pytest.approx(math.log(2))
    assert len(r.history[-1]["profile"]) == 7  # k = 0..T


def test_huge_learning_rate_diverges_without_an_exception():
    cfg = _cfg(task="delay", lr=1e8, steps=200, eval_every=1)
    r = train(cfg, progress=False, task=Delay(every_step=False))
    assert r.status == "diverged" and r.steps < 200
    assert not math.isfinite(r.final_loss) and math.isnan(r.final_error_rate)
    assert len(r.history) == r.steps and [e["step"] for e in r.history] == list(range(1, r.steps + 1))
    d = r.to_dict()
    json.dumps(d, allow_nan=False)  # non-finite numbers become null
    assert d["final_loss"] is None and d["status"] == "diverged"


def test_training_is_deterministic_given_the_seed():
    kw = dict(task="delay", steps=30, clip_norm=0.5, regularizer_alpha=2.0, lr=0.05)
    a = train(_cfg(**kw), progress=False, task=Delay())
    b = train(_cfg(**kw), progress=False, task=Delay())
    c = train(_cfg(**kw, seed=1), progress=False, task=Delay())
    assert _strip(a.history) == _strip(b.history)
    assert _strip(a.history) != _strip(c.history)
    assert all(e["omega"] is not None and e["omega"] >= 0 for e in a.history)
    assert [e["step"] for e in a.history] == [10, 20, 30]


@pytest.mark.parametrize("cell,clip", [("lstm", {"clip_value": 0.1}), ("gru", {"clip_adaptive": 1.0}),
                                       ("pal", {"clip_norm": 0.1})])
def test_train_records_clipping_per_evaluation(cell, clip):
    r = train(_cfg(task="delay", cell=cell, steps=20, **clip), progress=False, task=Delay())
    assert r.status in ("solved", "unsolved") and r.steps == 20
    assert all(0 <= e["clipped"] <= 10 for e in r.history) and sum(e["clipped"] for e in r.history) > 0
    assert all(e["grad_norm"] > 0 for e in r.history)
    assert ("rho" in r.history[0]) == (cell == "pal")


def test_tensorboard_event_file_is_written(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(log_dir=str(tmp_path))
    r = train(_cfg(task="delay", steps=20, clip_norm=0.5), progress=False, writer=writer, task=Delay())
    writer.close()
    acc = EventAccumulator(str(tmp_path), size_guidance={"scalars": 0, "images": 0, "histograms": 0})
    acc.Reload()
    tags = acc.Tags()
    assert {"loss", "error_rate", "grad_norm", "clipped", "step/loss"} <= set(tags["scalars"])
    assert "gradient_flow" in tags["images"] and "gradient_flow/log10_adjoint_norm" in tags["histograms"]
    loss = acc.Scalars("loss")
    assert [e.step for e in loss] == [10, 20]
    assert [e.value for e in loss] == pytest.approx([h["loss"] for h in r.history], rel=1e-6)
    assert [e.value for e in acc.Scalars("clipped")] == [h["clipped"] for h in r.history]
    assert len(acc.Scalars("step/grad_norm")) == 20


def test_the_run_is_recorded_in_the_store(tmp_path):
    cfg = _cfg(task="delay", steps=10)
    r = train(cfg, progress=False, store=tmp_path / "runs.db", task=Delay())
    with Store(tmp_path / "runs.db") as db:
        rows = db.rows()
    assert len(rows) == 1 and rows[0]["key"] == config_key("train", cfg.to_dict())
    assert rows[0]["config"] == cfg.to_dict() and rows[0]["status"] == "done"
    assert rows[0]["metrics"] == json.loads(json.dumps(r.to_dict()))


def test_progress_bar_runs_on_a_given_console():
    from rich.console import Console

    buf = io.StringIO()
    r = train(_cfg(task="delay", steps=10), console=Console(file=buf, force_terminal=True, width=120), task=Delay())
    assert r.steps == 10 and "delay" in buf.getvalue()


def test_run_config_runs_a_registered_task():
    d = run_config({"task": "adding-pascanu", "length": 12, "hidden": 4, "steps": 4, "eval_every": 2,
                    "eval_size": 20, "snapshot_size": 4, "clip_norm": 1.0})
    json.dumps(d, allow_nan=False)
    assert d["status"] in ("solved", "unsolved") and d["steps"] == 4 and len(d["history"]) == 2


def test_studies_run_through_run_sweep(tmp_path):
    from rnnscope.runs.sweep import SweepSpec, run_sweep

    fixed = {"task": "adding-pascanu", "length": 12, "hidden": 4, "steps": 4, "eval_every": 2, "eval_size": 20,
             "snapshot_size": 4}
    spec = SweepSpec("train-scan", "rnnscope.lab.train:run_config", grid={"seed": [0, 1]}, fixed=fixed)
    rep = run_sweep(spec, tmp_path / "runs.db", workers=1, progress=False)
    assert (rep.done, rep.failed) == (2, 0)
    with Store(tmp_path / "runs.db") as db:
        rows = db.rows()
    direct = run_config({**fixed, "seed": 1})
    row = next(r for r in rows if r["config"]["seed"] == 1)
    assert _strip(row["metrics"]["history"]) == _strip(json.loads(json.dumps(direct["history"])))


# ----------------------------------------------------------------------------------------- bad configs

@pytest.mark.parametrize("kw,match", [
    ({"cell": "rnn"}, "cell"), ({"activation": "relu", "cell": "lstm"}, "activation"),
    ({"activation": "softplus"}, "activation"), ({"hidden": 0}, "hidden"), ({"hidden": 2.5}, "hidden"),
    ({"batch": True}, "batch"), ({"lr": 0}, "lr"), ({"lr": float("nan")}, "lr"), ({"steps": -1}, "steps"),
    ({"clip_norm": 1.0, "clip_value": 0.5}, "at most one"), ({"clip_norm": -1.0}, "clip_norm"),
    ({"clip_adaptive": float("inf")}, "clip_adaptive"), ({"regularizer_alpha": 2.0, "cell": "gru"}, "regularizer"),
    ({"regularizer_alpha": -1.0}, "regularizer"), ({"init": "xavier"}, "init"), ({"optimizer": "lbfgs"}, "optimizer"),
    ({"dtype": "float16"}, "dtype"), ({"snapshot": "yes"}, "snapshot"), ({"seed": -1}, "seed"),
    ({"eval_every": 0}, "eval_every"), ({"task": ""}, "task"), ({"length": 0}, "length"),
])
def test_bad_configs_are_refused(kw, match):
    with pytest.raises(InputError, match=match):
        _cfg(**kw)


def test_bad_configs_found_at_train_or_from_dict():
    with pytest.raises(InputError, match="task"):
        train(_cfg(task="no-such-task"), progress=False)
    with pytest.raises(InputError, match="length"):
        train(_cfg(task="echo", length=2), progress=False, task=Echo(lag=3))
    with pytest.raises(InputError, match="named"):
        train(_cfg(task="echo"), progress=False, task=Delay())
    with pytest.raises(InputError, match="unknown 'colour'"):
        TrainConfig.from_dict({"task": "echo", "length": 3, "colour": "red"})
    with pytest.raises(InputError, match="length"):
        TrainConfig.from_dict({"task": "echo"})
    assert TrainConfig.from_dict(_cfg().to_dict()) == _cfg()
    assert _cfg(clip_norm=0, clip_value=0.5).clip() == ("value", 0.5)  # 0 is off


def test_optimizers():
    model = build_model(_cfg(), 2, 2)
    kinds = {o: make_optimizer(_cfg(optimizer=o, lr=0.1), model.parameters()) for o in ("sgd", "momentum", "rmsprop", "adam")}
    assert type(kinds["sgd"]) is torch.optim.SGD and kinds["sgd"].defaults["momentum"] == 0
    assert kinds["momentum"].defaults["momentum"] == 0.9
    assert type(kinds["rmsprop"]) is torch.optim.RMSprop and type(kinds["adam"]) is torch.optim.Adam
    assert all(o.defaults["lr"] == 0.1 for o in kinds.values())
