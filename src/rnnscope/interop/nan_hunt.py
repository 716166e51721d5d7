"""NaN hunting: where a recurrent model's forward state or backward adjoint first becomes non-finite or blows up,
and which parameters' gradients are non-finite in the model's own dtype.

For every (call, layer, direction) of a recurrent submodule, in the direction's own time order (the reverse
direction's step k reads position T + 1 - k):

    forward    y_k^b = log10 ||s_k^b||   of the state s_k (the whole state, (h, c) for LSTM), k = 1..T, sequence b
    backward   y_k^b = log10 ||dL/dh_k^b||   the per-step adjoint (diagnose's profile; -inf where exactly zero)
    median     m = the median of the finite y_k^b of that (call, layer, direction) over every step and sequence
               (zero norms, y = -inf, are left out; for an even count the mean of the two middle values)
    flagged    y_k^b = nan ("nan"), y_k^b = +inf ("inf": for the forward, a state with an inf entry and no nan),
               or y_k^b > m + 6 ("above 1e6 x median": the norm exceeds 10^6 times the median norm); with a dtype
               given, an adjoint y_k^b > log10 finfo(dtype).max is "inf" too (it overflows that dtype)

    forward_blowup  the first flagged (call, layer, step), in the order of the forward pass: calls in call order,
                    the lowest layer first (a blow-up in layer l reaches layer l + 1 at the same step: the lowest
                    layer is the root cause), then the earliest step (the forward direction before the reverse
                    one at the same step), then the lowest batch index
    adjoint_blowup  the first flagged in the order of the backward pass: calls reversed, the top layer first,
                    k = T down to 1
    nonfinite_parameters  from the log10 norms ||dL/dtheta|| (exact, float64 log domain): the names with a nan
                    norm or a norm above finfo(dtype).max (what the model's own training sees as non-finite)

hunt(model, inputs, loss_fn) runs the model once in its own dtype (the dropout between stacked layers of an
nn.RNN / LSTM / GRU in train mode switched off for the run, and the modes restored), each recurrent call
recorded by a forward hook (its input x and h0) and re-run exactly under no_grad (torch_models.rerun; a
non-finite x or h0 run as it is, finite=False: tolerant_rerun); then, in the
order of the computation (the first finding wins):

    forward_blowup of the re-runs                                        where = "forward"
    L = loss_fn(output[, targets]) non-finite                            where = "loss"
    dL/dtheta by torch.autograd.grad in the model's dtype (.grad untouched): the names with a non-finite entry
                 (the `parameters` of every finding, when L is finite; () otherwise)
    dL/dh_k of every call by layer_flow.sweep_stack from dL/d(output), dL/dh_n (dL/dc_n) of that call (the
    total derivatives, autograd through the model's own graph; the upstream divided by its largest finite
    entry M, off = ln M, so that it cannot overflow the sweep), then adjoint_blowup   where = "backward"
    only parameters non-finite                                           where = "parameters"
    nothing found: None

Legend: T time, B batch, S state size, P size of h.

Example (a relu RNN whose state overflows float32 at step 4 of sequence 1: 2 x 3e38 > 3.4e38; h_k = k (2, 1)
before, so the median of the 15 finite norms is ||h_3|| = 3 sqrt 5, log10 = 0.827):
    >>> from rnnscope.interop.torch_models import rerun
    >>> rnn = torch.nn.RNN(1, 2, nonlinearity="relu", bias=False)
    >>> with torch.no_grad():
    ...     _ = rnn.weight_hh_l0.copy_(torch.eye(2)), rnn.weight_ih_l0.copy_(torch.tensor([[2.0], [1.0]]))
    >>> x = torch.ones(6, 3, 1)
    >>> x[3, 1] = 3e38
    >>> print(forward_blowup([("", rerun(rnn, x))]).message())
    forward state of the module layer 0 forward becomes inf at step 4 (position 4, sequence 1): log10 ||s_k|| = inf, median 0.827 (float32)
    >>> y = torch.zeros(2, 10)                             # a hand-built profile: a jump of 10^7 at k = 3
    >>> y[1, 2] = 7.0
    >>> adjoint_blowup([("", 0, "forward", y)]).what, adjoint_blowup([("", 0, "forward", y)]).step
    ('above 1e6 x median', 3)
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from ..core.errors import InputError
from ..core.results import jsonable
from .capture import recurrent_eval
from .layer_flow import sweep_stack
from .losses import apply_loss, as_targets, default_loss
from .torch_models import StackRun, module_kind, rerun

__all__ = ["NonFinite", "forward_blowup", "adjoint_blowup", "nonfinite_parameters", "hunt", "tolerant_rerun", "BLOWUP_DECADES"]

BLOWUP_DECADES = 6.0  # "exceeds 1e6 x its median"
ABOVE = "above 1e6 x median"


@dataclass(frozen=True)
class NonFinite:
    """Where a forward state, the loss, a backward adjoint or a parameter gradient first goes non-finite."""

    where: str  # "forward" (a state), "backward" (an adjoint dL/dh_k), "loss", "parameters"
    module: str = ""  # the recurrent submodule's path in a whole model ("" for a bare module, or none)
    layer: int | None = None
    direction: str | None = None  # "forward" | "reverse"
    step: int | None = None  # k = 1..T in the direction's own time order
    position: int | None = None  # 1..T in the input's order (the reverse direction: T + 1 - k)
    sequence: int | None = None  # the batch index (0-based) where it happens first
    what: str = "nan"  # "nan" | "inf" | "above 1e6 x median"
    log10_value: float | None = None  # log10 of the norm there (the loss: log10 |L|)
    log10_median: float | None = None  # log10 of the median norm of that (call, layer, direction)
    parameters: tuple[str, ...] = ()  # named parameters whose gradients are non-finite in the model's dtype
    dtype: str = ""  # the dtype in which it was found

    def message(self) -> str:
        """One line for a person naming where, what, the values and the parameters."""
        mod = self.module or "the module"
        grads = f"; non-finite gradients in {self.dtype}: {', '.join(self.parameters)}" if self.parameters else ""
        if self.where == "loss":
            return f"the loss is {self.what} ({self.dtype}) while every recurrent state is finite{grads}"
        if self.where == "parameters":
            return (f"the gradients of {', '.join(self.parameters)} are non-finite in {self.dtype} while the "
                    f"forward states, the loss and the per-step adjoints dL/dh_k are finite")
        verb = "exceeds 1e6 x its median" if self.what == ABOVE else f"becomes {self.what}"
        label = "forward state" if self.where == "forward" else "backward adjoint dL/dh_k"
        sym = "||s_k||" if self.where == "forward" else "||dL/dh_k||"
        med = "none" if self.log10_median is None else f"{self.log10_median:.3g}"
        return (f"{label} of {mod} layer {self.layer} {self.direction} {verb} at step {self.step} (position "
                f"{self.position}, sequence {self.sequence}): log10 {sym} = {_fmt(self.log10_value)}, median "
                f"{med} ({self.dtype}){grads}")

    def to_dict(self) -> dict:
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return jsonable({**fields, "message": self.message()})


def _fmt(v: float | None) -> str:
    return "none" if v is None else (str(v) if not math.isfinite(v) else f"{v:.3g}")


def _median(y: torch.Tensor) -> float | None:
    """The median of the finite entries of y (the mean of the two middle ones for an even count); None: none."""
    v = torch.sort(y[torch.isfinite(y)].reshape(-1).to(torch.float64)).values
    n = v.numel()
    return None if n == 0 else float(v[(n - 1) // 2] + v[n // 2]) / 2


def _flags(y: torch.Tensor, med: float | None, overflow: float | None = None) -> torch.Tensor:
    """(T, B) codes: 0 clean, 1 nan, 2 inf, 3 above 1e6 x median."""
    code = torch.zeros(y.shape, dtype=torch.int8)
    if med is not None:
        code[y > med + BLOWUP_DECADES] = 3
    if overflow is not None:
        code[y > overflow] = 2  # overflows the dtype
    code[torch.isposinf(y)] = 2
    code[torch.isnan(y)] = 1
    return code


_WHAT = {1: "nan", 2: "inf", 3: ABOVE}


def _state_log10_norms(states: torch.Tensor) -> torch.Tensor:
    """log10 ||s_k^b|| (T, B) of states (T, B, S), without overflow: nan where an entry is nan, +inf where one is
    inf, -inf where the state is exactly zero."""
    s = states.detach().to(torch.float64)
    m = s.abs().amax(-1)  # (T, B)
    safe = torch.where(torch.isfinite(m) & (m > 0), m, torch.ones_like(m))
    y = torch.log10(safe) + torch.log10(torch.linalg.vector_norm(s / safe.unsqueeze(-1), dim=-1))
    y = torch.where(m == 0, torch.full_like(y, float("-inf")), y)
    y = torch.where(torch.isinf(s).any(-1), torch.full_like(y, float("inf")), y)
    return torch.where(torch.isnan(s).any(-1), torch.full_like(y, float("nan")), y)


def forward_blowup(calls: list[tuple[str, StackRun]]) -> NonFinite | None:
    """The first (call, layer, step) where a re-run's state is non-finite or exceeds 1e6 x its median (see the
    module docstring); calls: (module name, StackRun) in call order. None: every state is clean."""
    for name, run in calls:
        for l in range(run.num_layers):
            best = None  # (step, direction index, sequence, code, y, median, T)
            for r in run.layer(l):
                y = _state_log10_norms(r.trace.states[1:])  # (T, B)
                med = _median(y)
                code = _flags(y, med)
                bad = torch.nonzero(code.any(1))  # the steps with a flag in some sequence
                if not bad.numel():
                    continue
                k = int(bad[0, 0])  # 0-based step
                b = int(torch.nonzero(code[k])[0, 0])
                cand = (k + 1, int(r.direction == "reverse"), b, int(code[k, b]), float(y[k, b]), med, y.shape[0],
                        r.direction, str(r.trace.states.dtype))
                if best is None or cand[:2] < best[:2]:
                    best = cand
            if best is not None:
                k, _, b, c, v, med, T, d, dt = best
                return NonFinite("forward", name, l, d, k, T + 1 - k if d == "reverse" else k, b, _WHAT[c], v, med,
                                 (), dt.removeprefix("torch."))
    return None


def adjoint_blowup(profiles: list[tuple], dtype: torch.dtype | None = None) -> NonFinite | None:
    """The first place, in the order of the backward pass, where log10 ||dL/dh_k|| is nan, +inf or above its
    median + 6 (see the module docstring). profiles: (module, layer, direction, log10_adjoint (B, T)) in call
    order, each (B, T) in the direction's own time order, -inf where the adjoint is exactly zero (never flagged).
    dtype: also flag values above log10 finfo(dtype).max ("inf": they overflow it). Consecutive entries of one
    module with increasing (layer, direction) form one call (a repeated (layer, direction) starts the module's
    next call). None: nothing flagged."""
    overflow = None if dtype is None else math.log10(torch.finfo(dtype).max)
    call, last, prev = -1, object(), (-1, -1)
    keyed = []
    for j, p in enumerate(profiles):
        if len(p) != 4:
            raise InputError(f"profiles: expected (module, layer, direction, log10_adjoint (B, T)) entries, got "
                             f"{len(p)} items in entry {j}")
        module, layer, direction, y = p
        y = torch.as_tensor(y, dtype=torch.float64)
        if y.dim() != 2:
            raise InputError(f"profiles: expected log10_adjoint of shape (B, T), got {tuple(y.shape)} in entry {j}")
        key = (int(layer), int(direction == "reverse"))
        if module != last or key <= prev:  # a new call: another module, or the same one called again
            call, last = call + 1, module
        prev = key
        keyed.append((call, module, int(layer), direction, y))
    best = None  # the backward order: (-call, -layer, -k, direction index)
    for call, module, layer, direction, y in keyed:
        med = _median(y)
        code = _flags(y, med, overflow).T  # (T, B)
        bad = torch.nonzero(code.any(1))
        if not bad.numel():
            continue
        k = int(bad[-1, 0])  # the last step: the first one the backward pass reaches
        b = int(torch.nonzero(code[k])[0, 0])
        key = (-call, -layer, -(k + 1), int(direction == "reverse"))
        if best is None or key < best[0]:
            T = y.shape[1]
            best = (key, NonFinite("backward", module, layer, direction, k + 1,
                                   T + 1 - (k + 1) if direction == "reverse" else k + 1, b, _WHAT[int(code[k, b])],
                                   float(y[b, k]), med, (), "" if dtype is None else str(dtype).removeprefix("torch.")))
    return None if best is None else best[1]


def nonfinite_parameters(named_log10_norms, dtype: torch.dtype) -> tuple[str, ...]:
    """The names whose log10 ||dL/dtheta|| is nan or above log10 finfo(dtype).max, in the order given.

    named_log10_norms: [(name, log10 norm)] (or a dict), the exact norms in the float64 log domain.

        >>> nonfinite_parameters([("w", 39.0), ("b", 3.0), ("c", float("nan")), ("z", float("-inf"))], torch.float32)
        ('w', 'c')
    """
    if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise InputError(f"dtype: expected a floating point torch.dtype, got {dtype!r}")
    top = math.log10(torch.finfo(dtype).max)
    items = named_log10_norms.items() if isinstance(named_log10_norms, dict) else named_log10_norms
    return tuple(n for n, v in items if math.isnan(float(v)) or float(v) > top)


# ------------------------------------------------------------------------------------------------- hunt

def tolerant_rerun(module, inputs, h0=None) -> StackRun:
    """torch_models.rerun in the module's dtype, NaN / Inf in the inputs or h0 run as they are (the step-by-step
    unroll for those, so that nothing is refused or skipped)."""
    x = torch.as_tensor(inputs)
    parts = () if h0 is None else tuple(h0) if isinstance(h0, (tuple, list)) else (h0,)
    finite = bool(torch.isfinite(x).all()) and all(bool(torch.isfinite(p).all()) for p in parts)
    return rerun(module, x, h0=h0, finite=finite, fused=None if finite else False)


@dataclass
class _Call:
    name: str
    run: StackRun
    outs: list  # the module's own return tensors: output, h_n (c_n), in the model's graph


def _as_list(output) -> list:
    out, hx = output[0], output[1]
    return [out] + (list(hx) if isinstance(hx, (tuple, list)) else [hx])


def _forward(model: nn.Module, args: tuple) -> tuple[object, list[_Call]]:
    """model(*args) with a recording hook on every nn.RNN / LSTM / GRU; each call re-run exactly (no_grad)."""
    calls: list[_Call] = []

    def hook(name):
        def f(mod, a, kw, output):
            x = a[0] if a else kw.get("input")
            hx = a[1] if len(a) > 1 else kw.get("hx")
            if isinstance(x, nn.utils.rnn.PackedSequence):
                raise InputError(f"{name or type(mod).__name__}: expected a padded tensor input, got a PackedSequence "
                                 f"(the NaN hunt does not unpack yet: pass the padded batch)")
            parts = () if hx is None else tuple(hx) if isinstance(hx, (tuple, list)) else (hx,)
            h0 = None if not parts else tuple(p.detach() for p in parts) if len(parts) > 1 else parts[0].detach()
            with torch.no_grad():
                run = tolerant_rerun(mod, x.detach(), h0=h0)
            calls.append(_Call(name, run, _as_list(output)))
        return f

    with recurrent_eval(model) as subs:  # the re-run has no dropout between layers
        handles = [m.register_forward_hook(hook(n), with_kwargs=True) for n, m in subs]
        try:
            with torch.enable_grad():
                output = model(*args)
        finally:
            for h in handles:
                h.remove()
    return output, calls


def _loss(model, output, loss_fn, targets, bare: bool) -> torch.Tensor:
    """L as diagnose makes it: loss_fn on the module's first return value (bare) or the model's output; a bare
    module without loss_fn: the sum of the last time-major output."""
    if loss_fn is None and bare:
        out = output[0]
        return default_loss(out if out.dim() == 2 or not getattr(model, "batch_first", False) else out.transpose(0, 1),
                            targets)
    y = output[0] if bare else output
    return apply_loss(loss_fn, y, as_targets(targets, y.dtype) if bare else targets)


def _sweep(run: StackRun, up: torch.Tensor, finals: dict | None = None) -> dict:
    """layer_flow.sweep_stack with the upstream on the scale of its largest finite entry M (up / M, off = ln M):
    a float32 upstream near finfo.max would overflow the sweep's norms otherwise; non-finite entries stay so."""
    fin = up.abs()[torch.isfinite(up)]
    M = float(fin.max()) if fin.numel() else 0.0
    if M > 0:
        return sweep_stack(run, up / M, math.log(M), finals=finals)[0]
    return sweep_stack(run, up, 0.0, finals=finals)[0]


