"""Every section of the run report, in order, and the registry of stage sections.

`SECTION_VIEWS` maps a ``report.json`` key to the view that turns it into a `Section`; it is
the one place that knows them. `stage_sections` shows each stage key of a report by its view,
any other key by `generic_view`, so a new stage's section is one entry in `SECTION_VIEWS`, or
none. `build_sections` puts the run's own sections (``labelgate.report.sections.run``) around
them. Both renderers (report.md and report.html) show the list it returns.

One module per section family: ``run`` (header, gate, rows, contract failures, classes,
trends, metrics, paths), ``review`` (review, sft), ``label_issues``, ``agreement``,
``duplicates`` (with leakage), ``splits`` (with published) and ``generic``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import polars as pl

from labelgate.report.sections.agreement import agreement_view
from labelgate.report.sections.dimensions import dimensions_view
from labelgate.report.sections.duplicates import duplicates_view
from labelgate.report.sections.generic import generic_view
from labelgate.report.sections.label_issues import label_issues_view
from labelgate.report.sections.multilabel import multilabel_view
from labelgate.report.sections.preference import preference_view
from labelgate.report.sections.review import review_view, sft_view
from labelgate.report.sections.run import (
    TREND_RUNS,
    classes_view,
    gate_view,
    metrics_view,
    paths_view,
    quarantine_view,
    rows_view,
    trends_view,
)
from labelgate.report.sections.spans import spans_view
from labelgate.report.sections.splits import published_view, splits_view
from labelgate.report.view import Section, _mapping

__all__ = ["SECTION_VIEWS", "SectionView", "build_sections", "stage_sections"]

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
    "label_issues": lambda s, r, f: label_issues_view(
        s, f, splits=_mapping(r.get("splits")), published="published" in r),
    "duplicates": lambda s, r, f: duplicates_view(s, _mapping(r.get("leakage"))),
    "leakage": _leakage_alone,
    "splits": lambda s, r, f: splits_view(s),
    "preference": lambda s, r, f: preference_view(s),
    "multilabel": lambda s, r, f: multilabel_view(s),
    "spans": lambda s, r, f: spans_view(s),
    "dimensions": lambda s, r, f: dimensions_view(s),
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
