"""Training runs on the long-memory tasks, with the remedies and gradient-flow snapshots.

One step (Pascanu et al. 2013's loop, trainingRNNs/RNN.py):

    batch  = task.sample(B, L, gen)                  a fresh batch from a seeded generator
    out, h = model(batch.x)                          (B, T, O), (B, T, H)
    E      = task.loss(out, batch)                   NaN or Inf: the run ends, status "diverged"
    g      = dE/dtheta                               backward
    g_hh  += alpha dOmega/dW_hh                      Pascanu's regularizer (elman, pal; alpha > 0)
    g      = clip(g)                                 norm | value | adaptive (remedies.py); the norm before
                                                     clipping is recorded, and whether it fired; norm and
                                                     adaptive clipping include Pascanu's NaN/Inf fallback
                                                     (dE/dW_hh <- 0.02 W_hh, the rest 0)
    theta  = optimizer.step(theta, g)

Every eval_every steps: the loss and error rate on eval_size fresh sequences (a separate generator; a
sequence is wrong by the task's criterion), and a snapshot of the gradient flow: the adjoint profile
log10 ||dL/dh_k||, k = 0..T, computed by rnnscope's own engine (the module's weights as an rnnscope cell,
unroll, bptt.adjoints with the readout's immediate partials). The run stops early when the error rate is
below 1% (Pascanu's criterion: "solved").

Models: torch.nn.RNN (tanh, relu), nn.LSTM, nn.GRU (fused), or ElmanRNN (any activation: nn.RNN has no
sigmoid) and PalRNN (h_t = W_hh phi(h_{t-1}) + W_xh x_t + b), one layer, batch first, and a Linear readout
at every step.

Legend: T time, B batch, S state size (H, or 2H for LSTM's (h, c)), H hidden size, D input size, O outputs.

Example:
    >>> cfg = TrainConfig(task="adding-pascanu", length=20, steps=300, clip_norm=1.0, eval_every=100)
    >>> result = train(cfg, progress=False)                                    # doctest: +SKIP
    >>> result.status, len(result.history[-1]["profile"])                      # doctest: +SKIP
    ('unsolved', 21)
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import socket
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..core.activations import get_activation
from ..gradients.bptt import adjoints
from ..core.errors import InputError
from ..runs.progress import ProgressBar
from ..core.build import get_dtype
from .remedies import (INIT_NAMES, AdaptiveClipState, PascanuRegularizer, clip_grad_adaptive, clip_grad_norm,
                       clip_grad_value, grad_norm, init_rnn)
from ..core.results import jsonable
from ..interop.torch_models import cell_from_module
from ..core.unroll import unroll

__all__ = ["TrainConfig", "TrainResult", "FitHistory", "ElmanRNN", "PalRNN", "SequenceModel", "Snapshot",
           "build_model", "make_optimizer", "cell_from_module", "gradient_snapshot", "fit", "train", "run_config",
           "CELLS", "TRAIN_ACTIVATIONS", "OPTIMIZERS", "STATUSES", "SOLVED_BELOW"]

CELLS = ("elman", "pal", "lstm", "gru")
TRAIN_ACTIVATIONS = ("tanh", "sigmoid", "relu")
OPTIMIZERS = ("sgd", "momentum", "rmsprop", "adam")
STATUSES = ("solved", "unsolved", "diverged")
SOLVED_BELOW = 0.01  # Pascanu's success criterion: fewer than 1% of fresh sequences wrong
MOMENTUM = 0.9  # "momentum": SGD with the customary heavy-ball coefficient


# ------------------------------------------------------------------------------------------------ config

def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _is_num(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


@dataclass(frozen=True)
class TrainConfig:
    """One training run. Defaults follow Pascanu et al. 2013's setup where they have one.

    Clipping: at most one of clip_norm, clip_value, clip_adaptive; None (or 0) switches each off.
    """

    task: str  # a name of rnnscope.lab.tasks.TASK_NAMES (or the name of a task object passed to train)
    length: int  # the task's nominal length L
    cell: str = "elman"  # elman | pal | lstm | gru
    activation: str = "tanh"  # tanh | sigmoid | relu (elman, pal); lstm and gru have their own: tanh
    hidden: int = 50  # Pascanu: 50 hidden units
    init: str = "default"  # default | sigmoid | basic-tanh | smart-tanh | orthogonal | identity (remedies.init_rnn)
    optimizer: str = "sgd"  # Pascanu: plain SGD; momentum (0.9) | rmsprop | adam
    lr: float = 0.01  # Pascanu: 0.01
    batch: int = 20  # Pascanu: 20 sequences per update
    steps: int = 10_000  # updates; Pascanu ran up to 5M, far beyond a CPU budget of minutes
    clip_norm: float | None = None  # Algorithm 1 threshold; Pascanu's SGD-C used 1.0; None = off (plain SGD)
    clip_value: float | None = None  # elementwise clipping at +-c; None = off
    clip_adaptive: float | None = None  # threshold = factor x EMA of past norms (decay 0.99); Pascanu: 0.5 to 10
    regularizer_alpha: float = 0.0  # Pascanu's Omega weight (2 to 4 with clipping); 0 = off; elman and pal only
    seed: int = 0  # model init, training batches and evaluation batches all derive from it
    eval_every: int = 100  # Pascanu's checkFreq-style evaluation interval (updates)
    eval_size: int = 1000  # fresh sequences per evaluation; Pascanu used 10,000, 1,000 resolves 1% to 0.1%
    snapshot: bool = True  # gradient-flow snapshot (adjoint profile) at every evaluation
    snapshot_size: int = 32  # sequences of the evaluation batch in the snapshot; its cost grows with them. The
    # profile is a mean of log10 norms: over 32 sequences it moved by <= 0.12 decade between batches (adding-pascanu,
    # temporal-order, L = 100, at init; measured here), against ~0.07 for 100 at twice the cost
    dtype: str = "float32"  # training precision; snapshots are computed in float64

    def __post_init__(self) -> None:
        if not isinstance(self.task, str) or not self.task:
            raise InputError(f"task: expected a task name, got {self.task!r}")
        for name, lo in (("length", 1), ("hidden", 1), ("batch", 1), ("steps", 1), ("eval_every", 1),
                         ("eval_size", 1), ("snapshot_size", 1), ("seed", 0)):
            v = getattr(self, name)
            if not _is_int(v) or v < lo:
                raise InputError(f"{name}: expected an integer >= {lo}, got {v!r}")
        for name, choices in (("cell", CELLS), ("activation", TRAIN_ACTIVATIONS), ("init", INIT_NAMES),
                              ("optimizer", OPTIMIZERS)):
            v = getattr(self, name)
            if v not in choices:
                raise InputError(f"{name}: expected one of {', '.join(choices)}, got {v!r}")
        if self.cell in ("lstm", "gru") and self.activation != "tanh":
            raise InputError(f"activation: expected 'tanh' for {self.cell} (its nonlinearities are fixed), "
                             f"got {self.activation!r}")
        if not _is_num(self.lr) or not math.isfinite(self.lr) or self.lr <= 0:
            raise InputError(f"lr: expected a positive finite number, got {self.lr!r}")
        on = []
        for name in ("clip_norm", "clip_value", "clip_adaptive"):
            v = getattr(self, name)
            if v is None:
                continue
            if not _is_num(v) or not math.isfinite(v) or v < 0:
                raise InputError(f"{name}: expected a positive number, 0 or None (off), got {v!r}")
            if v > 0:
                on.append(name)
        if len(on) > 1:
            raise InputError(f"clipping: expected at most one of clip_norm, clip_value, clip_adaptive, "
                             f"got {', '.join(on)}")
        a = self.regularizer_alpha
        if not _is_num(a) or not math.isfinite(a) or a < 0:
            raise InputError(f"regularizer_alpha: expected a finite number >= 0, got {a!r}")
        if a > 0 and self.cell not in ("elman", "pal"):
            raise InputError(f"regularizer_alpha: expected 0 for {self.cell} (Pascanu's regularizer is defined "
                             f"for elman and pal cells), got {a!r}")
        if not isinstance(self.snapshot, bool):
            raise InputError(f"snapshot: expected true or false, got {self.snapshot!r}")
        get_dtype(self.dtype)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """A config from a dict (a sweep's config): unknown keys are refused, task and length are required."""
        if not isinstance(d, dict):
            raise InputError(f"config: expected a dict, got {type(d).__name__}")
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(d) - set(names))
        if unknown:
            raise InputError(f"config: expected keys among {', '.join(names)}, got unknown {', '.join(map(repr, unknown))}")
        missing = [k for k in ("task", "length") if k not in d]
        if missing:
            raise InputError(f"config: expected keys {', '.join(missing)}, got none")
        return cls(**d)

    def clip(self) -> tuple[str, float] | None:
        """('norm' | 'value' | 'adaptive', its number), or None."""
        for kind in ("norm", "value", "adaptive"):
            v = getattr(self, f"clip_{kind}")
            if v:
                return kind, float(v)
        return None


