"""`rnnscope diagnose`: the exact per-step gradient flow of a PyTorch recurrent model, every layer and direction, with
verdicts and advice (interop.diagnose does the work; this module parses and prints). Two routes:

    rnnscope diagnose SETUP.py[:FUNCTION]             the user's whole model, inputs and loss (app/setup_file.py)
    rnnscope diagnose MODEL.pt --inputs X.npy ...     a bare nn.RNN / LSTM / GRU from a state_dict (--arch,
                                                      --module) or a pickled module (--trust)
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Annotated

import torch
import typer

from ...core.budget import check_stack_memory
from ...core.build import as_float64, as_targets
from ...core.errors import InputError
from ...core.files import load_npy
from ...core.vocab import LOSSES
from .entry import app
from .options import JsonOpt, choice, explicit, nonnegative_int, path
from .output import console, echo_json, fmt

__all__ = ["diagnose"]


@app.command(help="Diagnose a PyTorch recurrent model: exact per-step gradient flow of every layer and direction "
                  "(log10 ||dL/dh_k||, ||dL/dc_k||, the credit that reaches a step from the loss d steps ahead), the "
                  "carry share, every parameter's gradient, a verdict from what the loss can see and advice with its "
                  "numbers; in float64 whatever the model's dtype; a NaN reported where it starts. SETUP.py[:FUNCTION]: your own Python file, run as such (it executes your "
                  "code: only for files you trust), whose function FUNCTION (default: setup) returns (model, inputs, "
                  "loss_fn[, targets]) or a dict with those keys: the whole model with its embedding, head and loss. "
                  "MODEL.pt: a state_dict with --arch (and --module to pick one of several recurrent modules), or a "
                  "whole pickled module with --trust, with --inputs.")
def diagnose(
    ctx: typer.Context,
    model: Annotated[Path, typer.Argument(parser=path, metavar="SETUP.py[:FUNCTION]|MODEL.pt",
                                          help="SETUP.py[:FUNCTION] (your code, run as such; FUNCTION defaults to "
                                               "setup), or a state_dict (torch.save(m.state_dict())) or, with --trust, "
                                               "a whole pickled module.")],
    inputs: Annotated[Path | None, typer.Option(parser=path, metavar="FILE.npy",
                                                help="For MODEL.pt: inputs (T, D), (T, B, D), or (B, T, D) with "
                                                     "batch_first (required there; SETUP.py returns its own).")] = None,
    targets: Annotated[Path | None, typer.Option(parser=path, metavar="FILE.npy",
                                                 help="Targets of every step or of the last step (see --loss); "
                                                      "without them L = sum of the last top-layer output.")] = None,
    loss: Annotated[str, typer.Option(parser=choice(LOSSES), metavar="LOSS",
                                      help="mse (float targets shaped like the output) or ce (class indices).")] = "mse",
    arch: Annotated[str | None, typer.Option(metavar="SPEC", help="For a state_dict: KIND:input=D,hidden=H[,layers=L]"
                                             "[,bidirectional][,batch_first][,proj=P][,bias=false], KIND = rnn_tanh, "
                                             "rnn_relu, lstm or gru.")] = None,
    module_prefix: Annotated[str | None, typer.Option("--module", metavar="PREFIX",
                                                      help="For a MODEL.pt holding several recurrent modules: the one "
                                                           "to diagnose, by its key prefix (e.g. encoder.rnn).")] = None,
    trust: Annotated[bool, typer.Option("--trust", help="Allow a whole pickled module (unpickling runs code from the "
                                                        "file: only for files you trust).")] = False,
    jacobian_sequences: Annotated[int, typer.Option("--jacobian-sequences", parser=nonnegative_int, metavar="N",
                                                    help="Also the Jacobian-product profile ||ds_T/ds_k||_2 on the "
                                                         "first N sequences (O(T S^3) each, its seconds reported); "
                                                         "0 = skip it (the default).")] = 0,
    dtype: Annotated[str, typer.Option(parser=choice(("float64", "float32")), metavar="DTYPE",
                                       help="Analysis precision: float64 (default, whatever the model's dtype: it is "
                                            "analysed as an upcast copy) or float32.")] = "float64",
    gradient_history: Annotated[Path | None, typer.Option("--gradient-history", parser=path, metavar="FILE",
                                                          help="Past ||dL/dtheta|| of training steps (.npy, or .json: a "
                                                               "list, or GradientFlowMonitor.to_dict() with grad_norms): "
                                                               "the clip advice is their 10th percentile (AutoClip).")] = None,
    as_json: JsonOpt = False,
    plot: Annotated[Path | None, typer.Option(parser=path, metavar="FILE",
                                              help="Write the figure (heatmap, profiles, credit, carry share) to FILE (.png, .svg, .pdf).")] = None,
) -> None:
    from ..setup_file import is_setup_spec

    if plot is not None:
        from ...core.plots import check_plot_path
        check_plot_path(plot)
    opts = dict(jacobian=jacobian_sequences > 0, jacobian_sequences=max(jacobian_sequences, 1),
                dtype=getattr(torch, dtype), gradient_history=_history(gradient_history))
    if is_setup_spec(str(model)):
        d, extra = _diagnose_setup(ctx, str(model), opts)
    else:
        d, extra = _diagnose_file(ctx, model, inputs, targets, loss, arch, module_prefix, trust, opts)
    if plot is not None:
        d.plot(plot)
    extra["plot"] = None if plot is None else str(plot)
    if as_json:
        j = {**d.to_dict(), **extra}
        j["notes"] = j["notes"] + extra["cli_notes"]
        del j["cli_notes"]
        echo_json(j)
    else:
        _print_diagnosis(d, extra)


def _history(path_: Path | None) -> list[float] | None:
    """Past gradient norms from a file: .npy (1-D), .json (a list, or an object with "grad_norms")."""
    if path_ is None:
        return None
    import json

    import numpy as np
    if path_.suffix == ".json":
        try:
            data = json.loads(path_.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise InputError(f"--gradient-history: expected a JSON list of numbers, got {path_} ({e})") from None
        data = data.get("grad_norms") if isinstance(data, dict) else data
        arr = np.asarray(data if isinstance(data, list) else [], dtype=object)
    else:
        arr = load_npy(path_, "gradient history")
    try:
        vals = np.asarray(arr, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise InputError(f"--gradient-history: expected numbers (one norm per training step), got {path_}") from None
    if vals.size < 2 or np.asarray(arr).ndim != 1:
        raise InputError(f"--gradient-history: expected a 1-D list of at least 2 norms, got shape {np.asarray(arr).shape}")
    return vals.tolist()


def _diagnose_setup(ctx: typer.Context, spec: str, opts: dict):
    """diagnose(model, inputs, loss_fn, targets=...) on what the user's SETUP.py returns (app/setup_file.py)."""
    from ...interop.diagnose import diagnose as run_diagnose
    from ..setup_file import load_setup, user_code_error

    for opt in ("inputs", "targets", "loss", "arch", "module_prefix", "trust"):
        if explicit(ctx, opt):
            flag = "--module" if opt == "module_prefix" else f"--{opt}"
            raise InputError(f"{flag.removeprefix('--')}: expected no {flag} with SETUP.py (its function returns the "
                             f"model, inputs, loss and targets), got {flag}")
    with contextlib.redirect_stdout(sys.stderr):  # the user's prints must not mix into the table or the JSON
        s = load_setup(spec)
        try:
            d = run_diagnose(s.model, s.inputs, s.loss_fn, targets=s.targets, **opts)
        except InputError:
            raise
        except Exception as e:  # the user's model or loss failed: one line with where, when the traceback passes there
            err = user_code_error(e, s.path, "setup")
            if err is None:
                raise
            raise err from None
    extra = {"model_file": str(s.path), "setup_function": s.function, "inputs": None, "targets": None,
             "loss_name": None, "unused_keys": None, "cli_notes": []}
    return d, extra


