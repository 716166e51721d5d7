"""The gradient-flow snapshot of a training network: log10 ||dL/dh_k||, k = 0..T, by rnnscope's own engine.

    cell   = cell_from_module(model.rnn)              the network's weights as an rnnscope cell (float64)
    trace  = unroll(cell, x)                          s_0 .. s_T (h, or (h, c) for LSTM)
    direct = d+L/dh_k                                 the immediate partials, through the readout only
    g_{k-1} = g_k ds_k/ds_{k-1} + direct_{k-1}        the adjoint sweep (gradients.adjoint), log domain
    profile = mean over sequences of log10 ||g_k^h||  the h part of g_k (its first h_size entries), k = 0 .. T

The model is a networks.SequenceModel (model.rnn, model.readout) or anything with those two attributes.
Batches are anything with x (B, T, D), y and mask batch first (a tasks.Batch or a dataclass like it).

Legend: T time, B batch, S state size (H, or 2H for LSTM's (h, c); a modern cell's own), H = cell.h_size the part
of the state the readout reads, D input size.

Example:
    >>> from rnnscope.lab.networks import SequenceModel
    >>> from rnnscope.lab.tasks import get_task
    >>> task = get_task("adding-le")
    >>> model = SequenceModel(torch.nn.RNN(2, 6, batch_first=True), torch.nn.Linear(6, 1))
    >>> snap = gradient_snapshot(model, task.sample(3, 8, torch.Generator().manual_seed(0)), task.loss)
    >>> tuple(snap.log10_norm.shape), tuple(snap.profile.shape)       # (T + 1, B), (T + 1,)
    ((9, 3), (9,))
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from ..core.unroll import unroll
from ..gradients.adjoint import adjoints
from .networks import as_cell

__all__ = ["Snapshot", "gradient_snapshot"]


@dataclass(frozen=True)
class Snapshot:
    """The adjoint profile of a model on a batch: log10 ||dL/dh_k||_2 for k = 0..T (h part of LSTM's (h, c))."""

    log10_norm: torch.Tensor  # (T+1, B) per sequence; -inf where the adjoint is exactly 0
    loss: float

    @property
    def profile(self) -> torch.Tensor:
        """(T+1,) the mean over sequences of log10 ||dL/dh_k|| (a geometric mean of the norms)."""
        return self.log10_norm.mean(dim=1)


def _batch_with(batch, **tensors):
    if dataclasses.is_dataclass(batch):
        return dataclasses.replace(batch, **tensors)
    return type(batch)(**{**vars(batch), **tensors})


def first_sequences(batch, n: int):
    """The first n sequences of a batch (x, y, mask are batch first)."""
    if batch.x.shape[0] <= n:
        return batch
    return _batch_with(batch, x=batch.x[:n], y=batch.y[:n], mask=batch.mask[:n])


def cast_batch(batch, dtype: torch.dtype):
    """x (and regression targets) in dtype."""
    if batch.x.dtype == dtype:
        return batch
    y = batch.y.to(dtype) if batch.y.is_floating_point() else batch.y
    return _batch_with(batch, x=batch.x.to(dtype), y=y)


def gradient_snapshot(model, batch, loss_fn: Callable, *, dtype: torch.dtype = torch.float64) -> Snapshot:
    """log10 ||dL/dh_k||, k = 0..T, for every sequence of batch, by rnnscope's adjoint engine:

        cell   = networks.as_cell(model.rnn, dtype)    the module's weights, in dtype
        trace  = unroll(cell, x)                       s_0..s_T
        direct = dL/dh_k through the readout only      torch.autograd.grad(loss_fn(W_hy h + b_y, batch), h)
        g      = adjoints(cell, trace, direct)         g_{k-1} = g_k ds_k/ds_{k-1} + direct_{k-1}, log domain

    L = loss_fn(out, batch), the task's loss as training differentiates it (a mean over the batch, so each
    sequence's adjoint carries the factor 1/B of that mean). For LSTM the state is (h, c); the profile is
    of the h part (direct is 0 on c); likewise the first h_size entries of a modern cell's state (sLSTM's
    (h, c, n, m), coRNN's (y, z)).
    """
    rnn = model.rnn
    cell = as_cell(rnn, dtype=dtype)
    x = batch.x.to(dtype).transpose(0, 1)  # (T, B, D)
    trace = unroll(cell, x)
    T, B = trace.T, trace.B
    H = cell.h_size  # the part the readout reads: h_t = s_t[:, :H]
    h = trace.states[1:, :, :H].transpose(0, 1).detach().requires_grad_(True)  # (B, T, H) h_1..h_T
    W_hy = model.readout.weight.detach().to(dtype)
    b_y = None if model.readout.bias is None else model.readout.bias.detach().to(dtype)
    with torch.enable_grad():
        loss = loss_fn(F.linear(h, W_hy, b_y), cast_batch(batch, dtype))  # o_t = W_hy h_t + b_y
        (g,) = torch.autograd.grad(loss, h)  # (B, T, H) immediate partials d+L/dh_k
    direct = torch.zeros(T, B, cell.state_size, dtype=dtype)
    direct[:, :, :H] = g.transpose(0, 1)
    adj = adjoints(cell, trace, direct)
    log10 = adj.log10_norm  # (T+1, B) of the full state
    if cell.state_size != H:  # LSTM, sLSTM, coRNN: ||h part|| = ||g|| * ||unit[:H]||
        log10 = log10 + torch.log10(torch.linalg.vector_norm(adj.unit[:, :, :H], dim=-1))
    return Snapshot(log10, loss.detach().item())
