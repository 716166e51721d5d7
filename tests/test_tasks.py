"""tasks.py against the definitions of REFERENCE.md section 3, re-read from the batches themselves.

Every layout fact is recomputed from x (marker positions, values, symbols); targets are recomputed from x
with the task's formula; baselines are checked by Monte Carlo (within 3 standard errors), by exact
enumeration of the marker law, and by the loss of constructed memoryless predictors through task.loss.

Uniformity checks: a chi-square test against the exact cell probabilities, passing when p > 1e-3, plus
every sample inside its range and both ends of the range hit. A correct generator fails such a check for
0.1% of seeds; the seeds here are fixed, so the tests are deterministic.
"""

import math
import re

import numpy as np
import pytest
import torch
from scipy import stats

from rnnscope.core.errors import InputError
from rnnscope.lab.tasks import (TASK_NAMES, AddingHS97, Batch, Memorization, TemporalOrder, get_task)

P_MIN = 1e-3  # chi-square p-value threshold
F64 = torch.float64

# (D, O, kind, minimal L), read from the task definitions (not from the library)
SPEC = {
    "adding-hs97": (2, 1, "regression", 11),
    "adding-pascanu": (2, 1, "regression", 10),
    "adding-le": (2, 1, "regression", 2),
    "multiplication": (2, 1, "regression", 10),
    "temporal-order": (6, 4, "classification", 10),
    "temporal-order-3bit": (6, 8, "classification", 10),
    "permutation": (100, 100, "classification", 2),
    "memorization": (7, 5, "classification", 1),
    "copy": (10, 9, "classification", 1),
}


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


# ----------------------------------------------------------------------------------------------------------
# names, shapes, masks, seeding, lengths

def test_task_names_and_sizes():
    assert set(TASK_NAMES) == set(SPEC) and len(TASK_NAMES) == 9
    for name, (D, O, kind, min_L) in SPEC.items():
        task = get_task(name)
        assert (task.name, task.input_size, task.output_size, task.kind, task.min_length) == (name, D, O, kind, min_L)
        assert task.to_dict()["name"] == name


@pytest.mark.parametrize("name", TASK_NAMES)
def test_shapes_dtypes_and_mask(name):
    task = get_task(name)
    D, O, kind, _ = SPEC[name]
    L, B = 40, 7
    b = task.sample(B, L, gen(0))
    T = b.length
    assert b.n == B
    assert tuple(b.x.shape) == (B, T, D) and b.x.dtype == torch.float32
    assert tuple(b.mask.shape) == (B, T) and b.mask.dtype == torch.bool
    if kind == "regression":
        assert tuple(b.y.shape) == (B, T, O) and b.y.dtype == torch.float32
        assert (b.y[~b.mask] == 0).all()
    else:
        assert tuple(b.y.shape) == (B, T) and b.y.dtype == torch.int64
        assert (b.y[~b.mask] == 0).all()
        assert ((b.y >= 0) & (b.y < O)).all()
    expected_mask = torch.zeros(B, T, dtype=torch.bool)
    if name == "memorization":
        expected_mask[:, -10:] = True  # the last n_pos steps
    elif name == "copy":
        expected_mask[:] = True  # mean CE over all steps
    else:
        expected_mask[:, -1] = True  # the last step only
    assert torch.equal(b.mask, expected_mask)
    expected_T = {"memorization": L + 20, "copy": L + 20, "adding-hs97": None, "adding-pascanu": None,
                  "multiplication": None}.get(name, L)
    if expected_T is not None:
        assert T == expected_T


@pytest.mark.parametrize("name", TASK_NAMES)
def test_seeding(name):
    task = get_task(name)
    a, b = task.sample(5, 30, gen(11)), task.sample(5, 30, gen(11))
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y) and torch.equal(a.mask, b.mask)
    c = task.sample(5, 30, gen(12))
    assert a.x.shape != c.x.shape or not torch.equal(a.x, c.x)
    g = gen(11)
    first, second = task.sample(5, 30, g), task.sample(5, 30, g)  # one generator: successive batches differ
    assert torch.equal(first.x, a.x)
    assert first.x.shape != second.x.shape or not torch.equal(first.x, second.x)


