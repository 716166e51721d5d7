"""Results in a notebook: one HTML card per result, with a title, its key numbers and its figure inline.

    html_card(title, facts, figure=None, *, rows=None, notes=())   the card, a str of HTML
    fields(obj, skip=())                                           a result's scalar fields, for the facts
    figure_png(fig, dpi=DPI)                                       a matplotlib Figure as PNG bytes, then closed

A result class gets its notebook view in a few lines: Jupyter calls `_repr_html_` for rich output, and a
terminal keeps the class's plain `__repr__` (the dataclass's), which this module never touches:

    def _repr_html_(self) -> str:
        return html_card("Profile: ...", fields(self), lambda: plot_profile(self))

The card is self-contained: inline CSS, the figure as <img src="data:image/png;base64,...">, no JavaScript and no
address to fetch (the PNG is written without matplotlib's Software text). Every text is escaped with html.escape.
A value shows as compact text (floats to 6 significant digits, long lists by their ends) and carries its exact
JSON value (core.results.jsonable) in the attribute data-value, next to data-key naming it, so a program reading
the card gets the numbers themselves. The figure is built by the result's own plot function (a Figure on the Agg
canvas, core.plots.new_figure: no pyplot state), rendered, and closed; a plot function that refuses (an
InputError: nothing to draw) leaves its message where the figure would be.

Example:
    >>> card = html_card("demo <1>", {"rate": 0.25, "n": 3, "horizon": None}, rows=[["a", "b"], [1.5, "x"]])
    >>> "demo &lt;1&gt;" in card, 'data-key="rate" data-value="0.25"' in card, "<img" in card
    (True, True, False)
"""

from __future__ import annotations

import base64
import dataclasses
import html
import io
import json
import math
import sys
from typing import Callable, Iterable, Mapping, Sequence

from .errors import InputError
from .results import jsonable

__all__ = ["DPI", "html_card", "fields", "figure_png"]

DPI = 90  # a figure of 7.5 x 4.8 inches is 675 x 432 pixels: readable in a notebook cell, ~50 kB as PNG
_LIST_SHOWN = 8  # a list longer than this shows its first and last entries and its length
_SCALARS = (type(None), bool, int, float, str)
_CARD = ("border:1px solid #c8c8c8;border-radius:4px;padding:8px 10px;margin:4px 0;max-width:1100px;"
         "font-family:sans-serif;font-size:12px;line-height:1.35;color:#222;background:#fff")
_CELL = "padding:1px 8px 1px 0;text-align:left;vertical-align:top;border:none;max-width:460px;overflow-wrap:anywhere"


def _number(v: float) -> str:
    return f"{v:.6g}" if math.isfinite(v) else str(v)  # inf, -inf (log10 of a zero norm), nan


def _text(v) -> str:
    """The compact text of a value (not yet escaped)."""
    if hasattr(v, "tolist"):  # a tensor or an array
        v = v.tolist()
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return _number(v)
    if isinstance(v, (list, tuple)):
        parts = [_text(x) for x in v]
        if len(parts) > _LIST_SHOWN:
            return f"[{', '.join(parts[:_LIST_SHOWN - 2])}, ..., {parts[-1]}] ({len(parts)} values)"
        return f"[{', '.join(parts)}]"
    if isinstance(v, Mapping):
        s = json.dumps(jsonable(v), separators=(", ", ": "))
        return s if len(s) <= 160 else s[:157] + "..."
    return str(v)


def _cell(tag: str, v, key: str | None = None) -> str:
    """<td> or <th> with the value's text and, for a value cell, its exact JSON in data-value."""
    attrs = ""
    if tag == "td":
        value = json.dumps(jsonable(v.tolist() if hasattr(v, "tolist") else v), ensure_ascii=False)
        attrs = (f' data-key="{html.escape(key, quote=True)}"' if key is not None else "") + \
            f' data-value="{html.escape(value, quote=True)}"'
    return f'<{tag} style="{_CELL}"{attrs}>{html.escape(_text(v))}</{tag}>'


