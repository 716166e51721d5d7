"""Phase diagrams of random vanilla RNNs: measured gradient growth and Lyapunov exponents against mean-field theory.

For each point (sigma_w, sigma_b) of a grid and each seed, one random Elman network

    h_t = phi(a_t),   a_t = W h_{t-1} + b,   W_ij ~ N(0, sigma_w^2 / S),   b_i ~ N(0, sigma_b^2),   no input,

is run from h_0 ~ N(0, 1) for T steps; the first T/2 steps are discarded (the state settles on its
attractor, pre-activation variance ~ q*). On the second half:

    gradient_rate   the least-squares slope of ln ||g^T dh_T/dh_k|| against the distance T - k
                    (k >= T/2), g a fixed random unit vector: the per-step log growth of a gradient
                    flowing back (natural log); mean field predicts (1/2) ln chi_1
    lyapunov_max    the maximal Lyapunov exponent (lyapunov.py, QR, warm-up T/2)
    theory          q*, chi_1, (1/2) ln chi_1, and the critical sigma_w^2 (meanfield.py)

`run_point(config) -> metrics` is the sweep task "phase-point" (sweep.py runs it on a process pool or a
dask cluster and stores each row in SQLite); `phase_table(rows)` averages the seeds of each grid point;
`plot_phase(table, path)` draws the measured gradient rate as a heatmap with its zero crossing (the
measured edge of chaos) and the theoretical critical line chi_1 = 1 over it.

Example:
    >>> m = run_point({"sigma_w": 1.5, "sigma_b": 0.3, "hidden": 64, "length": 200, "seed": 0})
    >>> round(m["chi1"], 3), round(m["q_star"], 3)       # mean field: chi_1 > 1, the chaotic side
    (1.061, 0.961)
    >>> abs(m["q_star_measured"] - m["q_star"]) < 0.1     # the network's own pre-activation variance agrees
    True
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from ..core.cells import ElmanCell
from ..core.budget import check_memory
from ..core.errors import InputError
from ..core.vocab import ACTIVATIONS, check
from ..gradients.flow import jacobian_profile
from ..gradients.lyapunov import lyapunov_spectrum
from .meanfield import critical_sigma_w2, mean_field
from ..core.results import jsonable
from ..core.threads import torch_threads
from ..core.unroll import unroll

__all__ = ["PhaseRow", "check_point", "run_point", "phase_configs", "phase_table", "critical_line", "plot_phase",
           "PHASE_TASK"]

PHASE_TASK = "phase-point"
_LN10 = math.log(10.0)


def _network(sigma_w: float, sigma_b: float, S: int, seed: int, activation: str):
    gen = torch.Generator().manual_seed(int(seed))
    W = sigma_w * torch.randn(S, S, generator=gen, dtype=torch.float64) / math.sqrt(S)  # (S, S) N(0, sigma_w^2/S)
    b = sigma_b * torch.randn(S, generator=gen, dtype=torch.float64)  # (S,) N(0, sigma_b^2)
    h0 = torch.randn(1, S, generator=gen, dtype=torch.float64)  # (1, S)
    g = torch.randn(S, generator=gen, dtype=torch.float64)
    return ElmanCell(W, torch.zeros(S, 1, dtype=torch.float64), b, activation), h0, g / g.norm()


def check_point(config: dict) -> tuple[float, float, int, int, int, str]:
    """(sigma_w, sigma_b, S, T, seed, activation) of a phase-point config, or an InputError saying which key is
    missing or wrong: sigma_w, sigma_b finite numbers >= 0 (required); hidden S >= 1 (64), length T >= 20 (200),
    seed >= 0 (0), activation one of ACTIVATIONS (tanh); the trace and the profile within the memory budget.
    The CLI runs it on every config of a sweep before anything is dispatched."""
    def number(key):
        if key not in config:
            raise InputError(f"{key}: expected a number in every phase-point config, got none")
        v = config[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise InputError(f"{key}: expected a finite number >= 0, got {v!r}")
        return float(v)

    def integer(key, default, lo):
        v = config.get(key, default)
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            raise InputError(f"{key}: expected an integer >= {lo}, got {v!r}")
        return int(v)

    sw, sb = number("sigma_w"), number("sigma_b")
    S, T, seed = integer("hidden", 64, 1), integer("length", 200, 20), integer("seed", 0, 0)
    act = check("activation", config.get("activation", "tanh"), ACTIVATIONS)
    check_memory(T, 1, S, 1, S, 8)  # the trace, and the profile's working space (core.budget)
    return sw, sb, S, T, seed, act


def run_point(config: dict) -> dict:
    """The sweep task: measure one random network at (sigma_w, sigma_b) and set it beside mean-field theory.

    config keys: sigma_w, sigma_b (standard deviations), hidden (S), length (T >= 20: half of it is discarded),
    seed, activation ("tanh"), checked by check_point. Returns JSON-able metrics: gradient_rate, lyapunov_max,
    lyapunov_stderr, q_star_measured, theory_rate, chi1, q_star, critical_sigma_w2, seconds.
    """
    start = time.perf_counter()
    sw, sb, S, T, seed, act = check_point(config)
    cell, h0, g = _network(sw, sb, S, seed, act)
    with torch_threads(1):
        trace = unroll(cell, torch.zeros(T, 1, 1, dtype=torch.float64), h0)  # autonomous
        half = T // 2
        prof = jacobian_profile(cell, trace, spectral=False, carry=g.reshape(1, 1, S))
        ln_adj = prof.log10_carried[0, 0, half:] * _LN10  # ln ||g^T dh_T/dh_k||, k = half+1..T
        d = torch.arange(T - half - 1, -1, -1, dtype=torch.float64)  # distances T - k
        ok = torch.isfinite(ln_adj)
        if int(ok.sum()) >= 2:
            dc = d[ok] - d[ok].mean()
            rate = float((dc * (ln_adj[ok] - ln_adj[ok].mean())).sum() / (dc * dc).sum())
        else:  # the gradient is exactly 0 after one step (e.g. every unit saturated to rounding)
            rate = -math.inf
        ly = lyapunov_spectrum(cell, trace, k=1, warmup=half, seed=seed)
    mf = mean_field(sw, sb, act)
    return jsonable({"gradient_rate": rate, "lyapunov_max": ly.max_exponent, "lyapunov_stderr": ly.stderr,
            "q_star_measured": float(trace.preacts[half:].pow(2).mean()),
            "theory_rate": mf.predicted_rate_per_step, "chi1": mf.chi1, "q_star": mf.q_star,
            "critical_sigma_w2": mf.critical_sigma_w2, "seconds": time.perf_counter() - start})  # -inf -> null


def phase_configs(sigma_w: list[float], sigma_b: list[float], *, hidden: int, length: int, seeds: int,
                  activation: str = "tanh") -> tuple[dict, dict]:
    """The sweep grid and fixed values of a phase diagram: (grid, fixed) for sweep.SweepSpec."""
    if seeds < 1:
        raise InputError(f"seeds: expected a positive integer, got {seeds}")
    grid = {"sigma_w": [float(v) for v in sigma_w], "sigma_b": [float(v) for v in sigma_b], "seed": list(range(seeds))}
    if any(v <= 0 for v in grid["sigma_w"]):
        raise InputError(f"sigma-w: expected positive values, got {min(grid['sigma_w'])}")
    if any(v < 0 for v in grid["sigma_b"]):
        raise InputError(f"sigma-b: expected values >= 0, got {min(grid['sigma_b'])}")
    return grid, {"hidden": hidden, "length": length, "activation": activation}


@dataclass(frozen=True)
class PhaseRow:
    """One grid point, the seeds averaged (finite values only)."""

    sigma_w: float
    sigma_b: float
    seeds: int
    gradient_rate: float
    lyapunov_max: float
    theory_rate: float
    chi1: float
    critical_sigma_w2: float

    def to_dict(self) -> dict:
        return jsonable(self.__dict__)


def _mean(vals) -> float:
    v = [x for x in vals if x is not None and math.isfinite(x)]
    return float(np.mean(v)) if v else -math.inf if any(x == -math.inf for x in vals if x is not None) else math.nan


def phase_table(rows: list[dict]) -> list[PhaseRow]:
    """Average the seeds of each (sigma_w, sigma_b): rows are store rows ({"config", "metrics", "status"})."""
    groups: dict[tuple[float, float], list[dict]] = {}
    for r in rows:
        if r.get("status") != "done" or not r.get("metrics"):
            continue
        c = r["config"]
        groups.setdefault((float(c["sigma_w"]), float(c["sigma_b"])), []).append(r["metrics"])
    out = []
    for (sw, sb), ms in sorted(groups.items()):
        def col(name):
            return [m.get(name) for m in ms]
        out.append(PhaseRow(sw, sb, len(ms), _mean(col("gradient_rate")), _mean(col("lyapunov_max")),
                            ms[0]["theory_rate"], ms[0]["chi1"], ms[0]["critical_sigma_w2"]))
    return out


def _grid(table: list[PhaseRow], field: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    sw = sorted({r.sigma_w for r in table})
    sb = sorted({r.sigma_b for r in table})
    Z = np.full((len(sb), len(sw)), np.nan)
    for r in table:
        v = getattr(r, field)
        Z[sb.index(r.sigma_b), sw.index(r.sigma_w)] = v if v is not None and math.isfinite(v) else np.nan
    return np.array(sw), np.array(sb), Z


def measured_crossing(table: list[PhaseRow], field: str = "gradient_rate") -> list[tuple[float, float]]:
    """For each sigma_b, the sigma_w where the measured rate crosses 0 (linear interpolation; first crossing)."""
    sw, sb, Z = _grid(table, field)
    out = []
    for j, b in enumerate(sb):
        z = Z[j]
        for i in range(len(sw) - 1):
            if np.isfinite(z[i]) and np.isfinite(z[i + 1]) and z[i] < 0 <= z[i + 1]:
                out.append((float(b), float(sw[i] + (0 - z[i]) * (sw[i + 1] - sw[i]) / (z[i + 1] - z[i]))))
                break
    return out


def critical_line(table: list[PhaseRow], activation: str = "tanh") -> list[dict]:
    """The edge of chaos measured against mean field: for each sigma_b where the measured gradient rate crosses 0,
    that sigma_w, the Lyapunov exponent's crossing at the same sigma_b (None if it has none) and the theory's
    sigma_w = sqrt(critical_sigma_w2(sigma_b^2)), where chi_1 = 1."""
    lyap = dict(measured_crossing(table, "lyapunov_max"))
    return [{"sigma_b": b, "measured_sigma_w": w, "lyapunov_sigma_w": lyap.get(b),
             "theory_sigma_w": math.sqrt(critical_sigma_w2(b * b, activation))} for b, w in measured_crossing(table)]


def plot_phase(table: list[PhaseRow], path=None, *, activation: str = "tanh"):
    """Heatmaps of the measured gradient rate and maximal Lyapunov exponent over (sigma_w, sigma_b), with the
    measured zero crossing (white dots) and the mean-field critical line chi_1 = 1 (black). Returns the Figure."""
    from ..core.plots import check_plot_path, new_figure, save_figure
    if path is not None:
        check_plot_path(path)
    if len({r.sigma_w for r in table}) < 2 or len({r.sigma_b for r in table}) < 2:
        raise InputError("phase plot: expected at least 2 values of sigma_w and of sigma_b, got fewer")
    fig = new_figure((12, 4.8))
    crit_b = np.linspace(min(r.sigma_b for r in table), max(r.sigma_b for r in table), 60)
    crit_w = [math.sqrt(critical_sigma_w2(b * b, activation)) for b in crit_b]
    for i, (field, title) in enumerate((("gradient_rate", "measured gradient rate: slope of ln ||dL/dh_k|| per step"),
                                        ("lyapunov_max", "maximal Lyapunov exponent (QR), per step"))):
        ax = fig.add_subplot(1, 2, i + 1)
        sw, sb, Z = _grid(table, field)
        lim = 0.5  # natural log per step: the colours resolve the region around the edge of chaos
        mesh = ax.pcolormesh(sw, sb, Z, cmap="RdBu_r", vmin=-lim, vmax=lim, shading="nearest")
        fig.colorbar(mesh, ax=ax, label="natural log per step")
        cross = measured_crossing(table, field)
        if cross:
            ax.plot([w for _, w in cross], [b for b, _ in cross], "o", ms=3.5, color="white", mec="k", mew=0.5,
                    label="measured zero crossing", gid="measured")
        ax.plot(crit_w, crit_b, "-", color="k", lw=2, label="mean field: chi_1 = 1", gid="theory")
        ax.set_xlim(sw.min(), sw.max())
        ax.set_ylim(sb.min(), sb.max())
        ax.set_xlabel("sigma_w")
        ax.set_ylabel("sigma_b")
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=8, loc="upper left")
    seeds = max(r.seeds for r in table)
    fig.suptitle(f"Random {activation} RNNs: order (blue, gradients vanish) and chaos (red, they grow); "
                 f"{len(table)} grid points x {seeds} seed(s)", fontsize=10)
    if path is not None:
        save_figure(fig, path)
    return fig
