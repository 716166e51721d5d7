"""minGRU and minLSTM (Feng et al. 2024, "Were RNNs All We Needed?"): gates that see x_t alone, so the state
enters linearly, s_t = a_t * s_{t-1} + b_t, and a sequence is one log-space scan; and IndRNN (Li et al. 2018),
whose recurrent weight is a vector: J_t is diagonal but phi makes the recurrence nonlinear (no scan).

    minGRU   h_t = (1 - z_t) h_{t-1} + z_t g(W_h x_t + b_h),   z_t = sigmoid(W_z x_t + b_z)     J_t = diag(1 - z_t)
    minLSTM  h_t = f'_t h_{t-1} + i'_t g(W_h x_t + b_h),  f'_t = f_t / (f_t + i_t)             J_t = diag(f'_t)
    IndRNN   h_t = phi(W_xh x_t + u * h_{t-1} + b_h)                                          J_t = diag(phi'(a_t) u)

with the paper's g(v) = v + 1/2 for v >= 0, sigmoid(v) for v < 0: positive, so log b_t exists and the log-space
scan applies. Everything is computed from log-sigmoid forms where it matters (log(1 - z) = -softplus(k),
log z = -softplus(-k)): nothing underflows however saturated the gates.

Factored VJP (cell_contract): F[0] is the diagonal of J_t; the others multiply g into dL/du_t, u_t = drive(x_t):
    minGRU   u = [k, v]:       dh/dk = z (1 - z) (g(v) - h_{t-1}),    dh/dv = z g'(v)
    minLSTM  u = [k_f, k_i, v]: with P = f' i' (g(v) - h_{t-1}):  dh/dk_f = -P (1 - f),  dh/dk_i = P (1 - i),
                               dh/dv = i' g'(v)
    IndRNN   u = W_xh x + b_h:  dL/du_t = g * phi'(a_t)
Legend: T time, B batch, H hidden (= S), D input size.

Example:
    >>> cell = MinLSTMCell.random(3, 2, seed=0)
    >>> x = torch.randn(40, 2, 2, dtype=torch.float64)
    >>> s0 = -torch.ones(2, 3, dtype=torch.float64)                 # any sign: by linearity
    >>> bool(torch.allclose(cell.scan(x, s0, "log"), cell.scan(x, s0, "sequential"), rtol=1e-12, atol=1e-14))
    True
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as tf

from .activations import Activation, get_activation
from .cell_contract import affine
from .diagonal_cells import DiagonalCell, check_fields, check_option, linear_init, sized_generator

__all__ = ["MinGRUCell", "MinLSTMCell", "IndRNNCell", "g_act", "log_g_act", "dg_act"]


def g_act(v: torch.Tensor) -> torch.Tensor:
    """The paper's candidate activation: v + 1/2 for v >= 0, sigmoid(v) for v < 0 (positive, continuous)."""
    return torch.where(v >= 0, v + 0.5, torch.sigmoid(v))


def log_g_act(v: torch.Tensor) -> torch.Tensor:
    """log g(v): log(v + 1/2) for v >= 0, log sigmoid(v) = -softplus(-v) for v < 0."""
    return torch.where(v >= 0, torch.log(tf.relu(v) + 0.5), -tf.softplus(-v))


def dg_act(v: torch.Tensor) -> torch.Tensor:
    """g'(v): 1 for v >= 0 (autograd's side at 0), sigmoid'(v) for v < 0."""
    s = torch.sigmoid(v)
    return torch.where(v >= 0, torch.ones_like(v), s * (1 - s))


@dataclass(frozen=True)
class _MinRNN(DiagonalCell):
    """What minGRU and minLSTM share: a drive of stacked (W, b) blocks, the linear step, the VJP's products."""

    state_label = "h"
    scan_methods = ("log", "associative", "sequential")
    default_scan = "log"
    blocks = ()  # the gates' letters, in the drive's order (a class attribute, not a field)

    def __post_init__(self) -> None:
        check_fields(self, {n: dims for c in self.blocks for n, dims in ((f"W_{c}", ("H", "D")), (f"b_{c}", ("H",)))})

    @property
    def input_size(self) -> int:  # type: ignore[override]
        return self.W_h.shape[1]

    @property
    def state_size(self) -> int:  # type: ignore[override]
        return self.W_h.shape[0]

    def drive(self, x):
        W = torch.cat([getattr(self, f"W_{c}") for c in self.blocks])  # (G H, D)
        return affine(x, W, torch.cat([getattr(self, f"b_{c}") for c in self.blocks]))  # [k_.., v] (..., G H)

    def _split(self, u):
        return u.unflatten(-1, (len(self.blocks), self.state_size)).unbind(-2)  # the blocks of u, (..., H) each

    def forward_driven(self, u, s_prev):
        a, b = self.transition(u)
        return torch.addcmul(b, a, s_prev), u  # h_t = a_t h_{t-1} + b_t;  a_t: the drive, every gate's argument

    def vjp_apply(self, F, g, carry=True, out=None):
        du = torch.cat([g * f for f in F[1:]], -1) if out is None else torch.cat([g * f for f in F[1:]], -1, out=out)
        return g * F[0], du  # g J_t = g * diag;  dL/du_t: each block's partial times g

    @classmethod
    def random(cls, hidden: int, input_size: int, *, seed: int = 0, dtype: torch.dtype = torch.float64,
               **unknown):
        """nn.Linear's default for every block (as the paper's code): W, b ~ U(-1/sqrt(D), 1/sqrt(D))."""
        gen = sized_generator(cls.kind, hidden, input_size, seed, unknown)
        arrays = {}
        for c in cls.blocks:
            arrays[f"W_{c}"] = linear_init(gen, hidden, input_size, fan_in=input_size).to(dtype)
            arrays[f"b_{c}"] = linear_init(gen, hidden, fan_in=input_size).to(dtype)
        return cls(**arrays)


