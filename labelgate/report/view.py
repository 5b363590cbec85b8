"""The run report's view model, shared by ``report.md`` and ``report.html``, and the
formatting helpers the section builders use.

Each part of ``report.json`` (see ``labelgate.report.build_report``) is turned into one
`Section`, once: a title and an ordered list of `Part` (text, facts, tables, notes, plots,
...). The builders are in ``labelgate.report.sections``, one module per section family, and
``labelgate.report.sections.build_sections`` lists every section of a report in order;
``labelgate.report.render_markdown`` and ``labelgate.report.html.render_html`` render that
list with the jinja2 templates ``report.md.j2`` and ``report.html.j2``
(``labelgate.report.render``); neither writes a section of its own. Sections, in order:

1. gate checks; rows (input = valid + quarantined + excluded, checked); contract failures
   (quarantine); classes;
2. each stage section whose key is in the report: ``review``, ``sft``, ``label_issues``,
   ``agreement``, ``duplicates`` and ``leakage``, ``splits``, ``published``;
3. trends (only with a ``metrics_history`` frame), all metrics, any other key (scalars as
   facts, flat records as tables, anything deeper as JSON, so nothing a stage adds is
   hidden), and paths.

Section shapes are read tolerantly (a missing optional key shows as "—" or is left out), so
a stage that adds a key does not break a report; scalar keys a builder does not know are
shown as facts under the section.

This module holds the view model (`Cell`, `Table`, `Plot`, `Part`, `Section`, `Fact`), the
formatting helpers (`fmt_num`, `fmt_pct`, `excerpt`, `md_cell`, and the private helpers the
builders share) and the sentences ``labelgate.report`` also uses (`csv_lines_text`,
`consensus_applied_text`). It imports no section module; the names that moved out of it
(the section views, `build_sections`, `render_template`, ...) are still importable from here,
each imported from its module on first use (`__getattr__`).

Plots are `Plot` values drawn only when a renderer shows them (the HTML page), so this
module imports neither matplotlib nor ``labelgate.report`` / ``labelgate.report.html``.
Escaping is the renderer's: jinja2's autoescape for HTML, the ``md`` filters (`md_cell`)
for Markdown, which leave no pipe, newline or raw HTML in a value.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from markupsafe import Markup

# names that moved to the section and render modules, still importable from here: each is
# imported from its module on first use, so this module imports none of them (they import it)
_MOVED: dict[str, tuple[str, ...]] = {
    "labelgate.report.render": ("md_code", "md_row", "md_rule", "render_template"),
    "labelgate.report.sections": ("SECTION_VIEWS", "SectionView", "build_sections",
                                  "stage_sections"),
    "labelgate.report.sections.run": (
        "TREND_METRICS", "TREND_RUNS", "classes_view", "gate_view", "header", "kpis",
        "metrics_view", "paths_view", "quarantine_view", "rows_view", "trends_view"),
    "labelgate.report.sections.review": ("review_view", "sft_view"),
    "labelgate.report.sections.label_issues": ("label_issues_view",),
    "labelgate.report.sections.agreement": ("COEFFICIENTS", "agreement_view"),
    "labelgate.report.sections.duplicates": ("duplicates_view",),
    "labelgate.report.sections.splits": ("published_view", "splits_view"),
    "labelgate.report.sections.generic": ("generic_view",),
}
_MOVED_TO = {name: module for module, names in _MOVED.items() for name in names}

__all__ = [
    "CELL_MAX",
    "TABLE_ROWS",
    "TEXT_EXCERPT",
    "Cell",
    "Fact",
    "Part",
    "Plot",
    "Section",
    "Table",
    "consensus_applied_text",
    "csv_lines_text",
    "excerpt",
    "fmt_num",
    "fmt_pct",
    "md_cell",
    *_MOVED_TO,
]

TEXT_EXCERPT = 240
TABLE_ROWS = 50
CELL_MAX = 80  # a Markdown table cell is cut to this many characters

Fact = tuple[str, str, str]  # (label, value, css class)


# ------------------------------------------------------------------------ view model


@dataclass(frozen=True)
class Cell:
    """One table cell; `text` is escaped by the template, `title` becomes a tooltip."""

    text: str
    cls: str = ""
    title: str = ""


@dataclass(frozen=True)
class Table:
    """A table: header names, rows of cells, which columns are numeric (right-aligned),
    a css class per row, a caption (a ``###`` heading in Markdown), and whether it starts
    folded (HTML ``<details>``; Markdown shows its first rows)."""

    headers: Sequence[str]
    rows: Sequence[Sequence[Cell]]
    numeric: frozenset[int] = frozenset()
    row_classes: Sequence[str] = ()
    caption: str = ""
    collapsed: bool = False  # inside <details>, for long tables


@dataclass(frozen=True)
class Plot:
    """A plot, drawn only when a renderer shows it (Markdown leaves plots out).

    `kind` names a function of ``labelgate.report.plots``, called with `args` and `kwargs`; it is
    imported then, so building the view needs no matplotlib. `fail_colors` draws every bar
    in the failure colour.
    """

    kind: str
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    fail_colors: bool = False

    def svg(self) -> Markup:
        """Draw the plot.

        Returns
        -------
        Markup
            The ``<svg>`` element; matplotlib has escaped every text in it.
        """
        from labelgate.report import plot_cache, plots

        kwargs = dict(self.kwargs)
        if self.fail_colors:
            kwargs["colors"] = [plots.FAIL_COLOR] * len(self.args[0])
        return Markup(plot_cache.draw(self.kind, self.args, kwargs))


def _plot(kind: str, *args: Any, fail_colors: bool = False, **kwargs: Any) -> Plot:
    """A `Plot` of ``labelgate.report.plots.<kind>(*args, **kwargs)``."""
    return Plot(kind, args, kwargs, fail_colors)


@dataclass(frozen=True)
class Part:
    """A piece of a section, rendered in order: heading, text, facts, plots, table, notes.

    A ``details`` part is a folded list of (label, value) `facts` under the summary `text`
    (HTML ``<details>``; Markdown: the summary and a plain list)."""

    kind: Literal["heading", "text", "facts", "plots", "table", "notes", "pre", "rowbar",
                  "details"]
    text: str = ""
    facts: Sequence[Fact] = ()
    plots: Sequence[Plot] = ()
    table: Table | None = None
    notes: Sequence[str] = ()  # a "plots" part's notes are about the plots: HTML only
    segments: Sequence[tuple[str, int]] = ()  # rowbar: (css class, count)


@dataclass
class Section:
    """One report section: an anchor id, a title, its parts and an ok/bad badge."""

    id: str
    title: str
    parts: list[Part] = field(default_factory=list)
    status: str = ""  # "ok" | "bad" | "": a badge next to the title

    def add(self, part: Part) -> Section:
        """Append `part`; returns the section, for chaining."""
        self.parts.append(part)
        return self

    def table(self, table: Table | None) -> Section:
        """Append `table` as a part unless it is None; returns the section."""
        return self if table is None else self.add(Part("table", table=table))


# ------------------------------------------------------------------------ formatting


def fmt_num(value: object) -> str:
    """Counts with thousands separators, other floats to 4 significant digits.

    Parameters
    ----------
    value
        Any value; None and non-finite floats show as "—", booleans as yes/no.

    Returns
    -------
    str
        The value as people read it.
    """
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "—"
        if value.is_integer() and abs(value) < 1e15:
            return f"{int(value):,}"
        return f"{value:.4g}"
    return str(value)


def fmt_pct(value: object, digits: int = 2) -> str:
    """A share as a percentage with `digits` decimals; "—" if it is not a finite number."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "—"
    if not math.isfinite(value):
        return "—"
    return f"{value:.{digits}%}"


def excerpt(text: object, limit: int = TEXT_EXCERPT) -> str:
    """``str(text)`` cut to `limit` characters with an ellipsis (None: empty)."""
    s = "" if text is None else str(text)
    return s if len(s) <= limit else s[: limit - 1] + "…"


def md_cell(value: object, *, max_len: int | None = CELL_MAX) -> str:
    """A value safe inside a Markdown table cell or paragraph.

    Parameters
    ----------
    value
        Any value; booleans read yes/no, None is empty.
    max_len
        Cut to this many characters (None: not cut, for prose such as notes).

    Returns
    -------
    str
        The text with no pipe, newline, backtick or raw HTML (``<`` ``>`` ``&`` become
        entities, so ``<script>`` never reaches the Markdown as markup).
    """
    if isinstance(value, bool):  # people read yes/no, not Python's True/False
        text = "yes" if value else "no"
    else:
        text = "" if value is None else str(value)
    if max_len is not None and len(text) > max_len:
        text = text[: max_len - 1] + "…"
    return (
        text.replace("\\", "\\\\")
        .replace("|", "\\|")
        .replace("\r", " ")
        .replace("\n", " ")
        .replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace("`", "\\`")
    )


def _float(value: object) -> float | None:
    """A finite number as float; None for anything else (bools, NaN, text)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    f = float(value)
    return f if math.isfinite(f) else None


def _first(d: Mapping[str, Any], *keys: str) -> Any:
    """The value of the first of `keys` present and not None in `d`."""
    for k in keys:
        if k in d and d[k] is not None:
            return d[k]
    return None


def _cells(values: Iterable[object]) -> list[Cell]:
    """Table cells: `Cell` values as they are, anything else through `fmt_num`."""
    return [c if isinstance(c, Cell) else Cell(fmt_num(c)) for c in values]


def _records(
    items: object,
    headers: Sequence[str],
    row: Callable[[Mapping[str, Any]], Sequence[object]],
    *,
    caption: str = "",
    numeric: Iterable[int] = (),
    limit: int | None = None,
    collapsed: bool = False,
    row_class: Callable[[Mapping[str, Any]], str] | None = None,
) -> Table | None:
    """A table with one row per record of `items` (a list of dicts); None if there is none.

    Parameters
    ----------
    items
        The records; anything else counts as none.
    headers
        Column names.
    row
        A record's cells: `Cell` values as they are, anything else through `fmt_num`.
    caption, numeric, collapsed
        As for `Table`.
    limit
        At most this many records.
    row_class
        A record's row css class (``bad`` marks it).

    Returns
    -------
    Table | None
        The table, or None for no records.
    """
    records = _as_rows(items)[:limit]
    if not records:
        return None
    return Table(headers=headers, rows=[_cells(row(r)) for r in records],
                 numeric=frozenset(numeric), caption=caption, collapsed=collapsed,
                 row_classes=[row_class(r) for r in records] if row_class else ())


def _label(key: object) -> str:
    """A report key as people read it: underscores become spaces."""
    return str(key).replace("_", " ")


def _facts(section: Mapping[str, Any], skip: Iterable[str]) -> list[Fact]:
    """Scalar keys of a section not rendered elsewhere, as (key, value, '') facts."""
    skipped = set(skip)
    out = []
    for k, v in section.items():
        if k in skipped:
            continue
        if _is_scalar(v):
            out.append((_label(k), fmt_num(v), ""))
        elif isinstance(v, Mapping) and v and all(_is_scalar(x) for x in v.values()):
            out.append((_label(k), ", ".join(f"{kk} {fmt_num(x)}" for kk, x in v.items()), ""))
    return out


def _as_rows(items: object) -> list[Mapping[str, Any]]:
    """The dict items of a list (anything else: no rows)."""
    return [r for r in items if isinstance(r, Mapping)] if isinstance(items, list) else []


def _mapping(value: object) -> Mapping[str, Any] | None:
    """`value` if it is a mapping, else None."""
    return value if isinstance(value, Mapping) else None


def _is_scalar(value: object) -> bool:
    """None, text, a number or a bool."""
    return value is None or isinstance(value, str | int | float | bool)


def _is_fact(value: object) -> bool:
    """A scalar, or a short list of scalars (shown as one comma-separated fact)."""
    return _is_scalar(value) or (
        isinstance(value, list) and len(value) <= 20 and all(_is_scalar(v) for v in value)
    )


def _fact(value: object) -> str:
    """A fact's value: a list comma-separated ("none" when empty), else `fmt_num`."""
    if isinstance(value, list):
        return ", ".join(fmt_num(v) for v in value) or "none"
    return fmt_num(value)


def _matrix(cells: Sequence[Mapping[str, Any]], row_key: str, col_key: str,
            value_key: str) -> tuple[list[Any], list[Any], list[list[float]]]:
    """Long-form cells as a square matrix over one shared label order for both axes."""
    rows: list[Any] = []
    cols: list[Any] = []
    for c in cells:
        if c.get(row_key) not in rows:
            rows.append(c.get(row_key))
        if c.get(col_key) not in cols:
            cols.append(c.get(col_key))
    labels = rows + [c for c in cols if c not in rows]  # one shared order for both axes
    index = {v: i for i, v in enumerate(labels)}
    m = [[0.0] * len(labels) for _ in labels]
    for c in cells:
        m[index[c.get(row_key)]][index[c.get(col_key)]] += _float(c.get(value_key)) or 0.0
    return labels, labels, m


# ------------------------------------------------------------------------ sentences


def csv_lines_text(sources: Sequence[Mapping[str, Any]]) -> list[str]:
    """One sentence per CSV input file: the arithmetic of its physical lines.

    Parameters
    ----------
    sources
        report.json's ``sources``; those without ``lines`` (not CSV) are skipped.

    Returns
    -------
    list[str]
        ``"<file>: L lines = H header + R in N records + B blank"``, plus the line numbers
        of its rejected records when there are any.
    """
    out = []
    for s in sources:
        if s.get("lines") is None:
            continue
        lines, records, blank = int(s["lines"]), int(s["record_lines"]), int(s["blank_lines"])
        text = (f"{Path(str(s['file'])).name}: {lines:,} lines = {lines - records - blank:,} "
                f"header + {records:,} in {int(s['rows']) + int(s['rejected']):,} records + "
                f"{blank:,} blank")
        shown = [int(n) for n in s.get("rejected_at") or []]
        if shown:
            more = int(s["rejected_lines"]) - len(shown)
            text += (f"; rejected records cover {int(s['rejected_lines']):,} line(s): "
                     + ", ".join(map(str, shown)) + (f" and {more:,} more" if more else ""))
        out.append(text)
    return out


def consensus_applied_text(ag: Mapping[str, Any]) -> str:
    """Whether the consensus became the training label (``agreement.apply``), with counts.

    Parameters
    ----------
    ag
        report.json's ``agreement`` section.

    Returns
    -------
    str
        ``"applied to the items: C labels changed, K confirmed, N items kept their own
        label"``, or that it was not applied.
    """
    t = ag.get("training_label") or {}
    if not ag.get("consensus_applied_to_items") or not t.get("applied"):
        return "not applied to the items: `agreement.apply` is false"
    if t.get("label_from_consensus"):
        return (f"the items' only label: {t.get('labeled', 0)} items labeled, "
                f"{t.get('without_consensus', 0)} without a consensus quarantined")
    return (f"applied to the items: {t.get('changed', 0)} labels changed, "
            f"{t.get('confirmed', 0)} confirmed, {t.get('without_consensus', 0)} items kept "
            "their own label")


# ------------------------------------------------------------------------ moved names


def __getattr__(name: str) -> Any:
    """A name that moved out of this module (`_MOVED`), from its module.

    Parameters
    ----------
    name
        The attribute asked for.

    Returns
    -------
    Any
        The object, imported from the module it is defined in.

    Raises
    ------
    AttributeError
        For a name that is not one of them.
    """
    module = _MOVED_TO.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