@pytest.mark.parametrize("name,L,lo,hi", [
    ("adding-hs97", 100, 100, 111),  # uniform in [L, L + L/10], both ends included
    ("adding-hs97", 11, 11, 13),
    ("adding-pascanu", 100, 100, 110),  # L + U{0..0.1L - 1}
    ("multiplication", 57, 57, 62),
])
def test_variable_lengths_cover_their_range_uniformly(name, L, lo, hi):
    task = get_task(name)
    g = gen(3)
    lengths = torch.tensor([task.actual_length(L, g) for _ in range(2000)])
    uniform_ok(lengths, lo, hi)
    for seed in range(10):  # sample draws T' exactly as actual_length does, once per batch
        assert task.sample(3, L, gen(seed)).length == task.actual_length(L, gen(seed))


@pytest.mark.parametrize("name,extra", [("adding-le", 0), ("temporal-order", 0), ("temporal-order-3bit", 0),
                                        ("permutation", 0), ("memorization", 20), ("copy", 20)])
def test_fixed_lengths_draw_nothing(name, extra):
    task = get_task(name)
    g = gen(4)
    state = g.get_state()
    assert task.actual_length(37, g) == 37 + extra
    assert torch.equal(g.get_state(), state)


# ----------------------------------------------------------------------------------------------------------
# the adding family and multiplication

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
# classification tasks: layouts

def one_hot_symbols(x: torch.Tensor) -> torch.Tensor:
    assert set(x.unique().tolist()) == {0.0, 1.0} and (x.sum(-1) == 1).all()
    return x.argmax(-1)


@pytest.mark.parametrize("bits,slots", [(2, ((5, 10), (25, 30))), (3, ((5, 10), (15, 20), (30, 35)))])
def test_temporal_order_layout_and_class(bits, slots):
    L = 50  # slots [0.1L, 0.2L), [0.5L, 0.6L); 3-bit [0.1L, 0.2L), [0.3L, 0.4L), [0.6L, 0.7L)
    task = TemporalOrder(bits)
    b = task.sample(4000, L, gen(8))
    sym = one_hot_symbols(b.x)
    is_ab = sym < 2
    assert (is_ab.sum(1) == bits).all()
    pos = is_ab.nonzero()[:, 1].view(-1, bits)  # sorted: slot order
    rows = torch.arange(b.n)
    cls = torch.zeros(b.n, dtype=torch.int64)
    for i, (lo, hi) in enumerate(slots):
        uniform_ok(pos[:, i], lo, hi)
        cls += sym[rows, pos[:, i]] << i  # Pascanu's code: v0 + 2 v1 (+ 4 v2), A = 0, B = 1
    assert torch.equal(b.y[:, -1], cls)
    uniform_ok(cls, 0, 2 ** bits)  # the classes are uniform
    uniform_ok(sym[~is_ab], 2, 6)  # distractors uniform over channels 2..5


def test_permutation_layout_and_class():
    b = get_task("permutation").sample(2000, 30, gen(9))
    sym = one_hot_symbols(b.x)
    uniform_ok(sym[:, 0], 0, 2)  # the first symbol: 0 or 1
    uniform_ok(sym[:, 1:], 2, 100)  # the rest: U{2..99}
    assert torch.equal(b.y[:, -1], sym[:, 0])


@pytest.mark.parametrize("n_values,n_pos,L", [(5, 10, 7), (3, 4, 1)])
def test_memorization_layout_and_targets(n_values, n_pos, L):
    task = Memorization(n_values, n_pos)
    b = task.sample(1000, L, gen(10))
    T = L + 2 * n_pos
    blank, trigger = n_values, n_values + 1
    assert b.length == T and task.input_size == n_values + 2 and task.output_size == n_values
    sym = one_hot_symbols(b.x)
    uniform_ok(sym[:, :n_pos], 0, n_values)  # the sequence
    rest = torch.full((T - n_pos,), blank)
    rest[L] = trigger  # the trigger at step L + n_pos
    assert (sym[:, n_pos:] == rest).all()
    assert torch.equal(b.y[:, L + n_pos:], sym[:, :n_pos])  # the sequence at the last n_pos steps
    assert b.mask[:, L + n_pos:].all() and not b.mask[:, :L + n_pos].any()


@pytest.mark.parametrize("L", [1, 30])
def test_copy_layout_and_targets(L):
    b = get_task("copy").sample(1000, L, gen(11))
    T = L + 20
    sym = one_hot_symbols(b.x)
    assert b.length == T
    uniform_ok(sym[:, :10], 0, 8)  # 10 symbols from a0..a7
    expected_rest = torch.tensor([8] * (L - 1) + [9] + [8] * 10)  # L - 1 blanks, delimiter, 10 blanks
    assert (sym[:, 10:] == expected_rest).all()
    assert (b.y[:, :L + 10] == 8).all() and torch.equal(b.y[:, L + 10:], sym[:, :10])
    assert b.mask.all()


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


