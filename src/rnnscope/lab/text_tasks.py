"""A real-text task: character-level language modelling on the help texts the standard library ships.

The text is pydoc_data.topics.topics (the help() topics of the running Python), its values concatenated
in sorted key order, as examples/charlm.py reads it (464,970 characters under Python 3.11; the text, and so
every number derived from it, follows the Python version, while the vocabulary does not).

    vocabulary  V = 97 classes, fixed: 0 = newline, 1..95 = printable ASCII chr(32)..chr(126),
                96 = "other" (every other character: tab, accented letters, typographic quotes and dashes)
    split       the text cut into contiguous blocks of `block` characters (the last one shorter); a
                fraction `held_out` of them, chosen by numpy.random.default_rng(split_seed), is held out
    windows     L + 1 consecutive characters c_s .. c_{s+L} inside one run of consecutive blocks of one
                split (never across a boundary into the other split); s uniform over the valid starts
    batch       x (B, L, V) float32 one-hot of c_s .. c_{s+L-1}; y (B, L) int64, y_t = c_{s+t+1}, the next
                character; mask all True. `sample` draws from the training blocks, `sample_eval` from the
                held-out blocks
    loss        mean over the B L steps of -ln softmax(out_t)[y_t]: nats per character (Task.loss)

Legend: B batch, L steps (T' = L), V vocabulary = D = O.

Example:
    >>> task = CharLM()
    >>> b = task.sample(2, 8, torch.Generator().manual_seed(0))
    >>> tuple(b.x.shape), tuple(b.y.shape), bool((b.x[:, 1:].argmax(-1) == b.y[:, :-1]).all())
    ((2, 8, 97), (2, 8), True)
    >>> task.bits_per_char(math.log(2)), task.decode([45, 73, 0])
    (1.0, 'Lh\\n')
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from functools import cached_property
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as Fn

from ..core.errors import InputError
from .task_base import Batch, Task, check_generator, check_int

__all__ = ["CharLM", "VOCABULARY", "OTHER", "load_text", "encode"]

VOCABULARY = "\n" + "".join(chr(c) for c in range(32, 127))  # classes 0..95; class 96 is "other"
OTHER = len(VOCABULARY)  # 96
OTHER_CHAR = "\ufffd"  # how decode writes the "other" class
SPLITS = ("train", "held-out")
REFERENCES = ("bigram", "unigram")  # the predictors the success criterion compares with


@functools.lru_cache(maxsize=1)
def load_text() -> str:
    """The text, loaded once (an immutable str): pydoc_data.topics.topics, values joined in sorted key order.

    Raises InputError when the running Python lacks pydoc_data (some distributions strip it).
    """
    try:
        from pydoc_data.topics import topics
    except ImportError as e:
        raise InputError(f"charlm text: expected the standard library's pydoc_data.topics (the help() topics), "
                         f"got ImportError: {e}; install a full Python (e.g. Debian's libpython3-stdlib)") from e
    if not isinstance(topics, dict) or not topics:
        raise InputError(f"charlm text: expected pydoc_data.topics.topics to be a non-empty dict, "
                         f"got {type(topics).__name__} of length {len(topics) if hasattr(topics, '__len__') else '?'}")
    return "".join(topics[k] for k in sorted(topics))


def encode(text: str) -> np.ndarray:
    """Class indices (int64, one per character) of text: newline 0, chr(32..126) 1..95, anything else 96."""
    if not isinstance(text, str):
        raise InputError(f"text: expected a str, got {type(text).__name__}")
    cp = np.frombuffer(text.encode("utf-32-le"), dtype="<u4")  # code points
    ids = np.full(cp.shape, OTHER, dtype=np.int64)
    printable = (cp >= 32) & (cp < 127)
    ids[printable] = cp[printable].astype(np.int64) - 31
    ids[cp == 10] = 0
    return ids


def _runs(blocks: np.ndarray, block: int, n_chars: int) -> np.ndarray:
    """(R, 2) [start, end) character ranges of the maximal runs of consecutive block indices in sorted blocks."""
    if blocks.size == 0:
        return np.zeros((0, 2), dtype=np.int64)
    breaks = np.flatnonzero(np.diff(blocks) != 1) + 1
    first = blocks[np.r_[0, breaks]]
    last = blocks[np.r_[breaks - 1, blocks.size - 1]]
    return np.stack([first * block, np.minimum((last + 1) * block, n_chars)], axis=1).astype(np.int64)


@dataclass(frozen=True)
class _Split:
    """The fixed split of the text: block indices and the runs of each side (read-only arrays)."""

    n_chars: int
    train_blocks: np.ndarray  # sorted block indices
    held_out_blocks: np.ndarray
    train_runs: np.ndarray  # (R, 2) [start, end) character ranges
    held_out_runs: np.ndarray


@dataclass(frozen=True)
class CharLM(Task):
    """Character-level language modelling on pydoc_data.topics (the module docstring gives the data).

    Parameters: split_seed (numpy.random.default_rng seed of the split), held_out (the fraction of blocks
    held out, rounded half up, at least 1 and at most all but one), block (characters per block),
    reference ("bigram" or "unigram": the predictor the success criterion compares with, below).
    Under Python 3.11 (split_seed 0): 465 blocks of 1,000 (the last of 970), 47 held out (47,000 characters
    in 42 runs, the longest 3,000), 418 for training (417,970 characters in 43 runs).

    Baseline (the best predictor that remembers nothing). A predictor that uses no input at all outputs one
    law q over the V classes at every step (a window's step index says nothing about its character: the
    windows start anywhere). Its expected loss on a character c drawn from the law p is

        E_p[-ln q(c)] = H(p) + KL(p || q) >= H(p) = -sum_c p(c) ln p(c),   equality iff q = p,

    so the best such predictor is the unigram law and its loss is the entropy. With p the character
    frequencies of the training split (n_c / N_train):

        baseline_loss(L) = H(p_train) = -sum_c (n_c / N) ln (n_c / N)    nats per character, for every L

    (3.2454 nats = 4.682 bits under Python 3.11). Two approximations, both measured: training windows see
    the characters near the ends of a run less often as targets, which raises q's expected loss on them
    by 1.5e-4 nats at L = 50 (4.9e-4 at L = 200); and on held-out windows the same q scores the held-out
    text's cross-entropy `held_out_unigram_loss` (3.2715 nats under 3.11), not H(p_train). The
    baseline is not a bound for a predictor that sees the current input: one that knows c_t but nothing
    before it is a bigram model, whose best loss is H(c_{t+1} | c_t) on the training split,
    `bigram_loss()` (2.4575 nats = 3.545 bits under 3.11): a network between the two uses its input,
    below the bigram loss it uses its memory.

    Success criterion (`wrong`, per window): the window's mean cross-entropy is not below the reference
    predictor's on the same characters (or an output at a masked step is not finite),

        wrong_b = (1/L) sum_t -ln softmax(out_bt)[y_bt]  >=  (1/L) sum_t -ln r(y_bt | x_bt)

    r the reference fit to the training split with add-1/2 (Krichevsky-Trofimov) counts, so that it is
    finite on held-out characters and pairs the training text lacks: "bigram" (the default),
    r(b | a) = (n_ab + 1/2) / (n_a + V/2), a the current input character; "unigram", r(b) =
    (n_b + 1/2) / (N + V/2), the memoryless predictor. A paired comparison on the same characters, so the
    window's own difficulty (a code listing full of rare symbols) cancels: the error rate is the fraction
    of windows on which the model does no better than the reference (a tie counts as wrong).
    Why bigram by default: a network without recurrence that sees c_t reaches the bigram loss, so beating
    the unigram shows only that the input is used, and happens early (a 32-unit LSTM, Adam 3e-3, batch 32,
    beat the exact unigram law on 99% of windows of 50 after 150 updates; measured here); beating the
    bigram shows memory of earlier characters (the same LSTM against the bigram: error 99% after 150
    updates, 59% after 500, 0.7% after 1,500, at 2.02 nats = 2.91 bits).
    """

    split_seed: int = 0
    held_out: float = 0.1
    block: int = 1000
    reference: str = "bigram"

    NAME: ClassVar[str] = "charlm"
    KIND: ClassVar[str] = "classification"
    MIN_LENGTH: ClassVar[int] = 1

    def __post_init__(self) -> None:
        check_int("charlm split_seed", self.split_seed, 0)
        check_int("charlm block", self.block, 2)
        h = self.held_out
        if isinstance(h, bool) or not isinstance(h, (int, float)) or not 0.0 < h < 1.0:
            raise InputError(f"charlm held_out: expected a fraction strictly between 0 and 1, got {h!r}")
        if self.reference not in REFERENCES:
            raise InputError(f"charlm reference: expected one of {', '.join(REFERENCES)}, got {self.reference!r}")

    @property
    def input_size(self) -> int:
        """D = V = 97 (one-hot characters)."""
        return OTHER + 1

    @property
    def output_size(self) -> int:
        """O = V = 97 (next-character logits)."""
        return OTHER + 1

    # -- the text and its split ----------------------------------------------------------------------------
    @property
    def text(self) -> str:
        """The whole text (load_text)."""
        return load_text()

    @cached_property
    def ids(self) -> torch.Tensor:
        """(N,) int64 class indices of the whole text (encode), computed once per task object."""
        return torch.from_numpy(encode(load_text()))

    @cached_property
    def split(self) -> _Split:
        """The split: n_blocks = ceil(N / block); the held-out blocks are the first n_held of
        default_rng(split_seed).permutation(n_blocks), n_held = floor(held_out n_blocks + 1/2) clamped to
        [1, n_blocks - 1]; the others are the training blocks."""
        n = int(self.ids.numel())
        n_blocks = -(-n // self.block)
        if n_blocks < 2:
            raise InputError(f"charlm block: expected at most {n - 1} characters (two blocks at least in a "
                             f"text of {n}), got {self.block}")
        n_held = min(max(1, math.floor(self.held_out * n_blocks + 0.5)), n_blocks - 1)
        perm = np.random.default_rng(self.split_seed).permutation(n_blocks)
        held = np.sort(perm[:n_held]).astype(np.int64)
        train = np.sort(perm[n_held:]).astype(np.int64)
        arrays = [train, held, _runs(train, self.block, n), _runs(held, self.block, n)]
        for a in arrays:
            a.setflags(write=False)
        return _Split(n, *arrays)

    def runs(self, split: str = "train") -> np.ndarray:
        """(R, 2) the [start, end) character ranges of the runs of consecutive blocks of split
        ('train' or 'held-out'): the windows of that split lie inside one of them."""
        if split not in SPLITS:
            raise InputError(f"charlm split: expected one of {', '.join(SPLITS)}, got {split!r}")
        return self.split.train_runs if split == "train" else self.split.held_out_runs

    def split_text(self, split: str = "train") -> str:
        """The characters of split's blocks, in text order (the runs joined)."""
        return "".join(self.text[a:b] for a, b in self.runs(split))

    def max_length(self, split: str = "train") -> int:
        """The longest L whose windows (L + 1 characters) fit in a run of split."""
        r = self.runs(split)
        return int((r[:, 1] - r[:, 0]).max()) - 1

    @staticmethod
    def decode(ids) -> str:
        """The characters of class indices (the "other" class as U+FFFD)."""
        seq = torch.as_tensor(ids).flatten().tolist()
        bad = [i for i in seq if not isinstance(i, int) or not 0 <= i <= OTHER]
        if bad:
            raise InputError(f"charlm ids: expected integers in 0..{OTHER}, got {bad[0]!r}")
        return "".join(OTHER_CHAR if i == OTHER else VOCABULARY[i] for i in seq)

    # -- sampling ------------------------------------------------------------------------------------------
    def _windows(self, n: int, L: int, split: str, gen: torch.Generator) -> Batch:
        """n windows of L + 1 characters, the start s uniform over every valid start of split's runs
        (run [a, b) has b - a - L of them, a .. b - L - 1): one draw u ~ U{0..total-1} per window, mapped
        to its run by the cumulative counts."""
        runs = self.runs(split)
        counts = np.maximum(runs[:, 1] - runs[:, 0] - L, 0)
        total = int(counts.sum())
        if total == 0:
            raise InputError(f"charlm length: expected L <= {self.max_length(split)} (the longest run of "
                             f"{split} blocks holds {self.max_length(split) + 1} characters), got {L}")
        cum = torch.from_numpy(np.cumsum(counts))  # (R,)
        u = torch.randint(0, total, (n,), generator=gen)  # (n,)
        r = torch.searchsorted(cum, u, right=True)  # run of each window
        start = torch.from_numpy(runs[:, 0].copy())[r] + u - (cum[r] - torch.from_numpy(counts)[r])
        w = self.ids[start[:, None] + torch.arange(L + 1)]  # (n, L + 1)
        x = Fn.one_hot(w[:, :-1], OTHER + 1).float()  # (n, L, V)
        return Batch(x, w[:, 1:].contiguous(), torch.ones(n, L, dtype=torch.bool))

    def _make(self, n: int, L: int, T: int, gen: torch.Generator) -> Batch:
        return self._windows(n, L, "train", gen)

    def sample_eval(self, n: int, length: int, gen: torch.Generator) -> Batch:
        """A batch of n held-out windows of L characters (the evaluation data; `sample` draws training ones)."""
        n = check_int(f"{self.name} n", n, 1)
        gen = check_generator(gen)
        L = self._check_length(length)
        return self._windows(n, L, "held-out", gen)

    # -- the unigram law and the baselines -----------------------------------------------------------------
    def _counts(self, split: str) -> torch.Tensor:
        """(V,) float64 character counts of split."""
        ids = torch.cat([self.ids[a:b] for a, b in self.runs(split)])
        return torch.bincount(ids, minlength=OTHER + 1).double()

    @cached_property
    def unigram_log_probs(self) -> torch.Tensor:
        """(V,) float64 ln p_train(c) = ln(n_c / N_train); -inf for a class absent from the training text
        ('$' and '`' under Python 3.11). As logits these are the best memoryless predictor."""
        n = self._counts("train")
        return torch.log(n / n.sum())

    @cached_property
    def _entropy(self) -> float:
        n = self._counts("train")
        p = n[n > 0] / n.sum()
        return float(-(p * torch.log(p)).sum())

    def baseline_loss(self, length: int) -> float:
        """H(p_train) nats per character (the class docstring derives it); the same for every L."""
        self._check_length(length)
        return self._entropy

    @property
    def baseline_bits(self) -> float:
        """The baseline in bits per character: H(p_train) / ln 2."""
        return self.bits_per_char(self._entropy)

    @staticmethod
    def bits_per_char(loss_nats) -> float:
        """A loss in nats per character as bits per character: loss / ln 2."""
        if isinstance(loss_nats, torch.Tensor) and loss_nats.numel() == 1:
            loss_nats = loss_nats.item()
        if isinstance(loss_nats, bool) or not isinstance(loss_nats, (int, float, np.floating, np.integer)):
            raise InputError(f"loss_nats: expected a number (nats per character), got {type(loss_nats).__name__}")
        return float(loss_nats) / math.log(2)

    def held_out_unigram_loss(self) -> float:
        """The unigram predictor's loss on the held-out text: -(1/N_held) sum_c m_c ln p_train(c), m_c the
        held-out counts (inf if a held-out character never occurs in training)."""
        m = self._counts("held-out")
        lp = self.unigram_log_probs
        if bool((m[torch.isinf(lp)] > 0).any()):
            return math.inf
        seen = m > 0
        return float(-(m[seen] * lp[seen]).sum() / m.sum())

    @cached_property
    def _pair_counts(self) -> torch.Tensor:
        """(V, V) float64 n_ab: the training pairs (a, b) of consecutive characters inside a run."""
        V = OTHER + 1
        pairs = torch.cat([self.ids[a:b - 1] * V + self.ids[a + 1:b] for a, b in self.runs("train")])
        return torch.bincount(pairs, minlength=V * V).double().view(V, V)

    def bigram_loss(self) -> float:
        """H(c_{t+1} | c_t) on the training split, nats: the best loss of a predictor that sees the current
        character and nothing before it, -sum_{a,b} (n_ab / N) ln(n_ab / n_a), over the pairs inside runs."""
        n_ab = self._pair_counts
        n_a = n_ab.sum(1, keepdim=True).expand_as(n_ab)
        seen = n_ab > 0
        return float(-(n_ab[seen] * torch.log(n_ab[seen] / n_a[seen])).sum() / n_ab.sum())

    @cached_property
    def reference_log_probs(self) -> torch.Tensor:
        """(V, V) float64 ln r(b | a), the success criterion's reference (class docstring), add-1/2 counts:
        bigram (n_ab + 1/2) / (n_a + V/2); unigram (n_b + 1/2) / (N + V/2) in every row a."""
        n = self._pair_counts if self.reference == "bigram" else self._counts("train").expand(OTHER + 1, -1)
        n = n + 0.5
        return torch.log(n / n.sum(1, keepdim=True))

    # -- judging -------------------------------------------------------------------------------------------
    def sequence_loss(self, out: torch.Tensor, batch: Batch) -> torch.Tensor:
        """(B,) each window's mean cross-entropy over its masked steps, nats (the per-sequence terms of loss
        when every window has the same number of masked steps, as here)."""
        out = self._check_out(out, batch)
        m = batch.mask.to(out.device)
        ce = Fn.cross_entropy(out.transpose(1, 2), batch.y.to(out.device), reduction="none")  # (B, T)
        return (ce * m).sum(1) / m.sum(1).clamp(min=1)

    def wrong(self, out: torch.Tensor, batch: Batch) -> torch.Tensor:
        """(B,) bool: the window's mean cross-entropy is not below the reference predictor's on the same
        characters, or an output at a masked step is not finite (the class docstring justifies the rule)."""
        out = self._check_out(out, batch).detach()
        m = batch.mask.to(out.device)
        model = self.sequence_loss(out, batch)
        table = self.reference_log_probs.to(out.device)
        nll = -table[batch.x.to(out.device).argmax(-1), batch.y.to(out.device)]  # (B, T) -ln r(y_t | x_t)
        ref = torch.where(m, nll, torch.zeros_like(nll)).sum(1) / m.sum(1).clamp(min=1)
        finite = (torch.isfinite(out).all(-1) | ~m).all(1)
        return ~finite | ~(model.double() < ref)
