"""classification_tasks.py (temporal order, permutation, memorization in Pascanu's form and the recall-only
form, copy) against their sources' definitions, re-read from the batches themselves.

Layouts are recomputed from the one-hot inputs; targets from the inputs with the task's formula; baselines
are checked by the loss of constructed memoryless predictors through task.loss and, for memorization, by
Monte Carlo: the best predictor that knows the step index but nothing of the input is the per-step
marginal law of the target, estimated here by counting the targets of one batch of 20,000 sequences and
scored on another. Its cross-entropy exceeds the exact baseline by about (K - 1) / (2 N) per value step
(K classes, N counted sequences: 1e-4 here), and the scoring batch adds a standard error below 1e-4: the
stated tolerance is 1e-3 relative, 20 times both, and a wrong formula (an average over L + 10 steps instead of
L + 20, or over the value steps only) misses it by 25 % or more.
"""

import math

import pytest
import torch
import torch.nn.functional as Fn

from rnnscope.lab.tasks import Memorization, MemorizationRecall, TemporalOrder, get_task
from task_checks import F64, gen, one_hot_symbols, uniform_ok

MC_RTOL = 1e-3  # Monte Carlo estimate of a memoryless baseline against the closed form (see the docstring)


# ----------------------------------------------------------------------------------------------------------
# layouts and targets

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
def test_memorization_layout_and_targets_in_pascanus_form(n_values, n_pos, L):
    """Pascanu's memorization.py: values at steps 0..n_pos-1, blanks (channel n_values) after them except the
    trigger (channel n_values + 1) at step L + n_pos; targets: the blank class n_values until the recall,
    then the values in order at the last n_pos steps; the loss and the criterion cover every step."""
    task = Memorization(n_values, n_pos)
    b = task.sample(1000, L, gen(10))
    T = L + 2 * n_pos
    blank, trigger = n_values, n_values + 1
    assert b.length == T and task.input_size == n_values + 2 and task.output_size == n_values + 1
    sym = one_hot_symbols(b.x)
    uniform_ok(sym[:, :n_pos], 0, n_values)  # the values
    rest = torch.full((T - n_pos,), blank)
    rest[L] = trigger  # the trigger at step L + n_pos
    assert (sym[:, n_pos:] == rest).all()
    assert (b.y[:, :L + n_pos] == blank).all()  # the blank class until the recall
    assert torch.equal(b.y[:, L + n_pos:], sym[:, :n_pos])  # the values, in order, from the trigger step on
    assert b.mask.all()


@pytest.mark.parametrize("n_values,n_pos,L", [(5, 10, 7), (3, 4, 1)])
def test_memorization_recall_has_the_same_inputs_and_judges_the_recall_only(n_values, n_pos, L):
    pascanu, recall = Memorization(n_values, n_pos), MemorizationRecall(n_values, n_pos)
    a, b = pascanu.sample(500, L, gen(10)), recall.sample(500, L, gen(10))
    assert torch.equal(a.x, b.x)  # the same draws from the same generator
    assert recall.name == "memorization-recall" and recall.output_size == n_values
    assert torch.equal(b.y[:, L + n_pos:], one_hot_symbols(b.x)[:, :n_pos]) and (b.y[:, :L + n_pos] == 0).all()
    assert b.mask[:, L + n_pos:].all() and not b.mask[:, :L + n_pos].any()


def test_memorization_values_follow_the_digits_law_of_pascanus_code():
    """His code draws one integer uniform in [0, n_values^n_pos) and writes its base-n_values digits: every
    sequence of n_pos values has probability n_values^-n_pos. With n_values = 3, n_pos = 2: 9 sequences."""
    b = Memorization(3, 2).sample(18000, 2, gen(26))
    seq = one_hot_symbols(b.x)[:, :2]
    uniform_ok(seq[:, 0] + 3 * seq[:, 1], 0, 9)  # the integer whose digits they are, uniform on 0..8


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


def best_layout_predictor(task, L: int, n: int, seed: int) -> torch.Tensor:
    """log p_t(c): the per-step marginal law of the targets, counted over n sequences (the best predictor that
    knows the step index t but nothing of the input), as logits (1, T', O); -inf where never seen."""
    b = task.sample(n, L, gen(seed))
    counts = Fn.one_hot(b.y, task.output_size).double().sum(0)  # (T', O)
    return torch.log(counts / n).unsqueeze(0)


@pytest.mark.parametrize("cls,n_values,n_pos,L", [(Memorization, 5, 10, 30), (Memorization, 3, 4, 1),
                                                  (MemorizationRecall, 5, 10, 30), (MemorizationRecall, 3, 4, 1)])
def test_memorization_baseline_by_monte_carlo_of_the_best_memoryless_predictor(cls, n_values, n_pos, L):
    task = cls(n_values, n_pos)
    logits = best_layout_predictor(task, L, 20000, seed=16)
    b = task.sample(20000, L, gen(17))  # scored on fresh sequences
    mc = float(task.loss(logits.expand(b.n, -1, -1), b))
    assert mc == pytest.approx(task.baseline_loss(L), rel=MC_RTOL)
    exact = n_pos * math.log(n_values) / ((L + 2 * n_pos) if cls is Memorization else n_pos)  # the docstrings'
    assert task.baseline_loss(L) == pytest.approx(exact, rel=1e-12)


@pytest.mark.parametrize("L", [1, 20, 100])
def test_memorization_baseline_is_the_loss_of_the_layout_predictor(L):
    """Certain blank until the recall, uniform over the values at the recall: 10 ln 5 / (L + 20) nats."""
    task = get_task("memorization")
    b = task.sample(8, L, gen(18))
    out = torch.full((8, L + 20, 6), -math.inf, dtype=F64)
    out[:, :L + 10, 5] = 0.0
    out[:, L + 10:, :5] = 0.0
    assert float(task.loss(out, b)) == pytest.approx(10 * math.log(5) / (L + 20), rel=1e-12)


# ----------------------------------------------------------------------------------------------------------
# losses and the success criterion

@pytest.mark.parametrize("name", ["memorization", "memorization-recall", "copy", "temporal-order"])
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


@pytest.mark.parametrize("name", ["temporal-order", "temporal-order-3bit", "permutation", "memorization",
                                  "memorization-recall", "copy"])
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
    if not judged[4].all():  # memorization (Pascanu's form) judges every step
        t4 = int((~judged[4]).nonzero()[0])  # an unjudged step of sequence 4
        out[4, t4] = 10.0 * torch.nn.functional.one_hot((b.y[4, t4] + 1) % O, O).double()
    assert task.wrong(out, b).tolist() == [False, True, False, False, False, False]


def test_memorization_in_pascanus_form_judges_the_blank_steps_too():
    """report = 'all' in his code: one wrong blank output makes the sequence wrong."""
    task = get_task("memorization")
    b = task.sample(4, 6, gen(27))
    out = 30.0 * Fn.one_hot(b.y, 6).double()
    assert not task.wrong(out, b).any()
    out[2, 3] = 30.0 * Fn.one_hot(torch.tensor(0), 6).double()  # a value where a blank is due
    assert task.wrong(out, b).tolist() == [False, False, True, False]
    recall = get_task("memorization-recall")
    rb = recall.sample(4, 6, gen(27))
    rout = 30.0 * Fn.one_hot(rb.y, 5).double()
    rout[2, 3] = 30.0 * Fn.one_hot(torch.tensor(1), 5).double()  # outside the recall: not judged
    assert not recall.wrong(rout, rb).any()
