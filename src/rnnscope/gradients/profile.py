"""The gradient-flow profile of one model on one batch: everything `rnnscope profile` reports.

For the target step t (default T) and every k = 1..t, per sequence b and as the batch mean of the logs:

    log10 ||ds_t/ds_k||_2,   log10 ||ds_t/ds_k||_F        (flow.jacobian_profile: one running product)
    log10 ||dL/ds_k||_2 = log10 ||g^T ds_t/ds_k||            (g = dL/ds_t: one more row of that product)

with L = sum of the entries of h_t; with explicit dL/ds terms at every step (direct) the adjoints come
from adjoint.adjoints (vector-Jacobian products) instead. Next to them the weights'
promise (bounds.weight_facts: gamma, sigma_max, rho, verdict, note), the bound (gamma sigma_max)^(t-k),
the fitted rate and the horizon of the batch-mean spectral profile. A trajectory that never moves (an
autonomous run from the fixed point 0 with zero bias) is profiled as it is, with a warning: its products are
the powers of one Jacobian, the linearisation at that fixed point.

Example:
    >>> from rnnscope.core.cells import ElmanCell
    >>> cell = ElmanCell(0.5 * torch.eye(4, dtype=torch.float64), torch.zeros(4, 1, dtype=torch.float64),
    ...                  torch.zeros(4, dtype=torch.float64), "tanh")
    >>> p = profile(cell, torch.zeros(20, 1, 1, dtype=torch.float64))
    >>> p.verdict, round(p.rate_per_step, 6)      # ||0.5^(t-k) I|| falls by log10(2) per step
    ('vanishing guaranteed', -0.30103)
    >>> p.warnings == (FIXED_POINT_WARNING,)               # zero inputs from s_0 = 0: it never moves
    True
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass

import torch

from .adjoint import adjoints, state_adjoint_seed
from ..core.cells import Cell
from .flow import jacobian_profile
from ..core.results import jsonable
from .bounds import fitted_rate, horizon, weight_facts
from ..core.unroll import Trace, unroll

__all__ = ["Profile", "profile", "profile_trace", "FIXED_POINT_WARNING"]

FIXED_POINT_WARNING = ("the trajectory sits on a fixed point (no unit moves): every Jacobian is the same, that of the "
                       "linearisation there; drive the model (inputs) or start elsewhere (h0) to follow a moving "
                       "trajectory")


@dataclass(frozen=True)
class Profile:
    """A gradient-flow profile. Lists run over k = 1..t: element k-1 is step k."""

    cell: str
    activation: str | None
    state: str  # "h" or "(h, c)"
    t: int
    batch: int
    state_size: int
    per_sequence_spectral: torch.Tensor  # (B, t)
    per_sequence_frobenius: torch.Tensor  # (B, t)
    per_sequence_adjoint: torch.Tensor  # (B, t)
    log10_bound: torch.Tensor | None  # (t,) (t-k) log10(step bound): gamma sigma_max for the vanilla cells,
    # max |lambda| for LRU, ... (bounds.Verdict.step_bound); None where the weights promise no such bound
    rate_per_step: float | None
    horizon: int | None
    horizon_kind: str | None
    gamma: float | None
    sigma_max: float | None
    spectral_radius: float | None
    verdict: str
    note: str
    seconds: float
    power_half_steps: int
    svd_fallbacks: int
    warnings: tuple[str, ...] = ()  # e.g. the trajectory sits on a fixed point
    step_bound: float | None = None  # c with ||ds_t/ds_k||_2 <= c^(t-k) whatever the inputs (bounds.Verdict)

    @property
    def log10_spectral(self) -> torch.Tensor:
        """Batch mean of log10 ||ds_t/ds_k||_2, (t,)."""
        return self.per_sequence_spectral.mean(0)

    @property
    def log10_frobenius(self) -> torch.Tensor:
        return self.per_sequence_frobenius.mean(0)

    @property
    def log10_adjoint(self) -> torch.Tensor:
        return self.per_sequence_adjoint.mean(0)

    def to_dict(self) -> dict:
        return jsonable({
            "cell": self.cell, "activation": self.activation, "state": self.state, "t": self.t,
            "batch": self.batch, "state_size": self.state_size,
            "log10_spectral": self.log10_spectral, "log10_frobenius": self.log10_frobenius,
            "log10_adjoint": self.log10_adjoint,
            "per_sequence": {"log10_spectral": self.per_sequence_spectral,
                             "log10_frobenius": self.per_sequence_frobenius,
                             "log10_adjoint": self.per_sequence_adjoint},
            "log10_bound": self.log10_bound,
            "rate_per_step": self.rate_per_step, "horizon": self.horizon, "horizon_kind": self.horizon_kind,
            "gamma": self.gamma, "sigma_max": self.sigma_max, "spectral_radius": self.spectral_radius,
            "verdict": self.verdict, "note": self.note, "seconds": self.seconds,
            "power_half_steps": self.power_half_steps, "svd_fallbacks": self.svd_fallbacks,
            "warnings": list(self.warnings), "step_bound": self.step_bound,
        })

    def _repr_html_(self) -> str:
        """A notebook's view (core.display.html_card): the scalar fields, log10 ||ds_t/ds_1||_2, _F and ||dL/ds_1||
        (the longest distance, batch means), the note and warnings, and plots.plot_profile's figure."""
        from ..core.display import fields, html_card
        from ..core.plots import plot_profile
        first = {f"{name} (k = 1)": float(getattr(self, name)[0])
                 for name in ("log10_spectral", "log10_frobenius", "log10_adjoint")}
        what = self.cell if self.activation is None else f"{self.cell} ({self.activation})"
        return html_card(f"Profile of {what}, S = {self.state_size}, t = {self.t}, B = {self.batch}: {self.verdict}",
                         {**fields(self, skip=("note", "warnings")), **first}, lambda: plot_profile(self),
                         notes=(self.note, *self.warnings))


