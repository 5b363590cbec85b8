"""A store at an fsspec URL (s3://, gs://, az://, file://, memory://): pull a local working
copy before a run, push it back after.

labelgate reads and writes a local folder (`local_cache_dir(url)`); this module copies what
a dataset's run needs between that folder and the remote store. A store holds:

- ``warehouse.duckdb``: one mutable file shared by every dataset; copied whole (pull
  replaces the local file, push replaces the remote one; the remote is the truth).
- units: immutable folders, complete once their marker file exists, never changed after::

      lake/<D>/<source>/batch=<hash>/   _batch.json
      cache/<D>/<kind>/<key>/           _done.json
      reports/<D>/<run_id>/             report.json
      curated/<D>/run=<run_id>/         items.parquet
      published/<D>/v<N>/               manifest.json

  A unit is transferred when it is complete on the sending side and not complete on the
  receiving side; a complete unit is never transferred again (so a second push or pull
  moves no unit, and pushing the same unit twice is harmless).
- pointers: the symlinks ``reports/<D>/latest`` and ``published/<D>/current``. Object
  stores have no symlinks, so the remote holds ``latest.link`` / ``current.link``: a small
  text file with the target's folder name; pull recreates the symlink (atomically).

Everything else is ignored: hidden names (``.tmp-*`` folders, ``.locks``, ``.prefect``),
``locks/``, and folders without their marker (interrupted writes).

Ordering keeps each side consistent for a reader at every moment:
- pull: the warehouse (temp file, then ``os.replace``); each unit into a hidden temp folder
  (files, marker last) renamed into place, so an interrupted pull never leaves a
  complete-looking local unit; then the symlinks, only to complete local units.
- push: each unit's files, its marker last (a unit is never complete remotely before all its
  files are there); then the warehouse (temp name, then move; on object stores the move
  is copy + delete); then the ``.link`` files, so ``current`` never names a version that
  is not fully uploaded.

Concurrency is out of scope: one runner per store (not per dataset: the warehouse is
shared, and a push replaces it whole, so two machines pushing to one store lose the
earlier push's warehouse rows). The local run lock (`labelgate.store.locking`) does not cover
the remote. Transfer errors (network, permissions) propagate as the backend raised them
(mostly ``OSError``), with a note naming the remote path.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import fsspec.core  # type: ignore[import-untyped]
from fsspec.registry import known_implementations  # type: ignore[import-untyped]

from labelgate.errors import InputError
from labelgate.spec import Spec
from labelgate.stages.publish import CURRENT, MANIFEST
from labelgate.store import warehouse
from labelgate.store.lake import MARKER as BATCH_MARKER
from labelgate.store.urls import is_remote as is_remote
from labelgate.store.urls import store_url as store_url
from labelgate.store.warehouse import WAREHOUSE_FILE

LINK_SUFFIX = ".link"
CACHE_ENV = "LABELGATE_CACHE_DIR"
_WAL = WAREHOUSE_FILE + ".wal"  # DuckDB's write-ahead log beside the database file
_SETTING = "the spec's `store:` key or the --store option"

OnUnit = Callable[[str], None]


@dataclass(frozen=True)
class UnitKind:
    """Units of one kind: ``<top>/<dataset>/<levels...>/`` complete when ``marker`` exists.

    ``levels`` are fnmatch patterns for the folder names below ``<top>/<dataset>``;
    ``link`` names the pointer symlink beside the units (a kind with a link has one level).
    """

    top: str
    levels: tuple[str, ...]
    marker: str
    link: str | None = None


UNIT_KINDS: tuple[UnitKind, ...] = (
    UnitKind("lake", ("*", "batch=*"), BATCH_MARKER),
    UnitKind("cache", ("*", "*"), "_done.json"),
    UnitKind("curated", ("run=*",), "items.parquet"),
    UnitKind("reports", ("*",), "report.json", link="latest"),
    UnitKind("published", ("v[0-9]*",), MANIFEST, link=CURRENT),
)


@dataclass
class SyncStats:
    """What one pull or push did. ``bytes`` counts unit files and the warehouse."""

    units: int = 0  # units transferred
    skipped: int = 0  # units already complete on the receiving side
    files: int = 0  # unit files transferred
    bytes: int = 0
    warehouse: bool = False  # warehouse.duckdb transferred
    links: int = 0  # pointers written (remote .link files or local symlinks)
    seconds: float = 0.0


@dataclass(frozen=True)
class RemoteStore:
    """An opened store URL: ``fs`` is the fsspec filesystem, ``root`` the path in it."""

    url: str
    fs: Any  # fsspec.AbstractFileSystem (fsspec ships no type information)
    root: str

    def path(self, *parts: str) -> str:
        """The remote path of ``parts`` below the root (joined with ``fs.sep``)."""
        return str(self.fs.sep.join([self.root, *parts]))


def open_remote(url: str) -> RemoteStore:
    """Open ``url`` with fsspec; a missing backend package is an InputError naming it."""
    protocol = fsspec.core.split_protocol(url)[0]
    try:
        fs, root = fsspec.core.url_to_fs(url)
    except ImportError as exc:
        package = str(known_implementations.get(protocol, {}).get("class", "")).split(".")[0]
        hint = f"`pip install {package}`" if package else "install its fsspec backend"
        raise InputError(
            f"store {url!r} ({_SETTING}): {exc}; {hint} to use {protocol}:// stores"
        ) from None
    except ValueError as exc:
        raise InputError(
            f"store {url!r} ({_SETTING}): {exc}; use a local folder or an fsspec URL "
            "such as s3://bucket/prefix, gs://, az://, file:///abs/path"
        ) from None
    return RemoteStore(url=url, fs=fs, root=str(root).rstrip("/"))


def working_store(
    spec: Spec,
    override: str | Path | None = None,
    *,
    pull_first: bool = True,
    on_unit: OnUnit | None = None,
) -> Path:
    """The local folder labelgate reads and writes for this spec: the store itself, or for
    a remote store its local working copy, first brought up to date (`pull`)."""
    url = store_url(spec, override)
    if url is None:
        return spec.store_dir(override)
    local = local_cache_dir(url)
    if pull_first:
        pull(open_remote(url), local, spec.name, on_unit=on_unit)
    return local


def local_cache_dir(url: str) -> Path:
    """The local working copy of ``url``: ``$LABELGATE_CACHE_DIR/<digest>``, else
    ``$XDG_CACHE_HOME/labelgate/<digest>`` (default ``~/.cache``); created.

    ``digest``: the first 16 hex digits of the sha256 of the URL with its scheme
    lower-cased and trailing slashes removed.
    """
    scheme, sep, rest = url.partition("://")
    normal = (scheme.lower() + sep + rest.rstrip("/")) if sep else url.rstrip("/")
    digest = hashlib.sha256(normal.encode()).hexdigest()[:16]
    base = os.environ.get(CACHE_ENV)
    if base:
        root = Path(base).expanduser()
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        root = (Path(xdg) if xdg else Path.home() / ".cache") / "labelgate"
    path = root / digest
    path.mkdir(parents=True, exist_ok=True)
    return path


# ---------------------------------------------------------------------------- listing


@dataclass
class _Listing:
    """One kind's remote files below ``<top>/<dataset>``: unit -> its files (relative)."""

    units: dict[str, list[str]]
    links: set[str]  # names of the .link files present (without the suffix)


