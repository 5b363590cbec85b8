"""The DuckDB warehouse: run records, quarantine, gate results, metric history, lake views.

Connections are opened by the caller and passed in; values are bound with `?`;
identifiers that come from a spec (dataset names) are quoted with `quote_ident`.

A run keeps its read-write connection open across its stages (`connect(..., keep=True)`):
the connection lives only in `labelgate.store.kept_connection`'s registry, keyed by the
file's real path and the process id, never on an object a task carries, so whatever Prefect
pickles for a task submission (the Dask task runner: the task's parameters and context)
reaches none. It is closed by `release` (the flow calls it when the run ends, before a
remote store is pushed and the run lock released), once idle for `IDLE_SECONDS` (so another
process, say a run of another dataset in the same store, gets its turn), after an error in
a block that used it, and at the process's exit. Meanwhile `connect` in that process uses
it, read-only or not (DuckDB refuses a second connection to the file with another
configuration); another process (a Dask worker) opens its own.

Tables (shared by every dataset in a store; each row carries its dataset):
  runs (status running | passed | failed | error | abandoned: left running by a process
  that died, marked by the dataset's next run), batches, run_batches, quarantine,
  gate_results, metrics_history, label_issues (a view over label_issue_rows and
  label_issue_bases: a night stores only its changed rows, `labelgate.store.label_issue_rows`),
  duplicates (a view over duplicate_rows and
  duplicate_bases: a night stores only its changed rows, `labelgate.store.duplicate_rows`),
  agreement_metrics, annotator_stats, agreement_pairs, consensus (agreement stage),
  conflicting_responses (instruction data: same prompt, different responses)
Views (one schema per dataset, e.g. `"tweets-sentiment".valid`):
  <dataset>.items_raw  every lake batch of the items source ever ingested
  <dataset>.valid      the valid rows of the latest run
"""

from __future__ import annotations

import logging
import math
import os
import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import polars as pl
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_delay,
    wait_exponential,
)

from labelgate.errors import LabelgateError
from labelgate.gate import GateVerdict
from labelgate.store import duplicate_rows, label_issue_rows
from labelgate.store.kept_connection import IDLE_SECONDS as IDLE_SECONDS
from labelgate.store.kept_connection import _kept
from labelgate.store.kept_connection import kept_opens as kept_opens
from labelgate.store.kept_connection import release as release
from labelgate.store.lake import Batch

if TYPE_CHECKING:  # the agreement stack imports sklearn/statsmodels: not needed at runtime here
    from labelgate.stages.agreement.core import AgreementReport

WAREHOUSE_FILE = "warehouse.duckdb"
_log = logging.getLogger(__name__)

