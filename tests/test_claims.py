"""claims (the registry): every claim runs and is judged, in registry order; every refutation's counterexample
and every eigenvalue-condition verdict is re-derived here independently.

The references are plain torch/numpy (claims_reference.recompute_counterexample): trajectories recomputed step
by step (a = W h + U x + b), Jacobian products multiplied out explicitly and measured with an SVD, spectra by
numpy. The per-seed experiments are tested in test_claims_000 .. test_claims_004, what they share in
test_measurements.
"""

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from claims_reference import recompute_counterexample, remember

from rnnscope.core.errors import InputError
from rnnscope.seeds import claims as C
from rnnscope.seeds import claims_000, claims_001, claims_002, claims_003, claims_004

SEED_MODULES = {"000": claims_000, "001": claims_001, "002": claims_002, "003": claims_003, "004": claims_004}


@pytest.fixture(scope="module")
def results():
    return {r.id: r for r in remember(C.run_claims())}


def test_every_claim_runs_and_is_well_formed(results):
    assert list(results) == C.claim_ids() and len(set(results)) == len(results) >= 25
    seeds = {r.seed for r in results.values()}
    assert seeds == set(C.SEED_FILES.values())  # every seed has claims
    for r in results.values():
        assert r.verdict in C.VERDICTS
        assert (r.correction is None) == (r.verdict == "holds"), r.id
        d = r.to_dict()
        assert set(d) == {"id", "seed", "statement", "verdict", "correction", "evidence", "seconds"}
        json.dumps(d, allow_nan=False)
        assert r.figure is not None and r.figure.series, r.id
        assert r.seconds >= 0


def test_registry_is_the_seed_modules_in_order():
    """CLAIMS is seed 000's claims, then 001's, ... 004's, each module's in its own order, each naming its seed."""
    assert C.CLAIMS == tuple(c for m in SEED_MODULES.values() for c in m.CLAIMS)
    for key, module in SEED_MODULES.items():
        assert module.CLAIMS, key
        for c in module.CLAIMS:
            assert c.id.startswith(f"{key}-") and c.seed == C.SEED_FILES[key], c.id
    assert len(set(C.claim_ids())) == len(C.CLAIMS)


def test_verdict_counts_cover_all_three(results):
    verdicts = [r.verdict for r in results.values()]
    for v in C.VERDICTS:
        assert verdicts.count(v) >= 3


def test_every_refutation_carries_a_counterexample_that_recomputes(results):
    refuted = [r for r in results.values() if r.verdict == "refuted"]
    assert len(refuted) >= 5
    for r in refuted:
        ce = r.evidence["counterexample"]
        assert set(ce) >= {"W_hh", "W_xh", "b_h", "activation", "inputs", "h0", "cell", "log10_norms"}
        assert ce["cell"] in ("elman", "pal")
        ref, states = recompute_counterexample(ce)
        got = np.array([-np.inf if v is None else v for v in ce["log10_norms"]])
        assert got.shape == ref.shape == (len(ce["inputs"]),)
        np.testing.assert_allclose(got, ref, atol=1e-6, rtol=0, err_msg=r.id)
        assert np.isfinite(states).all()


@pytest.mark.parametrize("cid", ["001-theorem2-eigen", "002-eigenvalue-vanishing", "002-exploding-necessary",
                                 "003-bound-eigen"])
def test_eigenvalue_conditions_are_violated_by_their_counterexamples(results, cid):
    """rho(W) < 1/gamma (numpy's eigenvalues), and yet ||dh_T/dh_1|| > 10^6 along the recomputed trajectory."""
    ce = results[cid].evidence["counterexample"]
    W = np.array(ce["W_hh"])
    gamma = {"sigmoid": 0.25, "tanh": 1.0}[ce["activation"]]
    rho, sigma = np.abs(np.linalg.eigvals(W)).max(), np.linalg.svd(W, compute_uv=False)[0]
    assert gamma * rho < 1 < gamma * sigma
    ref, _ = recompute_counterexample(ce)
    assert ref[0] > 6
    # and the singular-value bound still holds along it
    T = len(ref)
    assert all(ref[k - 1] <= (T - k) * math.log10(gamma * sigma) + 1e-9 for k in range(1, T + 1))


def test_only_and_unknown_ids():
    r = C.run_claims(only=["003-bound-eigen", "000-identity-power"])
    assert [x.id for x in r] == ["000-identity-power", "003-bound-eigen"]  # registry order
    with pytest.raises(InputError, match="expected one of .*got 'nope'"):
        C.run_claims(only=["nope"])


def test_progress_is_called_before_each_claim():
    seen = []
    r = C.run_claims(only=["001-elman-pal", "000-identity-power"], progress=lambda c: seen.append(c.id))
    assert seen == [x.id for x in r] == ["000-identity-power", "001-elman-pal"]


def test_importing_the_claims_does_not_import_matplotlib():
    """matplotlib is imported when a figure is drawn (reproduce, report), not with the claims' modules."""
    code = ("import sys; import rnnscope.seeds.claims, rnnscope.seeds.reproduce; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'matplotlib'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "[]"
