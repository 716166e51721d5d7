"""regression_tasks.py (adding-hs97, adding-pascanu, adding-le, multiplication) against their sources'
definitions, re-read from the batches themselves.

Every layout fact is recomputed from x (marker positions, values); targets are recomputed from x with the
task's formula; baselines are checked by Monte Carlo (within 3 standard errors), by exact enumeration of the
marker law, and by the loss of constructed memoryless predictors through task.loss.
"""

import math

import numpy as np
import pytest
import torch

from rnnscope.lab.tasks import get_task
from task_checks import F64, gen, marked_positions, pmf_ok, uniform_ok


# ----------------------------------------------------------------------------------------------------------
# layouts, markers, targets

def hs97_pair_pmf(L: int) -> dict:
    """Exact law of the unordered pair of marked positions, enumerated from the paper's words."""
    m = L // 2 - 1
    pmf: dict = {}
    for p1 in range(10):  # one of the first ten pairs
        unmarked = [i for i in range(L) if i != p1][:m]  # "the first T/2 - 1 still unmarked pairs"
        for p2 in unmarked:
            key = (min(p1, p2), max(p1, p2))
            pmf[key] = pmf.get(key, 0.0) + 1 / (10 * m)
    return pmf


@pytest.mark.parametrize("L", [40, 11])
def test_adding_hs97_layout_markers_and_target(L):
    task = get_task("adding-hs97")
    b = task.sample(20000, L, gen(5))
    T = b.length
    value, marker = b.x[..., 0], b.x[..., 1]
    assert L <= T <= L + L // 10
    assert ((value >= -1) & (value <= 1)).all()
    assert set(marker.unique().tolist()) <= {-1.0, 0.0, 1.0}
    pos = marked_positions(marker, 2)  # (B, 2) sorted
    first_marked = pos[:, 0] == 0
    assert (marker[~first_marked, 0] == -1).all() and (marker[:, -1] == -1).all()  # end markers
    assert ((marker == -1).sum(1) == 2 - first_marked.long()).all()
    assert (value[first_marked, 0] == 0).all() and (value[~first_marked, 0] != 0).all()  # first pair zeroed
    observed: dict = {}
    for key in map(tuple, pos.tolist()):
        observed[key] = observed.get(key, 0) + 1
    pmf_ok(observed, hs97_pair_pmf(L))
    rows = torch.arange(b.n)
    target = 0.5 + (value[rows, pos[:, 0]] + value[rows, pos[:, 1]]) / 4
    torch.testing.assert_close(b.y[:, -1, 0], target, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", ["adding-pascanu", "multiplication"])
def test_pascanu_layout_markers_and_target(name):
    task = get_task(name)
    b = task.sample(4000, 50, gen(6))
    T = b.length
    marker, value = b.x[..., 0], b.x[..., 1]  # markers on channel 0, values on channel 1 (Pascanu's code)
    assert set(marker.unique().tolist()) == {0.0, 1.0}
    assert ((value >= 0) & (value <= 1)).all()
    pos = marked_positions(marker, 2)
    uniform_ok(pos[:, 0], 0, T // 10)  # p0 in [0, 0.1 T')
    uniform_ok(pos[:, 1], T // 10, T // 10 + int(0.4 * T))  # p1 in [0.1 T', 0.5 T')
    rows = torch.arange(b.n)
    a, c = value[rows, pos[:, 0]], value[rows, pos[:, 1]]
    target = (a + c) / 2 if name == "adding-pascanu" else a * c
    torch.testing.assert_close(b.y[:, -1, 0], target, rtol=0, atol=1e-6)


@pytest.mark.parametrize("L", [41, 2])
def test_adding_le_layout_markers_and_target(L):
    b = get_task("adding-le").sample(4000, L, gen(7))
    value, marker = b.x[..., 0], b.x[..., 1]
    assert b.length == L
    assert ((value >= 0) & (value <= 1)).all()
    assert set(marker.unique().tolist()) <= {0.0, 1.0}
    pos = marked_positions(marker, 2)
    half = L // 2
    if half > 1:
        uniform_ok(pos[:, 0], 0, half)  # first half
        uniform_ok(pos[:, 1], half, L)  # second half
    else:
        assert (pos[:, 0] == 0).all() and (pos[:, 1] == 1).all()
    rows = torch.arange(b.n)
    torch.testing.assert_close(b.y[:, -1, 0], value[rows, pos[:, 0]] + value[rows, pos[:, 1]], rtol=0, atol=1e-6)


# ----------------------------------------------------------------------------------------------------------
# baselines

def hs97_baseline_by_enumeration(L: int) -> float:
    """Var(0.5 + (X1 + X2)/4) = (E X1^2 + E X2^2)/16, E X^2 = 1/3 unless the pair is the first one (X = 0)."""
    m = L // 2 - 1
    e_x1 = e_x2 = 0.0
    for p1 in range(10):
        e_x1 += (p1 != 0) / 3 / 10
        unmarked = [i for i in range(L) if i != p1][:m]
        e_x2 += sum((p2 != 0) / 3 for p2 in unmarked) / (10 * m)
    return (e_x1 + e_x2) / 16


@pytest.mark.parametrize("L", [11, 12, 20, 100, 1001])
def test_hs97_baseline_closed_form_matches_enumeration(L):
    assert get_task("adding-hs97").baseline_loss(L) == pytest.approx(hs97_baseline_by_enumeration(L), rel=1e-12)


@pytest.mark.parametrize("name,mean,L", [
    ("adding-le", 1.0, 40),  # E[a + b]
    ("adding-pascanu", 0.5, 40),  # E[(a + b)/2]
    ("multiplication", 0.25, 40),  # E[a b]
    ("adding-hs97", 0.5, 11),  # E[0.5 + (X1 + X2)/4]; m = 4 makes X2's zeroing visible
    ("adding-hs97", 0.5, 100),
])
def test_regression_baseline_by_monte_carlo(name, mean, L):
    task = get_task(name)
    n = 40000
    b = task.sample(n, L, gen(12))
    target = b.y[:, -1, 0].double()
    assert abs(float(target.mean()) - mean) < 3 * float(target.std()) / math.sqrt(n)
    out = torch.full(b.y.shape, mean, dtype=F64)  # the constant predictor
    sq = (mean - target) ** 2
    loss = float(task.loss(out, b))
    assert loss == pytest.approx(float(sq.mean()), rel=1e-9)  # loss = mean squared error at the masked step
    assert abs(loss - task.baseline_loss(L)) < 3 * float(sq.std()) / math.sqrt(n)


def test_adding_le_baseline_is_one_sixth():
    # Var(a + b) = 2 Var(a) = 2 (1/12), a ~ U[0, 1]; Var(U[0, 1]) by quadrature of (u - 1/2)^2 on [0, 1]
    u = (np.arange(100000) + 0.5) / 100000
    var_u = float(np.mean((u - 0.5) ** 2))
    assert get_task("adding-le").baseline_loss(100) == pytest.approx(2 * var_u, rel=1e-8)


# ----------------------------------------------------------------------------------------------------------
# loss and the success criterion

def test_regression_loss_is_mean_squared_error_over_masked_entries():
    task = get_task("adding-le")
    b = task.sample(5, 12, gen(17))
    out = torch.randn(5, 12, 1, generator=gen(18), dtype=F64)
    ref = sum((float(out[i, t, 0]) - float(b.y[i, t, 0])) ** 2
              for i in range(5) for t in range(12) if b.mask[i, t]) / int(b.mask.sum())
    assert float(task.loss(out, b)) == pytest.approx(ref, rel=1e-12)


@pytest.mark.parametrize("name,inside,outside", [
    ("adding-hs97", 0.0399, 0.0401),  # correct iff |error| < 0.04
    ("adding-pascanu", 0.1999, 0.2001),  # wrong iff error^2 > 0.04, i.e. |error| > 0.2
    ("multiplication", 0.1999, 0.2001),
    ("adding-le", 0.1999, 0.2001),
])
def test_regression_wrong_threshold(name, inside, outside):
    task = get_task(name)
    b = task.sample(40, 30, gen(21))
    y = b.y.double()
    junk = torch.randn(y.shape, generator=gen(22), dtype=F64) * 10 * (~b.mask).unsqueeze(-1)  # unjudged steps
    assert not task.wrong(y + junk, b).any()
    assert float(task.loss(y, b)) == 0.0
    for sign in (1, -1):
        assert not task.wrong(y + junk + sign * inside * b.mask.unsqueeze(-1), b).any()
        assert task.wrong(y + junk + sign * outside * b.mask.unsqueeze(-1), b).all()
    nan = y.clone()
    nan[3, -1, 0] = math.nan
    assert task.wrong(nan, b).tolist() == [i == 3 for i in range(40)]
