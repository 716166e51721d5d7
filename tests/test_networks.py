"""networks.py: the lab's torch networks against rnnscope's cells (the same weights unrolled step by step),
the fused modules where torch has them, and the inits applied by build_model."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from rnnscope.core.unroll import unroll
from rnnscope.interop.torch_models import cell_from_module
from rnnscope.lab.networks import ElmanRNN, PalRNN, build_model
from rnnscope.lab.train import TrainConfig

f64 = torch.float64


def _cfg(**kw) -> TrainConfig:
    base = dict(task="echo", length=6, hidden=8, steps=40, eval_every=10, eval_size=64, snapshot_size=16, seed=0)
    base.update(kw)
    return TrainConfig(**base)


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


def test_the_global_rng_is_left_as_it_was():
    torch.manual_seed(5)
    ref = torch.rand(3)
    torch.manual_seed(5)
    build_model(_cfg(), 2, 2)
    assert torch.equal(torch.rand(3), ref)