# ------------------------------------------------------------------------------------------------ models

class _VanillaRNN(nn.Module):
    """Shared parts of ElmanRNN and PalRNN: nn.RNN's parameter names, its default init, batch first."""

    form = "vanilla"

    def __init__(self, input_size: int, hidden_size: int, activation: str = "tanh", *, dtype=None):
        super().__init__()
        self.input_size, self.hidden_size = int(input_size), int(hidden_size)
        self.activation = get_activation(activation).name
        self._phi = get_activation(activation).phi
        self.batch_first, self.num_layers, self.bidirectional = True, 1, False
        H, D = self.hidden_size, self.input_size
        self.weight_ih_l0 = nn.Parameter(torch.empty(H, D, dtype=dtype))  # W_xh
        self.weight_hh_l0 = nn.Parameter(torch.empty(H, H, dtype=dtype))  # W_hh
        self.bias_ih_l0 = nn.Parameter(torch.empty(H, dtype=dtype))  # b_h = bias_ih + bias_hh, as nn.RNN
        self.bias_hh_l0 = nn.Parameter(torch.empty(H, dtype=dtype))
        k = 1.0 / math.sqrt(H)
        for p in self.parameters():
            nn.init.uniform_(p, -k, k)  # nn.RNN's default

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, activation={self.activation!r}, form={self.form!r}"

    def _start(self, x: torch.Tensor, h0: torch.Tensor | None):
        B = x.shape[0]
        u = F.linear(x, self.weight_ih_l0, self.bias_ih_l0 + self.bias_hh_l0)  # (B, T, H): W_xh x_t + b_h, all t
        h = x.new_zeros(B, self.hidden_size) if h0 is None else h0.reshape(B, self.hidden_size)
        return u, h


