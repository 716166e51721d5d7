"""rnnscope: a gradient-flow laboratory for recurrent neural networks.

The package is layered (docs/architecture.md): core (cells, the modern cells, scans, unroll, heads) ->
gradients (the adjoint sweep, bptt, Jacobian-product profiles, bounds, Lyapunov spectra) -> dynamics (mean
field, phase diagrams, the curse of memory); runs (sweeps, the store); seeds (the seed documents' claims,
reproductions, the modern cells' guarantees, report); interop (torch modules, diagnose, monitor); lab (tasks,
remedies, gradient flossing, training, studies); app (CLI, demo, explorer). This module re-exports the public
API of every layer:

    >>> import torch
    >>> import rnnscope as rs
    >>> cell = rs.random_cell("elman", "tanh", hidden=16, gain=1.5, seed=0)
    >>> p = rs.profile(cell, torch.randn(100, 1, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64))
    >>> p.verdict
    'exploding possible'
"""

from .core.activations import ACTIVATIONS, Activation, get_activation
from .gradients.profile import Profile, profile, profile_trace
from .gradients.adjoint import Adjoints, adjoints, state_adjoint_seed
from .gradients.bptt import BPTTResult, bptt
from .core.vocab import CELL_KINDS
from .core.cells import Cell, ElmanCell, FunctionCell, GRUCell, LSTMCell, PalCell, ProjLSTMCell
from .seeds.claims import CLAIMS, VERDICTS, Claim, ClaimResult, claim_ids, run_claims
from .seeds.counterexamples import Counterexample, saddle
from .core.errors import InputError
from .app.explorer import ExplorerConfig, explore
from .core.files import load_npy, load_npz
from .gradients.flow import JacobianProfile, jacobian_profile
from .core.heads import Head
from .gradients.lyapunov import LyapunovSpectrum, kaplan_yorke, lyapunov, lyapunov_spectrum
from .dynamics.meanfield import MeanField, chi1, critical_line, critical_sigma_w2, mean_field, q_star
from .dynamics.phase import PhaseRow, phase_table, plot_phase, run_point
from .dynamics.memory import MemoryRow, MemorySensitivity, memory_sensitivity, plot_memory
from .core.modern_cells import (MODERN_CELLS, CoRNNCell, ExpRNNCell, IndRNNCell, LRUCell, MambaCell, MinGRUCell,
                                MinLSTMCell, SLSTMCell)
from .core.scan import associative_scan, log_space_scan, sequential_scan
from .core.vocab import ANALYSIS_KINDS, MODERN_KINDS
from .seeds.after_seeds import AFTER_SEEDS, run_after_seeds
from .core.build import INITS, cell_from_arrays, get_dtype, head_from_arrays, random_cell, recurrent_matrix
from .lab.remedies import (AdaptiveClipState, ClipResult, PascanuRegularizer, clip_grad_adaptive, clip_grad_norm,
                       clip_grad_value, init_rnn, pascanu_regularizer)
from .seeds.report import write_report
from .seeds.reproduce import Reproduction, reproduce
from .core.results import FigureSpec, Series, jsonable
from .gradients.rtrl import hv, lemma2, theorem1
from .runs.store import Store, export
from .lab.studies import STUDY_NAMES, StudyRow, load_study, plot_study, study_spec, study_table
from .runs.runner import SweepReport, run_sweep
from .runs.spec import SweepSpec, expand, load_spec, parse_range
from .lab.tasks import TASK_NAMES, Batch, Task, get_task
from .lab.fit import fit
from .lab.snapshot import gradient_snapshot
from .lab.train import TrainConfig, TrainResult, run_config, train
from .lab.cell_networks import CellRNN
from .lab.flossing import Flossing, flossing_loss
from .gradients.lyapunov_grad import lyapunov_exponents
from .core.vocab import TRAIN_CELL_KINDS
from .gradients.bounds import Verdict, fitted_rate, horizon, pascanu_verdict, weight_facts
from .interop.diagnose import Diagnosis, LayerDiagnosis, diagnose, target_loss
from .interop.monitor import GradientFlowMonitor, MonitorRecord
from .interop.saved_models import load_model, parse_arch
from .interop.torch_models import LayerRun, StackRun, cell_from_module, layer_cells, rerun
from .core.unroll import Trace, initial_state, unroll
from .core.version import VERSION

__version__ = VERSION


def __getattr__(name: str):
    """`rs.notebook` (app/notebook.py: the notebook widgets), imported on first use, so that `import rnnscope` does not
    load ipywidgets; the widgets ask for it when built."""
    if name == "notebook":
        import importlib
        return importlib.import_module(".app.notebook", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ACTIVATIONS", "Activation", "get_activation",
    "Profile", "profile", "profile_trace",
    "Adjoints", "BPTTResult", "adjoints", "bptt", "state_adjoint_seed",
    "CELL_KINDS", "Cell", "ElmanCell", "FunctionCell", "GRUCell", "LSTMCell", "PalCell", "ProjLSTMCell",
    "CLAIMS", "VERDICTS", "Claim", "ClaimResult", "claim_ids", "run_claims", "Counterexample", "saddle",
    "write_report", "Reproduction", "reproduce", "FigureSpec", "Series",
    "InputError", "load_npy", "load_npz", "ExplorerConfig", "explore",
    "JacobianProfile", "jacobian_profile", "Head",
    "LyapunovSpectrum", "kaplan_yorke", "lyapunov", "lyapunov_spectrum",
    "MeanField", "chi1", "critical_line", "critical_sigma_w2", "mean_field", "q_star",
    "PhaseRow", "phase_table", "plot_phase", "run_point",
    "MemoryRow", "MemorySensitivity", "memory_sensitivity", "plot_memory",
    "MODERN_CELLS", "MODERN_KINDS", "ANALYSIS_KINDS", "LRUCell", "MinGRUCell", "MinLSTMCell", "MambaCell", "SLSTMCell",
    "IndRNNCell", "CoRNNCell", "ExpRNNCell", "associative_scan", "log_space_scan", "sequential_scan",
    "AFTER_SEEDS", "run_after_seeds", "CellRNN", "Flossing", "flossing_loss", "lyapunov_exponents", "TRAIN_CELL_KINDS",
    "Store", "export", "SweepReport", "SweepSpec", "expand", "load_spec", "parse_range", "run_sweep",
    "STUDY_NAMES", "StudyRow", "load_study", "plot_study", "study_spec", "study_table",
    "TASK_NAMES", "Batch", "Task", "get_task",
    "AdaptiveClipState", "ClipResult", "PascanuRegularizer", "clip_grad_adaptive", "clip_grad_norm", "clip_grad_value",
    "init_rnn", "pascanu_regularizer", "TrainConfig", "TrainResult", "fit", "gradient_snapshot", "run_config", "train",
    "INITS", "cell_from_arrays", "get_dtype", "head_from_arrays", "random_cell", "recurrent_matrix",
    "jsonable", "hv", "lemma2", "theorem1",
    "Verdict", "fitted_rate", "horizon", "pascanu_verdict", "weight_facts",
    "Trace", "initial_state", "unroll", "VERSION",
    "Diagnosis", "LayerDiagnosis", "diagnose", "target_loss", "GradientFlowMonitor", "MonitorRecord",
    "LayerRun", "StackRun", "cell_from_module", "layer_cells", "load_model", "parse_arch", "rerun",
]
