"""Sections no builder knows: `generic_view` shows any ``report.json`` key (scalars as
facts, flat records as tables, anything deeper as escaped JSON), so nothing a stage adds is
hidden; `_rest_parts` shows the keys a known section's builder does not.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from labelgate.report.view import (
    TABLE_ROWS,
    TEXT_EXCERPT,
    Cell,
    Part,
    Section,
    Table,
    _as_rows,
    _fact,
    _is_fact,
    _is_scalar,
    _label,
    excerpt,
    fmt_num,
)


def generic_view(key: str, value: object) -> Section:
    """A section no builder knows: scalars as facts, lists of flat records as tables,
    anything deeper as escaped JSON (so nothing a stage adds is hidden)."""
    sec = Section(f"x-{key}", _label(key))
    sec.parts += (_rest_parts(value, known=()) if isinstance(value, Mapping)
                  else _generic_parts(value))
    return sec


def _rest_parts(value: Mapping[str, Any], known: Iterable[str]) -> list[Part]:
    """The keys of a section other than `known`: facts first, then a heading and a
    generic rendering per deeper key."""
    skip = set(known)
    rest = {k: v for k, v in value.items() if k not in skip}
    facts = [(_label(k), _fact(v), "") for k, v in rest.items() if _is_fact(v)]
    parts = [Part("facts", facts=facts)] if facts else []
    for k, v in rest.items():
        if not _is_fact(v):
            parts += [Part("heading", text=_label(k)), *_generic_parts(v)]
    return parts


def _flat(record: Mapping[str, Any], prefix: str = "") -> dict[str, Any] | None:
    """A record with nested dicts flattened to `a.b` keys, or None if anything is deeper."""
    out: dict[str, Any] = {}
    for k, v in record.items():
        if _is_scalar(v):
            out[prefix + str(k)] = v
        elif isinstance(v, Mapping) and not prefix:
            inner = _flat(v, f"{k}.")
            if inner is None:
                return None
            out |= inner
        else:
            return None
    return out


def _generic_parts(value: object) -> list[Part]:
    """A value no builder knows: flat records as a table, scalars as facts, else JSON."""
    if value == [] or value == {}:
        return [Part("text", text="none")]
    if isinstance(value, Mapping) and value and all(isinstance(v, Mapping)
                                                    for v in value.values()):
        flat = {str(k): _flat(v) for k, v in value.items()}
        if all(f is not None for f in flat.values()):  # e.g. published splits
            value = [{"name": k, **(f or {})} for k, f in flat.items()]
    rows = _as_rows(value)
    if rows and all(all(_is_scalar(v) for v in r.values()) for r in rows):
        headers = list(dict.fromkeys(k for r in rows for k in r))
        return [Part("table", table=Table(
            headers=headers,
            rows=[[Cell(excerpt(fmt_num(r.get(h)), TEXT_EXCERPT)) for h in headers]
                  for r in rows[:TABLE_ROWS]],
            collapsed=len(rows) > 12,
        ))]
    if isinstance(value, Mapping) and all(_is_fact(v) for v in value.values()):
        return [Part("facts", facts=[(_label(k), _fact(v), "") for k, v in value.items()])]
    text = json.dumps(value, indent=2, default=str, ensure_ascii=False)
    return [Part("pre", text=excerpt(text, 20_000))]
