"""The run report: `report.json` for machines, `report.md` for people and Prefect.

Written to `<store>/reports/<dataset>/<run_id>/`; `<store>/reports/<dataset>/latest` is a
symlink to the newest run's folder, replaced atomically. report.md and report.html show the
same sections (`labelgate.report.sections`, built on the view model
`labelgate.report.view`); report.json's shape is `labelgate.report.model`.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from labelgate.gate import GateVerdict
from labelgate.report import plot_cache
from labelgate.report.html import write_html
from labelgate.report.render import render_template
from labelgate.report.sections import build_sections, stage_sections
from labelgate.report.sections.agreement import COEFFICIENTS
from labelgate.report.sections.run import header, kpis
from labelgate.report.view import (
    Fact,
    Section,
    consensus_applied_text,
    csv_lines_text,
    md_cell,
)
from labelgate.store.lake import Batch
from labelgate.store.runs import RunContext, reports_root

if TYPE_CHECKING:  # sklearn/statsmodels behind it: the CLI's quick commands skip them
    from labelgate.stages.agreement.core import AgreementReport

__all__ = [
    "COEFFICIENTS",
    "RowCounts",
    "agreement_section",
    "build_report",
    "consensus_applied_text",
    "csv_lines_text",
    "md_cell",
    "point_latest",
    "read_latest",
    "render_markdown",
    "section_lines",
    "write_report",
]

EXAMPLES = 20
MD_ROWS = 20  # a folded table (HTML <details>) shows this many rows in Markdown


@dataclass(frozen=True)
class RowCounts:
    """The row arithmetic every report shows: input = valid + quarantined + excluded."""

    input: int
    valid: int
    quarantined: int
    excluded: int = 0

    def balanced(self) -> bool:
        """Whether input = valid + quarantined + excluded."""
        return self.input == self.valid + self.quarantined + self.excluded

    def to_dict(self) -> dict[str, Any]:
        """report.json's ``rows``: the counts and whether they add up."""
        return {
            "input": self.input,
            "valid": self.valid,
            "quarantined": self.quarantined,
            "excluded": self.excluded,
            "balanced": self.balanced(),
        }


