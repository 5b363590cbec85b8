"""The cut-offs a training run flagged at, so a night flags its new rows without cleanlab.

A full run of the built-in text model flags its rows with cleanlab over every row's
out-of-fold probabilities (`labelgate.stages.label_issues.flags`). Every filter it can run
comes down to comparisons of a row's probabilities with values the whole run set:

* ``both`` (cleanlab's ``prune_by_class`` and ``prune_by_noise_rate``): a row given class k
  is pruned by class when its probability of k is below ``by_class[k]`` (the smallest p_k
  among the rows of k that cleanlab did not prune), and by noise rate when, for some class
  j, its margin p_j - p_k is above ``by_noise[k][j]`` (the largest margin of the rows
  cleanlab did not prune in cell (k, j)); it is flagged when both hold and its given label
  is not the model's top class (cleanlab's ``_reduce_issues``, within ``eps``);
* the ranked cuts (``low_self_confidence``, ``low_normalized_margin``): a row is flagged when
  its score is below ``score_cut`` (the lowest score not cut) and its given label is not
  the top class;
* "both, ranked" (5 classes and more): a row is flagged when its label quality is below
  ``quality_cut`` (the lowest quality not flagged);
* ``max_label_quality``: only rows below it.

`cutoffs_of` reads those values off a run's flags; `flag_with` applies them to rows the run
never saw. Each cut-off is the boundary between the rows the run cut and the first it kept,
so `flag_with` gives the training rows their own flags (ties aside: cleanlab cuts tied rows
by position), and a new row is flagged when it ranks ahead of every training row that was
not: as if the run's counts had grown by that row. A night's new rows are thus flagged
against the training run's rows and counts, not by a cleanlab pass over every row; the kept
rows keep their flags. Other filters (cleanlab's batched path, the other
cleanlab filters) have no cut-offs here: a night then flags every row again.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from labelgate.stages.label_issues.arrays import BoolArray, FloatArray, IntArray
from labelgate.stages.label_issues.flags import RANKED_FILTERS, _Flagger

__all__ = ["Cutoffs", "cutoffs_of", "flag_with"]

EPS = 1e-6  # cleanlab's FLOATING_POINT_COMPARISON (`_reduce_issues`), as `flags._cut`


@dataclass(frozen=True)
class Cutoffs:
    """Where a training run cut (module docstring). ``kind``: "both", "score" or "quality";
    ``by_class`` (k) and ``by_noise`` (k x k) for "both" (``-inf`` / ``inf``: nothing pruned
    there); ``score_method`` and ``score_cut`` for "score"; ``quality_cut`` for "quality" and
    for "both, ranked"; ``max_label_quality`` (None: no cap)."""

    kind: str
    by_class: list[float]
    by_noise: list[list[float]]
    score_method: str | None = None
    score_cut: float = -math.inf
    quality_cut: float | None = None
    max_label_quality: float | None = None

    def to_meta(self) -> dict[str, Any]:
        """JSON-safe (infinities as strings)."""
        def safe(v: float) -> float | str:
            return v if math.isfinite(v) else str(v)

        meta = asdict(self)
        meta["by_class"] = [safe(v) for v in self.by_class]
        meta["by_noise"] = [[safe(v) for v in row] for row in self.by_noise]
        meta["score_cut"] = safe(self.score_cut)
        return meta

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any]) -> Cutoffs:
        return cls(
            kind=str(meta["kind"]), by_class=[float(v) for v in meta["by_class"]],
            by_noise=[[float(v) for v in row] for row in meta["by_noise"]],
            score_method=meta.get("score_method"), score_cut=float(meta["score_cut"]),
            quality_cut=None if meta.get("quality_cut") is None
            else float(meta["quality_cut"]),
            max_label_quality=None if meta.get("max_label_quality") is None
            else float(meta["max_label_quality"]),
        )


def _first_kept(values: npt.NDArray[np.floating[Any]], count: int, *,
                descending: bool = False) -> float:
    """The first value cleanlab's argsort cut does not take: the ``count + 1``-th of
    ``values`` sorted ascending (or descending). A row is cut when its value is below it
    (above it, descending). ``-inf`` (``inf``) when nothing is cut, ``inf`` (``-inf``) when
    every row is."""
    if count < 1 or len(values) == 0:
        return math.inf if descending else -math.inf
    if count >= len(values):
        return -math.inf if descending else math.inf
    if descending:
        return float(-np.partition(-values, count)[count])
    return float(np.partition(values, count)[count])


def _both_cutoffs(labels: IntArray, probs: FloatArray,
                  joint: IntArray) -> tuple[list[float], list[list[float]]]:
    """cleanlab's ``both`` cut-offs from the confident joint it was given (its prune count
    matrix, `_keep_at_least_n_per_class` with one example and all the noise)."""
    from cleanlab.filter import _keep_at_least_n_per_class

    k = probs.shape[1]
    prune = _keep_at_least_n_per_class(prune_count_matrix=joint.T, n=1, frac_noise=1.0)
    by_class = [-math.inf] * k
    by_noise = [[math.inf] * k for _ in range(k)]
    for c in range(k):
        rows = probs[labels == c]
        if rows.shape[0] <= 1:  # cleanlab prunes no class of fewer than two rows
            continue
        by_class[c] = _first_kept(rows[:, c], int(rows.shape[0] - prune[c, c]))
        for j in range(k):
            if j != c and prune[j, c] > 0:
                by_noise[c][j] = _first_kept(rows[:, j] - rows[:, c], int(prune[j, c]),
                                             descending=True)
    return by_class, by_noise


def cutoffs_of(flagger: _Flagger, probs: FloatArray, joint: IntArray | None, *,
               flags: BoolArray, quality: npt.NDArray[np.floating[Any]]) -> Cutoffs | None:
    """The cut-offs of a run that flagged ``flags`` (n,) with ``flagger`` from ``probs``
    (n, k) and ``joint`` (k, k); ``quality`` (n,) is each row's label quality. None when the
    filter has none (module docstring) or fewer than two classes were given."""
    labels = flagger.labels
    k = probs.shape[1]
    if joint is None or flagger.batched or len(np.unique(labels)) < 2:
        return None
    quality_cut = None
    if flagger.ranked:  # "both, ranked": the count's lowest label quality
        quality_cut = _first_kept(quality, int(flags.sum()))
    none = [[math.inf] * k for _ in range(k)]
    if flagger.filter_by == "both":
        by_class, by_noise = _both_cutoffs(labels, probs, joint)
        return Cutoffs("quality" if flagger.ranked else "both", by_class, by_noise,
                       quality_cut=quality_cut, max_label_quality=flagger.max_label_quality)
    if flagger.filter_by in RANKED_FILTERS:
        from cleanlab.rank import get_label_quality_scores

        method = flagger.filter_by.removeprefix("low_")
        scores = np.asarray(get_label_quality_scores(labels, probs, method=method))
        cut = _first_kept(scores, int(joint.sum() - np.trace(joint)))
        return Cutoffs("score", [-math.inf] * k, none, score_method=method, score_cut=cut,
                       max_label_quality=flagger.max_label_quality)
    return None


def _normalized_margin(labels: IntArray, probs: FloatArray) -> FloatArray:
    """cleanlab's normalized margin score: (p_given - max other p + 1) / 2."""
    others = probs.copy()
    others[np.arange(len(labels)), labels] = -np.inf
    given = probs[np.arange(len(labels)), labels]
    return np.asarray((given - others.max(axis=1) + 1) / 2)


