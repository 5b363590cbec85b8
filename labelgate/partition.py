"""Partitioned work: the parts of a stage that are independent of each other.

Three stages split into parts: the contract (one part per input batch), the built-in
label model (one part per fold) and near-duplicate detection (one part per shard of
MinHash signatures). Each part is a pure function of one picklable argument: it reads no
store and writes none, so a part can run in this process or on another machine.

The library never decides where parts run. A stage takes a `Mapper`: `serial_map` (the
default) runs the parts here, one after the other; the Prefect layer (`tasks/partition.py`)
passes a mapper that submits each part as a task run to the flow's task runner, which with
`labelgate run --dask ADDR` is a Dask cluster. The results come back in the order of the
parts, so a partitioned stage returns exactly what the serial one does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

from labelgate.progress import tracked

__all__ = ["Mapper", "serial_map"]

A = TypeVar("A")
R = TypeVar("R")


class Mapper(Protocol):
    """`mapper(fn, items, name=...)` returns `[fn(x) for x in items]`, in order; `name`
    labels the parts (task run names `<name>-<i>`)."""

    def __call__(self, fn: Callable[[A], R], items: Sequence[A], *, name: str) -> list[R]: ...


def serial_map(fn: Callable[[A], R], items: Sequence[A], *, name: str) -> list[R]:
    """Run every part here, in order, reporting `name` parts done (`labelgate.progress`)."""
    return [fn(x) for x in tracked(items, name, unit="parts")]
