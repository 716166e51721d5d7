"""Studies: the literature's training experiments as sweeps, with their configs as files in the package.

A study file (rnnscope/lab/study_configs/<name>.toml) names methods (bundles of training settings), a grid (task,
length, seed, ...), the fixed settings, and versions: [quick] (grid subsets and fixed overrides for the short
version `make demo` runs) and, optionally, [faithful] (the source's own setup, as far as it is known):

    pascanu   SGD vs SGD-C (norm clipping) vs SGD-CR (clipping + Omega) on temporal order and addition at
              lengths 10-50, 5 seeds: success rates should be ordered SGD <= SGD-C <= SGD-CR. faithful:
              Pascanu et al. 2013's code's setup, L ~ U{50..199} per batch, success = zero errors in 10,000
    cells     Elman-tanh vs LSTM vs GRU on adding (Le) and copy memory: final loss against the memoryless
              baseline
    modern    Elman-tanh, LSTM, GRU vs the cells after the seeds (LRU with its ring init, minGRU, sLSTM) and a
              pre-flossed Elman, on adding (Le), copy and the char-LM on real text (charlm): final loss against
              the memoryless baseline (charlm: the unigram entropy)

`study_spec(study, version)` turns a study into a sweep.SweepSpec whose grid has a `method` axis; each config
runs as the sweep task `run_point` (in a worker): the method's settings are merged into the config and the
run is train.run_config. `study_table(rows)` aggregates the store's rows per (task, method, length, length
range), with the success criterion the runs were judged by, into a StudyTable (a list of StudyRow that a notebook
shows as a table with its figure); `study_title(study, rows)` says what ran (methods,
tasks, lengths, seeds, updates, criterion), read from the rows themselves; `plot_study(table, path)` draws
success rate (or loss / baseline) against length, one line per method (its own marker and line style, the
legend naming the methods whose points coincide).

Example:
    >>> s = load_study("pascanu")
    >>> sorted(s.methods)
    ['SGD', 'SGD-C', 'SGD-CR']
"""

from __future__ import annotations

import dataclasses
import functools
import math
import textwrap
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from ..core.errors import InputError
from ..core.results import jsonable

__all__ = ["STUDY_NAMES", "VERSIONS", "Study", "load_study", "study_spec", "check_point", "run_point", "StudyRow", "StudyTable", "study_table",
           "study_title", "plot_study", "snapshot_profiles", "plot_snapshots"]

STUDY_NAMES = ("pascanu", "cells", "modern")
VERSIONS = ("full", "quick", "faithful")  # the grid as written; its [quick] section; its [faithful] section
_LABELS = ("study", "method", "quick")  # config keys that name, not parameterise, a run


@dataclass(frozen=True)
class Study:
    name: str
    description: str
    measure: str  # "success": fraction of runs solved; "baseline": final loss / memoryless baseline
    methods: dict  # method name -> training settings
    grid: dict
    fixed: dict
    quick: dict  # the short version: grid subsets and fixed overrides
    source: str = ""  # how a worker finds it again: the built-in name, or the file's absolute path
    faithful: dict = field(default_factory=dict)  # the source's own setup: grid subsets and fixed overrides

    def version(self, name: str) -> dict:
        """The overrides of a version: {} for "full", the [quick] or [faithful] section."""
        if name not in VERSIONS:
            raise InputError(f"study version: expected one of {', '.join(VERSIONS)}, got {name!r}")
        if name == "faithful" and not self.faithful:
            raise InputError(f"study {self.name!r}: expected a [faithful] section for --faithful, got none")
        return {"full": {}, "quick": self.quick, "faithful": self.faithful}[name]


def _read(name: str) -> dict:
    if name in STUDY_NAMES:
        text = resources.files("rnnscope.lab").joinpath("study_configs", f"{name}.toml").read_text(encoding="utf-8")
        where = f"study {name!r}"
    else:
        p = Path(name)
        if p.suffix != ".toml" or not p.is_file():
            raise InputError(f"study: expected one of {', '.join(STUDY_NAMES)} or a .toml study file, got {name!r}")
        text, where = p.read_text(encoding="utf-8"), str(p)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise InputError(f"study: expected a valid TOML file, got {where} ({e})") from None


