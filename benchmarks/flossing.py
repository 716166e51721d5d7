"""Reproduction: pre-flossing vs none on the delayed XOR (and copy) task at growing delays (Engelken 2023, Fig. 4).

    network   Elman tanh (nn.RNN, fused), H = 64, orthogonal W_hh (g = 1; the code's IC = 3), a linear readout
    training  Adam lr 1e-3, batch 16 (the code's), T' = 300 steps (the code's T), --steps updates
    flossing  none | pre: --pre updates of mean_i lambda_i^2 over the top k = 32 exponents before training (AdamW lr
              1e-3 on W_xh, W_hh, b; one sequence per update, its first 100 steps, warm-up 20)
    judged    per sequence: wrong when more than 5 % of its scored steps are wrong (a per-step accuracy >= 95 %);
              solved when < 1 % of 500 fresh sequences are wrong (the lab's lenient criterion)

Both methods share the model's init, training and evaluation batches (train() draws the flossing inputs from a
generator of their own); flossing_k is set for both, so that the exponents are recorded at every evaluation.
Prints one row per (task, delay, method): runs, solved, final loss / ln 2, final error rate, lambda_1 before and
after pre-flossing, lambda_1 at the last evaluation, seconds per run.

Usage (-P: benchmarks/profile.py would shadow the standard library's profile module, which torch imports):
    python -P benchmarks/flossing.py [--task delayed-xor] [--delays 5,10,20,30] [--seeds 0] [--steps 1500] [--pre 100]
        [--methods none,pre] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import math
import time

import torch

from rnnscope.lab.flossing_tasks import DelayedCopy, DelayedXOR
from rnnscope.lab.train import TrainConfig, train


def run(task: str, delay: int, seed: int, method: str, steps: int, pre: int, k: int, *, cell: str = "elman",
        init: str = "orthogonal", hidden: int = 64, lr: float = 1e-3, batch: int = 16, every: int = 0,
        clip: float | None = None) -> dict:
    t = (DelayedXOR if task == "delayed-xor" else DelayedCopy)(max_wrong=0.05)
    flossed = method != "none"
    cfg = TrainConfig(task, delay, cell=cell, activation="tanh", hidden=hidden, init=init, optimizer="adam",
                      lr=lr, batch=batch, steps=steps, eval_every=250, eval_size=500, snapshot=False, seed=seed,
                      clip_norm=clip, flossing_k=k, flossing_steps=pre if flossed else 0,
                      flossing_every=every if method == "inter" else 0)
    t0 = time.perf_counter()
    r = train(cfg, progress=False, task=t)
    lam = [h.get("lyapunov") for h in r.history]
    return {"task": task, "delay": delay, "seed": seed, "method": method, "status": r.status, "steps": r.steps,
            "loss_over_ln2": r.final_loss / math.log(2), "error_rate": r.final_error_rate,
            "pre_before": (r.flossing.get("pre_before") or [None])[0], "pre_after": (r.flossing.get("pre_after") or [None])[0],
            "first_eval_lambda1": lam[0][0] if lam and lam[0] else None,
            "last_lambda1": lam[-1][0] if lam and lam[-1] else None,
            "last_lambda_k": lam[-1][-1] if lam and lam[-1] else None, "seconds": time.perf_counter() - t0}


def fmt(v, f=".3f"):
    return "-" if v is None else format(v, f)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", default="delayed-xor", choices=["delayed-xor", "delayed-copy"])
    ap.add_argument("--delays", default="5,10,20,30")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--pre", type=int, default=100)
    ap.add_argument("--k", type=int, default=32)
    ap.add_argument("--methods", default="none,pre", help="none, pre (pre-flossing), inter (pre + every --every)")
    ap.add_argument("--cell", default="elman", choices=["elman", "pal"])
    ap.add_argument("--init", default="orthogonal")
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--every", type=int, default=500, help="interflossing period (method inter)")
    ap.add_argument("--clip", type=float, default=None, help="norm clipping threshold (the code's ClipNorm 0.03)")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    torch.set_num_threads(1)
    rows = []
    for d in [int(v) for v in a.delays.split(",")]:
        for m in a.methods.split(","):
            for s in [int(v) for v in a.seeds.split(",")]:
                rows.append(run(a.task, d, s, m, a.steps, a.pre, a.k, cell=a.cell, init=a.init, hidden=a.hidden,
                                lr=a.lr, batch=a.batch, every=a.every, clip=a.clip))
                r = rows[-1]
                print(f"{r['task']} d={d} {m} seed {s}: {r['status']} after {r['steps']} updates, loss/ln2 "
                      f"{fmt(r['loss_over_ln2'])}, error {fmt(r['error_rate'])}, lambda_1 pre {fmt(r['pre_before'])} -> "
                      f"{fmt(r['pre_after'])}, first eval {fmt(r['first_eval_lambda1'])}, last {fmt(r['last_lambda1'])} "
                      f"(lambda_k {fmt(r['last_lambda_k'])}), {r['seconds']:.0f} s", flush=True)
    print("\n| task | delay | method | runs | solved | updates (mean) | loss / ln 2 | error rate | "
          "lambda_1 before -> after pre | lambda_1 at the end |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    keys = sorted({(r["task"], r["delay"], r["method"]) for r in rows}, key=lambda k: (k[1], k[2]))
    for key in keys:
        rs = [r for r in rows if (r["task"], r["delay"], r["method"]) == key]
        mean = lambda f: sum(r[f] for r in rs if r[f] is not None) / max(1, sum(r[f] is not None for r in rs))  # noqa: E731
        pre = f"{fmt(mean('pre_before'))} -> {fmt(mean('pre_after'))}" if key[2] != "none" else "-"
        print(f"| {key[0]} | {key[1]} | {key[2]} | {len(rs)} | {sum(r['status'] == 'solved' for r in rs)} | "
              f"{fmt(mean('steps'), '.0f')} | {fmt(mean('loss_over_ln2'))} | {fmt(mean('error_rate'))} | {pre} | {fmt(mean('last_lambda1'))} |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
