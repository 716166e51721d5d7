"""Benchmark of the Jacobian-product profile (issue 2, item 9): one run, every method side by side.

    rnnscope spectral profile   jacobian_profile(cell, trace)                       O(T S^3), streamed
    rnnscope Frobenius profile  jacobian_profile(cell, trace, spectral=False)
    (a) autograd                torch.autograd.grad(h_T, [h_1..h_T-1], grad_outputs=eye(S) batched,
                                is_grads_batched=True): every row of ds_T/ds_k for every k, then
                                torch.linalg.svdvals; the VJPs are also timed alone     O(T S^2) memory
    (b) seed 002                the product J_t ... J_{k+1} recomputed from scratch for every k with real
                                matrix products, then svdvals: O(T^2 S^3), run at t = 50, 100, 200 only
                                and extrapolated to the configuration's T with a least-squares fit
                                a t^2 + b t of those times (stated as extrapolated)
    (c) GEMM limit              2 T S^3 flops at the float64 rate of torch.mm of two S x S matrices measured
                                in this run (warm, best of several repeats): = T x (time of one S x S mm)

Model: Elman tanh, W_hh ~ N(0, 1.5^2 / S), W_xh ~ N(0, 1/D), D = 4, x ~ N(0, 1), B = 1, float64.
Times are best of --repeats rounds, each round running every method once (interleaved, so that a burst of
load from other processes on this shared, noisy machine hits all of them: read the ratios). For (a), denormals are
flushed to zero (torch.set_flush_denormal): its products are not renormalised and pass through the
denormal range, which otherwise slows its VJPs down by an order of magnitude. Peak memory is the
peak RSS of a fresh subprocess per (configuration, method) beyond the RSS it had with the trace built
(tracemalloc does not see torch's allocations); the trace's own size is stated next to it.

Usage:
    python benchmarks/profile.py [--quick] [--repeats N] [--out benchmarks/results/profile.json]
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import hashlib
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

import rnnscope.gradients.flow
from rnnscope import jacobian_profile, random_cell, unroll

F64 = torch.float64
D = 4
GAIN = 1.5
HERE = Path(__file__).resolve().parent


# ----------------------------------------------------------------------------------------------
# problem and methods
# ----------------------------------------------------------------------------------------------

def make_problem(T: int, S: int, seed: int = 0):
    cell = random_cell("elman", "tanh", hidden=S, input_size=D, gain=GAIN, seed=seed)
    x = torch.randn(T, 1, D, dtype=F64, generator=torch.Generator().manual_seed(seed + 1))
    return cell, unroll(cell, x)


def trace_bytes(trace) -> int:
    return sum(a.numel() * a.element_size() for a in (trace.states, trace.preacts, trace.inputs))


def profile_method(cell, trace, spectral: bool):
    return jacobian_profile(cell, trace, spectral=spectral)


def autograd_method(cell, trace):
    """(a): rows of ds_T/ds_k for every k by batched VJPs over the S basis vectors of h_T, then svdvals.

    Returns (log10 spectral (T,), log10 Frobenius (T,), seconds forward-with-graph, seconds VJPs, seconds svd).
    Without renormalisation: products below ~1e-308 underflow to 0 (log10 = -inf) or above overflow to inf.
    """
    S, T = cell.state_size, trace.T
    x, s0 = trace.inputs, trace.states[0]
    t0 = time.perf_counter()
    with torch.enable_grad():
        h = s0.clone().requires_grad_(True)
        states = []
        for k in range(T):
            h = cell.step(x[k], h)  # (B, S) with the graph
            states.append(h)
        t1 = time.perf_counter()
        eye = torch.eye(S, dtype=F64).unsqueeze(1)  # (S, B=1, S): the S basis vectors of h_T, batched
        rows = torch.autograd.grad(states[-1], states[:-1], grad_outputs=eye, is_grads_batched=True)
    t2 = time.perf_counter()
    P = torch.empty(T, S, S, dtype=F64)
    for k, g in enumerate(rows):  # g (S, B, S): g[i, 0, :] = d h_T[i] / d h_{k+1}
        P[k] = g[:, 0, :]
    P[T - 1] = torch.eye(S, dtype=F64)
    spec = torch.log10(torch.linalg.svdvals(P)[:, 0])
    fro = log10_fro_scaled(P)
    t3 = time.perf_counter()
    return spec, fro, t1 - t0, t2 - t1, t3 - t2


def log10_fro_scaled(P: torch.Tensor) -> torch.Tensor:
    """log10 ||P||_F for (N, S, S) without under/overflow in the squares (matrix_norm squares the entries:
    ||P||_F < 1e-154 would come out 0 or inaccurate)."""
    amax = P.abs().amax(dim=(-2, -1))  # (N,)
    safe = torch.where(amax > 0, amax, torch.ones_like(amax))
    return torch.log10(amax) + torch.log10(torch.linalg.matrix_norm(P / safe[:, None, None]))


def seed002_method(cell, trace, t: int):
    """(b): for every k, P = J_t ... J_{k+1} multiplied out from scratch (no reuse), then svdvals. O(t^2 S^3).

    The one-step Jacobians are formed once up front (seed 002 forms them inside the loop: this is kinder to it).
    """
    S = cell.state_size
    J = cell.jacobian(trace.inputs[:t, 0], trace.states[:t, 0])  # (t, S, S): J[j-1] = J_j
    out = torch.empty(t, dtype=F64)
    eye = torch.eye(S, dtype=F64)
    for k in range(1, t + 1):
        P = eye
        for j in range(t, k, -1):
            P = P @ J[j - 1]
        out[k - 1] = torch.log10(torch.linalg.svdvals(P)[0])
    return out


def mm_seconds(S: int, repeats: int, calls: int = 400) -> float:
    """Best per-call time of torch.mm on two S x S float64 matrices (warm, output preallocated)."""
    g = torch.Generator().manual_seed(0)
    A, B = torch.randn(S, S, dtype=F64, generator=g), torch.randn(S, S, dtype=F64, generator=g)
    C = torch.empty(S, S, dtype=F64)
    for _ in range(50):
        torch.mm(A, B, out=C)
    best = math.inf
    for _ in range(max(5, repeats)):
        t0 = time.perf_counter()
        for _ in range(calls):
            torch.mm(A, B, out=C)
        best = min(best, (time.perf_counter() - t0) / calls)
    return best


def max_log10_diff(a: torch.Tensor, b: torch.Tensor) -> tuple[float, int, int]:
    """max |a - b| over entries finite in both, (count compared, count total)."""
    ok = torch.isfinite(a) & torch.isfinite(b)
    d = float((a[ok] - b[ok]).abs().max()) if ok.any() else math.nan
    return d, int(ok.sum()), a.numel()


# ----------------------------------------------------------------------------------------------
# memory: one fresh subprocess per (configuration, method)
# ----------------------------------------------------------------------------------------------

def _status(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(key)


def memory_child(method: str, T: int, S: int) -> dict:
    torch.set_flush_denormal(True)
    cell, small = make_problem(50, S)
    jacobian_profile(cell, small)  # warm-up: kernels, allocator pools
    autograd_method(cell, small)
    libc = ctypes.CDLL("libc.so.6")
    gc.collect()
    libc.malloc_trim(0)
    base = _status("VmRSS")
    cell, trace = make_problem(T, S)
    gc.collect()
    libc.malloc_trim(0)  # unroll's temporaries handed back: RSS = base + the trace
    rss0 = _status("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current RSS
    if method == "spectral":
        jacobian_profile(cell, trace)
    elif method == "frobenius":
        jacobian_profile(cell, trace, spectral=False)
    elif method == "autograd":
        autograd_method(cell, trace)
    else:
        raise ValueError(method)
    peak = _status("VmHWM")
    return {"method": method, "T": T, "S": S, "rss_before_bytes": base, "rss_with_trace_bytes": rss0,
            "peak_rss_bytes": peak, "peak_beyond_trace_bytes": peak - rss0, "trace_bytes": trace_bytes(trace)}


def measure_memory(method: str, T: int, S: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--memory-child", method, str(T), str(S)],
                         capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        raise RuntimeError(f"memory child {method} T={T} S={S} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------------------------
# the run
# ----------------------------------------------------------------------------------------------

AUTOGRAD_RELIABLE_LOG10 = -290.0  # autograd's products are not renormalised: within ~10^18 of float64's
# smallest normal number (2.2e-308) their entries flush to zero and its norms lose digits; compare above this


def bench_config(T: int, S: int, t_small: int, repeats: int, memory: bool, log) -> dict:
    """Every method once per round, `repeats` rounds, best per method (a burst of load hits all of them)."""
    cell, trace = make_problem(T, S)
    T4 = T // 4
    _, tr4 = make_problem(T4, S)  # the first T/4 steps of the same inputs
    r: dict = {"T": T, "S": S, "B": 1, "D": D, "gain": GAIN, "trace_bytes": trace_bytes(trace),
               "seed002_t_small": t_small, "linearity_T_quarter": T4}
    jacobian_profile(cell, unroll(cell, trace.inputs[:50]))  # warm-up
    autograd_method(cell, unroll(cell, trace.inputs[:50]))

    def autograd_flushed():
        torch.set_flush_denormal(True)  # kinder to autograd: its unrenormalised products pass through denormals
        try:
            return autograd_method(cell, trace)
        finally:
            torch.set_flush_denormal(False)

    jobs = {
        "mm": lambda: mm_seconds(S, 1),
        "spectral": lambda: profile_method(cell, trace, True),
        "frobenius": lambda: profile_method(cell, trace, False),
        "spectral_T_quarter": lambda: profile_method(cell, tr4, True),
        "frobenius_T_quarter": lambda: profile_method(cell, tr4, False),
        "spectral_t_small": lambda: jacobian_profile(cell, trace, t_small),
        "autograd": autograd_flushed,
        "seed002_t_small_quarter": lambda: seed002_method(cell, trace, t_small // 4),
        "seed002_t_small_half": lambda: seed002_method(cell, trace, t_small // 2),
        "seed002_t_small": lambda: seed002_method(cell, trace, t_small),
    }
    times = {name: [] for name in jobs}
    res: dict = {}
    ag_parts = []  # (forward, VJPs, svd) per round
    for i in range(repeats):
        log(f"T={T} S={S}: round {i + 1}/{repeats}")
        for name, fn in jobs.items():
            gc.collect()
            t0 = time.perf_counter()
            res[name] = fn()
            times[name].append(time.perf_counter() - t0)
            if name == "mm":
                times[name][-1] = res[name]  # its own best per-call time
            if name == "autograd":
                ag_parts.append(res[name][2:])
    best = {name: min(v) for name, v in times.items()}
    r["all_seconds"] = times

    # (c) the GEMM limit
    r["mm_seconds"] = best["mm"]
    r["gemm_gflops"] = 2 * S**3 / best["mm"] / 1e9
    r["gemm_limit_seconds"] = T * best["mm"]  # 2 T S^3 flops at the measured rate
    # the profile
    prof, prof_f, prof_small = res["spectral"], res["frobenius"], res["spectral_t_small"]
    r["spectral_seconds"], r["frobenius_seconds"] = best["spectral"], best["frobenius"]
    r["power_half_steps"], r["svd_fallbacks"] = prof.power_half_steps, prof.svd_fallbacks
    r["renormalised_chunks"] = prof.renormalised_chunks
    spec_p, fro_p = prof.log10_spectral[0], prof.log10_frobenius[0]
    r["log10_spectral_range"] = [float(spec_p.min()), float(spec_p.max())]
    r["spectral_seconds_at_T_quarter"] = best["spectral_T_quarter"]
    r["frobenius_seconds_at_T_quarter"] = best["frobenius_T_quarter"]
    r["spectral_seconds_at_t_small"] = best["spectral_t_small"]
    # (a) autograd: best total, and the best of each part
    k = min(range(repeats), key=lambda i: times["autograd"][i])
    r["autograd_seconds"] = best["autograd"]
    r["autograd_forward_seconds"], r["autograd_vjp_seconds"], r["autograd_svd_seconds"] = ag_parts[k]
    r["autograd_vjp_alone_best_seconds"] = min(p[1] for p in ag_parts)
    spec_a, fro_a = res["autograd"][0], res["autograd"][1]
    reliable = torch.isfinite(spec_a) & (spec_a > AUTOGRAD_RELIABLE_LOG10) & (fro_a > AUTOGRAD_RELIABLE_LOG10)
    r["autograd_reliable_log10_above"] = AUTOGRAD_RELIABLE_LOG10
    r["autograd_underflowed_k"] = int((~torch.isfinite(spec_a) | (spec_a == -math.inf)).sum())
    r["agree_spectral_vs_autograd_max_abs_log10"] = float((spec_p - spec_a)[reliable].abs().max())
    r["agree_frobenius_vs_autograd_max_abs_log10"] = float((fro_p - fro_a)[reliable].abs().max())
    r["agree_vs_autograd_compared_k"] = int(reliable.sum())
    r["agree_frobenius_only_vs_spectral_run_max_abs_log10"] = float((prof_f.log10_frobenius[0] - fro_p).abs().max())
    # (b) seed 002, measured at t_small / 4, / 2 and t_small. Its cost is a t^2 (the products, t(t-1)/2
    # GEMMs) plus b t (one svdvals and the loop overhead per k): fitted by least squares, extrapolated to T
    ts = [t_small // 4, t_small // 2, t_small]
    secs = [best["seed002_t_small_quarter"], best["seed002_t_small_half"], best["seed002_t_small"]]
    A = torch.tensor([[t * t, t] for t in ts], dtype=F64)
    coef = torch.linalg.lstsq(A, torch.tensor(secs, dtype=F64).unsqueeze(1)).solution.squeeze(1)
    a2, b1 = float(coef[0]), float(coef[1])
    if a2 <= 0 or b1 < 0:  # noise: fall back to the pure t^2 scaling of the largest measurement
        a2, b1 = secs[-1] / t_small**2, 0.0
    t_half, t_full = secs[1], secs[2]
    r["seed002_t_measured"] = ts
    r["seed002_seconds_measured"] = secs
    r["seed002_seconds_at_t_small"] = t_full
    r["seed002_fit_seconds_per_t2"], r["seed002_fit_seconds_per_t"] = a2, b1
    r["seed002_scaling_exponent"] = math.log(t_full / t_half) / math.log(ts[2] / ts[1])
    r["seed002_extrapolated_seconds"] = a2 * T * T + b1 * T
    r["seed002_extrapolated_quadratic_seconds"] = t_full * (T / t_small) ** 2
    r["agree_spectral_vs_seed002_max_abs_log10"] = float((prof_small.log10_spectral[0] - res["seed002_t_small"]).abs().max())
    r["agree_spectral_vs_seed002_compared_k"] = t_small

    # ratios
    r["speedup_vs_autograd"] = r["autograd_seconds"] / r["spectral_seconds"]
    r["speedup_vs_autograd_vjps_alone"] = r["autograd_vjp_alone_best_seconds"] / r["spectral_seconds"]
    r["speedup_vs_seed002_extrapolated"] = r["seed002_extrapolated_seconds"] / r["spectral_seconds"]
    r["speedup_vs_seed002_at_t_small"] = t_full / r["spectral_seconds_at_t_small"]
    r["spectral_over_gemm_limit"] = r["spectral_seconds"] / r["gemm_limit_seconds"]
    r["frobenius_over_gemm_limit"] = r["frobenius_seconds"] / r["gemm_limit_seconds"]
    r["spectral_over_frobenius"] = r["spectral_seconds"] / r["frobenius_seconds"]
    r["linearity_time_ratio_spectral"] = r["spectral_seconds"] / r["spectral_seconds_at_T_quarter"]
    r["linearity_time_ratio_frobenius"] = r["frobenius_seconds"] / r["frobenius_seconds_at_T_quarter"]
    r["linearity_time_ratio_ideal"] = T / T4

    if memory:
        log(f"T={T} S={S}: peak memory (one subprocess per method)")
        mem = {m: measure_memory(m, T, S) for m in ("spectral", "frobenius", "autograd")}
        mem["spectral_at_T_quarter"] = measure_memory("spectral", T4, S)
        r["memory"] = mem
        r["memory_growth_T_quarter_to_T_bytes"] = (mem["spectral"]["peak_beyond_trace_bytes"]
                                                   - mem["spectral_at_T_quarter"]["peak_beyond_trace_bytes"])
        r["memory_O_TS2_would_add_bytes"] = (T - T4) * S * S * 8
    return r


def fmt_s(x: float) -> str:
    """Seconds with three significant digits (at least one decimal below 100 s)."""
    if x >= 100:
        return f"{x:,.0f}"
    return f"{x:.3g}"


def fmt_x(x: float) -> str:
    return f"{x:.3g}x"


def render(results: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=190)
    meta = results["machine"]
    console.print(f"[bold]rnnscope profile benchmark[/bold]: Elman tanh, gain {GAIN}, B=1, float64, "
                  f"torch {meta['torch']}, {meta['threads']} threads, {meta['cpus']} CPUs; best of {results['repeats']}")
    for r in results["configs"]:
        T, S = r["T"], r["S"]
        tab = Table(title=f"T = {T:,}, S = {S}   (trace {r['trace_bytes'] / 1e6:.2f} MB; "
                          f"S x S mm {r['mm_seconds'] * 1e6:.1f} us = {r['gemm_gflops']:.1f} GFLOP/s)")
        tab.add_column("method")
        tab.add_column("seconds", justify="right")
        tab.add_column("time / spectral profile", justify="right")
        tab.add_column("peak RSS beyond trace", justify="right")
        tab.add_column("agreement max |dlog10|", justify="right")
        mem = r.get("memory", {})

        def mb(m):
            return f"{mem[m]['peak_beyond_trace_bytes'] / 1e6:.1f} MB" if m in mem else "-"

        sp = r["spectral_seconds"]
        tab.add_row("rnnscope spectral profile", fmt_s(sp), "1", mb("spectral"),
                    f"{r['power_half_steps']} half-steps, {r['svd_fallbacks']} svd fallbacks")
        tab.add_row("rnnscope Frobenius-only profile", fmt_s(r['frobenius_seconds']),
                    fmt_x(r['frobenius_seconds'] / sp), mb("frobenius"),
                    f"{r['agree_frobenius_vs_autograd_max_abs_log10']:.1e} vs (a)")
        tab.add_row("(a) autograd batched VJPs + svdvals", fmt_s(r['autograd_seconds']),
                    fmt_x(r['speedup_vs_autograd']), mb("autograd"),
                    f"{r['agree_spectral_vs_autograd_max_abs_log10']:.1e} over {r['agree_vs_autograd_compared_k']}/{T} k "
                    f"(norm > 1e{r['autograd_reliable_log10_above']:.0f})")
        tab.add_row("    (a) VJPs alone", fmt_s(r['autograd_vjp_alone_best_seconds']),
                    fmt_x(r['speedup_vs_autograd_vjps_alone']), "", "")
        tab.add_row(f"(b) seed 002 per-k recompute, measured at t={r['seed002_t_small']}",
                    fmt_s(r['seed002_seconds_at_t_small']),
                    f"{fmt_x(r['speedup_vs_seed002_at_t_small'])} (profile at the same t)", "",
                    f"{r['agree_spectral_vs_seed002_max_abs_log10']:.1e} over {r['agree_spectral_vs_seed002_compared_k']} k")
        tab.add_row(f"(b) EXTRAPOLATED to T={T:,} (fit a t^2 + b t)",
                    fmt_s(r['seed002_extrapolated_seconds']), fmt_x(r['speedup_vs_seed002_extrapolated']),
                    "", f"(pure t^2 from t={r['seed002_t_small']}: {fmt_s(r['seed002_extrapolated_quadratic_seconds'])} s)")
        tab.add_row("(c) GEMM limit 2 T S^3 flops", fmt_s(r['gemm_limit_seconds']),
                    f"spectral {r['spectral_over_gemm_limit']:.2f}x, Frobenius {r['frobenius_over_gemm_limit']:.2f}x "
                    "the limit", "", "")
        tab.add_row(f"linearity: time(T) / time(T/4={r['linearity_T_quarter']:,})",
                    f"{r['linearity_time_ratio_spectral']:.2f}", f"ideal {r['linearity_time_ratio_ideal']:.0f}; "
                    f"Frobenius {r['linearity_time_ratio_frobenius']:.2f}",
                    (f"{mem['spectral_at_T_quarter']['peak_beyond_trace_bytes'] / 1e6:.1f} MB at T/4"
                     if mem else "-"), "")
        console.print(tab)
    console.print("Goals (issue 2, item 9): >= 20x faster than (a); within 1.5x of the GEMM limit; time linear in T; "
                  "memory flat in T beyond the trace.")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    ap.add_argument("--repeats", type=int, default=None,
                    help="timings are the best of N interleaved rounds (default 3, quick 2)")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "profile.json")
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-RSS subprocesses")
    ap.add_argument("--memory-child", nargs=3, metavar=("METHOD", "T", "S"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.memory_child:
        m, T, S = args.memory_child
        print(json.dumps(memory_child(m, int(T), int(S))))
        return 0
    repeats = args.repeats or (2 if args.quick else 3)
    if repeats < 1:
        ap.error(f"--repeats: expected a positive integer, got {repeats}")
    configs = [(200, 32, 40), (1000, 16, 40)] if args.quick else [(1000, 128, 200), (10_000, 64, 200)]

    def log(msg):
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    results = {
        "benchmark": "rnnscope jacobian_profile (issue 2, item 9)",
        "quick": args.quick,
        "repeats": repeats,
        "model": {"cell": "elman", "activation": "tanh", "init": "normal", "gain": GAIN, "B": 1, "D": D,
                  "dtype": "float64"},
        "machine": {"torch": torch.__version__, "threads": torch.get_num_threads(), "cpus": os.cpu_count(),
                    "python": platform.python_version(), "platform": platform.platform(),
                    "loadavg_start": list(os.getloadavg()),
                    "flow_py_sha256": hashlib.sha256(Path(rnnscope.gradients.flow.__file__).read_bytes()).hexdigest()},
        "configs": [bench_config(T, S, ts, repeats, not args.no_memory, log) for T, S, ts in configs],
    }
    results["machine"]["loadavg_end"] = list(os.getloadavg())
    results["total_seconds"] = time.perf_counter() - t0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    render(results)
    print(f"results: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
