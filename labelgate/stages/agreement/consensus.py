"""Consensus labels from several annotators: majority vote, Dawid-Skene, CROWDLAB input.

Majority vote tie rule (deterministic): among the labels with the most votes, take the one
backed by the annotator with the best gold accuracy (annotators without gold items do not
count); if that still ties, or there is no gold, take the first label in category order.

Dawid-Skene (1979) is written here (no light, maintained package does it: crowd-kit pulls
transformers): EM over one confusion matrix per annotator and a class prior, initialised
from the majority-vote vote shares, with a small additive smoothing of the confusion counts.
It uses no randomness, so it is deterministic; ties in the posterior go to the first label in
category order.

CROWDLAB (cleanlab's multiannotator consensus) is computed elsewhere (label_issues); its
output comes in through ``crowdlab_consensus_frame`` and takes part in the comparison.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from labelgate.errors import InputError
from labelgate.stages.agreement.annotations import EncodedAnnotations, FloatArray, IntArray

TIE_NONE = "none"
TIE_GOLD = "gold_accuracy"
TIE_ORDER = "category_order"


@dataclass(frozen=True)
class MajorityVote:
    """Per item (rows follow ``EncodedAnnotations.items``)."""

    label_idx: IntArray
    n_votes: IntArray  # votes for the chosen label
    n_labels: IntArray
    tie_broken_by: list[str]  # "none" | "gold_accuracy" | "category_order"


def majority_vote(
    encoded: EncodedAnnotations,
    *,
    annotator_gold_accuracy: FloatArray | None = None,
) -> MajorityVote:
    """Majority label per item with the module's tie rule.

    ``annotator_gold_accuracy`` is per annotator (order of ``encoded.annotators``), NaN for
    annotators without gold items.
    """
    counts = encoded.counts()
    top = counts.max(axis=1)
    tied = counts == top[:, None]
    n_tied = tied.sum(axis=1)
    candidates = tied
    if annotator_gold_accuracy is not None and (n_tied > 1).any():
        acc = np.asarray(annotator_gold_accuracy, dtype=np.float64)
        if acc.shape != (encoded.n_annotators,):
            raise InputError(
                f"annotator_gold_accuracy has shape {acc.shape}; expected "
                f"({encoded.n_annotators},), one per annotator"
            )
        best = np.full(counts.shape, -np.inf)
        row_acc = np.where(np.isnan(acc), -np.inf, acc)[encoded.annotator_idx]
        np.maximum.at(best, (encoded.item_idx, encoded.label_idx), row_acc)
        score = np.where(tied, best, -np.inf)
        top_score = score.max(axis=1)
        by_gold = tied & (score == top_score[:, None]) & np.isfinite(top_score)[:, None]
        candidates = np.where(by_gold.any(axis=1)[:, None], by_gold, tied)
    label_idx = np.argmax(candidates, axis=1).astype(np.int64)  # first = category order
    n_cand = candidates.sum(axis=1)
    rule = np.where(n_tied == 1, TIE_NONE, np.where(n_cand == 1, TIE_GOLD, TIE_ORDER))
    return MajorityVote(
        label_idx=label_idx,
        n_votes=top.astype(np.int64),
        n_labels=counts.sum(axis=1).astype(np.int64),
        tie_broken_by=[str(r) for r in rule],
    )


@dataclass(frozen=True)
class DawidSkene:
    """EM result. ``confusion[a, true, given]`` is P(annotator a says given | true)."""

    label_idx: IntArray
    posterior: FloatArray  # items x categories
    class_prior: FloatArray
    confusion: FloatArray  # annotators x categories x categories
    n_iter: int
    converged: bool
    log_likelihood: float

    @property
    def annotator_accuracy(self) -> FloatArray:
        """Estimated P(correct) per annotator, weighted by the class prior."""
        diag = np.diagonal(self.confusion, axis1=1, axis2=2)
        return np.asarray(diag @ self.class_prior, dtype=np.float64)


def dawid_skene(
    encoded: EncodedAnnotations,
    *,
    max_iter: int = 100,
    tol: float = 1e-6,
    smoothing: float = 0.01,
) -> DawidSkene:
    """Dawid-Skene EM consensus (see module docstring). Converges when no posterior moves by
    more than ``tol``; vectorised: one pass is a few bincounts over the label rows."""
    n_items, n_ann, k = encoded.n_items, encoded.n_annotators, encoded.n_categories
    item, ann, lab = encoded.item_idx, encoded.annotator_idx, encoded.label_idx
    counts = encoded.counts().astype(np.float64)
    post = counts / counts.sum(axis=1, keepdims=True)
    ann_lab = ann * k + lab
    log_lik = float("nan")
    converged = False
    n_iter = 0
    prior = np.full(k, 1.0 / k)
    confusion = np.full((n_ann, k, k), 1.0 / k)
    for n_iter in range(1, max_iter + 1):  # noqa: B007 - reported after the loop
        # M-step: class prior and per-annotator confusion from the current posteriors.
        prior = (post.sum(axis=0) + smoothing) / (n_items + k * smoothing)
        conf = np.empty((n_ann, k, k))
        for t in range(k):
            conf[:, t, :] = np.bincount(
                ann_lab, weights=post[item, t], minlength=n_ann * k
            ).reshape(n_ann, k)
        conf += smoothing
        confusion = conf / conf.sum(axis=2, keepdims=True)
        # E-step: log P(true = t | labels) up to a constant, then normalise.
        log_conf = np.log(confusion)
        log_post = np.tile(np.log(prior), (n_items, 1))
        for t in range(k):
            log_post[:, t] += np.bincount(
                item, weights=log_conf[ann, t, lab], minlength=n_items
            )
        top = log_post.max(axis=1, keepdims=True)
        norm = top + np.log(np.exp(log_post - top).sum(axis=1, keepdims=True))
        new_post = np.exp(log_post - norm)
        log_lik = float(norm.sum())
        delta = float(np.abs(new_post - post).max())
        post = new_post
        if delta < tol:
            converged = True
            break
    return DawidSkene(
        label_idx=np.argmax(post, axis=1).astype(np.int64),
        posterior=post,
        class_prior=prior,
        confusion=confusion,
        n_iter=n_iter,
        converged=converged,
        log_likelihood=log_lik,
    )


def crowdlab_consensus_frame(
    items: Sequence[Any] | pl.Series,
    consensus_label: Sequence[int] | IntArray,
    *,
    categories: Sequence[Any] | pl.Series,
    quality: Sequence[float] | FloatArray | None = None,
    item_name: str = "item",
) -> pl.DataFrame:
    """CROWDLAB output as a consensus column: item, crowdlab, crowdlab_quality.

    ``consensus_label`` is cleanlab's ``label_quality["consensus_label"]`` (class indices into
    ``categories``), ``quality`` its ``consensus_quality_score``; ``items`` gives the row order
    used for cleanlab's ``labels_multiannotator`` (``EncodedAnnotations.items`` when it was
    built with ``to_cleanlab_multiannotator``).
    """
    cats = pl.Series("crowdlab", list(categories))
    codes = np.asarray(consensus_label, dtype=np.int64)
    item_s = pl.Series(item_name, items)
    if codes.shape != (item_s.len(),):
        raise InputError(
            f"CROWDLAB consensus: {codes.shape[0]} labels for {item_s.len()} items; "
            "expected one per item"
        )
    bad = codes[(codes < 0) | (codes >= cats.len())]
    if bad.size:
        raise InputError(
            f"CROWDLAB consensus: class indices {sorted(set(bad.tolist()))[:10]} outside "
            f"0..{cats.len() - 1} ({cats.len()} categories)"
        )
    q = (
        np.full(item_s.len(), np.nan)
        if quality is None
        else np.asarray(quality, dtype=np.float64)
    )
    return pl.DataFrame(
        [item_s, cats.gather(codes), pl.Series("crowdlab_quality", q)]
    )


def compare_consensus(consensus: pl.DataFrame, *, methods: Sequence[str]) -> pl.DataFrame:
    """How often each pair of consensus columns differ, over items where both are set."""
    rows: list[dict[str, Any]] = []
    for i, a in enumerate(methods):
        for b in methods[i + 1:]:
            both = consensus.filter(pl.col(a).is_not_null() & pl.col(b).is_not_null())
            n_differ = int((both[a] != both[b]).sum())
            rows.append({
                "method_a": a,
                "method_b": b,
                "n_items": both.height,
                "n_differ": n_differ,
                "share_differ": n_differ / both.height if both.height else float("nan"),
            })
    return pl.DataFrame(
        rows,
        schema={"method_a": pl.String, "method_b": pl.String, "n_items": pl.Int64,
                "n_differ": pl.Int64, "share_differ": pl.Float64},
    )
