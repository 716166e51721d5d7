"""Training runs on the long-memory tasks: a TrainConfig in, a TrainResult out (Pascanu et al. 2013's setup).

    model     networks.build_model(config)                one recurrent layer + a linear readout, config.init
    batches   task.sample(B, L, gen)                      a fresh batch per update from a seeded generator;
                                                          L = config.length, or L ~ U{MIN..MAX} drawn per
                                                          batch with config.length_range (Pascanu's code)
    updates   fit.fit(model, batches, task.loss, ...)     backward, Omega, clipping, optimizer step
    every eval_every updates:
      eval    loss and error rate on eval_size fresh sequences (a separate generator), drawn in batches of
              EVAL_BATCH = 1,000 (Pascanu's cbs), each with its own L in sampled mode; a sequence is wrong
              by the task's criterion (task.wrong)
      flow    snapshot.gradient_snapshot: log10 ||dL/dh_k||, k = 0..T, by rnnscope's adjoint engine
      stop    when the run's success criterion is met (criteria.py: "pascanu", zero errors in >= 10,000
              sequences; "lenient", error rate < 1 %, the default): status "solved"
      lyapunov  with flossing_k > 0: the top k Lyapunov exponents on one fixed probe sequence (history "lyapunov")
    flossing  (Engelken 2023; flossing.py) flossing_k > 0: flossing_steps pre-flossing updates, interflossing of
              flossing_steps updates every flossing_every updates, E + flossing_alpha sum_i lambda_i^2 in every
              update; each on fresh task sequences (one per update) from a generator of their own, so the model's
              init, the training and the evaluation batches are those of the same run without flossing

A NaN or Inf training loss ends the run ("diverged"); train never raises for it. The result records which
criterion judged the run (TrainResult.criterion) and the memoryless baseline of the lengths trained on
(the mean over the range in sampled mode).

Legend: T time, B batch, S state size (H, or 2H for LSTM's (h, c)), H hidden size, D input size, O outputs.

Example:
    >>> cfg = TrainConfig(task="adding-le", length=8, hidden=4, steps=20, eval_every=10, eval_size=50,
    ...                   clip_norm=1.0, snapshot_size=4)
    >>> result = train(cfg, progress=False)
    >>> result.status, result.steps, len(result.history), len(result.history[-1]["profile"])  # k = 0..T
    ('unsolved', 20, 2, 9)
    >>> result.criterion["name"], result.baseline_loss == get_task("adding-le").baseline_loss(8)
    ('lenient', True)
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import socket
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ..core.budget import GATES, STATES, check_batch_memory, check_memory
from ..core.build import get_dtype
from ..core.errors import InputError
from ..core.results import jsonable
from ..core.vocab import MODERN_KINDS, TRAIN_ACTIVATIONS, TRAIN_CELL_KINDS, TRAIN_INITS, check
from ..runs.progress import ProgressBar
from .criteria import get_criterion
from .fit import is_int, is_number, fit
from .flossing import Flossing, FlossingRun
from .networks import SequenceModel, build_model
from .remedies import PascanuRegularizer
from .snapshot import cast_batch, first_sequences, gradient_snapshot
from .tasks import check_length_range, draw_length, get_task, range_baseline_loss

__all__ = ["TrainConfig", "TrainResult", "train", "run_config", "make_optimizer", "OPTIMIZERS", "STATUSES",
           "EVAL_BATCH"]

OPTIMIZERS = ("sgd", "momentum", "rmsprop", "adam")
STATUSES = ("solved", "unsolved", "diverged")
MOMENTUM = 0.9  # "momentum": SGD with the customary heavy-ball coefficient
MAX_EVAL_SIZE = 1_000_000  # fresh sequences per evaluation at most: beyond, an evaluation would run for hours
EVAL_BATCH = 1000  # sequences per evaluation batch, each drawn on its own: Pascanu's state['cbs']
EVAL_CHUNK = 250  # sequences per forward pass in evaluations: bounded memory, steadier timings (measured here)
FLOSSING_LR = 1e-3  # Engelken's code: AdamW(lr = 1e-3, (0.9, 0.999)) for flossing
FLOSSING_LENGTH = 100  # steps of each flossing trajectory at most (his example: T = 55 of 300)


# ------------------------------------------------------------------------------------------------ config

@dataclass(frozen=True)
class TrainConfig:
    """One training run. Defaults follow Pascanu et al. 2013's setup where they have one.

    Lengths: `length` L for every batch, or `length_range` (MIN, MAX): L ~ U{MIN..MAX} drawn per batch for
    training and evaluation (Pascanu's code: min_length 50, max_length 200 exclusive = (50, 199) here); then
    `length` is MAX (filled in when not given). Clipping: at most one of clip_norm, clip_value,
    clip_adaptive; None (or 0) switches each off. criterion: "lenient" or "pascanu" (criteria.py);
    eval_size defaults to the criterion's number of sequences (1,000; 10,000).
    """

    task: str  # a name of rnnscope.lab.tasks.TASK_NAMES (or the name of a task object passed to train)
    length: int | None = None  # the task's nominal length L; with length_range its MAX
    cell: str = "elman"  # elman | pal | lstm | gru, or a modern kind: lru | mingru | minlstm | mamba | slstm |
    # indrnn | cornn | exprnn (vocab.TRAIN_CELL_KINDS; lab/cell_networks.CellRNN, initialised as its paper does)
    activation: str = "tanh"  # tanh | sigmoid | relu (elman, pal); lstm and gru have their own: tanh
    hidden: int = 50  # Pascanu: 50 hidden units
    init: str = "default"  # default | sigmoid | basic-tanh | smart-tanh | normal | orthogonal | identity
    # (remedies.init_rnn); the modern kinds: default only (their papers' own, with cell_options)
    optimizer: str = "sgd"  # Pascanu: plain SGD; momentum (0.9) | rmsprop | adam
    lr: float = 0.01  # Pascanu: 0.01
    batch: int = 20  # Pascanu: 20 sequences per update
    steps: int = 10_000  # updates; Pascanu ran up to 5M, far beyond a CPU budget of minutes
    clip_norm: float | None = None  # Algorithm 1 threshold; Pascanu's SGD-C used 1.0; None = off (plain SGD)
    clip_value: float | None = None  # elementwise clipping at +-c; None = off
    clip_adaptive: float | None = None  # threshold = factor x EMA of past norms (decay 0.99); Pascanu: 0.5 to 10
    regularizer_alpha: float = 0.0  # Pascanu's Omega weight (2 to 4 with clipping); 0 = off; elman and pal only
    seed: int = 0  # model init, training batches and evaluation batches all derive from it
    eval_every: int = 100  # Pascanu's checkFreq-style evaluation interval (updates); his code: 20
    eval_size: int | None = None  # fresh sequences per evaluation; None: the criterion's (lenient 1,000, pascanu 10,000)
    snapshot: bool = True  # gradient-flow snapshot (adjoint profile) at every evaluation
    snapshot_size: int = 32  # sequences of the evaluation batch in the snapshot; its cost grows with them. The
    # profile is a mean of log10 norms: over 32 sequences it moved by <= 0.12 decade between batches (adding-pascanu,
    # temporal-order, L = 100, at init; measured here), against ~0.07 for 100 at twice the cost
    dtype: str = "float32"  # training precision; snapshots are computed in float64
    length_range: tuple[int, int] | None = None  # (MIN, MAX): L ~ U{MIN..MAX} per batch (Pascanu: 50..199)
    criterion: str = "lenient"  # lenient (error < 1 %) | pascanu (zero errors in >= 10,000)
    flossing_k: int = 0  # gradient flossing (Engelken 2023): the top k Lyapunov exponents flossed / recorded; 0 = off
    flossing_alpha: float = 0.0  # flossing throughout: E + alpha sum_i lambda_i^2 at every update; 0 = off
    flossing_steps: int = 0  # pre-flossing updates (and the updates of each interflossing session)
    flossing_every: int = 0  # interflossing period (updates); 0 = pre-flossing only
    cell_options: dict = field(default_factory=dict)  # a modern kind's own options (core.build.random_cell's): e.g.
    # {"r_min": 0.9, "r_max": 0.999} for lru (the ring initialisation), {"activation": "relu"} for indrnn

    def __post_init__(self) -> None:
        if not isinstance(self.task, str) or not self.task:
            raise InputError(f"task: expected a task name, got {self.task!r}")
        crit = get_criterion(self.criterion)
        if self.eval_size is None:
            object.__setattr__(self, "eval_size", crit.default_sequences)
        if self.length_range is not None:
            lo, hi = check_length_range(self.length_range)
            object.__setattr__(self, "length_range", (lo, hi))
            if self.length is None:
                object.__setattr__(self, "length", hi)
            elif self.length != hi:
                raise InputError(f"length: expected {hi} (the MAX of length_range {lo}:{hi}) or none, got {self.length!r}")
        if self.length is None:
            raise InputError("length: expected an integer >= 1 (or a length_range (MIN, MAX)), got None")
        for name, lo in (("length", 1), ("hidden", 1), ("batch", 1), ("steps", 1), ("eval_every", 1),
                         ("eval_size", 1), ("snapshot_size", 1), ("seed", 0)):
            v = getattr(self, name)
            if not is_int(v) or v < lo:
                raise InputError(f"{name}: expected an integer >= {lo}, got {v!r}")
        crit.check_sequences(self.eval_size)
        if self.eval_size > MAX_EVAL_SIZE:
            raise InputError(f"eval_size: expected at most {MAX_EVAL_SIZE:,} fresh sequences per evaluation, got "
                             f"{self.eval_size:,}")
        for name, choices in (("cell", TRAIN_CELL_KINDS), ("activation", TRAIN_ACTIVATIONS), ("init", TRAIN_INITS),
                              ("optimizer", OPTIMIZERS)):
            check(name, getattr(self, name), choices)
        if not isinstance(self.cell_options, dict) or not all(isinstance(k, str) for k in self.cell_options):
            raise InputError(f"cell_options: expected a dict of option names, got {self.cell_options!r}")
        if self.cell in MODERN_KINDS:
            if self.init != "default":
                raise InputError(f"init: expected 'default' for {self.cell} (initialised as its paper does; its own "
                                 f"options in cell_options), got {self.init!r}")
            if self.activation != "tanh":
                raise InputError(f"activation: expected the default 'tanh' for {self.cell} (indrnn and exprnn take "
                                 f"theirs in cell_options), got {self.activation!r}")
        elif self.cell_options:
            raise InputError(f"cell_options: expected none for {self.cell}, got {', '.join(sorted(self.cell_options))}")
        if self.cell in ("lstm", "gru") and self.activation != "tanh":
            raise InputError(f"activation: expected 'tanh' for {self.cell} (its nonlinearities are fixed), "
                             f"got {self.activation!r}")
        if not is_number(self.lr) or not math.isfinite(self.lr) or self.lr <= 0:
            raise InputError(f"lr: expected a positive finite number, got {self.lr!r}")
        on = []
        for name in ("clip_norm", "clip_value", "clip_adaptive"):
            v = getattr(self, name)
            if v is None:
                continue
            if not is_number(v) or not math.isfinite(v) or v < 0:
                raise InputError(f"{name}: expected a positive number, 0 or None (off), got {v!r}")
            if v > 0:
                on.append(name)
        if len(on) > 1:
            raise InputError(f"clipping: expected at most one of clip_norm, clip_value, clip_adaptive, "
                             f"got {', '.join(on)}")
        a = self.regularizer_alpha
        if not is_number(a) or not math.isfinite(a) or a < 0:
            raise InputError(f"regularizer_alpha: expected a finite number >= 0, got {a!r}")
        if a > 0 and self.cell not in ("elman", "pal"):
            raise InputError(f"regularizer_alpha: expected 0 for {self.cell} (Pascanu's regularizer is defined "
                             f"for elman and pal cells), got {a!r}")
        self.flossing()  # validated
        if not isinstance(self.snapshot, bool):
            raise InputError(f"snapshot: expected true or false, got {self.snapshot!r}")
        get_dtype(self.dtype)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """A config from a dict (a sweep's config): unknown keys are refused; task is required, and length unless
        length_range is given."""
        if not isinstance(d, dict):
            raise InputError(f"config: expected a dict, got {type(d).__name__}")
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(d) - set(names))
        if unknown:
            raise InputError(f"config: expected keys among {', '.join(names)}, got unknown {', '.join(map(repr, unknown))}")
        missing = [k for k in ("task", "length") if k not in d and not (k == "length" and d.get("length_range"))]
        if missing:
            raise InputError(f"config: expected keys {', '.join(missing)}, got none")
        return cls(**d)

    def flossing(self) -> Flossing | None:
        """The flossing schedule of the flossing_* fields (None when flossing_k = 0): lr FLOSSING_LR, one sequence
        per update, trajectories of at most FLOSSING_LENGTH steps."""
        for name in ("flossing_k", "flossing_steps", "flossing_every"):
            v = getattr(self, name)
            if not is_int(v) or v < 0:
                raise InputError(f"{name}: expected an integer >= 0, got {v!r}")
        a = self.flossing_alpha
        if not is_number(a) or not math.isfinite(a) or a < 0:
            raise InputError(f"flossing_alpha: expected a finite number >= 0, got {a!r}")
        on = [n for n in ("flossing_alpha", "flossing_steps", "flossing_every") if getattr(self, n)]
        if not self.flossing_k:
            if on:
                raise InputError(f"flossing_k: expected an integer >= 1 (the exponents flossed) with {', '.join(on)} "
                                 f"set, got 0")
            return None
        if self.flossing_k > self.hidden:
            raise InputError(f"flossing_k: expected at most hidden = {self.hidden} exponents, got {self.flossing_k}")
        if self.flossing_every and not self.flossing_steps:
            raise InputError(f"flossing_steps: expected an integer >= 1 with flossing_every = {self.flossing_every} "
                             f"(each interflossing session runs flossing_steps updates), got 0")
        return Flossing(self.flossing_k, alpha=float(a), steps=self.flossing_steps, every=self.flossing_every,
                        lr=FLOSSING_LR, length=FLOSSING_LENGTH)

    def clip(self) -> tuple[str, float] | None:
        """('norm' | 'value' | 'adaptive', its number), or None."""
        for kind in ("norm", "value", "adaptive"):
            v = getattr(self, f"clip_{kind}")
            if v:
                return kind, float(v)
        return None

    def length_label(self) -> str:
        """'L' or 'MIN..MAX' (sampled lengths)."""
        return f"{self.length_range[0]}..{self.length_range[1]}" if self.length_range else str(self.length)


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


# ------------------------------------------------------------------------------------------------- train

@dataclass(frozen=True)
class TrainResult:
    """The outcome of `train`.

    status: "solved" (the criterion met at an evaluation: the run stopped there), "unsolved", or "diverged"
    (a NaN or Inf training loss; final_loss is that loss, final_error_rate NaN). steps: updates made.
    final_loss, final_error_rate: of the last evaluation. baseline_loss: the task's memoryless baseline at
    the run's length (the mean over length_range in sampled mode). history: one dict per evaluation: step,
    loss, error_rate, train_loss, grad_norm (the last before clipping), clipped and fallbacks (counts since
    the previous evaluation), omega (mean since then, or None), rho (spectral radius of W_hh, vanilla
    cells), seconds, profile (log10 ||dL/dh_k||, k = 0..T, mean over the snapshot's sequences; with
    snapshot on), lyapunov (with flossing_k > 0: the top k exponents on the probe sequence). criterion: which one
    judged "solved" (name, rule, source, sequences per evaluation). flossing (with flossing_k > 0): k, phases,
    pre_before and pre_after (the exponents before and after pre-flossing, on the probe), updates, sessions.
    """

    status: str
    steps: int
    final_loss: float
    final_error_rate: float
    baseline_loss: float
    history: list
    seconds: float
    criterion: dict = field(default_factory=dict)
    flossing: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return jsonable({"status": self.status, "steps": self.steps, "final_loss": self.final_loss,
                         "final_error_rate": self.final_error_rate, "baseline_loss": self.baseline_loss,
                         "history": self.history, "seconds": self.seconds, "criterion": self.criterion,
                         **({"flossing": self.flossing} if self.flossing else {})})


def _resolve_task(config: TrainConfig, task):
    if task is None:
        task = get_task(config.task)
    else:
        missing = [a for a in ("sample", "loss", "wrong", "baseline_loss", "input_size", "output_size")
                   if not hasattr(task, a)]
        if missing:
            raise InputError(f"task: expected an object with {', '.join(missing)}, got {type(task).__name__}")
        if getattr(task, "name", None) != config.task:
            raise InputError(f"task: expected a task named {config.task!r} (config.task), got {getattr(task, 'name', None)!r}")
    lo = getattr(task, "min_length", 1)
    shortest = config.length_range[0] if config.length_range else config.length
    if shortest < lo:
        what = "length_range MIN" if config.length_range else "length"
        raise InputError(f"{what}: expected an integer >= {lo} for {config.task}, got {shortest}")
    return task


def _check_memory(config: TrainConfig, task) -> None:
    """An InputError before anything is allocated when the run would not fit (core.budget): the longest batch
    (T' <= L + L/10 + 20, or the task's fixed `steps`) of max(batch, EVAL_CHUNK) sequences through the network,
    its state S (2H for LSTM's (h, c), 4H for sLSTM, ...) and pre-activations (G H), and a task batch of EVAL_BATCH."""
    L = config.length
    T = max(L + L // 10 + 20, int(getattr(task, "steps", 0) or 0))
    H, kind = config.hidden, config.cell
    S = (2 if kind == "lstm" else STATES.get(kind, 1)) * H
    check_memory(T, max(config.batch, EVAL_CHUNK), S, task.input_size, GATES.get(kind, 1) * H,
                 torch.finfo(get_dtype(config.dtype)).bits // 8)
    check_batch_memory(max(config.batch, min(config.eval_size, EVAL_BATCH)), T, task.input_size, task.output_size)


def _seeds(seed: int) -> tuple[int, int, int]:
    """Independent seeds for the init, the training batches and the evaluation batches."""
    a, b, c = np.random.SeedSequence(int(seed)).generate_state(3)
    return int(a), int(b), int(c)


def _nominal(config: TrainConfig, gen: torch.Generator) -> int:
    """The nominal length of the next batch: config.length (no draw), or L ~ U{MIN..MAX} from gen."""
    return draw_length(config.length_range, gen) if config.length_range else config.length


def _outputs(model: SequenceModel, x: torch.Tensor) -> torch.Tensor:
    """model(x)[0] in chunks of EVAL_CHUNK sequences, put together: (B, T, O)."""
    return torch.cat([model(x[i:i + EVAL_CHUNK])[0] for i in range(0, x.shape[0], EVAL_CHUNK)])


def _evaluate(model: SequenceModel, task, config: TrainConfig, gen: torch.Generator, dtype: torch.dtype):
    """(loss, wrong, n, first batch) on config.eval_size fresh sequences, drawn in batches of EVAL_BATCH (each with
    its own nominal length in sampled mode, as Pascanu's code): loss = sum_i n_i loss_i / n (one batch: its loss)."""
    losses, sizes, wrong, first = [], [], 0, None
    for start in range(0, config.eval_size, EVAL_BATCH):
        n = min(EVAL_BATCH, config.eval_size - start)
        draw = getattr(task, "sample_eval", None) or task.sample  # a held-out split where the task has one
        b = cast_batch(draw(n, _nominal(config, gen), gen), dtype)  # outside inference mode: the snapshot uses it
        with torch.inference_mode():
            out = _outputs(model, b.x)
            losses.append(float(task.loss(out, b)))
            wrong += int(task.wrong(out, b).sum())
        sizes.append(n)
        first = b if first is None else first
    n = sum(sizes)
    loss = losses[0] if len(losses) == 1 else math.fsum(l * k for l, k in zip(losses, sizes)) / n
    return loss, wrong, n, first


def _finite_params(model: nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


class _Bar(ProgressBar):
    """The training bar (runs.progress): steps, and the loss and error rate of the last evaluation."""

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

    Example (sampled lengths; Pascanu's criterion needs 10,000 fresh sequences per evaluation):
        >>> cfg = TrainConfig("adding-le", length_range=(5, 8), hidden=4, steps=10, eval_every=10, snapshot=False,
        ...                   criterion="pascanu")
        >>> r = train(cfg, progress=False)
        >>> cfg.length, r.status, r.criterion["sequences"], round(r.baseline_loss, 4)       # length is the MAX
        (8, 'unsolved', 10000, 0.1667)
    """
    if not isinstance(config, TrainConfig):
        raise InputError(f"config: expected a TrainConfig, got {type(config).__name__}")
    t0 = time.perf_counter()
    task = _resolve_task(config, task)
    _check_memory(config, task)
    crit = get_criterion(config.criterion)
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
    solved = False  # the last evaluation met the criterion
    floss, probe = _flossing_run(config, task, model, dtype)

    def batches():
        for _ in itertools.count():
            yield cast_batch(task.sample(config.batch, _nominal(config, gen), gen), dtype)

    def loss_fn(m: SequenceModel, b) -> torch.Tensor:
        return task.loss(m(b.x)[0], b)

    def on_eval(step: int, stats: dict) -> dict:
        nonlocal solved
        rec: dict[str, Any] = {}
        if _finite_params(model):
            loss, wrong, n, first = _evaluate(model, task, config, eval_gen, dtype)
            rec["loss"], rec["error_rate"] = loss, wrong / n
            solved = crit.solved(wrong, n, loss)
            if vanilla:
                rec["rho"] = float(torch.linalg.eigvals(model.rnn.weight_hh_l0.detach().double()).abs().max())
            if floss is not None:
                rec["lyapunov"] = _measure(floss, probe)
            if config.snapshot:
                rec["profile"] = gradient_snapshot(model, first_sequences(first, config.snapshot_size), task.loss).profile.tolist()
        else:  # the last update made the weights non-finite; the next loss will end the run
            rec.update(loss=math.nan, error_rate=1.0)
            solved = False
        if writer is not None:
            _write_eval(writer, step, {**stats, **rec})
        bar.note(rec["loss"], rec["error_rate"])
        if solved:
            rec["stop"] = True
        return rec

    def monitor(r: dict) -> None:
        bar.advance()
        if writer is not None:
            writer.add_scalar("step/loss", r["loss"], r["step"])
            writer.add_scalar("step/grad_norm", r["grad_norm"], r["step"])

    bar = _Bar(progress, console, f"{config.task} L={config.length_label()} {config.cell}", config.steps)
    with bar:
        hist = fit(model, batches(), loss_fn, steps=config.steps, optimizer=optimizer, regularizer=regularizer,
                   monitor=monitor if (bar.enabled or writer is not None) else None, on_eval=on_eval,
                   eval_every=config.eval_every, flossing=floss, **clip_kw)
    if regularizer is not None:
        regularizer.remove()
    history = hist.evals
    if hist.status == "diverged":
        status, final_loss, final_error = "diverged", hist.losses[-1], math.nan
    else:
        last = history[-1]
        final_loss, final_error = last["loss"], last["error_rate"]
        status = "solved" if solved else "unsolved"
    if writer is not None:
        writer.flush()
    baseline = (range_baseline_loss(task, config.length_range) if config.length_range
                else float(task.baseline_loss(config.length)))
    fl = {k: v for k, v in hist.flossing.items() if k != "records"}
    result = TrainResult(status, hist.steps, final_loss, final_error, baseline, history, time.perf_counter() - t0,
                         {**crit.to_dict(), "sequences": config.eval_size}, fl)
    if store is not None:
        _record(store, config, result)
    return result


def _flossing_run(config: TrainConfig, task, model: SequenceModel, dtype: torch.dtype):
    """(FlossingRun, probe x (1, T, D)) for a run with flossing_k > 0, else (None, None). Flossing inputs come from a
    generator of their own (the 4th word of the run's SeedSequence); the probe is its first draw."""
    fl = config.flossing()
    if fl is None:
        return None, None
    gen = torch.Generator().manual_seed(int(np.random.SeedSequence(int(config.seed)).generate_state(4)[3]))

    def inputs() -> torch.Tensor:
        return cast_batch(task.sample(fl.batch, _nominal(config, gen), gen), dtype).x  # (1, T', D)

    probe = inputs()
    return FlossingRun(fl, model, inputs), probe


def _measure(floss: FlossingRun, probe: torch.Tensor) -> list | None:
    """The top k exponents on the probe now, or None when they cannot be computed (non-finite weights or frame)."""
    try:
        return floss.measure(floss._x(probe))
    except InputError:
        return None


def _write_eval(writer, step: int, rec: dict) -> None:
    from ..core.plots import plot_adjoint_profile  # matplotlib only when TensorBoard is written

    for tag in ("loss", "error_rate", "grad_norm", "clipped", "fallbacks", "train_loss", "omega", "rho"):
        v = rec.get(tag)
        if v is not None:
            writer.add_scalar(tag, float(v), step)
    profile = rec.get("profile")
    if profile:
        finite = np.array([v for v in profile if v is not None and math.isfinite(v)], dtype=np.float64)
        if finite.size:
            writer.add_histogram("gradient_flow/log10_adjoint_norm", finite, step)
        writer.add_figure("gradient_flow", plot_adjoint_profile(profile, title=f"adjoint profile at step {step}"),
                          step, close=True)


def _record(store, config: TrainConfig, result: TrainResult) -> None:
    from ..runs.store import Store
    from ..runs.spec import config_key

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
        >>> d = run_config({"task": "adding-le", "length": 6, "hidden": 3, "steps": 5, "eval_every": 5, "eval_size": 20})
        >>> d["status"], d["steps"], d["criterion"]["name"]
        ('unsolved', 5, 'lenient')
    """
    return train(TrainConfig.from_dict(config), progress=False).to_dict()
