"""Reviewer corrections: read them, validate them, score reviewers, apply the overlay.

``read_corrections`` / ``read_corrections_file`` read a Label Studio export or a CSV / JSONL
sheet; ``validate_corrections`` splits the answers into applied / rejected (with reasons) /
gold answers; ``reviewer_accuracy`` scores reviewers on gold items; ``latest_corrections``
and ``apply_corrections`` put the stored overlay (``labelgate.store.corrections``) on a
run's labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from labelgate.errors import InputError
from labelgate.stages.agreement.annotations import parse_label_studio_export
from labelgate.stages.review.common import ID_FIELD, _require

CORRECTION_COLUMNS: dict[str, Any] = {
    "id": pl.String,
    "label": pl.String,
    "reviewer": pl.String,
    "timestamp": pl.Datetime("us", "UTC"),
    "where": pl.String,  # file and row / annotation, for messages
}


REJECTED_SCHEMA: dict[str, Any] = {
    **CORRECTION_COLUMNS,
    "check": pl.String,  # unknown_id | unknown_label | duplicate
    "reason": pl.String,
}


# --------------------------------------------------------------------------- import


_SHOWN_IDS = 10  # unanswered rows named in messages


@dataclass(frozen=True)
class CorrectionsFile:
    """A corrections file as read: the answered rows, and what was skipped unanswered."""

    corrections: pl.DataFrame  # CORRECTION_COLUMNS
    unlabelled: pl.DataFrame  # id (null if empty), row: CSV/JSONL rows with an empty label
    n_skipped_annotations: int = 0  # Label Studio: cancelled or without a choice

    def skipped_summary(self) -> str | None:
        """What was skipped for want of a label, for the import's output; None if nothing.
        E.g. ``2 row(s) with no label skipped (ids a, b)``."""
        parts = []
        n = self.unlabelled.height
        if n:
            shown = [f"row {r}" if i is None or i == "" else str(i)
                     for i, r in self.unlabelled.head(_SHOWN_IDS).select("id", "row").rows()]
            more = f", ... {n - _SHOWN_IDS} more" if n > _SHOWN_IDS else ""
            parts.append(f"{n} row(s) with no label skipped (ids {', '.join(shown)}{more})")
        if self.n_skipped_annotations:
            parts.append(f"{self.n_skipped_annotations} annotation(s) cancelled or without a "
                         "choice skipped")
        return "; ".join(parts) or None


def read_corrections(path: str | Path, *, id_field: str = ID_FIELD,
                     from_name: str | None = None) -> pl.DataFrame:
    """Reviewer answers (id, label, reviewer, timestamp, where) from a Label Studio JSON export
    (``.json``: completed annotations; ``completed_by`` -> reviewer, the chosen choice ->
    label, ``data.<id_field>`` -> id; cancelled or empty annotations are skipped) or a
    CSV / JSONL file with columns id, label, reviewer and optional timestamp (ISO 8601).
    Blank labels in CSV/JSONL are rows the reviewer did not answer: skipped (counted by
    ``read_corrections_file``)."""
    return read_corrections_file(path, id_field=id_field, from_name=from_name).corrections


def _label_studio_corrections(
    path: Path, *, id_field: str, from_name: str | None
) -> CorrectionsFile:
    """Reviewer answers from a Label Studio JSON export.

    Parameters
    ----------
    path : Path
        The export file.
    id_field, from_name
        As in ``read_corrections``.

    Returns
    -------
    CorrectionsFile
        One correction per completed annotation (``CORRECTION_COLUMNS``), no unlabelled
        rows, and the cancelled / empty annotations counted.
    """
    export = parse_label_studio_export(path, item_field=id_field, from_name=from_name)
    ann = export.annotations
    return CorrectionsFile(
        corrections=ann.select(
            pl.col("item").alias("id"), "label", pl.col("annotator").alias("reviewer"),
            pl.col("timestamp").cast(pl.Datetime("us", "UTC")),
            (pl.lit(f"{path}: annotation ") + pl.col("annotation_id").fill_null("?"))
            .alias("where"),
        ),
        unlabelled=pl.DataFrame(schema={"id": pl.String, "row": pl.Int64}),
        n_skipped_annotations=export.n_cancelled + export.n_without_choice,
    )


def _read_sheet(path: Path, *, suffix: str) -> pl.DataFrame:
    """A CSV (all text) or JSONL corrections sheet as read, with its required columns.

    Parameters
    ----------
    path : Path
        The file.
    suffix : str
        Its lowercased suffix: ``.csv``, ``.jsonl`` or ``.ndjson`` (others are an error).

    Returns
    -------
    pl.DataFrame
        One row per line, with at least id, label, reviewer.
    """
    try:
        if suffix == ".csv":
            raw = pl.read_csv(path, infer_schema_length=0)
        elif suffix in (".jsonl", ".ndjson"):
            raw = pl.read_ndjson(path, infer_schema_length=None)
        else:
            raise InputError(
                f"{path}: unknown corrections format {suffix!r}; expected .json (Label Studio "
                "export), .csv or .jsonl"
            )
    except (pl.exceptions.ComputeError, OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read corrections: {exc}") from None
    missing = [c for c in ("id", "label", "reviewer") if c not in raw.columns]
    if missing:
        raise InputError(
            f"{path}: missing column(s) {missing}; expected id, label, reviewer[, timestamp]; "
            f"the file has {raw.columns}"
        )
    return raw


def _sheet_corrections(raw: pl.DataFrame, *, path: Path) -> CorrectionsFile:
    """The answered rows of a corrections sheet, and the unanswered ones (empty label).

    Parameters
    ----------
    raw : pl.DataFrame
        ``_read_sheet`` output: id, label, reviewer[, timestamp] (ISO 8601 text).
    path : Path
        The file, for ``where`` and messages.

    Returns
    -------
    CorrectionsFile
        Answered rows in ``CORRECTION_COLUMNS`` (text stripped), and (id, row) of the rows
        with no label (rows numbered from 1).
    """
    row = pl.int_range(1, pl.len() + 1, dtype=pl.Int64)
    every = raw.select(
        pl.col("id").cast(pl.String).str.strip_chars(),
        pl.col("label").cast(pl.String).str.strip_chars(),
        pl.col("reviewer").cast(pl.String).str.strip_chars(),
        (pl.col("timestamp").cast(pl.String) if "timestamp" in raw.columns
         else pl.lit(None, pl.String)).alias("_ts"),
        (pl.lit(f"{path}: row ") + row.cast(pl.String)).alias("where"),
        row.alias("_row"),
    )
    answered = pl.col("label").is_not_null() & (pl.col("label") != "")
    unlabelled = every.filter(~answered).select("id", pl.col("_row").alias("row"))
    frame = every.filter(answered)
    for column in ("id", "reviewer"):
        bad = frame.filter(pl.col(column).is_null() | (pl.col(column) == ""))
        if bad.height:
            raise InputError(f"{bad.item(0, 'where')}: empty {column!r}; expected a value")
    ts = frame.get_column("_ts").str.to_datetime(time_zone="UTC", strict=False)
    bad_ts = frame.filter(pl.Series(ts.is_null()) & pl.col("_ts").is_not_null())
    if bad_ts.height:
        raise InputError(
            f"{bad_ts.item(0, 'where')}: timestamp {bad_ts.item(0, '_ts')!r} is not ISO 8601"
        )
    corrections = frame.with_columns(
        ts.cast(pl.Datetime("us", "UTC")).alias("timestamp")
    ).select(list(CORRECTION_COLUMNS))
    return CorrectionsFile(corrections=corrections, unlabelled=unlabelled)


def read_corrections_file(path: str | Path, *, id_field: str = ID_FIELD,
                          from_name: str | None = None) -> CorrectionsFile:
    """``read_corrections``, also saying which rows were skipped unanswered (an empty label:
    id and row number) so the import reports them rather than dropping them silently."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such corrections file")
    suffix = path.suffix.lower()
    if suffix == ".json":
        return _label_studio_corrections(path, id_field=id_field, from_name=from_name)
    return _sheet_corrections(_read_sheet(path, suffix=suffix), path=path)


