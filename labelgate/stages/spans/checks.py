"""Span checks: each failing span is quarantined with a reason naming its document, its
position and its value; the other spans of the document stay.

- ``span_offsets``: a missing offset, ``start < 0``, ``end > len(text)`` or
  ``start >= end``;
- ``span_text``: the span's recorded text differs from ``text[start:end]`` (Label Studio
  and spaCy exports carry it; a mismatch means the offsets moved);
- ``unknown_type``: a label outside the allowed types (or a missing one);
- ``span_overlap``: with ``overlap: forbid``, a span overlapping an earlier-starting one
  of the same annotator in the same document (``nested`` allows a span inside another;
  ``allow`` allows any).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import polars as pl

Overlap = Literal["forbid", "nested", "allow"]
FAILURE_SCHEMA: dict[str, Any] = {"doc": pl.String, "span": pl.Int64, "check": pl.String,
                                  "failure_value": pl.String, "reason": pl.String}


@dataclass(frozen=True)
class SpanCheckResult:
    """``valid``: the spans that passed (the spans schema); ``failures``: one row per
    failure (doc, span, check, failure_value, reason); ``counts``: failures by check."""

    valid: pl.DataFrame
    failures: pl.DataFrame
    counts: dict[str, int] = field(default_factory=dict)


def _offset_problem(start: int | None, end: int | None, n: int | None) -> str | None:
    if start is None or end is None:
        return "a missing start or end"
    if n is None:
        return "the document has no text"
    if start < 0 or end > n:
        return f"outside the text (0..{n})"
    if start >= end:
        return "start is not before end"
    return None


def _overlaps(spans: list[dict[str, Any]], mode: Overlap) -> dict[int, str]:
    """Index -> the span it overlaps, for one document and annotator's valid spans."""
    bad: dict[int, str] = {}
    ordered = sorted(range(len(spans)), key=lambda i: (spans[i]["start"], -spans[i]["end"]))
    for a_pos, i in enumerate(ordered):
        a = spans[i]
        for j in ordered[:a_pos]:
            b = spans[j]
            if b["end"] <= a["start"] or j in bad:
                continue
            nested = b["start"] <= a["start"] and a["end"] <= b["end"]
            if mode == "nested" and nested:
                continue
            bad[i] = f"[{b['start']}, {b['end']}) {b['label']}"
            break
    return bad


def check_spans(
    docs: pl.DataFrame, spans: pl.DataFrame, *, types: Sequence[str] | None = None,
    overlap: Overlap = "forbid",
) -> SpanCheckResult:
    """Check ``spans`` (the spans schema) against ``docs`` (doc, text).

    Returns the valid spans and the failures; a span failing an offsets check is not
    checked further.
    """
    texts = dict(docs.select("doc", "text").iter_rows())
    allowed = set(types) if types is not None else None
    fails: list[dict[str, Any]] = []
    kept: list[dict[str, Any]] = []
    for s in spans.iter_rows(named=True):
        text = texts.get(s["doc"])
        shown = f"[{s['start']}, {s['end']}) {s['label']}"
        problem = _offset_problem(s["start"], s["end"], None if text is None else len(text))
        if problem is not None:
            fails.append({**s, "check": "span_offsets", "failure_value": shown,
                          "reason": f"span {s['span']} {shown}: {problem}"})
            continue
        assert text is not None
        actual = text[s["start"]:s["end"]]
        if s["recorded"] is not None and s["recorded"] != actual:
            fails.append({**s, "check": "span_text", "failure_value": s["recorded"],
                          "reason": f"span {s['span']} {shown} records {s['recorded']!r} "
                          f"but the text there is {actual!r}"})
            continue
        if s["label"] is None or (allowed is not None and s["label"] not in allowed):
            fails.append({**s, "check": "unknown_type", "failure_value": s["label"],
                          "reason": f"span {s['span']} {actual!r}: type {s['label']!r} is "
                          f"not one of {sorted(allowed or [])}"})
            continue
        kept.append(s)
    if overlap != "allow":
        groups: dict[tuple[str, str | None], list[dict[str, Any]]] = {}
        for s in kept:
            groups.setdefault((s["doc"], s["annotator"]), []).append(s)
        dropped: set[int] = set()
        for group in groups.values():
            for i, other in _overlaps(group, overlap).items():
                s = group[i]
                dropped.add(id(s))
                fails.append({**s, "check": "span_overlap",
                              "failure_value": f"[{s['start']}, {s['end']}) {s['label']}",
                              "reason": f"span {s['span']} [{s['start']}, {s['end']}) "
                              f"{s['label']} overlaps {other} (spans.overlap: {overlap})"})
        kept = [s for s in kept if id(s) not in dropped]
    failures = pl.DataFrame(
        [{k: f[k] for k in FAILURE_SCHEMA} for f in fails], schema=FAILURE_SCHEMA)
    counts = dict(sorted(failures.group_by("check").len().rows()))
    return SpanCheckResult(pl.DataFrame(kept, schema=spans.schema), failures, counts)
