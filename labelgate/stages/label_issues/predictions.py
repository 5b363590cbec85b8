"""Input checks of the label-issue stage, and the probabilities a caller supplies.

* the shared column and id checks (``_check_columns``, ``_check_ids``, ``_ids_preview``),
  used for the items, the predictions and the annotations alike;
* `validate_predictions`: the ``predictions`` method's frame (one probability column per
  class) checked and aligned with the data's ids, with the checks it runs;
* ``_supplied_probabilities``: the probabilities `find_label_issues` is given (``pred_probs``
  or a ``predictions`` frame), checked; None when the built-in model must make them.

`labelgate.stages.label_issues.detect` re-exports `validate_predictions`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import polars as pl

from labelgate.errors import InputError
from labelgate.stages.label_issues.arrays import FloatArray

__all__ = ["validate_predictions"]



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
