"""The base of the long-memory tasks: the Batch they make and the Task interface that judges outputs.

A task makes a `Batch` of B sequences of T' steps, batch first (legend: B batch, T' steps, D inputs, O outputs):

    x     (B, T', D) float32   inputs
    y     (B, T', O) float32   regression targets, or (B, T') int64 class indices
    mask  (B, T')    bool      the steps where the loss applies; y is 0 outside the mask

and knows its loss, its success criterion (`wrong`, per sequence) and its memoryless baseline. L is the
nominal length passed to `sample`; T' = `actual_length(L, gen)` is the batch's number of steps (L, L plus a
drawn extra, or L plus a fixed layout).

Sampled lengths (Pascanu et al. 2013's code, trainingRNNs/RNN.py, draws one nominal length per batch,
`min_length + rng.randint(max_length - min_length)`, for training and for evaluation alike):

    L ~ U{MIN, ..., MAX}     `draw_length((MIN, MAX), gen)`, both ends included; no draw when MIN = MAX

so his (min_length, max_length) = (50, 200) is length_range (50, 199) here. The memoryless baseline of a
batch whose L is drawn this way is the mean of baseline_loss(L) over the range (`range_baseline_loss`).

Randomness comes only from the torch.Generator passed in: the same generator state gives the same batch.
Batches are made on the CPU; move one with `batch.to(device)`.

Example:
    >>> g = torch.Generator().manual_seed(0)
    >>> lengths = [draw_length((3, 5), g) for _ in range(200)]
    >>> sorted(set(lengths)), draw_length((7, 7), g)
    ([3, 4, 5], 7)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as Fn

from ..core.errors import InputError

__all__ = ["Batch", "Task", "KINDS", "check_length_range", "draw_length", "range_baseline_loss"]

KINDS = ("regression", "classification")


@dataclass(frozen=True, eq=False)
class Batch:
    """One batch of a task: inputs, targets and the mask of the steps that count.

    x:    (B, T, D) float32 inputs (batch first)
    y:    (B, T, O) float32 for regression; (B, T) int64 class indices for classification; 0 outside mask
    mask: (B, T) bool, the steps where the loss applies, and the success criterion too (except copy, whose
          loss covers every step and whose criterion only the last 10: see Copy)
    """

    x: torch.Tensor  # (B, T, D)
    y: torch.Tensor  # (B, T, O) float32 | (B, T) int64
    mask: torch.Tensor  # (B, T) bool

    def __post_init__(self) -> None:
        for name in ("x", "y", "mask"):
            if not isinstance(getattr(self, name), torch.Tensor):
                raise InputError(f"batch {name}: expected a torch.Tensor, got {type(getattr(self, name)).__name__}")
        if self.x.dim() != 3:
            raise InputError(f"batch x: expected shape (B, T, D), got {tuple(self.x.shape)}")
        B, T = self.x.shape[:2]
        if tuple(self.mask.shape) != (B, T) or self.mask.dtype != torch.bool:
            raise InputError(f"batch mask: expected a bool tensor of shape {(B, T)}, "
                             f"got {self.mask.dtype} {tuple(self.mask.shape)}")
        if tuple(self.y.shape[:2]) != (B, T) or self.y.dim() not in (2, 3):
            raise InputError(f"batch y: expected shape ({B}, {T}) or ({B}, {T}, O), got {tuple(self.y.shape)}")

    @property
    def n(self) -> int:
        """B, the number of sequences."""
        return self.x.shape[0]

    @property
    def length(self) -> int:
        """T, the number of steps."""
        return self.x.shape[1]

    def to(self, device: torch.device | str) -> "Batch":
        """The same batch on another device."""
        return Batch(self.x.to(device), self.y.to(device), self.mask.to(device))

    def save(self, path: str | Path) -> None:
        """Write x, y and mask to an .npz file (numpy.savez; numpy adds .npz when the name lacks it)."""
        np.savez(path, x=self.x.detach().cpu().numpy(), y=self.y.detach().cpu().numpy(),
                 mask=self.mask.detach().cpu().numpy())


# ----------------------------------------------------------------------------------------------------------
# validation helpers

def check_int(what: str, value: object, lo: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
        raise InputError(f"{what}: expected an integer >= {lo}, got {value!r}")
    return int(value)


def check_generator(gen: object) -> torch.Generator:
    if not isinstance(gen, torch.Generator):
        raise InputError(f"gen: expected a torch.Generator (torch.Generator().manual_seed(seed)), "
                         f"got {type(gen).__name__}")
    if gen.device.type != "cpu":
        raise InputError(f"gen: expected a CPU generator (batches are made on the CPU), got device {gen.device}")
    return gen


def row_index(n: int) -> torch.Tensor:
    return torch.arange(n)


# ----------------------------------------------------------------------------------------------------------
# the base class

@dataclass(frozen=True)
class Task:
    """A long-memory task: `sample` makes batches; `loss`, `wrong` and `baseline_loss` judge outputs.

    Subclasses set the class attributes below (or override the properties) and implement `_make`.
    """

    NAME: ClassVar[str] = ""
    KIND: ClassVar[str] = "regression"
    MIN_LENGTH: ClassVar[int] = 1  # the smallest nominal length L whose layout holds

    # -- description ---------------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.NAME

    @property
    def kind(self) -> str:
        """'regression' (MSE) or 'classification' (cross-entropy on logits)."""
        return self.KIND

    @property
    def min_length(self) -> int:
        """The smallest nominal length L this task accepts (the layout needs it; see the class docstring)."""
        return self.MIN_LENGTH

    @property
    def input_size(self) -> int:
        """D."""
        raise NotImplementedError

    @property
    def output_size(self) -> int:
        """O."""
        raise NotImplementedError

    def to_dict(self) -> dict:
        """Name, kind, sizes, minimal length and the task's own parameters."""
        return {"name": self.name, "kind": self.kind, "input_size": self.input_size,
                "output_size": self.output_size, "min_length": self.min_length,
                **{f.name: getattr(self, f.name) for f in fields(self)}}

    # -- sampling ------------------------------------------------------------------------------------------
    def _check_length(self, length: object) -> int:
        return check_int(f"{self.name} length", length, self.min_length)

    def actual_length(self, length: int, gen: torch.Generator) -> int:
        """T', the number of steps of a batch of nominal length L.

        Fixed-length tasks return it without touching gen; variable-length tasks draw it from gen, once per
        batch, so all sequences of a batch share it.
        """
        return self._check_length(length)

    def sample(self, n: int, length: int, gen: torch.Generator) -> Batch:
        """A batch of n sequences of nominal length L, drawn from gen.

        x (n, T', D) float32; y (n, T', O) float32 or (n, T') int64; mask (n, T') bool.
        """
        n = check_int(f"{self.name} n", n, 1)
        gen = check_generator(gen)
        length = self._check_length(length)
        T = self.actual_length(length, gen)
        return self._make(n, length, T, gen)

    def _make(self, n: int, L: int, T: int, gen: torch.Generator) -> Batch:
        raise NotImplementedError

    # -- judging -------------------------------------------------------------------------------------------
    def _check_out(self, out: object, batch: Batch) -> torch.Tensor:
        if not isinstance(batch, Batch):
            raise InputError(f"batch: expected a Batch, got {type(batch).__name__}")
        want = (batch.n, batch.length, self.output_size)
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != want or not out.is_floating_point():
            got = f"{out.dtype} {tuple(out.shape)}" if isinstance(out, torch.Tensor) else type(out).__name__
            raise InputError(f"{self.name} outputs: expected a float tensor of shape (B, T, O) = {want}, got {got}")
        return out

    def loss(self, out: torch.Tensor, batch: Batch) -> torch.Tensor:
        """The task's loss of raw outputs out (B, T, O) (logits for classification), a scalar.

        regression:      mean over the masked steps and the O outputs of (out - y)^2
        classification:  mean over the masked steps of -log softmax(out)[y]
        """
        out = self._check_out(out, batch)
        m = batch.mask.to(out.device)
        if self.kind == "regression":
            return ((out[m] - batch.y.to(out.device, out.dtype)[m]) ** 2).mean()  # (N, O) -> scalar
        return Fn.cross_entropy(out[m], batch.y.to(out.device)[m])  # (N, O), (N,) -> scalar

    def _step_wrong(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """(B, T) bool: the step's output fails the criterion (classification: argmax != y)."""
        return out.argmax(-1) != y

    def _judged(self, batch: Batch) -> torch.Tensor:
        """(B, T) bool: the steps the success criterion looks at (the mask, unless a task says otherwise)."""
        return batch.mask

    def wrong(self, out: torch.Tensor, batch: Batch) -> torch.Tensor:
        """(B,) bool: the sequence fails the task's success criterion at one of the steps it judges.

        classification: argmax(out) != y; regression: the task's threshold (see its docstring).
        A step whose outputs are not all finite (NaN, Inf) counts as wrong.
        """
        out = self._check_out(out, batch).detach()
        y = batch.y.to(out.device)
        if self.kind == "regression":
            y = y.to(out.dtype)
        bad = self._step_wrong(out, y) | ~torch.isfinite(out).all(-1)  # (B, T)
        return (bad & self._judged(batch).to(out.device)).any(dim=1)

    def baseline_loss(self, length: int) -> float:
        """The loss of the best predictor that remembers nothing of the input (see the class docstring)."""
        raise NotImplementedError


# ----------------------------------------------------------------------------------------------------------
# sampled lengths

def check_length_range(value: object, lo: int = 1, what: str = "length_range") -> tuple[int, int]:
    """(MIN, MAX) as two integers with lo <= MIN <= MAX (a tuple or list of two, e.g. from TOML or JSON)."""
    ok = isinstance(value, (tuple, list)) and len(value) == 2 and all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value)
    if not ok or not lo <= value[0] <= value[1]:
        raise InputError(f"{what}: expected (MIN, MAX), integers with {lo} <= MIN <= MAX, got {value!r}")
    return int(value[0]), int(value[1])


def draw_length(length_range: tuple[int, int], gen: torch.Generator) -> int:
    """A nominal length L ~ U{MIN, ..., MAX} (both ends included), one draw from gen; MIN when MIN = MAX
    (no draw, as Pascanu's code uses min_length then)."""
    lo, hi = check_length_range(length_range)
    if lo == hi:
        return lo
    return lo + int(torch.randint(0, hi - lo + 1, (), generator=check_generator(gen)))


def range_baseline_loss(task, length_range: tuple[int, int]) -> float:
    """The memoryless baseline when L ~ U{MIN..MAX} per batch: (1 / (MAX - MIN + 1)) sum_L baseline_loss(L),
    the expected loss of that predictor on batches of drawn lengths, each batch's loss its own mean
    (task: anything with baseline_loss(L)).

    Example:
        >>> from rnnscope.lab.tasks import get_task
        >>> copy = get_task("copy")
        >>> range_baseline_loss(copy, (10, 11)) == (copy.baseline_loss(10) + copy.baseline_loss(11)) / 2
        True
    """
    lo, hi = check_length_range(length_range)
    return math.fsum(float(task.baseline_loss(L)) for L in range(lo, hi + 1)) / (hi - lo + 1)

