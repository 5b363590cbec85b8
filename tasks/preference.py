"""Preference data (task preference): read and check the judgments, analyse them, publish
the pairs for TRL."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import polars as pl
from prefect import get_run_logger

from checks.contract import QUARANTINE_SCHEMA, ContractResult, reject_records
from labelgate.gate import GateVerdict
from labelgate.spec import Spec
from labelgate.stages import split_step
from labelgate.stages.preference import PreferenceAnalysis, analyze
from labelgate.stages.preference.stage import (
    check_batches,
    policy_counts,
    preference_tokenizer,
    publish_files,
    read_batch,
)
from labelgate.stages.preference.swaps import Embed
from labelgate.store import RunStore
from labelgate.store.lake import Batch
from tasks.common import HOUR, stage_task
from tasks.publish import PublishOutcome, write_version


@dataclass(frozen=True)
class PairChecks:
    """What the preference checks found before the analysis: counts for its metrics."""

    rows_input: int
    identical_rows: int
    counts: dict[str, int]
    rejected: int  # records the readers could not parse (quarantined: check parse)
    label_studio: dict[str, int] = field(default_factory=dict)  # what an export skipped


@dataclass(frozen=True)
class PreferenceOutcome:
    """The preference analysis: gate metrics, the report section, who the worst is."""

    analysis: PreferenceAnalysis
    metrics: dict[str, float] = field(default_factory=dict)

    def sections(self) -> dict[str, Any]:
        return {"preference": self.analysis.section}

    @property
    def details(self) -> dict[str, str]:
        who = self.analysis.section.get("worst_position_bias_annotator")
        return {"preference.max_position_bias": f"annotator {who!r}"} if who else {}


@stage_task("read-pairs", timeout=2 * HOUR)
def read_pairs(spec: Spec, store: RunStore, batches: list[Batch]
               ) -> tuple[ContractResult, PairChecks]:
    """Each batch's rows as judgments (errors name the file, row and field), then the
    preference checks: failures quarantined with reasons (the contract of task preference)."""
    frames, rejects, skipped = [], [], Counter[str]()
    log = get_run_logger()
    for b in batches:
        rows, bad = store.load([b])
        frame, counts = read_batch(rows, spec=spec, where=b.file)
        frames.append(frame)
        rejects.append(reject_records(bad, source="items"))
        skipped.update(counts)
        if counts:
            log.info("%s: Label Studio export: %s", b.file, _counts(counts))
    checked = check_batches(frames, spec=spec,
                            rejects=pl.concat(rejects) if rejects else None)
    quarantine = checked.quarantine.cast(pl.Schema(QUARANTINE_SCHEMA))
    result = ContractResult(checked.valid, quarantine, checked.rows_input,
                            checked.rows_quarantined)
    log.info(
        "preference checks (%s): %s judgments, %s valid, %s quarantined (%s identical pairs)",
        spec.preference_settings().shape, checked.rows_input, checked.valid.height,
        checked.rows_quarantined, checked.identical_rows)
    return result, PairChecks(checked.rows_input, checked.identical_rows, checked.counts,
                              checked.counts.get("parse", 0), dict(skipped))


def _counts(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in counts.items())


@stage_task("preference", timeout=2 * HOUR)
def preference(spec: Spec, store: RunStore, contract: ContractResult, pair_checks: PairChecks
               ) -> tuple[ContractResult, PreferenceOutcome]:
    """Pairs, agreement, position and length bias, contradictions, cycles, Bradley-Terry
    scores and probable swapped pairs; each judgment gets its pair's columns."""
    result = analyze(contract.valid, settings=spec.preference_settings(),
                     rows_input=pair_checks.rows_input,
                     identical_rows=pair_checks.identical_rows,
                     check_counts=pair_checks.counts, embed=_encoder(spec, store),
                     tokenizer=preference_tokenizer(spec))
    if pair_checks.label_studio:  # what a Label Studio export held that is no judgment
        result = replace(result, section={**result.section,
                                          "label_studio": pair_checks.label_studio})
    m = result.metrics
    get_run_logger().info(
        "preference: %s judgments of %s pairs; agreement %s, alpha %s; %s probably swapped",
        result.judgments.height, result.pairs.height,
        _fmt(m.get("preference.percent_agreement")), _fmt(m.get("preference.krippendorff_alpha")),
        int(result.pairs.get_column("swapped").sum()))
    return replace(contract, valid=result.judgments), PreferenceOutcome(result, result.metrics)


def _encoder(spec: Spec, store: RunStore) -> Embed | None:
    """`preference.swaps.embeddings`' encoder, its vectors cached in the store."""
    model = spec.preference_settings().swaps.embeddings
    if model is None:
        return None
    from labelgate.stages.label_issues import embeddings

    def embed(texts: Sequence[str]) -> np.ndarray[Any, Any]:
        return embeddings.embed_texts(texts, model=model, base_dir=spec.base_dir,
                                      cache=embeddings.cache_dir(store.root, spec.name),
                                      notice=get_run_logger().info)

    return embed


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


# no retries: a retry after the rename would publish a second version
@stage_task("publish-preferences")
def publish_preferences(
    spec: Spec, store: RunStore, splits: split_step.SplitOutcome, verdict: GateVerdict,
    metrics: dict[str, float], batches: list[Batch],
) -> PublishOutcome:
    """Write published/<dataset>/v<N>/: <split>.parquet (one row per pair) and the TRL
    files (only when the gate passed); the ties and flagged-pair policies excluded their
    judgments in the splits stage (recorded there, with the splits' other exclusions)."""
    pairs, files, summary = publish_files(splits.kept, spec=spec)
    excluded = policy_counts(splits.excluded)
    version = write_version(
        spec, store, pairs, verdict=verdict, metrics=metrics, batches=batches,
        key_column="pair_id", extra_files=files,
        extras={"preference": {**summary, "excluded": dict(excluded)}})
    rows = int(version.manifest["rows"])
    get_run_logger().info("published preference pairs v%s at %s (%s pairs)", version.version,
                          version.path, rows)
    return PublishOutcome({"version": version.version, "path": str(version.path),
                           "current": str(version.path.parent / "current"), "rows": rows,
                           "splits": version.manifest["splits"],
                           "unchanged": version.unchanged, "preference": summary,
                           "excluded_by_policy": dict(excluded)})
