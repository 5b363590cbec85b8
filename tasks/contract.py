"""The contract: pandera checks per batch (cached), reviewer corrections, storing rows."""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import polars as pl
from prefect import get_run_logger

from checks.contract import ContractResult, check_columns
from checks.contract_batches import (
    BatchContract,
    BatchPart,
    contract_batch,
    contract_fingerprint,
    merge_batches,
)
from checks.sft import enforce_instruction_contract, sft_summary
from labelgate.spec import Spec
from labelgate.stages.review import apply_corrections, reviewer_accuracy
from labelgate.store import RunStore, lake
from labelgate.store.lake import Batch
from tasks.common import HOUR, stage_task
from tasks.ingest import Canonical
from tasks.partition import mapper as stages_mapper


@dataclass(frozen=True)
class SftOutcome:
    """Instruction data: conflicting responses, the SFT checks' metrics and section."""

    conflicts: pl.DataFrame  # checks.sft.CONFLICT_SCHEMA
    metrics: dict[str, float]  # `sft.` prefix
    section: dict[str, Any]  # report.json's `sft` section

    def sections(self) -> dict[str, Any]:
        return {"sft": self.section}


@dataclass(frozen=True)
class ReviewOutcome:
    """Reviewer corrections applied to this run's labels."""

    section: dict[str, Any]  # report.json's `review` section

    @property
    def metrics(self) -> dict[str, float]:
        return {"review.changed_labels": float(self.section["n_changed"])}

    def sections(self) -> dict[str, Any]:
        return {"review": self.section}


@dataclass(frozen=True)
class Stored:
    valid_path: str
    warehouse: str


@stage_task("enforce-contract", timeout=2 * HOUR)
def enforce_contract(
    spec: Spec, store: RunStore, batches: list[Batch], canonical: Canonical | None = None
) -> tuple[ContractResult, SftOutcome | None]:
    """Validate the run's rows against the pandera contract; bad rows are quarantined.
    Classification data: batch by batch, each batch's result cached in the store (a night
    with one new batch checks only that one). Instruction data: the contract runs on the
    canonical frame, and the SFT checks' failures join the quarantine."""
    if canonical is not None:
        result, conflicts = enforce_instruction_contract(
            canonical.rows, spec=spec, rejects=canonical.rejects, source="items"
        )
        metrics, section = sft_summary(result, conflicts, rules=spec.sft_rules())
        get_run_logger().info(
            "contract + SFT checks: %s input rows, %s valid, %s quarantined (%s by SFT "
            "checks); %s rows in %s conflicting-response groups",
            result.rows_input, result.rows_valid, result.rows_quarantined,
            section["quarantined_rows"], conflicts.height, section["conflicts"]["groups"],
        )
        return result, SftOutcome(conflicts, metrics, section)
    result = _contract_by_batch(spec, store, batches)
    get_run_logger().info(
        "contract: %s input rows, %s valid, %s quarantined (%s of %s batches checked, %s "
        "from the cache)",
        result.rows_input, result.rows_valid, result.rows_quarantined,
        len(batches) - len(result.cached_batches), len(batches), len(result.cached_batches),
    )
    return result, None


_CONTRACT_FRAMES = ["valid", "quarantine", "keys"]


def _contract_by_batch(spec: Spec, store: RunStore, batches: list[Batch]) -> ContractResult:
    """Each batch's contract result from the cache (same batch hash and contract
    fingerprint: a batch seen on an earlier night) or computed (one part per batch), then
    merged with the cross-batch `unique` check. The cached results are read on a thread
    while the new batches are checked (a night: the kept rows' Parquet decodes while
    pandera loads and checks the new batch)."""
    for b in batches:
        check_columns(list(pl.read_parquet_schema(b.data_path)), spec, where=b.file)
    fingerprint = contract_fingerprint(spec)
    keys = {b.batch: f"{b.batch}-{fingerprint}" for b in batches}
    marked = {b.batch for b in batches if _marked(store, keys[b.batch])}
    with ThreadPoolExecutor(1, thread_name_prefix="labelgate-contract-cache") as pool:
        reading = pool.submit(_read_cached, store, [b for b in batches if b.batch in marked],
                              keys)
        found = _check(spec, store, [b for b in batches if b.batch not in marked], keys,
                       fingerprint)
        read = reading.result()
    found |= read
    # a cache unit marked complete that did not read (damaged) is checked again
    found |= _check(spec, store, [b for b in batches if b.batch not in found], keys,
                    fingerprint)
    merged = merge_batches([found[b.batch] for b in batches], spec=spec)
    return replace(merged, cached_batches=frozenset(read))


