from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from labelgate.errors import InputError
from labelgate.spec import SourceSpec
from labelgate.stages.ingest.readers import read_file
from labelgate.store.lake import ingest_source, load_batches
from tests.conftest import item_rows, write_csv


def _ingest(tmp_path: Path, pattern: str, **opts: str) -> list:  # type: ignore[type-arg]
    return ingest_source(
        SourceSpec(path=pattern, **opts),  # type: ignore[arg-type]
        key="items", dataset="ds", store=tmp_path / "store", base_dir=tmp_path,
    )


def test_csv_batch_is_content_addressed_and_reused(tmp_path: Path) -> None:
    write_csv(tmp_path / "in" / "a.csv", item_rows(10))
    first = _ingest(tmp_path, "in/*.csv")
    assert len(first) == 1 and first[0].rows == 10 and not first[0].reused
    data = pl.read_parquet(first[0].data_path)
    assert data.get_column("_row").to_list() == list(range(1, 11))
    assert set(data.get_column("_batch").to_list()) == {first[0].batch}
    assert data.schema["confidence"] == pl.String  # CSV is read as text; the contract casts

    again = _ingest(tmp_path, "in/*.csv")
    assert again[0].batch == first[0].batch and again[0].reused
    batches = list((tmp_path / "store/lake/ds/items").glob("batch=*"))
    assert len(batches) == 1

    write_csv(tmp_path / "in" / "b.csv", item_rows(3))
    both = _ingest(tmp_path, "in/*.csv")
    assert [b.rows for b in both] == [10, 3]
    assert [b.reused for b in both] == [True, False]

    write_csv(tmp_path / "in" / "b.csv", item_rows(4))  # changed content: a new batch
    changed = _ingest(tmp_path, "in/*.csv")
    assert changed[1].batch != both[1].batch
    rows, rejects = load_batches(changed)
    assert rows.height == 14 and rejects.height == 0


def test_interrupted_batch_is_redone(tmp_path: Path) -> None:
    write_csv(tmp_path / "a.csv", item_rows(5))
    [batch] = _ingest(tmp_path, "a.csv")
    (Path(batch.path) / "_batch.json").unlink()  # as if killed before the marker
    [again] = _ingest(tmp_path, "a.csv")
    assert not again.reused and again.rows == 5


def test_jsonl_malformed_line_is_rejected_with_its_line_number(tmp_path: Path) -> None:
    lines = [json.dumps(r) for r in item_rows(4)]
    lines.insert(2, '{"tweet_id": "broken", ')
    lines.insert(4, "[1, 2, 3]")
    (tmp_path / "a.jsonl").write_text("\n".join(lines) + "\n")
    [batch] = _ingest(tmp_path, "a.jsonl")
    assert (batch.rows, batch.rejected) == (4, 2)
    rows, rejects = load_batches([batch])
    assert rows.get_column("_row").to_list() == [1, 2, 4, 6]
    assert rejects.get_column("_row").to_list() == [3, 5]
    reasons = rejects.get_column("reason").to_list()
    assert reasons[0].startswith("not valid JSON")
    assert reasons[1] == "expected a JSON object per line, got list"


def test_jsonl_fast_path_and_parquet(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text("\n".join(json.dumps(r) for r in item_rows(3)) + "\n")
    pl.DataFrame(item_rows(2)).write_parquet(tmp_path / "b.parquet")
    spec = SourceSpec(path="x")
    j = read_file(tmp_path / "a.jsonl", fmt="jsonl", source=spec)
    p = read_file(tmp_path / "b.parquet", fmt="parquet", source=spec)
    assert j.rows.height == 3 and j.rows.schema["confidence"] == pl.Float64
    assert p.rows.get_column("_row").to_list() == [1, 2]


@pytest.mark.parametrize(
    ("content", "name", "expected"),
    [
        (b"", "empty.csv", "file is empty"),
        (b"", "empty.jsonl", "file is empty"),
        (b"a\xff,b\n1,2\n", "badheader.csv", "the header (line 1) has bytes that are not UTF-8"),
        (b"not parquet at all", "fake.parquet", "cannot read as Parquet"),
        (b"\n\n\n", "blank.jsonl", "no JSON records"),
    ],
)
def test_unreadable_files_name_the_file(
    tmp_path: Path, content: bytes, name: str, expected: str
) -> None:
    (tmp_path / name).write_bytes(content)
    with pytest.raises(InputError) as info:
        _ingest(tmp_path, name)
    assert name in str(info.value) and expected in str(info.value)


def test_missing_files_name_the_spec_key(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"sources.items.path: file not found: .*nope.csv"):
        _ingest(tmp_path, "nope.csv")
    with pytest.raises(InputError, match=r"sources.items.path: no file matches"):
        _ingest(tmp_path, "in/*.csv")


def test_unknown_extension_needs_format(tmp_path: Path) -> None:
    write_csv(tmp_path / "a.txt", item_rows(2))
    from labelgate.errors import SpecError

    with pytest.raises(SpecError, match="cannot infer the format"):
        _ingest(tmp_path, "a.txt")
    [batch] = _ingest(tmp_path, "a.txt", format="csv")
    assert batch.rows == 2


def test_latin1_csv(tmp_path: Path) -> None:
    (tmp_path / "l.csv").write_bytes("id,text\n1,caf\xe9\n".encode("latin-1"))
    [bad] = _ingest(tmp_path, "l.csv")  # as UTF-8: the record is rejected, naming the option
    _, rejects = load_batches([bad])
    assert (bad.rows, bad.rejected) == (0, 1)
    assert "encoding: latin1" in rejects.get_column("reason")[0]
    [batch] = _ingest(tmp_path, "l.csv", encoding="latin1")
    assert pl.read_parquet(batch.data_path).get_column("text").to_list() == ["café"]
