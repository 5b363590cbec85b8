"""Fold models trained on a bounded, stratified sample; every row still scored out of fold.

Above ``label_issues.train_max_rows`` rows the text model (`models.out_of_fold`) would hold
memory that grows with the rows: the TF-IDF matrix of every row and each fold's training
slice of it, twice with the second pass. Instead:

* `stratified_sample` draws a seeded sample of at most that many rows, stratified by class
  and fold (each class keeps at least one row in every fold it has rows in, so every fold
  model learns every class the other folds have);
* the vocabulary (the hashed n-grams kept and their idf) is fitted on the sample's texts,
  and fold f's model on the sample's rows of the other folds; the second pass leaves out
  the sample's rows that ``leave_out`` flags on their first-pass (out-of-fold)
  probabilities (the flagging's thresholds estimated on the sample);
* every row is then scored ``chunk_rows`` at a time (`score_rows`): its text transformed
  once with the sample's vocabulary, its probabilities from the models of its own fold
  (`score_by_fold`), the two passes averaged; none of them trained on it: fold f's models
  trained on rows of the other folds only, and the rows outside the sample trained no
  model.

No matrix of every row is built: the per-row arrays are the labels, the folds and the
(n, k) float32 probabilities. The fold models and the vocabulary are the same kind as the
full fit's, so they are kept (`models.KeptModels`) and score a night's new rows the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import polars as pl
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from labelgate.errors import InputError
from labelgate.partition import Mapper, serial_map
from labelgate.progress import advance
from labelgate.stages.label_issues.arrays import BoolArray, FloatArray, IntArray
from labelgate.stages.label_issues.models import (
    FoldJob,
    FoldModel,
    KeptModels,
    OutOfFold,
    _run_folds,
    _text_inputs,
    auto_epochs,
    fold_model_probabilities,
    keep_every_class,
)
from labelgate.stages.label_issues.text_features import (
    TextVocabulary,
    joined_text,
    transform_text,
)

__all__ = ["TabularEncoder", "sampled_out_of_fold", "score_by_fold", "score_rows",
           "stratified_sample"]


def stratified_sample(y: IntArray, fold_of: IntArray, *, size: int, seed: int) -> IntArray:
    """At most ``size`` row numbers (ascending), drawn at random (seeded) within each class and
    fold: one row of every (class, fold) pair that has rows, the rest shared out in proportion
    to the pairs' rows (largest remainders).

    Parameters
    ----------
    y, fold_of : IntArray, shape (n,)
        Class codes and fold numbers.
    size : int
        The sample's bound; every row when n <= size.
    seed : int
        The draw's seed.

    Returns
    -------
    IntArray, shape (m,), m <= size
        Ascending row numbers.

    Raises
    ------
    InputError
        When ``size`` cannot hold one row of each (class, fold) pair.
    """
    n = len(y)
    if n <= size:
        return np.arange(n, dtype=np.int64)
    folds = int(fold_of.max()) + 1
    strata = y * folds + fold_of
    counts = np.bincount(strata)
    base = np.minimum(counts, 1)
    if int(base.sum()) > size:
        raise InputError(
            f"label_issues.train_max_rows: got {size:,}, expected at least {int(base.sum()):,} "
            "(one row of each class in each fold)"
        )
    rest = counts - base
    share = (size - base.sum()) * rest / rest.sum()
    extra = np.floor(share).astype(np.int64)
    short = int(size - base.sum() - extra.sum())
    if short > 0:
        extra[np.argsort(-(share - extra), kind="stable")[:short]] += 1
    quota = np.minimum(base + extra, counts)
    order = np.argsort(strata.astype(np.int32), kind="stable")  # rows grouped by stratum
    ends = np.cumsum(counts)
    rng = np.random.default_rng(seed)
    chosen = [rng.choice(order[ends[s] - counts[s]:ends[s]], int(quota[s]), replace=False)
              for s in np.flatnonzero(quota)]
    return np.sort(np.concatenate(chosen)).astype(np.int64)


@dataclass(frozen=True)
class TabularEncoder:
    """The feature columns appended to the text matrix, fitted on some rows and applied to
    any: numeric columns standardised with the fitted mean and standard deviation (nulls
    -> 0), string / categorical columns one-hot over the fitted values (a value the fit did
    not see: no column set). ``models._sparse_tabular`` does the same on one frame."""

    columns: tuple[str, ...]
    numeric: dict[str, tuple[float, float]]  # column -> (mean, std)
    categories: dict[str, pl.Series]  # column -> its fitted values, sorted

    @classmethod
    def fit(cls, features: pl.DataFrame, columns: Sequence[str]) -> TabularEncoder:
        numeric: dict[str, tuple[float, float]] = {}
        categories: dict[str, pl.Series] = {}
        for c in columns:
            s = features.get_column(c)
            if s.dtype.is_numeric() or s.dtype == pl.Boolean:
                v = s.cast(pl.Float64)
                numeric[c] = (cast(float, v.mean() or 0.0), cast(float, v.std() or 1.0))
            else:
                categories[c] = _category_values(s).unique().sort()
        return cls(tuple(columns), numeric, categories)

    def transform(self, features: pl.DataFrame) -> sp.csr_matrix:
        """(m, width) float64 CSR of ``features``' rows."""
        blocks: list[sp.csr_matrix] = []
        m = features.height
        for c in self.columns:
            s = features.get_column(c)
            if c in self.numeric:
                mean, std = self.numeric[c]
                col = ((s.cast(pl.Float64) - mean) / std).fill_null(0.0).fill_nan(0.0)
                blocks.append(sp.csr_matrix(col.to_numpy().reshape(-1, 1)))
                continue
            values = self.categories[c]
            codes = _category_values(s).replace_strict(
                values, pl.int_range(values.len(), eager=True), default=-1,
                return_dtype=pl.Int64).to_numpy()
            seen = np.flatnonzero(codes >= 0)
            blocks.append(sp.csr_matrix(
                (np.ones(len(seen), dtype=np.float64), (seen, codes[seen])),
                shape=(m, values.len()),
            ))
        return sp.hstack(blocks, format="csr")


