"""Linear recurrences with a diagonal transition: the LRU (a fixed complex diagonal) and one S6 selective-SSM
layer of Mamba (a real diagonal chosen by the input). Both are s_t = a_t * s_{t-1} + b_t elementwise, so a whole
sequence is one parallel scan (core/scan.py), and both one-step Jacobians are diagonal and state-independent.

    LRU    (Orvieto et al. 2023)  h_t = lambda * h_{t-1} + gamma * (B x_t)           J_t = diag(lambda) (complex)
    Mamba  (Gu & Dao 2023)        h_t[d, n] = exp(Delta_t[d] A[d, n]) h_{t-1}[d, n] + Delta_t[d] B_t[n] x_t[d]
                                                                                      J_t = diag(exp(Delta_t A))

Factored VJP (cell_contract), g = dL/ds_t:
    LRU    F = (Re lambda, Im lambda)        g J_t = conj(lambda) * g (complex view),  dL/du_t = g
    Mamba  F = (exp(Delta A), Q, Delta x, Delta, B_t)     g J_t = g * exp(Delta A),  dL/du_t = [dL/dk, dL/dB_t, dL/dx]

Legend: T time, B batch, S state size, D input size (= channels for mamba), N units (lru) or state per channel.

Example:
    >>> from rnnscope.core.unroll import unroll
    >>> cell = LRUCell.random(4, 2, seed=0, r_min=0.5, r_max=0.9)
    >>> x = torch.randn(50, 3, 2, dtype=torch.float64)
    >>> bool(torch.allclose(cell.scan(x), unroll(cell, x).states, rtol=1e-12, atol=1e-12))
    True
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as tf

from .cell_contract import affine
from .diagonal_cells import DiagonalCell, check_fields, check_option, linear_init, sized_generator
from .errors import InputError

__all__ = ["LRUCell", "MambaCell"]


@dataclass(frozen=True)
class LRUCell(DiagonalCell):
    """The Linear Recurrent Unit's recurrence (Orvieto et al. 2023, "Resurrecting Recurrent Neural Networks for
    Long Sequences", eq. 7 and appendix A), without its read-out y_t = Re(C h_t) + D x_t:

        lambda_j = exp(-exp(nu_j) + i exp(theta_j))          |lambda_j| = exp(-exp(nu_j)) < 1   (N,) complex
        gamma_j  = exp(gamma_log_j)                          the normalisation, initialised sqrt(1 - |lambda_j|^2)
        h_t      = lambda * h_{t-1} + gamma * (B x_t)         B = B_re + i B_im (N, D),  h_t (N,) complex

    The state is the real 2N view s = [Re h, Im h] (S = 2N), so ||s||_2 = ||h||_2 (the complex Euclidean norm).
    In it, multiplication by lambda_j is the 2x2 block [[Re lambda_j, -Im lambda_j], [Im lambda_j, Re lambda_j]]
    on the pair (Re h_j, Im h_j) = (s_j, s_{N+j}): |lambda_j| times a rotation, spectral norm |lambda_j|. So
    J_t = ds_t/ds_{t-1} is these blocks (the same at every step), the real view of a product of Jacobians is the
    view of the complex product, and their operator norms agree: ||ds_t/ds_k||_2 = max_j |lambda_j|^(t-k).

    drive(x) = [Re(gamma * B x), Im(gamma * B x)] (..., 2N); a_t is empty (A = 0). transition: a = lambda,
    b = gamma * B x_t (complex, width N). Scans: "associative" (default), "sequential"; no "log" (b is complex).

    random: the paper's init_lru_parameters (defaults r_min = 0, r_max = 1, max_phase = 6.28, as its appendix
    and the public reproductions of it): |lambda| uniform on the ring r_min <= |lambda| <= r_max,
    nu_log = log(-log(u1 (r_max^2 - r_min^2) + r_min^2) / 2), theta_log = log(max_phase u2), gamma_log =
    log sqrt(1 - |lambda|^2), B_re, B_im ~ N(0, 1/(2D)) (Glorot-like: E|B_jk|^2 = 1/D).

    Example:
        >>> cell = LRUCell.random(3, 1, seed=0, r_min=0.9, r_max=0.99)
        >>> bool(0.9 <= cell.spectral_radius <= 0.99), cell.state_size, cell.state_label
        (True, 6, '(Re h, Im h)')
        >>> J = cell.jacobian(torch.zeros(1, 1, dtype=torch.float64), torch.zeros(1, 6, dtype=torch.float64))[0]
        >>> bool(torch.allclose(torch.linalg.matrix_norm(J, 2), torch.tensor(cell.spectral_radius, dtype=J.dtype)))
        True
    """

    nu_log: torch.Tensor  # (N,)
    theta_log: torch.Tensor  # (N,)
    gamma_log: torch.Tensor  # (N,)
    B_re: torch.Tensor  # (N, D)
    B_im: torch.Tensor  # (N, D)

    kind = "lru"
    state_label = "(Re h, Im h)"
    scan_methods = ("associative", "sequential")

    def __post_init__(self) -> None:
        check_fields(self, {"nu_log": ("N",), "theta_log": ("N",), "gamma_log": ("N",), "B_re": ("N", "D"),
                            "B_im": ("N", "D")})

    @property
    def units(self) -> int:
        return self.nu_log.shape[0]  # N

    @property
    def input_size(self) -> int:  # type: ignore[override]
        return self.B_re.shape[1]

    @property
    def state_size(self) -> int:  # type: ignore[override]
        return 2 * self.units

    def _polar(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(Re lambda, Im lambda) (N,) each: |lambda| = exp(-exp(nu)), arg lambda = exp(theta)."""
        r, th = torch.exp(-torch.exp(self.nu_log)), torch.exp(self.theta_log)
        return r * torch.cos(th), r * torch.sin(th)

    @property
    def lam(self) -> torch.Tensor:
        """lambda (N,) complex."""
        return torch.complex(*self._polar())

    @property
    def spectral_radius(self) -> float:
        """max_j |lambda_j|: the norm of every J_t, and the exact rate of ||ds_t/ds_k||_2."""
        return float(torch.exp(-torch.exp(self.nu_log.detach().to(torch.float64))).max())

    def drive(self, x):
        gamma = torch.exp(self.gamma_log).unsqueeze(1)  # (N, 1)
        return torch.matmul(x, torch.cat([gamma * self.B_re, gamma * self.B_im]).T)  # [Re, Im] of gamma * B x (..., 2N)

    def forward_driven(self, u, s_prev):
        N = self.units
        lr, li = self._polar()
        h_re, h_im = s_prev[:, :N], s_prev[:, N:]
        re = lr * h_re - li * h_im + u[:, :N]  # Re(lambda h_{t-1}) + Re(gamma B x_t)
        im = li * h_re + lr * h_im + u[:, N:]  # Im(lambda h_{t-1}) + Im(gamma B x_t)
        return torch.cat([re, im], 1), s_prev.new_zeros(s_prev.shape[0], 0)

    def jacobian(self, x, s_prev):
        lr, li = self._polar()
        blocks = torch.cat([torch.cat([torch.diag(lr), -torch.diag(li)], 1),  # d Re h_t / d (Re h, Im h)
                            torch.cat([torch.diag(li), torch.diag(lr)], 1)])  # d Im h_t / d (Re h, Im h)   (S, S)
        return blocks.expand(s_prev.shape[0], -1, -1).clone()  # the same at every step and sequence (B, S, S)

    def log_unit_gains(self, x, s_prev):
        lead = (*s_prev.shape[:-1], self.units)
        return (-torch.exp(self.nu_log)).expand(lead)  # log |lambda_j| = -exp(nu_j) (..., N): J's 2x2 blocks

    def unit_of_state(self):
        return torch.arange(self.units).repeat(2)  # (2N,): Re h_j and Im h_j are unit j's block

    def vjp_factors(self, x, s_prev, a=None, s_new=None):
        lr, li = self._polar()
        lead = (*s_prev.shape[:-1], self.units)
        return lr.expand(lead), li.expand(lead)  # (..., N) each: Re lambda, Im lambda

    def vjp_apply(self, F, g, carry=True, out=None):
        lr, li = F
        N = self.units
        g_re, g_im = g[..., :N], g[..., N:]
        # g^T J_t: back through the blocks [[Re l, -Im l], [Im l, Re l]], i.e. conj(lambda) * (g_re + i g_im)
        back = torch.cat([lr * g_re + li * g_im, lr * g_im - li * g_re], -1)
        return back, (g if out is None else out.copy_(g))  # dL/du_t = g: u_t enters s_t additively

    def transition(self, u):
        N = self.units
        b = torch.complex(u[..., :N], u[..., N:])  # gamma * B x_t  (..., N) complex
        return self.lam.expand(b.shape), b

    def _scan_view(self, s):
        return torch.complex(s[..., :self.units], s[..., self.units:])  # h = Re + i Im  (..., N)

    def _state_view(self, s):
        return torch.cat([s.real, s.imag], -1)  # (..., 2N)

    @classmethod
    def random(cls, hidden: int, input_size: int, *, seed: int = 0, dtype: torch.dtype = torch.float64,
               r_min: float = 0.0, r_max: float = 1.0, max_phase: float = 6.28, **unknown) -> "LRUCell":
        """N = hidden units, D = input_size, the paper's initialisation (class docstring)."""
        gen = sized_generator(cls.kind, hidden, input_size, seed, unknown)
        r_min = check_option("r_min", r_min, lambda v: 0 <= v < 1, "0 <= r_min < 1")
        r_max = check_option("r_max", r_max, lambda v: r_min < v <= 1, f"r_min = {r_min:g} < r_max <= 1")
        max_phase = check_option("max_phase", max_phase, lambda v: v > 0, "max_phase > 0")
        f64, N, D = torch.float64, hidden, input_size
        u1, u2 = torch.rand(N, generator=gen, dtype=f64), torch.rand(N, generator=gen, dtype=f64)
        # |lambda|^2 = exp(-2 exp(nu_log)) ~ U[r_min^2, r_max^2]: uniform on the ring
        nu_log = torch.log(-0.5 * torch.log(u1 * (r_max ** 2 - r_min ** 2) + r_min ** 2))
        theta_log = torch.log(max_phase * u2)  # arg lambda ~ U[0, max_phase]
        modulus = torch.exp(-torch.exp(nu_log))
        if not (bool(torch.isfinite(nu_log).all() & torch.isfinite(theta_log).all()) and bool((modulus < 1).all())):
            raise InputError(f"r_max: expected every |lambda| < 1 and a finite nu_log, theta_log (gamma = sqrt(1 - "
                             f"|lambda|^2) > 0), got |lambda| = {modulus.max().item():.17g} (or a zero draw) with "
                             f"seed {seed}; use r_max < 1 or another seed")
        gamma_log = torch.log(torch.sqrt(1 - modulus ** 2))
        B_re = torch.randn(N, D, generator=gen, dtype=f64) / math.sqrt(2 * D)
        B_im = torch.randn(N, D, generator=gen, dtype=f64) / math.sqrt(2 * D)
        return cls(*(t.to(dtype) for t in (nu_log, theta_log, gamma_log, B_re, B_im)))


