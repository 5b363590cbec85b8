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

This module holds the entry point, `find_label_issues`, its result (`LabelIssuesResult`,
`accept_reviewed`), its options and the steps that tie the others together:

* `labelgate.stages.label_issues.predictions`: input checks and supplied probabilities;
* `labelgate.stages.label_issues.labels`: the classes and each row's judged label;
* `labelgate.stages.label_issues.flags`: the confident joint, the flags, quality, health;
* `labelgate.stages.label_issues.multiannotator`: CROWDLAB.

Every name this module held before that split (private helpers included) is re-exported
here, so imports from ``detect`` keep working.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import polars as pl

from labelgate import lazy
from labelgate.errors import InputError
from labelgate.partition import Mapper, serial_map
from labelgate.stages.label_issues.arrays import BoolArray, FloatArray, IntArray
from labelgate.stages.label_issues.cutoffs import flagging_state
from labelgate.stages.label_issues.experimental import POSTERIOR_MAX_ITER as POSTERIOR_MAX_ITER
from labelgate.stages.label_issues.experimental import POSTERIOR_SHARPEN as POSTERIOR_SHARPEN
from labelgate.stages.label_issues.experimental import posterior_joint as posterior_joint
from labelgate.stages.label_issues.flags import COUNTING_CALIBRATIONS as COUNTING_CALIBRATIONS
from labelgate.stages.label_issues.flags import MAX_INV_RATE as MAX_INV_RATE
from labelgate.stages.label_issues.flags import RANKED_FILTERS as RANKED_FILTERS
from labelgate.stages.label_issues.flags import _cut as _cut
from labelgate.stages.label_issues.flags import _flag_batched as _flag_batched
from labelgate.stages.label_issues.flags import _flag_issues as _flag_issues
from labelgate.stages.label_issues.flags import _flag_ranked as _flag_ranked
from labelgate.stages.label_issues.flags import (
    _Flagger,
    _joint_and_health,
    _per_class,
    _quality,
    _rank,
    estimate_confident_joint,
)
from labelgate.stages.label_issues.flags import _scaled_per_true_class as _scaled_per_true_class
from labelgate.stages.label_issues.labels import _annotated as _annotated
from labelgate.stages.label_issues.labels import _annotated_classes as _annotated_classes
from labelgate.stages.label_issues.labels import _annotation_matrix as _annotation_matrix
from labelgate.stages.label_issues.labels import _check_classes as _check_classes
from labelgate.stages.label_issues.labels import _check_no_null_labels as _check_no_null_labels
from labelgate.stages.label_issues.labels import _Labels, _resolve_labels
from labelgate.stages.label_issues.labels import _majority as _majority
from labelgate.stages.label_issues.labels import _majority_fallback as _majority_fallback
from labelgate.stages.label_issues.multiannotator import _annotator_frame as _annotator_frame
from labelgate.stages.label_issues.multiannotator import _Crowdlab as _Crowdlab
from labelgate.stages.label_issues.multiannotator import _crowdlab
from labelgate.stages.label_issues.multiannotator import _labels_frame as _labels_frame
from labelgate.stages.label_issues.options import FILTERS as FILTERS
from labelgate.stages.label_issues.options import JOINT_CALIBRATIONS as JOINT_CALIBRATIONS
from labelgate.stages.label_issues.options import (
    JOINT_COUNTED_FILTERS as JOINT_COUNTED_FILTERS,
)
from labelgate.stages.label_issues.options import METHODS as METHODS
from labelgate.stages.label_issues.predictions import (
    _check_columns,
    _check_ids,
    _supplied_probabilities,
    validate_predictions,
)
from labelgate.stages.label_issues.predictions import (
    _check_finite_nonnegative as _check_finite_nonnegative,
)
from labelgate.stages.label_issues.predictions import (
    _check_prediction_columns as _check_prediction_columns,
)
from labelgate.stages.label_issues.predictions import _check_prediction_ids as _check_prediction_ids
from labelgate.stages.label_issues.predictions import _checked_row_sums as _checked_row_sums
from labelgate.stages.label_issues.predictions import _ids_preview as _ids_preview
from labelgate.stages.label_issues.predictions import _numeric_classes as _numeric_classes
from labelgate.stages.label_issues.predictions import _unused_columns as _unused_columns

# `models` (scikit-learn, with scipy and pandas: about a second to import) is imported when
# a model is fitted, so a run whose label issues are reused does not import it; its names
# this module used to hold stay readable here
if TYPE_CHECKING:
    from labelgate.stages.label_issues.models import KeptModels, OutOfFold, out_of_fold
else:
    def out_of_fold(*args: Any, **kwargs: Any) -> Any:
        from labelgate.stages.label_issues.models import out_of_fold as fit

        return fit(*args, **kwargs)

