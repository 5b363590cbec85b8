"""Sticky, stratified, grouped splits; leakage; flagged-row policies; DuckDB storage."""

from __future__ import annotations

from typing import Any

import duckdb
import numpy as np
import polars as pl
import pytest

from labelgate.errors import InputError, SpecError
from labelgate.stages import splits as splits_module
from labelgate.stages.splits import (
    apply_flag_policy,
    assign_splits,
    join_beside,
    leakage,
    validate_fractions,
)
from labelgate.store.assignments import load_assignments, save_assignments

RANK = {"train": 0, "validation": 1, "test": 2}


def labelled(n: int, *, seed: int = 0, start: int = 0, groups: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    data: dict[str, Any] = {
        "id": [f"k{i:05d}" for i in range(start, start + n)],
        "y": rng.choice(["neg", "neu", "pos"], n, p=[0.6, 0.3, 0.1]).tolist(),
    }
    if groups:
        data["g"] = rng.integers(0, groups, n).tolist()
    return pl.DataFrame(data)


def split_of(result: Any) -> dict[str, str]:
    return dict(result.assignments.select("key", "split").rows())


@pytest.mark.parametrize(
    ("fractions", "message"),
    [
        ({"train": 0.8, "test": 0.1}, "sum to 0.9"),
        ({"train": 1.2, "test": -0.2}, r"splits\.fractions\.train is 1\.2"),
        ({"train": 0.8, "dev": 0.2}, r"unknown split\(s\) \['dev'\]"),
        ({}, "splits.fractions is empty"),
    ],
)
def test_bad_fractions_name_the_spec_key(fractions: dict[str, float], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        validate_fractions(fractions)


def test_fractions_within_tolerance_pass() -> None:
    assert validate_fractions({"test": 0.1, "train": 0.9 + 1e-7}) == {"train": 0.9 + 1e-7,
                                                                      "test": 0.1}


def test_stratified_three_classes() -> None:
    df = labelled(3000)
    res = assign_splits(df, key_column="id", label_column="y", run_id="r1")
    shares = (
        res.counts.with_columns((pl.col("rows") / pl.col("rows").sum().over("label"))
                                .alias("share"))
    )
    target = {"train": 0.8, "validation": 0.1, "test": 0.1}
    for split, label, _rows, share in shares.rows():
        assert abs(share - target[split]) < 0.005, (split, label, share)
    assert res.summary["max_stratum_share_deviation"] < 0.005
    assert res.counts.get_column("rows").sum() == 3000
    assert res.assignments.get_column("new").all()
    assert set(res.assignments.get_column("first_run").to_list()) == {"r1"}


def test_groups_never_straddle_and_fractions_stay_close() -> None:
    df = labelled(3000, groups=400)
    res = assign_splits(df, key_column="id", label_column="y", group_column="g", run_id="r1")
    joined = df.join(res.assignments.select(pl.col("key").alias("id"), "split"), on="id")
    assert joined.group_by("g").agg(pl.col("split").n_unique()).get_column("split").max() == 1
    assert leakage(joined, key_column="id", group_column="g")["total"] == 0
    for split, share in res.summary["share_per_split"].items():
        assert abs(share - {"train": 0.8, "validation": 0.1, "test": 0.1}[split]) < 0.03


def test_group_and_duplicate_cluster_links_are_transitive() -> None:
    # a-b share group g1; b-c share dup cluster; c-d share group g2 -> one unit
    df = pl.DataFrame({
        "id": ["a", "b", "c", "d", "e"],
        "y": ["x"] * 5,
        "g": ["g1", "g1", "g2", "g2", None],
        "cluster": ["a", "b", "b", "d", "e"],
    })
    res = assign_splits(df, key_column="id", label_column="y", group_column="g",
                        unit_column="cluster", run_id="r1")
    units = dict(res.assignments.select("key", "unit").rows())
    assert {units[k] for k in "abcd"} == {"a"}
    assert units["e"] == "e"
    assert len({split_of(res)[k] for k in "abcd"}) == 1


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_duplicate_clusters_never_straddle(seed: int) -> None:
    df = labelled(600, seed=seed).with_columns(
        (pl.int_range(pl.len()) // 3).cast(pl.String).alias("cluster")  # clusters of 3 rows
    )
    res = assign_splits(df, key_column="id", label_column="y", unit_column="cluster",
                        seed=seed, run_id="r1")
    joined = df.join(res.assignments.select(pl.col("key").alias("id"), "split"), on="id")
    assert joined.group_by("cluster").agg(pl.col("split").n_unique())["split"].max() == 1


def test_sticky_across_three_runs_with_rows_added_and_removed() -> None:
    con = duckdb.connect()
    run1 = labelled(1000)
    r1 = assign_splits(run1, key_column="id", label_column="y", run_id="r1")
    save_assignments(con, r1.assignments, dataset="ds", run_id="r1")
    first = split_of(r1)

    run2 = pl.concat([run1.slice(100), labelled(300, seed=1, start=1000)])  # -100, +300
    r2 = assign_splits(run2, key_column="id", label_column="y", run_id="r2",
                       previous=load_assignments(con, dataset="ds"))
    save_assignments(con, r2.assignments, dataset="ds", run_id="r2")
    second = split_of(r2)
    assert all(second[k] == first[k] for k in second if k in first)
    assert r2.summary["new_rows"] == 300
    assert r2.summary["moved_rows"] == 0
    assert r2.removed.height == 100
    assert not set(r2.removed.get_column("key")) & set(second)

    # run 3: two of the removed keys come back, 200 new, 50 more removed
    back = run1.slice(0, 2)
    run3 = pl.concat([back, run2.slice(50), labelled(200, seed=2, start=2000)])
    r3 = assign_splits(run3, key_column="id", label_column="y", run_id="r3",
                       previous=load_assignments(con, dataset="ds"))
    save_assignments(con, r3.assignments, dataset="ds", run_id="r3")
    third = split_of(r3)
    for key in back.get_column("id"):
        assert third[key] == first[key]
    everything = {**first, **second}
    assert all(third[k] == everything[k] for k in third if k in everything)
    ever_test = {k for k, s in everything.items() if s == "test"}
    assert not any(third[k] == "train" for k in ever_test if k in third)
    stored = load_assignments(con, dataset="ds")
    assert stored.height == 1000 + 300 + 200  # removed keys stay in the history
    kept = stored.filter(pl.col("key") == "k00000").row(0, named=True)
    assert (kept["first_run"], kept["last_run"]) == ("r1", "r3")
    gone = stored.filter(pl.col("key") == "k00050").row(0, named=True)
    assert gone["last_run"] == "r1"
    new3 = r3.assignments.filter(pl.col("new"))
    assert new3.height == 200
    shares = r3.summary["share_per_split"]
    assert abs(shares["test"] - 0.1) < 0.01 and abs(shares["train"] - 0.8) < 0.01


def test_deterministic_and_seed_dependent() -> None:
    df = labelled(500, groups=100)
    kwargs: dict[str, Any] = {"key_column": "id", "label_column": "y", "group_column": "g",
                              "run_id": "r"}
    a = assign_splits(df, seed=13, **kwargs)
    b = assign_splits(df.sample(fraction=1.0, shuffle=True, seed=5), seed=13, **kwargs)
    c = assign_splits(df, seed=14, **kwargs)
    assert a.assignments.equals(b.assignments)
    assert a.counts.equals(b.counts)
    assert not a.assignments.select("split").equals(c.assignments.select("split"))


@pytest.mark.parametrize(
    ("old", "expected", "moved"),
    [
        ({"a": "train", "b": "test"}, "test", 1),
        ({"a": "train", "b": "validation"}, "validation", 1),
        ({"a": "validation", "b": "test"}, "test", 1),
        ({"a": "test", "b": "test"}, "test", 0),
        ({"a": "train"}, "train", 0),
    ],
)
def test_merge_rule_most_held_out_split_wins(
    old: dict[str, str], expected: str, moved: int
) -> None:
    # a new near-duplicate "n" links a and b into one unit (cluster "a")
    df = pl.DataFrame({"id": ["a", "b", "n", "z"], "y": ["x"] * 4,
                       "cluster": ["a", "a", "a", "z"]})
    previous = pl.DataFrame({"key": list(old), "split": list(old.values()),
                             "first_run": ["r0"] * len(old)})
    res = assign_splits(df, key_column="id", label_column="y", unit_column="cluster",
                        run_id="r1", previous=previous)
    got = split_of(res)
    assert got["a"] == got["b"] == got["n"] == expected
    assert res.summary["moved_rows"] == moved
    assert res.assignments.filter(pl.col("key") == "n").row(0, named=True)["new"]
    for key, split in old.items():
        assert RANK[got[key]] >= RANK[split]


def test_leakage_counts_on_a_hand_made_leaky_split() -> None:
    df = pl.DataFrame({
        "id": [1, 2, 3, 4, 5, 6, 7],
        "split": ["train", "test", "test", "train", "validation", "train", "train"],
        "g": ["u1", "u1", "u2", "u3", "u3", "u4", None],
    })
    clusters = pl.DataFrame({
        "cluster_id": [1, 1, 1, 4, 4, 6, 6, 9],
        "id": [1, 2, 3, 4, 5, 6, 7, 99],  # 99 is not in the frame: ignored
        "exact_group": [1, 1, 3, 4, 4, 6, 6, 99],
    })
    got = leakage(df, key_column="id", group_column="g", duplicates=clusters)
    # cluster 1: pairs (1,2) exact cross, (1,3) near cross, (2,3) same split
    # cluster 4: (4,5) exact cross; cluster 6: same split
    assert got == {"exact_pairs": 2, "near_pairs": 1, "clusters_across_splits": 2,
                   "groups_across_splits": 2, "group_rows_across_splits": 4, "total": 5}


@pytest.mark.parametrize("shard_rows", [1, 2, 3, 1000])
def test_leakage_counts_the_same_whatever_the_cluster_shards(
    monkeypatch: pytest.MonkeyPatch, shard_rows: int
) -> None:
    rng = np.random.default_rng(5)
    n = 400
    df = pl.DataFrame({"id": [f"r{i}" for i in range(n)],
                       "split": rng.choice(["train", "validation", "test"], n).tolist()})
    cluster = rng.integers(0, 60, n)
    clusters = pl.DataFrame({
        "cluster_id": [f"c{c}" for c in cluster], "id": [f"r{i}" for i in range(n)],
        "exact_group": [f"c{c}-{i % 2}" for i, c in enumerate(cluster)],
    })
    whole = leakage(df, key_column="id", duplicates=clusters)
    monkeypatch.setattr(splits_module, "LEAKAGE_SHARD_ROWS", shard_rows)
    assert leakage(df, key_column="id", duplicates=clusters) == whole
    assert whole["exact_pairs"] > 0 and whole["near_pairs"] > 0
    assert whole["clusters_across_splits"] > 0


@pytest.mark.parametrize("repeated", [False, True])
def test_join_beside_is_a_left_join(repeated: bool) -> None:
    frame = pl.concat([pl.DataFrame({"k": ["b", "a", "c"], "t": ["x", "y", "z"]}),
                       pl.DataFrame({"k": ["d", "a2"], "t": ["u", "v"]})], rechunk=False)
    one = pl.DataFrame({"k": ["a", "b", "d"], "v": [1, 2, 4]})
    two = pl.DataFrame({"k": ["c", "b"] + (["b"] if repeated else []),
                        "w": [3.0, 2.0] + ([2.5] if repeated else [])})
    got = join_beside(frame, [one, two], "k")
    want = frame.join(one, on="k", how="left").join(two, on="k", how="left")
    assert got.sort("k", "w").equals(want.sort("k", "w"))
    if not repeated:
        assert got.get_column("k").to_list() == ["b", "a", "c", "d", "a2"]
        assert got.get_column("v").to_list() == [2, 1, None, 4, None]
        assert got.get_column("w").to_list() == [2.0, None, 3.0, None, None]


def test_leakage_is_zero_after_assign_splits_with_clusters() -> None:
    df = labelled(300).with_columns((pl.int_range(pl.len()) // 4).alias("cid"))
    res = assign_splits(df, key_column="id", label_column="y", unit_column="cid", run_id="r")
    with_split = df.join(res.assignments.select(pl.col("key").alias("id"), "split"), on="id")
    clusters = df.select(pl.col("cid").alias("cluster_id"), "id",
                         pl.col("id").alias("exact_group"))
    assert leakage(with_split, key_column="id", duplicates=clusters)["total"] == 0


FLAGGED = pl.DataFrame({
    "id": ["a", "b", "c", "d", "e"],
    "y": ["pos", "neg", "pos", "neu", "neg"],
    "split": ["train", "test", "test", "validation", "train"],
    "issue": [False, True, False, True, None],
    "suggested": [None, "pos", None, "neg", None],
    "quality": [None, 0.95, None, 0.5, None],
})


@pytest.mark.parametrize(
    ("policy", "kept", "excluded"),
    [
        ("keep", ["a", "b", "c", "d", "e"], []),
        ("drop", ["a", "c", "e"], ["b", "d"]),
        ("drop_from_test", ["a", "c", "d", "e"], ["b"]),
        ("relabel", ["a", "b", "c", "e"], ["d"]),
    ],
)
def test_flag_policies_keep_every_row_accounted(
    policy: Any, kept: list[str], excluded: list[str]
) -> None:
    res = apply_flag_policy(FLAGGED, flagged_column="issue", policy=policy, label_column="y",
                            suggested_column="suggested", quality_column="quality")
    assert res.kept.get_column("id").to_list() == kept
    assert res.excluded.get_column("id").to_list() == excluded
    assert res.kept.height + res.excluded.height == FLAGGED.height
    assert set(res.excluded.get_column("exclusion_policy").to_list()) <= {policy}
    if policy == "relabel":
        b = res.kept.filter(pl.col("id") == "b").row(0, named=True)
        assert (b["y"], b["given_label"], b["relabeled"]) == ("pos", "neg", True)
        assert res.excluded.get_column("exclusion_reason").to_list() == [
            "suggested label quality 0.5 < splits.relabel_min_quality 0.9 (policy relabel)"
        ]


def test_flag_policy_errors_name_the_column_or_key() -> None:
    with pytest.raises(InputError, match="'split'"):
        apply_flag_policy(FLAGGED.drop("split"), flagged_column="issue",
                          policy="drop_from_test", label_column="y")
    with pytest.raises(SpecError, match=r"splits\.flagged"):
        apply_flag_policy(FLAGGED, flagged_column="issue", policy="burn",  # type: ignore[arg-type]
                          label_column="y")


def test_input_errors_name_the_column() -> None:
    df = pl.DataFrame({"id": ["a", "a"], "y": ["x", "y"]})
    with pytest.raises(InputError, match=r"'id' has 1 repeated"):
        assign_splits(df, key_column="id", label_column="y", run_id="r")
    with pytest.raises(InputError, match=r"\['label'\]"):
        assign_splits(df, key_column="id", label_column="label", run_id="r")
    bad_prev = pl.DataFrame({"key": ["a"], "split": ["holdout"], "first_run": ["r0"]})
    with pytest.raises(InputError, match="holdout"):
        assign_splits(df.head(1), key_column="id", label_column="y", run_id="r",
                      previous=bad_prev)


def test_save_refuses_to_move_a_test_key_to_train() -> None:
    con = duckdb.connect()
    first = pl.DataFrame({"key": ["a", "b"], "split": ["test", "train"],
                          "first_run": ["r1", "r1"]})
    save_assignments(con, first, dataset="ds", run_id="r1")
    back = first.with_columns(pl.lit("train").alias("split"))
    with pytest.raises(InputError, match=r"less held-out.*\('a', 'test', 'train'\)"):
        save_assignments(con, back, dataset="ds", run_id="r2")
    assert load_assignments(con, dataset="ds").get_column("last_run").to_list() == ["r1", "r1"]
    forward = first.with_columns(pl.lit("test").alias("split"), pl.lit("r2").alias("first_run"))
    assert save_assignments(con, forward, dataset="ds", run_id="r2") == 2
    stored = load_assignments(con, dataset="ds")
    assert stored.rows() == [("a", "test", "r1", "r2"), ("b", "test", "r1", "r2")]
    assert load_assignments(con, dataset="other").is_empty()


def test_invariants_hold_over_random_runs() -> None:
    """Property: over random runs (rows added/removed, groups and duplicate clusters relinking
    old rows), no unit straddles, no key moves to a less held-out split, removed keys get
    no assignment."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    run = st.lists(
        st.tuples(st.integers(0, 59), st.sampled_from(["a", "b", "c"]),
                  st.integers(0, 14), st.integers(0, 19)),
        min_size=1, max_size=50, unique_by=lambda t: t[0],
    )

    @settings(max_examples=40, deadline=None)
    @given(runs=st.lists(run, min_size=2, max_size=3), seed=st.integers(0, 5))
    def check(runs: list[list[tuple[int, str, int, int]]], seed: int) -> None:
        con = duckdb.connect()
        ever: dict[str, int] = {}
        for i, rows in enumerate(runs):
            df = pl.DataFrame(rows, schema=["id", "y", "g", "c"], orient="row").with_columns(
                pl.format("k{}", "id").alias("id")
            )
            res = assign_splits(df, key_column="id", label_column="y", group_column="g",
                                unit_column="c", seed=seed, run_id=f"r{i}",
                                previous=load_assignments(con, dataset="p"))
            save_assignments(con, res.assignments, dataset="p", run_id=f"r{i}")
            got = df.join(res.assignments.select(pl.col("key").alias("id"), "split"), on="id")
            assert got.height == df.height
            for col in ("g", "c"):
                assert got.group_by(col).agg(pl.col("split").n_unique())["split"].max() == 1
            for key, split in got.select("id", "split").rows():
                assert RANK[split] >= ever.get(key, 0)
                ever[key] = RANK[split]
            assert not set(res.removed.get_column("key")) & set(df.get_column("id"))

    check()
