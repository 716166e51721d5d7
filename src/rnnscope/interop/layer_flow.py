"""The numbers of one (layer, direction) in a diagnosis, from one backward sweep over stacked rows: the adjoints,
the layer below's upstream, the parameter gradients, the carry share, and the rows of other losses (credit).

Rows. The sweep carries R + C rows of adjoints at once, each following one sequence of the batch (seq[r]):

    rows 0..B-1      the batch itself: dL/ds_k of the loss L (diagnose's profiles)
    rows B..R-1      extra losses carried through the stack (credit.py: E_t alone, direct term at its anchor t)
    rows R..R+C-1    the carry cut (attribution): a copy of rows 0..C-1 with the carry term's state argument
                     held constant at every step of this layer (not passed to the layer below)

    direct_k = u_k on the h part of s_k (in the direction's own time order), + dL/ds_T from h_n (c_n) on the
               batch rows and their cut copies; u (T, R, P) comes with a log-offset per step and row:
               u_k exp(off_{k,r}), so that a row whose upstream spans more decades than the dtype holds (a lower
               layer's tail under a last-step loss: hundreds of decades) keeps every step exact
    g_k = dL/ds_k:  g_t = direct_t,  g_{k-1} = g_k ds_k/ds_{k-1} + direct_{k-1}
               (adjoint.sweep in the log domain, block-scaled; each step one Cell.vjp_apply on the step's
               factors, formed for the whole trace at once by Cell.vjp_factors and gathered for the rows)
    dL/du_k    what each product passes through on the way (the drive u_k = W_xh x_k + b: LSTM's dL/dz_k)
    dL/dx_k = dL/du_k W_xh       the layer below's upstream, all steps in one product, each step at the scale
                                 its sweep step had (the log-offsets (T, R) of the next sweep's direct terms)
    dL/dtheta = sum_k g_k d+s_k/dtheta (d+ the immediate partial, s_{k-1} held): one batched backward through
               all the steps at once, on the batch rows, per parameter field of the cell

Cells without a factored VJP (FunctionCell) take Cell.vjp on the gathered rows, and dL/dx_k from the batched
backward. A packed batch (LayerRun.lengths): the steps k > L_b of sequence b are the identity (s_k = s_{k-1}
there), pass nothing to dL/du, and their profile entries are NaN (excluded).

Gate attribution. Every step has a carry term that copies the previous state through a gate: LSTM f_k * c_{k-1}
(the cell path c_{k-1} -> c_k through the forget gate; c_{k-1} enters step k nowhere else), GRU z_k * h_{k-1}
(the update gate's copy). Sum the adjoint over paths: g_k = dL/ds_k = a_k + b_k, where b_k sums the paths that
never go through a carry term (the cut rows: c_t = f c_{t-1}.detach() + i g, h_t = (1-z) n + z h_{t-1}.detach())
and a_k = g_k - b_k the paths that take the cell path / update-gate carry at least once. Then

    carry_share(k) = ||a_k|| / (||a_k|| + ||b_k||)       in [0, 1]; NaN where dL/ds_k = 0

near 1: the gradient from step k reaches the loss through the cell path; near 0: through h (W_hh) only.

Legend: T time, B batch, R carried rows, C cut rows, D input size, H hidden (cell) size, P size of h, S state size,
U size of the drive.

Example (L = the sum of h_T, so dL/dh_T is a vector of ones: log10 ||dL/dh_T|| = log10 sqrt(4)):
    >>> from rnnscope.interop.torch_models import rerun
    >>> run = rerun(torch.nn.GRU(2, 4).double(), torch.randn(10, 3, 2, dtype=torch.float64)).runs[0]
    >>> up = torch.zeros(10, 3, 4, dtype=torch.float64)
    >>> up[-1] = 1.0
    >>> o = adjoint_layer(run, up, need_x=True, cut=3, gradient_norm=True)
    >>> o["adjoint_h"].shape, o["share"].shape, o["gx"].shape, o["t_last"], sorted(o["grads"])
    (torch.Size([3, 10]), torch.Size([3, 10]), torch.Size([10, 3, 2]), 10, ['W_hh', 'W_xh', 'b_hh', 'b_xh'])
    >>> round(float(o["adjoint_h"][0, -1]), 6) == round(math.log10(2.0), 6)
    True
"""

