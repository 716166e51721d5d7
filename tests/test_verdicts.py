"""interop/verdicts.py: the far distance and the verdict of a profile, on geometric profiles y_k = (T - k) log10 r
whose distances are closed forms (the first d with d |log10 r| >= decades), and on exact zeros.

The results' to_dict / summary / plot are tested on a real diagnosis in tests/test_diagnose.py.
"""

from __future__ import annotations

import math

import pytest
import torch

from rnnscope.gradients.bounds import fitted_rate, horizon
from rnnscope.interop.verdicts import FAR_DECADES, first_far, profile_verdict

F64 = torch.float64


def geometric(r: float, T: int) -> torch.Tensor:
    """log10 r^(T-k) for k = 1..T: element k-1 is step k, 0 at k = T."""
    return (T - torch.arange(1, T + 1, dtype=F64)) * math.log10(r)


@pytest.mark.parametrize("r", [0.5, 0.7, 0.9])
def test_first_far_of_a_geometric_profile_is_its_closed_form(r):
    T = 200
    assert first_far(geometric(r, T)) == math.ceil(FAR_DECADES / -math.log10(r))  # 20, 39, 132
    assert first_far(geometric(r, 10)) is None  # 10 steps do not fall by 10^6 at any of these rates


def test_first_far_at_exact_zeros_and_rising_profiles():
    assert first_far(torch.tensor([-1.0, float("-inf"), -0.5, 0.0], dtype=F64)) == 2  # zero 2 steps back
    assert first_far(geometric(3.0, 50)) is None  # rising: never below the most recent
    assert first_far(torch.tensor([0.0, float("-inf")], dtype=F64)) is None  # no gradient at k = T: no base


@pytest.mark.parametrize("r,word", [(0.5, "vanishing"), (2.0, "exploding"), (1.0, "stable over the measured range (d = 0..59)")])
def test_verdict_words_follow_the_horizon(r, word):
    T = 60
    y = geometric(r, T)
    rate, (h, kind) = fitted_rate(y), horizon(y)
    v = profile_verdict("adjoint", rate, h, kind, T)
    assert v.startswith(word) and "||dL/dh_k||" in v
    assert rate == pytest.approx(math.log10(r), abs=1e-12)
    if r != 1.0:  # moved by 10^3 first at d = ceil(3 / |log10 r|) = 10 for r = 1/2 and 2
        assert f"at d = {math.ceil(3 / abs(math.log10(r)))} " in v
    assert profile_verdict("spectral", None, None, None, 1).startswith("too short to tell: ||ds_T/ds_k||_2")
