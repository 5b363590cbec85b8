"""The warehouse's `label_issues` view (labelgate.store.label_issue_rows): a night stores
only the rows that differ from its base run's, and the view gives each run's rows, rank
included, as the table written whole held them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from labelgate.stages.label_issues.detect import _issue_table
from labelgate.store import label_issue_rows, warehouse

CLASSES = ["neg", "neu", "pos"]
COLS = ["id", "given_label", "suggested_label", "label_quality", "is_label_issue", "rank"]


def table(ids: list[str], quality: list[float], flags: list[bool] | None = None,
          given: list[int] | None = None) -> pl.DataFrame:
    """The stage's table (its own rank: ties by position) for these rows."""
    n = len(ids)
    return _issue_table(
        pl.Series(ids, dtype=pl.String), CLASSES,
        given=np.array(given if given is not None else [i % 3 for i in range(n)]),
        suggested=np.array([(i + 1) % 3 for i in range(n)]),
        quality=np.array(quality, dtype=np.float64),
        is_issue=np.array(flags if flags is not None else [q < 0.2 for q in quality]),
        extra={})


@pytest.fixture
def con(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    with warehouse.connect(tmp_path / "w.duckdb") as c:
        yield c


def read(con: duckdb.DuckDBPyConnection, run_id: str) -> pl.DataFrame:
    got = con.sql(f"SELECT {', '.join(COLS)} FROM label_issues WHERE run_id = ? ORDER BY rank",
                  params=[run_id]).to_arrow_table()
    return pl.DataFrame(pl.from_arrow(got))


def record(con: duckdb.DuckDBPyConnection, run_id: str, frame: pl.DataFrame,
           minute: int) -> str:
    con.execute("INSERT INTO runs (run_id, dataset, started_at, status) VALUES"
                " (?, 'd', TIMESTAMPTZ '2026-01-01 00:00:00+00' + INTERVAL (?) MINUTE,"
                " 'passed')", [run_id, minute])
    return label_issue_rows.record_label_issues(con, frame, run_id=run_id, dataset="d",
                                                max_share=0.5)


def stored_rows(con: duckdb.DuckDBPyConnection, run_id: str) -> int:
    return int(con.execute("SELECT count(*) FROM label_issue_rows WHERE run_id = ?",
                           [run_id]).fetchall()[0][0])


# 12 rows with ties in label quality (rank by position among equals)
IDS = [f"r{i}" for i in range(12)]
QUALITY = [0.5, 0.1, 0.5, 0.9, 0.1, 0.3, 0.5, 0.7, 0.3, 0.1, 0.8, 0.5]


def test_nights_store_their_changes_and_read_as_the_table_written_whole(
        con: duckdb.DuckDBPyConnection) -> None:
    full = table(IDS, QUALITY)
    assert record(con, "full", full, 0) == "whole"
    # night 1: three new rows, two of them tie with kept rows (they rank after them)
    night1 = table([*IDS, "n0", "n1", "n2"], [*QUALITY, 0.1, 0.5, 0.05])
    assert record(con, "night1", night1, 1) == "changes since full"
    assert stored_rows(con, "night1") == 3
    # night 2 builds on the same base: its rows are the base's changes, a flag changed
    # (a review) and a label quality changed among them
    flags = [q < 0.2 for q in [*QUALITY, 0.1, 0.5, 0.05, 0.5]]
    flags[3] = True
    quality2 = [*QUALITY, 0.1, 0.5, 0.05, 0.5]
    quality2[7] = 0.1
    night2 = table([*IDS, "n0", "n1", "n2", "n3"], quality2, flags)
    assert record(con, "night2", night2, 2) == "changes since full"
    assert stored_rows(con, "night2") == 6  # rows 3 and 7, n0..n3
    for run_id, expected in [("full", full), ("night1", night1), ("night2", night2)]:
        got = read(con, run_id)
        assert_frame_equal(got, expected.select(COLS).sort("rank"))
    # the stage's rank: r1 before r4 before r9 before n0 (all 0.1), n2 (0.05) first
    assert read(con, "night1").get_column("id").head(5).to_list() == [
        "n2", "r1", "r4", "r9", "n0"]


def test_fewer_or_moved_rows_and_too_many_changes(con: duckdb.DuckDBPyConnection) -> None:
    full = table(IDS, QUALITY)
    record(con, "full", full, 0)
    # the last rows gone, a label changed: the view stops at the night's row count
    given = [i % 3 for i in range(9)]
    given[2] = 0
    shorter = table(IDS[:9], QUALITY[:9], given=given)
    assert record(con, "short", shorter, 1) == "changes since full"
    assert stored_rows(con, "short") == 1
    assert_frame_equal(read(con, "short"), shorter.select(COLS).sort("rank"))
    # the rows in another order: every position differs, more than half: stored whole
    moved = table(IDS[::-1], QUALITY[::-1])
    assert record(con, "moved", moved, 2) == "whole"
    assert stored_rows(con, "moved") == 12
    assert_frame_equal(read(con, "moved"), moved.select(COLS).sort("rank"))
    # the next night builds on the latest run's base ("moved"), and recording it again
    # replaces its rows
    again = table([*IDS[::-1], "x"], [*QUALITY[::-1], 0.0])
    for _ in range(2):
        assert label_issue_rows.record_label_issues(
            con, again, run_id="next", dataset="d") == "changes since moved"
    assert stored_rows(con, "next") == 1
    assert_frame_equal(read(con, "next"), again.select(COLS).sort("rank"))
    assert_frame_equal(read(con, "full"), full.select(COLS).sort("rank"))
    # a run that trained again stores whole, however few its changes: the next base
    assert label_issue_rows.record_label_issues(
        con, again, run_id="trained", dataset="d", whole=True) == "whole"
    assert stored_rows(con, "trained") == 13


def test_an_older_warehouse_table_becomes_the_rows_of_the_view(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    old = table(IDS, QUALITY)
    with duckdb.connect(str(path)) as raw:  # the table as an earlier version wrote it
        raw.execute("CREATE TABLE label_issues (run_id VARCHAR, dataset VARCHAR, id VARCHAR,"
                    " given_label VARCHAR, suggested_label VARCHAR, label_quality DOUBLE,"
                    " is_label_issue BOOLEAN, rank BIGINT)")
        raw.register("old", old.with_columns(pl.lit("r0").alias("run_id"),
                                             pl.lit("d").alias("dataset")))
        raw.execute("INSERT INTO label_issues SELECT run_id, dataset, id, given_label,"
                    " suggested_label, label_quality, is_label_issue, rank FROM old")
    with warehouse.connect(path) as con:
        kinds = dict(con.execute("SELECT table_name, table_type FROM information_schema.tables"
                                 " WHERE table_name LIKE 'label_issue%'").fetchall())
        assert kinds == {"label_issues": "VIEW", "label_issue_rows": "BASE TABLE",
                         "label_issue_bases": "BASE TABLE"}
        assert_frame_equal(read(con, "r0"), old.select(COLS).sort("rank"))
        # the next run does not build on a migrated run: it stores whole, through the
        # warehouse's record_rows as the stage does
        warehouse.record_rows(con, "label_issues", old, run_id="r1", dataset="d")
        assert stored_rows(con, "r1") == 12
        assert_frame_equal(read(con, "r1"), old.select(COLS).sort("rank"))
    with warehouse.connect(path, read_only=True) as con:  # opened again: still the view
        assert_frame_equal(read(con, "r0"), old.select(COLS).sort("rank"))


class _KilledAt:
    """A connection whose statement starting with ``prefix`` is killed (as a SIGKILL or
    Ctrl-C between two statements would be)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, prefix: str) -> None:
        self.con, self.prefix = con, prefix

    def __getattr__(self, name: str) -> object:
        return getattr(self.con, name)

    def execute(self, query: str, *args: object) -> object:
        if query.startswith(self.prefix):
            raise KeyboardInterrupt(f"killed at {self.prefix}")
        return self.con.execute(query, *args)


def test_a_run_killed_before_its_bases_row_leaves_nothing_of_itself(
        con: duckdb.DuckDBPyConnection) -> None:
    base = table([f"i{i}" for i in range(40)], [i / 40 for i in range(40)])
    record(con, "r0", base, 0)
    night = table([f"i{i}" for i in range(42)], [i / 40 for i in range(40)] + [0.3, 0.05])
    con.execute("INSERT INTO runs (run_id, dataset, started_at, status)"
                " VALUES ('r1', 'd', now(), 'running')")
    with pytest.raises(KeyboardInterrupt):
        label_issue_rows.record_label_issues(
            _KilledAt(con, "INSERT INTO label_issue_bases"),  # type: ignore[arg-type]
            night, run_id="r1", dataset="d", max_share=0.5)
    assert stored_rows(con, "r1") == 0  # not 2 changed rows read as a whole run
    assert read(con, "r1").height == 0
    assert_frame_equal(read(con, "r0"), base.select(COLS).sort("rank"))
    again = label_issue_rows.record_label_issues(con, night, run_id="r1", dataset="d",
                                                 max_share=0.5)
    assert again == "changes since r0"  # the task's retry stores its changes, as before
    assert_frame_equal(read(con, "r1"), night.select(COLS).sort("rank"))


def test_a_migration_killed_between_its_renames_is_rolled_back(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    with duckdb.connect(str(path)) as raw:  # a warehouse of the version before the view
        raw.execute("CREATE TABLE label_issues (run_id VARCHAR, dataset VARCHAR, id VARCHAR,"
                    " given_label VARCHAR, suggested_label VARCHAR, label_quality DOUBLE,"
                    " is_label_issue BOOLEAN, rank BIGINT)")
        raw.execute("INSERT INTO label_issues VALUES ('r0', 'd', 'a', 'x', 'y', 0.5, false, 1)")
        with pytest.raises(KeyboardInterrupt):
            label_issue_rows.ensure(
                _KilledAt(raw, "ALTER TABLE label_issue_rows RENAME COLUMN"),  # type: ignore[arg-type]
            )
        kinds = raw.execute("SELECT table_name, table_type FROM information_schema.tables"
                            " WHERE table_name LIKE 'label_issue%'").fetchall()
        assert kinds == [("label_issues", "BASE TABLE")]  # as it was: the rename undone
    with warehouse.connect(path) as con:  # the next writer migrates it
        assert con.execute("SELECT id, rank FROM label_issues WHERE run_id = 'r0'"
                           ).fetchall() == [("a", 1)]