def _category_values(s: pl.Series) -> pl.Series:
    return s.cast(pl.String).fill_null("\x00null")


def score_by_fold(
    models: Sequence[FoldModel],
    x: Any,
    fold_of: IntArray,
    *,
    n_classes: int,
    x_embed: npt.NDArray[np.float32] | None = None,
) -> FloatArray:
    """Each row's probabilities from the kept model of its fold (one pass's models).

    Parameters
    ----------
    models : sequence of FoldModel
        ``models[f]``: fold f's model.
    x : sparse matrix, shape (m, d)
        The rows in the fit's columns.
    fold_of : IntArray, shape (m,)
        The fold whose model scores each row (one that never trained on it).
    n_classes : int
        k.
    x_embed : ndarray of float32, shape (m, d_emb), optional
        Their sentence embeddings, when the models have an embedding part.

    Returns
    -------
    FloatArray, shape (m, k)
        float32; 0 for a class the row's fold model never saw.
    """
    out = np.zeros((len(fold_of), n_classes), dtype=np.float32)
    for f, model in enumerate(models):
        rows = np.flatnonzero(fold_of == f)
        if not len(rows):
            continue
        emb = x_embed[rows] if x_embed is not None else None
        out[np.ix_(rows, model.classes)] = fold_model_probabilities(model, x[rows], x_embed=emb)
    return out


@dataclass(frozen=True)
class _Scoring:
    """What turns a slice of the rows into the fold models' columns."""

    text_columns: Sequence[str]
    vocabulary: TextVocabulary
    tabular: TabularEncoder | None
    embeddings: npt.NDArray[np.float32] | None
    n_classes: int
    chunk_rows: int


def score_rows(features: pl.DataFrame, fold_of: IntArray,
               passes: Sequence[Sequence[FoldModel]], *, scoring: _Scoring,
               trained: tuple[IntArray, Any] | None = None) -> FloatArray:
    """Every row of ``features`` scored by its fold's model of each pass (the passes
    averaged), ``scoring.chunk_rows`` rows at a time, each chunk transformed once with the
    fitted vocabulary and encoder; reports the rows scored.

    ``trained`` = (``sample``, ``x``): the sample's rows (ascending) and the matrix the fit
    built of them, which holds the same rows as their transform would (same counts, columns
    and idf, the same operations per row); those rows are scored from it, not transformed
    again.

    Returns
    -------
    FloatArray, shape (n, k)
        float32.
    """
    n = features.height
    out = np.empty((n, scoring.n_classes), dtype=np.float32)
    # coefficients in Fortran order: ``x @ coef.T`` reads coef.T without copying it per call
    # (no copy where `sampled_out_of_fold` made them so: `_fortran_in_place`)
    passes = [[replace(m, coef=np.asfortranarray(m.coef)) for m in models] for models in passes]
    left = np.ones(n, dtype=bool)
    if trained is not None:
        sample, x_sample = trained
        out[sample] = _score_passes(passes, x_sample, fold_of[sample], scoring, sample)
        left[sample] = False
    for start in range(0, n, scoring.chunk_rows):
        stop = min(start + scoring.chunk_rows, n)
        rows = start + np.flatnonzero(left[start:stop])
        if len(rows):
            chunk = (features.slice(start, stop - start) if len(rows) == stop - start
                     else features[rows])
            x = transform_text(joined_text(chunk, scoring.text_columns), scoring.vocabulary)
            if scoring.tabular is not None:
                x = sp.hstack([x, scoring.tabular.transform(chunk)], format="csr")
            out[rows] = _score_passes(passes, x, fold_of[rows], scoring, rows)
        advance("rows scored", stop, n, unit="rows")
    return out


