"""app.notebook: the widgets built in-process (ipywidgets needs no kernel), controls changed as a user would; the
explorer widget's views against explorer.explore for the same ExplorerConfig (JSON-equal but for the timings), its
figures redrawn; the diagnose widget's readout against the Diagnosis and step-by-step autograd; `import rnnscope`
without ipywidgets, and the one-line error when it is missing."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from html.parser import HTMLParser

import pytest
import torch
from torch import nn

import rnnscope as rs
from rnnscope.app.explorer import LIMITS, PRESETS, ExplorerConfig, explore
from rnnscope.app.explorer_modern import option_defaults
from rnnscope.core.errors import InputError
from torch_reference import log10_norms, reference

F64 = torch.float64
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _json(d):
    """d as JSON values without its timings (every "seconds"): what two runs of the same setting share."""
    def strip(v):
        if isinstance(v, dict):
            return {k: strip(x) for k, x in v.items() if k != "seconds"}
        return [strip(x) for x in v] if isinstance(v, list) else v
    return strip(json.loads(json.dumps(d)))


def _same_views(w, cfg: ExplorerConfig) -> None:
    assert w.error is None
    assert w.config == cfg
    assert _json(w.result) == _json(explore(cfg))


def test_import_rnnscope_loads_no_widgets():
    code = ("import sys, rnnscope\n"
            "before = sorted(m for m in sys.modules if m.split('.')[0] in ('ipywidgets', 'IPython', 'ipykernel'))\n"
            "nb = rnnscope.notebook\n"
            "after = sorted(m for m in sys.modules if m.split('.')[0] in ('ipywidgets', 'IPython', 'ipykernel'))\n"
            "print(before, after, nb.__name__, callable(nb.explorer), callable(nb.diagnose_widget))\n")
    out = subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["[]", "[]", "rnnscope.app.notebook", "True", "True"]


def test_without_ipywidgets_one_line_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # `import ipywidgets` now raises ImportError
    nb = rs.notebook
    for call in (lambda: nb.explorer(hidden=4, length=10), lambda: nb.diagnose_widget(nn.RNN(1, 2), torch.zeros(3, 1))):
        with pytest.raises(ImportError) as e:
            call()
        assert str(e.value) == "notebook: expected ipywidgets installed (pip install ipywidgets), got none"


def test_explorer_recomputes_through_explore():
    initial = dict(hidden=6, length=40, input_scale=0.5, seed=3)
    w = rs.notebook.explorer(**initial)
    _same_views(w, ExplorerConfig(**initial))
    profile_png, spectrum_png = w.profile_image.value, w.spectrum_image.value
    assert profile_png[:8] == PNG_SIGNATURE and spectrum_png[:8] == PNG_SIGNATURE
    w.controls["value"].value = 1.8  # the gain slider, released
    _same_views(w, ExplorerConfig(**initial, value=1.8))
    assert w.profile_image.value != profile_png and w.spectrum_image.value != spectrum_png
    assert w.result["spectrum"]["sigma_max"] == pytest.approx(
        1.8 * explore(ExplorerConfig(**initial))["spectrum"]["sigma_max"], rel=1e-12)  # gain g: W_hh = g W_1
    assert w.result["profile"]["verdict"] in w.readout.value
    spectrum = w.result["spectrum"]  # the spectrum figure draws the view's own eigen- and singular values
    lines = {line.get_gid(): line for ax in rs.notebook.plot_spectrum_view(spectrum).axes for line in ax.lines}
    assert list(lines["eigenvalues:W_hh"].get_xdata()) == spectrum["blocks"][0]["eigenvalues"]["re"]
    assert list(lines["singular:W_hh"].get_ydata()) == spectrum["blocks"][0]["singular_values"]
    assert max(spectrum["blocks"][0]["singular_values"]) == pytest.approx(spectrum["sigma_max"], rel=1e-12)
    w.controls["scale"].value = "sigma_max"  # now the value 1.8 is sigma_max(W_hh) itself
    _same_views(w, ExplorerConfig(**initial, value=1.8, scale="sigma_max"))
    assert w.result["spectrum"]["sigma_max"] == pytest.approx(1.8, rel=1e-12)


# each cell's phi when none is given, from the papers and the seeds (tanh for the vanilla cells; relu for IndRNN,
# tanh for expRNN; none for the cells whose nonlinearities are fixed)
PAPERS_PHI = {"elman": "tanh", "pal": "tanh", "indrnn": "relu", "exprnn": "tanh"}


@pytest.mark.parametrize("cell", ["elman", "lstm", "gru", "lru", "indrnn", "exprnn", "mamba"])
def test_explorer_starts_on_any_cell_with_its_own_phi(cell):
    w = rs.notebook.explorer(cell=cell, hidden=4, length=20)
    _same_views(w, ExplorerConfig(cell=cell, activation=PAPERS_PHI.get(cell), hidden=4, length=20,
                                  **option_defaults().get(cell, {})))


def test_explorer_cell_and_preset():
    w = rs.notebook.explorer(hidden=4, length=30)
    w.controls["cell"].value = "lstm"  # its controls follow: no activation, gain, zero bias
    _same_views(w, ExplorerConfig(cell="lstm", activation=None, hidden=4, length=30))
    assert w.controls["activation"].disabled and w.controls["bias"].disabled
    w.controls["cell"].value = "lru"  # r_min and r_max apply, at the cell's own defaults until moved
    assert not w.controls["r_min"].disabled and w.controls["dt_min"].disabled
    defaults = option_defaults()["lru"]
    _same_views(w, ExplorerConfig(cell="lru", activation=None, hidden=4, length=30, **defaults))
    none = _json(explore(ExplorerConfig(cell="lru", activation=None, hidden=4, length=30)))  # the same cell: only
    got = _json(w.result)  # the config and the model's record of the options given differ
    for d in (got, none):
        del d["config"], d["profile"]["model"]
    assert got == none
    w.controls["r_max"].value = 0.9
    _same_views(w, ExplorerConfig(cell="lru", activation=None, hidden=4, length=30, r_min=0.0, r_max=0.9))
    for name in ("seed002-vanishing", "mamba-delta", "lru-unit-circle"):
        preset = next(p for p in PRESETS if p.name == name)
        w.controls["preset"].value = name  # every control set, one recompute
        _same_views(w, preset.config)
    w.controls["length"].value = 50  # a change after a preset: the preset no longer names the setting
    assert w.controls["preset"].value == "" and w.config.length == 50


def test_explorer_refusal_keeps_the_last_views():
    w = rs.notebook.explorer(hidden=6, length=20)
    before = w.result
    with pytest.raises(InputError) as want:
        ExplorerConfig(hidden=6, length=20, init="saddle").validate()
    w.controls["init"].value = "saddle"
    assert w.error == str(want.value) and w.result is before and w.config == ExplorerConfig(hidden=6, length=20)
    assert "hidden: expected 2 for init saddle" in w.status.value
    w.controls["hidden"].value = 2  # now it is the saddle
    _same_views(w, ExplorerConfig(hidden=2, length=20, init="saddle"))


def test_explorer_ranges_and_bad_initial_fields():
    w = rs.notebook.explorer(hidden=4, length=10)
    assert (w.controls["hidden"].min, w.controls["hidden"].max) == LIMITS.hidden
    assert (w.controls["length"].min, w.controls["length"].max) == LIMITS.length
    assert (w.controls["value"].min, w.controls["value"].max) == LIMITS.value
    assert not w.controls["length"].continuous_update
    with pytest.raises(InputError, match=r"hidden: expected an integer in \[2, 256\], got 1"):
        rs.notebook.explorer(hidden=1)
    with pytest.raises(InputError, match="explorer: expected fields of ExplorerConfig .*, got 'colour'"):
        rs.notebook.explorer(colour="red")


class _Value(HTMLParser):
    """The text of the readout's <b class="rnnscope-value">."""

    def __init__(self, text):
        super().__init__()
        self.inside, self.text = False, ""
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.inside = ("class", "rnnscope-value") in attrs

    def handle_endtag(self, tag):
        self.inside = False

    def handle_data(self, data):
        if self.inside:
            self.text += data


