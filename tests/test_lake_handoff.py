"""The lake's in-process hand-off: a run's contract takes the frames its ingest just wrote
from memory, and they equal what the lake's files hold."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from labelgate.spec import SourceSpec
from labelgate.store import lake
from labelgate.store.lake import drop_handed, ingest_source, load_batches

CSV = (
    'id,text,label,confidence\n'
    'a1,"plain text",pos,0.9\n'
    'a2,"a ""quoted"" word, and a comma",neg,\n'
    'a3,"two\nlines",pos,0.5\n'
    'a4,"broken quote,neg,0.1\n'
)


def _ingest(tmp_path: Path, name: str, text: str) -> list[lake.Batch]:
    (tmp_path / "in").mkdir(exist_ok=True)
    (tmp_path / "in" / name).write_text(text, encoding="utf-8")
    return ingest_source(SourceSpec(path=f"in/{name}"), key="items", dataset="ds",
                         store=tmp_path / "store", base_dir=tmp_path)


def _from_files(batches: list[lake.Batch]) -> tuple[pl.DataFrame, pl.DataFrame]:
    rows = pl.concat([pl.read_parquet(b.data_path) for b in batches], how="diagonal_relaxed")
    rej = pl.concat([pl.read_parquet(b.rejects_path) for b in batches], how="diagonal_relaxed")
    return rows, rej


@pytest.fixture(autouse=True)
def _clean() -> None:
    drop_handed()


def test_handed_off_frames_equal_the_lake_files(tmp_path: Path) -> None:
    batches = _ingest(tmp_path, "a.csv", CSV)
    assert str(batches[0].data_path) in lake._handed
    rows, rejects = load_batches(batches)
    assert not lake._handed  # taken once
    want_rows, want_rejects = _from_files(batches)
    assert_frame_equal(rows, want_rows)
    assert_frame_equal(rejects, want_rejects)
    assert rows.height == 3 and rejects.height >= 1  # the broken quote is a reject
    again_rows, again_rejects = load_batches(batches)  # the second read: from the files
    assert_frame_equal(again_rows, want_rows)
    assert_frame_equal(again_rejects, want_rejects)


def test_reused_batch_is_not_handed_off(tmp_path: Path) -> None:
    _ingest(tmp_path, "a.csv", CSV)
    drop_handed()
    again = _ingest(tmp_path, "a.csv", CSV)
    assert again[0].reused and not lake._handed


def test_hand_off_is_bounded_and_oldest_goes_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _ingest(tmp_path, "a.csv", CSV)
    size = sum(f.estimated_size() for f in lake._handed[str(first[0].data_path)])
    monkeypatch.setattr(lake, "HAND_OFF_MAX_BYTES", size + 1)
    second = _ingest(tmp_path, "b.csv", CSV.replace("a1", "b1"))
    assert list(lake._handed) == [str(second[0].data_path)]  # the first was evicted
    monkeypatch.setattr(lake, "HAND_OFF_MAX_BYTES", 0)
    third = _ingest(tmp_path, "c.csv", CSV.replace("a1", "c1"))
    assert str(third[0].data_path) not in lake._handed  # too large: read from the file
    rows, _ = load_batches([*first, *second, *third])
    assert rows.get_column("id").to_list()[::3] == ["a1", "b1", "c1"]


def test_a_deleted_batch_is_not_served_from_memory(tmp_path: Path) -> None:
    batches = _ingest(tmp_path, "a.csv", CSV)
    batches[0].data_path.unlink()
    with pytest.raises(FileNotFoundError):
        load_batches(batches)
