"""Consistency of preference judgments: contradictions, intransitive cycles and a
Bradley-Terry score per response.

- A **contradiction** is a pair (`labelgate.stages.preference.pairs`) decided both ways by
  one annotator, or, for rows without an annotator (binarized pairs), by two rows: the
  same prompt and responses with chosen and rejected swapped. Different annotators who
  disagree are measured by the agreement, not counted here.
- An **intransitive cycle**: among one prompt's responses, consensus edges winner -> loser
  that close a loop (A > B, B > C, C > A): a strongly connected component of three or
  more responses (scipy `connected_components(connection="strong")`).
- **Bradley-Terry** strengths fitted by Hunter's (2004) MM algorithm over every response
  at once (vectorised with numpy, so 100,000s of responses fit in one pass; choix's
  solvers build a dense n x n matrix or loop in Python per comparison). A tie counts half a
  win each way. Each response plays `prior` virtual games (half won) against a virtual
  response of strength 1, which keeps the fit finite for undefeated responses and pins
  the scale; with ``prior=0`` it is the maximum-likelihood fit, which the tests compare
  with choix's `ilsr_pairwise`. Scores are log-strengths centred per prompt.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from labelgate.stages.preference.pairs import NO_ANNOTATOR

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def contradictions(keyed: pl.DataFrame) -> pl.DataFrame:
    """Pairs decided both ways by one annotator (or by rows without one): pair_key,
    annotator, n_a, n_b (canon votes); one row per (pair, annotator)."""
    who = pl.col("annotator").fill_null(NO_ANNOTATOR)
    return (keyed.filter(pl.col("canon").is_in(["a", "b"]))
            .group_by("pair_key", who.alias("annotator"))
            .agg((pl.col("canon") == "a").sum().alias("n_a"),
                 (pl.col("canon") == "b").sum().alias("n_b"), pl.col("id").min().alias("id"))
            .filter((pl.col("n_a") > 0) & (pl.col("n_b") > 0))
            .sort("id"))


def _node_index(pairs: pl.DataFrame) -> tuple[pl.DataFrame, IntArray, IntArray]:
    """Responses as nodes: (nodes: prompt_key, response, node), lo index, hi index."""
    sides = pl.concat([
        pairs.select("prompt_key", pl.col("lo").alias("response"), pl.col("lo_key")
                     .alias("key")),
        pairs.select("prompt_key", pl.col("hi").alias("response"), pl.col("hi_key")
                     .alias("key")),
    ])
    nodes = (sides.group_by("prompt_key", "key").agg(pl.col("response").first())
             .sort("prompt_key", "key").with_row_index("node"))
    keyed = pairs.join(nodes.select("prompt_key", pl.col("key").alias("lo_key"),
                                    pl.col("node").alias("lo_node")),
                       on=["prompt_key", "lo_key"], how="left", maintain_order="left")
    keyed = keyed.join(nodes.select("prompt_key", pl.col("key").alias("hi_key"),
                                    pl.col("node").alias("hi_node")),
                       on=["prompt_key", "hi_key"], how="left", maintain_order="left")
    return (nodes, keyed.get_column("lo_node").to_numpy().astype(np.int64),
            keyed.get_column("hi_node").to_numpy().astype(np.int64))


def with_text_keys(pairs: pl.DataFrame) -> pl.DataFrame:
    """`pairs` plus lo_key and hi_key (the normalised texts, from pair_key)."""
    parts = pl.col("pair_key").str.split_exact("\x1f", 2)
    return pairs.with_columns(parts.struct.field("field_1").alias("lo_key"),
                              parts.struct.field("field_2").alias("hi_key"))


def cycles(pairs: pl.DataFrame) -> pl.DataFrame:
    """Prompts whose consensus edges contain a cycle: prompt_key, size (responses in the
    strongly connected component), responses (up to 5, as text); one row per cycle."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    keyed = with_text_keys(pairs)
    nodes, lo, hi = _node_index(keyed)
    cons = keyed.get_column("consensus").to_numpy()
    win = np.where(cons == "a", lo, hi)[cons != "tie"]
    lose = np.where(cons == "a", hi, lo)[cons != "tie"]
    n = nodes.height
    empty = pl.DataFrame(schema={"prompt_key": pl.String, "size": pl.UInt32,
                                 "responses": pl.List(pl.String)})
    if n == 0 or len(win) == 0:
        return empty
    graph = coo_matrix((np.ones(len(win), dtype=np.int8), (win, lose)), shape=(n, n))
    _, comp = connected_components(graph, directed=True, connection="strong")
    out = (nodes.with_columns(pl.Series("comp", comp))
           .group_by("comp").agg(pl.col("prompt_key").first(), pl.len().alias("size"),
                                 pl.col("response").head(5).alias("responses"))
           .filter(pl.col("size") >= 3).sort("prompt_key").drop("comp"))
    return out if out.height else empty