def test_diagnose_widget_readout_against_the_diagnosis_and_autograd():
    m = nn.LSTM(2, 3, num_layers=2, bidirectional=True).double()
    x = torch.randn(8, 2, 2, generator=torch.Generator().manual_seed(4), dtype=F64)
    w = rs.notebook.diagnose_widget(m, x)
    diag = w.diagnosis
    ref = reference(m, x)
    assert [o[0] for o in w.layer.options] == [d.name for d in diag.layers]
    assert (w.step.min, w.step.max, w.step.value) == (1, diag.T, diag.T)
    png = w.image.value
    for i, k in ((0, 1), (3, 5), (2, 8), (1, 3)):
        w.layer.value, w.step.value = i, k
        d = diag.layers[i]
        want = float(d.log10_adjoint_h[k - 1])
        assert w.values["log10_adjoint_h"] == want and w.values["layer"] == d.name and w.values["k"] == k
        assert w.values["log10_adjoint_c"] == float(d.log10_adjoint_c[k - 1])
        gh = ref["gh"][(d.layer, 0 if d.direction == "forward" else 1)]  # autograd's dL/dh_k, the direction's order
        assert want == pytest.approx(float(log10_norms(gh).mean(0)[k - 1]), abs=1e-9)
        assert math.isclose(float(_Value(w.readout.value).text), want, rel_tol=1e-3)
        assert w.image.value[:8] == PNG_SIGNATURE and w.image.value != png
        png = w.image.value
    assert "rnnscope-card" in w.card.value


