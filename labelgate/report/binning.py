"""Histogram counts without matplotlib: the report's section builders bin a column of a
million values here, so that the plot they hand over is a few counts (cheap to hash for
the plot cache, `labelgate.report.plot_cache`) and drawing it sorts nothing."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["bin_counts"]


def bin_counts(
    values: Sequence[float] | np.ndarray[Any, Any],
    *,
    flagged: Sequence[bool] | np.ndarray[Any, Any] | None = None,
    bins: int = 25,
    value_range: tuple[float, float] = (0.0, 1.0),
) -> tuple[list[int], list[int] | None]:
    """The finite `values`' counts in `bins` equal bins over `value_range`; with `flagged`
    (one flag per value), the unflagged values' counts and the flagged ones' (else None).

    A bin is ``[left, right)`` on the edges ``np.linspace(*value_range, bins + 1)``, the
    last one closed; values outside the range are left out: matplotlib's ``hist`` with
    those edges counts the same. numpy's equal-bin path computes each value's bin by
    arithmetic and corrects it against those edges, so nothing is sorted.
    """
    vals = np.asarray(values, dtype=np.float64)
    keep = np.isfinite(vals)
    low, high = float(value_range[0]), float(value_range[1])

    def count(part: np.ndarray[Any, Any]) -> list[int]:
        hist, _ = np.histogram(part, bins=bins, range=(low, high))
        return [int(c) for c in hist]

    if flagged is None:
        return count(vals[keep]), None
    flag = np.asarray(flagged, dtype=bool)
    return count(vals[keep & ~flag]), count(vals[keep & flag])
