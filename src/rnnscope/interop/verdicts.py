"""The result of diagnose and its words: the numbers of every (layer, direction), the verdict of a profile,
the advice, the plain-text summary.

    LayerDiagnosis   one (layer, direction): the log10 profiles over k = 1..T per sequence ((B, T), (J, T) for
                     the Jacobian products) and their batch means, the weights' facts (bounds.weight_facts),
                     the fitted rate, the horizon and the verdict
    Diagnosis        every LayerDiagnosis, the loss, ||dL/dtheta||, the advice, the per-parameter norms
                     ||dL/dtheta_name|| of the whole model; to_dict(), summary(), parameter_table(), plot()
    profile_verdict  the one verdict: a profile of credit over the distance d in words: fallen below 10^-3 of
                     d = 0 at d = h "vanishing", risen above 10^3 "exploding"; otherwise "stable over the
                     measured range" ("too short to tell" without a fitted rate). It reads what the loss can
                     see: the credit profile (per-step losses) or ||dL/dh_k|| (a last-step loss)
    first_far        the first distance d = T - k with y_k <= y_T - FAR_DECADES: the gradient from d steps
                     back is below 1e-6 of the most recent
    parameter_table  ||dL/dtheta_name|| of every named parameter and its share of the total squared norm:

        share_name = ||dL/dtheta_name||^2 / sum_m ||dL/dtheta_m||^2        (in log space: no overflow)

The advice lines are written by advice.py (advice.advice), which reads these types; this module imports
nothing from it.

Legend: T time, B batch, J sequences of the Jacobian-product profile.

Example:
    >>> y = torch.tensor([-7.0, -5.0, -3.0, -1.0, 0.0])       # log10 of a profile over k = 1..5
    >>> first_far(y)
    4
    >>> profile_verdict("adjoint", -1.0, 3, "fallen", 5)
    'vanishing: credit from d steps ahead falls below 10^-3 of the immediate one at d = 3 (||dL/dh_k|| at k = t - d, -1.000 decades per step)'
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..core.errors import InputError
from ..core.results import jsonable
from ..gradients.bounds import horizon

__all__ = ["LayerDiagnosis", "Diagnosis", "FAR_DECADES", "profile_verdict", "first_far"]

FAR_DECADES = 6.0  # "the gradient from d steps back is below 1e-6 of the most recent"


@dataclass(frozen=True)
class LayerDiagnosis:
    """One (layer, direction). Lists run over k = 1..T in the direction's own time order: element k-1 is step k
    (the reverse direction's step k reads position T + 1 - k). Per-sequence tensors are (B, T) ((J, T) for the
    Jacobian products, J = jacobian_sequences); the properties are their batch means of the logs."""

    layer: int
    direction: str
    cell: str  # elman | pal | lstm | gru | function
    state: str  # "h" or "(h, c)"
    h_size: int
    state_size: int
    per_sequence_adjoint_h: torch.Tensor  # (B, T) log10 ||dL/dh_k||
    per_sequence_adjoint_c: torch.Tensor | None  # (B, T) log10 ||dL/dc_k|| (LSTM; LSTMCell.cell_adjoint)
    per_sequence_spectral: torch.Tensor | None  # (J, T) log10 ||ds_T/ds_k||_2
    per_sequence_spectral_hh: torch.Tensor | None  # (J, T) log10 ||dh_T/dh_k||_2 (LSTM)
    per_sequence_spectral_cc: torch.Tensor | None  # (J, T) log10 ||dc_T/dc_k||_2 (LSTM)
    per_sequence_carry_share: torch.Tensor | None  # (C, T) carry_share(k) (LSTM, GRU) on the first C sequences
    log10_gradient_norm: float | None  # log10 ||dL/dtheta|| of this layer-direction's parameters
    sigma_max: float | None  # of W_hh (stacked gate blocks for LSTM / GRU)
    sigma_max_gates: dict | None  # gate name -> sigma_max of its W_hh block (LSTM i f g o, GRU r z n)
    gamma: float | None  # sup |phi'| (vanilla cells)
    spectral_radius: float | None
    theory_verdict: str
    note: str
    rate_per_step: float | None  # log10 per step, tail fit of the primary profile (the one rate_source names)
    horizon: int | None  # first distance where the primary profile has moved by 10^3
    horizon_kind: str | None  # fallen | risen
    far_distance: int | None  # first distance where the primary profile is below 10^-6 of its value at d = 0
    last_loss_step: int  # the last step k with a direct loss term on h_k (later adjoints are exactly 0)
    rate_source: str  # what the verdict reads: "credit" (G(d)), "adjoint" (||dL/dh_k||) or "spectral" (||ds_T/ds_k||_2)
    verdict: str
    module: str = ""  # the recurrent submodule's path in a whole model ("encoder.rnn"); "" for a bare module
    log10_credit: torch.Tensor | None = None  # (D+1,) G(d), d = 0..D: batch mean of log10 ||dE_t/dh_{t-d}|| (credit.py)
    credit_case: str | None = None  # "per-step" (anchored terms E_t) | "last-step" (||dL/dh_{t-d}||) | None
    credit_anchors: tuple = ()  # the anchor steps t of the credit profile
    per_sequence_spectral_h: torch.Tensor | None = None  # (J, T) log10 ||dh_T/ds_k||_2, the h rows (LSTM)
    forget_gate: float | None = None  # LSTM: mean f = sigmoid(z_f) over steps, sequences, units (advice.gate_facts)
    forget_bias: float | None = None  # LSTM: mean b_f = b_ih_f + b_hh_f over units
    update_gate: float | None = None  # GRU: mean z = sigmoid(a_z)
    attribution_sequences: int = 0  # sequences the carry share was computed on (0: none)
    forget_rest: float | None = None  # LSTM: mean z_f - b_f, the input and recurrent part of the forget pre-activation
    credit_sequences: int = 0  # sequences per anchor of the credit profile (per-step case)

    @staticmethod
    def _mean(x: torch.Tensor | None) -> torch.Tensor | None:
        return None if x is None else torch.nanmean(x, 0)  # NaN: a step beyond a packed sequence's length

    @property
    def log10_adjoint_h(self) -> torch.Tensor:
        return torch.nanmean(self.per_sequence_adjoint_h, 0)

    @property
    def log10_adjoint_c(self) -> torch.Tensor | None:
        return self._mean(self.per_sequence_adjoint_c)

    @property
    def log10_spectral(self) -> torch.Tensor | None:
        return self._mean(self.per_sequence_spectral)

    @property
    def log10_spectral_hh(self) -> torch.Tensor | None:
        return self._mean(self.per_sequence_spectral_hh)

    @property
    def log10_spectral_cc(self) -> torch.Tensor | None:
        return self._mean(self.per_sequence_spectral_cc)

    @property
    def log10_spectral_h(self) -> torch.Tensor | None:
        return self._mean(self.per_sequence_spectral_h)

    @property
    def carry_share(self) -> torch.Tensor | None:
        """Batch mean of carry_share(k) over the sequences where it is defined."""
        s = self.per_sequence_carry_share
        return None if s is None else torch.nanmean(s, 0)

    @property
    def gradient_norm(self) -> float | None:
        return _pow10(self.log10_gradient_norm)

    def far_carry_share(self) -> float | None:
        """Mean carry_share over the long-range half k <= t/2, t = last_loss_step (None without attribution,
        or when t < 4: too short to have a long range)."""
        s = self.carry_share
        t = self.last_loss_step
        if s is None or t < 4:
            return None
        far = s[: t // 2]
        far = far[~far.isnan()]
        return float(far.mean()) if far.numel() else None

    @property
    def name(self) -> str:
        return (f"{self.module} " if self.module else "") + f"layer {self.layer} {self.direction}"

    def to_dict(self) -> dict:
        return jsonable({
            "module": self.module, "layer": self.layer, "direction": self.direction, "cell": self.cell, "state": self.state,
            "h_size": self.h_size, "state_size": self.state_size,
            "log10_adjoint_h": self.log10_adjoint_h, "log10_adjoint_c": self.log10_adjoint_c,
            "log10_spectral": self.log10_spectral, "log10_spectral_hh": self.log10_spectral_hh,
            "log10_spectral_cc": self.log10_spectral_cc, "log10_spectral_h": self.log10_spectral_h,
            "carry_share": self.carry_share,
            "gradient_norm": self.gradient_norm, "log10_gradient_norm": self.log10_gradient_norm,
            "sigma_max": self.sigma_max, "sigma_max_gates": self.sigma_max_gates, "gamma": self.gamma,
            "inverse_gamma": None if not self.gamma else 1.0 / self.gamma, "spectral_radius": self.spectral_radius,
            "theory_verdict": self.theory_verdict, "note": self.note, "rate_per_step": self.rate_per_step,
            "rate_source": self.rate_source, "horizon": self.horizon, "horizon_kind": self.horizon_kind,
            "far_distance": self.far_distance, "last_loss_step": self.last_loss_step,
            "far_carry_share": self.far_carry_share(), "verdict": self.verdict,
            "log10_credit": self.log10_credit, "credit_case": self.credit_case, "credit_anchors": list(self.credit_anchors),
            "forget_gate": self.forget_gate, "forget_bias": self.forget_bias, "forget_rest": self.forget_rest,
            "update_gate": self.update_gate, "attribution_sequences": self.attribution_sequences,
            "credit_sequences": self.credit_sequences,
        })


@dataclass(frozen=True)
class Diagnosis:
    """The result of `diagnose`: one LayerDiagnosis per (layer, direction), the loss, the gradient norm, advice."""

    model: str  # module kind (rnn_tanh, lstm, gru, lstm_cell, cell, ...)
    T: int
    batch: int
    num_layers: int
    num_directions: int
    loss: float
    loss_kind: str  # "sum of the last output" or "loss_fn"
    layers: tuple[LayerDiagnosis, ...]
    log10_gradient_norm: float | None  # log10 ||dL/dtheta|| over all the module's parameters
    jacobian_sequences: int  # sequences in the Jacobian-product profile (0: not computed)
    dtype: str
    advice: tuple[str, ...]
    seconds: float
    notes: tuple[str, ...] = ()  # what the analysis changed or could not use (a module set to eval mode, ...)
    parameters: tuple = ()  # (name, log10 ||dL/dtheta_name||) of every named parameter of the whole model, in order
    model_dtype: str = ""  # the model's own dtype ("float32"); `dtype` is the analysis's
    agreement: float | None = None  # max relative difference of the re-run's output from the module's own
    nonfinite: object | None = None  # a NonFinite (interop/nan_hunt.py): .message(), .to_dict(); None when finite
    clip_source: str = ""  # what the clip threshold of the advice came from: "history" | "batch" | "" (none)
    jacobian_seconds: float | None = None  # the cost of the Jacobian-product profile (None: not computed)

    @property
    def gradient_norm(self) -> float | None:
        return _pow10(self.log10_gradient_norm)

    def layer(self, layer: int, direction: str = "forward", module: str | None = None) -> LayerDiagnosis:
        """The (layer, direction) of the recurrent submodule `module` (None: the first that has it)."""
        for d in self.layers:
            if d.layer == layer and d.direction == direction and (module is None or d.module == module):
                return d
        raise InputError(f"layer: expected one of {[(d.module, d.layer, d.direction) for d in self.layers]}, got "
                         f"{(module, layer, direction)}")

    def to_dict(self) -> dict:
        return jsonable({
            "model": self.model, "T": self.T, "batch": self.batch, "num_layers": self.num_layers,
            "num_directions": self.num_directions, "loss": self.loss, "loss_kind": self.loss_kind,
            "gradient_norm": self.gradient_norm, "log10_gradient_norm": self.log10_gradient_norm,
            "jacobian_sequences": self.jacobian_sequences, "dtype": self.dtype,
            "layers": [d.to_dict() for d in self.layers], "advice": list(self.advice), "notes": list(self.notes),
            "seconds": self.seconds, "model_dtype": self.model_dtype, "agreement": self.agreement,
            "clip_source": self.clip_source, "jacobian_seconds": self.jacobian_seconds,
            "parameters": [{"name": n, "log10_gradient_norm": v, "gradient_norm": _pow10(v), "share": sh}
                           for (n, v), sh in zip(self.parameters, _shares([v for _, v in self.parameters]))],
            "nonfinite": None if self.nonfinite is None else self.nonfinite.to_dict(),
        })

    def parameter_table(self) -> str:
        """||dL/dtheta_name|| of every named parameter (in the given order) and its share of the total squared
        norm, as an aligned text table ending in the total sqrt(sum_name ||dL/dtheta_name||^2).

            >>> d = Diagnosis("m", 1, 1, 1, 1, 0.0, "loss_fn", (), None, 0, "float32", (), 0.0,
            ...               parameters=(("emb.weight", math.log10(3.0)), ("head.bias", math.log10(4.0))))
            >>> print(d.parameter_table())
            parameter   ||dL/dtheta||   share
            emb.weight              3   36.0%
            head.bias               4   64.0%
            total                   5  100.0%
        """
        vals = [v for _, v in self.parameters]
        shares = _shares(vals)
        total = _log10_total(vals)
        rows = [(n, _norm_text(v), "-" if sh is None else f"{100 * sh:.1f}%")
                for (n, v), sh in zip(self.parameters, shares)]
        rows.append(("total", _norm_text(total), "100.0%" if total is not None and math.isfinite(total) else "-"))
        head = ("parameter", "||dL/dtheta||", "share")
        w = [max(len(r[i]) for r in rows + [head]) for i in range(3)]
        fmt = lambda r: f"{r[0]:<{w[0]}}  {r[1]:>{w[1]}}  {r[2]:>{w[2]}}".rstrip()  # noqa: E731
        return "\n".join(fmt(r) for r in [head] + rows)

    def summary(self) -> str:
        """A plain-text report: one block per (layer, direction), then the advice."""
        lines = [] if self.nonfinite is None else [str(self.nonfinite.message())]
        lines.append(f"rnnscope diagnose: {self.model}, {self.num_layers} layer(s) x {self.num_directions} direction(s), "
                     f"T = {self.T}, B = {self.batch}, {self.dtype}; loss = {self.loss:.6g} ({self.loss_kind})")
        if self.model_dtype or self.agreement is not None:
            dt = f"model dtype {self.model_dtype or '?'}, analysis dtype {self.dtype}"
            if self.agreement is not None:
                dt += (f"; the re-run's output agrees with the module's own ({self.model_dtype or 'its dtype'}) to a max "
                       f"relative difference of {self.agreement:.2g}")
            lines.append(dt)
        if self.gradient_norm is not None:
            whose = ("every parameter of the model: its recurrent submodules' and the rest" if any(d.module for d in self.layers)
                     else "all the module's parameters")
            lines.append(f"||dL/dtheta|| = {self.gradient_norm:.4g} ({whose})")
        for d in self.layers:
            lines.append(f"{d.name} ({d.cell}, state {d.state}): {d.verdict}")
            facts = []
            if d.sigma_max is not None:
                facts.append(f"sigma_max(W_hh) = {d.sigma_max:.4g}")
            if d.gamma:
                facts.append(f"1/gamma = {1 / d.gamma:.4g}")
            facts.append(f"weights: {d.theory_verdict}")
            lines.append("    " + ", ".join(facts))
            a = d.log10_adjoint_h
            lines.append(f"    log10 ||dL/dh_k||: k = 1: {_f(a[0])}, k = T: {_f(a[-1])}"
                         + ("" if d.log10_spectral is None else
                            f"; log10 ||ds_T/ds_k||_2 at k = 1: {_f(d.log10_spectral[0])}")
                         + ("" if d.log10_spectral_h is None else
                            f"; log10 ||dh_T/ds_k||_2 (the h rows) at k = 1: {_f(d.log10_spectral_h[0])}"))
            g = d.log10_credit
            if g is not None and d.credit_case == "per-step":
                lines.append(f"    credit log10 ||dE_t/dh_{{t-d}}|| (per-step loss, {len(d.credit_anchors)} anchor step(s)): "
                             f"d = 0: {_f(g[0])}, d = {g.shape[0] - 1}: {_f(g[-1])}")
            if d.carry_share is not None:
                on = f" on {d.attribution_sequences} sequence(s)" if d.attribution_sequences else ""
                lines.append(f"    carry share (k = 1){on}: {_f(d.carry_share[0], '.3f')}")
            if d.forget_gate is not None:
                b = "" if d.forget_bias is None else f", mean b_f = {d.forget_bias:.3g}"
                lines.append(f"    forget gate: mean f = {d.forget_gate:.3g}{b}")
            if d.update_gate is not None:
                lines.append(f"    update gate: mean z = {d.update_gate:.3g}")
        if self.parameters:
            lines.append("||dL/dtheta|| per parameter (the whole model):")
            lines += ["    " + r for r in self.parameter_table().splitlines()]
        lines += [f"advice: {a}" for a in self.advice]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def plot(self, path=None):
        """One figure for all layers: a (layer, k) heatmap of log10 ||dL/dh_k|| and the profiles (plots.plot_diagnosis)."""
        from ..core.plots import plot_diagnosis
        return plot_diagnosis(self, path)

    def _repr_html_(self) -> str:
        """A notebook's view (core.display.html_card): the scalar fields and ||dL/dtheta||, one row per (layer,
        direction) (its verdict, log10 ||dL/dh_k|| at k = 1 and T, rate, horizon, sigma_max(W_hh)), the NaN hunt's
        finding, the advice and notes, and plots.plot_diagnosis's figure."""
        from ..core.display import fields, html_card
        rows = [["layer", "cell", "verdict", "log10 ||dL/dh_1||", "log10 ||dL/dh_T||", "rate / step", "horizon",
                 "sigma_max"]]
        rows += [[d.name, d.cell, d.verdict, float(d.log10_adjoint_h[0]), float(d.log10_adjoint_h[-1]), d.rate_per_step,
                  d.horizon, d.sigma_max] for d in self.layers]
        found = () if self.nonfinite is None else (str(self.nonfinite.message()),)
        facts = {**fields(self, skip=("advice", "notes")), "gradient_norm": self.gradient_norm}
        return html_card(f"diagnose: {self.model}, {self.num_layers} layer(s) x {self.num_directions} direction(s), "
                         f"T = {self.T}, B = {self.batch}", facts, self.plot if self.layers else None, rows=rows,
                         notes=(*found, *self.advice, *self.notes))


