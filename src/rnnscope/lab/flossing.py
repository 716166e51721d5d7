"""Gradient flossing (Engelken 2023, NeurIPS; his code GradientFlossing_ExampleCode.jl): drive the top k Lyapunov
exponents of the network's forward dynamics towards a target (0) by gradient descent on its recurrent module.

    lambda_1..k(theta)   the top k exponents of s_t = F_theta(x_t, s_{t-1}) along the trajectory on task inputs x
                         (T, B, D): the QR method differentiated through every step (gradients.lyapunov_grad)
    loss_floss           = (1 / k) sum_i (lambda_i - target)^2                   (flossing_loss, the code's
                                                                                  mean(abs2.(ls .- lstarget)))

The schedule (`Flossing`, run by fit.fit):

    pre-flossing     `steps` updates of loss_floss before the first training update
    interflossing    every `every` training updates, `inter_steps` more (at most `sessions` times)
                     (pre and inter share one optimizer, AdamW(lr, betas (0.9, 0.999), no weight decay), on the
                     recurrent module's parameters only: W_xh, W_hh and the biases, as the code's (ws, J, b))
    throughout       every training update minimises E + alpha sum_i (lambda_i - target)^2
    measure only     k alone (steps = every = alpha = 0): nothing is flossed; train records the exponents

Each flossing update draws fresh inputs (the caller's `inputs()`: train samples `batch` task sequences, as the
code's one sequence per flossing update) and keeps the first `length` steps; the first `warmup` QR steps are
discarded (None: the code's 10 + ceil(T / 10), at most T // 2). The frame Q_0 is seeded (`seed`): the same
frame at every update.

Example:
    >>> from torch import nn
    >>> rnn = nn.RNN(1, 16, batch_first=True)
    >>> loss, lam = flossing_loss(rnn, torch.randn(1, 60, 1), k=4, warmup=10)
    >>> tuple(lam.shape), bool(loss >= 0)
    ((4,), True)
    >>> Flossing(k=4, steps=100, every=0).phases
    ('pre',)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from ..core.errors import InputError
from ..gradients.lyapunov_grad import lyapunov_exponents
from .networks import as_cell  # the recurrent module as an rnnscope cell (any kind)

__all__ = ["Flossing", "FlossingRun", "flossing_loss", "recurrent_module", "default_warmup"]

BETAS = (0.9, 0.999)  # the code's (b1, b2): Adam's defaults


def recurrent_module(model: nn.Module) -> nn.Module:
    """model.rnn (the lab's SequenceModel), or the model itself when it is a recurrent module (nn.RNN / LSTM / GRU,
    the lab's ElmanRNN / PalRNN, a module with as_cell)."""
    rnn = getattr(model, "rnn", None)
    if isinstance(rnn, nn.Module):
        return rnn
    if isinstance(model, nn.RNNBase) or hasattr(model, "as_cell") or hasattr(model, "weight_hh_l0"):
        return model
    raise InputError(f"model: expected a model with a recurrent module .rnn or a recurrent module, "
                     f"got {type(model).__name__}")


def default_warmup(T: int) -> int:
    """The QR steps discarded: Engelken's code's nStepTransient + nStepTransientONS = 10 + ceil(T / 10), at most T // 2."""
    return min(10 + math.ceil(T / 10), T // 2)


def flossing_loss(model: nn.Module, x: torch.Tensor, *, k: int, target: float = 0.0, warmup: int | None = None,
                  seed: int = 0, reduction: str = "mean", dtype: torch.dtype | None = None, through_states: bool = True):
    """(loss, lambda): lambda (k,) the top k exponents of the model's recurrent module on inputs x (B, T, D) (batch
    first, as the lab's modules; (T, B, D) for a module with batch_first False), from s_0 = 0, differentiable; loss =
    mean_i (lambda_i - target)^2 (reduction "mean", the code's) or sum_i (reduction "sum", the throughout term).
    warmup: QR steps discarded (None: default_warmup(T)); seed: the frame's; dtype: the cell's (None: the module's).
    """
    rnn = recurrent_module(model)
    if reduction not in ("mean", "sum"):
        raise InputError(f"reduction: expected mean or sum, got {reduction!r}")
    if not isinstance(x, torch.Tensor) or x.dim() != 3:
        raise InputError(f"x: expected a tensor (B, T, D), got {getattr(x, 'shape', type(x).__name__)}")
    cell = as_cell(rnn, dtype=dtype, differentiable=True)
    xt = x.transpose(0, 1) if getattr(rnn, "batch_first", True) else x  # (T, B, D)
    T = xt.shape[0]
    lam = lyapunov_exponents(cell, xt.to(cell.dtype), k=k, warmup=default_warmup(T) if warmup is None else warmup,
                             seed=seed, through_states=through_states)  # (k,)
    sq = (lam - target) ** 2
    return (sq.mean() if reduction == "mean" else sq.sum()), lam


def _int(name: str, v, lo: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < lo:
        raise InputError(f"flossing {name}: expected an integer >= {lo}, got {v!r}")
    return v


def _float(name: str, v, positive: bool = False) -> float:
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and (v > 0 if positive else v >= 0)
    if not ok:
        raise InputError(f"flossing {name}: expected a finite number {'> 0' if positive else '>= 0'}, got {v!r}")
    return float(v)


@dataclass(frozen=True)
class Flossing:
    """The flossing schedule (see the module docstring). The code's example (GradientFlossing README): k = 75 of
    N = 80, 50 pre-flossing updates, interflossing every 10 updates, 50 updates, twice; lr 1e-3; T = 55 steps."""

    k: int  # exponents flossed (the top k), 1 <= k <= S
    alpha: float = 0.0  # throughout: E + alpha sum_i (lambda_i - target)^2 at every training update; 0 = off
    steps: int = 0  # pre-flossing updates before the first training update
    every: int = 0  # interflossing period M in training updates; 0 = off
    inter_steps: int | None = None  # updates per interflossing session; None: steps
    sessions: int | None = None  # interflossing sessions at most (the code's Ni); None: no limit
    target: float = 0.0  # the exponents' target (the code's Lwnt)
    lr: float = 1e-3  # the flossing optimizer's (AdamW, no weight decay)
    length: int | None = None  # steps of each flossing trajectory (the inputs' first); None: all of them
    warmup: int | None = None  # QR steps discarded; None: default_warmup(length)
    batch: int = 1  # sequences per flossing update (the code: 1)
    seed: int = 0  # the frame Q_0's
    through_states: bool = True  # differentiate through the trajectory s_t(theta) too (the code: yes)

    def __post_init__(self) -> None:
        _int("k", self.k, 1)
        _float("alpha", self.alpha)
        _int("steps", self.steps, 0)
        _int("every", self.every, 0)
        if self.inter_steps is None:
            object.__setattr__(self, "inter_steps", self.steps)
        _int("inter_steps", self.inter_steps, 0)
        if self.every and not self.inter_steps:
            raise InputError(f"flossing inter_steps: expected an integer >= 1 with every = {self.every} "
                             f"(interflossing), got {self.inter_steps}")
        if self.sessions is not None:
            _int("sessions", self.sessions, 1)
        if not isinstance(self.target, (int, float)) or isinstance(self.target, bool) or not math.isfinite(self.target):
            raise InputError(f"flossing target: expected a finite number, got {self.target!r}")
        _float("lr", self.lr, positive=True)
        if self.length is not None:
            _int("length", self.length, 2)
        if self.warmup is not None:
            _int("warmup", self.warmup, 0)
            if self.length is not None and self.warmup >= self.length:
                raise InputError(f"flossing warmup: expected fewer than length = {self.length} steps, got {self.warmup}")
        _int("batch", self.batch, 1)
        _int("seed", self.seed, 0)

    @property
    def phases(self) -> tuple[str, ...]:
        """The parts switched on: 'pre', 'inter', 'throughout' (none: measure only)."""
        return tuple(p for p, on in (("pre", self.steps > 0), ("inter", self.every > 0),
                                     ("throughout", self.alpha > 0)) if on)

    def to_dict(self) -> dict:
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


class FlossingRun:
    """A Flossing schedule at work on one model (fit.fit drives it): its optimizer, the sessions made, a record of
    every flossing update (step: the training update it follows, 0 for pre-flossing; phase; loss; exponents).

    inputs() -> x (B, T, D): fresh inputs for each flossing update (the first `length` steps are used).
    """

    def __init__(self, flossing: Flossing, model: nn.Module, inputs: Callable[[], torch.Tensor]):
        if not isinstance(flossing, Flossing):
            raise InputError(f"flossing: expected a Flossing, got {type(flossing).__name__}")
        if not callable(inputs):
            raise InputError(f"flossing inputs: expected a function () -> x (B, T, D), got {type(inputs).__name__}")
        self.flossing, self.model, self.inputs = flossing, model, inputs
        self.rnn = recurrent_module(model)
        S = as_cell(self.rnn).state_size
        if flossing.k > S:
            raise InputError(f"flossing k: expected at most the state size S = {S} exponents, got {flossing.k}")
        params = [p for p in self.rnn.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=flossing.lr, betas=BETAS, weight_decay=0.0) if (
            flossing.steps or flossing.every) else None
        self.sessions = 0
        self.records: list[dict] = []
        self.pre_before: list[float] | None = None
        self.pre_after: list[float] | None = None

    def _x(self, x: torch.Tensor | None = None) -> torch.Tensor:
        x = self.inputs() if x is None else x
        n = self.flossing.length
        return x if n is None else x[:, :n]  # (B, T, D) its first `length` steps

    def loss(self, x: torch.Tensor | None = None, reduction: str = "mean"):
        """(loss, lambda) on inputs x (default: fresh ones from inputs())."""
        f = self.flossing
        return flossing_loss(self.model, self._x(x), k=f.k, target=f.target, warmup=f.warmup, seed=f.seed,
                             reduction=reduction, through_states=f.through_states)

    def _safe_loss(self, step: int, phase: str, reduction: str = "mean"):
        """(loss, lambda), or None (recorded, nothing flossed) when the weights or the exponents are not finite: a
        diverging run is the training loop's to report, not the flossing's."""
        try:
            if all(bool(torch.isfinite(p).all()) for p in self.rnn.parameters()):
                loss, lam = self.loss(reduction=reduction)
                if torch.isfinite(loss):
                    return loss, lam
        except InputError:  # a frame that overflowed (R not finite)
            pass
        self.records.append({"step": step, "phase": phase, "loss": math.nan, "exponents": None})
        return None

    def _updates(self, n: int, step: int, phase: str) -> None:
        for _ in range(n):
            self.optimizer.zero_grad(set_to_none=True)
            out = self._safe_loss(step, phase)
            if out is None:
                break
            loss, lam = out
            loss.backward()
            self.optimizer.step()
            self.records.append({"step": step, "phase": phase, "loss": float(loss.detach()), "exponents": lam.detach().tolist()})
        self.optimizer.zero_grad(set_to_none=True)

    def pre(self) -> None:
        """The pre-flossing updates (none when steps = 0), with the exponents before and after them on one probe
        draw of inputs (pre_before, pre_after)."""
        if self.flossing.steps:
            probe = self._x()
            self.pre_before = self.measure(probe)
            self._updates(self.flossing.steps, 0, "pre")
            self.pre_after = self.measure(probe)

    def after_update(self, step: int) -> bool:
        """Interflossing after training update `step` when it is due; True when it ran."""
        f = self.flossing
        if not f.every or step % f.every or (f.sessions is not None and self.sessions >= f.sessions):
            return False
        self.sessions += 1
        self._updates(f.inter_steps, step, "inter")
        return True

    def penalty(self, step: int) -> torch.Tensor | None:
        """alpha sum_i (lambda_i - target)^2 on fresh inputs, to add to training update `step`'s loss (None: off)."""
        if not self.flossing.alpha:
            return None
        out = self._safe_loss(step, "throughout", "sum")
        if out is None:
            return None
        loss, lam = out
        self.records.append({"step": step, "phase": "throughout", "loss": float(loss.detach()), "exponents": lam.detach().tolist()})
        return self.flossing.alpha * loss

    @torch.no_grad()
    def measure(self, x: torch.Tensor) -> list[float]:
        """The top k exponents on inputs x (B, T, D) now (no graph), as floats."""
        return self.loss(x)[1].tolist()

    def summary(self) -> dict:
        """pre_before / pre_after: the exponents before and after pre-flossing on one probe input (None without);
        updates: flossing updates made (pre + inter); sessions: interflossing sessions."""
        return {"k": self.flossing.k, "phases": list(self.flossing.phases), "pre_before": self.pre_before,
                "pre_after": self.pre_after, "updates": sum(r["phase"] != "throughout" for r in self.records),
                "sessions": self.sessions}
