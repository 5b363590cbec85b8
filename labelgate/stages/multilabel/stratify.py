"""Iterative stratification over tags (Sechidis, Tsoumakas and Vlahavas, "On the
stratification of multi-label data", ECML PKDD 2011), for split units of any size and
with splits already partly filled.

Written here because the packaged implementation (``iterative-stratification``) works on
single rows only, knows neither units nor earlier (sticky) assignments, and installs a
top-level ``tests`` package that shadows this project's own. The tests check the tag
balance it gives against a seeded random assignment.

The algorithm: each split wants ``fraction x total`` rows and, for each tag,
``fraction x rows with the tag`` (less what sticky units already put there). Repeatedly take
the tag with the fewest units left to place (ties: the earlier tag), and give each of its
units (in a seeded order) to the split that wants that tag most, ties to the split that
wants the most rows, then to the more held-out split. Units without tags go last, each to
the split that wants the most rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]


def _pick(want_tag: npt.NDArray[np.float64], want_rows: npt.NDArray[np.float64],
          open_: npt.NDArray[np.bool_]) -> int:
    """The split that wants the tag most; ties: most rows wanted; then the last (most
    held-out) split."""
    best = -1
    for j in range(len(want_rows) - 1, -1, -1):
        if not open_[j]:
            continue
        if best < 0 or (want_tag[j], want_rows[j]) > (want_tag[best], want_rows[best]):
            best = j
    return best


def iterative_stratification(
    counts: npt.NDArray[Any], sizes: npt.NDArray[Any], fractions: Sequence[float], *,
    seed: int = 13, filled_counts: npt.NDArray[Any] | None = None,
    filled_sizes: npt.NDArray[Any] | None = None,
) -> IntArray:
    """Assign each unit to a split.

    Parameters
    ----------
    counts : array (n_units, n_tags)
        Rows of the unit with each tag.
    sizes : array (n_units,)
        Rows in each unit.
    fractions : sequence of float (n_splits,)
        Target share of each split (sum 1), in held-out order (the last is most held out).
        A split with fraction 0 gets no unit.
    seed : int
        Seeds the order in which a tag's units are placed.
    filled_counts, filled_sizes : arrays (n_splits, n_tags) and (n_splits,), optional
        What sticky units already put in each split (rows with each tag, rows).

    Returns
    -------
    array (n_units,)
        The split index of each unit.
    """
    counts = np.asarray(counts, dtype=np.float64)
    sizes = np.asarray(sizes, dtype=np.float64)
    n, k = counts.shape
    r = np.asarray(fractions, dtype=np.float64)
    s = len(r)
    fc = np.zeros((s, k)) if filled_counts is None else np.asarray(filled_counts, np.float64)
    fs = np.zeros(s) if filled_sizes is None else np.asarray(filled_sizes, np.float64)
    want_tag = r[:, None] * (counts.sum(axis=0) + fc.sum(axis=0))[None, :] - fc
    want_rows = r * (sizes.sum() + fs.sum()) - fs
    open_ = r > 0
    order = np.random.default_rng(seed).permutation(n)
    has = counts[order] > 0  # (n, k) in the seeded order
    members = [order[has[:, j]] for j in range(k)]
    left = has.sum(axis=0).astype(np.int64)
    out = np.full(n, -1, dtype=np.int64)
    while True:
        active = np.flatnonzero(left > 0)
        if active.size == 0:
            break
        tag = int(active[np.argmin(left[active])])
        for u in members[tag]:
            if out[u] >= 0:
                continue
            j = _pick(want_tag[:, tag], want_rows, open_)
            out[u] = j
            want_tag[j] -= counts[u]
            want_rows[j] -= sizes[u]
            left -= (counts[u] > 0)
    for u in order:
        if out[u] < 0:
            j = _pick(want_rows, want_rows, open_)
            out[u] = j
            want_rows[j] -= sizes[u]
    return out


def tag_share_deviation(y: npt.NDArray[Any], split: npt.NDArray[Any],
                        fractions: Sequence[float]) -> float:
    """The largest |share of a tag's rows in a split - the split's fraction| over tags and
    splits: 0 is perfect balance. ``y`` (n, k) 0/1 rows x tags, ``split`` (n,) indices."""
    y = np.asarray(y)
    totals = y.sum(axis=0)
    worst = 0.0
    for j, f in enumerate(fractions):
        in_split = y[np.asarray(split) == j].sum(axis=0)
        share = np.divide(in_split, totals, out=np.full(len(totals), f, dtype=np.float64),
                          where=totals > 0)
        worst = max(worst, float(np.abs(share - f).max(initial=0.0)))
    return worst
