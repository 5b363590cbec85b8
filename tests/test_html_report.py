"""The self-contained HTML report: sections present per report key, values shown, every
data string escaped (in the HTML and inside the SVG plots), atomic write."""

from __future__ import annotations

import copy
import html
import re
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from labelgate.report import plots
from labelgate.report.html import fmt_num, fmt_pct, render_html, write_html
from labelgate.stages.agreement.core import compute_agreement

HOSTILE = "<script>alert(1)</script>"
HOSTILE_TABLE = "great crew </table><b>bold</b> & more"
HOSTILE_LABEL = "<b>neg&ative</b>"


def base_report() -> dict[str, Any]:
    """A report.json as the walking skeleton writes it (copied from a real demo run), with
    a few quarantined rows."""
    return {
        "dataset": "tweets-sentiment",
        "run_id": "20261121T235541Z-555f99",
        "spec_path": "/work/main/data/examples/tweets/spec.yaml",
        "spec_hash": "5af660cc4aa72984",
        "started_at": "2026-11-21T23:55:41+00:00",
        "finished_at": "2026-11-21T23:55:43+00:00",
        "rows": {"input": 3000, "valid": 2980, "quarantined": 15, "excluded": 5,
                 "balanced": True},
        "sources": [
            {"source": "items", "batch": "4a6616ea5493a67e9ccc",
             "file": "/work/main/data/examples/tweets/items/tweets-part1.csv", "rows": 2000,
             "rejected": 0, "reused": False},
            {"source": "items", "batch": "914ce62c8d64450bdffb",
             "file": "/work/main/data/examples/tweets/items/tweets-part2.csv", "rows": 1000,
             "rejected": 0, "reused": True},
        ],
        "quarantine": {
            "rows": 15,
            "by_column_check": [
                {"column": "sentiment", "check": "isin", "failures": 9,
                 "example": "value 'postive' not in [negative, neutral, positive]"},
                {"column": "text", "check": "str_length", "failures": 6,
                 "example": "length 0 < 1"},
            ],
            "examples": [
                {"source": "items", "batch": "4a6616ea5493a67e9ccc", "row": 17,
                 "id": "t0017", "column": "sentiment", "check": "isin",
                 "failure_value": HOSTILE, "reason": f"value '{HOSTILE}' not in [...]"},
                {"source": "items", "batch": "4a6616ea5493a67e9ccc", "row": 42,
                 "id": "t0042", "column": "text", "check": "str_length",
                 "failure_value": "", "reason": "length 0 < 1"},
            ],
        },
        "classes": [{"label": "negative", "rows": 1297}, {"label": "neutral", "rows": 1132},
                    {"label": "positive", "rows": 551}],
        "metrics": {"rows_input": 3000.0, "rows_valid": 2980.0, "rows_quarantined": 15.0,
                    "rows_excluded": 5.0, "quarantine_rate": 0.005, "n_classes": 3.0,
                    "min_rows_per_class": 551.0},
        "gate": {
            "passed": False,
            "checks": [
                {"name": "max_quarantine_rate", "metric": "quarantine_rate", "observed": 0.005,
                 "threshold": 0.02, "passed": True,
                 "message": "quarantine_rate 0.005 <= gate.max_quarantine_rate 0.02"},
                {"name": "min_rows_per_class", "metric": "min_rows_per_class",
                 "observed": 551.0, "threshold": 600.0, "passed": False,
                 "message": "min_rows_per_class 551 < gate.min_rows_per_class 600"},
            ],
            "summary": "gate FAILED: 1 of 2 checks",
        },
        "paths": {"report": "/tmp/store/reports/tweets-sentiment/20261121T235541Z-555f99",
                  "warehouse": "/tmp/store/warehouse.duckdb"},
    }


