"""A night's publish builds its JSON Lines on `current`'s files when a split's rows begin
with current's (issue 26): the same bytes as a publish of the same splits from scratch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest

from labelgate.stages import publish as pub
from labelgate.stages.publish import AlpacaStyle, JsonlStyle, PlainStyle, publish_version


def _rows(ids: range, *, prefix: str = "k") -> pl.DataFrame:
    return pl.DataFrame({
        "id": [f"{prefix}{i:05d}" for i in ids],
        "text": [f"text {i} with \"quotes\" and ünïcode\n" for i in ids],
        "label": [["a", "b", "c"][i % 3] for i in ids],
        "score": [None if i % 7 == 0 else i / 3 for i in ids],
    })


def _splits(n: int, *, prefix: str = "k") -> dict[str, pl.DataFrame]:
    rows = _rows(range(n), prefix=prefix).with_columns(
        pl.when(pl.int_range(pl.len()) % 5 == 0).then(pl.lit("test"))
        .when(pl.int_range(pl.len()) % 5 == 1).then(pl.lit("validation"))
        .otherwise(pl.lit("train")).alias("split"))
    return {s: rows.filter(pl.col("split") == s).drop("split").sample(fraction=1.0, seed=1)
            for s in ("train", "validation", "test")}


def _publish(frames: dict[str, pl.DataFrame], root: Path, *, style: JsonlStyle,
             run_id: str = "r") -> pub.PublishedVersion:
    return publish_version(frames, root=root, key_column="id", label_column="label",
                           run_id=run_id, spec_hash="h", gate_passed=True,
                           formats=("parquet", "jsonl"), jsonl_style=style,
                           card={"name": "ds"})


def _files(version: pub.PublishedVersion) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(version.path.iterdir())
            if p.name.endswith((".parquet", ".jsonl"))}


class _Spy:
    """Counts whole JSON Lines writes (the files not built on current's)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.names: list[str] = []
        real = pub._write_jsonl

        def write(df: pl.DataFrame, path: Path) -> None:
            if not path.name.startswith("."):  # not the later rows' lines
                self.names.append(path.name)
            real(df, path)

        monkeypatch.setattr(pub, "_write_jsonl", write)


STYLES: list[JsonlStyle] = [
    PlainStyle(),
    AlpacaStyle(instruction="Label {id}: {{braces}}", input="text", output="label"),
]


@pytest.mark.parametrize("style", STYLES, ids=["plain", "alpaca"])
def test_a_night_that_appends_rows_writes_the_bytes_of_a_whole_publish(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, style: JsonlStyle) -> None:
    first = _splits(400)
    _publish(first, tmp_path / "night", style=style, run_id="r1")
    added = _splits(30, prefix="n")  # ids after every kept id: appended in key order
    night = {s: pl.concat([first[s], added[s]]) for s in first}
    night["validation"] = first["validation"]  # a split with nothing new
    spy = _Spy(monkeypatch)
    built = _publish(night, tmp_path / "night", style=style, run_id="r2")
    assert built.version == 2 and not built.unchanged
    assert spy.names == []  # every JSON Lines file built on v1's
    whole = _publish(night, tmp_path / "whole", style=style)
    assert spy.names == ["train.jsonl", "validation.jsonl", "test.jsonl"]
    assert _files(built) == _files(whole)
    assert built.manifest["files"] == whole.manifest["files"]
    assert built.manifest["content_hash"] == whole.manifest["content_hash"]
    again = _publish(night, tmp_path / "night", style=style, run_id="r3")
    assert again.unchanged and again.version == 2  # current stays v2


def _changed_label(frames: dict[str, pl.DataFrame]) -> dict[str, pl.DataFrame]:
    first_id = frames["train"].sort("id").get_column("id")[0]
    return {**frames, "train": frames["train"].with_columns(
        pl.when(pl.col("id") == first_id).then(pl.lit("z")).otherwise("label").alias("label"))}


def _interleaved(frames: dict[str, pl.DataFrame]) -> dict[str, pl.DataFrame]:
    extra = _rows(range(3)).with_columns(pl.col("id") + "x")  # k00000x: between kept ids
    return {**frames, "train": pl.concat([frames["train"], extra])}


def _removed(frames: dict[str, pl.DataFrame]) -> dict[str, pl.DataFrame]:
    return {**frames, "train": frames["train"].sort("id").slice(1)}


@pytest.mark.parametrize("change", [_changed_label, _interleaved, _removed])
def test_a_split_whose_kept_rows_changed_is_written_whole(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: Any) -> None:
    first = _splits(300)
    _publish(first, tmp_path / "night", style=PlainStyle(), run_id="r1")
    added = _splits(20, prefix="n")
    night = change({s: pl.concat([first[s], added[s]]) for s in first})
    spy = _Spy(monkeypatch)
    built = _publish(night, tmp_path / "night", style=PlainStyle(), run_id="r2")
    assert spy.names == ["train.jsonl"]  # validation and test built on v1's
    whole = _publish(night, tmp_path / "whole", style=PlainStyle())
    assert _files(built) == _files(whole)


def test_a_current_file_that_is_not_its_manifests_is_not_built_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = _splits(300)
    v1 = _publish(first, tmp_path / "night", style=PlainStyle(), run_id="r1")
    (v1.path / "test.jsonl").write_bytes(b'{"id": "tampered"}\n')
    pq = v1.path / "validation.parquet"
    pq.write_bytes(pq.read_bytes()[:-1] + b"!")  # its sha256 no longer the manifest's
    added = _splits(20, prefix="n")
    night = {s: pl.concat([first[s], added[s]]) for s in first}
    spy = _Spy(monkeypatch)
    built = _publish(night, tmp_path / "night", style=PlainStyle(), run_id="r2")
    assert sorted(spy.names) == ["test.jsonl", "validation.jsonl"]
    assert not list(built.path.glob("*.tmp"))
    whole = _publish(night, tmp_path / "whole", style=PlainStyle())
    assert _files(built) == _files(whole)


def test_another_style_or_format_is_written_whole(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = _splits(200)
    _publish(first, tmp_path / "night", style=PlainStyle(), run_id="r1")
    added = _splits(20, prefix="n")
    night = {s: pl.concat([first[s], added[s]]) for s in first}
    spy = _Spy(monkeypatch)
    style = AlpacaStyle(instruction="Label it", input="text", output="label")
    built = _publish(night, tmp_path / "night", style=style, run_id="r2")
    assert len(spy.names) == 3
    assert _files(built) == _files(_publish(night, tmp_path / "whole", style=style))


@pytest.mark.parametrize("flagged", ["relabel", "keep"])
def test_lake_rows_in_key_order_are_found_by_place_with_the_bytes_of_full_kept_rows(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flagged: str) -> None:
    """The valid rows in key order (a night's): each split's texts and features gathered
    by place (`split_step._places`), no join; the same files as from full kept rows."""
    from labelgate.stages import split_step
    from labelgate.stages.steps import detect_duplicates
    from tests.test_publish_lake import _issues, _spec, _valid
    from tests.test_publish_lake import _publish as publish_lake

    spec = _spec(tmp_path, flagged, {"formats": ["parquet", "jsonl"]})
    valid = _valid().sort("tweet_id")
    issues, dups = _issues(valid), detect_duplicates(valid, spec=spec)
    made = [split_step.make_splits(valid, spec=spec, run_id="r1", previous=None,
                                   issues=issues, dups=dups)]
    monkeypatch.setattr(split_step, "lean_kept", lambda spec: False)
    made.append(split_step.make_splits(valid, spec=spec, run_id="r1", previous=None,
                                       issues=issues, dups=dups))
    lean, full = made
    valid.write_parquet(tmp_path / "items.parquet")
    rows = pl.scan_parquet(tmp_path / "items.parquet")
    ids = split_step._sorted_ids(rows, "tweet_id")
    assert ids is not None
    train = lean.kept.filter(pl.col("split") == "train").get_column("tweet_id")
    assert split_step._places(ids, train) is not None
    assert split_step._places(ids, pl.concat([train, pl.Series(["zz"])])) is None
    assert split_step._sorted_ids(rows.reverse(), "tweet_id") is None
    new = publish_lake(split_step.split_frames(lean.kept, spec=spec, rows=rows),
                       tmp_path / "new", spec)
    old = publish_lake(split_step.split_frames(full.kept, spec=spec), tmp_path / "old", spec)
    assert old == new and "train.jsonl" in new


@pytest.mark.parametrize("dtype", [pl.String, pl.Int64])
def test_places_by_merge_and_by_search_are_the_binary_searchs(dtype: Any) -> None:
    """`split_step._places`: sorted wanted ids placed by one merge of the two sorted
    columns, unsorted ones by a search each; the same places as `search_sorted`, and None
    when an id is not among the stored ones (before the first, between two, after the
    last)."""
    from labelgate.stages import split_step

    ids = pl.Series("id", [f"k{i:04d}" for i in range(0, 600, 3)]).cast(dtype) \
        if dtype == pl.String else pl.Series("id", list(range(0, 600, 3)), dtype=dtype)
    for wanted in (ids.gather([0, 1, 5, 6, 7, 150, 199]),  # sorted: by merge
                   ids.gather([199, 0, 7, 7, 150, 1]),  # not sorted: by search
                   ids, ids.clear(), ids.gather([4, 4, 4])):
        at = split_step._places(ids, wanted.rename("other"))
        assert at is not None
        assert at.cast(pl.Int64).to_list() == ids.search_sorted(wanted).cast(pl.Int64).to_list()
        if wanted.is_sorted():  # the merge itself found them (not the search after it)
            assert split_step._merged_places(ids, wanted).equals(at, check_names=False)
    lone = (pl.Series(["a"]), pl.Series(["k0001"]), pl.Series(["z"])) if dtype == pl.String \
        else (pl.Series([-1]), pl.Series([1]), pl.Series([999]))
    for missing in lone:
        for wanted in (pl.concat([ids.gather([0, 3]), missing.cast(dtype)]).sort(),
                       pl.concat([missing.cast(dtype), ids.gather([9, 2])])):
            assert split_step._places(ids, wanted) is None


@pytest.mark.parametrize("lazy", [False, True])
def test_splits_given_in_key_order_are_not_sorted_again_and_publish_the_same_bytes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lazy: bool) -> None:
    """A split already in key order, in several chunks (a night's kept rows, then its new
    ones), is put in one chunk instead of sorted: the files are the bytes the same rows
    give in any order (sorted then)."""
    shuffled = _splits(3000)
    ordered = {}
    for name, df in shuffled.items():
        rows = df.sort("id")
        parts = pl.concat([rows.head(rows.height - 40), rows.tail(40)], rechunk=False)
        assert parts.n_chunks() > 1
        ordered[name] = parts.lazy() if lazy else parts
    want = _files(_publish(shuffled, tmp_path / "a", style=PlainStyle()))
    sorts: list[int] = []
    real = pl.DataFrame.sort

    def sort(self: pl.DataFrame, *args: Any, **kwargs: Any) -> pl.DataFrame:
        sorts.append(self.height)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(pl.DataFrame, "sort", sort)
    got = _files(_publish(ordered, tmp_path / "b", style=PlainStyle()))
    assert got == want
    assert sorts == []
