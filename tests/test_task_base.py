"""task_base.py: the sampled-length mode (Pascanu's L ~ U{MIN..MAX} per batch) against its law, and the
baseline of drawn lengths against a Monte Carlo average of the memoryless predictor's loss.

The law of `draw_length`: 30,000 draws from U{50..199} (Pascanu's own range) by a chi-square test against the
uniform counts (p > 1e-3, every value inside, both ends hit), and an exact count on a tiny range: the
empirical frequency of each of 3 values within 5 binomial standard deviations of 1/3.
"""

import math

import pytest
import torch

from rnnscope.core.errors import InputError
from rnnscope.lab.tasks import check_length_range, draw_length, get_task, range_baseline_loss
from task_checks import F64, gen, uniform_ok


def test_draw_length_is_uniform_on_pascanus_range_both_ends_included():
    g = gen(30)
    lengths = torch.tensor([draw_length((50, 199), g) for _ in range(30000)])
    uniform_ok(lengths, 50, 200)  # U{50..199}: his min_length 50, max_length 200 exclusive


def test_draw_length_frequencies_on_a_tiny_range():
    g = gen(31)
    n = 9000
    counts = torch.bincount(torch.tensor([draw_length((4, 6), g) for _ in range(n)]) - 4, minlength=3)
    sd = math.sqrt(n * (1 / 3) * (2 / 3))
    assert counts.sum() == n and all(abs(int(c) - n / 3) < 5 * sd for c in counts)


def test_a_range_of_one_length_draws_nothing():
    g = gen(32)
    state = g.get_state()
    assert draw_length((7, 7), g) == 7 and torch.equal(g.get_state(), state)


def test_draw_length_is_seeded():
    g1, g2, g3 = gen(33), gen(33), gen(34)
    a, b, c = ([draw_length((10, 99), g) for _ in range(20)] for g in (g1, g2, g3))
    assert a == b and a != c


@pytest.mark.parametrize("bad", [(5, 4), (0, 3), (3,), [1, 2, 3], (1.0, 2), (True, 3), "1:3", None])
def test_bad_length_ranges_are_refused(bad):
    with pytest.raises(InputError, match="length_range: expected .*got"):
        check_length_range(bad)


def test_length_range_from_a_list_becomes_a_tuple():
    assert check_length_range([50, 199]) == (50, 199)


@pytest.mark.parametrize("name,lo,hi", [("copy", 5, 12), ("memorization", 1, 9), ("adding-hs97", 11, 30)])
def test_range_baseline_by_monte_carlo_over_drawn_lengths(name, lo, hi):
    """The memoryless predictor's loss on batches whose L is drawn per batch, averaged over 600 batches, against
    range_baseline_loss; the predictor at each L is the task's own closed-form one (copy, memorization: the
    layout predictor; adding-hs97: the constant 0.5, whose batch loss fluctuates: 4 standard errors)."""
    task = get_task(name)
    g = gen(34)
    losses = []
    for _ in range(600):
        L = draw_length((lo, hi), g)
        b = task.sample(64, L, g)
        if name == "adding-hs97":
            out = torch.full(b.y.shape, 0.5, dtype=F64)
        else:  # certain blank until the last 10 steps, uniform over the symbols there
            blank = values = 8 if name == "copy" else 5  # copy: a0..a7, blank a8; memorization: 5 values, blank 5
            out = torch.full((b.n, b.length, task.output_size), -math.inf, dtype=F64)
            out[:, :b.length - 10, blank] = 0.0
            out[:, b.length - 10:, :values] = 0.0
        losses.append(float(task.loss(out, b)))
    mc = sum(losses) / len(losses)
    se = math.sqrt(sum((v - mc) ** 2 for v in losses) / (len(losses) - 1) / len(losses))
    expected = sum(task.baseline_loss(L) for L in range(lo, hi + 1)) / (hi - lo + 1)
    assert range_baseline_loss(task, (lo, hi)) == pytest.approx(expected, rel=1e-12)
    assert abs(mc - expected) < 4 * se + 1e-12, (mc, expected, se)
