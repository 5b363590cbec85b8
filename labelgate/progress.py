"""Progress of long work: folds trained, texts embedded, shards hashed, rows written.

The library reports; it never decides where progress goes. A step calls
`advance(step, done, total, unit)` as it goes (`tracked` wraps a loop). Sinks receive each
`Tick`:

- the Prefect layer (`tasks/progress.py`) opens `reporting(sink, stage=...)` around a stage
  run: a sink for that stage only, which writes the run log and a Prefect progress
  artifact;
- `labelgate run` adds a process-wide listener (`listening`) that draws a live display
  in the terminal.

With no sink (a library call, a test) `advance` costs a context-variable lookup.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TypeVar

__all__ = ["Sink", "Tick", "advance", "listening", "reporting", "tracked"]

T = TypeVar("T")


@dataclass(frozen=True)
class Tick:
    """One step's progress: `done` of `total` `unit` (total None: unknown)."""

    stage: str  # the stage whose run reported it ("" outside a stage)
    step: str  # what is counted: "fold", "texts embedded", "rows written", ...
    done: int
    total: int | None
    unit: str = ""

    @property
    def fraction(self) -> float | None:
        if not self.total:
            return None
        return min(1.0, self.done / self.total)

    @property
    def finished(self) -> bool:
        return self.total is not None and self.done >= self.total

    def text(self) -> str:
        """`fold 3/5`, `rows written 120,000/1,000,000 rows`, `rows written 5,000`."""
        count = f"{self.done:,}" if self.total is None else f"{self.done:,}/{self.total:,}"
        return f"{self.step} {count}" + (f" {self.unit}" if self.unit else "")


Sink = Callable[[Tick], None]

_sinks: ContextVar[tuple[Sink, ...]] = ContextVar("labelgate_progress_sinks", default=())
_stage: ContextVar[str] = ContextVar("labelgate_progress_stage", default="")
_listeners: list[Sink] = []
_lock = threading.Lock()


def advance(step: str, done: int, total: int | None = None, unit: str = "") -> None:
    """Report that `done` of `total` `unit` of `step` are done (a sink's error is its own:
    progress never stops the work)."""
    sinks = _sinks.get()
    listeners = _listeners
    if not sinks and not listeners:
        return
    tick = Tick(_stage.get(), step, done, total, unit)
    for sink in (*listeners, *sinks):
        try:
            sink(tick)
        except Exception:  # a display or an API hiccup must not fail a stage
            continue


def tracked(items: Sequence[T] | Iterable[T], step: str, *, total: int | None = None,
            unit: str = "") -> Iterator[T]:
    """Yield `items`, reporting `step` done/total after each one."""
    if total is None and isinstance(items, Sequence):
        total = len(items)
    for done, item in enumerate(items, start=1):
        yield item
        advance(step, done, total, unit)


@contextmanager
def reporting(sink: Sink, *, stage: str) -> Iterator[None]:
    """Within the block (this thread or task context), `stage`'s ticks also go to `sink`."""
    sinks = _sinks.set((*_sinks.get(), sink))
    name = _stage.set(stage)
    try:
        yield
    finally:
        _stage.reset(name)
        _sinks.reset(sinks)


@contextmanager
def listening(sink: Sink) -> Iterator[None]:
    """Within the block, every tick in this process also goes to `sink` (a terminal
    display)."""
    global _listeners
    with _lock:
        _listeners = [*_listeners, sink]
    try:
        yield
    finally:
        with _lock:
            _listeners = [s for s in _listeners if s is not sink]
