"""core.display and the results' _repr_html_: each card, parsed with the standard library's html.parser, shows the
object's own numbers (its fields, its to_dict()), for the profile also against Jacobian products by
torch.func.jacrev, for the Lyapunov spectrum against ln|eig(W)|, for the diagnosis against step-by-step autograd;
exactly one embedded PNG whose IHDR size is the figure's; no address, no script; the plain repr unchanged."""

from __future__ import annotations

import base64
import dataclasses
import json
import math
import struct
from html.parser import HTMLParser

import pytest
import torch
from torch import nn

import rnnscope as rs
from rnnscope.core import plots
from rnnscope.core.display import DPI, figure_png, fields, html_card
from rnnscope.core.errors import InputError
from rnnscope.core.plots import new_figure
from rnnscope.lab.studies import StudyRow, StudyTable, study_table
from torch_reference import log10_norms, reference

F64 = torch.float64
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class Card(HTMLParser):
    """A card read back: facts {key: (JSON value, text)}, rows [[(column, value, text)]], imgs [attrs], notes."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.facts, self.rows, self.imgs, self.notes, self.tags = {}, [], [], [], []
        self._table = self._cell = self._row = self._li = None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        if tag == "table":
            self._table = a.get("class")
        elif tag == "tr" and self._table == "rnnscope-rows":
            self._row = []
        elif tag == "td":
            self._cell = [a["data-key"], json.loads(a["data-value"]), ""]
        elif tag == "img":
            self.imgs.append(a)
        elif tag == "li":
            self._li = ""

    def handle_data(self, data):
        if self._cell is not None:
            self._cell[2] += data
        if self._li is not None:
            self._li += data

    def handle_endtag(self, tag):
        if tag == "td":
            key, value, text = self._cell
            if self._table == "rnnscope-facts":
                self.facts[key] = (value, text)
            else:
                self._row.append((key, value, text))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            if self._row:
                self.rows.append(self._row)
            self._row = None
        elif tag == "li":
            self.notes.append(self._li)
            self._li = None
        elif tag == "table":
            self._table = None


def by_column(row: list) -> dict:
    """{column: (value, text)} of a parsed row (columns with unique headers)."""
    return {k: (v, t) for k, v, t in row}


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk, the first after the signature (length 13, type IHDR)."""
    assert data[:8] == PNG_SIGNATURE
    length, kind = struct.unpack(">I4s", data[8:16])
    assert (length, kind) == (13, b"IHDR")
    return struct.unpack(">II", data[16:24])


def read(obj, figure=None) -> Card:
    """The object's card, with the checks every card passes: one PNG of the figure's own size (when figure, the
    function that draws the object, is given), nothing fetched, nothing run, and the plain repr a dataclass's."""
    text = obj._repr_html_()
    card = Card(text)
    assert "http:" not in text and "https:" not in text and "://" not in text
    assert "script" not in card.tags and "<script" not in text.lower()
    if figure is not None:
        assert len(card.imgs) == 1
        src = card.imgs[0]["src"]
        assert src.startswith("data:image/png;base64,")
        data = base64.b64decode(src.split(",", 1)[1], validate=True)
        w, h = figure(obj).get_size_inches()
        assert png_size(data) == (round(w * DPI), round(h * DPI))
    r = repr(obj)
    assert "<table" not in r and "<img" not in r
    if dataclasses.is_dataclass(obj):  # the dataclass's own repr, written out
        own = ", ".join(f"{f.name}={getattr(obj, f.name)!r}" for f in dataclasses.fields(obj) if f.repr)
        assert r == f"{type(obj).__qualname__}({own})"
    return card


def shown_number(card: Card, key: str) -> float:
    """A fact's JSON value, after checking that its text (6 significant digits) says the same number."""
    value, text = card.facts[key]
    assert math.isclose(float(text), value, rel_tol=1e-5)
    return value


