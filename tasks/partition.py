"""Where the parts of a partitioned stage run (see `labelgate.partition`).

With the flow's default task runner the parts run in the stage's own process
(`serial_map`): no task-run overhead and no copies of the data. When the
flow runs on prefect-dask's `DaskTaskRunner` (`labelgate run --dask ADDR`), each part is
submitted as its own task run (`part`, named `<stage part>-<i>`) and runs on a Dask worker;
the stage gathers the results in order. Parts are pure functions of their argument, so
the workers need the labelgate package installed but no access to the store.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext

from labelgate.errors import InputError
from labelgate.partition import Mapper, serial_map
from labelgate.progress import advance

WORKER_LOG = "ran on Dask worker"
A = TypeVar("A")
R = TypeVar("R")


@task(name="part", cache_policy=NO_CACHE)  # the stage that waits for it has the time limit
def part(fn: Callable[[Any], Any], item: Any) -> Any:
    """One part of a stage (a fold, a batch, a shard): `fn(item)`. On a Dask worker its log
    says which worker ran it and for how long (`bench/bench_dask.py` sums these)."""
    start = time.perf_counter()
    out = fn(item)
    _log_worker(time.perf_counter() - start)
    return out


def _log_worker(seconds: float) -> None:
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):  # not on a Dask worker
        return
    get_run_logger().info("%s %s pid %d: %.2f s", WORKER_LOG, worker.address, os.getpid(),
                          seconds)


def _submit_map(fn: Callable[[A], R], items: Sequence[A], *, name: str) -> list[R]:
    futures = [
        part.with_options(task_run_name=f"{name}-{i}").submit(fn, item)
        for i, item in enumerate(items)
    ]
    results = []
    for i, future in enumerate(futures):
        results.append(future.result())
        advance(name, i + 1, len(futures), "parts")
    return results


def on_dask() -> bool:
    """Whether the current flow run's task runner is prefect-dask's."""
    ctx = FlowRunContext.get()
    # a DaskTaskRunner exists only once its module is loaded: every other run spares the
    # import of prefect-dask and distributed (about 0.2 s)
    if ctx is None or "prefect_dask.task_runners" not in sys.modules:
        return False
    from prefect_dask.task_runners import DaskTaskRunner

    return isinstance(ctx.task_runner, DaskTaskRunner)


def mapper() -> Mapper:
    """The mapper for this flow run: one task run per part on Dask, else in process."""
    return _submit_map if on_dask() else serial_map


def check_dask(address: str, *, timeout: float = 15) -> int:
    """The number of workers of the Dask scheduler at `address`; `InputError` naming the
    address when it does not answer or has no workers."""
    from distributed import Client

    try:
        with Client(address, timeout=timeout, set_as_default=False) as client:  # type: ignore[no-untyped-call]
            n = len(client.scheduler_info(n_workers=-1)["workers"])
    except (OSError, TimeoutError, ValueError) as exc:
        raise InputError(f"--dask {address}: cannot reach the Dask scheduler ({exc})") from None
    if n == 0:
        raise InputError(f"--dask {address}: the Dask scheduler has no workers")
    return n


def dask_runner(address: str) -> Any:
    """prefect-dask's `DaskTaskRunner` for the existing cluster at `address`."""
    from prefect_dask.task_runners import DaskTaskRunner

    return DaskTaskRunner(address=address)
