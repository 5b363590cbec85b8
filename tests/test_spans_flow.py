"""End-to-end: `task: spans` on a tiny inline file under the temporary server (issue 25):
bad spans quarantined with reasons, token issues, span agreement, splits grouped by
document, spaCy and Hugging Face files."""

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

PEOPLE = ["Anna", "Marek", "Lena", "Otto", "Ines", "Pavel"]
CITIES = ["Paris", "Berlin", "Oslo", "Lima", "Quito", "Cairo"]


def _row(i: int, rng: random.Random) -> dict[str, Any]:
    p, c = rng.choice(PEOPLE), rng.choice(CITIES)
    text = f"{p} travelled to {c} on monday ."
    at = text.index(c)
    return {"id": f"s{i:03d}", "doc": f"d{i // 4}", "text": text,
            "spans": [{"start": 0, "end": len(p), "label": "PER", "text": p},
                      {"start": at, "end": at + len(c), "label": "LOC"}]}


def _rows() -> list[dict[str, Any]]:
    rng = random.Random(5)
    rows = [_row(i, rng) for i in range(60)]
    rows[5]["spans"][1]["end"] = 500                       # offsets outside the text
    rows[6]["spans"][0]["text"] = "Someone"                # recorded text differs
    rows[7]["spans"][1]["label"] = "CITY"                  # unknown type
    rows[8]["spans"].append({"start": 0, "end": 3, "label": "PER"})  # overlap
    return rows


def _spec(tmp_path: Path) -> Path:
    ann = []
    for r in _rows()[20:40]:
        for who in ("a", "b"):
            spans = list(r["spans"])
            if who == "b" and r["id"].endswith("5"):
                spans = spans[:1]
            ann.append({"item": r["id"], "annotator": who, "spans": spans})
    (tmp_path / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _rows()))
    (tmp_path / "ann.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ann))
    spec = {
        "name": "tiny-spans", "task": "spans", "store": "store",
        "sources": {"items": {"path": "items.jsonl"}, "annotations": {"path": "ann.jsonl"}},
        "columns": {"id": "id", "text": ["text"], "group": "doc"},
        "agreement": {"item": "item", "annotator": "annotator", "label": "spans"},
        "spans": {"column": "spans", "types": ["PER", "LOC"], "overlap": "forbid",
                  "issues": {"folds": 3, "min_rows": 20}},
        "splits": {"fractions": {"train": 0.6, "validation": 0.2, "test": 0.2},
                   "stratify": False, "flagged": "keep"},
        "publish": {"license": "mit"},
        "gate": {"max_quarantine_rate": 0.1, "min_span_overlap_f1": 0.9,
                 "max_split_leakage": 0},
    }
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def test_spans_flow_end_to_end(tmp_path: Path) -> None:
    from flows.pipeline import quality_pipeline

    report = quality_pipeline(str(_spec(tmp_path)))
    assert report["rows"]["input"] == 60
    assert report["rows"]["quarantined"] == 4
    assert report["gate"]["passed"] is True, report["gate"]
    sp = report["spans"]
    assert sp["spans"] == 112 and [t["type"] for t in sp["types"]] == ["PER", "LOC"]
    assert sp["issues"] is not None
    md = (tmp_path / "store/reports/tiny-spans/latest/report.md").read_text()
    assert "## Entity spans" in md and "Agreement by type" in md
    ag = sp["agreement"]
    # b left out the LOC span of s025 and s035: 38 of 40 and 40 spans, 38 matched
    assert ag["pairs"] == 1 and ag["overlap_f1"] == pytest.approx(2 * 38 / 78)

    con = duckdb.connect(str(tmp_path / "store/warehouse.duckdb"), read_only=True)
    try:
        q = con.execute('SELECT "row", "check" FROM quarantine WHERE run_id = ? ORDER BY 1',
                        [report["run_id"]]).fetchall()
    finally:
        con.close()
    assert q == [(6, "span_offsets"), (7, "span_text"), (8, "unknown_type"),
                 (9, "span_overlap")]

    current = tmp_path / "store/published/tiny-spans/current"
    docs: dict[str, str] = {}
    total = 0
    manifest = json.loads((current / "manifest.json").read_text())
    names = manifest["extras"]["spans"]["ner_tags"]
    assert names == ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    for split in ("train", "validation", "test"):
        rows = pl.read_parquet(current / f"{split}.parquet")
        for d in rows.get_column("doc").to_list():
            assert docs.setdefault(d, split) == split  # a document stays in one split
        spacy = [json.loads(line) for line in (current / f"{split}.spacy.jsonl").open()]
        for r in spacy:
            assert [s["label"] for s in r["spans"]] == ["PER", "LOC"]
            assert r["text"][r["spans"][1]["start"]:r["spans"][1]["end"]] in CITIES
        hf = pl.read_parquet(current / f"{split}.hf.parquet")
        for tags in hf.get_column("ner_tags").to_list():
            assert [names[t] for t in tags] == ["B-PER", "O", "O", "B-LOC", "O", "O", "O"]
        total += rows.height
    assert total == 56
