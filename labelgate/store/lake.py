"""The Parquet lake: each input file becomes a content-addressed batch.

Layout: `<store>/lake/<dataset>/<source>/batch=<hash>/` holding `data.parquet` (the rows
as read, plus `_batch` and `_row`), `rejects.parquet` (records that could not be parsed)
and `_batch.json` (file, hash, counts), written last: a folder without it is an
interrupted ingest and is redone. The hash covers the file bytes and the reader options,
so re-ingesting the same file is a no-op and a changed file is a new batch.

A run's input is the batches of the files its spec matches now; older batches stay in
the lake for lineage but are not part of the run.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from labelgate.errors import InputError
from labelgate.spec import AnnotationSourceSpec, AnySource, ReadFormat
from labelgate.stages.agreement.annotations import wide_to_long
from labelgate.stages.ingest.readers import BATCH, ReadResult, match_files, read_file
from labelgate.store import file_index

_HASH_CHUNK = 1 << 20
MARKER = "_batch.json"


@dataclass(frozen=True)
class Batch:
    """One ingested file."""

    dataset: str
    source: str
    batch: str
    file: str
    format: str
    rows: int
    rejected: int
    path: str
    ingested_at: str
    reused: bool = False
    # CSV only: physical lines (header included), the lines of rejected records, and the
    # first `REJECTED_AT_MAX` of their line numbers (None / 0 / () for other formats)
    lines: int | None = None
    record_lines: int = 0
    blank_lines: int = 0
    rejected_lines: int = 0
    rejected_at: tuple[int, ...] = ()

    @property
    def data_path(self) -> Path:
        return Path(self.path) / "data.parquet"

    @property
    def rejects_path(self) -> Path:
        return Path(self.path) / "rejects.parquet"

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def lake_dir(store: Path, dataset: str, source: str) -> Path:
    return store / "lake" / dataset / source


def content_hash(path: Path, *, options: dict[str, object], data: bytes | None = None) -> str:
    """sha256 of the reader options and the file bytes (`data` when already read), shortened
    to 20 hex digits."""
    digest = hashlib.sha256(json.dumps(options, sort_keys=True).encode())
    if data is not None:
        digest.update(data)
        return digest.hexdigest()[:20]
    with path.open("rb") as fh:
        while chunk := fh.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()[:20]


def ingest_source(
    source: AnySource, *, key: str, dataset: str, store: Path, base_dir: Path
) -> list[Batch]:
    """Ingest every file the source matches; existing batches are reused, not rewritten.
    A file whose status is the one the source's file index recorded is not read again
    (`labelgate.store.file_index`)."""
    files = match_files(source, base_dir=base_dir, key=key)
    root = lake_dir(store, dataset, key)
    index = file_index.load(root)
    seen: dict[str, dict[str, object]] = {}
    batches = [
        ingest_file(f, source=source, key=key, dataset=dataset, store=store, index=index,
                    seen=seen)
        for f in files
    ]
    if seen != index:
        with contextlib.suppress(OSError):  # advisory: the next run reads the files again
            file_index.save(root, seen)
    return batches


def _reader_options(fmt: str, source: AnySource) -> dict[str, object]:
    """What the batch digest covers beside the bytes: the reader and its settings."""
    options: dict[str, object] = {"format": fmt}
    if fmt == "csv":
        # reader 2 accounts for every physical line (a broken quote no longer swallows the
        # lines after it): batches read by the older reader are read again
        options |= {"encoding": source.encoding, "separator": source.separator, "reader": 2}
    if fmt == "jsonl" and source.max_line_bytes is not None:
        options |= {"max_line_bytes": source.max_line_bytes}
    if fmt == "label-studio" and isinstance(source, AnnotationSourceSpec):
        options |= {"item_field": source.item_field, "from_name": source.from_name}
    return options


def ingest_file(
    path: Path, *, source: AnySource, key: str, dataset: str, store: Path,
    index: Mapping[str, Mapping[str, object]] | None = None,
    seen: dict[str, dict[str, object]] | None = None,
) -> Batch:
    """`path` as a lake batch: reused when one holds its bytes, else read and written.
    `index`: the source's file index (a file whose status it recorded is not read);
    `seen`: filled with this file's index entry when it may be recorded."""
    fmt = source.format_for(path, key=key)
    options = _reader_options(fmt, source)
    root = lake_dir(store, dataset, key)
    entry = file_index.entry_key(path, options)
    if (index is not None or seen is not None) and not file_index.trusted(path):
        index = seen = None  # its status does not say whether it changed: read it
    try:
        before = file_index.status(path)
        digest = file_index.known(index or {}, entry, before)
        existing = existing_batch(root / f"batch={digest}") if digest else None
        if existing is not None:
            if seen is not None:
                seen[entry] = {"digest": digest, "status": before}
            return existing
        read_at = time.time_ns()
        # a CSV is read whole by its reader anyway: read once, hashed and parsed from memory
        raw = path.read_bytes() if fmt == "csv" and path.is_file() else None
        digest, result = _hash_and_read(path, fmt=fmt, source=source, key=key,
                                        options=options, raw=raw)
        del raw
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from None
    if seen is not None:
        _remember(seen, entry, path, digest=digest, before=before, read_at=read_at)
    target = root / f"batch={digest}"
    existing = existing_batch(target)
    if existing is not None:
        return existing
    if isinstance(result, InputError):
        raise result
    rows = result.rows.with_columns(pl.lit(digest).alias(BATCH))
    rejects = result.rejects.with_columns(pl.lit(digest).alias(BATCH))
    batch = Batch(
        dataset=dataset,
        source=key,
        batch=digest,
        file=str(path),
        format=fmt,
        rows=rows.height,
        rejected=rejects.height,
        path=str(target),
        ingested_at=datetime.now(UTC).isoformat(timespec="seconds"),
        **_line_fields(result),
    )
    write_batch(batch, {"data": rows, "rejects": rejects})
    _hand_off(batch, rows, rejects)
    return batch