def fields(obj, skip: Iterable[str] = ()) -> dict:
    """{name: value} of a dataclass's fields (or a mapping's items) that a card shows as facts: None, bools, numbers,
    strings, and lists or tuples of at most 16 of them; tensors, nested results and the names in skip are left out.

        >>> @dataclasses.dataclass
        ... class R:
        ...     rate: float
        ...     cells: tuple
        ...     rows: tuple
        >>> fields(R(0.5, ("lstm", "gru"), tuple(range(40))))
        {'rate': 0.5, 'cells': ('lstm', 'gru')}
    """
    items = (obj.items() if isinstance(obj, Mapping)
             else ((f.name, getattr(obj, f.name)) for f in dataclasses.fields(obj)))
    skip = set(skip)
    out = {}
    for name, v in items:
        if name in skip:
            continue
        if isinstance(v, _SCALARS) or (isinstance(v, (list, tuple)) and len(v) <= 16
                                       and all(isinstance(x, _SCALARS) for x in v)):
            out[str(name)] = v
    return out


def _close(fig) -> None:
    """Forget a rendered figure: out of pyplot's registry if it is a pyplot figure (only then is pyplot loaded), and
    its artists cleared."""
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is not None and getattr(fig.canvas, "manager", None) is not None:
        plt.close(fig)
    fig.clear()


def figure_png(fig, dpi: int = DPI) -> bytes:
    """The PNG bytes of a matplotlib Figure (no Software text, so no address in the file); the figure is closed."""
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    finally:
        _close(fig)
    return buf.getvalue()


def _figure_html(figure, title: str) -> str:
    if figure is None:
        return ""
    try:
        fig = figure() if callable(figure) else figure
    except InputError as e:  # the plot function has nothing to draw: say so where the figure would be
        return f'<div style="color:#777;font-style:italic">figure: {html.escape(str(e))}</div>'
    data = base64.b64encode(figure_png(fig)).decode("ascii")
    return (f'<img class="rnnscope-figure" alt="{html.escape(title, quote=True)}" src="data:image/png;base64,{data}" '
            f'style="max-width:100%;height:auto;flex:0 1 auto;min-width:0">')


def _rows_html(rows: Sequence[Sequence]) -> str:
    head, *body = rows
    out = ['<table class="rnnscope-rows" style="border-collapse:collapse;margin-top:6px">',
           "<thead><tr>" + "".join(_cell("th", h) for h in head) + "</tr></thead><tbody>"]
    out += ["<tr>" + "".join(_cell("td", v, str(h)) for h, v in zip(head, r)) + "</tr>" for r in body]
    return "\n".join(out + ["</tbody></table>"])


def html_card(title: str, facts: Mapping, figure: Callable | object | None = None, *,
              rows: Sequence[Sequence] | None = None, notes: Iterable[str] = ()) -> str:
    """The HTML card of a result.

    title   one line (bold)
    facts   {name: value}: a two-column table, each value cell with data-key and data-value (the JSON value)
    figure  a matplotlib Figure, or a function of no arguments that returns one (called here: an InputError it
            raises becomes a note in the figure's place); embedded once as a base64 PNG, then closed
    rows    a table with its header first ([[head...], [row...], ...]; none shown without a row); value cells
            carry data-key (the column's header) and data-value like the facts
    notes   sentences shown as a list under the rest (warnings, advice), empty ones skipped
    """
    facts_html = ('<table class="rnnscope-facts" style="border-collapse:collapse;flex:0 0 auto">'
                  + "".join(f"<tr>{_cell('th', k)}{_cell('td', v, str(k))}</tr>" for k, v in facts.items())
                  + "</table>")
    parts = [f'<div class="rnnscope-card" style="{_CARD}">',
             f'<div style="font-weight:bold;font-size:13px;margin-bottom:6px">{html.escape(title)}</div>',
             '<div style="display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start">',
             facts_html, _figure_html(figure, title), "</div>"]
    if rows and len(rows) > 1:  # a header and at least one row
        parts.append(_rows_html(rows))
    notes = [n for n in notes if n]
    if notes:
        parts.append('<ul style="margin:6px 0 0 0;padding-left:18px">'
                     + "".join(f"<li>{html.escape(str(n))}</li>" for n in notes) + "</ul>")
    parts.append("</div>")
    return "\n".join(p for p in parts if p)
