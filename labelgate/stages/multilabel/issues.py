"""Probable tag errors: out-of-fold one-vs-rest probabilities and cleanlab's multi-label
issue finding.

Each fold's model is a TF-IDF of word 1-2-grams (fitted on the fold's training rows) and one
logistic regression per tag; a row is scored only by the fold model that did not train on
it. The folds come from iterative stratification, so each fold sees every tag.
`cleanlab.multilabel_classification.filter.find_label_issues` flags rows, and
``rank.get_label_quality_scores`` scores them. For a flagged row, the tags it probably
lacks are those the model gives at least 0.5 that it does not have; the tags it was
probably given wrongly are those it has that the model gives under 0.5.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from labelgate.stages.multilabel.stratify import iterative_stratification

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class MultilabelIssues:
    """``table``: one row per input row: row (position), is_label_issue, label_quality,
    likely_missing and likely_added (``List(String)``, sorted by how sure the model is);
    ``per_tag``: tag, rows (rows with it), missing, added (among flagged rows),
    issue_rate ((missing + added) / rows with the tag, null without rows), modelled."""

    table: pl.DataFrame
    per_tag: pl.DataFrame
    pred_probs: FloatArray


def fold_of(y: npt.NDArray[Any], *, folds: int, seed: int) -> npt.NDArray[np.int64]:
    """Fold index (n,) of each row of the tag matrix ``y`` (n, k), stratified over tags."""
    n = y.shape[0]
    return iterative_stratification(y, np.ones(n), [1.0 / folds] * folds, seed=seed)


def out_of_fold_probabilities(
    texts: Sequence[str], y: npt.NDArray[Any], *, folds: int = 5, seed: int = 13,
    min_tag_rows: int = 5,
) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
    """Out-of-fold P(tag) (n, k) for every row and tag, and which tags were modelled (k,).

    A tag with fewer than ``min_tag_rows`` rows with it (or without it) in a fold's training
    rows gets its training share as the probability in that fold.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    y = np.asarray(y, dtype=np.int8)
    n, k = y.shape
    probs = np.zeros((n, k), dtype=np.float64)
    modelled = np.zeros(k, dtype=bool)
    fold = fold_of(y, folds=folds, seed=seed)
    docs = np.asarray(list(texts), dtype=object)
    for f in range(folds):
        test = fold == f
        train = ~test
        if not test.any():
            continue
        vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True,
                              max_features=200_000)
        try:
            x_train = vec.fit_transform(docs[train])
        except ValueError:  # no term in two documents: no text model
            x_train = None
        x_test = vec.transform(docs[test]) if x_train is not None else None
        for j in range(k):
            yj = y[train, j]
            pos = int(yj.sum())
            if x_train is None or min(pos, len(yj) - pos) < min_tag_rows:
                probs[test, j] = pos / max(len(yj), 1)
                continue
            model = LogisticRegression(max_iter=1000)
            model.fit(x_train, yj)
            probs[test, j] = model.predict_proba(x_test)[:, 1]
            modelled[j] = True
    return probs, modelled


def find_tag_issues(
    y: npt.NDArray[Any], pred_probs: FloatArray, *, tags: Sequence[str],
    modelled: npt.NDArray[np.bool_] | None = None,
) -> MultilabelIssues:
    """cleanlab's multi-label issues over the tag matrix ``y`` (n, k) and ``pred_probs``
    (n, k); ``tags`` names the k columns."""
    from cleanlab.multilabel_classification import filter as ml_filter
    from cleanlab.multilabel_classification import rank as ml_rank

    y = np.asarray(y, dtype=np.int8)
    n, k = y.shape
    labels = [list(np.flatnonzero(row)) for row in y]
    flagged = np.zeros(n, dtype=bool)
    quality = np.ones(n, dtype=np.float64)
    if n and k >= 2:
        # n_jobs=1: cleanlab forks a process pool otherwise, which deadlocks in a threaded
        # process (a Prefect task run)
        flagged = np.asarray(ml_filter.find_label_issues(labels=labels, pred_probs=pred_probs,
                                                         n_jobs=1),
                             dtype=bool)
        quality = np.asarray(ml_rank.get_label_quality_scores(labels, pred_probs))
    suggested = pred_probs >= 0.5
    missing_m = flagged[:, None] & suggested & (y == 0)
    added_m = flagged[:, None] & ~suggested & (y == 1)
    names = np.asarray(list(tags), dtype=object)

    def listed(mask: npt.NDArray[np.bool_], sure: FloatArray) -> list[list[str]]:
        out = []
        for i in range(n):
            cols = np.flatnonzero(mask[i])
            out.append([str(t) for t in names[cols[np.argsort(-sure[i, cols],
                                                               kind="stable")]]])
        return out

    table = pl.DataFrame({
        "row": np.arange(n, dtype=np.int64), "is_label_issue": flagged,
        "label_quality": quality,
        "likely_missing": pl.Series(listed(missing_m, pred_probs), dtype=pl.List(pl.String)),
        "likely_added": pl.Series(listed(added_m, 1.0 - pred_probs), dtype=pl.List(pl.String)),
    })
    rows = y.sum(axis=0)
    errors = missing_m.sum(axis=0) + added_m.sum(axis=0)
    per_tag = pl.DataFrame({
        "tag": list(tags), "rows": rows.astype(np.int64),
        "missing": missing_m.sum(axis=0).astype(np.int64),
        "added": added_m.sum(axis=0).astype(np.int64),
        "issue_rate": [float(e / r) if r else None for e, r in zip(errors, rows, strict=True)],
        "modelled": (np.ones(k, dtype=bool) if modelled is None else modelled),
    })
    return MultilabelIssues(table, per_tag, pred_probs)
