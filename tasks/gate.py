"""The run's metrics, and the gate over them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import polars as pl
from prefect import get_run_logger

from checks.contract import ContractResult
from checks.quality import class_counts, contract_metrics
from labelgate.gate import GateVerdict, evaluate_gate, history_metrics, smallest_class
from labelgate.results import gather_metrics
from labelgate.spec import Spec
from labelgate.stages import split_step, steps
from labelgate.store import RunStore
from labelgate.store.lake import Batch
from tasks.common import stage_task


def kept_rows(spec: Spec, contract: ContractResult,
              splits: split_step.SplitOutcome | None) -> ContractResult:
    """The contract result less the rows the splits excluded: "valid" everywhere (report,
    metrics, runs table) is what is left to publish, so min_rows and min_rows_per_class
    gate what a fine-tune will get."""
    if splits is None or not splits.excluded.height:
        return contract
    gone = splits.excluded.get_column("id").cast(pl.String).implode()
    ids = pl.col(spec.columns.id).cast(pl.String)
    return replace(contract, valid=contract.valid.filter(~ids.is_in(gone)))


def excluded_rows(results: Mapping[str, Any]) -> int:
    """Rows the splits stage excluded (0 when it did not run)."""
    splits = results.get("splits")
    return splits.excluded.height if isinstance(splits, split_step.SplitOutcome) else 0


@stage_task("metrics")
def metrics(
    spec: Spec, store: RunStore, contract: ContractResult, batches: list[Batch],
    results: Mapping[str, Any],
) -> tuple[dict[str, float], dict[str, str]]:
    """The run's metrics for the gate: contract metrics, every stage's own, and the
    comparisons with earlier passing runs (metrics_history); and who some of them belong
    to (the smallest class, the annotator with the lowest gold accuracy), for messages."""
    label = spec.columns.label
    kept = kept_rows(spec, contract, results.get("splits"))
    base = (
        contract_metrics(kept, label_column=label, classes_of=contract.valid)
        if label is not None
        else steps.row_metrics(kept.rows_input, kept.rows_valid, kept.rows_quarantined)
    )
    base["rows_excluded"] = float(excluded_rows(results))
    base["rejected_lines"] = float(sum(
        b.rejected_lines if b.lines is not None else b.rejected for b in batches))
    current = base | gather_metrics(results.values())
    earlier = store.metric_history()
    rows = earlier.filter(pl.col("run_id") != store.run.run_id).select(
        "run_id", "metric", "value")
    details = {k: v for r in results.values() for k, v in getattr(r, "details", {}).items()}
    if label is not None:
        smallest = smallest_class(class_counts(kept.valid, label_column=label,
                                               classes_of=contract.valid))
        if smallest is not None:
            details["min_rows_per_class"] = smallest
    return current | history_metrics(current, rows.rows()), details


@stage_task("gate", timeout=600, retry_io=True)
def gate(spec: Spec, store: RunStore, metrics: dict[str, float],
         metric_details: dict[str, str] | None = None) -> GateVerdict:
    """Compare the run's metrics with the spec's thresholds (a failure names the class or
    annotator it is about); record both."""
    verdict = evaluate_gate(metrics, spec.gate, details=metric_details)
    store.record_verdict(metrics, verdict, details=metric_details)
    get_run_logger().info(verdict.summary())
    return verdict