def agreement_dict() -> dict[str, Any]:
    """The real `AgreementReport.to_dict()` of three annotators, one of them bad, plus the
    keys `labelgate.report.agreement_section` adds."""
    labels = ["negative", "neutral", "positive"]
    rows = []
    for i in range(60):
        truth = labels[i % 3]
        wrong = labels[(i + 1) % 3]
        for annotator, is_wrong in (("ann-1", False), ("ann-2", i % 7 == 0),
                                    ("<i>mallory</i>", i % 3 != 0)):
            rows.append({"item": f"t{i:04d}", "annotator": annotator,
                         "label": wrong if is_wrong else truth})
    gold = pl.DataFrame({"item": [f"t{i:04d}" for i in range(0, 60, 3)],
                         "label": [labels[i % 3] for i in range(0, 60, 3)]})
    rep = compute_agreement(pl.DataFrame(rows), gold=gold, n_boot=200, timestamp_column=None)
    return rep.to_dict() | {"consensus_method": "majority", "consensus_applied_to_items": False,
                            "n_items_not_in_items": 0, "n_rows_not_in_items": 0,
                            "n_unparseable_records": 0}


def full_report() -> dict[str, Any]:
    rep = base_report()
    rep["gate"]["checks"].append(
        {"name": "min_krippendorff_alpha", "metric": "agreement.krippendorff_alpha",
         "observed": 0.41, "threshold": 0.6, "passed": False,
         "message": "agreement.krippendorff_alpha 0.41 < gate.min_krippendorff_alpha 0.6"})
    rep["gate"]["summary"] = "gate FAILED: 2 of 3 checks"
    rep["agreement"] = agreement_dict()
    rep["label_issues"] = {
        "method": "cross_validated", "count": 212, "rate": 0.0711, "health_score": 0.83,
        "per_class": [
            {"class": "negative", "rows": 1297, "issues": 70, "issue_rate": 0.054,
             "mean_label_quality": 0.81},
            {"class": "neutral", "rows": 1132, "issues": 110, "issue_rate": 0.097,
             "mean_label_quality": 0.66},
            {"class": HOSTILE_LABEL, "rows": 551, "issues": 32, "issue_rate": 0.058,
             "mean_label_quality": 0.77},
        ],
        "noise_matrix": [
            {"given": g, "suggested": s, "rows": n}
            for (g, s), n in {
                ("negative", "negative"): 1227, ("negative", "neutral"): 60,
                ("negative", HOSTILE_LABEL): 10, ("neutral", "negative"): 70,
                ("neutral", "neutral"): 1022, ("neutral", HOSTILE_LABEL): 40,
                (HOSTILE_LABEL, "negative"): 12, (HOSTILE_LABEL, "neutral"): 20,
                (HOSTILE_LABEL, HOSTILE_LABEL): 519,
            }.items()
        ],
        "top": [
            {"id": "t0017", "text": HOSTILE, "given": "positive", "suggested": "negative",
             "quality": 0.012},
            {"id": "t0099", "text": HOSTILE_TABLE, "given": "neutral",
             "suggested": "positive", "quality": 0.034},
            {"id": "t0123", "text": "@united " + "delayed again " * 40, "given": "positive",
             "suggested": "negative", "quality": 0.051},
        ],
    }
    rep["duplicates"] = {
        "count": 41, "clusters": 17, "exact_rows": 30, "near_rows": 11, "threshold": 0.9,
        "largest": [{"cluster_id": "t0005", "size": 6, "example": "RT @united thanks!"},
                    {"cluster_id": "t0300", "size": 3, "example": HOSTILE_TABLE}],
        "conflicting": [{"cluster_id": "t0300", "size": 3, "labels": ["neutral", "positive"],
                         "example": HOSTILE_TABLE}],
    }
    rep["leakage"] = {"exact_pairs": 0, "near_pairs": 2, "group_overlap": 0}
    rep["splits"] = {
        "policy": "drop_from_test", "seed": 13,
        "fractions": {"train": 0.8, "validation": 0.1, "test": 0.1},
        "counts": [{"split": s, "label": lab, "rows": int(n * f)}
                   for s, f in (("train", 0.8), ("validation", 0.1), ("test", 0.1))
                   for lab, n in (("negative", 1297), ("neutral", 1132), ("positive", 551))],
    }
    rep["publish"] = {"version": 7, "note": HOSTILE}
    return rep


