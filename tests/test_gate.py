from __future__ import annotations

import math

import polars as pl
import pytest

from labelgate.gate import GATE_CHECKS, annotator_details, evaluate_gate, smallest_class


@pytest.mark.parametrize(
    ("metrics", "thresholds", "passed"),
    [
        ({"quarantine_rate": 0.01}, {"max_quarantine_rate": 0.02}, True),
        ({"quarantine_rate": 0.02}, {"max_quarantine_rate": 0.02}, True),
        ({"quarantine_rate": 0.03}, {"max_quarantine_rate": 0.02}, False),
        ({"min_rows_per_class": 49}, {"min_rows_per_class": 50}, False),
        ({"min_rows_per_class": 50}, {"min_rows_per_class": 50}, True),
        ({"quarantine_rate": math.nan}, {"max_quarantine_rate": 0.5}, False),
        ({}, {}, True),
        ({"sft.quarantine_rate": 0.03}, {"max_sft_quarantine_rate": 0.02}, False),
        ({"sft.conflicting_rows": 0}, {"max_conflicting_responses": 0}, True),
        ({"splits.leakage": 1}, {"max_split_leakage": 0}, False),
        ({"label_issues.health_score": 0.7}, {"min_label_health": 0.8}, False),
    ],
)
def test_thresholds(metrics: dict[str, float], thresholds: dict[str, float], passed: bool) -> None:
    assert evaluate_gate(metrics, thresholds).passed is passed


def test_failure_message_shows_observed_and_threshold() -> None:
    verdict = evaluate_gate(
        {"quarantine_rate": 0.083, "min_rows_per_class": 70},
        {"max_quarantine_rate": 0.05, "min_rows_per_class": 50},
    )
    assert not verdict.passed
    assert [c.name for c in verdict.failed] == ["max_quarantine_rate"]
    assert verdict.summary() == (
        "gate failed: quarantine_rate 0.083 > gate.max_quarantine_rate 0.05"
    )


def test_missing_metric_fails_with_reason() -> None:
    verdict = evaluate_gate({}, {"min_rows": 10})
    assert not verdict.passed
    assert verdict.checks[0].observed is None
    assert "rows_valid was not computed" in verdict.checks[0].message


def test_unknown_check_lists_valid_ones() -> None:
    with pytest.raises(KeyError, match="max_quarantine_rate"):
        evaluate_gate({}, {"nope": 1.0})


def test_registry_names_match_keys() -> None:
    assert all(name == check.name for name, check in GATE_CHECKS.items())


def test_history_metrics_compare_with_the_median_of_passing_runs() -> None:
    from labelgate.gate import history_metrics

    history = [
        ("r1", "gate_passed", 1.0), ("r1", "label_issues.rate", 0.10),
        ("r2", "gate_passed", 0.0), ("r2", "label_issues.rate", 0.90),  # failed: ignored
        ("r3", "gate_passed", 1.0), ("r3", "label_issues.rate", 0.12),
        ("r4", "gate_passed", 1.0), ("r4", "label_issues.rate", 0.14),
    ]
    out = history_metrics({"label_issues.rate": 0.30}, history)
    assert out["label_issues.rate_increase"] == pytest.approx(0.30 - 0.12)
    assert out["label_issues.rate_increase_baseline_runs"] == 3
    assert history_metrics({"label_issues.rate": 0.3}, [])["label_issues.rate_increase"] == 0.0
    assert history_metrics({}, history) == {}
    verdict = evaluate_gate(out, {"max_label_issue_rate_increase": 0.05})
    assert not verdict.passed
    assert "label_issues.rate_increase 0.18 > gate.max_label_issue_rate_increase 0.05" in (
        verdict.summary()
    )


# --- failures name their class or annotator ----------------------------------------------


def test_a_failed_check_names_who_it_is_about() -> None:
    verdict = evaluate_gate(
        {"min_rows_per_class": 4.0, "rows_valid": 90.0},
        {"min_rows_per_class": 5, "min_rows": 10},
        details={"min_rows_per_class": "class 'neutral'"},
    )
    [failed] = verdict.failed
    assert failed.message == "min_rows_per_class 4 (class 'neutral') < gate.min_rows_per_class 5"
    assert verdict.checks[1].message == "rows_valid 90 >= gate.min_rows 10"


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ([("a", 9), ("b", 3), ("c", 5)], "class 'b'"),
        ([("a", 3), ("b", 3), ("c", 5)], "classes 'a', 'b'"),
        ([(c, 1) for c in "edcba"], "classes 'a', 'b', 'c' and 2 more"),
        ([], None),
    ],
)
def test_smallest_class(rows: list[tuple[str, int]], expected: str | None) -> None:
    counts = pl.DataFrame(rows, schema={"label": pl.String, "rows": pl.UInt32}, orient="row")
    assert smallest_class(counts) == expected


def test_annotator_details_name_the_lowest_gold_accuracy_and_the_flagged() -> None:
    annotators = pl.DataFrame({
        "annotator": ["ann1", "ann2", "ann3"], "gold_accuracy": [0.9, 0.55, None],
        "flagged": [False, True, True],
    })
    got = annotator_details(annotators, {"agreement.min_annotator_gold_accuracy": 0.55})
    assert got == {"agreement.min_annotator_gold_accuracy": "annotator 'ann2'",
                   "agreement.n_flagged_annotators": "annotators 'ann2', 'ann3'"}
    assert annotator_details(annotators.with_columns(pl.lit(False).alias("flagged")), {}) == {}
