"""End-to-end: `task: preference` on a tiny inline judgments file under the temporary
server (issue 24): checks, analysis, splits by prompt, TRL files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest
import yaml

pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_server")]

TOPICS = ["weather", "cooking", "travel", "music", "sports", "books", "movies", "pets"]


def _rows() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for i in range(24):
        t = TOPICS[i % len(TOPICS)]
        prompt: Any = f"Question {i}: what is good about {t}?"
        if i % 4 == 0:  # a chat-format prompt
            prompt = [{"role": "system", "content": "Be brief."},
                      {"role": "user", "content": prompt}]
        good, bad = f"{t} is fun, number {i}", f"no idea about anything {i * 3}"
        for k, who in enumerate(("ann1", "ann2", "ann3")):
            first_good = (i + k) % 2 == 0
            a, b = (good, bad) if first_good else (bad, good)
            pref = "a" if first_good else "b"
            if who == "ann3" and i % 6 == 0:
                pref = "tie"
            rows.append({"prompt": prompt, "response_a": a, "response_b": b,
                         "preference": pref, "annotator": who})
    rows += [
        {"prompt": "Say hi", "response_a": "hi", "response_b": "hi", "preference": "a",
         "annotator": "ann1"},                                   # identical pair
        {"prompt": "Say bye", "response_a": "bye", "response_b": "ciao", "preference": "c",
         "annotator": "ann2"},                                   # preference value
        {"prompt": "Say yes", "response_a": "  ", "response_b": "yes", "preference": "b",
         "annotator": "ann1"},                                   # empty response
    ]
    rows += [{"prompt": "Pick one", "response_a": "the left answer", "preference": pref,
              "response_b": "the right answer", "annotator": who}   # a split decision: tie
             for pref, who in (("a", "ann1"), ("b", "ann2"), ("tie", "ann3"))]
    return rows


def _spec(tmp_path: Path, rows: list[dict[str, Any]]) -> Path:
    items = tmp_path / "items" / "judgments.jsonl"
    items.parent.mkdir(parents=True)
    items.write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = {
        "name": "tiny-prefs",
        "task": "preference",
        "store": "store",
        "sources": {"items": {"path": "items/*.jsonl"}},
        "columns": {"id": "id"},
        "preference": {"shape": "judgments", "max_tokens": 50,
                       "swaps": {"min_pairs": 10, "folds": 3},
                       "min_annotator_judgments": 5,
                       "publish": {"formats": ["dpo", "dpo_conversational", "reward", "kto"],
                                   "ties": "drop", "flagged": "keep"}},
        "dedup": {"near": {"threshold": 0.9}},
        "splits": {"fractions": {"train": 0.6, "validation": 0.2, "test": 0.2},
                   "stratify": False, "flagged": "keep"},
        "publish": {"license": "mit"},
        "gate": {"max_identical_pair_rate": 0.05, "min_preference_agreement": 0.5,
                 "max_position_bias": 0.95, "max_contradiction_rate": 0.0,
                 "max_length_bias_share": 1.0, "max_split_leakage": 0},
    }
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def test_preference_flow_end_to_end(tmp_path: Path) -> None:
    from flows.pipeline import quality_pipeline

    rows = _rows()
    report = quality_pipeline(str(_spec(tmp_path, rows)))
    # the tied pair's 3 judgments are excluded by preference.publish.ties: drop
    assert report["rows"] == {"input": 78, "valid": 72, "quarantined": 3, "excluded": 3,
                              "balanced": True}
    assert report["splits"]["excluded"][0]["policy"] == "preference_tie"
    assert report["splits"]["excluded"][0]["rows"] == 3
    assert report["gate"]["passed"] is True, report["gate"]
    pref = report["preference"]
    assert pref["pairs"] == 25 and pref["judgments"] == 75
    assert pref["quarantined_by_check"] == {"empty_response": 1, "identical_pair": 1,
                                            "preference_value": 1}
    m = report["metrics"]
    assert m["preference.identical_pair_rate"] == pytest.approx(1 / 78)
    assert m["preference.tie_rate"] == pytest.approx(1 / 25)
    assert 0.5 < m["preference.percent_agreement"] < 1.0
    assert report["leakage"]["total"] == 0

    out = tmp_path / "store/reports/tiny-prefs/latest"
    md = (out / "report.md").read_text()
    assert "## Preference data" in md
    html = (out / "report.html").read_text()
    assert "Agreement with the other annotators" in html and "Length difference" in html

    con = duckdb.connect(str(tmp_path / "store/warehouse.duckdb"), read_only=True)
    try:
        q = con.execute('SELECT "row", "check" FROM quarantine WHERE run_id = ? ORDER BY 1',
                        [report["run_id"]]).fetchall()
        excluded = con.execute("SELECT policy, count(*) FROM exclusions WHERE run_id = ? "
                               "GROUP BY ALL", [report["run_id"]]).fetchall()
    finally:
        con.close()
    assert q == [(73, "identical_pair"), (74, "preference_value"), (75, "empty_response")]
    assert excluded == [("preference_tie", 3)]
    assert report["published"]["excluded_by_policy"] == {"preference_tie": 3}

    current = tmp_path / "store/published/tiny-prefs/current"
    prompts: dict[str, str] = {}
    total, system_turns = 0, 0
    for split in ("train", "validation", "test"):
        pairs = pl.read_parquet(current / f"{split}.parquet")
        for p in pairs.get_column("prompt").to_list():
            assert prompts.setdefault(p, split) == split  # no prompt in two splits
        dpo = [json.loads(line) for line in (current / f"{split}.dpo.jsonl").open()]
        assert all(list(r) == ["prompt", "chosen", "rejected"] for r in dpo)
        assert all("no idea" in r["rejected"] for r in dpo)  # the majority's choice
        chat = [json.loads(line) for line in (current / f"{split}.dpo_chat.jsonl").open()]
        assert all(r["chosen"][0]["role"] == "assistant" for r in chat)
        assert all(isinstance(r["prompt"], list) for r in chat)
        system_turns += sum(r["prompt"][0] == {"role": "system", "content": "Be brief."}
                            for r in chat)  # the chat prompts kept as chat lists
        kto = [json.loads(line) for line in (current / f"{split}.kto.jsonl").open()]
        assert len(kto) == 2 * len(dpo)
        assert [r["label"] for r in kto[:2]] in ([], [True, False])
        total += pairs.height
    assert total == 24 and system_turns == 6
    manifest = json.loads((current / "manifest.json").read_text())
    assert manifest["key_column"] == "pair_id"
    assert manifest["extras"]["preference"]["formats"] == ["dpo", "dpo_conversational",
                                                           "reward", "kto"]
    assert "train.reward.jsonl" in manifest["files"]


def test_preference_rerun_is_sticky_and_publishes_nothing_new(tmp_path: Path) -> None:
    """The same judgments again: the same splits, the same pairs, no new version."""
    from flows.pipeline import quality_pipeline

    spec = _spec(tmp_path, _rows())
    first = quality_pipeline(str(spec))
    second = quality_pipeline(str(spec))
    assert second["published"]["unchanged"] is True
    assert second["published"]["version"] == first["published"]["version"] == 1
    assert second["splits"]["summary"]["moved_rows"] == 0
    assert second["metrics"]["preference.swapped_rate"] == first["metrics"][
        "preference.swapped_rate"]


def _ls_export(path: Path, *, broken: bool = False) -> None:
    """A Label Studio Pairwise export: 12 tasks judged by two annotators, one cancelled
    annotation, one task nobody judged; `broken`: a task without its right response."""
    tasks: list[dict[str, Any]] = []
    for i in range(12):
        t = TOPICS[i % len(TOPICS)]
        data = {"question": f"What is good about {t}, case {i}?",
                "left": f"{t} is fun, number {i}", "right": f"no idea {i * 7}"}
        if broken and i == 5:
            del data["right"]
        anns = [{"id": 100 * i + k, "completed_by": {"id": k, "email": f"a{k}@x"},
                 "was_cancelled": False,
                 "result": [{"type": "pairwise", "value": {"selected": "left"}}]}
                for k in (1, 2)]
        if i == 3:
            anns.append({"id": 399, "completed_by": 3, "was_cancelled": True, "result": []})
        tasks.append({"id": 500 + i, "data": data, "annotations": anns})
    tasks.append({"id": 999, "data": {"question": "q", "left": "l", "right": "r"},
                  "annotations": []})
    path.write_text(json.dumps(tasks))


def _ls_spec(tmp_path: Path) -> Path:
    spec = {"name": "ls-prefs", "task": "preference", "store": "store",
            "sources": {"items": {"path": "export.json", "format": "label-studio"}},
            "columns": {"id": "id"},
            "preference": {"shape": "judgments",
                           "columns": {"prompt": "question", "response_a": "left",
                                       "response_b": "right"}}}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def test_label_studio_export_read_by_the_spec(tmp_path: Path) -> None:
    """`sources.items.format: label-studio`: the run reads the export itself, with the
    data fields the spec names; a broken task stops `labelgate run` with exit 2 naming
    the file, the task and row, and the field."""
    from typer.testing import CliRunner

    from flows.cli import app
    from flows.pipeline import quality_pipeline

    spec = _ls_spec(tmp_path)
    _ls_export(tmp_path / "export.json")
    report = quality_pipeline(str(spec))
    assert report["rows"] == {"input": 24, "valid": 24, "quarantined": 0, "excluded": 0,
                              "balanced": True}
    pref = report["preference"]
    assert pref["pairs"] == 12 and "tie" not in pref["consensus"]
    assert report["metrics"]["preference.percent_agreement"] == 1.0  # both chose left
    assert pref["label_studio"] == {"tasks": 13, "annotations": 24, "cancelled": 1,
                                    "without_pairwise": 0, "tasks_without_judgment": 1}
    assert [a["annotator"] for a in pref["annotators"]] == ["1", "2"]
    md = (tmp_path / "store/reports/ls-prefs/latest/report.md").read_text()
    assert "Label Studio export: 13 tasks, 24 annotations read as judgments" in md

    _ls_export(tmp_path / "export.json", broken=True)
    result = CliRunner().invoke(app, ["run", str(spec)])
    assert result.exit_code == 2, result.output
    assert ("export.json: task 505 (row 6): data has no field 'right' "
            "(preference.columns.response_b)") in " ".join(result.output.split())
