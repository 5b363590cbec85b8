"""Spec -> multilabel stage glue (pure; `tasks/multilabel.py` wraps it for the flow).

- `check_contract_tags`: the contract's valid rows through the tag checks; failures join
  the quarantine;
- `analyze`: tag counts, label issues (out-of-fold model + cleanlab) and, with
  annotations, agreement: the `multilabel.*` metrics and the report section;
- `make_multilabel_splits`: sticky, grouped splits (`labelgate.stages.splits`) whose new
  units are placed by iterative stratification over the tags; the flagged-row policy;
- `split_frames`: the published columns of each split (the tags as a list column).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import polars as pl

from checks.contract import QUARANTINE_SCHEMA, ContractResult
from labelgate.errors import SpecError
from labelgate.spec import Spec
from labelgate.stages.multilabel.agreement import TagAgreement, tag_agreement
from labelgate.stages.multilabel.issues import (
    MultilabelIssues,
    find_tag_issues,
    out_of_fold_probabilities,
)
from labelgate.stages.multilabel.tags import check_tags, parse_tags, tag_matrix

EXCERPT = 240


@dataclass(frozen=True)
class TagChecks:
    """What the tag checks found: failures by check, rows quarantined by them."""

    counts: dict[str, int]
    rows_quarantined: int

    def sections(self) -> dict[str, Any]:
        return {}


def check_contract_tags(contract: ContractResult, *, spec: Spec) -> tuple[ContractResult,
                                                                           TagChecks]:
    """The contract's valid rows through `check_tags`; the quarantine grows by its records."""
    ml = spec.multilabel_settings()
    checked = check_tags(contract.valid, column=ml.column, id_column=spec.columns.id,
                         delimiter=ml.delimiter, allowed=ml.tags, min_tags=ml.min_tags,
                         max_tags=ml.max_tags)
    quarantine = pl.concat([contract.quarantine,
                            checked.quarantine.cast(pl.Schema(QUARANTINE_SCHEMA))])
    result = replace(contract, valid=checked.valid, quarantine=quarantine,
                     rows_quarantined=contract.rows_quarantined + checked.rows_quarantined)
    return result, TagChecks(checked.counts, checked.rows_quarantined)


@dataclass(frozen=True)
class MultilabelAnalysis:
    """The multilabel stage's result: per-row issues (id, is_label_issue, label_quality,
    likely_missing, likely_added; empty when not run), gate metrics, report section."""

    issues: pl.DataFrame
    metrics: dict[str, float]
    section: dict[str, Any]

    def sections(self) -> dict[str, Any]:
        return {"multilabel": self.section}


def tag_names(valid: pl.DataFrame, *, spec: Spec) -> list[str]:
    """The tags: the allowed list when the spec gives one, else every tag seen, sorted."""
    ml = spec.multilabel_settings()
    if ml.tags is not None:
        return list(ml.tags)
    seen = valid.get_column(ml.column).explode().drop_nulls().unique().sort()
    return [str(t) for t in seen.to_list()]


def _text(valid: pl.DataFrame, spec: Spec) -> list[str]:
    cols = spec.columns.text
    return valid.select(pl.concat_str([pl.col(c).cast(pl.String).fill_null("") for c in cols],
                                      separator=" \n ")).to_series().to_list()


def _tag_table(y: np.ndarray[Any, Any], tags: list[str], issues: MultilabelIssues | None
               ) -> pl.DataFrame:
    n = max(y.shape[0], 1)
    base = pl.DataFrame({"tag": tags, "rows": y.sum(axis=0).astype(np.int64),
                         "share": y.sum(axis=0) / n})
    if issues is None:
        return base
    per = issues.per_tag.select(
        "tag", "missing", "added", "modelled",
        ((pl.col("missing") + pl.col("added")) / n).alias("issue_rate"))
    return base.join(per, on="tag", how="left", maintain_order="left")


def _issue_rows(valid: pl.DataFrame, issues: MultilabelIssues, *, spec: Spec) -> pl.DataFrame:
    ml = spec.multilabel_settings()
    return pl.concat([
        valid.select(pl.col(spec.columns.id).cast(pl.String).alias("id"),
                     pl.col(ml.column).alias("tags")),
        issues.table.drop("row"),
    ], how="horizontal")


def _top_rows(rows: pl.DataFrame, valid: pl.DataFrame, *, spec: Spec, top: int
              ) -> list[dict[str, Any]]:
    text = pl.Series("text", _text(valid, spec)).str.slice(0, EXCERPT)
    return (rows.with_columns(text).filter(pl.col("is_label_issue"))
            .sort("label_quality", "id").head(top).to_dicts())


