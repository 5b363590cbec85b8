"""The stage table `labelgate run` prints when the flow ends: each stage's Prefect task run,
read back from the server, with its state and wall time.

Prefect 3 records a task run's states from the events its engine sends; the server writes
them a moment later. The last stage's final state may not be in the database yet when the
flow returns, so the table waits (briefly, bounded) until every task run of the flow run
has a final state."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.table import Table

from labelgate import dag
from labelgate.spec import Spec

WAIT_FOR_FINAL_S = 10.0  # then the table shows the states as the server has them


def _all_final(task_runs: list[Any]) -> bool:
    return all(tr.state is not None and tr.state.is_final() for tr in task_runs)


def read_task_runs(flow_run_id: Any, wait_s: float = WAIT_FOR_FINAL_S,
                   pause_s: float = 0.1) -> list[Any]:
    """The flow run's task runs, once each has a final state (or when ``wait_s`` is up)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    deadline = time.monotonic() + wait_s
    with get_client(sync_client=True) as client:
        while True:
            task_runs = client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
            )
            if _all_final(task_runs) or time.monotonic() >= deadline:
                return list(task_runs)
            time.sleep(pause_s)


def print_stage_times(out: Console, err: Console, flow_run_id: Any, spec: Spec,
                      report: dict[str, Any] | None = None) -> None:
    """The run's stages, in declaration order (`labelgate.dag`): state and wall time of
    each one's Prefect task run (a stage the spec runs but this run skipped shows
    `skipped`), and what it did, from the report."""
    if flow_run_id is None:
        return
    try:
        task_runs = read_task_runs(flow_run_id)
    except Exception as exc:  # the table is a courtesy; never fail a run over it
        err.print(f"(stage times unavailable: {exc})")
        return
    runs: dict[str, list[Any]] = {}
    for tr in task_runs:
        runs.setdefault(tr.name.rsplit("-", 1)[0], []).append(tr)
    table = Table("stage", "state", "seconds", "rows", title="stages")
    names = ["prepare-run", *(s.name for s in dag.STAGES if s.when(spec))]
    summaries = {s.name: s.summary for s in dag.STAGES}
    total = 0.0
    for name in names + sorted(set(runs) - set(names)):
        mine = [tr for tr in runs.get(name, []) if not tr.task_key.startswith("part")]
        seconds = sum(tr.total_run_time.total_seconds() for tr in mine)
        total += seconds
        summary = summaries.get(name)
        did = summary(report) if summary is not None and report is not None else None
        state = ", ".join(sorted({tr.state.name if tr.state else "—" for tr in mine}))
        table.add_row(name, state or "skipped", f"{seconds:.2f}" if mine else "", did or "")
        parts = [tr for tr in runs.get(name, []) if tr.task_key.startswith("part")]
        if parts:  # `--dask`: a stage's parts ran as task runs of their own (in its time)
            times = [tr.total_run_time.total_seconds() for tr in parts]
            table.add_row(f"  {name} parts (on Dask)", f"{len(times)} runs",
                          f"{sum(times):.2f}", f"max {max(times):.2f} s")
    table.add_row("total", "", f"{total:.2f}", "")
    out.print(table)
