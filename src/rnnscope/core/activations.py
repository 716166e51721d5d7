"""Pointwise activations phi with their derivatives phi' and the bound gamma = sup |phi'|.

The seeds bound every backward step by gamma (seed 000, 003; Pascanu et al. 2013):

    sigmoid' = sigmoid (1 - sigmoid) <= 1/4   (equality at a = 0)
    tanh'    = 1 - tanh^2            <= 1     (equality at a = 0)
    relu'    = [a > 0]               <= 1     (a.e.; we take relu'(0) = 0 as torch does)
    identity'= 1                     =  1

Example:
    >>> act = get_activation("sigmoid")
    >>> float(act.dphi(torch.zeros(1))[0]), act.gamma
    (0.25, 0.25)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from .errors import InputError

__all__ = ["Activation", "ACTIVATIONS", "get_activation"]


@dataclass(frozen=True)
class Activation:
    """phi, its derivative phi' (both elementwise) and gamma = sup_a |phi'(a)|."""

    name: str
    phi: Callable[[torch.Tensor], torch.Tensor]
    dphi: Callable[[torch.Tensor], torch.Tensor]
    gamma: float


def _dsigmoid(a: torch.Tensor) -> torch.Tensor:
    s = torch.sigmoid(a)
    return s * (1.0 - s)


def _dtanh(a: torch.Tensor) -> torch.Tensor:
    t = torch.tanh(a)
    return 1.0 - t * t


def _drelu(a: torch.Tensor) -> torch.Tensor:
    # torch's autograd uses relu'(0) = 0; match it so hand gradients equal autograd exactly.
    return (a > 0).to(a.dtype)


def _identity(a: torch.Tensor) -> torch.Tensor:
    return a


def _didentity(a: torch.Tensor) -> torch.Tensor:
    return torch.ones_like(a)


ACTIVATIONS: dict[str, Activation] = {
    "sigmoid": Activation("sigmoid", torch.sigmoid, _dsigmoid, 0.25),
    "tanh": Activation("tanh", torch.tanh, _dtanh, 1.0),
    "relu": Activation("relu", torch.relu, _drelu, 1.0),
    "identity": Activation("identity", _identity, _didentity, 1.0),
}


def get_activation(name: str | Activation) -> Activation:
    """Look up an activation by name ('sigmoid', 'tanh', 'relu', 'identity')."""
    if isinstance(name, Activation):
        return name
    try:
        return ACTIVATIONS[name]
    except (KeyError, TypeError):
        raise InputError(
            f"activation: expected one of {', '.join(ACTIVATIONS)}, got {name!r}"
        ) from None
