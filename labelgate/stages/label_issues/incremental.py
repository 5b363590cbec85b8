"""Nights that cost what is new: new rows scored by an earlier run's fold models.

A full run of the built-in text model keeps what it fitted (`models.KeptModels`: the text
vocabulary and every pass's fold models) and every row's out-of-fold probabilities. A later
run whose rows are the kept rows, unchanged, plus new ones need not train again:

* the kept rows keep their probabilities (each came from a model that never saw the row);
* each new row is scored like an out-of-fold row, by one fold's models (the fold its id
  hashes to: `new_row_folds`), and none of those models saw it, because it did not exist
  when they were fitted;
* the flags, label quality and noise matrix are then computed again over every row's
  probabilities (cleanlab's per-class thresholds need all of them; that is cheap).

`plan_refresh` decides whether a run may do that or must train again: it must when there
is nothing kept for the same settings, when a kept row changed (its label, text or id) or
is gone, when a new class appears, when the share of rows the models did not train on passes
``max_new_share``, or when the models are older than ``every_days``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np
import polars as pl
from threadpoolctl import threadpool_limits

from labelgate.stages.label_issues.arrays import BoolArray, FloatArray, IntArray

if TYPE_CHECKING:  # `models` (scikit-learn) is imported when kept models score new rows
    from labelgate.stages.label_issues.models import KeptModels

__all__ = [
    "KeptRows",
    "RefreshPlan",
    "combined_probabilities",
    "new_row_folds",
    "plan_refresh",
    "row_hashes",
    "score_with_kept",
]


@dataclass(frozen=True)
class KeptRows:
    """What an earlier run left to build on.

    ``rows``: id (String), h (UInt64, `row_hashes`), one Float32 column per class (in
    ``classes`` order, named by position: c0, c1, ...). ``models_from``: the run whose fold
    models are kept, ``trained_rows``: how many rows they trained on (its valid rows),
    ``trained_at``: when. ``parts``: the runs whose kept units hold ``rows``, oldest first
    (a night writes only the rows it adds, beside the rows it read:
    `labelgate.store.kept_models`); empty when not read from a store.
    """

    rows: pl.DataFrame
    classes: list[str]
    models_from: str
    trained_rows: int
    trained_at: datetime
    parts: tuple[str, ...] = ()


@dataclass(frozen=True)
class RefreshPlan:
    """Whether this run builds on kept models (``incremental``) or trains again, and why.

    ``new``: per current row, whether it is not among the kept rows (n,). ``new_share``: the
    share of the current rows the kept models did not train on.
    """

    incremental: bool
    reason: str
    new: BoolArray
    new_share: float


def row_hashes(valid: pl.DataFrame, *, id_column: str, columns: Sequence[str]) -> pl.DataFrame:
    """id (as text) and a hash (UInt64) of each row's id and ``columns`` (label, text,
    features): a kept row whose hash differs changed."""
    used = list(dict.fromkeys([id_column, *columns]))
    as_text = valid.select(pl.col(c).cast(pl.String) for c in used)
    return pl.DataFrame({
        "id": as_text.get_column(id_column),
        "h": as_text.hash_rows(seed=0),
    })


def plan_refresh(
    current: pl.DataFrame,
    kept: KeptRows | None,
    *,
    classes: Sequence[str],
    max_new_share: float | None,
    every_days: float | None,
    now: datetime,
) -> RefreshPlan:
    """Build on ``kept`` or train again.

    Parameters
    ----------
    current : pl.DataFrame, n rows
        `row_hashes` of this run's rows.
    kept : KeptRows, optional
        What the latest earlier run with the same settings kept (None: nothing).
    classes : sequence of str
        The classes of this run's labels.
    max_new_share, every_days : float, optional
        The spec's ``label_issues.refresh`` (None: no incremental run).
    now : datetime
        The run's start (timezone-aware, as ``kept.trained_at``).

    Returns
    -------
    RefreshPlan
    """
    n = current.height
    if kept is None or max_new_share is None or every_days is None:
        why = ("label_issues.refresh is off" if max_new_share is None
               else "no models kept for these settings")
        return RefreshPlan(False, why, np.ones(n, dtype=bool), 1.0 if n else 0.0)
    n_kept = kept.rows.height
    if _appended(current.get_column("id"), kept.rows.get_column("id")):
        # a night that appends rows: the kept rows by position, no join on the ids
        new = np.arange(n) >= n_kept
        changed = int((current.get_column("h").head(n_kept) != kept.rows.get_column("h")).sum())
    else:
        new = ~current.get_column("id").is_in(kept.rows.get_column("id").implode()).to_numpy()
        joined = kept.rows.select("id", pl.col("h").alias("_kept_h")).join(
            current, on="id", how="left")
        changed = int(joined.select((pl.col("h") != pl.col("_kept_h")).fill_null(True)
                                    .sum()).item())
    new_share = (n - kept.trained_rows) / n if n else 0.0
    age = (now - kept.trained_at).total_seconds() / 86400
    reason = ""
    if changed:
        reason = (f"{changed:,} of the {kept.rows.height:,} kept rows changed (label, text) "
                  "or are gone")
    elif set(classes) != set(kept.classes):
        reason = f"the classes changed ({sorted(kept.classes)} -> {sorted(classes)})"
    elif new_share > max_new_share:
        reason = (f"{new_share:.1%} of the rows are new since run {kept.models_from} "
                  f"(label_issues.refresh.max_new_share {max_new_share:g})")
    elif age > every_days:
        reason = (f"the models of run {kept.models_from} are {age:.1f} days old "
                  f"(label_issues.refresh.every_days {every_days:g})")
    if reason:
        return RefreshPlan(False, reason, new, new_share)
    return RefreshPlan(True, f"{int(new.sum()):,} new rows, scored by run "
                             f"{kept.models_from}'s fold models", new, new_share)


def _appended(ids: pl.Series, kept_ids: pl.Series) -> bool:
    """Whether ``ids`` are ``kept_ids`` in order followed by ids none of which is kept (the
    kept ids looked up among the few later ones, not the later ones among every kept id)."""
    n_kept = kept_ids.len()
    return (ids.len() >= n_kept and ids.head(n_kept).equals(kept_ids, check_names=False)
            and not kept_ids.is_in(ids.slice(n_kept).implode()).any())


def new_row_folds(ids: pl.Series, *, folds: int) -> IntArray:
    """The fold whose models score each new row: its id's hash modulo ``folds``."""
    codes = (ids.cast(pl.String).hash(seed=0) % folds).to_numpy()
    return np.asarray(codes, dtype=np.int64)


