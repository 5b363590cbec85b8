"""The DuckDB warehouse: run records, quarantine, gate results, metric history, lake views.

Connections are opened by the caller and passed in; values are bound with `?`;
identifiers that come from a spec (dataset names) are quoted with `quote_ident`.

Tables (shared by every dataset in a store; each row carries its dataset):
  runs, batches, run_batches, quarantine, gate_results, metrics_history
Views (one schema per dataset, e.g. `"tweets-sentiment".valid`):
  <dataset>.items_raw  every lake batch of the items source ever ingested
  <dataset>.valid      the valid rows of the latest run
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl

from labelgate.gate import GateVerdict
from labelgate.lake import Batch

WAREHOUSE_FILE = "warehouse.duckdb"

_DDL = """
CREATE TABLE IF NOT EXISTS runs (
    run_id VARCHAR PRIMARY KEY, dataset VARCHAR NOT NULL, spec_hash VARCHAR,
    spec_path VARCHAR, flow_run_id VARCHAR, started_at TIMESTAMPTZ, finished_at TIMESTAMPTZ,
    status VARCHAR, rows_input BIGINT, rows_valid BIGINT, rows_quarantined BIGINT,
    gate_passed BOOLEAN, report_dir VARCHAR, message VARCHAR);
CREATE TABLE IF NOT EXISTS batches (
    dataset VARCHAR, source VARCHAR, batch VARCHAR, file VARCHAR, format VARCHAR,
    rows BIGINT, rejected BIGINT, path VARCHAR, ingested_at TIMESTAMPTZ,
    PRIMARY KEY (dataset, source, batch));
CREATE TABLE IF NOT EXISTS run_batches (
    run_id VARCHAR, dataset VARCHAR, source VARCHAR, batch VARCHAR, reused BOOLEAN);
CREATE TABLE IF NOT EXISTS quarantine (
    run_id VARCHAR, dataset VARCHAR, source VARCHAR, batch VARCHAR, "row" BIGINT, id VARCHAR,
    "column" VARCHAR, "check" VARCHAR, failure_value VARCHAR, reason VARCHAR);
CREATE TABLE IF NOT EXISTS gate_results (
    run_id VARCHAR, dataset VARCHAR, "check" VARCHAR, metric VARCHAR, observed DOUBLE,
    threshold DOUBLE, passed BOOLEAN, message VARCHAR);
CREATE TABLE IF NOT EXISTS metrics_history (
    run_id VARCHAR, dataset VARCHAR, metric VARCHAR, value DOUBLE, recorded_at TIMESTAMPTZ);
"""


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    dataset: str
    status: str
    started_at: datetime | None
    finished_at: datetime | None
    rows_input: int | None
    rows_valid: int | None
    rows_quarantined: int | None
    gate_passed: bool | None
    report_dir: str | None


def quote_ident(name: str) -> str:
    """A SQL identifier, double-quoted with inner quotes doubled."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    """A SQL string literal, for the few places DuckDB takes no bound parameter (views)."""
    return "'" + value.replace("'", "''") + "'"


@contextmanager
def connect(path: Path, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the warehouse (creating tables when writable) and close it afterwards."""
    if read_only and not path.is_file():
        raise FileNotFoundError(f"{path}: no warehouse here yet (run `labelgate run` first)")
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path), read_only=read_only)
    try:
        if not read_only:
            con.execute(_DDL)
        yield con
    finally:
        con.close()


def start_run(
    con: duckdb.DuckDBPyConnection,
    *,
    run_id: str,
    dataset: str,
    spec_hash: str,
    spec_path: str,
    started_at: datetime,
    flow_run_id: str | None = None,
) -> None:
    con.execute(
        "INSERT INTO runs (run_id, dataset, spec_hash, spec_path, flow_run_id, started_at, status)"
        " VALUES (?, ?, ?, ?, ?, ?, 'running')",
        [run_id, dataset, spec_hash, spec_path, flow_run_id, started_at],
    )


def record_batches(con: duckdb.DuckDBPyConnection, batches: list[Batch], *, run_id: str) -> None:
    for b in batches:
        con.execute(
            "INSERT INTO batches VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            [b.dataset, b.source, b.batch, b.file, b.format, b.rows, b.rejected, b.path,
             b.ingested_at],
        )
        con.execute(
            "INSERT INTO run_batches VALUES (?, ?, ?, ?, ?)",
            [run_id, b.dataset, b.source, b.batch, b.reused],
        )


