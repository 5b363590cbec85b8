"""The ``spans`` section (task spans): entity types, probable span errors (flagged tokens,
the most frequent given -> suggested swaps) and the annotators' span agreement (exact and
overlap F1 per type, token kappa); a plot of spans per type."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from labelgate.report.view import (
    Part,
    Section,
    _as_rows,
    _mapping,
    _plot,
    _records,
    excerpt,
    fmt_num,
    fmt_pct,
)


def _facts(sec: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    issues: Mapping[str, Any] = _mapping(sec.get("issues")) or {}
    ag: Mapping[str, Any] = _mapping(sec.get("agreement")) or {}
    rows = [("spans", f"{fmt_num(sec.get('spans'))} in {fmt_num(sec.get('rows'))} rows "
             f"(overlaps: {sec.get('overlap')})")]
    if issues:
        tokens = issues.get("tokens") or 0
        rate = (issues.get("flagged_tokens") or 0) / tokens if tokens else None
        rows.append(("tokens flagged", f"{fmt_num(issues.get('flagged_tokens'))} of "
                     f"{fmt_num(tokens)} ({fmt_pct(rate, 2)}), in "
                     f"{fmt_num(issues.get('flagged_rows'))} rows; {issues.get('model')}, "
                     f"{issues.get('folds')} folds"))
    else:
        rows.append(("probable span errors", "not computed (off, or too few rows)"))
    if ag:
        rows.append(("span agreement", f"exact F1 {fmt_num(ag.get('exact_f1'))}, overlap F1 "
                     f"{fmt_num(ag.get('overlap_f1'))}, token κ {fmt_num(ag.get('token_kappa'))} "
                     f"({fmt_num(ag.get('pairs'))} annotator pairs)"))
    return [(label, value, "") for label, value in rows]


def spans_view(sec: Mapping[str, Any]) -> Section:
    """report.json's ``spans`` section as a report section."""
    out = Section("spans", "Entity spans")
    out.add(Part("facts", facts=_facts(sec)))
    types = _as_rows(sec.get("types"))
    if types:
        out.add(Part("plots", plots=[_plot(
            "bar_chart", [t.get("type") for t in types],
            [float(t.get("spans") or 0) for t in types], title="Spans by type",
            xlabel="valid spans", salt="spans-types")]))
    issues = _mapping(sec.get("issues")) or {}
    out.table(_records(
        issues.get("swaps"), ["given", "suggested", "tokens"],
        lambda r: [r.get("given"), r.get("suggested"), r.get("len")],
        caption="Most frequent probable errors (given type -> suggested type)",
        numeric=[2], collapsed=False))
    out.table(_records(
        issues.get("top"), ["id", "token", "given", "suggested", "quality", "text"],
        lambda r: [r.get("id"), r.get("word"), r.get("given"), r.get("suggested"),
                   fmt_num(r.get("quality")), excerpt(r.get("text"))],
        caption="Tokens most likely mislabeled (lowest quality first)", numeric=[4],
        limit=50, collapsed=True))
    ag = _mapping(sec.get("agreement")) or {}
    out.table(_records(
        ag.get("per_type"), ["type", "spans (both sides)", "exact F1", "overlap F1"],
        lambda r: [r.get("type"), r.get("spans"), fmt_num(r.get("exact_f1")),
                   fmt_num(r.get("overlap_f1"))],
        caption="Agreement by type", numeric=range(1, 4), collapsed=True))
    return out
