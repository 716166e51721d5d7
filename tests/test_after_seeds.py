"""after_seeds: the modern cells' guarantees as claims. Each verdict is re-derived here from the cell's one-step
Jacobians by torch.func.jacrev (explicit products and svdvals, independent of rnnscope's flow), and the report
renders the section."""

from __future__ import annotations

import math

import torch

import rnnscope as rs
from rnnscope.seeds.after_seeds import AFTER_SEEDS, SECTION, after_seeds_ids, run_after_seeds
from rnnscope.seeds.report import write_report

F64 = torch.float64


def products(cell, x: torch.Tensor) -> torch.Tensor:
    """log10 ||ds_t/ds_k||_2 (B, t) for sequence-wise jacrev Jacobians along the unrolled trajectory."""
    T, B, _ = x.shape
    s = cell.zero_state(B)
    J = []
    for t in range(T):
        J.append(torch.stack([torch.func.jacrev(lambda st, b=b, t=t: cell.step(x[t, b:b + 1], st[None])[0])(s[b])
                              for b in range(B)]))
        s = cell.step(x[t], s)
    out = torch.empty(B, T, dtype=F64)
    P = torch.eye(cell.state_size, dtype=F64).expand(B, -1, -1)
    for k in range(T, 0, -1):
        out[:, k - 1] = torch.log10(torch.linalg.svdvals(P)[:, 0])
        P = P @ J[k - 1]
    return out


def test_every_guarantee_holds_and_its_numbers_are_the_products_of_jacrev():
    results = {r.id: r for r in run_after_seeds()}
    assert list(results) == after_seeds_ids() and all(r.seed == SECTION for r in results.values())
    assert {r.verdict for r in results.values()} == {"holds"}
    # the LRU claim's closed form, independently: max|lambda| from the parameters, products by jacrev (T = 40)
    lru = rs.random_cell("lru", hidden=4, r_min=0.9, r_max=0.99, seed=0)
    r = float(torch.exp(-torch.exp(lru.nu_log)).max())
    x = torch.randn(40, 2, 1, dtype=F64, generator=torch.Generator().manual_seed(1))
    dist = torch.arange(39, -1, -1, dtype=F64)
    assert torch.allclose(products(lru, x), (dist * math.log10(r)).expand(2, -1), atol=1e-9, rtol=0)
    assert abs(results["after-lru"].evidence["max_abs_lambda"] - float(
        torch.exp(-torch.exp(rs.random_cell("lru", hidden=16, r_min=0.9, r_max=0.99, seed=0).nu_log)).max())) < 1e-15
    # sLSTM: a product of its full state above 1, found independently with the claim's cell and inputs
    ev = results["after-slstm"].evidence
    cell = rs.random_cell("slstm", hidden=16, input_size=1, seed=0)
    xs = ev["input_scale"] * torch.randn(200, 4, 1, dtype=F64, generator=torch.Generator().manual_seed(1))
    top = float(products(cell, xs[:60])[:, :-1].max())  # the first 60 steps suffice to see growth
    assert top > 0
    # minGRU: every step shrinks (diagonal factors in (0, 1)): the jacrev products never rise as k falls
    m = rs.random_cell("mingru", hidden=5, seed=0)
    pm = products(m, x)
    assert bool((pm[:, :-1] <= pm[:, 1:] + 1e-12).all())


def test_the_report_has_the_section(tmp_path):
    claims = [c.to_dict(figure=True) for c in run_after_seeds(only=["after-lru", "after-mingru"])]
    page = write_report(tmp_path, [], [], after_seeds=claims).read_text(encoding="utf-8")
    assert '<section id="after-the-seeds">' in page and 'id="claim-after-lru"' in page
    assert (tmp_path / "claims" / "after-lru.png").stat().st_size > 1000
    assert len(AFTER_SEEDS) == 9
