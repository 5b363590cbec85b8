"""Multi-annotator label input: readers, validation and integer encoding.

Annotations are long format: one row per (item, annotator, label), optional timestamp. The
readers here turn a Label Studio JSON export or a one-column-per-annotator frame into that
shape; ``encode_annotations`` validates it once and maps items, annotators and labels to
integer codes so that the agreement and consensus code works on numpy arrays.

Rules applied by ``encode_annotations`` (each one is counted on the result, none is silent):
- null labels are missing ratings: dropped and counted (``n_null_labels``);
- a null item or annotator is an InputError naming the column;
- an annotator labelling the same item twice keeps the latest label when a timestamp
  column is present, otherwise the duplicates are an InputError naming the first ones;
- labels outside the declared categories are an InputError naming them;
- without declared categories the category order is the sorted set of observed labels
  (ordinal string labels need an explicit order: sorting words is not an order); interval
  categories are always ordered by numeric value, so "10" comes after "9".
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import polars as pl

from labelgate.errors import InputError

Level = Literal["nominal", "ordinal", "interval"]
LEVELS: tuple[Level, ...] = ("nominal", "ordinal", "interval")
IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class LabelStudioExport:
    """A parsed Label Studio export: long annotations plus what was skipped, and why."""

    annotations: pl.DataFrame  # item, annotator, label, timestamp, annotation_id
    n_tasks: int
    n_annotations: int  # annotations seen in the file, cancelled ones included
    n_cancelled: int  # skipped: was_cancelled is true
    n_without_choice: int  # skipped: no "choices" result (e.g. an empty submission)


def _annotator_id(completed_by: Any, *, where: str) -> str:
    if isinstance(completed_by, bool) or completed_by is None:
        raise InputError(f"{where}: completed_by is {completed_by!r}; expected an int or a dict")
    if isinstance(completed_by, int | str):
        return str(completed_by)
    if isinstance(completed_by, Mapping):
        # The numeric id is stable across exports; the email is the fallback.
        for key in ("id", "email"):
            if completed_by.get(key) is not None:
                return str(completed_by[key])
    raise InputError(
        f"{where}: completed_by is {completed_by!r}; expected an int or a dict with id or email"
    )


@dataclass(frozen=True)
class _TaskRows:
    """The labelled annotations of one Label Studio task, and what it skipped."""

    rows: list[tuple[str, str, str, Any, str | None]]  # item, annotator, label, time, id
    n_annotations: int
    n_cancelled: int
    n_without_choice: int


def _read_tasks(path: Path) -> list[Any]:
    """The task list of a Label Studio JSON export.

    Parameters
    ----------
    path : Path
        The export file.

    Returns
    -------
    list[Any]
        The top-level JSON list, one entry per task (not yet checked).
    """
    try:
        tasks = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: cannot read a Label Studio JSON export: {exc}") from exc
    if not isinstance(tasks, list):
        raise InputError(
            f"{path}: expected a JSON list of tasks, got {type(tasks).__name__}"
        )
    return tasks


def _task_item(task: Mapping[str, Any], *, item_field: str | None, where: str) -> Any:
    """The item id of a task: ``data[item_field]``, or the task ``id`` without a field.

    Parameters
    ----------
    task : Mapping[str, Any]
        One task of the export.
    item_field : str or None
        The ``data`` field holding the item id; None: the task id is the item id.
    where : str
        The task, for messages.

    Returns
    -------
    Any
        The id as found in the JSON (not yet a string).
    """
    if item_field is None:
        if "id" not in task:
            raise InputError(f"{where}: no 'id'; pass item_field to take the item id from data")
        return task["id"]
    data = task.get("data")
    if not isinstance(data, Mapping) or data.get(item_field) is None:
        found = sorted(data) if isinstance(data, Mapping) else []
        raise InputError(
            f"{where}: data has no field {item_field!r} (found {found}); "
            "expected the item id there"
        )
    return data[item_field]


def _single_choice(ann: Mapping[str, Any], *, from_name: str | None, where: str) -> str | None:
    """The one choice of an annotation's ``choices`` result, None when it has none.

    Parameters
    ----------
    ann : Mapping[str, Any]
        One annotation of a task.
    from_name : str or None
        The choice control to read; None: any, as long as there is only one.
    where : str
        The annotation, for messages.

    Returns
    -------
    str or None
        The chosen label as text; None when the annotation chose nothing.
    """
    choices = [
        r for r in ann.get("result") or []
        if r.get("type") == "choices"
        and (from_name is None or r.get("from_name") == from_name)
    ]
    controls = sorted({str(r.get("from_name")) for r in choices})
    if len(controls) > 1:
        raise InputError(
            f"{where}: choices from several controls {controls}; pass from_name"
        )
    picked = [c for r in choices for c in (r.get("value") or {}).get("choices") or []]
    if not picked:
        return None
    if len(picked) > 1:
        raise InputError(
            f"{where}: {len(picked)} choices {picked}; expected one (single-label)"
        )
    return str(picked[0])


def _task_rows(
    task: Any,
    *,
    position: int,
    path: Path,
    item_field: str | None,
    from_name: str | None,
) -> _TaskRows:
    """One annotation row per labelled annotation of a task; cancelled and empty ones counted.

    Parameters
    ----------
    task : Any
        One entry of the export's task list (must be an object).
    position : int
        Its index in the list, for messages about a task without an id.
    path : Path
        The export file, for messages.
    item_field, from_name : str or None
        As in ``parse_label_studio_export``.

    Returns
    -------
    _TaskRows
        Rows of (item, annotator, label, timestamp text, annotation id) and the counts.
    """
    if not isinstance(task, Mapping):
        raise InputError(f"{path}: task #{position} is {type(task).__name__}; expected an object")
    where = f"{path}: task {task.get('id', f'#{position}')}"
    item = _task_item(task, item_field=item_field, where=where)
    rows: list[tuple[str, str, str, Any, str | None]] = []
    n_annotations = n_cancelled = n_without_choice = 0
    for a_pos, ann in enumerate(task.get("annotations") or []):
        n_annotations += 1
        a_where = f"{where}, annotation {ann.get('id', f'#{a_pos}')}"
        if ann.get("was_cancelled"):
            n_cancelled += 1
            continue
        label = _single_choice(ann, from_name=from_name, where=a_where)
        if label is None:
            n_without_choice += 1
            continue
        rows.append((
            str(item),
            _annotator_id(ann.get("completed_by"), where=a_where),
            label,
            ann.get("updated_at") or ann.get("created_at"),
            None if ann.get("id") is None else str(ann["id"]),
        ))
    return _TaskRows(rows=rows, n_annotations=n_annotations, n_cancelled=n_cancelled,
                     n_without_choice=n_without_choice)


def parse_label_studio_export(
    path: str | Path,
    *,
    item_field: str | None = None,
    from_name: str | None = None,
) -> LabelStudioExport:
    """Parse a Label Studio JSON export of a single-choice classification project.

    The item id is ``task["data"][item_field]`` when ``item_field`` is given, else the task
    ``id``. The annotator is ``completed_by`` (its ``id`` when it is a dict, else its
    ``email``). The label is the one choice of the ``choices`` result whose control is
    ``from_name`` (required only when a task has several choice controls). Cancelled
    annotations and annotations without a choice are skipped and counted.
    """
    path = Path(path)
    tasks = _read_tasks(path)
    parts = [
        _task_rows(task, position=t_pos, path=path, item_field=item_field, from_name=from_name)
        for t_pos, task in enumerate(tasks)
    ]
    names = ("item", "annotator", "label", "timestamp", "annotation_id")
    rows = [row for part in parts for row in part.rows]
    frame = pl.DataFrame(
        {name: [row[i] for row in rows] for i, name in enumerate(names)},
        schema=dict.fromkeys(names, pl.String),
    ).with_columns(
        pl.col("timestamp").str.to_datetime(time_zone="UTC", strict=False)
    )
    return LabelStudioExport(
        annotations=frame,
        n_tasks=len(tasks),
        n_annotations=sum(part.n_annotations for part in parts),
        n_cancelled=sum(part.n_cancelled for part in parts),
        n_without_choice=sum(part.n_without_choice for part in parts),
    )


def read_label_studio_export(
    path: str | Path,
    *,
    item_field: str | None = None,
    from_name: str | None = None,
) -> pl.DataFrame:
    """Long annotations (item, annotator, label, timestamp, annotation_id) from a Label Studio
    export. Use ``parse_label_studio_export`` to also get the skipped counts."""
    return parse_label_studio_export(path, item_field=item_field, from_name=from_name).annotations


def wide_to_long(
    df: pl.DataFrame,
    *,
    item_column: str,
    annotator_columns: Sequence[str] | None = None,
    annotator_name: str = "annotator",
    label_name: str = "label",
) -> pl.DataFrame:
    """One column per annotator -> long (item, annotator, label); null cells are dropped.

    ``annotator_columns`` defaults to every column except ``item_column``.
    """
    if item_column not in df.columns:
        raise InputError(f"wide annotations: no item column {item_column!r} (found {df.columns})")
    cols = [c for c in df.columns if c != item_column] if annotator_columns is None else list(
        annotator_columns
    )
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise InputError(f"wide annotations: annotator columns {missing} not in {df.columns}")
    if not cols:
        raise InputError("wide annotations: no annotator columns; expected at least one")
    wide = df.select(item_column, *cols)
    if len({df.schema[c] for c in cols}) > 1:  # e.g. an all-null column next to Int64 ones
        stacked = pl.concat([wide.select(pl.col(c).alias("v")) for c in cols],
                            how="vertical_relaxed")
        wide = wide.with_columns(pl.col(cols).cast(stacked.schema["v"]))
    return wide.unpivot(
        index=item_column, on=cols, variable_name=annotator_name, value_name=label_name
    ).drop_nulls(label_name)


@dataclass(frozen=True)
class EncodedAnnotations:
    """Validated annotations as integer codes: one entry per (item, annotator) label.

    ``items`` and ``annotators`` are sorted; codes index into them. ``categories`` is the
    category order (declared or sorted observed); ``values`` holds the numeric value of each
    category for the interval level (category positions otherwise).
    """

    items: pl.Series
    annotators: pl.Series
    categories: pl.Series
    values: FloatArray
    level: Level
    item_idx: IntArray
    annotator_idx: IntArray
    label_idx: IntArray
    n_input_rows: int
    n_null_labels: int
    n_duplicates_dropped: int

    @property
    def n_items(self) -> int:
        return self.items.len()

    @property
    def n_annotators(self) -> int:
        return self.annotators.len()

    @property
    def n_categories(self) -> int:
        return self.categories.len()

    def counts(self) -> IntArray:
        """Items x categories matrix: how many annotators gave item u category k."""
        k = self.n_categories
        flat = np.bincount(self.item_idx * k + self.label_idx, minlength=self.n_items * k)
        return flat.reshape(self.n_items, k).astype(np.int64)


def _sorted_unique(series: pl.Series) -> pl.Series:
    return series.unique().sort()


def encode_labels(
    labels: pl.Series,
    categories: pl.Series,
    *,
    where: str,
) -> IntArray:
    """Positions of ``labels`` in ``categories``; InputError naming any label not there.

    Numeric labels match numeric categories by value (1 == 1.0); anything else matches on
    the string form, so "1" in a CSV matches a declared category 1.
    """
    numeric = labels.dtype.is_numeric() and categories.dtype.is_numeric()

    def key(s: pl.Series) -> pl.Series:
        return (s.cast(pl.Float64) if numeric else s).cast(pl.String).alias("_key")

    lookup = pl.DataFrame(
        [key(categories), pl.Series("_code", np.arange(categories.len(), dtype=np.int64))]
    )
    joined = key(labels).to_frame().join(lookup, on="_key", how="left", maintain_order="left")
    unknown = joined.filter(pl.col("_code").is_null())["_key"].unique().sort()
    if unknown.len():
        shown = unknown.head(10).to_list()
        more = f" and {unknown.len() - 10} more" if unknown.len() > 10 else ""
        raise InputError(
            f"{where}: {unknown.len()} label value(s) not in the declared categories: "
            f"{shown}{more}; expected one of {categories.to_list()}"
        )
    return joined["_code"].to_numpy().astype(np.int64)


def resolve_categories(
    labels: pl.Series,
    *,
    level: Level,
    categories: Sequence[Any] | None,
    where: str,
) -> pl.Series:
    """The category order: declared, else sorted observed labels (see module docstring)."""
    if categories is not None:
        try:
            cats = pl.Series("category", list(categories))
        except (TypeError, pl.exceptions.PolarsError) as exc:
            raise InputError(f"{where}: categories {list(categories)!r} mix types: {exc}") from exc
        if cats.len() == 0:
            raise InputError(f"{where}: categories is empty; expected at least one category")
        if cats.is_duplicated().any():
            dup = cats.filter(cats.is_duplicated()).unique().to_list()
            raise InputError(f"{where}: categories repeat {dup}; expected each once")
    else:
        if level == "ordinal" and not labels.dtype.is_numeric():
            raise InputError(
                f"{where}: level 'ordinal' with {labels.dtype} labels needs the category order "
                "(categories=[...]); observed labels "
                f"{_sorted_unique(labels).head(10).to_list()}"
            )
        cats = _sorted_unique(labels).alias("category")
    if level == "interval":
        try:
            numeric = cats.cast(pl.Float64, strict=True)
        except pl.exceptions.PolarsError as exc:
            raise InputError(
                f"{where}: level 'interval' needs numeric labels; got {cats.dtype} values "
                f"{cats.head(10).to_list()}"
            ) from exc
        # Interval categories are ordered by value ("10" after "9"): weighted kappa uses
        # category positions.
        cats = cats.gather(np.argsort(numeric.to_numpy(), kind="stable"))
    return cats


def _check_annotation_frame(
    annotations: pl.DataFrame,
    *,
    item_column: str,
    annotator_column: str,
    label_column: str,
    level: Level,
    source: str,
) -> None:
    """Raise an InputError for an unknown level, missing columns, no rows, or null items or
    annotators.

    Parameters
    ----------
    annotations : pl.DataFrame
        Long annotations, one row per label.
    item_column, annotator_column, label_column : str
        The columns that must be there (item and annotator also without nulls).
    level : Level
        Must be one of ``LEVELS``.
    source : str
        The input's name in messages.
    """
    if level not in LEVELS:
        raise InputError(f"{source}: level {level!r} is not one of {list(LEVELS)}")
    missing = [c for c in (item_column, annotator_column, label_column)
               if c not in annotations.columns]
    if missing:
        raise InputError(
            f"{source}: missing column(s) {missing}; found {annotations.columns}"
        )
    if annotations.height == 0:
        raise InputError(f"{source}: no annotation rows; expected at least one labelled item")
    for col in (item_column, annotator_column):
        n_null = annotations[col].null_count()
        if n_null:
            raise InputError(f"{source}: column {col!r} has {n_null} null value(s); expected none")


def _keep_latest_labels(
    frame: pl.DataFrame,
    *,
    item_column: str,
    annotator_column: str,
    timestamp_column: str | None,
    has_timestamp: bool,
    source: str,
) -> tuple[pl.DataFrame, int]:
    """One label per (item, annotator): the latest by timestamp, or an InputError without one.

    Parameters
    ----------
    frame : pl.DataFrame
        Annotations without null labels: item, annotator, label[, timestamp] columns.
    item_column, annotator_column : str
        The key of a label.
    timestamp_column : str or None
        The declared timestamp column.
    has_timestamp : bool
        Whether ``frame`` has it; without it repeats are an error.
    source : str
        The input's name in messages.

    Returns
    -------
    tuple[pl.DataFrame, int]
        ``frame`` with repeats dropped (rows reordered when any were), and how many.
    """
    key = [item_column, annotator_column]
    dup_mask = frame.select(pl.struct(key).is_duplicated()).to_series()
    if not dup_mask.any():
        return frame, 0
    if not has_timestamp:
        first = frame.filter(dup_mask).unique(key, maintain_order=True).head(3).select(key)
        raise InputError(
            f"{source}: {int(dup_mask.sum())} rows label an item twice by the same annotator "
            f"(e.g. {first.rows()}); expected one label per ({item_column}, "
            f"{annotator_column}), or a {timestamp_column!r} column to keep the latest"
        )
    assert timestamp_column is not None
    latest = (
        frame.with_row_index("_row")
        .sort([timestamp_column, "_row"], nulls_last=False)
        .unique(key, keep="last", maintain_order=False)
        .drop("_row")
    )
    return latest, frame.height - latest.height


def encode_annotations(
    annotations: pl.DataFrame,
    *,
    item_column: str = "item",
    annotator_column: str = "annotator",
    label_column: str = "label",
    timestamp_column: str | None = "timestamp",
    level: Level = "nominal",
    categories: Sequence[Any] | None = None,
    source: str = "annotations",
) -> EncodedAnnotations:
    """Validate long annotations and encode them as integer codes (rules: module docstring)."""
    _check_annotation_frame(annotations, item_column=item_column,
                            annotator_column=annotator_column, label_column=label_column,
                            level=level, source=source)
    has_ts = timestamp_column is not None and timestamp_column in annotations.columns
    keep = [item_column, annotator_column, label_column] + ([timestamp_column] if has_ts else [])
    frame = annotations.select(keep)
    n_null_labels = frame[label_column].null_count()
    frame = frame.drop_nulls(label_column)
    if frame.height == 0:
        raise InputError(f"{source}: column {label_column!r} is all null; expected labels")
    frame, n_dups = _keep_latest_labels(
        frame, item_column=item_column, annotator_column=annotator_column,
        timestamp_column=timestamp_column, has_timestamp=has_ts, source=source,
    )
    where = f"{source}: column {label_column!r}"
    cats = resolve_categories(frame[label_column], level=level, categories=categories,
                              where=where)
    label_idx = encode_labels(frame[label_column], cats, where=where)
    values = (
        cats.cast(pl.Float64).to_numpy().astype(np.float64)
        if level == "interval"
        else np.arange(cats.len(), dtype=np.float64)
    )
    idx = frame.select(
        (pl.col(item_column).rank("dense") - 1).cast(pl.Int64).alias("i"),
        (pl.col(annotator_column).rank("dense") - 1).cast(pl.Int64).alias("a"),
    )
    return EncodedAnnotations(
        items=_sorted_unique(frame[item_column]),
        annotators=_sorted_unique(frame[annotator_column]),
        categories=cats,
        values=values,
        level=level,
        item_idx=idx["i"].to_numpy().astype(np.int64),
        annotator_idx=idx["a"].to_numpy().astype(np.int64),
        label_idx=label_idx,
        n_input_rows=annotations.height,
        n_null_labels=n_null_labels,
        n_duplicates_dropped=n_dups,
    )


def to_cleanlab_multiannotator(encoded: EncodedAnnotations) -> FloatArray:
    """Items x annotators matrix of category codes with NaN for missing: the
    ``labels_multiannotator`` input of cleanlab's CROWDLAB (rows follow ``encoded.items``,
    columns ``encoded.annotators``, codes follow ``encoded.categories``)."""
    wide = np.full((encoded.n_items, encoded.n_annotators), np.nan)
    wide[encoded.item_idx, encoded.annotator_idx] = encoded.label_idx
    return wide
