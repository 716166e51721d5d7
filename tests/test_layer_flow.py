"""interop/layer_flow.py: the per-layer LSTM adjoint sweep of diagnose (dL/dz_k and ||dL/dc_k|| kept on the way)
against products of torch.func.jacrev Jacobians and autograd through one step.

The rest of layer_flow (adjoints, carry share, gradient norms of every module kind) is tested through diagnose
against autograd in tests/test_diagnose.py.
"""

from __future__ import annotations

import pytest
import torch

from rnnscope.interop.layer_flow import _lstm_sweep
from rnnscope.interop.torch_models import rerun
from torch_reference import D, make_module

F64 = torch.float64


@pytest.mark.parametrize("kind", ["lstm", "lstm_proj"])
@pytest.mark.parametrize("cut", [False, True])
def test_lstm_sweep_equals_jacrev_products_and_keeps_the_gate_adjoints(kind, cut):
    """layer_flow's LSTM sweep (dL/dz_k kept for dL/dx_k) against products of jacrev Jacobians, dense and sparse direct.

    g_T = direct_T,  g_{k-1} = g_k J_k + direct_{k-1},  J_k = ds_k/ds_{k-1} by torch.func.jacrev of the step; with
    the carry cut, J_k's columns of c_{k-1} are zero (c_{k-1} reaches s_k only through f * c_{k-1}).
    """
    m = make_module(kind, 1, False, False, True, scale=1.0)
    x = torch.randn(8, 3, D, generator=torch.Generator().manual_seed(3), dtype=F64)  # (T, B, D)
    r = rerun(m, x).runs[0]
    cell, tr = r.cell, r.trace
    P, S = cell.h_size, cell.state_size
    for up in (torch.randn(8, 3, P, dtype=F64), torch.cat([torch.zeros(7, 3, P, dtype=F64), torch.ones(1, 3, P, dtype=F64)])):
        direct = torch.zeros(8, 3, S, dtype=F64)
        direct[:, :, :P] = up
        ref = torch.empty(9, 3, S, dtype=F64)  # dL/ds_k, k = 0..T
        ref[8] = direct[7]
        for k in range(8, 0, -1):
            J = torch.stack([torch.func.jacrev(lambda s_: cell.forward(tr.inputs[k - 1, b:b + 1], s_[None])[0][0])(
                tr.states[k - 1, b]) for b in range(3)])  # (B, S, S) ds_k/ds_{k-1}
            if cut:
                J[:, :, P:] = 0
            ref[k - 1] = torch.einsum("bi,bij->bj", ref[k], J) + (direct[k - 2] if k > 1 else 0)
        got, Z, NC = _lstm_sweep(cell, tr, up, 8, cut=cut)
        g = got.values()[1:]  # dL/ds_k, k = 1..T
        torch.testing.assert_close(got.values(), ref, rtol=1e-10, atol=1e-12)
        # dL/dx_k = dL/dz_k W_xh: against autograd through one step with s_{k-1} held constant
        xk = tr.inputs.reshape(-1, x.shape[2]).clone().requires_grad_(True)
        s = cell.forward(xk, tr.states[:-1].reshape(-1, S))[0]
        (gx,) = torch.autograd.grad(s, xk, g.reshape(-1, S))
        scale = torch.exp(got.log_scale[1:]).unsqueeze(-1)
        torch.testing.assert_close((scale * Z).reshape(-1, Z.shape[2]) @ cell.W_xh, gx, rtol=1e-10, atol=1e-12)
        uc = cell.cell_adjoint(tr.states[1:].reshape(-1, S), tr.preacts.reshape(-1, 4 * cell.hidden_size),
                               got.unit[1:].reshape(-1, S))
        torch.testing.assert_close(NC, torch.linalg.vector_norm(uc, dim=-1).reshape(8, 3), rtol=1e-12, atol=1e-12)
