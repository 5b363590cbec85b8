"""What every task module shares: the stage decorator, retry policy, artifact helpers."""

from __future__ import annotations

import functools
import gc
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar

import duckdb
import polars as pl
from prefect import task
from prefect.cache_policies import NO_CACHE

from labelgate import progress
from labelgate.errors import LabelgateError
from tasks import faults
from tasks.progress import StageProgress

HOUR = 3600
ARTIFACT_ROWS = 200

P = ParamSpec("P")
R = TypeVar("R")


def _transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry only I/O trouble (a busy disk, a locked warehouse); never bad input or bugs."""
    try:
        state.result()
    except LabelgateError:
        return False
    except (OSError, duckdb.IOException, duckdb.TransactionException):
        return True
    except Exception:
        return False
    return False


# I/O stages are idempotent (content-addressed lake, delete-then-insert tables), so they
# retry transient errors; every stage has a time limit so a hung night shows as TimedOut.
RETRY_IO: dict[str, Any] = {
    "retries": 2, "retry_delay_seconds": 5, "retry_condition_fn": _transient,
}


def stage_task(name: str, *, timeout: float = HOUR, retry_io: bool = False,
               ) -> Callable[[Callable[P, R]], Any]:
    """A stage's Prefect task: named `name`, no input hashing (hashing a million-row frame
    costs more than the stage; cross-run reuse is keyed on batch hashes instead), a time
    limit, optional I/O retries, and the crash-test fault points around it."""
    options: dict[str, Any] = {"name": name, "cache_policy": NO_CACHE,
                               "timeout_seconds": timeout}
    if retry_io:
        options |= RETRY_IO

    def wrap(fn: Callable[P, R]) -> Any:
        return task(**options)(_progress(name)(faults.boundaries(name)(fn)))

    return wrap


def _progress(name: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Run the stage with its progress going to its log and a progress artifact."""

    def wrap(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            with _earlier_objects_frozen(), progress.reporting(StageProgress(name), stage=name):
                return fn(*args, **kwargs)

        return run

    return wrap


_frozen_lock = threading.Lock()
_frozen_depth = 0
_frozen_before = False  # whether the first running stage found objects frozen already


@contextmanager
def _earlier_objects_frozen() -> Iterator[None]:
    """Within a stage, the objects made before it (the modules, Prefect's and the flow's) are
    left out of the garbage collector's passes (`gc.freeze`), and put back when the last
    running stage ends (`gc.unfreeze`): a full collection set off inside a stage goes through
    what the stage made, not the whole process (docs/benchmarks/throughput.md). A reference
    cycle an earlier stage left behind is collected once no stage runs (its memory is
    typically freed by reference counting, not by the collector). Where objects were frozen
    before the first stage (`labelgate run` freezes its loaded libraries for the command,
    `flows.cli`), they stay frozen, with what the stages froze."""
    global _frozen_depth, _frozen_before
    with _frozen_lock:
        if _frozen_depth == 0:
            _frozen_before = gc.get_freeze_count() > 0
            gc.freeze()
        _frozen_depth += 1
    try:
        yield
    finally:
        with _frozen_lock:
            _frozen_depth -= 1
            if _frozen_depth == 0 and not _frozen_before:
                gc.unfreeze()


def json_rows(frame: pl.DataFrame) -> list[dict[str, Any]]:
    """Frame rows for a table artifact: NaN becomes null (the API takes strict JSON)."""
    floats = [c for c, t in frame.schema.items() if t.is_float()]
    return frame.with_columns(pl.col(floats).fill_nan(None)).to_dicts()


def artifact_key(dataset: str) -> str:
    """Prefect artifact keys allow lowercase letters, digits and dashes only."""
    slug = re.sub(r"[^a-z0-9-]+", "-", dataset.lower()).strip("-")
    return f"labelgate-{slug or 'dataset'}"
