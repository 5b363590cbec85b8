"""The run report's view model, shared by ``report.md`` and ``report.html``.

Each part of ``report.json`` (see ``labelgate.report.build_report``) is turned into one
`Section` here, once: a title and an ordered list of `Part` (text, facts, tables, notes,
plots, ...). ``labelgate.report.render_markdown`` and ``labelgate.report.html.render_html``
render the same list of Sections with the jinja2 templates ``report.md.j2`` and
``report.html.j2``; neither writes a section of its own. Sections, in order:

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

Plots are `Plot` values drawn only when a renderer shows them (the HTML page), so this
module imports neither matplotlib nor ``labelgate.report`` / ``labelgate.report.html``.
Escaping is the renderer's: jinja2's autoescape for HTML, the ``md`` filters (`md_cell`)
for Markdown, which leave no pipe, newline or raw HTML in a value.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import polars as pl
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from labelgate.stages.label_issues.detect import JOINT_COUNTED_FILTERS

TREND_RUNS = 30
TEXT_EXCERPT = 240
TABLE_ROWS = 50
CELL_MAX = 80  # a Markdown table cell is cut to this many characters
# (title, candidate metric names in metrics_history, shown as a percentage)
TREND_METRICS: tuple[tuple[str, tuple[str, ...], bool], ...] = (
    ("quarantine rate", ("quarantine_rate",), True),
    ("label issue rate", ("label_issue_rate", "label_issues.rate",
                          "label_issues.label_issue_rate"), True),
    ("Krippendorff's α", ("krippendorff_alpha", "agreement.krippendorff_alpha"), False),
    ("valid rows", ("rows_valid",), False),
    ("label health score", ("label_health_score", "label_issues.health_score",
                            "health_score"), False),
    ("split leakage", ("split_leakage", "leakage.exact_pairs"), False),
)
COEFFICIENTS = (  # agreement coefficients shown in reports: (metric key, name)
    ("krippendorff_alpha", "Krippendorff's α"),
    ("percent_agreement", "percent agreement"),
    ("fleiss_kappa", "Fleiss' κ"),
    ("fleiss_kappa_generalized", "Fleiss' κ (unequal counts)"),
    ("mean_cohen_kappa", "mean Cohen's κ (pairs)"),
    ("gwet_ac1", "Gwet's AC1"),
    ("gwet_ac2", "Gwet's AC2 (weighted)"),
)
# leakage counts (labelgate.stages.splits.leakage); any above 0 is a leak
_LEAK_KEYS = ("exact_pairs", "near_pairs", "group_overlap", "groups_across_splits",
              "clusters_across_splits", "group_rows_across_splits", "total")

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
        from labelgate.report import plots

        kwargs = dict(self.kwargs)
        if self.fail_colors:
            kwargs["colors"] = [plots.FAIL_COLOR] * len(self.args[0])
        draw: Callable[..., str] = getattr(plots, self.kind)
        return Markup(draw(*self.args, **kwargs))


def _plot(kind: str, *args: Any, fail_colors: bool = False, **kwargs: Any) -> Plot:
    """A `Plot` of ``labelgate.report.plots.<kind>(*args, **kwargs)``."""
    return Plot(kind, args, kwargs, fail_colors)


@dataclass(frozen=True)
class Part:
    """A piece of a section, rendered in order: heading, text, facts, plots, table, notes."""

    kind: Literal["heading", "text", "facts", "plots", "table", "notes", "pre", "rowbar"]
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
    return (f"applied to the items: {t.get('changed', 0)} labels changed, "
            f"{t.get('confirmed', 0)} confirmed, {t.get('without_consensus', 0)} items kept "
            "their own label")


# ------------------------------------------------------------------------ header


def header(report: Mapping[str, Any]) -> dict[str, Any]:
    """The page header: dataset, run, spec, times, the verdict and the failed checks."""
    gate = report.get("gate") or {}
    checks = _as_rows(gate.get("checks"))
    failed = [c for c in checks if not c.get("passed")]
    started, finished = report.get("started_at"), report.get("finished_at")
    duration = ""
    try:
        seconds = (datetime.fromisoformat(str(finished))
                   - datetime.fromisoformat(str(started))).total_seconds()
        duration = f"{seconds:,.0f} s"
    except (TypeError, ValueError):
        pass
    return {
        "dataset": str(report.get("dataset", "?")),
        "run_id": str(report.get("run_id", "?")),
        "spec_path": str(report.get("spec_path", "")),
        "spec_hash": str(report.get("spec_hash", "")),
        "started_at": str(started or ""),
        "finished_at": str(finished or ""),
        "duration": duration,
        "passed": bool(gate.get("passed")),
        "has_gate": "gate" in report,
        "summary": str(gate.get("summary", "")),
        "n_checks": len(checks),
        "failed": [_check_view(c) for c in failed],
    }


def _comparator(check: Mapping[str, Any]) -> str:
    """≤ for a max_ check, ≥ for a min_ check."""
    name = str(check.get("name", ""))
    return "≤" if name.startswith("max_") else "≥" if name.startswith("min_") else "vs"


def _check_view(check: Mapping[str, Any]) -> dict[str, str]:
    """A gate check's fields as display text."""
    return {
        "name": str(check.get("name", "")),
        "metric": str(check.get("metric", "")),
        "observed": fmt_num(check.get("observed")),
        "threshold": fmt_num(check.get("threshold")),
        "op": _comparator(check),
        "message": str(check.get("message", "")),
    }


def kpis(report: Mapping[str, Any]) -> list[Fact]:
    """The headline numbers: valid rows, quarantine rate, and each stage's main figure."""
    rows = report.get("rows") or {}
    metrics = report.get("metrics") or {}
    out: list[Fact] = [
        ("valid rows", fmt_num(rows.get("valid")), ""),
        ("quarantine rate", fmt_pct(metrics.get("quarantine_rate")), ""),
    ]
    li = _mapping(report.get("label_issues"))
    if li is not None:
        out.append(("label issue rate", fmt_pct(li.get("rate")), ""))
    ag = _mapping(report.get("agreement"))
    if ag is not None:
        out.append(("Krippendorff's α",
                    fmt_num(_float((ag.get("metrics") or {}).get("krippendorff_alpha"))), ""))
    lk = _mapping(report.get("leakage"))
    if lk is not None:
        total = int(_float(lk.get("total")) or sum(
            _float(lk.get(k)) or 0.0
            for k in ("exact_pairs", "near_pairs", "group_overlap", "groups_across_splits")))
        out.append(("split leakage", fmt_num(total), "bad" if total else ""))
    return out