@dataclass(frozen=True)
class ValidatedCorrections:
    """A corrections file, checked: what to apply, what was rejected and why, gold answers."""

    applied: pl.DataFrame  # id, old_label, new_label, changed, reviewer, timestamp, where
    rejected: pl.DataFrame  # the correction's columns + check, reason
    gold_answers: pl.DataFrame = field(  # id, label, reviewer, timestamp, where, gold_label
        default_factory=lambda: pl.DataFrame()
    )

    def reasons(self) -> dict[str, int]:
        """Rejected count per check (unknown_id, unknown_label, duplicate)."""
        if self.rejected.height == 0:
            return {}
        counts = self.rejected.group_by("check").len().sort(["len", "check"],
                                                           descending=[True, False])
        return {str(k): int(n) for k, n in counts.iter_rows()}


def _split_gold_answers(
    corr: pl.DataFrame, gold: pl.DataFrame | None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Set apart the answers on gold items.

    Parameters
    ----------
    corr : pl.DataFrame
        Corrections (``CORRECTION_COLUMNS`` + ``_pos``).
    gold : pl.DataFrame or None
        Gold items (id, label); None or empty: no gold.

    Returns
    -------
    tuple[pl.DataFrame, pl.DataFrame]
        The corrections on other items (same columns), and the answers on gold items
        (``CORRECTION_COLUMNS`` + gold_label; an empty frame without gold).
    """
    if gold is None or not gold.height:
        return corr, pl.DataFrame()
    _require(gold, ["id", "label"], what="gold")
    g = gold.select(pl.col("id").cast(pl.String), pl.col("label").cast(pl.String)
                    .alias("gold_label")).unique("id", keep="first")
    return corr.join(g, on="id", how="anti"), corr.join(g, on="id", how="inner").drop("_pos")


def _reject_unknown(
    corr: pl.DataFrame, *, current: pl.DataFrame, known: list[str]
) -> tuple[pl.DataFrame, list[pl.DataFrame]]:
    """Take out corrections of unknown ids and to unknown labels, with their reasons.

    Parameters
    ----------
    corr : pl.DataFrame
        Corrections (``CORRECTION_COLUMNS`` + ``_pos``).
    current : pl.DataFrame
        The valid items (id, old_label), one row per id.
    known : list[str]
        The classes.

    Returns
    -------
    tuple[pl.DataFrame, list[pl.DataFrame]]
        The remaining corrections, and the unknown-id and unknown-label rejects (the
        corrections' columns + check, reason).
    """
    unknown_id = corr.join(current, on="id", how="anti").with_columns(
        pl.lit("unknown_id").alias("check"),
        (pl.lit("unknown id: ") + pl.col("id")
         + pl.lit(" is not among the latest run's valid items")).alias("reason"))
    corr = corr.join(current, on="id", how="semi")
    bad_label = ~pl.col("label").is_in(known)
    unknown_label = corr.filter(bad_label).with_columns(
        pl.lit("unknown_label").alias("check"),
        (pl.lit("unknown label: ") + pl.col("label") + pl.lit(f" not in classes {known}"))
        .alias("reason"))
    return corr.filter(~bad_label), [unknown_id, unknown_label]


def _latest_per_id(corr: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame | None]:
    """Per id the latest correction (timestamp, then file order); the others as rejects.

    Parameters
    ----------
    corr : pl.DataFrame
        Corrections (``CORRECTION_COLUMNS`` + ``_pos``).

    Returns
    -------
    tuple[pl.DataFrame, pl.DataFrame or None]
        One row per id (sorted by id), and the superseded corrections with check and
        reason naming the winner (None when no id repeats).
    """
    ranked = corr.sort(["id", "timestamp", "_pos"], nulls_last=False)
    latest = ranked.unique("id", keep="last", maintain_order=True)
    dups = ranked.join(latest.select("_pos"), on="_pos", how="anti")
    if not dups.height:
        return latest, None
    winner = latest.select("id", pl.col("where").alias("_winner"))
    return latest, dups.join(winner, on="id").with_columns(
        pl.lit("duplicate").alias("check"),
        (pl.lit("duplicate correction of id ") + pl.col("id")
         + pl.lit(": superseded by the later one at ") + pl.col("_winner")).alias("reason")
    ).drop("_winner")


def validate_corrections(
    corrections: pl.DataFrame,
    *,
    items: pl.DataFrame,
    classes: Sequence[str],
    gold: pl.DataFrame | None = None,
) -> ValidatedCorrections:
    """Split corrections into applied and rejected (with a reason each): ids not among
    ``items`` (id, label), labels outside ``classes``, and repeated corrections of one id (the
    latest by timestamp, then file order, is kept; the others are reported). Answers on
    ``gold`` items (id, label) are kept apart for reviewer accuracy, never applied."""
    _require(corrections, ["id", "label", "reviewer", "timestamp", "where"], what="corrections")
    _require(items, ["id", "label"], what="items")
    corr = corrections.select(
        [pl.col(c).cast(t) for c, t in CORRECTION_COLUMNS.items()]
    ).with_row_index("_pos")
    current = items.select(pl.col("id").cast(pl.String), pl.col("label").cast(pl.String)
                           .alias("old_label")).unique("id", keep="first")
    corr, gold_answers = _split_gold_answers(corr, gold)
    corr, rejected = _reject_unknown(corr, current=current, known=[str(c) for c in classes])
    latest, duplicates = _latest_per_id(corr)
    if duplicates is not None:
        rejected.append(duplicates)
    applied = latest.sort("_pos").join(current, on="id", how="left", maintain_order="left")
    applied = applied.select(
        "id", "old_label", pl.col("label").alias("new_label"),
        (pl.col("label") != pl.col("old_label")).alias("changed"),
        "reviewer", "timestamp", "where",
    )
    rej = pl.concat([r.select([*CORRECTION_COLUMNS, "check", "reason", "_pos"]) for r in rejected])
    return ValidatedCorrections(
        applied=applied,
        rejected=rej.sort("_pos").drop("_pos").select(
            [pl.col(c).cast(t) for c, t in REJECTED_SCHEMA.items()]),
        gold_answers=gold_answers,
    )


def reviewer_accuracy(answers: pl.DataFrame, gold: pl.DataFrame | None = None) -> pl.DataFrame:
    """Per reviewer: n_gold, n_correct, accuracy on gold items. ``answers`` has id, label,
    reviewer and either a gold_label column (``ValidatedCorrections.gold_answers``) or the
    ``gold`` frame (id, label) is given."""
    schema = {"reviewer": pl.String, "n_gold": pl.Int64, "n_correct": pl.Int64,
              "accuracy": pl.Float64}
    if answers.height == 0:
        return pl.DataFrame(schema=schema)
    if "gold_label" not in answers.columns:
        if gold is None:
            raise InputError("reviewer_accuracy: pass gold (id, label) or answers.gold_label")
        g = gold.select(pl.col("id").cast(pl.String),
                        pl.col("label").cast(pl.String).alias("gold_label"))
        answers = answers.with_columns(pl.col("id").cast(pl.String)).join(g, on="id")
    out = answers.group_by("reviewer").agg(
        pl.len().cast(pl.Int64).alias("n_gold"),
        (pl.col("label").cast(pl.String) == pl.col("gold_label")).sum().cast(pl.Int64)
        .alias("n_correct"),
    ).with_columns((pl.col("n_correct") / pl.col("n_gold")).alias("accuracy"))
    return out.sort("reviewer").select([pl.col(c).cast(t) for c, t in schema.items()])


# --------------------------------------------------------------------------- overlay


@dataclass(frozen=True)
class CorrectionStats:
    """What applying the overlay did to a run's labels."""

    n_corrections: int  # overlay rows across all batches
    n_ids_corrected: int  # valid rows that have a correction
    n_changed: int  # of those, rows whose label the correction changes
    n_confirmed: int  # rows whose correction repeats the current label
    n_not_in_valid: int  # corrected ids absent from this run's valid rows
    n_stale: int  # corrections whose old label is no longer the source's label

    def to_dict(self) -> dict[str, int]:
        return {k: int(v) for k, v in self.__dict__.items()}


def latest_corrections(corrections: pl.DataFrame) -> pl.DataFrame:
    """Per id the decision that counts: the latest correction by timestamp, then import
    time, then overlay order (id, new_label, old_label as text)."""
    return (
        corrections.with_columns(pl.col("id").cast(pl.String))
        .with_row_index("_pos")
        .sort(["id", "timestamp", "imported_at", "_pos"], nulls_last=False)
        .unique("id", keep="last")
        .select("id", pl.col("new_label").cast(pl.String), pl.col("old_label").cast(pl.String))
    )


def apply_corrections(
    valid: pl.DataFrame,
    corrections: pl.DataFrame,
    *,
    id_column: str,
    label_column: str,
) -> tuple[pl.DataFrame, CorrectionStats]:
    """The run's valid rows with the overlay applied: per id the latest correction (by
    timestamp, then import time) replaces ``label_column``. Row order, columns and dtypes
    are unchanged; ids are matched as text."""
    _require(valid, [id_column, label_column], what="valid rows")
    _require(corrections, ["id", "new_label", "old_label", "timestamp", "imported_at"],
             what="corrections")
    latest = latest_corrections(corrections).rename({"new_label": "_new", "old_label": "_old"})
    dtype = valid.schema[label_column]
    keyed = valid.with_columns(pl.col(id_column).cast(pl.String).alias("_id"))
    joined = keyed.join(latest, left_on="_id", right_on="id", how="left", maintain_order="left")
    try:
        new = joined.get_column("_new").cast(dtype, strict=True)
    except pl.exceptions.InvalidOperationError as exc:
        raise InputError(
            f"corrections: a corrected label does not cast to column {label_column!r} "
            f"({dtype}): {exc}"
        ) from None
    current = joined.get_column(label_column)
    has = joined.get_column("_new").is_not_null()
    changed = has & (new.cast(pl.String) != current.cast(pl.String)).fill_null(True)
    stale = has & (joined.get_column("_old") != current.cast(pl.String)).fill_null(False)
    out = joined.with_columns(
        pl.when(has).then(new).otherwise(pl.col(label_column)).alias(label_column)
    ).select(valid.columns)
    n_has, n_changed = int(has.sum()), int(changed.sum())
    matched = latest.join(keyed.select(pl.col("_id").alias("id")), on="id", how="semi").height
    stats = CorrectionStats(
        n_corrections=corrections.height,
        n_ids_corrected=n_has,
        n_changed=n_changed,
        n_confirmed=n_has - n_changed,
        n_not_in_valid=latest.height - matched,
        n_stale=int(stale.sum()),
    )
    return out, stats
