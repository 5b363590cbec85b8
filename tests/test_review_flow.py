"""The review loop end to end: run → export → import corrections → the next run uses them."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from flows.cli import app
from tests.conftest import SpecFactory, item_rows

pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_server")]
runner = CliRunner()


def test_corrections_overlay_changes_the_next_run(make_spec: SpecFactory, tmp_path: Path) -> None:
    spec = make_spec(item_rows(90), label_issues={"method": "cross_validated", "folds": 3})
    assert runner.invoke(app, ["run", str(spec)]).exit_code == 0
    latest = spec.parent / "store/reports/tiny-tweets/latest"
    probs = pl.read_parquet(latest / "probabilities.parquet")
    assert probs.columns == ["id", "negative", "neutral", "positive"] and probs.height == 90
    sums = probs.select(pl.sum_horizontal("negative", "neutral", "positive")).to_series()
    assert sums.min() > 0.99

    exported = runner.invoke(app, ["review", "export", str(spec), "--limit", "10",
                                   "--format", "csv", "--out", str(tmp_path / "queue.csv")])
    assert exported.exit_code == 0, exported.output

    corrections = tmp_path / "fixes.csv"
    pl.DataFrame({
        "id": ["t0000", "t0001", "nope"],          # t0000 is negative, t0001 positive
        "label": ["neutral", "positive", "neutral"],
        "reviewer": ["ann", "ann", "ann"],
    }).write_csv(corrections)
    imported = runner.invoke(app, ["review", "import", str(spec), str(corrections)])
    assert imported.exit_code == 0, imported.output
    assert "nope" in imported.output  # the unknown id is reported, not applied

    assert runner.invoke(app, ["run", str(spec)]).exit_code == 0
    report = json.loads((latest / "report.json").read_text())
    assert report["review"]["n_changed"] == 1 and report["review"]["n_confirmed"] == 1
    md = (latest / "report.md").read_text()
    assert "## Review" in md and "2 rows carry a reviewer's label (1 changed, 1 confirmed)" in md
    assert report["metrics"]["review.changed_labels"] == 1
    valid = pl.read_parquet(report["paths"]["valid_rows"])
    labels = dict(valid.select("tweet_id", "sentiment").iter_rows())
    assert labels["t0000"] == "neutral" and labels["t0001"] == "positive"
    # a reviewed label is not a probable error: the model still disagrees with t0000's new
    # label, but it is not flagged (so no split policy relabels or drops it) and is counted
    issues = pl.read_parquet(latest / "label_issues.parquet").filter(
        pl.col("id").is_in(["t0000", "t0001"])
    ).sort("id")
    assert issues.get_column("suggested_label").to_list()[0] == "negative"
    assert issues.get_column("is_label_issue").to_list() == [False, False]
    assert report["label_issues"]["reviewed_rows"] == 2
    assert report["label_issues"]["reviewed_not_flagged"] >= 1
    # the lake still has the source label: the overlay is not an in-place edit
    raw = pl.read_parquet(next((spec.parent / "store/lake/tiny-tweets/items").glob(
        "batch=*/data.parquet")))
    assert raw.filter(pl.col("tweet_id") == "t0000").get_column("sentiment").item() == "negative"
    # the next export leaves the reviewed items out, whatever would have picked them
    again = runner.invoke(app, ["review", "export", str(spec), "--limit", "90",
                                "--format", "csv", "--out", str(tmp_path / "queue2.csv")])
    assert again.exit_code == 0, again.output
    assert "2 item(s) already reviewed are not queued again" in again.output
    queued = pl.read_csv(tmp_path / "queue2.csv", infer_schema_length=0).get_column("id")
    assert queued.len() > 0 and not queued.is_in(["t0000", "t0001"]).any()
