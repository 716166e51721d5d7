"""Output heads and losses.

    o_t = W_hy h_t + b_y                                            (B, O)
    mse: E_t = mean_b 0.5 * sum_o (o_t - y_t)^2         dE_t/do_t = (o_t - y_t) / B
    ce:  E_t = mean_b -log softmax(o_t)[y_t]            dE_t/do_t = (softmax(o_t) - onehot(y_t)) / B
    loss_at = "all":  E = sum_t E_t;     loss_at = "last":  E = E_T

Example:
    >>> head = Head(torch.eye(2), torch.zeros(2), "mse")
    >>> float(head.step_loss(torch.ones(1, 2), torch.zeros(1, 2)))
    1.0
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .errors import InputError
from .vocab import LOSS_AT, LOSSES

__all__ = ["Head", "LOSS_AT"]



@dataclass(frozen=True)
class Head:
    """A linear read-out o = W_hy h + b_y with an MSE or softmax cross-entropy loss."""

    W_hy: torch.Tensor  # (O, S)
    b_y: torch.Tensor  # (O,)
    kind: str = "mse"

    def __post_init__(self) -> None:
        if self.kind not in LOSSES:
            raise InputError(f"head: expected one of {', '.join(LOSSES)}, got {self.kind!r}")
        if not isinstance(self.W_hy, torch.Tensor) or self.W_hy.dim() != 2:
            raise InputError(f"W_hy: expected a matrix (O, S), got {getattr(self.W_hy, 'shape', self.W_hy)!r}")
        O = self.W_hy.shape[0]
        if not isinstance(self.b_y, torch.Tensor) or tuple(self.b_y.shape) != (O,):
            raise InputError(f"b_y: expected shape ({O},), got {tuple(getattr(self.b_y, 'shape', ()))}")
        for name, m in (("W_hy", self.W_hy), ("b_y", self.b_y)):
            if not torch.isfinite(m).all():
                raise InputError(f"{name}: expected finite numbers, got NaN or Inf")

    @classmethod
    def identity(cls, S: int, kind: str = "mse", dtype: torch.dtype = torch.float64) -> "Head":
        """o_t = h_t (W_hy = I, b_y = 0): the head used when none is given."""
        return cls(torch.eye(S, dtype=dtype), torch.zeros(S, dtype=dtype), kind)

    @property
    def output_size(self) -> int:
        return self.W_hy.shape[0]

    def outputs(self, h: torch.Tensor) -> torch.Tensor:
        """o = W_hy h + b_y: h (..., S) -> (..., O)."""
        return h @ self.W_hy.T + self.b_y

    def step_loss(self, o: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """E_t: o (B, O), y (B, O) floats (mse) or (B,) class indices (ce) -> scalar, mean over the batch."""
        if self.kind == "mse":
            return 0.5 * ((o - y) ** 2).sum(-1).mean()
        return -torch.log_softmax(o, dim=-1).gather(-1, y.unsqueeze(-1)).squeeze(-1).mean()

    def dE_do(self, o: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """dE_t/do_t (B, O) for the batch-mean loss."""
        B = o.shape[0]
        if self.kind == "mse":
            return (o - y) / B
        p = torch.softmax(o, dim=-1)
        return (p - torch.nn.functional.one_hot(y, o.shape[-1]).to(o.dtype)) / B

    def loss_steps(self, loss_at: str, T: int) -> range:
        """The steps t (1-based) that carry a loss term."""
        if loss_at not in LOSS_AT:
            raise InputError(f"loss-at: expected one of {', '.join(LOSS_AT)}, got {loss_at!r}")
        return range(1, T + 1) if loss_at == "all" else range(T, T + 1)

    def loss(self, h: torch.Tensor, y: torch.Tensor, loss_at: str = "all") -> torch.Tensor:
        """E for hidden states h_1..h_T (T, B, S) and targets y (T, B, O) or (T, B)."""
        return sum(self.step_loss(self.outputs(h[t - 1]), y[t - 1]) for t in self.loss_steps(loss_at, h.shape[0]))

    def check_targets(self, y, T: int, B: int) -> torch.Tensor:
        """Targets as a tensor (T, B, O) floats for mse, (T, B) int64 class indices for ce; (T, O) / (T,) mean B = 1."""
        y = torch.as_tensor(y)
        O = self.output_size
        given = tuple(y.shape)  # for the messages: the shape as it arrived, before (T, O) becomes (T, 1, O)
        if self.kind == "mse":
            if y.dim() == 2:
                y = y.unsqueeze(1)
            if tuple(y.shape) != (T, B, O):
                raise InputError(f"targets: expected floats of shape ({T}, {O}) or ({T}, {B}, {O}) for the mse head, "
                                 f"got {given}")
            y = y.to(self.W_hy.dtype)
            if not torch.isfinite(y).all():
                raise InputError("targets: expected finite numbers, got NaN or Inf")
            return y
        if torch.is_floating_point(y):
            if not torch.isfinite(y).all() or not torch.equal(y, torch.round(y)):
                raise InputError(f"targets: expected integer class indices for the ce head, got non-integer values "
                                 f"(dtype {str(y.dtype).removeprefix('torch.')})")
        elif y.dtype == torch.bool or torch.is_complex(y):
            raise InputError(f"targets: expected integer class indices for the ce head, got dtype "
                             f"{str(y.dtype).removeprefix('torch.')}")
        if y.dim() == 1:
            y = y.unsqueeze(1)
        if tuple(y.shape) != (T, B):
            raise InputError(f"targets: expected class indices of shape ({T},) or ({T}, {B}) for the ce head, "
                             f"got {given}")
        y = y.to(torch.int64)
        if y.numel() and (int(y.min()) < 0 or int(y.max()) >= O):
            raise InputError(f"targets: expected class indices in [0, {O - 1}] (O = {O} outputs), got values in [{int(y.min())}, {int(y.max())}]")
        return y