@functools.lru_cache(maxsize=16)
def load_study(name: str) -> Study:
    """A study by name (the package's files) or path to a TOML file of the same layout."""
    d = _read(name)
    for key in ("name", "methods", "grid", "fixed"):
        if key not in d:
            raise InputError(f"study {name!r}: expected a {key!r} entry, got keys {sorted(d)}")
    if not d["methods"] or not all(isinstance(v, dict) for v in d["methods"].values()):
        raise InputError(f"study {name!r}: expected [methods.<name>] tables, got {d['methods']!r}")
    measure = d.get("measure", "success")
    if measure not in ("success", "baseline"):
        raise InputError(f"study {name!r} measure: expected 'success' or 'baseline', got {measure!r}")
    for key in _LABELS:
        if key in d["grid"] or key in d["fixed"]:
            raise InputError(f"study {name!r}: expected no {key!r} in grid or fixed (it is set by the study), got it")
    for version in ("quick", "faithful"):
        if not isinstance(d.get(version, {}), dict):
            raise InputError(f"study {name!r}: expected a [{version}] table, got {d[version]!r}")
    source = name if name in STUDY_NAMES else str(Path(name).resolve())
    return Study(d["name"], d.get("description", ""), measure, d["methods"], d["grid"], d["fixed"], d.get("quick", {}),
                 source, d.get("faithful", {}))


def study_spec(study: Study, quick: bool = False, *, version: str | None = None):
    """The sweep.SweepSpec of a study: grid = methods x the study's grid, with a version's overrides (a key of
    the grid replaces that axis, any other key a fixed setting). version: "full", "quick" or "faithful";
    quick=True is version "quick"."""
    from ..runs.spec import SweepSpec
    version = version or ("quick" if quick else "full")
    if quick and version != "quick":
        raise InputError(f"study version: expected quick or {version}, got both")
    grid = {"method": list(study.methods), **study.grid}
    fixed = dict(study.fixed)
    for k, v in study.version(version).items():
        if k in grid:
            grid[k] = v
        else:
            fixed[k] = v
    fixed["study"] = study.source or study.name  # the worker loads the study (its methods) from this
    return SweepSpec(f"study-{study.name}" + ("" if version == "full" else f"-{version}"), "study-point", grid, fixed)


def _merged(config: dict) -> dict:
    """The training settings of a study-point config: its own keys but the labels, with the method's merged in."""
    for key in ("study", "method"):
        if key not in config:
            raise InputError(f"{key}: expected it in every study-point config, got none")
    study = load_study(str(config["study"]))
    method = config["method"]
    if method not in study.methods:
        raise InputError(f"method: expected one of {', '.join(study.methods)}, got {method!r}")
    run = {k: v for k, v in config.items() if k not in _LABELS}
    run.update(study.methods[method])
    return run


def check_point(config: dict):
    """The train.TrainConfig of a study-point config (the method's settings merged in, as run_point runs it), or
    an InputError: the CLI checks every config of a sweep with it before anything is dispatched."""
    from .train import TrainConfig
    return TrainConfig.from_dict(_merged(config))


def run_point(config: dict) -> dict:
    """The sweep task: merge the method's settings into the config and train (train.run_config).

    Metrics: the training result (status, steps, final_loss, final_error_rate, baseline_loss, history,
    seconds, criterion), with the history kept to its evaluations' scalars and the last gradient-flow
    snapshot (a profile per evaluation would grow the store by T numbers every eval_every updates).
    """
    from .train import run_config
    metrics = run_config(_merged(config))
    if metrics.get("history"):
        h = metrics["history"]
        metrics["history"] = [{k: v for k, v in r.items() if k != "profile"} for r in h[:-1]] + h[-1:]
    return jsonable(metrics)


@dataclass(frozen=True)
class StudyRow:
    """One (task, method, length, length range) of a study: its runs aggregated.

    criterion: the success criterion its runs were judged by ("lenient", "pascanu"; runs recorded before
    criteria had names were judged by the lenient one; several names joined by "+"); length_range: (MIN, MAX)
    in sampled-length mode (length is then MAX), else None.
    """

    task: str
    method: str
    length: int
    runs: int
    solved: int
    success_rate: float
    diverged: int
    mean_loss_over_baseline: float
    mean_steps: float
    criterion: str = "lenient"
    length_range: tuple | None = None

    @property
    def length_label(self) -> str:
        """'L', or 'MIN..MAX' for sampled lengths."""
        return f"{self.length_range[0]}..{self.length_range[1]}" if self.length_range else str(self.length)

    def to_dict(self) -> dict:
        return jsonable(self.__dict__)


