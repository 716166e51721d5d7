"""Diagnose a PyTorch recurrent model: exact per-step gradient flow of every layer and direction, a verdict, advice.

    d = diagnose(model, inputs, loss_fn=None, *, targets=None)

model: nn.RNN (tanh, relu), nn.LSTM (proj_size too), nn.GRU, any num_layers, bidirectional, batch_first,
with or without biases; nn.RNNCell / LSTMCell / GRUCell (a loop over the cell); an rnnscope Cell
(FunctionCell: any user step function); or a whole model: any nn.Module whose forward uses nn.RNN / nn.LSTM /
nn.GRU submodules (nested at any depth, several of them; capture.py), with the user's own embedding, head and
loss. The sequence is re-run step by step from the module's own weights (torch_models.rerun: torch's fused
kernel for h, outputs equal the module's to rounding; a given h0 / (h0, c0) used), then for every
(module,) layer l and direction:

    adjoint profile        log10 ||dL/dh_k||, log10 ||dL/dc_k|| (LSTM), k = 1..T: the total derivative of
                           the loss with respect to the state at step k, through every later step and, for a
                           stack, through every upper layer that reads h_k (exact; = autograd's h_k.grad and
                           c_k.grad: dL/dc_k includes the path c_k -> h_k = o_k tanh(c_k) of the same step)
    Jacobian products      log10 ||ds_T/ds_k||_2 on the full state ((h, c) for LSTM) and, for LSTM, its
                           h -> h and c -> c blocks ||dh_T/dh_k||_2, ||dc_T/dc_k||_2 and its h rows
                           ||dh_T/ds_k||_2 (what a loss on h_T can see) (flow.jacobian_profile)
    credit profile         G(d) = log10 ||dE_t/dh_{t-d}||, d = 0..D, for per-step losses L = sum_t E_t, by
                           anchored sweeps (credit.py); for a last-step loss log10 ||dL/dh_{t-d}||
    gate attribution       carry_share(k) (LSTM and GRU): the share of dL/ds_k that takes the carry term
                           (LSTM's cell path f_k * c_{k-1}, GRU's z_k * h_{k-1}) at least once (layer_flow.py)
    the weights' promise   sigma_max(W_hh) against 1/gamma, rho (bounds.weight_facts); gate blocks' sigma_max
    measured               the fitted rate (log10 per step), the memory horizon (10^3), a plain verdict
    gradient norm          ||dL/dtheta|| of the module's parameters, exactly (the norm clip_grad_norm_ sees)

The loss: L = loss_fn(output) or loss_fn(output, targets), output being the module's first return value in
its own layout ((B, T, dirs P) with batch_first, (T, P) for unbatched input); without loss_fn, L = the sum of
the entries of the last top-layer output (output[T] time-major: for a bidirectional top layer that is the
forward h_T and the reverse direction's first step). For a whole model, output is whatever model(*inputs)
returns (logits, a tuple with h_n, ...) and loss_fn is required (an InputError without it).

How it is computed (reusing the engine, no second copy of its math):
    upstream u = dL/d(output) by autograd on the re-run output (T, B, dirs P)
    for l = top .. 0, for each direction (layer_flow.adjoint_layer):
        direct_k = u_k on the h part of s_k (in the direction's own time order)
        g_k = dL/ds_k = adjoint.adjoints(cell, trace, direct)        the vector-Jacobian sweep, log domain
                  (LSTM: through LSTMCell.vjp_gates, keeping dL/dz_k and ||dL/dc_k|| of every step)
        dL/dx_k = g_k ds_k/dx_k (the layer below's upstream): LSTM dL/dz_k W_xh, one product over all k;
        other cells and dL/dtheta = sum_k g_k d+s_k/dtheta (the immediate partials): one batched backward
        through the layer's steps (all k at once)
    Jacobian products: flow.jacobian_profile on the first `jacobian_sequences` sequences (O(T S^3) each).
    rate, horizon, verdict and advice from the primary profile, what the loss can see: the credit profile G(d)
    (per-step losses), else ||dL/dh_k|| (a last-step loss); ||ds_T/ds_k||_2 only with credit_anchors=0 and
    the Jacobian products (verdicts.profile_verdict, the one verdict of diagnose, the monitor and the CLI)

Legend: T time, B batch, D input size, H hidden (cell) size, P size of h (H, or proj_size), S state size.

Example:
    >>> lstm = torch.nn.LSTM(4, 16, num_layers=2)
    >>> d = diagnose(lstm, torch.randn(50, 8, 4))
    >>> [(l.layer, l.direction) for l in d.layers], len(d.layers[0].log10_adjoint_h)
    ([(0, 'forward'), (1, 'forward')], 50)
    >>> print(d.summary().splitlines()[0])                                       # doctest: +ELLIPSIS
    rnnscope diagnose: lstm, 2 layer(s) x 1 direction(s), T = 50, B = 8, float32; loss = ... (sum of the last output)
"""

