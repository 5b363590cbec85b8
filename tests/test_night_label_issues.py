"""A night flags its new rows at the training run's cut-offs, without a cleanlab pass over
every row; the kept rows keep their flags (issue 26)."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import polars as pl
import pytest
from conftest import item_rows, spec_dict

from labelgate.spec import parse_spec
from labelgate.stages import refresh
from labelgate.stages.label_issues.cutoffs import Cutoffs, cutoffs_of, flag_with
from labelgate.stages.label_issues.detect import find_label_issues
from labelgate.stages.label_issues.flags import _Flagger, _quality
from labelgate.stages.label_issues.incremental import KeptRows


def _noisy(n: int, k: int, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels with 10% flips and continuous probabilities (no ties)."""
    rng = np.random.default_rng(seed)
    true = rng.integers(0, k, n)
    logits = rng.normal(0, 1, (n, k))
    logits[np.arange(n), true] += 2.0
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = true.copy()
    flip = rng.random(n) < 0.1
    labels[flip] = (labels[flip] + rng.integers(1, k, int(flip.sum()))) % k
    return labels, probs.astype(np.float32)


@pytest.mark.parametrize(("k", "filter_by", "ranked"), [
    (3, "both", False), (4, "both", False), (5, "both", True),
    (3, "low_self_confidence", False), (3, "low_normalized_margin", False),
])
def test_the_cutoffs_flag_the_training_rows_as_cleanlab_did(
        k: int, filter_by: str, ranked: bool) -> None:
    labels, probs = _noisy(4000, k, seed=k)
    flagger = _Flagger(labels, filter_by, "per_class", False, 100_000, None, ranked=ranked)
    joint = flagger.joint(probs)
    quality = _quality(labels, probs)
    flags = flagger.flag(probs, joint)
    if ranked:
        order = np.argsort(quality, kind="stable")
        flags = np.zeros(len(labels), dtype=bool)
        flags[order[: int(flagger.flag(probs, joint).sum())]] = True
    assert 100 < flags.sum() < 1000  # the filter flagged some rows, not all
    cut = cutoffs_of(flagger, probs, joint, flags=flags, quality=quality)
    assert cut is not None
    again = flag_with(Cutoffs.from_meta(cut.to_meta()), labels, probs)
    assert (again == flags).all()


def test_no_cutoffs_for_the_batched_path_or_one_class() -> None:
    labels, probs = _noisy(500, 3, seed=1)
    batched = _Flagger(labels, "both", "per_class", True, 100, None)
    joint = batched.joint(probs)
    flags, quality = np.zeros(500, dtype=bool), _quality(labels, probs)
    assert cutoffs_of(batched, probs, joint, flags=flags, quality=quality) is None
    one = _Flagger(np.zeros(500, dtype=np.int64), "both", "per_class", False, 100, None)
    assert cutoffs_of(one, probs, None, flags=flags, quality=quality) is None


def _frame(rows: list[dict[str, object]]) -> pl.DataFrame:
    return pl.DataFrame(rows).select("tweet_id", "text", "sentiment")


FLIPS = {"t0004": "negative", "t0031": "positive", "t0057": "neutral", "t0100": "neutral"}


def test_a_night_flags_an_obvious_flip_and_keeps_the_old_flags() -> None:
    spec = parse_spec(spec_dict(label_issues={"method": "cross_validated", "folds": 3}))
    old = _frame([{**r, "sentiment": FLIPS.get(str(r["tweet_id"]), r["sentiment"])}
                  for r in item_rows(240)])
    full = find_label_issues(old, id_column="tweet_id", label_column="sentiment",
                             text_columns=["text"], folds=3, keep_models=True)
    assert full.kept is not None and full.kept.flagging is not None
    full_flags = full.table.get_column("is_label_issue")
    assert full_flags.sum() >= 1  # a planted flip
    current = refresh.current_rows(old, spec=spec)
    kept = KeptRows(
        rows=refresh.kept_rows_frame(current, full.probabilities,  # type: ignore[arg-type]
                                     scored_in=pl.repeat("r1", old.height, eager=True),
                                     flags=full_flags),
        classes=full.classes, models_from="r1", trained_rows=old.height,
        trained_at=datetime(2026, 1, 1, tzinfo=UTC))
    # new rows: clean copies of old texts, and one whose label is plainly wrong
    fresh = [{"tweet_id": f"n{i:03d}", "text": f"{r['text']} again", "sentiment": r["sentiment"]}
             for i, r in enumerate(item_rows(11))]
    fresh[1]["sentiment"] = "negative"  # "thanks for the quick rebooking, great crew"
    night = pl.concat([old, _frame(fresh)])
    cur, decided = refresh.plan(night, spec=spec, kept=kept,
                                now=datetime(2026, 1, 2, tzinfo=UTC))
    assert decided.incremental and int(decided.new.sum()) == 11
    outcome = refresh.rescore(night, spec=spec, current=cur, decided=decided, kept=kept,
                              models=full.kept, kept_meta={"passes": 2}, embeddings=None)
    table = outcome.result.table
    assert "flagged_by" in outcome.section
    flagged_new = table.filter(pl.col("is_label_issue") & pl.col("id").str.starts_with("n"))
    assert flagged_new.get_column("id").to_list() == ["n001"]
    old_part = table.head(old.height)
    assert old_part.get_column("is_label_issue").equals(full_flags)
    assert (old_part.get_column("label_quality") == full.table.get_column("label_quality")).all()
    assert old_part.get_column("suggested_label").equals(full.table.get_column("suggested_label"))
    assert outcome.result.health_score == pytest.approx(full.health_score)
    assert outcome.section["count"] == int(table.get_column("is_label_issue").sum())


