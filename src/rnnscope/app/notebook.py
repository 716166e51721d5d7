"""Notebook widgets: the explorer and a diagnosis inside Jupyter, with ipywidgets, computed by the library.

    explorer(**initial)                                  the explorer's controls and views (`rnnscope serve`'s page
                                                         in a notebook): an ipywidgets VBox, `.result` the last
                                                         computed views
    diagnose_widget(model, inputs, loss_fn=None, **kw)   one diagnosis (interop.diagnose), its card, and a layer
                                                         dropdown and step slider over log10 ||dL/dh_k||

One source of numbers. The explorer widget turns its controls into an app.explorer.ExplorerConfig (initial: its
fields; ranges from explorer.LIMITS) and computes with explorer.explore(cfg), the function behind the web server's
/api/explore; it draws the profile with core.plots.plot_profile (the figure of `rnnscope profile --plot`, from the
profile view's own numbers: profile_of) and the spectrum view's eigen- and singular values (plot_spectrum_view). A
setting the explorer refuses (an InputError: out of range, over the budget, overflowing) is shown as its one line
and the last views stay. The diagnose widget reads every number from the Diagnosis it computed once.

Figures are PNG bytes in ipywidgets.Image (core.display.figure_png: Agg, no pyplot state), so the widgets need no
browser and a test reads what they show. Sliders recompute when released (continuous_update=False); choosing a
cell adjusts the controls that do not apply to it (activation, scale, init, bias, the modern options) and a preset
sets every control, each recomputing once.

ipywidgets is imported only when a widget is built: `import rnnscope` does not load it, and `rs.notebook` (a lazy
attribute of the package) loads this module without it; calling explorer or diagnose_widget without ipywidgets
raises ImportError "notebook: expected ipywidgets installed (pip install ipywidgets), got none".

Example:
    >>> w = explorer(hidden=8, length=30)
    >>> w.result["profile"]["t"], w.config.hidden
    (30, 8)
    >>> w.controls["length"].value = 40          # as a user releasing the slider: recomputed by explore
    >>> w.result["profile"]["t"], w.result["spectrum"] == ex.explore(w.config)["spectrum"]
    (40, True)
"""

from __future__ import annotations

import dataclasses
import functools
import html
import math
import types
from contextlib import contextmanager

import torch

from ..core.activations import ACTIVATIONS
from ..core.display import figure_png
from ..core.errors import InputError
from ..core.plots import new_figure, plot_layer_step, plot_profile
from ..core.vocab import ANALYSIS_KINDS, MODERN_KINDS
from ..gradients.profile import Profile
from ..interop.diagnose import diagnose
from . import explorer as ex
from . import explorer_modern as modern

__all__ = ["MISSING", "explorer", "diagnose_widget", "profile_of", "plot_spectrum_view"]

MISSING = "notebook: expected ipywidgets installed (pip install ipywidgets), got none"
_GATED = ("lstm", "gru")
_ERROR = '<span style="color:#b00020">{}</span>'


def _ipywidgets():
    """The ipywidgets module, or the one-line ImportError MISSING."""
    try:
        import ipywidgets
    except ImportError:
        raise ImportError(MISSING) from None
    return ipywidgets


def _nan(v):
    return [_nan(x) for x in v] if isinstance(v, list) else (math.nan if v is None else v)


def _tensor(v) -> torch.Tensor | None:
    """JSON numbers (nested lists, null for -inf / NaN) as a float64 tensor with NaN for null (a gap when drawn)."""
    return None if v is None else torch.tensor(_nan(v), dtype=torch.float64)


def profile_of(view: dict) -> Profile:
    """The gradients.profile.Profile of a profile view (explorer.profile_view, `rnnscope profile --json`), to draw
    with core.plots.plot_profile: the same numbers, JSON nulls (-inf, NaN) as NaN."""
    names = {f.name for f in dataclasses.fields(Profile)}
    kw = {k: v for k, v in view.items() if k in names}
    per = view["per_sequence"]
    kw.update(per_sequence_spectral=_tensor(per["log10_spectral"]), per_sequence_frobenius=_tensor(per["log10_frobenius"]),
              per_sequence_adjoint=_tensor(per["log10_adjoint"]), log10_bound=_tensor(view["log10_bound"]),
              warnings=tuple(view["warnings"]))
    return Profile(**kw)


