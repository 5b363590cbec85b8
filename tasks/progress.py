"""A stage's progress in its run log and in a Prefect progress artifact.

`stage_task` runs every stage inside `labelgate.progress.reporting` with a `StageProgress`
sink. A stage that ends within `QUIET_SECONDS` reports nothing (a 1,000-row run pays no
API calls for it); past that, each step's progress is logged and shown as the stage's
progress artifact in the Prefect UI at most every `EVERY_SECONDS`, and when a step ends.
"""

from __future__ import annotations

import time
from typing import Any
from uuid import UUID

from prefect import get_run_logger
from prefect.artifacts import create_progress_artifact, update_progress_artifact

from labelgate.progress import Tick

QUIET_SECONDS = 2.0
EVERY_SECONDS = 2.0


class StageProgress:
    """The sink of one stage run: throttled log lines and one progress artifact."""

    def __init__(self, stage: str, *, clock: Any = time.monotonic) -> None:
        self.stage = stage
        self._clock = clock
        self._started = clock()
        self._last: dict[str, float] = {}
        self.artifact: UUID | None = None

    def _due(self, tick: Tick) -> bool:
        now = self._clock()
        if now - self._started < QUIET_SECONDS:
            return False
        last = self._last.get(tick.step)
        if tick.finished and last is not None:
            return True  # a step that was shown going is shown ending
        return last is None or now - last >= EVERY_SECONDS

    def __call__(self, tick: Tick) -> None:
        if not self._due(tick):
            return
        self._last[tick.step] = self._clock()
        get_run_logger().info("progress: %s", tick.text())
        fraction = tick.fraction
        if fraction is None:
            return
        description = f"{self.stage}: {tick.text()}"
        if self.artifact is None:
            created = create_progress_artifact(100 * fraction, description=description)
            assert isinstance(created, UUID)  # a sync call in a sync task: no coroutine
            self.artifact = created
        else:
            update_progress_artifact(self.artifact, 100 * fraction, description=description)
