"""The report stage draws its plots with the flow's earlier objects frozen out of the
garbage collector's passes (issue 26: a full collection in a night's process went through
~450,000 objects while the plots were drawn), and unfreezes them after, also on an error."""

from __future__ import annotations

import gc
from typing import Any

import pytest
from conftest import SpecFactory

import tasks.report

pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_server")]


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


def test_the_objects_are_unfrozen_when_the_report_fails() -> None:
    with pytest.raises(OSError, match="disk"), tasks.report._flow_objects_frozen():
        assert gc.get_freeze_count() > 0
        raise OSError("disk full")
    assert gc.get_freeze_count() == 0
