"""task dimensions (issue 25, part 2): the `labels:` section and `gate.dimensions`, each
dimension's probable errors and agreement at its level, splits where a row flagged on a
dimension follows that dimension's policy, and the side-by-side report section."""

from __future__ import annotations

import random
import re
from typing import Any

import krippendorff
import numpy as np
import polars as pl
import pytest

from labelgate.errors import SpecError
from labelgate.gate import evaluate_gate, gate_check
from labelgate.report.sections import build_sections
from labelgate.spec import parse_spec
from labelgate.stages.dimensions.splitting import make_dimension_splits, split_frames
from labelgate.stages.dimensions.stage import analyze, dimension_agreement

TOPICS = ["sport", "music", "food"]
LEVELS = ["low", "mid", "high"]


def _spec(labels: dict[str, Any] | None = None, **extra: Any) -> Any:
    return parse_spec({
        "name": "dims", "task": "dimensions", "sources": {"items": {"path": "items.jsonl"}},
        "columns": {"id": "id", "text": ["text"], "group": "group"},
        "labels": labels or {
            "topic": {"kind": "nominal", "values": TOPICS, "flagged": "drop",
                      "issues": {"folds": 3}},
            "level": {"kind": "ordinal", "values": LEVELS, "flagged": "keep",
                      "issues": {"enabled": False}},
            "score": {"kind": "interval", "min": 0, "max": 10, "issues": {"folds": 3}}},
        **extra})


def _frame(n: int = 240, seed: int = 5) -> tuple[pl.DataFrame, list[int], list[int]]:
    """Rows whose text names the topic and whose score follows the count of 'great' words;
    the topic of rows 0..9 is swapped and the score of rows 10..17 is off by 6."""
    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    for i in range(n):
        topic = TOPICS[i % 3]
        great = rng.randint(0, 4)
        words = [f"{topic}{rng.randint(0, 2)}" for _ in range(4)] + ["great"] * great
        words += [f"w{rng.randint(0, 30)}" for _ in range(3)]
        rng.shuffle(words)
        rows.append({"id": f"r{i:03d}", "group": f"g{i // 2}", "text": " ".join(words),
                     "topic": topic, "level": LEVELS[min(great, 2)],
                     "score": float(2 * great) + rng.uniform(-0.3, 0.3)})
    swapped = list(range(10))
    for i in swapped:
        rows[i]["topic"] = TOPICS[(TOPICS.index(rows[i]["topic"]) + 1) % 3]
    shifted = list(range(10, 18))
    for i in shifted:
        score = rows[i]["score"]
        rows[i]["score"] = score + 6.0 if score < 4 else score - 6.0
    return pl.DataFrame(rows), swapped, shifted


def test_gate_dimensions_flatten_to_registered_checks() -> None:
    spec = _spec(gate={"max_quarantine_rate": 0.1, "dimensions": {
        "topic": {"min_krippendorff_alpha": 0.6, "max_label_issue_rate": 0.2},
        "score": {"min_krippendorff_alpha": 0.8}}})
    assert spec.gate == {"max_quarantine_rate": 0.1,
                         "dimensions.topic.min_krippendorff_alpha": 0.6,
                         "dimensions.topic.max_label_issue_rate": 0.2,
                         "dimensions.score.min_krippendorff_alpha": 0.8}
    check = gate_check("dimensions.topic.max_label_issue_rate")
    assert check is not None and check.metric == "dimensions.topic.label_issue_rate"
    assert gate_check("dimensions.topic.min_fleiss_kappa") is None  # no per-dimension form
    verdict = evaluate_gate({"quarantine_rate": 0.0, "dimensions.topic.krippendorff_alpha": 0.5,
                             "dimensions.topic.label_issue_rate": 0.1}, spec.gate)
    by_name = {c.name: c for c in verdict.checks}
    assert not verdict.passed
    assert by_name["dimensions.topic.min_krippendorff_alpha"].message == (
        "dimensions.topic.krippendorff_alpha 0.5 < gate.dimensions.topic.min_krippendorff_alpha"
        " 0.6")
    assert by_name["dimensions.topic.max_label_issue_rate"].passed
    assert not by_name["dimensions.score.min_krippendorff_alpha"].passed  # not computed
    assert parse_spec(spec.model_dump()).gate == spec.gate  # the flat form reads back