from __future__ import annotations

import dataclasses
import math

import torch

from ..core.cells import Cell, ElmanCell, GRUCell, LSTMCell, PalCell, ProjLSTMCell
from ..core.threads import step_threads
from ..core.unroll import Trace
from ..gradients.adjoint import BLOCK, sweep
from .torch_models import LayerRun, StackRun, own_order, valid_steps

__all__ = ["adjoint_layer", "sweep_stack", "gate_sigmas", "param_fields", "LN10"]

LN10 = math.log(10.0)
_ROWS_PER_PASS = 2**21  # numbers per (rows x pre-activation width) chunk of the batched backward: bounded memory
_CHUNK = 16  # steps whose VJP factors are formed at once inside the sweep (one cache-sized pass, no (T, B, .) copy)
_GATES = {"lstm": "ifgo", "gru": "rzn"}


def param_fields(cell: Cell, bias: bool) -> dict[str, tuple[str, ...]]:
    """The cell's fields that are module parameters, each with the PyTorch names it stands for (without the
    _l{layer}{_reverse} suffix): Elman / Pal b_h = bias_ih + bias_hh, the same gradient for both."""
    if isinstance(cell, (ElmanCell, PalCell)):
        return {"W_hh": ("weight_hh",), "W_xh": ("weight_ih",), **({"b_h": ("bias_ih", "bias_hh")} if bias else {})}
    if isinstance(cell, (LSTMCell, GRUCell)):
        f = {"W_xh": ("weight_ih",), "W_hh": ("weight_hh",), **({"b_xh": ("bias_ih",), "b_hh": ("bias_hh",)} if bias else {})}
        if isinstance(cell, ProjLSTMCell):
            f["W_hr"] = ("weight_hr",)
        return f
    return {}


def _batched_backward(cell: Cell, trace: Trace, g: torch.Tensor, need_x: bool,
                      fields: dict) -> tuple[torch.Tensor | None, dict[str, torch.Tensor]]:
    """One backward through all steps at once: dL/dx_k = g_k ds_k/dx_k (t, B, D) and dL/dfield for each field.

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
    return gx, acc


def _buffer(workspace: dict | None, name: str, shape: tuple, dtype: torch.dtype) -> torch.Tensor:
    """An uninitialised tensor of that shape: a view of workspace[name] when it is large enough (else a new one,
    kept there for the next call); a new tensor without a workspace."""
    n = math.prod(shape)
    if workspace is None:
        return torch.empty(shape, dtype=dtype)
    flat = workspace.get(name)
    if flat is None or flat.dtype != dtype or flat.numel() < n:
        flat = workspace[name] = torch.empty(n, dtype=dtype)
    return flat[:n].view(shape)


def _rows_trace(trace: Trace, seq: torch.Tensor | None) -> Trace:
    """The trace with its batch columns gathered by seq (rows follow sequences); the trace itself for None."""
    if seq is None:
        return trace
    return Trace(trace.states[:, seq], trace.preacts[:, seq], trace.inputs[:, seq])


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


def _log10_norms(scale: torch.Tensor, scaled: torch.Tensor) -> torch.Tensor:
    """log10 ||v|| for v = exp(scale) scaled (..., S) -> (...), float64."""
    return (scale.to(torch.float64) + torch.log(torch.linalg.vector_norm(scaled, dim=-1).to(torch.float64))) / LN10


def gate_sigmas(cell: Cell) -> dict | None:
    """sigma_max of each gate's block of W_hh (LSTM i f g o, GRU r z n; rows of H each); None for other cells."""
    names = _GATES.get(cell.kind)
    if names is None:
        return None
    W = cell.W_hh.detach().to(torch.float64)
    H = W.shape[0] // len(names)
    return {n: float(torch.linalg.svdvals(W[i * H:(i + 1) * H])[0]) for i, n in enumerate(names)}


