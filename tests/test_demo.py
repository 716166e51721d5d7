"""demo: `rnnscope demo --quick` writes what it says, and its summary agrees with computations made here.

From each case's saved weights and inputs, independently of rnnscope: sigma_max and rho
(torch.linalg.svdvals / eigvals), the Pascanu verdict, and the measured profile (explicit forward pass,
Jacobians diag(phi'(a)) W_hh, products and svdvals) with its fitted rate.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import time

import numpy as np
import pytest
import torch
from rich.console import Console

from rnnscope.app.cli import main
from rnnscope.app.demo import CASES, QUICK, DemoCase, DemoConfig, rotated_jordan, run_demo, scaled_orthogonal

F64 = torch.float64
GAMMA = {"sigmoid": 0.25, "tanh": 1.0}
PHI = {"sigmoid": (torch.sigmoid, lambda a: torch.sigmoid(a) * (1 - torch.sigmoid(a))),
       "tanh": (torch.tanh, lambda a: 1 - torch.tanh(a) ** 2)}


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Small matrices: one torch thread is as fast and immune to a busy machine's thread contention."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def report(tmp_path_factory, _one_thread):
    out = tmp_path_factory.mktemp("report")
    old = torch.get_num_threads()
    stdout, stderr = io.StringIO(), io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(["demo", "--out", str(out), "--quick"])
    seconds = time.perf_counter() - start
    assert torch.get_num_threads() == old  # the demo restores torch's thread count
    return {"out": out, "code": code, "stdout": stdout.getvalue(), "stderr": stderr.getvalue(), "seconds": seconds,
            "summary": json.loads((out / "summary.json").read_text())}


def _measured(case_row, out):
    """log10 ||dh_T/dh_k||_2 for k = 1..T (batch mean), by explicit products of the formula Jacobians."""
    w = np.load(out / case_row["weights"])
    W, U, b = (torch.as_tensor(w[n]) for n in ("W_hh", "W_xh", "b_h"))
    x = torch.as_tensor(np.load(out / case_row["inputs"]))
    phi, dphi = PHI[case_row["activation"]]
    T, B, _ = x.shape
    h, Js = torch.zeros(B, W.shape[0], dtype=F64), []
    for t in range(T):
        a = h @ W.T + x[t] @ U.T + b
        Js.append(torch.diag_embed(dphi(a)) @ W)
        h = phi(a)
    spec = torch.zeros(B, T, dtype=F64)
    P = torch.eye(W.shape[0], dtype=F64).expand(B, -1, -1)
    for k in range(T, 0, -1):  # P = J_T ... J_{k+1}
        spec[:, k - 1] = torch.log10(torch.linalg.svdvals(P)[:, 0])
        P = P @ Js[k - 1]
    return spec.mean(0).numpy(), W


def test_demo_writes_every_file_and_prints_the_table(report):
    assert report["code"] == 0 and report["stderr"] == ""
    out, summary = report["out"], report["summary"]
    assert [c["case"] for c in summary["cases"]] == [c.name for c in CASES]
    assert summary["config"]["hidden"] == QUICK.hidden and summary["quick"] is True
    assert (out / "overview.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for c in summary["cases"]:
        assert (out / c["figure"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (out / c["figure"]).stat().st_size > 10_000
        assert np.load(out / c["inputs"]).shape == (QUICK.length, QUICK.batch, QUICK.input_size)
        assert c["case"] in report["stdout"]
    for word in ("gamma", "sigma_max", "rho", "verdict", "rate", "horizon", "vanishing guaranteed", "exploding possible"):
        assert word in report["stdout"], word
    assert "eigenvalue test would wrongly promise vanishing" in report["stdout"]
    assert report["seconds"] < 600 and summary["seconds"] < 600  # the profiles take seconds; the studies minutes


def test_demo_verdicts_agree_with_independent_singular_values(report):
    out = report["out"]
    for c in report["summary"]["cases"]:
        W = torch.as_tensor(np.load(out / c["weights"])["W_hh"])
        sigma = float(torch.linalg.svdvals(W)[0])
        rho = float(torch.linalg.eigvals(W).abs().max())
        g = GAMMA[c["activation"]]
        assert c["gamma"] == g
        assert c["sigma_max"] == pytest.approx(sigma, rel=1e-12)
        assert c["spectral_radius"] == pytest.approx(rho, rel=1e-9)
        assert c["verdict"] == ("vanishing guaranteed" if sigma < 1 / g else "exploding possible")
        assert c["bound_rate_per_step"] == pytest.approx(math.log10(g * sigma), rel=1e-12)
        if c["case"].endswith("-below"):
            assert sigma == pytest.approx(0.8 / g, rel=1e-12) and rho == pytest.approx(0.8 / g, rel=1e-12)
        if c["case"].endswith("-above") or c["case"].endswith("-saturated"):
            assert sigma == pytest.approx(2.0 / g, rel=1e-12)
        if c["case"].endswith("-nonnormal"):
            assert rho < 1 / g < sigma  # the eigenvalue test promises vanishing, the singular values do not
            assert "eigenvalue test" in c["note"]
        else:
            assert "eigenvalue test" not in c["note"]


def test_demo_measured_rates_agree_with_explicit_products(report):
    out = report["out"]
    for c in report["summary"]["cases"]:
        spec, W = _measured(c, out)
        T = len(spec)
        d = np.arange(T - 1, -1, -1)
        tail = d >= (T - 1) / 2
        rate = np.polyfit(d[tail], spec[tail], 1)[0]
        assert c["rate_per_step"] == pytest.approx(rate, abs=1e-6), c["case"]
        g = GAMMA[c["activation"]]
        if c["verdict"] == "vanishing guaranteed":  # the theorem, step by step
            assert (spec <= d * math.log10(g * float(torch.linalg.svdvals(W)[0])) + 1e-9).all()
    rates = {c["case"]: c["rate_per_step"] for c in report["summary"]["cases"]}
    # what the demo is for: below 1/gamma it vanishes, above (centred) it explodes, saturation vanishes anyway
    assert rates["sigmoid-below"] < 0 and rates["tanh-below"] < 0
    assert rates["sigmoid-above"] > 0 and rates["tanh-above"] > 0
    assert rates["tanh-saturated"] < 0


def test_reproduce_command_gives_the_same_profile(report, capsys):
    out = report["out"]
    c = next(c for c in report["summary"]["cases"] if c["case"] == "tanh-nonnormal")
    argv = c["reproduce"].split()[1:]
    argv = [str(out / a) if a.endswith((".npz", ".npy")) else a for a in argv]
    assert main(argv) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["rate_per_step"] == pytest.approx(c["rate_per_step"], abs=1e-12)
    assert d["sigma_max"] == pytest.approx(c["sigma_max"], rel=1e-15)


def test_run_demo_api_with_custom_cases(tmp_path):
    cases = (DemoCase("tiny-jordan", "tanh", "Jordan blocks of 2", rotated_jordan(0.5, 1.0, 2)),
             DemoCase("tiny-orth", "sigmoid", "orthogonal", scaled_orthogonal(0.5)))
    buf = io.StringIO()
    summary = run_demo(tmp_path / "r", cases=cases, config=DemoConfig(hidden=4, length=12, batch=1),
                       console=Console(file=buf, width=140))
    assert [c["case"] for c in summary["cases"]] == ["tiny-jordan", "tiny-orth"]
    assert json.loads((tmp_path / "r" / "summary.json").read_text()) == summary
    W = torch.as_tensor(np.load(tmp_path / "r" / "tiny-jordan.npz")["W_hh"])
    # Q diag(J_2(0.5), J_2(0.5)) Q^T: every eigenvalue 0.5, sigma_max = (1 + sqrt(1 + 4 * 0.25)) / 2 = (1 + sqrt 2)/2
    assert float(torch.linalg.eigvals(W).abs().max()) == pytest.approx(0.5, rel=1e-6)
    assert float(torch.linalg.svdvals(W)[0]) == pytest.approx((1 + math.sqrt(2)) / 2, rel=1e-12)
    assert "tiny-orth" in buf.getvalue() and "vanishing guaranteed" in buf.getvalue()


def test_demo_refuses_a_file_as_folder(tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    assert main(["demo", "--out", str(tmp_path / "f"), "--quick"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "expected a folder" in err


# ------------------------------------------------------------------------------- claims, reproductions, report

def test_demo_writes_claims_reproductions_and_the_report(report):
    from rnnscope.seeds.claims import claim_ids
    out, summary = report["out"], report["summary"]
    claims = json.loads((out / summary["claims_file"]).read_text())
    assert [c["id"] for c in claims] == claim_ids()
    for v in ("holds", "holds-with-correction", "refuted"):
        assert summary["claims"][v] == sum(c["verdict"] == v for c in claims) > 0
    for name in summary["reproductions"]:
        for ext in (".png", ".svg", ".txt"):
            assert (out / f"{name}{ext}").stat().st_size > 500, name + ext
    for c in claims:
        assert (out / "claims" / f"{c['id']}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / summary["report"]).is_file()
    assert "index.html" in report["stdout"] and "refuted" in report["stdout"]
    assert [st["name"] for st in summary["studies"]] == ["pascanu", "cells", "modern"]
    from rnnscope.seeds.after_seeds import after_seeds_ids
    assert summary["after_seeds"] == dict.fromkeys(after_seeds_ids(), "holds")  # the modern cells' guarantees
    assert 'id="after-the-seeds"' in (out / summary["report"]).read_text(encoding="utf-8")
    for st in summary["studies"]:
        assert (out / st["figure"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_demo_studies_agree_with_their_store(report):
    """The studies' tables in the report are the store's rows, aggregated here by hand."""
    import sqlite3
    out = report["out"]
    con = sqlite3.connect(out / "studies.sqlite")
    rows = [(json.loads(c), json.loads(m) if m else None, s) for c, m, s in
            con.execute("SELECT config, metrics, status FROM runs")]
    con.close()
    assert rows and all(s == "done" for _, _, s in rows)
    by = {}
    for c, m, _ in rows:
        by.setdefault((c["study"], c["task"], c["method"], c["length"]), []).append(m["status"] == "solved")
    from rnnscope.runs.store import Store
    from rnnscope.lab.studies import study_table
    html = (out / "index.html").read_text()
    with Store(out / "studies.sqlite") as store:
        all_rows = store.rows()
    for study in ("pascanu", "cells"):
        assert f'id="study-{study}"' in html
        table = study_table([r for r in all_rows if r["config"]["study"] == study])
        assert {(study, r.task, r.method, r.length): (r.solved, r.runs) for r in table} == \
            {k: (sum(v), len(v)) for k, v in by.items() if k[0] == study}
    # the quick pascanu study: SGD-CR solves at least as many runs as plain SGD (Pascanu's ordering)
    cr = sum(sum(v) for k, v in by.items() if k[0] == "pascanu" and k[2] == "SGD-CR")
    sgd = sum(sum(v) for k, v in by.items() if k[0] == "pascanu" and k[2] == "SGD")
    assert cr >= sgd


@pytest.mark.browser
def test_the_report_opens_in_chromium_with_every_claim_and_figure(report, browser_page, browser_log, artifacts_dir):
    out, summary = report["out"], report["summary"]
    claims = json.loads((out / summary["claims_file"]).read_text())
    page = browser_page
    page.goto((out / "index.html").as_uri())
    page.wait_for_load_state("load")
    for c in claims:
        sec = page.locator(f"section#claim-{c['id']}")
        assert sec.count() == 1, c["id"]
        sec.scroll_into_view_if_needed()
        assert sec.is_visible()
        assert sec.get_attribute("data-verdict") == c["verdict"]
        text = sec.inner_text()
        assert c["verdict"] in text and c["id"] in text
        if c["verdict"] == "refuted":
            assert "Counterexample" in text and "W_hh" in text
        img = sec.locator("img")
        assert img.count() >= 1 and img.first.evaluate("i => i.complete && i.naturalWidth > 0"), c["id"]
    for name in summary["reproductions"]:
        fig = page.locator(f"figure#repro-{name}")
        assert fig.count() == 1, name
        assert fig.locator("img").evaluate("i => i.complete && i.naturalWidth > 0"), name
        assert fig.locator("figcaption").inner_text().strip()
    for st in summary["studies"]:
        sec = page.locator(f"section#study-{st['name']}")
        sec.scroll_into_view_if_needed()
        assert sec.is_visible() and sec.locator("img").count() == (2 if st.get("flow_figure") else 1)
        assert all(sec.locator("img").nth(i).evaluate("i => i.complete && i.naturalWidth > 0") for i in range(sec.locator("img").count()))
    broken = page.evaluate("[...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)")
    assert broken == []
    assert browser_log.console_errors == [] and browser_log.page_errors == []
    assert all(u.startswith("file://") for u in browser_log.requests), [u for u in browser_log.requests if not u.startswith("file://")]
    page.screenshot(path=str(artifacts_dir / "demo-report.png"), full_page=False)
