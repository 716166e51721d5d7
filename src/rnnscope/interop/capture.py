"""Find the recurrent submodules of a user's model and put their exact re-runs in the model's own graph.

    calls = capture_forward(model, inputs)      one forward of model(*inputs) in which every nn.RNN / nn.LSTM /
                                                nn.GRU submodule (any depth of nesting) is re-run exactly
    own = own_forward(model, inputs)            the model's own forward (no_grad), each recurrent call's output kept

For each call of a recurrent submodule m (named by its path in model.named_modules(), e.g. "encoder.rnn"),
the analysis forward reads what m received, its input x and its h0 / (h0, c0) if given (the tensors of the
user's graph, gradients still attached), re-runs m on them exactly (torch_models.rerun: every state of every
layer and direction recorded) IN PLACE OF m's own forward (m.forward is replaced for the call: nothing is
computed twice), and returns leaf tensors holding the re-run's output and h_n (c_n), requires_grad set. The
rest of the forward (the user's head, a decoder that reads h_n, ...) reads those leaves, so that autograd of
the user's loss L gives, for each call, the direct terms of the adjoint sweep:

    dL/d(output) (the upstream u_k of the top layer),   dL/d(h_n), dL/d(c_n) (dL/ds_T of each layer, direction)

and, for the parameters outside the recurrent submodules (an embedding, a head), their gradients.
push_back(call, ...) then sends the sweep's dL/dx (and dL/dh0) into the graph that produced m's input, which
accumulates onto the leaves of earlier calls (an encoder feeding a decoder) and the parameters before it (an
embedding) before they are processed. Call.agreement compares the re-run's output with m's own output in the
own forward (another dtype: the model's own, when the analysis runs on an upcast copy): max |re-run - own| /
max(1, max |own|).

A PackedSequence input (pack_padded_sequence / pack_sequence, sorted or not) is unpacked
(pad_packed_sequence, in the module's layout, the original batch order: T = the longest length) and re-run
with its lengths (rerun(..., lengths=L): every trace's steps k > L_b frozen, s_k = s_{L_b}); the output leaf
is the padded output (zeros beyond L_b) and the module returns it packed like its input, differentiably

    out (module layout, padded leaf) -> PackedSequence(out[t, sorted[:batch_sizes[t]]] over t, batch_sizes,
                                                       sorted_indices, unsorted_indices)   (_pack_like)

so that the user's pad_packed_sequence (or .data) reads the leaf and dL/d(out) is zero beyond each length;
h_n, c_n in the original batch order, as torch returns them. Call.packed keeps the input PackedSequence,
Call.lengths its lengths (B,), Call.x its .data (the tensor of the user's graph); push_back re-packs dL/dx
(padded, module layout) with the same indices onto .data, so that an embedding before pack_padded_sequence
receives it. A note says "NAME: packed input, steps beyond each sequence's length (L = lo..hi) excluded".

Refused in this version (InputError): a module called more than once per forward. A module with dropout
between layers in train mode is set to eval mode for the forward (the re-run has no dropout) and restored
afterwards; the call records it in `notes`.

Legend: T time, B batch, D input size, P size of h, H cell size (LSTM's c).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pad_packed_sequence

from ..core.errors import InputError
from .torch_models import SUPPORTED_MODULES, StackRun, rerun

__all__ = ["Call", "recurrent_submodules", "recurrent_eval", "own_forward", "capture_forward", "accumulate", "push_back",
           "recurrent_batch"]


@dataclass
class Call:
    """One call of a recurrent submodule during the captured forward."""

    name: str  # its path in model.named_modules()
    module: nn.Module
    x: torch.Tensor  # the input it received (the user's graph), module layout; a packed input's .data
    hx: tuple  # () or (h0,) or (h0, c0) as given (the user's graph)
    run: StackRun  # the exact re-run
    leaves: tuple  # (output, h_n) or (output, h_n, c_n): the leaves substituted for its return value
    agreement: float | None  # max |re-run - module's own output| / max(1, max |own|) (None: not measured)
    grads: list = field(default_factory=list)  # accumulated dL/d(leaf), one per leaf (None: not reached yet)
    packed: PackedSequence | None = None  # the PackedSequence it received, or None (a padded tensor)
    lengths: torch.Tensor | None = None  # (B,) int64 the packed input's lengths (original batch order), or None


def recurrent_submodules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(path, module) of every nn.RNN / nn.LSTM / nn.GRU inside model (the model itself: path "")."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, nn.RNNBase)]


def _hx_parts(hx) -> tuple:
    if hx is None:
        return ()
    return tuple(hx) if isinstance(hx, (tuple, list)) else (hx,)


def _pack_like(y: torch.Tensor, like: PackedSequence, batch_first: bool) -> PackedSequence:
    """y (T, B, ...) time-major, or (B, T, ...) with batch_first, padded in the original batch order -> a
    PackedSequence with like's batch_sizes and indices (rows (t, sorted[j]) for j < batch_sizes[t]); differentiable."""
    y = y.transpose(0, 1) if batch_first else y  # (T, B, ...)
    bs = like.batch_sizes  # (T,) int64 on the CPU
    order = torch.arange(y.shape[1]) if like.sorted_indices is None else like.sorted_indices.cpu()
    t = torch.repeat_interleave(torch.arange(bs.numel()), bs)  # (N,): the step of each row of .data
    b = torch.cat([order[:n] for n in bs.tolist()])  # (N,): its sequence, in the original batch order
    return PackedSequence(y[t.to(y.device), b.to(y.device)], bs, like.sorted_indices, like.unsorted_indices)


