"""Remedies for exploding and vanishing gradients, each exactly as its source states it.

Clipping (Pascanu, Mikolov & Bengio 2013, Algorithm 1, and their code, trainingRNNs/RNN.py):

    g = (dE/dtheta_1, ..., dE/dtheta_P)          all parameters together
    ||g|| >= threshold  =>  g <- threshold g / ||g||                              clip_grad_norm
    ||g|| NaN, Inf, < 0 or > 1e10  =>  dE/dW_hh <- 0.02 W_hh, every other gradient <- 0   (their fallback)
    g_i <- min(max(g_i, -c), c)  elementwise                                      clip_grad_value
    threshold_t = factor * m_{t-1},  m = EMA of past (clipped) norms                clip_grad_adaptive

Regularizer (Pascanu et al. 2013, eq. 9, as their code computes it):

    Omega = sum_k ( ||dE/dh_{k+1} dh_{k+1}/dh_k||^2 / ||dE/dh_{k+1}||^2 - 1 )^2

differentiated only through the immediate dependence of dh_{k+1}/dh_k on W_hh (the states and the
adjoints dE/dh_{k+1} held constant); see `pascanu_regularizer`.

Initialisations (Pascanu's code for "sigmoid", "basic-tanh", "smart-tanh"; IRNN; orthogonal): `init_rnn`.

Legend: T time, B batch, S (= H) state size, D input size, G gate blocks (1 vanilla, 3 GRU, 4 LSTM).

Example:
    >>> model = torch.nn.RNN(2, 8, batch_first=True)
    >>> out, _ = model(torch.randn(4, 10, 2))
    >>> out.square().sum().backward()
    >>> r = clip_grad_norm(model.parameters(), 1.0, W_hh=model.weight_hh_l0)
    >>> r.clipped, round(clip_grad_norm(model.parameters(), 1.0).norm, 6)
    (True, 1.0)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

from ..core.activations import get_activation
from ..core.errors import InputError
from ..core.build import recurrent_matrix
from ..core.vocab import TRAIN_INITS, check
from ..gradients.adjoint import sweep

__all__ = ["ClipResult", "grad_norm", "clip_grad_norm", "clip_grad_value", "AdaptiveClipState", "clip_grad_adaptive",
           "nan_fallback", "FALLBACK_ABOVE", "FALLBACK_SCALE", "state_adjoints", "PascanuOmega",
           "pascanu_regularizer", "PascanuRegularizer", "REGULARIZER_BOUND", "REDUCTIONS",
           "INIT_STD", "smart_tanh_matrix", "init_rnn", "vanilla_form"]

FALLBACK_ABOVE = 1e10  # Pascanu's code: a norm above this (or NaN, Inf, < 0) is not trusted in float32
FALLBACK_SCALE = 0.02  # ... and the gradient of W_hh becomes 0.02 W_hh (a small decay step), the others 0
REGULARIZER_BOUND = 1e-20  # Pascanu's state['bound']: steps with ||dE/dh_{k+1}||^2 below it are dropped
REDUCTIONS = ("pascanu", "sum")
INIT_STD = {"sigmoid": 0.01, "basic-tanh": 0.1}  # Pascanu's N(0, std) for W_hh, W_xh and W_hy
SMART_TANH_NONZERO = 15  # incoming weights per unit
SMART_TANH_RADIUS = 0.95  # spectral radius after rescaling


# ---------------------------------------------------------------------------------------------- clipping

@dataclass(frozen=True)
class ClipResult:
    """What a clipping call saw and did.

    norm: the 2-norm of all gradients together before clipping (like torch.nn.utils.clip_grad_norm_);
    clipped: whether the gradients were changed by the clipping rule; fallback: whether Pascanu's NaN/Inf
    fallback replaced them; threshold: the threshold used (inf when none applied).
    """

    norm: float
    clipped: bool
    fallback: bool = False
    threshold: float = math.inf

    def to_dict(self) -> dict:
        return {"norm": self.norm, "clipped": self.clipped, "fallback": self.fallback, "threshold": self.threshold}


def _params(params, W_hh: torch.Tensor | None = None) -> list[torch.Tensor]:
    """params as a list; W_hh, when given, must be one of them."""
    ps = [params] if isinstance(params, torch.Tensor) else list(params)
    if W_hh is not None and not any(p is W_hh for p in ps):
        raise InputError("W_hh: expected one of the clipped parameters (the recurrent weight), got a tensor "
                         "that is not among them")
    return ps


def _grads(ps: list[torch.Tensor]) -> list[torch.Tensor]:
    """The gradients of the parameters that have one."""
    return [p.grad for p in ps if p.grad is not None]


def _total_norm(grads: list[torch.Tensor]) -> float:
    """||g|| over all gradients together: sqrt(sum_i ||g_i||^2) = || (||g_1||, ..., ||g_P||) ||."""
    if not grads:
        return 0.0
    if len(grads) == 1:
        return float(torch.linalg.vector_norm(grads[0]))
    dtypes = {g.dtype for g in grads}
    if hasattr(torch, "_foreach_norm") and len(dtypes) == 1 and len({g.device for g in grads}) == 1:
        norms = torch._foreach_norm(grads)  # one call for all (what torch.nn.utils.clip_grad_norm_ uses)
    else:
        norms = [torch.linalg.vector_norm(g).to(torch.float64) for g in grads]
    return float(torch.linalg.vector_norm(torch.stack(norms)))


def grad_norm(params) -> float:
    """||g||_2 over the gradients of all params together (parameters without a gradient are skipped).

    Example:
        >>> w = torch.zeros(2, requires_grad=True); w.grad = torch.tensor([3.0, 4.0]); grad_norm([w])
        5.0
    """
    return _total_norm(_grads(_params(params)))


def _check_positive(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise InputError(f"{name}: expected a positive finite number, got {value!r}")
    return float(value)


def _untrusted(norm: float) -> bool:
    """Pascanu's condition: NaN, Inf, < 0 or > 1e10."""
    return not (0.0 <= norm <= FALLBACK_ABOVE)


