"""Diagnose a PyTorch recurrent model: exact per-step gradient flow of every layer and direction, a verdict, advice.

    d = diagnose(model, inputs, loss_fn=None, *, targets=None)

model: nn.RNN (tanh, relu), nn.LSTM (proj_size too), nn.GRU, any num_layers, bidirectional, batch_first,
with or without biases; nn.RNNCell / LSTMCell / GRUCell (a loop over the cell); an rnnscope Cell
(FunctionCell: any user step function). The sequence is re-run step by step from the module's own
weights (torch_models.rerun: torch's fused kernel for h, outputs equal the module's to rounding), then for every layer l and
direction:

    adjoint profile        log10 ||dL/dh_k||, log10 ||dL/dc_k|| (LSTM), k = 1..T: the total derivative of
                           the loss with respect to the state at step k, through every later step and, for a
                           stack, through every upper layer that reads h_k (exact; = autograd's h_k.grad and
                           c_k.grad: dL/dc_k includes the path c_k -> h_k = o_k tanh(c_k) of the same step)
    Jacobian products      log10 ||ds_T/ds_k||_2 on the full state ((h, c) for LSTM) and, for LSTM, its
                           h -> h and c -> c blocks ||dh_T/dh_k||_2, ||dc_T/dc_k||_2 (flow.jacobian_profile)
    gate attribution       carry_share(k) (LSTM and GRU), defined below
    the weights' promise   sigma_max(W_hh) against 1/gamma, rho (theory.weight_facts); gate blocks' sigma_max
    measured               the fitted rate (log10 per step), the memory horizon (10^3), a plain verdict
    gradient norm          ||dL/dtheta|| of the module's parameters, exactly (the norm clip_grad_norm_ sees)

The loss: L = loss_fn(output) or loss_fn(output, targets), output being the module's first return value in
its own layout ((B, T, dirs P) with batch_first, (T, P) for unbatched input); without loss_fn, L = the sum of
the entries of the last top-layer output (output[T] time-major: for a bidirectional top layer that is the
forward h_T and the reverse direction's first step).

How it is computed (reusing the engine, no second copy of its math):
    upstream u = dL/d(output) by autograd on the re-run output (T, B, dirs P)
    for l = top .. 0, for each direction:
        direct_k = u_k on the h part of s_k (in the direction's own time order)
        g_k = dL/ds_k = bptt.adjoints(cell, trace, direct)        the vector-Jacobian sweep, log domain
                  (LSTM: through LSTMCell.vjp_gates, keeping dL/dz_k and ||dL/dc_k|| of every step)
        dL/dx_k = g_k ds_k/dx_k (the layer below's upstream): LSTM dL/dz_k W_xh, one product over all k;
        other cells and dL/dtheta = sum_k g_k d+s_k/dtheta (the immediate partials): one batched backward
        through the layer's steps (all k at once)
    Jacobian products: flow.jacobian_profile on the first `jacobian_sequences` sequences (O(T S^3) each).
Scales: the sweep is in the log domain; the batched backward and the upstream carry one common log-scale
per layer (exact while the batch's gradients lie within the float range of each other).

Gate attribution. Every step has a carry term that copies the previous state through a gate: LSTM f_k * c_{k-1}
(the cell path c_{k-1} -> c_k through the forget gate; c_{k-1} enters step k nowhere else), GRU z_k * h_{k-1}
(the update gate's copy). Sum the adjoint over paths: g_k = dL/ds_k = a_k + b_k, where b_k sums the paths that
never go through a carry term (the adjoint of the same network with the carry term's state argument detached at
every step of this layer: c_t = f c_{t-1}.detach() + i g, h_t = (1-z) n + z h_{t-1}.detach(); Cell.vjp_cut) and
a_k = g_k - b_k the paths that take the cell path / update-gate carry at least once. Then

    carry_share(k) = ||a_k|| / (||a_k|| + ||b_k||)       in [0, 1]; NaN where dL/ds_k = 0

near 1: the gradient from step k reaches the loss through the cell path; near 0: through h (W_hh) only.

Legend: T time, B batch, D input size, H hidden (cell) size, P size of h (H, or proj_size), S state size.

Example:
    >>> lstm = torch.nn.LSTM(4, 16, num_layers=2)
    >>> d = diagnose(lstm, torch.randn(50, 8, 4))
    >>> [(l.layer, l.direction) for l in d.layers], len(d.layers[0].log10_adjoint_h)
    ([(0, 'forward'), (1, 'forward')], 50)
    >>> print(d)                                                                 # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Callable

import torch

from ..gradients.bptt import Adjoints, adjoints
from ..core.cells import Cell, ElmanCell, GRUCell, LSTMCell, PalCell, ProjLSTMCell
from ..core.errors import InputError
from ..gradients.flow import jacobian_profile
from ..core.results import jsonable
from ..gradients.bounds import fitted_rate, horizon, weight_facts
from .torch_models import LayerRun, StackRun, module_kind, rerun
from ..core.unroll import Trace

__all__ = ["Diagnosis", "LayerDiagnosis", "diagnose", "target_loss", "LOSSES", "FAR_DECADES"]

LOSSES = ("mse", "ce")

FAR_DECADES = 6.0  # "the gradient from d steps back is below 1e-6 of the most recent"
_LN10 = math.log(10.0)
_ROWS_PER_PASS = 2**21  # numbers per (rows x pre-activation width) chunk of the batched backward: bounded memory


# ----------------------------------------------------------------------------------------------- results

@dataclass(frozen=True)
class LayerDiagnosis:
    """One (layer, direction). Lists run over k = 1..T in the direction's own time order: element k-1 is step k
    (the reverse direction's step k reads position T + 1 - k). Per-sequence tensors are (B, T) ((J, T) for the
    Jacobian products, J = jacobian_sequences); the properties are their batch means of the logs."""

    layer: int
    direction: str
    cell: str  # elman | pal | lstm | gru | function
    state: str  # "h" or "(h, c)"
    h_size: int
    state_size: int
    per_sequence_adjoint_h: torch.Tensor  # (B, T) log10 ||dL/dh_k||
    per_sequence_adjoint_c: torch.Tensor | None  # (B, T) log10 ||dL/dc_k|| (LSTM; LSTMCell.cell_adjoint)
    per_sequence_spectral: torch.Tensor | None  # (J, T) log10 ||ds_T/ds_k||_2
    per_sequence_spectral_hh: torch.Tensor | None  # (J, T) log10 ||dh_T/dh_k||_2 (LSTM)
    per_sequence_spectral_cc: torch.Tensor | None  # (J, T) log10 ||dc_T/dc_k||_2 (LSTM)
    per_sequence_carry_share: torch.Tensor | None  # (B, T) carry_share(k) (LSTM, GRU)
    log10_gradient_norm: float | None  # log10 ||dL/dtheta|| of this layer-direction's parameters
    sigma_max: float | None  # of W_hh (stacked gate blocks for LSTM / GRU)
    sigma_max_gates: dict | None  # gate name -> sigma_max of its W_hh block (LSTM i f g o, GRU r z n)
    gamma: float | None  # sup |phi'| (vanilla cells)
    spectral_radius: float | None
    theory_verdict: str
    note: str
    rate_per_step: float | None  # log10 per step, tail fit of the primary profile
    horizon: int | None  # first distance where the primary profile has moved by 10^3
    horizon_kind: str | None  # fallen | risen
    far_distance: int | None  # first distance where the primary profile is below 10^-6 of its value at d = 0
    last_loss_step: int  # the last step k with a direct loss term on h_k (later adjoints are exactly 0)
    rate_source: str  # "spectral" (||ds_T/ds_k||_2) or "adjoint" (||dL/dh_k||)
    verdict: str

    @staticmethod
    def _mean(x: torch.Tensor | None) -> torch.Tensor | None:
        return None if x is None else x.mean(0)

    @property
    def log10_adjoint_h(self) -> torch.Tensor:
        return self.per_sequence_adjoint_h.mean(0)

    @property
    def log10_adjoint_c(self) -> torch.Tensor | None:
        return self._mean(self.per_sequence_adjoint_c)

    @property
    def log10_spectral(self) -> torch.Tensor | None:
        return self._mean(self.per_sequence_spectral)

    @property
    def log10_spectral_hh(self) -> torch.Tensor | None:
        return self._mean(self.per_sequence_spectral_hh)

    @property
    def log10_spectral_cc(self) -> torch.Tensor | None:
        return self._mean(self.per_sequence_spectral_cc)

    @property
    def carry_share(self) -> torch.Tensor | None:
        """Batch mean of carry_share(k) over the sequences where it is defined."""
        s = self.per_sequence_carry_share
        return None if s is None else torch.nanmean(s, 0)

    @property
    def gradient_norm(self) -> float | None:
        return None if self.log10_gradient_norm is None else 10.0 ** self.log10_gradient_norm

    def far_carry_share(self) -> float | None:
        """Mean carry_share over the long-range half k <= t/2, t = last_loss_step (None without attribution,
        or when t < 4: too short to have a long range)."""
        s = self.carry_share
        t = self.last_loss_step
        if s is None or t < 4:
            return None
        far = s[: t // 2]
        far = far[~far.isnan()]
        return float(far.mean()) if far.numel() else None

    @property
    def name(self) -> str:
        return f"layer {self.layer} {self.direction}"

    def to_dict(self) -> dict:
        return jsonable({
            "layer": self.layer, "direction": self.direction, "cell": self.cell, "state": self.state,
            "h_size": self.h_size, "state_size": self.state_size,
            "log10_adjoint_h": self.log10_adjoint_h, "log10_adjoint_c": self.log10_adjoint_c,
            "log10_spectral": self.log10_spectral, "log10_spectral_hh": self.log10_spectral_hh,
            "log10_spectral_cc": self.log10_spectral_cc, "carry_share": self.carry_share,
            "gradient_norm": self.gradient_norm, "log10_gradient_norm": self.log10_gradient_norm,
            "sigma_max": self.sigma_max, "sigma_max_gates": self.sigma_max_gates, "gamma": self.gamma,
            "inverse_gamma": None if not self.gamma else 1.0 / self.gamma, "spectral_radius": self.spectral_radius,
            "theory_verdict": self.theory_verdict, "note": self.note, "rate_per_step": self.rate_per_step,
            "rate_source": self.rate_source, "horizon": self.horizon, "horizon_kind": self.horizon_kind,
            "far_distance": self.far_distance, "last_loss_step": self.last_loss_step,
            "far_carry_share": self.far_carry_share(), "verdict": self.verdict,
        })


@dataclass(frozen=True)
class Diagnosis:
    """The result of `diagnose`: one LayerDiagnosis per (layer, direction), the loss, the gradient norm, advice."""

    model: str  # module kind (rnn_tanh, lstm, gru, lstm_cell, cell, ...)
    T: int
    batch: int
    num_layers: int
    num_directions: int
    loss: float
    loss_kind: str  # "sum of the last output" or "loss_fn"
    layers: tuple[LayerDiagnosis, ...]
    log10_gradient_norm: float | None  # log10 ||dL/dtheta|| over all the module's parameters
    jacobian_sequences: int  # sequences in the Jacobian-product profile (0: not computed)
    dtype: str
    advice: tuple[str, ...]
    seconds: float

    @property
    def gradient_norm(self) -> float | None:
        return None if self.log10_gradient_norm is None else 10.0 ** self.log10_gradient_norm

    def layer(self, layer: int, direction: str = "forward") -> LayerDiagnosis:
        for d in self.layers:
            if d.layer == layer and d.direction == direction:
                return d
        raise InputError(f"layer: expected one of {[(d.layer, d.direction) for d in self.layers]}, got {(layer, direction)}")

    def to_dict(self) -> dict:
        return jsonable({
            "model": self.model, "T": self.T, "batch": self.batch, "num_layers": self.num_layers,
            "num_directions": self.num_directions, "loss": self.loss, "loss_kind": self.loss_kind,
            "gradient_norm": self.gradient_norm, "log10_gradient_norm": self.log10_gradient_norm,
            "jacobian_sequences": self.jacobian_sequences, "dtype": self.dtype,
            "layers": [d.to_dict() for d in self.layers], "advice": list(self.advice), "seconds": self.seconds,
        })

    def summary(self) -> str:
        """A plain-text report: one block per (layer, direction), then the advice."""
        lines = [f"rnnscope diagnose: {self.model}, {self.num_layers} layer(s) x {self.num_directions} direction(s), "
                 f"T = {self.T}, B = {self.batch}, {self.dtype}; loss = {self.loss:.6g} ({self.loss_kind})"]
        if self.gradient_norm is not None:
            lines.append(f"||dL/dtheta|| = {self.gradient_norm:.4g} (all the module's parameters)")
        for d in self.layers:
            lines.append(f"{d.name} ({d.cell}, state {d.state}): {d.verdict}")
            facts = []
            if d.sigma_max is not None:
                facts.append(f"sigma_max(W_hh) = {d.sigma_max:.4g}")
            if d.gamma:
                facts.append(f"1/gamma = {1 / d.gamma:.4g}")
            facts.append(f"weights: {d.theory_verdict}")
            lines.append("    " + ", ".join(facts))
            a = d.log10_adjoint_h
            lines.append(f"    log10 ||dL/dh_k||: k = 1: {_f(a[0])}, k = T: {_f(a[-1])}"
                         + ("" if d.log10_spectral is None else
                            f"; log10 ||ds_T/ds_k||_2 at k = 1: {_f(d.log10_spectral[0])}"))
            if d.carry_share is not None:
                lines.append(f"    carry share (k = 1): {_f(d.carry_share[0], '.3f')}")
        lines += [f"advice: {a}" for a in self.advice]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def plot(self, path=None):
        """One figure for all layers: a (layer, k) heatmap of log10 ||dL/dh_k|| and the profiles (plots.plot_diagnosis)."""
        from ..core.plots import plot_diagnosis
        return plot_diagnosis(self, path)


def _f(v, spec: str = ".3f") -> str:
    v = float(v)
    return format(v, spec) if math.isfinite(v) else str(v)


# ------------------------------------------------------------------------------------------- computation

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
    """bptt.adjoints for an LSTM (ProjLSTMCell too) that also keeps what each product passes through:

        g_t = direct_t,   g_{k-1} = g_k ds_k/ds_{k-1} + direct_{k-1}      (LSTMCell.vjp_gates, log-polar)

    direct (>= t, B, P): the explicit dL/dh_k (the loss reads h only; its c part is zero).
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
    return (log_scale.to(torch.float64) + torch.log(torch.linalg.vector_norm(unit[..., part], dim=-1).to(torch.float64))) / _LN10


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


