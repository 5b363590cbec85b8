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
from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_table_artifact,
)
from prefect.cache_policies import NO_CACHE

from checks.contract import ContractResult, check_columns, enforce_contract
from checks.quality import class_counts, contract_metrics
from labelgate import warehouse
from labelgate.agreement import AgreementReport, compute_agreement
from labelgate.gate import GateVerdict, agreement_gate_metrics, evaluate_gate
from labelgate.lake import Batch, ingest_source, lake_dir, load_annotations, load_batches
from labelgate.report import (
    RowCounts,
    agreement_section,
    build_report,
    render_markdown,
    write_report,
)
from labelgate.runs import RunContext, new_run
from labelgate.spec import Spec, load_spec

ARTIFACT_ROWS = 200


@dataclass(frozen=True)
class Stored:
    valid_path: str
    warehouse: str


@dataclass(frozen=True)
class AgreementOutcome:
    report: AgreementReport
    batches: list[Batch]  # annotation and gold batches
    metrics: dict[str, float]  # for the gate, `agreement.` prefix
    section: dict[str, Any]  # report.json's `agreement` section


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


@task(name="agreement", cache_policy=NO_CACHE)
def agreement(spec: Spec, run: RunContext, result: ContractResult) -> AgreementOutcome:
    """Ingest annotations (and gold) into the lake, measure agreement, store the tables."""
    ann_source = spec.sources.annotations
    if ann_source is None:  # the flow only calls this stage when there are annotations
        raise ValueError("agreement stage called without sources.annotations")
    ann_batches = ingest_source(
        ann_source, key="annotations", dataset=spec.name, store=run.store_dir,
        base_dir=spec.base_dir,
    )
    gold = spec.sources.gold
    gold_batches = (
        ingest_source(gold, key="gold", dataset=spec.name, store=run.store_dir,
                      base_dir=spec.base_dir)
        if gold is not None else []
    )
    options = spec.agreement_options()
    inputs = load_annotations(
        ann_batches,
        gold_batches=gold_batches,
        item_column=options["item_column"],
        annotator_column=options["annotator_column"],
        label_column=options["label_column"],
        wide=ann_source.wide,
        gold_item_column=options["gold_item_column"],
        gold_label_column=options["gold_label_column"],
        known_items=result.valid.get_column(spec.columns.id),
    )
    source = ", ".join(sorted({b.file for b in ann_batches}))
    gold_source = ", ".join(sorted({b.file for b in gold_batches})) or "gold"
    report = compute_agreement(
        inputs.annotations, gold=inputs.gold, source=source, gold_source=gold_source, **options
    )
    consensus_method = spec.agreement_settings().consensus
    with warehouse.connect(run.warehouse) as con:
        warehouse.record_batches(con, ann_batches + gold_batches, run_id=run.run_id)
        warehouse.record_agreement(
            con, report, run_id=run.run_id, dataset=run.dataset, consensus_method=consensus_method
        )
    gate_metrics = agreement_gate_metrics(
        {**report.metrics, "n_items_not_in_items": inputs.n_items_unknown,
         "n_rows_not_in_items": inputs.n_rows_unknown}
    )
    section = agreement_section(
        report,
        consensus_method=consensus_method,
        n_items_unknown=inputs.n_items_unknown,
        n_rows_unknown=inputs.n_rows_unknown,
        n_unparseable=inputs.n_unparseable,
        settings=spec.agreement_settings().model_dump(mode="json"),
    )
    m = report.metrics
    get_run_logger().info(
        "agreement: %s labels on %s items by %s annotators; alpha %s, percent agreement %s; "
        "%s annotated item(s) not in the items",
        m["n_labels"], m["n_items"], m["n_annotators"], m["krippendorff_alpha"],
        m["percent_agreement"], inputs.n_items_unknown,
    )
    return AgreementOutcome(report, ann_batches + gold_batches, gate_metrics, section)


@task(name="gate", cache_policy=NO_CACHE)
def gate(spec: Spec, run: RunContext, metrics: dict[str, float]) -> GateVerdict:
    """Compare the run's metrics with the spec's thresholds; record both."""
    verdict = evaluate_gate(metrics, spec.gate)
    with warehouse.connect(run.warehouse) as con:
        recorded = {**metrics, "gate_passed": float(verdict.passed)}
        warehouse.record_metrics(con, recorded, run_id=run.run_id, dataset=run.dataset)
        warehouse.record_gate(con, verdict, run_id=run.run_id, dataset=run.dataset)
    get_run_logger().info(verdict.summary())
    return verdict


@task(name="metrics", cache_policy=NO_CACHE)
def metrics(
    spec: Spec, result: ContractResult, agreement: AgreementOutcome | None = None
) -> dict[str, float]:
    """The run's metrics for the gate: contract metrics, plus agreement ones if measured."""
    out = contract_metrics(result, label_column=spec.columns.label)
    return out | (agreement.metrics if agreement is not None else {})


@task(name="report", cache_policy=NO_CACHE)
def report(
    spec: Spec,
    run: RunContext,
    batches: list[Batch],
    result: ContractResult,
    metrics: dict[str, float],
    verdict: GateVerdict,
    stored: Stored,
    agreement: AgreementOutcome | None = None,
) -> dict[str, Any]:
    """Write report.json/md, publish them as Prefect artifacts, close the run record."""
    rows = RowCounts(result.rows_input, result.rows_valid, result.rows_quarantined)
    content = build_report(
        run,
        batches=batches + (agreement.batches if agreement is not None else []),
        rows=rows,
        quarantine=result.quarantine,
        classes=class_counts(result.valid, label_column=spec.columns.label),
        metrics=metrics,
        verdict=verdict,
        paths={
            "report": str(run.report_dir),
            "report_html": str(run.report_dir / "report.html"),
            "valid_rows": stored.valid_path,
            "warehouse": stored.warehouse,
        },
        agreement=agreement.section if agreement is not None else None,
    )
    with warehouse.connect(run.warehouse) as con:
        history = warehouse.metric_history(con, run.dataset)
    out = write_report(content, run=run, history=history)
    key = _artifact_key(run.dataset)
    create_link_artifact(
        link=(out / "report.html").as_uri(),
        link_text=f"{run.dataset} report {run.run_id}",
        key=f"{key}-html",
        description="The self-contained HTML report (opens offline).",
    )
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
    if agreement is not None and agreement.report.annotators.height:
        create_table_artifact(
            _json_rows(agreement.report.annotators.head(ARTIFACT_ROWS)),
            key=f"{key}-annotators",
            description=f"annotators, run {run.run_id}",
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


def _json_rows(frame: pl.DataFrame) -> list[dict[str, Any]]:
    """Frame rows for a table artifact: NaN becomes null (the API takes strict JSON)."""
    floats = [c for c, t in frame.schema.items() if t.is_float()]
    return frame.with_columns(pl.col(floats).fill_nan(None)).to_dicts()


def _artifact_key(dataset: str) -> str:
    """Prefect artifact keys allow lowercase letters, digits and dashes only."""
    slug = re.sub(r"[^a-z0-9-]+", "-", dataset.lower()).strip("-")
    return f"labelgate-{slug or 'dataset'}"
