"""The warehouse's `duplicates` view (labelgate.store.duplicate_rows): a night stores only
the rows whose cluster changed since the run it built on, and the view gives each run's
rows as a table written whole would."""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from labelgate.stages.dedup import find_duplicates
from labelgate.stages.dedup_incremental import DedupSettings, detect
from labelgate.store import duplicate_rows, warehouse

LONG = ("the quick brown fox jumps over the lazy dog while the farmer watches from the "
        "porch, drinks his coffee slowly in the morning sun and wonders whether the rain "
        "will come before the harvest is in, as it did last year when half the wheat was lost")
A = LONG.replace("quick", "quack").replace("farmer", "framer")
C = LONG.replace("coffee", "toffee").replace("morning", "mourning")
S = DedupSettings(id_column="id", text_columns=["text"], label_column="y")
OLD = [("r1", A, "pos"), ("r2", A.upper(), "pos"), ("r3", C, "neg"), ("r4", C + "  ", "neg"),
       ("r5", "an unrelated sentence about trains", "pos"),
       ("r6", "another unrelated sentence about ships", "neg")]
COLS = ["cluster_id", "id", "kind", "similarity", "is_representative"]


def frame(rows: list[tuple[str, str, str]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema={"id": pl.String, "text": pl.String, "y": pl.String},
                        orient="row")


@pytest.fixture
def con(tmp_path: Path) -> duckdb.DuckDBPyConnection:
    with warehouse.connect(tmp_path / "w.duckdb") as c:
        yield c


def stored(con: duckdb.DuckDBPyConnection, run_id: str, table: str = "duplicates"
           ) -> pl.DataFrame:
    got = con.sql(f"SELECT {', '.join(COLS)} FROM {table} WHERE run_id = ?",
                  params=[run_id]).to_arrow_table()
    return pl.DataFrame(pl.from_arrow(got)).sort("id")


def members(rows: list[tuple[str, str, str]]) -> pl.DataFrame:
    """A full run's member rows of ``rows``' clusters, as the warehouse holds them."""
    ref = find_duplicates(frame(rows), id_column="id", text_columns=["text"], label_column="y")
    return ref.clusters.select(COLS).sort("id")


def record(con: duckdb.DuckDBPyConnection, run_id: str, rows: list[tuple[str, str, str]],
           kept: object, since: str | None) -> tuple[str, object]:
    res, graph, _ = detect(frame(rows), S, kept=kept, max_new_share=1.0)  # type: ignore[arg-type]
    how = duplicate_rows.record_duplicates(con, res.clusters.select(COLS), run_id=run_id,
                                           dataset="d", changed=res.changed, since=since,
                                           max_share=1.0)
    return how, graph


def test_nights_store_their_changes_and_read_as_a_whole_table(
        con: duckdb.DuckDBPyConnection) -> None:
    how, kept = record(con, "full", OLD, None, None)
    assert how == "whole"
    assert_frame_equal(stored(con, "full"), members(OLD))
    # night 1: r7 an exact duplicate of r5 (a new cluster of old r5), r8 of r1 (joins it)
    night1 = [*OLD, ("r7", "  AN unrelated sentence about   trains", "neg"), ("r8", A, "x")]
    how, kept = record(con, "n1", night1, kept, "full")
    assert how == "changes since full"
    assert_frame_equal(stored(con, "n1"), members(night1))
    assert stored(con, "n1", "duplicate_rows").get_column("id").to_list() == ["r5", "r7", "r8"]
    # night 2: r0 (the smallest id) bridges A and C: every member's cluster changes
    night2 = [*night1, ("r0", LONG, "neu")]
    how, kept = record(con, "n2", night2, kept, "n1")
    assert how == "changes since full"  # on the same base, with night 1's changes
    assert_frame_equal(stored(con, "n2"), members(night2))
    assert set(stored(con, "n2", "duplicate_rows").get_column("id")) == {
        "r0", "r1", "r2", "r3", "r4", "r5", "r7", "r8"}
    # night 3, nothing new: night 2's rows again, on the same base
    how, _ = record(con, "n3", night2, kept, "n2")
    assert how == "changes since full"
    assert_frame_equal(stored(con, "n3"), members(night2))
    # the earlier runs read as they were
    assert_frame_equal(stored(con, "full"), members(OLD))
    assert_frame_equal(stored(con, "n1"), members(night1))
    assert con.execute("SELECT count(*) FROM duplicates").fetchall()[0][0] == (
        len(members(OLD)) + len(members(night1)) + 2 * len(members(night2)))


def test_a_night_that_stores_its_changes_builds_no_member_rows(
        con: duckdb.DuckDBPyConnection) -> None:
    """The member rows come lazily (`DuplicateResult.members`): a run stored whole builds
    them once, a night that stores its changes neither calls the function it gives
    `record_duplicates` nor builds them, and the result in brief keeps their schema
    without building them; what is stored is what the eager rows give."""
    res, kept, _ = detect(frame(OLD), S, kept=None, max_new_share=1.0)
    assert not isinstance(res.members, pl.DataFrame)
    calls: list[int] = []

    def whole() -> pl.DataFrame:
        calls.append(1)
        return res.clusters.select(COLS)

    how = duplicate_rows.record_duplicates(
        con, whole, run_id="full", dataset="d", changed=res.changed, since=None,
        rows=res.summary["rows_in_clusters"])
    assert (how, calls) == ("whole", [1])
    assert isinstance(res.members, pl.DataFrame)  # built once, then kept
    assert_frame_equal(stored(con, "full"), members(OLD))
    night = [*OLD, ("r7", "  AN unrelated sentence about   trains", "neg"), ("r8", A, "x")]
    res, _, plan = detect(frame(night), S, kept=kept, max_new_share=1.0)
    assert plan.incremental

    def never() -> pl.DataFrame:
        raise AssertionError("the member rows were built")

    how = duplicate_rows.record_duplicates(
        con, never, run_id="n1", dataset="d", changed=res.changed, since="full",
        max_share=1.0, rows=res.summary["rows_in_clusters"])
    assert how == "changes since full"
    assert_frame_equal(stored(con, "n1"), members(night))
    brief = res.without_rows()
    assert not isinstance(res.members, pl.DataFrame)
    assert brief.clusters.is_empty() and brief.clusters.schema == res.clusters.schema
    assert res.clusters.height == res.summary["rows_in_clusters"]
    with pytest.raises(ValueError, match="rows"):
        duplicate_rows.record_duplicates(con, whole, run_id="x", dataset="d")


def _rows(*rows: tuple[str, str, str, float, bool]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=dict(zip(COLS, [pl.String, pl.String, pl.String,
                                                     pl.Float64, pl.Boolean], strict=True)),
                        orient="row")


def test_a_tombstone_hides_a_base_row_and_too_many_changes_store_whole(
        con: duckdb.DuckDBPyConnection) -> None:
    base = _rows(("a", "a", "exact", 1.0, True), ("a", "b", "exact", 1.0, False),
                 ("c", "c", "exact", 1.0, True), ("c", "d", "near", 0.9, False))
    assert duplicate_rows.record_duplicates(con, base, run_id="b", dataset="d") == "whole"
    gone = pl.DataFrame({"id": ["a", "b"]}).with_columns(
        pl.lit(None, pl.String).alias("cluster_id"), pl.lit(None, pl.String).alias("kind"),
        pl.lit(None, pl.Float64).alias("similarity"),
        pl.lit(None, pl.Boolean).alias("is_representative"))
    now = base.filter(pl.col("cluster_id") == "c")
    how = duplicate_rows.record_duplicates(con, now, run_id="n", dataset="d", changed=gone,
                                           since="b", max_share=1.0)
    assert how == "changes since b"
    assert_frame_equal(stored(con, "n"), now)
    # more changes than max_share of the rows: stored whole, the view the same
    how = duplicate_rows.record_duplicates(con, now, run_id="n", dataset="d", changed=gone,
                                           since="b", max_share=0.5)
    assert how == "whole"
    assert_frame_equal(stored(con, "n"), now)
    assert con.execute("SELECT count(*) FROM duplicate_bases").fetchall() == [(0,)]
    # a run whose rows are not in the warehouse is no base
    how = duplicate_rows.record_duplicates(con, now, run_id="m", dataset="d", changed=gone,
                                           since="missing", max_share=1.0)
    assert how == "whole"


def test_an_older_warehouse_table_becomes_the_rows_of_the_view(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    with duckdb.connect(str(path)) as old:
        old.execute("CREATE TABLE duplicates (run_id VARCHAR, dataset VARCHAR,"
                    " cluster_id VARCHAR, id VARCHAR, kind VARCHAR, similarity DOUBLE,"
                    " is_representative BOOLEAN)")
        old.execute("INSERT INTO duplicates VALUES ('r', 'd', 'a', 'a', 'exact', 1.0, true),"
                    " ('r', 'd', 'a', 'b', 'near', 0.95, false)")
    with warehouse.connect(path) as con:
        kinds = con.execute("SELECT table_name, table_type FROM information_schema.tables"
                            " WHERE table_name LIKE 'duplicate%' ORDER BY 1").fetchall()
        assert kinds == [("duplicate_bases", "BASE TABLE"), ("duplicate_rows", "BASE TABLE"),
                         ("duplicates", "VIEW")]
        assert stored(con, "r").rows() == [("a", "a", "exact", 1.0, True),
                                           ("a", "b", "near", 0.95, False)]
    with warehouse.connect(path) as con:  # opened again: nothing to do
        assert stored(con, "r").height == 2
