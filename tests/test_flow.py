"""End-to-end: the Prefect flow under the temporary server, and the CLI's exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from flows.cli import app
from labelgate.errors import GateFailedError, InputError
from tests.conftest import SpecFactory, item_rows, write_csv

pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_server")]
runner = CliRunner()


def _latest_report(spec: Path) -> dict:  # type: ignore[type-arg]
    path = spec.parent / "store/reports/tiny-tweets/latest/report.json"
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def test_flow_end_to_end(make_spec: SpecFactory) -> None:
    from flows.pipeline import quality_pipeline

    rows = item_rows(60)
    rows[5]["sentiment"] = "angry"
    rows[9]["tweet_id"] = rows[8]["tweet_id"]
    spec = make_spec(rows)
    report = quality_pipeline(str(spec))

    assert report["rows"] == {
        "input": 60, "valid": 58, "quarantined": 2, "excluded": 0, "balanced": True
    }
    assert report["gate"]["passed"] is True
    assert [c["name"] for c in report["gate"]["checks"]] == [
        "max_quarantine_rate", "min_rows_per_class"
    ]
    assert report["metrics"]["quarantine_rate"] == pytest.approx(2 / 60)
    assert {c["label"]: c["rows"] for c in report["classes"]} == {
        "negative": 19, "neutral": 19, "positive": 20  # row 5 is neutral, row 9 negative
    }
    on_disk = _latest_report(spec)
    assert on_disk["run_id"] == report["run_id"]
    folder = spec.parent / "store/reports/tiny-tweets/latest"
    assert "input 60 = valid 58 + quarantined 2" in (folder / "report.md").read_text()

    con = duckdb.connect(str(spec.parent / "store/warehouse.duckdb"), read_only=True)
    try:
        q = con.execute(
            'SELECT "row", "column", "check" FROM quarantine WHERE run_id = ? ORDER BY "row"',
            [report["run_id"]],
        ).fetchall()
        assert q == [(6, "sentiment", "isin"), (10, "tweet_id", "unique")]
        assert con.execute('SELECT count(*) FROM "tiny-tweets".valid').fetchall() == [(58,)]
        status = con.execute("SELECT status, gate_passed FROM runs").fetchall()
        assert status == [("passed", True)]
        gate_rows = con.execute("SELECT count(*) FROM gate_results").fetchall()
        assert gate_rows == [(2,)]
    finally:
        con.close()

    # the same files again: batches reused, nothing new in the lake
    again = quality_pipeline(str(spec))
    assert [s["reused"] for s in again["sources"]] == [True]
    assert len(list((spec.parent / "store/lake/tiny-tweets/items").glob("batch=*"))) == 1


def test_every_row_quarantined_is_a_failed_gate_with_a_report(make_spec: SpecFactory) -> None:
    """A contract nothing passes (here: labels spelt differently) skips the row stages; the
    gate fails on the quarantine rate and the report says so, instead of a label-issues
    error about 0 classes."""
    from flows.pipeline import quality_pipeline

    contract = {"sentiment": {"dtype": "str", "isin": ["neg", "neu", "pos"]}}
    spec = make_spec(
        contract=contract, label_issues={"folds": 2}, dedup={}, splits={},
        gate={"max_quarantine_rate": 0.1, "min_rows_per_class": 5},
    )
    state = quality_pipeline(str(spec), return_state=True)
    exc = state.result(raise_on_failure=False)
    assert isinstance(exc, GateFailedError)
    assert "quarantine_rate 1 > gate.max_quarantine_rate 0.1" in str(exc)
    report = _latest_report(spec)
    assert report["rows"] == {"input": 60, "valid": 0, "quarantined": 60, "excluded": 0,
                              "balanced": True}
    assert "label_issues" not in report and "splits" not in report
    assert report["metrics"]["min_rows_per_class"] == 0


def test_failed_gate_fails_the_flow_run(make_spec: SpecFactory) -> None:
    from flows.pipeline import quality_pipeline

    spec = make_spec(gate={"min_rows_per_class": 1000})
    state = quality_pipeline(str(spec), return_state=True)
    assert state.is_failed()
    exc = state.result(raise_on_failure=False)
    assert isinstance(exc, GateFailedError)
    assert ("min_rows_per_class 20 (classes 'negative', 'neutral', 'positive') < "
            "gate.min_rows_per_class 1000") in str(exc)
    assert _latest_report(spec)["gate"]["passed"] is False  # the report is still written


def test_input_error_fails_the_run_and_is_recorded(make_spec: SpecFactory) -> None:
    from flows.pipeline import quality_pipeline

    spec = make_spec(sources={"items": {"path": "missing/*.csv"}})
    state = quality_pipeline(str(spec), return_state=True)
    exc = state.result(raise_on_failure=False)
    assert isinstance(exc, InputError) and "no file matches" in str(exc)
    con = duckdb.connect(str(spec.parent / "store/warehouse.duckdb"), read_only=True)
    try:
        assert con.execute("SELECT status FROM runs").fetchall() == [("error",)]
    finally:
        con.close()


def test_cli_exit_codes(make_spec: SpecFactory, tmp_path: Path) -> None:
    spec = make_spec()
    result = runner.invoke(app, ["run", str(spec)])
    assert result.exit_code == 0, result.output
    assert "gate PASSED" in result.output and "input 60 = valid 60" in result.output

    assert runner.invoke(app, ["gate", str(spec)]).exit_code == 0
    report = runner.invoke(app, ["report", str(spec)])
    assert report.exit_code == 0 and "latest report:" in report.output

    # tighten the spec: `gate` re-evaluates the latest run's metrics with the new thresholds
    text = spec.read_text().replace("min_rows_per_class: 5", "min_rows_per_class: 500")
    spec.write_text(text)
    tightened = runner.invoke(app, ["gate", str(spec)])
    assert tightened.exit_code == 1
    assert ("min_rows_per_class 20 (classes 'negative', 'neutral', 'positive') < "
            "gate.min_rows_per_class 500") in tightened.output

    failed = runner.invoke(app, ["run", str(spec)])
    assert failed.exit_code == 1

    write_csv(tmp_path / "items" / "part1.csv", [{"tweet_id": "a", "text": "hi"}])
    bad_input = runner.invoke(app, ["run", str(spec)])
    assert bad_input.exit_code == 2
    assert "missing column(s) ['sentiment', 'confidence']" in bad_input.output
    assert "part1.csv" in bad_input.output


def test_cli_spec_commands(make_spec: SpecFactory, tmp_path: Path) -> None:
    spec = make_spec()
    ok = runner.invoke(app, ["check", str(spec)])
    assert ok.exit_code == 0 and "ok" in ok.output
    assert ("stages: ingest → enforce-contract → corrections → store → metrics → gate → "
            "report") in ok.output
    spec.write_text(spec.read_text() + "  max_label_issue_rate: 0.2\n")
    warned = runner.invoke(app, ["check", str(spec)])
    assert warned.exit_code == 0
    assert "gate.max_label_issue_rate needs the label-issues stage" in warned.output
    spec.write_text(spec.read_text().replace("max_quarantine_rate", "max_quarantine_rat"))
    typo = runner.invoke(app, ["check", str(spec)])
    assert typo.exit_code == 2
    assert "unknown gate check 'max_quarantine_rat'" in typo.output
    assert runner.invoke(app, ["run", str(spec)]).exit_code == 2

    schema = runner.invoke(app, ["schema"])
    assert schema.exit_code == 0
    assert json.loads(schema.output)["title"] == "labelgate spec"

    no_runs = runner.invoke(app, ["gate", str(spec), "--store", str(tmp_path / "empty")])
    assert no_runs.exit_code == 2


def test_history_and_html_report(make_spec: SpecFactory) -> None:
    spec = make_spec()
    assert runner.invoke(app, ["run", str(spec)]).exit_code == 0
    spec.write_text(spec.read_text().replace("min_rows_per_class: 5", "min_rows_per_class: 500"))
    assert runner.invoke(app, ["run", str(spec)]).exit_code == 1

    html = (spec.parent / "store/reports/tiny-tweets/latest/report.html").read_text()
    assert "GATE FAILED" in html and "min_rows_per_class" in html
    assert html.count("<svg") >= 2  # class bars and the trend plots of two runs

    shown = runner.invoke(app, ["history", str(spec), "-m", "gate_passed", "-m", "rows_valid"])
    assert shown.exit_code == 0, shown.output
    assert "pass" in shown.output and "FAIL" in shown.output
    assert "last 2 run(s)" in shown.output
    default = runner.invoke(app, ["history", str(spec)], terminal_width=80)
    assert default.exit_code == 0, default.output
    assert max(len(line) for line in default.output.splitlines()) <= 80, default.output
    assert "quar.=quarantine_rate" in default.output and "0.0%" in default.output
    bad = runner.invoke(app, ["history", str(spec), "-m", "nope"])
    assert bad.exit_code == 2 and "no metric 'nope' recorded" in bad.output
    hinted = runner.invoke(app, ["history", str(spec), "-m", "max_quarantine_rate",
                                 "-m", "rows_vaild"])
    text = " ".join(hinted.output.split())
    assert hinted.exit_code == 2
    assert "'max_quarantine_rate' is a gate check; its metric is 'quarantine_rate'" in text
    assert "did you mean 'rows_valid' for 'rows_vaild'?" in text


def test_default_history_columns_are_metrics_runs_record() -> None:
    """`labelgate history` shows these by default; a name no run records is silently
    dropped (label_issue_rate was, for label_issues.rate)."""
    from flows.cli import HISTORY_METRICS
    from labelgate.gate import GATE_CHECKS

    recorded = {c.metric for c in GATE_CHECKS.values()} | {"gate_passed", "rows_input"}
    assert set(HISTORY_METRICS) <= recorded, set(HISTORY_METRICS) - recorded


def test_full_pipeline_publishes_sticky_splits(make_spec: SpecFactory) -> None:
    """label issues → dedup → splits → gate → publish, twice, then a run that fails the gate."""
    rows = item_rows(120)
    rows[7]["text"] = rows[1]["text"]  # an exact duplicate of row 1 (same label: positive)
    stages = {
        "label_issues": {"method": "cross_validated", "folds": 3},
        "dedup": {"near": {"threshold": 0.9}},
        "splits": {"fractions": {"train": 0.8, "validation": 0.1, "test": 0.1},
                   "flagged": "drop_from_test"},
        "publish": {"formats": ["parquet", "jsonl"],
                    "jsonl": {"style": "alpaca", "instruction": "Classify the tweet.",
                              "input": "text", "output": "sentiment"}},
    }
    spec = make_spec(rows, **stages, gate={"max_split_leakage": 0, "min_rows_per_class": 5})
    first = runner.invoke(app, ["run", str(spec)])
    assert first.exit_code == 0, first.output
    report = _latest_report(spec)
    r = report["rows"]
    assert r["balanced"] and r["input"] == 120 and r["valid"] + r["excluded"] == 120
    assert report["label_issues"]["method"] == "cross_validated"
    assert len(report["label_issues"]["per_class"]) == 3
    assert report["duplicates"]["count"] >= 1
    assert report["leakage"]["total"] == 0
    assert sum(c["rows"] for c in report["splits"]["counts"]) == r["valid"]
    assert report["published"]["version"] == 1

    published = spec.parent / "store/published/tiny-tweets"
    current = (published / "current").resolve()
    assert current.name == "v1"
    lines = (current / "train.jsonl").read_text().splitlines()
    assert lines and set(json.loads(lines[0])) == {"instruction", "input", "output"}
    assert (spec.parent / "store/reports/tiny-tweets/latest/label_issues.parquet").is_file()

    con = duckdb.connect(str(spec.parent / "store/warehouse.duckdb"), read_only=True)
    try:
        first_splits = dict(con.execute(
            "SELECT split_key, split FROM split_assignments").fetchall())
        dup_rows = con.execute("SELECT count(*) FROM duplicates").fetchall()[0][0]
    finally:
        con.close()
    assert len(first_splits) == 120 and dup_rows >= 2
    assert first_splits["t0001"] == first_splits["t0007"]  # duplicates share a split

    # second run, 30 more rows: old rows keep their split, a new version is published
    write_csv(spec.parent / "items" / "part2.csv",
              [dict(r, tweet_id=f"n{i:04d}") for i, r in enumerate(item_rows(30))])
    rerun = runner.invoke(app, ["run", str(spec)])
    assert rerun.exit_code == 0, rerun.output
    con = duckdb.connect(str(spec.parent / "store/warehouse.duckdb"), read_only=True)
    try:
        second = dict(con.execute("SELECT split_key, split FROM split_assignments").fetchall())
    finally:
        con.close()
    assert {k: second[k] for k in first_splits} == first_splits
    assert len(second) == 150
    assert (published / "current").resolve().name == "v2"

    # a failing gate publishes nothing: current stays at v2
    spec.write_text(spec.read_text().replace("min_rows_per_class: 5", "min_rows_per_class: 500"))
    assert runner.invoke(app, ["run", str(spec)]).exit_code == 1
    assert (published / "current").resolve().name == "v2"
    assert not (published / "v3").exists()
    listing = runner.invoke(app, ["publish", "ls", str(spec)])
    assert listing.exit_code == 0
    cells = [[c.strip() for c in line.split("│")[1:-1]] for line in listing.output.splitlines()
             if line.startswith("│")]
    current_of = {row[0]: row[-1] for row in cells if row[0]}  # not a wrapped line's rest
    assert current_of == {"1": "no", "2": "yes"}, listing.output  # is_current: yes/no
    diffed = runner.invoke(app, ["diff", str(spec), "v1", "v2"])
    assert diffed.exit_code == 0 and "added" in diffed.output
    # `gate` with the looser thresholds passes the failed run's metrics, and says that run
    # was not published and what `current` is (a fine-tune reads `current`)
    spec.write_text(spec.read_text().replace("min_rows_per_class: 500", "min_rows_per_class: 5"))
    regate = runner.invoke(app, ["gate", str(spec)])
    assert regate.exit_code == 0
    v2_run = json.loads((published / "v2" / "manifest.json").read_text())["run_id"]
    assert "was not published (failed); published `current` is v2 from run " + v2_run in " ".join(
        regate.output.split()
    )


def test_unchanged_inputs_reuse_label_issues(make_spec: SpecFactory) -> None:
    from flows.pipeline import quality_pipeline

    rows = item_rows(90)
    spec = make_spec(rows, label_issues={"method": "cross_validated", "folds": 3})
    first = quality_pipeline(str(spec))
    assert "reused_from" not in first["label_issues"]
    second = quality_pipeline(str(spec))
    assert second["label_issues"]["reused_from"] == first["run_id"]
    for key in ("count", "rate", "health_score", "per_class", "top"):
        assert second["label_issues"][key] == first["label_issues"][key]
    assert second["metrics"]["label_issues.rate"] == first["metrics"]["label_issues.rate"]
    latest = spec.parent / "store/reports/tiny-tweets/latest"
    assert (latest / "label_issues.parquet").is_file()  # every run still has its outputs
    assert f"reused from run {first['run_id']}" in (latest / "report.md").read_text()

    rows[3]["sentiment"] = "positive"  # one label changed: the model runs again
    write_csv(spec.parent / "items" / "part1.csv", rows)
    third = quality_pipeline(str(spec))
    assert "reused_from" not in third["label_issues"]


def test_hostile_column_name_reaches_duckdb_only_as_a_value(make_spec: SpecFactory) -> None:
    from flows.pipeline import quality_pipeline

    evil = 'a"; DROP TABLE runs; --'
    rows = [dict(r, **{evil: "ok"}) for r in item_rows(30)]
    rows[2][evil] = "<script>alert(1)</script>"
    contract = {
        "tweet_id": {"dtype": "str", "unique": True},
        "sentiment": {"dtype": "str", "isin": ["negative", "neutral", "positive"]},
        evil: {"dtype": "str", "isin": ["ok"]},
    }
    spec = make_spec(rows, contract=contract, gate={"max_quarantine_rate": 0.5})
    report = quality_pipeline(str(spec))
    assert report["rows"]["quarantined"] == 1
    con = duckdb.connect(str(spec.parent / "store/warehouse.duckdb"), read_only=True)
    try:
        assert con.execute('SELECT "column" FROM quarantine').fetchall() == [(evil,)]
        assert con.execute("SELECT count(*) FROM runs").fetchall() == [(1,)]
        got = con.execute('SELECT count(*) FROM "tiny-tweets".valid').fetchall()
        assert got == [(29,)]
    finally:
        con.close()
    folder = spec.parent / "store/reports/tiny-tweets/latest"
    html = (folder / "report.html").read_text()
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html
    assert "<script>" not in (folder / "report.md").read_text()


def test_new_batch_is_the_only_one_checked(make_spec: SpecFactory) -> None:
    """A night with one new file: the old batch's contract result comes from the cache, the
    new one is checked, and `unique` still spans both (a repeated id in the new file)."""
    from flows.pipeline import quality_pipeline

    rows = item_rows(40)
    rows[5]["sentiment"] = "angry"
    spec = make_spec(rows)
    first = quality_pipeline(str(spec))
    assert [s["contract_cached"] for s in first["sources"]] == [False]
    assert first["rows"]["quarantined"] == 1

    new = item_rows(50)[40:]
    new[2]["tweet_id"] = rows[7]["tweet_id"]  # already in part1.csv
    write_csv(spec.parent / "items" / "part2.csv", new)
    second = quality_pipeline(str(spec))
    cached = {Path(s["file"]).name: s["contract_cached"] for s in second["sources"]}
    assert cached == {"part1.csv": True, "part2.csv": False}
    assert second["rows"] == {
        "input": 50, "valid": 48, "quarantined": 2, "excluded": 0, "balanced": True
    }
    con = duckdb.connect(str(spec.parent / "store/warehouse.duckdb"), read_only=True)
    try:
        q = con.execute(
            'SELECT "row", "column", "check", reason FROM quarantine WHERE run_id = ? '
            'ORDER BY "row"', [second["run_id"]],
        ).fetchall()
    finally:
        con.close()
    assert [(r, c, k) for r, c, k, _ in q] == [(3, "tweet_id", "unique"), (6, "sentiment", "isin")]
    assert "an earlier row has it" in q[0][3]
    caches = list((spec.parent / "store/cache/tiny-tweets/contract").iterdir())
    assert len(caches) == 2 and all((c / "_done.json").is_file() for c in caches)

    # a damaged cache file is recomputed, not fatal
    victim = next(c for c in caches if (c / "_done.json").read_text().count("part1.csv"))
    (victim / "valid.parquet").write_bytes(b"PAR1 truncated")
    damaged = quality_pipeline(str(spec))
    cached = {Path(s["file"]).name: s["contract_cached"] for s in damaged["sources"]}
    assert cached == {"part1.csv": False, "part2.csv": True}
    assert damaged["rows"] == second["rows"]

    # a changed contract is a different fingerprint: both batches are checked again
    spec_text = spec.read_text().replace("max: 500", "max: 400")
    spec.write_text(spec_text)
    third = quality_pipeline(str(spec))
    assert [s["contract_cached"] for s in third["sources"]] == [False, False]
    assert third["rows"] == second["rows"]


def test_remote_store_round_trip(make_spec: SpecFactory, tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A store at an fsspec URL: each run pulls into a local working copy and pushes back;
    a second machine (a fresh working copy) reuses the first one's batches and results."""
    from flows.pipeline import quality_pipeline

    bucket = tmp_path / "bucket"
    url = f"file://{bucket}/labelgate"
    spec = make_spec(item_rows(90), label_issues={"method": "cross_validated", "folds": 3},
                     splits={"fractions": {"train": 0.8, "test": 0.2}},
                     publish={"formats": ["parquet"]})
    monkeypatch.setenv("LABELGATE_CACHE_DIR", str(tmp_path / "machine-a"))
    first = quality_pipeline(str(spec), url)
    assert first["gate"]["passed"] is True
    root = bucket / "labelgate"
    assert (root / "warehouse.duckdb").is_file()
    assert (root / "reports/tiny-tweets" / first["run_id"] / "report.json").is_file()
    assert (root / "reports/tiny-tweets/latest.link").read_text().strip() == first["run_id"]
    assert (root / "published/tiny-tweets/current.link").read_text().strip() == "v1"
    assert len(list((root / "lake/tiny-tweets/items").glob("batch=*/_batch.json"))) == 1
    assert not (spec.parent / "store").exists()  # nothing in the spec's local store folder

    monkeypatch.setenv("LABELGATE_CACHE_DIR", str(tmp_path / "machine-b"))
    second = quality_pipeline(str(spec), url)
    assert [s["reused"] for s in second["sources"]] == [True]
    assert [s["contract_cached"] for s in second["sources"]] == [True]
    assert second["label_issues"]["reused_from"] == first["run_id"]
    # its v1 was pulled: the same content publishes nothing, current stays v1
    assert (second["published"]["version"], second["published"]["unchanged"]) == (1, True)
    con = duckdb.connect(str(root / "warehouse.duckdb"), read_only=True)
    try:
        runs = con.execute("SELECT run_id, status FROM runs ORDER BY run_id").fetchall()
    finally:
        con.close()
    assert runs == [(first["run_id"], "passed"), (second["run_id"], "passed")]

    monkeypatch.setenv("LABELGATE_CACHE_DIR", str(tmp_path / "machine-c"))
    gated = runner.invoke(app, ["gate", str(spec), "--store", url])
    assert gated.exit_code == 0, gated.output
    assert second["run_id"] in gated.output
    missing = runner.invoke(app, ["gate", str(spec), "--store", "s3://no-such/bucket"])
    assert missing.exit_code == 2 and "s3fs" in missing.output
