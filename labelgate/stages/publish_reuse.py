"""A new version's JSON Lines built on ``current``'s files (issue 26: a night that adds
rows re-encodes only its new rows).

A split's JSON Lines file is one line per row, in key order, each line made from its row
alone: when the new split's rows begin with every row of ``current``'s split, unchanged and
in the same order, its file is ``current``'s file followed by the lines of the later rows.
The rows' fingerprints kept with ``current`` prove the rows are those
(`labelgate.stages.publish_prints`); without them, `Previous.prefix_rows` does:
``current``'s Parquet file of the split
(its sha256 checked against ``current``'s manifest) read back and compared, value by value,
with the new split's first rows, and written by the same Parquet writer as the new split's
(the ``created_by`` of both files, so the JSON writer is the same too). `copy_and_append`
then copies ``current``'s file (in the kernel), checks the copy's sha256 against the
manifest, and writes the new lines after it: the bytes a full write gives
(`tests/test_night_publish.py`).
Parquet files are always written again (their row groups depend on every row).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from labelgate.stages.publish_prints import negative_zeros

__all__ = ["Previous", "Syncs", "copy_and_append", "fsync", "previous_version", "sha256_file"]

Writer = Callable[[pl.DataFrame, Path], None]  # JSON Lines of a frame into a file


@dataclass(frozen=True)
class Previous:
    """``current``'s folder and manifest, when a new version may build on its files."""

    folder: Path
    manifest: dict[str, Any]

    def file(self, name: str) -> dict[str, Any] | None:
        """``{"sha256", "bytes"}`` of data file ``name`` in the manifest, or None."""
        found = self.manifest.get("files", {}).get(name)
        return found if isinstance(found, dict) else None

    def prefix_rows(self, name: str, df: pl.DataFrame, written: Path) -> int | None:
        """How many first rows of ``df`` (split ``name``, sorted, as just written to the
        Parquet file ``written``) are ``current``'s rows of the split, all of them, in
        order and unchanged; None when they are not (or ``current``'s Parquet file is not
        the one its manifest names, or another writer wrote it)."""
        old_path = self.folder / f"{name}.parquet"
        expected = self.file(old_path.name)
        if expected is None or not old_path.is_file():
            return None
        try:
            if sha256_file(old_path) != expected.get("sha256") or (
                    _created_by(old_path) != _created_by(written)):
                return None
            old = pl.read_parquet(old_path)
        except (OSError, pl.exceptions.PolarsError, ValueError):
            return None
        m = old.height
        if old.schema != df.schema or m > df.height or not df.head(m).equals(old):
            return None
        if negative_zeros(old) or negative_zeros(df.head(m)):
            return None  # equals takes -0.0 for 0.0; their JSON differs
        return m

    def build_on(self, folder: Path, name: str, df: pl.DataFrame,
                 lines: Callable[[Mapping[str, pl.DataFrame]], list[tuple[str, pl.DataFrame]]],
                 write: Writer, *, prefix: Callable[[], int | None] | None = None,
                 ) -> dict[str, dict[str, Any]]:
        """Split ``name``'s JSON Lines files in ``folder`` built on this version's, when
        the split's rows ``df`` (sorted, just written to ``folder``'s Parquet file) begin
        with this version's (`prefix_rows`): each file (`lines` of the later rows: file
        name, records) as this version's file, then the later rows' records
        (`copy_and_append`). Returns ``{"sha256", "bytes"}`` of those written (not: the
        rows are not this version's, or its file is not the one its manifest names);
        ``write(records, path)`` writes JSON Lines. ``prefix()``: how many first rows
        are this version's when the caller proved it otherwise (the rows' fingerprints,
        `labelgate.stages.publish_prints`): they are then not read back."""
        m = prefix() if prefix is not None else self.prefix_rows(name, df,
                                                                 folder / f"{name}.parquet")
        if m is None:
            return {}
        known: dict[str, dict[str, Any]] = {}
        for file_name, tail in lines({name: df.slice(m)}):
            old = self.file(file_name)
            if old is not None and (self.folder / file_name).is_file():
                got = copy_and_append(self.folder / file_name, folder / file_name,
                                      expected=old, tail=tail, write=write)
                if got is not None:
                    known[file_name] = got
        return known


def previous_version(root: Path, now: int | None, *, formats: Sequence[str],
                     jsonl: Mapping[str, Any] | None, key_column: str) -> Previous | None:
    """Version ``now`` (``current``) when its manifest was written with the same formats,
    JSON Lines style and key column (its rows could then start the new version's), with
    Parquet among its formats (its rows are read back to compare); else None."""
    if now is None:
        return None
    folder = root / f"v{now}"
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict):
        return None
    same = (manifest.get("formats") == list(formats) and "parquet" in formats
            and manifest.get("jsonl") == (dict(jsonl) if jsonl is not None else None)
            and manifest.get("key_column") == key_column)
    return Previous(folder, manifest) if same else None


def copy_and_append(source: Path, target: Path, *, expected: Mapping[str, Any],
                    tail: pl.DataFrame, write: Writer) -> dict[str, Any] | None:
    """``target`` = ``source``'s bytes, then ``tail`` as JSON Lines (``write(tail, path)``
    into a hidden file beside ``target``, appended); returns its ``{"sha256", "bytes"}``.
    None (``target`` removed) when the bytes copied are not the file ``expected``
    describes (sha256 and size).

    The copy stays in the kernel (`shutil.copyfile`: ``sendfile`` on Linux), and
    ``target`` is then read back to hash it: the bytes checked are the bytes published.
    A copy through Python's buffers cost more CPU (`docs/stages/publish.md`)."""
    shutil.copyfile(source, target)
    with target.open("rb") as copied:
        digest = hashlib.file_digest(copied, "sha256")
        size = os.fstat(copied.fileno()).st_size
    if digest.hexdigest() != expected.get("sha256") or size != expected.get("bytes"):
        target.unlink(missing_ok=True)
        return None
    side = target.with_name(f".{target.name}.tail")
    write(tail, side)
    more = side.read_bytes()
    with target.open("ab") as dst:
        dst.write(more)
    side.unlink()
    digest.update(more)
    return {"sha256": digest.hexdigest(), "bytes": size + len(more)}


class Syncs:
    """Files flushed to the disk by a worker thread as soon as each is written, so the disk
    writes one file while the next is encoded (`fsync` waits in the kernel, without the
    GIL); `done` waits for them all and raises a flush's error. One publish's; `close`."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="publish-fsync")
        self._started: dict[Path, Future[None]] = {}

    def start(self, path: Path) -> None:
        """Flush ``path`` (complete: not written to any more) on the worker thread."""
        self._started[path] = self._pool.submit(fsync, path)

    def done(self) -> set[Path]:
        """The files started, once every one is on the disk."""
        for flushed in self._started.values():
            flushed.result()
        return set(self._started)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def fsync(path: Path) -> None:
    """Flush ``path`` (a file or a folder) to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sha256_file(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _created_by(path: Path) -> str | None:
    """The Parquet footer's ``created_by`` (the writer and its version)."""
    import pyarrow.parquet as pq

    created: str | None = pq.read_metadata(path).created_by
    return created
