"""GradientFlowMonitor in a training loop: records on the right steps, recorded profiles against step-by-step
autograd at the weights of that step, TensorBoard scalars read back from the event file, and the plot's data.
A whole char-LM (tests/test_diagnose_model.py's, trained on pydoc_data.topics): every record equal to diagnose
called directly at that step, its adjoints against the nn.LSTMCell-loop reference, the gradient-norm history
against sqrt(sum ||p.grad||^2) computed with torch after each backward, the clip threshold against
numpy.percentile."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rnnscope.core.errors import InputError
from rnnscope.interop.monitor import GradientFlowMonitor
from rnnscope.interop.diagnose import diagnose
from test_diagnose_model import CharLM, batch, ce, max_rel_error
from test_diagnose_model import reference as model_reference
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
    mon = GradientFlowMonitor(rnn, every=3, gradient_norm=True)  # diagnose's own ||dL/dtheta|| too (off by default)
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
        # the history: the module's own ||dL/dtheta|| read from p.grad at every step, here at the recorded ones
        assert mon.grad_norms[r.step] == pytest.approx(gn, rel=1e-10)
    assert list(mon.grad_norm_steps) == list(range(7))


def test_tensorboard_receives_the_scalars_and_the_figure(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from torch.utils.tensorboard import SummaryWriter

    rnn = make_module("gru", 1, False, False, True, scale=0.6)
    with SummaryWriter(str(tmp_path)) as w:
        mon = GradientFlowMonitor(rnn, every=2, writer=w, figure_every=1, gradient_norm=True)
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
    mon = GradientFlowMonitor(rnn, every=1, gradient_norm=True)
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


# ----------------------------------------------------------------------------------- a whole char-LM

def _norm_reference(model) -> float:
    """sqrt(sum_p ||p.grad||^2) over the parameters with a grad, by plain torch sums in float64."""
    return float(torch.sqrt(sum((p.grad.double() ** 2).sum() for p in model.parameters() if p.grad is not None)))


def _train_lm(mon, steps: int, keep: int | None = None, direct: bool = True):
    """A user's char-LM loop (Adam, real text, cross-entropy at every step), the monitor called after backward and
    before opt.step(). At each record step: the diagnosis diagnose() gives when called directly on the model (with
    the independent norm history), and the cell-loop reference on a copy. Returns per-step losses, norms, and
    {step: (direct diagnosis, reference)}."""
    model = mon.model
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses, norms, at = [], [], {}
    for i in range(steps):
        w = batch(20, 4, 1000 + i)
        x, y = w[:, :-1], w[:, 1:]
        loss = ce(model(x), y)
        opt.zero_grad()
        loss.backward()
        losses.append(float(loss.detach()))
        norms.append(_norm_reference(model))
        if i % mon.every == 0:
            past = norms if keep is None else norms[-keep:]
            d = diagnose(model, x, ce, targets=y, gradient_history=list(past), **mon.options) if direct else None
            at[i] = d, model_reference(copy.deepcopy(model), x, lambda out, y=y: ce(out, y))
        grads = [p.grad.clone() for p in model.parameters()]
        got = mon.step(x, ce, targets=y)
        assert (got is not None) == (i % mon.every == 0)
        assert all(torch.equal(g, p.grad) for g, p in zip(grads, model.parameters()))  # the user's gradients intact
        opt.step()
    return losses, norms, at


def _lm(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return CharLM("lstm", H=16).double()


def _plain(d: dict) -> dict:
    return {k: v for k, v in d.items() if k != "seconds"}


def test_whole_char_lm_records_equal_diagnose_at_that_step_and_the_norm_history():
    mon = GradientFlowMonitor(_lm(), every=3, history=5)
    assert "rnn (LSTM)" in repr(mon) and mon.modules == ("rnn (LSTM)",)
    losses, norms, at = _train_lm(mon, steps=8, keep=5)
    assert losses[-1] < losses[0]  # it learns from the text
    assert [r.step for r in mon.history] == [0, 3, 6] and mon.calls == 8
    for r in mon.history:
        d, (loss, ref) = r.diagnosis, at[r.step][1]
        assert _plain(d.to_dict()) == _plain(at[r.step][0].to_dict())  # every number of diagnose at that step
        assert d.loss == pytest.approx(losses[r.step], rel=1e-12) == loss  # the training step's own loss
        assert [(ld.module, ld.layer) for ld in d.layers] == [("rnn", 0), ("rnn", 1)]
        assert max_rel_error(d, ref) < 1e-9  # dL/dh_k, dL/dc_k against autograd through nn.LSTMCell loops
    assert not torch.allclose(mon.history[0].diagnosis.layers[0].log10_adjoint_h,
                              mon.history[-1].diagnosis.layers[0].log10_adjoint_h)  # training moved it
    # the bounded history: the last 5 of sqrt(sum ||p.grad||^2), and AutoClip's 10th percentile of them
    assert list(mon.grad_norms) == pytest.approx(norms[-5:], rel=1e-12) and list(mon.grad_norm_steps) == [3, 4, 5, 6, 7]
    assert len(set(norms)) == len(norms)
    assert mon.clip_threshold() == pytest.approx(float(np.percentile(norms[-5:], 10)), rel=1e-12)
    assert mon.clip_threshold(50) == pytest.approx(float(np.median(norms[-5:])), rel=1e-12)
    assert mon.to_dict()["grad_norms"] == pytest.approx(norms[-5:], rel=1e-12)
    assert mon.seconds["diagnose"] > 0 and mon.seconds["norm"] > 0 and mon.seconds["write"] == mon.seconds["figure"] == 0
    lines = {ln.get_gid(): ln for ax in mon.plot().axes for ln in ax.lines}  # the figure's norm line: the history
    np.testing.assert_allclose(lines["gradient_norm_step"].get_ydata(), norms[-5:], rtol=1e-12)
    np.testing.assert_array_equal(lines["gradient_norm_step"].get_xdata(), [3, 4, 5, 6, 7])


def test_whole_char_lm_tensorboard_tags_read_back(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(tmp_path)) as w:
        mon = GradientFlowMonitor(_lm(1), every=2, writer=w, figure_every=2)
        losses, norms, at = _train_lm(mon, steps=7, direct=False)
    acc = EventAccumulator(str(tmp_path), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    tags = acc.Tags()
    assert [e.step for e in acc.Images("gradient_flow/profile")] == [0, 4]  # the 1st and 3rd of the records at 0, 2, 4, 6

    def series(tag, steps):
        ev = acc.Scalars(tag)
        assert [e.step for e in ev] == steps, tag
        return [e.value for e in ev]

    assert series("gradient_flow/grad_norm_step", list(range(7))) == pytest.approx(norms, rel=1e-6)
    # the clip threshold at each record with >= 2 norms: numpy.percentile(history so far, 10)
    assert series("gradient_flow/clip_threshold", [2, 4, 6]) == pytest.approx(
        [float(np.percentile(norms[:s + 1], 10)) for s in (2, 4, 6)], rel=1e-6)
    assert series("gradient_flow/loss", [0, 2, 4, 6]) == pytest.approx([losses[s] for s in (0, 2, 4, 6)], rel=1e-6)
    for layer in (0, 1):  # rows named by the module path; log10 ||dL/dh_1|| (batch mean) from the cell loop
        first = [float(torch.log10(at[s][1][1][("rnn", layer, 0)][0][:, 0]).mean()) for s in (0, 2, 4, 6)]
        assert series(f"gradient_flow/rnn.L{layer}_fwd/log10_adjoint_h_first", [0, 2, 4, 6]) == pytest.approx(first, rel=1e-6)
        last = [float(torch.log10(at[s][1][1][("rnn", layer, 0)][0][:, -1]).mean()) for s in (0, 2, 4, 6)]
        assert series(f"gradient_flow/rnn.L{layer}_fwd/log10_adjoint_h_last", [0, 2, 4, 6]) == pytest.approx(last, rel=1e-6)
        assert f"gradient_flow/rnn.L{layer}_fwd/carry_share" in tags["scalars"]
    # diagnose's own ||dL/dtheta|| is off by default (the history reads p.grad at every step)
    assert "gradient_flow/gradient_norm" not in tags["scalars"] and mon.figures_written == 2
    assert mon.seconds["write"] > 0 and mon.seconds["figure"] > 0


class _ScalarsOnly:
    def __init__(self):
        self.got = []

    def add_scalar(self, tag, value, step):
        self.got.append((tag, value, step))


def test_whole_model_errors_and_steps_without_gradients():
    for model, match in [(nn.Sequential(nn.Linear(2, 2), nn.Tanh()), r"model: expected nn\.RNN.*got Sequential with none"),
                         ("lstm", r"expected nn\.RNN")]:
        with pytest.raises(InputError, match=match):
            GradientFlowMonitor(model)
    lm = _lm(2)
    for bad, match in [(dict(every=0), r"every: expected a positive integer, got 0"),
                       (dict(every=2.5), r"every: expected a positive integer, got 2\.5"),
                       (dict(history=0), r"history: expected a positive integer, got 0"),
                       (dict(figure_every=0), r"figure_every: expected a positive integer, got 0"),
                       (dict(writer=object()), r"writer: expected a SummaryWriter \(add_scalar, add_figure\), got object"),
                       (dict(writer=_ScalarsOnly()), r"writer: expected .*add_figure.*, got _ScalarsOnly")]:
        with pytest.raises(InputError, match=match):
            GradientFlowMonitor(lm, **bad)
    w = batch(10, 2, 5)
    x, y = w[:, :-1], w[:, 1:]
    mon = GradientFlowMonitor(lm, every=1, writer=_ScalarsOnly(), figures=False)
    with pytest.raises(InputError, match=r"loss_fn: expected a loss function .*got None"):
        mon.step(x)  # a whole model needs the training step's loss
    lm.zero_grad(set_to_none=True)
    d = mon.step(x, ce, targets=y)  # no backward yet: no norm recorded, the diagnosis still taken
    assert len(mon.grad_norms) == 0 and mon.clip_threshold() is None and d is mon.history[-1].diagnosis
    assert "gradient_flow/grad_norm_step" not in {t for t, _, _ in mon.writer.got}
    ce(lm(x), y).backward()
    mon.step(x, ce, targets=y)
    mon.step(x, ce, targets=y, global_step=40)
    assert list(mon.grad_norm_steps) == [2, 40] and mon.grad_norms[0] == mon.grad_norms[1] == pytest.approx(
        _norm_reference(lm), rel=1e-12)
    got = {(t, s): v for t, v, s in mon.writer.got}
    assert got[("gradient_flow/clip_threshold", 40)] == pytest.approx(_norm_reference(lm), rel=1e-12)
    assert ("gradient_flow/clip_threshold", 2) not in got  # one norm only at step 2


# ----------------------------------------------------------------------------------- sampled records

def _full_step(model, x, y):
    model.zero_grad(set_to_none=True)
    ce(model(x), y).backward()


def test_sampled_record_is_the_first_sequences_exactly():
    lm = _lm(3)
    w = batch(20, 24, 77)
    x, y = w[:, :-1], w[:, 1:]
    _full_step(lm, x, y)
    mon = GradientFlowMonitor(lm, every=1, sequences=8)
    assert mon.batch_dim == 0  # a whole model: token ids (B, T)
    d = mon.step(x, ce, targets=y)
    rec = mon.history[0]
    assert d.batch == 8 and rec.of_batch == 24 and rec.to_dict()["of_batch"] == 24
    assert d.notes[-1] == "monitor: the first 8 of 24 sequences (sequences=8; the loss_fn on them)"
    # every number is diagnose's on the first 8 sequences with the training step's loss_fn ...
    direct = diagnose(lm, x[:8], ce, targets=y[:8], gradient_history=list(mon.grad_norms), **mon.options)
    got, want = _plain(d.to_dict()), _plain(direct.to_dict())
    assert got.pop("notes")[:-1] == want.pop("notes") and got == want
    with torch.no_grad():
        assert d.loss == pytest.approx(float(ce(lm(x[:8]), y[:8])), rel=1e-12)  # the model's own float64 loss on them
    # ... against autograd through nn.LSTMCell loops on those sequences
    ref_loss, ref = model_reference(copy.deepcopy(lm), x[:8], lambda out: ce(out, y[:8]))
    assert max_rel_error(d, ref) < 1e-9 and d.loss == pytest.approx(ref_loss, rel=1e-12)
    # each sequence is the whole batch's, times B / n for a mean over the batch: dL_B/dh = (n / B) dL_n/dh
    whole = diagnose(lm, x, ce, targets=y, **mon.options)
    for a, b in zip(d.layers, whole.layers):
        np.testing.assert_allclose(a.per_sequence_adjoint_h.numpy() + math.log10(8 / 24),
                                   b.per_sequence_adjoint_h[:8].numpy(), rtol=0, atol=1e-9)
    # the history and the clip advice are the whole batch's, from p.grad
    assert mon.grad_norms[-1] == pytest.approx(_norm_reference(lm), rel=1e-12)


def test_sampled_record_of_a_time_major_bare_module():
    torch.manual_seed(5)
    rnn = nn.LSTM(3, 8, num_layers=2, dtype=F64)
    x = torch.randn(15, 20, 3, dtype=F64)
    mon = GradientFlowMonitor(rnn, every=1, sequences=6)
    assert mon.batch_dim == 1  # its own layout (T, B, D)
    d = mon.step(x)
    direct = diagnose(rnn, x[:, :6], **mon.options)
    assert d.batch == 6 and mon.history[0].of_batch == 20
    np.testing.assert_array_equal(d.layers[1].per_sequence_adjoint_h.numpy(), direct.layers[1].per_sequence_adjoint_h.numpy())
    assert GradientFlowMonitor(nn.GRU(3, 4, batch_first=True)).batch_dim == 0


def test_sampling_that_does_not_fit_takes_the_whole_batch_and_says_why():
    torch.manual_seed(6)
    # a whole model fed time-major (T, B, D) with the default batch_dim 0: narrowing cuts time, not sequences
    model = nn.Sequential(nn.Linear(3, 4), nn.LSTM(4, 8)).double()
    x = torch.randn(12, 20, 3, dtype=F64)
    loss_fn = lambda out: out[0].pow(2).mean()  # noqa: E731
    mon = GradientFlowMonitor(model, every=1, sequences=8)
    d = mon.step(x, loss_fn)
    assert d.batch == 20 and d.T == 12 and mon.history[0].of_batch is None and not mon.sampling
    assert d.notes[-1] == ("monitor: the whole batch (the recurrent modules see a batch of 20, not the 12 along axis 0 "
                           "of the inputs: set batch_dim)")
    direct = diagnose(model, x, loss_fn, **mon.options)
    np.testing.assert_array_equal(d.layers[0].per_sequence_adjoint_h.numpy(), direct.layers[0].per_sequence_adjoint_h.numpy())
    d2 = mon.step(x, loss_fn)  # later records: the whole batch, no second try, the same note
    assert d2.batch == 20 and d2.notes[-1] == d.notes[-1]
    good = GradientFlowMonitor(model, every=1, sequences=8, batch_dim=1)
    assert good.step(x, loss_fn).batch == 8
    # a bare module told the wrong axis: the narrowed run shows it
    bare = GradientFlowMonitor(nn.GRU(3, 4, dtype=F64), every=1, sequences=8, batch_dim=0)
    d = bare.step(x)
    assert d.batch == 20 and d.notes[-1] == ("monitor: the whole batch (narrowing axis 0 of the inputs to 8 gave the "
                                             "recurrent modules a batch of 20, not 8: set batch_dim)")
    # a loss that closes over the whole batch's targets refuses the narrowed output
    lm = _lm(4)
    w = batch(10, 20, 78)
    xx, yy = w[:, :-1], w[:, 1:]
    mon = GradientFlowMonitor(lm, every=1, sequences=8)
    d = mon.step(xx, lambda out: ce(out, yy))
    assert d.batch == 20 and not mon.sampling
    assert d.notes[-1].startswith("monitor: the whole batch (the narrowed batch was refused: loss_fn: expected it to accept")
    # a user's error is the user's: raised, and sampling stays on
    mon = GradientFlowMonitor(lm, every=1, sequences=8)
    with pytest.raises(InputError, match="loss_fn: expected a loss function"):
        mon.step(xx)
    assert mon.sampling
    for bad, match in [(dict(sequences=0), r"sequences: expected a positive integer, got 0"),
                       (dict(batch_dim=-1), r"batch_dim: expected a non-negative integer or None, got -1"),
                       (dict(batch_dim=True), r"batch_dim: expected a non-negative integer or None, got True")]:
        with pytest.raises(InputError, match=match):
            GradientFlowMonitor(lm, **bad)


def test_sampling_checks_a_whole_model_s_batch_axis_once():
    torch.manual_seed(7)
    model = nn.Sequential(nn.Linear(3, 4), nn.LSTM(4, 8)).double()
    loss_fn = lambda out: out[0].pow(2).mean()  # noqa: E731
    # time-major (T = 12, B = 8): narrowing axis 0 to 8 steps would leave the LSTM a batch of 8 = sequences
    x = torch.randn(12, 8, 3, dtype=F64)
    mon = GradientFlowMonitor(model, every=1, sequences=8)
    d = mon.step(x, loss_fn)
    assert d.T == 12 and d.batch == 8 and not mon.sampling
    assert d.notes[-1] == ("monitor: the whole batch (the recurrent modules see a batch of 8, not the 12 along axis 0 "
                           "of the inputs: set batch_dim)")
    # the right axis: checked once, then sampled
    mon = GradientFlowMonitor(model, every=1, sequences=4, batch_dim=1)
    assert mon.step(x, loss_fn).batch == 4 and mon._verified
    direct = diagnose(model, x[:, :4], loss_fn, **mon.options)
    np.testing.assert_array_equal(mon.history[0].diagnosis.layers[0].per_sequence_adjoint_h.numpy(),
                                  direct.layers[0].per_sequence_adjoint_h.numpy())
