"""Splits for task dimensions: the single-label rules (`labelgate.stages.splits`: units from
groups and duplicate clusters, sticky assignments, stratified by the one dimension marked
``stratify``), then each dimension's flagged-row policy over the rows flagged on it."""

from __future__ import annotations

from typing import Any

import polars as pl

from labelgate.errors import SpecError
from labelgate.spec import Spec
from labelgate.stages.multilabel.splitting import (
    KEY,
    keep_one_per_cluster,
    leaks_and_exclusions,
)
from labelgate.stages.split_step import FLAG, SplitOutcome, _split_summary
from labelgate.stages.splits import SPLITS, FlagPolicy, apply_flag_policy, assign_splits
from labelgate.stages.steps import DedupOutcome


def flag_column(dimension: str) -> str:
    """The published column that says a row is flagged on `dimension`."""
    return f"flagged_{dimension}"


def policies(spec: Spec) -> dict[str, FlagPolicy]:
    """Dimension -> its flagged-row policy (its own ``flagged``, else splits.flagged)."""
    sp = spec.splits
    out: dict[str, FlagPolicy] = {}
    for name, dim in spec.dimension_settings().items():
        policy = dim.flagged or (sp.flagged if sp is not None else "drop_from_test")
        if policy == "relabel":  # the spec refuses it; a spec built around it fails here
            raise SpecError(f"labels.{name}: splits.flagged relabel is for single labels")
        out[name] = policy
    return out


def _frame(valid: pl.DataFrame, *, spec: Spec, flagged: dict[str, pl.Series],
           dups: DedupOutcome | None) -> tuple[pl.DataFrame, str | None]:
    """`valid` with the key, one flag column per dimension, ``FLAG`` (any) and the
    duplicate cluster as the unit column (None without dedup)."""
    frame = valid.with_columns(pl.col(spec.columns.id).cast(pl.String).alias(KEY))
    flags = [pl.col(KEY).is_in(flagged[d].cast(pl.String).implode()) if d in flagged
             else pl.lit(False) for d in spec.dimension_settings()]
    names = [flag_column(d) for d in spec.dimension_settings()]
    frame = frame.with_columns(*(f.alias(n) for f, n in zip(flags, names, strict=True)))
    frame = frame.with_columns(pl.any_horizontal(names).alias(FLAG))
    if dups is None:
        return frame, None
    units = dups.result.cluster_of.select(pl.col("id").cast(pl.String).alias(KEY),
                                          pl.col("cluster_id").cast(pl.String).alias("_lg_unit"))
    return frame.join(units, on=KEY, how="left"), "_lg_unit"


def _apply(frame: pl.DataFrame, *, spec: Spec, dups: DedupOutcome | None
           ) -> tuple[pl.DataFrame, pl.DataFrame, list[dict[str, Any]]]:
    """Each dimension's policy in turn over the rows still kept: (kept, excluded with the
    policy and the dimension in the reason, per-dimension counts)."""
    kept, parts, counts = frame, [], []
    for name, policy in policies(spec).items():
        column = flag_column(name)
        flagged = int(frame.get_column(column).sum())
        kept, out = apply_flag_policy(kept, flagged_column=column,
                                      policy=policy, label_column=KEY)
        out = out.with_columns(pl.lit(f"probable {name} label error (policy {policy})")
                               .alias("exclusion_reason"))
        parts.append(out)
        counts.append({"dimension": name, "policy": policy, "flagged": flagged,
                       "excluded": out.height})
    excluded = pl.concat(parts, how="diagonal_relaxed") if parts else frame.clear()
    kept, excluded = keep_one_per_cluster(kept, excluded, spec=spec, dups=dups)
    return kept, excluded, counts


def stratify_column(spec: Spec) -> str | None:
    """The dimension the splits are stratified by, or None."""
    return next((n for n, d in spec.dimension_settings().items() if d.stratify), None)


def make_dimension_splits(
    valid: pl.DataFrame, *, spec: Spec, run_id: str, previous: pl.DataFrame | None,
    flagged: dict[str, pl.Series], dups: DedupOutcome | None,
) -> SplitOutcome:
    """Sticky, grouped splits (stratified by the ``stratify`` dimension), then each
    dimension's flagged-row policy over the rows in ``flagged[dimension]``, dedup's
    ``keep: one`` and the leakage check. valid = kept + excluded.

    Returns the single-label stage's `SplitOutcome`; its section adds ``by_dimension``
    (dimension, policy, flagged, excluded: a row excluded by an earlier dimension is not
    counted again) and the metrics ``splits.excluded_<dimension>``.
    """
    sp = spec.splits
    if sp is None:
        raise ValueError("make_dimension_splits needs a splits section")
    frame, unit = _frame(valid, spec=spec, flagged=flagged, dups=dups)
    strat = stratify_column(spec)
    if strat is not None:
        frame = frame.with_columns(pl.col(strat).cast(pl.String).fill_null("").alias("_lg_strat"))
    result = assign_splits(
        frame, key_column=KEY, label_column="_lg_strat" if strat is not None else None,
        run_id=run_id, fractions={str(k): v for k, v in sp.fractions.items()},
        stratify=sp.stratify and strat is not None, group_column=spec.columns.group,
        unit_column=unit, seed=sp.seed, previous=previous)
    frame = frame.join(result.assignments.select(pl.col("key").alias(KEY), "split"), on=KEY,
                       how="left")
    kept, excluded, counts = _apply(frame, spec=spec, dups=dups)
    leaks, excluded_out = leaks_and_exclusions(kept, excluded, spec=spec, dups=dups)
    metrics, section = _split_summary(
        valid, kept, excluded_out, spec=spec, result=result, filtered=0,
        flagged=int(frame.get_column(FLAG).sum()), leaks=leaks)
    metrics |= {f"splits.excluded_{c['dimension']}": float(c["excluded"]) for c in counts}
    section |= {"stratified_by": strat, "by_dimension": counts, "leakage": leaks}
    drop = [c for c in (KEY, "_lg_strat", "_lg_unit") if c in kept.columns]
    return SplitOutcome(result, kept.drop(drop), excluded_out, metrics, section, {})


def split_frames(kept: pl.DataFrame, *, spec: Spec) -> dict[str, pl.DataFrame]:
    """The published columns of each split: id, text, each dimension, group, and one
    ``flagged_<dimension>`` column per dimension (rows a ``keep`` policy left in)."""
    dims = list(spec.dimension_settings())
    cols = [spec.columns.id, *spec.columns.text, *spec.columns.features, *dims]
    if spec.columns.group is not None:
        cols.append(spec.columns.group)
    cols = [*dict.fromkeys(cols), *(flag_column(d) for d in dims)]
    return {name: kept.filter(pl.col("split") == name).select(cols) for name in SPLITS}
