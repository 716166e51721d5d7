"""The numbers of one (layer, direction) in a diagnosis: adjoints, the layer below's upstream, the parameter
gradient norm, the carry share; from the upstream u_k = dL/dh_k that the loss and the layers above send it.

    direct_k = u_k on the h part of s_k (in the direction's own time order; zero after the last loss step t)
    g_k = dL/ds_k:  g_t = direct_t,  g_{k-1} = g_k ds_k/ds_{k-1} + direct_{k-1}
                    (adjoint.adjoints, log-polar g_k = exp(log_scale_k) unit_k; LSTM through LSTMCell.vjp_gates)
    dL/dx_k = g_k ds_k/dx_k              the layer below's upstream (LSTM: dL/dz_k W_xh, one product over all k)
    ||dL/dtheta||^2 = sum over the cell's parameter fields of ||sum_k g_k d+s_k/dtheta||^2, d+ the immediate
                    partial (s_{k-1} held constant): one batched backward through all the steps at once
sweep_stack runs adjoint_layer over a whole re-run, top layer to layer 0, each layer's dL/dx (summed over its
directions) the upstream of the layer below (diagnose; credit.py on a batch tiled with anchored direct terms).
Scales: the sweep is in the log domain; the batched backward and the upstream carry one common log-scale per
layer (exact while the batch's gradients lie within the float range of each other).

Gate attribution. Every step has a carry term that copies the previous state through a gate: LSTM f_k * c_{k-1}
(the cell path c_{k-1} -> c_k through the forget gate; c_{k-1} enters step k nowhere else), GRU z_k * h_{k-1}
(the update gate's copy). Sum the adjoint over paths: g_k = dL/ds_k = a_k + b_k, where b_k sums the paths that
never go through a carry term (the adjoint of the same network with the carry term's state argument detached at
every step of this layer: c_t = f c_{t-1}.detach() + i g, h_t = (1-z) n + z h_{t-1}.detach(); Cell.vjp_cut) and
a_k = g_k - b_k the paths that take the cell path / update-gate carry at least once. Then

    carry_share(k) = ||a_k|| / (||a_k|| + ||b_k||)       in [0, 1]; NaN where dL/ds_k = 0

near 1: the gradient from step k reaches the loss through the cell path; near 0: through h (W_hh) only.

Legend: T time, B batch, D input size, H hidden (cell) size, P size of h (H, or proj_size), S state size.

Example (L = the sum of h_T, so dL/dh_T is a vector of ones: log10 ||dL/dh_T|| = log10 sqrt(4)):
    >>> from rnnscope.interop.torch_models import rerun
    >>> run = rerun(torch.nn.GRU(2, 4).double(), torch.randn(10, 3, 2, dtype=torch.float64)).runs[0]
    >>> up = torch.zeros(10, 3, 4, dtype=torch.float64)
    >>> up[-1] = 1.0
    >>> o = adjoint_layer(run, up, 0.0, need_x=True, attribution=True, gradient_norm=True)
    >>> o["adjoint_h"].shape, o["share"].shape, o["gx"].shape, o["t_last"]
    (torch.Size([3, 10]), torch.Size([3, 10]), torch.Size([10, 3, 2]), 10)
    >>> round(float(o["adjoint_h"][0, -1]), 6) == round(math.log10(2.0), 6)
    True
"""

from __future__ import annotations

import dataclasses
import math

import torch

from ..core.cells import Cell, ElmanCell, GRUCell, LSTMCell, PalCell, ProjLSTMCell
from ..core.unroll import Trace
from ..gradients.adjoint import Adjoints, adjoints
from .torch_models import LayerRun, StackRun

__all__ = ["adjoint_layer", "sweep_stack", "gate_sigmas", "LN10"]

LN10 = math.log(10.0)
_ROWS_PER_PASS = 2**21  # numbers per (rows x pre-activation width) chunk of the batched backward: bounded memory
_GATES = {"lstm": "ifgo", "gru": "rzn"}


def _param_fields(cell: Cell, bias: bool) -> dict[str, int]:
    """The cell's fields that are module parameters, with how many module parameters each one is the sum of."""
    if isinstance(cell, (ElmanCell, PalCell)):
        return {"W_hh": 1, "W_xh": 1, **({"b_h": 2} if bias else {})}  # b_h = bias_ih + bias_hh: two parameters
    if isinstance(cell, (LSTMCell, GRUCell)):
        f = {"W_xh": 1, "W_hh": 1, **({"b_xh": 1, "b_hh": 1} if bias else {})}
        if isinstance(cell, ProjLSTMCell):
            f["W_hr"] = 1
        return f
    return {}


