"""Static figures (matplotlib, Agg): the gradient-flow profile against the Pascanu bound.

    plot_profile(p, "profile.png")    log10 ||ds_t/ds_k||_2, ||.||_F and ||dL/ds_k|| against k,
                                      with the bound (gamma sigma_max)^(t-k)
    plot_overview({...}, "all.png")   several profiles against the distance t - k, one axis
    plot_spec(spec, "claim.png")      a results.FigureSpec (a figure as data: named series)
    plot_jacobian_profile(jp)         a flow.JacobianProfile: log10 ||ds_t/ds_k||_2 and _F against k
    plot_lyapunov(ly)                 a lyapunov.LyapunovSpectrum: lambda_i against i, lambda_1 +- 2 stderr
    plot_layer_step(layer, k)         one layer of a diagnosis against k, with a marker at step k

The y axis carries log10 of the norms (a log axis written out): in the exploding regime the norms
themselves overflow float64 long before their logs do, so the logs are what is plotted. A norm that
is exactly 0 (log10 = -inf, e.g. dead ReLUs) leaves a gap in its line (NaN in the plotted data).

Every function builds a matplotlib Figure directly (no pyplot, no global state), saves it by the
file's extension (.png, .svg or .pdf) when given a path, and returns it; the plotted lines carry
gids ("spectral", "frobenius", "adjoint", "bound", "eigen", "sequence") so tests can read them back.

Example:
    >>> import tempfile, torch
    >>> from rnnscope.core.build import random_cell
    >>> from rnnscope.gradients.profile import profile
    >>> x = torch.randn(30, 1, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    >>> p = profile(random_cell("elman", "tanh", hidden=4, seed=0), x)
    >>> fig = plot_profile(p, tempfile.mkdtemp() + "/profile.png")
    >>> [l.get_gid() for l in fig.axes[0].lines]
    ['spectral', 'frobenius', 'adjoint', 'bound', 'horizon']
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Mapping

import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .errors import InputError

__all__ = ["PLOT_EXTENSIONS", "check_plot_path", "new_figure", "save_figure", "plot_profile", "plot_overview", "plot_spec",
           "plot_diagnosis", "plot_monitor", "plot_adjoint_profile", "plot_jacobian_profile", "plot_lyapunov",
           "plot_layer_step"]

PLOT_EXTENSIONS = (".png", ".svg", ".pdf")
_MAX_SEQUENCE_LINES = 16  # faint per-sequence lines drawn for B > 1 (more would only be noise)


def _finish(fig: Figure, ax, path) -> Figure:
    """The common end of a one-axes figure: a light grid, the legend, saved to path when given."""
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    if path is not None:
        save_figure(fig, path)
    return fig


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
    """Plot a Profile (gradients.profile): log10 norms of ds_t/ds_k and dL/ds_k against k, and the bound.

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
    if profile.log10_bound is not None and profile.gamma is None:  # a modern cell's own guarantee c^(t-k)
        ax.plot(k, _gaps(profile.log10_bound), color="k", lw=1.2, ls="-.", gid="bound",
                label=rf"bound $c^{{t-k}}$ (the cell's guarantee), c = {profile.step_bound:.3g}")
    elif profile.log10_bound is not None:
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
    return _finish(fig, ax, path)


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
    return _finish(fig, ax, path)


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


def _rows_label(d) -> str:
    return f"L{d.layer} {'fwd' if d.direction == 'forward' else 'rev'}"


