"""Shared checks of the task tests: uniformity by chi-square, exact laws, marker positions, one-hot symbols.

Uniformity checks: a chi-square test against the exact cell probabilities, passing when p > 1e-3, plus every
sample inside its range and both ends of the range hit. A correct generator fails such a check for 0.1% of
seeds; the seeds of the tests are fixed, so the tests are deterministic.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import stats

P_MIN = 1e-3  # chi-square p-value threshold
F64 = torch.float64


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def uniform_ok(samples: torch.Tensor, lo: int, hi: int) -> None:
    """samples (integers) lie in [lo, hi), hit lo and hi - 1, and pass a chi-square test of uniformity."""
    s = samples.flatten().long()
    assert int(s.min()) == lo and int(s.max()) == hi - 1, (int(s.min()), int(s.max()), lo, hi)
    counts = torch.bincount(s - lo, minlength=hi - lo).numpy()
    p = stats.chisquare(counts).pvalue
    assert p > P_MIN, f"chi-square p = {p:.2e} for uniform on [{lo}, {hi})"


def pmf_ok(observed: dict, pmf: dict) -> None:
    """Observed counts over keys against exact probabilities (every observed key must have mass)."""
    assert set(observed) <= set(pmf), set(observed) - set(pmf)
    keys = sorted(pmf)
    n = sum(observed.values())
    obs = np.array([observed.get(k, 0) for k in keys], dtype=float)
    exp = np.array([pmf[k] * n for k in keys])
    p = stats.chisquare(obs, exp).pvalue
    assert p > P_MIN, f"chi-square p = {p:.2e}"


def marked_positions(marker: torch.Tensor, per_row: int) -> torch.Tensor:
    """(B, per_row) sorted positions where marker == 1; asserts exactly per_row per sequence."""
    marked = marker == 1
    assert (marked.sum(1) == per_row).all()
    return marked.nonzero()[:, 1].view(-1, per_row)


def one_hot_symbols(x: torch.Tensor) -> torch.Tensor:
    """(B, T) the symbol of each step of one-hot inputs x (B, T, D); asserts x is one-hot."""
    assert set(x.unique().tolist()) == {0.0, 1.0} and (x.sum(-1) == 1).all()
    return x.argmax(-1)
