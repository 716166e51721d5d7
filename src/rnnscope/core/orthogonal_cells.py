"""expRNN (Lezcano-Casado & Martinez-Rubio 2019, "Cheap Orthogonal Constraints in Neural Networks", ICML 2019):
an Elman cell whose recurrent matrix is the exponential of a skew-symmetric matrix, hence exactly orthogonal.

Legend: T time, B batch, S = H state size, D input size, H hidden size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np
import torch

from .activations import Activation, get_activation
from .cell_contract import check_matrix, sized_generator
from .errors import InputError
from .vanilla_cells import ElmanCell

__all__ = ["ExpRNNCell", "EXPRNN_INITS", "skew_blocks", "orthogonality_tol"]

EXPRNN_INITS = ("henaff", "cayley")
SKEW_RTOL = 1e-12  # |A + A^T| <= SKEW_RTOL max(1, |A|) entrywise


def orthogonality_tol(dtype: torch.dtype) -> float:
    """The entrywise tolerance of W_hh^T W_hh = I and W_hh = expm(A) in a dtype: 1e4 machine epsilons
    (2.2e-12 in float64, 1.2e-3 in float32)."""
    return 1e4 * torch.finfo(dtype).eps


def skew_blocks(s: torch.Tensor, n: int) -> torch.Tensor:
    """The (n, n) skew-symmetric block-diagonal matrix with 2x2 blocks [[0, s_k], [-s_k, 0]] on units (2k, 2k+1),
    k < n // 2 (s (n // 2,)); for odd n the last unit's row and column are 0."""
    A = torch.zeros(n, n, dtype=s.dtype)
    k = torch.arange(n // 2)
    A[2 * k, 2 * k + 1] = s
    A[2 * k + 1, 2 * k] = -s
    return A


@dataclass(frozen=True)
class ExpRNNCell(ElmanCell):
    """expRNN: an Elman cell (vanilla_cells.ElmanCell) with W_hh = expm(A), A skew-symmetric (A^T = -A):

        W_hh = expm(A),  A = Araw - Araw^T                      orthogonal: W_hh^T W_hh = expm(-A) expm(A) = I
        a_t = W_hh h_{t-1} + W_xh x_t + b_h,  h_t = phi(a_t)      (B, H)
        dh_t/dh_{t-1} = diag(phi'(a_t)) W_hh                     (B, H, H), ElmanCell's Jacobian and VJP

    Every singular value of W_hh is 1 (sigma_max = rho = 1 exactly), so ||dh_t/dh_k||_2 <= gamma^(t-k) with
    gamma = sup |phi'|, with equality (= 1 for every k) for the identity phi: no explosion, and the only decay is
    the activation's. A is the parameter the paper trains (by gradient descent on A, the exponential map as a
    trivialisation); W_hh is a field so that the cell is an ElmanCell, and __post_init__ checks that it equals
    torch.linalg.matrix_exp(A) and is orthogonal (to orthogonality_tol(dtype)) and that A is skew to 1e-12
    relative. `from_skew(A, W_xh, b_h, activation)` computes W_hh. param_grads is ElmanCell's: dL/dW_hh as a
    free matrix (dL/dA would be the adjoint of expm's Frechet derivative: not given here).

    phi: the paper uses modReLU (phi(a) = sign(a) relu(|a| + b), a bias of its own), which is not among this
    project's activations (activations.py); tanh is the default here, any of those activations may be chosen.

    Initialisation (`random`), as the paper's code (lezcano/expRNN, initialization.py and exprnn.py): A
    block-diagonal with 2x2 blocks [[0, s], [-s, 0]] (skew_blocks), skew_init "henaff" s ~ U[-pi, pi] (Henaff et al.
    2016) or "cayley" s = -sqrt((1 - cos t) / (1 + cos t)), t ~ U[0, pi/2]; W_xh ~ N(0, 2 / D) (kaiming_normal,
    relu gain); b_h = 0 (the paper's only bias is modReLU's). (The paper's code multiplies from the right, h B, so
    its effective W_hh is expm(A)^T = expm(-A): the same law under Henaff's symmetric s; s -> -s under Cayley's.)

    Example:
        >>> cell = ExpRNNCell.random(6, 2, seed=0)
        >>> cell.kind, cell.state_size
        ('exprnn', 6)
        >>> bool(torch.allclose(cell.W_hh.T @ cell.W_hh, torch.eye(6, dtype=torch.float64), atol=1e-12))
        True
        >>> round(float(torch.linalg.svdvals(cell.W_hh)[0]), 12)
        1.0
    """

    A: torch.Tensor = None  # (H, H) skew-symmetric: W_hh = expm(A)

    kind = "exprnn"

    def __post_init__(self) -> None:
        super().__post_init__()
        H = self.W_hh.shape[0]
        if self.A is None:
            raise InputError(f"A: expected a skew-symmetric matrix ({H}, {H}) (use ExpRNNCell.from_skew), got None")
        check_matrix("A", self.A, (H, H))
        with torch.no_grad():
            A = self.A.detach().to(torch.float64)
            asym = float((A + A.T).abs().max()) if H else 0.0
            if asym > SKEW_RTOL * max(1.0, float(A.abs().max()) if H else 0.0):
                raise InputError(f"A: expected a skew-symmetric matrix (A^T = -A to {SKEW_RTOL:g} relative), got "
                                 f"max |A + A^T| = {asym:.3g}")
            W = self.W_hh.detach().to(torch.float64)
            tol = orthogonality_tol(self.W_hh.dtype)
            off = float((W.T @ W - torch.eye(H, dtype=torch.float64)).abs().max()) if H else 0.0
            if off > tol:
                raise InputError(f"W_hh: expected an orthogonal matrix (max |W_hh^T W_hh - I| <= {tol:.3g}), got "
                                 f"{off:.3g}")
            gap = float((W - torch.linalg.matrix_exp(A)).abs().max()) if H else 0.0
            if gap > tol:
                raise InputError(f"W_hh: expected torch.linalg.matrix_exp(A) (to {tol:.3g}), got a matrix "
                                 f"{gap:.3g} away from it")

    @classmethod
    def from_skew(cls, A: torch.Tensor, W_xh: torch.Tensor, b_h: torch.Tensor,
                  activation: str | Activation = "tanh") -> "ExpRNNCell":
        """The cell with W_hh = expm(A) (computed in float64, then cast to A's dtype)."""
        if not isinstance(A, torch.Tensor) or A.dim() != 2 or A.shape[0] != A.shape[1] or A.shape[0] < 1:
            got = tuple(A.shape) if isinstance(A, torch.Tensor) else type(A).__name__
            raise InputError(f"A: expected a square skew-symmetric matrix (H, H) with H >= 1, got {got}")
        W_hh = torch.linalg.matrix_exp(A.detach().to(torch.float64)).to(A.dtype)
        return cls(W_hh, W_xh, b_h, activation, A)

    @classmethod
    def array_names(cls) -> tuple[str, ...]:
        return ("A", "W_xh", "b_h")

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], dtype: torch.dtype = torch.float64, *,
                    activation: str | Activation = "tanh") -> "ExpRNNCell":
        """A cell from arrays named as the fields: A (H, H) skew, W_xh (H, D), b_h (H,); W_hh, where given, must
        equal expm(A) (it is computed from A otherwise)."""
        missing = [n for n in cls.array_names() if n not in arrays]
        if missing:
            raise InputError(f"exprnn arrays: expected A, W_xh, b_h, got only {sorted(arrays) or 'no arrays'}")
        t = {n: torch.as_tensor(np.asarray(arrays[n], dtype=np.float64)).to(dtype)
             for n in (*cls.array_names(), *(("W_hh",) if "W_hh" in arrays else ()))}
        if "W_hh" in t:
            return cls(t["W_hh"], t["W_xh"], t["b_h"], activation, t["A"])
        return cls.from_skew(t["A"], t["W_xh"], t["b_h"], activation)

    @classmethod
    def random(cls, hidden: int, input_size: int, *, seed: int = 0, dtype: torch.dtype = torch.float64,
               skew_init: str = "henaff", activation: str | Activation = "tanh", **unknown) -> "ExpRNNCell":
        """The paper's initialisation (class docstring): skew_init "henaff" (default) or "cayley"."""
        gen = sized_generator(cls.kind, hidden, input_size, seed, unknown, ("skew_init", "activation"))
        if not isinstance(skew_init, str) or skew_init not in EXPRNN_INITS:
            raise InputError(f"skew_init: expected one of {', '.join(EXPRNN_INITS)}, got {skew_init!r}")
        act = get_activation(activation)
        H, D = hidden, input_size
        f64 = torch.float64
        if skew_init == "henaff":
            s = (torch.rand(H // 2, generator=gen, dtype=f64) * 2 - 1) * math.pi  # U[-pi, pi]
        else:
            t = torch.rand(H // 2, generator=gen, dtype=f64) * (math.pi / 2)  # U[0, pi/2]
            s = -torch.sqrt((1 - torch.cos(t)) / (1 + torch.cos(t)))  # -tan(t/2)
        W_xh = torch.randn(H, D, generator=gen, dtype=f64) * math.sqrt(2.0 / D)  # kaiming_normal, relu gain
        return cls.from_skew(skew_blocks(s, H).to(dtype), W_xh.to(dtype), torch.zeros(H, dtype=dtype), act)
