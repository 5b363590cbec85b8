"""The ``splits`` and ``published`` sections: split settings, rows per split and class,
exclusions by policy, and the version published this run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from labelgate.report.sections.generic import _rest_parts
from labelgate.report.view import (
    Cell,
    Part,
    Section,
    Table,
    _as_rows,
    _facts,
    _float,
    _mapping,
    _plot,
    _records,
    excerpt,
    fmt_num,
    fmt_pct,
)


def splits_view(splits: Mapping[str, Any]) -> Section:
    """Splits: settings as facts, rows per split and class (plots and table), exclusions."""
    sec = Section("splits", "Splits")
    facts = _facts(splits, skip=("counts", "fractions"))
    fractions = _mapping(splits.get("fractions"))
    if fractions is not None:
        facts.append(("target fractions", ", ".join(f"{k} {fmt_num(v)}"
                                                    for k, v in fractions.items()), ""))
    if facts:
        sec.add(Part("facts", facts=facts))
    counts = _as_rows(splits.get("counts"))
    per_split = _mapping(splits.get("rows_per_split"))
    if not counts and per_split:
        sec.add(Part("plots", plots=[_plot(
            "bar_chart", list(per_split), [_float(v) for v in per_split.values()],
            title="Rows per split", xlabel="rows", salt="splits")]))
    if counts:
        sec.parts += _split_counts(counts)
    return sec.table(_records(
        splits.get("excluded"), ["policy", "rows", "example reason"],
        lambda e: [Cell(str(e.get("policy", "")), "mono"), e.get("rows"),
                   Cell(excerpt(e.get("example_reason")))],
        caption="Excluded by policy", numeric={1}))


def _split_counts(counts: Sequence[Mapping[str, Any]]) -> list[Part]:
    """Rows per split and class: two stacked-bar plots and a table with totals."""
    names = list(dict.fromkeys(str(c.get("split")) for c in counts))
    labels = list(dict.fromkeys(c.get("label") for c in counts))
    grid = {(str(c.get("split")), c.get("label")): int(c.get("rows") or 0) for c in counts}
    totals = {s: sum(grid.get((s, lab), 0) for lab in labels) for s in names}
    grand = sum(totals.values())
    series = {str(lab): [float(grid.get((s, lab), 0)) for s in names] for lab in labels}
    rows = [[Cell(fmt_num(lab))] + [
        Cell(f"{grid.get((s, lab), 0):,}", title=fmt_pct(
            grid.get((s, lab), 0) / totals[s] if totals[s] else 0.0, 1))
        for s in names] + [Cell(f"{sum(grid.get((s, lab), 0) for s in names):,}")]
        for lab in labels]
    rows.append([Cell("total", "strong")] + [Cell(f"{totals[s]:,}", "strong") for s in names]
                + [Cell(f"{grand:,}", "strong")])
    rows.append([Cell("share of rows")] + [Cell(fmt_pct(totals[s] / grand if grand else 0, 1))
                                            for s in names] + [Cell("")])
    return [
        Part("plots", plots=[
            _plot("stacked_bars", names, series, title="Rows per split, by class",
                  salt="splits"),
            _plot("stacked_bars", names, series, title="Class mix per split",
                  ylabel="share of split", share=True, salt="splits-share"),
        ]),
        Part("table", table=Table(headers=["label", *names, "all"], rows=rows,
                                  numeric=frozenset(range(1, len(names) + 2)))),
    ]


def published_view(pub: Mapping[str, Any]) -> Section:
    """The version published this run, and where ``current`` points."""
    sec = Section("published", "Published")
    sec.add(Part("text", text=(
        f"version v{fmt_num(pub.get('version'))} ({fmt_num(pub.get('rows'))} rows): "
        f"{pub.get('path', '?')}; current points to it.")))
    sec.parts += _rest_parts(pub, known=("version", "rows", "path"))
    return sec