def same_facts(card: Card, d: dict) -> int:
    """Every fact whose key the object's to_dict() has equals that entry (JSON-equal); returns how many."""
    common = [k for k in card.facts if k in d]
    for k in common:
        assert card.facts[k][0] == d[k], k
    return len(common)


def _elman(hidden=4, gain=1.5, seed=3):
    return rs.random_cell("elman", "tanh", hidden=hidden, gain=gain, seed=seed)


def _x(T=25, B=2, D=1, seed=0):
    return torch.randn(T, B, D, generator=torch.Generator().manual_seed(seed), dtype=F64)


def test_profile_card_against_its_fields_and_jacrev_products():
    cell, x = _elman(), _x()
    p = rs.profile(cell, x)
    card = read(p, plots.plot_profile)
    d = p.to_dict()
    assert same_facts(card, d) >= 15
    assert {"verdict", "gamma", "sigma_max", "spectral_radius", "rate_per_step", "horizon"} <= set(card.facts)
    trace = rs.unroll(cell, x)
    spec, adj = [], []
    for b in range(x.shape[1]):  # ds_t/ds_1 as one map s_1 -> s_t through steps 2..t, by torch.func.jacrev
        def f(s1, b=b):
            s = s1[None]
            for i in range(1, p.t):
                s = cell.step(x[i, b:b + 1], s)
            return s[0]
        J = torch.func.jacrev(f)(trace.states[1, b])  # (S, S)
        spec.append(math.log10(float(torch.linalg.svdvals(J)[0])))
        adj.append(math.log10(float(torch.linalg.vector_norm(J.sum(0)))))  # L = sum of h_t: dL/ds_1 = 1^T J
    assert shown_number(card, "log10_spectral (k = 1)") == pytest.approx(sum(spec) / len(spec), abs=1e-9)
    assert shown_number(card, "log10_adjoint (k = 1)") == pytest.approx(sum(adj) / len(adj), abs=1e-9)
    assert card.facts["log10_frobenius (k = 1)"][0] == d["log10_frobenius"][0]
    assert card.notes == [p.note, *p.warnings]


def test_profile_card_of_a_modern_cell_draws_its_own_bound():
    cell = rs.random_cell("lru", hidden=4, seed=0)
    p = rs.profile(cell, _x(T=20, B=1))
    card = read(p, plots.plot_profile)
    assert card.facts["gamma"][0] is None and card.facts["step_bound"][0] == p.step_bound
    c = float(cell.lam.abs().max())  # LRU: ||ds_t/ds_k||_2 <= max_j |lambda_j|^(t-k)
    bound = next(line for line in plots.plot_profile(p).axes[0].lines if line.get_gid() == "bound")
    assert list(bound.get_ydata()) == pytest.approx([(20 - k) * math.log10(c) for k in range(1, 21)], abs=1e-12)


def test_jacobian_profile_card():
    cell, x = _elman(), _x(B=3)
    jp = rs.jacobian_profile(cell, rs.unroll(cell, x))
    card = read(jp, plots.plot_jacobian_profile)
    assert set(card.facts) == {"t", "power_half_steps", "svd_fallbacks", "renormalised_chunks", "batch",
                               "log10_spectral (k = 1)", "log10_frobenius (k = 1)"}
    for k in ("t", "power_half_steps", "svd_fallbacks", "renormalised_chunks"):
        assert card.facts[k][0] == getattr(jp, k)
    assert card.facts["batch"][0] == 3
    assert shown_number(card, "log10_spectral (k = 1)") == float(jp.log10_spectral[:, 0].mean())
    assert shown_number(card, "log10_frobenius (k = 1)") == float(jp.log10_frobenius[:, 0].mean())
    assert card.facts["log10_spectral (k = 1)"][0] == pytest.approx(rs.profile(cell, x).log10_spectral[0].item(),
                                                                    abs=1e-12)


