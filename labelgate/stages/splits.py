"""Sticky, stratified, grouped train/validation/test splits; leakage check; flagged-row policy.

Rules (the README quotes them; change both together):

- **Units.** Rows sharing a ``group_column`` value or a ``unit_column`` value (e.g. the dedup
  ``cluster_id``) are one unit, transitively (connected components over both columns), so
  a unit never straddles splits. A null group/unit value links nothing. A unit is named by
  its smallest key.
- **Sticky.** A key found in ``previous`` keeps its split. When a unit's members were in
  different splits before (a new duplicate or group member linked two old units), the whole
  unit goes to its **most held-out** member split, ``test > validation > train``, so a row
  only ever moves towards test and a key that was in test never leaves it; those rows are
  ``moved`` and counted. Keys in ``previous`` but not in the frame are **removed**: they get
  no assignment in this run, and ``save_assignments`` keeps their stored row (``last_run``
  tells when they were last seen); a key that comes back gets its old split again.
- **New units** (no member seen before) are assigned per stratum (the unit's majority
  label, ties to the smallest label; one stratum when ``stratify`` is false or there is no
  label) in a seeded hash order (blake2b of ``seed`` and the unit name: independent of row
  order and of the polars version), each to the split whose row count is furthest below its
  target ``fraction x rows of the stratum`` (sticky rows included), ties to the less
  held-out split. Splits with fraction 0 get no new units. With singletons this hits the
  targets to within one row per stratum; with units the error is at most the largest unit.
- **Split names** are ``train``, ``validation`` and ``test`` (a subset may be used). A
  sticky split that is no longer in ``fractions`` is kept; fractions only steer new units.
- Only the current frame's rows link units: a removed key does not pull a new near
  duplicate of it into its old split (the published version has no removed rows, so
  nothing leaks within a version).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

import numpy as np
import polars as pl

from labelgate.errors import InputError, SpecError

SPLITS: tuple[str, ...] = ("train", "validation", "test")  # ascending held-out rank
HELD_OUT_RANK: dict[str, int] = {s: i for i, s in enumerate(SPLITS)}
DEFAULT_FRACTIONS: dict[str, float] = {"train": 0.8, "validation": 0.1, "test": 0.1}
FlagPolicy = Literal["drop", "drop_from_test", "relabel", "keep"]
FLAG_POLICIES: tuple[str, ...] = ("drop", "drop_from_test", "relabel", "keep")


@dataclass(frozen=True)
class SplitResult:
    """``assignments``: one row per input key: key (String), split, first_run, new (not seen
    before), moved (changed split by the merge rule), previous_split, unit, stratum.
    ``counts``: split, label, rows. ``removed``: keys of ``previous`` not in this frame
    (key, split, first_run). ``summary``: rows per split, shares, new/moved/removed counts,
    worst deviation of a stratum share from its fraction."""

    assignments: pl.DataFrame
    counts: pl.DataFrame
    removed: pl.DataFrame
    summary: dict[str, Any] = field(default_factory=dict)


def validate_fractions(fractions: Mapping[str, float]) -> dict[str, float]:
    """The fractions as a dict in held-out order; SpecError naming ``splits.fractions``."""
    if not fractions:
        raise SpecError("splits.fractions is empty; expected e.g. {train: 0.8, test: 0.2}")
    unknown = [s for s in fractions if s not in HELD_OUT_RANK]
    if unknown:
        raise SpecError(
            f"splits.fractions: unknown split(s) {unknown}; valid splits: {', '.join(SPLITS)}"
        )
    for name, value in fractions.items():
        if not isinstance(value, int | float) or not 0.0 <= float(value) <= 1.0:
            raise SpecError(f"splits.fractions.{name} is {value!r}; expected a number in [0, 1]")
    total = sum(float(v) for v in fractions.values())
    if abs(total - 1.0) > 1e-6:
        raise SpecError(f"splits.fractions sum to {total:.6g}; expected 1 (within 1e-6)")
    return {s: float(fractions[s]) for s in SPLITS if s in fractions}


def _require(df: pl.DataFrame, columns: list[str | None], where: str) -> None:
    missing = [c for c in columns if c is not None and c not in df.columns]
    if missing:
        raise InputError(f"{where}: column(s) {missing} not in the frame; it has {df.columns}")


def _unique_keys(keys: pl.Series, where: str) -> None:
    if keys.null_count():
        raise InputError(f"{where}: key column {keys.name!r} has {keys.null_count()} null(s)")
    n = keys.len()
    if n > 1 and keys.is_sorted():  # equal keys are neighbours: no hash of every key
        dup = int((keys.slice(1) == keys.slice(0, n - 1)).sum())
    else:
        dup = n - keys.n_unique()
    if dup:
        example = keys.filter(keys.is_duplicated()).head(3).to_list()
        raise InputError(
            f"{where}: key column {keys.name!r} has {dup} repeated value(s), e.g. {example}; "
            "expected unique keys"
        )


def join_beside(frame: pl.DataFrame, tables: list[pl.DataFrame], on: str) -> pl.DataFrame:
    """``frame`` left-joined on column ``on`` with each of ``tables`` in turn.

    When every row of ``frame`` matches at most one row of each table (the tables are keyed
    on ``on``), only ``frame``'s ``on`` column is joined and the tables' other columns are
    added beside ``frame``'s, in ``frame``'s row order: ``frame``'s other columns are
    neither gathered nor rechunked (docs/benchmarks/memory.md). Otherwise the plain left
    joins, rows repeated as a join repeats them."""
    narrow = frame.select(on)
    keys = narrow.get_column(on)
    unique: list[bool] = []  # whether ``keys`` are unique and not null, once asked
    for table in tables:
        if (table.height == narrow.height and table.schema[on] == keys.dtype
                and table.get_column(on).equals(keys) and _unique_once(keys, unique)):
            # the same keys in the same order (a table in the frame's row order): by position
            narrow = narrow.with_columns(table.drop(on).get_columns())
        else:
            narrow = narrow.join(table, on=on, how="left", maintain_order="left")
    if narrow.height == frame.height:
        return frame.with_columns(narrow.drop(on).get_columns())
    for table in tables:
        frame = frame.join(table, on=on, how="left")
    return frame


def _unique_once(keys: pl.Series, memo: list[bool]) -> bool:
    """Whether ``keys`` has no null and no repeated value (sorted keys: their neighbours
    compared), computed on the first call and kept in ``memo``."""
    if not memo:
        n = keys.len()
        if keys.null_count():
            memo.append(False)
        elif n > 1 and keys.is_sorted():
            memo.append(not (keys.slice(1) == keys.slice(0, n - 1)).any())
        else:
            memo.append(keys.n_unique() == n)
    return memo[0]


def _order_keys(seed: int, names: list[str]) -> np.ndarray[Any, np.dtype[np.uint64]]:
    """blake2b(seed, name) as uint64: the seeded, row-order-free processing order of units."""
    prefix = f"{seed}\x00".encode()
    blake = hashlib.blake2b
    return np.fromiter(
        (int.from_bytes(blake(prefix + n.encode(), digest_size=8).digest(), "big")
         for n in names),
        dtype=np.uint64, count=len(names),
    )


def _key_order(work: pl.DataFrame) -> tuple[pl.Series, pl.Series]:
    """Each row's place in key order (UInt32: its row index ``_i`` when the keys are sorted,
    a night's case, with no sort) and the keys in that order."""
    keys = work.get_column("key")
    if keys.is_sorted():  # one chunk: a unit's name is gathered from them for every row
        return work.get_column("_i").cast(pl.UInt32), keys.rechunk()
    order = keys.arg_sort().to_numpy()
    place = np.empty(len(order), dtype=np.uint32)
    place[order] = np.arange(len(order), dtype=np.uint32)
    return pl.Series("_i", place), keys.gather(order)


