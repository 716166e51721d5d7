"""text_tasks.py: the character-level language model on pydoc_data.topics, checked from the text itself.

The split is recomputed from its definition (blocks, default_rng permutation); windows are decoded from the
one-hot inputs and found again in the text, inside a run of their own split; the baseline is the entropy of
a collections.Counter over the training text. Monte Carlo tolerance of the unigram predictor's loss: 4
standard errors of the mean of the per-window losses (estimated from the same windows: about 0.006 nats for
2,000 windows of 50) plus 1e-3 for the edge effect (characters near a run's end are targets less often:
1.5e-4 nats at L = 50, measured); a baseline in bits instead of nats (x 1.44), or over the raw characters
instead of the classes, misses it by 1.4 nats or 0.02 nats.
"""

import math
import sys
from collections import Counter

import numpy as np
import pytest
import torch

from rnnscope.core.errors import InputError
from rnnscope.lab import text_tasks
from rnnscope.lab.networks import SequenceModel
from rnnscope.lab.snapshot import gradient_snapshot
from rnnscope.lab.text_tasks import OTHER, VOCABULARY, CharLM
from rnnscope.lab.train import TrainConfig, train

V = OTHER + 1


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def task() -> CharLM:
    return CharLM()


def window_ids(batch) -> torch.Tensor:
    """(B, L + 1) the characters of each window: the inputs, then the last target."""
    assert set(batch.x.unique().tolist()) == {0.0, 1.0} and (batch.x.sum(-1) == 1).all()
    return torch.cat([batch.x.argmax(-1), batch.y[:, -1:]], dim=1)


# ----------------------------------------------------------------------------------------------------------
# the text and the split

def test_vocabulary_is_fixed_printable_ascii_newline_and_other():
    assert VOCABULARY == "\n" + "".join(map(chr, range(32, 127))) and OTHER == 96
    assert text_tasks.encode("a\n\t é~ ").tolist() == [66, 0, 96, 1, 96, 95, 1]
    assert CharLM.decode([66, 0, 96]) == "a\n\ufffd"


def test_text_is_the_topics_in_sorted_key_order(task):
    from pydoc_data.topics import topics

    assert task.text == "".join(topics[k] for k in sorted(topics)) and len(task.text) > 100_000
    assert task.ids.shape == (len(task.text),) and task.ids.dtype == torch.int64


def test_split_is_disjoint_covers_the_text_and_follows_the_seed(task):
    s, n = task.split, len(task.text)
    n_blocks = math.ceil(n / 1000)
    n_held = math.floor(0.1 * n_blocks + 0.5)
    assert s.n_chars == n and len(s.held_out_blocks) == n_held and len(s.train_blocks) == n_blocks - n_held
    assert sorted(s.train_blocks.tolist() + s.held_out_blocks.tolist()) == list(range(n_blocks))
    expected = np.sort(np.random.default_rng(0).permutation(n_blocks)[:n_held])
    assert s.held_out_blocks.tolist() == expected.tolist()
    # the runs tile [0, n): every character in exactly one run of exactly one split
    cover = np.zeros(n, dtype=int)
    for split in ("train", "held-out"):
        for a, b in task.runs(split):
            cover[a:b] += 1
    assert (cover == 1).all()
    assert len(task.split_text("train")) + len(task.split_text("held-out")) == n
    # deterministic by seed: the same seed gives the same split, another seed another
    assert CharLM(split_seed=0).split.held_out_blocks.tolist() == s.held_out_blocks.tolist()
    assert CharLM(split_seed=1).split.held_out_blocks.tolist() != s.held_out_blocks.tolist()
    with pytest.raises(InputError, match="expected"):
        task.runs("test")


# ----------------------------------------------------------------------------------------------------------
# windows

@pytest.mark.parametrize("split", ["train", "held-out"])
def test_windows_come_from_their_split_and_y_is_the_next_character(task, split):
    L, n = 50, 200
    b = task.sample(n, L, gen(3)) if split == "train" else task.sample_eval(n, L, gen(3))
    assert b.x.shape == (n, L, V) and b.x.dtype == torch.float32
    assert b.y.shape == (n, L) and b.y.dtype == torch.int64 and b.mask.all()
    assert (b.x[:, 1:].argmax(-1) == b.y[:, :-1]).all()  # y_t is the input of step t + 1
    decoded = task.decode(task.ids)  # the text with its "other" characters as U+FFFD
    runs = task.runs(split)
    for w in window_ids(b):
        s, found = task.decode(w), False
        p = decoded.find(s)
        while p >= 0 and not found:
            found = bool(((runs[:, 0] <= p) & (p + L + 1 <= runs[:, 1])).any())
            p = decoded.find(s, p + 1)
        assert found, f"window {s!r} not inside a {split} run"


def test_windows_are_seeded_and_reach_the_longest_run(task):
    a, b = task.sample(8, 20, gen(5)), task.sample(8, 20, gen(5))
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    assert not torch.equal(a.y, task.sample(8, 20, gen(6)).y)
    longest = task.max_length("held-out")
    assert longest >= 999 and task.sample_eval(2, longest, gen(0)).length == longest
    with pytest.raises(InputError, match=f"expected L <= {longest}"):
        task.sample_eval(2, longest + 1, gen(0))
    with pytest.raises(InputError, match="expected"):
        task.sample(2, 0, gen(0))