@contextmanager
def recurrent_eval(model: nn.Module, notes: list[str] | None = None):
    """The recurrent submodules with dropout between layers in train mode set to eval mode for the block (a re-run
    has no dropout; a note says so when `notes` is given); every mode restored afterwards. Yields the submodules."""
    subs = recurrent_submodules(model)
    modes = {n: m.training for n, m in subs}
    for n, m in subs:
        if m.training and m.dropout > 0 and m.num_layers > 1:
            m.eval()
            if notes is not None:
                notes.append(f"{n or type(m).__name__}: dropout {m.dropout:g} between layers in train mode; "
                             f"diagnosed in eval mode (no dropout)")
    try:
        yield subs
    finally:
        for n, m in subs:
            m.train(modes[n])


@contextmanager
def _seeded(seed: int | None):
    """The block under torch.manual_seed(seed) with the caller's random state restored afterwards (None: as is),
    so that two forwards of a model with dropout draw the same masks."""
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _module_input(name: str, mod: nn.Module, x, hx, notes: list[str] | None):
    """(x padded in the module's layout, h0 detached or None, the hx parts, the PackedSequence or None, lengths)."""
    parts = _hx_parts(hx)
    h0 = None if not parts else tuple(p.detach() for p in parts) if len(parts) > 1 else parts[0].detach()
    packed, lengths = None, None
    if isinstance(x, PackedSequence):  # unpacked: (T, B, D) / (B, T, D), T = the longest, original order
        packed = x
        x, lengths = pad_packed_sequence(packed, batch_first=mod.batch_first)
        if notes is not None:
            lo, hi = int(lengths.min()), int(lengths.max())
            notes.append(f"{name}: packed input, steps beyond each sequence's length "
                         f"(L = {lo if lo == hi else f'{lo}..{hi}'}) excluded")
    return x, h0, parts, packed, lengths


def own_forward(model: nn.Module, inputs, seed: int | None = 0) -> tuple[object, dict[str, torch.Tensor]]:
    """model(*inputs) as it is (its own dtype, no_grad; inter-layer dropout off as in the analysis), with the
    output of every recurrent call kept by name (padded in the module's layout for a packed output)."""
    args = inputs if isinstance(inputs, tuple) else (inputs,)
    own: dict[str, torch.Tensor] = {}

    def hook(name):
        def f(mod, a, kw, output):
            out = output[0]
            if isinstance(out, PackedSequence):
                x = a[0] if a else kw.get("input")
                T = int(x.batch_sizes.numel())
                out = pad_packed_sequence(out, batch_first=mod.batch_first, total_length=T)[0]
            own.setdefault(name, out.detach())
        return f

    with recurrent_eval(model) as subs, _seeded(seed), torch.no_grad():
        handles = [m.register_forward_hook(hook(n or type(m).__name__), with_kwargs=True) for n, m in subs]
        try:
            output = model(*args)
        finally:
            for h in handles:
                h.remove()
    return output, own


