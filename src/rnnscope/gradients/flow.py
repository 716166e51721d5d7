"""The Jacobian-product profile ||ds_t/ds_k|| for every k, exact, streamed and in the log domain.

    P_t = I,      P_k = ds_t/ds_k = P_{k+1} J_{k+1},     J_{k+1} = ds_{k+1}/ds_k       (B, S, S)

One running product, O(t B S^3) in all (seed 002 recomputes the product for every k: O(t^2 B S^3)).

Numerics that are not optional (docs/architecture.md):
- Log domain. The running product is stored as exp(L) * P_hat. Inside a chunk every GEMM also scales
  by exp(-g), g the growth per step measured on the previous chunk, so P_hat stays near norm 1 at no
  extra cost; L is carried apart and the product is renormalised at the end of every chunk. A chunk
  whose P_hat leaves [tiny^(1/3), tiny^(-1/3)] (over- or underflow ahead) is redone with
  renormalisation after every step, so no digit is lost either way. t = 100,000 in the exploding
  regime gives finite log-norms.
- Streaming. Jacobians are formed a chunk of C steps at a time and dropped: memory beyond the Trace is
  O(C B S^2) with C B S^2 <= 2^20 numbers (C <= 128: 128 steps at S = 64, 63 at S = 128), never O(t S^2).
- Spectral norms without an SVD per k. The top left singular vector u_k of P_k = J_t ... J_{k+1}
  converges as k decreases (appending factors on the right fixes the output space; Oseledets).
  So every chunk starts from the previous chunk's u and
    1. starts from v = (u + 0.3 r) / ||.||, r a fresh random unit vector orthogonal to u, and carries
       w_k = P_k^T v along in the product itself, as one extra row of the GEMM
       ([P_{k+1}; v^T P_{k+1}] J_{k+1}), so the first power half-step costs ~1/S of the product. The
       random part gives every direction a component ~ 0.3 / sqrt(S) even when u sits exactly on an
       invariant subspace of the products (commuting factors; W_hh = I with tanh);
    2. alternates z = P_k w / ||w||, w = P_k^T z / ||z||: each ratio ||P v|| / ||v|| is a lower bound of
       sigma_max(P_k) and the sequence never decreases. An entry stops when two successive bounds agree
       to rel_tol = 4 eps, at rounding level. For a stopping gap eps the relative error is at most about
       sqrt(S eps / 2) even for near-degenerate top singular values (each non-top direction i adds at
       most min(c_i^2 (1 - q_i), eps_i / (1 - q_i^2)), q_i = (sigma_i/sigma_1)^2), provided the top
       direction's component c_1 is not tiny; in general the bound is about sqrt(eps) / c_1 (a start with
       a tiny c_1 first converges towards sigma_2): with c_1 ~ 0.3 / sqrt(S) from the random part, well
       below the 1e-6 promised;
    3. entries that have not converged after max_half_steps, or whose measured rate q says they would
       not (a cluster of top singular values), are computed by torch.linalg.svd instead.
  Tests compare every k with svdvals, near-degenerate and rank-deficient cases included.

Legend: T time, B batch, S state size, C chunk length.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch

from ..core.cells import Cell
from ..core.errors import InputError
from ..core.unroll import Trace
from .diagonal_flow import diagonal_profile, has_unit_gains

__all__ = ["JacobianProfile", "jacobian_profile"]

_CHUNK_BYTES = 8 * 1024**2  # per chunk buffer (the Jacobians, the stored products): cache-sized, measured
_MAX_CHUNK = 128
_LN10 = math.log(10.0)


@dataclass(frozen=True)
class JacobianProfile:
    """log10 ||ds_t/ds_k|| for k = 1..t, per sequence: column k-1 is step k (so column t-1 is 0 / log10 sqrt(S))."""

    log10_spectral: torch.Tensor  # (B, t) log10 ||ds_t/ds_k||_2 (NaN when spectral=False)
    log10_frobenius: torch.Tensor  # (B, t) log10 ||ds_t/ds_k||_F
    t: int
    power_half_steps: int  # matrix-vector products spent on spectral norms beyond the free first one
    svd_fallbacks: int  # (k, b) entries whose spectral norm came from svdvals instead
    renormalised_chunks: int  # chunks redone with per-step renormalisation (underflow guard)
    log10_carried: torch.Tensor | None = None  # (B, R, t) log10 ||g_r^T ds_t/ds_k|| for carried rows g_r
    log10_blocks: torch.Tensor | None = None  # (B, n_blocks, t) log10 ||[ds_t/ds_k]_block||_2 for asked blocks

    def _repr_html_(self) -> str:
        """A notebook's view (core.display.html_card): t, B, the work counters, log10 ||ds_t/ds_1||_2 and _F (the
        longest distance, batch means) and plots.plot_jacobian_profile's figure."""
        from ..core.display import fields, html_card
        from ..core.plots import plot_jacobian_profile
        first = {f"{name} (k = 1)": float(getattr(self, name)[:, 0].mean())
                 for name in ("log10_spectral", "log10_frobenius")}
        B = self.log10_frobenius.shape[0]
        facts = {**fields(self, skip=("log10_carried", "log10_blocks")), "batch": B, **first}
        return html_card(f"Jacobian products ds_t/ds_k, t = {self.t}, B = {B}", facts, lambda: plot_jacobian_profile(self))


