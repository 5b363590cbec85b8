"""`labelgate run --dask ADDR`: the stages' parts on a real Dask cluster, same outputs.

Starts a real `prefect server start` on 127.0.0.1 (tests/test_schedule.py's `server`
fixture) and a `distributed.LocalCluster` of 3 worker processes in a process of its own
(loopback only, stopped by PID), then runs the demo spec (3,000 real tweets in two files:
contract, label issues, dedup, splits, publish) twice through the CLI: in process with a
store folder, and with `--dask` with the store at a `file://` fsspec URL. Every output
table and file must be the same, and the parts must have run as task runs of the Dask flow
run, on the cluster's workers.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest

from tasks.partition import WORKER_LOG
from tests.test_schedule import (
    BIN,
    REPO,
    Server,
    _stop,
    server,  # noqa: F401 - the real-server fixture
)

pytestmark = pytest.mark.slow
SPEC = REPO / "data/examples/tweets/spec.yaml"
DATASET = "tweets-sentiment"

_CLUSTER = """
import sys, time
from distributed import LocalCluster
cluster = LocalCluster(n_workers=3, threads_per_worker=1, processes=True, host="127.0.0.1",
                       dashboard_address=None)
print(cluster.scheduler_address, flush=True)
while True:
    time.sleep(1)
"""


@pytest.fixture
def cluster(server: Server) -> Iterator[str]:  # noqa: F811 - the imported fixture
    """A LocalCluster of 3 workers whose environment points at the test's Prefect server."""
    log = (server.logs / "dask.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-c", _CLUSTER], cwd=REPO, env=server.env, stdout=subprocess.PIPE,
        stderr=log, start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        address = proc.stdout.readline().decode().strip()
        assert address.startswith("tcp://127.0.0.1:"), (address, server.log("dask"))
        yield address
    finally:
        _stop(proc)  # type: ignore[arg-type]


def _labelgate(srv: Server, *args: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            [str(BIN / "labelgate"), *args], cwd=REPO, env=srv.env, capture_output=True,
            text=True, timeout=600,
        )
    except subprocess.TimeoutExpired as exc:  # say where it hung
        pytest.fail(f"labelgate {' '.join(args)} did not finish in 600 s:\n"
                    f"{(exc.stdout or b'')[-3000:]!r}\n--- dask log ---\n{srv.log('dask')}")


