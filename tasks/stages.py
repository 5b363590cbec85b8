"""Prefect tasks: one thin wrapper per stage over the pure functions in labelgate/ and checks/.

Tasks take and return Python objects (frames included) in process. Input hashing for
caching is off (`NO_CACHE`): hashing a million-row frame per call costs more than the
stage; cross-run reuse is keyed on batch hashes in the lake instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from checks.contract import ContractResult, check_columns, enforce_contract
from checks.quality import class_counts, contract_metrics
from labelgate import warehouse
from labelgate.gate import GateVerdict, evaluate_gate
from labelgate.lake import Batch, ingest_source, lake_dir, load_batches
from labelgate.report import RowCounts, build_report, render_markdown, write_report
from labelgate.runs import RunContext, new_run
from labelgate.spec import Spec, load_spec


@dataclass(frozen=True)
class Stored:
    valid_path: str
    warehouse: str


@task(name="prepare-run", cache_policy=NO_CACHE)
def prepare_run(
    spec_path: str, store: str | None, flow_run_id: str | None = None
) -> tuple[Spec, RunContext]:
    """Load the spec, open a run record in the warehouse."""
    spec = load_spec(spec_path)
    run = new_run(
        dataset=spec.name,
        spec_path=str(Path(spec_path).resolve()),
        spec_hash=spec.fingerprint(),
        store=spec.store_dir(store),
    )
    with warehouse.connect(run.warehouse) as con:
        warehouse.start_run(
            con,
            run_id=run.run_id,
            dataset=run.dataset,
            spec_hash=run.spec_hash,
            spec_path=run.spec_path,
            started_at=run.started_at,
            flow_run_id=flow_run_id,
        )
    get_run_logger().info("run %s of %s, store %s", run.run_id, run.dataset, run.store)
    return spec, run


@task(name="ingest", cache_policy=NO_CACHE)
def ingest(spec: Spec, run: RunContext) -> list[Batch]:
    """Each matched input file becomes (or reuses) a content-addressed lake batch."""
    batches = ingest_source(
        spec.sources.items,
        key="items",
        dataset=spec.name,
        store=run.store_dir,
        base_dir=spec.base_dir,
    )
    with warehouse.connect(run.warehouse) as con:
        warehouse.record_batches(con, batches, run_id=run.run_id)
    log = get_run_logger()
    for b in batches:
        state = "reused" if b.reused else "new"
        log.info("batch %s (%s): %s rows, %s unparseable, %s", b.batch, b.file, b.rows,
                 b.rejected, state)
    return batches


@task(name="enforce-contract", cache_policy=NO_CACHE)
def contract(spec: Spec, batches: list[Batch]) -> ContractResult:
    """Validate the run's rows against the pandera contract; bad rows are quarantined."""
    for b in batches:
        check_columns(list(pl.read_parquet_schema(b.data_path)), spec, where=b.file)
    rows, rejects = load_batches(batches)
    result = enforce_contract(rows, spec=spec, source="items", rejects=rejects)
    get_run_logger().info(
        "contract: %s input rows, %s valid, %s quarantined",
        result.rows_input, result.rows_valid, result.rows_quarantined,
    )
    return result


@task(name="store", cache_policy=NO_CACHE)
def store(spec: Spec, run: RunContext, result: ContractResult) -> Stored:
    """Write the valid rows to Parquet, the quarantine to DuckDB, and refresh the views."""
    run.curated_dir.mkdir(parents=True, exist_ok=True)
    valid_path = run.curated_dir / "items.parquet"
    result.valid.write_parquet(valid_path)
    with warehouse.connect(run.warehouse) as con:
        warehouse.record_quarantine(con, result.quarantine, run_id=run.run_id, dataset=run.dataset)
        warehouse.refresh_views(
            con,
            dataset=run.dataset,
            lake_glob=str(lake_dir(run.store_dir, run.dataset, "items") / "batch=*/data.parquet"),
            valid_path=valid_path,
        )
    return Stored(valid_path=str(valid_path), warehouse=str(run.warehouse))


@task(name="gate", cache_policy=NO_CACHE)
def gate(spec: Spec, run: RunContext, metrics: dict[str, float]) -> GateVerdict:
    """Compare the run's metrics with the spec's thresholds; record both."""
    verdict = evaluate_gate(metrics, spec.gate)
    with warehouse.connect(run.warehouse) as con:
        warehouse.record_metrics(con, metrics, run_id=run.run_id, dataset=run.dataset)
        warehouse.record_gate(con, verdict, run_id=run.run_id, dataset=run.dataset)
    get_run_logger().info(verdict.summary())
    return verdict


@task(name="metrics", cache_policy=NO_CACHE)
def metrics(spec: Spec, result: ContractResult) -> dict[str, float]:
    return contract_metrics(result, label_column=spec.columns.label)


@task(name="report", cache_policy=NO_CACHE)
def report(
    spec: Spec,
    run: RunContext,
    batches: list[Batch],
    result: ContractResult,
    metrics: dict[str, float],
    verdict: GateVerdict,
    stored: Stored,
) -> dict[str, Any]:
    """Write report.json/md, publish them as Prefect artifacts, close the run record."""
    rows = RowCounts(result.rows_input, result.rows_valid, result.rows_quarantined)
    content = build_report(
        run,
        batches=batches,
        rows=rows,
        quarantine=result.quarantine,
        classes=class_counts(result.valid, label_column=spec.columns.label),
        metrics=metrics,
        verdict=verdict,
        paths={
            "report": str(run.report_dir),
            "valid_rows": stored.valid_path,
            "warehouse": stored.warehouse,
        },
    )
    out = write_report(content, run=run)
    key = _artifact_key(run.dataset)
    create_markdown_artifact(
        render_markdown(content), key=f"{key}-report", description=f"labelgate report {run.run_id}"
    )
    if verdict.checks:
        create_table_artifact(
            [
                {"check": c.name, "observed": c.observed, "threshold": c.threshold,
                 "passed": c.passed}
                for c in verdict.checks
            ],
            key=f"{key}-gate",
            description=f"gate checks, run {run.run_id}",
        )
    with warehouse.connect(run.warehouse) as con:
        warehouse.finish_run(
            con,
            run_id=run.run_id,
            status="passed" if verdict.passed else "failed",
            rows_input=rows.input,
            rows_valid=rows.valid,
            rows_quarantined=rows.quarantined,
            gate_passed=verdict.passed,
            report_dir=str(out),
            message=verdict.summary(),
        )
    get_run_logger().info("report: %s", out / "report.md")
    return content


@task(name="record-error", cache_policy=NO_CACHE)
def record_error(run: RunContext, message: str) -> None:
    """Mark the run record as errored (spec or input problem found mid-run)."""
    with warehouse.connect(run.warehouse) as con:
        warehouse.finish_run(con, run_id=run.run_id, status="error", message=message)


def _artifact_key(dataset: str) -> str:
    """Prefect artifact keys allow lowercase letters, digits and dashes only."""
    slug = re.sub(r"[^a-z0-9-]+", "-", dataset.lower()).strip("-")
    return f"labelgate-{slug or 'dataset'}"
