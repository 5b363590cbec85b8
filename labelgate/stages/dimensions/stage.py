"""Spec -> task dimensions glue (pure; `tasks/dimensions.py` wraps it for the flow).

For each label dimension (the spec's ``labels:``), over the valid rows that have a value:

- its values (nominal, ordinal: rows per class; interval: the distribution);
- probable label errors (`DimensionIssuesSpec`): nominal and ordinal through the
  single-label path (`labelgate.stages.label_issues.detect.find_label_issues`, the built-in
  text model out of fold + cleanlab), interval through cleanlab's regression module
  (`labelgate.stages.dimensions.interval`);
- with annotations that hold the dimension's column: agreement
  (`labelgate.stages.agreement.core.compute_agreement`) at the dimension's level of
  measurement (Krippendorff's alpha nominal, ordinal or interval).

The metrics are ``dimensions.<dimension>.<metric>``, what ``gate.dimensions`` reads
(`labelgate.gate.gate_check`); the report section lists the dimensions side by side.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import polars as pl

from labelgate.errors import SpecError
from labelgate.spec import Spec
from labelgate.stages.agreement.core import AgreementReport, compute_agreement
from labelgate.stages.dimensions.interval import interval_issues
from labelgate.stages.dimensions.settings import DimensionSpec
from labelgate.stages.label_issues.detect import find_label_issues
from labelgate.stages.label_issues.models import CHAR_NGRAM_MAX_ROWS

EXCERPT = 240
ISSUE_SCHEMA = pl.Schema({
    "id": pl.String, "dimension": pl.String, "given": pl.String, "suggested": pl.String,
    "label_quality": pl.Float64, "is_label_issue": pl.Boolean})
_AGREEMENT_METRICS = ("krippendorff_alpha", "krippendorff_alpha_ci_low",
                      "krippendorff_alpha_ci_high", "percent_agreement", "mean_cohen_kappa",
                      "min_labels_per_item", "n_items", "n_annotators")


@dataclass(frozen=True)
class DimensionsAnalysis:
    """The dimensions stage's result: per-row issues (`ISSUE_SCHEMA`, one row per scored
    row and dimension), the ``dimensions.*`` metrics and the report section."""

    issues: pl.DataFrame
    metrics: dict[str, float]
    section: dict[str, Any]

    def sections(self) -> dict[str, Any]:
        return {"dimensions": self.section}

    def flagged(self) -> dict[str, pl.Series]:
        """Dimension -> ids of its flagged rows (as text)."""
        hit = self.issues.filter(pl.col("is_label_issue"))
        return {d: hit.filter(pl.col("dimension") == d).get_column("id")
                for d in self.issues.get_column("dimension").unique(maintain_order=True)}


def texts(valid: pl.DataFrame, *, spec: Spec) -> pl.Series:
    """columns.text joined, one string per row."""
    return valid.select(pl.concat_str([pl.col(c).cast(pl.String).fill_null("")
                                       for c in spec.columns.text], separator=" \n ")
                        ).to_series()


def _values_part(rated: pl.DataFrame, name: str, dim: DimensionSpec
                 ) -> tuple[dict[str, float], dict[str, Any]]:
    col = pl.col(name)
    if dim.kind == "interval":
        stats = rated.select(col.mean().alias("mean"), col.std().alias("std"),
                             col.min().alias("min"), col.median().alias("median"),
                             col.max().alias("max")).row(0, named=True)
        return {}, {"distribution": {k: None if v is None else float(v)
                                     for k, v in stats.items()}}
    counts = rated.group_by(col.cast(pl.String).alias("value")).agg(pl.len().alias("rows"))
    order = [str(v) for v in dim.values] if dim.values is not None else sorted(
        counts.get_column("value").to_list())
    table = pl.DataFrame({"value": order}).join(counts, on="value", how="left").with_columns(
        pl.col("rows").fill_null(0))
    low = int(table.get_column("rows").min() or 0)  # type: ignore[arg-type]
    return {"min_rows_per_class": float(low)}, {"values": table.to_dicts()}


def _class_issues(rated: pl.DataFrame, name: str, *, spec: Spec, dim: DimensionSpec
                  ) -> tuple[pl.DataFrame, dict[str, Any]]:
    frame = rated.select(pl.col(spec.columns.id).cast(pl.String).alias("id"),
                         texts(rated, spec=spec).alias("_lg_text"),
                         pl.col(name).cast(pl.String).alias("_lg_label"))
    found = find_label_issues(frame, id_column="id", label_column="_lg_label",
                              text_columns=["_lg_text"], folds=dim.issues.folds,
                              seed=dim.issues.seed, n_jobs=1, source=f"labels.{name}")
    table = found.table.select(
        "id", pl.col("given_label").alias("given"), pl.col("suggested_label").alias("suggested"),
        "label_quality", "is_label_issue")
    rates = found.per_class.get_column("issue_rate").to_list()
    grams = ("word and character n-grams" if rated.height <= CHAR_NGRAM_MAX_ROWS
             else "word n-grams")
    return table, {"model": f"{grams}, logistic regression (SGD), out of fold; cleanlab's "
                   "filter", "health_score": found.health_score,
                   "max_class_issue_rate": float(max(rates)) if rates else 0.0,
                   "per_class": found.per_class.to_dicts()}


def _interval_issues(rated: pl.DataFrame, name: str, *, spec: Spec, dim: DimensionSpec
                     ) -> tuple[pl.DataFrame, dict[str, Any]]:
    found = interval_issues(texts(rated, spec=spec).to_list(),
                            rated.get_column(name).cast(pl.Float64).to_numpy(),
                            folds=dim.issues.folds, seed=dim.issues.seed)
    table = pl.concat([
        rated.select(pl.col(spec.columns.id).cast(pl.String).alias("id")),
        found.select(pl.col("given").cast(pl.String),
                     pl.col("predicted").round(2).cast(pl.String).alias("suggested"),
                     "label_quality", "is_label_issue")], how="horizontal")
    return table, {"model": "TF-IDF word 1-2-grams, ridge regression; cleanlab's regression "
                   "CleanLearning (out of fold)",
                   "mean_abs_residual": float(found.select(
                       (pl.col("given") - pl.col("predicted")).abs().mean()).item() or 0.0)}


def _issues_part(rated: pl.DataFrame, name: str, *, spec: Spec, dim: DimensionSpec
                 ) -> tuple[pl.DataFrame, dict[str, float], dict[str, Any] | None]:
    """Probable errors of one dimension: (per-row table, metrics, section part or None
    when off or with too few rows)."""
    n = rated.height
    classes = rated.get_column(name).n_unique() if n else 0
    if not dim.issues.enabled or n < dim.issues.min_rows or classes < 2:
        return pl.DataFrame(schema=ISSUE_SCHEMA), {}, None
    if dim.kind == "interval":
        table, part = _interval_issues(rated, name, spec=spec, dim=dim)
    else:
        table, part = _class_issues(rated, name, spec=spec, dim=dim)
    table = table.select(pl.col("id"), pl.lit(name).alias("dimension"), pl.exclude("id"))
    flagged = int(table.get_column("is_label_issue").sum())
    metrics = {"label_issues": float(flagged), "label_issue_rate": flagged / n}
    if "max_class_issue_rate" in part:
        metrics["max_class_issue_rate"] = part["max_class_issue_rate"]
    text = rated.select(pl.col(spec.columns.id).cast(pl.String).alias("id"),
                        texts(rated, spec=spec).str.slice(0, EXCERPT).alias("text"))
    top = (table.filter(pl.col("is_label_issue")).sort("label_quality", "id")
           .head(dim.issues.top).join(text, on="id", how="left")
           .select("id", "text", "given", "suggested", "label_quality").to_dicts())
    return table.cast(ISSUE_SCHEMA), metrics, {
        **part, "flagged": flagged, "rate": flagged / n, "folds": dim.issues.folds,
        "top": top}


def dimension_agreement(annotations: pl.DataFrame, name: str, *, spec: Spec,
                        dim: DimensionSpec) -> AgreementReport | None:
    """Agreement on one dimension from the long annotations (item, annotator, one column
    per dimension), at the dimension's level; None when the annotations lack its column."""
    column = dim.annotation_column(name)
    if column not in annotations.columns:
        return None
    options = spec.agreement_options()
    item, annotator = options["item_column"], options["annotator_column"]
    missing = [c for c in (item, annotator) if c not in annotations.columns]
    if missing:
        raise SpecError(f"sources.annotations: column(s) {missing} not in the annotations "
                        f"(agreement.item/annotator); they have {annotations.columns}")
    rated = annotations.filter(pl.col(column).is_not_null())
    if dim.kind != "interval":
        rated = rated.with_columns(pl.col(column).cast(pl.String))
    weights = options["kappa_weights"]
    return compute_agreement(
        rated, item_column=item, annotator_column=annotator, label_column=column,
        timestamp_column=options["timestamp_column"], level=dim.kind,
        categories=[str(v) for v in dim.values] if dim.kind == "ordinal" and dim.values
        else None, kappa_weights="default" if weights == "default" else weights,
        min_shared_items=options["min_shared_items"], min_annotator_agreement=None,
        n_boot=options["n_boot"], confidence=options["confidence"], seed=options["seed"],
        source=f"annotations ({name})")


