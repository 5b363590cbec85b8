"""Inter-annotator agreement and consensus (the `agreement` stage).

``compute_agreement(annotations, ...)`` takes long annotations (item, annotator, label) and
returns an ``AgreementReport``: agreement coefficients, per-pair / per-class / per-annotator
tables, consensus labels and a flat ``metrics`` dict for the quality gate.

Definitions (items with fewer than two labels are excluded from agreement and counted):
- percent agreement: per item, the share of agreeing ordered label pairs; averaged over
  items with >= 2 labels (Fleiss 1971 / Gwet 2014 form, unweighted).
- Cohen's kappa: sklearn ``cohen_kappa_score`` per annotator pair over their shared items;
  unweighted for nominal, weighted (linear for ordinal, quadratic for interval by default)
  on category *positions*. Pairs with fewer than ``min_shared_items`` are listed, not scored.
- Fleiss' kappa: statsmodels, which needs the same number of raters on every item; it is
  computed on the items that have the modal label count (largest count wins a tie), and the
  number of items used is reported. ``fleiss_kappa_generalized`` is the form for unequal
  counts (Gwet 2014, section 2.5: chance agreement from per-item label shares) over all
  items; the two are equal when every item has the same count.
- Krippendorff's alpha: the krippendorff package at the declared level. Undefined (NaN,
  with a note) when fewer than two distinct values occur among pairable labels.
- Bootstrap CI for alpha: items with >= 2 labels resampled with replacement ``n_boot``
  times (seeded); alpha is linear in per-item coincidence sums, so each resample is one
  matrix product.
- Gwet's AC1 (nominal, hand-written, Gwet 2008 / 2014 with q = number of categories) and
  AC2 with the same weights as kappa for ordinal / interval.
- Specific agreement per category (Uebersax 1982): agreeing pairs in the category over all
  pairs that involve it; for two raters and two classes it is 2a / (2a + b + c).
- Pair confusion: category x category counts over all ordered pairs of labels on the same
  item (symmetric; its total is sum of m(m-1) over items).
- Per annotator: consensus agreement is leave-one-out: the annotator's label against the
  majority of the other labels on the item (a tie among the others gives 1/size of the tied
  set if the label is in it).

Consensus labels and their tie rule: see ``labelgate.stages.agreement.consensus``.
``majority_gold_accuracy``
and ``dawid_skene_gold_accuracy`` are measured on the gold items; when gold accuracy breaks
majority ties, the majority figure is in-sample (slightly optimistic).

``AgreementReport.to_dict()`` leaves out the per-item ``consensus`` frame: store that one as
Parquet / in DuckDB. Timings: docs/benchmarks/agreement.md.

The pieces: ``coefficients`` (the whole-matrix coefficients), ``pairs`` (Cohen's kappa per
annotator pair), ``annotators`` (gold scores, per-annotator table, flags), ``tables``
(consensus, per-class and confusion tables); this module puts them together. Every name
listed in ``__all__`` (and ``agreement_weights``, ``_alpha_features``, ``_alpha_from_sums``)
stays importable from here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import polars as pl

from labelgate.stages.agreement.annotations import (
    LEVELS,
    EncodedAnnotations,
    IntArray,
    LabelStudioExport,
    Level,
    encode_annotations,
    parse_label_studio_export,
    read_label_studio_export,
    to_cleanlab_multiannotator,
    wide_to_long,
)
from labelgate.stages.agreement.annotators import (
    _annotator_table,
    _flag_annotators,
    _gold_scores,
    _GoldScores,
)
from labelgate.stages.agreement.coefficients import (
    NAN,
    KappaWeights,
    _Coefficients,
    _coefficients,
    bootstrap_alpha,
    fleiss_kappa,
    fleiss_kappa_generalized,
    gwet_ac,
    krippendorff_alpha,
    pair_confusion,
    percent_agreement,
    specific_agreement,
)
from labelgate.stages.agreement.coefficients import _alpha_features as _alpha_features
from labelgate.stages.agreement.coefficients import _alpha_from_sums as _alpha_from_sums
from labelgate.stages.agreement.coefficients import agreement_weights as agreement_weights
from labelgate.stages.agreement.consensus import (
    DawidSkene,
    MajorityVote,
    compare_consensus,
    crowdlab_consensus_frame,
    dawid_skene,
    majority_vote,
)
from labelgate.stages.agreement.pairs import _pair_scores, _PairScores
from labelgate.stages.agreement.tables import (
    _confusion_table,
    _Consensus,
    _consensus,
    _per_class_table,
)

__all__ = [
    "LEVELS",
    "AgreementReport",
    "DawidSkene",
    "EncodedAnnotations",
    "KappaWeights",
    "LabelStudioExport",
    "Level",
    "MajorityVote",
    "bootstrap_alpha",
    "compare_consensus",
    "compute_agreement",
    "crowdlab_consensus_frame",
    "dawid_skene",
    "encode_annotations",
    "fleiss_kappa",
    "fleiss_kappa_generalized",
    "gwet_ac",
    "krippendorff_alpha",
    "majority_vote",
    "pair_confusion",
    "parse_label_studio_export",
    "percent_agreement",
    "read_label_studio_export",
    "specific_agreement",
    "to_cleanlab_multiannotator",
    "wide_to_long",
]


@dataclass(frozen=True)
class AgreementReport:
    """Result of ``compute_agreement``; ``to_dict()`` is JSON-ready (NaN -> None)."""

    level: Level
    categories: list[Any]
    metrics: dict[str, float | int | None]
    pairs: pl.DataFrame  # annotator_a, annotator_b, n_shared, percent_agreement, cohen_kappa
    per_class: pl.DataFrame  # category, n_labels, share, n_majority, specific_agreement
    confusion: pl.DataFrame  # label_a, label_b, n_pairs (ordered pairs on the same item)
    annotators: pl.DataFrame  # annotator, n_labels, ..., flagged, flag_reasons
    consensus: pl.DataFrame  # item, majority, dawid_skene, [crowdlab], n_labels, agreement...
    consensus_comparison: pl.DataFrame  # method_a, method_b, n_items, n_differ, share_differ
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        def clean(v: Any) -> Any:
            if isinstance(v, float) and not math.isfinite(v):
                return None
            if isinstance(v, dict):
                return {k: clean(x) for k, x in v.items()}
            if isinstance(v, list):
                return [clean(x) for x in v]
            return v

        def rows(df: pl.DataFrame) -> list[dict[str, Any]]:
            return [clean(r) for r in df.with_columns(pl.selectors.temporal().cast(pl.String))
                    .to_dicts()]

        return {
            "level": self.level,
            "categories": self.categories,
            "metrics": clean(self.metrics),
            "pairs": rows(self.pairs),
            "per_class": rows(self.per_class),
            "confusion": rows(self.confusion),
            "annotators": rows(self.annotators),
            "consensus_comparison": rows(self.consensus_comparison),
            "notes": list(self.notes),
        }


def _default_weights(level: Level) -> KappaWeights | None:
    return {"nominal": None, "ordinal": "linear", "interval": "quadratic"}[level]


@dataclass(frozen=True)
class _Coverage:
    """How many labels each item has (``labels_per_item``: shape (n_items,))."""

    labels_per_item: IntArray
    n_multi: int  # items with >= 2 labels
    n_single: int  # items with exactly one label


def _coverage(counts: IntArray) -> _Coverage:
    """Labels per item and the multi / single label item counts.

    Parameters
    ----------
    counts : IntArray
        Items x categories label counts, shape (n_items, n_categories).

    Returns
    -------
    _Coverage
        ``labels_per_item`` of shape (n_items,) and the two item counts.
    """
    m = counts.sum(axis=1)
    return _Coverage(labels_per_item=m, n_multi=int((m >= 2).sum()),
                     n_single=int((m == 1).sum()))


def _input_notes(enc: EncodedAnnotations, coverage: _Coverage) -> list[str]:
    """Notes on what the encoding dropped and which items cannot count for agreement.

    Parameters
    ----------
    enc : EncodedAnnotations
        The encoded annotations (their null and duplicate counts).
    coverage : _Coverage
        Labels per item of ``enc``.

    Returns
    -------
    list[str]
        Zero to four report notes, in report order.
    """
    notes: list[str] = []
    if coverage.n_single:
        notes.append(
            f"{coverage.n_single} item(s) have a single label: excluded from agreement"
        )
    if enc.n_null_labels:
        notes.append(f"{enc.n_null_labels} row(s) with a null label dropped as missing")
    if enc.n_duplicates_dropped:
        notes.append(
            f"{enc.n_duplicates_dropped} repeated (item, annotator) label(s) dropped: "
            "kept the latest by timestamp"
        )
    if coverage.n_multi == 0:
        notes.append("no item has two or more labels: agreement coefficients are undefined")
    return notes


def _gold_agreement(codes: IntArray, gold_codes: IntArray) -> float:
    """Share of gold items (``gold_codes >= 0``) where ``codes`` equals gold; NaN if none.

    Both arrays have shape (n_items,).
    """
    gold_items = gold_codes >= 0
    return float((codes[gold_items] == gold_codes[gold_items]).mean()) if gold_items.any() \
        else NAN


def _count_metrics(enc: EncodedAnnotations, coverage: _Coverage) -> dict[str, float | int | None]:
    """Gate metrics on the size of the input: rows, labels, items, annotators, categories.

    Parameters
    ----------
    enc : EncodedAnnotations
        The encoded annotations.
    coverage : _Coverage
        Labels per item of ``enc``.

    Returns
    -------
    dict[str, float | int | None]
        Ten integer metrics, in report order.
    """
    m = coverage.labels_per_item
    return {
        "n_input_rows": enc.n_input_rows,
        "n_labels": int(enc.item_idx.size),
        "n_null_labels": enc.n_null_labels,
        "n_duplicates_dropped": enc.n_duplicates_dropped,
        "n_items": enc.n_items,
        "n_items_multi_label": coverage.n_multi,
        "n_items_single_label": coverage.n_single,
        "min_labels_per_item": int(m.min()) if m.size else 0,
        "n_annotators": enc.n_annotators,
        "n_categories": enc.n_categories,
    }


def _coefficient_metrics(
    coefficients: _Coefficients,
    pairs: _PairScores,
    *,
    weights_kind: KappaWeights | None,
) -> dict[str, float | int | None]:
    """Gate metrics of the agreement coefficients.

    Parameters
    ----------
    coefficients : _Coefficients
        The whole-matrix coefficients.
    pairs : _PairScores
        Cohen's kappa summary.
    weights_kind : {"linear", "quadratic"} or None
        None: Gwet's AC2 is reported as NaN (it would equal AC1).

    Returns
    -------
    dict[str, float | int | None]
        Fourteen metrics, in report order.
    """
    c = coefficients
    return {
        "percent_agreement": c.percent_agreement,
        "krippendorff_alpha": c.alpha,
        "krippendorff_alpha_ci_low": c.alpha_ci_low,
        "krippendorff_alpha_ci_high": c.alpha_ci_high,
        "krippendorff_alpha_n_boot": c.alpha_n_boot,
        "fleiss_kappa": c.fleiss,
        "fleiss_kappa_n_items": c.fleiss_n_items,
        "fleiss_kappa_labels_per_item": c.fleiss_labels_per_item,
        "fleiss_kappa_generalized": c.fleiss_generalized,
        "mean_cohen_kappa": pairs.mean_kappa,
        "n_cohen_pairs": pairs.n_scored,
        "n_cohen_pairs_skipped": pairs.n_skipped,
        "gwet_ac1": c.ac1,
        "gwet_ac2": c.ac2 if weights_kind is not None else NAN,
    }


def _consensus_metrics(
    gold: _GoldScores,
    consensus: _Consensus,
    *,
    annotators: pl.DataFrame,
) -> dict[str, float | int | None]:
    """Gate metrics on gold, the consensus methods and flagged annotators.

    Parameters
    ----------
    gold : _GoldScores
        Gold per item and per annotator.
    consensus : _Consensus
        The consensus results (rows follow the items); the comparison's first row is
        majority vs Dawid-Skene.
    annotators : pl.DataFrame
        The flagged annotator table.

    Returns
    -------
    dict[str, float | int | None]
        Seven metrics, in report order.
    """
    scored_gold = gold.accuracy[np.isfinite(gold.accuracy)]
    mv, ds = consensus.majority, consensus.dawid_skene
    return {
        "n_gold_items_labelled": int((gold.item_codes >= 0).sum()),
        "min_annotator_gold_accuracy": float(scored_gold.min()) if scored_gold.size else NAN,
        "majority_gold_accuracy": _gold_agreement(mv.label_idx, gold.item_codes),
        "dawid_skene_gold_accuracy": _gold_agreement(ds.label_idx, gold.item_codes),
        "majority_vs_dawid_skene_disagreement": float(
            consensus.comparison["share_differ"][0]
        ),
        "n_majority_ties": int(sum(r != "none" for r in mv.tie_broken_by)),
        "n_flagged_annotators": int(annotators["flagged"].sum()),
    }


def compute_agreement(
    annotations: pl.DataFrame,
    *,
    item_column: str = "item",
    annotator_column: str = "annotator",
    label_column: str = "label",
    timestamp_column: str | None = "timestamp",
    level: Level = "nominal",
    categories: Sequence[Any] | None = None,
    gold: pl.DataFrame | None = None,
    gold_item_column: str = "item",
    gold_label_column: str = "label",
    kappa_weights: KappaWeights | Literal["default"] | None = "default",
    min_shared_items: int = 10,
    min_gold_items: int = 5,
    min_annotator_agreement: float | None = 0.5,
    min_annotator_kappa: float | None = None,
    min_annotator_gold_accuracy: float | None = None,
    crowdlab: pl.DataFrame | None = None,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    dawid_skene_max_iter: int = 100,
    source: str = "annotations",
    gold_source: str = "gold",
) -> AgreementReport:
    """Agreement, per-annotator quality and consensus for long-format annotations.

    ``categories`` is the declared label set (required order for ordinal string labels);
    ``kappa_weights`` defaults to none / linear / quadratic for nominal / ordinal / interval
    and is also the weighting of Gwet's AC2. ``crowdlab`` is a frame from
    ``crowdlab_consensus_frame`` (item, crowdlab, crowdlab_quality). Annotators are flagged
    when below any given threshold; gold accuracy counts only with ``min_gold_items``.
    """
    enc = encode_annotations(
        annotations, item_column=item_column, annotator_column=annotator_column,
        label_column=label_column, timestamp_column=timestamp_column, level=level,
        categories=categories, source=source,
    )
    weights_kind = _default_weights(level) if kappa_weights == "default" else kappa_weights
    counts = enc.counts()
    coverage = _coverage(counts)
    coefficients, coefficient_notes = _coefficients(
        enc, counts, n_multi=coverage.n_multi, weights_kind=weights_kind, n_boot=n_boot,
        confidence=confidence, seed=seed,
    )
    pairs, pair_notes = _pair_scores(enc, weights_kind=weights_kind,
                                     min_shared_items=min_shared_items)
    gold_scores = _gold_scores(enc, gold, item_column=gold_item_column,
                               label_column=gold_label_column, source=gold_source,
                               min_gold_items=min_gold_items)
    consensus = _consensus(enc, gold_scores, crowdlab=crowdlab, with_gold=gold is not None,
                           max_iter=dawid_skene_max_iter)
    annot = _flag_annotators(
        _annotator_table(enc, counts, pairs=pairs.table, gold=gold_scores,
                         ds=consensus.dawid_skene),
        min_agreement=min_annotator_agreement, min_kappa=min_annotator_kappa,
        min_gold_accuracy=min_annotator_gold_accuracy, min_gold_items=min_gold_items,
    )
    metrics = {
        **_count_metrics(enc, coverage),
        **_coefficient_metrics(coefficients, pairs, weights_kind=weights_kind),
        **_consensus_metrics(gold_scores, consensus, annotators=annot),
    }
    notes = _input_notes(enc, coverage) + coefficient_notes + pair_notes + consensus.notes
    return AgreementReport(
        level=level, categories=enc.categories.to_list(), metrics=metrics, pairs=pairs.table,
        per_class=_per_class_table(enc, counts, majority=consensus.majority.label_idx),
        confusion=_confusion_table(enc, counts), annotators=annot, consensus=consensus.table,
        consensus_comparison=consensus.comparison, notes=notes,
    )
