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
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from labelgate.errors import InputError
from labelgate.spec import AnnotationSourceSpec, AnySource, ReadFormat
from labelgate.stages.agreement.annotations import parse_label_studio_export
from labelgate.stages.ingest import short_records
from labelgate.stages.preference.read import label_studio_tasks

ROW = "_row"
BATCH = "_batch"
REJECT_SCHEMA = {ROW: pl.Int64, "reason": pl.String, "raw": pl.String}
_RAW_EXCERPT = 200


@dataclass(frozen=True)
class LineCounts:
    """A CSV file's physical lines, accounted for: `total = header + record_lines + blank`.

    `record_lines` counts the lines of every record, parsed or rejected (a quoted value
    that spans lines takes several); `rejected` lists the physical line numbers (1-based,
    the header is line 1) of the records that were rejected.
    """

    total: int
    header: int
    records: int
    record_lines: int
    blank: int = 0
    rejected: tuple[int, ...] = ()

    def balanced(self) -> bool:
        return self.total == self.header + self.record_lines + self.blank


@dataclass(frozen=True)
class ReadResult:
    """Parsed rows (with `_row`) and unparseable records (row, reason, raw); for CSV,
    the file's physical-line arithmetic."""

    rows: pl.DataFrame
    rejects: pl.DataFrame
    lines: LineCounts | None = None


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
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_PARQUET_MAGIC = b"PAR1"
_BOM = b"\xef\xbb\xbf"
_SNIFF = 4096


def read_file(path: Path, *, fmt: ReadFormat, source: AnySource, key: str = "<name>",
              raw: bytes | None = None) -> ReadResult:
    """Read one file with the reader for `fmt` (gzip-compressed input is decompressed first).

    `key` is the source's name in the spec, used in hints (`sources.<key>.encoding`);
    `raw`, the file's bytes when the caller has read them already.
    """
    head = _head(path, fmt) if raw is None else raw[:_SNIFF]
    if not head:
        raise InputError(f"{path}: file is empty (0 bytes); expected a {fmt} file with rows")
    data: bytes | None = None
    if head.startswith(_GZIP_MAGIC) or head.startswith(_ZSTD_MAGIC):
        data = _gunzip(path) if head.startswith(_GZIP_MAGIC) else _unzstd(path)
        if not data:
            raise InputError(f"{path}: decompresses to nothing; expected a {fmt} file with rows")
        head = data[:_SNIFF]
    elif path.suffix.lower() in (".gz", ".zst"):
        kind = "gzip" if path.suffix.lower() == ".gz" else "zstd"
        raise InputError(f"{path}: named {path.suffix} but is not {kind}-compressed "
                         f"(no {kind} header)")
    src: Path | bytes = (path if raw is None else raw) if data is None else data
    if fmt != "parquet" and head.startswith(_PARQUET_MAGIC):
        raise InputError(f"{path}: is a Parquet file, not {fmt}; name it .parquet or set "
                         f"sources.{key}.format: parquet")
    if fmt == "csv":
        _refuse_json_as_csv(path, head, key=key)
        return _read_csv(path, src, source, key=key)
    if fmt == "jsonl":
        return _read_jsonl(path, src, max_line_bytes=source.max_line_bytes,
                           key=key)
    if fmt == "label-studio":
        return _read_label_studio(path, source)
    return _read_parquet(path, src)


def _head(path: Path, fmt: ReadFormat) -> bytes:
    """The first `_SNIFF` bytes of `path` (`InputError` for a folder or an unreadable file)."""
    try:
        if path.is_dir():
            raise InputError(f"{path}: is a folder, expected a {fmt} file")
        with path.open("rb") as fh:
            return fh.read(_SNIFF)
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None


def _gunzip(path: Path) -> bytes:
    try:
        return gzip.decompress(path.read_bytes())
    except OSError as exc:  # BadGzipFile is an OSError
        raise InputError(f"{path}: cannot decompress gzip: {exc}") from None
    except (EOFError, zlib.error) as exc:
        raise InputError(f"{path}: gzip stream is truncated or corrupt: {exc}") from None


