"""The `quality_pipeline` flow: the DAG of stages for one dataset spec.

The body only sequences tasks and branches on their results; all data work is in tasks/
(thin) over labelgate/ and checks/ (pure).
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from labelgate.errors import GateFailedError
from tasks import stages
from tasks.partition import dask_runner, on_dask


@flow(name="quality-pipeline")
def quality_pipeline(
    spec_path: str, store: str | None = None, dask_address: str | None = None
) -> dict[str, Any]:
    """Run one spec: ingest → [canonicalize, instruction data] → contract (+ SFT checks) →
    [reviewer corrections] → [agreement (→ consensus label)] → store → [label issues] → [dedup] →
    [splits] → gate → [publish, if the gate passed] → report.

    One run per dataset at a time: `prepare_run` takes the dataset's lock (another run in
    progress: `RunLockedError`, CLI exit 2) and marks runs left `running` by a killed
    process `abandoned`; the lock is released when the flow ends.

    Returns the report (a dict). Raises `GateFailedError` after writing the report when the
    gate fails, so the flow run is Failed with the failing checks in its message.

    `dask_address` (for deployments; the CLI's `--dask` sets the task runner directly): run
    as a sub-flow on prefect-dask's runner for that cluster, so the stages' parts (contract
    per batch, model per fold, MinHash per shard) run on its workers.
    """
    if dask_address and not on_dask():
        on_cluster = quality_pipeline.with_options(task_runner=dask_runner(dask_address))
        return on_cluster(spec_path, store, dask_address)
    prepared = stages.prepare_run(spec_path, store, flow_run_id=flow_run.get_id())
    spec, run = prepared.spec, prepared.run
    try:
        batches = stages.ingest(spec, run)
        canonical = stages.canonicalize(spec, batches) if spec.is_instruction else None
        result, sft = stages.contract(spec, run, batches, canonical)
        result, review = stages.corrections(spec, run, result)
        # no valid row left (every row quarantined): the row stages have nothing to work on;
        # the gate (quarantine rate, min_rows) and the report say what happened
        rows = result.rows_valid > 0
        if not rows:
            get_run_logger().warning(
                "no valid rows after the contract (%s of %s quarantined): agreement, label "
                "issues, dedup and splits skipped", result.rows_quarantined, result.rows_input,
            )
        agreement = (
            stages.agreement(spec, run, result)
            if spec.sources.annotations is not None and rows else None
        )
        if agreement is not None and spec.agreement_settings().apply:
            result, agreement = stages.consensus_label(spec, result, agreement)
        stored = stages.store(spec, run, result, sft)
        issues = (
            stages.label_issues(spec, run, result, agreement) if spec.label_issues and rows
            else None
        )
        dups = stages.dedup(spec, run, result) if spec.dedup and rows else None
        split = stages.splits(spec, run, result, issues, dups) if spec.splits and rows else None
        outcomes = stages.Outcomes(agreement, issues, dups, split, sft, review)
        metrics = stages.metrics(spec, run, result, outcomes, batches)
        verdict = stages.gate(spec, run, metrics)
        published = (
            stages.publish(spec, run, split, verdict, metrics, batches)
            if verdict.passed and spec.publish and split is not None
            else None
        )
        report = stages.report(
            spec, run, batches, result, metrics, verdict, stored, outcomes, published,
            prepared.abandoned,
        )
    except Exception as exc:  # recorded, then re-raised: the flow run fails with it
        stages.record_error(run, f"{type(exc).__name__}: {exc}")
        raise
    finally:
        try:
            if run.remote is not None:  # a remote store gets the run's results, even errors
                stages.push_store(run)
        finally:  # a killed process releases it too (the OS drops the flock)
            prepared.lock.release()
    if not verdict.passed:
        raise GateFailedError(f"{spec.name}: {verdict.summary()} (report: {run.report_dir})")
    return report