def _check_dataset(dataset: str) -> None:
    if dataset in {"", ".", ".."} or dataset.startswith(".") or "/" in dataset \
            or "\\" in dataset:
        raise InputError(f"dataset name {dataset!r} cannot name a folder of a store")


def _relative(base: str, path: str) -> str | None:
    """``path`` below ``base`` as a relative posix path (backends differ on a leading /)."""
    b, p = base.strip("/"), path.strip("/")
    if not b:
        return p
    return p[len(b) + 1:] if p.startswith(b + "/") else None


def _visible(parts: Iterable[str]) -> bool:
    """No hidden, empty, `.` or `..` component (temp files; a hostile key)."""
    return all(part and not part.startswith(".") for part in parts)


def _list_remote(remote: RemoteStore, kind: UnitKind, dataset: str) -> _Listing:
    base = remote.path(kind.top, dataset)
    try:
        found = remote.fs.find(base, withdirs=False)
    except FileNotFoundError:
        found = []
    listing = _Listing(units={}, links=set())
    n = len(kind.levels)
    for path in found:
        rel = _relative(base, str(path))
        if rel is None:
            continue
        parts = rel.split("/")
        if not _visible(parts):
            continue
        if len(parts) == 1 and kind.link is not None and parts[0] == kind.link + LINK_SUFFIX:
            listing.links.add(kind.link)
            continue
        if len(parts) <= n or not all(map(fnmatchcase, parts[:n], kind.levels)):
            continue
        unit = "/".join([kind.top, dataset, *parts[:n]])
        listing.units.setdefault(unit, []).append("/".join(parts[n:]))
    return listing


def _local_units(local: Path, kind: UnitKind, dataset: str) -> list[str]:
    """The complete local units of this kind (store-relative posix paths), sorted."""
    folders = [local / kind.top / dataset]
    for pattern in kind.levels:
        folders = [
            child
            for folder in folders if folder.is_dir() and not folder.is_symlink()
            for child in folder.iterdir()
            if _visible([child.name]) and fnmatchcase(child.name, pattern)
            and child.is_dir() and not child.is_symlink()
        ]
    return sorted(
        f.relative_to(local).as_posix() for f in folders if (f / kind.marker).is_file()
    )


