"""Versioned, atomically switched, byte-reproducible published splits for fine-tune jobs.

Layout under ``root`` (``STORE/published/<dataset>``)::

    v1/ v2/ ...      train.parquet, train.jsonl, validation.*, test.*, manifest.json,
                     published_at.txt (the only wall-clock time; not hashed, not in the manifest)
    current -> vN    a relative symlink to the newest published version

How a version is written: a hidden ``.tmp-v<N>-<random>`` folder gets every file and the
manifest, is fsynced and renamed to ``v<N>`` (one ``rename``: a reader sees the whole
version or none); then a temporary symlink to ``v<N>`` replaces ``current`` with
``os.replace`` (atomic). An exception anywhere before that removes the temporary folder and
leaves ``current`` and every earlier version untouched; a killed process leaves only a
hidden ``.tmp-*`` folder, removed by the next publish (one publisher per dataset at a time).

Reproducible: rows sorted by the key column; Parquet written by polars (zstd, statistics;
no timestamp in its metadata, only the writer version) and JSONL by polars ``write_ndjson``;
``manifest.json`` is canonical JSON (sorted keys, 2-space indent) with no wall-clock time.
The same frames and arguments give byte-identical data files (``content_hash`` equal); the
manifest differs only by ``version``. A split whose rows begin with ``current``'s gets its
JSON Lines files as ``current``'s followed by its later rows' lines (`publish_reuse`).

JSONL styles (what Axolotl, Unsloth and TRL read):
- ``PlainStyle``: the columns as one JSON object per row.
- ``AlpacaStyle``: ``{"instruction", "input", "output"}``; the instruction is a template:
  text with ``{column}`` placeholders (``{{``/``}}`` for literal braces).
- ``ChatStyle``: ``{"messages": [{"role": "system", ...}, {"role": "user", ...},
  {"role": "assistant", ...}]}``; the system message (a template too) is optional.
- ``InstructionStyle``: instruction data (the canonical frame of
  ``labelgate.stages.instructions``): format ``chat`` writes each row's whole ``messages`` list
  (multi-turn), format ``alpaca`` ``{"instruction", "input", "output"}`` (earlier turns of a
  multi-turn row go to ``input``), both through ``instructions.from_canonical``. Their files
  are ``<split>.chat.jsonl`` and ``<split>.alpaca.jsonl`` (formats ``chat``, ``alpaca``).

The row filter (``publish.filter``) is `labelgate.stages.publish_filter`, re-exported here.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import secrets
import shutil
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, Literal

import polars as pl

from labelgate.errors import GateFailedError, InputError
from labelgate.stages.dataset_card import dataset_card
from labelgate.stages.instructions import from_canonical
from labelgate.stages.publish_filter import FilterClause as FilterClause
from labelgate.stages.publish_filter import FilterOp as FilterOp
from labelgate.stages.publish_filter import FilterValue as FilterValue
from labelgate.stages.publish_filter import filter_expr as filter_expr
from labelgate.stages.publish_filter import parse_filter as parse_filter
from labelgate.stages.publish_prints import RowPrints, kept_prints
from labelgate.stages.publish_reuse import Previous, Syncs, previous_version, sha256_file
from labelgate.stages.publish_reuse import fsync as _fsync
from labelgate.stages.publish_versions import CURRENT as CURRENT
from labelgate.stages.publish_versions import MANIFEST as MANIFEST
from labelgate.stages.publish_versions import current_version as current_version
from labelgate.stages.publish_versions import diff_versions as diff_versions
from labelgate.stages.publish_versions import list_versions as list_versions
from labelgate.stages.publish_versions import read_manifest as read_manifest
from labelgate.stages.publish_versions import split_sort_key, versions

FORMATS = ("parquet", "jsonl", "alpaca", "chat")
INSTRUCTION_FORMATS = ("alpaca", "chat")
MANIFEST_FORMAT = "labelgate-published/1"
_SPLIT_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


@dataclass(frozen=True)
class PlainStyle:
    columns: tuple[str, ...] | None = None  # None: every column
    style: str = field(default="plain", init=False)


@dataclass(frozen=True)
class AlpacaStyle:
    instruction: str
    input: str | None
    output: str
    style: str = field(default="alpaca", init=False)


@dataclass(frozen=True)
class ChatStyle:
    user: str
    assistant: str
    system: str | None = None
    style: str = field(default="chat", init=False)


@dataclass(frozen=True)
class InstructionStyle:
    """Rows of the canonical instruction frame in a trainer's format (`from_canonical`)."""

    format: Literal["alpaca", "chat"]
    style: str = field(default="instruction", init=False)