_DDL = """
CREATE TABLE IF NOT EXISTS dimension_issues (
    run_id VARCHAR, dataset VARCHAR, id VARCHAR, dimension VARCHAR, given VARCHAR,
    suggested VARCHAR, label_quality DOUBLE, is_label_issue BOOLEAN);
CREATE TABLE IF NOT EXISTS duplicate_bases (
    run_id VARCHAR, dataset VARCHAR, base_run_id VARCHAR);
CREATE TABLE IF NOT EXISTS conflicting_responses (
    run_id VARCHAR, dataset VARCHAR, conflict BIGINT, id VARCHAR, batch VARCHAR, "row" BIGINT,
    prompt VARCHAR, response VARCHAR, group_rows BIGINT, group_responses BIGINT);
CREATE TABLE IF NOT EXISTS exclusions (
    run_id VARCHAR, dataset VARCHAR, id VARCHAR, split VARCHAR, policy VARCHAR, reason VARCHAR);
CREATE TABLE IF NOT EXISTS published (
    run_id VARCHAR, dataset VARCHAR, version BIGINT, path VARCHAR, rows BIGINT);
CREATE TABLE IF NOT EXISTS runs (
    run_id VARCHAR PRIMARY KEY, dataset VARCHAR NOT NULL, spec_hash VARCHAR,
    spec_path VARCHAR, flow_run_id VARCHAR, started_at TIMESTAMPTZ, finished_at TIMESTAMPTZ,
    status VARCHAR, rows_input BIGINT, rows_valid BIGINT, rows_quarantined BIGINT,
    gate_passed BOOLEAN, report_dir VARCHAR, message VARCHAR, rows_excluded BIGINT);
ALTER TABLE runs ADD COLUMN IF NOT EXISTS rows_excluded BIGINT;
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
CREATE TABLE IF NOT EXISTS metric_details (
    run_id VARCHAR, dataset VARCHAR, metric VARCHAR, detail VARCHAR);
CREATE TABLE IF NOT EXISTS agreement_metrics (
    run_id VARCHAR, dataset VARCHAR, metric VARCHAR, value DOUBLE, ci_low DOUBLE,
    ci_high DOUBLE);
CREATE TABLE IF NOT EXISTS annotator_stats (
    run_id VARCHAR, dataset VARCHAR, annotator VARCHAR, n_labels BIGINT,
    n_items_shared BIGINT, consensus_agreement DOUBLE, n_gold BIGINT, gold_accuracy DOUBLE,
    dawid_skene_accuracy DOUBLE, mean_cohen_kappa DOUBLE, n_kappa_pairs BIGINT,
    flagged BOOLEAN, flag_reasons VARCHAR);
CREATE TABLE IF NOT EXISTS agreement_pairs (
    run_id VARCHAR, dataset VARCHAR, annotator_a VARCHAR, annotator_b VARCHAR,
    n_shared BIGINT, percent_agreement DOUBLE, cohen_kappa DOUBLE);
CREATE TABLE IF NOT EXISTS consensus (
    run_id VARCHAR, dataset VARCHAR, item VARCHAR, majority VARCHAR, dawid_skene VARCHAR,
    n_labels BIGINT, agreement DOUBLE, majority_tie_broken_by VARCHAR,
    dawid_skene_posterior DOUBLE, gold VARCHAR, consensus_method VARCHAR,
    consensus_label VARCHAR);
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
    rows_excluded: int | None
    gate_passed: bool | None
    report_dir: str | None


def quote_ident(name: str) -> str:
    """A SQL identifier, double-quoted with inner quotes doubled."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    """A SQL string literal, for the few places DuckDB takes no bound parameter (views)."""
    return "'" + value.replace("'", "''") + "'"


LOCK_TIMEOUT_SECONDS = 60.0
LOCK_TIMEOUT_ENV = "LABELGATE_WAREHOUSE_LOCK_TIMEOUT"
_LOCK_ERROR = "Could not set lock on file"
_sleep = time.sleep  # tests replace it to act between attempts


def _lock_timeout(explicit: float | None) -> float:
    """The wait for another process's write lock: the argument, else the environment
    variable LABELGATE_WAREHOUSE_LOCK_TIMEOUT (read per call, seconds), else 60 s."""
    if explicit is not None:
        return explicit
    raw = os.environ.get(LOCK_TIMEOUT_ENV)
    try:
        return float(raw) if raw else LOCK_TIMEOUT_SECONDS
    except ValueError:
        return LOCK_TIMEOUT_SECONDS


def _open(path: Path, *, read_only: bool, lock_timeout: float) -> duckdb.DuckDBPyConnection:
    """duckdb.connect, retried (tenacity) while another process holds the file: waits of
    0.05 s, twice as long each time up to 2 s, the last one cut short so that the last
    attempt is ``lock_timeout`` seconds after the first; then DuckDB's error, as it came.

    DuckDB allows one process to open a database file for writing; a run closes the
    warehouse it keeps once idle for `IDLE_SECONDS` and when it ends, so runs of different
    datasets sharing a store take turns.
    """
    backoff = wait_exponential(multiplier=0.05, max=2.0)

    def wait(state: RetryCallState) -> float:
        left = lock_timeout - (state.seconds_since_start or 0.0)
        return min(backoff(state), max(left, 0.0))

    told: list[str] = []

    def tell(state: RetryCallState) -> None:  # once per wait: who holds it, for how long
        outcome = state.outcome
        exc = outcome.exception() if outcome is not None else None
        if not told and exc is not None:
            told.append(holder_of(exc))
            _log.warning("%s is held by %s; waiting up to %.0f s (%s) for it to close",
                         path, told[0], lock_timeout, LOCK_TIMEOUT_ENV)

    attempts = Retrying(
        retry=retry_if_exception(_held_elsewhere),
        stop=stop_after_delay(lock_timeout),
        wait=wait,
        sleep=_sleep,
        before_sleep=tell,
        reraise=True,
    )
    try:
        return attempts(duckdb.connect, str(path), read_only=read_only)
    except duckdb.IOException as exc:
        if not _held_elsewhere(exc):
            raise
        raise WarehouseBusyError(
            f"{path}: held by {holder_of(exc)}, still after waiting {lock_timeout:.0f} s "
            f"({LOCK_TIMEOUT_ENV}). DuckDB lets no process write the file while another has "
            f"it open, even read-only: a notebook or BI tool holding warehouse.duckdb open "
            f"blocks the run. Close that connection (or open the file per query) and run "
            f"again (DuckDB: {_LOCK_ERROR})"
        ) from None


class WarehouseBusyError(LabelgateError, duckdb.IOException):
    """Another process kept the warehouse file open past the wait (CLI exit code 2): the
    message names it (pid and command line). Also a `duckdb.IOException`, as it was."""


_HOLDER = re.compile(r"Conflicting lock is held in (?P<exe>.*?) \(PID (?P<pid>\d+)\)")


def holder_of(exc: BaseException) -> str:
    """The process DuckDB's lock error names: `PID n (command line)`, or its text."""
    found = _HOLDER.search(str(exc))
    if found is None:
        return "another process"
    pid = found["pid"]
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        command = raw.replace(b"\0", b" ").decode(errors="replace").strip()[:160]
    except OSError:
        command = ""
    return f"PID {pid} ({command or found['exe']})"


