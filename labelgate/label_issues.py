"""Label-issue detection: which rows carry a label that is probably wrong.

Three ways to get the predicted probabilities that confident learning needs:

* ``cross_validated`` (default): out-of-fold probabilities from a model trained here
  (:func:`labelgate.label_model.out_of_fold`).
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
from labelgate.label_model import TABULAR_ENSEMBLE_MAX_ROWS, out_of_fold
from labelgate.partition import Mapper, serial_map

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
# estimate_confident_joint (measured 1.1-1.7 on the benchmark sets)
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
    """Check user-supplied probabilities and return them as float32 (len(ids) x len(classes)),
    rows aligned with ``ids`` and columns with ``classes``.

    Raises InputError naming the problem: missing id or class column, duplicate id, id in the
    predictions that is not in the data, data id without predictions, a value that is not a
    number, null/NaN/inf or negative probability, or a row not summing to 1 within
    ``tolerance``. Extra columns are ignored. Text columns (a CSV file is read as text) are
    parsed as numbers.
    """
    _check_columns(predictions, [id_column], source=source)
    missing = [c for c in classes if c not in predictions.columns]
    if missing:
        unused = [c for c in predictions.columns if c != id_column and c not in classes]
        hint = f"; column(s) not used: {unused}" if unused else ""
        raise InputError(
            f"{source}: missing probability column(s) for class(es) {missing}; expected one "
            f"column per class {list(classes)} plus '{id_column}'{hint}"
        )
    predictions = _numeric_classes(predictions, classes, id_column=id_column, source=source)
    pred_ids = predictions.get_column(id_column).cast(pl.String)
    _check_ids(pred_ids, source=source, id_column=id_column)
    want = ids.cast(pl.String)
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
    aligned = (
        pl.DataFrame({id_column: want})
        .join(
            predictions.select(pl.col(id_column).cast(pl.String), *[pl.col(c) for c in classes]),
            on=id_column,
            how="left",
            maintain_order="left",
        )
    )
    probs = aligned.select([pl.col(c).cast(pl.Float64) for c in classes]).to_numpy()
    row_ids = aligned.get_column(id_column).to_list()
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
    sums = probs.sum(axis=1)
    off = np.abs(sums - 1.0) > tolerance
    if off.any():
        r = int(np.flatnonzero(off)[0])
        unused = [c for c in predictions.columns if c != id_column and c not in classes]
        hint = (
            f"; column(s) {unused} are not classes: a class no row has yet must be listed in "
            "the label column's contract isin" if unused else ""
        )
        raise InputError(
            f"{source}: row for id {row_ids[r]!r} sums to {sums[r]:.4g} over the classes "
            f"{list(classes)}, expected 1 ± {tolerance} ({int(off.sum())} row(s) off; are the "
            f"columns probabilities, not logits?){hint}"
        )
    normalised: FloatArray = (probs / sums[:, None]).astype(np.float32)
    return normalised


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
    """cleanlab's confident joint C (C[i, j]: rows given label i that are confidently of class
    j), scaled so each row i sums to the number of rows labelled i.

    cleanlab scales each row by one factor, which is right only if every true class is counted
    confidently at the same rate. It is not: a class whose rows the model scores less sharply
    (often the large class of an imbalanced set) has more rows below its threshold, so the
    flips into the other classes are undercounted (on SMS spam with 5% flips, 0.84 of them).
    "per_class" models the uncalibrated count as C[i, j] = N[i, j] * a[j], where a[j] is the
    rate at which rows of true class j are counted (the same whatever their given label:
    confident learning's class-conditional noise assumption), and solves the row totals
    sum_j C[i, j] / a[j] = n[i] for the a[j], by bounded least squares over the classes that
    have rows: 1 <= 1/a[j] <= ``MAX_INV_RATE`` (a class counted at under a quarter of its rows
    is too thinly seen to scale up further). A class no row is given keeps cleanlab's scaling;
    cleanlab's row scaling is applied last in every case (a no-op when the solve was exact).
    """
    from cleanlab.count import calibrate_confident_joint, compute_confident_joint

    labels = np.asarray(labels, dtype=np.int64)
    k = probs.shape[1]
    raw = np.asarray(compute_confident_joint(labels, probs, calibrate=False), dtype=np.float64)
    counts = np.bincount(labels, minlength=k).astype(np.float64)
    seen = counts > 0
    if calibration in COUNTING_CALIBRATIONS and seen.sum() >= 2:
        from scipy.optimize import lsq_linear

        inv_rate = np.ones(k)
        # rows of seen classes counted into an unseen class's column keep factor 1
        target = counts[seen] - raw[np.ix_(seen, ~seen)].sum(axis=1)
        fit = lsq_linear(raw[np.ix_(seen, seen)], target, bounds=(1.0, MAX_INV_RATE))
        inv_rate[seen] = fit.x
        raw = raw * inv_rate[None, :]
    joint = np.asarray(calibrate_confident_joint(np.rint(raw).astype(np.int64), labels),
                       dtype=np.int64)
    if calibration == "posterior" and seen.sum() >= 2:
        return posterior_joint(labels, probs, joint)
    return joint


POSTERIOR_SHARPEN = 2.0  # probabilities are squared (then renormalised) in `posterior_joint`
POSTERIOR_MAX_ITER = 1000


def posterior_joint(
    labels: IntArray, probs: FloatArray, joint: IntArray, *, sharpen: float = POSTERIOR_SHARPEN
) -> IntArray:
    """The joint of (given, true) labels as the sum of each row's posterior over its true
    class, under confident learning's class-conditional noise model: P(true = j | x, given = i)
    is proportional to q_j(x) * T[i, j], where T[i, j] = P(given = i | true = j). T starts from
    ``joint`` (e.g. `estimate_confident_joint`'s) and is re-estimated from the posteriors until
    no cell of the joint moves by 0.01 rows (EM). ``q`` are the probabilities raised to
    ``sharpen`` and renormalised: the default 2 suits the built-in small-table ensemble (extra
    trees + logistic regression, averaged), which is under-confident; the likelihood of the
    given labels under this model peaks near 2 on penguins, iris and digits (1.8-2.1) with
    planted flips. Calibrated probabilities want ``sharpen=1`` (2 over-counts them).

    A confident-joint count only counts the rows above a class's threshold and scales them up,
    so it has the sampling error of a thinned count (penguins, 17 planted flips: standard
    deviation 1.7 rows); the posterior sums over every row (0.8 rows). Classes that no row is
    given are left out (no row is counted as truly of them). Rows sum to the number of rows
    given each label, like cleanlab's calibrated joint."""
    from cleanlab.internal.util import round_preserving_row_totals

    labels = np.asarray(labels, dtype=np.int64)
    k = probs.shape[1]
    p = np.asarray(probs, dtype=np.float64)
    if not np.isfinite(p).all():
        raise InputError("label_issues: probabilities must be finite (a NaN or inf was given)")
    seen = np.bincount(labels, minlength=k) > 0
    q = np.clip(p, 1e-12, None) ** sharpen
    q[:, ~seen] = 0.0
    q /= q.sum(axis=1, keepdims=True)
    eps = 1e-3  # keeps every transition possible (a zero would stay zero under EM)
    t = np.asarray(joint, dtype=np.float64) + eps
    t /= t.sum(axis=0, keepdims=True)
    soft: npt.NDArray[np.float64] = np.zeros((k, k))
    for _ in range(POSTERIOR_MAX_ITER):
        post = q * t[labels, :]
        post /= post.sum(axis=1, keepdims=True)
        new = np.stack([np.bincount(labels, weights=post[:, j], minlength=k) for j in range(k)],
                       axis=1).astype(np.float64)
        moved = np.abs(new - soft).max()
        soft = new
        t = (soft + eps) / (soft + eps).sum(axis=0, keepdims=True)
        if moved < 0.01:
            break
    return np.asarray(round_preserving_row_totals(soft), dtype=np.int64)


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
    """cleanlab's batched path (`LabelInspector`: thresholds, then self-confidence scores, one
    batch at a time; the flags equal `_flag_ranked`'s with self_confidence, and as the joint
    and the scores are computed over all rows, it saves no memory here) with the number of
    issues taken from ``joint`` instead of cleanlab's
    uncalibrated count (strict F1 on SMS spam with 5% flips, mpnet probabilities: 0.80 with
    cleanlab's count, 0.96 with this one). As in ``find_label_issues_batched``: the
    lowest-scored rows are flagged, then rows whose given label is the model's top class are
    unflagged."""
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

    ``df`` holds one row per item: ``id_column`` (unique), ``label_column`` (string labels)
    and the model inputs (``text_columns`` and/or ``feature_columns``). ``classes`` fixes the
    class order (default: sorted labels seen). ``batched=None`` picks cleanlab's batched path
    from ``batched_min_rows`` rows on. ``filter_by`` is cleanlab's filter for the standard
    path; "auto" is "both" (per-class pruning) on text and supplied probabilities and
    "low_self_confidence" (a ranked cut) for the built-in feature-columns model, each measured
    best there on real data with planted flips. With ``joint_calibration="per_class"`` its
    counts come from `estimate_confident_joint`; with "posterior", from `posterior_joint`;
    with "cleanlab", from cleanlab itself; "auto" is posterior for the built-in model on
    feature columns up to ``TABULAR_ENSEMBLE_MAX_ROWS`` rows with a ranked cut (measured
    there), per_class elsewhere.
    ``pred_probs`` lets a caller
    that already has out-of-fold probabilities (rows aligned with ``df``, columns with
    ``classes``) skip the model. The annotations frame (multiannotator) is long format with
    columns ``id_column``, ``annotator_column`` and ``annotation_label_column`` (default:
    ``label_column``). ``mapper`` runs the built-in model's folds (`labelgate.partition`).
    ``embeddings`` (one row per row of ``df``, `labelgate.embeddings.embed_texts`) joins the
    built-in text model (`labelgate.label_model.out_of_fold`).
    ``passes=2`` (the built-in model, not multiannotator) scores every row a second time with
    models trained without the rows the first pass flagged (iterative noisy
    cross-validation, Chen et al. 2019): noisy training labels blur the model, and the
    flips it then misses are the ones that look like the class they were flipped into.
    Measured on real data with planted flips (bench/bench_label_issues.py, 5% / 10%): strict
    F1 +0.01..+0.08 on five tables (digits at 5%: -0.002), on text -0.01..+0.03 (the loss on
    crowd-labelled tweets, where more of the crowd's own errors are flagged); the price is
    twice the training time. The row's own label still never trains the model that scores
    it; it can only change which *other* rows the second pass leaves out.
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
    _check_columns(df, [id_column, label_column, *text_columns, *feature_columns], source=source)
    ids = df.get_column(id_column)
    _check_ids(ids, source=source, id_column=id_column)
    given = df.get_column(label_column).cast(pl.String)

    mat: npt.NDArray[np.float64] | None = None
    annotator_names: list[str] = []
    if method == "multiannotator":
        if annotations is None:
            raise InputError("label_issues.method 'multiannotator' needs an annotations frame")
        ann_label = annotation_label_column or label_column
        seen = set(given.drop_nulls().to_list())
        if ann_label in annotations.columns:
            voted = set(annotations.get_column(ann_label).cast(pl.String).drop_nulls().to_list())
            if seen and voted and not seen & voted:
                # two label scales (ratings -4..4 vs negative/neutral/positive): every row
                # would disagree with every annotator
                raise InputError(
                    f"annotations: column '{ann_label}' has labels {sorted(voted)[:8]} and "
                    f"{source} column '{label_column}' has {sorted(seen)[:8]}: no label in "
                    "common, so CROWDLAB cannot compare them; map both to one set of classes"
                )
            seen |= voted
        cls = list(classes) if classes is not None else sorted(seen)
        mat, annotator_names = _annotation_matrix(
            annotations, ids=ids, id_column=id_column, annotator_column=annotator_column,
            label_column=ann_label, classes=cls, source="annotations",
        )
    else:
        nulls = given.is_null()
        if nulls.any():
            bad_ids = ids.filter(nulls).to_list()
            raise InputError(
                f"{source}: column '{label_column}' is null for {len(bad_ids)} row(s) "
                f"(ids {_ids_preview(bad_ids)}), expected a label on every row"
            )
        cls = list(classes) if classes is not None else sorted(set(given.to_list()))
    unknown = given.drop_nulls().filter(~given.drop_nulls().is_in(cls)).unique()
    if unknown.len():
        raise InputError(
            f"{source}: column '{label_column}' has label(s) {sorted(unknown.to_list())} "
            f"outside the classes {cls}"
        )
    if len(cls) < 2:
        raise InputError(
            f"{source}: column '{label_column}' has {len(cls)} class(es) {cls}, expected >= 2"
        )
    code_of = {c: i for i, c in enumerate(cls)}
    given_codes = np.asarray(
        given.replace_strict(code_of, default=-1, return_dtype=pl.Int64).to_numpy(),
        dtype=np.int64,
    )

    # The label each row is judged on: the dataset's label, or (multiannotator, where the
    # dataset has none) the annotators' majority vote.
    train_labels = given_codes.copy()
    if mat is not None:
        vote = _majority(mat, len(cls))
        train_labels = np.where(given_codes >= 0, given_codes, vote)
        unlabeled = train_labels < 0
        if unlabeled.any():
            bad_ids = ids.filter(pl.Series(unlabeled)).to_list()
            raise InputError(
                f"annotations: {len(bad_ids)} item(s) have no annotation and no "
                f"'{label_column}' value (ids {_ids_preview(bad_ids)}): nothing to check"
            )

    probs: FloatArray | None = None
    if pred_probs is not None:
        probs = np.asarray(pred_probs, dtype=np.float32)
        if probs.shape != (df.height, len(cls)):
            raise InputError(
                f"label_issues: pred_probs has shape {probs.shape}, expected "
                f"({df.height}, {len(cls)})"
            )
        if not np.isfinite(probs).all():
            bad = np.flatnonzero(~np.isfinite(probs).all(axis=1))
            raise InputError(
                f"label_issues: pred_probs has NaN or inf in {len(bad)} row(s) (ids "
                f"{_ids_preview(ids.gather(bad[:5]).to_list())})"
            )
    elif method == "predictions":
        if predictions is None:
            raise InputError("label_issues.method 'predictions' needs a predictions frame")
        probs = validate_predictions(
            predictions, ids=ids, classes=cls, id_column=id_column, source="predictions"
        )

    if filter_by == "auto":
        # measured (planted flips, bench/bench_label_issues.py): per-class pruning on text,
        # a ranked cut on the small-table models (5 tables, 10 flip seeds: +0.03 F1)
        tabular = method == "cross_validated" and not text_columns
        filter_by = "low_self_confidence" if tabular else "both"
    use_batched = batched if batched is not None else df.height >= batched_min_rows
    if joint_calibration == "auto":
        # measured (planted flips, 5 tables, flip seeds 7-26): the posterior count on the
        # small-table ensemble, whose probabilities `posterior_joint` was tuned on
        small_table = (method == "cross_validated" and not text_columns
                       and df.height <= TABULAR_ENSEMBLE_MAX_ROWS)
        ranked = filter_by in RANKED_FILTERS or use_batched  # the batched path is a ranked cut
        posterior = small_table and ranked and pred_probs is None
        joint_calibration = "posterior" if posterior else "per_class"
    path = "batched" if use_batched else "standard"

    def joint_of(p: FloatArray) -> IntArray | None:
        if len(np.unique(train_labels)) < 2:
            return None
        return estimate_confident_joint(train_labels, p, calibration=joint_calibration)

    def flag(p: FloatArray, joint_p: IntArray | None) -> BoolArray:
        mask = _flag_issues(
            train_labels, p, batched=use_batched, filter_by=filter_by, batch_size=batch_size,
            joint=joint_p, calibration=joint_calibration,
        )
        if max_label_quality is not None:
            mask &= _quality(train_labels, p) < max_label_quality
        return mask

    left_out = 0
    if probs is None:
        def leave_out(first: FloatArray) -> BoolArray:
            return flag(first, joint_of(first))

        fitted = out_of_fold(
            df, train_labels, text_columns=text_columns, feature_columns=feature_columns,
            folds=folds, seed=seed, n_classes=len(cls), n_jobs=n_jobs, mapper=mapper,
            embeddings=embeddings,
            leave_out=leave_out if passes == 2 and mat is None else None,
        )
        probs, left_out = fitted.probabilities, fitted.left_out
    suggested_codes = probs.argmax(axis=1)
    quality = _quality(train_labels, probs)
    joint = joint_of(probs)
    ran = filter_by  # what the report names
    if mat is not None:
        ran = "crowdlab_consensus"  # flags: the given label differs from CROWDLAB's consensus
        is_issue = np.zeros(df.height, dtype=bool)  # set below
    else:
        if use_batched:
            ran = ("low_self_confidence (batched)" if joint_calibration in COUNTING_CALIBRATIONS
                   else "find_label_issues_batched")
        is_issue = flag(probs, joint)
    annotators_frame: pl.DataFrame | None = None
    extra: dict[str, pl.Series] = {}
    if mat is not None:
        import pandas as pd
        from cleanlab.multiannotator import get_label_quality_multiannotator

        has_ann = ~np.isnan(mat).all(axis=1)
        keep = np.flatnonzero(has_ann)
        n_ann = (~np.isnan(mat)).sum(axis=1)
        agreement = np.full(df.height, np.nan)
        consensus = train_labels.copy()
        if len(keep) and mat.shape[1] >= 1:
            sub = mat[keep]
            live = np.flatnonzero(~np.isnan(sub).all(axis=0))
            labels_frame = pd.DataFrame(
                sub[:, live], columns=[annotator_names[int(j)] for j in live]
            )
            out = get_label_quality_multiannotator(
                labels_frame, probs[keep], verbose=False, return_detailed_quality=False,
                calibrate_probs=calibrate_probs,
            )
            lq = out["label_quality"]
            consensus[keep] = lq["consensus_label"].to_numpy().astype(np.int64)
            quality[keep] = np.clip(lq["consensus_quality_score"].to_numpy(), 0.0, 1.0)
            agreement[keep] = lq["annotator_agreement"].to_numpy()
            stats = out["annotator_stats"]
            annotators_frame = pl.DataFrame(
                {
                    "annotator": [str(a) for a in stats.index],
                    "quality": stats["annotator_quality"].to_numpy().astype(np.float64),
                    "agreement_with_consensus": stats["agreement_with_consensus"]
                    .to_numpy()
                    .astype(np.float64),
                    "n_labels": stats["num_examples_labeled"].to_numpy().astype(np.int64),
                }
            ).sort(["quality", "annotator"], descending=[True, False])
        suggested_codes = consensus
        is_issue = train_labels != consensus
        extra = {
            "consensus_label": pl.Series([cls[c] for c in consensus], dtype=pl.String),
            "num_annotations": pl.Series(n_ann.astype(np.int64)),
            "annotator_agreement": pl.Series(agreement, dtype=pl.Float64).fill_nan(None),
        }

    table = pl.DataFrame(
        {
            "id": ids,
            "given_label": pl.Series([cls[c] for c in train_labels], dtype=pl.String),
            "suggested_label": pl.Series([cls[c] for c in suggested_codes], dtype=pl.String),
            "label_quality": pl.Series(quality, dtype=pl.Float64),
            "is_label_issue": pl.Series(is_issue, dtype=pl.Boolean),
            "rank": pl.Series(_rank(quality), dtype=pl.Int64),
            **extra,
        }
    )
    noise, health = _joint_and_health(
        train_labels, probs, cls, calibration=joint_calibration, confident_joint=joint
    )
    if math.isnan(health):
        health = 0.0
    return LabelIssuesResult(
        method=method,
        path=path,
        classes=cls,
        table=table,
        noise_matrix=noise,
        health_score=health,
        per_class=_per_class(table, cls),
        annotators=annotators_frame,
        probabilities=probs,
        filter_by=ran,
        joint_calibration=joint_calibration,
        passes=2 if left_out else 1,
        left_out=left_out,
    )