def _unit_codes(work: pl.DataFrame, link_columns: list[str], place: pl.Series) -> pl.Series:
    """Per row, its unit's code: the smallest key order ``place`` among the rows of its
    connected component over shared link values (the unit is named by the key there:
    codes order the units as their names do; integers, not keys, grouped and joined).
    scipy's graph module is imported for two link columns or more only."""
    n = work.height
    if not link_columns:
        return place.alias("_uc")
    if len(link_columns) == 1:  # one column: the components are its values' rows
        link = pl.col(link_columns[0])
        return work.select(place.alias("_p"), link).select(
            pl.when(link.is_null()).then(pl.col("_p"))
            .otherwise(pl.col("_p").min().over(link)).alias("_uc")
        ).get_column("_uc")
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    src: list[np.ndarray[Any, Any]] = []
    dst: list[np.ndarray[Any, Any]] = []
    for col in link_columns:
        linked = work.select("_i", col).filter(pl.col(col).is_not_null())
        linked = linked.with_columns(pl.col("_i").min().over(col).alias("_first"))
        src.append(linked.get_column("_i").to_numpy())
        dst.append(linked.get_column("_first").to_numpy())
    a = np.concatenate(src).astype(np.int64)
    b = np.concatenate(dst).astype(np.int64)
    graph = coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(n, n))
    _, comp = connected_components(graph, directed=False)
    return pl.DataFrame([place.alias("_p"), pl.Series("_c", comp)]).select(
        pl.col("_p").min().over("_c").alias("_uc")).get_column("_uc")


