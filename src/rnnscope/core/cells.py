"""Recurrent cells: one step and its exact one-step Jacobian, nothing more (the cell contract, docs/architecture.md).

A cell maps (x_t, s_{t-1}) to s_t for a batch:

    forward(x_t, s_prev) -> (s_t, a_t)     x_t (B, D), s_prev (B, S), s_t (B, S), a_t (B, A)
                         = forward_driven(drive(x_t), s_prev), where drive(x) (e.g. W_xh x + b_h) is the
                         part that does not depend on the state, so unroll can form it for all steps at once
    step(x_t, s_prev)    -> s_t
    jacobian(x_t, s_prev)-> ds_t/ds_{t-1}  (B, S, S), column-vector convention J[b, i, j] = d s_t[i] / d s_{t-1}[j]
    vjp(x_t, s_prev, g)  -> g^T ds_t/ds_{t-1}  (B, S), without forming J where the cell allows

a_t are the pre-activations, the arguments of the step's nonlinearities (where units saturate).
Legend: T time, B batch, S state size, D input size, H hidden size (S = H, or S = 2H for LSTM).

Seed 002 writes the Jacobian as W_hh^T diag(phi'(a)): that is the row-vector (transposed) convention.
Here J = diag(phi'(a)) W_hh, whose transpose it is; norms and singular values are the same.

Time loops never live here: see unroll.py and the backward sweeps in bptt.py and flow.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

from .activations import Activation, get_activation
from .errors import InputError
from .vocab import CELL_KINDS

__all__ = ["Cell", "ElmanCell", "PalCell", "LSTMCell", "ProjLSTMCell", "GRUCell", "FunctionCell", "CELL_KINDS"]



def _check_matrix(name: str, m: torch.Tensor, shape: tuple[int, ...]) -> None:
    if not isinstance(m, torch.Tensor):
        raise InputError(f"{name}: expected a torch.Tensor of shape {shape}, got {type(m).__name__}")
    if tuple(m.shape) != tuple(shape):
        raise InputError(f"{name}: expected shape {tuple(shape)}, got {tuple(m.shape)}")
    if not torch.isfinite(m).all():
        raise InputError(f"{name}: expected finite numbers, got NaN or Inf")


class Cell:
    """Base class: the contract. Subclasses implement forward and jacobian; vjp defaults to g^T J."""

    kind: str = "cell"
    state_size: int
    input_size: int
    state_label: str = "h"  # what the state s is, for reports: "h" or "(h, c)"

    @property
    def dtype(self) -> torch.dtype:  # pragma: no cover - overridden
        raise NotImplementedError

    def drive(self, x: torch.Tensor) -> torch.Tensor:
        """u = the part of the step that does not depend on the state (e.g. W_xh x + b_h): x (..., D) -> (..., U).

        unroll computes it for all T steps in one product, so the time loop only does the recurrent part.
        """
        return x

    def forward_driven(self, u: torch.Tensor, s_prev: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(s_t, a_t) from the drive u_t = drive(x_t) (B, U) and s_prev (B, S)."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor, s_prev: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(s_t, a_t): the new state (B, S) and the step's pre-activations (B, A)."""
        return self.forward_driven(self.drive(x), s_prev)

    def step(self, x: torch.Tensor, s_prev: torch.Tensor) -> torch.Tensor:
        """s_t = f(x_t, s_{t-1}); x (B, D), s_prev (B, S) -> (B, S)."""
        return self.forward(x, s_prev)[0]

    def jacobian(self, x: torch.Tensor, s_prev: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def vjp(self, x: torch.Tensor, s_prev: torch.Tensor, g: torch.Tensor, a: torch.Tensor | None = None) -> torch.Tensor:
        """g^T ds_t/ds_{t-1}: g (B, S) -> (B, S). Default: through the formed Jacobian, O(B S^2).

        a: the step's pre-activations a_t (B, A) when the caller has them (Trace.preacts): a cell may then skip
        recomputing them (an input product and a recurrent product per step). Ignored where not needed.
        """
        return torch.bmm(g.unsqueeze(1), self.jacobian(x, s_prev)).squeeze(1)

    def zero_state(self, batch: int) -> torch.Tensor:
        return torch.zeros(batch, self.state_size, dtype=self.dtype)

    @property
    def h_size(self) -> int:
        """The size of the output part h of the state: s[:, :h_size] is h_t (S, or H / P for LSTM's (h, c))."""
        return self.state_size

    has_carry = False  # LSTM and GRU: an additive carry term (see vjp_cut)

    def vjp_cut(self, x: torch.Tensor, s_prev: torch.Tensor, g: torch.Tensor, a: torch.Tensor | None = None) -> torch.Tensor:
        """g^T (ds_t/ds_{t-1} with the carry term's state argument held constant) (B, S), for has_carry cells.

        The carry term copies the previous state through a gate: LSTM f_t * c_{t-1} (the cell path; c_{t-1}
        enters step t only there, so the whole c column of the Jacobian goes), GRU z_t * h_{t-1} (the update
        gate's copy: J_t - diag(z_t)). What is left are the paths through W_hh, the gates and the candidate.
        """
        raise NotImplementedError(f"{self.kind}: no carry term")


@dataclass(frozen=True)
class _Vanilla(Cell):
    """Shared fields of the two vanilla forms (Elman and Pal)."""

    W_hh: torch.Tensor  # (S, S)
    W_xh: torch.Tensor  # (S, D)
    b_h: torch.Tensor  # (S,)
    activation: Activation = field(default_factory=lambda: get_activation("tanh"))

    def __post_init__(self) -> None:
        object.__setattr__(self, "activation", get_activation(self.activation))
        if not isinstance(self.W_hh, torch.Tensor) or self.W_hh.dim() != 2:
            got = tuple(self.W_hh.shape) if isinstance(self.W_hh, torch.Tensor) else type(self.W_hh).__name__
            raise InputError(f"W_hh: expected a square matrix (S, S), got {got}")
        S = self.W_hh.shape[0]
        _check_matrix("W_hh", self.W_hh, (S, S))
        if not isinstance(self.W_xh, torch.Tensor) or self.W_xh.dim() != 2:
            raise InputError(f"W_xh: expected a matrix (S={S}, D), got {getattr(self.W_xh, 'shape', self.W_xh)!r}")
        _check_matrix("W_xh", self.W_xh, (S, self.W_xh.shape[1]))
        _check_matrix("b_h", self.b_h, (S,))

    @property
    def state_size(self) -> int:  # type: ignore[override]
        return self.W_hh.shape[0]

    @property
    def input_size(self) -> int:  # type: ignore[override]
        return self.W_xh.shape[1]

    @property
    def dtype(self) -> torch.dtype:
        return self.W_hh.dtype


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
        return x @ self.W_xh.T + self.b_h  # W_xh x_t + b_h (..., S)

    def forward_driven(self, u, s_prev):
        a = torch.addmm(u, s_prev, self.W_hh.T)  # a_t = W_hh h_{t-1} + u_t (B, S)
        return self.activation.phi(a), a

    def preactivation(self, x, s_prev):
        return torch.addmm(self.drive(x), s_prev, self.W_hh.T)  # (B, S)

    def jacobian(self, x, s_prev):
        d = self.activation.dphi(self.preactivation(x, s_prev))  # (B, S) phi'(a_t)
        return d.unsqueeze(-1) * self.W_hh  # (B, S, S) rows of W_hh scaled by phi'(a_t)

    def vjp(self, x, s_prev, g, a=None):
        # g^T diag(phi'(a)) W_hh: through phi' first, then back through W_hh.
        a = self.preactivation(x, s_prev) if a is None else a
        return (g * self.activation.dphi(a)) @ self.W_hh  # (B, S)


@dataclass(frozen=True)
class PalCell(_Vanilla):
    """Pascanu/Pal form (seed 001 eq. 1, Pascanu et al. 2013 eq. 11):

        h_t = W_hh phi(h_{t-1}) + W_xh x_t + b_h   (B, S)
        dh_t/dh_{t-1} = W_hh diag(phi'(h_{t-1}))   (B, S, S)

    The pre-activation of step t (the argument of phi) is h_{t-1}.
    """

    kind = "pal"

    def drive(self, x):
        return x @ self.W_xh.T + self.b_h  # W_xh x_t + b_h (..., S)

    def forward_driven(self, u, s_prev):
        return torch.addmm(u, self.activation.phi(s_prev), self.W_hh.T), s_prev  # W_hh phi(h_{t-1}) + u_t

    def jacobian(self, x, s_prev):
        d = self.activation.dphi(s_prev)  # (B, S) phi'(h_{t-1})
        return self.W_hh * d.unsqueeze(-2)  # (B, S, S) columns of W_hh scaled by phi'(h_{t-1})

    def vjp(self, x, s_prev, g, a=None):
        # g^T W_hh diag(phi'(h_{t-1})): back through W_hh, then through phi'.
        return (g @ self.W_hh) * self.activation.dphi(s_prev)  # (B, S)


def _dsig(z: torch.Tensor) -> torch.Tensor:
    s = torch.sigmoid(z)
    return s * (1 - s)


def _dtanh_of_value(t: torch.Tensor) -> torch.Tensor:
    return 1 - t * t


@dataclass(frozen=True)
class _Gated(Cell):
    """Shared fields of LSTM and GRU, in PyTorch's layout (gate blocks stacked along rows)."""

    W_xh: torch.Tensor  # (G H, D)   PyTorch weight_ih_l0
    W_hh: torch.Tensor  # (G H, H)   PyTorch weight_hh_l0
    b_xh: torch.Tensor  # (G H,)     PyTorch bias_ih_l0
    b_hh: torch.Tensor  # (G H,)     PyTorch bias_hh_l0
    gates = 1

    def __post_init__(self) -> None:
        G = self.gates
        if not isinstance(self.W_hh, torch.Tensor) or self.W_hh.dim() != 2 or self.W_hh.shape[0] != G * self.W_hh.shape[1]:
            got = tuple(self.W_hh.shape) if isinstance(self.W_hh, torch.Tensor) else type(self.W_hh).__name__
            raise InputError(f"W_hh: expected shape ({G}*H, H) for {self.kind}, got {got}")
        H = self.W_hh.shape[1]
        _check_matrix("W_hh", self.W_hh, (G * H, H))
        if not isinstance(self.W_xh, torch.Tensor) or self.W_xh.dim() != 2:
            raise InputError(f"W_xh: expected shape ({G * H}, D), got {getattr(self.W_xh, 'shape', self.W_xh)!r}")
        _check_matrix("W_xh", self.W_xh, (G * H, self.W_xh.shape[1]))
        _check_matrix("b_xh", self.b_xh, (G * H,))
        _check_matrix("b_hh", self.b_hh, (G * H,))

    @property
    def hidden_size(self) -> int:
        return self.W_hh.shape[1]

    @property
    def input_size(self) -> int:  # type: ignore[override]
        return self.W_xh.shape[1]

    @property
    def dtype(self) -> torch.dtype:
        return self.W_hh.dtype

    def block(self, i: int) -> torch.Tensor:
        H = self.hidden_size
        return self.W_hh[i * H:(i + 1) * H]  # (H, H)


@dataclass(frozen=True)
class LSTMCell(_Gated):
    """LSTM with PyTorch's exact math, gate order (i, f, g, o) and both biases; state s = [h, c] (B, 2H):

        z = W_xh x_t + b_xh + W_hh h_{t-1} + b_hh       (B, 4H) = [z_i, z_f, z_g, z_o]
        i, f, o = sigmoid(z_i, z_f, z_o);  g = tanh(z_g)
        c_t = f * c_{t-1} + i * g
        h_t = o * tanh(c_t)

    One-step Jacobian over the full state (B, 2H, 2H):
        dc_t/dh = diag(c_{t-1} f') W_f + diag(g i') W_i + diag(i g') W_g      dc_t/dc = diag(f)
        dh_t/dh = diag(tanh(c_t) o') W_o + diag(o tanh'(c_t)) dc_t/dh        dh_t/dc = diag(o tanh'(c_t) f)

    The carry term (see Cell.vjp_cut) is f * c_{t-1}: the cell path.
    """

    kind = "lstm"
    gates = 4
    state_label = "(h, c)"
    has_carry = True

    @property
    def hidden_size(self) -> int:
        return self.W_hh.shape[0] // 4  # H, the cell size (W_hh is (4H, H), or (4H, P) with a projection)

    @property
    def h_size(self) -> int:
        return self.W_hh.shape[1]  # H, or P with a projection

    @property
    def state_size(self) -> int:  # type: ignore[override]
        return self.h_size + self.hidden_size

    def _project(self, m: torch.Tensor) -> torch.Tensor:
        """h_t from m_t = o * tanh(c_t): the identity here, W_hr m_t with a projection (ProjLSTMCell)."""
        return m

    def _project_back(self, g: torch.Tensor) -> torch.Tensor:
        """g^T dh_t/dm_t: the identity here, g W_hr with a projection."""
        return g

    def drive(self, x):
        return x @ self.W_xh.T + self.b_xh + self.b_hh  # both biases (..., 4H)

    def _gates(self, z):
        H = self.hidden_size
        return (torch.sigmoid(z[:, :H]), torch.sigmoid(z[:, H:2 * H]), torch.tanh(z[:, 2 * H:3 * H]),
                torch.sigmoid(z[:, 3 * H:]))  # i, f, g, o (B, H) each

    def forward_driven(self, u, s_prev):
        H, P = self.hidden_size, self.h_size
        h, c = s_prev[:, :P], s_prev[:, P:]
        z = torch.addmm(u, h, self.W_hh.T)  # W_xh x + b_xh + W_hh h + b_hh (B, 4H)
        sz = torch.sigmoid(z)  # i, f, o (the g block unused): one call for three gates
        i, f, o = sz[:, :H], sz[:, H:2 * H], sz[:, 3 * H:]
        g = torch.tanh(z[:, 2 * H:3 * H])
        c_new = torch.addcmul(f * c, i, g)  # c_t = f c_{t-1} + i g   (B, H)
        h_new = self._project(o * torch.tanh(c_new))  # h_t = W_hr (o tanh(c_t)), no W_hr without projection (B, P)
        return torch.cat([h_new, c_new], dim=1), z

    def jacobian(self, x, s_prev):
        H, P = self.hidden_size, self.h_size
        s, z = self.forward(x, s_prev)
        c_prev, c_new = s_prev[:, P:], s[:, P:]
        zi, zf, zo = z[:, :H], z[:, H:2 * H], z[:, 3 * H:]
        i, f, g, o = self._gates(z)
        tc = torch.tanh(c_new)
        col = lambda v: v.unsqueeze(-1)  # noqa: E731  (B, H) -> (B, H, 1): scales rows
        dc_dh = col(c_prev * _dsig(zf)) * self.block(1) + col(g * _dsig(zi)) * self.block(0) + col(i * _dtanh_of_value(g)) * self.block(2)
        dm_dh = col(tc * _dsig(zo)) * self.block(3) + col(o * _dtanh_of_value(tc)) * dc_dh  # m = o tanh(c_t)  (B, H, P)
        J = torch.zeros(s.shape[0], P + H, P + H, dtype=s.dtype)
        J[:, :P, :P] = self._project(dm_dh.transpose(1, 2)).transpose(1, 2)  # dh_t/dh_{t-1}: W_hr dm/dh
        J[:, P:, :P] = dc_dh
        J[:, :P, P:] = self._project(torch.diag_embed(o * _dtanh_of_value(tc) * f)).transpose(1, 2)  # dh_t/dc_{t-1}: W_hr diag(.)
        J[:, P:, P:] = torch.diag_embed(f)  # dc_t/dc_{t-1}: the cell path
        return J

    def vjp(self, x, s_prev, g, a=None):
        return self.vjp_gates(x, s_prev, g, a)[0]

    def vjp_gates(self, x, s_prev, g, a=None, *, c_new=None, cut: bool = False, dz=None):
        """g^T ds_t/ds_{t-1} without forming J, with what it passes through on the way:

            (g ds_t/ds_{t-1} (B, S),  dL/dz_t (B, 4H),  dL/dc_t (B, H) as cell_adjoint reports it)

        for g = dL/ds_t. The forward is recomputed from s_{t-1} (z = a, the trace's pre-activations, if given;
        c_t = c_new from the trace if given), then each line backwards. cut: the carry term f * c_{t-1} held
        constant (vjp_cut). dz: an optional (B, 4H) output buffer for dL/dz_t.
        """
        H, P = self.hidden_size, self.h_size
        h, c = s_prev[:, :P], s_prev[:, P:]
        z = torch.addmm(self.drive(x), h, self.W_hh.T) if a is None else a  # (B, 4H)
        sz = torch.sigmoid(z)
        i, f, o = sz[:, :H], sz[:, H:2 * H], sz[:, 3 * H:]
        gg = torch.tanh(z[:, 2 * H:3 * H])
        tc = torch.tanh(torch.addcmul(f * c, i, gg) if c_new is None else c_new)  # tanh(c_t)
        g_m = self._project_back(g[:, :P])  # through h_t = W_hr m_t (identity without projection)  (B, H)
        g_c = torch.addcmul(g[:, P:], g_m * o, 1 - tc * tc)  # dL/dc_t: the state's own part plus through m_t = o tanh(c_t)
        ds = sz * (1 - sz)  # sigmoid'(z) of every gate (the g block unused)
        dz = torch.empty_like(z) if dz is None else dz  # dL/dz (B, 4H)
        torch.mul(g_c * gg, ds[:, :H], out=dz[:, :H])  # through c_t = ... + i g,  i = sigmoid(z_i)
        torch.mul(g_c * c, ds[:, H:2 * H], out=dz[:, H:2 * H])  # through c_t = f c_{t-1} + ...,  f = sigmoid(z_f)
        torch.mul(g_c * i, 1 - gg * gg, out=dz[:, 2 * H:3 * H])  # through c_t = ... + i g,  g = tanh(z_g)
        torch.mul(g_m * tc, ds[:, 3 * H:], out=dz[:, 3 * H:])  # through m_t = o tanh(c_t),  o = sigmoid(z_o)
        out = torch.empty_like(g)
        torch.mm(dz, self.W_hh, out=out[:, :P])  # dL/dh_{t-1}: back through z = ... + W_hh h_{t-1}   (B, P)
        if cut:
            out[:, P:] = 0  # c_{t-1} reaches s_t only through the carry term f * c_{t-1}: held constant, nothing
        else:
            torch.mul(g_c, f, out=out[:, P:])  # dL/dc_{t-1}: back through the cell path f * c_{t-1}
        return out, dz, g_c

    def cell_adjoint(self, s: torch.Tensor, z: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """dL/dc_t as autograd reports it for the tensor c_t (B, H), from the state adjoint g = dL/ds_t (B, S):

            dL/dc_t = g_c + (g_h W_hr) * o_t * tanh'(c_t)      (W_hr = I without projection)

        the state's own c part plus the path through h_t = W_hr (o_t tanh(c_t)) at the same step (in the state
        space view h_t and c_t are separate coordinates; a graph of tensors also sees c_t -> h_t).
        s (B, S) = s_t, z (B, 4H) = the pre-activations of step t (Trace.preacts).
        """
        P, H = self.h_size, self.hidden_size
        o = torch.sigmoid(z[:, 3 * H:])
        tc = torch.tanh(s[:, P:])
        return g[:, P:] + self._project_back(g[:, :P]) * o * (1 - tc * tc)  # through m_t = o tanh(c_t), h_t = W_hr m_t

    def vjp_cut(self, x, s_prev, g, a=None):
        return self.vjp_gates(x, s_prev, g, a, cut=True)[0]


@dataclass(frozen=True)
class ProjLSTMCell(LSTMCell):
    """nn.LSTM with proj_size = P: an LSTM whose output is projected, state s = [h, c] (B, P + H):

        z = W_xh x_t + b_xh + W_hh h_{t-1} + b_hh       W_hh (4H, P)
        c_t = f * c_{t-1} + i * g                       (B, H)
        h_t = W_hr (o * tanh(c_t))                      W_hr (P, H): PyTorch weight_hr_l0   (B, P)

    One-step Jacobian (B, P + H, P + H): LSTMCell's with the h rows multiplied by W_hr:
        dh_t/dh = W_hr [diag(tanh(c_t) o') W_o + diag(o tanh'(c_t)) dc_t/dh]     dh_t/dc = W_hr diag(o tanh'(c_t) f)
    """

    W_hr: torch.Tensor = None  # (P, H)

    def __post_init__(self) -> None:
        W = self.W_hh
        if not isinstance(W, torch.Tensor) or W.dim() != 2 or W.shape[0] % 4:
            got = tuple(W.shape) if isinstance(W, torch.Tensor) else type(W).__name__
            raise InputError(f"W_hh: expected shape (4*H, P) for lstm with projection, got {got}")
        H, P = W.shape[0] // 4, W.shape[1]
        _check_matrix("W_hh", W, (4 * H, P))
        if not isinstance(self.W_xh, torch.Tensor) or self.W_xh.dim() != 2:
            raise InputError(f"W_xh: expected shape ({4 * H}, D), got {getattr(self.W_xh, 'shape', self.W_xh)!r}")
        _check_matrix("W_xh", self.W_xh, (4 * H, self.W_xh.shape[1]))
        _check_matrix("b_xh", self.b_xh, (4 * H,))
        _check_matrix("b_hh", self.b_hh, (4 * H,))
        _check_matrix("W_hr", self.W_hr, (P, H))

    def _project(self, m):
        return m @ self.W_hr.T  # h_t = W_hr m_t: (B, H) -> (B, P); on (B, n, H) each row

    def _project_back(self, g):
        return g @ self.W_hr  # through h_t = W_hr m_t   (B, H)


@dataclass(frozen=True)
class GRUCell(_Gated):
    """GRU with PyTorch's exact math, gate order (r, z, n), b_hn inside the reset product:

        r = sigmoid(W_xr x + b_xr + W_hr h + b_hr)
        z = sigmoid(W_xz x + b_xz + W_hz h + b_hz)
        n = tanh(W_xn x + b_xn + r * (W_hn h + b_hn))
        h_t = (1 - z) * n + z * h_{t-1}

    One-step Jacobian (B, H, H):
        dn/dh   = diag(tanh'(a_n)) [diag(r) W_hn + diag((W_hn h + b_hn) r') W_hr]
        dh_t/dh = diag(1 - z) dn/dh + diag(z) + diag((h - n) z') W_hz
    """

    kind = "gru"
    gates = 3
    has_carry = True  # z * h_{t-1}

    @property
    def state_size(self) -> int:  # type: ignore[override]
        return self.hidden_size

    def drive(self, x):
        return x @ self.W_xh.T + self.b_xh  # (..., 3H); b_hh stays inside: b_hn is multiplied by r

    def _parts(self, gi, h):
        H = self.hidden_size
        gh = torch.addmm(self.b_hh, h, self.W_hh.T)  # W_hh h + b_hh (B, 3H)
        a_r = gi[:, :H] + gh[:, :H]
        a_z = gi[:, H:2 * H] + gh[:, H:2 * H]
        r = torch.sigmoid(a_r)
        a_n = gi[:, 2 * H:] + r * gh[:, 2 * H:]
        return a_r, a_z, a_n, gh[:, 2 * H:]

    def forward_driven(self, u, s_prev):
        a_r, a_z, a_n, _ = self._parts(u, s_prev)
        z, n = torch.sigmoid(a_z), torch.tanh(a_n)
        return (1 - z) * n + z * s_prev, torch.cat([a_r, a_z, a_n], dim=1)

    def jacobian(self, x, s_prev):
        a_r, a_z, a_n, hn = self._parts(self.drive(x), s_prev)
        r, z, n = torch.sigmoid(a_r), torch.sigmoid(a_z), torch.tanh(a_n)
        col = lambda v: v.unsqueeze(-1)  # noqa: E731
        dn_dh = col(_dtanh_of_value(n)) * (col(r) * self.block(2) + col(hn * _dsig(a_r)) * self.block(0))
        return col(1 - z) * dn_dh + torch.diag_embed(z) + col((s_prev - n) * _dsig(a_z)) * self.block(1)

    def vjp(self, x, s_prev, g, a=None):
        # g^T dh_t/dh_{t-1} without forming J: the forward recomputed (it needs W_hn h + b_hn, not in a), then
        # each line backwards.
        a_r, a_z, a_n, hn = self._parts(self.drive(x), s_prev)
        r, z, n = torch.sigmoid(a_r), torch.sigmoid(a_z), torch.tanh(a_n)
        d_an = g * (1 - z) * (1 - n * n)  # through h_t = (1 - z) n + ...,  n = tanh(a_n)
        dgh = torch.cat([d_an * hn * r * (1 - r),  # through a_n = ... + r (W_hn h + b_hn),  r = sigmoid(a_r)
                         g * (s_prev - n) * z * (1 - z),  # through h_t = n + z (h_{t-1} - n),  z = sigmoid(a_z)
                         d_an * r], dim=1)  # through a_n = ... + r (W_hn h + b_hn)   (B, 3H)
        return dgh @ self.W_hh + g * z  # back through W_hh h_{t-1}, plus the carry z * h_{t-1}

    def vjp_cut(self, x, s_prev, g, a=None):
        _, a_z, _, _ = self._parts(self.drive(x), s_prev)
        return self.vjp(x, s_prev, g) - g * torch.sigmoid(a_z)  # minus the update gate's copy z_t * h_{t-1}


class FunctionCell(Cell):
    """Any user step function s_t = fn(x_t, s_{t-1}) on one example (x (D,), s (S,)) -> (S,).

    Batched with torch.func.vmap; the Jacobian is torch.func.jacrev (vmapped), the VJP torch.func.vjp.

    Example:
        >>> W = torch.randn(3, 3, dtype=torch.float64)
        >>> cell = FunctionCell(lambda x, h: torch.tanh(W @ h + x), state_size=3, input_size=3)
        >>> cell.jacobian(torch.zeros(2, 3, dtype=torch.float64), torch.zeros(2, 3, dtype=torch.float64)).shape
        torch.Size([2, 3, 3])
    """

    kind = "function"

    def __init__(self, fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], state_size: int, input_size: int,
                 dtype: torch.dtype = torch.float64):
        if not callable(fn):
            raise InputError(f"fn: expected a callable step function, got {type(fn).__name__}")
        self.fn = fn
        self.state_size = int(state_size)
        self.input_size = int(input_size)
        self._dtype = dtype
        self._step = torch.func.vmap(fn)
        self._jac = torch.func.vmap(torch.func.jacrev(fn, argnums=1))

    @property
    def dtype(self) -> torch.dtype:
        return self._dtype

    def forward_driven(self, x, s_prev):  # the drive of a step function is x itself
        s = self._step(x, s_prev)
        if s.shape != s_prev.shape:
            raise InputError(f"step function: expected it to return a state of shape {tuple(s_prev.shape[1:])}, "
                             f"got {tuple(s.shape[1:])}")
        return s, s.new_zeros(s.shape[0], 0)

    def jacobian(self, x, s_prev):
        return self._jac(x, s_prev)  # (B, S, S)

    def vjp(self, x, s_prev, g, a=None):
        _, pullback = torch.func.vjp(lambda s: self._step(x, s), s_prev)
        return pullback(g)[0]
