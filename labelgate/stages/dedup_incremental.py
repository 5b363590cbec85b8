"""Dedup on a night that adds rows: only the new rows' texts are normalized and hashed, and
queried against the MinHash signatures and LSH buckets a run kept (`KeyGraph`).

The clusters are the ones a full run (`labelgate.stages.dedup.find_duplicates`) gives on the
same rows, by construction:

- a kept row keeps its key number; a new row's normalized key is looked up among the kept
  keys (an exact duplicate of an old text joins that key), and only keys never seen before
  get signatures;
- LSH is queried band by band: the buckets a new key falls in are ordered as a full run
  orders them (bucket, then key order) and every pair within the window that involves a
  new key is a candidate, verified against the threshold;
- a full run pairs the rows of a bucket with more than 33 keys only with their ``_WINDOW``
  neighbours, so a new key inserted between two old keys can push an old pair out of the
  window. Such pairs are found (old window minus merged window, per touched bucket) and an
  old near pair is dropped when no band pairs it any more, exactly as a full run would;
- the connected components are computed again over every key (cheap: one node per
  distinct text), so a new row that joins two old clusters merges them and the cluster id
  is the smallest id of the merged cluster.

A run falls back to a full pass when nothing is kept for its settings, a kept row changed
(id, text or label) or is gone, or the share of new rows is above ``max_new_share``
(`plan_update`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from labelgate.errors import InputError
from labelgate.partition import Mapper, serial_map
from labelgate.stages import dedup as dd
from labelgate.stages.dedup import DedupSettings, DuplicateResult, KeyGraph

__all__ = ["DedupPlan", "DedupSettings", "detect", "plan_update", "refresh_account",
           "row_hashes", "update_duplicates"]

I64Array = npt.NDArray[np.int64]
_EMPTY_PAIRS = np.empty((0, 2), dtype=np.int64)


@dataclass(frozen=True)
class DedupPlan:
    """Whether a run builds on the kept graph, why, and which of its rows are new."""

    incremental: bool
    reason: str
    new: npt.NDArray[np.bool_]  # (n,) per row of the run
    kept_k: I64Array  # (n,) the kept key number of an old row, -1 for a new one
    kept_r: I64Array  # (n,) an old row's place in the kept run's id order, -1 for a new one
    new_share: float


def row_hashes(df: pl.DataFrame, settings: DedupSettings) -> pl.Series:
    """A hash (UInt64, ``h``) of each row's id, text columns and label: a kept row whose
    hash differs changed."""
    s = settings
    used = list(dict.fromkeys([s.id_column, *s.text_columns,
                               *([s.label_column] if s.label_column else [])]))
    return df.select(pl.col(c).cast(pl.String) for c in used).hash_rows(seed=0).alias("h")


def plan_update(
    df: pl.DataFrame,
    h: pl.Series,
    kept: KeyGraph | None,
    *,
    id_column: str,
    max_new_share: float | None,
) -> DedupPlan:
    """Build on ``kept`` (its ``rows`` carry id, k and h) or run a full pass.

    Parameters
    ----------
    df : pl.DataFrame, n rows
        This run's rows.
    h : pl.Series, n
        `row_hashes` of ``df``.
    kept : KeyGraph, optional
        What the latest run with the same settings kept (None: nothing).
    id_column : str
        The id column of ``df``.
    max_new_share : float, optional
        A full pass when more than this share of the rows is new (None: always full).

    Returns
    -------
    DedupPlan
    """
    n = df.height
    full_new = np.ones(n, dtype=bool)
    no_k = np.full(n, -1, dtype=np.int64)
    if kept is None or max_new_share is None:
        why = "dedup.refresh is off" if max_new_share is None else "nothing kept for these settings"
        return DedupPlan(False, why, full_new, no_k, no_k, 1.0 if n else 0.0)
    ids = df.get_column(id_column)
    if kept.rows.schema["id"] != ids.dtype:
        return DedupPlan(False, "the id column's type changed", full_new, no_k, no_k, 1.0)
    kept_k, kept_r, kept_h = _match_kept(ids, kept.rows)
    old = kept_k >= 0
    n_old = int(old.sum())
    changed = int((h.to_numpy()[old] != kept_h[old]).sum())
    removed = kept.rows.height - n_old
    share = (n - n_old) / n if n else 0.0
    reason = ""
    if removed < 0:
        reason = "repeated ids"
    elif changed:
        reason = f"{changed:,} kept row(s) changed (text, label or id)"
    elif removed:
        reason = f"{removed:,} kept row(s) are gone"
    elif share > max_new_share:
        reason = f"{share:.1%} of the rows are new (dedup.refresh.max_new_share {max_new_share})"
    if reason:
        return DedupPlan(False, reason, full_new, no_k, no_k, share)
    return DedupPlan(True, f"{n - n_old:,} new row(s) queried against {n_old:,} kept",
                     ~old, kept_k, kept_r, share)


def _match_kept(
    ids: pl.Series, kept: pl.DataFrame
) -> tuple[I64Array, I64Array, npt.NDArray[np.uint64]]:
    """Per row of this run: the kept row's k, r and h (-1, -1, 0 for an id not kept).
    When the kept rows come first and in the same order (a night that appends a batch), a
    comparison of the ids, else a join on the id."""
    n, n_kept = len(ids), kept.height
    if n >= n_kept and ids.head(n_kept).equals(kept.get_column("id"), check_names=False):
        cols = kept
    else:
        cols = pl.DataFrame({"id": ids}).join(kept.select("id", "k", "r", "h"), on="id",
                                              how="left", maintain_order="left")
    k, r = np.full(n, -1, dtype=np.int64), np.full(n, -1, dtype=np.int64)
    h = np.zeros(n, dtype=np.uint64)
    for out, c, missing in ((k, "k", -1), (r, "r", -1), (h, "h", 0)):
        col = cols.get_column(c)
        out[: len(col)] = col.fill_null(missing).to_numpy()
    return k, r, h


def update_duplicates(
    df: pl.DataFrame,
    kept: KeyGraph,
    plan: DedupPlan,
    settings: DedupSettings,
    *,
    mapper: Mapper = serial_map,
) -> tuple[DuplicateResult, KeyGraph]:
    """The clusters of ``df`` (as `find_duplicates` gives them) from ``kept`` and the new
    rows of ``plan``, and the graph this run keeps (its ``rows``: id and k)."""
    s = settings
    n_old = kept.keys.len()
    fresh = df.filter(pl.Series(plan.new))
    dd._check_dedup_input(fresh, id_column=s.id_column, text_columns=s.text_columns,
                          label_column=s.label_column, threshold=s.threshold,
                          shingle=s.shingle, num_perm=s.num_perm)
    rows_new, keys_new = dd._keyed_rows(fresh, id_column=s.id_column,
                                        text_columns=list(s.text_columns), label_column=None)
    texts = keys_new.get_column("key")
    pos = kept.keys.search_sorted(texts, side="left").to_numpy().astype(np.int64)
    inside = pos < n_old
    found = np.zeros(len(pos), dtype=bool)
    found[inside] = (kept.keys.gather(pos[inside]) == texts.filter(pl.Series(inside))).to_numpy()
    unseen = ~found
    m = int(unseen.sum())
    # a key of a new row: the kept key it equals, else n_old + its place among the unseen
    internal = np.where(found, pos, n_old + np.cumsum(unseen) - 1)
    # the full run's key order, as a number: old key k before the unseen keys it precedes
    code = np.concatenate([np.arange(n_old, dtype=np.int64) * (m + 1) + m,
                           pos[unseen] * (m + 1) + np.arange(m, dtype=np.int64)])
    unseen_keys = texts.filter(pl.Series(unseen))
    sigs, edges, stats = _near_update(kept, unseen_keys, code, s, mapper=mapper)
    comp = dd._components(n_old + m, edges[:, 0], edges[:, 1])
    order = np.argsort(code, kind="stable")
    final = np.empty(n_old + m, dtype=np.int64)
    final[order] = np.arange(n_old + m, dtype=np.int64)
    local = rows_new.get_column("k").to_numpy().astype(np.int64)
    row_k = plan.kept_k.copy()
    row_k[plan.new] = internal[local]
    row_k = final[row_k]
    edges = np.sort(final[edges], axis=1) if len(edges) else _EMPTY_PAIRS
    # in one chunk: a gather of a million ids or labels from a night's few chunks (the
    # kept batch's and the new one's) takes ~20x as long (docs/benchmarks/throughput.md)
    ids = df.get_column(s.id_column).rechunk()
    rank = _id_ranks(ids, plan)
    keys = pl.concat([kept.keys, unseen_keys]).gather(order)
    sigs = sigs[order] if sigs is not None else None
    labels = (df.get_column(s.label_column).rechunk() if s.label_column is not None
              else None)
    result, values = assemble(ids, labels, rank, row_k, comp[order], sigs, s,
                              stats={**stats, "new_texts": m})
    if kept.values is not None:
        result = replace(result, changed=_changed_rows(
            kept.values, values, final[:n_old], plan.new, row_k, ids))
    graph = KeyGraph(rows=pl.DataFrame({"id": ids, "k": row_k, "r": rank}), keys=keys,
                     signatures=sigs, edges=edges, values=values,
                     bands=dd._bands_of(stats))
    return result, graph


def _changed_rows(kept: pl.DataFrame, values: pl.DataFrame, old_keys: I64Array,
                  new: npt.NDArray[np.bool_], row_k: I64Array, ids: pl.Series) -> pl.DataFrame:
    """The warehouse rows (`duplicate_rows.COLUMNS`) of the rows whose row there may differ
    from the kept run's: the new rows in a cluster, and every row of a key whose cluster
    id, kind or similarity changed (a null kind when it is in no cluster now).

    A row's warehouse row is its key's values, and whether its id is the cluster's id: an
    old row of a key whose values did not change has the same row."""
    now = values[old_keys]  # the kept keys' values in this run
    same = np.zeros(values.height, dtype=bool)  # a key new tonight: changed
    same[old_keys] = (kept.get_column("cluster_id").eq_missing(now.get_column("cluster_id"))
                      & (kept.get_column("exact") == now.get_column("exact"))
                      & (kept.get_column("similarity") == now.get_column("similarity"))
                      ).fill_null(False).to_numpy()
    rows = np.flatnonzero(new | ~same[row_k])
    v = values[row_k[rows]]
    cid = v.get_column("cluster_id")
    keep = ~(new[rows] & cid.is_null().to_numpy())  # a new row in no cluster: nothing
    rows, v = rows[keep], v.filter(pl.Series(keep))
    inside = pl.col("cluster_id").is_not_null()
    return v.with_columns(ids.gather(rows).cast(pl.String).alias("id")).select(
        "cluster_id", "id",
        pl.when(inside).then(pl.when("exact").then(pl.lit("exact")).otherwise(pl.lit("near")))
        .alias("kind"),
        pl.when(inside).then("similarity").alias("similarity"),
        pl.when(inside).then(pl.col("id") == pl.col("cluster_id")).alias("is_representative"))


def _id_ranks(ids: pl.Series, plan: DedupPlan) -> I64Array:
    """Each row's place in id order: the kept rows' places with the new ids merged in (no
    sort of the kept ids)."""
    old_rows, new_rows = np.flatnonzero(~plan.new), np.flatnonzero(plan.new)
    kept_r = plan.kept_r[old_rows]
    by_rank = np.empty(len(old_rows), dtype=np.int64)
    by_rank[kept_r] = old_rows
    new_ids = ids.gather(new_rows)
    new_order = new_ids.arg_sort().to_numpy().astype(np.int64)
    old_sorted, new_sorted = ids.gather(by_rank), new_ids.gather(new_order)
    p = old_sorted.search_sorted(new_sorted, side="left").to_numpy().astype(np.int64)
    hit = p < len(old_sorted)  # p: the kept ids below each new id, ascending
    repeated = int((old_sorted.gather(p[hit]) == new_sorted.filter(pl.Series(hit))).sum())
    if repeated:
        raise InputError(f"dedup: id column {ids.name!r} has {repeated} repeated value(s); "
                         "expected unique ids")
    rank = np.empty(len(ids), dtype=np.int64)
    rank[old_rows] = kept_r + np.searchsorted(p, kept_r, side="right")
    rank[new_rows[new_order]] = p + np.arange(len(p), dtype=np.int64)
    return rank


@lru_cache(maxsize=16)
def _bands(threshold: float, num_perm: int) -> tuple[int, int]:
    return dd.lsh_bands(threshold, num_perm)


def _near_update(
    kept: KeyGraph, unseen: pl.Series, code: I64Array, s: DedupSettings, *, mapper: Mapper
) -> tuple[dd.U32Matrix | None, I64Array, dict[str, Any]]:
    """Signatures of every key (kept, then the unseen ones), the near pairs of a full run
    over them (key numbers: kept, then unseen), and the LSH counts of this run."""
    n_old, m = kept.keys.len(), unseen.len()
    zero = {"bands": 0, "rows_per_band": 0, "candidate_pairs": 0,
            "verified_pairs": len(kept.edges), "dropped_pairs": 0}
    if not s.near or kept.signatures is None:
        return None, _EMPTY_PAIRS, zero
    new_sigs = (dd._signatures(unseen, shingle=s.shingle, num_perm=s.num_perm, seed=s.seed,
                               mapper=mapper)[0] if m
                else np.empty((0, s.num_perm), dtype=np.uint32))
    sigs = np.concatenate([kept.signatures, new_sigs])
    # the kept run's (its graph key holds the threshold and num_perm), else computed
    bands, per = kept.bands or _bands(s.threshold, s.num_perm)
    if n_old + m <= 1 or not m:
        return sigs, kept.edges, {**zero, "bands": bands, "rows_per_band": per}
    has_text = np.concatenate([(kept.keys.str.len_bytes() > 0).to_numpy(),
                               (unseen.str.len_bytes() > 0).to_numpy()])
    query = _query_bands(sigs, has_text, code, n_old=n_old, bands=bands, per=per)
    cand = query.new_pairs
    sim = dd._estimated_jaccard(sigs, cand[:, 0], cand[:, 1])
    fresh = cand[sim >= s.threshold]
    dropped = _dropped_edges(kept.edges, query, sigs, has_text, n_old=n_old, per=per)
    old_edges = kept.edges
    if len(dropped):
        n = n_old + m
        gone = np.isin(old_edges[:, 0] * n + old_edges[:, 1], dropped[:, 0] * n + dropped[:, 1])
        old_edges = old_edges[~gone]
    edges = np.concatenate([old_edges, fresh]) if len(fresh) else old_edges
    return sigs, edges, {"bands": bands, "rows_per_band": per, "candidate_pairs": len(cand),
                         "verified_pairs": len(edges), "dropped_pairs": len(dropped)}


@dataclass(frozen=True)
class _Query:
    """Band by band: the buckets new keys fall in, the candidate pairs with a new key, and
    the old pairs a full run pairs (``merged_old``) or no longer pairs (``lost``) there."""

    touched: list[npt.NDArray[np.uint64]]  # per band, the sorted buckets with a new key
    new_pairs: I64Array  # (p, 2), unique, a < b, b a new key
    merged_old: I64Array  # codes a * n + b of old pairs in a touched bucket's window
    lost: I64Array  # codes of old pairs in an old window but not in the merged one


def _query_bands(sigs: dd.U32Matrix, has_text: npt.NDArray[np.bool_], code: I64Array, *,
                 n_old: int, bands: int, per: int) -> _Query:
    """Window pairs of the buckets the new keys fall in, in the full run's order."""
    n = len(sigs)
    idx = np.flatnonzero(has_text).astype(np.int64)
    touched, new_pairs, merged_old, lost = [], [], [], []
    for band in range(bands):
        h = dd.band_hash(sigs[idx, band * per : (band + 1) * per], band)
        buckets = np.unique(h[idx >= n_old])
        touched.append(buckets)
        inb = np.isin(h, buckets)
        members, hm = idx[inb], h[inb]
        merged = dd.window_pairs(hm, code[members], members)
        with_new = merged[:, 1] >= n_old
        new_pairs.append(merged[with_new])
        old_codes = merged[~with_new, 0] * n + merged[~with_new, 1]
        merged_old.append(old_codes)
        if len(hm) and np.unique(hm, return_counts=True)[1].max() > dd._WINDOW + 1:
            old = members < n_old
            before = dd.window_pairs(hm[old], members[old], members[old])
            lost.append(np.setdiff1d(before[:, 0] * n + before[:, 1], old_codes))
    pairs = np.concatenate(new_pairs) if new_pairs else _EMPTY_PAIRS
    codes = np.unique(pairs[:, 0] * n + pairs[:, 1])
    empty = np.empty(0, dtype=np.int64)
    return _Query(
        touched=touched, new_pairs=np.stack([codes // n, codes % n], axis=1),
        merged_old=np.unique(np.concatenate(merged_old)) if merged_old else empty,
        lost=np.unique(np.concatenate(lost)) if lost else empty)


def _dropped_edges(edges: I64Array, query: _Query, sigs: dd.U32Matrix,
                   has_text: npt.NDArray[np.bool_], *, n_old: int, per: int) -> I64Array:
    """The kept near pairs a full run over the merged keys no longer pairs in any band.

    A kept pair lost from a touched bucket's window survives when a touched bucket still
    pairs it (``merged_old``) or an untouched bucket of another band paired it in the kept
    run (its old window there is unchanged)."""
    n = len(sigs)
    if not len(edges) or not len(query.lost):
        return _EMPTY_PAIRS
    codes = edges[:, 0] * n + edges[:, 1]
    risk = np.isin(codes, query.lost) & ~np.isin(codes, query.merged_old)
    left = edges[risk]
    old_idx = np.flatnonzero(has_text[:n_old]).astype(np.int64)
    for band, buckets in enumerate(query.touched):
        if not len(left):
            break
        cols = slice(band * per, (band + 1) * per)
        ha = dd.band_hash(sigs[left[:, 0], cols], band)
        same = (ha == dd.band_hash(sigs[left[:, 1], cols], band)) & ~np.isin(ha, buckets)
        if not same.any():
            continue
        h_old = dd.band_hash(sigs[old_idx, cols], band)
        sel = np.isin(h_old, np.unique(ha[same]))
        sub, hs = old_idx[sel], h_old[sel]
        place = np.zeros(n, dtype=np.int64)
        place[sub[np.lexsort((sub, hs))]] = np.arange(len(sub), dtype=np.int64)
        near = same & (np.abs(place[left[:, 0]] - place[left[:, 1]]) <= dd._WINDOW)
        left = left[~near]
    return left


def assemble(
    ids: pl.Series,
    labels: pl.Series | None,
    rank: I64Array,
    row_k: I64Array,
    comp: I64Array,
    signatures: dd.U32Matrix | None,
    s: DedupSettings,
    *,
    stats: dict[str, Any],
) -> tuple[DuplicateResult, pl.DataFrame]:
    """The `DuplicateResult` from each row's place in id order (``rank``), key number and
    each key's component: exact group, cluster id, representative and similarity per key,
    then integer sorts and gathers over the rows (no string sort); and each key's values
    (`KeyGraph.values`)."""
    n, n_keys = len(ids), len(comp)
    order = np.empty(n, dtype=np.int64)
    order[rank] = np.arange(n, dtype=np.int64)
    by_rank = ids.gather(order)
    top = np.iinfo(np.int64).max
    by_id = row_k[order]  # the rows' keys in id order: a key's first place is its min rank
    first = pl.Series(by_id).arg_unique().to_numpy()  # (np.minimum.at: ~3x as long)
    key_min = np.full(n_keys, top, dtype=np.int64)
    key_min[by_id[first]] = first
    n_comp = int(comp.max()) + 1 if n_keys else 0
    comp_min = np.full(n_comp, top, dtype=np.int64)
    np.minimum.at(comp_min, comp, key_min)
    per_key = np.bincount(row_k, minlength=n_keys)
    comp_n = np.bincount(comp, weights=per_key, minlength=n_comp).astype(np.int64)
    rep_key = key_min == comp_min[comp]  # the key holding its cluster's smallest id
    rep_k = np.empty(n_comp, dtype=np.int64)
    rep_k[comp[rep_key]] = np.flatnonzero(rep_key)
    sim = np.ones(n_keys)
    near = ~rep_key & (comp_n[comp] > 1)
    if signatures is not None and near.any():
        sim[near] = dd._estimated_jaccard(signatures, np.flatnonzero(near), rep_k[comp[near]])
    c = comp[row_k]
    size, crank = comp_n[c], comp_min[c]
    member = np.flatnonzero(size > 1)  # in row order: the counts need no order
    mk = row_k[member]
    member_labels = labels.gather(member) if labels is not None else None
    clusters = ClusterMembers(ids, labels, by_rank, rank, crank, row_k, member, key_min,
                          rep_key, sim)
    cluster_of = pl.DataFrame([by_rank.alias("id"), by_rank.gather(crank[order]).alias(
        "cluster_id"), pl.Series("cluster_size", size[order], dtype=pl.UInt32)])
    exact_n = np.bincount(comp, weights=per_key * rep_key, minlength=n_comp).astype(np.int64)
    sizes = _cluster_sizes(by_rank, comp_n, exact_n, comp_min)
    conflicts = _conflicts_by_cluster(member_labels, c[member], by_rank, comp_n, comp_min,
                                      id_dtype=ids.dtype)
    n_exact, n_members = int(rep_key[mk].sum()), len(member)
    summary: dict[str, Any] = {
        "rows": n, "distinct_texts": n_keys, "rows_in_clusters": n_members,
        "clusters": sizes.height, "duplicate_rows": n_members - sizes.height,
        "exact_rows": n_exact, "near_rows": n_members - n_exact,
        "conflicting_clusters": conflicts.height,
        **dd.settings_summary(s), **stats,
    }
    result = DuplicateResult(members=clusters, cluster_of=cluster_of, conflicts=conflicts,
                             summary=summary, sizes=sizes)
    summary["largest"] = result.largest(5).select("cluster_id", "cluster_size").rows()
    values = pl.DataFrame([
        by_rank.gather(comp_min[comp]).cast(pl.String).alias("cluster_id"),
        pl.Series("exact", rep_key), pl.Series("similarity", sim, dtype=pl.Float64),
    ]).with_columns(pl.when(pl.Series(comp_n[comp] > 1)).then("cluster_id").alias("cluster_id"))
    return result, values


@dataclass(frozen=True, eq=False)  # compared and hashed by identity (it holds arrays)
class ClusterMembers:
    """`DuplicateResult.clusters`, built when first read (`dedup.MemberRows`): from each
    row's id, label, place in id order (``rank``), key and its cluster's smallest place
    (``crank``), the rows in a cluster of two or more (``member``, in row order) and each
    key's smallest place, exactness and similarity. The members are ordered by cluster,
    then id, by an integer sort (no string sort)."""

    ids: pl.Series
    labels: pl.Series | None
    by_rank: pl.Series  # the ids in id order
    rank: I64Array
    crank: I64Array
    row_k: I64Array
    member: I64Array
    key_min: I64Array
    rep_key: npt.NDArray[np.bool_]
    sim: npt.NDArray[np.float64]

    @property
    def schema(self) -> pl.Schema:
        return replace(self, member=self.member[:0])().schema

    def __call__(self) -> pl.DataFrame:
        n, member, rank, crank = len(self.ids), self.member, self.rank, self.crank
        m = member[np.argsort(crank[member] * n + rank[member])]  # unique keys
        mk = self.row_k[m]
        labels = self.labels.gather(m) if self.labels is not None else None
        return pl.DataFrame([
            self.by_rank.gather(crank[m]).alias("cluster_id"), self.ids.gather(m).alias("id"),
            self.by_rank.gather(self.key_min[mk]).alias("exact_group"),
            pl.Series("exact", self.rep_key[mk]),
            pl.Series("similarity", self.sim[mk], dtype=pl.Float64),
            pl.Series("is_representative", rank[m] == crank[m]),
            *([labels.alias("label")] if labels is not None else []),
        ]).select(
            "cluster_id", "id", "exact_group",
            pl.when("exact").then(pl.lit("exact")).otherwise(pl.lit("near")).alias("kind"),
            "similarity", "is_representative", *(["label"] if labels is not None else []))


def _cluster_sizes(by_rank: pl.Series, comp_n: I64Array, exact_n: I64Array,
                   comp_min: I64Array) -> pl.DataFrame:
    """Every cluster of two or more rows (`DuplicateResult.largest`'s columns), biggest
    first, then by cluster_id: counted per component, not grouped over the member rows."""
    cl = np.flatnonzero(comp_n > 1)
    cl = cl[np.lexsort((comp_min[cl], -comp_n[cl]))]
    return pl.DataFrame([
        by_rank.gather(comp_min[cl]).alias("cluster_id"),
        pl.Series("cluster_size", comp_n[cl], dtype=pl.UInt32),
        pl.Series("exact_rows", exact_n[cl], dtype=pl.UInt32),
        pl.Series("near_rows", comp_n[cl] - exact_n[cl], dtype=pl.UInt32)])


def _conflicts_by_cluster(labels: pl.Series | None, comp: I64Array, by_rank: pl.Series,
                          comp_n: I64Array, comp_min: I64Array, *,
                          id_dtype: pl.DataType) -> pl.DataFrame:
    """`dedup._label_conflicts` from the member rows' labels and components: the distinct
    (component, label) pairs by an integer unique, the lists built for the conflicting
    clusters only."""
    empty = dd._label_conflicts(pl.DataFrame(), id_dtype=id_dtype, with_label=False)
    if labels is None or not len(comp):
        return empty
    text = labels.cast(pl.String)
    names = text.drop_nulls().unique().sort()
    if names.len() < 2:
        return empty
    code = text.cast(pl.Enum(names.to_list())).to_physical()
    has = code.is_not_null().to_numpy()
    n_names = names.len()
    both = comp[has] * n_names + code.fill_null(0).to_numpy().astype(np.int64)[has]
    span = len(comp_n) * n_names
    if span <= 4 * len(both):  # the pairs present, in order, without a sort
        seen = np.zeros(span, dtype=bool)
        seen[both] = True
        pairs = np.flatnonzero(seen)
    else:
        pairs = np.unique(both)
    pc, pl_code = pairs // n_names, pairs % n_names  # sorted by component, then label
    n_labels = np.bincount(pc, minlength=len(comp_n))
    conflicting = n_labels[pc] > 1
    if not conflicting.any():
        return empty
    lists = (pl.DataFrame([pl.Series("c", pc[conflicting]),
                           names.gather(pl_code[conflicting]).alias("labels")])
             .group_by("c", maintain_order=True).agg("labels"))  # pairs sorted: labels too
    cl = lists.get_column("c").to_numpy()
    by_id = np.argsort(comp_min[cl], kind="stable")
    cl = cl[by_id]
    return pl.DataFrame([
        by_rank.gather(comp_min[cl]).alias("cluster_id"),
        pl.Series("cluster_size", comp_n[cl], dtype=pl.UInt32),
        pl.Series("n_labels", n_labels[cl], dtype=pl.UInt32),
        lists.get_column("labels").gather(by_id)])


def detect(
    df: pl.DataFrame,
    settings: DedupSettings,
    *,
    kept: KeyGraph | None,
    max_new_share: float | None,
    mapper: Mapper = serial_map,
) -> tuple[DuplicateResult, KeyGraph, DedupPlan]:
    """This run's clusters, built on ``kept`` when `plan_update` allows it, else a full
    pass; and the graph it keeps for the next (``rows``: id, k and h, in ``df``'s order)."""
    s = settings
    h = row_hashes(df, s)
    plan = plan_update(df, h, kept, id_column=s.id_column, max_new_share=max_new_share)
    if plan.incremental and kept is not None:
        result, graph = update_duplicates(df, kept, plan, s, mapper=mapper)
        rows = graph.rows.with_columns(h).select("id", "k", "r", "h")
    else:
        result, graph = dd.find_duplicates_keeping(df, s, mapper=mapper)
        ids = df.get_column(s.id_column)
        rank = np.empty(len(ids), dtype=np.int64)
        rank[ids.arg_sort().to_numpy()] = np.arange(len(ids), dtype=np.int64)
        rows = _rows_in_order(pl.DataFrame({"id": ids, "h": h, "r": rank}), graph.rows)
    return result, replace(graph, rows=rows), plan


def _rows_in_order(rows: pl.DataFrame, keyed: pl.DataFrame) -> pl.DataFrame:
    """``rows`` (id, h, r; unique ids) with ``keyed``'s key number k: id, k, r, h.

    ``find_duplicates_keeping`` gives its rows in the input's order; then k is taken as
    it stands, without a join on every id (docs/benchmarks/memory.md)."""
    ids = rows.get_column("id")
    if keyed.height == rows.height and keyed.get_column("id").equals(ids):
        return rows.with_columns(keyed.get_column("k")).select("id", "k", "r", "h")
    return rows.join(keyed, on="id", how="left", maintain_order="left").select(
        "id", "k", "r", "h")


def refresh_account(plan: DedupPlan, *, kept_from: str | None, rows: int) -> dict[str, Any]:
    """The report's and the gate's view: whether the run built on a kept graph."""
    new_rows = int(plan.new.sum()) if plan.incremental else rows
    account: dict[str, Any] = {"mode": "incremental" if plan.incremental else "full",
                               "reason": plan.reason, "new_rows": new_rows,
                               "kept_rows": rows - new_rows}
    if plan.incremental and kept_from:
        account["kept_from"] = kept_from
    return account