def _f(v, spec: str = ".3f") -> str:
    v = float(v)
    return format(v, spec) if math.isfinite(v) else str(v)


def _ok(v) -> bool:
    return v is not None and not math.isnan(float(v))


def _pow10(v) -> float | None:
    """10^v; None for an unknown v, inf beyond float64."""
    if not _ok(v):
        return None
    return 10.0 ** float(v) if float(v) < 308 else math.inf


def _norm_text(v) -> str:
    if not _ok(v):
        return "n/a"
    v = float(v)
    if not math.isfinite(v):
        return "0" if v < 0 else "inf"
    return format(10.0 ** v, ".4g") if v < 308 else f"10^{v:.1f}"


def _log10_total(vals) -> float | None:
    """log10 sqrt(sum 10^(2 v)) over the known values (None when there are none)."""
    ok = [float(v) for v in vals if _ok(v)]
    if not ok:
        return None
    return float(0.5 * torch.logsumexp(2 * math.log(10) * torch.tensor(ok, dtype=torch.float64), 0)) / math.log(10)


def _shares(vals) -> list[float | None]:
    """||.||^2 / sum ||.||^2 of each value (log10 norms), None where unknown or the total is not finite or 0."""
    tot = _log10_total(vals)
    if tot is None or not math.isfinite(tot):
        return [None] * len(vals)
    return [10.0 ** (2 * (float(v) - tot)) if _ok(v) else None for v in vals]


