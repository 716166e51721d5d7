"""GradientFlowMonitor: the gradient flow of a recurrent model, recorded during a user's own training loop.

Call pattern (one line in the loop, after loss.backward() and before opt.step(); the monitor counts the calls
and diagnoses every `every`-th, the first included):

    model = CharLM()                      # any nn.Module with nn.RNN / LSTM / GRU submodules, or one of them
    monitor = GradientFlowMonitor(model, every=100, writer=SummaryWriter("runs/x"))
    loss_fn = lambda logits, y: F.cross_entropy(logits.flatten(0, 1), y.flatten())   # the training step's loss
    for x, y in data:
        loss = loss_fn(model(x), y)                       # the user's own step, untouched
        opt.zero_grad(); loss.backward()
        monitor.step(x, loss_fn, targets=y)               # reads p.grad: after backward, before zero_grad
        opt.step()
    monitor.history[-1].diagnosis.summary()               # the latest verdicts and advice (AutoClip's clip)
    monitor.plot("flow.png")                              # the profiles over training

What step(inputs, loss_fn=None, *, targets=None, global_step=None) does, call t (t = 0, 1, ...):

    every call        n_t = ||dL/dtheta||_2 = sqrt(sum_p ||p.grad||_2^2) over the model's parameters p that
                      have a .grad (None skipped; the norm clip_grad_norm_(model.parameters()) sees), read from
                      p.grad, no autograd: one 2-norm per tensor (torch._foreach_norm), then the 2-norm of those
                      in float64. Appended to `grad_norms` (the last `history` of them). With no .grad at all
                      (step() called before any backward) nothing is appended.
    t % every == 0    d = diagnose(model, inputs, loss_fn, targets=targets, gradient_history=list(grad_norms)
                      (None while empty), **options): a MonitorRecord(step, d) appended to `history`. loss_fn is the training step's
                      own loss, the same function of the model's output (and targets) that made `loss`
                      (required for a whole model: diagnose's InputError otherwise). diagnose re-runs the
                      forward from the weights at the call, so called before opt.step() its L is the training
                      step's loss and its profiles are those of the gradient in p.grad (called after opt.step(),
                      they are the updated weights'; n_t is the step's either way)
    clip threshold    c = numpy.percentile(the finite n in grad_norms, 10) (linear interpolation; >= 2 of them):
                      AutoClip's threshold (Seetharaman et al. 2020, p = 10), the one the advice reads from the
                      same gradient_history (clip_threshold())

The model is only read: diagnose leaves p.grad as it found it, so opt.step() after step() sees the user's
gradients. Options default to the cheap ones, so that a record every 100 steps costs under 5% of training
(benchmarks/monitor.py): the adjoint profiles, the credit profile on 4 anchors x 2 sequences, the carry share
on 2 sequences; ||dL/dtheta|| is read from p.grad at every step (n_t above), so diagnose's own per-parameter
gradients are off (gradient_norm=True adds them); the Jacobian-product profile (O(T S^3)) only with
jacobian=True (on jacobian_sequences sequences). Thread counts are left to diagnose.

Sampled records (sequences = n, default 8; None: the whole batch). A record diagnoses the first n sequences
of the batch: every tensor of inputs (and targets) whose size along the batch axis is the batch's B is
narrowed to its first n there (batch_dim; default: a bare module's own layout, 0 with batch_first and 1
time-major; 0 for a whole model, the layout of token ids (B, T)), and the training step's loss_fn is taken on
them. Each sequence's numbers are exact (the sequences of a batch do not interact in a recurrent layer); L and
its gradients are those of loss_fn on the n sequences (for a mean over the batch, dL/dh_k is B / n times the
whole batch's: the verdicts and the credit profile, which read ratios, are unchanged); the gradient-norm history
and the clip advice are the whole batch's, read from p.grad. The cost of a record grows with the batch (the
sweeps stream (T, B, .) float64 buffers), so a sample bounds it. The Diagnosis says "monitor: the first n of B
sequences" in its notes. For a whole model the axis is checked once, on the first sampled record: one forward
of the model (its own dtype, no_grad) finds the batch its first recurrent module receives, which must be the
inputs' B. Where narrowing does not fit (no input tensor with that axis, a PackedSequence, a recurrent module
that sees another batch size, or a loss_fn that refuses the narrowed output: an InputError), the record takes
the whole batch and says why in its notes, and later records do too.

With a TensorBoard SummaryWriter, under `tag` (default "gradient_flow"), at step s (global_step, default t):

    <tag>/grad_norm_step        n_t, every call that has one (the history's value)                     scalar
    <tag>/clip_threshold        c, at each record (when >= 2 finite norms)                             scalar
    <tag>/loss                  diagnose's L, at each record                                           scalar
    <tag>/gradient_norm         diagnose's ||dL/dtheta|| (every parameter; with gradient_norm=True)     scalar
    <tag>/<row>/log10_adjoint_h_first  log10 ||dL/dh_1|| (batch mean), .../log10_adjoint_h_last (k = T)
    <tag>/<row>/rate_per_step, horizon, far_distance (when found), carry_share (far_carry_share),
    <tag>/<row>/log10_credit_far       G(D) - G(0): the credit from the farthest measured distance, relative
    <tag>/profile               the diagnosis figure (Diagnosis.plot), at every figure_every-th record  image
                                (the first included; default 10: rendering it takes ~0.4 s on a 2-core CPU,
                                about 4 steps of the char-LM of benchmarks/monitor.py; 1: at every record)

row: "L0_fwd", "L1_rev", ... for a bare module; "<module path>.L0_fwd" for a whole model ("rnn.L0_fwd",
"encoder.rnn.L1_fwd"). `seconds` keeps the monitor's own cost, cumulative: "norm" (the gradient norms),
"diagnose", "write" (the scalars), "figure" (Diagnosis.plot and add_figure).

Example (a bare module, no writer, no training: no .grad, so no norms; the records stay in `history`):
    >>> import torch
    >>> mon = GradientFlowMonitor(torch.nn.GRU(2, 8), every=2)
    >>> for i in range(5):
    ...     _ = mon.step(torch.randn(20, 4, 2))
    >>> [r.step for r in mon.history], mon.history[-1].diagnosis.layers[0].log10_adjoint_h.shape, len(mon.grad_norms)
    ([0, 2, 4], torch.Size([20]), 0)

A whole model (embedding -> LSTM -> head) in a training loop:
    >>> lm = torch.nn.Sequential(torch.nn.Embedding(10, 4), torch.nn.LSTM(4, 8, batch_first=True))
    >>> mon = GradientFlowMonitor(lm, every=3)
    >>> mon
    GradientFlowMonitor(Sequential: 1 (LSTM), every=3, calls=0, records=0, norms=0)
    >>> loss_fn = lambda out: out[0].pow(2).mean()
    >>> for i in range(4):
    ...     ids = torch.randint(0, 10, (3, 12))
    ...     lm.zero_grad(); loss_fn(lm(ids)).backward()
    ...     _ = mon.step(ids, loss_fn)
    >>> [r.step for r in mon.history], len(mon.grad_norms), [l.module for l in mon.history[0].diagnosis.layers]
    ([0, 3], 4, ['1'])
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from .capture import recurrent_batch, recurrent_submodules
from .diagnose import Diagnosis, diagnose
from ..core.errors import InputError
from ..core.results import jsonable
from .torch_models import SUPPORTED_MODULES, module_kind

__all__ = ["GradientFlowMonitor", "MonitorRecord", "grad_norm", "CLIP_PERCENTILE", "SAMPLE_SEQUENCES"]

CLIP_PERCENTILE = 10.0  # AutoClip's p (Seetharaman et al. 2020), the advice's default
SAMPLE_SEQUENCES = 8  # a record diagnoses the first 8 sequences of the batch by default (module docstring)


@dataclass(frozen=True)
class MonitorRecord:
    """One diagnosis during training: the training step it was taken at and the Diagnosis."""

    step: int
    diagnosis: Diagnosis
    of_batch: int | None = None  # the training batch's B when the record diagnosed a sample of it (diagnosis.batch)

    def to_dict(self) -> dict:
        return jsonable({"step": self.step, "of_batch": self.of_batch, **self.diagnosis.to_dict()})


def grad_norm(parameters) -> float | None:
    """sqrt(sum_p ||p.grad||_2^2) over the parameters with a .grad (None when none has one); no autograd.

    Example:
        >>> w = torch.nn.Parameter(torch.zeros(2)); w.grad = torch.tensor([3.0, 0.0])
        >>> v = torch.nn.Parameter(torch.zeros(1)); v.grad = torch.tensor([4.0])
        >>> grad_norm([w, v, torch.nn.Parameter(torch.zeros(3))]), grad_norm([])
        (5.0, None)
    """
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return None
    grads = [g.coalesce().values() if g.is_sparse else g for g in grads]  # nn.Embedding(sparse=True)
    dev = grads[0].device
    norms = torch._foreach_norm(grads)  # ||p.grad||_2 of each tensor, one fused kernel per device and dtype
    return float(torch.linalg.vector_norm(torch.stack([n.to(dev, torch.float64) for n in norms])))


def _row(d) -> str:
    r = f"L{d.layer}_{'fwd' if d.direction == 'forward' else 'rev'}"
    return f"{d.module}.{r}" if d.module else r


def _watched(model) -> tuple[str, ...]:
    """() for a bare recurrent module (or Cell); else the paths of a whole model's recurrent submodules."""
    try:
        module_kind(model)
        return ()
    except InputError:
        if not isinstance(model, torch.nn.Module):
            raise
    subs = recurrent_submodules(model)
    if not subs:
        raise InputError(f"model: expected {SUPPORTED_MODULES}, or an nn.Module with nn.RNN / nn.LSTM / nn.GRU "
                         f"submodules, got {type(model).__name__} with none")
    return tuple(f"{n} ({type(m).__name__})" for n, m in subs)


