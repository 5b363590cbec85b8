"""Agreement coefficients of one items x categories count matrix.

Percent agreement, Fleiss' kappa (statsmodels, and the generalized form for unequal label
counts), Gwet's AC1 / AC2, Krippendorff's alpha (the krippendorff package) with a
bootstrap interval, specific agreement per category and the pair confusion matrix; and
``_coefficients``, all of them for one ``EncodedAnnotations`` as the report uses them.
Definitions: ``labelgate.stages.agreement.core``.

The public functions take the items x categories count matrix n[u, k] (how many annotators
gave item u category k), so they also work on "distribution of raters" data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import krippendorff
import numpy as np

from labelgate.stages.agreement.annotations import EncodedAnnotations, FloatArray, IntArray, Level

KappaWeights = Literal["linear", "quadratic"]
NAN = float("nan")


def _pairable(counts: IntArray | FloatArray) -> tuple[FloatArray, FloatArray]:
    n = np.asarray(counts, dtype=np.float64)
    m = n.sum(axis=1)
    keep = m >= 2
    return n[keep], m[keep]


def agreement_weights(values: FloatArray, kind: KappaWeights | None) -> FloatArray:
    """Gwet's weight matrix on category values: identity, linear or quadratic."""
    k = values.shape[0]
    if kind is None or k < 2:
        return np.eye(k)
    diff = np.abs(values[:, None] - values[None, :])
    span = float(values.max() - values.min())
    if kind == "linear":
        return np.asarray(1.0 - diff / span, dtype=np.float64)
    return np.asarray(1.0 - (diff / span) ** 2, dtype=np.float64)


def percent_agreement(counts: IntArray | FloatArray, *, weights: FloatArray | None = None) -> float:
    """Mean over items with >= 2 labels of the share of agreeing (ordered) label pairs."""
    n, m = _pairable(counts)
    if n.shape[0] == 0:
        return NAN
    nw = n if weights is None else n @ weights.T
    per_item = (n * (nw - 1.0)).sum(axis=1) / (m * (m - 1.0))
    return float(per_item.mean())


def _category_shares(counts: IntArray | FloatArray) -> FloatArray:
    n = np.asarray(counts, dtype=np.float64)
    m = n.sum(axis=1)
    rated = m >= 1
    return np.asarray((n[rated] / m[rated, None]).mean(axis=0), dtype=np.float64)


def fleiss_kappa_generalized(counts: IntArray | FloatArray) -> float:
    """Fleiss' kappa for unequal label counts per item (Gwet 2014): pa over items with >= 2
    labels, chance agreement from the mean per-item category shares over all rated items."""
    pa = percent_agreement(counts)
    pi = _category_shares(counts)
    pe = float((pi**2).sum())
    return NAN if math.isnan(pa) or pe >= 1.0 else (pa - pe) / (1.0 - pe)


def gwet_ac(
    counts: IntArray | FloatArray,
    *,
    weights: FloatArray | None = None,
    n_categories: int | None = None,
) -> float:
    """Gwet's AC1 (``weights=None``) or AC2 (a category weight matrix), raw-data form for any
    number of raters with missing labels (Gwet 2014; irrCAC ``gwet.ac1.raw``)."""
    n = np.asarray(counts, dtype=np.float64)
    q = n.shape[1] if n_categories is None else n_categories
    pa = percent_agreement(n, weights=weights)
    if math.isnan(pa) or q < 2:
        return NAN
    pi = _category_shares(n)
    w_sum = float(q if weights is None else weights.sum())
    pe = w_sum * float((pi * (1.0 - pi)).sum()) / (q * (q - 1.0))
    return (pa - pe) / (1.0 - pe)


def fleiss_kappa(counts: IntArray | FloatArray) -> tuple[float, int, int]:
    """statsmodels' Fleiss kappa on the items with the modal label count (>= 2; the larger
    count wins a tie). Returns (kappa, items used, labels per item)."""
    n = np.asarray(counts, dtype=np.float64)
    m = n.sum(axis=1).astype(np.int64)
    m = m[m >= 2]
    if m.size == 0:
        return NAN, 0, 0
    freq = np.bincount(m)
    modal = int(np.flatnonzero(freq == freq.max()).max())
    table = n[n.sum(axis=1) == modal]
    p = table.sum(axis=0) / table.sum()
    if float((p**2).sum()) >= 1.0:  # one category only: chance agreement is 1
        return NAN, table.shape[0], modal
    # imported here: statsmodels (with pandas) costs a fifth of a second to import, and
    # the spec model imports this module (through the preference package)
    from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss_kappa

    return float(sm_fleiss_kappa(table, method="fleiss")), table.shape[0], modal


