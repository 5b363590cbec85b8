"""The warehouse's `duplicates`: a view over the rows each run stored, so that a night
writes only the rows whose cluster changed since the run it built on.

* ``duplicate_rows`` (run_id, dataset, cluster_id, id, kind, similarity,
  is_representative): what a run stored. A run that stores whole (a full dedup pass, or
  when its changes grow past a share of its rows) holds every member row of its clusters;
  a night holds the rows that differ from its base run's, a row with a null ``kind`` (a
  tombstone) for an id of the base's clusters that is in none now.
* ``duplicate_bases`` (run_id, dataset, base_run_id): a night and the run that stored
  whole it builds on. A night after a night builds on the same base, its rows the earlier
  night's changes updated with its own.
* the view ``duplicates``: a run's own rows (less the tombstones), and for a night the base
  run's rows whose id it did not store. ``SELECT ... FROM duplicates WHERE run_id = ?``
  gives what a table written whole would hold.

A warehouse whose ``duplicates`` is still the table of every run's rows has it renamed to
``duplicate_rows`` when first opened for writing (`ensure`).
"""

from __future__ import annotations

from collections.abc import Callable

import duckdb
import polars as pl

__all__ = ["COLUMNS", "ensure", "record_duplicates"]

COLUMNS = ("cluster_id", "id", "kind", "similarity", "is_representative")
_SCHEMA = pl.Schema({"cluster_id": pl.String, "id": pl.String, "kind": pl.String,
                     "similarity": pl.Float64, "is_representative": pl.Boolean})

_TABLE = """CREATE TABLE IF NOT EXISTS duplicate_rows (
    run_id VARCHAR, dataset VARCHAR, cluster_id VARCHAR, id VARCHAR, kind VARCHAR,
    similarity DOUBLE, is_representative BOOLEAN)"""
_VIEW = """CREATE OR REPLACE VIEW duplicates AS
SELECT run_id, dataset, cluster_id, id, kind, similarity, is_representative
FROM duplicate_rows WHERE kind IS NOT NULL
UNION ALL
SELECT b.run_id, b.dataset, r.cluster_id, r.id, r.kind, r.similarity, r.is_representative
FROM duplicate_bases b JOIN duplicate_rows r ON r.run_id = b.base_run_id
ANTI JOIN duplicate_rows d ON d.run_id = b.run_id AND d.id = r.id"""


def ensure(con: duckdb.DuckDBPyConnection) -> None:
    """The table and the view (``duplicate_bases`` is in the warehouse's DDL); an older
    warehouse's ``duplicates`` table becomes ``duplicate_rows`` (a rename: no copy)."""
    found = con.execute(
        "SELECT table_type FROM information_schema.tables"
        " WHERE table_schema = 'main' AND table_name = 'duplicates'").fetchall()
    if found and found[0][0] == "VIEW":
        return
    if found:
        con.execute("ALTER TABLE duplicates RENAME TO duplicate_rows")
    con.execute(_TABLE)
    con.execute(_VIEW)


def record_duplicates(
    con: duckdb.DuckDBPyConnection,
    clusters: pl.DataFrame | Callable[[], pl.DataFrame],
    *,
    run_id: str,
    dataset: str,
    changed: pl.DataFrame | None = None,
    since: str | None = None,
    max_share: float = 0.25,
    rows: int | None = None,
) -> str:
    """Store this run's duplicate clusters: its changes since run ``since`` when given and
    that run's rows are in the warehouse, else every row of ``clusters``.

    Parameters
    ----------
    clusters : pl.DataFrame or callable
        Every member row of this run's clusters: `COLUMNS`, cluster_id and id as text; or
        a function that gives them, called only when the run is stored whole (a night that
        stores its changes does not build them).
    rows : int, optional
        The member rows' count, with ``clusters`` a function (else its height).
    changed : pl.DataFrame, optional
        `COLUMNS`: the rows whose values differ from run ``since``'s, a null ``kind`` for an
        id of its clusters that is in none now (a superset is fine: equal rows are
        stored again).
    since : str, optional
        The run ``changed`` is relative to (the run whose dedup state this one built on).
    max_share : float
        Store whole when the rows to store beside the base pass this share of
        ``clusters``' rows (a night's rows then read the base's and its own).

    Returns
    -------
    str
        ``"whole"`` or ``"changes since <base run>"``.
    """
    if isinstance(clusters, pl.DataFrame):
        rows = clusters.height
    elif rows is None:
        raise ValueError("record_duplicates: `rows` is required when `clusters` is a function")
    con.execute("DELETE FROM duplicate_rows WHERE run_id = ?", [run_id])  # idempotent
    con.execute("DELETE FROM duplicate_bases WHERE run_id = ?", [run_id])
    layered = None
    if changed is not None and since is not None and since != run_id:
        layered = _on_base(con, changed.select(COLUMNS), since,
                           limit=max_share * max(rows, 1))
    if layered is None:
        whole = clusters if isinstance(clusters, pl.DataFrame) else clusters()
        _insert(con, whole.select(COLUMNS), run_id=run_id, dataset=dataset)
        return "whole"
    base, beside = layered
    con.execute("INSERT INTO duplicate_bases VALUES (?, ?, ?)", [run_id, dataset, base])
    _insert(con, beside, run_id=run_id, dataset=dataset)
    return f"changes since {base}"


def _on_base(con: duckdb.DuckDBPyConnection, changed: pl.DataFrame, since: str, *,
             limit: float) -> tuple[str, pl.DataFrame] | None:
    """The base run and the rows to store beside it: ``since``'s own changes (when it is a
    night) updated with ``changed``; None when ``since`` stored nothing or they pass
    ``limit``."""
    found = con.execute("SELECT base_run_id FROM duplicate_bases WHERE run_id = ?",
                        [since]).fetchall()
    if not found:
        stored = con.execute("SELECT count(*) FROM (SELECT 1 FROM duplicate_rows"
                             " WHERE run_id = ? LIMIT 1)", [since]).fetchall()
        return (since, changed) if stored[0][0] and changed.height <= limit else None
    table = con.sql(
        "SELECT cluster_id, id, kind, similarity, is_representative FROM duplicate_rows"
        " WHERE run_id = ?", params=[since]).to_arrow_table()
    earlier = pl.DataFrame(pl.from_arrow(table)).cast(_SCHEMA)
    rows = pl.concat([earlier.join(changed.select("id"), on="id", how="anti"),
                      changed.cast(_SCHEMA)])
    return None if rows.height > limit else (str(found[0][0]), rows)


def _insert(con: duckdb.DuckDBPyConnection, frame: pl.DataFrame, *, run_id: str,
            dataset: str) -> None:
    if frame.height == 0:
        return
    rows = frame.with_columns(pl.lit(run_id).alias("run_id"), pl.lit(dataset).alias("dataset"))
    con.register("_lg_duplicate_rows", rows)
    try:
        con.execute("INSERT INTO duplicate_rows (run_id, dataset, cluster_id, id, kind,"
                    " similarity, is_representative) SELECT run_id, dataset, cluster_id, id,"
                    " kind, similarity, is_representative FROM _lg_duplicate_rows")
    finally:
        con.unregister("_lg_duplicate_rows")