from __future__ import annotations

import math
import time
from typing import Callable

import torch

from ..core.errors import InputError
from ..core.unroll import Trace
from ..core.vocab import LOSSES, check
from ..gradients.bounds import fitted_rate, horizon, weight_facts
from ..gradients.flow import jacobian_profile
from .layer_flow import LN10, gate_sigmas, sweep_stack
from .capture import accumulate, capture_forward, push_back
from .credit import credit_of
from .torch_models import StackRun, module_kind, rerun
from .advice import advice, clip_threshold, gate_facts
from .verdicts import FAR_DECADES, Diagnosis, LayerDiagnosis, first_far, profile_verdict

__all__ = ["Diagnosis", "LayerDiagnosis", "diagnose", "target_loss", "FAR_DECADES"]


# ------------------------------------------------------------------------------------------------- loss

def _loss_direct(run: StackRun, loss_fn: Callable | None, targets) -> tuple[float, torch.Tensor, str]:
    """(L, dL/d(output) (T, B, O) time-major, how L was made)."""
    y = run.output.detach().requires_grad_(True)
    with torch.enable_grad():
        out = run.to_module_layout(y)
        if loss_fn is None:
            if targets is not None:
                raise InputError("targets: expected a loss_fn to compare them with, got targets without a loss_fn")
            L, kind = y[-1].sum(), "sum of the last output"
        else:
            if not callable(loss_fn):
                raise InputError(f"loss_fn: expected a function of the output (and targets), got {type(loss_fn).__name__}")
            try:
                L = loss_fn(out) if targets is None else loss_fn(out, _as_targets(targets, y.dtype))
            except InputError:
                raise
            except (RuntimeError, ValueError, IndexError, TypeError) as e:
                tshape = "" if targets is None else f" and targets of shape {tuple(torch.as_tensor(targets).shape)}"
                raise InputError(f"loss_fn: expected it to accept the output of shape {tuple(out.shape)}{tshape}, "
                                 f"got {type(e).__name__}: {e}") from None
            kind = "loss_fn"
        if not isinstance(L, torch.Tensor) or L.numel() != 1:
            got = tuple(L.shape) if isinstance(L, torch.Tensor) else type(L).__name__
            raise InputError(f"loss_fn: expected a scalar tensor, got {got}")
        if not torch.isfinite(L.detach()).all():
            raise InputError(f"loss: expected a finite loss, got {float(L.detach())}")
        if not L.requires_grad:
            return float(L), torch.zeros_like(y), kind
        (dy,) = torch.autograd.grad(L.reshape(()), y, allow_unused=True)
    return float(L.detach()), (torch.zeros_like(y) if dy is None else dy), kind


def _as_targets(targets, dtype: torch.dtype) -> torch.Tensor:
    t = torch.as_tensor(targets)
    return t.to(dtype) if t.is_floating_point() else t