def _unit_files(folder: Path) -> list[str]:
    """The regular files of a local unit (relative posix paths), hidden names skipped."""
    out = []
    for path in folder.rglob("*"):
        rel = path.relative_to(folder)
        if _visible(rel.parts) and path.is_file() and not path.is_symlink():
            out.append(rel.as_posix())
    return out


def _marker_last(files: Iterable[str], marker: str) -> list[str]:
    return sorted(files, key=lambda f: (f == marker, f))


def _complete_local(local: Path, unit: str, marker: str) -> bool:
    return (local / unit / marker).is_file()


def _link_target(remote: RemoteStore, kind: UnitKind, dataset: str, name: str,
                 target: str) -> str:
    """``target`` if it names a unit folder of ``kind`` (no path, not hidden), else raise."""
    if "/" in target or "\\" in target or not _visible([target]) \
            or not fnmatchcase(target, kind.levels[0]):
        raise InputError(
            f"store {remote.url}: {kind.top}/{dataset}/{name}{LINK_SUFFIX} holds {target!r}, "
            f"not a folder name matching {kind.levels[0]!r}"
        )
    return target


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


# ------------------------------------------------------------------------------- pull


def pull(
    remote: RemoteStore, local: Path, dataset: str, *, on_unit: OnUnit | None = None
) -> SyncStats:
    """Bring ``local`` up to date with the remote store for ``dataset``.

    Downloads ``warehouse.duckdb`` if the remote has one (replacing the local file and
    dropping a stale local write-ahead log), every complete remote unit of the dataset not
    complete locally, then recreates the ``latest``/``current`` symlinks from the remote
    ``.link`` files. ``on_unit(path)`` is called with each store-relative path about to be
    transferred (units and ``warehouse.duckdb``).
    """
    _check_dataset(dataset)
    start = time.monotonic()
    stats = SyncStats()
    local.mkdir(parents=True, exist_ok=True)

    wh_remote = remote.path(WAREHOUSE_FILE)
    if remote.fs.exists(wh_remote):
        if on_unit is not None:
            on_unit(WAREHOUSE_FILE)
        tmp = local / f".tmp-pull-{secrets.token_hex(4)}-{WAREHOUSE_FILE}"
        try:
            _get(remote, wh_remote, tmp)
            (local / _WAL).unlink(missing_ok=True)  # it belongs to the file being replaced
            os.replace(tmp, local / WAREHOUSE_FILE)
        finally:
            tmp.unlink(missing_ok=True)
        stats.warehouse = True
        stats.bytes += (local / WAREHOUSE_FILE).stat().st_size

    listings = {kind: _list_remote(remote, kind, dataset) for kind in UNIT_KINDS}
    for kind, listing in listings.items():
        for unit, files in sorted(listing.units.items()):
            if kind.marker not in files:
                continue  # an interrupted upload: not a unit yet
            if _complete_local(local, unit, kind.marker):
                stats.skipped += 1
                continue
            if on_unit is not None:
                on_unit(unit)
            stats.bytes += _pull_unit(remote, local, unit, _marker_last(files, kind.marker))
            stats.units += 1
            stats.files += len(files)

    for kind, listing in listings.items():
        for name in sorted(listing.links):
            if _pull_link(remote, local, kind, dataset, name):
                stats.links += 1
    stats.seconds = time.monotonic() - start
    return stats


def _get(remote: RemoteStore, rpath: str, lpath: Path) -> None:
    try:
        remote.fs.get_file(rpath, str(lpath))
    except Exception as exc:
        exc.add_note(f"while downloading {rpath} from store {remote.url}")
        raise


def _pull_unit(remote: RemoteStore, local: Path, unit: str, files: list[str]) -> int:
    """Download one unit into a hidden temp folder beside it, then rename it into place."""
    target = local / unit
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in target.parent.glob(".tmp-pull-*"):  # a killed pull's leftovers
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-pull-", dir=target.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the store is shared with readers
    size = 0
    try:
        for rel in files:  # marker last
            dest = tmp / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            _get(remote, remote.path(unit, rel), dest)
            size += dest.stat().st_size
        _remove(target)  # an incomplete local unit (interrupted write) is replaced
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return size