@dataclass(frozen=True)
class MinGRUCell(_MinRNN):
    """minGRU (Feng et al. 2024, section 3.1; their log-space version, appendix B):

        z_t      = sigmoid(W_z x_t + b_z)                (H,)   the update gate, from x_t alone
        htilde_t = g(W_h x_t + b_h)                      (H,)   g(v) = v + 1/2 (v >= 0), sigmoid(v) (v < 0)
        h_t      = (1 - z_t) h_{t-1} + z_t htilde_t
        J_t      = diag(1 - z_t)

    drive(x) = [k, v] = [W_z x + b_z, W_h x + b_h] (..., 2H), a_t = the drive. transition: a = 1 - z,
    b = z htilde; log_transition: log a = -softplus(k), log b = -softplus(-k) + log g(v). Scans: "log" (the
    paper's, default), "associative", "sequential".

    Example:
        >>> cell = MinGRUCell(torch.zeros(1, 1), torch.zeros(1), torch.zeros(1, 1), torch.zeros(1))
        >>> cell.step(torch.zeros(1, 1), torch.ones(1, 1))      # z = 1/2, htilde = g(0) = 1/2: 0.5 + 0.25
        tensor([[0.7500]])
    """

    W_z: torch.Tensor  # (H, D)
    b_z: torch.Tensor  # (H,)
    W_h: torch.Tensor  # (H, D)
    b_h: torch.Tensor  # (H,)

    kind = "mingru"
    blocks = ("z", "h")

    def transition(self, u):
        k, v = self._split(u)
        return torch.sigmoid(-k), torch.sigmoid(k) * g_act(v)  # a = 1 - z, b = z htilde

    def log_transition(self, u):
        k, v = self._split(u)
        return -tf.softplus(k), -tf.softplus(-k) + log_g_act(v), None  # log(1 - z), log z + log htilde

    def vjp_factors(self, x, s_prev, a=None, s_new=None):
        k, v = self._split(self.drive(x) if a is None else a)
        z, zc = torch.sigmoid(k), torch.sigmoid(-k)  # z, 1 - z
        # h_t = h_{t-1} + z (htilde - h_{t-1}): dz/dk = z (1 - z), dhtilde/dv = g'(v)
        return zc, z * zc * (g_act(v) - s_prev), z * dg_act(v)


@dataclass(frozen=True)
class MinLSTMCell(_MinRNN):
    """minLSTM (Feng et al. 2024, section 3.2, with the normalised gates of its length-independent scaling; the
    log-space version, appendix B):

        f_t = sigmoid(W_f x_t + b_f),   i_t = sigmoid(W_i x_t + b_i)          (H,)
        f'_t = f_t / (f_t + i_t),       i'_t = i_t / (f_t + i_t)               f'_t + i'_t = 1
        htilde_t = g(W_h x_t + b_h)
        h_t = f'_t h_{t-1} + i'_t htilde_t
        J_t = diag(f'_t)

    With diff = softplus(-k_f) - softplus(-k_i) = log(i_t / f_t): f'_t = sigmoid(-diff), i'_t = sigmoid(diff), so
    log f'_t = -softplus(diff), log i'_t = -softplus(-diff) (the paper's code). drive(x) = [k_f, k_i, v]
    (..., 3H), a_t = the drive. Scans: "log" (default), "associative", "sequential".

    Example:
        >>> z = torch.zeros(1, 1)
        >>> MinLSTMCell(z, torch.zeros(1), z, torch.zeros(1), z, torch.zeros(1)).step(z, torch.ones(1, 1))
        tensor([[0.7500]])
    """

    W_f: torch.Tensor  # (H, D)
    b_f: torch.Tensor  # (H,)
    W_i: torch.Tensor  # (H, D)
    b_i: torch.Tensor  # (H,)
    W_h: torch.Tensor  # (H, D)
    b_h: torch.Tensor  # (H,)

    kind = "minlstm"
    blocks = ("f", "i", "h")

    def _diff(self, kf, ki):
        return tf.softplus(-kf) - tf.softplus(-ki)  # log(i / f) = log i - log f

    def transition(self, u):
        kf, ki, v = self._split(u)
        d = self._diff(kf, ki)
        return torch.sigmoid(-d), torch.sigmoid(d) * g_act(v)  # a = f', b = i' htilde

    def log_transition(self, u):
        kf, ki, v = self._split(u)
        d = self._diff(kf, ki)
        return -tf.softplus(d), -tf.softplus(-d) + log_g_act(v), None  # log f', log i' + log htilde

    def vjp_factors(self, x, s_prev, a=None, s_new=None):
        kf, ki, v = self._split(self.drive(x) if a is None else a)
        d = self._diff(kf, ki)
        fp, ip = torch.sigmoid(-d), torch.sigmoid(d)  # f', i'
        # h_t = h_{t-1} + i' (htilde - h_{t-1}), i' = sigmoid(diff): di'/ddiff = f' i'; ddiff/dk_f = -(1 - f),
        # ddiff/dk_i = 1 - i (softplus'(-k) = sigmoid(-k) = 1 - sigmoid(k))
        P = fp * ip * (g_act(v) - s_prev)
        return fp, -P * torch.sigmoid(-kf), P * torch.sigmoid(-ki), ip * dg_act(v)