def flag_with(cutoffs: Cutoffs, labels: IntArray, probs: FloatArray) -> BoolArray:
    """Flags of rows (``labels`` (m,), ``probs`` (m, k)) by a training run's cut-offs."""
    m = len(labels)
    at = np.arange(m)
    given = probs[at, labels].astype(np.float64)
    quality = np.clip(given, 0.0, 1.0)
    bumped = probs.copy()  # in the probabilities' dtype, as cleanlab compares them
    bumped[at, labels] += EPS
    not_top = bumped.argmax(axis=1) != labels  # cleanlab's `_reduce_issues`, negated
    if cutoffs.kind == "quality":
        mask = quality < (cutoffs.quality_cut if cutoffs.quality_cut is not None
                          else -math.inf)
    elif cutoffs.kind == "score":
        scores = given if cutoffs.score_method == "self_confidence" else (
            _normalized_margin(labels, probs))
        mask = (scores < cutoffs.score_cut) & (given + EPS < probs.max(axis=1))
    else:
        by_class = np.asarray(cutoffs.by_class)[labels]
        mask = given < by_class
        noise = np.asarray(cutoffs.by_noise)[labels]  # (m, k): row's given class's cells
        margins = probs - probs[at, labels][:, None]  # float32 as cleanlab's margins
        mask &= (margins > noise).any(axis=1)
        mask &= not_top
    if cutoffs.max_label_quality is not None:
        mask &= quality < cutoffs.max_label_quality
    return np.asarray(mask, dtype=bool)


def flagging_state(flagger: _Flagger, probs: FloatArray, joint: IntArray | None, *,
                   table_flags: BoolArray, quality: npt.NDArray[np.floating[Any]],
                   noise: list[float],
                   health: float, filter_name: str) -> dict[str, Any] | None:
    """What a night needs to flag new rows as this training run did and to report it: the
    cut-offs (`cutoffs_of`), the run's noise matrix (its ``joint`` column, k x k in order)
    and health score, the filter and joint names. None without cut-offs."""
    found = cutoffs_of(flagger, probs, joint, flags=table_flags, quality=quality)
    if found is None:
        return None
    return {"cutoffs": found.to_meta(), "noise": noise, "health": health,
            "filter_by": filter_name, "joint_calibration": flagger.calibration}
