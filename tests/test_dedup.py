"""Exact and near-duplicate clusters (labelgate.stages.dedup) on hand-made texts."""

from __future__ import annotations

from typing import Any

import polars as pl
import pytest

from labelgate.errors import InputError
from labelgate.stages.dedup import find_duplicates, keep_cluster_members, lsh_bands, normalize_text

LONG = (
    "the quick brown fox jumps over the lazy dog while the farmer watches from the porch, "
    "drinks his coffee slowly in the morning sun and wonders whether the rain will come "
    "before the harvest is in, as it did last year when half of the wheat was lost"
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Hello  World", "hello world"),
        ("  hello\tworld\n", "hello world"),
        ("ＨＥＬＬＯ　world", "hello world"),  # fullwidth letters and ideographic space (NFKC)
        ("ﬁne\u00a0day", "fine day"),  # ligature and no-break space
        ("Straße", "straße"),  # lowercase, not full case folding
        ("", ""),
    ],
)
def test_normalize_text(raw: str, expected: str) -> None:
    assert normalize_text(pl.Series([raw])).to_list() == [expected]
    assert pl.select(normalize_text(pl.lit(raw))).item() == expected


def test_normalize_text_keeps_null() -> None:
    assert normalize_text(pl.Series([None], dtype=pl.String)).to_list() == [None]


def frame(texts: list[str], labels: list[str] | None = None) -> pl.DataFrame:
    data: dict[str, Any] = {"id": [f"r{i}" for i in range(len(texts))], "text": texts}
    if labels is not None:
        data["y"] = labels
    return pl.DataFrame(data)


def test_exact_variants_form_one_cluster() -> None:
    df = frame(["Hello World", "hello   world ", "ＨＥＬＬＯ World", "goodbye world"])
    res = find_duplicates(df, id_column="id", text_columns=["text"], near=False)
    assert res.clusters.select("cluster_id", "id", "kind").rows() == [
        ("r0", "r0", "exact"), ("r0", "r1", "exact"), ("r0", "r2", "exact"),
    ]
    assert res.cluster_of.rows() == [("r0", "r0", 3), ("r1", "r0", 3), ("r2", "r0", 3),
                                     ("r3", "r3", 1)]
    assert res.summary["clusters"] == 1
    assert res.summary["rows_in_clusters"] == 3


def test_one_word_edit_of_long_text_is_near_duplicate_and_unrelated_is_not() -> None:
    df = frame([LONG, LONG.replace("lazy", "sleepy"), "an unrelated sentence about trains",
                "the quick brown fox", LONG.upper()])
    res = find_duplicates(df, id_column="id", text_columns=["text"], threshold=0.8)
    rows = {r["id"]: r for r in res.clusters.to_dicts()}
    assert set(rows) == {"r0", "r1", "r4"}
    assert rows["r1"]["kind"] == "near"
    assert 0.8 <= rows["r1"]["similarity"] < 1.0
    assert rows["r4"]["kind"] == "exact"
    assert rows["r0"]["is_representative"]
    assert res.cluster_of.filter(pl.col("id") == "r2").row(0) == ("r2", "r2", 1)


def test_transitive_near_duplicates_form_one_cluster() -> None:
    a = LONG
    b = a.replace("lazy", "lazx")
    c = b.replace("harvest", "harvext")
    df = frame([c, a, b, "something else"])
    res = find_duplicates(df, id_column="id", text_columns=["text"], threshold=0.9)
    assert sorted(res.clusters.get_column("id").to_list()) == ["r0", "r1", "r2"]
    assert res.clusters.get_column("cluster_id").unique().to_list() == ["r0"]


def test_short_texts_and_empty_texts() -> None:
    df = frame(["ab", "AB", "", " ", "abc", "x"])
    res = find_duplicates(df, id_column="id", text_columns=["text"])
    assert res.cluster_of.get_column("cluster_id").to_list() == ["r0", "r0", "r2", "r2", "r4",
                                                                 "r5"]


