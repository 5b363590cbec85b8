"""STORE/reports/index.html (labelgate.report.index): every dataset of a store with its
latest verdict, key figures, a trend line and relative links to its runs' reports."""

from __future__ import annotations

import copy
import html
import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from labelgate.report import index as report_index
from labelgate.report import write_report
from labelgate.report.index import write_index
from labelgate.store import warehouse
from labelgate.store.runs import RunContext
from tests.test_html_report import base_report, parse

HOSTILE_NAME = '<img src=x onerror="alert(1)">&co'
T0 = datetime(2026, 12, 1, tzinfo=UTC)


def _run(store: Path, dataset: str, n: int, *, passed: bool, metrics: dict[str, float],
         report: bool = True) -> str:
    """One finished run of `dataset` in `store`: its warehouse record and metrics, and (with
    `report`) its report folder written by `write_report`."""
    run_id = f"20261201T0000{n:02d}Z-{n:06d}"
    started = T0 + timedelta(minutes=n)
    run = RunContext(run_id=run_id, dataset=dataset, spec_path="spec.yaml",
                     spec_hash="0123456789abcdef", store=str(store), started_at=started)
    if report:
        rep = copy.deepcopy(base_report())
        rep.update(dataset=dataset, run_id=run_id)
        rep["gate"]["passed"] = passed
        write_report(rep, run=run)
    with warehouse.connect(store / warehouse.WAREHOUSE_FILE) as con:
        warehouse.start_run(con, run_id=run_id, dataset=dataset, spec_hash="h",
                            spec_path="spec.yaml", started_at=started)
        warehouse.record_metrics(con, {**metrics, "gate_passed": float(passed)},
                                 run_id=run_id, dataset=dataset)
        warehouse.finish_run(con, run_id=run_id, status="passed" if passed else "failed",
                             rows_input=100, rows_valid=int(metrics.get("rows_valid", 90)),
                             rows_quarantined=10, gate_passed=passed,
                             report_dir=str(run.report_dir), message="")
    return run_id


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """Two datasets: tweets (three runs, the newest failed, label issues and alpha) and
    a dataset with a hostile name (one run that passed)."""
    root = tmp_path / "store"
    for n, (passed, rate) in enumerate(((True, 0.0021), (True, 0.0043), (False, 0.0116))):
        _run(root, "tweets", n, passed=passed,
             metrics={"rows_valid": 2900.0 + n, "quarantine_rate": 0.02,
                      "label_issues.rate": rate, "label_issues.health_score": 0.91,
                      "agreement.krippendorff_alpha": 0.71})
    _run(root, HOSTILE_NAME, 50, passed=True, metrics={"rows_valid": 12.0,
                                                      "quarantine_rate": 0.25})
    return root


def _text(fragment: str) -> str:
    """The text a browser shows, whitespace squeezed."""
    return " ".join(" ".join(parse(fragment).text).split())


def _rows(page: str) -> dict[str, str]:
    """Each dataset's table row, by the dataset name as the browser shows it."""
    out = {}
    for row in re.findall(r'<tr id="ds-\d+">.*?</tr>', page, flags=re.DOTALL):
        name = re.search(r'<div class="name">(?:<a [^>]*>)?(.*?)(?:</a>)?</div>', row)
        assert name is not None
        out[html.unescape(name.group(1))] = row
    return out


def test_index_lists_every_dataset_with_verdict_figures_and_trend(store: Path) -> None:
    out = write_index(store)
    assert out == store / "reports" / "index.html"
    page = out.read_text(encoding="utf-8")
    rows = _rows(page)
    assert set(rows) == {"tweets", HOSTILE_NAME}
    tweets = _text(rows["tweets"])
    assert "FAILED" in tweets and "20261201T000002Z-000002" in tweets
    assert "rows valid 2,902" in tweets and "quarantine rate 2.00%" in tweets
    assert "label-issue rate 1.16%" in tweets and "label health 0.91" in tweets
    assert "Krippendorff's α 0.71" in tweets
    assert rows["tweets"].count("<svg") == 1 and "label issue rate, last 3 runs" in tweets
    other = _text(rows[HOSTILE_NAME])
    assert "PASSED" in other and "rows valid 12" in other and "25.00%" in other
    assert "label-issue rate" not in other and "α" not in other  # not measured there
    assert "needs two runs" in other and "<svg" not in rows[HOSTILE_NAME]


