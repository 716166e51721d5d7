"""The vocabularies: the one list of each kind of name the library, the CLI, the training lab, diagnose and the
explorer accept, and the one check that turns a wrong name into "expected one of ..., got ...".

    CELL_KINDS      the built-in cells of the seeds (cells.py); the training lab builds the same four as torch modules
    MODERN_KINDS    the recurrences after the seeds (modern_cells.py): LRU, minGRU, minLSTM, Mamba's S6, sLSTM,
                    IndRNN, coRNN, expRNN
    ANALYSIS_KINDS  every kind random_cell builds and profile / lyapunov / the explorer analyse: the two above
    TRAIN_CELL_KINDS  the kinds the training lab builds (lab.networks.build_model): the built-in four as torch
                    modules, the modern ones as lab.cell_networks.CellRNN (the same two lists)
    ACTIVATIONS     phi of the vanilla cells (activations.py); TRAIN_ACTIVATIONS: those the training lab offers
    LOSSES          the losses of a linear read-out: mse, softmax cross-entropy (heads.py, diagnose)
    LOSS_AT         where the loss terms sit: every step, or the last
    MATRIX_INITS    how a random recurrent matrix is drawn before its gain (build.recurrent_matrix)
    TRAIN_INITS     whole-network initialisations of the training lab (remedies.init_rnn): the papers' schemes,
                    then MATRIX_INITS's normal (N(0, 1/H): Engelken's Gaussian g = 1), orthogonal and identity
                    applied to W_hh at gain 1

Example:
    >>> check("cell", "lstm", CELL_KINDS)
    'lstm'
    >>> check("init", "xavier", MATRIX_INITS)
    Traceback (most recent call last):
    ...
    rnnscope.core.errors.InputError: init: expected one of normal, orthogonal, identity, got 'xavier'
"""

from __future__ import annotations

from collections.abc import Collection

from .activations import ACTIVATIONS as _ACTIVATIONS
from .errors import InputError

__all__ = ["CELL_KINDS", "MODERN_KINDS", "ANALYSIS_KINDS", "TRAIN_CELL_KINDS", "ACTIVATIONS", "TRAIN_ACTIVATIONS", "LOSSES", "LOSS_AT", "MATRIX_INITS", "TRAIN_INITS",
           "check"]

CELL_KINDS = ("elman", "pal", "lstm", "gru")
MODERN_KINDS = ("lru", "mingru", "minlstm", "mamba", "slstm", "indrnn", "cornn", "exprnn")
ANALYSIS_KINDS = CELL_KINDS + MODERN_KINDS
TRAIN_CELL_KINDS = CELL_KINDS + MODERN_KINDS  # the training lab builds every kind (lab.networks.build_model)
ACTIVATIONS = tuple(_ACTIVATIONS)  # sigmoid, tanh, relu, identity
TRAIN_ACTIVATIONS = tuple(a for a in ACTIVATIONS if a != "identity")  # a linear RNN is analysed, not trained here
LOSSES = ("mse", "ce")
LOSS_AT = ("all", "last")
MATRIX_INITS = ("normal", "orthogonal", "identity")
TRAIN_INITS = ("default", "sigmoid", "basic-tanh", "smart-tanh", *MATRIX_INITS)


def check(what: str, value, choices: Collection[str]) -> str:
    """value if it is one of choices, else an InputError "<what>: expected one of ..., got <value>"."""
    if not isinstance(value, str) or value not in choices:
        raise InputError(f"{what}: expected one of {', '.join(choices)}, got {value!r}")
    return value
