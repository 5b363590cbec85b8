"""This process's kept read-write connections to warehouse files (`warehouse.connect(...,
keep=True)`; the module docstring of `labelgate.store.warehouse` says why and when they
close). Only this module's registry holds them, keyed by the file's real path and the
process id, never an object a task carries.
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

Opener = Callable[[Path, "float | None"], duckdb.DuckDBPyConnection]

IDLE_SECONDS = 5.0  # a kept connection closes after this long unused (a night: one open)
_KEPT: dict[tuple[str, int], _Kept] = {}  # by (real path, pid): this process's only
_KEPT_GUARD = threading.Lock()


def _key(path: Path) -> tuple[str, int]:
    return os.path.realpath(path), os.getpid()


def _kept(path: Path, *, create: bool) -> _Kept | None:
    """This process's kept connection to `path` (a new, still closed one when `create`)."""
    key = _key(path)
    with _KEPT_GUARD:
        kept = _KEPT.get(key)
        if kept is None and create:
            kept = _KEPT[key] = _Kept(path)
        return kept


def _unpickle_kept(path: Path) -> _Kept | None:
    return _kept(path, create=True)


def release(path: Path) -> None:
    """Close this process's kept connection to the warehouse file `path`, if any (a later
    `connect(..., keep=True)` opens it again)."""
    with _KEPT_GUARD:
        kept = _KEPT.pop(_key(path), None)
    if kept is not None:
        kept.close()


def kept_opens(path: Path) -> int:
    """How many times this process's kept connection to `path` opened the file (0: none
    kept now; tests and benchmarks)."""
    kept = _kept(path, create=False)
    return 0 if kept is None else kept.opens


@atexit.register
def _release_all() -> None:
    """At the process's exit: close (checkpoint) every connection it still keeps."""
    for path, pid in list(_KEPT):
        if pid == os.getpid():
            release(Path(path))


class _Kept:
    """This process's read-write connection to one warehouse file, kept between uses.

    Uses are serialized (a lock). Between uses a timer thread closes it once idle for
    `IDLE_SECONDS`; the next use opens it again. A use that raises closes it (a connection
    in an unknown state is not kept). Pickled, it is only the path: unpickled in this
    process it is the registry's, elsewhere a new one, opened at its first use.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.opens = 0
        self._con: duckdb.DuckDBPyConnection | None = None
        self._timer: threading.Timer | None = None
        self._guard = threading.RLock()
        self._depth = 0

    def __reduce__(self) -> tuple[object, tuple[Path]]:
        return _unpickle_kept, (self.path,)

    @property
    def is_open(self) -> bool:
        return self._con is not None

    @contextmanager
    def use(
        self, lock_timeout: float | None, opener: Opener
    ) -> Iterator[duckdb.DuckDBPyConnection]:
        """The connection (opened by `opener` if closed), held by this thread until the
        block ends."""
        with self._guard:
            self._cancel()
            if self._con is None:
                self._con = opener(self.path, lock_timeout)
                self.opens += 1
            self._depth += 1
            try:
                yield self._con
            except BaseException:
                self._close()
                raise
            finally:
                self._depth -= 1
                if self._depth == 0 and self._con is not None:
                    self._arm()

    def close(self) -> None:
        """Close the connection now (the next use opens it again)."""
        with self._guard:
            self._cancel()
            self._close()

    def _arm(self) -> None:
        timer = threading.Timer(IDLE_SECONDS, self._idle)
        timer.daemon = True
        timer.name = "labelgate-warehouse-idle"
        self._timer = timer
        timer.start()

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _idle(self) -> None:
        with self._guard:
            if self._timer is threading.current_thread():  # not used since it was armed
                self._timer = None
                self._close()

    def _close(self) -> None:
        con, self._con = self._con, None
        if con is not None:
            con.close()


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """One DuckDB transaction (DDL included): committed when the block ends, rolled back
    when it raises (a kill between its statements leaves none of them)."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
