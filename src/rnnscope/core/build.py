"""Building cells and heads: random initialisations, or given arrays (a weights file).

Random models (`random_cell`), W_hh by `init` with gain g:
    normal      W_hh ~ N(0, g^2 / S)    (the circular law: rho(W_hh) -> g, sigma_max -> 2 g as S grows)
    orthogonal  W_hh = g Q, Q Haar-orthogonal (every singular value equals g: normal, rho = sigma_max = g)
    identity    W_hh = g I               (IRNN, Le et al. 2015)
W_xh ~ N(0, 1/D), biases 0. Gated cells use the same init for each gate's H x H block of W_hh.

Arrays (`cell_from_arrays`), names by direction:
    elman, pal: W_hh (S, S), W_xh (S, D), b_h (S,)
    lstm, gru:  W_hh (G H, H), W_xh (G H, D), b_h (G H,) = PyTorch's bias_ih, optional b_hh (G H,) = bias_hh
                (G = 4 for LSTM, 3 for GRU, PyTorch's gate order)
    head:       optional W_hy (O, S), b_y (O,)

Example:
    >>> cell = random_cell("elman", "tanh", hidden=8, input_size=2, gain=1.5, seed=0)
    >>> cell.W_hh.shape, cell.W_xh.shape
    (torch.Size([8, 8]), torch.Size([8, 2]))
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import torch

from .activations import get_activation
from .cells import CELL_KINDS, Cell, ElmanCell, GRUCell, LSTMCell, PalCell
from .errors import InputError
from .heads import Head

__all__ = ["INITS", "recurrent_matrix", "random_cell", "cell_from_arrays", "head_from_arrays", "DTYPES", "get_dtype"]

INITS = ("normal", "orthogonal", "identity")
DTYPES = {"float64": torch.float64, "float32": torch.float32}
_GATES = {"lstm": 4, "gru": 3}


def get_dtype(name: str) -> torch.dtype:
    try:
        return DTYPES[name]
    except (KeyError, TypeError):
        raise InputError(f"dtype: expected one of {', '.join(DTYPES)}, got {name!r}") from None


def _check_kind(kind: str) -> None:
    if kind not in CELL_KINDS:
        raise InputError(f"cell: expected one of {', '.join(CELL_KINDS)}, got {kind!r}")


def recurrent_matrix(S: int, gain: float, init: str, gen: torch.Generator, dtype=torch.float64) -> torch.Tensor:
    """An (S, S) recurrent matrix by init 'normal' | 'orthogonal' | 'identity', scaled by gain."""
    if init == "normal":
        return torch.randn(S, S, generator=gen, dtype=torch.float64).mul_(gain / S**0.5).to(dtype)
    if init == "orthogonal":
        Q, R = torch.linalg.qr(torch.randn(S, S, generator=gen, dtype=torch.float64))
        Q = Q * torch.sign(torch.diagonal(R))  # Haar measure (Mezzadri 2007)
        return (gain * Q).to(dtype)
    if init == "identity":
        return (gain * torch.eye(S, dtype=torch.float64)).to(dtype)
    raise InputError(f"init: expected one of {', '.join(INITS)}, got {init!r}")


def random_cell(kind: str = "elman", activation: str = "tanh", *, hidden: int = 32, input_size: int = 1,
                gain: float = 1.0, init: str = "normal", seed: int = 0, dtype: torch.dtype = torch.float64) -> Cell:
    """A random cell (see the module docstring for the distributions)."""
    _check_kind(kind)
    if not isinstance(hidden, int) or hidden < 1:
        raise InputError(f"hidden: expected a positive integer, got {hidden!r}")
    if not isinstance(input_size, int) or input_size < 1:
        raise InputError(f"input-size: expected a positive integer, got {input_size!r}")
    if not (isinstance(gain, (int, float)) and np.isfinite(gain)):
        raise InputError(f"gain: expected a finite number, got {gain!r}")
    if init not in INITS:
        raise InputError(f"init: expected one of {', '.join(INITS)}, got {init!r}")
    gen = torch.Generator().manual_seed(int(seed))
    H, D = hidden, input_size
    if kind in ("elman", "pal"):
        act = get_activation(activation)
        W_hh = recurrent_matrix(H, gain, init, gen, dtype)
        W_xh = (torch.randn(H, D, generator=gen, dtype=torch.float64) / D**0.5).to(dtype)
        cls = ElmanCell if kind == "elman" else PalCell
        return cls(W_hh, W_xh, torch.zeros(H, dtype=dtype), act)
    G = _GATES[kind]
    W_hh = torch.cat([recurrent_matrix(H, gain, init, gen, dtype) for _ in range(G)])
    W_xh = (torch.randn(G * H, D, generator=gen, dtype=torch.float64) / D**0.5).to(dtype)
    zeros = torch.zeros(G * H, dtype=dtype)
    return (LSTMCell if kind == "lstm" else GRUCell)(W_xh, W_hh, zeros, zeros.clone())


def _tensor(arrays: Mapping[str, np.ndarray], name: str, dtype: torch.dtype, where: str) -> torch.Tensor:
    if name not in arrays:
        raise InputError(f"{where}: expected an array named {name!r}, got only {sorted(arrays) or 'no arrays'}")
    return torch.as_tensor(np.asarray(arrays[name], dtype=np.float64)).to(dtype)


def cell_from_arrays(kind: str, activation: str, arrays: Mapping[str, np.ndarray], *,
                     dtype: torch.dtype = torch.float64, where: str = "weights") -> Cell:
    """A cell from named arrays (a weights .npz), with shape checks that name the offending array."""
    _check_kind(kind)
    W_hh = _tensor(arrays, "W_hh", dtype, where)
    W_xh = _tensor(arrays, "W_xh", dtype, where)
    b_h = _tensor(arrays, "b_h", dtype, where)
    if kind in ("elman", "pal"):
        act = get_activation(activation)
        if W_hh.dim() != 2 or W_hh.shape[0] != W_hh.shape[1]:
            raise InputError(f"{where}: expected W_hh of shape (S, S), got {tuple(W_hh.shape)}")
        S = W_hh.shape[0]
        if W_xh.dim() != 2 or W_xh.shape[0] != S:
            raise InputError(f"{where}: expected W_xh of shape ({S}, D), got {tuple(W_xh.shape)}")
        if tuple(b_h.shape) != (S,):
            raise InputError(f"{where}: expected b_h of shape ({S},), got {tuple(b_h.shape)}")
        return (ElmanCell if kind == "elman" else PalCell)(W_hh, W_xh, b_h, act)
    G = _GATES[kind]
    if W_hh.dim() != 2 or W_hh.shape[0] != G * W_hh.shape[1]:
        raise InputError(f"{where}: expected W_hh of shape ({G}*H, H) for {kind}, got {tuple(W_hh.shape)}")
    H = W_hh.shape[1]
    if W_xh.dim() != 2 or W_xh.shape[0] != G * H:
        raise InputError(f"{where}: expected W_xh of shape ({G * H}, D) for {kind}, got {tuple(W_xh.shape)}")
    if tuple(b_h.shape) != (G * H,):
        raise InputError(f"{where}: expected b_h of shape ({G * H},) for {kind}, got {tuple(b_h.shape)}")
    b_hh = _tensor(arrays, "b_hh", dtype, where) if "b_hh" in arrays else torch.zeros(G * H, dtype=dtype)
    if tuple(b_hh.shape) != (G * H,):
        raise InputError(f"{where}: expected b_hh of shape ({G * H},) for {kind}, got {tuple(b_hh.shape)}")
    return (LSTMCell if kind == "lstm" else GRUCell)(W_xh, W_hh, b_h, b_hh)


def head_from_arrays(arrays: Mapping[str, np.ndarray], S: int, kind: str = "mse", *,
                     dtype: torch.dtype = torch.float64, where: str = "weights") -> Head:
    """The head o = W_hy h + b_y from arrays; W_hy absent means the identity head o = h (b_y = 0)."""
    if "W_hy" not in arrays:
        if "b_y" in arrays:
            raise InputError(f"{where}: expected W_hy together with b_y, got b_y alone")
        return Head.identity(S, kind, dtype)
    W_hy = _tensor(arrays, "W_hy", dtype, where)
    if W_hy.dim() != 2 or W_hy.shape[1] != S:
        raise InputError(f"{where}: expected W_hy of shape (O, {S}), got {tuple(W_hy.shape)}")
    b_y = _tensor(arrays, "b_y", dtype, where) if "b_y" in arrays else torch.zeros(W_hy.shape[0], dtype=dtype)
    if tuple(b_y.shape) != (W_hy.shape[0],):
        raise InputError(f"{where}: expected b_y of shape ({W_hy.shape[0]},), got {tuple(b_y.shape)}")
    return Head(W_hy, b_y, kind)
