"""phase: measured gradient growth of random tanh RNNs against explicit products and against mean-field theory
computed here by scipy quadrature; the table, the crossing, the figure, and the CLI end to end."""

import contextlib
import csv
import io
import json
import math

import numpy as np
import pytest
import torch

from rnnscope.app.cli import main
from rnnscope.dynamics.phase import PhaseRow, measured_crossing, phase_table, plot_phase, run_point

F64 = torch.float64


def _chi1_quad(sw, sb):
    """chi_1 for tanh by scipy.integrate.quad and brentq (independent of rnnscope.dynamics.meanfield)."""
    from scipy import integrate, optimize
    pdf = lambda z: math.exp(-z * z / 2) / math.sqrt(2 * math.pi)  # noqa: E731

    def E(f, q):
        return integrate.quad(lambda z: f(math.sqrt(q) * z) * pdf(z), -12, 12, limit=200)[0]
    fixed = lambda q: sw * sw * E(lambda a: math.tanh(a) ** 2, q) + sb * sb - q  # noqa: E731
    q = optimize.brentq(fixed, 1e-12, 100.0) if fixed(1e-12) > 0 else 0.0
    return sw * sw * (E(lambda a: (1 - math.tanh(a) ** 2) ** 2, q) if q > 0 else 1.0)


def test_run_point_against_explicit_products_and_quadrature():
    cfg = {"sigma_w": 1.7, "sigma_b": 0.4, "hidden": 24, "length": 60, "seed": 3}
    m = run_point(cfg)
    # the same network, rebuilt from the recipe in phase.py's docstring, by plain torch
    gen = torch.Generator().manual_seed(3)
    S, T = 24, 60
    W = 1.7 * torch.randn(S, S, generator=gen, dtype=F64) / math.sqrt(S)
    b = 0.4 * torch.randn(S, generator=gen, dtype=F64)
    h = torch.randn(S, generator=gen, dtype=F64)
    g = torch.randn(S, generator=gen, dtype=F64)
    g = g / g.norm()
    Js, a2 = [], []
    for t in range(T):
        a = W @ h + b
        Js.append(torch.diag(1 - torch.tanh(a) ** 2) @ W)
        a2.append(a)
        h = torch.tanh(a)
    half = T // 2
    row, ln = g.clone(), {}
    for k in range(T, half, -1):  # ln ||g^T J_T ... J_{k+1}|| for k = T..half+1
        ln[k] = math.log(float(row.norm()))
        row = row @ Js[k - 1]
    d = np.array([T - k for k in sorted(ln)], dtype=float)
    y = np.array([ln[k] for k in sorted(ln)])
    slope = np.polyfit(d, y, 1)[0]
    assert m["gradient_rate"] == pytest.approx(slope, abs=1e-9)
    assert m["q_star_measured"] == pytest.approx(float(torch.stack(a2[half:]).pow(2).mean()), rel=1e-12)
    chi = _chi1_quad(1.7, 0.4)
    assert m["chi1"] == pytest.approx(chi, rel=1e-6)
    assert m["theory_rate"] == pytest.approx(0.5 * math.log(chi), abs=1e-6)
    assert run_point(cfg)["gradient_rate"] == m["gradient_rate"]  # deterministic from the config


@pytest.mark.slow
@pytest.mark.parametrize("sw,tol", [(0.8, 0.05), (1.5, 0.03), (2.0, 0.03), (3.0, 0.03)])
def test_gradient_slope_at_n400_against_half_ln_chi1(sw, tol):
    """N = 400, sigma_b = 0, 2 networks: the measured per-step gradient slope against (1/2) ln chi_1 (quadrature here).
    Tolerance: finite N (the spectral radius of W exceeds sigma_w by a few % at N = 400 in the ordered phase, where
    the rate is ln rho(W): 0.05) and finite T in the chaotic phase (0.03, the issue's bound)."""
    rates = [run_point({"sigma_w": sw, "sigma_b": 0.0, "hidden": 400, "length": 400, "seed": s})["gradient_rate"]
             for s in range(2)]
    assert np.mean(rates) == pytest.approx(0.5 * math.log(_chi1_quad(sw, 0.0)), abs=tol)


def _rows(f):
    """Store-like rows on a 5 x 3 grid with 2 seeds whose gradient rate is f(sw, sb) + seed noise +-0.01."""
    rows = []
    for sw in (1.0, 1.5, 2.0, 2.5, 3.0):
        for sb in (0.0, 0.5, 1.0):
            for seed, e in ((0, 0.01), (1, -0.01)):
                rows.append({"status": "done", "config": {"sigma_w": sw, "sigma_b": sb, "seed": seed},
                             "metrics": {"gradient_rate": f(sw, sb) + e, "lyapunov_max": f(sw, sb), "theory_rate": 0.0,
                                         "chi1": 1.0, "critical_sigma_w2": 1.0}})
    rows.append({"status": "failed", "config": {"sigma_w": 9.0, "sigma_b": 0.0, "seed": 0}, "metrics": None})
    return rows


