"""BATTERY ONLY: faults injected into a `labelgate run` child process (bench/battery.py).

`LABELGATE_BATTERY_FAULT` (unset: no effect) names one fault, installed before the CLI
imports the pipeline:

- `enospc:lake` / `enospc:publish`: a Parquet or JSONL write under the store's `lake/`
  (or `published/`) writes a partial file, then fails with ENOSPC, as a full disk does;
- `kill:publish-rename`: SIGKILL at the rename of the complete temporary version folder
  to `v<N>` (inside publish, before `current` moves);
- `kill:current-replace`: SIGKILL at the `os.replace` that moves `current`;
- `remote:fail-after=<N>`: the N+1-th file uploaded to a file:// store fails (OSError), as a
  network that drops mid-push;
- `hold-ingest:<path>`: ingest waits until `<path>` exists (at most 120 s), so the battery
  can start a second run while this one holds the dataset's lock.
"""

from __future__ import annotations

import errno
import os
import signal
import time
from pathlib import Path
from typing import Any

ENV = "LABELGATE_BATTERY_FAULT"


def install() -> None:
    fault = os.environ.get(ENV, "")
    if not fault:
        return
    kind, _, arg = fault.partition(":")
    if kind == "enospc":
        _disk_full(f"/{arg}/")
    elif kind == "kill":
        _kill_at(arg)
    elif kind == "remote":
        _remote_fails(int(arg.removeprefix("fail-after=")))
    elif kind == "hold-ingest":
        _hold_ingest(Path(arg))
    else:
        raise SystemExit(f"{ENV}: unknown fault {fault!r}")


def _full(path: Any) -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


def _disk_full(marker: str) -> None:
    import polars as pl

    parquet, ndjson = pl.DataFrame.write_parquet, pl.DataFrame.write_ndjson

    def write_parquet(self: pl.DataFrame, file: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(file, str | Path) and marker in str(file):
            Path(file).write_bytes(b"PAR1")  # a partial file, then the disk is full
            raise _full(file)
        return parquet(self, file, *args, **kwargs)

    def write_ndjson(self: pl.DataFrame, file: Any = None, *args: Any, **kwargs: Any) -> Any:
        if isinstance(file, str | Path) and marker in str(file):
            Path(file).write_bytes(b"{")
            raise _full(file)
        return ndjson(self, file, *args, **kwargs)

    pl.DataFrame.write_parquet = write_parquet  # type: ignore[method-assign]
    pl.DataFrame.write_ndjson = write_ndjson  # type: ignore[method-assign]


def _kill_at(point: str) -> None:
    rename, replace = os.rename, os.replace

    def killing_rename(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        if (point == "publish-rename" and Path(src).name.startswith(".tmp-")
                and "/published/" in str(dst)):
            os.kill(os.getpid(), signal.SIGKILL)
        rename(src, dst, *args, **kwargs)

    def killing_replace(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        if point == "current-replace" and Path(dst).name == "current":
            os.kill(os.getpid(), signal.SIGKILL)
        replace(src, dst, *args, **kwargs)

    os.rename = killing_rename
    os.replace = killing_replace


def _remote_fails(after: int) -> None:
    from fsspec.implementations.local import LocalFileSystem  # type: ignore[import-untyped]

    put_file = LocalFileSystem.put_file
    done = [0]

    def failing(self: Any, lpath: Any, rpath: Any, *args: Any, **kwargs: Any) -> Any:
        if done[0] >= after:
            raise OSError(errno.ECONNRESET, "Connection reset by peer (battery fault)", rpath)
        done[0] += 1
        return put_file(self, lpath, rpath, *args, **kwargs)

    LocalFileSystem.put_file = failing


def _hold_ingest(release: Path) -> None:
    from labelgate.store import lake

    ingest = lake.ingest_source

    def held(*args: Any, **kwargs: Any) -> Any:
        deadline = time.monotonic() + 120
        while not release.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        return ingest(*args, **kwargs)

    lake.ingest_source = held
