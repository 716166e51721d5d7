"""Memory budgets: refuse a run before it allocates more than a command may ask for.

A forward trace and its profile hold, in numbers of `itemsize` bytes (T steps, B sequences, S state size,
D input size, A pre-activation width: S for the vanilla cells, 4H for LSTM, 3H for GRU):

    weights          A (S + D)
    trace            (T + 1) B (3 S + A + D)      states, pre-activations, derivatives, inputs per step
    working space    6 B S^2                       the Jacobian products of the profile

and the whole must fit in MEMORY_LIMIT. Hand-derived BPTT with per-step contributions keeps a T x T table and,
in one backward step, up to T rows of (S, S + D + 1) float64 partials: T <= BPTT_MAX_T and
T S (S + D + 1) 8 <= BPTT_ROWS_BYTES.

Example:
    >>> run_bytes(T=100, B=1, S=32, D=1, A=32, itemsize=8)
    161832
    >>> check_memory(10**6, 64, 512, 1, 512, 8)
    Traceback (most recent call last):
    ...
    rnnscope.core.errors.InputError: size: expected a problem that fits in 4 GiB, got T=1000000, B=64, S=512, D=1 (about 978 GiB); use the Python API for larger runs
"""

from __future__ import annotations

import torch

from .errors import InputError

__all__ = ["MEMORY_LIMIT", "BPTT_MAX_T", "BPTT_ROWS_BYTES", "GATES", "STATES", "run_bytes", "check_memory",
           "random_sizes", "cell_sizes",
           "check_cell_memory", "check_stack_memory", "check_batch_memory", "check_bptt_size"]

MEMORY_LIMIT = 4 * 1024**3  # bytes: the trace and working space a command-line run may ask for
BPTT_MAX_T = 4096  # the T x T contributions table (JSON) and the O(T^2 S^2) per-step partials
BPTT_ROWS_BYTES = 1024**3  # one backward step holds up to T rows of (S, S + D + 1) partials
GATES = {"lstm": 4, "gru": 3, "slstm": 4, "mingru": 2, "minlstm": 3}  # pre-activation blocks per hidden unit; 1 for
# the vanilla cells (and the other modern ones)
STATES = {"lstm": 2, "lru": 2, "slstm": 4, "cornn": 2}  # state entries per hidden unit: (h, c), (Re h, Im h),
# (h, c, n, m), (y, z); 1 for the others, and D per unit for mamba (one state of N = hidden per input channel)


def run_bytes(T: int, B: int, S: int, D: int, A: int, itemsize: int) -> int:
    """Bytes of the weights, the trace and the profile's working space (the module docstring's count)."""
    numbers = A * (S + D) + (T + 1) * B * (3 * S + A + D) + 6 * B * S * S
    return numbers * itemsize


def check_memory(T: int, B: int, S: int, D: int, A: int, itemsize: int, limit: int = MEMORY_LIMIT) -> None:
    """An InputError when run_bytes exceeds limit, before anything is allocated."""
    need = run_bytes(T, B, S, D, A, itemsize)
    if need > limit:
        raise InputError(f"size: expected a problem that fits in {limit / 1024**3:.0f} GiB, got T={T}, B={B}, "
                         f"S={S}, D={D} (about {need / 1024**3:.3g} GiB); use the Python API for larger runs")


def random_sizes(kind: str, hidden: int, input_size: int) -> tuple[int, int]:
    """(S, A) of a random cell of this kind before it is built: state size and pre-activation width."""
    S = input_size * hidden if kind == "mamba" else STATES.get(kind, 1) * hidden
    return S, max(S, GATES.get(kind, 1) * hidden)


def cell_sizes(cell) -> tuple[int, int, int]:
    """(S, D, A) of a built cell: state size, input size, pre-activation width (rows of W_hh, or the width of
    the pre-activations one step of a single sequence records)."""
    if hasattr(cell, "W_hh"):
        A = cell.W_hh.shape[0]
    else:
        A = cell.forward(torch.zeros(1, cell.input_size, dtype=cell.dtype), cell.zero_state(1))[1].shape[-1]
    return cell.state_size, cell.input_size, A


def check_cell_memory(cell, T: int, B: int, itemsize: int) -> None:
    """check_memory for T steps of B sequences through a built cell."""
    check_memory(T, B, *cell_sizes(cell), itemsize)


def check_stack_memory(kind: str, T: int, B: int, D: int, hidden: int, itemsize: int, *, proj: int = 0,
                       runs: int = 1) -> None:
    """check_memory for a stack of `runs` recurrent layers-and-directions, each T steps of H = hidden units,
    counted as one run of T * runs steps. kind: 'lstm...', 'gru...' or any other (a vanilla RNN), read by its
    prefix ('lstm_cell' is an LSTM); an LSTM's state is its h (proj, or H without a projection) and its c (H)."""
    family = kind.split("_")[0]
    G = GATES.get(family, 1)
    P = proj or hidden
    check_memory(T * runs, B, P + hidden if family == "lstm" else hidden, D, G * hidden, itemsize)


def check_batch_memory(N: int, T: int, D: int, O: int, limit: int = MEMORY_LIMIT) -> None:
    """An InputError when a task batch of N sequences of T steps (x (N, T, D) and y (N, T, O) float32, the mask, and
    the draws that make them: about twice that) would exceed limit, before it is sampled."""
    need = 2 * N * T * (D + O + 1) * 4
    if need > limit:
        raise InputError(f"size: expected a batch that fits in {limit / 1024**3:.0f} GiB, got N={N:,} sequences of "
                         f"T={T:,} steps, D={D}, O={O} (about {need / 1024**3:.3g} GiB)")


def check_bptt_size(T: int, S: int, D: int) -> None:
    """An InputError when hand-derived BPTT's T x T contributions would not fit its limits."""
    if T > BPTT_MAX_T or T * S * (S + D + 1) * 8 > BPTT_ROWS_BYTES:
        raise InputError(f"inputs: expected T <= {BPTT_MAX_T} and T*S*(S+D+1) <= {BPTT_ROWS_BYTES // 8} for the "
                         f"T x T contributions, got T = {T}, S = {S}, D = {D}")
