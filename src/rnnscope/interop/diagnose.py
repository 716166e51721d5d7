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
    credit profile         G(d) = log10 ||dE_t/dh_{t-d}||, d = 0..D, for per-step losses L = sum_t E_t, by
                           anchored rows of the same sweep (credit.py); for a last-step loss log10 ||dL/dh_{t-d}||
    gate attribution       carry_share(k) (LSTM and GRU): the share of dL/ds_k that takes the carry term
                           (LSTM's cell path f_k * c_{k-1}, GRU's z_k * h_{k-1}) at least once (layer_flow.py)
    the weights' promise   sigma_max(W_hh) against 1/gamma, rho (bounds.weight_facts); gate blocks' sigma_max
    measured               the fitted rate (log10 per step), the memory horizon (10^3), a plain verdict
    gradient norms         ||dL/dtheta|| of every named parameter of the model (the recurrent ones from the
                           sweep, the rest by autograd through the user's graph), exactly
    on request             the Jacobian-product profile log10 ||ds_T/ds_k||_2 on the full state ((h, c) for
                           LSTM) and, for LSTM, its h -> h and c -> c blocks and its h rows ||dh_T/ds_k||_2 (what a
                           loss on h_T can see) (flow.jacobian_profile), O(T S^3) per sequence, its cost reported

Precision: the analysis runs in float64 whatever the model's dtype (a float16 / bfloat16 / float32 model is
analysed as an upcast copy: its weights, and floating inputs and targets, converted once; integer token ids as
they are); `dtype=` chooses otherwise. The report states the model's dtype and how far the re-run's output is
from the module's own output in it (agreement: max |re-run - own| / max(1, max |own|)). Adjoints stay in the log
domain and a layer's upstream keeps a scale per step and row (layer_flow), so tails beyond the dtype's range
keep the dtype's relative precision.

NaN hunting: when the model's own loss (in its dtype), the analysis' states or loss, or a parameter gradient
(beyond the model dtype's range) is not finite, the diagnosis does not fail: nan_hunt.hunt finds where, in the
model's dtype (the first forward state, backward adjoint or parameter gradient that is non-finite or exceeds
10^6 times its median), and the Diagnosis carries it (`nonfinite`); the profiles are kept when the float64
analysis is finite, else there are none.

