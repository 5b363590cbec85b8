"""A night proves its splits begin with `current`'s rows by the fingerprints kept with
`current` (`labelgate.stages.publish_prints`), not by reading `current`'s Parquet files
back (issue 26): the same bytes as a whole publish; without usable fingerprints, the rows
are read back as before. Every data file is flushed before the version is switched."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from labelgate.stages import publish as pub
from labelgate.stages import publish_prints, publish_reuse
from labelgate.stages.publish import PlainStyle, publish_version
from tests.test_night_publish import _rows


def _splits(n: int, *, prefix: str = "k") -> dict[str, pl.DataFrame]:
    rows = _rows(range(n), prefix=prefix)
    return {"train": rows.filter(pl.int_range(pl.len()) % 4 != 0),
            "test": rows.filter(pl.int_range(pl.len()) % 4 == 0)}


def _night(first: dict[str, pl.DataFrame]) -> dict[str, pl.DataFrame]:
    added = _splits(40, prefix="n")  # ids after every kept id: appended in key order
    return {s: pl.concat([first[s], added[s]]) for s in first}


def _publish(frames: dict[str, pl.DataFrame], root: Path, *, prints: Path | None,
             run_id: str = "r") -> pub.PublishedVersion:
    return publish_version(frames, root=root, key_column="id", label_column="label",
                           run_id=run_id, spec_hash="h", gate_passed=True,
                           formats=("parquet", "jsonl"), jsonl_style=PlainStyle(),
                           card={"name": "ds"}, row_prints=prints)


def _files(version: pub.PublishedVersion) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(version.path.iterdir())
            if p.name.endswith((".parquet", ".jsonl"))}


class _Calls:
    """Counts `current`'s rows read back (`Previous.prefix_rows`) and whole JSON Lines
    writes (the files not built on current's)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.read_back: list[str] = []
        self.whole: list[str] = []
        real_prefix, real_write = publish_reuse.Previous.prefix_rows, pub._write_jsonl

        def prefix_rows(previous: Any, name: str, df: pl.DataFrame, written: Path) -> Any:
            self.read_back.append(name)
            return real_prefix(previous, name, df, written)

        def write(df: pl.DataFrame, path: Path) -> None:
            if not path.name.startswith("."):  # not the later rows' lines
                self.whole.append(path.name)
            real_write(df, path)

        monkeypatch.setattr(publish_reuse.Previous, "prefix_rows", prefix_rows)
        monkeypatch.setattr(pub, "_write_jsonl", write)


def test_a_night_compares_fingerprints_not_current_rows_and_writes_a_whole_publishs_bytes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first, prints = _splits(300), tmp_path / "prints"
    v1 = _publish(first, tmp_path / "night", prints=prints, run_id="r1")
    assert [p.name for p in prints.iterdir()] == [f"{v1.manifest['content_hash']}.json"]
    night = _night(first)
    calls = _Calls(monkeypatch)
    built = _publish(night, tmp_path / "night", prints=prints, run_id="r2")
    assert built.version == 2 and not built.unchanged
    assert calls.read_back == [] and calls.whole == []  # proved by fingerprints, built on v1
    whole = _publish(night, tmp_path / "whole", prints=None)
    assert _files(built) == _files(whole)
    assert built.manifest["content_hash"] == whole.manifest["content_hash"]
    # only the current content's fingerprints are kept, and they are the new rows'
    kept = json.loads((prints / f"{built.manifest['content_hash']}.json").read_text())
    assert list(prints.iterdir()) == [prints / f"{built.manifest['content_hash']}.json"]
    assert {s: v["rows"] for s, v in kept["splits"].items()} == {
        s: f.height for s, f in night.items()}
    again = _publish(night, tmp_path / "night", prints=prints, run_id="r3")
    assert again.unchanged and again.version == 2
    assert list(prints.iterdir()) == [prints / f"{built.manifest['content_hash']}.json"]


def _relabeled_first_kept(frames: dict[str, pl.DataFrame]) -> dict[str, pl.DataFrame]:
    first_id = frames["train"].sort("id").get_column("id")[0]
    return {**frames, "train": frames["train"].with_columns(
        pl.when(pl.col("id") == first_id).then(pl.lit("z")).otherwise("label").alias("label"))}


def _null_score(frames: dict[str, pl.DataFrame]) -> dict[str, pl.DataFrame]:
    return {**frames, "train": frames["train"].with_columns(
        pl.when(pl.col("id") == "k00002").then(None).otherwise("score").alias("score"))}


def _dropped_column(frames: dict[str, pl.DataFrame]) -> dict[str, pl.DataFrame]:
    return {s: f.drop("score") for s, f in frames.items()}


@pytest.mark.parametrize("change", [_relabeled_first_kept, _null_score, _dropped_column])
def test_a_kept_row_that_changed_fails_the_fingerprint_and_is_written_whole(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: Any) -> None:
    first, prints = _splits(300), tmp_path / "prints"
    _publish(first, tmp_path / "night", prints=prints, run_id="r1")
    night = change(_night(first))
    calls = _Calls(monkeypatch)
    built = _publish(night, tmp_path / "night", prints=prints, run_id="r2")
    assert calls.read_back == []
    changed = ["train.jsonl"] if change is not _dropped_column else ["train.jsonl", "test.jsonl"]
    assert calls.whole == changed
    assert _files(built) == _files(_publish(night, tmp_path / "whole", prints=None))


def _other_polars(path: Path) -> None:
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "polars": "0.0.1"}))


