"""Dedup on a night that adds rows (labelgate.stages.dedup_incremental): the new rows are
queried against the kept key graph, and the clusters equal a full run's on the same rows."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from labelgate.errors import InputError
from labelgate.stages.dedup import KeyGraph, find_duplicates, find_duplicates_keeping
from labelgate.stages.dedup_incremental import DedupSettings, detect, plan_update, row_hashes
from labelgate.store import kept_dedup, warehouse

LONG = (
    "the quick brown fox jumps over the lazy dog while the farmer watches from the porch, "
    "drinks his coffee slowly in the morning sun and wonders whether the rain will come "
    "before the harvest is in, as it did last year when half of the wheat was lost"
)
# A and C are each a near duplicate of LONG, not of each other (checked below)
A = LONG.replace("quick", "quack").replace("farmer", "framer")
C = LONG.replace("coffee", "toffee").replace("morning", "mourning")
SETTINGS = DedupSettings(id_column="id", text_columns=["text"], label_column="y")


def frame(rows: list[tuple[str, str, str]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema={"id": pl.String, "text": pl.String, "y": pl.String},
                        orient="row")


def full(df: pl.DataFrame, s: DedupSettings = SETTINGS) -> KeyGraph:
    return find_duplicates_keeping(df, s)[1]


def kept_of(df: pl.DataFrame, s: DedupSettings = SETTINGS) -> KeyGraph:
    """What a full run over ``df`` keeps (rows with id, k, h)."""
    _, graph, plan = detect(df, s, kept=None, max_new_share=0.5)
    assert not plan.incremental
    return graph


def assert_same_as_full(df: pl.DataFrame, kept: KeyGraph, s: DedupSettings = SETTINGS,
                        *, share: float = 1.0) -> KeyGraph:
    """The night over ``df`` built on ``kept`` is incremental and gives a full run's
    clusters, cluster_of, conflicts, counts and key graph."""
    night, graph, plan = detect(df, s, kept=kept, max_new_share=share)
    assert plan.incremental, plan.reason
    ref = find_duplicates(df, id_column=s.id_column, text_columns=s.text_columns,
                          label_column=s.label_column, near=s.near, threshold=s.threshold)
    assert_frame_equal(night.clusters, ref.clusters)
    assert_frame_equal(night.cluster_of, ref.cluster_of)
    assert_frame_equal(night.conflicts, ref.conflicts)
    for key in ("rows", "distinct_texts", "rows_in_clusters", "clusters", "duplicate_rows",
                "exact_rows", "near_rows", "conflicting_clusters", "largest", "verified_pairs"):
        assert night.summary[key] == ref.summary[key], key
    whole = full(df, s)
    assert graph.keys.to_list() == whole.keys.to_list()
    assert sorted(map(tuple, graph.edges.tolist())) == sorted(map(tuple, whole.edges.tolist()))
    ks = graph.rows.join(whole.rows, on="id", suffix="_full")
    assert (ks.get_column("k") == ks.get_column("k_full")).all()
    return graph


OLD = [("r1", A, "pos"), ("r2", A.upper(), "pos"), ("r3", C, "neg"), ("r4", C + "  ", "neg"),
       ("r5", "an unrelated sentence about trains", "pos"),
       ("r6", "another unrelated sentence about ships", "neg")]


def test_planted_clusters_before_the_night() -> None:
    # A and C are two clusters; LONG joins them (the precondition of the bridge below)
    res = find_duplicates(frame(OLD), id_column="id", text_columns=["text"])
    assert res.clusters.select("cluster_id", "id").rows() == [
        ("r1", "r1"), ("r1", "r2"), ("r3", "r3"), ("r3", "r4")]
    both = find_duplicates(frame([("x", A, "a"), ("y", C, "a"), ("z", LONG, "a")]),
                           id_column="id", text_columns=["text"])
    assert both.summary["clusters"] == 1
    assert find_duplicates(frame([("x", A, "a"), ("y", C, "a")]), id_column="id",
                           text_columns=["text"]).summary["clusters"] == 0


def test_new_row_bridges_two_old_clusters() -> None:
    kept = kept_of(frame(OLD))
    night = frame([*OLD, ("r0", LONG, "neu")])  # smaller id: the merged cluster's id
    assert_same_as_full(night, kept)
    res, _, _ = detect(night, SETTINGS, kept=kept, max_new_share=1.0)
    assert res.clusters.select("cluster_id", "id", "kind").rows() == [
        ("r0", "r0", "exact"), ("r0", "r1", "near"), ("r0", "r2", "near"),
        ("r0", "r3", "near"), ("r0", "r4", "near")]
    assert res.conflicts.get_column("labels").to_list() == [["neg", "neu", "pos"]]


def test_new_exact_duplicate_of_an_old_row_and_of_an_old_singleton() -> None:
    kept = kept_of(frame(OLD))
    night = frame([*OLD, ("r7", "  AN unrelated sentence about   trains", "neg"),
                   ("r8", A.lower(), "pos"), ("r9", "brand new text, nothing like it", "x"),
                   ("r10", "Brand new text, nothing like it", "x")])
    assert_same_as_full(night, kept)
    res, _, _ = detect(night, SETTINGS, kept=kept, max_new_share=1.0)
    got = {r[1]: (r[0], r[2]) for r in res.clusters.select("cluster_id", "id", "kind").rows()}
    assert got["r7"] == ("r5", "exact") and got["r5"] == ("r5", "exact")
    assert got["r8"] == ("r1", "exact")
    assert got["r10"] == ("r10", "exact") and got["r9"] == ("r10", "exact")  # "r10" < "r9"
    assert res.summary["new_texts"] == 1  # only the brand-new text was hashed


def test_nights_in_a_row_and_a_night_with_nothing_new() -> None:
    kept = kept_of(frame(OLD))
    first = frame([*OLD, ("r7", LONG.replace("dog", "cat"), "pos")])
    kept = assert_same_as_full(first, kept)
    second = frame([*first.rows(), ("r00", LONG, "neg")])
    kept = assert_same_as_full(second, kept)
    assert_same_as_full(second, kept)  # nothing new


def _variants(n: int, seed: int) -> list[str]:
    """n distinct one-character edits of a long text: all in one LSH bucket in most bands,
    so a full run pairs them only within its window of 32 neighbours."""
    rng = random.Random(seed)
    base = LONG * 3
    out: set[str] = set()
    while len(out) < n:
        i = rng.randrange(len(base))
        out.add(base[:i] + rng.choice("xyzqjk") + base[i + 1:])
    return sorted(out)


@pytest.mark.parametrize("seed", [1, 2])
def test_large_buckets_drop_the_pairs_a_full_run_drops(seed: int) -> None:
    texts = _variants(90, seed)
    rng = random.Random(seed)
    rng.shuffle(texts)
    old = [(f"o{i:03d}", t, "a") for i, t in enumerate(texts[:50])]
    plus = [(f"n{i:03d}", t, "b") for i, t in enumerate(texts[50:])]
    kept = kept_of(frame(old))
    graph = assert_same_as_full(frame(old + plus), kept)
    # the window really dropped old pairs: some kept pair is not in the night's graph
    before = {(kept.keys[int(a)], kept.keys[int(b)]) for a, b in kept.edges}
    after = {(graph.keys[int(a)], graph.keys[int(b)]) for a, b in graph.edges}
    assert before - after


def test_mixed_night_against_a_random_corpus() -> None:
    rng = random.Random(7)
    words = [f"w{i}" for i in range(60)]
    base = [" ".join(rng.choice(words) for _ in range(25)) for _ in range(40)]

    def text() -> str:
        t = rng.choice(base)
        if rng.random() < 0.5:  # a one-word edit: often a near duplicate
            w = t.split(" ")
            w[rng.randrange(len(w))] = rng.choice(words)
            t = " ".join(w)
        return t.upper() if rng.random() < 0.2 else t

    old = [(f"id{rng.randrange(10**6):06d}-{i}", text(), rng.choice("ab")) for i in range(300)]
    new = [(f"id{rng.randrange(10**6):06d}-n{i}", text(), rng.choice("ab")) for i in range(60)]
    kept = kept_of(frame(old))
    assert_same_as_full(frame(old + new), kept)  # the kept rows first, in their order
    mixed = old + new
    rng.shuffle(mixed)
    assert_same_as_full(frame(mixed), kept)  # any order: the rows are matched by id


def test_exact_only_settings() -> None:
    s = DedupSettings(id_column="id", text_columns=["text"], label_column="y", near=False,
                      threshold=1.0)
    kept = kept_of(frame(OLD), s)
    assert kept.signatures is None
    assert_same_as_full(frame([*OLD, ("r0", LONG, "x"), ("r7", C.lower(), "neg")]), kept, s)


def test_integer_ids_keep_their_type() -> None:
    rows = [(10, A, "a"), (3, A, "b"), (7, C, "a")]
    schema = {"id": pl.Int64, "text": pl.String, "y": pl.String}
    kept = kept_of(pl.DataFrame(rows, schema=schema, orient="row"))
    night = pl.DataFrame([*rows, (1, C, "a")], schema=schema, orient="row")
    assert_same_as_full(night, kept)


def _plan(df: pl.DataFrame, kept: KeyGraph | None, share: float | None = 0.5) -> str:
    plan = plan_update(df, row_hashes(df, SETTINGS), kept, id_column="id", max_new_share=share)
    return ("incremental: " if plan.incremental else "full: ") + plan.reason


def test_fallbacks_to_a_full_pass() -> None:
    old = frame(OLD)
    kept = kept_of(old)
    assert _plan(frame([*OLD, ("r9", "new", "x")]), kept).startswith("incremental")
    assert _plan(old, None) == "full: nothing kept for these settings"
    assert _plan(old, kept, None) == "full: dedup.refresh is off"
    edited = old.with_columns(pl.when(pl.col("id") == "r3").then(pl.lit(LONG))
                              .otherwise(pl.col("text")).alias("text"))
    assert _plan(edited, kept) == "full: 1 kept row(s) changed (text, label or id)"
    relabelled = old.with_columns(pl.lit("neu").alias("y"))
    assert _plan(relabelled, kept) == "full: 6 kept row(s) changed (text, label or id)"
    assert _plan(old.filter(pl.col("id") != "r2"), kept) == "full: 1 kept row(s) are gone"
    many = frame([*OLD, *[(f"n{i}", f"text {i}", "x") for i in range(7)]])
    assert _plan(many, kept).startswith("full: 53.8% of the rows are new")
    assert _plan(many, kept, 0.6).startswith("incremental")
    # a repeated id: the same error as a full pass, whether the rows are matched in order
    # or by a join
    for rows in ([*OLD, OLD[0]], [OLD[0], *OLD]):
        with pytest.raises(InputError, match="repeated value"):
            detect(frame(rows), SETTINGS, kept=kept, max_new_share=0.5)
    as_int = pl.DataFrame({"id": [1], "text": ["x"], "y": ["a"]})
    assert _plan(as_int, kept) == "full: the id column's type changed"


def test_settings_key_changes_with_the_settings() -> None:
    keys = {kept_dedup.graph_key(s) for s in (
        SETTINGS, DedupSettings(id_column="id", text_columns=["text"], label_column="y",
                                threshold=0.8),
        DedupSettings(id_column="id", text_columns=["text"], label_column="y", num_perm=64),
        DedupSettings(id_column="id", text_columns=["text", "y"], label_column="y"),
        DedupSettings(id_column="id", text_columns=["text"], label_column="y", near=False))}
    assert len(keys) == 5


def test_the_graph_round_trips_through_the_store(tmp_path: Path) -> None:
    kept = kept_of(frame(OLD))
    key = kept_dedup.graph_key(SETTINGS)
    kept_dedup.save_graph(tmp_path, "ds", key=key, run_id="20261201T000000-a", graph=kept)
    kept_dedup.save_graph(tmp_path, "ds", key=key, run_id="20261202T000000-b", graph=kept)
    found = kept_dedup.latest_graph(tmp_path, "ds", key=key)
    assert found is not None
    graph, run = found
    assert run == "20261202T000000-b"
    units = list((tmp_path / "cache" / "ds" / kept_dedup.KIND).iterdir())
    assert [u.name for u in units] == [f"{key}-20261202T000000-b"]  # the older one removed
    assert_frame_equal(graph.rows, kept.rows)
    assert graph.keys.to_list() == kept.keys.to_list()
    assert graph.signatures is not None and kept.signatures is not None
    assert np.array_equal(graph.signatures, kept.signatures)
    assert np.array_equal(graph.edges, kept.edges)
    assert graph.values is not None and kept.values is not None
    assert_frame_equal(graph.values, kept.values)
    assert graph.values.get_column("cluster_id").to_list() == [
        None, None, "r1", "r3"]  # per key in key order: "an unrelated", "another", A, C
    assert kept_dedup.latest_graph(tmp_path, "ds", key="other") is None
    assert_same_as_full(frame([*OLD, ("r0", LONG, "x")]), graph)


def test_the_kept_graph_holds_its_lsh_bands_and_a_night_uses_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The unit's marker lists the LSH bands of its settings; a night built on it takes
    them (none computed: `lsh_bands` refused here) and gives a full run's clusters, its
    own graph keeping them for the next night; a unit without them (or with a pair that
    does not fit its signatures) has them computed."""
    import json

    from labelgate.stages import dedup as dd
    from labelgate.stages import dedup_incremental as di
    from labelgate.store import lake

    kept = kept_of(frame(OLD))
    expected = dd.lsh_bands(SETTINGS.threshold, SETTINGS.num_perm)
    assert kept.bands == expected
    key = kept_dedup.graph_key(SETTINGS)
    kept_dedup.save_graph(tmp_path, "ds", key=key, run_id="20261201T000000-a", graph=kept)
    marker = lake.cache_dir(tmp_path, "ds", kept_dedup.KIND,
                            f"{key}-20261201T000000-a") / lake.CACHE_MARKER
    assert json.loads(marker.read_text())["lsh"] == list(expected)
    found = kept_dedup.latest_graph(tmp_path, "ds", key=key)
    assert found is not None and found[0].bands == expected

    def refused(*args: object) -> tuple[int, int]:
        raise AssertionError("the night computed the LSH bands again")

    night = frame([*OLD, ("r0", LONG, "x"), ("r7", "a new sentence about planes", "pos")])
    with monkeypatch.context() as m:
        m.setattr(di, "_bands", refused)
        graph = assert_same_as_full(night, found[0])
        res, _, _ = detect(night, SETTINGS, kept=found[0], max_new_share=1.0)
    assert graph.bands == expected
    assert (res.summary["bands"], res.summary["rows_per_band"]) == expected
    for listed in (None, [0, 5], [expected[0], SETTINGS.num_perm + 1], "5,25"):
        meta = json.loads(marker.read_text())
        meta.pop("lsh", None)
        if listed is not None:
            meta["lsh"] = listed
        marker.write_text(json.dumps(meta))
        again = kept_dedup.latest_graph(tmp_path, "ds", key=key)
        assert again is not None and again[0].bands is None, listed
        assert assert_same_as_full(night, again[0]).bands == expected