class ElmanRNN(_VanillaRNN):
    """Elman RNN with any activation (nn.RNN offers tanh and relu only), nn.RNN's names and layout:

        h_t = phi(W_hh h_{t-1} + W_xh x_t + b_ih + b_hh)

    forward(x (B, T, D), h0 (1, B, H) | None) -> (out (B, T, H) = h_1..h_T, h_n (1, B, H)).

    Example:
        >>> rnn = ElmanRNN(2, 8, "sigmoid"); out, h_n = rnn(torch.randn(4, 10, 2))
        >>> tuple(out.shape), torch.equal(out[:, -1], h_n[0])
        ((4, 10, 8), True)
    """

    form = "elman"

    def forward(self, x: torch.Tensor, h0: torch.Tensor | None = None):
        u, h = self._start(x, h0)
        W_T = self.weight_hh_l0.t()
        outs = []
        for t in range(x.shape[1]):
            h = self._phi(torch.addmm(u[:, t], h, W_T))  # h_t = phi(W_hh h_{t-1} + u_t)  (B, H)
            outs.append(h)
        return torch.stack(outs, 1), h.unsqueeze(0)


class PalRNN(_VanillaRNN):
    """The Pascanu/Pal form (Pascanu et al. 2013 eq. 11, seed 001 eq. 1), nn.RNN's names and layout:

        h_t = W_hh phi(h_{t-1}) + W_xh x_t + b_ih + b_hh

    forward(x (B, T, D), h0 (1, B, H) | None) -> (out (B, T, H) = h_1..h_T, h_n (1, B, H)).
    """

    form = "pal"

    def forward(self, x: torch.Tensor, h0: torch.Tensor | None = None):
        u, h = self._start(x, h0)
        W_T = self.weight_hh_l0.t()
        outs = []
        for t in range(x.shape[1]):
            h = torch.addmm(u[:, t], self._phi(h), W_T)  # h_t = W_hh phi(h_{t-1}) + u_t  (B, H)
            outs.append(h)
        return torch.stack(outs, 1), h.unsqueeze(0)


class SequenceModel(nn.Module):
    """A one-layer RNN module and a Linear readout at every step: forward(x (B, T, D)) -> (out (B, T, O), h (B, T, H))."""

    def __init__(self, rnn: nn.Module, readout: nn.Linear):
        super().__init__()
        self.rnn, self.readout = rnn, readout

    def forward(self, x: torch.Tensor):
        h, _ = self.rnn(x)  # (B, T, H)
        return self.readout(h), h  # o_t = W_hy h_t + b_y  (B, T, O)


def build_model(config: TrainConfig, input_size: int, output_size: int, *, seed: int | None = None) -> SequenceModel:
    """The model of a config (see the module docstring), initialised by config.init from `seed`
    (default config.seed); PyTorch's default init draws from a forked, seeded global generator."""
    seed = config.seed if seed is None else int(seed)
    dtype = get_dtype(config.dtype)
    D, H, O = int(input_size), config.hidden, int(output_size)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if config.cell == "elman" and config.activation in ("tanh", "relu"):
            rnn = nn.RNN(D, H, nonlinearity=config.activation, batch_first=True, dtype=dtype)  # fused
        elif config.cell == "elman":
            rnn = ElmanRNN(D, H, config.activation, dtype=dtype)
        elif config.cell == "pal":
            rnn = PalRNN(D, H, config.activation, dtype=dtype)
        elif config.cell == "lstm":
            rnn = nn.LSTM(D, H, batch_first=True, dtype=dtype)
        else:
            rnn = nn.GRU(D, H, batch_first=True, dtype=dtype)
        readout = nn.Linear(H, O, dtype=dtype)
    init_rnn(rnn, readout, config.init, torch.Generator().manual_seed(seed))
    return SequenceModel(rnn, readout)


