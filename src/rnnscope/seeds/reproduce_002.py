"""Seed 002_87b582d44353f60f.txt (a NumPy notebook), re-executed: its random draws, its product three ways, its figures.

The notebook: t = 20, n = 5, sigmoid, RandomState(12345) drawn in its order (notebook_002 draws them
without global state). Its product for step k (k = 1..t, t - k + 1 factors; column i of h, x is its step i + 1):

    as written   p = 1;  p *= W_hh^T @ np.diag(sigmoid'(W_hh h[:,i] + W_hx x[:,i] + b_h)),  i = t-1..k-1
                 b_h is (5, 1), so the argument broadcasts to 5 x 5 with diagonal a_i; np.diag extracts it;
                 W_hh^T @ sigma'(a_i) is a vector and `*=` is element-wise:  p = Hadamard_i (W_hh^T sigma'(a_i))
    matrix       P = W_hh^T D_{t-1} W_hh^T D_{t-2} ... W_hh^T D_{k-1},   D_i = diag(sigma'(a_i)), b_h a vector
    true states  h_0 = 0,  a_i = W_hh h_{i-1} + W_hx x_i + b_h,  h_i = sigma(a_i),  i = 1..t
                 dh_t/dh_{k-1} = D_t W_hh  D_{t-1} W_hh ... D_k W_hh     (column convention, D_i = diag sigma'(a_i))

seed_002_figures() returns, per example, the notebook's plot (maximum entry against k) for the three ways and a
log companion (log10 ||.||_2; as written: log10 max_j |p_j|) against the Pascanu bound
||prod|| <= (gamma sigma_max(W_hh))^(t-k+1), gamma = 1/4; and the notebook's sigmoid with its tangent lines.
seeds.reproduce writes them to files; seeds.claims_002 judges the notebook's statements on the same draws.

Example:
    >>> d = notebook_002(1)
    >>> d["W_hh"].shape, d["b_h"].shape, bool(np.abs(np.linalg.eigvals(d["W_hh"])).max() < 4)
    ((5, 5), (5, 1), True)
    >>> _as_written(d).shape, _true_products(d)[0].shape      # (t, n) Hadamard vectors, (t, n, n) Jacobians
    ((20, 5), (20, 5, 5))
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # matplotlib is imported when a figure is drawn, not with the package
    from matplotlib.figure import Figure

__all__ = ["notebook_002", "seed_002_figures"]


def _g(x: float) -> str:
    return f"{x:.3g}"


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


def seed_002_figures():
    """The figures of seed 002: (name, title, caption, numbers, matplotlib Figure) each."""
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
    from ..core.plots import new_figure  # matplotlib only when a figure is drawn

    fig = new_figure((16, 5.2))
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
    from ..core.plots import new_figure  # matplotlib only when a figure is drawn

    fig = new_figure((8.5, 5.4))
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
    from ..core.plots import new_figure  # matplotlib only when a figure is drawn

    x = np.linspace(-6, 6, 100)  # the notebook's data
    fine = np.linspace(-6, 6, 120001)  # step 1e-4, contains 0
    dfine = _sigmoid_gradient(fine)
    numbers = dict(max_sigmoid_gradient=float(dfine.max()), argmax=float(fine[np.argmax(dfine)]),
                   tangent_points=[-4.0, -2.0, 0.0, 2.0, 4.0],
                   tangent_gradients=[float(_sigmoid_gradient(v)) for v in (-4.0, -2.0, 0.0, 2.0, 4.0)])
    fig = new_figure((7.5, 5.4))
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