def bradley_terry_mm(
    n_nodes: int, winners: IntArray, losers: IntArray, *, weights: FloatArray | None = None,
    prior: float = 0.1, max_iter: int = 500, tol: float = 1e-8,
) -> FloatArray:
    """Bradley-Terry log-strengths by Hunter's MM algorithm (module docstring).

    Parameters
    ----------
    n_nodes : int
        Number of items.
    winners, losers : int arrays, shape (m,)
        One comparison per position (a tie: two comparisons of weight 0.5).
    weights : float array, shape (m,), optional
        Each comparison's weight (default 1).
    prior : float
        Virtual games per item against a reference of strength 1, half won; 0: plain MLE
        (finite only when the comparison graph is strongly connected).

    Returns
    -------
    numpy.ndarray
        Shape (n_nodes,): log-strengths (prior 0: centred to mean 0).
    """
    w_cmp = np.ones(len(winners)) if weights is None else np.asarray(weights, dtype=np.float64)
    wins = np.bincount(winners, weights=w_cmp, minlength=n_nodes) + prior / 2
    strength = np.ones(n_nodes)
    for _ in range(max_iter):
        inv = w_cmp / (strength[winners] + strength[losers])
        denom = (np.bincount(winners, weights=inv, minlength=n_nodes)
                 + np.bincount(losers, weights=inv, minlength=n_nodes)
                 + prior / (strength + 1.0))
        new = np.where(denom > 0, wins / np.where(denom > 0, denom, 1.0), strength)
        if prior == 0:
            new = new / np.exp(np.log(np.maximum(new, 1e-300)).mean())
        done = np.max(np.abs(np.log(np.maximum(new, 1e-300))
                             - np.log(np.maximum(strength, 1e-300)))) < tol
        strength = new
        if done:
            break
    scores = np.log(np.maximum(strength, 1e-300))
    return scores - scores.mean() if prior == 0 else scores


def bradley_terry(pairs: pl.DataFrame, *, prior: float = 0.1) -> pl.DataFrame:
    """A Bradley-Terry score per response from the pairs' votes (n_a, n_b, n_tie).

    Returns
    -------
    pl.DataFrame
        One row per response: prompt_key, key (normalised text), response, score
        (log-strength centred per prompt), wins, games; sorted by prompt_key, score desc.
    """
    keyed = with_text_keys(pairs)
    nodes, lo, hi = _node_index(keyed)
    na, nb, nt = (keyed.get_column(c).to_numpy().astype(np.float64)
                  for c in ("n_a", "n_b", "n_tie"))
    winners = np.concatenate([lo, hi, lo, hi])
    losers = np.concatenate([hi, lo, hi, lo])
    weights = np.concatenate([na, nb, nt / 2, nt / 2])
    keep = weights > 0
    scores = bradley_terry_mm(nodes.height, winners[keep], losers[keep],
                              weights=weights[keep], prior=prior)
    wins = np.bincount(winners[keep], weights=weights[keep], minlength=nodes.height)
    games = (np.bincount(winners[keep], weights=weights[keep], minlength=nodes.height)
             + np.bincount(losers[keep], weights=weights[keep], minlength=nodes.height))
    out = nodes.with_columns(pl.Series("score", scores), pl.Series("wins", wins),
                             pl.Series("games", games))
    out = out.with_columns((pl.col("score") - pl.col("score").mean().over("prompt_key"))
                           .alias("score"))
    return out.drop("node").sort(["prompt_key", "score"], descending=[False, True])


def bt_consensus(pairs: pl.DataFrame, scores: pl.DataFrame, *, eps: float = 1e-6
                 ) -> pl.DataFrame:
    """`pairs` with `consensus` replaced by the Bradley-Terry order of lo and hi (a: lo
    scores higher, b: hi does, tie: within `eps`); used for rankings input."""
    keyed = with_text_keys(pairs)
    s = scores.select("prompt_key", "key", "score")
    keyed = keyed.join(s.rename({"key": "lo_key", "score": "__slo"}),
                       on=["prompt_key", "lo_key"], how="left", maintain_order="left")
    keyed = keyed.join(s.rename({"key": "hi_key", "score": "__shi"}),
                       on=["prompt_key", "hi_key"], how="left", maintain_order="left")
    d = pl.col("__slo") - pl.col("__shi")
    cons = pl.when(d > eps).then(pl.lit("a")).when(d < -eps).then(pl.lit("b")).otherwise(
        pl.lit("tie"))
    return keyed.with_columns(cons.alias("consensus")).drop("__slo", "__shi", "lo_key",
                                                             "hi_key")


def cycle_summary(found: pl.DataFrame, prompts: int) -> dict[str, Any]:
    """Counts for the report: prompts with a cycle, and their share of prompts."""
    n = found.get_column("prompt_key").n_unique() if found.height else 0
    return {"prompts_with_cycles": n, "prompts": prompts,
            "cycle_rate": n / prompts if prompts else 0.0}