def assign_splits(
    df: pl.DataFrame,
    *,
    key_column: str,
    label_column: str | None,
    run_id: str,
    fractions: Mapping[str, float] | None = None,
    stratify: bool = True,
    group_column: str | None = None,
    unit_column: str | None = None,
    seed: int = 13,
    previous: pl.DataFrame | None = None,
) -> SplitResult:
    """Assign every row of ``df`` to a split (module docstring: the rules).

    ``previous``: stored assignments (``load_assignments``): key, split, first_run.
    """
    target = validate_fractions(DEFAULT_FRACTIONS if fractions is None else fractions)
    _require(df, [key_column, label_column, group_column, unit_column], "splits")
    _unique_keys(df.get_column(key_column), "splits")
    links = [c for c in (group_column, unit_column) if c is not None]
    prev = _previous(previous)
    work, ordered = _unit_rows(df, key_column=key_column, label_column=label_column,
                               links=links, previous=prev)
    use_strata = stratify and label_column is not None
    units = _unit_splits(work, target=target, ordered=ordered, seed=seed,
                         use_strata=use_strata)
    work = work.join(units, on="_uc", how="left", maintain_order="left")  # codes: integers
    assignments = work.select(
        "key",
        "split",
        pl.coalesce("previous_first_run", pl.lit(run_id)).alias("first_run"),
        pl.col("previous_split").is_null().alias("new"),
        (pl.col("previous_split").is_not_null() & (pl.col("previous_split") != pl.col("split")))
        .alias("moved"),
        "previous_split",
        ordered.gather(work.get_column("_uc")).alias("unit"),
        "stratum",
        "label",
    )
    assignments = _flag_sorted(assignments).sort("key")  # in key order already: no sort
    removed = (  # stored keys first in key order, or none: nothing removed, no join
        prev.clear() if _is_prefix(assignments, prev, on="key")
        else _flag_sorted(prev).join(assignments.select("key"), on="key", how="anti")
    ).select("key", pl.col("previous_split").alias("split"),
             pl.col("previous_first_run").alias("first_run")).sort("key")
    tally = assignments.group_by("split", "label", "stratum").len()  # one pass, both counts
    counts = (
        tally.group_by("split", "label").agg(pl.col("len").sum().cast(pl.Int64).alias("rows"))
        .sort(pl.col("split").replace_strict(HELD_OUT_RANK), "label", nulls_last=True)
    )
    return SplitResult(
        assignments=assignments.drop("label"),
        counts=counts,
        removed=removed,
        summary=_summary(assignments, target, removed.height, use_strata,
                         units=units.height, tally=tally),  # units: one row per unit
    )


