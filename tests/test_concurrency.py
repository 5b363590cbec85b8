"""Concurrent runs: one run per dataset at a time (labelgate/store/locking.py); runs of different
datasets sharing a store take turns on the DuckDB file (warehouse.connect retries)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
import yaml
from typer.testing import CliRunner

from flows.cli import app
from labelgate.errors import RunLockedError
from labelgate.store import locking, warehouse
from tests.conftest import SpecFactory, item_rows, spec_dict, write_csv

ROOT = Path(__file__).parents[1]


class Holder:
    """A child process that holds something (a lock, a DuckDB write connection) until
    told to let go (its stdin closes)."""

    def __init__(self, script: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(script)], cwd=ROOT,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().strip() == "held"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def let_go(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            self.proc.wait(timeout=60)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=60)


@pytest.fixture
def lock_holder(tmp_path: Path) -> Iterator[Holder]:
    """Another process holding tiny-tweets' run lock in tmp_path/store."""
    holder = Holder(f"""
        import sys
        from pathlib import Path
        from labelgate.store import locking
        lock = locking.acquire(Path({str(tmp_path / "store")!r}), "tiny-tweets",
                               run_id="20260101T000000Z-abcdef")
        print("held", flush=True)
        sys.stdin.read()
        lock.release()
    """)
    yield holder
    holder.kill()


def test_second_lock_is_refused_naming_the_holder(tmp_path: Path) -> None:
    """Two runs of one dataset: the second is refused at once, the message names the first."""
    first = locking.acquire(tmp_path, "ds", run_id="run-1")
    with pytest.raises(RunLockedError) as err:
        locking.acquire(tmp_path, "ds", run_id="run-2")
    message = str(err.value)
    assert message.startswith("another run of ds is in progress (pid ")
    assert f"pid {os.getpid()} on {socket.gethostname()}, run run-1, started " in message
    other = locking.acquire(tmp_path, "other-ds", run_id="run-3")  # another dataset: free
    other.release()
    first.release()
    first.release()  # idempotent
    with locking.acquire(tmp_path, "ds", run_id="run-2") as again:
        assert again.held
    assert not again.held


def test_lock_of_a_killed_process_is_free(tmp_path: Path, lock_holder: Holder) -> None:
    """The OS drops the flock of a dead process: no stale lock after a SIGKILL."""
    with pytest.raises(RunLockedError, match=f"pid {lock_holder.pid} "):
        locking.acquire(tmp_path / "store", "tiny-tweets", run_id="mine")
    lock_holder.kill()
    with locking.acquire(tmp_path / "store", "tiny-tweets", run_id="mine") as lock:
        assert locking.read_holder(lock.path) is not None
        assert locking.read_holder(lock.path)["run_id"] == "mine"  # type: ignore[index]


def test_lock_wait_gets_it_when_the_holder_finishes(tmp_path: Path) -> None:
    """`wait_seconds`: retry until the holder releases (released here from the poll)."""
    first = locking.acquire(tmp_path, "ds", run_id="run-1")
    calls: list[float] = []

    def release_then_sleep(seconds: float) -> None:
        calls.append(seconds)
        first.release()

    mp = pytest.MonkeyPatch()
    mp.setattr(locking, "_sleep", release_then_sleep)
    try:
        with locking.acquire(tmp_path, "ds", run_id="run-2", wait_seconds=600) as lock:
            assert lock.held
    finally:
        mp.undo()
    assert len(calls) == 1


@pytest.mark.flow
@pytest.mark.usefixtures("prefect_server")
def test_run_refused_while_another_run_of_the_dataset_holds_the_lock(
    make_spec: SpecFactory, lock_holder: Holder
) -> None:
    """`labelgate run` exits 2 naming the holder; no run record, no lake write."""
    spec = make_spec()
    result = CliRunner().invoke(app, ["run", str(spec)])
    assert result.exit_code == 2, result.output
    assert "another run of tiny-tweets is in progress" in result.output
    assert f"pid {lock_holder.pid}" in result.output
    assert "run 20260101T000000Z-abcdef" in result.output
    assert not (spec.parent / "store" / "lake").exists()
    assert not (spec.parent / "store" / warehouse.WAREHOUSE_FILE).exists()

    lock_holder.let_go()  # the first run finished: the next one goes through
    again = CliRunner().invoke(app, ["run", str(spec)])
    assert again.exit_code == 0, again.output


def test_warehouse_connect_waits_for_another_process(tmp_path: Path) -> None:
    """DuckDB's 'Could not set lock on file': retried until the other process closes."""
    path = tmp_path / "warehouse.duckdb"
    with warehouse.connect(path):
        pass
    holder = Holder(f"""
        import sys, duckdb
        con = duckdb.connect({str(path)!r})
        print("held", flush=True)
        sys.stdin.read()
        con.close()
    """)
    try:
        with (pytest.raises(duckdb.IOException, match="Could not set lock on file"),
              warehouse.connect(path, lock_timeout=0)):
            pass
        waits: list[float] = []

        def let_go_then_sleep(seconds: float) -> None:
            waits.append(seconds)
            holder.let_go()

        mp = pytest.MonkeyPatch()
        mp.setattr(warehouse, "_sleep", let_go_then_sleep)
        try:
            with warehouse.connect(path, lock_timeout=600) as con:
                assert con.execute("SELECT count(*) FROM runs").fetchall() == [(0,)]
        finally:
            mp.undo()
        assert len(waits) >= 1
    finally:
        holder.kill()


@pytest.mark.slow
@pytest.mark.flow
def test_two_datasets_in_one_store_run_at_once(tmp_path: Path, prefect_server: None) -> None:
    """Two `labelgate run` processes, different datasets, one store: both complete."""
    from prefect.settings import get_current_settings

    api_url = get_current_settings().api.url
    assert api_url
    store = tmp_path / "store"
    specs = []
    for name in ("tweets-a", "tweets-b"):
        folder = tmp_path / name
        write_csv(folder / "items" / "part1.csv", item_rows(60))
        spec = folder / "spec.yaml"
        spec.write_text(yaml.safe_dump(spec_dict(
            name=name, store=str(store),
            splits={"fractions": {"train": 0.8, "validation": 0.1, "test": 0.1}},
            publish={"formats": ["parquet"]},
        ), sort_keys=False))
        specs.append(spec)
    env = {**os.environ, "PREFECT_API_URL": api_url}
    procs = []
    for spec in specs:
        log = (spec.parent / "run.log").open("wb")
        procs.append((subprocess.Popen(
            [sys.executable, "-c", "from flows.cli import app; app()", "run", str(spec)],
            env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
        ), log))
    codes = []
    for proc, log in procs:
        try:
            codes.append(proc.wait(timeout=300))
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            log.close()
    logs = [(s.parent / "run.log").read_text(errors="replace")[-3000:] for s in specs]
    assert codes == [0, 0], logs
    with warehouse.connect(store / warehouse.WAREHOUSE_FILE, read_only=True) as con:
        runs = con.execute("SELECT dataset, status FROM runs ORDER BY dataset").fetchall()
    assert runs == [("tweets-a", "passed"), ("tweets-b", "passed")]
    for name in ("tweets-a", "tweets-b"):
        assert (store / "published" / name / "current" / "train.parquet").is_file()
