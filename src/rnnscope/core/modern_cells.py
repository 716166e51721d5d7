"""The recurrences after the seeds, gathered: one registry of kind -> cell class, each under the cell contract
(cell_contract.py), with its exact one-step Jacobian, its paper's initialisation (`random`) and its arrays
(`from_arrays`). Each idea lives in its own module:

    diagonal_cells      DiagonalCell: what the cells with a diagonal one-step Jacobian share (scan, arrays)
    linear_recurrences  LRUCell (complex diagonal lambda, real 2N view), MambaCell (one S6 selective-SSM layer)
    min_rnns            MinGRUCell, MinLSTMCell (gates from x_t alone: a parallel scan), IndRNNCell
    slstm_cell          SLSTMCell (xLSTM's sLSTM: exponential gating, normaliser n_t, stabiliser m_t)
    oscillator_cells    CoRNNCell (coupled oscillators, the paper's explicit scheme, state (y, z))
    orthogonal_cells    ExpRNNCell (W_hh = expm(A), A skew-symmetric: orthogonal)
    scan                the parallel scans of s_t = a_t s_{t-1} + b_t (associative, log-space)

    kind      state s (S)                 one-step Jacobian ds_t/ds_{t-1}
    lru       (Re h, Im h)     2N         2x2 blocks [[Re l, -Im l], [Im l, Re l]]: |lambda_j| per unit
    mingru    h                H          diag(1 - z_t)
    minlstm   h                H          diag(f_t / (f_t + i_t))
    mamba     h[d, n]          D N        diag(exp(Delta_t[d] A[d, n]))
    slstm     (h, c, n, m)     4H         dense (R block-diagonal per head)
    indrnn    h                H          diag(phi'(a_t) u)
    cornn     (y, z)           2H         dense (W, W_z through tanh')
    exprnn    h                H          diag(phi'(a_t)) expm(A)

Example:
    >>> sorted(MODERN_CELLS) == sorted(MODERN_KINDS)
    True
"""

from __future__ import annotations

from .linear_recurrences import LRUCell, MambaCell
from .min_rnns import IndRNNCell, MinGRUCell, MinLSTMCell
from .orthogonal_cells import ExpRNNCell
from .oscillator_cells import CoRNNCell
from .slstm_cell import SLSTMCell
from .vocab import MODERN_KINDS

__all__ = ["MODERN_CELLS", "ACTIVATED", "LRUCell", "MinGRUCell", "MinLSTMCell", "MambaCell", "SLSTMCell", "IndRNNCell",
           "CoRNNCell", "ExpRNNCell"]

MODERN_CELLS = {"lru": LRUCell, "mingru": MinGRUCell, "minlstm": MinLSTMCell, "mamba": MambaCell, "slstm": SLSTMCell,
                "indrnn": IndRNNCell, "cornn": CoRNNCell, "exprnn": ExpRNNCell}
ACTIVATED = ("indrnn", "exprnn")  # the modern kinds with a choice of phi (IndRNN: relu, the paper's; expRNN: tanh)
