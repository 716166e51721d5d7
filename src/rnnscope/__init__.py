"""rnnscope: a gradient-flow laboratory for recurrent neural networks.

The pipeline (DESIGN.md): cells -> unroll -> bptt / flow -> analysis -> claims / reproduce ->
report / cli / plots.

    >>> import rnnscope as rs
    >>> cell = rs.random_cell("elman", "tanh", hidden=16, gain=1.5, seed=0)
    >>> p = rs.profile(cell, rs.torch.zeros(100, 1, 1, dtype=rs.torch.float64))
    >>> p.verdict
    'exploding possible'
"""

import torch

from .activations import ACTIVATIONS, Activation, get_activation
from .analysis import Profile, profile, profile_trace
from .bptt import Adjoints, BPTTResult, adjoints, bptt, state_adjoint_seed
from .cells import CELL_KINDS, Cell, ElmanCell, FunctionCell, GRUCell, LSTMCell, PalCell
from .claims import CLAIMS, VERDICTS, Claim, ClaimResult, claim_ids, run_claims
from .counterexamples import Counterexample, saddle
from .errors import InputError
from .files import load_npy, load_npz
from .flow import JacobianProfile, jacobian_profile
from .heads import Head
from .models import INITS, cell_from_arrays, get_dtype, head_from_arrays, random_cell, recurrent_matrix
from .report import write_report
from .reproduce import Reproduction, reproduce
from .results import FigureSpec, Series, jsonable
from .rtrl import hv, lemma2, theorem1
from .theory import Verdict, fitted_rate, horizon, pascanu_verdict, weight_facts
from .unroll import Trace, unroll

__version__ = "0.1.0"

__all__ = [
    "ACTIVATIONS", "Activation", "get_activation",
    "Profile", "profile", "profile_trace",
    "Adjoints", "BPTTResult", "adjoints", "bptt", "state_adjoint_seed",
    "CELL_KINDS", "Cell", "ElmanCell", "FunctionCell", "GRUCell", "LSTMCell", "PalCell",
    "CLAIMS", "VERDICTS", "Claim", "ClaimResult", "claim_ids", "run_claims", "Counterexample", "saddle",
    "write_report", "Reproduction", "reproduce", "FigureSpec", "Series",
    "InputError", "load_npy", "load_npz",
    "JacobianProfile", "jacobian_profile", "Head",
    "INITS", "cell_from_arrays", "get_dtype", "head_from_arrays", "random_cell", "recurrent_matrix",
    "jsonable", "hv", "lemma2", "theorem1",
    "Verdict", "fitted_rate", "horizon", "pascanu_verdict", "weight_facts",
    "Trace", "unroll", "torch",
]
