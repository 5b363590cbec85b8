"""Several label dimensions per row (task dimensions): each dimension's values, probable
label errors and agreement; splits where a row flagged on one dimension follows that
dimension's policy; the published rows with one flag column per dimension."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import polars as pl
from prefect import get_run_logger

from checks.contract import ContractResult
from labelgate.gate import GateVerdict
from labelgate.spec import Spec
from labelgate.stages import split_step, steps
from labelgate.stages.dimensions.splitting import make_dimension_splits, split_frames
from labelgate.stages.dimensions.stage import DimensionsAnalysis, analyze
from labelgate.store import RunStore
from labelgate.store.lake import Batch
from tasks.common import HOUR, stage_task
from tasks.multilabel import publish_frames
from tasks.publish import PublishOutcome
from tasks.splits import assign_and_record


@dataclass(frozen=True)
class DimensionsOutcome:
    """The dimensions stage's result: the analysis, its gate metrics and report section."""

    analysis: DimensionsAnalysis
    metrics: dict[str, float] = field(default_factory=dict)

    def sections(self) -> dict[str, Any]:
        return self.analysis.sections()


@stage_task("dimensions", timeout=2 * HOUR)
def dimensions(spec: Spec, store: RunStore, contract: ContractResult) -> DimensionsOutcome:
    """Per label dimension: its values, probable label errors (nominal/ordinal: the text
    model + cleanlab; interval: cleanlab's regression) and, with annotations, agreement at
    its level; the flagged rows in DuckDB table `dimension_issues`."""
    annotations = None
    source = spec.sources.annotations
    if source is not None:
        batches = store.ingest(source, key="annotations", base_dir=spec.base_dir)
        annotations, _ = store.load(batches)
    result = analyze(contract.valid, spec=spec, annotations=annotations)
    store.record_rows("dimension_issues", result.issues.filter(pl.col("is_label_issue")))
    log = get_run_logger()
    for part in result.section["dimensions"]:
        issues, agreement = part["issues"] or {}, part["agreement"] or {}
        log.info("dimension %s (%s): %s rows, %s probable errors, alpha %s", part["name"],
                 part["kind"], part["rows"], issues.get("flagged", "n/a"),
                 agreement.get("krippendorff_alpha", "n/a"))
    return DimensionsOutcome(result, result.metrics)


@stage_task("dimension-splits", retry_io=True)
def dimension_splits(spec: Spec, store: RunStore, contract: ContractResult,
                     dimensions: DimensionsOutcome, dedup: steps.DedupOutcome | None = None,
                     ) -> split_step.SplitOutcome:
    """Sticky, grouped splits; a row flagged on a dimension follows its policy."""
    outcome = assign_and_record(store, lambda previous: make_dimension_splits(
        contract.valid, spec=spec, run_id=store.run.run_id, previous=previous,
        flagged=dimensions.analysis.flagged(), dups=dedup))
    get_run_logger().info("splits: %s", ", ".join(
        f"{c['dimension']} {c['policy']} {c['excluded']} excluded"
        for c in outcome.section["by_dimension"]))
    return outcome


# no retries: a retry after the rename would publish a second version
@stage_task("publish-dimensions")
def publish_dimensions(
    spec: Spec, store: RunStore, splits: split_step.SplitOutcome, verdict: GateVerdict,
    metrics: dict[str, float], batches: list[Batch],
) -> PublishOutcome:
    """Write published/<dataset>/v<N>/<split>.parquet and .jsonl with every dimension and
    its flag column (only when the gate passed)."""
    return publish_frames(
        spec, store, split_frames(splits.kept, spec=spec), verdict=verdict, metrics=metrics,
        batches=batches, formats=list(spec.publish_formats()), what="label dimensions",
        extras={"dimensions": {n: d.kind for n, d in spec.dimension_settings().items()}})
