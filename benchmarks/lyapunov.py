"""Benchmark of the Lyapunov spectrum (issue 4, item 6): one run, every method side by side.

    rnnscope                  lyapunov_spectrum(cell, trace): Jacobians formed in chunks (batched over steps),
                              one (S, S) @ (S, S) product and one QR per step, log-domain sums
    (a) limit                 the same T products and T QR factorisations on precomputed matrices, nothing
                              else (no Jacobians, no bookkeeping): what any QR method must pay
    (b) autograd + QR         the straightforward loop: per step torch.func.jacrev of the step function,
                              Q <- J Q, QR, log |diag R| (the way one would write it with autograd)

Model: Elman tanh, W_hh ~ N(0, 2^2/S) (chaotic), W_xh ~ N(0, 1), x ~ N(0, 0.5^2), B = 1, float64, the full
spectrum (k = S), QR every step, one torch thread (rnnscope runs its small per-step loops on one thread).
Times are best of --repeats interleaved rounds (the machine is shared and noisy: read the ratios).
The three methods' exponents agree (max |difference| printed).

Usage:
    python benchmarks/lyapunov.py [--S 128] [--T 1000] [--repeats 3] [--out benchmarks/results/lyapunov.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# this folder holds profile.py, which would shadow the standard library's `profile` (imported by torch.func)
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]

import torch  # noqa: E402

from rnnscope import random_cell, unroll  # noqa: E402
from rnnscope.gradients.lyapunov import lyapunov_spectrum  # noqa: E402

F64 = torch.float64


def limit(J: torch.Tensor, Q0: torch.Tensor) -> torch.Tensor:
    """T products and T QRs on precomputed Jacobians J (T, S, S): the floor of the QR method."""
    Q, acc = Q0, torch.zeros(Q0.shape[-1], dtype=F64)
    for t in range(J.shape[0]):
        Q, R = torch.linalg.qr(J[t] @ Q)
        acc += torch.log(torch.diagonal(R).abs())
    return (acc / J.shape[0]).sort(descending=True).values


def autograd_qr(cell, trace, Q0: torch.Tensor) -> torch.Tensor:
    """Per step: J = jacrev(step)(s_{t-1}), Q <- J Q, QR, accumulate ln |R_ii|."""
    Q, acc = Q0, torch.zeros(Q0.shape[-1], dtype=F64)
    for t in range(trace.T):
        x = trace.inputs[t]
        J = torch.func.jacrev(lambda s: cell.step(x, s.unsqueeze(0))[0])(trace.states[t, 0])
        Q, R = torch.linalg.qr(J @ Q)
        acc += torch.log(torch.diagonal(R).abs())
    return (acc / trace.T).sort(descending=True).values


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--S", type=int, default=128)
    ap.add_argument("--T", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "lyapunov.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    S, T = args.S, args.T
    cell = random_cell("elman", "tanh", hidden=S, input_size=1, gain=2.0, seed=0)
    x = 0.5 * torch.randn(T, 1, 1, dtype=F64, generator=torch.Generator().manual_seed(1))
    trace = unroll(cell, x)
    Q0, _ = torch.linalg.qr(torch.randn(S, S, dtype=F64, generator=torch.Generator().manual_seed(0)))
    J = cell.jacobian(trace.inputs.reshape(T, -1), trace.states[:-1, 0]).contiguous()  # (T, S, S) for the limit
    best = {"rnnscope": float("inf"), "limit": float("inf"), "autograd_qr": float("inf")}
    out = {}
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        out["rnnscope"] = lyapunov_spectrum(cell, trace).exponents
        t1 = time.perf_counter()
        out["limit"] = limit(J, Q0)
        t2 = time.perf_counter()
        out["autograd_qr"] = autograd_qr(cell, trace, Q0)
        t3 = time.perf_counter()
        for name, dt in (("rnnscope", t1 - t0), ("limit", t2 - t1), ("autograd_qr", t3 - t2)):
            best[name] = min(best[name], dt)
    agree = {n: float((out[n] - out["rnnscope"]).abs().max()) for n in ("limit", "autograd_qr")}
    res = {"S": S, "T": T, "repeats": args.repeats, "seconds": best,
           "rnnscope_over_limit": best["rnnscope"] / best["limit"],
           "autograd_qr_over_rnnscope": best["autograd_qr"] / best["rnnscope"],
           "max_abs_exponent_difference": agree, "max_exponent": float(out["rnnscope"][0]),
           "machine": platform.machine(), "torch": torch.__version__}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2) + "\n")
    print(f"Lyapunov spectrum, S = {S}, T = {T}, full spectrum, QR every step (best of {args.repeats}):")
    for n, label in (("rnnscope", "rnnscope lyapunov_spectrum"), ("limit", "(a) limit: T products + T QRs"),
                     ("autograd_qr", "(b) autograd Jacobians + QR")):
        print(f"  {label:34s} {best[n]:8.3f} s")
    print(f"  rnnscope / limit = {res['rnnscope_over_limit']:.2f}x;  autograd+QR / rnnscope = "
          f"{res['autograd_qr_over_rnnscope']:.1f}x;  exponents agree to {max(agree.values()):.1e}")


if __name__ == "__main__":
    main()