def _pull_link(remote: RemoteStore, local: Path, kind: UnitKind, dataset: str,
               name: str) -> bool:
    """Point the local symlink where the remote .link says, if that unit is here."""
    raw = remote.fs.cat_file(remote.path(kind.top, dataset, name + LINK_SUFFIX))
    target = _link_target(remote, kind, dataset, name, bytes(raw).decode("utf-8").strip())
    folder = local / kind.top / dataset
    if not _complete_local(local, f"{kind.top}/{dataset}/{target}", kind.marker):
        return False
    link = folder / name
    if link.is_symlink() and os.readlink(link) == target:
        return False
    tmp = folder / f".{name}-pull-{secrets.token_hex(4)}"
    os.symlink(target, tmp, target_is_directory=True)
    try:
        os.replace(tmp, link)
    finally:
        if tmp.is_symlink():
            tmp.unlink()
    return True


# ------------------------------------------------------------------------------- push


def push(
    remote: RemoteStore, local: Path, dataset: str, *, on_unit: OnUnit | None = None
) -> SyncStats:
    """Bring the remote store up to date with ``local`` for ``dataset``.

    Uploads every complete local unit of the dataset not complete remotely (its marker
    last), then ``warehouse.duckdb`` (checkpointed first if a write-ahead log is left
    beside it; uploaded to a temp name, then moved), then the ``.link`` pointer files.
    ``on_unit(path)`` is called as in `pull`.
    """
    _check_dataset(dataset)
    start = time.monotonic()
    stats = SyncStats()
    listings = {kind: _list_remote(remote, kind, dataset) for kind in UNIT_KINDS}

    for kind, listing in listings.items():
        for unit in _local_units(local, kind, dataset):
            if kind.marker in listing.units.get(unit, []):
                stats.skipped += 1
                continue
            if on_unit is not None:
                on_unit(unit)
            files = _marker_last(_unit_files(local / unit), kind.marker)
            for parent in sorted({remote.path(unit, *f.split("/")[:-1]) for f in files}):
                remote.fs.makedirs(parent, exist_ok=True)
            for rel in files:
                _put(remote, local / unit / rel, remote.path(unit, rel))
                stats.bytes += (local / unit / rel).stat().st_size
            stats.units += 1
            stats.files += len(files)

    wh_local = local / WAREHOUSE_FILE
    if wh_local.is_file():
        if on_unit is not None:
            on_unit(WAREHOUSE_FILE)
        if (local / _WAL).exists():  # a crashed writer: fold the log into the file
            with warehouse.connect(wh_local) as con:
                con.execute("CHECKPOINT")
        _put_replace(remote, wh_local, WAREHOUSE_FILE)
        stats.warehouse = True
        stats.bytes += wh_local.stat().st_size

    for kind, listing in listings.items():
        if kind.link is not None and _push_link(remote, local, kind, dataset, listing):
            stats.links += 1
    stats.seconds = time.monotonic() - start
    return stats


def _put(remote: RemoteStore, lpath: Path, rpath: str) -> None:
    try:
        remote.fs.put_file(str(lpath), rpath)
    except Exception as exc:
        exc.add_note(f"while uploading {lpath} to {rpath} in store {remote.url}")
        raise


def _put_replace(remote: RemoteStore, lpath: Path, *parts: str) -> None:
    """Upload to a hidden temp name beside the target, then move it over the target."""
    final = remote.path(*parts)
    tmp = remote.path(*parts[:-1], f".tmp-push-{secrets.token_hex(4)}-{parts[-1]}")
    remote.fs.makedirs(remote.path(*parts[:-1]), exist_ok=True)
    try:
        _put(remote, lpath, tmp)
        remote.fs.mv(tmp, final)
    except BaseException:
        with contextlib.suppress(Exception):  # best effort: the original error matters
            if remote.fs.exists(tmp):
                remote.fs.rm_file(tmp)
        raise


def _push_link(remote: RemoteStore, local: Path, kind: UnitKind, dataset: str,
               listing: _Listing) -> bool:
    """Write ``<link>.link`` if the local symlink names a complete unit and it changed."""
    assert kind.link is not None
    link = local / kind.top / dataset / kind.link
    if not link.is_symlink():
        return False
    target = os.readlink(link)
    if "/" in target or not fnmatchcase(target, kind.levels[0]) or not _visible([target]) \
            or not _complete_local(local, f"{kind.top}/{dataset}/{target}", kind.marker):
        return False  # not a pointer to a unit we pushed: leave the remote one alone
    name = kind.link + LINK_SUFFIX
    if kind.link in listing.links:
        current = bytes(remote.fs.cat_file(remote.path(kind.top, dataset, name)))
        if current.decode("utf-8", errors="replace").strip() == target:
            return False
    with tempfile.TemporaryDirectory(prefix=".tmp-link-", dir=local) as tmp:
        text = Path(tmp) / name
        text.write_text(target + "\n", encoding="utf-8")
        _put_replace(remote, text, kind.top, dataset, name)
    return True
