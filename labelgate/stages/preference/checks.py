"""Row checks of preference judgments: what is quarantined, with a reason per failure.

`check_judgments` runs on the judgment frame (`labelgate.stages.preference.read`) and
returns the valid rows and one quarantine record per failed (row, column, check):

- ``empty_prompt`` / ``empty_response``: null or whitespace-only text;
- ``preference_value``: a preference outside a | b | tie after the value map (or none);
- ``identical_pair``: the two responses are the same text; ``identical_normalised``: the
  same after the dedup stage's normalisation (NFKC, lowercase, whitespace collapsed);
  ``near_identical_pair``: their MinHash Jaccard estimate (the dedup stage's character
  shingles, hashes and rensa signatures) is at least `near_threshold`;
- ``response_over_budget``: more tokens than `max_tokens` (whitespace tokens, or those of
  the configured tokenizer, `labelgate.stages.preference.tokens`);
  ``identical_after_truncation``: the first `max_tokens` tokens of both are the same (what a
  trainer truncating to the budget would see), for a pair not already identical.

A row is checked once per check; an identical pair is reported by the strongest check
only (exact, then normalised, then near). Identical-type checks count towards the
identical-pair rate (`IDENTICAL_CHECKS`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from labelgate.stages.dedup import Shard, normalize_text, shard_signatures
from labelgate.stages.preference.tokens import Tokenizer, count_tokens, describe, head_tokens

QUARANTINE_COLUMNS = ("source", "batch", "row", "id", "column", "check", "failure_value",
                      "reason")
IDENTICAL_CHECKS = ("identical_pair", "identical_normalised", "near_identical_pair",
                    "identical_after_truncation")
_EXCERPT = 120
MINHASH_SEED = 13  # the dedup stage's default seed


@dataclass(frozen=True)
class PairCheckResult:
    """Valid judgments, the quarantine (`QUARANTINE_COLUMNS`) and counts by check."""

    valid: pl.DataFrame
    quarantine: pl.DataFrame
    rows_input: int
    counts: dict[str, int]
    identical_rows: int  # rows failing an identical-type check, each once

    @property
    def rows_quarantined(self) -> int:
        return self.rows_input - self.valid.height


def tokens(text: pl.Expr, tokenizer: Tokenizer | None = None) -> pl.Expr:
    """Tokens in `text`: runs of non-whitespace, or the tokenizer's (`count_tokens`)."""
    return count_tokens(text, tokenizer)


def _blank(text: pl.Expr) -> pl.Expr:
    return text.is_null() | (text.str.strip_chars() == "")


def near_similarity(a: pl.Series, b: pl.Series, *, shingle: int = 5, num_perm: int = 128,
                    seed: int = MINHASH_SEED) -> np.ndarray[Any, np.dtype[np.float64]]:
    """Row-wise MinHash Jaccard estimates of two text series (the dedup stage's signatures
    over character `shingle`-shingles of the normalised text); shape (n,)."""
    n = a.len()
    if n == 0:
        return np.zeros(0)
    keys = pl.concat([normalize_text(a.cast(pl.String)), normalize_text(b.cast(pl.String))])
    sigs = shard_signatures(Shard(keys.fill_null(""), shingle, num_perm, seed))
    return np.asarray((sigs[:n] == sigs[n:]).mean(axis=1), dtype=np.float64)


def _record(frame: pl.DataFrame, mask: pl.Expr, *, column: str, check: str,
            value: pl.Expr, reason: pl.Expr | str) -> pl.DataFrame:
    reason_expr = pl.lit(reason) if isinstance(reason, str) else reason
    return frame.filter(mask).select(
        "__i", pl.col("id"), pl.lit(column).alias("column"), pl.lit(check).alias("check"),
        value.cast(pl.String).str.slice(0, _EXCERPT).alias("failure_value"),
        reason_expr.alias("reason"),
    )


def _text_failures(df: pl.DataFrame) -> list[pl.DataFrame]:
    out = [_record(df, _blank(pl.col("prompt")), column="prompt", check="empty_prompt",
                   value=pl.col("prompt"), reason="the prompt is empty"),
           _record(df, ~pl.col("id").is_first_distinct(), column="id", check="duplicate_id",
                   value=pl.col("id"), reason="an earlier row has this id")]
    for side in ("response_a", "response_b"):
        out.append(_record(df, _blank(pl.col(side)), column=side, check="empty_response",
                           value=pl.col(side), reason=f"{side} is empty"))
    pref = pl.col("preference")
    out.append(_record(
        df, ~pref.is_in(["a", "b", "tie"]).fill_null(False), column="preference",
        check="preference_value", value=pl.coalesce("preference_raw", "preference"),
        reason=pl.when(pref.is_null()).then(pl.lit("no preference given")).otherwise(
            pl.format("preference {} is not one of a, b, tie (preference.values)",
                      pl.coalesce("preference_raw", "preference")))))
    return out


