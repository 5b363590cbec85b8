"""Splits for task multilabel: the single-label rules (`labelgate.stages.splits`: units
from groups and duplicate clusters, sticky assignments, removed keys) with the new units
placed by iterative stratification over the tags instead of by majority label."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from labelgate.errors import SpecError
from labelgate.spec import Spec
from labelgate.stages.dedup import keep_cluster_members
from labelgate.stages.multilabel.stratify import iterative_stratification, tag_share_deviation
from labelgate.stages.multilabel.tags import tag_matrix
from labelgate.stages.split_step import FLAG, SplitOutcome
from labelgate.stages.splits import (
    SPLITS,
    SplitResult,
    apply_flag_policy,
    assign_splits,
    leakage,
)
from labelgate.stages.steps import DedupOutcome

KEY = "_lg_key"
EXCLUSION_COLUMNS = ("exclusion_policy", "exclusion_reason")


def stratify_new_units(assignments: pl.DataFrame, tags: pl.DataFrame, *, names: list[str],
                       fractions: dict[str, float], seed: int) -> pl.DataFrame:
    """``assignments`` (key, split, new, unit, ...) with the split of every unit whose
    rows are all new chosen by `iterative_stratification`; ``tags`` is (key, tags)."""
    work = assignments.join(tags, on="key", how="left")
    unit_new = work.group_by("unit").agg(pl.col("new").all().alias("_all_new"))
    work = work.join(unit_new, on="unit", how="left")
    y = tag_matrix(work.get_column("tags"), names)
    order = list(fractions)
    sticky = ~work.get_column("_all_new").to_numpy()
    split_ix = work.get_column("split").replace_strict(
        {s: i for i, s in enumerate(order)}, default=-1, return_dtype=pl.Int64).to_numpy()
    filled = np.zeros((len(order), len(names)))
    filled_rows = np.zeros(len(order))
    for j in range(len(order)):
        rows = sticky & (split_ix == j)
        filled[j] = y[rows].sum(axis=0)
        filled_rows[j] = rows.sum()
    new_units = work.filter(pl.col("_all_new")).select("unit").unique().sort("unit")
    if new_units.height == 0:
        return assignments
    codes = new_units.with_row_index("_u")
    coded = work.join(codes, on="unit", how="inner")
    u = coded.get_column("_u").to_numpy()
    yc = tag_matrix(coded.get_column("tags"), names)
    counts = np.zeros((codes.height, len(names)))
    np.add.at(counts, u, yc)
    sizes = np.bincount(u, minlength=codes.height)
    picks = iterative_stratification(counts, sizes, list(fractions.values()), seed=seed,
                                     filled_counts=filled, filled_sizes=filled_rows)
    chosen = codes.with_columns(pl.Series("_split", [order[p] for p in picks.tolist()]))
    return assignments.join(chosen.select("unit", "_split"), on="unit", how="left").with_columns(
        pl.coalesce("_split", "split").alias("split")).drop("_split")


def _frame(valid: pl.DataFrame, *, spec: Spec, flagged_ids: pl.Series | None,
           dups: DedupOutcome | None) -> tuple[pl.DataFrame, str | None]:
    frame = valid.with_columns(pl.col(spec.columns.id).cast(pl.String).alias(KEY))
    flag = pl.lit(False)
    if flagged_ids is not None:
        flag = pl.col(KEY).is_in(flagged_ids.cast(pl.String).implode())
    unit = None
    if dups is not None:
        units = dups.result.cluster_of.select(pl.col("id").cast(pl.String).alias(KEY),
                                              pl.col("cluster_id").cast(pl.String)
                                              .alias("_lg_unit"))
        frame = frame.join(units, on=KEY, how="left")
        unit = "_lg_unit"
    return frame.with_columns(flag.alias(FLAG)), unit


def _policies(frame: pl.DataFrame, *, spec: Spec, dups: DedupOutcome | None
              ) -> tuple[pl.DataFrame, pl.DataFrame]:
    sp = spec.splits
    assert sp is not None
    if sp.flagged == "relabel":
        raise SpecError("splits.flagged: relabel is for single labels; task multilabel "
                        "takes drop, drop_from_test or keep")
    kept, excluded = apply_flag_policy(frame, flagged_column=FLAG, policy=sp.flagged,
                                       label_column=KEY)
    excluded = excluded.with_columns(
        pl.when(pl.col("exclusion_policy") != "keep").then(
            pl.lit("probable tag error (multilabel issues)")).alias("exclusion_reason"))
    return keep_one_per_cluster(kept, excluded, spec=spec, dups=dups)


def leaks_and_exclusions(kept: pl.DataFrame, excluded: pl.DataFrame, *, spec: Spec,
                         dups: DedupOutcome | None) -> tuple[dict[str, int], pl.DataFrame]:
    """The leakage check over ``kept`` (keyed by ``KEY``) and the excluded rows as
    (id, split, exclusion_policy, exclusion_reason)."""
    leaks = leakage(kept, key_column=KEY, group_column=spec.columns.group,
                    duplicates=dups.result.clusters.with_columns(
                        pl.col("cluster_id", "id", "exact_group").cast(pl.String))
                    if dups is not None else None)
    return leaks, excluded.select(pl.col(spec.columns.id).cast(pl.String).alias("id"),
                                  "split", *EXCLUSION_COLUMNS)


def keep_one_per_cluster(kept: pl.DataFrame, excluded: pl.DataFrame, *, spec: Spec,
                         dups: DedupOutcome | None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``dedup.keep: one``: one row of each duplicate cluster stays in ``kept`` (keyed by
    ``KEY``, with ``split``); the others join ``excluded``. Unchanged without it."""
    if dups is None or spec.dedup is None or spec.dedup.keep != "one":
        return kept, excluded
    kept, dropped = keep_cluster_members(
        kept, id_column=KEY, cluster_of=dups.result.cluster_of.with_columns(
            pl.col("id", "cluster_id").cast(pl.String)),
        keep="one", split_column="split", splits=SPLITS)
    return kept, pl.concat([excluded, dropped], how="diagonal_relaxed")


