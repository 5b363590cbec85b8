"""report.md and report.html from one view model (labelgate.report.view), and report.json's
published schema (labelgate.report.model)."""

from __future__ import annotations

import copy
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from labelgate.gate import CheckResult, GateVerdict
from labelgate.report import (
    RowCounts,
    build_report,
    render_markdown,
    section_lines,
    write_report,
)
from labelgate.report import view as report_view
from labelgate.report.html import render_html
from labelgate.report.model import Report, report_json_schema
from labelgate.report.view import Plot, build_sections
from labelgate.store.lake import Batch
from labelgate.store.runs import RunContext
from tests.conftest import SpecFactory, item_rows
from tests.test_html_report import HOSTILE, HOSTILE_LABEL, full_report, parse

# ------------------------------------------------------------------------ helpers


def _run(tmp_path: Path) -> RunContext:
    return RunContext(run_id="20261201T000000Z-abc123", dataset="tiny", spec_path="spec.yaml",
                      spec_hash="0123456789abcdef", store=str(tmp_path / "store"),
                      started_at=datetime(2026, 12, 1, tzinfo=UTC))


def built_report(tmp_path: Path) -> dict[str, Any]:
    """A report.json as `build_report` writes it: one CSV source with a rejected record,
    one quarantined cell whose value is hostile HTML, and a failed gate check."""
    batch = Batch(dataset="tiny", source="items", batch="b" * 20, file="/in/items.csv",
                  format="csv", rows=9, rejected=1, path="/lake/b", ingested_at="now",
                  lines=11, record_lines=10, blank_lines=0, rejected_lines=1, rejected_at=(4,))
    quarantine = pl.DataFrame({
        "source": ["items"], "batch": ["b" * 20], "row": [3], "id": ["t3"],
        "column": ["label"], "check": ["isin"], "failure_value": [HOSTILE],
        "reason": [f"value '{HOSTILE}' not in [a, b]"],
    })
    verdict = GateVerdict(passed=False, checks=[
        CheckResult("min_rows_per_class", "min_rows_per_class", 4.0, 5.0, False,
                    "min_rows_per_class 4 < gate.min_rows_per_class 5")])
    return build_report(
        _run(tmp_path), batches=[batch], rows=RowCounts(9, 8, 1), quarantine=quarantine,
        classes=pl.DataFrame({"label": ["a", "b|c"], "rows": [4, 4]}),
        metrics={"quarantine_rate": 1 / 9, "rows_valid": 8.0}, verdict=verdict,
        paths={"report": str(tmp_path / "store/reports/tiny/x"),
               "warehouse": str(tmp_path / "store/warehouse.duckdb")},
    )


def _table_rows(md: str) -> list[list[str]]:
    """Every Markdown table line, split into cells on pipes that are not escaped."""
    return [re.split(r"(?<!\\)\|", line)[1:-1] for line in md.splitlines()
            if line.startswith("|")]


# ------------------------------------------------------------------------ one view model


def test_markdown_and_html_show_the_same_sections() -> None:
    rep = full_report()
    sections = build_sections(rep)
    md = render_markdown(rep)
    page = render_html(rep)
    titles = [s.title for s in sections]
    assert re.findall(r"^## (.+)$", md, flags=re.MULTILINE) == titles
    assert re.findall(r'<section id="([^"]+)">', page) == [s.id for s in sections]
    for section in sections:
        for part in section.parts:
            if part.kind == "text":  # every sentence is in both, written once
                assert report_view.md_cell(part.text, max_len=None) in md
                assert part.text in " ".join(parse(page).text)


