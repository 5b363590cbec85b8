"""The published versions of a dataset: which is ``current``, their manifests, their list
and the rows that differ between two (`labelgate.stages.publish` writes them; it re-exports
these)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import polars as pl

from labelgate.errors import InputError

MANIFEST = "manifest.json"
CURRENT = "current"
_VERSION_DIR = re.compile(r"^v([0-9]+)$")
_SPLIT_ORDER = {"train": 0, "validation": 1, "test": 2}


def versions(root: Path) -> list[int]:
    if not root.is_dir():
        return []
    found = (_VERSION_DIR.match(p.name) for p in root.iterdir() if p.is_dir())
    return sorted(int(m.group(1)) for m in found if m)


def split_sort_key(name: str) -> tuple[int, str]:
    return (_SPLIT_ORDER.get(name, 3), name)


def current_version(root: Path | str) -> int | None:
    """The version ``current`` points to, or None."""
    link = Path(root) / CURRENT
    if not link.is_symlink():
        return None
    m = _VERSION_DIR.match(Path(os.readlink(link)).name)
    return int(m.group(1)) if m else None


def read_manifest(root: Path | str, version: int | str) -> dict[str, Any]:
    """The manifest of ``version`` (an int, ``"v3"``, ``"3"`` or ``"current"``)."""
    n = _resolve(Path(root), version)
    path = Path(root) / f"v{n}" / MANIFEST
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _resolve(root: Path, version: int | str) -> int:
    if isinstance(version, int):
        n: int | None = version
    elif version == CURRENT:
        n = current_version(root)
        if n is None:
            raise InputError(f"{root}: no current version (nothing published yet)")
    else:
        m = re.fullmatch(r"v?([0-9]+)", version)
        n = int(m.group(1)) if m else None
    if n is None or n not in versions(root):
        raise InputError(f"{root}: no version {version!r}; published versions: "
                         f"{['v' + str(v) for v in versions(root)]}")
    return n


def list_versions(root: Path | str) -> pl.DataFrame:
    """One row per version: version, run_id, spec_hash, rows, rows_<split>..., gate_passed,
    is_current, content_hash; ordered by version."""
    root = Path(root)
    current = current_version(root)
    rows: list[dict[str, Any]] = []
    split_names: set[str] = set()
    for n in versions(root):
        path = root / f"v{n}" / MANIFEST
        if not path.exists():
            continue
        m = json.loads(path.read_text(encoding="utf-8"))
        split_names |= set(m["splits"])
        rows.append({
            "version": n, "run_id": m["run_id"], "spec_hash": m["spec_hash"],
            "rows": m["rows"], **{f"rows_{s}": v["rows"] for s, v in m["splits"].items()},
            "gate_passed": bool(m["gate"]["passed"]), "is_current": n == current,
            "content_hash": m["content_hash"],
        })
    split_cols = [f"rows_{s}" for s in sorted(split_names, key=split_sort_key)]
    schema: dict[str, Any] = {
        "version": pl.Int64, "run_id": pl.String, "spec_hash": pl.String, "rows": pl.Int64,
        **dict.fromkeys(split_cols, pl.Int64),
        "gate_passed": pl.Boolean, "is_current": pl.Boolean, "content_hash": pl.String,
    }
    return pl.DataFrame(rows, schema=schema)


def diff_versions(
    root: Path | str,
    a: int | str,
    b: int | str,
    *,
    key_column: str,
    label_column: str | None,
) -> pl.DataFrame:
    """Per split of ``a`` or ``b``: rows_a, rows_b, added, removed, relabeled (read from the
    Parquet files; a key that changed split is removed from one and added to the other)."""
    root = Path(root)
    va, vb = _resolve(root, a), _resolve(root, b)

    def load(v: int) -> dict[str, pl.DataFrame]:
        folder = root / f"v{v}"
        manifest = read_manifest(root, v)
        if "parquet" not in manifest["formats"]:
            raise InputError(f"{folder}: no Parquet files (formats {manifest['formats']}); "
                             "diff reads Parquet")
        out = {}
        for name in manifest["splits"]:
            df = pl.read_parquet(folder / f"{name}.parquet")
            missing = [c for c in (key_column, label_column)
                       if c is not None and c not in df.columns]
            if missing:
                raise InputError(f"{folder / (name + '.parquet')}: no column(s) {missing}; "
                                 f"it has {df.columns}")
            label = (pl.col(label_column).cast(pl.String) if label_column is not None
                     else pl.lit(None, dtype=pl.String))
            out[name] = df.select(pl.col(key_column).alias("k"), label.alias("y"))
        return out

    left, right = load(va), load(vb)
    empty = pl.DataFrame(schema={"k": pl.String, "y": pl.String})
    rows = []
    for name in sorted(set(left) | set(right), key=split_sort_key):
        x, y = left.get(name, empty), right.get(name, empty)
        if x.schema["k"] != y.schema["k"]:
            x = x.with_columns(pl.col("k").cast(pl.String))
            y = y.with_columns(pl.col("k").cast(pl.String))
        both = x.join(y, on="k", how="inner", suffix="_b")
        rows.append({
            "split": name, "rows_a": x.height, "rows_b": y.height,
            "added": y.join(x, on="k", how="anti").height,
            "removed": x.join(y, on="k", how="anti").height,
            "relabeled": both.filter(pl.col("y").ne_missing(pl.col("y_b"))).height,
        })
    return pl.DataFrame(rows, schema={"split": pl.String, "rows_a": pl.Int64,
                                      "rows_b": pl.Int64, "added": pl.Int64,
                                      "removed": pl.Int64, "relabeled": pl.Int64})