@pytest.mark.parametrize(("change", "message"), [
    ({"gate": {"dimensions": {"topic": {"min_fleiss_kappa": 0.5}}}},
     "gate.dimensions.topic: unknown check 'min_fleiss_kappa'"),
    ({"gate": {"dimensions": {"tone": {"min_krippendorff_alpha": 0.5}}}},
     "gate.dimensions: ['tone'] not under labels"),
    ({"labels": {"level": {"kind": "ordinal"}}}, "list the values in order"),
    ({"labels": {"score": {"kind": "interval", "values": ["a", "b"]}}}, "kind interval"),
    ({"labels": {"a": {"kind": "nominal", "stratify": True},
                 "b": {"kind": "ordinal", "values": [1, 2], "stratify": True}}},
     "stratify on one dimension at most"),
    ({"labels": {"text": {"kind": "nominal"}}}, "also named in columns"),
    ({"task": "classification", "columns": {"id": "id", "text": ["text"], "label": "topic"}},
     "labels: applies to task dimensions only"),
    ({"task": "multilabel", "labels": {},
      "gate": {"dimensions": {"topic": {"min_krippendorff_alpha": 0.5}}}},
     "gate.dimensions: applies to task dimensions only"),
])
def test_spec_errors(change: dict[str, Any], message: str) -> None:
    base = _spec().model_dump(exclude_defaults=True)
    with pytest.raises(SpecError, match=re.escape(message)):
        parse_spec({**base, **change})


def test_contract_follows_each_dimension() -> None:
    spec = _spec()
    assert spec.contracted_columns() == ["id", "text", "group", "topic", "level", "score"]
    assert spec.contract_for("topic").isin == TOPICS
    assert spec.contract_for("level").isin == LEVELS
    score = spec.contract_for("score")
    assert (score.dtype, score.min, score.max, score.nullable) == ("float", 0.0, 10.0, False)


def test_analyze_finds_planted_errors_per_dimension() -> None:
    frame, swapped, shifted = _frame()
    result = analyze(frame, spec=_spec())
    flagged = result.flagged()
    topic = set(flagged["topic"].to_list())
    assert {f"r{i:03d}" for i in swapped} <= topic
    assert len(topic) <= 20
    score = set(flagged["score"].to_list())
    assert len(score & {f"r{i:03d}" for i in shifted}) >= 6
    assert "level" not in flagged  # issues off for it
    m = result.metrics
    assert m["dimensions.topic.label_issues"] == len(topic)
    assert m["dimensions.topic.min_rows_per_class"] == 79  # 80 sport, 4 swapped out, 3 in
    assert m["dimensions.score.label_issue_rate"] == pytest.approx(len(score) / 240)
    parts = {p["name"]: p for p in result.section["dimensions"]}
    assert parts["level"]["issues"] is None and parts["topic"]["policy"] == "drop"
    assert [v["value"] for v in parts["level"]["values"]] == LEVELS  # declared order
    assert result.section["flagged_rows"] == len(topic | score)


def _annotations(seed: int = 2) -> pl.DataFrame:
    rng = random.Random(seed)
    rows = []
    for i in range(30):
        topic, level, score = TOPICS[i % 3], LEVELS[i % 3], float(i % 7)
        for who in ("a", "b", "c"):
            noisy = rng.random() < 0.2
            rows.append({"item": f"r{i:03d}", "annotator": who,
                         "topic": TOPICS[(i + 1) % 3] if noisy else topic,
                         "level": LEVELS[(i + 1) % 3] if noisy else level,
                         "score": score + rng.uniform(-1, 1) if who != "c" or i < 20 else None})
    return pl.DataFrame(rows)


