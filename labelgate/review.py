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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from xml.sax.saxutils import quoteattr

import numpy as np
import polars as pl

from labelgate.annotations import parse_label_studio_export
from labelgate.errors import InputError
from labelgate.lake import MARKER, Batch, content_hash, existing_batch, lake_dir, write_batch

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
CORRECTIONS_SOURCE = "corrections"  # lake/<dataset>/corrections/batch=<hash>/
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

OVERLAY_SCHEMA: dict[str, Any] = {
    "id": pl.String,
    "old_label": pl.String,
    "new_label": pl.String,
    "changed": pl.Boolean,
    "reviewer": pl.String,
    "timestamp": pl.Datetime("us", "UTC"),  # when the reviewer decided (import time if unknown)
    "imported_at": pl.Datetime("us", "UTC"),
    "where": pl.String,
    "_batch": pl.String,
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

    The defaults favour flagged label issues: on real tweets with 10% planted flips
    (bench/bench_review.py), a 5% review budget spent only on label issues fixed 44% of the
    planted errors, random picks 5%, and unflagged low-margin items 4% (active learning
    picks what the model needs, not what is wrong), so uncertain items get a small share.
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
    _require(label_issues, ["id", "given_label", "suggested_label", "label_quality",
                            "is_label_issue"], what="label_issues")
    li = label_issues.select(
        pl.col("id").cast(pl.String),
        pl.col("given_label").cast(pl.String),
        pl.col("suggested_label").cast(pl.String),
        pl.col("label_quality").cast(pl.Float64),
        pl.col("is_label_issue").cast(pl.Boolean).fill_null(False),
    )
    base = li.select("id", "given_label", "suggested_label",
                     pl.col("label_quality").alias("given_probability"))
    pools: dict[str, pl.DataFrame] = {}
    pools["label_issue"] = li.filter(pl.col("is_label_issue")).select(
        "id", pl.col("label_quality").alias("score"))

    cons = None
    if consensus is not None and consensus.height:
        if "id" not in consensus.columns and "item" in consensus.columns:
            consensus = consensus.rename({"item": "id"})
        _require(consensus, ["id", "majority", "dawid_skene", "agreement"], what="consensus")
        cons = consensus.select(
            pl.col("id").cast(pl.String), pl.col("majority").cast(pl.String),
            pl.col("dawid_skene").cast(pl.String), pl.col("agreement").cast(pl.Float64),
        ).unique("id", keep="first", maintain_order=True)
        disagree = cons.filter(
            pl.col("majority").is_not_null() & pl.col("dawid_skene").is_not_null()
            & (pl.col("majority") != pl.col("dawid_skene"))
        )
        pools["consensus_disagreement"] = disagree.select(
            "id", pl.col("agreement").fill_null(0.0).alias("score"))
        pools["low_agreement"] = cons.filter(
            pl.col("agreement") < mix.low_agreement_below
        ).select("id", pl.col("agreement").alias("score"))
    if probs is not None and probs.height:
        probs = probs.rename({probs.columns[0]: "id"}) if "id" not in probs.columns else probs
        probs = probs.with_columns(pl.col("id").cast(pl.String))
        unc = uncertainty_scores(probs, method=mix.uncertainty)
        unflagged = li.filter(~pl.col("is_label_issue")).select("id")
        pools["uncertain"] = unc.join(unflagged, on="id", how="semi").select("id", "score")

    # Each item under its first reason only; each pool sorted by score, ties by id. Items a
    # reviewer decided count as taken.
    taken: pl.DataFrame = pl.DataFrame(
        {"id": sorted({str(i) for i in reviewed})}, schema={"id": pl.String}
    )
    ordered: dict[str, pl.DataFrame] = {}
    for reason in mix.shares():
        pool = pools.get(reason)
        if pool is None or pool.height == 0:
            continue
        pool = (pool.unique("id", keep="first").join(taken, on="id", how="anti")
                .sort(["score", "id"], nulls_last=True))
        ordered[reason] = pool
        taken = pl.concat([taken, pool.select("id")])

    n_gold_wanted = round(limit * gold_rate) if gold is not None else 0
    budget = limit - n_gold_wanted
    quota = _allocate(budget, mix.shares(), {r: p.height for r, p in ordered.items()})
    parts = [
        ordered[r].head(quota[r]).with_columns(pl.lit(r).alias("reason"))
        for r in mix.shares() if quota.get(r, 0) > 0
    ]
    picked = (pl.concat(parts) if parts
              else pl.DataFrame(schema={"id": pl.String, "score": pl.Float64,
                                        "reason": pl.String}))

    gold_rows = pl.DataFrame(schema={"id": pl.String, "score": pl.Float64, "reason": pl.String})
    if gold is not None and n_gold_wanted > 0:
        _require(gold, ["id"], what="gold")
        ids = (gold.select(pl.col("id").cast(pl.String)).unique(maintain_order=True)
               .join(picked.select("id"), on="id", how="anti")
               .join(base.select("id"), on="id", how="semi").sort("id"))
        n_gold = min(n_gold_wanted, ids.height)
        rng = np.random.default_rng(seed)
        chosen: list[int] = (
            rng.choice(ids.height, size=n_gold, replace=False).tolist() if n_gold else []
        )
        gold_rows = ids[sorted(int(i) for i in chosen)].with_columns(
            pl.lit(None, pl.Float64).alias("score"), pl.lit("gold").alias("reason"))
        if n_gold < n_gold_wanted:  # too few gold items: give the slots back to the queue
            refill = _allocate(
                n_gold_wanted - n_gold, mix.shares(),
                {r: ordered[r].height - quota.get(r, 0) for r in ordered},
            )
            extra = [
                ordered[r].slice(quota.get(r, 0), refill[r]).with_columns(pl.lit(r).alias("reason"))
                for r in ordered if refill.get(r, 0) > 0
            ]
            picked = pl.concat([picked, *extra]).sort(
                pl.col("reason").replace_strict({r: i for i, r in enumerate(REASONS)}),
                maintain_order=True,
            )

    rows = picked.select("id", "reason", "score")
    if gold_rows.height:
        rng = np.random.default_rng(seed + 1)
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
        rows = pl.concat([rows, gold_rows.select("id", "reason", "score")])[order.tolist()]

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
    if probs is not None and probs.height:
        queue = queue.with_columns(
            pl.coalesce("given_probability", _prob_of(probs, queue, "given_label"))
            .alias("given_probability"),
            _prob_of(probs, queue, "suggested_label").alias("suggested_probability"),
        )
    else:
        queue = queue.with_columns(pl.lit(None, pl.Float64).alias("suggested_probability"))
    return queue.select([pl.col(c).cast(t) for c, t in QUEUE_SCHEMA.items()])


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


def read_corrections_file(path: str | Path, *, id_field: str = ID_FIELD,
                          from_name: str | None = None) -> CorrectionsFile:
    """``read_corrections``, also saying which rows were skipped unanswered (an empty label:
    id and row number) so the import reports them rather than dropping them silently."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such corrections file")
    suffix = path.suffix.lower()
    if suffix == ".json":
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
    known = [str(c) for c in classes]
    rejected: list[pl.DataFrame] = []

    gold_answers = pl.DataFrame()
    if gold is not None and gold.height:
        _require(gold, ["id", "label"], what="gold")
        g = gold.select(pl.col("id").cast(pl.String), pl.col("label").cast(pl.String)
                        .alias("gold_label")).unique("id", keep="first")
        gold_answers = corr.join(g, on="id", how="inner").drop("_pos")
        corr = corr.join(g, on="id", how="anti")

    unknown_id = corr.join(current, on="id", how="anti")
    rejected.append(unknown_id.with_columns(
        pl.lit("unknown_id").alias("check"),
        (pl.lit("unknown id: ") + pl.col("id")
         + pl.lit(" is not among the latest run's valid items")).alias("reason")))
    corr = corr.join(current, on="id", how="semi")
    bad_label = ~pl.col("label").is_in(known)
    rejected.append(corr.filter(bad_label).with_columns(
        pl.lit("unknown_label").alias("check"),
        (pl.lit("unknown label: ") + pl.col("label") + pl.lit(f" not in classes {known}"))
        .alias("reason")))
    corr = corr.filter(~bad_label)

    ranked = corr.sort(["id", "timestamp", "_pos"], nulls_last=False)
    latest = ranked.unique("id", keep="last", maintain_order=True)
    dups = ranked.join(latest.select("_pos"), on="_pos", how="anti")
    if dups.height:
        winner = latest.select("id", pl.col("where").alias("_winner"))
        rejected.append(dups.join(winner, on="id").with_columns(
            pl.lit("duplicate").alias("check"),
            (pl.lit("duplicate correction of id ") + pl.col("id")
             + pl.lit(": superseded by the later one at ") + pl.col("_winner")).alias("reason")
        ).drop("_winner"))
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


def store_corrections(
    validated: ValidatedCorrections,
    *,
    source_file: str | Path,
    dataset: str,
    store: Path,
    imported_at: datetime | None = None,
) -> Batch:
    """Write the applied corrections as an overlay batch in the lake:
    ``lake/<dataset>/corrections/batch=<hash>/`` with ``data.parquet`` (``OVERLAY_SCHEMA``:
    who, when, old label, new label), ``rejects.parquet`` (rejected, with reasons) and
    ``_batch.json``. The hash covers the file's bytes: importing the same file again is a
    no-op (the existing batch is returned with ``reused=True``)."""
    source_file = Path(source_file)
    digest = content_hash(source_file, options={"format": "corrections"})
    root = lake_dir(store, dataset, CORRECTIONS_SOURCE)
    target = root / f"batch={digest}"
    existing = existing_batch(target)
    if existing is not None:
        return existing
    now = (imported_at or datetime.now(UTC)).astimezone(UTC)
    data = validated.applied.with_columns(
        pl.col("timestamp").fill_null(pl.lit(now).cast(pl.Datetime("us", "UTC"))),
        pl.lit(now).cast(pl.Datetime("us", "UTC")).alias("imported_at"),
        pl.lit(digest).alias("_batch"),
    ).select([pl.col(c).cast(t) for c, t in OVERLAY_SCHEMA.items()])
    rejects = validated.rejected.with_columns(pl.lit(digest).alias("_batch"))
    batch = Batch(
        dataset=dataset, source=CORRECTIONS_SOURCE, batch=digest, file=str(source_file),
        format="corrections", rows=data.height, rejected=rejects.height, path=str(target),
        ingested_at=now.isoformat(timespec="seconds"),
    )
    frames = {"data": data, "rejects": rejects}
    if validated.gold_answers.height:
        frames["gold_answers"] = validated.gold_answers
    write_batch(batch, frames)
    return batch


def load_corrections(store: Path, dataset: str) -> pl.DataFrame:
    """Every complete corrections batch of a dataset (``OVERLAY_SCHEMA``), oldest first."""
    root = lake_dir(store, dataset, CORRECTIONS_SOURCE)
    frames = [
        pl.read_parquet(d / "data.parquet")
        for d in sorted(root.glob("batch=*")) if (d / MARKER).is_file()
    ]
    if not frames:
        return pl.DataFrame(schema=OVERLAY_SCHEMA)
    return pl.concat(
        [f.select([pl.col(c).cast(t) for c, t in OVERLAY_SCHEMA.items()]) for f in frames]
    ).sort(["imported_at", "timestamp"])


def load_gold_answers(store: Path, dataset: str) -> pl.DataFrame:
    """Reviewer answers on gold items across every corrections batch (id, label, reviewer,
    timestamp, where, gold_label): feed ``reviewer_accuracy``."""
    root = lake_dir(store, dataset, CORRECTIONS_SOURCE)
    frames = [
        pl.read_parquet(d / "gold_answers.parquet")
        for d in sorted(root.glob("batch=*"))
        if (d / MARKER).is_file() and (d / "gold_answers.parquet").is_file()
    ]
    return pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame()


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
