"""One run per dataset at a time: an exclusive `filelock.UnixFileLock` (``flock(2)``) on
`STORE/locks/<dataset>.lock`.

The lock is held by an open file descriptor for the whole run and released by
`RunLock.release()` (the flow calls it in a `finally`), or by the operating system when
the process dies, however it dies: a SIGKILLed run never leaves a stale lock behind. The
file's content (JSON: pid, host, run id, start time, written once the lock is held) only
names the holder in the refusal message; whether the lock is held is decided by `flock`,
never by the content.

Consequence for run records: once a run holds its dataset's lock, any other run of that
dataset still marked `running` in the warehouse has no live process (it would hold the
lock), so the new run marks it `abandoned`.

A local-filesystem lock: `flock` is advisory and per host (an NFS store shared by several
machines needs a lock service instead); where the filesystem has no `flock` the lock fails
instead of falling back to filelock's soft lock (a marker file, which the operating system
does not drop when the process dies).
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from filelock import Timeout, UnixFileLock
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

from labelgate.errors import InputError, RunLockedError

LOCKS_DIR = "locks"
STORE_SETTING = "the spec's `store:` key or the --store option"
POLL_SECONDS = 0.5
_sleep = time.sleep  # tests replace it to act between attempts


def lock_path(store: Path, dataset: str) -> Path:
    if dataset in {"", ".", ".."} or "/" in dataset or "\\" in dataset:
        raise ValueError(f"dataset name {dataset!r} cannot name a lock file")
    return Path(store) / LOCKS_DIR / f"{dataset}.lock"


# the folders a run of a dataset writes below the store: `<top>/<dataset>` for each top,
# and the store-wide ones (the warehouse beside them)
_DATASET_TOPS = ("lake", "curated", "reports", "published", "cache")
_SHARED = (LOCKS_DIR, "reports/index.html", "warehouse.duckdb")


def refuse_links_out(store: Path, dataset: str) -> None:
    """`InputError` when a path a run of `dataset` writes (`lake/<dataset>`, `published/...`,
    `locks`, `warehouse.duckdb`, ...) is, or passes through, a symlink that leads out of
    the store: the run writes inside its store only. Links that stay inside are fine, and
    so are the run's own `current` and `latest` links (inside a dataset's folder)."""
    root = Path(store).resolve()
    paths = [Path(store) / top for top in _DATASET_TOPS]
    paths += [Path(store) / top / dataset for top in _DATASET_TOPS]
    paths += [Path(store) / rel for rel in _SHARED]
    for path in paths:
        if not (path.is_symlink() or path.parent.is_symlink()):
            continue
        target = path.resolve()
        if target != root and root not in target.parents:
            raise InputError(
                f"store {store}: {path} is a symlink to {target}, outside the store; a run "
                f"writes only inside its store: replace the link with a folder (or point "
                f"the store itself at the other disk)")


def ensure_store_dir(store: Path, *, setting: str = STORE_SETTING) -> Path:
    """Create the store folder (and its parents) if missing; `InputError` naming the store
    and `setting` (where it was set) when it is a file or cannot be created."""
    store = Path(store)
    try:
        store.mkdir(parents=True, exist_ok=True)
    except FileExistsError:  # a file (or a dangling link) by that name
        raise InputError(
            f"store {store} is not a directory ({setting}); name a folder (created if missing)"
        ) from None
    except NotADirectoryError:  # a parent is a file
        parent = next((p for p in store.parents if p.exists() and not p.is_dir()), None)
        raise InputError(
            f"store {store} cannot be created ({setting}): "
            f"{parent or 'a parent folder'} is not a directory"
        ) from None
    except OSError as exc:  # permission denied, read-only file system, ...
        raise InputError(
            f"store {store} cannot be created ({setting}): {exc.strerror or exc}"
        ) from None
    return store


@dataclass
class RunLock:
    """A held dataset lock; `release()` is idempotent."""

    path: Path
    dataset: str
    run_id: str
    _lock: UnixFileLock | None

    @property
    def held(self) -> bool:
        return self._lock is not None

    def release(self) -> None:
        lock, self._lock = self._lock, None
        if lock is not None:
            lock.release()

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def read_holder(path: Path) -> dict[str, Any] | None:
    """What the lock file says about its holder (None if empty or unreadable)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _describe(dataset: str, holder: dict[str, Any] | None, path: Path) -> str:
    if holder is None:
        who = "holder not yet recorded"
    else:
        who = (f"pid {holder.get('pid')} on {holder.get('host')}, run {holder.get('run_id')}, "
               f"started {holder.get('started_at')}")
    return (f"another run of {dataset} is in progress ({who}); lock file {path}. "
            "Wait for it to finish, or run again later")


def _write_holder(fd: int, *, run_id: str, dataset: str) -> None:
    """Record who holds the lock in its file (filelock's ``on_acquired``: ``fd`` is the
    locked descriptor, left open)."""
    holder = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "run_id": run_id,
        "dataset": dataset,
        "started_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    with open(fd, "w", encoding="utf-8", closefd=False) as f:
        f.seek(0)
        f.truncate()
        f.write(json.dumps(holder, sort_keys=True) + "\n")


def acquire(store: Path, dataset: str, *, run_id: str, wait_seconds: float = 0.0) -> RunLock:
    """Take the dataset's lock, or raise `RunLockedError` naming the holder.

    ``wait_seconds``: how long to keep trying (every `POLL_SECONDS`) before refusing
    (0: refuse at once). A store that is a file, or cannot be created, is an `InputError`
    naming it.
    """
    path = lock_path(store, dataset)
    ensure_store_dir(store)  # the first write to the store: a file there is an InputError
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = UnixFileLock(
        path,
        thread_local=False,  # taken in a task's thread, released by the flow's
        fallback_to_soft=False,
        on_acquired=partial(_write_holder, run_id=run_id, dataset=dataset),
    )
    attempts = Retrying(
        retry=retry_if_exception_type(Timeout),
        stop=stop_after_delay(max(wait_seconds, 0.0)),
        wait=wait_fixed(POLL_SECONDS),
        sleep=_sleep,
        reraise=True,
    )
    try:
        attempts(lock.acquire, blocking=False)
    except Timeout:
        raise RunLockedError(_describe(dataset, read_holder(path), path)) from None
    return RunLock(path=path, dataset=dataset, run_id=run_id, _lock=lock)