def _criterion_of(row: dict) -> str:
    """The criterion a store row's run was judged by: its metrics' (newer runs), else its config's, else lenient."""
    m = row.get("metrics") or {}
    c = m.get("criterion")
    if isinstance(c, dict) and c.get("name"):
        return str(c["name"])
    return str(row["config"].get("criterion", "lenient"))


class StudyTable(list):
    """The result of study_table: its StudyRows as a list (indexed, iterated, compared and printed as before), with
    the measure plot_study draws (success rate or loss / baseline) and the title of what ran (study_title).
    In a notebook it shows as a card: the totals, one row per StudyRow, and plot_study's figure."""

    def __init__(self, rows=(), *, measure: str = "success", title: str = ""):
        super().__init__(rows)
        if measure not in ("success", "baseline"):
            raise InputError(f"study table measure: expected 'success' or 'baseline', got {measure!r}")
        self.measure, self.title = measure, title

    def to_dict(self) -> dict:
        """{"measure", "title", "runs", "solved", "rows": [StudyRow.to_dict()]}."""
        return jsonable({"measure": self.measure, "title": self.title, "runs": sum(r.runs for r in self),
                         "solved": sum(r.solved for r in self), "rows": [r.to_dict() for r in self]})

    def _repr_html_(self) -> str:
        """A notebook's view (core.display.html_card): the totals, a row per (task, method, length), plot_study."""
        from ..core.display import html_card
        d = self.to_dict()
        facts = {"measure": self.measure, "runs": d["runs"], "solved": d["solved"],
                 "tasks": sorted({r.task for r in self}), "methods": list(dict.fromkeys(r.method for r in self))}
        head = ["task", "method", "L", "runs", "solved", "success_rate", "diverged", "mean_loss_over_baseline",
                "mean_steps", "criterion"]
        rows = [head] + [[r.task, r.method, r.length_label] + [getattr(r, k) for k in head[3:]] for r in self]
        return html_card(self.title or f"study table: {len(self)} row(s)", facts,
                         lambda: plot_study(self, measure=self.measure, title=self.title), rows=rows)


def study_table(rows: list[dict], *, measure: str = "success", title: str = "") -> StudyTable:
    """Aggregate store rows ({"config", "metrics", "status"}) per (task, method, length, length range); failed
    rows are counted as runs that did not solve (never silently dropped). measure and title (the study's measure and
    study_title) travel with the table for its notebook view."""
    groups: dict[tuple, list] = {}
    for r in rows:
        c = r["config"]
        lr = tuple(int(v) for v in c["length_range"]) if c.get("length_range") else ()
        groups.setdefault((c["task"], c["method"], int(c["length"]), lr), []).append(r)
    out = []
    for (task, method, length, lr), rs in sorted(groups.items()):
        ms = [r["metrics"] for r in rs if r.get("status") == "done" and r.get("metrics")]
        solved = sum(m.get("status") == "solved" for m in ms)
        diverged = sum(m.get("status") == "diverged" for m in ms)
        ratios = [m["final_loss"] / m["baseline_loss"] for m in ms
                  if m.get("final_loss") is not None and m.get("baseline_loss") and math.isfinite(m["final_loss"])]
        criteria = "+".join(sorted({_criterion_of(r) for r in rs}))
        out.append(StudyRow(task, method, length, len(rs), solved, solved / len(rs), diverged,
                            float(np.mean(ratios)) if ratios else math.nan,
                            float(np.mean([m["steps"] for m in ms])) if ms else math.nan, criteria, lr or None))
    return StudyTable(out, measure=measure, title=title)


def _values(xs) -> str:
    """'a, b, c' of the distinct values in first-seen order."""
    return ", ".join(str(x) for x in dict.fromkeys(xs))