# ----------------------------------------------------------------------------------------------------------
# baseline, bits, loss and criterion

def test_baseline_is_the_unigram_entropy_of_the_training_text(task):
    text = task.split_text("train")
    counts = Counter(c if c == "\n" or " " <= c <= "~" else "other" for c in text)
    n = sum(counts.values())
    H = -sum(k / n * math.log(k / n) for k in counts.values())
    assert task.baseline_loss(50) == pytest.approx(H, rel=1e-12) == task.baseline_loss(7)
    assert task.baseline_bits == pytest.approx(H / math.log(2), rel=1e-12)
    assert CharLM.bits_per_char(math.log(2)) == 1.0 and CharLM.bits_per_char(
        torch.tensor(math.log(4), dtype=torch.float64)) == 2.0
    with pytest.raises(InputError, match="expected a number"):
        CharLM.bits_per_char("1.0")
    # the predictor that sees the current character does better, the unigram law on held-out text a bit worse
    assert task.bigram_loss() < H - 0.5 and H < task.held_out_unigram_loss() < H + 0.1


def test_unigram_predictor_scores_the_baseline(task):
    L, n = 50, 2000
    b = task.sample(n, L, gen(11))
    out = task.unigram_log_probs.float().expand(n, L, V)
    loss = float(task.loss(out, b))
    per = task.sequence_loss(out, b).double()
    assert float(per.mean()) == pytest.approx(loss, abs=1e-5)
    tol = 4 * float(per.std()) / math.sqrt(n) + 1e-3
    assert abs(loss - task.baseline_loss(L)) < tol, (loss, task.baseline_loss(L), tol)


def test_wrong_compares_each_window_with_the_reference(task):
    L, n = 50, 300
    b = task.sample_eval(n, L, gen(12))
    unigram = task.unigram_log_probs.clamp(min=-30.0).float().expand(n, L, V)  # finite: -inf counts as wrong
    assert task.wrong(unigram, b).float().mean() > 0.99  # no input used: worse than the bigram on nearly every window
    # against its own add-1/2 form the exact unigram law wins where the window is made of common characters
    assert 0.05 < CharLM(reference="unigram").wrong(unigram, b).float().mean() < 0.95
    assert task.wrong(task.unigram_log_probs.float().expand(n, L, V), b).all()  # -inf logits: not finite
    oracle = torch.full((n, L, V), -10.0).scatter(2, b.y[..., None], 10.0)
    assert not task.wrong(oracle, b).any()
    bad = oracle.clone()
    bad[0, 3, 0] = math.nan
    assert task.wrong(bad, b).tolist() == [True] + [False] * (n - 1)
    with pytest.raises(InputError, match="expected one of bigram, unigram"):
        CharLM(reference="trigram")


def test_bad_parameters_and_missing_pydoc_data(monkeypatch):
    for kw in ({"split_seed": -1}, {"held_out": 1.0}, {"held_out": 0}, {"block": 1}, {"split_seed": 1.5}):
        with pytest.raises(InputError, match="expected"):
            CharLM(**kw)
    monkeypatch.setitem(sys.modules, "pydoc_data.topics", None)  # import pydoc_data.topics raises ImportError
    text_tasks.load_text.cache_clear()
    try:
        with pytest.raises(InputError, match="expected the standard library's pydoc_data.topics"):
            CharLM().sample(1, 5, gen(0))
    finally:
        text_tasks.load_text.cache_clear()


# ----------------------------------------------------------------------------------------------------------
# the lab's tools on it

def test_gradient_snapshot_on_charlm(task):
    b = task.sample(3, 12, gen(1))
    torch.manual_seed(0)
    model = SequenceModel(torch.nn.RNN(V, 8, batch_first=True), torch.nn.Linear(8, V))
    snap = gradient_snapshot(model, b, task.loss)
    assert snap.log10_norm.shape == (13, 3) and torch.isfinite(snap.profile).all()
    with torch.no_grad():
        out = model.double()(b.x.double())[0]
    assert snap.loss == pytest.approx(float(task.loss(out, b)), rel=1e-9)


def test_registered_by_name():
    from rnnscope.lab.tasks import TASK_NAMES, get_task

    task = get_task("charlm")
    assert "charlm" in TASK_NAMES and task == CharLM() and task.to_dict() == {
        "name": "charlm", "kind": "classification", "input_size": V, "output_size": V, "min_length": 1,
        "split_seed": 0, "held_out": 0.1, "block": 1000, "reference": "bigram"}


def test_small_lstm_goes_below_the_unigram_baseline():
    task = CharLM()
    cfg = TrainConfig(task="charlm", length=50, cell="lstm", hidden=32, optimizer="adam", lr=3e-3, batch=32,
                      steps=200, eval_every=200, eval_size=200, snapshot_size=4, seed=0)
    r = train(cfg, task=task, progress=False)
    assert r.status != "diverged" and r.baseline_loss == task.baseline_loss(50)
    assert r.final_loss < r.baseline_loss - 0.05, (r.final_loss, r.baseline_loss)
    assert len(r.history[-1]["profile"]) == 51
