"""coRNN (Rusch & Mishra 2021, "Coupled Oscillatory Recurrent Neural Network (coRNN): An accurate and (gradient)
stable architecture for learning long time dependencies", ICLR 2021): a network of damped, driven nonlinear
oscillators y'' = tanh(W y + W_z y' + V x + b) - gamma y - epsilon y', discretised in time with step dt; one cell
under the cell contract with its exact one-step Jacobian and factored VJP.

Legend: T time, B batch, S = 2H state size, D input size, H hidden size (oscillators).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np
import torch

from .cell_contract import Cell, affine, check_matrix, rows, sized_generator
from .errors import InputError

__all__ = ["CoRNNCell", "CORNN_DEFAULTS"]

CORNN_DEFAULTS = {"dt": 0.042, "gamma": 2.7, "epsilon": 4.7}  # the paper's sMNIST run (tk-rusch/coRNN, sMNIST_task.py)


def _positive(name: str, v) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not (0 < float(v) < math.inf):
        raise InputError(f"{name}: expected a positive finite number, got {v!r}")
    return float(v)


@dataclass(frozen=True)
class CoRNNCell(Cell):
    """coRNN, the explicit scheme of the paper's code (tk-rusch/coRNN, coRNNCell.forward); state s = (y, z)
    (B, 2H), y (the oscillators' positions, read out) first, z = y' their velocities:

        a_t = W y_{t-1} + W_z z_{t-1} + V x_t + b                       (B, H)
        z_t = z_{t-1} + dt (tanh(a_t) - gamma y_{t-1} - epsilon z_{t-1})
        y_t = y_{t-1} + dt z_t

    (The paper's eq. (3), as other libraries transcribe it (e.g. RecurrentLayers.jl), takes the damping
    implicitly, -dt epsilon z_t; its code, followed here, uses z_{t-1}.)

    One-step Jacobian (B, 2H, 2H), D_t = diag(tanh'(a_t)), columns (y, z) of s_{t-1}:
        Z_y = dz_t/dy_{t-1} = dt (D_t W - gamma I)          Z_z = dz_t/dz_{t-1} = (1 - dt epsilon) I + dt D_t W_z
        J_t = [[I + dt Z_y,  dt Z_z],
               [Z_y,         Z_z   ]]
    With W = W_z = 0 it is the constant M = [[(1 - dt^2 gamma) I, dt (1 - dt epsilon) I], [-dt gamma I,
    (1 - dt epsilon) I]]: a damped linear oscillator, ds_t/ds_k = M^(t-k).

    Factored VJP (cell_contract), g = (g_y, g_z) = dL/ds_t, F = (tanh'(a_t),):
        G_z = g_z + dt g_y                     dL/dz_t in full (y_t = y_{t-1} + dt z_t)
        dL/du_t = dt tanh'(a_t) G_z            u_t = V x_t + b
        g J_t = [g_y + dL/du_t W - dt gamma G_z,  (1 - dt epsilon) G_z + dL/du_t W_z]

    Gradient bounds. Directly from J_t (|tanh'| <= 1), with beta = |1 - dt epsilon| + dt (||W||_inf
    + ||W_z||_inf + gamma): the z rows of J_t sum to at most beta in absolute value, the y rows to 1 + dt beta, so
        ||ds_t/ds_k||_inf <= max(beta, 1 + dt beta)^(t-k)
    (growth at most exp(dt beta (t-k)) when beta <= 1/(1 - dt)): the exponent scales with dt, not with the number
    of steps alone (jacobian_bound() gives the per-step factor). The paper proves bounds on the hidden-state
    gradients that mitigate both explosion and vanishing, for its scheme (eq. (3), implicit damping) under its
    assumptions on dt (its abstract says so); the statement of the proposition itself (constants, the condition
    on dt) could not be read in the copies searchable here, so it is not written out: only the bound above,
    derived directly from J_t, is claimed. Read the measured profile.

    Initialisation (`random`) as the paper's code: one nn.Linear(D + 2H, H) over the concatenation (x, z, y), so
    V, W_z, W and b are U(-1/sqrt(D + 2H), 1/sqrt(D + 2H)) (nn.Linear's default, fan-in D + 2H).

    Example:
        >>> cell = CoRNNCell.random(4, 1, seed=0)
        >>> cell.state_size, cell.h_size, cell.dt, cell.gamma, cell.epsilon
        (8, 4, 0.042, 2.7, 4.7)
        >>> s = cell.step(torch.ones(1, 1, dtype=torch.float64), cell.zero_state(1))
        >>> torch.allclose(s[:, :4], cell.dt * s[:, 4:])     # y_1 = y_0 + dt z_1 from y_0 = 0
        True
    """

    W: torch.Tensor  # (H, H)  positions y_{t-1} -> a_t
    W_z: torch.Tensor  # (H, H)  velocities z_{t-1} -> a_t
    V: torch.Tensor  # (H, D)  input x_t -> a_t
    b: torch.Tensor  # (H,)
    dt: float = CORNN_DEFAULTS["dt"]
    gamma: float = CORNN_DEFAULTS["gamma"]
    epsilon: float = CORNN_DEFAULTS["epsilon"]

    kind = "cornn"
    state_label = "(y, z)"

    def __post_init__(self) -> None:
        for name in ("dt", "gamma", "epsilon"):
            object.__setattr__(self, name, _positive(name, getattr(self, name)))
        if not isinstance(self.W, torch.Tensor) or self.W.dim() != 2 or self.W.shape[0] < 1:
            got = tuple(self.W.shape) if isinstance(self.W, torch.Tensor) else type(self.W).__name__
            raise InputError(f"W: expected a square matrix (H, H) with H >= 1, got {got}")
        H = self.W.shape[0]
        check_matrix("W", self.W, (H, H))
        check_matrix("W_z", self.W_z, (H, H), f"H = {H} from W")
        if not isinstance(self.V, torch.Tensor) or self.V.dim() != 2 or self.V.shape[1] < 1:
            raise InputError(f"V: expected shape ({H}, D) with D >= 1 (H = {H} from W), got "
                             f"{tuple(getattr(self.V, 'shape', ())) or type(self.V).__name__}")
        check_matrix("V", self.V, (H, self.V.shape[1]), f"H = {H} from W")
        check_matrix("b", self.b, (H,), f"H = {H} from W")
        dts = {self.W.dtype, self.W_z.dtype, self.V.dtype, self.b.dtype}
        if len(dts) > 1:
            raise InputError(f"W, W_z, V, b: expected one dtype, got {', '.join(sorted(map(str, dts)))}")

    @property
    def dtype(self) -> torch.dtype:
        return self.W.dtype

    @property
    def input_size(self) -> int:  # type: ignore[override]
        return self.V.shape[1]

    @property
    def hidden_size(self) -> int:
        return self.W.shape[0]

    @property
    def h_size(self) -> int:
        return self.hidden_size

    @property
    def state_size(self) -> int:  # type: ignore[override]
        return 2 * self.hidden_size

    def jacobian_bound(self) -> float:
        """max(beta, 1 + dt beta), beta = |1 - dt epsilon| + dt (||W||_inf + ||W_z||_inf + gamma): a bound on
        ||J_t||_inf at every step (the class docstring), so ||ds_t/ds_k||_inf <= jacobian_bound()^(t-k)."""
        inf = lambda M: float(M.abs().sum(1).max()) if M.numel() else 0.0  # noqa: E731  max row sum
        beta = abs(1 - self.dt * self.epsilon) + self.dt * (inf(self.W) + inf(self.W_z) + self.gamma)
        return max(beta, 1 + self.dt * beta)

    def linear_map(self) -> torch.Tensor:
        """M (2H, 2H): the one-step Jacobian with W = W_z = 0 (the class docstring), in the cell's dtype."""
        H, dt, I = self.hidden_size, self.dt, torch.eye(self.hidden_size, dtype=self.dtype)
        return torch.cat([torch.cat([(1 - dt * dt * self.gamma) * I, dt * (1 - dt * self.epsilon) * I], 1),
                          torch.cat([-dt * self.gamma * I, (1 - dt * self.epsilon) * I], 1)], 0)

    # ------------------------------------------------------------------------------------------------ forward

    def drive(self, x):
        return affine(x, self.V, self.b)  # V x_t + b (..., H)

    def _preact(self, u, s_prev):
        H = self.hidden_size
        y, z = s_prev[..., :H], s_prev[..., H:]
        return u + torch.matmul(y, self.W.T) + torch.matmul(z, self.W_z.T)  # a_t = W y + W_z z + u_t (..., H)

    def forward_driven(self, u, s_prev):
        H, dt = self.hidden_size, self.dt
        y, z = s_prev[..., :H], s_prev[..., H:]
        a = self._preact(u, s_prev)  # (B, H)
        z_new = z + dt * (torch.tanh(a) - self.gamma * y - self.epsilon * z)  # z_t
        y_new = y + dt * z_new  # y_t
        return torch.cat([y_new, z_new], -1), a

    # ------------------------------------------------------------------------------------------------ backward

    def jacobian(self, x, s_prev):
        H, dt = self.hidden_size, self.dt
        t = torch.tanh(self._preact(self.drive(x), s_prev))
        d = (1 - t * t).unsqueeze(-1)  # (B, H, 1) tanh'(a_t): scales rows
        I = torch.eye(H, dtype=t.dtype)
        Zy = dt * (d * self.W - self.gamma * I)  # dz_t/dy_{t-1}: through tanh(a_t) and -gamma y   (B, H, H)
        Zz = (1 - dt * self.epsilon) * I + dt * (d * self.W_z)  # dz_t/dz_{t-1}: the carry, tanh(a_t), -eps z
        return torch.cat([torch.cat([I + dt * Zy, dt * Zz], -1),  # y_t = y_{t-1} + dt z_t
                          torch.cat([Zy, Zz], -1)], -2)  # (B, 2H, 2H)

    def vjp(self, x, s_prev, g, a=None):
        return self.vjp_apply(self.vjp_factors(x, s_prev, a), g)[0]

    def vjp_factors(self, x, s_prev, a=None, s_new=None):
        """F = (tanh'(a_t),) (..., H) for any leading dimensions; a the pre-activations, or recomputed."""
        a = self._preact(self.drive(x), s_prev) if a is None else a
        t = torch.tanh(a)
        return (1 - t * t,)

    def vjp_apply(self, F, g, carry=True, out=None):
        H, dt = self.hidden_size, self.dt
        gy, gz = g[..., :H], g[..., H:]
        Gz = torch.add(gz, gy, alpha=dt)  # dL/dz_t: its own part plus through y_t = y_{t-1} + dt z_t
        du = torch.mul(Gz, F[0], out=out).mul_(dt)  # dL/du_t = dL/da_t: through z_t = ... + dt tanh(a_t)
        gy_prev = gy + du @ self.W - (dt * self.gamma) * Gz  # through y_t's carry, a_t (W y) and -dt gamma y
        gz_prev = (1 - dt * self.epsilon) * Gz + du @ self.W_z  # through z_t's carry, -dt eps z and a_t (W_z z)
        return torch.cat([gy_prev, gz_prev], -1), du

    def param_grads(self, x, s_prev, a, du):
        H = self.hidden_size
        du2 = rows(du)  # dL/da_t, a = W y + W_z z + V x + b (dt, gamma, epsilon: fixed numbers, not fields here)
        sp = rows(s_prev)
        return {"W": du2.T @ sp[:, :H], "W_z": du2.T @ sp[:, H:], "V": du2.T @ rows(x), "b": du2.sum(0)}

    # ------------------------------------------------------------------------------------------------ building

    @classmethod
    def array_names(cls) -> tuple[str, ...]:
        return ("W", "W_z", "V", "b", "dt", "gamma", "epsilon")

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], dtype: torch.dtype = torch.float64) -> "CoRNNCell":
        """A cell from arrays named as the fields: W (H, H), W_z (H, H), V (H, D), b (H,); dt, gamma, epsilon
        as scalars (0-d or one-element arrays), the paper's sMNIST values where absent."""
        missing = [n for n in ("W", "W_z", "V", "b") if n not in arrays]
        if missing:
            raise InputError(f"cornn arrays: expected W, W_z, V, b (and dt, gamma, epsilon), got only "
                             f"{sorted(arrays) or 'no arrays'}")
        t = {n: torch.as_tensor(np.asarray(arrays[n], dtype=np.float64)).to(dtype) for n in ("W", "W_z", "V", "b")}
        k = {}
        for n, default in CORNN_DEFAULTS.items():
            v = np.asarray(arrays.get(n, default), dtype=np.float64)
            if v.size != 1:
                raise InputError(f"{n}: expected one number, got an array of shape {v.shape}")
            k[n] = float(v.reshape(()))
        return cls(t["W"], t["W_z"], t["V"], t["b"], **k)

    @classmethod
    def random(cls, hidden: int, input_size: int, *, seed: int = 0, dtype: torch.dtype = torch.float64,
               dt: float = CORNN_DEFAULTS["dt"], gamma: float = CORNN_DEFAULTS["gamma"],
               epsilon: float = CORNN_DEFAULTS["epsilon"], **unknown) -> "CoRNNCell":
        """The paper code's initialisation (class docstring); dt, gamma, epsilon: positive (sMNIST defaults)."""
        gen = sized_generator(cls.kind, hidden, input_size, seed, unknown, tuple(CORNN_DEFAULTS))
        dt, gamma, epsilon = _positive("dt", dt), _positive("gamma", gamma), _positive("epsilon", epsilon)
        H, D = hidden, input_size
        bound = 1 / math.sqrt(D + 2 * H)  # nn.Linear(D + 2H, H): U(-1/sqrt(fan_in), 1/sqrt(fan_in))
        Wall = (torch.rand(H, D + 2 * H, generator=gen, dtype=torch.float64) * 2 - 1) * bound  # columns (x, z, y)
        b = (torch.rand(H, generator=gen, dtype=torch.float64) * 2 - 1) * bound
        V, W_z, W = Wall[:, :D], Wall[:, D:D + H], Wall[:, D + H:]
        return cls(W.to(dtype), W_z.to(dtype), V.to(dtype), b.to(dtype), dt, gamma, epsilon)