def plot_diagnosis(diag, path=None) -> Figure:
    """One figure for all layers of a diagnose.Diagnosis.

    Top: a heatmap over (layer/direction, k) of the batch-mean log10 ||dL/dh_k|| (gid "heatmap").
    Bottom left: the profiles against k, one colour per (layer, direction): log10 ||dL/dh_k|| (solid, gid
    "adjoint_h:<row>"), ||dL/dc_k|| (dotted, "adjoint_c:<row>", LSTM), ||ds_T/ds_k||_2 (dashed, "spectral:<row>").
    Bottom middle (a credit profile): what the verdict reads, G(d) - G(0) against the distance d (log10 of the
    credit from the loss d steps ahead relative to the immediate one; gid "credit:<row>"), the line 10^-3 and
    each layer's horizon.
    Bottom right (LSTM / GRU): carry_share(k) (gid "carry:<row>"), the part of dL/ds_k that takes the carry path.
    """
    if path is not None:
        check_plot_path(path)
    layers = list(diag.layers)
    gated = [d for d in layers if d.carry_share is not None]
    credit = [d for d in layers if d.log10_credit is not None and d.log10_credit.shape[0] > 1]
    widths = [2] + [1.3] * bool(credit) + [1] * bool(gated)
    fig = new_figure((11 + 3.5 * bool(credit), 7.2))
    gs = fig.add_gridspec(2, len(widths), height_ratios=[1, 1.5], width_ratios=widths)
    ax_h = fig.add_subplot(gs[0, :])
    T = max(d.log10_adjoint_h.shape[0] for d in layers)  # a whole model's modules may read sequences of their own
    data = torch.stack([torch.nn.functional.pad(d.log10_adjoint_h.to(torch.float64), (0, T - d.log10_adjoint_h.shape[0]),
                                                value=math.nan) for d in layers])  # (rows, T), NaN past a row's own T
    shown = torch.where(torch.isfinite(data), data, torch.full_like(data, math.nan))
    im = ax_h.imshow(shown.numpy(), aspect="auto", interpolation="nearest", cmap="viridis",
                     extent=(0.5, T + 0.5, len(layers) - 0.5, -0.5), gid="heatmap")
    ax_h.set_yticks(range(len(layers)), [_rows_label(d) for d in layers])
    ax_h.set_xlabel("k (each direction's own step)")
    fig.colorbar(im, ax=ax_h, label=r"log10 $\|\partial L/\partial h_k\|$", pad=0.01)
    ax_h.set_title(f"{diag.model}: {diag.num_layers} layer(s) x {diag.num_directions} direction(s), T = {diag.T}, "
                   f"B = {diag.batch}; loss = {diag.loss:.4g} ({diag.loss_kind})", fontsize=9)
    ax = fig.add_subplot(gs[1, 0])
    lines = []
    for i, d in enumerate(layers):
        color, row = f"C{i % 10}", _rows_label(d)
        ys = _gaps(d.log10_adjoint_h)
        lines.append(ys)
        k = list(range(1, len(ys) + 1))  # the row's own steps
        ax.plot(k, ys, color=color, lw=1.8, gid=f"adjoint_h:{row}", label=f"{row} " + r"$\|\partial L/\partial h_k\|$")
        if d.log10_adjoint_c is not None:
            ys = _gaps(d.log10_adjoint_c)
            lines.append(ys)
            ax.plot(k, ys, color=color, lw=1.2, ls=":", gid=f"adjoint_c:{row}", label=f"{row} " + r"$\|\partial L/\partial c_k\|$")
        if d.log10_spectral is not None:
            ys = _gaps(d.log10_spectral)
            lines.append(ys)
            ax.plot(k, ys, color=color, lw=1.2, ls="--", gid=f"spectral:{row}",
                    label=f"{row} " + r"$\|\partial s_T/\partial s_k\|_2$")
    _clip_ylim(ax, lines)
    ax.set_xlabel("k")
    ax.set_ylabel("log10 of the norm (batch mean)")
    ax.set_title("Gradient flow per layer: adjoints (solid, dotted) and Jacobian products (dashed)", fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="best", ncol=2 if len(layers) > 2 else 1)
    if credit:
        ax_g = fig.add_subplot(gs[1, 1])
        for i, d in enumerate(layers):
            g = d.log10_credit
            if g is None or g.shape[0] < 2:
                continue
            rel = g.to(torch.float64) - g[0]
            ax_g.plot(range(g.shape[0]), _gaps(rel), color=f"C{i % 10}", lw=1.5, gid=f"credit:{_rows_label(d)}",
                      label=_rows_label(d) + (f" (horizon {d.horizon})" if d.horizon_kind == "fallen" else ""))
            if d.horizon_kind == "fallen" and d.rate_source == "credit":
                ax_g.axvline(d.horizon, color=f"C{i % 10}", lw=0.8, ls=":")
        ax_g.axhline(-3.0, color="0.3", lw=1.0, ls="--", label="10^-3 of the immediate credit")
        ax_g.set_xlabel("d (steps between the loss term and the state)")
        ax_g.set_ylabel("log10 G(d) / G(0)")
        case = credit[0].credit_case
        ax_g.set_title("Credit from the loss d steps ahead\n" + (r"$\|\partial E_t/\partial h_{t-d}\|$ (per-step loss)"
                       if case == "per-step" else r"$\|\partial L/\partial h_{t-d}\|$ (last-step loss)"), fontsize=9)
        ax_g.grid(True, alpha=0.3)
        ax_g.legend(fontsize=7, loc="best")
    if gated:
        ax_c = fig.add_subplot(gs[1, len(widths) - 1])
        for i, d in enumerate(layers):
            if d.carry_share is not None:
                ax_c.plot(range(1, d.carry_share.shape[0] + 1), _gaps(d.carry_share), color=f"C{i % 10}", lw=1.5,
                          gid=f"carry:{_rows_label(d)}", label=_rows_label(d))
        ax_c.set_ylim(-0.03, 1.03)
        ax_c.set_xlabel("k")
        ax_c.set_ylabel("carry share")
        ax_c.set_title("Share of dL/ds_k through the carry path\n(LSTM: cell state via f; GRU: z * h)", fontsize=9)
        ax_c.grid(True, alpha=0.3)
        ax_c.legend(fontsize=7, loc="best")
    if path is not None:
        save_figure(fig, path)
    return fig


