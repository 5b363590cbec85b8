"""What the review modules share: the Label Studio id field and the column check."""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from labelgate.errors import InputError

ID_FIELD = "item_id"  # the task data field holding the item id in Label Studio exports


def _require(frame: pl.DataFrame, columns: Sequence[str], *, what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputError(f"{what}: missing column(s) {missing}; the frame has {frame.columns}")
