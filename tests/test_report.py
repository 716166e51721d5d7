"""report: the offline HTML page carries every claim, verdict, statement and figure, escaped, and loads in chromium.

The counterexample's log10 norms are log10 ||W^(T-k)||_2 computed here with numpy (the Jacobian product of a tanh
Elman RNN resting at h = 0 with zero inputs is W^(T-k) exactly, phi'(0) = 1), and the page's summary of them
is checked against that reference; evidence numbers against their 4-significant-digit rounding.
"""

from __future__ import annotations

import math
from html.parser import HTMLParser
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from rnnscope.core.errors import InputError
from rnnscope.seeds.report import write_report

SEED_001, SEED_002 = "001_28bb9cc7f1f7e16d.txt", "002_87b582d44353f60f.txt"
T = 30
W_HH = [[0.8, 2.0], [0.0, 0.8]]  # one Jordan block: rho = 0.8 < 1, yet ||W^n||_2 first grows
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


def _log10_norms() -> list[float]:
    """log10 ||ds_T/ds_k||_2 = log10 ||W^(T-k)||_2 for k = 1..T (numpy reference)."""
    W = np.array(W_HH)
    return [float(np.log10(np.linalg.norm(np.linalg.matrix_power(W, T - k), 2))) for k in range(1, T + 1)]


def _claims() -> list[dict]:
    norms = _log10_norms()
    k = list(range(1, T + 1))
    figure = {"title": "Counterexample: rho = 0.8 < 1, yet the gradient first grows", "xlabel": "k",
              "ylabel": "log10 ||dh_T/dh_k||_2",
              "series": [{"label": "measured", "x": k, "y": norms, "style": "solid"},
                         {"label": "eigenvalue promise (0.8)^(T-k)", "x": k,
                          "y": [(T - i) * math.log10(0.8) for i in k], "style": "dashed"}]}
    return [
        {"id": "002-eigenvalue-vanishing", "seed": SEED_002,
         "statement": "If every eigenvalue of W_hh has modulus below 1, ||dh_t/dh_k|| shrinks at every step back.",
         "verdict": "refuted",
         "correction": "Use sigma_max(W_hh) < 1/gamma: eigenvalues below 1 allow transient growth.",
         "evidence": {"spectral_radius": 0.8, "sigma_max": 2.1799999, "peak_growth": 10 ** max(norms),
                      "counterexample": {"W_hh": W_HH, "W_xh": [[1.0], [0.5]], "b_h": [0.0, 0.0], "activation": "tanh",
                                         "inputs": [[0.0]] * T, "h0": [0.0, 0.0], "cell": "elman",
                                         "log10_norms": norms}},
         "seconds": 0.0123, "figure": figure},
        {"id": "001-pascanu-sufficient", "seed": SEED_001,
         "statement": "For <b>& every</b> W with sigma_max < 1/gamma the gradient vanishes.",
         "verdict": "holds", "correction": None,
         "evidence": {"trials": 200, "max_ratio": 0.998712345, "rates": [-0.01 * i for i in range(1, 51)],
                      "per_activation": {"tanh": {"worst": 0.97123}, "sigmoid": {"worst": 0.25}}},
         "seconds": 1.5},
        {"id": "002-sigmoid-quarter", "seed": SEED_002,
         "statement": "The derivative of the sigmoid is at most 1/4.",
         "verdict": "holds-with-correction",
         "correction": "It equals 1/4 only at 0; the bound is attained, not strict.",
         "evidence": {"max_derivative": 0.25, "argmax": 0.0}, "seconds": 0.002},
    ]