def target_loss(kind: str, targets, *, batch_first: bool = False) -> Callable:
    """A loss_fn(output) against targets, on every step or on the last step only (told apart by the shape):

        mse  targets float, shape of the output (every step) or of its last step: mean squared error
        ce   targets class indices, the output's shape without its last axis (every step; the output's last
             axis holds the C class scores) or that of its last step: mean cross-entropy

    output is the module's in its own layout: (T, B, O), (B, T, O) when batch_first, (T, O) unbatched.
    The shapes are checked when the loss is called, with "expected X, got Y" errors (a mismatched batch too).

    Example:
        >>> loss = target_loss("ce", torch.tensor([0, 2]))          # classes at the last step of 2 sequences
        >>> float(loss(torch.zeros(5, 2, 3, dtype=torch.float64))) == math.log(3)     # equal scores: ln C
        True
    """
    import torch.nn.functional as F

    check("loss", kind, LOSSES)
    y = torch.as_tensor(targets)
    if kind == "ce" and (y.is_floating_point() or y.dtype == torch.bool):
        raise InputError(f"targets: expected integer class indices for ce, got dtype {y.dtype}")
    if kind == "mse" and y.dtype == torch.bool:
        raise InputError("targets: expected numbers for mse, got dtype torch.bool")

    def loss(out: torch.Tensor) -> torch.Tensor:
        last = out[:, -1] if (out.dim() == 3 and batch_first) else out[-1]
        if kind == "mse":
            yy = y.to(out.dtype)
            if tuple(yy.shape) == tuple(out.shape):
                return F.mse_loss(out, yy)
            if tuple(yy.shape) == tuple(last.shape):
                return F.mse_loss(last, yy)
            raise InputError(f"targets: expected shape {tuple(out.shape)} (every step) or {tuple(last.shape)} (the last "
                             f"step) for mse on the output, got {tuple(yy.shape)}")
        C = out.shape[-1]
        if tuple(y.shape) == tuple(out.shape[:-1]):
            scores, cls = out.reshape(-1, C), y.reshape(-1)
        elif tuple(y.shape) == tuple(last.shape[:-1]):
            scores, cls = last.reshape(-1, C), y.reshape(-1)
        else:
            raise InputError(f"targets: expected class indices of shape {tuple(out.shape[:-1])} (every step) or "
                             f"{tuple(last.shape[:-1])} (the last step) for ce on the output, got {tuple(y.shape)}")
        if cls.numel() and (int(cls.min()) < 0 or int(cls.max()) >= C):
            raise InputError(f"targets: expected class indices in [0, {C}) (the output's last axis), got "
                             f"{int(cls.min())}..{int(cls.max())}")
        return F.cross_entropy(scores, cls.long())

    return loss


# ---------------------------------------------------------------------------------------------- diagnose

