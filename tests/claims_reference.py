"""Shared by the claims' tests (test_claims, test_claims_000 .. test_claims_004, test_measurements).

recompute_counterexample is the independent reference: the trajectory recomputed step by step
(a = W h + U x + b), each J_t built from its definition with phi' by autograd, the products multiplied
out (T - k factors) and ||.||_2 taken by an SVD; it imports nothing from rnnscope.

claim_results runs rnnscope's claims once per test session (the bound searches take seconds) and hands
each test file the results of the claims it asks for.
"""

from __future__ import annotations

import math

import numpy as np
import torch

F64 = torch.float64
_RESULTS: dict = {}  # claim id -> ClaimResult, filled by remember() and claim_results()


def phi(name):
    return {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu, "identity": lambda a: a}[name]


def dphi(name, a):
    a = a.clone().requires_grad_(True)
    (d,) = torch.autograd.grad(phi(name)(a).sum(), a)
    return d


def recompute_counterexample(ce: dict) -> tuple[np.ndarray, np.ndarray]:
    """Independent recomputation: the trajectory step by step, J_t built from its definition, products multiplied
    out (T - k factors), ||.||_2 by SVD. Returns (log10 ||dh_T/dh_k||_2 for k = 1..T, states (T+1, S))."""
    W, U = torch.tensor(ce["W_hh"], dtype=F64), torch.tensor(ce["W_xh"], dtype=F64)
    b, x, h = torch.tensor(ce["b_h"], dtype=F64), torch.tensor(ce["inputs"], dtype=F64), torch.tensor(ce["h0"], dtype=F64)
    act, T = phi(ce["activation"]), x.shape[0]
    Js, states = [], [h]
    for t in range(T):
        if ce["cell"] == "elman":
            a = W @ h + U @ x[t] + b
            Js.append(torch.diag(dphi(ce["activation"], a)) @ W)  # dh_t/dh_{t-1} = diag(phi'(a_t)) W
            h = act(a)
        else:
            Js.append(W @ torch.diag(dphi(ce["activation"], h)))  # W diag(phi'(h_{t-1}))
            h = W @ act(h) + U @ x[t] + b
        states.append(h)
    out, P = [], torch.eye(W.shape[0], dtype=F64)
    for k in range(T, 0, -1):  # P = J_T ... J_{k+1}
        out.append(math.log10(float(torch.linalg.svdvals(P)[0])))
        P = P @ Js[k - 1]
    return np.array(out[::-1]), torch.stack(states).numpy()


def remember(results: list) -> list:
    """Keep results (a run_claims list) for the other test files of this session; return them."""
    _RESULTS.update((r.id, r) for r in results)
    return results


def claim_results(ids) -> dict:
    """{id: ClaimResult} for the given claim ids, running (once per session) those not run yet."""
    from rnnscope.seeds.claims import run_claims

    ids = list(ids)
    missing = [i for i in ids if i not in _RESULTS]
    if missing:
        remember(run_claims(only=missing))
    return {i: _RESULTS[i] for i in ids}
