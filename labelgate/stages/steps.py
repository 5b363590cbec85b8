"""Spec-driven steps: each takes frames and the spec, calls the stage library, and returns an
outcome with the metrics the gate reads (flat, `stage.metric`) and the section the report
shows. Pure: no Prefect, no warehouse; tasks/ wraps these with storage and logging.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from labelgate.errors import InputError
from labelgate.partition import Mapper, serial_map
from labelgate.spec import JsonlSpec, Spec
from labelgate.stages.dedup import (
    DedupSettings,
    DuplicateResult,
    find_duplicates_keeping,
)
from labelgate.stages.instructions import to_canonical
from labelgate.stages.label_issues import embeddings as embedding_models
from labelgate.stages.label_issues.detect import LabelIssuesResult, find_label_issues
from labelgate.stages.label_issues.detect import accept_reviewed as _accept_reviewed
from labelgate.stages.label_issues.model_archive import Notice
from labelgate.stages.preference.stage import check_swap_embeddings, preference_tokenizer
from labelgate.stages.publish import AlpacaStyle, ChatStyle, JsonlStyle, PlainStyle

TEXT_EXCERPT = 240


@dataclass(frozen=True)
class LabelIssuesOutcome:
    """The label-issue stage's result: per-row table, gate metrics, report section."""

    result: LabelIssuesResult
    metrics: dict[str, float]
    section: dict[str, Any]

    def sections(self) -> dict[str, Any]:
        return {"label_issues": self.section}

    def brief(self) -> LabelIssuesOutcome:
        """What the splits and the report read (`labelgate.results.brief`): the per-row
        table and the per-class figures; without the probabilities and the kept models."""
        return replace(self, result=replace(self.result, probabilities=None, kept=None))


@dataclass(frozen=True)
class DedupOutcome:
    """The dedup stage's result: clusters, gate metrics, report section."""

    result: DuplicateResult
    metrics: dict[str, float]
    section: dict[str, Any]

    def sections(self) -> dict[str, Any]:
        return {"duplicates": self.section}

    def brief(self) -> DedupOutcome:
        """What the metrics and report read (`labelgate.results.brief`): the clusters
        emptied (their schema kept); the summary, metrics and section as they are."""
        return replace(self, result=self.result.without_rows())


def canonicalize(rows: pl.DataFrame, *, spec: Spec, where: str) -> pl.DataFrame:
    """task instruction: one file's rows (`where` names it in errors) as the canonical
    frame (`labelgate.stages.instructions`), with the label, group, contracted and filtered
    columns, the spec's id column and `_batch`/`_row` carried along."""
    style = spec.sources.items.style
    if style is None:
        raise ValueError("canonicalize needs sources.items.style (task instruction)")
    keep = spec.keep_columns()
    missing = [c for c in keep if c not in rows.columns]
    if missing:
        shown = [c for c in rows.columns if not c.startswith("_")]
        raise InputError(
            f"{where}: missing column(s) {missing} named in the spec (columns/contract/"
            f"publish.filter); the file has {shown}"
        )
    return to_canonical(
        rows, style=style, columns=spec.instruction_columns(), id_column=spec.columns.id,
        keep=keep, where=where,
    )


def row_metrics(rows_input: int, rows_valid: int, rows_quarantined: int) -> dict[str, float]:
    """The row arithmetic metrics when there is no label column (no class metrics)."""
    return {
        "rows_input": float(rows_input),
        "rows_valid": float(rows_valid),
        "rows_quarantined": float(rows_quarantined),
        "rows_excluded": 0.0,
        "quarantine_rate": rows_quarantined / rows_input if rows_input else 0.0,
    }


def _text_of(df: pl.DataFrame, spec: Spec) -> pl.Expr:
    cols = spec.text_columns()
    return pl.concat_str([pl.col(c).cast(pl.String) for c in cols], separator=" | ",
                         ignore_nulls=True)


