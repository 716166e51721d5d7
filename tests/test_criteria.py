"""criteria.py: the two success criteria against the rules written out here.

Pascanu's: his code (trainingRNNs/RNN.py) averages the error over ebs // cbs = 10 chunks of 1,000, in percent,
and stops when `error < .0001 and numpy.isfinite(valid_cost)`; the reference below is that line, applied
to the chunks' error fractions. Lenient: wrong / n < 0.01.
"""

import math

import numpy as np
import pytest

from rnnscope.core.errors import InputError
from rnnscope.lab.criteria import CRITERION_NAMES, get_criterion


def pascanus_stop(wrong_per_chunk: list[int], valid_cost: float, cbs: int = 1000) -> bool:
    """The stopping test of Pascanu's code, line by line: error = 100 * mean over chunks of the chunk's error."""
    error = sum(w / cbs for w in wrong_per_chunk) * 100.0 / len(wrong_per_chunk)
    return bool(error < .0001 and np.isfinite(valid_cost))


@pytest.mark.parametrize("wrong", [[0] * 10, [1] + [0] * 9, [0] * 9 + [1], [3] * 10, [1000] * 10])
@pytest.mark.parametrize("cost", [0.01, math.inf, math.nan])
def test_pascanu_is_his_stopping_rule(wrong, cost):
    assert get_criterion("pascanu").solved(sum(wrong), 10_000, cost) == pascanus_stop(wrong, cost)


@pytest.mark.parametrize("wrong,n", [(0, 1000), (9, 1000), (10, 1000), (11, 1000), (4, 500), (5, 500), (0, 64)])
def test_lenient_is_an_error_rate_below_one_percent(wrong, n):
    assert get_criterion("lenient").solved(wrong, n, 0.5) == (wrong * 100 < n)
    assert get_criterion("lenient").solved(wrong, n, math.nan) == (wrong * 100 < n)  # the lenient one ignores the loss


def test_names_sequences_and_words():
    assert CRITERION_NAMES == ("lenient", "pascanu")
    p, le = get_criterion("pascanu"), get_criterion("lenient")
    assert (p.default_sequences, p.min_sequences, le.default_sequences, le.min_sequences) == (10_000, 10_000, 1000, 1)
    assert p.describe() == "pascanu: zero errors in 10,000 fresh sequences"
    assert le.describe(500) == "lenient: error rate < 1% of 500 fresh sequences"
    assert p.to_dict()["name"] == "pascanu" and "RNN.py" in p.to_dict()["source"]
    assert p.check_sequences(20_000) == 20_000 and le.check_sequences(1) == 1


def test_bad_names_and_too_few_sequences():
    with pytest.raises(InputError, match="criterion: expected one of lenient, pascanu, got 'strict'"):
        get_criterion("strict")
    with pytest.raises(InputError, match="eval_size: expected at least 10,000 .* got 1,000"):
        get_criterion("pascanu").check_sequences(1000)