def make_optimizer(config: TrainConfig, params) -> torch.optim.Optimizer:
    """sgd: SGD(lr); momentum: SGD(lr, momentum 0.9); rmsprop: RMSprop(lr); adam: Adam(lr) (PyTorch's other defaults)."""
    params = list(params)
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr)
    if config.optimizer == "momentum":
        return torch.optim.SGD(params, lr=config.lr, momentum=MOMENTUM)
    if config.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=config.lr)
    return torch.optim.Adam(params, lr=config.lr)


# --------------------------------------------------------------------------------------------- snapshots

@dataclass(frozen=True)
class Snapshot:
    """The adjoint profile of a model on a batch: log10 ||dL/dh_k||_2 for k = 0..T (h part of LSTM's (h, c))."""

    log10_norm: torch.Tensor  # (T+1, B) per sequence; -inf where the adjoint is exactly 0
    loss: float

    @property
    def profile(self) -> torch.Tensor:
        """(T+1,) the mean over sequences of log10 ||dL/dh_k|| (a geometric mean of the norms)."""
        return self.log10_norm.mean(dim=1)


def _batch_with(batch, **tensors):
    if dataclasses.is_dataclass(batch):
        return dataclasses.replace(batch, **tensors)
    return type(batch)(**{**vars(batch), **tensors})


def _head(batch, n: int):
    """The first n sequences of a batch (x, y, mask are batch first)."""
    if batch.x.shape[0] <= n:
        return batch
    return _batch_with(batch, x=batch.x[:n], y=batch.y[:n], mask=batch.mask[:n])


def _cast(batch, dtype: torch.dtype):
    """x (and regression targets) in dtype."""
    if batch.x.dtype == dtype:
        return batch
    y = batch.y.to(dtype) if batch.y.is_floating_point() else batch.y
    return _batch_with(batch, x=batch.x.to(dtype), y=y)


def gradient_snapshot(model: SequenceModel, batch, loss_fn: Callable, *, dtype: torch.dtype = torch.float64) -> Snapshot:
    """log10 ||dL/dh_k||, k = 0..T, for every sequence of batch, by rnnscope's adjoint engine:

        cell   = cell_from_module(model.rnn)           the module's weights, in dtype
        trace  = unroll(cell, x)                       s_0..s_T
        direct = dL/dh_k through the readout only      torch.autograd.grad(loss_fn(W_hy h + b_y, batch), h)
        g      = bptt.adjoints(cell, trace, direct)    g_{k-1} = g_k ds_k/ds_{k-1} + direct_{k-1}, log domain

    L = loss_fn(out, batch), the task's loss as training differentiates it (a mean over the batch, so each
    sequence's adjoint carries the factor 1/B of that mean). For LSTM the state is (h, c); the profile is
    of the h part (direct is 0 on c).
    """
    rnn = model.rnn
    cell = cell_from_module(rnn, dtype=dtype)
    x = batch.x.to(dtype).transpose(0, 1)  # (T, B, D)
    trace = unroll(cell, x)
    T, B = trace.T, trace.B
    H = rnn.hidden_size
    h = trace.states[1:, :, :H].transpose(0, 1).detach().requires_grad_(True)  # (B, T, H) h_1..h_T
    W_hy = model.readout.weight.detach().to(dtype)
    b_y = None if model.readout.bias is None else model.readout.bias.detach().to(dtype)
    with torch.enable_grad():
        loss = loss_fn(F.linear(h, W_hy, b_y), _cast(batch, dtype))  # o_t = W_hy h_t + b_y
        (g,) = torch.autograd.grad(loss, h)  # (B, T, H) immediate partials d+L/dh_k
    direct = torch.zeros(T, B, cell.state_size, dtype=dtype)
    direct[:, :, :H] = g.transpose(0, 1)
    adj = adjoints(cell, trace, direct)
    log10 = adj.log10_norm  # (T+1, B) of the full state
    if cell.state_size != H:  # LSTM: ||h part|| = ||g|| * ||unit[:H]||
        log10 = log10 + torch.log10(torch.linalg.vector_norm(adj.unit[:, :, :H], dim=-1))
    return Snapshot(log10, loss.detach().item())


# --------------------------------------------------------------------------------------------------- fit

