"""Out-of-fold predicted probabilities for label-issue detection.

Confident learning (cleanlab) is only as good as the predicted probabilities it is given, and
those must be *out of fold*: the model that scores a row never trained on that row, or it has
memorised the (possibly wrong) label and the error becomes invisible.

Models:

* text columns: word 1-2 grams (tokenised, hashed and counted in polars) plus, up to
  ``char_ngram_max_rows`` rows, ``char_wb`` 2-5 grams (sklearn HashingVectorizer, several
  times the cost of word n-grams); n-grams seen in fewer than 2 rows dropped; sublinear
  TF-IDF; logistic regression trained by SGD (log loss, alpha 5e-5, stronger regularisation
  than sklearn's LogisticRegression default, for noisy labels; 10 epochs up to 100k rows,
  fewer above; SGD is linear time). The text matrix uses no labels, so it is built once for
  all folds; only the classifier is fitted per fold.
* numeric / categorical feature columns only: ``HistGradientBoostingClassifier`` with native
  categorical support; up to ``tabular_ensemble_max_rows`` rows instead the average of
  ``ExtraTreesClassifier`` (200 trees) and ``LogisticRegression``, both on the standardised /
  one-hot features (boosting is over-confident on small tables; extra trees grow with the
  rows, hence the limit).
* text plus feature columns: the features are standardised (numeric) or one-hot encoded
  (categorical) and appended to the sparse text matrix for the linear model.
* text with sentence embeddings (``embeddings``, `labelgate.stages.label_issues.embeddings`): a
multinomial
  ``LogisticRegression`` (C=1) on the unit-length embeddings is fitted in each fold beside
  the n-gram model and the two probabilities are averaged.

A second pass (``leave_out``; `labelgate.stages.label_issues.detect.find_label_issues`
``passes=2``, the
default) fits every fold again without the rows the first pass flagged and scores every
row again, out of fold as before: the second pass's probabilities for a feature-columns
model, the two passes averaged for a text model.

Folds are stratified (``StratifiedKFold`` with ``shuffle=True`` and the given seed), so the
same inputs and seed give the same probabilities.

A text model on more than ``train_max_rows`` rows fits its vocabulary and fold models on a
stratified sample of that many rows and scores every row out of fold in chunks
(`labelgate.stages.label_issues.sampled`), so its memory does not grow with the rows.

Why these models and settings (strict F1 with planted flips, timings, the variants that did
not help) is in ``docs/benchmarks/label-issues.md``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from labelgate.errors import InputError
from labelgate.partition import Mapper, serial_map
from labelgate.stages.label_issues.arrays import BoolArray, FloatArray, IntArray
from labelgate.stages.label_issues.linear import ovr_probabilities
from labelgate.stages.label_issues.text_features import (
    TextVocabulary,
    fit_text_matrix,
    joined_text,
    select_columns,
    text_matrix,
    transform_text,
    word_ngram_counts,
)

__all__ = [
    "CHAR_NGRAM_MAX_ROWS",
    "SCORE_CHUNK_ROWS",
    "TABULAR_ENSEMBLE_MAX_ROWS",
    "FoldJob",
    "FoldModel",
    "FoldResult",
    "KeptModels",
    "OutOfFold",
    "TextVocabulary",
    "assign_folds",
    "auto_epochs",
    "fit_fold",
    "fit_text_matrix",
    "fold_model_probabilities",
    "joined_text",
    "keep_every_class",
    "out_of_fold",
    "out_of_fold_probabilities",
    "select_columns",
    "text_matrix",
    "transform_text",
    "word_ngram_counts",
]




def assign_folds(labels: npt.ArrayLike, *, folds: int = 5, seed: int = 13) -> IntArray:
    """Stratified fold number (0..folds-1) of every row; the row is scored by the model of its fold.

    A class with fewer rows than ``folds`` still gets folds (sklearn warns and spreads it).
    """
    y = np.asarray(labels)
    n = len(y)
    if folds < 2:
        raise InputError(f"label_issues.folds: got {folds}, expected an integer >= 2")
    if n < folds:
        raise InputError(f"label_issues: {n} rows cannot be split into {folds} folds")
    from sklearn.model_selection import StratifiedKFold  # here: a night never imports sklearn

    out = np.empty(n, dtype=np.int64)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        # "The least populated class in y has only 1 members": fine, we still score every row.
        warnings.simplefilter("ignore", UserWarning)
        try:
            for k, (_, test) in enumerate(splitter.split(np.zeros(n), y)):
                out[test] = k
        except ValueError as err:
            raise InputError(f"label_issues.folds: cannot make {folds} folds: {err}") from err
    return out


def _tabular_frame(features: pl.DataFrame, feature_columns: Sequence[str]) -> pl.DataFrame:
    """Numeric columns as float, string/categorical/bool columns as integer codes (nulls kept)."""
    exprs: list[pl.Expr] = []
    for c in feature_columns:
        dtype = features.schema[c]
        if dtype.is_numeric() or dtype == pl.Boolean:
            exprs.append(pl.col(c).cast(pl.Float64))
        elif dtype in (pl.String, pl.Categorical) or isinstance(dtype, pl.Enum):
            exprs.append(pl.col(c).cast(pl.String).rank("dense").cast(pl.Float64) - 1.0)
        else:
            raise InputError(
                f"label_issues.feature_columns: column '{c}' has dtype {dtype}, "
                "expected a numeric, boolean, string or categorical column"
            )
    return features.select(exprs)


def _categorical_mask(features: pl.DataFrame, feature_columns: Sequence[str]) -> list[bool]:
    # HistGradientBoosting handles at most 255 categories natively; more -> ordinal codes
    return [
        not (features.schema[c].is_numeric() or features.schema[c] == pl.Boolean)
        and features.get_column(c).n_unique() <= 250
        for c in feature_columns
    ]


def _sparse_tabular(features: pl.DataFrame, feature_columns: Sequence[str]) -> sp.csr_matrix:
    """Standardised numeric columns (nulls -> 0 = mean) and one-hot categorical columns."""
    blocks: list[sp.csr_matrix] = []
    for c in feature_columns:
        s = features.get_column(c)
        if s.dtype.is_numeric() or s.dtype == pl.Boolean:
            v = s.cast(pl.Float64)
            std = v.std() or 1.0
            mean = v.mean() or 0.0
            col = ((v - mean) / std).fill_null(0.0).fill_nan(0.0).to_numpy()
            blocks.append(sp.csr_matrix(col.reshape(-1, 1)))
        else:
            codes = s.cast(pl.String).fill_null("\x00null").rank("dense").cast(pl.Int64) - 1
            idx = codes.to_numpy()
            m = sp.csr_matrix(
                (np.ones(len(idx), dtype=np.float64), (np.arange(len(idx)), idx)),
                shape=(len(idx), int(idx.max()) + 1 if len(idx) else 0),
            )
            blocks.append(m)
    return sp.hstack(blocks, format="csr")


def _linear_model(*, seed: int, alpha: float, epochs: int, n_jobs: int) -> Any:
    from sklearn.linear_model import SGDClassifier

    return SGDClassifier(
        loss="log_loss", alpha=alpha, max_iter=epochs, tol=None, random_state=seed,
        n_jobs=n_jobs,
    )


CHAR_NGRAM_MAX_ROWS = 50_000  # char n-grams up to this many rows (they cost more than word ones)
TABULAR_ENSEMBLE_MAX_ROWS = 10_000  # extra trees + logistic regression up to here, then boosting
SCORE_CHUNK_ROWS = 100_000  # rows transformed and scored at a time above train_max_rows


@dataclass(frozen=True)
class FoldJob:
    """One fold's part: train on the rows of the other folds, score the rows of ``fold``.

    ``x`` is the whole feature matrix (the same object for every fold when run here;
    pickled once per part when the parts go to other processes)."""

    fold: int
    x: Any  # scipy CSR (text) or a dense float array (tabular)
    y: IntArray
    fold_of: IntArray
    model: str  # "linear" (SGD logistic regression) or "hgb" (HistGradientBoosting)
    params: dict[str, Any]


@dataclass(frozen=True)
class FoldModel:
    """A fitted fold's linear model(s), kept to score rows it never saw: the SGD model's
    ``coef`` (c, d) and ``intercept`` (c,) over the class codes ``classes`` (c = 1 for two
    classes, as sklearn stores them), and the sentence-embedding model's (c, d_emb) when
    there was one."""

    classes: IntArray
    coef: npt.NDArray[np.float64]
    intercept: npt.NDArray[np.float64]
    embed_coef: npt.NDArray[np.float64] | None = None
    embed_intercept: npt.NDArray[np.float64] | None = None


@dataclass(frozen=True)
class FoldResult:
    rows: IntArray  # the fold's row numbers
    classes: IntArray  # the class codes the model saw (columns of `probabilities`)
    probabilities: npt.NDArray[np.float64]
    model: FoldModel | None = None  # with params["keep_model"] (linear models only)


def fit_fold(job: FoldJob) -> FoldResult:
    """Fit the fold's model on the other folds and predict its own rows (a pure part).
    Training rows in ``params["exclude"]`` are left out, unless that leaves fewer than two
    classes (`keep_every_class` keeps a class from vanishing in the first place)."""
    from sklearn.linear_model import LogisticRegression  # the trees only for tables

    p = job.params
    te = np.flatnonzero(job.fold_of == job.fold)
    train = job.fold_of != job.fold
    exclude = p.get("exclude")
    if exclude is not None:
        kept = train & ~exclude
        # a pass that leaves one class (or none) to learn from keeps every training row
        if len(np.unique(job.y[kept])) >= 2:
            train = kept
    tr = np.flatnonzero(train)
    model: Any
    x_lin = p.get("x_linear")
    if job.model == "hgb" and x_lin is not None:
        # small tables: two differently biased models on the standardised / one-hot features,
        # averaged (same y[tr]: same classes)
        from sklearn.ensemble import ExtraTreesClassifier

        members = [
            ExtraTreesClassifier(n_estimators=200, random_state=p["seed"], n_jobs=1),
            LogisticRegression(max_iter=1000),
        ]
        for member in members:
            member.fit(x_lin[tr], job.y[tr])
        classes = np.asarray(members[0].classes_, dtype=np.int64)
        probs = sum(m.predict_proba(x_lin[te]) for m in members) / len(members)
        return FoldResult(te, classes, np.asarray(probs, dtype=np.float64))
    if job.model == "hgb":
        from sklearn.ensemble import HistGradientBoostingClassifier

        cat = p["categorical"]
        model = HistGradientBoostingClassifier(
            categorical_features=cat if cat.any() else None,
            random_state=p["seed"], early_stopping=False, max_iter=100, learning_rate=0.1,
        )
    else:
        model = _linear_model(seed=p["seed"], alpha=p["alpha"], epochs=p["epochs"],
                              n_jobs=p["n_jobs"])
    model.fit(job.x[tr], job.y[tr])
    classes = np.asarray(model.classes_, dtype=np.int64)
    probs = model.predict_proba(job.x[te])
    x_emb = p.get("x_embed")
    emb_model = None
    if job.model == "linear" and x_emb is not None:
        # sentence embeddings: a second, differently biased view of the text, averaged
        emb_model = LogisticRegression(C=1.0, max_iter=2000)
        emb_model.fit(x_emb[tr], job.y[tr])
        probs = (probs + emb_model.predict_proba(x_emb[te])) / 2
    kept = None
    if p.get("keep_model") and job.model == "linear":
        kept = FoldModel(classes, model.coef_, model.intercept_,
                         emb_model.coef_ if emb_model is not None else None,
                         emb_model.intercept_ if emb_model is not None else None)
    return FoldResult(te, classes, probs, kept)


def fold_model_probabilities(
    model: FoldModel, x: Any, *, x_embed: npt.NDArray[np.float32] | None = None
) -> npt.NDArray[np.float64]:
    """What a kept fold model gives rows it never saw, as `fit_fold` scores its fold:
    ``x`` (m, d) the rows' matrix in the fit's columns, ``x_embed`` (m, d_emb) their
    sentence embeddings when the model had them; (m, c) probabilities over
    ``model.classes``. The SGD model's are `ovr_probabilities` (sklearn's, without
    importing it: a night of the text model needs no sklearn); the embedding model is
    rebuilt from its kept coefficients."""
    probs = ovr_probabilities(x, model.coef, model.intercept)
    if model.embed_coef is not None and model.embed_intercept is not None:
        if x_embed is None:
            raise InputError("label_issues: the kept model needs sentence embeddings")
        from sklearn.linear_model import LogisticRegression

        emb = LogisticRegression(C=1.0)
        _set_linear(emb, model.classes, model.embed_coef, model.embed_intercept)
        probs = (probs + emb.predict_proba(x_embed)) / 2
    return probs


def _set_linear(model: Any, classes: IntArray, coef: npt.NDArray[np.float64],
                intercept: npt.NDArray[np.float64]) -> None:
    """Give an unfitted sklearn linear classifier fitted coefficients."""
    model.classes_ = np.asarray(classes)
    model.coef_ = np.asarray(coef, dtype=np.float64)
    model.intercept_ = np.asarray(intercept, dtype=np.float64)
    model.n_features_in_ = model.coef_.shape[1]


def keep_every_class(y: IntArray, fold_of: IntArray, drop: BoolArray) -> BoolArray:
    """``drop`` minus every row of a class that it would remove from some fold's training
    rows entirely (that fold's model would never see the class and would score its rows 0
    for it, flagging them all). Such a class keeps all its rows in the second pass."""
    folds = int(fold_of.max()) + 1 if len(fold_of) else 0
    k = int(y.max()) + 1 if len(y) else 0
    total = np.bincount(y * folds + fold_of, minlength=k * folds).reshape(k, folds)
    dropped = np.bincount(y[drop] * folds + fold_of[drop], minlength=k * folds).reshape(
        k, folds
    )
    train_total = total.sum(axis=1, keepdims=True) - total
    train_dropped = dropped.sum(axis=1, keepdims=True) - dropped
    wiped = ((train_total > 0) & (train_dropped == train_total)).any(axis=1)
    return np.asarray(drop & ~wiped[y], dtype=bool)


@dataclass(frozen=True)
class KeptModels:
    """Everything needed to score new rows as the fitted folds would: the text vocabulary,
    the fold models of each pass (``passes[p][f]``: pass p's model of fold f), the number of
    classes (k) and whether the passes' probabilities are averaged (text models) or the last
    pass's taken."""

    vocabulary: TextVocabulary
    passes: list[list[FoldModel]]
    n_classes: int
    average: bool
    flagging: dict[str, Any] | None = None  # the run's cut-offs (`cutoffs.flagging_state`)


@dataclass(frozen=True)
class OutOfFold:
    probabilities: FloatArray  # rows x classes, float32
    left_out: int  # rows the second pass's models did not train on (0: one pass ran)
    kept: KeptModels | None = None  # with keep_models=True (text models only)
    sample: IntArray | None = None  # the rows the models trained on (None: every row)


def auto_epochs(n_rows: int, n_classes: int = 2) -> int:
    """SGD passes: 10 up to 100k rows, then a constant budget of ~1M example updates per fold
    (200k rows: 5, 1M rows: 1) and binary model, halved (at least 1) above 6 classes
    (one-vs-rest fits one binary model per class)."""
    if n_rows <= 100_000:
        return 10
    epochs = max(1, round(1_000_000 / n_rows))
    return max(1, epochs // 2) if n_classes > 6 else epochs


def out_of_fold_probabilities(
    features: pl.DataFrame, labels: npt.ArrayLike, **kwargs: Any
) -> FloatArray:
    """`out_of_fold`'s probabilities (same arguments)."""
    return out_of_fold(features, labels, **kwargs).probabilities


def out_of_fold(
    features: pl.DataFrame,
    labels: npt.ArrayLike,
    *,
    text_columns: Sequence[str],
    feature_columns: Sequence[str] = (),
    folds: int = 5,
    seed: int = 13,
    n_classes: int | None = None,
    char_ngrams: bool | None = None,
    char_ngram_max_rows: int = CHAR_NGRAM_MAX_ROWS,
    tabular_ensemble_max_rows: int = TABULAR_ENSEMBLE_MAX_ROWS,
    alpha: float = 5e-5,
    epochs: int | None = None,
    n_jobs: int = 2,
    mapper: Mapper = serial_map,
    embeddings: npt.NDArray[np.float32] | None = None,
    leave_out: Callable[..., BoolArray] | None = None,
    keep_models: bool = False,
    train_max_rows: int | None = None,
    score_chunk_rows: int = SCORE_CHUNK_ROWS,
) -> OutOfFold:
    """Predicted class probabilities where row i is scored only by a model of the other folds.

    Parameters
    ----------
    features : pl.DataFrame, n rows
        The model inputs: ``text_columns`` and/or ``feature_columns``.
    labels : array-like of int, shape (n,)
        Class codes 0..k-1 aligned with ``features``; ``n_classes`` is k (default: max + 1).
    folds, seed, alpha, epochs, n_jobs
        Stratified folds (`assign_folds`); the SGD model's regularisation, passes (default
        `auto_epochs`) and threads.
    char_ngrams, char_ngram_max_rows, tabular_ensemble_max_rows
        ``char_ngrams=None``: char n-grams up to ``char_ngram_max_rows`` rows. Feature columns
        only: extra trees + logistic regression up to ``tabular_ensemble_max_rows`` rows.
    mapper : Mapper
        Runs the folds (one `fit_fold` part each; `labelgate.partition`).
    embeddings : ndarray of float32, shape (n, d), optional
        Sentence embeddings: a logistic regression on them joins each fold of a text model.
    leave_out : callable, optional
        Asks for a second pass (`_passes`): first-pass probabilities (n, k) -> rows (n,) the
        second pass's models do not train on. Every row is scored again, out of fold. Above
        ``train_max_rows`` it is called as ``leave_out(first, rows=sample)`` on the sample's
        rows (`flags._Flagger.leave_out`).
    keep_models : bool
        Keep the text model's vocabulary and fold models (`KeptModels`) to score new rows
        later (`score_with_kept`); the feature-columns models are not kept.
    train_max_rows, score_chunk_rows : int
        A text model on more than ``train_max_rows`` rows (None: no limit) fits its
        vocabulary and fold models on a stratified sample of that many rows and scores every
        row, out of fold, ``score_chunk_rows`` at a time (`labelgate.stages.label_issues.
        sampled`); at or below it, every row trains. Feature columns alone: no limit.

    Returns
    -------
    OutOfFold
        float32 probabilities (n, k) (a text model's two passes averaged, else the last
        pass's), the number of rows the second pass left out (0: one pass), the kept
        models and the sample the models trained on (None: every row).
    """
    y = np.asarray(labels, dtype=np.int64)
    n = features.height
    _check_model_inputs(features, y, text_columns=text_columns, feature_columns=feature_columns)
    k = int(n_classes) if n_classes is not None else int(y.max()) + 1
    fold_of = assign_folds(y, folds=folds, seed=seed)
    chars = char_ngrams if char_ngrams is not None else n <= char_ngram_max_rows
    if text_columns and train_max_rows is not None and n > train_max_rows:
        from labelgate.stages.label_issues.sampled import sampled_out_of_fold

        return sampled_out_of_fold(
            features, y, fold_of, text_columns=text_columns, feature_columns=feature_columns,
            size=train_max_rows, chunk_rows=score_chunk_rows, seed=seed, n_classes=k,
            alpha=alpha, epochs=epochs, n_jobs=n_jobs, mapper=mapper, embeddings=embeddings,
            char_ngrams=chars, leave_out=leave_out, keep_models=keep_models,
        )
    vocabulary = None
    if not text_columns:
        model = "hgb"
        x, params = _tabular_inputs(features, feature_columns, seed=seed,
                                    ensemble=n <= tabular_ensemble_max_rows)
    else:
        model = "linear"
        x, params, vocabulary = _text_inputs(
            features, text_columns, feature_columns, seed=seed, alpha=alpha,
            embeddings=embeddings, char_ngrams=chars, n_jobs=n_jobs,
            epochs=epochs if epochs is not None else auto_epochs(n, k),
            part_jobs=n_jobs if mapper is serial_map else 1,
        )
    keep = keep_models and vocabulary is not None and not feature_columns
    if keep:
        params["keep_model"] = True
    jobs = [FoldJob(f, x, y, fold_of, model, params) for f in range(folds)]
    fitted, models = _passes(jobs, y, fold_of, n_classes=k, mapper=mapper,
                             leave_out=leave_out, average=bool(text_columns))
    if not keep or vocabulary is None:
        return fitted
    kept = KeptModels(vocabulary, models, k, average=True)
    return replace(fitted, kept=kept)


def _check_model_inputs(
    features: pl.DataFrame,
    y: IntArray,
    *,
    text_columns: Sequence[str],
    feature_columns: Sequence[str],
) -> None:
    """Raise InputError unless there is one label per row and the model columns exist.

    Parameters
    ----------
    features : pl.DataFrame, n rows
        The model inputs.
    y : IntArray, shape (n,)
        Class codes.
    text_columns, feature_columns : sequence of str
        The model's columns; at least one, all in ``features``.
    """
    n = features.height
    if len(y) != n:
        raise InputError(f"label_issues: {len(y)} labels for {n} feature rows")
    if not text_columns and not feature_columns:
        raise InputError("label_issues: no text_columns and no feature_columns to learn from")
    missing = [c for c in [*text_columns, *feature_columns] if c not in features.columns]
    if missing:
        raise InputError(
            f"label_issues: column(s) {missing} not in the data; "
            f"available: {features.columns}"
        )


def _tabular_inputs(
    features: pl.DataFrame, feature_columns: Sequence[str], *, seed: int, ensemble: bool
) -> tuple[npt.NDArray[np.float64], dict[str, Any]]:
    """The matrix and the `FoldJob` params of the "hgb" model (feature columns only).

    Parameters
    ----------
    features : pl.DataFrame, n rows
        Holds ``feature_columns``: numeric, boolean, string or categorical columns (m of them).
    seed : int
        The models' seed.
    ensemble : bool
        Fit extra trees + logistic regression on the standardised / one-hot features
        (``params["x_linear"]``) instead of boosting.

    Returns
    -------
    x : ndarray of float64, shape (n, m)
        Numeric values and categorical codes (`_tabular_frame`).
    params : dict
        ``categorical`` (which of the m columns are), ``seed`` and, for the ensemble,
        ``x_linear`` (sparse, n rows).
    """
    x_tab = _tabular_frame(features, feature_columns).to_numpy()
    cat = np.asarray(_categorical_mask(features, feature_columns))
    params: dict[str, Any] = {"categorical": cat, "seed": seed}
    if ensemble:
        params["x_linear"] = _sparse_tabular(features, feature_columns)
    return x_tab, params


def _text_inputs(
    features: pl.DataFrame,
    text_columns: Sequence[str],
    feature_columns: Sequence[str],
    *,
    seed: int,
    alpha: float,
    embeddings: npt.NDArray[np.float32] | None,
    char_ngrams: bool,
    epochs: int,
    n_jobs: int,
    part_jobs: int,
) -> tuple[sp.csr_matrix, dict[str, Any], TextVocabulary]:
    """The matrix and the `FoldJob` params of the "linear" model (text, plus any features).

    Parameters
    ----------
    features : pl.DataFrame, n rows
        Holds the text (`joined_text` of ``text_columns``) and the ``feature_columns``
        appended to its matrix.
    seed, alpha, epochs
        The seed (hashing and SGD), the SGD model's regularisation and passes.
    embeddings : ndarray of float32, shape (n, d), optional
        Sentence embeddings for a second model per fold.
    char_ngrams : bool
        Whether the text matrix has char n-grams.
    n_jobs, part_jobs : int
        Threads for the text matrix and for each part's model: parts that run side by side
        on other workers get one thread each (no oversubscription, no thread pools nested in
        the workers' own); in process the folds use ``n_jobs``.

    Returns
    -------
    x : scipy.sparse.csr_matrix, n rows
        TF-IDF n-grams (`text_matrix`), then the encoded feature columns.
    params : dict
        ``seed``, ``alpha``, ``epochs``, ``n_jobs`` (= ``part_jobs``) and, with embeddings,
        ``x_embed``.
    vocabulary : TextVocabulary
        The text columns' fit (`fit_text_matrix`).
    """
    n = features.height
    x_all, vocabulary = fit_text_matrix(
        joined_text(features, text_columns), char_ngrams=char_ngrams, n_jobs=n_jobs, seed=seed
    )
    if feature_columns:
        x_all = sp.hstack([x_all, _sparse_tabular(features, feature_columns)], format="csr")
    params: dict[str, Any] = {"seed": seed, "alpha": alpha, "epochs": epochs, "n_jobs": part_jobs}
    if embeddings is not None:
        if embeddings.shape[0] != n:
            raise InputError(
                f"label_issues: {embeddings.shape[0]} embedding rows for {n} feature rows"
            )
        params["x_embed"] = embeddings
    return x_all, params, vocabulary


def _run_folds(
    jobs: Sequence[FoldJob],
    *,
    mapper: Mapper,
    shape: tuple[int, int],
    exclude: BoolArray | None,
) -> tuple[FloatArray, list[FoldModel]]:
    """Fit every fold (through ``mapper``) and gather the out-of-fold probabilities.

    Parameters
    ----------
    jobs : sequence of FoldJob
        One per fold.
    mapper : Mapper
        Runs the parts (named "fold", or "refold" when ``exclude`` is given).
    shape : (n, k)
        Rows and classes of the output.
    exclude : BoolArray, shape (n,), optional
        Rows no model trains on (`fit_fold`).

    Returns
    -------
    probabilities : FloatArray, shape (n, k)
        float32; 0 for a class a fold's model never saw.
    models : list of FoldModel
        The kept fold models in fold order (empty unless the jobs ask to keep them).
    """
    out = np.zeros(shape, dtype=np.float32)
    todo = jobs if exclude is None else [
        replace(j, params={**j.params, "exclude": exclude}) for j in jobs
    ]
    models: list[FoldModel] = []
    for fold in mapper(fit_fold, todo, name="fold" if exclude is None else "refold"):
        out[np.ix_(fold.rows, fold.classes)] = fold.probabilities
        if fold.model is not None:
            models.append(fold.model)
    return out, models


def _passes(
    jobs: Sequence[FoldJob],
    y: IntArray,
    fold_of: IntArray,
    *,
    n_classes: int,
    mapper: Mapper,
    leave_out: Callable[[FloatArray], BoolArray] | None,
    average: bool,
) -> tuple[OutOfFold, list[list[FoldModel]]]:
    """One pass over the folds and, if ``leave_out`` names rows, a second without them.

    The second pass's models do not train on the rows ``leave_out`` names, except the rows of
    a class the mask would take out of a fold's training entirely (`keep_every_class`); when
    no row is left out, the second pass is skipped.

    BLAS runs on one thread in this process while the folds are fitted: OpenBLAS's
    multi-threaded sums differ in the last bits with the thread count and the matrix size, so
    a logistic regression fitted here and in a Dask worker (whose nanny sets
    OPENBLAS_NUM_THREADS=1) would disagree.

    Parameters
    ----------
    jobs : sequence of FoldJob
        One per fold.
    y, fold_of : IntArray, shape (n,)
        Class codes and fold numbers.
    n_classes : int
        k.
    mapper : Mapper
        Runs the parts.
    leave_out : callable, optional
        The first pass's probabilities (n, k) -> rows to leave out (boolean, (n,)).
    average : bool
        Return the two passes averaged (text models: n-gram models vary more between fits)
        rather than the second alone.

    Returns
    -------
    OutOfFold
        The probabilities (float32, (n, k)) and the number of rows left out.
    models : list of list of FoldModel
        Each pass's kept fold models (empty lists unless the jobs keep them).
    """
    shape = (len(y), n_classes)
    with threadpool_limits(limits=1, user_api="blas"):
        first, models = _run_folds(jobs, mapper=mapper, shape=shape, exclude=None)
        if leave_out is None:
            return OutOfFold(first, 0), [models]
        drop = keep_every_class(y, fold_of, np.asarray(leave_out(first), dtype=bool))
        if not drop.any():
            return OutOfFold(first, 0), [models]
        second, again = _run_folds(jobs, mapper=mapper, shape=shape, exclude=drop)
    if average:
        return OutOfFold(((first + second) / 2).astype(np.float32), int(drop.sum())), [
            models, again]
    return OutOfFold(second, int(drop.sum())), [models, again]
