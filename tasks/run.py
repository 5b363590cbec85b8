"""Opening and closing a run: the lock, the run record, the remote store's sync."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prefect import get_run_logger

from labelgate.spec import Spec, load_spec
from labelgate.stages import steps
from labelgate.store import RunStore, open_run
from labelgate.store.locking import RunLock
from tasks.common import HOUR, stage_task


@dataclass
class Prepared:
    """What `prepare_run` opens: the spec, the run's store, the dataset's run lock (the
    flow releases it in a `finally`) and the earlier runs it found abandoned."""

    spec: Spec
    store: RunStore
    lock: RunLock
    abandoned: list[dict[str, Any]]


@stage_task("prepare-run")
def prepare_run(spec_path: str, store: str | None, flow_run_id: str | None = None) -> Prepared:
    """Load the spec, take the dataset's run lock (refuse with `RunLockedError` naming the
    holder when another run of the dataset is in progress), mark runs left `running` by a
    dead process as `abandoned`, and open this run's record in the warehouse."""
    spec = load_spec(spec_path)
    # a missing embedding model fails before any data is read
    steps.check_environment(spec, notice=get_run_logger().info)
    rs, lock = open_run(spec, spec_path, store)
    try:
        _sync(rs, "pull")
        abandoned = rs.start(flow_run_id=flow_run_id)
    except BaseException:
        lock.release()
        raise
    run = rs.run
    log = get_run_logger()
    log.info("run %s of %s, store %s", run.run_id, run.dataset, run.store)
    for run_id, _ in abandoned:
        log.warning("run %s of %s was left running by a process that died: marked abandoned",
                    run_id, run.dataset)
    return Prepared(
        spec, rs, lock,
        [{"run_id": r, "started_at": t.isoformat() if t is not None else None}
         for r, t in abandoned],
    )


def _sync(store: RunStore, direction: str) -> None:
    """Pull the remote store's state into the working copy, or push the run's results."""
    log = get_run_logger()
    stats = store.sync(direction, on_unit=lambda unit: log.info("%s %s", direction, unit))
    if stats is not None:
        log.info(
            "%s %s: %s units (%s MB), %s already there, warehouse %s, %.1f s", direction,
            store.run.remote, stats.units, round(stats.bytes / 1e6, 1), stats.skipped,
            "copied" if stats.warehouse else "unchanged", stats.seconds,
        )


@stage_task("push-store", timeout=2 * HOUR, retry_io=True)
def push_store(store: RunStore) -> None:
    """A remote store: upload the run's new lake batches, caches, report, curated rows,
    published version and the warehouse (pointers last)."""
    _sync(store, "push")


@stage_task("record-error")
def record_error(store: RunStore, message: str) -> None:
    """Mark the run record as errored (spec or input problem found mid-run)."""
    store.finish(status="error", message=message)