# ------------------------------------------------------------------------ fixed sections


def gate_view(report: Mapping[str, Any]) -> Section | None:
    """The gate checks, failed first (None when the report has no gate)."""
    gate = _mapping(report.get("gate"))
    if gate is None:
        return None
    checks = sorted(_as_rows(gate.get("checks")), key=lambda c: bool(c.get("passed")))
    sec = Section("gate", "Gate checks", status="ok" if gate.get("passed") else "bad")
    if not checks:
        return sec.add(Part("text", text="No gate thresholds in the spec."))

    def row(check: Mapping[str, Any]) -> list[Cell]:
        """A check's cells."""
        v = _check_view(check)
        return [Cell(v["name"], "mono"), Cell(v["metric"], "mono"), Cell(v["observed"]),
                Cell(v["op"]), Cell(v["threshold"]),
                Cell("pass", "pass") if check.get("passed") else Cell("FAIL", "fail"),
                Cell(v["message"])]

    return sec.table(_records(
        checks, ["check", "metric", "observed", "", "threshold", "result", "message"], row,
        numeric={2, 4}, row_class=lambda c: "" if c.get("passed") else "bad"))


def rows_view(report: Mapping[str, Any]) -> Section:
    """input = valid + quarantined + excluded, checked; CSV line counts; the input files."""
    rows = report.get("rows") or {}
    n_in = int(rows.get("input") or 0)
    parts = [("valid", int(rows.get("valid") or 0)),
             ("quarantined", int(rows.get("quarantined") or 0)),
             ("excluded", int(rows.get("excluded") or 0))]
    total = sum(n for _, n in parts)
    balanced = bool(rows.get("balanced", n_in == total))
    sec = Section("rows", "Rows", status="ok" if balanced else "bad")
    sec.add(Part("text", text=(
        f"input {n_in:,} = valid {parts[0][1]:,} + quarantined {parts[1][1]:,} + "
        f"excluded {parts[2][1]:,}"
        + (" — adds up" if balanced else f" — DOES NOT ADD UP (sum is {total:,})")
    )))
    for text in csv_lines_text(_as_rows(report.get("sources"))):
        sec.add(Part("text", text=text))
    sec.add(Part("rowbar", segments=parts))
    sec.add(Part("facts", facts=[
        (name, f"{n:,} ({fmt_pct(n / n_in if n_in else 0.0)})", name if n else "")
        for name, n in parts
    ]))
    sec.table(_records(
        report.get("exclusions"), ["exclusion policy", "rows", "reason"],
        lambda e: [Cell(str(e.get("policy", ""))), e.get("rows"), Cell(str(e.get("reason", "")))],
        numeric={1}))
    return sec.table(_records(
        report.get("sources"),
        ["source", "file", "batch", "rows", "unparseable", "ingest reused", "contract cached"],
        lambda s: [Cell(str(s.get("source", ""))),
                   Cell(Path(str(s.get("file", ""))).name, "mono", str(s.get("file", ""))),
                   Cell(str(s.get("batch", ""))[:12], "mono", str(s.get("batch", ""))),
                   s.get("rows"), s.get("rejected"), s.get("reused"), s.get("contract_cached")],
        caption="Input files (lake batches)", numeric={3, 4},
        row_class=lambda s: "bad" if s.get("rejected") else ""))


def quarantine_view(report: Mapping[str, Any]) -> Section | None:
    """Contract failures: by column and check (bars and table), then the first cells."""
    q = _mapping(report.get("quarantine"))
    if q is None:
        return None
    n = int(q.get("rows") or 0)
    sec = Section("contract", "Contract failures (quarantine)", status="bad" if n else "ok")
    if not n:
        return sec.add(Part("text", text="No row failed the contract."))
    by = _as_rows(q.get("by_column_check"))
    sec.add(Part("text", text=f"{n:,} row(s) quarantined; a row failing several checks is "
                              "counted once here and listed once per failure below."))
    if by:
        labels = [f"{r.get('column')} · {r.get('check')}" for r in by[:20]]
        sec.add(Part("plots", plots=[_plot(
            "bar_chart", labels, [_float(r.get("failures")) for r in by[:20]],
            title="Failures by column · check", xlabel="failing cells", salt="quarantine",
            fail_colors=True)]))
        sec.table(_records(
            by, ["column", "check", "failures", "example reason"],
            lambda r: [Cell(str(r.get("column")), "mono"), Cell(str(r.get("check")), "mono"),
                       r.get("failures"), Cell(excerpt(r.get("example")))],
            numeric={2}))
    # people know the file, not the batch hash: show its name, the hash as a tooltip
    file_of = {str(s.get("batch")): Path(str(s.get("file", ""))).name
               for s in _as_rows(report.get("sources"))}
    examples = _as_rows(q.get("examples"))
    return sec.table(_records(
        examples, ["source", "file", "row", "id", "column", "check", "value", "reason"],
        lambda e: [Cell(str(e.get("source", ""))),
                   Cell(file_of.get(str(e.get("batch", ""))) or str(e.get("batch", ""))[:8],
                        "mono", f"batch {e.get('batch', '')}"),
                   e.get("row"), Cell(excerpt(e.get("id"), 40), "mono"),
                   Cell(str(e.get("column", "")), "mono"), Cell(str(e.get("check", "")), "mono"),
                   Cell(excerpt(e.get("failure_value"), 80), "text",
                        excerpt(e.get("failure_value"), 1000)),
                   Cell(excerpt(e.get("reason")))],
        caption=f"First {len(examples)} failing cells", numeric={2}))


def classes_view(report: Mapping[str, Any]) -> Section | None:
    """Valid rows per class, against the gate's ``min_rows_per_class`` when it has one."""
    classes = _as_rows(report.get("classes"))
    if not classes:
        return None
    total = sum(int(c.get("rows") or 0) for c in classes)
    threshold = next((_float(c.get("threshold")) for c in _as_rows(
        (report.get("gate") or {}).get("checks")) if c.get("name") == "min_rows_per_class"),
        None)
    sec = Section("classes", "Classes (valid rows)")
    sec.add(Part("plots", plots=[_plot(
        "bar_chart", [c.get("label") for c in classes], [_float(c.get("rows")) for c in classes],
        title="Rows per class", xlabel="valid rows", reference=threshold, salt="classes")],
        notes=[] if threshold is None else [
            f"dashed line: gate.min_rows_per_class {fmt_num(threshold)}"]))
    return sec.table(_records(
        classes, ["label", "rows", "share"],
        lambda c: [c.get("label"), c.get("rows"),
                   Cell(fmt_pct(int(c.get("rows") or 0) / total if total else 0.0, 1))],
        numeric={1, 2},
        row_class=lambda c: "bad" if threshold is not None
        and (_float(c.get("rows")) or 0) < threshold else ""))