@dataclass(frozen=True)
class IndRNNCell(DiagonalCell):
    """IndRNN (Li et al. 2018, "Independently Recurrent Neural Network (IndRNN)", eq. 2): each unit sees only its
    own past, through a scalar recurrent weight u_i:

        a_t = W_xh x_t + u * h_{t-1} + b_h          (H,)
        h_t = phi(a_t)                              phi: relu (the paper's) by default
        J_t = diag(phi'(a_t) u)

    so unit i's gradient over t - k steps is prod_j phi'(a_j,i) u_i: the paper keeps it from exploding or vanishing
    by bounding |u_i| (with relu, |u_i| <= 2^(1/T) keeps the growth over T steps within a factor 2). drive(x) =
    W_xh x + b_h; no scan (phi acts on the state). F = (phi'(a_t) u, phi'(a_t)).

    random: u ~ U(0, u_max) (u_max = 1 by default), W_xh nn.Linear's default U(+-1/sqrt(D)), b_h = 0.

    Example:
        >>> cell = IndRNNCell(torch.tensor([0.5, 2.0]), torch.ones(2, 1), torch.zeros(2))
        >>> cell.jacobian(torch.ones(1, 1), torch.tensor([[1.0, -1.0]]))[0]     # relu'(1.5) 0.5, relu'(-1) 2
        tensor([[0.5000, 0.0000],
                [0.0000, 0.0000]])
    """

    u: torch.Tensor  # (H,)
    W_xh: torch.Tensor  # (H, D)
    b_h: torch.Tensor  # (H,)
    activation: Activation = field(default_factory=lambda: get_activation("relu"))

    kind = "indrnn"
    state_label = "h"

    def __post_init__(self) -> None:
        object.__setattr__(self, "activation", get_activation(self.activation))
        check_fields(self, {"u": ("H",), "W_xh": ("H", "D"), "b_h": ("H",)})

    @property
    def input_size(self) -> int:  # type: ignore[override]
        return self.W_xh.shape[1]

    @property
    def state_size(self) -> int:  # type: ignore[override]
        return self.u.shape[0]

    def drive(self, x):
        return affine(x, self.W_xh, self.b_h)  # W_xh x_t + b_h (..., H)

    def forward_driven(self, u, s_prev):
        a = torch.addcmul(u, self.u, s_prev)  # a_t = u * h_{t-1} + W_xh x_t + b_h
        return self.activation.phi(a), a

    def vjp_factors(self, x, s_prev, a=None, s_new=None):
        a = self.u * s_prev + self.drive(x) if a is None else a
        d = self.activation.dphi(a)  # phi'(a_t)
        return d * self.u, d  # the diagonal of J_t, and dh_t/da_t

    def vjp_apply(self, F, g, carry=True, out=None):
        return g * F[0], torch.mul(g, F[1], out=out)  # g J_t = g phi'(a) u;  dL/du_t = dL/da_t = g phi'(a)

    @classmethod
    def random(cls, hidden: int, input_size: int, *, seed: int = 0, dtype: torch.dtype = torch.float64,
               u_max: float = 1.0, activation: str = "relu", **unknown) -> "IndRNNCell":
        """H = hidden, D = input_size; the initialisation of the class docstring."""
        gen = sized_generator(cls.kind, hidden, input_size, seed, unknown)
        u_max = check_option("u_max", u_max, lambda v: v > 0, "u_max > 0")
        u = torch.rand(hidden, generator=gen, dtype=torch.float64) * u_max  # U(0, u_max)
        W_xh = linear_init(gen, hidden, input_size, fan_in=input_size)
        return cls(u.to(dtype), W_xh.to(dtype), torch.zeros(hidden, dtype=dtype), activation)