def _remember(seen: dict[str, dict[str, object]], entry: str, path: Path, *, digest: str,
              before: list[int], read_at: int) -> None:
    """Record the file's status for the index when it held still around the read (bytes
    hashed and parsed: `_hash_and_read`); a file gone or changed meanwhile is not."""
    try:
        after = file_index.status(path)
    except OSError:
        return
    if file_index.settled(before, after, read_at):
        seen[entry] = {"digest": digest, "status": before}


def _hash_and_read(
    path: Path, *, fmt: ReadFormat, source: AnySource, key: str,
    options: dict[str, object], raw: bytes | None,
) -> tuple[str, ReadResult | InputError]:
    """The file's digest, hashed on a thread (hashlib releases the GIL) while the reader
    parses it. A file the index did not know is mostly a new one, so the parse is rarely
    wasted (a batch that holds the same bytes is still reused, by the digest). A file the
    reader refuses is returned as its error, raised only when no batch holds its bytes."""
    with ThreadPoolExecutor(1, thread_name_prefix="labelgate-hash") as pool:
        hashing = pool.submit(content_hash, path, options=options, data=raw)
        result: ReadResult | InputError
        try:
            result = read_file(path, fmt=fmt, source=source, key=key, raw=raw)
        except InputError as exc:
            result = exc
        return hashing.result(), result


# The frames this process just wrote to the lake, kept for the next reader of the batch (a
# run's contract reads what its ingest wrote a moment before): that read comes from memory,
# once (`_take`), and the file stays the record. Bounded in bytes (a large input is read
# back from the lake, and the oldest hand-off goes first); a reader in another process (a
# Dask worker) reads the file. The flow drops what is left when it ends (`drop_handed`).
HAND_OFF_MAX_BYTES = 512 << 20
_handed: dict[str, tuple[pl.DataFrame, pl.DataFrame]] = {}
_handed_lock = threading.Lock()


def _hand_off(batch: Batch, rows: pl.DataFrame, rejects: pl.DataFrame) -> None:
    size = rows.estimated_size() + rejects.estimated_size()
    if size > HAND_OFF_MAX_BYTES:
        return
    with _handed_lock:
        held = sum(r.estimated_size() + j.estimated_size() for r, j in _handed.values())
        while _handed and held + size > HAND_OFF_MAX_BYTES:
            r, j = _handed.pop(next(iter(_handed)))
            held -= r.estimated_size() + j.estimated_size()
        _handed[str(batch.data_path)] = (rows, rejects)


