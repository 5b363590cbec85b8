"""Faults (issue 27): SIGKILL at every stage and inside publish, a full disk in the lake and
in publish, a warehouse held open by a notebook, two runs at once, a remote store that
fails mid-push.

Each case starts from a base project that published v1 from 90 rows, adds a file of 30 new
rows (ids `n0000`..), and makes the run fail; the published files of v1 must be unchanged
(`current` may move only to a version whose files match its manifest), and the next run
must pass with all 120 rows accounted for (report.json's arithmetic, `balanced`).
"""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import polars as pl

from bench.battery_cases.harness import (
    DATASET,
    FULL_STAGES,
    Outcome,
    Project,
    Run,
    project_copy,
    rows,
    spec_dict,
    warehouse_rows,
)

NEW = 30
TOTAL = 90 + NEW
Case = Callable[..., Outcome]


def _add_rows(project: Project) -> None:
    pl.DataFrame(rows(NEW, prefix="n")).write_csv(project.root / "items" / "part2.csv")


def _tail(run: Run, n: int = 400) -> str:
    return run.output[-n:].replace("\n", " | ")


def versions_intact(project: Project, before: dict[str, str], out: Outcome) -> None:
    """v1's files as they were; every version folder matches its manifest; `current` is
    where it was or at such a complete version."""
    after = project.snapshot()
    changed = [k for k, v in before.items() if k != "current" and after.get(k) != v]
    out.expect(not changed, f"published files changed: {changed[:3]}")
    for folder in sorted(project.published.glob("v*")):
        manifest = json.loads((folder / "manifest.json").read_text())
        for name, info in manifest["files"].items():
            digest = hashlib.sha256((folder / name).read_bytes()).hexdigest()
            out.expect(digest == info["sha256"], f"{folder.name}/{name} differs from its "
                                                 f"manifest")
    out.expect(not list(project.published.glob(".tmp-*")) or after.get("current") ==
               before.get("current"), "a temporary version folder is current")


def next_run_accounts(out: Outcome, project: Project, *, abandoned: int = 0) -> None:
    """The next run passes; its report accounts for all rows; `abandoned` killed runs."""
    run = project.run()
    out.rows_in = TOTAL
    if not out.expect(run.rc == 0, f"next clean run: exit {run.rc}: {_tail(run)}"):
        return
    report = project.latest_report()
    assert report is not None
    r = report["rows"]
    out.expect(r["balanced"], f"rows do not add up: {r}")
    out.expect(r["input"] == TOTAL, f"rows in {r['input']}, expected {TOTAL}")
    out.accounted = r["valid"] + r["quarantined"] + r["excluded"]
    found = report.get("previous_runs_abandoned", {}).get("count", 0)
    out.expect(found == abandoned, f"{found} run(s) reported abandoned, expected {abandoned}")


def _kill_chain(points: list[tuple[str, str]], *, bases: dict[str, Path], work: Path,
                api_url: str) -> list[Outcome]:
    """SIGKILL at each (env var, fault point) in turn, in one project: after each kill the
    published versions are intact (v1's files unchanged, every version matching its
    manifest) and the lock is free (the next killed run takes it); then one clean run
    passes, every killed run is recorded `abandoned` in the warehouse and the last one is
    reported so."""
    name = points[0][1].split(":")[0]
    outs = [Outcome(f"SIGKILL at {p}", "kill") for _, p in points]
    killed_ids: list[str] = []
    with project_copy(bases["full"], work, f"kills-from-{name}", api_url) as project:
        _add_rows(project)
        before = project.snapshot()
        for (env_name, point), out in zip(points, outs, strict=True):
            known = _run_ids(project)
            start = time.monotonic()
            run = project.run(env={env_name: point})
            out.seconds = time.monotonic() - start
            out.expect(run.rc == -signal.SIGKILL, f"exit {run.rc}, expected SIGKILL: "
                                                  f"{_tail(run)}")
            killed_ids += [r for r in _run_ids(project) if r not in known]
            versions_intact(project, before, out)
            moved = project.snapshot().get("current") != before.get("current")
            out.outcome = "killed; v1 intact, " + (
                "current moved to a complete v2" if moved else "current unchanged")
        final = Outcome("", "")
        finished_in_report = points[-1][1] == "report:after"  # the run record was closed
        next_run_accounts(final, project, abandoned=0 if finished_in_report else 1)
        status = dict(warehouse_rows(project.store, "SELECT run_id, status FROM runs", []))
        left = [r for r in killed_ids if status.get(r) != "abandoned"
                and not (finished_in_report and r == killed_ids[-1])]
        final.expect(not left, f"killed runs not marked abandoned: {left}")
        for out in outs:
            out.problems += final.problems
            out.rows_in, out.accounted = final.rows_in, final.accounted
            out.outcome += "; next run passed, killed runs marked abandoned"
    return outs