def _table(store: Path, sql: str) -> list[tuple[object, ...]]:
    con = duckdb.connect(str(store / "warehouse.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _pointer(folder: Path, name: str) -> Path:
    """`latest`/`current`: a symlink in a store folder, a `.link` file at an fsspec URL."""
    link = folder / f"{name}.link"
    return folder / link.read_text().strip() if link.exists() else folder / name


def _outputs(store: Path) -> dict[str, object]:
    """Everything a run produces that must not depend on where its parts ran."""
    latest = _pointer(store / "reports" / DATASET, "latest")
    out: dict[str, object] = {
        name: _table(store, sql) for name, sql in {
            "quarantine": 'SELECT batch, "row", "column", "check", reason FROM quarantine '
                          'ORDER BY ALL',
            "label_issues": "SELECT id, given_label, suggested_label, round(label_quality, 5), "
                            "is_label_issue, rank FROM label_issues ORDER BY id",
            "duplicates": "SELECT cluster_id, id, kind, round(similarity, 6) FROM duplicates "
                          "ORDER BY ALL",
            "splits": "SELECT split_key, split FROM split_assignments ORDER BY ALL",
        }.items()
    }
    probs = pl.read_parquet(latest / "probabilities.parquet").sort("id")
    out["probabilities"] = probs.with_columns(pl.exclude("id").round(5)).to_dicts()
    published = _pointer(store / "published" / DATASET, "current")
    out["published"] = sorted(
        (p.name, hashlib.sha256(p.read_bytes()).hexdigest())
        for p in published.iterdir()
        if p.name not in ("manifest.json", "published_at.txt", "README.md")
    )
    return out


def _part_workers(srv: Server, flow_run_id: str, expected: int) -> list[str]:
    """The worker address in each part's log line; the workers ship their logs in batches,
    so wait up to 30 s for `expected` of them."""
    workers: list[str] = []
    for _ in range(30):
        logs = srv.post("/logs/filter", {"logs": {"flow_run_id": {"any_": [flow_run_id]}},
                                         "limit": 200})
        workers = [str(log["message"]).split()[4] for log in logs  # type: ignore[union-attr, index]
                   if str(log["message"]).startswith(WORKER_LOG)]  # type: ignore[index]
        if len(workers) >= expected:
            break
        time.sleep(1)
    return workers


def _task_runs(srv: Server, flow_run_id: object,
               done: Callable[[list[dict[str, Any]]], bool]) -> list[dict[str, Any]]:
    """The flow run's task runs once ``done`` holds for them, or after 30 s: Prefect 3's
    server writes task runs and their states from the events the engine (here also the
    Dask workers) sends, a moment after the flow returns."""
    tasks: list[dict[str, Any]] = []
    for _ in range(60):
        tasks = srv.post("/task_runs/filter", {  # type: ignore[assignment]
            "flow_runs": {"id": {"any_": [flow_run_id]}}, "limit": 200,
        })
        if done(tasks):
            break
        time.sleep(0.5)
    return tasks


def _final(tasks: list[dict[str, Any]]) -> bool:
    return all(t["state"] and t["state"]["type"] in ("COMPLETED", "FAILED", "CRASHED",
                                                     "CANCELLED") for t in tasks)


def test_dask_run_matches_local_run(server: Server, cluster: str, tmp_path: Path) -> None:  # noqa: F811
    local, remote = tmp_path / "local", tmp_path / "dask"
    plain = _labelgate(server, "run", str(SPEC), "--store", str(local))
    assert plain.returncode == 0, plain.stdout + plain.stderr
    on_dask = _labelgate(server, "run", str(SPEC), "--store", f"file://{remote}", "--dask",
                         cluster)
    assert on_dask.returncode == 0, on_dask.stdout + on_dask.stderr + server.log("dask")
    assert "Dask cluster" in on_dask.stdout and "3 worker(s)" in on_dask.stdout

    mine, theirs = _outputs(local), _outputs(remote)
    for key in mine:
        assert theirs[key] == mine[key], key
    assert len(mine["label_issues"]) == 3000 - len(  # type: ignore[arg-type]
        {(b, r) for b, r, *_ in mine["quarantine"]})  # type: ignore[attr-defined]

    # the parts ran as task runs of the Dask flow run: 2 batches, 5 folds twice (the second
    # pass: "refold"), 1 MinHash shard
    runs = server.post("/flow_runs/filter", {"sort": "START_TIME_DESC", "limit": 5})
    dask_run = next(r for r in runs if r["parameters"]["store"] == f"file://{remote}")  # type: ignore[union-attr, index]
    tasks = _task_runs(server, dask_run["id"], lambda ts: _final(ts) and sum(  # type: ignore[index]
        t["name"].startswith(("contract-", "fold-", "refold-", "minhash-")) for t in ts) >= 13)
    names = sorted(t["name"] for t in tasks)  # type: ignore[union-attr, index]
    assert [n for n in names if n.startswith(("contract-", "fold-", "refold-", "minhash-"))] == [
        "contract-0", "contract-1", "fold-0", "fold-1", "fold-2", "fold-3", "fold-4",
        "minhash-0", "refold-0", "refold-1", "refold-2", "refold-3", "refold-4",
    ]
    assert all(t["state"]["type"] == "COMPLETED" for t in tasks)  # type: ignore[union-attr, index]
    # each part's log names the worker that ran it: all 13 on the cluster's workers
    workers = _part_workers(server, str(dask_run["id"]), 13)  # type: ignore[index]
    assert len(workers) == 13 and all(w.startswith("tcp://127.0.0.1:") for w in workers)

    # a deployment passes the cluster as the flow parameter: the flow re-runs itself as a
    # sub-flow on the Dask runner, with the same results
    third = tmp_path / "param"
    code = ("import sys; from flows.pipeline import quality_pipeline; "
            "quality_pipeline(sys.argv[1], sys.argv[2], dask_address=sys.argv[3])")
    by_param = subprocess.run(
        [sys.executable, "-c", code, str(SPEC), str(third), cluster], cwd=REPO,
        env=server.env, capture_output=True, text=True, timeout=600,
    )
    assert by_param.returncode == 0, by_param.stderr[-3000:]
    assert _outputs(third)["label_issues"] == mine["label_issues"]
    runs = server.post("/flow_runs/filter", {"sort": "START_TIME_DESC", "limit": 2})
    child = next(r for r in runs if r["parent_task_run_id"] is not None)  # type: ignore[union-attr, index]
    tasks = _task_runs(server, child["id"], lambda ts: sum(  # type: ignore[index]
        t["name"].startswith(("fold-", "refold-")) for t in ts) >= 10)
    assert sum(t["name"].startswith(("fold-", "refold-")) for t in tasks) == 10


def test_dask_needs_a_reachable_scheduler_and_a_server(server: Server, tmp_path: Path) -> None:  # noqa: F811
    gone = _labelgate(server, "run", str(SPEC), "--store", str(tmp_path), "--dask",
                      "tcp://127.0.0.1:9")
    assert gone.returncode == 2
    assert "--dask tcp://127.0.0.1:9: cannot reach the Dask scheduler" in gone.stderr
    env = {k: v for k, v in server.env.items() if k != "PREFECT_API_URL"}
    result = subprocess.run(
        [str(BIN / "labelgate"), "run", str(SPEC), "--store", str(tmp_path), "--dask",
         "tcp://127.0.0.1:9"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2 and "PREFECT_API_URL" in result.stderr
