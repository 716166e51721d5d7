"""The seeds' figures, recomputed: "as the source computes them" and "correctly", side by side.

`reproduce(seed, out_dir)` writes <name>.png (dpi 120), <name>.svg and <name>.txt (title and caption)
for every figure of a seed and returns one Reproduction per figure, with the numbers behind it.

Seed 002 (NumPy notebook; t = 20, n = 5, sigmoid, RandomState(12345) drawn in the notebook's order).
The notebook's product for step k (k = 1..t, t - k + 1 factors; column i of h, x is its step i + 1):

    as written   p = 1;  p *= W_hh^T @ np.diag(sigmoid'(W_hh h[:,i] + W_hx x[:,i] + b_h)),  i = t-1..k-1
                 b_h is (5, 1), so the argument broadcasts to 5 x 5 with diagonal a_i; np.diag extracts it;
                 W_hh^T @ sigma'(a_i) is a vector and `*=` is element-wise:  p = Hadamard_i (W_hh^T sigma'(a_i))
    matrix       P = W_hh^T D_{t-1} W_hh^T D_{t-2} ... W_hh^T D_{k-1},   D_i = diag(sigma'(a_i)), b_h a vector
    true states  h_0 = 0,  a_i = W_hh h_{i-1} + W_hx x_i + b_h,  h_i = sigma(a_i),  i = 1..t
                 dh_t/dh_{k-1} = D_t W_hh  D_{t-1} W_hh ... D_k W_hh     (column convention, D_i = diag sigma'(a_i))
    plotted: the maximum entry; the log figure: log10 ||.||_2 (as written: log10 max_j |p_j|) against the
    Pascanu bound ||prod|| <= (gamma sigma_max(W_hh))^(t-k+1), gamma = 1/4.

Seed 000: scalar powers |W^k| (-> 0 iff |W| < 1) and ||W^k||_2 of a normal and a non-normal 2 x 2 matrix
with the same eigenvalues (transient growth although rho < 1).

Seed 001 (Pal form h_t = W s(h_{t-1}) + U x_t + b, s = tanh, gamma = 1), Theorem 2's term
    F(k0, t) = (prod_{r=k0+1}^{t} W diag(s'(h_{r-1}))) HV(s(h_{k0-1})),  HV(v) = I_n (x) v^T  (n, n^2)
    ||F(k0, t)||_2 <= (gamma sigma_max(W))^(t-k0) ||s(h_{k0-1})||_2     (not with rho(W) for non-normal W)

Seed 003: sigma' and tanh' by autograd (maxima 1/4 and 1, both at a = 0), and for h_t = tanh(W h_{t-1} + U x_t)
    ||dh_t/dh_k||_2 <= (gamma ||W||_2)^(t-k).

Example:
    >>> reps = reproduce("002", "figures")                 # doctest: +SKIP
    >>> [r.name for r in reps][:2]                         # doctest: +SKIP
    ['002-vanishing-example', '002-vanishing-example-log']
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..core.cells import ElmanCell, PalCell
from ..core.errors import InputError
from ..core.files import output_folder
from ..gradients.flow import jacobian_profile
from ..core.build import recurrent_matrix
from ..core.results import jsonable
from ..gradients.rtrl import hv
from ..core.unroll import unroll

if TYPE_CHECKING:  # matplotlib is imported when a figure is drawn, not with the package
    from matplotlib.figure import Figure

__all__ = ["Reproduction", "SEED_FILES", "FIGURE_SEEDS", "notebook_002", "reproduce"]

SEED_FILES = {"000": "000_0183f85bd5403c3d.txt", "001": "001_28bb9cc7f1f7e16d.txt",
              "002": "002_87b582d44353f60f.txt", "003": "003_442f2c9f526e9ba0.txt",
              "004": "004_fafa8053bfab969c.txt"}  # the seed documents (shared/seeds/)
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
    makers = {"000": _seed_000, "001": _seed_001, "002": _seed_002, "003": _seed_003}
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
    from ..core.plots import new_figure  # matplotlib only when a figure is drawn
    return new_figure(size)


def _write(out: Path, seed_file, name, title, caption, numbers, fig) -> Reproduction:
    png, svg, txt = f"{name}.png", f"{name}.svg", f"{name}.txt"
    try:
        fig.savefig(out / png, format="png", dpi=120)
        fig.savefig(out / svg, format="svg", metadata={"Date": None})
        (out / txt).write_text(f"{title}\n\n{caption}\n\nSource: shared/seeds/{seed_file}\n", encoding="utf-8")
    except OSError as e:
        raise InputError(f"out: expected a writable folder, got {str(out)!r} ({type(e).__name__}: {e})") from None
    return Reproduction(seed_file, name, title, caption, png, svg, txt, jsonable(numbers))


def _g(x: float) -> str:
    return f"{x:.3g}"


# ----------------------------------------------------------------------------------------------- seed 002

def _sigmoid(x):
    return 1 / (1 + np.exp(-x))  # the notebook's sigmoid


def _sigmoid_gradient(x):
    return _sigmoid(x) * (1 - _sigmoid(x))  # the notebook's sigmoid_gradient


def notebook_002(example: int) -> dict:
    """The notebook's random checkpoint, drawn in its order from its seed, without global state."""
    rs = np.random.RandomState(12345)  # np.random.seed(12345)
    t = 20
    if example == 1:  # "vanishing": eigenvalues lower than 4
        h, x = rs.randn(5, t), rs.randn(5, t)  # (5, t) random "states" and inputs
        b_h, W_hx = rs.randn(5, 1), rs.randn(5, 5)  # (5, 1) bias: a column, not a vector
        eig = rs.rand(5) * 4
    else:  # "exploding": eigenvalues greater than 4
        h, x, b_h = np.zeros((5, t)), np.zeros((5, t)), np.zeros((5, 1))
        W_hx = rs.randn(5, 5)
        eig = 4 + rs.rand(5) * 10
    Q = rs.randn(5, 5)  # random eigenvectors
    W_hh = Q @ np.diag(eig) @ np.linalg.inv(Q)  # (5, 5)
    return dict(t=t, h=h, x=x, b_h=b_h, W_hx=W_hx, eig=eig, W_hh=W_hh)


