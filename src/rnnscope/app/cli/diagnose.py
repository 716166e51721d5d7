"""`rnnscope diagnose`: the exact per-step gradient flow of a saved PyTorch nn.RNN / nn.LSTM / nn.GRU, every layer
and direction, with verdicts and advice (interop.diagnose does the work; this module parses and prints).
"""

from __future__ import annotations

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


@app.command(help="Diagnose a saved PyTorch nn.RNN / nn.LSTM / nn.GRU: exact per-step gradient flow of every layer "
                  "and direction (log10 ||dL/dh_k||, ||dL/dc_k||, ||ds_T/ds_k||_2), sigma_max against 1/gamma, the "
                  "rate, the horizon, a verdict and advice. MODEL.pt: a state_dict with --arch, or a whole pickled "
                  "module with --trust.")
def diagnose(
    ctx: typer.Context,
    model: Annotated[Path, typer.Argument(parser=path, metavar="MODEL.pt", help="A state_dict (torch.save(m.state_dict())) "
                                          "or, with --trust, a whole pickled module.")],
    inputs: Annotated[Path, typer.Option(parser=path, metavar="FILE.npy",
                                         help="Inputs (T, D), (T, B, D), or (B, T, D) with batch_first.")],
    targets: Annotated[Path | None, typer.Option(parser=path, metavar="FILE.npy",
                                                 help="Targets of every step or of the last step (see --loss); "
                                                      "without them L = sum of the last top-layer output.")] = None,
    loss: Annotated[str, typer.Option(parser=choice(LOSSES), metavar="LOSS",
                                      help="mse (float targets shaped like the output) or ce (class indices).")] = "mse",
    arch: Annotated[str | None, typer.Option(metavar="SPEC", help="For a state_dict: KIND:input=D,hidden=H[,layers=L]"
                                             "[,bidirectional][,batch_first][,proj=P][,bias=false], KIND = rnn_tanh, "
                                             "rnn_relu, lstm or gru.")] = None,
    trust: Annotated[bool, typer.Option("--trust", help="Allow a whole pickled module (unpickling runs code from the "
                                                        "file: only for files you trust).")] = False,
    jacobian_sequences: Annotated[int, typer.Option("--jacobian-sequences", parser=nonnegative_int, metavar="N",
                                                    help="Sequences in the Jacobian-product profile (O(T S^3) each); "
                                                         "0 = skip it.")] = 4,
    as_json: JsonOpt = False,
    plot: Annotated[Path | None, typer.Option(parser=path, metavar="FILE",
                                              help="Write the figure (heatmap and profiles) to FILE (.png, .svg, .pdf).")] = None,
) -> None:
    from ...interop.diagnose import diagnose as run_diagnose, target_loss
    from ...interop.torch_models import load_model, module_dtype, module_kind

    if plot is not None:
        from ...core.plots import check_plot_path
        check_plot_path(plot)
    if targets is None and explicit(ctx, "loss"):
        raise InputError(f"loss: expected --targets FILE.npy to compute {loss} against, got --loss without --targets")
    module = load_model(model, arch, trust=trust)
    x = load_npy(inputs, "inputs")
    if x.dtype.kind not in "fiu":
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
    d = run_diagnose(module, as_float64(x), loss_fn, jacobian=jacobian_sequences > 0,
                     jacobian_sequences=max(jacobian_sequences, 1))
    if plot is not None:
        d.plot(plot)
    extra = {"model_file": str(model), "inputs": str(inputs), "targets": None if targets is None else str(targets),
             "loss_name": None if targets is None else loss, "plot": None if plot is None else str(plot)}
    if as_json:
        echo_json({**d.to_dict(), **extra})
    else:
        _print_diagnosis(d, extra)


def _print_diagnosis(d, extra: dict) -> None:
    from rich.table import Table
    con = console()
    con.print(f"[bold]rnnscope diagnose[/bold]: {extra['model_file']} ({d.model}, {d.num_layers} layer(s) x "
              f"{d.num_directions} direction(s), {d.dtype}), inputs {extra['inputs']}: T = {d.T}, B = {d.batch}")
    con.print(f"loss = {fmt(d.loss)} ({d.loss_kind if extra['loss_name'] is None else extra['loss_name'] + ' against ' + extra['targets']})"
              + ("" if d.gradient_norm is None else f", ||dL/dtheta|| = {fmt(d.gradient_norm)}"))
    tab = Table(title="Gradient flow per layer: log10 norms, batch means (k counts each direction's own steps)")
    for col in ("layer", "dir", "cell", "sigma_max(W_hh)", "1/gamma", "dL/dh_1", "dL/dh_T", "ds_T/ds_1", "rate/step",
                "horizon", "carry"):
        tab.add_column(col, justify="left" if col in ("dir", "cell") else "right", no_wrap=True)
    for l in d.layers:
        a = l.log10_adjoint_h
        tab.add_row(str(l.layer), l.direction, l.cell, fmt(l.sigma_max), fmt(None if not l.gamma else 1 / l.gamma),
                    fmt(float(a[0]), ".2f"), fmt(float(a[-1]), ".2f"),
                    "-" if l.log10_spectral is None else fmt(float(l.log10_spectral[0]), ".2f"),
                    fmt(l.rate_per_step, "+.3f"), "-" if l.horizon is None else f"{l.horizon} {l.horizon_kind}",
                    fmt(l.far_carry_share(), ".2f"))
    con.print(tab)
    con.print("[bold]verdicts[/bold]")
    for l in d.layers:
        con.print(f"  {l.name}: {l.verdict}; weights: {l.theory_verdict}")
    con.print("[bold]advice[/bold]")
    for a in d.advice:
        con.print(f"  - {a}")
    con.print(f"seconds: {d.seconds:.3f}")
    if extra["plot"]:
        con.print(f"figure written to {extra['plot']}")