def profile_trace(cell: Cell, trace: Trace, *, t: int | None = None, direct: torch.Tensor | None = None,
                  spectral: bool = True) -> Profile:
    """The profile of an already unrolled trace (see `profile`)."""
    start = time.perf_counter()
    t = trace.T if t is None else t
    if direct is None:
        # L = sum of the entries of h_t: dL/ds_k = g^T ds_t/ds_k with g = dL/ds_t, one more row of the product
        jp = jacobian_profile(cell, trace, t, spectral=spectral, carry=state_adjoint_seed(cell, trace.B).unsqueeze(1))
        adjoint = jp.log10_carried[:, 0]  # (B, t)
        lost = torch.isneginf(adjoint) & torch.isfinite(jp.log10_frobenius)
        if bool(lost.any()):  # g^T P underflowed next to P itself: the separately normalised sweep is exact
            adjoint = adjoints(cell, trace, None, t=t).log10_norm[1:t + 1].T
    else:
        jp = jacobian_profile(cell, trace, t, spectral=spectral)
        adjoint = adjoints(cell, trace, direct, t=t).log10_norm[1:t + 1].T
    facts = weight_facts(cell)
    mean_spec = (jp.log10_spectral if spectral else jp.log10_frobenius).mean(0)
    d, kind = horizon(mean_spec)
    bound = None
    if facts.step_bound is not None:
        gs = facts.step_bound  # ||ds_t/ds_k|| <= gs^(t-k): (gamma sigma_max) for the vanilla cells
        dist = torch.arange(t - 1, -1, -1, dtype=torch.float64)
        bound = dist * (math.log10(gs) if gs > 0 else float("-inf"))
        bound[-1] = 0.0
    act = getattr(cell, "activation", None)
    return Profile(
        cell=cell.kind, activation=getattr(act, "name", None), state=cell.state_label, t=t, batch=trace.B,
        state_size=cell.state_size, per_sequence_spectral=jp.log10_spectral,
        per_sequence_frobenius=jp.log10_frobenius, per_sequence_adjoint=adjoint,
        log10_bound=bound, rate_per_step=fitted_rate(mean_spec), horizon=d, horizon_kind=kind,
        gamma=facts.gamma, sigma_max=facts.sigma_max, spectral_radius=facts.spectral_radius,
        verdict=facts.verdict, note=facts.note, seconds=time.perf_counter() - start,
        power_half_steps=jp.power_half_steps, svd_fallbacks=jp.svd_fallbacks,
        warnings=(FIXED_POINT_WARNING,) if trace.truncated(t).fixed_point() else (), step_bound=facts.step_bound,
    )


def profile(cell: Cell, x, s0=None, *, t: int | None = None, direct: torch.Tensor | None = None,
            spectral: bool = True) -> Profile:
    """Unroll the cell over x (T, B, D) or (T, D) from s0 and profile the gradient flow into step t.

    Cost O(t B S^3) for the Jacobian products, O(t B S^2) for the adjoints; memory O(T B S) for the
    trace plus O(B S^2) working space. `seconds` includes the unroll.
    """
    start = time.perf_counter()
    trace = unroll(cell, x, s0)
    p = profile_trace(cell, trace, t=t, direct=direct, spectral=spectral)
    return dataclasses.replace(p, seconds=time.perf_counter() - start)