def specific_agreement(counts: IntArray | FloatArray) -> FloatArray:
    """Per category: agreeing label pairs in it / all label pairs involving it (NaN if none)."""
    n, m = _pairable(counts)
    agree = (n * (n - 1.0)).sum(axis=0)
    possible = (n * (m[:, None] - 1.0)).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(np.where(possible > 0, agree / possible, np.nan), dtype=np.float64)


def pair_confusion(counts: IntArray | FloatArray) -> IntArray:
    """Category x category counts over all ordered label pairs on the same item."""
    n, _ = _pairable(counts)
    table = n.T @ n - np.diag(n.sum(axis=0))
    return np.rint(table).astype(np.int64)


def _distinct_pairable_values(counts: IntArray | FloatArray) -> int:
    n, _ = _pairable(counts)
    return int((n.sum(axis=0) > 0).sum())


def krippendorff_alpha(
    counts: IntArray | FloatArray, *, level: Level, values: FloatArray | None = None
) -> float:
    """Krippendorff's alpha (krippendorff package); NaN when it is undefined (fewer than two
    distinct values among items with >= 2 labels). ``values``: the category values (interval
    level); category positions otherwise."""
    n = np.asarray(counts, dtype=np.float64)
    if _distinct_pairable_values(n) < 2:
        return NAN
    domain = np.arange(n.shape[1], dtype=np.float64) if values is None else values
    return float(
        krippendorff.alpha(value_counts=n, value_domain=domain, level_of_measurement=level)
    )


def _alpha_features(n: FloatArray, m: FloatArray, level: Level, values: FloatArray) -> FloatArray:
    """Per-item sums that alpha is linear in (pairable items only)."""
    if level == "interval":
        v = values - values.mean()
        s1 = n @ v
        s2 = n @ (v * v)
        d_o = (2.0 * m * s2 - 2.0 * s1 * s1) / (m - 1.0)
        return np.column_stack([d_o, m, s1, s2])
    if level == "nominal":
        d_o = (m * m - (n * n).sum(axis=1)) / (m - 1.0)
        return np.column_stack([d_o, n])
    o = (n[:, :, None] * n[:, None, :]) / (m - 1.0)[:, None, None]
    k = n.shape[1]
    o[:, np.arange(k), np.arange(k)] -= n / (m - 1.0)[:, None]
    return o.reshape(n.shape[0], k * k)