def plot_spectrum_view(view: dict):
    """A spectrum view (explorer.spectrum_view) as a Figure: left, the eigenvalues of each block in the complex plane
    with the unit circle and, for the seeds' cells, the circle |lambda| = 1/gamma (seed 002's test: rho < 1/gamma;
    lru: the ring r_min..r_max); right, the singular values of each block in decreasing order with the line 1/gamma
    (Pascanu's test: sigma_max < 1/gamma). Points carry gids "eigenvalues:<block>", "singular:<block>"."""
    fig = new_figure((9.0, 3.9))
    ax_e, ax_s = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    circle = torch.linspace(0, 2 * math.pi, 241, dtype=torch.float64)
    ax_e.plot(torch.cos(circle), torch.sin(circle), color="0.6", lw=0.8, gid="unit", label="|lambda| = 1")
    inv = view.get("inv_gamma")
    if inv is not None:
        ax_e.plot(inv * torch.cos(circle), inv * torch.sin(circle), color="C3", lw=1.0, ls="--", gid="inv_gamma",
                  label=f"|lambda| = 1/gamma = {inv:.3g}")
        ax_s.axhline(inv, color="C3", lw=1.0, ls="--", gid="inv_gamma_sv", label=f"1/gamma = {inv:.3g}")
    ring = view.get("ring")
    for r in () if ring is None else (ring["r_min"], ring["r_max"]):
        ax_e.plot(r * torch.cos(circle), r * torch.sin(circle), color="C2", lw=0.8, ls=":", gid="ring")
    for i, b in enumerate(view["blocks"]):
        color = f"C{i % 10}"
        ev = b["eigenvalues"]
        ax_e.plot(_nan(ev["re"]), _nan(ev["im"]), "o", ms=3.5, color=color, alpha=0.8, gid=f"eigenvalues:{b['name']}",
                  label=b["name"])
        sv = _nan(b["singular_values"])
        ax_s.plot(range(1, len(sv) + 1), sv, "o-", ms=3, lw=1.0, color=color, gid=f"singular:{b['name']}",
                  label=b["name"])
    ax_e.set_aspect("equal", adjustable="datalim")
    ax_e.set_xlabel("Re lambda")
    ax_e.set_ylabel("Im lambda")
    ax_e.set_title(f"eigenvalues of {view.get('matrix', 'W_hh')}: rho = {_fmt(view.get('spectral_radius'))}", fontsize=9)
    ax_s.set_xlabel("i")
    ax_s.set_ylabel("singular value")
    ax_s.set_title(f"singular values: sigma_max = {_fmt(view.get('sigma_max'))}", fontsize=9)
    fig.suptitle(f"{view.get('cell', '')}: {view.get('verdict', '')}", fontsize=10)
    for ax in (ax_e, ax_s):
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    return fig


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.4g}"


# ----------------------------------------------------------------------------- the explorer widget

