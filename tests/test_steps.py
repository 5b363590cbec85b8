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
