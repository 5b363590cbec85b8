"""The review queue: which items are worth a reviewer's time, in what order.

``review_queue`` ranks items by reason (label issue, then low label quality: unflagged rows
whose given label the model does not pick, by the probability that it is wrong; consensus
disagreement, low agreement, uncertain), gives each reason its ``MixRule`` share of the
budget (unused shares flow down the list) and can mix in gold items at seeded random
positions. ``uncertainty_scores`` is the active-learning score (margin or entropy of
out-of-fold probabilities).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import polars as pl

from labelgate.errors import InputError
from labelgate.stages.review.common import _require

Reason = Literal["label_issue", "low_label_quality", "consensus_disagreement", "low_agreement",
                 "uncertain", "gold"]
REASONS: tuple[str, ...] = (
    "label_issue", "low_label_quality", "consensus_disagreement", "low_agreement",
    "uncertain", "gold",
)

QUEUE_SCHEMA: dict[str, Any] = {
    "id": pl.String,
    "reason": pl.String,
    "priority": pl.Int64,  # 1 = review first
    "given_label": pl.String,
    "suggested_label": pl.String,
    "score": pl.Float64,  # the reason's sort key, 0..1, lower = review first (null for gold)
    "given_probability": pl.Float64,  # model probability of the given label, if known
    "suggested_probability": pl.Float64,  # model probability of the suggested label, if known
}


@dataclass(frozen=True)
class MixRule:
    """Shares of a review batch per reason (normalized; unused shares flow down the list).

    The defaults favour flagged label issues and give uncertain items (active learning:
    what the model needs, not what is wrong) a small share; the measurement behind them is
    in docs/benchmarks/review.md.
    """

    label_issue: float = 0.7
    consensus_disagreement: float = 0.1
    low_agreement: float = 0.1
    uncertain: float = 0.1
    low_agreement_below: float = 0.7  # annotator agreement under this is "low"
    uncertainty: Literal["margin", "entropy"] = "margin"

    def __post_init__(self) -> None:
        shares = self.shares()
        bad = {k: v for k, v in shares.items() if not (v >= 0 and math.isfinite(v))}
        if bad or sum(shares.values()) <= 0:
            raise InputError(
                f"review mix: shares {shares} must be finite, >= 0 and not all 0"
            )
        if self.uncertainty not in ("margin", "entropy"):
            raise InputError(
                f"review mix: uncertainty {self.uncertainty!r}, expected 'margin' or 'entropy'"
            )

    def shares(self) -> dict[str, float]:
        return {
            "label_issue": self.label_issue,
            "consensus_disagreement": self.consensus_disagreement,
            "low_agreement": self.low_agreement,
            "uncertain": self.uncertain,
        }


def uncertainty_scores(
    probs: pl.DataFrame, *, id_column: str = "id", method: str = "margin"
) -> pl.DataFrame:
    """(id, score, top_label, top_probability) from a frame of id + one column per class.

    ``margin``: top-1 minus top-2 probability. ``entropy``: 1 - entropy / log(K). Both 0..1,
    low = the model is unsure.
    """
    _require(probs, [id_column], what="probabilities")
    classes = [c for c in probs.columns if c != id_column]
    if len(classes) < 2:
        raise InputError(f"probabilities: {len(classes)} class column(s) {classes}; expected >= 2")
    p = probs.select(classes).cast(pl.Float64).to_numpy()
    if not np.isfinite(p).all():
        raise InputError("probabilities: null or non-finite values; expected numbers in 0..1")
    srt = np.sort(p, axis=1)
    if method == "margin":
        score = srt[:, -1] - srt[:, -2]
    elif method == "entropy":
        q = np.clip(p, 1e-12, 1.0)
        q = q / q.sum(axis=1, keepdims=True)
        score = 1.0 + (q * np.log(q)).sum(axis=1) / math.log(len(classes))
    else:
        raise InputError(f"uncertainty: got {method!r}, expected 'margin' or 'entropy'")
    top = p.argmax(axis=1)
    return pl.DataFrame({
        "id": probs.get_column(id_column).cast(pl.String),
        "score": np.clip(score, 0.0, 1.0),
        "top_label": [classes[int(i)] for i in top],
        "top_probability": srt[:, -1],
    })


def _prob_of(probs: pl.DataFrame, labels: pl.DataFrame, column: str) -> pl.Series:
    """Per row of ``labels`` (id, <column>): the probability of that label, null if unknown."""
    classes = [c for c in probs.columns if c != "id"]
    long = probs.unpivot(index="id", on=classes, variable_name=column, value_name="_p")
    joined = labels.select("id", column).join(
        long.with_columns(pl.col("_p").cast(pl.Float64)), on=["id", column], how="left"
    )
    return joined.get_column("_p")


_PICK_SCHEMA: dict[str, Any] = {"id": pl.String, "score": pl.Float64, "reason": pl.String}


def _label_issue_rows(label_issues: pl.DataFrame) -> pl.DataFrame:
    """The label-issue table's columns the queue uses, typed.

    Parameters
    ----------
    label_issues : pl.DataFrame
        The label-issue stage's table (id, given_label, suggested_label, label_quality,
        is_label_issue, possibly more).

    Returns
    -------
    pl.DataFrame
        Same rows, those five columns (ids and labels as text, a null flag as False).
    """
    _require(label_issues, ["id", "given_label", "suggested_label", "label_quality",
                            "is_label_issue"], what="label_issues")
    return label_issues.select(
        pl.col("id").cast(pl.String),
        pl.col("given_label").cast(pl.String),
        pl.col("suggested_label").cast(pl.String),
        pl.col("label_quality").cast(pl.Float64),
        pl.col("is_label_issue").cast(pl.Boolean).fill_null(False),
    )


def _consensus_rows(consensus: pl.DataFrame | None) -> pl.DataFrame | None:
    """The agreement stage's consensus table, typed and one row per id; None if empty.

    Parameters
    ----------
    consensus : pl.DataFrame or None
        id (or item), majority, dawid_skene, agreement, possibly more.

    Returns
    -------
    pl.DataFrame or None
        id, majority, dawid_skene, agreement; the first row of a repeated id.
    """
    if consensus is None or not consensus.height:
        return None
    if "id" not in consensus.columns and "item" in consensus.columns:
        consensus = consensus.rename({"item": "id"})
    _require(consensus, ["id", "majority", "dawid_skene", "agreement"], what="consensus")
    return consensus.select(
        pl.col("id").cast(pl.String), pl.col("majority").cast(pl.String),
        pl.col("dawid_skene").cast(pl.String), pl.col("agreement").cast(pl.Float64),
    ).unique("id", keep="first", maintain_order=True)


def _probability_rows(probs: pl.DataFrame | None) -> pl.DataFrame | None:
    """Out-of-fold probabilities with a text ``id`` column; None if empty.

    Parameters
    ----------
    probs : pl.DataFrame or None
        id (or, without one, the first column) + one float column per class.

    Returns
    -------
    pl.DataFrame or None
        Same shape, the id column named ``id`` and cast to text.
    """
    if probs is None or not probs.height:
        return None
    probs = probs.rename({probs.columns[0]: "id"}) if "id" not in probs.columns else probs
    return probs.with_columns(pl.col("id").cast(pl.String))


def _reason_pools(
    li: pl.DataFrame,
    *,
    cons: pl.DataFrame | None,
    probs: pl.DataFrame | None,
    mix: MixRule,
) -> dict[str, pl.DataFrame]:
    """The candidates of each review reason, with their score (lower = review first).

    Parameters
    ----------
    li : pl.DataFrame
        ``_label_issue_rows`` output.
    cons, probs : pl.DataFrame or None
        ``_consensus_rows`` and ``_probability_rows`` output.
    mix : MixRule
        Gives the low-agreement cut and the uncertainty measure.

    Returns
    -------
    dict[str, pl.DataFrame]
        Reason -> (id, score) candidates (the label share's also reason and ``_tier``: 0 for
        flagged rows, 1 for the unflagged rows the model gives another label); a reason
        without its input is absent.
    """
    pools: dict[str, pl.DataFrame] = {}
    # the label share: the flagged rows, then the unflagged rows whose label the model does
    # not pick (suggested != given), both by label quality: the probability that the given
    # label is wrong ranks them, not the margin
    disputed = ~pl.col("is_label_issue") & (pl.col("suggested_label") != pl.col("given_label"))
    pools["label_issue"] = pl.concat([
        li.filter(pl.col("is_label_issue")).select(
            "id", pl.col("label_quality").alias("score"), pl.lit("label_issue").alias("reason"),
            pl.lit(0).alias("_tier")),
        li.filter(disputed).select(
            "id", pl.col("label_quality").alias("score"),
            pl.lit("low_label_quality").alias("reason"), pl.lit(1).alias("_tier")),
    ])
    if cons is not None:
        disagree = cons.filter(
            pl.col("majority").is_not_null() & pl.col("dawid_skene").is_not_null()
            & (pl.col("majority") != pl.col("dawid_skene"))
        )
        pools["consensus_disagreement"] = disagree.select(
            "id", pl.col("agreement").fill_null(0.0).alias("score"))
        pools["low_agreement"] = cons.filter(
            pl.col("agreement") < mix.low_agreement_below
        ).select("id", pl.col("agreement").alias("score"))
    if probs is not None:
        unc = uncertainty_scores(probs, method=mix.uncertainty)
        unflagged = li.filter(
            ~pl.col("is_label_issue") & (pl.col("suggested_label") == pl.col("given_label"))
        ).select("id")
        pools["uncertain"] = unc.join(unflagged, on="id", how="semi").select("id", "score")
    return pools


def _ordered_pools(
    pools: dict[str, pl.DataFrame],
    *,
    reasons: Sequence[str],
    reviewed: Collection[str],
) -> dict[str, pl.DataFrame]:
    """Each item under its first reason only, each pool sorted by score, ties by id.

    Parameters
    ----------
    pools : dict[str, pl.DataFrame]
        ``_reason_pools`` output.
    reasons : Sequence[str]
        The reasons in priority order.
    reviewed : Collection[str]
        Ids a reviewer already decided: they count as taken.

    Returns
    -------
    dict[str, pl.DataFrame]
        Reason -> (id, score, reason), in priority order (a pool's tiers first, then score);
        reasons left with no item are absent.
    """
    taken: pl.DataFrame = pl.DataFrame(
        {"id": sorted({str(i) for i in reviewed})}, schema={"id": pl.String}
    )
    ordered: dict[str, pl.DataFrame] = {}
    for reason in reasons:
        pool = pools.get(reason)
        if pool is None or pool.height == 0:
            continue
        if "_tier" not in pool.columns:
            pool = pool.with_columns(pl.lit(reason).alias("reason"), pl.lit(0).alias("_tier"))
        pool = (pool.unique("id", keep="first").join(taken, on="id", how="anti")
                .sort(["_tier", "score", "id"], nulls_last=True)
                .select("id", "score", "reason"))
        ordered[reason] = pool
        taken = pl.concat([taken, pool.select("id")])
    return ordered


def _take(
    ordered: dict[str, pl.DataFrame], *, start: dict[str, int], count: dict[str, int]
) -> list[pl.DataFrame]:
    """From each pool, ``count[reason]`` rows from ``start[reason]`` (default 0).

    Parameters
    ----------
    ordered : dict[str, pl.DataFrame]
        ``_ordered_pools`` output.
    start, count : dict[str, int]
        Per reason, where to start and how many to take (none when 0 or absent).

    Returns
    -------
    list[pl.DataFrame]
        One (id, score, reason) frame per reason that gives rows, in priority order.
    """
    return [
        ordered[r].slice(start.get(r, 0), count[r]) for r in ordered if count.get(r, 0) > 0
    ]


def _gold_rows(
    gold: pl.DataFrame,
    *,
    picked: pl.DataFrame,
    base: pl.DataFrame,
    n_wanted: int,
    seed: int,
) -> pl.DataFrame:
    """Up to ``n_wanted`` gold items drawn at random (seeded), none already picked.

    Parameters
    ----------
    gold : pl.DataFrame
        Known-correct items (id, ...).
    picked : pl.DataFrame
        The items already queued (id, ...).
    base : pl.DataFrame
        The label-issue rows (id, ...): only gold items among them can be shown.
    n_wanted : int
        How many gold items the queue wants.
    seed : int
        Seed of the draw.

    Returns
    -------
    pl.DataFrame
        (id, score = null, reason = "gold"), min(n_wanted, eligible) rows in id order.
    """
    _require(gold, ["id"], what="gold")
    ids = (gold.select(pl.col("id").cast(pl.String)).unique(maintain_order=True)
           .join(picked.select("id"), on="id", how="anti")
           .join(base.select("id"), on="id", how="semi").sort("id"))
    n_gold = min(n_wanted, ids.height)
    rng = np.random.default_rng(seed)
    chosen: list[int] = (
        rng.choice(ids.height, size=n_gold, replace=False).tolist() if n_gold else []
    )
    return ids[sorted(int(i) for i in chosen)].with_columns(
        pl.lit(None, pl.Float64).alias("score"), pl.lit("gold").alias("reason"))


def _refill(
    picked: pl.DataFrame,
    ordered: dict[str, pl.DataFrame],
    *,
    quota: dict[str, int],
    n_slots: int,
    shares: dict[str, float],
) -> pl.DataFrame:
    """Give gold slots that found no gold item back to the reasons, by share.

    Parameters
    ----------
    picked : pl.DataFrame
        The queued (id, score, reason) rows.
    ordered : dict[str, pl.DataFrame]
        ``_ordered_pools`` output.
    quota : dict[str, int]
        Rows already taken from each pool (its first rows).
    n_slots : int
        The slots to fill.
    shares : dict[str, float]
        The mix's shares per reason.

    Returns
    -------
    pl.DataFrame
        ``picked`` plus the next rows of the pools, sorted by reason priority (stable).
    """
    refill = _allocate(
        n_slots, shares, {r: ordered[r].height - quota.get(r, 0) for r in ordered},
    )
    extra = _take(ordered, start=quota, count=refill)
    return pl.concat([picked, *extra]).sort(
        pl.col("reason").replace_strict({r: i for i, r in enumerate(REASONS)}),
        maintain_order=True,
    )


def _interleave_gold(rows: pl.DataFrame, gold_rows: pl.DataFrame, *, seed: int) -> pl.DataFrame:
    """Put the gold rows at seeded random positions among the queued rows.

    Parameters
    ----------
    rows : pl.DataFrame
        The queued (id, reason, score) rows, in order.
    gold_rows : pl.DataFrame
        The gold (id, score, reason) rows, in order.
    seed : int
        Seed of the positions.

    Returns
    -------
    pl.DataFrame
        (id, reason, score): both inputs' rows, each keeping its own order.
    """
    if not gold_rows.height:
        return rows
    rng = np.random.default_rng(seed)
    total = rows.height + gold_rows.height
    slots = set(int(i) for i in rng.choice(total, size=gold_rows.height, replace=False))
    order = np.empty(total, dtype=np.int64)
    gi, qi = rows.height, 0
    for pos in range(total):
        if pos in slots:
            order[pos] = gi
            gi += 1
        else:
            order[pos] = qi
            qi += 1
    return pl.concat([rows, gold_rows.select("id", "reason", "score")])[order.tolist()]


def _queue_frame(
    rows: pl.DataFrame,
    base: pl.DataFrame,
    *,
    cons: pl.DataFrame | None,
    probs: pl.DataFrame | None,
) -> pl.DataFrame:
    """Number the queue and add the given / suggested labels and their probabilities.

    Parameters
    ----------
    rows : pl.DataFrame
        The queue (id, reason, score), in review order.
    base : pl.DataFrame
        id, given_label, suggested_label, given_probability of the label-issue rows.
    cons, probs : pl.DataFrame or None
        ``_consensus_rows`` (fills labels for items only it knows) and
        ``_probability_rows`` output.

    Returns
    -------
    pl.DataFrame
        The queue in ``QUEUE_SCHEMA``, one row per input row.
    """
    queue = rows.with_row_index("priority", offset=1).with_columns(
        pl.col("priority").cast(pl.Int64)
    ).join(base, on="id", how="left", maintain_order="left")
    if cons is not None:  # items only the agreement stage knows: majority as given label
        queue = queue.join(
            cons.select("id", "majority", "dawid_skene"), on="id", how="left",
            maintain_order="left",
        ).with_columns(
            pl.coalesce("given_label", "majority").alias("given_label"),
            pl.coalesce("suggested_label", "dawid_skene").alias("suggested_label"),
        )
    if probs is not None:
        queue = queue.with_columns(
            pl.coalesce("given_probability", _prob_of(probs, queue, "given_label"))
            .alias("given_probability"),
            _prob_of(probs, queue, "suggested_label").alias("suggested_probability"),
        )
    else:
        queue = queue.with_columns(pl.lit(None, pl.Float64).alias("suggested_probability"))
    return queue.select([pl.col(c).cast(t) for c, t in QUEUE_SCHEMA.items()])


def review_queue(
    label_issues: pl.DataFrame,
    *,
    consensus: pl.DataFrame | None = None,
    probs: pl.DataFrame | None = None,
    limit: int,
    mix: MixRule | None = None,
    gold: pl.DataFrame | None = None,
    gold_rate: float = 0.0,
    seed: int = 13,
    reviewed: Collection[str] = (),
) -> pl.DataFrame:
    """The items most worth a reviewer's time, in priority order (``QUEUE_SCHEMA``).

    ``label_issues``: id, given_label, suggested_label, label_quality, is_label_issue (the
    label-issue stage's table). ``consensus``: id (or item), majority, dawid_skene, agreement
    (the agreement stage's table). ``probs``: id + one float column per class, out-of-fold.
    ``gold``: id, label of known-correct items; ``round(limit * gold_rate)`` of them (those
    not already queued) take seeded random positions within ``limit``. ``reviewed``: ids a
    reviewer has already decided (imported corrections): never queued again for any reason
    but gold (their label is the reviewer's; the label-issue stage no longer flags them).
    """
    if limit < 0:
        raise InputError(f"review: limit {limit} < 0")
    if not (0.0 <= gold_rate <= 1.0):
        raise InputError(f"review: gold_rate {gold_rate} outside 0..1")
    mix = mix or MixRule()
    li = _label_issue_rows(label_issues)
    base = li.select("id", "given_label", "suggested_label",
                     pl.col("label_quality").alias("given_probability"))
    cons = _consensus_rows(consensus)
    probs = _probability_rows(probs)
    pools = _reason_pools(li, cons=cons, probs=probs, mix=mix)
    ordered = _ordered_pools(pools, reasons=list(mix.shares()), reviewed=reviewed)

    n_gold_wanted = round(limit * gold_rate) if gold is not None else 0
    quota = _allocate(limit - n_gold_wanted, mix.shares(),
                      {r: p.height for r, p in ordered.items()})
    parts = _take(ordered, start={}, count=quota)
    picked = pl.concat(parts) if parts else pl.DataFrame(schema=_PICK_SCHEMA)
    gold_rows = pl.DataFrame(schema=_PICK_SCHEMA)
    if gold is not None and n_gold_wanted > 0:
        gold_rows = _gold_rows(gold, picked=picked, base=base, n_wanted=n_gold_wanted,
                               seed=seed)
        if gold_rows.height < n_gold_wanted:  # too few gold items: slots back to the queue
            picked = _refill(picked, ordered, quota=quota,
                             n_slots=n_gold_wanted - gold_rows.height, shares=mix.shares())
    rows = _interleave_gold(picked.select("id", "reason", "score"), gold_rows, seed=seed + 1)
    return _queue_frame(rows, base, cons=cons, probs=probs)


def _allocate(budget: int, shares: dict[str, float], available: dict[str, int]) -> dict[str, int]:
    """Split ``budget`` over reasons by share (largest remainder), capped by what is
    available; what a reason cannot use goes to the others, in priority order."""
    quota = dict.fromkeys(shares, 0)
    remaining = budget
    open_ = [r for r in shares if available.get(r, 0) > 0]
    while remaining > 0 and open_:
        total = sum(shares[r] for r in open_)
        if total <= 0:  # only zero-share reasons left: fill them in priority order
            for r in open_:
                add = min(remaining, available[r] - quota[r])
                quota[r] += add
                remaining -= add
            break
        exact = {r: remaining * shares[r] / total for r in open_}
        give = {r: math.floor(v) for r, v in exact.items()}
        left = remaining - sum(give.values())
        for r in sorted(open_, key=lambda r: (-(exact[r] - give[r]), list(shares).index(r))):
            if left <= 0:
                break
            give[r] += 1
            left -= 1
        used = 0
        for r in open_:
            add = min(give[r], available[r] - quota[r])
            quota[r] += add
            used += add
        remaining -= used
        open_ = [r for r in open_ if quota[r] < available[r]]
        if used == 0:
            break
    return quota
