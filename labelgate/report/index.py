"""``STORE/reports/index.html``: the page to bookmark, one row per dataset in the store.

Each dataset shows its latest verdict (the newest finished run's gate), its key figures
(rows valid, quarantine rate, label-issue rate, label health, Krippendorff's alpha where the
run has one), a small trend line of one of them over the last runs (inline SVG, points
coloured by the gate verdict, as in the report's trends) and relative links to its newest
runs' ``report.html``, newest first.

It is built from the warehouse (the ``runs`` table and ``metrics_history``, opened read-only)
and from the report folders (``reports/<dataset>/<run_id>/report.html``; a dataset or run
with a report folder but no warehouse record is shown from its ``report.json``). Like
report.html it has no script and no network (the same Content-Security-Policy), and every
value from the store reaches the page through jinja2's autoescape; link paths are also
URL-quoted. `write_index` rewrites it atomically (temp file, then rename), so a browser or
a concurrent run never sees half a page.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from markupsafe import Markup

from labelgate.report import plot_cache
from labelgate.report.html import CSP, write_atomic
from labelgate.report.render import render_template
from labelgate.report.sections.run import TREND_METRICS, TREND_RUNS
from labelgate.report.view import Fact, Plot, _mapping, _plot, fmt_num, fmt_pct
from labelgate.store import warehouse

__all__ = ["INDEX_FILE", "RECENT_RUNS", "DatasetEntry", "RunLink", "index_entries",
           "write_index"]

INDEX_FILE = "index.html"
PLOTS_FOLDER = ".plots"  # the index's drawn sparklines (`labelgate.report.plot_cache`)
RECENT_RUNS = 5  # links per dataset

# (label, TREND_METRICS title it reads, shown as a percentage): the index's key figures
_FIGURES: tuple[tuple[str, str, bool], ...] = (
    ("quarantine rate", "quarantine rate", True),
    ("label-issue rate", "label issue rate", True),
    ("label health", "label health score", False),
    ("Krippendorff's α", "Krippendorff's α", False),
)
# the trend line shows the first of these the dataset has in two runs or more
_TREND_ORDER = ("label issue rate", "quarantine rate", "Krippendorff's α", "valid rows")
_NAMES = {title: (names, percent) for title, names, percent in TREND_METRICS}
_RUN_SQL = (
    "SELECT run_id, dataset, status, started_at, gate_passed, rows_valid, message FROM runs"
    " ORDER BY dataset, started_at DESC NULLS LAST, run_id DESC"
)


@dataclass(frozen=True)
class RunLink:
    """One run in a dataset's row: its id, when, its status and the link to its report
    (relative to the index; empty when the run has no report.html)."""

    run_id: str
    started_at: str
    status: str  # passed | failed | error | running | abandoned | ...
    href: str


@dataclass
class DatasetEntry:
    """One dataset's row of the index."""

    name: str
    verdict: str = ""  # "PASSED" | "FAILED" | "" (no finished run with a gate)
    run_id: str = ""  # the run the verdict and the figures are from
    started_at: str = ""  # when that run started, "YYYY-MM-DD HH:MM UTC"
    figures: list[Fact] = field(default_factory=list)
    trend: Plot | None = None
    trend_title: str = ""
    runs: list[RunLink] = field(default_factory=list)
    n_runs: int = 0
    latest_href: str = ""


def write_index(store_root: str | os.PathLike[str]) -> Path:
    """Rewrite ``<store_root>/reports/index.html`` (atomically) and return its path.

    Parameters
    ----------
    store_root
        The store folder (the one holding ``warehouse.duckdb`` and ``reports/``).

    Returns
    -------
    Path
        The index page written.
    """
    root = Path(store_root)
    reports = root / "reports"
    entries = index_entries(root)
    with plot_cache.kept_in(reports / PLOTS_FOLDER):  # the other datasets' lines: unchanged
        page = render_template(
            "index.html.j2", datasets=entries, csp=Markup(CSP),  # a constant: quotes stay
            generated=datetime.now(UTC).isoformat(timespec="seconds"), recent=RECENT_RUNS,
        )
    return write_atomic(reports / INDEX_FILE, page)


def index_entries(store_root: Path, *, recent: int = RECENT_RUNS,
                  trend_runs: int = TREND_RUNS) -> list[DatasetEntry]:
    """Every dataset of the store (warehouse runs and report folders), sorted by name.

    Parameters
    ----------
    store_root
        The store folder.
    recent
        How many runs each row links to, newest first.
    trend_runs
        How many runs the trend line covers.

    Returns
    -------
    list[DatasetEntry]
        One entry per dataset.
    """
    reports = store_root / "reports"
    runs: dict[str, list[tuple[Any, ...]]] = {}
    history: dict[str, dict[tuple[str, str], float]] = {}
    order: dict[str, list[str]] = {}
    db = store_root / warehouse.WAREHOUSE_FILE
    if db.is_file():
        with warehouse.connect(db, read_only=True) as con:
            for row in con.execute(_RUN_SQL).fetchall():
                runs.setdefault(str(row[1]), []).append(row)
            for name in runs:
                frame = warehouse.metric_history(con, name, last_runs=trend_runs)
                order[name] = frame.get_column("run_id").unique(maintain_order=True).to_list()
                history[name] = {(r, m): v for r, m, v in frame.select(
                    "run_id", "metric", "value").iter_rows() if v is not None}
    folders = {p.name for p in reports.iterdir() if p.is_dir() and not p.is_symlink()
               and not p.name.startswith(".")} if reports.is_dir() else set()
    return [_entry(name, reports / name, runs.get(name, []), order.get(name, []),
                   history.get(name, {}), recent=recent)
            for name in sorted(set(runs) | folders)]


