"""The stage table waits for the last task run's final state (Prefect 3 writes task-run
states from events, a moment after the flow returns)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any
from uuid import uuid4

import pytest

from flows import stage_table


class _State:
    def __init__(self, name: str, final: bool) -> None:
        self.name, self._final = name, final

    def is_final(self) -> bool:
        return self._final


class _Client:
    """Answers with the report still running for the first ``lag`` reads."""

    def __init__(self, lag: int) -> None:
        self.lag, self.reads = lag, 0

    def __enter__(self) -> _Client:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def read_task_runs(self, **_: Any) -> list[Any]:
        self.reads += 1
        late = self.reads <= self.lag
        report = _State("Running", False) if late else _State("Completed", True)
        return [SimpleNamespace(name="ingest-0", state=_State("Completed", True)),
                SimpleNamespace(name="report-0", state=report)]


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> _Client:
    import prefect.client.orchestration as orchestration

    made = _Client(lag=3)
    monkeypatch.setattr(orchestration, "get_client", lambda **_: made)
    return made


def test_the_table_waits_until_every_task_run_is_final(client: _Client) -> None:
    runs = stage_table.read_task_runs(uuid4(), wait_s=5.0, pause_s=0.0)
    assert client.reads == 4
    assert [tr.state.name for tr in runs] == ["Completed", "Completed"]


def test_the_wait_is_bounded_and_shows_what_the_server_has(client: _Client) -> None:
    client.lag = 10**9
    runs = stage_table.read_task_runs(uuid4(), wait_s=0.0, pause_s=0.0)
    assert client.reads == 1
    assert runs[1].state.name == "Running"
