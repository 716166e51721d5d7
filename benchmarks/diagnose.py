"""Benchmark: rnnscope.interop.diagnose on a 2-layer nn.LSTM against one fused forward + backward through the same module.

    fused        out, _ = lstm(x); out[-1].sum().backward()          torch's own LSTM kernels (the baseline)
    adjoint      diagnose(lstm, x, jacobian=False, attribution=False, gradient_norm=False): the re-run
                 (fused, per layer) of both layers and the exact adjoint profile log10 ||dL/dh_k||, ||dL/dc_k||   goal <= 2x fused
    + norm/gates diagnose(lstm, x, jacobian=False): also ||dL/dtheta|| and the carry share (what the monitor runs)
    jacobian     diagnose(lstm, x, jacobian_sequences=1) minus `adjoint + norm/gates`: the Jacobian-product profile
                 log10 ||ds_T/ds_k||_2 (and the h -> h, c -> c blocks) of one sequence, both layers, O(T S^3)
    monitor      a training loop (2-layer LSTM + linear head, Adam) with GradientFlowMonitor(every=100).step(...)
                 against the same loop without it                                          goal <= 10% overhead

Default sizes: hidden 256, T = 500, B = 32, input 32, float32 (the issue's case); the monitor loop uses hidden 128,
T = 100, B = 32 and 300 steps so that it runs in minutes on a small machine. Rounds are interleaved (fused,
adjoint, full, fused, ...) so that a burst of load on a shared machine hits every side; the ratios are of the
best rounds (and the median of the per-round ratios is reported too).

Usage:
    python benchmarks/diagnose.py [--rounds 3] [--threads 0 (torch's default)] [--quick] [--out benchmarks/results/diagnose.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# benchmarks/profile.py would shadow the standard library's profile module (imported by torch._dynamo): keep
# this folder off the import path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from rnnscope.interop.diagnose import diagnose  # noqa: E402
from rnnscope.interop.monitor import GradientFlowMonitor  # noqa: E402


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def fused(lstm, x):
    lstm.zero_grad(set_to_none=True)
    out, _ = lstm(x)
    out[-1].sum().backward()


def training(steps: int, hidden: int, T: int, B: int, D: int, monitor_every: int | None, seed: int = 0) -> float:
    """Seconds of `steps` Adam updates of a 2-layer LSTM + linear head on fresh random batches (same seed both ways)."""
    torch.manual_seed(seed)
    lstm = torch.nn.LSTM(D, hidden, num_layers=2)
    head = torch.nn.Linear(hidden, 1)
    opt = torch.optim.Adam(list(lstm.parameters()) + list(head.parameters()), lr=1e-3)
    mon = GradientFlowMonitor(lstm, every=monitor_every) if monitor_every else None
    gen = torch.Generator().manual_seed(seed + 1)
    t0 = time.perf_counter()
    for _ in range(steps):
        x = torch.randn(T, B, D, generator=gen)
        y = torch.randn(B, 1, generator=gen)
        out, _ = lstm(x)
        loss = F.mse_loss(head(out[-1]), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if mon is not None:
            mon.step(x, lambda o, y=y: F.mse_loss(head(o[-1]), y))
    seconds = time.perf_counter() - t0
    if mon is not None and len(mon.history) != (steps + monitor_every - 1) // monitor_every:
        raise RuntimeError("monitor recorded the wrong number of times")
    return seconds


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--length", type=int, default=500)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--input-size", type=int, default=32)
    ap.add_argument("--monitor-steps", type=int, default=300)
    ap.add_argument("--quick", action="store_true", help="hidden 64, T = 100, 2 rounds, 200 monitor steps")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "diagnose.json")
    args = ap.parse_args(argv)
    if args.quick:
        args.hidden, args.length, args.rounds, args.monitor_steps = 64, 100, 2, 200
    if args.threads:
        torch.set_num_threads(args.threads)
    H, T, B, D = args.hidden, args.length, args.batch, args.input_size
    load_start = list(os.getloadavg())
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(D, H, num_layers=2)
    x = torch.randn(T, B, D)
    adjoint_only = lambda: diagnose(lstm, x, jacobian=False, attribution=False, gradient_norm=False)  # noqa: E731
    with_gates = lambda: diagnose(lstm, x, jacobian=False)  # noqa: E731
    fused(lstm, x), adjoint_only(), with_gates()  # warm-up
    t_fused, t_adj, t_full = [], [], []
    for r in range(args.rounds):
        t_fused.append(timed(lambda: fused(lstm, x)))
        t_adj.append(timed(adjoint_only))
        t_full.append(timed(with_gates))
        log(f"round {r}: fused {t_fused[-1]:.3f} s, adjoint {t_adj[-1]:.3f} s, + norm/gates {t_full[-1]:.3f} s")
    t_jac_total = timed(lambda: diagnose(lstm, x, jacobian_sequences=1))
    t_jac = t_jac_total - min(t_full)
    log(f"jacobian profile (1 sequence, 2 layers, S = {2 * H}): {t_jac:.2f} s (diagnose in all {t_jac_total:.2f} s)")
    mon_steps, mon_h, mon_T = args.monitor_steps, max(H // 2, 16), min(T, 100)
    training(20, mon_h, mon_T, B, D, 10)  # warm-up
    bare, monit = [], []
    for r in range(max(2, args.rounds - 1)):
        bare.append(training(mon_steps, mon_h, mon_T, B, D, None))
        monit.append(training(mon_steps, mon_h, mon_T, B, D, 100))
        log(f"monitor round {r}: bare {bare[-1]:.2f} s, with monitor {monit[-1]:.2f} s")
    results = {
        "case": {"module": "nn.LSTM", "layers": 2, "hidden": H, "T": T, "B": B, "input": D, "dtype": "float32"},
        "fused_seconds": t_fused, "adjoint_seconds": t_adj, "adjoint_norm_gates_seconds": t_full,
        "adjoint_ratio": min(t_adj) / min(t_fused),
        "adjoint_ratio_median": statistics.median(a / f for a, f in zip(t_adj, t_fused)),
        "adjoint_norm_gates_ratio": min(t_full) / min(t_fused),
        "jacobian_profile_seconds_per_sequence": t_jac, "jacobian_diagnose_seconds": t_jac_total,
        "monitor": {"module": "nn.LSTM", "layers": 2, "hidden": mon_h, "T": mon_T, "B": B, "steps": mon_steps,
                    "every": 100, "bare_seconds": bare, "monitor_seconds": monit,
                    "overhead": min(monit) / min(bare) - 1.0},
    }
    out = {"benchmark": "diagnose vs one fused forward + backward; monitor overhead",
           "goal": "adjoint_ratio <= 2; monitor overhead <= 0.10", "rounds": args.rounds,
           "threads": torch.get_num_threads(), "torch": torch.__version__, "python": platform.python_version(),
           "machine": platform.machine(), "cpus": os.cpu_count(), "load_start": load_start,
           "load_end": list(os.getloadavg()), "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"fused forward+backward   {min(t_fused):8.3f} s")
    print(f"diagnose, adjoints only  {min(t_adj):8.3f} s   ratio {results['adjoint_ratio']:.2f} (goal <= 2; median "
          f"per round {results['adjoint_ratio_median']:.2f})")
    print(f"  + norm and carry share {min(t_full):8.3f} s   ratio {results['adjoint_norm_gates_ratio']:.2f}")
    print(f"Jacobian profile         {t_jac:8.3f} s   per sequence, both layers (S = {2 * H})")
    print(f"monitor every 100 steps  overhead {100 * results['monitor']['overhead']:.1f}% (goal <= 10%)")
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