@pytest.mark.parametrize("L", [1, 10, 50, 100])
def test_copy_baseline_is_the_loss_of_the_memoryless_predictor(L):
    task = get_task("copy")
    b = task.sample(6, L, gen(13))
    out = torch.full((6, L + 20, 9), -math.inf, dtype=F64)
    out[:, :L + 10, 8] = 0.0  # certain blank where the target is always blank
    out[:, L + 10:, :8] = 0.0  # uniform over a0..a7 where a symbol is due
    expected = 10 * math.log(8) / (L + 20)
    assert float(task.loss(out, b)) == pytest.approx(expected, rel=1e-12, abs=1e-15)
    assert task.baseline_loss(L) == pytest.approx(expected, rel=1e-12)
    assert task.wrong(out, b).sum() <= 6  # defined (no NaN) on these logits


@pytest.mark.parametrize("name,n_classes", [("temporal-order", 4), ("temporal-order-3bit", 8)])
def test_temporal_order_chance_loss_and_error(name, n_classes):
    task = get_task(name)
    b = task.sample(4000, 30, gen(14))
    uniform = torch.zeros(b.n, b.length, n_classes, dtype=F64)
    assert float(task.loss(uniform, b)) == pytest.approx(math.log(n_classes), rel=1e-12)
    assert task.baseline_loss(30) == pytest.approx(math.log(n_classes), rel=1e-12)
    constant = uniform.clone()
    constant[..., 0] = 1.0  # always guess class 0: error 1 - 1/n_classes
    err = task.wrong(constant, b).double()
    p = 1 - 1 / n_classes
    assert abs(float(err.mean()) - p) < 3 * math.sqrt(p * (1 - p) / b.n)


def test_permutation_baseline_is_ln2():
    task = get_task("permutation")
    b = task.sample(50, 20, gen(15))
    out = torch.full((50, 20, 100), -math.inf, dtype=F64)
    out[..., :2] = 0.0  # 1/2 on each of 0 and 1
    assert float(task.loss(out, b)) == pytest.approx(math.log(2), rel=1e-12)
    assert task.baseline_loss(20) == pytest.approx(math.log(2), rel=1e-12)


@pytest.mark.parametrize("n_values,n_pos", [(5, 10), (3, 4)])
def test_memorization_baseline(n_values, n_pos):
    task = Memorization(n_values, n_pos)
    b = task.sample(20, 5, gen(16))
    uniform = torch.zeros(20, b.length, n_values, dtype=F64)
    assert float(task.loss(uniform, b)) == pytest.approx(math.log(n_values), rel=1e-12)
    assert task.baseline_loss(5) == pytest.approx(n_pos * math.log(n_values) / n_pos, rel=1e-12)


# ----------------------------------------------------------------------------------------------------------
# losses and the success criterion

def test_regression_loss_is_mean_squared_error_over_masked_entries():
    task = get_task("adding-le")
    b = task.sample(5, 12, gen(17))
    out = torch.randn(5, 12, 1, generator=gen(18), dtype=F64)
    ref = sum((float(out[i, t, 0]) - float(b.y[i, t, 0])) ** 2
              for i in range(5) for t in range(12) if b.mask[i, t]) / int(b.mask.sum())
    assert float(task.loss(out, b)) == pytest.approx(ref, rel=1e-12)


@pytest.mark.parametrize("name", ["memorization", "copy", "temporal-order"])
def test_classification_loss_is_mean_cross_entropy_over_masked_steps(name):
    task = get_task(name)
    b = task.sample(3, 10, gen(19))
    out = torch.randn(3, b.length, task.output_size, generator=gen(20), dtype=F64)
    terms = []
    for i in range(3):
        for t in range(b.length):
            if b.mask[i, t]:
                row = out[i, t].tolist()
                top = max(row)
                lse = top + math.log(sum(math.exp(v - top) for v in row))
                terms.append(lse - row[int(b.y[i, t])])
    assert float(task.loss(out, b)) == pytest.approx(sum(terms) / len(terms), rel=1e-12)


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


