"""The dedup graph's MinHash signatures kept append-only (issue 26): a night writes only its
new keys' signatures beside the units it built on; the graph read back is the one saved."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from labelgate.stages.dedup import DedupSettings, KeyGraph
from labelgate.stages.dedup_incremental import detect
from labelgate.store import kept_dedup, lake

S = DedupSettings(id_column="id", text_columns=("text",), label_column="y", near=True,
                  threshold=0.5, shingle=3, num_perm=16)
KEY = kept_dedup.graph_key(S)


def _rows(n: int, *, start: int) -> pl.DataFrame:
    rng = np.random.default_rng(start)
    return pl.DataFrame({"id": [f"i{v:05d}" for v in range(start, start + n)],
                         "text": [f"words {v} and {v % 7} more" for v in
                                  rng.integers(0, 3 * n, n)],
                         "y": rng.choice(["a", "b"], n).tolist()})


def _run(i: int) -> str:
    return f"20261201T0000{i:02d}-r"


def _nights(tmp_path: Path, n: int) -> tuple[pl.DataFrame, KeyGraph]:
    """A full pass, then ``n`` - 1 nights each adding rows, saved as the flow saves them."""
    frame = _rows(60, start=0)
    _, graph, _ = detect(frame, S, kept=None, max_new_share=1.0)
    kept_dedup.save_graph(tmp_path, "ds", key=KEY, run_id=_run(0), graph=graph)
    for i in range(1, n):
        found = kept_dedup.latest_graph(tmp_path, "ds", key=KEY)
        assert found is not None and found[1] == _run(i - 1)
        frame = pl.concat([frame, _rows(10, start=1000 * i)])
        _, graph, plan = detect(frame, S, kept=found[0], max_new_share=1.0)
        assert plan.incremental
        kept_dedup.save_graph(tmp_path, "ds", key=KEY, run_id=_run(i), graph=graph,
                              kept=found)
    return frame, graph


def _units(tmp_path: Path, kind: str) -> list[str]:
    return sorted(u.name for u in (tmp_path / "cache" / "ds" / kind).iterdir())


def _same(a: KeyGraph, b: KeyGraph) -> None:
    assert a.keys.to_list() == b.keys.to_list()
    assert a.signatures is not None and b.signatures is not None
    assert a.signatures.dtype == b.signatures.dtype == np.uint32
    assert np.array_equal(a.signatures, b.signatures)
    assert a.rows.equals(b.rows) and np.array_equal(a.edges, b.edges)


def test_a_night_writes_only_its_new_keys_signatures(tmp_path: Path) -> None:
    _, graph = _nights(tmp_path, 3)
    found = kept_dedup.latest_graph(tmp_path, "ds", key=KEY)
    assert found is not None and found[1] == _run(2)
    _same(found[0], graph)
    assert _units(tmp_path, kept_dedup.KIND) == [f"{KEY}-{_run(2)}"]
    assert _units(tmp_path, kept_dedup.SIG_KIND) == [f"{KEY}-{_run(i)}" for i in range(3)]
    sizes = [pl.read_parquet(tmp_path / "cache" / "ds" / kept_dedup.SIG_KIND
                             / f"{KEY}-{_run(i)}" / "sigs.parquet").height for i in range(3)]
    assert sum(sizes) == graph.keys.len() and 0 < sizes[1] <= 10 and 0 < sizes[2] <= 10


def test_the_chain_starts_again_past_its_length(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kept_dedup, "MAX_SIG_UNITS", 2)
    _, graph = _nights(tmp_path, 4)  # units: 0; 0+1; then 2 alone; 2+3
    assert _units(tmp_path, kept_dedup.SIG_KIND) == [f"{KEY}-{_run(2)}", f"{KEY}-{_run(3)}"]
    found = kept_dedup.latest_graph(tmp_path, "ds", key=KEY)
    assert found is not None
    _same(found[0], graph)


def test_a_graph_whose_signatures_are_gone_is_passed_over(tmp_path: Path) -> None:
    _nights(tmp_path, 2)
    shutil.rmtree(tmp_path / "cache" / "ds" / kept_dedup.SIG_KIND / f"{KEY}-{_run(0)}")
    assert kept_dedup.latest_graph(tmp_path, "ds", key=KEY) is None  # a full pass then


def test_a_write_killed_before_its_graph_leaves_the_last_graph(tmp_path: Path) -> None:
    """The signature unit is written first: without the graph unit it is not read, and
    the next save removes it."""
    frame, graph = _nights(tmp_path, 2)
    orphan = lake.cache_dir(tmp_path, "ds", kept_dedup.SIG_KIND, f"{KEY}-{_run(5)}")
    lake.write_cached(orphan, {"sigs": pl.DataFrame({"key": ["x"], "sig": [b"\0" * 64]})}, {})
    found = kept_dedup.latest_graph(tmp_path, "ds", key=KEY)
    assert found is not None and found[1] == _run(1)
    _same(found[0], graph)
    night = pl.concat([frame, _rows(5, start=9000)])
    _, later, _ = detect(night, S, kept=found[0], max_new_share=1.0)
    kept_dedup.save_graph(tmp_path, "ds", key=KEY, run_id=_run(6), graph=later, kept=found)
    assert orphan.name not in _units(tmp_path, kept_dedup.SIG_KIND)
    again = kept_dedup.latest_graph(tmp_path, "ds", key=KEY)
    assert again is not None
    _same(again[0], later)


def test_a_night_on_a_unit_of_the_older_layout_writes_every_signature(tmp_path: Path) -> None:
    frame = _rows(60, start=0)
    _, graph, _ = detect(frame, S, kept=None, max_new_share=1.0)
    assert graph.signatures is not None and graph.values is not None
    unit = lake.cache_dir(tmp_path, "ds", kept_dedup.KIND, f"{KEY}-{_run(0)}")
    lake.write_cached(unit, {  # the layout before signature units: sig in keys.parquet
        "rows": graph.rows.select("id", "k", "r", "h"),
        "keys": pl.DataFrame({"key": graph.keys, "sig": graph.signatures}).with_columns(
            graph.values),
        "edges": pl.DataFrame({"a": graph.edges[:, 0], "b": graph.edges[:, 1]},
                              schema={"a": pl.Int64, "b": pl.Int64})},
        {"format": 2, "run_id": _run(0)})
    found = kept_dedup.latest_graph(tmp_path, "ds", key=KEY)
    assert found is not None
    _same(found[0], graph)
    night = pl.concat([frame, _rows(10, start=1000)])
    _, later, plan = detect(night, S, kept=found[0], max_new_share=1.0)
    assert plan.incremental
    kept_dedup.save_graph(tmp_path, "ds", key=KEY, run_id=_run(1), graph=later, kept=found)
    assert _units(tmp_path, kept_dedup.SIG_KIND) == [f"{KEY}-{_run(1)}"]
    again = kept_dedup.latest_graph(tmp_path, "ds", key=KEY)
    assert again is not None
    _same(again[0], later)
