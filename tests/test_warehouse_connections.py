"""A run keeps one warehouse connection (`warehouse.Session`): opened once for all its
writes, shared with `warehouse.connect` in the same process, closed when idle (so another
process gets the file) and when the run's store is closed or dropped."""

from __future__ import annotations

import gc
import pickle
import subprocess
import sys
import threading
from pathlib import Path

import duckdb
import pytest

from labelgate.gate import GateVerdict
from labelgate.store import warehouse
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


def _wait_closed(session: warehouse.Session) -> None:
    done = threading.Event()
    for _ in range(500):  # the idle timer closes it; poll (no time asserted)
        if not session.is_open or done.wait(0.02):
            break
    assert not session.is_open


def test_a_run_opens_the_warehouse_once(tmp_path: Path) -> None:
    rs = _store(tmp_path)
    assert rs.start(flow_run_id=None) == []
    rs.record_verdict({"rows": 3.0}, GateVerdict(passed=True, checks=[]))
    assert rs.metric_history().height == 2  # rows and gate_passed, read back
    rs.finish(status="passed", message="ok", rows_input=3)
    session = rs._session
    assert session is not None and session.opens == 1 and session.is_open
    # the same process reads through the kept connection (DuckDB refuses a read-only one)
    with warehouse.connect(rs.run.warehouse, read_only=True) as con:
        assert con.execute("SELECT status, rows_input FROM runs").fetchall() == [("passed", 3)]
    assert session.opens == 1
    rs.close()
    assert not session.is_open
    assert warehouse._session_key(rs.run.warehouse) not in warehouse._SESSIONS
    assert _statuses(rs.run.warehouse) == [("ds", "passed")]
    rs.close()  # idempotent


def test_closed_store_opens_again(tmp_path: Path) -> None:
    rs = _store(tmp_path)
    rs.start(flow_run_id=None)
    rs.close()
    rs.finish(status="error", message="boom")  # e.g. record_error after the close
    rs.close()
    assert _statuses(rs.run.warehouse) == [("ds", "error")]


def test_idle_session_lets_another_process_write(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(warehouse, "IDLE_SECONDS", 0.05)
    rs = _store(tmp_path)
    rs.start(flow_run_id=None)
    session = rs._session
    assert session is not None
    _wait_closed(session)
    code = ("import duckdb, sys; c = duckdb.connect(sys.argv[1]); "
            "c.execute(\"UPDATE runs SET status = 'seen'\"); c.close()")
    done = subprocess.run([sys.executable, "-c", code, str(rs.run.warehouse)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    rs.finish(status="passed", message="ok")  # opens the file again
    assert session.opens == 2
    rs.close()
    assert _statuses(rs.run.warehouse) == [("ds", "passed")]


def test_stores_share_one_session_per_file(tmp_path: Path) -> None:
    a, b = _store(tmp_path, "a"), _store(tmp_path, "b")
    other = _store(tmp_path / "other", "a")
    for rs in (a, b, other):
        rs.start(flow_run_id=None)
    assert a._session is b._session is not None
    assert other._session is not a._session
    a.close()  # b still uses it
    assert b._session.is_open
    b.finish(status="passed", message="ok")
    b.close()
    assert _statuses(tmp_path / warehouse.WAREHOUSE_FILE) == [("a", "running"), ("b", "passed")]
    other_session = other._session
    assert other_session is not None
    del other, rs  # dropped without close: the connection goes with it
    gc.collect()
    assert not other_session.is_open
    assert warehouse._SESSIONS == {}


def test_a_pickled_store_has_no_connection(tmp_path: Path) -> None:
    rs = _store(tmp_path)
    rs.start(flow_run_id=None)
    copy = pickle.loads(pickle.dumps(rs))
    assert copy._session is None and copy.run == rs.run
    assert rs._session is not None and rs._session.is_open
    rs.close()
    copy.finish(status="passed", message="ok")
    copy.close()
    assert _statuses(rs.run.warehouse) == [("ds", "passed")]
