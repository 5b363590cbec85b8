"""Spec -> spans stage glue (pure; `tasks/spans.py` wraps it for the flow).

- `check_contract_spans`: the contract's valid rows' spans read and checked; a row with a
  failing span is quarantined, one record per failing span (a document missing one of its
  entities would teach a model that the entity is not one); the valid rows' spans column
  becomes a list of {start, end, label};
- `analyze`: types, probable span errors (out-of-fold token model + cleanlab) and, with
  annotations, span agreement: the `spans.*` metrics and the report section;
- `publish_files`: each split as spaCy JSON Lines and Hugging Face token columns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import polars as pl

from checks.contract import QUARANTINE_SCHEMA, ContractResult
from labelgate.errors import InputError
from labelgate.spec import Spec
from labelgate.stages.ingest.readers import BATCH, ROW
from labelgate.stages.spans.agreement import span_agreement
from labelgate.stages.spans.checks import check_spans
from labelgate.stages.spans.formats import hf_token_columns, spacy_records
from labelgate.stages.spans.issues import find_token_issues, out_of_fold_token_probabilities
from labelgate.stages.spans.read import from_rows
from labelgate.stages.spans.tokens import spans_to_bio, tokenize

SPANS_DTYPE = pl.List(pl.Struct({"start": pl.Int64, "end": pl.Int64, "label": pl.String}))
EXCERPT = 240


def _read(rows: pl.DataFrame, *, spec: Spec) -> tuple[pl.DataFrame, pl.DataFrame]:
    sp = spec.spans_settings()
    return from_rows(rows, id_column=spec.columns.id, text_column=spec.columns.text[0],
                     spans_column=sp.column)


@dataclass(frozen=True)
class SpanChecks:
    """What the span checks found: failures by check, rows quarantined by them."""

    counts: dict[str, int]
    rows_quarantined: int
    spans_valid: int

    def sections(self) -> dict[str, Any]:
        return {}


def check_contract_spans(contract: ContractResult, *, spec: Spec
                         ) -> tuple[ContractResult, SpanChecks]:
    """The valid rows' spans through `check_spans`; rows with a failing span quarantined."""
    sp = spec.spans_settings()
    valid = contract.valid.with_columns(pl.col(spec.columns.id).cast(pl.String).alias("_lg_doc"))
    try:
        docs, spans = _read(valid, spec=spec)
    except InputError as exc:
        raise InputError(f"sources.items: {sp.column}: {exc}") from exc
    checked = check_spans(docs, spans, types=sp.types, overlap=sp.overlap)
    keys = valid.select(
        pl.col("_lg_doc").alias("doc"),
        pl.col(BATCH).cast(pl.String).alias("batch") if BATCH in valid.columns
        else pl.lit(None, pl.String).alias("batch"),
        pl.col(ROW).cast(pl.Int64).alias("row") if ROW in valid.columns
        else pl.lit(None, pl.Int64).alias("row"))
    records = checked.failures.join(keys, on="doc", how="left", maintain_order="left").select(
        pl.lit("items").alias("source"), "batch", "row", pl.col("doc").alias("id"),
        pl.lit(sp.column).alias("column"), "check", "failure_value", "reason")
    bad = checked.failures.get_column("doc").unique()
    by_doc = {d: [] for d in docs.get_column("doc").to_list()}  # type: dict[str, list[Any]]
    for d, s, e, lab in checked.valid.select("doc", "start", "end", "label").sort(
            "doc", "start", "end").iter_rows():
        by_doc[d].append({"start": s, "end": e, "label": lab})
    kept = valid.filter(~pl.col("_lg_doc").is_in(bad.implode()))
    kept = kept.with_columns(pl.Series(sp.column, [by_doc[d] for d in kept.get_column(
        "_lg_doc").to_list()], dtype=SPANS_DTYPE)).drop("_lg_doc")
    quarantine = pl.concat([contract.quarantine, records.cast(pl.Schema(QUARANTINE_SCHEMA))])
    result = replace(contract, valid=kept, quarantine=quarantine,
                     rows_quarantined=contract.rows_quarantined + bad.len())
    return result, SpanChecks(checked.counts, bad.len(), checked.valid.height)


@dataclass(frozen=True)
class SpansAnalysis:
    """The spans stage's result: flagged tokens, gate metrics, report section."""

    tokens: pl.DataFrame
    metrics: dict[str, float]
    section: dict[str, Any]

    def sections(self) -> dict[str, Any]:
        return {"spans": self.section}


def span_types(spans: pl.DataFrame, *, spec: Spec) -> list[str]:
    types = spec.spans_settings().types
    return list(types) if types is not None else sorted(
        spans.get_column("label").drop_nulls().unique().to_list())


