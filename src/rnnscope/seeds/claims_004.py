"""Seed 004_fafa8053bfab969c.txt (blog post "Neural Network (2): RNN and Problems of Exploding/Vanishing
Gradient", 2018), as experiments.

The post's RNN is h_t = f(W h_(t-1) + U x_t), o_t = softmax(V h_t), E_t = -log o_t[y_t], with

    dE_t/dV = (o_t - e_y) h_t^T,   dE_t/dW = dE_t/do_t do_t/dh_t sum_k (prod_(j=k+1)^t dh_j/dh_(j-1)) d+h_k/dW

The experiments: dE_t/dV from h_t alone against autograd, the BPTT sum with the post's factor
W f'(h_(j-1)) and the true diag(f'(a_j)) W against jacrev, ReLU RNNs that vanish although sigma_max > 1,
norm clipping (shared with seed 000, in seeds.measurements), and an LSTM (forget bias +3) whose flow
survives 300 steps where a tanh RNN's vanishes, yet which still explodes with large weights.

Example:
    >>> [c.id for c in CLAIMS][:2]
    ['004-output-gradient', '004-bptt-sum']
    >>> _output_gradient().verdict
    'holds'
"""

from __future__ import annotations

import math

import torch

from ..core.activations import get_activation
from ..core.build import random_cell
from ..core.cells import ElmanCell, LSTMCell
from ..core.results import FigureSpec, Series
from ..core.unroll import unroll
from .claim_types import Claim, Finding, claim
from .counterexamples import measure
from .measurements import DT, bound_line, clipping, k_axis, log10_products, rng, sigma_rho, verdict

__all__ = ["CLAIMS"]


# ---------------------------------------------------------------------------------------- the experiments

def _output_gradient() -> Finding:
    """o_t = softmax(V h_t), E_t = -log o_t[y]: dE_t/dV = (o_t - e_y) h_t^T, a function of h_t (and y) only."""
    gen = rng(17)
    S, O, T = 6, 4, 10
    cell = ElmanCell(torch.randn(S, S, generator=gen, dtype=DT) / S**0.5, torch.randn(S, 2, generator=gen, dtype=DT),
                     torch.zeros(S, dtype=DT), "tanh")
    V = torch.randn(O, S, generator=gen, dtype=DT, requires_grad=True)
    x = torch.randn(T, 1, 2, generator=gen, dtype=DT)
    h = unroll(cell, x).states[1:, 0]  # (T, S)
    y = torch.randint(0, O, (T,), generator=gen)
    errs, gnorm = [], []
    for t in range(T):
        E = torch.nn.functional.cross_entropy((V @ h[t]).unsqueeze(0), y[t:t + 1])
        (g,) = torch.autograd.grad(E, V)
        o = torch.softmax(V.detach() @ h[t], 0)
        formula = torch.outer(o - torch.nn.functional.one_hot(y[t], O).to(DT), h[t])  # (o_t - e_y) h_t^T
        errs.append(float((g - formula).abs().max()))
        gnorm.append(math.log10(float(g.norm())))
    fig = FigureSpec("dE_t/dV from h_t alone: (o_t - e_y) h_t^T against autograd through the whole sequence", "t",
                     "log10", (Series("||dE_t/dV||_F (autograd)", k_axis(T), tuple(gnorm)),
                               Series("max |autograd - formula|", k_axis(T), tuple(math.log10(e + 1e-300) for e in errs), "points")))
    err = max(errs)
    return Finding(verdict(err < 1e-12, "holds", "refuted"), {"max_abs_error_vs_autograd": err, "T": T}, figure=fig)


