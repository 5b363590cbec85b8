"""The tags column of task multilabel read as lists, and the tag checks.

A row's tags arrive as a list (Parquet, JSON Lines), a JSON array in a text column, or a
delimited string (``multilabel.delimiter``). `parse_tags` reads them into a sorted list of
distinct strings (a tag repeated in a row counts once) and names what could not be read;
`check_tags` quarantines, with one reason per failure naming the row and the value:

- ``tags_missing``: no tags value (null);
- ``tags_parse``: text that is not a JSON array of strings (no delimiter set), or a list
  holding a null;
- ``unknown_tag``: a tag outside ``multilabel.tags`` (one record per unknown tag);
- ``min_tags`` / ``max_tags``: fewer or more distinct tags than allowed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from labelgate.stages.ingest.readers import BATCH, ROW

TAGS_DTYPE = pl.List(pl.String)
_EXCERPT = 120


@dataclass(frozen=True)
class TagCheckResult:
    """``valid``: the rows that passed, the tags column as ``List(String)``; ``quarantine``:
    one record per failure (the quarantine schema); ``counts``: failures by check."""

    valid: pl.DataFrame
    quarantine: pl.DataFrame
    rows_quarantined: int
    counts: dict[str, int] = field(default_factory=dict)


def _read_one(value: Any, delimiter: str | None) -> tuple[list[str] | None, str | None]:
    """One cell's tags, or None and why it could not be read."""
    if value is None:
        return None, "missing"
    if isinstance(value, list | tuple):
        items: list[Any] = list(value)
    elif delimiter is not None:
        items = [t.strip() for t in str(value).split(delimiter)]
        items = [t for t in items if t]
    else:
        text = str(value).strip()
        try:
            parsed: Any = json.loads(text) if text else None
        except json.JSONDecodeError:
            parsed = None
        if not isinstance(parsed, list):
            return None, ("not a JSON array of tags (a delimited string needs "
                          "multilabel.delimiter)")
        items = parsed
    if any(t is None for t in items):
        return None, "a null tag in the list"
    if any(isinstance(t, dict | list) for t in items):
        return None, "a tag that is not a string"
    return sorted({str(t).strip() for t in items} - {""}), None


def parse_tags(values: pl.Series, *, delimiter: str | None = None) -> tuple[pl.Series, pl.Series]:
    """Each cell of ``values`` (n,) as a sorted list of distinct tags.

    Returns
    -------
    (tags, problem)
        ``tags``: ``List(String)`` (n,), null where the cell could not be read;
        ``problem``: ``String`` (n,), why (``"missing"`` for a null cell), else null.
    """
    out: list[list[str] | None] = []
    why: list[str | None] = []
    for v in values.to_list():
        tags, problem = _read_one(v, delimiter)
        out.append(tags)
        why.append(problem)
    return pl.Series(values.name, out, dtype=TAGS_DTYPE), pl.Series("problem", why,
                                                                    dtype=pl.String)


def _excerpt(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= _EXCERPT else text[: _EXCERPT - 1] + "…"


def _failures(
    rows: pl.DataFrame, tags: pl.Series, problems: pl.Series, *, column: str,
    allowed: Sequence[str] | None, min_tags: int, max_tags: int | None,
) -> list[tuple[int, str, str, str]]:
    """(row position, check, failure value, reason) for every failure, in row order."""
    allowed_set = set(allowed) if allowed is not None else None
    raw = rows.get_column(column).to_list()
    out: list[tuple[int, str, str, str]] = []
    for i, (t, problem) in enumerate(zip(tags.to_list(), problems.to_list(), strict=True)):
        if problem == "missing":
            out.append((i, "tags_missing", "", f"{column} is null; expected a list of tags"))
            continue
        if problem is not None:
            shown = _excerpt(raw[i])
            out.append((i, "tags_parse", shown, f"{column} {shown!r}: {problem}"))
            continue
        assert t is not None
        if allowed_set is not None:
            for tag in t:
                if tag not in allowed_set:
                    near = next((a for a in allowed_set if a.casefold() == tag.casefold()),
                                None)
                    hint = f" (did you mean {near!r}?)" if near else ""
                    out.append((i, "unknown_tag", tag,
                                f"tag {tag!r} is not in multilabel.tags ({len(allowed_set)} "
                                f"allowed){hint}"))
        if len(t) < min_tags:
            out.append((i, "min_tags", json.dumps(t),
                        f"{len(t)} tag(s) {t}; at least {min_tags} required "
                        "(multilabel.min_tags)"))
        if max_tags is not None and len(t) > max_tags:
            out.append((i, "max_tags", json.dumps(t),
                        f"{len(t)} tags {t}; at most {max_tags} allowed (multilabel.max_tags)"))
    return out


def check_tags(
    rows: pl.DataFrame, *, column: str, id_column: str, delimiter: str | None = None,
    allowed: Sequence[str] | None = None, min_tags: int = 1, max_tags: int | None = None,
    source: str = "items",
) -> TagCheckResult:
    """Read ``rows[column]`` as tags and quarantine the rows that fail a tag check.

    Parameters
    ----------
    rows : pl.DataFrame
        Rows (n, k) with ``column``, ``id_column`` and, when present, ``_batch``/``_row``.

    Returns
    -------
    TagCheckResult
        valid (n - q, k) with ``column`` as ``List(String)``; the quarantine records.
    """
    tags, problems = parse_tags(rows.get_column(column), delimiter=delimiter)
    fails = _failures(rows, tags, problems, column=column, allowed=allowed,
                      min_tags=min_tags, max_tags=max_tags)
    bad = sorted({f[0] for f in fails})
    where = pl.DataFrame({"_i": [f[0] for f in fails], "check": [f[1] for f in fails],
                          "failure_value": [f[2] for f in fails],
                          "reason": [f[3] for f in fails]},
                         schema={"_i": pl.UInt32, "check": pl.String,
                                 "failure_value": pl.String, "reason": pl.String})
    indexed = rows.with_row_index("_i")
    keys = indexed.select(
        "_i",
        pl.col(BATCH).cast(pl.String).alias("batch") if BATCH in rows.columns
        else pl.lit(None, pl.String).alias("batch"),
        pl.col(ROW).cast(pl.Int64).alias("row") if ROW in rows.columns
        else pl.lit(None, pl.Int64).alias("row"),
        pl.col(id_column).cast(pl.String).alias("id"),
    )
    quarantine = where.join(keys, on="_i", how="left", maintain_order="left").select(
        pl.lit(source).alias("source"), "batch", "row", "id", pl.lit(column).alias("column"),
        "check", "failure_value", "reason",
    )
    valid = indexed.with_columns(tags).filter(
        ~pl.col("_i").is_in(pl.Series(bad, dtype=pl.UInt32).implode())).drop("_i")
    counts = dict(sorted(where.group_by("check").len().rows()))
    return TagCheckResult(valid, quarantine, len(bad), counts)


def tag_matrix(tags: pl.Series, classes: Sequence[str]) -> Any:
    """A (n, k) 0/1 ``numpy`` matrix: row i has tag ``classes[j]``."""
    import numpy as np

    index = {c: j for j, c in enumerate(classes)}
    y = np.zeros((tags.len(), len(classes)), dtype=np.int8)
    for i, t in enumerate(tags.to_list()):
        for tag in t or ():
            j = index.get(tag)
            if j is not None:
                y[i, j] = 1
    return y
