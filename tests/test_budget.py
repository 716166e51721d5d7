"""core/budget.py: the memory budgets against hand counts of bytes and against the tensors a run really holds."""

from __future__ import annotations

import pytest
import torch

from rnnscope.core.budget import (BPTT_MAX_T, BPTT_ROWS_BYTES, MEMORY_LIMIT, cell_sizes, check_bptt_size,
                                  check_cell_memory, check_memory, check_stack_memory, run_bytes)
from rnnscope.core.build import random_cell
from rnnscope.core.errors import InputError
from rnnscope.core.unroll import unroll


def test_run_bytes_against_a_hand_count():
    # Elman, S = 32, D = 1, T = 100, B = 1, float64:
    #   weights A (S + D) = 32 * 33 = 1056;  trace (T + 1) B (3 S + A + D) = 101 * 129 = 13029;  6 B S^2 = 6144
    assert run_bytes(T=100, B=1, S=32, D=1, A=32, itemsize=8) == (1056 + 13029 + 6144) * 8
    # LSTM, H = 5 (S = 2H = 10, A = 4H = 20), D = 3, T = 7, B = 2, float32:
    #   weights 20 * 13 = 260;  trace 8 * 2 * (30 + 20 + 3) = 848;  6 * 2 * 100 = 1200
    assert run_bytes(T=7, B=2, S=10, D=3, A=20, itemsize=4) == (260 + 848 + 1200) * 4


@pytest.mark.parametrize("kind", ["elman", "lstm", "gru"])
def test_run_bytes_covers_the_tensors_of_a_real_run(kind):
    """The weights and the forward trace that unroll really allocates fit in the count (the rest is working space)."""
    cell = random_cell(kind, hidden=6, input_size=3, seed=0)
    T, B = 9, 2
    trace = unroll(cell, torch.zeros(T, B, 3, dtype=torch.float64))
    held = sum(t.numel() * t.element_size() for t in (trace.states, trace.preacts, trace.inputs))
    held += sum(p.numel() * p.element_size() for p in (cell.W_hh, cell.W_xh))
    S, D, A = cell_sizes(cell)
    assert (S, D) == (trace.states.shape[-1], trace.inputs.shape[-1])
    assert A == trace.preacts.shape[-1] == cell.W_hh.shape[0]
    assert held <= run_bytes(T, B, S, D, A, 8)


def test_cell_sizes_of_each_kind():
    H, D = 4, 3
    assert cell_sizes(random_cell("elman", hidden=H, input_size=D)) == (H, D, H)
    assert cell_sizes(random_cell("lstm", hidden=H, input_size=D)) == (2 * H, D, 4 * H)  # state (h, c)
    assert cell_sizes(random_cell("gru", hidden=H, input_size=D)) == (H, D, 3 * H)


def test_check_memory_at_its_limit():
    need = run_bytes(50, 3, 8, 2, 8, 8)
    check_memory(50, 3, 8, 2, 8, 8, limit=need)  # exactly at the limit: allowed
    with pytest.raises(InputError, match=r"^size: expected a problem that fits in .* got T=50, B=3, S=8, D=2"):
        check_memory(50, 3, 8, 2, 8, 8, limit=need - 1)
    # the default limit, 4 GiB: S = 10^4, D = 1, T = 100 float64 asks for (10^4 (10^4 + 1) + 101 (4 10^4 + 1)
    # + 6 10^8) * 8 bytes, about 5.6 GB
    need = (10**4 * (10**4 + 1) + 101 * (4 * 10**4 + 1) + 6 * 10**8) * 8
    assert need > MEMORY_LIMIT == 4 * 1024**3
    with pytest.raises(InputError, match=f"about {need / 1024**3:.3g} GiB"):
        check_memory(100, 1, 10**4, 1, 10**4, 8)
    lstm = random_cell("lstm", hidden=4, input_size=3)
    check_cell_memory(lstm, 1000, 2, 8)
    with pytest.raises(InputError, match=r"got T=100000000, B=2, S=8, D=3"):  # S = 2H: the state (h, c)
        check_cell_memory(lstm, 10**8, 2, 8)


def test_check_stack_memory_reads_the_torch_module_sizes():
    """An nn.LSTM with a projection: its state is h (proj) and c (H), its W_hh has 4H rows; T counts every run."""
    lstm = torch.nn.LSTM(3, 8, num_layers=2, bidirectional=True, proj_size=2)
    S, A = 2 + 8, lstm.weight_hh_l0.shape[0]
    assert A == 32
    with pytest.raises(InputError, match=rf"got T={4 * 10**6}, B=5, S={S}, D=3"):
        check_stack_memory("lstm", 10**6, 5, 3, 8, 8, proj=2, runs=4)
    with pytest.raises(InputError, match=r"S=8, D=3"):  # a GRU's state is h alone; 'gru_cell' is a GRU by its prefix
        check_stack_memory("gru_cell", 10**8, 5, 3, 8, 8)
    check_stack_memory("rnn_tanh", 100, 5, 3, 8, 8, runs=4)  # small: allowed


def test_check_bptt_size_at_its_limits():
    assert BPTT_MAX_T == 4096 and BPTT_ROWS_BYTES == 2**30
    check_bptt_size(4096, 1, 1)
    with pytest.raises(InputError, match="expected T <= 4096"):
        check_bptt_size(4097, 1, 1)
    # S = 128, D = 127: T S (S + D + 1) 8 = 4096 * 128 * 256 * 8 = 2^30 exactly at T = 4096; D = 128 is one column more
    check_bptt_size(4096, 128, 127)
    with pytest.raises(InputError, match="got T = 4096, S = 128, D = 128"):
        check_bptt_size(4096, 128, 128)
