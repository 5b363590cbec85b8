"""The flow's publish keeps its rows' fingerprints in the store's cache, and the next night
proves its splits begin with `current`'s rows by them (not reading `current`'s rows back),
publishing the bytes of a whole publish (issue 26)."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from conftest import SpecFactory, item_rows, write_csv

from labelgate.stages.publish import PlainStyle, publish_version
from labelgate.stages.publish_reuse import Previous

pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_server")]


def _data(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())
            if p.name.endswith((".parquet", ".jsonl"))}


def test_a_nights_publish_proves_its_rows_by_the_fingerprints_the_last_kept(
        make_spec: SpecFactory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from flows.pipeline import quality_pipeline

    spec = make_spec(item_rows(90), publish={"formats": ["parquet", "jsonl"]},
                     splits={"fractions": {"train": 0.8, "validation": 0.1, "test": 0.1}})
    first = quality_pipeline(str(spec))
    store, dataset = spec.parent / "store", "tiny-tweets"
    prints = store / "cache" / dataset / "publish" / "row_prints"
    v1 = json.loads((store / "published" / dataset / "v1" / "manifest.json").read_text())
    assert first["published"]["version"] == 1
    assert [p.name for p in prints.iterdir()] == [f"{v1['content_hash']}.json"]

    write_csv(spec.parent / "items" / "part2.csv", item_rows(100)[90:])  # ids after the kept
    read_back: list[str] = []
    real = Previous.prefix_rows

    def spy(previous: Previous, name: str, df: pl.DataFrame, written: Path) -> int | None:
        read_back.append(name)
        return real(previous, name, df, written)

    monkeypatch.setattr(Previous, "prefix_rows", spy)
    second = quality_pipeline(str(spec))
    folder = store / "published" / dataset / "v2"
    v2 = json.loads((folder / "manifest.json").read_text())
    assert second["published"]["version"] == 2 and v2["rows"] == v1["rows"] + 10
    assert read_back == []  # proved by the fingerprints
    assert [p.name for p in prints.iterdir()] == [f"{v2['content_hash']}.json"]
    for name in v1["splits"]:  # built on v1's lines
        assert (folder / f"{name}.jsonl").read_bytes().startswith(
            (store / "published" / dataset / "v1" / f"{name}.jsonl").read_bytes())
    whole = publish_version(
        {name: pl.read_parquet(folder / f"{name}.parquet") for name in v2["splits"]},
        root=tmp_path / "whole", key_column="tweet_id", label_column="sentiment", run_id="r",
        spec_hash="h", gate_passed=True, formats=("parquet", "jsonl"),
        jsonl_style=PlainStyle())
    assert _data(folder) == _data(whole.path)
    assert v2["content_hash"] == whole.manifest["content_hash"]