# ------------------------------------------------------------------------ stage sections


def review_view(rv: Mapping[str, Any]) -> Section:
    """Reviewer corrections applied this run (``labelgate review import`` overlays)."""
    def n(key: str) -> str:
        """A count of the section, 0 when absent."""
        return fmt_num(rv.get(key, 0))

    sec = Section("x-review", "Review")
    sec.add(Part("text", text=(
        f"{n('n_ids_corrected')} rows carry a reviewer's label ({n('n_changed')} changed, "
        f"{n('n_confirmed')} confirmed) from {n('n_corrections')} corrections in the "
        f"overlay; {n('n_not_in_valid')} corrected ids are not among this run's valid rows, "
        f"{n('n_stale')} corrections were made against a source label that has changed "
        "since.")))
    sec.table(_records(
        rv.get("reviewer_gold_accuracy"), ["reviewer", "gold items", "correct", "accuracy"],
        lambda a: [Cell(excerpt(a.get("reviewer"), 40), "mono"), a.get("n_gold"),
                   a.get("n_correct"), _float(a.get("accuracy"))],
        caption="Reviewer accuracy on gold items", numeric={1, 2, 3}))
    sec.parts += _rest_parts(rv, known=(
        "n_ids_corrected", "n_changed", "n_confirmed", "n_corrections", "n_not_in_valid",
        "n_stale", "reviewer_gold_accuracy"))
    return sec


def sft_view(sft: Mapping[str, Any]) -> Section:
    """Instruction data: rows quarantined per SFT check, and conflicting responses."""
    sec = Section("x-sft", "Instruction data (SFT checks)")
    sec.add(Part("text", text=(
        f"{fmt_num(sft.get('quarantined_rows'))} rows quarantined by the SFT checks (the "
        "rows and reasons are among the contract failures above).")))
    sec.table(_records(
        sft.get("by_check"), ["check", "rows", "example reason"],
        lambda c: [Cell(str(c.get("check", "")), "mono"), c.get("rows"),
                   Cell(excerpt(c.get("example")))], numeric={1}))
    c = _mapping(sft.get("conflicts"))
    if c is not None:
        action = ("quarantined (sft.quarantine_conflicts)" if c.get("quarantined")
                  else "reported only")
        sec.add(Part("text", text=(
            f"Conflicting responses (same prompt, different responses): "
            f"{fmt_num(c.get('rows'))} rows in {fmt_num(c.get('groups'))} groups, {action}; "
            "DuckDB table conflicting_responses.")))
        sec.table(_records(
            c.get("examples"), ["group", "row", "id", "prompt", "response"],
            lambda e: [e.get("conflict"), e.get("row"), Cell(excerpt(e.get("id"), 40), "mono"),
                       Cell(excerpt(e.get("prompt")), "text"),
                       Cell(excerpt(e.get("response")), "text")],
            caption="Conflicting responses", numeric={0, 1}))
    sec.parts += _rest_parts(sft, known=("quarantined_rows", "by_check", "conflicts"))
    return sec


def label_issues_view(li: Mapping[str, Any], frame: pl.DataFrame | None = None) -> Section:
    """Label issues: the figures, how they were found, plots, per class, noise, top rows.

    Parameters
    ----------
    li
        report.json's ``label_issues`` section.
    frame
        The per-row label-issue table (``label_quality``, optionally ``is_label_issue``)
        for the quality histogram; None: no histogram.

    Returns
    -------
    Section
        The section ``label-issues``.
    """
    texts, used = _label_issues_texts(li)
    sec = Section("label-issues", "Label issues")
    sec.add(Part("facts", facts=[
        ("method", fmt_num(li.get("method")), ""),
        *([("cleanlab path", fmt_num(li.get("path")), "")] if li.get("path") else []),
        ("rows flagged", fmt_num(li.get("count")), ""),
        ("issue rate", fmt_pct(_float(li.get("rate"))), ""),
        ("health score", fmt_num(_float(li.get("health_score"))), ""),
        *_facts(li, skip=("method", "path", "count", "rate", "health_score", *used)),
    ]))
    for text in texts:
        sec.add(Part("text", text=text))
    figs = _label_issues_plots(li, frame)
    if figs:
        sec.add(Part("plots", plots=figs))
    for table in _label_issue_tables(li):
        sec.table(table)
    return sec


def _label_issue_tables(li: Mapping[str, Any]) -> list[Table | None]:
    """Per class, the noise matrix's largest cells, CROWDLAB vs the agreement stage, and
    the most suspicious rows."""
    top = _as_rows(li.get("top"))
    return [
        _records(li.get("per_class"),
                 ["class", "rows", "issues", "issue rate", "mean label quality"],
                 lambda c: [c.get("class"), c.get("rows"), c.get("issues"),
                            Cell(fmt_pct(c.get("issue_rate"))),
                            _float(c.get("mean_label_quality"))],
                 numeric={1, 2, 3, 4}),
        _noise_table(li),
        _records(li.get("consensus_comparison"), ["vs", "items", "differ", "share"],
                 lambda c: [c.get("b"), c.get("items"), c.get("differ"),
                            Cell(fmt_pct(c.get("share")))],
                 caption="CROWDLAB consensus vs the agreement stage's", numeric={1, 2, 3}),
        _records(top, ["id", "given", "suggested", "quality", "text"],
                 lambda r: [Cell(excerpt(r.get("id"), 40), "mono"),
                            _first(r, "given", "given_label"),
                            _first(r, "suggested", "suggested_label"),
                            _float(_first(r, "quality", "label_quality")),
                            Cell(excerpt(r.get("text")), "text", excerpt(r.get("text"), 2000))],
                 caption=f"Top {len(top)} suspicious rows (lowest label quality)",
                 numeric={3}),
    ]