def make_multilabel_splits(
    valid: pl.DataFrame, *, spec: Spec, run_id: str, previous: pl.DataFrame | None,
    flagged_ids: pl.Series | None, dups: DedupOutcome | None, names: list[str],
) -> SplitOutcome:
    """Sticky, grouped splits stratified over the tags, then the flagged-row policy
    (``splits.flagged``; rows in ``flagged_ids`` are flagged) and the leakage check.

    Returns the single-label stage's `SplitOutcome` (the same report sections and
    ``splits.*`` metrics; the per-class counts are per tag, a row counting for each of its
    tags, and ``splits.min_test_rows_per_class`` is the fewest test rows of any tag).
    """
    sp, ml = spec.splits, spec.multilabel_settings()
    assert sp is not None
    frame, unit = _frame(valid, spec=spec, flagged_ids=flagged_ids, dups=dups)
    fractions = {str(k): v for k, v in sp.fractions.items()}
    fractions = {s: fractions[s] for s in SPLITS if s in fractions}
    base = assign_splits(frame, key_column=KEY, label_column=None, run_id=run_id,
                         fractions=fractions, stratify=False, group_column=spec.columns.group,
                         unit_column=unit, seed=sp.seed, previous=previous)
    assignments = base.assignments
    tags = frame.select(pl.col(KEY).alias("key"), pl.col(ml.column).alias("tags"))
    if ml.stratify and sp.stratify:
        assignments = stratify_new_units(assignments, tags, names=names, fractions=fractions,
                                         seed=sp.seed)
    result = SplitResult(assignments, base.counts, base.removed, dict(base.summary))
    frame = frame.join(assignments.select(pl.col("key").alias(KEY), "split"), on=KEY,
                       how="left")
    kept, excluded = _policies(frame, spec=spec, dups=dups)
    leaks, excluded_out = leaks_and_exclusions(kept, excluded, spec=spec, dups=dups)
    metrics, section = _summary(kept, excluded_out, frame, spec=spec, result=result,
                                names=names, fractions=fractions)
    return _outcome(result, kept, excluded_out, frame, metrics, section, leaks)