def score_with_kept(
    features: pl.DataFrame,
    kept: KeptModels,
    *,
    ids: pl.Series,
    text_columns: Sequence[str],
    embeddings: FloatArray | None = None,
) -> FloatArray:
    """Probabilities of rows the kept models never saw, as their folds score out of fold.

    Parameters
    ----------
    features : pl.DataFrame, m rows
        The new rows' ``text_columns``.
    kept : KeptModels
        The vocabulary and the fold models of each pass.
    ids : pl.Series, length m
        The new rows' ids (they choose the fold: `new_row_folds`).
    embeddings : FloatArray, shape (m, d_emb), optional
        Their sentence embeddings, when the models have an embedding part.

    Returns
    -------
    FloatArray, shape (m, k)
        float32; each pass's probabilities, averaged over the passes as the fit did.
    """
    from labelgate.stages.label_issues.sampled import score_by_fold
    from labelgate.stages.label_issues.text_features import joined_text, transform_text

    x = transform_text(joined_text(features, text_columns), kept.vocabulary)
    fold_of = new_row_folds(ids, folds=len(kept.passes[0]))
    with threadpool_limits(limits=1, user_api="blas"):
        per_pass = [score_by_fold(models, x, fold_of, n_classes=kept.n_classes,
                                  x_embed=embeddings) for models in kept.passes]
    if kept.average or len(per_pass) == 1:
        return np.asarray(sum(per_pass) / len(per_pass), dtype=np.float32)
    return per_pass[-1]


def combined_probabilities(
    current: pl.DataFrame, kept: KeptRows, *, new_probabilities: FloatArray, new: BoolArray
) -> FloatArray:
    """Every current row's probabilities: a kept row's kept ones, a new row's new ones.

    Parameters
    ----------
    current : pl.DataFrame, n rows
        `row_hashes` of this run's rows (their order is the output's).
    kept : KeptRows
        The kept rows' probabilities.
    new_probabilities : FloatArray, shape (m, k)
        The new rows', in their order among ``current``.
    new : BoolArray, shape (n,)
        Which current rows are new (m of them).

    Returns
    -------
    FloatArray, shape (n, k)
        float32.
    """
    k = len(kept.classes)
    cols = [f"c{i}" for i in range(k)]
    if kept_come_first(current, kept.rows, new=new):
        out = np.empty((current.height, k), dtype=np.float32)
        out[: kept.rows.height] = kept.rows.select(cols).to_numpy()
    else:
        old = current.select("id").join(kept.rows.select("id", *cols), on="id", how="left",
                                        maintain_order="left")
        out = old.select(cols).to_numpy().astype(np.float32)
    out[new] = new_probabilities
    return out


def kept_come_first(current: pl.DataFrame, kept_rows: pl.DataFrame, *, new: BoolArray) -> bool:
    """Whether this run's first rows are the kept rows in their order (their ids equal) and
    every later row is ``new``: then a kept row is found by its position, not by a join."""
    n_kept = kept_rows.height
    return (current.height >= n_kept and not new[:n_kept].any() and bool(new[n_kept:].all())
            and current.get_column("id").head(n_kept).equals(kept_rows.get_column("id"),
                                                              check_names=False))
