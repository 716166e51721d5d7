"""The torch networks the lab trains: one recurrent layer and a linear readout at every step.

    rnn      torch.nn.RNN (elman tanh, relu; fused), ElmanRNN (any activation: nn.RNN has no sigmoid),
             PalRNN, torch.nn.LSTM, torch.nn.GRU; one layer, batch first, h_0 = 0
    readout  o_t = W_hy h_t + b_y at every step (torch.nn.Linear)

    elman    h_t = phi(W_hh h_{t-1} + W_xh x_t + b_ih + b_hh)          (Elman 1990)
    pal      h_t = W_hh phi(h_{t-1}) + W_xh x_t + b_ih + b_hh          (Pascanu et al. 2013, eq. 11)

    modern   cell_networks.CellRNN: the recurrences after the seeds (core.vocab.MODERN_KINDS: lru, mingru, minlstm,
             mamba, slstm, indrnn, cornn, exprnn), the core cell's own math with its paper's init; the readout
             reads the h part of the state (h_size: H, or 2N for LRU's (Re h, Im h), D N for Mamba)

ElmanRNN and PalRNN keep nn.RNN's parameter names (weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0) and
its default init U(-1/sqrt(H), 1/sqrt(H)), so rnnscope.interop.torch_models.cell_from_module reads them as
cells and remedies.PascanuRegularizer hooks them like nn.RNN. `build_model(config, D, O)` builds the network
of a TrainConfig and applies its init (remedies.init_rnn); `as_cell(rnn)` is the rnnscope cell of any of them.

Legend: B batch, T time, D input size, H hidden size, O outputs.

Example:
    >>> rnn = PalRNN(2, 8, "tanh"); out, h_n = rnn(torch.zeros(4, 10, 2))
    >>> tuple(out.shape), tuple(h_n.shape), rnn.form
    ((4, 10, 8), (1, 4, 8), 'pal')
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..core.activations import get_activation
from ..core.build import get_dtype
from ..core.errors import InputError
from ..core.vocab import MODERN_KINDS
from ..interop.torch_models import cell_from_module
from .cell_networks import CellRNN
from .remedies import init_rnn

__all__ = ["ElmanRNN", "PalRNN", "CellRNN", "SequenceModel", "build_model", "as_cell"]


class _VanillaRNN(nn.Module):
    """Shared parts of ElmanRNN and PalRNN: nn.RNN's parameter names, its default init, batch first."""

    form = "vanilla"

    def __init__(self, input_size: int, hidden_size: int, activation: str = "tanh", *, dtype=None):
        super().__init__()
        self.input_size, self.hidden_size = int(input_size), int(hidden_size)
        self.activation = get_activation(activation).name
        self._phi = get_activation(activation).phi
        self.batch_first, self.num_layers, self.bidirectional = True, 1, False
        H, D = self.hidden_size, self.input_size
        self.weight_ih_l0 = nn.Parameter(torch.empty(H, D, dtype=dtype))  # W_xh
        self.weight_hh_l0 = nn.Parameter(torch.empty(H, H, dtype=dtype))  # W_hh
        self.bias_ih_l0 = nn.Parameter(torch.empty(H, dtype=dtype))  # b_h = bias_ih + bias_hh, as nn.RNN
        self.bias_hh_l0 = nn.Parameter(torch.empty(H, dtype=dtype))
        k = 1.0 / math.sqrt(H)
        for p in self.parameters():
            nn.init.uniform_(p, -k, k)  # nn.RNN's default

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, activation={self.activation!r}, form={self.form!r}"

    def _start(self, x: torch.Tensor, h0: torch.Tensor | None):
        B = x.shape[0]
        u = F.linear(x, self.weight_ih_l0, self.bias_ih_l0 + self.bias_hh_l0)  # (B, T, H): W_xh x_t + b_h, all t
        h = x.new_zeros(B, self.hidden_size) if h0 is None else h0.reshape(B, self.hidden_size)
        return u, h


class ElmanRNN(_VanillaRNN):
    """Elman RNN with any activation (nn.RNN offers tanh and relu only), nn.RNN's names and layout:

        h_t = phi(W_hh h_{t-1} + W_xh x_t + b_ih + b_hh)

    forward(x (B, T, D), h0 (1, B, H) | None) -> (out (B, T, H) = h_1..h_T, h_n (1, B, H)).

    Example:
        >>> rnn = ElmanRNN(2, 8, "sigmoid"); out, h_n = rnn(torch.randn(4, 10, 2))
        >>> tuple(out.shape), torch.equal(out[:, -1], h_n[0])
        ((4, 10, 8), True)
    """

    form = "elman"

    def forward(self, x: torch.Tensor, h0: torch.Tensor | None = None):
        u, h = self._start(x, h0)
        W_T = self.weight_hh_l0.t()
        outs = []
        for u_t in u.unbind(1):  # unbind, not u[:, t]: the backward of u[:, t] fills a zero (B, T, H) every step
            h = self._phi(torch.addmm(u_t, h, W_T))  # h_t = phi(W_hh h_{t-1} + u_t)  (B, H)
            outs.append(h)
        return torch.stack(outs, 1), h.unsqueeze(0)