def _alpha_from_sums(sums: FloatArray, level: Level, k: int) -> FloatArray:
    """Alpha for each row of summed per-item features (rows = resamples)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        if level == "interval":
            d_o, tot, s1, s2 = sums.T
            d_e = 2.0 * tot * s2 - 2.0 * s1 * s1
            return np.asarray(1.0 - (tot - 1.0) * d_o / d_e, dtype=np.float64)
        if level == "nominal":
            d_o, n_c = sums[:, 0], sums[:, 1:]
            tot = n_c.sum(axis=1)
            d_e = tot * tot - (n_c * n_c).sum(axis=1)
            return np.asarray(1.0 - (tot - 1.0) * d_o / d_e, dtype=np.float64)
        o = sums.reshape(-1, k, k)
        n_c = o.sum(axis=2)
        tot = n_c.sum(axis=1)
        cum = np.concatenate([np.zeros((n_c.shape[0], 1)), np.cumsum(n_c, axis=1)], axis=1)
        lo = np.minimum.outer(np.arange(k), np.arange(k))
        hi = np.maximum.outer(np.arange(k), np.arange(k))
        between = cum[:, hi + 1] - cum[:, lo]
        delta = (between - (n_c[:, :, None] + n_c[:, None, :]) / 2.0) ** 2
        d_o = (o * delta).sum(axis=(1, 2))
        d_e = (n_c[:, :, None] * n_c[:, None, :] * delta).sum(axis=(1, 2))
        return np.asarray(1.0 - (tot - 1.0) * d_o / d_e, dtype=np.float64)


def bootstrap_alpha(
    counts: IntArray | FloatArray,
    *,
    level: Level,
    values: FloatArray | None = None,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, int]:
    """Percentile bootstrap interval for alpha, resampling items with >= 2 labels.

    Returns (low, high, number of resamples where alpha was defined). Deterministic for a
    seed; memory is bounded by resampling in chunks of about 2 M item draws.
    """
    n, m = _pairable(counts)
    k = n.shape[1]
    if n_boot <= 0 or n.shape[0] == 0:
        return NAN, NAN, 0
    vals = np.arange(k, dtype=np.float64) if values is None else values
    feats = _alpha_features(n, m, level, vals)
    n_items = n.shape[0]
    rng = np.random.default_rng(seed)
    chunk = max(1, min(n_boot, 2_000_000 // n_items))
    alphas: list[FloatArray] = []
    done = 0
    while done < n_boot:
        b = min(chunk, n_boot - done)
        draws = rng.integers(0, n_items, size=(b, n_items))
        draws += (np.arange(b) * n_items)[:, None]
        w = np.bincount(draws.ravel(), minlength=b * n_items).reshape(b, n_items)
        alphas.append(_alpha_from_sums(w @ feats, level, k))
        done += b
    boot = np.concatenate(alphas)
    boot = boot[np.isfinite(boot)]
    if boot.size == 0:
        return NAN, NAN, 0
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(boot, [tail, 1.0 - tail])
    return float(low), float(high), int(boot.size)


@dataclass(frozen=True)
class _Coefficients:
    """The agreement coefficients of one count matrix (NaN where undefined)."""

    percent_agreement: float
    alpha: float
    alpha_ci_low: float
    alpha_ci_high: float
    alpha_n_boot: int
    fleiss: float
    fleiss_n_items: int
    fleiss_labels_per_item: int
    fleiss_generalized: float
    ac1: float
    ac2: float


def _coefficients(
    enc: EncodedAnnotations,
    counts: IntArray,
    *,
    n_multi: int,
    weights_kind: KappaWeights | None,
    n_boot: int,
    confidence: float,
    seed: int,
) -> tuple[_Coefficients, list[str]]:
    """Percent agreement, Krippendorff's alpha (with its bootstrap CI), Fleiss, Gwet.

    Parameters
    ----------
    enc : EncodedAnnotations
        Gives the measurement level, category values and number of categories.
    counts : IntArray
        Items x categories label counts of ``enc``, shape (n_items, n_categories).
    n_multi : int
        Items with two or more labels (for the notes).
    weights_kind : {"linear", "quadratic"} or None
        Category weights of Gwet's AC2.
    n_boot, confidence, seed
        Bootstrap of alpha: resamples, interval coverage, random seed.

    Returns
    -------
    tuple[_Coefficients, list[str]]
        The coefficients, and notes on alpha being undefined or Fleiss' kappa using a
        subset of the items.
    """
    notes: list[str] = []
    pa = percent_agreement(counts)
    alpha = krippendorff_alpha(counts, level=enc.level, values=enc.values)
    if n_multi and math.isnan(alpha):
        notes.append("Krippendorff's alpha undefined: a single value among items with >= 2 "
                     "labels (no variation to be reliable about)")
    ci_low, ci_high, n_boot_ok = (
        bootstrap_alpha(counts, level=enc.level, values=enc.values, n_boot=n_boot,
                        confidence=confidence, seed=seed)
        if not math.isnan(alpha) else (NAN, NAN, 0)
    )
    fk, fk_items, fk_raters = fleiss_kappa(counts)
    if fk_items and fk_items < n_multi:
        notes.append(
            f"Fleiss' kappa (statsmodels) uses the {fk_items} of {n_multi} items with the modal "
            f"{fk_raters} labels per item; fleiss_kappa_generalized uses all {n_multi}"
        )
    fk_gen = fleiss_kappa_generalized(counts)
    ac1 = gwet_ac(counts, n_categories=enc.n_categories)
    w_matrix = agreement_weights(enc.values, weights_kind)
    ac2 = gwet_ac(counts, weights=w_matrix, n_categories=enc.n_categories)
    coefficients = _Coefficients(
        percent_agreement=pa, alpha=alpha, alpha_ci_low=ci_low, alpha_ci_high=ci_high,
        alpha_n_boot=n_boot_ok, fleiss=fk, fleiss_n_items=fk_items,
        fleiss_labels_per_item=fk_raters, fleiss_generalized=fk_gen, ac1=ac1, ac2=ac2,
    )
    return coefficients, notes
