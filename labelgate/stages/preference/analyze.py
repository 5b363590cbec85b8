"""The preference stage's analysis: pairs, agreement, biases, consistency, swapped pairs.

`analyze` takes the valid judgments (after `check_judgments`) and the `preference:`
settings, and returns a `PreferenceAnalysis`: the judgments with their pair's columns
(pair_id, consensus, chosen, rejected, margin, swapped, label_quality), the pair table,
the per-annotator table, the contradictions, cycles and Bradley-Terry scores, the
``preference.*`` gate metrics and the report section. With rankings input the pairs'
consensus is the Bradley-Terry order of the two responses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from labelgate.stages.preference import consistency
from labelgate.stages.preference import pairs as pairs_mod
from labelgate.stages.preference.settings import PreferenceSpec
from labelgate.stages.preference.swaps import Embed, SwapResult, find_swapped_pairs
from labelgate.stages.preference.tokens import Tokenizer, describe

EXCERPT = 160
_PAIR_COLUMNS = ("pair_id", "consensus", "chosen", "rejected", "margin", "swapped",
                 "label_quality")


@dataclass(frozen=True)
class PreferenceAnalysis:
    """What the preference stage found (module docstring)."""

    judgments: pl.DataFrame
    pairs: pl.DataFrame
    annotators: pl.DataFrame
    contradictions: pl.DataFrame
    cycles: pl.DataFrame
    scores: pl.DataFrame
    metrics: dict[str, float] = field(default_factory=dict)
    section: dict[str, Any] = field(default_factory=dict)


def _finite(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def _oriented(pairs: pl.DataFrame, swaps: SwapResult) -> pl.DataFrame:
    """Pairs with chosen/rejected by consensus (tie: lo, hi) and the swap columns."""
    b_won = pl.col("consensus") == "b"
    out = pairs.join(swaps.table, on="pair_key", how="left", maintain_order="left")
    return out.with_columns(
        pl.when(b_won).then("hi").otherwise("lo").alias("chosen"),
        pl.when(b_won).then("lo").otherwise("hi").alias("rejected"),
        pl.col("swapped").fill_null(False),
    )


def _histogram(diff: pl.Series, bins: int = 21) -> dict[str, list[float]]:
    if diff.len() == 0:
        return {"edges": [], "counts": []}
    values = diff.to_numpy().astype(np.float64)
    lo, hi = np.percentile(values, [1, 99])
    span = max(abs(lo), abs(hi), 1.0)
    counts, edges = np.histogram(np.clip(values, -span, span), bins=bins, range=(-span, span))
    return {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]}


def _excerpt(name: str) -> pl.Expr:
    return pl.col(name).str.slice(0, EXCERPT)


def _max_position_bias(annotators: pl.DataFrame, *, min_judgments: int) -> tuple[float, str]:
    if "first_share" not in annotators.columns:
        return float("nan"), ""
    ok = annotators.filter(pl.col("position_decided") >= min_judgments).with_columns(
        pl.max_horizontal(pl.col("first_share"), 1 - pl.col("first_share")).alias("__b"))
    if ok.height == 0:
        return float("nan"), ""
    top = ok.sort("__b", descending=True).row(0, named=True)
    return float(top["__b"]), str(top["annotator"])


def analyze(valid: pl.DataFrame, *, settings: PreferenceSpec, rows_input: int,
            identical_rows: int, check_counts: dict[str, int] | None = None,
            embed: Embed | None = None, tokenizer: Tokenizer | None = None
            ) -> PreferenceAnalysis:
    """Analyse valid judgments (`JUDGMENT_SCHEMA` rows that passed the checks).

    Parameters
    ----------
    valid : pl.DataFrame
        Valid judgments, shape (n, k).
    settings : PreferenceSpec
        The spec's preference section.
    rows_input, identical_rows : int
        Judgments before the checks, and those quarantined as identical pairs (for the
        identical-pair rate).
    check_counts : dict
        Quarantined rows by check, for the report.
    embed : callable, optional
        A sentence encoder for the swapped-pair model (`swaps.embeddings`).
    tokenizer : Tokenizer, optional
        What counts the length-bias tokens (`preference.tokenizer`); None: whitespace.

    Returns
    -------
    PreferenceAnalysis
        judgments: `valid` plus `_PAIR_COLUMNS` (n rows); pairs: one row per pair.
    """
    keyed = pairs_mod.with_pair_keys(valid.rechunk())
    table = pairs_mod.pair_table(keyed)
    scores = consistency.bradley_terry(table)
    if settings.shape == "rankings":
        table = consistency.bt_consensus(table, scores)
    sw = settings.swaps
    swaps = (find_swapped_pairs(table, folds=sw.folds, seed=sw.seed, min_pairs=sw.min_pairs,
                                embed=embed)
             if sw.enabled else SwapResult(table.select("pair_key").with_columns(
                 pl.lit(None, pl.Float64).alias("p_lo"),
                 pl.lit(None, pl.Float64).alias("label_quality"),
                 pl.lit(False).alias("swapped")), {"fitted": False, "skipped": "off"}))
    oriented = _oriented(table, swaps)
    judgments = keyed.join(oriented.select("pair_key", *_PAIR_COLUMNS), on="pair_key",
                           how="left", maintain_order="left").drop(
        "prompt_key", "pair_key", "lo_first", "canon")
    annotators = pairs_mod.annotator_table(keyed, table, tokenizer)
    contra = consistency.contradictions(keyed)
    found = consistency.cycles(table)
    metrics, section = _summary(keyed, oriented, annotators, contra, found, scores, swaps,
                                settings=settings, rows_input=rows_input,
                                identical_rows=identical_rows, check_counts=check_counts,
                                tokenizer=tokenizer)
    return PreferenceAnalysis(judgments, oriented, annotators, contra, found, scores,
                              metrics, section)


def _summary(keyed: pl.DataFrame, pairs: pl.DataFrame, annotators: pl.DataFrame,
             contra: pl.DataFrame, found: pl.DataFrame, scores: pl.DataFrame,
             swaps: SwapResult, *, settings: PreferenceSpec, rows_input: int,
             identical_rows: int, check_counts: dict[str, int] | None,
             tokenizer: Tokenizer | None = None) -> tuple[dict[str, float], dict[str, Any]]:
    """The ``preference.*`` metrics (undefined ones left out) and the report section."""
    agree = pairs_mod.agreement(keyed, pairs)
    overall, _, diff = pairs_mod.length_bias(keyed, tokenizer)
    n_pairs = max(pairs.height, 1)
    contradicted = contra.get_column("pair_key").n_unique() if contra.height else 0
    cyc = consistency.cycle_summary(found, pairs.get_column("prompt_key").n_unique())
    position, who = _max_position_bias(annotators,
                                       min_judgments=settings.min_annotator_judgments)
    consensus = dict(pairs.group_by("consensus").len().rows())
    swapped = int(pairs.get_column("swapped").sum())
    values = {
        "judgments": float(keyed.height), "pairs": float(pairs.height),
        "percent_agreement": agree["percent_agreement"],
        "krippendorff_alpha": agree["krippendorff_alpha"],
        "length_bias_share": overall["longer_share_tokens"],
        "length_bias_share_chars": overall["longer_share_chars"],
        "contradiction_rate": contradicted / n_pairs,
        "identical_pair_rate": identical_rows / max(rows_input, 1),
        "max_position_bias": position,
        "tie_rate": consensus.get("tie", 0) / n_pairs,
        "swapped_rate": swapped / n_pairs,
        "cycle_rate": cyc["cycle_rate"],
    }
    metrics = {f"preference.{k}": float(v) for k, v in values.items() if _finite(v)}
    flagged = pairs.filter(pl.col("swapped")).sort("label_quality").head(20).select(
        "pair_id", _excerpt("prompt"), _excerpt("chosen"), _excerpt("rejected"),
        "label_quality")
    section = {
        "shape": settings.shape, "judgments": keyed.height, "pairs": pairs.height,
        "rows_input": rows_input, "quarantined_by_check": dict(check_counts or {}),
        "identical_rows": identical_rows, "metrics": values,
        "worst_position_bias_annotator": who or None,
        "agreement": agree, "consensus": {k: int(v) for k, v in consensus.items()},
        "annotators": annotators.to_dicts(),
        "length_bias": {**overall, "token_difference": _histogram(diff),
                        "tokens": describe(tokenizer)},
        "contradictions": {"pairs": contradicted, "examples": contra.head(10).to_dicts()},
        "cycles": {**cyc, "examples": found.head(10).to_dicts()},
        "bradley_terry": {"responses": scores.height,
                          "top": scores.sort("score", descending=True).head(5).select(
                              "prompt_key", _excerpt("response"), "score", "games").to_dicts()},
        "swaps": {**swaps.summary, "examples": flagged.to_dicts()},
        "policy": {"ties": settings.publish.ties, "flagged": settings.publish.flagged},
    }
    return metrics, section