__getattr__ = lazy.exports(__name__, dict.fromkeys(
    ["TABULAR_ENSEMBLE_MAX_ROWS", "KeptModels"], "labelgate.stages.label_issues.models"))

__all__ = [
    "JOINT_CALIBRATIONS",
    "METHODS",
    "LabelIssuesResult",
    "accept_reviewed",
    "apply_review_budget",
    "budget_rows",
    "estimate_confident_joint",
    "find_label_issues",
    "validate_predictions",
]


# from this many classes (given labels) on, "auto" on text cuts the label-quality ranking at
# per-pair pruning's count instead of flagging the pruned rows themselves
RANKED_PAIRS_MIN_CLASSES = 5

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
    kept: KeptModels | None = None  # the fold models, to score new rows later (keep_models)
    trained_rows: int | None = None  # rows of a training sample (train_max_rows); None: all

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


def budget_rows(budget: int | float, n_rows: int) -> int:
    """How many rows a review budget flags: ``budget`` itself when an integer (at most
    ``n_rows``), else that share of ``n_rows`` rounded, at least one (none of no rows)."""
    if isinstance(budget, bool) or budget <= 0 or (not isinstance(budget, int) and budget >= 1):
        raise InputError(
            f"label_issues.review_budget: got {budget!r}, expected an integer >= 1 or a share "
            "between 0 and 1"
        )
    k = budget if isinstance(budget, int) else max(1, round(budget * n_rows))
    return min(k, n_rows)


def apply_review_budget(
    result: LabelIssuesResult, budget: int | float, *, reviewed: Collection[str] = ()
) -> LabelIssuesResult:
    """The result with exactly the budget's rows flagged: the rows of lowest label quality
    (ties by input order), skipping ``reviewed`` ids (a reviewer's label is not sent back).

    Parameters
    ----------
    result : LabelIssuesResult
        A label-issue result, n rows.
    budget : int or float
        An integer k >= 1 (rows) or a share of the n rows in (0, 1) (`budget_rows`).
    reviewed : collection of str
        Ids whose label a reviewer decided: never flagged, and not counted.

    Returns
    -------
    LabelIssuesResult
        ``is_label_issue`` replaced (min(k, unreviewed rows) flagged) and the per-class
        counts recomputed; quality, rank, noise matrix and health score unchanged.
    """
    table = result.table
    k = budget_rows(budget, table.height)
    done = pl.Series(sorted({str(i) for i in reviewed}), dtype=pl.String)
    open_rows = ~pl.col("id").cast(pl.String).is_in(done.implode())
    order = pl.when(open_rows).then(pl.col("rank")).otherwise(None)
    flagged = table.with_columns(
        (order.rank("ordinal").fill_null(table.height + 1) <= k).alias("is_label_issue")
    )
    return replace(result, table=flagged, per_class=_per_class(flagged, result.classes))


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


