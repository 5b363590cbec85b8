"""What span trainers read: spaCy-style JSON Lines records with character spans, and
Hugging Face token-classification columns (``tokens``, ``ner_tags``: BIO tag ids, with the
tag names in order)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import polars as pl

from labelgate.stages.spans.tokens import spans_to_bio, tokenize


def bio_names(types: Sequence[str]) -> list[str]:
    """The BIO tag names in id order: ``O``, then ``B-X``, ``I-X`` for each type."""
    return ["O", *[f"{p}-{t}" for t in types for p in ("B", "I")]]


def _spans_of(spans: pl.DataFrame) -> dict[str, list[tuple[int, int, str]]]:
    out: dict[str, list[tuple[int, int, str]]] = {}
    for doc, s, e, label in spans.select("doc", "start", "end", "label").sort(
            "doc", "start", "end").iter_rows():
        out.setdefault(doc, []).append((s, e, label))
    return out


def spacy_records(docs: pl.DataFrame, spans: pl.DataFrame) -> pl.DataFrame:
    """One row per document: ``id``, ``text`` and ``spans`` (a list of {start, end,
    label}), as spaCy's ``Doc.char_span`` and Prodigy read them."""
    by = _spans_of(spans)
    rows: list[dict[str, Any]] = [
        {"id": d, "text": t, "spans": [{"start": s, "end": e, "label": lab}
                                      for s, e, lab in by.get(d, [])]}
        for d, t in docs.select("doc", "text").iter_rows()]
    return pl.DataFrame(rows, schema={"id": pl.String, "text": pl.String, "spans": pl.List(
        pl.Struct({"start": pl.Int64, "end": pl.Int64, "label": pl.String}))})


def hf_token_columns(docs: pl.DataFrame, spans: pl.DataFrame, *, types: Sequence[str]
                     ) -> pl.DataFrame:
    """One row per document: ``id``, ``tokens`` (List(String)) and ``ner_tags``
    (List(Int64), ids into `bio_names(types)`)."""
    names = {n: i for i, n in enumerate(bio_names(types))}
    by = _spans_of(spans)
    ids, tokens, tags = [], [], []
    for d, t in docs.select("doc", "text").iter_rows():
        toks = tokenize(t or "")
        ids.append(d)
        tokens.append([t[s:e] for s, e in toks])
        tags.append([names[b] for b in spans_to_bio(toks, by.get(d, []))])
    return pl.DataFrame({"id": ids, "tokens": tokens, "ner_tags": tags},
                        schema={"id": pl.String, "tokens": pl.List(pl.String),
                                "ner_tags": pl.List(pl.Int64)})