@dataclass(frozen=True)
class MambaCell(DiagonalCell):
    """One S6 selective state-space layer of Mamba (Gu & Dao 2023, "Mamba: Linear-Time Sequence Modeling with
    Selective State Spaces", Algorithm 2), on its own: no in/out projections, convolution, gate or skip D. Each
    input channel d of x_t (D,) drives its own state h[d, :] of N = d_state entries (S = D N, d-major):

        Delta_t = softplus(W_delta x_t + b_delta)      (D,)     the step size, chosen by the input
        A       = -exp(A_log)                          (D, N)   S4D-real init A[d, n] = -(n + 1)
        B_t     = W_B x_t,   C_t = W_C x_t             (N,)
        h_t[d, n] = exp(Delta_t[d] A[d, n]) h_{t-1}[d, n] + Delta_t[d] B_t[n] x_t[d]
        y_t[d]    = sum_n C_t[n] h_t[d, n]             (`output`)

    zero-order hold for A, Euler for B (as Mamba's selective_scan reference). J_t = diag(exp(Delta_t A)), every
    entry in (0, 1): input-dependent, state-independent. W_delta is full rank (Mamba's dt_rank = D).

    drive(x) = [W_delta x + b_delta, W_B x, x] = [k_t, B_t, x_t] (..., 2D + N); a_t = k_t (D,), the argument of
    softplus. transition: a = exp(Delta A), b = Delta B x (width S). Scans: "associative" (default),
    "sequential", "log" (log a = Delta A exactly; b of either sign: its positive and negative parts).

    random: Mamba's initialisation (mamba_simple.py): dt = softplus(b_delta) log-uniform in [dt_min, dt_max] =
    [0.001, 0.1] (b_delta = dt + log(-expm1(-dt)), the inverse softplus; Mamba's extra floor dt_init_floor = 1e-4
    lies below the default dt_min and is not applied), W_delta ~ U(+-dt_rank^(-1/2)) = U(+-1/sqrt(D)), W_B, W_C
    nn.Linear's default U(+-1/sqrt(D)), A_log[d, n] = log(n + 1).

    Example:
        >>> cell = MambaCell.random(2, 3, seed=0)        # N = 2 per channel, D = 3 channels
        >>> cell.state_size, (-torch.exp(cell.A_log[0])).tolist()
        (6, [-1.0, -2.0])
    """

    A_log: torch.Tensor  # (D, N)
    W_delta: torch.Tensor  # (D, D)
    b_delta: torch.Tensor  # (D,)
    W_B: torch.Tensor  # (N, D)
    W_C: torch.Tensor  # (N, D)

    kind = "mamba"
    state_label = "h[d, n]"
    scan_methods = ("associative", "log", "sequential")

    def __post_init__(self) -> None:
        check_fields(self, {"A_log": ("D", "N"), "W_delta": ("D", "D"), "b_delta": ("D",), "W_B": ("N", "D"),
                            "W_C": ("N", "D")})

    @property
    def input_size(self) -> int:  # type: ignore[override]
        return self.A_log.shape[0]  # D

    @property
    def d_state(self) -> int:
        return self.A_log.shape[1]  # N

    @property
    def state_size(self) -> int:  # type: ignore[override]
        return self.A_log.numel()  # D N

    def drive(self, x):
        return torch.cat([affine(x, self.W_delta, self.b_delta), torch.matmul(x, self.W_B.T), x], -1)  # (..., 2D + N)

    def _parts(self, u):
        """(k, Delta, B_t, x) of drives u (..., 2D + N): (..., D), (..., D), (..., N), (..., D)."""
        D, N = self.input_size, self.d_state
        k = u[..., :D]
        return k, tf.softplus(k), u[..., D:D + N], u[..., D + N:]

    def _b(self, delta, Bt, x):
        return ((delta * x).unsqueeze(-1) * Bt.unsqueeze(-2)).flatten(-2)  # Delta[d] x[d] B_t[n]  (..., S)

    def _log_a(self, delta):
        return (delta.unsqueeze(-1) * -torch.exp(self.A_log)).flatten(-2)  # Delta[d] A[d, n]  (..., S)

    def transition(self, u):
        _, delta, Bt, x = self._parts(u)
        return torch.exp(self._log_a(delta)), self._b(delta, Bt, x)

    def log_transition(self, u):
        _, delta, Bt, x = self._parts(u)
        b = self._b(delta, Bt, x)
        return self._log_a(delta), torch.log(b.abs()), torch.sign(b)

    def forward_driven(self, u, s_prev):
        a, b = self.transition(u)
        return torch.addcmul(b, a, s_prev), u[..., :self.input_size]  # h_t = a h_{t-1} + b;  a_t = k_t

    def output(self, s: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """y_t[d] = sum_n C_t[n] h_t[d, n] with C_t = W_C x_t: s (..., S), x (..., D) -> (..., D)."""
        C = torch.matmul(x, self.W_C.T)  # (..., N)
        return (s.unflatten(-1, (self.input_size, self.d_state)) * C.unsqueeze(-2)).sum(-1)

    def vjp_factors(self, x, s_prev, a=None, s_new=None):
        """F = (exp(Delta A), Q, Delta x, Delta, B_t) for any leading dimensions (the drive is recomputed):

            Q[d, n] = softplus'(k[d]) (A[d, n] exp(Delta A)[d, n] h_{t-1}[d, n] + x[d] B_t[n])  = dh_t[d, n]/dk[d]
        """
        k, delta, Bt, xx = self._parts(self.drive(x))
        A = -torch.exp(self.A_log)  # (D, N)
        ea = torch.exp(delta.unsqueeze(-1) * A)  # (..., D, N)
        h = s_prev.unflatten(-1, ea.shape[-2:])
        Q = torch.sigmoid(k).unsqueeze(-1) * (A * ea * h + xx.unsqueeze(-1) * Bt.unsqueeze(-2))
        return ea.flatten(-2), Q.flatten(-2), delta * xx, delta, Bt

    def vjp_apply(self, F, g, carry=True, out=None):
        ea, Q, dx, delta, Bt = F
        G = g.unflatten(-1, (self.input_size, self.d_state))  # dL/dh_t[d, n]
        dk = (g * Q).unflatten(-1, G.shape[-2:]).sum(-1)  # dL/dk[d]: through Delta = softplus(k), in a and in b
        dB = (G * dx.unsqueeze(-1)).sum(-2)  # dL/dB_t[n] = sum_d g[d, n] Delta[d] x[d]   (b = Delta x B_t)
        dxx = delta * (G * Bt.unsqueeze(-2)).sum(-1)  # dL/dx[d] through b only = Delta[d] sum_n g[d, n] B_t[n]
        du = torch.cat([dk, dB, dxx], -1) if out is None else torch.cat([dk, dB, dxx], -1, out=out)
        return g * ea, du  # g J_t = g * exp(Delta A): back through the diagonal

    @classmethod
    def random(cls, hidden: int, input_size: int, *, seed: int = 0, dtype: torch.dtype = torch.float64,
               dt_min: float = 0.001, dt_max: float = 0.1, **unknown) -> "MambaCell":
        """N = hidden (d_state), D = input_size channels, Mamba's initialisation (class docstring)."""
        gen = sized_generator(cls.kind, hidden, input_size, seed, unknown)
        dt_min = check_option("dt_min", dt_min, lambda v: v > 0, "dt_min > 0")
        dt_max = check_option("dt_max", dt_max, lambda v: v >= dt_min, f"dt_max >= dt_min = {dt_min:g}")
        f64, N, D = torch.float64, hidden, input_size
        A_log = torch.log(torch.arange(1, N + 1, dtype=f64)).repeat(D, 1)  # A[d, n] = -(n + 1)
        W_delta = linear_init(gen, D, D, fan_in=D)
        dt = torch.exp(torch.rand(D, generator=gen, dtype=f64) * (math.log(dt_max) - math.log(dt_min))
                       + math.log(dt_min))  # log-uniform in [dt_min, dt_max]
        b_delta = dt + torch.log(-torch.expm1(-dt))  # softplus(b_delta) = dt
        W_B, W_C = linear_init(gen, N, D, fan_in=D), linear_init(gen, N, D, fan_in=D)
        return cls(*(t.to(dtype) for t in (A_log, W_delta, b_delta, W_B, W_C)))
