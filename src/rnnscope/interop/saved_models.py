"""Saved recurrent models: a state_dict (with an architecture spec --arch, one recurrent module picked by its key
prefix --module) or a whole pickled module (only with trust: unpickling runs code named in the file).

    parse_arch("lstm:input=3,hidden=8,layers=2")   the module's keyword arguments
    load_recurrent(path, arch, trust=, module=)     Loaded(module, prefix, unused_keys): the recurrent module and
                                                    the state_dict keys it did not use (a head, an embedding)

Example:
    >>> parse_arch("gru:input=4,hidden=16,layers=2,bidirectional")["layers"]
    2
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from torch import nn

from ..core.errors import InputError
from .torch_models import module_kind

__all__ = ["ARCH_KINDS", "ARCH_HELP", "parse_arch", "build_module", "load_model", "Loaded", "load_recurrent",
           "select_recurrent"]


ARCH_KINDS = ("rnn_tanh", "rnn_relu", "lstm", "gru")
ARCH_HELP = "KIND:input=D,hidden=H[,layers=L][,bidirectional][,batch_first][,proj=P][,bias=false]"


def parse_arch(spec: str) -> dict:
    """'lstm:input=3,hidden=8,layers=2,bidirectional,batch_first,proj=4,bias=false' -> the module's keyword arguments.

    KIND is rnn_tanh, rnn_relu, lstm or gru; input and hidden are required; layers (default 1), proj (lstm only,
    default 0), bias=true|false (default true), and the flags bidirectional and batch_first.
    """
    if not isinstance(spec, str) or ":" not in spec:
        raise InputError(f"arch: expected {ARCH_HELP} (KIND one of {', '.join(ARCH_KINDS)}), got {spec!r}")
    kind, _, rest = spec.partition(":")
    kind = kind.strip().lower()
    if kind not in ARCH_KINDS:
        raise InputError(f"arch: expected KIND one of {', '.join(ARCH_KINDS)}, got {kind!r}")
    out = {"kind": kind, "layers": 1, "bidirectional": False, "batch_first": False, "proj": 0, "bias": True}
    ints = {"input", "hidden", "layers", "proj"}
    for item in (p.strip() for p in rest.split(",")):
        if not item:
            continue
        key, eq, val = (s.strip() for s in item.partition("="))
        key = key.lower()
        if key in ("bidirectional", "batch_first") and not eq:
            out[key] = True
        elif key in ("bidirectional", "batch_first", "bias") and eq:
            if val.lower() not in ("true", "false"):
                raise InputError(f"arch: expected {key}=true or {key}=false, got {item!r}")
            out[key] = val.lower() == "true"
        elif key in ints and eq:
            try:
                out[key] = int(val)
            except ValueError:
                raise InputError(f"arch: expected an integer for {key}, got {item!r}") from None
            if out[key] < (0 if key == "proj" else 1):
                raise InputError(f"arch: expected {key} >= {0 if key == 'proj' else 1}, got {item!r}")
        else:
            raise InputError(f"arch: expected items input=D, hidden=H, layers=L, proj=P, bias=true|false, "
                             f"bidirectional, batch_first, got {item!r}")
    missing = [k for k in ("input", "hidden") if k not in out]
    if missing:
        raise InputError(f"arch: expected {' and '.join(k + '=...' for k in missing)} in {ARCH_HELP}, got {spec!r}")
    if out["proj"] and kind != "lstm":
        raise InputError(f"arch: expected proj only for lstm, got proj={out['proj']} for {kind}")
    if out["proj"] and out["proj"] >= out["hidden"]:
        raise InputError(f"arch: expected proj < hidden (as nn.LSTM requires), got proj={out['proj']}, hidden={out['hidden']}")
    return out


def build_module(arch: dict, dtype: torch.dtype = torch.float32) -> nn.Module:
    """The (untrained) module of a parsed arch: nn.RNN / nn.LSTM / nn.GRU."""
    kw = dict(num_layers=arch["layers"], bias=arch["bias"], batch_first=arch["batch_first"],
              bidirectional=arch["bidirectional"], dtype=dtype)
    kind = arch["kind"]
    if kind == "lstm":
        return nn.LSTM(arch["input"], arch["hidden"], proj_size=arch["proj"], **kw)
    if kind == "gru":
        return nn.GRU(arch["input"], arch["hidden"], **kw)
    return nn.RNN(arch["input"], arch["hidden"], nonlinearity=kind[4:], **kw)


def select_recurrent(sd: dict, module: str | None = None) -> tuple[str, dict, tuple[str, ...]]:
    """(prefix, its entries with the prefix stripped, the keys not used) of the one recurrent module in a state_dict.

    The recurrent modules are the prefixes of the keys ending in 'weight_ih_l0' ('rnn.weight_ih_l0' -> 'rnn.').
    One: it is taken. Several: module (the prefix, with or without its trailing dot) picks one; without it an
    InputError lists them. None: the state_dict is returned whole (the strict load then says what does not fit).

        >>> sd = {"emb.weight": 0, "rnn.weight_ih_l0": 1, "rnn.bias_ih_l0": 2, "head.bias": 3}
        >>> select_recurrent(sd)
        ('rnn.', {'weight_ih_l0': 1, 'bias_ih_l0': 2}, ('emb.weight', 'head.bias'))
    """
    prefixes = sorted({k[: -len("weight_ih_l0")] for k in sd if k.endswith("weight_ih_l0")})
    shown = ", ".join(repr(p.removesuffix(".")) for p in prefixes)
    if module is not None:
        want = module.removesuffix(".")
        picked = [p for p in prefixes if p.removesuffix(".") == want]
        if not picked:
            raise InputError(f"module: expected one of the recurrent modules in the state_dict ({shown or 'none'}), "
                             f"got {module!r}")
        pre = picked[0]
    elif len(prefixes) > 1:
        raise InputError(f"module: expected --module PREFIX to pick one of the {len(prefixes)} recurrent modules in "
                         f"the state_dict ({shown}), got none")
    elif not prefixes:
        return "", sd, ()
    else:
        pre = prefixes[0]
    if pre:
        used = [k for k in sd if k.startswith(pre)]
    else:  # a bare module's keys beside prefixed ones: those of the other modules carry their own prefix
        used = [k for k in sd if not any(k.startswith(p) for p in prefixes if p)]
    kept = set(used)
    return pre, {k[len(pre):]: sd[k] for k in used}, tuple(k for k in sd if k not in kept)


@dataclass(frozen=True)
class Loaded:
    """What load_recurrent read: the module, the state_dict prefix it came from, the state_dict keys not used."""

    module: nn.Module
    prefix: str = ""
    unused_keys: tuple[str, ...] = ()


def load_model(path, arch: str | None = None, *, trust: bool = False, module: str | None = None) -> nn.Module:
    """A recurrent module from a file: a state_dict with an arch spec (see parse_arch), or a whole pickled module.

    The file is read with torch.load(weights_only=True): tensors and containers only. A whole pickled module
    needs trust=True (weights_only=False), because unpickling it runs code named in the file. A state_dict of a
    bigger model is accepted when one prefix holds the recurrent weights ('rnn.weight_ih_l0', ...); when several
    do, module (the prefix, e.g. 'encoder.rnn') picks one (select_recurrent). load_recurrent also says which keys
    were not used.
    """
    return load_recurrent(path, arch, trust=trust, module=module).module


def load_recurrent(path, arch: str | None = None, *, trust: bool = False, module: str | None = None) -> Loaded:
    """load_model, with the state_dict prefix taken and the keys left unused (see load_model)."""
    import pickle
    from pathlib import Path

    p = Path(path)
    if not p.exists():
        raise InputError(f"model: expected an existing file, got {str(p)!r} (no such file)")
    if not p.is_file():
        raise InputError(f"model: expected a file, got {str(p)!r} (a directory or special file)")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=not trust)
    except pickle.UnpicklingError as e:
        msg = str(e)
        glob = re.search(r"Unsupported global: GLOBAL (\S+)", msg)
        if glob:  # a pickled object (a whole module): it names code to import and run
            raise InputError(f"model: expected a state_dict (tensors only), got a pickled {glob.group(1)} in {str(p)!r}; "
                             f"loading it would run code named in the file, so it is refused by default: pass --trust "
                             f"only for a file whose source you trust, or save model.state_dict() and pass --arch") from None
        why = re.search(r"WeightsUnpickler error:\s*(.+?)(?:\n|$)", msg.strip())
        raise InputError(f"model: expected a readable torch file (torch.save), got {str(p)!r} (corrupt or not a torch "
                         f"file: {why.group(1).strip() if why else msg.splitlines()[0]})") from None
    except Exception as e:  # a corrupt file fails in many ways (RuntimeError from the zip reader, EOFError, ...)
        raise InputError(f"model: expected a readable torch file, got {str(p)!r} ({type(e).__name__}: "
                         f"{str(e).splitlines()[0] if str(e) else ''})") from None
    if isinstance(obj, nn.Module):
        if arch is not None:
            raise InputError(f"arch: expected no --arch for a file holding a whole module, got {arch!r}")
        if module is not None:
            names = [n for n, m in obj.named_modules() if n and isinstance(m, nn.RNNBase)]
            if module not in names:
                raise InputError(f"module: expected one of the recurrent submodules of the pickled "
                                 f"{type(obj).__name__} ({', '.join(map(repr, names)) or 'none'}), got {module!r}")
            obj = obj.get_submodule(module)
        module_kind(obj)  # an InputError for an unsupported module
        return Loaded(obj, module or "")
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise InputError(f"model: expected a state_dict (names -> tensors) or a whole module, got {type(obj).__name__} "
                         f"in {str(p)!r}")
    if arch is None:
        raise InputError(f"arch: expected --arch {ARCH_HELP} for the state_dict in {str(p)!r}, got none")
    a = parse_arch(arch)
    pre, sd, unused = select_recurrent(obj, module)
    floats = [v.dtype for v in sd.values() if v.is_floating_point()]
    m = build_module(a, floats[0] if floats else torch.float32)
    try:
        m.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        msg = " ".join(str(e).split())
        raise InputError(f"model: expected the weights of {arch!r}, got a state_dict that does not fit it ({msg[:400]})") from None
    return Loaded(m, pre.removesuffix("."), unused)