@dataclass(frozen=True)
class FitHistory:
    """What `fit` saw, step by step and at each evaluation.

    status: "finished" (steps done or the batches ran out), "stopped" (a callback asked) or "diverged" (a
    NaN or Inf loss; that step made no update). steps: updates made. losses: every step's loss (the
    diverged one included); grad_norms, clipped, fallbacks, omegas: per update (omegas empty without the
    regularizer). evals: one dict per evaluation (fit's window statistics merged with on_eval's dict).
    """

    status: str
    steps: int
    losses: list = field(default_factory=list)
    grad_norms: list = field(default_factory=list)
    clipped: list = field(default_factory=list)
    fallbacks: list = field(default_factory=list)
    omegas: list = field(default_factory=list)
    evals: list = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return jsonable(dataclasses.asdict(self))


def _find_recurrent_weight(model: nn.Module) -> torch.Tensor | None:
    found = [p for n, p in model.named_parameters() if n == "weight_hh_l0" or n.endswith(".weight_hh_l0")]
    return found[0] if len(found) == 1 else None


def _find_vanilla(model: nn.Module) -> nn.Module:
    found = [m for m in model.modules() if isinstance(m, (nn.RNN, ElmanRNN, PalRNN))]
    if len(found) != 1:
        raise InputError(f"regularizer: expected a model with exactly one nn.RNN, ElmanRNN or PalRNN, got {len(found)}; "
                         f"pass PascanuRegularizer(module, alpha)")
    return found[0]


def _check_optional_positive(name: str, v) -> float | None:
    if v is None or (_is_num(v) and v == 0):
        return None
    if not _is_num(v) or not math.isfinite(v) or v < 0:
        raise InputError(f"{name}: expected a positive number or None, got {v!r}")
    return float(v)


