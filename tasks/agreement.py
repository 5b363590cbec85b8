"""Agreement between annotators, and the consensus label."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import polars as pl
from prefect import get_run_logger

from checks.contract import ContractResult
from labelgate.gate import agreement_gate_metrics, annotator_details
from labelgate.report import agreement_section
from labelgate.spec import Spec
from labelgate.stages import steps
from labelgate.stages.agreement.core import AgreementReport, compute_agreement
from labelgate.store import RunStore
from labelgate.store.lake import Batch, load_annotations
from tasks.common import stage_task


@dataclass(frozen=True)
class AgreementOutcome:
    """The agreement stage's result: the report, the batches it read, gate metrics, the
    report section and the long annotation frame."""

    report: AgreementReport
    batches: list[Batch]  # annotation and gold batches
    metrics: dict[str, float]  # for the gate, `agreement.` prefix
    section: dict[str, Any]  # report.json's `agreement` section
    annotations: pl.DataFrame | None = None  # the long frame (item, annotator, label)

    def sections(self) -> dict[str, Any]:
        return {"agreement": self.section}

    @property
    def details(self) -> dict[str, str]:
        """Which annotators the agreement gate metrics name."""
        return annotator_details(self.report.annotators, self.metrics)


def _ingest_annotations(spec: Spec, store: RunStore) -> tuple[list[Batch], list[Batch]]:
    ann_source = spec.sources.annotations
    if ann_source is None:  # the DAG runs this stage only when there are annotations
        raise ValueError("agreement stage called without sources.annotations")
    ann = store.ingest(ann_source, key="annotations", base_dir=spec.base_dir)
    gold = spec.sources.gold
    gold_batches = (store.ingest(gold, key="gold", base_dir=spec.base_dir)
                    if gold is not None else [])
    return ann, gold_batches


@stage_task("agreement")
def agreement(spec: Spec, store: RunStore, contract: ContractResult) -> AgreementOutcome:
    """Ingest annotations (and gold) into the lake, measure agreement, store the tables."""
    ann_batches, gold_batches = _ingest_annotations(spec, store)
    options = spec.agreement_options()
    assert spec.sources.annotations is not None
    inputs = load_annotations(
        ann_batches, gold_batches=gold_batches, item_column=options["item_column"],
        annotator_column=options["annotator_column"], label_column=options["label_column"],
        wide=spec.sources.annotations.wide, gold_item_column=options["gold_item_column"],
        gold_label_column=options["gold_label_column"],
        known_items=contract.valid.get_column(spec.columns.id),
    )
    report = compute_agreement(
        inputs.annotations, gold=inputs.gold,
        source=", ".join(sorted({b.file for b in ann_batches})),
        gold_source=", ".join(sorted({b.file for b in gold_batches})) or "gold", **options,
    )
    consensus_method = spec.agreement_settings().consensus
    store.record_agreement(ann_batches + gold_batches, report,
                           consensus_method=consensus_method)
    gate_metrics = agreement_gate_metrics(
        {**report.metrics, "n_items_not_in_items": inputs.n_items_unknown,
         "n_rows_not_in_items": inputs.n_rows_unknown}
    )
    section = agreement_section(
        report, consensus_method=consensus_method, n_items_unknown=inputs.n_items_unknown,
        n_rows_unknown=inputs.n_rows_unknown, n_unparseable=inputs.n_unparseable,
        settings=spec.agreement_settings().model_dump(mode="json"),
    )
    m = report.metrics
    get_run_logger().info(
        "agreement: %s labels on %s items by %s annotators; alpha %s, percent agreement %s; "
        "%s annotated item(s) not in the items",
        m["n_labels"], m["n_items"], m["n_annotators"], m["krippendorff_alpha"],
        m["percent_agreement"], inputs.n_items_unknown,
    )
    return AgreementOutcome(
        report, ann_batches + gold_batches, gate_metrics, section, inputs.annotations
    )


@stage_task("consensus-label")
def consensus_label(
    spec: Spec, store: RunStore, contract: ContractResult, agreement: AgreementOutcome
) -> tuple[ContractResult, AgreementOutcome]:
    """`agreement.apply`: the spec's consensus label becomes the items' training label (and
    the only label of items that have none: `columns.label_from_consensus`)."""
    if spec.columns.label_from_consensus:
        valid, quarantine, stats = steps.label_from_consensus(
            contract.valid, agreement.report.consensus, spec=spec)
        contract = replace(contract, quarantine=pl.concat([contract.quarantine, quarantine]),
                           rows_quarantined=contract.rows_quarantined + quarantine.height)
    else:
        valid, stats = steps.apply_consensus(contract.valid, agreement.report.consensus,
                                             spec=spec)
    if spec.columns.label_from_consensus:
        get_run_logger().info(
            "consensus label (%s): %s items labeled, %s without a consensus (quarantined)",
            stats["method"], stats["labeled"], stats["without_consensus"])
    else:
        get_run_logger().info(
            "consensus label (%s): %s labels changed, %s confirmed, %s items without "
            "annotations", stats["method"], stats.get("changed"), stats.get("confirmed"),
            stats.get("without_consensus"))
    section = {**agreement.section, "training_label": stats,
               "consensus_applied_to_items": bool(stats.get("applied"))}
    metrics = {**agreement.metrics, "agreement.consensus_changed_labels": float(
        stats.get("changed", 0))}
    return replace(contract, valid=valid), replace(agreement, section=section, metrics=metrics)
