"""Per-annotator quality: gold scores, leave-one-out consensus agreement, flags.

``_gold_scores`` checks the gold labels and scores each annotator on them;
``_annotator_table`` gives one row per annotator (labels, consensus agreement, gold and
Dawid-Skene accuracy, mean Cohen's kappa); ``_flag_annotators`` adds the flags.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from labelgate.errors import InputError
from labelgate.stages.agreement.annotations import (
    EncodedAnnotations,
    FloatArray,
    IntArray,
    encode_labels,
)
from labelgate.stages.agreement.consensus import DawidSkene


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
class _GoldScores:
    """Gold labels per item and each annotator's score on them."""

    item_codes: IntArray  # (n_items,): gold category code, -1 without gold
    n_gold: IntArray  # (n_annotators,): labels given on gold items
    n_correct: FloatArray  # (n_annotators,): of those, labels equal to gold
    accuracy: FloatArray  # (n_annotators,): n_correct / n_gold, NaN under min_gold_items


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