def fit(model: nn.Module, batches: Iterable, loss_fn: Callable, *, steps: int, optimizer: torch.optim.Optimizer,
        clip_norm: float | None = None, clip_value: float | None = None, clip_adaptive: float | None = None,
        regularizer: PascanuRegularizer | float | None = None, monitor: Callable | None = None,
        on_eval: Callable | None = None, eval_every: int = 100,
        recurrent_weight: torch.Tensor | None = None) -> FitHistory:
    """Train any torch model on any batches with the remedies, recording the gradient norms.

    Each step: E = loss_fn(model, batch) (NaN or Inf: stop, status "diverged"), backward, the regularizer
    (adds alpha dOmega/dW_hh), clipping (at most one of clip_norm, clip_value, clip_adaptive = factor with
    remedies.AdaptiveClipState's EMA), optimizer.step(). Norm and adaptive clipping use Pascanu's NaN/Inf
    fallback on recurrent_weight (default: the model's one parameter named weight_hh_l0, if any).

    batches   any iterable; fit stops early when it runs out
    loss_fn   loss_fn(model, batch) -> scalar tensor
    regularizer  a remedies.PascanuRegularizer, or alpha (a number) for the model's one nn.RNN/ElmanRNN/PalRNN
    monitor   monitor(record) every step, record = {step, loss, grad_norm, clipped, fallback, omega, threshold};
              return True to stop
    on_eval   on_eval(step, stats) every eval_every updates and after the last one; stats = {step, train_loss
              (mean since the last evaluation), grad_norm (the last, before clipping), clipped and fallbacks
              (counts since the last evaluation), omega (mean since the last evaluation or None), seconds};
              return a dict to record with them (with "stop": True to stop) or None

    Example:
        >>> rnn = nn.RNN(1, 16, batch_first=True); head = nn.Linear(16, 1)
        >>> model = nn.ModuleDict({"rnn": rnn, "head": head})
        >>> data = [(torch.randn(8, 30, 1), torch.randn(8, 1)) for _ in range(50)]
        >>> def loss_fn(m, b):
        ...     out, _ = m["rnn"](b[0]); return F.mse_loss(m["head"](out[:, -1]), b[1])
        >>> hist = fit(model, data, loss_fn, steps=50, optimizer=torch.optim.SGD(model.parameters(), lr=0.01),
        ...            clip_norm=1.0, regularizer=2.0, eval_every=25, on_eval=lambda step, stats: None)
        >>> hist.status, hist.steps, len(hist.grad_norms), len(hist.evals)
        ('finished', 50, 50, 2)
    """
    if not _is_int(steps) or steps < 1:
        raise InputError(f"steps: expected an integer >= 1, got {steps!r}")
    if not _is_int(eval_every) or eval_every < 1:
        raise InputError(f"eval_every: expected an integer >= 1, got {eval_every!r}")
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise InputError(f"optimizer: expected a torch.optim.Optimizer, got {type(optimizer).__name__}")
    if not callable(loss_fn):
        raise InputError(f"loss_fn: expected a function (model, batch) -> loss, got {type(loss_fn).__name__}")
    clips = {"clip_norm": _check_optional_positive("clip_norm", clip_norm),
             "clip_value": _check_optional_positive("clip_value", clip_value),
             "clip_adaptive": _check_optional_positive("clip_adaptive", clip_adaptive)}
    on = [k for k, v in clips.items() if v is not None]
    if len(on) > 1:
        raise InputError(f"clipping: expected at most one of clip_norm, clip_value, clip_adaptive, got {', '.join(on)}")
    params = [p for p in model.parameters() if p.requires_grad]
    own_reg = False
    if regularizer is not None and not isinstance(regularizer, PascanuRegularizer):
        if not _is_num(regularizer):
            raise InputError(f"regularizer: expected a PascanuRegularizer or alpha (a number), got {type(regularizer).__name__}")
        regularizer = PascanuRegularizer(_find_vanilla(model), float(regularizer)) if regularizer > 0 else None
        own_reg = regularizer is not None
    W_hh = recurrent_weight
    if W_hh is None and (clips["clip_norm"] or clips["clip_adaptive"]):
        W_hh = regularizer.rnn.weight_hh_l0 if regularizer is not None else _find_recurrent_weight(model)
    if W_hh is not None and not any(p is W_hh for p in params):
        raise InputError("recurrent_weight: expected one of the model's trainable parameters")
    adaptive = AdaptiveClipState() if clips["clip_adaptive"] else None

    t0 = time.perf_counter()
    losses, norms, clipped, fallbacks, omegas, evals = [], [], [], [], [], []
    status, done, last_eval = "finished", 0, 0
    it = iter(batches)

    def evaluate(step: int) -> bool:
        """Run on_eval; True when it asks to stop."""
        nonlocal last_eval
        lo, last_eval = last_eval, step
        window = losses[lo:step]
        stats = {"step": step, "train_loss": sum(window) / len(window) if window else math.nan,
                 "grad_norm": norms[step - 1], "clipped": sum(clipped[lo:step]),
                 "fallbacks": sum(fallbacks[lo:step]),
                 "omega": (sum(omegas[lo:step]) / (step - lo)) if omegas else None,
                 "seconds": time.perf_counter() - t0}
        extra = on_eval(step, stats)
        stop = False
        if extra is not None:
            if not isinstance(extra, dict):
                raise InputError(f"on_eval: expected it to return a dict or None, got {type(extra).__name__}")
            extra = dict(extra)
            stop = bool(extra.pop("stop", False))
            stats.update(extra)
        evals.append(stats)
        return stop

    try:
        for step in range(1, steps + 1):
            try:
                batch = next(it)
            except StopIteration:
                break
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model, batch)
            value = loss.detach().item()
            losses.append(value)
            if not math.isfinite(value):
                status = "diverged"
                break
            loss.backward()
            omega = regularizer.apply() if regularizer is not None else None
            if clips["clip_norm"]:
                res = clip_grad_norm(params, clips["clip_norm"], W_hh=W_hh)
            elif clips["clip_value"]:
                res = clip_grad_value(params, clips["clip_value"])
            elif adaptive is not None:
                res = clip_grad_adaptive(params, adaptive, clips["clip_adaptive"], W_hh=W_hh)
            else:
                res = None
            norm = res.norm if res is not None else grad_norm(params)
            optimizer.step()
            done = step
            norms.append(norm)
            clipped.append(res is not None and res.clipped)
            fallbacks.append(res is not None and res.fallback)
            if omega is not None:
                omegas.append(omega)
            if monitor is not None and monitor({"step": step, "loss": value, "grad_norm": norm,
                                                "clipped": clipped[-1], "fallback": fallbacks[-1], "omega": omega,
                                                "threshold": res.threshold if res is not None else math.inf}):
                status = "stopped"
                break
            if on_eval is not None and step % eval_every == 0 and evaluate(step):
                status = "stopped"
                break
        if on_eval is not None and status != "diverged" and done > last_eval:
            if evaluate(done):
                status = "stopped"
    finally:
        if own_reg:
            regularizer.remove()
    return FitHistory(status, done, losses, norms, clipped, fallbacks, omegas, evals, time.perf_counter() - t0)


# ------------------------------------------------------------------------------------------------- train

