"""Short CSV records: polars pads a record with too few fields with nulls, so a file whose
last column has nulls may hide one. Counted, not parsed again: polars refuses a record with
more fields than the header, so no record of a file it read has fewer exactly when the
file's separators are the header's width less one per record (header included) plus the
ones inside values, which are in the values polars parsed. One exception: polars drops an
empty field at the very end of the data (`a,b` then `1,2,` and no line end), so there a
record one field too long could make up for a short one; such a file (it ends with the
separator) has its fields counted record by record by pyarrow's CSV parser."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from labelgate.spec import AnySource
from labelgate.stages.ingest import counting


def hidden(data: bytes, source: AnySource, df: pl.DataFrame) -> bool:
    """Whether `df`, polars' read of `data`, may hide a short record (then the caller reads
    the file record by record). A blank line reads as an all-null row (the by-record path
    skips it): yes at once. With `encoding: utf8-lossy`, yes whenever the last column has
    a null (pyarrow cannot check that encoding, so these files took the by-record path
    before the count, and still do)."""
    if df.width <= 1 or df.get_column(df.columns[-1]).null_count() == 0:
        return False
    if bool(df.select(pl.all_horizontal(pl.all().is_null()).any()).item()):
        return True
    sep = source.separator
    if source.encoding == "utf8-lossy" or len(sep.encode()) != 1:
        return True
    if data.endswith(sep.encode()):
        return has_short_records(data, source, last=df.columns[-1])
    structure = (df.width - 1) * (df.height + 1)
    quoted = sum(name.count(sep) for name in df.columns) + counting.in_values(df, sep)
    return counting.in_bytes(data, sep) != structure + quoted


def has_short_records(src: Path | bytes, source: AnySource, *, last: str) -> bool:
    """Whether any record has another number of fields than the header, by pyarrow's CSV
    parser (it counts the fields of every record in C++); any doubt (an encoding pyarrow
    cannot check, a parse error) answers yes."""
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
