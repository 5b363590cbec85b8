"""The ``multilabel`` section (task multilabel): tags and their counts, tags per row,
probable tag errors (per-tag issue rates, the tags most often missing or wrongly added,
the lowest-quality flagged rows) and the annotators' agreement (alpha with MASI, per-tag
kappa); a plot of each tag's issue rate."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from labelgate.report.view import (
    Part,
    Plot,
    Section,
    _as_rows,
    _float,
    _mapping,
    _plot,
    _records,
    excerpt,
    fmt_num,
    fmt_pct,
)


def _plots(sec: Mapping[str, Any]) -> list[Plot]:
    tags = [t for t in _as_rows(sec.get("tags")) if _float(t.get("issue_rate")) is not None]
    if not tags:
        return []
    tags = sorted(tags, key=lambda t: -(_float(t.get("issue_rate")) or 0.0))
    return [_plot(
        "bar_chart", [t.get("tag") for t in tags], [_float(t.get("issue_rate")) for t in tags],
        title="Probable tag errors by tag (missing or wrongly added, share of rows)",
        xlabel="share of valid rows", percent=True, salt="ml-tags")]


def _facts(sec: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    issues: Mapping[str, Any] = _mapping(sec.get("issues")) or {}
    ag: Mapping[str, Any] = _mapping(sec.get("agreement")) or {}
    per_row = sec.get("tags_per_row") or {}
    shown = ", ".join(f"{k}: {fmt_num(v)}" for k, v in per_row.items())

    def names(key: str, col: str) -> str:
        return ", ".join(f"{r['tag']} ({fmt_num(r[col])})" for r in issues.get(key) or [])

    rows = [("tags per row (rows)", shown or "n/a")]
    if issues:
        rows += [("rows flagged", f"{fmt_num(issues.get('flagged'))} "
                  f"({fmt_pct(issues.get('rate'), 1)}; {issues.get('model')}, "
                  f"{issues.get('folds')} folds)"),
                 ("tags most often missing", names("most_missing", "missing") or "none"),
                 ("tags most often wrongly added", names("most_added", "added") or "none")]
    else:
        rows.append(("probable tag errors", "not computed (off, or too few rows)"))
    if ag:
        rows.append(("Krippendorff's α (MASI)", f"{fmt_num(ag.get('alpha_masi'))} "
                     f"({fmt_num(ag.get('items'))} items, {fmt_num(ag.get('annotators'))} "
                     "annotators)"))
    return [(label, value, "") for label, value in rows]


def multilabel_view(sec: Mapping[str, Any]) -> Section:
    """report.json's ``multilabel`` section as a report section."""
    out = Section("multilabel", "Multi-label data")
    out.add(Part("text", text=(
        f"{fmt_num(sec.get('rows'))} valid rows with {len(sec.get('tags') or [])} tags "
        f"(column {sec.get('column')!r}).")))
    out.add(Part("facts", facts=_facts(sec)))
    figs = _plots(sec)
    if figs:
        out.add(Part("plots", plots=figs))
    out.table(_records(
        sec.get("tags"), ["tag", "rows", "share", "missing", "added", "issue rate"],
        lambda t: [t.get("tag"), t.get("rows"), fmt_pct(t.get("share"), 1), t.get("missing"),
                   t.get("added"), fmt_pct(t.get("issue_rate"), 2)],
        caption="Tags", numeric=range(1, 6), collapsed=False))
    issues = _mapping(sec.get("issues")) or {}
    out.table(_records(
        issues.get("top"), ["id", "text", "tags", "probably missing", "probably added",
                            "quality"],
        lambda r: [r.get("id"), excerpt(r.get("text")), ", ".join(r.get("tags") or []),
                   ", ".join(r.get("likely_missing") or []),
                   ", ".join(r.get("likely_added") or []), fmt_num(r.get("label_quality"))],
        caption="Rows most likely mistagged (lowest label quality first)", numeric=[5],
        limit=50, collapsed=True))
    ag = _mapping(sec.get("agreement")) or {}
    out.table(_records(
        ag.get("per_tag"), ["tag", "Cohen's κ (mean over pairs)", "annotator pairs",
                            "share of labels with it"],
        lambda t: [t.get("tag"), fmt_num(t.get("kappa")), t.get("pairs"),
                   fmt_pct(t.get("positive"), 1)],
        caption="Agreement by tag", numeric=range(1, 4), collapsed=True))
    return out
