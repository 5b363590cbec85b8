"""Publish from lean kept rows and the lake's Parquet (issue 26): the same files as from
the full kept rows."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import polars as pl
import pytest

from labelgate.spec import Spec, parse_spec
from labelgate.stages import split_step
from labelgate.stages.publish import publish_version
from labelgate.stages.steps import detect_duplicates
from tests.conftest import spec_dict

N = 300


def _valid() -> pl.DataFrame:
    labels = ["negative", "neutral", "positive"]
    texts = [f"tweet number {i // 2} about {labels[i % 3]} things" if i % 7 else
             "the same text, again and again" for i in range(N)]
    return pl.DataFrame({
        "tweet_id": [f"t{(i * 37) % N:04d}" for i in range(N)],  # not in key order
        "text": texts,
        "sentiment": [labels[(i * 5) % 3] for i in range(N)],
        "confidence": [None if i % 11 == 0 else (i % 10) / 10 for i in range(N)],
        "length": [len(t) for t in texts],
    })


def _issues(valid: pl.DataFrame) -> Any:
    """A label-issue outcome as make_splits reads it: every 4th row flagged, some with a
    good enough suggestion."""
    i = pl.int_range(pl.len())
    table = valid.select(
        pl.col("tweet_id").alias("id"),
        (i % 4 == 0).alias("is_label_issue"),
        pl.when(i % 8 == 0).then(pl.lit("neutral")).otherwise(None).alias("suggested_label"),
        ((i % 5) / 4).cast(pl.Float64).alias("label_quality"),
    )
    return SimpleNamespace(result=SimpleNamespace(table=table))


def _spec(tmp_path: Path, flagged: str, publish: dict[str, Any]) -> Spec:
    return parse_spec(spec_dict(
        columns={"id": "tweet_id", "text": ["text"], "label": "sentiment",
                 "features": ["length"]},
        label_issues={}, dedup={}, splits={"flagged": flagged, "relabel_min_quality": 0.5},
        publish=publish), base_dir=tmp_path)


def _publish(frames: dict[str, Any], root: Path, spec: Spec) -> dict[str, bytes]:
    version = publish_version(frames, root=root, key_column="tweet_id",
                              label_column="sentiment", run_id="r1", spec_hash="h",
                              gate_passed=True, formats=("parquet", "jsonl"),
                              card={"name": spec.name})
    return {p.name: p.read_bytes() for p in sorted(version.path.iterdir())
            if p.name != "published_at.txt"}


@pytest.mark.parametrize(("flagged", "publish"), [
    ("relabel", {"formats": ["parquet", "jsonl"]}),
    ("drop_from_test", {"formats": ["parquet", "jsonl"], "filter": "confidence >= 0.2"}),
    ("keep", {"formats": ["parquet", "jsonl"]}),
    ("drop", {"formats": ["parquet"], "filter": "label_quality >= 0.25"}),  # a flag input
])
def test_lean_kept_rows_and_the_lake_publish_the_same_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flagged: str, publish: dict[str, Any]
) -> None:
    spec = _spec(tmp_path, flagged, publish)
    valid = _valid()
    issues, dups = _issues(valid), detect_duplicates(valid, spec=spec)

    def made() -> split_step.SplitOutcome:
        return split_step.make_splits(valid, spec=spec, run_id="r1", previous=None,
                                      issues=issues, dups=dups)

    lean = made()
    monkeypatch.setattr(split_step, "lean_kept", lambda spec: False)
    full = made()
    assert "text" in full.kept.columns and "text" not in lean.kept.columns
    assert "length" not in lean.kept.columns
    assert lean.excluded.equals(full.excluded) and lean.sections() == full.sections()
    assert lean.metrics == full.metrics and lean.kept.height == full.kept.height
    lake = tmp_path / "items.parquet"
    valid.write_parquet(lake)
    old = _publish(split_step.split_frames(full.kept, spec=spec), tmp_path / "old", spec)
    new_frames = split_step.split_frames(lean.kept, spec=spec, rows=pl.scan_parquet(lake))
    assert all(isinstance(f, pl.LazyFrame) for f in new_frames.values())
    new = _publish(new_frames, tmp_path / "new", spec)
    assert old.keys() == new.keys() and "train.parquet" in new
    assert old == new  # byte for byte, the manifest and dataset card too
    train = pl.read_parquet(tmp_path / "new" / "current" / "train.parquet")
    assert train.columns[:4] == ["tweet_id", "text", "length", "sentiment"]
    if flagged == "relabel":
        relabeled = train.filter(pl.col("relabeled"))
        assert relabeled.height > 0
        assert (relabeled.get_column("sentiment") == "neutral").all()
    if flagged == "keep":
        assert train.get_column("flagged").sum() > 0


def test_lean_kept_rows_without_the_lake_are_refused(tmp_path: Path) -> None:
    spec = _spec(tmp_path, "drop", {"formats": ["parquet"]})
    valid = _valid()
    lean = split_step.make_splits(valid, spec=spec, run_id="r1", previous=None,
                                  issues=_issues(valid), dups=None)
    with pytest.raises(ValueError, match=r"lack \['text', 'length'\]"):
        split_step.split_frames(lean.kept, spec=spec)


def test_the_splits_read_the_contract_in_brief_when_publish_reads_the_lake(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from checks.contract import ContractResult
    from labelgate import dag
    from labelgate.results import brief

    spec = _spec(tmp_path, "drop", {"formats": ["parquet"], "filter": "confidence > 0.1"})
    rel = dag.releases(spec)
    assert "contract" in rel["dedup"].to_brief and "contract" not in rel["splits"].to_brief
    valid = _valid().with_columns(pl.lit("g").alias("group"))
    slim = brief(ContractResult(valid, pl.DataFrame(), N, 0), spec=spec)
    assert slim.valid.columns == ["tweet_id", "sentiment", "confidence"]
    monkeypatch.setattr(dag, "lean_splits", lambda spec: False)  # publish from kept rows
    rel = dag.releases(spec)
    assert "contract" in rel["splits"].to_brief and "contract" not in rel["dedup"].to_brief