def _diagnose_file(ctx, model: Path, inputs, targets, loss, arch, module_prefix, trust, opts: dict):
    """The MODEL.pt route: a state_dict with --arch (--module), or a whole pickled module with --trust."""
    from ...interop.diagnose import diagnose as run_diagnose, target_loss
    from ...interop.saved_models import load_recurrent
    from ...interop.torch_models import module_dtype, module_kind

    if targets is None and explicit(ctx, "loss"):
        raise InputError(f"loss: expected --targets FILE.npy to compute {loss} against, got --loss without --targets")
    if inputs is None:
        raise InputError("--inputs: expected a value (the option is required with MODEL.pt), got none")
    loaded = load_recurrent(model, arch, trust=trust, module=module_prefix)
    module = loaded.module
    x = load_npy(inputs, "inputs")
    if x.dtype.kind in "iu":
        raise InputError(f"inputs: expected real-valued features for a bare recurrent module, got dtype {x.dtype}: "
                         f"inputs look like token ids (dtype {x.dtype}): pass the whole model with SETUP.py, or "
                         f"embedded inputs")
    if x.dtype.kind not in "f":
        raise InputError(f"inputs: expected real numbers, got dtype {x.dtype}")
    if x.ndim in (2, 3):  # refuse a run that would not fit before allocating it (other shapes: diagnose's error)
        T, B = (x.shape[0], x.shape[1] if x.ndim == 3 else 1)
        if x.ndim == 3 and getattr(module, "batch_first", False):
            T, B = B, T
        runs = getattr(module, "num_layers", 1) * (2 if getattr(module, "bidirectional", False) else 1)
        check_stack_memory(module_kind(module), T, B, x.shape[-1], module.hidden_size,
                           torch.finfo(module_dtype(module)).bits // 8, proj=getattr(module, "proj_size", 0), runs=runs)
    loss_fn = None
    if targets is not None:
        y = as_targets(load_npy(targets, "targets"))
        loss_fn = target_loss(loss, y, batch_first=bool(getattr(module, "batch_first", False)))
    d = run_diagnose(module, as_float64(x), loss_fn, **opts)
    notes = []
    if loaded.unused_keys:
        groups: dict[str, list[str]] = {}  # owning module -> its parameter names
        for k in loaded.unused_keys:
            owner, _, leaf = k.rpartition(".")
            groups.setdefault(owner, []).append(leaf)
        shown = ", ".join(("" if not o else o + ".") + (v[0] if len(v) == 1 else "{" + ", ".join(v) + "}" if len(v) <= 4
                                                       else f"* ({len(v)} keys)") for o, v in groups.items())
        notes.append(f"state_dict: {len(loaded.unused_keys)} key(s) not used (only the recurrent module "
                     f"{loaded.prefix or '(no prefix)'} is diagnosed): {shown}")
    extra = {"model_file": str(model), "inputs": str(inputs), "targets": None if targets is None else str(targets),
             "loss_name": None if targets is None else loss, "setup_function": None,
             "unused_keys": list(loaded.unused_keys), "cli_notes": notes}
    return d, extra


def _print_diagnosis(d, extra: dict) -> None:
    from rich.table import Table
    con = console()
    if d.nonfinite is not None:  # the NaN hunt's finding comes first
        con.print("[bold red]non-finite[/bold red]: ", end="")
        con.print(d.nonfinite.message(), markup=False, soft_wrap=True)
    source = (f"inputs {extra['inputs']}" if extra["setup_function"] is None
              else f"inputs of {extra['setup_function']}()")
    con.print(f"rnnscope diagnose: {extra['model_file']} ({d.model}, {d.num_layers} layer(s) x {d.num_directions} "
              f"direction(s)), {source}: T = {d.T}, B = {d.batch}", markup=False, soft_wrap=True)
    agree = "" if d.agreement is None else (f"; the re-run's output agrees with the module's own to a max relative "
                                            f"difference of {d.agreement:.2g}")
    con.print(f"model dtype {d.model_dtype or '?'}, analysis dtype {d.dtype}{agree}", markup=False, soft_wrap=True)
    loss_kind = (f"{extra['setup_function']}()'s loss_fn" if extra["setup_function"] is not None else d.loss_kind
                 if extra["loss_name"] is None else extra["loss_name"] + " against " + extra["targets"])
    con.print(f"loss = {fmt(d.loss)} ({loss_kind})"
              + ("" if d.gradient_norm is None else f", ||dL/dtheta|| = {fmt(d.gradient_norm)} (every parameter)"),
              markup=False, soft_wrap=True)
    if d.layers:
        tab = Table(title="Gradient flow per layer: log10 norms, batch means (k counts each direction's own steps)")
        L = d.layers
        cols = [("module", lambda l: l.module, any(l.module for l in L)),  # a whole model: rows name their submodule
                ("layer", lambda l: str(l.layer), True),
                ("dir", lambda l: "fwd" if l.direction == "forward" else "rev", True),
                ("cell", lambda l: l.cell, True),
                ("sigma_max", lambda l: fmt(l.sigma_max), True),
                ("1/gamma", lambda l: fmt(None if not l.gamma else 1 / l.gamma), any(l.gamma for l in L)),
                ("dL/dh_1", lambda l: fmt(float(l.log10_adjoint_h[0]), ".2f"), True),
                ("dL/dh_T", lambda l: fmt(float(l.log10_adjoint_h[-1]), ".2f"), True),
                ("G(D)-G(0)", lambda l: "-" if l.log10_credit is None or l.log10_credit.shape[0] < 2
                 else fmt(float(l.log10_credit[-1] - l.log10_credit[0]), ".2f"), any(l.log10_credit is not None for l in L)),
                ("ds_T/ds_1", lambda l: "-" if l.log10_spectral is None else fmt(float(l.log10_spectral[0]), ".2f"),
                 any(l.log10_spectral is not None for l in L)),
                ("rate/step", lambda l: fmt(l.rate_per_step, "+.3f"), True),
                ("horizon", lambda l: "-" if l.horizon is None else f"{l.horizon} {l.horizon_kind}", True),
                ("carry", lambda l: fmt(l.far_carry_share(), ".2f"), any(l.per_sequence_carry_share is not None for l in L)),
                ("gate", lambda l: fmt(l.forget_gate if l.forget_gate is not None else l.update_gate, ".2f"),
                 any(l.forget_gate is not None or l.update_gate is not None for l in L))]
        cols = [(name, f) for name, f, shown in cols if shown]
        for name, _ in cols:
            tab.add_column(name, justify="left" if name in ("module", "dir", "cell") else "right", no_wrap=True)
        for l in L:
            tab.add_row(*(f(l) for _, f in cols))
        con.print(tab)
        con.print("G(D)-G(0): the credit from the farthest distance measured against the immediate one; carry: the "
                  "share of the long-range gradient through the carry term; gate: mean forget (LSTM) or update (GRU) "
                  "gate", markup=False, style="dim")
        con.print("[bold]verdicts[/bold]")
        for l in d.layers:
            con.print(f"  {l.name}: {l.verdict}; weights: {l.theory_verdict}", markup=False, soft_wrap=True)
    if d.parameters:
        con.print("[bold]||dL/dtheta|| per parameter[/bold]")
        for line in d.parameter_table().splitlines():
            con.print("  " + line, markup=False, soft_wrap=True)
    con.print("[bold]advice[/bold]")
    for a in d.advice:
        con.print(f"  - {a}", markup=False, soft_wrap=True)
    for n in (*d.notes, *extra["cli_notes"]):
        con.print(f"note: {n}", markup=False, soft_wrap=True)
    js = "" if d.jacobian_seconds is None else f" (the Jacobian-product profile: {d.jacobian_seconds:.3f})"
    con.print(f"seconds: {d.seconds:.3f}{js}")
    if extra["plot"]:
        con.print(f"figure written to {extra['plot']}", markup=False, soft_wrap=True)
