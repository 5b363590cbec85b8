"""`RunStore`: everything a run reads and writes, behind one object.

`RunStore` is handed to every task (as Dagster hands IO managers and Kedro a
DataCatalog); tasks never open DuckDB or build a store path themselves. It owns:

- the lake: content-addressed batches of the input files (`labelgate.store.lake`);
- the DuckDB warehouse: run records, quarantine, per-row results, split assignments,
  metric history (`labelgate.store.warehouse`), through one connection the process keeps
  (`warehouse.connect(..., keep=True)`): opened at the first write, closed when idle for
  `warehouse.IDLE_SECONDS` (so other processes and datasets can write between stages) and
  by `close` (the flow calls it when the run ends, before pushing a remote store and
  releasing the run lock). The store holds only the file's path: the connection is looked
  up at each use, so a store pickled for a task submission (Dask) carries none;
- the caches: per-batch contract results, saved label-issue results, embeddings;
- the curated rows and the published versions;
- the run context (ids and paths) and the remote store the working copy syncs with.

Values read twice in a run (the metric history, the reviewer corrections) are read once
and kept on the object.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import polars as pl

from labelgate.gate import GateVerdict
from labelgate.spec import AnySource, Spec
from labelgate.store import lake, locking, remote, reuse, warehouse
from labelgate.store.assignments import load_assignments, save_assignments
from labelgate.store.corrections import load_corrections, load_gold_answers
from labelgate.store.lake import Batch
from labelgate.store.locking import RunLock
from labelgate.store.runs import RunContext, new_run, reports_root

if TYPE_CHECKING:
    from labelgate.stages.agreement.core import AgreementReport
    from labelgate.stages.label_issues.incremental import KeptRows
    from labelgate.stages.label_issues.models import KeptModels

__all__ = ["RunStore", "open_run"]


@dataclass
class RunStore:
    """One run's view of the store.

    Parameters
    ----------
    run
        The run's identity and its folders (`labelgate.store.runs.RunContext`).
    """

    run: RunContext
    _memo: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def _warehouse(self) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
        """The run's warehouse connection, kept open between calls (by path, per process:
        see `labelgate.store.warehouse`)."""
        return warehouse.connect(self.run.warehouse, keep=True)

    def close(self) -> None:
        """Close the kept warehouse connection (if open); a later call opens it again."""
        warehouse.release(self.run.warehouse)

    # --- paths ---------------------------------------------------------------------
    @property
    def root(self) -> Path:
        return self.run.store_dir

    @property
    def dataset(self) -> str:
        return self.run.dataset

    @property
    def report_dir(self) -> Path:
        return self.run.report_dir

    @property
    def reports_root(self) -> Path:
        return reports_root(self.root, self.dataset)

    @property
    def published_root(self) -> Path:
        return self.root / "published" / self.dataset

    # --- lake and caches -------------------------------------------------------------
    def ingest(self, source: AnySource, *, key: str, base_dir: Path) -> list[Batch]:
        """Each file `source` matches as a lake batch (reused when already there)."""
        return lake.ingest_source(source, key=key, dataset=self.dataset, store=self.root,
                                  base_dir=base_dir)

    def load(self, batches: list[Batch]) -> tuple[pl.DataFrame, pl.DataFrame]:
        """The rows and the unparseable records of `batches`, concatenated."""
        return lake.load_batches(batches)

    def cached(self, kind: str, key: str, names: list[str]
               ) -> tuple[dict[str, pl.DataFrame], dict[str, object]] | None:
        """Frames `names` cached under `kind/key`, with the marker's metadata, or None."""
        return lake.read_cached(lake.cache_dir(self.root, self.dataset, kind, key), names)

    def cache(self, kind: str, key: str, frames: Mapping[str, pl.DataFrame],
              meta: Mapping[str, object]) -> None:
        lake.write_cached(lake.cache_dir(self.root, self.dataset, kind, key), frames, meta)

    def write_valid(self, valid: pl.DataFrame) -> Path:
        """The run's valid rows as curated/<dataset>/run=<id>/items.parquet (atomic)."""
        self.run.curated_dir.mkdir(parents=True, exist_ok=True)
        path = self.run.curated_dir / "items.parquet"
        tmp = self.run.curated_dir / ".items.parquet.tmp"  # the file marks the folder complete
        # zstd level 1, as the lake's batches (docs/benchmarks/readers.md)
        valid.write_parquet(tmp, compression="zstd", compression_level=1)
        tmp.replace(path)
        return path

    def saved_label_issues(self, fingerprint: str) -> reuse.SavedLabelIssues | None:
        return reuse.find_saved(self.reports_root, fingerprint=fingerprint)

    def kept_label_rows(self, key: str) -> tuple[KeptRows, dict[str, Any]] | None:
        """The newest rows and probabilities a run kept under models key `key`."""
        from labelgate.store import kept_models  # with scikit-learn: only when asked

        return kept_models.latest_rows(self.root, self.dataset, key=key)

    def kept_label_models(self, key: str, run_id: str) -> KeptModels | None:
        """The fold models run `run_id` kept under `key` (None: gone)."""
        from labelgate.store import kept_models

        return kept_models.load_models(self.root, self.dataset, key=key, run_id=run_id)

    def keep_label_state(self, key: str, **state: Any) -> None:
        """This run's rows (and models, when it trained) for later runs
        (`labelgate.store.kept_models.save_state`'s keywords)."""
        from labelgate.store import kept_models

        kept_models.save_state(self.root, self.dataset, key=key, run_id=self.run.run_id,
                               **state)

    def sync(self, direction: str, *, on_unit: Callable[[str], None]
             ) -> remote.SyncStats | None:
        """Pull the remote store's state for the dataset into this working copy
        (`direction` "pull"), or push the run's results back ("push"); None when the
        store is local."""
        if self.run.remote is None:
            return None
        move = remote.pull if direction == "pull" else remote.push
        return move(remote.open_remote(self.run.remote), self.root, self.dataset,
                    on_unit=on_unit)

    # --- reviewer overlays (read once per run) ----------------------------------------
    def corrections(self) -> pl.DataFrame:
        if "corrections" not in self._memo:
            self._memo["corrections"] = load_corrections(self.root, self.dataset)
        frame: pl.DataFrame = self._memo["corrections"]
        return frame

    def gold_answers(self) -> pl.DataFrame:
        return load_gold_answers(self.root, self.dataset)

    # --- the warehouse ---------------------------------------------------------------
    def start(self, *, flow_run_id: str | None) -> list[tuple[str, datetime | None]]:
        """Mark runs left running by a dead process abandoned, open this run's record;
        returns the abandoned runs (run id, started at)."""
        try:
            with self._warehouse() as con:
                abandoned = warehouse.abandon_runs(con, dataset=self.dataset,
                                                   by_run_id=self.run.run_id)
                warehouse.start_run(
                    con, run_id=self.run.run_id, dataset=self.dataset,
                    spec_hash=self.run.spec_hash, spec_path=self.run.spec_path,
                    started_at=self.run.started_at, flow_run_id=flow_run_id,
                )
        except BaseException:  # no run to close it: the caller releases the lock next
            self.close()
            raise
        return abandoned

    def record_batches(self, batches: list[Batch]) -> None:
        with self._warehouse() as con:
            warehouse.record_batches(con, batches, run_id=self.run.run_id)

    def record_rows(self, table: str, frame: pl.DataFrame) -> None:
        """Replace this run's rows of warehouse table `table` with `frame`."""
        with self._warehouse() as con:
            warehouse.record_rows(con, table, frame, run_id=self.run.run_id,
                                  dataset=self.dataset)

    def record_stored(self, quarantine: pl.DataFrame, *, conflicts: pl.DataFrame | None,
                      valid_path: Path, id_column: str) -> None:
        """The quarantine (and conflicting responses), then the dataset's views."""
        with self._warehouse() as con:
            warehouse.record_quarantine(con, quarantine, run_id=self.run.run_id,
                                        dataset=self.dataset)
            if conflicts is not None:
                warehouse.record_rows(con, "conflicting_responses", conflicts,
                                      run_id=self.run.run_id, dataset=self.dataset)
            warehouse.refresh_views(
                con, dataset=self.dataset,
                lake_glob=str(lake.lake_dir(self.root, self.dataset, "items")
                              / "batch=*/data.parquet"),
                valid_path=valid_path, run_id=self.run.run_id, id_column=id_column,
            )

    def record_agreement(self, batches: list[Batch], report: AgreementReport, *,
                         consensus_method: str) -> None:
        with self._warehouse() as con:
            warehouse.record_batches(con, batches, run_id=self.run.run_id)
            warehouse.record_agreement(con, report, run_id=self.run.run_id,
                                       dataset=self.dataset, consensus_method=consensus_method)

    def assign_splits(self, make: Callable[[pl.DataFrame], Any],
                      assignments: Callable[[Any], pl.DataFrame]) -> Any:
        """Read the sticky assignments, compute with `make(previous)`, save the new ones
        (`assignments(outcome)`) in the same warehouse session; returns the outcome. The
        stored assignments are read once (the run lock keeps other runs of the dataset
        from writing them in between)."""
        with self._warehouse() as con:
            previous = load_assignments(con, dataset=self.dataset, last_run=False)
            outcome = make(previous)
            save_assignments(con, assignments(outcome), dataset=self.dataset,
                             run_id=self.run.run_id, stored=previous)
        return outcome

    def metric_history(self) -> pl.DataFrame:
        """The dataset's metric history (read once per run, before this run's metrics)."""
        if "history" not in self._memo:
            with self._warehouse() as con:
                self._memo["history"] = warehouse.metric_history(con, self.dataset,
                                                                 last_runs=100)
        frame: pl.DataFrame = self._memo["history"]
        return frame

    def report_history(self, *, last_runs: int = 30) -> pl.DataFrame:
        """The history the report plots: the last `last_runs` - 1 earlier runs (the
        report adds this run's own metrics), from the one read of `metric_history`."""
        earlier = self.metric_history().filter(pl.col("run_id") != self.run.run_id)
        keep = earlier.get_column("run_id").unique(maintain_order=True).tail(last_runs - 1)
        return earlier.filter(pl.col("run_id").is_in(keep.implode()))

    def record_verdict(self, metrics: Mapping[str, float], verdict: GateVerdict, *,
                       details: Mapping[str, str] | None = None) -> None:
        """The run's metrics (with ``gate_passed``), who they belong to, and the verdict."""
        with self._warehouse() as con:
            recorded = {**metrics, "gate_passed": float(verdict.passed)}
            warehouse.record_metrics(con, recorded, run_id=self.run.run_id,
                                     dataset=self.dataset)
            warehouse.record_details(con, details or {}, run_id=self.run.run_id,
                                     dataset=self.dataset)
            warehouse.record_gate(con, verdict, run_id=self.run.run_id, dataset=self.dataset)

    def finish(self, *, status: str, message: str, **counts: Any) -> None:
        """Close the run record (`status` passed / failed / error)."""
        with self._warehouse() as con:
            warehouse.finish_run(con, run_id=self.run.run_id, status=status, message=message,
                                 **counts)


def open_run(spec: Spec, spec_path: str, store: str | None) -> tuple[RunStore, RunLock]:
    """A new run of `spec` in its store (`store` overrides the spec's; a remote URL gets a
    local working copy), with the dataset's run lock held.

    Raises
    ------
    RunLockedError
        Another run of the dataset holds the lock (the message names it).
    InputError
        A folder the run writes is a symlink out of the store (`locking.refuse_links_out`).
    """
    url = remote.store_url(spec, store)
    run = new_run(
        dataset=spec.name, spec_path=str(Path(spec_path).resolve()),
        spec_hash=spec.fingerprint(),
        store=remote.working_store(spec, store, pull_first=False), remote=url,
    )
    locking.refuse_links_out(run.store_dir, run.dataset)
    lock = locking.acquire(run.store_dir, run.dataset, run_id=run.run_id)
    return RunStore(run), lock
