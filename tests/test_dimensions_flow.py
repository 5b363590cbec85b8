"""End-to-end: `task: dimensions` on a tiny inline file under the temporary server (issue
25, part 2): each dimension contracted (bad rows quarantined), its probable errors and
agreement, gate thresholds per dimension, splits where a row flagged on a dimension follows
that dimension's policy, one flag column per dimension published."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest
import yaml

pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_server")]

TOPICS = ["sport", "music", "food"]
LEVELS = ["low", "mid", "high"]


def _rows() -> list[dict[str, Any]]:
    rng = random.Random(7)
    rows = []
    for i in range(120):
        topic, great = TOPICS[i % 3], rng.randint(0, 4)
        words = [f"{topic}{rng.randint(0, 2)}" for _ in range(4)] + ["great"] * great
        rng.shuffle(words)
        rows.append({"id": f"r{i:03d}", "group": f"g{i // 2}", "text": " ".join(words),
                     "topic": topic, "level": LEVELS[min(great, 2)], "score": 2.0 * great})
    for i in range(4):  # swapped topics: probable errors, dropped by the topic policy
        rows[i]["topic"] = TOPICS[(i + 1) % 3]
    rows[50]["topic"] = "Sport"   # not a value: quarantined
    rows[60]["level"] = "top"     # not a value: quarantined
    rows[70]["score"] = 11.0      # above max: quarantined
    return rows


def _annotations() -> list[dict[str, Any]]:
    out = []
    for i in range(30):
        row: dict[str, Any] = {"topic": TOPICS[i % 3], "level": LEVELS[i % 3],
                               "score": float(i % 5)}
        for who in ("a", "b"):
            off = who == "b" and i % 6 == 0
            out.append({"item": f"r{i + 10:03d}", "annotator": who,
                        "topic": TOPICS[(i + 1) % 3] if off else row["topic"],
                        "level": row["level"], "score": row["score"] + (0.5 if off else 0.0)})
    return out


def _spec(tmp_path: Path) -> Path:
    for name, rows in (("items.jsonl", _rows()), ("annotations.jsonl", _annotations())):
        (tmp_path / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = {
        "name": "tiny-dims", "task": "dimensions", "store": "store",
        "sources": {"items": {"path": "items.jsonl"},
                    "annotations": {"path": "annotations.jsonl"}},
        "columns": {"id": "id", "text": ["text"], "group": "group"},
        "agreement": {"item": "item", "annotator": "annotator", "min_shared_items": 5,
                      "bootstrap": {"n": 50}},
        "labels": {
            "topic": {"kind": "nominal", "values": TOPICS, "stratify": True,
                      "flagged": "drop", "issues": {"folds": 3}},
            "level": {"kind": "ordinal", "values": LEVELS, "flagged": "keep",
                      "issues": {"folds": 3}},
            "score": {"kind": "interval", "min": 0, "max": 10, "flagged": "keep",
                      "issues": {"enabled": False}}},
        "splits": {"fractions": {"train": 0.6, "validation": 0.2, "test": 0.2}},
        "publish": {"formats": ["parquet", "jsonl"], "license": "mit"},
        "gate": {"max_quarantine_rate": 0.05, "max_split_leakage": 0, "dimensions": {
            "topic": {"min_krippendorff_alpha": 0.5, "max_label_issue_rate": 0.3},
            "score": {"min_krippendorff_alpha": 0.9}}},
    }
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def test_dimensions_flow_end_to_end(tmp_path: Path) -> None:
    from flows.pipeline import quality_pipeline

    report = quality_pipeline(str(_spec(tmp_path)))
    assert report["rows"]["input"] == 120
    assert report["rows"]["quarantined"] == 3
    assert report["gate"]["passed"] is True, report["gate"]
    checks = {c["name"] for c in report["gate"]["checks"]}
    assert "dimensions.score.min_krippendorff_alpha" in checks
    parts = {p["name"]: p for p in report["dimensions"]["dimensions"]}
    assert [p for p in parts] == ["topic", "level", "score"]
    assert parts["topic"]["agreement"]["level"] == "nominal"
    assert parts["score"]["agreement"]["level"] == "interval"
    assert parts["score"]["issues"] is None
    m = report["metrics"]
    assert 0.5 < m["dimensions.topic.krippendorff_alpha"] < 1.0
    assert m["dimensions.score.krippendorff_alpha"] > 0.9

    con = duckdb.connect(str(tmp_path / "store/warehouse.duckdb"), read_only=True)
    try:
        q = con.execute('SELECT "row", "column" FROM quarantine WHERE run_id = ? ORDER BY 1',
                        [report["run_id"]]).fetchall()
        issues = con.execute("SELECT id, dimension FROM dimension_issues WHERE run_id = ?",
                             [report["run_id"]]).fetchall()
    finally:
        con.close()
    assert q == [(51, "topic"), (61, "level"), (71, "score")]
    topic_flagged = {i for i, d in issues if d == "topic"}
    assert {"r000", "r001", "r002", "r003"} <= topic_flagged

    md = (tmp_path / "store/reports/tiny-dims/latest/report.md").read_text()
    assert "Dimensions side by side" in md
    current = tmp_path / "store/published/tiny-dims/current"
    ids: set[str] = set()
    for split in ("train", "validation", "test"):
        frame = pl.read_parquet(current / f"{split}.parquet")
        assert {"flagged_topic", "flagged_level", "flagged_score"} <= set(frame.columns)
        assert not frame.get_column("flagged_topic").any()  # topic: drop
        ids |= set(frame.get_column("id").to_list())
        lines = [json.loads(line) for line in (current / f"{split}.jsonl").open()]
        assert len(lines) == frame.height
    assert not ids & topic_flagged
    assert len(ids) == 117 - len(topic_flagged)