def study_title(study: Study, rows: list[dict], version: str = "full") -> str:
    """What ran, read from the store rows of a study: its name and version, the methods, tasks, lengths, number
    of seeds, update budget, and the success criterion with its number of fresh sequences (a method's own
    settings count: they are merged into each run's config as run_point does).

    Example:
        >>> rows = [{"config": {"task": "copy", "method": m, "length": L, "seed": 0, "steps": 100}, "metrics": {}}
        ...         for m in ("LSTM", "GRU") for L in (10, 20)]
        >>> print(textwrap.fill(study_title(load_study("cells"), rows, "quick"), 100))
        study cells (quick): LSTM, GRU on copy at L = 10, 20; 1 seed, 100 updates; success: lenient: error
        rate < 1% of 1,000 fresh sequences
    """
    from .criteria import CRITERIA, get_criterion
    from .train import TrainConfig
    if not rows:
        return f"study {study.name}" + ("" if version == "full" else f" ({version})") + ": no runs"
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    runs = [{**defaults, **r["config"], **study.methods.get(r["config"].get("method"), {})} for r in rows]
    lengths = [f"{c['length_range'][0]}..{c['length_range'][1]}" if c.get("length_range") else c["length"]
               for c in runs]
    seeds = len({c.get("seed") for c in runs})
    steps = _values(f"{c['steps']:,}" for c in runs)
    crits = []
    for r, c in zip(rows, runs):
        m = (r.get("metrics") or {}).get("criterion") or {}
        name = str(m.get("name") or c.get("criterion") or "lenient")
        n = m.get("sequences") or c.get("eval_size") or (CRITERIA[name].default_sequences if name in CRITERIA else None)
        crits.append(get_criterion(name).describe(n) if name in CRITERIA else name)
    crits = list(dict.fromkeys(crits))
    head = f"study {study.name}" + ("" if version == "full" else f" ({version})")
    return (f"{head}: {_values(c['method'] for c in runs)} on {_values(c['task'] for c in runs)} at L = {_values(lengths)}; "
            f"{seeds} seed{'s' if seeds != 1 else ''}, {steps} updates; success: {'; '.join(crits)}")


_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
_DASHES = ("-", "--", "-.", ":")


def _style(j: int, n: int) -> dict:
    """The look of the j-th of n series in a panel, so that series which coincide are all seen: each its own
    colour, hollow marker shape and line style; earlier series drawn thicker and underneath (zorder), so a later
    one on top of it leaves its colour showing at both edges and its marker around the later one's."""
    frac = (n - 1 - j) / max(n - 1, 1)  # 1 for the first series, 0 for the last
    return dict(color=f"C{j % 10}", marker=_MARKERS[j % len(_MARKERS)], ls=_DASHES[j % len(_DASHES)],
                lw=1.3 + 2.2 * frac, ms=5 + 5 * frac, mfc="none", mew=1.5, zorder=2 + j)


def _same(a: list, b: list) -> bool:
    """Whether two series of (x, y) points are the same points (NaN equal to NaN)."""
    return len(a) == len(b) and all(xa == xb and (ya == yb or (ya != ya and yb != yb))
                                    for (xa, ya), (xb, yb) in zip(a, b))


def _labels(series: dict) -> dict:
    """Legend labels: the series' name, with "(= A)" where its points are exactly those of an earlier series A (the
    first such), so a reader knows a line hidden under another is there and equal."""
    out = {}
    for i, (name, pts) in enumerate(series.items()):
        twin = next((other for other, q in list(series.items())[:i] if _same(pts, q)), None)
        out[name] = f"{name} (= {twin})" if twin is not None else name
    return out


def _wrap(title: str, fig) -> str:
    """title broken into lines that fit the figure's width (about 11 characters per inch at 10 points)."""
    return textwrap.fill(title, max(40, int(11 * fig.get_figwidth())), break_on_hyphens=False)


def _criterion_label(table: list[StudyRow]) -> str:
    """The criteria of a table's runs, short: 'lenient: < 1% wrong', 'pascanu: 0 wrong of 10,000'."""
    words = {"lenient": "lenient: < 1% wrong", "pascanu": "pascanu: 0 wrong of 10,000"}
    return "; ".join(words.get(n, n) for n in dict.fromkeys(n for r in table for n in r.criterion.split("+")))


