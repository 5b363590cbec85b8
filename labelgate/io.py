"""Reading input files into polars frames, losing no row.

Every reader returns the rows it could parse (with `_row`, the 1-based record number in the
file; for JSONL the line number) and the records it could not, as rejects (row, reason,
raw text) that the pipeline quarantines. A file that cannot be read at all raises
`InputError` naming the file.
"""

from __future__ import annotations

import glob
import json
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from labelgate.annotations import parse_label_studio_export
from labelgate.errors import InputError
from labelgate.spec import AnnotationSourceSpec, AnySource, ReadFormat

ROW = "_row"
BATCH = "_batch"
REJECT_SCHEMA = {ROW: pl.Int64, "reason": pl.String, "raw": pl.String}
_RAW_EXCERPT = 200


@dataclass(frozen=True)
class ReadResult:
    """Parsed rows (with `_row`) and unparseable records (row, reason, raw)."""

    rows: pl.DataFrame
    rejects: pl.DataFrame


def match_files(source: AnySource, *, base_dir: Path, key: str) -> list[Path]:
    """The files a source's path or glob matches, sorted; `InputError` if none."""
    pattern = Path(source.path).expanduser()
    if not pattern.is_absolute():
        pattern = base_dir / pattern
    if glob.has_magic(str(pattern)):
        files = sorted(Path(p) for p in glob.glob(str(pattern), recursive=True))
        files = [f for f in files if f.is_file()]
        if not files:
            raise InputError(f"sources.{key}.path: no file matches {str(pattern)!r}")
        return files
    if not pattern.exists():
        raise InputError(f"sources.{key}.path: file not found: {pattern}")
    if pattern.is_dir():
        raise InputError(f"sources.{key}.path: {pattern} is a folder; use a glob like dir/*.csv")
    return [pattern]


def read_file(path: Path, *, fmt: ReadFormat, source: AnySource) -> ReadResult:
    """Read one file with the reader for `fmt`."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from None
    if size == 0:
        raise InputError(f"{path}: file is empty (0 bytes); expected a {fmt} file with rows")
    if fmt == "csv":
        return _read_csv(path, source)
    if fmt == "jsonl":
        return _read_jsonl(path)
    if fmt == "label-studio":
        return _read_label_studio(path, source)
    return _read_parquet(path)


def _no_rejects() -> pl.DataFrame:
    return pl.DataFrame(schema=REJECT_SCHEMA)


def _with_row(df: pl.DataFrame) -> pl.DataFrame:
    if ROW in df.columns:
        raise InputError(f"input has a column named {ROW!r}, which labelgate reserves")
    return df.with_row_index(ROW, offset=1).with_columns(pl.col(ROW).cast(pl.Int64))


def _read_csv(path: Path, source: AnySource) -> ReadResult:
    # Every column is read as text: types are the contract's business, so a bad value
    # becomes a quarantined row with its reason instead of a failed read.
    try:
        df = pl.read_csv(
            path,
            infer_schema=False,
            separator=source.separator,
            encoding=source.encoding,
            raise_if_empty=True,
        )
    except pl.exceptions.NoDataError:
        raise InputError(f"{path}: no header and no rows; expected a CSV header line") from None
    except (pl.exceptions.ComputeError, pl.exceptions.PolarsError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        hint = ""
        if "utf-8" in first.lower() or "utf8" in first.lower():
            hint = " (set sources.<name>.encoding: latin1 or utf8-lossy)"
        raise InputError(f"{path}: cannot parse as CSV: {first}{hint}") from None
    return ReadResult(_with_row(df), _no_rejects())


def _read_jsonl(path: Path) -> ReadResult:
    data = path.read_bytes()
    if b"\n\n" not in data.replace(b"\r\n", b"\n").strip(b"\n"):
        try:  # fast path: well-formed file with no blank lines, so row == line number
            df = pl.read_ndjson(data, infer_schema_length=None)
        except (pl.exceptions.PolarsError, ValueError):
            pass
        else:
            return ReadResult(_with_row(df), _no_rejects())
    return _read_jsonl_by_line(path, data)


def _read_jsonl_by_line(path: Path, data: bytes) -> ReadResult:
    records: list[dict[str, object]] = []
    lines: list[int] = []
    rejects: list[dict[str, object]] = []
    for number, raw in enumerate(data.splitlines(), start=1):
        text = raw.decode("utf-8", errors="replace").strip()
        if not text:
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            rejects.append(
                {ROW: number, "reason": f"not valid JSON: {exc.msg}", "raw": text[:_RAW_EXCERPT]}
            )
            continue
        if not isinstance(value, dict):
            kind = type(value).__name__
            rejects.append(
                {
                    ROW: number,
                    "reason": f"expected a JSON object per line, got {kind}",
                    "raw": text[:_RAW_EXCERPT],
                }
            )
            continue
        records.append(value)
        lines.append(number)
    if not records and not rejects:
        raise InputError(f"{path}: no JSON records (only blank lines)")
    try:
        df = pl.DataFrame(records, infer_schema_length=None) if records else pl.DataFrame()
    except (pl.exceptions.PolarsError, TypeError, ValueError) as exc:
        raise InputError(f"{path}: JSON records have incompatible fields: {exc}") from None
    if ROW in df.columns:
        raise InputError(f"{path}: input has a column named {ROW!r}, which labelgate reserves")
    df = df.with_columns(pl.Series(ROW, lines, dtype=pl.Int64))
    return ReadResult(df, pl.DataFrame(rejects, schema=REJECT_SCHEMA))


def _read_parquet(path: Path) -> ReadResult:
    try:
        df = pl.read_parquet(path)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise InputError(f"{path}: cannot read as Parquet: {exc}") from None
    return ReadResult(_with_row(df), _no_rejects())


def _read_label_studio(path: Path, source: AnySource) -> ReadResult:
    """A Label Studio JSON export as long annotations: item, annotator, label, timestamp,
    annotation_id (one row per submitted choice; cancelled and empty ones are skipped)."""
    item_field = from_name = None
    if isinstance(source, AnnotationSourceSpec):
        item_field, from_name = source.item_field, source.from_name
    export = parse_label_studio_export(path, item_field=item_field, from_name=from_name)
    return ReadResult(_with_row(export.annotations), _no_rejects())