def _profiles(calls: list[_Call], grads: list) -> list[tuple]:
    """(module, layer, direction, log10 ||dL/dh_k|| (B, T)) of every call, from the total derivatives of L with
    respect to its return values (output, h_n, c_n), by the log-domain sweep (layer_flow.sweep_stack)."""
    out = []
    for c, g in zip(calls, grads):
        run = c.run
        dt = run.output.dtype
        g = [torch.zeros_like(v) if gv is None else gv.detach() for v, gv in zip(c.outs, g)]
        gout = g[0]
        up = gout.unsqueeze(1) if run.unbatched else (gout.transpose(0, 1) if run.batch_first else gout)  # (T, B, dirs P)
        hs = [v.unsqueeze(1) if run.unbatched else v for v in g[1:]]  # (layers dirs, B, P) [, (layers dirs, B, H)]
        dirs = run.num_directions
        finals = {(r.layer, r.direction): torch.cat([v[r.layer * dirs + (r.direction == "reverse")] for v in hs],
                                                    -1).to(dt) for r in run.runs}
        res = _sweep(run, up.to(dt), finals)
        out += [(c.name, r.layer, r.direction, res[(r.layer, r.direction)]["adjoint_h"]) for r in run.runs]
    return out


def hunt(model, inputs, loss_fn: Callable | None = None, targets=None) -> NonFinite | None:
    """The first non-finite (or blown-up) forward state, loss, backward adjoint or parameter gradient of a
    recurrent model, in its own dtype (see the module docstring). Does not raise on non-finite values.

    model: nn.RNN / nn.LSTM / nn.GRU (L = loss_fn(output[, targets]) on its first return value, or the sum of
    the last time-major output without loss_fn), any nn.Module whose forward uses such submodules (loss_fn
    required, on whatever the model returns), or a bare nn.RNNCell / LSTMCell / GRUCell / rnnscope Cell (re-run
    only: the parameter gradients are not computed for those). inputs: a tensor or a tuple for model(*inputs).
    The parameters' .grad are not touched; the modes are restored. None: nothing non-finite or blown up.

    Example (a loss that is inf on finite outputs):
        >>> r = hunt(torch.nn.GRU(2, 4), torch.randn(5, 3, 2), lambda out: out.sum() + float("inf"))
        >>> r.where, r.what, r.module
        ('loss', 'inf', '')
    """
    args = inputs if isinstance(inputs, tuple) else (inputs,)
    if not isinstance(model, nn.Module) or (not isinstance(model, nn.RNNBase) and _is_cell(model)):
        return _hunt_cell(model, args[0], loss_fn, targets)
    bare = isinstance(model, nn.RNNBase)
    output, calls = _forward(model, args)
    if not calls:
        raise InputError(f"model: expected an nn.RNN / nn.LSTM / nn.GRU, or an nn.Module whose forward calls such "
                         f"submodules, got {type(model).__name__} calling none")
    dt = str(calls[0].run.output.dtype).removeprefix("torch.")
    found = forward_blowup([(c.name, c.run) for c in calls])
    try:
        L = _loss(model, output, loss_fn, targets, bare)
    except InputError:
        if found is None or found.what == ABOVE:
            raise
        return found  # a loss_fn that fails on the non-finite output: the forward finding stands
    Lv = float(L.detach())
    if not math.isfinite(Lv):
        if found is not None:
            return found
        return NonFinite("loss", what="nan" if math.isnan(Lv) else "inf", log10_value=math.log10(abs(Lv))
                         if not math.isnan(Lv) else Lv, dtype=dt)
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    outs = [(i, j, v) for i, c in enumerate(calls) for j, v in enumerate(c.outs) if v.requires_grad]
    wrt = [p for _, p in named] + [v for _, _, v in outs]
    got = torch.autograd.grad(L, wrt, allow_unused=True) if wrt and L.requires_grad else [None] * len(wrt)
    bad = tuple(n for (n, _), g in zip(named, got[:len(named)]) if g is not None and not bool(torch.isfinite(g).all()))
    grads = [[None] * len(c.outs) for c in calls]
    for (i, j, _), g in zip(outs, got[len(named):]):
        grads[i][j] = g
    if found is not None:
        return dataclasses.replace(found, parameters=bad)
    back = adjoint_blowup(_profiles(calls, grads), calls[0].run.output.dtype)
    if back is not None:
        return dataclasses.replace(back, parameters=bad, dtype=dt)
    return NonFinite("parameters", parameters=bad, dtype=dt) if bad else None


