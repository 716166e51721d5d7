"""The training loop: any torch model on any batches, with Pascanu et al. 2013's remedies, recording the
gradient norms (the step of their code, trainingRNNs/RNN.py):

    E      = loss_fn(model, batch)               NaN or Inf: the run ends, status "diverged" (no update)
    g      = dE/dtheta                           loss.backward()
    g_hh  += alpha dOmega/dW_hh                  the regularizer (remedies.PascanuRegularizer), alpha > 0
    g      = clip(g)                             norm | value | adaptive (remedies); ||g|| before clipping is
                                                 recorded, and whether it fired; norm and adaptive clipping
                                                 include Pascanu's NaN/Inf fallback (dE/dW_hh <- 0.02 W_hh)
    theta  = optimizer.step(theta, g)

with gradient flossing (flossing.py; Engelken 2023), a Flossing schedule adds: its `steps` pre-flossing updates
of (1/k) sum_i (lambda_i - target)^2 before the first step (its own AdamW on the recurrent module), E + alpha
sum_i (lambda_i - target)^2 as the loss of every step (alpha > 0), and `inter_steps` flossing updates after every
`every`-th step (interflossing). The records (and the exponents before / after pre-flossing) are
FitHistory.flossing.

`fit` knows nothing of tasks or evaluation: the caller's on_eval(step, stats) evaluates every eval_every
updates and may ask to stop (train.train uses it for the success criterion and the snapshots).

Example:
    >>> rnn = nn.RNN(1, 4, batch_first=True); head = nn.Linear(4, 1); model = nn.ModuleDict({"rnn": rnn, "head": head})
    >>> data = [(torch.ones(2, 3, 1), torch.zeros(2, 1))] * 5
    >>> def loss_fn(m, b):
    ...     return ((m["head"](m["rnn"](b[0])[0][:, -1]) - b[1]) ** 2).mean()
    >>> h = fit(model, data, loss_fn, steps=10, optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
    >>> h.status, h.steps, len(h.losses)           # the five batches ran out
    ('finished', 5, 5)
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F  # noqa: F401  (the examples use it)
from torch import nn

from ..core.errors import InputError
from ..core.results import jsonable
from .flossing import Flossing, FlossingRun
from .networks import ElmanRNN, PalRNN
from .remedies import (AdaptiveClipState, PascanuRegularizer, clip_grad_adaptive, clip_grad_norm, clip_grad_value,
                       grad_norm)

__all__ = ["FitHistory", "fit"]


def is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def is_number(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


@dataclass(frozen=True)
class FitHistory:
    """What `fit` saw, step by step and at each evaluation.

    status: "finished" (steps done or the batches ran out), "stopped" (a callback asked) or "diverged" (a
    NaN or Inf loss; that step made no update). steps: updates made. losses: every step's loss (the
    diverged one included); grad_norms, clipped, fallbacks, omegas: per update (omegas empty without the
    regularizer). evals: one dict per evaluation (fit's window statistics merged with on_eval's dict).
    flossing: with a flossing schedule, FlossingRun.summary() (k, phases, pre_before, pre_after, updates,
    sessions) and records (one dict per flossing update or throughout term: step, phase, loss, exponents).
    """

    status: str
    steps: int
    losses: list = field(default_factory=list)
    grad_norms: list = field(default_factory=list)
    clipped: list = field(default_factory=list)
    fallbacks: list = field(default_factory=list)
    omegas: list = field(default_factory=list)
    evals: list = field(default_factory=list)
    seconds: float = 0.0
    flossing: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return jsonable(dataclasses.asdict(self))


def _find_recurrent_weight(model: nn.Module) -> torch.Tensor | None:
    found = [p for n, p in model.named_parameters() if n == "weight_hh_l0" or n.endswith(".weight_hh_l0")]
    return found[0] if len(found) == 1 else None


def _find_vanilla(model: nn.Module) -> nn.Module:
    found = [m for m in model.modules() if isinstance(m, (nn.RNN, ElmanRNN, PalRNN))]
    if len(found) != 1:
        raise InputError(f"regularizer: expected a model with exactly one nn.RNN, ElmanRNN or PalRNN, got {len(found)}; "
                         f"pass PascanuRegularizer(module, alpha)")
    return found[0]


def _check_optional_positive(name: str, v) -> float | None:
    if v is None or (is_number(v) and v == 0):
        return None
    if not is_number(v) or not math.isfinite(v) or v < 0:
        raise InputError(f"{name}: expected a positive number or None, got {v!r}")
    return float(v)


def fit(model: nn.Module, batches: Iterable, loss_fn: Callable, *, steps: int, optimizer: torch.optim.Optimizer,
        clip_norm: float | None = None, clip_value: float | None = None, clip_adaptive: float | None = None,
        regularizer: PascanuRegularizer | float | None = None, monitor: Callable | None = None,
        on_eval: Callable | None = None, eval_every: int = 100,
        recurrent_weight: torch.Tensor | None = None, flossing: Flossing | FlossingRun | None = None,
        flossing_inputs: Callable | None = None) -> FitHistory:
    """Train any torch model on any batches with the remedies, recording the gradient norms.

    Each step: E = loss_fn(model, batch) (NaN or Inf: stop, status "diverged"), backward, the regularizer
    (adds alpha dOmega/dW_hh), clipping (at most one of clip_norm, clip_value, clip_adaptive = factor with
    remedies.AdaptiveClipState's EMA), optimizer.step(). Norm and adaptive clipping use Pascanu's NaN/Inf
    fallback on recurrent_weight (default: the model's one parameter named weight_hh_l0, if any).

    batches   any iterable; fit stops early when it runs out
    loss_fn   loss_fn(model, batch) -> scalar tensor
    regularizer  a remedies.PascanuRegularizer, or alpha (a number) for the model's one nn.RNN/ElmanRNN/PalRNN
    monitor   monitor(record) every step, record = {step, loss, grad_norm, clipped, fallback, omega, threshold};
              return True to stop
    on_eval   on_eval(step, stats) every eval_every updates and after the last one; stats = {step, train_loss
              (mean since the last evaluation), grad_norm (the last, before clipping), clipped and fallbacks
              (counts since the last evaluation), omega (mean since the last evaluation or None), seconds};
              return a dict to record with them (with "stop": True to stop) or None
    flossing  a flossing.Flossing schedule (or a FlossingRun) for the model's recurrent module (model.rnn);
              flossing_inputs() -> x (B, T, D): fresh inputs per flossing update (default: the inputs of the
              current training batch, batch.x or batch[0]; the first batch's for pre-flossing)

    Example:
        >>> rnn = nn.RNN(1, 16, batch_first=True); head = nn.Linear(16, 1)
        >>> model = nn.ModuleDict({"rnn": rnn, "head": head})
        >>> data = [(torch.randn(8, 30, 1), torch.randn(8, 1)) for _ in range(50)]
        >>> def loss_fn(m, b):
        ...     out, _ = m["rnn"](b[0]); return F.mse_loss(m["head"](out[:, -1]), b[1])
        >>> hist = fit(model, data, loss_fn, steps=50, optimizer=torch.optim.SGD(model.parameters(), lr=0.01),
        ...            clip_norm=1.0, regularizer=2.0, eval_every=25, on_eval=lambda step, stats: None)
        >>> hist.status, hist.steps, len(hist.grad_norms), len(hist.evals)
        ('finished', 50, 50, 2)
    """
    if not is_int(steps) or steps < 1:
        raise InputError(f"steps: expected an integer >= 1, got {steps!r}")
    if not is_int(eval_every) or eval_every < 1:
        raise InputError(f"eval_every: expected an integer >= 1, got {eval_every!r}")
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise InputError(f"optimizer: expected a torch.optim.Optimizer, got {type(optimizer).__name__}")
    if not callable(loss_fn):
        raise InputError(f"loss_fn: expected a function (model, batch) -> loss, got {type(loss_fn).__name__}")
    clips = {"clip_norm": _check_optional_positive("clip_norm", clip_norm),
             "clip_value": _check_optional_positive("clip_value", clip_value),
             "clip_adaptive": _check_optional_positive("clip_adaptive", clip_adaptive)}
    on = [k for k, v in clips.items() if v is not None]
    if len(on) > 1:
        raise InputError(f"clipping: expected at most one of clip_norm, clip_value, clip_adaptive, got {', '.join(on)}")
    params = [p for p in model.parameters() if p.requires_grad]
    own_reg = False
    if regularizer is not None and not isinstance(regularizer, PascanuRegularizer):
        if not is_number(regularizer):
            raise InputError(f"regularizer: expected a PascanuRegularizer or alpha (a number), got {type(regularizer).__name__}")
        regularizer = PascanuRegularizer(_find_vanilla(model), float(regularizer)) if regularizer > 0 else None
        own_reg = regularizer is not None
    W_hh = recurrent_weight
    if W_hh is None and (clips["clip_norm"] or clips["clip_adaptive"]):
        W_hh = regularizer.rnn.weight_hh_l0 if regularizer is not None else _find_recurrent_weight(model)
    if W_hh is not None and not any(p is W_hh for p in params):
        raise InputError("recurrent_weight: expected one of the model's trainable parameters")
    adaptive = AdaptiveClipState() if clips["clip_adaptive"] else None

    t0 = time.perf_counter()
    losses, norms, clipped, fallbacks, omegas, evals = [], [], [], [], [], []
    status, done, last_eval = "finished", 0, 0
    it = iter(batches)
    current: list = [None]  # the batch of the step, for flossing without inputs of its own
    floss = None
    if flossing is not None:
        if isinstance(flossing, FlossingRun):
            floss = flossing
        else:
            floss = FlossingRun(flossing, model, flossing_inputs or (lambda: _batch_inputs(current[0])))
        if flossing_inputs is None and not isinstance(flossing, FlossingRun):
            try:
                current[0] = next(it)
                it = itertools.chain([current[0]], it)
            except StopIteration:
                pass
        floss.pre()

    def evaluate(step: int) -> bool:
        """Run on_eval; True when it asks to stop."""
        nonlocal last_eval
        lo, last_eval = last_eval, step
        window = losses[lo:step]
        stats = {"step": step, "train_loss": sum(window) / len(window) if window else math.nan,
                 "grad_norm": norms[step - 1], "clipped": sum(clipped[lo:step]),
                 "fallbacks": sum(fallbacks[lo:step]),
                 "omega": (sum(omegas[lo:step]) / (step - lo)) if omegas else None,
                 "seconds": time.perf_counter() - t0}
        extra = on_eval(step, stats)
        stop = False
        if extra is not None:
            if not isinstance(extra, dict):
                raise InputError(f"on_eval: expected it to return a dict or None, got {type(extra).__name__}")
            extra = dict(extra)
            stop = bool(extra.pop("stop", False))
            stats.update(extra)
        evals.append(stats)
        return stop

    try:
        for step in range(1, steps + 1):
            try:
                batch = next(it)
            except StopIteration:
                break
            current[0] = batch
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model, batch)
            value = loss.detach().item()
            losses.append(value)
            if not math.isfinite(value):
                status = "diverged"
                break
            penalty = floss.penalty(step) if floss is not None else None
            if penalty is not None:
                loss = loss + penalty  # E + alpha sum_i (lambda_i - target)^2
            loss.backward()
            omega = regularizer.apply() if regularizer is not None else None
            if clips["clip_norm"]:
                res = clip_grad_norm(params, clips["clip_norm"], W_hh=W_hh)
            elif clips["clip_value"]:
                res = clip_grad_value(params, clips["clip_value"])
            elif adaptive is not None:
                res = clip_grad_adaptive(params, adaptive, clips["clip_adaptive"], W_hh=W_hh)
            else:
                res = None
            norm = res.norm if res is not None else grad_norm(params)
            optimizer.step()
            done = step
            if floss is not None:
                floss.after_update(step)  # interflossing when due
            norms.append(norm)
            clipped.append(res is not None and res.clipped)
            fallbacks.append(res is not None and res.fallback)
            if omega is not None:
                omegas.append(omega)
            if monitor is not None and monitor({"step": step, "loss": value, "grad_norm": norm,
                                                "clipped": clipped[-1], "fallback": fallbacks[-1], "omega": omega,
                                                "threshold": res.threshold if res is not None else math.inf}):
                status = "stopped"
                break
            if on_eval is not None and step % eval_every == 0 and evaluate(step):
                status = "stopped"
                break
        if on_eval is not None and status != "diverged" and done > last_eval:
            if evaluate(done):
                status = "stopped"
    finally:
        if own_reg:
            regularizer.remove()
    fl = {**floss.summary(), "records": floss.records} if floss is not None else {}
    return FitHistory(status, done, losses, norms, clipped, fallbacks, omegas, evals, time.perf_counter() - t0, fl)


def _batch_inputs(batch) -> torch.Tensor:
    """The inputs x (B, T, D) of a batch: batch.x (a task Batch) or batch[0] (a tuple)."""
    x = getattr(batch, "x", None)
    if x is None and isinstance(batch, (tuple, list)) and batch:
        x = batch[0]
    if not isinstance(x, torch.Tensor):
        raise InputError(f"flossing_inputs: expected a function () -> x, or batches with inputs (batch.x or batch[0]), "
                         f"got {type(batch).__name__}")
    return x
