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

``key`` is a hash of the settings the clusters depend on (`graph_key`), so a change of any
of them finds nothing kept and runs a full pass. Only the newest unit of a key is kept.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import polars as pl

from labelgate.stages.dedup import KeyGraph
from labelgate.stages.dedup_incremental import DedupSettings
from labelgate.store import lake

__all__ = ["KIND", "graph_key", "latest_graph", "save_graph"]

KIND = "dedup_graph"
_FORMAT = 2
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
        if meta.get("format") != _FORMAT:
            continue
        keys = frames["keys"]
        sigs = keys.get_column("sig").to_numpy() if "sig" in keys.columns else None
        edges = frames["edges"].select("a", "b").to_numpy().astype(np.int64)
        values = keys.select(_VALUES) if set(_VALUES) <= set(keys.columns) else None
        graph = KeyGraph(rows=frames["rows"], keys=keys.get_column("key"),
                         signatures=None if sigs is None else np.ascontiguousarray(sigs),
                         edges=edges.reshape(-1, 2), values=values)
        return graph, str(meta.get("run_id", ""))
    return None


def save_graph(store: Path, dataset: str, *, key: str, run_id: str, graph: KeyGraph) -> None:
    """Write this run's unit (``graph.rows`` carries id, k and h), then remove the older
    units of ``key``."""
    keys = pl.DataFrame({"key": graph.keys})
    if graph.signatures is not None:
        keys = keys.with_columns(pl.Series("sig", graph.signatures))
    if graph.values is not None:
        keys = keys.with_columns(graph.values.select(_VALUES))
    edges = pl.DataFrame({"a": graph.edges[:, 0], "b": graph.edges[:, 1]},
                         schema={"a": pl.Int64, "b": pl.Int64})
    unit = lake.cache_dir(store, dataset, KIND, f"{key}-{run_id}")
    lake.write_cached(unit, {"rows": graph.rows.select("id", "k", "r", "h"), "keys": keys,
                             "edges": edges},
                      {"format": _FORMAT, "run_id": run_id, "rows": graph.rows.height,
                       "keys": graph.keys.len(), "edges": len(graph.edges)})
    for old in lake.cached_units(store, dataset, KIND, f"{key}-"):
        if old != unit:
            shutil.rmtree(old, ignore_errors=True)
