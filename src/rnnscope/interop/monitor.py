"""GradientFlowMonitor: the per-step gradient flow of a recurrent module, recorded during a user's own training loop.

Call pattern (one line in the loop; the monitor counts the calls and diagnoses every `every`-th, the first
included):

    monitor = GradientFlowMonitor(model.rnn, every=100, writer=SummaryWriter("runs/x"))
    for batch in data:
        out, _ = model.rnn(batch.x)                     # the user's own step, untouched
        loss = F.mse_loss(model.head(out), batch.y)
        opt.zero_grad(); loss.backward(); opt.step()
        monitor.step(batch.x, lambda out: F.mse_loss(model.head(out), batch.y))
    monitor.plot("flow.png")                            # the profiles over training
    monitor.history[-1].diagnosis.summary()             # the latest verdicts and advice

step(inputs, loss_fn=None, *, targets=None, global_step=None) runs rnnscope.interop.diagnose(module, inputs,
loss_fn, targets=targets) (with the monitor's options) on every `every`-th call, appends a MonitorRecord
(the training step and the Diagnosis) to `history`, and, with a TensorBoard SummaryWriter, writes under
`tag` (default "gradient_flow"):

    <tag>/loss, <tag>/gradient_norm (||dL/dtheta|| of the module)                                  scalars
    <tag>/<L0_fwd>/log10_adjoint_h_first  log10 ||dL/dh_1|| (batch mean)  .../log10_adjoint_h_last (k = T)
    <tag>/<L0_fwd>/rate_per_step, horizon (when found), far_distance (when found), carry_share (far_carry_share)
    <tag>/<L0_fwd>/log10_credit_far    G(D) - G(0): the credit from the farthest measured distance, relative
    <tag>/profile                                                                                  the figure

The module is only read (its weights at the call); the diagnosis runs without touching its gradients.
Options default to the cheap ones: the adjoint profile, the gradient norm and the gate attribution; the
Jacobian-product profile (O(T S^3)) only with jacobian=True (on jacobian_sequences sequences).

Example (no writer: the records stay in `history`):
    >>> import torch
    >>> mon = GradientFlowMonitor(torch.nn.GRU(2, 8), every=2)
    >>> for i in range(5):
    ...     _ = mon.step(torch.randn(20, 4, 2))
    >>> [r.step for r in mon.history], mon.history[-1].diagnosis.layers[0].log10_adjoint_h.shape
    ([0, 2, 4], torch.Size([20]))
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from .diagnose import Diagnosis, diagnose
from ..core.errors import InputError
from ..core.results import jsonable
from .torch_models import module_kind

__all__ = ["GradientFlowMonitor", "MonitorRecord"]


@dataclass(frozen=True)
class MonitorRecord:
    """One diagnosis during training: the training step it was taken at and the Diagnosis."""

    step: int
    diagnosis: Diagnosis

    def to_dict(self) -> dict:
        return jsonable({"step": self.step, **self.diagnosis.to_dict()})


def _row(d) -> str:
    return f"L{d.layer}_{'fwd' if d.direction == 'forward' else 'rev'}"


class GradientFlowMonitor:
    """Record rnnscope.interop.diagnose every `every` training steps (see the module docstring for the call pattern).

    model      the recurrent module to watch (nn.RNN / LSTM / GRU / *Cell, or an rnnscope Cell)
    every      diagnose on calls 0, every, 2 every, ... of step()
    writer     a torch.utils.tensorboard.SummaryWriter (or anything with add_scalar and add_figure), or None
    jacobian, jacobian_sequences, attribution, gradient_norm, dtype, credit_anchors: passed to diagnose (the
               verdict is diagnose's: verdicts.profile_verdict on the credit profile, or ||dL/dh_k|| for a
               last-step loss)
    figures    also write the profile figure to the writer (add_figure) at each record
    """

    def __init__(self, model, every: int = 100, writer=None, *, jacobian: bool = False, jacobian_sequences: int | None = 1,
                 attribution: bool = True, gradient_norm: bool = True, dtype=None, figures: bool = True,
                 tag: str = "gradient_flow", credit_anchors: int = 4):
        module_kind(model)  # an InputError now, not at the first record, for an unsupported module
        if not isinstance(every, int) or isinstance(every, bool) or every < 1:
            raise InputError(f"every: expected a positive integer, got {every!r}")
        if writer is not None and not (hasattr(writer, "add_scalar") and hasattr(writer, "add_figure")):
            raise InputError(f"writer: expected a SummaryWriter (add_scalar, add_figure), got {type(writer).__name__}")
        self.model, self.every, self.writer, self.figures, self.tag = model, every, writer, figures, tag
        self.options = dict(jacobian=jacobian, jacobian_sequences=jacobian_sequences, attribution=attribution,
                            gradient_norm=gradient_norm, dtype=dtype, credit_anchors=credit_anchors)
        self.history: list[MonitorRecord] = []
        self.calls = 0

    def step(self, inputs, loss_fn: Callable | None = None, *, targets=None, global_step: int | None = None) -> Diagnosis | None:
        """Count one training step; on every `every`-th (the first included) diagnose and record. Returns the
        Diagnosis when one was taken, else None. global_step: the step number to record (default: the count)."""
        n = self.calls
        self.calls += 1
        if n % self.every:
            return None
        return self.record(inputs, loss_fn, targets=targets, global_step=n if global_step is None else global_step)

    def record(self, inputs, loss_fn: Callable | None = None, *, targets=None, global_step: int | None = None) -> Diagnosis:
        """Diagnose now, whatever the count, and record it at global_step (default: the number of step() calls)."""
        step = self.calls if global_step is None else int(global_step)
        d = diagnose(self.model, inputs, loss_fn, targets=targets, **self.options)
        self.history.append(MonitorRecord(step, d))
        if self.writer is not None:
            self._write(step, d)
        return d

    def _write(self, step: int, d: Diagnosis) -> None:
        w, tag = self.writer, self.tag
        w.add_scalar(f"{tag}/loss", d.loss, step)
        if d.gradient_norm is not None and math.isfinite(d.gradient_norm):
            w.add_scalar(f"{tag}/gradient_norm", d.gradient_norm, step)
        for l in d.layers:
            row = f"{tag}/{_row(l)}"
            a = l.log10_adjoint_h
            g = l.log10_credit
            far_credit = None if g is None or g.shape[0] < 2 else float(g[-1] - g[0])
            for name, v in (("log10_adjoint_h_first", float(a[0])), ("log10_adjoint_h_last", float(a[-1])),
                            ("rate_per_step", l.rate_per_step), ("horizon", l.horizon),
                            ("far_distance", l.far_distance), ("carry_share", l.far_carry_share()),
                            ("log10_credit_far", far_credit)):
                if v is not None and math.isfinite(v):
                    w.add_scalar(f"{row}/{name}", float(v), step)
        if self.figures:
            w.add_figure(f"{tag}/profile", d.plot(), step, close=True)

    def to_dict(self) -> dict:
        return jsonable({"every": self.every, "calls": self.calls, "history": [r.to_dict() for r in self.history]})

    def plot(self, path=None):
        """The recorded profiles over training: log10 ||dL/dh_k|| per (layer, direction), one line per record
        coloured by training step, and the gradient norm against the step (plots.plot_monitor)."""
        from ..core.plots import plot_monitor
        if not self.history:
            raise InputError("monitor: expected at least one record to plot, got none (call step() first)")
        return plot_monitor(self.history, path)