def document_column(spec: Spec) -> str | None:
    """The column naming each row's document (columns.group), or None."""
    return spec.columns.group


def _token_data(docs: pl.DataFrame, spans: pl.DataFrame, classes: list[str]
                ) -> tuple[list[list[str]], list[list[int]]]:
    index = {c: i for i, c in enumerate(classes)}
    by: dict[str, list[tuple[int, int, str]]] = {}
    for d, s, e, lab in spans.select("doc", "start", "end", "label").iter_rows():
        by.setdefault(d, []).append((s, e, lab))
    words, labels = [], []
    for d, text in docs.select("doc", "text").iter_rows():
        toks = tokenize(text or "")
        words.append([text[s:e] for s, e in toks])
        labels.append([index[t.partition("-")[2] or "O"]
                       for t in spans_to_bio(toks, by.get(d, []))])
    return words, labels


def predicted_probabilities(predictions: pl.DataFrame, doc_ids: list[str],
                            words: list[list[str]], *, spec: Spec, n_classes: int
                            ) -> list[np.ndarray[Any, Any]]:
    """Each row's (tokens, classes) probabilities from a predictions file; InputError
    naming the rows without predictions or with the wrong shape."""
    id_col, col = spec.columns.id, spec.spans_settings().issues.predictions_column
    missing = [c for c in (id_col, col) if c not in predictions.columns]
    if missing:
        raise InputError(f"sources.predictions: column(s) {missing} not in the file; it has "
                         f"{predictions.columns}")
    by = dict(predictions.select(pl.col(id_col).cast(pl.String), col).iter_rows())
    out, bad = [], []
    for doc, w in zip(doc_ids, words, strict=True):
        p = np.asarray(by.get(doc) or [], dtype=np.float64)
        if p.shape != (len(w), n_classes):
            bad.append(f"{doc} {p.shape}")
        out.append(p)
    if bad:
        raise InputError(f"sources.predictions: {len(bad)} row(s) without probabilities of "
                         f"shape (tokens, {n_classes}) (O then spans.types), e.g. "
                         f"{bad[:3]} (row, shape found)")
    return out


def _issues(docs: pl.DataFrame, spans: pl.DataFrame, *, spec: Spec, types: list[str],
            groups: list[str], predictions: pl.DataFrame | None = None,
            ) -> tuple[pl.DataFrame, dict[str, float], dict[str, Any]]:
    sp = spec.spans_settings().issues
    classes = ["O", *types]
    words, labels = _token_data(docs, spans, classes)
    keep = [i for i, w in enumerate(words) if w]
    words = [words[i] for i in keep]
    labels = [labels[i] for i in keep]
    if predictions is not None:
        ids = docs.get_column("doc").to_list()
        probs = predicted_probabilities(predictions, [ids[i] for i in keep], words, spec=spec,
                                        n_classes=len(classes))
    else:
        probs = out_of_fold_token_probabilities(
            words, labels, groups=[groups[i] for i in keep], n_classes=len(classes),
            folds=sp.folds, seed=sp.seed)
    found = find_token_issues(words, labels, probs, classes=classes)
    doc_ids = docs.get_column("doc").to_list()
    texts = docs.get_column("text").to_list()
    tokens = found.tokens.with_columns(
        pl.col("sentence").map_elements(lambda i: doc_ids[keep[i]], return_dtype=pl.String)
        .alias("id"),
        pl.col("sentence").map_elements(lambda i: (texts[keep[i]] or "")[:EXCERPT],
                                        return_dtype=pl.String).alias("text"))
    n_tokens = sum(len(w) for w in words)
    flagged_rows = tokens.get_column("id").n_unique()
    metrics = {"spans.flagged_tokens": float(tokens.height),
               "spans.flagged_token_rate": tokens.height / n_tokens if n_tokens else 0.0,
               "spans.flagged_row_rate": flagged_rows / len(words) if words else 0.0}
    section = {"tokens": n_tokens, "flagged_tokens": tokens.height,
               "flagged_rows": flagged_rows, "folds": sp.folds,
               "model": "the predictions file" if predictions is not None else
               "per-token logistic regression on word, shape, affix and context features; "
               "folds grouped by document",
               "swaps": tokens.group_by("given", "suggested").len().sort(
                   "len", descending=True).head(10).to_dicts(),
               "top": tokens.head(sp.top).to_dicts()}
    return tokens, metrics, section


