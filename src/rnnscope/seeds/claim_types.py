"""What a claim is and what running it gives: Claim, Finding, ClaimResult and the three VERDICTS.

A Claim is (id, seed file, the statement in one sentence, an experiment); claim(id, "000", ...) makes
one from the seed's key (seeds.documents.SEED_FILES). The experiment returns a Finding: a verdict, the
evidence (numbers), the corrected statement where the seed's is wrong, and a figure
(core.results.FigureSpec). run_claims (seeds.claims) times it and returns a ClaimResult, the JSON
object of `rnnscope claims --json`. Verdicts:

    holds                   the statement, read as written, agrees with the measurement
    holds-with-correction   true once a stated correction is made (a transpose, |W| for W, singular
                            values for eigenvalues, "asymptotically"), false or ambiguous as written
    refuted                 false as written: evidence.counterexample holds a concrete RNN (weights,
                            inputs, start state) and log10 ||dh_T/dh_k||_2 along it (seeds.counterexamples)

Example:
    >>> r = ClaimResult("x-demo", "000_0183f85bd5403c3d.txt", "a statement", "holds", None, {"err": 0.0}, 0.01)
    >>> list(r.to_dict()), r.verdict in VERDICTS
    (['id', 'seed', 'statement', 'verdict', 'correction', 'evidence', 'seconds'], True)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ..core.results import FigureSpec, jsonable
from .documents import SEED_FILES

__all__ = ["VERDICTS", "Finding", "Claim", "ClaimResult", "claim"]

VERDICTS = ("holds", "holds-with-correction", "refuted")


@dataclass(frozen=True)
class Finding:
    """What an experiment found."""

    verdict: str
    evidence: dict
    correction: str | None = None
    figure: FigureSpec | None = None


@dataclass(frozen=True)
class Claim:
    id: str
    seed: str  # the seed's file name
    statement: str
    experiment: Callable[[], Finding] = field(repr=False)


def claim(id_: str, seed: str, statement: str, experiment: Callable[[], Finding]) -> Claim:
    """The Claim of seed "000".."004" (its key; the Claim carries the seed's file name)."""
    return Claim(id_, SEED_FILES[seed], statement, experiment)


@dataclass(frozen=True)
class ClaimResult:
    id: str
    seed: str
    statement: str
    verdict: str
    correction: str | None
    evidence: dict
    seconds: float
    figure: FigureSpec | None = None

    def to_dict(self, figure: bool = False) -> dict:
        """The JSON object of `rnnscope claims --json` (with the figure's data too when figure=True)."""
        d = {"id": self.id, "seed": self.seed, "statement": self.statement, "verdict": self.verdict,
             "correction": self.correction, "evidence": self.evidence, "seconds": self.seconds}
        if figure:
            d["figure"] = self.figure
        return jsonable(d)

    def _repr_html_(self) -> str:
        """A notebook's view (core.display.html_card): the claim's fields, the scalar entries of its evidence (as
        "evidence: <name>") and its figure (plots.plot_spec of the FigureSpec), when it has one."""
        from ..core.display import fields, html_card
        from ..core.plots import plot_spec
        facts = {**fields(self), **{f"evidence: {k}": v for k, v in fields(self.evidence).items()}}
        return html_card(f"Claim {self.id} (seed {self.seed}): {self.verdict}", facts,
                         None if self.figure is None else lambda: plot_spec(self.figure))