def test_a_unit_without_per_key_values_is_read(tmp_path: Path) -> None:
    """A unit written before the keys had values: read, and the night built on it tells
    no changed rows (its warehouse rows are stored whole)."""
    from labelgate.store import lake

    kept = kept_of(frame(OLD))
    assert kept.signatures is not None
    key = kept_dedup.graph_key(SETTINGS)
    unit = lake.cache_dir(tmp_path, "ds", kept_dedup.KIND, f"{key}-20261201T000000-a")
    lake.write_cached(unit, {
        "rows": kept.rows, "keys": pl.DataFrame({"key": kept.keys,
                                                 "sig": kept.signatures}),
        "edges": pl.DataFrame({"a": kept.edges[:, 0], "b": kept.edges[:, 1]},
                              schema={"a": pl.Int64, "b": pl.Int64})},
        {"format": 2, "run_id": "20261201T000000-a"})
    found = kept_dedup.latest_graph(tmp_path, "ds", key=key)
    assert found is not None and found[0].values is None
    assert np.array_equal(found[0].signatures, kept.signatures)
    night = frame([*OLD, ("r0", LONG, "x")])
    res, graph, plan = detect(night, SETTINGS, kept=found[0], max_new_share=1.0)
    assert plan.incremental and res.changed is None and graph.values is not None
    assert_same_as_full(night, found[0])


