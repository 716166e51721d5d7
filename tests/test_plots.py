"""plots: the files are valid PNG/SVG/PDF, and the plotted lines carry exactly the profile's numbers.

The bound and the eigenvalue line are checked against sigma_max and rho computed here (svdvals, eigvals).
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import matplotlib.image
import numpy as np
import pytest
import torch

import rnnscope as rs
from rnnscope.core.plots import check_plot_path, plot_overview, plot_profile

F64 = torch.float64


def _cell(W, act="tanh", D=2, seed=0):
    gen = torch.Generator().manual_seed(seed)
    S = W.shape[0]
    return rs.ElmanCell(W, torch.randn(S, D, generator=gen, dtype=F64), torch.zeros(S, dtype=F64), act)


def _profile(W, act="tanh", T=25, B=3, seed=0):
    gen = torch.Generator().manual_seed(seed + 1)
    return rs.profile(_cell(W, act, seed=seed), torch.randn(T, B, 2, generator=gen, dtype=F64))


def _lines(fig):
    return {l.get_gid(): l for l in fig.axes[0].lines if l.get_gid() != "sequence"}


def _expected_with_gaps(y):
    y = np.asarray(y.tolist(), dtype=float)
    return np.where(np.isfinite(y), y, np.nan)


@pytest.mark.parametrize("ext", ["png", "svg", "pdf"])
def test_plot_profile_writes_valid_file_with_the_profile_numbers(tmp_path, ext):
    gen = torch.Generator().manual_seed(3)
    W = 1.3 * torch.randn(5, 5, generator=gen, dtype=F64) / 5**0.5
    p = _profile(W)
    path = tmp_path / f"profile.{ext}"
    fig = plot_profile(p, path)
    data = path.read_bytes()
    if ext == "png":
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        img = matplotlib.image.imread(path)
        assert img.ndim == 3 and img.shape[0] > 300 and img.shape[1] > 500
        assert float(img[..., :3].std()) > 0.01  # not a blank canvas
    elif ext == "svg":
        root = ET.fromstring(data)
        assert root.tag.endswith("svg")
        assert len(root.findall(".//{http://www.w3.org/2000/svg}path")) > 10
    else:
        assert data[:5] == b"%PDF-" and data.rstrip().endswith(b"%%EOF")
    lines = _lines(fig)
    assert set(lines) >= {"spectral", "frobenius", "adjoint", "bound"}
    k = np.arange(1, 26)
    for gid, y in (("spectral", p.log10_spectral), ("frobenius", p.log10_frobenius), ("adjoint", p.log10_adjoint)):
        assert np.array_equal(lines[gid].get_xdata(), k)
        assert np.array_equal(np.asarray(lines[gid].get_ydata(), dtype=float), _expected_with_gaps(y), equal_nan=True)
    sigma = float(torch.linalg.svdvals(W)[0])
    assert np.allclose(lines["bound"].get_ydata(), (25 - k) * math.log10(sigma), atol=1e-12)
    seq = [l for l in fig.axes[0].lines if l.get_gid() == "sequence"]
    assert len(seq) == 3
    for b, l in enumerate(seq):
        assert np.array_equal(np.asarray(l.get_ydata(), dtype=float), _expected_with_gaps(p.per_sequence_spectral[b]))
    ax = fig.axes[0]
    assert ax.get_xlabel().startswith("k") and "log10" in ax.get_ylabel()
    assert p.verdict in ax.get_title() and "elman (tanh)" in ax.get_title()
    assert len(ax.get_legend().get_texts()) >= 4


def test_eigenvalue_line_only_for_non_normal_weights(tmp_path):
    # upper-triangular: eigenvalues 0.5 (rho = 0.5 < 1), sigma_max > 1: the eigenvalue test's false promise
    W = 0.5 * torch.eye(4, dtype=F64) + torch.diag(torch.ones(3, dtype=F64), 1)
    rho = float(torch.linalg.eigvals(W).abs().max())
    sigma = float(torch.linalg.svdvals(W)[0])
    assert rho < 1 <= sigma
    p = _profile(W, T=12)
    lines = _lines(plot_profile(p, tmp_path / "nn.png"))
    k = np.arange(1, 13)
    assert np.allclose(lines["eigen"].get_ydata(), (12 - k) * math.log10(rho), atol=1e-12)
    assert np.allclose(lines["bound"].get_ydata(), (12 - k) * math.log10(sigma), atol=1e-12)
    # a symmetric W (normal: rho = sigma_max) has no such line
    S = torch.tensor([[0.5, 0.2], [0.2, 0.3]], dtype=F64)
    assert "eigen" not in _lines(plot_profile(_profile(S, T=8)))


def test_zero_norms_leave_gaps_and_sigmoid_bound_uses_gamma(tmp_path):
    p = _profile(torch.zeros(3, 3, dtype=F64), act="sigmoid", T=6)  # ds_t/ds_k = 0 for k < t: log10 = -inf
    assert torch.isinf(p.log10_spectral[:-1]).all()
    fig = plot_profile(p, tmp_path / "zero.png")
    y = np.asarray(_lines(fig)["spectral"].get_ydata(), dtype=float)
    assert np.isnan(y[:-1]).all() and y[-1] == 0.0
    assert (tmp_path / "zero.png").stat().st_size > 1000
    W = 2.0 * torch.eye(3, dtype=F64)  # gamma sigma_max = 0.25 * 2 = 0.5
    lines = _lines(plot_profile(_profile(W, act="sigmoid", T=5)))
    assert np.allclose(lines["bound"].get_ydata(), (5 - np.arange(1, 6)) * math.log10(0.5), atol=1e-12)


def test_gated_cell_has_no_bound(tmp_path):
    cell = rs.random_cell("lstm", hidden=3, input_size=2, seed=1)
    p = rs.profile(cell, torch.randn(7, 1, 2, dtype=F64, generator=torch.Generator().manual_seed(0)))
    fig = plot_profile(p, tmp_path / "lstm.pdf")
    assert "bound" not in _lines(fig) and "(h, c)" in fig.axes[0].get_title()
    assert np.array_equal(_lines(fig)["spectral"].get_ydata(), _expected_with_gaps(p.log10_spectral))


def test_overview_lines_are_the_profiles_against_distance(tmp_path):
    ps = {"a": _profile(0.5 * torch.eye(3, dtype=F64), T=10), "b": _profile(1.5 * torch.eye(3, dtype=F64), T=14)}
    fig = plot_overview(ps, tmp_path / "overview.png")
    assert (tmp_path / "overview.png").read_bytes()[:4] == b"\x89PNG"
    lines = {l.get_gid(): l for l in fig.axes[0].lines}
    for name, p in ps.items():
        d = np.arange(p.t - 1, -1, -1)
        assert np.array_equal(lines[f"spectral:{name}"].get_xdata(), d)
        assert np.array_equal(lines[f"spectral:{name}"].get_ydata(), _expected_with_gaps(p.log10_spectral))
    assert np.allclose(lines["bound:b"].get_ydata(), np.arange(13, -1, -1) * math.log10(1.5), atol=1e-12)


def test_bad_paths_are_refused(tmp_path):
    with pytest.raises(rs.InputError, match="expected a file name ending in .png, .svg, .pdf, got"):
        check_plot_path(tmp_path / "figure.jpg")
    with pytest.raises(rs.InputError, match="expected an existing folder"):
        check_plot_path(tmp_path / "missing" / "figure.png")
    p = _profile(0.5 * torch.eye(2, dtype=F64), T=4)
    with pytest.raises(rs.InputError, match="expected"):
        plot_profile(p, tmp_path / "figure.gif")
    assert not (tmp_path / "figure.gif").exists()