def _bptt_sum_004() -> Finding:
    """dE_t/dW = sum_k (prod_{j=k+1}^t dh_j/dh_{j-1}) d+h_k/dW, with the seed's factor W diag(f'(h_{j-1})) and the true diag(f'(a_j)) W."""
    gen = rng(18)
    S, T = 4, 12
    W, U = 0.9 * torch.randn(S, S, generator=gen, dtype=DT) / S**0.5, torch.randn(S, 1, generator=gen, dtype=DT)
    x = torch.randn(T, 1, generator=gen, dtype=DT)
    h0 = torch.randn(S, generator=gen, dtype=DT)  # h_0 != 0, so dh_1/dW != 0
    cell = ElmanCell(W, U, torch.zeros(S, dtype=DT), "tanh")
    tr = unroll(cell, x.unsqueeze(1), h0.unsqueeze(0))
    h, a = tr.states[:, 0], tr.preacts[:, 0]  # (T+1, S), (T, S)
    dphi = get_activation("tanh").dphi

    def h_t(Wf, t):  # h_t as a function of W (autograd reference)
        s = h0
        for i in range(t):
            s = torch.tanh(Wf @ s + U @ x[i])
        return s
    errs = {"seed": [], "corrected": []}
    for t in range(1, T + 1):
        ref = torch.func.jacrev(h_t)(W, t).reshape(S, S * S)  # dh_t/dW (S, S^2)
        for form in ("seed", "corrected"):
            total, P = torch.zeros(S, S * S, dtype=DT), torch.eye(S, dtype=DT)
            for k in range(t, 0, -1):  # d+h_k/dW = diag(f'(a_k)) (I (x) h_{k-1}^T)
                immediate = dphi(a[k - 1]).unsqueeze(1) * torch.kron(torch.eye(S, dtype=DT), h[k - 1].unsqueeze(0))
                total = total + P @ immediate
                J = torch.diag(dphi(a[k - 1])) @ W if form == "corrected" else W @ torch.diag(dphi(h[k - 1]))
                P = P @ J  # append dh_k/dh_{k-1}
            errs[form].append(float((total - ref).norm() / ref.norm()))
    out = {"relative_error_seed": max(errs["seed"]), "relative_error_corrected": max(errs["corrected"]), "T": T}
    fig = FigureSpec("dh_t/dW as the sum over k, against torch.func.jacrev", "t", "log10 relative error",
                     (Series("seed: W f'(h_(j-1))", k_axis(T), tuple(math.log10(e + 1e-300) for e in errs["seed"])),
                      Series("corrected: diag(f'(a_j)) W", k_axis(T), tuple(math.log10(e + 1e-300) for e in errs["corrected"]),
                             "dashed")))
    ok = out["relative_error_seed"] > 1e-3 and out["relative_error_corrected"] < 1e-12
    return Finding(verdict(ok, "holds-with-correction", "holds"), out, figure=fig, correction=(
        "The factor is dh_j/dh_{j-1} = diag(f'(a_j)) W with a_j = W h_{j-1} + U x_j the pre-activation of step j, "
        "not W f'(h_{j-1}) (that is the Jacobian of the other form, h_j = W f(h_{j-1}) + U x_j); the sum runs "
        "over k = 1..t with the immediate partial d+h_k/dW = diag(f'(a_k)) (I (x) h_{k-1}^T)."))


def _relu_vanishing() -> Finding:
    """ReLU Elman RNNs, S = 32, W_hh ~ N(0, g^2/S) with g = 1.2, W_xh ~ N(0, 1), inputs N(0, 1), h_0 = 0, T = 200:
    sigma_max ~ 2.3 > 1 = 1/gamma ('exploding possible'), and yet in most draws about half the units are off
    at each step and the products decay (mean field: (1/2) ln(g^2/2) < 0 per step). Eight draws are measured;
    the first one that vanishes is the example (evidence.example, the keys of a counterexample)."""
    S, T, g, draws = 32, 200, 1.2, 8
    firsts, example = [], None
    for seed in range(draws):
        gen = rng(100 + seed)
        W = g * torch.randn(S, S, generator=gen, dtype=DT) / S**0.5
        U, x = torch.randn(S, 1, generator=gen, dtype=DT), torch.randn(T, 1, generator=gen, dtype=DT)
        ce = measure("elman", "relu", W, U, torch.zeros(S, dtype=DT), x, torch.zeros(S, dtype=DT))
        firsts.append(float(ce.log10_norms[0]))
        if example is None and firsts[-1] < -3:
            example = ce
    ev = {"draws": draws, "vanishing_draws": sum(f < -3 for f in firsts), "log10_norm_first_per_draw": firsts,
          "gain": g, "S": S, "T": T}
    if example is None:
        return Finding("refuted", ev)
    sigma, rho = sigma_rho(example.W_hh)
    L = example.log10_norms
    ev.update({"sigma_max": sigma, "spectral_radius": rho, "gamma": 1.0, "log10_norm_first": float(L[0]),
               "example": example.to_dict()})
    fig = FigureSpec(f"ReLU RNN, S = {S}: sigma_max = {sigma:.3g} > 1/gamma = 1, and the gradient vanishes", "k",
                     "log10 ||dh_T/dh_k||_2",
                     (Series("measured (the example)", k_axis(T), tuple(L.tolist())),
                      Series("bound (gamma sigma_max)^(T-k)", k_axis(T), bound_line(T, sigma), "dashed")))
    return Finding(verdict(sigma > 1, "holds", "refuted"), ev, figure=fig)


