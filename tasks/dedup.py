"""Exact and near-duplicate clusters."""

from __future__ import annotations

import polars as pl
from prefect import get_run_logger

from checks.contract import ContractResult
from labelgate.spec import Spec
from labelgate.stages import steps
from labelgate.store import RunStore
from tasks.common import HOUR, stage_task
from tasks.partition import mapper as stages_mapper


@stage_task("dedup", timeout=2 * HOUR)
def dedup(spec: Spec, store: RunStore, contract: ContractResult) -> steps.DedupOutcome:
    """Exact and near-duplicate clusters; stored in DuckDB table `duplicates`."""
    outcome = steps.detect_duplicates(contract.valid, spec=spec, mapper=stages_mapper())
    clusters = outcome.result.clusters.select(
        pl.col("cluster_id").cast(pl.String), pl.col("id").cast(pl.String), "kind",
        "similarity", "is_representative",
    )
    store.record_rows("duplicates", clusters)
    s = outcome.section
    get_run_logger().info(
        "dedup: %s duplicate rows in %s clusters (%s with conflicting labels)",
        s["count"], s["clusters"], s["conflicting_clusters"],
    )
    return outcome