def test_diagnose_widget_passes_its_options():
    m = nn.RNN(1, 3).double()
    x = torch.randn(6, 2, 1, generator=torch.Generator().manual_seed(5), dtype=F64)
    w = rs.notebook.diagnose_widget(m, x, lambda out: (out ** 2).sum(), jacobian=True)
    direct = rs.diagnose(m, x, lambda out: (out ** 2).sum(), jacobian=True)
    assert w.diagnosis.loss == direct.loss and w.diagnosis.jacobian_sequences == direct.jacobian_sequences > 0
    w.step.value = 2
    assert w.values["log10_spectral"] == float(direct.layers[0].log10_spectral[1])


class _TwoModules(nn.Module):
    """A whole model whose second recurrent module reads only the first one's last 3 steps."""

    def __init__(self):
        super().__init__()
        self.enc, self.dec = nn.GRU(1, 3), nn.RNN(3, 2)

    def forward(self, x):
        h, _ = self.enc(x)
        return self.dec(h[-3:])[0]


def test_diagnose_widget_follows_each_modules_own_length():
    torch.manual_seed(0)
    m = _TwoModules().double()
    x = torch.randn(8, 2, 1, generator=torch.Generator().manual_seed(6), dtype=F64)
    w = rs.notebook.diagnose_widget(m, x, lambda out: (out ** 2).sum())
    lengths = [d.log10_adjoint_h.shape[0] for d in w.diagnosis.layers]
    assert lengths == [8, 3] and w.card.value.count("<img") == 1  # the card's figure draws rows of either length
    w.step.value = 6
    w.layer.value = 1  # the decoder's 3 steps: the slider follows, k clamped to 3
    assert (w.step.max, w.step.value) == (3, 3)
    assert w.values["log10_adjoint_h"] == float(w.diagnosis.layers[1].log10_adjoint_h[2])
    w.step.value = 2
    w.layer.value = 0
    assert (w.step.max, w.step.value) == (8, 2)
    assert w.values["log10_adjoint_h"] == float(w.diagnosis.layers[0].log10_adjoint_h[1])
