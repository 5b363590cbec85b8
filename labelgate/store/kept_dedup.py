"""The dedup stage's kept key graph, for nights that cost what is new
(`labelgate.stages.dedup_incremental`).

Each run with ``dedup.refresh`` on writes one cache unit,
``cache/<dataset>/dedup_graph/<key>-<run_id>/`` (`labelgate.store.lake` writes it, marker
last; a remote store syncs it like any cache unit):

* ``rows.parquet``: every row, in the run's order: id (the id column's type), k (its key
  number), r (its place in id order), h (the hash of its id, text and label);
* ``keys.parquet``: the distinct normalized keys in key order and, with near matching, their
  MinHash signatures (``sig``, an array of num_perm uint32); and each key's values in the
  run's clusters (`KeyGraph.values`: cluster_id, exact, similarity), which tell a night the
  warehouse rows that changed (a unit written before had none: that night stores whole);
* ``edges.parquet``: the verified near pairs (a, b: key numbers, a < b).

With near matching, the keys' MinHash signatures (a key's never changes) are kept apart,
append-only: ``cache/<dataset>/dedup_sigs/<key>-<run_id>/sigs.parquet`` holds the
signatures (key; sig: num_perm uint32 as 4 * num_perm bytes) of the keys that run added, and
the graph unit's marker lists the signature units it reads (``sig_units``, oldest first)
and the LSH bands and rows per band of its settings (``lsh``: a night does not compute them
again; a unit without them has them computed).
A night writes the signatures of its new keys only (not the 19 MB of every key's); a full
pass, or a night whose chain would pass `MAX_SIG_UNITS` units, writes every key's. A unit
written before this layout (``sig`` in ``keys.parquet``) is read as it is.

``key`` is a hash of the settings the clusters depend on (`graph_key`), so a change of any
of them finds nothing kept and runs a full pass. Only the newest unit of a key is kept,
with the signature units it lists; a unit whose signature units are gone or damaged is
passed over (an older one, or a full pass, is used).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from labelgate.stages.dedup import KeyGraph
from labelgate.stages.dedup_incremental import DedupSettings
from labelgate.store import lake

__all__ = ["KIND", "MAX_SIG_UNITS", "SIG_KIND", "graph_key", "latest_graph", "save_graph"]

KIND = "dedup_graph"
SIG_KIND = "dedup_sigs"
MAX_SIG_UNITS = 8  # a night that would read more writes every key's signatures again
_FORMAT = 2  # in the settings' hash: units of formats 2 and 3 share a key
# a unit's format: 3 lists its signature units; 2 (before) holds them in keys.parquet, and a
# version that reads only 2 passes over a 3 (a full pass) rather than find no signatures
_UNIT_FORMAT = 3
_VALUES = ("cluster_id", "exact", "similarity")


def graph_key(settings: DedupSettings) -> str:
    """A hash of the columns, the near-duplicate settings, the format and polars' version
    (the row hashes and the key order are polars')."""
    body = {"id": settings.id_column, "text": list(settings.text_columns),
            "label": settings.label_column, "near": settings.near,
            "threshold": settings.threshold, "shingle": settings.shingle,
            "num_perm": settings.num_perm, "seed": settings.seed, "format": _FORMAT,
            "polars": pl.__version__, "numpy": np.__version__}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:20]


def latest_graph(store: Path, dataset: str, *, key: str) -> tuple[KeyGraph, str] | None:
    """The newest kept graph for ``key`` (its rows with h) and the run that kept it, or
    None."""
    for unit in lake.cached_units(store, dataset, KIND, f"{key}-"):
        cached = lake.read_cached(unit, ["rows", "keys", "edges"])
        if cached is None:
            continue
        frames, meta = cached
        if meta.get("format") not in (_FORMAT, _UNIT_FORMAT):
            continue
        keys = frames["keys"]
        ok, sigs = _signatures(store, dataset, keys, meta)
        if not ok:  # a signature unit it lists is gone or damaged
            continue
        edges = frames["edges"].select("a", "b").to_numpy().astype(np.int64)
        values = keys.select(_VALUES) if set(_VALUES) <= set(keys.columns) else None
        graph = KeyGraph(rows=frames["rows"], keys=keys.get_column("key"), signatures=sigs,
                         edges=edges.reshape(-1, 2), values=values,
                         bands=_bands(meta, sigs))
        return graph, str(meta.get("run_id", ""))
    return None


Signatures = np.ndarray[Any, np.dtype[np.uint32]]


def _bands(meta: dict[str, object], sigs: Signatures | None) -> tuple[int, int] | None:
    """The LSH (bands, rows per band) the unit's marker lists (``lsh``), when it lists a
    pair that fits its signatures (b * r <= num_perm); else None (the night computes
    them: `labelgate.stages.dedup.lsh_bands`)."""
    found = meta.get("lsh")
    if sigs is None or not isinstance(found, list) or len(found) != 2:
        return None
    b, r = found
    if not (isinstance(b, int) and isinstance(r, int) and b > 0 and r > 0
            and b * r <= sigs.shape[1]):
        return None
    return b, r


