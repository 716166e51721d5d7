"""rnnscope.lab.train: train's outcomes (solved, diverged), determinism, TensorBoard and the store; the
sampled-length mode (the lengths seen in training and evaluation against U{MIN..MAX}); the success criteria
(a task that keeps a known error rate: solved under the lenient criterion, never under Pascanu's); the
evaluation batches; the configs.

Tasks here are tiny ones of the tests' own (toy_tasks.py), so the runs take fractions of a second.
"""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest
import torch
from scipy import stats

from rnnscope.core.errors import InputError
from rnnscope.lab.networks import build_model
from rnnscope.lab.train import EVAL_BATCH, TrainConfig, make_optimizer, run_config, train
from rnnscope.runs.store import Store
from rnnscope.runs.spec import config_key
from toy_tasks import Delay, Echo, NoisyEcho, Recorder


def _cfg(**kw) -> TrainConfig:
    base = dict(task="echo", length=6, hidden=8, steps=40, eval_every=10, eval_size=64, snapshot_size=16, seed=0)
    base.update(kw)
    return TrainConfig(**base)


def _strip(history):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in history]


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
    from rnnscope.runs.runner import run_sweep
    from rnnscope.runs.spec import SweepSpec

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
    ({"length": None}, "length"), ({"criterion": "strict"}, "criterion: expected one of lenient, pascanu"),
    ({"criterion": "pascanu", "eval_size": 9999}, "at least 10,000"), ({"length_range": (5, 4)}, "length_range"),
    ({"length_range": (3, 8), "length": 6}, r"length: expected 8 \(the MAX of length_range 3:8\)"),
    ({"length_range": 8}, "length_range"),
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



# ------------------------------------------------------------------------------------- sampled lengths

def test_length_range_fills_in_the_length_and_round_trips():
    cfg = TrainConfig("echo", length_range=[3, 8])  # a list (TOML, JSON) becomes a tuple
    assert cfg.length == 8 and cfg.length_range == (3, 8) and cfg.length_label() == "3..8"
    assert TrainConfig.from_dict({"task": "echo", "length_range": [3, 8]}) == cfg
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert _cfg().length_range is None and _cfg().length_label() == "6"


def test_training_and_evaluation_lengths_follow_u_min_max():
    """Every training batch draws its nominal L from U{MIN..MAX}: 1,200 updates, their lengths by a chi-square test
    against the uniform counts on {3..8} (p > 1e-3, both ends hit); every evaluation batch draws its own."""
    task = Recorder(Echo())
    steps, lo, hi = 1200, 3, 8
    r = train(_cfg(length=None, length_range=(lo, hi), steps=steps, eval_every=400, eval_size=2500, snapshot=False,
                   batch=4, lr=1e-9), progress=False, task=task)  # lr ~ 0: no early stop
    assert r.steps == steps
    train_calls = [c for c in task.calls if c[0] == 4]
    eval_calls = [c for c in task.calls if c[0] != 4]
    lengths = np.array([L for _, L in train_calls])
    assert len(lengths) == steps and lengths.min() == lo and lengths.max() == hi
    counts = np.bincount(lengths - lo, minlength=hi - lo + 1)
    assert stats.chisquare(counts).pvalue > 1e-3, counts
    # 3 evaluations of 2,500 sequences, each in batches of 1,000, 1,000, 500 (Pascanu's cbs), each batch its own L
    assert [n for n, _ in eval_calls] == [EVAL_BATCH, EVAL_BATCH, 500] * 3
    assert all(lo <= L <= hi for _, L in eval_calls) and len({L for _, L in eval_calls}) > 1


def test_fixed_length_draws_no_length():
    task = Recorder(Echo())
    train(_cfg(steps=20, snapshot=False), progress=False, task=task)
    assert {L for _, L in task.calls} == {6} and [n for n, _ in task.calls if n != 20] == [64, 64]


def test_baseline_of_a_length_range_is_the_mean_over_the_range():
    task = Recorder(Echo(), baseline=lambda L: 1.0 / L)
    r = train(_cfg(length=None, length_range=(2, 5), steps=10, snapshot=False), progress=False, task=task)
    assert r.baseline_loss == pytest.approx((1 / 2 + 1 / 3 + 1 / 4 + 1 / 5) / 4, rel=1e-12)


def test_evaluation_loss_over_batches_is_the_size_weighted_mean():
    """eval_size 1,500 = batches of 1,000 and 500: the recorded loss is (1000 l_1 + 500 l_2) / 1500, with l_i the
    loss of each batch as the task computed it during the evaluation."""
    cfg = _cfg(task="delay", steps=10, eval_every=10, eval_size=1500, snapshot=False)
    captured = {}

    class Capture(Delay):
        def loss(self, out, batch):
            v = super().loss(out, batch)
            if out.shape[0] in (1000, 500) and not torch.is_grad_enabled():
                captured.setdefault(out.shape[0], float(v))
            return v
    r = train(cfg, progress=False, task=Capture())
    assert set(captured) == {1000, 500}
    assert r.history[-1]["loss"] == pytest.approx((1000 * captured[1000] + 500 * captured[500]) / 1500, rel=1e-12)


# ------------------------------------------------------------------------------------------- criteria

def test_the_lenient_criterion_solves_what_pascanus_never_does():
    """NoisyEcho(flip=0.01) keeps an error rate near 0.5 % whatever is learned (1 % of its last-step classes are
    redrawn, half of them to another class): on 5,000 sequences that is about 25 errors, below the lenient 1 %
    (50) and above 0 except with probability e^-25; zero errors in 10,000 has probability about e^-50."""
    kw = dict(task="noisy", optimizer="adam", lr=0.05, steps=600, eval_every=50, snapshot=False)
    lenient = train(_cfg(**kw, eval_size=5000), progress=False, task=NoisyEcho(flip=0.01))
    assert lenient.status == "solved" and 0 < lenient.final_error_rate < 0.01
    assert lenient.criterion == {"name": "lenient", "rule": lenient.criterion["rule"], "source": lenient.criterion["source"],
                                 "sequences": 5000}
    strict = train(_cfg(**kw, criterion="pascanu", eval_size=None), progress=False, task=NoisyEcho(flip=0.01))
    assert strict.status == "unsolved" and strict.steps == 600
    assert strict.criterion["name"] == "pascanu" and strict.criterion["sequences"] == 10_000
    assert all(h["error_rate"] > 0 for h in strict.history)
    assert min(h["error_rate"] for h in strict.history) < 0.01  # it did learn: the lenient one would have stopped


def test_pascanus_criterion_stops_at_zero_errors_in_ten_thousand():
    r = train(_cfg(optimizer="adam", lr=0.01, steps=1000, criterion="pascanu", eval_size=None, snapshot=False),
              progress=False, task=Echo(lag=3))  # recall the symbol 3 steps back: a few evaluations to learn
    assert r.status == "solved" and r.steps < 1000 and r.final_error_rate == 0.0
    assert len(r.history) > 1 and all(h["error_rate"] > 0 for h in r.history[:-1])  # it stopped at the first with none
    assert r.to_dict()["criterion"]["name"] == "pascanu"
