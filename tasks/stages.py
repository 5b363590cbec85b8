"""Prefect tasks: one thin wrapper per stage over the pure functions in labelgate/ and checks/.

Tasks take and return Python objects (frames included) in process. Input hashing for
caching is off (`NO_CACHE`): hashing a million-row frame per call costs more than the
stage; cross-run reuse is keyed on batch hashes in the lake instead.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
from prefect import get_run_logger, task
from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_table_artifact,
)
from prefect.cache_policies import NO_CACHE

from checks.contract import (
    BatchContract,
    BatchPart,
    ContractResult,
    check_columns,
    contract_batch,
    contract_fingerprint,
    merge_batches,
)
from checks.quality import class_counts, contract_metrics
from checks.sft import enforce_instruction_contract, sft_summary
from labelgate import locking, remote, reuse, steps, warehouse
from labelgate.agreement import AgreementReport, compute_agreement
from labelgate.errors import LabelgateError
from labelgate.gate import GateVerdict, agreement_gate_metrics, evaluate_gate, history_metrics
from labelgate.lake import (
    Batch,
    cache_dir,
    ingest_source,
    lake_dir,
    load_annotations,
    load_batches,
    read_cached,
    write_cached,
)
from labelgate.locking import RunLock
from labelgate.publish import PublishedVersion, current_version, publish_version
from labelgate.report import (
    RowCounts,
    agreement_section,
    build_report,
    render_markdown,
    write_report,
)
from labelgate.review import (
    apply_corrections,
    latest_corrections,
    load_corrections,
    load_gold_answers,
    reviewer_accuracy,
)
from labelgate.runs import RunContext, new_run, reports_root
from labelgate.spec import Spec, load_spec
from labelgate.splits import load_assignments, save_assignments
from tasks import faults
from tasks.partition import mapper as stages_mapper

ARTIFACT_ROWS = 200
HOUR = 3600


def _transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry only I/O trouble (a busy disk, a locked warehouse); never bad input or bugs."""
    try:
        state.result()
    except LabelgateError:
        return False
    except (OSError, duckdb.IOException, duckdb.TransactionException):
        return True
    except Exception:
        return False
    return False


# I/O stages are idempotent (content-addressed lake, delete-then-insert tables), so they
# retry transient errors; every stage has a time limit so a hung night shows as TimedOut.
RETRY_IO: dict[str, Any] = {
    "retries": 2, "retry_delay_seconds": 5, "retry_condition_fn": _transient,
}


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
    annotations: pl.DataFrame | None = None  # the long frame (item, annotator, label)


@dataclass
class Prepared:
    """What `prepare_run` opens: the spec, the run record, the dataset's run lock (the
    flow releases it in a `finally`) and the earlier runs it found abandoned."""

    spec: Spec
    run: RunContext
    lock: RunLock
    abandoned: list[dict[str, Any]]


@task(name="prepare-run", cache_policy=NO_CACHE)
@faults.boundaries("prepare-run")
def prepare_run(
    spec_path: str, store: str | None, flow_run_id: str | None = None
) -> Prepared:
    """Load the spec, take the dataset's run lock (refuse with `RunLockedError` naming the
    holder when another run of the dataset is in progress), mark runs left `running` by a
    dead process as `abandoned`, and open this run's record in the warehouse."""
    spec = load_spec(spec_path)
    # a missing embedding model fails before any data is read
    steps.check_environment(spec, notice=get_run_logger().info)
    url = remote.store_url(spec, store)
    run = new_run(
        dataset=spec.name,
        spec_path=str(Path(spec_path).resolve()),
        spec_hash=spec.fingerprint(),
        store=remote.working_store(spec, store, pull_first=False),
        remote=url,
    )
    lock = locking.acquire(run.store_dir, run.dataset, run_id=run.run_id)
    try:
        if url is not None:
            _sync(run, "pull")
        with warehouse.connect(run.warehouse) as con:
            abandoned = warehouse.abandon_runs(con, dataset=run.dataset, by_run_id=run.run_id)
            warehouse.start_run(
                con,
                run_id=run.run_id,
                dataset=run.dataset,
                spec_hash=run.spec_hash,
                spec_path=run.spec_path,
                started_at=run.started_at,
                flow_run_id=flow_run_id,
            )
    except BaseException:
        lock.release()
        raise
    log = get_run_logger()
    log.info("run %s of %s, store %s", run.run_id, run.dataset, run.store)
    for run_id, _ in abandoned:
        log.warning("run %s of %s was left running by a process that died: marked abandoned",
                    run_id, run.dataset)
    return Prepared(
        spec, run, lock,
        [{"run_id": r, "started_at": t.isoformat() if t is not None else None}
         for r, t in abandoned],
    )


