"""What the weights of the recurrences after the seeds promise: each cell's own guarantee on ||ds_t/ds_k||_2.

The seeds bound the vanilla cells by (gamma sigma_max(W_hh))^(t-k) and have nothing to say about gated cells.
The recurrences researchers use now were designed so that a bound holds by construction:

    lru      J_t = diag(lambda) (complex; its real 2N view is normal)   ||ds_t/ds_k||_2 = max|lambda|^(t-k)
             exactly, and every |lambda_j| = exp(-exp(nu_j)) < 1: vanishing guaranteed, never exploding; the
             memory is 1 / (1 - max|lambda|) steps per factor e (Orvieto et al. 2023)
    mamba    J_t = diag(exp(Delta_t[d] A[d, n])), A = -exp(A_log) < 0 and Delta_t = softplus(.) > 0, so every
             factor lies in (0, 1): ||ds_t/ds_k||_2 <= 1, never exploding; how fast it vanishes is decided by
             Delta_t, that is by the input (the selection mechanism; Gu & Dao 2023)
    mingru   J_t = diag(1 - z_t), z_t = sigmoid(.) in (0, 1): ||J_t||_2 < 1 at every step, never exploding
    minlstm  J_t = diag(f_t / (f_t + i_t)) in (0, 1): the same (Feng et al. 2024)
    indrnn   J_t = diag(phi'(a_t) u): unit i's product is prod_j phi'(a_j,i) u_i, so
             |ds_t,i / ds_k,i| <= (gamma |u_i|)^(t-k) per unit and ||ds_t/ds_k||_2 <= (gamma max|u|)^(t-k)
             (Li et al. 2018: |u_i| <= 2^(1/T) ... keeps every unit within a factor 2 over T steps)
    exprnn   J_t = diag(phi'(a_t)) expm(A), expm(A) orthogonal: sigma_max = 1 exactly, so
             ||ds_t/ds_k||_2 <= gamma^(t-k) and only phi' can shrink the product (identity phi: = 1 exactly)
    slstm    exponential gates with a normaliser: the state (c, n) is rescaled by the stabiliser m_t and
             h_t = o_t c_t / n_t; no bound of the form c^(t-k) on the full state holds (read the profile)
    cornn    the explicit oscillator scheme: J_t = L + E_t with L the constant linear part and
             ||E_t||_2 <= dt sqrt(1 + dt^2) ||[W, W_z]||_2 (tanh' <= 1); Rusch & Mishra (2021) prove the
             hidden states and the gradients stay bounded under their step-size conditions (no exploding), and
             a bound on how fast they may vanish; the step bound ||L||_2 + dt sqrt(1 + dt^2) ||[W, W_z]||_2 is
             reported as the a-priori number, with the paper's statement in the note

Example:
    >>> import torch
    >>> from rnnscope.core.build import random_cell
    >>> v = modern_facts(random_cell("lru", hidden=4, r_min=0.5, r_max=0.9, seed=0))
    >>> v.verdict, v.step_bound < 0.9
    ('vanishing guaranteed', True)
"""

from __future__ import annotations

import math

import torch

from ..core.cells import Cell
from ..core.modern_cells import (CoRNNCell, ExpRNNCell, IndRNNCell, LRUCell, MambaCell, MinGRUCell, MinLSTMCell,
                                 SLSTMCell)
from .bounds import EXPLODING, GATED, NONEXPANSIVE, VANISHING, Verdict

__all__ = ["modern_facts"]

_F64 = torch.float64


def _sigma_max(W: torch.Tensor) -> float:
    return float(torch.linalg.svdvals(W.detach().to(_F64))[0])


def _lru(cell: LRUCell) -> Verdict:
    r = float(cell.spectral_radius)  # max |lambda_j|
    note = (f"||ds_t/ds_k||_2 = max|lambda|^(t-k) exactly, max|lambda| = {r:.6g} < 1 (lambda = exp(-exp(nu) + i "
            f"exp(theta))): vanishing guaranteed, never exploding; the slowest unit keeps memory over "
            f"1/(1 - max|lambda|) = {1 / (1 - r):.4g} steps per factor e.")
    return Verdict(None, r, r, VANISHING if r < 1 else NONEXPANSIVE, note, r)


def _mamba(cell: MambaCell) -> Verdict:
    A = -torch.exp(cell.A_log.detach().to(_F64))  # (D, N) all < 0
    note = (f"every factor exp(Delta_t[d] A[d, n]) lies in (0, 1) (A < 0: max A = {float(A.max()):.4g}; Delta_t = "
            f"softplus(.) > 0): ||ds_t/ds_k||_2 <= 1, never exploding. How fast it vanishes is decided by Delta_t, "
            f"that is by the input: Delta_t -> 0 holds the state (selection), a large Delta_t resets it.")
    return Verdict(None, None, None, NONEXPANSIVE, note, 1.0)


def _min_rnn(cell: Cell, what: str) -> Verdict:
    note = (f"J_t = diag({what}) with every entry in (0, 1) whatever the input (the gates see x_t alone): "
            f"||ds_t/ds_k||_2 <= 1 and each step shrinks, never exploding; how fast it vanishes is decided by the "
            f"gates, that is by the input.")
    return Verdict(None, None, None, NONEXPANSIVE, note, 1.0)


