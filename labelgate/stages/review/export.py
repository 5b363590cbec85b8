"""Exporters: the review queue as Label Studio tasks (with its labeling config), CSV or JSONL.

The CSV and JSONL sheets carry empty ``label`` / ``reviewer`` columns that
``labelgate.stages.review.corrections.read_corrections`` reads back.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

import polars as pl

from labelgate.errors import InputError
from labelgate.stages.review.common import ID_FIELD, _require

FROM_NAME, TO_NAME = "label", "text"  # control names in the labeling config


def labeling_config(classes: Sequence[str]) -> str:
    """Label Studio labeling config (XML) for single-choice text classification."""
    if not classes:
        raise InputError("review: no classes for the labeling config")
    choices = "\n".join(f"    <Choice value={quoteattr(str(c))}/>" for c in classes)
    return (
        "<View>\n"
        f'  <Text name="{TO_NAME}" value="$text"/>\n'
        '  <Header value="Why this item: $reason"/>\n'
        f'  <Choices name="{FROM_NAME}" toName="{TO_NAME}" choice="single" showInline="true">\n'
        f"{choices}\n"
        "  </Choices>\n"
        "</View>\n"
    )


def _with_text(queue: pl.DataFrame, items: pl.DataFrame, *, id_column: str,
               text_column: str) -> pl.DataFrame:
    _require(items, [id_column, text_column], what="items")
    texts = items.select(
        pl.col(id_column).cast(pl.String).alias("id"), pl.col(text_column).cast(pl.String)
        .alias("_text"),
    ).unique("id", keep="first")
    joined = queue.join(texts, on="id", how="left", maintain_order="left")
    missing = joined.filter(pl.col("_text").is_null()).get_column("id").to_list()
    if missing:
        raise InputError(
            f"items: no text for queued id(s) {missing[:5]} (column {text_column!r}); "
            "the queue and the items come from different runs?"
        )
    return joined


def _prediction(version: str, label: str, score: float | None) -> dict[str, Any]:
    pred: dict[str, Any] = {
        "model_version": version,
        "result": [{
            "from_name": FROM_NAME, "to_name": TO_NAME, "type": "choices",
            "value": {"choices": [label]},
        }],
    }
    if score is not None and math.isfinite(score):
        pred["score"] = float(score)
    return pred


def to_label_studio(
    queue: pl.DataFrame,
    items: pl.DataFrame,
    *,
    text_column: str,
    classes: Sequence[str],
    id_column: str = "id",
) -> tuple[list[dict[str, Any]], str]:
    """(tasks, config_xml): Label Studio tasks in queue order, each with ``data`` (text,
    ``item_id``, reason, priority) and two ``predictions``: the given label
    (model_version ``given``) and the suggested one (``labelgate-suggested``) with their
    model probabilities as scores; and the labeling config for ``classes``."""
    known = set(map(str, classes))
    tasks: list[dict[str, Any]] = []
    for row in _with_text(queue, items, id_column=id_column, text_column=text_column).iter_rows(
        named=True
    ):
        reason = "review" if row["reason"] == "gold" else row["reason"]  # gold stays hidden
        preds = []
        if row["given_label"] is not None and row["given_label"] in known:
            preds.append(_prediction("given", row["given_label"], row["given_probability"]))
        if row["suggested_label"] is not None and row["suggested_label"] in known:
            preds.append(_prediction("labelgate-suggested", row["suggested_label"],
                                     row["suggested_probability"]))
        tasks.append({
            "data": {"text": row["_text"], ID_FIELD: row["id"], "reason": reason,
                     "priority": row["priority"]},
            "predictions": preds,
        })
    return tasks, labeling_config(classes)


def _flat(queue: pl.DataFrame, items: pl.DataFrame, *, id_column: str,
          text_column: str) -> pl.DataFrame:
    joined = _with_text(queue, items, id_column=id_column, text_column=text_column)
    return joined.select(
        "priority", "id", pl.col("_text").alias("text"),
        pl.when(pl.col("reason") == "gold").then(pl.lit("review")).otherwise("reason")
        .alias("reason"),
        "given_label", "suggested_label", "suggested_probability",
        pl.lit(None, pl.String).alias("label"), pl.lit(None, pl.String).alias("reviewer"),
    )


def to_csv(queue: pl.DataFrame, items: pl.DataFrame, path: str | Path, *, text_column: str,
           id_column: str = "id") -> Path:
    """A review sheet: the queue with the text and empty ``label``/``reviewer`` columns that
    ``read_corrections`` reads back."""
    path = Path(path)
    _flat(queue, items, id_column=id_column, text_column=text_column).write_csv(path)
    return path


def to_jsonl(queue: pl.DataFrame, items: pl.DataFrame, path: str | Path, *, text_column: str,
             id_column: str = "id") -> Path:
    """Like ``to_csv``, one JSON object per line."""
    path = Path(path)
    _flat(queue, items, id_column=id_column, text_column=text_column).write_ndjson(path)
    return path
