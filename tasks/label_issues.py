"""Probable label errors: cleanlab on out-of-fold probabilities, reused when unchanged."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

import polars as pl
from prefect import get_run_logger

from checks.contract import ContractResult
from labelgate.spec import Spec
from labelgate.stages import refresh, steps
from labelgate.stages.label_issues.detect import apply_review_budget
from labelgate.stages.label_issues.listing import report_rows
from labelgate.stages.review import latest_corrections
from labelgate.store import RunStore, label_issue_rows, reuse, warehouse
from tasks.agreement import AgreementOutcome
from tasks.common import HOUR, stage_task
from tasks.partition import mapper as stages_mapper

_LABEL_ISSUE_COLUMNS = (
    "id", "given_label", "suggested_label", "label_quality", "is_label_issue", "rank"
)


@stage_task("label-issues", timeout=4 * HOUR)
def label_issues(
    spec: Spec, store: RunStore, contract: ContractResult, agreement: AgreementOutcome | None
) -> steps.LabelIssuesOutcome:
    """Flag probable label errors; store them per row in DuckDB and label_issues.parquet."""
    valid = contract.valid
    predictions = _predictions(spec, store)
    annotations = _annotations(spec, valid, agreement)
    fingerprint = reuse.label_issues_fingerprint(
        valid, spec=spec, predictions=predictions, annotations=annotations
    )
    saved = store.saved_label_issues(fingerprint)
    if saved is not None:
        # same rows, labels and settings as an earlier run: its (deterministic) result
        outcome = steps.LabelIssuesOutcome(
            saved.result, saved.metrics, {**saved.section, "reused_from": saved.run_id}
        )
        get_run_logger().info("label issues: inputs unchanged since run %s, reused", saved.run_id)
    else:
        outcome = _detect(spec, store, valid, predictions, annotations, agreement)
    # a label a reviewer set or confirmed is not a probable error (reviews only add up, so
    # a saved result with earlier reviews accepted stays right under the new ones)
    reviewed = _reviewed_ids(spec, store, valid)
    budget = spec.label_issues.review_budget if spec.label_issues is not None else None
    if budget is not None:
        outcome = _with_budget(outcome, budget, reviewed=reviewed, valid=valid, spec=spec)
    if reviewed:
        outcome = steps.accept_reviewed(outcome, reviewed, valid=valid, spec=spec)
    outcome = _worth_a_look(outcome, valid=valid, spec=spec)
    outcome = steps.LabelIssuesOutcome(
        outcome.result, {**outcome.metrics, **refresh.refresh_metrics(outcome.section)},
        outcome.section)
    if saved is None:
        reuse.save_label_issues(
            store.report_dir, fingerprint=fingerprint, result=outcome.result,
            metrics=outcome.metrics, section=outcome.section,
        )
    else:
        reuse.write_outputs(store.report_dir, outcome.result)
    # label_issues.parquet and probabilities.parquet (the review queue's uncertainty picks
    # read them) are in the report folder now; the warehouse gets the per-row table
    table = outcome.result.table.with_columns(pl.col("id").cast(pl.String))
    # a run that trained again stores whole (the base of the nights after it); any other
    # stores its changes since its base when they are few (labelgate.store.label_issue_rows)
    trained = saved is None and outcome.section.get("refresh", {}).get("mode") == "full"
    with warehouse.connect(store.run.warehouse, keep=True) as con:
        stored = label_issue_rows.record_label_issues(
            con, table.select(list(_LABEL_ISSUE_COLUMNS)), run_id=store.run.run_id,
            dataset=store.dataset, whole=trained)
    section = outcome.section
    get_run_logger().info(
        "label issues (%s, %s path): %s of %s rows flagged (%.2f%%), health %.3f; "
        "warehouse rows: %s", section["method"], section["path"], section["count"],
        contract.rows_valid, 100 * section["rate"], section["health_score"], stored,
    )
    return outcome


def _with_budget(outcome: steps.LabelIssuesOutcome, budget: int | float, *,
                 reviewed: set[str], valid: pl.DataFrame,
                 spec: Spec) -> steps.LabelIssuesOutcome:
    """`label_issues.review_budget`: the budget's lowest-quality rows flagged (reviewed rows
    skipped) in place of the estimated count; the section says how many were estimated."""
    estimated = int(outcome.result.table.get_column("is_label_issue").sum())
    result = apply_review_budget(outcome.result, budget, reviewed=reviewed)
    summary = steps.summarize_label_issues(result, valid=valid, spec=spec)
    section = {**outcome.section, **summary.section, "review_budget": budget,
               "estimated_count": estimated}
    return steps.LabelIssuesOutcome(summary.result, summary.metrics, section)


def _worth_a_look(outcome: steps.LabelIssuesOutcome, *, valid: pl.DataFrame,
                  spec: Spec) -> steps.LabelIssuesOutcome:
    """The report's table: the flagged rows, then the lowest-quality unflagged ones ("worth
    a look"), `label_issues.top` in all."""
    top = spec.label_issues.top if spec.label_issues is not None else 0
    texts = valid.lazy().select(  # lazy: only the listed rows' text is computed
        pl.col(spec.columns.id).alias("id"),
        pl.concat_str([pl.col(c).cast(pl.String) for c in spec.text_columns()],
                      separator=" | ", ignore_nulls=True).alias("text"),
    )
    rows = report_rows(outcome.result.table, texts, top=top)
    return steps.LabelIssuesOutcome(outcome.result, outcome.metrics,
                                    {**outcome.section, "top": rows})


