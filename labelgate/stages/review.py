"""The review loop: pick the items worth a human's time, export them, take corrections back.

1. ``review_queue`` ranks items for review. Reasons, in priority order:
   ``label_issue`` (flagged by the label-issue stage, lowest label quality first),
   ``consensus_disagreement`` (majority vote and Dawid-Skene disagree),
   ``low_agreement`` (annotators agree on fewer than ``MixRule.low_agreement_below``),
   ``uncertain`` (active learning: unflagged items whose out-of-fold probabilities have the
   smallest margin, or the highest entropy). Each item appears once, under its first reason.
   ``MixRule`` gives each reason a share of the budget; a reason with too few candidates
   passes its unused share down the list. Gold items (known answers) can be mixed in at
   ``gold_rate`` at seeded random positions, to measure reviewer accuracy.
2. ``to_label_studio`` / ``to_csv`` / ``to_jsonl`` write the queue for reviewers; the Label
   Studio tasks carry the given and the suggested label as predictions, and
   ``labeling_config`` is the XML for the dataset's classes.
3. ``read_corrections`` reads a Label Studio export or a CSV/JSONL of (id, label, reviewer
   [, timestamp]); rows with an empty label were not answered: skipped, and
   ``read_corrections_file`` says which, for the import to report; ``validate_corrections``
   splits it into applied / rejected (with reasons) / gold answers; ``store_corrections``
   writes the applied ones to the lake as an overlay batch
   (``lake/<dataset>/corrections/batch=<hash>/``: who, when, old label, new label;
   never an in-place edit); ``load_corrections`` reads every batch back and
   ``apply_corrections`` gives the next run's labels (latest correction per id wins).
4. ``reviewer_accuracy`` scores reviewers on the gold items they were shown.

Scores in the queue are "lower = review first", all in 0..1: label quality for label issues,
annotator agreement for the consensus reasons, the margin (or 1 - normalized entropy) of the
model's probabilities for uncertain items.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from xml.sax.saxutils import quoteattr

import numpy as np
import polars as pl

from labelgate.errors import InputError
from labelgate.stages.agreement.annotations import parse_label_studio_export
from labelgate.store.corrections import (
    CORRECTIONS_SOURCE,
    load_corrections,
    load_gold_answers,
    store_corrections,
)

__all__ = [
    "CORRECTIONS_SOURCE",
    "ID_FIELD",
    "QUEUE_SCHEMA",
    "REASONS",
    "CorrectionStats",
    "CorrectionsFile",
    "MixRule",
    "ValidatedCorrections",
    "apply_corrections",
    "labeling_config",
    "latest_corrections",
    "load_corrections",
    "load_gold_answers",
    "read_corrections",
    "read_corrections_file",
    "review_queue",
    "reviewer_accuracy",
    "store_corrections",
    "to_csv",
    "to_jsonl",
    "to_label_studio",
    "validate_corrections",
]

Reason = Literal["label_issue", "consensus_disagreement", "low_agreement", "uncertain", "gold"]
REASONS: tuple[str, ...] = (
    "label_issue", "consensus_disagreement", "low_agreement", "uncertain", "gold",
)
ID_FIELD = "item_id"  # the task data field holding the item id in Label Studio exports
FROM_NAME, TO_NAME = "label", "text"  # control names in the labeling config

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

CORRECTION_COLUMNS: dict[str, Any] = {
    "id": pl.String,
    "label": pl.String,
    "reviewer": pl.String,
    "timestamp": pl.Datetime("us", "UTC"),
    "where": pl.String,  # file and row / annotation, for messages
}


REJECTED_SCHEMA: dict[str, Any] = {
    **CORRECTION_COLUMNS,
    "check": pl.String,  # unknown_id | unknown_label | duplicate
    "reason": pl.String,
}


# --------------------------------------------------------------------------- queue


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


def _require(frame: pl.DataFrame, columns: Sequence[str], *, what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputError(f"{what}: missing column(s) {missing}; the frame has {frame.columns}")


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
        Reason -> (id, score) candidates; a reason without its input is absent.
    """
    pools: dict[str, pl.DataFrame] = {}
    pools["label_issue"] = li.filter(pl.col("is_label_issue")).select(
        "id", pl.col("label_quality").alias("score"))
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
        unflagged = li.filter(~pl.col("is_label_issue")).select("id")
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
        Reason -> (id, score), in priority order; reasons left with no item are absent.
    """
    taken: pl.DataFrame = pl.DataFrame(
        {"id": sorted({str(i) for i in reviewed})}, schema={"id": pl.String}
    )
    ordered: dict[str, pl.DataFrame] = {}
    for reason in reasons:
        pool = pools.get(reason)
        if pool is None or pool.height == 0:
            continue
        pool = (pool.unique("id", keep="first").join(taken, on="id", how="anti")
                .sort(["score", "id"], nulls_last=True))
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
        ordered[r].slice(start.get(r, 0), count[r]).with_columns(pl.lit(r).alias("reason"))
        for r in ordered if count.get(r, 0) > 0
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


# --------------------------------------------------------------------------- exporters


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


# --------------------------------------------------------------------------- import


_SHOWN_IDS = 10  # unanswered rows named in messages


@dataclass(frozen=True)
class CorrectionsFile:
    """A corrections file as read: the answered rows, and what was skipped unanswered."""

    corrections: pl.DataFrame  # CORRECTION_COLUMNS
    unlabelled: pl.DataFrame  # id (null if empty), row: CSV/JSONL rows with an empty label
    n_skipped_annotations: int = 0  # Label Studio: cancelled or without a choice

    def skipped_summary(self) -> str | None:
        """What was skipped for want of a label, for the import's output; None if nothing.
        E.g. ``2 row(s) with no label skipped (ids a, b)``."""
        parts = []
        n = self.unlabelled.height
        if n:
            shown = [f"row {r}" if i is None or i == "" else str(i)
                     for i, r in self.unlabelled.head(_SHOWN_IDS).select("id", "row").rows()]
            more = f", ... {n - _SHOWN_IDS} more" if n > _SHOWN_IDS else ""
            parts.append(f"{n} row(s) with no label skipped (ids {', '.join(shown)}{more})")
        if self.n_skipped_annotations:
            parts.append(f"{self.n_skipped_annotations} annotation(s) cancelled or without a "
                         "choice skipped")
        return "; ".join(parts) or None


def read_corrections(path: str | Path, *, id_field: str = ID_FIELD,
                     from_name: str | None = None) -> pl.DataFrame:
    """Reviewer answers (id, label, reviewer, timestamp, where) from a Label Studio JSON export
    (``.json``: completed annotations; ``completed_by`` -> reviewer, the chosen choice ->
    label, ``data.<id_field>`` -> id; cancelled or empty annotations are skipped) or a
    CSV / JSONL file with columns id, label, reviewer and optional timestamp (ISO 8601).
    Blank labels in CSV/JSONL are rows the reviewer did not answer: skipped (counted by
    ``read_corrections_file``)."""
    return read_corrections_file(path, id_field=id_field, from_name=from_name).corrections


def _label_studio_corrections(
    path: Path, *, id_field: str, from_name: str | None
) -> CorrectionsFile:
    """Reviewer answers from a Label Studio JSON export.

    Parameters
    ----------
    path : Path
        The export file.
    id_field, from_name
        As in ``read_corrections``.

    Returns
    -------
    CorrectionsFile
        One correction per completed annotation (``CORRECTION_COLUMNS``), no unlabelled
        rows, and the cancelled / empty annotations counted.
    """
    export = parse_label_studio_export(path, item_field=id_field, from_name=from_name)
    ann = export.annotations
    return CorrectionsFile(
        corrections=ann.select(
            pl.col("item").alias("id"), "label", pl.col("annotator").alias("reviewer"),
            pl.col("timestamp").cast(pl.Datetime("us", "UTC")),
            (pl.lit(f"{path}: annotation ") + pl.col("annotation_id").fill_null("?"))
            .alias("where"),
        ),
        unlabelled=pl.DataFrame(schema={"id": pl.String, "row": pl.Int64}),
        n_skipped_annotations=export.n_cancelled + export.n_without_choice,
    )


def _read_sheet(path: Path, *, suffix: str) -> pl.DataFrame:
    """A CSV (all text) or JSONL corrections sheet as read, with its required columns.

    Parameters
    ----------
    path : Path
        The file.
    suffix : str
        Its lowercased suffix: ``.csv``, ``.jsonl`` or ``.ndjson`` (others are an error).

    Returns
    -------
    pl.DataFrame
        One row per line, with at least id, label, reviewer.
    """
    try:
        if suffix == ".csv":
            raw = pl.read_csv(path, infer_schema_length=0)
        elif suffix in (".jsonl", ".ndjson"):
            raw = pl.read_ndjson(path, infer_schema_length=None)
        else:
            raise InputError(
                f"{path}: unknown corrections format {suffix!r}; expected .json (Label Studio "
                "export), .csv or .jsonl"
            )
    except (pl.exceptions.ComputeError, OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read corrections: {exc}") from None
    missing = [c for c in ("id", "label", "reviewer") if c not in raw.columns]
    if missing:
        raise InputError(
            f"{path}: missing column(s) {missing}; expected id, label, reviewer[, timestamp]; "
            f"the file has {raw.columns}"
        )
    return raw


def _sheet_corrections(raw: pl.DataFrame, *, path: Path) -> CorrectionsFile:
    """The answered rows of a corrections sheet, and the unanswered ones (empty label).

    Parameters
    ----------
    raw : pl.DataFrame
        ``_read_sheet`` output: id, label, reviewer[, timestamp] (ISO 8601 text).
    path : Path
        The file, for ``where`` and messages.

    Returns
    -------
    CorrectionsFile
        Answered rows in ``CORRECTION_COLUMNS`` (text stripped), and (id, row) of the rows
        with no label (rows numbered from 1).
    """
    row = pl.int_range(1, pl.len() + 1, dtype=pl.Int64)
    every = raw.select(
        pl.col("id").cast(pl.String).str.strip_chars(),
        pl.col("label").cast(pl.String).str.strip_chars(),
        pl.col("reviewer").cast(pl.String).str.strip_chars(),
        (pl.col("timestamp").cast(pl.String) if "timestamp" in raw.columns
         else pl.lit(None, pl.String)).alias("_ts"),
        (pl.lit(f"{path}: row ") + row.cast(pl.String)).alias("where"),
        row.alias("_row"),
    )
    answered = pl.col("label").is_not_null() & (pl.col("label") != "")
    unlabelled = every.filter(~answered).select("id", pl.col("_row").alias("row"))
    frame = every.filter(answered)
    for column in ("id", "reviewer"):
        bad = frame.filter(pl.col(column).is_null() | (pl.col(column) == ""))
        if bad.height:
            raise InputError(f"{bad.item(0, 'where')}: empty {column!r}; expected a value")
    ts = frame.get_column("_ts").str.to_datetime(time_zone="UTC", strict=False)
    bad_ts = frame.filter(pl.Series(ts.is_null()) & pl.col("_ts").is_not_null())
    if bad_ts.height:
        raise InputError(
            f"{bad_ts.item(0, 'where')}: timestamp {bad_ts.item(0, '_ts')!r} is not ISO 8601"
        )
    corrections = frame.with_columns(
        ts.cast(pl.Datetime("us", "UTC")).alias("timestamp")
    ).select(list(CORRECTION_COLUMNS))
    return CorrectionsFile(corrections=corrections, unlabelled=unlabelled)


def read_corrections_file(path: str | Path, *, id_field: str = ID_FIELD,
                          from_name: str | None = None) -> CorrectionsFile:
    """``read_corrections``, also saying which rows were skipped unanswered (an empty label:
    id and row number) so the import reports them rather than dropping them silently."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such corrections file")
    suffix = path.suffix.lower()
    if suffix == ".json":
        return _label_studio_corrections(path, id_field=id_field, from_name=from_name)
    return _sheet_corrections(_read_sheet(path, suffix=suffix), path=path)


