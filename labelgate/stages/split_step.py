"""The splits step: sticky splits over units (group and duplicate cluster), then the
flagged-row, dedup, preference and publish-filter policies; the split frames published.
Pure: no Prefect, no warehouse (tasks/splits.py wraps it).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import polars as pl

from labelgate.dag import lean_splits
from labelgate.gate import named
from labelgate.results import brief_columns
from labelgate.spec import Spec
from labelgate.stages.dedup import keep_cluster_members
from labelgate.stages.instructions import CANONICAL_SCHEMA
from labelgate.stages.preference.stage import exclude_by_policies
from labelgate.stages.publish import filter_expr
from labelgate.stages.splits import (
    SplitResult,
    apply_flag_policy,
    assign_splits,
    join_beside,
    leakage,
)

if TYPE_CHECKING:
    from labelgate.stages.steps import DedupOutcome, LabelIssuesOutcome

FLAG = "_lg_flagged"
EXCLUSION_COLUMNS = ("exclusion_policy", "exclusion_reason")


@dataclass(frozen=True)
class SplitOutcome:
    """The splits stage's result; its section holds the leakage counts, which the report
    shows as a section of their own."""

    result: SplitResult
    # valid rows that go to the splits, with `split` (maybe relabeled); with `lean_kept`,
    # without the row-only columns (texts, features: `split_frames` reads them back)
    kept: pl.DataFrame
    excluded: pl.DataFrame  # id, split, exclusion_policy, exclusion_reason
    metrics: dict[str, float]
    section: dict[str, Any]
    details: dict[str, str] = field(default_factory=dict)  # metric -> the class it names

    def sections(self) -> dict[str, Any]:
        section = dict(self.section)
        leakage = section.pop("leakage")
        return {"leakage": leakage, "splits": section}

    def brief(self) -> SplitOutcome:
        """What the metrics and report read (`labelgate.results.brief`): the kept rows and
        the assignments emptied (their schema kept); the excluded rows, counts, metrics and
        sections as they are."""
        return replace(self, kept=self.kept.clear(),
                       result=replace(self.result, assignments=self.result.assignments.clear()))


def make_splits(
    valid: pl.DataFrame,
    *,
    spec: Spec,
    run_id: str,
    previous: pl.DataFrame | None,
    issues: LabelIssuesOutcome | None,
    dups: DedupOutcome | None,
) -> SplitOutcome:
    """Sticky splits over units (group ∪ duplicate cluster), then the flagged-row policy.

    Flagged rows are label issues and members of duplicate clusters with conflicting labels.
    Every valid row gets a (sticky) assignment; the policy then excludes some of them with a
    named reason, so valid = kept + excluded.

    Parameters
    ----------
    valid
        The run's valid rows, one per id.
    previous
        Earlier runs' assignments (key, split, ...), for stickiness; None on a first run.
    issues, dups
        The label-issue and dedup results, when those stages ran.

    Returns
    -------
    SplitOutcome
        Assignments, the kept rows (with ``split``), the excluded rows (id, split, policy,
        reason), the ``splits.*`` metrics and the report section (with the leakage).
    """
    sp = spec.splits
    if sp is None:
        raise ValueError("make_splits needs a splits section")
    frame, unit_column = _flagged_frame(valid, spec=spec, issues=issues, dups=dups)
    if lean_kept(spec):  # the kept rows without the row-only columns: publish reads the lake
        frame = frame.drop(row_only_columns(valid.columns, spec=spec),
                           _spent(frame.columns, spec=spec, after="flag"))
    result = assign_splits(
        frame, key_column="_lg_key", label_column=spec.columns.label, run_id=run_id,
        fractions={str(k): v for k, v in sp.fractions.items()}, stratify=sp.stratify,
        group_column=spec.columns.group, unit_column=unit_column, seed=sp.seed,
        previous=previous,
    )
    frame = join_beside(
        frame, [result.assignments.select(pl.col("key").alias("_lg_key"), "split")], "_lg_key"
    )
    # the duplicate cluster (when spent) is dropped after the leakage check, which reads it
    spent = _spent(frame.columns, spec=spec, after="assign") if lean_kept(spec) else []
    frame = frame.drop([c for c in spent if c != "_lg_unit"])
    kept, excluded, filtered = _apply_policies(frame, spec=spec, issues=issues, dups=dups)
    flagged = int(frame.get_column(FLAG).sum())
    excluded_out = excluded.select(
        pl.col(spec.columns.id).cast(pl.String).alias("id"), "split", *EXCLUSION_COLUMNS
    )
    del frame, excluded  # kept and excluded_out hold what is left of their rows
    leaks = leakage(
        kept, key_column="_lg_key", group_column=spec.columns.group,
        duplicates=dups.result.clusters.with_columns(
            pl.col("cluster_id", "id", "exact_group").cast(pl.String)
        ) if dups is not None and _clusters_across_splits(kept) else None,
    )
    kept = kept.drop([c for c in spent if c == "_lg_unit"])
    metrics, section = _split_summary(
        valid, kept, excluded_out, spec=spec, result=result, filtered=filtered,
        flagged=flagged, leaks=leaks,
    )
    return SplitOutcome(result, kept.drop("_lg_key"), excluded_out, metrics,
                        {**section, "leakage": leaks},
                        _test_class_details(section["counts"], valid, kept, spec=spec))


def _clusters_across_splits(kept: pl.DataFrame) -> bool:
    """Whether a duplicate cluster has kept rows in two splits (a null split counted as one
    more): the smallest and largest split code per cluster (``_lg_unit``, as the rows were
    assigned, grouped by its hash: two clusters that share one can only look spread), all
    integers; True without that column. When False, `leakage` would find no pair across
    splits: its join of every member with its split is skipped."""
    if "_lg_unit" not in kept.columns:
        return True
    split = (pl.col("split").cast(pl.String).cast(pl.Categorical).to_physical()
             .cast(pl.Int64).fill_null(-1))
    return bool(kept.lazy().filter(pl.col("_lg_unit").is_not_null())
                .group_by(pl.col("_lg_unit").hash(seed=0))
                .agg((split.min() != split.max()).alias("_s"))
                .select(pl.col("_s").any()).collect().item())


def _test_class_details(counts: list[dict[str, Any]], valid: pl.DataFrame,
                        kept: pl.DataFrame, *, spec: Spec) -> dict[str, str]:
    """Who ``splits.min_test_rows_per_class`` belongs to: the class(es) with no test row,
    else those with the fewest."""
    label = spec.columns.label
    if label is None:
        return {}
    clauses = spec.publish.filter_clauses() if spec.publish is not None else ()
    classes = (kept if clauses else valid).get_column(label).cast(pl.String).unique()
    test = {r["label"]: r["rows"] for r in counts if r["split"] == "test"}
    missing = [c for c in classes.to_list() if c not in test]
    if missing:
        text = named(missing, one="class", many="classes")
        return {"splits.min_test_rows_per_class": f"{text} without a test row"} if text else {}
    low = min(test.values(), default=None)
    text = named([c for c, n in test.items() if n == low], one="class", many="classes")
    return {"splits.min_test_rows_per_class": text} if text else {}


def _flagged_frame(
    valid: pl.DataFrame, *, spec: Spec, issues: LabelIssuesOutcome | None,
    dups: DedupOutcome | None,
) -> tuple[pl.DataFrame, str | None]:
    """`valid` with ``_lg_key`` (the id as text), the label-issue columns, the duplicate
    cluster as ``_lg_unit`` and the ``FLAG`` column; and the unit column's name (None
    without dedup)."""
    key = valid.select(pl.col(spec.columns.id).cast(pl.String).alias("_lg_key"))
    flagged = pl.lit(False)
    tables: list[pl.DataFrame] = []
    if issues is not None:
        tables.append(issues.result.table.select(
            pl.col("id").cast(pl.String).alias("_lg_key"),
            "is_label_issue", "suggested_label", "label_quality",
        ))
        flagged = flagged | pl.col("is_label_issue").fill_null(False)
    unit_column = None
    if dups is not None:
        tables.append(dups.result.cluster_of.select(
            pl.col("id").cast(pl.String).alias("_lg_key"),
            pl.col("cluster_id").cast(pl.String).alias("_lg_unit"),
        ))
        unit_column = "_lg_unit"
        conflicted = dups.result.conflicts.get_column("cluster_id").cast(pl.String)
        flagged = flagged | pl.col("_lg_unit").is_in(conflicted.implode())
    keyed = join_beside(key, tables, "_lg_key").with_columns(flagged.alias(FLAG))
    if keyed.height == valid.height:  # the new columns beside valid's: no row rechunked
        return valid.with_columns(keyed.get_columns()), unit_column
    frame = valid.with_columns(key.get_columns())
    for table in tables:
        frame = frame.join(table, on="_lg_key", how="left")
    return frame.with_columns(flagged.alias(FLAG)), unit_column


def _apply_policies(
    frame: pl.DataFrame, *, spec: Spec, issues: LabelIssuesOutcome | None,
    dups: DedupOutcome | None,
) -> tuple[pl.DataFrame, pl.DataFrame, int]:
    """The flagged-row policy, `dedup.keep: one`, task preference's ties and flagged-pair
    policies and the publish filter over the assigned rows: (kept, excluded with policy
    and reason, rows the publish filter removed)."""
    sp = spec.splits
    assert sp is not None
    label = spec.columns.label
    relabel = issues is not None
    policy = apply_flag_policy(
        frame, flagged_column=FLAG, policy=sp.flagged,
        label_column=label if label is not None else "_lg_key",  # used by relabel only
        suggested_column="suggested_label" if relabel else None,
        quality_column="label_quality" if relabel else None,
        relabel_min_quality=sp.relabel_min_quality,
    )
    kept, excluded = policy.kept, policy.excluded
    if dups is not None and spec.dedup is not None and spec.dedup.keep == "one":
        kept, dropped = keep_cluster_members(
            kept, id_column="_lg_key",
            cluster_of=dups.result.cluster_of.with_columns(pl.col("id", "cluster_id")
                                                           .cast(pl.String)),
            keep="one", split_column="split", splits=("train", "validation", "test"),
        )
        excluded = pl.concat([excluded, dropped], how="diagonal_relaxed")
    if spec.is_preference and spec.publish is not None:  # ties and flagged pairs
        kept, dropped = exclude_by_policies(kept, spec=spec)
        excluded = pl.concat([excluded, dropped], how="diagonal_relaxed")
    clauses = spec.publish.filter_clauses() if spec.publish is not None else ()
    if not clauses:
        return kept, excluded, 0
    keep, reason = filter_expr(clauses, kept.schema)
    marked = kept.with_columns(keep.alias("_lg_keep"), reason.alias("exclusion_reason"))
    out = marked.filter(~pl.col("_lg_keep")).drop("_lg_keep").with_columns(
        pl.lit("publish_filter").alias("exclusion_policy")
    )
    kept = marked.filter(pl.col("_lg_keep")).drop("_lg_keep", "exclusion_reason")
    return kept, pl.concat([excluded, out], how="diagonal_relaxed"), out.height


def _split_summary(
    valid: pl.DataFrame, kept: pl.DataFrame, excluded: pl.DataFrame, *, spec: Spec,
    result: SplitResult, filtered: int, flagged: int, leaks: dict[str, Any],
) -> tuple[dict[str, float], dict[str, Any]]:
    """The ``splits.*`` metrics and the report section (without the leakage)."""
    sp = spec.splits
    assert sp is not None
    label = spec.columns.label
    label_expr = pl.col(label).cast(pl.String) if label is not None else pl.lit(None, pl.String)
    counts = (
        kept.group_by("split", label_expr.alias("label"))
        .agg(pl.len().alias("rows"))
        .sort("split", "label")
    )
    test_counts = counts.filter(pl.col("split") == "test")
    # classes the published rows can have: a class the publish filter removes is not missing
    clauses = spec.publish.filter_clauses() if spec.publish is not None else ()
    classes_of = kept if clauses else valid
    n_classes = classes_of.select(label_expr.n_unique()).item() if label is not None else 1
    test_rows = test_counts.get_column("rows").to_list()
    min_test = 0 if test_counts.height < n_classes else int(min(test_rows, default=0))
    by_policy = (
        excluded.group_by("exclusion_policy").agg(pl.len().alias("rows"),
                                                  pl.col("exclusion_reason").first())
        .sort("exclusion_policy")
    )
    metrics = {
        "splits.leakage": float(leaks["total"]),
        "splits.min_test_rows_per_class": float(min_test),
        "splits.excluded": float(excluded.height),
        "splits.filtered": float(filtered),
        "splits.moved": float(result.summary.get("moved_rows", 0)),
        "splits.new": float(result.summary.get("new_rows", 0)),
    }
    section = {
        "fractions": {str(k): v for k, v in sp.fractions.items()},
        "seed": sp.seed,
        "policy": sp.flagged,
        "filter": spec.publish.filter if spec.publish is not None else None,
        "filtered": filtered,
        "group": spec.columns.group,
        "counts": counts.to_dicts(),
        "summary": {k: v for k, v in result.summary.items() if not isinstance(v, dict)},
        "flagged_rows": flagged,
        "excluded": by_policy.rename({"exclusion_policy": "policy",
                                      "exclusion_reason": "example_reason"}).to_dicts(),
    }
    return metrics, section


def lean_kept(spec: Spec) -> bool:
    """Whether `make_splits` keeps the kept rows lean (`row_only_columns` dropped; the
    flow gives it the valid rows in brief then): `labelgate.dag.lean_splits`."""
    return lean_splits(spec)


def row_only_columns(columns: list[str], *, spec: Spec) -> list[str]:
    """The valid rows' columns that no splits step reads: all but `brief_columns` (id,
    label, group, the publish filter's columns): texts, features, canonical columns..."""
    needed = set(brief_columns(spec))
    return [c for c in columns if c not in needed]


