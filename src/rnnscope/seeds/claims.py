"""The seeds' claims as experiments, registered in order: each one runs, measures, and judges itself.

    CLAIMS = claims_000.CLAIMS + claims_001.CLAIMS + ... + claims_004.CLAIMS     (30 claims, seed by seed)
    run_claims(only=None) -> [ClaimResult]                                         (registry order)

One module per seed document holds its claims and their experiments: claims_000 (000_0183f85bd5403c3d.txt),
claims_001 (001_28bb9cc7f1f7e16d.txt), claims_002 (002_87b582d44353f60f.txt), claims_003
(003_442f2c9f526e9ba0.txt), claims_004 (004_fafa8053bfab969c.txt); what several of them share (measurements,
bound lines, the clipping and derivative experiments) is in seeds.measurements, the types (Claim, Finding,
ClaimResult, the three VERDICTS: holds, holds-with-correction, refuted) in seeds.claim_types.

Every number is computed by the engine (cells, unroll, flow, bptt, rtrl) or by an independent route
(torch.func.jacrev, autograd through untied copies, closed forms); nothing is pasted in. A refuted claim's
evidence.counterexample is a concrete RNN built by a recipe stated in seeds.counterexamples or in its
experiment; the tests recompute each one with plain torch products.

Example:
    >>> [r.verdict for r in run_claims(only=["003-bound-eigen"])]
    ['refuted']
    >>> len(CLAIMS), claim_ids()[:2]
    (30, ['000-backward-step', '000-sigmoid-derivative'])
"""

from __future__ import annotations

import time
from typing import Callable, Sequence

from ..core.errors import InputError
from . import claims_000, claims_001, claims_002, claims_003, claims_004
from .claim_types import VERDICTS, Claim, ClaimResult, Finding
from .documents import SEED_FILES

__all__ = ["VERDICTS", "SEED_FILES", "Claim", "Finding", "ClaimResult", "CLAIMS", "claim_ids", "run_claims"]

CLAIMS: tuple[Claim, ...] = (claims_000.CLAIMS + claims_001.CLAIMS + claims_002.CLAIMS + claims_003.CLAIMS
                             + claims_004.CLAIMS)


def claim_ids(registry: Sequence[Claim] = CLAIMS) -> list[str]:
    return [c.id for c in registry]


def run_claims(only: Sequence[str] | None = None, progress: Callable[[Claim], None] | None = None, *,
               registry: Sequence[Claim] = CLAIMS) -> list[ClaimResult]:
    """Run the claims (all, or those whose ids are in only) and return their results, in registry order.

    progress(claim), if given, is called before each claim runs. registry: the seeds' CLAIMS, or another list
    of claims run the same way (seeds.after_seeds.AFTER_SEEDS).
    """
    known = claim_ids(registry)
    if only is not None:
        unknown = [i for i in only if i not in known]
        if unknown:
            raise InputError(f"claim id: expected one of {', '.join(known)}, got {unknown[0]!r}")
    results = []
    for claim in registry:
        if only is not None and claim.id not in only:
            continue
        if progress is not None:
            progress(claim)
        start = time.perf_counter()
        f = claim.experiment()
        if f.verdict not in VERDICTS:  # pragma: no cover - an experiment's bug
            raise RuntimeError(f"claim {claim.id}: verdict {f.verdict!r} is not one of {VERDICTS}")
        results.append(ClaimResult(claim.id, claim.seed, claim.statement, f.verdict, f.correction, f.evidence,
                                   time.perf_counter() - start, f.figure))
    return results
