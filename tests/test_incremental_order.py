"""A night's kept label-issue rows are found by position when they come first in their
order, and by a join on the id otherwise: both give the same plan and probabilities."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import polars as pl
import pytest

from labelgate.stages.label_issues.incremental import (
    KeptRows,
    combined_probabilities,
    kept_come_first,
    plan_refresh,
)

NOW = datetime(2026, 12, 6, tzinfo=UTC)


def _kept(n: int) -> KeptRows:
    rng = np.random.default_rng(0)
    p = rng.random((n, 2)).astype(np.float32)
    rows = pl.DataFrame({"id": [f"r{i}" for i in range(n)],
                         "h": np.arange(n, dtype=np.uint64) * 7,
                         "c0": p[:, 0], "c1": p[:, 1]})
    return KeptRows(rows=rows, classes=["a", "b"], models_from="run-1", trained_rows=n,
                    trained_at=NOW)


def _current(kept: KeptRows, *, new: int, order: list[int] | None = None,
             change: int | None = None) -> pl.DataFrame:
    cur = pl.concat([kept.rows.select("id", "h"), pl.DataFrame(
        {"id": [f"n{i}" for i in range(new)], "h": np.full(new, 1, dtype=np.uint64)})])
    if change is not None:
        cur = cur.with_columns(pl.when(pl.int_range(pl.len()) == change).then(pl.lit(99, pl.UInt64))
                               .otherwise(pl.col("h")).alias("h"))
    return cur if order is None else cur[order]


@pytest.mark.parametrize("change", [None, 3])
def test_position_and_join_give_the_same_plan_and_probabilities(change: int | None) -> None:
    kept = _kept(20)
    appended = _current(kept, new=4, change=change)
    order = list(np.random.default_rng(1).permutation(24))
    shuffled = _current(kept, new=4, order=order, change=change)
    plans = [plan_refresh(cur, kept, classes=["a", "b"], max_new_share=0.5, every_days=7,
                          now=NOW) for cur in (appended, shuffled)]
    assert kept_come_first(appended, kept.rows, new=plans[0].new)
    assert not kept_come_first(shuffled, kept.rows, new=plans[1].new)
    assert plans[0].reason == plans[1].reason
    assert plans[0].incremental == (change is None)
    assert np.array_equal(plans[0].new[order], plans[1].new)
    fresh = np.full((4, 2), 0.5, dtype=np.float32)
    probs = [combined_probabilities(cur, kept, new_probabilities=fresh, new=plan.new)
             for cur, plan in zip((appended, shuffled), plans, strict=True)]
    assert np.array_equal(probs[0][order], probs[1])
    assert np.array_equal(probs[0][:20], kept.rows.select("c0", "c1").to_numpy())


def test_a_new_row_repeating_a_kept_id_is_not_taken_by_position() -> None:
    kept = _kept(5)
    cur = pl.concat([kept.rows.select("id", "h"),
                     pl.DataFrame({"id": ["r2"], "h": np.array([5], dtype=np.uint64)})])
    plan = plan_refresh(cur, kept, classes=["a", "b"], max_new_share=0.5, every_days=7,
                        now=NOW)
    assert not kept_come_first(cur, kept.rows, new=plan.new)
    assert not plan.incremental and "1 of the 5 kept rows changed" in plan.reason