def _spent(columns: list[str], *, spec: Spec, after: str) -> list[str]:
    """The flag inputs no later step of lean kept rows reads: after the flag (``"flag"``),
    the label-issue columns (the relabel policy's suggestion and quality kept); after the
    assignment (``"assign"``), the duplicate cluster too. A column the publish filter
    names is kept."""
    spent = {"is_label_issue"}
    if spec.splits is None or spec.splits.flagged != "relabel":
        spent |= {"suggested_label", "label_quality"}
    if after == "assign":
        spent.add("_lg_unit")
    named = set(brief_columns(spec))
    return [c for c in columns if c in spent and c not in named]


def split_frames(kept: pl.DataFrame, *, spec: Spec, rows: pl.LazyFrame | None = None
                 ) -> dict[str, pl.DataFrame | pl.LazyFrame]:
    """The published columns of each split: id, inputs, label, group, plus flags kept.

    ``rows``: the run's valid rows (the lake's Parquet, scanned) for the columns ``kept``
    lacks (lean kept rows, `lean_kept`): each split is then its kept rows (id, split,
    label, group, flags) beside the rows' other columns, lazy, collected when it is written,
    one split at a time (the same rows and values as from full kept rows). When the valid
    rows' ids are sorted and unique (a night's), those columns are gathered at the split's
    ids' places among them (`_places`: found by a merge, each checked), else joined; the
    columns are then read once for the three splits, not once per split."""
    cols = [spec.columns.id, *spec.columns.text, *spec.columns.features]
    if spec.is_instruction:
        cols += list(CANONICAL_SCHEMA)
    cols += [c for c in (spec.columns.label, spec.columns.group) if c is not None]
    cols = list(dict.fromkeys(cols))
    extra = [c for c in ("relabeled", "given_label", FLAG) if c in kept.columns]
    missing = [c for c in cols if c not in kept.columns]
    if missing and rows is None:
        raise ValueError(f"split_frames: the kept rows lack {missing} (lean kept rows): "
                         "pass the valid rows as `rows`")
    out: dict[str, pl.DataFrame | pl.LazyFrame] = {}
    ids = _sorted_ids(rows, spec.columns.id) if missing else None
    # every kept row's place at once (one merge when the kept ids are sorted too)
    every = _places(ids, kept.get_column(spec.columns.id)) if ids is not None else None
    if every is not None:  # each split gathers from them: decoded once, not three times
        rows = rows.select(*missing).collect().lazy()  # type: ignore[union-attr]
    for name in ("train", "validation", "test"):
        chosen = kept.get_column("split") == name
        part = kept.filter(chosen)
        frame: pl.DataFrame | pl.LazyFrame
        if not missing:
            frame = part.select(*cols, *extra)
        else:
            here = part.select(*(c for c in cols if c not in missing), *extra)
            at = every.filter(chosen) if every is not None else (
                _places(ids, here.get_column(spec.columns.id)) if ids is not None else None)
            frame = (  # the rows' other columns by place when found there, else a join
                rows.select(spec.columns.id, *missing)  # type: ignore[union-attr]
                .join(here.lazy(), on=spec.columns.id, how="inner") if at is None else
                pl.concat([here.lazy(), rows.select(  # type: ignore[union-attr]
                    pl.col(*missing).gather(at))], how="horizontal")
            ).select(*cols, *extra)
        out[name] = frame.rename({FLAG: "flagged"}) if FLAG in extra else frame
    return out