def apply_consensus(
    valid: pl.DataFrame, consensus: pl.DataFrame, *, spec: Spec
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """The training label from the annotators: the spec's consensus method replaces the
    label of every valid row that has one (`agreement.apply: true`); others keep theirs.

    `consensus` is `AgreementReport.consensus` (item, majority, dawid_skene, ...). Returns
    the relabeled rows and counts for the report (changed, confirmed, without consensus).
    """
    label = spec.columns.label
    method = spec.agreement_settings().consensus
    if label is None:
        return valid, {"method": method, "applied": False, "reason": "no columns.label"}
    chosen = consensus.select(
        pl.col("item").cast(pl.String).alias("_lg_item"),
        pl.col(method).cast(pl.String).alias("_lg_consensus"),
    )
    joined = valid.with_columns(pl.col(spec.columns.id).cast(pl.String).alias("_lg_item")).join(
        chosen, on="_lg_item", how="left", maintain_order="left"
    )
    has = pl.col("_lg_consensus").is_not_null()
    given = pl.col(label).cast(pl.String)
    counts = joined.select(
        (has & (pl.col("_lg_consensus") != given)).sum().alias("changed"),
        (has & (pl.col("_lg_consensus") == given)).sum().alias("confirmed"),
        (~has).sum().alias("without_consensus"),
    ).row(0, named=True)
    dtype = valid.schema[label]
    relabeled = joined.with_columns(
        pl.when(has).then(pl.col("_lg_consensus")).otherwise(given).cast(dtype).alias(label)
    ).drop("_lg_item", "_lg_consensus")
    return relabeled, {"method": method, "applied": True, **counts}


def label_from_consensus(
    valid: pl.DataFrame, consensus: pl.DataFrame, *, spec: Spec, source: str = "items"
) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, Any]]:
    """The label of items that have none of their own (`columns.label_from_consensus`): the
    spec's consensus of their annotations. An item without one (no annotations, or no
    consensus among them) has no label and is quarantined (check `consensus`).

    Returns the labeled rows, the quarantine records (`QUARANTINE_SCHEMA`) and counts for
    the report (labeled, without consensus)."""
    from checks.contract import QUARANTINE_SCHEMA
    from labelgate.stages.ingest.readers import BATCH, ROW

    label, id_col = spec.columns.label, spec.columns.id
    assert label is not None
    method = spec.agreement_settings().consensus
    chosen = consensus.select(pl.col("item").cast(pl.String).alias("_lg_item"),
                              pl.col(method).cast(pl.String).alias(label))
    joined = valid.drop(label, strict=False).with_columns(
        pl.col(id_col).cast(pl.String).alias("_lg_item")
    ).join(chosen, on="_lg_item", how="left", maintain_order="left").drop("_lg_item")
    has = pl.col(label).is_not_null()
    missing = joined.filter(~has)
    reason = (f"no {method} consensus among the annotations (none, or a tie): the label comes "
              "from the annotators' consensus (columns.label_from_consensus)")
    quarantine = missing.select(
        pl.lit(source).alias("source"),
        pl.col(BATCH).cast(pl.String).alias("batch") if BATCH in missing.columns
        else pl.lit(None, pl.String).alias("batch"),
        pl.col(ROW).cast(pl.Int64).alias("row") if ROW in missing.columns
        else pl.lit(None, pl.Int64).alias("row"),
        pl.col(id_col).cast(pl.String).alias("id"),
        pl.lit(label).alias("column"),
        pl.lit("consensus").alias("check"),
        pl.lit(None, pl.String).alias("failure_value"),
        pl.lit(reason).alias("reason"),
    ).cast(QUARANTINE_SCHEMA)  # type: ignore[arg-type]
    stats = {"method": method, "applied": True, "label_from_consensus": True,
             "labeled": joined.height - missing.height, "without_consensus": missing.height}
    return joined.filter(has), quarantine, stats


def prediction_classes(
    valid: pl.DataFrame, *, spec: Spec, predictions: pl.DataFrame | None
) -> list[str] | None:
    """The classes a predictions file is read with: the labels the valid rows have, plus the
    classes the label column's contract `isin` declares that the file has a column for (a
    larger model may know a class no row has yet). Other columns (a model name, an epoch,
    a misspelt class) are not classes. None (the library's default) for other methods."""
    li = spec.label_issues
    label = spec.columns.label
    if li is None or li.method != "predictions" or predictions is None or label is None:
        return None
    seen = {str(v) for v in valid.get_column(label).drop_nulls().unique().to_list()}
    column = spec.contract.get(label)
    declared = {str(v) for v in (column.isin or [])} if column is not None else set()
    return sorted(seen | (declared & set(predictions.columns)))