def drop_handed() -> None:
    """Forget every hand-off not taken (the flow's end: its memory goes back)."""
    with _handed_lock:
        _handed.clear()


def _take(batch: Batch) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The batch's rows and rejects: handed off by this process's ingest, or read."""
    with _handed_lock:
        handed = _handed.pop(str(batch.data_path), None)
    if handed is not None and batch.data_path.is_file():
        return handed
    return pl.read_parquet(batch.data_path), pl.read_parquet(batch.rejects_path)


REJECTED_AT_MAX = 100


def _line_fields(result: ReadResult) -> dict[str, Any]:
    """A CSV read's line accounting as `Batch` fields."""
    if result.lines is None:
        return {}
    n = result.lines
    return {"lines": n.total, "record_lines": n.record_lines, "blank_lines": n.blank,
            "rejected_lines": len(n.rejected), "rejected_at": n.rejected[:REJECTED_AT_MAX]}


def existing_batch(target: Path) -> Batch | None:
    """The complete batch in `target` (its marker written), or None."""
    marker = target / MARKER
    if not marker.is_file():
        return None
    meta = json.loads(marker.read_text())
    meta["rejected_at"] = tuple(meta.get("rejected_at", ()))
    return Batch(**{**meta, "path": str(target), "reused": True})


def write_batch(batch: Batch, frames: Mapping[str, pl.DataFrame]) -> None:
    """Write `frames` as `<name>.parquet` plus the marker into a temp folder beside
    `batch.path`, then rename it there: readers never see half a batch, and a folder left
    without a marker (an interrupted write) is replaced."""
    meta = {k: v for k, v in batch.to_dict().items() if k not in ("path", "reused")}
    _write_unit(Path(batch.path), frames, marker=MARKER, meta=meta, tag=batch.batch)


def _write_unit(
    target: Path, frames: Mapping[str, pl.DataFrame], *, marker: str,
    meta: Mapping[str, object], tag: str,
    arrays: Mapping[str, npt.NDArray[Any]] | None = None,
) -> None:
    """The store's one way to write an immutable folder: frames (and ``arrays``, as
    ``<name>.npy``) and marker into a temp folder beside `target`, then one rename (a
    half-written folder is never complete)."""
    root = target.parent
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{tag}-", dir=root))
    tmp.chmod(0o755)  # mkdtemp makes it private; the lake is shared with readers
    try:
        for name, frame in frames.items():
            # zstd level 1, not polars' default 3 (docs/benchmarks/readers.md)
            frame.write_parquet(
                tmp / f"{name}.parquet", compression="zstd", compression_level=1,
                statistics=True,
            )
        for name, array in (arrays or {}).items():
            np.save(tmp / f"{name}.npy", array, allow_pickle=False)
        (tmp / marker).write_text(json.dumps(dict(meta), indent=2))
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


# --- results cached by content ----------------------------------------------------------
# `<store>/cache/<dataset>/<kind>/<key>/`: frames a stage computed from inputs that `key`
# identifies completely (e.g. a batch hash and the contract's fingerprint), so a later run
# with the same inputs reads them instead of recomputing. Written like a batch (temp folder,
# rename, marker last); never modified; safe to delete (it is recomputed).
CACHE_MARKER = "_done.json"


def cache_dir(store: Path, dataset: str, kind: str, key: str) -> Path:
    return store / "cache" / dataset / kind / key


def cached_units(store: Path, dataset: str, kind: str, prefix: str) -> list[Path]:
    """The complete cache units of ``kind`` whose key starts with ``prefix``, newest first
    (keys ending in a run id sort by time)."""
    root = cache_dir(store, dataset, kind, "x").parent
    if not root.is_dir():
        return []
    found = [d for d in root.iterdir()
             if d.name.startswith(prefix) and (d / CACHE_MARKER).is_file()]
    return sorted(found, key=lambda d: d.name, reverse=True)


def read_cached(
    target: Path, names: list[str]
) -> tuple[dict[str, pl.DataFrame], dict[str, object]] | None:
    """The cached frames `names` and the marker's metadata, or None when not (completely)
    cached or unreadable."""
    marker = target / CACHE_MARKER
    if not marker.is_file():
        return None
    try:
        frames = {n: pl.read_parquet(target / f"{n}.parquet") for n in names}
        meta = json.loads(marker.read_text())
    except (OSError, pl.exceptions.PolarsError, ValueError):
        return None  # damaged (a truncated file, a bad disk): recomputed and rewritten
    return frames, meta


