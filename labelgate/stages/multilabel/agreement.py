"""Agreement on sets of tags: Krippendorff's alpha with the MASI distance, and per-tag
Cohen's kappa between annotator pairs.

`masi_distance` is Passonneau's (2006) Measuring Agreement on Set-valued Items, as nltk's
``nltk.metrics.distance.masi_distance`` computes it (tests compare the two, and the alpha
with nltk's ``AnnotationTask(distance=masi_distance).alpha()``); written here because
``krippendorff`` takes no custom distance and nltk is not a runtime dependency.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

Distance = Callable[[Any, Any], float]


def masi_distance(a: frozenset[str], b: frozenset[str]) -> float:
    """1 - Jaccard x monotonicity (1 equal, 2/3 one a subset of the other, 1/3 they
    overlap, 0 disjoint), as nltk; two empty sets are 0 apart."""
    if a == b:
        return 0.0
    inter, union = len(a & b), len(a | b)
    if a <= b or b <= a:
        m = 2 / 3
    elif inter:
        m = 1 / 3
    else:
        m = 0.0
    return 1.0 - (inter / union) * m


def krippendorff_alpha(units: Sequence[Sequence[Hashable]], distance: Distance) -> float:
    """Krippendorff's alpha over ``units`` (one list of values per item, one value per
    annotator who labelled it) with any ``distance`` (d(v, v) = 0).

    Items with fewer than two values are not pairable and are left out. NaN when fewer
    than two pairable values, or when every pairable value is the same (no expected
    disagreement).
    """
    units = [u for u in units if len(u) >= 2]
    values = sorted({v for u in units for v in u}, key=repr)
    index = {v: i for i, v in enumerate(values)}
    k = len(values)
    if k == 0:
        return float("nan")
    d = np.array([[distance(x, y) for y in values] for x in values], dtype=np.float64)
    coincidence = np.zeros((k, k), dtype=np.float64)
    for u in units:
        c = np.zeros(k, dtype=np.float64)
        for v in u:
            c[index[v]] += 1
        pairs = np.outer(c, c) - np.diag(c)  # ordered pairs of distinct coders
        coincidence += pairs / (len(u) - 1)
    n_v = coincidence.sum(axis=1)
    n = n_v.sum()
    if n < 2:
        return float("nan")
    observed = float((coincidence * d).sum()) / n
    expected = float((np.outer(n_v, n_v) * d).sum()) / (n * (n - 1))
    if expected == 0:
        return float("nan")
    return float(1.0 - observed / expected)


@dataclass(frozen=True)
class TagAgreement:
    """Agreement on the annotators' tag sets.

    ``alpha_masi``: Krippendorff's alpha with the MASI distance; ``per_tag``: tag, items,
    pairs (annotator pairs with enough shared items), kappa (their mean Cohen's kappa on
    the tag's presence), positive (share of labels with the tag); ``summary``: items,
    annotators, labels, items with two or more labels.
    """

    alpha_masi: float
    per_tag: pl.DataFrame
    summary: dict[str, Any]

    @property
    def min_tag_kappa(self) -> float:
        k = self.per_tag.get_column("kappa").drop_nulls().drop_nans()
        return float(k.min()) if k.len() else float("nan")  # type: ignore[arg-type]


def _pair_kappas(table: Mapping[tuple[str, str], frozenset[str]], annotators: list[str],
                 tag: str, *, min_shared: int) -> list[float]:
    from sklearn.metrics import cohen_kappa_score

    by_annotator: dict[str, dict[str, bool]] = {}
    for (item, who), tags in table.items():
        by_annotator.setdefault(who, {})[item] = tag in tags
    out = []
    for a, b in itertools.combinations(annotators, 2):
        shared = sorted(set(by_annotator.get(a, {})) & set(by_annotator.get(b, {})))
        if len(shared) < min_shared:
            continue
        x = [by_annotator[a][i] for i in shared]
        y = [by_annotator[b][i] for i in shared]
        if len(set(x) | set(y)) < 2:
            continue  # both always (or never) give it: kappa undefined
        out.append(float(cohen_kappa_score(x, y)))
    return out


def tag_agreement(
    annotations: pl.DataFrame, *, item_column: str, annotator_column: str,
    tags_column: str, tags: Sequence[str] | None = None, min_shared_items: int = 10,
) -> TagAgreement:
    """Agreement over a long frame of annotations (one row per item x annotator, the tags
    as ``List(String)``; a repeated item x annotator keeps its last row).

    Parameters
    ----------
    annotations : pl.DataFrame
        (m, >= 3): item, annotator, tags.
    tags : sequence of str, optional
        The tags to report κ for (default: every tag seen).
    min_shared_items : int
        Fewest items two annotators both labelled for their κ to count.
    """
    rows = annotations.select(
        pl.col(item_column).cast(pl.String), pl.col(annotator_column).cast(pl.String),
        pl.col(tags_column),
    ).rows()
    table: dict[tuple[str, str], frozenset[str]] = {
        (i, a): frozenset(t or ()) for i, a, t in rows}
    per_item: dict[str, list[frozenset[str]]] = {}
    for (item, _), t in table.items():
        per_item.setdefault(item, []).append(t)
    alpha = krippendorff_alpha(list(per_item.values()), masi_distance)
    annotators = sorted({a for _, a in table})
    seen = Counter(t for s in table.values() for t in s)
    names = list(tags) if tags is not None else sorted(seen)
    per_tag = []
    for tag in names:
        kappas = _pair_kappas(table, annotators, tag, min_shared=min_shared_items)
        per_tag.append({
            "tag": tag, "pairs": len(kappas),
            "kappa": float(np.mean(kappas)) if kappas else None,
            "positive": seen.get(tag, 0) / len(table) if table else 0.0,
        })
    frame = pl.DataFrame(per_tag, schema={"tag": pl.String, "pairs": pl.Int64,
                                          "kappa": pl.Float64, "positive": pl.Float64})
    summary = {"items": len(per_item), "annotators": len(annotators), "labels": len(table),
               "items_with_two_or_more": sum(len(v) >= 2 for v in per_item.values())}
    return TagAgreement(alpha, frame, summary)
