"""The loss L of a diagnosis: the user's loss_fn on the model's output, checked; or a loss against targets.

    apply_loss(loss_fn, output, targets)   L = loss_fn(output) or loss_fn(output, targets): a scalar tensor, or an
                                           InputError saying what the loss was given and what went wrong
    default_loss(output, ...)              a bare recurrent module without loss_fn: the sum of the entries of the
                                           last top-layer output (output[T] time-major)
    target_loss(kind, targets)             mse / ce against targets of every step or of the last step

Finiteness is not checked here: a non-finite L is for the caller to report (diagnose's NaN hunt).

Example:
    >>> float(apply_loss(lambda out, y: (out - y).pow(2).sum(), torch.ones(2), torch.zeros(2)))
    2.0
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from ..core.errors import InputError
from ..core.vocab import LOSSES, check

__all__ = ["apply_loss", "default_loss", "target_loss", "as_targets"]


def apply_loss(loss_fn: Callable | None, output, targets=None, *, what: str = "the output") -> torch.Tensor:
    """L = loss_fn(output) or loss_fn(output, targets), reshaped to a 0-d tensor (see the module docstring)."""
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
        shape = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
        tshape = "" if targets is None else f" and targets of shape {tuple(torch.as_tensor(targets).shape)}"
        raise InputError(f"loss_fn: expected it to accept {what} ({shape}){tshape}, got {type(e).__name__}: {e}") from None
    if not isinstance(L, torch.Tensor) or L.numel() != 1:
        got = tuple(L.shape) if isinstance(L, torch.Tensor) else type(L).__name__
        raise InputError(f"loss_fn: expected a scalar tensor, got {got}")
    return L.reshape(())


def default_loss(time_major: torch.Tensor, targets=None) -> torch.Tensor:
    """The sum of the entries of the last top-layer output, time_major (T, B, O) or (T, O)."""
    if targets is not None:
        raise InputError("targets: expected a loss_fn to compare them with, got targets without a loss_fn")
    return time_major[-1].sum()


def as_targets(targets, dtype: torch.dtype):
    """Targets as a tensor: floating ones in the analysis dtype, integer class indices as they are; None stays."""
    if targets is None:
        return None
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
    if kind == "ce" and (y.is_floating_point() or y.dtype == torch.bool):  # the dtype as the file's, numpy's name
        raise InputError(f"targets: expected integer class indices for ce, got dtype "
                         f"{str(y.dtype).removeprefix('torch.')}")
    if kind == "mse" and y.dtype == torch.bool:
        raise InputError("targets: expected numbers for mse, got dtype bool")

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
