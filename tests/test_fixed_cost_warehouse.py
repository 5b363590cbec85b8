"""A run keeps one warehouse connection (issue 22): opened once for all its writes, shared
with `warehouse.connect` in the same process, closed when idle (so another process gets
the file), on `RunStore.close` and after an error; and never reachable from what Prefect
pickles for a task submission (the Dask task runner: the task's parameters and context).
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import cloudpickle
import duckdb
import pydantic
import pytest

from labelgate.gate import GateVerdict
from labelgate.store import kept_connection, warehouse
from labelgate.store.run_store import RunStore
from labelgate.store.runs import new_run


def _store(root: Path, dataset: str = "ds") -> RunStore:
    return RunStore(new_run(dataset=dataset, spec_path="spec.yaml", spec_hash="h", store=root))


def _statuses(path: Path) -> list[tuple[str, str]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute("SELECT dataset, status FROM runs ORDER BY dataset").fetchall()
    finally:
        con.close()


def _kept(path: Path) -> Any:
    return kept_connection._KEPT.get(kept_connection._key(path))


def _wait_closed(path: Path) -> None:
    kept = _kept(path)
    done = threading.Event()
    for _ in range(500):  # the idle timer closes it; poll (no time asserted)
        if not kept.is_open or done.wait(0.02):
            break
    assert not kept.is_open


def test_a_run_opens_the_warehouse_once(tmp_path: Path) -> None:
    rs = _store(tmp_path)
    assert rs.start(flow_run_id=None) == []
    rs.record_verdict({"rows": 3.0}, GateVerdict(passed=True, checks=[]))
    assert rs.metric_history().height == 2  # rows and gate_passed, read back
    rs.finish(status="passed", message="ok", rows_input=3)
    assert warehouse.kept_opens(rs.run.warehouse) == 1 and _kept(rs.run.warehouse).is_open
    # the same process reads through the kept connection (DuckDB refuses a read-only one)
    with warehouse.connect(rs.run.warehouse, read_only=True) as con:
        assert con.execute("SELECT status, rows_input FROM runs").fetchall() == [("passed", 3)]
    assert warehouse.kept_opens(rs.run.warehouse) == 1
    rs.close()
    assert _kept(rs.run.warehouse) is None and warehouse.kept_opens(rs.run.warehouse) == 0
    assert _statuses(rs.run.warehouse) == [("ds", "passed")]
    rs.close()  # idempotent


def test_closed_store_opens_again(tmp_path: Path) -> None:
    rs = _store(tmp_path)
    rs.start(flow_run_id=None)
    rs.close()
    rs.finish(status="error", message="boom")  # e.g. record_error after the close
    rs.close()
    assert _statuses(rs.run.warehouse) == [("ds", "error")]


def test_idle_connection_lets_another_process_write(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kept_connection, "IDLE_SECONDS", 0.05)
    rs = _store(tmp_path)
    rs.start(flow_run_id=None)
    _wait_closed(rs.run.warehouse)
    code = ("import duckdb, sys; c = duckdb.connect(sys.argv[1]); "
            "c.execute(\"UPDATE runs SET status = 'seen'\"); c.close()")
    done = subprocess.run([sys.executable, "-c", code, str(rs.run.warehouse)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert _statuses(rs.run.warehouse) == [("ds", "seen")]
    rs.finish(status="passed", message="ok")  # opens the file again
    assert warehouse.kept_opens(rs.run.warehouse) == 2
    rs.close()
    assert _statuses(rs.run.warehouse) == [("ds", "passed")]


def test_an_error_closes_the_kept_connection(tmp_path: Path) -> None:
    rs = _store(tmp_path)
    rs.start(flow_run_id=None)
    with (pytest.raises(duckdb.CatalogException),
          warehouse.connect(rs.run.warehouse, keep=True) as con):
        con.execute("BEGIN TRANSACTION")
        con.execute("SELECT * FROM no_such_table")
    assert not _kept(rs.run.warehouse).is_open  # the open transaction went with it
    rs.finish(status="passed", message="ok")
    rs.close()
    assert _statuses(rs.run.warehouse) == [("ds", "passed")]


def test_stores_of_one_file_share_the_connection(tmp_path: Path) -> None:
    a, b = _store(tmp_path, "a"), _store(tmp_path, "b")
    other = _store(tmp_path / "other", "a")
    for rs in (a, b, other):
        rs.start(flow_run_id=None)
    assert warehouse.kept_opens(a.run.warehouse) == 1
    assert _kept(other.run.warehouse) is not _kept(a.run.warehouse)
    b.finish(status="passed", message="ok")
    a.close()  # closes the file's connection: b's next write opens it again
    other.close()
    assert _statuses(tmp_path / warehouse.WAREHOUSE_FILE) == [("a", "running"), ("b", "passed")]
    assert kept_connection._KEPT == {}


def test_what_a_task_submission_pickles_reaches_no_connection(tmp_path: Path) -> None:
    """Prefect's Dask task runner sends the task's parameters and context, dumped by
    pydantic (a dataclass by its fields, not its `__getstate__`) and then cloudpickled: a
    store whose connection is open must go through, and carry no connection."""
    rs = _store(tmp_path)
    rs.start(flow_run_id=None)
    assert _kept(rs.run.warehouse).is_open
    dumped = pydantic.TypeAdapter(dict[str, Any]).dump_python({"store": rs, "n": 1})
    assert pickle.loads(cloudpickle.dumps(dumped))["store"]["run"]["run_id"] == rs.run.run_id
    copy = pickle.loads(cloudpickle.dumps(rs))
    assert copy.run == rs.run and vars(copy).keys() == {"run", "_memo"}
    # even a kept connection pickled by mistake carries only its path
    kept = pickle.loads(pickle.dumps(_kept(rs.run.warehouse)))
    assert kept is _kept(rs.run.warehouse)
    rs.close()
    copy.finish(status="passed", message="ok")  # the copy opens its own when it writes
    copy.close()
    assert _statuses(rs.run.warehouse) == [("ds", "passed")]


def test_another_process_keeps_its_own(tmp_path: Path) -> None:
    """The registry is per process: a fork (as a process-based worker) does not use the
    parent's connection but opens its own, once the parent lets go of the file."""
    rs = _store(tmp_path)
    rs.start(flow_run_id=None)
    assert kept_connection._key(rs.run.warehouse)[1] == os.getpid()
    rs.close()
    code = ("import sys; from pathlib import Path; from labelgate.store import warehouse\n"
            "p = Path(sys.argv[1])\n"
            "with warehouse.connect(p, keep=True) as c:\n"
            "    c.execute(\"UPDATE runs SET status = 'w'\")\n"
            "print(warehouse.kept_opens(p))\n")  # closed at the process's exit
    done = subprocess.run([sys.executable, "-c", code, str(rs.run.warehouse)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0 and done.stdout.strip() == "1", done.stderr
    assert _statuses(rs.run.warehouse) == [("ds", "w")]