def _label_issues_texts(li: Mapping[str, Any]) -> tuple[list[str], set[str]]:
    """Sentences on the model, the filter, the second pass and reuse; the keys they use."""
    texts: list[str] = []
    used: set[str] = set()
    if li.get("model"):
        weights = f" ({li['embedding_model']})" if li.get("embedding_model") else ""
        texts.append(f"model (out-of-fold probabilities): {li['model']}{weights}")
        used |= {"model", "embedding_model"}
    if li.get("filter_by"):
        # only these filters take their number of flags from the joint
        counted = str(li["filter_by"]).removesuffix(" (batched)") in JOINT_COUNTED_FILTERS
        how = (f", counted by the {li['joint_calibration']} joint"
               if counted and li.get("joint_calibration") else "")
        texts.append(f"flags: filter {li['filter_by']}{how}")
        used |= {"filter_by", "joint_calibration"}
    if li.get("passes") == 2:
        texts.append(f"second pass: models trained again without {li.get('left_out')} rows "
                     "the first pass flagged, every row scored again out of fold")
        used |= {"passes", "left_out"}
    if li.get("reused_from"):
        texts.append(f"reused from run {li['reused_from']} (same rows, labels, settings and "
                     "model)")
        used.add("reused_from")
    return texts, used


def _noise_keys(cell: Mapping[str, Any]) -> tuple[str, str, str]:
    """(given, suggested-or-true, value) keys of a noise-matrix cell, in either shape."""
    given = next((k for k in ("given", "given_label") if k in cell), "given")
    other = next((k for k in ("suggested", "suggested_label", "true_label") if k in cell),
                 "suggested")
    value = next((k for k in ("rows", "count", "joint") if k in cell), "rows")
    return given, other, value


def _label_issues_plots(li: Mapping[str, Any], frame: pl.DataFrame | None) -> list[Plot]:
    """Noise matrix, quality and issue rate per class, and the label-quality histogram."""
    figs: list[Plot] = []
    noise = _as_rows(li.get("noise_matrix"))
    if noise:
        given, other, value = _noise_keys(noise[0])
        rl, cl, m = _matrix(noise, given, other, value)
        what = "estimated joint share" if value == "joint" else "rows"
        figs.append(_plot(
            "heatmap", rl, cl, m, title=f"Noise matrix ({what})",
            xlabel="true label (estimated)" if other == "true_label" else "suggested label",
            ylabel="given label", salt="noise"))
    per_class = _as_rows(li.get("per_class"))
    if per_class:
        names = [c.get("class") for c in per_class]
        figs.append(_plot(
            "bar_chart", names, [_float(c.get("mean_label_quality")) for c in per_class],
            title="Mean label quality per class", xlabel="mean label quality (0–1)",
            xlim=(0.0, 1.1), salt="li-quality"))
        figs.append(_plot(
            "bar_chart", names, [_float(c.get("issue_rate")) for c in per_class],
            title="Issue rate per class", percent=True, salt="li-rate", fail_colors=True))
    if frame is not None and "label_quality" in frame.columns and frame.height:
        flagged = (frame.get_column("is_label_issue").fill_null(False).to_numpy()
                   if "is_label_issue" in frame.columns else None)
        figs.append(_plot(
            "histogram",
            frame.get_column("label_quality").cast(pl.Float64).fill_null(float("nan"))
            .to_numpy(),
            flagged=flagged, title=f"Label quality ({frame.height:,} rows)",
            xlabel="label quality (low = likely mislabeled)", salt="li-hist"))
    return figs


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


def _noise_table(li: Mapping[str, Any]) -> Table | None:
    """The largest off-diagonal cells of the noise matrix (the heatmap, as numbers)."""
    noise = _as_rows(li.get("noise_matrix"))
    if not noise:
        return None
    given, other, value = _noise_keys(noise[0])
    off = sorted((c for c in noise
                  if c.get(given) != c.get(other) and (_float(c.get(value)) or 0.0) > 0),
                 key=lambda c: -(_float(c.get(value)) or 0.0))[:6]
    if not off:
        return None
    share = value == "joint"
    return Table(
        caption="Estimated noise (given → likely "
                + ("true, share of all rows)" if share else "suggested, rows)"),
        headers=["given", "likely true" if other == "true_label" else "suggested",
                 "share" if share else "rows"],
        rows=[[Cell(fmt_num(c.get(given))), Cell(fmt_num(c.get(other))),
               Cell(fmt_pct(c.get(value)) if share else fmt_num(c.get(value)))] for c in off],
        numeric=frozenset({2}),
    )


def agreement_view(ag: Mapping[str, Any], gate: Mapping[str, Any] | None = None) -> Section:
    """Annotator agreement: coefficients, per class, confusion, annotators, consensus.

    Parameters
    ----------
    ag
        report.json's ``agreement`` section.
    gate
        report.json's ``gate``: its Krippendorff's α threshold, if any, marks the plot and
        the coefficient row.

    Returns
    -------
    Section
        The section ``agreement``.
    """
    m: Mapping[str, Any] = ag.get("metrics") or {}
    alpha_min = next((_float(c.get("threshold")) for c in _as_rows((gate or {}).get("checks"))
                      if str(c.get("metric", "")).endswith("krippendorff_alpha")), None)
    sec = Section("agreement", "Agreement")
    sec.add(Part("text", text=_agreement_text(ag, m)))
    figs = _agreement_plots(ag, m, alpha_min)
    if figs:
        sec.add(Part("plots", plots=figs))
    for table in _agreement_tables(ag, m, alpha_min):
        sec.table(table)
    gold = [(name, _float(m.get(key))) for key, name in (
        ("majority_gold_accuracy", "majority"), ("dawid_skene_gold_accuracy", "Dawid-Skene"))]
    if any(v is not None for _, v in gold):
        sec.add(Part("facts", facts=[
            (f"gold accuracy, {name} consensus", fmt_pct(v, 1), "") for name, v in gold
        ] + [("gold items", fmt_num(m.get("n_gold_items_labelled")), "")]))
    notes = [str(n) for n in ag.get("notes") or []]
    if notes:
        sec.add(Part("notes", notes=notes))
    return sec


def _agreement_text(ag: Mapping[str, Any], m: Mapping[str, Any]) -> str:
    """The headline sentence: labels, items, annotators, and the training label."""
    method = ag.get("consensus_method")
    training = (f" Training label: {method} consensus (recorded in the consensus table; "
                f"{consensus_applied_text(ag).replace('`', '')})." if method else "")
    return (f"{fmt_num(m.get('n_labels'))} labels on {fmt_num(m.get('n_items'))} items by "
            f"{fmt_num(m.get('n_annotators'))} annotators (level {ag.get('level', '?')}; "
            f"{fmt_num(m.get('n_items_multi_label'))} items with two or more labels; "
            f"{fmt_num(m.get('n_categories'))} categories)." + training)


