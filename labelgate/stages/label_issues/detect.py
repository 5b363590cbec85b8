"""Label-issue detection: which rows carry a label that is probably wrong.

Three ways to get the predicted probabilities that confident learning needs:

* ``cross_validated`` (default): out-of-fold probabilities from a model trained here
  (:func:`labelgate.stages.label_issues.models.out_of_fold`).
* ``predictions``: probabilities supplied by the user (e.g. from a larger model), validated by
  :func:`validate_predictions`.
* ``multiannotator``: a long annotations frame (item, annotator, label) and CROWDLAB
  (``cleanlab.multiannotator.get_label_quality_multiannotator``) with out-of-fold
  probabilities: consensus label and its quality per item, quality per annotator.

Then cleanlab scores every row (self-confidence label quality, 0..1), flags issues and estimates
the noise matrix and an overall health score, from a confident joint that by default is
corrected per true class (`estimate_confident_joint`). Above ``batched_min_rows`` rows (or
with ``batched=True``) the flags come from cleanlab's batched path (``LabelInspector``, one
batch at a time; with ``joint_calibration="cleanlab"``, ``find_label_issues_batched`` as is).
The posterior joint (``joint_calibration="posterior"``) is research code kept in
`labelgate.stages.label_issues.experimental` and re-exported here. What was measured, and on which
data, is in
``docs/benchmarks/label-issues.md``.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from labelgate.errors import InputError
from labelgate.partition import Mapper, serial_map
from labelgate.stages.label_issues.experimental import POSTERIOR_MAX_ITER as POSTERIOR_MAX_ITER
from labelgate.stages.label_issues.experimental import POSTERIOR_SHARPEN as POSTERIOR_SHARPEN
from labelgate.stages.label_issues.experimental import posterior_joint as posterior_joint
from labelgate.stages.label_issues.models import TABULAR_ENSEMBLE_MAX_ROWS, out_of_fold

__all__ = [
    "JOINT_CALIBRATIONS",
    "METHODS",
    "LabelIssuesResult",
    "accept_reviewed",
    "estimate_confident_joint",
    "find_label_issues",
    "validate_predictions",
]

METHODS = ("cross_validated", "predictions", "multiannotator")
# How the confident joint (counts of given label i, true label j) is scaled to the dataset:
# "per_class" first corrects each true class for how often its rows are counted confidently
# (`estimate_confident_joint`), then does cleanlab's per-given-label scaling; "cleanlab" does
# only the latter (cleanlab's default); "posterior" refines the per_class joint into the sum of
# each row's posterior over its true class (`posterior_joint`); "auto" is posterior for the
# small-table model with a ranked cut, per_class elsewhere.
JOINT_CALIBRATIONS = ("auto", "per_class", "posterior", "cleanlab")
# the calibrations whose joint sets the count of a ranked cut (and the health score)
COUNTING_CALIBRATIONS = ("per_class", "posterior")
# bound of 1 / (the share of a true class's rows the confident joint counts): see
# estimate_confident_joint
MAX_INV_RATE = 4.0
# filters that cut a ranking (with per_class or posterior: as many rows as the joint says are
# mislabelled)
RANKED_FILTERS = ("low_self_confidence", "low_normalized_margin")
# filters whose number of flags comes from the joint (per-pair pruning or a ranked cut)
JOINT_COUNTED_FILTERS = ("both", "prune_by_noise_rate", "prune_by_class", *RANKED_FILTERS)
FILTERS = ("auto", "prune_by_noise_rate", "prune_by_class", "both", "confident_learning",
           "predicted_neq_given", "low_self_confidence", "low_normalized_margin")

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

TABLE_SCHEMA: dict[str, type[pl.DataType]] = {
    "given_label": pl.String,
    "suggested_label": pl.String,
    "label_quality": pl.Float64,
    "is_label_issue": pl.Boolean,
    "rank": pl.Int64,
}


@dataclass(frozen=True)
class LabelIssuesResult:
    """What the label-issue stage found.

    ``table`` has one row per input row, in input order: ``id`` (the values of the id column,
    dtype kept; named ``id`` whatever the column is called, as the warehouse table is),
    ``given_label``, ``suggested_label``, ``label_quality`` (0..1, low = suspicious),
    ``is_label_issue`` and ``rank`` (1 = most suspicious, by label_quality ascending, ties by
    input order). The multiannotator method adds ``consensus_label``, ``num_annotations`` and
    ``annotator_agreement``.
    ``noise_matrix`` is cleanlab's estimated joint distribution, long format
    (given_label, true_label, joint), summing to 1.
    """

    method: str
    path: str
    classes: list[str]
    table: pl.DataFrame
    noise_matrix: pl.DataFrame
    health_score: float
    per_class: pl.DataFrame
    annotators: pl.DataFrame | None = None
    probabilities: FloatArray | None = None  # rows x classes, float32, out of fold
    filter_by: str = "both"  # the filter that ran ("auto" resolved)
    joint_calibration: str = "per_class"  # the joint that set the count ("auto" resolved)
    passes: int = 1  # 2: models trained again without the first pass's flagged rows
    left_out: int = 0  # rows the second pass did not train on

    def probability_frame(self) -> pl.DataFrame:
        """id + one float32 column per class (what the review queue reads)."""
        if self.probabilities is None:
            return pl.DataFrame({"id": self.table.get_column("id")})
        cols = {c: self.probabilities[:, i] for i, c in enumerate(self.classes)}
        return pl.DataFrame({"id": self.table.get_column("id"), **cols})

    @property
    def issue_rate(self) -> float:
        """Share of rows flagged as label issues (0 for an empty table)."""
        n = self.table.height
        return float(self.table.get_column("is_label_issue").sum()) / n if n else 0.0

    @property
    def issue_ids(self) -> pl.Series:
        """Ids of the flagged rows, most suspicious first."""
        flagged = self.table.filter(pl.col("is_label_issue")).sort("rank")
        return flagged.get_column("id")


# --------------------------------------------------------------------------- validation


def _check_columns(df: pl.DataFrame, columns: Sequence[str], *, source: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise InputError(
            f"{source}: column(s) {missing} not found; available columns: {df.columns}"
        )


def _ids_preview(ids: Sequence[object], limit: int = 5) -> str:
    shown = ", ".join(repr(i) for i in list(ids)[:limit])
    more = len(ids) - limit
    return shown + (f" and {more} more" if more > 0 else "")


def _check_ids(ids: pl.Series, *, source: str, id_column: str) -> None:
    nulls = ids.null_count()
    if nulls:
        raise InputError(f"{source}: column '{id_column}' has {nulls} null id(s), expected none")
    dup = ids.filter(ids.is_duplicated()).unique(maintain_order=True)
    if dup.len():
        raise InputError(
            f"{source}: column '{id_column}' has duplicate id(s) {_ids_preview(dup.to_list())}, "
            "expected unique ids"
        )


def validate_predictions(
    predictions: pl.DataFrame,
    *,
    ids: pl.Series,
    classes: Sequence[str],
    id_column: str,
    source: str = "predictions",
    tolerance: float = 0.01,
) -> FloatArray:
    """Check user-supplied probabilities and return them aligned with ``ids`` and ``classes``.

    Extra columns are ignored. Text columns (a CSV file is read as text) are parsed as numbers.

    Parameters
    ----------
    predictions : pl.DataFrame
        One row per id: ``id_column`` and one probability column per class.
    ids : pl.Series, length n
        The data's ids, in data order.
    classes : sequence of str, length k
        The class order of the output columns.
    id_column : str
        The id column of ``predictions``.
    source : str
        Names ``predictions`` in error messages.
    tolerance : float
        How far from 1 a row's sum may be.

    Returns
    -------
    FloatArray, shape (n, k)
        float32 probabilities, rows aligned with ``ids``, each row renormalised to sum to 1.

    Raises
    ------
    InputError
        Naming the problem: missing id or class column, duplicate id, id in the predictions
        that is not in the data, data id without predictions, a value that is not a number,
        null/NaN/inf or negative probability, or a row not summing to 1 within ``tolerance``.
    """
    _check_prediction_columns(predictions, classes, id_column=id_column, source=source)
    predictions = _numeric_classes(predictions, classes, id_column=id_column, source=source)
    want = ids.cast(pl.String)
    _check_prediction_ids(predictions, want, id_column=id_column, source=source)
    aligned = pl.DataFrame({id_column: want}).join(
        predictions.select(pl.col(id_column).cast(pl.String), *[pl.col(c) for c in classes]),
        on=id_column,
        how="left",
        maintain_order="left",
    )
    probs = aligned.select([pl.col(c).cast(pl.Float64) for c in classes]).to_numpy()
    row_ids = aligned.get_column(id_column).to_list()
    _check_finite_nonnegative(probs, row_ids=row_ids, classes=classes, source=source)
    sums = _checked_row_sums(
        probs, row_ids=row_ids, classes=classes, source=source, tolerance=tolerance,
        unused=_unused_columns(predictions, classes, id_column=id_column),
    )
    normalised: FloatArray = (probs / sums[:, None]).astype(np.float32)
    return normalised


def _unused_columns(
    predictions: pl.DataFrame, classes: Sequence[str], *, id_column: str
) -> list[str]:
    """The columns of ``predictions`` that are neither the id column nor a class.

    Parameters
    ----------
    predictions : pl.DataFrame
        The supplied predictions.
    classes : sequence of str
        The class names.
    id_column : str
        The id column.

    Returns
    -------
    list of str
        Column names, in frame order.
    """
    return [c for c in predictions.columns if c != id_column and c not in classes]


def _check_prediction_columns(
    predictions: pl.DataFrame, classes: Sequence[str], *, id_column: str, source: str
) -> None:
    """Raise InputError unless ``predictions`` has ``id_column`` and a column per class.

    Parameters
    ----------
    predictions : pl.DataFrame
        The supplied predictions.
    classes : sequence of str
        The class names, each wanted as a column.
    id_column : str
        The id column.
    source : str
        Names ``predictions`` in error messages.
    """
    _check_columns(predictions, [id_column], source=source)
    missing = [c for c in classes if c not in predictions.columns]
    if missing:
        unused = _unused_columns(predictions, classes, id_column=id_column)
        hint = f"; column(s) not used: {unused}" if unused else ""
        raise InputError(
            f"{source}: missing probability column(s) for class(es) {missing}; expected one "
            f"column per class {list(classes)} plus '{id_column}'{hint}"
        )


def _check_prediction_ids(
    predictions: pl.DataFrame, want: pl.Series, *, id_column: str, source: str
) -> None:
    """Raise InputError unless the prediction ids are unique and exactly the data's ids.

    Parameters
    ----------
    predictions : pl.DataFrame
        The supplied predictions, with ``id_column``.
    want : pl.Series of str, length n
        The data's ids, as text.
    id_column : str
        The id column of ``predictions``.
    source : str
        Names ``predictions`` in error messages.
    """
    pred_ids = predictions.get_column(id_column).cast(pl.String)
    _check_ids(pred_ids, source=source, id_column=id_column)
    unknown = pred_ids.filter(~pred_ids.is_in(want.implode()))
    if unknown.len():
        raise InputError(
            f"{source}: {unknown.len()} row(s) with unknown id(s) {_ids_preview(unknown.to_list())}"
            f" in column '{id_column}', expected only ids present in the data"
        )
    absent = want.filter(~want.is_in(pred_ids.implode()))
    if absent.len():
        raise InputError(
            f"{source}: no predictions for {absent.len()} id(s) "
            f"{_ids_preview(absent.to_list())}, expected one row per data id"
        )


def _check_finite_nonnegative(
    probs: npt.NDArray[np.float64],
    *,
    row_ids: Sequence[object],
    classes: Sequence[str],
    source: str,
) -> None:
    """Raise InputError at the first null/NaN/inf or negative probability.

    Parameters
    ----------
    probs : ndarray of float64, shape (n, k)
        Probabilities aligned with ``row_ids`` and ``classes`` (NaN where null).
    row_ids : sequence, length n
        The id of each row, for the message.
    classes : sequence of str, length k
        The class of each column, for the message.
    source : str
        Names the predictions in error messages.
    """
    bad = ~np.isfinite(probs)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise InputError(
            f"{source}: row for id {row_ids[r]!r} has probability {probs[r, c]} in column "
            f"'{classes[c]}' ({int(bad.any(axis=1).sum())} row(s) with null/NaN/inf), "
            "expected a finite number in [0, 1]"
        )
    neg = probs < 0
    if neg.any():
        r, c = np.argwhere(neg)[0]
        raise InputError(
            f"{source}: row for id {row_ids[r]!r} has negative probability {probs[r, c]:.4g} "
            f"in column '{classes[c]}' ({int(neg.any(axis=1).sum())} row(s)), expected >= 0"
        )


def _checked_row_sums(
    probs: npt.NDArray[np.float64],
    *,
    row_ids: Sequence[object],
    classes: Sequence[str],
    source: str,
    tolerance: float,
    unused: list[str],
) -> npt.NDArray[np.float64]:
    """The row sums of ``probs``; InputError at the first row not within ``tolerance`` of 1.

    Parameters
    ----------
    probs : ndarray of float64, shape (n, k)
        Finite, non-negative probabilities.
    row_ids : sequence, length n
        The id of each row, for the message.
    classes : sequence of str, length k
        The class of each column, for the message.
    source : str
        Names the predictions in error messages.
    tolerance : float
        How far from 1 a sum may be.
    unused : list of str
        Columns of the predictions that are not classes (named in the message as a hint).

    Returns
    -------
    ndarray of float64, shape (n,)
        Each row's sum.
    """
    sums: npt.NDArray[np.float64] = probs.sum(axis=1)
    off = np.abs(sums - 1.0) > tolerance
    if off.any():
        r = int(np.flatnonzero(off)[0])
        hint = (
            f"; column(s) {unused} are not classes: a class no row has yet must be listed "
            "in the label column's contract isin" if unused else ""
        )
        raise InputError(
            f"{source}: row for id {row_ids[r]!r} sums to {sums[r]:.4g} over the classes "
            f"{list(classes)}, expected 1 ± {tolerance} ({int(off.sum())} row(s) off; are the "
            f"columns probabilities, not logits?){hint}"
        )
    return sums


def _numeric_classes(
    predictions: pl.DataFrame, classes: Sequence[str], *, id_column: str, source: str
) -> pl.DataFrame:
    """The class columns as Float64: text (how CSV columns arrive) is parsed, and a value
    that is not a number is an error naming its id and column."""
    casts: list[pl.Expr] = []
    for c in classes:
        dtype = predictions.schema[c]
        if dtype.is_numeric():
            continue
        if dtype not in (pl.String, pl.Categorical) and not isinstance(dtype, pl.Enum):
            raise InputError(f"{source}: column '{c}' has dtype {dtype}, expected numeric")
        text = pl.col(c).cast(pl.String).str.strip_chars()
        parsed = text.cast(pl.Float64, strict=False)
        bad = predictions.filter(text.is_not_null() & (text != "") & parsed.is_null())
        if bad.height:
            row = bad.row(0, named=True)
            raise InputError(
                f"{source}: row for id {str(row[id_column])!r} has {row[c]!r} in column '{c}' "
                f"({bad.height} row(s) not numbers), expected a probability in [0, 1]"
            )
        casts.append(parsed.alias(c))
    return predictions.with_columns(casts) if casts else predictions


# --------------------------------------------------------------------------- cleanlab


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


def accept_reviewed(result: LabelIssuesResult, ids: Collection[str]) -> LabelIssuesResult:
    """The result with rows whose label a person reviewed (``ids``: their current label is
    the reviewer's) no longer flagged: a human-checked label is not a probable error, must
    not be relabelled or dropped by the split policy, nor sent back for review. The model's
    suggestion and quality stay in the table; per-class counts follow."""
    if not ids:
        return result
    reviewed = pl.col("id").cast(pl.String).is_in(pl.Series(list(ids), dtype=pl.String).implode())
    table = result.table.with_columns(pl.col("is_label_issue") & ~reviewed)
    return replace(result, table=table, per_class=_per_class(table, result.classes))


def _rank(quality: npt.NDArray[np.float64]) -> IntArray:
    order = np.argsort(quality, kind="stable")
    rank = np.empty(len(quality), dtype=np.int64)
    rank[order] = np.arange(1, len(quality) + 1)
    return rank


# --------------------------------------------------------------------------- multiannotator


def _annotation_matrix(
    annotations: pl.DataFrame,
    *,
    ids: pl.Series,
    id_column: str,
    annotator_column: str,
    label_column: str,
    classes: Sequence[str],
    source: str,
) -> tuple[npt.NDArray[np.float64], list[str]]:
    """Items x annotators matrix of class codes, NaN where the annotator did not label the item.

    Annotators without any label are dropped; unknown item ids and labels outside ``classes``
    are input errors; repeated (item, annotator) pairs keep the last label.
    """
    _check_columns(annotations, [id_column, annotator_column, label_column], source=source)
    ann = annotations.select(
        pl.col(id_column).cast(pl.String).alias("item"),
        pl.col(annotator_column).cast(pl.String).alias("annotator"),
        pl.col(label_column).cast(pl.String).alias("label"),
    ).filter(pl.col("label").is_not_null() & pl.col("annotator").is_not_null())
    want = ids.cast(pl.String)
    unknown = ann.filter(~pl.col("item").is_in(want.implode())).get_column("item").unique()
    if unknown.len():
        raise InputError(
            f"{source}: column '{id_column}' has {unknown.len()} item id(s) not in the data: "
            f"{_ids_preview(sorted(unknown.to_list()))}"
        )
    bad = ann.filter(~pl.col("label").is_in(list(classes))).get_column("label").unique()
    if bad.len():
        raise InputError(
            f"{source}: column '{label_column}' has label(s) {sorted(bad.to_list())} outside "
            f"the classes {list(classes)}"
        )
    ann = ann.unique(subset=["item", "annotator"], keep="last", maintain_order=True)
    annotators = sorted(ann.get_column("annotator").unique().to_list())
    row_of = pl.DataFrame({"item": want, "row": np.arange(want.len(), dtype=np.int64)})
    codes = (
        ann.join(row_of, on="item", how="inner")
        .with_columns(
            pl.col("label").replace_strict(list(classes), list(range(len(classes))),
                                           return_dtype=pl.Int64).alias("code"),
            pl.col("annotator").replace_strict(annotators, list(range(len(annotators))),
                                               return_dtype=pl.Int64).alias("col"),
        )
    )
    mat = np.full((want.len(), len(annotators)), np.nan)
    mat[codes.get_column("row").to_numpy(), codes.get_column("col").to_numpy()] = codes.get_column(
        "code"
    ).to_numpy()
    return mat, annotators


def _majority(mat: npt.NDArray[np.float64], k: int) -> npt.NDArray[np.int64]:
    """Majority vote per row (ties -> lowest class code); -1 where the row has no label."""
    counts = np.zeros((mat.shape[0], k), dtype=np.int64)
    for c in range(k):
        counts[:, c] = (mat == c).sum(axis=1)
    vote: npt.NDArray[np.int64] = counts.argmax(axis=1).astype(np.int64)
    vote[counts.sum(axis=1) == 0] = -1
    return vote


# --------------------------------------------------------------------------- entry point


@dataclass(frozen=True)
class _Labels:
    """The classes and the label each row is judged on.

    ``judged`` (shape (n,), codes into ``classes``) is the dataset's label or, for the
    multiannotator method where the dataset has none, the annotators' majority vote.
    ``annotations`` (shape (n, annotators), class codes, NaN where not labelled) and
    ``annotators`` (their names) are set for the multiannotator method only.
    """

    classes: list[str]
    judged: IntArray
    annotations: npt.NDArray[np.float64] | None = None
    annotators: tuple[str, ...] = ()


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

    def leave_out(self, first: FloatArray) -> BoolArray:
        """The rows a second pass leaves out of training: the first pass's flags, shape (n,)."""
        return self.flag(first, self.joint(first))

    @property
    def name(self) -> str:
        """The filter that ran, as the report names it."""
        if not self.batched:
            return self.filter_by
        if self.calibration in COUNTING_CALIBRATIONS:
            return "low_self_confidence (batched)"
        return "find_label_issues_batched"


def _checked_ids(
    df: pl.DataFrame, columns: Sequence[str], *, id_column: str, source: str
) -> pl.Series:
    """The id column of ``df``, once ``columns`` are present and the ids unique and non-null.

    Parameters
    ----------
    df : pl.DataFrame, n rows
        The items.
    columns : sequence of str
        Columns ``df`` must have.
    id_column, source : str
        The id column and the frame's name (for error messages).

    Returns
    -------
    pl.Series, length n
        The ids, dtype kept.
    """
    _check_columns(df, columns, source=source)
    ids = df.get_column(id_column)
    _check_ids(ids, source=source, id_column=id_column)
    return ids


def _check_options(method: str, *, filter_by: str, joint_calibration: str, passes: int) -> None:
    """Raise InputError naming the first option that is not one of its allowed values.

    Parameters
    ----------
    method, filter_by, joint_calibration : str
        Checked against `METHODS`, `FILTERS` and `JOINT_CALIBRATIONS`.
    passes : int
        Must be the integer 1 or 2 (not a bool).
    """
    if method not in METHODS:
        raise InputError(f"label_issues.method: got {method!r}, expected one of {list(METHODS)}")
    if filter_by not in FILTERS:
        raise InputError(
            f"label_issues.filter_by: got {filter_by!r}, expected one of {list(FILTERS)}"
        )
    if joint_calibration not in JOINT_CALIBRATIONS:
        raise InputError(
            f"label_issues.joint_calibration: got {joint_calibration!r}, expected one of "
            f"{list(JOINT_CALIBRATIONS)}"
        )
    if type(passes) is not int or passes not in (1, 2):
        raise InputError(f"label_issues.passes: got {passes!r}, expected 1 or 2")


def _resolve_labels(
    df: pl.DataFrame,
    *,
    ids: pl.Series,
    id_column: str,
    label_column: str,
    classes: Sequence[str] | None,
    annotations: pl.DataFrame | None,
    annotator_column: str,
    annotation_label_column: str | None,
    multiannotator: bool,
    source: str,
) -> _Labels:
    """The classes, each row's judged label and (multiannotator) the annotation matrix.

    Parameters
    ----------
    df : pl.DataFrame, n rows
        The items, with ``label_column`` (string labels; nulls only when ``multiannotator``).
    ids : pl.Series, length n
        The items' ids (checked unique and non-null), from ``id_column``.
    classes : sequence of str, optional
        The class order (default: the labels seen, sorted).
    annotations, annotator_column, annotation_label_column
        The multiannotator method's long frame and its columns (`_annotated`).
    multiannotator : bool
        Whether the labels come from annotators (CROWDLAB).
    source : str
        Names ``df`` in error messages.

    Returns
    -------
    _Labels
        At least two classes; every row has a judged label.
    """
    given = df.get_column(label_column).cast(pl.String)
    mat: npt.NDArray[np.float64] | None = None
    names: list[str] = []
    if multiannotator:
        cls, mat, names = _annotated(
            given, annotations, classes, ids=ids, id_column=id_column,
            annotator_column=annotator_column, label_column=label_column,
            ann_label=annotation_label_column or label_column, source=source,
        )
    else:
        _check_no_null_labels(given, ids=ids, label_column=label_column, source=source)
        cls = list(classes) if classes is not None else sorted(set(given.to_list()))
    _check_classes(given, cls, label_column=label_column, source=source)
    code_of = {c: i for i, c in enumerate(cls)}
    given_codes = np.asarray(
        given.replace_strict(code_of, default=-1, return_dtype=pl.Int64).to_numpy(),
        dtype=np.int64,
    )
    if mat is None:
        return _Labels(cls, given_codes.copy())
    judged = _majority_fallback(given_codes, mat, n_classes=len(cls), ids=ids,
                                label_column=label_column)
    return _Labels(cls, judged, mat, tuple(names))


def _annotated(
    given: pl.Series,
    annotations: pl.DataFrame | None,
    classes: Sequence[str] | None,
    *,
    ids: pl.Series,
    id_column: str,
    annotator_column: str,
    label_column: str,
    ann_label: str,
    source: str,
) -> tuple[list[str], npt.NDArray[np.float64], list[str]]:
    """The multiannotator method's classes and annotation matrix.

    Parameters
    ----------
    given : pl.Series of str, length n
        The items' own labels (null where an item has none), from ``label_column``.
    annotations : pl.DataFrame, optional
        The long frame: ``id_column``, ``annotator_column``, ``ann_label``; None is an error.
    classes : sequence of str, optional
        The class order, if fixed.
    ids : pl.Series, length n
        The items' ids.
    source : str
        Names the items in error messages.

    Returns
    -------
    classes : list of str
        The class names (`_annotated_classes`).
    matrix : ndarray of float64, shape (n, annotators)
        Class codes, NaN where the annotator did not label the item (`_annotation_matrix`).
    annotators : list of str
        The annotators' names, one per column.
    """
    if annotations is None:
        raise InputError("label_issues.method 'multiannotator' needs an annotations frame")
    cls = _annotated_classes(given, annotations, classes, ann_label=ann_label,
                             label_column=label_column, source=source)
    mat, names = _annotation_matrix(
        annotations, ids=ids, id_column=id_column, annotator_column=annotator_column,
        label_column=ann_label, classes=cls, source="annotations",
    )
    return cls, mat, names


def _annotated_classes(
    given: pl.Series,
    annotations: pl.DataFrame,
    classes: Sequence[str] | None,
    *,
    ann_label: str,
    label_column: str,
    source: str,
) -> list[str]:
    """The classes of the multiannotator method: ``classes``, or every label seen, sorted.

    Parameters
    ----------
    given : pl.Series of str, length n
        The items' own labels (null where an item has none).
    annotations : pl.DataFrame
        The long annotations frame.
    classes : sequence of str, optional
        The class order, if fixed.
    ann_label, label_column : str
        The annotations' label column and the items' label column.
    source : str
        Names the items in error messages.

    Returns
    -------
    list of str
        The class names.

    Raises
    ------
    InputError
        If the items and the annotators share no label (two label scales: every row would
        disagree with every annotator).
    """
    seen = set(given.drop_nulls().to_list())
    if ann_label in annotations.columns:
        voted = set(annotations.get_column(ann_label).cast(pl.String).drop_nulls().to_list())
        if seen and voted and not seen & voted:
            raise InputError(
                f"annotations: column '{ann_label}' has labels {sorted(voted)[:8]} and "
                f"{source} column '{label_column}' has {sorted(seen)[:8]}: no label in "
                "common, so CROWDLAB cannot compare them; map both to one set of classes"
            )
        seen |= voted
    return list(classes) if classes is not None else sorted(seen)


def _check_no_null_labels(
    given: pl.Series, *, ids: pl.Series, label_column: str, source: str
) -> None:
    """Raise InputError naming the ids of rows without a label.

    Parameters
    ----------
    given : pl.Series of str, length n
        The labels.
    ids : pl.Series, length n
        The ids, for the message.
    label_column, source : str
        The label column and the frame's name, for the message.
    """
    nulls = given.is_null()
    if nulls.any():
        bad_ids = ids.filter(nulls).to_list()
        raise InputError(
            f"{source}: column '{label_column}' is null for {len(bad_ids)} row(s) "
            f"(ids {_ids_preview(bad_ids)}), expected a label on every row"
        )


def _check_classes(
    given: pl.Series, classes: list[str], *, label_column: str, source: str
) -> None:
    """Raise InputError if a label is outside ``classes`` or there are fewer than two classes.

    Parameters
    ----------
    given : pl.Series of str, length n
        The labels (nulls ignored).
    classes : list of str
        The class names.
    label_column, source : str
        The label column and the frame's name, for the message.
    """
    labelled = given.drop_nulls()
    unknown = labelled.filter(~labelled.is_in(classes)).unique()
    if unknown.len():
        raise InputError(
            f"{source}: column '{label_column}' has label(s) {sorted(unknown.to_list())} "
            f"outside the classes {classes}"
        )
    if len(classes) < 2:
        raise InputError(
            f"{source}: column '{label_column}' has {len(classes)} class(es) {classes}, "
            "expected >= 2"
        )


def _majority_fallback(
    given_codes: IntArray,
    mat: npt.NDArray[np.float64],
    *,
    n_classes: int,
    ids: pl.Series,
    label_column: str,
) -> IntArray:
    """Each row's own label code or, where it has none, the annotators' majority vote.

    Parameters
    ----------
    given_codes : IntArray, shape (n,)
        Class codes of the items' own labels, -1 where an item has none.
    mat : ndarray of float64, shape (n, annotators)
        Annotation class codes, NaN where the annotator did not label the item.
    n_classes : int
        The number of classes, k.
    ids : pl.Series, length n
        The ids, for the message.
    label_column : str
        The items' label column, for the message.

    Returns
    -------
    IntArray, shape (n,)
        Class codes, every one >= 0.

    Raises
    ------
    InputError
        If an item has neither a label nor an annotation.
    """
    vote = _majority(mat, n_classes)
    judged = np.where(given_codes >= 0, given_codes, vote)
    unlabeled = judged < 0
    if unlabeled.any():
        bad_ids = ids.filter(pl.Series(unlabeled)).to_list()
        raise InputError(
            f"annotations: {len(bad_ids)} item(s) have no annotation and no "
            f"'{label_column}' value (ids {_ids_preview(bad_ids)}): nothing to check"
        )
    return judged


def _supplied_probabilities(
    pred_probs: FloatArray | None,
    predictions: pl.DataFrame | None,
    *,
    method: str,
    ids: pl.Series,
    classes: list[str],
    id_column: str,
) -> FloatArray | None:
    """The probabilities the caller supplied, checked; None when the model must make them.

    Parameters
    ----------
    pred_probs : FloatArray, shape (n, k), optional
        Out-of-fold probabilities from the caller (take precedence).
    predictions : pl.DataFrame, optional
        The ``predictions`` method's frame (`validate_predictions`).
    method : str
        The resolved method.
    ids : pl.Series, length n
        The data's ids.
    classes : list of str, length k
        The class order.
    id_column : str
        The id column of ``predictions``.

    Returns
    -------
    FloatArray, shape (n, k), or None
        float32 probabilities aligned with ``ids`` and ``classes``.
    """
    if pred_probs is not None:
        probs = np.asarray(pred_probs, dtype=np.float32)
        if probs.shape != (ids.len(), len(classes)):
            raise InputError(
                f"label_issues: pred_probs has shape {probs.shape}, expected "
                f"({ids.len()}, {len(classes)})"
            )
        if not np.isfinite(probs).all():
            bad = np.flatnonzero(~np.isfinite(probs).all(axis=1))
            raise InputError(
                f"label_issues: pred_probs has NaN or inf in {len(bad)} row(s) (ids "
                f"{_ids_preview(ids.gather(bad[:5]).to_list())})"
            )
        return probs
    if method == "predictions":
        if predictions is None:
            raise InputError("label_issues.method 'predictions' needs a predictions frame")
        return validate_predictions(
            predictions, ids=ids, classes=classes, id_column=id_column, source="predictions"
        )
    return None


def _plan_flags(
    labels: IntArray,
    *,
    builtin_tabular: bool,
    n_rows: int,
    supplied: bool,
    filter_by: str,
    joint_calibration: str,
    batched: bool | None,
    batched_min_rows: int,
    batch_size: int,
    max_label_quality: float | None,
) -> _Flagger:
    """Resolve the "auto" options of `find_label_issues` into a `_Flagger`.

    ``filter_by="auto"`` is a ranked cut ("low_self_confidence") for the built-in model on
    feature columns only, "both" elsewhere. ``joint_calibration="auto"`` is "posterior" for
    that model up to ``TABULAR_ENSEMBLE_MAX_ROWS`` rows (the small-table ensemble whose
    probabilities `posterior_joint` was tuned on) with a ranked cut (the batched path is one)
    and no supplied probabilities, "per_class" elsewhere. docs/benchmarks/label-issues.md
    has the measurements behind both choices.

    Parameters
    ----------
    labels : IntArray, shape (n,)
        The judged class codes.
    builtin_tabular : bool
        Whether the built-in model scores feature columns only (cross_validated, no text).
    n_rows : int
        The number of rows, n.
    supplied : bool
        Whether the caller passed ``pred_probs``.
    filter_by, joint_calibration, batched, batched_min_rows, batch_size, max_label_quality
        `find_label_issues`'s options.

    Returns
    -------
    _Flagger
        With no option left "auto" and ``batched`` decided.
    """
    if filter_by == "auto":
        filter_by = "low_self_confidence" if builtin_tabular else "both"
    use_batched = batched if batched is not None else n_rows >= batched_min_rows
    if joint_calibration == "auto":
        small_table = builtin_tabular and n_rows <= TABULAR_ENSEMBLE_MAX_ROWS
        ranked = filter_by in RANKED_FILTERS or use_batched  # the batched path is a ranked cut
        posterior = small_table and ranked and not supplied
        joint_calibration = "posterior" if posterior else "per_class"
    return _Flagger(labels, filter_by, joint_calibration, use_batched, batch_size,
                    max_label_quality)


@dataclass(frozen=True)
class _Crowdlab:
    """CROWDLAB's verdict per item (shapes (n,)) and per annotator."""

    consensus: IntArray  # class codes; the judged label where an item has no annotation
    quality: npt.NDArray[np.float64]  # consensus quality (0..1); self-confidence elsewhere
    agreement: npt.NDArray[np.float64]  # annotator agreement, NaN without annotations
    n_annotations: IntArray
    annotators: pl.DataFrame | None  # annotator, quality, agreement_with_consensus, n_labels


def _crowdlab(
    labels: _Labels,
    mat: npt.NDArray[np.float64],
    probs: FloatArray,
    *,
    quality: npt.NDArray[np.float64],
    calibrate_probs: bool,
) -> _Crowdlab:
    """CROWDLAB (``get_label_quality_multiannotator``) on the items with an annotation.

    Parameters
    ----------
    labels : _Labels
        The classes, judged labels and annotator names.
    mat : ndarray of float64, shape (n, annotators)
        Annotation class codes, NaN where the annotator did not label the item.
    probs : FloatArray, shape (n, k)
        Out-of-fold probabilities.
    quality : ndarray of float64, shape (n,)
        Self-confidence label quality, kept for items without an annotation.
    calibrate_probs : bool
        Passed to CROWDLAB.

    Returns
    -------
    _Crowdlab
        Per-item consensus, quality and agreement; per-annotator statistics (None when no
        item has an annotation).
    """
    from cleanlab.multiannotator import get_label_quality_multiannotator

    keep = np.flatnonzero(~np.isnan(mat).all(axis=1))
    n_ann = (~np.isnan(mat)).sum(axis=1)
    agreement = np.full(len(labels.judged), np.nan)
    consensus = labels.judged.copy()
    quality = quality.copy()
    if not (len(keep) and mat.shape[1] >= 1):
        return _Crowdlab(consensus, quality, agreement, n_ann.astype(np.int64), None)
    out = get_label_quality_multiannotator(
        _labels_frame(mat[keep], labels.annotators), probs[keep], verbose=False,
        return_detailed_quality=False, calibrate_probs=calibrate_probs,
    )
    lq = out["label_quality"]
    consensus[keep] = lq["consensus_label"].to_numpy().astype(np.int64)
    quality[keep] = np.clip(lq["consensus_quality_score"].to_numpy(), 0.0, 1.0)
    agreement[keep] = lq["annotator_agreement"].to_numpy()
    return _Crowdlab(consensus, quality, agreement, n_ann.astype(np.int64),
                     _annotator_frame(out["annotator_stats"]))


def _labels_frame(sub: npt.NDArray[np.float64], names: Sequence[str]) -> Any:
    """CROWDLAB's input: a pandas frame of the annotators who labelled any of these items.

    Parameters
    ----------
    sub : ndarray of float64, shape (m, annotators)
        Annotation class codes of the annotated items, NaN where not labelled.
    names : sequence of str, length annotators
        The annotators' names.

    Returns
    -------
    pandas.DataFrame, shape (m, annotators with a label here)
        Columns named by annotator.
    """
    import pandas as pd

    live = np.flatnonzero(~np.isnan(sub).all(axis=0))
    return pd.DataFrame(sub[:, live], columns=[names[int(j)] for j in live])


def _annotator_frame(stats: Any) -> pl.DataFrame:
    """CROWDLAB's annotator statistics, best annotator first.

    Parameters
    ----------
    stats : pandas.DataFrame
        ``annotator_stats`` of ``get_label_quality_multiannotator``, indexed by annotator.

    Returns
    -------
    pl.DataFrame
        One row per annotator: annotator, quality, agreement_with_consensus, n_labels;
        sorted by quality descending, then name.
    """
    return pl.DataFrame(
        {
            "annotator": [str(a) for a in stats.index],
            "quality": stats["annotator_quality"].to_numpy().astype(np.float64),
            "agreement_with_consensus": stats["agreement_with_consensus"]
            .to_numpy()
            .astype(np.float64),
            "n_labels": stats["num_examples_labeled"].to_numpy().astype(np.int64),
        }
    ).sort(["quality", "annotator"], descending=[True, False])


def _issue_table(
    ids: pl.Series,
    classes: Sequence[str],
    *,
    given: IntArray,
    suggested: npt.NDArray[np.integer[Any]],
    quality: npt.NDArray[np.float64],
    is_issue: BoolArray,
    extra: dict[str, pl.Series],
) -> pl.DataFrame:
    """The result table (`LabelIssuesResult.table`), one row per input row.

    Parameters
    ----------
    ids : pl.Series, length n
        The ids (the column is named ``id``).
    classes : sequence of str, length k
        Class names of the codes.
    given, suggested : ndarray of int, shape (n,)
        The judged and the suggested class codes.
    quality : ndarray of float64, shape (n,)
        Label quality, 0..1 (rank 1 = lowest).
    is_issue : BoolArray, shape (n,)
        The flags.
    extra : dict of str to pl.Series
        Further columns (length n), appended in order.

    Returns
    -------
    pl.DataFrame
        id, given_label, suggested_label, label_quality, is_label_issue, rank, then ``extra``.
    """
    return pl.DataFrame(
        {
            "id": ids,
            "given_label": pl.Series([classes[c] for c in given], dtype=pl.String),
            "suggested_label": pl.Series([classes[c] for c in suggested], dtype=pl.String),
            "label_quality": pl.Series(quality, dtype=pl.Float64),
            "is_label_issue": pl.Series(is_issue, dtype=pl.Boolean),
            "rank": pl.Series(_rank(quality), dtype=pl.Int64),
            **extra,
        }
    )


def _scored_table(
    ids: pl.Series, labels: _Labels, probs: FloatArray, flagger: _Flagger, *,
    calibrate_probs: bool,
) -> tuple[pl.DataFrame, IntArray | None, pl.DataFrame | None, str]:
    """Score and flag every row: the result table, the joint, the annotators and the filter.

    Parameters
    ----------
    ids : pl.Series, length n
        The ids.
    labels : _Labels
        Classes, judged labels and (multiannotator) annotations.
    probs : FloatArray, shape (n, k)
        Out-of-fold probabilities.
    flagger : _Flagger
        The resolved flagging options.
    calibrate_probs : bool
        Passed to CROWDLAB.

    Returns
    -------
    table : pl.DataFrame
        `_issue_table`'s, with the CROWDLAB columns for the multiannotator method.
    joint : IntArray, shape (k, k), or None
        The calibrated confident joint (None with fewer than two classes).
    annotators : pl.DataFrame or None
        CROWDLAB's per-annotator statistics.
    filter_name : str
        The filter that ran ("crowdlab_consensus": the judged label differs from CROWDLAB's
        consensus).
    """
    quality = _quality(labels.judged, probs)
    joint = flagger.joint(probs)
    cls, judged = labels.classes, labels.judged
    if labels.annotations is None:
        table = _issue_table(ids, cls, given=judged, suggested=probs.argmax(axis=1),
                             quality=quality, is_issue=flagger.flag(probs, joint), extra={})
        return table, joint, None, flagger.name
    crowd = _crowdlab(labels, labels.annotations, probs, quality=quality,
                      calibrate_probs=calibrate_probs)
    extra = {
        "consensus_label": pl.Series([cls[c] for c in crowd.consensus], dtype=pl.String),
        "num_annotations": pl.Series(crowd.n_annotations),
        "annotator_agreement": pl.Series(crowd.agreement, dtype=pl.Float64).fill_nan(None),
    }
    table = _issue_table(ids, cls, given=judged, suggested=crowd.consensus,
                         quality=crowd.quality, is_issue=judged != crowd.consensus, extra=extra)
    return table, joint, crowd.annotators, "crowdlab_consensus"


def _result(
    ids: pl.Series,
    labels: _Labels,
    probs: FloatArray,
    flagger: _Flagger,
    *,
    method: str,
    left_out: int,
    calibrate_probs: bool,
) -> LabelIssuesResult:
    """Score and flag every row and assemble the result.

    Parameters
    ----------
    ids : pl.Series, length n
        The ids.
    labels : _Labels
        Classes (k), judged labels and (multiannotator) annotations.
    probs : FloatArray, shape (n, k)
        Out-of-fold probabilities.
    flagger : _Flagger
        The resolved flagging options.
    method : str
        The method that ran.
    left_out : int
        Rows the second pass did not train on (0: one pass).
    calibrate_probs : bool
        Passed to CROWDLAB.

    Returns
    -------
    LabelIssuesResult
        Table, noise matrix, health score (0 where cleanlab gives NaN) and per-class counts.
    """
    table, joint, annotators, ran = _scored_table(ids, labels, probs, flagger,
                                                  calibrate_probs=calibrate_probs)
    noise, health = _joint_and_health(labels.judged, probs, labels.classes,
                                      calibration=flagger.calibration, confident_joint=joint)
    return LabelIssuesResult(
        method=method, path="batched" if flagger.batched else "standard",
        classes=labels.classes, table=table, noise_matrix=noise,
        health_score=0.0 if math.isnan(health) else health,
        per_class=_per_class(table, labels.classes), annotators=annotators,
        probabilities=probs, filter_by=ran, joint_calibration=flagger.calibration,
        passes=2 if left_out else 1, left_out=left_out,
    )


def find_label_issues(
    df: pl.DataFrame,
    *,
    id_column: str,
    label_column: str,
    text_columns: Sequence[str] = (),
    feature_columns: Sequence[str] = (),
    method: str = "cross_validated",
    folds: int = 5,
    seed: int = 13,
    predictions: pl.DataFrame | None = None,
    annotations: pl.DataFrame | None = None,
    annotator_column: str = "annotator",
    annotation_label_column: str | None = None,
    classes: Sequence[str] | None = None,
    batched: bool | None = None,
    batched_min_rows: int = 2_000_000,
    batch_size: int = 100_000,
    filter_by: str = "auto",
    joint_calibration: str = "auto",
    max_label_quality: float | None = None,
    pred_probs: FloatArray | None = None,
    calibrate_probs: bool = True,
    n_jobs: int = 2,
    source: str = "items",
    mapper: Mapper = serial_map,
    embeddings: FloatArray | None = None,
    passes: int = 2,
) -> LabelIssuesResult:
    """Find rows whose label is probably wrong.

    Parameters
    ----------
    df : pl.DataFrame, n rows
        ``id_column`` (unique), ``label_column`` (string labels) and the model inputs,
        ``text_columns`` and/or ``feature_columns``; ``source`` names it in errors.
    method, filter_by, joint_calibration : str
        One of `METHODS`, `FILTERS` (cleanlab's filter) and `JOINT_CALIBRATIONS` (the joint
        that counts the flags). "auto" is a ranked cut counted by `posterior_joint` for the
        built-in model on feature columns (up to ``TABULAR_ENSEMBLE_MAX_ROWS`` rows), else
        "both" and "per_class" (`_plan_flags`).
    folds, seed, n_jobs, mapper, embeddings
        The built-in model's (`labelgate.stages.label_issues.models.out_of_fold`); ``embeddings``:
        (n, d).
    predictions, annotations : pl.DataFrame, optional
        The predictions method's probabilities (`validate_predictions`); the multiannotator
        method's long frame (``id_column``, ``annotator_column``, ``annotation_label_column``).
    classes : sequence of str, optional
        The class order, k classes (default: the labels seen, sorted).
    batched, batched_min_rows, batch_size
        ``batched=None`` takes cleanlab's batched path from ``batched_min_rows`` rows on.
    max_label_quality : float, optional
        Flag only rows whose label quality is below it.
    pred_probs : FloatArray, shape (n, k), optional
        Out-of-fold probabilities the caller already has: the model is skipped.
    calibrate_probs : bool
        Passed to CROWDLAB.
    passes : {1, 2}
        2 (built-in model, not multiannotator): every row is scored again by models trained
        without the rows the first pass flagged (iterative noisy cross-validation, Chen et al.
        2019). A row's own label never trains the model that scores it.

    Returns
    -------
    LabelIssuesResult
        One table row per row of ``df``, in input order.
    """
    _check_options(method, filter_by=filter_by, joint_calibration=joint_calibration, passes=passes)
    ids = _checked_ids(df, [id_column, label_column, *text_columns, *feature_columns],
                       id_column=id_column, source=source)
    labels = _resolve_labels(
        df, ids=ids, id_column=id_column, label_column=label_column, classes=classes,
        annotations=annotations, annotator_column=annotator_column,
        annotation_label_column=annotation_label_column,
        multiannotator=method == "multiannotator", source=source,
    )
    probs = _supplied_probabilities(pred_probs, predictions, method=method, ids=ids,
                                    classes=labels.classes, id_column=id_column)
    flagger = _plan_flags(
        labels.judged, builtin_tabular=method == "cross_validated" and not text_columns,
        n_rows=df.height, supplied=pred_probs is not None, filter_by=filter_by,
        joint_calibration=joint_calibration, batched=batched, batched_min_rows=batched_min_rows,
        batch_size=batch_size, max_label_quality=max_label_quality,
    )
    left_out = 0
    if probs is None:
        second_pass = passes == 2 and labels.annotations is None
        fitted = out_of_fold(
            df, labels.judged, text_columns=text_columns, feature_columns=feature_columns,
            folds=folds, seed=seed, n_classes=len(labels.classes), n_jobs=n_jobs, mapper=mapper,
            embeddings=embeddings, leave_out=flagger.leave_out if second_pass else None,
        )
        probs, left_out = fitted.probabilities, fitted.left_out
    return _result(ids, labels, probs, flagger, method=method, left_out=left_out,
                   calibrate_probs=calibrate_probs)
