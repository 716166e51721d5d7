"""The explorer's recurrences after the seeds (issue 14): settings, models and views of the modern cells.

rnnscope.app.explorer builds the seeds' cells (elman, pal, lstm, gru) and hands the modern kinds
(core.vocab.MODERN_KINDS) here. They have no W_hh to scale: each is drawn as its paper initialises it
(core.build.random_cell(kind, ..., **options)), so the explorer's value slider stays at gain 1 and
init / bias at their defaults (normal, zero). The options the page offers:

    lru    r_min, r_max   |lambda_j| uniform on the ring r_min <= |lambda| <= r_max (the LRU paper's 0, 1)
    mamba  dt_min, dt_max the step Delta's initial range (log-uniform; Mamba's 0.001, 0.1)
    indrnn, exprnn        a choice of phi (relu and tanh by default); the others' nonlinearities are fixed

Views (explorer.spectrum_view and explorer.activation_view call these for a modern cell):

    transition_view  what plays W_hh's part: lru the complex lambda_j (h_t = lambda * h_{t-1} + B x_t; the
                     singular values of the real 2N view are the |lambda_j|, each twice) with the ring
                     r_min..r_max; exprnn W_hh = expm(A) (orthogonal); the others the one-step Jacobian
                     J_T = ds_T/ds_{T-1} (S, S) at the trajectory's last step, sequence 1
    factor_view      "where memory is kept": for the diagonal cells (lru, mingru, minlstm, mamba) J_t is
                     diagonal, J_t = diag(a_t), and the histogram of each factor's memory 1/(1 - |a_t|)
                     (steps per factor e when a_t is near 1) over every step, sequence and unit, on
                     log10 bins [0, FACTOR_DECADES]; lru's factors |lambda_j| are the same at every step
    phi_values       the arguments of phi for indrnn and exprnn (trace.preacts)

The curse of memory (dynamics.memory, Zucchet & Orvieto 2024): memory_view(lambdas, rho, sequences, seed) is
memory_sensitivity(...).to_dict() for the cases MEMORY_CASES (plain h_t = lambda h_{t-1} + x_t, normalised
(gamma = sqrt(1 - lambda^2)), exponential lambda = exp(-exp(nu))), each row with its memory 1/(1 - lambda) and
error bars of MEMORY_BAR_SE standard errors added, and "curves": the closed forms (memory.closed_form) on
MEMORY_GRID points between the smallest and the largest memory, for the lines; refused (InputError) beyond
sequences x steps <= Limits.memory_budget (a few seconds).

Legend: T time, B batch, S state size (lru 2H, slstm 4H, cornn 2H, mamba D H with D = 1), H hidden size.

Example:
    >>> from rnnscope.core.build import random_cell
    >>> v = transition_view(random_cell("lru", hidden=4, r_min=0.5, r_max=0.9, seed=0), None, ring=(0.5, 0.9))
    >>> v["matrix"], len(v["blocks"][0]["eigenvalues"]["re"]), 0.5 <= float(v["blocks"][0]["singular_values"][0]) <= 0.9
    ('lambda', 4, True)
"""

from __future__ import annotations

import inspect
import math

import torch

from ..core.budget import random_sizes
from ..core.errors import InputError
from ..core.results import jsonable
from ..core.modern_cells import ACTIVATED, MODERN_CELLS
from ..core.unroll import Trace
from ..core.vocab import ACTIVATIONS, MODERN_KINDS
from ..dynamics import memory as _memory

__all__ = ["MODERN_KINDS", "ACTIVATED", "OPTIONS", "OPTION_FIELDS", "DEFAULT_ACTIVATION", "default_activation", "DIAGONAL",
           "WEIGHT_TRANSITIONS", "TRAJECTORY_TRANSITIONS", "check_memory_budget",
           "option_defaults", "check_modern", "check_options", "options_of", "state_note", "state_size",
           "transition_view", "factor_view", "FACTOR_DECADES", "MEMORY_CASES", "memory_view", "parse_lambdas"]

OPTIONS = {"lru": ("r_min", "r_max"), "mamba": ("dt_min", "dt_max")}  # the modern options the page offers
OPTION_FIELDS = ("r_min", "r_max", "dt_min", "dt_max")
_OWNER = {name: kind for kind, names in OPTIONS.items() for name in names}
DEFAULT_ACTIVATION = {"indrnn": "relu", "exprnn": "tanh"}  # random_cell's phi when none is given (the papers')