def plot_monitor(history, path=None, norms: tuple | None = None) -> Figure:
    """The records of a GradientFlowMonitor: per (module, layer, direction) one axis of log10 ||dL/dh_k|| against
    k, one line per record coloured by training step (gid "record:<row>:<step>"); and ||dL/dtheta|| against the
    training step on a log axis: the records' (gid "gradient_norm", where diagnose computed it) and, with
    norms = (steps, values), the monitor's history read from p.grad at every step (gid "gradient_norm_step")."""
    from matplotlib import cm, colormaps
    from matplotlib.colors import Normalize

    if path is not None:
        check_plot_path(path)
    first = history[0].diagnosis
    rows = [(d.layer, d.direction, d.module) for d in first.layers]
    n = len(rows)
    fig = new_figure((4.2 * (n + 1), 4.0))
    steps = [r.step for r in history]
    norm = Normalize(vmin=min(steps), vmax=max(max(steps), min(steps) + 1))
    cmap = colormaps["viridis"]
    for i, (layer, direction, module) in enumerate(rows):
        ax = fig.add_subplot(1, n + 1, i + 1)
        row = _rows_label(first.layers[i])
        for r in history:
            d = r.diagnosis.layer(layer, direction, module)
            y = d.log10_adjoint_h
            ax.plot(range(1, y.shape[0] + 1), _gaps(y), color=cmap(norm(r.step)), lw=1.2, gid=f"record:{row}:{r.step}")
        ax.set_title(f"{row}: " + r"log10 $\|\partial L/\partial h_k\|$", fontsize=9)
        ax.set_xlabel("k")
        ax.grid(True, alpha=0.3)
    fig.colorbar(cm.ScalarMappable(norm=norm, cmap=cmap), ax=fig.axes, label="training step", pad=0.01)
    ax = fig.add_subplot(1, n + 1, n + 1)
    gn = [math.nan if r.diagnosis.gradient_norm is None else r.diagnosis.gradient_norm for r in history]
    if norms is not None and len(norms[0]):
        ax.plot(list(norms[0]), list(norms[1]), lw=0.8, color="0.5", gid="gradient_norm_step", label="every step (p.grad)")
        gn += [v for v in norms[1] if math.isfinite(v)]
    if not all(math.isnan(v) for v in gn[:len(steps)]):
        ax.plot(steps, gn[:len(steps)], marker="o", ms=3, gid="gradient_norm", label="at the records")
    if any(v > 0 for v in gn if not math.isnan(v)):
        ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_title(r"$\|\partial L/\partial\theta\|$ (every parameter)", fontsize=9)
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    if path is not None:
        save_figure(fig, path)
    return fig


