"""interop/layer_flow.py: one (layer, direction)'s sweep over stacked rows (the batch, extra rows with their own
upstream and a log-offset each (per row, or per step and row), carry-cut copies, a final direct term, a packed
batch) against products of torch.func.jacrev Jacobians, and dL/dx_k and the parameter gradients against autograd
through one step.

The rest of layer_flow (stacks, every module kind) is tested through diagnose against autograd through nn.*Cell
loops in tests/test_diagnose.py and tests/test_diagnose_model.py.
"""

from __future__ import annotations

import math

import pytest
import torch

from rnnscope.interop.layer_flow import adjoint_layer, param_fields
from rnnscope.interop.torch_models import rerun
from torch_reference import D, make_module

F64 = torch.float64
T, B = 8, 3


def _jacobians(cell, tr, b: int, k: int, cut: bool) -> torch.Tensor:
    """ds_k/ds_{k-1} of sequence b by jacrev of the step; with the carry term's state argument held (cut)."""
    J = torch.func.jacrev(lambda s_: cell.forward(tr.inputs[k - 1, b:b + 1], s_[None])[0][0])(tr.states[k - 1, b])
    if cut:
        P = cell.h_size
        if cell.kind == "lstm":
            J[:, P:] = 0  # c_{k-1} enters s_k only through f * c_{k-1}
        else:  # GRU: minus the update gate's copy z * h_{k-1}
            H = cell.hidden_size
            a = tr.preacts[k - 1, b]
            J = J - torch.diag(torch.sigmoid(a[H:2 * H]))
    return J


def _reference(cell, tr, up_b: torch.Tensor, b: int, cut: bool, final=None, L: int | None = None) -> torch.Tensor:
    """dL/ds_k, k = 0..T (T+1, S) of one row on sequence b: g_T = direct_T (+ final), g_{k-1} = g_k J_k + direct_{k-1};
    a packed row (L < T): the steps k > L are the identity."""
    S, P = cell.state_size, cell.h_size
    direct = torch.zeros(T, S, dtype=F64)
    direct[:, :P] = up_b
    g = torch.empty(T + 1, S, dtype=F64)
    g[T] = direct[T - 1] + (0 if final is None else final)
    for k in range(T, 0, -1):
        J = torch.eye(S, dtype=F64) if L is not None and k > L else _jacobians(cell, tr, b, k, cut)
        g[k - 1] = g[k] @ J + (direct[k - 2] if k > 1 else 0)
    return g


