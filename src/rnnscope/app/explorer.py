"""The explorer's computations: one setting of `rnnscope serve`'s sliders -> a model -> JSON-ready views.

The web page (rnnscope.app.web) has no math of its own: every number it draws comes from here, and every
view is built from the library's own functions (models.random_cell, counterexamples.saddle, unroll,
profile.profile_trace, bounds.weight_facts, bptt.bptt).

A setting (ExplorerConfig) -> a model (`build`): a cell, inputs x (T, B, D) and a start state s_0.
W_hh is set by one number whose meaning the learner chooses (`scale`):

    gain       W_hh by its init at gain g (models.recurrent_matrix: normal N(0, g^2/S), orthogonal g Q,
               identity g I): exactly the model of `rnnscope profile --gain g`
    rho        the init at g = 1, rescaled so that the largest |eigenvalue| rho(W_hh) equals the value
    sigma_max  the init at g = 1, rescaled so that the largest singular value sigma_max(W_hh) equals it

The switch between rho and sigma_max is seed 002's lesson and its correction: the seed reads "largest
eigenvalue < 1/gamma" as "vanishing", but only sigma_max(W_hh) < 1/gamma bounds every product,
||dh_t/dh_k|| <= (gamma sigma_max)^(t-k). A random normal-init W_hh is non-normal (sigma_max ~ 2 rho as S
grows), so rho < 1/gamma can leave sigma_max > 1/gamma, and the verdict says "exploding possible".

    init  normal | orthogonal | identity  (core.vocab.MATRIX_INITS)  W_xh ~ N(0, 1/D), b_h = 0 (or centred)
          saddle  counterexamples.saddle: S = 2, rho(W_hh) = 0.5/gamma < 1/gamma, and yet
                  ||dh_T/dh_k|| ~ 2^(T-k) at its fixed point (its own bias and start state; zero inputs)
    bias  zero     b_h = 0, s_0 = 0 (as the CLI)
          centred  b_h = -W_hh phi(0), s_0 = phi(0) (Elman) or 0 (Pal): the input-free fixed point where every
                   argument of phi is 0, so phi' = phi'(0) (= gamma for sigmoid and tanh) at every unit: where
                   seed 002's exploding example evaluates its products (h = x = b = 0)
    inputs x_t ~ N(0, input_scale^2), numpy's default_rng([seed, 1]) (as the CLI), zeros when 0

Views (each a dict of JSON values; -inf and NaN become null):

    profile_view     the object `rnnscope profile --json` prints: analysis.Profile.to_dict() + model,
                     inputs, T, h0, plot (None)
    measured_view    the profile's regime in words: vanishing / exploding by its 10^3 horizon, else neither
    spectrum_view    eigenvalues of W_hh (of each gate block for LSTM/GRU), singular values, gamma, 1/gamma,
                     rho, sigma_max, verdict and note (bounds.weight_facts), the two tests (rho < 1/gamma,
                     seed 002's; sigma_max < 1/gamma, Pascanu's), and W_hh itself when asked
    activation_view  phi and phi' on a grid, the histogram of the trajectory's arguments of phi (all t, b,
                     units) and the fraction of saturated ones (|phi'| < gamma/10: flat, or dead for relu)
    bptt_view        the object `rnnscope bptt --json` prints (identity head o_t = h_t, MSE against targets
                     y_t ~ N(0, 1) from default_rng([seed, 2]), E = sum_t E_t), over the first T_h steps:
                     its (t, k) table costs O(T_h^2 B S^2), so T_h = min(T, 200, budget); and the heatmap
                     log10 C[t, k] sampled at most heatmap_cells x heatmap_cells (every m-th t and k)

The recurrences after the seeds (core.vocab.MODERN_KINDS: lru, mingru, minlstm, mamba, slstm, indrnn, cornn,
exprnn; explorer_modern): built by random_cell(kind, ..., **options) as their papers initialise them, so the
scale stays gain 1 and init / bias at normal / zero; options r_min, r_max (lru), dt_min, dt_max (mamba) (None:
the cell's default); phi only for indrnn and exprnn. Their spectrum view shows what plays W_hh's part (lru's
lambda_j, exprnn's expm(A), else the one-step Jacobian at the last step) and their own guarantee
(bounds.weight_facts, step_bound); their activation view the memory 1/(1 - |a_t|) of diagonal factors.
explorer_modern.memory_view is the page's curse-of-memory panel (dynamics.memory).

Limits (LIMITS, explorer_limits, re-exported here): every range below, and budgets so that no request computes for
more than a few seconds or holds more than about 1 GB; each view is held to the budget of what it computes
(check_budget: the spectrum of a seeds' cell only to its eigen- and singular values, the activation view to the
unroll's T B A S, profile and explore to the running product's T B S^3, bptt and heatmap to their (t, k) table's
T_h^2 B S (S + D + 1); S the state size: 2H for LSTM, A the pre-activations' width) and to its peak memory
(peak_numbers) within memory_limit. compute(view, cfg) is the one entry of the web server's workers (VIEWS).

Legend: T time, B batch, S state size, D input size (1 here), H hidden size.

Example:
    >>> cfg = ExplorerConfig(activation="sigmoid", hidden=5, length=20, scale="rho", value=3.0, input_scale=1.0)
    >>> v = spectrum_view(build(cfg).cell)
    >>> round(v["spectral_radius"], 6), v["verdict"]
    (3.0, 'exploding possible')
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from ..core.activations import ACTIVATIONS, get_activation
from ..gradients.profile import profile_trace
from ..gradients.bptt import bptt
from ..core.cells import Cell, ElmanCell, PalCell
from ..seeds.counterexamples import saddle
from ..core.errors import InputError
from ..core.heads import Head
from ..core.build import random_cell
from ..core.vocab import ANALYSIS_KINDS, MODERN_KINDS
from ..core.vocab import MATRIX_INITS as INITS
from ..core.results import jsonable
from ..gradients.bounds import weight_facts
from ..core.unroll import Trace, unroll
from . import explorer_modern as modern
from .explorer_limits import (LIMITS, TRAJECTORY_COPIES, VIEWS, Limits, check_budget, heatmap_steps, peak_numbers,
                              reads_trajectory)

__all__ = ["ExplorerConfig", "ExplorerModel", "Limits", "LIMITS", "PRESETS", "SCALES", "EXPLORER_INITS", "BIASES",
           "VIEWS", "TRAJECTORY_COPIES", "build", "check_budget", "peak_numbers", "reads_trajectory", "compute", "run",
           "profile_view", "measured_view", "spectrum_view", "activation_view", "bptt_view", "heatmap_steps", "explore",
           "presets", "ring_of"]

SCALES = ("gain", "rho", "sigma_max")
EXPLORER_INITS = (*INITS, "saddle")
BIASES = ("zero", "centred")
_GATED = ("lstm", "gru")
_DT = torch.float64




@dataclass(frozen=True)
class ExplorerConfig:
    """One setting of the explorer's sliders (the module docstring says what each means; explorer_modern the
    modern cells' options: None is the cell's own default, and an option of another kind is refused)."""

    cell: str = "elman"
    activation: str | None = "tanh"  # None for LSTM/GRU and the modern cells but indrnn, exprnn
    hidden: int = 32
    length: int = 200
    batch: int = 1
    scale: str = "gain"  # what `value` sets: gain, rho or sigma_max of W_hh
    value: float = 1.0
    input_scale: float = 0.0
    init: str = "normal"
    bias: str = "zero"
    seed: int = 0
    r_min: float | None = None  # lru
    r_max: float | None = None
    dt_min: float | None = None  # mamba
    dt_max: float | None = None

    def validate(self, limits: Limits = LIMITS) -> "ExplorerConfig":
        """Self, or InputError('what: expected X, got Y') for the first bad field."""
        def choice(name, v, options):
            if v not in options:
                raise InputError(f"{name}: expected one of {', '.join(options)}, got {v!r}")

        def integer(name, v, lo, hi):
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise InputError(f"{name}: expected an integer in [{lo}, {hi}], got {v!r}")

        def number(name, v, lo, hi):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not lo <= v <= hi:
                raise InputError(f"{name}: expected a number in [{lo:g}, {hi:g}], got {v!r}")

        choice("cell", self.cell, ANALYSIS_KINDS)
        if self.cell in MODERN_KINDS:
            pass  # modern.check_modern below, once the other fields are known to be well formed
        elif self.cell in _GATED:
            if self.activation is not None:
                raise InputError(f"activation: expected none for the gated cell {self.cell} (its nonlinearities are "
                                 f"fixed: sigmoid gates, tanh), got {self.activation!r}")
        else:
            choice("activation", self.activation, tuple(ACTIVATIONS))
        integer("hidden", self.hidden, *limits.hidden)
        integer("length", self.length, *limits.length)
        integer("batch", self.batch, *limits.batch)
        choice("scale", self.scale, SCALES)
        number(self.scale, self.value, *limits.value)
        number("input_scale", self.input_scale, *limits.input_scale)
        choice("init", self.init, EXPLORER_INITS)
        choice("bias", self.bias, BIASES)
        integer("seed", self.seed, *limits.seed)
        modern.check_options(self, limits, number)
        if self.cell in MODERN_KINDS:
            modern.check_modern(self, choice)
        if self.cell in _GATED:
            if self.scale != "gain":
                raise InputError(f"{self.scale}: expected gain for the gated cell {self.cell} (its W_hh stacks "
                                 f"{'four' if self.cell == 'lstm' else 'three'} gate blocks; rho and sigma_max "
                                 f"scaling are for elman and pal), got {self.scale}")
            if self.bias != "zero":
                raise InputError(f"bias: expected zero for the gated cell {self.cell}, got {self.bias!r}")
            if self.init == "saddle":
                raise InputError(f"init: expected one of {', '.join(INITS)} for the gated cell {self.cell}, got 'saddle'")
        if self.init == "saddle":
            if self.activation not in ("sigmoid", "tanh"):
                raise InputError(f"activation: expected sigmoid or tanh for init saddle (a saturating phi), "
                                 f"got {self.activation!r}")
            if self.hidden != 2:
                raise InputError(f"hidden: expected 2 for init saddle (its W_hh is 2 x 2), got {self.hidden}")
            if self.bias != "zero":
                raise InputError(f"bias: expected zero for init saddle (it sets its own bias and start state), "
                                 f"got {self.bias!r}")
        return self

    def state_size(self) -> int:
        """S: H, 2H for lstm (h, c), lru (Re h, Im h) and cornn (y, z), 4H for slstm (h, c, n, m)."""
        return modern.state_size(self.cell, self.hidden)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class ExplorerModel:
    config: ExplorerConfig
    cell: Cell
    x: torch.Tensor  # (T, B, D)
    s0: torch.Tensor | None  # (S,) or None for zeros
    model: dict  # how the cell was made (the CLI's "model" object, with the scaling)
    inputs: str  # how the inputs were made
    h0: str  # how the start state was made

    @property
    def T(self) -> int:
        return self.x.shape[0]


def _rescale(cell: Cell, factor: float) -> Cell:
    """The same vanilla cell with W_hh multiplied by factor."""
    return type(cell)(factor * cell.W_hh, cell.W_xh, cell.b_h, cell.activation)


def _scale_factor(W: torch.Tensor, scale: str, value: float) -> float:
    """The factor c with rho(c W) = value or sigma_max(c W) = value."""
    if scale == "rho":
        current = float(torch.linalg.eigvals(W).abs().max())
    else:
        current = float(torch.linalg.svdvals(W)[0])
    if current == 0.0:
        raise InputError(f"{scale}: expected a W_hh with {scale} > 0 to rescale, got {scale}(W_hh) = 0")
    return value / current


def build(cfg: ExplorerConfig, limits: Limits = LIMITS, view: str = "profile") -> ExplorerModel:
    """The model of a setting: cell, inputs x (T, B, 1), start state (see the module docstring); refused first if
    `view` (what will be computed on it: VIEWS) is over its budget (check_budget)."""
    cfg.validate(limits)
    check_budget(cfg, limits, view)
    T, B, D = cfg.length, cfg.batch, 1
    gain = cfg.value if cfg.scale == "gain" else 1.0
    model: dict = {"source": "random", "hidden": cfg.hidden, "input_size": D, "gain": gain, "init": cfg.init,
                   "seed": cfg.seed}
    s0 = None
    h0 = "zeros"
    if cfg.cell in MODERN_KINDS:  # drawn as its paper initialises it, with its options (the CLI's model object)
        options = modern.options_of(cfg)
        cell = random_cell(cfg.cell, cfg.activation, hidden=cfg.hidden, input_size=D, seed=cfg.seed, dtype=_DT,
                           **options)
        model = {"source": "random", "hidden": cfg.hidden, "input_size": D, "seed": cfg.seed, "options": options}
    elif cfg.init == "saddle":
        ce = saddle(cfg.activation, cfg.cell, T=2)  # the recipe's W_hh, b_h and fixed point (measured over 2 steps)
        cell = ce.make_cell()
        a_star = ce.W_hh @ ce.h0 + ce.b_h if cfg.cell == "elman" else ce.h0  # the fixed point's argument of phi
        factor = gain if cfg.scale == "gain" else _scale_factor(ce.W_hh, cfg.scale, cfg.value)
        W = factor * ce.W_hh
        # the same fixed point for the rescaled W_hh: Elman a* = W h* + b, Pal h* = W phi(h*) + b
        b = a_star - W @ ce.h0 if cfg.cell == "elman" else ce.h0 - W @ cell.activation.phi(ce.h0)
        cell = type(cell)(W, ce.W_xh, b, cell.activation)
        s0 = ce.h0
        model = {"source": "saddle", "hidden": 2, "input_size": D, "gain": gain, "init": "saddle", "seed": cfg.seed,
                 "recipe": "counterexamples.saddle(g=2, r=0.5): rho(W_hh) = r/gamma, unit 1 at phi' = gamma, unit 2 "
                           "saturated; W_hh times the factor, b_h re-solved for the same fixed point"}
        h0 = "the saddle's fixed point h*"
    else:
        cell = random_cell(cfg.cell, "tanh" if cfg.activation is None else cfg.activation, hidden=cfg.hidden,
                           input_size=D, gain=gain, init=cfg.init, seed=cfg.seed, dtype=_DT)
        factor = 1.0
        if cfg.scale != "gain":
            factor = _scale_factor(cell.W_hh, cfg.scale, cfg.value)
            cell = _rescale(cell, factor)
        if cfg.bias == "centred":
            centre = cell.activation.phi(torch.zeros(cfg.hidden, dtype=_DT))  # phi(0): 1/2 for sigmoid, else 0
            b = -(cell.W_hh @ centre)
            cell = type(cell)(cell.W_hh, cell.W_xh, b, cell.activation)
            s0 = centre if cfg.cell == "elman" else torch.zeros(cfg.hidden, dtype=_DT)
            h0 = "phi(0) (centred: every a_t = 0 without inputs)" if cfg.cell == "elman" else "zeros (centred)"
    model["dtype"] = "float64"
    if cfg.cell not in MODERN_KINDS:
        model.update({"scale": cfg.scale, "value": cfg.value, "factor": factor, "bias": cfg.bias})
    if cfg.input_scale > 0:
        rng = np.random.default_rng([cfg.seed, 1])  # the CLI's stream, apart from the weights' generator
        x = torch.as_tensor(cfg.input_scale * rng.standard_normal((T, B, D)))
        inputs = f"random N(0, {cfg.input_scale:g}^2), seed {cfg.seed}"
    else:
        x = torch.zeros(T, B, D, dtype=_DT)
        inputs = "zeros"
    return ExplorerModel(cfg, cell, x, s0, model, inputs, h0)


def run(m: ExplorerModel) -> Trace:
    """The forward pass, refused if it overflows (identity or relu with large weights)."""
    trace = unroll(m.cell, m.x, m.s0)
    bad = ~torch.isfinite(trace.states.reshape(trace.states.shape[0], -1)).all(1)  # (T+1,)
    if bool(bad.any()):
        k = int(torch.nonzero(bad)[0])
        raise InputError(f"weights/inputs: expected a forward pass with finite states, got inf or NaN in s_{k} "
                         f"(the RNN overflows float64; lower the gain or the input scale)")
    return trace


def profile_view(m: ExplorerModel, trace: Trace | None = None) -> dict:
    """The object of `rnnscope profile --json` for this model (seconds: unroll and analysis)."""
    start = time.perf_counter()
    trace = run(m) if trace is None else trace
    p = profile_trace(m.cell, trace)
    p = dataclasses.replace(p, seconds=time.perf_counter() - start)
    return jsonable({**p.to_dict(), "model": m.model, "inputs": m.inputs, "T": m.T, "h0": m.h0, "plot": None})


_GATE_NAMES = {"lstm": ("input gate i", "forget gate f", "candidate g", "output gate o"),
               "gru": ("reset gate r", "update gate z", "candidate n")}


def spectrum_view(cell: Cell, *, weights: bool = False, trace: Trace | None = None,
                  ring: tuple[float, float] | None = None) -> dict:
    """Eigenvalues and singular values of W_hh (per gate block for gated cells) with bounds.weight_facts.

    weights=True adds W_hh itself (nested lists), so that anyone can recompute the rest. A modern cell shows
    what plays W_hh's part (explorer_modern.transition_view: lru's lambda_j with the ring (r_min, r_max),
    exprnn's W_hh, else the one-step Jacobian at the trace's last step) and its own guarantee: "matrix" says
    which ("W_hh", "lambda", "jacobian"), "step_bound" c with ||ds_t/ds_k||_2 <= c^(t-k) (None: no such c).
    """
    facts = weight_facts(cell)
    if cell.kind in MODERN_KINDS:
        v = modern.transition_view(cell, trace, ring=ring)
        d = {"cell": cell.kind, "gamma": facts.gamma, "inv_gamma": None, "spectral_radius": facts.spectral_radius,
             "sigma_max": facts.sigma_max, "step_bound": facts.step_bound, "verdict": facts.verdict,
             "note": facts.note, "tests": None, **v}
        if weights and hasattr(cell, "W_hh"):
            d["W_hh"] = cell.W_hh.detach().to(_DT)
        return jsonable(d)
    W = cell.W_hh.detach().to(_DT)
    if isinstance(cell, (ElmanCell, PalCell)):
        blocks = [("W_hh", W)]
    else:
        H = W.shape[1]
        blocks = [(f"W_hh {name}", W[i * H:(i + 1) * H]) for i, name in enumerate(_GATE_NAMES[cell.kind])]
    out = []
    for name, B in blocks:
        ev = torch.linalg.eigvals(B)
        out.append({"name": name, "eigenvalues": {"re": ev.real, "im": ev.imag},
                    "singular_values": torch.linalg.svdvals(B)})
    gamma = facts.gamma
    inv = None if not gamma else 1.0 / gamma
    # the two readings of "W_hh below 1/gamma": seed 002's eigenvalue test and Pascanu's singular-value test
    tests = None if inv is None else {"rho_below_inv_gamma": facts.spectral_radius < inv,
                                      "sigma_max_below_inv_gamma": facts.sigma_max < inv}
    d = {"cell": cell.kind, "gamma": gamma, "inv_gamma": inv, "spectral_radius": facts.spectral_radius,
         "sigma_max": facts.sigma_max, "step_bound": facts.step_bound, "verdict": facts.verdict, "note": facts.note,
         "tests": tests, "blocks": out, "matrix": "W_hh"}
    if weights:
        d["W_hh"] = W
    return jsonable(d)


_GRID = (-8.0, 8.0, 161)  # a: where phi is drawn; arguments beyond it count in the end bins
_BINS = 64


def activation_view(cell: Cell, trace: Trace) -> dict:
    """phi, phi' on a grid and the histogram of the trajectory's arguments of phi (per nonlinearity).

    Modern cells: indrnn and exprnn their phi, cornn the tanh of its forcing; the diagonal ones (lru, mingru, minlstm, mamba) no phi curve
    but "factors", the histogram of the memory 1/(1 - |a_t|) of J_t = diag(a_t) (explorer_modern.factor_view);
    slstm neither (its "note" says why).
    """
    a = torch.linspace(*_GRID, dtype=_DT)
    lo, hi, _ = _GRID
    edges = torch.linspace(lo, hi, _BINS + 1, dtype=_DT)
    note, factors = None, None
    if cell.kind in MODERN_KINDS:
        factors = modern.factor_view(cell, trace)
        if cell.kind in modern.ACTIVATED:
            groups = [(cell.activation, "pre-activations a_t", trace.preacts)]
        elif cell.kind == "cornn":  # z_t = z + dt (tanh(a_t) - gamma y - epsilon z): a_t the forcing's argument
            groups = [(get_activation("tanh"), "forcing arguments a_t", trace.preacts)]
        else:
            groups = []
            note = ("J_t = diag(a_t): no phi to saturate; the factors a_t keep the memory" if factors is not None else
                    f"{cell.kind}: its gates and nonlinearities mix with the state (J_t is dense): no one phi to "
                    f"draw; read the profile")
    elif isinstance(cell, (ElmanCell, PalCell)):
        groups = [(cell.activation, "pre-activations a_t" if cell.kind == "elman" else "states h_{t-1} (Pal: phi(h))",
                   trace.preacts)]
    else:
        H = cell.hidden_size
        z = trace.preacts  # (T, B, G H): LSTM i, f, g, o; GRU r, z, n (PyTorch's order)
        if cell.kind == "lstm":
            sig = torch.cat([z[..., :2 * H], z[..., 3 * H:4 * H]], -1)
            tanh = z[..., 2 * H:3 * H]
        else:
            sig, tanh = z[..., :2 * H], z[..., 2 * H:3 * H]
        groups = [(get_activation("sigmoid"), "gate pre-activations", sig),
                  (get_activation("tanh"), "candidate pre-activations", tanh)]
    curves = []
    for act, what, values in groups:
        v = values.reshape(-1).to(_DT)
        counts = torch.histc(v.clamp(lo, hi), bins=_BINS, min=lo, max=hi)  # beyond the grid: in the end bins
        saturated = (act.dphi(v).abs() < act.gamma / 10).to(_DT).mean()
        curves.append({"activation": act.name, "gamma": act.gamma, "values": what, "a": a, "phi": act.phi(a),
                       "dphi": act.dphi(a), "edges": edges, "counts": counts.to(torch.int64),
                       "count": v.numel(), "outside": int((v.abs() > hi).sum()),
                       "saturated_fraction": float(saturated), "mean_abs_dphi": float(act.dphi(v).abs().mean())})
    return jsonable({"cell": cell.kind, "curves": curves, "factors": factors, "note": note})


def bptt_view(m: ExplorerModel, limits: Limits = LIMITS, *, full: bool = True) -> dict:
    """The object of `rnnscope bptt --json` over the first T_h steps, and the heatmap log10 C[t, k] sampled.

    full=False leaves out what the page does not draw (grads, the (T_h, T_h) tables of every parameter).
    """
    if not isinstance(m.cell, (ElmanCell, PalCell)):
        raise InputError(f"cell: expected elman or pal for the per-step contributions (hand-derived BPTT), "
                         f"got {m.cell.kind!r}")
    cfg = m.config
    Th = heatmap_steps(cfg, limits)
    S, B, D = m.cell.state_size, cfg.batch, 1
    rng = np.random.default_rng([cfg.seed, 2])
    y = torch.as_tensor(rng.standard_normal((Th, B, S)))  # (T_h, B, S) targets of o_t = h_t
    head = Head.identity(S, "mse", _DT)
    start = time.perf_counter()
    r = bptt(m.cell, head, m.x[:Th], y, m.s0, loss_at="all", contributions="norms")
    seconds = time.perf_counter() - start
    C = r.contributions_norm["W_hh"]  # (T_h, T_h): [t-1, k-1], 0 for k > t
    stride = max(1, math.ceil(Th / limits.heatmap_cells))
    ts = list(range(1, Th + 1, stride))
    if ts[-1] != Th:
        ts.append(Th)
    idx = torch.tensor(ts) - 1
    sub = torch.log10(C[idx][:, idx])  # zeros (k > t, or h_{k-1} = 0) -> -inf -> null
    sub[idx.unsqueeze(1) < idx.unsqueeze(0)] = float("nan")  # k > t: no such contribution
    d = {"cell": m.cell.kind, "activation": m.cell.activation.name, "head": "mse",
         "readout": "identity: o_t = h_t (no W_hy in the weights)", "identity_head": True, "loss_at": "all",
         "T": Th, "B": B, "S": S, "D": D, "O": S, "loss": float(r.loss), "seconds": seconds}
    if full:
        d.update({"grads": r.grads, "contributions_norm": C, "contributions_norm_by_parameter": r.contributions_norm})
    d.update({"T_total": m.T, "targets": f"N(0, 1), default_rng([{cfg.seed}, 2])",
              "heatmap": {"t": ts, "k": ts, "stride": stride, "log10_contributions_norm": sub,
                          "truncated": Th < m.T, "steps": Th}})
    return jsonable(d)


def measured_view(profile: dict) -> dict:
    """What the measured profile did, in words: the regime by the profile's horizon (theory.horizon: the first
    distance where ||ds_t/ds_k|| has fallen or risen by 10^3), else 'neither' within t."""
    kind = profile["horizon_kind"]
    regime = {"fallen": "vanishing", "risen": "exploding"}.get(kind, "neither")
    spec = profile["log10_spectral"]
    return {"regime": regime, "horizon": profile["horizon"], "rate_per_step": profile["rate_per_step"],
            "log10_first": spec[0] if spec else None, "t": profile["t"]}


def ring_of(cfg: ExplorerConfig) -> tuple[float, float] | None:
    """lru's ring (r_min, r_max) as built (the cell's defaults where not given); None for the other kinds."""
    if cfg.cell != "lru":
        return None
    d = modern.option_defaults()["lru"]
    return (d["r_min"] if cfg.r_min is None else cfg.r_min, d["r_max"] if cfg.r_max is None else cfg.r_max)


def explore(cfg: ExplorerConfig, limits: Limits = LIMITS) -> dict:
    """Everything the page draws but the heatmap, from one unroll: profile, spectrum, activation."""
    start = time.perf_counter()
    m = build(cfg, limits, "explore")
    trace = run(m)
    prof = profile_view(m, trace)
    out = {"config": cfg.to_dict(), "profile": prof, "measured": measured_view(prof),
           "spectrum": spectrum_view(m.cell, trace=trace, ring=ring_of(cfg)), "activation": activation_view(m.cell, trace)}
    out["seconds"] = time.perf_counter() - start
    return out


def compute(view: str, cfg: ExplorerConfig, limits: Limits = LIMITS) -> dict:
    """The object of /api/<view> for a setting (what the web server runs, in a worker process):

        explore     explore(cfg)
        profile     profile_view(build(cfg))
        spectrum    spectrum_view(cell, weights=True, trace, ring): the trace only where the transition is read
                    along it (reads_trajectory)
        activation  activation_view(cell, run(m))
        bptt        bptt_view(m, full=True); heatmap: the same with full=False

    Each refused (InputError) before anything is built when over the budget of what it computes (check_budget).

        >>> d = compute("spectrum", ExplorerConfig(cell="lstm", activation=None, hidden=8, length=2000))
        >>> [b["name"] for b in d["blocks"]][:2], len(d["blocks"][0]["singular_values"])
        (['W_hh input gate i', 'W_hh forget gate f'], 8)
    """
    if view == "explore":
        return explore(cfg, limits)
    if view not in VIEWS:
        raise InputError(f"view: expected one of {', '.join(VIEWS)}, got {view!r}")
    m = build(cfg, limits, view)
    if view == "profile":
        return profile_view(m)
    if view == "spectrum":
        trace = run(m) if reads_trajectory(cfg, view) else None
        return spectrum_view(m.cell, weights=True, trace=trace, ring=ring_of(cfg))
    if view == "activation":
        return activation_view(m.cell, run(m))
    return bptt_view(m, limits, full=view == "bptt")


@dataclass(frozen=True)
class Preset:
    name: str
    title: str
    description: str
    config: ExplorerConfig

    def to_dict(self) -> dict:
        return {"name": self.name, "title": self.title, "description": self.description, "config": self.config.to_dict()}


PRESETS: tuple[Preset, ...] = (
    Preset("seed002-vanishing", "seed 002: vanishing",
           "Seed 002's first example: a sigmoid RNN with 5 units, t = 20, random h and x, and W_hh whose largest "
           "eigenvalue is below 4 = 1/gamma. The early steps' contributions vanish, as the seed shows; but the "
           "eigenvalue does not promise it: sigma_max(W_hh) > 4, so the verdict is only 'exploding possible'. "
           "Switch the slider from the largest eigenvalue to the largest singular value to see the correct "
           "condition, sigma_max < 1/gamma, guarantee vanishing.",
           ExplorerConfig(cell="elman", activation="sigmoid", hidden=5, length=20, scale="rho", value=3.0,
                          input_scale=1.0, init="normal", bias="zero", seed=0)),
    Preset("seed002-exploding", "seed 002: exploding",
           "Seed 002's second example: eigenvalues above 4 and h = x = b = 0, so every pre-activation is 0 where "
           "sigmoid' = 1/4 = gamma (the centred fixed point). There the products grow like (rho/4)^(t-k). Now "
           "nudge it: input scale 0.01 and T = 100. The state leaves the unstable fixed point, the units saturate "
           "and the same W_hh vanishes: 'exploding' is possible, never promised.",
           ExplorerConfig(cell="elman", activation="sigmoid", hidden=5, length=20, scale="rho", value=9.0,
                          input_scale=0.0, init="normal", bias="centred", seed=0)),
    Preset("non-normal", "non-normal counterexample",
           "counterexamples.saddle: a 2 x 2 W_hh with rho = 0.5 < 1/gamma = 1 (tanh) whose products still grow "
           "like 2^(t-k) at a fixed point with one unit saturated. The eigenvalue test promises vanishing and "
           "is wrong; sigma_max(W_hh) > 1/gamma says 'exploding possible'.",
           ExplorerConfig(cell="elman", activation="tanh", hidden=2, length=40, scale="rho", value=0.5,
                          input_scale=0.0, init="saddle", bias="zero", seed=0)),
    Preset("edge-of-chaos", "edge of chaos",
           "tanh, W_hh ~ N(0, g^2/S) at g = 1 with weak inputs: the mean-field critical point (chi_1 = 1 at "
           "sigma_b = 0). Gradients neither vanish nor explode quickly: the profile stays within a few decades "
           "over 500 steps. Move the gain a little either way.",
           ExplorerConfig(cell="elman", activation="tanh", hidden=64, length=500, scale="gain", value=1.0,
                          input_scale=0.1, init="normal", bias="zero", seed=0)),
    Preset("lru-unit-circle", "LRU near the unit circle",
           "The Linear Recurrent Unit (Orvieto et al. 2023): a diagonal complex recurrence h_t = lambda h_{t-1} + "
           "B x_t with every |lambda_j| drawn on the ring 0.99 ... 0.999. Its Jacobians are normal and constant, so "
           "||dh_T/dh_k|| = max|lambda|^(T-k) exactly: the profile is a straight line of slope log10 max|lambda| "
           "per step, on its bound, whatever the inputs. Memory is kept by placing lambda near the circle, not by "
           "hoping for a good W_hh. Lower r_max to shorten it.",
           ExplorerConfig(cell="lru", activation=None, hidden=16, length=1000, scale="gain", value=1.0,
                          input_scale=1.0, seed=0, r_min=0.99, r_max=0.999)),
    Preset("mingru", "minGRU",
           "minGRU (Feng et al. 2024): h_t = (1 - z_t) h_{t-1} + z_t h~_t, with the gate z_t and the candidate "
           "computed from x_t alone. The Jacobian is diag(1 - z_t), every entry in (0, 1) whatever the input: the "
           "profile can only fall, never explode, and how fast is decided by the gates (the histogram: the memory "
           "1/(1 - |a_t|) of each factor). Raise the input scale to push the gates around.",
           ExplorerConfig(cell="mingru", activation=None, hidden=32, length=200, scale="gain", value=1.0,
                          input_scale=1.0, seed=0)),
    Preset("mamba-delta", "Mamba: Delta decides memory",
           "One selective state-space layer (Mamba's S6, Gu & Dao 2023): h_t = exp(Delta_t A) h_{t-1} + Delta_t B_t "
           "x_t with A < 0 and a step Delta_t = softplus(w x_t + b) chosen by the input. Every factor lies in (0, 1): "
           "never exploding. A small Delta holds the state, a large one resets it. Here Delta starts near 0.001: "
           "memory over hundreds of steps, except at the few steps where a large input raises Delta (the profile's "
           "drops). Move dt_min and dt_max up to 0.1 ... 1: the same random inputs are forgotten within ten steps.",
           ExplorerConfig(cell="mamba", activation=None, hidden=16, length=300, scale="gain", value=1.0,
                          input_scale=2.0, seed=0, dt_min=0.001, dt_max=0.002)),
)


def presets() -> list[dict]:
    return [p.to_dict() for p in PRESETS]
