"""Pairs, consensus and agreement over preference judgments.

A **pair** is a prompt and an unordered pair of responses, keyed on their normalised text
(the dedup stage's `normalize_text`), so the same two responses shown in either order are
one pair. Within a pair the responses are put in a canonical order (``lo`` = the smaller
normalised text), and each judgment's preference is re-expressed in it (``canon``: ``a`` =
lo preferred, ``b`` = hi preferred, ``tie``); agreement is measured over those labels.

- **consensus** of a pair: the most common canon label; a / b equal and at least the ties'
  count is a split decision, read as ``tie``; ``margin`` = (winner's votes - loser's votes)
  / judgments, in [0, 1];
- **Krippendorff's alpha** (nominal, the krippendorff package through the agreement
  stage's `krippendorff_alpha`) and **percent agreement** (agreeing judgment pairs per pair,
  averaged over pairs judged twice or more) over {a, b, tie};
- **each annotator's agreement** with the leave-one-out consensus: the modal label of the
  other annotators' judgments of the same pair, where it is unique;
- **position bias**: each annotator's share of decided judgments for the response shown
  first (binarized rows have no display order and are left out), with a two-sided exact
  binomial test against 0.5 (scipy `binomtest`);
- **length bias**: the share of decided judgments whose chosen response is longer than the
  rejected one, in characters and in whitespace tokens, overall and by annotator.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
from scipy.stats import binomtest

from labelgate.stages.agreement.coefficients import krippendorff_alpha, percent_agreement
from labelgate.stages.dedup import normalize_text
from labelgate.stages.preference.checks import tokens
from labelgate.stages.preference.tokens import Tokenizer

LABELS = ("a", "b", "tie")
_SEP = "\x1f"
NO_ANNOTATOR = "(none)"


def with_pair_keys(judgments: pl.DataFrame) -> pl.DataFrame:
    """`judgments` plus prompt_key, pair_key, lo_first (response_a is the canonical first)
    and canon (the preference in the canonical order); same rows and order."""
    ka = normalize_text(pl.col("response_a"))
    kb = normalize_text(pl.col("response_b"))
    prompt_key = normalize_text(pl.col("prompt"))
    lo_first = ka <= kb
    lo = pl.when(lo_first).then(ka).otherwise(kb)
    hi = pl.when(lo_first).then(kb).otherwise(ka)
    pref = pl.col("preference")
    canon = (pl.when(pref == "tie").then(pl.lit("tie"))
             .when((pref == "a") == lo_first).then(pl.lit("a")).otherwise(pl.lit("b")))
    return judgments.with_columns(
        prompt_key.alias("prompt_key"),
        pl.concat_str(prompt_key, pl.lit(_SEP), lo, pl.lit(_SEP), hi).alias("pair_key"),
        lo_first.alias("lo_first"),
        canon.alias("canon"),
    )


def pair_table(keyed: pl.DataFrame) -> pl.DataFrame:
    """One row per pair: pair_key, pair_id (the smallest judgment id), prompt_key, prompt,
    prompt_messages, lo, hi (texts as first seen), n_judgments, n_a, n_b, n_tie, consensus
    (canon label) and margin; sorted by pair_id."""
    lo_text = pl.when(pl.col("lo_first")).then("response_a").otherwise("response_b")
    hi_text = pl.when(pl.col("lo_first")).then("response_b").otherwise("response_a")
    counts = keyed.sort("id").group_by("pair_key", maintain_order=True).agg(
        pl.col("id").first().alias("pair_id"),
        pl.col("prompt_key").first(), pl.col("prompt").first(),
        pl.col("prompt_messages").first(),
        lo_text.first().alias("lo"), hi_text.first().alias("hi"),
        pl.len().alias("n_judgments"),
        *[(pl.col("canon") == lab).sum().alias(f"n_{lab}") for lab in LABELS],
    )
    na, nb, nt = pl.col("n_a"), pl.col("n_b"), pl.col("n_tie")
    consensus = (pl.when((na > nb) & (na > nt)).then(pl.lit("a"))
                 .when((nb > na) & (nb > nt)).then(pl.lit("b")).otherwise(pl.lit("tie")))
    margin = ((na - nb).abs() / pl.col("n_judgments")).cast(pl.Float64)
    return counts.with_columns(consensus.alias("consensus"), margin.alias("margin")).sort(
        "pair_id")


def agreement(keyed: pl.DataFrame, pairs: pl.DataFrame) -> dict[str, Any]:
    """Krippendorff's alpha and percent agreement over the pairs' {a, b, tie} counts.

    Returns
    -------
    dict
        krippendorff_alpha, percent_agreement (NaN when no pair was judged twice),
        pairs_multi (pairs judged at least twice), judgments, pairs.
    """
    counts = pairs.select("n_a", "n_b", "n_tie").to_numpy().astype(np.float64)
    multi = counts.sum(axis=1) >= 2
    alpha = krippendorff_alpha(counts[multi], level="nominal") if multi.any() else float("nan")
    pct = percent_agreement(counts) if multi.any() else float("nan")
    return {"krippendorff_alpha": alpha, "percent_agreement": pct,
            "pairs_multi": int(multi.sum()), "judgments": keyed.height, "pairs": pairs.height}


def _decided(keyed: pl.DataFrame, tokenizer: Tokenizer | None = None) -> pl.DataFrame:
    """Decided judgments (a or b) with chosen/rejected lengths in chars and tokens."""
    a_won = pl.col("preference") == "a"
    chosen = pl.when(a_won).then("response_a").otherwise("response_b")
    rejected = pl.when(a_won).then("response_b").otherwise("response_a")
    return keyed.filter(pl.col("preference").is_in(["a", "b"])).with_columns(
        chosen.str.len_chars().alias("chosen_chars"),
        rejected.str.len_chars().alias("rejected_chars"),
        tokens(chosen, tokenizer).alias("chosen_tokens"),
        tokens(rejected, tokenizer).alias("rejected_tokens"),
        pl.col("annotator").fill_null(NO_ANNOTATOR).alias("who"),
    )


def _length_exprs() -> list[pl.Expr]:
    return [
        pl.len().alias("decided"),
        (pl.col("chosen_chars") > pl.col("rejected_chars")).mean().alias(
            "longer_share_chars"),
        (pl.col("chosen_tokens") > pl.col("rejected_tokens")).mean().alias(
            "longer_share_tokens"),
        (pl.col("chosen_tokens") == pl.col("rejected_tokens")).mean().alias(
            "equal_share_tokens"),
    ]


def length_bias(keyed: pl.DataFrame, tokenizer: Tokenizer | None = None
                ) -> tuple[dict[str, Any], pl.DataFrame, pl.Series]:
    """The share of decided judgments whose chosen response is longer (tokens: whitespace
    tokens, or `tokenizer`'s).

    Returns
    -------
    (overall, by_annotator, token_difference)
        overall: decided, longer_share_chars, longer_share_tokens, equal_share_tokens;
        by_annotator: the same per annotator (``(none)`` for rows without one);
        token_difference: chosen minus rejected tokens per decided judgment, shape (decided,).
    """
    d = _decided(keyed, tokenizer)
    if d.height == 0:
        empty = {"decided": 0, "longer_share_chars": float("nan"),
                 "longer_share_tokens": float("nan"), "equal_share_tokens": float("nan")}
        return empty, pl.DataFrame(schema={"annotator": pl.String}), pl.Series([], dtype=pl.Int64)
    overall = d.select(_length_exprs()).to_dicts()[0]
    by = d.group_by("who").agg(_length_exprs()).rename({"who": "annotator"}).sort("annotator")
    diff = (d.get_column("chosen_tokens").cast(pl.Int64)
            - d.get_column("rejected_tokens").cast(pl.Int64)).alias("token_difference")
    return overall, by, diff


def position_bias(keyed: pl.DataFrame) -> pl.DataFrame:
    """Per annotator: decided judgments with a known display order, the share for the
    response shown first, and the two-sided binomial test's p-value against 0.5; shape
    (n_annotators, 4), sorted by annotator."""
    d = keyed.filter(pl.col("preference").is_in(["a", "b"]) & pl.col("annotator").is_not_null()
                     & (pl.col("shape") != "binarized"))
    by = d.group_by("annotator").agg(pl.len().alias("position_decided"),
                                     (pl.col("preference") == "a").sum().alias("__first"))
    p = [binomtest(int(k), int(n), 0.5).pvalue
         for k, n in by.select("__first", "position_decided").rows()]
    return by.with_columns(
        (pl.col("__first") / pl.col("position_decided")).alias("first_share"),
        pl.Series("position_p_value", p, dtype=pl.Float64),
    ).drop("__first").sort("annotator")


def loo_agreement(keyed: pl.DataFrame, pairs: pl.DataFrame) -> pl.DataFrame:
    """Per annotator: judgments of pairs with a unique modal label among the other
    annotators' judgments (loo_items) and the share agreeing with it (loo_agreement)."""
    j = keyed.filter(pl.col("annotator").is_not_null()).join(
        pairs.select("pair_key", "n_a", "n_b", "n_tie"), on="pair_key", how="left")
    others = [pl.col(f"n_{lab}") - (pl.col("canon") == lab).cast(pl.UInt32)
              for lab in LABELS]
    j = j.with_columns(*[o.alias(f"o_{lab}") for o, lab in zip(others, LABELS, strict=True)])
    top = pl.max_horizontal(*[pl.col(f"o_{lab}") for lab in LABELS])
    n_top = pl.sum_horizontal(*[(pl.col(f"o_{lab}") == top).cast(pl.Int32) for lab in LABELS])
    mode = (pl.when(pl.col("o_a") == top).then(pl.lit("a"))
            .when(pl.col("o_b") == top).then(pl.lit("b")).otherwise(pl.lit("tie")))
    scored = j.filter((top > 0) & (n_top == 1)).with_columns(mode.alias("__mode"))
    return scored.group_by("annotator").agg(
        pl.len().alias("loo_items"),
        (pl.col("canon") == pl.col("__mode")).mean().alias("loo_agreement"),
    ).sort("annotator")


def annotator_table(keyed: pl.DataFrame, pairs: pl.DataFrame,
                    tokenizer: Tokenizer | None = None) -> pl.DataFrame:
    """Per annotator: judgments, loo_items, loo_agreement, position_decided, first_share,
    position_p_value, decided, longer_share_chars, longer_share_tokens, equal_share_tokens."""
    base = (keyed.filter(pl.col("annotator").is_not_null()).group_by("annotator")
            .agg(pl.len().alias("judgments")).sort("annotator"))
    _, lengths, _ = length_bias(keyed.filter(pl.col("annotator").is_not_null()), tokenizer)
    out = base.join(loo_agreement(keyed, pairs), on="annotator", how="left")
    out = out.join(position_bias(keyed), on="annotator", how="left")
    if lengths.height:
        out = out.join(lengths, on="annotator", how="left")
    return out.sort("annotator")