def _run_ids(project: Project) -> list[str]:
    return [r[0] for r in warehouse_rows(project.store, "SELECT run_id FROM runs", [])]


def kill_chains() -> list[tuple[str, Callable[..., list[Outcome]]]]:
    """Two sequences of kill points (every stage the full spec runs, `before` it; after
    the report; and inside publish: at the rename of the version folder, between it and
    moving `current`, at the move), each one project, so the two run side by side."""
    from labelgate import dag
    from labelgate.spec import parse_spec

    spec = parse_spec(spec_dict(**FULL_STAGES))
    stages = [s.name for s in dag.STAGES if s.when(spec)]
    # inside publish before `report:before` (a run killed there has published: the
    # content is then current, and a later run has nothing new to publish)
    points = [("LABELGATE_FAULT", f"{name}:before") for name in stages if name != "report"]
    points += [("LABELGATE_BATTERY_FAULT", "kill:publish-rename"),
               ("LABELGATE_FAULT", "publish:switch"),
               ("LABELGATE_BATTERY_FAULT", "kill:current-replace"),
               ("LABELGATE_FAULT", "report:before"),
               ("LABELGATE_FAULT", "report:after")]
    half = len(points) // 2
    return [(f"kills from {chain[0][1]}", partial(_kill_chain, chain))
            for chain in (points[:half], points[half:])]


def disk_full(where: str, *, bases: dict[str, Path], work: Path, api_url: str) -> Outcome:
    out = Outcome(f"disk full during {where} write", "disk full")
    with project_copy(bases["light"], work, f"enospc-{where}", api_url) as project:
        _add_rows(project)
        before = project.snapshot()
        run = project.run(env={"LABELGATE_BATTERY_FAULT": f"enospc:{where}"})
        out.expect(run.rc in (2, 3), f"exit {run.rc}, expected 2 or 3: {_tail(run)}")
        out.expect("No space left on device" in run.output, "the message does not say "
                                                            "'No space left on device'")
        out.expect(f"/{where}/" in run.output, f"the message names no file under {where}/")
        out.expect(project.snapshot() == before, "the published version changed")
        halves = [p for p in (project.store / "lake").rglob("batch=*")
                  if not (p / "_batch.json").is_file()]
        out.expect(not halves, f"half-written lake batches: {halves[:2]}")
        next_run_accounts(out, project)
        out.outcome = f"exit {run.rc} naming the file; v1 unchanged; next run passed"
    return out