def default_activation(cell: str) -> str | None:
    """The explorer's phi for a cell when none is given: tanh for elman and pal, the paper's for indrnn and exprnn,
    None for the cells whose nonlinearities are fixed (lstm, gru and the other modern cells).

    Example:
        >>> default_activation("elman"), default_activation("indrnn"), default_activation("lstm")
        ('tanh', 'relu', None)
    """
    if cell in ("elman", "pal"):
        return "tanh"
    return DEFAULT_ACTIVATION.get(cell)
DIAGONAL = ("lru", "mingru", "minlstm", "mamba")  # J_t = diag(a_t): memory per unit, per step
WEIGHT_TRANSITIONS = ("lru", "exprnn")  # transition_view reads lambda / W_hh = expm(A) from the weights
TRAJECTORY_TRANSITIONS = tuple(k for k in MODERN_KINDS if k not in WEIGHT_TRANSITIONS)  # the one-step Jacobian J_T
# along the trajectory: these need the unroll
FACTOR_DECADES = 5.0  # factor_view's bins: memory 1/(1 - |a|) from 1 to 10^5 steps (beyond: the last bin)
_BINS = 50
_DT = torch.float64
_STATES = {"lstm": "2H: (h, c)", "lru": "2H: (Re h, Im h)", "slstm": "4H: (h, c, n, m)", "cornn": "2H: (y, z)",
           "mamba": "D H = H with D = 1"}


def option_defaults() -> dict:
    """{kind: {option: default}} read from each cell's `random` (what random_cell uses when an option is absent)."""
    out = {}
    for kind, names in OPTIONS.items():
        params = inspect.signature(MODERN_CELLS[kind].random).parameters
        out[kind] = {n: params[n].default for n in names}
    return out


def state_size(kind: str, hidden: int) -> int:
    """S of the explorer's model (input size D = 1): core.budget.random_sizes."""
    return random_sizes(kind, hidden, 1)[0]


def state_note(kind: str) -> str:
    """How S follows from H, for messages: '', or ', 2H for lstm: (h, c)'."""
    return f", {_STATES[kind]} for {kind}" if kind in _STATES else ""


def check_options(cfg, limits, number) -> None:
    """The modern options: each only for its own kind, in its range, and min <= max (r_min < r_max)."""
    for name in OPTION_FIELDS:
        v = getattr(cfg, name)
        if v is None:
            continue
        owner = _OWNER[name]
        if cfg.cell != owner:
            raise InputError(f"{name}: expected none for the {cfg.cell} cell ({name} is an option of {owner}), "
                             f"got {v!r}")
        number(name, v, *getattr(limits, name))
    if cfg.cell in OPTIONS:
        lo_name, hi_name = OPTIONS[cfg.cell]
        defaults = option_defaults()[cfg.cell]
        lo = defaults[lo_name] if getattr(cfg, lo_name) is None else getattr(cfg, lo_name)
        hi = defaults[hi_name] if getattr(cfg, hi_name) is None else getattr(cfg, hi_name)
        strict = cfg.cell == "lru"  # |lambda|^2 uniform on [r_min^2, r_max^2]: an empty ring has no lambda
        if hi < lo or (strict and hi == lo):
            raise InputError(f"{hi_name}: expected a number {'>' if strict else '>='} {lo_name} = {lo:g}, got {hi!r}")


def check_modern(cfg, choice) -> None:
    """The seeds' knobs that do not apply to a modern cell: phi (but for indrnn, exprnn), the W_hh scale, init, bias."""
    kind = cfg.cell
    if kind in ACTIVATED:
        choice("activation", cfg.activation, ACTIVATIONS)
    elif cfg.activation is not None:
        raise InputError(f"activation: expected none for the {kind} cell (its nonlinearities are fixed), "
                         f"got {cfg.activation!r}")
    if cfg.scale != "gain" or cfg.value != 1.0:
        raise InputError(f"{cfg.scale}: expected gain 1 for the {kind} cell (it has no W_hh to scale: it is drawn as "
                         f"its paper initialises it), got {cfg.scale} = {cfg.value!r}")
    if cfg.init != "normal":
        raise InputError(f"init: expected normal (unused) for the {kind} cell (drawn as its paper initialises it), "
                         f"got {cfg.init!r}")
    if cfg.bias != "zero":
        raise InputError(f"bias: expected zero for the {kind} cell, got {cfg.bias!r}")


