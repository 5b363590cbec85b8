"""The warehouse's `label_issues`: a view over the rows each run stored, so that a night
writes only the rows that differ from the run it built on (its new rows, mostly).

* ``label_issue_rows`` (run_id, dataset, id, given_label, suggested_label, label_quality,
  is_label_issue, position): what a run stored. ``position`` is the row's place in the
  run's table (0-based, unique within the run).
* ``label_issue_bases`` (run_id, dataset, base_run_id, rows): every run that stored rows
  and its row count; a null ``base_run_id`` for a run that stored whole, else the run
  stored whole that it stores its changes against: the rows at the positions where its
  table differs from the base's (any column, the id included) or that the base does not
  have. A night after a night builds on the same base (changes against the base, not the
  earlier night), until they pass a share of the rows and it stores whole.
* the view ``label_issues``: a run's own rows and, for a night, its base's rows at the
  other positions below its row count, with ``rank`` computed over them: 1 for the lowest
  label quality, ties by position, as the stage ranks (`LabelIssuesResult`). So
  ``SELECT ... FROM label_issues WHERE run_id = ?`` gives what the table written whole
  held, rank included, though a night's new rows change the rank of many others.

Rows are matched by position, not id: nothing here needs the ids to be unique, and the
joins are on integers. A night whose kept rows keep their places (they come first) stores
its new rows only; one whose rows moved stores whole.

A warehouse whose ``label_issues`` is still the table of every run's rows has it renamed to
``label_issue_rows`` when first opened for writing (`ensure`), its ``rank`` column renamed
to ``position``: ordering its rows by (label quality, rank) gives their rank again. Both
are renames (no copy); a night does not build on such a run (it has no
``label_issue_bases`` row): the first night after stores whole.
"""

from __future__ import annotations

import duckdb
import polars as pl

from labelgate.store.kept_connection import transaction

__all__ = ["COLUMNS", "ensure", "record_label_issues"]

COLUMNS = ("id", "given_label", "suggested_label", "label_quality", "is_label_issue")
_ALL = ", ".join((*COLUMNS, "position"))

_TABLES = """CREATE TABLE IF NOT EXISTS label_issue_rows (
    run_id VARCHAR, dataset VARCHAR, id VARCHAR, given_label VARCHAR,
    suggested_label VARCHAR, label_quality DOUBLE, is_label_issue BOOLEAN, position BIGINT);
CREATE TABLE IF NOT EXISTS label_issue_bases (
    run_id VARCHAR, dataset VARCHAR, base_run_id VARCHAR, "rows" BIGINT)"""
_VIEW = """CREATE OR REPLACE VIEW label_issues AS
SELECT run_id, dataset, id, given_label, suggested_label, label_quality, is_label_issue,
    row_number() OVER (PARTITION BY run_id ORDER BY label_quality, position) AS rank
FROM (
    SELECT run_id, dataset, id, given_label, suggested_label, label_quality, is_label_issue,
        position
    FROM label_issue_rows
    UNION ALL
    SELECT b.run_id, b.dataset, r.id, r.given_label, r.suggested_label, r.label_quality,
        r.is_label_issue, r.position
    FROM label_issue_bases b
    JOIN label_issue_rows r ON r.run_id = b.base_run_id AND r.position < b."rows"
    ANTI JOIN label_issue_rows d ON d.run_id = b.run_id AND d.position = r.position)"""
def ensure(con: duckdb.DuckDBPyConnection) -> None:
    """The tables and the view; an older warehouse's ``label_issues`` table becomes
    ``label_issue_rows`` (renames: no copy)."""
    with transaction(con):  # both renames or neither: a crash between them is rolled back
        found = con.execute(
            "SELECT table_type FROM information_schema.tables"
            " WHERE table_schema = 'main' AND table_name = 'label_issues'").fetchall()
        if found and found[0][0] != "VIEW":
            con.execute("ALTER TABLE label_issues RENAME TO label_issue_rows")
            con.execute("ALTER TABLE label_issue_rows RENAME COLUMN rank TO position")
        con.execute(_TABLES)
        con.execute(_VIEW)


