"""adjoint: the one adjoint sweep (linear and log domain) and adjoints() for any cell, against torch.autograd with
retain_grad on every state,
and against closed forms in the exploding linear regime at T = 100,000 (a naive product overflows float64)."""

import math

import pytest
import torch

import rnnscope as rs

F64 = torch.float64
T, B, D = 7, 2, 2


def _randn(g, *shape, scale=1.0):
    return torch.randn(*shape, generator=g, dtype=F64) * scale


def _cell(kind, seed=0):
    g = torch.Generator().manual_seed(seed)
    if kind in ("elman", "pal"):
        S = 4
        cls = rs.ElmanCell if kind == "elman" else rs.PalCell
        return cls(_randn(g, S, S, scale=1.3 / S**0.5), _randn(g, S, D), _randn(g, S, scale=0.3),
                   "tanh" if kind == "elman" else "sigmoid")
    if kind in ("lstm", "gru"):
        H, G = 3, 4 if kind == "lstm" else 3
        cls = rs.LSTMCell if kind == "lstm" else rs.GRUCell
        return cls(_randn(g, G * H, D), _randn(g, G * H, H, scale=0.8), _randn(g, G * H, scale=0.3),
                   _randn(g, G * H, scale=0.3))
    W, U = _randn(g, 3, 3, scale=0.8), _randn(g, 3, D)
    return rs.FunctionCell(lambda x, h: torch.tanh(W @ h + U @ x) + 0.3 * torch.sin(h), state_size=3, input_size=D)


KINDS = ["elman", "pal", "lstm", "gru", "function"]


def _autograd_adjoints(cell, x, s0, loss):
    """dL/ds_k, k = 0..t, with retain_grad on each state of a hand loop over cell.step; loss(states) -> scalar."""
    s = s0.clone().requires_grad_(True)
    states = [s]
    for k in range(x.shape[0]):
        s = cell.step(x[k], s)
        s.retain_grad()
        states.append(s)
    loss(states).backward()
    return torch.stack([st.grad if st.grad is not None else torch.zeros_like(st) for st in states])


def _hidden(cell):
    return getattr(cell, "hidden_size", cell.state_size)


def _setup(kind, seed=1):
    cell = _cell(kind)
    g = torch.Generator().manual_seed(seed)
    x, s0 = _randn(g, T, B, D), _randn(g, B, cell.state_size, scale=0.5)
    return cell, x, s0, rs.unroll(cell, x, s0), g


