"""A night's splits write what changed: the sticky assignments of new and moved keys, and
``last_run`` for the rest; units from one link column without a graph (issue 26)."""

from __future__ import annotations

import duckdb
import numpy as np
import polars as pl
import pytest

from labelgate.stages.dedup import DuplicateResult
from labelgate.stages.splits import (
    _key_order,
    _unit_codes,
    assign_splits,
    join_beside,
    leakage,
    prefix_join,
)
from labelgate.store.assignments import load_assignments, save_assignments


def _rows(n: int, *, start: int = 0, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    return pl.DataFrame({
        "id": [f"k{i:05d}" for i in range(start, start + n)],
        "y": rng.choice(["a", "b", "c"], n).tolist(),
        "cluster": [f"c{v}" if v < 40 else None for v in rng.integers(0, 80, n)],
    })


@pytest.mark.parametrize("removed", [0, 30])
def test_a_night_stores_what_a_full_upsert_stores(removed: int) -> None:
    con = duckdb.connect()
    first = _rows(400)
    r1 = assign_splits(first, key_column="id", label_column="y", run_id="r1",
                       unit_column="cluster")
    save_assignments(con, r1.assignments, dataset="ds", run_id="r1")
    save_assignments(con, r1.assignments.head(5), dataset="other", run_id="r1")
    # the night: some keys gone, new keys, and ten old clusters merged into one
    merged = pl.col("cluster").replace({f"c{i}": "c0" for i in range(10)})
    night = pl.concat([first.slice(removed), _rows(60, start=1000, seed=1)]).with_columns(
        merged)
    previous = load_assignments(con, dataset="ds")
    r2 = assign_splits(night, key_column="id", label_column="y", run_id="r2",
                       unit_column="cluster", previous=previous)
    assert r2.summary["new_rows"] == 60 and r2.summary["removed_rows"] == removed
    moved = set(r2.assignments.filter("moved").get_column("key").to_list())
    assert moved  # the merged units' keys moved towards test
    assert save_assignments(con, r2.assignments, dataset="ds", run_id="r2") == night.height
    stored = {r[0]: r[1:] for r in load_assignments(con, dataset="ds").iter_rows()}
    before = {r[0]: r[1:] for r in previous.iter_rows()}
    now = {r[0]: r[1:] for r in r2.assignments.select("key", "split").iter_rows()}
    assert len(stored) == 400 + 60
    for key, (split, first_run, last_run) in stored.items():
        if key in now:
            old_first = before[key][1] if key in before else "r2"
            assert (split, first_run, last_run) == (now[key][0], old_first, "r2")
        else:  # removed: as it was
            assert (split, first_run, last_run) == before[key]
    assert load_assignments(con, dataset="other").get_column("last_run").to_list() == ["r1"] * 5


def test_a_night_with_nothing_new_only_updates_last_run() -> None:
    con = duckdb.connect()
    rows = _rows(100)
    r1 = assign_splits(rows, key_column="id", label_column="y", run_id="r1")
    save_assignments(con, r1.assignments, dataset="ds", run_id="r1")
    r2 = assign_splits(rows, key_column="id", label_column="y", run_id="r2",
                       previous=load_assignments(con, dataset="ds"))
    save_assignments(con, r2.assignments, dataset="ds", run_id="r2")
    stored = load_assignments(con, dataset="ds")
    assert stored.select("key", "split").equals(r1.assignments.select("key", "split"))
    assert set(stored.get_column("first_run")) == {"r1"}
    assert set(stored.get_column("last_run")) == {"r2"}


def _units(work: pl.DataFrame, links: list[str]) -> pl.Series:
    """Each row's unit name (its smallest key)."""
    place, ordered = _key_order(work)
    return ordered.gather(_unit_codes(work, links, place))


@pytest.mark.parametrize("shuffled", [False, True])
def test_units_of_one_link_column_are_its_components(shuffled: bool) -> None:
    rows = _rows(3000, seed=3).rename({"id": "key"})
    if shuffled:  # keys not in order: each key's place in key order is sorted for
        rows = rows.sample(fraction=1.0, seed=4)
    rows = rows.with_row_index("_i")
    one = _units(rows, ["cluster"])
    # the same column twice takes the graph's connected components
    twice = _units(rows.with_columns(pl.col("cluster").alias("again")), ["cluster", "again"])
    assert one.equals(twice)
    assert one.n_unique() == rows.get_column("cluster").n_unique() - 1 + int(
        rows.get_column("cluster").null_count())
    smallest = rows.select(pl.when(pl.col("cluster").is_null()).then("key")
                           .otherwise(pl.col("key").min().over("cluster"))).to_series()
    assert one.to_list() == smallest.to_list()  # a unit is named by its smallest key


@pytest.mark.parametrize(("links", "imported"), [
    ({}, False),
    ({"group_column": "cluster"}, False),
    ({"unit_column": "cluster"}, False),
    ({"group_column": "cluster", "unit_column": "again"}, True),
])
def test_units_import_scipys_graph_module_for_two_link_columns_only(
        links: dict[str, str], imported: bool) -> None:
    """No link column or one needs no graph: a run's splits without dedup (or with dedup
    and no group) do not import scipy's graph module (`_unit_codes`)."""
    import subprocess
    import sys

    code = (
        "import sys, polars as pl\n"
        "from labelgate.stages.splits import assign_splits\n"
        "rows = pl.DataFrame({'id': ['a', 'b', 'c', 'd'], 'y': ['p', 'q', 'p', 'q'],\n"
        "                     'cluster': ['x', 'x', None, 'z']})\n"
        "rows = rows.with_columns(pl.col('cluster').alias('again'))\n"
        f"r = assign_splits(rows, key_column='id', label_column='y', run_id='r', **{links!r})\n"
        "assert r.assignments.height == 4\n"
        "print('scipy.sparse.csgraph' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == str(imported)


@pytest.mark.parametrize("keys", [
    ["a", "b", "c", "d"],          # sorted, unique: by position
    ["c", "a", "d", "b"],          # unique, not sorted: by position
    ["a", "b", "b", "c"],          # repeated: a join
    ["a", None, "c", "d"],         # a null key: a join (null matches nothing)
])
def test_join_beside_takes_a_table_in_the_frames_order_by_position(
        keys: list[str | None]) -> None:
    frame = pl.DataFrame({"k": keys, "t": [1, 2, 3, 4]})
    same_order = pl.DataFrame({"k": keys, "v": [10.0, 20.0, 30.0, 40.0]})
    other = pl.DataFrame({"k": ["d", "a"], "w": ["x", "y"]})
    got = join_beside(frame, [same_order, other], "k")
    want = frame.join(same_order, on="k", how="left", maintain_order="left").join(
        other, on="k", how="left", maintain_order="left")
    assert got.equals(want)


@pytest.mark.parametrize("stored", [["a", "b"], ["b", "a"], ["a", "c"], [], ["a", "b", "c", "d"]])
def test_prefix_join_is_a_left_join(stored: list[str]) -> None:
    frame = pl.DataFrame({"key": ["a", "b", "c", "d"], "t": [1, 2, 3, 4]})
    table = pl.DataFrame({"key": stored, "split": [f"s-{k}" for k in stored]},
                         schema={"key": pl.String, "split": pl.String})
    want = frame.join(table, on="key", how="left", maintain_order="left")
    assert prefix_join(frame, table, on="key").equals(want)


def test_a_night_assigns_as_a_run_over_its_rows_in_another_order() -> None:
    """Sorted keys (a night's: units by row index) and shuffled keys (by a sort) give the
    same assignments, units named by their smallest key, and the same summary."""
    first = _rows(500, seed=5)
    r1 = assign_splits(first, key_column="id", label_column="y", run_id="r1",
                       unit_column="cluster")
    previous = r1.assignments.select("key", "split", "first_run")
    night = pl.concat([first, _rows(80, start=2000, seed=6)]).with_columns(
        pl.col("cluster").replace({f"c{i}": "c0" for i in range(10)}))  # merged: moved
    runs = [assign_splits(frame, key_column="id", label_column="y", run_id="r2",
                          unit_column="cluster", previous=previous)
            for frame in (night, night.sample(fraction=1.0, seed=7))]
    assert runs[0].assignments.equals(runs[1].assignments)
    assert runs[0].summary == runs[1].summary and runs[0].removed.is_empty()
    got = runs[0].assignments
    named = night.select(pl.col("id").alias("key"), pl.when(pl.col("cluster").is_null())
                         .then("id").otherwise(pl.col("id").min().over("cluster")).alias("unit"))
    assert got.select("key", "unit").equals(named.sort("key"))
    sticky = got.filter(~pl.col("new")).join(previous, on="key")
    moved = sticky.filter(pl.col("split") != pl.col("split_right"))
    assert moved.height == runs[0].summary["moved_rows"] and moved.height > 0
    assert set(moved.get_column("split").to_list()) <= {"validation", "test"}
    assert runs[0].summary["units"] == got.get_column("unit").n_unique()


def _pairs_across(kept: pl.DataFrame, clusters: pl.DataFrame, by: list[str]) -> int:
    """Pairs of members of one group (``by``) in different splits, counted pair by pair."""
    rows = clusters.join(kept.rename({"k": "id"}), on="id").iter_rows(named=True)
    members = list(rows)
    return sum(1 for i, a in enumerate(members) for b in members[i + 1:]
               if all(a[c] == b[c] for c in by) and a["split"] != b["split"])


@pytest.mark.parametrize("leaks", [False, True])
def test_leakage_counts_what_every_pair_counts(leaks: bool) -> None:
    rng = np.random.default_rng(8)
    n = 300
    clusters = pl.DataFrame({
        "cluster_id": [f"c{i // 6:03d}" for i in range(n)],
        "id": [f"k{i:04d}" for i in rng.permutation(n)],
        "exact_group": [f"e{i // 3:03d}" for i in range(n)],
    })
    split = pl.col("cluster_id").str.slice(1).cast(pl.Int32) % 3  # one split per cluster
    kept = clusters.select(pl.col("id").alias("k"), split.replace_strict(
        {0: "train", 1: "validation", 2: "test"}).alias("split"))
    if leaks:  # some members move to another split; some members are not kept
        kept = kept.with_columns(pl.when(pl.int_range(pl.len()) % 17 == 0)
                                 .then(pl.lit("test")).otherwise("split").alias("split"))
        kept = kept.filter(pl.int_range(pl.len()) % 13 != 0)
    got = leakage(kept, key_column="k", duplicates=clusters)
    cross = _pairs_across(kept, clusters, ["cluster_id"])
    exact = _pairs_across(kept, clusters, ["cluster_id", "exact_group"])
    assert (got["near_pairs"] + got["exact_pairs"], got["exact_pairs"]) == (cross, exact)
    assert (got["total"] > 0) == leaks


def test_save_with_the_stored_read_given_stores_what_a_save_that_reads_stores() -> None:
    first = _rows(300)
    r1 = assign_splits(first, key_column="id", label_column="y", run_id="r1",
                       unit_column="cluster")
    night = pl.concat([first.slice(10), _rows(40, start=1000, seed=2)])
    tables = []
    for given in (False, True):
        con = duckdb.connect()
        save_assignments(con, r1.assignments, dataset="ds", run_id="r1")
        previous = load_assignments(con, dataset="ds", last_run=False)
        assert previous.columns == ["key", "split", "first_run"]
        r2 = assign_splits(night, key_column="id", label_column="y", run_id="r2",
                           unit_column="cluster", previous=previous)
        save_assignments(con, r2.assignments, dataset="ds", run_id="r2",
                         stored=previous if given else None)
        tables.append(load_assignments(con, dataset="ds"))
    assert tables[0].equals(tables[1]) and tables[0].height == 340



def _dup_result() -> tuple[pl.DataFrame, DuplicateResult]:
    """Rows with exact and near duplicates and their full dedup result."""
    from labelgate.spec import parse_spec
    from labelgate.stages.steps import detect_duplicates
    from tests.conftest import spec_dict

    n = 240
    texts = [f"the same words about topic {i % 17} again" if i % 5 else
             f"the same words about topic {i % 17} again!" if i % 2 else f"unique {i}"
             for i in range(n)]
    valid = pl.DataFrame({"tweet_id": [f"t{(i * 7) % n:04d}" for i in range(n)],
                          "text": texts, "sentiment": [("a", "b", "c")[i % 3] for i in range(n)]})
    spec = parse_spec(spec_dict(columns={"id": "tweet_id", "text": ["text"],
                                         "label": "sentiment"},
                                dedup={"near": {"threshold": 0.8}}, splits={}))
    return valid, detect_duplicates(valid, spec=spec).result


@pytest.mark.parametrize("leaks", ["none", "moved", "null split"])
def test_leakage_is_counted_whenever_the_unit_check_sees_a_cluster_across_splits(
    leaks: str,
) -> None:
    from labelgate.stages.split_step import _clusters_across_splits

    _, result = _dup_result()
    clusters = result.clusters.with_columns(pl.col("cluster_id", "id", "exact_group")
                                            .cast(pl.String))
    assert clusters.get_column("cluster_id").n_unique() > 3
    assert (clusters.get_column("kind") == "near").any()
    units = result.cluster_of.select(pl.col("id").cast(pl.String).alias("_lg_key"),
                                     pl.col("cluster_id").cast(pl.String).alias("_lg_unit"))
    code = pl.col("_lg_unit").hash(seed=1) % 3  # one split per cluster
    kept = units.with_columns(code.replace_strict({0: "train", 1: "validation", 2: "test"})
                              .alias("split"))
    i = pl.int_range(pl.len())
    if leaks == "moved":  # some members in another split, some not kept
        kept = kept.with_columns(pl.when(i % 11 == 0).then(pl.lit("test"))
                                 .otherwise("split").alias("split")).filter(i % 13 != 0)
    if leaks == "null split":  # a member without a split: the full count decides
        first = clusters.get_column("id")[0]
        kept = kept.with_columns(pl.when(pl.col("_lg_key") == first).then(None)
                                 .otherwise("split").alias("split"))
    whole = leakage(kept, key_column="_lg_key", duplicates=clusters)
    across = _clusters_across_splits(kept)
    assert across == (leaks != "none")
    checked = leakage(kept, key_column="_lg_key", duplicates=clusters if across else None)
    assert checked == whole
    assert (whole["total"] > 0) == (leaks == "moved")


def test_make_splits_leakage_with_the_unit_check_is_the_member_join_s(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from types import SimpleNamespace

    from labelgate.spec import parse_spec
    from labelgate.stages import split_step
    from tests.conftest import spec_dict

    valid, result = _dup_result()
    seen: list[pl.DataFrame] = []

    def recorded(kept: pl.DataFrame, **kw: object) -> dict[str, int]:
        seen.append(kept)
        return leakage(kept, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(split_step, "leakage", recorded)
    spec = parse_spec(spec_dict(columns={"id": "tweet_id", "text": ["text"],
                                         "label": "sentiment"},
                                dedup={"near": {"threshold": 0.8}}, splits={}))
    made = split_step.make_splits(valid, spec=spec, run_id="r1", previous=None, issues=None,
                                  dups=SimpleNamespace(result=result))  # type: ignore[arg-type]
    assert len(seen) == 1 and "_lg_unit" in seen[0].columns
    clusters = result.clusters.with_columns(pl.col("cluster_id", "id", "exact_group")
                                            .cast(pl.String))
    assert made.sections()["leakage"] == leakage(seen[0], key_column="_lg_key",
                                                 duplicates=clusters)
    assert "_lg_unit" not in made.kept.columns or not split_step.lean_kept(spec)


@pytest.mark.parametrize("use_strata", [True, False])
def test_unit_splits_from_one_pass_match_the_two_group_bys(use_strata: bool) -> None:
    from labelgate.stages import splits as sp

    rng = np.random.default_rng(11)
    n = 3000
    names = ["a", "b", "c", None]
    labels = [names[i] for i in rng.choice(4, n, p=[0.4, 0.3, 0.25, 0.05])]
    work = pl.DataFrame({
        "_uc": pl.Series(rng.integers(0, 700, n), dtype=pl.UInt32), "label": labels,
        "_rank": pl.Series(rng.integers(0, 6, n), dtype=pl.Int8),
    })  # each row's previous rank, null for a new row (some units all new, some mixed)
    work = work.with_columns(pl.when((pl.col("_rank") < 3)
                                     & (pl.col("_uc").hash(seed=2) % 3 > 0))
                             .then("_rank").alias("_rank"))
    # the unit's rank as the window over every row gave it (before: _unit_rows)
    work = work.with_columns(pl.col("_rank").max().over("_uc").alias("_unit_rank"))
    assert work.get_column("_unit_rank").null_count() > 0
    ordered = pl.Series([f"k{i:04d}" for i in range(n)])
    target = {"train": 0.8, "validation": 0.1, "test": 0.1}
    got = sp._unit_splits(work, target=target, ordered=ordered, seed=3,
                          use_strata=use_strata).sort("_uc")
    # the two group-bys it replaces: the strata, then the sizes and ranks
    strata = (work.group_by("_uc", "label").len()
              .sort(["_uc", "len", "label"], descending=[False, True, False], nulls_last=True)
              .group_by("_uc", maintain_order=True).agg(pl.col("label").first().alias("stratum"))
              if use_strata else work.select("_uc").unique().with_columns(
                  pl.lit(None, pl.String).alias("stratum")))
    units = work.group_by("_uc").agg(pl.len().alias("size"),
                                     pl.col("_unit_rank").first().alias("rank")
                                     ).join(strata, on="_uc", how="left")
    chosen = sp._assign_new_units(units, target=target, ordered=ordered, seed=3)
    want = units.join(chosen, on="_uc", how="left").select(
        "_uc", pl.coalesce(pl.col("rank").replace_strict(dict(enumerate(sp.SPLITS)),
                                                         default=None, return_dtype=pl.String),
                           "new_split").alias("split"), "stratum").sort("_uc")
    assert got.equals(want)
    assert got.get_column("stratum").null_count() < got.height or not use_strata
    summary = sp._summary(work.join(got, on="_uc").with_columns(
        pl.lit(False).alias("new"), pl.lit(False).alias("moved")), target, 0, use_strata,
        units=got.height)
    per_split = dict(work.join(got, on="_uc").group_by("split").len().rows())
    assert summary["rows_per_split"] == {s: per_split.get(s, 0) for s in target}
    assert sum(summary["rows_per_split"].values()) == n


@pytest.mark.parametrize(("stored", "now", "refused"), [
    ("test", "train", True), ("test", "validation", True), ("validation", "train", True),
    ("train", "validation", False), ("train", "test", False), ("validation", "test", False),
])
def test_save_compares_the_ranks_of_the_keys_whose_split_differs(
        stored: str, now: str, refused: bool) -> None:
    """Only the keys whose split differs from the stored one have their ranks looked up
    (a night's moved keys): every backwards move among many kept keys is still refused,
    with the examples a comparison of every key gives, and nothing written; a move
    towards test is stored."""
    from labelgate.errors import InputError
    from labelgate.store.assignments import load_assignments, save_assignments

    con = duckdb.connect()
    keys = [f"k{i:03d}" for i in range(300)]
    first = pl.DataFrame({"key": keys, "split": ["train", "validation", "test"] * 100,
                          "first_run": ["r1"] * 300})
    save_assignments(con, first, dataset="ds", run_id="r1")
    night = first.filter(pl.col("split") == stored).slice(40, 2).select("key")
    move = pl.col("key").is_in(night.get_column("key").implode())
    now_rows = first.with_columns(pl.when(move).then(pl.lit(now)).otherwise("split")
                                  .alias("split"))
    if refused:
        with pytest.raises(InputError, match="less held-out") as err:
            save_assignments(con, now_rows, dataset="ds", run_id="r2")
        for key in night.get_column("key"):
            assert f"('{key}', '{stored}', '{now}')" in str(err.value)
        assert set(load_assignments(con, dataset="ds").get_column("last_run")) == {"r1"}
    else:
        save_assignments(con, now_rows, dataset="ds", run_id="r2")
        got = load_assignments(con, dataset="ds")
        assert got.select("key", "split").equals(now_rows.select("key", "split"))
    with pytest.raises(InputError, match=r"unknown split\(s\) \['holdout'\]"):
        save_assignments(con, now_rows.with_columns(pl.when(pl.col("key") == "k007").then(
            pl.lit("holdout")).otherwise("split").alias("split")), dataset="ds", run_id="r3")


@pytest.mark.parametrize("key", ["k001", "new"])
def test_a_null_split_is_refused_not_kept(key: str) -> None:
    """A null split, for a stored key or a new one, is an unknown split: refused by name
    with nothing written (a null must not pass as "kept its split")."""
    from labelgate.errors import InputError
    from labelgate.store.assignments import load_assignments, save_assignments

    con = duckdb.connect()
    first = pl.DataFrame({"key": ["k000", "k001"], "split": ["train", "test"],
                          "first_run": ["r1", "r1"]})
    save_assignments(con, first, dataset="ds", run_id="r1")
    night = pl.concat([first.filter(pl.col("key") != key),
                       pl.DataFrame({"key": [key], "split": [None], "first_run": ["r2"]},
                                    schema=first.schema)])
    with pytest.raises(InputError, match=r"unknown split\(s\) \[None\]"):
        save_assignments(con, night, dataset="ds", run_id="r2")
    got = load_assignments(con, dataset="ds").sort("key")
    assert got.select("key", "split", "last_run").rows() == [
        ("k000", "train", "r1"), ("k001", "test", "r1")]