@pytest.mark.parametrize(("name", "level"), [("topic", "nominal"), ("level", "ordinal"),
                                             ("score", "interval")])
def test_agreement_per_dimension_is_krippendorff_at_its_level(name: str, level: str) -> None:
    spec = _spec(sources={"items": {"path": "items.jsonl"},
                          "annotations": {"path": "annotations.jsonl"}},
                 agreement={"item": "item", "annotator": "annotator", "min_shared_items": 5,
                            "bootstrap": {"n": 50}})
    ann = _annotations()
    report = dimension_agreement(ann, name, spec=spec, dim=spec.dimension_settings()[name])
    assert report is not None and report.level == level
    wide = ann.pivot(on="item", index="annotator", values=name).sort("annotator").drop(
        "annotator")
    if level == "interval":
        data = wide.to_numpy().astype(float)
    else:
        order = TOPICS if name == "topic" else LEVELS
        data = wide.select(pl.all().replace_strict({v: float(k) for k, v in enumerate(order)},
                                                   default=None)).to_numpy().astype(float)
    expected = krippendorff.alpha(reliability_data=data, level_of_measurement=level)
    assert report.metrics["krippendorff_alpha"] == pytest.approx(expected, abs=1e-9)


def test_splits_follow_each_dimensions_policy() -> None:
    frame, _, _ = _frame()
    spec = _spec(splits={"fractions": {"train": 0.6, "validation": 0.2, "test": 0.2},
                         "flagged": "drop_from_test"})
    flagged = {"topic": pl.Series(["r000", "r001", "r050"]),
               "level": pl.Series(["r002", "r050"]), "score": pl.Series(["r003", "r004"])}
    out = make_dimension_splits(frame, spec=spec, run_id="run1", previous=None,
                                flagged=flagged, dups=None)
    assert out.kept.height + out.excluded.height == frame.height
    reasons = dict(zip(out.excluded.get_column("id"), out.excluded.get_column("exclusion_reason"),
                       strict=True))
    # topic: drop, whatever the split; r050 is excluded once, by the first dimension
    assert {"r000", "r001", "r050"} <= set(reasons)
    assert reasons["r050"] == "probable topic label error (policy drop)"
    # level: keep; score: splits.flagged (drop_from_test) drops only test rows
    assert "r002" not in reasons
    split_of = dict(zip(frame.get_column("id"), out.result.assignments.sort("key")
                        .get_column("split"), strict=True))
    for rid in ("r003", "r004"):
        assert (rid in reasons) == (split_of[rid] == "test")
    kept = out.kept.filter(pl.col("id") == "r002")
    assert kept.get_column("flagged_level").to_list() == [True]
    counts = {c["dimension"]: c for c in out.section["by_dimension"]}
    assert counts["topic"]["excluded"] == 3 and counts["level"]["excluded"] == 0
    assert out.metrics["splits.excluded_topic"] == 3
    frames = split_frames(out.kept, spec=spec)
    assert frames["train"].columns == ["id", "text", "topic", "level", "score", "group",
                                       "flagged_topic", "flagged_level", "flagged_score"]
    assert sum(f.height for f in frames.values()) == out.kept.height


def test_relabel_is_refused_for_a_dimension_without_its_own_policy() -> None:
    with pytest.raises(SpecError, match=r"labels.score: splits.flagged relabel"):
        _spec(splits={"flagged": "relabel"})


def test_report_shows_the_dimensions_side_by_side() -> None:
    frame, _, _ = _frame()
    section = analyze(frame, spec=_spec()).section
    report = {"dataset": "dims", "rows": {}, "dimensions": section}
    built = [s for s in build_sections(report) if s.id == "dimensions"]
    assert len(built) == 1
    tables = [p for p in built[0].parts if p.kind == "table"]
    side = tables[0].table
    assert side is not None
    names = [row[0].text for row in side.rows]
    assert names == ["topic", "level", "score"]
    assert np.isfinite(section["dimensions"][2]["distribution"]["mean"])
