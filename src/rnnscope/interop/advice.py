"""Advice a practitioner acts on: each line names the numbers it came from.

    clip threshold   with a history of >= 2 finite past norms ||dL/dtheta|| (GradientFlowMonitor, one per
                     training step): AutoClip's threshold, the p-th percentile of the history (Seetharaman,
                     Wichern, Pardo, Le Roux 2020, "AutoClip: Adaptive Gradient Clipping for Source
                     Separation Networks"; p = 10 their default), linear interpolation between order
                     statistics (numpy.percentile's default). Without one: this batch's norm n only, and
                     the line says so (Pascanu, Mikolov, Bengio 2013 take 0.5 n to 10 n of an average norm).
    memory horizon   a unit whose state is carried by a factor f per step (LSTM forget gate, GRU update gate)
                     keeps f^d of it after d steps; f^d = 1e-3 at

                         d(f) = ln(1e-3) / ln(f)                           (f in (0, 1); inf at f >= 1)

    LSTM             facts of the trace (gate_facts): mean f = sigmoid(z_f), mean b_f = b_ih_f + b_hh_f, the
                     rest r = mean (z_f - b_f). When the credit vanishes, the carry share is low (< 0.5) or
                     mean f < 0.8: b_f = 1 (Jozefowicz, Zaremba, Sutskever 2015), f' = sigmoid(1 + r) and
                     d(f'); or chrono initialisation (Tallec & Ollivier 2018, "Can recurrent neural networks
                     warp time?"): b_f = log u, u ~ U[1, T_max - 1], b_i = -b_f, T_max the needed horizon
                     (the sequence length T unless given): f from sigmoid(r) to sigmoid(log(T_max - 1) + r),
                     horizons d(.) between (1 / (1 - f) from 2 to T_max at r = 0)
    GRU              vanishing credit (the carry share named when low): a positive update-gate bias (z near 1
                     copies h_{k-1}); the mean z, d(z), and the shift logit(z*) - logit(z) of b_z that gives
                     d(z*) = T - 1, i.e. z* = 10^(-3 / (T - 1))
    vanilla          (elman, pal) a horizon of the credit shorter than T - 1: a gated cell, or an orthogonal /
                     identity W_hh (Le, Jaitly, Hinton 2015, IRNN): sigma_max(W_hh) now against 1 and 1/gamma
    exploding        measured (the profile rose by 10^3) or allowed by the weights (sigma_max >= 1/gamma):
                     clipping, and sigma_max(W_hh) below 1/gamma to aim for (the Pascanu sufficient condition
                     for vanishing is sigma_max < 1/gamma; the edge of stability sigma_max ~ 1/gamma)

Legend: T time, B batch, H hidden (cell) size.

Example:
    >>> thr, source, n = clip_threshold(0.0, [1.0, 2.0, 3.0, 4.0, 5.0], 10.0)
    >>> round(thr, 6), source, n                      # between the 1st and 2nd of 5 sorted norms
    (1.4, 'history', 5)
    >>> round(memory_horizon(0.5), 3)                 # 0.5^d = 1e-3 at d = 3 log2(10)
    9.966
"""

from __future__ import annotations

import math

import torch

from ..core.cells import GRUCell, LSTMCell
from ..core.errors import InputError
from .verdicts import FAR_DECADES, LayerDiagnosis, _WHAT

__all__ = ["advice", "gate_facts", "clip_threshold", "memory_horizon", "LEVEL", "SMALL_FORGET", "LOW_SHARE"]

LEVEL = 1e-3  # the memory horizon: where f^d falls to 1e-3 (the verdict's 10^3, bounds.horizon)
# mean f < 0.8 is "small": d(0.8) = ln(1e-3)/ln(0.8) = 31 steps, so such a unit keeps 1e-3 of its cell state
# for about 30 steps only, shorter than the sequences RNNs are used on; the default initialisation (b_f = 0,
# small weights) sits at f ~ sigmoid(0) = 0.5, d = 10 steps, the case b_f = 1 was proposed for.
SMALL_FORGET = 0.8
LOW_SHARE = 0.5  # under half of the long-range dL/ds_k takes the carry path (layer_flow.carry_share)
VANILLA = ("elman", "pal")