def options_of(cfg) -> dict:
    """The options given for this kind ({} for the seeds' cells): random_cell's **options."""
    return {n: getattr(cfg, n) for n in OPTIONS.get(cfg.cell, ()) if getattr(cfg, n) is not None}


def _complex(ev: torch.Tensor) -> dict:
    return {"re": ev.real.to(_DT), "im": ev.imag.to(_DT)}


def transition_view(cell, trace: Trace | None, *, ring: tuple[float, float] | None = None) -> dict:
    """What plays W_hh's part in a modern cell (the module docstring): {"matrix", "blocks", "ring", "step"}.

    blocks: [{"name", "eigenvalues": {"re", "im"}, "singular_values"}] as explorer.spectrum_view's;
    lru's singular values are |lambda_j| (N,) in decreasing order; the Jacobian's are those of J_T (S, S).
    """
    kind = cell.kind
    if kind == "lru":
        lam = cell.lam.detach()  # (N,) complex
        block = {"name": "lambda_j: h_t = lambda * h_{t-1} + B x_t (complex, diagonal)", "eigenvalues": _complex(lam),
                 "singular_values": torch.sort(lam.abs().to(_DT), descending=True).values}
        return {"matrix": "lambda", "blocks": [block], "step": None,
                "ring": None if ring is None else {"r_min": ring[0], "r_max": ring[1]}}
    if kind == "exprnn":  # W_hh = expm(A), A skew-symmetric
        W = cell.W_hh.detach().to(_DT)
        block = {"name": "W_hh = expm(A) (orthogonal)", "eigenvalues": _complex(torch.linalg.eigvals(W)),
                 "singular_values": torch.linalg.svdvals(W)}
        return {"matrix": "W_hh", "blocks": [block], "step": None, "ring": None}
    if trace is None:
        raise InputError(f"trace: expected the trajectory of the {kind} cell (its transition is the one-step "
                         f"Jacobian along it), got None")
    T = trace.T
    J = cell.jacobian(trace.inputs[T - 1, :1], trace.states[T - 1, :1])[0].detach().to(_DT)  # (S, S)
    block = {"name": f"J_T = ds_T/ds_(T-1) at T = {T} (sequence 1)", "eigenvalues": _complex(torch.linalg.eigvals(J)),
             "singular_values": torch.linalg.svdvals(J)}
    return {"matrix": "jacobian", "blocks": [block], "step": T, "ring": None}


def _diagonal_factors(cell, trace: Trace) -> torch.Tensor:
    """|a_t| (T B S,) of every step, sequence and unit: J_t = diag(a_t) with a_t the first factor of the cell's
    factored VJP (diagonal_cells.DiagonalCell: jacobian = diag_embed(vjp_factors(x, s_prev)[0])), formed for
    the whole trace at once; lru's |lambda_j| (N,), the same at every step."""
    if cell.kind == "lru":
        return cell.lam.detach().abs().to(_DT)
    with torch.no_grad():
        a = cell.vjp_factors(trace.inputs, trace.states[:-1])[0]  # (T, B, S)
    return a.detach().to(_DT).abs().reshape(-1)


def factor_view(cell, trace: Trace) -> dict | None:
    """The histogram of the memory 1/(1 - |a_t|) of a diagonal cell's factors (None for the other kinds).

    {"values", "edges" (log10 steps, _BINS + 1), "counts", "count", "outside" (memory > 10^FACTOR_DECADES or
    |a| >= 1, in the last bin), "max_factor", "median_memory", "per_step" (False for lru: one factor per unit)}
    """
    if cell.kind not in DIAGONAL:
        return None
    a = _diagonal_factors(cell, trace)
    with torch.no_grad():
        memory = torch.where(a < 1, 1.0 / (1.0 - a.clamp(max=1.0)), torch.full_like(a, math.inf))
        log_m = torch.log10(memory)
    edges = torch.linspace(0.0, FACTOR_DECADES, _BINS + 1, dtype=_DT)
    counts = torch.histc(log_m.clamp(0.0, FACTOR_DECADES), bins=_BINS, min=0.0, max=FACTOR_DECADES)
    what = {"lru": "|lambda_j| (one per unit, every step)", "mingru": "1 - z_t (update gate)",
            "minlstm": "f_t / (f_t + i_t)", "mamba": "exp(Delta_t A) (per state entry)"}[cell.kind]
    return {"values": what, "edges": edges, "counts": counts.to(torch.int64), "count": a.numel(),
            "outside": int((log_m > FACTOR_DECADES).sum()), "max_factor": float(a.max()),
            "median_memory": float(memory.median()), "per_step": cell.kind != "lru"}


