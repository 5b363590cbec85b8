"""MinHash signatures and LSH candidate pairs for near-duplicate detection
(`labelgate.stages.dedup`'s decisions, in its module docstring, hold here too).

Shingles are hashed in numpy over the UTF-32 code points (a polynomial hash + splitmix64
finalizer: the same on every platform and library version); the signatures come from
rensa (``RMinHash``, Rust), computed in shards of `_CHUNK_ROWS` keys (one part each), so a
Dask cluster can compute them; candidate pairs share an LSH band bucket.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import polars as pl

from labelgate.partition import Mapper, serial_map

SHINGLE_HASH_SEED = 0x5EED_1ABE_C0DE
_WINDOW = 32
_CHUNK_ROWS = 100_000
_VERIFY_CHUNK = 1_000_000

U32Matrix = npt.NDArray[np.uint32]
I64Array = npt.NDArray[np.int64]

def _shingle_hashes(
    texts: pl.Series, *, shingle: int
) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64]]:
    """Flat uint64 hashes of every ``shingle``-character substring, and row offsets.

    The texts are joined and encoded as UTF-32 once, so a shingle is ``shingle`` code
    points; a shorter text is padded with NUL to one shingle. The hash is a polynomial over
    the code points with a splitmix64 finalizer: plain numpy arithmetic, the same on every
    platform and library version.
    """
    padded = texts.fill_null("").str.pad_end(shingle, "\x00")
    lens = padded.str.len_chars().to_numpy().astype(np.int64)
    codes = np.frombuffer("".join(padded.to_list()).encode("utf-32-le"), dtype=np.uint32)
    n_sh = lens - (shingle - 1)
    ends = np.cumsum(n_sh)
    starts = np.cumsum(lens) - lens
    total = int(ends[-1]) if len(ends) else 0
    pos = np.repeat(starts - (ends - n_sh), n_sh) + np.arange(total, dtype=np.int64)
    width = len(codes) - (shingle - 1)  # every window of the joined text, then the valid ones
    h = np.zeros(max(width, 0), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(shingle):
            h *= np.uint64(0x100000001B3)
            h += codes[j : j + width]
        h = _mix64(h[pos] ^ np.uint64(SHINGLE_HASH_SEED))
    offsets = np.zeros(len(lens) + 1, dtype=np.uint64)
    offsets[1:] = ends
    return h, offsets


@dataclass(frozen=True)
class Shard:
    """One part of the MinHash work: a slice of the distinct keys and the settings."""

    keys: pl.Series
    shingle: int
    num_perm: int
    seed: int


def shard_signatures(shard: Shard) -> U32Matrix:
    """MinHash signatures (rows x num_perm, uint32) of one shard's keys (a pure part)."""
    import rensa

    flat, offsets = _shingle_hashes(shard.keys, shingle=shard.shingle)
    mat = rensa.RMinHash.digest_matrix_from_flat_token_hashes(
        flat, offsets, shard.num_perm, shard.seed
    )
    return np.asarray(mat.to_rows(), dtype=np.uint32).reshape(shard.keys.len(), shard.num_perm)


def _signatures(
    keys: pl.Series, *, shingle: int, num_perm: int, seed: int, mapper: Mapper = serial_map
) -> tuple[U32Matrix, npt.NDArray[np.bool_]]:
    """MinHash signatures (n x num_perm, uint32) of character shingles of each key, computed
    in shards of `_CHUNK_ROWS` keys (one part each)."""
    n = keys.len()
    has_text = (keys.str.len_chars().fill_null(0) > 0).to_numpy()
    shards = [Shard(keys.slice(start, _CHUNK_ROWS), shingle, num_perm, seed)
              for start in range(0, n, _CHUNK_ROWS)]
    parts = mapper(shard_signatures, shards, name="minhash")
    sigs = np.concatenate(parts) if parts else np.empty((0, num_perm), dtype=np.uint32)
    return sigs, has_text


def _mix64(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """splitmix64 finalizer (wrapping uint64 arithmetic)."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def band_hash(block: U32Matrix, band: int) -> npt.NDArray[np.uint64]:
    """The LSH bucket of each row of one band's signature columns (n x rows_per_band)."""
    with np.errstate(over="ignore"):
        h = np.full(len(block), np.uint64(band + 1) * np.uint64(0x9E3779B97F4A7C15),
                    dtype=np.uint64)
        for j in range(block.shape[1]):
            h *= np.uint64(0x100000001B3)
            h += block[:, j].astype(np.uint64)
        return _mix64(h)


def window_pairs(
    h: npt.NDArray[np.uint64], rank: I64Array, ids: I64Array
) -> npt.NDArray[np.int64]:
    """(a, b) id pairs (a < b) within ``_WINDOW`` places of each other in a bucket: rows
    sorted by (bucket ``h``, ``rank``), each paired with the next ``_WINDOW`` of its bucket."""
    order = np.lexsort((rank, h))
    hs, rs = h[order], ids[order]
    pairs: list[npt.NDArray[np.int64]] = []
    for d in range(1, _WINDOW + 1):
        if d >= len(hs):
            break
        same = hs[d:] == hs[:-d]
        if not same.any():
            break
        pairs.append(np.stack([rs[:-d][same], rs[d:][same]], axis=1))
    if not pairs:
        return np.empty((0, 2), dtype=np.int64)
    allp = np.concatenate(pairs)
    return np.stack([allp.min(axis=1), allp.max(axis=1)], axis=1)


def _candidate_pairs(
    sigs: U32Matrix, has_text: npt.NDArray[np.bool_], *, bands: int, rows: int
) -> npt.NDArray[np.int64]:
    """Unique (a, b) index pairs, a < b, sharing at least one LSH band bucket."""
    idx = np.flatnonzero(has_text).astype(np.int64)
    pairs = [window_pairs(band_hash(sigs[idx, band * rows : (band + 1) * rows], band), idx, idx)
             for band in range(bands)]
    allp = np.concatenate(pairs) if pairs else np.empty((0, 2), dtype=np.int64)
    if not len(allp):
        return np.empty((0, 2), dtype=np.int64)
    code = pl.Series(allp[:, 0] * np.int64(len(sigs)) + allp[:, 1]).unique().sort().to_numpy()
    return np.stack([code // len(sigs), code % len(sigs)], axis=1)


def _estimated_jaccard(sigs: U32Matrix, a: I64Array, b: I64Array) -> npt.NDArray[np.float64]:
    out = np.empty(len(a), dtype=np.float64)
    for s in range(0, len(a), _VERIFY_CHUNK):
        e = s + _VERIFY_CHUNK
        out[s:e] = (sigs[a[s:e]] == sigs[b[s:e]]).mean(axis=1)
    return out
