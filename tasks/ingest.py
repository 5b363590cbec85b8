"""Ingest: each input file into the lake; instruction data into the canonical frame."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl
from prefect import get_run_logger

from labelgate.spec import Spec
from labelgate.stages import steps
from labelgate.store import RunStore
from labelgate.store.lake import Batch
from tasks.common import HOUR, stage_task


@stage_task("ingest", timeout=2 * HOUR, retry_io=True)
def ingest(spec: Spec, store: RunStore) -> list[Batch]:
    """Each matched input file becomes (or reuses) a content-addressed lake batch."""
    batches = store.ingest(spec.sources.items, key="items", base_dir=spec.base_dir)
    store.record_batches(batches)
    log = get_run_logger()
    for b in batches:
        state = "reused" if b.reused else "new"
        log.info("batch %s (%s): %s rows, %s unparseable, %s", b.batch, b.file, b.rows,
                 b.rejected, state)
    return batches


@dataclass(frozen=True)
class Canonical:
    """task instruction: the run's rows as the canonical frame, and unparseable records."""

    rows: pl.DataFrame
    rejects: pl.DataFrame


@stage_task("canonicalize", timeout=2 * HOUR)
def canonicalize(spec: Spec, store: RunStore, batches: list[Batch]) -> Canonical:
    """task instruction: each batch's rows in the canonical frame (errors name the file)."""
    frames, rejects = [], []
    for b in batches:
        rows, bad = store.load([b])
        frames.append(steps.canonicalize(rows, spec=spec, where=b.file))
        rejects.append(bad)
    out = Canonical(pl.concat(frames, how="diagonal_relaxed"),
                    pl.concat(rejects, how="diagonal_relaxed"))
    get_run_logger().info(
        "canonicalize (%s): %s rows, %s unparseable", spec.sources.items.style,
        out.rows.height, out.rejects.height,
    )
    return out
