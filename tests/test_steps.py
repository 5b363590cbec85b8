from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from labelgate.spec import Spec, parse_spec
from labelgate.stages.steps import apply_consensus
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
    from labelgate.stages.label_issues.detect import LabelIssuesResult
    from labelgate.stages.steps import LabelIssuesOutcome, compare_with_crowdlab

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


def _predictions_case(
    tmp_path: Path, probs: dict[str, list[float]]
) -> tuple[pl.DataFrame, Spec, pl.DataFrame]:
    """Valid rows (60 tiny tweets) and a predictions CSV read the way the label-issues stage
    reads it (ingest_source + load_batches: every CSV column arrives as text)."""
    from labelgate.store.lake import ingest_source, load_batches
    from tests.conftest import item_rows, write_csv

    rows = item_rows()
    ids = [r["tweet_id"] for r in rows]
    write_csv(tmp_path / "preds.csv", [{"tweet_id": i, **{c: v[k] for c, v in probs.items()}}
                                       for k, i in enumerate(ids)])
    data = spec_dict(
        sources={"items": {"path": "items/*.csv"}, "predictions": {"path": "preds.csv"}},
        label_issues={"method": "predictions"},
    )
    spec = parse_spec(data, base_dir=tmp_path)
    batches = ingest_source(spec.sources.predictions, key="predictions", dataset=spec.name,
                            store=tmp_path / "store", base_dir=tmp_path)
    loaded, _ = load_batches(batches)
    return pl.DataFrame(rows).drop("confidence"), spec, loaded.drop("_batch", "_row")


def _confident(labels: list[str], classes: list[str]) -> dict[str, list[float]]:
    return {c: [0.9 if lab == c else 0.1 / (len(classes) - 1) for lab in labels] for c in classes}


def test_predictions_from_a_csv_file_flag_the_disagreeing_row(tmp_path: Path) -> None:
    from labelgate.stages.steps import detect_label_issues
    from tests.conftest import item_rows

    labels = [r["sentiment"] for r in item_rows()]
    model = ["positive" if i == 6 else lab for i, lab in enumerate(labels)]  # row 6 disagrees
    probs = _confident(model, ["negative", "neutral", "positive"])
    probs["model_epoch"] = [2.0] * len(labels)  # an extra numeric column is not a class
    valid, spec, preds = _predictions_case(tmp_path, probs)
    assert preds.schema["negative"] == pl.String  # CSV: text, parsed by the stage
    outcome = detect_label_issues(valid, spec=spec, predictions=preds)
    assert outcome.result.classes == ["negative", "neutral", "positive"]
    assert outcome.result.issue_ids.to_list() == ["t0006"]


def test_predictions_may_know_a_class_no_row_has_when_the_contract_lists_it(
    tmp_path: Path,
) -> None:
    from labelgate.errors import InputError
    from labelgate.stages.steps import detect_label_issues
    from tests.conftest import item_rows

    labels = [r["sentiment"] for r in item_rows()]
    classes = ["negative", "neutral", "positive", "sarcastic"]
    probs = _confident(labels, classes)
    valid, spec, preds = _predictions_case(tmp_path, probs)
    with pytest.raises(InputError, match=r"\['sarcastic'\] are not classes"):
        detect_label_issues(valid, spec=spec, predictions=preds)
    contract = {**spec_dict()["contract"]}
    contract["sentiment"] = {"dtype": "str", "isin": classes}
    spec2 = parse_spec(spec_dict(
        sources={"items": {"path": "items/*.csv"}, "predictions": {"path": "preds.csv"}},
        label_issues={"method": "predictions"}, contract=contract,
    ), base_dir=tmp_path)
    outcome = detect_label_issues(valid, spec=spec2, predictions=preds)
    assert outcome.result.classes == classes
    assert outcome.result.issue_ids.to_list() == []