def _unzstd(path: Path) -> bytes:
    """A zstd file's content (pyarrow's codec); `InputError` when truncated or corrupt."""
    import pyarrow as pa

    try:
        with pa.CompressedInputStream(pa.OSFile(str(path)), "zstd") as stream:
            return bytes(stream.read())
    except (OSError, pa.ArrowException) as exc:
        raise InputError(f"{path}: zstd stream is truncated or corrupt: {exc}") from None


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
    """Read a CSV file: polars when the result accounts for every physical line and hides
    no short record, record by record (`_read_csv_by_record`) otherwise."""
    data = src if isinstance(src, bytes) else path.read_bytes()
    _refuse_too_wide(path, data, source.separator)
    df = _read_csv_fast(path, data, source)
    if df is not None:
        short = short_records.asked(data, source, df)  # pyarrow's count, on a thread
        lines = _fast_line_counts(data, df)  # meanwhile
        if not short() and lines is not None:
            return ReadResult(_with_row(df), _no_rejects(), lines)
    return _read_csv_by_record(path, data, source, key=key)


MAX_COLUMNS = 10_000


def _refuse_too_wide(path: Path, data: bytes, sep: str) -> None:
    """A header of more than `MAX_COLUMNS` names is refused before any row is read: every
    stage carries every column, and a table that wide is not labeled text (issue 27's
    100,000-column file took minutes per stage). Counted on the first line (a separator
    inside a quoted name counts too: the limit is far from real headers)."""
    first = data[: data.find(b"\n")] if b"\n" in data else data
    n = first.count(sep.encode()) + 1
    if n > MAX_COLUMNS:
        raise InputError(f"{path}: the header (line 1) has {n:,} columns, more than "
                         f"labelgate reads ({MAX_COLUMNS:,}); select the columns the "
                         f"dataset needs before ingesting it")


def _read_csv_fast(path: Path, data: bytes, source: AnySource) -> pl.DataFrame | None:
    """The file read by polars, every column as text (types are the contract's business,
    so a bad value becomes a quarantined row), or None when a record may be bad."""
    try:
        df = pl.read_csv(data, infer_schema=False, separator=source.separator,
                         encoding=source.encoding, raise_if_empty=True)
    except pl.exceptions.NoDataError:
        raise InputError(f"{path}: no header and no rows; expected a CSV header line") from None
    except (pl.exceptions.PolarsError, UnicodeDecodeError):
        return None  # a bad record (ragged, bad quote, bad bytes): find it record by record
    if any('"' in c for c in df.columns):
        df = _fix_quoted_header(df, data, source)
    # polars renames a repeated header name (`text_duplicated_0`): the by-record path
    # refuses duplicate names, naming them. polars decodes the header lossily: a U+FFFD in
    # a name may be a bad byte. Short records: `short_records.asked` (the caller).
    renamed = any(_DUPLICATED.search(c) for c in df.columns)
    if renamed or any("\ufffd" in c for c in df.columns):
        return None
    return df


_DUPLICATED = re.compile(r"_duplicated_\d+$")


def _newline_lines(data: bytes) -> int:
    """Lines ended by \\n (a \\r\\n end counts once), a last line without an end too."""
    return data.count(b"\n") + (0 if not data or data.endswith(b"\n") else 1)