@pytest.mark.parametrize("seed", range(6))
def test_near_pairs_equal_a_full_lsh_pass_on_crowded_buckets(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Signatures drawn so that LSH buckets hold far more than 33 keys, and new keys miss
    the old buckets in some bands: the graph a night builds equals the verified candidate
    pairs of a full pass over the merged keys, pairs dropped by the window included."""
    from labelgate.stages import dedup as dd
    from labelgate.stages.dedup_incremental import _near_update

    rng = np.random.default_rng(seed)
    s = DedupSettings(id_column="id", text_columns=["text"], threshold=0.7, num_perm=15)
    bands, per = dd.lsh_bands(s.threshold, s.num_perm)
    n_old, m = 150, 60
    sigs = (rng.random((n_old + m, s.num_perm)) < 0.12).astype(np.uint32)
    for band in range(bands):  # new keys land in buckets of their own in some bands
        if rng.random() < 0.5:
            sigs[n_old:, band * per] = 2
    names = np.array([f"k{i:04d}" for i in range(n_old + m)])
    order = rng.permutation(n_old + m)  # key order: old and new keys interleave
    old_i, new_i = np.sort(order[:n_old]), np.sort(order[n_old:])

    def verified(idx: np.ndarray) -> set[tuple[str, str]]:
        sub = sigs[idx]
        cand = dd._candidate_pairs(sub, np.ones(len(idx), dtype=bool), bands=bands, rows=per)
        keep = dd._estimated_jaccard(sub, cand[:, 0], cand[:, 1]) >= s.threshold
        return {(names[idx[a]], names[idx[b]]) for a, b in cand[keep]}

    before = verified(old_i)
    kept = KeyGraph(rows=pl.DataFrame({"id": [], "k": []}), keys=pl.Series(names[old_i]),
                    signatures=sigs[old_i],
                    edges=np.array(sorted(
                        (int(np.searchsorted(names[old_i], a)),
                         int(np.searchsorted(names[old_i], b))) for a, b in before),
                        dtype=np.int64).reshape(-1, 2))
    unseen = pl.Series(names[new_i])
    pos = np.searchsorted(names[old_i], names[new_i])
    code = np.concatenate([np.arange(n_old) * (m + 1) + m, pos * (m + 1) + np.arange(m)])
    # the unseen keys' signatures are the drawn ones
    monkeypatch.setattr(dd, "_signatures", lambda keys, **_: (sigs[new_i], None))
    _, edges, stats = _near_update(kept, unseen, code, s, mapper=dd.serial_map)
    key_names = np.concatenate([names[old_i], names[new_i]])
    got = {tuple(sorted((key_names[a], key_names[b]))) for a, b in edges}
    assert got == verified(np.sort(order))
    assert stats["dropped_pairs"] == len(before - got)


@pytest.mark.flow
@pytest.mark.usefixtures("prefect_server")
def test_a_night_in_the_flow_queries_only_its_new_rows(tmp_path: Path) -> None:
    import yaml
    from conftest import item_rows, spec_dict, write_csv

    from flows.pipeline import quality_pipeline

    rows = item_rows(60)
    write_csv(tmp_path / "items" / "part1.csv", rows)
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(spec_dict(dedup={"near": {"threshold": 0.8}})))
    first = quality_pipeline(str(spec))
    assert first["duplicates"]["refresh"].startswith("full (nothing kept")
    assert first["metrics"]["dedup.incremental"] == 0.0
    more = [*item_rows(66)[60:], {**rows[4], "tweet_id": "n-exact"}]
    write_csv(tmp_path / "items" / "part2.csv", more)
    second = quality_pipeline(str(spec))
    dup = second["duplicates"]
    assert dup["refresh"] == "incremental (7 new row(s) queried against 60 kept)"
    assert (dup["refresh_kept_from"], dup["refresh_new_rows"]) == (first["run_id"], 7)
    assert second["metrics"]["dedup.incremental"] == 1.0
    every = pl.DataFrame(rows + more)
    ref = find_duplicates(every, id_column="tweet_id", text_columns=["text"],
                          label_column="sentiment", threshold=0.8)
    for key in ("clusters", "duplicate_rows", "exact_rows", "near_rows"):
        assert dup[key] == ref.summary[key], key
    assert ref.summary["exact_rows"] > 0 and ref.summary["near_rows"] > 0
    third = quality_pipeline(str(spec))  # nothing new: the second run's graph is kept
    assert third["duplicates"]["refresh"].startswith("incremental (0 new row(s)")
    assert third["duplicates"]["refresh_kept_from"] == second["run_id"]
    units = list((tmp_path / "store" / "cache").glob(f"*/{kept_dedup.KIND}/*"))
    assert len(units) == 1 and units[0].name.endswith(f"-{second['run_id']}")
    # the warehouse's duplicates of the nights read as a full run's clusters
    want = ref.clusters.select(pl.col("cluster_id", "id").cast(pl.String), "kind",
                               "similarity", "is_representative").sort("id")
    with warehouse.connect(tmp_path / "store" / warehouse.WAREHOUSE_FILE,
                           read_only=True) as con:
        for run in (second, third):
            got = con.sql("SELECT cluster_id, id, kind, similarity, is_representative"
                          " FROM duplicates WHERE run_id = ? ORDER BY id",
                          params=[run["run_id"]]).to_arrow_table()
            assert_frame_equal(pl.DataFrame(pl.from_arrow(got)), want)
        own = con.execute("SELECT count(*) FROM duplicate_rows WHERE run_id = ?",
                          [third["run_id"]]).fetchall()[0][0]
        base = con.execute("SELECT base_run_id FROM duplicate_bases WHERE run_id = ?",
                           [third["run_id"]]).fetchall()
    assert (own, base) == (0, [(second["run_id"],)])  # nothing changed: no rows stored
