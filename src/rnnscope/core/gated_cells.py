"""The gated cells, with PyTorch's exact math (gate order, both biases): LSTM over its full state (h, c), LSTM
with a projection (nn.LSTM(proj_size=P)), GRU; their exact one-step Jacobians and factored VJPs.

Factored VJP (cell_contract): vjp_factors forms the numbers the backward multiplies by (gate values and their
derivatives) for one step or every step of a trace at once; vjp_apply does the products:

    LSTM   dL/dm_t = g_h W_hr (g_h without projection),  dL/dc_t = g_c + dL/dm_t * o tanh'(c_t)
           dL/dz_t = A * [dL/dc_t, dL/dc_t, dL/dc_t, dL/dm_t]        g J_t = [dL/dz_t W_hh,  dL/dc_t * f]
    GRU    dL/du_t = Fw * g,  dL/d(W_hh h + b_hh) = [1, 1, r] * dL/du_t     g J_t = (that) W_hh + g * z

The carry term (Cell.vjp_cut) is LSTM's f * c_{t-1} (the cell path) and GRU's z * h_{t-1}; carry=False (or a
0 / 1 row mask) holds its state argument constant. Legend: B batch, H hidden (cell) size, P size of h, D input.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .cell_contract import WeightedCell, affine, check_matrix, rows
from .errors import InputError

__all__ = ["LSTMCell", "ProjLSTMCell", "GRUCell"]


def _dsig(z: torch.Tensor) -> torch.Tensor:
    s = torch.sigmoid(z)
    return s * (1 - s)


def _dtanh_of_value(t: torch.Tensor) -> torch.Tensor:
    return 1 - t * t


@dataclass(frozen=True)
class _Gated(WeightedCell):
    """Shared fields of LSTM and GRU, in PyTorch's layout (gate blocks stacked along rows)."""

    W_xh: torch.Tensor  # (G H, D)   PyTorch weight_ih_l0
    W_hh: torch.Tensor  # (G H, H)   PyTorch weight_hh_l0
    b_xh: torch.Tensor  # (G H,)     PyTorch bias_ih_l0
    b_hh: torch.Tensor  # (G H,)     PyTorch bias_hh_l0
    gates = 1

    def __post_init__(self) -> None:
        G = self.gates
        W_hh = self.W_hh
        if not isinstance(W_hh, torch.Tensor) or W_hh.dim() != 2 or W_hh.shape[0] != G * W_hh.shape[1] or W_hh.shape[1] < 1:
            got = tuple(self.W_hh.shape) if isinstance(self.W_hh, torch.Tensor) else type(self.W_hh).__name__
            raise InputError(f"W_hh: expected shape ({G}*H, H) with H >= 1 for {self.kind}, got {got}")
        H = self.W_hh.shape[1]
        check_matrix("W_hh", self.W_hh, (G * H, H))
        if not isinstance(self.W_xh, torch.Tensor) or self.W_xh.dim() != 2 or self.W_xh.shape[1] < 1:
            raise InputError(f"W_xh: expected shape ({G * H}, D) with D >= 1 (H = {H} from W_hh), got "
                             f"{tuple(getattr(self.W_xh, 'shape', ())) or type(self.W_xh).__name__}")
        check_matrix("W_xh", self.W_xh, (G * H, self.W_xh.shape[1]), f"H = {H} from W_hh")
        check_matrix("b_xh", self.b_xh, (G * H,), f"H = {H} from W_hh")
        check_matrix("b_hh", self.b_hh, (G * H,), f"H = {H} from W_hh")

    @property
    def hidden_size(self) -> int:
        return self.W_hh.shape[1]

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
        return affine(x, self.W_xh, self.b_xh + self.b_hh)  # both biases (..., 4H)

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

    def step_into(self, z, s_prev, s_out):
        """forward_driven in place (unroll's buffers, no autograd): z (B, 4H) holds u_t on entry and z_t on exit,
        s_t is written into s_out (B, S). The same lines as forward_driven, without a new tensor per result."""
        H, P = self.hidden_size, self.h_size
        h, c = s_prev[:, :P], s_prev[:, P:]
        z.addmm_(h, self.W_hh.T)  # z_t = u_t + W_hh h_{t-1}   (B, 4H)
        sz = torch.sigmoid(z)  # i, f, o (the g block unused)
        c_new = torch.addcmul(sz[:, H:2 * H] * c, sz[:, :H], torch.tanh(z[:, 2 * H:3 * H]), out=s_out[:, P:])  # c_t
        m = sz[:, 3 * H:] * torch.tanh(c_new)  # m_t = o tanh(c_t)
        if P == H and type(self) is LSTMCell:
            s_out[:, :P] = m  # h_t = m_t
        else:
            torch.matmul(m, self.W_hr.T, out=s_out[:, :P])  # h_t = W_hr m_t (ProjLSTMCell)

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
        return self.vjp_apply(self.vjp_factors(x, s_prev, a), g)[0]

    def vjp_factors(self, x, s_prev, a=None, s_new=None):
        """F = (A, K, f) for any leading dimensions, from z_t (= a, or recomputed) and c_t (s_new's c, or recomputed):

            A = [g i', c_{t-1} f', i g', tanh(c_t) o']   (..., 4H): dL/dz_t = A * [dL/dc_t x3, dL/dm_t]
            K = o tanh'(c_t)                             (..., H): m_t = o tanh(c_t) -> c_t
            f                                            (..., H): the cell path c_{t-1} -> c_t
        """
        H, P = self.hidden_size, self.h_size
        h, c = s_prev[..., :P], s_prev[..., P:]
        z = torch.matmul(h, self.W_hh.T) + self.drive(x) if a is None else a  # (..., 4H)
        sz = torch.sigmoid(z)  # i, f, o (the g block unused)
        i, f, o = sz[..., :H], sz[..., H:2 * H], sz[..., 3 * H:]
        gg = torch.tanh(z[..., 2 * H:3 * H])
        tc = torch.tanh(f * c + i * gg if s_new is None else s_new[..., P:])  # tanh(c_t)
        ds = torch.addcmul(sz, sz, sz, value=-1)  # sigmoid'(z) = s - s^2 of every gate (the g block unused)
        A = torch.empty_like(z)  # written block by block: one pass each, no concatenation
        torch.mul(gg, ds[..., :H], out=A[..., :H])  # g i'
        torch.mul(c, ds[..., H:2 * H], out=A[..., H:2 * H])  # c_{t-1} f'
        torch.addcmul(i, i, gg * gg, value=-1, out=A[..., 2 * H:3 * H])  # i g' = i (1 - g^2)
        torch.mul(tc, ds[..., 3 * H:], out=A[..., 3 * H:])  # tanh(c_t) o'
        return A, torch.addcmul(o, o, tc * tc, value=-1), f  # K = o tanh'(c_t) = o (1 - tanh^2)

    def vjp_apply(self, F, g, carry=True, out=None):
        A, K, f = F
        P, H = self.h_size, self.hidden_size
        g_m = self._project_back(g[..., :P])  # dL/dm_t: through h_t = W_hr m_t (the identity without projection)
        g_c = torch.addcmul(g[..., P:], g_m, K)  # dL/dc_t: the state's own part plus through m_t = o tanh(c_t)
        # dL/dz_t: through c_t = f c_{t-1} + i g (i = sigmoid(z_i), f = sigmoid(z_f), g = tanh(z_g)) and
        # m_t = o tanh(c_t) (o = sigmoid(z_o))   (B, 4H), block by block into one buffer (no concatenation)
        dz = torch.empty_like(A) if out is None else out
        torch.mul(A.unflatten(-1, (4, H))[..., :3, :], g_c.unsqueeze(-2), out=dz.unflatten(-1, (4, H))[..., :3, :])
        torch.mul(A[..., 3 * H:], g_m, out=dz[..., 3 * H:])
        w = g.new_empty(g.shape)  # g J_t = [dL/dh_{t-1}, dL/dc_{t-1}]
        torch.matmul(dz, self.W_hh, out=w[..., :P])  # dL/dh_{t-1}: back through z = ... + W_hh h_{t-1}
        if carry is False:
            w[..., P:] = 0.0  # c_{t-1} reaches s_t only through f * c_{t-1}: held constant, nothing
        else:
            torch.mul(g_c, f, out=w[..., P:])  # dL/dc_{t-1}: back through the cell path f * c_{t-1}
            if carry is not True:
                w[..., P:] *= carry  # the cut rows (carry 0) as above
        return w, dz

    def param_grads(self, x, s_prev, a, du):
        if type(self) is not LSTMCell:
            return None  # the projection's W_hr: autograd (layer_flow)
        dz = rows(du)  # dL/dz_t: z = W_xh x + b_xh + W_hh h_{t-1} + b_hh
        b = dz.sum(0)
        return {"W_xh": dz.T @ rows(x), "W_hh": dz.T @ rows(s_prev[..., :self.h_size]), "b_xh": b, "b_hh": b}

    def cell_adjoint(self, s: torch.Tensor, z: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """dL/dc_t as autograd reports it for the tensor c_t (B, H), from the state adjoint g = dL/ds_t (B, S):

            dL/dc_t = g_c + (g_h W_hr) * o_t * tanh'(c_t)      (W_hr = I without projection)

        the state's own c part plus the path through h_t = W_hr (o_t tanh(c_t)) at the same step (in the state
        space view h_t and c_t are separate coordinates; a graph of tensors also sees c_t -> h_t).
        s (B, S) = s_t, z (B, 4H) = the pre-activations of step t (Trace.preacts); any leading dimensions.
        """
        P, H = self.h_size, self.hidden_size
        k = torch.tanh(s[..., P:])  # tanh(c_t), then in place: k = o_t tanh'(c_t) = o_t (1 - tanh^2(c_t))
        k.mul_(k).neg_().add_(1.0).mul_(torch.sigmoid(z[..., 3 * H:]))
        return torch.addcmul(g[..., P:], self._project_back(g[..., :P]), k)  # through m_t = o tanh(c_t), h_t = W_hr m_t

    def vjp_cut(self, x, s_prev, g, a=None):
        return self.vjp_apply(self.vjp_factors(x, s_prev, a), g, carry=False)[0]


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
        check_matrix("W_hh", W, (4 * H, P))
        if not isinstance(self.W_xh, torch.Tensor) or self.W_xh.dim() != 2:
            raise InputError(f"W_xh: expected shape ({4 * H}, D), got {getattr(self.W_xh, 'shape', self.W_xh)!r}")
        check_matrix("W_xh", self.W_xh, (4 * H, self.W_xh.shape[1]))
        check_matrix("b_xh", self.b_xh, (4 * H,))
        check_matrix("b_hh", self.b_hh, (4 * H,))
        check_matrix("W_hr", self.W_hr, (P, H))

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
        return affine(x, self.W_xh, self.b_xh)  # (..., 3H); b_hh stays inside: b_hn is multiplied by r

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

    def step_into(self, a, s_prev, s_out):
        """forward_driven in place (unroll's buffers, no autograd): a (B, 3H) holds u_t on entry and
        [a_r, a_z, a_n] on exit, h_t is written into s_out (B, H). The same lines as _parts and forward_driven."""
        H = self.hidden_size
        gh = torch.addmm(self.b_hh, s_prev, self.W_hh.T)  # W_hh h + b_hh (B, 3H)
        a[:, :2 * H] += gh[:, :2 * H]  # a_r, a_z
        a[:, 2 * H:].addcmul_(torch.sigmoid(a[:, :H]), gh[:, 2 * H:])  # a_n = u_n + r * (W_hn h + b_hn)
        z, n = torch.sigmoid(a[:, H:2 * H]), torch.tanh(a[:, 2 * H:])
        torch.add((1 - z) * n, z * s_prev, out=s_out)  # h_t = (1 - z) n + z h_{t-1}

    def jacobian(self, x, s_prev):
        a_r, a_z, a_n, hn = self._parts(self.drive(x), s_prev)
        r, z, n = torch.sigmoid(a_r), torch.sigmoid(a_z), torch.tanh(a_n)
        col = lambda v: v.unsqueeze(-1)  # noqa: E731
        dn_dh = col(_dtanh_of_value(n)) * (col(r) * self.block(2) + col(hn * _dsig(a_r)) * self.block(0))
        return col(1 - z) * dn_dh + torch.diag_embed(z) + col((s_prev - n) * _dsig(a_z)) * self.block(1)

    def vjp(self, x, s_prev, g, a=None):
        return self.vjp_apply(self.vjp_factors(x, s_prev, a), g)[0]

    def vjp_cut(self, x, s_prev, g, a=None):
        return self.vjp_apply(self.vjp_factors(x, s_prev, a), g, carry=False)[0]  # without the copy z_t * h_{t-1}

    def vjp_factors(self, x, s_prev, a=None, s_new=None):
        """F = (Fw, R, z) for any leading dimensions, from a = [a_r, a_z, a_n] (or recomputed) and
        hn = W_hn h_{t-1} + b_hn (recomputed: it is not in a):

            Fw = [(1-z) n' hn r', (h_{t-1} - n) z', (1-z) n']   (..., 3, H): dL/du_t = Fw * g,  n' = 1 - n^2
            R  = [1, 1, r]                                      (..., 3H): dL/d(W_hh h + b_hh) = R * dL/du_t
            z                                                   (..., H): the update gate's copy z * h_{t-1}
        """
        H = self.hidden_size
        if a is None:
            lead = s_prev.shape[:-1]
            a_r, a_z, a_n, _ = self._parts(self.drive(x).reshape(-1, 3 * H), s_prev.reshape(-1, H))
            a = torch.cat([a_r, a_z, a_n], -1).reshape(*lead, 3 * H)
        hn = torch.matmul(s_prev, self.W_hh[2 * H:].T) + self.b_hh[2 * H:]  # W_hn h_{t-1} + b_hn (..., H)
        r, z, n = torch.sigmoid(a[..., :H]), torch.sigmoid(a[..., H:2 * H]), torch.tanh(a[..., 2 * H:])
        dn = (1 - z) * (1 - n * n)  # dh_t/da_n: through h_t = (1 - z) n + ..., n = tanh(a_n)
        Fw = torch.stack([dn * hn * r * (1 - r),  # a_n = u_n + r hn, r = sigmoid(a_r)
                          (s_prev - n) * z * (1 - z),  # h_t = n + z (h_{t-1} - n), z = sigmoid(a_z)
                          dn], -2)
        return Fw, torch.cat([torch.ones_like(r), torch.ones_like(r), r], -1), z

    def vjp_apply(self, F, g, carry=True, out=None):
        Fw, R, z = F
        du = torch.mul(Fw, g.unsqueeze(-2), out=None if out is None else out.view(*Fw.shape)).flatten(-2)  # dL/du_t =
        # [dL/da_r, dL/da_z, dL/da_n] (B, 3H): a = u + ...
        dgh = du * R  # dL/d(W_hh h_{t-1} + b_hh): the n block through r * (W_hn h + b_hn)
        zc = z if carry is True else (torch.zeros_like(z) if carry is False else z * carry)
        return torch.addcmul(dgh @ self.W_hh, g, zc), du  # back through W_hh h_{t-1}, plus the carry z * h_{t-1}

    def param_grads(self, x, s_prev, a, du):
        du2 = rows(du)  # dL/du_t, u = W_xh x + b_xh
        H = self.hidden_size
        dgh = du2.clone()
        dgh[:, 2 * H:] *= torch.sigmoid(rows(a)[:, :H])  # dL/d(W_hh h_{t-1} + b_hh): the n block through r *
        return {"W_xh": du2.T @ rows(x), "b_xh": du2.sum(0), "W_hh": dgh.T @ rows(s_prev), "b_hh": dgh.sum(0)}
