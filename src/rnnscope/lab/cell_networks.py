"""The modern cells as torch training modules: one copy of the math, the core cell's (core/modern_cells.py).

    CellRNN(kind, D, H, seed=..., **options)   a module whose parameters are the cell's tensor fields, drawn by
                                               core.build.random_cell (the paper's initialisation and options)
    forward(x (B, T, D), h0)                   cell = the core cell of the current parameters (built once per
                                               forward, without re-running its checks), then
        scan kinds  (lru, mingru, minlstm, mamba):   states = cell.scan(x, s0, method)      s_t = a_t * s_{t-1} + b_t
        loop kinds  (slstm, indrnn, cornn, exprnn):  u = cell.drive(x) for all steps once, then
                                                     s_t = cell.forward_driven(u_t, s_{t-1})[0], t = 1..T
        out = h part of s_1..s_T  (B, T, h_size),    s_T  (1, B, S)                       batch first, as nn.RNN
    as_cell(dtype, differentiable)             the checked core cell of the current weights (snapshots, flossing)

Autograd differentiates through the core cell's own operations (its drive, transition or forward_driven and the
scans of core/scan.py), so the gradients are those of the cell the analysis tools see, with no second copy of the
equations to drift. Non-tensor fields (IndRNN's and expRNN's activation, sLSTM's forget, coRNN's dt, gamma,
epsilon) are fixed attributes, not trained. Mamba's W_C (C_t = W_C x_t of its output y_t = C_t h_t, which the
lab's readout does not use: it reads the state h) is a buffer, since no gradient reaches it.

expRNN: the trained parameter is a free matrix P (H, H) with A = P - P^T, skew by construction (so every update
stays on the skew matrices and W_hh = expm(A) stays orthogonal); P starts at A_0 / 2 of the paper's init, so
P - P^T = A_0. Each forward computes W_hh = torch.linalg.matrix_exp(A) (autograd through matrix_exp).

Default method (`default_method`), measured at the study's sizes (B = 32, L = 100, float32, one thread, 2 shared
cores; benchmarks/train.py --modern): the associative scan for the four linear kinds while the state is small
(S <= SCAN_MAX_STATE = 256: whole training steps of LRU and minGRU 1.2-1.4x faster than with the step loop), the
step loop beyond (Mamba on copy, D = 10, S = 640: there the scan's levels over (T, B, S) arrays cost more than the
loop) and for the nonlinear kinds. The step loop reads u_t by unbind (u[t]'s backward would fill a zero (T, B, U)
tensor at every step: O(T^2)). The paper's log-space scan (minGRU,
minLSTM) is method="log", 2-4x slower than the associative scan here. Mamba's log scan is not offered for training
(b_t of either sign is the difference of the scans of its positive and negative parts; an empty part's logcumsumexp
of -inf has a NaN gradient). Autograd differentiates the associative scan as it runs (core/scan.py).

Legend: B batch, T time, D input size, H hidden size (the `hidden` of random_cell), S state size, h_size the read
part of the state (S for the single-vector states; H of sLSTM's (h, c, n, m) and coRNN's (y, z); LRU's 2N
(Re h, Im h) and Mamba's D N are their whole states).

Example:
    >>> rnn = CellRNN("mingru", 2, 8, seed=0)
    >>> out, s_T = rnn(torch.zeros(4, 10, 2))
    >>> tuple(out.shape), tuple(s_T.shape), rnn.hidden_size, rnn.method
    ((4, 10, 8), (1, 4, 8), 8, 'associative')
    >>> cell = rnn.as_cell(torch.float64)
    >>> type(cell).__name__, cell.dtype
    ('MinGRUCell', torch.float64)
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from ..core.build import random_cell
from ..core.errors import InputError
from ..core.modern_cells import MODERN_CELLS
from ..core.orthogonal_cells import ExpRNNCell
from ..core.vocab import MODERN_KINDS, check

__all__ = ["CellRNN", "METHODS", "SCAN_KINDS", "SCAN_MAX_STATE", "NOT_TRAINABLE", "UNUSED_BY_STATE", "default_method"]

SCAN_KINDS = ("lru", "mingru", "minlstm", "mamba")  # linear in the state: the forward pass is one scan
METHODS = ("loop", "associative", "log", "sequential")  # "loop": forward_driven step by step; the others: cell.scan
SCAN_MAX_STATE = 256  # the associative scan up to this state size, the loop beyond (crossover S = 160..640, B = 32)
NOT_TRAINABLE = {("mamba", "log")}  # its gradient is NaN where a part of b_t of one sign is empty (log 0 = -inf)
UNUSED_BY_STATE = {"mamba": ("W_C",)}  # fields the state does not depend on (Mamba's C_t = W_C x_t of y_t): buffers


def default_method(kind: str, state_size: int) -> str:
    """The forward method of a kind at a state size S: "associative" for the linear kinds with S <= SCAN_MAX_STATE,
    else "loop" (see the module docstring for the measurements).

        >>> default_method("lru", 128), default_method("mamba", 640), default_method("slstm", 8)
        ('associative', 'loop', 'loop')
    """
    return "associative" if kind in SCAN_KINDS and state_size <= SCAN_MAX_STATE else "loop"


def _fast_cell(template, tensors: dict):
    """A cell of template's class with template's non-tensor fields and the given tensors, built without running
    its __post_init__ checks (finite entries, shapes, expRNN's expm and orthogonality in float64): the forward pass
    builds one per call from parameters whose shapes were checked when the template was built."""
    cell = object.__new__(type(template))
    cell.__dict__.update({f.name: template.__dict__[f.name] for f in dataclasses.fields(template)})  # fields only:
    cell.__dict__.update(tensors)  # nothing the template cached from its own tensors (sLSTM's dense R) comes along
    return cell


class CellRNN(nn.Module):
    """A modern cell (core/modern_cells.py) as a one-layer, batch-first training module (the module docstring).

    CellRNN(kind, input_size, hidden, *, seed=0, dtype=torch.float32, method=None, **options): the cell of
    core.build.random_cell(kind, hidden=hidden, input_size=input_size, seed=seed, dtype=dtype, **options) (options:
    the kind's own, e.g. r_min, r_max for lru, forget for slstm, activation for indrnn / exprnn); its tensor fields
    become nn.Parameters of the same names (expRNN: P, with A = P - P^T, and W_xh, b_h). method: None (the kind's
    default_method), "loop", or one of the cell's scan methods (the linear kinds).

    forward(x (B, T, D), h0 (1, B, S) | (B, S) | None = zeros) -> (out (B, T, h_size), s_T (1, B, S)).
    Attributes: kind, input_size (D), hidden_size (= h_size, what a readout reads), state_size (S), hidden (the
    size given), options, method.

    Example:
        >>> rnn = CellRNN("exprnn", 2, 6, seed=0, dtype=torch.float64)
        >>> W = rnn.as_cell().W_hh
        >>> bool(torch.allclose(W.T @ W, torch.eye(6, dtype=torch.float64), atol=1e-12))
        True
        >>> sorted(n for n, _ in rnn.named_parameters())          # A = P - P^T, W_hh = matrix_exp(A)
        ['P', 'W_xh', 'b_h']
    """

    def __init__(self, kind: str, input_size: int, hidden: int, *, seed: int = 0, dtype: torch.dtype = torch.float32,
                 method: str | None = None, **options):
        super().__init__()
        self.kind = check("cell", kind, MODERN_KINDS)
        template = random_cell(kind, hidden=hidden, input_size=input_size, seed=seed, dtype=dtype, **options)
        self.hidden, self.options = int(hidden), dict(options)
        self.input_size, self.state_size, self.hidden_size = template.input_size, template.state_size, template.h_size
        self.batch_first, self.num_layers, self.bidirectional = True, 1, False
        self._exp = isinstance(template, ExpRNNCell)
        # the tensor fields, in the dataclass's order; expRNN: A is computed from P, W_hh from A
        self._fields = tuple(f.name for f in dataclasses.fields(template)
                             if isinstance(getattr(template, f.name), torch.Tensor)
                             and not (self._exp and f.name in ("A", "W_hh")))
        for name in self._fields:
            w = getattr(template, name).detach().clone()
            if name in UNUSED_BY_STATE.get(kind, ()):
                self.register_buffer(name, w)  # no gradient could reach it: kept, not trained
            else:
                self.register_parameter(name, nn.Parameter(w))
        if self._exp:
            self.P = nn.Parameter(template.A.detach().clone() / 2)  # P - P^T = A_0 / 2 + A_0 / 2 = A_0 (A_0 skew)
        # the non-tensor fields (activation, forget, dt, ...), kept from the checked template; the template's
        # tensors are dropped so that the module holds one copy of the weights
        self._template = _fast_cell(template, {n: None for n in (*self._fields, *(("A", "W_hh") if self._exp else ()))})
        self.method = default_method(kind, self.state_size) if method is None else method

    @property
    def method(self) -> str:
        return self._method

    @method.setter
    def method(self, value: str) -> None:
        allowed = tuple(m for m in ("loop", *getattr(MODERN_CELLS[self.kind], "scan_methods", ()))
                        if (self.kind, m) not in NOT_TRAINABLE)
        self._method = check("method", value, allowed)

    def extra_repr(self) -> str:
        opts = "".join(f", {k}={v!r}" for k, v in self.options.items())
        return f"{self.kind!r}, {self.input_size}, {self.hidden}{opts}, method={self.method!r}"

    # ------------------------------------------------------------------------------------------------ the cell

    def _tensors(self, dtype: torch.dtype | None, detach: bool) -> dict:
        """{field: tensor} of the current parameters, cast to dtype (None: as they are); expRNN adds A, W_hh:

            A = P - P^T (skew in any dtype),   W_hh = matrix_exp(A)   (in the target dtype)"""
        def own(p: torch.Tensor) -> torch.Tensor:
            p = p.detach() if detach else p
            return p if dtype is None else p.to(dtype)

        t = {n: own(getattr(self, n)) for n in self._fields}
        if self._exp:
            P = own(self.P)
            A = P - P.T  # (H, H) skew
            t.update(A=A, W_hh=torch.linalg.matrix_exp(A))  # orthogonal
        return t

    def _cell(self):
        """The core cell of the current parameters, for the forward pass (unchecked: see _fast_cell)."""
        return _fast_cell(self._template, self._tensors(None, detach=False))

    def as_cell(self, dtype: torch.dtype | None = None, differentiable: bool = False):
        """The rnnscope cell of the current weights (checked by its constructor), cast to dtype (None: the
        parameters' dtype); detached from the parameters unless differentiable (then autograd reaches them through
        the cell's fields, as gradient flossing needs). expRNN: A = P - P^T and W_hh = matrix_exp(A) in dtype.

        Example:
            >>> rnn = CellRNN("lru", 1, 3, seed=0, r_min=0.5, r_max=0.9)
            >>> cell = rnn.as_cell(torch.float64, differentiable=True)
            >>> cell.nu_log.requires_grad, 0.5 <= cell.spectral_radius <= 0.9
            (True, True)
        """
        if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
            raise InputError(f"dtype: expected a floating-point torch.dtype or None, got {dtype!r}")
        t = self._tensors(dtype, detach=not differentiable)
        kw = {f.name: t[f.name] if f.name in t else getattr(self._template, f.name)
              for f in dataclasses.fields(self._template) if f.init}
        return type(self._template)(**kw)

    # ------------------------------------------------------------------------------------------------ forward

    def _start(self, h0, B: int, dtype: torch.dtype) -> torch.Tensor:
        S = self.state_size
        if h0 is None:
            return torch.zeros(B, S, dtype=dtype)
        if not isinstance(h0, torch.Tensor) or tuple(h0.shape) not in ((1, B, S), (B, S)):
            got = tuple(h0.shape) if isinstance(h0, torch.Tensor) else type(h0).__name__
            raise InputError(f"h0: expected shape (1, {B}, {S}) or ({B}, {S}), got {got}")
        return h0.reshape(B, S).to(dtype)

    def forward(self, x: torch.Tensor, h0: torch.Tensor | None = None):
        """(out (B, T, h_size) = the h part of s_1..s_T, s_T (1, B, S)) for x (B, T, D), from h0 (zeros)."""
        if not isinstance(x, torch.Tensor) or x.dim() != 3 or x.shape[2] != self.input_size or x.shape[1] < 1:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise InputError(f"x: expected shape (B, T, {self.input_size}) with T >= 1, got {got}")
        cell = self._cell()
        B, Hs = x.shape[0], self.hidden_size
        s = self._start(h0, B, cell.dtype)  # (B, S)
        xt = x.transpose(0, 1).to(cell.dtype)  # (T, B, D)
        method = self.method
        if method != "loop":
            states = cell.scan(xt, s, method)  # (T+1, B, S) s_0..s_T
            return states[1:, :, :Hs].transpose(0, 1), states[-1].unsqueeze(0)
        u = cell.drive(xt)  # (T, B, U): the state-independent part of every step, in one product
        outs = []
        for u_t in u.unbind(0):  # unbind, not u[t]: the backward of u[t] would fill a zero (T, B, U) every step
            s = cell.forward_driven(u_t, s)[0]  # s_t  (B, S)
            outs.append(s[:, :Hs] if Hs != s.shape[1] else s)
        return torch.stack(outs, 1), s.unsqueeze(0)