def _agreement_plots(ag: Mapping[str, Any], m: Mapping[str, Any],
                     alpha_min: float | None) -> list[Plot]:
    """Coefficients with the α interval, specific agreement per class, confusion heatmap."""
    figs: list[Plot] = []
    lo, hi = _float(m.get("krippendorff_alpha_ci_low")), _float(m.get("krippendorff_alpha_ci_high"))
    shown = [(name, v, key) for key, name in COEFFICIENTS
             if (v := _float(m.get(key))) is not None]
    if shown:
        figs.append(_plot(
            "interval_plot", [n for n, _, _ in shown], [v for _, v, _ in shown],
            [(lo, hi) if k == "krippendorff_alpha" else (None, None) for _, _, k in shown],
            title="Agreement coefficients", reference=alpha_min,
            reference_label=f"gate: α ≥ {fmt_num(alpha_min)}", salt="coef"))
    per_class = _as_rows(ag.get("per_class"))
    if per_class:
        figs.append(_plot(
            "bar_chart", [c.get("category") for c in per_class],
            [_float(c.get("specific_agreement")) for c in per_class],
            title="Specific agreement per class", xlabel="agreeing pairs / pairs with the class",
            xlim=(0.0, 1.1), salt="ag-class"))
    confusion = _as_rows(ag.get("confusion"))
    if confusion:
        rl, cl, mat = _matrix(confusion, "label_a", "label_b", "n_pairs")
        figs.append(_plot("heatmap", rl, cl, mat, title="Annotator confusion (label pairs)",
                          xlabel="label b", ylabel="label a", salt="ag-conf"))
    return figs


def _coefficient_table(ag: Mapping[str, Any], m: Mapping[str, Any],
                       alpha_min: float | None) -> Table:
    """Every coefficient; Krippendorff's α with its bootstrap interval, marked if below
    the gate."""
    lo, hi = _float(m.get("krippendorff_alpha_ci_low")), _float(m.get("krippendorff_alpha_ci_high"))
    settings = _mapping(ag.get("settings"))
    boot = _mapping(settings.get("bootstrap")) if settings is not None else None
    confidence = (_float(boot.get("confidence")) if boot is not None else None) or 0.95
    ci = (f"{fmt_num(lo)} – {fmt_num(hi)} ({fmt_num(m.get('krippendorff_alpha_n_boot'))} "
          "resamples)" if lo is not None else "")
    coef = [(name, _float(m.get(key)), key) for key, name in COEFFICIENTS]
    return Table(
        headers=["coefficient", "value", f"{confidence:.0%} bootstrap interval"],
        rows=[[Cell(name), Cell(fmt_num(v)), Cell(ci if key == "krippendorff_alpha" else "")]
              for name, v, key in coef],
        numeric=frozenset({1}),
        row_classes=["bad" if key == "krippendorff_alpha" and alpha_min is not None
                     and v is not None and v < alpha_min else "" for _, v, key in coef],
    )


def _agreement_tables(ag: Mapping[str, Any], m: Mapping[str, Any],
                      alpha_min: float | None) -> list[Table | None]:
    """Coefficients, per class, the most confused pairs, annotators, annotator pairs and
    the consensus methods compared."""
    return [
        _coefficient_table(ag, m, alpha_min),
        _records(ag.get("per_class"),
                 ["category", "labels", "share", "majority items", "specific agreement"],
                 lambda c: [c.get("category"), c.get("n_labels"),
                            Cell(fmt_pct(c.get("share"), 1)), c.get("n_majority"),
                            _float(c.get("specific_agreement"))],
                 caption="Per class", numeric={1, 2, 3, 4}),
        _records(_most_confused(ag), ["label a", "label b", "pairs"],
                 lambda c: [c.get("label_a"), c.get("label_b"), c.get("n_pairs")],
                 caption="Most confused category pairs (label pairs on the same item)",
                 numeric={2}),
        _annotator_table(ag),
        _records(ag.get("pairs"),
                 ["annotator a", "annotator b", "shared items", "percent agreement",
                  "Cohen's κ"],
                 lambda p: [Cell(excerpt(p.get("annotator_a"), 40), "mono"),
                            Cell(excerpt(p.get("annotator_b"), 40), "mono"), p.get("n_shared"),
                            _float(p.get("percent_agreement")), _float(p.get("cohen_kappa"))],
                 caption="Annotator pairs", numeric={2, 3, 4}, limit=200, collapsed=True),
        _records(ag.get("consensus_comparison"),
                 ["method a", "method b", "items", "differ", "share differ"],
                 lambda c: [c.get("method_a"), c.get("method_b"), c.get("n_items"),
                            c.get("n_differ"), Cell(fmt_pct(c.get("share_differ")))],
                 caption="Consensus methods compared", numeric={2, 3, 4}),
    ]


