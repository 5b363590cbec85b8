"""`labelgate history`'s table: one row per run, short headers, cells that fit 80 columns."""

from __future__ import annotations

import polars as pl
from rich.table import Table

from labelgate.gate import GATE_CHECKS


def history_table(runs: pl.DataFrame, wanted: list[str]) -> Table:
    """One row per run (its start as MM-DD HH:MM, the run id's date), short headers, so
    the default metrics fit 80 columns."""
    table = Table(pad_edge=False, box=None, header_style="bold")
    table.add_column("run (UTC)", no_wrap=True)
    for name in wanted:  # a narrow terminal wraps values instead of cutting them
        table.add_column(short_name(name), overflow="fold", justify="right")
    for row in runs.iter_rows(named=True):
        table.add_row(_run_time(row["run_id"]), *(_history_cell(m, row[m]) for m in wanted))
    return table


_SHORT = {
    "gate_passed": "gate", "rows_input": "input", "rows_valid": "valid",
    "quarantine_rate": "quar.", "label_issues.rate": "issues", "label_issues.health_score":
    "health", "agreement.krippendorff_alpha": "alpha", "splits.leakage": "leaks",
}


def short_name(metric: str) -> str:
    return _SHORT.get(metric, metric)


def _run_time(run_id: str) -> str:
    """``20261201T183534Z-3e61f3`` -> ``12-01 18:35``; another id as it is."""
    stamp = run_id.split("-", 1)[0]
    if len(stamp) == 16 and stamp[8] == "T":
        return f"{stamp[4:6]}-{stamp[6:8]} {stamp[9:11]}:{stamp[11:13]}"
    return run_id


def did_you_mean(unknown: list[str], known: set[str]) -> str:
    """A hint for each unknown name: a gate check's metric (`max_label_issue_rate` ->
    `label_issues.rate`), else the closest recorded name."""
    import difflib

    hints = []
    for name in unknown:
        check = GATE_CHECKS.get(name)
        if check is not None and check.metric in known:
            hints.append(f"{name!r} is a gate check; its metric is {check.metric!r}")
            continue
        close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
        if close:
            hints.append(f"did you mean {close[0]!r} for {name!r}?")
    return f" ({'; '.join(hints)})" if hints else ""


def _history_cell(metric: str, value: float | None) -> str:
    if value is None:
        return "—"
    if metric == "gate_passed":
        return "pass" if value >= 0.5 else "[red]FAIL[/red]"
    if metric.endswith("rate"):
        return f"{100 * value:.1f}%"
    if float(value).is_integer() and abs(value) < 1e12:
        return f"{int(value):,}"
    return f"{value:.3g}"


HISTORY_METRICS = (
    "gate_passed",
    "rows_input",
    "rows_valid",
    "quarantine_rate",
    "label_issues.rate",
    "label_issues.health_score",
    "agreement.krippendorff_alpha",
    "splits.leakage",
)
