"""Static figures (matplotlib, Agg): the gradient-flow profile against the Pascanu bound.

    plot_profile(p, "profile.png")    log10 ||ds_t/ds_k||_2, ||.||_F and ||dL/ds_k|| against k,
                                      with the bound (gamma sigma_max)^(t-k)
    plot_overview({...}, "all.png")   several profiles against the distance t - k, one axis
    plot_spec(spec, "claim.png")      a results.FigureSpec (a figure as data: named series)

The y axis carries log10 of the norms (a log axis written out): in the exploding regime the norms
themselves overflow float64 long before their logs do, so the logs are what is plotted. A norm that
is exactly 0 (log10 = -inf, e.g. dead ReLUs) leaves a gap in its line (NaN in the plotted data).

Every function builds a matplotlib Figure directly (no pyplot, no global state), saves it by the
file's extension (.png, .svg or .pdf) when given a path, and returns it; the plotted lines carry
gids ("spectral", "frobenius", "adjoint", "bound", "eigen", "sequence") so tests can read them back.

Example:
    >>> fig = plot_profile(profile, "profile.png")     # doctest: +SKIP
    >>> [l.get_gid() for l in fig.axes[0].lines]       # doctest: +SKIP
    ['spectral', 'frobenius', 'adjoint', 'bound']
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping

import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .errors import InputError

__all__ = ["PLOT_EXTENSIONS", "check_plot_path", "new_figure", "save_figure", "plot_profile", "plot_overview", "plot_spec"]

PLOT_EXTENSIONS = (".png", ".svg", ".pdf")
_MAX_SEQUENCE_LINES = 16  # faint per-sequence lines drawn for B > 1 (more would only be noise)


def check_plot_path(path, what: str = "plot") -> Path:
    """The path of a figure to write: its extension must be .png, .svg or .pdf, its folder must exist."""
    p = Path(path)
    if p.suffix.lower() not in PLOT_EXTENSIONS:
        raise InputError(f"{what}: expected a file name ending in {', '.join(PLOT_EXTENSIONS)}, "
                         f"got {str(p)!r}")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise InputError(f"{what}: expected an existing folder for {str(p)!r}, got {str(parent)!r} (no such folder)")
    if p.is_dir():
        raise InputError(f"{what}: expected a file name, got {str(p)!r} (a folder)")
    return p


def _gaps(y: torch.Tensor) -> list[float]:
    """log10 values as floats, with -inf/+inf/NaN as NaN (a gap in the line)."""
    y = y.detach().to(torch.float64)
    return torch.where(torch.isfinite(y), y, torch.full_like(y, math.nan)).tolist()


def new_figure(size=(7.5, 4.8)) -> Figure:
    """A matplotlib Figure on the Agg canvas, constrained layout (no pyplot, no global state)."""
    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path) -> None:
    """Write fig to path by its extension (.png, .svg or .pdf; dpi 120); an InputError if it cannot."""
    p = check_plot_path(path)
    try:
        fig.savefig(p, format=p.suffix.lower()[1:], dpi=120)
    except OSError as e:
        raise InputError(f"plot: expected a writable file, got {str(p)!r} ({type(e).__name__}: {e})") from None


def _title(p) -> str:
    what = p.cell if p.activation is None else f"{p.cell} ({p.activation})"
    return f"{what}, state {p.state}, S = {p.state_size}, B = {p.batch}: {p.verdict}"


def _facts(p) -> str:
    parts = []
    if p.gamma is not None:
        parts.append(f"gamma = {p.gamma:.4g}")
    if p.sigma_max is not None:
        parts.append(f"sigma_max = {p.sigma_max:.4g}")
    if p.spectral_radius is not None:
        parts.append(f"rho = {p.spectral_radius:.4g}")
    if p.rate_per_step is not None:
        parts.append(f"rate = {p.rate_per_step:+.4f} / step")
    if p.horizon is not None:
        parts.append(f"horizon = {p.horizon} ({p.horizon_kind})")
    return ",  ".join(parts)


def _clip_ylim(ax, data: list[list[float]]) -> None:
    """Keep the measured curves readable when the bound runs off by many more decades."""
    finite = [v for ys in data for v in ys if not math.isnan(v)]
    if not finite:
        return
    lo, hi = min(finite), max(finite)
    span = max(hi - lo, 1.0)
    cur_lo, cur_hi = ax.get_ylim()
    if cur_hi - cur_lo > 4 * span:  # the bound dominates: show the data, let the bound leave the frame
        ax.set_ylim(max(cur_lo, lo - span), min(cur_hi, hi + span))


def plot_profile(profile, path=None, *, ax=None) -> Figure:
    """Plot a Profile (analysis.profile): log10 norms of ds_t/ds_k and dL/ds_k against k, and the bound.

    Lines (x = k = 1..t, y = log10 values, batch means for B > 1):
        spectral   log10 ||ds_t/ds_k||_2          frobenius  log10 ||ds_t/ds_k||_F
        adjoint    log10 ||dL/ds_k||_2            bound      (t - k) log10(gamma sigma_max)   (vanilla cells)
        eigen      (t - k) log10(gamma rho)       only when rho < 1/gamma <= sigma_max (the eigenvalue test's promise)
        sequence   log10 ||ds_t/ds_k||_2 of each sequence (faint, B > 1, at most 16)
    Writes the figure to path (.png/.svg/.pdf) if given; returns the Figure.
    """
    if path is not None:
        check_plot_path(path)
    fig = ax.figure if ax is not None else new_figure()
    if ax is None:
        ax = fig.add_subplot()
    t = profile.t
    k = list(range(1, t + 1))
    shown = []
    if profile.batch > 1:
        for b in range(min(profile.batch, _MAX_SEQUENCE_LINES)):
            ys = _gaps(profile.per_sequence_spectral[b])
            shown.append(ys)
            ax.plot(k, ys, color="C0", alpha=0.18, lw=0.8, gid="sequence",
                    label="per sequence, spectral" if b == 0 else None)
    for gid, y, style, label in (
        ("spectral", profile.log10_spectral, dict(color="C0", lw=2.0), r"$\|\partial s_t/\partial s_k\|_2$"),
        ("frobenius", profile.log10_frobenius, dict(color="C1", lw=1.4, ls="--"), r"$\|\partial s_t/\partial s_k\|_F$"),
        ("adjoint", profile.log10_adjoint, dict(color="C2", lw=1.4, ls=":"),
         r"$\|\partial L/\partial s_k\|_2$, $L = \sum h_t$"),
    ):
        ys = _gaps(y)
        shown.append(ys)
        ax.plot(k, ys, gid=gid, label=label, **style)
    if profile.log10_bound is not None:
        gs = profile.gamma * profile.sigma_max
        ax.plot(k, _gaps(profile.log10_bound), color="k", lw=1.2, ls="-.", gid="bound",
                label=rf"bound $(\gamma\,\sigma_{{max}})^{{t-k}}$, $\gamma\sigma_{{max}}$ = {gs:.3g}")
        rho = profile.spectral_radius
        if rho is not None and rho * profile.gamma < 1.0 <= gs:
            gr = profile.gamma * rho
            eig = [(t - kk) * math.log10(gr) if gr > 0 else math.nan for kk in k]
            ax.plot(k, eig, color="C3", lw=1.2, ls=(0, (1, 1.5)), gid="eigen",
                    label=rf"eigenvalue 'promise' $(\gamma\rho)^{{t-k}}$, $\gamma\rho$ = {gr:.3g}")
    if profile.horizon is not None:
        ax.axvline(t - profile.horizon, color="0.5", lw=0.8, ls="--", gid="horizon",
                   label=f"horizon: 10^3 {profile.horizon_kind} at t - k = {profile.horizon}")
    _clip_ylim(ax, shown)
    ax.set_xlabel(f"k (step the gradient flows back to; t = {t})")
    ax.set_ylabel("log10 of the norm")
    ax.set_title(_title(profile) + "\n" + _facts(profile), fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    if path is not None:
        save_figure(fig, path)
    return fig


def plot_overview(profiles: Mapping[str, object], path=None, *, title: str | None = None) -> Figure:
    """Several profiles on one axis: log10 ||ds_t/ds_k||_2 (batch mean) against the distance d = t - k.

    Each profile's bound (gamma sigma_max)^d is drawn thin and dashed in the same colour (gid
    "bound:<label>"); the measured line has gid "spectral:<label>". Returns the Figure.
    """
    if path is not None:
        check_plot_path(path)
    fig = new_figure((8.5, 5.2))
    ax = fig.add_subplot()
    shown = []
    for i, (label, p) in enumerate(profiles.items()):
        color = f"C{i % 10}"
        d = list(range(p.t - 1, -1, -1))  # element k-1 is distance t - k
        ys = _gaps(p.log10_spectral)
        shown.append(ys)
        ax.plot(d, ys, color=color, lw=1.8, gid=f"spectral:{label}", label=f"{label}: {p.verdict}")
        if p.log10_bound is not None:
            ax.plot(d, _gaps(p.log10_bound), color=color, lw=0.9, ls="--", alpha=0.7, gid=f"bound:{label}")
    _clip_ylim(ax, shown)
    ax.set_xlabel("distance t - k (steps back in time)")
    ax.set_ylabel(r"log10 $\|\partial s_t/\partial s_k\|_2$ (batch mean)")
    ax.set_title(title or "Gradient flow: measured (solid) against the bound (gamma sigma_max)^(t-k) (dashed)",
                 fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    if path is not None:
        save_figure(fig, path)
    return fig


_STYLES = {"solid": dict(ls="-", lw=1.8), "dashed": dict(ls="--", lw=1.2), "dotted": dict(ls=":", lw=1.4),
           "dashdot": dict(ls="-.", lw=1.2), "points": dict(ls="none", marker="o", ms=3)}


def plot_spec(spec, path=None) -> Figure:
    """Draw a results.FigureSpec: one line per series (gid = its label), non-finite y as gaps."""
    if path is not None:
        check_plot_path(path)
    fig = new_figure()
    ax = fig.add_subplot()
    for i, s in enumerate(spec.series):
        if s.style not in _STYLES:
            raise InputError(f"series style: expected one of {', '.join(_STYLES)}, got {s.style!r}")
        ys = [float(v) if v is not None and math.isfinite(float(v)) else math.nan for v in s.y]
        ax.plot(list(s.x), ys, color=f"C{i % 10}", gid=s.label, label=s.label, **_STYLES[s.style])
    ax.set_xlabel(spec.xlabel)
    ax.set_ylabel(spec.ylabel)
    ax.set_title(spec.title, fontsize=9)
    ax.grid(True, alpha=0.3)
    if spec.series:
        ax.legend(fontsize=8, loc="best")
    if path is not None:
        save_figure(fig, path)
    return fig