def label_issue_embeddings(
    valid: pl.DataFrame,
    *,
    spec: Spec,
    store: Path | None = None,
    progress: embedding_models.Progress | None = None,
    notice: Notice | None = None,
) -> npt.NDArray[np.float32] | None:
    """Sentence embeddings of the model's text (`label_issues.embeddings`), one row per valid
    row, cached in ``store``; None when the spec does not ask for them."""
    li = spec.label_issues
    if li is None or li.embeddings is None or li.method == "predictions" or valid.height == 0:
        return None
    from labelgate.stages.label_issues.models import joined_text  # scikit-learn: when needed

    texts = joined_text(valid, spec.model_text_columns()).to_list()
    return embedding_models.embed_texts(
        texts, model=li.embeddings.model, base_dir=spec.base_dir,
        cache=embedding_models.cache_dir(store, spec.name) if store is not None else None,
        batch_size=li.embeddings.batch_size, progress=progress, notice=notice,
    )


def check_environment(spec: Spec, *, notice: Callable[[str], None] | None = None) -> None:
    """What a run needs beyond the spec, checked before it reads any data: the embedding
    model (`label_issues.embeddings`) is installed or its folder is a model folder (a model
    split across packages is put together here the first time; ``notice`` hears it), and
    so is the one `preference.swaps.embeddings` asks for; `preference.tokenizer` loads."""
    li = spec.label_issues
    if li is not None and li.embeddings is not None and li.method != "predictions":
        embedding_models.check_model(li.embeddings.model, base_dir=spec.base_dir,
                                     notice=notice)
    check_swap_embeddings(spec, notice=notice)
    preference_tokenizer(spec)


def model_description(spec: Spec, *, method: str, rows: int) -> str | None:
    """What produced the out-of-fold probabilities, for the report (None: a file did)."""
    li = spec.label_issues
    if li is None or method == "predictions":
        return None
    from labelgate.stages.label_issues.models import (
        CHAR_NGRAM_MAX_ROWS,
        TABULAR_ENSEMBLE_MAX_ROWS,
    )

    if not spec.model_text_columns():
        if rows <= TABULAR_ENSEMBLE_MAX_ROWS:
            return "extra trees and a logistic regression on the feature columns, averaged"
        return "gradient boosting on the feature columns"
    grams = "word and character n-grams" if rows <= CHAR_NGRAM_MAX_ROWS else "word n-grams"
    model = f"{grams}, logistic regression (SGD)"
    if spec.columns.features and not spec.is_instruction:
        model += " with the feature columns"
    if li.embeddings is not None:
        model += f", averaged with a logistic regression on {li.embeddings.model} embeddings"
    return model


def detect_label_issues(
    valid: pl.DataFrame,
    *,
    spec: Spec,
    predictions: pl.DataFrame | None = None,
    annotations: pl.DataFrame | None = None,
    mapper: Mapper = serial_map,
    embeddings: npt.NDArray[np.float32] | None = None,
    keep_models: bool = False,
    pred_probs: npt.NDArray[np.float32] | None = None,
) -> LabelIssuesOutcome:
    """Flag probable label errors in the valid rows (spec section `label_issues`); `mapper`
    runs the built-in model's folds; ``embeddings`` (`label_issue_embeddings`) join its text
    model; ``keep_models`` keeps its fold models in the result; ``pred_probs`` (n, k): every
    row's out-of-fold probabilities already made (kept and new: `labelgate.stages.label_issues.
    incremental`), so no model is trained."""
    li = spec.label_issues
    if li is None:
        raise ValueError("detect_label_issues needs a label_issues section")
    if spec.columns.label is None:
        raise ValueError("detect_label_issues needs columns.label")
    _, annotator, ann_label, _ = spec.annotation_columns()
    result = find_label_issues(
        valid,
        id_column=spec.columns.id,
        label_column=spec.columns.label,
        text_columns=spec.model_text_columns(),
        feature_columns=spec.columns.features,
        method=li.method,
        folds=li.folds,
        seed=li.seed,
        predictions=predictions,
        classes=prediction_classes(valid, spec=spec, predictions=predictions),
        annotations=annotations,
        annotator_column=annotator,
        annotation_label_column=ann_label,
        batched=li.batched,
        filter_by=li.filter_by,
        joint_calibration=li.joint_calibration,
        source="items",
        mapper=mapper,
        embeddings=embeddings,
        passes=li.passes,
        keep_models=keep_models,
        pred_probs=pred_probs,
        train_max_rows=li.train_max_rows,
    )
    outcome = summarize_label_issues(result, valid=valid, spec=spec)
    outcome.section["model"] = model_description(
        spec, method=result.method, rows=valid.height
    )
    if result.trained_rows is not None:  # label_issues.train_max_rows: a training sample
        outcome.section["model"] += f", trained on a {result.trained_rows:,}-row sample"
        outcome.metrics["label_issues.trained_rows"] = float(result.trained_rows)
    if embeddings is not None and li.embeddings is not None:
        # which weights: a package version, or a hash of the model folder's files
        folder = embedding_models.check_model(li.embeddings.model, base_dir=spec.base_dir)
        outcome.section["embedding_model"] = embedding_models.model_identity(
            li.embeddings.model, folder
        )
    return outcome