def history_frame(n_runs: int = 8) -> pl.DataFrame:
    rows = []
    for i in range(n_runs):
        run = f"2026112{i}T020000Z-{i:06x}"
        at = datetime(2026, 11, 20 + i, 2, tzinfo=UTC)
        for metric, value in (("quarantine_rate", 0.004 + 0.001 * i),
                              ("rows_valid", 2900.0 + 10 * i),
                              ("agreement.krippendorff_alpha", 0.7 - 0.04 * i),
                              ("label_issue_rate", 0.05 + 0.003 * i),
                              ("gate_passed", 1.0 if i < 6 else 0.0)):
            rows.append({"run_id": run, "metric": metric, "value": value, "recorded_at": at})
    return pl.DataFrame(rows)


def label_issue_frame() -> pl.DataFrame:
    """Mostly confident rows and a tail of likely mislabeled ones."""
    quality = [round(0.98 * (i / 199) ** 0.3, 4) for i in range(200)]
    return pl.DataFrame({"id": [f"t{i:04d}" for i in range(200)], "label_quality": quality,
                         "is_label_issue": [q < 0.4 for q in quality]})


class _Dom(HTMLParser):
    """Tags and visible text of a page, with the text per element id."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.ids: list[str] = []
        self.text: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.ids += [v for k, v in attrs if k == "id" and v]
        if tag in ("style", "script"):
            self._skip += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "script"):
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.text.append(data)


def parse(page: str) -> _Dom:
    dom = _Dom()
    dom.feed(page)
    dom.close()
    return dom


@pytest.fixture(scope="module")
def full() -> dict[str, Any]:
    return full_report()


@pytest.fixture(scope="module")
def full_page(full: dict[str, Any]) -> str:
    return render_html(full, history=history_frame(), label_issues=label_issue_frame())


# ------------------------------------------------------------------------ formatting


@pytest.mark.parametrize(("value", "expected"), [
    (None, "—"), (True, "yes"), (3000, "3,000"), (3000.0, "3,000"), (0.0, "0"),
    (0.083333, "0.08333"), (float("nan"), "—"), ("abc", "abc"),
])
def test_fmt_num(value: object, expected: str) -> None:
    assert fmt_num(value) == expected


def test_fmt_pct() -> None:
    assert fmt_pct(0.0711) == "7.11%"
    assert fmt_pct(None) == "—"
    assert fmt_pct(float("inf")) == "—"


# ------------------------------------------------------------------------ skeleton report


def test_minimal_report_has_verdict_rows_and_no_optional_sections() -> None:
    rep = base_report()
    page = render_html(rep)
    dom = parse(page)
    text = " ".join(dom.text)
    assert page.startswith("<!DOCTYPE html>")
    assert "GATE FAILED" in text
    # the failed check is listed first with observed vs threshold
    failed = page[page.index('id="failed-checks"'):]
    assert "min_rows_per_class" in failed[:600] and "observed <strong>551</strong>" in failed
    assert "required ≥ 600" in failed
    assert "input 3,000 = valid 2,980 + quarantined 15 + excluded 5 — adds up" in text
    for section in ("gate", "rows", "contract", "classes", "metrics", "paths"):
        assert section in dom.ids
    for section in ("agreement", "label-issues", "duplicates", "splits", "trends"):
        assert section not in dom.ids
    assert "script" not in dom.tags
    assert dom.tags.count("svg") == 2  # quarantine bars and class bars


def test_quarantine_examples_name_the_file_not_the_batch_hash(full_page: str) -> None:
    contract = full_page[full_page.index('id="contract"'):]
    contract = contract[:contract.index("</section>")]
    assert "tweets-part1.csv" in contract
    assert 'title="batch 4a6616ea5493a67e9ccc"' in contract


def test_unknown_section_shows_settings_as_facts_not_json() -> None:
    """A stage's settings (scalars and short lists, e.g. SFT rules) read as facts."""
    rep = base_report()
    rep["sft"] = {"quarantined_rows": 12,
                  "rules": {"allowed_roles": ["user", "assistant"], "max_prompt_chars": 4000,
                            "min_prompt_chars": None, "reject_echo": True}}
    page = render_html(rep)
    text = " ".join(parse(page).text)
    assert "allowed roles user, assistant" in text
    assert "reject echo yes" in text and "min prompt chars —" in text
    assert "<pre" not in page and "null" not in text