def _chunk_length(B: int, S: int) -> int:
    return max(1, min(_MAX_CHUNK, _CHUNK_BYTES // (8 * B * S * (S + 1))))


def _products(P: torch.Tensor, J: torch.Tensor, out: torch.Tensor, alpha: float) -> torch.Tensor:
    """out[i] = alpha^(i+1) P J[n-1] J[n-2] ... J[n-1-i] for i = 0..n-1: one GEMM per step, nothing else.

    P (B, R, S), J (n, B, S, S) in ascending k, out (n, B, R, S). Returns out[n-1].
    """
    n, B = J.shape[0], J.shape[1]
    if B == 1:  # plain 2-D GEMMs are the cheapest call
        P, J, out = P[0], J[:, 0], out[:, 0]
    Js, outs = J.unbind(0), out.unbind(0)
    mm = torch.addmm if B == 1 else torch.baddbmm
    for i in range(n):  # k = k_hi - i: P_k = alpha P_{k+1} J_{k+1} (beta = 0: out is only written)
        mm(outs[i], P, Js[n - 1 - i], beta=0, alpha=alpha, out=outs[i])
        P = outs[i]
    return P.unsqueeze(0) if B == 1 else P


def _start_vector(u: torch.Tensor, gen: torch.Generator, mix: float = 0.3) -> torch.Tensor:
    """v = (u + mix r) / ||.|| (B, S): the warm start u (unit) plus a fresh random unit r orthogonal to it.

    The random part is what keeps the warm start honest. When the products act on an invariant subspace
    (commuting factors; W_hh = I with tanh makes every J diagonal) u can sit exactly on a smaller singular
    direction, and power iteration from u alone never leaves it. With the random part every direction has
    a component ~ mix / sqrt(S), so the stopping rule's error bound sqrt(eps) / c applies (see above).
    """
    B, S = u.shape
    r = torch.randn(B, S, dtype=u.dtype, generator=gen)
    un = torch.linalg.vector_norm(u, dim=1, keepdim=True)
    if S == 1:
        return torch.ones(B, 1, dtype=u.dtype)
    u = torch.where(un > 0, u / torch.where(un > 0, un, torch.ones_like(un)), r / torch.linalg.vector_norm(r, dim=1, keepdim=True))
    r = r - (r * u).sum(1, keepdim=True) * u  # Gram-Schmidt: r orthogonal to u
    v = u + mix * r / torch.linalg.vector_norm(r, dim=1, keepdim=True)
    return v / torch.linalg.vector_norm(v, dim=1, keepdim=True)


def _spectral(M: torch.Tensor, w: torch.Tensor, fro: torch.Tensor, rel_tol: float,
              max_half_steps: int, gen: torch.Generator, n_last: int) -> tuple[torch.Tensor, torch.Tensor, int, int]:
    """sigma_max of each M (N, S, S) given w = M^T v for a unit start v (N, S) and fro = ||M||_F (N,).

    u_left is exact for the last n_last entries (the warm starts of the next chunk), an estimate elsewhere.
    The caller keeps every ||M||_F within [tiny^(1/3), tiny^(-1/3)], so no norm below under- or overflows.
    Returns (sigma (N,), u_left (N, S) the top left singular vector estimate, half-steps, svd fallbacks).
    """
    N, S, _ = M.shape
    sigma = torch.zeros(N, dtype=M.dtype)
    u_left = torch.zeros(N, S, dtype=M.dtype)
    wn = torch.linalg.vector_norm(w, dim=1)
    # a start nearly orthogonal to the range of M: restart from a random direction
    poor = (wn <= 1e-8 * fro) & (fro > 0)
    if poor.any():
        r = torch.randn(int(poor.sum()), S, dtype=M.dtype, generator=gen)
        r = r / torch.linalg.vector_norm(r, dim=1, keepdim=True)
        w = w.clone()
        w[poor] = torch.bmm(M[poor].transpose(1, 2), r.unsqueeze(-1)).squeeze(-1)
        wn = torch.linalg.vector_norm(w, dim=1)
    active = torch.nonzero(fro > 0).squeeze(1)  # exact zero products have sigma = 0
    # the unfinished matrices: Ma[pos[i]] is M[active[i]]. Ma is compacted only when it is more than half
    # finished, so copying costs O(N) matrices in all, not one copy per finished entry
    Ma = M if active.numel() == N else M[active]
    pos = torch.arange(active.numel())
    bound = wn[active]  # ||M^T v|| for the unit start v: the first lower bound
    w = w[active] / bound.unsqueeze(-1)  # (len(Ma), S): the current vector of every row of Ma
    prev = torch.full_like(bound, float("inf"))  # the previous increase of the bound
    slow: list[torch.Tensor] = []  # entries whose convergence would cost more than an SVD
    half = 0
    left = True  # the next product is M w (giving a left vector)
    for it in range(max_half_steps):
        if active.numel() == 0:
            break
        # batched matrix-vector products as multiply-and-sum: 2-3x faster than bmm with one column here
        if left:
            v = (Ma * w.unsqueeze(1)).sum(2)  # z = M w
        else:
            v = (Ma * w.unsqueeze(2)).sum(1)  # w = M^T z
        half += active.numel()
        v = v[pos] if pos.numel() != Ma.shape[0] else v
        new = torch.linalg.vector_norm(v, dim=1)  # ||M w|| / ||w|| with ||w|| = 1: the next lower bound
        diff = new - bound
        done = diff <= rel_tol * new
        # once one direction dominates, the increases shrink geometrically, by q = (sigma_2/sigma_1)^2
        # per half-step: a cluster of top singular values (q near 1) would need more half-steps than
        # are left (about as many as one SVD costs), so it goes to the SVD at once. (The increases say
        # nothing safe about the error itself: a start vector with a tiny component along the top
        # direction first converges towards sigma_2. Only the rounding-level rule above stops.)
        q = diff / prev
        needed = torch.log(rel_tol * new / diff) / torch.log(q)
        hopeless = ~done & (it >= 3) & (q > 0) & (q < 1) & (it + needed > max_half_steps)
        prev = diff
        v = v / new.unsqueeze(-1)
        if left:
            u_left[active] = v
        bound = torch.maximum(bound, new)
        sigma[active[done]] = bound[done]
        if hopeless.any():
            slow.append(active[hopeless])
        if done.any() or hopeless.any():
            keep = ~(done | hopeless)
            active, bound, v, pos, prev = active[keep], bound[keep], v[keep], pos[keep], prev[keep]
            if 2 * pos.numel() <= Ma.shape[0]:
                Ma, pos = Ma[pos], torch.arange(pos.numel())
        w = torch.zeros(Ma.shape[0], S, dtype=M.dtype) if pos.numel() != Ma.shape[0] else v
        if pos.numel() != Ma.shape[0]:
            w[pos] = v  # finished rows get zero vectors: their products are wasted but harmless
        left = not left
    slow.append(active)
    idx = torch.cat(slow)
    Ms = M[idx]
    fallbacks = int(idx.numel())
    if fallbacks:  # not certified by the stopping rules, or not worth it: exact singular values
        sigma[idx] = torch.linalg.svdvals(Ms)[:, 0]
        last = idx >= N - n_last  # only the deepest entries' vectors are used (warm starts): full SVD there
        if last.any():
            U, _, _ = torch.linalg.svd(Ms[last])
            u_left[idx[last]] = U[:, :, 0]
    return sigma, u_left, half, fallbacks


def _block_spectral(M: torch.Tensor, u: torch.Tensor, rel_tol: float, max_half_steps: int, gen: torch.Generator,
                    n_last: int) -> tuple[torch.Tensor, torch.Tensor]:
    """sigma_max of each block M (N, b, c), warm-started from u (n_last, b) repeated over the chunk.

    The same power iteration as the full products (_spectral), on M / ||M||_F so that no norm under- or
    overflows however small the block is next to the whole product. A rectangular block (b != c) goes through
    its Gram matrix: sigma_max(M) = sqrt(sigma_max(M M^T)), M M^T (N, b, b), the same left singular vectors.
    Returns (sigma (N,), u for the next chunk).
    """
    N, b, c = M.shape
    fro = torch.linalg.matrix_norm(M)  # (N,)
    safe = torch.where(fro > 0, fro, torch.ones_like(fro))
    Mn = M / safe[:, None, None]
    if b != c:
        G = torch.bmm(Mn, Mn.transpose(1, 2))  # (N, b, b), ||G||_F <= 1
        sig, ul = _block_spectral(G, u, rel_tol, max_half_steps, gen, n_last)
        return torch.sqrt(sig) * fro, ul
    v = _start_vector(u, gen).repeat(N // n_last, 1)  # (N, b): one start per entry, from the deepest previous vector
    w = (Mn * v.unsqueeze(-1)).sum(1)  # Mn^T v
    sig, ul, _, _ = _spectral(Mn, w, (fro > 0).to(M.dtype), rel_tol, max_half_steps, gen, n_last)
    return sig * fro, ul[-n_last:]


def jacobian_profile(cell: Cell, trace: Trace, t: int | None = None, *, spectral: bool = True,
                     carry: torch.Tensor | None = None, rel_tol: float | None = None, max_half_steps: int = 64,
                     chunk: int | None = None, seed: int = 0,
                     blocks: Sequence[tuple[slice, slice]] | None = None) -> JacobianProfile:
    """log10 ||ds_t/ds_k||_2 and ||ds_t/ds_k||_F for k = 1..t (default t = T), per sequence.

    carry (B, R, S): row vectors g_r carried along as extra rows of the product, giving
    log10 ||g_r^T ds_t/ds_k|| for every k at O(R S^2) per step: with g = dL/ds_t this is the adjoint
    profile log10 ||dL/ds_k|| of a loss at step t only.

    Cost O(t B S^3) (one running product plus about two matrix-vector products per k); memory beyond
    the trace O(C B S^2). A cell whose Jacobians are scaled orthogonal blocks (the diagonal cells after the
    seeds, LRU: log_unit_gains) is profiled in closed form instead, O(t B S) (diagonal_flow.py), unless
    blocks are asked for.

    blocks: sub-blocks (rows, cols) of the state, e.g. (slice(0, H), slice(0, H)) and (slice(H, 2H),
    slice(H, 2H)) for LSTM's h -> h and c -> c: log10 ||[ds_t/ds_k]_block||_2 for every k, by the same
    warm-started power iteration (about 2 b^2 per half-step per k for a b x b block; SVD where it stalls).
    A rectangular block, e.g. the h rows (slice(0, H), slice(0, 2H)) (||dh_t/ds_k||_2: what a loss on h_t
    sees), goes through its Gram matrix (one more b x c x b product per k).

    Example:
        >>> from rnnscope.core.cells import ElmanCell
        >>> from rnnscope.core.unroll import unroll
        >>> cell = ElmanCell(2 * torch.eye(3, dtype=torch.float64), torch.zeros(3, 1, dtype=torch.float64),
        ...                  torch.zeros(3, dtype=torch.float64), "identity")
        >>> prof = jacobian_profile(cell, unroll(cell, torch.zeros(4, 1, 1, dtype=torch.float64)))
        >>> [round(v, 12) for v in prof.log10_spectral[0].tolist()]   # log10 ||2^(4-k) I||_2 for k = 1..4
        [0.903089986992, 0.602059991328, 0.301029995664, 0.0]
    """
    if not blocks and has_unit_gains(cell):  # J_t = scaled orthogonal blocks: the closed form, O(t B S)
        return diagonal_profile(cell, trace, t, spectral=spectral, carry=carry)
    t = trace.T if t is None else t
    tr = trace.truncated(t)
    B, S, dt = tr.B, cell.state_size, cell.dtype
    finfo = torch.finfo(dt)
    rel_tol = 4 * finfo.eps if rel_tol is None else rel_tol
    lo_ok, hi_ok = finfo.tiny ** (1 / 3), finfo.tiny ** (-1 / 3)  # stored products stay in here
    C = chunk or _chunk_length(B, S)
    gen = torch.Generator().manual_seed(seed)
    f64 = torch.float64  # log-scales and results in float64 whatever the product's dtype: no drift over long t
    log_spec = torch.full((B, t), float("nan"), dtype=f64)
    log_fro = torch.empty(B, t, dtype=f64)
    log_spec[:, t - 1] = 0.0  # ds_t/ds_t = I
    log_fro[:, t - 1] = 0.5 * math.log10(S)
    c0 = S + 1 if spectral else S  # rows: [P_k; v^T P_k (spectral start); g_r^T P_k (carried)] / exp(L)
    R = 0 if carry is None else carry.shape[1]
    rows = c0 + R
    P = torch.zeros(B, rows, S, dtype=dt)
    log_car = None
    if R:
        P[:, c0:] = carry.to(dt)
        log_car = torch.empty(B, R, t, dtype=f64)
        log_car[:, :, t - 1] = torch.log10(torch.linalg.vector_norm(carry.to(f64), dim=-1))
    P[:, :S] = torch.eye(S, dtype=dt)
    L = torch.zeros(B, dtype=f64)  # natural-log scale of P
    u = torch.randn(B, S, dtype=dt, generator=gen)
    if spectral:
        P[:, S] = _start_vector(u, gen)  # v^T I
    g = 0.0  # predicted per-step natural-log growth of the product (one number for the batch)
    half_steps = fallbacks = redone = 0
    buf = torch.empty(C, B, rows, S, dtype=dt)
    blocks = list(blocks or [])
    for r_, c_ in blocks:
        nr, nc = len(range(S)[r_]), len(range(S)[c_])
        if nr == 0 or nc == 0:
            raise InputError(f"blocks: expected non-empty blocks of the state (S = {S}), got {nr} x {nc}")
    log_blk = torch.full((B, len(blocks), t), float("nan"), dtype=f64) if blocks else None
    u_blk = [torch.randn(B, len(range(S)[r_]), dtype=dt, generator=gen) for r_, _ in blocks]
    if blocks:
        log_blk[:, :, t - 1] = 0.0  # the blocks of I are identities
    with torch.no_grad():
        k_hi, c_next = t - 1, min(8, C)
        while k_hi >= 1:
            # chunks grow 8, 16, ... C: early on the top singular vector still moves, so warm starts
            # must be recent; later it has converged and long chunks amortise the per-call overhead
            k_lo = max(1, k_hi - c_next + 1)
            n = k_hi - k_lo + 1
            # J_{k+1} = ds_{k+1}/ds_k for k = k_lo..k_hi, formed together and dropped after the chunk
            J = cell.jacobian(tr.inputs[k_lo:k_hi + 1].reshape(n * B, -1),
                              tr.states[k_lo:k_hi + 1].reshape(n * B, S)).reshape(n, B, S, S)
            out = buf[:n]
            P_start, L_start = P, L
            # every step is scaled by exp(-g) inside the GEMM, so the stored products stay near norm 1
            P = _products(P, J, out, math.exp(-g))
            Lk = L_start + g * torch.arange(1, n + 1, dtype=f64).unsqueeze(1)  # (n, B) log scale of each product
            fro_hat = torch.linalg.matrix_norm(out[:, :, :S]).to(f64)  # (n, B)
            if (((fro_hat < lo_ok) | (fro_hat > hi_ok) | ~torch.isfinite(fro_hat)) & torch.isfinite(Lk)).any():
                # the product left the safe range inside the chunk: redo it, renormalising every step
                redone += 1
                P, Lc = P_start, L_start
                for i in range(n):
                    torch.matmul(P, J[n - 1 - i], out=out[i])
                    nn = torch.linalg.matrix_norm(out[i][:, :S])  # (B,)
                    out[i] /= torch.where(nn > 0, nn, torch.ones_like(nn))[:, None, None]
                    Lc = Lc + torch.log(nn.to(f64))
                    Lk[i] = Lc
                    P = out[i]
                fro_hat = torch.linalg.matrix_norm(out[:, :, :S]).to(f64)
            # predicted growth for the next chunk: this chunk's mean per-step log growth of ||P||_F
            growth = (Lk[-1] + torch.log(fro_hat[-1]) - L_start) / n  # (B,)
            finite = torch.isfinite(growth)
            g = float(growth[finite].mean().clamp(-600.0 / C, 600.0 / C)) if finite.any() else 0.0
            log_fro[:, k_lo - 1:k_hi] = torch.flip((Lk + torch.log(fro_hat)).T, [1]) / _LN10
            if R:
                ln = Lk.unsqueeze(-1) + torch.log(torch.linalg.vector_norm(out[:, :, c0:], dim=-1).to(f64))  # (n, B, R)
                log_car[:, :, k_lo - 1:k_hi] = torch.flip(ln.permute(1, 2, 0), [2]) / _LN10
            if spectral:
                M = out[:, :, :S].reshape(n * B, S, S)
                w = out[:, :, S].reshape(n * B, S)  # = P_k^T v, carried through the GEMM
                sig, ul, hs, fb = _spectral(M, w, fro_hat.reshape(n * B).to(dt), rel_tol, max_half_steps, gen, B)
                half_steps += hs
                fallbacks += fb
                sig = sig.reshape(n, B).to(f64)
                log_spec[:, k_lo - 1:k_hi] = torch.flip((Lk + torch.log(sig)).T, [1]) / _LN10
                u = ul.reshape(n, B, S)[-1]  # warm start for the next chunk: the deepest entry's left vector
            for bi, (r_, c_) in enumerate(blocks):
                Mb = out[:, :, :S][:, :, r_, c_]  # (n, B, b, b)
                sig, u_blk[bi] = _block_spectral(Mb.reshape(n * B, Mb.shape[2], Mb.shape[3]), u_blk[bi], rel_tol,
                                                 max_half_steps, gen, B)
                lb = Lk + torch.log(sig.reshape(n, B).to(f64))  # (n, B)
                log_blk[:, bi, k_lo - 1:k_hi] = torch.flip(lb.T, [1]) / _LN10
            # renormalise the running product and restart the carried row from the new u
            last = out[n - 1]
            nrm = torch.linalg.matrix_norm(last[:, :S])
            safe = torch.where(nrm > 0, nrm, torch.ones_like(nrm))
            P = torch.empty(B, rows, S, dtype=dt)
            P[:, :S] = last[:, :S] / safe[:, None, None]
            P[:, c0:] = last[:, c0:] / safe[:, None, None]
            L = Lk[-1] + torch.log(nrm.to(f64))
            if spectral:
                P[:, S] = torch.bmm(_start_vector(u, gen).unsqueeze(1), P[:, :S]).squeeze(1)  # v^T P
            c_next = min(2 * c_next, C)
            k_hi = k_lo - 1
    if not spectral:
        log_spec = torch.full_like(log_fro, float("nan"))
    return JacobianProfile(log_spec, log_fro, t, half_steps, fallbacks, redone, log_car, log_blk)