def plot_adjoint_profile(profile, path=None, *, title: str = "") -> Figure:
    """One adjoint profile, log10 ||dL/dh_k|| against k = 0..T (a list; None or non-finite values are gaps):
    a training run's gradient-flow snapshot (the lab's TensorBoard figure). The line's gid is "adjoint".

    Example:
        >>> fig = plot_adjoint_profile([-3.0, -2.0, None, 0.0], title="step 100")
        >>> [l.get_gid() for l in fig.axes[0].lines], fig.axes[0].get_title()
        (['adjoint'], 'step 100')
    """
    if path is not None:
        check_plot_path(path)
    fig = new_figure((5, 3))
    ax = fig.add_subplot()
    ys = [math.nan if v is None else float(v) for v in profile]
    ax.plot(range(len(ys)), [v if math.isfinite(v) else math.nan for v in ys], gid="adjoint")
    ax.set_xlabel("k")
    ax.set_ylabel("log10 ||dL/dh_k||")
    if title:
        ax.set_title(title)
    ax.grid(True, alpha=0.3)
    if path is not None:
        save_figure(fig, path)
    return fig


def plot_jacobian_profile(jp, path=None) -> Figure:
    """A flow.JacobianProfile: log10 ||ds_t/ds_k||_2 (gid "spectral", when computed) and ||ds_t/ds_k||_F (gid
    "frobenius"), batch means, against k = 1..t; each sequence's spectral line faint for B > 1 (gid "sequence").

    Example:
        >>> from rnnscope.gradients.flow import JacobianProfile
        >>> jp = JacobianProfile(torch.tensor([[-2.0, -1.0, 0.0]]), torch.tensor([[-1.9, -0.8, 0.5]]), 3, 0, 0, 0)
        >>> [l.get_gid() for l in plot_jacobian_profile(jp).axes[0].lines]
        ['spectral', 'frobenius']
    """
    if path is not None:
        check_plot_path(path)
    fig = new_figure((7.0, 4.2))
    ax = fig.add_subplot()
    B, t = jp.log10_frobenius.shape
    k = list(range(1, t + 1))
    spectral = not bool(torch.isnan(jp.log10_spectral).all())  # NaN throughout: computed with spectral=False
    shown = []
    if spectral and B > 1:
        for b in range(min(B, _MAX_SEQUENCE_LINES)):
            ax.plot(k, _gaps(jp.log10_spectral[b]), color="C0", alpha=0.18, lw=0.8, gid="sequence",
                    label="per sequence, spectral" if b == 0 else None)
    lines = [("frobenius", jp.log10_frobenius, dict(color="C1", lw=1.4, ls="--"), r"$\|\partial s_t/\partial s_k\|_F$")]
    if spectral:
        lines.insert(0, ("spectral", jp.log10_spectral, dict(color="C0", lw=2.0), r"$\|\partial s_t/\partial s_k\|_2$"))
    for gid, y, style, label in lines:
        ys = _gaps(y.to(torch.float64).mean(0))
        shown.append(ys)
        ax.plot(k, ys, gid=gid, label=label + (" (batch mean)" if B > 1 else ""), **style)
    _clip_ylim(ax, shown)
    ax.set_xlabel(f"k (step the product reaches back to; t = {jp.t})")
    ax.set_ylabel("log10 of the norm")
    ax.set_title(f"Jacobian products ds_t/ds_k, t = {jp.t}, B = {B}; {jp.power_half_steps} power half-steps, "
                 f"{jp.svd_fallbacks} SVD fallbacks", fontsize=9)
    return _finish(fig, ax, path)


