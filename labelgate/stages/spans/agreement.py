"""Agreement between span annotators: exact-match and overlap F1 per entity type, and
token-level Cohen's kappa.

For two annotators over the documents both annotated, a span of one *matches* a span of
the other of the same type when the offsets are equal (exact) or the spans share a
character (overlap; each span matched at most once, greedily in offset order). F1 =
2 x matches / (spans of one + spans of the other), symmetric, so it needs no reference
annotator. Token kappa: each token's BIO-free type (``O`` or the type of the span it is
in), Cohen's kappa over every token of the shared documents. With more than two
annotators, every pair's figures are averaged (weighted by their spans or tokens).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import polars as pl

from labelgate.stages.spans.tokens import Span, spans_to_bio, tokenize


def _matches(a: Sequence[Span], b: Sequence[Span], *, exact: bool) -> int:
    used: set[int] = set()
    n = 0
    for s in sorted(a):
        for j, t in enumerate(sorted(b)):
            if j in used or s[2] != t[2]:
                continue
            if (s[0], s[1]) == (t[0], t[1]) if exact else (s[0] < t[1] and t[0] < s[1]):
                used.add(j)
                n += 1
                break
    return n


def _by_type(spans: Sequence[Span]) -> dict[str, list[Span]]:
    out: dict[str, list[Span]] = {}
    for s in spans:
        out.setdefault(s[2], []).append(s)
    return out


@dataclass(frozen=True)
class SpanAgreement:
    """``per_type``: type, spans (both annotators' of each pair, summed), exact_f1,
    overlap_f1; ``exact_f1``/``overlap_f1``: micro over types; ``token_kappa``; ``pairs``:
    annotator pairs with shared documents."""

    per_type: pl.DataFrame
    exact_f1: float
    overlap_f1: float
    token_kappa: float
    pairs: int


def span_agreement(texts: Mapping[str, str], spans: pl.DataFrame, *,
                   annotated: pl.DataFrame | None = None) -> SpanAgreement:
    """Agreement over ``spans`` (doc, start, end, label, annotator; valid spans only) of
    the documents ``texts`` (doc -> text). ``annotated`` (doc, annotator) lists who
    annotated what, so an annotator who marked no span in a document counts there (by
    default, the pairs that have a span)."""
    from sklearn.metrics import cohen_kappa_score

    by: dict[str, dict[str, list[Span]]] = {}
    for doc, s, e, label, who in spans.select("doc", "start", "end", "label",
                                              "annotator").iter_rows():
        by.setdefault(str(who), {}).setdefault(doc, []).append((s, e, label))
    done: dict[str, set[str]] = {who: set(d) for who, d in by.items()}
    if annotated is not None:
        for doc, who in annotated.select("doc", "annotator").iter_rows():
            done.setdefault(str(who), set()).add(doc)
            by.setdefault(str(who), {})
    counts: dict[str, list[int]] = {}  # type -> [spans, exact matches, overlap matches]
    xs: list[str] = []
    ys: list[str] = []
    pairs = 0
    for a, b in itertools.combinations(sorted(by), 2):
        shared = sorted(done[a] & done[b])
        if not shared:
            continue
        pairs += 1
        for doc in shared:
            sa, sb = by[a].get(doc, []), by[b].get(doc, [])
            ta, tb = _by_type(sa), _by_type(sb)
            for t in set(ta) | set(tb):
                c = counts.setdefault(t, [0, 0, 0])
                c[0] += len(ta.get(t, [])) + len(tb.get(t, []))
                c[1] += 2 * _matches(ta.get(t, []), tb.get(t, []), exact=True)
                c[2] += 2 * _matches(ta.get(t, []), tb.get(t, []), exact=False)
            tokens = tokenize(texts.get(doc, ""))
            xs += [t.partition("-")[2] or "O" for t in spans_to_bio(tokens, sa)]
            ys += [t.partition("-")[2] or "O" for t in spans_to_bio(tokens, sb)]
    rows = [{"type": t, "spans": c[0], "exact_f1": c[1] / c[0] if c[0] else None,
             "overlap_f1": c[2] / c[0] if c[0] else None} for t, c in sorted(counts.items())]
    per_type = pl.DataFrame(rows, schema={"type": pl.String, "spans": pl.Int64,
                                          "exact_f1": pl.Float64, "overlap_f1": pl.Float64})
    total = sum(c[0] for c in counts.values())
    exact = sum(c[1] for c in counts.values()) / total if total else float("nan")
    over = sum(c[2] for c in counts.values()) / total if total else float("nan")
    kappa = float(cohen_kappa_score(xs, ys)) if len(set(xs) | set(ys)) > 1 else float("nan")
    return SpanAgreement(per_type, exact, over, kappa, pairs)