def _most_confused(ag: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The ten most confused category pairs; the counts are symmetric, (a, b) = (b, a),
    so each unordered pair is listed once, as (smaller, larger)."""
    return sorted(
        (c for c in _as_rows(ag.get("confusion"))
         if str(c.get("label_a")) < str(c.get("label_b")) and c.get("n_pairs")),
        key=lambda c: -int(c.get("n_pairs") or 0),
    )[:10]


def _annotator_table(ag: Mapping[str, Any]) -> Table | None:
    """Annotators, flagged first, then by lowest consensus agreement."""
    annotators = sorted(_as_rows(ag.get("annotators")),
                        key=lambda a: (not a.get("flagged"),
                                       _float(a.get("consensus_agreement")) or 0.0))
    with_gold = any(a.get("n_gold") for a in annotators)
    n_flag = sum(bool(a.get("flagged")) for a in annotators)
    return _records(
        annotators,
        ["annotator", "labels", "consensus agreement", "mean Cohen's κ", "Dawid-Skene accuracy",
         *(["gold items", "gold accuracy"] if with_gold else []), "flag"],
        lambda a: [Cell(excerpt(a.get("annotator"), 40), "mono"), a.get("n_labels"),
                   _float(a.get("consensus_agreement")), _float(a.get("mean_cohen_kappa")),
                   _float(a.get("dawid_skene_accuracy")),
                   *([a.get("n_gold"), _float(a.get("gold_accuracy"))] if with_gold else []),
                   Cell(str(a.get("flag_reasons") or "") if a.get("flagged") else "", "fail")],
        caption=f"Annotators ({len(annotators)}, {n_flag} flagged; flagged first, then "
                "lowest consensus agreement)",
        numeric=range(1, 7 if with_gold else 5), limit=TABLE_ROWS,
        row_class=lambda a: "bad" if a.get("flagged") else "")


def duplicates_view(dup: Mapping[str, Any] | None,
                    leak: Mapping[str, Any] | None) -> Section:
    """Leakage across splits (badge: any count above 0 is bad), then duplicate clusters."""
    sec = Section("duplicates", "Duplicates and leakage")
    if leak is not None:
        keys = tuple(k for k in _LEAK_KEYS if k in leak) or _LEAK_KEYS[:3]
        bad = any((_float(leak.get(k)) or 0) > 0 for k in keys)
        sec.status = "bad" if bad else "ok"
        sec.add(Part("heading", text="Leakage across splits"))
        sec.add(Part("facts", facts=[
            (_label(k), fmt_num(leak.get(k)), "bad" if (_float(leak.get(k)) or 0) > 0 else "good")
            for k in keys
        ] + _facts(leak, skip=keys)))
        examples = _as_rows(leak.get("examples"))
        if examples:
            cols = list(dict.fromkeys(k for e in examples for k in e))
            sec.table(Table(
                caption="Leaking pairs", headers=cols,
                rows=[[Cell(excerpt(e.get(c), 120)) for c in cols] for e in examples[:TABLE_ROWS]],
            ))
    if dup is not None:
        sec.add(Part("heading", text="Duplicates"))
        sec.add(Part("facts", facts=[
            ("duplicate rows", fmt_num(_first(dup, "count", "duplicate_rows")), ""),
            ("clusters", fmt_num(dup.get("clusters")), ""),
            *_facts(dup, skip=("count", "duplicate_rows", "clusters")),
        ]))
        sec.table(_largest_table(dup.get("largest")))
        conflicting = _as_rows(dup.get("conflicting"))
        sec.table(_records(
            conflicting, ["cluster", "rows", "labels", "example"],
            lambda c: [Cell(excerpt(c.get("cluster_id"), 40), "mono"),
                       _first(c, "size", "cluster_size"),
                       ", ".join(str(x) for x in c["labels"])
                       if isinstance(c.get("labels"), list) else c.get("labels"),
                       Cell(excerpt(c.get("example")), "text")],
            caption=f"Clusters whose members carry different labels ({len(conflicting)})",
            numeric={1}, limit=TABLE_ROWS, row_class=lambda _: "bad"))
    return sec


def _largest_table(largest: object) -> Table | None:
    """The largest duplicate clusters (records, or [cluster, size] pairs)."""
    rows: list[list[Cell]] = []
    for r in largest if isinstance(largest, list) else []:
        if isinstance(r, Mapping):
            rows.append([Cell(excerpt(r.get("cluster_id"), 40), "mono"),
                         Cell(fmt_num(_first(r, "size", "cluster_size"))),
                         Cell(excerpt(r.get("example")), "text")])
        elif isinstance(r, list | tuple) and len(r) >= 2:
            rows.append([Cell(excerpt(r[0], 40), "mono"), Cell(fmt_num(r[1])), Cell("")])
    if not rows:
        return None
    return Table(caption="Largest clusters", headers=["cluster", "rows", "example"], rows=rows,
                 numeric=frozenset({1}))


def splits_view(splits: Mapping[str, Any]) -> Section:
    """Splits: settings as facts, rows per split and class (plots and table), exclusions."""
    sec = Section("splits", "Splits")
    facts = _facts(splits, skip=("counts", "fractions"))
    fractions = _mapping(splits.get("fractions"))
    if fractions is not None:
        facts.append(("target fractions", ", ".join(f"{k} {fmt_num(v)}"
                                                    for k, v in fractions.items()), ""))
    if facts:
        sec.add(Part("facts", facts=facts))
    counts = _as_rows(splits.get("counts"))
    per_split = _mapping(splits.get("rows_per_split"))
    if not counts and per_split:
        sec.add(Part("plots", plots=[_plot(
            "bar_chart", list(per_split), [_float(v) for v in per_split.values()],
            title="Rows per split", xlabel="rows", salt="splits")]))
    if counts:
        sec.parts += _split_counts(counts)
    return sec.table(_records(
        splits.get("excluded"), ["policy", "rows", "example reason"],
        lambda e: [Cell(str(e.get("policy", "")), "mono"), e.get("rows"),
                   Cell(excerpt(e.get("example_reason")))],
        caption="Excluded by policy", numeric={1}))


def _split_counts(counts: Sequence[Mapping[str, Any]]) -> list[Part]:
    """Rows per split and class: two stacked-bar plots and a table with totals."""
    names = list(dict.fromkeys(str(c.get("split")) for c in counts))
    labels = list(dict.fromkeys(c.get("label") for c in counts))
    grid = {(str(c.get("split")), c.get("label")): int(c.get("rows") or 0) for c in counts}
    totals = {s: sum(grid.get((s, lab), 0) for lab in labels) for s in names}
    grand = sum(totals.values())
    series = {str(lab): [float(grid.get((s, lab), 0)) for s in names] for lab in labels}
    rows = [[Cell(fmt_num(lab))] + [
        Cell(f"{grid.get((s, lab), 0):,}", title=fmt_pct(
            grid.get((s, lab), 0) / totals[s] if totals[s] else 0.0, 1))
        for s in names] + [Cell(f"{sum(grid.get((s, lab), 0) for s in names):,}")]
        for lab in labels]
    rows.append([Cell("total", "strong")] + [Cell(f"{totals[s]:,}", "strong") for s in names]
                + [Cell(f"{grand:,}", "strong")])
    rows.append([Cell("share of rows")] + [Cell(fmt_pct(totals[s] / grand if grand else 0, 1))
                                            for s in names] + [Cell("")])
    return [
        Part("plots", plots=[
            _plot("stacked_bars", names, series, title="Rows per split, by class",
                  salt="splits"),
            _plot("stacked_bars", names, series, title="Class mix per split",
                  ylabel="share of split", share=True, salt="splits-share"),
        ]),
        Part("table", table=Table(headers=["label", *names, "all"], rows=rows,
                                  numeric=frozenset(range(1, len(names) + 2)))),
    ]


def published_view(pub: Mapping[str, Any]) -> Section:
    """The version published this run, and where ``current`` points."""
    sec = Section("published", "Published")
    sec.add(Part("text", text=(
        f"version v{fmt_num(pub.get('version'))} ({fmt_num(pub.get('rows'))} rows): "
        f"{pub.get('path', '?')}; current points to it.")))
    sec.parts += _rest_parts(pub, known=("version", "rows", "path"))
    return sec


# ------------------------------------------------------------------------ trends, metrics


def _current_metrics(report: Mapping[str, Any]) -> dict[str, float]:
    """This run's metrics for the trend plots: report['metrics'], plus the label-issue rate,
    health score and agreement coefficients from their sections when not already there."""
    out = {k: f for k, v in (report.get("metrics") or {}).items()
           if (f := _float(v)) is not None}
    li = _mapping(report.get("label_issues"))
    if li is not None:
        for key, name in (("rate", "label_issue_rate"), ("health_score", "label_health_score")):
            if (f := _float(li.get(key))) is not None:
                out.setdefault(name, f)
    ag = _mapping(report.get("agreement"))
    if ag is not None and isinstance(ag.get("metrics"), Mapping):
        for key, value in ag["metrics"].items():
            if (f := _float(value)) is not None:
                out.setdefault(f"agreement.{key}", f)
    return out


def _history_frame(history: pl.DataFrame, report: Mapping[str, Any]) -> pl.DataFrame:
    """History with the current run appended when absent (its report metrics and verdict)."""
    hist = history.select(
        pl.col("run_id").cast(pl.String), pl.col("metric").cast(pl.String),
        pl.col("value").cast(pl.Float64),
        (pl.col("recorded_at").cast(pl.String) if "recorded_at" in history.columns
         else pl.col("run_id").cast(pl.String)).alias("order"),
    )
    run_id = str(report.get("run_id", ""))
    if run_id and run_id not in set(hist.get_column("run_id").to_list()):
        current = _current_metrics(report)
        if "gate" in report:
            current["gate_passed"] = 1.0 if (report.get("gate") or {}).get("passed") else 0.0
        extra = pl.DataFrame(
            {"run_id": [run_id] * len(current), "metric": list(current),
             "value": list(current.values()), "order": ["\uffff"] * len(current)},
            schema=hist.schema,
        )
        hist = pl.concat([hist, extra])
    return hist


def trends_view(history: pl.DataFrame, report: Mapping[str, Any], *,
                runs: int = TREND_RUNS) -> Section | None:
    """The last `runs` runs: one line plot per `TREND_METRICS` entry, and the verdicts.

    Parameters
    ----------
    history
        ``metrics_history`` rows (run_id, metric, value[, recorded_at]) of the dataset; the
        current run is appended from the report when it is not among them.
    report
        The report dict.
    runs
        How many runs, newest last.

    Returns
    -------
    Section | None
        The section ``trends``; None with no history and no metrics.
    """
    if history.is_empty() and not report.get("metrics"):
        return None
    hist = _history_frame(history, report)
    order = (hist.group_by("run_id").agg(pl.col("order").min()).sort("order", "run_id")
             .tail(runs).get_column("run_id").to_list())
    wide = {(r, m): v for r, m, v in hist.filter(pl.col("run_id").is_in(order))
            .select("run_id", "metric", "value").iter_rows()}
    verdicts: list[bool | None] = [
        None if (v := wide.get((r, "gate_passed"))) is None or math.isnan(v) else v >= 0.5
        for r in order]
    sec = Section("trends", "Trends")
    sec.add(Part("text", text=(
        f"Last {len(order)} run(s), oldest left; points are green where the gate passed, red "
        "where it failed." + (" Trends need at least two runs." if len(order) < 2 else ""))))
    figs = _trend_plots(order, wide, set(hist.get_column("metric").to_list()), verdicts)
    if figs:
        sec.add(Part("plots", plots=figs))
    if any(v is not None for v in verdicts):
        sec.table(Table(
            caption="Gate verdict per run (newest first)", headers=["run", "gate"],
            rows=[[Cell(r, "mono"), Cell("—" if v is None else "pass" if v else "FAIL",
                                         "" if v is None else "pass" if v else "fail")]
                  for r, v in reversed(list(zip(order, verdicts, strict=True)))],
            collapsed=len(order) > 10,
        ))
    return sec


def _trend_plots(order: Sequence[str], wide: Mapping[tuple[str, str], float],
                 metrics: set[str], verdicts: Sequence[bool | None]) -> list[Plot]:
    """One line plot per `TREND_METRICS` entry recorded in at least two of the runs."""
    figs = []
    for title, names, percent in TREND_METRICS if len(order) >= 2 else ():
        name = next((n for n in names if n in metrics), None)
        if name is None:
            continue
        points = [wide.get((r, name)) for r in order]
        if sum(v is not None and math.isfinite(v) for v in points) < min(2, len(order)):
            continue  # a metric new in this run is not a trend yet
        figs.append(_plot("line_plot", list(order), points, title=title, passed=list(verdicts),
                          percent=percent, salt=f"trend-{name}"))
    return figs


def metrics_view(report: Mapping[str, Any]) -> Section | None:
    """Every metric of the run, sorted by name."""
    metrics = _mapping(report.get("metrics"))
    if not metrics:
        return None
    return Section("metrics", "All metrics").table(Table(
        headers=["metric", "value"],
        rows=[[Cell(str(k), "mono"), Cell(fmt_num(v))] for k, v in sorted(metrics.items())],
        numeric=frozenset({1}), collapsed=len(metrics) > 12,
    ))


# ------------------------------------------------------------------------ other sections


def generic_view(key: str, value: object) -> Section:
    """A section no builder knows: scalars as facts, lists of flat records as tables,
    anything deeper as escaped JSON (so nothing a stage adds is hidden)."""
    sec = Section(f"x-{key}", _label(key))
    sec.parts += (_rest_parts(value, known=()) if isinstance(value, Mapping)
                  else _generic_parts(value))
    return sec


def _rest_parts(value: Mapping[str, Any], known: Iterable[str]) -> list[Part]:
    """The keys of a section other than `known`: facts first, then a heading and a
    generic rendering per deeper key."""
    skip = set(known)
    rest = {k: v for k, v in value.items() if k not in skip}
    facts = [(_label(k), _fact(v), "") for k, v in rest.items() if _is_fact(v)]
    parts = [Part("facts", facts=facts)] if facts else []
    for k, v in rest.items():
        if not _is_fact(v):
            parts += [Part("heading", text=_label(k)), *_generic_parts(v)]
    return parts


def _flat(record: Mapping[str, Any], prefix: str = "") -> dict[str, Any] | None:
    """A record with nested dicts flattened to `a.b` keys, or None if anything is deeper."""
    out: dict[str, Any] = {}
    for k, v in record.items():
        if _is_scalar(v):
            out[prefix + str(k)] = v
        elif isinstance(v, Mapping) and not prefix:
            inner = _flat(v, f"{k}.")
            if inner is None:
                return None
            out |= inner
        else:
            return None
    return out


def _generic_parts(value: object) -> list[Part]:
    """A value no builder knows: flat records as a table, scalars as facts, else JSON."""
    if value == [] or value == {}:
        return [Part("text", text="none")]
    if isinstance(value, Mapping) and value and all(isinstance(v, Mapping)
                                                    for v in value.values()):
        flat = {str(k): _flat(v) for k, v in value.items()}
        if all(f is not None for f in flat.values()):  # e.g. published splits
            value = [{"name": k, **(f or {})} for k, f in flat.items()]
    rows = _as_rows(value)
    if rows and all(all(_is_scalar(v) for v in r.values()) for r in rows):
        headers = list(dict.fromkeys(k for r in rows for k in r))
        return [Part("table", table=Table(
            headers=headers,
            rows=[[Cell(excerpt(fmt_num(r.get(h)), TEXT_EXCERPT)) for h in headers]
                  for r in rows[:TABLE_ROWS]],
            collapsed=len(rows) > 12,
        ))]
    if isinstance(value, Mapping) and all(_is_fact(v) for v in value.values()):
        return [Part("facts", facts=[(_label(k), _fact(v), "") for k, v in value.items()])]
    text = json.dumps(value, indent=2, default=str, ensure_ascii=False)
    return [Part("pre", text=excerpt(text, 20_000))]


def paths_view(report: Mapping[str, Any]) -> Section | None:
    """Where the run's outputs are."""
    paths = _mapping(report.get("paths"))
    if not paths:
        return None
    return Section("paths", "Where things are").table(Table(
        headers=["what", "path"],
        rows=[[Cell(_label(k)), Cell(str(v), "mono")] for k, v in paths.items()],
    ))


# ------------------------------------------------------------------------ assembly


# the report's fixed part: shown by the sections before and after the stage sections
_FIXED_KEYS = frozenset({
    "dataset", "run_id", "spec_path", "spec_hash", "started_at", "finished_at", "rows",
    "sources", "quarantine", "classes", "metrics", "gate", "paths", "exclusions",
})
SectionView = Callable[[Mapping[str, Any], Mapping[str, Any], "pl.DataFrame | None"],
                       "Section | None"]


def _leakage_alone(leak: Mapping[str, Any], report: Mapping[str, Any],
                   frame: pl.DataFrame | None) -> Section | None:
    """Leakage without dedup; with dedup, the duplicates section shows it."""
    return None if _mapping(report.get("duplicates")) is not None else duplicates_view(None, leak)


# report.json section key -> its view; a key without one is shown by `generic_view`
SECTION_VIEWS: dict[str, SectionView] = {
    "review": lambda s, r, f: review_view(s),
    "sft": lambda s, r, f: sft_view(s),
    "agreement": lambda s, r, f: agreement_view(s, _mapping(r.get("gate"))),
    "label_issues": lambda s, r, f: label_issues_view(s, f),
    "duplicates": lambda s, r, f: duplicates_view(s, _mapping(r.get("leakage"))),
    "leakage": _leakage_alone,
    "splits": lambda s, r, f: splits_view(s),
    "published": lambda s, r, f: published_view(s),
}


def stage_sections(report: Mapping[str, Any], frame: pl.DataFrame | None = None) -> list[Section]:
    """The sections the stages added to `report`, in report order (the order of the stage
    declaration, `labelgate.dag`): each by its view in `SECTION_VIEWS`, any other key by
    `generic_view`, so a new stage's section is shown without a renderer of its own.

    Parameters
    ----------
    report
        The report dict (or only some of its keys).
    frame
        The per-row label-issue table, for the label-quality histogram.
    """
    out: list[Section] = []
    for key, value in report.items():
        if key in _FIXED_KEYS:
            continue
        view = SECTION_VIEWS.get(key)
        mapping = _mapping(value)
        if view is not None and mapping is not None:
            section = view(mapping, report, frame)
        else:
            section = generic_view(key, value)
        if section is not None:
            out.append(section)
    return out


def build_sections(
    report: Mapping[str, Any],
    *,
    history: pl.DataFrame | None = None,
    label_issues: pl.DataFrame | None = None,
    trend_runs: int = TREND_RUNS,
) -> list[Section]:
    """Every section of the report, in order; both renderers show this list.

    Parameters
    ----------
    report
        The dict written as report.json.
    history
        ``metrics_history`` rows for the trend plots; None: no trends section.
    label_issues
        The per-row label-issue table for the quality histogram.
    trend_runs
        How many runs the trends show.

    Returns
    -------
    list[Section]
        Gate, rows, contract failures, classes, the stage sections (in report order),
        trends, all metrics, paths (those with nothing to show are left out).
    """
    sections: list[Section | None] = [
        gate_view(report), rows_view(report), quarantine_view(report), classes_view(report),
        *stage_sections(report, label_issues),
    ]
    if history is not None:
        sections.append(trends_view(history, report, runs=trend_runs))
    sections.append(metrics_view(report))
    sections.append(paths_view(report))
    return [s for s in sections if s is not None]


# ------------------------------------------------------------------------ rendering


def md_row(cells: Sequence[Cell | str]) -> str:
    """A Markdown table row; cells are escaped, and cut to `CELL_MAX` characters unless
    they are identifiers or paths (css class ``mono``, already bounded by the builder)."""
    texts = [md_cell(c.text, max_len=None if "mono" in c.cls else CELL_MAX)
             if isinstance(c, Cell) else md_cell(c) for c in cells]
    return "| " + " | ".join(texts) + " |"


def md_rule(headers: Sequence[str], numeric: frozenset[int]) -> str:
    """The Markdown row under the header: numeric columns right-aligned."""
    return "|" + "".join("---:|" if i in numeric else "---|" for i in range(len(headers)))


def md_code(text: str) -> str:
    """`text` as an indented Markdown code block, HTML-escaped (nothing can end the block)."""
    safe = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return "\n".join("    " + line for line in safe.splitlines())


@lru_cache(maxsize=1)
def _environment() -> Environment:
    """The templates' jinja2 environment: HTML autoescaped, the Markdown filters registered."""
    env = Environment(
        loader=PackageLoader("labelgate.report", "templates"),
        autoescape=select_autoescape(enabled_extensions=("html.j2",), default=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(md=lambda v: md_cell(v, max_len=None), md_row=md_row, md_rule=md_rule,
                       md_code=md_code)
    return env


def render_template(name: str, **context: Any) -> str:
    """Render one of the report templates (``report.html.j2`` is autoescaped; the Markdown
    template escapes through its ``md`` filters).

    Parameters
    ----------
    name
        The template's file name in ``labelgate/report/templates``.
    **context
        The template's variables.

    Returns
    -------
    str
        The rendered text.
    """
    return _environment().get_template(name).render(**context)
