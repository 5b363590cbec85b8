"""Progress of long work: the library's ticks, the stage sink (log + Prefect progress
artifact), the terminal's live display, and a flow run that leaves progress artifacts."""

from __future__ import annotations

import io
from typing import Any
from uuid import uuid4

import pytest
from rich.console import Console

from labelgate import progress
from labelgate.partition import serial_map
from labelgate.progress import Tick
from tests.conftest import SpecFactory


def test_ticks_reach_the_stage_sink_and_the_listener() -> None:
    stage_ticks: list[Tick] = []
    heard: list[Tick] = []
    with progress.listening(heard.append):
        with progress.reporting(stage_ticks.append, stage="dedup"):
            assert serial_map(lambda x: x * 2, [1, 2, 3], name="minhash") == [2, 4, 6]
        progress.advance("outside", 1, 2)
    progress.advance("nobody listens", 1, 1)  # no sink: nothing happens
    assert [(t.stage, t.step, t.done, t.total, t.unit) for t in stage_ticks] == [
        ("dedup", "minhash", 1, 3, "parts"), ("dedup", "minhash", 2, 3, "parts"),
        ("dedup", "minhash", 3, 3, "parts")]
    assert [t.text() for t in heard] == ["minhash 1/3 parts", "minhash 2/3 parts",
                                         "minhash 3/3 parts", "outside 1/2"]
    assert heard[-1].stage == ""  # the stage's context ended with its block


def test_a_failing_sink_does_not_stop_the_work() -> None:
    def broken(tick: Tick) -> None:
        raise RuntimeError("display gone")

    seen: list[Tick] = []
    with progress.reporting(broken, stage="x"), progress.reporting(seen.append, stage="x"):
        assert list(progress.tracked(iter("ab"), "letters", total=2)) == ["a", "b"]
    assert [t.done for t in seen] == [1, 2]
    assert seen[-1].finished and seen[-1].fraction == 1.0
    assert Tick("x", "rows written", 5, None).text() == "rows written 5"


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_stage_sink_is_quiet_for_short_stages_then_throttled(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import tasks.progress as tp

    logged: list[str] = []
    created: list[tuple[float, str]] = []
    updated: list[tuple[Any, float, str]] = []

    class _Logger:
        def info(self, fmt: str, *args: Any) -> None:
            logged.append(fmt % args)

    artifact = uuid4()

    def create(value: float, description: str) -> Any:
        created.append((value, description))
        return artifact

    monkeypatch.setattr(tp, "get_run_logger", lambda: _Logger())
    monkeypatch.setattr(tp, "create_progress_artifact", create)
    monkeypatch.setattr(tp, "update_progress_artifact",
                        lambda a, v, description: updated.append((a, v, description)))
    clock = _Clock()
    sink = tp.StageProgress("label-issues", clock=clock)
    sink(Tick("label-issues", "fold", 1, 5, "parts"))  # within the quiet start: nothing
    clock.now = tp.QUIET_SECONDS + 0.1
    sink(Tick("label-issues", "fold", 2, 5, "parts"))  # shown, the artifact created at 40%
    clock.now += 0.5
    sink(Tick("label-issues", "fold", 3, 5, "parts"))  # too soon after the last: skipped
    clock.now += 0.1
    sink(Tick("label-issues", "fold", 5, 5, "parts"))  # a shown step's end is always shown
    assert logged == ["progress: fold 2/5 parts", "progress: fold 5/5 parts"]
    assert created == [(40.0, "label-issues: fold 2/5 parts")]
    assert updated == [(artifact, 100.0, "label-issues: fold 5/5 parts")]


def test_live_display_draws_one_bar_per_step() -> None:
    from flows.live import live_progress

    with live_progress(Console(file=io.StringIO())) as absent:
        assert absent is None  # not a terminal: no display
    console = Console(file=io.StringIO(), force_terminal=True, width=100)
    with live_progress(console) as live:
        assert live is not None
        progress.advance("fold", 2, 5, "parts")
        progress.advance("fold", 3, 5, "parts")
        progress.advance("texts embedded", 100, None)
    tasks = {t.description: (t.completed, t.total) for t in live.bars.tasks}
    assert tasks == {"fold": (3, 5), "texts embedded": (100, None)}


@pytest.mark.flow
@pytest.mark.usefixtures("prefect_server")
def test_flow_stages_leave_progress_artifacts(make_spec: SpecFactory,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterType,
        FlowRunFilter,
        FlowRunFilterId,
    )

    import tasks.progress as tp
    from flows.pipeline import quality_pipeline

    monkeypatch.setattr(tp, "QUIET_SECONDS", 0.0)  # every stage counts as long here
    spec = make_spec(label_issues={"method": "cross_validated", "folds": 3})
    state = quality_pipeline(str(spec), return_state=True)
    assert state.is_completed()
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(type=ArtifactFilterType(any_=["progress"])),
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[
                state.state_details.flow_run_id])),
        )
    descriptions = sorted(a.description or "" for a in found)
    assert any(d.startswith("label-issues: ") and "fold" in d for d in descriptions)
    assert all(a.data == 100.0 for a in found)  # each ended at its last step's end
