"""Probable errors in an interval label dimension: cleanlab's regression
`CleanLearning.find_label_issues` over a TF-IDF + ridge regression of the text.

cleanlab predicts every value out of fold (`KFold`, seeded), searches the share of rows to
leave out of training (the rows with the largest residuals), predicts again without them,
and scores each row by its residual scaled by the estimated uncertainty (bootstrapped
model variance plus the spread of the residuals): ``label_quality`` in 0..1, low =
suspicious; the lowest ``k`` share of rows are flagged, ``k`` the share whose removal
fitted best (0: nothing flagged). A row's value never trains the model that predicts it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import polars as pl

RIDGE_ALPHA = 1.0


def interval_issues(texts: Sequence[str], values: npt.NDArray[np.float64], *, folds: int,
                    seed: int) -> pl.DataFrame:
    """Score each row's interval value against its text.

    Parameters
    ----------
    texts : n strings
        What the value is about (columns.text joined).
    values : shape (n,)
        The given values (no NaN).
    folds, seed
        Folds of cleanlab's cross-validation; its seed (cleanlab seeds numpy's global
        generator with it, so the run is repeatable).

    Returns
    -------
    pl.DataFrame, n rows in input order
        ``given`` and ``predicted`` (float), ``label_quality`` (0..1), ``is_label_issue``.
    """
    from cleanlab.regression.learn import CleanLearning
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline

    model = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True),
        Ridge(alpha=RIDGE_ALPHA))
    cleaner = CleanLearning(model, cv_n_folds=folds, seed=seed)
    found = cleaner.find_label_issues(np.asarray(list(texts), dtype=object),
                                      np.asarray(values, dtype=np.float64))
    return pl.DataFrame({
        "given": np.asarray(values, dtype=np.float64),
        "predicted": found["predicted_label"].to_numpy(dtype=np.float64),
        "label_quality": found["label_quality"].to_numpy(dtype=np.float64),
        "is_label_issue": found["is_label_issue"].to_numpy(dtype=bool),
    })
