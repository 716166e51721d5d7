"""The main job (`rnnscope demo`, `make demo`): vanishing and exploding gradients, seen and checked,
then the seeds' claims judged (seeds.claims), their figures reproduced (seeds.reproduce), the modern cells'
guarantees checked (seeds.after_seeds), and the report (seeds.report: index.html) written.

Elman RNNs h_t = phi(W_hh h_{t-1} + W_xh x_t + b_h) driven by random inputs x_t ~ N(0, input_scale^2),
one per case, each profiled exactly (gradients.profile) and set against the Pascanu bound
||dh_t/dh_k||_2 <= (gamma sigma_max)^(t-k), gamma = sup|phi'| (1/4 for sigmoid, 1 for tanh):

    sigmoid-below       W_hh = (0.8/gamma) Q, Q Haar-orthogonal: sigma_max = 0.8/gamma -> vanishing guaranteed
    sigmoid-above       W_hh = (2.0/gamma) Q:                    sigma_max = 2/gamma   -> exploding possible
    tanh-below, tanh-above      the same recipe with tanh
    tanh-saturated      as tanh-above, driven by strong inputs (x_t ~ N(0, 3^2)): the units saturate,
                        phi' << gamma, and the gradients vanish anyway ("exploding possible": possible, not certain)
    tanh-nonnormal      W_hh = Q diag(J_4(0.8), ..., J_4(0.8)) Q^T with J_4(l) = l I + N (4 x 4 Jordan block,
                        N the ones above the diagonal): every eigenvalue is 0.8 (rho = 0.8 < 1/gamma = 1) but
                        sigma_max = 1.69 > 1: the eigenvalue test of seed 002 promises vanishing, the
                        singular-value test does not, and the measured gradients grow.

Sigmoid cases are centred, b_h = -W_hh phi(0) (phi(0) = 1/2), so that h = phi(0) is the fixed point of
the input-free map and the units sit where phi' = gamma (tanh needs no centring: phi(0) = 0). The
blocks are 4 x 4 so that rho stays well conditioned: a Jordan block of size m moves its eigenvalues
by about eps^(1/m) under rounding (a 64 x 64 block would report rho ~ 1).

Each case writes <name>.png (plots.plot_profile), <name>.npz (W_hh, W_xh, b_h) and <name>-inputs.npy,
so `rnnscope profile --activation <phi> --weights <name>.npz --inputs <name>-inputs.npy` reproduces it;
overview.png puts all cases on one axis; summary.json holds the table. The cases are a list
(`CASES`): later issues add to it.

`run_demo(out, quick=True)` runs every case (and the rest of the job) into the folder out and returns the summary.

Example (the cases of the quick run: S = 32, T = 100, B = 2):
    >>> [profile(*build_case(case, QUICK, i)).verdict for i, case in enumerate(CASES[:2])]
    ['vanishing guaranteed', 'exploding possible']
    >>> cell, x = build_case(CASES[5], QUICK, 5)  # tanh-nonnormal: rho < 1/gamma = 1 < sigma_max
    >>> W = cell.W_hh
    >>> f"{float(torch.linalg.eigvals(W).abs().max()):.2f} {float(torch.linalg.matrix_norm(W, 2)):.2f}", tuple(x.shape)
    ('0.80 1.69', (100, 2, 1))
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..core.activations import get_activation
from ..gradients.profile import Profile, profile
from ..core.cells import ElmanCell
from ..core.errors import InputError
from ..core.files import output_folder
from ..core.build import recurrent_matrix
from ..core.results import jsonable
from ..core.threads import torch_threads
from .console import make_console

__all__ = ["DemoConfig", "DemoCase", "CASES", "FULL", "QUICK", "build_case", "make_console", "run_demo"]


@dataclass(frozen=True)
class DemoConfig:
    """Sizes of a demo run. Defaults: large enough for clear slopes, small enough for seconds."""

    hidden: int = 64  # S: enough units that a random orthogonal W_hh behaves generically
    length: int = 300  # T: a few horizons of the slowest case
    batch: int = 4  # B: a few input sequences, so the batch mean is not one sample's accident
    input_size: int = 1  # D
    input_scale: float = 0.3  # x_t ~ N(0, 0.3^2): drives the units off the fixed point without saturating them
    seed: int = 0


FULL = DemoConfig()
QUICK = DemoConfig(hidden=32, length=100, batch=2)


# ---------------------------------------------------------------------------- recipes for W_hh

def scaled_orthogonal(factor: float) -> Callable[[int, float, torch.Generator], torch.Tensor]:
    """W_hh = (factor / gamma) Q: every singular value and |eigenvalue| equals factor/gamma."""
    def build(S: int, gamma: float, gen: torch.Generator) -> torch.Tensor:
        return recurrent_matrix(S, factor / gamma, "orthogonal", gen)  # Haar Q, scaled
    return build


def rotated_jordan(eigenvalue: float, coupling: float, block: int) -> Callable[[int, float, torch.Generator], torch.Tensor]:
    """W_hh = Q diag(J, ..., J) Q^T with J = (eigenvalue/gamma) I + (coupling/gamma) N, N the ones above the
    diagonal of a block x block matrix: rho = eigenvalue/gamma, sigma_max -> (eigenvalue + coupling)/gamma
    as the block grows (for block 4, eigenvalue 0.8, coupling 1: 1.69/gamma). Q Haar-orthogonal keeps both."""
    def build(S: int, gamma: float, gen: torch.Generator) -> torch.Tensor:
        if S % block:
            raise InputError(f"hidden: expected a multiple of {block} for the Jordan-block recipe, got {S}")
        J = (eigenvalue * torch.eye(block, dtype=torch.float64)
             + coupling * torch.diag(torch.ones(block - 1, dtype=torch.float64), 1)) / gamma
        Q = recurrent_matrix(S, 1.0, "orthogonal", gen)  # Haar-orthogonal
        return Q @ torch.block_diag(*[J] * (S // block)) @ Q.T
    return build


@dataclass(frozen=True)
class DemoCase:
    """One demo case: an Elman RNN with activation phi and W_hh from a recipe."""

    name: str
    activation: str
    recipe: str  # in words, for the table and summary.json
    w_hh: Callable[[int, float, torch.Generator], torch.Tensor]  # (S, gamma, generator) -> W_hh (S, S)
    centred: bool = True  # b_h = -W_hh phi(0): the input-free fixed point h = phi(0) has phi' = gamma
    input_scale: float | None = None  # x_t ~ N(0, input_scale^2); None: the config's


CASES: tuple[DemoCase, ...] = (
    DemoCase("sigmoid-below", "sigmoid", "W_hh = (0.8/gamma) Q, Q orthogonal", scaled_orthogonal(0.8)),
    DemoCase("sigmoid-above", "sigmoid", "W_hh = (2/gamma) Q, Q orthogonal", scaled_orthogonal(2.0)),
    DemoCase("tanh-below", "tanh", "W_hh = (0.8/gamma) Q, Q orthogonal", scaled_orthogonal(0.8)),
    DemoCase("tanh-above", "tanh", "W_hh = (2/gamma) Q, Q orthogonal", scaled_orthogonal(2.0)),
    DemoCase("tanh-saturated", "tanh", "W_hh = (2/gamma) Q, strong inputs N(0, 3^2): units saturate",
             scaled_orthogonal(2.0), input_scale=3.0),
    DemoCase("tanh-nonnormal", "tanh", "W_hh = Q diag(0.8 I + N (4x4 Jordan blocks)) Q^T: rho = 0.8 < 1 < sigma_max",
             rotated_jordan(0.8, 1.0, 4)),
)


def build_case(case: DemoCase, config: DemoConfig, index: int) -> tuple[ElmanCell, torch.Tensor]:
    """The case's cell and inputs x (T, B, D), from its own seeded generator (seed, index)."""
    gen = torch.Generator().manual_seed(config.seed * 1_000_003 + index)
    act = get_activation(case.activation)
    S, D = config.hidden, config.input_size
    W_hh = case.w_hh(S, act.gamma, gen)  # (S, S)
    W_xh = torch.randn(S, D, generator=gen, dtype=torch.float64) / D**0.5  # (S, D), N(0, 1/D)
    centre = act.phi(torch.zeros(S, dtype=torch.float64))  # phi(0): 1/2 for sigmoid, 0 for tanh
    b_h = -(W_hh @ centre) if case.centred else torch.zeros(S, dtype=torch.float64)  # (S,)
    scale = config.input_scale if case.input_scale is None else case.input_scale
    x = scale * torch.randn(config.length, config.batch, D, generator=gen, dtype=torch.float64)
    return ElmanCell(W_hh, W_xh, b_h, act), x


