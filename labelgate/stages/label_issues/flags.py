"""Confident learning: the confident joint, the flags, label quality and the noise matrix.

* `estimate_confident_joint`: cleanlab's confident joint, corrected per true class
  (``per_class``), refined into the posterior joint (``posterior``) or cleanlab's own
  (``cleanlab``);
* the flags: cleanlab's filters, the ranked cut counted by the joint (``_flag_ranked``) and
  the batched path (``_flag_batched``);
* self-confidence label quality, the noise matrix and health score (``_joint_and_health``),
  the per-class table and the rank of each row;
* ``_Flagger``: the flagging options of `find_label_issues` once resolved.

`labelgate.stages.label_issues.detect` re-exports the public names.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from labelgate.stages.label_issues.arrays import BoolArray, FloatArray, IntArray
from labelgate.stages.label_issues.experimental import posterior_joint
from labelgate.stages.label_issues.options import COUNTING_CALIBRATIONS as COUNTING_CALIBRATIONS
from labelgate.stages.label_issues.options import RANKED_FILTERS as RANKED_FILTERS

__all__ = ["COUNTING_CALIBRATIONS", "MAX_INV_RATE", "RANKED_FILTERS", "estimate_confident_joint"]

# the calibrations whose joint sets the count of a ranked cut (and the health score)
# bound of 1 / (the share of a true class's rows the confident joint counts): see
# estimate_confident_joint
MAX_INV_RATE = 4.0



def estimate_confident_joint(
    labels: IntArray, probs: FloatArray, *, calibration: str = "per_class"
) -> IntArray:
    """cleanlab's confident joint, scaled so each row i sums to the number of rows labelled i.

    C[i, j] counts the rows given label i that are confidently of class j. cleanlab scales each
    row by one factor, which is right only if every true class is counted confidently at the
    same rate. It is not: a class whose rows the model scores less sharply (often the large
    class of an imbalanced set) has more rows below its threshold, so the flips into the other
    classes are undercounted. "per_class" models the uncalibrated count as
    C[i, j] = N[i, j] * a[j], where a[j] is the rate at which rows of true class j are counted
    (the same whatever their given label: confident learning's class-conditional noise
    assumption), and solves the row totals sum_j C[i, j] / a[j] = n[i] for the a[j] (see
    `_scaled_per_true_class`). A class no row is given keeps cleanlab's scaling; cleanlab's row
    scaling is applied last in every case (a no-op when the solve was exact). "posterior" then
    refines that joint with `labelgate.stages.label_issues.experimental.posterior_joint`.

    Parameters
    ----------
    labels : IntArray, shape (n,)
        Given class codes 0..k-1.
    probs : FloatArray, shape (n, k)
        Out-of-fold predicted probabilities.
    calibration : str
        One of `JOINT_CALIBRATIONS` other than "auto"; "cleanlab" is cleanlab's own scaling.

    Returns
    -------
    IntArray, shape (k, k)
        The calibrated confident joint (given label i, true label j).
    """
    from cleanlab.count import calibrate_confident_joint, compute_confident_joint

    labels = np.asarray(labels, dtype=np.int64)
    k = probs.shape[1]
    raw = np.asarray(compute_confident_joint(labels, probs, calibrate=False), dtype=np.float64)
    counts = np.bincount(labels, minlength=k).astype(np.float64)
    seen = counts > 0
    if calibration in COUNTING_CALIBRATIONS and seen.sum() >= 2:
        raw = _scaled_per_true_class(raw, counts, seen=seen)
    joint = np.asarray(calibrate_confident_joint(np.rint(raw).astype(np.int64), labels),
                       dtype=np.int64)
    if calibration == "posterior" and seen.sum() >= 2:
        return posterior_joint(labels, probs, joint)
    return joint


def _scaled_per_true_class(
    raw: npt.NDArray[np.float64], counts: npt.NDArray[np.float64], *, seen: BoolArray
) -> npt.NDArray[np.float64]:
    """The uncalibrated confident joint with each true-class column scaled by 1 / a[j].

    The factors solve sum_j raw[i, j] / a[j] = counts[i] over the seen classes by bounded
    least squares, 1 <= 1/a[j] <= ``MAX_INV_RATE`` (a class counted at under a quarter of its
    rows is too thinly seen to scale up further). Rows of seen classes counted into an unseen
    class's column keep factor 1.

    Parameters
    ----------
    raw : ndarray of float64, shape (k, k)
        cleanlab's uncalibrated confident joint (given label i, true label j).
    counts : ndarray of float64, shape (k,)
        Rows given each label.
    seen : BoolArray, shape (k,)
        Classes given to at least one row.

    Returns
    -------
    ndarray of float64, shape (k, k)
        ``raw`` with column j multiplied by 1 / a[j] (1 for unseen classes).
    """
    from scipy.optimize import lsq_linear

    inv_rate = np.ones(len(counts))
    target = counts[seen] - raw[np.ix_(seen, ~seen)].sum(axis=1)
    fit = lsq_linear(raw[np.ix_(seen, seen)], target, bounds=(1.0, MAX_INV_RATE))
    inv_rate[seen] = fit.x
    scaled: npt.NDArray[np.float64] = raw * inv_rate[None, :]
    return scaled


def _flag_issues(
    labels: IntArray,
    probs: FloatArray,
    *,
    batched: bool,
    filter_by: str,
    batch_size: int,
    joint: IntArray | None = None,
    calibration: str = "per_class",
) -> BoolArray:
    if len(np.unique(labels)) < 2:
        return np.zeros(len(labels), dtype=bool)  # one class: nothing to confuse it with
    if batched:
        if joint is not None and calibration in COUNTING_CALIBRATIONS:
            return _flag_batched(labels, probs, joint=joint, batch_size=batch_size)
        from cleanlab.experimental.label_issues_batched import find_label_issues_batched

        mask = find_label_issues_batched(
            labels, probs, batch_size=batch_size, n_jobs=1, verbose=False, return_mask=True
        )
    elif filter_by in RANKED_FILTERS and joint is not None and calibration in COUNTING_CALIBRATIONS:
        return _flag_ranked(labels, probs, joint=joint, method=filter_by.removeprefix("low_"))
    else:
        from cleanlab.filter import find_label_issues as cl_find

        uses_joint = filter_by in ("prune_by_noise_rate", "prune_by_class", "both")
        mask = cl_find(
            labels, probs, filter_by=filter_by, n_jobs=1,
            confident_joint=joint if uses_joint else None,
        )
    return np.asarray(mask, dtype=bool)


def _flag_ranked(
    labels: IntArray, probs: FloatArray, *, joint: IntArray, method: str
) -> BoolArray:
    """The rows with the lowest label quality (cleanlab's score ``method``), as many as
    ``joint`` estimates are mislabelled; rows whose given label is the model's top class are
    not flagged (as in cleanlab's batched path; its ``low_self_confidence`` filter keeps
    them). cleanlab's ranked filter, counted by the per-class or the posterior joint."""
    from cleanlab.rank import get_label_quality_scores

    scores = get_label_quality_scores(labels, probs, method=method)
    return _cut(labels, probs, np.asarray(scores), count=int(joint.sum() - np.trace(joint)))


def _cut(labels: IntArray, probs: FloatArray, scores: npt.NDArray[np.floating[Any]], *,
         count: int) -> BoolArray:
    mask = np.zeros(len(labels), dtype=bool)
    mask[np.argsort(scores, kind="stable")[:count]] = True
    given = probs[np.arange(len(labels)), labels]
    mask &= given + 1e-6 < probs.max(axis=1)
    return mask


def _flag_batched(
    labels: IntArray, probs: FloatArray, *, joint: IntArray, batch_size: int
) -> BoolArray:
    """cleanlab's batched path with the number of issues taken from ``joint``.

    `LabelInspector` computes thresholds, then self-confidence scores, one batch at a time;
    the flags equal `_flag_ranked`'s with self_confidence, and as the joint and the scores are
    computed over all rows, it saves no memory here. The count comes from ``joint`` instead of
    cleanlab's uncalibrated count. As in ``find_label_issues_batched``: the lowest-scored rows
    are flagged, then rows whose given label is the model's top class are unflagged.

    Parameters
    ----------
    labels : IntArray, shape (n,)
        Given class codes 0..k-1.
    probs : FloatArray, shape (n, k)
        Out-of-fold probabilities.
    joint : IntArray, shape (k, k)
        The calibrated joint; its off-diagonal sum is the number of rows cut.
    batch_size : int
        Rows per batch.

    Returns
    -------
    BoolArray, shape (n,)
        The flagged rows.
    """
    from cleanlab.experimental.label_issues_batched import LabelInspector

    inspector = LabelInspector(num_class=probs.shape[1], verbose=False, n_jobs=1)
    starts = range(0, len(labels), batch_size)
    for i in starts:
        inspector.update_confident_thresholds(labels[i : i + batch_size], probs[i : i + batch_size])
    for i in starts:
        inspector.score_label_quality(labels[i : i + batch_size], probs[i : i + batch_size])
    scores = inspector.get_quality_scores()
    return _cut(labels, probs, scores, count=int(joint.sum() - np.trace(joint)))


def _quality(labels: IntArray, probs: FloatArray) -> npt.NDArray[np.float64]:
    from cleanlab.rank import get_label_quality_scores

    q = get_label_quality_scores(labels, probs, method="self_confidence")
    return np.clip(np.asarray(q, dtype=np.float64), 0.0, 1.0)


def _joint_and_health(
    labels: IntArray,
    probs: FloatArray,
    classes: Sequence[str],
    *,
    calibration: str,
    confident_joint: IntArray | None,
) -> tuple[pl.DataFrame, float]:
    """The estimated joint of (given, true) labels, long format, and the health score."""
    from cleanlab.count import estimate_joint
    from cleanlab.dataset import overall_label_health_score

    k = len(classes)
    present = np.unique(labels)
    if len(present) < 2 or confident_joint is None:
        # cleanlab needs at least two observed classes; one class has no confusion to estimate
        joint = np.zeros((k, k))
        for c in present:
            joint[c, c] = 1.0
        health = 1.0
    elif calibration in COUNTING_CALIBRATIONS:
        # the joint the flags were cut from; health = its trace (1 - the estimated noise rate)
        joint = np.asarray(
            estimate_joint(labels, probs, confident_joint=confident_joint), dtype=np.float64
        )
        health = float(
            overall_label_health_score(None, None, confident_joint=confident_joint, verbose=False)
        )
    else:
        joint = np.asarray(estimate_joint(labels, probs), dtype=np.float64)
        health = float(
            overall_label_health_score(labels, probs, confident_joint=None, verbose=False)
        )
    given, true = np.meshgrid(np.arange(k), np.arange(k), indexing="ij")
    frame = pl.DataFrame(
        {
            "given_label": [classes[int(i)] for i in given.ravel()],
            "true_label": [classes[int(j)] for j in true.ravel()],
            "joint": joint.ravel().astype(np.float64),
        }
    )
    return frame, health


def _per_class(table: pl.DataFrame, classes: Sequence[str]) -> pl.DataFrame:
    stats = table.group_by("given_label").agg(
        pl.len().cast(pl.Int64).alias("rows"),
        pl.col("is_label_issue").sum().cast(pl.Int64).alias("issues"),
        pl.col("label_quality").mean().alias("mean_label_quality"),
    )
    return (
        pl.DataFrame({"class": list(classes)})
        .join(stats, left_on="class", right_on="given_label", how="left", maintain_order="left")
        .with_columns(pl.col("rows", "issues").fill_null(0))
        .with_columns(
            pl.when(pl.col("rows") > 0)
            .then(pl.col("issues") / pl.col("rows"))
            .otherwise(0.0)
            .alias("issue_rate")
        )
        .select("class", "rows", "issues", "issue_rate", "mean_label_quality")
    )


def _rank(quality: npt.NDArray[np.float64]) -> IntArray:
    """1 for the lowest quality, ties in row order (a stable sort's ranks)."""
    order = _float32_order(quality)
    if order is None:
        order = np.argsort(quality, kind="stable")
    rank = np.empty(len(quality), dtype=np.int64)
    rank[order] = np.arange(1, len(quality) + 1)
    return rank


def _float32_order(values: npt.NDArray[np.float64]) -> IntArray | None:
    """``np.argsort(values, kind="stable")`` by one plain sort of 64-bit keys, when every
    value is a float32 (label quality from float32 probabilities: a night's) and none is
    NaN: each key is the value's float32 bits, mapped so that integer order is float order
    (-0.0 as 0.0), above the row number, so keys are unique and ties keep row order.
    None when it does not apply."""
    n = len(values)
    if n >= 2**32:
        return None
    narrow = values.astype(np.float32)
    if np.isnan(narrow).any() or not np.array_equal(narrow.astype(np.float64), values):
        return None
    bits = (narrow + np.float32(0.0)).view(np.uint32)  # + 0.0: -0.0 becomes 0.0
    sign = np.uint32(0x80000000)
    ordered = np.where(bits & sign, ~bits, bits | sign).astype(np.uint64)
    keys = (ordered << np.uint64(32)) | np.arange(n, dtype=np.uint64)
    keys.sort()
    order: IntArray = (keys & np.uint64(0xFFFFFFFF)).astype(np.int64)
    return order


@dataclass(frozen=True)
class _Flagger:
    """How rows are flagged once the probabilities are known (every "auto" resolved).

    ``labels`` (shape (n,)) are the judged class codes; ``filter_by``, ``calibration``,
    ``batched``, ``batch_size`` and ``max_label_quality`` are `find_label_issues`'s options.
    """

    labels: IntArray
    filter_by: str
    calibration: str
    batched: bool
    batch_size: int
    max_label_quality: float | None
    ranked: bool = False  # the final flags: the count of `flag`, the lowest label quality

    def joint(self, probs: FloatArray) -> IntArray | None:
        """The calibrated confident joint, shape (k, k); None with fewer than two classes."""
        if len(np.unique(self.labels)) < 2:
            return None
        return estimate_confident_joint(self.labels, probs, calibration=self.calibration)

    def flag(self, probs: FloatArray, joint: IntArray | None) -> BoolArray:
        """The flagged rows, shape (n,), from ``probs`` (n, k) and ``joint`` (k, k)."""
        mask = _flag_issues(
            self.labels, probs, batched=self.batched, filter_by=self.filter_by,
            batch_size=self.batch_size, joint=joint, calibration=self.calibration,
        )
        if self.max_label_quality is not None:
            mask &= _quality(self.labels, probs) < self.max_label_quality
        return mask

    def leave_out(self, first: FloatArray, *, rows: IntArray | None = None) -> BoolArray:
        """The rows a second pass leaves out of training: the first pass's flags, shape (n,);
        with ``rows`` (m,), the flags of those rows alone from their probabilities ``first``
        (m, k) (a training sample: `labelgate.stages.label_issues.sampled`), shape (m,)."""
        flagger = self if rows is None else replace(self, labels=self.labels[rows])
        return flagger.flag(first, flagger.joint(first))

    @property
    def name(self) -> str:
        """The filter that ran, as the report names it."""
        if not self.batched:
            return f"{self.filter_by}, ranked" if self.ranked else self.filter_by
        if self.calibration in COUNTING_CALIBRATIONS:
            return "low_self_confidence (batched)"
        return "find_label_issues_batched"