def test_lyapunov_card_against_ln_eig_of_a_linear_map():
    cell = rs.ElmanCell(torch.diag(torch.tensor([0.5, 2.0], dtype=F64)), torch.zeros(2, 1, dtype=F64),
                        torch.zeros(2, dtype=F64), "identity")
    ly = rs.lyapunov(cell, torch.zeros(200, 1, 1, dtype=F64))
    card = read(ly, plots.plot_lyapunov)
    assert same_facts(card, ly.to_dict()) >= 12
    assert card.facts["exponents"][0] == ly.to_dict()["exponents"]
    assert card.facts["exponents"][0] == pytest.approx([math.log(2.0), math.log(0.5)], abs=1e-9)
    assert shown_number(card, "max_exponent") == pytest.approx(math.log(2.0), abs=1e-9)


def test_claim_card():
    r = rs.run_claims(["000-activation-decides"])[0]
    card = read(r, lambda r: plots.plot_spec(r.figure))
    d = r.to_dict()
    assert same_facts(card, d) == 6  # id, seed, statement, verdict, correction, seconds
    ev = {k[len("evidence: "):]: v for k, (v, _) in card.facts.items() if k.startswith("evidence: ")}
    assert {"spectral_radius", "sigma_max", "gamma"} <= set(ev)
    assert all(d["evidence"][k] == v for k, v in ev.items())
    bare = rs.ClaimResult("x-demo", "000_0183f85bd5403c3d.txt", "a statement", "holds", None, {"err": 0.0}, 0.01)
    card = read(bare)
    assert card.imgs == [] and card.facts["evidence: err"][0] == 0.0


def test_diagnosis_card_against_autograd():
    m = nn.LSTM(2, 3, num_layers=2).double()
    x = _x(T=9, B=2, D=2, seed=1)
    diag = rs.diagnose(m, x)
    card = read(diag, plots.plot_diagnosis)
    d = diag.to_dict()
    assert same_facts(card, d) >= 12
    assert shown_number(card, "gradient_norm") == d["gradient_norm"]
    ref = reference(m, x)
    assert card.facts["loss"][0] == pytest.approx(ref["loss"], rel=1e-12)
    assert len(card.rows) == 2
    for row, layer in zip(map(by_column, card.rows), diag.layers):
        assert row["verdict"][0] == layer.verdict and row["layer"][0] == layer.name
        want = log10_norms(ref["gh"][(layer.layer, 0)]).mean(0)  # (T,) batch mean of log10 ||dL/dh_k||
        assert row["log10 ||dL/dh_1||"][0] == pytest.approx(float(want[0]), abs=1e-9)
        assert row["log10 ||dL/dh_T||"][0] == pytest.approx(float(want[-1]), abs=1e-9)
        assert row["sigma_max"][0] == layer.sigma_max
    assert card.notes == [*diag.advice, *diag.notes]


def test_memory_card_against_the_closed_form():
    res = rs.memory_sensitivity((0.5, 0.9), sequences=200, tanh_sequences=8, hidden=4)
    card = read(res, rs.plot_memory)
    assert same_facts(card, res.to_dict()) == 10
    table = res.table()
    assert [[k for k, _, _ in row] for row in card.rows] == [table[0]] * len(table[1:])
    assert [[text for _, _, text in row] for row in card.rows] == table[1:]
    plain = {float(row[2][2]): row for row in card.rows if row[0][2] == "plain"}
    for lam in (0.5, 0.9):  # h_t = lambda h_{t-1} + x_t, x_t ~ N(0, 1): E h^2 = 1 / (1 - lambda^2)
        assert plain[lam][4][2] == f"{1 / (1 - lam * lam):.4g}"  # the first "closed" column


def _store_row(method, length, seed, solved):
    return {"config": {"task": "copy", "method": method, "length": length, "seed": seed}, "status": "done",
            "metrics": {"status": "solved" if solved else "failed", "final_loss": 0.2 + seed, "baseline_loss": 2.0,
                        "steps": 100 + 10 * seed}}