def test_markdown_leaves_plots_out_and_draws_none(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_plots(self: Plot) -> str:
        raise AssertionError("Markdown drew a plot")

    monkeypatch.setattr(Plot, "svg", no_plots)
    md = render_markdown(full_report())
    assert "<svg" not in md and "rowbar" not in md


def test_markdown_escapes_every_value_and_keeps_tables_rectangular() -> None:
    rep = full_report()
    rep["classes"].append({"label": "a|b\nc", "rows": 1})
    md = render_markdown(rep)
    assert "<script>" not in md and "<b>" not in md and "</table>" not in md
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in md
    assert "a\\|b c" in md  # pipe escaped, newline gone: still one cell
    assert "&lt;b&gt;neg&amp;ative&lt;/b&gt;" in md and HOSTILE_LABEL not in md
    tables = md.split("\n\n")
    for block in tables:
        rows = _table_rows(block)
        if rows:
            assert len({len(r) for r in rows}) == 1, block


def test_folded_tables_show_their_first_rows_in_markdown() -> None:
    rep = full_report()
    rep["metrics"] = {f"m{i:02d}": float(i) for i in range(30)}
    md = render_markdown(rep)
    metrics = md.split("## All metrics", 1)[1].split("## ", 1)[0]
    assert "| m00 | 0 |" in metrics and "| m19 | 19 |" in metrics
    assert "m20" not in metrics and "… 10 more rows (report.html" in metrics
    assert '<details><summary>table (30 rows)</summary>' in render_html(rep)


def test_paths_and_ids_are_not_cut_but_long_text_is() -> None:
    rep = full_report()
    long_path = "/very/long/" + "folder/" * 20 + "report.html"
    rep["paths"]["report_html"] = long_path
    md = render_markdown(rep)
    assert long_path in md
    assert "delayed again " * 3 in md and "delayed again " * 10 not in md


def test_markdown_reads_in_order_verdict_first() -> None:
    md = render_markdown(full_report())
    assert md.startswith("# labelgate: tweets-sentiment — gate FAILED\n\nRun 20261121T235541Z")
    assert "\n- min_rows_per_class: observed 551, required ≥ 600" in md
    assert "valid rows **2,980**" in md
    assert "\n\n\n" not in md and md.endswith("|\n")
    order = [md.index(f"## {t}") for t in ("Gate checks", "Rows", "Contract failures",
                                             "Classes", "Agreement", "Label issues",
                                             "Duplicates and leakage", "Splits", "publish",
                                             "All metrics", "Where things are")]
    assert order == sorted(order)


def test_render_does_not_change_the_report() -> None:
    rep = full_report()
    before = copy.deepcopy(rep)
    render_markdown(rep)
    render_html(rep)
    assert rep == before


# ------------------------------------------------------------------------ stage sentences


def test_stage_sentences_are_in_both_outputs() -> None:
    rep = full_report()
    rep["review"] = {"n_corrections": 3, "n_ids_corrected": 2, "n_changed": 1,
                     "n_confirmed": 1, "n_not_in_valid": 1, "n_stale": 0,
                     "reviewer_gold_accuracy": [{"reviewer": "ann", "n_gold": 4,
                                                 "n_correct": 3, "accuracy": 0.75}]}
    rep["sft"] = {"quarantined_rows": 3, "by_check": [
        {"check": "empty_response", "rows": 1, "example": "empty"}],
        "conflicts": {"groups": 1, "rows": 2, "quarantined": False, "examples": []},
        "rules": {"reject_echo": True}}
    rep["published"] = {"version": 2, "path": "/store/published/tiny/v2",
                        "current": "/store/published/tiny/current", "rows": 30,
                        "splits": {"train": {"rows": 24}, "test": {"rows": 6}}}
    rep["label_issues"] |= {"reused_from": "20261120T000000Z-000001", "passes": 2,
                            "left_out": 4, "filter_by": "both",
                            "joint_calibration": "per_class"}
    rep["agreement"] |= {"consensus_applied_to_items": True, "training_label": {
        "applied": True, "changed": 3, "confirmed": 27, "without_consensus": 30}}
    md = render_markdown(rep)
    text = " ".join(parse(render_html(rep)).text)
    for sentence in (
        "2 rows carry a reviewer's label (1 changed, 1 confirmed)",
        "3 rows quarantined by the SFT checks",
        "reused from run 20261120T000000Z-000001",
        "without 4 rows the first pass flagged",
        # the settings in plain words (were "flags: filter both, counted by the per_class
        # joint"), folded away
        "how flags are chosen", "how many rows are flagged",
        "rows that are among the least likely of their given class",
        "(cleanlab filter_by both)",
        "as many as estimated from cleanlab's confident counts, corrected per true class "
        "(per_class)",
        # what became of the flagged rows, first (full_report: drop_from_test, published)
        "212 rows flagged as probable label errors: 0 dropped from test, 212 published with "
        "a flag column",
        "applied to the items: 3 labels changed, 27 confirmed, 30 items kept",
        "version v2 (30 rows): /store/published/tiny/v2",
    ):
        assert sentence in md and sentence in text, sentence
    for title in ("## Review", "## Instruction data (SFT checks)", "## Published"):
        assert title in md
    assert "not applied" not in md


def test_one_section_alone_as_markdown_lines() -> None:
    lines = section_lines("agreement", full_report()["agreement"])
    assert lines[0] == "## Agreement"
    assert "95% bootstrap interval" in "\n".join(lines)
    confused = "\n".join(lines).split("Most confused category pairs", 1)[1].split("###")[0]
    rows = [r for r in _table_rows(confused) if "---" not in r[0]][1:]
    assert rows and all(a.strip() < b.strip() for a, b, _ in rows)


def test_csv_line_sentence_in_both(tmp_path: Path) -> None:
    rep = built_report(tmp_path)
    sentence = ("items.csv: 11 lines = 1 header + 10 in 10 records + 0 blank; rejected "
                "records cover 1 line(s): 4")
    assert sentence in render_markdown(rep)
    assert sentence in " ".join(parse(render_html(rep)).text)
    assert "input 9 = valid 8 + quarantined 1 + excluded 0 — adds up" in render_markdown(rep)


# ------------------------------------------------------------------------ report.json schema


def test_report_json_schema_is_a_valid_json_schema() -> None:
    schema = report_json_schema()
    assert schema["$schema"].endswith("/draft/2020-12/schema")
    assert schema["title"] == "labelgate report" and schema["type"] == "object"
    assert {"dataset", "run_id", "rows", "sources", "quarantine", "classes", "metrics",
            "gate", "paths"} <= set(schema["required"])
    assert schema.get("additionalProperties", True) is not False  # stages may add keys
    json.dumps(schema)  # publishable as is
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.Draft202012Validator.check_schema(schema)


def test_written_report_json_validates(tmp_path: Path) -> None:
    rep = built_report(tmp_path)
    out = write_report(rep, run=_run(tmp_path))
    on_disk = json.loads((out / "report.json").read_text())
    model = Report.model_validate(on_disk)
    assert model.rows.balanced and model.sources[0].rejected_at == [4]
    assert model.quarantine.examples[0].failure_value == HOSTILE
    assert (out / "report.md").read_text() == render_markdown(on_disk)
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(on_disk, report_json_schema(),
                        cls=jsonschema.Draft202012Validator)


def test_schema_rejects_a_broken_report(tmp_path: Path) -> None:
    from pydantic import ValidationError

    rep = built_report(tmp_path)
    del rep["gate"]
    with pytest.raises(ValidationError, match="gate"):
        Report.model_validate(rep)
    rep = built_report(tmp_path) | {"rows": {"input": "many"}}
    with pytest.raises(ValidationError):
        Report.model_validate(rep)


def test_html_fixture_reports_validate_with_their_extra_sections() -> None:
    full = full_report()
    model = Report.model_validate(full)
    assert model.leakage is not None and model.leakage.near_pairs == 2
    assert model.model_extra == {"publish": full["publish"]}


@pytest.mark.flow
@pytest.mark.usefixtures("prefect_server")
def test_flow_report_json_matches_the_schema(make_spec: SpecFactory) -> None:
    from flows.pipeline import quality_pipeline

    rows = item_rows(40)
    rows[5]["sentiment"] = "<script>x</script>"
    spec = make_spec(rows, dedup={}, gate={"max_quarantine_rate": 0.1})
    quality_pipeline(str(spec))
    folder = spec.parent / "store/reports/tiny-tweets/latest"
    on_disk = json.loads((folder / "report.json").read_text())
    Report.model_validate(on_disk)
    md, page = (folder / "report.md").read_text(), (folder / "report.html").read_text()
    assert "<script>" not in md and "## Duplicates and leakage" in md
    titles = re.findall(r"^## (.+)$", md, flags=re.MULTILINE)
    html_titles = re.findall(r'<section id="[^"]+">\s*<h2>([^<]+?)\s*(?:<|$)', page)
    assert "Trends" in html_titles  # the HTML alone gets the metrics history
    assert titles == [t for t in html_titles if t != "Trends"]
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(on_disk, report_json_schema(), cls=jsonschema.Draft202012Validator)