JsonlStyle = PlainStyle | AlpacaStyle | ChatStyle | InstructionStyle
SplitRows = pl.DataFrame | pl.LazyFrame  # a lazy split is collected when it is written

@dataclass(frozen=True)
class PublishedVersion:
    """A published version: its number, folder and manifest; ``unchanged``: this publish
    found the same content as ``current`` and wrote nothing (``current`` stays)."""

    version: int
    path: Path
    manifest: dict[str, Any]
    unchanged: bool = False


def _template(text: str, columns: Sequence[str], where: str) -> pl.Expr:
    """``{column}`` placeholders as a polars string expression."""
    parts: list[pl.Expr] = []
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as err:
        raise InputError(f"{where}: bad template {text!r}: {err}") from err
    for literal, name, spec, conv in parsed:
        if literal:
            parts.append(pl.lit(literal))
        if name is None:
            continue
        if spec or conv or name not in columns:
            raise InputError(
                f"{where}: placeholder {{{name}}} is not a column; the splits have "
                f"{list(columns)} (use {{{{ and }}}} for literal braces)"
            )
        parts.append(pl.col(name).cast(pl.String).fill_null(""))
    if not parts:
        return pl.lit("")
    return pl.concat_str(parts)


def jsonl_frame(df: pl.DataFrame, style: JsonlStyle) -> pl.DataFrame:
    """The frame whose rows are the JSONL records of ``style``."""
    cols = df.columns

    def col(name: str, where: str) -> pl.Expr:
        if name not in cols:
            raise InputError(f"{where}: column {name!r} not in the splits; they have {cols}")
        return pl.col(name).cast(pl.String).fill_null("")

    if isinstance(style, PlainStyle):
        wanted = list(style.columns) if style.columns is not None else cols
        missing = [c for c in wanted if c not in cols]
        if missing:
            raise InputError(f"publish.jsonl.columns: {missing} not in the splits; they have "
                             f"{cols}")
        return df.select(wanted)
    if isinstance(style, InstructionStyle):
        missing = [c for c in ("id", "messages", "response", "instruction", "input")
                   if c not in cols]
        if missing:
            raise InputError(f"publish {style.format}: the splits lack the canonical column(s) "
                             f"{missing} (task instruction); they have {cols}")
        return from_canonical(df, style=style.format)
    if isinstance(style, AlpacaStyle):
        return df.select(
            _template(style.instruction, cols, "publish.jsonl.instruction").alias("instruction"),
            (col(style.input, "publish.jsonl.input") if style.input is not None
             else pl.lit("")).alias("input"),
            col(style.output, "publish.jsonl.output").alias("output"),
        )
    messages = []
    if style.system is not None:
        messages.append(pl.struct(
            pl.lit("system").alias("role"),
            _template(style.system, cols, "publish.jsonl.system").alias("content"),
        ))
    messages.append(pl.struct(pl.lit("user").alias("role"),
                              col(style.user, "publish.jsonl.user").alias("content")))
    messages.append(pl.struct(pl.lit("assistant").alias("role"),
                              col(style.assistant, "publish.jsonl.assistant").alias("content")))
    return df.select(pl.concat_list(messages).alias("messages"))


# the two writers are module functions so a test can make one fail mid-publish
def _write_parquet(df: pl.DataFrame, path: Path) -> None:
    df.write_parquet(path, compression="zstd", compression_level=3, statistics=True)


def _write_jsonl(df: pl.DataFrame, path: Path) -> None:
    df.write_ndjson(path)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item") and not isinstance(value, str | bytes):  # numpy scalar
        return _jsonable(value.item())
    return value


def _canonical_json(obj: Any) -> str:
    return json.dumps(_jsonable(obj), sort_keys=True, indent=2, ensure_ascii=False,
                      allow_nan=False) + "\n"