def _row(case: DemoCase, p: Profile, files: dict, input_scale: float) -> dict:
    return {
        "case": case.name, "activation": case.activation, "recipe": case.recipe, "input_scale": input_scale,
        "gamma": p.gamma, "inv_gamma": 1.0 / p.gamma, "sigma_max": p.sigma_max, "spectral_radius": p.spectral_radius,
        "verdict": p.verdict, "note": p.note, "rate_per_step": p.rate_per_step,
        "bound_rate_per_step": float(np.log10(p.gamma * p.sigma_max)),
        "horizon": p.horizon, "horizon_kind": p.horizon_kind, "seconds": p.seconds, **files,
        "reproduce": (f"rnnscope profile --cell elman --activation {case.activation} --weights {files['weights']} "
                      f"--inputs {files['inputs']} --json"),
    }


def _print_summary(summary: dict, out: Path, console=None) -> None:
    from rich.table import Table
    con = console or make_console()
    cfg = summary["config"]
    tab = Table(title=f"rnnscope demo: Elman RNNs, S = {cfg['hidden']}, T = {cfg['length']}, B = {cfg['batch']}, "
                      f"inputs N(0, {cfg['input_scale']}^2)")
    for col, just in (("case", "left"), ("gamma", "right"), ("1/gamma", "right"), ("sigma_max", "right"),
                      ("rho", "right"), ("verdict", "left"), ("rate", "right"), ("bound rate", "right"),
                      ("horizon", "right")):
        tab.add_column(col, justify=just, overflow="fold", no_wrap=col in ("case", "verdict"))
    for c in summary["cases"]:
        hz = "none" if c["horizon"] is None else f"{c['horizon']} ({c['horizon_kind']})"
        rate = "-" if c["rate_per_step"] is None else f"{c['rate_per_step']:+.4f}"
        tab.add_row(c["case"], f"{c['gamma']:.4g}", f"{c['inv_gamma']:.4g}", f"{c['sigma_max']:.4g}",
                    f"{c['spectral_radius']:.4g}", c["verdict"], rate, f"{c['bound_rate_per_step']:+.4f}", hz)
    con.print(tab)
    con.print("rate: log10 per step, the least-squares slope of log10 ||dh_t/dh_k||_2 (batch mean) against t - k over the tail; "
              "bound rate: log10(gamma sigma_max); horizon: steps until the norm has fallen or risen by 10^3.")
    for c in summary["cases"]:
        if "eigenvalue test" in c["note"]:
            con.print(f"[bold]{c['case']}[/bold]: {c['note']}")
    n = summary["claims"]
    con.print(f"The seeds' claims: {n['holds']} hold, {n['holds-with-correction']} hold with a correction, "
              f"{n['refuted']} refuted (each with a counterexample); {len(summary['reproductions'])} of the seeds' "
              f"figures reproduced as written and corrected.")
    after = summary.get("after_seeds", {})
    if after:
        held = sum(v == "holds" for v in after.values())
        con.print(f"After the seeds: {held} of {len(after)} guarantees of the modern cells (LRU, Mamba, minGRU, "
                  f"minLSTM, IndRNN, expRNN, coRNN, sLSTM) hold on their papers' initialisations.")
    for st in summary.get("studies", []):
        con.print(f"study {st['name']} (short version): figure {st['figure']}; table in the report")
    con.print(f"figures, weights, inputs, claims.json and summary.json written to {out}/; "
              f"open {out}/index.html for the report ({summary['seconds']:.1f} s)")


