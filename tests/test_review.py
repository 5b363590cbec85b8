"""The review loop: queue priority, exporters, corrections import/validation/overlay, CLI."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest
import typer
import yaml
from typer.testing import CliRunner

from flows.review_cli import review_app
from labelgate.errors import InputError
from labelgate.stages import review
from labelgate.store import warehouse

CLASSES = ["negative", "neutral", "positive"]


def _issues() -> pl.DataFrame:
    return pl.DataFrame({
        "id": ["a", "b", "c", "d", "e", "f", "g", "h"],
        "given_label": ["negative", "positive", "neutral", "negative", "positive", "neutral",
                        "negative", "positive"],
        "suggested_label": ["positive", "negative", "neutral", "negative", "positive",
                            "neutral", "negative", "positive"],
        "label_quality": [0.30, 0.05, 0.60, 0.90, 0.80, 0.70, 0.95, 0.85],
        "is_label_issue": [True, True, False, False, False, False, False, False],
    })


def _consensus() -> pl.DataFrame:
    return pl.DataFrame({
        "item": ["c", "d", "e", "a"],
        "majority": ["neutral", "negative", "positive", "negative"],
        "dawid_skene": ["positive", "negative", "positive", "positive"],
        "n_labels": [3, 3, 3, 3],
        "agreement": [0.67, 0.34, 1.0, 0.5],
    })


def _probs() -> pl.DataFrame:
    return pl.DataFrame({
        "id": ["a", "b", "c", "d", "e", "f", "g", "h"],
        "negative": [0.2, 0.6, 0.1, 0.5, 0.1, 0.30, 0.9, 0.05],
        "neutral": [0.1, 0.1, 0.6, 0.1, 0.1, 0.35, 0.05, 0.15],
        "positive": [0.7, 0.3, 0.3, 0.4, 0.8, 0.35, 0.05, 0.8],
    })


# --------------------------------------------------------------------------- queue


def test_queue_priority_order() -> None:
    q = review.review_queue(_issues(), consensus=_consensus(), probs=_probs(), limit=8)
    assert q.columns == list(review.QUEUE_SCHEMA)
    # flagged by quality asc; then consensus disagreement (c); low agreement (d);
    # then unflagged by margin asc: f (0.0), h (0.65), e (0.7), g (0.85)
    assert q["id"].to_list() == ["b", "a", "c", "d", "f", "h", "e", "g"]
    assert q["reason"].to_list() == [
        "label_issue", "label_issue", "consensus_disagreement", "low_agreement",
        "uncertain", "uncertain", "uncertain", "uncertain",
    ]
    assert q["priority"].to_list() == list(range(1, 9))
    assert q.filter(pl.col("id") == "b")["score"].item() == pytest.approx(0.05)
    assert q.filter(pl.col("id") == "f")["score"].item() == pytest.approx(0.0)
    # suggested probability from the out-of-fold probabilities
    assert q.filter(pl.col("id") == "a")["suggested_probability"].item() == pytest.approx(0.7)


def test_queue_leaves_out_items_a_reviewer_decided() -> None:
    q = review.review_queue(_issues(), consensus=_consensus(), probs=_probs(), limit=8,
                            reviewed={"b", "c", "f"})
    # b (flagged), c (consensus disagreement) and f (most uncertain) were reviewed already
    assert q["id"].to_list() == ["a", "d", "h", "e", "g"]
    assert q["reason"].to_list() == [
        "label_issue", "low_agreement", "uncertain", "uncertain", "uncertain"]
    # the budget goes to the next most uncertain item (d, margin 0.1), not to nothing
    assert review.review_queue(_issues(), probs=_probs(), limit=3, reviewed={"f"})[
        "id"].to_list() == ["b", "a", "d"]


def test_queue_mix_shares_and_flow_down() -> None:
    mix = review.MixRule(label_issue=0.5, consensus_disagreement=0.0, low_agreement=0.0,
                         uncertain=0.5)
    q = review.review_queue(_issues(), probs=_probs(), limit=4, mix=mix)
    assert q["reason"].to_list() == ["label_issue", "label_issue", "uncertain", "uncertain"]
    # only 2 flagged: their unused share flows to the uncertain items
    mix = review.MixRule(label_issue=0.9, uncertain=0.1)
    q = review.review_queue(_issues(), probs=_probs(), limit=5, mix=mix)
    assert q["reason"].value_counts().sort("reason").rows() == [
        ("label_issue", 2), ("uncertain", 3)]


def test_queue_ranks_unflagged_rows_by_the_probability_their_label_is_wrong() -> None:
    """Few flags: the label share goes on to the rows whose label the model does not pick,
    lowest p(given label) first, before the smallest margins (issue 23)."""
    issues = pl.DataFrame({
        "id": ["f", "x", "y", "u", "v"],
        "given_label": ["negative", "negative", "positive", "neutral", "positive"],
        "suggested_label": ["positive", "positive", "negative", "neutral", "positive"],
        "label_quality": [0.02, 0.40, 0.10, 0.34, 0.45],
        "is_label_issue": [True, False, False, False, False],
    })
    probs = pl.DataFrame({
        "id": ["f", "x", "y", "u", "v"],
        "negative": [0.01, 0.40, 0.88, 0.33, 0.10],
        "neutral": [0.01, 0.00, 0.02, 0.34, 0.45],
        "positive": [0.98, 0.60, 0.10, 0.33, 0.45],
    })
    q = review.review_queue(issues, probs=probs, limit=3)
    # y (p(given) 0.10) before x (0.40), though x's margin (0.2) is smaller than y's (0.78)
    assert q["id"].to_list() == ["f", "y", "x"]
    assert q["reason"].to_list() == ["label_issue", "low_label_quality", "low_label_quality"]
    assert q["score"].to_list() == pytest.approx([0.02, 0.10, 0.40])
    # past them, the uncertain rows (label picked, smallest margin: u 0.01, then v 0.0)
    rest = review.review_queue(issues, probs=probs, limit=5)
    assert rest["id"].to_list()[3:] == ["v", "u"]
    assert rest["reason"].to_list()[3:] == ["uncertain", "uncertain"]


@pytest.mark.parametrize("method", ["margin", "entropy"])
def test_uncertainty_scores_rank_the_flat_row_first(method: str) -> None:
    u = review.uncertainty_scores(_probs(), method=method).sort("score")
    assert u["id"][0] == "f"
    assert u["score"].min() >= 0.0 and u["score"].max() <= 1.0  # type: ignore[operator]


def test_queue_gold_mixed_in_at_rate_and_seeded() -> None:
    gold = pl.DataFrame({"id": ["g", "h", "e", "zz"], "label": ["negative"] * 4})
    q1 = review.review_queue(_issues(), probs=_probs(), limit=6, gold=gold, gold_rate=0.34,
                             seed=3)
    q2 = review.review_queue(_issues(), probs=_probs(), limit=6, gold=gold, gold_rate=0.34,
                             seed=3)
    assert q1.equals(q2)
    assert q1.height == 6
    golds = q1.filter(pl.col("reason") == "gold")["id"].to_list()
    assert len(golds) == 2 and set(golds) <= {"g", "h", "e"}  # never an unknown item
    assert q1["id"].n_unique() == 6


def test_queue_limit_zero_and_bad_rate() -> None:
    assert review.review_queue(_issues(), limit=0).height == 0
    with pytest.raises(InputError, match="gold_rate"):
        review.review_queue(_issues(), limit=3, gold_rate=2.0)
    with pytest.raises(InputError, match="label_quality"):
        review.review_queue(_issues().drop("label_quality"), limit=3)


# --------------------------------------------------------------------------- exporters


def _items(ids: list[str] | None = None) -> pl.DataFrame:
    ids = ids or ["a", "b", "c", "d", "e", "f", "g", "h"]
    return pl.DataFrame({"tweet_id": ids, "text": [f"tweet {i}" for i in ids]})


def test_label_studio_export_shape() -> None:
    q = review.review_queue(_issues(), probs=_probs(), limit=3)
    tasks, config = review.to_label_studio(q, _items(), text_column="text", classes=CLASSES,
                                           id_column="tweet_id")
    assert len(tasks) == 3
    t = tasks[0]
    assert t["data"] == {"text": "tweet b", "item_id": "b", "reason": "label_issue",
                         "priority": 1}
    given, suggested = t["predictions"]
    assert given["model_version"] == "given"
    assert given["score"] == pytest.approx(0.05)
    assert given["result"] == [{"from_name": "label", "to_name": "text", "type": "choices",
                                "value": {"choices": ["positive"]}}]
    assert suggested["model_version"] == "labelgate-suggested"
    assert suggested["result"][0]["value"] == {"choices": ["negative"]}
    assert suggested["score"] == pytest.approx(0.6)
    json.dumps(tasks)  # serializable
    root = ET.fromstring(config)
    assert [c.get("value") for c in root.iter("Choice")] == CLASSES
    assert root.find("Choices").get("name") == "label"  # type: ignore[union-attr]


def test_labeling_config_escapes_class_names() -> None:
    config = review.labeling_config(['a<b&"c"', "plain"])
    assert 'a<b&"c"' not in config
    root = ET.fromstring(config)  # well-formed XML
    assert [c.get("value") for c in root.iter("Choice")] == ['a<b&"c"', "plain"]


def test_csv_jsonl_exports(tmp_path: Path) -> None:
    q = review.review_queue(_issues(), limit=2)
    csv = pl.read_csv(review.to_csv(q, _items(), tmp_path / "r.csv", text_column="text",
                                    id_column="tweet_id"))
    assert csv["id"].to_list() == ["b", "a"]
    assert {"text", "label", "reviewer", "given_label"} <= set(csv.columns)
    rows = [json.loads(x) for x in (review.to_jsonl(
        q, _items(), tmp_path / "r.jsonl", text_column="text", id_column="tweet_id"
    )).read_text().splitlines()]
    assert rows[0]["text"] == "tweet b"
    with pytest.raises(InputError, match="no text for queued id"):
        review.to_csv(q, _items(["a"]), tmp_path / "x.csv", text_column="text",
                      id_column="tweet_id")


# --------------------------------------------------------------------------- import


def _ls_export(path: Path) -> Path:
    def ann(aid: int, who: Any, choice: str | None, when: str, cancelled: bool = False
            ) -> dict[str, Any]:
        result = [] if choice is None else [{
            "from_name": "label", "to_name": "text", "type": "choices",
            "value": {"choices": [choice]}}]
        return {"id": aid, "completed_by": who, "result": result, "was_cancelled": cancelled,
                "created_at": when, "updated_at": when}
    tasks = [
        {"id": 1, "data": {"text": "tweet a", "item_id": "a"},
         "annotations": [ann(11, 7, "positive", "2026-11-20T10:00:00Z")]},
        {"id": 2, "data": {"text": "tweet b", "item_id": "b"},
         "annotations": [ann(12, {"id": 8, "email": "r@x.org"}, "negative",
                             "2026-11-20T11:00:00Z"),
                         ann(13, 8, "neutral", "2026-11-20T12:00:00Z", cancelled=True)]},
        {"id": 3, "data": {"text": "tweet c", "item_id": "c"},
         "annotations": [ann(14, 7, None, "2026-11-20T12:00:00Z")]},
    ]
    path.write_text(json.dumps(tasks))
    return path


def test_read_label_studio_export(tmp_path: Path) -> None:
    c = review.read_corrections(_ls_export(tmp_path / "export.json"))
    assert c.columns == ["id", "label", "reviewer", "timestamp", "where"]
    assert c.select("id", "label", "reviewer").rows() == [("a", "positive", "7"),
                                                          ("b", "negative", "8")]
    assert c["timestamp"][0] == datetime(2026, 11, 20, 10, tzinfo=UTC)
    assert "annotation 11" in c["where"][0]


def test_read_csv_and_bad_files(tmp_path: Path) -> None:
    p = tmp_path / "c.csv"
    p.write_text("id,label,reviewer,timestamp\na,positive,ann1,2026-11-20T10:00:00Z\n"
                 "b,,ann1,\nc,neutral,ann2,\n")
    c = review.read_corrections(p)
    assert c.select("id", "label", "reviewer").rows() == [("a", "positive", "ann1"),
                                                          ("c", "neutral", "ann2")]
    assert c["timestamp"][1] is None
    bad = tmp_path / "bad.csv"
    bad.write_text("id,label\na,positive\n")
    with pytest.raises(InputError, match=r"bad\.csv: missing column\(s\) \['reviewer'\]"):
        review.read_corrections(bad)
    ts = tmp_path / "ts.csv"
    ts.write_text("id,label,reviewer,timestamp\na,positive,r,yesterday\n")
    with pytest.raises(InputError, match=r"ts\.csv: row 1: timestamp 'yesterday'"):
        review.read_corrections(ts)
    with pytest.raises(InputError, match="unknown corrections format"):
        review.read_corrections(_touch(tmp_path / "c.xlsx"))


def _touch(path: Path) -> Path:
    path.write_text("x")
    return path


def _corr(rows: list[tuple[str, str, str, str | None]]) -> pl.DataFrame:
    return pl.DataFrame(
        {"id": [r[0] for r in rows], "label": [r[1] for r in rows],
         "reviewer": [r[2] for r in rows], "timestamp": [r[3] for r in rows],
         "where": [f"f.csv: row {i + 1}" for i in range(len(rows))]},
        schema_overrides={"timestamp": pl.String},
    ).with_columns(pl.col("timestamp").str.to_datetime(time_zone="UTC"))


def test_validate_rejects_with_reasons() -> None:
    items = pl.DataFrame({"id": ["a", "b", "c", "g"],
                          "label": ["negative", "positive", "neutral", "negative"]})
    corr = _corr([
        ("a", "positive", "r1", "2026-11-20T10:00:00Z"),
        ("zz", "positive", "r1", "2026-11-20T10:00:00Z"),   # unknown id
        ("b", "meh", "r1", "2026-11-20T10:00:00Z"),         # unknown label
        ("c", "positive", "r1", "2026-11-20T12:00:00Z"),    # latest for c
        ("c", "negative", "r2", "2026-11-20T09:00:00Z"),    # superseded duplicate
        ("g", "positive", "r2", "2026-11-20T09:00:00Z"),    # gold item
    ])
    gold = pl.DataFrame({"id": ["g"], "label": ["negative"]})
    v = review.validate_corrections(corr, items=items, classes=CLASSES, gold=gold)
    assert v.applied.select("id", "old_label", "new_label", "changed", "reviewer").rows() == [
        ("a", "negative", "positive", True, "r1"), ("c", "neutral", "positive", True, "r1")]
    reasons = dict(zip(v.rejected["where"], v.rejected["reason"], strict=True))
    assert reasons["f.csv: row 2"].startswith("unknown id: zz")
    assert reasons["f.csv: row 3"].startswith("unknown label: meh")
    assert reasons["f.csv: row 5"] == (
        "duplicate correction of id c: superseded by the later one at f.csv: row 4")
    assert v.reasons() == {"duplicate": 1, "unknown_id": 1, "unknown_label": 1}
    acc = review.reviewer_accuracy(v.gold_answers)
    assert acc.rows() == [("r2", 1, 0, 0.0)]
    assert review.reviewer_accuracy(v.gold_answers.drop("gold_label"), gold).rows() == [
        ("r2", 1, 0, 0.0)]


def test_store_and_apply_latest_wins(tmp_path: Path) -> None:
    items = pl.DataFrame({"id": ["a", "b", "c"], "label": ["negative", "positive", "neutral"]})
    f1, f2 = tmp_path / "one.csv", tmp_path / "two.csv"
    f1.write_text("id,label,reviewer,timestamp\na,positive,r1,2026-11-20T10:00:00Z\n"
                  "b,positive,r1,2026-11-20T10:00:00Z\n")
    f2.write_text("id,label,reviewer,timestamp\na,neutral,r2,2026-11-21T10:00:00Z\n"
                  "zz,neutral,r2,2026-11-21T10:00:00Z\n")
    store = tmp_path / "store"
    for f in (f1, f2):
        v = review.validate_corrections(review.read_corrections(f), items=items,
                                        classes=CLASSES)
        b = review.store_corrections(v, source_file=f, dataset="ds", store=store)
        assert not b.reused
        assert Path(b.path).name.startswith("batch=")
    again = review.store_corrections(v, source_file=f2, dataset="ds", store=store)
    assert again.reused
    assert review.load_gold_answers(store, "ds").height == 0
    overlay = review.load_corrections(store, "ds")
    assert overlay.height == 3
    assert list(overlay.schema) == list(review.OVERLAY_SCHEMA)
    valid = pl.DataFrame({"tweet_id": ["c", "b", "a", "q"],
                          "sentiment": ["neutral", "positive", "negative", "neutral"],
                          "n": [1, 2, 3, 4]})
    out, stats = review.apply_corrections(valid, overlay, id_column="tweet_id",
                                          label_column="sentiment")
    assert out.columns == valid.columns and out["tweet_id"].to_list() == ["c", "b", "a", "q"]
    assert out["sentiment"].to_list() == ["neutral", "positive", "neutral", "neutral"]
    assert stats.to_dict() == {"n_corrections": 3, "n_ids_corrected": 2, "n_changed": 1,
                               "n_confirmed": 1, "n_not_in_valid": 0, "n_stale": 0}


def test_apply_corrections_int_labels_and_stale() -> None:
    valid = pl.DataFrame({"id": [1, 2], "quality": [3, 4]})
    corr = pl.DataFrame({
        "id": ["1", "2", "9"], "old_label": ["3", "5", "1"], "new_label": ["5", "4", "2"],
        "timestamp": [datetime(2026, 1, 1, tzinfo=UTC)] * 3,
        "imported_at": [datetime(2026, 1, 1, tzinfo=UTC)] * 3,
    })
    out, stats = review.apply_corrections(valid, corr, id_column="id", label_column="quality")
    assert out["quality"].to_list() == [5, 4] and out.schema["quality"] == pl.Int64
    assert (stats.n_changed, stats.n_confirmed, stats.n_not_in_valid, stats.n_stale) == (
        1, 1, 1, 1)
    bad = corr.with_columns(pl.lit("x").alias("new_label"))
    with pytest.raises(InputError, match="quality"):
        review.apply_corrections(valid, bad, id_column="id", label_column="quality")


# --------------------------------------------------------------------------- CLI


def _store(tmp_path: Path) -> Path:
    """A spec and a store holding one finished run, written directly (no flow)."""
    spec = {
        "name": "tiny", "store": "store",
        "sources": {"items": {"path": "items.csv"}},
        "columns": {"id": "tweet_id", "text": ["text"], "label": "sentiment"},
        "contract": {"sentiment": {"dtype": "str", "isin": CLASSES}},
    }
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(spec))
    store, run_id = tmp_path / "store", "20261120T100000Z-abc123"
    items = _items().with_columns(
        sentiment=_issues()["given_label"])
    curated = store / "curated" / "tiny" / f"run={run_id}"
    curated.mkdir(parents=True)
    items.write_parquet(curated / "items.parquet")
    rep = store / "reports" / "tiny" / run_id
    rep.mkdir(parents=True)
    _issues().with_columns(pl.int_range(1, 9).alias("rank")).write_parquet(
        rep / "label_issues.parquet")
    with warehouse.connect(store / warehouse.WAREHOUSE_FILE) as con:
        warehouse.start_run(con, run_id=run_id, dataset="tiny", spec_hash="h",
                            spec_path=str(spec_path), started_at=datetime.now(UTC))
        warehouse.finish_run(con, run_id=run_id, status="passed", rows_input=8, rows_valid=8,
                             rows_quarantined=0, gate_passed=True, report_dir=str(rep))
        cons = _consensus().with_columns(pl.lit(run_id).alias("run_id"),
                                         pl.lit("tiny").alias("dataset"))
        _insert_consensus(con, cons)
    return spec_path


def _insert_consensus(con: duckdb.DuckDBPyConnection, cons: pl.DataFrame) -> None:
    for r in cons.iter_rows(named=True):
        con.execute(
            "INSERT INTO consensus (run_id, dataset, item, majority, dawid_skene, n_labels,"
            " agreement) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [r["run_id"], r["dataset"], r["item"], r["majority"], r["dawid_skene"],
             r["n_labels"], r["agreement"]],
        )


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.add_typer(review_app, name="review")
    return app


def test_cli_export_label_studio_and_csv(tmp_path: Path) -> None:
    spec = _store(tmp_path)
    runner = CliRunner()
    out = tmp_path / "review" / "tasks.json"
    res = runner.invoke(_cli(), ["review", "export", str(spec), "--limit", "4",
                                 "--out", str(out)])
    assert res.exit_code == 0, res.output
    tasks = json.loads(out.read_text())
    assert [t["data"]["item_id"] for t in tasks] == ["b", "a", "c", "d"]
    assert ET.fromstring((out.parent / "labeling-config.xml").read_text()).tag == "View"
    assert (out.parent / "queue.parquet").is_file()
    res = runner.invoke(_cli(), ["review", "export", str(spec), "--format", "csv"])
    assert res.exit_code == 0, res.output
    written = list((tmp_path / "store" / "review" / "tiny").glob("*/review.csv"))
    assert len(written) == 1
    res = runner.invoke(_cli(), ["review", "export", str(spec), "--format", "xlsx"])
    assert res.exit_code == 2 and "--format 'xlsx'" in res.output


def test_cli_import(tmp_path: Path) -> None:
    spec = _store(tmp_path)
    runner = CliRunner()
    res = runner.invoke(_cli(), ["review", "import", str(spec),
                                 str(_ls_export(tmp_path / "export.json"))])
    assert res.exit_code == 0, res.output
    assert "accepted 2 (2 change a label; the next run applies them), rejected 0" in " ".join(
        res.output.split()
    )
    csv = tmp_path / "fix.csv"
    csv.write_text("id,label,reviewer\nb,positive,r1\nnope,positive,r1\nc,bad,r1\n")
    res = runner.invoke(_cli(), ["review", "import", str(spec), str(csv)])
    assert res.exit_code == 0, res.output
    assert "accepted 1 (0 change a label; the next run applies them), rejected 2" in " ".join(
        res.output.split()
    )
    assert "unknown id: nope" in res.output and "unknown label: bad" in res.output
    overlay = review.load_corrections(tmp_path / "store", "tiny")
    assert sorted(overlay["id"].to_list()) == ["a", "b", "b"]
    bad = tmp_path / "bad.csv"
    bad.write_text("id,label\nb,positive\n")
    res = runner.invoke(_cli(), ["review", "import", str(spec), str(bad)])
    assert res.exit_code == 2 and "bad.csv" in res.output and "reviewer" in res.output


def test_cli_no_run_is_exit_2(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({
        "name": "empty", "sources": {"items": {"path": "x.csv"}},
        "columns": {"id": "id", "text": ["text"], "label": "y"}}))
    res = CliRunner().invoke(_cli(), ["review", "export", str(spec)])
    assert res.exit_code == 2 and "warehouse" in res.output


def test_cli_export_on_warehouse_without_stage_tables(tmp_path: Path) -> None:
    spec = _store(tmp_path)
    with duckdb.connect(str(tmp_path / "store" / warehouse.WAREHOUSE_FILE)) as con:
        con.execute("DROP TABLE consensus")
        con.execute("DROP VIEW label_issues")  # a view over label_issue_rows
    out = tmp_path / "t.json"
    res = CliRunner().invoke(_cli(), ["review", "export", str(spec), "--limit", "2",
                                      "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert [t["data"]["item_id"] for t in json.loads(out.read_text())] == ["b", "a"]


def test_latest_corrections_orders_by_decision_time_not_import_order() -> None:
    """The decision that counts (used by apply_corrections and by the label-issue stage's
    reviewed rows) is the latest by timestamp, even when it was imported first."""
    from datetime import UTC, datetime

    t = [datetime(2026, 1, d, tzinfo=UTC) for d in (1, 2, 3, 4)]
    overlay = pl.DataFrame({
        "id": ["a", "a", "b"],
        "new_label": ["pos", "neg", "neu"],
        "old_label": ["neg", "neg", "neu"],
        "timestamp": [t[2], t[0], t[1]],   # the 'pos' decision is the later one...
        "imported_at": [t[0], t[3], t[3]],  # ...but was imported first
    })
    latest = review.latest_corrections(overlay).sort("id")
    assert latest.rows() == [("a", "pos", "neg"), ("b", "neu", "neu")]