def _save_figure(out: Path, name: str, slope: float) -> None:
    fig = Figure(figsize=(6, 3.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot(range(50), [slope * i for i in range(50)])
    ax.set_title(name)
    for ext in ("png", "svg"):
        fig.savefig(out / f"{name}.{ext}", dpi=80)
    (out / f"{name}.txt").write_text(f"{name}: a line of slope {slope}\n")


def _reproductions(out: Path) -> list[dict]:
    rows = []
    for seed, name, slope in ((SEED_002, "002-vanishing-example", -0.05), (SEED_001, "001-exploding-example", 0.03)):
        _save_figure(out, name, slope)
        rows.append({"seed": seed, "name": name, "title": f"Seed {seed[:3]}: {name}",
                     "caption": f"log10 ||dh_t/dh_k|| falls by {slope} per step & <i>more</i>.",
                     "png": f"{name}.png", "svg": f"{name}.svg", "caption_file": f"{name}.txt",
                     "numbers": {"slope": slope, "T": 50}})
    return rows


def _demo(out: Path) -> dict:
    _save_figure(out, "overview", 0.0)
    cases = []
    for name, verdict, s in (("tanh-below", "vanishing guaranteed", 0.8), ("tanh-above", "exploding possible", 2.0)):
        _save_figure(out, name, math.log10(s))
        cases.append({"case": name, "activation": "tanh", "recipe": f"W_hh = ({s}/gamma) Q", "gamma": 1.0,
                      "sigma_max": s, "spectral_radius": s, "verdict": verdict, "rate_per_step": math.log10(s),
                      "bound_rate_per_step": math.log10(s), "horizon": 15, "horizon_kind": "vanishing",
                      "figure": f"{name}.png"})
    return {"config": {"hidden": 32, "length": 100, "batch": 2}, "cases": cases, "overview": "overview.png",
            "seconds": 1.25}


@pytest.fixture
def report(tmp_path):
    claims, reps, demo = _claims(), _reproductions(tmp_path), _demo(tmp_path)
    return write_report(tmp_path, claims, reps, demo), claims, reps


class _Page(HTMLParser):
    """Collects claim sections, their badges, all text, img/a targets and ids; checks that tags nest."""

    def __init__(self):
        super().__init__()
        self.stack, self.ids, self.imgs, self.hrefs, self.claims, self.badges, self.text = [], [], [], [], {}, {}, []
        self.claim, self.in_badge, self.scripts = None, False, 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag not in VOID:
            self.stack.append(tag)
        if "id" in a:
            self.ids.append(a["id"])
        if tag == "section" and "claim" in a.get("class", "").split():
            self.claim = a["id"].removeprefix("claim-")
            self.claims[self.claim] = a["data-verdict"]
        self.in_badge = tag == "span" and "verdict" in a.get("class", "").split() and self.claim is not None
        self.imgs += [a] if tag == "img" else []
        self.hrefs += [a["href"]] if tag == "a" else []
        self.scripts += tag == "script"

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1] if self.stack else None}>"
        self.stack.pop()
        self.in_badge = False
        if tag == "section" and "section" not in self.stack[2:]:
            self.claim = None

    def handle_data(self, data):
        self.text.append(data)
        if self.in_badge:
            self.badges[self.claim] = self.badges.get(self.claim, "") + data


def _parse(path: Path) -> _Page:
    p = _Page()
    p.feed(path.read_text(encoding="utf-8"))
    p.close()
    assert p.stack == ["html"] or p.stack == [], p.stack
    return p


def test_report_html_has_every_claim_figure_and_escapes(report):
    path, claims, reps = report
    raw = path.read_text(encoding="utf-8")
    assert raw.startswith("<!DOCTYPE html>") and '<meta charset="utf-8">' in raw
    page = _parse(path)
    text = " ".join(" ".join(page.text).split())
    assert page.scripts == 0 and "http" not in " ".join([*page.hrefs, *(i["src"] for i in page.imgs)])
    assert len(page.ids) == len(set(page.ids))
    # every claim: its section, verdict (attribute and badge), statement, correction
    assert page.claims == {c["id"]: c["verdict"] for c in claims}
    assert page.badges == {c["id"]: c["verdict"] for c in claims}
    for c in claims:
        assert c["statement"] in text
        assert c["correction"] is None or c["correction"] in text
    # escaping: the statement's "<b>&" is text, not markup
    assert "For <b>& every</b> W" in text and "&lt;b&gt;&amp; every&lt;/b&gt;" in raw and "<b>&" not in raw
    # figures: one claim figure drawn, reproductions and demo linked; every file exists and is a real image
    srcs = [i["src"] for i in page.imgs]
    assert "claims/002-eigenvalue-vanishing.png" in srcs
    assert not (path.parent / "claims/001-pascanu-sufficient.png").exists()
    assert {r["png"] for r in reps} | {"overview.png"} <= set(srcs)
    assert {r["svg"] for r in reps} | {r["caption_file"] for r in reps} <= set(page.hrefs)
    for img in page.imgs:
        assert img["alt"].strip()
        assert matplotlib.image.imread(path.parent / img["src"]).shape[0] > 100
    for href in page.hrefs:
        assert href.startswith("#") or (path.parent / href).is_file(), href
    for r in reps:
        assert f'id="repro-{r["name"]}"' in raw and r["caption"] in text
    # header counts, demo rows
    assert "holds 1 holds-with-correction 1 refuted 1 claims 3 reproductions 2" in text
    assert "tanh-below" in text and "vanishing guaranteed" in text and "+0.3010" in text


