"""A night's reads in the order later steps need without a sort when the data is already in
it: the stored assignments in key order (issue 26), and the incremental dedup's per-key
smallest id rank and (cluster, label) pairs from several chunks."""

from __future__ import annotations

import duckdb
import numpy as np
import polars as pl
import pytest

from labelgate.stages.dedup import DedupSettings, find_duplicates_keeping
from labelgate.stages.dedup_incremental import detect
from labelgate.store.assignments import (
    _stored,
    load_assignments,
    save_assignments,
)


def _assignments(keys: list[str], split: str = "train") -> pl.DataFrame:
    return pl.DataFrame({"key": keys, "split": [split] * len(keys),
                         "first_run": ["r0"] * len(keys)})


@pytest.mark.parametrize("later", [["k9", "k7"], ["a1", "k05"], []])
def test_stored_assignments_come_back_in_key_order(later: list[str]) -> None:
    """Keys appended after the first run's (in or out of key order) are read in key
    order, as ORDER BY would give them; the key column flagged sorted when read as is."""
    con = duckdb.connect()
    first = [f"k{i}" for i in range(6)]  # k0..k5: written in key order
    save_assignments(con, _assignments(first), dataset="ds", run_id="r1")
    if later:
        save_assignments(con, _assignments(later), dataset="ds", run_id="r2")
    save_assignments(con, _assignments(["z"]), dataset="other", run_id="r1")
    # a key moved towards test is deleted and inserted again: the table order changes
    save_assignments(con, _assignments(["k1"], "test"), dataset="ds", run_id="r3")
    want = con.execute("SELECT split_key, split, first_run, last_run FROM split_assignments"
                       " WHERE dataset = 'ds' ORDER BY split_key").fetchall()
    got = load_assignments(con, dataset="ds")
    assert got.rows() == want
    assert got.get_column("key").to_list() == sorted(first + later)
    stored = _stored(con, dataset="ds")
    assert stored.columns == ["key", "stored_split", "stored_first_run"]
    assert stored.rows() == [r[:3] for r in want]


def test_in_table_order_is_flagged_sorted() -> None:
    con = duckdb.connect()
    save_assignments(con, _assignments(["a", "b", "c"]), dataset="ds", run_id="r1")
    got = load_assignments(con, dataset="ds", last_run=False)
    assert got.columns == ["key", "split", "first_run"]
    assert got.get_column("key").flags["SORTED_ASC"]


def _rows(n: int, *, start: int, seed: int, texts: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    words = [f"text number {v} about things" for v in rng.integers(0, texts, n)]
    return pl.DataFrame({"id": [f"i{v:05d}" for v in rng.permutation(np.arange(start, start + n))],
                         "text": words, "y": rng.choice(["a", "b", "c"], n).tolist()})


@pytest.mark.parametrize(("near", "texts"), [(False, 100), (True, 100), (False, 5000)])
def test_a_night_from_several_chunks_clusters_as_a_full_pass(near: bool, texts: int) -> None:
    """The night's rows in several chunks (kept batch + new batch, as a night reads them):
    the clusters, exact groups, sizes and label conflicts equal a full pass's (few texts:
    the (cluster, label) pairs found by presence; mostly distinct ones: by a sort)."""
    s = DedupSettings(id_column="id", text_columns=("text",), label_column="y", near=near,
                      threshold=0.5, shingle=3, num_perm=32)
    old = _rows(300, start=0, seed=1, texts=texts)
    _, kept, _ = detect(old, s, kept=None, max_new_share=0.5)
    night = pl.concat([old, _rows(40, start=5000, seed=2, texts=texts)], rechunk=False)
    assert night.get_column("id").n_chunks() == 2
    got, _, plan = detect(night, s, kept=kept, max_new_share=0.5)
    assert plan.incremental
    want, _ = find_duplicates_keeping(night.rechunk(), s)
    for name in ("clusters", "cluster_of", "conflicts", "sizes"):
        assert getattr(got, name).equals(getattr(want, name)), name
    assert got.conflicts.height > 0  # labels drawn at random: some clusters conflict


@pytest.mark.parametrize("use_strata", [True, False])
def test_the_summary_from_the_tally_is_the_summary_from_the_rows(use_strata: bool) -> None:
    """`_summary` from the rows per split, label and stratum (counted once for the counts
    too) equals the one that groups the rows themselves (null labels and strata kept)."""
    from labelgate.stages.splits import _summary

    rng = np.random.default_rng(5)
    n = 2000

    def pick(values: list[str | None], p: list[float]) -> list[str | None]:
        return [values[i] for i in rng.choice(len(values), n, p=p)]

    rows = pl.DataFrame({
        "split": pick(["train", "validation", "test"], [0.7, 0.2, 0.1]),
        "label": pick(["a", "b", None], [0.5, 0.45, 0.05]),
        "stratum": pick(["a", "b", None], [0.5, 0.45, 0.05]),
        "new": rng.random(n) < 0.1, "moved": rng.random(n) < 0.01})
    target = {"train": 0.8, "validation": 0.1, "test": 0.1}
    tally = rows.group_by("split", "label", "stratum").len()
    got = _summary(rows, target, 3, use_strata, units=900, tally=tally)
    want = _summary(rows, target, 3, use_strata, units=900)
    assert got == want
    assert got["max_stratum_share_deviation"] > 0 and got["new_rows"] > 0