def publish_version(
    splits: Mapping[str, SplitRows],
    *,
    root: Path | str,
    key_column: str,
    label_column: str | None,
    run_id: str,
    spec_hash: str,
    gate_passed: bool,
    formats: Sequence[str] = ("parquet", "jsonl"),
    jsonl_style: JsonlStyle | None = None,
    gate: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | None = None,
    lineage: Sequence[str] = (),
    extras: Mapping[str, Any] | None = None,
    before_switch: Callable[[Path], None] | None = None,
    card: Mapping[str, str | None] | None = None,
    extra_files: Sequence[tuple[str, pl.DataFrame]] = (),
    row_prints: Path | None = None,
) -> PublishedVersion:
    """Write ``splits`` as version N+1 under ``root`` and point ``current`` at it.

    ``gate``: the verdict's details (checks, thresholds) for the manifest; ``lineage``: the
    input batch hashes. Raises GateFailedError (nothing written) when ``gate_passed`` is false.
    ``before_switch(path)`` is called once ``v<N>`` is complete and renamed, just before
    ``current`` moves (the crash tests kill the process there).

    ``extra_files``: more (file name, rows) to write beside the splits' files (a ``.parquet``
    name as Parquet, any other as JSON Lines), hashed with them (task preference: the TRL
    files).

    ``card``: ``name`` (and optionally ``license``, ``description``) for the version's
    ``README.md`` dataset card (`labelgate.stages.dataset_card`); None writes no card.

    A split given as a `pl.LazyFrame` is collected when its files are written, one split
    at a time (its key column checked then), so only one split's rows are in memory.

    When the data files would be the same as ``current``'s (same ``content_hash``),
    nothing is published: the temporary folder is removed and ``current``'s version is
    returned with ``unchanged=True``.

    ``row_prints``: a folder (the store's cache) keeping the published rows' fingerprints
    (`labelgate.stages.publish_prints`): a night proves its splits begin with
    ``current``'s rows by them instead of reading ``current``'s rows back; None: read back.
    """
    root = Path(root)
    _check_request(splits, root=root, run_id=run_id, gate_passed=gate_passed, formats=formats)
    style = jsonl_style if jsonl_style is not None else PlainStyle()
    ordered = _ordered_splits(splits, key_column=key_column, label_column=label_column)
    shapes = [*_data_files({n: _empty(f) for n, f in ordered.items()},  # InputError: no write
                           formats=formats, style=style), *extra_files]
    previous = previous_version(root, current_version(root), key_column=key_column,
                                formats=[f for f in FORMATS if f in formats],
                                jsonl=asdict(style) if "jsonl" in formats else None)
    prints = kept_prints(row_prints, previous.manifest.get("content_hash")
                         if previous is not None else None)
    version, tmp = _version_folder(root)
    final, syncs = root / f"v{version}", Syncs()
    try:
        split_info, known = _write_splits(tmp, ordered, key_column=key_column, style=style,
                                          label_column=label_column, formats=formats,
                                          previous=previous, prints=prints, syncs=syncs)
        manifest = _manifest(
            _write_data(tmp, extra_files, known=known, syncs=syncs), split_info,
            version=version,
            run_id=run_id, spec_hash=spec_hash, key_column=key_column, label_column=label_column,
            formats=formats, style=style, gate=gate, metrics=metrics, lineage=lineage,
            extras=extras,
        )
        same = _same_as_current(root, manifest["content_hash"])
        if same is not None:
            syncs.close()
            shutil.rmtree(tmp, ignore_errors=True)
            if prints is not None:
                prints.save(manifest["content_hash"])
            return same
        _write_manifest(tmp, manifest)
        if card is not None:
            _write_card(tmp, manifest, shapes, card)
        os.rename(tmp, final)
    except BaseException:
        syncs.close()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    syncs.close()
    if before_switch is not None:
        before_switch(final)
    _point_current(root, final)
    if prints is not None:
        prints.save(manifest["content_hash"])
    return PublishedVersion(version=version, path=final, manifest=manifest)