def _agreement(annotations: pl.DataFrame | None, docs: pl.DataFrame, *, spec: Spec
               ) -> tuple[dict[str, float], dict[str, Any]]:
    if annotations is None:
        return {}, {}
    item, annotator, label, _ = spec.annotation_columns()
    missing = [c for c in (item, annotator, label) if c not in annotations.columns]
    if missing:
        raise InputError(f"sources.annotations: column(s) {missing} not in the annotations "
                         f"(agreement.item/annotator/label); they have {annotations.columns}")
    rows = annotations.unique([item, annotator], keep="last", maintain_order=True)
    _, a_spans = from_rows(rows.with_columns(pl.lit(None, pl.String).alias("_lg_text")),
                           id_column=item, text_column="_lg_text", spans_column=label,
                           annotator_column=annotator, where="sources.annotations")
    texts = dict(docs.select("doc", "text").iter_rows())  # the items' texts
    checked = check_spans(pl.DataFrame({"doc": list(texts), "text": list(texts.values())}),
                          a_spans, types=spec.spans_settings().types, overlap="allow")
    who = rows.select(pl.col(item).cast(pl.String).alias("doc"),
                      pl.col(annotator).cast(pl.String).alias("annotator"))
    ag = span_agreement(texts, checked.valid, annotated=who)
    metrics = {"spans.exact_f1": ag.exact_f1, "spans.overlap_f1": ag.overlap_f1,
               "spans.token_kappa": ag.token_kappa}
    section = {"agreement": {"pairs": ag.pairs, "exact_f1": ag.exact_f1,
                             "overlap_f1": ag.overlap_f1, "token_kappa": ag.token_kappa,
                             "unusable_spans": checked.failures.height,
                             "per_type": ag.per_type.to_dicts()}}
    return ({k: v for k, v in metrics.items() if not math.isnan(v)},
            {"agreement": {k: (None if isinstance(v, float) and math.isnan(v) else v)
                           for k, v in section["agreement"].items()}})


def analyze(valid: pl.DataFrame, *, spec: Spec, annotations: pl.DataFrame | None = None,
            predictions: pl.DataFrame | None = None) -> SpansAnalysis:
    """Types, spans per row, probable span errors and agreement."""
    sp = spec.spans_settings()
    docs, spans = _read(valid, spec=spec)
    types = span_types(spans, spec=spec)
    doc_col = document_column(spec)
    groups = (valid.get_column(doc_col).cast(pl.String).fill_null("").to_list()
              if doc_col else docs.get_column("doc").to_list())
    per_type = spans.group_by("label").len().rename({"label": "type", "len": "spans"})
    metrics: dict[str, float] = {
        "spans.types": float(len(types)), "spans.spans": float(spans.height),
        "spans.min_spans_per_type": float(min(
            (dict(per_type.rows()).get(t, 0) for t in types), default=0))}
    section: dict[str, Any] = {
        "column": sp.column, "rows": valid.height, "spans": spans.height,
        "types": pl.DataFrame({"type": types}).join(per_type, on="type", how="left")
        .with_columns(pl.col("spans").fill_null(0)).to_dicts(),
        "overlap": sp.overlap, "issues": None}
    tokens = pl.DataFrame()
    if sp.issues.enabled and valid.height >= sp.issues.min_rows and types:
        tokens, m, section["issues"] = _issues(docs, spans, spec=spec, types=types,
                                               groups=groups, predictions=predictions)
        metrics |= m
    ag_metrics, ag_section = _agreement(annotations, docs, spec=spec)
    return SpansAnalysis(tokens, metrics | ag_metrics, section | ag_section)


def publish_files(kept: pl.DataFrame, *, spec: Spec, types: list[str]
                  ) -> tuple[dict[str, pl.DataFrame], list[tuple[str, pl.DataFrame]]]:
    """Each split's rows (id, text, spans, document) for ``<split>.parquet``, and the
    spaCy (``<split>.spacy.jsonl``) and Hugging Face (``<split>.hf.parquet``) files."""
    sp = spec.spans_settings()
    text = spec.columns.text[0]
    doc_col = document_column(spec)
    frames: dict[str, pl.DataFrame] = {}
    files: list[tuple[str, pl.DataFrame]] = []
    for name in ("train", "validation", "test"):
        part = kept.filter(pl.col("split") == name)
        cols = [spec.columns.id, text, sp.column, *([doc_col] if doc_col else [])]
        frames[name] = part.select(list(dict.fromkeys(cols)))
        docs, spans = _read(part, spec=spec)
        if "spacy" in sp.formats:
            files.append((f"{name}.spacy.jsonl", spacy_records(docs, spans)))
        if "hf" in sp.formats:
            files.append((f"{name}.hf.parquet", hf_token_columns(docs, spans, types=types)))
    return frames, files