def diagnose(model, inputs, loss_fn: Callable | None = None, *, targets=None, jacobian: bool = True,
             jacobian_sequences: int | None = 4, attribution: bool = True, gradient_norm: bool = True,
             dtype: torch.dtype | None = None, credit_anchors: int = 4, gradient_history=None) -> Diagnosis:
    """Exact per-step gradient flow of every layer and direction of a recurrent model (see the module docstring).

    inputs      (T, D) unbatched, (T, B, D), or (B, T, D) when the module is batch_first; tensor or numpy
    loss_fn     L = loss_fn(output[, targets]) on the module's output in its own layout; None: sum of output[T]
    jacobian    compute log10 ||ds_T/ds_k||_2 (and LSTM blocks) on the first `jacobian_sequences` sequences
                (None: all); O(T S^3) per sequence, the costly part at large S. False: adjoints only, O(T B S^2)
    attribution carry_share(k) for LSTM / GRU (one more adjoint sweep)
    gradient_norm  ||dL/dtheta|| (one batched backward through each layer's steps)
    dtype       of the analysis; default the module's own (the gradient its training sees)
    credit_anchors  anchor steps of the credit-assignment profile G(d) (credit.py: per-step losses, one tiled
                sweep of R anchors x B sequences; sampled when more steps carry a loss term); 0: not computed

    For a whole model (inputs: a tensor or a tuple of positional arguments for model(*inputs), token ids
included): one forward with each recurrent submodule's return value replaced by leaves holding its re-run's
output and h_n (c_n) (capture.py); autograd of L gives each call's direct terms dL/d(output), dL/dh_n,
dL/dc_n (dL/ds_T of each layer and direction, in its own time order); the calls are swept in reverse order,
and each sweep's dL/dx of layer 0 and dL/ds_0 (when the forward gave an h0) go back into the user's graph,
onto the leaves of earlier calls (an encoder feeding a decoder's h0). Each LayerDiagnosis names its
`module` (the submodule's path, e.g. "encoder.rnn"); num_layers is the sum over the calls, T the longest,
||dL/dtheta|| that of the recurrent submodules' parameters. A submodule with dropout between layers in train
mode is diagnosed in eval mode (Diagnosis.notes says so); the model's mode is restored. Refused: a
PackedSequence input, a submodule called more than once per forward, a dtype other than the model's.

Cost without the Jacobian products: about one forward and two backward passes of the module, plus the
credit profile's tiled sweep (credit.py: about 0.8 forward+backward of a char-LM per anchor; credit_anchors=0
skips it, and the verdict then reads ||ds_T/ds_k||_2 when computed, else ||dL/dh_k||).

    Example:
        >>> _ = torch.manual_seed(0)
        >>> gru = torch.nn.GRU(2, 8, batch_first=True)
        >>> d = diagnose(gru, torch.randn(4, 30, 2), lambda out: out[:, -1].pow(2).sum())
        >>> d.layers[0].verdict                  # a last-step loss: the verdict reads ||dL/dh_k||  # doctest: +ELLIPSIS
        'vanishing: credit from d steps ahead falls below 10^-3 of the immediate one at d = ... (||dL/dh_k|| at k = t - d, ...)'

    A whole model (token ids -> embedding -> LSTM -> head), with its own loss:
        >>> lm = torch.nn.Sequential(torch.nn.Embedding(10, 4), torch.nn.LSTM(4, 8, batch_first=True))
        >>> ids = torch.randint(0, 10, (3, 12))
        >>> d = diagnose(lm, ids, lambda out: out[0].pow(2).mean(), jacobian=False)
        >>> [(l.module, l.layer, l.direction) for l in d.layers], d.layers[0].per_sequence_adjoint_h.shape
        ([('1', 0, 'forward')], torch.Size([3, 12]))
    """
    start = time.perf_counter()
    if jacobian_sequences is not None and (not isinstance(jacobian_sequences, int) or isinstance(jacobian_sequences, bool)
                                           or jacobian_sequences < 1):
        raise InputError(f"jacobian_sequences: expected a positive integer or None, got {jacobian_sequences!r}")
    if not isinstance(credit_anchors, int) or isinstance(credit_anchors, bool) or credit_anchors < 0:
        raise InputError(f"credit_anchors: expected a non-negative integer, got {credit_anchors!r}")
    if isinstance(model, torch.nn.Module) and not isinstance(model, torch.nn.RNNBase) and not _is_bare(model):
        return _diagnose_model(model, inputs, loss_fn, targets, jacobian, jacobian_sequences, attribution,
                               gradient_norm, dtype, start, credit_anchors, gradient_history)
    kind = module_kind(model)
    run = rerun(model, inputs, dtype=dtype)
    _check_finite(run)
    loss, up, loss_kind = _loss_direct(run, loss_fn, targets)
    res, _ = sweep_stack(run, up, 0.0, attribution, gradient_norm)
    cr = credit_of(run, up, res, credit_anchors) if credit_anchors else {}
    layers, nj = _layer_results(run, res, "", jacobian, jacobian_sequences, cr)
    return _result(kind, layers, run.output.shape[0], run.output.shape[1], run.num_layers, run.num_directions, loss,
                   loss_kind, nj, run.output.dtype, (), start, gradient_history)


def _is_bare(model) -> bool:
    try:
        module_kind(model)
    except InputError:
        return False
    return True


def _check_finite(run: StackRun, name: str = "model/inputs") -> None:
    bad = ~torch.isfinite(run.output.reshape(run.output.shape[0], -1)).all(1)
    if bool(bad.any()):
        raise InputError(f"{name}: expected a forward pass with finite states, got inf or NaN at step "
                         f"{int(torch.nonzero(bad)[0]) + 1} (the model overflows {run.output.dtype})")