class PalRNN(_VanillaRNN):
    """The Pascanu/Pal form (Pascanu et al. 2013, eq. 11; seed 001_28bb9cc7f1f7e16d.txt, eq. 1), with nn.RNN's
    names and layout:

        h_t = W_hh phi(h_{t-1}) + W_xh x_t + b_ih + b_hh

    forward(x (B, T, D), h0 (1, B, H) | None) -> (out (B, T, H) = h_1..h_T, h_n (1, B, H)).
    """

    form = "pal"

    def forward(self, x: torch.Tensor, h0: torch.Tensor | None = None):
        u, h = self._start(x, h0)
        W_T = self.weight_hh_l0.t()
        outs = []
        for u_t in u.unbind(1):  # (see ElmanRNN)
            h = torch.addmm(u_t, self._phi(h), W_T)  # h_t = W_hh phi(h_{t-1}) + u_t  (B, H)
            outs.append(h)
        return torch.stack(outs, 1), h.unsqueeze(0)


class SequenceModel(nn.Module):
    """A one-layer RNN module and a Linear readout at every step: forward(x (B, T, D)) -> (out (B, T, O), h (B, T, H))."""

    def __init__(self, rnn: nn.Module, readout: nn.Linear):
        super().__init__()
        self.rnn, self.readout = rnn, readout

    def forward(self, x: torch.Tensor):
        h, _ = self.rnn(x)  # (B, T, H)
        return self.readout(h), h  # o_t = W_hy h_t + b_y  (B, T, O)


def build_model(config, input_size: int, output_size: int, *, seed: int | None = None) -> SequenceModel:
    """The model of a train.TrainConfig (its cell, activation, hidden, dtype, init, seed; see the module
    docstring), initialised by config.init from `seed` (default config.seed); PyTorch's default init draws
    from a forked, seeded global generator, so the caller's global RNG is left as it was.

    The modern kinds (config.cell in MODERN_KINDS) are CellRNN(cell, D, hidden, seed=seed, **cell_options), drawn
    as their papers initialise them: config.init must be "default", and config.activation is not read (IndRNN's
    relu and expRNN's tanh are their defaults; cell_options={"activation": ...} chooses another). cell_options:
    the config's optional dict of the kind's own options (core.build.random_cell), e.g. {"r_min": 0.9} for lru.

    Example:
        >>> from rnnscope.lab.train import TrainConfig
        >>> m = build_model(TrainConfig("adding-le", 10, cell="elman", activation="sigmoid", hidden=4), 2, 1)
        >>> type(m.rnn).__name__, tuple(m(torch.zeros(3, 5, 2))[0].shape)
        ('ElmanRNN', (3, 5, 1))
    """
    seed = config.seed if seed is None else int(seed)
    dtype = get_dtype(config.dtype)
    D, H, O = int(input_size), config.hidden, int(output_size)
    options = getattr(config, "cell_options", None) or {}
    if not isinstance(options, dict):
        raise InputError(f"cell_options: expected a dict of the cell's options, got {type(options).__name__}")
    if config.cell in MODERN_KINDS:
        if config.init != "default":
            raise InputError(f"init: expected 'default' for the {config.cell} cell (initialised as its paper does), "
                             f"got {config.init!r}")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            rnn = CellRNN(config.cell, D, H, seed=seed, dtype=dtype, **options)
            readout = nn.Linear(rnn.hidden_size, O, dtype=dtype)
        return SequenceModel(rnn, readout)
    if options:
        raise InputError(f"cell_options: expected none for the {config.cell} cell, got {', '.join(map(repr, options))}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if config.cell == "elman" and config.activation in ("tanh", "relu"):
            rnn = nn.RNN(D, H, nonlinearity=config.activation, batch_first=True, dtype=dtype)  # fused
        elif config.cell == "elman":
            rnn = ElmanRNN(D, H, config.activation, dtype=dtype)
        elif config.cell == "pal":
            rnn = PalRNN(D, H, config.activation, dtype=dtype)
        elif config.cell == "lstm":
            rnn = nn.LSTM(D, H, batch_first=True, dtype=dtype)
        else:
            rnn = nn.GRU(D, H, batch_first=True, dtype=dtype)
        readout = nn.Linear(H, O, dtype=dtype)
    init_rnn(rnn, readout, config.init, torch.Generator().manual_seed(seed))
    return SequenceModel(rnn, readout)


def as_cell(rnn: nn.Module, *, dtype: torch.dtype | None = None, differentiable: bool = False):
    """The rnnscope cell of a training network's recurrent module, cast to dtype (None: the module's own): a
    CellRNN's rnn.as_cell(dtype, differentiable), else interop.torch_models.cell_from_module (nn.RNN, nn.LSTM,
    nn.GRU, ElmanRNN, PalRNN). Detached from the module's parameters unless differentiable.

    Example:
        >>> as_cell(torch.nn.GRU(2, 4, batch_first=True), dtype=torch.float64).kind
        'gru'
        >>> as_cell(CellRNN("indrnn", 2, 4)).dtype
        torch.float32
    """
    if isinstance(rnn, CellRNN):
        return rnn.as_cell(dtype, differentiable=differentiable)
    if dtype is None:
        dtype = next(rnn.parameters()).dtype
    if differentiable:
        return cell_from_module(rnn, dtype=dtype, differentiable=True)
    return cell_from_module(rnn, dtype=dtype)