class _Explorer:
    """The explorer widget's behaviour; explorer() builds it as an ipywidgets VBox subclass (ExplorerWidget).

    controls  {ExplorerConfig field or "preset": its widget}     config  the ExplorerConfig last computed
    result    explorer.explore(config): the views last computed   error   the last refusal's message, or None
    profile_image, spectrum_image  ipywidgets.Image (PNG)          readout, status  ipywidgets.HTML
    """

    def __init__(self, cfg: ex.ExplorerConfig):
        w = _ipywidgets()
        L = ex.LIMITS
        slider = dict(continuous_update=False, style={"description_width": "110px"},
                      layout=w.Layout(width="350px"))
        drop = dict(style={"description_width": "110px"}, layout=w.Layout(width="350px"))
        opts = modern.option_defaults()
        c = self.controls = {
            "preset": w.Dropdown(options=[("(choose a preset)", "")] + [(p.title, p.name) for p in ex.PRESETS],
                                 value="", description="preset", **drop),
            "cell": w.Dropdown(options=list(ANALYSIS_KINDS), value=cfg.cell, description="cell", **drop),
            "activation": w.Dropdown(options=list(ACTIVATIONS), value=cfg.activation or "tanh",
                                     description="activation", **drop),
            "hidden": w.IntSlider(cfg.hidden, min=L.hidden[0], max=L.hidden[1], description="hidden H", **slider),
            "length": w.IntSlider(cfg.length, min=L.length[0], max=L.length[1], description="length T", **slider),
            "batch": w.IntSlider(cfg.batch, min=L.batch[0], max=L.batch[1], description="batch B", **slider),
            "scale": w.ToggleButtons(options=list(ex.SCALES), value=cfg.scale, description="W_hh by",
                                     style={"description_width": "110px", "button_width": "96px"}),
            "value": w.FloatSlider(cfg.value, min=L.value[0], max=L.value[1], step=0.01, description="value",
                                   **slider),
            "input_scale": w.FloatSlider(cfg.input_scale, min=L.input_scale[0], max=L.input_scale[1], step=0.01,
                                         description="input scale", **slider),
            "init": w.Dropdown(options=list(ex.EXPLORER_INITS), value=cfg.init, description="init", **drop),
            "bias": w.Dropdown(options=list(ex.BIASES), value=cfg.bias, description="bias", **drop),
            "seed": w.BoundedIntText(cfg.seed, min=L.seed[0], max=L.seed[1], description="seed", **drop),
            "r_min": w.FloatSlider(_or(cfg.r_min, opts["lru"]["r_min"]), min=L.r_min[0], max=L.r_min[1], step=0.001,
                                   readout_format=".3f", description="r_min (lru)", **slider),
            "r_max": w.FloatSlider(_or(cfg.r_max, opts["lru"]["r_max"]), min=L.r_max[0], max=L.r_max[1], step=0.001,
                                   readout_format=".3f", description="r_max (lru)", **slider),
            "dt_min": w.FloatLogSlider(_or(cfg.dt_min, opts["mamba"]["dt_min"]), base=10, min=math.log10(L.dt_min[0]),
                                       max=math.log10(L.dt_min[1]), step=0.05, description="dt_min (mamba)", **slider),
            "dt_max": w.FloatLogSlider(_or(cfg.dt_max, opts["mamba"]["dt_max"]), base=10, min=math.log10(L.dt_max[0]),
                                       max=math.log10(L.dt_max[1]), step=0.05, description="dt_max (mamba)", **slider),
        }
        self.profile_image = w.Image(format="png", layout=w.Layout(max_width="100%"))
        self.spectrum_image = w.Image(format="png", layout=w.Layout(max_width="100%"))
        self.readout, self.status = w.HTML(), w.HTML()
        self.config, self.result, self.error = cfg, None, None
        self._holding = False
        left = w.VBox([c[k] for k in ("preset", "cell", "activation", "hidden", "length", "batch", "scale", "value")])
        right = w.VBox([c[k] for k in ("input_scale", "init", "bias", "seed", "r_min", "r_max", "dt_min", "dt_max")])
        super().__init__(children=[w.HBox([left, right]), self.status, self.readout, self.profile_image,
                                   self.spectrum_image])
        self.add_class("rnnscope-explorer")  # a name in the page's DOM (styles, the JupyterLab browser test)
        self._enable()
        for name, control in c.items():
            control.observe(functools.partial(self._changed, name), names="value")
        self.refresh()

    @contextmanager
    def _hold(self):
        """Set several controls with one recompute at the end (by the caller)."""
        was, self._holding = self._holding, True
        try:
            yield
        finally:
            self._holding = was

    def _changed(self, name: str, change) -> None:
        if self._holding:
            return
        if name == "preset":
            if change["new"]:
                self.set(**next(p.config for p in ex.PRESETS if p.name == change["new"]).to_dict())
            return
        with self._hold():
            self.controls["preset"].value = ""  # the setting is no longer the preset's
            if name == "cell":
                self._enable(reset=True)
        self.refresh()

    def _enable(self, reset: bool = False) -> None:
        """Disable the controls that do not apply to the chosen cell; with reset, also set them to what it takes."""
        c, cell = self.controls, self.controls["cell"].value
        fixed = cell in MODERN_KINDS or cell in _GATED  # W_hh by gain (1 for modern cells), zero bias
        c["activation"].disabled = cell in _GATED or (cell in MODERN_KINDS and cell not in modern.ACTIVATED)
        for k in ("scale", "bias"):
            c[k].disabled = fixed
        c["value"].disabled = c["init"].disabled = cell in MODERN_KINDS
        for k, owner in (("r_min", "lru"), ("r_max", "lru"), ("dt_min", "mamba"), ("dt_max", "mamba")):
            c[k].disabled = cell != owner
        if reset and fixed:
            c["scale"].value, c["bias"].value = "gain", "zero"
            if cell in MODERN_KINDS:
                c["value"].value, c["init"].value = 1.0, "normal"
            elif c["init"].value == "saddle":
                c["init"].value = "normal"
        if reset and cell in modern.DEFAULT_ACTIVATION:
            c["activation"].value = modern.DEFAULT_ACTIVATION[cell]

    def current_config(self) -> ex.ExplorerConfig:
        """The ExplorerConfig the controls show (validated: an InputError names the first bad field)."""
        v = {k: c.value for k, c in self.controls.items() if k != "preset"}
        if self.controls["activation"].disabled:
            v["activation"] = None
        for k in modern.OPTION_FIELDS:
            if self.controls[k].disabled:
                v[k] = None
        return ex.ExplorerConfig(**v).validate()

    def set(self, **values) -> None:
        """Set controls by ExplorerConfig field (None for an option: the cell's default), then recompute once."""
        opts = modern.option_defaults()
        with self._hold():
            if "cell" in values:
                self.controls["cell"].value = values["cell"]
                self._enable()
            for k, v in values.items():
                if k == "activation" and v is None:
                    continue
                if k in modern.OPTION_FIELDS and v is None:
                    v = next(d[k] for d in opts.values() if k in d)
                if k not in self.controls:
                    raise InputError(f"{k}: expected one of {', '.join(f for f in self.controls if f != 'preset')}, "
                                     f"got {k!r}")
                self.controls[k].value = v
            self._enable()
        self.refresh()

    def refresh(self) -> None:
        """Recompute the views for the controls' setting (explorer.explore) and redraw; a refusal is shown instead."""
        try:
            cfg = self.current_config()
            result = ex.explore(cfg)
        except InputError as e:
            self.error = str(e)
            self.status.value = _ERROR.format(html.escape(self.error))
            return
        self.config, self.result, self.error = cfg, result, None
        self.profile_image.value = figure_png(plot_profile(profile_of(result["profile"])))
        self.spectrum_image.value = figure_png(plot_spectrum_view(result["spectrum"]))
        p, m = result["profile"], result["measured"]
        self.status.value = f"computed in {result['seconds']:.3g} s by explorer.explore"
        self.readout.value = (f"<b>{html.escape(p['verdict'])}</b> (the weights' promise); measured: "
                              f"<b>{m['regime']}</b>, rate {_fmt(m['rate_per_step'])} decades / step, horizon "
                              f"{_fmt(m['horizon'])}; gamma {_fmt(p['gamma'])}, sigma_max {_fmt(p['sigma_max'])}, "
                              f"rho {_fmt(p['spectral_radius'])}<br><small>{html.escape(p['note'] or '')}</small>")