def test_runs_are_linked_newest_first_and_links_resolve(store: Path) -> None:
    page = write_index(store).read_text(encoding="utf-8")
    tweets = _rows(page)["tweets"]
    runs = re.findall(r'<a class="mono" href="([^"]+)">([^<]+)</a>', tweets)
    assert [r for _, r in runs] == ["20261201T000002Z-000002", "20261201T000001Z-000001",
                                    "20261201T000000Z-000000"]
    hrefs = re.findall(r'href="([^"#]+)"', page)  # not the plots' clip-path references
    assert len(hrefs) == 3 + 1 + 2  # tweets' runs and the other's, and each latest
    for href in hrefs:
        assert not href.startswith(("/", "http", "file:")) and ".." not in href
        target = store / "reports" / unquote(html.unescape(href))
        assert target.name == "report.html" and target.is_file(), href


def test_hostile_dataset_names_are_escaped(store: Path) -> None:
    page = write_index(store).read_text(encoding="utf-8")
    assert HOSTILE_NAME not in page and "<img" not in page
    assert "&lt;img src=x onerror=" in page
    dom = parse(page)
    assert "img" not in dom.tags and "script" not in dom.tags
    assert HOSTILE_NAME in "".join(dom.text)  # shown as text
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page)
    assert csp is not None and "default-src 'none'" in csp.group(1)
    assert "https://" not in page and "http://" not in page.replace("http://www.w3.org", "")


def test_runs_without_report_and_reports_without_record(store: Path) -> None:
    """A run that errored (no report folder) is listed without a link and does not change
    the verdict; a report folder the warehouse does not know is shown from report.json."""
    with warehouse.connect(store / warehouse.WAREHOUSE_FILE) as con:
        warehouse.start_run(con, run_id="20261201T000009Z-999999", dataset="tweets",
                            spec_hash="h", spec_path="s", started_at=T0 + timedelta(hours=1))
        warehouse.finish_run(con, run_id="20261201T000009Z-999999", status="error",
                             message="boom")
    rep = copy.deepcopy(base_report())
    rep.update(dataset="copied", run_id="20261130T000000Z-aaaaaa")
    rep["gate"]["passed"] = True
    write_report(rep, run=RunContext(run_id=rep["run_id"], dataset="copied", spec_path="s",
                                     spec_hash="h", store=str(store), started_at=T0))
    rows = _rows(write_index(store).read_text(encoding="utf-8"))
    tweets = _text(rows["tweets"])
    assert "error 20261201T000009Z-999999 (no report)" in tweets
    assert "FAILED" in tweets and "4 run(s)" in tweets  # still the newest finished run's
    copied = _text(rows["copied"])
    assert "PASSED" in copied and "rows valid 2,980" in copied


def test_empty_store_and_atomic_rewrite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                        ) -> None:
    out = write_index(tmp_path / "empty")
    assert "No dataset has run in this store yet." in out.read_text(encoding="utf-8")
    before = out.read_text(encoding="utf-8")

    def replace_fails(*_: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", replace_fails)
    with pytest.raises(OSError, match="disk full"):
        write_index(tmp_path / "empty")
    assert out.read_text(encoding="utf-8") == before  # the old page, whole
    assert [p.name for p in out.parent.iterdir()] == ["index.html"]  # no temp left


def test_index_page_stays_small(store: Path) -> None:
    for n in range(3, 12):
        _run(store, "tweets", n, passed=n % 3 != 0, report=False,
             metrics={"rows_valid": 2900.0, "label_issues.rate": 0.001 * n})
    entries = report_index.index_entries(store)
    assert [e.name for e in entries] == sorted([HOSTILE_NAME, "tweets"])
    tweets = entries[-1] if entries[-1].name == "tweets" else entries[0]
    assert len(tweets.runs) == report_index.RECENT_RUNS and tweets.n_runs == 12
    page = write_index(store).read_text(encoding="utf-8")
    assert "… 7 older" in page and len(page.encode()) < 60_000