def test_study_table_card_and_its_list_behaviour():
    rows = [_store_row(m, L, s, solved=(m == "A" or s == 0)) for m in ("A", "B") for L in (10, 20) for s in (0, 1)]
    table = study_table(rows, measure="success", title="copy: A vs B")
    assert isinstance(table, list) and isinstance(table, StudyTable) and isinstance(table[0], StudyRow)
    assert table == list(table) and repr(table) == repr(list(table))
    card = read(table, lambda t: rs.plot_study(t, measure=t.measure, title=t.title))
    assert card.facts["runs"][0] == 8 and card.facts["solved"][0] == 6  # A: 4 of 4, B: the seed-0 runs
    by = {(r["method"][0], r["L"][0]): r for r in map(by_column, card.rows)}
    assert by[("A", "10")]["success_rate"][0] == 1.0 and by[("B", "20")]["success_rate"][0] == 0.5
    assert by[("B", "10")]["mean_loss_over_baseline"][0] == pytest.approx((0.2 / 2 + 1.2 / 2) / 2, abs=1e-15)
    assert by[("B", "10")]["mean_steps"][0] == 105.0
    for r in table:
        assert by[(r.method, r.length_label)]["solved"][0] == r.solved
    empty = StudyTable([])  # nothing to draw: the plot's refusal where the figure would be
    text = empty._repr_html_()
    assert Card(text).imgs == [] and "figure: study plot: expected finished runs, got none" in text
    with pytest.raises(InputError, match="measure: expected 'success' or 'baseline', got 'x'"):
        StudyTable([], measure="x")


def test_html_card_escapes_and_carries_exact_values():
    card = Card(html_card("<b>x</b> & y", {"a<b": "<script>alert(1)</script>", "v": 1 / 3, "z": float("-inf"),
                                           "n": None, "long": list(range(20))}, notes=["<i>n</i>", ""]))
    assert card.tags.count("script") == 0 and card.tags.count("i") == 0
    assert card.facts["a<b"] == ("<script>alert(1)</script>", "<script>alert(1)</script>")
    assert card.facts["v"] == (1 / 3, "0.333333")
    assert card.facts["z"] == (None, "-inf") and card.facts["n"] == (None, "-")
    assert card.facts["long"][0] == list(range(20)) and card.facts["long"][1].endswith("19] (20 values)")
    assert card.notes == ["<i>n</i>"]


def test_figure_png_closes_the_figure():
    fig = new_figure((2.0, 1.0))
    fig.add_subplot().plot([0, 1], [1, 0])
    data = figure_png(fig, dpi=50)
    assert png_size(data) == (100, 50) and fig.axes == []
    assert b"matplotlib.org" not in data
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    pf = plt.figure(figsize=(2.0, 2.0))
    figure_png(pf, dpi=40)
    assert pf.number not in plt.get_fignums()


def test_fields_keeps_scalars_only():
    jp = rs.jacobian_profile(_elman(), rs.unroll(_elman(), _x(T=5)))
    assert fields(jp, skip=("log10_blocks",)) == {"log10_carried": None, "t": 5, "power_half_steps": jp.power_half_steps, "svd_fallbacks": jp.svd_fallbacks,
                          "renormalised_chunks": jp.renormalised_chunks}
    assert fields({"a": 1, "b": torch.zeros(2), "c": ("x",)}, skip=("a",)) == {"c": ("x",)}


def test_jupyter_uses_the_card_and_a_terminal_the_repr():
    from IPython.core.formatters import HTMLFormatter, PlainTextFormatter
    jp = rs.jacobian_profile(_elman(), rs.unroll(_elman(), _x(T=5)))
    assert HTMLFormatter()(jp) == jp._repr_html_()
    assert PlainTextFormatter()(jp) == repr(jp)
