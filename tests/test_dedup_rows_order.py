"""The kept graph's rows: key numbers taken in place when the rows come in input order,
joined on the id otherwise; the same frame either way."""

from __future__ import annotations

import polars as pl

from labelgate.stages.dedup_incremental import _rows_in_order


def test_rows_in_order_same_with_or_without_the_join() -> None:
    rows = pl.DataFrame({"id": ["c", "a", "b"], "h": [7, 8, 9], "r": [2, 0, 1]},
                        schema_overrides={"h": pl.UInt64})
    in_order = pl.DataFrame({"id": ["c", "a", "b"], "k": [5, 3, 5]})
    shuffled = in_order.reverse()
    want = pl.DataFrame({"id": ["c", "a", "b"], "k": [5, 3, 5], "r": [2, 0, 1],
                         "h": [7, 8, 9]}, schema_overrides={"h": pl.UInt64})
    assert _rows_in_order(rows, in_order).equals(want)
    assert _rows_in_order(rows, shuffled).equals(want)
    partial = _rows_in_order(rows, in_order.head(2))
    assert partial.get_column("k").to_list() == [5, 3, None]


def test_compacted_keeps_the_strings() -> None:
    from labelgate.stages.dedup import _compacted

    big = pl.Series("key", [f"text number {i} " * 3 for i in range(1000)] + [None, ""])
    picked = big.gather([5, 999, 1000, 1001, 5])
    out = _compacted(picked)
    assert out.dtype == pl.String and out.name == "key"
    assert out.to_list() == picked.to_list()
