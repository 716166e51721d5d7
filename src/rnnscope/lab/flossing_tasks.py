"""The tasks of Engelken 2023 ("Gradient flossing", NeurIPS; his code GradientFlossing_XOR.jl): delayed XOR and
delayed copy of a stream of random bits, with the delay d as the nominal length L (the paper varies the delay).

One input channel, a fair bit x_t in {0, 1} (times `scale`, the code's sigma) at every step t = 1..T'; one output,
a logit z_t, scored by binary cross-entropy from the first step whose target exists:

    delayed-xor    y_t = x_{t-d} XOR x_{t-2d}                     scored t = 2d + 1 .. T'
                   (order h: the parity of the 2^h bits x_{t-d}, x_{t-2d}, ..., x_{t-2^h d}; h = 1 is XOR: the
                   code's recabs over s[i-d : -d : i - 2^h d], task = +-h)
    delayed-copy   y_t = x_{t-d}                                   scored t = d + 1 .. T'   (the code's task = 0)

    loss = mean over the scored steps and sequences of  softplus(z_t) - y_t z_t        (BCE on logits, nats)

T' = `steps` (the code's T, 300 in its example), the same for every delay, as the code: it asserts T > 2^h d
(here: an InputError when the delay leaves no scored step). The code generates T + d bits and drops the first d,
so its target at the first scored step (t = 2^h d for XOR, d for copy, its `firstlossidx`) depends on a bit the
network never sees; here the scored steps start one later, at the first step whose target the inputs determine.

Baseline ln 2 per step: the target is a parity of fair bits at least d >= 1 steps back, independent of x_t and of
the step index, so P(y_t = 1 | anything a memoryless predictor sees) = 1/2; BCE is minimised by z = 0, giving
ln 2 = 0.6931 per scored step (error rate 1/2 per step), whatever d and T'.

Success: a sequence is wrong when more than `max_wrong` of its scored steps are wrong, the step's prediction being
z_t > 0 (sigmoid(z) > 1/2; the code's accuracy counts sigmoid(z) >= 1/2 as 1). The default max_wrong = 0 (any
wrong step fails the sequence) is rnnscope's, like its other tasks; the paper reports the per-step accuracy
(1 - max_wrong is that accuracy per sequence).

Legend: B batch, T' steps; x (B, T', 1) float32, y (B, T', 1) float32 0 / 1 (0 outside the mask), mask (B, T').

Example:
    >>> task = DelayedXOR(steps=12)
    >>> b = task.sample(1, 3, torch.Generator().manual_seed(0))
    >>> x, y = b.x[0, :, 0].long().tolist(), b.y[0, :, 0].long().tolist()
    >>> all(y[t] == x[t - 3] ^ x[t - 6] for t in range(6, 12)), b.mask[0].long().tolist()
    (True, [0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
    >>> round(task.baseline_loss(3), 4)
    0.6931
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as Fn

from ..core.errors import InputError
from .task_base import Batch, Task, check_int

__all__ = ["DelayedXOR", "DelayedCopy", "BitStreamTask"]


@dataclass(frozen=True)
class BitStreamTask(Task):
    """The shared part of delayed XOR and delayed copy (see the module docstring): a stream of fair bits, a parity of
    2^order of them `delay` steps apart as the target, BCE on one logit per step."""

    steps: int = 300  # T', the code's T
    scale: float = 1.0  # the input's amplitude (the code's sigma, I1 = 1 in its example)
    max_wrong: float = 0.0  # a sequence is wrong when more than this fraction of its scored steps is wrong

    KIND: ClassVar[str] = "classification"  # binary: one logit, y 0 / 1 as floats (B, T', 1)
    MIN_LENGTH: ClassVar[int] = 1
    ORDER: ClassVar[int] = 1  # the target is the parity of 2^ORDER bits (DelayedXOR: its field order); 0: the copy

    def __post_init__(self) -> None:
        check_int(f"{self.name} steps", self.steps, 2)
        ok = lambda v, lo, hi: isinstance(v, (int, float)) and not isinstance(v, bool) and lo <= v <= hi  # noqa: E731
        if not ok(self.scale, 0.0, math.inf) or self.scale == 0 or not math.isfinite(self.scale):
            raise InputError(f"{self.name} scale: expected a positive finite number, got {self.scale!r}")
        if not ok(self.max_wrong, 0.0, 1.0) or self.max_wrong == 1.0:
            raise InputError(f"{self.name} max_wrong: expected a fraction in [0, 1), got {self.max_wrong!r}")

    @property
    def input_size(self) -> int:
        return 1

    @property
    def output_size(self) -> int:
        return 1

    @property
    def n_bits(self) -> int:
        """The bits a target is the parity of: 2^order (1 for the copy)."""
        return 2 ** self.ORDER

    def reach(self, delay: int) -> int:
        """n_bits d: how far back the oldest bit of a target lies (d for the copy)."""
        return self.n_bits * delay

    def _check_length(self, length: object) -> int:
        d = check_int(f"{self.name} delay", length, self.min_length)
        if self.reach(d) >= self.steps:
            raise InputError(f"{self.name} delay: expected {self.n_bits} d < T' = {self.steps} steps (at least one "
                             f"scored step), got d = {d}")
        return d

    def actual_length(self, length: int, gen: torch.Generator) -> int:
        """T' = steps, for every delay (no draw)."""
        self._check_length(length)
        return self.steps

    def _make(self, n: int, L: int, T: int, gen: torch.Generator) -> Batch:
        bits = torch.randint(0, 2, (n, T), generator=gen)  # (B, T') x_1..x_T'
        first = self.reach(L)  # 0-based index of the first scored step: t = 2^h d + 1
        y = torch.zeros(n, T, dtype=torch.int64)
        for j in range(1, self.n_bits + 1):  # the parity of x_{t - j d}, j = 1..2^h
            y[:, first:] ^= bits[:, first - j * L:T - j * L]
        mask = torch.zeros(n, T, dtype=torch.bool)
        mask[:, first:] = True
        x = (bits.to(torch.float32) * self.scale).unsqueeze(-1)  # (B, T', 1)
        return Batch(x, y.to(torch.float32).unsqueeze(-1), mask)

    def loss(self, out: torch.Tensor, batch: Batch) -> torch.Tensor:
        """Binary cross-entropy of the logits out (B, T', 1) over the scored steps (mean), in nats."""
        out = self._check_out(out, batch)
        m = batch.mask.to(out.device)
        return Fn.binary_cross_entropy_with_logits(out[m], batch.y.to(out.device, out.dtype)[m])  # (N, 1) -> scalar

    def _step_wrong(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (out[..., 0] > 0) != (y[..., 0] > 0.5)  # (B, T')

    def wrong(self, out: torch.Tensor, batch: Batch) -> torch.Tensor:
        """(B,) bool: more than max_wrong of the sequence's scored steps wrong (a non-finite output is wrong)."""
        out = self._check_out(out, batch).detach()
        bad = self._step_wrong(out, batch.y.to(out.device)) | ~torch.isfinite(out).all(-1)  # (B, T')
        m = batch.mask.to(out.device)
        frac = (bad & m).sum(1).double() / m.sum(1).clamp(min=1).double()  # (B,)
        return frac > self.max_wrong

    def baseline_loss(self, length: int) -> float:
        self._check_length(length)
        return math.log(2.0)


@dataclass(frozen=True)
class DelayedXOR(BitStreamTask):
    """Delayed XOR (Engelken 2023, Fig. 4; his code's task = +-1): y_t = x_{t-d} XOR x_{t-2d}; `order` h > 1 gives
    the parity of 2^h bits (the code's task = +-h). See the module docstring."""

    order: int = 1

    NAME: ClassVar[str] = "delayed-xor"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int("delayed-xor order", self.order, 1)

    @property
    def n_bits(self) -> int:
        return 2 ** self.order


@dataclass(frozen=True)
class DelayedCopy(BitStreamTask):
    """Delayed copy (Engelken 2023; his code's task = 0): y_t = x_{t-d}, scored from t = d + 1. See the module
    docstring."""

    NAME: ClassVar[str] = "delayed-copy"
    ORDER: ClassVar[int] = 0
