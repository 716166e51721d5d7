"""Benchmark: the cost of train()'s monitoring against a bare PyTorch loop on the same model and data.

    bare loop   for each step: batch = task.sample(B, L, gen); loss = task.loss(model(x)[0], batch);
                zero_grad; backward; torch.nn.utils.clip_grad_norm_; optimizer.step()    (nothing else)
    train       rnnscope.lab.train.train(config, progress=False) with eval_every = 100: the same model (same init
                seed), optimizer and batches (same generator seed), plus per step the gradient norm, the
                clipping record and the NaN check, and every 100 steps an evaluation on eval_size fresh
                sequences with the adjoint-profile snapshot (rnnscope's cell, unroll and adjoint.adjoints)
    ratio       (steps/s of train) / (steps/s of the bare loop)         goal >= 0.9 (Pascanu's setup, elman)

train is timed as the whole call (model construction, the final evaluation and all); the bare loop as its
loop. Rounds are interleaved (bare, train, bare, train, ...) so that a burst of load on the shared machine
hits both, and each side's best round is kept. One evaluation is also timed alone, split into its parts
(sampling + forward + error rate, and the snapshot), to show where the overhead goes.

The modern cells (--modern; lab/cell_networks.CellRNN through networks.build_model), at the cells study's sizes
(study_configs/cells.toml: hidden 64, batch 32, RMSprop lr 1e-3, no clipping, an evaluation on 500 fresh
sequences with the snapshot every 250 updates; adding-le and copy at L = 100): for each kind and task the same
train-vs-bare ratio (250 updates a round: one evaluation, the study's share of them), and for lru and mingru the
bare loop's steps/s with the forward pass as a scan (the module's default) against the step loop (method "loop").

Usage:
    python benchmarks/train.py [--steps 500] [--rounds 3] [--threads 1] [--quick] [--out benchmarks/results/train.json]
    python benchmarks/train.py --modern [--steps 250] [--rounds 2] [--kinds lru,mingru] [--tasks adding-le]
        [--quick] [--out benchmarks/results/train_modern.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# benchmarks/profile.py would shadow the standard library's profile module, which torch._dynamo imports
# (through cProfile) when the first optimizer is built: keep this folder off the import path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]

import torch  # noqa: E402

from rnnscope.core.vocab import MODERN_KINDS  # noqa: E402
from rnnscope.lab.tasks import get_task  # noqa: E402
from rnnscope.lab.networks import build_model  # noqa: E402
from rnnscope.lab.snapshot import first_sequences, gradient_snapshot  # noqa: E402
from rnnscope.lab.train import TrainConfig, _seeds, make_optimizer, train  # noqa: E402

# Pascanu et al. 2013's setup: 50 hidden units, SGD lr 0.01, batch 20, clip 1.0; their adding task at L = 100
PASCANU = dict(task="adding-pascanu", length=100, cell="elman", activation="tanh", hidden=50, optimizer="sgd",
               lr=0.01, batch=20, clip_norm=1.0, eval_every=100, eval_size=1000, snapshot=True)
CASES = {
    "elman-tanh (goal)": {},
    "lstm": {"cell": "lstm"},
    "gru": {"cell": "gru"},
}
# the cells study's settings (study_configs/cells.toml) at L = 100
STUDY = dict(length=100, hidden=64, init="default", optimizer="rmsprop", lr=0.001, batch=32, eval_every=250,
             eval_size=500, snapshot=True)
MODERN_TASKS = ("adding-le", "copy")
SCAN_CASES = ("lru", "mingru")  # the scan against the step loop inside training


def bare_loop(config: TrainConfig, method: str | None = None) -> float:
    """Seconds of `steps` plain updates of the same model on the same batches (method: a CellRNN's forward method,
    None: its default)."""
    task = get_task(config.task)
    init_seed, train_seed, _ = _seeds(config.seed)
    model = build_model(config, task.input_size, task.output_size, seed=init_seed)
    if method is not None:
        model.rnn.method = method
    opt = make_optimizer(config, model.parameters())
    gen = torch.Generator().manual_seed(train_seed)
    params = list(model.parameters())
    t0 = time.perf_counter()
    for _ in range(config.steps):
        batch = task.sample(config.batch, config.length, gen)
        opt.zero_grad(set_to_none=True)
        loss = task.loss(model(batch.x)[0], batch)
        loss.backward()
        if config.clip_norm:
            torch.nn.utils.clip_grad_norm_(params, config.clip_norm)
        opt.step()
    return time.perf_counter() - t0


def timed_train(config: TrainConfig) -> float:
    t0 = time.perf_counter()
    r = train(config, progress=False)
    seconds = time.perf_counter() - t0
    if r.steps != config.steps:
        raise RuntimeError(f"train stopped after {r.steps} of {config.steps} steps ({r.status}): not comparable")
    return seconds


def one_eval(config: TrainConfig) -> dict:
    """One evaluation's parts, timed alone (best of 3)."""
    task = get_task(config.task)
    model = build_model(config, task.input_size, task.output_size)
    gen = torch.Generator().manual_seed(1)
    fwd, snap = [], []
    for _ in range(3):
        t0 = time.perf_counter()
        b = task.sample(config.eval_size, config.length, gen)
        with torch.no_grad():
            out, _ = model(b.x)
            task.loss(out, b)
            task.wrong(out, b)
        t1 = time.perf_counter()
        gradient_snapshot(model, first_sequences(b, config.snapshot_size), task.loss)
        t2 = time.perf_counter()
        fwd.append(t1 - t0)
        snap.append(t2 - t1)
    return {"eval_forward_seconds": min(fwd), "snapshot_seconds": min(snap)}


