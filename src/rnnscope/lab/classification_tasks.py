"""The classification tasks (cross-entropy on logits): temporal order, random permutation, memorization, copy.

Inputs are one-hot symbols (x (B, T', D)), targets class indices (y (B, T') int64), the mask marks the steps
the loss covers. A sequence is wrong when the argmax of the outputs misses the class at one of the steps the
task's criterion judges. Each class docstring gives the source's definition and derives the memoryless
baseline: the loss of the best predictor that knows the layout (the step index) but nothing of the input's
content.

    name                 source (Pascanu: his code's file)   T'        D / O      loss at     baseline
    temporal-order       Pascanu et al. 2013, tempOrder.py    L         6 / 4      last step   ln 4
    temporal-order-3bit  Pascanu et al. 2013, tempOrder3bit   L         6 / 8      last step   ln 8
    permutation          Pascanu et al. 2013, permutation.py  L         100 / 100  last step   ln 2
    memorization         Pascanu et al. 2013, memorization.py L + 20    7 / 6      all steps   10 ln 5 / (L + 20)
    memorization-recall  rnnscope's recall-only form of it    L + 20    7 / 5      last 10     ln 5
    copy                 Arjovsky, Shah & Bengio 2016         L + 20    10 / 9     all steps   10 ln 8 / (L + 20)

(D / O: input channels / classes; memorization with its defaults n_values = 5, n_pos = 10.)

Example:
    >>> task = Memorization()
    >>> b = task.sample(2, 3, torch.Generator().manual_seed(0))
    >>> b.length, task.output_size, b.y[0].tolist()[:13], int(b.mask.sum())   # 13 blanks (class 5), then the values
    (23, 6, [5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5], 46)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as Fn

from ..core.errors import InputError
from .task_base import Batch, Task, check_int, row_index

__all__ = ["TemporalOrder", "Permutation", "Memorization", "MemorizationRecall", "Copy"]


@dataclass(frozen=True)
class TemporalOrder(Task):
    """Temporal order problem, Pascanu et al. 2013's code (trainingRNNs/tempOrder.py, tempOrder3bit.py).

    Definition (code), T' = L: every step is one-hot over 6 channels. bits = 2: a symbol A (channel 0) or B
    (channel 1), each independently with probability 1/2, at p0 = L//10 + U{0..L//10 - 1} (in [0.1L, 0.2L))
    and p1 = L//2 + U{0..L//10 - 1} (in [0.5L, 0.6L)); bits = 3 ("temporal-order-3bit"): three slots at
    floor(0.1L), floor(0.3L), floor(0.6L), each L//10 wide. Every other step is a distractor uniform over
    channels 2..5. The class, at the last step, is v0 + 2 v1 (+ 4 v2) with A = 0, B = 1, as in the code:
    for 2 bits, 0 = AA, 1 = BA, 2 = AB, 3 = BB (first symbol, second symbol). Cross-entropy at the last step;
    wrong if argmax != class.

    Baseline: the classes are uniform and independent of anything a memoryless predictor sees at the last
    step, so the best it can do is uniform logits: NLL = bits ln 2 (ln 4 = 1.386, ln 8 = 2.079), error
    1 - 2^-bits (75%, 87.5%). Minimal L = 10 (each slot is L // 10 >= 1 steps wide).
    """

    bits: int = 2

    MIN_LENGTH: ClassVar[int] = 10
    KIND: ClassVar[str] = "classification"

    def __post_init__(self) -> None:
        if isinstance(self.bits, bool) or not isinstance(self.bits, int) or self.bits not in (2, 3):
            raise InputError(f"temporal-order bits: expected 2 or 3, got {self.bits!r}")

    @property
    def slots(self) -> tuple[int, ...]:
        """The slot starts in tenths of L: slot i is [floor(s_i L / 10), floor(s_i L / 10) + L // 10)."""
        return (1, 5) if self.bits == 2 else (1, 3, 6)

    @property
    def name(self) -> str:
        return "temporal-order" if self.bits == 2 else "temporal-order-3bit"

    @property
    def input_size(self) -> int:
        return 6

    @property
    def output_size(self) -> int:
        return 2 ** self.bits

    def _make(self, n: int, L: int, T: int, gen: torch.Generator) -> Batch:
        rows = row_index(n)
        width = L // 10
        sym = torch.randint(2, 6, (n, T), generator=gen)  # distractors, channels 2..5
        cls = torch.zeros(n, dtype=torch.int64)
        for i, tenths in enumerate(self.slots):
            p = tenths * L // 10 + torch.randint(0, width, (n,), generator=gen)
            v = torch.randint(0, 2, (n,), generator=gen)  # A = 0, B = 1
            sym[rows, p] = v
            cls += v << i
        x = Fn.one_hot(sym, 6).float()  # (B, T, 6)
        y = torch.zeros(n, T, dtype=torch.int64)
        y[:, -1] = cls
        mask = torch.zeros(n, T, dtype=torch.bool)
        mask[:, -1] = True
        return Batch(x, y, mask)

    def baseline_loss(self, length: int) -> float:
        self._check_length(length)
        return self.bits * math.log(2)


@dataclass(frozen=True)
class Permutation(Task):
    """Random permutation problem, Pascanu et al. 2013's code (trainingRNNs/permutation.py).

    Definition (code), T' = L: every step is one-hot over 100 channels; the first symbol is 0 or 1 (1/2
    each), the other L - 1 are uniform over 2..99. The class at the last step is the first symbol (100
    outputs, as in the code); cross-entropy there; wrong if argmax != class.

    Baseline ln 2: the target is 0 or 1 with probability 1/2 and independent of every later input, so the
    best memoryless predictor puts 1/2 on each of classes 0 and 1 (NLL ln 2 = 0.693, error 50%).
    Minimal L = 2 (with L = 1 the first symbol is the last input: nothing to remember).
    """

    NAME: ClassVar[str] = "permutation"
    MIN_LENGTH: ClassVar[int] = 2
    KIND: ClassVar[str] = "classification"
    N_SYMBOLS: ClassVar[int] = 100

    @property
    def input_size(self) -> int:
        return self.N_SYMBOLS

    @property
    def output_size(self) -> int:
        return self.N_SYMBOLS

    def _make(self, n: int, L: int, T: int, gen: torch.Generator) -> Batch:
        sym = torch.randint(2, self.N_SYMBOLS, (n, T), generator=gen)  # (B, T) in 2..99
        first = torch.randint(0, 2, (n,), generator=gen)  # 0 or 1
        sym[:, 0] = first
        x = Fn.one_hot(sym, self.N_SYMBOLS).float()  # (B, T, 100)
        y = torch.zeros(n, T, dtype=torch.int64)
        y[:, -1] = first
        mask = torch.zeros(n, T, dtype=torch.bool)
        mask[:, -1] = True
        return Batch(x, y, mask)

    def baseline_loss(self, length: int) -> float:
        self._check_length(length)
        return math.log(2)


@dataclass(frozen=True)
class Memorization(Task):
    """Noiseless memorization problem as Pascanu et al. 2013's code has it (trainingRNNs/memorization.py,
    MemTask, with RNN.py's 'softmax' loss and report = 'all').

    Definition (code), T' = L + 2 n_pos, inputs over n_values + 2 channels: the values one-hot, then a blank
    channel n_values, then a trigger channel n_values + 1.

        steps 0 .. n_pos - 1            the values v_0 .. v_{n_pos-1}, i.i.d. uniform over {0..n_values-1}
        steps n_pos .. T' - 1           blank, except step L + n_pos: the trigger
        targets, n_values + 1 classes   class n_values (blank) at steps 0 .. L + n_pos - 1;
                                        v_k at step L + n_pos + k, k = 0 .. n_pos - 1 (the trigger step first)

    The code draws one integer uniform in [0, n_values^n_pos) and takes its base-n_values digits, least
    significant first, as v_0, v_1, ...: the digits of a uniform integer are i.i.d. uniform, the law drawn here.
    Loss: the cross-entropy averaged over all T' steps and the sequences (the code's
    -(t log y).mean(axis=0).sum() over the (T' B, n_values + 1) rows). Wrong: a sequence is wrong if the
    argmax misses the target at any of its T' steps, blanks included (report = 'all':
    (neq(argmax y, argmax t).sum(0) > 0).mean()). The mask is every step.

    Baseline: the best predictor that knows the layout but nothing of the values puts probability 1 on the
    blank at the first L + n_pos steps (their target is always blank: loss 0) and, at each of the last
    n_pos steps, the marginal law of v_k, uniform over n_values (loss ln n_values, the entropy, which no
    predictor independent of v_k can beat). Averaged over the T' steps:

        baseline = n_pos ln(n_values) / (L + 2 n_pos)        (10 ln 5 / (L + 20): 0.13412 at L = 100)

    and its error rate is 1 - n_values^-n_pos (it guesses every value). Minimal L = 1 (at least one blank
    between the values and the trigger).
    """

    n_values: int = 5
    n_pos: int = 10

    NAME: ClassVar[str] = "memorization"
    MIN_LENGTH: ClassVar[int] = 1
    KIND: ClassVar[str] = "classification"

    def __post_init__(self) -> None:
        check_int(f"{self.NAME} n_values", self.n_values, 2)
        check_int(f"{self.NAME} n_pos", self.n_pos, 1)

    @property
    def input_size(self) -> int:
        return self.n_values + 2

    @property
    def output_size(self) -> int:
        return self.n_values + 1  # the values and the blank (class n_values)

    def actual_length(self, length: int, gen: torch.Generator) -> int:
        """T' = L + 2 n_pos (no draw)."""
        return self._check_length(length) + 2 * self.n_pos

    def _make(self, n: int, L: int, T: int, gen: torch.Generator) -> Batch:
        p, nv = self.n_pos, self.n_values
        seq = torch.randint(0, nv, (n, p), generator=gen)  # (B, n_pos) v_0 .. v_{n_pos-1}
        x = torch.zeros(n, T, nv + 2)
        x[:, :p] = Fn.one_hot(seq, nv + 2).float()
        x[:, p:, nv] = 1.0  # blanks
        x[:, L + p, nv] = 0.0
        x[:, L + p, nv + 1] = 1.0  # the trigger
        return self._targets(n, L, T, seq, x)

    def _targets(self, n: int, L: int, T: int, seq: torch.Tensor, x: torch.Tensor) -> Batch:
        y = torch.full((n, T), self.n_values, dtype=torch.int64)  # blank until the recall
        y[:, L + self.n_pos:] = seq
        return Batch(x, y, torch.ones(n, T, dtype=torch.bool))  # every step

    def baseline_loss(self, length: int) -> float:
        L = self._check_length(length)
        return self.n_pos * math.log(self.n_values) / (L + 2 * self.n_pos)


@dataclass(frozen=True)
class MemorizationRecall(Memorization):
    """Memorization with the loss on the recall alone: the inputs of `Memorization` (Pascanu's layout, drawn
    the same way from the generator), but n_values classes (no blank class) and the loss and the criterion
    at the last n_pos steps only (the mask), L + n_pos .. L + 2 n_pos - 1; y is 0 elsewhere.

    This is rnnscope's earlier form of the task, kept under its own name: its loss is the recall's mean
    cross-entropy, (L + 2 n_pos) / n_pos times Pascanu's on the same outputs when the blank steps cost
    nothing (12 x at L = 100).

    Baseline: at each recall step the best layout-aware predictor gives the marginal law of v_k, uniform
    over n_values: n_pos ln(n_values) / n_pos = ln n_values (ln 5 = 1.6094), error 1 - n_values^-n_pos.
    """

    NAME: ClassVar[str] = "memorization-recall"

    @property
    def output_size(self) -> int:
        return self.n_values

    def _targets(self, n: int, L: int, T: int, seq: torch.Tensor, x: torch.Tensor) -> Batch:
        y = torch.zeros(n, T, dtype=torch.int64)
        y[:, L + self.n_pos:] = seq
        mask = torch.zeros(n, T, dtype=torch.bool)
        mask[:, L + self.n_pos:] = True  # the recall steps
        return Batch(x, y, mask)

    def baseline_loss(self, length: int) -> float:
        self._check_length(length)
        return self.n_pos * math.log(self.n_values) / self.n_pos


@dataclass(frozen=True)
class Copy(Task):
    """Copying memory problem, Arjovsky, Shah & Bengio 2016 (uRNN), after Hochreiter & Schmidhuber 1997.

    Definition, T' = L + 20, inputs one-hot over 10 symbols a0..a9: 10 symbols drawn uniformly from a0..a7,
    then L - 1 blanks (a8), the delimiter a9, then 10 blanks. Targets: a8 (blank) at the first L + 10 steps,
    then the 10 symbols in order. Loss: cross-entropy averaged over all L + 20 steps (the mask is every
    step). Wrong if any of the last 10 outputs is wrong (argmax != symbol); the blank steps count in the
    loss but not in the criterion (Arjovsky et al. report only the loss; this criterion is rnnscope's).

    Output size 9: the targets are only a0..a7 and the blank a8 (a9 is never a target), so 9 classes, as in
    the uRNN code (n_output = 9); class 8 is the blank.

    Baseline: a memoryless predictor knows the layout, so it outputs the blank with probability 1 for the
    first L + 10 steps (zero loss) and 1/8 on each symbol for the last 10 (ln 8 each):
    10 ln 8 / (L + 20) nats (0.1733 at L = 100, 0.2971 at L = 50). Minimal L = 1 (L - 1 blanks >= 0).
    """

    NAME: ClassVar[str] = "copy"
    MIN_LENGTH: ClassVar[int] = 1
    KIND: ClassVar[str] = "classification"
    N_COPY: ClassVar[int] = 10  # symbols to copy
    N_CATEGORIES: ClassVar[int] = 8  # a0..a7
    BLANK: ClassVar[int] = 8
    DELIMITER: ClassVar[int] = 9

    @property
    def input_size(self) -> int:
        return 10

    @property
    def output_size(self) -> int:
        return 9

    def actual_length(self, length: int, gen: torch.Generator) -> int:
        """T' = L + 20 (no draw)."""
        return self._check_length(length) + 2 * self.N_COPY

    def _make(self, n: int, L: int, T: int, gen: torch.Generator) -> Batch:
        k = self.N_COPY
        seq = torch.randint(0, self.N_CATEGORIES, (n, k), generator=gen)  # (B, 10)
        sym = torch.full((n, T), self.BLANK, dtype=torch.int64)
        sym[:, :k] = seq
        sym[:, L + k - 1] = self.DELIMITER  # after the L - 1 blanks
        x = Fn.one_hot(sym, 10).float()  # (B, T, 10)
        y = torch.full((n, T), self.BLANK, dtype=torch.int64)
        y[:, L + k:] = seq
        mask = torch.ones(n, T, dtype=torch.bool)
        return Batch(x, y, mask)

    def _judged(self, batch: Batch) -> torch.Tensor:
        judged = torch.zeros_like(batch.mask)
        judged[:, -self.N_COPY:] = True  # the copied symbols
        return judged & batch.mask

    def baseline_loss(self, length: int) -> float:
        L = self._check_length(length)
        return self.N_COPY * math.log(self.N_CATEGORIES) / (L + 2 * self.N_COPY)