def _held_elsewhere(exc: BaseException) -> bool:
    """DuckDB's refusal while another process has the file open for writing."""
    return isinstance(exc, duckdb.IOException) and _LOCK_ERROR in str(exc)


@contextmanager
def connect(
    path: Path, *, read_only: bool = False, lock_timeout: float | None = None,
    keep: bool = False,
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the warehouse (creating tables when writable) and close it afterwards.

    While another process has the file open for writing, retry for up to
    ``lock_timeout`` seconds (default: see `_lock_timeout`), then raise DuckDB's error.

    While this process keeps a connection to the file (see the module's docstring), that
    one is used instead, read-only or not. ``keep`` (read-write only): keep the connection
    open after the block, until `release`, an idle `IDLE_SECONDS` or the process's exit.
    """
    kept = _kept(path, create=keep and not read_only)
    if kept is not None:
        with kept.use(lock_timeout, _open_writable) as con:
            yield con
        return
    if read_only and not path.is_file():
        raise FileNotFoundError(f"{path}: no warehouse here yet (run `labelgate run` first)")
    con = _open_writable(path, lock_timeout) if not read_only else _open(
        path, read_only=True, lock_timeout=_lock_timeout(lock_timeout))
    try:
        yield con
    finally:
        con.close()


def _open_writable(path: Path, lock_timeout: float | None) -> duckdb.DuckDBPyConnection:
    """A read-write connection, the tables created."""
    path.parent.mkdir(parents=True, exist_ok=True)
    con = _open(path, read_only=False, lock_timeout=_lock_timeout(lock_timeout))
    try:
        con.execute(_DDL)
        duplicate_rows.ensure(con)
        label_issue_rows.ensure(con)
    except BaseException:
        con.close()
        raise
    return con


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


def abandon_runs(
    con: duckdb.DuckDBPyConnection, *, dataset: str, by_run_id: str
) -> list[tuple[str, datetime | None]]:
    """Mark the dataset's runs still `running` as `abandoned` (finished_at now, a message).

    Call only while holding the dataset's run lock (`labelgate.store.locking`): then no live
    process owns such a run; it was killed or its machine stopped. Returns (run_id,
    started_at) of the runs marked, oldest first.
    """
    now = datetime.now(UTC)
    rows = con.execute(
        "UPDATE runs SET status = 'abandoned', finished_at = ?,"
        " message = 'abandoned: still running when run ' || ? || ' started at '"
        " || strftime(?, '%Y-%m-%dT%H:%M:%SZ') || ' and its lock was free"
        " (the process died: killed, or the machine stopped)'"
        " WHERE dataset = ? AND status = 'running' AND run_id <> ?"
        " RETURNING run_id, started_at",
        [now, by_run_id, now, dataset, by_run_id],
    ).fetchall()
    return sorted(((str(r), s) for r, s in rows), key=lambda t: t[0])


def record_batches(con: duckdb.DuckDBPyConnection, batches: list[Batch], *, run_id: str) -> None:
    for source in sorted({b.source for b in batches}):  # idempotent on retry
        con.execute("DELETE FROM run_batches WHERE run_id = ? AND source = ?", [run_id, source])
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
    con.execute("DELETE FROM quarantine WHERE run_id = ?", [run_id])  # idempotent on retry
    con.register("_lg_quarantine", frame)
    try:
        con.execute("INSERT INTO quarantine SELECT * FROM _lg_quarantine")
    finally:
        con.unregister("_lg_quarantine")


def _insert_frame(con: duckdb.DuckDBPyConnection, table: str, frame: pl.DataFrame) -> None:
    """Append a frame whose columns match `table`'s, by name (zero-copy register)."""
    if frame.height == 0:
        return
    view = f"_lg_{table}"
    cols = ", ".join(quote_ident(c) for c in frame.columns)
    con.register(view, frame)
    try:
        con.execute(
            f"INSERT INTO {quote_ident(table)} ({cols}) SELECT {cols} FROM {quote_ident(view)}"  # noqa: S608
        )
    finally:
        con.unregister(view)


def record_rows(
    con: duckdb.DuckDBPyConnection,
    table: str,
    frame: pl.DataFrame,
    *,
    run_id: str,
    dataset: str,
) -> None:
    """Append `frame` (columns named as in `table`) with this run's id and dataset.

    ``duplicates`` is a view: its rows go to `duplicate_rows.record_duplicates` (whole);
    ``label_issues`` is one too: `label_issue_rows.record_label_issues` stores the changes
    since the dataset's latest run's base when they are few."""
    if table == "duplicates":
        duplicate_rows.record_duplicates(con, frame, run_id=run_id, dataset=dataset)
        return
    if table == "label_issues":
        label_issue_rows.record_label_issues(con, frame, run_id=run_id, dataset=dataset)
        return
    con.execute(f"DELETE FROM {quote_ident(table)} WHERE run_id = ?", [run_id])  # noqa: S608
    _insert_frame(
        con,
        table,
        frame.with_columns(pl.lit(run_id).alias("run_id"), pl.lit(dataset).alias("dataset")),
    )


def record_agreement(
    con: duckdb.DuckDBPyConnection,
    report: AgreementReport,
    *,
    run_id: str,
    dataset: str,
    consensus_method: str,
) -> None:
    """The agreement stage's tables: one row per metric, annotator, annotator pair and item.

    Labels and annotator ids are stored as text (they may be numbers in the input)."""
    keys = [pl.lit(run_id).alias("run_id"), pl.lit(dataset).alias("dataset")]
    m = report.metrics
    ci = {"krippendorff_alpha": (m.get("krippendorff_alpha_ci_low"),
                                 m.get("krippendorff_alpha_ci_high"))}
    metric_rows = [
        {
            "metric": k,
            "value": None if v is None or math.isnan(float(v)) else float(v),
            "ci_low": _finite(ci.get(k, (None, None))[0]),
            "ci_high": _finite(ci.get(k, (None, None))[1]),
        }
        for k, v in sorted(m.items())
    ]
    metrics = pl.DataFrame(
        metric_rows,
        schema={"metric": pl.String, "value": pl.Float64, "ci_low": pl.Float64,
                "ci_high": pl.Float64},
    )
    _insert_frame(con, "agreement_metrics", metrics.select(*keys, pl.all()))
    annotators = report.annotators.select(
        *keys,
        pl.col("annotator").cast(pl.String),
        "n_labels", "n_items_shared", "consensus_agreement", "n_gold", "gold_accuracy",
        "dawid_skene_accuracy", "mean_cohen_kappa", "n_kappa_pairs", "flagged", "flag_reasons",
    ).with_columns(pl.col(pl.Float64).fill_nan(None))
    _insert_frame(con, "annotator_stats", annotators)
    pairs = report.pairs.select(
        *keys,
        pl.col("annotator_a", "annotator_b").cast(pl.String),
        "n_shared", "percent_agreement", "cohen_kappa",
    ).with_columns(pl.col(pl.Float64).fill_nan(None))
    _insert_frame(con, "agreement_pairs", pairs)
    c = report.consensus
    gold = pl.col("gold").cast(pl.String) if "gold" in c.columns else pl.lit(None, pl.String)
    consensus = c.select(
        *keys,
        pl.col("item", "majority", "dawid_skene").cast(pl.String),
        "n_labels", "agreement", "majority_tie_broken_by", "dawid_skene_posterior",
        gold.alias("gold"),
        pl.lit(consensus_method).alias("consensus_method"),
        pl.col(consensus_method).cast(pl.String).alias("consensus_label"),
    )
    _insert_frame(con, "consensus", consensus)


def _finite(value: float | int | None) -> float | None:
    return None if value is None or not math.isfinite(float(value)) else float(value)


def record_metrics(
    con: duckdb.DuckDBPyConnection, metrics: Mapping[str, float], *, run_id: str, dataset: str
) -> None:
    now = datetime.now(UTC)
    con.execute("DELETE FROM metrics_history WHERE run_id = ?", [run_id])  # idempotent on retry
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
    rows_excluded: int | None = None,
    gate_passed: bool | None = None,
    report_dir: str | None = None,
    message: str | None = None,
) -> None:
    """Close the run's record; rows_input = rows_valid + rows_quarantined + rows_excluded."""
    con.execute(
        "UPDATE runs SET finished_at = ?, status = ?, rows_input = ?, rows_valid = ?,"
        " rows_quarantined = ?, rows_excluded = ?, gate_passed = ?, report_dir = ?, message = ?"
        " WHERE run_id = ?",
        [datetime.now(UTC), status, rows_input, rows_valid, rows_quarantined, rows_excluded,
         gate_passed, report_dir, message, run_id],
    )


def refresh_views(
    con: duckdb.DuckDBPyConnection, *, dataset: str, lake_glob: str, valid_path: Path,
    run_id: str, id_column: str,
) -> None:
    """(Re)create the dataset's views: `items_raw` (every lake batch), `contract_valid`
    (the latest run's rows that passed the contract) and `valid` (those less the run's
    exclusions: the rows left to publish, as counted in the report and `runs`)."""
    schema = quote_ident(dataset)
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    # DDL takes no bound parameters: identifiers are quoted and values quoted literals.
    raw = quote_literal(lake_glob)
    valid = quote_literal(str(valid_path))
    con.execute(
        f"CREATE OR REPLACE VIEW {schema}.items_raw AS "  # noqa: S608
        f"SELECT * FROM read_parquet({raw}, union_by_name = true)"
    )
    con.execute(
        f"CREATE OR REPLACE VIEW {schema}.contract_valid AS "  # noqa: S608
        f"SELECT * FROM read_parquet({valid})"
    )
    excluded = (  # the exclusions are recorded later in the run: the view reads them live
        f"SELECT id FROM main.exclusions WHERE dataset = {quote_literal(dataset)} "  # noqa: S608
        f"AND run_id = {quote_literal(run_id)}"
    )
    con.execute(
        f"CREATE OR REPLACE VIEW {schema}.valid AS SELECT v.* FROM read_parquet({valid}) v "  # noqa: S608
        f"ANTI JOIN ({excluded}) e ON CAST(v.{quote_ident(id_column)} AS VARCHAR) = e.id"
    )


_RUN_COLUMNS = (
    "SELECT run_id, dataset, status, started_at, finished_at, rows_input, rows_valid,"
    " rows_quarantined, rows_excluded, gate_passed, report_dir FROM runs WHERE dataset = ?"
)
_LATEST_ANY = _RUN_COLUMNS + " ORDER BY started_at DESC, run_id DESC LIMIT 1"
_LATEST_FINISHED = (
    _RUN_COLUMNS + " AND finished_at IS NOT NULL AND status NOT IN ('error', 'abandoned')"
    " ORDER BY started_at DESC, run_id DESC LIMIT 1"
)


def latest_run(
    con: duckdb.DuckDBPyConnection, dataset: str, *, finished: bool = True
) -> RunRecord | None:
    """The newest run of a dataset (by default only runs that finished)."""
    sql = _LATEST_FINISHED if finished else _LATEST_ANY
    rows = con.execute(sql, [dataset]).fetchall()
    return RunRecord(*rows[0]) if rows else None


def metric_history(
    con: duckdb.DuckDBPyConnection,
    dataset: str,
    *,
    last_runs: int = 30,
    metrics: list[str] | None = None,
) -> pl.DataFrame:
    """metrics_history rows (run_id, metric, value, recorded_at) of the last N runs.

    Oldest run first, so plots and tables read left to right.
    """
    rows = con.execute(
        "WITH recent AS (SELECT run_id, min(recorded_at) AS t FROM metrics_history"
        " WHERE dataset = ? GROUP BY run_id ORDER BY t DESC, run_id DESC LIMIT ?)"
        " SELECT h.run_id, h.metric, h.value, h.recorded_at FROM metrics_history h"
        " JOIN recent r USING (run_id) WHERE h.dataset = ?"
        " ORDER BY r.t, h.run_id, h.metric",
        [dataset, last_runs, dataset],
    ).fetchall()
    frame = pl.DataFrame(
        rows,
        schema={"run_id": pl.String, "metric": pl.String, "value": pl.Float64,
                "recorded_at": pl.Datetime("us", "UTC")},
        orient="row",
    )
    if metrics is not None:
        frame = frame.filter(pl.col("metric").is_in(metrics))
    return frame


def record_details(
    con: duckdb.DuckDBPyConnection, details: Mapping[str, str], *, run_id: str, dataset: str
) -> None:
    """Who this run's metrics belong to (metric -> e.g. ``"class 'neutral'"``)."""
    con.execute("DELETE FROM metric_details WHERE run_id = ?", [run_id])  # idempotent
    if details:
        con.executemany("INSERT INTO metric_details VALUES (?, ?, ?, ?)",
                        [[run_id, dataset, k, v] for k, v in sorted(details.items())])


def run_details(con: duckdb.DuckDBPyConnection, run_id: str) -> dict[str, str]:
    """The metric details `record_details` stored for `run_id`."""
    rows = con.execute("SELECT metric, detail FROM metric_details WHERE run_id = ?",
                       [run_id]).fetchall()
    return {str(m): str(d) for m, d in rows}


def run_metrics(con: duckdb.DuckDBPyConnection, run_id: str) -> dict[str, float]:
    rows = con.execute(
        "SELECT metric, value FROM metrics_history WHERE run_id = ? ORDER BY metric", [run_id]
    ).fetchall()
    return {str(m): float(v) for m, v in rows if v is not None and not math.isnan(v)}

