"""The offline HTML report: claims with their verdicts and evidence, reproduced figures, the demo, the studies.

    write_report(out_dir, claims, reproductions, demo=None, studies=None)  ->  out_dir/index.html

One self-contained page (inline CSS, no JavaScript, no network: it reads the same from a USB stick):

    header          what rnnscope is; counts of holds / holds-with-correction / refuted
    contents        links to every seed file's claims, the reproductions and the demo
    claims          grouped by seed file; each claim a <section id="claim-<id>" class="claim"
                    data-verdict="<verdict>"> with its statement, a coloured verdict badge, the
                    correction, the evidence as a compact table (lists shortened to their length and
                    first/last values, nested dicts flattened to dotted keys, floats to 4 significant
                    digits), the counterexample (matrices up to 8 x 8 as tables, larger ones by shape;
                    its log10 norms summarised) and its figure, drawn here to claims/<id>.png
                    by core.plots.plot_spec from the claim's FigureSpec dict
    reproductions   each <figure id="repro-<name>">: the PNG written by rnnscope.seeds.reproduce, a link to
                    its SVG and caption file, the caption, and its numbers
    demo            the demo's cases table (app.demo.run_demo's summary) and overview.png
    studies         each training study's figure (success rate or loss / baseline against length), its
                    gradient-flow snapshot when there is one, and its table

Inputs are plain JSON-like dicts (as written to JSON by the producers); every text from them is
HTML-escaped, every file they name is linked by its path relative to out_dir and must exist there.

Example (one claim, no figure drawn, into a temporary folder):
    >>> import tempfile
    >>> from rnnscope.seeds.claims import run_claims
    >>> claims = [r.to_dict() for r in run_claims(only=["003-bound-eigen"])]
    >>> page = write_report(tempfile.mkdtemp(), claims, [])
    >>> page.name, 'id="claim-003-bound-eigen"' in page.read_text(encoding="utf-8")
    ('index.html', True)
"""

from __future__ import annotations

import math
import re
from html import escape
from pathlib import Path
from urllib.parse import quote

from .claims import VERDICTS
from ..core.errors import InputError
from ..core.files import output_folder

__all__ = ["CLAIM_KEYS", "REPRODUCTION_KEYS", "write_report"]
CLAIM_KEYS = ("id", "seed", "statement", "verdict", "correction", "evidence", "seconds")
REPRODUCTION_KEYS = ("seed", "name", "title", "caption", "png", "svg", "caption_file", "numbers")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # ids and names become file names and HTML ids
_MATRIX_MAX = 8  # matrices up to 8 x 8 are shown in full, larger ones by shape


# ---------------------------------------------------------------------------- validation

def _check(d, keys: tuple[str, ...], what: str) -> None:
    if not isinstance(d, dict):
        raise InputError(f"{what}: expected a dict, got {type(d).__name__}")
    for k in keys:
        if k not in d:
            raise InputError(f"{what}: expected key {k!r}, got keys {sorted(map(str, d))}")


def _check_name(name, what: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InputError(f"{what}: expected letters, digits, '.', '_' or '-' (a file name), got {name!r}")
    return name


def _check_claims(claims) -> None:
    seen = set()
    for i, c in enumerate(claims):
        what = f"claims[{i}]" + (f" ({c['id']!r})" if isinstance(c, dict) and "id" in c else "")
        _check(c, CLAIM_KEYS, what)
        _check_name(c["id"], f"{what} id")
        if c["id"] in seen:
            raise InputError(f"{what}: expected a unique id, got {c['id']!r} twice")
        seen.add(c["id"])
        if c["verdict"] not in VERDICTS:
            raise InputError(f"{what} verdict: expected one of {', '.join(VERDICTS)}, got {c['verdict']!r}")
        if not isinstance(c["evidence"], dict):
            raise InputError(f"{what} evidence: expected a dict, got {type(c['evidence']).__name__}")
        if "figure" in c and c["figure"] is not None:
            _check(c["figure"], ("title", "xlabel", "ylabel", "series"), f"{what} figure")


def _asset(out: Path, rel, what: str) -> str:
    """The URL (relative, quoted, escaped) of a file that must exist in out."""
    if not isinstance(rel, str) or not rel or Path(rel).is_absolute() or not (out / rel).is_file():
        raise InputError(f"{what}: expected an existing file relative to {str(out)!r}, got {rel!r}")
    return escape(quote(rel))


# ---------------------------------------------------------------------------- formatting

def _num(v) -> str:
    """A number as text: floats to 4 significant digits, null as a dash, anything else as str."""
    if v is None:
        return "\u2014"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float):
        return "NaN" if math.isnan(v) else ("\u221e" if v > 0 else "\u2212\u221e") if math.isinf(v) else f"{v:.4g}"
    return str(v)