def _unit_rows(
    df: pl.DataFrame,
    *,
    key_column: str,
    label_column: str | None,
    links: list[str],
    previous: pl.DataFrame,
) -> tuple[pl.DataFrame, pl.Series]:
    """One row per input row: its key, label, unit code, previous split and its rank.

    Parameters
    ----------
    df : pl.DataFrame
        The rows to assign, shape (n_rows, k).
    key_column, label_column : str, str or None
        The key and (optional) label columns of ``df``.
    links : list of str
        The group / unit columns that join rows into units.
    previous : pl.DataFrame
        ``_previous``'s frame: key, previous_split, previous_first_run.

    Returns
    -------
    tuple of (pl.DataFrame, pl.Series)
        Shape (n_rows, 8 + len(links)): _i, key, label, the ``_link<i>`` columns, ``_uc``
        (the unit's code, `_unit_codes`), previous_split, previous_first_run and ``_rank``
        (the previous split's held-out rank, null for a new key: a unit's rank, the
        largest of its rows', is taken where `_unit_splits` counts them, not by a window
        over every row); and the keys in key order (a unit's name: its code's key there).
    """
    work = df.select(
        pl.col(key_column).cast(pl.String).alias("key"),
        (pl.col(label_column).cast(pl.String) if label_column else pl.lit(None, pl.String))
        .alias("label"),
        *[pl.col(c).alias(f"_link{i}") for i, c in enumerate(links)],
    ).with_row_index("_i")
    place, ordered = _key_order(work)
    work = work.with_columns(_unit_codes(work, [f"_link{i}" for i in range(len(links))],
                                         place).alias("_uc"))
    work = prefix_join(work, previous, on="key")
    rank = pl.col("previous_split").replace_strict(HELD_OUT_RANK, default=None,
                                                   return_dtype=pl.Int8)
    return work.with_columns(rank.alias("_rank")), ordered


def _is_prefix(frame: pl.DataFrame, table: pl.DataFrame, *, on: str) -> bool:
    """Whether ``table``'s keys ``on`` are ``frame``'s first keys, in the same order."""
    m = table.height
    return m <= frame.height and frame.get_column(on).head(m).equals(
        table.get_column(on), check_dtypes=True)


def prefix_join(frame: pl.DataFrame, table: pl.DataFrame, *, on: str) -> pl.DataFrame:
    """``frame`` left-joined with ``table`` on ``on``, both with unique keys. When
    ``table``'s keys are ``frame``'s first keys in the same order (a night's rows: the
    stored keys first, the new ones after), ``table``'s columns go beside by position,
    null for the later rows; otherwise a join (on keys flagged sorted when they are)."""
    if _is_prefix(frame, table, on=on):
        rest = frame.height - table.height
        return frame.with_columns(
            pl.concat([col, pl.repeat(None, rest, dtype=col.dtype, eager=True)])
            if rest else col for col in table.drop(on).get_columns())
    return _flag_sorted(frame, on).join(_flag_sorted(table, on), on=on, how="left")


def _flag_sorted(frame: pl.DataFrame, on: str = "key") -> pl.DataFrame:
    """``frame`` with its column ``on`` flagged sorted when it is (ids in order, stored
    assignments read in key order): polars then joins on it without hashing every key."""
    if frame.height > 1 and frame.get_column(on).is_sorted():
        return frame.with_columns(pl.col(on).set_sorted())
    return frame


