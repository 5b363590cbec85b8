"""Short CSV records: polars pads a record with too few fields with nulls, so a file whose
last column has nulls may hide one. pyarrow's CSV parser counts the fields of every record
in C++; the count runs on a thread of its own while the reader does its line arithmetic
(pyarrow releases the GIL), and its answer is awaited only when the reader needs it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl

from labelgate.spec import AnySource


def asked(data: bytes, source: AnySource, df: pl.DataFrame) -> Callable[[], bool]:
    """Whether `df`, polars' read of `data`, may hide a short record, as a function that
    answers (waiting for pyarrow's count when one had to be started). A blank line reads as
    an all-null row (the by-record path skips it): answered yes at once. A failure in the
    count answers yes (the caller then reads record by record)."""
    if df.width <= 1 or df.get_column(df.columns[-1]).null_count() == 0:
        return lambda: False
    if bool(df.select(pl.all_horizontal(pl.all().is_null()).any()).item()):
        return lambda: True
    found: list[bool] = []
    last = df.columns[-1]
    worker = threading.Thread(
        target=lambda: found.append(has_short_records(data, source, last=last)),
        name="labelgate-short-records", daemon=True,
    )
    worker.start()

    def answer() -> bool:
        worker.join()
        return found[0] if found else True

    return answer


def has_short_records(src: Path | bytes, source: AnySource, *, last: str) -> bool:
    """Whether any record has fewer fields than the header (polars pads those with nulls).

    pyarrow's CSV parser counts the fields per record in C++, so a clean file whose last
    column has empty values keeps the fast path; any doubt (an encoding pyarrow cannot
    check, a parse error) answers yes and the caller reads the file record by record. It
    runs on one thread (docs/benchmarks/readers.md says why).
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