def _shape(v) -> tuple[int, ...] | None:
    """The shape of a rectangular nested list (None if ragged)."""
    if not isinstance(v, list):
        return ()
    if not v:
        return (0,)
    inner = [_shape(x) for x in v]
    return None if None in inner or len(set(inner)) > 1 else (len(v), *inner[0])


def _leaves(v) -> list:
    return [y for x in v for y in _leaves(x)] if isinstance(v, list) else [v]


def _shape_text(shape) -> str:
    return " \u00d7 ".join(map(str, shape))


def _short(v) -> str:
    """A list shortened: all values when there are at most 4, else its shape and the first/last two."""
    flat, shape = _leaves(v), _shape(v)
    if len(flat) <= 4 and shape is not None and len(shape) == 1:
        return "[" + ", ".join(map(_num, flat)) + "]"
    size = f"{len(flat)} values" if shape is None or len(shape) == 1 else _shape_text(shape)
    if not flat:
        return "empty"
    if len(flat) <= 4:
        return f"{size}: " + ", ".join(map(_num, flat))
    return f"{size}: {_num(flat[0])}, {_num(flat[1])}, \u2026, {_num(flat[-2])}, {_num(flat[-1])}"


def _flatten(d: dict, prefix: str = ""):
    """(dotted key, value) pairs of a nested dict."""
    for k, v in d.items():
        if isinstance(v, dict):
            yield from _flatten(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


def _kv_table(d: dict, cls: str) -> str:
    rows = "".join(f"<tr><th>{escape(k)}</th><td>{escape(_short(v) if isinstance(v, list) else _num(v))}</td></tr>"
                   for k, v in _flatten(d))
    return f'<table class="{cls}"><tbody>{rows}</tbody></table>' if rows else ""


def _seconds(s) -> str:
    return f"{_num(float(s))} s" if isinstance(s, (int, float)) and not isinstance(s, bool) else ""


def _badge(verdict: str) -> str:
    return f'<span class="badge verdict v-{escape(verdict)}">{escape(verdict)}</span>'


# ---------------------------------------------------------------------------- sections

def _matrix(name: str, v) -> str:
    """A small matrix or vector as a table (1-D as one row); larger ones by shape and first/last values."""
    shape = _shape(v)
    if shape is None or not 1 <= len(shape) <= 2 or max(shape) > _MATRIX_MAX or 0 in shape:
        return f'<div class="matrix"><div class="mname">{escape(name)}</div><p>{escape(_short(v))}</p></div>'
    rows = v if len(shape) == 2 else [v]
    body = "".join("<tr>" + "".join(f"<td>{escape(_num(x))}</td>" for x in r) + "</tr>" for r in rows)
    return (f'<div class="matrix"><div class="mname">{escape(name)} <small>({_shape_text(shape)})</small></div>'
            f"<table><tbody>{body}</tbody></table></div>")


def _norms_summary(ys: list, plotted: bool) -> str:
    """log10 norms over k = 1..T: first, last, min, max, average change per step, exact zeros."""
    pts = [(k, float(y)) for k, y in enumerate(ys, 1) if y is not None and math.isfinite(y)]
    zeros = len(ys) - len(pts)
    parts = [f"{len(ys)} values, k = 1..{len(ys)}"]
    if pts:
        (k0, y0), (k1, y1) = pts[0], pts[-1]
        lo, hi = min(pts, key=lambda p: p[1]), max(pts, key=lambda p: p[1])
        parts += [f"k = {k0}: {_num(y0)}", f"k = {k1}: {_num(y1)}",
                  f"min {_num(lo[1])} at k = {lo[0]}", f"max {_num(hi[1])} at k = {hi[0]}"]
        if k1 > k0:
            parts.append(f"average change {(y1 - y0) / (k1 - k0):+.4g} per step")
    if zeros:
        parts.append(f"{zeros} null (norm exactly 0 or not finite)")
    where = " (plotted in the figure below)" if plotted else ""
    return f'<p class="norms"><strong>log10 norms</strong>{where}: {escape("; ".join(parts))}</p>'


def _counterexample(cx: dict, plotted: bool) -> str:
    facts = ", ".join(f"{k} = {_num(v)}" for k, v in cx.items() if not isinstance(v, (list, dict)))
    mats = "".join(_matrix(k, v) for k, v in cx.items() if isinstance(v, list) and k != "log10_norms")
    norms = _norms_summary(cx["log10_norms"], plotted) if isinstance(cx.get("log10_norms"), list) else ""
    return (f'<div class="counterexample"><h5>Counterexample</h5>'
            f'{f"<p>{escape(facts)}</p>" if facts else ""}<div class="matrices">{mats}</div>{norms}</div>')


def _claim(c: dict, out: Path) -> str:
    from ..core.plots import plot_spec  # matplotlib only when a claim has a figure
    from ..core.results import FigureSpec

    cid, verdict = c["id"], c["verdict"]
    evidence = {k: v for k, v in c["evidence"].items() if k != "counterexample"}
    cx = c["evidence"].get("counterexample")
    has_figure = c.get("figure") is not None
    parts = [f'<section id="claim-{escape(cid)}" class="claim" data-verdict="{escape(verdict)}">',
             f'<div class="claim-head"><h4>{escape(cid)}</h4>{_badge(verdict)}'
             f'<span class="seconds">{escape(_seconds(c["seconds"]))}</span></div>',
             f'<p class="statement">{escape(str(c["statement"]))}</p>']
    if c["correction"]:
        parts.append(f'<p class="correction"><strong>Correction.</strong> {escape(str(c["correction"]))}</p>')
    if evidence:
        parts.append(f'<h5>Evidence</h5>{_kv_table(evidence, "evidence")}')
    if isinstance(cx, dict):
        parts.append(_counterexample(cx, has_figure))
    if has_figure:
        try:
            spec = FigureSpec.from_dict(c["figure"])
        except (KeyError, TypeError, ValueError) as e:
            raise InputError(f"claim {cid!r} figure: expected a FigureSpec dict, got {type(e).__name__}: {e}") from None
        (out / "claims").mkdir(exist_ok=True)
        plot_spec(spec, out / "claims" / f"{cid}.png")
        alt = f"Figure for claim {cid}: {spec.title} ({spec.ylabel} against {spec.xlabel})"
        parts.append(f'<figure class="claim-figure"><img src="claims/{escape(quote(cid))}.png" alt="{escape(alt)}">'
                     f"<figcaption>{escape(spec.title)}</figcaption></figure>")
    return "".join(parts) + "</section>"


def _reproduction(r: dict, out: Path) -> str:
    what = f"reproduction {r['name']!r}"
    png, svg, txt = (_asset(out, r[k], f"{what} {k}") for k in ("png", "svg", "caption_file"))
    numbers = r["numbers"] if isinstance(r["numbers"], dict) else {}
    table = (f'<details><summary>numbers ({len(list(_flatten(numbers)))})</summary>'
             f'{_kv_table(numbers, "evidence")}</details>' if numbers else "")
    return (f'<figure id="repro-{escape(r["name"])}" class="repro"><h3>{escape(str(r["title"]))}</h3>'
            f'<img src="{png}" alt="{escape(str(r["title"]))}">'
            f'<figcaption><p>{escape(str(r["caption"]))}</p><p class="links">seed <code>{escape(str(r["seed"]))}</code>'
            f' \u00b7 <a href="{svg}">SVG</a> \u00b7 <a href="{txt}">caption text</a></p>{table}</figcaption></figure>')


_DEMO_HEAD = ("case", "activation", "\u03c3<sub>max</sub>", "\u03c1", "verdict", "rate / step", "bound rate",
              "horizon", "figure")


def _demo_row(c: dict, out: Path) -> str:
    """One demo case as a table row; numbers right-aligned (class n), rates in log10 per step with a sign."""
    hz = "none" if c.get("horizon") is None else f"{c['horizon']} ({c.get('horizon_kind', '')})"
    rates = ["\u2014" if c.get(k) is None else f"{c[k]:+.4f}" for k in ("rate_per_step", "bound_rate_per_step")]
    fig = f'<a href="{_asset(out, c["figure"], "demo case figure")}">PNG</a>' if c.get("figure") else ""
    name = f'<strong>{escape(str(c.get("case", "")))}</strong><br><small>{escape(str(c.get("recipe", "")))}</small>'
    cells = [(name, ""), (escape(str(c.get("activation", ""))), ""), (escape(_num(c.get("sigma_max"))), "n"),
             (escape(_num(c.get("spectral_radius"))), "n"), (escape(str(c.get("verdict", ""))), ""),
             (rates[0], "n"), (rates[1], "n"), (escape(hz), ""), (fig, "")]
    return "<tr>" + "".join(f'<td class="n">{x}</td>' if n else f"<td>{x}</td>" for x, n in cells) + "</tr>"


def _demo(demo: dict, out: Path) -> str:
    _check(demo, ("cases",), "demo")
    config = ", ".join(f"{k} = {_num(v)}" for k, v in (demo.get("config") or {}).items())
    took = f"; {_seconds(demo['seconds'])}" if _seconds(demo.get("seconds")) else ""
    overview = (f'<figure class="repro overview"><img src="{_asset(out, demo["overview"], "demo overview")}" '
                f'alt="Demo overview: every case\'s gradient-flow profile against its bound"></figure>'
                if demo.get("overview") else "")
    return (f'<section id="demo"><h2>Demo</h2><p>Elman RNNs h<sub>t</sub> = \u03c6(W<sub>hh</sub> '
            f"h<sub>t\u22121</sub> + W<sub>xh</sub> x<sub>t</sub> + b<sub>h</sub>), profiled exactly against the "
            f"Pascanu bound (\u03b3 \u03c3<sub>max</sub>)<sup>t\u2212k</sup>. "
            f"Sizes: {escape(config)}{escape(took)}.</p>"
            f'<table class="cases"><thead><tr>{"".join(f"<th>{h}</th>" for h in _DEMO_HEAD)}</tr></thead><tbody>'
            + "".join(_demo_row(c, out) for c in demo["cases"])
            + '</tbody></table><p class="legend">rate: the fitted slope of log10 '
              "||\u2202h<sub>t</sub>/\u2202h<sub>k</sub>||<sub>2</sub> per step; bound rate: "
              "log10(\u03b3 \u03c3<sub>max</sub>); horizon: steps until the norm has changed by 10<sup>3</sup>.</p>"
            f"{overview}</section>")


_STUDY_KEYS = ("name", "description", "measure", "figure", "table")


def _study(st: dict, out: Path) -> str:
    """One training study: its figure (success rate or loss / baseline against length) and its table."""
    _check(st, _STUDY_KEYS, f"study {st.get('name', '?')!r}" if isinstance(st, dict) else "study")
    name = _check_name(st["name"], "study name")
    success = st["measure"] == "success"
    head = ("task", "method", "length", "runs", "solved", "success rate", "diverged", "final loss / baseline", "mean steps")
    rows = "".join(
        "<tr>" + "".join(f'<td class="n">{escape(_num(r.get(k)))}</td>' if k not in ("task", "method")
                         else f"<td>{escape(str(r.get(k)))}</td>"
                         for k in ("task", "method", "length", "runs", "solved", "success_rate", "diverged",
                                   "mean_loss_over_baseline", "mean_steps")) + "</tr>" for r in st["table"])
    what = ("success rate: the fraction of runs that met the success criterion named above"
            if success else "final loss / the task's memoryless baseline: below 1, the model remembers")
    quick = " (the short version of make demo)" if st.get("quick") else ""
    return (f'<section class="repro study" id="study-{escape(name)}"><h3>Study <code>{escape(name)}</code>'
            f"{escape(quick)}</h3><p>{escape(str(st['description']))}. {escape(what)}.</p>"
            f'<figure><img src="{_asset(out, st["figure"], "study figure")}" alt="study {escape(name)}"></figure>'
            + (f'<figure><img src="{_asset(out, st["flow_figure"], "study flow figure")}" alt="study {escape(name)}: '
               f'gradient flow after training"><figcaption>Why: the gradient-flow snapshot (log10 ||dL/dh<sub>k</sub>||) '
               f"at the end of training, per method, at the longest length.</figcaption></figure>"
               if st.get("flow_figure") else "")
            + f'<details><summary>the table ({len(st["table"])} rows)</summary><table class="cases"><thead><tr>'
            + "".join(f"<th>{h}</th>" for h in head) + f"</tr></thead><tbody>{rows}</tbody></table></details></section>")


# ---------------------------------------------------------------------------- the page

_CSS = """
:root{--fg:#1f2328;--muted:#59636e;--line:#d8dee4;--soft:#f6f8fa;--accent:#0969da;
--holds:#1a7f37;--holds-bg:#dafbe1;--corr:#9a6700;--corr-bg:#fff8c5;--ref:#cf222e;--ref-bg:#ffebe9}
*{box-sizing:border-box}
body{margin:0;background:var(--soft);color:var(--fg);
font:15px/1.55 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif}
.page{max-width:1100px;margin:0 auto;padding:2rem 1.5rem 3rem}
a{color:var(--accent);text-decoration:none}
a:hover{text-decoration:underline}
code,td,.mname{font-family:ui-monospace,"SFMono-Regular","DejaVu Sans Mono",Menlo,monospace;font-size:.85em}
h1{font-size:2rem;margin:0 0 .3rem}
h2{font-size:1.45rem;margin:2.2rem 0 .8rem;padding-bottom:.3rem;border-bottom:1px solid var(--line)}
h3{font-size:1.1rem;margin:1.6rem 0 .6rem}
h4{font-size:1rem;margin:0}
h5{font-size:.8rem;margin:1rem 0 .35rem;color:var(--muted);letter-spacing:.04em}
.lede{color:var(--muted);max-width:60rem;margin:.2rem 0 1rem}
.summary{display:flex;flex-wrap:wrap;gap:.6rem;padding:0;margin:1rem 0 0;list-style:none}
.summary li{background:#fff;border:1px solid var(--line);border-radius:8px;padding:.45rem .8rem;
display:flex;align-items:center;gap:.5rem}
.summary b{font-size:1.25rem}
.toc{background:#fff;border:1px solid var(--line);border-radius:8px;padding:.8rem 1.2rem;margin-top:1.5rem}
.toc h2{border:0;margin:0 0 .3rem;font-size:1.05rem;padding:0}
.toc ol{margin:.2rem 0;padding-left:1.3rem}
.toc li{margin:.15rem 0}
.toc ul{list-style:none;padding:0;margin:.1rem 0 .3rem;display:flex;flex-wrap:wrap;gap:.1rem 1.6rem;font-size:.9rem}
.badge{display:inline-block;border-radius:999px;padding:.05rem .6rem;font-size:.8rem;font-weight:600;
border:1px solid;white-space:nowrap}
.v-holds{color:var(--holds);background:var(--holds-bg);border-color:var(--holds)}
.v-holds-with-correction{color:var(--corr);background:var(--corr-bg);border-color:var(--corr)}
.v-refuted{color:var(--ref);background:var(--ref-bg);border-color:var(--ref)}
.dot{display:inline-block;width:.6rem;height:.6rem;border-radius:50%;margin-right:.35rem}
.dot.v-holds{background:var(--holds)}
.dot.v-holds-with-correction{background:var(--corr)}
.dot.v-refuted{background:var(--ref)}
.claim{background:#fff;border:1px solid var(--line);border-left:5px solid var(--line);
border-radius:8px;padding:1rem 1.2rem;margin:0 0 1rem}
.claim[data-verdict=holds]{border-left-color:var(--holds)}
.claim[data-verdict=holds-with-correction]{border-left-color:var(--corr)}
.claim[data-verdict=refuted]{border-left-color:var(--ref)}
.claim-head{display:flex;align-items:center;gap:.7rem;flex-wrap:wrap}
.claim-head h4{font-family:ui-monospace,"DejaVu Sans Mono",monospace}
.seconds{margin-left:auto;color:var(--muted);font-size:.8rem}
.statement{font-size:1.05rem;margin:.6rem 0}
.correction{background:var(--corr-bg);border-left:3px solid var(--corr);padding:.5rem .8rem;
margin:.6rem 0;border-radius:4px}
table{border-collapse:collapse;background:#fff}
th,td{border:1px solid var(--line);padding:.2rem .55rem;text-align:left;vertical-align:middle}
thead th{background:var(--soft);font-size:.85rem}
.evidence th{font-weight:500;color:var(--muted);font-size:.85rem;background:var(--soft)}
.evidence{font-size:.9rem}
.counterexample{border-top:1px dashed var(--line);margin-top:.8rem}
.matrices{display:flex;flex-wrap:wrap;gap:1rem 1.6rem;align-items:flex-start}
.matrix table td{text-align:right;padding:.1rem .45rem}
.matrix p{margin:0;font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:.85em}
.mname{font-weight:600;margin-bottom:.2rem}
.norms{font-size:.9rem;color:var(--muted)}
figure{margin:1rem 0 0}
figure img{max-width:100%;height:auto;display:block;border:1px solid var(--line);border-radius:6px;background:#fff}
.claim-figure img{max-width:760px}
figcaption{color:var(--muted);font-size:.9rem;margin-top:.4rem}
.repro{background:#fff;border:1px solid var(--line);border-radius:8px;padding:1rem 1.2rem;margin:0 0 1.2rem}
.repro h3{margin:0 0 .6rem}
.repro img{margin:0 auto}
.links{margin:.3rem 0}
.cases{width:100%;font-size:.9rem}
.cases td{font-family:inherit}
.cases td.n{text-align:right;font-family:ui-monospace,"DejaVu Sans Mono",monospace}
.cases small{color:var(--muted)}
.legend{font-size:.85rem;color:var(--muted);margin:.4rem 0 0}
.overview{margin-top:1.2rem}
details summary{cursor:pointer;margin:.4rem 0}
footer{color:var(--muted);font-size:.85rem;margin-top:3rem;border-top:1px solid var(--line);padding-top:.8rem}
"""

_ABOUT = ("rnnscope is a gradient-flow laboratory for recurrent neural networks: it computes exactly how "
          "gradients vanish or explode through time (log-domain Jacobian products, hand-derived BPTT, "
          "checked against autograd) and tests the statements of the source texts as experiments. Each claim "
          "below was run and given a verdict with its evidence.")


def _anchor(seed: str) -> str:
    return "seed-" + re.sub(r"[^A-Za-z0-9_-]", "-", Path(seed).stem)


def write_report(out_dir, claims: list[dict], reproductions: list[dict], demo: dict | None = None,
                 studies: list[dict] | None = None, after_seeds: list[dict] | None = None) -> Path:
    """Write out_dir/index.html (and claims/<id>.png for every claim with a figure); return its path.

    claims: dicts with keys CLAIM_KEYS (+ optional "figure", a FigureSpec dict); reproductions: dicts with
    keys REPRODUCTION_KEYS whose png/svg/caption_file exist in out_dir; demo: demo.run_demo's summary or None;
    studies: dicts with name, description, measure, figure (a PNG in out_dir), table (studies.StudyRow dicts);
    after_seeds: the modern cells' guarantees (seeds.after_seeds.run_after_seeds, as claim dicts), the section
    "After the seeds".
    Raises InputError for a file as out_dir, a missing key (naming it and the claim), an unknown verdict,
    or a named file that is not in out_dir.
    """
    out = output_folder(out_dir, create=False)  # checked first, created once the inputs are valid
    _check_claims(claims)
    _check_claims(after_seeds or [])
    for i, r in enumerate(reproductions):
        named = f" ({r['name']!r})" if isinstance(r, dict) and "name" in r else ""
        _check(r, REPRODUCTION_KEYS, f"reproductions[{i}]{named}")
        _check_name(r["name"], f"reproductions[{i}] name")
    output_folder(out)

    seeds: dict[str, list[dict]] = {}
    for c in claims:
        seeds.setdefault(str(c["seed"]), []).append(c)
    seeds = dict(sorted(seeds.items()))
    counts = {v: sum(c["verdict"] == v for c in claims) for v in VERDICTS}

    summary = "".join(f"<li>{_badge(v)}<b>{n}</b></li>" for v, n in counts.items())
    summary += f"<li>claims <b>{len(claims)}</b></li><li>reproductions <b>{len(reproductions)}</b></li>"
    toc = "".join(
        f'<li><a href="#{_anchor(s)}">{escape(s)}</a> ({len(cs)})<ul>'
        + "".join(f'<li><span class="dot v-{escape(c["verdict"])}"></span><a href="#claim-{escape(c["id"])}">'
                  f'{escape(c["id"])}</a></li>' for c in cs) + "</ul></li>" for s, cs in seeds.items())
    if after_seeds:
        toc += (f'<li><a href="#after-the-seeds">After the seeds</a> ({len(after_seeds)})<ul>'
                + "".join(f'<li><span class="dot v-{escape(c["verdict"])}"></span><a href="#claim-{escape(c["id"])}">'
                          f'{escape(c["id"])}</a></li>' for c in after_seeds) + "</ul></li>")
    if reproductions:
        toc += f'<li><a href="#reproductions">Reproductions</a> ({len(reproductions)})</li>'
    if demo is not None:
        toc += '<li><a href="#demo">Demo</a></li>'
    if studies:
        toc += f'<li><a href="#studies">Training studies</a> ({len(studies)})</li>'

    body = "".join(f'<section class="seed" id="{_anchor(s)}"><h3>Seed <code>{escape(s)}</code></h3>'
                   + "".join(_claim(c, out) for c in cs) + "</section>" for s, cs in seeds.items())
    parts = [f'<section id="claims"><h2>Claims</h2>{body or "<p>No claims.</p>"}</section>']
    if after_seeds:
        parts.append('<section id="after-the-seeds"><h2>After the seeds</h2><p class="lede">The recurrences '
                     "researchers use now (LRU, Mamba's selective SSM, minGRU, minLSTM, IndRNN, expRNN, coRNN, "
                     "sLSTM) were designed so that a bound on the Jacobian products holds by construction. Each "
                     "guarantee is stated and checked on the cell as its paper initialises it, with the exact "
                     "profile's numbers.</p>" + "".join(_claim(c, out) for c in after_seeds) + "</section>")
    if reproductions:
        parts.append('<section id="reproductions"><h2>Reproductions</h2>'
                     + "".join(_reproduction(r, out) for r in reproductions) + "</section>")
    if demo is not None:
        parts.append(_demo(demo, out))
    if studies:
        parts.append('<section id="studies"><h2>Training studies</h2>' + "".join(_study(st, out) for st in studies)
                     + "</section>")

    page = (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>rnnscope report</title>\n<style>{_CSS}</style>\n</head>\n<body>\n<div class=\"page\">\n"
            f'<header><h1>rnnscope report</h1><p class="lede">{escape(_ABOUT)}</p>'
            f'<ul class="summary">{summary}</ul></header>\n'
            f'<nav class="toc"><h2>Contents</h2><ol>{toc}</ol></nav>\n<main>\n' + "\n".join(parts)
            + '\n</main>\n<footer>Written by rnnscope.seeds.report.write_report. Self-contained: no scripts, no network; '
              "figures are files next to this page.</footer>\n</div>\n</body>\n</html>\n")
    path = out / "index.html"
    path.write_text(page, encoding="utf-8")
    return path