def _unit_splits(
    work: pl.DataFrame, *, target: dict[str, float], ordered: pl.Series, seed: int,
    use_strata: bool,
) -> pl.DataFrame:
    """Each unit's split (its sticky one, else a new one) and stratum.

    Parameters
    ----------
    work : pl.DataFrame
        ``_unit_rows``'s frame, shape (n_rows, k): _uc, label and each row's ``_rank``.
    target : dict of str to float
        The validated fractions.
    ordered : pl.Series
        The keys in key order (a unit's name is its code's key).
    seed : int
        Seeds the order in which new units are assigned.
    use_strata : bool
        Stratify by the unit's majority label (ties to the smallest label).

    Returns
    -------
    pl.DataFrame
        Shape (n_units, 3): _uc, split, stratum.
    """
    if use_strata:  # one pass over the rows: a unit's size is the sum of its label counts,
        per_label = work.group_by("_uc", "label").agg(  # its rank the largest of theirs
            pl.len(), pl.col("_rank").max().alias("rank"))
        units = (
            per_label
            .sort(["_uc", "len", "label"], descending=[False, True, False], nulls_last=True)
            .group_by("_uc", maintain_order=True)
            .agg(pl.col("len").sum().alias("size"), pl.col("rank").max(),
                 pl.col("label").first().alias("stratum"))
        )
    else:
        units = work.group_by("_uc").agg(
            pl.len().alias("size"), pl.col("_rank").max().alias("rank"),
            pl.lit(None, pl.String).alias("stratum"))
    chosen = _assign_new_units(units, target=target, ordered=ordered, seed=seed)
    units = units.join(chosen, on="_uc", how="left").with_columns(
        pl.coalesce(
            pl.col("rank").replace_strict(dict(enumerate(SPLITS)), default=None,
                                          return_dtype=pl.String),
            pl.col("new_split"),
        ).alias("split")
    )
    return units.select("_uc", "split", "stratum")


def _previous(previous: pl.DataFrame | None) -> pl.DataFrame:
    schema = {"key": pl.String, "previous_split": pl.String, "previous_first_run": pl.String}
    if previous is None or previous.is_empty():
        return pl.DataFrame(schema=schema)
    _require(previous, ["key", "split", "first_run"], "splits: previous assignments")
    _unique_keys(previous.get_column("key"), "splits: previous assignments")
    bad = previous.filter(~pl.col("split").is_in(list(SPLITS))).get_column("split").unique()
    if bad.len():
        raise InputError(
            f"splits: previous assignments have split(s) {sorted(bad.to_list())}; "
            f"expected one of {list(SPLITS)}"
        )
    return previous.select(
        pl.col("key").cast(pl.String),
        pl.col("split").cast(pl.String).alias("previous_split"),
        pl.col("first_run").cast(pl.String).alias("previous_first_run"),
    )


def _assign_new_units(
    units: pl.DataFrame, *, target: dict[str, float], ordered: pl.Series, seed: int
) -> pl.DataFrame:
    """Split for each unit (``_uc``, its name the key of ``ordered`` there) without a
    previous split (greedy on the deficit, hash order)."""
    open_splits = [s for s, f in target.items() if f > 0]  # held-out order: ties go first
    parts: list[pl.DataFrame] = []
    for _, part in units.group_by("stratum"):
        total = int(part.get_column("size").sum())
        sticky = (
            part.filter(pl.col("rank").is_not_null()).group_by("rank").agg(pl.col("size").sum())
        )
        have = {SPLITS[r]: int(n) for r, n in sticky.rows()}
        deficit = [target[s] * total - have.get(s, 0) for s in open_splits]
        new = part.filter(pl.col("rank").is_null()).select("_uc", "size").sort("_uc")
        names = ordered.gather(new.get_column("_uc")).to_list()  # in name order
        order = np.argsort(_order_keys(seed, names), kind="stable")  # ties: unit name
        sizes = new.get_column("size").to_numpy()[order].tolist()
        picks = np.empty(len(sizes), dtype=np.int8)
        m = len(deficit)
        for i, size in enumerate(sizes):
            j = 0
            best = deficit[0]
            for k in range(1, m):
                if deficit[k] > best:
                    best = deficit[k]
                    j = k
            deficit[j] -= size
            picks[i] = j
        chosen = np.empty(len(sizes), dtype=np.int8)
        chosen[order] = picks
        parts.append(new.select("_uc").with_columns(
            pl.Series("new_split", [open_splits[j] for j in chosen.tolist()], dtype=pl.String)
        ))
    if not parts:
        return pl.DataFrame(schema={"_uc": pl.UInt32, "new_split": pl.String})
    return pl.concat(parts)


