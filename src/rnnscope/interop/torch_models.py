"""The torch boundary: a PyTorch recurrent module as rnnscope cells, its sequence re-run with the exact math.

PyTorch's fused kernels (nn.RNN, nn.LSTM, nn.GRU) do not expose per-step gradients. Here every
(layer, direction) of such a module becomes an rnnscope cell with the module's own weights, and the
sequence is re-run layer by layer, so that every state s_k is there for the adjoint sweeps and Jacobian
products: step by step (unroll; for LSTM and GRU its in-place loop, Cell.step_into) by default; for nn.RNN
below float64, and for nn.RNN / LSTM / GRU with fused=True, h_1..h_T from torch's own fused kernel per (layer,
direction), then the pre-activations in one product and LSTM's c by a scan (_fused_trace). The outputs equal
the module's own (and h_n, c_n) to rounding:
1e-6 in float32, 1e-12 in float64 (tests/test_torch_models.py).

    module                               cell of layer l, direction d (PyTorch names -> rnnscope names)
    nn.RNN(nonlinearity=tanh | relu)      ElmanCell(W_hh = weight_hh_l{l}, W_xh = weight_ih_l{l}, b_h = b_ih + b_hh)
    nn.LSTM                               LSTMCell(W_xh = weight_ih, W_hh = weight_hh, b_xh = bias_ih, b_hh = bias_hh)
    nn.LSTM(proj_size = P)                ProjLSTMCell(..., W_hr = weight_hr_l{l}): h_t = W_hr (o * tanh(c_t))
    nn.GRU                                GRUCell(W_xh, W_hh, b_xh, b_hh)
    nn.RNNCell / LSTMCell / GRUCell       one layer, one direction: the same cells (a loop over the cell)
    rnnscope Cell (FunctionCell: any      used as it is
    user step function)
    (the reverse direction uses the weights with the suffix _reverse; bias=False gives zero biases)

A stack is re-run bottom-up: layer 0 reads the inputs x (T, B, D); layer l > 0 reads the outputs of
layer l-1, the forward and reverse directions' h_t concatenated (B, 2 P) when bidirectional. Every (layer,
direction) is traced in its own time order (own_order): the reverse direction's step k reads position
T + 1 - k, its outputs put back into position order. Dropout between layers is not applied (eval mode).
Variable lengths (a PackedSequence's, capture.py): rerun(..., lengths=L), L (B,) int64, 1 <= L_b <= T:

    forward step k reads position k;  reverse step k reads position L_b + 1 - k  (k <= L_b)
    k > L_b: padding, the state FROZEN s_k = s_{k-1} = s_{L_b} exactly; inputs[k-1] = preacts[k-1] = 0

so h_n = s_T = s_{L_b} as torch's packed h_n (a sweep treats steps k > L_b, ~valid_steps, as the identity),
and the output equals pad_packed_sequence(module(packed), total_length=T): zeros beyond L_b, positions in
input order. Padded steps are run, then overwritten: the valid steps are a prefix of each own-order run.

Legend: T time, B batch, D input size, H hidden (cell) size, P the size of h (H, or proj_size), S state size
(P + H for LSTM's (h, c), H otherwise).

Example:
    >>> lstm = torch.nn.LSTM(3, 8, num_layers=2, bidirectional=True)
    >>> run = rerun(lstm, torch.randn(20, 4, 3))
    >>> out, (h_n, c_n) = lstm(torch.randn(20, 4, 3))          # the same shapes as run.output, run.h_n, run.c_n
    >>> [(r.layer, r.direction) for r in run.runs]
    [(0, 'forward'), (0, 'reverse'), (1, 'forward'), (1, 'reverse')]
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..core.cells import Cell, ElmanCell, GRUCell, LSTMCell, PalCell, ProjLSTMCell
from ..core.errors import InputError
from ..core.threads import step_threads
from ..core.unroll import Trace, as_batched_inputs, unroll

__all__ = ["LayerRun", "StackRun", "SUPPORTED_MODULES", "cell_from_module", "layer_cells", "rerun", "initial_states",
           "time_major", "own_order", "valid_steps", "check_lengths", "module_kind", "module_dtype"]

SUPPORTED_MODULES = "nn.RNN, nn.LSTM (proj_size too), nn.GRU, nn.RNNCell, nn.LSTMCell, nn.GRUCell or an rnnscope Cell"
DIRECTIONS = ("forward", "reverse")


def _is_stack(m) -> bool:
    """nn.RNN / LSTM / GRU, and modules with their parameter names (rnnscope.lab.networks' ElmanRNN, PalRNN)."""
    return isinstance(m, nn.RNNBase) or (isinstance(m, nn.Module) and getattr(m, "form", None) in ("elman", "pal")
                                         and hasattr(m, "weight_hh_l0"))


def module_kind(m) -> str:
    """'rnn_tanh', 'rnn_relu', 'lstm', 'gru', 'elman' / 'pal' (rnnscope.lab.networks' modules), 'rnn_cell_tanh', ...,
    'lstm_cell', 'gru_cell', or 'cell' (an rnnscope Cell). An InputError for anything else."""
    if isinstance(m, Cell):
        return "cell"
    if isinstance(m, nn.LSTM):
        return "lstm"
    if isinstance(m, nn.GRU):
        return "gru"
    if isinstance(m, nn.RNN):
        return f"rnn_{m.nonlinearity}"
    if isinstance(m, nn.LSTMCell):
        return "lstm_cell"
    if isinstance(m, nn.GRUCell):
        return "gru_cell"
    if isinstance(m, nn.RNNCell):
        return f"rnn_cell_{m.nonlinearity}"
    if _is_stack(m):
        return m.form
    raise InputError(f"model: expected {SUPPORTED_MODULES}, got {type(m).__name__}")


def module_dtype(m) -> torch.dtype:
    """The floating point type of a module's weights (or a cell's)."""
    if isinstance(m, Cell):
        return m.dtype
    for p in m.parameters():
        return p.dtype
    return torch.get_default_dtype()


def _weights(m: nn.Module, suffix: str, dtype: torch.dtype, differentiable: bool = False) -> dict:
    """The weights of one (layer, direction) of a stack, or of a cell module (suffix ''), in dtype: detached
    copies, or with differentiable=True the module's parameters themselves (cast only where dtype differs, a
    differentiable .to), so autograd through the cell reaches them."""
    def own(p: torch.Tensor) -> torch.Tensor:
        if differentiable:
            return p if p.dtype == dtype else p.to(dtype)
        return p.detach().to(dtype)

    W_hh = own(getattr(m, f"weight_hh{suffix}"))
    G = W_hh.shape[0]

    def get(name):
        b = getattr(m, f"{name}{suffix}", None)
        return torch.zeros(G, dtype=dtype) if b is None else own(b)

    w = {"W_hh": W_hh, "W_xh": own(getattr(m, f"weight_ih{suffix}")), "b_ih": get("bias_ih"), "b_hh": get("bias_hh")}
    W_hr = getattr(m, f"weight_hr{suffix}", None)
    if W_hr is not None:
        w["W_hr"] = own(W_hr)
    return w


def _cell(kind: str, w: dict, activation: str | None = None) -> Cell:
    if kind in ("lstm", "lstm_cell"):
        if "W_hr" in w:
            return ProjLSTMCell(w["W_xh"], w["W_hh"], w["b_ih"], w["b_hh"], W_hr=w["W_hr"])
        return LSTMCell(w["W_xh"], w["W_hh"], w["b_ih"], w["b_hh"])
    if kind in ("gru", "gru_cell"):
        return GRUCell(w["W_xh"], w["W_hh"], w["b_ih"], w["b_hh"])
    cls = PalCell if kind == "pal" else ElmanCell
    return cls(w["W_hh"], w["W_xh"], w["b_ih"] + w["b_hh"], activation)  # b_h = b_ih + b_hh (nn.RNN's two biases)


def _activation(m) -> str | None:
    return getattr(m, "nonlinearity", None) or getattr(m, "activation", None)


def layer_cells(module, *, dtype: torch.dtype | None = None, differentiable: bool = False) -> list[list[Cell]]:
    """cells[l][d]: the rnnscope cell of layer l, direction d (0 forward, 1 reverse), with the module's weights.

    module: nn.RNN / LSTM / GRU (any num_layers, bidirectional, bias, proj_size), nn.RNNCell / LSTMCell /
    GRUCell, rnnscope.lab.networks' ElmanRNN / PalRNN, or an rnnscope Cell (returned as [[cell]]). dtype: default
    the module's own. differentiable=True: the cells hold the module's parameters (not detached copies; cast only
    where dtype differs), so a loss computed through the cells (Jacobians, Lyapunov exponents) backpropagates
    into the module's .grad; an Elman cell's b_h is then the graph's b_ih + b_hh.
    """
    kind = module_kind(module)
    if kind == "cell":
        return [[module]]
    dtype = module_dtype(module) if dtype is None else dtype
    if kind.endswith("_cell") or kind.startswith("rnn_cell"):
        return [[_cell(kind, _weights(module, "", dtype, differentiable), _activation(module))]]
    L = getattr(module, "num_layers", 1)
    dirs = 2 if getattr(module, "bidirectional", False) else 1
    return [[_cell(kind, _weights(module, f"_l{l}" + ("_reverse" if d else ""), dtype, differentiable),
                   _activation(module))
             for d in range(dirs)] for l in range(L)]


def cell_from_module(rnn: nn.Module, *, dtype: torch.dtype | None = torch.float64, differentiable: bool = False) -> Cell:
    """The rnnscope cell with a one-layer, one-direction module's weights (PyTorch layout), cast to dtype (None:
    the module's own); differentiable=True: the module's parameters themselves (see layer_cells):

        nn.RNN    ElmanCell(W_hh, W_xh, b_ih + b_hh, nonlinearity)     ElmanRNN the same, PalRNN -> PalCell
        nn.LSTM   LSTMCell(W_ih, W_hh, b_ih, b_hh)                     nn.GRU -> GRUCell(W_ih, W_hh, b_ih, b_hh)

    One layer, one direction, no LSTM projection (see layer_cells for stacks); a module without biases gets zeros.

    Example:
        >>> cell_from_module(torch.nn.GRU(2, 4)).state_size
        4
    """
    if not _is_stack(rnn):
        raise InputError(f"rnn: expected nn.RNN, nn.LSTM, nn.GRU, ElmanRNN or PalRNN, got {type(rnn).__name__}")
    if getattr(rnn, "num_layers", 1) != 1 or getattr(rnn, "bidirectional", False):
        raise InputError(f"rnn: expected one layer, one direction, got num_layers={rnn.num_layers}, "
                         f"bidirectional={rnn.bidirectional}")
    if getattr(rnn, "proj_size", 0):
        raise InputError(f"rnn: expected an LSTM without projection, got proj_size={rnn.proj_size}")
    return layer_cells(rnn, dtype=dtype, differentiable=differentiable)[0][0]


def check_lengths(lengths, T: int, B: int, unbatched: bool = False) -> torch.Tensor | None:
    """lengths (B,) as an int64 tensor with 1 <= L_b <= T (batched inputs), or None; an InputError otherwise."""
    if lengths is None:
        return None
    L = torch.as_tensor(lengths)
    if unbatched:
        raise InputError("lengths: expected batched inputs (T, B, D) with lengths, got unbatched inputs (T, D)")
    if L.is_floating_point() or L.is_complex() or L.dtype == torch.bool or tuple(L.shape) != (B,):
        raise InputError(f"lengths: expected {B} integers (one per sequence), got {L.dtype} of shape {tuple(L.shape)}")
    if bool(((L < 1) | (L > T)).any()):
        raise InputError(f"lengths: expected 1 <= L_b <= T = {T}, got {L.min().item()}..{L.max().item()}")
    return L.to(torch.int64).cpu()


def valid_steps(T: int, lengths: torch.Tensor | None, B: int = 1) -> torch.Tensor:
    """(T, B) bool: whether step k (row k-1) of sequence b is real, k <= L_b; all True without lengths (B given)."""
    if lengths is None:
        return torch.ones(T, B, dtype=torch.bool)
    return torch.arange(T)[:, None] < lengths[None, :]


def own_order(x: torch.Tensor, direction: str, lengths: torch.Tensor | None = None) -> torch.Tensor:
    """x (T, B, ...) in position order -> the direction's own time order (and back: own_order is an involution).
    forward: x as it is. reverse: row k-1 of sequence b holds position L_b + 1 - k for k <= L_b, the rows
    k > L_b (padding) left in place; without lengths x.flip(0).

        >>> own_order(torch.arange(4.)[:, None].expand(4, 2), "reverse", torch.tensor([4, 2])).T
        tensor([[3., 2., 1., 0.],
                [1., 0., 2., 3.]])
    """
    if direction not in DIRECTIONS:
        raise InputError(f"direction: expected one of {', '.join(DIRECTIONS)}, got {direction!r}")
    if direction == "forward":
        return x
    if lengths is None:
        return x.flip(0)
    T, B, k, L = x.shape[0], x.shape[1], torch.arange(x.shape[0])[:, None], lengths.to(torch.int64)[None, :]
    idx = torch.where(k < L, L - 1 - k, k).to(x.device)  # (T, B): the position each own-order row reads (0-based)
    return x.gather(0, idx.reshape(T, B, *([1] * (x.dim() - 2))).expand_as(x))


def _freeze(trace: Trace, lengths: torch.Tensor) -> Trace:
    """The padded steps k > L_b of a trace in own order: s_k = s_{L_b}, inputs and pre-activations zero."""
    T = trace.T
    idx = torch.minimum(torch.arange(T + 1)[:, None], lengths[None, :])  # (T+1, B): min(k, L_b)
    states = trace.states.gather(0, idx[:, :, None].expand_as(trace.states))  # (T+1, B, S)
    pad = ~valid_steps(T, lengths)[:, :, None]  # (T, B, 1)
    return Trace(states, trace.preacts.masked_fill(pad, 0.0), trace.inputs.masked_fill(pad, 0.0))


@dataclass(frozen=True)
class LayerRun:
    """One (layer, direction) of a re-run: its cell and its trace (in the direction's own time order)."""

    layer: int
    direction: str  # "forward" | "reverse"
    cell: Cell
    trace: Trace  # states (T+1, B, S), inputs (T, B, D_l): the reverse direction's step k reads position T + 1 - k
    bias: bool  # whether the module has biases (they are parameters: their gradients count)
    lengths: torch.Tensor | None = None  # (B,) int64: steps k > L_b frozen (own order: see own_order)

    @property
    def name(self) -> str:
        return f"layer {self.layer} {self.direction}"

    def outputs(self) -> torch.Tensor:
        """h_1..h_T in position order (T, B, P); with lengths zeros at the positions beyond L_b."""
        h = own_order(self.trace.states[1:, :, :self.cell.h_size], self.direction, self.lengths)
        if self.lengths is None:
            return h
        return h.masked_fill(~valid_steps(h.shape[0], self.lengths)[:, :, None], 0.0)


@dataclass(frozen=True)
class StackRun:
    """The step-by-step re-run of a module: every (layer, direction) and the module's return values.

    output (T, B, dirs P) is the top layer's outputs, time-major; h_n (layers dirs, B, P) and c_n (LSTM,
    (layers dirs, B, H)) as the module returns them (batched). module_output() gives output in the module's
    own layout (batch_first, unbatched input). lengths (B,) int64 or None: the sequences' lengths (output is
    zero beyond them; every trace's steps k > L_b frozen, see the module docstring).
    """

    runs: tuple[LayerRun, ...]  # layer-major: (0, forward), (0, reverse), (1, forward), ...
    output: torch.Tensor  # (T, B, dirs P)
    h_n: torch.Tensor  # (layers dirs, B, P)
    c_n: torch.Tensor | None  # (layers dirs, B, H) for LSTM
    num_layers: int
    num_directions: int
    batch_first: bool
    unbatched: bool
    lengths: torch.Tensor | None = None  # (B,) int64

    def layer(self, l: int) -> tuple[LayerRun, ...]:
        return tuple(r for r in self.runs if r.layer == l)

    def to_module_layout(self, y: torch.Tensor) -> torch.Tensor:
        """A time-major (T, B, ...) tensor in the module's layout: (B, T, ...) when batch_first, (T, ...) unbatched."""
        if self.unbatched:
            return y[:, 0]
        return y.transpose(0, 1) if self.batch_first else y

    def module_output(self) -> torch.Tensor:
        return self.to_module_layout(self.output)


def time_major(module, inputs, dtype: torch.dtype, finite: bool = True) -> tuple[torch.Tensor, bool, bool]:
    """Inputs as (T, B, D) in dtype, with (batch_first, unbatched). Modules: (T, D) unbatched, (T, B, D), or
    (B, T, D) when batch_first; cells and rnnscope cells: (T, D) or (T, B, D). numpy arrays are accepted."""
    x = torch.as_tensor(inputs)
    if not (x.is_floating_point() or x.dtype in (torch.int32, torch.int64, torch.bool)):
        raise InputError(f"inputs: expected real numbers, got dtype {x.dtype}")
    batch_first = bool(getattr(module, "batch_first", False)) and _is_stack(module)
    if x.dim() not in (2, 3):
        layout = "(B, T, D)" if batch_first else "(T, B, D)"
        raise InputError(f"inputs: expected shape (T, D) or {layout}, got {tuple(x.shape)}")
    unbatched = x.dim() == 2
    if batch_first and not unbatched:
        x = x.transpose(0, 1)
    D = module.input_size if isinstance(module, Cell) else getattr(module, "input_size", None)
    return as_batched_inputs(x, dtype, D, finite=finite), batch_first, unbatched


def _fused_trace(cell: Cell, kind: str, x: torch.Tensor, s0: torch.Tensor | None = None) -> Trace | None:
    """The Trace of one (layer, direction) from torch's own fused kernel, or None where there is none to use.

    h_1..h_T (T, B, P) come from one single-layer call of torch's kernel (torch._VF.lstm / gru / rnn_tanh /
    rnn_relu) with the cell's weights, from s0 (B, S) (zeros if None); then all pre-activations at once, one
    product over all T (h_0..h_{T-1} known):

        Elman   a_t = W_xh x_t + b_h + W_hh h_{t-1}                                   (T, B, S)
        LSTM    z_t = W_xh x_t + b_xh + b_hh + W_hh h_{t-1}                           (T, B, 4H)
                c_t = f_t * c_{t-1} + i_t * g_t     (f, i, g from z_t: an elementwise scan over t)
        GRU     [a_r, a_z, a_n]: a_r = W_xr x + b_xr + W_hr h + b_hr, a_z likewise,
                a_n = W_xn x + b_xn + r * (W_hn h + b_hn)                             (T, B, 3H)

    The states equal the step-by-step unroll's to rounding (tests/test_torch_models.py).
    """
    T, B, _ = x.shape
    dt = cell.dtype
    s0 = torch.zeros(B, cell.state_size, dtype=dt) if s0 is None else s0.to(dt)
    P = cell.h_size
    h0 = s0[:, :P]  # (B, P)
    with torch.no_grad():
        if isinstance(cell, LSTMCell):
            H = cell.hidden_size
            w = [cell.W_xh, cell.W_hh, cell.b_xh, cell.b_hh] + ([cell.W_hr] if isinstance(cell, ProjLSTMCell) else [])
            hc0 = (h0[None].contiguous(), s0[None, :, P:].contiguous())
            h = torch._VF.lstm(x, hc0, w, True, 1, 0.0, False, False, False)[0]  # (T, B, P) h_1..h_T
        elif isinstance(cell, GRUCell):
            w = [cell.W_xh, cell.W_hh, cell.b_xh, cell.b_hh]
            h = torch._VF.gru(x, h0[None].contiguous(), w, True, 1, 0.0, False, False, False)[0]
        elif type(cell) is ElmanCell and kind in ("rnn_tanh", "rnn_relu") and cell.activation.name in ("tanh", "relu"):
            fn = torch._VF.rnn_tanh if cell.activation.name == "tanh" else torch._VF.rnn_relu
            w = [cell.W_xh, cell.W_hh, cell.b_h, torch.zeros_like(cell.b_h)]  # b_h = b_ih + b_hh as one bias
            h = fn(x, h0[None].contiguous(), w, True, 1, 0.0, False, False, False)[0]
        else:
            return None
        x2 = x.reshape(T * B, -1)
        hp = torch.cat([h0[None], h[:-1]]).reshape(T * B, P)  # h_0..h_{T-1}, rows (t, b)
        if isinstance(cell, GRUCell):
            Hs = cell.hidden_size
            pre = torch.addmm(cell.b_xh, x2, cell.W_xh.T)  # W_xh x_t + b_xh (T B, 3H), then a_r, a_z, a_n in place
            gh = torch.addmm(cell.b_hh, hp, cell.W_hh.T)  # W_hh h_{t-1} + b_hh (T B, 3H)
            pre[:, :2 * Hs] += gh[:, :2 * Hs]  # a_r, a_z
            pre[:, 2 * Hs:].addcmul_(torch.sigmoid(pre[:, :Hs]), gh[:, 2 * Hs:])  # a_n = ... + r * (W_hn h + b_hn)
            return Trace(torch.cat([h0[None], h]), pre.reshape(T, B, -1), x)
        bias = cell.b_h if not isinstance(cell, LSTMCell) else cell.b_xh + cell.b_hh
        pre = torch.addmm(bias, x2, cell.W_xh.T)  # W_xh x_t + b (T B, A), all t in one product
        pre.addmm_(hp, cell.W_hh.T)  # + W_hh h_{t-1}: a_t (Elman) or z_t (LSTM)
        pre = pre.reshape(T, B, -1)
        if not isinstance(cell, LSTMCell):
            return Trace(torch.cat([h0[None], h]), pre, x)
        states = torch.empty(T + 1, B, P + H, dtype=dt)
        states[0] = s0
        states[1:, :, :P] = h
        c = states[0, :, P:]
        for t in range(T):  # c_t = f_t c_{t-1} + i_t g_t, the same lines as LSTMCell.forward_driven
            sz = torch.sigmoid(pre[t])
            c = torch.addcmul(sz[:, H:2 * H] * c, sz[:, :H], torch.tanh(pre[t, :, 2 * H:3 * H]), out=states[t + 1, :, P:])
        return Trace(states, pre, x)


def initial_states(h0, cells: list[list[Cell]], B: int, unbatched: bool) -> list[list[torch.Tensor | None]]:
    """s_0 (B, S) of every (layer, direction) from the module's h0 (layers dirs, B, P) or (h0, c0) for LSTM
    ((layers dirs, P) for unbatched input); None: zeros."""
    if h0 is None:
        return [[None] * len(layer) for layer in cells]
    parts = list(h0) if isinstance(h0, (tuple, list)) else [h0]
    lstm = cells[0][0].state_size != cells[0][0].h_size
    if len(parts) != (2 if lstm else 1) or not all(isinstance(p, torch.Tensor) for p in parts):
        raise InputError(f"h0: expected {'a tuple (h0, c0)' if lstm else 'a tensor'}, got {type(h0).__name__}")
    n = len(cells) * len(cells[0])
    out = [[None] * len(layer) for layer in cells]
    for j, p in enumerate(parts):
        p = p.unsqueeze(1) if unbatched else p
        size = cells[0][0].h_size if j == 0 else cells[0][0].state_size - cells[0][0].h_size
        if tuple(p.shape) != (n, B, size):
            raise InputError(f"h0: expected shape {(n, B, size)} (layers x directions, B, size), got {tuple(p.shape)}")
    for l, layer in enumerate(cells):
        for d, cell in enumerate(layer):
            i = l * len(layer) + d
            out[l][d] = torch.cat([(p.unsqueeze(1) if unbatched else p)[i].detach().to(cell.dtype) for p in parts], -1)
    return out


def rerun(module, inputs, *, dtype: torch.dtype | None = None, fused: bool | None = None, h0=None,
          lengths=None, finite: bool = True) -> StackRun:
    """Re-run a module layer by layer from its own weights, recording every state (see the module docstring).

    inputs: (T, D) unbatched, (T, B, D), or (B, T, D) with batch_first. h0: the module's initial state as its
    forward takes it (nn.LSTM (h0, c0)); None: zeros (the modules' default). dtype: default the module's.

    fused=None (default): the unroll for LSTM and GRU (its in-place loop, Cell.step_into, is faster than torch's
    kernel followed by the pre-activations and the c scan: 49 against 70 ms in float32, 97 against 184 ms in
    float64 for a 2-layer LSTM 128, T = 200, B = 32); for nn.RNN the fused kernel below float64 and the unroll
    in float64 (torch's float64 kernels are slower than the unroll's per-step products).
    fused=True: for nn.RNN / nn.LSTM / nn.GRU each
    (layer, direction)'s h_1..h_T come from torch's
    own fused kernel (one single-layer call with that layer's weights; the reverse direction on the flipped
    sequence), then every pre-activation in one product over all T and, for LSTM, c_t by an elementwise scan
    (_fused_trace). fused=False, and always for nn.*Cell loops, rnnscope Cells (user step functions) and
    rnnscope.lab.networks' modules: the step-by-step unroll through the rnnscope cell (the exact reference). The two
    Traces agree to rounding (1e-12 in float64, ~1e-6 relative in float32). Cost: O(T B S (S + D)) either way;
    the fused kernel avoids T Python steps per layer.

    lengths (B,) integers, 1 <= L_b <= T (batched input only), or None: the sequences' lengths, as a
    PackedSequence's: steps beyond them frozen and outputs zero there (module docstring; tests/test_packed.py).
    finite=False: NaN / Inf in the inputs or h0 are run as they are instead of refused (the NaN hunt).
    """
    kind = module_kind(module)
    dtype = module_dtype(module) if dtype is None else dtype
    cells = layer_cells(module, dtype=dtype)
    x, batch_first, unbatched = time_major(module, inputs, dtype, finite)
    bias = kind == "cell" or bool(getattr(module, "bias", True))
    use_fused = isinstance(module, nn.RNNBase) and (dtype != torch.float64 if fused is None else fused)
    s0 = initial_states(h0, cells, x.shape[1], unbatched)
    lengths = check_lengths(lengths, x.shape[0], x.shape[1], unbatched)
    runs, hn, cn = [], [], []
    for l, layer in enumerate(cells):
        outs = []
        for d, cell in enumerate(layer):
            xin = own_order(x, DIRECTIONS[d], lengths)  # the reverse direction reads x_T .. x_1 (x_{L_b} .. x_1)
            with step_threads(cell.state_size):  # torch's kernel loops over time too
                in_place = fused is None and getattr(cell, "step_into", None) is not None  # faster than the kernel
                trace = _fused_trace(cell, kind, xin, s0[l][d]) if use_fused and not in_place else None
            if trace is None:
                trace = unroll(cell, xin, s0[l][d], finite=finite)
            if lengths is not None:
                trace = _freeze(trace, lengths)  # s_k = s_{L_b} for k > L_b
            run = LayerRun(l, DIRECTIONS[d], cell, trace, bias, lengths)
            runs.append(run)
            outs.append(run.outputs())
            P = cell.h_size
            hn.append(trace.states[-1, :, :P])
            if cell.state_size != P:
                cn.append(trace.states[-1, :, P:])
        x = torch.cat(outs, dim=2)  # (T, B, dirs P): the next layer's input
    return StackRun(tuple(runs), x, torch.stack(hn), torch.stack(cn) if cn else None, len(cells), len(cells[0]),
                    batch_first, unbatched, lengths)
