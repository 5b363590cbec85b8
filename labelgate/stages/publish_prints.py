"""Fingerprints of a published version's rows, kept beside the store (issue 26): a night
proves that a split's rows begin with ``current``'s by hashing its own rows, not by reading
``current``'s Parquet file back and comparing it value by value.

A fingerprint is kept per published content (``<content_hash>.json`` in a folder the caller
names, e.g. the store's cache; only the newest is kept). Per split it holds the row count,
the schema and the sha256 of the rows' 64-bit hashes (polars' ``hash_rows`` with a seed
drawn at random when the first fingerprint is made and kept with it, so rows cannot be
made to collide without reading the store). ``hash_rows`` is stable within one polars
version only: a fingerprint made by another polars (or missing, unreadable, of another
content, of a schema with categorical or object columns) proves nothing, and publish reads
``current``'s rows back as before (`labelgate.stages.publish_reuse.Previous.prefix_rows`).
Equality is polars' (as ``DataFrame.equals``, which the read-back uses): null equals null,
and -0.0 would equal 0.0, whose JSON differs; so neither proof holds for rows with a
negative zero (`negative_zeros`: the split is then written whole).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

__all__ = ["RowPrints", "kept_prints", "negative_zeros"]

FORMAT = "labelgate-row-prints/1"
_HEX = re.compile(r"[0-9a-f]{64}")  # a manifest's content_hash
_UNHASHED = (pl.Categorical, pl.Enum, pl.Object)  # hashed by their codes or not at all


def _schema(df: pl.DataFrame) -> list[list[str]]:
    return [[name, str(dtype)] for name, dtype in df.schema.items()]


def _hashable(dtype: Any) -> bool:
    """Whether ``hash_rows`` hashes values of ``dtype`` (not codes or object ids)."""
    if isinstance(dtype, _UNHASHED):
        return False
    if isinstance(dtype, pl.List | pl.Array):
        return _hashable(dtype.inner)
    if isinstance(dtype, pl.Struct):
        return all(_hashable(f.dtype) for f in dtype.fields)
    return True


def _floats_inside(dtype: Any) -> bool:
    if isinstance(dtype, pl.List | pl.Array):
        return dtype.inner.is_float() or _floats_inside(dtype.inner)
    if isinstance(dtype, pl.Struct):
        return any(f.dtype.is_float() or _floats_inside(f.dtype) for f in dtype.fields)
    return False


def negative_zeros(df: pl.DataFrame) -> bool:
    """Whether a float of ``df`` may be -0.0, which polars' hashes and equality take for
    0.0 while its JSON differs ("-0.0"): True when a float column holds one, and for floats
    inside lists or structs (not looked into)."""
    if any(_floats_inside(t) for t in df.schema.values()):
        return True
    floats = [c for c, t in df.schema.items() if t.is_float()]
    if not floats or df.height == 0:
        return False
    found = df.select(pl.any_horizontal(
        ((pl.col(c) == 0) & ((1 / pl.col(c)) < 0)).any() for c in floats))
    return bool(found.item())


@dataclass
class RowPrints:
    """``current``'s fingerprints (``kept``: split -> ``{"rows", "schema", "digest"}``, empty
    when there is none to use) and this publish's, made as its splits are written."""

    folder: Path
    seed: int
    kept: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    made: dict[str, dict[str, Any]] = field(default_factory=dict)

    def hashes(self, name: str, df: pl.DataFrame) -> np.ndarray | None:
        """The rows' hashes of split ``name`` (its fingerprint noted for `save`); None
        when a column's type is not hashed by value."""
        if not all(_hashable(t) for t in df.schema.values()):
            return None
        try:
            hashed = df.hash_rows(self.seed).to_numpy()
        except pl.exceptions.PolarsError:
            return None
        self.made[name] = {"rows": df.height, "schema": _schema(df),
                           "digest": hashlib.sha256(hashed.data).hexdigest(),
                           "negative_zeros": negative_zeros(df)}
        return hashed

    def compares(self, name: str, hashed: np.ndarray | None) -> bool:
        """Whether ``current``'s split ``name`` has a fingerprint to compare rows hashed
        (``hashed``, not None) with."""
        return hashed is not None and name in self.kept

    def prefix_rows(self, name: str, df: pl.DataFrame, hashed: np.ndarray | None) -> int | None:
        """How many first rows of ``df`` (split ``name``, ``hashed`` its `hashes`) are
        ``current``'s rows of the split, all in order, by their fingerprint; None when the
        fingerprint says they are not, or there is none to compare."""
        old = self.kept.get(name)
        if old is None or hashed is None:
            return None
        m = old.get("rows")
        if not isinstance(m, int) or not 0 <= m <= df.height or old.get("schema") != _schema(df):
            return None
        if old.get("negative_zeros") is not False or self.made.get(name, {}).get(
                "negative_zeros", True):
            return None  # -0.0 hashes as 0.0: not proved (no note: a fingerprint made before)
        return m if hashlib.sha256(hashed[:m].data).hexdigest() == old.get("digest") else None

    def save(self, content_hash: str) -> None:
        """Keep this publish's fingerprints as ``<content_hash>.json`` (written whole or
        not at all) and remove the others; a folder that cannot be written is skipped (the
        next publish then reads ``current``'s rows back)."""
        if not self.made:
            return
        data = {"format": FORMAT, "polars": pl.__version__, "content_hash": content_hash,
                "seed": self.seed, "splits": self.made}
        name = f"{content_hash}.json"
        tmp = self.folder / f".{name}.{os.getpid()}.tmp"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(data, sort_keys=True), encoding="utf-8")
            os.replace(tmp, self.folder / name)
            for other in self.folder.iterdir():
                if other.name != name:
                    other.unlink(missing_ok=True)
        except OSError:
            with suppress(OSError):  # the folder may not be one
                tmp.unlink(missing_ok=True)


def kept_prints(folder: Path | None, content_hash: object) -> RowPrints | None:
    """The fingerprints kept in ``folder`` for the content ``content_hash`` (``current``'s;
    None: no current), or fresh ones (a new seed, nothing kept) when there are none this
    polars can use; None without a folder."""
    if folder is None:
        return None
    fresh = RowPrints(folder, secrets.randbits(64))
    if not isinstance(content_hash, str) or not _HEX.fullmatch(content_hash):
        return fresh
    try:
        data = json.loads((folder / f"{content_hash}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return fresh
    if not isinstance(data, dict) or not isinstance(seed := data.get("seed"), int):
        return fresh
    usable = (0 <= seed < 2**64 and data.get("format") == FORMAT
              and data.get("polars") == pl.__version__
              and data.get("content_hash") == content_hash
              and isinstance(data.get("splits"), dict))
    return RowPrints(folder, seed, kept=data["splits"]) if usable else fresh
