"""Benchmark: the recurrences after the seeds (issue 14, item 5), every method side by side in one run.

Part 1, the profile of each new cell at T = 10,000 (B = 1, float64, inputs N(0, 1), S = 32 for every kind):

    rnnscope      jacobian_profile(cell, trace): log10 ||ds_T/ds_k||_2 for every k, O(T S^3), log domain, streamed
    autograd      the peer: the unrolled graph, then torch.autograd.grad(s_T, [s_1..s_{T-1}], eye(S) batched,
                  is_grads_batched=True): every row of ds_T/ds_k for every k by batched VJPs, then svdvals
                  (benchmarks/profile.py's method (a)); without renormalisation, so products below ~1e-308
                  come out 0 (log10 = -inf) or lose their digits: the agreement is taken where both are
                  finite and the peer's norm is above 1e-290

Part 2, the forward pass of minGRU and LRU (H = 64, B = 1) at T = 1,000 .. 100,000:

    sequential    cell.scan(x, method="sequential"): the step loop (unroll's)
    scan          cell.scan(x, method="log") for minGRU (the paper's log-space scan: a cumulative sum and a
                  logcumsumexp), and "associative" for minGRU and LRU (odd-even reduction: ceil(log2 T)
                  levels, O(T) work in a few whole-tensor operations each)

with the ratio sequential / scan at each T and the largest difference of the states (they agree to ~1e-12).

Times are the best of --repeats rounds, each round running every method once (interleaved, so that a burst of
load from other processes on this shared, noisy machine hits all of them: read the ratios).

Usage:
    python benchmarks/modern.py [--quick] [--repeats 3] [--out benchmarks/results/modern.json]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# benchmarks/profile.py would shadow the standard library's profile module (imported by torch._dynamo): keep
# this folder off the import path, and load its autograd method by file
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]

import torch  # noqa: E402

from rnnscope import jacobian_profile, random_cell, unroll  # noqa: E402

_spec = importlib.util.spec_from_file_location("bench_profile", HERE / "profile.py")
bench_profile = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_profile)

F64 = torch.float64
# (kind, hidden, input size, options): every state S = 32
KINDS = [("lru", 16, 4, {"r_min": 0.9, "r_max": 0.999}), ("mingru", 32, 4, {}), ("minlstm", 32, 4, {}),
         ("mamba", 16, 2, {}), ("slstm", 8, 4, {}), ("indrnn", 32, 4, {}), ("cornn", 16, 4, {}),
         ("exprnn", 32, 4, {})]


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def best(fn, repeats: int):
    out, t = None, math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        t = min(t, time.perf_counter() - t0)
    return out, t


def profiles(T: int, repeats: int) -> list[dict]:
    rows = []
    torch.set_flush_denormal(True)  # the autograd peer's products pass through the denormal range (profile.py)
    for kind, H, D, opts in KINDS:
        cell = random_cell(kind, hidden=H, input_size=D, seed=0, **opts)
        x = torch.randn(T, 1, D, dtype=F64, generator=torch.Generator().manual_seed(1))
        trace = unroll(cell, x)
        ours_t, peer_t, vjp_t = math.inf, math.inf, math.inf
        for _ in range(repeats):  # interleaved rounds
            t0 = time.perf_counter()
            prof = jacobian_profile(cell, trace)
            ours_t = min(ours_t, time.perf_counter() - t0)
            t0 = time.perf_counter()
            spec, _, fwd, vjp, svd = bench_profile.autograd_method(cell, trace)
            peer_t = min(peer_t, time.perf_counter() - t0)
            vjp_t = min(vjp_t, vjp)
        ours = prof.log10_spectral[0]
        both = torch.isfinite(spec) & torch.isfinite(ours) & (spec > -290)  # the peer's products are not
        # renormalised: near float64's smallest normal (1e-308) they lose their digits (flushed denormals)
        err = float((spec[both] - ours[both]).abs().max()) if bool(both.any()) else None
        rows.append({"kind": kind, "S": cell.state_size, "T": T, "rnnscope_s": ours_t, "autograd_s": peer_t,
                     "autograd_vjps_s": vjp_t, "ratio_autograd_over_rnnscope": peer_t / ours_t,
                     "agree_max_abs_log10": err, "finite_k_autograd": int(torch.isfinite(spec).sum()),
                     "log10_first": float(ours[0])})
        log(f"profile {kind:8s} S={cell.state_size} T={T}: rnnscope {ours_t:.3f} s, autograd {peer_t:.3f} s "
            f"(x{peer_t / ours_t:.2f}); agree {err}")
    torch.set_flush_denormal(False)
    return rows


def scans(lengths: list[int], repeats: int, H: int = 64) -> list[dict]:
    rows = []
    for kind, method in (("mingru", "log"), ("mingru", "associative"), ("lru", "associative")):
        cell = random_cell(kind, hidden=H, input_size=4, seed=0)
        for T in lengths:
            x = torch.randn(T, 1, 4, dtype=F64, generator=torch.Generator().manual_seed(2))
            seq_t = par_t = math.inf
            for _ in range(repeats):
                t0 = time.perf_counter()
                a = cell.scan(x, method="sequential")
                seq_t = min(seq_t, time.perf_counter() - t0)
                t0 = time.perf_counter()
                b = cell.scan(x, method=method)
                par_t = min(par_t, time.perf_counter() - t0)
            diff = float((a - b).abs().max())
            rows.append({"kind": kind, "method": method, "H": H, "T": T, "sequential_s": seq_t, "scan_s": par_t,
                         "ratio_sequential_over_scan": seq_t / par_t, "max_abs_difference": diff})
            log(f"scan {kind:6s} T={T:>6}: sequential {seq_t:.4f} s, {method} {par_t:.4f} s (x{seq_t / par_t:.1f}); "
                f"max diff {diff:.2g}")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="T = 2,000 for the profiles, scans up to 10,000")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "modern.json")
    a = ap.parse_args()
    T = 2000 if a.quick else 10_000
    lengths = [1000, 10_000] if a.quick else [1000, 10_000, 100_000]
    torch.set_num_threads(max(1, torch.get_num_threads()))
    res = {"machine": {"platform": platform.platform(), "torch": torch.__version__,
                       "threads": torch.get_num_threads()},
           "profiles": profiles(T, a.repeats), "scans": scans(lengths, a.repeats)}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(res, indent=2) + "\n")
    log(f"written to {a.out}")


if __name__ == "__main__":
    main()
