"""TEST HOOK ONLY: kill the process at a stage boundary, to test what a crash leaves behind.

`LABELGATE_FAULT=<stage>:<point>` (read when a stage runs, never at import) makes the
process SIGKILL itself at that point: no `finally`, no `except`, no atexit, exactly like
the OOM killer or a power cut. `<stage>` is a task name (`ingest`, `enforce-contract`,
`store`, `label-issues`, `dedup`, `splits`, `metrics`, `gate`, `publish`, `report`, ...);
`<point>` is `before` or `after` the stage, or for `publish` also `switch` (the version
folder is complete and renamed, `current` not yet moved). Unset (always, outside
tests/test_crash.py): no effect.
"""

from __future__ import annotations

import functools
import os
import signal
from collections.abc import Callable
from typing import ParamSpec, TypeVar

FAULT_ENV = "LABELGATE_FAULT"

P = ParamSpec("P")
R = TypeVar("R")


def fault_point(stage: str, point: str) -> None:
    """SIGKILL this process if LABELGATE_FAULT names `stage:point`."""
    if os.environ.get(FAULT_ENV) == f"{stage}:{point}":
        os.kill(os.getpid(), signal.SIGKILL)


def boundaries(stage: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Wrap a stage function with the `before` and `after` fault points (under @task)."""

    def wrap(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def staged(*args: P.args, **kwargs: P.kwargs) -> R:
            fault_point(stage, "before")
            out = fn(*args, **kwargs)
            fault_point(stage, "after")
            return out

        return staged

    return wrap
