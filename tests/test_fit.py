"""fit.py: the training loop against a bare loop with Algorithm 1 written out, its callbacks, and its
refusals."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rnnscope.core.errors import InputError
from rnnscope.lab.fit import fit

f64 = torch.float64


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