def warehouse_held(*, bases: dict[str, Path], work: Path, api_url: str) -> Outcome:
    """A notebook holds warehouse.duckdb open read-only while the run starts."""
    out = Outcome("warehouse.duckdb held open read-only by a notebook", "concurrency")
    with project_copy(bases["light"], work, "warehouse-held", api_url) as project:
        _add_rows(project)
        before = project.snapshot()
        code = ("import duckdb, sys; c = duckdb.connect(sys.argv[1], read_only=True); "
                "print('held', flush=True); sys.stdin.read()")
        holder = subprocess.Popen(
            [sys.executable, "-c", code, str(project.store / "warehouse.duckdb")],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        try:
            assert holder.stdout is not None
            holder.stdout.readline()
            run = project.run(env={"LABELGATE_WAREHOUSE_LOCK_TIMEOUT": "3"})
        finally:
            holder.kill()
            holder.wait()
        out.expect(run.rc == 2, f"exit {run.rc}, expected 2: {_tail(run)}")
        out.expect(f"PID {holder.pid}" in run.output, "the message does not name the holder")
        out.expect("waiting up to" in run.output, "no message while waiting")
        out.expect(project.snapshot() == before, "the published version changed")
        next_run_accounts(out, project)
        out.outcome = ("waited 3 s saying so, then exit 2 naming the holder's PID and "
                       "command; next run passed")
    return out


def _wait_for(cond: Callable[[], bool], seconds: float = 120) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    return False


def same_dataset_twice(*, bases: dict[str, Path], work: Path, api_url: str) -> Outcome:
    """Run B starts while run A holds the dataset's lock: B is refused naming A."""
    out = Outcome("two runs of one dataset at once", "concurrency")
    with project_copy(bases["light"], work, "same-dataset", api_url) as project:
        _add_rows(project)
        release = project.root / "release"
        first, log = project.popen(env={"LABELGATE_BATTERY_FAULT": f"hold-ingest:{release}"})
        lock = project.store / "locks" / f"{DATASET}.lock"
        try:
            held = _wait_for(lambda: lock.is_file() and str(first.pid) in lock.read_text())
            out.expect(held, "run A never held the lock")
            second = project.run()
        finally:
            release.touch()
            first.wait(timeout=300)
        out.expect(second.rc == 2, f"run B: exit {second.rc}, expected 2: {_tail(second)}")
        out.expect(f"pid {first.pid}" in second.output, "run B's message does not name A")
        out.expect(first.returncode == 0, f"run A: exit {first.returncode}: "
                                          f"{log.read_text()[-300:]}")
        next_run_accounts(out, project)
        out.outcome = "B refused at once (exit 2) naming A's pid; A passed; next run passed"
    return out


def two_datasets(*, bases: dict[str, Path], work: Path, api_url: str) -> Outcome:
    out = Outcome("two datasets in one store at once", "concurrency")
    with project_copy(bases["light"], work, "two-datasets", api_url) as project:
        _add_rows(project)
        other = project.root / "other.yaml"
        other.write_text(project.spec.read_text().replace(f"name: {DATASET}",
                                                          "name: other-tweets"))
        a, _ = project.popen()
        b = project.run(spec=other)
        a.wait(timeout=300)
        out.expect(a.returncode == 0 and b.rc == 0,
                   f"exits {a.returncode} and {b.rc}: {_tail(b)}")
        out.rows_in = 2 * TOTAL
        got = warehouse_rows(project.store, "SELECT dataset, rows_input, rows_valid + "
                             "rows_quarantined + rows_excluded, status FROM runs WHERE "
                             "started_at > (SELECT min(started_at) FROM runs)", [])
        out.expect(sorted(g[3] for g in got) == ["passed", "passed"], f"runs: {got}")
        out.accounted = sum(int(g[2]) for g in got if g[1] == g[2])
        out.outcome = "both passed; the warehouse has both runs, rows balanced"
    return out


def remote_push_fails(*, bases: dict[str, Path], work: Path, api_url: str) -> Outcome:
    out = Outcome("remote store (file://) failing mid-push", "remote")
    with project_copy(bases["light"], work, "remote", api_url) as project:
        remote = project.root / "remote"
        url = f"file://{remote}"
        first = project.run(args=("--store", url))
        out.expect(first.rc == 0, f"first push: exit {first.rc}: {_tail(first)}")
        link = remote / "published" / DATASET / "current.link"
        before = link.read_text() if link.is_file() else None
        _add_rows(project)
        run = project.run(args=("--store", url),
                          env={"LABELGATE_BATTERY_FAULT": "remote:fail-after=3"})
        out.expect(run.rc in (2, 3), f"exit {run.rc}, expected 2 or 3: {_tail(run)}")
        out.expect(str(remote) in run.output, "the message does not name the remote path")
        out.expect(link.is_file() and link.read_text() == before,
                   "the remote's current.link changed")
        again = project.run(args=("--store", url))
        out.rows_in = TOTAL
        if out.expect(again.rc == 0, f"next run: exit {again.rc}: {_tail(again)}"):
            out.accounted = _remote_rows(remote)
            out.expect(link.read_text() != before, "the next run did not move current.link")
        out.outcome = (f"exit {run.rc} naming the remote file; remote current unchanged; "
                       "next run pushed")
    return out


def _remote_rows(remote: Path) -> int:
    """Rows of the remote's newest run record (its warehouse copy), if balanced."""
    import duckdb

    con = duckdb.connect(str(remote / "warehouse.duckdb"), read_only=True)
    try:
        found = con.execute("SELECT rows_input, rows_valid + rows_quarantined + rows_excluded "
                            "FROM runs ORDER BY started_at DESC LIMIT 1").fetchall()
    finally:
        con.close()
    if not found or found[0][0] != found[0][1]:
        return 0
    return int(found[0][1])


def cases() -> list[tuple[str, Case]]:
    return [
        ("disk full during lake write", partial(disk_full, "lake")),
        ("disk full during published write", partial(disk_full, "published")),
        ("warehouse held open", warehouse_held),
        ("two runs of one dataset", same_dataset_twice),
        ("two datasets in one store", two_datasets),
        ("remote failing mid-push", remote_push_fails),
    ]


CASES: list[tuple[str, Any]] = cases()
CHAINS = kill_chains()