@dataclass(frozen=True)
class ValidatedCorrections:
    """A corrections file, checked: what to apply, what was rejected and why, gold answers."""

    applied: pl.DataFrame  # id, old_label, new_label, changed, reviewer, timestamp, where
    rejected: pl.DataFrame  # the correction's columns + check, reason
    gold_answers: pl.DataFrame = field(  # id, label, reviewer, timestamp, where, gold_label
        default_factory=lambda: pl.DataFrame()
    )

    def reasons(self) -> dict[str, int]:
        """Rejected count per check (unknown_id, unknown_label, duplicate)."""
        if self.rejected.height == 0:
            return {}
        counts = self.rejected.group_by("check").len().sort(["len", "check"],
                                                           descending=[True, False])
        return {str(k): int(n) for k, n in counts.iter_rows()}


def _split_gold_answers(
    corr: pl.DataFrame, gold: pl.DataFrame | None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Set apart the answers on gold items.

    Parameters
    ----------
    corr : pl.DataFrame
        Corrections (``CORRECTION_COLUMNS`` + ``_pos``).
    gold : pl.DataFrame or None
        Gold items (id, label); None or empty: no gold.

    Returns
    -------
    tuple[pl.DataFrame, pl.DataFrame]
        The corrections on other items (same columns), and the answers on gold items
        (``CORRECTION_COLUMNS`` + gold_label; an empty frame without gold).
    """
    if gold is None or not gold.height:
        return corr, pl.DataFrame()
    _require(gold, ["id", "label"], what="gold")
    g = gold.select(pl.col("id").cast(pl.String), pl.col("label").cast(pl.String)
                    .alias("gold_label")).unique("id", keep="first")
    return corr.join(g, on="id", how="anti"), corr.join(g, on="id", how="inner").drop("_pos")


def _reject_unknown(
    corr: pl.DataFrame, *, current: pl.DataFrame, known: list[str]
) -> tuple[pl.DataFrame, list[pl.DataFrame]]:
    """Take out corrections of unknown ids and to unknown labels, with their reasons.

    Parameters
    ----------
    corr : pl.DataFrame
        Corrections (``CORRECTION_COLUMNS`` + ``_pos``).
    current : pl.DataFrame
        The valid items (id, old_label), one row per id.
    known : list[str]
        The classes.

    Returns
    -------
    tuple[pl.DataFrame, list[pl.DataFrame]]
        The remaining corrections, and the unknown-id and unknown-label rejects (the
        corrections' columns + check, reason).
    """
    unknown_id = corr.join(current, on="id", how="anti").with_columns(
        pl.lit("unknown_id").alias("check"),
        (pl.lit("unknown id: ") + pl.col("id")
         + pl.lit(" is not among the latest run's valid items")).alias("reason"))
    corr = corr.join(current, on="id", how="semi")
    bad_label = ~pl.col("label").is_in(known)
    unknown_label = corr.filter(bad_label).with_columns(
        pl.lit("unknown_label").alias("check"),
        (pl.lit("unknown label: ") + pl.col("label") + pl.lit(f" not in classes {known}"))
        .alias("reason"))
    return corr.filter(~bad_label), [unknown_id, unknown_label]


def _latest_per_id(corr: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame | None]:
    """Per id the latest correction (timestamp, then file order); the others as rejects.

    Parameters
    ----------
    corr : pl.DataFrame
        Corrections (``CORRECTION_COLUMNS`` + ``_pos``).

    Returns
    -------
    tuple[pl.DataFrame, pl.DataFrame or None]
        One row per id (sorted by id), and the superseded corrections with check and
        reason naming the winner (None when no id repeats).
    """
    ranked = corr.sort(["id", "timestamp", "_pos"], nulls_last=False)
    latest = ranked.unique("id", keep="last", maintain_order=True)
    dups = ranked.join(latest.select("_pos"), on="_pos", how="anti")
    if not dups.height:
        return latest, None
    winner = latest.select("id", pl.col("where").alias("_winner"))
    return latest, dups.join(winner, on="id").with_columns(
        pl.lit("duplicate").alias("check"),
        (pl.lit("duplicate correction of id ") + pl.col("id")
         + pl.lit(": superseded by the later one at ") + pl.col("_winner")).alias("reason")
    ).drop("_winner")


def validate_corrections(
    corrections: pl.DataFrame,
    *,
    items: pl.DataFrame,
    classes: Sequence[str],
    gold: pl.DataFrame | None = None,
) -> ValidatedCorrections:
    """Split corrections into applied and rejected (with a reason each): ids not among
    ``items`` (id, label), labels outside ``classes``, and repeated corrections of one id (the
    latest by timestamp, then file order, is kept; the others are reported). Answers on
    ``gold`` items (id, label) are kept apart for reviewer accuracy, never applied."""
    _require(corrections, ["id", "label", "reviewer", "timestamp", "where"], what="corrections")
    _require(items, ["id", "label"], what="items")
    corr = corrections.select(
        [pl.col(c).cast(t) for c, t in CORRECTION_COLUMNS.items()]
    ).with_row_index("_pos")
    current = items.select(pl.col("id").cast(pl.String), pl.col("label").cast(pl.String)
                           .alias("old_label")).unique("id", keep="first")
    corr, gold_answers = _split_gold_answers(corr, gold)
    corr, rejected = _reject_unknown(corr, current=current, known=[str(c) for c in classes])
    latest, duplicates = _latest_per_id(corr)
    if duplicates is not None:
        rejected.append(duplicates)
    applied = latest.sort("_pos").join(current, on="id", how="left", maintain_order="left")
    applied = applied.select(
        "id", "old_label", pl.col("label").alias("new_label"),
        (pl.col("label") != pl.col("old_label")).alias("changed"),
        "reviewer", "timestamp", "where",
    )
    rej = pl.concat([r.select([*CORRECTION_COLUMNS, "check", "reason", "_pos"]) for r in rejected])
    return ValidatedCorrections(
        applied=applied,
        rejected=rej.sort("_pos").drop("_pos").select(
            [pl.col(c).cast(t) for c, t in REJECTED_SCHEMA.items()]),
        gold_answers=gold_answers,
    )


def reviewer_accuracy(answers: pl.DataFrame, gold: pl.DataFrame | None = None) -> pl.DataFrame:
    """Per reviewer: n_gold, n_correct, accuracy on gold items. ``answers`` has id, label,
    reviewer and either a gold_label column (``ValidatedCorrections.gold_answers``) or the
    ``gold`` frame (id, label) is given."""
    schema = {"reviewer": pl.String, "n_gold": pl.Int64, "n_correct": pl.Int64,
              "accuracy": pl.Float64}
    if answers.height == 0:
        return pl.DataFrame(schema=schema)
    if "gold_label" not in answers.columns:
        if gold is None:
            raise InputError("reviewer_accuracy: pass gold (id, label) or answers.gold_label")
        g = gold.select(pl.col("id").cast(pl.String),
                        pl.col("label").cast(pl.String).alias("gold_label"))
        answers = answers.with_columns(pl.col("id").cast(pl.String)).join(g, on="id")
    out = answers.group_by("reviewer").agg(
        pl.len().cast(pl.Int64).alias("n_gold"),
        (pl.col("label").cast(pl.String) == pl.col("gold_label")).sum().cast(pl.Int64)
        .alias("n_correct"),
    ).with_columns((pl.col("n_correct") / pl.col("n_gold")).alias("accuracy"))
    return out.sort("reviewer").select([pl.col(c).cast(t) for c, t in schema.items()])


# --------------------------------------------------------------------------- overlay


@dataclass(frozen=True)
class CorrectionStats:
    """What applying the overlay did to a run's labels."""

    n_corrections: int  # overlay rows across all batches
    n_ids_corrected: int  # valid rows that have a correction
    n_changed: int  # of those, rows whose label the correction changes
    n_confirmed: int  # rows whose correction repeats the current label
    n_not_in_valid: int  # corrected ids absent from this run's valid rows
    n_stale: int  # corrections whose old label is no longer the source's label

    def to_dict(self) -> dict[str, int]:
        return {k: int(v) for k, v in self.__dict__.items()}


def latest_corrections(corrections: pl.DataFrame) -> pl.DataFrame:
    """Per id the decision that counts: the latest correction by timestamp, then import
    time, then overlay order (id, new_label, old_label as text)."""
    return (
        corrections.with_columns(pl.col("id").cast(pl.String))
        .with_row_index("_pos")
        .sort(["id", "timestamp", "imported_at", "_pos"], nulls_last=False)
        .unique("id", keep="last")
        .select("id", pl.col("new_label").cast(pl.String), pl.col("old_label").cast(pl.String))
    )


def apply_corrections(
    valid: pl.DataFrame,
    corrections: pl.DataFrame,
    *,
    id_column: str,
    label_column: str,
) -> tuple[pl.DataFrame, CorrectionStats]:
    """The run's valid rows with the overlay applied: per id the latest correction (by
    timestamp, then import time) replaces ``label_column``. Row order, columns and dtypes
    are unchanged; ids are matched as text."""
    _require(valid, [id_column, label_column], what="valid rows")
    _require(corrections, ["id", "new_label", "old_label", "timestamp", "imported_at"],
             what="corrections")
    latest = latest_corrections(corrections).rename({"new_label": "_new", "old_label": "_old"})
    dtype = valid.schema[label_column]
    keyed = valid.with_columns(pl.col(id_column).cast(pl.String).alias("_id"))
    joined = keyed.join(latest, left_on="_id", right_on="id", how="left", maintain_order="left")
    try:
        new = joined.get_column("_new").cast(dtype, strict=True)
    except pl.exceptions.InvalidOperationError as exc:
        raise InputError(
            f"corrections: a corrected label does not cast to column {label_column!r} "
            f"({dtype}): {exc}"
        ) from None
    current = joined.get_column(label_column)
    has = joined.get_column("_new").is_not_null()
    changed = has & (new.cast(pl.String) != current.cast(pl.String)).fill_null(True)
    stale = has & (joined.get_column("_old") != current.cast(pl.String)).fill_null(False)
    out = joined.with_columns(
        pl.when(has).then(new).otherwise(pl.col(label_column)).alias(label_column)
    ).select(valid.columns)
    n_has, n_changed = int(has.sum()), int(changed.sum())
    matched = latest.join(keyed.select(pl.col("_id").alias("id")), on="id", how="semi").height
    stats = CorrectionStats(
        n_corrections=corrections.height,
        n_ids_corrected=n_has,
        n_changed=n_changed,
        n_confirmed=n_has - n_changed,
        n_not_in_valid=latest.height - matched,
        n_stale=int(stale.sum()),
    )
    return out, stats
