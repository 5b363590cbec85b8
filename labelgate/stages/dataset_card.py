"""The dataset card of a published version: ``README.md`` with the Hugging Face YAML header.

The header's ``configs`` names each split's Parquet file, so ``datasets.load_dataset`` on
the version folder loads the splits as published; ``dataset_info`` gives the features
(when every column has a Hugging Face dtype) and the rows per split. The body says what
was checked and what the gate said.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import polars as pl
import yaml

# polars dtype -> the Hugging Face `Value` dtype of a feature
_HF_DTYPES: dict[type[pl.DataType], str] = {
    pl.String: "string", pl.Boolean: "bool", pl.Int8: "int8", pl.Int16: "int16",
    pl.Int32: "int32", pl.Int64: "int64", pl.UInt8: "uint8", pl.UInt16: "uint16",
    pl.UInt32: "uint32", pl.UInt64: "uint64", pl.Float32: "float32", pl.Float64: "float64",
}


def features(schema: Mapping[str, pl.DataType]) -> list[dict[str, str]] | None:
    """``dataset_info.features`` for `schema`, or None when a column has no simple
    Hugging Face dtype (lists, structs, dates: then the header leaves features out and
    the loader infers them)."""
    out = []
    for name, dtype in schema.items():
        hf = _HF_DTYPES.get(type(dtype))
        if hf is None:
            return None
        out.append({"name": name, "dtype": hf})
    return out


def card_header(
    manifest: Mapping[str, Any], *, schema: Mapping[str, pl.DataType], name: str,
    license: str | None, suffix: str = "parquet",
) -> dict[str, Any]:
    """The YAML header as a dict: licence, name, the config naming each split's
    ``<split>.<suffix>`` file, and dataset_info."""
    splits = manifest["splits"]
    header: dict[str, Any] = {
        "license": license or "other",
        "pretty_name": name,
        "configs": [{"config_name": "default", "data_files": [
            {"split": s, "path": f"{s}.{suffix}"} for s in splits]}],
    }
    info: dict[str, Any] = {"splits": [
        {"name": s, "num_examples": int(v["rows"])} for s, v in splits.items()]}
    feats = features(schema)
    if feats is not None:
        info = {"features": feats, **info}
    header["dataset_info"] = info
    return header


def dataset_card(
    manifest: Mapping[str, Any], *, schema: Mapping[str, pl.DataType], name: str,
    license: str | None = None, description: str | None = None, suffix: str = "parquet",
) -> str:
    """``README.md`` for a published version.

    Parameters
    ----------
    manifest
        The version's manifest (``splits`` with rows and classes, ``gate``, ``metrics``,
        ``version``, ``run_id``, ``content_hash``).
    schema
        The published Parquet files' columns and dtypes.
    name, license, description
        From the spec (``name``, ``publish.license``, ``publish.description``).
    suffix
        The data files the config names: ``parquet``, or ``jsonl`` when no Parquet file
        is published.
    """
    header = yaml.safe_dump(
        card_header(manifest, schema=schema, name=name, license=license, suffix=suffix),
        sort_keys=False, allow_unicode=True)
    lines = [f"---\n{header}---", "", f"# {name}", ""]
    if description:
        lines += [description.strip(), ""]
    lines += [f"Version v{manifest['version']}, published by labelgate run "
              f"`{manifest['run_id']}` (content hash `{manifest['content_hash'][:16]}`).", ""]
    lines += ["## Splits", "", "| split | rows | classes |", "|---|---|---|"]
    for split, info in manifest["splits"].items():
        classes = ", ".join(f"{k} {v}" for k, v in (info.get("classes") or {}).items())
        lines.append(f"| {split} | {info['rows']} | {classes or '—'} |")
    lines += ["", "## What was checked", "", "The gate passed:", ""]
    for check in (manifest.get("gate") or {}).get("checks", []):
        lines.append(f"- {check.get('message') or check.get('name') or check.get('check')}")
    if not (manifest.get("gate") or {}).get("checks"):
        lines.append("- no thresholds were set")
    lines += ["", "Every row was checked against the spec's contract; the run's report "
              "(report.html) has the quarantine, the label issues and the rest.", ""]
    return "\n".join(lines)