def _agreement_part(report: AgreementReport | None) -> tuple[dict[str, float],
                                                              dict[str, Any] | None]:
    if report is None:
        return {}, None
    values = {k: report.metrics.get(k) for k in _AGREEMENT_METRICS}
    metrics = {k: float(v) for k, v in values.items()
               if v is not None and not math.isnan(float(v))}
    return metrics, {"level": report.level, **{k: metrics.get(k) for k in values},
                     "notes": list(report.notes)}


def analyze_dimension(valid: pl.DataFrame, name: str, *, spec: Spec,
                      annotations: pl.DataFrame | None = None
                      ) -> tuple[pl.DataFrame, dict[str, float], dict[str, Any]]:
    """One dimension: (per-row issues, its metrics without the prefix, its section)."""
    dim = spec.dimension_settings()[name]
    rated = valid.filter(pl.col(name).is_not_null())
    value_metrics, value_part = _values_part(rated, name, dim)
    issues, issue_metrics, issue_part = _issues_part(rated, name, spec=spec, dim=dim)
    agreement = (dimension_agreement(annotations, name, spec=spec, dim=dim)
                 if annotations is not None else None)
    ag_metrics, ag_part = _agreement_part(agreement)
    policy = dim.flagged or (spec.splits.flagged if spec.splits is not None else None)
    section = {"name": name, "kind": dim.kind, "rows": rated.height,
               "unrated": valid.height - rated.height, **value_part, "issues": issue_part,
               "agreement": ag_part, "policy": policy}
    metrics = {"rows": float(rated.height), **value_metrics, **issue_metrics, **ag_metrics}
    return issues, metrics, section


def analyze(valid: pl.DataFrame, *, spec: Spec, annotations: pl.DataFrame | None = None
            ) -> DimensionsAnalysis:
    """Every dimension of the spec's ``labels:``, in order: the per-row issues, the
    ``dimensions.<dimension>.*`` metrics and the ``dimensions`` report section."""
    tables: list[pl.DataFrame] = []
    metrics: dict[str, float] = {}
    parts: list[dict[str, Any]] = []
    for name in spec.dimension_settings():
        issues, dim_metrics, part = analyze_dimension(valid, name, spec=spec,
                                                      annotations=annotations)
        tables.append(issues)
        metrics |= {f"dimensions.{name}.{k}": v for k, v in dim_metrics.items()}
        parts.append(part)
    flagged = pl.concat(tables).filter(pl.col("is_label_issue")).get_column("id").n_unique()
    metrics["dimensions.flagged_rows"] = float(flagged)
    section = {"rows": valid.height, "flagged_rows": flagged, "dimensions": parts}
    return DimensionsAnalysis(pl.concat(tables), metrics, section)