def read_cached_arrays(target: Path, names: list[str]) -> dict[str, npt.NDArray[Any]] | None:
    """The arrays `names` (``<name>.npy``, written by `write_cached`'s ``arrays``) of a
    complete cache unit, or None when not (completely) cached or unreadable."""
    if not (target / CACHE_MARKER).is_file():
        return None
    try:
        return {n: np.load(target / f"{n}.npy", allow_pickle=False) for n in names}
    except (OSError, ValueError, EOFError):
        return None  # damaged (a truncated file, a bad disk): recomputed and rewritten


def write_cached(
    target: Path, frames: Mapping[str, pl.DataFrame], meta: Mapping[str, object],
    arrays: Mapping[str, npt.NDArray[Any]] | None = None,
) -> None:
    """A cache unit: ``frames`` as ``<name>.parquet``, ``arrays`` (NumPy, no objects) as
    ``<name>.npy`` (`read_cached_arrays`), the marker with ``meta`` last."""
    _write_unit(target, frames, marker=CACHE_MARKER, meta=meta, tag=target.name,
                arrays=arrays)


def load_batches(batches: list[Batch]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The rows and the rejects of a run's batches, concatenated (columns unioned)."""
    pairs = [_take(b) for b in batches]
    frames = [rows for rows, _ in pairs]
    rejects = [rej for _, rej in pairs]
    rows = pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame()
    rej = pl.concat(rejects, how="diagonal_relaxed") if rejects else pl.DataFrame()
    return rows, rej


@dataclass(frozen=True)
class AnnotationInput:
    """The run's annotations as one long frame (the spec's column names), the gold labels,
    and how many annotations point at items the run does not have."""

    annotations: pl.DataFrame
    gold: pl.DataFrame | None
    n_unparseable: int  # annotation/gold records the reader could not parse (see lake rejects)
    n_items_unknown: int  # annotated item ids not among the run's valid items
    n_rows_unknown: int  # annotation rows on those items


def _require_columns(batches: list[Batch], needed: list[str], *, keys: str) -> None:
    for b in batches:
        have = list(pl.read_parquet_schema(b.data_path))
        missing = [c for c in needed if c not in have]
        if missing:
            raise InputError(
                f"{b.file}: missing column(s) {missing} named in the spec ({keys}); "
                f"the file has {[c for c in have if not c.startswith('_')]}"
            )


def load_annotations(
    batches: list[Batch],
    *,
    gold_batches: list[Batch],
    item_column: str,
    annotator_column: str,
    label_column: str,
    wide: list[str] | None,
    gold_item_column: str,
    gold_label_column: str,
    known_items: pl.Series,
) -> AnnotationInput:
    """Concatenate the annotation batches into long format (wide input is unpivoted: one
    row per non-null cell, the column name as annotator) and count the rows whose item is
    not in `known_items` (compared as text)."""
    if wide is not None:
        _require_columns(batches, [item_column, *wide],
                         keys="agreement.item, sources.annotations.wide")
    else:
        _require_columns(batches, [item_column, annotator_column, label_column],
                         keys="agreement.item/annotator/label")
    rows, rejects = load_batches(batches)
    if wide is not None:
        rows = wide_to_long(rows, item_column=item_column, annotator_columns=wide,
                            annotator_name=annotator_column, label_name=label_column)
    gold = None
    n_unparseable = rejects.height
    if gold_batches:
        _require_columns(gold_batches, [gold_item_column, gold_label_column],
                         keys="agreement.gold_item/gold_label")
        gold, gold_rejects = load_batches(gold_batches)
        n_unparseable += gold_rejects.height
    known = known_items.cast(pl.String).unique().to_frame("_item")
    ids = rows.select(pl.col(item_column).cast(pl.String).alias("_item"))
    unknown = ids.join(known, on="_item", how="anti")
    return AnnotationInput(
        annotations=rows,
        gold=gold,
        n_unparseable=n_unparseable,
        n_items_unknown=unknown.filter(pl.col("_item").is_not_null())["_item"].n_unique(),
        n_rows_unknown=unknown.height,
    )