def test_report_says_how_many_rows_the_second_pass_left_out() -> None:
    from labelgate.report import label_issues_lines as _label_issues_markdown
    from labelgate.stages.steps import detect_label_issues
    from tests.conftest import item_rows

    rows = item_rows(120)
    rows[6]["sentiment"] = "positive" if rows[6]["sentiment"] != "positive" else "negative"
    valid = pl.DataFrame(rows)
    two = detect_label_issues(valid, spec=parse_spec(spec_dict(label_issues={})))
    one = detect_label_issues(valid, spec=parse_spec(spec_dict(label_issues={"passes": 1})))
    flagged_first = int(one.result.table.get_column("is_label_issue").sum())
    assert flagged_first >= 1
    assert (two.section["passes"], two.section["left_out"]) == (2, flagged_first)
    assert (one.section["passes"], one.section["left_out"]) == (1, 0)
    text = "\n".join(_label_issues_markdown(two.section))
    assert f"without {flagged_first} rows the first pass flagged" in text
    assert "second pass" not in "\n".join(_label_issues_markdown(one.section))
    # text: per-pair pruning counted by the per-class joint ("auto" resolved in the report)
    assert (two.section["filter_by"], two.section["joint_calibration"]) == ("both", "per_class")
    # the settings in plain words, cleanlab's terms in brackets (folded away in the report)
    assert "how flags are chosen" in text and "(cleanlab filter_by both)" in text
    assert "(per_class)" in text
    # filters that do not take their count from a joint say only the filter
    crowd = _label_issues_markdown({**two.section, "filter_by": "crowdlab_consensus"})
    assert "filter_by crowdlab_consensus" in "\n".join(crowd)
    assert "how many rows are flagged" not in "\n".join(crowd)


def test_the_test_split_check_names_its_class(tmp_path: Path) -> None:
    from labelgate.stages.split_step import _test_class_details

    spec = parse_spec(spec_dict(splits={}), base_dir=tmp_path)
    valid = pl.DataFrame({"sentiment": ["negative", "neutral", "positive"]})
    counts = [{"split": "test", "label": "negative", "rows": 4},
              {"split": "test", "label": "positive", "rows": 2},
              {"split": "train", "label": "neutral", "rows": 9}]
    key = "splits.min_test_rows_per_class"
    assert _test_class_details(counts, valid, valid, spec=spec) == {
        key: "class 'neutral' without a test row"}
    counts.append({"split": "test", "label": "neutral", "rows": 7})
    assert _test_class_details(counts, valid, valid, spec=spec) == {key: "class 'positive'"}


def test_briefs_keep_what_the_metrics_and_report_read() -> None:
    from checks.contract import ContractResult
    from labelgate.results import brief
    from labelgate.stages import split_step
    from labelgate.stages.steps import detect_duplicates

    spec = parse_spec(spec_dict(dedup={}, splits={}))
    valid = pl.DataFrame({"tweet_id": ["a", "b", "c", "d"], "text": ["x y", "X  y", "z", "w"],
                          "sentiment": ["negative", "positive", "neutral", "neutral"],
                          "confidence": [0.1, 0.2, 0.3, 0.4]})
    dups = detect_duplicates(valid, spec=spec)
    short = brief(dups, spec=spec)
    assert short.sections() == dups.sections() and short.metrics == dups.metrics
    assert dups.result.cluster_of.height == 4 and short.result.cluster_of.height == 0
    assert short.result.clusters.schema == dups.result.clusters.schema

    made = split_step.make_splits(valid, spec=spec, run_id="r1", previous=None, issues=None,
                                  dups=dups)
    small = brief(made, spec=spec)
    assert made.kept.height + made.excluded.height == 4 and small.kept.height == 0
    assert small.excluded.equals(made.excluded) and small.sections() == made.sections()
    assert small.result.assignments.height == 0 and small.result.counts.equals(
        made.result.counts)

    contract = ContractResult(valid, pl.DataFrame(), 5, 1)
    slim = brief(contract, spec=spec)
    assert slim.valid.columns == ["tweet_id", "sentiment"]
    assert (slim.rows_valid, slim.rows_input, slim.rows_quarantined) == (4, 5, 1)
    assert brief({"x": 1}, spec=spec) == {"x": 1}  # no brief: as it is
