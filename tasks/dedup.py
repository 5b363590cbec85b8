"""Exact and near-duplicate clusters; a night queries only its new rows against the key
graph the last run kept (`labelgate.stages.dedup_incremental`)."""

from __future__ import annotations

import polars as pl
from prefect import get_run_logger

from checks.contract import ContractResult
from labelgate.spec import Spec
from labelgate.stages import dedup_incremental, steps
from labelgate.store import RunStore, duplicate_rows, kept_dedup, warehouse
from tasks.common import HOUR, stage_task
from tasks.partition import mapper as stages_mapper


@stage_task("dedup", timeout=2 * HOUR)
def dedup(spec: Spec, store: RunStore, contract: ContractResult) -> steps.DedupOutcome:
    """Exact and near-duplicate clusters; stored in DuckDB table `duplicates`."""
    outcome = _detect(spec, store, contract.valid)
    result = outcome.result

    def clusters() -> pl.DataFrame:  # every member row: read only when stored whole
        return result.clusters.select(
            pl.col("cluster_id").cast(pl.String), pl.col("id").cast(pl.String), "kind",
            "similarity", "is_representative",
        )

    since = outcome.section.get("refresh_kept_from")
    with warehouse.connect(store.run.warehouse, keep=True) as con:
        stored = duplicate_rows.record_duplicates(
            con, clusters, run_id=store.run.run_id, dataset=store.dataset,
            changed=result.changed, since=str(since) if since else None,
            rows=int(result.summary["rows_in_clusters"]))
    s = outcome.section
    get_run_logger().info(
        "dedup: %s duplicate rows in %s clusters (%s with conflicting labels); %s; "
        "warehouse rows: %s", s["count"], s["clusters"], s["conflicting_clusters"],
        s.get("refresh", "full"), stored,
    )
    return outcome


def _detect(spec: Spec, store: RunStore, valid: pl.DataFrame) -> steps.DedupOutcome:
    """Build on the kept key graph when `dedup.refresh` allows it, then keep this run's."""
    assert spec.dedup is not None
    refresh = spec.dedup.refresh
    if refresh is None:
        outcome = steps.detect_duplicates(valid, spec=spec, mapper=stages_mapper())
        return _with_account(outcome, {"mode": "full", "reason": "dedup.refresh is off"})
    settings = steps.dedup_settings(spec)
    key = kept_dedup.graph_key(settings)
    found = kept_dedup.latest_graph(store.root, store.dataset, key=key)
    result, graph, plan = dedup_incremental.detect(
        valid, settings, kept=found[0] if found else None,
        max_new_share=refresh.max_new_share, mapper=stages_mapper())
    if not (plan.incremental and found is not None and not plan.new.any()):
        # (nothing new: the kept graph is this run's too)
        kept_dedup.save_graph(store.root, store.dataset, key=key, run_id=store.run.run_id,
                              graph=graph, kept=found if plan.incremental else None)
    outcome = steps.duplicates_outcome(result, valid=valid, spec=spec)
    return _with_account(outcome, dedup_incremental.refresh_account(
        plan, kept_from=found[1] if found else None, rows=valid.height))


def _with_account(outcome: steps.DedupOutcome, account: dict[str, object]) -> steps.DedupOutcome:
    """The section's ``refresh`` line and the gate's ``dedup.incremental`` metric."""
    line = f"{account['mode']} ({account['reason']})"
    metrics = {**outcome.metrics, "dedup.incremental": float(account["mode"] == "incremental")}
    section = {**outcome.section, "refresh": line, **{
        f"refresh_{k}": v for k, v in account.items() if k not in ("mode", "reason")}}
    return steps.DedupOutcome(outcome.result, metrics, section)