def test_sections_appear_in_the_documented_order(full_page: str) -> None:
    ids = [i for i in parse(full_page).ids if i in {
        "gate", "rows", "contract", "classes", "label-issues", "agreement", "duplicates",
        "splits", "trends", "metrics", "x-publish", "paths"}]
    # the fixed part, then the stage sections in report.json's order (the order of the
    # stage declaration; a key without a view of its own in its place), then trends,
    # metrics and paths
    assert ids == ["gate", "rows", "contract", "classes", "agreement", "label-issues",
                   "duplicates", "splits", "x-publish", "trends", "metrics", "paths"]
    assert full_page.index('id="failed-checks"') < full_page.index('id="gate"')


def test_passed_gate_and_unbalanced_rows() -> None:
    rep = base_report()
    rep["gate"] = {"passed": True, "checks": [], "summary": "gate passed (0 checks)"}
    rep["rows"] = {"input": 10, "valid": 8, "quarantined": 1, "excluded": 0, "balanced": False}
    rep["quarantine"] = {"rows": 0, "by_column_check": [], "examples": []}
    text = " ".join(parse(render_html(rep)).text)
    assert "GATE PASSED" in text
    assert "DOES NOT ADD UP (sum is 9)" in text
    assert "No row failed the contract." in text
    assert 'id="failed-checks"' not in render_html(rep)


def test_demo_report_json_renders(tmp_path: Path) -> None:
    """The exact report.json of a demo run (no quarantine, gate passed)."""
    rep = base_report()
    rep["rows"] = {"input": 3000, "valid": 3000, "quarantined": 0, "excluded": 0,
                   "balanced": True}
    rep["quarantine"] = {"rows": 0, "by_column_check": [], "examples": []}
    rep["gate"]["passed"] = True
    rep["gate"]["checks"][1].update(observed=571.0, threshold=50.0, passed=True)
    out = write_html(rep, path=tmp_path)
    assert out == tmp_path / "report.html"
    text = " ".join(parse(out.read_text(encoding="utf-8")).text)
    assert "GATE PASSED" in text and "tweets-part1.csv" in text


# ------------------------------------------------------------------------ escaping


def test_hostile_text_is_escaped_everywhere(full_page: str) -> None:
    assert HOSTILE not in full_page
    assert "</table><b>" not in full_page
    assert "<i>mallory</i>" not in full_page
    assert "<b>neg&ative</b>" not in full_page
    assert html.escape(HOSTILE, quote=False) in full_page
    dom = parse(full_page)
    assert "script" not in dom.tags
    assert "b" not in dom.tags and "i" not in dom.tags
    text = "".join(dom.text)
    assert HOSTILE in text  # shown as text, after unescaping by the parser
    assert "great crew </table><b>bold</b> & more" in text
    assert "<i>mallory</i>" in text
    # tables stay balanced: the injected </table> did not close one
    assert full_page.count("<table>") == full_page.count("</table>")


def test_svg_labels_are_escaped() -> None:
    svg = plots.bar_chart(["<script>a&b</script>", "$5 off $10 {x}_"], [1.0, 2.0], title="t<&")
    assert "<script>" not in svg
    assert "&lt;script&gt;a&amp;b&lt;/script&gt;" in svg
    assert "$5 off $10 {x}_" in svg  # mathtext off: drawn as written
    assert "t&lt;&amp;" in svg
    assert svg.startswith('<svg class="plot"') and "<?xml" not in svg and "<metadata" not in svg


def test_hostile_strings_in_noise_matrix_and_annotators_are_escaped_in_svg(
    full_page: str,
) -> None:
    svgs = re.findall(r"<svg.*?</svg>", full_page, flags=re.DOTALL)
    joined = "".join(svgs)
    assert "&lt;b&gt;neg&amp;ative&lt;/b&gt;" in joined
    assert "<b>" not in joined


def test_csp_forbids_scripts(full_page: str) -> None:
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', full_page)
    assert csp is not None and "default-src 'none'" in csp.group(1)
    assert "http://" not in full_page.replace("http://www.w3.org", "")
    assert "https://" not in full_page


# ------------------------------------------------------------------------ sections


def test_label_issue_section(full_page: str) -> None:
    sec = _section(full_page, "label-issues")
    text = " ".join(parse(sec).text)
    assert "cross_validated" in text and "7.11%" in text and "0.83" in text
    assert sec.count("<svg") == 4  # noise matrix, quality bars, issue-rate bars, histogram
    assert "Label quality (200 rows)" in sec
    assert "Top 3 suspicious rows" in text
    # the long text is cut in the cell and kept whole in the tooltip
    assert "delayed again " * 5 in text and "…" in text