def build_report(
    run: RunContext,
    *,
    batches: Sequence[Batch],
    rows: RowCounts,
    quarantine: pl.DataFrame,
    classes: pl.DataFrame,
    metrics: Mapping[str, float],
    verdict: GateVerdict,
    paths: Mapping[str, str],
    agreement: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The report as a JSON-ready dict; later stages add sections to it."""
    by_check = (
        quarantine.group_by("column", "check")
        .agg(pl.len().alias("failures"), pl.col("reason").first().alias("example"))
        .sort(["failures", "column", "check"], descending=[True, False, False])
    )
    examples = quarantine.sort("batch", "row", "column").head(EXAMPLES)
    return {
        "dataset": run.dataset,
        "run_id": run.run_id,
        "spec_path": run.spec_path,
        "spec_hash": run.spec_hash,
        "started_at": run.started_at.isoformat(timespec="seconds"),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "rows": rows.to_dict(),
        "sources": [
            {
                "source": b.source,
                "batch": b.batch,
                "file": b.file,
                "rows": b.rows,
                "rejected": b.rejected,
                "reused": b.reused,
                **({"lines": b.lines, "record_lines": b.record_lines,
                    "blank_lines": b.blank_lines, "rejected_lines": b.rejected_lines,
                    "rejected_at": list(b.rejected_at)} if b.lines is not None else {}),
            }
            for b in batches
        ],
        "quarantine": {
            "rows": rows.quarantined,
            "by_column_check": by_check.to_dicts(),
            "examples": examples.to_dicts(),
        },
        "classes": classes.to_dicts(),
        "metrics": dict(metrics),
        "gate": verdict.to_dict() | {"summary": verdict.summary()},
        **({"agreement": dict(agreement)} if agreement is not None else {}),
        "paths": dict(paths),
    }


def agreement_section(
    report: AgreementReport,
    *,
    consensus_method: str,
    n_items_unknown: int,
    n_rows_unknown: int,
    n_unparseable: int,
    settings: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """report.json's `agreement` section: `AgreementReport.to_dict()` plus how the
    annotations relate to the items, which consensus is the training label, and the
    spec's agreement settings used (`settings`, for reproducing the figures)."""
    section = report.to_dict()
    notes = list(section["notes"])
    if n_items_unknown:
        notes.append(
            f"{n_items_unknown} annotated item(s) ({n_rows_unknown} annotation rows) are not "
            "among the run's valid items; they still count towards agreement"
        )
    if n_unparseable:
        notes.append(f"{n_unparseable} annotation/gold record(s) could not be parsed (skipped)")
    return section | {
        "consensus_method": consensus_method,
        "consensus_applied_to_items": False,
        "n_items_not_in_items": n_items_unknown,
        "n_rows_not_in_items": n_rows_unknown,
        "n_unparseable_records": n_unparseable,
        "settings": dict(settings or {}),
        "notes": notes,
    }


def render_markdown(report: Mapping[str, Any]) -> str:
    """The report as Markdown: the verdict first, then the sections of report.html.

    Parameters
    ----------
    report
        The dict written as report.json (`build_report` plus the stages' sections).

    Returns
    -------
    str
        report.md: the `build_sections` list rendered by ``report.md.j2``
        (no plots; folded tables cut to their first rows).
    """
    return _markdown(build_sections(report), head=header(report), kpis=kpis(report))


def section_lines(key: str, section: Mapping[str, Any]) -> list[str]:
    """One optional report section alone (report.json key `key`), as Markdown lines.

    Parameters
    ----------
    key
        A stage section's key: ``review``, ``sft``, ``label_issues``, ``agreement``,
        ``duplicates``, ``leakage``, ``splits`` or ``published``.
    section
        Its value in report.json.

    Returns
    -------
    list[str]
        The lines report.md has for it.
    """
    return _markdown(stage_sections({key: section})).splitlines()


# one section's Markdown, for callers (and tests) that look at a single stage
label_issues_lines = partial(section_lines, "label_issues")
agreement_lines = partial(section_lines, "agreement")


def _markdown(sections: list[Section], *, head: Mapping[str, Any] | None = None,
              kpis: list[Fact] | None = None) -> str:
    """Render `sections` (with the page header when `head` is given) as Markdown, with runs of
    blank lines squeezed to one."""
    text = render_template("report.md.j2", head=head, kpis=kpis or [],
                           sections=sections, md_rows=MD_ROWS)
    return re.sub(r"\n{3,}", "\n\n", text).strip("\n") + "\n"


PLOTS_FOLDER = ".plots"  # the latest report's drawn plots, in each dataset's reports folder


def write_report(
    report: Mapping[str, Any],
    *,
    run: RunContext,
    history: pl.DataFrame | None = None,
    label_issues: pl.DataFrame | None = None,
) -> Path:
    """Write report.md, report.html and report.json, then point `latest` at this run.

    report.json is written last, through a temp file and a rename: it marks the run's
    report folder complete (a remote store's sync relies on it, `labelgate.store.remote`).
    Returns the folder. `history` (metrics_history rows) feeds the HTML trend plots.
    The HTML's plots are kept in the dataset's reports folder (`PLOTS_FOLDER`, hidden: no
    run folder), and a plot with the same inputs as one of the previous report's is read
    from there instead of drawn (`labelgate.report.plot_cache`).
    """
    out = run.report_dir
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.md").write_text(render_markdown(report))
    with plot_cache.kept_in(reports_root(run.store_dir, run.dataset) / PLOTS_FOLDER):
        write_html(report, path=out / "report.html", history=history,
                   label_issues=label_issues)
    tmp = out / f".report.json-{os.getpid()}"
    tmp.write_text(json.dumps(report, indent=2, default=str) + "\n")
    os.replace(tmp, out / "report.json")
    point_latest(reports_root(run.store_dir, run.dataset), run.run_id)
    return out


def point_latest(root: Path, run_id: str) -> None:
    """Atomically replace the `latest` symlink with one to `run_id`."""
    tmp = root / f".latest-{os.getpid()}"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(run_id, target_is_directory=True)
    os.replace(tmp, root / "latest")


def read_latest(store: Path, dataset: str) -> tuple[Path, dict[str, Any]] | None:
    """The newest report's folder and its parsed report.json, if any."""
    latest = reports_root(store, dataset) / "latest"
    path = latest / "report.json"
    if not path.is_file():
        return None
    return latest.resolve(), json.loads(path.read_text())