def _as_written(d: dict) -> np.ndarray:
    """product[k-1] = the notebook's prod(k), k = 1..t, by executing its code: (t, 5) Hadamard products."""
    t, h, x, b_h, W_hx, W_hh = d["t"], d["h"], d["x"], d["b_h"], d["W_hx"], d["W_hh"]

    def prod(k):  # the notebook's function, verbatim
        p = 1
        for i in range(t - 1, k - 2, -1):
            p *= W_hh.T @ np.diag(_sigmoid_gradient(W_hh @ h[:, i] + W_hx @ x[:, i] + b_h))  # (5,) *= (5,)
        return p

    return np.stack([prod(k + 1) for k in range(t)])  # (t, 5)


def _matrix_products(d: dict) -> np.ndarray:
    """P_k = W^T D_{t-1} ... W^T D_{k-1} (notebook's h and order, b_h a vector), k = 1..t: (t, 5, 5)."""
    t, h, x, W_hx, W_hh = d["t"], d["h"], d["x"], d["W_hx"], d["W_hh"]
    b = d["b_h"][:, 0]  # (5,)
    P, out = np.eye(5), np.empty((t, 5, 5))
    for i in range(t - 1, -1, -1):  # i = t-1 .. 0; the product for k = i + 1 ends with factor i
        P = P @ (W_hh.T @ np.diag(_sigmoid_gradient(W_hh @ h[:, i] + W_hx @ x[:, i] + b)))  # (5, 5)
        out[i] = P
    return out


def _true_products(d: dict) -> tuple[np.ndarray, np.ndarray]:
    """(dh_t/dh_{k-1} for k = 1..t (t, 5, 5), pre-activations a_1..a_t (t, 5)) on the recurrence's own states."""
    t, x, W_hx, W_hh = d["t"], d["x"], d["W_hx"], d["W_hh"]
    b = d["b_h"][:, 0]  # (5,)
    h, a = np.zeros(5), np.empty((t, 5))  # h_0 = 0
    for i in range(1, t + 1):
        a[i - 1] = W_hh @ h + W_hx @ x[:, i - 1] + b  # a_i (5,), x_i = x[:, i-1]
        h = _sigmoid(a[i - 1])  # h_i
    P, out = np.eye(5), np.empty((t, 5, 5))
    for k in range(t, 0, -1):  # dh_t/dh_{k-1} = (dh_t/dh_k) D_k W_hh
        P = P @ (np.diag(_sigmoid_gradient(a[k - 1])) @ W_hh)  # (5, 5)
        out[k - 1] = P
    return out, a


def _spec(P: np.ndarray) -> np.ndarray:
    return np.linalg.norm(P, 2, axis=(-2, -1))  # spectral norms (t,)