def _layer_results(run: StackRun, res: dict, module: str, jacobian: bool, jacobian_sequences: int | None,
                   credit: dict) -> tuple[list[LayerDiagnosis], int]:
    """The LayerDiagnosis of every (layer, direction) of one re-run, and the sequences of the Jacobian products."""
    B = run.output.shape[1]
    layers = []
    nj = 0
    for r in run.runs:
        o = res[(r.layer, r.direction)]
        cell, tr = r.cell, r.trace
        P, S = cell.h_size, cell.state_size
        spec = hh = cc = sh = None
        if jacobian:
            nj = B if jacobian_sequences is None else min(B, jacobian_sequences)
            sub = Trace(tr.states[:, :nj], tr.preacts[:, :nj], tr.inputs[:, :nj])
            blocks = ([(slice(0, P), slice(0, P)), (slice(P, S), slice(P, S)), (slice(0, P), slice(0, S))]
                      if S != P else None)  # h -> h, c -> c, and the h rows dh_T/ds_k
            jp = jacobian_profile(cell, sub, blocks=blocks)
            spec = jp.log10_spectral
            if blocks:
                hh, cc, sh = jp.log10_blocks[:, 0], jp.log10_blocks[:, 1], jp.log10_blocks[:, 2]
        facts = weight_facts(cell)
        gf = gate_facts(cell, tr)
        cp = credit.get((r.layer, r.direction))
        # the verdict reads what the loss can see: the credit profile G(d) (per-step losses), else ||dL/dh_k||
        # (a last-step loss: G(d) is that profile reversed; also where no E_t reads this direction, G(0) = 0);
        # ||ds_T/ds_k||_2 only without a credit profile
        if cp is not None and cp.case == "per-step" and math.isfinite(float(cp.log10_credit[0])):
            primary, src = cp.log10_credit.flip(0), "credit"  # element k-1 <-> d = D + 1 - k, d = 0 last
        elif spec is not None and cp is None:
            primary, src = spec.mean(0), "spectral"
        else:
            primary, src = o["adjoint_h"].mean(0)[:max(o["t_last"], 1)], "adjoint"
        rate = fitted_rate(primary)
        hz, hk = horizon(primary)
        far = first_far(primary)
        layers.append(LayerDiagnosis(
            layer=r.layer, direction=r.direction, cell=cell.kind, state=cell.state_label, h_size=P, state_size=S,
            per_sequence_adjoint_h=o["adjoint_h"], per_sequence_adjoint_c=o["adjoint_c"],
            per_sequence_spectral=spec, per_sequence_spectral_hh=hh, per_sequence_spectral_cc=cc,
            per_sequence_carry_share=o["share"], per_sequence_spectral_h=sh,
            log10_gradient_norm=None if o["sq"] is None else o["sq"] / LN10,
            sigma_max=facts.sigma_max, sigma_max_gates=gate_sigmas(cell), gamma=facts.gamma,
            spectral_radius=facts.spectral_radius, theory_verdict=facts.verdict, note=facts.note,
            rate_per_step=rate, horizon=hz, horizon_kind=hk, far_distance=far, last_loss_step=o["t_last"], rate_source=src,
            verdict=profile_verdict(src, rate, hz, hk, primary.shape[0]), module=module,
            log10_credit=None if cp is None else cp.log10_credit, credit_case=None if cp is None else cp.case,
            credit_anchors=() if cp is None else cp.anchors, forget_gate=gf.get("forget_gate"),
            forget_bias=gf.get("forget_bias"), forget_rest=gf.get("forget_rest"), update_gate=gf.get("update_gate"),
            attribution_sequences=B if o["share"] is not None else 0))
    return layers, nj


def _result(kind: str, layers: list, T: int, B: int, num_layers: int, num_directions: int, loss: float,
            loss_kind: str, nj: int, dtype: torch.dtype, notes: tuple, start: float, history=None) -> Diagnosis:
    lg = [d.log10_gradient_norm for d in layers if d.log10_gradient_norm is not None]
    total = None
    if lg and len(lg) == len(layers):
        ln = torch.tensor([v * LN10 for v in lg], dtype=torch.float64)
        total = float(0.5 * torch.logsumexp(2 * ln, 0)) / LN10  # log10 sqrt(sum of squares)
    layers = tuple(layers)
    return Diagnosis(model=kind, T=T, batch=B, num_layers=num_layers, num_directions=num_directions,
                     loss=loss, loss_kind=loss_kind, layers=layers, log10_gradient_norm=total,
                     jacobian_sequences=nj, dtype=str(dtype).removeprefix("torch."),
                     advice=advice(layers, total, T, history=history), seconds=time.perf_counter() - start, notes=tuple(notes),
                     clip_source=clip_threshold(total, history)[1])


# ---------------------------------------------------------------------------------- a whole model

def _model_loss(output, loss_fn, targets) -> torch.Tensor:
    """L = loss_fn(output[, targets]) on whatever the model returns, checked to be a finite scalar tensor."""
    if loss_fn is None:
        raise InputError("loss_fn: expected a loss function of the model's output (and targets) for a whole model, "
                         "got None")
    if not callable(loss_fn):
        raise InputError(f"loss_fn: expected a function of the output (and targets), got {type(loss_fn).__name__}")
    try:
        L = loss_fn(output) if targets is None else loss_fn(output, targets)
    except InputError:
        raise
    except (RuntimeError, ValueError, IndexError, TypeError) as e:
        what = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
        raise InputError(f"loss_fn: expected it to accept the model's output ({what}), got {type(e).__name__}: {e}") from None
    if not isinstance(L, torch.Tensor) or L.numel() != 1:
        got = tuple(L.shape) if isinstance(L, torch.Tensor) else type(L).__name__
        raise InputError(f"loss_fn: expected a scalar tensor, got {got}")
    if not torch.isfinite(L.detach()).all():
        raise InputError(f"loss: expected a finite loss, got {float(L.detach())}")
    return L.reshape(())


