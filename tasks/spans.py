"""Entity spans (task spans): the span checks, probable span errors and agreement, and
the spaCy and Hugging Face files."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from prefect import get_run_logger

from checks.contract import ContractResult
from labelgate.gate import GateVerdict
from labelgate.spec import Spec
from labelgate.stages import split_step
from labelgate.stages.spans.formats import bio_names
from labelgate.stages.spans.stage import (
    SpanChecks,
    SpansAnalysis,
    analyze,
    check_contract_spans,
    publish_files,
)
from labelgate.store import RunStore
from labelgate.store.lake import Batch
from tasks.common import HOUR, stage_task
from tasks.multilabel import publish_frames
from tasks.publish import PublishOutcome


@dataclass(frozen=True)
class SpansOutcome:
    """The spans stage's result: the analysis, its gate metrics and report section."""

    analysis: SpansAnalysis
    types: list[str]
    metrics: dict[str, float] = field(default_factory=dict)

    def sections(self) -> dict[str, Any]:
        return self.analysis.sections()


@stage_task("check-spans", timeout=2 * HOUR)
def check_spans(spec: Spec, store: RunStore, contract: ContractResult
                ) -> tuple[ContractResult, SpanChecks]:
    """Each row's spans read and checked (offsets, recorded text, types, overlaps); a row
    with a failing span is quarantined, one reason per span (after the contract)."""
    result, checks = check_contract_spans(contract, spec=spec)
    get_run_logger().info(
        "span checks: %s rows, %s valid spans, %s rows quarantined (%s)",
        contract.valid.height, checks.spans_valid, checks.rows_quarantined,
        ", ".join(f"{k} {v}" for k, v in checks.counts.items()) or "no failures")
    return result, checks


@stage_task("spans", timeout=2 * HOUR)
def spans(spec: Spec, store: RunStore, contract: ContractResult) -> SpansOutcome:
    """Entity types, probable span errors (out-of-fold token model + cleanlab) and, with
    annotations, span agreement (exact and overlap F1 per type, token kappa)."""
    annotations = None
    source = spec.sources.annotations
    if source is not None:
        annotations, _ = store.load(store.ingest(source, key="annotations",
                                                 base_dir=spec.base_dir))
    predictions = None
    if spec.sources.predictions is not None:
        predictions, _ = store.load(store.ingest(spec.sources.predictions, key="predictions",
                                                 base_dir=spec.base_dir))
    result = analyze(contract.valid, spec=spec, annotations=annotations,
                     predictions=predictions)
    m = result.metrics
    get_run_logger().info(
        "spans: %s rows, %s spans of %s types; %s tokens flagged", contract.valid.height,
        int(m["spans.spans"]), int(m["spans.types"]), int(m.get("spans.flagged_tokens", 0)))
    types = [t["type"] for t in result.section["types"]]
    return SpansOutcome(result, types, result.metrics)


# no retries: a retry after the rename would publish a second version
@stage_task("publish-spans")
def publish_spans(
    spec: Spec, store: RunStore, splits: split_step.SplitOutcome, verdict: GateVerdict,
    metrics: dict[str, float], batches: list[Batch], spans: SpansOutcome,
) -> PublishOutcome:
    """Write published/<dataset>/v<N>/: <split>.parquet (id, text, spans, document),
    <split>.spacy.jsonl and <split>.hf.parquet (only when the gate passed)."""
    frames, files = publish_files(splits.kept, spec=spec, types=spans.types)
    return publish_frames(
        spec, store, frames, verdict=verdict, metrics=metrics, batches=batches,
        formats=["parquet"], what="spans", extra_files=files,
        extras={"spans": {"column": spec.spans_settings().column, "types": spans.types,
                          "ner_tags": bio_names(spans.types)}})