def test_agreement_section_shows_coefficients_ci_annotators(full: dict[str, Any],
                                                            full_page: str) -> None:
    ag = full["agreement"]
    sec = _section(full_page, "agreement")
    text = " ".join(parse(sec).text)
    alpha = ag["metrics"]["krippendorff_alpha"]
    assert fmt_num(alpha) in text
    assert fmt_num(ag["metrics"]["krippendorff_alpha_ci_low"]) in text
    assert "Annotators (3, 1 flagged" in text
    assert "consensus_agreement < 0.5" in text
    assert sec.count("<svg") == 3  # coefficients, per-class bars, confusion heatmap
    # the flagged annotator's row is first and marked
    first_row = re.search(r"<caption>Annotators.*?<tbody>\s*<tr([^>]*)>(.*?)</tr>", sec,
                          flags=re.DOTALL)
    assert first_row is not None and 'class="bad"' in first_row.group(1)
    assert "&lt;i&gt;mallory&lt;/i&gt;" in first_row.group(2)


def test_duplicates_leakage_and_splits(full_page: str) -> None:
    dup = " ".join(parse(_section(full_page, "duplicates")).text)
    assert "near pairs" in dup and "neutral, positive" in dup and "Largest clusters" in dup
    assert 'badge bad' in _section(full_page, "duplicates")
    splits = _section(full_page, "splits")
    text = " ".join(parse(splits).text)
    assert "drop_from_test" in text and "train 0.8" in text
    # train column: 1037 + 905 + 440 = 2382
    assert "2,382" in text
    assert splits.count("<svg") == 2  # rows per split, class mix per split


def test_trends_use_last_n_runs_and_gate_verdicts(full_page: str) -> None:
    sec = _section(full_page, "trends")
    text = " ".join(parse(sec).text)
    # 8 history runs + the current run appended from report metrics
    assert "Last 9 run(s)" in text
    # quarantine rate, label issue rate, alpha, valid rows; not the health score, which only
    # the current run has
    assert sec.count("<svg") == 4
    assert "label health score" not in sec
    assert text.count("FAIL") == 3  # runs 6 and 7 of history and the current run
    short = render_html(base_report(), history=history_frame(), trend_runs=3)
    assert "Last 3 run(s)" in " ".join(parse(_section(short, "trends")).text)


def test_trends_without_history_rows_note_two_runs() -> None:
    empty = pl.DataFrame(schema={"run_id": pl.String, "metric": pl.String,
                                 "value": pl.Float64, "recorded_at": pl.Datetime})
    sec = _section(render_html(base_report(), history=empty), "trends")
    text = " ".join(parse(sec).text)
    assert "Last 1 run(s)" in text and "Trends need at least two runs." in text
    assert "<svg" not in sec


def test_unknown_section_is_shown_escaped(full_page: str) -> None:
    sec = _section(full_page, "x-publish")
    text = html.unescape(sec)
    assert "version" in text and ">7<" in sec  # scalars become facts
    assert "&lt;script&gt;" in sec and "<script>" not in sec


def test_unknown_nested_section_becomes_tables() -> None:
    rep = base_report()
    rep["review"] = {"n_changed": 2, "reviewer_gold_accuracy": [
        {"reviewer": HOSTILE, "accuracy": 0.75}], "deep": {"a": {"b": {"c": [1]}}},
        "splits": {"train": {"rows": 5, "classes": {"x": 5}}}}
    sec = _section(render_html(rep), "x-review")
    assert "<table" in sec and "0.75" in sec
    assert "&lt;script&gt;" in sec and "<script>" not in sec
    assert '"c": [' in html.unescape(sec)  # deeper than two levels: JSON
    assert "classes.x" in sec  # a dict of flat records: a table