@pytest.mark.parametrize("kind", ["lstm", "lstm_proj", "gru", "rnn_tanh"])
def test_stacked_rows_offsets_cut_and_final_against_jacrev(kind):
    m = make_module(kind, 1, False, False, True, scale=1.0)
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(T, B, D, generator=gen, dtype=F64)
    r = rerun(m, x).runs[0]
    cell, tr = r.cell, r.trace
    P, S = cell.h_size, cell.state_size
    seq = torch.tensor([0, 1, 2, 2, 0])  # the batch, then two extra rows on sequences 2 and 0
    R = len(seq)
    up = torch.randn(T, R, P, generator=gen, dtype=F64)
    up[:, 3] = 0.0
    up[5, 3] = torch.randn(P, generator=gen, dtype=F64)  # an anchored row: one direct term, at step 6
    off = torch.tensor([0.0, 1.5, -2.0, 650.0, -650.0], dtype=F64)  # e^650 ~ 1e282: rows beyond float64's reach combined
    final = torch.randn(B, S, generator=gen, dtype=F64)
    C = 2 if cell.has_carry else 0
    o = adjoint_layer(r, up, off, seq, cut=C, need_x=True, gradient_norm=True, final=final)
    assert o["t_last"] == T
    gx_ref = torch.zeros(T, R, D, dtype=F64)
    for row in range(R):
        b = int(seq[row])
        # the batch rows: u exp(off) + final (unscaled) as they are; the extra rows (no final): at offset 0, shifted
        sc = math.exp(off[row]) if row < B else 1.0
        g = _reference(cell, tr, sc * up[:, row], b, False, final[b] if row < B else None)  # (T+1, S)
        shift = 0.0 if row < B else float(off[row]) / math.log(10)
        want = torch.log10(torch.linalg.vector_norm(g[1:, :P], dim=-1)) + shift
        got = o["adjoint_h"][row] if row < B else o["rows_h"][row - B]
        torch.testing.assert_close(got, want, rtol=0, atol=1e-10)
        if row < B and S != P:  # ||dL/dc_k|| as autograd reports it for the tensor c_k: through h_k too
            uc = cell.cell_adjoint(tr.states[1:, b], tr.preacts[:, b], g[1:])
            torch.testing.assert_close(o["adjoint_c"][row], torch.log10(torch.linalg.vector_norm(uc, dim=-1)), rtol=0, atol=1e-10)
        if row < B:
            torch.testing.assert_close(o["g0"][row], g[0], rtol=1e-10, atol=1e-12)
        # dL/dx_k = g_k ds_k/dx_k, s_{k-1} held: autograd through one step of each k
        xk = tr.inputs[:, b].clone().requires_grad_(True)
        s = cell.forward(xk, tr.states[:-1, b])[0]
        (gxr,) = torch.autograd.grad(s, xk, g[1:])
        gx_ref[:, row] = gxr
        if row < C:  # the carry share against the cut reference on the same row
            bcut = _reference(cell, tr, sc * up[:, row], b, True, final[b])
            a = torch.linalg.vector_norm(g[1:] - bcut[1:], dim=-1)
            nb = torch.linalg.vector_norm(bcut[1:], dim=-1)
            torch.testing.assert_close(o["share"][row], a / (a + nb), rtol=0, atol=1e-10)
    shifts = torch.where(torch.arange(R) < B, torch.zeros(R, dtype=F64), off)  # the extra rows' references at offset 0
    got_gx = o["gx"] * torch.exp(o["m"] - shifts).unsqueeze(-1)  # m (T, R): each step and row at its own scale
    torch.testing.assert_close(got_gx, gx_ref, rtol=1e-9, atol=1e-12)
    # the parameter gradients of the batch rows: autograd of sum_k <g_k, s_k(x_k, s_{k-1}; theta)>, s_{k-1} held
    params = {f: getattr(cell, f).detach().clone().requires_grad_(True) for f in param_fields(cell, True)}
    import dataclasses
    c2 = dataclasses.replace(cell, **params)
    total = 0
    for b in range(B):
        g = _reference(cell, tr, math.exp(off[b]) * up[:, b], b, False, final[b])
        s = c2.forward(tr.inputs[:, b], tr.states[:-1, b])[0]
        total = total + (g[1:] * s).sum()
    grads = torch.autograd.grad(total, list(params.values()))
    for (f, _), gr in zip(params.items(), grads):
        torch.testing.assert_close(o["grads"][f] * math.exp(o["gm"]), gr, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn_tanh"])
def test_offsets_per_step_and_row_in_both_directions_against_jacrev(kind):
    """The upstream of a layer below comes at a log-offset per step and row (T, R): up_k exp(off_{k,r}), in position
    order, read in each direction's own time order. Offsets up to e^200 here, so that the reference (jacrev
    products in float64) can take every direct term unscaled; dL/dx_k (gx exp(m), m (T, R)) against autograd."""
    m = make_module(kind, 1, True, False, True, scale=1.0)
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(T, B, D, generator=gen, dtype=F64)
    seq = torch.tensor([0, 1, 2, 1])  # the batch, then an extra row on sequence 1
    R = len(seq)
    for r in rerun(m, x).runs:  # forward, then reverse: the offsets turn with the direction's own time order
        cell, tr = r.cell, r.trace
        P = cell.h_size
        up = torch.randn(T, R, P, generator=gen, dtype=F64)
        off = (torch.rand(T, R, generator=gen, dtype=F64) - 0.5) * 400.0  # e^-200 .. e^200, a different one per step
        o = adjoint_layer(r, up, off, seq, need_x=True)
        own = (lambda v: v) if r.direction == "forward" else (lambda v: v.flip(0))  # position -> own order
        for row in range(R):
            b = int(seq[row])
            g = _reference(cell, tr, own(up[:, row] * torch.exp(off[:, row]).unsqueeze(-1)), b, False)  # (T+1, S)
            want = torch.log10(torch.linalg.vector_norm(g[1:, :P], dim=-1))
            got = o["adjoint_h"][row] if row < B else o["rows_h"][row - B]
            torch.testing.assert_close(got, want, rtol=0, atol=1e-10)
            xk = tr.inputs[:, b].clone().requires_grad_(True)  # (own order)
            s = cell.forward(xk, tr.states[:-1, b])[0]
            (gxr,) = torch.autograd.grad(s, xk, g[1:])
            got_gx = own(o["gx"][:, row] * torch.exp(o["m"][:, row]).unsqueeze(-1))  # position -> own order
            torch.testing.assert_close(got_gx, gxr, rtol=1e-9, atol=0)


def test_packed_rows_are_the_identity_beyond_their_length_and_nan_in_the_profile():
    m = make_module("lstm", 1, False, False, True, scale=1.0)
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(T, B, D, generator=gen, dtype=F64)
    lengths = torch.tensor([8, 5, 3])
    for r in rerun(m, x, lengths=lengths).runs:  # (the reverse direction: through diagnose, tests/test_packed.py)
        cell, tr = r.cell, r.trace
        up = torch.randn(T, B, cell.h_size, generator=gen, dtype=F64)
        up[torch.arange(T)[:, None] >= lengths[None, :]] = 0.0  # no loss beyond a sequence's length
        final = torch.randn(B, cell.state_size, generator=gen, dtype=F64)
        o = adjoint_layer(r, up, cut=B, need_x=True, final=final)
        for b in range(B):
            L = int(lengths[b])
            g = _reference(cell, tr, up[:, b], b, False, final[b], L=L)
            want = torch.log10(torch.linalg.vector_norm(g[1:L + 1, :cell.h_size], dim=-1))
            torch.testing.assert_close(o["adjoint_h"][b, :L], want, rtol=0, atol=1e-10)
            assert torch.isnan(o["adjoint_h"][b, L:]).all() and torch.isnan(o["share"][b, L:]).all()
            assert torch.equal(o["gx"][L:, b], torch.zeros(T - L, D, dtype=F64))  # padded steps pass nothing down
