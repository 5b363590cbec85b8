"""The ``dimensions`` section (task dimensions): the label dimensions side by side (kind,
rows, values or range, agreement at the dimension's level, probable label errors and the
flagged-row policy), a plot of each dimension's flagged share, and per dimension the
rows most likely mislabeled."""

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


def _values(dim: Mapping[str, Any]) -> str:
    if dim.get("kind") == "interval":
        d: Mapping[str, Any] = _mapping(dim.get("distribution")) or {}
        return (f"{fmt_num(d.get('min'))}..{fmt_num(d.get('max'))}, mean "
                f"{fmt_num(d.get('mean'))} (sd {fmt_num(d.get('std'))})")
    values = _as_rows(dim.get("values"))
    shown = ", ".join(f"{v.get('value')} ({fmt_num(v.get('rows'))})" for v in values[:6])
    return shown + (f" and {len(values) - 6} more" if len(values) > 6 else "")


def _row(dim: Mapping[str, Any]) -> list[object]:
    issues: Mapping[str, Any] = _mapping(dim.get("issues")) or {}
    ag: Mapping[str, Any] = _mapping(dim.get("agreement")) or {}
    alpha = (f"{fmt_num(ag.get('krippendorff_alpha'))} ({ag.get('level')}, "
             f"{fmt_num(ag.get('n_items'))} items)") if ag else "no annotations"
    flagged = (f"{fmt_num(issues.get('flagged'))} ({fmt_pct(issues.get('rate'), 1)})"
               if issues else "not computed")
    return [dim.get("name"), dim.get("kind"), dim.get("rows"), _values(dim), alpha,
            fmt_pct(ag.get("percent_agreement"), 1) if ag and dim.get("kind") != "interval"
            else "", flagged,
            dim.get("policy") or ""]


def _plots(dims: list[Mapping[str, Any]]) -> list[Plot]:
    rated = [d for d in dims if _mapping(d.get("issues"))]
    if not rated:
        return []
    rates = [_float((_mapping(d.get("issues")) or {}).get("rate")) for d in rated]
    return [_plot("bar_chart", [d.get("name") for d in rated], rates,
                  title="Probable label errors by dimension (share of rated rows)",
                  xlabel="share of rated rows", percent=True, salt="dims")]


def dimensions_view(sec: Mapping[str, Any]) -> Section:
    """report.json's ``dimensions`` section as a report section."""
    dims = _as_rows(sec.get("dimensions"))
    out = Section("dimensions", "Label dimensions")
    out.add(Part("text", text=(
        f"{fmt_num(sec.get('rows'))} valid rows, {len(dims)} label dimensions; "
        f"{fmt_num(sec.get('flagged_rows'))} rows flagged on at least one. A row flagged "
        "on a dimension follows that dimension's policy.")))
    out.table(_records(
        dims, ["dimension", "kind", "rows", "values", "Krippendorff's α", "exact agreement",
               "probable errors", "policy"], _row,
        caption="Dimensions side by side", numeric=[2], collapsed=False))
    figs = _plots(dims)
    if figs:
        out.add(Part("plots", plots=figs))
    for dim in dims:
        issues: Mapping[str, Any] = _mapping(dim.get("issues")) or {}
        given = "predicted" if dim.get("kind") == "interval" else "suggested"
        out.table(_records(
            issues.get("top"), ["id", "text", "given", given, "quality"],
            lambda r: [r.get("id"), excerpt(r.get("text")), r.get("given"),
                       r.get("suggested"), fmt_num(r.get("label_quality"))],
            caption=f"{dim.get('name')}: rows most likely mislabeled ({issues.get('model')})",
            numeric=[4], limit=50, collapsed=True))
    return out
