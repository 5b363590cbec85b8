"""End-to-end: `task: instruction` on a tiny chat-form JSONL under the temporary server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml

from labelgate.stages.instructions import AlpacaRecord, ChatRecord

pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_server")]

TOPICS = ["weather", "cooking", "travel", "music", "sports", "books", "movies", "pets"]


def u(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def a(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text}


def _rows() -> list[dict[str, Any]]:
    rows = []
    for i in range(40):
        topic = TOPICS[i % len(TOPICS)]
        messages = [u(f"Question {i}: what do you like most about {topic}, number {i * 7}?"),
                    a(f"Answer {i}: I like how {topic} changes every day ({i * 13}).")]
        if i % 3 == 0:  # multi-turn
            messages += [u(f"Why {i} though, and not {i + 100}?"),
                         a(f"Because {topic} is fun for {i} reasons.")]
        rows.append({"id": f"r{i:03d}", "conv": f"c{i // 2:03d}", "messages": messages,
                     "quality": 5 if i % 4 else 3})
    rows += [
        # row 41: empty response
        {"id": "bad-empty", "conv": "x1", "messages": [u("Tell me a joke"), a("   ")],
         "quality": 5},
        # row 42: the assistant speaks first
        {"id": "bad-first", "conv": "x2",
         "messages": [a("Hi, I am the bot"), u("ok"), a("How can I help?")], "quality": 5},
        # row 43: echo
        {"id": "bad-echo", "conv": "x3", "messages": [u("Hello there"), a("hello  THERE")],
         "quality": 5},
        # rows 44, 45: the same prompt, different responses (reported, not quarantined)
        {"id": "conf-1", "conv": "x4", "messages": [u("Good morning!"), a("Morning to you.")],
         "quality": 4},
        {"id": "conf-2", "conv": "x5", "messages": [u("good   morning!"), a("Hey, hi.")],
         "quality": 4},
    ]
    return rows


def _spec(tmp_path: Path, rows: list[dict[str, Any]]) -> Path:
    items = tmp_path / "items" / "chat.jsonl"
    items.parent.mkdir(parents=True)
    items.write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = {
        "name": "tiny-chat",
        "task": "instruction",
        "store": "store",
        "sources": {"items": {"path": "items/*.jsonl", "style": "chat"}},
        "columns": {"id": "id", "label": "quality", "group": "conv"},
        "contract": {"quality": {"dtype": "int", "isin": [1, 2, 3, 4, 5]}},
        "sft": {"allowed_roles": ["user", "assistant"], "min_response_chars": 2},
        "dedup": {"near": {"threshold": 0.9}},
        "splits": {"fractions": {"train": 0.8, "validation": 0.1, "test": 0.1},
                   "stratify": False, "flagged": "keep"},
        "publish": {"formats": ["parquet", "alpaca", "chat"], "filter": "quality >= 4"},
        "gate": {"max_quarantine_rate": 0.1, "min_rows": 30, "max_split_leakage": 0},
    }
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def test_instruction_flow_end_to_end(tmp_path: Path) -> None:
    from flows.pipeline import quality_pipeline

    rows = _rows()
    spec = _spec(tmp_path, rows)
    report = quality_pipeline(str(spec))

    filtered = sum(1 for r in rows[:40] if r["quality"] < 4)  # 10 rows rated 3
    assert report["rows"] == {"input": 45, "valid": 45 - 3 - filtered, "quarantined": 3,
                              "excluded": filtered, "balanced": True}
    assert report["gate"]["passed"] is True

    on_disk = json.loads((tmp_path / "store/reports/tiny-chat/latest/report.json").read_text())
    reasons = {(e["id"], e["check"]): e["reason"] for e in on_disk["quarantine"]["examples"]}
    assert set(reasons) == {
        ("bad-empty", "empty_response"), ("bad-first", "chat_first_turn"),
        ("bad-echo", "response_echoes_prompt"),
    }
    assert "empty or whitespace" in reasons["bad-empty", "empty_response"]
    assert "sft.reject_echo" in reasons["bad-echo", "response_echoes_prompt"]
    sft = on_disk["sft"]
    assert sft["quarantined_rows"] == 3
    assert sft["conflicts"]["groups"] == 1 and sft["conflicts"]["rows"] == 2
    assert on_disk["splits"]["filtered"] == filtered
    assert on_disk["splits"]["excluded"] == [
        {"policy": "publish_filter", "rows": filtered,
         "example_reason": "quality is 3: fails publish.filter quality >= 4"}
    ]
    md = (tmp_path / "store/reports/tiny-chat/latest/report.md").read_text()
    assert "## Instruction data (SFT checks)" in md

    con = duckdb.connect(str(tmp_path / "store/warehouse.duckdb"), read_only=True)
    try:
        q = con.execute(
            'SELECT "row", id, "column", "check" FROM quarantine WHERE run_id = ? ORDER BY "row"',
            [report["run_id"]],
        ).fetchall()
        assert q == [(41, "bad-empty", "response", "empty_response"),
                     (42, "bad-first", "messages", "chat_first_turn"),
                     (43, "bad-echo", "response", "response_echoes_prompt")]
        conflicts = con.execute(
            "SELECT id, dataset FROM conflicting_responses WHERE run_id = ? ORDER BY id",
            [report["run_id"]],
        ).fetchall()
        assert conflicts == [("conf-1", "tiny-chat"), ("conf-2", "tiny-chat")]
        excluded = con.execute(
            "SELECT policy, count(*) FROM exclusions WHERE run_id = ? GROUP BY ALL",
            [report["run_id"]],
        ).fetchall()
        assert excluded == [("publish_filter", filtered)]
        run_rows = con.execute(
            "SELECT rows_input, rows_valid, rows_quarantined, rows_excluded FROM runs"
            " WHERE run_id = ?", [report["run_id"]],
        ).fetchall()
        assert run_rows == [(45, 45 - 3 - filtered, 3, filtered)]  # input = the other three
        # the views agree: `valid` is what is left to publish, `contract_valid` all that passed
        views = con.execute(
            'SELECT (SELECT count(*) FROM "tiny-chat".valid),'
            ' (SELECT count(*) FROM "tiny-chat".contract_valid)'
        ).fetchall()
        assert views == [(45 - 3 - filtered, 45 - 3)]
    finally:
        con.close()
    # "valid" is what is left to publish everywhere: the metric min_rows gates
    assert report["metrics"]["rows_valid"] == 45 - 3 - filtered
    assert report["metrics"]["rows_excluded"] == filtered

    current = tmp_path / "store/published/tiny-chat/current"
    published = 0
    for split in ("train", "validation", "test"):
        chat = [json.loads(line) for line in (current / f"{split}.chat.jsonl").open()]
        alpaca = [json.loads(line) for line in (current / f"{split}.alpaca.jsonl").open()]
        assert len(chat) == len(alpaca)
        published += len(chat)
        for record in chat:
            assert list(record) == ["messages"]
            assert all(list(m) == ["role", "content"] for m in record["messages"])
            ChatRecord.model_validate(record)
            assert record["messages"][-1]["role"] == "assistant"
        for record in alpaca:
            assert list(record) == ["instruction", "input", "output"]
            AlpacaRecord.model_validate(record)
    assert published == report["rows"]["valid"]
    manifest = json.loads((current / "manifest.json").read_text())
    assert manifest["formats"] == ["parquet", "alpaca", "chat"]


def test_instruction_spec_without_label_skips_label_stages(tmp_path: Path) -> None:
    from flows.pipeline import quality_pipeline

    rows = [{k: v for k, v in r.items() if k != "quality"} for r in _rows()[:40]]
    spec = _spec(tmp_path, rows)
    data = yaml.safe_load(spec.read_text())
    del data["columns"]["label"], data["contract"], data["publish"]["filter"]
    spec.write_text(yaml.safe_dump(data))
    report = quality_pipeline(str(spec))
    assert report["rows"] == {"input": 40, "valid": 40, "quarantined": 0, "excluded": 0,
                              "balanced": True}
    assert report["classes"] == []
    assert "min_rows_per_class" not in report["metrics"]


def test_topic_label_issues_and_rating_agreement_on_instruction_data(tmp_path: Path) -> None:
    """A topic label goes through label issues (prompt + response text); quality ratings by
    several reviewers through the agreement stage, unchanged."""
    from flows.pipeline import quality_pipeline

    rows = [{**r, "topic": TOPICS[i % len(TOPICS)]} for i, r in enumerate(_rows()[:40])]
    spec = _spec(tmp_path, rows)
    ratings = [
        {"id": r["id"], "annotator": f"rev{k}", "rating": r["quality"] - (k == 2 and i % 5 == 0)}
        for i, r in enumerate(rows) for k in range(3)
    ]
    (tmp_path / "ratings.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ratings))
    data = yaml.safe_load(spec.read_text())
    data["sources"]["annotations"] = {"path": "ratings.jsonl"}
    data["agreement"] = {"label": "rating", "level": "ordinal", "categories": [1, 2, 3, 4, 5]}
    data["columns"]["label"] = "topic"
    data["contract"] = {"quality": {"dtype": "int"}}
    data["label_issues"] = {"folds": 2}
    data["gate"] = {"max_quarantine_rate": 0.1, "min_krippendorff_alpha": 0.5}
    spec.write_text(yaml.safe_dump(data))
    report = quality_pipeline(str(spec))

    assert report["agreement"]["metrics"]["n_annotators"] == 3
    assert report["metrics"]["agreement.krippendorff_alpha"] > 0.5
    assert report["label_issues"]["classes"] == sorted(TOPICS)
    assert {c["label"] for c in report["classes"]} == set(TOPICS)


def test_canonicalize_errors_name_the_file_and_row() -> None:
    import polars as pl

    from labelgate.errors import InputError
    from labelgate.spec import parse_spec
    from labelgate.stages import steps

    spec = parse_spec({
        "name": "x", "task": "instruction",
        "sources": {"items": {"path": "a.csv", "style": "chat"}},
        "columns": {"id": "id", "label": "quality"},
    })
    rows = pl.DataFrame({"id": ["a", "b"], "messages": ['[{"role": "user", "content": "hi"}]',
                                                        "[{not json"],
                         "quality": [1, 2], "_row": [1, 2]})
    with pytest.raises(InputError, match=r"a\.csv: row 2, column 'messages'"):
        steps.canonicalize(rows, spec=spec, where="a.csv")
    with pytest.raises(InputError, match=r"b\.csv: missing column\(s\) \['quality'\]"):
        steps.canonicalize(rows.drop("quality"), spec=spec, where="b.csv")