def _fortran_in_place(passes: Sequence[list[FoldModel]]) -> None:
    """Each model's coefficients in Fortran order (what `score_rows` multiplies by), model by
    model in place, so that each C-order original is freed as its copy is made: at 1 M rows
    x 15 classes a model's (15, d) float64 coefficients are ~48 MB, and copying every model
    of both passes before freeing any would hold them all twice."""
    for models in passes:
        for i, model in enumerate(models):
            models[i] = replace(model, coef=np.asfortranarray(model.coef))


def _score_passes(passes: Sequence[Sequence[FoldModel]], x: Any, fold_of: IntArray,
                  scoring: _Scoring, rows: IntArray) -> FloatArray:
    """Rows ``rows`` (their matrix ``x``, their folds) scored by each pass, the passes
    averaged as `models._passes` averages them."""
    emb = scoring.embeddings[rows] if scoring.embeddings is not None else None
    per_pass = [score_by_fold(models, x, fold_of, n_classes=scoring.n_classes, x_embed=emb)
                for models in passes]
    if len(per_pass) == 1:
        return per_pass[0]
    return np.asarray((per_pass[0] + per_pass[1]) / 2, dtype=np.float32)


def sampled_out_of_fold(
    features: pl.DataFrame,
    y: IntArray,
    fold_of: IntArray,
    *,
    text_columns: Sequence[str],
    feature_columns: Sequence[str],
    size: int,
    chunk_rows: int,
    seed: int,
    n_classes: int,
    alpha: float,
    epochs: int | None,
    n_jobs: int,
    mapper: Mapper,
    embeddings: npt.NDArray[np.float32] | None,
    char_ngrams: bool,
    leave_out: Callable[..., BoolArray] | None,
    keep_models: bool,
) -> OutOfFold:
    """`models.out_of_fold` for a text model trained on `stratified_sample` (``size`` rows).

    Parameters are `models.out_of_fold`'s (``y`` the class codes (n,), ``fold_of`` their
    folds (n,), ``epochs`` None: `models.auto_epochs` of the sample's rows and the classes), but
    ``leave_out`` is called as ``leave_out(first, rows=sample)``: the first pass's
    probabilities of the sample's rows (m, k) and their row numbers (m,) -> which of them the
    second pass leaves out (m,).

    Returns
    -------
    OutOfFold
        Every row's probabilities (n, k), float32 (the passes averaged), the sample's rows
        the second pass left out, the kept models (with ``keep_models``, no feature columns)
        and ``sample``.
    """
    if embeddings is not None and embeddings.shape[0] != features.height:
        raise InputError(f"label_issues: {embeddings.shape[0]} embedding rows for "
                         f"{features.height} feature rows")
    sample = stratified_sample(y, fold_of, size=size, seed=seed)
    sub = features.select(list(dict.fromkeys([*text_columns, *feature_columns])))[sample]
    x, params, vocabulary = _text_inputs(
        sub, text_columns, (), seed=seed, alpha=alpha, char_ngrams=char_ngrams,
        embeddings=embeddings[sample] if embeddings is not None else None,
        epochs=epochs if epochs is not None else auto_epochs(len(sample), n_classes),
        n_jobs=n_jobs,
        part_jobs=n_jobs if mapper is serial_map else 1,
    )
    tabular = TabularEncoder.fit(sub, feature_columns) if feature_columns else None
    if tabular is not None:
        x = sp.hstack([x, tabular.transform(sub)], format="csr")
    del sub
    y_s, folds_s = y[sample], fold_of[sample]
    jobs = [FoldJob(f, x, y_s, folds_s, "linear", {**params, "keep_model": True})
            for f in range(int(fold_of.max()) + 1)]
    scoring = _Scoring(text_columns, vocabulary, tabular, embeddings, n_classes, chunk_rows)
    shape = (len(sample), n_classes)
    with threadpool_limits(limits=1, user_api="blas"):
        first, models = _run_folds(jobs, mapper=mapper, shape=shape, exclude=None)
        passes, left_out = [models], 0
        if leave_out is not None:
            # the first pass's flags among the sample's rows, from their out-of-fold
            # probabilities: the rows the second pass's models do not train on
            drop = keep_every_class(y_s, folds_s,
                                    np.asarray(leave_out(first, rows=sample), dtype=bool))
            if drop.any():
                passes.append(_run_folds(jobs, mapper=mapper, shape=shape, exclude=drop)[1])
                left_out = int(drop.sum())
        del first, jobs, models
        _fortran_in_place(passes)
        probs = score_rows(features, fold_of, passes, scoring=scoring, trained=(sample, x))
    kept = (KeptModels(vocabulary, passes, n_classes, average=True)
            if keep_models and not feature_columns else None)
    return OutOfFold(probs, left_out, kept, sample)
