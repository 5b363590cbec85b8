"""The report: report.json/md/html from the stages' results, Prefect artifacts, and the
run record closed."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
from prefect import get_run_logger
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact

from checks.contract import ContractResult
from checks.quality import class_counts
from labelgate.gate import GateVerdict
from labelgate.report import RowCounts, build_report, write_report
from labelgate.report.index import write_index
from labelgate.results import gather_sections
from labelgate.spec import Spec
from labelgate.stages import steps
from labelgate.store import RunStore
from labelgate.store.lake import Batch
from tasks.agreement import AgreementOutcome
from tasks.common import ARTIFACT_ROWS, artifact_key, json_rows, stage_task
from tasks.contract import Stored
from tasks.gate import excluded_rows, kept_rows


@stage_task("report", retry_io=True)
def report(
    spec: Spec,
    store: RunStore,
    batches: list[Batch],
    contract: ContractResult,
    metrics: dict[str, float],
    verdict: GateVerdict,
    stored: Stored,
    results: Mapping[str, Any],
    abandoned: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Write report.json/md/html, publish them as Prefect artifacts, close the run record,
    then rewrite the store's reports index (``reports/index.html``).

    ``results``: every stage result of the run, in declaration order (their sections, in
    that order, follow the report's fixed part). ``abandoned``: earlier runs of the
    dataset that `prepare_run` found left running by a dead process (report.json's
    ``previous_runs_abandoned``: count and run ids)."""
    excluded = excluded_rows(results)
    rows = RowCounts(contract.rows_input, contract.rows_valid - excluded,
                     contract.rows_quarantined, excluded)
    content = _content(spec, store, batches, contract, metrics, verdict, stored, results, rows)
    content["previous_runs_abandoned"] = {"count": len(abandoned or []),
                                          "runs": list(abandoned or [])}
    issues = results.get("label_issues")
    label_table = issues.result.table if isinstance(issues, steps.LabelIssuesOutcome) else None
    out = write_report(content, run=store.run, history=store.report_history(),
                       label_issues=label_table)
    _artifacts(content, store, verdict, results, out)
    store.finish(
        status="passed" if verdict.passed else "failed", message=verdict.summary(),
        rows_input=rows.input, rows_valid=rows.valid, rows_quarantined=rows.quarantined,
        rows_excluded=rows.excluded, gate_passed=verdict.passed, report_dir=str(out),
    )
    logger = get_run_logger()
    logger.info("report: %s", out / "report.md")
    try:  # after finish: the index shows this run's verdict; a page to browse, not a result
        logger.info("reports index: %s", write_index(store.root))
    except (OSError, duckdb.Error) as err:
        logger.warning("reports index not rewritten: %s", err)
    return content


def _content(
    spec: Spec, store: RunStore, batches: list[Batch], contract: ContractResult,
    metrics: dict[str, float], verdict: GateVerdict, stored: Stored,
    results: Mapping[str, Any], rows: RowCounts,
) -> dict[str, Any]:
    """report.json's content: the fixed part, then each stage result's sections in the
    order of the stage declaration (the order report.md and report.html show them)."""
    sections = gather_sections(results.values())
    paths = {"report": str(store.report_dir),
             "report_html": str(store.report_dir / "report.html"),
             "valid_rows": stored.valid_path, "warehouse": stored.warehouse}
    if "label_issues" in sections:
        paths["label_issues"] = str(store.report_dir / "label_issues.parquet")
    if "published" in sections:
        paths["published"] = sections["published"]["path"]
    agreement = results.get("agreement")
    label = spec.columns.label
    classes = (
        class_counts(kept_rows(spec, contract, results.get("splits")).valid,
                     label_column=label, classes_of=contract.valid)
        if label is not None else pl.DataFrame(schema={"label": pl.String, "rows": pl.UInt32})
    )
    content = build_report(
        store.run, rows=rows, quarantine=contract.quarantine, classes=classes,
        batches=batches + (agreement.batches if isinstance(agreement, AgreementOutcome) else []),
        metrics=metrics, verdict=verdict, paths=paths,
    )
    content.update(sections)
    for source in content["sources"]:  # which items batches' contract results were cached
        if source["source"] == "items" and not spec.is_instruction:
            source["contract_cached"] = source["batch"] in contract.cached_batches
    return content


def _artifacts(content: dict[str, Any], store: RunStore, verdict: GateVerdict,
               results: Mapping[str, Any], out: Path) -> None:
    """The report as Prefect artifacts: a link to the HTML, the Markdown, the gate table,
    label quality per class and the annotators."""
    run_id, key = store.run.run_id, artifact_key(store.dataset)
    create_link_artifact(
        link=(out / "report.html").as_uri(), link_text=f"{store.dataset} report {run_id}",
        key=f"{key}-html", description="The self-contained HTML report (opens offline).",
    )
    # report.md, just written from the same content: the Markdown is not rendered twice
    create_markdown_artifact((out / "report.md").read_text(), key=f"{key}-report",
                             description=f"labelgate report {run_id}")
    if verdict.checks:
        create_table_artifact(
            [{"check": c.name, "observed": c.observed, "threshold": c.threshold,
              "passed": c.passed} for c in verdict.checks],
            key=f"{key}-gate", description=f"gate checks, run {run_id}",
        )
    issues = results.get("label_issues")
    if isinstance(issues, steps.LabelIssuesOutcome):
        create_table_artifact(json_rows(issues.result.per_class), key=f"{key}-label-quality",
                              description=f"label quality per class, run {run_id}")
    agreement = results.get("agreement")
    if isinstance(agreement, AgreementOutcome) and agreement.report.annotators.height:
        create_table_artifact(json_rows(agreement.report.annotators.head(ARTIFACT_ROWS)),
                              key=f"{key}-annotators", description=f"annotators, run {run_id}")