def _or(v, default):
    return default if v is None else v


# ----------------------------------------------------------------------------- the diagnose widget

class _Diagnose:
    """The diagnose widget's behaviour; diagnose_widget() builds it as an ipywidgets VBox subclass (DiagnoseWidget).

    diagnosis  the Diagnosis (interop.diagnose)        layer, step  the Dropdown (index into diagnosis.layers), the
    card       ipywidgets.HTML: Diagnosis._repr_html_              IntSlider (k = 1..T)
    image      ipywidgets.Image: plots.plot_layer_step             readout  ipywidgets.HTML; values: its numbers
    """

    def __init__(self, diagnosis):
        w = _ipywidgets()
        self.diagnosis = d = diagnosis
        self.card = w.HTML(d._repr_html_())
        self.values: dict = {}
        if not d.layers:  # the analysis was not finite: the card says where (the NaN hunt), nothing to scrub
            self.layer = self.step = self.image = self.readout = None
            super().__init__(children=[self.card])
            return
        self.layer = w.Dropdown(options=[(x.name, i) for i, x in enumerate(d.layers)], value=0, description="layer")
        self.step = w.IntSlider(d.T, min=1, max=d.T, description="step k", continuous_update=True)
        self.image = w.Image(format="png", layout=w.Layout(max_width="100%"))
        self.readout = w.HTML()
        super().__init__(children=[w.HBox([self.layer, self.step]), self.readout, self.image, self.card])
        self.add_class("rnnscope-diagnose")
        self._busy = False
        self.layer.observe(self._show, names="value")
        self.step.observe(self._show, names="value")
        self._show()

    def _show(self, change=None) -> None:
        """Read the chosen (layer, step) from the Diagnosis, redraw the layer's profile with the step marked."""
        if self._busy:
            return
        x = self.diagnosis.layers[self.layer.value]
        T = x.log10_adjoint_h.shape[0]  # the layer's own T (a whole model's modules may read sequences of their own)
        if self.step.max != T:
            self._busy = True
            try:  # a larger max first, so that the value is never clamped on the way
                self.step.max = max(T, self.step.max)
                self.step.value, self.step.max = min(self.step.value, T), T
            finally:
                self._busy = False
        k = self.step.value

        def at(v):  # the batch mean at step k
            return None if v is None else float(v[k - 1])

        self.values = {"layer": x.name, "k": k, "log10_adjoint_h": at(x.log10_adjoint_h),
                       "log10_adjoint_c": at(x.log10_adjoint_c), "log10_spectral": at(x.log10_spectral),
                       "carry_share": at(x.carry_share)}
        v = self.values
        parts = [f"<b>{html.escape(x.name)}</b> ({x.cell}), k = {k}: log10 ||dL/dh_k|| = "
                 f'<b class="rnnscope-value">{_fmt(v["log10_adjoint_h"])}</b>']
        for key, what in (("log10_adjoint_c", "log10 ||dL/dc_k||"), ("log10_spectral", "log10 ||ds_T/ds_k||_2"),
                          ("carry_share", "carry share")):
            if v[key] is not None:
                parts.append(f"{what} = {_fmt(v[key])}")
        self.readout.value = "; ".join(parts) + f"<br><small>{html.escape(x.verdict)}</small>"
        self.image.value = figure_png(plot_layer_step(x, k))


