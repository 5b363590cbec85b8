"""A night's publish and report (issue 26): the JSON Lines copied in the kernel and appended
are the bytes a whole write gives, and a copy that is not its manifest's file is not kept."""

from __future__ import annotations

import hashlib
from pathlib import Path

import polars as pl

from labelgate.stages import publish as pub
from labelgate.stages.publish_reuse import copy_and_append, sha256_file


def _rows(ids: range, *, prefix: str = "k") -> pl.DataFrame:
    return pl.DataFrame({
        "id": [f"{prefix}{i:05d}" for i in ids],
        "text": [f"text {i}: \"é\" \\ {'x' * (i % 50)}" for i in ids],
        "label": [["a", "b", "c"][i % 3] for i in ids],
    })


def _publish(frames: dict[str, pl.DataFrame], root: Path, run_id: str) -> pub.PublishedVersion:
    return pub.publish_version(frames, root=root, key_column="id", label_column="label",
                               run_id=run_id, spec_hash="h", gate_passed=True,
                               formats=("parquet", "jsonl"), card={"name": "ds"})


def _files(version: pub.PublishedVersion) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(version.path.iterdir())
            if p.name.endswith((".parquet", ".jsonl"))}


def test_copy_and_append_gives_the_file_and_hash_of_a_whole_write(tmp_path: Path) -> None:
    first, later = _rows(range(3000)), _rows(range(3000, 3100))
    source, whole = tmp_path / "old.jsonl", tmp_path / "whole.jsonl"
    first.write_ndjson(source)
    pl.concat([first, later]).write_ndjson(whole)
    expected = {"sha256": sha256_file(source), "bytes": source.stat().st_size}
    got = copy_and_append(source, tmp_path / "new.jsonl", expected=expected, tail=later,
                          write=lambda df, path: df.write_ndjson(path))
    assert (tmp_path / "new.jsonl").read_bytes() == whole.read_bytes()
    assert got == {"sha256": hashlib.sha256(whole.read_bytes()).hexdigest(),
                   "bytes": whole.stat().st_size}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.jsonl", "old.jsonl",
                                                          "whole.jsonl"]


def test_copy_and_append_refuses_a_source_of_the_same_size_but_other_bytes(
        tmp_path: Path) -> None:
    source = tmp_path / "old.jsonl"
    _rows(range(500)).write_ndjson(source)
    expected = {"sha256": sha256_file(source), "bytes": source.stat().st_size}
    data = bytearray(source.read_bytes())
    data[len(data) // 2] ^= 1  # one bit: same size, another sha256
    source.write_bytes(bytes(data))
    got = copy_and_append(source, tmp_path / "new.jsonl", expected=expected,
                          tail=_rows(range(500, 510)),
                          write=lambda df, path: df.write_ndjson(path))
    assert got is None
    assert not (tmp_path / "new.jsonl").exists()


def test_a_night_over_a_changed_current_jsonl_of_the_same_size_is_written_whole(
        tmp_path: Path) -> None:
    first = {"train": _rows(range(0, 900, 2)), "test": _rows(range(1, 900, 2))}
    v1 = _publish(first, tmp_path / "night", "r1")
    jsonl = v1.path / "train.jsonl"
    data = bytearray(jsonl.read_bytes())
    data[10] ^= 1  # current's file no longer the one its manifest names, same size
    jsonl.write_bytes(bytes(data))
    night = {"train": pl.concat([first["train"], _rows(range(900, 960, 2))]),
             "test": pl.concat([first["test"], _rows(range(901, 960, 2))])}
    built = _publish(night, tmp_path / "night", "r2")
    whole = _publish(night, tmp_path / "whole", "r2")
    assert built.version == 2
    assert _files(built) == _files(whole)
    assert built.manifest["files"] == whole.manifest["files"]
    assert not [p for p in built.path.iterdir() if p.name.startswith(".")]
