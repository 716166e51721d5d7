"""The regression tasks (MSE at the last step): the adding problem in three variants, and multiplication.

Every task here makes x (B, T', 2): a value channel and a marker channel (which is which follows each source),
y (B, T', 1) with the target at the last step only, and mask (B, T') true at that step alone. The target
combines the two marked values; a sequence is wrong when its last output misses the target by the task's
tolerance. Each class docstring gives the source's definition, rnnscope's choices where the source leaves
room, and the derivation of its memoryless baseline (the MSE of predicting the target's mean):

    adding-hs97      Hochreiter & Schmidhuber 1997, Exp. 4   T' = L + U{0..L//10}     baseline (19 - 9/m)/480
    adding-pascanu   Pascanu et al. 2013, code (addition.py)  T' = L + U{0..L//10 - 1}  baseline 1/24
    adding-le        Le et al. 2015, Arjovsky et al. 2016     T' = L                   baseline 1/6
    multiplication   Pascanu et al. 2013, code                T' = L + U{0..L//10 - 1}  baseline 7/144

Fractions of a length are floors in exact integer arithmetic: floor(0.1 L) is L // 10, floor(0.4 L) is
4 L // 10. Pascanu's code writes int(L * .1); the two agree for every L below 200,000 (checked).

Example:
    >>> task = AddingLe()
    >>> batch = task.sample(4, 50, torch.Generator().manual_seed(0))
    >>> tuple(batch.x.shape), tuple(batch.y.shape), int(batch.mask.sum()), round(task.baseline_loss(50), 4)
    ((4, 50, 2), (4, 50, 1), 4, 0.1667)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from .task_base import Batch, Task, check_generator, row_index

__all__ = ["AddingHS97", "AddingPascanu", "AddingLe", "Multiplication"]


@dataclass(frozen=True)
class AddingHS97(Task):
    """Adding problem, Hochreiter & Schmidhuber 1997 ("Long short-term memory", Experiment 4).

    Definition (paper): each step is a pair (value ~ U[-1, 1], marker in {1, 0, -1}), here x[..., 0] the
    value and x[..., 1] the marker. Lengths are uniform in [L, L + L/10]. One of the first 10 pairs is marked
    (its value is X1); then one of the first L/2 - 1 still-unmarked pairs is marked (X2). All other markers
    are 0 except the first and the last pair's, which are -1 (unless marked). If the first pair is marked,
    its value is set to 0. Target 0.5 + (X1 + X2)/4 at the last step only; a sequence is correct if the
    absolute error there is below 0.04, so `wrong` is |out - y| >= 0.04.

    Choices made here:
    - T' = L + U{0, ..., L // 10} is drawn once per batch: all sequences of a batch share it (the paper draws
      one length per sequence; per batch keeps a batch rectangular, with the same distribution of lengths).
    - "L/2 - 1" is m = L // 2 - 1 with the nominal L. X2's pair is the k-th unmarked pair, k ~ U{0..m-1}.
    - The paper says "X1 = 0" when the first pair is marked; X2's pair can also be the first one (when X1's
      is not), and it is zeroed too, so the target is always 0.5 + (sum of the marked values in x)/4.
      Values are drawn from [-1, 1) (torch.rand).
    - Minimal L = 11: the last pair must lie outside the first 10 (so it is never marked) and m >= 1.

    Baseline: the MSE of predicting the target's mean 0.5 is Var(target) = (E[X1^2] + E[X2^2]) / 16, with
    E[X^2] = 1/3 for U[-1, 1] unless zeroed: P(X1 zeroed) = 1/10, P(X2 zeroed) = (9/10)(1/m), so
    baseline = ((9/10) + 1 - 9/(10 m)) / 48 = (19 - 9/m) / 480 (0.039201 at L = 100, m = 49).
    """

    NAME: ClassVar[str] = "adding-hs97"
    MIN_LENGTH: ClassVar[int] = 11
    TOLERANCE: ClassVar[float] = 0.04  # a sequence is correct iff |error| < 0.04

    @property
    def input_size(self) -> int:
        return 2

    @property
    def output_size(self) -> int:
        return 1

    def actual_length(self, length: int, gen: torch.Generator) -> int:
        """T' = L + U{0, ..., L // 10}, one draw from gen."""
        L = self._check_length(length)
        return L + int(torch.randint(0, L // 10 + 1, (), generator=check_generator(gen)))

    def _make(self, n: int, L: int, T: int, gen: torch.Generator) -> Batch:
        rows = row_index(n)
        value = torch.rand(n, T, generator=gen) * 2 - 1  # (B, T) in [-1, 1)
        m = L // 2 - 1
        p1 = torch.randint(0, 10, (n,), generator=gen)  # one of the first 10 pairs
        k = torch.randint(0, m, (n,), generator=gen)  # the k-th still-unmarked pair among the first m
        p2 = k + (k >= p1).long()  # skip over p1
        marker = torch.zeros(n, T)
        marker[:, 0] = -1.0
        marker[:, -1] = -1.0
        marker[rows, p1] = 1.0
        marker[rows, p2] = 1.0
        value[:, 0] = torch.where(marker[:, 0] == 1.0, torch.zeros(()), value[:, 0])  # marked first pair -> 0
        x = torch.stack([value, marker], dim=-1)  # (B, T, 2)
        y = torch.zeros(n, T, 1)
        y[:, -1, 0] = 0.5 + (value[rows, p1] + value[rows, p2]) / 4
        mask = torch.zeros(n, T, dtype=torch.bool)
        mask[:, -1] = True
        return Batch(x, y, mask)

    def _step_wrong(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (out - y).abs().amax(-1) >= self.TOLERANCE

    def baseline_loss(self, length: int) -> float:
        m = self._check_length(length) // 2 - 1
        return (19 - 9 / m) / 480


@dataclass(frozen=True)
class AddingPascanu(Task):
    """Adding problem as in Pascanu, Mikolov & Bengio 2013's code (trainingRNNs/addition.py).

    Definition (code): T' = L + U{0, ..., L//10 - 1}, one draw per batch. x[..., 0] holds the markers: 1 at
    p0 ~ U{0, ..., T'//10 - 1} and at p1 = T'//10 + U{0, ..., 4T'//10 - 1} (so p1 lies in [0.1 T', 0.5 T')),
    0 elsewhere; x[..., 1] holds values ~ U[0, 1] at every step. Target (a + b)/2 of the two marked values,
    at the last step; loss MSE; a sequence is wrong if the squared error there is > 0.04.

    Minimal L = 10 (L // 10 >= 1, else the length draw is empty).
    Baseline: predicting the mean 1/2 has MSE Var((a + b)/2) = (1/12 + 1/12)/4 = 1/24 (about 0.0417).
    """

    NAME: ClassVar[str] = "adding-pascanu"
    MIN_LENGTH: ClassVar[int] = 10
    THRESHOLD: ClassVar[float] = 0.04  # wrong iff squared error > 0.04

    @property
    def input_size(self) -> int:
        return 2

    @property
    def output_size(self) -> int:
        return 1

    def actual_length(self, length: int, gen: torch.Generator) -> int:
        """T' = L + U{0, ..., L // 10 - 1}, one draw from gen."""
        L = self._check_length(length)
        return L + int(torch.randint(0, L // 10, (), generator=check_generator(gen)))

    def _combine(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a + b) / 2

    def _make(self, n: int, L: int, T: int, gen: torch.Generator) -> Batch:
        rows = row_index(n)
        p0 = torch.randint(0, T // 10, (n,), generator=gen)  # [0, 0.1 T')
        p1 = T // 10 + torch.randint(0, 4 * T // 10, (n,), generator=gen)  # [0.1 T', 0.5 T')
        value = torch.rand(n, T, generator=gen)  # (B, T) in [0, 1)
        marker = torch.zeros(n, T)
        marker[rows, p0] = 1.0
        marker[rows, p1] = 1.0
        x = torch.stack([marker, value], dim=-1)  # (B, T, 2): markers first, as in the code
        y = torch.zeros(n, T, 1)
        y[:, -1, 0] = self._combine(value[rows, p0], value[rows, p1])
        mask = torch.zeros(n, T, dtype=torch.bool)
        mask[:, -1] = True
        return Batch(x, y, mask)

    def _step_wrong(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return ((out - y) ** 2).sum(-1) > self.THRESHOLD

    def baseline_loss(self, length: int) -> float:
        self._check_length(length)
        return 2 * (1 / 12) / 4  # Var((a + b)/2), a, b ~ U[0, 1] independent


@dataclass(frozen=True)
class Multiplication(AddingPascanu):
    """Multiplication problem, Pascanu et al. 2013's code (trainingRNNs/multiplication.py).

    The adding-pascanu layout (markers in x[..., 0], values U[0, 1] in x[..., 1], same lengths and marker
    ranges, same wrong criterion: squared error > 0.04) with target a * b.
    Baseline: predicting the mean E[ab] = 1/4 has MSE E[a^2] E[b^2] - 1/16 = 1/9 - 1/16 = 7/144 (about 0.0486).
    """

    NAME: ClassVar[str] = "multiplication"

    def _combine(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a * b

    def baseline_loss(self, length: int) -> float:
        self._check_length(length)
        return (1 / 3) ** 2 - (1 / 2) ** 4  # E[(ab)^2] - E[ab]^2


@dataclass(frozen=True)
class AddingLe(Task):
    """Adding problem of Le, Jaitly & Hinton 2015 (IRNN) and Arjovsky, Shah & Bengio 2016 (uRNN).

    Definition: T' = L. x[..., 0] holds values ~ U[0, 1]; x[..., 1] is 0 except two 1s, one at
    p0 ~ U{0, ..., L//2 - 1} (first half) and one at p1 ~ U{L//2, ..., L - 1} (second half). Target a + b,
    the sum of the two marked values, at the last step; loss MSE.
    Baseline: the constant prediction 1 has MSE Var(a + b) = 2/12 = 1/6 (the uRNN paper's 0.167).
    Wrong: squared error > 0.04. Neither paper defines a per-sequence success criterion (they report MSE);
    this one is borrowed from Pascanu et al.'s code.
    Minimal L = 2 (each half needs a step).
    """

    NAME: ClassVar[str] = "adding-le"
    MIN_LENGTH: ClassVar[int] = 2
    THRESHOLD: ClassVar[float] = 0.04  # borrowed from Pascanu et al.

    @property
    def input_size(self) -> int:
        return 2

    @property
    def output_size(self) -> int:
        return 1

    def _make(self, n: int, L: int, T: int, gen: torch.Generator) -> Batch:
        rows = row_index(n)
        half = L // 2
        value = torch.rand(n, T, generator=gen)  # (B, T) in [0, 1)
        p0 = torch.randint(0, half, (n,), generator=gen)  # first half
        p1 = half + torch.randint(0, L - half, (n,), generator=gen)  # second half
        marker = torch.zeros(n, T)
        marker[rows, p0] = 1.0
        marker[rows, p1] = 1.0
        x = torch.stack([value, marker], dim=-1)  # (B, T, 2): values first
        y = torch.zeros(n, T, 1)
        y[:, -1, 0] = value[rows, p0] + value[rows, p1]
        mask = torch.zeros(n, T, dtype=torch.bool)
        mask[:, -1] = True
        return Batch(x, y, mask)

    def _step_wrong(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return ((out - y) ** 2).sum(-1) > self.THRESHOLD

    def baseline_loss(self, length: int) -> float:
        self._check_length(length)
        return 2 / 12  # Var(a + b), a, b ~ U[0, 1] independent
