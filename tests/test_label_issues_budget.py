"""A fixed review budget (`label_issues.review_budget`) and the report's rows past the flags
(issue 23): flags that follow the label-quality ranking."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from pydantic import ValidationError

from labelgate.errors import InputError
from labelgate.spec.stages import LabelIssuesSpec
from labelgate.stages.label_issues.detect import (
    LabelIssuesResult,
    apply_review_budget,
    budget_rows,
    find_label_issues,
)
from labelgate.stages.label_issues.listing import report_rows

# p(given label) of the 8 rows (given label 0 for the first 4, 1 for the rest)
GIVEN_P = [0.95, 0.10, 0.60, 0.35, 0.90, 0.05, 0.80, 0.45]


def _result() -> LabelIssuesResult:
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    p_given = np.array(GIVEN_P)
    probs = np.empty((8, 2))
    probs[np.arange(8), y] = p_given
    probs[np.arange(8), 1 - y] = 1 - p_given
    df = pl.DataFrame({
        "id": [f"r{i}" for i in range(8)],
        "label": ["a" if c == 0 else "b" for c in y],
        "text": [f"text {i}" for i in range(8)],
    })
    return find_label_issues(df, id_column="id", label_column="label", text_columns=["text"],
                             pred_probs=probs.astype(np.float32))


def _flagged(res: LabelIssuesResult) -> list[str]:
    return res.table.filter(pl.col("is_label_issue")).get_column("id").to_list()


def test_integer_budget_flags_the_k_lowest_label_quality_rows() -> None:
    res = apply_review_budget(_result(), 3)
    assert sorted(_flagged(res)) == ["r1", "r3", "r5"]  # p(given) 0.10, 0.35, 0.05
    per_class = dict(res.per_class.select("class", "issues").iter_rows())
    assert per_class == {"a": 2, "b": 1}
    before = _result()
    assert res.table.select("label_quality", "rank").equals(before.table.select(
        "label_quality", "rank"))
    assert res.health_score == before.health_score


def test_share_budget_is_rounded_and_at_least_one_row() -> None:
    assert sorted(_flagged(apply_review_budget(_result(), 0.25))) == ["r1", "r5"]
    assert _flagged(apply_review_budget(_result(), 0.01)) == ["r5"]
    assert budget_rows(0.5, 1001) == 500 and budget_rows(7, 3) == 3 and budget_rows(0.3, 0) == 0


def test_reviewed_rows_are_skipped_and_the_budget_moves_down_the_ranking() -> None:
    res = apply_review_budget(_result(), 2, reviewed={"r5"})
    assert sorted(_flagged(res)) == ["r1", "r3"]


def test_a_budget_over_the_rows_flags_every_unreviewed_row() -> None:
    res = apply_review_budget(_result(), 100, reviewed={"r0"})
    assert len(_flagged(res)) == 7 and "r0" not in _flagged(res)


@pytest.mark.parametrize("budget", [0, -2, 1.0, 1.5, 0.0, True])
def test_a_budget_out_of_range_is_an_input_error(budget: float) -> None:
    with pytest.raises(InputError, match="review_budget"):
        apply_review_budget(_result(), budget)


@pytest.mark.parametrize(("value", "expected"), [(5, 5), (0.05, 0.05), (None, None)])
def test_spec_accepts_rows_or_a_share(value: float | None, expected: float | None) -> None:
    assert LabelIssuesSpec(review_budget=value).review_budget == expected


@pytest.mark.parametrize(("value", "message"), [
    (0, "integer >= 1"), (1.0, "between 0 and 1"), (2.5, "between 0 and 1"),
    ("ten", "valid integer"),
])
def test_spec_refuses_a_budget_that_is_neither(value: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        LabelIssuesSpec(review_budget=value)


def test_json_schema_describes_both_forms() -> None:
    prop = LabelIssuesSpec.model_json_schema()["properties"]["review_budget"]
    assert {"type": "integer", "minimum": 1} in prop["anyOf"]
    assert {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1} in prop["anyOf"]
    assert "lowest label quality" in prop["description"]


def test_report_rows_go_past_the_flags_marked_worth_a_look() -> None:
    res = apply_review_budget(_result(), 1)  # only r5 flagged
    texts = pl.DataFrame({"id": [f"r{i}" for i in range(8)],
                          "text": [f"text {i} " + "x" * 300 for i in range(8)]})
    rows = report_rows(res.table, texts, top=4)
    assert [r["id"] for r in rows] == ["r5", "r1", "r3", "r7"]
    assert [r["why"] for r in rows] == ["flagged"] + ["worth a look"] * 3
    assert rows[1]["given"] == "a" and rows[1]["suggested"] == "b"
    assert rows[1]["quality"] == pytest.approx(0.10, abs=1e-6)
    text = str(rows[0]["text"])
    assert text.startswith("text 5") and len(text) == 240


def _many_classes(k: int, *, n: int = 600, seed: int = 0) -> tuple[pl.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    logits = rng.normal(0, 1, (n, k))
    logits[np.arange(n), y] += 2.5
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    flip = rng.random(n) < 0.1
    noisy = y.copy()
    noisy[flip] = (y[flip] + rng.integers(1, k, int(flip.sum()))) % k
    df = pl.DataFrame({"id": [str(i) for i in range(n)], "label": [f"c{c}" for c in noisy],
                       "text": ["x"] * n})
    return df, probs.astype(np.float32)


@pytest.mark.parametrize(("k", "ranked"), [(6, True), (4, False)])
def test_auto_on_many_classes_cuts_the_ranking_at_per_pair_prunings_count(
    k: int, ranked: bool
) -> None:
    df, probs = _many_classes(k)
    kw = {"id_column": "id", "label_column": "label", "text_columns": ["text"],
          "pred_probs": probs}
    auto = find_label_issues(df, **kw)  # type: ignore[arg-type]
    both = find_label_issues(df, filter_by="both", **kw)  # type: ignore[arg-type]
    assert auto.filter_by == ("both, ranked" if ranked else "both")
    flagged = auto.table.get_column("is_label_issue").to_numpy()
    assert flagged.sum() == both.table.get_column("is_label_issue").sum() > 0
    lowest = auto.table.get_column("rank").to_numpy() <= flagged.sum()
    assert np.array_equal(flagged, lowest) == ranked
    if ranked:  # some row per-pair pruning flags is not among the lowest quality
        assert not np.array_equal(flagged, both.table.get_column("is_label_issue").to_numpy())
