"""Reading input files into polars frames, losing no row.

Every reader returns the rows it could parse (with `_row`, the 1-based record number in the
file; for JSONL the line number) and the records it could not, as rejects (row, reason,
raw text) that the pipeline quarantines. A file that cannot be read at all raises
`InputError` naming the file.

What counts as a bad record and what as an unreadable file:

- File level (`InputError`): missing, a folder, unreadable (permissions), empty (0 bytes),
  not gzip although named `.gz` or a corrupt gzip stream, content of another format than
  the one the extension (or `format:`) says (a Parquet file or JSON Lines named `.csv`;
  a `.jsonl` file none of whose lines is a JSON object), and a CSV header that is not
  valid in the source's encoding. A header-only CSV is fine: 0 rows.
- Gzip: a file whose bytes start with the gzip magic number is decompressed in memory
  first, whatever its name; the format comes from the extension before `.gz`
  (`a.csv.gz` is CSV). The lake's content hash covers the compressed bytes.
- CSV records (quarantined with check `parse`, `_row` = record number, the physical
  line in the reason): a record with more or fewer fields than the header, a quoted
  field left open (e.g. a last line cut off inside quotes), a stray quote inside a quoted
  field, and, with `encoding: utf8`, a record holding bytes that are not UTF-8 (Latin-1
  text, say): only those records are quarantined, and the reason names the column, the
  line and the options (`encoding: latin1` reads the whole file as Latin-1,
  `encoding: utf8-lossy` replaces the bad bytes with U+FFFD). Blank lines in a file
  with several columns are not records (skipped, not counted). A UTF-8 BOM is dropped
  and Windows line endings are line endings (no `\r` is left in values; a `\r\n`
  inside a quoted field is the field's content).
- CSV fast path: polars reads the file; only when it fails, or when the last column has
  nulls (polars pads a short record with nulls, so a short record looks like trailing
  empty fields), the file is re-read record by record with Python's `csv` module, which
  finds the bad records. There an empty field is null whether quoted or not (polars keeps
  a quoted `""` as an empty string); otherwise values are the same.
"""

from __future__ import annotations

import csv
import glob
import gzip
import io
import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


_GZIP_MAGIC = b"\x1f\x8b"
_PARQUET_MAGIC = b"PAR1"
_BOM = b"\xef\xbb\xbf"
_SNIFF = 4096


def read_file(path: Path, *, fmt: ReadFormat, source: AnySource, key: str = "<name>") -> ReadResult:
    """Read one file with the reader for `fmt` (gzip-compressed input is decompressed first).

    `key` is the source's name in the spec, used in hints (`sources.<key>.encoding`).
    """
    try:
        if path.is_dir():
            raise InputError(f"{path}: is a folder, expected a {fmt} file")
        with path.open("rb") as fh:
            head = fh.read(_SNIFF)
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if not head:
        raise InputError(f"{path}: file is empty (0 bytes); expected a {fmt} file with rows")
    data: bytes | None = None
    if head.startswith(_GZIP_MAGIC):
        data = _gunzip(path)
        if not data:
            raise InputError(f"{path}: decompresses to nothing; expected a {fmt} file with rows")
        head = data[:_SNIFF]
    elif path.suffix.lower() == ".gz":
        raise InputError(f"{path}: named .gz but is not gzip-compressed (no gzip header)")
    src: Path | bytes = path if data is None else data
    if fmt != "parquet" and head.startswith(_PARQUET_MAGIC):
        raise InputError(f"{path}: is a Parquet file, not {fmt}; name it .parquet or set "
                         f"sources.{key}.format: parquet")
    if fmt == "csv":
        _refuse_json_as_csv(path, head, key=key)
        return _read_csv(path, src, source, key=key)
    if fmt == "jsonl":
        return _read_jsonl(path, src)
    if fmt == "label-studio":
        return _read_label_studio(path, source)
    return _read_parquet(path, src)


def _gunzip(path: Path) -> bytes:
    try:
        return gzip.decompress(path.read_bytes())
    except OSError as exc:  # BadGzipFile is an OSError
        raise InputError(f"{path}: cannot decompress gzip: {exc}") from None
    except (EOFError, zlib.error) as exc:
        raise InputError(f"{path}: gzip stream is truncated or corrupt: {exc}") from None


def _refuse_json_as_csv(path: Path, head: bytes, *, key: str) -> None:
    """A JSON Lines (or JSON) file named .csv would parse as garbage columns: refuse it."""
    first = head.removeprefix(_BOM).lstrip().split(b"\n", 1)[0].strip()
    if first[:1] not in (b"{", b"["):
        return
    try:
        looks_json = isinstance(json.loads(first), dict | list)
    except ValueError:  # cut off by the sniff, or not JSON: a `{"` start is still JSON
        looks_json = first.startswith(b'{"')
    if looks_json:
        raise InputError(
            f"{path}: line 1 looks like JSON ({first[:60].decode('utf-8', 'replace')!r}), "
            f"not a CSV header; name the file .jsonl or set sources.{key}.format: jsonl"
        )