MEMORY_CASES = ("plain", "normalised", "exponential")
MEMORY_BAR_SE = 2.0  # error bars: +- 2 standard errors (as memory.plot_memory)
MEMORY_GRID = 60
MEMORY_DEFAULTS = {"lambdas": "0.5,0.8,0.9,0.95,0.98,0.99,0.995,0.998,0.999", "rho": 0.0, "sequences": 2000,
                   "seed": 0}  # what /api/memory and the page use: about 1 s


def parse_lambdas(text: str, limits) -> tuple[float, ...]:
    """'0.5,0.9,0.99' -> (0.5, 0.9, 0.99): numbers in limits.memory_lambda, at most limits.memory_lambdas of them."""
    lo, hi = limits.memory_lambda
    expect = f"lambdas: expected 1 to {limits.memory_lambdas} comma-separated numbers in [{lo:g}, {hi:g}]"
    parts = [p.strip() for p in str(text).split(",")]
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        raise InputError(f"{expect}, got {text!r}") from None
    if not 1 <= len(values) <= limits.memory_lambdas or not all(math.isfinite(v) and lo <= v <= hi for v in values):
        raise InputError(f"{expect}, got {text!r}")
    return values


def check_memory_budget(lambdas: tuple[float, ...], sequences: int, limits) -> None:
    """Refuse /api/memory's work before it runs: sequences in limits.memory_sequences, and sequences x steps
    <= limits.memory_budget, the steps of each distinct lambda counted as memory._steps(lambda, 10): at least those
    the library runs at its default burn-in of 8 / (1 - lambda) steps; memory O(sequences) per case."""
    lo, hi = limits.memory_sequences
    if isinstance(sequences, bool) or not isinstance(sequences, int) or not lo <= sequences <= hi:
        raise InputError(f"sequences: expected an integer in [{lo}, {hi}], got {sequences!r}")
    work = sequences * sum(_memory._steps(v, 10.0) for v in sorted(set(lambdas)))
    if work > limits.memory_budget:
        raise InputError(f"sequences: expected sequences x steps <= {limits.memory_budget:.3g} (a few seconds; "
                         f"1/(1 - lambda) sets the steps), got {sequences} x {work // sequences} = {work:.3g}")


def memory_view(lambdas: tuple[float, ...], rho: float, sequences: int, seed: int, limits) -> dict:
    """memory.memory_sensitivity(lambdas, rho=rho, sequences=sequences, seed=seed, cases=MEMORY_CASES).to_dict()
    with each row's "memory" 1/(1 - lambda) and error bars "h2_bar", "sens_bar" (MEMORY_BAR_SE standard errors),
    and "curves": [{"case", "param", "lam", "memory", "h2", "sens"}] the closed forms on a grid (the module
    docstring). InputError for values out of limits or more than limits.memory_budget sequences x steps."""
    lo, hi = limits.memory_rho
    if isinstance(rho, bool) or not isinstance(rho, (int, float)) or not math.isfinite(rho) or not lo <= rho <= hi:
        raise InputError(f"rho: expected a number in [{lo:g}, {hi:g}], got {rho!r}")
    check_memory_budget(lambdas, sequences, limits)
    lams = sorted(set(lambdas))
    m = _memory.memory_sensitivity(tuple(lams), rho=float(rho), sequences=sequences, seed=seed, cases=MEMORY_CASES)
    d = m.to_dict()
    for row in d["rows"]:
        row.update(memory=1.0 / (1.0 - row["lam"]), h2_bar=MEMORY_BAR_SE * row["h2_se"],
                   sens_bar=MEMORY_BAR_SE * row["sens_se"])
    mem = torch.logspace(math.log10(1 / (1 - lams[0]) / 1.25), math.log10(1 / (1 - lams[-1]) * 1.25), MEMORY_GRID,
                         dtype=_DT)
    grid = [float(v) for v in 1 - 1 / mem if v > 0]
    curves = []
    for case, param in m.series():
        closed = [_memory.closed_form(_memory.coefficients(case, param, v, m.theta), m.rho) for v in grid]
        curves.append({"case": case, "param": param, "lam": grid, "memory": [1 / (1 - v) for v in grid],
                       "h2": [c[0] for c in closed], "sens": [c[1] for c in closed]})
    d.update(curves=curves, bar_se=MEMORY_BAR_SE)
    return jsonable(d)
