from __future__ import annotations

import polars as pl

from labelgate.spec import parse_spec
from labelgate.steps import apply_consensus
from tests.conftest import spec_dict


def test_apply_consensus_relabels_items_that_have_one() -> None:
    data = spec_dict(
        sources={"items": {"path": "x.csv"}, "annotations": {"path": "a.csv"}},
        agreement={"consensus": "dawid_skene", "apply": True},
    )
    spec = parse_spec(data)
    valid = pl.DataFrame({"tweet_id": ["a", "b", "c"], "text": ["x", "y", "z"],
                          "sentiment": ["negative", "neutral", "positive"]})
    consensus = pl.DataFrame({"item": ["a", "b"], "majority": ["positive", "neutral"],
                              "dawid_skene": ["neutral", "neutral"]})
    out, stats = apply_consensus(valid, consensus, spec=spec)
    assert out.get_column("sentiment").to_list() == ["neutral", "neutral", "positive"]
    assert stats == {"method": "dawid_skene", "applied": True, "changed": 1, "confirmed": 1,
                     "without_consensus": 1}
    assert out.columns == valid.columns


def test_crowdlab_comparison_counts_differences() -> None:
    from labelgate.label_issues import LabelIssuesResult
    from labelgate.steps import LabelIssuesOutcome, compare_with_crowdlab

    table = pl.DataFrame({"id": ["a", "b", "c"], "consensus_label": ["x", "y", "y"]})
    result = LabelIssuesResult(
        method="multiannotator", path="standard", classes=["x", "y"], table=table,
        noise_matrix=pl.DataFrame(), health_score=1.0, per_class=pl.DataFrame(),
    )
    consensus = pl.DataFrame({"item": ["a", "b", "c", "d"], "majority": ["x", "x", "y", "x"],
                              "dawid_skene": ["x", "y", "y", None]})
    out = compare_with_crowdlab(LabelIssuesOutcome(result, {}, {}), consensus)
    rows = {r["b"]: r for r in out.section["consensus_comparison"]}
    assert (rows["majority"]["items"], rows["majority"]["differ"]) == (3, 1)
    assert (rows["dawid_skene"]["items"], rows["dawid_skene"]["differ"]) == (3, 0)
