"""The `quality_pipeline` flow: walks the stage declaration (`labelgate.dag.STAGES`).

The flow itself only opens the run (lock, store, run record), calls each declared stage's
task with the values it names, and closes the run; what the stages are, in which order,
and when each runs is said once, in `labelgate.dag`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from labelgate import dag
from labelgate.errors import GateFailedError
from labelgate.results import StageResult, brief
from labelgate.spec import Spec
from labelgate.store import RunStore
from labelgate.store.lake import drop_handed
from tasks.partition import dask_runner, on_dask
from tasks.run import prepare_run, push_store, record_error


@flow(name="quality-pipeline")
def quality_pipeline(
    spec_path: str, store: str | None = None, dask_address: str | None = None
) -> dict[str, Any]:
    """Run one spec: each stage of `labelgate.dag.STAGES` whose conditions hold, in order
    (ingest → [canonicalize] → contract → corrections → [agreement → consensus label] →
    store → [label issues] → [dedup] → [splits] → metrics → gate → [publish] → report).

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
    prepared = prepare_run(spec_path, store, flow_run_id=flow_run.get_id())
    spec, rs = prepared.spec, prepared.store
    try:
        values = run_stages(spec, rs, dag.STAGES, abandoned=prepared.abandoned)
    except Exception as exc:  # recorded, then re-raised: the flow run fails with it
        record_error(rs, f"{type(exc).__name__}: {exc}")
        raise
    finally:
        try:
            rs.close()  # the kept warehouse connection: closed (checkpointed) before the push
            drop_handed()  # ingest's frames that no stage took (labelgate.store.lake)
            if rs.run.remote is not None:  # a remote store gets the run's results, even errors
                push_store(rs)
        finally:  # a killed process releases it too (the OS drops the lock)
            prepared.lock.release()
    verdict = values["verdict"]
    if not verdict.passed:
        raise GateFailedError(f"{spec.name}: {verdict.summary()} (report: {rs.report_dir})")
    report: dict[str, Any] = values["report"]
    return report


def run_stages(spec: Spec, store: RunStore, stages: Sequence[dag.Stage], *,
               abandoned: list[dict[str, Any]]) -> dict[str, Any]:
    """Call each stage's task whose conditions hold, with the values it names; returns
    the values the flow reads at the end (`dag.FLOW_READS`), by name.

    After each stage, a value no later stage reads in full is kept in brief, and one no
    later stage reads is dropped (`dag.releases`), so the run's memory does not hold every
    stage's rows to the end. ``results`` (every stage result so far, for the metrics and
    the report) holds each result in brief."""
    values: dict[str, Any] = {"abandoned": abandoned}
    results: dict[str, Any] = {}
    releases = dag.releases(spec, stages)
    warned = False
    for stage in stages:
        if not stage.when(spec):
            continue
        contract = values.get("contract")
        if stage.needs_rows and contract is not None and contract.rows_valid == 0:
            if not warned:
                _warn_no_rows(contract.rows_input, contract.rows_quarantined)
                warned = True
        elif not (stage.needs_pass and not values["verdict"].passed):
            given = _run_stage(spec, store, stage, values, results)
            values.update(given)
            results.update((k, brief(v, spec=spec)) for k, v in given.items()
                           if isinstance(v, StageResult))
        release = releases[stage.name]
        for name in release.to_brief & values.keys():
            values[name] = brief(values[name], spec=spec)
        for name in release.to_drop & values.keys():
            del values[name]
    return values


def _run_stage(spec: Spec, store: RunStore, stage: dag.Stage, values: dict[str, Any],
               results: dict[str, Any]) -> dict[str, Any]:
    """The values `stage` gives, by name (none when a required input was not given: its
    stage did not run)."""
    args = stage.arguments(values | {"results": results})
    if args is None:
        return {}
    out = stage.load()(spec, store, **args)
    del args  # the task's inputs may be released after it
    return dict(zip(stage.outputs, out if len(stage.outputs) > 1 else (out,), strict=True))


def _warn_no_rows(rows_input: int, rows_quarantined: int) -> None:
    # no valid row left (every row quarantined): the row stages have nothing to work on;
    # the gate (quarantine rate, min_rows) and the report say what happened
    get_run_logger().warning(
        "no valid rows after the contract (%s of %s quarantined): agreement, label "
        "issues, dedup and splits skipped", rows_quarantined, rows_input,
    )
