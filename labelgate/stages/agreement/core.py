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
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import krippendorff
import numpy as np
import polars as pl
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss_kappa

from labelgate.errors import InputError
from labelgate.stages.agreement.annotations import (
    LEVELS,
    EncodedAnnotations,
    FloatArray,
    IntArray,
    LabelStudioExport,
    Level,
    encode_annotations,
    encode_labels,
    parse_label_studio_export,
    read_label_studio_export,
    to_cleanlab_multiannotator,
    wide_to_long,
)
from labelgate.stages.agreement.consensus import (
    DawidSkene,
    MajorityVote,
    compare_consensus,
    crowdlab_consensus_frame,
    dawid_skene,
    majority_vote,
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

KappaWeights = Literal["linear", "quadratic"]
NAN = float("nan")


# --------------------------------------------------------------------------- coefficients
# All of these take the items x categories count matrix n[u, k] (how many annotators gave
# item u category k), so they also work on "distribution of raters" data.


def _pairable(counts: IntArray | FloatArray) -> tuple[FloatArray, FloatArray]:
    n = np.asarray(counts, dtype=np.float64)
    m = n.sum(axis=1)
    keep = m >= 2
    return n[keep], m[keep]


def agreement_weights(values: FloatArray, kind: KappaWeights | None) -> FloatArray:
    """Gwet's weight matrix on category values: identity, linear or quadratic."""
    k = values.shape[0]
    if kind is None or k < 2:
        return np.eye(k)
    diff = np.abs(values[:, None] - values[None, :])
    span = float(values.max() - values.min())
    if kind == "linear":
        return np.asarray(1.0 - diff / span, dtype=np.float64)
    return np.asarray(1.0 - (diff / span) ** 2, dtype=np.float64)


def percent_agreement(counts: IntArray | FloatArray, *, weights: FloatArray | None = None) -> float:
    """Mean over items with >= 2 labels of the share of agreeing (ordered) label pairs."""
    n, m = _pairable(counts)
    if n.shape[0] == 0:
        return NAN
    nw = n if weights is None else n @ weights.T
    per_item = (n * (nw - 1.0)).sum(axis=1) / (m * (m - 1.0))
    return float(per_item.mean())


def _category_shares(counts: IntArray | FloatArray) -> FloatArray:
    n = np.asarray(counts, dtype=np.float64)
    m = n.sum(axis=1)
    rated = m >= 1
    return np.asarray((n[rated] / m[rated, None]).mean(axis=0), dtype=np.float64)


def fleiss_kappa_generalized(counts: IntArray | FloatArray) -> float:
    """Fleiss' kappa for unequal label counts per item (Gwet 2014): pa over items with >= 2
    labels, chance agreement from the mean per-item category shares over all rated items."""
    pa = percent_agreement(counts)
    pi = _category_shares(counts)
    pe = float((pi**2).sum())
    return NAN if math.isnan(pa) or pe >= 1.0 else (pa - pe) / (1.0 - pe)


def gwet_ac(
    counts: IntArray | FloatArray,
    *,
    weights: FloatArray | None = None,
    n_categories: int | None = None,
) -> float:
    """Gwet's AC1 (``weights=None``) or AC2 (a category weight matrix), raw-data form for any
    number of raters with missing labels (Gwet 2014; irrCAC ``gwet.ac1.raw``)."""
    n = np.asarray(counts, dtype=np.float64)
    q = n.shape[1] if n_categories is None else n_categories
    pa = percent_agreement(n, weights=weights)
    if math.isnan(pa) or q < 2:
        return NAN
    pi = _category_shares(n)
    w_sum = float(q if weights is None else weights.sum())
    pe = w_sum * float((pi * (1.0 - pi)).sum()) / (q * (q - 1.0))
    return (pa - pe) / (1.0 - pe)


def fleiss_kappa(counts: IntArray | FloatArray) -> tuple[float, int, int]:
    """statsmodels' Fleiss kappa on the items with the modal label count (>= 2; the larger
    count wins a tie). Returns (kappa, items used, labels per item)."""
    n = np.asarray(counts, dtype=np.float64)
    m = n.sum(axis=1).astype(np.int64)
    m = m[m >= 2]
    if m.size == 0:
        return NAN, 0, 0
    freq = np.bincount(m)
    modal = int(np.flatnonzero(freq == freq.max()).max())
    table = n[n.sum(axis=1) == modal]
    p = table.sum(axis=0) / table.sum()
    if float((p**2).sum()) >= 1.0:  # one category only: chance agreement is 1
        return NAN, table.shape[0], modal
    return float(sm_fleiss_kappa(table, method="fleiss")), table.shape[0], modal


def specific_agreement(counts: IntArray | FloatArray) -> FloatArray:
    """Per category: agreeing label pairs in it / all label pairs involving it (NaN if none)."""
    n, m = _pairable(counts)
    agree = (n * (n - 1.0)).sum(axis=0)
    possible = (n * (m[:, None] - 1.0)).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(np.where(possible > 0, agree / possible, np.nan), dtype=np.float64)


def pair_confusion(counts: IntArray | FloatArray) -> IntArray:
    """Category x category counts over all ordered label pairs on the same item."""
    n, _ = _pairable(counts)
    table = n.T @ n - np.diag(n.sum(axis=0))
    return np.rint(table).astype(np.int64)


def _distinct_pairable_values(counts: IntArray | FloatArray) -> int:
    n, _ = _pairable(counts)
    return int((n.sum(axis=0) > 0).sum())


def krippendorff_alpha(
    counts: IntArray | FloatArray, *, level: Level, values: FloatArray | None = None
) -> float:
    """Krippendorff's alpha (krippendorff package); NaN when it is undefined (fewer than two
    distinct values among items with >= 2 labels). ``values``: the category values (interval
    level); category positions otherwise."""
    n = np.asarray(counts, dtype=np.float64)
    if _distinct_pairable_values(n) < 2:
        return NAN
    domain = np.arange(n.shape[1], dtype=np.float64) if values is None else values
    return float(
        krippendorff.alpha(value_counts=n, value_domain=domain, level_of_measurement=level)
    )


def _alpha_features(n: FloatArray, m: FloatArray, level: Level, values: FloatArray) -> FloatArray:
    """Per-item sums that alpha is linear in (pairable items only)."""
    if level == "interval":
        v = values - values.mean()
        s1 = n @ v
        s2 = n @ (v * v)
        d_o = (2.0 * m * s2 - 2.0 * s1 * s1) / (m - 1.0)
        return np.column_stack([d_o, m, s1, s2])
    if level == "nominal":
        d_o = (m * m - (n * n).sum(axis=1)) / (m - 1.0)
        return np.column_stack([d_o, n])
    o = (n[:, :, None] * n[:, None, :]) / (m - 1.0)[:, None, None]
    k = n.shape[1]
    o[:, np.arange(k), np.arange(k)] -= n / (m - 1.0)[:, None]
    return o.reshape(n.shape[0], k * k)


def _alpha_from_sums(sums: FloatArray, level: Level, k: int) -> FloatArray:
    """Alpha for each row of summed per-item features (rows = resamples)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        if level == "interval":
            d_o, tot, s1, s2 = sums.T
            d_e = 2.0 * tot * s2 - 2.0 * s1 * s1
            return np.asarray(1.0 - (tot - 1.0) * d_o / d_e, dtype=np.float64)
        if level == "nominal":
            d_o, n_c = sums[:, 0], sums[:, 1:]
            tot = n_c.sum(axis=1)
            d_e = tot * tot - (n_c * n_c).sum(axis=1)
            return np.asarray(1.0 - (tot - 1.0) * d_o / d_e, dtype=np.float64)
        o = sums.reshape(-1, k, k)
        n_c = o.sum(axis=2)
        tot = n_c.sum(axis=1)
        cum = np.concatenate([np.zeros((n_c.shape[0], 1)), np.cumsum(n_c, axis=1)], axis=1)
        lo = np.minimum.outer(np.arange(k), np.arange(k))
        hi = np.maximum.outer(np.arange(k), np.arange(k))
        between = cum[:, hi + 1] - cum[:, lo]
        delta = (between - (n_c[:, :, None] + n_c[:, None, :]) / 2.0) ** 2
        d_o = (o * delta).sum(axis=(1, 2))
        d_e = (n_c[:, :, None] * n_c[:, None, :] * delta).sum(axis=(1, 2))
        return np.asarray(1.0 - (tot - 1.0) * d_o / d_e, dtype=np.float64)


def bootstrap_alpha(
    counts: IntArray | FloatArray,
    *,
    level: Level,
    values: FloatArray | None = None,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, int]:
    """Percentile bootstrap interval for alpha, resampling items with >= 2 labels.

    Returns (low, high, number of resamples where alpha was defined). Deterministic for a
    seed; memory is bounded by resampling in chunks of about 2 M item draws.
    """
    n, m = _pairable(counts)
    k = n.shape[1]
    if n_boot <= 0 or n.shape[0] == 0:
        return NAN, NAN, 0
    vals = np.arange(k, dtype=np.float64) if values is None else values
    feats = _alpha_features(n, m, level, vals)
    n_items = n.shape[0]
    rng = np.random.default_rng(seed)
    chunk = max(1, min(n_boot, 2_000_000 // n_items))
    alphas: list[FloatArray] = []
    done = 0
    while done < n_boot:
        b = min(chunk, n_boot - done)
        draws = rng.integers(0, n_items, size=(b, n_items))
        draws += (np.arange(b) * n_items)[:, None]
        w = np.bincount(draws.ravel(), minlength=b * n_items).reshape(b, n_items)
        alphas.append(_alpha_from_sums(w @ feats, level, k))
        done += b
    boot = np.concatenate(alphas)
    boot = boot[np.isfinite(boot)]
    if boot.size == 0:
        return NAN, NAN, 0
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(boot, [tail, 1.0 - tail])
    return float(low), float(high), int(boot.size)


# --------------------------------------------------------------------------- tables


def _labels(categories: pl.Series, codes: IntArray, name: str) -> pl.Series:
    return categories.gather(codes).alias(name)


def _cohen_pairs(
    enc: EncodedAnnotations,
    *,
    weights: KappaWeights | None,
    min_shared_items: int,
) -> pl.DataFrame:
    rows = pl.DataFrame({"i": enc.item_idx, "a": enc.annotator_idx, "l": enc.label_idx})
    pairs = (
        rows.join(rows, on="i", suffix="_b")
        .filter(pl.col("a") < pl.col("a_b"))
        .group_by("a", "a_b")
        .agg(pl.col("l"), pl.col("l_b"))
        .sort("a", "a_b")
    )
    labels = np.arange(enc.n_categories)
    out: dict[str, list[Any]] = {
        "annotator_a": [], "annotator_b": [], "n_shared": [], "percent_agreement": [],
        "cohen_kappa": [],
    }
    for a, b, la, lb in pairs.iter_rows():
        x, y = np.asarray(la), np.asarray(lb)
        kappa: float | None = None
        if x.size >= min_shared_items:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # constant raters: sklearn warns, gives NaN
                kappa = float(cohen_kappa_score(x, y, labels=labels, weights=weights))
            if math.isnan(kappa):
                kappa = None
        out["annotator_a"].append(enc.annotators[a])
        out["annotator_b"].append(enc.annotators[b])
        out["n_shared"].append(int(x.size))
        out["percent_agreement"].append(float((x == y).mean()))
        out["cohen_kappa"].append(kappa)
    dtype = enc.annotators.dtype
    return pl.DataFrame(
        out,
        schema={"annotator_a": dtype, "annotator_b": dtype, "n_shared": pl.Int64,
                "percent_agreement": pl.Float64, "cohen_kappa": pl.Float64},
    )


def _gold_codes(
    enc: EncodedAnnotations,
    gold: pl.DataFrame,
    *,
    item_column: str,
    label_column: str,
    source: str,
) -> IntArray:
    """Gold category code per encoded item, -1 where the item has no gold label."""
    missing = [c for c in (item_column, label_column) if c not in gold.columns]
    if missing:
        raise InputError(f"{source}: missing column(s) {missing}; found {gold.columns}")
    for col in (item_column, label_column):
        if gold[col].null_count():
            raise InputError(
                f"{source}: column {col!r} has {gold[col].null_count()} null value(s); "
                "expected none"
            )
    dup = gold[item_column].filter(gold[item_column].is_duplicated()).unique().sort()
    if dup.len():
        raise InputError(
            f"{source}: column {item_column!r} repeats items {dup.head(5).to_list()}; "
            "expected one gold label per item"
        )
    codes = encode_labels(gold[label_column], enc.categories,
                          where=f"{source}: column {label_column!r}")
    items = enc.items
    g_items = gold[item_column]
    if g_items.dtype != items.dtype:
        items, g_items = items.cast(pl.String), g_items.cast(pl.String)
    g = pl.DataFrame([g_items.alias("_item"), pl.Series("_gold", codes)])
    joined = items.alias("_item").to_frame().join(g, on="_item", how="left",
                                                  maintain_order="left")
    return joined["_gold"].fill_null(-1).to_numpy().astype(np.int64)


def _loo_consensus_credit(enc: EncodedAnnotations, counts: IntArray) -> tuple[FloatArray,
                                                                             FloatArray]:
    """Per label row: credit for matching the majority of the other labels, and validity."""
    others = counts[enc.item_idx].astype(np.float64)
    others[np.arange(others.shape[0]), enc.label_idx] -= 1.0
    valid = others.sum(axis=1) >= 1
    top = others.max(axis=1, keepdims=True)
    is_top = (others == top) & (top > 0)
    mine = is_top[np.arange(others.shape[0]), enc.label_idx]
    credit = np.where(mine, 1.0 / np.maximum(is_top.sum(axis=1), 1), 0.0)
    return credit, valid.astype(np.float64)


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


# --------------------------------------------------------------------------- report parts


@dataclass(frozen=True)
class _Coverage:
    """How many labels each item has (``labels_per_item``: shape (n_items,))."""

    labels_per_item: IntArray
    n_multi: int  # items with >= 2 labels
    n_single: int  # items with exactly one label


@dataclass(frozen=True)
class _Coefficients:
    """The agreement coefficients of one count matrix (NaN where undefined)."""

    percent_agreement: float
    alpha: float
    alpha_ci_low: float
    alpha_ci_high: float
    alpha_n_boot: int
    fleiss: float
    fleiss_n_items: int
    fleiss_labels_per_item: int
    fleiss_generalized: float
    ac1: float
    ac2: float


@dataclass(frozen=True)
class _PairScores:
    """Cohen's kappa per annotator pair and its summary."""

    table: pl.DataFrame  # annotator_a, annotator_b, n_shared, percent_agreement, cohen_kappa
    mean_kappa: float
    n_scored: int
    n_skipped: int


@dataclass(frozen=True)
class _GoldScores:
    """Gold labels per item and each annotator's score on them."""

    item_codes: IntArray  # (n_items,): gold category code, -1 without gold
    n_gold: IntArray  # (n_annotators,): labels given on gold items
    n_correct: FloatArray  # (n_annotators,): of those, labels equal to gold
    accuracy: FloatArray  # (n_annotators,): n_correct / n_gold, NaN under min_gold_items


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


def _coefficients(
    enc: EncodedAnnotations,
    counts: IntArray,
    *,
    n_multi: int,
    weights_kind: KappaWeights | None,
    n_boot: int,
    confidence: float,
    seed: int,
) -> tuple[_Coefficients, list[str]]:
    """Percent agreement, Krippendorff's alpha (with its bootstrap CI), Fleiss, Gwet.

    Parameters
    ----------
    enc : EncodedAnnotations
        Gives the measurement level, category values and number of categories.
    counts : IntArray
        Items x categories label counts of ``enc``, shape (n_items, n_categories).
    n_multi : int
        Items with two or more labels (for the notes).
    weights_kind : {"linear", "quadratic"} or None
        Category weights of Gwet's AC2.
    n_boot, confidence, seed
        Bootstrap of alpha: resamples, interval coverage, random seed.

    Returns
    -------
    tuple[_Coefficients, list[str]]
        The coefficients, and notes on alpha being undefined or Fleiss' kappa using a
        subset of the items.
    """
    notes: list[str] = []
    pa = percent_agreement(counts)
    alpha = krippendorff_alpha(counts, level=enc.level, values=enc.values)
    if n_multi and math.isnan(alpha):
        notes.append("Krippendorff's alpha undefined: a single value among items with >= 2 "
                     "labels (no variation to be reliable about)")
    ci_low, ci_high, n_boot_ok = (
        bootstrap_alpha(counts, level=enc.level, values=enc.values, n_boot=n_boot,
                        confidence=confidence, seed=seed)
        if not math.isnan(alpha) else (NAN, NAN, 0)
    )
    fk, fk_items, fk_raters = fleiss_kappa(counts)
    if fk_items and fk_items < n_multi:
        notes.append(
            f"Fleiss' kappa (statsmodels) uses the {fk_items} of {n_multi} items with the modal "
            f"{fk_raters} labels per item; fleiss_kappa_generalized uses all {n_multi}"
        )
    fk_gen = fleiss_kappa_generalized(counts)
    ac1 = gwet_ac(counts, n_categories=enc.n_categories)
    w_matrix = agreement_weights(enc.values, weights_kind)
    ac2 = gwet_ac(counts, weights=w_matrix, n_categories=enc.n_categories)
    coefficients = _Coefficients(
        percent_agreement=pa, alpha=alpha, alpha_ci_low=ci_low, alpha_ci_high=ci_high,
        alpha_n_boot=n_boot_ok, fleiss=fk, fleiss_n_items=fk_items,
        fleiss_labels_per_item=fk_raters, fleiss_generalized=fk_gen, ac1=ac1, ac2=ac2,
    )
    return coefficients, notes


def _pair_scores(
    enc: EncodedAnnotations,
    *,
    weights_kind: KappaWeights | None,
    min_shared_items: int,
) -> tuple[_PairScores, list[str]]:
    """Cohen's kappa per annotator pair, their mean, and how many pairs were not scored.

    Parameters
    ----------
    enc : EncodedAnnotations
        The encoded annotations.
    weights_kind : {"linear", "quadratic"} or None
        Kappa weighting on category positions.
    min_shared_items : int
        Pairs sharing fewer items get no kappa.

    Returns
    -------
    tuple[_PairScores, list[str]]
        One table row per annotator pair that shares an item, the summary, and a note on
        pairs sharing too few items (or no note).
    """
    pairs = _cohen_pairs(enc, weights=weights_kind, min_shared_items=min_shared_items)
    notes: list[str] = []
    n_short = int((pairs["n_shared"] < min_shared_items).sum())
    if n_short:
        notes.append(
            f"{n_short} annotator pair(s) share fewer than {min_shared_items} items: no Cohen's "
            "kappa for them"
        )
    kappas = pairs["cohen_kappa"].drop_nulls()
    mean_kappa = float(kappas.mean()) if kappas.len() else NAN  # type: ignore[arg-type]
    scores = _PairScores(table=pairs, mean_kappa=mean_kappa, n_scored=kappas.len(),
                         n_skipped=int(pairs["cohen_kappa"].is_null().sum()))
    return scores, notes


def _gold_scores(
    enc: EncodedAnnotations,
    gold: pl.DataFrame | None,
    *,
    item_column: str,
    label_column: str,
    source: str,
    min_gold_items: int,
) -> _GoldScores:
    """Gold label per item and each annotator's labels on gold items, right and total.

    Parameters
    ----------
    enc : EncodedAnnotations
        The encoded annotations.
    gold : pl.DataFrame or None
        One row per gold item (``item_column``, ``label_column``); None: no gold.
    item_column, label_column, source
        Gold column names, and the name of the gold input in messages.
    min_gold_items : int
        Annotators with fewer gold labels get a NaN ``accuracy``.

    Returns
    -------
    _GoldScores
        Arrays of shape (n_items,) and (n_annotators,).
    """
    gold_codes = (
        _gold_codes(enc, gold, item_column=item_column, label_column=label_column,
                    source=source)
        if gold is not None else np.full(enc.n_items, -1, dtype=np.int64)
    )
    row_gold = gold_codes[enc.item_idx]
    has_gold = row_gold >= 0
    n_ann = enc.n_annotators
    n_gold = np.bincount(enc.annotator_idx[has_gold], minlength=n_ann)
    n_gold_correct = np.asarray(np.bincount(  # weighted: already float64
        enc.annotator_idx[has_gold],
        weights=(enc.label_idx[has_gold] == row_gold[has_gold]).astype(np.float64),
        minlength=n_ann,
    ), dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        gold_acc = np.where(n_gold >= min_gold_items, n_gold_correct / n_gold, np.nan)
    return _GoldScores(item_codes=gold_codes, n_gold=n_gold, n_correct=n_gold_correct,
                       accuracy=gold_acc)


def _consensus_table(
    enc: EncodedAnnotations,
    mv: MajorityVote,
    ds: DawidSkene,
    *,
    crowdlab: pl.DataFrame | None,
    gold_codes: IntArray | None,
) -> tuple[pl.DataFrame, list[str]]:
    """The per-item consensus frame and the names of its consensus columns.

    Parameters
    ----------
    enc : EncodedAnnotations
        The encoded annotations (items and categories).
    mv, ds : MajorityVote, DawidSkene
        The two consensus results, rows in the order of ``enc.items``.
    crowdlab : pl.DataFrame or None
        ``crowdlab_consensus_frame`` output (item, crowdlab, ...), joined on item.
    gold_codes : IntArray or None
        Gold category code per item (shape (n_items,), -1 without gold); None: no gold
        column.

    Returns
    -------
    tuple[pl.DataFrame, list[str]]
        One row per item (item, majority, dawid_skene, n_labels, agreement,
        majority_tie_broken_by, dawid_skene_posterior[, crowdlab columns][, gold]), and the
        consensus columns to compare.
    """
    cats = enc.categories
    consensus = pl.DataFrame([
        enc.items.alias("item"),
        _labels(cats, mv.label_idx, "majority"),
        _labels(cats, ds.label_idx, "dawid_skene"),
        pl.Series("n_labels", mv.n_labels),
        pl.Series("agreement", mv.n_votes / mv.n_labels),
        pl.Series("majority_tie_broken_by", mv.tie_broken_by, dtype=pl.String),
        pl.Series("dawid_skene_posterior", ds.posterior[np.arange(enc.n_items), ds.label_idx]),
    ])
    methods = ["majority", "dawid_skene"]
    if crowdlab is not None:
        if "item" not in crowdlab.columns or "crowdlab" not in crowdlab.columns:
            raise InputError(
                f"CROWDLAB consensus: columns {crowdlab.columns}; expected item, crowdlab "
                "(see crowdlab_consensus_frame)"
            )
        cl = crowdlab.with_columns(pl.col("item").cast(enc.items.dtype),
                                   pl.col("crowdlab").cast(cats.dtype))
        consensus = consensus.join(cl, on="item", how="left", maintain_order="left")
        methods.append("crowdlab")
    if gold_codes is not None:
        consensus = consensus.with_columns(
            pl.when(pl.Series(gold_codes >= 0))
            .then(_labels(cats, np.maximum(gold_codes, 0), "gold"))
            .alias("gold")
        )
    return consensus, methods


@dataclass(frozen=True)
class _Consensus:
    """The consensus labels of every item and how the methods compare."""

    majority: MajorityVote
    dawid_skene: DawidSkene
    table: pl.DataFrame  # one row per item (``_consensus_table``)
    comparison: pl.DataFrame  # ``compare_consensus`` of the table's methods
    notes: list[str]


def _consensus(
    enc: EncodedAnnotations,
    gold: _GoldScores,
    *,
    crowdlab: pl.DataFrame | None,
    with_gold: bool,
    max_iter: int,
) -> _Consensus:
    """Majority vote (gold accuracy breaks ties), Dawid-Skene, and their comparison.

    Parameters
    ----------
    enc : EncodedAnnotations
        The encoded annotations.
    gold : _GoldScores
        Gold per item and the annotators' gold accuracy (shape (n_annotators,)).
    crowdlab : pl.DataFrame or None
        ``crowdlab_consensus_frame`` output to compare as a third method.
    with_gold : bool
        Whether gold was given (adds a gold column to the table).
    max_iter : int
        Dawid-Skene EM iterations at most.

    Returns
    -------
    _Consensus
        Both results (rows follow ``enc.items``), the per-item table, the comparison, and a
        note when Dawid-Skene did not converge.
    """
    mv = majority_vote(enc, annotator_gold_accuracy=gold.accuracy)
    ds = dawid_skene(enc, max_iter=max_iter)
    notes: list[str] = []
    if not ds.converged:
        notes.append(f"Dawid-Skene did not converge in {ds.n_iter} iterations")
    table, methods = _consensus_table(enc, mv, ds, crowdlab=crowdlab,
                                      gold_codes=gold.item_codes if with_gold else None)
    return _Consensus(majority=mv, dawid_skene=ds, table=table,
                      comparison=compare_consensus(table, methods=methods), notes=notes)


def _per_class_table(
    enc: EncodedAnnotations, counts: IntArray, *, majority: IntArray
) -> pl.DataFrame:
    """Per category: labels, share of labels, majority wins and specific agreement.

    Parameters
    ----------
    enc : EncodedAnnotations
        The encoded annotations (categories).
    counts : IntArray
        Items x categories label counts, shape (n_items, n_categories).
    majority : IntArray
        Majority category code per item, shape (n_items,).

    Returns
    -------
    pl.DataFrame
        One row per category: category, n_labels, share, n_majority, specific_agreement.
    """
    spec = specific_agreement(counts)
    return pl.DataFrame([
        enc.categories.alias("category"),
        pl.Series("n_labels", counts.sum(axis=0)),
        pl.Series("share", counts.sum(axis=0) / counts.sum()),
        pl.Series("n_majority", np.bincount(majority, minlength=enc.n_categories)),
        pl.Series("specific_agreement", spec),
    ]).with_columns(pl.col("specific_agreement").fill_nan(None))


def _confusion_table(enc: EncodedAnnotations, counts: IntArray) -> pl.DataFrame:
    """The pair confusion matrix in long form.

    Parameters
    ----------
    enc, counts
        As in ``_per_class_table``: the categories and the (n_items, n_categories) counts.

    Returns
    -------
    pl.DataFrame
        n_categories ** 2 rows (label_a, label_b, n_pairs), label_a major.
    """
    conf = pair_confusion(counts)
    k = enc.n_categories
    cats = enc.categories
    return pl.DataFrame([
        _labels(cats, np.repeat(np.arange(k), k), "label_a"),
        _labels(cats, np.tile(np.arange(k), k), "label_b"),
        pl.Series("n_pairs", conf.ravel()),
    ])


def _annotator_table(
    enc: EncodedAnnotations,
    counts: IntArray,
    *,
    pairs: pl.DataFrame,
    gold: _GoldScores,
    ds: DawidSkene,
) -> pl.DataFrame:
    """Per annotator: labels, leave-one-out consensus agreement, gold and kappa scores.

    Parameters
    ----------
    enc : EncodedAnnotations
        The encoded annotations.
    counts : IntArray
        Items x categories label counts, shape (n_items, n_categories).
    pairs : pl.DataFrame
        Cohen's kappa per annotator pair (``_cohen_pairs``).
    gold : _GoldScores
        The annotators' gold counts.
    ds : DawidSkene
        Gives each annotator's estimated accuracy.

    Returns
    -------
    pl.DataFrame
        One row per annotator (order of ``enc.annotators``): annotator, n_labels,
        n_items_shared, consensus_agreement, n_gold, gold_accuracy, dawid_skene_accuracy,
        mean_cohen_kappa, n_kappa_pairs.
    """
    n_ann = enc.n_annotators
    credit, valid = _loo_consensus_credit(enc, counts)
    n_shared_items = np.bincount(enc.annotator_idx, weights=valid, minlength=n_ann)
    with np.errstate(invalid="ignore", divide="ignore"):
        loo = np.bincount(enc.annotator_idx, weights=credit * valid, minlength=n_ann) / (
            n_shared_items
        )
    pair_long = pl.concat([
        pairs.select(pl.col("annotator_a").alias("annotator"), "cohen_kappa"),
        pairs.select(pl.col("annotator_b").alias("annotator"), "cohen_kappa"),
    ])
    per_ann_kappa = pair_long.group_by("annotator").agg(
        pl.col("cohen_kappa").mean().alias("mean_cohen_kappa"),
        pl.col("cohen_kappa").count().alias("n_kappa_pairs"),
    )
    n_gold = gold.n_gold
    return pl.DataFrame([
        enc.annotators.alias("annotator"),
        pl.Series("n_labels", np.bincount(enc.annotator_idx, minlength=n_ann)),
        pl.Series("n_items_shared", n_shared_items.astype(np.int64)),
        pl.Series("consensus_agreement", loo),
        pl.Series("n_gold", n_gold),
        pl.Series("gold_accuracy", np.where(n_gold > 0, gold.n_correct / np.maximum(n_gold, 1),
                                            np.nan)),
        pl.Series("dawid_skene_accuracy", ds.annotator_accuracy),
    ]).join(per_ann_kappa, on="annotator", how="left", maintain_order="left").with_columns(
        pl.col("n_kappa_pairs").fill_null(0),
        pl.col("consensus_agreement", "gold_accuracy").fill_nan(None),
    )


def _flag_annotators(
    annotators: pl.DataFrame,
    *,
    min_agreement: float | None,
    min_kappa: float | None,
    min_gold_accuracy: float | None,
    min_gold_items: int,
) -> pl.DataFrame:
    """Add ``flag_reasons`` (null when none) and ``flagged`` to the annotator table.

    Parameters
    ----------
    annotators : pl.DataFrame
        ``_annotator_table`` output, one row per annotator.
    min_agreement, min_kappa, min_gold_accuracy : float or None
        Thresholds on consensus_agreement, mean_cohen_kappa and gold_accuracy; None: not
        checked.
    min_gold_items : int
        Gold accuracy counts only for annotators with this many gold labels.

    Returns
    -------
    pl.DataFrame
        ``annotators`` with two more columns, same rows.
    """
    reasons: list[pl.Expr] = []
    if min_agreement is not None:
        reasons.append(pl.when(pl.col("consensus_agreement") < min_agreement)
                       .then(pl.lit(f"consensus_agreement < {min_agreement}")))
    if min_kappa is not None:
        reasons.append(pl.when(pl.col("mean_cohen_kappa") < min_kappa)
                       .then(pl.lit(f"mean_cohen_kappa < {min_kappa}")))
    if min_gold_accuracy is not None:
        reasons.append(
            pl.when((pl.col("gold_accuracy") < min_gold_accuracy)
                    & (pl.col("n_gold") >= min_gold_items))
            .then(pl.lit(f"gold_accuracy < {min_gold_accuracy}"))
        )
    return annotators.with_columns(
        (pl.concat_str(reasons, separator="; ", ignore_nulls=True) if reasons
         else pl.lit(None, dtype=pl.String)).alias("flag_reasons")
    ).with_columns(
        pl.when(pl.col("flag_reasons") == "").then(None).otherwise(pl.col("flag_reasons"))
        .alias("flag_reasons")
    ).with_columns(pl.col("flag_reasons").is_not_null().alias("flagged"))


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
