"""Recurrent cells: one step and its exact one-step Jacobian, nothing more (the cell contract, docs/architecture.md).

This module gathers them; each idea lives in its own module:

    cell_contract   Cell (forward, step, jacobian, vjp, the factored VJP), FunctionCell (any step function)
    vanilla_cells   ElmanCell  h_t = phi(W_hh h_{t-1} + W_xh x_t + b_h),  PalCell  h_t = W_hh phi(h_{t-1}) + ...
    gated_cells     LSTMCell (state (h, c)), ProjLSTMCell (nn.LSTM with proj_size), GRUCell: PyTorch's math

Example:
    >>> cell = ElmanCell(torch.eye(2) * 0.5, torch.ones(2, 1), torch.zeros(2), "tanh")
    >>> cell.vjp(torch.zeros(1, 1), torch.zeros(1, 2), torch.ones(1, 2))     # g^T diag(tanh'(0)) W_hh
    tensor([[0.5000, 0.5000]])
"""

from __future__ import annotations

import torch  # noqa: F401  (the docstring example)

from .cell_contract import Cell, FunctionCell
from .gated_cells import GRUCell, LSTMCell, ProjLSTMCell
from .vanilla_cells import ElmanCell, PalCell
from .vocab import CELL_KINDS

__all__ = ["Cell", "ElmanCell", "PalCell", "LSTMCell", "ProjLSTMCell", "GRUCell", "FunctionCell", "CELL_KINDS"]