def _sorted_ids(rows: pl.LazyFrame | None, id_column: str) -> pl.Series | None:
    """The valid rows' ids (read alone) when they are sorted, unique and not null (a
    split's rows are then found by place, `_places`), else None."""
    if rows is None:
        return None
    ids = rows.select(id_column).collect().get_column(id_column)
    n = ids.len()
    if ids.null_count() or not ids.is_sorted() or (
            n > 1 and (ids.slice(1) == ids.slice(0, n - 1)).any()):
        return None
    return ids


def _places(ids: pl.Series, wanted: pl.Series) -> pl.Series | None:
    """Where each of ``wanted`` is among the sorted unique ``ids`` (None: one is not).

    Sorted ``wanted`` (a night's kept ids) are placed by one merge of the two sorted
    columns (`_merged_places`: each id compared with its neighbours, not searched for),
    else by a binary search each; either way the places found are checked."""
    if ids.len() == 0 or wanted.dtype != ids.dtype or wanted.null_count():
        return None
    if wanted.is_sorted():
        at = _merged_places(ids, wanted)
        if ids.gather(at).equals(wanted, check_names=False):
            return at
    at = ids.search_sorted(wanted).clip(0, ids.len() - 1)
    return at if ids.gather(at).equals(wanted, check_names=False) else None


def _merged_places(ids: pl.Series, wanted: pl.Series) -> pl.Series:
    """The places of sorted ``wanted`` among sorted ``ids`` (polars' `merge_sorted` of
    both, which puts an id of ``ids`` before an equal one of ``wanted``: a wanted id's
    place is the count of ``ids``' before it, less one); `_places` checks them."""
    merged = pl.DataFrame({"id": ids, "from_ids": pl.repeat(1, ids.len(), eager=True)}
                          ).merge_sorted(pl.DataFrame({
                              "id": wanted, "from_ids": pl.repeat(0, wanted.len(), eager=True)
                          }), key="id")
    return merged.select((pl.col("from_ids").cum_sum() - 1).clip(0, ids.len() - 1)
                         .filter(pl.col("from_ids") == 0)).to_series()