def _seed_002():
    figs = []
    for ex, slug, label in ((1, "vanishing", 'eigenvalues drawn in [0, 4): "vanishing"'),
                            (2, "exploding", 'eigenvalues drawn in [4, 14): "exploding"')):
        d = notebook_002(ex)
        t, W = d["t"], d["W_hh"]
        k = np.arange(1, t + 1)  # (t,)
        rho = float(np.abs(np.linalg.eigvals(W)).max())
        smax = float(np.linalg.svd(W, compute_uv=False)[0])
        hada = _as_written(d)  # (t, 5)
        mat = _matrix_products(d)  # (t, 5, 5)
        true, a = _true_products(d)  # (t, 5, 5), (t, 5)
        ways = {
            "as_written": dict(values=hada.max(1), norms=np.linalg.norm(hada, axis=1), max_abs=np.abs(hada).max(1),
                               vectors=hada),
            "matrix_notebook_h": dict(values=mat.max((1, 2)), norms=_spec(mat)),
            "true_states": dict(values=true.max((1, 2)), norms=_spec(true)),
        }
        for w in ways.values():
            w["norm_k1"] = float(w["norms"][0])
        bound = (t - k + 1) * math.log10(smax / 4)  # Pascanu: (gamma sigma_max)^(t-k+1), gamma = 1/4
        dmax = _sigmoid_gradient(a).max(1)  # max_j sigma'(a_i)_j, i = 1..t
        numbers = dict(example=ex, t=t, gamma=0.25, eigenvalues_drawn=d["eig"], rho=rho, sigma_max=smax,
                       **ways, max_dsigmoid_per_step=dmax, min_abs_preact_per_step=np.abs(a).min(1),
                       log10_pascanu_bound=bound)
        name = f"002-{slug}-example"
        h_word = "random h" if ex == 1 else "h = 0"
        title = f"Seed 002, example {ex} ({label}): rho(W_hh) = {rho:.4g}, sigma_max(W_hh) = {smax:.4g}"
        figs.append((name, title, _caption_002(ex, numbers), numbers,
                     _fig_002_panels(title, k, ways, h_word)))
        log_numbers = dict(t=t, rho=rho, sigma_max=smax, log10_as_written_max_abs=np.log10(ways["as_written"]["max_abs"]),
                           log10_matrix_notebook_h=np.log10(ways["matrix_notebook_h"]["norms"]),
                           log10_true_states=np.log10(ways["true_states"]["norms"]), log10_pascanu_bound=bound,
                           log10_eigenvalue_reading=(t - k + 1) * math.log10(rho / 4))
        figs.append((f"{name}-log", title + " (log10 of the norms)", _caption_002_log(ex, log_numbers), log_numbers,
                     _fig_002_log(title, k, log_numbers, h_word)))
    figs.append(_fig_002_tangents())
    return figs


def _fig_002_panels(title, k, ways, h_word) -> Figure:
    fig = _figure((16, 5.2))
    labels = {"as_written": "(1) as written: Hadamard product of vectors",
              "matrix_notebook_h": f"(2) matrix products, the notebook's {h_word}",
              "true_states": "(3) true states: dh_t/dh_(k-1) of the recurrence"}
    for j, (key, w) in enumerate(ways.items()):
        ax = fig.add_subplot(1, 3, j + 1)
        ax.plot(k, w["values"])  # the notebook's plot: product[k] against k
        ax.set_title(labels[key] + "\nMaximum contribution to the gradient at step $k$", fontsize=10)
        ax.set_xlabel("k")
        ax.set_ylabel("Maximum contribution")
        ax.set_xticks(k)
        ax.tick_params(labelsize=8)
        what, entry = (("||p||_2 (a vector)", "max (signed) entry") if key == "as_written"
                       else ("||product||_2", "max entry"))
        right = int(np.argmax(w["values"])) < len(k) / 2  # the text goes where the curve is low
        ax.text(0.97 if right else 0.03, 0.95, f"at k = 1: {what} = {w['norm_k1']:.3g}\n{entry} = {w['values'][0]:.3g}",
                transform=ax.transAxes, ha="right" if right else "left", va="top", fontsize=9,
                bbox=dict(boxstyle="round", fc="white", ec="0.7", alpha=0.9))
    fig.suptitle(title, fontsize=12)
    return fig