def test_several_text_columns_are_joined_with_a_separator() -> None:
    df = pl.DataFrame({"id": [1, 2, 3], "q": ["a b", "a", "A B"], "r": ["c", "b c", "C"]})
    res = find_duplicates(df, id_column="id", text_columns=["q", "r"])
    assert res.cluster_of.get_column("cluster_id").to_list() == [1, 2, 1]


def test_conflicting_labels() -> None:
    df = frame(["Good flight", "good flight", "bad bag", "Bad bag", "ok"],
               ["positive", "negative", "negative", "negative", "neutral"])
    res = find_duplicates(df, id_column="id", text_columns=["text"], label_column="y")
    assert res.conflicts.to_dicts() == [
        {"cluster_id": "r0", "cluster_size": 2, "n_labels": 2,
         "labels": ["negative", "positive"]},
    ]
    assert res.summary["conflicting_clusters"] == 1
    assert res.largest(1).get_column("cluster_size").to_list() == [2]


def test_result_does_not_depend_on_row_order() -> None:
    texts = [LONG, LONG.replace("lazy", "lazx"), "Hello", "hello", "other", LONG + "!"]
    df = frame(texts)
    a = find_duplicates(df, id_column="id", text_columns=["text"])
    b = find_duplicates(df.reverse(), id_column="id", text_columns=["text"])
    assert a.clusters.equals(b.clusters)
    assert a.cluster_of.equals(b.cluster_of)


def test_near_false_finds_exact_only() -> None:
    df = frame([LONG, LONG.replace("lazy", "lazx")])
    res = find_duplicates(df, id_column="id", text_columns=["text"], near=False)
    assert res.clusters.is_empty()
    assert res.largest().is_empty()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"id_column": "nope", "text_columns": ["text"]}, "'nope'"),
        ({"id_column": "id", "text_columns": ["body"]}, "'body'"),
        ({"id_column": "id", "text_columns": ["text"], "threshold": 1.5}, "threshold"),
        ({"id_column": "id", "text_columns": ["text"], "shingle": 0}, "shingle"),
    ],
)
def test_bad_arguments_name_the_column_or_key(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InputError, match=message):
        find_duplicates(frame(["a", "b"]), **kwargs)  # type: ignore[arg-type]


def test_repeated_ids_are_rejected() -> None:
    df = pl.DataFrame({"id": ["a", "a"], "text": ["x", "y"]})
    with pytest.raises(InputError, match=r"'id'.*repeated"):
        find_duplicates(df, id_column="id", text_columns=["text"])


def test_lsh_bands_match_datasketch_rule() -> None:
    # datasketch.lsh._optimal_param(0.9, 128, 0.5, 0.5) == (5, 25); (0.5, 128) -> (25, 5)
    assert lsh_bands(0.9, 128) == (5, 25)
    assert lsh_bands(0.5, 128) == (25, 5)


@pytest.mark.parametrize(("keep", "split_column", "kept"), [
    ("all", None, ["a", "b", "c", "d", "e"]),
    ("one", None, ["a", "c", "e"]),
    ("one", "split", ["a", "c", "d", "e"]),  # only train rows are thinned
])
def test_keep_cluster_members(keep: str, split_column: str | None, kept: list[str]) -> None:
    df = pl.DataFrame({"id": ["a", "b", "c", "d", "e"],
                       "split": ["train", "train", "test", "test", "train"]})
    cluster_of = pl.DataFrame({"id": ["a", "b", "c", "d", "e"],
                               "cluster_id": ["a", "a", "c", "c", "e"]})
    k, x = keep_cluster_members(df, id_column="id", cluster_of=cluster_of, keep=keep,
                                split_column=split_column)
    assert k.get_column("id").to_list() == kept
    assert k.height + x.height == df.height
    if keep == "one" and split_column is None:
        assert x.select("id", "exclusion_reason").rows() == [
            ("b", "duplicate of a (dedup.keep=one)"), ("d", "duplicate of c (dedup.keep=one)")]


def shingles(text: str, k: int = 5) -> set[str]:
    t = normalize_text(pl.Series([text])).item()
    return {t[i : i + k] for i in range(max(len(t) - k + 1, 1))}


