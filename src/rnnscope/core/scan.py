"""Scans of the elementwise linear recurrence

    s_t = a_t * s_{t-1} + b_t,        t = 1..T,   s_0 given (zeros by default)

over the leading (time) axis of a, b (T, ...); every scan returns the states s_0..s_T (T+1, ...), s_0 first
(states[t] is s_t, as in Trace.states). The recurrences of LRU, minGRU, minLSTM and Mamba's S6 are of this form
(core.linear_recurrences, core.min_rnns: their `transition`).

    sequential_scan   the loop itself: the reference, T dependent steps
    associative_scan  the work-efficient scan over the associative combine of the steps' affine maps
                          (a, b) o (a', b') = (a a', a' b + b')        (first (a, b), then (a', b'))
                      by odd-even reduction: ceil(log2 T) levels, O(T) elementwise work in all; real or complex
    log_space_scan    Heinsen (2023), used by Feng et al. (2024) for minGRU / minLSTM: for a > 0, b > 0
                          log s_t = a*_t + logcumsumexp_{k <= t}(log b_k - a*_k),      a*_t = sum_{j <= t} log a_j
                      one cumulative sum and one logcumsumexp; nothing is exponentiated before the end, so
                      products of many small a_t do not underflow on the way. s_0 of any sign enters by linearity:
                      s_t = exp(a*_t) s_0 + (the scan from 0); b of any sign (sign_b) as the difference of the
                      scans of its positive and negative parts.

Legend: T time; "..." any trailing dimensions (B batch, S state), the same for a (or broadcastable to b), b, s_0.

Example:
    >>> a = torch.full((4, 1), 0.5, dtype=torch.float64)
    >>> b = torch.ones(4, 1, dtype=torch.float64)
    >>> associative_scan(a, b).flatten().tolist()          # s_t = s_{t-1} / 2 + 1 from 0
    [0.0, 1.0, 1.5, 1.75, 1.875]
    >>> torch.allclose(log_space_scan(a.log(), b.log()), sequential_scan(a, b), rtol=1e-14, atol=0)
    True
"""

from __future__ import annotations

import torch

from .errors import InputError

__all__ = ["sequential_scan", "associative_scan", "log_space_scan"]


def _tensor(name: str, v) -> torch.Tensor:
    if not isinstance(v, torch.Tensor):
        raise InputError(f"{name}: expected a torch.Tensor (T, ...), got {type(v).__name__}")
    if v.dim() < 1 or v.shape[0] < 1:
        raise InputError(f"{name}: expected a time axis first (T, ...) with T >= 1, got shape {tuple(v.shape)}")
    return v


def _terms(a, b, s0, a_name: str = "a", b_name: str = "b") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """a broadcast to b's shape (T, ...), b, and s0 (...) (zeros if None), all of one dtype."""
    a, b = _tensor(a_name, a), _tensor(b_name, b)
    try:
        a_full = a.expand_as(b) if a.shape != b.shape else a
    except RuntimeError:
        raise InputError(f"{a_name}: expected a shape broadcastable to {b_name}'s {tuple(b.shape)}, "
                         f"got {tuple(a.shape)}") from None
    dt = torch.result_type(a, b) if s0 is None else torch.promote_types(torch.result_type(a, b), s0.dtype)
    if s0 is None:
        s0 = torch.zeros(b.shape[1:], dtype=dt)
    elif not isinstance(s0, torch.Tensor) or tuple(s0.shape) != tuple(b.shape[1:]):
        got = tuple(s0.shape) if isinstance(s0, torch.Tensor) else type(s0).__name__
        raise InputError(f"s0: expected shape {tuple(b.shape[1:])} (the trailing dimensions of {b_name}), got {got}")
    return a_full.to(dt), b.to(dt), s0.to(dt)


def sequential_scan(a: torch.Tensor, b: torch.Tensor, s0: torch.Tensor | None = None) -> torch.Tensor:
    """s_t = a_t * s_{t-1} + b_t for t = 1..T, one step after the other: (T+1, ...) with s_0 first.

    Example:
        >>> sequential_scan(torch.tensor([[2.0], [3.0]]), torch.tensor([[1.0], [1.0]]), torch.tensor([1.0])).flatten()
        tensor([ 1.,  3., 10.])
    """
    a, b, s = _terms(a, b, s0)
    out = torch.empty((b.shape[0] + 1, *b.shape[1:]), dtype=b.dtype)
    out[0] = s
    for t in range(b.shape[0]):
        s = a[t] * s + b[t]  # s_{t+1} = a_{t+1} s_t + b_{t+1} (0-based rows of a, b)
        out[t + 1] = s
    return out