def _sync(run: RunContext, direction: str) -> None:
    """Pull the remote store's state for the dataset into the working copy, or push the
    run's results back (`labelgate.remote`)."""
    if run.remote is None:
        return
    log = get_run_logger()
    store = remote.open_remote(run.remote)
    move = remote.pull if direction == "pull" else remote.push
    stats = move(store, run.store_dir, run.dataset,
                 on_unit=lambda unit: log.info("%s %s", direction, unit))
    log.info(
        "%s %s: %s units (%s MB), %s already there, warehouse %s, %.1f s", direction,
        run.remote, stats.units, round(stats.bytes / 1e6, 1), stats.skipped,
        "copied" if stats.warehouse else "unchanged", stats.seconds,
    )


@task(name="push-store", cache_policy=NO_CACHE, timeout_seconds=2 * HOUR, **RETRY_IO)
@faults.boundaries("push-store")
def push_store(run: RunContext) -> None:
    """A remote store: upload the run's new lake batches, caches, report, curated rows,
    published version and the warehouse (pointers last)."""
    _sync(run, "push")


@task(name="ingest", cache_policy=NO_CACHE, timeout_seconds=2 * HOUR, **RETRY_IO)
@faults.boundaries("ingest")
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


@dataclass(frozen=True)
class Canonical:
    """task instruction: the run's rows as the canonical frame, and unparseable records."""

    rows: pl.DataFrame
    rejects: pl.DataFrame


@dataclass(frozen=True)
class SftOutcome:
    conflicts: pl.DataFrame  # checks.sft.CONFLICT_SCHEMA
    metrics: dict[str, float]  # `sft.` prefix
    section: dict[str, Any]  # report.json's `sft` section


@task(name="canonicalize", cache_policy=NO_CACHE, timeout_seconds=2 * HOUR)
@faults.boundaries("canonicalize")
def canonicalize(spec: Spec, batches: list[Batch]) -> Canonical:
    """task instruction: each batch's rows in the canonical frame (errors name the file)."""
    frames, rejects = [], []
    for b in batches:
        rows, bad = load_batches([b])
        frames.append(steps.canonicalize(rows, spec=spec, where=b.file))
        rejects.append(bad)
    out = Canonical(pl.concat(frames, how="diagonal_relaxed"),
                    pl.concat(rejects, how="diagonal_relaxed"))
    get_run_logger().info(
        "canonicalize (%s): %s rows, %s unparseable", spec.sources.items.style,
        out.rows.height, out.rejects.height,
    )
    return out