def test_near_clusters_agree_with_exact_jaccard() -> None:
    # 6 unrelated bases x 8 random character edits each; exact Jaccard is the reference
    import random

    rng = random.Random(3)
    bases = [LONG, LONG[::-1], "a completely different paragraph " * 6,
             "zebra crossing at the end of the long road near the old mill " * 3,
             "1234567890 qwertyuiop asdfghjkl zxcvbnm " * 4, "short tweet about rain"]
    texts, origin = [], []
    for b, base in enumerate(bases):
        for _ in range(8):
            pos = rng.randrange(len(base))
            texts.append(base[:pos] + rng.choice("xyz") + base[pos + 1 :])
            origin.append(b)
    df = frame(texts)
    res = find_duplicates(df, id_column="id", text_columns=["text"], threshold=0.85)
    cluster = dict(res.cluster_of.select("id", "cluster_id").rows())
    sh = [shingles(t) for t in texts]
    for i in range(len(texts)):
        for j in range(i + 1, len(texts)):
            jac = len(sh[i] & sh[j]) / len(sh[i] | sh[j])
            same = cluster[f"r{i}"] == cluster[f"r{j}"]
            if jac >= 0.95:
                assert same, (i, j, jac)
            if origin[i] != origin[j]:
                assert not same, (i, j, jac)


@pytest.mark.parametrize("text", ["hello world, hello", "ab", "", "zürich 😊 → nyc 😊 → zürich"])
def test_shingle_hashes_are_one_per_distinct_character_shingle(text: str) -> None:
    from labelgate.stages.dedup import _shingle_hashes

    flat, offsets = _shingle_hashes(pl.Series([text, "other"]), shingle=5)
    first = flat[int(offsets[0]) : int(offsets[1])]
    padded = text.ljust(5, "\x00")
    expected = [padded[i : i + 5] for i in range(len(padded) - 4)]
    assert len(first) == len(expected)
    assert len(set(first.tolist())) == len(set(expected))


def test_conflicts_ignore_null_labels_but_count_every_member() -> None:
    df = frame(["same", "Same", "SAME", "other"], ["a", None, "b", "a"])
    res = find_duplicates(df, id_column="id", text_columns=["text"], label_column="y")
    assert res.conflicts.rows() == [("r0", 3, 2, ["a", "b"])]
    df2 = frame(["same", "Same"], ["a", None])
    assert find_duplicates(df2, id_column="id", text_columns=["text"],
                           label_column="y").conflicts.is_empty()


KEYED = pl.DataFrame({
    "id": ["e", "a", "d", "b", "c", "f"],
    "text": ["Hello  world", "hello world", "zeta", "ALPHA", None, "alpha "],
    "label": ["x", "y", "x", "y", "x", "x"],
})


def _keyed(chunk: int, monkeypatch: pytest.MonkeyPatch) -> tuple[pl.DataFrame, pl.DataFrame]:
    from labelgate.stages import dedup as dd

    monkeypatch.setattr(dd, "_KEY_CHUNK", chunk)
    return dd._keyed_rows(KEYED, id_column="id", text_columns=["text"], label_column="label")


@pytest.mark.parametrize("chunk", [1, 4, 100])
def test_keyed_rows_number_the_keys_in_key_order_whatever_the_chunks(
    chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows, keys = _keyed(chunk, monkeypatch)
    assert keys.rows() == [(0, "", "c"), (1, "alpha", "b"), (2, "hello world", "a"),
                           (3, "zeta", "d")]
    assert rows.columns == ["id", "label", "k"]
    assert rows.get_column("id").to_list() == KEYED.get_column("id").to_list()
    assert rows.get_column("k").to_list() == [2, 2, 3, 1, 0, 1]


def test_keyed_rows_fall_back_to_the_texts_on_a_hash_collision(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    def same_hash(self: pl.Series, seed: int = 0) -> pl.Series:
        return pl.Series(self.name, [7] * self.len(), dtype=pl.UInt64)

    expected = _keyed(2, monkeypatch)
    monkeypatch.setattr(pl.Series, "hash", same_hash)
    rows, keys = _keyed(2, monkeypatch)
    assert rows.equals(expected[0]) and keys.equals(expected[1])
    assert keys.height == 4
