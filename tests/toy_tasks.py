"""Tiny tasks of the tests' own, following rnnscope.lab.tasks' interface (name, kind, sizes, min_length,
sample, loss, wrong, baseline_loss), so that training runs take fractions of a second.

    Echo       classification: the class at step t is the one-hot symbol input at step t - lag
    Delay      regression: y_t = x_{t - lag}, x ~ N(0, 1)
    NoisyEcho  Echo whose last-step class is replaced, with probability flip, by a class drawn at random
               (from the same generator): no network can be right on all of those sequences, so an error
               rate of about flip (1 - 1/symbols) remains whatever is learned
    Recorder   wraps a task and records the (n, length) of every sample call
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class ToyBatch:
    x: torch.Tensor  # (B, T, D)
    y: torch.Tensor  # (B, T, O) float | (B, T) int64
    mask: torch.Tensor  # (B, T) bool


class Echo:
    """Classification: the class at step t is the one-hot symbol input at step t - lag; the loss at the
    last step (or at every step from lag on)."""

    kind = "classification"

    def __init__(self, name="echo", symbols=2, lag=0, every_step=False):
        self.name, self.symbols, self.lag, self.every_step = name, symbols, lag, every_step
        self.input_size = self.output_size = symbols
        self.min_length = lag + 1

    def sample(self, n, length, gen):
        sym = torch.randint(0, self.symbols, (n, length), generator=gen)
        y = torch.zeros(n, length, dtype=torch.int64)
        y[:, self.lag:] = sym[:, :length - self.lag]
        mask = torch.zeros(n, length, dtype=torch.bool)
        if self.every_step:
            mask[:, self.lag:] = True
        else:
            mask[:, -1] = True
        return ToyBatch(F.one_hot(sym, self.symbols).float(), y, mask)

    def loss(self, out, batch):
        return F.cross_entropy(out[batch.mask], batch.y[batch.mask])

    def wrong(self, out, batch):
        return ((out.argmax(-1) != batch.y) & batch.mask).any(dim=1)

    def baseline_loss(self, length):
        return math.log(self.symbols)


class Delay:
    """Regression: y_t = x_{t - lag} (x ~ N(0, 1)), MSE at the last step or at every step."""

    kind = "regression"
    input_size = output_size = 1

    def __init__(self, name="delay", lag=1, every_step=True):
        self.name, self.lag, self.every_step = name, lag, every_step
        self.min_length = lag + 1

    def sample(self, n, length, gen):
        x = torch.randn(n, length, 1, generator=gen)
        y = torch.zeros(n, length, 1)
        y[:, self.lag:] = x[:, :length - self.lag]
        mask = torch.zeros(n, length, dtype=torch.bool)
        if self.every_step:
            mask[:, self.lag:] = True
        else:
            mask[:, -1] = True
        return ToyBatch(x, y, mask)

    def loss(self, out, batch):
        return ((out[batch.mask] - batch.y.to(out.dtype)[batch.mask]) ** 2).mean()

    def wrong(self, out, batch):
        return ((((out - batch.y.to(out.dtype)) ** 2).sum(-1) > 0.04) & batch.mask).any(dim=1)

    def baseline_loss(self, length):
        return 1.0


class NoisyEcho(Echo):
    def __init__(self, name="noisy", symbols=2, flip=0.004):
        super().__init__(name, symbols)
        self.flip = flip

    def sample(self, n, length, gen):
        b = super().sample(n, length, gen)
        y = b.y.clone()
        flip = torch.rand(n, generator=gen) < self.flip
        y[flip, -1] = torch.randint(0, self.symbols, (int(flip.sum()),), generator=gen)
        return ToyBatch(b.x, y, b.mask)


class Recorder:
    """task's interface, recording every sample call's (n, length) in calls."""

    def __init__(self, task, baseline=None):
        self.task, self.calls, self._baseline = task, [], baseline
        for a in ("name", "kind", "input_size", "output_size", "min_length"):
            setattr(self, a, getattr(task, a))

    def sample(self, n, length, gen):
        self.calls.append((n, length))
        return self.task.sample(n, length, gen)

    def loss(self, out, batch):
        return self.task.loss(out, batch)

    def wrong(self, out, batch):
        return self.task.wrong(out, batch)

    def baseline_loss(self, length):
        return self._baseline(length) if self._baseline else self.task.baseline_loss(length)
