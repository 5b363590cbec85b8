"""A night's kept label rows (issue 26): a night whose rows are the rows it read, then new
ones, writes only the new ones beside the unit it read; reading a key's rows joins the
units back in order (`labelgate.store.kept_models`)."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from labelgate.stages.label_issues.incremental import KeptRows
from labelgate.store import kept_models

WHEN = datetime(2026, 12, 1, tzinfo=UTC)
CLASSES = ["a", "b"]


def _rows(start: int, stop: int, *, run: str, flag_every: int = 7) -> pl.DataFrame:
    """Kept rows as a run keeps them: id, h, c0, c1, scored_in, flag."""
    ids = list(range(start, stop))
    return pl.DataFrame({
        "id": [f"r{i}" for i in ids],
        "h": pl.Series([i * 2654435761 % 2**63 for i in ids], dtype=pl.UInt64),
        "c0": pl.Series([(i % 10) / 10 for i in ids], dtype=pl.Float32),
        "c1": pl.Series([1 - (i % 10) / 10 for i in ids], dtype=pl.Float32),
        "scored_in": [run] * len(ids),
        "flag": [i % flag_every == 0 for i in ids],
    })


def _save(store: Path, run: str, rows: pl.DataFrame, kept: KeptRows | None = None) -> None:
    kept_models.save_state(store, "ds", key="k", run_id=run, rows=rows, classes=CLASSES,
                           models=None, models_from="t0-train", trained_rows=100,
                           trained_at=WHEN, kept=kept)


def _latest(store: Path) -> KeptRows:
    found = kept_models.latest_rows(store, "ds", key="k")
    assert found is not None
    return found[0]


def _unit(store: Path, run: str) -> Path:
    return store / "cache" / "ds" / "label_models" / f"k-{run}"


def _written(store: Path, run: str) -> tuple[int, str | None]:
    """How many rows a unit holds itself, and the unit it names before them."""
    unit = _unit(store, run)
    meta = json.loads((unit / "_done.json").read_text())
    return pl.read_parquet(unit / "rows.parquet").height, meta.get("rows_before")


def _units(store: Path) -> list[str]:
    return sorted(p.name for p in (store / "cache" / "ds" / "label_models").iterdir())


def _nights(store: Path) -> pl.DataFrame:
    """A training run's 100 rows, then two nights adding 10 and 5 (run ids sort by
    time, as a store's do)."""
    _save(store, "t0-train", _rows(0, 100, run="t0-train"))
    one = pl.concat([_latest(store).rows, _rows(100, 110, run="t1-night")])
    _save(store, "t1-night", one, kept=_latest(store))
    two = pl.concat([_latest(store).rows, _rows(110, 115, run="t2-night")])
    _save(store, "t2-night", two, kept=_latest(store))
    return two


def test_a_night_writes_only_its_new_rows(tmp_path: Path) -> None:
    every = _nights(tmp_path)
    assert _written(tmp_path, "t0-train") == (100, None)
    assert _written(tmp_path, "t1-night") == (10, "t0-train")
    assert _written(tmp_path, "t2-night") == (5, "t1-night")
    kept = _latest(tmp_path)
    assert kept.parts == ("t0-train", "t1-night", "t2-night")
    assert kept.rows.equals(every)  # the rows a night that wrote them whole would read
    assert kept.rows.get_column("id").to_list() == [f"r{i}" for i in range(115)]
    assert (kept.models_from, kept.trained_rows, kept.classes) == ("t0-train", 100, CLASSES)
    assert _units(tmp_path) == ["k-t0-train", "k-t1-night", "k-t2-night"]  # every part is kept


def test_a_training_run_writes_whole_and_the_old_parts_go(tmp_path: Path) -> None:
    every = _nights(tmp_path)
    kept_models.save_state(tmp_path, "ds", key="k", run_id="t3-train", rows=every,
                           classes=CLASSES, models=None, models_from="t3-train",
                           trained_rows=115, trained_at=WHEN)
    assert _written(tmp_path, "t3-train") == (115, None)
    assert _units(tmp_path) == ["k-t3-train"]
    assert _latest(tmp_path).parts == ("t3-train",)


def test_changed_kept_rows_are_written_whole(tmp_path: Path) -> None:
    _save(tmp_path, "t0-train", _rows(0, 100, run="t0-train"))
    kept = _latest(tmp_path)
    reflagged = pl.concat([_rows(0, 100, run="t0-train", flag_every=3),
                           _rows(100, 110, run="t1-night")])
    _save(tmp_path, "t1-night", reflagged, kept=kept)
    assert _written(tmp_path, "t1-night") == (110, None)
    assert _latest(tmp_path).rows.equals(reflagged)
    assert _units(tmp_path) == ["k-t0-train", "k-t1-night"]  # the models' unit stays


def test_a_retry_of_the_same_run_writes_whole(tmp_path: Path) -> None:
    _save(tmp_path, "t0-train", _rows(0, 100, run="t0-train"))
    rows = pl.concat([_latest(tmp_path).rows, _rows(100, 110, run="t1-night")])
    _save(tmp_path, "t1-night", rows, kept=_latest(tmp_path))
    again = _latest(tmp_path)  # the retry reads its own unit
    _save(tmp_path, "t1-night", rows, kept=again)
    assert _written(tmp_path, "t1-night") == (110, None)
    assert _latest(tmp_path).rows.equals(rows)


def test_a_broken_chain_is_not_read(tmp_path: Path) -> None:
    _nights(tmp_path)
    shutil.rmtree(_unit(tmp_path, "t1-night"))
    kept = _latest(tmp_path)  # t2-night cannot be read whole: the training run's rows
    assert kept.parts == ("t0-train",)
    assert kept.rows.height == 100


def test_after_max_parts_the_rows_are_written_whole(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kept_models, "MAX_PARTS", 2)
    every = _nights(tmp_path)  # the first night adds a part, the second writes whole
    assert _written(tmp_path, "t2-night") == (115, None)
    assert _latest(tmp_path).rows.equals(every)
    assert _units(tmp_path) == ["k-t0-train", "k-t2-night"]