def _fast_line_counts(data: bytes, df: pl.DataFrame) -> LineCounts | None:
    """The physical-line arithmetic of a file polars read as `df`: 1 header line, and per
    row one line plus the line breaks (\\n) inside its quoted values. None when it does
    not add up (then the file is read record by record, which accounts for every line).

    Lines are counted at \\n here, one pass over the bytes and one over the text columns;
    a lone \\r inside a quoted value is the value's content, as polars reads it.
    """
    if any("\n" in c or "\r" in c for c in df.columns):
        return None
    total = _newline_lines(data)  # a BOM holds no line break
    breaks = pl.col(pl.String).str.count_matches("\n", literal=True).fill_null(0).sum()
    inside = int(df.select(pl.sum_horizontal(breaks)).item() or 0) if df.width else 0
    if total != 1 + df.height + inside:
        return None
    return LineCounts(total=total, header=1, records=df.height, record_lines=total - 1)


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
    """Read `data` record by record with Python's `csv` module, accounting for every line.

    Returns the parsed rows (`_row` = record number) and the rejects; `ReadResult.lines`
    has the physical-line arithmetic. A malformed record that spans lines is a broken
    quote: its first line is rejected alone and reading resumes on the second line (see
    `_records`)."""
    text, maybe_bad = _decode(path, data, source.encoding)
    sep = source.separator
    lines = list(io.StringIO(text, newline=""))
    header, start = _csv_header(path, lines, sep=sep, key=key)
    width = len(header)
    hint = (f"if the file is Latin-1 set sources.{key}.encoding: latin1, or utf8-lossy to "
            f"replace the bad bytes")
    columns: list[list[str | None]] = [[] for _ in header]
    rows: list[int] = []
    rejects: list[dict[str, object]] = []
    tally = _LineTally(header=start)
    for rec in _records(lines, start=start, sep=sep, header=header):
        if rec.fields == [] and width > 1 and rec.error is None:
            tally.blank += 1  # a blank line is not a record
            continue
        tally.records += 1
        tally.record_lines += rec.last - rec.first + 1
        fields = rec.fields if rec.fields or rec.error is not None else [""]
        reason = _record_problem(rec, fields, header=header, maybe_bad=maybe_bad, hint=hint)
        if reason is not None:
            tally.rejected_lines.extend(range(rec.first, rec.last + 1))
            raw = rec.raw if rec.raw is not None else sep.join(fields)
            rejects.append({ROW: tally.records, "reason": reason,
                            "raw": _shown(raw)[:_RAW_EXCERPT]})
            continue
        rows.append(tally.records)
        for col, value in zip(columns, fields, strict=True):
            col.append(value if value != "" else None)
    tally.total = len(lines)
    df = pl.DataFrame(
        {name: pl.Series(name, values, dtype=pl.String)
         for name, values in zip(header, columns, strict=True)}
    )
    if ROW in df.columns:
        raise InputError(f"{path}: input has a column named {ROW!r}, which labelgate reserves")
    df = df.select(pl.Series(ROW, rows, dtype=pl.Int64), pl.all())  # as _with_row does
    return ReadResult(df, pl.DataFrame(rejects, schema=REJECT_SCHEMA), tally.freeze())