The loss: L = loss_fn(output) or loss_fn(output, targets), output being the module's first return value in
its own layout ((B, T, dirs P) with batch_first, (T, P) for unbatched input); without loss_fn, L = the sum of
the entries of the last top-layer output (output[T] time-major: for a bidirectional top layer that is the
forward h_T and the reverse direction's first step). For a whole model, output is whatever model(*inputs)
returns (logits, a tuple with h_n, ...) and loss_fn is required (an InputError without it).

How it is computed (reusing the engine, no second copy of its math):
    upstream u = dL/d(output) by autograd on the re-run output (T, B, dirs P)
    rows     the batch, the credit profile's anchored rows (E_t alone), the carry-cut copies (attribution)
    for l = top .. 0, for each direction: one block-scaled log-domain sweep over all the rows (layer_flow.py:
             Cell.vjp_factors formed once for the trace, one Cell.vjp_apply per step), dL/dx_k of the carried
             rows the upstream of the layer below, the parameter gradients by one batched backward
    rate, horizon, verdict and advice from the primary profile, what the loss can see: the credit profile G(d)
    (per-step losses), else ||dL/dh_k|| (a last-step loss); ||ds_T/ds_k||_2 only with credit_anchors=0 and
    the Jacobian products (verdicts.profile_verdict, the one verdict of diagnose, the monitor and the CLI)
    Loops over time of small states run on one torch thread, products over all steps on torch's (core/threads.py).

Cost (benchmarks/diagnose.py): about 2 times one forward + backward of a float64 copy of the model on the same
batch (torch's own kernels), which is itself about 3 times the float32 model's (the char-LM: 6.5x in all).

Legend: T time, B batch, D input size, H hidden (cell) size, P size of h (H, or proj_size), S state size.

Example:
    >>> lstm = torch.nn.LSTM(4, 16, num_layers=2)
    >>> d = diagnose(lstm, torch.randn(50, 8, 4))
    >>> [(l.layer, l.direction) for l in d.layers], len(d.layers[0].log10_adjoint_h)
    ([(0, 'forward'), (1, 'forward')], 50)
    >>> print(d.summary().splitlines()[0])                                       # doctest: +ELLIPSIS
    rnnscope diagnose: lstm, 2 layer(s) x 1 direction(s), T = 50, B = 8, float64; loss = ... (sum of the last output)
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from typing import Callable

import torch
from torch import nn

from ..core.errors import InputError
from ..core.unroll import Trace
from ..gradients.bounds import fitted_rate, horizon, weight_facts
from ..gradients.flow import jacobian_profile
from .advice import advice, clip_threshold, gate_facts
from .capture import accumulate, capture_forward, own_forward, push_back, recurrent_submodules
from .credit import CREDIT_SEQUENCES, credit_profiles, credit_rows
from .layer_flow import LN10, gate_sigmas, param_fields, sweep_stack
from .losses import apply_loss, as_targets, default_loss, target_loss
from .torch_models import StackRun, layer_cells, module_dtype, module_kind, rerun, valid_steps
from .verdicts import FAR_DECADES, Diagnosis, LayerDiagnosis, first_far, profile_verdict

__all__ = ["Diagnosis", "LayerDiagnosis", "diagnose", "target_loss", "FAR_DECADES", "ATTRIBUTION_SEQUENCES"]

ATTRIBUTION_SEQUENCES = 4  # attribution=True: the carry share of the first 4 sequences (one cut row each)


def diagnose(model, inputs, loss_fn: Callable | None = None, *, targets=None, jacobian: bool = False,
             jacobian_sequences: int | None = 4, attribution: bool | int = True, gradient_norm: bool = True,
             dtype: torch.dtype | None = None, credit_anchors: int = 4, credit_sequences: int | None = CREDIT_SEQUENCES,
             gradient_history=None) -> Diagnosis:
    """Exact per-step gradient flow of every layer and direction of a recurrent model (see the module docstring).

    inputs      (T, D) unbatched, (T, B, D), or (B, T, D) when the module is batch_first; tensor or numpy; for a
                whole model a tensor or a tuple of positional arguments for model(*inputs) (token ids included)
    loss_fn     L = loss_fn(output[, targets]) on the module's output in its own layout (a whole model: on what
                it returns); None: the sum of output[T] (bare modules only)
    jacobian    compute log10 ||ds_T/ds_k||_2 (and LSTM blocks) on the first `jacobian_sequences` sequences
                (None: all); O(T S^3) per sequence, its seconds in Diagnosis.jacobian_seconds
    attribution carry_share(k) for LSTM / GRU: True on the first ATTRIBUTION_SEQUENCES sequences, an integer on
                that many, False none (one extra row of the sweep per sequence)
    gradient_norm  ||dL/dtheta|| of every named parameter (one batched backward through each layer's steps)
    dtype       of the analysis; default float64 whatever the model's (the model is analysed as a copy)
    credit_anchors, credit_sequences  the credit profile's anchor steps and sequences per anchor (credit.py:
                rows of the sweep; per-step losses); credit_anchors=0: not computed
    gradient_history  past ||dL/dtheta|| of training steps (GradientFlowMonitor.grad_norms): the clip advice
                is their AutoClip percentile (advice.py); None: this batch's norm, and the advice says so

    For a whole model (capture.py): one forward with each recurrent submodule re-run in place of its own forward
and returning leaves; autograd of L gives each call's direct terms dL/d(output), dL/dh_n, dL/dc_n and the other
parameters' gradients; the calls are swept in reverse order, and each sweep's dL/dx of layer 0 and dL/ds_0
(when the forward gave an h0) go back into the user's graph, onto the leaves of earlier calls (an encoder
feeding a decoder's h0) and the parameters before them (an embedding). Each LayerDiagnosis names its `module`
(the submodule's path, e.g. "encoder.rnn"); num_layers is the sum over the calls, T the longest. A submodule
with dropout between layers in train mode is diagnosed in eval mode (Diagnosis.notes says so); the model's mode
is restored. A PackedSequence input is re-run with its lengths, the steps beyond them excluded (NaN in the
per-sequence profiles). Refused: a submodule called more than once per forward.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> gru = torch.nn.GRU(2, 8, batch_first=True)
        >>> d = diagnose(gru, torch.randn(4, 30, 2), lambda out: out[:, -1].pow(2).sum())
        >>> d.layers[0].verdict                  # a last-step loss: the verdict reads ||dL/dh_k||  # doctest: +ELLIPSIS
        'vanishing: credit from d steps ahead falls below 10^-3 of the immediate one at d = ... (||dL/dh_k|| at k = t - d, ...)'
        >>> d.model_dtype, d.dtype, d.agreement < 1e-6                      # a float32 module, analysed in float64
        ('float32', 'float64', True)

    A whole model (token ids -> embedding -> LSTM -> head), with its own loss:
        >>> lm = torch.nn.Sequential(torch.nn.Embedding(10, 4), torch.nn.LSTM(4, 8, batch_first=True))
        >>> ids = torch.randint(0, 10, (3, 12))
        >>> d = diagnose(lm, ids, lambda out: out[0].pow(2).mean())
        >>> [(l.module, l.layer, l.direction) for l in d.layers], d.layers[0].per_sequence_adjoint_h.shape
        ([('1', 0, 'forward')], torch.Size([3, 12]))
        >>> [name for name, _ in d.parameters]                              # the embedding's too
        ['0.weight', '1.weight_ih_l0', '1.weight_hh_l0', '1.bias_ih_l0', '1.bias_hh_l0']
    """
    start = time.perf_counter()
    if jacobian_sequences is not None and (not isinstance(jacobian_sequences, int) or isinstance(jacobian_sequences, bool)
                                           or jacobian_sequences < 1):
        raise InputError(f"jacobian_sequences: expected a positive integer or None, got {jacobian_sequences!r}")
    for name, v in (("credit_anchors", credit_anchors), ("credit_sequences", 1 if credit_sequences is None else credit_sequences)):
        if not isinstance(v, int) or isinstance(v, bool) or v < (0 if name == "credit_anchors" else 1):
            raise InputError(f"{name}: expected a {'non-negative' if name == 'credit_anchors' else 'positive'} integer"
                             f"{'' if name == 'credit_anchors' else ' or None'}, got {v!r}")
    if isinstance(attribution, bool):
        cut = ATTRIBUTION_SEQUENCES if attribution else 0
    elif isinstance(attribution, int) and attribution >= 0:
        cut = attribution
    else:
        raise InputError(f"attribution: expected True, False or a number of sequences, got {attribution!r}")
    if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise InputError(f"dtype: expected a floating point torch.dtype (or None: float64), got {dtype!r}")
    opts = dict(jacobian=jacobian, jacobian_sequences=jacobian_sequences, cut=cut, gradient_norm=gradient_norm,
                dtype=torch.float64 if dtype is None else dtype, credit_anchors=credit_anchors,
                credit_sequences=credit_sequences, history=gradient_history, start=start)
    if isinstance(model, nn.Module) and not isinstance(model, nn.RNNBase) and not _is_bare(model):
        return _diagnose_model(model, inputs, loss_fn, targets, opts)
    return _diagnose_bare(model, inputs, loss_fn, targets, opts)


def _is_bare(model) -> bool:
    try:
        module_kind(model)
    except InputError:
        return False
    return True


def _finite_run(run: StackRun) -> bool:
    return _all_finite(run.output) and all(_all_finite(r.trace.states) for r in run.runs)


def _all_finite(x: torch.Tensor) -> bool:
    """Whether every entry is finite: a finite sum says so in one pass (an inf or NaN entry makes the sum inf or
    NaN); only a sum that is not finite (an overflow of finite entries, or a bad entry) takes the entrywise test."""
    return bool(torch.isfinite(x.sum())) or bool(torch.isfinite(x).all())


def _agreement(own: torch.Tensor | None, got: torch.Tensor) -> float | None:
    """max |got - own| / max(1, max |own|) in float64; None when there is nothing to compare."""
    if own is None or tuple(own.shape) != tuple(got.shape):
        return None
    r = own.detach().to(torch.float64)
    if not r.numel():
        return 0.0
    a = float((got.detach().to(torch.float64) - r).abs().max()) / max(1.0, float(r.abs().max()))
    return a if math.isfinite(a) else None  # an overflowing output: nothing to compare


# ----------------------------------------------------------------------------------------------- bare modules

def _own_output(model, inputs, run: StackRun) -> torch.Tensor | None:
    """The module's own output in its own dtype and layout (nn.RNN / LSTM / GRU: its forward; an nn.*Cell: the
    cell looped over the steps); None for an rnnscope Cell (it is the analysis itself)."""
    if not isinstance(model, nn.Module):
        return None
    x = torch.as_tensor(inputs).to(module_dtype(model))
    with torch.no_grad():
        if isinstance(model, nn.RNNBase):
            return model(x)[0]
        if not isinstance(model, nn.RNNCellBase):
            return None  # rnnscope.lab.networks' stacks: their forward is the rnnscope cells'
        xs = x.unsqueeze(1) if x.dim() == 2 else x  # a cell module: (T, B, D)
        s, hs = None, []
        for k in range(xs.shape[0]):
            s = model(xs[k], s)
            hs.append(s[0] if isinstance(s, tuple) else s)
        h = torch.stack(hs)
        return h[:, 0] if x.dim() == 2 else h


def _loss_on_run(run: StackRun, loss_fn, targets) -> tuple[torch.Tensor, torch.Tensor, str]:
    """(L, dL/d(output) (T, B, O) time-major, how L was made) on the re-run's output (a leaf)."""
    y = run.output.detach().requires_grad_(True)
    with torch.enable_grad():
        if loss_fn is None:
            L, kind = default_loss(y, targets), "sum of the last output"
        else:
            out = run.to_module_layout(y)
            L, kind = apply_loss(loss_fn, out, as_targets(targets, y.dtype), what="the output"), "loss_fn"
        if not L.requires_grad or not bool(torch.isfinite(L.detach())):
            return L.detach(), torch.zeros_like(y), kind
        (dy,) = torch.autograd.grad(L, y, allow_unused=True)
    return L.detach(), (torch.zeros_like(y) if dy is None else dy), kind


def _diagnose_bare(model, inputs, loss_fn, targets, o: dict) -> Diagnosis:
    kind = module_kind(model)
    own_dt = module_dtype(model)
    run = rerun(model, inputs, dtype=o["dtype"])
    own = _own_output(model, inputs, run)
    agree = _agreement(own, run.module_output())
    L, up, loss_kind = _loss_on_run(run, loss_fn, targets)
    own_loss = None
    if own is not None and loss_fn is not None:
        with torch.no_grad():
            own_loss = float(apply_loss(loss_fn, own, as_targets(targets, own.dtype)))
    T, B = run.output.shape[0], run.output.shape[1]
    if not _finite_run(run) or not math.isfinite(float(L)):
        return _nonfinite(model, inputs, loss_fn, targets, kind, run, float(L), loss_kind, own_dt, agree, (), o)
    rows = credit_rows(up, o["credit_anchors"], o["credit_sequences"]) if o["credit_anchors"] else None
    res = _sweep(run, up, rows, o)[0]
    credit = credit_profiles(rows, res, run) if o["credit_anchors"] else {}
    names = _recurrent_names(model, "", run) if isinstance(model, nn.Module) else None
    layers, nj, js, params = _layer_results(run, res, "", o, credit, names)
    params = tuple(params)
    d = _result(kind, layers, T, B, run.num_layers, run.num_directions, float(L), loss_kind, nj, run.output.dtype, (),
                o, params, own_dt, agree, js)
    return _check_own_dtype(d, model, inputs, loss_fn, targets, own_loss, own_dt)


def _sweep(run: StackRun, up: torch.Tensor, rows, o: dict, finals=None, need_input: bool = False):
    """sweep_stack over the batch's rows, the credit rows and the carry-cut rows of one re-run."""
    B = up.shape[1]
    seq = None if rows is None else torch.cat([torch.arange(B), rows.seq])
    U = up if rows is None else torch.cat([up, rows.up.to(up.dtype)], 1)
    return sweep_stack(run, U, 0.0, seq=seq, cut=min(o["cut"], B), gradient_norm=o["gradient_norm"], finals=finals,
                       need_input=need_input)


# ------------------------------------------------------------------------------------------------ layers

def _recurrent_names(module, prefix: str, run: StackRun) -> dict:
    """{(layer, direction): {field: (parameter names)}} of a recurrent module's named parameters (PyTorch names,
    with prefix: the module's path in a whole model)."""
    have = {n for n, p in module.named_parameters() if p.requires_grad}
    stack = not (module_kind(module).endswith("_cell") or module_kind(module).startswith("rnn_cell"))
    out = {}
    for r in run.runs:
        sfx = (f"_l{r.layer}" + ("_reverse" if r.direction == "reverse" else "")) if stack else ""
        out[(r.layer, r.direction)] = {f: tuple(prefix + n + sfx for n in ns if n + sfx in have)
                                       for f, ns in param_fields(r.cell, r.bias).items()}
    return out


def _layer_params(res_r: dict, names: dict) -> list[tuple[str, float]]:
    """(name, log10 ||dL/dtheta_name||) of one (layer, direction) from its sweep's field gradients; names:
    {field: (the module parameters it stands for)} (Elman's b_h = bias_ih + bias_hh: both, the same gradient)."""
    out = []
    for f, ns in names.items():
        g = res_r["grads"].get(f)
        if g is None:
            continue
        n = float(torch.linalg.vector_norm(g.to(torch.float64)))
        out += [(name, (math.log(n) + res_r["gm"]) / LN10 if n > 0 else float("-inf")) for name in ns]
    return out


def _layer_results(run: StackRun, res: dict, module: str, o: dict, credit: dict,
                   names: dict | None) -> tuple[list[LayerDiagnosis], int, float | None, list]:
    """The LayerDiagnosis of every (layer, direction) of one re-run, the sequences of the Jacobian products, their
    seconds (None when not computed), and (name, log10 ||dL/dtheta_name||) of its parameters (names: the module's
    parameter names by (layer, direction) and field, _recurrent_names; None: the cell's field names)."""
    B = run.output.shape[1]
    layers, nj, js, params = [], 0, None, []
    for r in run.runs:
        res_r = res[(r.layer, r.direction)]
        cell, tr = r.cell, r.trace
        P, S = cell.h_size, cell.state_size
        spec = hh = cc = sh = None
        if o["jacobian"]:
            t0 = time.perf_counter()
            nj = B if o["jacobian_sequences"] is None else min(B, o["jacobian_sequences"])
            spec, hh, cc, sh = _jacobian(cell, tr, nj, r.lengths)
            js = (js or 0.0) + time.perf_counter() - t0
        facts = weight_facts(cell)
        gf = gate_facts(cell, tr, None if r.lengths is None else valid_steps(tr.T, r.lengths))
        cp = credit.get((r.layer, r.direction))
        # the verdict reads what the loss can see: the credit profile G(d) (per-step losses), else ||dL/dh_k||
        # (a last-step loss: G(d) is that profile reversed; also where no E_t reads this direction, G(0) = 0);
        # ||ds_T/ds_k||_2 only without a credit profile
        if cp is not None and cp.case == "per-step" and math.isfinite(float(cp.log10_credit[0])):
            primary, src = cp.log10_credit.flip(0), "credit"  # element k-1 <-> d = D + 1 - k, d = 0 last
        elif spec is not None and cp is None:
            primary, src = torch.nanmean(spec, 0), "spectral"
        else:
            primary, src = torch.nanmean(res_r["adjoint_h"], 0)[:max(res_r["t_last"], 1)], "adjoint"
        rate = fitted_rate(primary)
        hz, hk = horizon(primary)
        far = first_far(primary)
        own = _layer_params(res_r, names[(r.layer, r.direction)] if names is not None else
                            {f: (f,) for f in param_fields(cell, r.bias)})
        params += own
        ln = [v for _, v in own]
        share = res_r["share"]
        layers.append(LayerDiagnosis(
            layer=r.layer, direction=r.direction, cell=cell.kind, state=cell.state_label, h_size=P, state_size=S,
            per_sequence_adjoint_h=res_r["adjoint_h"], per_sequence_adjoint_c=res_r["adjoint_c"],
            per_sequence_spectral=spec, per_sequence_spectral_hh=hh, per_sequence_spectral_cc=cc,
            per_sequence_carry_share=share, per_sequence_spectral_h=sh,
            log10_gradient_norm=_log10_total(ln) if res_r["grads"] else None,
            sigma_max=facts.sigma_max, sigma_max_gates=gate_sigmas(cell), gamma=facts.gamma,
            spectral_radius=facts.spectral_radius, theory_verdict=facts.verdict, note=facts.note,
            rate_per_step=rate, horizon=hz, horizon_kind=hk, far_distance=far, last_loss_step=res_r["t_last"],
            rate_source=src, verdict=profile_verdict(src, rate, hz, hk, primary.shape[0]), module=module,
            log10_credit=None if cp is None else cp.log10_credit, credit_case=None if cp is None else cp.case,
            credit_anchors=() if cp is None else cp.anchors, forget_gate=gf.get("forget_gate"),
            forget_bias=gf.get("forget_bias"), forget_rest=gf.get("forget_rest"), update_gate=gf.get("update_gate"),
            attribution_sequences=0 if share is None else share.shape[0],
            credit_sequences=0 if cp is None else cp.sequences))
    return layers, nj, js, params


def _log10_total(vals) -> float | None:
    """log10 sqrt(sum 10^(2 v)) of log10 norms (None: none)."""
    vals = [v for v in vals if v is not None and not math.isnan(v)]
    if not vals:
        return None
    return float(0.5 * torch.logsumexp(2 * LN10 * torch.tensor(vals, dtype=torch.float64), 0)) / LN10


def _jacobian(cell, tr: Trace, nj: int, lengths):
    """log10 ||ds_T/ds_k||_2 (nj, T) of the first nj sequences and, for LSTM, the h -> h, c -> c blocks and the
    h rows; a packed sequence's profile over its own steps (ds_{L_b}/ds_k), NaN beyond L_b."""
    P, S, T = cell.h_size, cell.state_size, tr.T
    blocks = ([(slice(0, P), slice(0, P)), (slice(P, S), slice(P, S)), (slice(0, P), slice(0, S))]
              if S != P else None)  # h -> h, c -> c, and the h rows dh_T/ds_k
    Ls = [T] * nj if lengths is None else [int(v) for v in lengths[:nj]]
    spec = torch.full((nj, T), float("nan"), dtype=torch.float64)
    bl = torch.full((nj, 3, T), float("nan"), dtype=torch.float64) if blocks else None  # (J, blocks, T)
    for L in sorted(set(Ls)):
        idx = [b for b in range(nj) if Ls[b] == L]
        sub = Trace(tr.states[:L + 1, idx], tr.preacts[:L, idx], tr.inputs[:L, idx])
        jp = jacobian_profile(cell, sub, blocks=blocks)
        spec[idx, :L] = jp.log10_spectral.to(torch.float64)
        if blocks:
            bl[idx, :, :L] = jp.log10_blocks.to(torch.float64)
    if not blocks:
        return spec, None, None, None
    return spec, bl[:, 0], bl[:, 1], bl[:, 2]


def _result(kind: str, layers: list, T: int, B: int, num_layers: int, num_directions: int, loss: float, loss_kind: str,
            nj: int, dtype: torch.dtype, notes: tuple, o: dict, params: tuple, model_dtype, agreement,
            jacobian_seconds) -> Diagnosis:
    total = _log10_total([v for _, v in params]) if params and o["gradient_norm"] else None
    layers = tuple(layers)
    history = o["history"]
    return Diagnosis(model=kind, T=T, batch=B, num_layers=num_layers, num_directions=num_directions,
                     loss=loss, loss_kind=loss_kind, layers=layers, log10_gradient_norm=total,
                     jacobian_sequences=nj, dtype=str(dtype).removeprefix("torch."),
                     advice=advice(layers, total, T, history=history), seconds=time.perf_counter() - o["start"],
                     notes=tuple(notes), parameters=params, model_dtype=str(model_dtype).removeprefix("torch."),
                     agreement=agreement, clip_source=clip_threshold(total, history)[1],
                     jacobian_seconds=jacobian_seconds)


# ---------------------------------------------------------------------------------------------- non-finite

def _nonfinite(model, inputs, loss_fn, targets, kind, run, loss, loss_kind, own_dt, agree, notes, o) -> Diagnosis:
    """The analysis itself is not finite: no profiles; where it goes wrong, found in the model's own dtype."""
    from .nan_hunt import hunt
    try:
        found = hunt(model, inputs, loss_fn, targets)
        advice_ = _nan_advice(found)
    except InputError as e:  # what the hunt cannot read yet (a packed input): said, not raised
        found, notes = None, (*notes, f"the NaN hunt could not run: {e}")
        advice_ = (f"the {o['dtype']} analysis is not finite (loss {loss}): the forward pass overflows or reads "
                   f"inf / NaN; check the inputs and the recurrent weights",)
    T, B = run.output.shape[0], run.output.shape[1]
    d = Diagnosis(model=kind, T=T, batch=B, num_layers=run.num_layers, num_directions=run.num_directions, loss=loss,
                  loss_kind=loss_kind, layers=(), log10_gradient_norm=None, jacobian_sequences=0,
                  dtype=str(o["dtype"]).removeprefix("torch."), advice=advice_,
                  seconds=time.perf_counter() - o["start"], notes=tuple(notes), parameters=(),
                  model_dtype=str(own_dt).removeprefix("torch."), agreement=agree, nonfinite=found)
    return d


def _nan_advice(found) -> tuple[str, ...]:
    if found is None:
        return ("the analysis overflows its dtype while the model's own forward and gradients are finite: "
                "diagnose with dtype=torch.float64",)
    line = found.message()
    if found.where in ("forward", "loss"):
        return (line, "the forward pass overflows: check the inputs for inf / NaN, scale them, or lower the "
                      "recurrent weights (sigma_max(W_hh)) or the learning rate that took them there")
    return (line, "the backward pass overflows: clip the gradient norm (clip_grad_norm_) before opt.step(), or "
                  "lower the learning rate")


def _check_own_dtype(d: Diagnosis, model, inputs, loss_fn, targets, own_loss, own_dt) -> Diagnosis:
    """A finite float64 analysis of a model whose own dtype overflows (its loss, a gradient or an adjoint beyond
    that dtype's range): the NaN hunt in the model's dtype, attached."""
    from .nan_hunt import adjoint_blowup, hunt, nonfinite_parameters
    if own_dt == torch.float64 or not isinstance(model, nn.Module):
        return d
    bad = own_loss is not None and not math.isfinite(own_loss)
    bad = bad or bool(nonfinite_parameters(d.parameters, own_dt))
    profiles = [(ld.module, ld.layer, ld.direction, ld.per_sequence_adjoint_h) for ld in d.layers]
    bad = bad or adjoint_blowup(profiles, own_dt) is not None and adjoint_blowup(profiles, own_dt).what == "inf"
    if not bad:
        return d
    try:
        found = hunt(model, inputs, loss_fn, targets)
    except InputError as e:  # what the hunt cannot read yet (a packed input): said, not raised
        return dataclasses.replace(d, notes=(*d.notes, f"the NaN hunt could not run: {e}"))
    if found is None:
        return d
    return dataclasses.replace(d, nonfinite=found, advice=_nan_advice(found) + d.advice)


# ---------------------------------------------------------------------------------------------- a whole model

def _cast(x, dtype: torch.dtype):
    """Floating tensors in x (a tensor, or a tuple / list / dict of them) converted to dtype; the rest as it is."""
    if isinstance(x, torch.Tensor):
        return x.to(dtype) if x.is_floating_point() else x
    if isinstance(x, tuple):
        return tuple(_cast(v, dtype) for v in x)
    if isinstance(x, list):
        return [_cast(v, dtype) for v in x]
    if isinstance(x, dict):
        return {k: _cast(v, dtype) for k, v in x.items()}
    return x


def _base(m: nn.Module) -> str:
    """The torch class a recurrent module is re-run as: nn.LSTM, nn.GRU or nn.RNN."""
    return next(f"nn.{c.__name__}" for c in (nn.LSTM, nn.GRU, nn.RNN) if isinstance(m, c))


def _model_dtype(model: nn.Module) -> torch.dtype:
    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.get_default_dtype()


def _diagnose_model(model, inputs, loss_fn, targets, o: dict) -> Diagnosis:
    """diagnose for any nn.Module that uses nn.RNN / LSTM / GRU submodules (capture.py), calls in reverse order:

        direct terms  u = dL/d(output), dL/dh_n, dL/dc_n of a call: autograd of the user's loss on its leaves
        the sweep     layer_flow.sweep_stack with them, top layer to layer 0: dL/dx of its input, dL/ds_0 of each layer
        push back     dL/dx and dL/dh0 into the user's graph: onto the leaves of earlier calls, the parameters
    """
    if not recurrent_submodules(model):
        raise InputError(f"model: expected nn.RNN, nn.LSTM, nn.GRU (or their *Cell), an rnnscope Cell, or an nn.Module "
                         f"whose forward uses nn.RNN / nn.LSTM / nn.GRU submodules, got {type(model).__name__} with none")
    if loss_fn is None:
        apply_loss(None, None)  # the InputError: a whole model needs its loss
    adt, own_dt = o["dtype"], _model_dtype(model)
    m = model if own_dt == adt else copy.deepcopy(model).to(adt)  # the analysis copy
    args = inputs if isinstance(inputs, tuple) else (inputs,)
    own_out, own = own_forward(model, args)
    with torch.no_grad():
        own_loss = float(apply_loss(loss_fn, own_out, targets, what="the model's output"))
    output, calls, notes = capture_forward(m, _cast(args, adt), own=own)
    L = apply_loss(loss_fn, output, _cast(targets, adt), what="the model's output")
    runs = [c.run for c in calls]
    agree = max((c.agreement for c in calls if c.agreement is not None), default=None)
    tol = max(1e-4, 1e3 * torch.finfo(own_dt).eps)  # rounding of the model's own dtype, with room for T steps
    notes += [f"{c.name}: the re-run differs from the module's own output by {c.agreement:.2g} (relative, more than "
              f"{str(own_dt).removeprefix('torch.')} rounding explains): it is re-run as {_base(c.module)}; does "
              f"{type(c.module).__name__}.forward do more?" for c in calls if c.agreement is not None and c.agreement > tol]
    kind = f"{type(model).__name__} (" + ", ".join(f"{c.name}: {module_kind(c.module)}" for c in calls) + ")"
    T, B = max(r.output.shape[0] for r in runs), runs[0].output.shape[1]
    layers_n, dirs = sum(r.num_layers for r in runs), max(r.num_directions for r in runs)
    if not all(_finite_run(r) for r in runs) or not math.isfinite(float(L.detach())):
        return _nonfinite(model, args, loss_fn, targets, kind, max(runs, key=lambda r: r.output.shape[0]),
                          float(L.detach()), "loss_fn", own_dt, agree, notes, o)
    inside = {id(p) for c in calls for p in c.module.parameters()}
    params = {n: [p, None] for n, p in m.named_parameters() if p.requires_grad and id(p) not in inside}
    accumulate(calls, [L], [torch.ones((), dtype=L.dtype)], params)
    per_call = {}
    for i in range(len(calls) - 1, -1, -1):
        c, run = calls[i], calls[i].run
        g = [torch.zeros_like(v) if gr is None else gr.detach() for v, gr in zip(c.leaves, c.grads)]
        gout, gh = g[0], g[1]
        up = gout.unsqueeze(1) if run.unbatched else (gout.transpose(0, 1) if run.batch_first else gout)
        gh = gh.unsqueeze(1) if run.unbatched else gh  # (layers dirs, B, P)
        gc = None if len(g) < 3 else (g[2].unsqueeze(1) if run.unbatched else g[2])
        dirs_c = run.num_directions
        finals = {(r.layer, r.direction): (gh[r.layer * dirs_c + (r.direction == "reverse")] if gc is None else
                                           torch.cat([gh[r.layer * dirs_c + (r.direction == "reverse")],
                                                      gc[r.layer * dirs_c + (r.direction == "reverse")]], -1)).to(
                                                          run.output.dtype) for r in run.runs}
        need_x = c.x.requires_grad and (i > 0 or bool(params))
        rows = credit_rows(up, o["credit_anchors"], o["credit_sequences"]) if o["credit_anchors"] else None
        res, gx, m_off = _sweep(run, up.to(run.output.dtype), rows, o, finals, need_input=need_x)
        per_call[i] = res, (credit_profiles(rows, res, run) if o["credit_anchors"] else {})
        g0 = []
        if c.hx:
            P = run.runs[0].cell.h_size
            s0 = torch.stack([res[(r.layer, r.direction)]["g0"] for r in run.runs])  # (layers dirs, B, S)
            g0 = [s0[..., :P], s0[..., P:]][:len(c.hx)]
            g0 = [v[:, 0] if run.unbatched else v for v in g0]
        if gx is not None:
            # the batch rows, unscaled (each step's own log-offset: m_off (T, B))
            gx = (gx[:, :B].to(torch.float64) * torch.exp(m_off[:, :B]).unsqueeze(-1)).to(gx.dtype)
            gx = gx[:, 0] if run.unbatched else (gx.transpose(0, 1) if run.batch_first else gx)
        if gx is not None or g0:
            push_back(c, calls[:i], gx, g0, params)
    layers, nj, js, pr = [], 0, None, {}
    for i, c in enumerate(calls):
        names = _recurrent_names(c.module, c.name + "." if c.name else "", c.run)
        ls, n, s, own = _layer_results(c.run, per_call[i][0], c.name, o, per_call[i][1], names)
        pr.update(own)
        layers += ls
        nj, js = max(nj, n), (js if s is None else (js or 0.0) + s)
    for n, (p, g) in params.items():
        pr[n] = float(torch.log10(torch.linalg.vector_norm(g.to(torch.float64)))) if g is not None else float("-inf")
    names_all = [n for n, p in m.named_parameters() if p.requires_grad]
    table = tuple((n, pr[n]) for n in names_all if n in pr) if o["gradient_norm"] else ()
    d = _result(kind, layers, T, B, layers_n, dirs, float(L.detach()), "loss_fn", nj, runs[0].output.dtype, tuple(notes),
                o, table, own_dt, agree, js)
    return _check_own_dtype(d, model, args, loss_fn, targets, own_loss, own_dt)
