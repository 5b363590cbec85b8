"""Counting one character in a CSV file's bytes and in the values polars parsed from them.

The CSV fast path proves polars' read complete by arithmetic on these counts: every
physical line is the header, a record's end or a line break inside a quoted value
(`readers._fast_line_counts`), and every record has the header's fields
(`short_records.hidden`): a character counted in the bytes is either structure or inside
a value, and the values are what polars parsed.
"""

from __future__ import annotations

import polars as pl


def in_bytes(data: bytes, char: str) -> int:
    """How many times `char` (one byte in UTF-8) occurs in `data`.

    polars compares the bytes, seen through numpy without a copy, in vectorized code
    (`bytes.count` walks them a byte at a time, holding the GIL).
    """
    import numpy as np  # polars' zero-copy view of the bytes; imported by the time a run ingests

    (code,) = char.encode()
    return int((pl.Series(np.frombuffer(data, dtype=np.uint8)) == code).sum())


def in_values(df: pl.DataFrame, char: str) -> int:
    """How many times `char` occurs in the text values of `df` (nulls hold none)."""
    if not df.width:
        return 0
    found = pl.col(pl.String).str.count_matches(char, literal=True).fill_null(0).sum()
    return int(df.select(pl.sum_horizontal(found)).item() or 0)