def _identical_failures(df: pl.DataFrame, *, near_threshold: float | None) -> list[pl.DataFrame]:
    a, b = pl.col("response_a"), pl.col("response_b")
    both = ~_blank(a) & ~_blank(b)
    exact = both & (a == b)
    normal = both & ~exact & (normalize_text(a) == normalize_text(b))
    out = [
        _record(df, exact, column="response_b", check="identical_pair", value=b,
                reason="chosen and rejected are the same text"),
        _record(df, normal, column="response_b", check="identical_normalised", value=b,
                reason="chosen and rejected differ only in case, width or whitespace"),
    ]
    if near_threshold is None:
        return out
    todo = df.filter(both & ~exact & ~normal)
    sim = near_similarity(todo.get_column("response_a"), todo.get_column("response_b"))
    todo = todo.with_columns(pl.Series("__sim", sim))
    out.append(_record(
        todo, pl.col("__sim") >= near_threshold, column="response_b",
        check="near_identical_pair", value=b,
        reason=pl.format("chosen and rejected are near-identical (MinHash Jaccard {} >= {})",
                         pl.col("__sim").round(3), pl.lit(near_threshold))))
    return out


def _budget_failures(df: pl.DataFrame, *, max_tokens: int, tokenizer: Tokenizer | None
                     ) -> list[pl.DataFrame]:
    out = []
    counts = df.with_columns(tokens(pl.col("response_a"), tokenizer).alias("__ta"),
                             tokens(pl.col("response_b"), tokenizer).alias("__tb"))
    unit = describe(tokenizer)
    for side, n in (("response_a", "__ta"), ("response_b", "__tb")):
        out.append(_record(
            counts, pl.col(n) > max_tokens, column=side, check="response_over_budget",
            value=pl.col(n),
            reason=pl.format("{} has {} {} (> preference.max_tokens {})",
                             pl.lit(side), pl.col(n), pl.lit(unit), pl.lit(max_tokens))))
    a, b = pl.col("response_a"), pl.col("response_b")
    over = counts.filter(((pl.col("__ta") > max_tokens) | (pl.col("__tb") > max_tokens))
                         & ~_blank(a) & ~_blank(b) & (normalize_text(a) != normalize_text(b)))

    def head(text: pl.Expr) -> pl.Expr:
        return head_tokens(text, max_tokens, tokenizer)

    out.append(_record(
        over, head(a) == head(b), column="response_b", check="identical_after_truncation",
        value=head(b), reason=pl.lit(f"chosen and rejected are the same within the first "
                                     f"{max_tokens} {unit} (preference.max_tokens)")))
    return out


def check_judgments(
    df: pl.DataFrame, *, max_tokens: int | None = None, near_threshold: float | None = 0.9,
    source: str = "items", tokenizer: Tokenizer | None = None,
) -> PairCheckResult:
    """Split judgments (`JUDGMENT_SCHEMA`) into valid rows and a quarantine.

    Parameters
    ----------
    df : pl.DataFrame
        Judgments, shape (n, k), ids unique.
    max_tokens : int or None
        The response token budget; None: no budget checks.
    near_threshold : float or None
        MinHash Jaccard at or above which a pair is near-identical; None: off.
    source : str
        The spec's source name for the quarantine's `source` column.
    tokenizer : Tokenizer or None
        What counts tokens for the budget (`preference.tokenizer`); None: whitespace.

    Returns
    -------
    PairCheckResult
        valid (rows with no failure, df's columns), quarantine (one record per failure,
        `QUARANTINE_COLUMNS`), rows_input = n, counts by check.
    """
    # one chunk: polars 2.1 panics on pl.format over a filtered multi-chunk string column
    df = df.rechunk().with_row_index("__i")
    parts = _text_failures(df) + _identical_failures(df, near_threshold=near_threshold)
    if max_tokens is not None:
        parts += _budget_failures(df, max_tokens=max_tokens, tokenizer=tokenizer)
    failures = pl.concat(parts, how="vertical_relaxed")
    where = df.select("__i", pl.col("_batch").cast(pl.String) if "_batch" in df.columns
                      else pl.lit(None, pl.String).alias("_batch"),
                      pl.col("_row").cast(pl.Int64) if "_row" in df.columns
                      else pl.lit(None, pl.Int64).alias("_row"))
    quarantine = failures.join(where, on="__i", how="left", maintain_order="left").select(
        pl.lit(source).alias("source"), pl.col("_batch").alias("batch"),
        pl.col("_row").alias("row"), *QUARANTINE_COLUMNS[3:])
    valid = df.join(failures.select("__i").unique(), on="__i", how="anti",
                    maintain_order="left").drop("__i")
    counts = dict(failures.group_by("check").agg(pl.col("__i").n_unique()).sort("check").rows())
    identical = failures.filter(pl.col("check").is_in(IDENTICAL_CHECKS))
    return PairCheckResult(valid, quarantine, df.height, {k: int(v) for k, v in counts.items()},
                           identical.get_column("__i").n_unique())