def _default_batch_dim(model) -> int:
    """The batch axis of a record's inputs by default: a bare module's own (0 batch_first, 1 time-major; an
    rnnscope Cell and nn.*Cell loops take (T, B, D): 1); 0 for a whole model (token ids (B, T))."""
    if isinstance(model, torch.nn.RNNBase):
        return 0 if model.batch_first else 1
    try:
        module_kind(model)
        return 1
    except InputError:
        return 0


def _batch_size(inputs, dim: int) -> int | None:
    """B: the size along dim of the first tensor of inputs (a tensor or a tuple of arguments) that has that axis;
    None when none has (a PackedSequence included)."""
    for v in inputs if isinstance(inputs, (tuple, list)) else (inputs,):
        if isinstance(v, torch.Tensor) and v.dim() > dim:
            return int(v.shape[dim])
    return None


def _narrow(x, dim: int, B: int, n: int, fallback: int | None = None):
    """x (a tensor, a tuple / list of them, or anything else) with every tensor whose size along dim is B narrowed
    to its first n there (targets: along `fallback` when dim does not fit them, e.g. (B,) class labels of a
    time-major batch); the rest as it is."""
    if isinstance(x, (tuple, list)):
        return type(x)(_narrow(v, dim, B, n, fallback) for v in x)
    if not isinstance(x, torch.Tensor):
        return x
    for d in (dim, fallback):
        if d is not None and x.dim() > d and x.shape[d] == B:
            return x.narrow(d, 0, n)
    return x


