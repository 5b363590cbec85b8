"""Probable swapped pairs: an out-of-fold model scores each decided pair, and cleanlab
flags the pairs whose recorded preference is probably reversed.

Each decided pair (consensus a or b; `labelgate.stages.preference.pairs`) is put in its
canonical order (lo, hi) and labelled 1 when lo is preferred. The model is a logistic
regression without intercept (fitted by SGD) on the difference of the two responses'
features, so it is antisymmetric (swapping the responses flips the probability) and
blind to display order:

- TF-IDF (word 1-2-grams, sublinear tf, fitted on prompts and responses together; no
  label is used) of lo minus that of hi;
- the same difference weighted by the prompt's TF-IDF (words the response shares with
  the prompt);
- scalar differences: cosine similarity to the prompt, log characters, log tokens;
- prompt-word x response-word crosses (hashed into `CROSS_FEATURES` columns; each text's
  `CROSS_WORDS` rarest words of the `CROSS_VOCABULARY` most frequent ones) of lo minus
  those of hi: what a reply to this kind of prompt says, which a bag of words of the
  responses alone cannot see (measured on the preference benchmark page);
- optionally (``embed``: a sentence encoder) the embeddings' cosine similarity to the
  prompt, the prompt's embedding times the difference of the responses', and that
  difference.

Folds are grouped by prompt (scikit-learn `StratifiedGroupKFold`), so a pair is never
scored by a model that trained on a pair of the same prompt (invariant 5). cleanlab's
`find_label_issues` (``filter_by``: prune_by_noise_rate by default) reads the
out-of-fold probabilities; `label_quality` is the probability of the recorded label.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp

from labelgate.stages.preference.checks import tokens

CROSS_VOCABULARY = 4096
CROSS_WORDS = 16
CROSS_FEATURES = 1 << 20
EMBEDDING_SCALE = 5.0  # puts the embedding block on the TF-IDF block's scale for SGD's L2
Embed = Callable[[Sequence[str]], np.ndarray[Any, Any]]


@dataclass(frozen=True)
class SwapResult:
    """One row per decided pair: pair_key, p_lo (out-of-fold probability that lo is
    preferred), label_quality, swapped; plus what was fitted."""

    table: pl.DataFrame
    summary: dict[str, Any]


def _rarest(words: sp.csr_matrix, df: np.ndarray[Any, Any], k: int) -> sp.csr_matrix:
    """Each row's `k` words with the lowest document frequency `df` (binary)."""
    m = words.tocsr()
    m.sort_indices()
    rows = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
    order = np.lexsort((df[m.indices], rows))
    starts = np.repeat(m.indptr[:-1], np.diff(m.indptr))
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order)) - starts
    keep = rank < k
    return sp.csr_matrix((np.ones(int(keep.sum()), dtype=np.float32),
                          (rows[keep], m.indices[keep])), shape=m.shape)


