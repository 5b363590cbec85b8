"""A night gives the same flags, label quality, probabilities and warehouse rows whether
the training run's fold models were kept in the current format (``coef.npy``) or in the
format before it (``coef.parquet``) (issue 26: `labelgate.store.kept_models`)."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import polars as pl
import pytest
from conftest import SpecFactory, write_csv
from test_incremental_flow import _rows, _write_spec
from test_kept_models_format import _old_model_frames

from labelgate.store import kept_models, lake

pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_server")]


def _night_outputs(store: Path, run_id: str) -> dict[str, pl.DataFrame]:
    report = store / "reports/tiny-tweets" / run_id
    with duckdb.connect(str(store / "warehouse.duckdb"), read_only=True) as con:
        rows = con.sql(
            "SELECT id, given_label, suggested_label, label_quality, is_label_issue, rank"
            " FROM label_issues WHERE run_id = ? ORDER BY rank", params=[run_id]).pl()
    return {"table": pl.read_parquet(report / "label_issues.parquet"),
            "probabilities": pl.read_parquet(report / "probabilities.parquet"),
            "warehouse": rows}


def _to_old_format(unit: Path) -> None:
    """Write ``unit``'s models as the code before coef.npy did (its rows as they are)."""
    store, key, run = unit.parents[3], unit.name.split("-")[0], unit.name.split("-", 1)[1]
    models = kept_models.load_models(store, unit.parents[1].name, key=key, run_id=run)
    cached = lake.read_cached(unit, ["rows"])
    assert models is not None and cached is not None
    frames, meta = cached
    old_frames, old_meta = _old_model_frames(models)
    meta = {k: v for k, v in meta.items() if k not in ("coef_file", "features",
                                                        "embed_features")}
    meta.update(old_meta)
    lake.write_cached(unit, {"rows": frames["rows"], **old_frames}, meta)
    assert (unit / "coef.parquet").is_file() and not (unit / "coef.npy").exists()


def test_a_night_on_models_kept_in_either_format_gives_the_same_rows(
        make_spec: SpecFactory) -> None:
    from flows.pipeline import quality_pipeline

    spec = make_spec(_rows(120))
    _write_spec(spec)
    first = quality_pipeline(str(spec))
    store = spec.parent / "store"
    units = list((store / "cache/tiny-tweets/label_models").iterdir())
    assert len(units) == 1 and (units[0] / "coef.npy").is_file()
    old_store = spec.parent / "store-old-format"
    shutil.copytree(store, old_store, symlinks=True)
    _to_old_format(old_store / units[0].relative_to(store))

    write_csv(spec.parent / "items" / "part2.csv", _rows(6, start=120))
    second = quality_pipeline(str(spec))  # on the models kept as coef.npy
    assert second["label_issues"]["refresh"]["mode"] == "incremental"
    new_format = _night_outputs(store, second["run_id"])

    store.rename(spec.parent / "store-new-format")
    old_store.rename(store)
    third = quality_pipeline(str(spec))  # the same night on the models kept as Parquet
    account = third["label_issues"]["refresh"]
    assert (account["mode"], account["models_from"]) == ("incremental", first["run_id"])
    old_format = _night_outputs(store, third["run_id"])

    assert new_format["table"].height == 126
    assert new_format["table"].get_column("is_label_issue").any()  # flags to compare
    for name, frame in new_format.items():
        assert frame.equals(old_format[name]), name
