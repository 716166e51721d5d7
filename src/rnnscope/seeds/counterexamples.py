"""Counterexamples as data: a vanilla RNN, its inputs and start state, and the Jacobian-product norms
along that trajectory, so that anyone can recompute them. Built by recipes stated here, then measured.

A Counterexample holds an Elman or Pal cell (W_hh (S, S), W_xh (S, D), b_h (S,), activation), inputs
x (T, D), h0 (S,) (T time, S state size, D input size) and

    log10_norms[k-1] = log10 ||dh_T/dh_k||_2,   k = 1..T,   dh_T/dh_k = J_T J_{T-1} ... J_{k+1}

(the empty product at k = T is I, log10 1 = 0), measured with gradients.flow.jacobian_profile.

The saddle recipe (`saddle`): rho(W_hh) < 1/gamma, and yet the products grow as g^(T-k) forever.

    W_hh = (1/gamma) [[g, p], [q, -g]],   p q = r^2 - g^2   =>   eigenvalues +-r/gamma,   rho gamma = r < 1

At a fixed point where unit 1 sits at the centre of phi (phi' = gamma) and unit 2 is saturated
(phi' = eps ~ 0), the one-step Jacobian is diag(gamma, eps) W_hh (Elman) or W_hh diag(gamma, eps) (Pal),
whose eigenvalues are ~ g and ~ 0: the product of T - k of them has norm ~ g^(T-k). The eigenvalues of
W_hh cancel (trace 0, determinant -(r/gamma)^2) but its diagonal entry g/gamma survives the
saturation of unit 2. The fixed point is made by the bias:

    Elman  a* = (0, A):  h* = phi(a*),  b_h = a* - W_hh h*
    Pal    h* = (0, A):  b_h = h* - W_hh phi(h*)

with zero inputs. The fixed point is unstable (that is the growth), so rounding errors grow like g^t;
T is kept where g^T eps_machine stays far below the scale of phi (g = 2, T = 40: 1e-4).

Example:
    >>> ce = saddle("tanh", "elman")
    >>> float(torch.linalg.eigvals(ce.W_hh).abs().max()), round(float(ce.log10_norms[0]))   # rho, ~ log10 2^39
    (0.5, 12)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..core.activations import get_activation
from ..core.cells import ElmanCell, PalCell
from ..core.errors import InputError
from ..gradients.flow import jacobian_profile
from ..core.unroll import unroll

__all__ = ["Counterexample", "measure", "saddle"]

_DT = torch.float64


@dataclass(frozen=True)
class Counterexample:
    cell: str  # "elman" or "pal"
    activation: str
    W_hh: torch.Tensor  # (S, S)
    W_xh: torch.Tensor  # (S, D)
    b_h: torch.Tensor  # (S,)
    inputs: torch.Tensor  # (T, D)
    h0: torch.Tensor  # (S,)
    log10_norms: torch.Tensor  # (T,) log10 ||dh_T/dh_k||_2 for k = 1..T

    def make_cell(self):
        return (ElmanCell if self.cell == "elman" else PalCell)(self.W_hh, self.W_xh, self.b_h, self.activation)

    @property
    def rate_per_step(self) -> float:
        """log10 growth per step over the whole trajectory: (log10 ||dh_T/dh_1|| - 0) / (T - 1)."""
        T = self.log10_norms.shape[0]
        return float(self.log10_norms[0] / (T - 1)) if T > 1 else 0.0

    def to_dict(self) -> dict:
        """The keys of a claim's evidence.counterexample (nested lists; -inf log-norms become null in JSON)."""
        return {"cell": self.cell, "activation": self.activation, "W_hh": self.W_hh.tolist(),
                "W_xh": self.W_xh.tolist(), "b_h": self.b_h.tolist(), "inputs": self.inputs.tolist(),
                "h0": self.h0.tolist(), "log10_norms": self.log10_norms.tolist()}


def measure(cell: str, activation: str, W_hh, W_xh, b_h, inputs, h0) -> Counterexample:
    """Run the trajectory and measure log10 ||dh_T/dh_k||_2 for k = 1..T (float64)."""
    if cell not in ("elman", "pal"):
        raise InputError(f"cell: expected 'elman' or 'pal', got {cell!r}")
    W_hh, W_xh, b_h, x, h0 = (torch.as_tensor(v, dtype=_DT) for v in (W_hh, W_xh, b_h, inputs, h0))
    c = (ElmanCell if cell == "elman" else PalCell)(W_hh, W_xh, b_h, activation)
    tr = unroll(c, x.unsqueeze(1), h0.unsqueeze(0))  # (T, 1, D), start state (1, S)
    prof = jacobian_profile(c, tr)
    return Counterexample(cell, get_activation(activation).name, W_hh, W_xh, b_h, x, h0, prof.log10_spectral[0])


def saddle(activation: str, cell: str, *, g: float = 2.0, r: float = 0.5, p: float = 3.0,
           saturation: float = 8.0, T: int = 40) -> Counterexample:
    """The saddle recipe (module docstring): rho(W_hh) = r/gamma < 1/gamma, ||dh_T/dh_k|| ~ g^(T-k).

    saturation: the pre-activation A of the saturated unit (phi'(A) ~ 4 e^-A for sigmoid and tanh).
    """
    act = get_activation(activation)
    if act.name not in ("sigmoid", "tanh"):
        raise InputError(f"activation: expected 'sigmoid' or 'tanh' (a saturating phi), got {activation!r}")
    if not (g > 1 and 0 <= r < 1 and p != 0):
        raise InputError(f"saddle: expected g > 1, 0 <= r < 1, p != 0, got g={g}, r={r}, p={p}")
    gam = act.gamma
    q = (r * r - g * g) / p  # p q = r^2 - g^2: eigenvalues of [[g, p], [q, -g]] are +-r
    W = torch.tensor([[g, p], [q, -g]], dtype=_DT) / gam  # (2, 2)
    centre = torch.tensor([0.0, saturation], dtype=_DT)  # unit 1 at phi' = gamma, unit 2 saturated
    if cell == "elman":
        h_star = act.phi(centre)  # h* = phi(a*)
        b = centre - W @ h_star  # a* = W h* + b
    else:
        h_star = centre  # h* = W phi(h*) + b
        b = centre - W @ act.phi(centre)
    W_xh = torch.zeros(2, 1, dtype=_DT)  # autonomous: the fixed point is held by the bias alone
    return measure(cell, act.name, W, W_xh, b, torch.zeros(T, 1, dtype=_DT), h_star)