@dataclass(frozen=True)
class TrainResult:
    """The outcome of `train`.

    status: "solved" (error rate < 1% at an evaluation: the run stopped there), "unsolved", or "diverged"
    (a NaN or Inf training loss; final_loss is that loss, final_error_rate NaN). steps: updates made.
    final_loss, final_error_rate: of the last evaluation. baseline_loss: the task's memoryless baseline.
    history: one dict per evaluation: step, loss, error_rate, train_loss, grad_norm (the last before
    clipping), clipped and fallbacks (counts since the previous evaluation), omega (mean since then, or
    None), rho (spectral radius of W_hh, vanilla cells), seconds, profile (log10 ||dL/dh_k||, k = 0..T,
    mean over the snapshot's sequences; with snapshot on).
    """

    status: str
    steps: int
    final_loss: float
    final_error_rate: float
    baseline_loss: float
    history: list
    seconds: float

    def to_dict(self) -> dict:
        return jsonable({"status": self.status, "steps": self.steps, "final_loss": self.final_loss,
                         "final_error_rate": self.final_error_rate, "baseline_loss": self.baseline_loss,
                         "history": self.history, "seconds": self.seconds})


def _resolve_task(config: TrainConfig, task):
    if task is None:
        from .tasks import get_task

        try:
            task = get_task(config.task)
        except KeyError:
            raise InputError(f"task: expected a known task name, got {config.task!r}") from None
    else:
        missing = [a for a in ("sample", "loss", "wrong", "baseline_loss", "input_size", "output_size")
                   if not hasattr(task, a)]
        if missing:
            raise InputError(f"task: expected an object with {', '.join(missing)}, got {type(task).__name__}")
        if getattr(task, "name", None) != config.task:
            raise InputError(f"task: expected a task named {config.task!r} (config.task), got {getattr(task, 'name', None)!r}")
    lo = getattr(task, "min_length", 1)
    if config.length < lo:
        raise InputError(f"length: expected an integer >= {lo} for {config.task}, got {config.length}")
    return task


def _seeds(seed: int) -> tuple[int, int, int]:
    """Independent seeds for the init, the training batches and the evaluation batches."""
    a, b, c = np.random.SeedSequence(int(seed)).generate_state(3)
    return int(a), int(b), int(c)


EVAL_CHUNK = 250  # sequences per forward pass in evaluations: bounded memory, steadier timings (measured here)


def _evaluate(model: SequenceModel, task, batch) -> tuple[float, float]:
    """(loss, error rate) of the model on a batch, in chunks of EVAL_CHUNK sequences; the loss is the task's
    loss on the whole batch (the chunks' outputs are put together first)."""
    outs = []
    with torch.inference_mode():
        for i in range(0, batch.x.shape[0], EVAL_CHUNK):
            outs.append(model(batch.x[i:i + EVAL_CHUNK])[0])  # (b, T, O)
        out = torch.cat(outs)  # (B, T, O)
        return float(task.loss(out, batch)), float(task.wrong(out, batch).double().mean())


def _finite_params(model: nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


def _profile_figure(profile: list, step: int):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 3), dpi=100)
    ax = fig.add_subplot()
    ax.plot(range(len(profile)), [math.nan if v is None else v for v in profile])
    ax.set_xlabel("k")
    ax.set_ylabel("log10 ||dL/dh_k||")
    ax.set_title(f"adjoint profile at step {step}")
    fig.tight_layout()
    return fig


class _Bar(ProgressBar):
    """The training bar (progress.py): steps, and the loss and error rate of the last evaluation."""

    def __init__(self, enabled: bool, console, name: str, total: int):
        super().__init__(enabled, console, name, total, "loss {task.fields[loss]} error {task.fields[error]}",
                         loss="-", error="-")

    def advance(self) -> None:
        self.update(advance=1)

    def note(self, loss: float, error: float) -> None:
        self.update(loss=f"{loss:.4g}", error=f"{100 * error:.1f}%")