@task(name="enforce-contract", cache_policy=NO_CACHE, timeout_seconds=2 * HOUR)
@faults.boundaries("enforce-contract")
def contract(
    spec: Spec, run: RunContext, batches: list[Batch], canonical: Canonical | None = None
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
    result = _contract_by_batch(spec, run, batches)
    get_run_logger().info(
        "contract: %s input rows, %s valid, %s quarantined (%s of %s batches checked, %s "
        "from the cache)",
        result.rows_input, result.rows_valid, result.rows_quarantined,
        len(batches) - len(result.cached_batches), len(batches), len(result.cached_batches),
    )
    return result, None


def _contract_by_batch(spec: Spec, run: RunContext, batches: list[Batch]) -> ContractResult:
    """Each batch's contract result from the cache (same batch hash and contract
    fingerprint: a batch seen on an earlier night) or computed (one part per batch), then
    merged with the cross-batch `unique` check."""
    for b in batches:
        check_columns(list(pl.read_parquet_schema(b.data_path)), spec, where=b.file)
    fingerprint = contract_fingerprint(spec)
    names = ["valid", "quarantine", "keys"]
    found: dict[str, BatchContract] = {}
    for b in batches:
        cached = read_cached(_contract_cache(run, b, fingerprint), names)
        if cached is not None:
            frames, meta = cached
            found[b.batch] = BatchContract(
                ContractResult(frames["valid"], frames["quarantine"],
                               int(str(meta["rows_input"])), int(str(meta["rows_quarantined"]))),
                frames["keys"],
            )
    todo = [b for b in batches if b.batch not in found]
    jobs = []
    for b in todo:
        rows, rejects = load_batches([b])
        jobs.append(BatchPart(rows, rejects, spec, "items", b.file))
    for b, checked in zip(todo, stages_mapper()(contract_batch, jobs, name="contract"),
                          strict=True):
        r = checked.result
        write_cached(
            _contract_cache(run, b, fingerprint),
            {"valid": r.valid, "quarantine": r.quarantine, "keys": checked.keys},
            {"batch": b.batch, "file": b.file, "fingerprint": fingerprint,
             "rows_input": r.rows_input, "rows_quarantined": r.rows_quarantined},
        )
        found[b.batch] = checked
    merged = merge_batches([found[b.batch] for b in batches], spec=spec)
    return replace(merged, cached_batches=frozenset(b.batch for b in batches) - {
        b.batch for b in todo})


def _contract_cache(run: RunContext, batch: Batch, fingerprint: str) -> Path:
    return cache_dir(run.store_dir, run.dataset, "contract", f"{batch.batch}-{fingerprint}")


@task(name="store", cache_policy=NO_CACHE, timeout_seconds=HOUR, **RETRY_IO)
@faults.boundaries("store")
def store(
    spec: Spec, run: RunContext, result: ContractResult, sft: SftOutcome | None = None
) -> Stored:
    """Write the valid rows to Parquet, the quarantine (and conflicting responses) to
    DuckDB, and refresh the views."""
    run.curated_dir.mkdir(parents=True, exist_ok=True)
    valid_path = run.curated_dir / "items.parquet"
    tmp = run.curated_dir / ".items.parquet.tmp"  # the file marks the folder complete
    result.valid.write_parquet(tmp)
    tmp.replace(valid_path)
    with warehouse.connect(run.warehouse) as con:
        warehouse.record_quarantine(con, result.quarantine, run_id=run.run_id, dataset=run.dataset)
        if sft is not None:
            warehouse.record_rows(con, "conflicting_responses", sft.conflicts,
                                  run_id=run.run_id, dataset=run.dataset)
        warehouse.refresh_views(
            con,
            dataset=run.dataset,
            lake_glob=str(lake_dir(run.store_dir, run.dataset, "items") / "batch=*/data.parquet"),
            valid_path=valid_path,
            run_id=run.run_id,
            id_column=spec.columns.id,
        )
    return Stored(valid_path=str(valid_path), warehouse=str(run.warehouse))


@task(name="agreement", cache_policy=NO_CACHE, timeout_seconds=HOUR)
@faults.boundaries("agreement")
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
    return AgreementOutcome(
        report, ann_batches + gold_batches, gate_metrics, section, inputs.annotations
    )


@task(name="consensus-label", cache_policy=NO_CACHE, timeout_seconds=HOUR)
def consensus_label(
    spec: Spec, result: ContractResult, agreement: AgreementOutcome
) -> tuple[ContractResult, AgreementOutcome]:
    """`agreement.apply`: the spec's consensus label becomes the items' training label."""
    valid, stats = steps.apply_consensus(result.valid, agreement.report.consensus, spec=spec)
    get_run_logger().info(
        "consensus label (%s): %s labels changed, %s confirmed, %s items without annotations",
        stats["method"], stats.get("changed"), stats.get("confirmed"),
        stats.get("without_consensus"),
    )
    section = {**agreement.section, "training_label": stats,
               "consensus_applied_to_items": bool(stats.get("applied"))}
    metrics = {**agreement.metrics, "agreement.consensus_changed_labels": float(
        stats.get("changed", 0))}
    return replace(result, valid=valid), replace(agreement, section=section, metrics=metrics)


@task(name="label-issues", cache_policy=NO_CACHE, timeout_seconds=4 * HOUR)
@faults.boundaries("label-issues")
def label_issues(
    spec: Spec, run: RunContext, result: ContractResult, agreement: AgreementOutcome | None
) -> steps.LabelIssuesOutcome:
    """Flag probable label errors; store them per row in DuckDB and label_issues.parquet."""
    predictions = None
    if spec.sources.predictions is not None:
        pred_batches = ingest_source(
            spec.sources.predictions, key="predictions", dataset=spec.name,
            store=run.store_dir, base_dir=spec.base_dir,
        )
        rows, _ = load_batches(pred_batches)
        predictions = rows.drop("_batch", "_row", strict=False)
    annotations = None
    if agreement is not None and agreement.annotations is not None:
        item = spec.annotation_columns()[0]
        annotations = agreement.annotations.rename({item: spec.columns.id}) if (
            item != spec.columns.id) else agreement.annotations
    if annotations is not None:
        # annotations on items this run does not have are counted by the agreement stage;
        # CROWDLAB scores only the run's rows
        known = result.valid.get_column(spec.columns.id).cast(pl.String).implode()
        annotations = annotations.filter(pl.col(spec.columns.id).cast(pl.String).is_in(known))
    fingerprint = reuse.label_issues_fingerprint(
        result.valid, spec=spec, predictions=predictions, annotations=annotations
    )
    saved = reuse.find_saved(reports_root(run.store_dir, run.dataset), fingerprint=fingerprint)
    if saved is not None:
        # same rows, labels and settings as an earlier run: its (deterministic) result
        outcome = steps.LabelIssuesOutcome(
            saved.result, saved.metrics, {**saved.section, "reused_from": saved.run_id}
        )
        get_run_logger().info("label issues: inputs unchanged since run %s, reused", saved.run_id)
    else:
        vectors = steps.label_issue_embeddings(
            result.valid, spec=spec, store=run.store_dir, progress=_embedding_progress(),
            notice=get_run_logger().info,
        )
        outcome = steps.detect_label_issues(
            result.valid, spec=spec, predictions=predictions, annotations=annotations,
            mapper=stages_mapper(), embeddings=vectors,
        )
        if agreement is not None and "consensus_label" in outcome.result.table.columns:
            outcome = steps.compare_with_crowdlab(outcome, agreement.report.consensus)
    # a label a reviewer set or confirmed is not a probable error (reviews only add up, so
    # a saved result with earlier reviews accepted stays right under the new ones)
    reviewed = _reviewed_ids(spec, run, result.valid)
    if reviewed:
        outcome = steps.accept_reviewed(outcome, reviewed, valid=result.valid, spec=spec)
    if saved is None:
        reuse.save_label_issues(
            run.report_dir, fingerprint=fingerprint, result=outcome.result,
            metrics=outcome.metrics, section=outcome.section,
        )
    else:
        reuse.write_outputs(run.report_dir, outcome.result)
    # label_issues.parquet and probabilities.parquet (the review queue's uncertainty picks
    # read them) are in the report folder now; the warehouse gets the per-row table
    table = outcome.result.table.with_columns(  # the library names the id column `id`
        pl.col("id").cast(pl.String)
    )
    with warehouse.connect(run.warehouse) as con:
        warehouse.record_rows(con, "label_issues", table.select(list(_LABEL_ISSUE_COLUMNS)),
                              run_id=run.run_id, dataset=run.dataset)
    section = outcome.section
    get_run_logger().info(
        "label issues (%s, %s path): %s of %s rows flagged (%.2f%%), health %.3f",
        section["method"], section["path"], section["count"], result.rows_valid,
        100 * section["rate"], section["health_score"],
    )
    return outcome


def _embedding_progress() -> Callable[[int, int], None]:
    """Log sentence-encoding progress (the library reports ~10 steps) with the rate since the
    model was loaded."""
    logger = get_run_logger()
    started = [time.monotonic()]

    def report(done: int, total: int) -> None:
        if done == 0:
            started[0] = time.monotonic()
            logger.info("embeddings: model loaded, encoding %s text(s)", f"{total:,}")
            return
        rate = done / max(time.monotonic() - started[0], 1e-9)
        logger.info("embeddings: %s of %s encoded (%.0f/s)", f"{done:,}", f"{total:,}", rate)

    return report


def _reviewed_ids(spec: Spec, run: RunContext, valid: pl.DataFrame) -> set[str]:
    """Ids whose current label is their latest reviewer decision (review import overlays)."""
    label = spec.columns.label
    overlay = load_corrections(run.store_dir, run.dataset)
    if label is None or overlay.height == 0:
        return set()
    latest = latest_corrections(overlay).select("id", "new_label")  # as the corrections apply
    current = valid.select(
        pl.col(spec.columns.id).cast(pl.String).alias("id"),
        pl.col(label).cast(pl.String).alias("label"),
    )
    same = current.join(latest, on="id", how="inner").filter(
        pl.col("label") == pl.col("new_label")
    )
    return set(same.get_column("id").to_list())


_LABEL_ISSUE_COLUMNS = (
    "id", "given_label", "suggested_label", "label_quality", "is_label_issue", "rank"
)


@task(name="dedup", cache_policy=NO_CACHE, timeout_seconds=2 * HOUR)
@faults.boundaries("dedup")
def dedup(spec: Spec, run: RunContext, result: ContractResult) -> steps.DedupOutcome:
    """Exact and near-duplicate clusters; stored in DuckDB table `duplicates`."""
    outcome = steps.detect_duplicates(result.valid, spec=spec, mapper=stages_mapper())
    clusters = outcome.result.clusters.select(
        pl.col("cluster_id").cast(pl.String), pl.col("id").cast(pl.String), "kind",
        "similarity", "is_representative",
    )
    with warehouse.connect(run.warehouse) as con:
        warehouse.record_rows(con, "duplicates", clusters, run_id=run.run_id,
                              dataset=run.dataset)
    s = outcome.section
    get_run_logger().info(
        "dedup: %s duplicate rows in %s clusters (%s with conflicting labels)",
        s["count"], s["clusters"], s["conflicting_clusters"],
    )
    return outcome


@task(name="splits", cache_policy=NO_CACHE, timeout_seconds=HOUR, **RETRY_IO)
@faults.boundaries("splits")
def splits(
    spec: Spec,
    run: RunContext,
    result: ContractResult,
    issues: steps.LabelIssuesOutcome | None,
    dups: steps.DedupOutcome | None,
) -> steps.SplitOutcome:
    """Sticky splits (assignments kept in DuckDB), flagged-row policy, leakage check."""
    with warehouse.connect(run.warehouse) as con:
        previous = load_assignments(con, dataset=run.dataset)
        outcome = steps.make_splits(
            result.valid, spec=spec, run_id=run.run_id, previous=previous,
            issues=issues, dups=dups,
        )
        save_assignments(con, outcome.result.assignments, dataset=run.dataset,
                         run_id=run.run_id)
        warehouse.record_rows(
            con, "exclusions",
            outcome.excluded.rename({"exclusion_policy": "policy", "exclusion_reason": "reason"}),
            run_id=run.run_id, dataset=run.dataset,
        )
    get_run_logger().info(
        "splits: %s", ", ".join(f"{r['split']}/{r['label']} {r['rows']}"
                                for r in outcome.section["counts"]),
    )
    return outcome


# no retries: a retry after the rename would publish a second version
@task(name="publish", cache_policy=NO_CACHE, timeout_seconds=HOUR)
@faults.boundaries("publish")
def publish(
    spec: Spec,
    run: RunContext,
    split: steps.SplitOutcome,
    verdict: GateVerdict,
    metrics: dict[str, float],
    batches: list[Batch],
) -> dict[str, Any]:
    """Write published/<dataset>/v<N>/ and move `current` (only called when the gate passed).

    A write error (disk full, read-only store) leaves no new version folder (publish_version
    removes its temporary folder) and `current` where it was; the error says where it is."""
    root = run.store_dir / "published" / run.dataset
    try:
        version = _publish_version(spec, run, split, verdict, metrics, batches, root=root)
    except OSError as exc:  # disk full, read-only store...: say what was kept
        now = current_version(root)
        raise OSError(
            exc.errno,
            f"{run.dataset}: publishing failed ({exc}); `current` "
            + (f"points to v{now}" if now is not None else "absent (no version published yet)")
            + ", earlier versions untouched",
        ) from exc
    rows = int(version.manifest["rows"])
    with warehouse.connect(run.warehouse) as con:
        warehouse.record_rows(
            con, "published",
            pl.DataFrame({"version": [version.version], "path": [str(version.path)],
                          "rows": [rows]}),
            run_id=run.run_id, dataset=run.dataset,
        )
    get_run_logger().info("published v%s at %s", version.version, version.path)
    return {"version": version.version, "path": str(version.path),
            "current": str(version.path.parent / "current"), "rows": rows,
            "splits": version.manifest["splits"]}


def _publish_version(
    spec: Spec,
    run: RunContext,
    split: steps.SplitOutcome,
    verdict: GateVerdict,
    metrics: dict[str, float],
    batches: list[Batch],
    *,
    root: Path,
) -> PublishedVersion:
    pub = spec.publish
    if pub is None:
        raise ValueError("publish stage called without a publish section")
    return publish_version(
        steps.split_frames(split.kept, spec=spec),
        root=root,
        key_column=spec.columns.id,
        label_column=spec.columns.label,
        run_id=run.run_id,
        spec_hash=run.spec_hash,
        gate_passed=verdict.passed,
        formats=spec.publish_formats(),
        jsonl_style=steps.jsonl_style(pub.jsonl),
        gate=verdict.to_dict(),
        metrics=metrics,
        lineage=[b.batch for b in batches],
        before_switch=lambda _: faults.fault_point("publish", "switch"),
    )


@task(name="gate", cache_policy=NO_CACHE, timeout_seconds=600, **RETRY_IO)
@faults.boundaries("gate")
def gate(spec: Spec, run: RunContext, metrics: dict[str, float]) -> GateVerdict:
    """Compare the run's metrics with the spec's thresholds; record both."""
    verdict = evaluate_gate(metrics, spec.gate)
    with warehouse.connect(run.warehouse) as con:
        recorded = {**metrics, "gate_passed": float(verdict.passed)}
        warehouse.record_metrics(con, recorded, run_id=run.run_id, dataset=run.dataset)
        warehouse.record_gate(con, verdict, run_id=run.run_id, dataset=run.dataset)
    get_run_logger().info(verdict.summary())
    return verdict


@dataclass(frozen=True)
class Outcomes:
    """What the optional stages produced in this run (None: the stage did not run)."""

    agreement: AgreementOutcome | None = None
    label_issues: steps.LabelIssuesOutcome | None = None
    dedup: steps.DedupOutcome | None = None
    splits: steps.SplitOutcome | None = None
    sft: SftOutcome | None = None
    review: dict[str, Any] | None = None  # reviewer corrections applied to the labels

    def sections(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.review is not None:
            out["review"] = self.review
        if self.sft is not None:
            out["sft"] = self.sft.section
        if self.agreement is not None:
            out["agreement"] = self.agreement.section
        if self.label_issues is not None:
            out["label_issues"] = self.label_issues.section
        if self.dedup is not None:
            out["duplicates"] = self.dedup.section
        if self.splits is not None:
            section = dict(self.splits.section)
            out["leakage"] = section.pop("leakage")
            out["splits"] = section
        return out

    @property
    def excluded(self) -> int:
        return self.splits.excluded.height if self.splits is not None else 0


@task(name="corrections", cache_policy=NO_CACHE, timeout_seconds=HOUR)
@faults.boundaries("corrections")
def corrections(
    spec: Spec, run: RunContext, result: ContractResult
) -> tuple[ContractResult, dict[str, Any] | None]:
    """Apply reviewer corrections (`labelgate review import` overlays) to the valid rows.

    The overlay is never an in-place edit: the lake keeps the source labels; this run's
    labels are the source's with the latest correction per id on top.
    """
    label = spec.columns.label
    overlay = load_corrections(run.store_dir, run.dataset)
    if label is None or overlay.height == 0:
        return result, None
    valid, stats = apply_corrections(
        result.valid, overlay, id_column=spec.columns.id, label_column=label
    )
    accuracy = reviewer_accuracy(load_gold_answers(run.store_dir, run.dataset))
    section = {**stats.to_dict(), "reviewer_gold_accuracy": accuracy.to_dicts()}
    get_run_logger().info(
        "review corrections: %s labels changed, %s confirmed (%s corrections in the overlay)",
        stats.n_changed, stats.n_confirmed, stats.n_corrections,
    )
    return replace(result, valid=valid), section


def _kept(spec: Spec, result: ContractResult, outcomes: Outcomes) -> ContractResult:
    """The contract result less the rows the splits excluded: "valid" everywhere (report,
    metrics, runs table) is what is left to publish, so min_rows and min_rows_per_class
    gate what a fine-tune will get."""
    if outcomes.splits is None or not outcomes.excluded:
        return result
    gone = outcomes.splits.excluded.get_column("id").cast(pl.String).implode()
    ids = pl.col(spec.columns.id).cast(pl.String)
    return replace(result, valid=result.valid.filter(~ids.is_in(gone)))


@task(name="metrics", cache_policy=NO_CACHE)
@faults.boundaries("metrics")
def metrics(
    spec: Spec, run: RunContext, result: ContractResult, outcomes: Outcomes,
    batches: list[Batch],
) -> dict[str, float]:
    """The run's metrics for the gate: contract metrics, every stage's own, and the
    comparisons with earlier passing runs (metrics_history)."""
    label = spec.columns.label
    kept = _kept(spec, result, outcomes)
    base = (
        contract_metrics(kept, label_column=label, classes_of=result.valid) if label is not None
        else steps.row_metrics(kept.rows_input, kept.rows_valid, kept.rows_quarantined)
    )
    base["rows_excluded"] = float(outcomes.excluded)
    base["rejected_lines"] = float(sum(
        b.rejected_lines if b.lines is not None else b.rejected for b in batches))
    if outcomes.review is not None:
        base["review.changed_labels"] = float(outcomes.review["n_changed"])
    current = steps.merge_metrics(
        base,
        outcomes.sft.metrics if outcomes.sft else None,
        outcomes.agreement.metrics if outcomes.agreement else None,
        outcomes.label_issues.metrics if outcomes.label_issues else None,
        outcomes.dedup.metrics if outcomes.dedup else None,
        outcomes.splits.metrics if outcomes.splits else None,
    )
    with warehouse.connect(run.warehouse) as con:
        earlier = warehouse.metric_history(con, run.dataset, last_runs=100)
    rows = earlier.filter(pl.col("run_id") != run.run_id).select("run_id", "metric", "value")
    return current | history_metrics(current, rows.rows())


@task(name="report", cache_policy=NO_CACHE, timeout_seconds=HOUR, **RETRY_IO)
@faults.boundaries("report")
def report(
    spec: Spec,
    run: RunContext,
    batches: list[Batch],
    result: ContractResult,
    metrics: dict[str, float],
    verdict: GateVerdict,
    stored: Stored,
    outcomes: Outcomes,
    published: dict[str, Any] | None = None,
    abandoned: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Write report.json/md/html, publish them as Prefect artifacts, close the run record.

    ``abandoned``: earlier runs of the dataset that `prepare_run` found left running by a
    dead process (report.json's ``previous_runs_abandoned``: count and run ids)."""
    agreement = outcomes.agreement
    excluded = outcomes.excluded
    rows = RowCounts(
        result.rows_input, result.rows_valid - excluded, result.rows_quarantined, excluded
    )
    paths = {
        "report": str(run.report_dir),
        "report_html": str(run.report_dir / "report.html"),
        "valid_rows": stored.valid_path,
        "warehouse": stored.warehouse,
    }
    if outcomes.label_issues is not None:
        paths["label_issues"] = str(run.report_dir / "label_issues.parquet")
    sections = outcomes.sections()
    if published is not None:
        sections["published"] = published
        paths["published"] = published["path"]
    content = build_report(
        run,
        batches=batches + (agreement.batches if agreement is not None else []),
        rows=rows,
        quarantine=result.quarantine,
        classes=(
            class_counts(
                _kept(spec, result, outcomes).valid, label_column=spec.columns.label,
                classes_of=result.valid,
            )
            if spec.columns.label is not None
            else pl.DataFrame(schema={"label": pl.String, "rows": pl.UInt32})
        ),
        metrics=metrics,
        verdict=verdict,
        paths=paths,
        agreement=sections.pop("agreement", None),
    )
    content.update(sections)
    for source in content["sources"]:  # which items batches' contract results were cached
        if source["source"] == "items" and not spec.is_instruction:
            source["contract_cached"] = source["batch"] in result.cached_batches
    content["previous_runs_abandoned"] = {"count": len(abandoned or []),
                                          "runs": list(abandoned or [])}
    with warehouse.connect(run.warehouse) as con:
        history = warehouse.metric_history(con, run.dataset)
    label_table = (
        outcomes.label_issues.result.table if outcomes.label_issues is not None else None
    )
    out = write_report(content, run=run, history=history, label_issues=label_table)
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
    if outcomes.label_issues is not None:
        create_table_artifact(
            _json_rows(outcomes.label_issues.result.per_class),
            key=f"{key}-label-quality",
            description=f"label quality per class, run {run.run_id}",
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
            rows_excluded=rows.excluded,
            gate_passed=verdict.passed,
            report_dir=str(out),
            message=verdict.summary(),
        )
    get_run_logger().info("report: %s", out / "report.md")
    return content


@task(name="record-error", cache_policy=NO_CACHE)
@faults.boundaries("record-error")
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
