"""tasks.py, the registry: every task's name, sizes, kind, minimal length, shapes, masks, seeding and length
law read from the definitions (not from the library), and the errors at the boundary.

The families' layouts, targets and baselines: test_regression_tasks.py, test_classification_tasks.py; the
base and the sampled lengths: test_task_base.py.
"""

import re

import numpy as np
import pytest
import torch

from rnnscope.core.errors import InputError
from rnnscope.lab.tasks import TASK_NAMES, AddingHS97, Batch, Memorization, TemporalOrder, get_task
from task_checks import gen, uniform_ok

# (D, O, kind, minimal L), read from the task definitions (not from the library)
SPEC = {
    "adding-hs97": (2, 1, "regression", 11),
    "adding-pascanu": (2, 1, "regression", 10),
    "adding-le": (2, 1, "regression", 2),
    "multiplication": (2, 1, "regression", 10),
    "temporal-order": (6, 4, "classification", 10),
    "temporal-order-3bit": (6, 8, "classification", 10),
    "permutation": (100, 100, "classification", 2),
    "memorization": (7, 6, "classification", 1),  # Pascanu's code: 5 values, a blank class
    "memorization-recall": (7, 5, "classification", 1),
    "copy": (10, 9, "classification", 1),
}
# the tasks after the seeds' literature have their own test files: test_flossing_tasks.py (delayed-xor,
# delayed-copy: Engelken 2023) and test_text_tasks.py (charlm: real text)
OWN_TESTS = {"delayed-xor": (1, 1, "classification"), "delayed-copy": (1, 1, "classification"),
             "charlm": (97, 97, "classification")}


# ----------------------------------------------------------------------------------------------------------
# names, shapes, masks, seeding, lengths

def test_task_names_and_sizes():
    assert set(TASK_NAMES) == set(SPEC) | set(OWN_TESTS) and len(TASK_NAMES) == 13
    for name, (D, O, kind) in OWN_TESTS.items():
        task = get_task(name)
        assert (task.name, task.input_size, task.output_size, task.kind) == (name, D, O, kind)
    for name, (D, O, kind, min_L) in SPEC.items():
        task = get_task(name)
        assert (task.name, task.input_size, task.output_size, task.kind, task.min_length) == (name, D, O, kind, min_L)
        assert task.to_dict()["name"] == name


@pytest.mark.parametrize("name", SPEC)
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
    if name == "memorization-recall":
        expected_mask[:, -10:] = True  # the last n_pos steps
    elif name in ("memorization", "copy"):
        expected_mask[:] = True  # mean CE over all steps
    else:
        expected_mask[:, -1] = True  # the last step only
    assert torch.equal(b.mask, expected_mask)
    expected_T = {"memorization": L + 20, "memorization-recall": L + 20, "copy": L + 20, "adding-hs97": None, "adding-pascanu": None,
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
                                        ("permutation", 0), ("memorization", 20), ("memorization-recall", 20),
                                        ("copy", 20)])
def test_fixed_lengths_draw_nothing(name, extra):
    task = get_task(name)
    g = gen(4)
    state = g.get_state()
    assert task.actual_length(37, g) == 37 + extra
    assert torch.equal(g.get_state(), state)


# ----------------------------------------------------------------------------------------------------------
# errors, minimal lengths, files

EXPECTED_GOT = re.compile(r"expected .*got")


def test_get_task_bad_name_lists_the_names():
    for bad in ("adding", "", 3):
        with pytest.raises(InputError) as e:
            get_task(bad)
        assert EXPECTED_GOT.search(str(e.value)) and all(name in str(e.value) for name in TASK_NAMES)


@pytest.mark.parametrize("name", SPEC)
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
