"""Reviewer corrections in the lake: overlay batches that never edit the source labels.

``lake/<dataset>/corrections/batch=<hash>/`` holds ``data.parquet`` (``OVERLAY_SCHEMA``),
``rejects.parquet`` and, when the reviewed batch had gold items, ``gold_answers.parquet``.
A run's labels are the source's with the latest correction per id on top.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from labelgate.store.lake import MARKER, Batch, content_hash, existing_batch, lake_dir, write_batch

if TYPE_CHECKING:
    from labelgate.stages.review import ValidatedCorrections

CORRECTIONS_SOURCE = "corrections"  # lake/<dataset>/corrections/batch=<hash>/

OVERLAY_SCHEMA: dict[str, Any] = {
    "id": pl.String,
    "old_label": pl.String,
    "new_label": pl.String,
    "changed": pl.Boolean,
    "reviewer": pl.String,
    "timestamp": pl.Datetime("us", "UTC"),  # when the reviewer decided (import time if unknown)
    "imported_at": pl.Datetime("us", "UTC"),
    "where": pl.String,
    "_batch": pl.String,
}


def store_corrections(
    validated: ValidatedCorrections,
    *,
    source_file: str | Path,
    dataset: str,
    store: Path,
    imported_at: datetime | None = None,
) -> Batch:
    """Write the applied corrections as an overlay batch in the lake:
    ``lake/<dataset>/corrections/batch=<hash>/`` with ``data.parquet`` (``OVERLAY_SCHEMA``:
    who, when, old label, new label), ``rejects.parquet`` (rejected, with reasons) and
    ``_batch.json``. The hash covers the file's bytes: importing the same file again is a
    no-op (the existing batch is returned with ``reused=True``)."""
    source_file = Path(source_file)
    digest = content_hash(source_file, options={"format": "corrections"})
    root = lake_dir(store, dataset, CORRECTIONS_SOURCE)
    target = root / f"batch={digest}"
    existing = existing_batch(target)
    if existing is not None:
        return existing
    now = (imported_at or datetime.now(UTC)).astimezone(UTC)
    data = validated.applied.with_columns(
        pl.col("timestamp").fill_null(pl.lit(now).cast(pl.Datetime("us", "UTC"))),
        pl.lit(now).cast(pl.Datetime("us", "UTC")).alias("imported_at"),
        pl.lit(digest).alias("_batch"),
    ).select([pl.col(c).cast(t) for c, t in OVERLAY_SCHEMA.items()])
    rejects = validated.rejected.with_columns(pl.lit(digest).alias("_batch"))
    batch = Batch(
        dataset=dataset, source=CORRECTIONS_SOURCE, batch=digest, file=str(source_file),
        format="corrections", rows=data.height, rejected=rejects.height, path=str(target),
        ingested_at=now.isoformat(timespec="seconds"),
    )
    frames = {"data": data, "rejects": rejects}
    if validated.gold_answers.height:
        frames["gold_answers"] = validated.gold_answers
    write_batch(batch, frames)
    return batch


def load_corrections(store: Path, dataset: str) -> pl.DataFrame:
    """Every complete corrections batch of a dataset (``OVERLAY_SCHEMA``), oldest first."""
    root = lake_dir(store, dataset, CORRECTIONS_SOURCE)
    frames = [
        pl.read_parquet(d / "data.parquet")
        for d in sorted(root.glob("batch=*")) if (d / MARKER).is_file()
    ]
    if not frames:
        return pl.DataFrame(schema=OVERLAY_SCHEMA)
    return pl.concat(
        [f.select([pl.col(c).cast(t) for c, t in OVERLAY_SCHEMA.items()]) for f in frames]
    ).sort(["imported_at", "timestamp"])


def load_gold_answers(store: Path, dataset: str) -> pl.DataFrame:
    """Reviewer answers on gold items across every corrections batch (id, label, reviewer,
    timestamp, where, gold_label): feed ``reviewer_accuracy``."""
    root = lake_dir(store, dataset, CORRECTIONS_SOURCE)
    frames = [
        pl.read_parquet(d / "gold_answers.parquet")
        for d in sorted(root.glob("batch=*"))
        if (d / MARKER).is_file() and (d / "gold_answers.parquet").is_file()
    ]
    return pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame()
