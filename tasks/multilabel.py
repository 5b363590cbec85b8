"""Multi-label data (task multilabel): the tag checks, label issues and agreement, splits
stratified over the tags, and the published list column."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import polars as pl
from prefect import get_run_logger

from checks.contract import ContractResult
from labelgate.gate import GateVerdict
from labelgate.spec import Spec
from labelgate.stages import split_step, steps
from labelgate.stages.multilabel.splitting import make_multilabel_splits, split_frames
from labelgate.stages.multilabel.stage import (
    MultilabelAnalysis,
    TagChecks,
    analyze,
    check_contract_tags,
    tag_names,
)
from labelgate.stages.publish import current_version, publish_version
from labelgate.store import RunStore
from labelgate.store.lake import Batch
from tasks import faults
from tasks.common import HOUR, stage_task
from tasks.publish import PublishOutcome
from tasks.splits import assign_and_record


@dataclass(frozen=True)
class MultilabelOutcome:
    """The multilabel stage's result: the analysis, its gate metrics and report section."""

    analysis: MultilabelAnalysis
    tags: list[str]
    metrics: dict[str, float] = field(default_factory=dict)

    def sections(self) -> dict[str, Any]:
        return self.analysis.sections()

    def flagged_ids(self) -> pl.Series | None:
        rows = self.analysis.issues
        if rows.height == 0:
            return None
        return rows.filter(pl.col("is_label_issue")).get_column("id")


@stage_task("check-tags", timeout=2 * HOUR)
def check_tags(spec: Spec, store: RunStore, contract: ContractResult
               ) -> tuple[ContractResult, TagChecks]:
    """The tags column read as lists; rows with unreadable, unknown, too few or too many
    tags quarantined with reasons (after the contract)."""
    result, checks = check_contract_tags(contract, spec=spec)
    get_run_logger().info(
        "tag checks: %s rows checked, %s quarantined (%s)", contract.valid.height,
        checks.rows_quarantined,
        ", ".join(f"{k} {v}" for k, v in checks.counts.items()) or "no failures")
    return result, checks


@stage_task("multilabel", timeout=2 * HOUR)
def multilabel(spec: Spec, store: RunStore, contract: ContractResult) -> MultilabelOutcome:
    """Tag counts, probable tag errors (out-of-fold one-vs-rest model + cleanlab) and, with
    annotations, Krippendorff's alpha (MASI) and per-tag kappa."""
    annotations = None
    source = spec.sources.annotations
    if source is not None:
        batches = store.ingest(source, key="annotations", base_dir=spec.base_dir)
        annotations, _ = store.load(batches)
    result = analyze(contract.valid, spec=spec, annotations=annotations)
    m = result.metrics
    get_run_logger().info(
        "multilabel: %s rows, %s tags, %.2f tags per row; %s probable tag errors; alpha "
        "(MASI) %s", contract.valid.height, int(m["multilabel.tags"]),
        m["multilabel.mean_tags_per_row"], int(m.get("multilabel.issues", 0)),
        f"{m['multilabel.krippendorff_alpha_masi']:.3f}"
        if "multilabel.krippendorff_alpha_masi" in m else "n/a")
    return MultilabelOutcome(result, tag_names(contract.valid, spec=spec), result.metrics)


@stage_task("multilabel-splits", retry_io=True)
def multilabel_splits(spec: Spec, store: RunStore, contract: ContractResult,
                      multilabel: MultilabelOutcome, dedup: steps.DedupOutcome | None = None,
                      ) -> split_step.SplitOutcome:
    """Sticky, grouped splits stratified over the tags; flagged rows by splits.flagged."""
    outcome = assign_and_record(store, lambda previous: make_multilabel_splits(
        contract.valid, spec=spec, run_id=store.run.run_id, previous=previous,
        flagged_ids=multilabel.flagged_ids(), dups=dedup, names=multilabel.tags))
    get_run_logger().info(
        "splits (stratified over tags): %s; largest tag share deviation %.3f",
        ", ".join(f"{k} {v}" for k, v in outcome.section["rows_per_split"].items()),
        outcome.metrics["splits.max_tag_share_deviation"])
    return outcome


def publish_frames(
    spec: Spec, store: RunStore, frames: dict[str, pl.DataFrame], *, verdict: GateVerdict,
    metrics: dict[str, float], batches: list[Batch], formats: list[str], what: str,
    extras: dict[str, Any], extra_files: list[tuple[str, pl.DataFrame]] | None = None,
) -> PublishOutcome:
    """Publish ``frames`` (split -> rows) as version N+1, record it, log it (``what`` names
    the data); `publish_multilabel` and `tasks.spans.publish_spans` call it."""
    pub = spec.publish
    if pub is None:
        raise ValueError("publish stage called without a publish section")
    root = store.published_root
    try:
        version = publish_version(
            frames, root=root, key_column=spec.columns.id, label_column=None,
            run_id=store.run.run_id, spec_hash=store.run.spec_hash, gate_passed=verdict.passed,
            formats=formats, gate=verdict.to_dict(), metrics=metrics,
            lineage=[b.batch for b in batches], extras=extras, extra_files=extra_files or (),
            before_switch=lambda _: faults.fault_point("publish", "switch"),
            card={"name": spec.name, "license": pub.license, "description": pub.description},
        )
    except OSError as exc:
        now = current_version(root)
        where = f"points to v{now}" if now is not None else "absent"
        raise OSError(exc.errno, f"{store.dataset}: publishing the {what} failed ({exc}); "
                      f"`current` {where}, earlier versions untouched") from exc
    n = int(version.manifest["rows"])
    if not version.unchanged:
        store.record_rows("published", pl.DataFrame(
            {"version": [version.version], "path": [str(version.path)], "rows": [n]}))
    get_run_logger().info("published %s v%s at %s (%s rows)", what, version.version,
                          version.path, n)
    return PublishOutcome({"version": version.version, "path": str(version.path),
                           "current": str(version.path.parent / "current"), "rows": n,
                           "splits": version.manifest["splits"],
                           "unchanged": version.unchanged})


# no retries: a retry after the rename would publish a second version
@stage_task("publish-multilabel")
def publish_multilabel(
    spec: Spec, store: RunStore, splits: split_step.SplitOutcome, verdict: GateVerdict,
    metrics: dict[str, float], batches: list[Batch],
) -> PublishOutcome:
    """Write published/<dataset>/v<N>/<split>.parquet and .jsonl with the tags as a list
    column (only when the gate passed)."""
    return publish_frames(
        spec, store, split_frames(splits.kept, spec=spec), verdict=verdict, metrics=metrics,
        batches=batches, formats=list(spec.publish_formats()), what="multi-label rows",
        extras={"multilabel": {"column": spec.multilabel_settings().column}})