def _is_cell(model) -> bool:
    try:
        module_kind(model)
    except InputError:
        return False
    return True


def _hunt_cell(model, inputs, loss_fn, targets) -> NonFinite | None:
    """hunt for a bare cell (nn.*Cell, an rnnscope Cell): the re-run's states, the loss on its output, its adjoints."""
    if loss_fn is None and targets is not None:
        raise InputError("targets: expected a loss_fn to compare them with, got targets without a loss_fn")
    run = tolerant_rerun(model, inputs)
    found = forward_blowup([("", run)])
    y = run.output.detach().requires_grad_(True)
    with torch.enable_grad():
        out = run.to_module_layout(y)
        try:
            L = _loss(model, (out,), loss_fn, targets, True) if loss_fn is not None else y[-1].sum()
        except InputError:
            if found is None or found.what == ABOVE:
                raise
            return found
        Lv = float(L.detach())
        dt = str(y.dtype).removeprefix("torch.")
        if not math.isfinite(Lv):
            return found or NonFinite("loss", what="nan" if math.isnan(Lv) else "inf",
                                      log10_value=Lv if math.isnan(Lv) else math.inf, dtype=dt)
        if found is not None:
            return found
        (up,) = torch.autograd.grad(L, y, allow_unused=True) if L.requires_grad else (None,)
    up = torch.zeros_like(y) if up is None else up
    res = _sweep(run, up)
    back = adjoint_blowup([("", r.layer, r.direction, res[(r.layer, r.direction)]["adjoint_h"]) for r in run.runs],
                          y.dtype)
    return None if back is None else dataclasses.replace(back, dtype=dt)
