"""End-to-end: `task: multilabel` on a tiny inline file under the temporary server (issue
25): delimited tags read, bad rows quarantined, label issues, agreement, stratified
splits by group, the tags published as a list column."""

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

TAGS = ["sports", "politics", "tech", "music"]


def _rows() -> list[dict[str, Any]]:
    rng = random.Random(3)
    rows = []
    for i in range(90):
        tags = sorted(rng.sample(TAGS, rng.choice([1, 2])))
        words = [f"{t}{rng.randint(0, 3)}" for t in tags for _ in range(3)]
        rows.append({"id": f"r{i:03d}", "group": f"g{i // 3}", "text": " ".join(words),
                     "tags": "|".join(tags)})
    rows[10]["tags"] = "sports|Tech"        # unknown tag
    rows[20]["tags"] = ""                   # no tags
    rows[30]["tags"] = "sports|tech|music"  # too many
    return rows


def _annotations() -> list[dict[str, Any]]:
    out = []
    for i in range(40):
        base = TAGS[i % 4]
        out += [{"item": f"r{i:03d}", "annotator": "a", "tags": base},
                {"item": f"r{i:03d}", "annotator": "b",
                 "tags": base if i % 5 else f"{base}|{TAGS[(i + 1) % 4]}"}]
    return out


def _spec(tmp_path: Path) -> Path:
    for name, rows in (("items.jsonl", _rows()), ("annotations.jsonl", _annotations())):
        (tmp_path / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = {
        "name": "tiny-tags", "task": "multilabel", "store": "store",
        "sources": {"items": {"path": "items.jsonl"},
                    "annotations": {"path": "annotations.jsonl"}},
        "columns": {"id": "id", "text": ["text"], "group": "group"},
        "agreement": {"item": "item", "annotator": "annotator", "label": "tags",
                      "min_shared_items": 5},
        "multilabel": {"column": "tags", "delimiter": "|", "tags": TAGS, "min_tags": 1,
                       "max_tags": 2, "issues": {"folds": 3, "min_rows": 50}},
        "splits": {"fractions": {"train": 0.6, "validation": 0.2, "test": 0.2},
                   "flagged": "keep"},
        "publish": {"formats": ["parquet", "jsonl"], "license": "mit"},
        "gate": {"max_quarantine_rate": 0.05, "min_masi_alpha": 0.5,
                 "max_split_leakage": 0, "max_tag_share_deviation": 0.2},
    }
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def test_multilabel_flow_end_to_end(tmp_path: Path) -> None:
    from flows.pipeline import quality_pipeline

    report = quality_pipeline(str(_spec(tmp_path)))
    assert report["rows"]["input"] == 90
    assert report["rows"]["quarantined"] == 3
    assert report["gate"]["passed"] is True, report["gate"]
    ml = report["multilabel"]
    assert [t["tag"] for t in ml["tags"]] == TAGS
    assert ml["issues"] is not None and ml["issues"]["folds"] == 3
    m = report["metrics"]
    assert m["multilabel.tags"] == 4
    assert 0.5 < m["multilabel.krippendorff_alpha_masi"] < 1.0
    assert report["leakage"]["total"] == 0

    con = duckdb.connect(str(tmp_path / "store/warehouse.duckdb"), read_only=True)
    try:
        q = con.execute('SELECT "row", "check", failure_value FROM quarantine '
                        "WHERE run_id = ? ORDER BY 1", [report["run_id"]]).fetchall()
    finally:
        con.close()
    assert q == [(11, "unknown_tag", "Tech"), (21, "min_tags", "[]"),
                 (31, "max_tags", '["music", "sports", "tech"]')]

    md = (tmp_path / "store/reports/tiny-tags/latest/report.md").read_text()
    assert "Multi-label" in md

    current = tmp_path / "store/published/tiny-tags/current"
    groups: dict[str, str] = {}
    total = 0
    for split in ("train", "validation", "test"):
        frame = pl.read_parquet(current / f"{split}.parquet")
        assert frame.schema["tags"] == pl.List(pl.String)
        for g in frame.get_column("group").to_list():
            assert groups.setdefault(g, split) == split  # no group in two splits
        lines = [json.loads(line) for line in (current / f"{split}.jsonl").open()]
        assert all(isinstance(r["tags"], list) for r in lines)
        total += frame.height
    assert total == 87