def _predictions(spec: Spec, store: RunStore) -> pl.DataFrame | None:
    """A larger model's predictions, when the spec names them."""
    if spec.sources.predictions is None:
        return None
    batches = store.ingest(spec.sources.predictions, key="predictions", base_dir=spec.base_dir)
    rows, _ = store.load(batches)
    return rows.drop("_batch", "_row", strict=False)


def _annotations(spec: Spec, valid: pl.DataFrame,
                 agreement: AgreementOutcome | None) -> pl.DataFrame | None:
    """The annotations of the run's rows (CROWDLAB scores only those), id column renamed."""
    if agreement is None or agreement.annotations is None:
        return None
    item = spec.annotation_columns()[0]
    annotations = agreement.annotations.rename({item: spec.columns.id}) if (
        item != spec.columns.id) else agreement.annotations
    # annotations on items this run does not have are counted by the agreement stage
    known = valid.get_column(spec.columns.id).cast(pl.String).implode()
    return annotations.filter(pl.col(spec.columns.id).cast(pl.String).is_in(known))


def _detect(spec: Spec, store: RunStore, valid: pl.DataFrame,
            predictions: pl.DataFrame | None, annotations: pl.DataFrame | None,
            agreement: AgreementOutcome | None) -> steps.LabelIssuesOutcome:
    if refresh.keeps_models(spec, annotations=annotations):
        return _detect_keeping(spec, store, valid)
    vectors = steps.label_issue_embeddings(
        valid, spec=spec, store=store.root, progress=_embedding_progress(),
        notice=get_run_logger().info,
    )
    outcome = steps.detect_label_issues(
        valid, spec=spec, predictions=predictions, annotations=annotations,
        mapper=stages_mapper(), embeddings=vectors,
    )
    if agreement is not None and "consensus_label" in outcome.result.table.columns:
        outcome = steps.compare_with_crowdlab(outcome, agreement.report.consensus)
    return outcome


def _detect_keeping(spec: Spec, store: RunStore,
                    valid: pl.DataFrame) -> steps.LabelIssuesOutcome:
    """The built-in text model: new rows scored by the fold models an earlier run kept when
    `label_issues.refresh` allows it, else trained on every row; either way this run keeps
    its rows' probabilities (and its models, when it trained) for the next."""
    key = reuse.models_key(spec)
    found = store.kept_label_rows(key)
    kept, meta = found if found is not None else (None, {})
    current, decided = refresh.plan(valid, spec=spec, kept=kept, now=store.run.started_at)
    models = None
    if decided.incremental and kept is not None:
        models = store.kept_label_models(key, kept.models_from)
        if models is None:
            decided = replace(decided, incremental=False,
                              reason=f"the models kept by run {kept.models_from} are gone")
    run_id = store.run.run_id
    if decided.incremental and kept is not None and models is not None:
        fresh = valid.filter(pl.Series(decided.new))
        outcome = refresh.rescore(
            valid, spec=spec, current=current, decided=decided, kept=kept, models=models,
            kept_meta=meta, embeddings=steps.label_issue_embeddings(
                fresh, spec=spec, store=store.root, progress=_embedding_progress()),
        )
        scored_in = refresh.scored_in(current, kept, new=decided.new, run_id=run_id)
        state: dict[str, object] = {
            "classes": kept.classes, "models": None, "models_from": kept.models_from,
            "trained_rows": kept.trained_rows, "trained_at": kept.trained_at,
            "kept": kept}  # the kept rows come first unchanged: only the new ones written
    else:
        outcome = steps.detect_label_issues(
            valid, spec=spec, mapper=stages_mapper(), keep_models=True,
            embeddings=steps.label_issue_embeddings(
                valid, spec=spec, store=store.root, progress=_embedding_progress(),
                notice=get_run_logger().info),
        )
        scored_in = pl.repeat(run_id, valid.height, eager=True)
        state = {"classes": outcome.result.classes, "models": outcome.result.kept,
                 "models_from": run_id, "trained_rows": valid.height,
                 "trained_at": store.run.started_at}
    result = outcome.result
    if result.probabilities is not None and (state["models"] is not None or decided.incremental):
        store.keep_label_state(
            key, rows=refresh.kept_rows_frame(current, result.probabilities, scored_in=scored_in,
                                              flags=result.table.get_column("is_label_issue")),
            extra={"passes": result.passes, "left_out": result.left_out}, **state)
    get_run_logger().info("label issues: %s (%s)", "incremental" if decided.incremental
                          else f"trained on a {result.trained_rows:,}-row sample"
                          if result.trained_rows else "trained on every row", decided.reason)
    # a full run's models trained on its sample (label_issues.train_max_rows) or every row
    trained = result.trained_rows if not decided.incremental else None
    section = {**outcome.section, "refresh": refresh.refresh_section(
        decided, kept=kept, run_id=run_id, rows=trained or valid.height)}
    return steps.LabelIssuesOutcome(result, outcome.metrics, section)


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


def _reviewed_ids(spec: Spec, store: RunStore, valid: pl.DataFrame) -> set[str]:
    """Ids whose current label is their latest reviewer decision (review import overlays)."""
    label = spec.columns.label
    overlay = store.corrections()
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