def _outcome(result: SplitResult, kept: pl.DataFrame, excluded: pl.DataFrame,
             frame: pl.DataFrame, metrics: dict[str, float], section: dict[str, Any],
             leaks: dict[str, int]) -> SplitOutcome:
    metrics = {**metrics, "splits.leakage": float(leaks["total"])}
    section = {**section, "flagged_rows": int(frame.get_column(FLAG).sum()), "leakage": leaks}
    return SplitOutcome(result, kept.drop(KEY), excluded, metrics, section, {})


def _summary(kept: pl.DataFrame, excluded: pl.DataFrame, frame: pl.DataFrame, *, spec: Spec,
             result: SplitResult, names: list[str], fractions: dict[str, float]
             ) -> tuple[dict[str, float], dict[str, Any]]:
    """The ``splits.*`` metrics and the report section (without the leakage)."""
    sp, ml = spec.splits, spec.multilabel_settings()
    assert sp is not None
    counts = (kept.select("split", pl.col(ml.column).alias("label")).explode("label")
              .drop_nulls("label").group_by("split", "label").agg(pl.len().alias("rows"))
              .sort("split", "label"))
    test = dict(counts.filter(pl.col("split") == "test").select("label", "rows").rows())
    min_test = min((int(test.get(t, 0)) for t in names), default=0)
    assigned = result.assignments
    order = list(fractions)
    split_ix = frame.select(KEY).join(assigned.select(pl.col("key").alias(KEY), "split"),
                                      on=KEY, how="left").get_column("split")
    ix = split_ix.replace_strict({s: i for i, s in enumerate(order)}, default=-1,
                                 return_dtype=pl.Int64).to_numpy()
    deviation = tag_share_deviation(tag_matrix(frame.get_column(ml.column), names), ix,
                                    list(fractions.values()))
    per_split = dict(assigned.group_by("split").len().rows())
    summary = {k: v for k, v in result.summary.items() if not isinstance(v, dict)}
    summary |= {"max_tag_share_deviation": deviation,
                "max_stratum_share_deviation": deviation}
    by_policy = (excluded.group_by("exclusion_policy")
                 .agg(pl.len().alias("rows"), pl.col("exclusion_reason").first())
                 .sort("exclusion_policy"))
    metrics = {
        "splits.min_test_rows_per_class": float(min_test),
        "splits.excluded": float(excluded.height), "splits.filtered": 0.0,
        "splits.moved": float(result.summary.get("moved_rows", 0)),
        "splits.new": float(result.summary.get("new_rows", 0)),
        "splits.max_tag_share_deviation": deviation,
    }
    section = {
        "fractions": fractions, "seed": sp.seed, "policy": sp.flagged, "filter": None,
        "filtered": 0, "group": spec.columns.group,
        "stratified": "iterative over tags" if ml.stratify and sp.stratify else None,
        "counts": counts.to_dicts(),
        "rows_per_split": {s: int(per_split.get(s, 0)) for s in order},
        "summary": summary,
        "excluded": by_policy.rename({"exclusion_policy": "policy",
                                      "exclusion_reason": "example_reason"}).to_dicts(),
    }
    return metrics, section


def split_frames(kept: pl.DataFrame, *, spec: Spec) -> dict[str, pl.DataFrame]:
    """The published columns of each split: id, text, the tags (a list column), group,
    and ``flagged`` (a probable tag error, kept by the policy)."""
    ml = spec.multilabel_settings()
    cols = [spec.columns.id, *spec.columns.text, *spec.columns.features, ml.column]
    if spec.columns.group is not None:
        cols.append(spec.columns.group)
    cols = list(dict.fromkeys(cols))
    out = {}
    for name in SPLITS:
        part = kept.filter(pl.col("split") == name).select(*cols, FLAG)
        out[name] = part.rename({FLAG: "flagged"})
    return out
