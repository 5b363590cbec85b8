"""The source's file index: an input file whose status is unchanged is not read again."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from labelgate.spec import SourceSpec
from labelgate.store import file_index, lake
from labelgate.store.lake import Batch, ingest_source
from tests.conftest import item_rows, write_csv

INDEX = Path("store/lake/ds/items") / file_index.INDEX


def _ingest(tmp_path: Path, pattern: str = "in/*.csv") -> list[Batch]:
    return ingest_source(
        SourceSpec(path=pattern),
        key="items", dataset="ds", store=tmp_path / "store", base_dir=tmp_path,
    )


def _reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The files whose bytes ingest hashes from now on (each read is recorded)."""
    read: list[str] = []
    real = lake.content_hash

    def counting(path: Path, **kwargs: object) -> str:
        read.append(path.name)
        return real(path, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(lake, "content_hash", counting)
    return read


def test_an_unchanged_file_is_not_read_again(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(file_index, "SETTLE_S", 0.0)  # the files were just written
    write_csv(tmp_path / "in" / "a.csv", item_rows(10))
    write_csv(tmp_path / "in" / "b.csv", item_rows(3))
    first = _ingest(tmp_path)
    read = _reads(monkeypatch)
    again = _ingest(tmp_path)
    assert read == []  # neither file read: both known from their status
    assert [b.batch for b in again] == [b.batch for b in first]
    assert [b.reused for b in again] == [True, True]
    assert [b.rows for b in again] == [10, 3]

    write_csv(tmp_path / "in" / "c.csv", item_rows(4))  # a night's new file
    night = _ingest(tmp_path)
    assert read == ["c.csv"] and [b.reused for b in night] == [True, True, False]


def test_a_rewritten_file_is_read_even_with_its_old_size_and_mtime(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(file_index, "SETTLE_S", 0.0)
    path = write_csv(tmp_path / "in" / "a.csv", item_rows(10))
    [first] = _ingest(tmp_path)
    st = path.stat()
    text = path.read_text()
    changed = text.replace("negative", "positive", 1)  # same length: same size
    assert len(changed) == len(text)
    path.write_text(changed)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # the old mtime back
    read = _reads(monkeypatch)
    [again] = _ingest(tmp_path)
    assert read == ["a.csv"]  # the change time moved: read, hashed
    assert again.batch != first.batch and not again.reused


def test_a_file_just_written_is_not_recorded(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Written within SETTLE_S of the read: maybe still being written, so read next time."""
    monkeypatch.setattr(file_index, "SETTLE_S", 3600.0)
    write_csv(tmp_path / "in" / "a.csv", item_rows(5))
    _ingest(tmp_path)
    assert file_index.load(tmp_path / INDEX.parent) == {}
    read = _reads(monkeypatch)
    [again] = _ingest(tmp_path)
    assert read == ["a.csv"] and again.reused  # read again, and its batch reused


@pytest.mark.parametrize("damage", ["not json", '{"version": 1, "files": []}',
                                    '{"version": 99, "files": {}}'])
def test_a_damaged_index_means_reading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       damage: str) -> None:
    monkeypatch.setattr(file_index, "SETTLE_S", 0.0)
    write_csv(tmp_path / "in" / "a.csv", item_rows(5))
    [first] = _ingest(tmp_path)
    (tmp_path / INDEX).write_text(damage)
    read = _reads(monkeypatch)
    [again] = _ingest(tmp_path)
    assert read == ["a.csv"] and again.batch == first.batch and again.reused
    assert len(json.loads((tmp_path / INDEX).read_text())["files"]) == 1  # written anew


def test_the_index_lists_the_latest_files_and_a_lost_batch_is_redone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(file_index, "SETTLE_S", 0.0)
    write_csv(tmp_path / "in" / "a.csv", item_rows(5))
    write_csv(tmp_path / "in" / "b.csv", item_rows(6))
    _ingest(tmp_path)
    (tmp_path / "in" / "b.csv").unlink()
    [only] = _ingest(tmp_path)
    files = json.loads((tmp_path / INDEX).read_text())["files"]
    assert [json.loads(k)[0] for k in files] == [str((tmp_path / "in/a.csv").resolve())]

    marker = Path(only.path) / lake.MARKER
    marker.unlink()  # the batch the index names is gone (an interrupted rewrite)
    read = _reads(monkeypatch)
    [again] = _ingest(tmp_path)
    assert read == ["a.csv"] and not again.reused and again.rows == 5
