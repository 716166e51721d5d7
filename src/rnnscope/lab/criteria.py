"""The success criteria of a training run, named for what they are.

An evaluation runs the network on N fresh sequences (never seen in training) and counts the wrong ones by
the task's own per-sequence test (task.wrong: a class missed at a judged step, or a regression error past
the task's tolerance). A run is "solved" at the first evaluation that meets its criterion:

    pascanu   zero wrong sequences in N >= 10,000 fresh ones, with a finite validation loss.
              Pascanu, Mikolov & Bengio 2013's code (trainingRNNs/RNN.py) evaluates ebs = 10,000
              sequences (in chunks of cbs = 1,000, each chunk with its own drawn length) and stops only at
              `error < .0001` with error in percent: below 0.0001 % of 10,000, i.e. no error at all.
    lenient   error rate below 1 % of N fresh sequences (N = 1,000 by default: the rate is resolved to
              0.1 %). rnnscope's criterion for CPU budgets: a run is budgeted thousands of updates, not
              Pascanu's up to 5,000,000, and a 1 % rate is reached long before zero errors in 10,000.

A lenient "solved" is not a Pascanu "solved": results and study tables say which criterion was used.

Example:
    >>> c = get_criterion("pascanu")
    >>> c.solved(wrong=0, n=10_000, loss=0.01), c.solved(wrong=1, n=10_000, loss=0.01)
    (True, False)
    >>> get_criterion("lenient").solved(wrong=9, n=1_000, loss=0.1), get_criterion("lenient").describe()
    (True, 'lenient: error rate < 1% of 1,000 fresh sequences')
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..core.errors import InputError

__all__ = ["Criterion", "CRITERIA", "CRITERION_NAMES", "get_criterion", "LENIENT_BELOW", "PASCANU_SEQUENCES"]

LENIENT_BELOW = 0.01  # lenient: fewer than 1 % of the fresh sequences wrong
LENIENT_SEQUENCES = 1_000  # ... of 1,000 by default
PASCANU_SEQUENCES = 10_000  # Pascanu's code: state['ebs'] = 10000 validation sequences, and zero errors among them


@dataclass(frozen=True)
class Criterion:
    """A success criterion: `solved(wrong, n, loss)` for an evaluation of n fresh sequences, wrong of them wrong.

    max_error_rate: solved iff wrong / n < max_error_rate (None: iff wrong == 0); min_sequences: the fewest
    sequences an evaluation may have (the criterion means nothing on fewer); default_sequences: N when the
    run does not say; finite_loss: the validation loss must also be finite.
    """

    name: str
    rule: str
    source: str
    max_error_rate: float | None
    min_sequences: int
    default_sequences: int
    finite_loss: bool

    def check_sequences(self, n: int) -> int:
        """n, if an evaluation of n sequences can decide this criterion."""
        if n < self.min_sequences:
            raise InputError(f"eval_size: expected at least {self.min_sequences:,} fresh sequences for the "
                             f"{self.name} criterion ({self.rule}), got {n:,}")
        return n

    def solved(self, wrong: int, n: int, loss: float) -> bool:
        """Whether an evaluation with `wrong` of `n` sequences wrong and validation loss `loss` meets it."""
        if n < 1 or (self.finite_loss and not math.isfinite(loss)):
            return False
        if self.max_error_rate is None:
            return wrong == 0
        return wrong / n < self.max_error_rate

    def describe(self, n: int | None = None) -> str:
        """The rule for evaluations of n fresh sequences (default: this criterion's number), in words."""
        n = self.default_sequences if n is None else n
        if self.max_error_rate is None:
            return f"{self.name}: zero errors in {n:,} fresh sequences"
        return f"{self.name}: error rate < {100 * self.max_error_rate:g}% of {n:,} fresh sequences"

    def to_dict(self) -> dict:
        return {"name": self.name, "rule": self.rule, "source": self.source}


CRITERIA = {
    "lenient": Criterion("lenient", "error rate < 1% of the fresh sequences (1,000 by default)",
                         "rnnscope, for CPU budgets", LENIENT_BELOW, 1, LENIENT_SEQUENCES, False),
    "pascanu": Criterion("pascanu", "zero errors in at least 10,000 fresh sequences, finite loss",
                         "Pascanu et al. 2013, code (trainingRNNs/RNN.py: ebs = 10000, stop at error < .0001 %)",
                         None, PASCANU_SEQUENCES, PASCANU_SEQUENCES, True),
}
CRITERION_NAMES = tuple(CRITERIA)


def get_criterion(name: str) -> Criterion:
    """The criterion called name (one of CRITERION_NAMES)."""
    if not isinstance(name, str) or name not in CRITERIA:
        raise InputError(f"criterion: expected one of {', '.join(CRITERION_NAMES)}, got {name!r}")
    return CRITERIA[name]