# ------------------------------------------------------------------------------------------------ words

def first_far(log10: torch.Tensor, decades: float = FAR_DECADES) -> int | None:
    """The first distance d = T - k where log10 (element k-1) is below its value at d = 0 by `decades`."""
    if not math.isfinite(float(log10[-1])):
        return None  # nothing reaches step T itself: no distance to measure from
    return horizon(log10, decades, rises=False)[0]


_WHAT = {"credit": "||dE_t/dh_{t-d}||, per-step loss", "adjoint": "||dL/dh_k|| at k = t - d",
         "spectral": "||ds_T/ds_k||_2 at k = T - d"}


def profile_verdict(src: str, rate: float | None, h: int | None, kind: str | None, T: int) -> str:
    """THE verdict (diagnose, and through it the monitor and the CLI): a log10 profile of credit over the
    distances d = 0..T-1 in words, from its fitted rate (log10 per step, bounds.fitted_rate) and its horizon h
    of kind "fallen" / "risen" / None (bounds.horizon: the first d where it has moved by 10^3 from d = 0).

    src names the quantity. diagnose reads what the loss can see: "credit" (per-step losses L = sum_t E_t: the
    credit profile G(d) = log10 ||dE_t/dh_{t-d}||, credit.py) or "adjoint" (a last-step loss: ||dL/dh_k||,
    d = t - k); "spectral" (||ds_T/ds_k||_2) only when neither exists. A flat ||dL/dh_k|| under per-step losses
    says nothing: the credit profile of a vanilla RNN whose credit dies within 20 steps reads "vanishing".
    """
    what = _WHAT.get(src, src)
    r = "" if rate is None else f", {rate:+.3f} decades per step"
    if kind == "fallen":
        return f"vanishing: credit from d steps ahead falls below 10^-3 of the immediate one at d = {h} ({what}{r})"
    if kind == "risen":
        return f"exploding: credit from d steps ahead rises above 10^3 of the immediate one at d = {h} ({what}{r})"
    if rate is None:
        return f"too short to tell: {what} stays within 10^3 over d = 0..{T - 1}"
    return f"stable over the measured range (d = 0..{T - 1}): credit stays within 10^3 of the immediate one ({what}{r})"
