"""Versioned publishing: atomic switch, killed publish, byte-identical files, JSONL styles."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml

import labelgate.stages.publish as publish
from labelgate.errors import GateFailedError, InputError
from labelgate.stages.publish import (
    AlpacaStyle,
    ChatStyle,
    JsonlStyle,
    PlainStyle,
    diff_versions,
    list_versions,
    publish_version,
    read_manifest,
)


def splits(relabel: bool = False) -> dict[str, pl.DataFrame]:
    train = pl.DataFrame({
        "id": ["t3", "t1", "t2"],
        "text": ["lost my bag again", "great crew, thanks", "Zürich → NYC on time? 😊"],
        "sentiment": ["negative", "positive", "neutral"],
        "confidence": [0.9, None, 0.75],
    })
    if relabel:
        train = train.with_columns(
            pl.when(pl.col("id") == "t2").then(pl.lit("positive")).otherwise("sentiment")
            .alias("sentiment")
        )
    test = pl.DataFrame({"id": ["s1"], "text": ["delayed {again}"], "sentiment": ["negative"],
                         "confidence": [1.0]})
    return {"test": test, "train": train}


def publish_(root: Path, **kwargs: Any) -> publish.PublishedVersion:
    args: dict[str, Any] = {
        "root": root, "key_column": "id", "label_column": "sentiment", "run_id": "r1",
        "spec_hash": "abc123", "gate_passed": True, "lineage": ["b2", "b1"],
        "metrics": {"quarantine_rate": 0.0, "alpha": float("nan")},
        "gate": {"checks": [{"check": "min_rows", "passed": True}]},
    }
    args.update(kwargs)
    data = args.pop("splits", None) or splits()
    return publish_version(data, **args)


def test_publish_writes_version_manifest_and_current(tmp_path: Path) -> None:
    v = publish_(tmp_path)
    assert v.version == 1
    assert sorted(p.name for p in v.path.iterdir()) == [
        "manifest.json", "published_at.txt", "test.jsonl", "test.parquet", "train.jsonl",
        "train.parquet",
    ]
    assert os.readlink(tmp_path / "current") == "v1"
    m = json.loads((v.path / "manifest.json").read_text())
    assert m == v.manifest
    assert m["splits"] == {
        "train": {"rows": 3, "classes": {"negative": 1, "neutral": 1, "positive": 1}},
        "test": {"rows": 1, "classes": {"negative": 1}},
    }
    assert m["lineage"] == {"batches": ["b1", "b2"]}
    assert m["metrics"]["alpha"] is None  # NaN is not JSON
    assert m["gate"]["passed"] is True
    assert set(m["files"]) == {"train.parquet", "train.jsonl", "test.parquet", "test.jsonl"}
    train = pl.read_parquet(v.path / "train.parquet")
    assert train.get_column("id").to_list() == ["t1", "t2", "t3"]  # sorted by key
    v2 = publish_(tmp_path, splits=splits(relabel=True))
    assert v2.version == 2 and not v2.unchanged
    assert os.readlink(tmp_path / "current") == "v2"


def test_the_same_content_again_publishes_nothing(tmp_path: Path) -> None:
    first = publish_(tmp_path)
    shuffled = {k: df.reverse() for k, df in reversed(list(splits().items()))}
    again = publish_(tmp_path, splits=shuffled, run_id="r2")
    assert again.unchanged and again.version == 1 and again.path == first.path
    assert again.manifest["run_id"] == "r1"  # current's manifest, not rewritten
    assert sorted(p.name for p in tmp_path.iterdir()) == ["current", "v1"]
    changed = publish_(tmp_path, splits=splits(relabel=True), run_id="r3")
    assert (changed.version, changed.unchanged) == (2, False)
    # back to v1's content: a new version (v3), since current (v2) differs
    assert publish_(tmp_path, run_id="r4").version == 3


def test_republish_is_byte_identical(tmp_path: Path) -> None:
    a = publish_(tmp_path / "a")
    shuffled = {k: df.reverse() for k, df in reversed(list(splits().items()))}
    b = publish_(tmp_path / "b", splits=shuffled)
    for name in a.manifest["files"]:
        assert (a.path / name).read_bytes() == (b.path / name).read_bytes(), name
    assert a.manifest["content_hash"] == b.manifest["content_hash"]
    assert (a.path / "manifest.json").read_text() == (b.path / "manifest.json").read_text()


@pytest.mark.parametrize("writer", ["_write_parquet", "_write_jsonl"])
def test_killed_publish_leaves_current_and_previous_versions_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, writer: str
) -> None:
    first = publish_(tmp_path)
    before = {p.name: p.read_bytes() for p in first.path.iterdir()}
    real = getattr(publish, writer)
    calls = {"n": 0}

    def dies_on_second_file(df: pl.DataFrame, path: Path) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            path.write_bytes(b"half a file")
            raise KeyboardInterrupt("killed mid-write")
        real(df, path)

    monkeypatch.setattr(publish, writer, dies_on_second_file)
    with pytest.raises(KeyboardInterrupt):
        publish_(tmp_path, run_id="r2")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["current", "v1"]
    assert os.readlink(tmp_path / "current") == "v1"
    assert {p.name: p.read_bytes() for p in first.path.iterdir()} == before
    monkeypatch.setattr(publish, writer, real)
    assert publish_(tmp_path, splits=splits(relabel=True), run_id="r3").version == 2


def test_a_stale_temporary_folder_from_a_killed_process_is_invisible(tmp_path: Path) -> None:
    publish_(tmp_path)
    (tmp_path / ".tmp-v2-dead").mkdir()
    (tmp_path / ".tmp-v2-dead" / "train.parquet").write_bytes(b"half")
    assert list_versions(tmp_path).get_column("version").to_list() == [1]
    assert publish_(tmp_path, splits=splits(relabel=True)).version == 2
    assert not (tmp_path / ".tmp-v2-dead").exists()


def test_failed_gate_publishes_nothing(tmp_path: Path) -> None:
    with pytest.raises(GateFailedError, match="gate failed"):
        publish_(tmp_path, gate_passed=False)
    assert not tmp_path.joinpath("current").exists()
    assert list_versions(tmp_path).is_empty()


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


@pytest.mark.parametrize(
    ("style", "expected_first"),
    [
        (PlainStyle(), {"id": "t1", "text": "great crew, thanks", "sentiment": "positive",
                        "confidence": None}),
        (PlainStyle(columns=("text", "sentiment")),
         {"text": "great crew, thanks", "sentiment": "positive"}),
        (AlpacaStyle(instruction="Classify the sentiment of tweet {id}. Answer {{label}}.",
                     input="text", output="sentiment"),
         {"instruction": "Classify the sentiment of tweet t1. Answer {label}.",
          "input": "great crew, thanks", "output": "positive"}),
        (ChatStyle(system="You label tweets.", user="text", assistant="sentiment"),
         {"messages": [{"role": "system", "content": "You label tweets."},
                       {"role": "user", "content": "great crew, thanks"},
                       {"role": "assistant", "content": "positive"}]}),
        (ChatStyle(user="text", assistant="sentiment"),
         {"messages": [{"role": "user", "content": "great crew, thanks"},
                       {"role": "assistant", "content": "positive"}]}),
    ],
)
def test_jsonl_styles_round_trip(
    tmp_path: Path, style: JsonlStyle, expected_first: dict[str, Any]
) -> None:
    v = publish_(tmp_path, jsonl_style=style)
    train = pl.read_parquet(v.path / "train.parquet")
    records = read_jsonl(v.path / "train.jsonl")
    assert len(records) == train.height
    assert records[0] == expected_first
    keys = set(expected_first)
    for rec, row in zip(records, train.to_dicts(), strict=True):
        assert set(rec) == keys
        if isinstance(style, AlpacaStyle):
            assert (rec["input"], rec["output"]) == (row["text"], row["sentiment"])
        elif isinstance(style, ChatStyle):
            roles = [m["role"] for m in rec["messages"]]
            assert roles[-2:] == ["user", "assistant"]
            assert rec["messages"][-2]["content"] == row["text"]  # unicode survives
            assert all(set(m) == {"role", "content"} for m in rec["messages"])
        else:
            assert rec == {k: row[k] for k in keys}
    assert v.manifest["jsonl"]["style"] == style.style


@pytest.mark.parametrize(
    ("style", "message"),
    [
        (AlpacaStyle(instruction="Label {tweet}", input="text", output="sentiment"),
         r"publish\.jsonl\.instruction: placeholder \{tweet\}"),
        (AlpacaStyle(instruction="Label", input="body", output="sentiment"),
         r"publish\.jsonl\.input: column 'body'"),
        (ChatStyle(user="text", assistant="answer"), r"publish\.jsonl\.assistant"),
        (PlainStyle(columns=("nope",)), r"publish\.jsonl\.columns: \['nope'\]"),
    ],
)
def test_bad_templates_name_the_key_and_write_nothing(
    tmp_path: Path, style: JsonlStyle, message: str
) -> None:
    with pytest.raises(InputError, match=message):
        publish_(tmp_path, jsonl_style=style)
    assert list(tmp_path.glob("v*")) == []


def test_repeated_keys_are_rejected(tmp_path: Path) -> None:
    bad = {"train": pl.DataFrame({"id": ["a", "a"], "sentiment": ["x", "y"]})}
    with pytest.raises(InputError, match="'id' must be unique"):
        publish_(tmp_path, splits=bad)


def test_list_and_diff_versions(tmp_path: Path) -> None:
    publish_(tmp_path, run_id="r1")
    second = splits(relabel=True)
    second["train"] = pl.concat([
        second["train"].filter(pl.col("id") != "t3"),
        pl.DataFrame({"id": ["t9"], "text": ["new one"], "sentiment": ["neutral"],
                      "confidence": [0.5]}),
    ])
    second["validation"] = pl.DataFrame({"id": ["u1"], "text": ["v"], "sentiment": ["neutral"],
                                         "confidence": [0.1]})
    publish_(tmp_path, run_id="r2", splits=second)
    listed = list_versions(tmp_path)
    assert listed.columns == ["version", "run_id", "spec_hash", "rows", "rows_train",
                              "rows_validation", "rows_test", "gate_passed", "is_current",
                              "content_hash"]
    assert listed.select("version", "run_id", "rows", "rows_train", "rows_validation",
                         "is_current").rows() == [(1, "r1", 4, 3, None, False),
                                                  (2, "r2", 5, 3, 1, True)]
    diff = diff_versions(tmp_path, "v1", "current", key_column="id", label_column="sentiment")
    assert diff.rows() == [
        ("train", 3, 3, 1, 1, 1),  # t9 added, t3 removed, t2 relabeled
        ("validation", 0, 1, 1, 0, 0),
        ("test", 1, 1, 0, 0, 0),
    ]
    assert read_manifest(tmp_path, 2)["run_id"] == "r2"
    with pytest.raises(InputError, match=r"no version 'v7'.*\['v1', 'v2'\]"):
        diff_versions(tmp_path, "v7", 1, key_column="id", label_column="sentiment")


def test_each_version_has_a_dataset_card_that_datasets_loads(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    """README.md with the Hugging Face YAML header: `datasets.load_dataset` on the version
    folder loads the splits as published; the body says what the gate said."""
    datasets = pytest.importorskip("datasets", reason="the dev extra installs datasets")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    card = {"name": "tiny", "license": "cc-by-4.0", "description": "Tweets about airlines."}
    v = publish_(tmp_path / "pub", card=card)
    text = (v.path / "README.md").read_text()
    header = yaml.safe_load(text.split("---\n")[1])
    assert header["license"] == "cc-by-4.0" and header["pretty_name"] == "tiny"
    assert [f["split"] for f in header["configs"][0]["data_files"]] == ["train", "test"]
    assert "Tweets about airlines." in text and "min_rows" in text
    assert "README.md" not in v.manifest["files"]  # not part of the content hash
    loaded = datasets.load_dataset(str(v.path))
    assert sorted(loaded) == ["test", "train"]
    assert loaded["train"].num_rows == 3 and loaded["test"].num_rows == 1
    assert loaded["train"]["id"] == ["t1", "t2", "t3"]
    assert loaded["train"].features["confidence"].dtype == "float64"