def _marked(store: RunStore, key: str) -> bool:
    """Whether the contract's cache unit `key` is marked complete (it may still not read)."""
    return (lake.cache_dir(store.root, store.dataset, "contract", key)
            / lake.CACHE_MARKER).is_file()


def _read_cached(store: RunStore, batches: list[Batch], keys: Mapping[str, str]
                 ) -> dict[str, BatchContract]:
    found: dict[str, BatchContract] = {}
    for b in batches:
        cached = store.cached("contract", keys[b.batch], _CONTRACT_FRAMES)
        if cached is not None:
            frames, meta = cached
            found[b.batch] = BatchContract(
                ContractResult(frames["valid"], frames["quarantine"],
                               int(str(meta["rows_input"])), int(str(meta["rows_quarantined"]))),
                frames["keys"],
            )
    return found


def _check(spec: Spec, store: RunStore, todo: list[Batch], keys: Mapping[str, str],
           fingerprint: str) -> dict[str, BatchContract]:
    """The contract of each batch in `todo` (one part each), each result cached."""
    found: dict[str, BatchContract] = {}
    jobs = [BatchPart(*store.load([b]), spec, "items", b.file) for b in todo]
    for b, checked in zip(todo, stages_mapper()(contract_batch, jobs, name="contract"),
                          strict=True):
        r = checked.result
        store.cache(
            "contract", keys[b.batch],
            {"valid": r.valid, "quarantine": r.quarantine, "keys": checked.keys},
            {"batch": b.batch, "file": b.file, "fingerprint": fingerprint,
             "rows_input": r.rows_input, "rows_quarantined": r.rows_quarantined},
        )
        found[b.batch] = checked
    return found


@stage_task("corrections")
def corrections(
    spec: Spec, store: RunStore, contract: ContractResult
) -> tuple[ContractResult, ReviewOutcome | None]:
    """Apply reviewer corrections (`labelgate review import` overlays) to the valid rows.

    The overlay is never an in-place edit: the lake keeps the source labels; this run's
    labels are the source's with the latest correction per id on top.
    """
    label = spec.columns.label
    overlay = store.corrections()
    if label is None or overlay.height == 0:
        return contract, None
    if spec.columns.label_from_consensus:  # the label does not exist yet: it comes later
        get_run_logger().warning(
            "review corrections: not applied; the label comes from the annotators' consensus "
            "(columns.label_from_consensus), and corrections apply to item labels only")
        return contract, None
    valid, stats = apply_corrections(
        contract.valid, overlay, id_column=spec.columns.id, label_column=label
    )
    accuracy = reviewer_accuracy(store.gold_answers())
    section = {**stats.to_dict(), "reviewer_gold_accuracy": accuracy.to_dicts()}
    get_run_logger().info(
        "review corrections: %s labels changed, %s confirmed (%s corrections in the overlay)",
        stats.n_changed, stats.n_confirmed, stats.n_corrections,
    )
    return replace(contract, valid=valid), ReviewOutcome(section)


@stage_task("store", retry_io=True)
def store_rows(
    spec: Spec, store: RunStore, contract: ContractResult, sft: SftOutcome | None = None
) -> Stored:
    """Write the valid rows to Parquet, the quarantine (and conflicting responses) to
    DuckDB, and refresh the views."""
    valid_path = store.write_valid(contract.valid)
    store.record_stored(contract.quarantine, conflicts=sft.conflicts if sft else None,
                        valid_path=valid_path, id_column=spec.columns.id)
    return Stored(valid_path=str(valid_path), warehouse=str(store.run.warehouse))
