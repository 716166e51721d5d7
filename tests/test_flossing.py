"""flossing: the loss's gradient through a torch module against finite differences, pre-flossing moving the top
exponents towards 0 (chaotic and ordered Elman), the schedule inside fit and train, the config's validation and the
CLI options."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch_reference import central_difference

from rnnscope.app.cli import main
from rnnscope.core.errors import InputError
from rnnscope.lab.fit import fit
from rnnscope.lab.flossing import Flossing, FlossingRun, flossing_loss
from rnnscope.lab.train import TrainConfig, train

F64 = torch.float64


def rnn(H=6, g=1.0, seed=0, dtype=F64, u=1.0):
    """nn.RNN (tanh) with W_hh ~ N(0, g^2 / H), W_ih ~ N(0, u^2)."""
    torch.manual_seed(seed)
    m = nn.RNN(1, H, batch_first=True, dtype=dtype)
    with torch.no_grad():
        m.weight_hh_l0.copy_(g * torch.randn(H, H, dtype=dtype) / H ** 0.5)
        m.weight_ih_l0.copy_(u * torch.randn(H, 1, dtype=dtype))
    return m


def bits(B, T, seed, dtype=F64):
    return torch.randint(0, 2, (B, T, 1), generator=torch.Generator().manual_seed(seed)).to(dtype)


def test_flossing_loss_gradient_against_central_finite_differences():
    m, x = rnn(H=5, g=1.5), bits(2, 40, 0)

    def f():
        return flossing_loss(m, x, k=3, warmup=5, target=0.1)[0]

    loss = f()
    loss.backward()
    for p, idx in ((m.weight_hh_l0, [(0, 1), (3, 4), (2, 2)]), (m.weight_ih_l0, [(1, 0), (4, 0)]),
                   (m.bias_hh_l0, [(0,), (3,)])):
        # central differences, h = 1e-6: error ~2e-6 here (1e-7 at h = 1e-7: it converges as h^2)
        for i, fd in zip(idx, central_difference(f, p, idx)):
            assert abs(float(p.grad[i]) - fd) <= 1e-5 * max(1.0, abs(fd))
    # the loss is the code's mean of (lambda - target)^2
    l2, lam = flossing_loss(m, x, k=3, warmup=5, target=0.1)
    assert abs(float(l2.detach()) - float(((lam.detach() - 0.1) ** 2).mean())) <= 1e-15


@pytest.mark.parametrize("g,inputs", [(2.0, "none"), (0.5, "bits")], ids=["chaotic", "ordered"])
def test_pre_flossing_moves_the_top_exponents_towards_zero(g, inputs):
    """Chaotic: g = 2, no input, no bias (the autonomous attractor from a seeded random start; lambda_1 > 0); ordered:
    g = 0.5 driven by bits (lambda_1 ~ -0.8). 60 AdamW updates of the top two (float64: a chaotic trajectory's
    float32 rounding grows as e^(lambda_1 t) and makes the finite-time exponent a rough function of the weights)."""
    m = rnn(H=24 if inputs == "none" else 16, g=g, seed=2 if inputs == "none" else 1, u=0.0 if inputs == "none" else 0.3)
    gen = torch.Generator().manual_seed(2)
    if inputs == "none":
        with torch.no_grad():
            m.bias_hh_l0.zero_(), m.bias_ih_l0.zero_()
        draw = lambda: torch.zeros(1, 100, 1, dtype=F64)  # noqa: E731
    else:
        draw = lambda: torch.randint(0, 2, (2, 100, 1), generator=gen).to(F64)  # noqa: E731
    run = FlossingRun(Flossing(k=2, steps=60, lr=3e-3, length=100), m, draw)
    run.pre()
    before, after = np.array(run.pre_before), np.array(run.pre_after)
    assert before[0] > 0.05 if g > 1 else before[0] < -0.5  # chaotic / ordered at the start
    assert abs(after[0]) < 0.2 * abs(before[0]) and np.abs(after).max() < 0.05, (before, after)
    assert len(run.records) == 60 and all(r["phase"] == "pre" for r in run.records)


def test_fit_runs_the_schedule_pre_inter_and_throughout():
    m = nn.ModuleDict({"rnn": nn.RNN(1, 8, batch_first=True), "head": nn.Linear(8, 1)})
    data = [(bits(4, 30, i, torch.float32), torch.zeros(4, 1)) for i in range(10)]

    def loss_fn(model, b):
        return ((model["head"](model["rnn"](b[0])[0][:, -1]) - b[1]) ** 2).mean()

    h = fit(m, data, loss_fn, steps=10, optimizer=torch.optim.SGD(m.parameters(), lr=0.01),
            flossing=Flossing(k=2, steps=3, every=4, inter_steps=2, sessions=1, alpha=0.5, length=20))
    fl = h.flossing
    assert h.status == "finished" and h.steps == 10
    assert fl["updates"] == 3 + 2 and fl["sessions"] == 1  # one session (at step 4): sessions = 1
    phases = [r["phase"] for r in fl["records"]]
    assert phases.count("pre") == 3 and phases.count("inter") == 2 and phases.count("throughout") == 10
    assert [r["step"] for r in fl["records"] if r["phase"] == "inter"] == [4, 4]
    assert len(fl["pre_before"]) == 2 and len(fl["pre_after"]) == 2


def test_train_with_flossing_records_lyapunov_and_keeps_the_runs_batches():
    kw = dict(task="delayed-xor", length=3, hidden=8, steps=10, eval_every=5, eval_size=20, snapshot=False,
              optimizer="adam", lr=1e-3)
    r = train(TrainConfig(**kw, flossing_k=3, flossing_steps=4, flossing_every=5, flossing_alpha=0.1), progress=False)
    assert r.status == "unsolved" and r.steps == 10
    assert all(len(h["lyapunov"]) == 3 for h in r.history)
    assert r.flossing["k"] == 3 and r.flossing["phases"] == ["pre", "inter", "throughout"]
    assert r.flossing["updates"] == 4 + 2 * 4 and len(r.flossing["pre_before"]) == 3
    assert "flossing" in r.to_dict()
    off = train(TrainConfig(**kw), progress=False)
    assert "lyapunov" not in off.history[0] and "flossing" not in off.to_dict()
    measured = train(TrainConfig(**kw, flossing_k=2), progress=False)  # k alone: measure only, no flossing
    assert measured.history[-1]["lyapunov"] and measured.flossing["updates"] == 0
    assert measured.final_loss == off.final_loss  # the same init, batches and evaluations as without


@pytest.mark.parametrize("kw,msg", [
    (dict(flossing_k=-1), "flossing_k: expected an integer >= 0, got -1"),
    (dict(flossing_steps=5), "flossing_k: expected an integer >= 1"),
    (dict(flossing_k=2, flossing_every=10), "flossing_steps: expected an integer >= 1 with flossing_every = 10"),
    (dict(flossing_k=2, flossing_alpha=-1.0), "flossing_alpha: expected a finite number >= 0, got -1.0"),
    (dict(flossing_k=60), "flossing_k: expected at most hidden = 50 exponents, got 60"),
])
def test_train_config_validation(kw, msg):
    with pytest.raises(InputError, match=msg):
        TrainConfig("delayed-xor", 5, **kw)


def test_flossing_validation():
    with pytest.raises(InputError, match="flossing k: expected an integer >= 1, got 0"):
        Flossing(k=0)
    with pytest.raises(InputError, match="flossing inter_steps: expected an integer >= 1 with every = 3"):
        Flossing(k=1, every=3)
    with pytest.raises(InputError, match="flossing lr: expected a finite number > 0"):
        Flossing(k=1, lr=0.0)
    with pytest.raises(InputError, match="flossing k: expected at most the state size S = 4"):
        FlossingRun(Flossing(k=5, steps=1), nn.RNN(1, 4), lambda: None)
    assert Flossing(k=2, steps=5, every=10).inter_steps == 5


def test_cli_options(capsys):
    code = main(["train", "--task", "delayed-xor", "--length", "3", "--hidden", "6", "--steps", "4", "--eval-every",
                 "2", "--eval-size", "10", "--flossing-k", "2", "--flossing-steps", "2", "--flossing-every", "2",
                 "--flossing-alpha", "0.5", "--json"])
    out = capsys.readouterr().out
    assert code == 0 and '"lyapunov"' in out and '"pre_before"' in out
    for argv, msg in ((["--flossing-k", "-1"], "--flossing-k: expected an integer >= 0, got -1"),
                      (["--flossing-alpha", "x"], "--flossing-alpha: expected a finite number, got 'x'"),
                      (["--flossing-steps", "2"], "flossing_k: expected an integer >= 1"),
                      (["--flossing-k", "2", "--flossing-every", "5"], "flossing_steps: expected an integer >= 1")):
        code = main(["train", "--task", "delayed-xor", "--length", "3", *argv])
        err = capsys.readouterr().err
        assert code == 2 and msg in err and len(err.strip().splitlines()) == 1, err