def test_report_evidence_numbers(report):
    path, claims, _ = report
    text = " ".join(" ".join(_parse(path).text).split())
    # floats to 4 significant digits, nested dicts as dotted keys, long lists shortened to length and ends
    assert "sigma_max 2.18" in text and "max_ratio 0.9987" in text and "trials 200" in text
    assert "per_activation.tanh.worst 0.9712" in text and "per_activation.sigmoid.worst 0.25" in text
    assert "rates 50 values: -0.01, -0.02, …, -0.49, -0.5" in text and "-0.25" not in text.split("rates")[1][:60]
    # counterexample: the 2 x 2 W_hh as a table, the 30 x 1 inputs by shape, the norms summarised (numpy reference)
    assert "W_hh (2 × 2) 0.8 2 0 0.8" in text and "inputs 30 × 1" in text
    norms = _log10_norms()
    peak = int(np.argmax(norms)) + 1
    assert f"max {max(norms):.4g} at k = {peak}" in text and f"k = {T}: 0;" in text
    assert f"average change {(norms[-1] - norms[0]) / (T - 1):+.4g} per step" in text
    assert f"peak_growth {10 ** max(norms):.4g}" in text


def test_report_bad_inputs(tmp_path):
    claims = _claims()
    del claims[2]["verdict"]
    with pytest.raises(InputError, match=r"claims\[2\] \('002-sigmoid-quarter'\): expected key 'verdict'"):
        write_report(tmp_path / "r", claims, [])
    claims = _claims()
    del claims[0]["id"]
    with pytest.raises(InputError, match=r"claims\[0\]: expected key 'id'"):
        write_report(tmp_path / "r", claims, [])
    claims = _claims()
    claims[1]["verdict"] = "maybe"
    with pytest.raises(InputError, match="expected one of holds, holds-with-correction, refuted, got 'maybe'"):
        write_report(tmp_path / "r", claims, [])
    claims = _claims()
    claims[1]["id"] = "../escape"
    with pytest.raises(InputError, match="a file name"):
        write_report(tmp_path / "r", claims, [])
    f = tmp_path / "file.html"
    f.write_text("x")
    with pytest.raises(InputError, match="out: expected a folder, got .*file.html"):
        write_report(f, _claims(), [])
    reps = _reproductions(tmp_path)
    (tmp_path / reps[1]["svg"]).unlink()
    with pytest.raises(InputError, match="reproduction '001-exploding-example' svg: expected an existing file"):
        write_report(tmp_path, [], reps)
    del reps[0]["caption"]
    with pytest.raises(InputError, match=r"reproductions\[0\] \('002-vanishing-example'\): expected key 'caption'"):
        write_report(tmp_path, [], reps)


@pytest.mark.browser
def test_report_in_chromium(report, browser_page, browser_log, artifacts_dir):
    path, claims, _ = report
    page = browser_page
    page.goto(path.as_uri(), wait_until="load")
    for c in claims:
        section = page.locator(f"#claim-{c['id']}")
        assert section.is_visible()
        assert section.get_attribute("data-verdict") == c["verdict"]
        assert section.locator(".verdict").inner_text() == c["verdict"]
    imgs = page.eval_on_selector_all("img", "els => els.map(e => [e.getAttribute('src'), e.complete, e.naturalWidth])")
    assert len(imgs) == 4 and all(done and width > 0 for _, done, width in imgs), imgs
    # the layout: one column of at most 1100 px, nothing wider than the window
    box = page.locator(".page").bounding_box()
    assert box["width"] <= 1100
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.screenshot(path=str(artifacts_dir / "report.png"), full_page=True)
    assert browser_log.console_errors == [] and browser_log.page_errors == []
    assert browser_log.requests and all(u.startswith("file://") for u in browser_log.requests), browser_log.requests