def train(config: TrainConfig, *, progress: bool = True, writer=None, store=None, console=None,
          task=None) -> TrainResult:
    """Train config's model on its task (see the module docstring); never raises for a diverging run.

    writer   a torch.utils.tensorboard.SummaryWriter: scalars loss, error_rate, grad_norm, clipped, train_loss
             (and omega, rho) at every evaluation, step/loss and step/grad_norm at every update, and the
             snapshot as a figure (gradient_flow) and a histogram (gradient_flow/log10_adjoint_norm)
    store    a Store or a path: the run is recorded at the end as one row, key sweep.config_key("train",
             config.to_dict()), sweep and task "train", metrics = the result's to_dict()
    task     a task object to use instead of rnnscope.lab.tasks.get_task(config.task) (its name must be config.task)
    progress a rich progress bar on console (default: stderr)

    Example:
        >>> r = train(TrainConfig("adding-pascanu", 20, steps=200, clip_norm=1.0), progress=False)  # doctest: +SKIP
        >>> r.status, r.history[-1]["error_rate"]                                                    # doctest: +SKIP
    """
    if not isinstance(config, TrainConfig):
        raise InputError(f"config: expected a TrainConfig, got {type(config).__name__}")
    t0 = time.perf_counter()
    task = _resolve_task(config, task)
    dtype = get_dtype(config.dtype)
    init_seed, train_seed, eval_seed = _seeds(config.seed)
    model = build_model(config, task.input_size, task.output_size, seed=init_seed)
    optimizer = make_optimizer(config, model.parameters())
    gen = torch.Generator().manual_seed(train_seed)
    eval_gen = torch.Generator().manual_seed(eval_seed)
    vanilla = config.cell in ("elman", "pal")
    regularizer = PascanuRegularizer(model.rnn, config.regularizer_alpha) if config.regularizer_alpha > 0 else None
    clip = config.clip()
    clip_kw = {} if clip is None else {f"clip_{clip[0]}": clip[1]}

    def batches():
        for _ in itertools.count():
            yield _cast(task.sample(config.batch, config.length, gen), dtype)

    def loss_fn(m: SequenceModel, b) -> torch.Tensor:
        return task.loss(m(b.x)[0], b)

    def on_eval(step: int, stats: dict) -> dict:
        b = _cast(task.sample(config.eval_size, config.length, eval_gen), dtype)
        rec: dict[str, Any] = {}
        if _finite_params(model):
            loss, wrong = _evaluate(model, task, b)
            rec["loss"], rec["error_rate"] = loss, wrong
            if vanilla:
                rec["rho"] = float(torch.linalg.eigvals(model.rnn.weight_hh_l0.detach().double()).abs().max())
            if config.snapshot:
                rec["profile"] = gradient_snapshot(model, _head(b, config.snapshot_size), task.loss).profile.tolist()
        else:  # the last update made the weights non-finite; the next loss will end the run
            rec.update(loss=math.nan, error_rate=1.0)
        if writer is not None:
            _write_eval(writer, step, {**stats, **rec})
        bar.note(rec["loss"], rec["error_rate"])
        if rec["error_rate"] < SOLVED_BELOW:
            rec["stop"] = True
        return rec

    def monitor(r: dict) -> None:
        bar.advance()
        if writer is not None:
            writer.add_scalar("step/loss", r["loss"], r["step"])
            writer.add_scalar("step/grad_norm", r["grad_norm"], r["step"])

    bar = _Bar(progress, console, f"{config.task} L={config.length} {config.cell}", config.steps)
    with bar:
        hist = fit(model, batches(), loss_fn, steps=config.steps, optimizer=optimizer, regularizer=regularizer,
                   monitor=monitor if (bar.enabled or writer is not None) else None, on_eval=on_eval,
                   eval_every=config.eval_every, **clip_kw)
    if regularizer is not None:
        regularizer.remove()
    history = hist.evals
    if hist.status == "diverged":
        status, final_loss, final_error = "diverged", hist.losses[-1], math.nan
    else:
        last = history[-1]
        final_loss, final_error = last["loss"], last["error_rate"]
        status = "solved" if final_error < SOLVED_BELOW else "unsolved"
    if writer is not None:
        writer.flush()
    result = TrainResult(status, hist.steps, final_loss, final_error, float(task.baseline_loss(config.length)),
                         history, time.perf_counter() - t0)
    if store is not None:
        _record(store, config, result)
    return result


def _write_eval(writer, step: int, rec: dict) -> None:
    for tag in ("loss", "error_rate", "grad_norm", "clipped", "fallbacks", "train_loss", "omega", "rho"):
        v = rec.get(tag)
        if v is not None:
            writer.add_scalar(tag, float(v), step)
    profile = rec.get("profile")
    if profile:
        finite = np.array([v for v in profile if v is not None and math.isfinite(v)], dtype=np.float64)
        if finite.size:
            writer.add_histogram("gradient_flow/log10_adjoint_norm", finite, step)
        writer.add_figure("gradient_flow", _profile_figure(profile, step), step, close=True)


def _record(store, config: TrainConfig, result: TrainResult) -> None:
    from ..runs.store import Store
    from ..runs.sweep import config_key

    cfg = config.to_dict()
    own = not isinstance(store, Store)
    db = Store(store) if own else store
    try:
        db.record(config_key("train", cfg), "train", "train", cfg, result.to_dict(), "done", None, result.seconds,
                  socket.gethostname())
    finally:
        if own:
            db.close()


def run_config(config: dict) -> dict:
    """The sweep task "rnnscope.lab.train:run_config": config dict -> TrainConfig -> train(progress=False) -> dict.

    Example:
        >>> run_config({"task": "adding-pascanu", "length": 20, "steps": 100})["status"]     # doctest: +SKIP
        'unsolved'
    """
    return train(TrainConfig.from_dict(config), progress=False).to_dict()