def summarize_label_issues(
    result: LabelIssuesResult, *, valid: pl.DataFrame, spec: Spec
) -> LabelIssuesOutcome:
    """The gate metrics and report section of a label-issue result."""
    li = spec.label_issues
    if li is None:
        raise ValueError("summarize_label_issues needs a label_issues section")
    table = result.table
    id_col = spec.columns.id
    count = int(table.get_column("is_label_issue").sum())
    per_class = result.per_class
    rates = per_class.get_column("issue_rate").to_list()
    worst = float(max(rates)) if rates else 0.0
    top = (
        table.filter(pl.col("is_label_issue"))
        .sort("rank")
        .head(li.top)
        .join(
            valid.select(pl.col(id_col).alias("id"), _text_of(valid, spec).alias("text")),
            on="id",
            how="left",
        )
        .select(
            pl.col("id").cast(pl.String),
            pl.col("text").str.slice(0, TEXT_EXCERPT),
            pl.col("given_label").alias("given"),
            pl.col("suggested_label").alias("suggested"),
            pl.col("label_quality").alias("quality"),
        )
    )
    metrics = {
        "label_issues.count": float(count),
        "label_issues.rate": result.issue_rate,
        "label_issues.health_score": result.health_score,
        "label_issues.max_class_issue_rate": worst,
    }
    section: dict[str, Any] = {
        "method": result.method,
        "path": result.path,
        "folds": li.folds if result.method != "predictions" else None,
        "filter_by": result.filter_by,
        "joint_calibration": result.joint_calibration,
        "passes": result.passes,
        "left_out": result.left_out,
        "classes": result.classes,
        "count": count,
        "rate": result.issue_rate,
        "health_score": result.health_score,
        "per_class": per_class.to_dicts(),
        "noise_matrix": result.noise_matrix.to_dicts(),
        "top": top.to_dicts(),
    }
    if result.annotators is not None:
        section["annotators"] = result.annotators.to_dicts()
    return LabelIssuesOutcome(result, metrics, section)


def accept_reviewed(
    outcome: LabelIssuesOutcome, reviewed: Collection[str], *, valid: pl.DataFrame, spec: Spec
) -> LabelIssuesOutcome:
    """Rows whose current label a reviewer set or confirmed are not flagged
    (`label_issues.accept_reviewed`); metrics and section are recomputed, the section keeps
    what other steps added (reuse, CROWDLAB comparison) and says how many were accepted."""
    before = int(outcome.result.table.get_column("is_label_issue").sum())
    accepted = _accept_reviewed(outcome.result, reviewed)
    summary = summarize_label_issues(accepted, valid=valid, spec=spec)
    after = int(summary.result.table.get_column("is_label_issue").sum())
    section = {**outcome.section, **summary.section,
               "reviewed_not_flagged": before - after, "reviewed_rows": len(reviewed)}
    return LabelIssuesOutcome(summary.result, summary.metrics, section)