def record_quarantine(
    con: duckdb.DuckDBPyConnection, quarantine: pl.DataFrame, *, run_id: str, dataset: str
) -> None:
    if quarantine.height == 0:
        return
    frame = quarantine.select(
        pl.lit(run_id).alias("run_id"),
        pl.lit(dataset).alias("dataset"),
        "source", "batch", "row", "id", "column", "check", "failure_value", "reason",
    )
    con.register("_lg_quarantine", frame)
    try:
        con.execute("INSERT INTO quarantine SELECT * FROM _lg_quarantine")
    finally:
        con.unregister("_lg_quarantine")


def record_metrics(
    con: duckdb.DuckDBPyConnection, metrics: Mapping[str, float], *, run_id: str, dataset: str
) -> None:
    now = datetime.now(UTC)
    con.executemany(
        "INSERT INTO metrics_history VALUES (?, ?, ?, ?, ?)",
        [[run_id, dataset, k, float(v), now] for k, v in sorted(metrics.items())],
    )


def record_gate(
    con: duckdb.DuckDBPyConnection, verdict: GateVerdict, *, run_id: str, dataset: str
) -> None:
    con.execute("DELETE FROM gate_results WHERE run_id = ?", [run_id])
    rows = [
        [run_id, dataset, c.name, c.metric, c.observed, c.threshold, c.passed, c.message]
        for c in verdict.checks
    ]
    if rows:
        con.executemany("INSERT INTO gate_results VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)


def finish_run(
    con: duckdb.DuckDBPyConnection,
    *,
    run_id: str,
    status: str,
    rows_input: int | None = None,
    rows_valid: int | None = None,
    rows_quarantined: int | None = None,
    gate_passed: bool | None = None,
    report_dir: str | None = None,
    message: str | None = None,
) -> None:
    con.execute(
        "UPDATE runs SET finished_at = ?, status = ?, rows_input = ?, rows_valid = ?,"
        " rows_quarantined = ?, gate_passed = ?, report_dir = ?, message = ? WHERE run_id = ?",
        [datetime.now(UTC), status, rows_input, rows_valid, rows_quarantined, gate_passed,
         report_dir, message, run_id],
    )


def refresh_views(
    con: duckdb.DuckDBPyConnection, *, dataset: str, lake_glob: str, valid_path: Path
) -> None:
    """(Re)create the dataset's views over the lake and the latest valid rows."""
    schema = quote_ident(dataset)
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    # DDL takes no bound parameters: the identifier is quoted and the path a quoted literal.
    raw = quote_literal(lake_glob)
    valid = quote_literal(str(valid_path))
    con.execute(
        f"CREATE OR REPLACE VIEW {schema}.items_raw AS "  # noqa: S608
        f"SELECT * FROM read_parquet({raw}, union_by_name = true)"
    )
    con.execute(f"CREATE OR REPLACE VIEW {schema}.valid AS SELECT * FROM read_parquet({valid})")  # noqa: S608


_RUN_COLUMNS = (
    "SELECT run_id, dataset, status, started_at, finished_at, rows_input, rows_valid,"
    " rows_quarantined, gate_passed, report_dir FROM runs WHERE dataset = ?"
)
_LATEST_ANY = _RUN_COLUMNS + " ORDER BY started_at DESC, run_id DESC LIMIT 1"
_LATEST_FINISHED = (
    _RUN_COLUMNS + " AND finished_at IS NOT NULL AND status <> 'error'"
    " ORDER BY started_at DESC, run_id DESC LIMIT 1"
)


def latest_run(
    con: duckdb.DuckDBPyConnection, dataset: str, *, finished: bool = True
) -> RunRecord | None:
    """The newest run of a dataset (by default only runs that finished)."""
    sql = _LATEST_FINISHED if finished else _LATEST_ANY
    rows = con.execute(sql, [dataset]).fetchall()
    return RunRecord(*rows[0]) if rows else None


def run_metrics(con: duckdb.DuckDBPyConnection, run_id: str) -> dict[str, float]:
    rows = con.execute(
        "SELECT metric, value FROM metrics_history WHERE run_id = ? ORDER BY metric", [run_id]
    ).fetchall()
    return {str(m): float(v) for m, v in rows if v is not None and not math.isnan(v)}