def _summary(
    assignments: pl.DataFrame, target: dict[str, float], removed: int, use_strata: bool, *,
    units: int, tally: pl.DataFrame | None = None,
) -> dict[str, Any]:
    """``tally``: the rows per split, label and stratum (len), when counted already."""
    n = assignments.height
    stratum = pl.col("stratum") if use_strata else pl.lit("").alias("stratum")
    got = (assignments.select(stratum, "split").group_by("stratum", "split").len()
           if tally is None else tally.group_by(stratum, "split").agg(pl.col("len").sum()))
    per_split = dict(got.group_by("split").agg(pl.col("len").sum()).rows())  # one row pass
    worst = 0.0
    if n:
        grid = got.select("stratum").unique().join(
            pl.DataFrame({"split": list(target), "fraction": list(target.values())}),
            how="cross",
        )
        shares = grid.join(got, on=["stratum", "split"], how="left").with_columns(
            pl.col("len").fill_null(0)
        ).with_columns((pl.col("len") / pl.col("len").sum().over("stratum")).alias("share"))
        worst = float(shares.select((pl.col("share") - pl.col("fraction")).abs().max()).item())
    return {
        "rows": n,
        "rows_per_split": {s: int(per_split.get(s, 0)) for s in target},
        "share_per_split": {s: (per_split.get(s, 0) / n if n else 0.0) for s in target},
        "fractions": target,
        "new_rows": int(assignments.get_column("new").sum()),
        "moved_rows": int(assignments.get_column("moved").sum()),
        "removed_rows": removed,
        "units": units,
        "max_stratum_share_deviation": worst,
    }


def leakage(
    df: pl.DataFrame,
    *,
    key_column: str,
    split_column: str = "split",
    group_column: str | None = None,
    duplicates: pl.DataFrame | None = None,
) -> dict[str, int]:
    """Leaks across splits in ``df`` (a frame with a split column).

    ``duplicates`` is ``DuplicateResult.clusters`` (cluster_id, id, exact_group); its ids
    are matched to ``key_column`` as strings, and ids not in ``df`` are ignored. Pairs are
    counted within clusters (a near pair is two members of one near cluster, possibly linked
    transitively); an exact pair shares ``exact_group``. ``total`` = exact pairs + near pairs
    + groups in more than one split: the ``max_split_leakage`` metric.
    """
    _require(df, [key_column, split_column, group_column], "leakage")
    out = {"exact_pairs": 0, "near_pairs": 0, "clusters_across_splits": 0,
           "groups_across_splits": 0, "group_rows_across_splits": 0}
    splits = df.select(pl.col(key_column).cast(pl.String).alias("key"), split_column)
    if duplicates is not None and duplicates.height:
        _require(duplicates, ["cluster_id", "id", "exact_group"], "leakage: duplicates")
        cross, exact, across = _cluster_leaks(duplicates, splits, split_column=split_column)
        out["exact_pairs"] = exact
        out["near_pairs"] = cross - exact
        out["clusters_across_splits"] = across
    if group_column is not None:
        groups = (
            df.filter(pl.col(group_column).is_not_null())
            .group_by(group_column)
            .agg(pl.col(split_column).n_unique().alias("k"), pl.len().alias("n"))
            .filter(pl.col("k") > 1)
        )
        out["groups_across_splits"] = groups.height
        out["group_rows_across_splits"] = int(groups.get_column("n").sum())
    out["total"] = out["exact_pairs"] + out["near_pairs"] + out["groups_across_splits"]
    return out


LEAKAGE_SHARD_ROWS = 250_000  # cluster members joined with their splits at a time