def _signatures(store: Path, dataset: str, keys: pl.DataFrame, meta: dict[str, object]
                ) -> tuple[bool, Signatures | None]:
    """Whether the signatures could be read, and the (n_keys, num_perm) signatures of
    ``keys`` in their order: from ``keys``' own ``sig`` column (the layout before
    signature units), else from the signature units ``meta`` lists (None without near
    matching). Not read: a listed unit is unreadable or lacks a key."""
    if "sig" in keys.columns:
        return True, np.ascontiguousarray(keys.get_column("sig").to_numpy())
    names, width = meta.get("sig_units"), meta.get("num_perm")
    if names is None:
        return True, None
    if not isinstance(names, list) or not names or not isinstance(width, int):
        return False, None
    parts = []
    for name in names:
        found = lake.read_cached(lake.cache_dir(store, dataset, SIG_KIND, str(name)), ["sigs"])
        if found is None:
            return False, None
        parts.append(found[0]["sigs"])
    sigs = keys.select("key").join(pl.concat(parts), on="key", how="left",
                                   maintain_order="left").get_column("sig")
    if sigs.len() != keys.height or sigs.null_count():
        return False, None
    out = sigs.to_frame().select(pl.col("sig").bin.reinterpret(
        dtype=pl.Array(pl.UInt32, width), endianness="little")).to_series().to_numpy()
    return True, np.ascontiguousarray(out)


def save_graph(store: Path, dataset: str, *, key: str, run_id: str, graph: KeyGraph,
               kept: tuple[KeyGraph, str] | None = None) -> None:
    """Write this run's unit (``graph.rows`` carries id, k and h) and its new signatures,
    then remove the older units of ``key`` and the signature units it does not list.

    ``kept``: the graph this run built on and the run that kept it (`latest_graph`), when
    it did: only the signatures of keys it lacks are written, beside its units."""
    keys = pl.DataFrame({"key": graph.keys})
    meta: dict[str, object] = {}
    if graph.signatures is not None:
        chain = _chain(store, dataset, key=key, run_id=run_id, kept=kept)
        held = kept[0].keys if chain and kept is not None else graph.keys.clear()
        fresh = ~graph.keys.is_in(held.implode())  # every key, without a chain
        name = f"{key}-{run_id}"
        lake.write_cached(lake.cache_dir(store, dataset, SIG_KIND, name), {"sigs": pl.DataFrame(
            [graph.keys.filter(fresh), _as_bytes(graph.signatures[fresh.to_numpy()])])},
            {"run_id": run_id, "keys": int(fresh.sum())})
        meta = {"sig_units": [*chain, name], "num_perm": int(graph.signatures.shape[1])}
        if graph.bands is not None:
            meta["lsh"] = list(graph.bands)
    if graph.values is not None:
        keys = keys.with_columns(graph.values.select(_VALUES))
    edges = pl.DataFrame({"a": graph.edges[:, 0], "b": graph.edges[:, 1]},
                         schema={"a": pl.Int64, "b": pl.Int64})
    unit = lake.cache_dir(store, dataset, KIND, f"{key}-{run_id}")
    lake.write_cached(unit, {"rows": graph.rows.select("id", "k", "r", "h"), "keys": keys,
                             "edges": edges},
                      {"format": _UNIT_FORMAT, "run_id": run_id, "rows": graph.rows.height,
                       "keys": graph.keys.len(), "edges": len(graph.edges), **meta})
    for old in lake.cached_units(store, dataset, KIND, f"{key}-"):
        if old != unit:
            shutil.rmtree(old, ignore_errors=True)
    listed = set(meta.get("sig_units", ()))  # type: ignore[call-overload]
    for old in lake.cached_units(store, dataset, SIG_KIND, f"{key}-"):
        if old.name not in listed:
            shutil.rmtree(old, ignore_errors=True)


def _chain(store: Path, dataset: str, *, key: str, run_id: str,
           kept: tuple[KeyGraph, str] | None) -> list[str]:
    """The signature units of the kept graph's unit, when this run's can list them too
    (every kept key's signature is there, and one more unit stays within
    `MAX_SIG_UNITS`); else none (this run writes every key's)."""
    if kept is None or kept[0].signatures is None:
        return []
    marker = lake.cache_dir(store, dataset, KIND, f"{key}-{kept[1]}") / lake.CACHE_MARKER
    try:
        names = json.loads(marker.read_text()).get("sig_units")
    except (OSError, ValueError):
        return []
    if not isinstance(names, list) or not names or len(names) >= MAX_SIG_UNITS:
        return []
    return [str(n) for n in names] if f"{key}-{run_id}" not in names else []


def _as_bytes(sigs: Signatures) -> pl.Series:
    """Each row of ``sigs`` (n, num_perm uint32) as 4 * num_perm little-endian bytes."""
    rows = np.ascontiguousarray(sigs, dtype="<u4")
    width = rows.shape[1] * 4
    return pl.Series("sig", pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(width), len(rows), [None, pa.py_buffer(rows.tobytes())]))