def _diagnose_model(model, inputs, loss_fn, targets, jacobian, jacobian_sequences, attribution, gradient_norm,
                    dtype, start, credit_anchors=4, history=None) -> Diagnosis:
    """diagnose for any nn.Module that uses nn.RNN / LSTM / GRU submodules (capture.py), calls in reverse order:

        direct terms  u = dL/d(output), dL/dh_n, dL/dc_n of a call: autograd of the user's loss on its leaves
        the sweep     layer_flow.sweep_stack with them, top layer to layer 0: dL/dx of its input, dL/ds_0 of each layer
        push back     dL/dx and dL/dh0 into the user's graph: onto the leaves of earlier calls
    """
    if dtype is not None and any(p.dtype != dtype for p in model.parameters()):
        raise InputError(f"dtype: expected None or the model's own dtype for a whole model (copy it with "
                         f"model.to(dtype)), got {dtype}")
    output, calls, notes = capture_forward(model, inputs)
    for c in calls:
        if c.run.lengths is not None:  # capture re-runs packed input exactly; the sweep does not mask its padding yet
            raise InputError(f"{c.name}: expected a padded tensor input, got a PackedSequence (not supported yet by "
                             f"diagnose: pass the padded batch)")
        _check_finite(c.run, c.name)
    L = _model_loss(output, loss_fn, targets)
    accumulate(calls, [L], [torch.ones((), dtype=L.dtype)])
    per_call = {}
    for i in range(len(calls) - 1, -1, -1):
        c, run = calls[i], calls[i].run
        g = [torch.zeros_like(v) if gr is None else gr.detach() for v, gr in zip(c.leaves, c.grads)]
        gout, gh = g[0], g[1]
        up = gout.unsqueeze(1) if run.unbatched else (gout.transpose(0, 1) if run.batch_first else gout)
        gh = gh.unsqueeze(1) if run.unbatched else gh  # (layers dirs, B, P)
        gc = None if len(g) < 3 else (g[2].unsqueeze(1) if run.unbatched else g[2])
        dirs = run.num_directions
        finals = {(r.layer, r.direction): (gh[r.layer * dirs + (r.direction == "reverse")] if gc is None else
                                           torch.cat([gh[r.layer * dirs + (r.direction == "reverse")],
                                                      gc[r.layer * dirs + (r.direction == "reverse")]], -1)).to(
                                                          run.output.dtype) for r in run.runs}
        need_x = i > 0 and c.x.requires_grad
        res, gx = sweep_stack(run, up.to(run.output.dtype), 0.0, attribution, gradient_norm, finals, need_x)
        per_call[i] = res, (credit_of(run, up.to(run.output.dtype), res, credit_anchors) if credit_anchors else {})
        if i > 0:
            gx = None if gx is None else (gx[:, 0] if run.unbatched else (gx.transpose(0, 1) if run.batch_first else gx))
            g0 = []
            if c.hx:
                P = run.runs[0].cell.h_size
                s0 = torch.stack([res[(r.layer, r.direction)]["g0"] for r in run.runs])  # (layers dirs, B, S)
                g0 = [s0[..., :P], s0[..., P:]][:len(c.hx)]
                g0 = [v[:, 0] if run.unbatched else v for v in g0]
            push_back(c, calls[:i], gx, g0)
    layers, nj = [], 0
    for i, c in enumerate(calls):
        ls, n = _layer_results(c.run, per_call[i][0], c.name, jacobian, jacobian_sequences, per_call[i][1])
        layers += ls
        nj = max(nj, n)
    runs = [c.run for c in calls]
    kind = f"{type(model).__name__} (" + ", ".join(f"{c.name}: {module_kind(c.module)}" for c in calls) + ")"
    return _result(kind, layers, max(r.output.shape[0] for r in runs), runs[0].output.shape[1],
                   sum(r.num_layers for r in runs), max(r.num_directions for r in runs), float(L.detach()), "loss_fn",
                   nj, runs[0].output.dtype, tuple(notes), start, history)