def run_studies(out: Path, quick: bool = True, workers: int = 2, progress: bool | None = None) -> list[dict]:
    """Run the training studies (their short versions with quick) into out/studies.sqlite (resumable) and draw
    each one's figure; return the report's study entries (name, description, measure, figure, table, db).
    progress: the sweeps' bars on stderr; None: when stderr is a terminal (runs.progress.progress_enabled)."""
    from ..runs.progress import progress_enabled
    from ..runs.store import Store
    from ..lab.studies import (STUDY_NAMES, load_study, plot_snapshots, plot_study, snapshot_profiles, study_spec,
                               study_table, study_title)
    from ..runs.runner import run_sweep
    from ..runs.spec import config_key, expand
    entries = []
    db = out / "studies.sqlite"
    for name in STUDY_NAMES:
        s = load_study(name)
        spec = study_spec(s, quick=quick)
        run_sweep(spec, db, workers=workers, progress=progress_enabled() if progress is None else progress)
        keys = {config_key(spec.task, c) for c in expand(spec)}
        with Store(db) as store:
            rows = [r for r in store.rows() if r["key"] in keys]
        table = study_table(rows)
        figure, flow = f"study-{name}.png", f"study-{name}-flow.png"
        title = study_title(s, rows, "quick" if quick else "full")  # what ran, read from the rows
        plot_study(table, out / figure, measure=s.measure, title=title)
        snaps = snapshot_profiles(rows)
        if snaps:
            plot_snapshots(snaps, out / flow, title=f"study {name}: why, the gradient flow after training")
        entries.append({"name": name, "description": title, "measure": s.measure, "figure": figure,
                        "flow_figure": flow if snaps else None, "table": [r.to_dict() for r in table],
                        "quick": quick, "db": db.name})
    return entries