def cross_features(prompts: sp.csr_matrix, responses: sp.csr_matrix, *,
                   n_features: int = CROSS_FEATURES) -> sp.csr_matrix:
    """Hashed (prompt word, response word) indicators per row: shape (n, n_features).

    `prompts` and `responses` are binary word matrices of the same rows and vocabulary."""
    p, r = prompts.tocsr(), responses.tocsr()
    n_p, n_r = np.diff(p.indptr), np.diff(r.indptr)
    counts = n_p * n_r
    total = int(counts.sum())
    k = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    per = np.maximum(np.repeat(n_r, counts), 1)
    pw = p.indices[np.repeat(p.indptr[:-1], counts) + k // per].astype(np.int64)
    rw = r.indices[np.repeat(r.indptr[:-1], counts) + k % per].astype(np.int64)
    col = ((pw * 1_000_003 + rw) * 2_654_435_761) % n_features
    rows = np.repeat(np.arange(p.shape[0]), counts)
    out = sp.csr_matrix((np.ones(total, dtype=np.float32), (rows, col)),
                        shape=(p.shape[0], n_features))
    out.data[:] = 1.0
    return out


def _crosses(prompts: list[str], lo: list[str], hi: list[str]) -> sp.csr_matrix:
    from sklearn.feature_extraction.text import CountVectorizer

    vec = CountVectorizer(binary=True, max_features=CROSS_VOCABULARY, min_df=3,
                          token_pattern=r"(?u)\b\w+\b|[?!]", dtype=np.float32)
    vec.fit(prompts + lo + hi)
    mats = [vec.transform(t) for t in (prompts, lo, hi)]
    df = np.asarray(sum(m.sum(axis=0) for m in mats)).ravel()
    tp, tl, th = (_rarest(m, df, CROSS_WORDS) for m in mats)
    diff = (cross_features(tp, tl) - cross_features(tp, th)).tocsr()
    diff.data /= np.sqrt(CROSS_WORDS)
    return diff


def _embedding_features(pairs: pl.DataFrame, embed: Embed) -> sp.csr_matrix:
    """[cos(p, lo) - cos(p, hi), p * (lo - hi), lo - hi] of unit-length embeddings:
    shape (n_pairs, 1 + 2 * dimensions)."""
    n = pairs.height
    texts = [t or "" for c in ("prompt", "lo", "hi") for t in pairs.get_column(c).to_list()]
    vectors = np.asarray(embed(texts), dtype=np.float64)
    ep, el, eh = vectors[:n], vectors[n:2 * n], vectors[2 * n:]
    cos = (ep * el).sum(axis=1) - (ep * eh).sum(axis=1)
    block = np.column_stack([cos * EMBEDDING_SCALE, ep * (el - eh) * EMBEDDING_SCALE, el - eh])
    return sp.csr_matrix(block)


def _features(pairs: pl.DataFrame) -> sp.csr_matrix:
    """Features of (prompt, lo, hi): shape (n_pairs, 2 * vocabulary + 3 + CROSS_FEATURES)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    prompts = pairs.get_column("prompt").fill_null("").to_list()
    lo = pairs.get_column("lo").fill_null("").to_list()
    hi = pairs.get_column("hi").fill_null("").to_list()
    vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2,
                          max_features=1 << 17, dtype=np.float32)
    n = len(prompts)
    every = vec.fit_transform(prompts + lo + hi).tocsr()  # one tokenization of each text
    tp, tl, th = every[:n], every[n:2 * n], every[2 * n:]
    diff = (tl - th).tocsr()
    overlap = tp.multiply(diff).tocsr()
    cos = np.asarray(tp.multiply(tl).sum(axis=1) - tp.multiply(th).sum(axis=1)).ravel()
    lens = pairs.select(
        (pl.col("lo").str.len_chars().log1p() - pl.col("hi").str.len_chars().log1p())
        .alias("c"),
        (tokens(pl.col("lo")).log1p() - tokens(pl.col("hi")).log1p()).alias("t"),
    ).to_numpy()
    dense = np.column_stack([cos, lens]).astype(np.float64)
    scale = dense.std(axis=0)
    dense = dense / np.where(scale > 0, scale, 1.0)
    return sp.hstack([diff, overlap, sp.csr_matrix(dense), _crosses(prompts, lo, hi)]).tocsr()


def out_of_fold(features: sp.csr_matrix, labels: np.ndarray[Any, Any],
                groups: np.ndarray[Any, Any], *, folds: int, seed: int) -> np.ndarray[Any, Any]:
    """Out-of-fold P(label 1) of a no-intercept logistic regression (scikit-learn's
    `SGDClassifier`, log loss, L2 1e-4, 10 epochs: the AUC of liblinear's exact fit at a
    tenth of its time on 20,000 pairs); folds grouped by `groups` and stratified by
    `labels`. Shape (n,)."""
    from sklearn.linear_model import SGDClassifier
    from sklearn.model_selection import StratifiedGroupKFold

    out = np.full(len(labels), 0.5)
    cv = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    for train, test in cv.split(features, labels, groups):
        if len(np.unique(labels[train])) < 2:
            continue
        model = SGDClassifier(loss="log_loss", alpha=1e-4, fit_intercept=False, max_iter=10,
                              tol=None, random_state=seed)
        model.fit(features[train], labels[train])
        out[test] = model.predict_proba(features[test])[:, 1]
    return out


def find_swapped_pairs(
    pairs: pl.DataFrame, *, folds: int = 5, seed: int = 13, min_pairs: int = 50,
    filter_by: str = "prune_by_noise_rate", embed: Embed | None = None,
) -> SwapResult:
    """Flag decided pairs whose recorded preference is probably reversed.

    Parameters
    ----------
    pairs : pl.DataFrame
        `pair_table`'s frame (pair_key, prompt_key, prompt, lo, hi, consensus, ...).
    folds, seed : int
        Cross-validation folds (grouped by prompt) and their seed.
    min_pairs : int
        Fewer decided pairs (or fewer prompts than folds, or one class): nothing is fitted
        and nothing flagged (summary ``skipped`` says why).
    embed : callable, optional
        Texts -> unit-length vectors (n_texts, d): adds the embedding features.

    Returns
    -------
    SwapResult
        table: one row per decided pair (pair_key, p_lo, label_quality, swapped).
    """
    from cleanlab.filter import find_label_issues

    decided = pairs.filter(pl.col("consensus").is_in(["a", "b"]))
    labels = (decided.get_column("consensus") == "a").cast(pl.Int64).to_numpy()
    groups = decided.get_column("prompt_key").fill_null("").to_numpy()
    n_groups = len(np.unique(groups)) if len(groups) else 0
    why = None
    if decided.height < min_pairs:
        why = f"{decided.height} decided pairs (< preference.swaps.min_pairs {min_pairs})"
    elif n_groups < folds:
        why = f"{n_groups} prompts for {folds} folds"
    elif len(np.unique(labels)) < 2 or min(np.bincount(labels)) < folds:
        why = "too few pairs of one orientation to stratify the folds"
    if why is not None:
        table = decided.select("pair_key").with_columns(
            pl.lit(None, pl.Float64).alias("p_lo"), pl.lit(None, pl.Float64)
            .alias("label_quality"), pl.lit(False).alias("swapped"))
        return SwapResult(table, {"fitted": False, "skipped": why, "pairs": decided.height})
    features = _features(decided)
    if embed is not None:
        features = sp.hstack([features, _embedding_features(decided, embed)]).tocsr()
    p_lo = out_of_fold(features, labels, groups, folds=folds, seed=seed)
    probs = np.column_stack([1 - p_lo, p_lo])
    flags = find_label_issues(labels, probs, filter_by=filter_by, n_jobs=1)
    quality = probs[np.arange(len(labels)), labels]
    table = decided.select("pair_key").with_columns(
        pl.Series("p_lo", p_lo), pl.Series("label_quality", quality),
        pl.Series("swapped", np.asarray(flags, dtype=bool)))
    return SwapResult(table, {"fitted": True, "pairs": decided.height, "folds": folds,
                              "seed": seed, "filter_by": filter_by,
                              "embeddings": embed is not None,
                              "flagged": int(np.sum(flags))})