def test_phase_table_and_crossing_on_a_linear_field():
    table = phase_table(_rows(lambda sw, sb: sw - (1.2 + sb)))  # zero crossing at sigma_w = 1.2 + sigma_b
    assert len(table) == 15 and all(r.seeds == 2 for r in table)
    assert table[0] == PhaseRow(1.0, 0.0, 2, pytest.approx(-0.2), pytest.approx(-0.2), 0.0, 1.0, 1.0)
    cross = dict(measured_crossing(table))
    assert cross[0.0] == pytest.approx(1.2) and cross[0.5] == pytest.approx(1.7) and cross[1.0] == pytest.approx(2.2)


def test_plot_phase_draws_both_lines(tmp_path):
    table = phase_table(_rows(lambda sw, sb: sw - (1.2 + sb)))
    fig = plot_phase(table, tmp_path / "p.png")
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
    for ax in fig.axes[::2][:2]:
        gids = {ln.get_gid() for ln in ax.lines}
        assert {"measured", "theory"} <= gids
        theory = next(ln for ln in ax.lines if ln.get_gid() == "theory")
        xs, ys = theory.get_data()
        assert xs[0] == pytest.approx(math.sqrt(1.0), abs=1e-6) and ys[0] == 0.0  # sigma_b = 0: sigma_w^2 = 1


def _cli(*argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def test_cli_phase_theory_results_end_to_end(tmp_path):
    db = tmp_path / "r.sqlite"
    args = ("phase", "--sigma-w", "0.8,1.6,2.4", "--sigma-b", "0,0.5", "--hidden", "16", "--length", "40",
            "--seeds", "2", "--db", db, "--workers", "1", "--plot", tmp_path / "ph.png", "--json")
    code, out, err = _cli(*args)
    assert code == 0, err
    d = json.loads(out)
    assert d["sweep"]["total"] == 12 and d["sweep"]["done"] == 12 and len(d["points"]) == 6
    assert (tmp_path / "ph.png").stat().st_size > 10_000
    for p in d["points"]:
        chi = _chi1_quad(p["sigma_w"], p["sigma_b"])
        assert p["chi1"] == pytest.approx(chi, rel=1e-6)
    code, out, _ = _cli(*args)  # resumed: nothing to run
    assert code == 0 and json.loads(out)["sweep"]["skipped"] == 12 and json.loads(out)["sweep"]["done"] == 0
    code, out, _ = _cli("results", "--db", db, "--csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 12 and {r["status"] for r in rows} == {"done"}
    assert {float(r["config.sigma_w"]) for r in rows} == {0.8, 1.6, 2.4}
    code, out, _ = _cli("theory", "--sigma-w", "1.5", "--sigma-b", "0.3", "--json")
    t = json.loads(out)
    assert code == 0 and t["chi1"] == pytest.approx(_chi1_quad(1.5, 0.3), rel=1e-6)
    assert t["predicted_rate_per_step"] == pytest.approx(0.5 * math.log(t["chi1"]), abs=1e-12)
    assert set(t) >= {"q_star", "chi1", "xi", "critical_sigma_w2", "predicted_rate_per_step"}


@pytest.mark.parametrize("argv,expected", [
    (["phase", "--sigma-w", "a:b", "--workers", "1"], "expected START:STOP:COUNT"),
    (["phase", "--sigma-w", "-1,1", "--workers", "1"], "sigma-w: expected positive values"),
    (["phase", "--scheduler", "http://x", "--sigma-w", "1,2", "--sigma-b", "0,1"], "scheduler: expected"),
    (["theory", "--sigma-w", "0"], "sigma-w: expected a positive"),
    (["results", "--db", "/nonexistent/x.sqlite"], "db: expected an existing results file"),
])
def test_cli_bad_input(tmp_path, argv, expected):
    code, out, err = _cli(*argv, *(["--db", tmp_path / "x.sqlite"] if argv[0] == "phase" else []))
    assert code == 2 and err.count("\n") == 1 and expected in err, err


def test_critical_line_against_the_crossings_and_quadrature():
    from rnnscope.dynamics.phase import critical_line
    table = phase_table(_rows(lambda sw, sb: sw - (1.2 + sb)))  # both fields cross 0 at sigma_w = 1.2 + sigma_b
    line = critical_line(table, "tanh")
    assert [c["sigma_b"] for c in line] == [0.0, 0.5, 1.0]
    for c in line:
        assert c["measured_sigma_w"] == pytest.approx(1.2 + c["sigma_b"])
        assert c["lyapunov_sigma_w"] == pytest.approx(1.2 + c["sigma_b"])
        assert _chi1_quad(c["theory_sigma_w"], c["sigma_b"]) == pytest.approx(1.0, abs=1e-6)  # chi_1 = 1 there
    assert line[0]["theory_sigma_w"] == pytest.approx(1.0, abs=1e-6)  # sigma_b = 0: sigma_w^2 = 1 / phi'(0)^2
    # a Lyapunov field that never crosses: None beside the gradient's crossing
    rows = _rows(lambda sw, sb: sw - 2.2)
    for r in rows:
        if r["metrics"]:
            r["metrics"]["lyapunov_max"] = -1.0
    assert [c["lyapunov_sigma_w"] for c in critical_line(phase_table(rows))] == [None, None, None]
