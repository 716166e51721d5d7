"""Benchmark: rnnscope.diagnose against one forward + backward of the same model on the same batch.

Cases (issue 13): the char-LM shape, nn.Embedding(V, 64) -> 2-layer nn.LSTM 128 (batch_first) -> nn.Linear on
windows of real text (pydoc_data.topics), T = 200, B = 32, cross-entropy at every step; and a 2-layer nn.LSTM 256
with an input of 32 and a linear head, T = 500, B = 32, a loss on the last step. Both models float32.

    fwd+bwd      loss_fn(model(x), y).backward(): torch's own kernels, torch's default threads (the baseline)
    fwd+bwd f64  the same on a float64 copy of the model (torch's own float64 kernels): what the analysis'
                 precision costs by itself, without any analysis
    default      diagnose(model, x, loss_fn, targets=y): float64 analysis of an upcast copy, adjoints, the
                 credit profile (4 anchors x 4 sequences), the carry share (4 sequences), every parameter's
                 gradient norm, verdicts and advice                                       goal <= 3x fwd+bwd
    adjoints     the same without the credit profile, the carry share and the gradient norms
    float32      the default options with dtype=torch.float32 (the analysis in the model's own precision)
    jacobian     the Jacobian-product profile of one sequence (diagnose(..., jacobian=True,
                 jacobian_sequences=1) minus the default): O(T S^3), on request

Rounds are interleaved (fwd+bwd, fwd+bwd f64, default, adjoints, float32, then again) so that a burst of load
on a shared machine hits every side; the ratios are of the best rounds, with the median of the per-round ratios
beside; `*_ratio_float64` are the float64 analyses against fwd+bwd f64.
The monitor's cost in a training loop is benchmarks/monitor.py.

Usage:
    python benchmarks/diagnose.py [--rounds 3] [--threads 0 (torch's default)] [--quick] [--out benchmarks/results/diagnose.json]
"""

from __future__ import annotations

import argparse
import copy
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
from torch import nn  # noqa: E402

from rnnscope.interop.diagnose import diagnose  # noqa: E402

sys.path.insert(0, str(HERE.parent / "examples"))
from charlm import IDS, CharLM, ce  # noqa: E402  (the README's char-LM: the model, the text, the loss)


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class LastStep(nn.Module):
    def __init__(self, hidden: int = 256, D: int = 32):
        super().__init__()
        self.rnn = nn.LSTM(D, hidden, num_layers=2)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x):
        return self.head(self.rnn(x)[0][-1])


def mse(out, y):
    return nn.functional.mse_loss(out, y)


def char_lm_case(T: int, B: int, hidden: int):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    start = torch.randint(0, IDS.numel() - T - 1, (B,), generator=g).tolist()
    w = torch.stack([IDS[s:s + T + 1] for s in start])
    return CharLM(hidden), w[:, :-1], w[:, 1:], ce


def last_step_case(T: int, B: int, hidden: int):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(2)
    return LastStep(hidden), torch.randn(T, B, 32, generator=g), torch.randn(B, 1, generator=g), mse


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def measure(name: str, model, x, y, loss_fn, rounds: int) -> dict:
    m64 = copy.deepcopy(model).double()
    y64 = y.double() if y.is_floating_point() else y
    x64 = x.double() if x.is_floating_point() else x

    def fwd_bwd():
        model.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()

    def fwd_bwd_f64():
        m64.zero_grad(set_to_none=True)
        loss_fn(m64(x64), y64).backward()

    variants = {
        "default": lambda: diagnose(model, x, loss_fn, targets=y),
        "adjoints": lambda: diagnose(model, x, loss_fn, targets=y, credit_anchors=0, attribution=False,
                                     gradient_norm=False),
        "float32": lambda: diagnose(model, x, loss_fn, targets=y, dtype=torch.float32),
    }
    fwd_bwd()
    fwd_bwd_f64()
    for f in variants.values():  # warm-up
        f()
    times = {"fwd_bwd": [], "fwd_bwd_float64": [], **{k: [] for k in variants}}
    for r in range(rounds):
        times["fwd_bwd"].append(timed(fwd_bwd))
        times["fwd_bwd_float64"].append(timed(fwd_bwd_f64))
        for k, f in variants.items():
            times[k].append(timed(f))
        log(f"{name} round {r}: " + ", ".join(f"{k} {v[-1]:.3f} s" for k, v in times.items()))
    d = diagnose(model, x, loss_fn, targets=y, jacobian=True, jacobian_sequences=1)
    base = min(times["fwd_bwd"])
    out = {"seconds": times, "jacobian_seconds_per_sequence": d.jacobian_seconds,
           "verdicts": [f"{l.name}: {l.verdict}" for l in d.layers]}
    base64 = min(times["fwd_bwd_float64"])
    out["fwd_bwd_float64_ratio"] = base64 / base  # float64 arithmetic alone, torch's own kernels
    for k in variants:
        out[f"{k}_ratio"] = min(times[k]) / base
        out[f"{k}_ratio_median"] = statistics.median(a / b for a, b in zip(times[k], times["fwd_bwd"]))
        if k != "float32":
            out[f"{k}_ratio_float64"] = min(times[k]) / base64
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--quick", action="store_true", help="the char-LM case only, 2 rounds")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "diagnose.json")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rounds = 2 if args.quick else args.rounds
    load_start = list(os.getloadavg())
    cases = {"char_lm_lstm128_T200_B32": char_lm_case(200, 32, 128)}
    if not args.quick:
        cases["lstm256_T500_B32_last_step"] = last_step_case(500, 32, 256)
    results = {name: measure(name, *case, rounds) for name, case in cases.items()}
    out = {"benchmark": "diagnose vs one forward + backward of the same model (float32, torch's threads)",
           "goal": "default_ratio <= 3", "rounds": rounds, "threads": torch.get_num_threads(),
           "torch": torch.__version__, "python": platform.python_version(), "machine": platform.machine(),
           "cpus": os.cpu_count(), "load_start": load_start, "load_end": list(os.getloadavg()), "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    for name, r in results.items():
        base = min(r["seconds"]["fwd_bwd"])
        print(f"{name}: forward+backward {base:.3f} s; the same on a float64 copy {min(r['seconds']['fwd_bwd_float64']):.3f} s "
              f"= {r['fwd_bwd_float64_ratio']:.2f}x")
        for k in ("default", "adjoints", "float32"):
            f64 = f", {r[k + '_ratio_float64']:.2f}x the float64 forward+backward" if k != "float32" else ""
            print(f"  diagnose {k:9s} {min(r['seconds'][k]):7.3f} s   ratio {r[k + '_ratio']:5.2f} "
                  f"(median per round {r[k + '_ratio_median']:.2f}){f64}")
        print(f"  Jacobian-product profile, one sequence: {r['jacobian_seconds_per_sequence']:.3f} s")
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