def _damaged(path: Path) -> None:
    path.write_text(path.read_text()[:-10])


def _other_digest(path: Path) -> None:
    data = json.loads(path.read_text())
    data["splits"]["train"]["digest"] = "0" * 64
    path.write_text(json.dumps(data))


def test_without_usable_fingerprints_current_rows_are_read_back(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for spoil in (_other_polars, _damaged, Path.unlink):
        root, prints = tmp_path / spoil.__name__, tmp_path / f"prints-{spoil.__name__}"
        first = _splits(200)
        v1 = _publish(first, root, prints=prints, run_id="r1")
        spoil(prints / f"{v1.manifest['content_hash']}.json")
        night = _night(first)
        calls = _Calls(monkeypatch)
        built = _publish(night, root, prints=prints, run_id="r2")
        assert calls.read_back == ["train", "test"], spoil
        assert calls.whole == [], spoil  # the rows read back are v1's: built on v1's files
        assert _files(built) == _files(_publish(night, tmp_path / f"whole-{spoil.__name__}",
                                                 prints=None))
        monkeypatch.undo()
    # a fingerprint that does not match is believed: the file is written whole, not read
    root, prints = tmp_path / "digest", tmp_path / "prints-digest"
    v1 = _publish(first, root, prints=prints, run_id="r1")
    _other_digest(prints / f"{v1.manifest['content_hash']}.json")
    calls = _Calls(monkeypatch)
    built = _publish(night, root, prints=prints, run_id="r2")
    assert calls.read_back == [] and calls.whole == ["train.jsonl"]
    assert _files(built) == _files(_publish(night, tmp_path / "whole-digest", prints=None))


def test_categorical_columns_are_not_fingerprinted_but_read_back(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = {s: f.with_columns(pl.col("label").cast(pl.Categorical))
             for s, f in _splits(120).items()}
    prints = tmp_path / "prints"
    _publish(first, tmp_path / "night", prints=prints, run_id="r1")
    assert not prints.exists()  # nothing fingerprinted, nothing kept
    night = {s: f.with_columns(pl.col("label").cast(pl.Categorical))
             for s, f in _night({s: f.with_columns(pl.col("label").cast(pl.String))
                                 for s, f in first.items()}).items()}
    calls = _Calls(monkeypatch)
    built = _publish(night, tmp_path / "night", prints=prints, run_id="r2")
    assert calls.read_back == ["train", "test"] and calls.whole == []
    assert _files(built) == _files(_publish(night, tmp_path / "whole", prints=None))


def test_a_prints_folder_that_cannot_be_written_does_not_stop_the_publish(
        tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    first = _splits(100)
    v1 = _publish(first, tmp_path / "root", prints=blocked / "prints", run_id="r1")
    v2 = _publish(_night(first), tmp_path / "root", prints=blocked / "prints", run_id="r2")
    assert (v1.version, v2.version) == (1, 2)
    assert publish_prints.kept_prints(blocked / "prints", v2.manifest["content_hash"]) \
        is not None  # fresh: nothing kept, nothing read


def test_every_data_file_is_flushed_before_the_manifest_and_a_flush_error_publishes_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    flushed: list[str] = []
    real = publish_reuse.fsync

    def fsync(path: Path) -> None:
        if path.name == "manifest.json":
            flushed.append("|")  # the data files before this mark
        flushed.append(path.name)
        real(path)

    monkeypatch.setattr(publish_reuse, "fsync", fsync)
    monkeypatch.setattr(pub, "_fsync", fsync)
    first = _splits(100)
    _publish(first, tmp_path / "root", prints=tmp_path / "prints", run_id="r1")
    data = set(flushed[:flushed.index("|")])
    assert {"train.parquet", "train.jsonl", "test.parquet", "test.jsonl"} <= data

    def fails(path: Path) -> None:
        if path.name == "train.jsonl":
            raise OSError(28, "No space left on device")
        real(path)

    monkeypatch.setattr(publish_reuse, "fsync", fails)
    monkeypatch.setattr(pub, "_fsync", fails)
    with pytest.raises(OSError, match="No space"):
        _publish(_night(first), tmp_path / "root", prints=tmp_path / "prints", run_id="r2")
    assert sorted(p.name for p in (tmp_path / "root").iterdir()) == ["current", "v1"]


def _scored(ids: range, score: float) -> pl.DataFrame:
    return pl.DataFrame({"id": [f"k{i:04d}" for i in ids], "label": ["a"] * len(ids),
                         "score": [score] * len(ids)})


@pytest.mark.parametrize("use_prints", [True, False])
@pytest.mark.parametrize(("kept", "now"), [(0.0, -0.0), (-0.0, 0.0), (-0.0, -0.0)])
def test_a_negative_zero_is_not_taken_for_zero(tmp_path: Path, use_prints: bool, kept: float,
                                              now: float) -> None:
    # polars' hash_rows and equals take -0.0 for 0.0, whose JSON differs ("-0.0")
    prints = tmp_path / "prints" if use_prints else None
    _publish({"train": _scored(range(10), kept)}, tmp_path / "night", prints=prints,
             run_id="r1")
    night = {"train": pl.concat([_scored(range(10), now), _scored(range(10, 12), 1.0)])}
    built = _publish(night, tmp_path / "night", prints=prints, run_id="r2")
    whole = _publish(night, tmp_path / "whole", prints=None, run_id="r2")
    assert _files(built) == _files(whole)
    lines = (built.path / "train.jsonl").read_text().splitlines()
    assert all(('"score":-0.0' in line) == (now == 0.0 and str(now) == "-0.0")
               for line in lines[:10])


def test_negative_zeros_are_found_in_float_columns_and_assumed_inside_lists() -> None:
    assert publish_prints.negative_zeros(pl.DataFrame({"x": [1.0, -0.0, None]}))
    assert not publish_prints.negative_zeros(pl.DataFrame({"x": [1.0, 0.0, None], "s": ["a"] * 3}))
    assert not publish_prints.negative_zeros(pl.DataFrame({"s": ["-0.0"]}))
    assert publish_prints.negative_zeros(pl.DataFrame({"v": [[0.5, 1.0]]}))  # not looked into