def _check_request(
    splits: Mapping[str, SplitRows], *, root: Path, run_id: str, gate_passed: bool,
    formats: Sequence[str],
) -> None:
    """Refuse a publish that must not happen: a failed gate (`GateFailedError`), no splits
    or formats outside `FORMATS` (`InputError`)."""
    if not gate_passed:
        raise GateFailedError(f"{root}: gate failed for run {run_id}: not publishing")
    if not splits:
        raise InputError("publish: no splits given; expected e.g. {'train': frame, ...}")
    bad_formats = [f for f in formats if f not in FORMATS]
    if bad_formats or not formats:
        raise InputError(f"publish.formats is {list(formats)}; expected a non-empty subset of "
                         f"{list(FORMATS)}")


def _ordered_splits(
    splits: Mapping[str, SplitRows], *, key_column: str, label_column: str | None
) -> dict[str, SplitRows]:
    """The splits in publishing order (train, validation, test, then by name), each sorted
    by its key.

    Parameters
    ----------
    splits : Mapping[str, pl.DataFrame or pl.LazyFrame]
        Split name -> rows (n_rows x columns; the columns include ``key_column`` and
        ``label_column``).
    key_column : str
        Unique and non-null in every split; orders the rows.
    label_column : str or None
        Must be a column of every split when given.

    Returns
    -------
    dict[str, pl.DataFrame or pl.LazyFrame]
        The same frames (same shapes), rows sorted by ``key_column``; a lazy split stays
        lazy (`_collected` sorts and checks it).
    """
    ordered: dict[str, SplitRows] = {}
    for name in sorted(splits, key=split_sort_key):
        df = splits[name]
        if not _SPLIT_NAME.match(name):
            raise InputError(f"publish: split name {name!r} is not [A-Za-z0-9_-]+")
        columns = df.collect_schema().names()
        for column in (key_column, label_column):
            if column is not None and column not in columns:
                raise InputError(f"publish: split {name!r} has no column {column!r}; it has "
                                 f"{columns}")
        ordered[name] = df if isinstance(df, pl.LazyFrame) else _collected(name, df, key_column)
    return ordered


def _collected(name: str, rows: SplitRows, key_column: str) -> pl.DataFrame:
    """A split's rows, sorted by ``key_column`` (InputError: keys not unique or null).

    Rows already in key order (a night's splits: the kept rows in id order, then the new
    ones) are only put in one chunk, as the sort would leave them: the same frame and the
    same Parquet bytes, without sorting every row's columns again."""
    df = rows.collect() if isinstance(rows, pl.LazyFrame) else rows
    df = df.rechunk() if df.get_column(key_column).is_sorted() else df.sort(key_column)
    keys = df.get_column(key_column)  # sorted: a repeated key is its neighbour's
    if keys.null_count() or (keys.slice(1) == keys.slice(0, max(df.height - 1, 0))).any():
        raise InputError(f"publish: split {name!r}: key column {key_column!r} must be "
                         "unique and non-null (it orders the rows)")
    return df


def _empty(rows: SplitRows) -> pl.DataFrame:
    """No rows, the columns of ``rows``."""
    return pl.DataFrame(schema=rows.collect_schema())