def record_label_issues(
    con: duckdb.DuckDBPyConnection,
    table: pl.DataFrame,
    *,
    run_id: str,
    dataset: str,
    max_share: float = 0.25,
    whole: bool = False,
) -> str:
    """Store this run's label-issue table: its changes against the base of the dataset's
    latest run that stored rows (the rows that differ at their position, and those past the
    base's last) when they are at most ``max_share`` of ``table``'s rows; else every row
    (a new base).

    Parameters
    ----------
    table : pl.DataFrame
        One row per row of the run, in the run's order: `COLUMNS` (id and labels as text;
        other columns, ``rank`` among them, are not stored: the view ranks).
    max_share : float
        Store whole when the changes pass this share of ``table``'s rows.
    whole : bool
        Store whole whatever the changes (a run that trained its models again: a new
        base for the nights after it).

    Returns
    -------
    str
        ``"whole"`` or ``"changes since <base run>"``.
    """
    rows = table.select(COLUMNS).with_columns(
        pl.int_range(pl.len(), dtype=pl.Int64).alias("position"))
    with transaction(con):  # a run's rows and its bases row, all or none (a kill between them)
        return _record(con, rows, run_id=run_id, dataset=dataset, max_share=max_share,
                       whole=whole)


def _record(con: duckdb.DuckDBPyConnection, rows: pl.DataFrame, *, run_id: str,
            dataset: str, max_share: float, whole: bool) -> str:
    con.execute("DELETE FROM label_issue_rows WHERE run_id = ?", [run_id])  # idempotent
    con.execute("DELETE FROM label_issue_bases WHERE run_id = ?", [run_id])
    base = None if whole else _base(con, run_id=run_id, dataset=dataset)
    if base is not None:
        changed = _changes(con, rows, base=base)
        if changed.height <= max_share * max(rows.height, 1):
            _insert(con, changed, run_id=run_id, dataset=dataset)
            con.execute("INSERT INTO label_issue_bases VALUES (?, ?, ?, ?)",
                        [run_id, dataset, base, rows.height])
            return f"changes since {base}"
    _insert(con, rows, run_id=run_id, dataset=dataset)
    con.execute("INSERT INTO label_issue_bases VALUES (?, ?, NULL, ?)",
                [run_id, dataset, rows.height])
    return "whole"


def _changes(con: duckdb.DuckDBPyConnection, rows: pl.DataFrame, *,
             base: str) -> pl.DataFrame:
    """The rows of ``rows`` (`COLUMNS` and position 0..n-1) that differ from run ``base``'s
    at their position (any column, null-safe) or that it does not have."""
    table = con.sql(f"SELECT {_ALL} FROM label_issue_rows WHERE run_id = ?",  # noqa: S608
                    params=[base]).to_arrow_table()
    stored = pl.DataFrame(pl.from_arrow(table))
    if not stored.get_column("position").is_sorted():
        stored = stored.sort("position")
    n = min(stored.height, rows.height)
    if stored.height and stored.item(-1, "position") != stored.height - 1:
        return rows  # not 0..m-1 (a base is stored whole by this module: never so)
    ours, theirs = rows.head(n), stored.head(n)
    differs = pl.repeat(False, n, eager=True)
    for name in COLUMNS:
        differs = differs | ~ours.get_column(name).eq_missing(
            theirs.get_column(name).cast(ours.schema[name]))
    return pl.concat([ours.filter(differs), rows.slice(n)])


def _base(con: duckdb.DuckDBPyConnection, *, run_id: str, dataset: str) -> str | None:
    """The run stored whole that the dataset's latest other run stored against (or that
    run itself when it stored whole); None when there is none."""
    found = con.execute(
        "SELECT coalesce(b.base_run_id, b.run_id) FROM label_issue_bases b"
        " LEFT JOIN runs r ON r.run_id = b.run_id WHERE b.dataset = ? AND b.run_id <> ?"
        " ORDER BY r.started_at DESC NULLS LAST, b.run_id DESC LIMIT 1",
        [dataset, run_id]).fetchall()
    return str(found[0][0]) if found else None


def _insert(con: duckdb.DuckDBPyConnection, rows: pl.DataFrame, *, run_id: str,
            dataset: str) -> None:
    if rows.height == 0:
        return
    # arrow with string views: DuckDB reads polars' strings without a copy
    con.register("_lg_label_issue_rows", rows.to_arrow(compat_level=pl.CompatLevel.newest()))
    try:
        con.execute(
            f"INSERT INTO label_issue_rows (run_id, dataset, {_ALL})"  # noqa: S608 (ours)
            f" SELECT ?, ?, {_ALL} FROM _lg_label_issue_rows", [run_id, dataset])
    finally:
        con.unregister("_lg_label_issue_rows")
