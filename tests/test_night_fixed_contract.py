"""The cross-batch `unique` check looks only at rows whose value may repeat across parts
(issue 26): the same records as checking every row, for string, integer and float key
columns."""

from __future__ import annotations

from typing import Any

import polars as pl
import pytest

from checks.contract_batches import _PART, _repeats_across_batches, _sharing_a_value
from labelgate.spec import parse_spec
from tests.conftest import spec_dict


def _keys(values: list[Any], parts: list[int], dtype: Any) -> pl.DataFrame:
    return pl.DataFrame({
        _PART: pl.Series(parts, dtype=pl.UInt32),
        "_batch": [f"b{p}" for p in parts],
        "_row": list(range(1, len(values) + 1)),
        "tweet_id": pl.Series(values, dtype=dtype),
    })


def _every_row(keys: pl.DataFrame) -> list[int]:
    col = pl.col("tweet_id")
    return keys.filter(
        col.is_not_null() & col.is_first_distinct().over(_PART) & ~col.is_first_distinct()
    ).get_column("_row").to_list()


@pytest.mark.parametrize("dtype", [pl.String, pl.Int64, pl.Float64])
def test_repeats_across_batches_found_among_the_shared_values(dtype: Any) -> None:
    raw = [1, 2, 2, None, 3, 1, 4, None, 2, 5, 3, 3, 6, 1]
    parts = [0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 2]
    values = [None if v is None else (str(v) if dtype == pl.String else v) for v in raw]
    keys = _keys(values, parts, dtype)
    spec = parse_spec(spec_dict())
    found = _repeats_across_batches(keys, spec=spec, source="items", largest=0)
    # part 1: 1 (row 6) and 2 (row 9) seen in part 0; part 2: 3 (row 11, once) and 1 (row 14)
    assert found.get_column("row").to_list() == [6, 9, 11, 14] == _every_row(keys)
    assert set(found.get_column("check")) == {"unique"}
    shared = _sharing_a_value(keys, "tweet_id", largest=0).get_column("_row").to_list()
    if dtype != pl.Float64:  # floats are not narrowed
        assert shared == [1, 2, 3, 4, 5, 6, 8, 9, 11, 12, 14]


def test_sharing_a_value_keeps_every_row_of_a_shared_value() -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=80, deadline=None)
    @given(st.lists(st.tuples(st.one_of(st.none(), st.integers(0, 6)), st.integers(0, 3)),
                    max_size=40))
    def check(rows: list[tuple[int | None, int]]) -> None:
        rows = sorted(rows, key=lambda r: r[1])  # parts in batch order
        keys = _keys([None if v is None else f"v{v}" for v, _ in rows],
                     [p for _, p in rows], pl.String)
        sizes = keys.get_column(_PART).value_counts(sort=True)
        largest = int(sizes.get_column(_PART)[0]) if keys.height else 0
        shared = _sharing_a_value(keys, "tweet_id", largest=largest)
        spread = keys.group_by("tweet_id").agg(pl.col(_PART).n_unique().alias("parts"))
        across = set(spread.filter(pl.col("parts") > 1).get_column("tweet_id"))
        # every row of a value in two parts or more (the rest cannot fail across batches)
        assert set(shared.get_column("_row")) >= {
            r for r, v in zip(keys.get_column("_row"), keys.get_column("tweet_id"), strict=True)
            if v in across
        }
        assert _every_row(shared) == _every_row(keys)

    check()