def plot_study(table: list[StudyRow], path=None, *, measure: str = "success", title: str = ""):
    """Success rate (or final loss / baseline) against length, one line per method, one panel per task; the
    y label names the success criterion the runs were judged by (StudyRow.criterion). Each method has its own
    colour, marker and line style (_style), so methods whose points coincide are all visible, and the legend says
    which coincide ("SGD-C (= SGD)"); the title (study_title: what ran) is wrapped to the figure's width."""
    from ..core.plots import check_plot_path, new_figure, save_figure
    if path is not None:
        check_plot_path(path)
    tasks = sorted({r.task for r in table})
    if not tasks:
        raise InputError("study plot: expected finished runs, got none")
    fig = new_figure((5.2 * len(tasks), 4.2))
    for i, task in enumerate(tasks):
        ax = fig.add_subplot(1, len(tasks), i + 1)
        methods = list(dict.fromkeys(r.method for r in table))
        series = {}
        for method in methods:
            rs = sorted((r for r in table if r.task == task and r.method == method), key=lambda r: r.length)
            if rs:
                series[method] = [(r.length, r.success_rate if measure == "success" else r.mean_loss_over_baseline)
                                  for r in rs]
        labels = _labels(series)
        for method, pts in series.items():
            ax.plot([x for x, _ in pts], [y for _, y in pts], label=labels[method], gid=f"{task}:{method}",
                    **_style(methods.index(method), len(methods)))
        ax.set_xticks(sorted({r.length for r in table if r.task == task}))
        if measure == "success":
            ax.set_ylim(-0.05, 1.05)
            ax.set_ylabel(f"success rate ({_criterion_label(table)})")
        else:
            ax.axhline(1.0, color="0.4", ls="--", lw=1, label="memoryless baseline")
            ax.set_ylabel("final loss / baseline loss")
        sampled = any(r.length_range for r in table)
        ax.set_xlabel("sequence length L" + (" (sampled: the MAX of U{MIN..MAX})" if sampled else ""))
        ax.set_title(task, fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(_wrap(title, fig), fontsize=10)
    if path is not None:
        save_figure(fig, path)
    return fig


def snapshot_profiles(rows: list[dict]) -> dict:
    """The gradient-flow snapshots at the end of training, per (task, method) at the task's longest length:
    the mean over seeds of the last evaluation's log10 ||dL/dh_k|| (k = 0..T). Returns
    {task: {"length": L, "methods": {method: [log10 values]}}}."""
    out: dict = {}
    for r in rows:
        m = r.get("metrics") or {}
        h = m.get("history") or []
        if r.get("status") != "done" or not h or not h[-1].get("profile"):
            continue
        c = r["config"]
        t = out.setdefault(c["task"], {"length": -1, "runs": {}})
        L = int(c["length"])
        if L > t["length"]:
            t["length"], t["runs"] = L, {}
        if L == t["length"]:
            t["runs"].setdefault(c["method"], []).append([math.nan if v is None else v for v in h[-1]["profile"]])
    res = {}
    for task, t in out.items():
        methods = {}
        for method, profs in t["runs"].items():
            n = min(len(p) for p in profs)
            methods[method] = [float(np.nanmean([p[i] for p in profs])) for i in range(n)]
        res[task] = {"length": t["length"], "methods": methods}
    return res


def plot_snapshots(snapshots: dict, path=None, *, title: str = ""):
    """Why: log10 ||dL/dh_k|| against k at the end of training, per method, one panel per task (its longest L)."""
    from ..core.plots import check_plot_path, new_figure, save_figure
    if path is not None:
        check_plot_path(path)
    if not snapshots:
        raise InputError("snapshot plot: expected runs with gradient-flow snapshots, got none")
    fig = new_figure((5.2 * len(snapshots), 4.2))
    for i, (task, t) in enumerate(sorted(snapshots.items())):
        ax = fig.add_subplot(1, len(snapshots), i + 1)
        series = {method: list(enumerate(ys)) for method, ys in t["methods"].items()}
        labels = _labels(series)
        for j, (method, ys) in enumerate(t["methods"].items()):
            ax.plot(range(len(ys)), ys, label=labels[method], gid=f"{task}:{method}",
                    markevery=max(1, len(ys) // 8), **_style(j, len(series)))
        ax.set_xlabel("k (step the loss gradient flows back to)")
        ax.set_ylabel("log10 ||dL/dh_k|| (mean over seeds)")
        ax.set_title(f"{task}, L = {t['length']}: gradient flow after training", fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(_wrap(title, fig), fontsize=10)
    if path is not None:
        save_figure(fig, path)
    return fig
