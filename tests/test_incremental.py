"""Nights that cost what is new (issue 26): kept fold models score new rows; the refresh
policy decides when to train again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from conftest import LABELS, TEXTS

from labelgate.stages.label_issues.incremental import (
    KeptRows,
    combined_probabilities,
    new_row_folds,
    plan_refresh,
    row_hashes,
    score_with_kept,
)
from labelgate.stages.label_issues.models import (
    assign_folds,
    fit_text_matrix,
    fold_model_probabilities,
    joined_text,
    out_of_fold,
    transform_text,
)
from labelgate.store import kept_models

WORDS = ["late", "great", "when", "lost", "loved", "schedule", "crew", "bag", "gate", "seat"]


def _frame(n: int, *, offset: int = 0) -> pl.DataFrame:
    rows = [
        {"id": f"r{i:04d}", "text": f"{TEXTS[i % 6]} {WORDS[i % 10]} {WORDS[(i * 7) % 10]}",
         "label": LABELS[i % 6]}
        for i in range(offset, offset + n)
    ]
    return pl.DataFrame(rows)


def _codes(frame: pl.DataFrame) -> np.ndarray:
    classes = sorted(set(LABELS))
    return np.array([classes.index(v) for v in frame.get_column("label")])


@pytest.mark.parametrize("char_ngrams", [False, True])
def test_kept_fold_models_score_their_own_fold_as_the_fit_did(char_ngrams: bool) -> None:
    df = _frame(90)
    y = _codes(df)
    fitted = out_of_fold(df, y, text_columns=["text"], folds=3, keep_models=True,
                         char_ngrams=char_ngrams)
    assert fitted.kept is not None and len(fitted.kept.passes) == 1
    text = joined_text(df, ["text"])
    x, vocabulary = fit_text_matrix(text, char_ngrams=char_ngrams, seed=13)
    again = transform_text(text, fitted.kept.vocabulary)
    assert again.shape == x.shape and abs(again - x).max() < 1e-12
    assert (vocabulary.word_columns == fitted.kept.vocabulary.word_columns).all()
    fold_of = assign_folds(y, folds=3, seed=13)
    for f, model in enumerate(fitted.kept.passes[0]):
        rows = np.flatnonzero(fold_of == f)
        probs = fold_model_probabilities(model, again[rows])
        assert np.allclose(probs, fitted.probabilities[np.ix_(rows, model.classes)], atol=1e-6)


def test_two_passes_keep_both_passes_and_new_rows_get_their_average() -> None:
    df = _frame(90)
    y = _codes(df)
    y[[4, 10, 40]] = (y[[4, 10, 40]] + 1) % 3  # flips the first pass flags
    fitted = out_of_fold(df, y, text_columns=["text"], folds=3, keep_models=True,
                         leave_out=lambda p: p[np.arange(len(y)), y] < 0.34)
    assert fitted.kept is not None and fitted.left_out > 0
    assert [len(p) for p in fitted.kept.passes] == [3, 3]
    new = _frame(12, offset=500)
    ids = new.get_column("id")
    probs = score_with_kept(new, fitted.kept, ids=ids, text_columns=["text"])
    assert probs.shape == (12, 3) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    x = transform_text(joined_text(new, ["text"]), fitted.kept.vocabulary)
    fold = new_row_folds(ids, folds=3)
    i = 0
    expected = (fold_model_probabilities(fitted.kept.passes[0][fold[i]], x[[i]])
                + fold_model_probabilities(fitted.kept.passes[1][fold[i]], x[[i]])) / 2
    assert np.allclose(probs[i], expected[0], atol=1e-6)
    # each new row is scored by the fold its id names, and the folds are all used
    assert sorted(set(fold.tolist())) == [0, 1, 2]


def test_kept_models_and_rows_round_trip_through_the_store(tmp_path: Path) -> None:
    df = _frame(60)
    y = _codes(df)
    fitted = out_of_fold(df, y, text_columns=["text"], folds=3, keep_models=True)
    assert fitted.kept is not None
    rows = row_hashes(df, id_column="id", columns=["label", "text"]).with_columns(
        *(pl.Series(f"c{i}", fitted.probabilities[:, i]) for i in range(3)),
        pl.lit("run-a").alias("scored_in"),
    )
    when = datetime(2026, 12, 1, tzinfo=UTC)
    kept_models.save_state(tmp_path, "ds", key="k1", run_id="run-a", rows=rows,
                           classes=["negative", "neutral", "positive"], models=fitted.kept,
                           models_from="run-a", trained_rows=60, trained_at=when)
    found = kept_models.latest_rows(tmp_path, "ds", key="k1")
    assert found is not None
    kept, _meta = found
    assert (kept.models_from, kept.trained_rows, kept.trained_at) == ("run-a", 60, when)
    assert kept.rows.get_column("id").to_list() == df.get_column("id").to_list()
    assert kept_models.latest_rows(tmp_path, "ds", key="other") is None
    models = kept_models.load_models(tmp_path, "ds", key="k1", run_id="run-a")
    assert models is not None
    new = _frame(9, offset=300)
    ids = new.get_column("id")
    back = score_with_kept(new, models, ids=ids, text_columns=["text"])
    direct = score_with_kept(new, fitted.kept, ids=ids, text_columns=["text"])
    assert np.allclose(back, direct, atol=1e-5)  # coefficients are kept as float32
    # a later run's unit replaces the older one but keeps the unit with the models
    kept_models.save_state(tmp_path, "ds", key="k1", run_id="run-b", rows=rows,
                           classes=kept.classes, models=None, models_from="run-a",
                           trained_rows=60, trained_at=when)
    kept_models.save_state(tmp_path, "ds", key="k1", run_id="run-c", rows=rows,
                           classes=kept.classes, models=None, models_from="run-a",
                           trained_rows=60, trained_at=when)
    units = sorted(p.name for p in (tmp_path / "cache/ds/label_models").iterdir())
    assert units == ["k1-run-a", "k1-run-c"]


def _kept(frame: pl.DataFrame, *, trained: int, when: datetime) -> KeptRows:
    rows = row_hashes(frame, id_column="id", columns=["label", "text"]).with_columns(
        pl.lit(0.5, pl.Float32).alias("c0"), pl.lit(0.5, pl.Float32).alias("c1"),
        pl.lit("run-a").alias("scored_in"),
    )
    return KeptRows(rows, ["a", "b"], "run-a", trained, when)


NOW = datetime(2026, 12, 6, tzinfo=UTC)
OLD = pl.DataFrame({"id": [f"r{i}" for i in range(100)], "text": [f"t {i}" for i in range(100)],
                    "label": ["a", "b"] * 50})


@pytest.mark.parametrize(
    ("change", "incremental", "reason"),
    [
        ("none", True, "5 new rows, scored by run run-a's fold models"),
        ("label", False, "1 of the 100 kept rows changed"),
        ("gone", False, "1 of the 100 kept rows changed"),
        ("class", False, "the classes changed"),
        ("share", False, "4.8% of the rows are new since run run-a"),
        ("age", False, "are 8.0 days old"),
    ],
)
def test_plan_trains_again_when_a_kept_row_changes_or_a_limit_passes(
    change: str, incremental: bool, reason: str
) -> None:
    new = pl.DataFrame({"id": [f"n{i}" for i in range(5)], "text": ["x"] * 5,
                        "label": ["c" if change == "class" else "a"] * 5})
    old = OLD
    if change == "label":
        old = old.with_columns(pl.when(pl.col("id") == "r3").then(pl.lit("a"))
                               .otherwise(pl.col("label")).alias("label"))
    if change == "gone":
        old = old.filter(pl.col("id") != "r7")
    now = NOW + timedelta(days=8) if change == "age" else NOW
    current = row_hashes(pl.concat([old, new]), id_column="id", columns=["label", "text"])
    classes = ["a", "b", "c"] if change == "class" else ["a", "b"]
    plan = plan_refresh(current, _kept(OLD, trained=100, when=NOW), classes=classes,
                        max_new_share=0.04 if change == "share" else 0.1, every_days=7,
                        now=now)
    assert plan.incremental is incremental
    assert reason in plan.reason
    assert int(plan.new.sum()) == 5


def test_plan_without_kept_rows_or_refresh_trains() -> None:
    current = row_hashes(OLD, id_column="id", columns=["label", "text"])
    plan = plan_refresh(current, None, classes=["a", "b"], max_new_share=0.1, every_days=7,
                        now=NOW)
    assert (plan.incremental, plan.reason) == (False, "no models kept for these settings")
    off = plan_refresh(current, _kept(OLD, trained=100, when=NOW), classes=["a", "b"],
                       max_new_share=None, every_days=None, now=NOW)
    assert (off.incremental, off.reason) == (False, "label_issues.refresh is off")


def test_combined_probabilities_take_kept_rows_by_id_and_new_rows_in_order() -> None:
    kept = _kept(OLD.head(3), trained=3, when=NOW)
    kept = KeptRows(kept.rows.with_columns(pl.Series("c0", [0.1, 0.2, 0.3], pl.Float32),
                                           pl.Series("c1", [0.9, 0.8, 0.7], pl.Float32)),
                    kept.classes, "run-a", 3, NOW)
    current = pl.DataFrame({"id": ["r2", "n0", "r0", "r1"], "h": [0, 0, 0, 0]})
    new = np.array([False, True, False, False])
    out = combined_probabilities(current, kept, new_probabilities=np.array([[0.6, 0.4]]),
                                 new=new)
    assert np.allclose(out, [[0.3, 0.7], [0.6, 0.4], [0.1, 0.9], [0.2, 0.8]])
