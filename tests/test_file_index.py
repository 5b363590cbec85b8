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
MOUNTS = file_index.mounts


@pytest.fixture(autouse=True)
def _local_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test files are on a local filesystem, wherever the tests run."""
    monkeypatch.setattr(file_index, "mounts", lambda: (("/", "ext4"),))


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


def test_off_a_local_filesystem_every_file_is_read(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """sshfs reports ctime = mtime: a same-size rewrite with the old mtime would match, so
    there the index is neither used nor written."""
    monkeypatch.setattr(file_index, "SETTLE_S", 0.0)
    monkeypatch.setattr(file_index, "mounts", lambda: (("/", "ext4"),
                                                       (str(tmp_path), "fuse.sshfs")))
    write_csv(tmp_path / "in" / "a.csv", item_rows(5))
    _ingest(tmp_path)
    assert not (tmp_path / INDEX).exists()
    read = _reads(monkeypatch)
    [again] = _ingest(tmp_path)
    assert read == ["a.csv"] and again.reused


def test_mountinfo_is_read_with_its_escapes(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    info = tmp_path / "mountinfo"
    info.write_text(
        "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
        "30 22 0:26 / /mnt/my\\040share rw,relatime shared:9 - fuse.sshfs me@host: rw\n"
        "31 22 0:27 / /mnt/nfs rw - nfs4 srv:/x rw\n"
        "32 31 0:28 / /mnt/nfs/scratch rw - tmpfs tmpfs rw\n"
    )
    monkeypatch.setattr(file_index, "_MOUNTINFO", info)
    monkeypatch.setattr(file_index, "mounts", MOUNTS)
    file_index.mounts.cache_clear()
    try:
        assert file_index.mounts() == (("/", "ext4"), ("/mnt/my share", "fuse.sshfs"),
                                       ("/mnt/nfs", "nfs4"), ("/mnt/nfs/scratch", "tmpfs"))
        assert file_index.trusted(Path("/data/x.csv"))
        assert not file_index.trusted(Path("/mnt/my share/x.csv"))
        assert not file_index.trusted(Path("/mnt/nfs/x.csv"))
        assert file_index.trusted(Path("/mnt/nfs/scratch/x.csv"))  # the innermost mount
        assert file_index.trusted(Path("/mnt/nfsx/y.csv"))  # not under /mnt/nfs: on /
    finally:
        file_index.mounts.cache_clear()


def test_a_digest_that_is_not_one_is_ignored() -> None:
    index = {"k": {"digest": "../../etc", "status": [1, 2, 3, 4, 5]}}
    assert file_index.known(index, "k", [1, 2, 3, 4, 5]) is None
    index["k"]["digest"] = "0123456789abcdef0123"
    assert file_index.known(index, "k", [1, 2, 3, 4, 5]) == "0123456789abcdef0123"