def _entry(name: str, folder: Path, rows: Sequence[tuple[Any, ...]], order: list[str],
           history: Mapping[tuple[str, str], float], *, recent: int) -> DatasetEntry:
    """A dataset's row: the verdict and figures of its newest finished run, its trend,
    its newest runs."""
    entry = DatasetEntry(name)
    known = {str(r[0]) for r in rows}
    # runs with a report folder but no warehouse record (e.g. a copied reports folder)
    extra = [_from_report(folder / run_id) for run_id in _report_runs(folder) - known]
    all_runs = [*rows, *(r for r in extra if r is not None)]
    all_runs.sort(key=lambda r: (_iso(r[3]), str(r[0])), reverse=True)
    entry.n_runs = len(all_runs)
    entry.runs = [RunLink(str(r[0]), _iso(r[3]), _status(r[2], r[4]),
                          _href(folder, name, str(r[0]))) for r in all_runs[:recent]]
    if (folder / "latest" / "report.html").is_file():
        entry.latest_href = f"{quote(name, safe='')}/latest/report.html"
    finished = next((r for r in all_runs if r[4] is not None
                     and str(r[2]) not in ("running", "error", "abandoned")), None)
    if finished is not None:
        run_id = str(finished[0])
        entry.verdict = "PASSED" if finished[4] else "FAILED"
        entry.run_id, entry.started_at = run_id, _when(finished[3])
        entry.figures = _figures(finished, {m: v for (r, m), v in history.items()
                                            if r == run_id})
    entry.trend, entry.trend_title = _trend(name, order, history)
    return entry


def _figures(run: tuple[Any, ...], metrics: Mapping[str, float]) -> list[Fact]:
    """The key figures of a run: rows valid, then the `_FIGURES` it has."""
    valid = run[5] if run[5] is not None else _metric(metrics, "valid rows")
    out: list[Fact] = [("rows valid", fmt_num(valid), "")]
    for label, title, percent in _FIGURES:
        value = _metric(metrics, title)
        if value is not None:
            out.append((label, fmt_pct(value) if percent else fmt_num(value), ""))
    return out


def _metric(metrics: Mapping[str, float], title: str) -> float | None:
    """The first of the `TREND_METRICS` names for `title` that `metrics` has, finite."""
    names, _ = _NAMES[title]
    value = next((metrics[n] for n in names if n in metrics), None)
    return value if value is not None and math.isfinite(value) else None


def _trend(name: str, order: list[str], history: Mapping[tuple[str, str], float]
           ) -> tuple[Plot | None, str]:
    """A sparkline of the first `_TREND_ORDER` metric recorded in two runs or more."""
    for title in _TREND_ORDER:
        names, percent = _NAMES[title]
        points = [next((history[(r, n)] for n in names if (r, n) in history), None)
                  for r in order]
        if sum(p is not None and math.isfinite(p) for p in points) >= 2:
            passed = [None if (v := history.get((r, "gate_passed"))) is None else v >= 0.5
                      for r in order]
            return _plot("sparkline", points, passed=passed, percent=percent,
                         salt=f"index-{name}"), f"{title}, last {len(order)} runs"
    return None, ""


def _report_runs(folder: Path) -> set[str]:
    """The run folders of a dataset's reports folder that hold a report.html."""
    if not folder.is_dir():
        return set()
    return {p.name for p in folder.iterdir()
            if p.is_dir() and not p.is_symlink() and (p / "report.html").is_file()}


def _from_report(folder: Path) -> tuple[Any, ...] | None:
    """A run row (as `_RUN_SQL` selects it) from a report folder's report.json."""
    try:
        rep = json.loads((folder / "report.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(rep, dict):
        return None
    gate = _mapping(rep.get("gate")) or {}
    passed = gate.get("passed") if isinstance(gate.get("passed"), bool) else None
    rows = _mapping(rep.get("rows")) or {}
    status = "passed" if passed else "failed" if passed is False else "unknown"
    return (folder.name, rep.get("dataset"), status, rep.get("started_at"), passed,
            rows.get("valid"), None)


def _href(folder: Path, name: str, run_id: str) -> str:
    """The link from the index to a run's report.html; empty when there is none."""
    if not (folder / run_id / "report.html").is_file():
        return ""
    return f"{quote(name, safe='')}/{quote(run_id, safe='')}/report.html"


def _status(status: object, passed: object) -> str:
    """A run's status as the index shows it (a finished run: passed or failed)."""
    if isinstance(passed, bool) and status not in ("error", "abandoned", "running"):
        return "passed" if passed else "failed"
    return str(status or "unknown")


def _when(value: object) -> str:
    """A start time as people read it: ``2026-12-01 00:11 UTC`` (text as it is)."""
    if isinstance(value, datetime):
        stamp = value.astimezone(UTC) if value.tzinfo else value
        return stamp.strftime("%Y-%m-%d %H:%M UTC")
    return "" if value is None else str(value)


def _iso(value: object) -> str:
    """A timestamp as ISO text to the second, UTC (text as it is; None: empty)."""
    if isinstance(value, datetime):
        stamp = value.astimezone(UTC) if value.tzinfo else value
        return stamp.isoformat(timespec="seconds")
    return "" if value is None else str(value)
