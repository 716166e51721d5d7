"""The vanilla cells of the seeds: Elman and the Pascanu/Pal form, with their exact one-step Jacobians and VJPs.

    Elman   a_t = W_hh h_{t-1} + W_xh x_t + b_h,  h_t = phi(a_t)         J_t = diag(phi'(a_t)) W_hh
    Pal     h_t = W_hh phi(h_{t-1}) + W_xh x_t + b_h                    J_t = W_hh diag(phi'(h_{t-1}))

Factored VJP (cell_contract): F = (phi'(a_t),) for Elman, (phi'(h_{t-1}),) for Pal; then

    Elman   dL/du_t = g * phi'(a_t)           g J_t = dL/du_t W_hh
    Pal     dL/du_t = g                       g J_t = (g W_hh) * phi'(h_{t-1})

with u_t = W_xh x_t + b_h the drive. Legend: B batch, S state size, D input size.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .activations import Activation, get_activation
from .cell_contract import WeightedCell, affine, check_matrix, rows
from .errors import InputError

__all__ = ["ElmanCell", "PalCell"]


@dataclass(frozen=True)
class _Vanilla(WeightedCell):
    """Shared fields of the two vanilla forms (Elman and Pal)."""

    W_hh: torch.Tensor  # (S, S)
    W_xh: torch.Tensor  # (S, D)
    b_h: torch.Tensor  # (S,)
    activation: Activation = field(default_factory=lambda: get_activation("tanh"))

    def __post_init__(self) -> None:
        object.__setattr__(self, "activation", get_activation(self.activation))
        if not isinstance(self.W_hh, torch.Tensor) or self.W_hh.dim() != 2 or self.W_hh.shape[0] < 1:
            got = tuple(self.W_hh.shape) if isinstance(self.W_hh, torch.Tensor) else type(self.W_hh).__name__
            raise InputError(f"W_hh: expected a square matrix (S, S) with S >= 1, got {got}")
        S = self.W_hh.shape[0]
        check_matrix("W_hh", self.W_hh, (S, S))
        if not isinstance(self.W_xh, torch.Tensor) or self.W_xh.dim() != 2 or self.W_xh.shape[1] < 1:
            raise InputError(f"W_xh: expected a matrix (S={S}, D) with D >= 1 (S from W_hh), got "
                             f"{tuple(getattr(self.W_xh, 'shape', ())) or type(self.W_xh).__name__}")
        check_matrix("W_xh", self.W_xh, (S, self.W_xh.shape[1]), f"S = {S} from W_hh")
        check_matrix("b_h", self.b_h, (S,), f"S = {S} from W_hh")

    @property
    def state_size(self) -> int:  # type: ignore[override]
        return self.W_hh.shape[0]



@dataclass(frozen=True)
class ElmanCell(_Vanilla):
    """Elman RNN (seeds 000, 002, 003, 004):

        a_t = W_hh h_{t-1} + W_xh x_t + b_h        (B, S)
        h_t = phi(a_t)
        dh_t/dh_{t-1} = diag(phi'(a_t)) W_hh       (B, S, S)

    Example:
        >>> cell = ElmanCell(torch.eye(2) * 0.5, torch.ones(2, 1), torch.zeros(2), "tanh")
        >>> cell.jacobian(torch.zeros(1, 1), torch.zeros(1, 2))[0]   # tanh'(0) = 1
        tensor([[0.5000, 0.0000],
                [0.0000, 0.5000]])
    """

    kind = "elman"

    def drive(self, x):
        return affine(x, self.W_xh, self.b_h)  # W_xh x_t + b_h (..., S)

    def forward_driven(self, u, s_prev):
        a = torch.addmm(u, s_prev, self.W_hh.T)  # a_t = W_hh h_{t-1} + u_t (B, S)
        return self.activation.phi(a), a

    def preactivation(self, x, s_prev):
        return torch.addmm(self.drive(x), s_prev, self.W_hh.T)  # (B, S)

    def jacobian(self, x, s_prev):
        d = self.activation.dphi(self.preactivation(x, s_prev))  # (B, S) phi'(a_t)
        return d.unsqueeze(-1) * self.W_hh  # (B, S, S) rows of W_hh scaled by phi'(a_t)

    def vjp(self, x, s_prev, g, a=None):
        return self.vjp_apply(self.vjp_factors(x, s_prev, a), g)[0]

    def vjp_factors(self, x, s_prev, a=None, s_new=None):
        a = torch.matmul(s_prev, self.W_hh.T) + self.drive(x) if a is None else a  # a_t (..., S)
        return (self.activation.dphi(a),)  # phi'(a_t)

    def vjp_apply(self, F, g, carry=True, out=None):
        # g^T diag(phi'(a)) W_hh: through phi' first, then back through W_hh.
        du = torch.mul(g, F[0], out=out)  # dL/da_t = dL/du_t: through h_t = phi(a_t)   (B, S)
        return du @ self.W_hh, du  # back through a_t = W_hh h_{t-1} + u_t

    def param_grads(self, x, s_prev, a, du):
        du2 = rows(du)  # dL/da_t, every (step, sequence) a row
        return {"W_hh": du2.T @ rows(s_prev), "W_xh": du2.T @ rows(x), "b_h": du2.sum(0)}  # a = W_hh h + W_xh x + b


@dataclass(frozen=True)
class PalCell(_Vanilla):
    """Pascanu/Pal form (seed 001 eq. 1, Pascanu et al. 2013 eq. 11):

        h_t = W_hh phi(h_{t-1}) + W_xh x_t + b_h   (B, S)
        dh_t/dh_{t-1} = W_hh diag(phi'(h_{t-1}))   (B, S, S)

    The pre-activation of step t (the argument of phi) is h_{t-1}.
    """

    kind = "pal"

    def drive(self, x):
        return affine(x, self.W_xh, self.b_h)  # W_xh x_t + b_h (..., S)

    def forward_driven(self, u, s_prev):
        return torch.addmm(u, self.activation.phi(s_prev), self.W_hh.T), s_prev  # W_hh phi(h_{t-1}) + u_t

    def jacobian(self, x, s_prev):
        d = self.activation.dphi(s_prev)  # (B, S) phi'(h_{t-1})
        return self.W_hh * d.unsqueeze(-2)  # (B, S, S) columns of W_hh scaled by phi'(h_{t-1})

    def vjp(self, x, s_prev, g, a=None):
        return self.vjp_apply(self.vjp_factors(x, s_prev, a), g)[0]

    def vjp_factors(self, x, s_prev, a=None, s_new=None):
        return (self.activation.dphi(s_prev),)  # phi'(h_{t-1})

    def vjp_apply(self, F, g, carry=True, out=None):
        # g^T W_hh diag(phi'(h_{t-1})): back through W_hh, then through phi'; u_t enters h_t additively.
        return (g @ self.W_hh) * F[0], (g if out is None else out.copy_(g))  # (B, S), dL/du_t = g

    def param_grads(self, x, s_prev, a, du):
        g = rows(du)  # dL/dh_t: h_t = W_hh phi(h_{t-1}) + W_xh x_t + b_h
        return {"W_hh": g.T @ rows(self.activation.phi(s_prev)), "W_xh": g.T @ rows(x), "b_h": g.sum(0)}