@pytest.mark.parametrize("name", ["temporal-order", "temporal-order-3bit", "permutation", "memorization", "copy"])
def test_classification_wrong_flags_exactly_the_failed_sequences(name):
    task = get_task(name)
    b = task.sample(6, 20, gen(23))
    O = task.output_size
    perfect = 30.0 * torch.nn.functional.one_hot(b.y, O).double()
    assert not task.wrong(perfect, b).any()
    assert float(task.loss(perfect, b)) < 1e-10  # (O - 1) e^-30
    out = perfect.clone()
    judged = b.mask.clone()
    if name == "copy":
        judged[:, :-10] = False  # the criterion judges the 10 copied symbols only
    t1 = int(judged[1].nonzero()[0])  # the first judged step of sequence 1
    out[1, t1] = 10.0 * torch.nn.functional.one_hot((b.y[1, t1] + 1) % O, O).double()
    t4 = int((~judged[4]).nonzero()[0])  # an unjudged step of sequence 4
    out[4, t4] = 10.0 * torch.nn.functional.one_hot((b.y[4, t4] + 1) % O, O).double()
    assert task.wrong(out, b).tolist() == [False, True, False, False, False, False]


# ----------------------------------------------------------------------------------------------------------
# errors, minimal lengths, files

EXPECTED_GOT = re.compile(r"expected .*got")


def test_get_task_bad_name_lists_the_names():
    for bad in ("adding", "", 3):
        with pytest.raises(InputError) as e:
            get_task(bad)
        assert EXPECTED_GOT.search(str(e.value)) and all(name in str(e.value) for name in TASK_NAMES)


@pytest.mark.parametrize("name", TASK_NAMES)
def test_minimal_length_works_and_below_is_refused(name):
    task = get_task(name)
    min_L = SPEC[name][3]
    b = task.sample(200, min_L, gen(24))
    assert b.mask.any(1).all()
    if name == "adding-hs97":
        assert (b.x[:, -1, 1] == -1).all() and ((b.x[..., 1] == 1).sum(1) == 2).all()  # last pair never marked
    if name in ("adding-pascanu", "multiplication", "adding-le"):
        assert ((b.x[..., 0 if name != "adding-le" else 1] == 1).sum(1) == 2).all()
    for call in (lambda: task.sample(2, min_L - 1, gen(0)), lambda: task.actual_length(min_L - 1, gen(0)),
                 lambda: task.baseline_loss(min_L - 1), lambda: task.sample(2, float(min_L), gen(0))):
        with pytest.raises(InputError, match=EXPECTED_GOT):
            call()


@pytest.mark.parametrize("n", [0, -1, True, 2.0, "3"])
def test_bad_batch_size_is_refused(n):
    with pytest.raises(InputError, match=EXPECTED_GOT):
        get_task("copy").sample(n, 10, gen(0))


def test_bad_generator_outputs_and_parameters_are_refused():
    task = get_task("adding-le")
    with pytest.raises(InputError, match=EXPECTED_GOT):
        task.sample(2, 10, 0)
    b = task.sample(2, 10, gen(0))
    for out in (torch.zeros(2, 10), torch.zeros(2, 9, 1), torch.zeros(2, 10, 1, dtype=torch.int64), b.y.numpy()):
        with pytest.raises(InputError, match=EXPECTED_GOT):
            task.loss(out, b)
        with pytest.raises(InputError, match=EXPECTED_GOT):
            task.wrong(out, b)
    for make in (lambda: Memorization(n_values=1), lambda: Memorization(n_pos=0), lambda: TemporalOrder(4),
                 lambda: Batch(torch.zeros(2, 3), torch.zeros(2, 3), torch.ones(2, 3, dtype=torch.bool)),
                 lambda: Batch(torch.zeros(2, 3, 1), torch.zeros(2, 3), torch.ones(2, 4, dtype=torch.bool))):
        with pytest.raises(InputError, match=EXPECTED_GOT):
            make()


def test_batch_save_round_trip(tmp_path):
    b = get_task("memorization").sample(3, 4, gen(25))
    b.save(tmp_path / "batch.npz")
    with np.load(tmp_path / "batch.npz") as f:
        assert set(f.files) == {"x", "y", "mask"}
        np.testing.assert_array_equal(f["x"], b.x.numpy())
        np.testing.assert_array_equal(f["y"], b.y.numpy())
        np.testing.assert_array_equal(f["mask"], b.mask.numpy())
        assert f["x"].dtype == np.float32 and f["y"].dtype == np.int64 and f["mask"].dtype == np.bool_


def test_hs97_is_the_class_get_task_returns():
    assert isinstance(get_task("adding-hs97"), AddingHS97) and get_task("temporal-order-3bit") == TemporalOrder(3)
