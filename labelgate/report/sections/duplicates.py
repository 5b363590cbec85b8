"""The ``duplicates`` and ``leakage`` sections, shown as one: leakage across splits, then
duplicate clusters (the largest, and those whose members carry different labels).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from labelgate.report.view import (
    TABLE_ROWS,
    Cell,
    Part,
    Section,
    Table,
    _as_rows,
    _facts,
    _first,
    _float,
    _label,
    _records,
    excerpt,
    fmt_num,
)

# leakage counts (labelgate.stages.splits.leakage); any above 0 is a leak
_LEAK_KEYS = ("exact_pairs", "near_pairs", "group_overlap", "groups_across_splits",
              "clusters_across_splits", "group_rows_across_splits", "total")


def duplicates_view(dup: Mapping[str, Any] | None,
                    leak: Mapping[str, Any] | None) -> Section:
    """Leakage across splits (badge: any count above 0 is bad), then duplicate clusters."""
    sec = Section("duplicates", "Duplicates and leakage")
    if leak is not None:
        keys = tuple(k for k in _LEAK_KEYS if k in leak) or _LEAK_KEYS[:3]
        bad = any((_float(leak.get(k)) or 0) > 0 for k in keys)
        sec.status = "bad" if bad else "ok"
        sec.add(Part("heading", text="Leakage across splits"))
        sec.add(Part("facts", facts=[
            (_label(k), fmt_num(leak.get(k)), "bad" if (_float(leak.get(k)) or 0) > 0 else "good")
            for k in keys
        ] + _facts(leak, skip=keys)))
        examples = _as_rows(leak.get("examples"))
        if examples:
            cols = list(dict.fromkeys(k for e in examples for k in e))
            sec.table(Table(
                caption="Leaking pairs", headers=cols,
                rows=[[Cell(excerpt(e.get(c), 120)) for c in cols] for e in examples[:TABLE_ROWS]],
            ))
    if dup is not None:
        sec.add(Part("heading", text="Duplicates"))
        sec.add(Part("facts", facts=[
            ("duplicate rows", fmt_num(_first(dup, "count", "duplicate_rows")), ""),
            ("clusters", fmt_num(dup.get("clusters")), ""),
            *_facts(dup, skip=("count", "duplicate_rows", "clusters")),
        ]))
        sec.table(_largest_table(dup.get("largest")))
        conflicting = _as_rows(dup.get("conflicting"))
        sec.table(_records(
            conflicting, ["cluster", "rows", "labels", "example"],
            lambda c: [Cell(excerpt(c.get("cluster_id"), 40), "mono"),
                       _first(c, "size", "cluster_size"),
                       ", ".join(str(x) for x in c["labels"])
                       if isinstance(c.get("labels"), list) else c.get("labels"),
                       Cell(excerpt(c.get("example")), "text")],
            caption=f"Clusters whose members carry different labels ({len(conflicting)})",
            numeric={1}, limit=TABLE_ROWS, row_class=lambda _: "bad"))
    return sec


def _largest_table(largest: object) -> Table | None:
    """The largest duplicate clusters (records, or [cluster, size] pairs)."""
    rows: list[list[Cell]] = []
    for r in largest if isinstance(largest, list) else []:
        if isinstance(r, Mapping):
            rows.append([Cell(excerpt(r.get("cluster_id"), 40), "mono"),
                         Cell(fmt_num(_first(r, "size", "cluster_size"))),
                         Cell(excerpt(r.get("example")), "text")])
        elif isinstance(r, list | tuple) and len(r) >= 2:
            rows.append([Cell(excerpt(r[0], 40), "mono"), Cell(fmt_num(r[1])), Cell("")])
    if not rows:
        return None
    return Table(caption="Largest clusters", headers=["cluster", "rows", "example"], rows=rows,
                 numeric=frozenset({1}))