def _cluster_leaks(
    duplicates: pl.DataFrame, splits: pl.DataFrame, *, split_column: str
) -> tuple[int, int, int]:
    """Pairs of one cluster in different splits, pairs of one exact group in different
    splits, and clusters across splits. Each member (an id of ``splits``' ``key``) gets its
    split's code by one join on the keys' hashes (a member not in ``splits`` none, or a
    stray one); only the clusters whose members' codes differ can have a pair across
    splits (the others have none: every key in ``splits`` gets its own split's code, or
    the filter is skipped when a hash matches two keys): those clusters' members are joined
    with their splits and counted, one shard of whole clusters at a time (cluster_id's
    hash), so the join holds at most ``LEAKAGE_SHARD_ROWS``-odd members (sums over disjoint
    clusters add up). Usually no cluster straddles splits, and nothing more is joined."""
    members = duplicates.select(
        pl.col("id").cast(pl.String).alias("key"), "cluster_id", "exact_group"
    )
    names = {v: i for i, v in enumerate(splits.get_column(split_column).unique().drop_nulls())}
    codes = splits.select(pl.col("key").hash(seed=0).alias("_h"), pl.col(split_column)
                          .replace_strict(names, default=None, return_dtype=pl.UInt32).alias("_s"))
    code = members.select(pl.col("key").hash(seed=0).alias("_h")).join(  # hashes: no
        codes, on="_h", how="left", maintain_order="left")  # cluster across splits missed
    if code.height == members.height:  # one key per hash: a split per member
        spread = (
            members.select("cluster_id").with_columns(code.get_column("_s")).group_by("cluster_id")
            .agg(pl.col("_s").min().alias("lo"), pl.col("_s").max().alias("hi"))
            .filter(pl.col("lo") != pl.col("hi")).get_column("cluster_id")
        )
        members = members.filter(pl.col("cluster_id").is_in(spread.implode()))
    if members.height == 0:
        return 0, 0, 0
    shards = -(-members.height // LEAKAGE_SHARD_ROWS)
    shard = members.select(pl.col("cluster_id").hash(seed=0) % shards).to_series()
    n = pl.col("n")
    cross_expr = (n.sum() * (n.sum() - 1) // 2 - (n * (n - 1) // 2).sum()).alias("cross")
    cross = exact = across = 0
    for i in range(shards):
        part = (members if shards == 1 else members.filter(shard == i)).join(
            splits, on="key", how="inner")
        by_cluster = (
            part.group_by("cluster_id", split_column).agg(pl.len().cast(pl.Int64).alias("n"))
            .group_by("cluster_id").agg(cross_expr)
        )
        by_exact = (
            part.group_by("cluster_id", "exact_group", split_column)
            .agg(pl.len().cast(pl.Int64).alias("n"))
            .group_by("cluster_id", "exact_group").agg(cross_expr)
        )
        cross += int(by_cluster.get_column("cross").sum())
        exact += int(by_exact.get_column("cross").sum())
        across += int((by_cluster.get_column("cross") > 0).sum())
    return cross, exact, across


class FlagPolicyResult(NamedTuple):
    kept: pl.DataFrame
    excluded: pl.DataFrame  # the input columns + exclusion_policy, exclusion_reason


def apply_flag_policy(
    df: pl.DataFrame,
    *,
    flagged_column: str,
    policy: FlagPolicy,
    label_column: str,
    split_column: str = "split",
    suggested_column: str | None = None,
    quality_column: str | None = None,
    relabel_min_quality: float = 0.9,
) -> FlagPolicyResult:
    """Apply the spec's policy for flagged rows (a null flag counts as not flagged).

    - ``keep``: every row kept; the flag column stays for the fine-tune to use.
    - ``drop``: flagged rows excluded.
    - ``drop_from_test``: flagged rows in the ``test`` split excluded (the row keeps its
      sticky assignment, so it never moves to train); flagged train/validation rows kept.
    - ``relabel``: a flagged row whose ``suggested_column`` is set and whose
      ``quality_column`` (when given) is >= ``relabel_min_quality`` gets the suggested label
      (``relabeled`` = true, old label in ``given_label``); other flagged rows excluded.

    ``len(kept) + len(excluded) == len(df)`` always.
    """
    _require_policy_columns(df, policy=policy, flagged_column=flagged_column,
                            label_column=label_column, split_column=split_column,
                            suggested_column=suggested_column, quality_column=quality_column)
    flagged = pl.col(flagged_column).fill_null(False).cast(pl.Boolean)
    if policy == "keep":
        return FlagPolicyResult(df, df.clear().with_columns(
            pl.lit(policy).alias("exclusion_policy"),
            pl.lit("", pl.String).alias("exclusion_reason"),
        ))
    if policy == "drop":
        out = flagged
        reason = pl.lit("flagged row dropped (policy drop)")
    elif policy == "drop_from_test":
        out = flagged & (pl.col(split_column) == "test")
        reason = pl.lit("flagged row in test dropped (policy drop_from_test)")
    else:
        assert suggested_column is not None
        df, out, reason = _relabel(
            df, flagged=flagged, label_column=label_column, suggested_column=suggested_column,
            quality_column=quality_column, relabel_min_quality=relabel_min_quality,
        )
    mask = df.select(out.alias("_out")).get_column("_out")
    excluded = df.filter(mask).with_columns(
        pl.lit(policy).alias("exclusion_policy"), reason.alias("exclusion_reason")
    )
    if policy == "relabel":
        excluded = excluded.drop("relabeled")
    return FlagPolicyResult(df.filter(~mask), excluded)


def _require_policy_columns(
    df: pl.DataFrame,
    *,
    policy: str,
    flagged_column: str,
    label_column: str,
    split_column: str,
    suggested_column: str | None,
    quality_column: str | None,
) -> None:
    """SpecError for an unknown policy or a relabel without a suggested label column;
    InputError naming the columns ``policy`` reads that ``df`` lacks."""
    if policy not in FLAG_POLICIES:
        raise SpecError(f"splits.flagged is {policy!r}; expected one of {list(FLAG_POLICIES)}")
    needed: list[str | None] = [flagged_column, label_column]
    if policy == "drop_from_test":
        needed.append(split_column)
    if policy == "relabel":
        if suggested_column is None:
            raise SpecError("splits.flagged is 'relabel' but no suggested label column is set")
        needed += [suggested_column, quality_column]
    _require(df, needed, f"flag policy {policy}")


def _relabel(
    df: pl.DataFrame,
    *,
    flagged: pl.Expr,
    label_column: str,
    suggested_column: str,
    quality_column: str | None,
    relabel_min_quality: float,
) -> tuple[pl.DataFrame, pl.Expr, pl.Expr]:
    """The ``relabel`` policy: flagged rows with a good enough suggestion take it.

    Parameters
    ----------
    df : pl.DataFrame
        The rows, shape (n_rows, k).
    flagged : pl.Expr
        Boolean, true for a flagged row (nulls filled with false).
    label_column, suggested_column, quality_column : str, str, str or None
        The given label, the suggested label and (optional) its quality.
    relabel_min_quality : float
        The least quality a suggestion needs.

    Returns
    -------
    tuple of (pl.DataFrame, pl.Expr, pl.Expr)
        ``df`` with ``given_label``, the new label and ``relabeled`` (shape (n_rows, k + 2));
        the mask of rows to exclude; the reason an excluded row is excluded.
    """
    has = pl.col(suggested_column).is_not_null()
    if quality_column is None:
        ok = has
        reason = pl.lit("flagged row without a suggested label (policy relabel)")
    else:
        q = pl.col(quality_column)
        ok = has & q.is_not_null() & (q >= relabel_min_quality)
        reason = (
            pl.when(~has).then(pl.lit("flagged row without a suggested label (policy relabel)"))
            .when(q.is_null()).then(pl.lit(f"flagged row without {quality_column} "
                                            "(policy relabel)"))
            .otherwise(pl.format(
                "suggested label quality {} < splits.relabel_min_quality "
                f"{relabel_min_quality} (policy relabel)", q.round(4)))
        )
    relabel = flagged & ok
    df = df.with_columns(
        pl.col(label_column).alias("given_label"),
        pl.when(relabel).then(pl.col(suggested_column).cast(df.schema[label_column]))
        .otherwise(pl.col(label_column)).alias(label_column),
        relabel.alias("relabeled"),
    )
    return df, flagged & ~ok, reason