def memory_horizon(f: float, level: float = LEVEL) -> float:
    """d(f) = ln(level) / ln(f): the distance at which f^d falls to `level` (inf for f >= 1, 0 for f <= 0)."""
    f = float(f)
    if f >= 1.0:
        return math.inf
    if f <= 0.0:
        return 0.0
    return math.log(level) / math.log(f)


def _sig(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def _logit(p: float) -> float:
    return math.log(p) - math.log1p(-p)


def _pow10(v: float) -> float:
    return 10.0 ** v if v < 308.0 else math.inf  # beyond float64: inf (the text then prints 10^v)


def _n(v: float, log10v: float | None = None) -> str:
    """A norm in text; 10^log10v when it is beyond float64."""
    return f"{v:.3g}" if math.isfinite(v) or log10v is None else f"10^{log10v:.1f}"


def _steps(d: float) -> str:
    return "inf" if math.isinf(d) else f"{d:.1f}"


# ------------------------------------------------------------------------------------------- gate facts

def gate_facts(cell, trace, valid: torch.Tensor | None = None) -> dict:
    """Mean gate values of a traced LSTM / GRU layer, over steps, sequences (and units):

        LSTMCell  trace.preacts (T, B, 4H) = z = [z_i, z_f, z_g, z_o] (both biases in): f = sigmoid(z_f)
                  {"forget_gate": mean f, "forget_bias": mean b_f (b_f = (b_xh + b_hh)[H:2H]),
                   "forget_rest": mean (z_f - b_f), "forget_gate_units": (H,) mean f of each unit}
        GRUCell   trace.preacts (T, B, 3H) = [a_r, a_z, a_n]: z = sigmoid(a_z)   {"update_gate": mean z}
        others    {}

    valid (T, B) bool: the real steps (torch_models.valid_steps; padding excluded); None: all.

        >>> cell = LSTMCell(W_xh=torch.zeros(8, 1), W_hh=torch.zeros(8, 2), b_xh=torch.zeros(8),
        ...                 b_hh=torch.tensor([0., 0., 1., 1., 0., 0., 0., 0.]))
        >>> from rnnscope.core.unroll import unroll
        >>> f = gate_facts(cell, unroll(cell, torch.zeros(3, 2, 1)))
        >>> round(f["forget_gate"], 4), f["forget_bias"], f["forget_rest"]     # sigmoid(1)
        (0.7311, 1.0, 0.0)
    """
    if not isinstance(cell, (LSTMCell, GRUCell)):
        return {}
    H = cell.hidden_size
    G = 4 if isinstance(cell, LSTMCell) else 3
    z = trace.preacts
    if z.dim() != 3 or z.shape[-1] != G * H:
        raise InputError(f"trace: expected pre-activations (T, B, {G * H}) for {cell.kind}, got {tuple(z.shape)}")
    T, B = z.shape[0], z.shape[1]
    w = torch.ones(T, B, dtype=torch.float64) if valid is None else torch.as_tensor(valid).to(torch.float64)
    if tuple(w.shape) != (T, B):
        raise InputError(f"valid: expected a (T, B) = {(T, B)} mask of the real steps, got {tuple(w.shape)}")
    n = float(w.sum())
    if n == 0:
        return {}
    w = None if valid is None else w.unsqueeze(-1)  # (T, B, 1); None: every step counts
    a = z[..., H:2 * H].detach().to(torch.float64)  # z_f (LSTM) or a_z (GRU) (T, B, H)
    g = torch.sigmoid(a)  # f or z (T, B, H)
    units = (g if w is None else g * w).sum((0, 1)) / n  # (H,) mean over the real (t, b)
    if isinstance(cell, GRUCell):
        return {"update_gate": float(units.mean())}
    b = (cell.b_xh + cell.b_hh)[H:2 * H].detach().to(torch.float64)  # b_f (H,)
    rest = (a.sum() - n * b.sum() if w is None else ((a - b) * w).sum()) / (n * H)  # mean of W_xh x + W_hh h in z_f
    return {"forget_gate": float(units.mean()), "forget_bias": float(b.mean()), "forget_rest": float(rest),
            "forget_gate_units": units}


# ----------------------------------------------------------------------------------------------- clipping

def _history(history) -> torch.Tensor:
    """The finite values of a history of norms (None entries skipped), float64."""
    try:
        vals = [math.nan if v is None else float(v) for v in history]
    except (TypeError, ValueError):
        raise InputError(f"history: expected past gradient norms (numbers, one per training step), got "
                         f"{type(history).__name__}") from None
    h = torch.tensor(vals, dtype=torch.float64)
    return h[torch.isfinite(h)]


def clip_threshold(log10_norm: float | None, history=None, percentile: float = 10.0) -> tuple[float | None, str, int]:
    """(threshold, source, n): AutoClip's p-th percentile of a history with n >= 2 finite norms (source
    "history"); else this batch's norm 10^log10_norm (source "batch", n = 1); else (None, "", 0)."""
    p = float(percentile)
    if not 0.0 <= p <= 100.0:
        raise InputError(f"percentile: expected a number in [0, 100], got {percentile!r}")
    if history is not None:
        h = _history(history)
        if h.numel() >= 2:
            return float(torch.quantile(h, p / 100.0)), "history", int(h.numel())  # linear, as numpy.percentile
    if log10_norm is not None and math.isfinite(log10_norm):
        return _pow10(log10_norm), "batch", 1
    return None, "", 0


def _clip_line(log10_norm, history, percentile) -> str | None:
    thr, src, n = clip_threshold(log10_norm, history, percentile)
    if src == "history":
        now = "" if log10_norm is None else f"; this batch's ||dL/dtheta|| = {_n(_pow10(log10_norm), log10_norm)}"
        return (f"clipping: clip_grad_norm_(parameters, max_norm={thr:.3g}): the {percentile:g}-th percentile of "
                f"||dL/dtheta|| over the {n} recorded training steps (AutoClip, Seetharaman et al. 2020; p = 10 "
                f"their default){now}")
    if src == "batch":
        few = "" if history is None else f" (the history has {_history(history).numel()} finite norm(s), 2 needed)"
        lg = log10_norm
        return (f"clipping: ||dL/dtheta|| = {_n(thr, lg)} on this batch; clip_grad_norm_ with max_norm near it "
                f"({_n(0.5 * thr, lg + math.log10(0.5))} to {_n(10 * thr, lg + 1)}: Pascanu et al. 2013 take 0.5 to 10 "
                f"times the average norm over many updates) - one batch only{few}; pass the monitor's history for "
                f"AutoClip's percentile")
    return None


# ----------------------------------------------------------------------------------------------- lines

def _reasons(d: LayerDiagnosis, share: float | None, gate: float | None, name: str) -> list[str]:
    r = []
    if d.horizon_kind == "fallen":
        r.append(f"the credit falls by 10^3 at d = {d.horizon}")
    if share is not None and share < LOW_SHARE:
        r.append(f"carry share {100 * share:.0f}% < {100 * LOW_SHARE:.0f}% for k <= {d.last_loss_step // 2}")
    if gate is not None and gate < SMALL_FORGET:
        r.append(f"mean {name} = {gate:.3g} < {SMALL_FORGET}")
    return r


def _lstm_line(d: LayerDiagnosis, share: float | None, need: int) -> str | None:
    f = d.forget_gate
    why = _reasons(d, share, f, "f")
    if not why:
        return None
    r = 0.0 if d.forget_rest is None else d.forget_rest
    out = f"{d.name}: " + "; ".join(why)
    if f is not None:
        b = "" if d.forget_bias is None else f", mean b_f = b_ih_f + b_hh_f = {d.forget_bias:.3g}"
        out += (f". Forget gate now: mean f = {f:.3g}{b}; a unit with f keeps 1e-3 of its cell state for "
                f"d = ln(1e-3)/ln(f) = {_steps(memory_horizon(f))} steps, against {need} steps needed")
    f1 = _sig(1.0 + r)
    if f is None or f1 > f:
        out += (f". Set b_f = 1 (Jozefowicz et al. 2015): f = sigmoid(1 + r) = {f1:.3g} with r = {r:.3g} the mean "
                f"rest of z_f, horizon {_steps(memory_horizon(f1))} steps")
    else:
        out += f". b_f = 1 would not raise f (f = sigmoid(1 + r) = {f1:.3g}, r = {r:.3g})"
    if need > 2:
        lo, hi = _sig(r), _sig(math.log(need - 1) + r)
        out += (f"; or chrono initialisation (Tallec & Ollivier 2018): b_f = log u, u ~ U[1, T_max - 1], b_i = -b_f, "
                f"T_max = {need}: f from {lo:.3g} to {hi:.3g}, horizons {_steps(memory_horizon(lo))} to "
                f"{_steps(memory_horizon(hi))} steps")
    return out


def _gru_line(d: LayerDiagnosis, share: float | None, need: int) -> str | None:
    # vanishing credit, whatever the carry share: a low share says the carry z * h is barely used, a high one
    # that it is used but decays as z^d; a z nearer 1 lengthens it in both cases
    if d.horizon_kind != "fallen":
        return None
    z = d.update_gate
    out = f"{d.name}: " + "; ".join(_reasons(d, share, None, "z")) + (
        ". A positive update-gate bias b_z (the z rows H..2H of bias_ih / bias_hh; z near 1 copies h_{k-1} into h_k)")
    if z is None:
        return out
    out += (f": mean z = {z:.3g} now, a unit with z keeps 1e-3 of its state for d = ln(1e-3)/ln(z) = "
            f"{_steps(memory_horizon(z))} steps")
    if need > 1 and 0.0 < z < 1.0:
        zt = math.exp(math.log(LEVEL) / (need - 1))  # d(z*) = T - 1
        if zt > z:
            out += f"; z = {zt:.4g} (horizon {need - 1} steps) needs b_z about {_logit(zt) - _logit(z):+.3g} higher"
    return out


def _vanilla_line(d: LayerDiagnosis, T: int) -> str | None:
    if d.cell not in VANILLA or d.horizon_kind != "fallen" or d.horizon is None or d.horizon >= T - 1:
        return None
    s = "" if d.sigma_max is None else f"; sigma_max(W_hh) = {d.sigma_max:.3g} now"
    g = "" if not d.gamma else f", 1/gamma = {1 / d.gamma:.3g}"
    gv = " (vanishing guaranteed: sigma_max < 1/gamma)" if d.gamma and d.theory_verdict == "vanishing guaranteed" else ""
    to = "1" if not d.gamma or d.gamma == 1 else f"1/gamma = {1 / d.gamma:.3g} (an orthogonal W_hh scaled by it)"
    return (f"{d.name}: the credit falls by 10^3 at d = {d.horizon} < T - 1 = {T - 1}{s}{g}{gv}: use a gated cell "
            f"(LSTM, GRU) or an orthogonal / identity initialisation of W_hh (torch.nn.init.orthogonal_; the identity "
            f"with relu, IRNN, Le et al. 2015), which puts sigma_max at {to}")


def _exploding_line(d: LayerDiagnosis, T: int) -> str | None:
    what = _WHAT.get(d.rate_source, d.rate_source)
    sm = d.sigma_max
    if d.horizon_kind == "risen":
        out = (f"{d.name}: {what} grows by 10^3 within {d.horizon} steps: exploding gradients; clip them (the "
               f"clipping line)")
    elif d.theory_verdict == "exploding possible" and d.horizon_kind is None and d.gamma and sm is not None:
        return (f"{d.name}: sigma_max(W_hh) = {sm:.3g} >= 1/gamma = {1 / d.gamma:.3g}: the weights allow exploding "
                f"gradients (not seen over these {T} steps); clipping guards against it; sigma_max below 1/gamma "
                f"rules it out but forces vanishing (the edge of stability is sigma_max ~ 1/gamma)")
    else:
        return None
    if d.gamma and sm is not None:
        inv = 1 / d.gamma
        out += (f"; aim for sigma_max(W_hh) = {sm:.3g} below 1/gamma = {inv:.3g} (Pascanu et al. 2013: sigma_max < "
                f"1/gamma is sufficient for vanishing, sigma_max ~ 1/gamma the edge of stability): scale W_hh by "
                f"{inv / sm:.3g} or less")
    elif sm is not None:
        gates = d.sigma_max_gates or {}
        top = max(gates, key=gates.get) if gates else None
        out += (f"; sigma_max(W_hh) = {sm:.3g} (stacked gate blocks; no 1/gamma bound for a gated cell)"
                + ("" if top is None else f", largest block {top}: {gates[top]:.3g}"))
    return out


def advice(layers: tuple[LayerDiagnosis, ...], log10_norm: float | None, T: int, *, history=None,
           percentile: float = 10.0, needed: int | None = None) -> tuple[str, ...]:
    """The advice lines of a diagnosis of T steps (see the module docstring), from its layers, log10 ||dL/dtheta||
    of this batch (None: not computed) and history: past norms ||dL/dtheta|| (floats, one per training step,
    from GradientFlowMonitor) or None. percentile: AutoClip's p. needed: the distance the user needs (T_max
    of chrono initialisation, the horizon asked of a GRU), default T."""
    need = T if needed is None else int(needed)
    out = []
    for d in layers:
        what = _WHAT.get(d.rate_source, d.rate_source)
        if d.far_distance is not None:
            out.append(f"{d.name}: the gradient from {d.far_distance} steps back is below 1e-{FAR_DECADES:.0f} of the "
                       f"most recent ({what}); dependencies longer than that are out of reach of this model")
        share = d.far_carry_share()
        lines = [_exploding_line(d, T), _vanilla_line(d, T)]
        if d.cell == "lstm":
            lines.append(_lstm_line(d, share, need))
        elif d.cell == "gru":
            lines.append(_gru_line(d, share, need))
        if lines[1] is None and d.theory_verdict == "vanishing guaranteed" and d.gamma and d.sigma_max is not None:
            lines.append(f"{d.name}: sigma_max(W_hh) = {d.sigma_max:.3g} < 1/gamma = {1 / d.gamma:.3g}: vanishing is "
                         f"guaranteed by the weights; an orthogonal or identity W_hh, or a gated cell (LSTM, GRU), keeps "
                         f"long-range gradients alive")
        if share is not None:
            path = "the cell path c_k -> c_{k+1} (forget gate)" if d.cell == "lstm" else "the update-gate carry z * h"
            on = f", on {d.attribution_sequences} sequence(s)" if d.attribution_sequences else ""
            lines.append(f"{d.name}: {100 * share:.0f}% of dL/ds_k for k <= {d.last_loss_step // 2} comes through "
                         f"{path} (carry share{on}), {100 * (1 - share):.0f}% through h and W_hh or from the layer above")
        out += [x for x in lines if x is not None]
    clip = _clip_line(log10_norm, history, percentile)
    if clip is not None:
        out.append(clip)
    return tuple(out)
