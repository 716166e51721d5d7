"""flossing_tasks: delayed XOR / copy against a reference written from the paper's definition (Engelken 2023, his
GradientFlossing_XOR.jl), the mask, the loss and criterion, and the ln 2 baseline by Monte Carlo."""

from __future__ import annotations

import math

import pytest
import torch

from rnnscope.core.errors import InputError
from rnnscope.lab.flossing_tasks import DelayedCopy, DelayedXOR
from rnnscope.lab.tasks import TASK_NAMES, get_task


def recabs(bits):
    """The code's recabs: recabs([a]) = a, recabs(x) = |recabs(x[:-1]) - x[-1]|."""
    return bits[0] if len(bits) == 1 else abs(recabs(bits[:-1]) - bits[-1])


def reference(x, d, n_bits):
    """Targets and mask of one sequence (1-based t as in the paper): y_t = recabs(reverse(x[t-d], x[t-2d], ..,
    x[t-n d])) where all those steps exist (t > n d), None elsewhere."""
    T = len(x)
    out = []
    for t in range(1, T + 1):
        if t - n_bits * d < 1:
            out.append(None)
        else:
            out.append(recabs(list(reversed([x[t - j * d - 1] for j in range(1, n_bits + 1)]))))
    return out


@pytest.mark.parametrize("task,d,n", [(DelayedXOR(steps=40), 1, 2), (DelayedXOR(steps=40), 7, 2),
                                      (DelayedXOR(steps=60, order=2), 5, 4), (DelayedCopy(steps=30), 4, 1),
                                      (DelayedXOR(steps=25, scale=0.5), 12, 2)])
def test_targets_and_mask_equal_the_papers_definition(task, d, n):
    b = task.sample(5, d, torch.Generator().manual_seed(d))
    assert b.x.shape == (5, task.steps, 1) and b.y.shape == (5, task.steps, 1) and b.x.dtype == torch.float32
    for i in range(5):
        x = [round(v / task.scale) for v in b.x[i, :, 0].tolist()]
        assert set(x) <= {0, 1}
        ref = reference(x, d, n)
        assert b.mask[i].tolist() == [r is not None for r in ref]
        assert [int(v) for v in b.y[i, :, 0].tolist()] == [0 if r is None else r for r in ref]


def test_delay_too_long_and_bad_fields_say_expected_and_got():
    with pytest.raises(InputError, match="expected 2 d < T' = 20"):
        DelayedXOR(steps=20).sample(2, 10, torch.Generator())
    with pytest.raises(InputError, match="delay: expected an integer >= 1"):
        DelayedCopy().sample(2, 0, torch.Generator())
    with pytest.raises(InputError, match="max_wrong: expected a fraction"):
        DelayedXOR(max_wrong=1.0)
    with pytest.raises(InputError, match="scale: expected a positive"):
        DelayedCopy(scale=0)


def test_loss_is_bce_on_logits_and_wrong_counts_scored_steps():
    task = DelayedXOR(steps=20, max_wrong=0.2)
    b = task.sample(3, 4, torch.Generator().manual_seed(0))  # 12 scored steps
    out = torch.randn(3, 20, 1, generator=torch.Generator().manual_seed(1))
    m = b.mask
    p = torch.sigmoid(out[..., 0][m])
    y = b.y[..., 0][m]
    assert abs(float(task.loss(out, b)) + float((y * p.log() + (1 - y) * (1 - p).log()).mean())) <= 1e-6
    perfect = (2 * b.y - 1) * 5.0  # logits of the right sign
    assert not task.wrong(perfect, b).any()
    bad = perfect.clone()
    bad[0, 8:10] *= -1  # 2 of 12 scored steps wrong in sequence 0: 1/6 <= 0.2
    bad[1, 8:11] *= -1  # 3 of 12: 1/4 > 0.2
    bad[2, :8] *= -1  # unscored steps only
    assert task.wrong(bad, b).tolist() == [False, True, False]
    assert DelayedXOR(steps=20).wrong(bad, b).tolist() == [True, True, False]  # default: any wrong step


def test_baseline_is_ln2_by_monte_carlo():
    """The best memoryless predictor: P(y_t = 1 | x_t, t) estimated from 4,000 sequences is 1/2 within noise, and its
    BCE is ln 2 (the entropy of a fair bit) to 3e-3."""
    for task, d in ((DelayedXOR(steps=50), 6), (DelayedCopy(steps=50), 9)):
        b = task.sample(4000, d, torch.Generator().manual_seed(3))
        m = b.mask
        x, y = b.x[..., 0][m], b.y[..., 0][m]
        nll = 0.0
        for v in (0.0, 1.0):  # the best constant per visible input value (the step index adds nothing: stationary)
            sel = x == v
            p = float(y[sel].mean())
            assert abs(p - 0.5) < 0.01
            nll += -float(sel.sum()) * (p * math.log(p) + (1 - p) * math.log(1 - p))
        nll /= float(m.sum())
        assert abs(nll - task.baseline_loss(d)) < 3e-3
        assert task.baseline_loss(d) == math.log(2)
        zero = torch.zeros(b.x.shape[0], b.length, 1)
        assert abs(float(task.loss(zero, b)) - math.log(2)) < 1e-6  # logit 0: exactly ln 2


def test_registered_by_name():
    assert {"delayed-xor", "delayed-copy"} <= set(TASK_NAMES)
    t = get_task("delayed-xor")
    assert (t.input_size, t.output_size, t.steps, t.min_length) == (1, 1, 300, 1)
    assert t.to_dict()["name"] == "delayed-xor" and get_task("delayed-copy").n_bits == 1
