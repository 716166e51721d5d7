"""torch's intra-op thread count, set for a block and restored.

Step loops over small matrices (S up to a few hundred: one QR or one (S, S) product per step) run
faster on one thread: a thread pool's start-up and spin-waits cost more than they give, and on a busy
machine they can slow such loops a hundredfold (measured: a Lyapunov run at S = 64 took 0.4 s on one
thread and 27 s on two while the other core was busy).

Example:
    >>> with torch_threads(1):
    ...     torch.get_num_threads()
    1
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext

import torch

__all__ = ["torch_threads", "step_threads", "SMALL_STATE"]

SMALL_STATE = 256  # S up to this: per-step loops run on one thread


@contextmanager
def torch_threads(n: int):
    """Run the block with n torch threads, then restore the previous count."""
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def step_threads(state_size: int):
    """The thread rule of a loop over time: one thread for states up to SMALL_STATE, torch's count above.

    Only the loop: products over all the steps at once (inputs, weight gradients) keep torch's threads.

        >>> with step_threads(64):
        ...     torch.get_num_threads()
        1
    """
    return torch_threads(1) if state_size <= SMALL_STATE else nullcontext()