def _fig_002_log(title, k, n, h_word) -> Figure:
    fig = _figure((8.5, 5.4))
    ax = fig.add_subplot()
    ax.plot(k, n["log10_as_written_max_abs"], "o-", ms=3, label="(1) as written: log10 max_j |p_j|")
    ax.plot(k, n["log10_matrix_notebook_h"], "s-", ms=3, label=f"(2) matrix products, notebook's {h_word}: log10 ||P||_2")
    ax.plot(k, n["log10_true_states"], "^-", ms=3, label="(3) true states: log10 ||dh_t/dh_(k-1)||_2")
    ax.plot(k, n["log10_pascanu_bound"], "k--", lw=1.2,
            label=f"Pascanu bound (t-k+1) log10(sigma_max/4), sigma_max = {n['sigma_max']:.4g}")
    ax.plot(k, n["log10_eigenvalue_reading"], ":", color="C3", lw=1.4,
            label=f"eigenvalue reading (t-k+1) log10(rho/4), rho = {n['rho']:.4g} (not a bound)")
    ax.set_xticks(k)
    ax.set_xlabel(f"k (the product has t - k + 1 factors; t = {n['t']})")
    ax.set_ylabel("log10 of the norm")
    ax.set_title(title.replace(": rho", ":\nrho"), fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return fig


def _caption_002(ex: int, n: dict) -> str:
    aw, mt, tr = n["as_written"], n["matrix_notebook_h"], n["true_states"]
    common = (
        f"Seed 002's notebook, example {ex}, redrawn from RandomState(12345) in the notebook's order (t = 20, n = 5, "
        "sigmoid). Every panel plots what the notebook plots: the maximum entry of the product for step k against "
        "k = 1..20 on a linear axis (the product at k has t - k + 1 factors). "
        "(1) As written, the notebook's own code: b_h has shape (5, 1), so W_hh@h[:,i] + W_hx@x[:,i] + b_h broadcasts "
        "to a 5 x 5 matrix whose diagonal happens to be the pre-activation a_i; np.diag of a 5 x 5 matrix extracts that "
        "diagonal instead of building diag(sigma'(a_i)), so W_hh.T @ np.diag(...) is the vector W_hh^T sigma'(a_i), and "
        "p *= multiplies these vectors element by element. The plotted 'product' is a Hadamard product of vectors, "
        "not a Jacobian product. (2) The same loop as matrix products (b_h a vector, np.diag building the diagonal "
        "matrix, p = p @ (W_hh^T diag(sigma'(a_i))) from the identity, factor i = t on the left as the notebook "
        "orders them, the reverse of the chain rule's order for the row form). (3) The true Jacobian product "
        "dh_t/dh_(k-1) = D_t W_hh ... D_k W_hh on the states of the recurrence itself (h_0 = 0, h_i = sigmoid(W_hh "
        "h_(i-1) + W_hx x_i + b_h)); the notebook's h is "
        + ("random noise, not states of the recurrence. " if ex == 1
           else "0 at every step, while the recurrence leaves 0 after its first step. ")
        + f"Spectral norm at k = 1: (1) ||p||_2 = {_g(aw['norm_k1'])} (a vector), (2) {_g(mt['norm_k1'])}, "
        f"(3) {_g(tr['norm_k1'])}. ")
    rho, smax = n["rho"], n["sigma_max"]
    if ex == 1:
        return common + (
            f"The notebook's condition is stated with eigenvalues: rho(W_hh) = {rho:.3g} < 4, but sigma_max(W_hh) = "
            f"{smax:.4g} > 4 (W_hh = Q diag(eig) Q^-1 is far from normal), so Pascanu's sufficient condition for "
            f"vanishing, sigma_max < 1/gamma = 4, does not hold; the bound (sigma_max/4)^(t-k+1) grows. The "
            f"products do vanish here, (3) falls to {_g(tr['norm_k1'])} at k = 1, but the eigenvalue test does not "
            "establish it: the condition should be read with singular values.")
    dm = n["max_dsigmoid_per_step"]
    ma = n["min_abs_preact_per_step"]
    return common + (
        f"Here h = 0, x = 0 and b_h = 0: every factor has sigma'(0) = 1/4, so (1) is the element-wise power of the "
        f"vector W_hh^T (1/4, ..., 1/4) and (2) the matrix power (W_hh^T/4)^(t-k+1), which grows like (rho/4)^(t-k+1) with "
        f"rho = {rho:.4g}: that is the notebook's 'explosion'. On the true states the same weights do the opposite: "
        f"from h_0 = 0, a_1 = 0 and h_1 = 1/2, then every unit saturates (min_j |a_i,j| = {ma[1]:.3g} at step 2 and "
        f">= {min(ma[2:]):.3g} from step 3 on), sigma'(a_i) <= {dm[1]:.2g} at step 2 and <= {max(dm[2:]):.2g} "
        f"afterwards, and the true Jacobian product vanishes: ||dh_t/dh_(k-1)||_2 = {_g(tr['norms'][-1])} for one "
        f"factor (k = t) and {_g(tr['norm_k1'])} at k = 1. The notebook's 'exploding' example only explodes because "
        f"h is frozen where every unit sits at the sigmoid's steepest point. sigma_max = {smax:.4g} > 4 is necessary "
        "for exploding, not sufficient, and the condition should be read with singular values, not eigenvalues.")


def _caption_002_log(ex: int, n: dict) -> str:
    tr = n["log10_true_states"]
    return (
        f"Seed 002, example {ex}, on a log axis: log10 of the spectral norm of the matrix products (2) and of the true "
        "Jacobian products (3), and log10 of the largest |entry| of the notebook's as-written Hadamard vector (1), "
        "against k (t - k + 1 factors). The dashed line is the Pascanu bound (t - k + 1) log10(sigma_max/4): every "
        "product of factors W_hh^T diag(sigma'(.)) has norm at most (sigma_max/4)^(t-k+1) whatever h is, and both "
        f"matrix curves lie below it (sigma_max = {n['sigma_max']:.4g}). The dotted line is the notebook's eigenvalue "
        f"reading (rho/4)^(t-k+1) with rho = {n['rho']:.4g}, which is not a bound for a non-normal W_hh. "
        f"The true-state products reach log10 norm {tr[0]:.3g} at k = 1 "
        + ("(vanishing)." if ex == 1 else "(vanishing: the units saturate), while (1) and (2), computed at h = 0, grow."))


def _fig_002_tangents():
    x = np.linspace(-6, 6, 100)  # the notebook's data
    fine = np.linspace(-6, 6, 120001)  # step 1e-4, contains 0
    dfine = _sigmoid_gradient(fine)
    numbers = dict(max_sigmoid_gradient=float(dfine.max()), argmax=float(fine[np.argmax(dfine)]),
                   tangent_points=[-4.0, -2.0, 0.0, 2.0, 4.0],
                   tangent_gradients=[float(_sigmoid_gradient(v)) for v in (-4.0, -2.0, 0.0, 2.0, 4.0)])
    fig = _figure((7.5, 5.4))
    ax = fig.add_subplot()
    ax.plot(x, _sigmoid(x), label="sigmoid(x)")
    ax.plot(x, _sigmoid_gradient(x), color="C2", label="sigmoid'(x) = sigmoid(x)(1 - sigmoid(x))")
    offsets = {-4.0: (0, 10, "center"), -2.0: (-6, 14, "right"), 0.0: (-10, 10, "right"), 2.0: (10, -14, "left"),
               4.0: (0, -14, "center")}
    for x_tan, (dx, dy, ha) in offsets.items():  # the notebook's plot_func(x_tan) for five slider values
        y_tan, span = _sigmoid(x_tan), 4
        data_tan = np.linspace(x_tan - span, x_tan + span)
        gradient_tan = _sigmoid_gradient(x_tan)
        ax.plot(x_tan, y_tan, marker="o", color="orange")
        ax.plot(data_tan, y_tan + gradient_tan * (data_tan - x_tan), linestyle="--", color="orange", lw=1)
        ax.annotate(f"Gradient: {gradient_tan:.4f}", (x_tan, y_tan), xytext=(dx, dy), textcoords="offset points",
                    ha=ha, va="center", fontsize=8, bbox=dict(boxstyle="round,pad=0.2", fc="white", ec="none", alpha=0.85))
    ax.set_xlim((-6, 6))
    ax.set_ylim((-0.5, 1.5))
    ax.set_title("Sigmoid Function and Gradient")
    ax.set_xlabel("$x$")
    ax.set_ylabel("sigmoid($x$)")
    ax.legend(loc="upper left", fontsize=8)
    caption = (
        "Seed 002's interactive cell, drawn for the slider values x_tan = -4, -2, 0, 2, 4 at once: the sigmoid on "
        "np.linspace(-6, 6, 100), its tangent lines (span 4, dashed, orange markers) labelled with the notebook's text "
        "'Gradient: sigmoid'(x_tan)', and the derivative sigmoid(x)(1 - sigmoid(x)) itself (green), which the notebook "
        f"only quotes. On a grid of step 1e-4 the derivative's maximum is {numbers['max_sigmoid_gradient']:.6g} at "
        f"x = {numbers['argmax']:.3g}: gamma = 1/4, the constant of the notebook's condition 1/gamma = 4. The labels "
        "are moved a few points off the tangent points (the notebook writes them at the point) so that they stay readable.")
    return "002-sigmoid-tangents", "Seed 002: the sigmoid, its derivative and tangent lines", caption, numbers, fig


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
