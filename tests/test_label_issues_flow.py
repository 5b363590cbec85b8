"""The label-issue stage in a flow run: `label_issues.review_budget` flags a fixed amount,
and the report's table goes past the flags ("worth a look") (issue 23)."""

from __future__ import annotations

import pytest

from tests.conftest import SpecFactory, item_rows

pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_server")]


def test_review_budget_flags_the_lowest_quality_rows_and_the_table_goes_past_them(
    make_spec: SpecFactory,
) -> None:
    from flows.pipeline import quality_pipeline

    spec = make_spec(item_rows(90), label_issues={"method": "cross_validated", "folds": 3,
                                                  "review_budget": 4, "top": 10})
    report = quality_pipeline(str(spec))
    li = report["label_issues"]
    assert li["count"] == 4 and li["review_budget"] == 4
    assert isinstance(li["estimated_count"], int)
    top = li["top"]
    assert len(top) == 10
    assert [r["why"] for r in top] == ["flagged"] * 4 + ["worth a look"] * 6
    quality = [r["quality"] for r in top]
    # the flags are the 4 lowest label qualities: every flagged row is below every other
    assert max(quality[:4]) <= min(quality[4:])
    assert quality[4:] == sorted(quality[4:])
    assert all(r["text"] for r in top)