def plot_lyapunov(ly, path=None) -> Figure:
    """A lyapunov.LyapunovSpectrum: the exponents lambda_i (natural log per step, batch mean) against i = 1..k (gid
    "exponents"), each sequence's faint for B > 1 (gid "sequence"), the line 0 (gid "zero": above it directions
    grow, below they shrink) and lambda_1 +- 2 stderr (gid "max_stderr", when the stderr is finite).

    Example:
        >>> from rnnscope.gradients.lyapunov import LyapunovSpectrum
        >>> ly = LyapunovSpectrum(torch.tensor([0.1, -0.5]), torch.tensor([[0.1, -0.5]]), 0.1, 2.2, 0.01, 90, 10,
        ...                       1, 2, 1, 2, "elman")
        >>> [l.get_gid() for l in plot_lyapunov(ly).axes[0].lines][:2]
        ['exponents', 'zero']
    """
    if path is not None:
        check_plot_path(path)
    fig = new_figure((6.5, 4.0))
    ax = fig.add_subplot()
    i = list(range(1, ly.k + 1))
    ax.plot(i, _gaps(ly.exponents), color="C0", marker="o", ms=4, lw=1.5, gid="exponents",
            label=r"$\lambda_i$" + (" (batch mean)" if ly.batch > 1 else ""))
    ax.axhline(0.0, color="0.3", lw=0.9, ls="--", gid="zero")
    if ly.batch > 1:
        for b in range(min(ly.batch, _MAX_SEQUENCE_LINES)):
            ax.plot(i, _gaps(ly.per_sequence[b]), color="C0", alpha=0.2, lw=0.8, gid="sequence",
                    label="per sequence" if b == 0 else None)
    if math.isfinite(ly.stderr) and math.isfinite(ly.max_exponent):
        ax.errorbar([1], [ly.max_exponent], yerr=[2 * ly.stderr], color="C3", capsize=4, ls="none", gid="max_stderr",
                    label=rf"$\lambda_1$ $\pm$ 2 stderr ({2 * ly.stderr:.2g})")
    ax.set_xlabel("i (exponents in descending order)")
    ax.set_ylabel(r"$\lambda_i$ (natural log per step)")
    ax.set_title(f"Lyapunov spectrum of {ly.cell}, S = {ly.state_size}: lambda_1 = {ly.max_exponent:.4g}, "
                 f"D_KY = {ly.kaplan_yorke_dimension:.3g}\n{ly.steps} steps after a warm-up of {ly.warmup}, QR every "
                 f"{ly.every}, B = {ly.batch}", fontsize=9)
    return _finish(fig, ax, path)


def plot_layer_step(layer, k: int | None = None, path=None) -> Figure:
    """One (layer, direction) of a diagnosis (interop LayerDiagnosis) against k = 1..T, batch means: log10
    ||dL/dh_k|| (gid "adjoint_h"), ||dL/dc_k|| (dotted, "adjoint_c", LSTM), ||ds_T/ds_k||_2 (dashed, "spectral", when
    computed); with k, a vertical line (gid "step") and a marker on log10 ||dL/dh_k|| at that step (gid "marker").
    """
    if path is not None:
        check_plot_path(path)
    fig = new_figure((6.5, 3.6))
    ax = fig.add_subplot()
    y = layer.log10_adjoint_h.to(torch.float64)
    T = y.shape[0]
    steps = list(range(1, T + 1))
    shown = [_gaps(y)]
    ax.plot(steps, shown[0], color="C0", lw=1.8, gid="adjoint_h", label=r"$\|\partial L/\partial h_k\|$")
    for gid, v, color, ls, label in (
        ("adjoint_c", layer.log10_adjoint_c, "C1", ":", r"$\|\partial L/\partial c_k\|$"),
        ("spectral", layer.log10_spectral, "C2", "--", r"$\|\partial s_T/\partial s_k\|_2$"),
    ):
        if v is not None:
            shown.append(_gaps(v))
            ax.plot(steps, shown[-1], color=color, ls=ls, lw=1.2, gid=gid, label=label)
    _clip_ylim(ax, shown)
    if k is not None:
        if not 1 <= k <= T:
            raise InputError(f"step: expected an integer in [1, {T}], got {k!r}")
        ax.axvline(k, color="0.4", lw=0.8, ls="--", gid="step")
        v = float(y[k - 1])
        ax.plot([k], [v if math.isfinite(v) else math.nan], "o", color="C3", ms=7, gid="marker",
                label=f"k = {k}: {v:.4g}")
    ax.set_xlabel("k (the direction's own step)")
    ax.set_ylabel("log10 of the norm (batch mean)")
    ax.set_title(textwrap.fill(f"{layer.name} ({layer.cell}, state {layer.state}): {layer.verdict}", 100), fontsize=8)
    return _finish(fig, ax, path)
