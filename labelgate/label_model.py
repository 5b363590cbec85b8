"""Out-of-fold predicted probabilities for label-issue detection.

Confident learning (cleanlab) is only as good as the predicted probabilities it is given, and
those must be *out of fold*: the model that scores a row never trained on that row, or it has
memorised the (possibly wrong) label and the error becomes invisible.

Model choice (measured on real data with planted flips, see bench/bench_label_issues.py):

* text columns: word 1-2 grams (tokenised, hashed and counted in polars) plus, up to
  ``char_ngram_max_rows`` rows, ``char_wb`` 2-5 grams (sklearn HashingVectorizer; ~5x the cost
  of word n-grams); n-grams seen in fewer than 2 rows dropped; sublinear TF-IDF; logistic
  regression trained by SGD (log loss, alpha 5e-5; 10 epochs up to 100k rows, fewer above).
  Stronger regularisation than sklearn's LogisticRegression default measured better here
  (noisy labels), and SGD is linear time: lbfgs LogisticRegression on the same features took
  ~25x longer. The text matrix uses no labels, so it is built once for all folds; only the
  classifier is fitted per fold.
* numeric / categorical feature columns only: ``HistGradientBoostingClassifier`` with native
  categorical support; up to ``tabular_ensemble_max_rows`` rows instead the average of
  ``ExtraTreesClassifier`` (200 trees) and ``LogisticRegression``, both on the standardised /
  one-hot features (boosting is over-confident on small tables: on planted flips, with the
  per-class joint and a ranked cut (`labelgate.label_issues`), the pair measured strict F1
  +0.01 on average over penguins, breast cancer, digits, iris and wine against the three
  averaged (10 flip seeds x 5% / 10%; penguins +0.04 / +0.01, iris +0.06 / +0.02, wine
  -0.02 / -0.01), and boosting alone 0.05-0.15 lower). Time (digits features, 10 classes,
  1,797 rows, 5 folds): the pair ~6 s, the earlier three-model average ~14 s; extra trees
  grow with the rows, hence the limit.
* text plus feature columns: the features are standardised (numeric) or one-hot encoded
  (categorical) and appended to the sparse text matrix for the linear model.
* text with sentence embeddings (``embeddings``, `labelgate.embeddings`): a multinomial
  ``LogisticRegression`` (C=1) on the unit-length embeddings is fitted in each fold beside
  the n-gram model and the two probabilities are averaged. Alone, the embedding model was no
  better than the n-grams (accuracy 0.867 vs 0.856 on VADER snippets by source, worse on
  long drug reviews); averaged, the two disagree usefully: strict F1 with planted flips
  (bench/bench_label_issues.py, 5% / 10%) +0.05 / +0.04 on VADER snippets by source,
  +0.03..+0.07 on binary VADER pairs, +0.03 on CrowdFlower tweets (+0.05..+0.12 on 2,000 of
  them), +0.01 on drug reviews. C=4 and C=16 measured the same or worse; an MLP in place of
  the logistic regression +0.05 / +0.03 on tweets but nothing on VADER or drug reviews, and a
  kNN member or a geometric mean nothing.

A second pass (``leave_out``; `labelgate.label_issues.find_label_issues` ``passes=2``, the
default) fits every fold again without the rows the first pass flagged and scores every
row again, out of fold as before. Strict F1 with planted flips (5% / 10%), one pass -> two:
tables (10 flip seeds; the second pass's probabilities) penguins 0.924 / 0.953 -> 0.950 /
0.975, breast cancer 0.877 / 0.909 -> 0.890 / 0.926, digits 0.939 / 0.953 -> 0.937 / 0.968,
iris 0.871 / 0.813 -> 0.900 / 0.891, wine 0.874 / 0.930 -> 0.889 / 0.944; text (the two
passes averaged; the second alone was 0.01 lower on VADER snippets by source) SMS spam
0.926 / 0.924 -> 0.927 / 0.950, binary VADER 0.880 / 0.905 -> 0.884 / 0.916, drug reviews
0.292 / 0.412 -> 0.313 / 0.426, VADER by source 0.797 / 0.843 -> 0.791 / 0.842, CrowdFlower
tweets 0.595 / 0.710 -> 0.586 / 0.708 (more of the crowd's own errors flagged).

Folds are stratified (``StratifiedKFold`` with ``shuffle=True`` and the given seed), so the
same inputs and seed give the same probabilities.
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
from joblib import Parallel, delayed
from sklearn.ensemble import ExtraTreesClassifier, HistGradientBoostingClassifier
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.model_selection import StratifiedKFold
from threadpoolctl import threadpool_limits

from labelgate.errors import InputError
from labelgate.partition import Mapper, serial_map

__all__ = [
    "CHAR_NGRAM_MAX_ROWS",
    "TABULAR_ENSEMBLE_MAX_ROWS",
    "FoldJob",
    "FoldResult",
    "OutOfFold",
    "assign_folds",
    "auto_epochs",
    "fit_fold",
    "joined_text",
    "keep_every_class",
    "out_of_fold",
    "out_of_fold_probabilities",
    "text_matrix",
    "word_ngram_counts",
]

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

_HASH_FEATURES = 2**20
_PARALLEL_MIN_ROWS = 50_000


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


def joined_text(features: pl.DataFrame, text_columns: Sequence[str]) -> pl.Series:
    """The text a model reads: the text columns of each row, one per line (nulls empty)."""
    expr = pl.concat_str(
        [pl.col(c).cast(pl.String).fill_null("") for c in text_columns], separator="\n"
    )
    return features.select(expr.alias("_text")).to_series()


def _word_chunk(text: pl.Series, *, seed: int, n_features: int) -> sp.csr_matrix:
    toks = (
        pl.DataFrame({"t": text})
        .with_row_index("row")
        .select(
            "row",
            pl.col("t").str.to_lowercase().str.extract_all(r"\b\w\w+\b").alias("tok"),
        )
        .explode("tok")
        .drop_nulls("tok")
    )
    bigram = (
        pl.when(pl.col("row") == pl.col("row").shift(-1))
        .then(pl.col("tok") + " " + pl.col("tok").shift(-1))
        .otherwise(None)
    )
    bucket = (pl.col("g").hash(seed) % n_features).cast(pl.Int32).alias("col")
    grams = pl.concat(
        [toks.select("row", pl.col("tok").alias("g")), toks.select("row", bigram.alias("g"))]
    ).drop_nulls("g")
    counts = grams.select("row", bucket).group_by("row", "col").agg(pl.len().alias("n"))
    return sp.csr_matrix(
        (
            counts.get_column("n").to_numpy().astype(np.float64),
            (counts.get_column("row").to_numpy(), counts.get_column("col").to_numpy()),
        ),
        shape=(text.len(), n_features),
    )


def word_ngram_counts(
    text: pl.Series,
    *,
    min_rows: int = 2,
    seed: int = 0,
    n_features: int = 2**22,
    chunk_rows: int = 100_000,
) -> sp.csr_matrix:
    """Term counts (float64) of lower-cased word 1-2 grams (sklearn's default token pattern).

    Polars tokenises, hashes (into ``n_features`` buckets, like HashingVectorizer) and counts,
    multi-threaded, ``chunk_rows`` rows at a time to bound memory: ~10x faster than sklearn's
    HashingVectorizer on a million tweets. Columns present in fewer than ``min_rows`` rows are
    dropped (like ``min_df``; uses no labels).
    """
    n = text.len()
    mats = [
        _word_chunk(text.slice(i, chunk_rows), seed=seed, n_features=n_features)
        for i in range(0, max(n, 1), chunk_rows)
    ]
    mat = mats[0] if len(mats) == 1 else sp.vstack(mats, format="csr")
    del mats
    return _drop_rare_columns(mat, min_rows=min_rows)


def _drop_rare_columns(mat: sp.csr_matrix, *, min_rows: int) -> sp.csr_matrix:
    """Keep columns with a non-zero in at least ``min_rows`` rows, renumbered densely."""
    df = np.bincount(mat.indices, minlength=mat.shape[1])
    keep = df >= min_rows
    remap = np.full(mat.shape[1], -1, dtype=np.int64)
    remap[keep] = np.arange(int(keep.sum()))
    new = remap[mat.indices]
    ok = new >= 0
    csum = np.concatenate([[0], np.cumsum(ok, dtype=np.int64)])
    return sp.csr_matrix(
        (mat.data[ok], new[ok].astype(np.int32), csum[mat.indptr]),
        shape=(mat.shape[0], int(keep.sum())),
    )


def _char_chunk(texts: list[str]) -> sp.csr_matrix:
    char = HashingVectorizer(
        analyzer="char_wb", ngram_range=(2, 5), n_features=_HASH_FEATURES,
        alternate_sign=False, norm=None, dtype=np.float64,
    )
    return char.transform(texts)


def char_ngram_counts(texts: list[str], *, n_jobs: int = 1, min_rows: int = 2) -> sp.csr_matrix:
    """Hashed counts of char_wb 2-5 grams (sklearn), columns seen in < ``min_rows`` rows dropped."""
    n = len(texts)
    if n_jobs == 1 or n < _PARALLEL_MIN_ROWS:
        mat = _char_chunk(texts)
    else:
        step = -(-n // (n_jobs * 2))
        chunks = [texts[i : i + step] for i in range(0, n, step)]
        mats = Parallel(n_jobs=n_jobs)(delayed(_char_chunk)(c) for c in chunks)
        mat = sp.vstack(mats, format="csr")
    return _drop_rare_columns(mat, min_rows=min_rows)


def text_matrix(
    text: pl.Series, *, char_ngrams: bool, n_jobs: int = 1, seed: int = 0
) -> sp.csr_matrix:
    """Sublinear TF-IDF (float64, l2-normalised rows) of word 1-2 grams, plus char_wb 2-5 grams
    if asked (each block weighted then the whole row normalised).

    Uses the text only, never the labels, so computing it once over all rows is safe for
    out-of-fold scoring: the label of a row never reaches the model that scores it.
    """
    mat = _tfidf_inplace(word_ngram_counts(text, seed=seed))
    if char_ngrams:
        chars = _tfidf_inplace(char_ngram_counts(text.to_list(), n_jobs=n_jobs))
        mat = _l2_rows_inplace(sp.hstack([mat, chars], format="csr"))
    return mat


def _tfidf_inplace(counts: sp.csr_matrix) -> sp.csr_matrix:
    """Like TfidfTransformer(sublinear_tf=True, smooth_idf=True, norm='l2'), in place."""
    n = counts.shape[0]
    df = np.bincount(counts.indices, minlength=counts.shape[1]).astype(np.float64)
    idf = np.log((1.0 + n) / (1.0 + df)) + 1.0
    np.log(counts.data, out=counts.data)
    counts.data += 1.0
    counts.data *= idf[counts.indices]
    return _l2_rows_inplace(counts)


def _l2_rows_inplace(mat: sp.csr_matrix) -> sp.csr_matrix:
    row_of = np.repeat(np.arange(mat.shape[0]), np.diff(mat.indptr))
    sq = np.bincount(row_of, weights=np.square(mat.data), minlength=mat.shape[0])
    norms = np.sqrt(sq)
    norms[norms == 0] = 1.0
    mat.data /= norms[row_of]
    return mat


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
    return SGDClassifier(
        loss="log_loss", alpha=alpha, max_iter=epochs, tol=None, random_state=seed,
        n_jobs=n_jobs,
    )


CHAR_NGRAM_MAX_ROWS = 50_000  # char n-grams up to this many rows (they cost ~5x word n-grams)
TABULAR_ENSEMBLE_MAX_ROWS = 10_000  # extra trees + logistic regression up to here, then boosting


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
class FoldResult:
    rows: IntArray  # the fold's row numbers
    classes: IntArray  # the class codes the model saw (columns of `probabilities`)
    probabilities: npt.NDArray[np.float64]


def fit_fold(job: FoldJob) -> FoldResult:
    """Fit the fold's model on the other folds and predict its own rows (a pure part).
    Training rows in ``params["exclude"]`` are left out, unless that leaves fewer than two
    classes (`keep_every_class` keeps a class from vanishing in the first place)."""
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
    if job.model == "linear" and x_emb is not None:
        # sentence embeddings: a second, differently biased view of the text, averaged
        emb_model = LogisticRegression(C=1.0, max_iter=2000)
        emb_model.fit(x_emb[tr], job.y[tr])
        probs = (probs + emb_model.predict_proba(x_emb[te])) / 2
    return FoldResult(te, classes, probs)


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
class OutOfFold:
    probabilities: FloatArray  # rows x classes, float32
    left_out: int  # rows the second pass's models did not train on (0: one pass ran)


def auto_epochs(n_rows: int) -> int:
    """SGD passes: 10 up to 100k rows, then a constant budget of ~1M example updates per fold
    (200k rows: 5, 1M rows: 1); more passes bought nothing measurable at large N."""
    return 10 if n_rows <= 100_000 else max(1, round(1_000_000 / n_rows))


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
    leave_out: Callable[[FloatArray], BoolArray] | None = None,
) -> OutOfFold:
    """Predicted class probabilities (float32, rows x classes) where row i is scored only by a
    model trained on the other folds.

    ``labels`` are integer class codes 0..K-1 aligned with ``features``. ``char_ngrams=None``
    turns char n-grams on below ``char_ngram_max_rows`` rows (they cost ~5x the time of word
    n-grams and matter less once there is plenty of data). ``mapper`` runs the folds (one
    `fit_fold` part each; `labelgate.partition`): the features are built once, here.
    ``embeddings`` (rows x dimensions, `labelgate.embeddings`) adds a logistic regression on
    them to each fold of a text model, averaged with the n-gram model.

    ``leave_out`` asks for a second pass: given the first pass's probabilities it names the
    rows (a boolean mask, e.g. those flagged as label issues) that the second pass's models do
    not train on, except the rows of a class the mask would take out of a fold's training
    entirely (`keep_every_class`); when no row is left out, the second pass is skipped.
    Every row is scored again, still only by models of the other folds. The probabilities
    are the second pass's for a feature-columns model and the average of the two passes for
    a text model (see the module docstring for what was measured).

    BLAS runs on one thread in this process while the folds are fitted: OpenBLAS's
    multi-threaded sums differ in the last bits with the thread count and the matrix size, so
    a logistic regression fitted here and in a Dask worker (whose nanny sets
    OPENBLAS_NUM_THREADS=1) would disagree by ~1e-6.
    """
    y = np.asarray(labels, dtype=np.int64)
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
    k = int(n_classes) if n_classes is not None else int(y.max()) + 1
    fold_of = assign_folds(y, folds=folds, seed=seed)

    if not text_columns:
        x_tab = _tabular_frame(features, feature_columns).to_numpy()
        cat = np.asarray(_categorical_mask(features, feature_columns))
        tab_params: dict[str, Any] = {"categorical": cat, "seed": seed}
        if n <= tabular_ensemble_max_rows:
            tab_params["x_linear"] = _sparse_tabular(features, feature_columns)
        jobs: list[FoldJob] = [
            FoldJob(f, x_tab, y, fold_of, "hgb", tab_params) for f in range(folds)
        ]
    else:
        use_char = char_ngrams if char_ngrams is not None else n <= char_ngram_max_rows
        x_all = text_matrix(
            joined_text(features, text_columns), char_ngrams=use_char, n_jobs=n_jobs, seed=seed
        )
        if feature_columns:
            x_all = sp.hstack([x_all, _sparse_tabular(features, feature_columns)], format="csr")
        n_epochs = epochs if epochs is not None else auto_epochs(n)
        # parts run side by side on other workers: one thread each there (no oversubscription,
        # no thread pools nested in the workers' own); in process the folds use n_jobs
        part_jobs = n_jobs if mapper is serial_map else 1
        params: dict[str, Any] = {
            "seed": seed, "alpha": alpha, "epochs": n_epochs, "n_jobs": part_jobs
        }
        if embeddings is not None:
            if embeddings.shape[0] != n:
                raise InputError(
                    f"label_issues: {embeddings.shape[0]} embedding rows for {n} feature rows"
                )
            params["x_embed"] = embeddings
        jobs = [FoldJob(f, x_all, y, fold_of, "linear", params) for f in range(folds)]

    def run(exclude: BoolArray | None) -> FloatArray:
        out = np.zeros((n, k), dtype=np.float32)
        todo = jobs if exclude is None else [
            replace(j, params={**j.params, "exclude": exclude}) for j in jobs
        ]
        for fold in mapper(fit_fold, todo, name="fold" if exclude is None else "refold"):
            out[np.ix_(fold.rows, fold.classes)] = fold.probabilities
        return out

    with threadpool_limits(limits=1, user_api="blas"):
        first = run(None)
        if leave_out is None:
            return OutOfFold(first, 0)
        drop = keep_every_class(y, fold_of, np.asarray(leave_out(first), dtype=bool))
        if not drop.any():
            return OutOfFold(first, 0)
        second = run(drop)
    if text_columns:
        # n-gram models vary more between fits: the two passes averaged measured better than
        # the second alone (module docstring)
        return OutOfFold(((first + second) / 2).astype(np.float32), int(drop.sum()))
    return OutOfFold(second, int(drop.sum()))
