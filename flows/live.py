"""`labelgate run`'s live display of long work in the terminal (rich).

One bar per stage step (`label-issues: fold 3/5`), drawn while the flow runs and cleared
when it ends; the log lines scroll above it. Only on a terminal: a redirected or CI
output gets the log lines alone (`tasks/progress.py`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from labelgate import progress
from labelgate.progress import Tick


class LiveProgress:
    """A `labelgate.progress` sink drawing one rich progress bar per (stage, step)."""

    def __init__(self, console: Console) -> None:
        self.bars = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[unit]}"), TimeElapsedColumn(),
            console=console, transient=True,
        )
        self._tasks: dict[tuple[str, str], TaskID] = {}

    def __call__(self, tick: Tick) -> None:
        key = (tick.stage, tick.step)
        if key not in self._tasks:
            label = f"{tick.stage}: {tick.step}" if tick.stage else tick.step
            self._tasks[key] = self.bars.add_task(label, total=tick.total, unit=tick.unit)
        self.bars.update(self._tasks[key], completed=tick.done, total=tick.total)


@contextmanager
def live_progress(console: Console) -> Iterator[LiveProgress | None]:
    """The live display for the block when `console` is a terminal, else nothing."""
    if not console.is_terminal:
        yield None
        return
    live = LiveProgress(console)
    with live.bars, progress.listening(live), _logs_through(console):
        yield live


@contextmanager
def _logs_through(console: Console) -> Iterator[None]:
    """Prefect's console log handlers print through `console` for the block, so their lines
    scroll above the live bars instead of through them (each handler writes to the stream
    it was given at set-up, which the live display cannot redirect)."""
    loggers = [logging.getLogger(), *(
        logger for logger in logging.Logger.manager.loggerDict.values()
        if isinstance(logger, logging.Logger))]
    swapped: list[tuple[Any, Console]] = []
    for logger in loggers:
        for handler in logger.handlers:
            own = getattr(handler, "console", None)
            if isinstance(own, Console) and own is not console:
                swapped.append((handler, own))
                handler.console = console  # type: ignore[attr-defined]
    try:
        yield
    finally:
        for handler, own in swapped:
            handler.console = own
