"""snapshot.py: the gradient-flow snapshot (log10 ||dL/dh_k||, k = 0..T, by rnnscope's cell, unroll and
adjoint sweep) against step-by-step autograd through torch's own cells and through the lab's modules."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rnnscope.lab.networks import build_model
from rnnscope.lab.snapshot import gradient_snapshot
from rnnscope.lab.train import TrainConfig
from toy_tasks import Delay, Echo

f64 = torch.float64


def _cfg(**kw) -> TrainConfig:
    base = dict(task="echo", length=6, hidden=8, steps=40, eval_every=10, eval_size=64, snapshot_size=16, seed=0)
    base.update(kw)
    return TrainConfig(**base)


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