def nan_fallback(params, W_hh: torch.Tensor) -> None:
    """Pascanu's fallback for an untrusted gradient: dE/dW_hh <- 0.02 W_hh, every other gradient <- 0.

    W_hh must be one of params (the recurrent weight, e.g. weight_hh_l0). The update that follows,
    W_hh <- W_hh - lr 0.02 W_hh, shrinks the recurrent weights, away from the explosion.
    """
    params = _params(params, W_hh)
    with torch.no_grad():
        for p in params:
            if p is W_hh:
                if p.grad is None:
                    p.grad = FALLBACK_SCALE * p.detach().clone()
                else:
                    p.grad.copy_(FALLBACK_SCALE * p.detach())
            elif p.grad is not None:
                p.grad.zero_()


def _scale(grads: list[torch.Tensor], factor: float) -> None:
    with torch.no_grad():
        for g in grads:
            g.mul_(factor)


def clip_grad_norm(params, threshold: float, *, W_hh: torch.Tensor | None = None) -> ClipResult:
    """Gradient norm clipping (Pascanu et al. 2013, Algorithm 1), in place, the norm over all params:

        ||g|| >= threshold  =>  g <- (threshold / ||g||) g

    With W_hh given (one of params): Pascanu's fallback when ||g|| is NaN, Inf or > 1e10 (`nan_fallback`).
    Without it a non-finite gradient is left as it is (the next loss will show it).
    Returns the norm before clipping.

    Example:
        >>> w = torch.zeros(2, requires_grad=True); w.grad = torch.tensor([3.0, 4.0])
        >>> clip_grad_norm([w], 1.0), w.grad
        (ClipResult(norm=5.0, clipped=True, fallback=False, threshold=1.0), tensor([0.6000, 0.8000]))
    """
    threshold = _check_positive("clip threshold", threshold)
    ps = _params(params, W_hh)
    grads = _grads(ps)
    norm = _total_norm(grads)
    if W_hh is not None and _untrusted(norm):
        nan_fallback(ps, W_hh)
        return ClipResult(norm, False, True, threshold)
    if math.isfinite(norm) and norm >= threshold:
        _scale(grads, threshold / norm)
        return ClipResult(norm, True, False, threshold)
    return ClipResult(norm, False, False, threshold)


