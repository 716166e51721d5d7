"""The literature's long-memory tasks as seeded batch generators, by name: `get_task(name)`, `TASK_NAMES`.

Every task makes a `Batch` of B sequences of T' steps, batch first (task_base.py: x (B, T', D), y (B, T', O)
or (B, T') class indices, mask (B, T') the steps the loss covers), and knows its loss, its success
criterion (`wrong`, per sequence) and its memoryless baseline. L is the nominal length passed to `sample`.

    name                 source                            T'                 D / O      loss at      baseline
    adding-hs97          Hochreiter & Schmidhuber 1997     L + U{0..L//10}    2 / 1      last step    (19-9/m)/480, m=L//2-1
    adding-pascanu       Pascanu et al. 2013, code         L + U{0..L//10-1}  2 / 1      last step    1/24
    adding-le            Le 2015, Arjovsky 2016            L                  2 / 1      last step    1/6
    multiplication       Pascanu et al. 2013, code         L + U{0..L//10-1}  2 / 1      last step    7/144
    temporal-order       Pascanu et al. 2013, code         L                  6 / 4      last step    ln 4
    temporal-order-3bit  Pascanu et al. 2013, code         L                  6 / 8      last step    ln 8
    permutation          Pascanu et al. 2013, code         L                  100 / 100  last step    ln 2
    memorization         Pascanu et al. 2013, code         L + 20             7 / 6      every step   10 ln 5 / (L + 20)
    memorization-recall  rnnscope (recall-only loss)       L + 20             7 / 5      last 10      ln 5
    copy                 Arjovsky, Shah & Bengio 2016      L + 20             10 / 9     every step   10 ln 8 / (L + 20)
    delayed-xor          Engelken 2023, code (L = delay)   300 (steps)        1 / 1      t > 2L       ln 2
    delayed-copy         Engelken 2023, code (L = delay)   300 (steps)        1 / 1      t > L        ln 2
    charlm               pydoc_data.topics, next char      L                  97 / 97    every step   unigram entropy (text_tasks.py)

The first four are regression (MSE; regression_tasks.py), the rest classification (cross-entropy on
logits; classification_tasks.py; the two delayed bit-stream tasks of gradient flossing: binary cross-entropy on
one logit, flossing_tasks.py). The baseline is the loss of the best predictor that knows the layout but
remembers nothing of the input (each class docstring derives it). "Pascanu et al. 2013, code" is the code
of "On the difficulty of training recurrent neural networks" (Pascanu, Mikolov & Bengio, ICML 2013),
github.com/pascanur/trainingRNNs; its training loop draws a nominal L ~ U{MIN..MAX} per batch
(`draw_length`, task_base.py).

Example:
    >>> task = get_task("adding-le")
    >>> batch = task.sample(4, 50, torch.Generator().manual_seed(0))
    >>> tuple(batch.x.shape), tuple(batch.y.shape), int(batch.mask.sum())
    ((4, 50, 2), (4, 50, 1), 4)
    >>> round(task.baseline_loss(50), 4), round(get_task("memorization").baseline_loss(100), 5)
    (0.1667, 0.13412)
"""

from __future__ import annotations

import torch  # noqa: F401  (the examples use it)

from ..core.errors import InputError
from .classification_tasks import Copy, Memorization, MemorizationRecall, Permutation, TemporalOrder
from .flossing_tasks import DelayedCopy, DelayedXOR
from .regression_tasks import AddingHS97, AddingLe, AddingPascanu, Multiplication
from .task_base import KINDS, Batch, Task, check_length_range, draw_length, range_baseline_loss
from .text_tasks import CharLM

__all__ = [
    "Batch", "Task", "TASK_NAMES", "get_task", "KINDS", "check_length_range", "draw_length", "range_baseline_loss",
    "AddingHS97", "AddingPascanu", "AddingLe", "Multiplication", "TemporalOrder", "Permutation",
    "Memorization", "MemorizationRecall", "Copy", "DelayedXOR", "DelayedCopy",
]

_FACTORIES = {
    "adding-hs97": AddingHS97,
    "adding-pascanu": AddingPascanu,
    "adding-le": AddingLe,
    "multiplication": Multiplication,
    "temporal-order": lambda: TemporalOrder(2),
    "temporal-order-3bit": lambda: TemporalOrder(3),
    "permutation": Permutation,
    "memorization": Memorization,
    "memorization-recall": MemorizationRecall,
    "copy": Copy,
    "delayed-xor": DelayedXOR,
    "delayed-copy": DelayedCopy,
    "charlm": CharLM,
}
TASK_NAMES = tuple(_FACTORIES)


def get_task(name: str) -> Task:
    """The task called name, with its default parameters (one of TASK_NAMES).

    >>> get_task("copy").output_size, get_task("memorization").output_size, get_task("memorization-recall").output_size
    (9, 6, 5)
    """
    if not isinstance(name, str) or name not in _FACTORIES:
        raise InputError(f"task: expected one of {', '.join(TASK_NAMES)}, got {name!r}")
    return _FACTORIES[name]()
