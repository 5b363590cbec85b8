"""Span annotations read into two frames: documents and spans.

- documents: ``doc`` (String, the row's id), ``text`` (String), ``document`` (String: the
  split group; a CoNLL file's ``-DOCSTART-`` section, else the row's own id);
- spans: ``doc``, ``span`` (Int64, position in the row's list), ``start``, ``end``
  (Int64, ``end`` exclusive), ``label`` (String), ``recorded`` (String or null: the span's
  own copy of its text), ``annotator`` (String or null).

Inputs: rows with a text column and a list of ``{start, end, label[, text]}`` (JSON Lines;
the list may be JSON text), a Label Studio NER export (``labels`` results of each
annotation; ``completed_by`` is the annotator), or a CoNLL file (word in the first column,
BIO/IOB tag in the last; blank lines end sentences).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import polars as pl

from labelgate.errors import InputError
from labelgate.stages.spans.tokens import bio_to_spans, join_tokens

DOC_SCHEMA: dict[str, Any] = {"doc": pl.String, "text": pl.String, "document": pl.String}
SPAN_SCHEMA: dict[str, Any] = {"doc": pl.String, "span": pl.Int64, "start": pl.Int64,
                               "end": pl.Int64, "label": pl.String, "recorded": pl.String,
                               "annotator": pl.String}


def _span_records(value: Any, *, where: str) -> list[Mapping[str, Any]]:
    if value is None:
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise InputError(f"{where}: spans are not JSON ({exc.msg})") from exc
    if not isinstance(value, list) or any(not isinstance(v, Mapping) for v in value):
        raise InputError(f"{where}: expected a list of {{start, end, label}} objects")
    return value


def _int_or_none(v: Any) -> int | None:
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


def from_rows(rows: pl.DataFrame, *, id_column: str, text_column: str, spans_column: str,
              annotator_column: str | None = None, group_column: str | None = None,
              where: str = "items") -> tuple[pl.DataFrame, pl.DataFrame]:
    """Rows with a text and a list of spans as (documents, spans). A span missing a
    start or end keeps null there (the checks quarantine it)."""
    docs, spans = [], []
    for i, r in enumerate(rows.iter_rows(named=True)):
        doc = str(r[id_column])
        group = r.get(group_column) if group_column else None
        docs.append({"doc": doc, "text": r[text_column],
                     "document": str(group) if group is not None else doc})
        who = r.get(annotator_column) if annotator_column else None
        for k, s in enumerate(_span_records(r[spans_column], where=f"{where} row {i + 1}")):
            label = s.get("label", s.get("labels"))
            if isinstance(label, list):
                label = label[0] if label else None
            spans.append({"doc": doc, "span": k, "start": _int_or_none(s.get("start")),
                          "end": _int_or_none(s.get("end")),
                          "label": None if label is None else str(label),
                          "recorded": s.get("text"), "annotator": who})
    return (pl.DataFrame(docs, schema=DOC_SCHEMA).unique("doc", keep="first",
                                                         maintain_order=True),
            pl.DataFrame(spans, schema=SPAN_SCHEMA))


def from_label_studio(tasks: Iterable[Mapping[str, Any]], *, text_field: str = "text",
                      ) -> tuple[pl.DataFrame, pl.DataFrame]:
    """A Label Studio JSON export (a list of tasks) as (documents, spans): one span row per
    ``labels`` result of every annotation, the annotation's ``completed_by`` as annotator."""
    docs, spans = [], []
    for t in tasks:
        data = t.get("data") or {}
        doc = str(t.get("id"))
        docs.append({"doc": doc, "text": data.get(text_field), "document": doc})
        for ann in t.get("annotations") or []:
            who = ann.get("completed_by")
            if isinstance(who, Mapping):
                who = who.get("email") or who.get("id")
            k = 0
            for res in ann.get("result") or []:
                if res.get("type") not in (None, "labels"):
                    continue
                v = res.get("value") or {}
                labels = v.get("labels") or [None]
                spans.append({"doc": doc, "span": k, "start": _int_or_none(v.get("start")),
                              "end": _int_or_none(v.get("end")), "label": labels[0],
                              "recorded": v.get("text"),
                              "annotator": None if who is None else str(who)})
                k += 1
    return pl.DataFrame(docs, schema=DOC_SCHEMA), pl.DataFrame(spans, schema=SPAN_SCHEMA)


def from_conll(text: str, *, name: str = "conll") -> tuple[pl.DataFrame, pl.DataFrame]:
    """A CoNLL file as (documents, spans): each sentence a row (``<name>:<n>``), its words
    joined by single spaces; ``-DOCSTART-`` lines start a new document (the split group)."""
    docs: list[dict[str, Any]] = []
    spans: list[dict[str, Any]] = []
    words: list[str] = []
    tags: list[str] = []
    document = f"{name}:doc0"
    n_docs = 0

    def flush() -> None:
        if not words:
            return
        doc = f"{name}:{len(docs) + 1}"
        sentence, offsets = join_tokens(words)
        docs.append({"doc": doc, "text": sentence, "document": document})
        for k, (s, e, label) in enumerate(bio_to_spans(offsets, tags)):
            spans.append({"doc": doc, "span": k, "start": s, "end": e, "label": label,
                          "recorded": sentence[s:e], "annotator": None})
        words.clear()
        tags.clear()

    for line_no, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if not parts:
            flush()
            continue
        if parts[0] == "-DOCSTART-":
            flush()
            n_docs += 1
            document = f"{name}:doc{n_docs}"
            continue
        if len(parts) < 2:
            raise InputError(f"{name} line {line_no}: expected a word and a tag, got {line!r}")
        words.append(parts[0])
        tags.append(parts[-1])
    flush()
    return pl.DataFrame(docs, schema=DOC_SCHEMA), pl.DataFrame(spans, schema=SPAN_SCHEMA)