def _first_far(log10: torch.Tensor, decades: float = FAR_DECADES) -> int | None:
    """The first distance d = T - k where log10 (element k-1) is below its value at d = 0 by `decades`."""
    y = log10.flip(0)
    base = float(y[0])
    if not math.isfinite(base):
        return None
    for d in range(1, y.shape[0]):
        v = float(y[d])
        if v <= base - decades or (math.isinf(v) and v < 0):
            return d
    return None


def _verdict(src: str, rate: float | None, h: int | None, kind: str | None, T: int) -> str:
    what = "||ds_T/ds_k||_2" if src == "spectral" else "||dL/dh_k||"
    r = "" if rate is None else f" ({rate:+.3f} decades per step)"
    if kind == "fallen":
        return f"vanishing: {what} falls by 10^3 within {h} steps{r}"
    if kind == "risen":
        return f"exploding: {what} rises by 10^3 within {h} steps{r}"
    if rate is None:
        return f"too short to tell: {what} stays within 10^3 over {T} steps"
    return f"stable over {T} steps: {what} stays within 10^3{r}"


_GATES = {"lstm": "ifgo", "gru": "rzn"}


def _gate_sigmas(cell: Cell) -> dict | None:
    names = _GATES.get(cell.kind)
    if names is None:
        return None
    W = cell.W_hh.detach().to(torch.float64)
    H = W.shape[0] // len(names)
    return {n: float(torch.linalg.svdvals(W[i * H:(i + 1) * H])[0]) for i, n in enumerate(names)}


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
        >>> float(loss(torch.zeros(5, 2, 3))) == math.log(3)
        True
    """
    import torch.nn.functional as F

    if kind not in LOSSES:
        raise InputError(f"loss: expected one of {', '.join(LOSSES)}, got {kind!r}")
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


def _adjoint_layer(run: LayerRun, up: torch.Tensor, off: float, need_x: bool, attribution: bool,
                   gradient_norm: bool) -> dict:
    """The adjoints of one (layer, direction) given the upstream dL/dh (T, B, P) (times exp(off)), in position order."""
    cell, tr = run.cell, run.trace
    T, B = tr.T, tr.B
    P, S = cell.h_size, cell.state_size
    f64 = torch.float64
    if run.direction == "reverse":
        up = up.flip(0)  # the direction's own time order
    lstm = isinstance(cell, LSTMCell)
    direct = up  # (T, B, P): the loss reads h only; adjoints takes the h part of dL/ds_k
    nz = torch.nonzero((up.reshape(T, -1) != 0).any(1))
    t_last = int(nz[-1]) + 1 if nz.numel() else 0  # the last step with a direct term: later adjoints are exactly 0
    log_scale = torch.full((T + 1, B), float("-inf"), dtype=f64)
    unit = None
    share = torch.full((B, T), float("nan"), dtype=f64) if attribution and cell.has_carry else None
    nc = None
    out = {"gx": None, "m": 0.0, "sq": 0.0 if gradient_norm and _param_fields(cell, run.bias) else None}
    if t_last:
        if lstm:  # the same sweep, keeping dL/dz_k for dL/dx_k below and ||dL/dc_k||
            adj, Z, nc = _lstm_sweep(cell, tr, direct, t_last)
        else:
            adj, Z = adjoints(cell, tr, direct[:t_last], t=t_last), None  # g_k = dL/ds_k, k = 0..t_last, log-polar
        log_scale[:t_last + 1] = adj.log_scale.to(f64) + off
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
        ac = ((log_scale[1:] + lc) / _LN10).T
    out.update(adjoint_h=ah, adjoint_c=ac, share=share, t_last=t_last)
    return out


def diagnose(model, inputs, loss_fn: Callable | None = None, *, targets=None, jacobian: bool = True,
             jacobian_sequences: int | None = 4, attribution: bool = True, gradient_norm: bool = True,
             dtype: torch.dtype | None = None) -> Diagnosis:
    """Exact per-step gradient flow of every layer and direction of a recurrent model (see the module docstring).

    inputs      (T, D) unbatched, (T, B, D), or (B, T, D) when the module is batch_first; tensor or numpy
    loss_fn     L = loss_fn(output[, targets]) on the module's output in its own layout; None: sum of output[T]
    jacobian    compute log10 ||ds_T/ds_k||_2 (and LSTM blocks) on the first `jacobian_sequences` sequences
                (None: all); O(T S^3) per sequence, the costly part at large S. False: adjoints only, O(T B S^2)
    attribution carry_share(k) for LSTM / GRU (one more adjoint sweep)
    gradient_norm  ||dL/dtheta|| (one batched backward through each layer's steps)
    dtype       of the analysis; default the module's own (the gradient its training sees)

    Cost without the Jacobian products: about one forward and two backward passes of the module.

    Example:
        >>> gru = torch.nn.GRU(2, 8, batch_first=True)
        >>> d = diagnose(gru, torch.randn(4, 30, 2), lambda out: out[:, -1].pow(2).sum())
        >>> d.layers[0].verdict                                   # doctest: +SKIP
        'vanishing: ||ds_T/ds_k||_2 falls by 10^3 within 21 steps (-0.151 decades per step)'
    """
    start = time.perf_counter()
    kind = module_kind(model)
    if jacobian_sequences is not None and (not isinstance(jacobian_sequences, int) or isinstance(jacobian_sequences, bool)
                                           or jacobian_sequences < 1):
        raise InputError(f"jacobian_sequences: expected a positive integer or None, got {jacobian_sequences!r}")
    run = rerun(model, inputs, dtype=dtype)
    bad = ~torch.isfinite(run.output.reshape(run.output.shape[0], -1)).all(1)
    if bool(bad.any()):
        raise InputError(f"model/inputs: expected a forward pass with finite states, got inf or NaN at step "
                         f"{int(torch.nonzero(bad)[0]) + 1} (the model overflows {run.output.dtype})")
    loss, up, loss_kind = _loss_direct(run, loss_fn, targets)
    T, B = run.output.shape[0], run.output.shape[1]
    off = 0.0  # the upstream is exp(off) * up
    res: dict[tuple[int, str], dict] = {}
    for l in range(run.num_layers - 1, -1, -1):
        layer = run.layer(l)
        parts = []
        for r in layer:
            P = r.cell.h_size
            d = 0 if r.direction == "forward" else 1
            o = _adjoint_layer(r, up[:, :, d * P:(d + 1) * P], off, l > 0, attribution, gradient_norm)
            res[(l, r.direction)] = o
            if o["gx"] is not None:
                parts.append((o["gx"], o["m"]))
        if l > 0:  # the layer below's upstream: the sum over this layer's directions, on one common scale
            if parts:
                M = max(m for _, m in parts)
                up = sum(gx * math.exp(m - M) for gx, m in parts)
                off = M
            else:
                D = layer[0].trace.inputs.shape[2]
                up, off = torch.zeros(T, B, D, dtype=run.output.dtype), 0.0
    layers = []
    nj = 0
    for r in run.runs:
        o = res[(r.layer, r.direction)]
        cell, tr = r.cell, r.trace
        P, S = cell.h_size, cell.state_size
        spec = hh = cc = None
        if jacobian:
            nj = B if jacobian_sequences is None else min(B, jacobian_sequences)
            sub = Trace(tr.states[:, :nj], tr.preacts[:, :nj], tr.inputs[:, :nj])
            blocks = [(slice(0, P), slice(0, P)), (slice(P, S), slice(P, S))] if S != P else None
            jp = jacobian_profile(cell, sub, blocks=blocks)
            spec = jp.log10_spectral
            if blocks:
                hh, cc = jp.log10_blocks[:, 0], jp.log10_blocks[:, 1]
        facts = weight_facts(cell)
        if spec is not None:
            primary, src = spec.mean(0), "spectral"
        else:
            primary, src = o["adjoint_h"].mean(0)[:max(o["t_last"], 1)], "adjoint"
        rate = fitted_rate(primary)
        hz, hk = horizon(primary)
        far = _first_far(primary)
        layers.append(LayerDiagnosis(
            layer=r.layer, direction=r.direction, cell=cell.kind, state=cell.state_label, h_size=P, state_size=S,
            per_sequence_adjoint_h=o["adjoint_h"], per_sequence_adjoint_c=o["adjoint_c"],
            per_sequence_spectral=spec, per_sequence_spectral_hh=hh, per_sequence_spectral_cc=cc,
            per_sequence_carry_share=o["share"],
            log10_gradient_norm=None if o["sq"] is None else o["sq"] / _LN10,
            sigma_max=facts.sigma_max, sigma_max_gates=_gate_sigmas(cell), gamma=facts.gamma,
            spectral_radius=facts.spectral_radius, theory_verdict=facts.verdict, note=facts.note,
            rate_per_step=rate, horizon=hz, horizon_kind=hk, far_distance=far, last_loss_step=o["t_last"], rate_source=src,
            verdict=_verdict(src, rate, hz, hk, primary.shape[0])))
    lg = [d.log10_gradient_norm for d in layers if d.log10_gradient_norm is not None]
    total = None
    if lg and len(lg) == len(layers):
        ln = torch.tensor([v * _LN10 for v in lg], dtype=torch.float64)
        total = float(0.5 * torch.logsumexp(2 * ln, 0)) / _LN10  # log10 sqrt(sum of squares)
    layers = tuple(layers)
    return Diagnosis(model=kind, T=T, batch=B, num_layers=run.num_layers, num_directions=run.num_directions,
                     loss=loss, loss_kind=loss_kind, layers=layers, log10_gradient_norm=total,
                     jacobian_sequences=nj, dtype=str(run.output.dtype).removeprefix("torch."),
                     advice=_advice(layers, total, T), seconds=time.perf_counter() - start)


def _advice(layers: tuple[LayerDiagnosis, ...], log10_norm: float | None, T: int) -> tuple[str, ...]:
    out = []
    for d in layers:
        what = "||ds_T/ds_k||_2" if d.rate_source == "spectral" else "||dL/dh_k||"
        if d.far_distance is not None:
            out.append(f"{d.name}: the gradient from {d.far_distance} steps back is below 1e-{FAR_DECADES:.0f} of the "
                       f"most recent ({what}); dependencies longer than that are out of reach of this model")
        elif d.horizon_kind == "risen":
            out.append(f"{d.name}: {what} grows by 10^3 within {d.horizon} steps: exploding gradients; clip them")
    if any(d.horizon_kind == "risen" for d in layers) or log10_norm is not None:
        if log10_norm is not None:
            n = 10.0 ** log10_norm
            out.append(f"clipping: ||dL/dtheta|| = {n:.3g} on this batch; for clip_grad_norm_ start with a threshold "
                       f"near it ({0.5 * n:.3g} to {10 * n:.3g}: Pascanu et al. 2013 take 0.5 to 10 times the average "
                       f"norm over many updates; GradientFlowMonitor records it during training)")
    for d in layers:
        if d.theory_verdict == "vanishing guaranteed" and d.gamma:
            out.append(f"{d.name}: sigma_max(W_hh) = {d.sigma_max:.3g} < 1/gamma = {1 / d.gamma:.3g}: vanishing is "
                       f"guaranteed by the weights; an orthogonal or identity W_hh, or a gated cell (LSTM, GRU), keeps "
                       f"long-range gradients alive")
        s = d.far_carry_share()
        if s is not None:
            path = "the cell path c_k -> c_{k+1} (forget gate)" if d.cell == "lstm" else "the update-gate carry z * h"
            line = (f"{d.name}: {100 * s:.0f}% of dL/ds_k for k <= {d.last_loss_step // 2} comes through {path} "
                    f"(carry share), {100 * (1 - s):.0f}% through h and W_hh or from the layer above")
            if s < 0.5 and d.horizon_kind == "fallen":
                line += ("; for longer memory try " + ("a forget-gate bias of 1 or more" if d.cell == "lstm"
                                                       else "a larger update-gate bias"))
            out.append(line)
    return tuple(out)