def _no_rejects() -> pl.DataFrame:
    return pl.DataFrame(schema=REJECT_SCHEMA)


def _with_row(df: pl.DataFrame) -> pl.DataFrame:
    if ROW in df.columns:
        raise InputError(f"input has a column named {ROW!r}, which labelgate reserves")
    return df.with_row_index(ROW, offset=1).with_columns(pl.col(ROW).cast(pl.Int64))


def _read_csv(path: Path, src: Path | bytes, source: AnySource, *, key: str) -> ReadResult:
    # Every column is read as text: types are the contract's business, so a bad value
    # becomes a quarantined row with its reason instead of a failed read.
    try:
        df = pl.read_csv(
            src if isinstance(src, Path) else io.BytesIO(src),
            infer_schema=False,
            separator=source.separator,
            encoding=source.encoding,
            raise_if_empty=True,
        )
    except pl.exceptions.NoDataError:
        raise InputError(f"{path}: no header and no rows; expected a CSV header line") from None
    except (pl.exceptions.PolarsError, UnicodeDecodeError):
        pass  # a bad record (ragged, bad quote, bad bytes): find it record by record
    else:
        # polars pads a short record with nulls, so only a null in the last column can
        # hide one: those files (rarely clean ones) are checked record by record too.
        # polars decodes the header lossily: a U+FFFD in a name may be a bad byte.
        if any('"' in c for c in df.columns):
            df = _fix_quoted_header(df, src, source)
        short = (
            df.width > 1
            and df.get_column(df.columns[-1]).null_count() > 0
            and (
                # a blank line reads as an all-null row; the by-record path skips it
                bool(df.select(pl.all_horizontal(pl.all().is_null()).any()).item())
                or _has_short_records(src, source, last=df.columns[-1])
            )
        )
        if not short and not any("\ufffd" in c for c in df.columns):
            return ReadResult(_with_row(df), _no_rejects())
    data = src if isinstance(src, bytes) else path.read_bytes()
    return _read_csv_by_record(path, data, source, key=key)


def _fix_quoted_header(df: pl.DataFrame, src: Path | bytes, source: AnySource) -> pl.DataFrame:
    """polars keeps `""` inside a quoted header name; Python's csv module unescapes it."""
    if isinstance(src, bytes):
        head = src[:1 << 16]
    else:
        with src.open("rb") as fh:
            head = fh.read(1 << 16)
    text = head.decode("latin-1" if source.encoding == "latin1" else "utf-8", errors="replace")
    try:
        names = next(csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""),
                                delimiter=source.separator))
    except (StopIteration, csv.Error):
        return df
    if len(names) != df.width or len(set(names)) != len(names):
        return df
    return df.rename(dict(zip(df.columns, names, strict=True)))


def _has_short_records(src: Path | bytes, source: AnySource, *, last: str) -> bool:
    """Whether any record has fewer fields than the header (polars pads those with nulls).

    pyarrow's CSV parser counts fields per record in C++ (0.09 s for 1 M rows here), so a
    clean file whose last column has empty values keeps the fast path; any doubt (an
    encoding pyarrow cannot check, a parse error) answers yes and the caller reads the
    file record by record. It runs on one thread: pyarrow's threaded reader (with
    `newlines_in_values`) took 0.15 s on the same file (2 cores, bench/bench_ingest.py).
    """
    if source.encoding == "utf8-lossy":
        return True
    import pyarrow as pa
    import pyarrow.csv as pacsv

    short = 0

    def count(row: Any) -> str:
        nonlocal short
        short += 1
        return "skip"

    try:
        pacsv.read_csv(
            src if isinstance(src, Path) else pa.BufferReader(src),
            read_options=pacsv.ReadOptions(encoding=source.encoding, use_threads=False),
            parse_options=pacsv.ParseOptions(
                delimiter=source.separator, newlines_in_values=True, invalid_row_handler=count
            ),
            convert_options=pacsv.ConvertOptions(
                include_columns=[last], column_types={last: pa.string()}
            ),
        )
    except (pa.ArrowException, OSError, UnicodeDecodeError):
        return True
    return short > 0


def _decode(path: Path, data: bytes, encoding: str) -> tuple[str, bool]:
    """The text, and whether it holds undecodable bytes (as lone surrogates, for utf8)."""
    data = data.removeprefix(_BOM) if encoding != "latin1" else data
    if encoding == "latin1":
        return data.decode("latin-1"), False
    if encoding == "utf8-lossy":
        return data.decode("utf-8", errors="replace"), False
    try:
        return data.decode("utf-8"), False
    except UnicodeDecodeError:
        return data.decode("utf-8", errors="surrogateescape"), True