@functools.cache
def _types() -> tuple[type, type]:
    """ExplorerWidget and DiagnoseWidget: the behaviours above on ipywidgets.VBox (made when first needed)."""
    w = _ipywidgets()
    return tuple(types.new_class(name, (base, w.VBox), exec_body=lambda ns, base=base: ns.update(
        __module__=__name__, __doc__=base.__doc__)) for name, base in (("ExplorerWidget", _Explorer),
                                                                        ("DiagnoseWidget", _Diagnose)))


def explorer(**initial):
    """The explorer in a notebook: an ipywidgets VBox of controls (preset, cell, activation, hidden, length, batch,
    W_hh by gain / rho / sigma_max and its value, input scale, init, bias, seed, lru's r_min / r_max, mamba's
    dt_min / dt_max) over the verdict, the profile figure and the spectrum figure, recomputed by explorer.explore
    when a control changes. initial: ExplorerConfig fields (an InputError for a bad one); e.g.
    explorer(activation="sigmoid", hidden=5, length=20, scale="rho", value=3.0, input_scale=1.0).

    The returned widget has .result (the last explore(config) dict), .config, .error, .controls (by field name),
    .set(**fields) and .refresh().
    """
    initial = _known(initial)
    if "activation" not in initial:  # as the page does: the cell's own phi, none for the gated and modern cells
        initial["activation"] = modern.default_activation(initial.get("cell", "elman"))
    cfg = ex.ExplorerConfig(**initial).validate()
    return _types()[0](cfg)


def _known(initial: dict) -> dict:
    names = [f.name for f in dataclasses.fields(ex.ExplorerConfig)]
    bad = [k for k in initial if k not in names]
    if bad:
        raise InputError(f"explorer: expected fields of ExplorerConfig ({', '.join(names)}), got {bad[0]!r}")
    return dict(initial)


def diagnose_widget(model, inputs, loss_fn=None, **diagnose_kwargs):
    """Diagnose the model once (interop.diagnose(model, inputs, loss_fn, **diagnose_kwargs): targets=, jacobian=,
    ...) and show it: its card (Diagnosis._repr_html_: the numbers per layer, the advice, plot_diagnosis's figure)
    under a layer dropdown and a step slider k = 1..T, with that layer's log10 ||dL/dh_k|| (and ||dL/dc_k||,
    ||ds_T/ds_k||_2 where computed) against k and the chosen step marked and read out. The returned VBox has
    .diagnosis, .layer, .step and .values (the readout's numbers: the Diagnosis' batch means at step k)."""
    _ipywidgets()
    return _types()[1](diagnose(model, inputs, loss_fn, **diagnose_kwargs))