def _batched_backward(cell: Cell, trace: Trace, g: torch.Tensor, need_x: bool,
                      fields: dict[str, int]) -> tuple[torch.Tensor | None, float | None]:
    """One backward through all steps at once: dL/dx_k = g_k ds_k/dx_k (t, B, D) and ||dL/dtheta||^2.

    g (t, B, S) = dL/ds_k for k = 1..t (scaled). s_{k-1} enters as a constant: only the immediate partials.
    """
    t, B, S = g.shape
    D = trace.inputs.shape[2]
    A = max(S, cell.W_hh.shape[0] if hasattr(cell, "W_hh") else S)
    step = max(1, _ROWS_PER_PASS // (B * A))
    gx = torch.empty(t, B, D, dtype=g.dtype) if need_x else None
    params = {n: getattr(cell, n).detach().requires_grad_(True) for n in fields}
    c = dataclasses.replace(cell, **params) if params else cell
    acc = {n: torch.zeros_like(p) for n, p in params.items()}
    with torch.enable_grad():
        for lo in range(0, t, step):
            hi = min(t, lo + step)
            x = trace.inputs[lo:hi].reshape(-1, D).detach().requires_grad_(need_x)
            s = c.forward(x, trace.states[lo:hi].reshape(-1, S))[0]  # s_k from (x_k, s_{k-1}), rows (k, b)
            wrt = ([x] if need_x else []) + list(params.values())
            if not wrt:
                break
            grads = torch.autograd.grad(s, wrt, grad_outputs=g[lo:hi].reshape(-1, S), allow_unused=True)
            if need_x:
                gx[lo:hi] = grads[0].reshape(hi - lo, B, D)  # through the drive: W_xh x_k
                grads = grads[1:]
            for (n, acc_n), gr in zip(acc.items(), grads):
                if gr is not None:
                    acc_n += gr  # sum over k of the immediate partials d+s_k/dtheta
    sq = None
    if fields:
        sq = float(sum(m * float(torch.linalg.vector_norm(acc[n].to(torch.float64))) ** 2 for n, m in fields.items()))
    return gx, sq


def _lstm_sweep(cell: LSTMCell, trace: Trace, direct: torch.Tensor, t: int,
                cut: bool = False) -> tuple[Adjoints, torch.Tensor, torch.Tensor]:
    """adjoint.adjoints for an LSTM (ProjLSTMCell too) that also keeps what each product passes through:

        g_t = direct_t,   g_{k-1} = g_k ds_k/ds_{k-1} + direct_{k-1}      (LSTMCell.vjp_gates, log-polar)

    direct (>= t, B, P): the explicit dL/dh_k (the loss reads h only; its c part is zero), or (>= t, B, S) on
    the whole state (a loss that reads c_T too).
    Returns (Adjoints, Z, NC): Z (t, B, 4H) = dL/dz_k / exp(log_scale[k]) for k = 1..t (the unit adjoint's
    pass through step k), so that dL/dx_k = exp(log_scale[k]) Z_k W_xh is one product over all steps
    (no second pass through the gates); NC (t, B) = ||dL/dc_k|| / exp(log_scale[k]) of the tensor c_k
    (LSTMCell.cell_adjoint: through h_k = o tanh(c_k) too). c_k is read from the trace, not recomputed.
    cut: the carry term f * c_{k-1} held constant (LSTMCell.vjp_cut).
    """
    P = cell.h_size
    Z = torch.empty(t, trace.B, 4 * cell.hidden_size, dtype=cell.dtype)  # (t, B, 4H)
    NC = torch.empty(t, trace.B, dtype=cell.dtype)  # (t, B)

    def vjp(k: int, g: torch.Tensor) -> torch.Tensor:
        w, _, g_c = cell.vjp_gates(trace.inputs[k - 1], trace.states[k - 1], g, trace.preacts[k - 1],
                                   c_new=trace.states[k, :, P:], cut=cut, dz=Z[k - 1])  # dL/dz_k lands in Z
        NC[k - 1] = torch.linalg.vector_norm(g_c, dim=1)
        return w

    return adjoints(cell, trace, direct[:t], t=t, vjp=vjp), Z, NC


def _polar_norms(log_scale: torch.Tensor, unit: torch.Tensor, part: slice) -> torch.Tensor:
    """log10 ||v[part]|| for v = exp(log_scale) unit (..., S) -> (...)."""
    return (log_scale.to(torch.float64) + torch.log(torch.linalg.vector_norm(unit[..., part], dim=-1).to(torch.float64))) / LN10


def _share(ls: torch.Tensor, u: torch.Tensor, ls_cut: torch.Tensor, u_cut: torch.Tensor) -> torch.Tensor:
    """||g - b|| / (||g - b|| + ||b||) for g = exp(ls) u and b = exp(ls_cut) u_cut, without overflow."""
    m = torch.maximum(ls, ls_cut)
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    g = torch.exp(ls - m).unsqueeze(-1) * u
    b = torch.exp(ls_cut - m).unsqueeze(-1) * u_cut
    a = torch.linalg.vector_norm(g - b, dim=-1)
    nb = torch.linalg.vector_norm(b, dim=-1)
    tot = a + nb
    return torch.where(tot > 0, a / torch.where(tot > 0, tot, torch.ones_like(tot)), torch.full_like(tot, float("nan")))



def gate_sigmas(cell: Cell) -> dict | None:
    """sigma_max of each gate's block of W_hh (LSTM i f g o, GRU r z n; rows of H each); None for other cells."""
    names = _GATES.get(cell.kind)
    if names is None:
        return None
    W = cell.W_hh.detach().to(torch.float64)
    H = W.shape[0] // len(names)
    return {n: float(torch.linalg.svdvals(W[i * H:(i + 1) * H])[0]) for i, n in enumerate(names)}


def adjoint_layer(run: LayerRun, up: torch.Tensor, off: float, need_x: bool, attribution: bool,
                   gradient_norm: bool, final: torch.Tensor | None = None) -> dict:
    """The adjoints of one (layer, direction) given the upstream dL/dh (T, B, P) (times exp(off)), in position order.

    final (B, S): a direct term dL/ds_T on the last state in the direction's own time order (a loss that reads
    the module's h_n, and c_n on the c part), unscaled. The result's "g0" (B, S) is dL/ds_0 (unscaled): the
    gradient that reaches the initial state.
    """
    cell, tr = run.cell, run.trace
    T, B = tr.T, tr.B
    P, S = cell.h_size, cell.state_size
    f64 = torch.float64
    if run.direction == "reverse":
        up = up.flip(0)  # the direction's own time order
    lstm = isinstance(cell, LSTMCell)
    direct = up  # (T, B, P): the loss reads h only; adjoints takes the h part of dL/ds_k
    if final is not None and bool((final != 0).any()):  # + dL/ds_T from h_n (c_n), on one common scale with up
        m0 = max(off, math.log(float(final.abs().max())))
        direct = torch.zeros(T, B, S, dtype=cell.dtype)
        direct[:, :, :P] = up * math.exp(off - m0)
        direct[-1] += final.to(cell.dtype) * math.exp(-m0)
        off = m0
    nz = torch.nonzero((direct.reshape(T, -1) != 0).any(1))
    t_last = int(nz[-1]) + 1 if nz.numel() else 0  # the last step with a direct term: later adjoints are exactly 0
    log_scale = torch.full((T + 1, B), float("-inf"), dtype=f64)
    unit = None
    share = torch.full((B, T), float("nan"), dtype=f64) if attribution and cell.has_carry else None
    nc = None
    out = {"gx": None, "m": 0.0, "sq": 0.0 if gradient_norm and _param_fields(cell, run.bias) else None,
           "g0": torch.zeros(B, S, dtype=cell.dtype)}
    if t_last:
        if lstm:  # the same sweep, keeping dL/dz_k for dL/dx_k below and ||dL/dc_k||
            adj, Z, nc = _lstm_sweep(cell, tr, direct, t_last)
        else:
            adj, Z = adjoints(cell, tr, direct[:t_last], t=t_last), None  # g_k = dL/ds_k, k = 0..t_last, log-polar
        log_scale[:t_last + 1] = adj.log_scale.to(f64) + off
        u0 = adj.unit[0]  # dL/ds_0 = exp(log_scale[0]) u0 (zero where u0 is)
        out["g0"] = torch.where(u0 == 0, torch.zeros_like(u0), torch.exp(log_scale[0]).to(u0.dtype).unsqueeze(-1) * u0)
        if t_last == T:
            unit = adj.unit
        else:
            unit = torch.zeros(T + 1, B, S, dtype=cell.dtype)
            unit[:t_last + 1] = adj.unit
        if share is not None:  # the paths that never take the carry edge
            cut = (_lstm_sweep(cell, tr, direct, t_last, cut=True)[0] if lstm
                   else adjoints(cell, tr, direct[:t_last], t=t_last, vjp=lambda k, g: cell.vjp_cut(
                       tr.inputs[k - 1], tr.states[k - 1], g, tr.preacts[k - 1])))
            share[:, :t_last] = _share(adj.log_scale[1:], adj.unit[1:], cut.log_scale[1:], cut.unit[1:]).T.to(f64)
        fields = _param_fields(cell, run.bias) if gradient_norm else {}
        if need_x or fields:
            ls = adj.log_scale[1:]  # (t_last, B)
            fin = ls[torch.isfinite(ls)]
            m = float(fin.max()) if fin.numel() else 0.0  # one common scale for the batched backward
            scale = torch.exp(ls - m).unsqueeze(-1)  # (t_last, B, 1): unit -> dL/ds_k / exp(m + off)
            if Z is not None and need_x:
                # dL/dx_k = dL/dz_k W_xh: back through z_k = W_xh x_k + ..., all steps in one product (t_last, B, D)
                gx = (Z.mul_(scale).reshape(t_last * B, -1) @ cell.W_xh).reshape(t_last, B, -1)
                sq = _batched_backward(cell, tr, scale * adj.unit[1:], False, fields)[1] if fields else None
            else:
                gx, sq = _batched_backward(cell, tr, scale * adj.unit[1:], need_x, fields)
            if gx is not None:
                full = torch.zeros(T, B, gx.shape[2], dtype=gx.dtype)
                full[:t_last] = gx
                out["gx"] = full.flip(0) if run.direction == "reverse" else full  # back to position order
            out["m"] = m + off
            if sq is not None:
                out["sq"] = (0.5 * math.log(sq) + m + off) if sq > 0 else float("-inf")  # log ||dL/dtheta||
    elif out["sq"] is not None:
        out["sq"] = float("-inf")
    if unit is None:
        unit = torch.zeros(T + 1, B, S, dtype=cell.dtype)
    ah = _polar_norms(log_scale[1:], unit[1:], slice(0, P)).T  # (B, T)
    ac = None
    if S != P:  # LSTM: dL/dc_k of the tensor c_k (through h_k = o_k tanh(c_k) too), as autograd reports it
        lc = torch.full((T, B), float("-inf"), dtype=f64)
        if nc is not None:
            lc[:t_last] = torch.log(nc.to(f64))  # the sweep's ||cell_adjoint(unit_k)||
        ac = ((log_scale[1:] + lc) / LN10).T
    out.update(adjoint_h=ah, adjoint_c=ac, share=share, t_last=t_last)
    return out


def sweep_stack(run: StackRun, up: torch.Tensor, off: float, attribution: bool, gradient_norm: bool,
                 finals: dict | None = None, need_input: bool = False) -> tuple[dict, torch.Tensor | None]:
    """Every (layer, direction)'s adjoint_layer, top to bottom, from the upstream up (T, B, dirs P) = dL/d(output)
    / exp(off) and the direct terms finals[(l, direction)] = dL/ds_T (B, S) (from h_n, c_n). Returns the results
    and, with need_input, dL/dx (T, B, D) of the module's input (unscaled)."""
    T, B = run.output.shape[0], run.output.shape[1]
    res: dict[tuple[int, str], dict] = {}
    for l in range(run.num_layers - 1, -1, -1):
        layer = run.layer(l)
        parts = []
        for r in layer:
            P = r.cell.h_size
            d = 0 if r.direction == "forward" else 1
            fin = None if finals is None else finals.get((l, r.direction))
            o = adjoint_layer(r, up[:, :, d * P:(d + 1) * P], off, l > 0 or need_input, attribution, gradient_norm,
                              final=fin)
            res[(l, r.direction)] = o
            if o["gx"] is not None:
                parts.append((o["gx"], o["m"]))
        if l > 0 or need_input:  # the layer below's upstream: the sum over this layer's directions, on one common scale
            if parts:
                M = max(m for _, m in parts)
                up = sum(gx * math.exp(m - M) for gx, m in parts)
                off = M
            else:
                D = layer[0].trace.inputs.shape[2]
                up, off = torch.zeros(T, B, D, dtype=run.output.dtype), 0.0
    return res, (up * math.exp(off) if need_input else None)