def test_missing_optional_keys_do_not_break_rendering() -> None:
    rep = base_report()
    rep["label_issues"] = {"method": "predictions", "count": 0, "rate": 0.0}
    rep["agreement"] = {"metrics": {}, "notes": []}
    rep["duplicates"] = {"count": 0, "clusters": 0, "largest": [["t1", 2]]}
    rep["splits"] = {"counts": []}
    del rep["paths"]
    page = render_html(rep, label_issues=pl.DataFrame({"label_quality": [0.5, None]}))
    dom = parse(page)
    assert {"label-issues", "agreement", "duplicates", "splits"} <= set(dom.ids)
    assert "paths" not in dom.ids


def test_render_is_deterministic(full: dict[str, Any], full_page: str) -> None:
    again = render_html(copy.deepcopy(full), history=history_frame(),
                        label_issues=label_issue_frame())
    assert again == full_page


def test_plot_ids_do_not_collide_across_plots(full_page: str) -> None:
    ids = re.findall(r'<clipPath id="([^"]+)"', full_page)
    assert ids and len(ids) == len(set(ids))


def test_write_html_is_atomic_and_leaves_no_temp(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "r" / "report.html"
    write_html(base_report(), path=target)
    before = target.read_text(encoding="utf-8")
    assert "GATE FAILED" in before

    def boom(*_: Any, **__: Any) -> str:
        raise RuntimeError("render failed")

    monkeypatch.setattr("labelgate.report.html.render_html", boom)
    with pytest.raises(RuntimeError):
        write_html(base_report(), path=target)
    assert target.read_text(encoding="utf-8") == before

    monkeypatch.undo()

    def replace_fails(*_: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("labelgate.report.html.os.replace", replace_fails)
    with pytest.raises(OSError, match="disk full"):
        write_html(base_report(), path=target)
    assert target.read_text(encoding="utf-8") == before
    assert sorted(p.name for p in target.parent.iterdir()) == ["report.html"]


def test_page_size_stays_small(full_page: str) -> None:
    assert len(full_page.encode()) < 400_000


def _section(page: str, section_id: str) -> str:
    start = page.index(f'<section id="{section_id}">')
    return page[start: page.index("</section>", start)]


def test_shapes_the_stage_modules_return() -> None:
    """The result shapes of labelgate.stages.label_issues.detect / splits / dedup as they are
    today: cleanlab's joint noise matrix in long form, splits._summary without per-class
    counts, leakage()."""
    rep = base_report()
    rep["label_issues"] = {
        "method": "predictions", "count": 2, "rate": 0.01, "health_score": 0.9,
        "noise_matrix": [{"given_label": g, "true_label": t, "joint": j}
                         for g, t, j in (("a", "a", 0.45), ("a", "b", 0.05),
                                         ("b", "a", 0.02), ("b", "b", 0.48))],
        "top": [{"id": "x1", "given_label": "a", "suggested_label": "b",
                 "label_quality": 0.031, "text": "hello"}],
    }
    rep["leakage"] = {"exact_pairs": 0, "near_pairs": 0, "clusters_across_splits": 0,
                      "groups_across_splits": 1, "group_rows_across_splits": 4, "total": 1}
    rep["splits"] = {"rows": 100, "rows_per_split": {"train": 80, "validation": 10, "test": 10},
                     "share_per_split": {"train": 0.8, "validation": 0.1, "test": 0.1},
                     "fractions": {"train": 0.8, "validation": 0.1, "test": 0.1},
                     "new_rows": 100, "moved_rows": 0, "removed_rows": 0, "units": 97,
                     "max_stratum_share_deviation": 0.012}
    rep["agreement"] = agreement_dict() | {"settings": {"bootstrap": {"confidence": 0.9}}}
    page = render_html(rep)
    li = _section(page, "label-issues")
    assert "Noise matrix (estimated joint share)" in li and "true label (estimated)" in li
    assert "0.031" in " ".join(parse(li).text)
    dup = _section(page, "duplicates")
    dup_text = " ".join(parse(dup).text)
    assert "groups across splits" in dup_text and "badge bad" in dup
    splits = " ".join(parse(_section(page, "splits")).text)
    assert "rows per split train 80, validation 10, test 10" in splits
    assert "max stratum share deviation 0.012" in splits
    assert _section(page, "splits").count("<svg") == 1
    assert "90% bootstrap interval" in _section(page, "agreement")
    kpis = page[page.index('class="kpis"'):page.index("</nav>")]
    assert "split leakage" in kpis and 'kpi bad' in kpis
