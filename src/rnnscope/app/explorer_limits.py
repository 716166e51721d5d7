"""The explorer's limits: what one request of `rnnscope serve` may ask for, and what each view may compute.

Limits holds the ranges of the sliders (hidden, length, batch, ...) and the budgets; LIMITS is the one the server
uses. check_budget(cfg, limits, view) refuses a setting before anything is built when the view (VIEWS: what
explorer.compute answers) would compute for more than a few seconds or hold more than memory_limit bytes; each view
is held to the budget of what it computes, counted from the code that runs (its docstring has the formulas):

    every view           the eigen- and singular values of W_hh's blocks       A S^2 <= weights_budget
    trajectory views     the unroll (explore, profile, activation, the           T B A S <= trajectory_budget
                         spectrum of a modern cell read along its trajectory)
    profile, explore     the profile's running product                         T B S^3 <= profile_budget
    bptt, heatmap        the (t, k) table over T_h = heatmap_steps(cfg) steps   T_h^2 B S (S + D + 1) <= heatmap_budget
    and each             its peak memory, 8 peak_numbers(cfg, view) bytes      <= memory_limit

Legend: T time, B batch, S state size (2H for lstm: ExplorerConfig.state_size), A the pre-activations' width
(core.budget.random_sizes), D input size (1 here), H hidden size.

Example:
    >>> from rnnscope.app.explorer import ExplorerConfig
    >>> check_budget(ExplorerConfig(cell="lstm", activation=None, hidden=256), view="spectrum")  # eigenvalues only
    >>> check_budget(ExplorerConfig(cell="lstm", activation=None, hidden=256), view="profile")
    Traceback (most recent call last):
    ...
    rnnscope.core.errors.InputError: length: expected T*B*S^3 <= 1.2e+10 (S = 512 the state size, 2H: (h, c) for lstm: a few seconds of compute), got T = 200, B = 1, S = 512 (2.68e+10); at this size T <= 89
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..core.budget import random_sizes
from ..core.errors import InputError
from . import explorer_modern as modern

if TYPE_CHECKING:
    from .explorer import ExplorerConfig

__all__ = ["Limits", "LIMITS", "VIEWS", "TRAJECTORY_COPIES", "reads_trajectory", "peak_numbers", "check_budget",
           "heatmap_steps"]


@dataclass(frozen=True)
class Limits:
    """What one request may ask for. The budgets are measured on a 2-core machine (see the README)."""

    hidden: tuple[int, int] = (2, 256)
    length: tuple[int, int] = (2, 2000)
    batch: tuple[int, int] = (1, 8)
    value: tuple[float, float] = (0.0, 20.0)  # gain, rho or sigma_max (sigmoid's 1/gamma = 4; seed 002 goes to 14)
    input_scale: tuple[float, float] = (0.0, 10.0)
    seed: tuple[int, int] = (0, 2**31 - 1)
    profile_budget: float = 1.2e10  # T B S^3 (the running product): T <= 715 at S = 256, about 2.5 s on 2 cores
    trajectory_budget: float = 2e10  # T B A S (the unroll's products): above every setting in range (the largest,
    # slstm at H = 256, T = 2000, B = 8, is 1.7e10: 0.9 s); at the slowest rate measured (6e9/s) about 3 s
    weights_budget: float = 2e9  # A S^2 (eigen- and singular values of S x S blocks): slstm's 1024 x 1024 Jacobian
    # (1.1e9) takes 0.45 s
    memory_limit: int = 1024**3  # bytes a view holds at its peak (check_budget's counts)
    heatmap_max_steps: int = 200  # T_h: the (t, k) table's first steps
    heatmap_budget: float = 5e7  # T_h^2 B S (S + D + 1): T_h = 108 at S = 64 (about 30 ms), 200 at S <= 34
    heatmap_cells: int = 100  # the heatmap sent to the page: at most this many t and k
    r_min: tuple[float, float] = (0.0, 1.0)  # lru: the ring of |lambda| (explorer_modern)
    r_max: tuple[float, float] = (0.0, 1.0)
    dt_min: tuple[float, float] = (1e-4, 10.0)  # mamba: the range of the initial step Delta
    dt_max: tuple[float, float] = (1e-4, 10.0)
    memory_lambdas: int = 12  # /api/memory (explorer_modern.memory_view): at most this many lambdas,
    memory_lambda: tuple[float, float] = (0.01, 0.9999)  # each in this range,
    memory_rho: tuple[float, float] = (-0.95, 0.95)  # the inputs' autocorrelation,
    memory_sequences: tuple[int, int] = (2, 20000)
    memory_budget: float = 1e8  # sequences x steps over the lambdas: about 3 s for the three cases on 2 cores

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


LIMITS = Limits()


VIEWS = ("explore", "profile", "spectrum", "activation", "bptt", "heatmap")  # what compute(view, ...) answers
TRAJECTORY_COPIES = 8  # a trajectory's peak numbers per (T + 1) B (S + A + D): measured 1.5 (lru) to 6.7 (exprnn)
# at H = 256, T = 2000, B = 8: the unroll's per-step lists and stacked tensors, the drives, activation_view's copies


def reads_trajectory(cfg: ExplorerConfig, view: str) -> bool:
    """Whether `view` unrolls the model: explore, profile and activation do; spectrum only for a modern cell whose
    transition is the one-step Jacobian along the trajectory (explorer_modern.TRAJECTORY_TRANSITIONS); bptt and
    heatmap unroll only their T_h steps (counted in their own budget)."""
    if view == "spectrum":
        return cfg.cell in modern.TRAJECTORY_TRANSITIONS
    return view in ("explore", "profile", "activation")


def peak_numbers(cfg: ExplorerConfig, view: str, limits: Limits = LIMITS) -> int:
    """The most numbers (8 bytes each) `view` holds at once, counted from the code that runs (check_budget)."""
    S, T, B, D = cfg.state_size(), cfg.length, cfg.batch, 1
    A = random_sizes(cfg.cell, cfg.hidden, D)[1]
    numbers = A * (S + D) + T * B * D + 8 * S * S  # weights, inputs x (T, B, D), the decompositions' copies
    if view in ("bptt", "heatmap"):
        Th = heatmap_steps(cfg, limits)
        return (numbers + TRAJECTORY_COPIES * (Th + 1) * B * (S + A + D) + 2 * Th * S * (S + D + 1) + 3 * Th * Th
                + 5 * (Th + 1) * B * S)
    if reads_trajectory(cfg, view):
        numbers += TRAJECTORY_COPIES * (T + 1) * B * (S + A + D)
    if view in ("explore", "profile"):
        numbers += 6 * B * S * S + 2 * 1024**2  # the profile's products and the flow's chunk buffers
    return numbers


def check_budget(cfg: ExplorerConfig, limits: Limits = LIMITS, view: str = "profile") -> None:
    """Refuse a setting whose `view` (one of VIEWS) would compute too long or not fit in memory, before building it.

    Each view is held to the budget of what it computes (S the state size, A the pre-activations' width (S for
    elman and pal, 4H for lstm, 3H for gru: core.budget.random_sizes), D = 1, T_h = heatmap_steps(cfg)):

        computation                                            who                       time budget
        build and bounds: W_hh's init and rescaling, the       every view                A S^2 <= weights_budget
          eigen- and singular values of its S x S blocks
          (_scale_factor, bounds.weight_facts, spectrum_view)
        the unroll: T steps of B products (B, S) x (S, A)      explore, profile,         T B A S <= trajectory_budget
                                                               activation, the spectrum
                                                               of a modern cell read
                                                               along the trajectory
        the profile's running product of T (B, S, S)           explore, profile          T B S^3 <= profile_budget
          Jacobians
        hand-derived BPTT over T_h = min(T, 200, budget)       bptt, heatmap             T_h^2 B S (S + D + 1)
          steps: T_h^2 / 2 rows of (S, S + D + 1) partials                                 <= heatmap_budget
                                                                                 (refused if T_h = 2 exceeds it)

    and its peak memory, 8 * peak_numbers(cfg, view) bytes within memory_limit, counted in numbers:

        every view   A (S + D) + T B D + 8 S^2             weights, inputs, the decompositions' copies
        trajectory   + TRAJECTORY_COPIES (T + 1) B (S + A + D)   the trace (states, pre-activations, drives, each as
                                                           per-step list and stacked) and activation_view's copies
        profile      + 6 B S^2 + 2 * 1024^2                the running products and the flow's chunk buffers
        bptt         + TRAJECTORY_COPIES (T_h + 1) B (S + A + D) + 2 T_h S (S + D + 1) + 3 T_h^2 + 5 (T_h + 1) B S
                     (its trace of T_h steps, one backward step's partials of every row, the tables, the adjoints)

    Within the ranges of LIMITS the binding ones are the profile's T B S^3 and the trajectory's memory (lstm and
    slstm at H = 256, T = 2000, B = 8); the others hold for a tighter Limits. /api/memory has its own budget
    (explorer_modern.check_memory_budget).

    Raises InputError "what: expected X, got Y" naming the quantity over its budget.
    """
    if view not in VIEWS:
        raise InputError(f"view: expected one of {', '.join(VIEWS)}, got {view!r}")
    S, T, B, D = cfg.state_size(), cfg.length, cfg.batch, 1
    A = random_sizes(cfg.cell, cfg.hidden, D)[1]  # the pre-activations' width
    note = modern.state_note(cfg.cell)
    if view in ("explore", "profile"):
        cost = float(T) * B * S**3
        if cost > limits.profile_budget:
            t_max = int(limits.profile_budget // (B * S**3))
            raise InputError(f"length: expected T*B*S^3 <= {limits.profile_budget:.3g} (S = {S} the state size"
                             f"{note}: a few seconds of compute), got T = {T}, B = {B}, S = {S} ({cost:.3g}); at "
                             f"this size T <= {t_max}")
    if reads_trajectory(cfg, view):
        cost = float(T) * B * A * S
        if cost > limits.trajectory_budget:
            t_max = int(limits.trajectory_budget // (B * A * S))
            raise InputError(f"length: expected T*B*A*S <= {limits.trajectory_budget:.3g} for the trajectory (A = {A} "
                             f"the pre-activations' width, S = {S} the state size{note}: a few seconds of compute), "
                             f"got T = {T}, B = {B}, A = {A}, S = {S} ({cost:.3g}); at this size T <= {t_max}")
    if view in ("bptt", "heatmap"):
        cost = 4.0 * B * S * (S + D + 1)
        if cost > limits.heatmap_budget:
            raise InputError(f"hidden: expected T_h^2*B*S*(S+D+1) <= {limits.heatmap_budget:.3g} for the (t, k) table "
                             f"over at least T_h = 2 steps, got B = {B}, S = {S}, D = {D} ({cost:.3g} at T_h = 2)")
    cost = float(A) * S * S
    if cost > limits.weights_budget:
        raise InputError(f"hidden: expected A*S^2 <= {limits.weights_budget:.3g} for the eigen- and singular values "
                         f"(A = {A} the pre-activations' width, S = {S} the state size{note}), got H = {cfg.hidden} "
                         f"({cost:.3g})")
    numbers = peak_numbers(cfg, view, limits)
    if numbers * 8 > limits.memory_limit:
        raise InputError(f"size: expected the {view} view's trace and working space to fit in "
                         f"{limits.memory_limit / 1024**3:.3g} GiB, got T = {T}, B = {B}, S = {S}, A = {A} "
                         f"(about {numbers * 8 / 1024**3:.3g} GiB)")


def heatmap_steps(cfg: ExplorerConfig, limits: Limits = LIMITS) -> int:
    """T_h: the steps the (t, k) table covers, min(T, heatmap_max_steps, the budget's T)."""
    S, B, D = cfg.state_size(), cfg.batch, 1
    by_budget = int(math.sqrt(limits.heatmap_budget / (B * S * (S + D + 1))))
    return max(2, min(cfg.length, limits.heatmap_max_steps, by_budget))
