"""The `quality_pipeline` flow: the DAG of stages for one dataset spec.

The body only sequences tasks and branches on their results; all data work is in tasks/
(thin) over labelgate/ and checks/ (pure).
"""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.runtime import flow_run

from labelgate.errors import GateFailedError, LabelgateError
from tasks import stages


@flow(name="quality-pipeline", log_prints=True)
def quality_pipeline(spec_path: str, store: str | None = None) -> dict[str, Any]:
    """Run one spec: ingest → contract → store → [agreement] → gate → report.

    Returns the report (a dict). Raises `GateFailedError` after writing the report when the
    gate fails, so the flow run is Failed with the failing checks in its message.
    """
    spec, run = stages.prepare_run(spec_path, store, flow_run_id=flow_run.get_id())
    try:
        batches = stages.ingest(spec, run)
        result = stages.contract(spec, batches)
        stored = stages.store(spec, run, result)
        agreement = (
            stages.agreement(spec, run, result) if spec.sources.annotations is not None else None
        )
        # later stages plug in here: label issues, dedup, splits
        metrics = stages.metrics(spec, result, agreement)
        verdict = stages.gate(spec, run, metrics)
        report = stages.report(spec, run, batches, result, metrics, verdict, stored, agreement)
    except LabelgateError as exc:
        stages.record_error(run, str(exc))
        raise
    if not verdict.passed:
        raise GateFailedError(f"{spec.name}: {verdict.summary()} (report: {run.report_dir})")
    return report
