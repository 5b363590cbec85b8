"""Which lake batch an unchanged input file is, known from the file's status alone.

A night's input is mostly files the lake already holds: without this, each of them is
read and hashed again to find its batch (all of a large base file, every night). Each
source's lake folder keeps `_files.json`: per input file (its resolved path and the reader
options), the batch digest its bytes had and the file's status when they were read (size,
modification and change times in nanoseconds, inode, device). A later run whose file has
the same status takes that batch without reading the file, as git's index does.

On a local Linux filesystem (`LOCAL`) the change time (``st_ctime_ns``) moves on every
write to the file and ``utime`` cannot set it (unlike the modification time, which `cp -p`,
`rsync -t` or `touch -d` set back), so a rewritten file, even to the same size and
``mtime``, does not match. Elsewhere that does not hold (FUSE mounts such as sshfs report
ctime = mtime, vfat and exfat keep no change time, an NFS client's ``stat`` may answer from
its attribute cache), so there the index is neither read nor written (`trusted`): every
file is read and hashed each run. A status is recorded only when it was the same before
and after the read and the file had not changed for `SETTLE_S` seconds before the read
began: a file still being written, or written within the clock's resolution of the read, is
read again by the next run. The index is advisory: missing, unreadable or stale, the file
is read and hashed as before. It lists the files of the source's latest run only.
"""

from __future__ import annotations

import functools
import json
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path

INDEX = "_files.json"
SETTLE_S = 2.0
_VERSION = 1
_DIGEST = re.compile(r"^[0-9a-f]{20}$")  # lake.content_hash's
# filesystems whose change time moves on every write (and utime cannot set)
LOCAL = frozenset({"ext2", "ext3", "ext4", "xfs", "btrfs", "tmpfs", "zfs", "f2fs", "overlay",
                   "bcachefs", "jfs"})
_MOUNTINFO = Path("/proc/self/mountinfo")
_ESCAPE = re.compile(r"\\([0-7]{3})")


@functools.cache
def mounts() -> tuple[tuple[str, str], ...]:
    """(mount point, filesystem type) of each mount, in /proc/self/mountinfo's order (a
    later mount at a point shadows an earlier one); empty off Linux."""
    try:
        text = _MOUNTINFO.read_text()
    except OSError:
        return ()
    found = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        fields = left.split()
        if sep and len(fields) >= 5 and right.split():
            point = _ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), fields[4])
            found.append((point, right.split()[0]))
    return tuple(found)


def trusted(path: Path) -> bool:
    """Whether the index may stand for reading `path`: the file is on a `LOCAL` filesystem
    (the innermost mount holding its resolved path)."""
    where = str(path.resolve())
    fstype = None
    longest = -1
    for point, kind in mounts():
        inside = where == point or where.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= longest:
            fstype, longest = kind, len(point)
    return fstype in LOCAL


def status(path: Path) -> list[int]:
    """The status fields that identify the file's content for the index."""
    st = path.stat()
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


def entry_key(path: Path, options: Mapping[str, object]) -> str:
    return json.dumps([str(path.resolve()), dict(options)], sort_keys=True)


def load(root: Path) -> dict[str, dict[str, object]]:
    """The source's index (`root`: its lake folder); empty when there is none or it does
    not read."""
    try:
        data = json.loads((root / INDEX).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("version") != _VERSION:
        return {}
    files = data.get("files")
    return files if isinstance(files, dict) else {}


def known(index: Mapping[str, Mapping[str, object]], key: str, now: list[int]) -> str | None:
    """The batch digest recorded under `key` when the file's status is still `now`."""
    entry = index.get(key)
    if entry is None or entry.get("status") != now:
        return None
    digest = entry.get("digest")
    return digest if isinstance(digest, str) and _DIGEST.match(digest) else None


def settled(before: list[int], after: list[int], read_at_ns: int) -> bool:
    """Whether a read that began at `read_at_ns` (``time.time_ns()``) with the file's status
    `before` and ended with `after` may be recorded: unchanged during the read, and both
    its times at least `SETTLE_S` older than the read."""
    newest = max(before[1], before[2])
    return before == after and newest <= read_at_ns - int(SETTLE_S * 1e9)


def save(root: Path, files: Mapping[str, Mapping[str, object]]) -> None:
    """Write the index (temp file, then one rename: a reader sees the old or the new)."""
    root.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{INDEX}.", suffix=".tmp", dir=root)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump({"version": _VERSION, "files": dict(files)}, fh, sort_keys=True)
        os.replace(tmp, root / INDEX)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
