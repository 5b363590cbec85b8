"""The classes and the label each row is judged on.

``_resolve_labels`` checks the items' labels (no nulls, none outside the classes, at least
two classes) and returns `_Labels`. For the multiannotator method it also builds the
items x annotators matrix from the long annotations frame (``_annotation_matrix``), and a
row without a label of its own is judged on the annotators' majority vote (``_majority``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import polars as pl

from labelgate.errors import InputError
from labelgate.stages.label_issues.arrays import IntArray
from labelgate.stages.label_issues.predictions import _check_columns, _ids_preview


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
