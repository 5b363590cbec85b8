"""The report's item and category tables: per-item consensus, per class, pair confusion.

``_consensus`` runs majority vote and Dawid-Skene (``labelgate.stages.agreement.consensus``)
and builds the per-item consensus table and the comparison of the methods;
``_per_class_table`` and ``_confusion_table`` describe the categories.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from labelgate.errors import InputError
from labelgate.stages.agreement.annotations import EncodedAnnotations, IntArray
from labelgate.stages.agreement.annotators import _GoldScores
from labelgate.stages.agreement.coefficients import pair_confusion, specific_agreement
from labelgate.stages.agreement.consensus import (
    DawidSkene,
    MajorityVote,
    compare_consensus,
    dawid_skene,
    majority_vote,
)


def _labels(categories: pl.Series, codes: IntArray, name: str) -> pl.Series:
    return categories.gather(codes).alias(name)


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
