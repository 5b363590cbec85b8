"""The dedup result's conflicts, cluster sizes and counts (counted per component in
`dedup_incremental.assemble`) equal the group-bys over the member rows they replace."""

from __future__ import annotations

import random

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from labelgate.stages import dedup as dd
from labelgate.stages.dedup import DuplicateResult, find_duplicates


def _corpus(seed: int, n: int, labels: list[object]) -> pl.DataFrame:
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(40)]
    base = [" ".join(rng.choice(words) for _ in range(20)) for _ in range(25)]
    ids, texts = [], []
    for i in range(n):
        t = rng.choice(base)
        if rng.random() < 0.4:  # a one-word edit: often a near duplicate
            w = t.split(" ")
            w[rng.randrange(len(w))] = rng.choice(words)
            t = " ".join(w)
        ids.append(f"id{rng.randrange(10**5):05d}-{i}")
        texts.append(t)
    return pl.DataFrame({"id": ids, "text": texts, "y": [rng.choice(labels) for _ in ids]})


@pytest.mark.parametrize(("seed", "labels"), [
    (1, ["a", "b", "c"]), (2, ["a", "b", None]), (3, [1, 2]), (4, ["only"]), (5, [None])])
def test_counts_per_component_equal_the_group_bys(seed: int, labels: list[object]) -> None:
    df = _corpus(seed, 400, labels)
    res = find_duplicates(df, id_column="id", text_columns=["text"], label_column="y")
    assert res.clusters.height > 50  # the corpus has clusters to count
    ref = dd._label_conflicts(res.clusters, id_dtype=pl.String, with_label=True)
    assert_frame_equal(res.conflicts, ref)
    if labels == ["a", "b", "c"]:
        assert res.conflicts.height > 0
    by_rows = DuplicateResult(res.clusters, res.cluster_of, res.conflicts)  # no sizes
    assert res.sizes is not None and res.sizes.height == res.summary["clusters"]
    for n in (1, 5, 10_000):
        assert_frame_equal(res.largest(n), by_rows.largest(n))
    summary = dd._cluster_summary(res.clusters, ref, n_rows=df.height,
                                  n_keys=res.summary["distinct_texts"])
    assert {k: res.summary[k] for k in summary} == summary


def test_counts_without_labels_and_without_clusters() -> None:
    df = _corpus(6, 200, ["a"]).drop("y")
    res = find_duplicates(df, id_column="id", text_columns=["text"])
    assert res.conflicts.is_empty() and res.clusters.height > 0
    assert_frame_equal(res.largest(3), DuplicateResult(
        res.clusters, res.cluster_of, res.conflicts).largest(3))
    lone = pl.DataFrame({"id": ["a", "b"], "text": ["one text", "quite another"]})
    res = find_duplicates(lone, id_column="id", text_columns=["text"])
    assert res.largest().is_empty() and res.summary["clusters"] == 0
    assert res.largest().schema == DuplicateResult(
        res.clusters, res.cluster_of, res.conflicts).largest().schema