def clip_grad_value(params, c: float) -> ClipResult:
    """Elementwise clipping (Mikolov's): g_i <- min(max(g_i, -c), c), in place. Returns the norm before it.

    Example:
        >>> w = torch.zeros(2, requires_grad=True); w.grad = torch.tensor([3.0, -0.5])
        >>> clip_grad_value([w], 1.0).clipped, w.grad
        (True, tensor([ 1.0000, -0.5000]))
    """
    c = _check_positive("clip value", c)
    grads = _grads(_params(params))
    norm = _total_norm(grads)
    clipped = False
    with torch.no_grad():
        for g in grads:
            if bool((g.abs() > c).any()):
                clipped = True
                g.clamp_(-c, c)
    return ClipResult(norm, clipped, False, c)


@dataclass
class AdaptiveClipState:
    """The running average of adaptive clipping (mutable: one per training run).

    average m: None before the first step; then m_1 = n'_1 and m_t = decay m_{t-1} + (1 - decay) n'_t,
    where n'_t = min(n_t, threshold_t) is the norm after clipping (so one explosion cannot inflate the
    average and switch clipping off). Steps with a non-finite norm leave it unchanged.
    decay 0.99: an average over about 100 updates, Pascanu's "sufficiently large number of updates".
    """

    decay: float = 0.99
    average: float | None = None
    count: int = 0  # steps averaged

    def __post_init__(self) -> None:
        if isinstance(self.decay, bool) or not isinstance(self.decay, (int, float)) or not 0 <= self.decay < 1:
            raise InputError(f"decay: expected a number in [0, 1), got {self.decay!r}")


def clip_grad_adaptive(params, state: AdaptiveClipState, factor: float, *,
                       W_hh: torch.Tensor | None = None) -> ClipResult:
    """Norm clipping with a threshold that follows the gradient norms (Pascanu et al. 2013, section 3.2:
    "0.5 to 10 times the average norm over a sufficiently large number of updates"):

        threshold_t = factor * m_{t-1}      (inf at the first step: nothing to average yet)
        ||g_t|| >= threshold_t  =>  g_t <- threshold_t g_t / ||g_t||
        m_t = decay m_{t-1} + (1 - decay) min(||g_t||, threshold_t),   m_1 = ||g_1||

    W_hh: Pascanu's NaN/Inf fallback as in `clip_grad_norm` (the average is not updated then).

    Example:
        >>> w = torch.zeros(1, requires_grad=True); st = AdaptiveClipState(decay=0.5)
        >>> for n in (1.0, 2.0, 10.0):
        ...     w.grad = torch.tensor([n]); r = clip_grad_adaptive([w], st, 2.0)
        >>> r.threshold, float(w.grad), st.average      # 2 x 1.5; clipped to 3; 0.5 x 1.5 + 0.5 x 3
        (3.0, 3.0, 2.25)
    """
    factor = _check_positive("clip factor", factor)
    if not isinstance(state, AdaptiveClipState):
        raise InputError(f"state: expected an AdaptiveClipState, got {type(state).__name__}")
    ps = _params(params, W_hh)
    grads = _grads(ps)
    norm = _total_norm(grads)
    threshold = math.inf if state.average is None else factor * state.average
    if W_hh is not None and _untrusted(norm):
        nan_fallback(ps, W_hh)
        return ClipResult(norm, False, True, threshold)
    clipped = False
    if math.isfinite(norm) and norm >= threshold:
        _scale(grads, threshold / norm)
        clipped = True
    applied = min(norm, threshold)
    if math.isfinite(applied):
        state.average = applied if state.average is None else state.decay * state.average + (1 - state.decay) * applied
        state.count += 1
    return ClipResult(norm, clipped, False, threshold)


