"""The run report as one self-contained HTML file (`report.html`): inline CSS, inline SVG
plots, no script and no network, so it opens offline in any browser and can be mailed.

``render_html(report, history=..., label_issues=...)`` takes the dict the pipeline writes as
``report.json`` (see ``labelgate.report.build_report``), optionally the ``metrics_history``
rows (run_id, metric, value, recorded_at) for trend plots and the per-row label-issue frame
(``label_quality``, optionally ``is_label_issue``) for the quality histogram. Sections:

1. summary: the gate verdict, failed checks first (observed vs threshold);
2. rows: input = valid + quarantined + excluded, with the arithmetic checked;
3. contract failures: by column and check, then examples;
4. classes, then each optional section whose key is in the report: ``label_issues``,
   ``agreement``, ``duplicates``, ``leakage``, ``splits``; then trends (``history``), all
   metrics, any other section (as JSON, so nothing a stage adds is hidden), and paths.

Every string from the data or the spec reaches the page through jinja2 with autoescape on
(and matplotlib escapes text inside the SVG plots), so a row whose text is
``<script>...</script>`` or ``</table>`` renders as text. A Content-Security-Policy meta tag
forbids scripts and remote loads as a second line of defence.

Section shapes are read tolerantly (a missing optional key shows as "—" or is left out), so
a stage that adds a key does not break the page; scalar keys a renderer does not know are
shown as facts under the section.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import polars as pl
from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from labelgate import plots
from labelgate.report import COEFFICIENTS as _COEFFICIENTS
from labelgate.report import consensus_applied_text, csv_lines_text

__all__ = ["TREND_METRICS", "render_html", "write_html"]

TREND_RUNS = 30
TEXT_EXCERPT = 240
TABLE_ROWS = 50
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
_KNOWN_SECTIONS = frozenset({
    "dataset", "run_id", "spec_path", "spec_hash", "started_at", "finished_at", "rows",
    "sources", "quarantine", "classes", "metrics", "gate", "paths", "agreement",
    "label_issues", "duplicates", "leakage", "splits", "exclusions",
})
# leakage counts (labelgate.splits.leakage); any above 0 is a leak
_LEAK_KEYS = ("exact_pairs", "near_pairs", "group_overlap", "groups_across_splits",
              "clusters_across_splits", "group_rows_across_splits", "total")
_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
        "base-uri 'none'; form-action 'none'")


# ------------------------------------------------------------------------ view model


@dataclass(frozen=True)
class Cell:
    """One table cell; `text` is escaped by the template, `title` becomes a tooltip."""

    text: str
    cls: str = ""
    title: str = ""


@dataclass(frozen=True)
class Table:
    headers: Sequence[str]
    rows: Sequence[Sequence[Cell]]
    numeric: frozenset[int] = frozenset()
    row_classes: Sequence[str] = ()
    caption: str = ""
    collapsed: bool = False  # inside <details>, for long tables


@dataclass(frozen=True)
class Part:
    """A piece of a section, rendered in order: heading, text, facts, plots, table, notes."""

    kind: Literal["heading", "text", "facts", "plots", "table", "notes", "pre", "rowbar"]
    text: str = ""
    facts: Sequence[tuple[str, str, str]] = ()  # (label, value, css class)
    plots: Sequence[Markup] = ()
    table: Table | None = None
    notes: Sequence[str] = ()
    segments: Sequence[tuple[str, int]] = ()  # rowbar: (css class, count)


@dataclass
class Section:
    id: str
    title: str
    parts: list[Part] = field(default_factory=list)
    status: str = ""  # "ok" | "bad" | "": a badge next to the title

    def add(self, part: Part) -> Section:
        self.parts.append(part)
        return self


# ------------------------------------------------------------------------ formatting


def fmt_num(value: object) -> str:
    """Counts with thousands separators, other floats to 4 significant digits."""
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
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "—"
    if not math.isfinite(value):
        return "—"
    return f"{value:.{digits}%}"


def excerpt(text: object, limit: int = TEXT_EXCERPT) -> str:
    s = "" if text is None else str(text)
    return s if len(s) <= limit else s[: limit - 1] + "…"


def _float(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    f = float(value)
    return f if math.isfinite(f) else None


def _first(d: Mapping[str, Any], *keys: str) -> Any:
    for k in keys:
        if k in d and d[k] is not None:
            return d[k]
    return None


def _cells(values: Iterable[object]) -> list[Cell]:
    return [c if isinstance(c, Cell) else Cell(fmt_num(c)) for c in values]


def _facts(section: Mapping[str, Any], skip: Iterable[str]) -> list[tuple[str, str, str]]:
    """Scalar keys of a section not rendered elsewhere, as (key, value, '') facts."""
    skipped = set(skip)
    out = []
    for k, v in section.items():
        if k in skipped:
            continue
        if v is None or isinstance(v, str | int | float | bool):
            out.append((k.replace("_", " "), fmt_num(v), ""))
        elif isinstance(v, Mapping) and v and all(
            x is None or isinstance(x, str | int | float | bool) for x in v.values()
        ):
            out.append((k.replace("_", " "),
                        ", ".join(f"{kk} {fmt_num(x)}" for kk, x in v.items()), ""))
    return out


def _as_rows(items: object) -> list[Mapping[str, Any]]:
    return [r for r in items if isinstance(r, Mapping)] if isinstance(items, list) else []


# ------------------------------------------------------------------------ sections


def _header(report: Mapping[str, Any]) -> dict[str, Any]:
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
    name = str(check.get("name", ""))
    return "≤" if name.startswith("max_") else "≥" if name.startswith("min_") else "vs"


def _check_view(check: Mapping[str, Any]) -> dict[str, str]:
    return {
        "name": str(check.get("name", "")),
        "metric": str(check.get("metric", "")),
        "observed": fmt_num(check.get("observed")),
        "threshold": fmt_num(check.get("threshold")),
        "op": _comparator(check),
        "message": str(check.get("message", "")),
    }


def _kpis(report: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    rows = report.get("rows") or {}
    metrics = report.get("metrics") or {}
    out: list[tuple[str, str, str]] = [
        ("valid rows", fmt_num(rows.get("valid")), ""),
        ("quarantine rate", fmt_pct(metrics.get("quarantine_rate")), ""),
    ]
    li = report.get("label_issues")
    if isinstance(li, Mapping):
        out.append(("label issue rate", fmt_pct(li.get("rate")), ""))
    ag = report.get("agreement")
    if isinstance(ag, Mapping):
        out.append(("Krippendorff's α",
                    fmt_num(_float((ag.get("metrics") or {}).get("krippendorff_alpha"))), ""))
    lk = report.get("leakage")
    if isinstance(lk, Mapping):
        total = int(_float(lk.get("total")) or sum(
            _float(lk.get(k)) or 0.0
            for k in ("exact_pairs", "near_pairs", "group_overlap", "groups_across_splits")))
        out.append(("split leakage", fmt_num(total), "bad" if total else ""))
    return out


def _gate_section(report: Mapping[str, Any]) -> Section | None:
    gate = report.get("gate")
    if not isinstance(gate, Mapping):
        return None
    checks = sorted(_as_rows(gate.get("checks")), key=lambda c: bool(c.get("passed")))
    sec = Section("gate", "Gate checks", status="ok" if gate.get("passed") else "bad")
    if not checks:
        return sec.add(Part("text", text="No gate thresholds in the spec."))
    sec.add(Part("table", table=Table(
        headers=["check", "metric", "observed", "", "threshold", "result", "message"],
        rows=[
            [Cell(v["name"], "mono"), Cell(v["metric"], "mono"), Cell(v["observed"]),
             Cell(v["op"]), Cell(v["threshold"]),
             Cell("pass" if c.get("passed") else "FAIL", "pass" if c.get("passed") else "fail"),
             Cell(v["message"])]
            for c in checks for v in [_check_view(c)]
        ],
        numeric=frozenset({2, 4}),
        row_classes=["" if c.get("passed") else "bad" for c in checks],
    )))
    return sec


def _rows_section(report: Mapping[str, Any]) -> Section:
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
    exclusions = _as_rows(report.get("exclusions"))
    if exclusions:
        sec.add(Part("table", table=Table(
            headers=["exclusion policy", "rows", "reason"],
            rows=[[Cell(str(e.get("policy", ""))), Cell(fmt_num(e.get("rows"))),
                   Cell(str(e.get("reason", "")))] for e in exclusions],
            numeric=frozenset({1}),
        )))
    sources = _as_rows(report.get("sources"))
    if sources:
        sec.add(Part("table", table=Table(
            caption="Input files (lake batches)",
            headers=["source", "file", "batch", "rows", "unparseable", "ingest reused",
                     "contract cached"],
            rows=[[Cell(str(s.get("source", ""))),
                   Cell(Path(str(s.get("file", ""))).name, "mono", str(s.get("file", ""))),
                   Cell(str(s.get("batch", ""))[:12], "mono", str(s.get("batch", ""))),
                   Cell(fmt_num(s.get("rows"))), Cell(fmt_num(s.get("rejected"))),
                   Cell(fmt_num(s.get("reused"))),
                   Cell(fmt_num(s.get("contract_cached")))] for s in sources],
            numeric=frozenset({3, 4}),
            row_classes=["bad" if s.get("rejected") else "" for s in sources],
        )))
    return sec


def _quarantine_section(report: Mapping[str, Any]) -> Section | None:
    q = report.get("quarantine")
    if not isinstance(q, Mapping):
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
        sec.add(Part("plots", plots=[Markup(plots.bar_chart(
            labels, [_float(r.get("failures")) for r in by[:20]],
            title="Failures by column · check", xlabel="failing cells", salt="quarantine",
            colors=[plots.FAIL_COLOR] * len(labels)))]))
        sec.add(Part("table", table=Table(
            headers=["column", "check", "failures", "example reason"],
            rows=[[Cell(str(r.get("column")), "mono"), Cell(str(r.get("check")), "mono"),
                   Cell(fmt_num(r.get("failures"))), Cell(excerpt(r.get("example")))]
                  for r in by],
            numeric=frozenset({2}),
        )))
    examples = _as_rows(q.get("examples"))
    if examples:
        # people know the file, not the batch hash: show its name, the hash as a tooltip
        file_of = {str(s.get("batch")): Path(str(s.get("file", ""))).name
                   for s in _as_rows(report.get("sources"))}
        sec.add(Part("table", table=Table(
            caption=f"First {len(examples)} failing cells",
            headers=["source", "file", "row", "id", "column", "check", "value", "reason"],
            rows=[[Cell(str(e.get("source", ""))),
                   Cell(file_of.get(str(e.get("batch", ""))) or str(e.get("batch", ""))[:8],
                        "mono", f"batch {e.get('batch', '')}"),
                   Cell(fmt_num(e.get("row"))), Cell(excerpt(e.get("id"), 40), "mono"),
                   Cell(str(e.get("column", "")), "mono"), Cell(str(e.get("check", "")), "mono"),
                   Cell(excerpt(e.get("failure_value"), 80), "text",
                        excerpt(e.get("failure_value"), 1000)),
                   Cell(excerpt(e.get("reason")))] for e in examples],
            numeric=frozenset({2}),
        )))
    return sec


def _classes_section(report: Mapping[str, Any]) -> Section | None:
    classes = _as_rows(report.get("classes"))
    if not classes:
        return None
    total = sum(int(c.get("rows") or 0) for c in classes)
    threshold = next((_float(c.get("threshold")) for c in _as_rows(
        (report.get("gate") or {}).get("checks")) if c.get("name") == "min_rows_per_class"),
        None)
    sec = Section("classes", "Classes (valid rows)")
    sec.add(Part("plots", plots=[Markup(plots.bar_chart(
        [c.get("label") for c in classes], [_float(c.get("rows")) for c in classes],
        title="Rows per class", xlabel="valid rows", reference=threshold, salt="classes"))]))
    sec.add(Part("table", table=Table(
        headers=["label", "rows", "share"],
        rows=[[Cell(fmt_num(c.get("label"))), Cell(fmt_num(c.get("rows"))),
               Cell(fmt_pct(int(c.get("rows") or 0) / total if total else 0.0, 1))]
              for c in classes],
        numeric=frozenset({1, 2}),
        row_classes=["bad" if threshold is not None and (_float(c.get("rows")) or 0) < threshold
                     else "" for c in classes],
    )))
    if threshold is not None:
        sec.add(Part("notes", notes=[f"dashed line: gate.min_rows_per_class {fmt_num(threshold)}"]))
    return sec


def _matrix(cells: Sequence[Mapping[str, Any]], row_key: str, col_key: str,
            value_key: str) -> tuple[list[Any], list[Any], list[list[float]]]:
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


def _label_issues_section(li: Mapping[str, Any], frame: pl.DataFrame | None) -> Section:
    rate = _float(li.get("rate"))
    sec = Section("label-issues", "Label issues")
    sec.add(Part("facts", facts=[
        ("method", fmt_num(li.get("method")), ""),
        ("rows flagged", fmt_num(li.get("count")), ""),
        ("issue rate", fmt_pct(rate), ""),
        ("health score", fmt_num(_float(li.get("health_score"))), ""),
        *_facts(li, skip=("method", "count", "rate", "health_score")),
    ]))
    figs: list[Markup] = []
    noise = _as_rows(li.get("noise_matrix"))
    if noise:
        given = next((k for k in ("given", "given_label") if k in noise[0]), "given")
        other = next((k for k in ("suggested", "suggested_label", "true_label")
                      if k in noise[0]), "suggested")
        value = next((k for k in ("rows", "count", "joint") if k in noise[0]), "rows")
        rl, cl, m = _matrix(noise, given, other, value)
        what = "estimated joint share" if value == "joint" else "rows"
        figs.append(Markup(plots.heatmap(
            rl, cl, m, title=f"Noise matrix ({what})",
            xlabel="true label (estimated)" if other == "true_label" else "suggested label",
            ylabel="given label", salt="noise")))
    per_class = _as_rows(li.get("per_class"))
    if per_class:
        figs.append(Markup(plots.bar_chart(
            [c.get("class") for c in per_class],
            [_float(c.get("mean_label_quality")) for c in per_class],
            title="Mean label quality per class", xlabel="mean label quality (0–1)",
            xlim=(0.0, 1.1), salt="li-quality")))
        figs.append(Markup(plots.bar_chart(
            [c.get("class") for c in per_class], [_float(c.get("issue_rate")) for c in per_class],
            title="Issue rate per class", percent=True, salt="li-rate",
            colors=[plots.FAIL_COLOR] * len(per_class))))
    if frame is not None and "label_quality" in frame.columns and frame.height:
        flagged = (frame.get_column("is_label_issue").fill_null(False).to_numpy()
                   if "is_label_issue" in frame.columns else None)
        figs.append(Markup(plots.histogram(
            frame.get_column("label_quality").cast(pl.Float64).fill_null(float("nan"))
            .to_numpy(),
            flagged=flagged, title=f"Label quality ({frame.height:,} rows)",
            xlabel="label quality (low = likely mislabeled)", salt="li-hist")))
    if figs:
        sec.add(Part("plots", plots=figs))
    if per_class:
        sec.add(Part("table", table=Table(
            headers=["class", "rows", "issues", "issue rate", "mean label quality"],
            rows=[[Cell(fmt_num(c.get("class"))), Cell(fmt_num(c.get("rows"))),
                   Cell(fmt_num(c.get("issues"))), Cell(fmt_pct(c.get("issue_rate"))),
                   Cell(fmt_num(_float(c.get("mean_label_quality"))))] for c in per_class],
            numeric=frozenset({1, 2, 3, 4}),
        )))
    top = _as_rows(li.get("top"))
    if top:
        sec.add(Part("table", table=Table(
            caption=f"Top {len(top)} suspicious rows (lowest label quality)",
            headers=["id", "given", "suggested", "quality", "text"],
            rows=[[Cell(excerpt(r.get("id"), 40), "mono"),
                   Cell(fmt_num(_first(r, "given", "given_label"))),
                   Cell(fmt_num(_first(r, "suggested", "suggested_label"))),
                   Cell(fmt_num(_float(_first(r, "quality", "label_quality")))),
                   Cell(excerpt(r.get("text")), "text", excerpt(r.get("text"), 2000))]
                  for r in top],
            numeric=frozenset({3}),
        )))
    return sec


def _agreement_section(ag: Mapping[str, Any], gate: Mapping[str, Any]) -> Section:
    m: Mapping[str, Any] = ag.get("metrics") or {}
    sec = Section("agreement", "Annotator agreement")
    sec.add(Part("text", text=(
        f"{fmt_num(m.get('n_labels'))} labels on {fmt_num(m.get('n_items'))} items by "
        f"{fmt_num(m.get('n_annotators'))} annotators (level {ag.get('level', '?')}; "
        f"{fmt_num(m.get('n_items_multi_label'))} items with two or more labels)"
        + (f"; {ag['consensus_method']} consensus {consensus_applied_text(ag).replace('`', '')}"
           if ag.get("consensus_method") else "") + "."
    )))
    coef = [(name, _float(m.get(key)), key) for key, name in _COEFFICIENTS]
    lo, hi = _float(m.get("krippendorff_alpha_ci_low")), _float(m.get("krippendorff_alpha_ci_high"))
    alpha_min = next((_float(c.get("threshold")) for c in _as_rows(gate.get("checks"))
                      if str(c.get("metric", "")).endswith("krippendorff_alpha")), None)
    figs: list[Markup] = []
    shown = [(n, v, k) for n, v, k in coef if v is not None]
    if shown:
        figs.append(Markup(plots.interval_plot(
            [n for n, _, _ in shown], [v for _, v, _ in shown],
            [(lo, hi) if k == "krippendorff_alpha" else (None, None) for _, _, k in shown],
            title="Agreement coefficients", reference=alpha_min,
            reference_label=f"gate: α ≥ {fmt_num(alpha_min)}", salt="coef")))
    per_class = _as_rows(ag.get("per_class"))
    if per_class:
        figs.append(Markup(plots.bar_chart(
            [c.get("category") for c in per_class],
            [_float(c.get("specific_agreement")) for c in per_class],
            title="Specific agreement per class", xlabel="agreeing pairs / pairs with the class",
            xlim=(0.0, 1.1), salt="ag-class")))
    confusion = _as_rows(ag.get("confusion"))
    if confusion:
        rl, cl, mat = _matrix(confusion, "label_a", "label_b", "n_pairs")
        figs.append(Markup(plots.heatmap(rl, cl, mat, title="Annotator confusion (label pairs)",
                                         xlabel="label b", ylabel="label a", salt="ag-conf")))
    if figs:
        sec.add(Part("plots", plots=figs))
    settings = ag.get("settings")
    boot = settings.get("bootstrap") if isinstance(settings, Mapping) else None
    confidence = (_float(boot.get("confidence")) if isinstance(boot, Mapping) else None) or 0.95
    sec.add(Part("table", table=Table(
        headers=["coefficient", "value", f"{confidence:.0%} bootstrap interval"],
        rows=[[Cell(name), Cell(fmt_num(v)),
               Cell(f"{fmt_num(lo)} – {fmt_num(hi)} ({fmt_num(m.get('krippendorff_alpha_n_boot'))}"
                    " resamples)" if key == "krippendorff_alpha" and lo is not None else "")]
              for name, v, key in coef],
        numeric=frozenset({1}),
        row_classes=["bad" if key == "krippendorff_alpha" and alpha_min is not None
                     and v is not None and v < alpha_min else "" for _, v, key in coef],
    )))
    if per_class:
        sec.add(Part("table", table=Table(
            caption="Per class",
            headers=["category", "labels", "share", "majority items", "specific agreement"],
            rows=[_cells([c.get("category"), c.get("n_labels"), Cell(fmt_pct(c.get("share"), 1)),
                          c.get("n_majority"), _float(c.get("specific_agreement"))])
                  for c in per_class],
            numeric=frozenset({1, 2, 3, 4}),
        )))
    annotators = sorted(_as_rows(ag.get("annotators")),
                        key=lambda a: (not a.get("flagged"),
                                       _float(a.get("consensus_agreement")) or 0.0))
    if annotators:
        with_gold = any(a.get("n_gold") for a in annotators)
        n_flag = sum(bool(a.get("flagged")) for a in annotators)
        sec.add(Part("table", table=Table(
            caption=f"Annotators ({len(annotators)}, {n_flag} flagged; flagged first, then "
                    "lowest consensus agreement)",
            headers=["annotator", "labels", "consensus agreement", "mean Cohen's κ",
                     "Dawid-Skene accuracy", *(["gold items", "gold accuracy"] if with_gold
                                               else []), "flag"],
            rows=[_cells([Cell(excerpt(a.get("annotator"), 40), "mono"), a.get("n_labels"),
                          _float(a.get("consensus_agreement")), _float(a.get("mean_cohen_kappa")),
                          _float(a.get("dawid_skene_accuracy")),
                          *([a.get("n_gold"), _float(a.get("gold_accuracy"))] if with_gold
                            else []),
                          Cell(str(a.get("flag_reasons") or "") if a.get("flagged") else "",
                               "fail")])
                  for a in annotators[:TABLE_ROWS]],
            numeric=frozenset(range(1, 7 if with_gold else 5)),
            row_classes=["bad" if a.get("flagged") else "" for a in annotators[:TABLE_ROWS]],
        )))
    pairs = _as_rows(ag.get("pairs"))
    if pairs:
        sec.add(Part("table", table=Table(
            caption="Annotator pairs",
            headers=["annotator a", "annotator b", "shared items", "percent agreement",
                     "Cohen's κ"],
            rows=[_cells([Cell(excerpt(p.get("annotator_a"), 40), "mono"),
                          Cell(excerpt(p.get("annotator_b"), 40), "mono"), p.get("n_shared"),
                          _float(p.get("percent_agreement")), _float(p.get("cohen_kappa"))])
                  for p in pairs[:200]],
            numeric=frozenset({2, 3, 4}), collapsed=True,
        )))
    comparison = _as_rows(ag.get("consensus_comparison"))
    gold = [(name, _float(m.get(key))) for key, name in (
        ("majority_gold_accuracy", "majority"), ("dawid_skene_gold_accuracy", "Dawid-Skene"))]
    if comparison:
        sec.add(Part("table", table=Table(
            caption="Consensus methods compared",
            headers=["method a", "method b", "items", "differ", "share differ"],
            rows=[_cells([c.get("method_a"), c.get("method_b"), c.get("n_items"),
                          c.get("n_differ"), Cell(fmt_pct(c.get("share_differ")))])
                  for c in comparison],
            numeric=frozenset({2, 3, 4}),
        )))
    if any(v is not None for _, v in gold):
        sec.add(Part("facts", facts=[
            (f"{name} consensus: gold accuracy", fmt_pct(v, 1), "") for name, v in gold
        ] + [("gold items", fmt_num(m.get("n_gold_items_labelled")), "")]))
    notes = [str(n) for n in ag.get("notes") or []]
    if notes:
        sec.add(Part("notes", notes=notes))
    return sec


def _duplicates_section(dup: Mapping[str, Any] | None,
                        leak: Mapping[str, Any] | None) -> Section:
    sec = Section("duplicates", "Duplicates and leakage")
    if leak is not None:
        keys = tuple(k for k in _LEAK_KEYS if k in leak) or _LEAK_KEYS[:3]
        bad = any((_float(leak.get(k)) or 0) > 0 for k in keys)
        sec.status = "bad" if bad else "ok"
        sec.add(Part("heading", text="Leakage across splits"))
        sec.add(Part("facts", facts=[
            (k.replace("_", " "), fmt_num(leak.get(k)),
             "bad" if (_float(leak.get(k)) or 0) > 0 else "good") for k in keys
        ] + _facts(leak, skip=keys)))
        examples = _as_rows(leak.get("examples"))
        if examples:
            cols = list(dict.fromkeys(k for e in examples for k in e))
            sec.add(Part("table", table=Table(
                caption="Leaking pairs", headers=cols,
                rows=[[Cell(excerpt(e.get(c), 120)) for c in cols] for e in examples[:TABLE_ROWS]],
            )))
    if dup is not None:
        sec.add(Part("heading", text="Duplicates"))
        sec.add(Part("facts", facts=[
            ("duplicate rows", fmt_num(_first(dup, "count", "duplicate_rows")), ""),
            ("clusters", fmt_num(dup.get("clusters")), ""),
            *_facts(dup, skip=("count", "duplicate_rows", "clusters")),
        ]))
        largest = dup.get("largest") or []
        rows_l: list[list[Cell]] = []
        for r in largest if isinstance(largest, list) else []:
            if isinstance(r, Mapping):
                rows_l.append([Cell(excerpt(r.get("cluster_id"), 40), "mono"),
                               Cell(fmt_num(_first(r, "size", "cluster_size"))),
                               Cell(excerpt(r.get("example")), "text")])
            elif isinstance(r, list | tuple) and len(r) >= 2:
                rows_l.append([Cell(excerpt(r[0], 40), "mono"), Cell(fmt_num(r[1])), Cell("")])
        if rows_l:
            sec.add(Part("table", table=Table(caption="Largest clusters",
                                              headers=["cluster", "rows", "example"],
                                              rows=rows_l, numeric=frozenset({1}))))
        conflicting = _as_rows(dup.get("conflicting"))
        if conflicting:
            sec.add(Part("table", table=Table(
                caption=f"Clusters whose members carry different labels ({len(conflicting)})",
                headers=["cluster", "rows", "labels", "example"],
                rows=[[Cell(excerpt(c.get("cluster_id"), 40), "mono"),
                       Cell(fmt_num(_first(c, "size", "cluster_size"))),
                       Cell(", ".join(str(x) for x in c["labels"])
                            if isinstance(c.get("labels"), list) else fmt_num(c.get("labels"))),
                       Cell(excerpt(c.get("example")), "text")] for c in conflicting[:TABLE_ROWS]],
                numeric=frozenset({1}), row_classes=["bad"] * min(len(conflicting), TABLE_ROWS),
            )))
    return sec


def _splits_section(splits: Mapping[str, Any]) -> Section:
    sec = Section("splits", "Splits")
    counts = _as_rows(splits.get("counts"))
    split_names = list(dict.fromkeys(str(c.get("split")) for c in counts))
    labels = list(dict.fromkeys(c.get("label") for c in counts))
    grid = {(str(c.get("split")), c.get("label")): int(c.get("rows") or 0) for c in counts}
    totals = {s: sum(grid.get((s, lab), 0) for lab in labels) for s in split_names}
    grand = sum(totals.values())
    facts = _facts(splits, skip=("counts",))
    fractions = splits.get("fractions")
    if isinstance(fractions, Mapping):
        facts.append(("target fractions", ", ".join(f"{k} {fmt_num(v)}"
                                                    for k, v in fractions.items()), ""))
    if facts:
        sec.add(Part("facts", facts=facts))
    per_split = splits.get("rows_per_split")
    if not counts and isinstance(per_split, Mapping) and per_split:
        sec.add(Part("plots", plots=[Markup(plots.bar_chart(
            list(per_split), [_float(v) for v in per_split.values()], title="Rows per split",
            xlabel="rows", salt="splits"))]))
    if counts:
        series = {str(lab): [float(grid.get((s, lab), 0)) for s in split_names]
                  for lab in labels}
        sec.add(Part("plots", plots=[
            Markup(plots.stacked_bars(split_names, series, title="Rows per split, by class",
                                      salt="splits")),
            Markup(plots.stacked_bars(split_names, series, title="Class mix per split",
                                      ylabel="share of split", share=True,
                                      salt="splits-share")),
        ]))
        rows = [[Cell(fmt_num(lab))] + [
            Cell(f"{grid.get((s, lab), 0):,}", title=fmt_pct(
                grid.get((s, lab), 0) / totals[s] if totals[s] else 0.0, 1))
            for s in split_names] + [Cell(f"{sum(grid.get((s, lab), 0) for s in split_names):,}")]
            for lab in labels]
        rows.append([Cell("total", "strong")] + [Cell(f"{totals[s]:,}", "strong")
                                                  for s in split_names]
                    + [Cell(f"{grand:,}", "strong")])
        rows.append([Cell("share of rows")] + [Cell(fmt_pct(totals[s] / grand if grand else 0, 1))
                                                for s in split_names] + [Cell("")])
        sec.add(Part("table", table=Table(
            headers=["label", *split_names, "all"], rows=rows,
            numeric=frozenset(range(1, len(split_names) + 2)),
        )))
    return sec


def _current_metrics(report: Mapping[str, Any]) -> dict[str, float]:
    """This run's metrics for the trend plots: report['metrics'], plus the label-issue rate,
    health score and agreement coefficients from their sections when not already there."""
    out = {k: f for k, v in (report.get("metrics") or {}).items()
           if (f := _float(v)) is not None}
    li = report.get("label_issues")
    if isinstance(li, Mapping):
        for key, name in (("rate", "label_issue_rate"), ("health_score", "label_health_score")):
            if (f := _float(li.get(key))) is not None:
                out.setdefault(name, f)
    ag = report.get("agreement")
    if isinstance(ag, Mapping) and isinstance(ag.get("metrics"), Mapping):
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


def _trends_section(history: pl.DataFrame, report: Mapping[str, Any], *,
                    runs: int) -> Section | None:
    if history.is_empty() and not report.get("metrics"):
        return None
    hist = _history_frame(history, report)
    order = (hist.group_by("run_id").agg(pl.col("order").min()).sort("order", "run_id")
             .tail(runs).get_column("run_id").to_list())
    wide = {(r, m): v for r, m, v in hist.filter(pl.col("run_id").is_in(order))
            .select("run_id", "metric", "value").iter_rows()}
    metrics = set(hist.get_column("metric").to_list())
    verdicts: list[bool | None] = [
        None if (v := wide.get((r, "gate_passed"))) is None or math.isnan(v) else v >= 0.5
        for r in order]
    sec = Section("trends", "Trends")
    sec.add(Part("text", text=(
        f"Last {len(order)} run(s), oldest left; points are green where the gate passed, red "
        "where it failed." + (" Trends need at least two runs." if len(order) < 2 else ""))))
    figs = []
    for title, names, percent in TREND_METRICS if len(order) >= 2 else ():
        name = next((n for n in names if n in metrics), None)
        if name is None:
            continue
        points = [wide.get((r, name)) for r in order]
        if sum(v is not None and math.isfinite(v) for v in points) < min(2, len(order)):
            continue  # a metric new in this run is not a trend yet
        figs.append(Markup(plots.line_plot(
            order, points, title=title, passed=verdicts,
            percent=percent, salt=f"trend-{name}")))
    if figs:
        sec.add(Part("plots", plots=figs))
    if any(v is not None for v in verdicts):
        sec.add(Part("table", table=Table(
            caption="Gate verdict per run (newest first)", headers=["run", "gate"],
            rows=[[Cell(r, "mono"), Cell("—" if v is None else "pass" if v else "FAIL",
                                         "" if v is None else "pass" if v else "fail")]
                  for r, v in reversed(list(zip(order, verdicts, strict=True)))],
            collapsed=len(order) > 10,
        )))
    return sec


def _metrics_section(report: Mapping[str, Any]) -> Section | None:
    metrics = report.get("metrics")
    if not isinstance(metrics, Mapping) or not metrics:
        return None
    sec = Section("metrics", "All metrics")
    return sec.add(Part("table", table=Table(
        headers=["metric", "value"],
        rows=[[Cell(str(k), "mono"), Cell(fmt_num(v))] for k, v in sorted(metrics.items())],
        numeric=frozenset({1}), collapsed=len(metrics) > 12,
    )))


def _is_scalar(value: object) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _is_fact(value: object) -> bool:
    """A scalar, or a short list of scalars (shown as one comma-separated fact)."""
    return _is_scalar(value) or (
        isinstance(value, list) and len(value) <= 20 and all(_is_scalar(v) for v in value)
    )


def _fact(value: object) -> str:
    if isinstance(value, list):
        return ", ".join(fmt_num(v) for v in value) or "none"
    return fmt_num(value)


def _generic_section(key: str, value: object) -> Section:
    """A section no renderer knows: scalars as facts, lists of flat records as tables,
    anything deeper as escaped JSON (so nothing a stage adds is hidden)."""
    sec = Section(f"x-{key}", key.replace("_", " "))
    if isinstance(value, Mapping):
        facts = [(str(k).replace("_", " "), _fact(v), "") for k, v in value.items()
                 if _is_fact(v)]
        if facts:
            sec.add(Part("facts", facts=facts))
        for k, v in value.items():
            if _is_fact(v):
                continue
            sec.add(Part("heading", text=str(k).replace("_", " ")))
            sec.parts += _generic_parts(v)
        return sec
    sec.parts += _generic_parts(value)
    return sec


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
        return [Part("facts", facts=[(str(k).replace("_", " "), _fact(v), "")
                                     for k, v in value.items()])]
    text = json.dumps(value, indent=2, default=str, ensure_ascii=False)
    return [Part("pre", text=excerpt(text, 20_000))]


def _other_sections(report: Mapping[str, Any]) -> list[Section]:
    return [
        _generic_section(key, value)
        for key, value in report.items()
        if key not in _KNOWN_SECTIONS
    ]


def _paths_section(report: Mapping[str, Any]) -> Section | None:
    paths = report.get("paths")
    if not isinstance(paths, Mapping) or not paths:
        return None
    sec = Section("paths", "Where things are")
    return sec.add(Part("table", table=Table(
        headers=["what", "path"],
        rows=[[Cell(str(k).replace("_", " ")), Cell(str(v), "mono")] for k, v in paths.items()],
    )))


# ------------------------------------------------------------------------ entry points


def render_html(
    report: Mapping[str, Any],
    *,
    history: pl.DataFrame | None = None,
    label_issues: pl.DataFrame | None = None,
    trend_runs: int = TREND_RUNS,
) -> str:
    """The report as one self-contained HTML page (no script, no network).

    ``history``: ``metrics_history`` rows (run_id, metric, value[, recorded_at]) of this
    dataset; the current run is appended from ``report['metrics']`` if it is not in it.
    ``label_issues``: per-row frame with ``label_quality`` (and ``is_label_issue``) for the
    quality histogram. Sections follow the keys present in ``report``.
    """
    gate: Mapping[str, Any] = report.get("gate") or {}
    sections: list[Section | None] = [
        _gate_section(report),
        _rows_section(report),
        _quarantine_section(report),
        _classes_section(report),
    ]
    if isinstance(report.get("label_issues"), Mapping):
        sections.append(_label_issues_section(report["label_issues"], label_issues))
    if isinstance(report.get("agreement"), Mapping):
        sections.append(_agreement_section(report["agreement"], gate))
    dup, leak = report.get("duplicates"), report.get("leakage")
    if isinstance(dup, Mapping) or isinstance(leak, Mapping):
        sections.append(_duplicates_section(dup if isinstance(dup, Mapping) else None,
                                            leak if isinstance(leak, Mapping) else None))
    if isinstance(report.get("splits"), Mapping):
        sections.append(_splits_section(report["splits"]))
    if history is not None:
        sections.append(_trends_section(history, report, runs=trend_runs))
    sections += [_metrics_section(report), *_other_sections(report), _paths_section(report)]
    env = Environment(
        loader=PackageLoader("labelgate", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    return env.get_template("report.html.j2").render(
        head=_header(report),
        kpis=_kpis(report),
        sections=[s for s in sections if s is not None],
        csp=Markup(_CSP),  # a constant: its quotes must stay quotes
    )


def write_html(
    report: Mapping[str, Any],
    *,
    path: str | os.PathLike[str],
    history: pl.DataFrame | None = None,
    label_issues: pl.DataFrame | None = None,
    trend_runs: int = TREND_RUNS,
) -> Path:
    """Render and write atomically (temp file in the same folder, then ``os.replace``).

    ``path`` is the file to write, or an existing folder to write ``report.html`` into.
    Returns the file's path.
    """
    target = Path(path)
    if target.is_dir():
        target = target / "report.html"
    html = render_html(report, history=history, label_issues=label_issues,
                       trend_runs=trend_runs)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".report-", suffix=".html.tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(html)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
