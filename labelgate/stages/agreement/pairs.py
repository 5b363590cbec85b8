"""Cohen's kappa per annotator pair (sklearn, over the items each pair shares) and its
summary: mean kappa, pairs scored and pairs sharing too few items."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from labelgate.stages.agreement.annotations import EncodedAnnotations
from labelgate.stages.agreement.coefficients import NAN, KappaWeights


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
    from sklearn.metrics import cohen_kappa_score  # here: scikit-learn takes a second to import

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


@dataclass(frozen=True)
class _PairScores:
    """Cohen's kappa per annotator pair and its summary."""

    table: pl.DataFrame  # annotator_a, annotator_b, n_shared, percent_agreement, cohen_kappa
    mean_kappa: float
    n_scored: int
    n_skipped: int


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