def _csv_header(path: Path, lines: list[str], *, sep: str, key: str) -> tuple[list[str], int]:
    """The header's names and the number of physical lines it takes (1 unless a quoted
    name spans lines); `InputError` for a missing, malformed or non-UTF-8 header."""
    reader = csv.reader(iter(lines), delimiter=sep, strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise InputError(f"{path}: no header and no rows; expected a CSV header line") from None
    except csv.Error as exc:
        raise InputError(f"{path}: cannot parse the CSV header (line 1): {exc}") from None
    if any(_has_bad_bytes(h) for h in header):
        raise InputError(
            f"{path}: the header (line 1) has bytes that are not UTF-8; if the file is "
            f"Latin-1 set sources.{key}.encoding: latin1, or utf8-lossy to replace them")
    if len(set(header)) != len(header):
        dupes = sorted({h for h in header if header.count(h) > 1})
        raise InputError(f"{path}: duplicate column name(s) {dupes} in the header")
    return header, reader.line_num


@dataclass
class _LineTally:
    """Running counts of a CSV file's physical lines while it is read record by record."""

    header: int
    total: int = 0
    records: int = 0
    record_lines: int = 0
    blank: int = 0
    rejected_lines: list[int] = field(default_factory=list)

    def freeze(self) -> LineCounts:
        return LineCounts(
            total=self.total, header=self.header, records=self.records,
            record_lines=self.record_lines, blank=self.blank,
            rejected=tuple(self.rejected_lines),
        )


@dataclass(frozen=True)
class _Record:
    """One CSV record: its first and last physical line (1-based), fields, parse error,
    and the raw text to show when the fields are not available."""

    first: int
    last: int
    fields: list[str]
    error: str | None = None
    raw: str | None = None


def _record_problem(
    rec: _Record, fields: list[str], *, header: list[str], maybe_bad: bool, hint: str
) -> str | None:
    """Why `rec` cannot be a row (naming its line or lines), or None when it is fine."""
    where = f"line {rec.first}" if rec.first == rec.last else f"lines {rec.first}-{rec.last}"
    if rec.error is not None:
        return f"malformed CSV at {where}: {rec.error}"
    if len(fields) != len(header):
        return (f"{len(fields)} field(s), the header has {len(header)} ({where}); "
                f"a separator or quote is missing or extra")
    if maybe_bad:
        bad = [header[i] for i, v in enumerate(fields) if _has_bad_bytes(v)]
        if bad:
            return f"bytes that are not UTF-8 in column {bad[0]!r} ({where}); {hint}"
    return None


def _records(lines: list[str], *, start: int, sep: str, header: list[str]) -> Iterator[_Record]:
    """The records of `lines` after the first `start` (the header), in order.

    A malformed record (a parse error or the wrong number of fields) that spans several
    physical lines is a quote left open on its first line: that line is yielded alone as
    a broken quote and reading starts again on the second line, so the lines a broken
    quote ran into are read as the records they are. Well-formed records that span lines
    (a quoted multi-line value, closed later) are kept whole.
    """
    pos = start  # 0-based index of the next unread line
    while pos < len(lines):
        reader = csv.reader(map(lines.__getitem__, range(pos, len(lines))), delimiter=sep,
                            strict=True)
        read = 0  # lines this reader has consumed
        for fields, error, line_num in _parse(reader):
            first, last = pos + read + 1, pos + line_num
            read = line_num
            malformed = error is not None or bool(fields and len(fields) != len(header))
            if malformed and last > first:
                yield _broken_quote(lines[first - 1], first, sep=sep, header=header,
                                    next_whole=_whole_record(lines[first], sep, len(header)))
                pos = first
                break
            raw = lines[first - 1].rstrip("\r\n") if error is not None else None
            yield _Record(first, last, fields, error, raw=raw)
        else:
            return


def _parse(reader: Any) -> Iterator[tuple[list[str], str | None, int]]:
    """(fields, error, lines consumed so far) per record; a malformed record has no
    fields, and the reader resumes on the line after the error."""
    while True:
        try:
            fields, error = next(reader), None
        except StopIteration:
            return
        except csv.Error as exc:
            fields, error = [], str(exc)
            if "unexpected end of data" in error:
                error = "a quoted field is not closed before the end of the file"
        yield fields, error, reader.line_num


def _whole_record(line: str, sep: str, width: int) -> bool:
    """Whether `line` alone parses as one record of `width` fields."""
    try:
        return len(next(csv.reader([line], delimiter=sep, strict=True))) == width
    except (csv.Error, StopIteration):
        return False


def _broken_quote(
    line: str, number: int, *, sep: str, header: list[str], next_whole: bool
) -> _Record:
    """The rejected record for a quote opened on physical line `number` and not closed
    there, naming the column whose field the quote opens; `next_whole`: the next line
    reads as a record of its own."""
    text = line.rstrip("\r\n")
    try:  # closing the quote at the line's end shows which field it opened
        opened = len(next(csv.reader([text + '"'], delimiter=sep)))
        column = f" in column {header[opened - 1]!r}" if 0 < opened <= len(header) else ""
    except (csv.Error, StopIteration):
        column = ""
    after = (f"line {number + 1} reads as a record of its own" if next_whole else
             "the record it starts is malformed")
    error = (f"a quote opened{column} is not closed on its line, and {after}: line {number} "
             f"is rejected alone and reading resumes on line {number + 1} (broken quote)")
    return _Record(number, number, [], error, raw=text)


def _read_jsonl(path: Path, src: Path | bytes, *, max_line_bytes: int | None = None,
                key: str = "<name>") -> ReadResult:
    long_lines: list[dict[str, object]] = []
    if max_line_bytes is not None:
        with (io.BytesIO(src) if isinstance(src, bytes) else path.open("rb")) as stream:
            data, long_lines = _cap_lines(stream, max_line_bytes,
                                          setting=f"sources.{key}.max_line_bytes")
    else:
        data = src if isinstance(src, bytes) else path.read_bytes()
    if long_lines:  # their lines are blank now: the by-line reader keeps the numbering
        read = _read_jsonl_by_line(path, data, extra_rejects=len(long_lines))
        rejects = pl.concat([read.rejects, pl.DataFrame(long_lines, schema=REJECT_SCHEMA)])
        return ReadResult(read.rows, rejects.sort(ROW))
    if b"\n\n" not in data.replace(b"\r\n", b"\n").strip(b"\n"):
        try:  # fast path: well-formed file with no blank lines, so row == line number
            df = pl.read_ndjson(data, infer_schema_length=None)
        except (pl.exceptions.PolarsError, ValueError):
            pass
        else:
            return ReadResult(_with_row(df), _no_rejects())
    return _read_jsonl_by_line(path, data)


_CHUNK = 1 << 20


def _cap_lines(stream: io.BufferedIOBase | io.BytesIO, limit: int, *, setting: str
               ) -> tuple[bytes, list[dict[str, object]]]:
    """The stream's bytes with every line longer than `limit` bytes left blank, read in
    1 MiB chunks: a long line is never held whole (its first bytes are kept for the
    reject). Returns the bytes and a reject (line number, reason, raw start) per long line."""
    out = bytearray()
    rejects: list[dict[str, object]] = []
    line = bytearray()  # the current line, while it is within the limit
    length, number, over = 0, 1, False

    def end_line() -> None:
        nonlocal length, number, over
        if over:
            rejects.append({ROW: number, "raw": _shown_bytes(bytes(line)), "reason": (
                f"line {number} is {length:,} bytes, over {setting} ({limit:,}); "
                f"rejected without being read")})
        else:
            out.extend(line)
        line.clear()
        length, over = 0, False
        number += 1

    while chunk := stream.read(_CHUNK):
        start = 0
        while start < len(chunk):
            nl = chunk.find(b"\n", start)
            stop = len(chunk) if nl < 0 else nl
            piece = chunk[start:stop]
            length += len(piece)
            if not over and length > limit:
                over = True
                del line[_RAW_EXCERPT:]
            if not over:
                line.extend(piece)
            elif len(line) < _RAW_EXCERPT:
                line.extend(piece[: _RAW_EXCERPT - len(line)])
            if nl < 0:
                break
            end_line()
            out.extend(b"\n")
            start = nl + 1
    if length or over:
        end_line()
    return bytes(out), rejects


def _shown_bytes(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")[:_RAW_EXCERPT]


def _read_jsonl_by_line(path: Path, data: bytes, *, extra_rejects: int = 0) -> ReadResult:
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
    if not records and not rejects and not extra_rejects:
        raise InputError(f"{path}: no JSON records (only blank lines)")
    if not records and rejects:
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
    """A Label Studio JSON export. As annotations: long annotations (item, annotator,
    label, timestamp, annotation_id; one row per submitted choice, cancelled and empty
    ones skipped). As items (task preference): one row per task, the task object as JSON
    text in `task`, read as judgments or rankings by the spec's field names later
    (`labelgate.stages.preference.read.from_label_studio`)."""
    if not isinstance(source, AnnotationSourceSpec):
        tasks = label_studio_tasks(path)
        rows = pl.DataFrame({"task": [json.dumps(t) for t in tasks]}, schema={"task": pl.String})
        return ReadResult(_with_row(rows), _no_rejects())
    export = parse_label_studio_export(path, item_field=source.item_field,
                                       from_name=source.from_name)
    return ReadResult(_with_row(export.annotations), _no_rejects())