def _indrnn(cell: IndRNNCell) -> Verdict:
    gamma = cell.activation.gamma
    u = cell.u.detach().to(_F64).abs()
    umax = float(u.max())
    c = gamma * umax
    per_unit = f"unit i: |ds_t,i/ds_k,i| <= (gamma |u_i|)^(t-k)"
    if c < 1:
        verdict, tail = VANISHING, f"gamma max|u| = {c:.4g} < 1: every unit vanishes at least geometrically."
    elif c == 1:
        verdict, tail = NONEXPANSIVE, "gamma max|u| = 1: nonexpansive, never exploding."
    else:
        n = int((gamma * u > 1).sum())
        verdict, tail = EXPLODING, (f"gamma max|u| = {c:.4g} > 1: {n} of {u.numel()} units may grow (Li et al. "
                                    f"2018 bound |u_i| by 2^(1/T) to keep growth within a factor 2 over T steps).")
    return Verdict(gamma, umax, umax, verdict, f"J_t = diag(phi'(a_t) u): {per_unit}; {tail}", c)


def _exprnn(cell: ExpRNNCell) -> Verdict:
    gamma = cell.activation.gamma
    W = cell.W_hh.detach().to(_F64)
    sm = _sigma_max(W)
    rho = float(torch.linalg.eigvals(W).abs().max())
    c = gamma * sm
    note = (f"W_hh = expm(A), A skew-symmetric: orthogonal, sigma_max = {sm:.15g} (= 1 up to rounding): "
            f"||ds_t/ds_k||_2 <= gamma^(t-k) = {gamma:.4g}^(t-k); only phi' can shrink the product (identity phi: "
            f"every ||ds_t/ds_k||_2 = 1).")
    verdict = VANISHING if c < 1 - 1e-12 else NONEXPANSIVE
    return Verdict(gamma, sm, rho, verdict, note, c)


def _slstm(cell: SLSTMCell) -> Verdict:
    sm = _sigma_max(torch.block_diag(*[cell.R[g, h] for g in range(cell.R.shape[0]) for h in range(cell.R.shape[1])]))
    note = ("sLSTM: exponential input and forget gates with a normaliser n_t and a stabiliser m_t; h_t = o_t c_t / n_t "
            "is invariant to the stabiliser, but no bound of the form c^(t-k) holds on the full state (c, n, m, h): "
            f"read the measured profile. sigma_max of the block-diagonal recurrent weights R = {sm:.4g}.")
    return Verdict(None, sm, None, GATED, note, None)


def _cornn(cell: CoRNNCell) -> Verdict:
    H = cell.W.shape[0]
    dt, g, e = float(cell.dt), float(cell.gamma), float(cell.epsilon)
    eye = torch.eye(H, dtype=_F64)
    # the constant linear part of J_t: z_t = (1 - dt eps) z - dt gamma y + dt tanh(.), y_t = y + dt z_t
    L = torch.cat([torch.cat([(1 - dt * dt * g) * eye, dt * (1 - dt * e) * eye], 1),
                   torch.cat([-dt * g * eye, (1 - dt * e) * eye], 1)], 0)
    WW = torch.cat([cell.W.detach().to(_F64), cell.W_z.detach().to(_F64)], 1)  # (H, 2H)
    c = _sigma_max(L) + dt * math.sqrt(1 + dt * dt) * _sigma_max(WW)
    note = (f"J_t = L + E_t, L the scheme's constant linear part (||L||_2 = {_sigma_max(L):.4g}), "
            f"||E_t||_2 <= dt sqrt(1 + dt^2) ||[W, W_z]||_2 (tanh' <= 1): ||ds_t/ds_k||_2 <= {c:.4g}^(t-k). "
            f"Rusch & Mishra (2021) prove bounded hidden states and gradients (no exploding) for the scheme under "
            f"their step-size conditions (dt = {dt:.3g}, gamma = {g:.3g}, epsilon = {e:.3g} here).")
    return Verdict(1.0, _sigma_max(WW), None, VANISHING if c < 1 else EXPLODING, note, c)


def modern_facts(cell: Cell) -> Verdict | None:
    """The guarantee of a cell after the seeds (the module docstring's table), or None for any other cell."""
    if isinstance(cell, LRUCell):
        return _lru(cell)
    if isinstance(cell, MambaCell):
        return _mamba(cell)
    if isinstance(cell, MinGRUCell):
        return _min_rnn(cell, "1 - z_t")
    if isinstance(cell, MinLSTMCell):
        return _min_rnn(cell, "f_t / (f_t + i_t)")
    if isinstance(cell, IndRNNCell):
        return _indrnn(cell)
    if isinstance(cell, ExpRNNCell):
        return _exprnn(cell)
    if isinstance(cell, SLSTMCell):
        return _slstm(cell)
    if isinstance(cell, CoRNNCell):
        return _cornn(cell)
    return None