def _write_splits(
    folder: Path, ordered: Mapping[str, SplitRows], *, key_column: str,
    label_column: str | None, formats: Sequence[str], style: JsonlStyle, previous: Previous | None,
    prints: RowPrints | None = None, syncs: Syncs | None = None,
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """Each split's data files (`_data_files`) into ``folder``, one split at a time (a lazy
    split collected and sorted then, let go before the next); returns `_split_info` and the
    hashes of JSON Lines built on ``previous``'s (`Previous.build_on`: a whole write's bytes;
    its rows compared by ``prints`` when they have ``previous``'s fingerprint of the split).
    Each file is flushed by ``syncs`` once written."""
    info: dict[str, dict[str, Any]] = {}
    known: dict[str, dict[str, Any]] = {}
    for name, rows in ordered.items():
        df = _collected(name, rows, key_column) if isinstance(rows, pl.LazyFrame) else rows
        one = {name: df}
        hashed = prints.hashes(name, df) if prints is not None else None
        def lines(frames: Mapping[str, pl.DataFrame]) -> list[tuple[str, pl.DataFrame]]:
            return [f for f in _data_files(frames, formats=formats, style=style)
                    if not f[0].endswith(".parquet") and f[0] not in known]
        if "parquet" in formats:
            _write_files(folder, [(f"{name}.parquet", df)], syncs=syncs)
            if previous is not None:
                proof = (partial(prints.prefix_rows, name, df, hashed)
                         if prints is not None and prints.compares(name, hashed) else None)
                built = previous.build_on(folder, name, df, lines,
                                          lambda d, p: _write_jsonl(d, p), prefix=proof)
                for file_name in built:
                    if syncs is not None:
                        syncs.start(folder / file_name)
                known.update(built)
        if lines({name: df.clear()}):  # a JSON Lines file not built on previous's
            _write_files(folder, lines(one), syncs=syncs)
        info.update(_split_info(one, label_column=label_column))
        del df, one, hashed
    return info, known


def _data_files(
    ordered: Mapping[str, pl.DataFrame], *, formats: Sequence[str], style: JsonlStyle
) -> list[tuple[str, pl.DataFrame]]:
    """The version's data files, in writing order, built before anything is written.

    Parameters
    ----------
    ordered : Mapping[str, pl.DataFrame]
        Split name -> sorted rows (`_ordered_splits`).
    formats : Sequence[str]
        A subset of `FORMATS`.
    style : JsonlStyle
        The records of format ``jsonl``.

    Returns
    -------
    list[tuple[str, pl.DataFrame]]
        (file name, frame) per split and format: ``<split>.parquet`` (the split's rows),
        ``<split>.jsonl`` and ``<split>.<alpaca|chat>.jsonl`` (one record per row).
    """
    records = {name: jsonl_frame(df, style) for name, df in ordered.items()} \
        if "jsonl" in formats else {}
    instruction_records = {
        (name, fmt): jsonl_frame(df, InstructionStyle(fmt))  # type: ignore[arg-type]
        for name, df in ordered.items() for fmt in INSTRUCTION_FORMATS if fmt in formats
    }
    files: list[tuple[str, pl.DataFrame]] = []
    for name, df in ordered.items():
        if "parquet" in formats:
            files.append((f"{name}.parquet", df))
        if name in records:
            files.append((f"{name}.jsonl", records[name]))
        files.extend((f"{name}.{fmt}.jsonl", instruction_records[name, fmt])
                     for fmt in INSTRUCTION_FORMATS if fmt in formats)
    return files


def _version_folder(root: Path) -> tuple[int, Path]:
    """The next version number and its new hidden temporary folder under ``root``; clears
    what a killed publish left (one publisher per dataset at a time)."""
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(".tmp-v*"):
        shutil.rmtree(stale, ignore_errors=True)
    for stale in root.glob(".current-*"):
        stale.unlink(missing_ok=True)
    version = (max(versions(root), default=0)) + 1
    tmp = root / f".tmp-v{version}-{secrets.token_hex(4)}"
    tmp.mkdir()
    return version, tmp


def _write_files(folder: Path, data_files: Sequence[tuple[str, pl.DataFrame]], *,
                 syncs: Syncs | None = None) -> None:
    """Write ``data_files`` (`_data_files`) into ``folder`` (each flushed by ``syncs``
    once written)."""
    for file_name, frame in data_files:
        if file_name.endswith(".parquet"):
            _write_parquet(frame, folder / file_name)
        else:
            _write_jsonl(frame, folder / file_name)
        if syncs is not None:
            syncs.start(folder / file_name)


def _write_data(
    folder: Path, data_files: Sequence[tuple[str, pl.DataFrame]], *,
    known: Mapping[str, dict[str, Any]] | None = None, syncs: Syncs | None = None,
) -> dict[str, dict[str, Any]]:
    """Write ``data_files`` (`_data_files`) into ``folder`` and fsync every file there
    (those ``syncs`` flushed: waited for).

    Returns
    -------
    dict[str, dict[str, Any]]
        File name -> ``{"sha256", "bytes"}``, by name (every file in ``folder``; ``known``'s
        as given).
    """
    _write_files(folder, data_files, syncs=syncs)
    flushed = syncs.done() if syncs is not None else set()
    files: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.iterdir()):
        if path not in flushed:
            _fsync(path)
        files[path.name] = dict((known or {}).get(path.name) or {
            "sha256": sha256_file(path), "bytes": path.stat().st_size})
    return files


