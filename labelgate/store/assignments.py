"""Sticky split assignments in the DuckDB warehouse (table ``split_assignments``).

One row per dataset and split key: its split, the run that first assigned it and the last
run that saw it. ``save_assignments`` refuses to move a stored key to a less held-out
split (test → train), so a test example never reaches train in a later run.
"""

from __future__ import annotations

import duckdb
import polars as pl

from labelgate.errors import InputError
from labelgate.stages.splits import HELD_OUT_RANK, SPLITS, _require, _unique_keys
from labelgate.store.warehouse import quote_ident

TABLE = "split_assignments"


def _ensure_table(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {quote_ident(TABLE)} (dataset VARCHAR NOT NULL, "
        "split_key VARCHAR NOT NULL, split VARCHAR NOT NULL, first_run VARCHAR NOT NULL, "
        "last_run VARCHAR NOT NULL)"
    )


def load_assignments(con: duckdb.DuckDBPyConnection, *, dataset: str) -> pl.DataFrame:
    """Every assignment ever stored for ``dataset``: key, split, first_run, last_run."""
    _ensure_table(con)
    # through Arrow, not Python tuples (docs/benchmarks/throughput.md: a night's splits)
    rel = con.sql(
        f"SELECT split_key AS key, split, first_run, last_run FROM {quote_ident(TABLE)} "  # noqa: S608
        "WHERE dataset = $1 ORDER BY split_key",
        params=[dataset],
    )
    schema = {"key": pl.String, "split": pl.String, "first_run": pl.String,
              "last_run": pl.String}
    frame = pl.from_arrow(rel.to_arrow_table())
    assert isinstance(frame, pl.DataFrame)
    return frame.cast(schema)  # type: ignore[arg-type]


def save_assignments(
    con: duckdb.DuckDBPyConnection,
    assignments: pl.DataFrame,
    *,
    dataset: str,
    run_id: str,
) -> int:
    """Upsert this run's assignments (key, split, first_run); returns rows written.

    Stored keys not in ``assignments`` (removed rows) are left as they are. ``first_run``
    keeps the stored value. Refuses (InputError, nothing written) to move a stored key to a
    less held-out split, e.g. test -> train: invariant 2 is enforced here too. Runs in its
    own transaction: call it outside an open one.
    """
    _require(assignments, ["key", "split", "first_run"], "save_assignments")
    _unique_keys(assignments.get_column("key"), "save_assignments")
    _ensure_table(con)
    incoming = _incoming(assignments)
    view = "_labelgate_split_incoming"
    con.register(view, incoming)
    try:
        con.execute("BEGIN TRANSACTION")
        try:
            _refuse_backwards(con, view=view, dataset=dataset)
            _upsert(con, view=view, dataset=dataset, run_id=run_id)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    finally:
        con.unregister(view)
    return incoming.height


def _incoming(assignments: pl.DataFrame) -> pl.DataFrame:
    """The assignments to store: key, split, first_run (String) and rank (Int8).

    Parameters
    ----------
    assignments : pl.DataFrame
        Unique keys, split, first_run; shape (n_rows, k).

    Returns
    -------
    pl.DataFrame
        Shape (n_rows, 4); rank is the split's held-out rank.

    Raises
    ------
    InputError
        A split not in ``SPLITS``.
    """
    incoming = assignments.select(
        pl.col("key").cast(pl.String), pl.col("split").cast(pl.String),
        pl.col("first_run").cast(pl.String),
        pl.col("split").cast(pl.String).replace_strict(HELD_OUT_RANK, default=-1,
                                                       return_dtype=pl.Int8).alias("rank"),
    )
    bad = incoming.filter(pl.col("rank") < 0).get_column("split").unique().to_list()
    if bad:
        raise InputError(f"save_assignments: unknown split(s) {bad}; expected {list(SPLITS)}")
    return incoming


def _refuse_backwards(con: duckdb.DuckDBPyConnection, *, view: str, dataset: str) -> None:
    """InputError (up to three examples) if ``view`` moves a stored key of ``dataset`` to a
    less held-out split."""
    backwards = con.execute(
        f"SELECT s.split_key, s.split, i.split FROM {quote_ident(TABLE)} s "  # noqa: S608
        f"JOIN {quote_ident(view)} i ON s.split_key = i.key WHERE s.dataset = ? "
        "AND i.rank < CASE s.split WHEN 'train' THEN 0 WHEN 'validation' THEN 1 "
        "ELSE 2 END ORDER BY s.split_key LIMIT 3",
        [dataset],
    ).fetchall()
    if backwards:
        raise InputError(
            f"save_assignments: {dataset}: would move stored key(s) to a less "
            f"held-out split, e.g. {backwards} (key, stored, new); a key only moves "
            "towards test"
        )


def _upsert(con: duckdb.DuckDBPyConnection, *, view: str, dataset: str, run_id: str) -> None:
    """Replace ``dataset``'s stored rows of the keys in ``view`` (keeping a stored
    ``first_run``), with ``last_run`` = ``run_id``; inside the caller's transaction."""
    table = quote_ident(TABLE)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _labelgate_split_stage AS "  # noqa: S608
        f"SELECT i.key AS split_key, i.split, COALESCE(s.first_run, i.first_run) "
        f"AS first_run FROM {quote_ident(view)} i LEFT JOIN {table} s "
        "ON s.dataset = ? AND s.split_key = i.key",
        [dataset],
    )
    con.execute(
        f"DELETE FROM {table} WHERE dataset = ? AND split_key IN "  # noqa: S608
        "(SELECT split_key FROM _labelgate_split_stage)",
        [dataset],
    )
    con.execute(
        f"INSERT INTO {table} (dataset, split_key, split, first_run, last_run) "  # noqa: S608
        "SELECT ?, split_key, split, first_run, ? FROM _labelgate_split_stage",
        [dataset, run_id],
    )
    con.execute("DROP TABLE _labelgate_split_stage")
