"""The run's own sections, from the fixed part of ``report.json``: the page header and
headline numbers (`header`, `kpis`), gate checks, rows, contract failures (quarantine),
classes, trends over past runs, all metrics, and paths.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

from labelgate.report.view import (
    Cell,
    Fact,
    Part,
    Plot,
    Section,
    Table,
    _as_rows,
    _float,
    _label,
    _mapping,
    _plot,
    _records,
    csv_lines_text,
    excerpt,
    fmt_num,
    fmt_pct,
)

TREND_RUNS = 30
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


# ------------------------------------------------------------------------ trends, metrics, paths


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


def paths_view(report: Mapping[str, Any]) -> Section | None:
    """Where the run's outputs are."""
    paths = _mapping(report.get("paths"))
    if not paths:
        return None
    return Section("paths", "Where things are").table(Table(
        headers=["what", "path"],
        rows=[[Cell(_label(k)), Cell(str(v), "mono")] for k, v in paths.items()],
    ))
