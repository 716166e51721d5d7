"""The literature's long-memory tasks as seeded batch generators (REFERENCE.md section 3).

Every task makes a `Batch` of B sequences of T' steps, batch first:

    x     (B, T', D) float32   inputs
    y     (B, T', O) float32   regression targets, or (B, T') int64 class indices
    mask  (B, T')    bool      the steps where the loss applies, and the success criterion (copy's
                               criterion judges only its last 10 steps); y is 0 outside the mask

and knows its own loss, success criterion and memoryless baseline. L is the nominal length passed to
`sample`; T' = `actual_length(L, gen)` is the length of the batch.

    name                 source                        T'                 D / O      loss at     baseline
    adding-hs97          Hochreiter, Schmidhuber 1997  L + U{0..L//10}    2 / 1      last step   (19-9/m)/480, m=L//2-1
    adding-pascanu       Pascanu et al. 2013, code     L + U{0..L//10-1}  2 / 1      last step   1/24
    adding-le            Le 2015, Arjovsky 2016        L                  2 / 1      last step   1/6
    multiplication       Pascanu et al. 2013, code     L + U{0..L//10-1}  2 / 1      last step   7/144
    temporal-order       Pascanu et al. 2013, code     L                  6 / 4      last step   ln 4
    temporal-order-3bit  Pascanu et al. 2013, code     L                  6 / 8      last step   ln 8
    permutation          Pascanu et al. 2013, code     L                  100 / 100  last step   ln 2
    memorization         Pascanu et al. 2013, code     L + 2 n_pos        7 / 5      last n_pos  ln n_values (ln 5)
    copy                 Arjovsky et al. 2016          L + 20             10 / 9     every step  10 ln 8 / (L + 20)

The first four are regression (MSE), the rest classification (cross-entropy on logits). The baseline is
the loss of the best predictor that remembers nothing of the input (each class docstring derives it).

Fractions of a length are floors in exact integer arithmetic: floor(0.1 L) is L // 10, floor(0.4 L) is
4 L // 10. Pascanu's code writes int(L * .1); the two agree for every L below 200,000 (checked).

Randomness comes only from the torch.Generator passed to `sample`: the same generator state gives the same
batch. Batches are made on the CPU; move one with `batch.to(device)`.

Example:
    >>> task = get_task("adding-le")
    >>> batch = task.sample(4, 50, torch.Generator().manual_seed(0))
    >>> tuple(batch.x.shape), tuple(batch.y.shape), int(batch.mask.sum())
    ((4, 50, 2), (4, 50, 1), 4)
    >>> round(task.baseline_loss(50), 4)
    0.1667
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

__all__ = [
    "Batch", "Task", "TASK_NAMES", "get_task",
    "AddingHS97", "AddingPascanu", "AddingLe", "Multiplication", "TemporalOrder", "Permutation",
    "Memorization", "Copy",
]

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

def _check_int(what: str, value: object, lo: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
        raise InputError(f"{what}: expected an integer >= {lo}, got {value!r}")
    return int(value)


def _check_gen(gen: object) -> torch.Generator:
    if not isinstance(gen, torch.Generator):
        raise InputError(f"gen: expected a torch.Generator (torch.Generator().manual_seed(seed)), "
                         f"got {type(gen).__name__}")
    if gen.device.type != "cpu":
        raise InputError(f"gen: expected a CPU generator (batches are made on the CPU), got device {gen.device}")
    return gen


def _rows(n: int) -> torch.Tensor:
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
        return _check_int(f"{self.name} length", length, self.min_length)

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
        n = _check_int(f"{self.name} n", n, 1)
        gen = _check_gen(gen)
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
# adding and multiplication

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
        return L + int(torch.randint(0, L // 10 + 1, (), generator=_check_gen(gen)))

    def _make(self, n: int, L: int, T: int, gen: torch.Generator) -> Batch:
        rows = _rows(n)
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
        return L + int(torch.randint(0, L // 10, (), generator=_check_gen(gen)))

    def _combine(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a + b) / 2

    def _make(self, n: int, L: int, T: int, gen: torch.Generator) -> Batch:
        rows = _rows(n)
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
        rows = _rows(n)
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


# ----------------------------------------------------------------------------------------------------------
# classification tasks

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
        rows = _rows(n)
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
    """Noiseless memorization problem, Pascanu et al. 2013's code (trainingRNNs/memorization.py).

    Definition, T' = L + 2 n_pos: inputs have n_values + 2 channels (the values one-hot, then a blank
    channel n_values, then a trigger channel n_values + 1). Steps 0..n_pos-1 carry n_pos values, i.i.d.
    uniform over the n_values (the code draws one integer in [0, n_values^n_pos) and takes its digits: the
    same law). Every later step is blank except step L + n_pos, the trigger. The output at the last n_pos
    steps (L + n_pos .. L + 2 n_pos - 1, the trigger step first) is the sequence, in order; the loss is the
    cross-entropy averaged over those steps; a sequence is wrong if any of them is wrong.

    Output size n_values: Pascanu's code also trains an (n_values+1)-th "blank" class at every other step
    and counts those steps in its error; here, as in REFERENCE.md, only the last n_pos steps count, so the
    blank class would never be a target and is left out.

    Baseline: each value is uniform and independent of the inputs a memoryless predictor sees at the output
    steps, so the best per-step NLL is ln n_values: n_pos ln(n_values) / n_pos = ln 5 by default.
    Minimal L = 1 (at least one blank between the sequence and the trigger).
    """

    n_values: int = 5
    n_pos: int = 10

    NAME: ClassVar[str] = "memorization"
    MIN_LENGTH: ClassVar[int] = 1
    KIND: ClassVar[str] = "classification"

    def __post_init__(self) -> None:
        _check_int("memorization n_values", self.n_values, 2)
        _check_int("memorization n_pos", self.n_pos, 1)

    @property
    def input_size(self) -> int:
        return self.n_values + 2

    @property
    def output_size(self) -> int:
        return self.n_values

    def actual_length(self, length: int, gen: torch.Generator) -> int:
        """T' = L + 2 n_pos (no draw)."""
        return self._check_length(length) + 2 * self.n_pos

    def _make(self, n: int, L: int, T: int, gen: torch.Generator) -> Batch:
        p, nv = self.n_pos, self.n_values
        seq = torch.randint(0, nv, (n, p), generator=gen)  # (B, n_pos)
        x = torch.zeros(n, T, nv + 2)
        x[:, :p] = Fn.one_hot(seq, nv + 2).float()
        x[:, p:, nv] = 1.0  # blanks
        x[:, L + p, nv] = 0.0
        x[:, L + p, nv + 1] = 1.0  # trigger
        y = torch.zeros(n, T, dtype=torch.int64)
        y[:, L + p:] = seq
        mask = torch.zeros(n, T, dtype=torch.bool)
        mask[:, L + p:] = True
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


# ----------------------------------------------------------------------------------------------------------

_FACTORIES = {
    "adding-hs97": AddingHS97,
    "adding-pascanu": AddingPascanu,
    "adding-le": AddingLe,
    "multiplication": Multiplication,
    "temporal-order": lambda: TemporalOrder(2),
    "temporal-order-3bit": lambda: TemporalOrder(3),
    "permutation": Permutation,
    "memorization": Memorization,
    "copy": Copy,
}
TASK_NAMES = tuple(_FACTORIES)


def get_task(name: str) -> Task:
    """The task called name, with its default parameters (one of TASK_NAMES).

    >>> get_task("copy").output_size
    9
    """
    if not isinstance(name, str) or name not in _FACTORIES:
        raise InputError(f"task: expected one of {', '.join(TASK_NAMES)}, got {name!r}")
    return _FACTORIES[name]()
