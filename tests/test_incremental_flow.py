"""A night with a few new rows builds on the last run's fold models (issue 26)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml
from conftest import SpecFactory, item_rows, spec_dict, write_csv

pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_server")]

FLIPPED = {"t0004": "negative", "t0031": "positive", "t0057": "neutral"}


def _rows(n: int, *, start: int = 0) -> list[dict[str, Any]]:
    rows = [r for r in item_rows(start + n)[start:]]
    for r in rows:
        r["sentiment"] = FLIPPED.get(r["tweet_id"], r["sentiment"])
    return rows


def _outputs(spec: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    latest = spec.parent / "store/reports/tiny-tweets/latest"
    return (pl.read_parquet(latest / "label_issues.parquet").sort("id"),
            pl.read_parquet(latest / "probabilities.parquet").sort("id"))


def _write_spec(spec: Path, **label_issues: Any) -> None:
    spec.write_text(yaml.safe_dump(spec_dict(
        label_issues={"method": "cross_validated", "folds": 3, **label_issues},
        gate={"max_quarantine_rate": 0.1})))


def test_a_night_with_new_rows_reuses_the_fold_models(make_spec: SpecFactory) -> None:
    from flows.pipeline import quality_pipeline

    spec = make_spec(_rows(120))
    _write_spec(spec)
    first = quality_pipeline(str(spec))
    assert first["label_issues"]["refresh"]["mode"] == "full"
    assert first["metrics"]["label_issues.incremental"] == 0.0
    issues_1, probs_1 = _outputs(spec)
    flagged_1 = issues_1.filter("is_label_issue").get_column("id").to_list()
    assert flagged_1 and set(flagged_1) <= set(FLIPPED)  # flags to compare with

    write_csv(spec.parent / "items" / "part2.csv", _rows(6, start=120))
    second = quality_pipeline(str(spec))
    refresh = second["label_issues"]["refresh"]
    assert (refresh["mode"], refresh["models_from"]) == ("incremental", first["run_id"])
    assert (refresh["trained_rows"], refresh["kept_rows"], refresh["new_rows"]) == (120, 120, 6)
    assert second["metrics"]["label_issues.incremental"] == 1.0
    assert second["metrics"]["label_issues.new_share"] == pytest.approx(6 / 126)
    issues_2, probs_2 = _outputs(spec)
    old = probs_2.join(probs_1, on="id", suffix="_1")
    assert old.height == 120  # the kept rows keep their probabilities exactly
    for c in ("negative", "neutral", "positive"):
        assert (old.get_column(c) == old.get_column(f"{c}_1")).all()
    flagged_old = issues_2.filter(pl.col("is_label_issue") & pl.col("id").is_in(
        probs_1.get_column("id").implode()))
    assert flagged_old.get_column("id").to_list() == flagged_1
    new = probs_2.filter(~pl.col("id").is_in(probs_1.get_column("id").implode()))
    assert new.height == 6
    sums = new.select(pl.sum_horizontal("negative", "neutral", "positive")).to_series()
    assert ((sums - 1).abs() < 1e-4).all()
    report = (spec.parent / "store/reports/tiny-tweets/latest/report.md").read_text()
    assert f"6 new rows scored by run {first['run_id']}'s fold models" in report

    # a third night builds on the same models: the second night's rows keep their scores
    write_csv(spec.parent / "items" / "part3.csv", _rows(3, start=126))
    third = quality_pipeline(str(spec))
    refresh = third["label_issues"]["refresh"]
    assert (refresh["models_from"], refresh["kept_rows"], refresh["new_rows"]) == (
        first["run_id"], 126, 3)
    # each night wrote only its new rows beside the rows it read; read back, they are all
    units = spec.parent / "store/cache/tiny-tweets/label_models"
    key = next(units.iterdir()).name.split("-")[0]
    written = {u.name[len(key) + 1:]: (
        pl.read_parquet(u / "rows.parquet").height,
        yaml.safe_load((u / "_done.json").read_text()).get("rows_before"))
        for u in units.iterdir()}
    assert written == {first["run_id"]: (120, None), second["run_id"]: (6, first["run_id"]),
                       third["run_id"]: (3, second["run_id"])}
    from labelgate.store import kept_models

    found = kept_models.latest_rows(spec.parent / "store", "tiny-tweets", key=key)
    assert found is not None
    assert found[0].rows.get_column("id").to_list() == [r["tweet_id"] for r in _rows(129)]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("settings", "no models kept for these settings"),
        ("threshold", "label_issues.refresh.max_new_share 0.02"),
        ("label", "1 of the 120 kept rows changed"),
        ("off", "label_issues.refresh is off"),
    ],
)
def test_a_settings_change_a_changed_label_or_the_threshold_trains_again(
    make_spec: SpecFactory, change: str, reason: str
) -> None:
    from flows.pipeline import quality_pipeline

    spec = make_spec(_rows(120))
    _write_spec(spec)
    quality_pipeline(str(spec))
    write_csv(spec.parent / "items" / "part2.csv", _rows(6, start=120))
    if change == "settings":
        _write_spec(spec, seed=7)
    if change == "threshold":
        _write_spec(spec, refresh={"max_new_share": 0.02})
    if change == "off":
        _write_spec(spec, refresh=None)
    if change == "label":
        rows = _rows(120)
        rows[10]["sentiment"] = "neutral" if rows[10]["sentiment"] != "neutral" else "positive"
        write_csv(spec.parent / "items" / "part1.csv", rows)
    second = quality_pipeline(str(spec))
    refresh = second["label_issues"]["refresh"]
    assert (refresh["mode"], refresh["models_from"]) == ("full", second["run_id"])
    assert reason in refresh["reason"]
    assert second["metrics"]["label_issues.incremental"] == 0.0
