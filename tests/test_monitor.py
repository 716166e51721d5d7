"""GradientFlowMonitor in a training loop: records on the right steps, recorded profiles against step-by-step
autograd at the weights of that step, TensorBoard scalars read back from the event file, and the plot's data."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rnnscope.core.errors import InputError
from rnnscope.interop.monitor import GradientFlowMonitor
from torch_reference import log10_norms, make_module, module_grad_norm, reference

F64 = torch.float64


def _train(monitor, steps=7, seed=0):
    """A user's loop: an LSTM with a linear head, SGD; the monitor gets the RNN's inputs and a loss of its output."""
    torch.manual_seed(seed)
    rnn = monitor.model
    head = nn.Linear(rnn.proj_size or rnn.hidden_size if hasattr(rnn, "proj_size") else rnn.hidden_size, 1, dtype=F64)
    opt = torch.optim.SGD(list(rnn.parameters()) + list(head.parameters()), lr=0.5)
    snapshots = {}
    gen = torch.Generator().manual_seed(seed)
    for step in range(steps):
        x = torch.randn(6, 3, 3, generator=gen, dtype=F64)
        y = torch.randn(3, 1, generator=gen, dtype=F64)
        loss_fn = lambda out, y=y: F.mse_loss(head(out[-1]), y)  # noqa: E731
        if step % monitor.every == 0:  # what the record must show: the weights before this step's update
            snapshots[step] = (reference(rnn, x, loss_fn), module_grad_norm(rnn, x, loss_fn))
        out, _ = rnn(x)
        loss = loss_fn(out)
        opt.zero_grad()
        loss.backward()
        monitor.step(x, loss_fn)
        opt.step()
    return snapshots


def test_records_every_n_steps_equal_autograd_at_that_step():
    rnn = make_module("lstm_proj", 2, False, False, True, scale=0.6)
    mon = GradientFlowMonitor(rnn, every=3)
    snaps = _train(mon)
    assert [r.step for r in mon.history] == [0, 3, 6] and mon.calls == 7
    first = mon.history[0].diagnosis.layers[0].log10_adjoint_h
    assert not torch.allclose(first, mon.history[-1].diagnosis.layers[0].log10_adjoint_h)  # training moved it
    for r in mon.history:
        ref, gn = snaps[r.step]
        for ld in r.diagnosis.layers:
            g = ref["gh"][(ld.layer, 0)]
            torch.testing.assert_close(ld.per_sequence_adjoint_h, log10_norms(g), rtol=0, atol=1e-9)
            torch.testing.assert_close(ld.per_sequence_adjoint_c, log10_norms(ref["gc"][(ld.layer, 0)]), rtol=0, atol=1e-9)
        assert r.diagnosis.gradient_norm == pytest.approx(gn, rel=1e-10)
        assert r.diagnosis.loss == pytest.approx(ref["loss"], rel=1e-12)


def test_tensorboard_receives_the_scalars_and_the_figure(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from torch.utils.tensorboard import SummaryWriter

    rnn = make_module("gru", 1, False, False, True, scale=0.6)
    with SummaryWriter(str(tmp_path)) as w:
        mon = GradientFlowMonitor(rnn, every=2, writer=w)
        snaps = _train(mon, steps=5)
    acc = EventAccumulator(str(tmp_path), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    tags = acc.Tags()
    assert "gradient_flow/profile" in tags["images"]
    assert [e.step for e in acc.Images("gradient_flow/profile")] == [0, 2, 4]

    def series(tag):
        ev = acc.Scalars(tag)
        assert [e.step for e in ev] == [0, 2, 4]
        return [e.value for e in ev]

    # loss and gradient norm against the autograd reference of the weights at that step; the rest as recorded
    assert series("gradient_flow/loss") == pytest.approx([snaps[s][0]["loss"] for s in (0, 2, 4)], rel=1e-6)
    assert series("gradient_flow/gradient_norm") == pytest.approx([snaps[s][1] for s in (0, 2, 4)], rel=1e-6)
    first = [float(log10_norms(snaps[s][0]["gh"][(0, 0)]).mean(0)[0]) for s in (0, 2, 4)]
    assert series("gradient_flow/L0_fwd/log10_adjoint_h_first") == pytest.approx(first, rel=1e-6)
    assert series("gradient_flow/L0_fwd/rate_per_step") == pytest.approx(
        [r.diagnosis.layers[0].rate_per_step for r in mon.history], rel=1e-6)
    assert series("gradient_flow/L0_fwd/carry_share") == pytest.approx(
        [r.diagnosis.layers[0].far_carry_share() for r in mon.history], rel=1e-6)


def test_plot_history_and_errors(tmp_path):
    rnn = make_module("rnn_tanh", 1, True, False, True, scale=0.6)
    mon = GradientFlowMonitor(rnn, every=1)
    with pytest.raises(InputError, match="at least one record"):
        mon.plot()
    for i in range(3):
        mon.step(torch.randn(8, 2, 3, dtype=F64, generator=torch.Generator().manual_seed(i)))
    fig = mon.plot(tmp_path / "m.png")
    assert (tmp_path / "m.png").stat().st_size > 5000
    lines = {ln.get_gid(): ln for ax in fig.axes for ln in ax.lines}
    for r in mon.history:
        for ld in r.diagnosis.layers:
            row = f"L0 {'fwd' if ld.direction == 'forward' else 'rev'}"
            y = ld.log10_adjoint_h.numpy()  # exact zeros (-inf) are gaps (NaN) in the line
            np.testing.assert_allclose(lines[f"record:{row}:{r.step}"].get_ydata(), np.where(np.isfinite(y), y, np.nan))
    np.testing.assert_allclose(lines["gradient_norm"].get_ydata(), [r.diagnosis.gradient_norm for r in mon.history])
    d = mon.to_dict()
    assert [h["step"] for h in d["history"]] == [0, 1, 2] and math.isfinite(d["history"][0]["loss"])
    for bad, match in [(dict(every=0), "every"), (dict(writer=object()), "SummaryWriter")]:
        with pytest.raises(InputError, match=match):
            GradientFlowMonitor(rnn, **bad)
    with pytest.raises(InputError, match="expected nn.RNN"):
        GradientFlowMonitor(nn.Linear(2, 2))
