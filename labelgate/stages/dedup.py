"""Exact and near-duplicate detection over text columns: clusters usable as split units.

Decisions (change them here and in the README together):

- **Normalized key** (``normalize_text``): Unicode NFKC, then Unicode lowercase (polars
  ``to_lowercase``; not full case folding, so ``ß`` stays ``ß``), every run of Unicode
  whitespace collapsed to one space, then stripped. Several text columns are joined with
  U+001F (unit separator) first, so ``("a b", "c")`` and ``("a", "b c")`` differ.
- **Exact duplicates**: rows with the same normalized key.
- **Near duplicates**: MinHash over **character 5-shingles** of the normalized key (every
  substring of ``shingle`` characters; a text shorter than that is one shingle; an empty
  text takes part in exact matching only). Character shingles, not word shingles, because
  the texts here are short: a one-word edit of a 15-word tweet changes 5 of 11 word
  5-shingles (Jaccard ~0.4) but only ~10% of its character 5-shingles. Shingles are hashed
  in numpy over the UTF-32 code points (a polynomial hash + splitmix64 finalizer: the same
  on every platform and library version) and the signatures computed by rensa
  (``RMinHash``, Rust) from the flat hash buffer, once per distinct normalized text.
- **LSH**: ``bands`` x ``rows`` chosen to minimise the integrated false positive + false
  negative probability at ``threshold`` (the MinHash LSH rule of Leskovec et al., as in
  datasketch). Within one band bucket, rows are sorted and each is paired with the next
  ``window`` (32) rows: all pairs for buckets of up to 33 rows, a chain of overlapping
  windows beyond that (bounded work on templated text). A candidate pair is kept when its
  **estimated Jaccard** (share of equal MinHash values) is >= ``threshold``.
- **Clusters** are the connected components (scipy ``connected_components``) of exact
  groups joined by verified near pairs, so transitive duplicates form one cluster.
  ``cluster_id`` is the smallest id in the cluster (the **representative**); a singleton's
  cluster_id is its own id, so ``cluster_of`` has a non-null unit for every row and can be
  the split unit directly. ``kind`` of a member is ``exact`` when its key equals the
  representative's (the representative itself is ``exact``, similarity 1.0), else ``near``;
  ``similarity`` is the estimated Jaccard to the representative (below ``threshold`` is
  possible for a transitive member). ``exact_group`` is the smallest id sharing the row's
  exact key (pairs in one exact group are exact duplicates; ``splits.leakage`` uses it).
- Deterministic: no dependence on row order; the only randomness is the MinHash ``seed``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, overload

import numpy as np
import numpy.typing as npt
import polars as pl

from labelgate.errors import InputError
from labelgate.partition import Mapper, serial_map
from labelgate.stages.dedup_minhash import _WINDOW as _WINDOW
from labelgate.stages.dedup_minhash import SHINGLE_HASH_SEED as SHINGLE_HASH_SEED
from labelgate.stages.dedup_minhash import I64Array as I64Array
from labelgate.stages.dedup_minhash import Shard as Shard
from labelgate.stages.dedup_minhash import U32Matrix as U32Matrix
from labelgate.stages.dedup_minhash import _candidate_pairs as _candidate_pairs
from labelgate.stages.dedup_minhash import _estimated_jaccard as _estimated_jaccard
from labelgate.stages.dedup_minhash import _shingle_hashes as _shingle_hashes
from labelgate.stages.dedup_minhash import _signatures as _signatures
from labelgate.stages.dedup_minhash import band_hash as band_hash
from labelgate.stages.dedup_minhash import shard_signatures as shard_signatures
from labelgate.stages.dedup_minhash import window_pairs as window_pairs

_JOIN = "\x1f"
_KEY_CHUNK = 250_000  # rows normalized at a time (the per-row texts are not all held)

T = TypeVar("T", pl.Expr, pl.Series)


@overload
def normalize_text(text: pl.Expr) -> pl.Expr: ...
@overload
def normalize_text(text: pl.Series) -> pl.Series: ...
def normalize_text(text: pl.Expr | pl.Series) -> pl.Expr | pl.Series:
    """NFKC, lowercase, whitespace runs collapsed to one space, stripped; null stays null.

    A Series takes a faster path with the same result: NFKC only on rows with a non-ASCII
    character (ASCII is NFKC-stable) and the whitespace regex only on rows that need it.
    """
    if isinstance(text, pl.Series):
        return _normalize_series(text)
    return (
        text.str.normalize("NFKC")
        .str.to_lowercase()
        .str.replace_all(r"\s+", " ")
        .str.strip_chars()
    )


def _normalize_series(s: pl.Series) -> pl.Series:
    name = s.name
    s = s.cast(pl.String)
    non_ascii = s.str.contains(r"[^\x00-\x7f]").fill_null(False)
    if non_ascii.any():
        s = s.scatter(non_ascii.arg_true(), s.filter(non_ascii).str.normalize("NFKC"))
    s = s.str.to_lowercase()
    odd_space = s.str.contains(r"[^\S ]|  ").fill_null(False)
    if odd_space.any():
        s = s.scatter(odd_space.arg_true(), s.filter(odd_space).str.replace_all(r"\s+", " "))
    return s.str.strip_chars().alias(name)


class MemberRows(Protocol):
    """Builds `DuplicateResult.clusters` when it is first read (its schema known before)."""

    @property
    def schema(self) -> pl.Schema: ...

    def __call__(self) -> pl.DataFrame: ...


@dataclass(frozen=True)
class DuplicateResult:
    """Duplicate clusters of one frame.

    ``clusters``: rows of clusters with two or more members: cluster_id, id, exact_group,
    kind (exact | near), similarity (to the representative), is_representative, and the
    label when a label column was given; sorted by cluster_id, id. Given (``members``) as
    the frame, or as a `MemberRows` that builds it when ``clusters`` is first read, then
    kept: a night's later steps seldom read every member row (the leakage join only when
    a cluster spans splits, the warehouse only when it stores a run whole).
    ``cluster_of``: every input row: id, cluster_id, cluster_size (1 for singletons).
    ``conflicts``: clusters whose members carry more than one label: cluster_id,
    cluster_size, n_labels, labels (sorted).
    """

    members: pl.DataFrame | MemberRows
    cluster_of: pl.DataFrame
    conflicts: pl.DataFrame
    summary: dict[str, Any] = field(default_factory=dict)
    # every cluster as `largest` gives them, counted from the keys (None: from `clusters`)
    sizes: pl.DataFrame | None = None
    # a night's member rows whose warehouse row differs from the kept run's, a null kind
    # for an old member in no cluster now (`duplicate_rows.record_duplicates`); None: unknown
    changed: pl.DataFrame | None = None

    @property
    def clusters(self) -> pl.DataFrame:
        """The member rows (class docstring), built on the first read when given lazily."""
        members = self.members
        if not isinstance(members, pl.DataFrame):
            members = members()
            object.__setattr__(self, "members", members)  # built once, then kept
        return members

    def without_rows(self) -> DuplicateResult:
        """The frames emptied (their schema kept, the member rows not built), with the
        summary: what the metrics and the report read (`labelgate.results.brief`)."""
        return DuplicateResult(pl.DataFrame(schema=self.members.schema),
                               self.cluster_of.clear(), self.conflicts.clear(), self.summary)

    def largest(self, n: int = 10) -> pl.DataFrame:
        """The ``n`` biggest clusters: cluster_id, cluster_size, exact_rows, near_rows."""
        if self.sizes is not None:
            return self.sizes.head(n)
        if self.clusters.is_empty():
            return pl.DataFrame(
                schema={"cluster_id": self.cluster_of.schema["cluster_id"],
                        "cluster_size": pl.UInt32, "exact_rows": pl.UInt32,
                        "near_rows": pl.UInt32}
            )
        return (
            self.clusters.group_by("cluster_id")
            .agg(
                pl.len().alias("cluster_size"),
                (pl.col("kind") == "exact").sum().cast(pl.UInt32).alias("exact_rows"),
                (pl.col("kind") == "near").sum().cast(pl.UInt32).alias("near_rows"),
            )
            .sort(["cluster_size", "cluster_id"], descending=[True, False])
            .head(n)
        )


def lsh_bands(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows per band) minimising false positive + false negative area at threshold."""
    s = np.linspace(0.0, 1.0, 2001)
    best = (1, num_perm)
    best_err = float("inf")
    for b in range(1, num_perm + 1):
        for r in range(1, num_perm // b + 1):
            p = 1.0 - (1.0 - s**r) ** b
            fp = np.trapezoid(np.where(s <= threshold, p, 0.0), s)
            fn = np.trapezoid(np.where(s >= threshold, 1.0 - p, 0.0), s)
            if fp + fn < best_err:
                best_err = float(fp + fn)
                best = (b, r)
    return best


def _check_columns(df: pl.DataFrame, columns: Sequence[str], role: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise InputError(
            f"dedup: {role} column(s) {missing} not in the frame; it has {df.columns}"
        )


def _check_dedup_input(
    df: pl.DataFrame,
    *,
    id_column: str,
    text_columns: Sequence[str],
    label_column: str | None,
    threshold: float,
    shingle: int,
    num_perm: int,
) -> None:
    """Raise an InputError for missing columns, bad settings, or null / repeated ids.

    Parameters
    ----------
    df : pl.DataFrame
        The frame to deduplicate.
    id_column, text_columns, label_column
        Its columns (the id must be unique and non-null).
    threshold, shingle, num_perm
        Near-duplicate settings: threshold in (0, 1], shingle >= 1, num_perm >= 2.
    """
    if not text_columns:
        raise InputError("dedup: text_columns is empty; expected at least one text column")
    _check_columns(df, [id_column], "id")
    _check_columns(df, list(text_columns), "text")
    if label_column is not None:
        _check_columns(df, [label_column], "label")
    if not 0.0 < threshold <= 1.0:
        raise InputError(f"dedup.near.threshold is {threshold}; expected a value in (0, 1]")
    if shingle < 1:
        raise InputError(f"dedup.near.shingle is {shingle}; expected an integer >= 1")
    if num_perm < 2:
        raise InputError(f"dedup.near.num_perm is {num_perm}; expected an integer >= 2")
    ids = df.get_column(id_column)
    if ids.null_count():
        raise InputError(f"dedup: id column {id_column!r} has {ids.null_count()} null(s)")
    if ids.n_unique() != df.height:
        raise InputError(
            f"dedup: id column {id_column!r} has {df.height - ids.n_unique()} repeated "
            "value(s); expected unique ids"
        )


def _keyed_rows(
    df: pl.DataFrame,
    *,
    id_column: str,
    text_columns: Sequence[str],
    label_column: str | None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Each row's key number, and the distinct normalized keys numbered in key order.

    The texts are normalized `_KEY_CHUNK` rows at a time and a row keeps a 64-bit hash of
    its key, not the key, so the rows' texts are never all held twice; the distinct keys
    are numbered once. Two distinct keys with one hash (checked) fall back to matching the
    keys themselves.

    Parameters
    ----------
    df : pl.DataFrame
        The frame to deduplicate (n rows).
    id_column, text_columns, label_column
        Its id, text and optional label columns.

    Returns
    -------
    tuple[pl.DataFrame, pl.DataFrame]
        ``rows``: n rows of id[, label], k (in the frame's order). ``keys``: one row per
        distinct key (k, key, exact_group = smallest id with that key), sorted by key, so
        the numbering does not depend on row order.
    """
    columns = [pl.col(id_column).alias("id"),
               *([pl.col(label_column).alias("label")] if label_column is not None else [])]
    rows_parts, key_parts = [], []
    for start in range(0, df.height, _KEY_CHUNK):
        part = df.slice(start, _KEY_CHUNK)
        key = _normalize_series(_joined_text(part, text_columns))
        h = key.hash(seed=0).alias("_h")
        rows_parts.append(part.select(*columns).with_columns(h))
        distinct_part = pl.DataFrame([h, key]).unique()
        key_parts.append(distinct_part.with_columns(_compacted(distinct_part.get_column("key"))))
    if not rows_parts:
        return _keyed_rows_by_text(df, columns, text_columns)
    distinct = pl.concat(key_parts).unique()
    if distinct.get_column("_h").n_unique() != distinct.height:  # a hash collision
        return _keyed_rows_by_text(df, columns, text_columns)
    rows = pl.concat(rows_parts)
    keys = (
        distinct.join(rows.group_by("_h").agg(pl.col("id").min().alias("exact_group")),
                      on="_h")
        .sort("key")
        .with_row_index("k")
    )
    k = _key_numbers(rows.get_column("_h"), keys.get_column("_h"), keys.get_column("k"))
    return rows.drop("_h").with_columns(k), keys.select("k", "key", "exact_group")


def _key_numbers(row_h: pl.Series, key_h: pl.Series, k: pl.Series) -> pl.Series:
    """Each row's key number: its hash found among the distinct keys' hashes (unique;
    sorted once) by a binary search, not a join over every row."""
    hashes = key_h.to_numpy()
    order = np.argsort(hashes, kind="stable")
    at = np.searchsorted(hashes[order], row_h.to_numpy())
    return pl.Series("k", k.to_numpy()[order][at], dtype=k.dtype)


def _compacted(s: pl.Series) -> pl.Series:
    """``s`` (String) with its own bytes: a few strings picked out of a large chunk of texts
    otherwise keep the whole chunk's buffers alive (docs/benchmarks/memory.md)."""
    out = pl.from_arrow(s.to_arrow(compat_level=pl.CompatLevel.oldest()))
    assert isinstance(out, pl.Series)
    return out.alias(s.name)


def _joined_text(df: pl.DataFrame, text_columns: Sequence[str]) -> pl.Series:
    """The text columns of each row joined with U+001F (nulls as empty text)."""
    return df.select(
        pl.concat_str(
            [pl.col(c).cast(pl.String).fill_null("") for c in text_columns], separator=_JOIN
        ).alias("key")
    ).get_column("key")


def _keyed_rows_by_text(
    df: pl.DataFrame, columns: list[pl.Expr], text_columns: Sequence[str]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """`_keyed_rows` matching each row's normalized key itself (every text held)."""
    rows = df.select(*columns).with_columns(_normalize_series(_joined_text(df, text_columns)))
    keys = (
        rows.group_by("key")
        .agg(pl.col("id").min().alias("exact_group"))
        .sort("key")
        .with_row_index("k")
    )
    rows = rows.join(keys.select("key", "k"), on="key", how="left",
                     maintain_order="left").drop("key")
    return rows, keys


@dataclass(frozen=True)
class _NearPairs:
    """Verified near-duplicate pairs of distinct keys, and the MinHash signatures."""

    a: I64Array  # (n_pairs,): key number of one side
    b: I64Array  # (n_pairs,): key number of the other
    signatures: U32Matrix | None  # (n_keys, num_perm); None when near matching did not run
    stats: dict[str, Any]  # bands, rows_per_band, candidate_pairs, verified_pairs


def _near_pairs(
    keys: pl.Series,
    *,
    near: bool,
    threshold: float,
    shingle: int,
    num_perm: int,
    seed: int,
    mapper: Mapper,
) -> _NearPairs:
    """MinHash LSH candidates among the distinct keys, kept when the estimate >= threshold.

    Parameters
    ----------
    keys : pl.Series
        The distinct normalized keys (n_keys), in key-number order.
    near : bool
        False: no near matching (no pairs, no signatures).
    threshold, shingle, num_perm, seed, mapper
        As in ``find_duplicates``.

    Returns
    -------
    _NearPairs
        Pair arrays of equal length, signatures of shape (n_keys, num_perm) or None, and
        the LSH counts for the summary (all 0 when near matching did not run).
    """
    empty: I64Array = np.empty(0, dtype=np.int64)
    if not (near and keys.len() > 1):
        return _NearPairs(a=empty, b=empty, signatures=None,
                          stats={"bands": 0, "rows_per_band": 0, "candidate_pairs": 0,
                                 "verified_pairs": 0})
    sigs, has_text = _signatures(keys, shingle=shingle, num_perm=num_perm, seed=seed,
                                 mapper=mapper)
    bands, per_band = lsh_bands(threshold, num_perm)
    cand = _candidate_pairs(sigs, has_text, bands=bands, rows=per_band)
    sim = _estimated_jaccard(sigs, cand[:, 0], cand[:, 1])
    keep = sim >= threshold
    return _NearPairs(
        a=cand[keep, 0], b=cand[keep, 1], signatures=sigs,
        stats={"bands": bands, "rows_per_band": per_band, "candidate_pairs": len(cand),
               "verified_pairs": int(keep.sum())},
    )


def _label_conflicts(
    clusters: pl.DataFrame, *, id_dtype: pl.DataType, with_label: bool
) -> pl.DataFrame:
    """Clusters whose members carry more than one distinct (non-null) label.

    Parameters
    ----------
    clusters : pl.DataFrame
        ``_cluster_members`` output.
    id_dtype : pl.DataType
        The id column's dtype (for the empty frame's cluster_id).
    with_label : bool
        Whether ``clusters`` has a label column; False: no conflicts.

    Returns
    -------
    pl.DataFrame
        cluster_id, cluster_size, n_labels, labels (sorted), one row per conflicting
        cluster, sorted by cluster_id.
    """
    if with_label and clusters.height:
        return (
            clusters.group_by("cluster_id")
            .agg(
                pl.len().cast(pl.UInt32).alias("cluster_size"),
                pl.col("label").cast(pl.String).drop_nulls().unique().sort().alias("labels"),
            )
            .with_columns(pl.col("labels").list.len().cast(pl.UInt32).alias("n_labels"))
            .filter(pl.col("n_labels") > 1)
            .select("cluster_id", "cluster_size", "n_labels", "labels")
            .sort("cluster_id")
        )
    return pl.DataFrame(schema={"cluster_id": id_dtype, "cluster_size": pl.UInt32,
                                "n_labels": pl.UInt32, "labels": pl.List(pl.String)})


def _cluster_summary(
    clusters: pl.DataFrame, conflicts: pl.DataFrame, *, n_rows: int, n_keys: int
) -> dict[str, Any]:
    """Row, text and cluster counts for the summary.

    Parameters
    ----------
    clusters, conflicts : pl.DataFrame
        ``_cluster_members`` and ``_label_conflicts`` output.
    n_rows, n_keys : int
        Input rows and distinct normalized texts.

    Returns
    -------
    dict[str, Any]
        rows, distinct_texts, rows_in_clusters, clusters, duplicate_rows, exact_rows,
        near_rows, conflicting_clusters.
    """
    n_clusters = clusters.get_column("cluster_id").n_unique() if clusters.height else 0
    return {
        "rows": n_rows,
        "distinct_texts": n_keys,
        "rows_in_clusters": clusters.height,
        "clusters": n_clusters,
        "duplicate_rows": clusters.height - n_clusters,  # rows beyond one per cluster
        "exact_rows": int((clusters.get_column("kind") == "exact").sum()),
        "near_rows": int((clusters.get_column("kind") == "near").sum()),
        "conflicting_clusters": conflicts.height,
    }


def find_duplicates(
    df: pl.DataFrame,
    *,
    id_column: str,
    text_columns: Sequence[str],
    label_column: str | None = None,
    near: bool = True,
    threshold: float = 0.9,
    shingle: int = 5,
    num_perm: int = 128,
    seed: int = 13,
    mapper: Mapper = serial_map,
) -> DuplicateResult:
    """Exact (normalized key) and near (MinHash LSH) duplicate clusters of ``df``.

    ``id_column`` must be unique and non-null. See the module docstring for the rules.
    ``mapper`` runs the MinHash shards (`labelgate.partition`).
    """
    if isinstance(text_columns, str):
        text_columns = [text_columns]
    settings = DedupSettings(id_column=id_column, text_columns=list(text_columns),
                             label_column=label_column, near=near, threshold=threshold,
                             shingle=shingle, num_perm=num_perm, seed=seed)
    return find_duplicates_keeping(df, settings, mapper=mapper)[0]


@dataclass(frozen=True)
class DedupSettings:
    """The columns and near-duplicate settings of `find_duplicates`."""

    id_column: str
    text_columns: Sequence[str]
    label_column: str | None = None
    near: bool = True
    threshold: float = 0.9
    shingle: int = 5
    num_perm: int = 128
    seed: int = 13


@dataclass(frozen=True)
class KeyGraph:
    """What a run's clusters are made of, for the next run to build on
    (`labelgate.stages.dedup_incremental`): each row's key number, the distinct keys in key
    order, their MinHash signatures (None: near matching off) and the verified near pairs."""

    rows: pl.DataFrame  # id, k (Int64); kept: also r (place in id order) and h (row hash)
    keys: pl.Series  # the distinct normalized keys, sorted; k is the position
    signatures: U32Matrix | None  # (n_keys, num_perm)
    edges: npt.NDArray[np.int64]  # (n_pairs, 2), a < b
    # per key: cluster_id (text; null: in no cluster), exact, similarity (None: not kept)
    values: pl.DataFrame | None = None
    # the LSH (bands, rows per band) of its settings (`lsh_bands`), when near matching
    # computed them: a night takes them from the kept graph (None: computed again)
    bands: tuple[int, int] | None = None


def find_duplicates_keeping(
    df: pl.DataFrame, settings: DedupSettings, *, mapper: Mapper = serial_map
) -> tuple[DuplicateResult, KeyGraph]:
    """`find_duplicates`, and the `KeyGraph` a later run builds on."""
    text_columns = list(settings.text_columns)
    id_column, label_column = settings.id_column, settings.label_column
    near, threshold, shingle = settings.near, settings.threshold, settings.shingle
    num_perm, seed = settings.num_perm, settings.seed
    _check_dedup_input(df, id_column=id_column, text_columns=text_columns,
                       label_column=label_column, threshold=threshold, shingle=shingle,
                       num_perm=num_perm)
    base, keys = _keyed_rows(df, id_column=id_column, text_columns=text_columns,
                             label_column=label_column)
    pairs = _near_pairs(keys.get_column("key"), near=near, threshold=threshold,
                        shingle=shingle, num_perm=num_perm, seed=seed, mapper=mapper)
    result, values = _assembled(base, _components(keys.height, pairs.a, pairs.b),
                                pairs.signatures, settings, stats=pairs.stats)
    sigs = pairs.signatures
    if near and sigs is None:
        sigs, _ = _signatures(keys.get_column("key"), shingle=shingle, num_perm=num_perm,
                              seed=seed, mapper=mapper)
    graph = KeyGraph(rows=base.select("id", pl.col("k").cast(pl.Int64)),
                     keys=keys.get_column("key"), signatures=sigs,
                     edges=np.stack([pairs.a, pairs.b], axis=1).astype(np.int64),
                     values=values, bands=_bands_of(pairs.stats))
    return result, graph


def _bands_of(stats: dict[str, Any]) -> tuple[int, int] | None:
    """The (bands, rows per band) a near pass's ``stats`` name (None: it computed none)."""
    bands, per = int(stats.get("bands", 0)), int(stats.get("rows_per_band", 0))
    return (bands, per) if bands > 0 and per > 0 else None


def _assembled(rows: pl.DataFrame, comp: I64Array, signatures: U32Matrix | None,
               settings: DedupSettings, *, stats: dict[str, Any]
               ) -> tuple[DuplicateResult, pl.DataFrame]:
    """The clusters of ``rows`` (`_keyed_rows`' rows: id[, label], k) from each key's
    connected component (``comp``), and each key's values in them (`KeyGraph.values`), by
    `dedup_incremental.assemble`: integer sorts and
    gathers over each row's key number and place in id order, the ids gathered only into
    the outputs (no per-row frame of joins and windows over every row)."""
    from labelgate.stages.dedup_incremental import assemble  # it builds on this module

    ids = rows.get_column("id")
    rank = np.empty(len(ids), dtype=np.int64)
    rank[ids.arg_sort().to_numpy()] = np.arange(len(ids), dtype=np.int64)
    labels = rows.get_column("label") if "label" in rows.columns else None
    row_k = rows.get_column("k").to_numpy().astype(np.int64)
    return assemble(ids, labels, rank, row_k, comp, signatures, settings, stats=stats)


def settings_summary(s: DedupSettings) -> dict[str, Any]:
    """The settings part of a `DuplicateResult.summary`."""
    return {"threshold": s.threshold, "shingle": s.shingle, "num_perm": s.num_perm,
            "seed": s.seed, "near": s.near}


def _components(n: int, a: I64Array, b: I64Array) -> I64Array:
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if n == 0:
        return np.empty(0, dtype=np.int64)
    graph = coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    out: I64Array = np.asarray(labels, dtype=np.int64)
    return out


def keep_cluster_members(
    df: pl.DataFrame,
    *,
    id_column: str,
    cluster_of: pl.DataFrame,
    keep: str = "all",
    split_column: str | None = None,
    splits: Sequence[str] = ("train",),
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The spec's policy for duplicate clusters: ``keep`` = ``all`` members, or ``one`` per
    cluster (the smallest id present in ``df``; the rest excluded with a reason). With
    ``split_column``, the policy applies only to rows in ``splits`` (default train; clusters
    never straddle splits, so a cluster is in one split). Returns (kept, excluded); excluded
    carries ``exclusion_policy`` and ``exclusion_reason``.
    """
    if keep not in ("all", "one"):
        raise InputError(f"dedup.keep is {keep!r}; expected 'all' or 'one'")
    _check_columns(df, [id_column, *([split_column] if split_column else [])], "id/split")
    _check_columns(cluster_of, ["id", "cluster_id"], "cluster_of")
    if keep == "all":
        return df, df.clear().with_columns(
            pl.lit("dedup.keep=all").alias("exclusion_policy"),
            pl.lit("", pl.String).alias("exclusion_reason"),
        )
    cid = df.select(pl.col(id_column)).join(
        cluster_of.select(pl.col("id").alias(id_column), "cluster_id"), on=id_column,
        how="left",
    ).get_column("cluster_id")
    applies = pl.lit(True) if split_column is None else pl.col(split_column).is_in(list(splits))
    marked = df.with_columns(cid.alias("_cluster")).with_columns(
        pl.col(id_column).min().over("_cluster").alias("_kept")
    )
    drop = (pl.col(id_column) != pl.col("_kept")).fill_null(False) & applies
    excluded = marked.filter(drop).with_columns(
        pl.lit("dedup.keep=one").alias("exclusion_policy"),
        pl.format("duplicate of {} (dedup.keep=one)", pl.col("_kept").cast(pl.String))
        .alias("exclusion_reason"),
    ).select(*df.columns, "exclusion_policy", "exclusion_reason")
    return marked.filter(~drop).select(df.columns), excluded
