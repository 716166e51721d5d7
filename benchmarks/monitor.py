"""Benchmark: the cost of GradientFlowMonitor in a char-LM training loop (issue 13, item 7: goal <= 5% at every = 100).

    bare         a char-LM (nn.Embedding(V, 64) -> 2-layer nn.LSTM, hidden 128, batch_first -> nn.Linear(128, V))
                 trained with Adam on windows of real text (the standard library's pydoc_data.topics), T = 200,
                 B = 32, cross-entropy at every step: loss = ce(model(x), y); zero_grad; backward; opt.step()
    every = 100  the same loop with monitor.step(x, ce, targets=y) between backward and opt.step(): the
                 gradient norm sqrt(sum ||p.grad||^2) every step, a record on every 100th (the first included):
                 diagnose on the first 8 of the 32 sequences (the monitor's defaults), TensorBoard scalars and
                 the profile figure (a real SummaryWriter into a temporary folder; --no-writer: none)
    every = 20   the same at every = 20 (reported, no goal)

    overhead     time(monitored) / time(bare) - 1: of the best rounds, and the median of the per-round ratios

Each run starts from the same seed (same weights, same batches), so the monitored runs train exactly as the bare
one does (the monitor leaves p.grad alone; checked: `same_training`, the final losses are equal). Rounds are
interleaved (bare, 100, 20, then rotated) so that a burst of load on a shared machine hits every side. The
monitor's own clock (GradientFlowMonitor.seconds: norm, diagnose, write) splits the cost; `diagnose_budget`
is the diagnose seconds per record that would meet the goal, 0.05 x every x (training step) minus the rest
(per `every` steps in the long run: the scalars of one record, 1 / figure_every of a figure, `every` norms);
`steady_state_overhead` is that long-run cost with the measured diagnose (a short run holds a figure at its
first record, more than the long-run share of them); both are medians over rounds, each round against its own
bare run (the machine's speed drifts between rounds).
`diagnose_variants` times one record alone: the monitor's default (a record diagnoses the first 8 of the
batch's 32 sequences, GradientFlowMonitor's `sequences`), the whole batch (sequences=None), and diagnose's own
defaults.

Usage:
    python benchmarks/monitor.py [--steps 200] [--rounds 2] [--threads 0 (torch's default)] [--quick] [--no-writer]
                                 [--out benchmarks/results/monitor.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# benchmarks/profile.py would shadow the standard library's profile module (imported by torch._dynamo): keep
# this folder off the import path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]

import torch  # noqa: E402
from torch import nn  # noqa: E402

from rnnscope.interop.diagnose import diagnose  # noqa: E402
from rnnscope.interop.monitor import GradientFlowMonitor  # noqa: E402

sys.path.insert(0, str(HERE.parent / "examples"))
from charlm import CHARS, IDS, CharLM, ce  # noqa: E402  (the README's char-LM: the model, the text, the loss)

V = len(CHARS)


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def windows(gen: torch.Generator, T: int, B: int) -> tuple[torch.Tensor, torch.Tensor]:
    """B windows of T + 1 characters: inputs (B, T), next-character targets (B, T)."""
    start = torch.randint(0, IDS.numel() - T - 1, (B,), generator=gen).tolist()
    w = torch.stack([IDS[s:s + T + 1] for s in start])
    return w[:, :-1], w[:, 1:]


def training(steps: int, hidden: int, T: int, B: int, every: int | None, writer_dir: str | None, seed: int = 0) -> dict:
    """`steps` Adam updates of the char-LM, with GradientFlowMonitor(every=every) or without (every None)."""
    torch.manual_seed(seed)
    model = CharLM(hidden)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    writer = None
    if every and writer_dir is not None:
        from torch.utils.tensorboard import SummaryWriter
        writer = SummaryWriter(tempfile.mkdtemp(dir=writer_dir))
    mon = GradientFlowMonitor(model, every=every, writer=writer) if every else None
    gen = torch.Generator().manual_seed(seed + 1)
    batches = [windows(gen, T, B) for _ in range(steps)]  # made before the clock starts, the same both ways
    losses = []
    t0 = time.perf_counter()
    for x, y in batches:
        loss = ce(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if mon is not None:
            mon.step(x, ce, targets=y)
        opt.step()
        losses.append(loss.detach())
    seconds = time.perf_counter() - t0
    if writer is not None:
        writer.close()
    out = {"seconds": seconds, "first_loss": float(losses[0]), "last_loss": float(losses[-1])}
    if mon is not None:
        if len(mon.history) != (steps + every - 1) // every:
            raise RuntimeError("monitor recorded the wrong number of times")
        out.update(records=len(mon.history), figures=mon.figures_written, figure_every=mon.figure_every,
                   monitor_seconds=dict(mon.seconds),
                   diagnose_seconds=[r.diagnosis.seconds for r in mon.history])
    return out


def variants(hidden: int, T: int, B: int, repeats: int = 2) -> dict:
    """One record alone on the (untrained) char-LM: the monitor's default (the first 8 sequences), the whole
    batch (sequences=None), and diagnose's own defaults (every part, the whole batch): best of repeats."""
    torch.manual_seed(0)
    model = CharLM(hidden)
    x, y = windows(torch.Generator().manual_seed(9), T, B)
    cases = {"monitor_default": lambda: GradientFlowMonitor(model).record(x, ce, targets=y),
             "monitor_whole_batch": lambda: GradientFlowMonitor(model, sequences=None).record(x, ce, targets=y),
             "diagnose_default": lambda: diagnose(model, x, ce, targets=y)}
    out = {}
    for name, fn in cases.items():
        best = min(_timed(fn) for _ in range(repeats))
        out[name] = best
        log(f"{name}: {best:.3f} s")
    return out


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--length", type=int, default=200)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--quick", action="store_true", help="100 steps, 2 rounds (the same model and sizes)")
    ap.add_argument("--no-writer", action="store_true", help="no SummaryWriter (the scalars and figure not written)")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "monitor.json")
    args = ap.parse_args(argv)
    if args.quick:
        args.steps, args.rounds = 100, 2
    if args.threads:
        torch.set_num_threads(args.threads)
    writer_dir = None
    if not args.no_writer:
        try:
            import tensorboard  # noqa: F401
            writer_dir = tempfile.mkdtemp(prefix="rnnscope-monitor-bench-")
        except ImportError:
            log("tensorboard is not installed: no writer")
    H, T, B, N = args.hidden, args.length, args.batch, args.steps
    load_start = list(os.getloadavg())
    training(6, H, T, B, 3, writer_dir)  # warm-up: kernels, matplotlib, the writer
    runs = {"bare": [], "every_100": [], "every_20": []}
    order = list(runs)
    for r in range(args.rounds):
        for name in order[r % 3:] + order[:r % 3]:
            every = None if name == "bare" else int(name.split("_")[1])
            runs[name].append(training(N, H, T, B, every, writer_dir))
            log(f"round {r}: {name} {runs[name][-1]['seconds']:.2f} s")
    var = variants(H, T, B)
    bare = [x["seconds"] for x in runs["bare"]]
    step = min(bare) / N
    res = {}
    for name in ("every_100", "every_20"):
        every = int(name.split("_")[1])
        mon = [x["seconds"] for x in runs[name]]
        recs, figs, fe = (runs[name][0][k] for k in ("records", "figures", "figure_every"))
        rounds = []  # each round against its own bare run (the machine's speed drifts between rounds)
        for x, b in zip(runs[name], runs["bare"]):
            ms, st = x["monitor_seconds"], b["seconds"] / N
            fig_each = ms["figure"] / figs if figs else 0.0
            # per `every` steps in the long run: one record (diagnose, scalars), 1 / figure_every of a figure, norms
            rest = ms["write"] / recs + fig_each / fe + every * ms["norm"] / N
            rounds.append({"step": st, "diagnose": ms["diagnose"] / recs, "scalars": ms["write"] / recs,
                           "figure": fig_each, "norm": ms["norm"] / N,
                           "steady": (ms["diagnose"] / recs + rest) / (every * st), "budget": 0.05 * every * st - rest})
        med = lambda key: statistics.median(r[key] for r in rounds)  # noqa: E731
        res[name] = {
            "every": every, "records": recs, "seconds": mon,
            "overhead": min(mon) / min(bare) - 1.0,
            "overhead_median": statistics.median(m / b - 1.0 for m, b in zip(mon, bare)),
            "per_round": rounds,
            "diagnose_seconds_per_record": med("diagnose"), "diagnose_seconds_per_record_min": min(r["diagnose"] for r in rounds),
            "diagnose_seconds_per_record_in_steps": statistics.median(r["diagnose"] / r["step"] for r in rounds),
            "scalar_seconds_per_record": med("scalars"),
            "figures": figs, "figure_every": fe, "figure_seconds_each": med("figure"),
            "norm_seconds_per_step": med("norm"),
            "steady_state_overhead": med("steady"),
            "diagnose_budget": med("budget"),
            "diagnose_budget_in_steps": statistics.median(r["budget"] / r["step"] for r in rounds),
            "same_training": all(x["last_loss"] == y["last_loss"] for x, y in zip(runs[name], runs["bare"])),
        }
    out = {"benchmark": "GradientFlowMonitor in a char-LM training loop", "goal": "every_100 overhead <= 0.05",
           "case": {"model": "Embedding(V, 64) -> LSTM(64, hidden, 2 layers, batch_first) -> Linear(hidden, V)",
                    "V": V, "hidden": H, "T": T, "B": B, "steps": N, "optimizer": "Adam 2e-3", "loss": "cross-entropy, every step",
                    "text": "pydoc_data.topics", "writer": writer_dir is not None, "dtype": "float32"},
           "rounds": args.rounds, "threads": torch.get_num_threads(), "torch": torch.__version__,
           "python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
           "load_start": load_start, "load_end": list(os.getloadavg()),
           "bare_seconds": bare, "train_step_seconds": step, "runs": runs, "results": res, "diagnose_variants": var}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"training step (bare)      {step:8.4f} s   ({N} steps, best of {args.rounds} rounds)")
    for name, r in res.items():
        print(f"monitor every = {r['every']:<4d}     overhead {100 * r['overhead']:5.1f}% (best rounds), "
              f"{100 * r['overhead_median']:5.1f}% (median per round); per record: diagnose "
              f"{r['diagnose_seconds_per_record']:.3f} s, scalars {r['scalar_seconds_per_record']:.3f} s; figure "
              f"{r['figure_seconds_each']:.3f} s each ({r['figures']} of {r['records']} records); norm "
              f"{1e3 * r['norm_seconds_per_step']:.2f} ms/step; steady state (a figure every {r['figure_every']} "
              f"records) {100 * r['steady_state_overhead']:.1f}%")
    r = res["every_100"]
    print(f"goal <= 5% at every = 100: {'met' if r['steady_state_overhead'] <= 0.05 else 'not met'} (steady state); diagnose must take <= "
          f"{r['diagnose_budget']:.3f} s per record (= {r['diagnose_budget_in_steps']:.1f} training steps; now "
          f"{r['diagnose_seconds_per_record']:.3f} s = {r['diagnose_seconds_per_record_in_steps']:.1f} steps)")
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
