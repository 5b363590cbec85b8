"""The agreement stage's wiring: spec sections, lake ingest of annotations, warehouse tables,
gate checks, report section, and one flow run under the session Prefect server."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest
import yaml

from labelgate.errors import InputError, SpecError
from labelgate.gate import GATE_CHECKS, agreement_gate_metrics, evaluate_gate
from labelgate.report import agreement_lines as _agreement_markdown
from labelgate.report import agreement_section
from labelgate.spec import AnnotationSourceSpec, parse_spec
from labelgate.stages.agreement.core import compute_agreement
from labelgate.store import warehouse
from labelgate.store.lake import ingest_source, load_annotations, load_batches
from tests.conftest import LABELS, SpecFactory, item_rows, spec_dict, write_csv

FIXTURES = Path(__file__).parent / "fixtures" / "agreement"


def annotation_rows(n_items: int = 30) -> list[dict[str, Any]]:
    """Three annotators on the first `n_items` tiny-tweets items: a1 always right, a2 wrong
    on every 5th item, a3 on every 3rd; plus two labels on an item the items lack."""
    wrong = {"negative": "neutral", "neutral": "positive", "positive": "negative"}
    rows = []
    for i in range(n_items):
        truth = LABELS[i % 6]
        for annotator, every in (("a1", 0), ("a2", 5), ("a3", 3)):
            label = wrong[truth] if every and i % every == 0 else truth
            rows.append({"tweet_id": f"t{i:04d}", "annotator": annotator, "label": label})
    rows += [{"tweet_id": "zz-unknown", "annotator": a, "label": "neutral"} for a in ("a1", "a2")]
    return rows


def gold_rows() -> list[dict[str, Any]]:
    return [{"tweet_id": f"t{i:04d}", "label": LABELS[i % 6]} for i in range(0, 30, 2)]


# ------------------------------------------------------------------------------ spec


def _spec(**overrides: Any) -> Any:
    return parse_spec(spec_dict(**overrides), source="spec.yaml")


def test_spec_agreement_sections_and_defaults() -> None:
    spec = _spec(
        sources={"items": {"path": "items/*.csv"},
                 "annotations": {"path": "ann.csv"}, "gold": {"path": "gold.csv"}},
        agreement={"level": "ordinal", "categories": ["negative", "neutral", "positive"],
                   "consensus": "dawid_skene", "bootstrap": {"n": 200, "seed": 3}},
    )
    opts = spec.agreement_options()
    assert opts["item_column"] == "tweet_id"  # defaults to columns.id
    assert (opts["annotator_column"], opts["label_column"]) == ("annotator", "label")
    assert opts["gold_item_column"] == "tweet_id"
    assert opts["level"] == "ordinal" and opts["kappa_weights"] == "default"
    assert (opts["n_boot"], opts["seed"]) == (200, 3)
    assert spec.agreement_settings().consensus == "dawid_skene"
    # annotations alone: the agreement section's defaults
    only = _spec(sources={"items": {"path": "i.csv"}, "annotations": {"path": "a.json"}})
    assert only.agreement_settings().level == "nominal"
    assert only.annotation_columns() == ("item", "annotator", "label", "timestamp")


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        ({"agreement": {"levle": "interval"}},
         "agreement.levle: unknown key; valid keys: item, annotator, label"),
        ({"agreement": {"bootstrap": {"n": 10, "sed": 1}}},
         "agreement.bootstrap.sed: unknown key; valid keys: n, seed, confidence"),
        ({"agreement": {"level": "ratio"}}, "agreement.level"),
        ({"agreement": {"consensus": "crowdlab"}}, "agreement.consensus"),
        ({"sources": {"items": {"path": "i.csv"}, "annotations": {"path": "a.csv", "wid": ["x"]}}},
         "sources.annotations.wid: unknown key; valid keys: path, encoding, separator, "
         "max_line_bytes, format"),
        ({"sources": {"items": {"path": "i.csv"}, "annotations": {"path": "a.csv"}},
          "gate": {"min_krippendorf_alpha": 0.5}},
         "unknown gate check 'min_krippendorf_alpha'"),
        ({"gate": {"min_krippendorff_alpha": 1.5}}, "gate.min_krippendorff_alpha must be between"),
    ],
)
def test_spec_agreement_errors_name_the_key(patch: dict[str, Any], expected: str) -> None:
    base = {"sources": {"items": {"path": "i.csv"}, "annotations": {"path": "a.csv"}}}
    with pytest.raises(SpecError) as err:
        parse_spec(spec_dict(**(base | patch)), source="spec.yaml")
    assert expected in str(err.value)
    assert "spec.yaml" in str(err.value)


@pytest.mark.parametrize(
    ("sources", "agreement", "expected"),
    [
        ({"items": {"path": "i.csv"}}, {"level": "interval"},
         "agreement: set sources.annotations"),
        ({"items": {"path": "i.csv"}, "gold": {"path": "g.csv"}}, None,
         "gold needs sources.annotations"),
        ({"items": {"path": "i.csv"},
          "annotations": {"path": "a.json", "wide": ["r1", "r2"]}}, None,
         "wide does not apply to format label-studio"),
        ({"items": {"path": "i.csv"}, "annotations": {"path": "a.json"}}, {"item": "tweet_id"},
         "agreement.item does not apply to a label-studio export"),
        ({"items": {"path": "i.csv"}, "annotations": {"path": "a.csv", "item_field": "x"}}, None,
         "item_field and from_name apply to format label-studio only"),
    ],
)
def test_spec_agreement_cross_checks(
    sources: dict[str, Any], agreement: dict[str, Any] | None, expected: str
) -> None:
    extra = {"agreement": agreement} if agreement is not None else {}
    with pytest.raises(SpecError, match=expected):
        parse_spec(spec_dict(sources=sources, **extra), source="spec.yaml")


# ------------------------------------------------------------------------------ lake


def test_label_studio_export_ingests_as_long_batch(tmp_path: Path) -> None:
    source = AnnotationSourceSpec(path=str(FIXTURES / "label_studio_export.json"),
                                  item_field="tweet_id")
    batches = ingest_source(source, key="annotations", dataset="d", store=tmp_path,
                            base_dir=tmp_path)
    assert [(b.source, b.format, b.rows) for b in batches] == [("annotations", "label-studio", 5)]
    again = ingest_source(source, key="annotations", dataset="d", store=tmp_path,
                          base_dir=tmp_path)
    assert again[0].reused and again[0].batch == batches[0].batch
    # another item field is another batch (the reader options are part of the hash)
    by_task = ingest_source(AnnotationSourceSpec(path=source.path), key="annotations",
                            dataset="d", store=tmp_path, base_dir=tmp_path)
    assert by_task[0].batch != batches[0].batch
    rows, _ = load_batches(batches)
    assert rows["item"].to_list() == ["t1", "t1", "t2", "t2", "t3"]
    assert rows["annotator"].to_list() == ["7", "8", "7", "c@example.com", "7"]
    inputs = load_annotations(
        batches, gold_batches=[], item_column="item", annotator_column="annotator",
        label_column="label", wide=None, gold_item_column="item", gold_label_column="label",
        known_items=pl.Series(["t1", "t2"]),
    )
    assert (inputs.n_items_unknown, inputs.n_rows_unknown) == (1, 1)


def test_wide_annotations_and_missing_columns(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "wide.csv", [
        {"id": "1", "r1": "2", "r2": "3", "r3": None},
        {"id": "2", "r1": "-1", "r2": None, "r3": "-2"},
        {"id": "9", "r1": "0", "r2": "0", "r3": "1"},
    ])
    source = AnnotationSourceSpec(path=str(path), wide=["r1", "r2", "r3"])
    batches = ingest_source(source, key="annotations", dataset="d", store=tmp_path,
                            base_dir=tmp_path)
    inputs = load_annotations(
        batches, gold_batches=[], item_column="id", annotator_column="rater",
        label_column="rating", wide=source.wide, gold_item_column="id",
        gold_label_column="label", known_items=pl.Series([1, 2]),
    )
    assert inputs.annotations.columns == ["id", "rater", "rating"]
    assert inputs.annotations.height == 7  # 9 cells, 2 empty
    assert (inputs.n_items_unknown, inputs.n_rows_unknown) == (1, 3)
    with pytest.raises(InputError, match=r"wide.csv: missing column\(s\) \['r4'\]"):
        load_annotations(
            batches, gold_batches=[], item_column="id", annotator_column="a",
            label_column="l", wide=["r1", "r4"], gold_item_column="id",
            gold_label_column="label", known_items=pl.Series([1]),
        )


# ------------------------------------------------------------------------------ gate


@pytest.mark.parametrize(
    ("check", "metric", "observed", "threshold", "passed"),
    [
        ("min_krippendorff_alpha", "krippendorff_alpha", 0.7, 0.6, True),
        ("min_krippendorff_alpha", "krippendorff_alpha", 0.5, 0.6, False),
        ("min_fleiss_kappa", "fleiss_kappa", 0.41, 0.4, True),
        ("min_mean_cohen_kappa", "mean_cohen_kappa", 0.3, 0.4, False),
        ("min_percent_agreement", "percent_agreement", 0.94, 0.9, True),
        ("min_gwet_ac1", "gwet_ac1", 0.1, 0.2, False),
        ("min_annotator_gold_accuracy", "min_annotator_gold_accuracy", 0.8, 0.8, True),
        ("max_flagged_annotators", "n_flagged_annotators", 2, 1, False),
        ("max_flagged_annotators", "n_flagged_annotators", 0, 0, True),
        ("min_annotators_per_item", "min_labels_per_item", 3, 2, True),
    ],
)
def test_agreement_gate_checks(
    check: str, metric: str, observed: float, threshold: float, passed: bool
) -> None:
    metrics = agreement_gate_metrics({metric: observed})
    verdict = evaluate_gate(metrics, {check: threshold})
    assert verdict.passed is passed
    assert verdict.checks[0].metric == f"agreement.{metric}" == GATE_CHECKS[check].metric
    assert f"gate.{check}" in verdict.checks[0].message


def test_undefined_agreement_metric_fails_as_not_computed() -> None:
    metrics = agreement_gate_metrics({"krippendorff_alpha": math.nan, "fleiss_kappa": None,
                                      "percent_agreement": 1.0})
    assert metrics == {"agreement.percent_agreement": 1.0}
    verdict = evaluate_gate(metrics, {"min_krippendorff_alpha": 0.5})
    assert not verdict.passed
    assert "agreement.krippendorff_alpha was not computed" in verdict.checks[0].message


# ------------------------------------------------------------------------------ warehouse, report


def test_warehouse_tables_and_markdown(tmp_path: Path) -> None:
    ann = pl.DataFrame(annotation_rows()).with_columns(
        pl.when(pl.col("annotator") == "a3").then(pl.lit("a|3<b>")).otherwise("annotator")
        .alias("annotator")
    )
    report = compute_agreement(ann, item_column="tweet_id", gold=pl.DataFrame(gold_rows()),
                               gold_item_column="tweet_id", min_shared_items=5, n_boot=50,
                               min_annotator_agreement=0.9)
    with warehouse.connect(tmp_path / "w.duckdb") as con:
        warehouse.record_agreement(con, report, run_id="r1", dataset="d",
                                   consensus_method="dawid_skene")
        counts = {t: con.execute(f"SELECT count(*) FROM {t} WHERE run_id = 'r1' "
                                 "AND dataset = 'd'").fetchall()[0][0]
                  for t in ("agreement_metrics", "annotator_stats", "agreement_pairs",
                            "consensus")}
        alpha = con.execute("SELECT value, ci_low, ci_high FROM agreement_metrics "
                            "WHERE metric = 'krippendorff_alpha'").fetchall()[0]
        chosen = con.execute("SELECT count(*) FROM consensus WHERE consensus_label = dawid_skene"
                             " AND consensus_method = 'dawid_skene'").fetchall()[0][0]
    assert counts == {"agreement_metrics": len(report.metrics), "annotator_stats": 3,
                      "agreement_pairs": 3, "consensus": 31}
    assert alpha[0] == pytest.approx(report.metrics["krippendorff_alpha"])
    assert alpha[1] is not None and alpha[1] <= alpha[0] <= alpha[2]
    assert chosen == 31

    section = agreement_section(report, consensus_method="majority", n_items_unknown=1,
                                n_rows_unknown=2, n_unparseable=0)
    assert section["n_items_not_in_items"] == 1
    assert any("1 annotated item(s) (2 annotation rows)" in n for n in section["notes"])
    md = "\n".join(_agreement_markdown(json.loads(json.dumps(section))))
    assert "Krippendorff's α" in md and "a\\|3&lt;b&gt;" in md and "a|3<b>" not in md
    long_note = next(n for n in section["notes"] if "annotated item(s)" in n)
    assert len(long_note) > 80 and f"- {long_note}" in md  # notes are not cut like cells


# ------------------------------------------------------------------------------ flow


@pytest.mark.flow
@pytest.mark.usefixtures("prefect_server")
def test_flow_with_annotations_and_gold(make_spec: SpecFactory, tmp_path: Path) -> None:
    from flows.pipeline import quality_pipeline

    write_csv(tmp_path / "ann" / "annotations.csv", annotation_rows())
    write_csv(tmp_path / "gold.csv", gold_rows())
    agreement = {"level": "nominal", "min_shared_items": 5, "bootstrap": {"n": 100, "seed": 1}}
    gate = {"max_quarantine_rate": 0.1, "min_krippendorff_alpha": 0.3,
            "min_annotator_gold_accuracy": 0.5, "max_flagged_annotators": 0,
            "min_annotators_per_item": 2}
    spec = make_spec(
        item_rows(60),
        sources={"items": {"path": "items/*.csv"}, "annotations": {"path": "ann/*.csv"},
                 "gold": {"path": "gold.csv"}},
        agreement=agreement,
        gate=gate,
    )
    report = quality_pipeline(str(spec))

    expected = compute_agreement(
        pl.DataFrame(annotation_rows()), item_column="tweet_id",
        gold=pl.DataFrame(gold_rows()), gold_item_column="tweet_id", min_shared_items=5,
        n_boot=100, seed=1,
    ).metrics
    ag = report["agreement"]
    for key in ("krippendorff_alpha", "krippendorff_alpha_ci_low", "fleiss_kappa",
                "mean_cohen_kappa", "percent_agreement", "gwet_ac1",
                "min_annotator_gold_accuracy", "n_labels", "n_items"):
        assert ag["metrics"][key] == pytest.approx(expected[key]), key
    assert ag["metrics"]["n_labels"] == 92 and ag["metrics"]["n_annotators"] == 3
    assert (ag["n_items_not_in_items"], ag["n_rows_not_in_items"]) == (1, 2)
    assert ag["consensus_method"] == "majority"
    assert ag["settings"]["bootstrap"] == {"n": 100, "seed": 1, "confidence": 0.95}
    assert report["metrics"]["agreement.krippendorff_alpha"] == pytest.approx(
        expected["krippendorff_alpha"])
    assert report["gate"]["passed"] is True
    assert {c["name"] for c in report["gate"]["checks"]} == set(gate)
    assert [s["source"] for s in report["sources"]] == ["items", "annotations", "gold"]

    folder = spec.parent / "store/reports/tiny-tweets/latest"
    on_disk = json.loads((folder / "report.json").read_text())
    assert on_disk["agreement"]["metrics"]["n_items"] == 31
    md = (folder / "report.md").read_text()
    assert "## Agreement" in md and "95% bootstrap interval" in md
    # each confused pair once: the counts are symmetric, (a, b) = (b, a)
    pairs = md.split("Most confused category pairs", 1)[1].split("###", 1)[0]
    rows = [[c.strip() for c in line.split("|")[1:3]] for line in pairs.splitlines()
            if line.startswith("|") and "---" not in line and "label a" not in line]
    assert rows and all(a < b for a, b in rows)
    assert len({frozenset(r) for r in rows}) == len(rows)
    assert len(list((spec.parent / "store/lake/tiny-tweets/annotations").glob("batch=*"))) == 1

    con = duckdb.connect(str(spec.parent / "store/warehouse.duckdb"), read_only=True)
    try:
        run_id = report["run_id"]
        counts = {
            t: con.execute(f"SELECT count(*) FROM {t} WHERE run_id = ? AND dataset = ?",
                           [run_id, "tiny-tweets"]).fetchall()[0][0]
            for t in ("agreement_metrics", "annotator_stats", "agreement_pairs", "consensus")
        }
        assert counts == {"agreement_metrics": len(expected), "annotator_stats": 3,
                          "agreement_pairs": 3, "consensus": 31}
        sources = con.execute("SELECT source, count(*) FROM run_batches WHERE run_id = ? "
                              "GROUP BY ALL ORDER BY 1", [run_id]).fetchall()
        assert sources == [("annotations", 1), ("gold", 1), ("items", 1)]
    finally:
        con.close()


@pytest.mark.flow
@pytest.mark.usefixtures("prefect_server")
def test_flow_bad_annotation_column_is_an_input_error(make_spec: SpecFactory,
                                                       tmp_path: Path) -> None:
    from flows.pipeline import quality_pipeline

    write_csv(tmp_path / "ann.csv", annotation_rows(3))
    spec = make_spec(
        sources={"items": {"path": "items/*.csv"}, "annotations": {"path": "ann.csv"}},
        agreement={"annotator": "rater"},
    )
    state = quality_pipeline(str(spec), return_state=True)
    exc = state.result(raise_on_failure=False)
    assert isinstance(exc, InputError)
    assert "ann.csv: missing column(s) ['rater']" in str(exc)
    assert "agreement.item/annotator/label" in str(exc)


def test_spec_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec_dict(
        sources={"items": {"path": "i.csv"},
                 "annotations": {"path": "a.json", "item_field": "tweet_id"}},
        agreement={"consensus": "dawid_skene"})))
    from labelgate.spec import load_spec

    spec = load_spec(path)
    assert spec.sources.annotations is not None and spec.sources.annotations.is_label_studio()


def test_vader_example_spec_and_alpha() -> None:
    """The bundled real example: its spec is valid and its ratings pass its alpha gate."""
    from labelgate.spec import load_spec

    root = Path(__file__).resolve().parents[1] / "data/examples/vader"
    spec = load_spec(root / "spec.yaml")
    ratings = pl.read_csv(root / "ratings.csv", infer_schema=False)
    assert ratings.height == 15000 and ratings["word_id"].n_unique() == 1500
    report = compute_agreement(ratings, **(spec.agreement_options() | {"n_boot": 0}))
    alpha = report.metrics["krippendorff_alpha"]
    assert alpha == pytest.approx(0.7416, abs=1e-4)
    assert isinstance(alpha, float) and alpha >= spec.gate["min_krippendorff_alpha"]
    assert report.metrics["min_labels_per_item"] == 10


@pytest.mark.flow
@pytest.mark.usefixtures("prefect_server")
def test_flow_label_studio_export_and_failing_agreement_gate(make_spec: SpecFactory) -> None:
    from flows.pipeline import quality_pipeline
    from labelgate.errors import GateFailedError

    spec = make_spec(
        sources={"items": {"path": "items/*.csv"},
                 "annotations": {"path": str(FIXTURES / "label_studio_export.json"),
                                 "item_field": "tweet_id"}},
        gate={"min_annotators_per_item": 2, "min_percent_agreement": 0.1},
    )
    state = quality_pipeline(str(spec), return_state=True)
    exc = state.result(raise_on_failure=False)
    assert isinstance(exc, GateFailedError)
    assert "agreement.min_labels_per_item 1 < gate.min_annotators_per_item 2" in str(exc)
    report = json.loads(
        (spec.parent / "store/reports/tiny-tweets/latest/report.json").read_text())
    ag = report["agreement"]
    assert ag["metrics"]["n_labels"] == 5 and ag["metrics"]["n_annotators"] == 3
    assert ag["metrics"]["percent_agreement"] == pytest.approx(0.5)  # t1 agrees, t2 not
    assert (ag["n_items_not_in_items"], ag["n_rows_not_in_items"]) == (3, 5)
    assert [c["passed"] for c in report["gate"]["checks"]] == [False, True]


def test_cli_check_reports_agreement_and_warns(make_spec: SpecFactory, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from flows.cli import app

    runner = CliRunner()
    spec = make_spec(
        sources={"items": {"path": "items/*.csv"}, "annotations": {"path": "a.csv"}},
        agreement={"level": "ordinal", "categories": ["negative", "neutral", "positive"]},
    )
    (tmp_path / "a.csv").write_text("tweet_id,annotator,label\n")  # check reads its header
    ok = runner.invoke(app, ["check", str(spec)])
    assert ok.exit_code == 0, ok.output
    assert "agreement: level ordinal, columns item=tweet_id annotator=annotator" in ok.output
    spec = make_spec(gate={"min_krippendorff_alpha": 0.6})
    warned = runner.invoke(app, ["check", str(spec)])
    assert warned.exit_code == 0
    assert "gate.min_krippendorff_alpha needs the agreement stage" in warned.output


@pytest.mark.flow
@pytest.mark.usefixtures("prefect_server")
def test_flow_applies_the_consensus_label(make_spec: SpecFactory, tmp_path: Path) -> None:
    from flows.pipeline import quality_pipeline

    rows = item_rows(60)
    rows[4]["sentiment"] = "negative"  # item t0004 is 'positive' to all three annotators
    write_csv(tmp_path / "ann" / "annotations.csv", annotation_rows())
    spec = make_spec(
        rows,
        sources={"items": {"path": "items/*.csv"}, "annotations": {"path": "ann/*.csv"}},
        agreement={"consensus": "majority", "apply": True, "bootstrap": {"n": 0}},
        gate={"max_quarantine_rate": 0.1},
    )
    report = quality_pipeline(str(spec))
    applied = report["agreement"]["training_label"]
    assert applied["applied"] is True and applied["method"] == "majority"
    # t0004, plus t0000 and t0015 where a2 and a3 are both wrong and outvote a1
    assert applied["changed"] == 3 and applied["without_consensus"] == 30
    valid = pl.read_parquet(report["paths"]["valid_rows"])
    labels = dict(valid.select("tweet_id", "sentiment").iter_rows())
    assert labels["t0004"] == "positive" and labels["t0000"] == "neutral"
    assert report["metrics"]["agreement.consensus_changed_labels"] == 3
    # the report says so (it said "not yet applied" whatever `apply` was)
    assert report["agreement"]["consensus_applied_to_items"] is True
    md = (Path(report["paths"]["report"]) / "report.md").read_text()
    assert "applied to the items: 3 labels changed, 27 confirmed, 30 items kept" in md
    assert "not applied" not in md


@pytest.mark.flow
@pytest.mark.usefixtures("prefect_server")
def test_flow_multiannotator_label_issues_compare_consensus(
    make_spec: SpecFactory, tmp_path: Path
) -> None:
    from flows.pipeline import quality_pipeline

    write_csv(tmp_path / "ann" / "annotations.csv", annotation_rows())
    spec = make_spec(
        item_rows(60),
        sources={"items": {"path": "items/*.csv"}, "annotations": {"path": "ann/*.csv"}},
        agreement={"bootstrap": {"n": 0}},
        label_issues={"method": "multiannotator", "folds": 3},
        gate={"max_quarantine_rate": 0.1},
    )
    report = quality_pipeline(str(spec))
    li = report["label_issues"]
    assert li["method"] == "multiannotator"
    compared = {c["b"]: c for c in li["consensus_comparison"]}
    assert set(compared) == {"majority", "dawid_skene"}
    assert compared["majority"]["items"] == 30  # the annotated items among the valid ones
    assert {a["annotator"] for a in li["annotators"]} == {"a1", "a2", "a3"}


def test_spec_label_from_consensus_when_items_have_no_label() -> None:
    sources = {"items": {"path": "x.csv"}, "annotations": {"path": "a.csv"}}
    columns = {"id": "tweet_id", "text": ["text"]}
    spec = _spec(sources=sources, columns=columns,
                 agreement={"apply": True, "label": "rating"}, contract={})
    assert spec.columns.label == "rating" and spec.columns.label_from_consensus
    assert spec.columns.required() == ["tweet_id", "text"]  # the items need no label column
    assert "rating" not in spec.contracted_columns()
    with pytest.raises(SpecError, match=r"agreement\.apply: true"):
        _spec(sources=sources, columns=columns, agreement={"apply": False}, contract={})
    with pytest.raises(SpecError, match=r"contract\.rating: the label comes from"):
        _spec(sources=sources, columns=columns, agreement={"apply": True, "label": "rating"},
              contract={"rating": {"dtype": "str"}})
    with pytest.raises(SpecError, match=r"needs sources\.annotations"):
        _spec(columns={**columns, "label": "sentiment", "label_from_consensus": True})


def test_label_from_consensus_quarantines_items_without_one() -> None:
    from labelgate.stages.steps import label_from_consensus

    spec = _spec(sources={"items": {"path": "x.csv"}, "annotations": {"path": "a.csv"}},
                 columns={"id": "tweet_id", "text": ["text"]}, contract={},
                 agreement={"apply": True, "consensus": "majority"})
    valid = pl.DataFrame({"tweet_id": ["a", "b", "c"], "text": ["x", "y", "z"],
                          "_batch": ["b1"] * 3, "_row": [1, 2, 3]})
    consensus = pl.DataFrame({"item": ["a", "c", "zz"], "majority": ["pos", None, "neg"],
                              "dawid_skene": ["pos", "neg", "neg"]})
    labeled, quarantine, stats = label_from_consensus(valid, consensus, spec=spec)
    assert labeled.select("tweet_id", "label").rows() == [("a", "pos")]
    assert quarantine.select("id", "row", "column", "check").rows() == [
        ("b", 2, "label", "consensus"), ("c", 3, "label", "consensus")]
    assert "no majority consensus" in quarantine.get_column("reason")[0]
    assert (stats["labeled"], stats["without_consensus"]) == (1, 2)


@pytest.mark.flow
@pytest.mark.usefixtures("prefect_server")
def test_flow_ratings_without_a_label_column(make_spec: SpecFactory, tmp_path: Path) -> None:
    from flows.pipeline import quality_pipeline

    rows = [{k: v for k, v in r.items() if k != "sentiment"} for r in item_rows(60)]
    write_csv(tmp_path / "ann" / "annotations.csv", annotation_rows())
    contract = {"tweet_id": {"dtype": "str", "unique": True},
                "text": {"dtype": "str", "str_length": {"min": 1, "max": 500}}}
    spec = make_spec(
        rows, columns={"id": "tweet_id", "text": ["text"]}, contract=contract,
        sources={"items": {"path": "items/*.csv"}, "annotations": {"path": "ann/*.csv"}},
        agreement={"consensus": "majority", "apply": True, "bootstrap": {"n": 0}},
        splits={"fractions": {"train": 0.8, "test": 0.2}, "stratify": True, "seed": 1},
        gate={"max_quarantine_rate": 0.6, "min_rows_per_class": 5},
    )
    report = quality_pipeline(str(spec))
    rows_ = report["rows"]
    # 30 of the 60 items have annotations; the other 30 have no label and are quarantined
    assert (rows_["input"], rows_["valid"], rows_["quarantined"]) == (60, 30, 30)
    assert report["agreement"]["training_label"]["labeled"] == 30
    valid = pl.read_parquet(report["paths"]["valid_rows"])
    labels = dict(valid.select("tweet_id", "label").iter_rows())
    assert labels["t0004"] == "positive" and labels["t0000"] == "neutral"
    assert report["gate"]["passed"] is True
    md = (Path(report["paths"]["report"]) / "report.md").read_text()
    assert "the items' only label: 30 items labeled, 30 without a consensus quarantined" in md
