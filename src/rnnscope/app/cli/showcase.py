"""The show-and-explore commands: `rnnscope demo` (the main job: figures, summary.json and a summary table) and
`serve` (the local web explorer and its JSON API).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .entry import app
from .options import QuietOpt, path, port as port_number, positive_int, progress_enabled

__all__ = ["demo", "serve"]


@app.command(help="The main job: sigmoid and tanh Elman RNNs below and above 1/gamma and a non-normal W_hh "
                  "with rho < 1/gamma < sigma_max; figures and summary.json in DIR, a summary table here.")
def demo(
    out: Annotated[Path, typer.Option(parser=path, metavar="DIR", help="Folder for the figures and summary.json.")]
    = Path("rnnscope-report"),
    quick: Annotated[bool, typer.Option("--quick", metavar="", help="A smaller, faster run (S = 32, T = 100, B = 2).")] = False,
    quiet: QuietOpt = False,
) -> None:
    from ..demo import run_demo
    run_demo(out, quick=quick, progress=progress_enabled(quiet))


@app.command(help="The explorer: a local web page where sliders move the model and the gradient-flow views follow "
                  "(profile against the bound, eigenvalues and singular values of W_hh, per-step contributions, "
                  "saturation), with its JSON API under /api. Ctrl-C stops it.")
def serve(
    host: Annotated[str, typer.Option(metavar="HOST", help="Address to listen on (loopback unless told otherwise).")]
    = "127.0.0.1",
    port: Annotated[int, typer.Option(parser=port_number, metavar="PORT", help="Port (0: any free one).")] = 8765,
    open_browser: Annotated[bool, typer.Option("--open", metavar="", help="Open the page in the default browser.")] = False,
    report: Annotated[Path | None, typer.Option(parser=path, metavar="DIR",
                                                help="The claims report to link (a folder with index.html); default "
                                                     "./rnnscope-report if present, else generated on first visit.")]
    = None,
    workers: Annotated[int | None, typer.Option(parser=positive_int, metavar="N",
                                                help="Processes that compute, one request each at a time (default: "
                                                     "the CPU count).")] = None,
) -> None:
    from ..web import serve as run_server
    run_server(host, port, open_browser=open_browser, report_dir=report, workers=workers)