def run_demo(out_dir="rnnscope-report", quick: bool = False, *, cases: tuple[DemoCase, ...] = CASES,
             config: DemoConfig | None = None, console=None, with_studies: bool = True,
             progress: bool | None = None) -> dict:
    """Run every case, write figures, weights, inputs and summary.json to out_dir, print the summary table (on
    console; the studies' progress on stderr, see run_studies).

    Returns the summary (as written to summary.json): {"config": ..., "cases": [row per case], "seconds": ...}.
    """
    from ..seeds.after_seeds import run_after_seeds
    from ..seeds.claims import VERDICTS, run_claims  # the demo's later parts: imported when it runs
    from ..core.plots import plot_overview, plot_profile  # matplotlib only when the demo runs
    from ..seeds.report import write_report
    from ..seeds.reproduce import reproduce

    start = time.perf_counter()
    config = config or (QUICK if quick else FULL)
    out = output_folder(out_dir)
    rows, profiles = [], {}
    for i, case in enumerate(cases):
        cell, x = build_case(case, config, i)
        with torch_threads(1):
            p = profile(cell, x)
        files = {"figure": f"{case.name}.png", "weights": f"{case.name}.npz", "inputs": f"{case.name}-inputs.npy"}
        np.savez(out / files["weights"], W_hh=cell.W_hh.numpy(), W_xh=cell.W_xh.numpy(), b_h=cell.b_h.numpy())
        np.save(out / files["inputs"], x.numpy())
        plot_profile(p, out / files["figure"])
        rows.append(_row(case, p, files, config.input_scale if case.input_scale is None else case.input_scale))
        profiles[case.name] = p
    plot_overview(profiles, out / "overview.png")
    with torch_threads(1):
        claims = run_claims()  # the seeds' claims, judged (claims.py)
        reproductions = reproduce("all", out)  # the seeds' figures, as written and corrected (reproduce.py)
        after = run_after_seeds()  # the modern cells' guarantees, checked (seeds.after_seeds)
    studies = run_studies(out, quick=True, progress=progress) if with_studies else []
    claim_dicts = [c.to_dict() for c in claims]
    (out / "claims.json").write_text(json.dumps(claim_dicts, indent=2, allow_nan=False) + "\n")
    summary = {"config": asdict(config), "quick": quick, "cases": rows, "overview": "overview.png",
               "claims": {v: sum(c.verdict == v for c in claims) for v in VERDICTS}, "claims_file": "claims.json",
               "reproductions": [r.name for r in reproductions], "report": "index.html",
               "after_seeds": {c.id: c.verdict for c in after},
               "studies": [{k: st[k] for k in ("name", "figure", "flow_figure", "db")} for st in studies],
               "seconds": time.perf_counter() - start}
    summary = jsonable(summary)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, allow_nan=False) + "\n")
    write_report(out, [c.to_dict(figure=True) for c in claims], [r.to_dict() for r in reproductions], summary,
                 studies=studies, after_seeds=[c.to_dict(figure=True) for c in after])
    _print_summary(summary, out, console)
    return summary