def compare_with_crowdlab(
    outcome: LabelIssuesOutcome, consensus: pl.DataFrame
) -> LabelIssuesOutcome:
    """Add CROWDLAB's consensus (multiannotator label issues) to the agreement stage's
    majority / Dawid-Skene comparison: how often each pair differs, over shared items."""
    crowdlab = outcome.result.table.select(
        pl.col("id").cast(pl.String).alias("item"),
        pl.col("consensus_label").cast(pl.String).alias("crowdlab"),
    )
    both = consensus.select(
        pl.col("item").cast(pl.String), pl.col("majority").cast(pl.String),
        pl.col("dawid_skene").cast(pl.String),
    ).join(crowdlab, on="item", how="inner")
    rows = []
    for other in ("majority", "dawid_skene"):
        pair = both.filter(pl.col(other).is_not_null() & pl.col("crowdlab").is_not_null())
        differ = int((pair.get_column(other) != pair.get_column("crowdlab")).sum())
        rows.append({"a": "crowdlab", "b": other, "items": pair.height, "differ": differ,
                     "share": differ / pair.height if pair.height else 0.0})
    section = {**outcome.section, "consensus_comparison": rows}
    return LabelIssuesOutcome(outcome.result, outcome.metrics, section)


def detect_duplicates(
    valid: pl.DataFrame, *, spec: Spec, mapper: Mapper = serial_map
) -> DedupOutcome:
    """Exact and near-duplicate clusters over the text columns (spec section `dedup`);
    `mapper` runs the MinHash shards."""
    result, _ = find_duplicates_keeping(valid, dedup_settings(spec), mapper=mapper)
    return duplicates_outcome(result, valid=valid, spec=spec)


def dedup_settings(spec: Spec) -> DedupSettings:
    """The spec's dedup columns and near-duplicate settings."""
    dd = spec.dedup
    if dd is None:
        raise ValueError("detect_duplicates needs a dedup section")
    near = dd.near
    return DedupSettings(
        id_column=spec.columns.id, text_columns=spec.dedup_columns(),
        label_column=spec.columns.label, near=near is not None,
        threshold=near.threshold if near else 1.0, shingle=near.shingle if near else 5,
        num_perm=near.num_perm if near else 128,
    )


def duplicates_outcome(result: DuplicateResult, *, valid: pl.DataFrame,
                       spec: Spec) -> DedupOutcome:
    """The dedup stage's metrics and report section around ``result``."""
    dd = spec.dedup
    assert dd is not None
    s = result.summary
    rows = max(int(s.get("rows", valid.height)), 1)
    metrics = {
        "dedup.duplicate_rows": float(s["duplicate_rows"]),
        "dedup.duplicate_rate": s["duplicate_rows"] / rows,
        "dedup.clusters": float(s["clusters"]),
        "dedup.conflicting_clusters": float(s["conflicting_clusters"]),
    }
    top, conflicts = result.largest(10), result.conflicts.head(20)
    # the example texts of those clusters only (not a pass over every row)
    wanted = pl.concat([top.get_column("cluster_id"), conflicts.get_column("cluster_id")])
    shown = valid.filter(pl.col(spec.columns.id).is_in(wanted.implode()))
    text = shown.select(pl.col(spec.columns.id).cast(pl.String).alias("id"),
                        _text_of(shown, spec).str.slice(0, TEXT_EXCERPT).alias("example"))
    largest = (
        top
        .with_columns(pl.col("cluster_id").cast(pl.String))
        .join(text, left_on="cluster_id", right_on="id", how="left")
    )
    conflicting = (
        conflicts
        .with_columns(pl.col("cluster_id").cast(pl.String))
        .join(text, left_on="cluster_id", right_on="id", how="left")
    )
    section = {
        **{k: v for k, v in s.items() if k != "largest" and not isinstance(v, dict)},
        "count": s["duplicate_rows"],
        "largest": largest.to_dicts(),
        "conflicting": conflicting.to_dicts(),
        "keep": dd.keep,
    }
    return DedupOutcome(result, metrics, section)


def jsonl_style(spec: JsonlSpec) -> JsonlStyle:
    if spec.style == "alpaca":
        assert spec.instruction is not None and spec.output is not None
        return AlpacaStyle(instruction=spec.instruction, input=spec.input, output=spec.output)
    if spec.style == "chat":
        assert spec.user is not None and spec.assistant is not None
        return ChatStyle(user=spec.user, assistant=spec.assistant, system=spec.system)
    return PlainStyle(columns=tuple(spec.columns) if spec.columns else None)


def merge_metrics(*parts: Mapping[str, float] | None) -> dict[str, float]:
    out: dict[str, float] = {}
    for p in parts:
        if p:
            out.update(p)
    return out
