"""The seeds' figures, recomputed: "as the source computes them" and "correctly", side by side.

`reproduce(seed, out_dir)` writes <name>.png (dpi 120), <name>.svg and <name>.txt (title, caption and the
seed's file name) for every figure of a seed ("000".."003", its file name, or "all"; seed 004 has no figure)
and returns one Reproduction per figure, with the numbers behind it.

Seed 000_0183f85bd5403c3d.txt: scalar powers |W^k| (-> 0 iff |W| < 1) and ||W^k||_2 of a normal and a
non-normal 2 x 2 matrix with the same eigenvalues (transient growth although rho < 1).

Seed 001_28bb9cc7f1f7e16d.txt (Pal form h_t = W s(h_{t-1}) + U x_t + b, s = tanh, gamma = 1), Theorem 2's term
    F(k0, t) = (prod_{r=k0+1}^{t} W diag(s'(h_{r-1}))) HV(s(h_{k0-1})),  HV(v) = I_n (x) v^T  (n, n^2)
    ||F(k0, t)||_2 <= (gamma sigma_max(W))^(t-k0) ||s(h_{k0-1})||_2     (not with rho(W) for non-normal W)

Seed 002_87b582d44353f60f.txt (a NumPy notebook): its product three ways, as written, as matrices, on the
true states (seeds.reproduce_002, where the equations are).

Seed 003_442f2c9f526e9ba0.txt: sigma' and tanh' by autograd (maxima 1/4 and 1, both at a = 0), and for
h_t = tanh(W h_{t-1} + U x_t)
    ||dh_t/dh_k||_2 <= (gamma ||W||_2)^(t-k).

Example:
    >>> import os, tempfile
    >>> d = tempfile.mkdtemp()
    >>> [r.name for r in reproduce("001", d)]
    ['001-theorem2']
    >>> sorted(os.listdir(d))
    ['001-theorem2.png', '001-theorem2.svg', '001-theorem2.txt']
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ..core.build import recurrent_matrix
from ..core.cells import ElmanCell, PalCell
from ..core.errors import InputError
from ..core.files import output_folder
from ..core.results import jsonable
from ..core.unroll import unroll
from ..gradients.flow import jacobian_profile
from ..gradients.rtrl import hv
from .documents import SEED_FILES
from .reproduce_002 import notebook_002, seed_002_figures

__all__ = ["Reproduction", "SEED_FILES", "FIGURE_SEEDS", "notebook_002", "reproduce"]

FIGURE_SEEDS = ("000", "001", "002", "003")  # those with a figure or a computation to reproduce (004 has none)


@dataclass(frozen=True)
class Reproduction:
    """One reproduced figure: its files (relative to out_dir), caption and the numbers behind it."""

    seed: str  # the seed's file name
    name: str  # slug: files are <name>.png, <name>.svg, <name>.txt
    title: str
    caption: str
    png: str
    svg: str
    caption_file: str
    numbers: dict

    def to_dict(self) -> dict:
        return jsonable(asdict(self))


def reproduce(seed: str, out_dir) -> list[Reproduction]:
    """Write the figures of seed "000".."003" (or its file name, or "all") into out_dir; return them."""
    keys = _seed_keys(seed)
    out = output_folder(out_dir)
    makers = {"000": _seed_000, "001": _seed_001, "002": seed_002_figures, "003": _seed_003}
    reps: list[Reproduction] = []
    for key in keys:
        for name, title, caption, numbers, fig in makers[key]():
            reps.append(_write(out, SEED_FILES[key], name, title, caption, numbers, fig))
    return reps


def _seed_keys(seed) -> list[str]:
    s = seed.strip() if isinstance(seed, str) else None
    if s == "all":
        return list(FIGURE_SEEDS)
    for key in FIGURE_SEEDS:
        file = SEED_FILES[key]
        if s in (key, file) or (s and Path(s).name == file):
            return [key]
    raise InputError(f"seed: expected one of {', '.join(FIGURE_SEEDS)}, all (or a seed file name), got {seed!r}"
                     + (" (seed 004 has no figure to reproduce; its claims run in `rnnscope claims`)"
                        if s in ("004", SEED_FILES["004"]) else ""))


# ----------------------------------------------------------------------------------------------- files

def _figure(size):
    from ..core.plots import new_figure  # matplotlib only when a figure is drawn (so too in reproduce_002)
    return new_figure(size)


def _write(out: Path, seed_file, name, title, caption, numbers, fig) -> Reproduction:
    png, svg, txt = f"{name}.png", f"{name}.svg", f"{name}.txt"
    try:
        fig.savefig(out / png, format="png", dpi=120)
        fig.savefig(out / svg, format="svg", metadata={"Date": None})
        (out / txt).write_text(f"{title}\n\n{caption}\n\nSource: the seed document {seed_file}\n", encoding="utf-8")
    except OSError as e:
        raise InputError(f"out: expected a writable folder, got {str(out)!r} ({type(e).__name__}: {e})") from None
    return Reproduction(seed_file, name, title, caption, png, svg, txt, jsonable(numbers))


# ----------------------------------------------------------------------------------------------- seed 000

def _seed_000():
    ks = np.arange(0, 51)  # (51,)
    scalars = [0.5, 0.9, 1.0, 1.1, 1.5, -0.9, -1.1]
    c = 5.0
    W_normal = np.diag([0.9, 0.8])  # normal: ||W^k||_2 = rho^k
    W_nonnormal = np.array([[0.9, c], [0.0, 0.8]])  # same eigenvalues, non-normal
    km = np.arange(0, 81)
    norms = {nm: np.array([np.linalg.norm(np.linalg.matrix_power(M, int(j)), 2) for j in km])  # (81,)
             for nm, M in (("normal", W_normal), ("nonnormal", W_nonnormal))}
    nn = norms["nonnormal"]
    peak_k = int(np.argmax(nn))
    above = np.nonzero(nn > 1)[0]
    numbers = dict(scalars=scalars, log10_abs_W_pow_50={str(w): 50 * math.log10(abs(w)) for w in scalars},
                   c=c, rho=float(np.abs(np.linalg.eigvals(W_nonnormal)).max()),
                   sigma_max_nonnormal=float(np.linalg.norm(W_nonnormal, 2)),
                   peak_norm=float(nn[peak_k]), peak_k=peak_k, last_k_norm_above_1=int(above[-1]) if above.size else None,
                   log10_norms_normal=np.log10(norms["normal"]), log10_norms_nonnormal=np.log10(nn))
    fig = _figure((14, 5.4))
    ax = fig.add_subplot(1, 2, 1)
    for j, w in enumerate(scalars):
        neg = w < 0
        ax.plot(ks, ks * math.log10(abs(w)), color=f"C{scalars.index(-w) if neg else j}", ls="--" if neg else "-",
                marker="o" if neg else None, markevery=5, ms=4, lw=1.6,
                label=f"W = {w:g}" + (f" (|W^k| = {-w:g}^k)" if neg else ""))
    ax.set_xlabel("k")
    ax.set_ylabel("log10 |W^k|")
    ax.set_title("Scalar W^k (seed 000): the condition is |W| < 1, not W < 1", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, ncol=2, loc="upper left")
    ax = fig.add_subplot(1, 2, 2)
    ax.plot(km, np.log10(norms["normal"]), label="normal: diag(0.9, 0.8), ||W^k||_2 = 0.9^k")
    ax.plot(km, np.log10(nn), label=f"non-normal: [[0.9, {c:g}], [0, 0.8]], same eigenvalues")
    ax.axhline(0, color="0.5", lw=0.8)
    ax.plot([peak_k], [math.log10(nn[peak_k])], "o", color="C1")
    ax.annotate(f"peak ||W^{peak_k}||_2 = {nn[peak_k]:.3g}", (peak_k, math.log10(nn[peak_k])), xytext=(12, 4),
                textcoords="offset points", fontsize=9)
    ax.set_xlabel("k")
    ax.set_ylabel("log10 ||W^k||_2")
    ax.set_title("Matrix W^k: rho(W) = 0.9 < 1 for both, transient growth for the non-normal one", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    caption = (
        "Seed 000 says that, with identity activation, dh_t/dh_(t-k) = W_hh^k and that for a scalar W^k -> 0 when "
        "W < 1 and -> infinity when W > 1. Left: log10 |W^k| for k = 0..50. The condition is on |W|: W = -1.1 < 1 "
        "grows in magnitude (|W^k| = 1.1^k, dashed with markers, on top of W = 1.1) and W = -0.9 decays like 0.9^k; "
        "W = 1 stays at 1. Right: for matrices the seed's 'use eigenvalues' is not enough. Both matrices have the "
        "eigenvalues 0.9 and 0.8 (rho = 0.9 < 1) and both products vanish eventually, but the non-normal one, "
        f"[[0.9, {c:g}], [0, 0.8]] with sigma_max = {numbers['sigma_max_nonnormal']:.3g}, first grows: ||W^k||_2 "
        f"peaks at {nn[peak_k]:.4g} at k = {peak_k} and stays above 1 until k = {numbers['last_k_norm_above_1']}. "
        "Each norm is computed from np.linalg.matrix_power; the diagonal (normal) matrix has ||W^k||_2 = 0.9^k exactly.")
    return [("000-powers", "Seed 000: W^k for scalars and for a normal and a non-normal matrix", caption, numbers, fig)]


# ----------------------------------------------------------------------------------------------- seed 001

def _nonnormal_setup(sigma_max: float, n: int = 8, T: int = 60, seed: int = 0):
    """W = sigma_max M / ||M||_2 with M = Q (I + N): Q Haar-orthogonal, N strictly upper triangular N(0, 1)
    (the perturbation that makes W non-normal, so rho(W) < sigma_max(W)); U = N(0, 1/n) (n, n); x_t ~ N(0, 0.5^2)."""
    gen = torch.Generator().manual_seed(seed)
    Q = recurrent_matrix(n, 1.0, "orthogonal", gen)  # (n, n)
    N = torch.triu(torch.randn(n, n, generator=gen, dtype=torch.float64), diagonal=1)  # (n, n)
    M = Q @ (torch.eye(n, dtype=torch.float64) + N)
    W = sigma_max * M / torch.linalg.matrix_norm(M, 2)  # (n, n), sigma_max(W) = sigma_max
    U = torch.randn(n, n, generator=gen, dtype=torch.float64) / n**0.5  # (n, D = n)
    x = 0.5 * torch.randn(T, n, generator=gen, dtype=torch.float64)  # (T, D)
    return W, U, x


def _theorem2_terms(W: torch.Tensor, U: torch.Tensor, x: torch.Tensor, k0: int) -> tuple[torch.Tensor, float]:
    """(||F(k0, t)||_2 for t = k0+1..T (T - k0,), ||s(h_{k0-1})||_2), with
    F(k0, t) = (prod_{r=k0+1}^{t} W diag(tanh'(h_{r-1}))) HV(tanh(h_{k0-1}))   (n, n^2)."""
    n = W.shape[0]
    cell = PalCell(W, U, torch.zeros(n, dtype=W.dtype), "tanh")
    tr = unroll(cell, x)  # states h_0..h_T (T+1, 1, n)
    v = torch.tanh(tr.states[k0 - 1, 0])  # s(h_{k0-1}) (n,)
    H = hv(v)  # HV(v) = I (x) v^T (n, n^2)
    P, out = torch.eye(n, dtype=W.dtype), []
    for t in range(k0 + 1, tr.T + 1):
        P = cell.jacobian(tr.inputs[t - 1], tr.states[t - 1])[0] @ P  # J_t = W diag(s'(h_{t-1})) on the left
        out.append(torch.linalg.matrix_norm(P @ H, 2))  # ||F(k0, t)||_2
    return torch.stack(out), float(v.norm())


def _seed_001():
    n, T, k0, gamma, smax = 8, 60, 5, 1.0, 0.9
    W, U, x = _nonnormal_setup(smax, n, T)
    rho = float(torch.linalg.eigvals(W).abs().max())
    F_norms, v_norm = _theorem2_terms(W, U, x, k0)  # (T - k0,), ||s(h_{k0-1})||_2
    ts = np.arange(k0 + 1, T + 1)  # (T - k0,)
    measured = np.log10(F_norms.numpy())
    bound = (ts - k0) * math.log10(gamma * smax) + math.log10(v_norm)
    eigen = (ts - k0) * math.log10(gamma * rho) + math.log10(v_norm)
    above = ts[measured > eigen]
    numbers = dict(n=n, T=T, k0=k0, gamma=gamma, sigma_max=float(torch.linalg.matrix_norm(W, 2)), rho=rho,
                   norm_s_h_k0_minus_1=v_norm, t=ts, log10_F=measured, log10_bound=bound, log10_eigenvalue_reading=eigen,
                   max_log10_F_minus_bound=float((measured - bound).max()), t_where_F_exceeds_eigenvalue_reading=above)
    fig = _figure((8.5, 5.4))
    ax = fig.add_subplot()
    ax.plot(ts, measured, lw=2, label="measured log10 ||F(k0, t)||_2")
    ax.plot(ts, bound, "k--", lw=1.2,
            label=f"Theorem 2 with lambda_1 = sigma_max(W) = {smax:g}: (gamma sigma_max)^(t-k0) ||s(h_(k0-1))||")
    ax.plot(ts, eigen, ":", color="C3", lw=1.6,
            label=f"eigenvalue reading: (gamma rho(W))^(t-k0) ||s(h_(k0-1))||, rho = {rho:.3g}")
    ax.set_xlabel(f"t (k0 = {k0})")
    ax.set_ylabel("log10 of the norm")
    ax.set_title(f"Seed 001, Theorem 2: h_t = W tanh(h_(t-1)) + U x_t, n = {n}, non-normal W", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    if above.size:
        ax.annotate(f"above the eigenvalue reading\nfor t = {above[0]}..{above[-1]}",
                    (above[-1], measured[above[-1] - k0 - 1]),
                    xytext=(k0 + 15, 0.5 * (bound[15] + eigen[15])), fontsize=9, va="center",
                    arrowprops=dict(arrowstyle="->", color="0.4"))
    caption = (
        "Seed 001 (S. Pal, 2019), Theorem 2, measured. RNN in the seed's form h_t = W s(h_(t-1)) + U x_t with s = tanh "
        f"(gamma = 1), n = {n}, x_t ~ N(0, 0.5^2), T = {T}, h_0 = 0. W = 0.9 M / ||M||_2 with M = Q (I + N), Q a random "
        "orthogonal matrix and N a random strictly upper triangular matrix: sigma_max(W) = 0.9 < 1/gamma, and W is "
        f"non-normal with rho(W) = {rho:.3g}. The solid line is log10 ||F(k0, t)||_2 for k0 = {k0}, F(k0, t) = "
        "(prod_{r=k0+1}^{t} W diag(s'(h_(r-1)))) HV(s(h_(k0-1))), with the corrected HV(v) = I_n (x) v^T (the seed's "
        "every-block-v^T version is not the derivative), so ||HV(v)||_2 = ||v||_2. The theorem holds when lambda_1 is "
        "the largest singular value: the measured line stays below the dashed bound (gamma sigma_max)^(t-k0) "
        f"||s(h_(k0-1))||_2 (measured minus bound at most {numbers['max_log10_F_minus_bound']:.3g} in log10) and "
        "vanishes. The proof, "
        "however, writes ||sigma(h_(t-1))||^(t-k0) where gamma (the bound on ||diag(s'(.))||) is meant, and then "
        "bounds ||W|| by the largest |eigenvalue|, which is false for non-normal W: ||W||_2 = 0.9 > rho(W). Read with "
        "eigenvalues the bound would be the dotted line, and the measured norm exceeds it "
        + (f"for t = {above[0]}..{above[-1]}." if above.size else "nowhere here (this draw does not show it)."))
    return [("001-theorem2", "Seed 001: Theorem 2's bound against the measured ||F(k0, t)||", caption, numbers, fig)]


# ----------------------------------------------------------------------------------------------- seed 003

def _autograd_derivative(fn, a: torch.Tensor) -> torch.Tensor:
    a = a.detach().requires_grad_(True)
    (d,) = torch.autograd.grad(fn(a).sum(), a)  # elementwise fn: d/da_i sum_j fn(a_j) = fn'(a_i)
    return d


def _seed_003():
    a = torch.arange(-600, 601, dtype=torch.float64) / 100  # (1201,) a in [-6, 6], step 0.01, a[600] = 0 exactly
    ds = _autograd_derivative(torch.sigmoid, a)
    dt = _autograd_derivative(torch.tanh, a)
    s, th = torch.sigmoid(a), torch.tanh(a)
    i_s, i_t = int(ds.argmax()), int(dt.argmax())
    half = torch.tensor([0.5], dtype=torch.float64)
    seeds_a = float(_autograd_derivative(torch.sigmoid, half)[0])  # sigmoid'(1/2): the seed's "a_j = 1/2"
    numbers = dict(max_dsigmoid=float(ds[i_s]), argmax_dsigmoid=float(a[i_s]), sigmoid_at_argmax=float(s[i_s]),
                   max_dtanh=float(dt[i_t]), argmax_dtanh=float(a[i_t]), dsigmoid_at_a_one_half=seeds_a,
                   max_abs_diff_dsigmoid_closed_form=float((ds - s * (1 - s)).abs().max()),
                   max_abs_diff_dtanh_closed_form=float((dt - (1 - th**2)).abs().max()))
    fig = _figure((8.5, 5.2))
    ax = fig.add_subplot()
    ax.plot(a, ds, label="sigmoid'(a) (autograd)")
    ax.plot(a, dt, label="tanh'(a) (autograd)")
    ax.plot([0, 0], [numbers["max_dsigmoid"], numbers["max_dtanh"]], "ko", ms=5)
    ax.annotate(f"max {numbers['max_dsigmoid']:.4g} at a = 0 (sigmoid(a) = 1/2)", (0, numbers["max_dsigmoid"]),
                xytext=(-30, 26), textcoords="offset points", ha="right", fontsize=9, arrowprops=dict(arrowstyle="->"))
    ax.annotate(f"max {numbers['max_dtanh']:.4g} at a = 0", (0, numbers["max_dtanh"]), xytext=(20, -4),
                textcoords="offset points", fontsize=9)
    ax.plot([0.5], [seeds_a], "x", color="C3", ms=8, mew=2)
    ax.annotate(f"the seed's a = 1/2: sigmoid'(1/2) = {seeds_a:.4f}", (0.5, seeds_a), xytext=(30, 30),
                textcoords="offset points", fontsize=9, color="C3", arrowprops=dict(arrowstyle="->", color="C3"))
    ax.set_xlabel("pre-activation a")
    ax.set_ylabel("derivative")
    ax.set_title("Seed 003: sigmoid' <= 1/4 and tanh' <= 1, both maximal at a = 0", fontsize=10)
    ax.set_ylim(-0.05, 1.15)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=9, loc="upper left")
    diff = max(numbers["max_abs_diff_dsigmoid_closed_form"], numbers["max_abs_diff_dtanh_closed_form"])
    caption = (
        "Seed 003 bounds each backward factor by gamma = max s'. The curves are derivatives computed by torch.autograd on "
        "a in [-6, 6] (1201 points), not the closed forms; they agree with sigmoid(a)(1 - sigmoid(a)) and "
        f"1 - tanh(a)^2 to {diff:.2g}. "
        "The maxima are "
        f"{numbers['max_dsigmoid']:.6g} at a = {numbers['argmax_dsigmoid']:.2g} (where sigmoid(a) = "
        f"{numbers['sigmoid_at_argmax']:.3g}) and {numbers['max_dtanh']:.6g} at a = {numbers['argmax_dtanh']:.2g}. The "
        "seed's derivation differentiates s(1 - s) with respect to a_j as if it were a_j(1 - a_j), getting 1 - 2 a_j = 0, "
        "i.e. it confuses the value s with the pre-activation a: the maximum is at s = 1/2, i.e. a = 0. At the seed's "
        f"a = 1/2 the derivative is {seeds_a:.4f} (red cross), not 1/4; its 1/4 only comes out because 1/2 is substituted "
        "for s.")
    figs = [("003-derivatives", "Seed 003: the derivatives of sigmoid and tanh, by autograd", caption, numbers, fig)]
    figs.append(_fig_003_bound())
    return figs


def _fig_003_bound():
    n, T, gamma, lam = 8, 60, 1.0, 1.5
    W, U, x = _nonnormal_setup(lam, n, T)  # the matrix of seed 001's figure, rescaled to sigma_max = 1.5
    cell = ElmanCell(W, U, torch.zeros(n, dtype=W.dtype), "tanh")
    prof = jacobian_profile(cell, unroll(cell, x), T)  # log10 ||dh_T/dh_k||_2, k = 1..T
    measured = prof.log10_spectral[0].numpy()  # (T,)
    rho = float(torch.linalg.eigvals(W).abs().max())
    norm_W = float(torch.linalg.matrix_norm(W, 2))
    k = np.arange(1, T + 1)
    bound = (T - k) * math.log10(gamma * norm_W)
    eigen = (T - k) * math.log10(gamma * rho)
    above = k[:-1][measured[:-1] > eigen[:-1]]  # k < t (at k = t all three are log10 1 = 0)
    slope = float(measured[0] / (T - 1))  # mean log10 change per step back, k = t-1..1
    numbers = dict(n=n, t=T, gamma=gamma, norm_W=norm_W, rho=rho, k=k, log10_dh_t_dh_k=measured, log10_bound=bound,
                   log10_eigenvalue_reading=eigen, mean_log10_rate_per_step=slope,
                   max_log10_measured_minus_bound_k_lt_t=float((measured[:-1] - bound[:-1]).max()),
                   k_where_measured_exceeds_eigenvalue_reading=above)
    fig = _figure((8.5, 5.4))
    ax = fig.add_subplot()
    ax.plot(k, measured, lw=2, label="measured log10 ||dh_t/dh_k||_2")
    ax.plot(k, bound, "k--", lw=1.2, label=f"bound (t-k) log10(gamma ||W||_2), ||W||_2 = {norm_W:.3g}")
    ax.plot(k, eigen, ":", color="C3", lw=1.6, label=f"eigenvalue reading (t-k) log10(gamma rho(W)), rho = {rho:.3g}")
    ax.set_xlabel(f"k (t = {T})")
    ax.set_ylabel("log10 of the norm")
    ax.set_title(f"Seed 003: ||ds_t/ds_k|| <= (gamma lambda)^(t-k) for h_t = tanh(W h_(t-1) + U x_t), n = {n}", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    caption = (
        f"Seed 003's bound ||ds_t/ds_k|| <= (gamma lambda)^(t-k), for an Elman RNN h_t = tanh(W h_(t-1) + U x_t) with "
        f"n = {n}, x_t ~ N(0, 0.5^2), h_0 = 0, t = {T}. W is seed 001's non-normal matrix (Q (I + N), Q random orthogonal, "
        f"N random strictly upper triangular) rescaled to ||W||_2 = {norm_W:.3g}, so gamma lambda = "
        f"{gamma * norm_W:.3g} > 1 "
        f"with lambda = ||W||_2, while rho(W) = {rho:.3g}. The measured log10 ||dh_t/dh_k||_2 (rnnscope.gradients.flow."
        "jacobian_profile, exact products of diag(tanh'(a_j)) W) lies below the bound (t - k) log10(gamma ||W||_2) for "
        f"every k < t (measured minus bound at most {numbers['max_log10_measured_minus_bound_k_lt_t']:.3g} in log10): the "
        "bound holds with lambda = ||W||_2, the largest singular value, which the seed leaves as 'some limit' on W. With "
        "gamma lambda > 1 the bound does not force vanishing, and here the products vanish anyway, by a factor "
        f"10^({slope:.3g}) = {10 ** slope:.3g} per step on average, below gamma rho = {gamma * rho:.3g}. Still the "
        "eigenvalue "
        "reading (t - k) log10(gamma rho) is not a bound: the measured norm exceeds it "
        + (f"at k = {', '.join(str(v) for v in above)}." if above.size else "nowhere for this draw."))
    return "003-bound", "Seed 003: the bound (gamma lambda)^(t-k) with lambda = ||W||_2", caption, numbers, fig
