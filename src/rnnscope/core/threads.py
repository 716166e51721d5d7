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

from contextlib import contextmanager

import torch

__all__ = ["torch_threads", "SMALL_STATE"]

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
