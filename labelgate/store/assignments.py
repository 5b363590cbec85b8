"""Sticky split assignments in the DuckDB warehouse (table ``split_assignments``).

One row per dataset and split key: its split, the run that first assigned it and the last
run that saw it. ``save_assignments`` refuses to move a stored key to a less held-out
split (test → train), so a test example never reaches train in a later run.
"""

from __future__ import annotations

from collections.abc import Callable

import duckdb
import polars as pl

from labelgate.errors import InputError
from labelgate.stages.splits import (
    HELD_OUT_RANK,
    SPLITS,
    _require,
    _unique_keys,
    prefix_join,
)
from labelgate.store.kept_connection import transaction
from labelgate.store.warehouse import quote_ident

TABLE = "split_assignments"


def _ensure_table(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {quote_ident(TABLE)} (dataset VARCHAR NOT NULL, "
        "split_key VARCHAR NOT NULL, split VARCHAR NOT NULL, first_run VARCHAR NOT NULL, "
        "last_run VARCHAR NOT NULL)"
    )


def load_assignments(con: duckdb.DuckDBPyConnection, *, dataset: str,
                     last_run: bool = True) -> pl.DataFrame:
    """Every assignment ever stored for ``dataset``, in key order: key, split, first_run,
    and last_run (unless ``last_run`` is false: a run's splits do not read it)."""
    _ensure_table(con)
    return _in_key_order(con, f"SELECT split_key AS key, split, first_run"  # noqa: S608
                         f"{', last_run' if last_run else ''} FROM {quote_ident(TABLE)} "
                         "WHERE dataset = $1", dataset=dataset)


def _in_key_order(con: duckdb.DuckDBPyConnection, sql: str, *, dataset: str) -> pl.DataFrame:
    """The rows of ``sql`` (its one parameter ``dataset``; its first column ``key``; every
    column text) in key order: read in the table's order and sorted only when that is not
    key order (a table written in key order, with later keys appended, is read as it is:
    DuckDB's ORDER BY took about twice the read). Through Arrow, not Python tuples
    (docs/benchmarks/throughput.md: a night's splits)."""
    frame = pl.from_arrow(con.sql(sql, params=[dataset]).to_arrow_table())
    assert isinstance(frame, pl.DataFrame)
    frame = frame.cast(pl.String)
    if frame.get_column("key").is_sorted():  # flagged: later checks and joins see it
        return frame.with_columns(pl.col("key").set_sorted())
    return frame.sort("key")


def save_assignments(
    con: duckdb.DuckDBPyConnection,
    assignments: pl.DataFrame,
    *,
    dataset: str,
    run_id: str,
    stored: pl.DataFrame | None = None,
) -> int:
    """Upsert this run's assignments (key, split, first_run); returns rows written.

    ``stored``: the dataset's stored assignments (key, split, first_run) as
    `load_assignments` read them in this session, with no write since (the caller holds the
    dataset's run lock): not read again. None: read here.

    Stored keys not in ``assignments`` (removed rows) are left as they are. ``first_run``
    keeps the stored value. Refuses (InputError, nothing written) to move a stored key to a
    less held-out split, e.g. test -> train: invariant 2 is enforced here too. Runs in its
    own transaction: call it outside an open one.

    Only new keys and keys whose split changed are written again; a key that keeps its
    split gets this run in ``last_run`` by one UPDATE of that column (of every stored key of
    the dataset when none was removed: a night that adds rows rewrites no assignment).
    """
    _require(assignments, ["key", "split", "first_run"], "save_assignments")
    _unique_keys(assignments.get_column("key"), "save_assignments")
    _ensure_table(con)
    incoming = _incoming(assignments)
    with transaction(con):
        stored = _stored(con, dataset=dataset) if stored is None else stored.select(
            "key", pl.col("split").alias("stored_split"),
            pl.col("first_run").alias("stored_first_run"))
        joined = prefix_join(incoming, stored, on="key")
        _refuse_backwards(joined, dataset=dataset)
        _write(con, joined, stored, dataset=dataset, run_id=run_id)
    return incoming.height


def _stored(con: duckdb.DuckDBPyConnection, *, dataset: str) -> pl.DataFrame:
    """The dataset's stored key, split and first_run as ``stored_*`` columns, in key order
    (a run's sorted assignments then find them by position: `prefix_join`)."""
    return _in_key_order(
        con, f"SELECT split_key AS key, split AS stored_split, first_run AS stored_first_run "  # noqa: S608
        f"FROM {quote_ident(TABLE)} WHERE dataset = $1", dataset=dataset)


def _incoming(assignments: pl.DataFrame) -> pl.DataFrame:
    """The assignments to store: key, split, first_run (String).

    Parameters
    ----------
    assignments : pl.DataFrame
        Unique keys, split, first_run; shape (n_rows, k).

    Returns
    -------
    pl.DataFrame
        Shape (n_rows, 3).

    Raises
    ------
    InputError
        A split not in ``SPLITS``.
    """
    incoming = assignments.select(
        pl.col("key").cast(pl.String), pl.col("split").cast(pl.String),
        pl.col("first_run").cast(pl.String),
    )
    known = pl.col("split").is_in(list(SPLITS)).fill_null(False)  # a null split is unknown
    bad = incoming.filter(~known).get_column("split").unique().to_list()
    if bad:
        raise InputError(f"save_assignments: unknown split(s) {bad}; expected {list(SPLITS)}")
    return incoming


def _refuse_backwards(joined: pl.DataFrame, *, dataset: str) -> None:
    """InputError (up to three examples, by key) if the incoming assignments (``joined``
    with their stored split) move a stored key of ``dataset`` to a less held-out split.
    The ranks are compared for the keys whose split differs from the stored one only (a
    night's moved keys: not every key's split looked up twice)."""
    rank = pl.col("split").replace_strict(HELD_OUT_RANK, return_dtype=pl.Int8)
    stored_rank = pl.col("stored_split").replace_strict(HELD_OUT_RANK, default=2,
                                                        return_dtype=pl.Int8)
    backwards = joined.filter(
        pl.col("stored_split").is_not_null() & (pl.col("stored_split") != pl.col("split"))
    ).filter(rank < stored_rank).sort("key").head(3)
    if backwards.height:
        examples = list(backwards.select("key", "stored_split", "split").iter_rows())
        raise InputError(
            f"save_assignments: {dataset}: would move stored key(s) to a less "
            f"held-out split, e.g. {examples} (key, stored, new); a key only moves "
            "towards test"
        )


def _write(con: duckdb.DuckDBPyConnection, joined: pl.DataFrame, stored: pl.DataFrame, *,
           dataset: str, run_id: str) -> None:
    """Inside the caller's transaction: ``last_run`` = ``run_id`` for the stored keys that
    keep their split, and the new or moved keys (``joined``: incoming with its stored split
    and first_run) written again with a stored ``first_run`` kept."""
    table = quote_ident(TABLE)
    same = pl.col("stored_split").is_not_null() & (pl.col("stored_split") == pl.col("split"))
    seen = int(joined.get_column("stored_split").is_not_null().sum())
    if seen == stored.height:  # no stored key was removed: every stored row is seen
        con.execute(f"UPDATE {table} SET last_run = ? WHERE dataset = ?",  # noqa: S608
                    [run_id, dataset])
    elif seen:
        _with_view(con, joined.filter(same).select("key"), lambda view: con.execute(
            f"UPDATE {table} SET last_run = ? WHERE dataset = ? AND split_key IN "  # noqa: S608
            f"(SELECT key FROM {view})", [run_id, dataset]))
    changed = joined.filter(~same).select(
        pl.col("key").alias("split_key"), "split",
        pl.coalesce("stored_first_run", "first_run").alias("first_run"),
        pl.col("stored_split").is_not_null().alias("moved"),
    )
    if changed.height == 0:
        return
    def rewrite(view: str) -> None:
        if changed.get_column("moved").any():
            con.execute(f"DELETE FROM {table} WHERE dataset = ? AND split_key IN "  # noqa: S608
                        f"(SELECT split_key FROM {view} WHERE moved)", [dataset])
        con.execute(f"INSERT INTO {table} (dataset, split_key, split, first_run, last_run) "  # noqa: S608
                    f"SELECT ?, split_key, split, first_run, ? FROM {view}", [dataset, run_id])

    _with_view(con, changed, rewrite)


def _with_view(con: duckdb.DuckDBPyConnection, frame: pl.DataFrame,
               use: Callable[[str], object]) -> None:
    """``use(name)`` with ``frame`` registered as the view ``name``."""
    view = "_labelgate_split_incoming"
    con.register(view, frame)
    try:
        use(quote_ident(view))
    finally:
        con.unregister(view)