def _start(up_T: torch.Tensor, off: torch.Tensor, final: torch.Tensor | None, S: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The direct term at s_T as (d, o) with d exp(o) = u_T exp(off) on h + final (unscaled, all of s), per row."""
    R, P = up_T.shape
    if final is None or not bool((final != 0).any()):
        return (up_T if P == S else torch.cat([up_T, up_T.new_zeros(R, S - P)], -1)), off  # the sweep's start: all of s
    big = final.abs().amax(-1)  # (R,)
    o = torch.where(big > 0, torch.maximum(off, torch.log(torch.where(big > 0, big, torch.ones_like(big)))), off)
    d = final * torch.exp(-o).unsqueeze(-1)
    d[:, :P] += up_T * torch.exp(off - o).unsqueeze(-1)
    return d, o


def adjoint_layer(run: LayerRun, up: torch.Tensor, off: torch.Tensor | float = 0.0, seq: torch.Tensor | None = None, *,
                  cut: int = 0, need_x: bool = False, gradient_norm: bool = False, final: torch.Tensor | None = None,
                  x_rows: int | None = None, workspace: dict | None = None) -> dict:
    """One (layer, direction)'s sweep over stacked rows (module docstring), the upstream up (T, R, P) in position
    order times exp(off) (off: a float, per row (R,), or per step and row (T, R) in position order); seq (R,) the
    sequence of each row (None: rows = the batch, R = B; rows 0..B-1 are always the batch); cut: C carry-cut
    copies of rows 0..C-1 (has_carry cells).
    final (B, S): dL/ds_T of the batch rows in the direction's own order (from h_n, c_n), unscaled. x_rows: the
    first rows whose dL/dx is wanted (None: all R; the bottom layer of a whole model needs the batch's only).
    workspace: a dict whose flat buffers the sweep's two large arrays (the scaled adjoints, the kept dL/du_k) are
    taken from and left in, for the next layer's sweep (sweep_stack): nothing of them is returned.

    Returns a dict: adjoint_h (B, T) and adjoint_c (B, T, LSTM) log10 norms and rows_h (R - B, T) of the extra
    rows, in the direction's own time order; share (C, T) or None; gx (T, R, D) dL/dx in position order times
    exp(m), m (T, R) the log-offset of each step and row; grads {field: dL/dfield exp(-gm)} with gm (float) of
    the batch rows (gradient_norm); g0 (B, S) = dL/ds_0 unscaled; t_last, the last step with a direct term.
    """
    cell, tr = run.cell, run.trace
    T, B = tr.T, tr.B
    P, S = cell.h_size, cell.state_size
    f64 = torch.float64
    R = up.shape[1]
    seq = torch.arange(B) if seq is None else seq.to(torch.int64)
    off = torch.as_tensor(off, dtype=f64).expand(T, R)  # (T, R): a float or a row's offset holds at every step
    C = cut if cell.has_carry else 0
    rows = torch.cat([seq, torch.arange(C)])  # (R + C,): every row's sequence
    lengths = None if run.lengths is None else run.lengths[rows]
    up = own_order(up, run.direction, None if lengths is None else lengths[:R])  # the direction's own time order
    off = own_order(off.unsqueeze(-1), run.direction, None if lengths is None else lengths[:R])[..., 0]  # likewise
    U = torch.cat([up, up[:, :C]], 1) if C else up  # (T, R + C, P): the cut rows take their batch row's upstream
    off_all = torch.cat([off, off[:, :C]], 1) if C else off  # (T, R + C)
    fin = None
    if final is not None:
        fin = torch.zeros(R + C, S, dtype=cell.dtype)
        fin[:B] = final
        fin[R:] = final[:C]
    nz = torch.nonzero((U.reshape(T, -1) != 0).any(1))
    t = T if fin is not None and bool((fin != 0).any()) else (int(nz[-1]) + 1 if nz.numel() else 0)
    out = {"gx": None, "m": torch.zeros(T, R, dtype=f64), "grads": {}, "gm": 0.0,
           "g0": torch.zeros(B, S, dtype=cell.dtype), "t_last": t, "share": None}
    fields = param_fields(cell, run.bias) if gradient_norm else {}
    scale = torch.full((T + 1, R + C), float("-inf"), dtype=f64)
    scaled = None
    if t:
        identity_rows = R + C == B and bool((rows == torch.arange(B)).all())
        sel = None if identity_rows else rows
        factored = cell.vjp_factors(tr.inputs[:1], tr.states[:1], tr.preacts[:1], tr.states[1:2]) is not None
        rt = _rows_trace(tr, sel) if not factored else None  # the generic path reads the trace's rows
        carry = None
        if C:
            carry = torch.ones(R + C, 1, dtype=cell.dtype)
            carry[R:] = 0.0
        valid = None if lengths is None else valid_steps(T, lengths)[:, :, None]  # (T, R + C, 1)
        Wd = None  # dL/du_k of every row, at the sweep's scale of step k: (R + C, t, U), each row's steps contiguous
        if factored and (need_x or fields):  # (so that the batch rows' block is one (B t, U) matrix, no copy)
            Wd = _buffer(workspace, "du", (R + C, t, cell.drive(tr.inputs[:1, :1]).shape[-1]), cell.dtype)
        du_k = None if Wd is None else torch.empty(R + C, Wd.shape[2], dtype=cell.dtype)
        chunk: dict = {}

        def factors(k: int) -> list:
            """Step k's factors for the rows, formed for a chunk of _CHUNK steps at once (k and the steps below it:
            the sweep runs downwards), so that one pass over a chunk stays in the cache."""
            if not chunk or not chunk["lo"] < k <= chunk["hi"]:
                lo = max(0, k - _CHUNK)
                F = cell.vjp_factors(tr.inputs[lo:k], tr.states[lo:k], tr.preacts[lo:k], tr.states[lo + 1:k + 1])
                chunk.update(lo=lo, hi=k, F=F if sel is None else [f.index_select(1, sel) for f in F])  # (n, R + C, .)
            return [f[k - 1 - chunk["lo"]] for f in chunk["F"]]

        def vjp(k: int, v: torch.Tensor) -> torch.Tensor:
            if not factored:
                w, du = cell.vjp(rt.inputs[k - 1], rt.states[k - 1], v, rt.preacts[k - 1]), None
            else:
                w, du = cell.vjp_apply(factors(k), v, True if carry is None else carry,  # back through step k
                                       out=du_k)  # dL/du_k into one contiguous buffer (the product reads it)
                if Wd is not None:
                    Wd[:, k - 1] = du  # kept
            if valid is not None:
                w = torch.where(valid[k - 1], w, v)  # a padded step: s_k = s_{k-1}
                if Wd is not None:
                    Wd[:, k - 1].mul_(valid[k - 1])  # nothing passes through a padded step's input
            return w

        carries = (U.reshape(T, -1) != 0).any(1).tolist()
        first = _start(U[t - 1], off_all[t - 1], None if t != T else fin, S)

        def direct(k: int):
            if k == t:
                return first
            return (U[k - 1], off_all[k - 1]) if carries[k - 1] else None  # u_k exp(off_k) of every row

        with step_threads(S):  # small per-step products: one thread (core/threads.py)
            adj = sweep(t, vjp, direct, log_domain=True, block=BLOCK.get(cell.dtype, 1),
                        buffer=_buffer(workspace, "adjoints", ((t + 1) * (R + C) * S,), cell.dtype))
        # the scaled form dL/ds_k = exp(scale_k) scaled_k throughout: norms of parts and linear maps need no scaled
        scale[:t + 1] = adj.scale.to(f64)
        scaled = adj.scaled if t == T else torch.cat([adj.scaled, adj.scaled.new_zeros(T - t, R + C, S)])
        u0 = adj.scaled[0, :B]  # dL/ds_0 = exp(scale[0]) scaled[0] (zero where that is)
        out["g0"] = torch.where(u0 == 0, torch.zeros_like(u0), torch.exp(adj.scale[0, :B]).to(u0.dtype).unsqueeze(-1) * u0)
        if C:
            out["share"] = torch.full((C, T), float("nan"), dtype=f64)
            out["share"][:, :t] = _share(adj.scale[1:, :C], adj.scaled[1:, :C], adj.scale[1:, R:],
                                         adj.scaled[1:, R:]).T.to(f64)
        live = None if valid is None else valid[:t]  # (t, R + C, 1): the real steps (packed batches)
        vs = _step_scale(adj)
        if need_x:
            out["gx"], out["m"] = _upstream_below(cell, tr, adj, Wd, vs, sel, t,
                                                  R if x_rows is None else min(R, x_rows), run.direction, lengths, live)
        if fields:  # (after the upstream: it brings the kept dL/du_k of the batch rows to one scale in place)
            out["grads"], out["gm"] = _param_grads(cell, tr, adj, t, B, fields, None if live is None else live[:, :B],
                                                   Wd, vs)
    if scaled is None:
        scaled = torch.zeros(T + 1, R + C, S, dtype=cell.dtype)
    ah = _log10_norms(scale[1:], scaled[1:, :, :P]).T  # (R + C, T)
    if S != P:  # LSTM: dL/dc_k of the tensor c_k (through h_k = o_k tanh(c_k) too), as autograd reports it
        uc = cell.cell_adjoint(tr.states[1:], tr.preacts, scaled[1:, :B])  # (T, B, H)
        out["adjoint_c"] = _log10_norms(scale[1:, :B], uc).T
    else:
        out["adjoint_c"] = None
    if lengths is not None:  # padded steps excluded
        pad = ~valid_steps(T, lengths).T  # (R + C, T)
        ah = ah.masked_fill(pad, float("nan"))
        if out["adjoint_c"] is not None:
            out["adjoint_c"] = out["adjoint_c"].masked_fill(pad[:B], float("nan"))
        if out["share"] is not None:
            out["share"] = out["share"].masked_fill(pad[R:], float("nan"))
    out["adjoint_h"], out["rows_h"] = ah[:B], ah[B:R]
    return out


def _step_scale(adj) -> torch.Tensor:
    """vs (t, R + C): the log-scale of each step's vjp call (finite; 0 where the sweep had none), the scale at which
    the sweep kept dL/du_k: Wd[r, k - 1] = dL/du_k exp(-vs[k - 1, r])."""
    vs = adj.vjp_log_scale[1:].to(torch.float64)
    return torch.where(torch.isfinite(vs), vs, torch.zeros_like(vs))


def _upstream_below(cell: Cell, tr: Trace, adj, Wd, vs, sel, t: int, R: int, direction: str, lengths, live):
    """dL/dx_k (T, R, D) in position order times exp(-m) and m (T, R), each step and row at its own scale: the
    carried rows' upstream of the layer below, whose values may span more decades than the dtype holds."""
    T = tr.T
    if Wd is not None:  # dL/dx_k = dL/du_k W_xh: back through u_k = W_xh x_k + b, all steps in one product
        gx = (Wd[:R].reshape(R * t, -1) @ cell.W_xh).reshape(R, t, -1).transpose(0, 1)  # (t, R, D) at vs[k, r]
        m = vs[:, :R]
    else:  # the generic path: one batched backward through the gathered rows' steps (linear in each step's g_k)
        m = adj.scale[1:, :R].to(torch.float64)  # (t, R): the sweep's own scale of g_k, finite
        g = adj.scaled[1:, :R] if live is None else adj.scaled[1:, :R] * live[:, :R]
        gx, _ = _batched_backward(cell, _rows_trace(tr, None if sel is None else sel[:R]).truncated(t), g, True, {})
    full = torch.zeros(T, R, gx.shape[2], dtype=gx.dtype)
    full[:t] = gx
    offs = torch.zeros(T, R, 1, dtype=torch.float64)
    offs[:t, :, 0] = m
    lr = None if lengths is None else lengths[:R]
    return own_order(full, direction, lr), own_order(offs, direction, lr)[..., 0]


def _scaled(adj, rows: slice, m: torch.Tensor | float, live) -> torch.Tensor:
    """dL/ds_k exp(-m) (t, rows, S) for k = 1..t from the sweep's scaled adjoints; zero on padded steps."""
    ls = adj.scale[1:, rows].to(torch.float64)
    g = adj.scaled[1:, rows] * torch.exp(ls - m).to(adj.scaled.dtype).unsqueeze(-1)
    g = torch.where(adj.scaled[1:, rows] == 0, torch.zeros_like(g), g)
    return g if live is None else g * live


def _param_grads(cell: Cell, tr: Trace, adj, t: int, B: int, fields: dict, live, Wd, vs) -> tuple[dict, float]:
    """{field: dL/dfield exp(-gm)} of the batch rows and gm (one common scale: a sum over the steps, whose terms
    below the dtype's range next to the largest cannot change it): Cell.param_grads from the kept dL/du_k (a few
    products over all the steps, the batch rows brought to gm in place), else one batched backward (autograd)."""
    if Wd is not None:
        gm = float(vs[:, :B].max())
        Wd[:B].mul_(torch.exp(vs[:, :B] - gm).T.to(Wd.dtype).unsqueeze(-1))  # (B, t, U) dL/du_k exp(-gm), in place
        tm = lambda v: v.transpose(0, 1)  # noqa: E731  (t, B, .) -> (B, t, .): the rows' order of Wd
        grads = cell.param_grads(tm(tr.inputs[:t]), tm(tr.states[:t]), tm(tr.preacts[:t]), Wd[:B])
        if grads is not None:
            return {f: grads[f] for f in fields}, gm
    gm = float(adj.scale[1:, :B].max())  # one common scale (finite by construction)
    _, grads = _batched_backward(cell, tr.truncated(t), _scaled(adj, slice(0, B), gm, live), False, fields)
    return grads, gm


def sweep_stack(run: StackRun, up: torch.Tensor, off: torch.Tensor | float = 0.0, *, seq: torch.Tensor | None = None,
                cut: int = 0, gradient_norm: bool = False, finals: dict | None = None,
                need_input: bool = False) -> tuple[dict, torch.Tensor | None, torch.Tensor | None]:
    """Every (layer, direction)'s adjoint_layer, top to bottom, from the upstream up (T, R, dirs P) = dL/d(output)
    exp(-off) of R rows (seq: their sequences, None: the batch) and the direct terms finals[(l, direction)] =
    dL/ds_T (B, S) of the batch rows (from h_n, c_n). Each layer below reads the sum over the directions' dL/dx
    of the carried rows, on a common log-offset per step and row. Returns (results by (layer, direction), dL/dx
    (T, B, D) of the module's input for the batch rows times exp(-m), m (T, B)) (the last two None without
    need_input)."""
    T, R = up.shape[0], up.shape[1]
    B = run.output.shape[1]
    off = torch.full((R,), float(off), dtype=torch.float64) if not isinstance(off, torch.Tensor) else off
    res: dict[tuple[int, str], dict] = {}
    workspace: dict = {}  # the sweeps' large arrays, reused layer after layer (adjoint_layer)
    for l in range(run.num_layers - 1, -1, -1):
        layer = run.layer(l)
        parts = []
        below = l > 0 or need_input
        for r in layer:
            P = r.cell.h_size
            d = 0 if r.direction == "forward" else 1
            fin = None if finals is None else finals.get((l, r.direction))
            o = adjoint_layer(r, up[:, :, d * P:(d + 1) * P], off, seq, cut=cut, need_x=below,
                              gradient_norm=gradient_norm, final=fin, x_rows=None if l > 0 else B,
                              workspace=workspace)
            res[(l, r.direction)] = o
            if o["gx"] is not None:
                parts.append((o["gx"], o["m"]))
        if below:  # the layer below's upstream: the sum over this layer's directions, one common scale per step, row
            D = layer[0].trace.inputs.shape[2]
            n = R if l > 0 else B
            if parts:
                M = torch.stack([m for _, m in parts]).amax(0)  # (T, n)
                up = sum(gx * torch.exp(m - M).to(gx.dtype).unsqueeze(-1) for gx, m in parts) if len(parts) > 1 \
                    else parts[0][0]
                off = M
            else:
                up, off = torch.zeros(T, n, D, dtype=run.output.dtype), torch.zeros(T, n, dtype=torch.float64)
    return res, (up if need_input else None), (off if need_input else None)