def _check(adj, ref, t):
    assert adj.log_scale.shape == (t + 1, B) and adj.unit.shape == (t + 1, B, ref.shape[-1])
    assert ref.abs().max() > 1e-3
    torch.testing.assert_close(adj.values(), ref, rtol=1e-11, atol=1e-13)
    torch.testing.assert_close(adj.log10_norm, torch.log10(torch.linalg.vector_norm(ref, dim=-1)), rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("t", [None, 4])
def test_default_loss_sum_of_h_t(kind, t):
    cell, x, s0, tr, _ = _setup(kind)
    tt = T if t is None else t
    H = _hidden(cell)
    ref = _autograd_adjoints(cell, x[:tt], s0, lambda st: st[-1][:, :H].sum())  # for LSTM: h only, not c
    _check(rs.adjoints(cell, tr, t=t), ref, tt)
    if kind == "lstm":
        assert (ref[-1][:, H:] == 0).all() and ref[-2][:, H:].abs().max() > 1e-3  # c_t reached through h_t


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("t", [None, 5])
@pytest.mark.parametrize("pattern", ["dense", "last-only", "gap"])
def test_direct_terms_of_a_random_linear_loss(kind, t, pattern):
    cell, x, s0, tr, g = _setup(kind, seed=2)
    tt = T if t is None else t
    c = _randn(g, tt, B, cell.state_size)  # L = sum_k <c_k, s_k>, k = 1..t
    if pattern == "last-only":
        c[:-1] = 0
    if pattern == "gap":
        c[-1] = 0  # no term at the last step, a zero stretch, then terms again
        c[1:3] = 0
    ref = _autograd_adjoints(cell, x[:tt], s0, lambda st: sum((c[k - 1] * st[k]).sum() for k in range(1, tt + 1)))
    _check(rs.adjoints(cell, tr, direct=c, t=t), ref, tt)


def test_all_zero_direct_gives_zero_adjoints():
    cell, x, s0, tr, _ = _setup("elman")
    adj = rs.adjoints(cell, tr, direct=torch.zeros(T, B, cell.state_size, dtype=F64))
    assert (adj.values() == 0).all()
    assert torch.isneginf(adj.log10_norm).all()


def test_errors_raise_input_error():
    cell, x, s0, tr, _ = _setup("gru")
    for make in (lambda: rs.adjoints(cell, tr, direct=torch.zeros(T, B, cell.state_size + 1, dtype=F64)),
                 lambda: rs.adjoints(cell, tr, direct=torch.zeros(T, B, cell.state_size, dtype=F64), t=3),
                 lambda: rs.adjoints(cell, tr, t=0),
                 lambda: rs.adjoints(cell, tr, t=T + 1)):
        with pytest.raises(rs.InputError, match="expected"):
            make()


def _linear_cell(W):
    S = W.shape[0]
    return rs.ElmanCell(W, torch.zeros(S, 1, dtype=F64), torch.zeros(S, dtype=F64), "identity")


@pytest.mark.slow
def test_log_domain_exploding_at_T_100000():
    # identity activation, W_hh = r Q with Q orthogonal, zero input, L = sum of h_T:
    # dL/dh_k = 1^T (r Q)^(T-k), so ||dL/dh_k|| = sqrt(S) r^(T-k) exactly (Q preserves norms)
    S, Tn, r = 4, 100_000, 1.05
    Q, R = torch.linalg.qr(_randn(torch.Generator().manual_seed(3), S, S))
    assert torch.allclose(Q.T @ Q, torch.eye(S, dtype=F64), atol=1e-14)
    cell = _linear_cell(r * Q)
    adj = rs.adjoints(cell, rs.unroll(cell, torch.zeros(Tn, 1, 1, dtype=F64)))
    got = adj.log10_norm[:, 0]  # (T+1,)
    assert torch.isfinite(got).all()
    k = torch.arange(Tn + 1, dtype=F64)
    closed = math.log10(math.sqrt(S)) + (Tn - k) * math.log10(r)
    assert float(closed[0]) > 2000  # 10^2000: far beyond float64
    torch.testing.assert_close(got, closed, rtol=1e-9, atol=0)


def test_log_domain_exploding_with_a_direct_term_at_every_step():
    # W_hh = r P, P a cyclic permutation (orthogonal, and 1^T P = 1^T), L = sum_k <1, h_k>, k = 1..T:
    # dL/dh_k = 1^T sum_{j=max(k,1)}^{T} r^(j-k), a geometric sum; its log10 in closed form
    S, Tn, r = 4, 20_000, 1.05
    P = torch.roll(torch.eye(S, dtype=F64), 1, dims=0)
    cell = _linear_cell(r * P)
    direct = torch.ones(Tn, 1, S, dtype=F64)
    adj = rs.adjoints(cell, rs.unroll(cell, torch.zeros(Tn, 1, 1, dtype=F64)), direct=direct)
    got = adj.log10_norm[:, 0]
    assert torch.isfinite(got).all()

    def log10_geometric(a, b):  # log10 sum_{m=a}^{b} r^m = a lg r + lg(r^n - 1) - lg(r - 1), n = b - a + 1
        n = b - a + 1
        return a * math.log10(r) + n * math.log10(r) + math.log1p(-r ** -n) / math.log(10) - math.log10(r - 1)

    closed = torch.tensor([math.log10(math.sqrt(S)) + log10_geometric(max(k, 1) - k, Tn - k) for k in range(Tn + 1)],
                          dtype=F64)
    assert float(closed[0]) > 400  # beyond float64's largest number
    torch.testing.assert_close(got, closed, rtol=1e-9, atol=1e-12)
    # the direction stays the all-ones direction
    torch.testing.assert_close(adj.unit[:, 0], torch.full((Tn + 1, S), 0.5, dtype=F64), rtol=0, atol=1e-12)


def test_linear_sweep_is_autograd_of_a_loss_on_every_state_with_rows():
    """sweep (linear) on a random nonlinear recursion s_k = tanh(A_k s_{k-1}) with a loss term at some steps:
    every g_k against autograd (retain_grad), and rows kept apart (one per loss term) summing to the total."""
    from rnnscope.gradients.adjoint import sweep
    g = torch.Generator().manual_seed(3)
    t, B, S = 9, 2, 4
    A = _randn(g, t, S, S, scale=0.9)
    c = _randn(g, t, B, S)
    at = {2, 5, 9}  # the steps whose state the loss reads
    s = [_randn(g, B, S).requires_grad_(True)]
    for k in range(1, t + 1):
        s.append(torch.tanh(s[-1] @ A[k - 1].T))
        s[-1].retain_grad()
    loss = sum((c[k - 1] * s[k]).sum() for k in at)
    loss.backward()
    ref = torch.stack([s[0].grad] + [s[k].grad for k in range(1, t + 1)])  # (t+1, B, S)

    def vjp(k, v):  # v ds_k/ds_{k-1} = (v * tanh'(.)) A_k, on any leading dimensions
        return (v * (1 - s[k].detach() ** 2)) @ A[k - 1]
    got = sweep(t, vjp, lambda k: c[k - 1] if k in at else (torch.zeros(B, S, dtype=F64) if k == t else None))
    torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-14)
    rows = {k: r for r, k in enumerate(sorted(at))}

    def direct_rows(k):
        if k not in at:
            return None
        v = torch.zeros(len(at), B, S, dtype=F64)
        v[rows[k]] = c[k - 1]
        return v
    per_term = sweep(t, vjp, direct_rows)  # (t+1, 3, B, S)
    torch.testing.assert_close(per_term.sum(1), ref, rtol=1e-12, atol=1e-14)
    assert bool((per_term[6:, rows[5]] == 0).all())  # the term at step 5 reaches no later state
    log = sweep(t, vjp, lambda k: c[k - 1] if k in at else (torch.zeros(B, S, dtype=F64) if k == t else None),
                log_domain=True)
    torch.testing.assert_close(log.values(), ref, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("r", [1e30, 1e-30, 3.0, 0.5])
@pytest.mark.parametrize("block", [1, 16, 40])
def test_block_scaled_sweep_against_closed_forms_where_blocks_leave_the_range(r, block):
    """W_hh = r Q (Q orthogonal), identity activation, a loss term <c, h_k> at every step: dL/dh_k = sum_{j>=k}
    c^T (rQ)^(j-k), whose norm is computed here by the same sum in log space from exact powers of Q (float64).
    r = 1e30 (1e-30): a block of 16 steps overflows (underflows) float64 and is redone step by step."""
    S, Tn = 3, 60
    Q, _ = torch.linalg.qr(_randn(torch.Generator().manual_seed(5), S, S))
    cell = _linear_cell(r * Q)
    c = _randn(torch.Generator().manual_seed(6), S)
    adj = rs.adjoints(cell, rs.unroll(cell, torch.zeros(Tn, 1, 1, dtype=F64)), direct=c.expand(Tn, 1, S), block=block)
    # reference: v_k = sum_{j=k}^{T} r^(j-k) c^T Q^(j-k), formed at the scale r^(T-k) (r > 1) or 1 (r < 1)
    powers = [torch.eye(S, dtype=F64)]
    for _ in range(Tn):
        powers.append(powers[-1] @ Q)
    for k in range(1, Tn + 1):
        top = Tn - k if r > 1 else 0  # the largest exponent
        v = sum(r ** (j - k - top) * (c @ powers[j - k]) for j in range(k, Tn + 1))
        ref = math.log10(float(torch.linalg.vector_norm(v))) + top * math.log10(r)
        assert float(adj.log10_norm[k, 0]) == pytest.approx(ref, rel=1e-11, abs=1e-9), k
        torch.testing.assert_close(adj.unit[k, 0], v / torch.linalg.vector_norm(v), rtol=0, atol=1e-11)
    # vjp_log_scale: the sweep called vjp(k, v) with v = dL/ds_k exp(-vjp_log_scale[k]), ||v|| <= 1 at a block start
    assert torch.isfinite(adj.vjp_log_scale).all()


@pytest.mark.parametrize("kind", rs.MODERN_KINDS)
def test_adjoints_of_the_modern_cells_equal_autograd(kind):
    """adjoints() (the log-domain sweep through each cell's own vjp) against autograd with retain_grad on every
    state, for a loss on every step's h part: L = sum_t <c_t, h_t>."""
    cell = rs.random_cell(kind, hidden=3, input_size=D, seed=1)
    g = torch.Generator().manual_seed(2)
    x = _randn(g, T, B, D, scale=1.5)
    trace = rs.unroll(cell, x)
    P = cell.h_size
    c = _randn(g, T, B, P)  # dL/dh_t (T, B, P): the h part of every state
    s = cell.zero_state(B).requires_grad_(True)
    states = [s]
    for t in range(T):
        s = cell.step(x[t], s)
        s.retain_grad()
        states.append(s)
    (sum((c[t] * states[t + 1][:, :P]).sum() for t in range(T))).backward()
    a = rs.adjoints(cell, trace, c)
    for k in range(T + 1):  # dL/ds_k for k = 0..T (scaled values back in linear form)
        ref = states[k].grad
        got = a.values()[k]
        assert torch.allclose(got, ref, atol=1e-10, rtol=1e-10), (kind, k)