def _has_bad_bytes(value: str) -> bool:
    return any("\udc80" <= ch <= "\udcff" for ch in value)


def _shown(value: str) -> str:
    """Text with undecodable bytes written as \\xNN (Parquet strings must be UTF-8)."""
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _read_csv_by_record(path: Path, data: bytes, source: AnySource, *, key: str) -> ReadResult:
    text, maybe_bad = _decode(path, data, source.encoding)
    sep = source.separator
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep, strict=True)
    hint = (f"if the file is Latin-1 set sources.{key}.encoding: latin1, or utf8-lossy to "
            f"replace the bad bytes")
    try:
        header = next(reader)
    except StopIteration:
        raise InputError(f"{path}: no header and no rows; expected a CSV header line") from None
    except csv.Error as exc:
        raise InputError(f"{path}: cannot parse the CSV header (line 1): {exc}") from None
    if any(_has_bad_bytes(h) for h in header):
        raise InputError(f"{path}: the header (line 1) has bytes that are not UTF-8; {hint}")
    width = len(header)
    if len(set(header)) != width:
        dupes = sorted({h for h in header if header.count(h) > 1})
        raise InputError(f"{path}: duplicate column name(s) {dupes} in the header")
    columns: list[list[str | None]] = [[] for _ in header]
    rows: list[int] = []
    rejects: list[dict[str, object]] = []
    record = 0
    for line, fields, error in _records(reader, after=reader.line_num):
        if fields == [] and width > 1 and error is None:
            continue  # a blank line is not a record
        record += 1
        reason: str | None = None
        if error is not None:
            reason = f"malformed CSV at line {line}: {error}"
        elif fields == []:
            fields = [""]
        if reason is None and len(fields) != width:
            reason = (f"{len(fields)} field(s), the header has {width} (line {line}); "
                      f"a separator or quote is missing or extra")
        if reason is None and maybe_bad:
            bad = [header[i] for i, v in enumerate(fields) if _has_bad_bytes(v)]
            if bad:
                reason = f"bytes that are not UTF-8 in column {bad[0]!r} (line {line}); {hint}"
        if reason is not None:
            raw = _shown(sep.join(fields or []))[:_RAW_EXCERPT]
            rejects.append({ROW: record, "reason": reason, "raw": raw})
            continue
        rows.append(record)
        for col, value in zip(columns, fields, strict=True):
            col.append(value if value != "" else None)
    df = pl.DataFrame(
        {name: pl.Series(name, values, dtype=pl.String) for name, values in zip(header, columns,
                                                                               strict=True)}
    )
    if ROW in df.columns:
        raise InputError(f"{path}: input has a column named {ROW!r}, which labelgate reserves")
    df = df.select(pl.Series(ROW, rows, dtype=pl.Int64), pl.all())  # as _with_row does
    return ReadResult(df, pl.DataFrame(rejects, schema=REJECT_SCHEMA))


def _records(
    reader: Iterator[list[str]], *, after: int
) -> Iterator[tuple[int, list[str], str | None]]:
    """(first physical line, fields, parse error) per record after line `after`; a
    malformed record's fields are empty and the reader resumes on the next line."""
    last = after
    while True:
        try:
            fields = next(reader)
            error = None
        except StopIteration:
            return
        except csv.Error as exc:
            fields, error = [], str(exc)
            if "unexpected end of data" in error:
                error = "a quoted field is not closed before the end of the file"
        line_num: int = reader.line_num  # type: ignore[attr-defined]
        yield last + 1, fields, error
        last = line_num


def _read_jsonl(path: Path, src: Path | bytes) -> ReadResult:
    data = src if isinstance(src, bytes) else path.read_bytes()
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
    if not records:
        first = rejects[0]
        raise InputError(
            f"{path}: no line is a JSON object (line {first[ROW]}: {first['reason']}); "
            f"is it JSON Lines? (CSV needs a .csv name or format: csv)"
        )
    try:
        df = pl.DataFrame(records, infer_schema_length=None) if records else pl.DataFrame()
    except (pl.exceptions.PolarsError, TypeError, ValueError) as exc:
        raise InputError(f"{path}: JSON records have incompatible fields: {exc}") from None
    if ROW in df.columns:
        raise InputError(f"{path}: input has a column named {ROW!r}, which labelgate reserves")
    df = df.with_columns(pl.Series(ROW, lines, dtype=pl.Int64))
    return ReadResult(df, pl.DataFrame(rejects, schema=REJECT_SCHEMA))


def _read_parquet(path: Path, src: Path | bytes) -> ReadResult:
    try:
        df = pl.read_parquet(src if isinstance(src, Path) else io.BytesIO(src))
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