def capture_forward(model: nn.Module, inputs, own: dict | None = None,
                    seed: int | None = 0) -> tuple[object, list[Call], list[str]]:
    """model(*inputs) with every recurrent submodule's forward replaced by its exact re-run, returning leaves.

    own: {name: the module's own output} (own_forward) for each call's agreement (None: not measured).
    seed: the random state of the forward (the same as own_forward's: the same dropout masks elsewhere).
    Returns (the model's output, the calls in call order, notes). The model's mode is restored afterwards.
    """
    args = inputs if isinstance(inputs, tuple) else (inputs,)
    calls: list[Call] = []
    notes: list[str] = []

    def replacement(name, mod):
        def forward(input, hx=None):
            if any(c.name == name for c in calls):
                raise InputError(f"{name}: expected one call per forward, got a second call (a module used in a "
                                 f"loop over time is not supported yet)")
            x, h0, parts, packed, lengths = _module_input(name, mod, input, hx, notes)
            with torch.no_grad():
                run = rerun(mod, x.detach(), h0=h0, lengths=lengths)
            out = run.module_output()
            hn = run.h_n[:, 0] if run.unbatched else run.h_n
            leaves = [out, hn]
            if run.c_n is not None:
                leaves.append(run.c_n[:, 0] if run.unbatched else run.c_n)
            leaves = tuple(v.detach().clone().requires_grad_(True) for v in leaves)
            agree = None
            ref = None if own is None else own.get(name)
            if ref is not None and tuple(ref.shape) == tuple(out.shape):
                with torch.no_grad():
                    r = ref.to(torch.float64)
                    agree = float((out.to(torch.float64) - r).abs().max()) / max(1.0, float(r.abs().max())) if r.numel() else 0.0
            calls.append(Call(name, mod, x if packed is None else packed.data, parts, run, leaves, agree,
                              [None] * len(leaves), packed, lengths))
            y = leaves[0] if packed is None else _pack_like(leaves[0], packed, mod.batch_first)
            return (y, (leaves[1], leaves[2])) if len(leaves) == 3 else (y, leaves[1])
        return forward

    with recurrent_eval(model, notes) as subs:
        if not subs:
            raise InputError(f"model: expected {SUPPORTED_MODULES}, or an nn.Module whose forward uses nn.RNN / nn.LSTM / "
                             f"nn.GRU submodules, got {type(model).__name__} with none")
        for n, m in subs:
            m.forward = replacement(n or type(m).__name__, m)  # an instance attribute: the class's forward is untouched
        try:
            with _seeded(seed), torch.enable_grad():
                output = model(*args)
        finally:
            for _, m in subs:
                del m.forward
    if not calls:
        raise InputError(f"model: expected its forward to call its recurrent submodules "
                         f"({', '.join(n for n, _ in subs)}), got a forward that called none of them")
    return output, calls, notes


def recurrent_batch(model: nn.Module, inputs) -> int | None:
    """The batch size the first recurrent submodule receives in model(*inputs) (one forward in the model's own
    dtype, no_grad, the submodules' outputs untouched): a PackedSequence's number of sequences, 1 for unbatched
    input; None when no recurrent submodule is called."""
    args = inputs if isinstance(inputs, tuple) else (inputs,)
    seen: list[int] = []

    def hook(mod, a, kw):
        x = a[0] if a else kw.get("input")
        if isinstance(x, PackedSequence):
            seen.append(int(x.batch_sizes[0]))
        elif isinstance(x, torch.Tensor):
            seen.append(1 if x.dim() == 2 else int(x.shape[0 if mod.batch_first else 1]))

    with recurrent_eval(model) as subs, _seeded(0), torch.no_grad():
        handles = [m.register_forward_pre_hook(hook, with_kwargs=True) for _, m in subs]
        try:
            model(*args)
        finally:
            for h in handles:
                h.remove()
    return seen[0] if seen else None


def accumulate(calls: list[Call], outputs: list[torch.Tensor], grads: list[torch.Tensor],
               params: dict | None = None) -> None:
    """Add d(outputs . grads)/d(leaf) to every call's leaf gradients (the user's graph kept for later pushes), and
    d(outputs . grads)/dp to params[name] = [p, its gradient so far or None] (the parameters outside the calls)."""
    leaves = [(c, j, v) for c in calls for j, v in enumerate(c.leaves)]
    ps = [] if params is None else [(n, e[0]) for n, e in params.items()]
    pairs = [(o, g) for o, g in zip(outputs, grads) if o.requires_grad]
    if not (leaves or ps) or not pairs:
        return
    got = torch.autograd.grad([o for o, _ in pairs], [v for _, _, v in leaves] + [p for _, p in ps],
                              [g for _, g in pairs], retain_graph=True, allow_unused=True)
    for (c, j, _), g in zip(leaves, got):
        if g is not None:
            c.grads[j] = g if c.grads[j] is None else c.grads[j] + g
    for (n, _), g in zip(ps, got[len(leaves):]):
        if g is not None:
            params[n][1] = g if params[n][1] is None else params[n][1] + g


def push_back(call: Call, earlier: list[Call], gx: torch.Tensor | None, g0: tuple, params: dict | None = None) -> None:
    """Send dL/dx (module layout; padded for a packed input) and dL/dh0 (dL/dc0) of one call into the graph
    behind its input and initial state, accumulating onto the leaves of the earlier calls. A packed input's
    dL/dx is re-packed with its indices onto its .data (the rows beyond each length are not part of it)."""
    outs, grads = [], []
    if gx is not None:
        if call.packed is not None:
            gx = _pack_like(gx, call.packed, call.run.batch_first).data  # (N, D): .data's layout
        outs.append(call.x)
        grads.append(gx.to(call.x.dtype))
    for p, g in zip(call.hx, g0):
        outs.append(p)
        grads.append(g.to(p.dtype))
    accumulate(earlier, outs, grads, params)