def _lstm_004() -> Finding:
    """LSTM over the full state (h, c), PyTorch's math: forget-gate bias +3 keeps the cell path open; a tanh
    Elman RNN of the same size and init vanishes. Exploding is not excluded: a large W_hh explodes the LSTM too."""
    T, S, B = 300, 32, 4
    gen = rng(20)
    x = torch.randn(T, B, 1, generator=gen, dtype=DT)
    elman = random_cell("elman", "tanh", hidden=S, input_size=1, gain=1.0, seed=20)
    L_e = log10_products(elman, x).mean(0)
    lstm = random_cell("lstm", hidden=S, input_size=1, gain=1.0, seed=20)
    b = lstm.b_hh.clone()
    b[S:2 * S] += 3.0  # forget gate bias: f ~ sigmoid(3) = 0.95
    lstm_open = LSTMCell(lstm.W_xh, lstm.W_hh, lstm.b_xh, b)
    L_l = log10_products(lstm_open, x).mean(0)
    big = random_cell("lstm", hidden=S, input_size=1, gain=6.0, seed=21)
    b2 = big.b_hh.clone()
    b2[S:2 * S] += 3.0
    L_big = log10_products(LSTMCell(big.W_xh, big.W_hh, big.b_xh, b2), x).mean(0)
    fig = FigureSpec(f"LSTM (full state h, c) against a tanh RNN, S = {S}", "k", "log10 ||ds_T/ds_k||_2 (mean of 4)",
                     (Series("Elman tanh, gain 1", k_axis(T), tuple(L_e.tolist())),
                      Series("LSTM, forget bias +3, gain 1", k_axis(T), tuple(L_l.tolist())),
                      Series("LSTM, forget bias +3, gain 6", k_axis(T), tuple(L_big.tolist()), "dashed")))
    ok = float(L_l[0]) > float(L_e[0]) + 10 and float(L_l[0]) > -3 and float(L_big[0]) > 0
    return Finding(verdict(ok, "holds-with-correction", "refuted"), {
        "elman_log10_norm_first": float(L_e[0]), "lstm_log10_norm_first": float(L_l[0]),
        "lstm_large_weights_log10_norm_first": float(L_big[0]), "T": T, "S": S}, figure=fig, correction=(
        "LSTM addresses vanishing through the additive cell path c_t = f c_{t-1} + ...: with forget gates near 1 the "
        "flow over hundreds of steps survives where a tanh RNN's vanishes. It does not rule out exploding: with "
        "large recurrent weights the LSTM's full-state products can grow, and clipping is still used with LSTMs."))


# ---------------------------------------------------------------------------------------- the claims, in order

CLAIMS: tuple[Claim, ...] = (
    claim("004-output-gradient", "004", "dE_t/dV needs only the current hidden state h_t.", _output_gradient),
    claim("004-bptt-sum", "004", "dE_t/dW = dE_t/do_t do_t/dh_t sum_k (prod_(j=k+1)^t W f(h_(j-1))) dh_k/dW, with f "
          "the derivative of the nonlinearity upon the hidden state.", _bptt_sum_004),
    claim("004-relu-vanishing", "004", "Vanishing gradients also happen with ReLU.", _relu_vanishing),
    claim("004-clipping", "004", "Clipping fixes exploding gradients; the vanishing gradient remains.", clipping),
    claim("004-lstm", "004", "LSTM addresses both the exploding and the vanishing gradient problems.", _lstm_004),
)
