"""`labelgate review import`: rows with an empty label are counted and named, not dropped
silently; a file with no label at all is an input error (exit 2) that writes no batch."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from labelgate.errors import InputError
from labelgate.stages import review
from tests.test_review import _cli, _store

runner = CliRunner()


def _corrections_dir(tmp_path: Path) -> Path:
    return tmp_path / "store" / "lake" / "tiny" / review.CORRECTIONS_SOURCE


def _batches(tmp_path: Path) -> list[Path]:
    return sorted(_corrections_dir(tmp_path).glob("batch=*"))


def test_read_corrections_file_names_unlabelled_rows(tmp_path: Path) -> None:
    p = tmp_path / "c.csv"
    p.write_text("id,label,reviewer\na,positive,r1\nb,,r1\nc,  ,\n,,\nd,neutral,r2\n")
    read = review.read_corrections_file(p)
    assert read.corrections.get_column("id").to_list() == ["a", "d"]
    assert read.unlabelled.rows() == [("b", 2), ("c", 3), (None, 4)]
    assert read.skipped_summary() == "3 row(s) with no label skipped (ids b, c, row 4)"
    # read_corrections is unchanged: the answered rows only
    assert review.read_corrections(p).equals(read.corrections)


def test_read_corrections_file_jsonl_and_many_skipped(tmp_path: Path) -> None:
    p = tmp_path / "c.jsonl"
    lines = [{"id": f"x{i}", "label": None, "reviewer": None} for i in range(12)]
    lines.append({"id": "a", "label": "positive", "reviewer": "r"})
    p.write_text("\n".join(json.dumps(r) for r in lines) + "\n")
    read = review.read_corrections_file(p)
    assert read.corrections.height == 1 and read.unlabelled.height == 12
    summary = read.skipped_summary()
    assert summary is not None
    assert summary.startswith("12 row(s) with no label skipped (ids x0, x1,")
    assert summary.endswith("x9, ... 2 more)")


def test_nothing_skipped_says_nothing(tmp_path: Path) -> None:
    p = tmp_path / "c.csv"
    p.write_text("id,label,reviewer\na,positive,r1\n")
    assert review.read_corrections_file(p).skipped_summary() is None


def test_empty_id_on_a_labelled_row_still_fails_the_file(tmp_path: Path) -> None:
    p = tmp_path / "c.csv"
    p.write_text("id,label,reviewer\n,positive,r1\nb,,r1\n")
    with pytest.raises(InputError, match=r"c\.csv: row 1: empty 'id'"):
        review.read_corrections_file(p)


def test_cli_import_reports_rows_without_label(tmp_path: Path) -> None:
    spec = _store(tmp_path)
    sheet = tmp_path / "fix.csv"
    sheet.write_text("id,label,reviewer\nb,positive,r1\nc,,r1\nd,negative,r1\n")
    res = runner.invoke(_cli(), ["review", "import", str(spec), str(sheet)])
    assert res.exit_code == 0, res.output
    assert "2 correction(s) read; accepted 2" in res.output
    assert "the next run applies them" in " ".join(res.output.split())
    assert "1 row(s) with no label skipped (ids c)" in res.output
    assert len(_batches(tmp_path)) == 1
    overlay = review.load_corrections(tmp_path / "store", "tiny")
    assert sorted(overlay["id"].to_list()) == ["b", "d"]


def test_cli_import_of_the_unfilled_export_is_exit_2_and_writes_nothing(
    tmp_path: Path,
) -> None:
    spec = _store(tmp_path)
    sheet = tmp_path / "review.csv"
    res = runner.invoke(_cli(), ["review", "export", str(spec), "--limit", "3",
                                 "--format", "csv", "--out", str(sheet)])
    assert res.exit_code == 0, res.output
    exported = pl.read_csv(sheet, infer_schema_length=0)
    assert exported.height == 3 and exported.get_column("label").null_count() == 3
    res = runner.invoke(_cli(), ["review", "import", str(spec), str(sheet)])
    assert res.exit_code == 2, res.output
    ids = ", ".join(exported.get_column("id").to_list())
    assert "nothing to import: no row has a label" in res.output
    assert f"3 row(s) with no label skipped (ids {ids})" in res.output
    assert "correction(s) read" not in res.output
    assert _batches(tmp_path) == []
    assert review.load_corrections(tmp_path / "store", "tiny").height == 0


def test_cli_import_header_only_and_empty_label_studio_export(tmp_path: Path) -> None:
    spec = _store(tmp_path)
    header = tmp_path / "h.csv"
    header.write_text("id,label,reviewer\n")
    res = runner.invoke(_cli(), ["review", "import", str(spec), str(header)])
    assert res.exit_code == 2 and "the file has no rows" in res.output
    ls = tmp_path / "export.json"
    ls.write_text(json.dumps([{"id": 1, "data": {"text": "t", "item_id": "a"},
                               "annotations": []}]))
    res = runner.invoke(_cli(), ["review", "import", str(spec), str(ls)])
    assert res.exit_code == 2 and "no completed annotation with a choice" in res.output
    assert _batches(tmp_path) == []


def test_cli_error_text_is_not_read_as_markup(tmp_path: Path) -> None:
    spec = _store(tmp_path)
    sheet = tmp_path / "fix.csv"
    sheet.write_text("id,label,reviewer\n[b],,r1\n")
    res = runner.invoke(_cli(), ["review", "import", str(spec), str(sheet)])
    assert res.exit_code == 2 and "(ids [b])" in res.output
