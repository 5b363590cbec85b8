"""The text model's features: word 1-2 grams (tokenised, hashed and counted in polars), up
to `CHAR_NGRAM_MAX_ROWS` rows char_wb 2-5 grams (sklearn HashingVectorizer), n-grams seen in
fewer than 2 rows dropped, sublinear TF-IDF, unit-length rows. `fit_text_matrix` keeps what
it learnt (`TextVocabulary`) so `transform_text` builds the same columns for new rows.
`labelgate.stages.label_issues.models` fits the fold models on them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import polars as pl
import scipy.sparse as sp

from labelgate.stages.label_issues.arrays import IntArray

_HASH_FEATURES = 2**20
_PARALLEL_MIN_ROWS = 50_000


def joined_text(features: pl.DataFrame, text_columns: Sequence[str]) -> pl.Series:
    """The text a model reads: the text columns of each row, one per line (nulls empty)."""
    expr = pl.concat_str(
        [pl.col(c).cast(pl.String).fill_null("") for c in text_columns], separator="\n"
    )
    return features.select(expr.alias("_text")).to_series()


def _word_chunk(text: pl.Series, *, seed: int, n_features: int) -> sp.csr_matrix:
    """(len(text), ``n_features``) counts of the hashed word 1-2 grams. One lazy query: the
    unigrams and the bigrams are hashed to their column separately, so only (row, column)
    integers are concatenated, never a frame of every n-gram's string."""
    toks = (
        pl.LazyFrame({"t": text})
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
    grams = pl.concat([
        toks.select("row", pl.col("tok").alias("g")).select("row", bucket),
        toks.select("row", bigram.alias("g")).drop_nulls("g").select("row", bucket),
    ])
    counts = grams.group_by("row", "col").agg(pl.len().alias("n")).collect()
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
    multi-threaded, ``chunk_rows`` rows at a time to bound memory. Columns present in fewer
    than ``min_rows`` rows are dropped (like ``min_df``; uses no labels).
    """
    mat = _hashed_word_counts(text, seed=seed, n_features=n_features, chunk_rows=chunk_rows)
    return _drop_rare_columns(mat, min_rows=min_rows)


def _hashed_word_counts(
    text: pl.Series, *, seed: int, n_features: int, chunk_rows: int = 100_000
) -> sp.csr_matrix:
    """`word_ngram_counts` before rare columns are dropped: (n, ``n_features``) counts."""
    n = text.len()
    mats = [
        _word_chunk(text.slice(i, chunk_rows), seed=seed, n_features=n_features)
        for i in range(0, max(n, 1), chunk_rows)
    ]
    mat = mats[0] if len(mats) == 1 else sp.vstack(mats, format="csr")
    del mats
    return mat


def _drop_rare_columns(mat: sp.csr_matrix, *, min_rows: int) -> sp.csr_matrix:
    """Keep columns with a non-zero in at least ``min_rows`` rows, renumbered densely."""
    return _kept_columns(mat, min_rows=min_rows)[0]


def _kept_columns(mat: sp.csr_matrix, *, min_rows: int) -> tuple[sp.csr_matrix, IntArray]:
    """`_drop_rare_columns`'s matrix and the (hashed) columns it kept, ascending."""
    df = np.bincount(mat.indices, minlength=mat.shape[1])
    kept = np.flatnonzero(df >= min_rows).astype(np.int64)
    return select_columns(mat, kept), kept


def select_columns(mat: sp.csr_matrix, kept: IntArray) -> sp.csr_matrix:
    """The columns ``kept`` (ascending column numbers) of ``mat``, renumbered 0..len-1;
    the entries of other columns dropped."""
    # a table as wide as the matrix, int32 (half the memory to fill and gather from; a
    # binary search of `kept` is slower even for a night's few entries)
    remap = np.full(mat.shape[1], -1, dtype=np.int32 if len(kept) < 2**31 else np.int64)
    remap[kept] = np.arange(len(kept), dtype=remap.dtype)
    new = remap[mat.indices]
    ok = new >= 0
    csum = np.concatenate([[0], np.cumsum(ok, dtype=np.int64)])
    return sp.csr_matrix(
        (mat.data[ok], new[ok].astype(np.int32), csum[mat.indptr]),
        shape=(mat.shape[0], len(kept)),
    )


def _char_chunk(texts: list[str]) -> sp.csr_matrix:
    from sklearn.feature_extraction.text import HashingVectorizer  # only here: nights skip it

    char = HashingVectorizer(
        analyzer="char_wb", ngram_range=(2, 5), n_features=_HASH_FEATURES,
        alternate_sign=False, norm=None, dtype=np.float64,
    )
    return char.transform(texts)


def char_ngram_counts(texts: list[str], *, n_jobs: int = 1, min_rows: int = 2) -> sp.csr_matrix:
    """Hashed counts of char_wb 2-5 grams (sklearn), columns seen in < ``min_rows`` rows dropped."""
    return _drop_rare_columns(_hashed_char_counts(texts, n_jobs=n_jobs), min_rows=min_rows)


def _hashed_char_counts(texts: list[str], *, n_jobs: int = 1) -> sp.csr_matrix:
    """`char_ngram_counts` before rare columns are dropped."""
    n = len(texts)
    if n_jobs == 1 or n < _PARALLEL_MIN_ROWS:
        return _char_chunk(texts)
    from joblib import Parallel, delayed  # only here: a night imports no joblib

    step = -(-n // (n_jobs * 2))
    chunks = [texts[i : i + step] for i in range(0, n, step)]
    mats = Parallel(n_jobs=n_jobs)(delayed(_char_chunk)(c) for c in chunks)
    return sp.vstack(mats, format="csr")


@dataclass(frozen=True)
class TextVocabulary:
    """What turns new texts into the columns of a text matrix fitted earlier: the hashing
    seed, and for the word block (and the char block, when it was used) the hashed columns
    kept (ascending) and their idf weights (one per kept column)."""

    seed: int
    word_columns: IntArray
    word_idf: npt.NDArray[np.float64]
    char_columns: IntArray | None = None
    char_idf: npt.NDArray[np.float64] | None = None


def text_matrix(
    text: pl.Series, *, char_ngrams: bool, n_jobs: int = 1, seed: int = 0
) -> sp.csr_matrix:
    """Sublinear TF-IDF (float64, l2-normalised rows) of word 1-2 grams, plus char_wb 2-5 grams
    if asked (each block weighted then the whole row normalised).

    Uses the text only, never the labels, so computing it once over all rows is safe for
    out-of-fold scoring: the label of a row never reaches the model that scores it.
    """
    return fit_text_matrix(text, char_ngrams=char_ngrams, n_jobs=n_jobs, seed=seed)[0]


def fit_text_matrix(
    text: pl.Series, *, char_ngrams: bool, n_jobs: int = 1, seed: int = 0
) -> tuple[sp.csr_matrix, TextVocabulary]:
    """`text_matrix` and the vocabulary that gives the same columns for other texts
    (`transform_text`)."""
    words, word_columns = _kept_columns(_hashed_word_counts(text, seed=seed, n_features=2**22),
                                        min_rows=2)
    word_idf = _idf(words)
    mat = _apply_tfidf(words, word_idf)
    if not char_ngrams:
        return mat, TextVocabulary(seed, word_columns, word_idf)
    chars, char_columns = _kept_columns(_hashed_char_counts(text.to_list(), n_jobs=n_jobs),
                                        min_rows=2)
    char_idf = _idf(chars)
    mat = _l2_rows_inplace(sp.hstack([mat, _apply_tfidf(chars, char_idf)], format="csr"))
    return mat, TextVocabulary(seed, word_columns, word_idf, char_columns, char_idf)


def transform_text(text: pl.Series, vocabulary: TextVocabulary) -> sp.csr_matrix:
    """The TF-IDF rows of ``text`` in the columns of a fitted text matrix (n-grams the fit
    did not keep are dropped; its idf weights are used): (len(text), columns of the fit)."""
    v = vocabulary
    words = select_columns(_hashed_word_counts(text, seed=v.seed, n_features=2**22),
                           v.word_columns)
    mat = _apply_tfidf(words, v.word_idf)
    if v.char_columns is None or v.char_idf is None:
        return mat
    chars = select_columns(_hashed_char_counts(text.to_list()), v.char_columns)
    return _l2_rows_inplace(sp.hstack([mat, _apply_tfidf(chars, v.char_idf)], format="csr"))


def _tfidf_inplace(counts: sp.csr_matrix) -> sp.csr_matrix:
    """Like TfidfTransformer(sublinear_tf=True, smooth_idf=True, norm='l2'), in place."""
    return _apply_tfidf(counts, _idf(counts))


def _idf(counts: sp.csr_matrix) -> npt.NDArray[np.float64]:
    """Smoothed idf of each column of ``counts`` (TfidfTransformer's, smooth_idf=True)."""
    n = counts.shape[0]
    df = np.bincount(counts.indices, minlength=counts.shape[1]).astype(np.float64)
    idf: npt.NDArray[np.float64] = np.log((1.0 + n) / (1.0 + df)) + 1.0
    return idf


def _apply_tfidf(counts: sp.csr_matrix, idf: npt.NDArray[np.float64]) -> sp.csr_matrix:
    """Sublinear tf times ``idf``, rows l2-normalised; in place."""
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
