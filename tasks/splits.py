"""Sticky splits, the flagged-row policy and the leakage check."""

from __future__ import annotations

from collections.abc import Callable

import polars as pl
from prefect import get_run_logger

from checks.contract import ContractResult
from labelgate.spec import Spec
from labelgate.stages import split_step, steps
from labelgate.store import RunStore
from tasks.common import stage_task


def assign_and_record(
    store: RunStore, make: Callable[[pl.DataFrame | None], split_step.SplitOutcome]
) -> split_step.SplitOutcome:
    """`make` (given the earlier runs' assignments, or None) under the store's assignment
    lock, its assignments stored; its exclusions recorded in DuckDB table `exclusions`."""
    outcome: split_step.SplitOutcome = store.assign_splits(
        make, lambda made: made.result.assignments)
    store.record_rows(
        "exclusions",
        outcome.excluded.rename({"exclusion_policy": "policy", "exclusion_reason": "reason"}),
    )
    return outcome


@stage_task("splits", retry_io=True)
def splits(
    spec: Spec,
    store: RunStore,
    contract: ContractResult,
    label_issues: steps.LabelIssuesOutcome | None,
    dedup: steps.DedupOutcome | None,
) -> split_step.SplitOutcome:
    """Sticky splits (assignments kept in DuckDB), flagged-row policy, leakage check."""
    outcome = assign_and_record(store, lambda previous: split_step.make_splits(
        contract.valid, spec=spec, run_id=store.run.run_id, previous=previous,
        issues=label_issues, dups=dedup,
    ))
    get_run_logger().info(
        "splits: %s", ", ".join(f"{r['split']}/{r['label']} {r['rows']}"
                                for r in outcome.section["counts"]),
    )
    return outcome