def modern(args, log) -> dict:
    """The modern cells: train vs bare loop for each kind and task, and the scan vs the loop (see the docstring)."""
    kinds = args.kinds.split(",") if args.kinds else list(MODERN_KINDS)
    tasks = args.tasks.split(",") if args.tasks else list(MODERN_TASKS)
    results, scans = [], []
    for task in tasks:
        for kind in kinds:
            config = TrainConfig(task=task, cell=kind, steps=args.steps, **STUDY)
            rnn = build_model(config, get_task(task).input_size, get_task(task).output_size).rnn
            bare_loop(dataclasses.replace(config, steps=10))  # warm-up
            timed_train(dataclasses.replace(config, steps=10))
            bare, trained = [], []
            for r in range(args.rounds):
                bare.append(bare_loop(config))
                trained.append(timed_train(config))
                log(f"{task} {kind} round {r}: bare {bare[-1]:.2f} s, train {trained[-1]:.2f} s")
            results.append({"task": task, "kind": kind, "method": rnn.method, "state_size": rnn.state_size,
                            "config": config.to_dict(), "bare_seconds": bare, "train_seconds": trained,
                            "bare_steps_per_s": args.steps / min(bare), "train_steps_per_s": args.steps / min(trained),
                            "ratio": min(bare) / min(trained)})
            if kind in SCAN_CASES:
                steps = max(args.steps // 2, 20)
                cfg = dataclasses.replace(config, steps=steps)
                scan_s, loop_s = [], []
                for r in range(args.rounds):
                    scan_s.append(bare_loop(cfg))
                    loop_s.append(bare_loop(cfg, "loop"))
                    log(f"{task} {kind} round {r}: scan {scan_s[-1]:.2f} s, loop {loop_s[-1]:.2f} s")
                scans.append({"task": task, "kind": kind, "method": rnn.method, "steps": steps,
                              "scan_steps_per_s": steps / min(scan_s), "loop_steps_per_s": steps / min(loop_s),
                              "speedup": min(loop_s) / min(scan_s)})
    return {"benchmark": "modern cells: train vs bare loop; scan vs loop", "study": STUDY, "steps": args.steps,
            "rounds": args.rounds, "results": results, "scan_vs_loop": scans}


def print_modern(out: dict) -> None:
    print(f"{'task':<10} {'kind':<8} {'method':<12} {'S':>4} {'bare steps/s':>13} {'train steps/s':>14} {'ratio':>7}")
    for r in out["results"]:
        print(f"{r['task']:<10} {r['kind']:<8} {r['method']:<12} {r['state_size']:>4} {r['bare_steps_per_s']:>13.2f} "
              f"{r['train_steps_per_s']:>14.2f} {r['ratio']:>7.3f}")
    print(f"{'task':<10} {'kind':<8} {'method':<34} {'scan steps/s':>13} {'loop steps/s':>13} {'speedup':>8}")
    for r in out["scan_vs_loop"]:
        print(f"{r['task']:<10} {r['kind']:<8} {r['method']:<34} {r['scan_steps_per_s']:>13.2f} "
              f"{r['loop_steps_per_s']:>13.2f} {r['speedup']:>8.2f}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=500, help="updates per timing (default 500: 5 evaluations)")
    ap.add_argument("--rounds", type=int, default=3, help="best of this many interleaved rounds (default 3)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as the tests)")
    ap.add_argument("--quick", action="store_true", help="only the goal case, 200 steps, 2 rounds")
    ap.add_argument("--only-goal", action="store_true", help="only the goal case (elman)")
    ap.add_argument("--eval-size", type=int, default=None, help="override the config's eval_size")
    ap.add_argument("--modern", action="store_true", help="the modern cells at the cells study's sizes instead")
    ap.add_argument("--kinds", default=None, help="--modern: comma-separated kinds (default: all eight)")
    ap.add_argument("--tasks", default=None, help="--modern: comma-separated tasks (default: adding-le,copy)")
    ap.add_argument("--out", type=Path, default=None,
                    help="default benchmarks/results/train.json (train_modern.json with --modern)")
    args = ap.parse_args(argv)
    if args.out is None:
        args.out = HERE / "results" / ("train_modern.json" if args.modern else "train.json")
    if args.modern:
        if args.steps == 500:  # the default of the classic cases: the study evaluates every 250 updates
            args.steps = 250
        if args.quick:
            args.rounds, args.tasks = 1, args.tasks or "adding-le"
        if args.steps < 20 or args.rounds < 1 or args.threads < 1:
            ap.error(f"expected --steps >= 20, --rounds >= 1, --threads >= 1, got {args.steps}, {args.rounds}, "
                     f"{args.threads}")
    elif args.quick:
        args.steps, args.rounds = 200, 2
    if not args.modern and (args.steps < 100 or args.rounds < 1 or args.threads < 1):
        ap.error(f"expected --steps >= 100, --rounds >= 1, --threads >= 1, got {args.steps}, {args.rounds}, {args.threads}")
    torch.set_num_threads(args.threads)

    def log(msg):
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    load_start = list(os.getloadavg())
    env = {"threads": args.threads, "torch": torch.__version__, "python": platform.python_version(),
           "machine": platform.machine(), "cpus": os.cpu_count()}
    if args.modern:
        out = {**modern(args, log), **env, "load_start": load_start, "load_end": list(os.getloadavg())}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=2) + "\n")
        print_modern(out)
        print(f"written to {args.out}")
        return 0
    cases = {"elman-tanh (goal)": {}} if (args.quick or args.only_goal) else CASES
    results = []
    for name, extra in cases.items():
        config = TrainConfig(**{**PASCANU, **extra, "steps": args.steps})
        if args.eval_size is not None:
            config = dataclasses.replace(config, eval_size=args.eval_size)
        bare_loop(dataclasses.replace(config, steps=100))  # warm-up: imports, allocator, first backward
        timed_train(dataclasses.replace(config, steps=100))
        bare, trained = [], []
        for r in range(args.rounds):
            bare.append(bare_loop(config))
            trained.append(timed_train(config))
            log(f"{name} round {r}: bare {bare[-1]:.3f} s, train {trained[-1]:.3f} s")
        evals = one_eval(config)
        row = {"case": name, "config": config.to_dict(), "bare_seconds": bare, "train_seconds": trained,
               "bare_steps_per_s": args.steps / min(bare), "train_steps_per_s": args.steps / min(trained),
               "ratio": min(bare) / min(trained), "evaluations": args.steps // config.eval_every, **evals,
               "eval_seconds_per_100_steps": evals["eval_forward_seconds"] + evals["snapshot_seconds"],
               "bare_seconds_per_100_steps": min(bare) * 100 / args.steps}
        results.append(row)
    out = {"benchmark": "train monitoring vs bare loop", "goal": "ratio >= 0.9 for the elman case",
           "steps": args.steps, "rounds": args.rounds, "threads": args.threads, "torch": torch.__version__,
           "python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
           "load_start": load_start, "load_end": list(os.getloadavg()), "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"{'case':<20} {'bare steps/s':>13} {'train steps/s':>14} {'ratio':>7} {'eval fwd s':>11} {'snapshot s':>11} {'100 bare steps s':>17}")
    for row in results:
        print(f"{row['case']:<20} {row['bare_steps_per_s']:>13.1f} {row['train_steps_per_s']:>14.1f} {row['ratio']:>7.3f} "
              f"{row['eval_forward_seconds']:>11.3f} {row['snapshot_seconds']:>11.3f} {row['bare_seconds_per_100_steps']:>17.3f}")
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
