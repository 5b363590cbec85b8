"""Spec glue for runs that build on what an earlier run kept (pure: no Prefect, no store).

Label issues: whether a run scores its new rows with kept fold models or trains again
(`plan`), the scoring of the new rows and their flags at the training run's cut-offs
(`rescore`, `flagged_by_cutoffs`), the rows a run keeps for the next (`kept_rows_frame`,
`scored_in`), and what the report and the gate read about it (`refresh_section`,
`refresh_metrics`). The library behind it is `labelgate.stages.label_issues.incremental`.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import polars as pl

from labelgate.spec import Spec
from labelgate.stages import steps
from labelgate.stages.label_issues.incremental import (
    KeptRows,
    RefreshPlan,
    combined_probabilities,
    kept_come_first,
    plan_refresh,
    row_hashes,
    score_with_kept,
)

if TYPE_CHECKING:
    from labelgate.stages.label_issues.models import KeptModels

__all__ = [
    "flagged_by_cutoffs",
    "keeps_models",
    "kept_rows_frame",
    "plan",
    "refresh_metrics",
    "refresh_section",
    "rescore",
    "scored_in",
]


def keeps_models(spec: Spec, *, annotations: pl.DataFrame | None) -> bool:
    """Whether the run's label-issue model can be kept and built on: the built-in text model
    (cross_validated, text columns, no feature columns, no annotations)."""
    li = spec.label_issues
    return (li is not None and li.method == "cross_validated" and annotations is None
            and bool(spec.model_text_columns()) and not spec.columns.features)


def current_rows(valid: pl.DataFrame, *, spec: Spec) -> pl.DataFrame:
    """id and hash (`row_hashes`) of the valid rows over the label and model columns."""
    label = spec.columns.label
    columns = [c for c in [label, *spec.model_text_columns()] if c is not None]
    return row_hashes(valid, id_column=spec.columns.id, columns=columns)


def plan(valid: pl.DataFrame, *, spec: Spec, kept: KeptRows | None,
         now: datetime) -> tuple[pl.DataFrame, RefreshPlan]:
    """This run's rows (`current_rows`) and whether it builds on ``kept``
    (`plan_refresh` with the spec's ``label_issues.refresh``)."""
    li = spec.label_issues
    label = spec.columns.label
    assert li is not None and label is not None
    current = current_rows(valid, spec=spec)
    classes = sorted(str(c) for c in valid.get_column(label).drop_nulls().unique().to_list())
    refresh = li.refresh
    decided = plan_refresh(
        current, kept, classes=classes, now=now,
        max_new_share=refresh.max_new_share if refresh is not None else None,
        every_days=refresh.every_days if refresh is not None else None,
    )
    return current, decided


def rescore(
    valid: pl.DataFrame,
    *,
    spec: Spec,
    current: pl.DataFrame,
    decided: RefreshPlan,
    kept: KeptRows,
    models: KeptModels,
    kept_meta: dict[str, Any],
    embeddings: npt.NDArray[np.float32] | None,
) -> steps.LabelIssuesOutcome:
    """The label-issue outcome of an incremental run: the new rows scored by the kept fold
    models, the kept rows' probabilities as they were.

    When the training run kept its cut-offs (``models.flagging``) and the kept rows their
    flags, the kept rows keep their flags and the new rows are flagged at those cut-offs
    (`flagged_by_cutoffs`: no cleanlab pass over every row); otherwise every row is flagged
    again from the probabilities. ``embeddings`` are the new rows' (m, d) when the models
    have an embedding part.
    """
    fresh = valid.filter(pl.Series(decided.new))
    probs_new = score_with_kept(
        fresh, models, ids=fresh.get_column(spec.columns.id),
        text_columns=spec.model_text_columns(), embeddings=embeddings,
    )
    probs = combined_probabilities(current, kept, new_probabilities=probs_new,
                                   new=decided.new)
    passes, left_out = int(kept_meta.get("passes", 1)), int(kept_meta.get("left_out", 0))
    li = spec.label_issues
    if (models.flagging is not None and "flag" in kept.rows.columns and li is not None
            and li.embeddings is None):
        outcome = flagged_by_cutoffs(valid, spec=spec, current=current, kept=kept,
                                     probabilities=probs, new=decided.new,
                                     flagging=models.flagging)
    else:
        outcome = steps.detect_label_issues(valid, spec=spec, pred_probs=probs)
    # the probabilities are the kept models' passes: say so as the full run did
    result = replace(outcome.result, passes=passes, left_out=left_out)
    section = {**outcome.section, "passes": passes, "left_out": left_out,
               "model": steps.model_description(spec, method=result.method,
                                                rows=kept.trained_rows)}
    return steps.LabelIssuesOutcome(result, outcome.metrics, section)


def flagged_by_cutoffs(
    valid: pl.DataFrame,
    *,
    spec: Spec,
    current: pl.DataFrame,
    kept: KeptRows,
    probabilities: npt.NDArray[np.float32],
    new: npt.NDArray[np.bool_],
    flagging: dict[str, Any],
) -> steps.LabelIssuesOutcome:
    """A night's label issues without cleanlab: the kept rows keep their flags (``flag`` of
    ``kept.rows``), the ``new`` rows are flagged at the training run's cut-offs
    (`labelgate.stages.label_issues.cutoffs.flag_with`); every row's label quality
    (self-confidence), suggestion and rank from ``probabilities`` (n, k) as a full pass
    computes them; the noise matrix and health score are the training run's."""
    from labelgate.stages.label_issues.cutoffs import Cutoffs, flag_with
    from labelgate.stages.label_issues.detect import LabelIssuesResult, _issue_table
    from labelgate.stages.label_issues.flags import _per_class

    label, li = spec.columns.label, spec.label_issues
    assert label is not None and li is not None
    classes = list(kept.classes)
    codes = valid.get_column(label).cast(pl.String).replace_strict(
        classes, list(range(len(classes))), return_dtype=pl.Int64).to_numpy()
    ids = valid.get_column(spec.columns.id)
    _check_new_ids(ids.filter(pl.Series(new)), id_column=spec.columns.id)
    is_issue = np.zeros(valid.height, dtype=bool)
    if kept_come_first(current, kept.rows, new=new):
        is_issue[: kept.rows.height] = kept.rows.get_column("flag").to_numpy()
    else:
        is_issue[~new] = current.filter(~pl.Series(new)).select("id").join(
            kept.rows.select("id", "flag"), on="id", how="left", maintain_order="left",
        ).get_column("flag").fill_null(False).to_numpy()
    is_issue[new] = flag_with(Cutoffs.from_meta(flagging["cutoffs"]), codes[new],
                              probabilities[new])
    at = np.arange(valid.height)
    quality = np.clip(probabilities[at, codes].astype(np.float64), 0.0, 1.0)
    table = _issue_table(ids, classes, given=codes, suggested=probabilities.argmax(axis=1),
                         quality=quality, is_issue=is_issue, extra={})
    k = len(classes)
    noise = pl.DataFrame({"given_label": [c for c in classes for _ in range(k)],
                          "true_label": classes * k,
                          "joint": pl.Series(flagging["noise"], dtype=pl.Float64)})
    result = LabelIssuesResult(
        method="cross_validated", path="standard", classes=classes, table=table,
        noise_matrix=noise, health_score=float(flagging["health"]),
        per_class=_per_class(table, classes), probabilities=probabilities,
        filter_by=str(flagging["filter_by"]),
        joint_calibration=str(flagging["joint_calibration"]))
    top = table.filter(pl.col("is_label_issue")).sort("rank").head(li.top).get_column("id")
    outcome = steps.summarize_label_issues(  # the texts of the listed rows only
        result, valid=valid.filter(ids.is_in(top.implode())), spec=spec)
    outcome.section["flagged_by"] = (
        f"kept rows: their flags; {int(new.sum()):,} new rows: the cut-offs of run "
        f"{kept.models_from}; noise matrix and health score: that run's")
    return outcome


def _check_new_ids(ids: pl.Series, *, id_column: str) -> None:
    """InputError when new rows repeat an id (they are not among the kept ids by
    construction, and the kept ids were unique)."""
    from labelgate.errors import InputError

    if ids.null_count() or ids.n_unique() != ids.len():
        raise InputError(f"items: id column {id_column!r} has null or repeated values among "
                         "the new rows; expected unique ids")


def scored_in(current: pl.DataFrame, kept: KeptRows, *, new: npt.NDArray[np.bool_],
              run_id: str) -> pl.Series:
    """The run that scored each current row: a kept row's (``scored_in`` of ``kept.rows``),
    ``run_id`` for a new row; by position when the kept rows come first."""
    if "scored_in" in kept.rows.columns and kept_come_first(current, kept.rows, new=new):
        return pl.concat([kept.rows.get_column("scored_in").cast(pl.String),
                          pl.repeat(run_id, current.height - kept.rows.height, eager=True,
                                    dtype=pl.String)])
    return current.select("id").join(
        kept.rows.select("id", "scored_in"), on="id", how="left", maintain_order="left"
    ).get_column("scored_in").fill_null(run_id)


def kept_rows_frame(current: pl.DataFrame, probabilities: npt.NDArray[np.float32], *,
                    scored_in: pl.Series, flags: pl.Series | None = None) -> pl.DataFrame:
    """What a run keeps for the next: id, h, c0..c(k-1) (float32 probabilities, class
    order), scored_in (the run in which the row got them) and, given ``flags``, flag (the
    model's flag, before reviews and budgets: a night's kept rows keep it)."""
    cols = {f"c{i}": probabilities[:, i] for i in range(probabilities.shape[1])}
    return current.with_columns(
        *(pl.Series(name, values, dtype=pl.Float32) for name, values in cols.items()),
        scored_in.cast(pl.String).alias("scored_in"),
        *([flags.cast(pl.Boolean).alias("flag")] if flags is not None else []),
    )


def refresh_section(decided: RefreshPlan, *, kept: KeptRows | None, run_id: str,
                    rows: int) -> dict[str, Any]:
    """The report's account of which rows were scored by which models."""
    if not decided.incremental or kept is None:
        return {"mode": "full", "reason": decided.reason, "models_from": run_id,
                "trained_rows": rows, "kept_rows": 0, "new_rows": 0}
    new_rows = int(decided.new.sum())
    return {
        "mode": "incremental", "reason": decided.reason, "models_from": kept.models_from,
        "trained_at": kept.trained_at.isoformat(), "trained_rows": kept.trained_rows,
        "kept_rows": rows - new_rows, "new_rows": new_rows,
        "new_share": decided.new_share,
    }


def refresh_metrics(section: dict[str, Any]) -> dict[str, float]:
    """The gate's and history's view of a label-issue section's ``refresh``: whether the run
    built on kept models (``label_issues.incremental`` 1) or trained (0), and the share of
    rows those models did not train on (``label_issues.new_share``). None without one."""
    account = section.get("refresh")
    if not isinstance(account, dict):
        return {}
    incremental = account.get("mode") == "incremental"
    return {
        "label_issues.incremental": float(incremental),
        "label_issues.new_share": float(account.get("new_share", 0.0)) if incremental else 0.0,
    }