def _agreement_part(agreement: TagAgreement | None) -> tuple[dict[str, float], dict[str, Any]]:
    if agreement is None:
        return {}, {}
    metrics = {"multilabel.krippendorff_alpha_masi": agreement.alpha_masi,
               "multilabel.min_tag_kappa": agreement.min_tag_kappa}
    metrics = {k: v for k, v in metrics.items() if not math.isnan(v)}
    section = {"agreement": {
        "alpha_masi": None if math.isnan(agreement.alpha_masi) else agreement.alpha_masi,
        **agreement.summary, "per_tag": agreement.per_tag.to_dicts()}}
    return metrics, section


def annotations_agreement(annotations: pl.DataFrame, *, spec: Spec) -> TagAgreement:
    """Agreement over the long annotations (item, annotator, tags as the spec reads them)."""
    item, annotator, label, _ = spec.annotation_columns()
    ml = spec.multilabel_settings()
    missing = [c for c in (item, annotator, label) if c not in annotations.columns]
    if missing:
        raise SpecError(f"sources.annotations: column(s) {missing} not in the annotations "
                        f"(agreement.item/annotator/label); they have {annotations.columns}")
    tags, _ = parse_tags(annotations.get_column(label), delimiter=ml.delimiter)
    frame = annotations.with_columns(tags.alias(label)).filter(pl.col(label).is_not_null())
    ag = spec.agreement_settings()
    return tag_agreement(frame, item_column=item, annotator_column=annotator,
                         tags_column=label, tags=ml.tags, min_shared_items=ag.min_shared_items)


def analyze(valid: pl.DataFrame, *, spec: Spec, annotations: pl.DataFrame | None = None
            ) -> MultilabelAnalysis:
    """Tag counts, label issues (when enabled and with enough rows) and agreement (with
    annotations): the `multilabel.*` metrics and the report section."""
    ml = spec.multilabel_settings()
    tags = tag_names(valid, spec=spec)
    y = tag_matrix(valid.get_column(ml.column), tags)
    n = valid.height
    per_row = y.sum(axis=1) if n else np.zeros(0)
    issues = None
    if ml.issues.enabled and n >= ml.issues.min_rows and len(tags) >= 2:
        probs, modelled = out_of_fold_probabilities(
            _text(valid, spec), y, folds=ml.issues.folds, seed=ml.issues.seed,
            min_tag_rows=ml.issues.min_tag_rows)
        issues = find_tag_issues(y, probs, tags=tags, modelled=modelled)
    table = _tag_table(y, tags, issues)
    metrics: dict[str, float] = {
        "multilabel.tags": float(len(tags)),
        "multilabel.min_rows_per_tag": float(y.sum(axis=0).min()) if tags else 0.0,
        "multilabel.mean_tags_per_row": float(per_row.mean()) if n else 0.0,
    }
    section: dict[str, Any] = {
        "column": ml.column, "rows": n, "tags": table.to_dicts(),
        "tags_per_row": dict(sorted((int(k), int(v)) for k, v in
                                    zip(*np.unique(per_row, return_counts=True), strict=True))),
        "issues": None,
    }
    rows = pl.DataFrame()
    if issues is not None:
        rows = _issue_rows(valid, issues, spec=spec)
        flagged = int(issues.table.get_column("is_label_issue").sum())
        metrics |= {"multilabel.issues": float(flagged),
                    "multilabel.issue_rate": flagged / n,
                    "multilabel.max_tag_issue_rate": float(
                        table.get_column("issue_rate").max() or 0.0)}  # type: ignore[arg-type]
        section["issues"] = {
            "flagged": flagged, "rate": flagged / n, "folds": ml.issues.folds,
            "model": "TF-IDF word 1-2-grams, one logistic regression per tag, out of fold",
            "most_missing": _ranked(table, "missing"), "most_added": _ranked(table, "added"),
            "top": _top_rows(rows, valid, spec=spec, top=ml.issues.top)}
    ag_metrics, ag_section = _agreement_part(
        annotations_agreement(annotations, spec=spec) if annotations is not None else None)
    return MultilabelAnalysis(rows, metrics | ag_metrics, section | ag_section)


def _ranked(table: pl.DataFrame, column: str, top: int = 5) -> list[dict[str, Any]]:
    return (table.filter(pl.col(column) > 0).sort(column, "tag", descending=[True, False])
            .head(top).select("tag", column).to_dicts())
