"""Published preference pairs in the formats TRL's trainers read.

`exclude_by_policy` applies the spec's policies to judgments (a run does so in the splits
stage, before the gate, so the report's row arithmetic counts what they exclude): tied
pairs are dropped (policy ``preference_tie``) or kept (parquet only); pairs flagged as
probably swapped are dropped (``preference_flagged``), flipped or kept. `published_pairs`
turns a split's judgments (with their pair's columns from `analyze`) into one row per pair
(flipping the flagged pairs under ``flip``). `trl_records` writes the rows as

- ``dpo``: ``{"prompt", "chosen", "rejected"}`` (standard preference: DPOTrainer,
  ORPOTrainer, CPOTrainer);
- ``dpo_conversational``: the prompt as its chat list, chosen and rejected as one
  assistant turn each;
- ``reward``: ``{"prompt", "chosen", "rejected", "margin"}`` (RewardTrainer; margin: the
  share of judgments the winner won by);
- ``kto`` / ``kto_conversational``: unpaired preference ``{"prompt", "completion",
  "label"}``, two rows per pair (chosen: true, rejected: false).

Tied pairs never go to a TRL file: no trainer format can say "equally good".
"""

from __future__ import annotations

import polars as pl

from labelgate.stages.preference.settings import PreferenceFormat

TRL_SUFFIX: dict[str, str] = {
    "dpo": "dpo", "dpo_conversational": "dpo_chat", "reward": "reward", "kto": "kto",
    "kto_conversational": "kto_chat",
}


def exclude_by_policy(judgments: pl.DataFrame, *, ties: str, flagged: str
                      ) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(kept, excluded) judgments by the ties and flagged-pair policies.

    Parameters
    ----------
    judgments : pl.DataFrame
        Judgments with `analyze`'s pair columns (consensus, swapped), shape (n, k).
    ties : {"drop", "keep"}
    flagged : {"drop", "flip", "keep"}

    Returns
    -------
    (kept, excluded)
        kept: shape (n_kept, k); excluded: the judgments of dropped pairs, shape
        (n - n_kept, k + 2), with exclusion_policy (``preference_tie`` or
        ``preference_flagged``) and exclusion_reason. A tied pair is never flagged.
    """
    tie = pl.col("consensus") == "tie"
    hit = pl.col("swapped").fill_null(False) & ~tie
    drop_tie, drop_hit = pl.lit(ties == "drop") & tie, pl.lit(flagged == "drop") & hit
    policy = (pl.when(drop_tie).then(pl.lit("preference_tie"))
              .when(drop_hit).then(pl.lit("preference_flagged")))
    reason = (pl.when(drop_tie).then(pl.lit(
        "the pair's consensus is a tie (preference.publish.ties: drop)"))
        .when(drop_hit).then(pl.lit(
            "probably swapped: the out-of-fold model prefers the rejected response "
            "(preference.publish.flagged: drop)")))
    marked = judgments.with_columns(policy.alias("exclusion_policy"),
                                    reason.alias("exclusion_reason"))
    dropped = pl.col("exclusion_policy").is_not_null()
    return (marked.filter(~dropped).drop("exclusion_policy", "exclusion_reason"),
            marked.filter(dropped))


def published_pairs(judgments: pl.DataFrame, *, ties: str, flagged: str
                    ) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(pairs, excluded judgments) of one split's judgments.

    Parameters
    ----------
    judgments : pl.DataFrame
        Kept judgments with id, prompt, prompt_messages and `analyze`'s pair columns
        (pair_id, consensus, chosen, rejected, margin, swapped, label_quality).
    ties : {"drop", "keep"}
    flagged : {"drop", "flip", "keep"}

    Returns
    -------
    (pairs, excluded)
        pairs: one row per published pair (pair_id, prompt, prompt_messages, chosen,
        rejected, preference (a decided pair's is "chosen", else "tie"), margin, judgments,
        swapped, flipped), sorted by pair_id; excluded: the judgments of dropped pairs
        (id, exclusion_policy, exclusion_reason), as `exclude_by_policy` drops them (a run
        has dropped them already, in the splits stage).
    """
    kept, excluded = exclude_by_policy(judgments, ties=ties, flagged=flagged)
    tie = pl.col("consensus") == "tie"
    swapped = pl.col("swapped").fill_null(False)
    flip = swapped & ~tie if flagged == "flip" else pl.lit(False)
    pairs = (kept.sort("id").group_by("pair_id", maintain_order=True)
             .agg(pl.col("prompt").first(), pl.col("prompt_messages").first(),
                  pl.col("chosen").first(), pl.col("rejected").first(),
                  pl.col("consensus").first(), pl.col("margin").first(),
                  pl.len().alias("judgments"), swapped.first().alias("swapped"))
             .with_columns(flip.alias("flipped")))
    pairs = pairs.with_columns(
        pl.when("flipped").then("rejected").otherwise("chosen").alias("chosen"),
        pl.when("flipped").then("chosen").otherwise("rejected").alias("rejected"),
        pl.when(pl.col("consensus") == "tie").then(pl.lit("tie")).otherwise(pl.lit("chosen"))
        .alias("preference"),
    ).drop("consensus")
    return pairs.sort("pair_id"), excluded.select("id", "exclusion_policy", "exclusion_reason")


def _turn(text: pl.Expr) -> pl.Expr:
    return pl.concat_list(pl.struct(pl.lit("assistant").alias("role"),
                                    text.alias("content")))


def trl_records(pairs: pl.DataFrame, fmt: PreferenceFormat) -> pl.DataFrame:
    """The rows of one TRL file from `published_pairs`' decided pairs (ties left out)."""
    decided = pairs.filter(pl.col("preference") != "tie").sort("pair_id")
    conversational = fmt in ("dpo_conversational", "kto_conversational")
    prompt = pl.col("prompt_messages") if conversational else pl.col("prompt")
    chosen = _turn(pl.col("chosen")) if conversational else pl.col("chosen")
    rejected = _turn(pl.col("rejected")) if conversational else pl.col("rejected")
    if fmt in ("dpo", "dpo_conversational"):
        return decided.select(prompt.alias("prompt"), chosen.alias("chosen"),
                              rejected.alias("rejected"))
    if fmt == "reward":
        return decided.select("prompt", "chosen", "rejected", "margin")
    good = decided.select(prompt.alias("prompt"), chosen.alias("completion"),
                          pl.lit(True).alias("label"), "pair_id")
    bad = decided.select(prompt.alias("prompt"), rejected.alias("completion"),
                         pl.lit(False).alias("label"), "pair_id")
    return (pl.concat([good, bad]).with_row_index("__o")
            .sort("pair_id", "__o").drop("__o", "pair_id"))