# ------------------------------------------------------------------------------------------- regularizer

def _check_form(form: str) -> str:
    if form not in ("elman", "pal"):
        raise InputError(f"form: expected 'elman' or 'pal', got {form!r}")
    return form


def _check_stack(name: str, t, ref_shape=None) -> torch.Tensor:
    if not isinstance(t, torch.Tensor) or t.dim() != 3:
        got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
        raise InputError(f"{name}: expected a tensor of shape (T, B, S), got {got}")
    if ref_shape is not None and tuple(t.shape) != tuple(ref_shape):
        raise InputError(f"{name}: expected shape {tuple(ref_shape)}, got {tuple(t.shape)}")
    return t


def _back(form: str, W_hh: torch.Tensor, d: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """delta^T dh_k/dh_{k-1} for rows delta (..., S), with d = phi'(preact of step k)."""
    if form == "elman":
        return (delta * d) @ W_hh  # back through phi' (diag), then through W_hh:  W_hh^T (phi' * delta)
    return (delta @ W_hh) * d  # back through W_hh, then through phi'(h_{k-1})


def _state_adjoints(form: str, W_hh: torch.Tensor, d: torch.Tensor, direct: torch.Tensor) -> torch.Tensor:
    """delta_k for k = 1..T (T, B, S) by the adjoint sweep; step k's derivatives are d[k-1], its partial direct[k-1]."""
    with torch.no_grad():
        g = sweep(direct.shape[0], lambda k, v: _back(form, W_hh, d[k - 1], v), lambda k: direct[k - 1])
    return g[1:]  # g_0 = dE/dh_0 is not a term of Omega


def state_adjoints(W_hh: torch.Tensor, preacts: torch.Tensor, direct: torch.Tensor, form: str = "elman",
                   activation: str = "tanh") -> torch.Tensor:
    """The total adjoints delta_k = dE/dh_k, k = 1..T, of a vanilla RNN from the immediate partials:

        delta_T = d+E/dh_T,    delta_{k-1} = d+E/dh_{k-1} + delta_k dh_k/dh_{k-1}

    with dh_k/dh_{k-1} = diag(phi'(a_k)) W_hh (elman) or W_hh diag(phi'(h_{k-1})) (pal).
    preacts (T, B, S): the arguments of phi of steps 1..T, a_k for elman, h_{k-1} for pal (as Trace.preacts);
    direct (T, B, S): the immediate partials d+E/dh_k (through the readout). Returns (T, B, S).
    O(T B S^2), no graph.

    Example:
        >>> W = torch.eye(2) * 0.5; a = torch.zeros(3, 1, 2); e = torch.zeros(3, 1, 2); e[-1] = 1.0
        >>> state_adjoints(W, a, e)[:, 0, 0]       # 0.5^(T-k) with tanh'(0) = 1
        tensor([0.2500, 0.5000, 1.0000])
    """
    form = _check_form(form)
    act = get_activation(activation)
    _check_stack("preacts", preacts)
    _check_stack("direct", direct, preacts.shape)
    return _state_adjoints(form, W_hh.detach(), act.dphi(preacts.detach()), direct.detach())


class PascanuOmega(NamedTuple):
    """Omega (a scalar tensor) and dOmega/dW_hh (S, S) through the immediate dependence on W_hh only."""

    omega: torch.Tensor
    grad: torch.Tensor


def _omega(form: str, W_hh: torch.Tensor, d: torch.Tensor, delta: torch.Tensor, bound: float,
           reduction: str) -> PascanuOmega:
    W = W_hh.detach()
    with torch.no_grad():
        if form == "elman":
            z = delta * d  # (T, B, S)  phi'(a_k) * delta_k
            v = z @ W  # (T, B, S)  delta_k^T dh_k/dh_{k-1} = W_hh^T z
        else:
            w = delta @ W  # (T, B, S)  W_hh^T delta_k
            v = w * d  # (T, B, S)  ... times phi'(h_{k-1})
        num = v.square().sum(-1)  # (T, B) ||delta_k dh_k/dh_{k-1}||^2 (squared norms, as the code)
        den = delta.square().sum(-1)  # (T, B) ||delta_k||^2
        keep = den >= bound  # the code drops steps with ||delta||^2 < 1e-20 (their term is 0)
        r = torch.where(keep, num / torch.where(keep, den, torch.ones_like(den)), torch.ones_like(den))
        terms = (r - 1).square()  # (T, B)
        B = delta.shape[1]
        if reduction == "pascanu":
            kept = int(keep.sum())  # the code: terms.mean(1).sum() / keep.mean(1).sum() = sum / kept
            weight = 1.0 / kept if kept else 0.0
        else:
            weight = 1.0 / B  # batch mean, summed over time
        omega = terms.sum() * weight
        # d terms / dW: 2 (r - 1) d r/dW, d r/dW = (d num/dW) / den
        c = torch.where(keep, 2 * (r - 1) * 2 / torch.where(keep, den, torch.ones_like(den)), torch.zeros_like(den))
        c = c * weight  # (T, B)
        if form == "elman":
            # num = ||W^T z||^2: d num / dW_ij = 2 z_i (W^T z)_j = 2 z_i v_j  (the 2 is in c)
            grad = torch.einsum("tbi,tbj->ij", c.unsqueeze(-1) * z, v)
        else:
            # num = sum_j d_j^2 (W^T delta)_j^2: d num / dW_ij = 2 delta_i d_j^2 (W^T delta)_j = 2 delta_i d_j v_j
            grad = torch.einsum("tbi,tbj->ij", c.unsqueeze(-1) * delta, v * d)
    return PascanuOmega(omega, grad)


def pascanu_regularizer(W_hh: torch.Tensor, preacts: torch.Tensor, adjoints: torch.Tensor, form: str = "elman",
                        activation: str = "tanh", *, bound: float = REGULARIZER_BOUND,
                        reduction: str = "pascanu") -> PascanuOmega:
    """Pascanu et al.'s regularizer (2013, eq. 9) as their code computes it, and its gradient:

        r_{k,b}  = ||delta_k dh_k/dh_{k-1}||^2 / ||delta_k||^2        (squared norms, as the code)
        Omega    = sum over kept (k, b) of (r_{k,b} - 1)^2, times
                   1 / (number of kept (k, b))      reduction "pascanu": the code's
                                                    tmp_reg.mean(1).sum() / n_elems.sum()
                   1 / B                            reduction "sum": batch mean, summed over time
        kept     = ||delta_k||^2 >= bound (1e-20); Omega = 0 when nothing is kept

    delta_k = dE/dh_k (adjoints, held constant), k = 1..T: the k-th term is the paper's
    (dE/dx_{k+1}) (dx_{k+1}/dx_k). dh_k/dh_{k-1} = diag(phi'(a_k)) W_hh (elman, phi'(a_k) held constant)
    or W_hh diag(phi'(h_{k-1})) (pal, h_{k-1} held constant). The gradient dOmega/dW_hh flows only
    through that W_hh (the immediate dependence), as Theano's grad on the placeholders in the code.

    The code divides by the count of kept steps, so with every step kept Omega is the mean over
    steps and sequences; the paper's eq. 9, a sum over k, is reduction "sum".
    Pascanu's alpha in 2 to 4 goes with the code's normalisation.

    W_hh (S, S); preacts (T, B, S): a_k (elman) or h_{k-1} (pal), as Trace.preacts; adjoints (T, B, S).
    Returns PascanuOmega(omega, grad); add alpha * grad to W_hh's gradient before clipping.

    Example:
        >>> W = torch.eye(2) * 2.0; a = torch.zeros(1, 1, 2); delta = torch.ones(1, 1, 2)
        >>> pascanu_regularizer(W, a, delta).omega        # r = ||2 delta||^2 / ||delta||^2 = 4 -> (4 - 1)^2
        tensor(9.)
    """
    form = _check_form(form)
    act = get_activation(activation)
    if not isinstance(W_hh, torch.Tensor) or W_hh.dim() != 2 or W_hh.shape[0] != W_hh.shape[1]:
        raise InputError(f"W_hh: expected a square matrix (S, S), got {getattr(W_hh, 'shape', W_hh)!r}")
    _check_stack("preacts", preacts)
    if preacts.shape[-1] != W_hh.shape[0]:
        raise InputError(f"preacts: expected state size S = {W_hh.shape[0]}, got {preacts.shape[-1]}")
    _check_stack("adjoints", adjoints, preacts.shape)
    if reduction not in REDUCTIONS:
        raise InputError(f"reduction: expected one of {', '.join(REDUCTIONS)}, got {reduction!r}")
    if not isinstance(bound, (int, float)) or bound < 0:
        raise InputError(f"bound: expected a number >= 0, got {bound!r}")
    return _omega(form, W_hh, act.dphi(preacts.detach()), adjoints.detach(), float(bound), reduction)


def _dphi_of_output(name: str, h: torch.Tensor) -> torch.Tensor:
    """phi'(a) from h = phi(a), as Pascanu's code (1 - h^2 for tanh, h (1 - h) for sigmoid)."""
    if name == "tanh":
        return 1 - h * h
    if name == "sigmoid":
        return h * (1 - h)
    if name == "relu":
        return (h > 0).to(h.dtype)  # relu'(a) = [a > 0] = [h > 0]
    if name == "identity":
        return torch.ones_like(h)
    raise InputError(f"activation: expected one of tanh, sigmoid, relu, identity, got {name!r}")


def vanilla_form(rnn: nn.Module) -> tuple[str, str]:
    """(form, activation) of a single-layer vanilla RNN module: torch.nn.RNN ('elman', its nonlinearity) or a
    module with attributes `form` ('elman' | 'pal') and `activation` (rnnscope.lab.networks' ElmanRNN, PalRNN)."""
    if isinstance(rnn, nn.RNN):
        if rnn.num_layers != 1 or rnn.bidirectional:
            raise InputError(f"rnn: expected one layer, one direction, got num_layers={rnn.num_layers}, "
                             f"bidirectional={rnn.bidirectional}")
        return "elman", rnn.nonlinearity
    form = getattr(rnn, "form", None)
    if form in ("elman", "pal") and hasattr(rnn, "weight_hh_l0"):
        return form, get_activation(getattr(rnn, "activation", "tanh")).name
    raise InputError(f"rnn: expected torch.nn.RNN, ElmanRNN or PalRNN (an Elman or Pal module), "
                     f"got {type(rnn).__name__}")


class PascanuRegularizer:
    """Pascanu's regularizer for one vanilla RNN module inside any model, through a forward hook.

    The hook keeps the module's input x and outputs (out, h_n) of the last forward pass with grad enabled
    and retains their gradients. After loss.backward(), `apply()` turns them into the immediate partials
    d+E/dh_k, runs the adjoint sweep (`state_adjoints`), computes Omega and adds alpha * dOmega/dW_hh to
    weight_hh_l0.grad. Call it before clipping. Module: torch.nn.RNN (tanh or relu), or ElmanRNN / PalRNN,
    one layer; the readout may use out, h_n or both.

    Example:
        >>> rnn = torch.nn.RNN(2, 8, batch_first=True); head = torch.nn.Linear(8, 1)
        >>> reg = PascanuRegularizer(rnn, alpha=2.0)
        >>> out, _ = rnn(torch.randn(4, 10, 2)); head(out[:, -1]).square().mean().backward()
        >>> omega = reg.apply()        # a float; rnn.weight_hh_l0.grad now includes 2.0 * dOmega/dW_hh
    """

    def __init__(self, rnn: nn.Module, alpha: float, *, bound: float = REGULARIZER_BOUND,
                 reduction: str = "pascanu"):
        self.form, self.activation = vanilla_form(rnn)
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not math.isfinite(alpha) or alpha < 0:
            raise InputError(f"alpha: expected a finite number >= 0, got {alpha!r}")
        if reduction not in REDUCTIONS:
            raise InputError(f"reduction: expected one of {', '.join(REDUCTIONS)}, got {reduction!r}")
        self.rnn, self.alpha, self.bound, self.reduction = rnn, float(alpha), float(bound), reduction
        self.batch_first = bool(getattr(rnn, "batch_first", True))
        self._saved = None
        self._hook = rnn.register_forward_hook(self._capture)

    def _capture(self, module, args, output) -> None:
        if not torch.is_grad_enabled():
            return
        x = args[0]
        if not isinstance(x, torch.Tensor):
            raise InputError(f"rnn input: expected a padded tensor, got {type(x).__name__}")
        h0 = args[1] if len(args) > 1 else None
        out, h_n = output
        if out.requires_grad:
            out.retain_grad()
        if h_n.requires_grad:
            h_n.retain_grad()
        self._saved = (x, h0, out, h_n)

    def remove(self) -> None:
        """Remove the forward hook."""
        self._hook.remove()
        self._saved = None

    def compute(self) -> PascanuOmega:
        """Omega and dOmega/dW_hh of the last forward pass (after its backward); nothing is changed."""
        if self._saved is None:
            raise RuntimeError("PascanuRegularizer: no forward pass with grad enabled to regularize")
        x, h0, out, h_n = self._saved
        tm = (lambda t: t.transpose(0, 1)) if self.batch_first else (lambda t: t)
        h = tm(out).detach()  # (T, B, S) h_1..h_T
        direct = torch.zeros_like(h) if out.grad is None else tm(out.grad).clone()  # (T, B, S) d+E/dh_k
        if h_n.grad is not None:
            direct[-1] += h_n.grad[0]  # a readout of h_n = h_T
        W = self.rnn.weight_hh_l0.detach()
        if self.form == "elman":
            d = _dphi_of_output(self.activation, h)  # (T, B, S) phi'(a_k) from h_k = phi(a_k)
        else:
            first = torch.zeros_like(h[:1]) if h0 is None else h0.detach().reshape(1, *h.shape[1:])
            h_prev = torch.cat([first, h[:-1]])  # (T, B, S) h_0..h_{T-1}
            d = get_activation(self.activation).dphi(h_prev)  # phi'(h_{k-1})
        delta = _state_adjoints(self.form, W, d, direct)  # (T, B, S) dE/dh_k
        return _omega(self.form, W, d, delta, self.bound, self.reduction)

    def apply(self) -> float:
        """Add alpha * dOmega/dW_hh to weight_hh_l0.grad; returns Omega (a float)."""
        omega, grad = self.compute()
        self._saved = None
        W = self.rnn.weight_hh_l0
        if self.alpha > 0:
            with torch.no_grad():
                if W.grad is None:
                    W.grad = self.alpha * grad
                else:
                    W.grad.add_(grad, alpha=self.alpha)
        return float(omega)


# ------------------------------------------------------------------------------------------------- inits

def smart_tanh_matrix(S: int, gen: torch.Generator, *, nonzero: int = SMART_TANH_NONZERO,
                      radius: float = SMART_TANH_RADIUS, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Pascanu's "smart tanh" recurrent matrix (S, S): row i (the incoming weights of unit i) has `nonzero`
    entries N(0, 1) at random columns (all S when S <= nonzero), the rest 0; then W <- radius W / rho(W),
    rho the spectral radius (computed in float64), so rho(W) = 0.95.

    Their code zeroes all but 15 entries of each row of its row-vector W_hh, i.e. 15 outgoing weights per
    unit; the paper says incoming. Here rows of the column-vector W_hh: incoming, as the paper.

    Example:
        >>> W = smart_tanh_matrix(30, torch.Generator().manual_seed(0))
        >>> int((W[0] != 0).sum()), round(float(torch.linalg.eigvals(W).abs().max()), 9)
        (15, 0.95)
    """
    if isinstance(S, bool) or not isinstance(S, int) or S < 1:
        raise InputError(f"S: expected a positive integer, got {S!r}")
    W = torch.randn(S, S, generator=gen, dtype=torch.float64)  # (S, S)
    if S > nonzero:
        keep = torch.rand(S, S, generator=gen, dtype=torch.float64).argsort(dim=1)[:, :nonzero]  # (S, 15) columns
        mask = torch.zeros(S, S, dtype=torch.bool)
        mask.scatter_(1, keep, True)
        W = W * mask
    rho = float(torch.linalg.eigvals(W).abs().max())
    if rho == 0:
        raise InputError("smart-tanh: the sparse draw has spectral radius 0; use another seed")
    return (W * (radius / rho)).to(dtype)


def _blocks(W: torch.Tensor) -> int:
    return W.shape[0] // W.shape[1]


def init_rnn(rnn: nn.Module, readout: nn.Linear | None, init: str, gen: torch.Generator) -> None:
    """Initialise a single-layer RNN module (torch.nn.RNN / LSTM / GRU, ElmanRNN, PalRNN) and its readout in place.

        default      PyTorch's own (U(-1/sqrt(H), 1/sqrt(H))): nothing is changed
        sigmoid      W_hh, W_xh, W_hy ~ N(0, 0.01^2), biases 0                       (Pascanu's code)
        basic-tanh   W_hh, W_xh, W_hy ~ N(0, 0.1^2), biases 0                        (Pascanu's code)
        smart-tanh   W_hh = smart_tanh_matrix (15 non-zeros per row, rho = 0.95); W_xh, W_hy ~ N(0, 0.01^2),
                     biases 0                                                        (Pascanu's code)
        normal       W_hh ~ N(0, 1/H) (g = 1: the edge of chaos of a large tanh network; Engelken 2023's
                     Gaussian coupling); the rest PyTorch's
        orthogonal   W_hh Haar-orthogonal; the rest PyTorch's
        identity     W_hh = I, the RNN's biases 0; the rest PyTorch's                (IRNN, Le et al. 2015)

    The numbers are standard deviations. Gated cells (G blocks of H x H in W_hh): smart-tanh, orthogonal
    and identity apply to each gate's block.
    """
    check("init", init, TRAIN_INITS)
    if init == "default":
        return
    W_hh, W_xh = rnn.weight_hh_l0, rnn.weight_ih_l0
    biases = [b for b in (getattr(rnn, "bias_ih_l0", None), getattr(rnn, "bias_hh_l0", None)) if b is not None]
    H = W_hh.shape[1]
    G = _blocks(W_hh)

    def normal_(p: torch.Tensor, std: float) -> None:
        p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64) * std)

    with torch.no_grad():
        if init in INIT_STD or init == "smart-tanh":
            std = INIT_STD.get(init, 0.01)
            if init == "smart-tanh":
                W_hh.copy_(torch.cat([smart_tanh_matrix(H, gen) for _ in range(G)]))
            else:
                normal_(W_hh, std)
            normal_(W_xh, std)
            for b in biases:
                b.zero_()
            if readout is not None:
                normal_(readout.weight, std)
                if readout.bias is not None:
                    readout.bias.zero_()
        elif init in ("orthogonal", "normal"):
            W_hh.copy_(torch.cat([recurrent_matrix(H, 1.0, init, gen) for _ in range(G)]))
        elif init == "identity":
            W_hh.copy_(torch.eye(H, dtype=torch.float64).repeat(G, 1))
            for b in biases:
                b.zero_()
