"""Checking a spec's sources before a run: the files exist and their headers have the
columns the spec names. Reads only what a header needs (a CSV's first record, a Parquet
footer, a JSON Lines file's first record), never the data.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from labelgate.errors import InputError
from labelgate.spec import AnySource, Spec
from labelgate.stages.ingest.readers import match_files

_HEAD = 1 << 20  # a header is read from at most the first MiB


@dataclass(frozen=True)
class SourceCheck:
    """What `check_sources` found for one source: the files it matched, and problems
    (each naming the file or the spec key), empty when it is fine."""

    key: str
    files: list[Path]
    problems: list[str]


def check_sources(spec: Spec) -> list[SourceCheck]:
    """Each source of `spec` (items, annotations, gold, predictions): its files, and each
    file's header against the columns the spec names for that source.

    Returns
    -------
    list[SourceCheck]
        One per source the spec has, in that order.
    """
    sources: list[tuple[str, AnySource | None, list[str]]] = [
        ("items", spec.sources.items,
         [] if spec.is_instruction else spec.contracted_columns()),
        ("annotations", spec.sources.annotations, _annotation_columns(spec)),
        ("gold", spec.sources.gold, list(spec.gold_columns())),
        ("predictions", spec.sources.predictions, [spec.columns.id]),
    ]
    return [_check(key, source, spec=spec, required=required)
            for key, source, required in sources if source is not None]


def _annotation_columns(spec: Spec) -> list[str]:
    ann = spec.sources.annotations
    if ann is None or ann.is_label_studio():
        return []
    item, annotator, label, _ = spec.annotation_columns()
    if spec.is_dimensions:  # one column per dimension, each optional
        return [item, annotator]
    return [item, *(ann.wide or [])] if ann.wide else [item, annotator, label]


def _check(key: str, source: AnySource, *, spec: Spec, required: list[str]) -> SourceCheck:
    try:
        files = match_files(source, base_dir=spec.base_dir, key=key)
    except InputError as exc:
        return SourceCheck(key, [], [str(exc)])
    problems = []
    for path in files:
        try:
            columns = read_columns(path, source=source, key=key)
        except InputError as exc:
            problems.append(str(exc))
            continue
        missing = [c for c in required if columns is not None and c not in columns]
        if missing:
            problems.append(f"{path}: missing column(s) {missing} named in the spec "
                            f"(sources.{key}); the header has {columns}")
    return SourceCheck(key, files, problems)


def read_columns(path: Path, *, source: AnySource, key: str) -> list[str] | None:
    """The column names in `path`'s header (None for a Label Studio export, whose fields
    are not columns). `InputError` naming the file when it cannot be read."""
    fmt = source.format_for(path, key=key)
    try:
        if fmt == "parquet":
            return list(pl.read_parquet_schema(path))
        if fmt == "label-studio":
            return None
        head = _head(path)
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise InputError(f"{path}: cannot read its header: {exc}") from None
    if fmt == "jsonl":
        return _jsonl_keys(path, head)
    return _csv_header(path, head, source=source)


def _head(path: Path) -> bytes:
    with path.open("rb") as fh:
        head = fh.read(_HEAD)
    if head.startswith(b"\x1f\x8b"):
        with gzip.open(path, "rb") as fh:
            head = fh.read(_HEAD)
    return head


def _csv_header(path: Path, head: bytes, *, source: AnySource) -> list[str]:
    encoding = "latin-1" if source.encoding == "latin1" else "utf-8"
    text = head.decode(encoding, errors="replace").removeprefix("\ufeff")
    try:
        return next(csv.reader(io.StringIO(text, newline=""), delimiter=source.separator))
    except (StopIteration, csv.Error) as exc:
        raise InputError(f"{path}: no CSV header on line 1 ({exc or 'the file is empty'})"
                         ) from None


def _jsonl_keys(path: Path, head: bytes) -> list[str]:
    for number, line in enumerate(head.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            raise InputError(f"{path}: line {number} is not JSON; expected JSON Lines"
                             ) from None
        if not isinstance(record, dict):
            raise InputError(f"{path}: line {number} is not a JSON object")
        return list(record)
    raise InputError(f"{path}: no JSON record in its first MiB")
