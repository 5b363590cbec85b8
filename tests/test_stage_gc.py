"""Every stage runs with the objects made before it frozen out of the garbage collector's
passes (issue 26: in a night's process a full collection set off inside the contract or
the report went through every object the flow had made, ~450,000), and unfrozen when the
last running stage ends, also on an error."""

from __future__ import annotations

import gc
import threading
from typing import Any

import pytest
from conftest import SpecFactory

import tasks.report
from tasks.common import _earlier_objects_frozen


@pytest.mark.flow
@pytest.mark.usefixtures("prefect_server")
def test_the_report_is_written_with_the_flows_objects_frozen_and_unfrozen_after(
        make_spec: SpecFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.pipeline import quality_pipeline

    frozen: list[int] = []
    real = tasks.report.write_report

    def write_report(*args: Any, **kwargs: Any) -> Any:
        frozen.append(gc.get_freeze_count())
        return real(*args, **kwargs)

    monkeypatch.setattr(tasks.report, "write_report", write_report)
    assert gc.get_freeze_count() == 0
    report = quality_pipeline(str(make_spec()))
    assert report["gate"]["passed"] is True
    assert len(frozen) == 1 and frozen[0] > 1000  # the flow's objects, frozen
    assert gc.get_freeze_count() == 0  # and back in the collector's passes


def test_the_objects_are_unfrozen_when_a_stage_fails() -> None:
    with pytest.raises(OSError, match="disk"), _earlier_objects_frozen():
        assert gc.get_freeze_count() > 0
        raise OSError("disk full")
    assert gc.get_freeze_count() == 0


def test_stages_running_at_once_unfreeze_when_the_last_ends() -> None:
    first_in, second_done = threading.Event(), threading.Event()
    seen: list[int] = []

    def other() -> None:
        with _earlier_objects_frozen():
            first_in.wait(5)
        second_done.set()

    with _earlier_objects_frozen():
        t = threading.Thread(target=other)
        t.start()
        first_in.set()
        assert second_done.wait(5)
        seen.append(gc.get_freeze_count())  # the other stage ended: still frozen here
    t.join()
    assert seen[0] > 0
    assert gc.get_freeze_count() == 0


def test_objects_made_inside_a_stage_are_still_collected() -> None:
    class Node:
        def __init__(self) -> None:
            self.me = self

    with _earlier_objects_frozen():
        gc.collect()
        made = Node()
        del made
        assert gc.collect() >= 1  # the stage's own cycle: not frozen


def test_a_freeze_made_before_the_stages_stays() -> None:
    # `labelgate run` freezes its loaded libraries for the whole command (flows.cli)
    kept = [[i] for i in range(1000)]
    gc.freeze()
    try:
        before = gc.get_freeze_count()
        with _earlier_objects_frozen():
            pass
        assert gc.get_freeze_count() >= before >= len(kept)  # not thawed by the stage
    finally:
        gc.unfreeze()