def _positive(name: str, v) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or v < 1:
        raise InputError(f"{name}: expected a positive integer, got {v!r}")
    return v


class GradientFlowMonitor:
    """Record rnnscope.interop.diagnose every `every` training steps and ||dL/dtheta|| at every step (see the
    module docstring for the call pattern and what is written).

    model      a whole nn.Module with nn.RNN / LSTM / GRU submodules (at any depth), or a bare recurrent module
               (nn.RNN / LSTM / GRU / *Cell, or an rnnscope Cell); InputError for a model with none
    every      diagnose on calls 0, every, 2 every, ... of step()
    writer     a torch.utils.tensorboard.SummaryWriter (anything with add_scalar, and add_figure when
               figures=True), or None
    history    how many of the latest gradient norms `grad_norms` keeps (the clip advice's history)
    jacobian, jacobian_sequences, attribution, gradient_norm, dtype, credit_anchors, credit_sequences: passed
               to diagnose (the verdict is diagnose's: verdicts.profile_verdict on the credit profile, or
               ||dL/dh_k|| for a last-step loss)
    figures    also write the profile figure to the writer (add_figure), on every figure_every-th record
    sequences  a record diagnoses the first `sequences` sequences of the batch (None: the whole batch); batch_dim
               the batch axis of inputs and targets (None: a bare module's own layout, 0 for a whole model):
               "Sampled records" in the module docstring
    """

    def __init__(self, model, every: int = 100, writer=None, *, history: int = 10000, jacobian: bool = False,
                 jacobian_sequences: int | None = 1, attribution: bool | int = 2, gradient_norm: bool = False,
                 dtype=None, figures: bool = True, figure_every: int = 10, tag: str = "gradient_flow",
                 credit_anchors: int = 4, credit_sequences: int = 2, sequences: int | None = SAMPLE_SEQUENCES,
                 batch_dim: int | None = None):
        self.modules = _watched(model)  # an InputError now, not at the first record
        _positive("every", every)
        _positive("history", history)
        _positive("figure_every", figure_every)
        if sequences is not None:
            _positive("sequences", sequences)
        if batch_dim is not None and (not isinstance(batch_dim, int) or isinstance(batch_dim, bool) or batch_dim < 0):
            raise InputError(f"batch_dim: expected a non-negative integer or None, got {batch_dim!r}")
        self.sequences = sequences
        self.batch_dim = _default_batch_dim(model) if batch_dim is None else batch_dim
        self.sampling = sequences is not None  # False once narrowing did not fit (the reason in sampling_note)
        self.sampling_note: str | None = None
        self._verified = False  # whether a whole model's batch axis was checked against what its recurrent modules see
        need = ("add_scalar", "add_figure") if figures else ("add_scalar",)
        if writer is not None and not all(callable(getattr(writer, a, None)) for a in need):
            raise InputError(f"writer: expected a SummaryWriter ({', '.join(need)}), got {type(writer).__name__}")
        self.model, self.every, self.writer, self.figures, self.tag = model, every, writer, figures, tag
        self.figure_every = figure_every
        self.options = dict(jacobian=jacobian, jacobian_sequences=jacobian_sequences, attribution=attribution,
                            gradient_norm=gradient_norm, dtype=dtype, credit_anchors=credit_anchors,
                            credit_sequences=credit_sequences)
        self.history: list[MonitorRecord] = []
        self.grad_norms: deque[float] = deque(maxlen=history)  # n_t, the latest `history` steps
        self.grad_norm_steps: deque[int] = deque(maxlen=history)  # the step of each
        self.calls = 0
        self.seconds = {"norm": 0.0, "diagnose": 0.0, "write": 0.0, "figure": 0.0}
        self.figures_written = 0

    def __repr__(self) -> str:
        what = type(self.model).__name__ + (f": {', '.join(self.modules)}" if self.modules else "")
        return (f"GradientFlowMonitor({what}, every={self.every}, calls={self.calls}, records={len(self.history)}, "
                f"norms={len(self.grad_norms)})")

    def step(self, inputs, loss_fn: Callable | None = None, *, targets=None, global_step: int | None = None) -> Diagnosis | None:
        """Count one training step (call it after loss.backward(), before opt.step() and the next zero_grad):
        append ||dL/dtheta|| from p.grad to grad_norms; on every `every`-th call (the first included) diagnose
        with the training step's own loss_fn (and targets) and record. Returns the Diagnosis when one was
        taken, else None. global_step: the step number to record (default: the count of calls before this)."""
        n = self.calls
        self.calls += 1
        at = n if global_step is None else int(global_step)
        self.read_grad_norm(at)
        if n % self.every:
            return None
        return self.record(inputs, loss_fn, targets=targets, global_step=at)

    def read_grad_norm(self, step: int) -> float | None:
        """Append n = sqrt(sum ||p.grad||^2) of the model's parameters at `step` (None, nothing appended, when
        no parameter has a .grad) and write <tag>/grad_norm_step."""
        t0 = time.perf_counter()
        params = self.model.parameters() if callable(getattr(self.model, "parameters", None)) else ()
        v = grad_norm(params)
        if v is not None:
            self.grad_norms.append(v)
            self.grad_norm_steps.append(step)
        t1 = time.perf_counter()
        self.seconds["norm"] += t1 - t0
        if v is not None and self.writer is not None and math.isfinite(v):
            self.writer.add_scalar(f"{self.tag}/grad_norm_step", v, step)
            self.seconds["write"] += time.perf_counter() - t1
        return v

    def clip_threshold(self, percentile: float = CLIP_PERCENTILE) -> float | None:
        """numpy.percentile of the finite norms in grad_norms (linear interpolation): AutoClip's clip_grad_norm_
        max_norm; None with fewer than 2 of them."""
        h = np.asarray(self.grad_norms, dtype=np.float64)
        h = h[np.isfinite(h)]
        return float(np.percentile(h, percentile)) if h.size >= 2 else None

    def record(self, inputs, loss_fn: Callable | None = None, *, targets=None, global_step: int | None = None) -> Diagnosis:
        """Diagnose now, whatever the count (no norm read), and record it at global_step (default: the number
        of step() calls)."""
        step = self.calls if global_step is None else int(global_step)
        t0 = time.perf_counter()
        past = list(self.grad_norms) or None
        d, of_batch = self._diagnose(inputs, loss_fn, targets, past)
        self.history.append(MonitorRecord(step, d, of_batch))
        t1 = time.perf_counter()
        self.seconds["diagnose"] += t1 - t0
        if self.writer is not None:
            self._write(step, d)
            t2 = time.perf_counter()
            self.seconds["write"] += t2 - t1
            if self.figures and (len(self.history) - 1) % self.figure_every == 0:
                self.writer.add_figure(f"{self.tag}/profile", d.plot(), step, close=True)
                self.figures_written += 1
                self.seconds["figure"] += time.perf_counter() - t2
        return d

    def _diagnose(self, inputs, loss_fn, targets, past) -> tuple[Diagnosis, int | None]:
        """diagnose on the first `sequences` sequences (module docstring), or on the whole batch where that does
        not fit (and from then on), saying which in the Diagnosis' notes. Returns (d, B when sampled else None)."""
        def run(i, t):
            return diagnose(self.model, i, loss_fn, targets=t, gradient_history=past, **self.options)

        why = None
        if self.sampling:
            n, dim = self.sequences, self.batch_dim
            B = _batch_size(inputs, dim)
            check = B is not None and B > n and self.modules != () and not self._verified  # a whole model, once
            seen = recurrent_batch(self.model, inputs) if check else B
            if B is None:
                why = f"no input tensor has a batch axis {dim} (batch_dim)"
            elif seen != B:  # checked once, on the first record of a whole model: the axis is the sequences'
                why = (f"the recurrent modules see a batch of {seen}, not the {B} along axis {dim} of the inputs: "
                       f"set batch_dim")
            elif B > n:
                self._verified = True
                try:
                    d = run(_narrow(inputs, dim, B, n), _narrow(targets, dim, B, n, fallback=0))
                except InputError as e:
                    why = f"the narrowed batch was refused: {e}"
                else:
                    if d.batch == n:
                        return dataclasses.replace(d, notes=(*d.notes, f"monitor: the first {n} of {B} sequences "
                                                                       f"(sequences={n}; the loss_fn on them)")), B
                    why = (f"narrowing axis {dim} of the inputs to {n} gave the recurrent modules a batch of "
                           f"{d.batch}, not {n}: set batch_dim")
            else:
                return run(inputs, targets), None  # a batch of at most n: the whole batch, as asked
        d = run(inputs, targets)  # (an error of the whole batch is the user's: raised, nothing changed)
        if why is not None:
            self.sampling, self.sampling_note = False, f"monitor: the whole batch ({why})"
        if self.sampling_note is not None:
            d = dataclasses.replace(d, notes=(*d.notes, self.sampling_note))
        return d, None

    def _write(self, step: int, d: Diagnosis) -> None:
        w, tag = self.writer, self.tag
        w.add_scalar(f"{tag}/loss", d.loss, step)
        if d.gradient_norm is not None and math.isfinite(d.gradient_norm):
            w.add_scalar(f"{tag}/gradient_norm", d.gradient_norm, step)
        c = self.clip_threshold()
        if c is not None:
            w.add_scalar(f"{tag}/clip_threshold", c, step)
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

    def to_dict(self) -> dict:
        return jsonable({"every": self.every, "calls": self.calls, "modules": list(self.modules),
                         "grad_norms": list(self.grad_norms), "grad_norm_steps": list(self.grad_norm_steps),
                         "clip_threshold": self.clip_threshold(), "clip_percentile": CLIP_PERCENTILE,
                         "seconds": dict(self.seconds), "history": [r.to_dict() for r in self.history]})

    def plot(self, path=None):
        """The recorded profiles over training: log10 ||dL/dh_k|| per (layer, direction), one line per record
        coloured by training step, and the gradient norm against the step: the history read from p.grad at
        every step, and diagnose's at the records when computed (plots.plot_monitor)."""
        from ..core.plots import plot_monitor
        if not self.history:
            raise InputError("monitor: expected at least one record to plot, got none (call step() first)")
        return plot_monitor(self.history, path, (list(self.grad_norm_steps), list(self.grad_norms)))