def _plan_flags(
    labels: IntArray,
    *,
    builtin_tabular: bool,
    builtin_text: bool = False,
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
    feature columns only, "both" elsewhere; for the built-in text model with at least
    ``RANKED_PAIRS_MIN_CLASSES`` given classes (off the batched path) "both"'s count is then
    taken from the bottom of the label-quality ranking (``_Flagger.ranked``, reported as
    "both, ranked"). ``joint_calibration="auto"`` is "posterior" for
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
    builtin_text : bool
        Whether the built-in model scores text columns (cross_validated).
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
    ranked_pairs = False
    if filter_by == "auto":
        filter_by = "low_self_confidence" if builtin_tabular else "both"
        # many classes: few flips per class pair, so per-pair pruning's count is kept but
        # its rows are the lowest label quality (docs/benchmarks/detection.md)
        ranked_pairs = builtin_text and len(np.unique(labels)) >= RANKED_PAIRS_MIN_CLASSES
    use_batched = batched if batched is not None else n_rows >= batched_min_rows
    if joint_calibration == "auto":
        # read through this module (its lazy name, or a value a test set on it)
        max_rows = sys.modules[__name__].TABULAR_ENSEMBLE_MAX_ROWS
        small_table = builtin_tabular and n_rows <= max_rows
        ranked = filter_by in RANKED_FILTERS or use_batched  # the batched path is a ranked cut
        posterior = small_table and ranked and not supplied
        joint_calibration = "posterior" if posterior else "per_class"
    return _Flagger(labels, filter_by, joint_calibration, use_batched, batch_size,
                    max_label_quality, ranked=ranked_pairs and not use_batched)


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
    names = pl.Series(list(classes), dtype=pl.String)  # a code's name by gather, not per row
    return pl.DataFrame(
        {
            "id": ids,
            "given_label": names.gather(given),
            "suggested_label": names.gather(suggested),
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
        is_issue = flagger.flag(probs, joint)
        if flagger.ranked:  # as many rows as the filter flags, the lowest label quality
            is_issue = _rank(quality) <= int(is_issue.sum())
        table = _issue_table(ids, cls, given=judged, suggested=probs.argmax(axis=1),
                             quality=quality, is_issue=is_issue, extra={})
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
    calibrate_probs: bool,
    fitted: OutOfFold | None = None,
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
    calibrate_probs : bool
        Passed to CROWDLAB.
    fitted : OutOfFold, optional
        The built-in model's fit (None: supplied probabilities): the rows its second pass
        left out, its kept fold models and the sample it trained on, carried to the result.

    Returns
    -------
    LabelIssuesResult
        Table, noise matrix, health score (0 where cleanlab gives NaN) and per-class counts.
    """
    table, joint, annotators, ran = _scored_table(ids, labels, probs, flagger,
                                                  calibrate_probs=calibrate_probs)
    noise, health = _joint_and_health(labels.judged, probs, labels.classes,
                                      calibration=flagger.calibration, confident_joint=joint)
    left_out = fitted.left_out if fitted is not None else 0
    kept = fitted.kept if fitted is not None else None
    if kept is not None:  # how a night flags its new rows as these were (`cutoffs`)
        kept = replace(kept, flagging=flagging_state(
            flagger, probs, joint, table_flags=table.get_column("is_label_issue").to_numpy(),
            quality=table.get_column("label_quality").to_numpy(),
            noise=noise.get_column("joint").to_list(),
            health=0.0 if math.isnan(health) else health, filter_name=ran))
    return LabelIssuesResult(
        method=method, path="batched" if flagger.batched else "standard",
        classes=labels.classes, table=table, noise_matrix=noise,
        health_score=0.0 if math.isnan(health) else health,
        per_class=_per_class(table, labels.classes), annotators=annotators,
        probabilities=probs, filter_by=ran, joint_calibration=flagger.calibration,
        passes=2 if left_out else 1, left_out=left_out,
        kept=kept,
        trained_rows=len(fitted.sample) if fitted is not None and fitted.sample is not None
        else None,
    )


def find_label_issues(
    df: pl.DataFrame,
    *,
    id_column: str,
    label_column: str,
    text_columns: Sequence[str] = (),
    feature_columns: Sequence[str] = (),
    method: str = "cross_validated",
    folds: int = 5, seed: int = 13,
    predictions: pl.DataFrame | None = None,
    annotations: pl.DataFrame | None = None,
    annotator_column: str = "annotator",
    annotation_label_column: str | None = None,
    classes: Sequence[str] | None = None,
    batched: bool | None = None, batched_min_rows: int = 2_000_000, batch_size: int = 100_000,
    filter_by: str = "auto", joint_calibration: str = "auto",
    max_label_quality: float | None = None,
    pred_probs: FloatArray | None = None,
    calibrate_probs: bool = True,
    n_jobs: int = 2, source: str = "items",
    mapper: Mapper = serial_map,
    embeddings: FloatArray | None = None,
    passes: int = 2, keep_models: bool = False,
    train_max_rows: int | None = None,
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
        "both" and "per_class", "both"'s count cut from the label-quality ranking for the
        built-in text model with 5 or more classes (`_plan_flags`).
    folds, seed, n_jobs, mapper, embeddings
        The built-in model's (`models.out_of_fold`); ``embeddings``: (n, d).
    predictions, annotations : pl.DataFrame, optional
        The predictions method's probabilities (`validate_predictions`); the multiannotator
        method's long frame (``id_column``, ``annotator_column``, ``annotation_label_column``;
        ``calibrate_probs`` is passed to CROWDLAB).
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
    keep_models : bool
        Keep the built-in text model's fold models (``kept``) to score new rows later.
    train_max_rows : int, optional
        Above it the built-in text model trains on a stratified sample (`models.out_of_fold`).

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
        builtin_text=method == "cross_validated" and bool(text_columns),
        n_rows=df.height, supplied=pred_probs is not None, filter_by=filter_by,
        joint_calibration=joint_calibration, batched=batched, batched_min_rows=batched_min_rows,
        batch_size=batch_size, max_label_quality=max_label_quality,
    )
    fitted = None
    if probs is None:
        second_pass = passes == 2 and labels.annotations is None
        fitted = out_of_fold(
            df, labels.judged, text_columns=text_columns, feature_columns=feature_columns,
            folds=folds, seed=seed, n_classes=len(labels.classes), n_jobs=n_jobs, mapper=mapper,
            embeddings=embeddings, leave_out=flagger.leave_out if second_pass else None,
            keep_models=keep_models and labels.annotations is None,
            train_max_rows=train_max_rows,
        )
        probs = fitted.probabilities
    return _result(ids, labels, probs, flagger, method=method,
                   calibrate_probs=calibrate_probs, fitted=fitted)