def _split_info(
    ordered: Mapping[str, pl.DataFrame], *, label_column: str | None
) -> dict[str, dict[str, Any]]:
    """Split name -> ``{"rows", "classes"}`` (rows per label as text, ``null`` for a null
    label, by label; empty without ``label_column``)."""
    split_info: dict[str, dict[str, Any]] = {}
    for name, df in ordered.items():
        classes: dict[str, int] = {}
        if label_column is not None:
            for label, n in df.group_by(label_column).len().rows():
                classes["null" if label is None else str(label)] = int(n)
        split_info[name] = {"rows": df.height, "classes": dict(sorted(classes.items()))}
    return split_info


def _manifest(
    files: Mapping[str, dict[str, Any]],
    split_info: Mapping[str, dict[str, Any]],
    *,
    version: int,
    run_id: str,
    spec_hash: str,
    key_column: str,
    label_column: str | None,
    formats: Sequence[str],
    style: JsonlStyle,
    gate: Mapping[str, Any] | None,
    metrics: Mapping[str, Any] | None,
    lineage: Sequence[str],
    extras: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The manifest as the file holds it (NaN -> null, numpy -> python); no wall-clock
    time. ``content_hash`` covers the data files' names and hashes."""
    content = "".join(f"{n} {f['sha256']}\n" for n, f in sorted(files.items()))
    manifest: dict[str, Any] = _jsonable({
        "format": MANIFEST_FORMAT,
        "version": version,
        "run_id": run_id,
        "spec_hash": spec_hash,
        "key_column": key_column,
        "label_column": label_column,
        "formats": [f for f in FORMATS if f in formats],
        "jsonl": asdict(style) if "jsonl" in formats else None,
        "splits": dict(split_info),
        "rows": sum(s["rows"] for s in split_info.values()),
        "files": dict(files),
        "content_hash": hashlib.sha256(content.encode()).hexdigest(),
        "gate": {**dict(gate or {}), "passed": True},
        "metrics": dict(metrics or {}),
        "lineage": {"batches": sorted(lineage)},
        "extras": dict(extras or {}),
    })
    return manifest


def _write_manifest(folder: Path, manifest: Mapping[str, Any]) -> None:
    """``manifest.json`` and ``published_at.txt`` (the wall-clock time) into ``folder``;
    the manifest and the folder fsynced."""
    (folder / MANIFEST).write_text(_canonical_json(manifest), encoding="utf-8")
    (folder / "published_at.txt").write_text(
        datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") + "\n", encoding="utf-8"
    )
    _fsync(folder / MANIFEST)
    _fsync(folder)


def _write_card(folder: Path, manifest: Mapping[str, Any],
                data_files: Sequence[tuple[str, pl.DataFrame]],
                card: Mapping[str, str | None]) -> None:
    """``README.md``: the dataset card over the first split's Parquet (else JSONL) file;
    not part of ``content_hash``, like the manifest."""
    parquet = [frame for name, frame in data_files if name.endswith(".parquet")]
    plain = [frame for name, frame in data_files if name.count(".") == 1
             and name.endswith(".jsonl")]
    frames, suffix = (parquet, "parquet") if parquet else (plain, "jsonl")
    if not frames:
        return  # only styled JSONL (alpaca, chat): no single file per split to name
    text = dataset_card(manifest, schema=dict(frames[0].schema), suffix=suffix,
                        name=str(card["name"]), license=card.get("license"),
                        description=card.get("description"))
    (folder / "README.md").write_text(text, encoding="utf-8")
    _fsync(folder / "README.md")


def _point_current(root: Path, final: Path) -> None:
    """Point ``root/current`` at ``final`` atomically (a new symlink renamed over it)."""
    link = root / f".current-{secrets.token_hex(4)}"
    os.symlink(final.name, link)
    os.replace(link, root / CURRENT)
    _fsync(root)


def _same_as_current(root: Path, content_hash: str) -> PublishedVersion | None:
    """``current``'s version when its data files hash to ``content_hash``, else None."""
    now = current_version(root)
    if now is None:
        return None
    try:
        manifest = read_manifest(root, now)
    except (OSError, ValueError):
        return None  # a damaged current is replaced, not kept
    if manifest.get("content_hash") != content_hash:
        return None
    return PublishedVersion(version=now, path=root / f"v{now}", manifest=manifest,
                            unchanged=True)
