"""xLSTM's sLSTM (Beck et al. 2024, "xLSTM: Extended Long Short-Term Memory", sec. 2.2 and appendix), one cell
under the cell contract, with its exact one-step Jacobian and factored VJP.

Legend: T time, B batch, S = 4H state size, D input size, H hidden size, K heads, E = H / K head size.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np
import torch
import torch.nn.functional as Fn

from .cell_contract import Cell, affine, check_matrix, rows, sized_generator
from .errors import InputError

__all__ = ["SLSTMCell", "FORGET_GATES", "SLSTM_BIAS_INITS", "SLSTM_RECURRENT_INITS"]

FORGET_GATES = ("sigmoid", "exp")
SLSTM_BIAS_INITS = ("powerlaw_blockdependent", "small_init", "standard", "zeros")
SLSTM_RECURRENT_INITS = ("zeros", "standard")


def _choice(name: str, value, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise InputError(f"{name}: expected one of {', '.join(allowed)}, got {value!r}")
    return value


@dataclass(frozen=True)
class SLSTMCell(Cell):
    """sLSTM: scalar memory, exponential input gate, a normaliser n_t and a stabiliser m_t; memory mixing only
    inside a head (R block-diagonal). Gate order (z, i, f, o); state s = (h, c, n, m) (B, 4H), h first:

        [zt, it, ft, ot] = W x_t + R h_{t-1} + b               (B, 4H)  R: K blocks (E, E) per gate
        z = tanh(zt),  o = sigmoid(ot)
        log f_t = ft (forget "exp")  or  logsigmoid(ft) (forget "sigmoid")
        m_t  = max(log f_t + m_{t-1}, it)                      the stabiliser
        i'_t = exp(it - m_t),  f'_t = exp(log f_t + m_{t-1} - m_t)      both <= 1, one of them = 1
        c_t  = f'_t c_{t-1} + i'_t z_t
        n_t  = f'_t n_{t-1} + i'_t
        h_t  = o_t c_t / n_t

    The stabiliser cancels in c_t / n_t: with c~_t = exp(m_t) c_t, n~_t = exp(m_t) n_t the recurrence is the
    unstabilised c~_t = f c~_{t-1} + i z, n~_t = f n~_{t-1} + i (f = exp(log f_t), i = exp(it)) and h_t is the
    same. Division: from s_0 = 0 (n_0 = 0), i'_1 = exp(it - m_1) > 0 so n_1 > 0, and n_t > 0 from there on
    (n_t >= i'_t > 0): the quotient is always defined for n_0 >= 0. The official code (NX-AI/xlstm,
    blocks/slstm/src/vanilla/slstm.py) takes m_1 = it when n_0 = 0; here m_t is the max at every step; from
    c_0 = n_0 = 0 the two differ only in the common scale of (c_1, n_1), which cancels in h_1 = o_1 z_1.

    One-step Jacobian (B, 4H, 4H), columns (h, c, n, m) of s_{t-1}, of the stabilised recurrence as computed.
    The max has the derivative of the branch that won (sel = [log f_t + m_{t-1} >= it]; a tie has measure zero):

        dm_t  = sel (lf' dft + dm_{t-1}) + (1 - sel) dit          lf' = 1 (exp) or 1 - sigmoid(ft) (sigmoid)
        with Dc = (1 - sel) f' c_{t-1} - sel i' z,  Dn = (1 - sel) f' n_{t-1} - sel i':
        dc_t  = i' z' dzt - Dc dit + lf' Dc dft + Dc dm_{t-1} + f' dc_{t-1}          z' = 1 - z^2
        dn_t  =         - Dn dit + lf' Dn dft + Dn dm_{t-1} + f' dn_{t-1}
        dh_t  = o' q dot + (o / n_t) (dc_t - q dn_t)                    q = c_t / n_t,  o' = o (1 - o)
        d{zt, it, ft, ot} = R_{z, i, f, o} dh_{t-1}

    Factored VJP (cell_contract), g = (g_h, g_c, g_n, g_m) = dL/ds_t:
        G_c = g_c + g_h o / n_t,  G_n = g_n - g_h o q / n_t        dL/dc_t, dL/dn_t in full (through h_t)
        E   = G_c Dc + G_n Dn + g_m sel                            dL/dm_{t-1}
        dL/du_t = [G_c i' z',  g_m - E,  lf' E,  g_h o' q]         (B, 4H), u_t = W x_t + b
        g J_t = [R^T dL/du_t,  G_c f',  G_n f',  E]

    Initialisation (`random`), as the official code (NX-AI/xlstm, blocks/slstm/cell.py, sLSTMCellConfig):
    recurrent_weight_init "zeros" (R = 0), bias_init "powerlaw_blockdependent" (forget bias of unit j of a head
    b_f[j] = 5 - 12 (j / (E - 1))^0.3, from 5 down to -7, the one-block value; the other biases 0; E = 1: 5);
    its forget gate is the sigmoid one (logsigmoid in slstm_forward_pointwise). W as nn.Linear's default,
    U(-1/sqrt(D), 1/sqrt(D)) (the official layer draws its headwise input projections with small_init instead).

    Example:
        >>> cell = SLSTMCell.random(8, 3, seed=0)
        >>> cell.heads, cell.state_size, cell.h_size, tuple(cell.R.shape)
        (4, 32, 8, (4, 4, 2, 2))
        >>> s, a = cell.forward(torch.ones(2, 3, dtype=torch.float64), cell.zero_state(2))
        >>> bool((s[:, 16:24] > 0).all())      # n_1 = i'_1 > 0 from n_0 = 0
        True
    """

    W: torch.Tensor  # (4H, D) input weights, gate blocks (z, i, f, o)
    R: torch.Tensor  # (4, K, E, E) recurrent weights: R[g, k] maps head k of h_{t-1} to head k of gate g
    b: torch.Tensor  # (4H,) biases, gate blocks (z, i, f, o)
    forget: str = "sigmoid"  # "sigmoid" (log f = logsigmoid(ft), the official default) or "exp" (log f = ft)

    kind = "slstm"
    state_label = "(h, c, n, m)"

    def __post_init__(self) -> None:
        _choice("forget", self.forget, FORGET_GATES)
        if not isinstance(self.R, torch.Tensor) or self.R.dim() != 4 or self.R.shape[0] != 4 \
                or self.R.shape[2] != self.R.shape[3]:
            got = tuple(self.R.shape) if isinstance(self.R, torch.Tensor) else type(self.R).__name__
            raise InputError(f"R: expected shape (4, heads, H/heads, H/heads), got {got}")
        K, E = self.R.shape[1], self.R.shape[2]
        check_matrix("R", self.R, (4, K, E, E))
        H = K * E
        if H < 1:
            raise InputError(f"R: expected at least one head of at least one unit, got shape {tuple(self.R.shape)}")
        if not isinstance(self.W, torch.Tensor) or self.W.dim() != 2 or self.W.shape[1] < 1:
            raise InputError(f"W: expected shape ({4 * H}, D) with D >= 1 (H = {H} from R), got "
                             f"{tuple(getattr(self.W, 'shape', ())) or type(self.W).__name__}")
        check_matrix("W", self.W, (4 * H, self.W.shape[1]), f"H = {H} from R")
        check_matrix("b", self.b, (4 * H,), f"H = {H} from R")
        if not (self.W.dtype == self.R.dtype == self.b.dtype):
            raise InputError(f"W, R, b: expected one dtype, got {self.W.dtype}, {self.R.dtype}, {self.b.dtype}")

    # ------------------------------------------------------------------------------------------------ sizes

    @property
    def dtype(self) -> torch.dtype:
        return self.W.dtype

    @property
    def input_size(self) -> int:  # type: ignore[override]
        return self.W.shape[1]

    @property
    def heads(self) -> int:
        return self.R.shape[1]

    @property
    def hidden_size(self) -> int:
        return self.R.shape[1] * self.R.shape[2]

    @property
    def h_size(self) -> int:
        return self.hidden_size

    @property
    def state_size(self) -> int:  # type: ignore[override]
        return 4 * self.hidden_size

    def recurrent_matrix(self) -> torch.Tensor:
        """R as dense block-diagonal matrices (4, H, H): R_g = blockdiag(R[g, 0], ..., R[g, K-1])."""
        return torch.stack([torch.block_diag(*self.R[g]) for g in range(4)])

    # ------------------------------------------------------------------------------------------------ forward

    @functools.cached_property
    def _R_rows(self) -> torch.Tensor:
        """R as one dense (4H, H) matrix, gate blocks (z, i, f, o) stacked (recurrent_matrix's): formed once per
        cell, so that every step is one matrix product (a per-head einsum costs several times more, backward
        included). Not a field: a cell built from other tensors forms its own."""
        H = self.hidden_size
        return self.recurrent_matrix().reshape(4 * H, H)

    def _recurrent(self, h: torch.Tensor) -> torch.Tensor:
        """R h for h (..., H): (..., 4H), gate blocks (z, i, f, o), each head mixing only its own units."""
        return torch.matmul(h, self._R_rows.T)  # (..., 4H)

    def _recurrent_back(self, du: torch.Tensor) -> torch.Tensor:
        """du R for du (..., 4H): (..., H), the transpose of _recurrent."""
        return torch.matmul(du, self._R_rows)  # (..., H)

    def _log_forget(self, ft: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(log f_t, d log f_t / d ft)."""
        if self.forget == "exp":
            return ft, torch.ones_like(ft)  # f = exp(ft)
        return Fn.logsigmoid(ft), torch.sigmoid(-ft)  # f = sigmoid(ft): (log sigmoid)' = 1 - sigmoid = sigmoid(-ft)

    def _pointwise(self, a: torch.Tensor, s_prev: torch.Tensor) -> dict:
        """Everything one step computes from its pre-activations a (..., 4H) and s_{t-1} (..., 4H)."""
        H = self.hidden_size
        c, n, m = s_prev[..., H:2 * H], s_prev[..., 2 * H:3 * H], s_prev[..., 3 * H:]  # (..., H) each
        zt, it, ft, ot = a[..., :H], a[..., H:2 * H], a[..., 2 * H:3 * H], a[..., 3 * H:]
        logf, lfd = self._log_forget(ft)
        lfm = logf + m  # log f_t + m_{t-1}
        m_new = torch.maximum(lfm, it)  # m_t = max(log f_t + m_{t-1}, it)
        ip = torch.exp(it - m_new)  # i'_t
        fp = torch.exp(lfm - m_new)  # f'_t
        z, o = torch.tanh(zt), torch.sigmoid(ot)
        c_new = fp * c + ip * z  # c_t = f' c_{t-1} + i' z
        n_new = fp * n + ip  # n_t = f' n_{t-1} + i'
        h_new = o * c_new / n_new  # h_t = o c_t / n_t
        return dict(c=c, n=n, z=z, o=o, ip=ip, fp=fp, lfd=lfd, sel=(lfm >= it).to(a.dtype),
                    c_new=c_new, n_new=n_new, m_new=m_new, h_new=h_new)

    def drive(self, x):
        return affine(x, self.W, self.b)  # W x_t + b (..., 4H)

    def forward_driven(self, u, s_prev):
        a = u + self._recurrent(s_prev[..., :self.hidden_size])  # [zt, it, ft, ot] = u_t + R h_{t-1} (B, 4H)
        p = self._pointwise(a, s_prev)
        return torch.cat([p["h_new"], p["c_new"], p["n_new"], p["m_new"]], -1), a

    # ------------------------------------------------------------------------------------------------ backward

    def _factors(self, p: dict) -> tuple[torch.Tensor, ...]:
        """(o/n, o q/n, i' z', Dc, Dn, sel, lf', o' q, f') of the class docstring, each (..., H)."""
        K = p["o"] / p["n_new"]  # dh_t/dc_t
        q = p["c_new"] / p["n_new"]  # h_t / o_t
        sel, fp, ip = p["sel"], p["fp"], p["ip"]
        Dc = (1 - sel) * fp * p["c"] - sel * ip * p["z"]  # dc_t/dm_{t-1}: through f' (i-branch) or i' (f-branch)
        Dn = (1 - sel) * fp * p["n"] - sel * ip  # dn_t/dm_{t-1}: likewise
        Pz = ip * (1 - p["z"] * p["z"])  # dc_t/dzt = i' tanh'(zt)
        Po = p["o"] * (1 - p["o"]) * q  # dh_t/dot = sigmoid'(ot) c_t / n_t
        return K, K * q, Pz, Dc, Dn, sel, p["lfd"], Po, fp

    def jacobian(self, x, s_prev):
        H = self.hidden_size
        a = self.drive(x) + self._recurrent(s_prev[:, :H])  # (B, 4H)
        K, Kq, Pz, Dc, Dn, sel, lfd, Po, fp = self._factors(self._pointwise(a, s_prev))
        zero = torch.zeros_like(K)
        # d(c_t, n_t, m_t)/d(zt, it, ft, ot): (B, 4 gates, H) each; h_t's rows follow from them
        dc = torch.stack([Pz, -Dc, lfd * Dc, zero], 1)  # through c_t = f' c + i' z
        dn = torch.stack([zero, -Dn, lfd * Dn, zero], 1)  # through n_t = f' n + i'
        dm = torch.stack([zero, 1 - sel, sel * lfd, zero], 1)  # through the max's winning branch
        dh = K.unsqueeze(1) * dc - Kq.unsqueeze(1) * dn  # through h_t = o c_t / n_t, o held
        dh[:, 3] = Po  # through o = sigmoid(ot)
        Rd = self.recurrent_matrix()  # (4, H, H)
        J = torch.zeros(x.shape[0], 4 * H, 4 * H, dtype=a.dtype)
        for r, coef in enumerate((dh, dc, dn, dm)):  # rows h_t, c_t, n_t, m_t
            J[:, r * H:(r + 1) * H, :H] = torch.einsum("bgi,gij->bij", coef, Rd)  # columns h_{t-1}: through R
        diag = torch.diag_embed
        J[:, :H, H:2 * H] = diag(K * fp)  # dh_t/dc_{t-1}: through c_t
        J[:, :H, 2 * H:3 * H] = diag(-Kq * fp)  # dh_t/dn_{t-1}: through n_t
        J[:, :H, 3 * H:] = diag(K * Dc - Kq * Dn)  # dh_t/dm_{t-1}: through f', i' in c_t and n_t
        J[:, H:2 * H, H:2 * H] = diag(fp)  # dc_t/dc_{t-1} = f'
        J[:, H:2 * H, 3 * H:] = diag(Dc)  # dc_t/dm_{t-1}
        J[:, 2 * H:3 * H, 2 * H:3 * H] = diag(fp)  # dn_t/dn_{t-1} = f'
        J[:, 2 * H:3 * H, 3 * H:] = diag(Dn)  # dn_t/dm_{t-1}
        J[:, 3 * H:, 3 * H:] = diag(sel)  # dm_t/dm_{t-1}: 1 where the forget branch won
        return J

    def vjp(self, x, s_prev, g, a=None):
        return self.vjp_apply(self.vjp_factors(x, s_prev, a), g)[0]

    def vjp_factors(self, x, s_prev, a=None, s_new=None):
        """F = (o/n_t, o q/n_t, i' z', Dc, Dn, sel, lf', o' q, f') (the class docstring), each (..., H), for any
        leading dimensions; a (..., 4H) the pre-activations or recomputed (s_new is not needed)."""
        if a is None:
            a = self.drive(x) + self._recurrent(s_prev[..., :self.hidden_size])  # (..., 4H)
        return self._factors(self._pointwise(a, s_prev))

    def vjp_apply(self, F, g, carry=True, out=None):
        K, Kq, Pz, Dc, Dn, sel, lfd, Po, fp = F
        H = self.hidden_size
        gh, gc, gn, gm = g[..., :H], g[..., H:2 * H], g[..., 2 * H:3 * H], g[..., 3 * H:]
        Gc = torch.addcmul(gc, gh, K)  # dL/dc_t: its own part plus through h_t = o c_t / n_t
        Gn = torch.addcmul(gn, gh, Kq, value=-1)  # dL/dn_t: its own part plus through h_t (-o c_t / n_t^2)
        E = Gc * Dc + Gn * Dn + gm * sel  # dL/dm_{t-1}: through i', f' (c_t, n_t) and the max (m_t)
        # dL/du_t = dL/d[zt, it, ft, ot]: through z (c_t), i' (c_t, n_t, the max), log f (likewise), o (h_t)
        du = torch.cat([Gc * Pz, gm - E, lfd * E, gh * Po], -1, out=out)  # (B, 4H)
        # back through [zt, it, ft, ot] = u + R h_{t-1}, the cell paths f' c_{t-1}, f' n_{t-1}, and m_{t-1}
        return torch.cat([self._recurrent_back(du), Gc * fp, Gn * fp, E], -1), du

    def param_grads(self, x, s_prev, a, du):
        du2 = rows(du)  # dL/d[zt, it, ft, ot], every (step, sequence) a row: a = W x + R h + b
        K, E = self.R.shape[1], self.R.shape[2]
        dk = du2.reshape(-1, 4, K, E)  # (N, 4, K, E)
        hk = rows(s_prev[..., :self.hidden_size]).reshape(-1, K, E)  # (N, K, E)
        return {"W": du2.T @ rows(x), "R": torch.einsum("ngki,nkj->gkij", dk, hk), "b": du2.sum(0)}

    # ------------------------------------------------------------------------------------------------ building

    @classmethod
    def array_names(cls) -> tuple[str, ...]:
        return ("W", "R", "b")

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], dtype: torch.dtype = torch.float64, *,
                    forget: str = "sigmoid") -> "SLSTMCell":
        """A cell from arrays named as the fields: W (4H, D), R (4, heads, H/heads, H/heads), b (4H,)."""
        missing = [n for n in cls.array_names() if n not in arrays]
        if missing:
            raise InputError(f"slstm arrays: expected {', '.join(cls.array_names())}, got only "
                             f"{sorted(arrays) or 'no arrays'}")
        t = {n: torch.as_tensor(np.asarray(arrays[n], dtype=np.float64)).to(dtype) for n in cls.array_names()}
        return cls(t["W"], t["R"], t["b"], forget)

    @classmethod
    def random(cls, hidden: int, input_size: int, *, seed: int = 0, dtype: torch.dtype = torch.float64,
               heads: int | None = None, forget: str = "sigmoid", recurrent_init: str = "zeros",
               bias_init: str = "powerlaw_blockdependent", **unknown) -> "SLSTMCell":
        """The official initialisation (class docstring). heads: None = 4 if 4 divides hidden, else 1.
        recurrent_init: "zeros" (official default) or "standard" U(-1/sqrt(H), 1/sqrt(H)); bias_init:
        "powerlaw_blockdependent" (default), "small_init" (b_f linspace(3, 6) per head), "standard"
        U(-1/sqrt(H), 1/sqrt(H)) on every gate, "zeros"."""
        gen = sized_generator(cls.kind, hidden, input_size, seed, unknown,
                              ("heads", "forget", "recurrent_init", "bias_init"))
        H, D = hidden, input_size
        if heads is None:
            heads = 4 if H % 4 == 0 else 1
        if isinstance(heads, bool) or not isinstance(heads, int) or heads < 1 or H % heads:
            raise InputError(f"heads: expected a positive integer that divides hidden = {H}, got {heads!r}")
        _choice("forget", forget, FORGET_GATES)
        _choice("recurrent_init", recurrent_init, SLSTM_RECURRENT_INITS)
        _choice("bias_init", bias_init, SLSTM_BIAS_INITS)
        f64 = torch.float64
        E = H // heads
        W = (torch.rand(4 * H, D, generator=gen, dtype=f64) * 2 - 1) / math.sqrt(D)  # nn.Linear: U(+-1/sqrt(D))
        if recurrent_init == "zeros":
            R = torch.zeros(4, heads, E, E, dtype=f64)
        else:
            R = (torch.rand(4, heads, E, E, generator=gen, dtype=f64) * 2 - 1) / math.sqrt(H)
        b = torch.zeros(4, heads, E, dtype=f64)  # (gate, head, unit)
        if bias_init == "powerlaw_blockdependent":
            j = torch.arange(E, dtype=f64) / max(E - 1, 1)
            b[2] = 5.0 - 12.0 * j ** 0.3  # -(-5 + 12 (j/(E-1))^(0.3 + 1.3 * 0)): one block
        elif bias_init == "small_init":
            b[2] = torch.linspace(3.0, 6.0, E, dtype=f64)
        elif bias_init == "standard":
            b = (torch.rand(4, heads, E, generator=gen, dtype=f64) * 2 - 1) / math.sqrt(H)
        return cls(W.to(dtype), R.to(dtype), b.reshape(4 * H).to(dtype), forget)
