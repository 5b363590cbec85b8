"""The run report as one self-contained HTML file (`report.html`): inline CSS, inline SVG
plots, no script and no network, so it opens offline in any browser and can be mailed.

``render_html(report, history=..., label_issues=...)`` takes the dict the pipeline writes as
``report.json`` (see ``labelgate.report.build_report``), optionally the ``metrics_history``
rows (run_id, metric, value, recorded_at) for trend plots and the per-row label-issue frame
(``label_quality``, optionally ``is_label_issue``) for the quality histogram. The sections
are ``labelgate.report.sections.build_sections``, the same list report.md shows: gate, rows,
contract failures, classes, each stage section present, trends, all metrics, any other key
and paths.

Every string from the data or the spec reaches the page through jinja2 with autoescape on
(and matplotlib escapes text inside the SVG plots), so a row whose text is
``<script>...</script>`` or ``</table>`` renders as text. A Content-Security-Policy meta tag
forbids scripts and remote loads as a second line of defence.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import polars as pl
from markupsafe import Markup

from labelgate.report.render import render_template
from labelgate.report.sections import build_sections
from labelgate.report.sections.run import TREND_METRICS, TREND_RUNS, header, kpis
from labelgate.report.view import fmt_num, fmt_pct

__all__ = ["CSP", "TREND_METRICS", "fmt_num", "fmt_pct", "render_html", "write_atomic",
           "write_html"]

# no script, no remote load: the report and the reports index (labelgate.report.index)
CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
       "base-uri 'none'; form-action 'none'")
_CSP = CSP


def render_html(
    report: Mapping[str, Any],
    *,
    history: pl.DataFrame | None = None,
    label_issues: pl.DataFrame | None = None,
    trend_runs: int = TREND_RUNS,
) -> str:
    """The report as one self-contained HTML page (no script, no network).

    Parameters
    ----------
    report
        The dict written as report.json; the sections follow the keys present in it.
    history
        ``metrics_history`` rows (run_id, metric, value[, recorded_at]) of this dataset, for
        the trend plots; the current run is appended from ``report['metrics']`` if it is
        not in it. None: no trends section.
    label_issues
        Per-row frame with ``label_quality`` (and ``is_label_issue``) for the quality
        histogram.
    trend_runs
        How many runs the trend plots show.

    Returns
    -------
    str
        The page.
    """
    return render_template(
        "report.html.j2",
        head=header(report),
        kpis=kpis(report),
        sections=build_sections(report, history=history, label_issues=label_issues,
                                trend_runs=trend_runs),
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

    Parameters
    ----------
    report, history, label_issues, trend_runs
        As for `render_html`.
    path
        The file to write, or an existing folder to write ``report.html`` into.

    Returns
    -------
    Path
        The file written.
    """
    target = Path(path)
    if target.is_dir():
        target = target / "report.html"
    html = render_html(report, history=history, label_issues=label_issues,
                       trend_runs=trend_runs)
    return write_atomic(target, html)


def write_atomic(target: Path, text: str) -> Path:
    """Write `text` to `target` atomically: a temp file in the same folder (fsynced, mode
    0644), then ``os.replace``; a reader sees the old file or the new one, never a part.

    Parameters
    ----------
    target
        The file to write (its folder is created).
    text
        The content, written as UTF-8.

    Returns
    -------
    Path
        `target`.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}-", suffix=f"{target.suffix}.tmp",
                               dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
