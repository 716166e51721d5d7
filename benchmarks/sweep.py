"""Benchmark of the sweep runner's parallel efficiency on the local process pool.

    the same N configs of the probe task (tests/sweep_probe.py), each burning W seconds of CPU time of its
    thread (128 x 128 float64 torch matmuls, one torch thread: a fixed amount of work, so that a busy machine
    shows up as longer wall time)
    run_sweep(workers=1) and run_sweep(workers=2), each into a fresh temporary db, interleaved, best of R
    speedup = seconds_1 / seconds_2   (goal >= 1.8 on 2 local workers; the ideal is 2)

Each timing is the whole run_sweep call: expanding the grid, opening the store, starting the pool (forks of
the forkserver, which a small warm-up sweep starts first, as a long-running coordinator would have it),
the tasks, recording every row, closing the pool. The sum of the tasks' own seconds (from the db) and the
ideal time N W / workers are stored too, so that the coordinator's overhead can be read off.
The machine is shared and has 2 cores: rounds are interleaved so that a burst of load hits both.

Usage:
    python benchmarks/sweep.py [--configs 16] [--work 0.5] [--rounds 2] [--out benchmarks/results/sweep.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import torch

from rnnscope.runs.runner import run_sweep
from rnnscope.runs.spec import SweepSpec

HERE = Path(__file__).resolve().parent
# the probe task lives with the tests (tests/sweep_probe.py): on sys.path before the workers start, they take it
sys.path.insert(0, str(HERE.parent / "tests"))
from sweep_probe import PROBE  # noqa: E402


def one_run(spec: SweepSpec, workers: int, folder: Path, tag: str) -> dict:
    """run_sweep into a fresh db; wall seconds of the call and the tasks' own seconds from the db."""
    db = folder / f"{tag}.db"
    t0 = time.perf_counter()
    rep = run_sweep(spec, db, workers=workers, progress=False)
    seconds = time.perf_counter() - t0
    con = sqlite3.connect(str(db))
    try:
        task_seconds, pids = con.execute(
            "SELECT sum(seconds), count(DISTINCT json_extract(metrics, '$.pid')) FROM runs WHERE status = 'done'"
        ).fetchone()
    finally:
        con.close()
    if rep.done != len(spec.grid["x"]):
        raise RuntimeError(f"benchmark sweep {tag}: expected {len(spec.grid['x'])} done runs, got {rep.to_dict()}")
    return {"workers": workers, "seconds": seconds, "task_seconds": task_seconds, "worker_processes": pids}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", type=int, default=16, help="number of probe configs (default 16)")
    ap.add_argument("--work", type=float, default=0.5, help="CPU seconds each config burns (default 0.5)")
    ap.add_argument("--rounds", type=int, default=2, help="best of this many interleaved rounds (default 2)")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "sweep.json")
    args = ap.parse_args(argv)
    if args.configs < 1 or args.rounds < 1 or args.work <= 0:
        ap.error(f"expected --configs >= 1, --rounds >= 1, --work > 0, got {args.configs}, {args.rounds}, {args.work}")

    def log(msg):
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    load_start = list(os.getloadavg())
    rounds: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="rnnscope-bench-sweep-") as tmp:
        folder = Path(tmp)
        run_sweep(SweepSpec("warm-up", PROBE, grid={"x": [0, 1]}), folder / "warm.db", workers=2, progress=False)
        for r in range(args.rounds):
            for workers in (1, 2):  # interleaved: a burst of load hits both
                # a new sweep name and a new db every time: nothing is skipped
                spec = SweepSpec(f"bench-{r}-{workers}", PROBE, grid={"x": list(range(args.configs))},
                                 fixed={"work": args.work, "round": r, "workers": workers})
                res = one_run(spec, workers, folder, f"r{r}-w{workers}")
                res["round"] = r
                rounds.append(res)
                log(f"round {r + 1}/{args.rounds}, workers={workers}: {res['seconds']:.2f} s "
                    f"(tasks {res['task_seconds']:.2f} s in {res['worker_processes']} processes)")

    best = {w: min((x for x in rounds if x["workers"] == w), key=lambda x: x["seconds"]) for w in (1, 2)}
    s1, s2 = best[1]["seconds"], best[2]["seconds"]
    ideal1, ideal2 = args.configs * args.work, args.configs * args.work / 2
    results = {
        "benchmark": "rnnscope run_sweep parallel efficiency, local process pool (forkserver)",
        "configs": args.configs, "work_cpu_seconds_per_config": args.work, "rounds": args.rounds,
        "seconds_1": s1, "seconds_2": s2, "speedup": s1 / s2, "goal_speedup": 1.8,
        "parallel_efficiency_2": s1 / (2 * s2),
        "ideal_seconds_1": ideal1, "ideal_seconds_2": ideal2,
        "overhead_seconds_1": s1 - ideal1, "overhead_seconds_2": s2 - ideal2,
        "all_rounds": rounds,
        "machine": {"torch": torch.__version__, "cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform(), "loadavg_start": load_start,
                    "loadavg_end": list(os.getloadavg())},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"{args.configs} probe configs x {args.work:g} CPU s, best of {args.rounds} interleaved rounds, "
          f"{os.cpu_count()} CPUs (load {load_start[0]:.2f} at start):")
    print(f"  workers=1  {s1:6.2f} s   (ideal {ideal1:.2f} s, overhead {s1 - ideal1:+.2f} s)")
    print(f"  workers=2  {s2:6.2f} s   (ideal {ideal2:.2f} s, overhead {s2 - ideal2:+.2f} s)")
    print(f"  speedup    {s1 / s2:6.2f}x  (goal >= 1.8x; parallel efficiency {s1 / (2 * s2):.0%})")
    print(f"results: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