@pytest.mark.parametrize("order", [[0, 1, 2, 3], [3, 1, 0, 2]])
def test_scored_in_names_each_rows_run_in_any_order(order: list[int]) -> None:
    kept = KeptRows(rows=pl.DataFrame({"id": ["a", "b", "c"], "scored_in": ["r1", "r2", "r1"]}),
                    classes=["x", "y"], models_from="r1", trained_rows=2,
                    trained_at=datetime(2026, 1, 1, tzinfo=UTC))
    current = pl.DataFrame({"id": ["a", "b", "c", "d"]})[order]
    new = (current.get_column("id") == "d").to_numpy()
    got = refresh.scored_in(current, kept, new=new, run_id="r3")
    expected = {"a": "r1", "b": "r2", "c": "r1", "d": "r3"}
    assert got.to_list() == [expected[i] for i in current.get_column("id")]


def _stable_ranks(values: np.ndarray) -> np.ndarray:
    """The ranks a stable argsort gives (1 = lowest, ties in row order)."""
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values), dtype=np.int64)
    ranks[order] = np.arange(1, len(values) + 1)
    return ranks


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ranks_of_float32_quality_are_a_stable_sorts(seed: int) -> None:
    from labelgate.stages.label_issues.flags import _float32_order, _rank

    rng = np.random.default_rng(seed)
    # a night's label quality: float32 probabilities widened, many ties, both zeros
    values = rng.choice(rng.random(50, dtype=np.float32), 5000).astype(np.float64)
    values[:40] = [0.0, -0.0, 1.0, np.inf, -np.inf, -0.5, 0.25, 0.25] * 5
    rng.shuffle(values)
    assert _float32_order(values) is not None  # the fast path runs
    ranks = _rank(values)
    assert (ranks == _stable_ranks(values)).all()
    assert sorted(ranks.tolist()) == list(range(1, 5001))


def test_ranks_of_other_values_fall_back_to_the_stable_sort() -> None:
    from labelgate.stages.label_issues.flags import _float32_order, _rank

    wide = np.array([0.1, 0.3, 0.1, 0.2])  # not float32 values
    with_nan = np.array([0.5, np.nan, 0.25, 0.5], dtype=np.float32).astype(np.float64)
    for values in (wide, with_nan):
        assert _float32_order(values) is None
        assert (_rank(values) == _stable_ranks(values)).all()
    assert _rank(wide).tolist() == [1, 4, 2, 3]


@pytest.mark.parametrize("rows", [3, 2000])
def test_selected_columns_are_the_kept_columns_renumbered(rows: int) -> None:
    """A night's few new rows and a full run's many keep the fit's columns, in order."""
    import scipy.sparse as sp

    from labelgate.stages.label_issues.text_features import select_columns

    rng = np.random.default_rng(rows)
    width = 4096
    mat = sp.random(rows, width, density=0.01, format="csr", random_state=rows)
    kept = np.unique(rng.integers(0, width, 700)).astype(np.int64)
    kept[-1] = width - 1
    got = select_columns(mat.copy(), kept)
    want = mat[:, kept]
    assert got.shape == (rows, len(kept))
    assert (got != want).nnz == 0
    assert got.nnz == want.nnz > 0