def _odd_even(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """s_1..s_T (T, ...) of s_t = a_t s_{t-1} + b_t from s_0 = 0 by odd-even reduction (0-based rows):

        combine the pairs (2i, 2i+1):   A_i = a_{2i+1} a_{2i},   B_i = a_{2i+1} b_{2i} + b_{2i+1}
        scan the T/2 pairs (the same problem, half as long): s at every odd row 2i+1
        fill the even rows:             s_{2i} = a_{2i} s_{2i-1} + b_{2i}          (s_0 = b_0)

    O(T) work in all (T + T/2 + ...), ceil(log2 T) levels."""
    T = b.shape[0]
    out = torch.empty_like(b)
    out[0] = b[0]
    if T == 1:
        return out
    m = 2 * (T // 2)
    a_odd = a[1:m:2]
    odd = _odd_even(a_odd * a[0:m:2], torch.addcmul(b[1:m:2], a_odd, b[0:m:2]))  # the pairs' own scan
    out[1:m:2] = odd
    # each even row from the odd row before it (read from odd, not from out: autograd keeps out's writes apart)
    out[2:T:2] = torch.addcmul(b[2:T:2], a[2:T:2], odd[:(T - 1) // 2])
    return out


def associative_scan(a: torch.Tensor, b: torch.Tensor, s0: torch.Tensor | None = None) -> torch.Tensor:
    """s_t = a_t * s_{t-1} + b_t by the associative combine of the steps' affine maps: (T+1, ...), s_0 first.

    Step t is the affine map s -> a_t s + b_t; composing step j's map after step i's (i < j) is the combine

        (a_i, b_i) o (a_j, b_j) = (a_i a_j, a_j b_i + b_j),

    associative, so the steps can be combined in any grouping: here pairwise (odd-even reduction, the
    work-efficient scan: ceil(log2 T) levels, O(T) elementwise work in all, each level a few whole-tensor
    operations). s_0 is folded into the first step: b_1 <- a_1 s_0 + b_1. Real or complex a, b; the rounding
    error grows like log2 T, not T.

    Example:
        >>> a = torch.tensor([0.5j, 0.5j, 0.5j])
        >>> associative_scan(a, torch.ones(3, dtype=torch.complex64))[1:]   # 1, 1 + i/2, 1 + i/2 - 1/4
        tensor([1.0000+0.0000j, 1.0000+0.5000j, 0.7500+0.5000j])
    """
    a, b, s0 = _terms(a, b, s0)
    b = b.clone()
    b[0] = torch.addcmul(b[0], a[0], s0)  # s_1 = a_1 s_0 + b_1: the start folded into the first step
    return torch.cat([s0.unsqueeze(0), _odd_even(a, b)])


def log_space_scan(log_a: torch.Tensor, log_b: torch.Tensor, s0: torch.Tensor | None = None, *,
                   sign_b: torch.Tensor | None = None) -> torch.Tensor:
    """s_t = a_t * s_{t-1} + b_t for a_t = exp(log_a_t) > 0 and b_t = exp(log_b_t) > 0 (Heinsen 2023), in log space:

        a*_t = sum_{j <= t} log a_j,       s_t = exp(a*_t) s_0 + exp(a*_t + logcumsumexp_{k <= t}(log b_k - a*_k))

    (the second term is sum_k (prod_{j=k+1..t} a_j) b_k from s_0 = 0). s_0 may have any sign (linearity);
    log_b = -inf is b = 0. sign_b (T, ...) of +1 / -1 / 0, optional: b_t = sign_b exp(log_b) of any sign, the
    scan of the positive part minus that of the negative part. log_a, log_b real and log_a finite.
    Returns (T+1, ...) with s_0 first.

    Example:
        >>> la = torch.log(torch.tensor([[0.5], [0.5]], dtype=torch.float64))
        >>> lb = torch.zeros(2, 1, dtype=torch.float64)                  # b = 1
        >>> log_space_scan(la, lb, torch.tensor([-4.0], dtype=torch.float64)).flatten().tolist()
        [-4.0, -1.0, 0.5]
    """
    la, lb, s0 = _terms(log_a, log_b, s0, "log_a", "log_b")
    if la.is_complex() or lb.is_complex() or s0.is_complex():
        raise InputError(f"log_a, log_b, s0: expected real tensors (a > 0, b > 0), got {la.dtype}")
    if not bool(torch.isfinite(la).all()):
        raise InputError("log_a: expected finite numbers (a_t > 0), got -inf, inf or NaN")
    a_star = torch.cumsum(la, 0)  # a*_t = log prod_{j <= t} a_j   (T, ...)

    def part(lb_part: torch.Tensor) -> torch.Tensor:  # sum_k exp(a*_t - a*_k + log b_k) from s_0 = 0
        return torch.exp(a_star + torch.logcumsumexp(lb_part - a_star, 0))

    if sign_b is None:
        s = part(lb)
    else:
        sign_b = torch.as_tensor(sign_b)
        if tuple(sign_b.shape) != tuple(lb.shape):
            raise InputError(f"sign_b: expected shape {tuple(lb.shape)} (that of log_b), got {tuple(sign_b.shape)}")
        ninf = torch.full_like(lb, float("-inf"))  # log 0: the other part's terms
        s = part(torch.where(sign_b > 0, lb, ninf)) - part(torch.where(sign_b < 0, lb, ninf))
    s = torch.addcmul(s, torch.exp(a_star), s0)  # + prod_{j <= t} a_j s_0
    return torch.cat([s0.unsqueeze(0), s])
