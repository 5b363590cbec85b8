"""task multilabel's library (issue 25): reading tags, the tag checks, MASI and alpha
(against nltk), per-tag kappa (against sklearn), iterative stratification (tag balance
against a seeded random split), splits with groups and sticky rows, label issues on
planted tag errors."""

from __future__ import annotations

import json
import math
import random
from typing import Any

import numpy as np
import polars as pl
import pytest

from labelgate.spec import parse_spec
from labelgate.stages.multilabel.agreement import (
    krippendorff_alpha,
    masi_distance,
    tag_agreement,
)
from labelgate.stages.multilabel.issues import find_tag_issues, out_of_fold_probabilities
from labelgate.stages.multilabel.splitting import make_multilabel_splits, split_frames
from labelgate.stages.multilabel.stage import analyze, tag_names
from labelgate.stages.multilabel.stratify import iterative_stratification, tag_share_deviation
from labelgate.stages.multilabel.tags import check_tags, parse_tags, tag_matrix

TAGS = ["sports", "politics", "tech", "health", "music"]


@pytest.mark.parametrize(("value", "delimiter", "tags", "problem"), [
    (["b", "a", "a"], None, ["a", "b"], None),
    ('["x", "y"]', None, ["x", "y"], None),
    ("x; y ;;", ";", ["x", "y"], None),
    ("x, y", None, None, "not a JSON array"),
    ('{"a": 1}', None, None, "not a JSON array"),
    ("[1, null]", None, None, "a null tag"),
    (None, None, None, "missing"),
    ("[]", None, [], None),
])
def test_parse_tags(value: Any, delimiter: str | None, tags: list[str] | None,
                    problem: str | None) -> None:
    dtype = pl.List(pl.String) if isinstance(value, list) else pl.String
    got, why = parse_tags(pl.Series("t", [value], dtype=dtype), delimiter=delimiter)
    assert got.to_list() == [tags]
    if problem is None:
        assert why.to_list() == [None]
    else:
        assert problem in why.item()


def test_check_tags_quarantines_with_reasons_naming_row_and_value() -> None:
    rows = pl.DataFrame({
        "id": ["a", "b", "c", "d", "e", "f"],
        "tags": ['["sports"]', '["Sports", "tech"]', "[]", None, "oops",
                 '["sports", "tech", "music"]'],
        "_batch": ["b1"] * 6, "_row": [1, 2, 3, 4, 5, 6],
    })
    r = check_tags(rows, column="tags", id_column="id", allowed=TAGS, min_tags=1, max_tags=2)
    assert r.valid.get_column("id").to_list() == ["a"]
    assert r.valid.schema["tags"] == pl.List(pl.String)
    assert r.rows_quarantined == 5
    assert r.counts == {"max_tags": 1, "min_tags": 1, "tags_missing": 1, "tags_parse": 1,
                        "unknown_tag": 1}
    q = {(row["id"], row["check"]): row for row in r.quarantine.to_dicts()}
    unknown = q[("b", "unknown_tag")]
    assert unknown["failure_value"] == "Sports" and unknown["row"] == 2
    assert "did you mean 'sports'" in unknown["reason"]
    assert "at most 2" in q[("f", "max_tags")]["reason"]
    assert q[("e", "tags_parse")]["failure_value"] == "oops"
    assert q[("c", "min_tags")]["batch"] == "b1"


def _random_sets(seed: int, items: int = 60) -> tuple[list[tuple[str, str, frozenset[str]]],
                                                      dict[str, list[frozenset[str]]]]:
    rng = random.Random(seed)
    data: list[tuple[str, str, frozenset[str]]] = []
    units: dict[str, list[frozenset[str]]] = {}
    for item in range(items):
        base = set(rng.sample(TAGS, rng.randint(1, 3)))
        for coder in ("x", "y", "z"):
            if rng.random() < 0.2:
                continue
            s = set(base)
            if rng.random() < 0.35:
                s ^= {rng.choice(TAGS)}
            s = s or {TAGS[0]}  # nltk's MASI divides by zero on two empty sets
            data.append((coder, str(item), frozenset(s)))
            units.setdefault(str(item), []).append(frozenset(s))
    return data, units


@pytest.mark.parametrize(("a", "b"), [("ab", "ab"), ("ab", "a"), ("ab", "ac"), ("ab", "cd"),
                                      ("abc", "a"), ("a", "abcd")])
def test_masi_distance_matches_nltk(a: str, b: str) -> None:
    nltk_distance = pytest.importorskip("nltk.metrics.distance")
    assert masi_distance(frozenset(a), frozenset(b)) == pytest.approx(
        nltk_distance.masi_distance(set(a), set(b)))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_alpha_with_masi_matches_nltk(seed: int) -> None:
    agreement = pytest.importorskip("nltk.metrics.agreement")
    nltk_distance = pytest.importorskip("nltk.metrics.distance")
    data, units = _random_sets(seed)
    expected = agreement.AnnotationTask(data=data, distance=nltk_distance.masi_distance).alpha()
    got = krippendorff_alpha(list(units.values()), masi_distance)
    assert got == pytest.approx(expected, abs=1e-12)
    assert 0.2 < got < 0.95  # real disagreement, not a degenerate case


def test_alpha_nominal_equals_krippendorff_package() -> None:
    import krippendorff

    rng = np.random.default_rng(4)
    truth = rng.integers(0, 3, 40)
    data = np.array([np.where(rng.random(40) < 0.8, truth, rng.integers(0, 3, 40))
                     for _ in range(3)], dtype=float)
    data[0, :5] = np.nan
    units = [[int(v) for v in data[:, i] if not math.isnan(v)] for i in range(40)]
    got = krippendorff_alpha(units, lambda a, b: float(a != b))
    assert got == pytest.approx(krippendorff.alpha(reliability_data=data,
                                                   level_of_measurement="nominal"))


def test_tag_agreement_per_tag_kappa_is_cohens() -> None:
    from sklearn.metrics import cohen_kappa_score

    data, _ = _random_sets(7, items=80)
    frame = pl.DataFrame({"item": [d[1] for d in data], "annotator": [d[0] for d in data],
                          "tags": [sorted(d[2]) for d in data]})
    got = tag_agreement(frame, item_column="item", annotator_column="annotator",
                        tags_column="tags", tags=TAGS, min_shared_items=5)
    by = {(d[0], d[1]): d[2] for d in data}
    kappas = []
    for a, b in (("x", "y"), ("x", "z"), ("y", "z")):
        shared = sorted({i for c, i in by if c == a} & {i for c, i in by if c == b})
        kappas.append(cohen_kappa_score([("tech" in by[(a, i)]) for i in shared],
                                        [("tech" in by[(b, i)]) for i in shared]))
    tech = got.per_tag.filter(pl.col("tag") == "tech").row(0, named=True)
    assert tech["pairs"] == 3
    assert tech["kappa"] == pytest.approx(float(np.mean(kappas)))
    assert got.summary["annotators"] == 3
    assert got.summary["items"] == len({d[1] for d in data})
    assert got.min_tag_kappa <= tech["kappa"]


def _tag_matrix(n: int, seed: int) -> np.ndarray[Any, Any]:
    rng = np.random.default_rng(seed)
    share = np.array([0.5, 0.2, 0.05, 0.02, 0.01, 0.3])
    return (rng.random((n, len(share))) < share).astype(np.int8)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_iterative_stratification_balances_tags_better_than_random(seed: int) -> None:
    y = _tag_matrix(1000, seed)
    fractions = [0.8, 0.1, 0.1]
    split = iterative_stratification(y, np.ones(len(y)), fractions, seed=seed)
    random_split = np.random.default_rng(seed).choice(3, size=len(y), p=fractions)
    assert np.bincount(split).tolist() == pytest.approx([800, 100, 100], abs=3)
    ours = tag_share_deviation(y, split, fractions)
    theirs = tag_share_deviation(y, random_split, fractions)
    assert ours < 0.06
    assert ours < theirs / 2


def test_iterative_stratification_fills_around_sticky_rows_and_skips_closed_splits() -> None:
    y = np.array([[1, 0]] * 10 + [[0, 1]] * 10, dtype=np.int8)
    # test already holds 5 rows with tag 0: the new tag-0 rows go elsewhere
    split = iterative_stratification(y, np.ones(20), [0.5, 0.0, 0.5], seed=1,
                                     filled_counts=np.array([[0, 0], [0, 0], [5, 0]]),
                                     filled_sizes=np.array([0, 0, 5]))
    assert 1 not in split.tolist()
    assert (split[:10] == 0).sum() >= 7


def _frame(n: int = 200, seed: int = 3) -> pl.DataFrame:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        tags = sorted(rng.sample(TAGS, rng.choice([1, 1, 2, 3])))
        rows.append({"id": f"r{i:03d}", "text": " ".join(f"word_{t}" for t in tags),
                     "group": f"g{i // 4}", "tags": tags})
    return pl.DataFrame(rows, schema={"id": pl.String, "text": pl.String, "group": pl.String,
                                      "tags": pl.List(pl.String)})


def _spec(**multilabel: Any) -> Any:
    return parse_spec({
        "name": "ml", "task": "multilabel", "sources": {"items": {"path": "x.jsonl"}},
        "columns": {"id": "id", "text": ["text"], "group": "group"},
        "multilabel": {"column": "tags", "tags": TAGS, **multilabel},
        "splits": {"fractions": {"train": 0.6, "validation": 0.2, "test": 0.2},
                   "flagged": "drop_from_test"},
        "publish": {"formats": ["parquet", "jsonl"]},
    })


def test_multilabel_splits_keep_groups_sticky_rows_and_balance_tags() -> None:
    spec = _spec()
    valid = _frame()
    first = make_multilabel_splits(valid, spec=spec, run_id="r1", previous=None,
                                   flagged_ids=pl.Series(["r000", "r001"]), dups=None,
                                   names=TAGS)
    a = first.result.assignments
    per_group = valid.join(a.select(pl.col("key").alias("id"), "split"), on="id")
    assert per_group.group_by("group").agg(pl.col("split").n_unique()).get_column(
        "split").max() == 1
    assert first.metrics["splits.leakage"] == 0
    assert first.metrics["splits.max_tag_share_deviation"] < 0.12
    assert first.metrics["splits.min_test_rows_per_class"] >= 10
    # sticky: a second run with new rows keeps every earlier split
    previous = a.select("key", "split", "first_run")
    more = pl.concat([valid, _frame(40, seed=9).with_columns(
        ("n" + pl.col("id")).alias("id"), ("n" + pl.col("group")).alias("group"))])
    second = make_multilabel_splits(more, spec=spec, run_id="r2", previous=previous,
                                    flagged_ids=None, dups=None, names=TAGS)
    joined = second.result.assignments.join(previous, on="key", suffix="_before")
    assert joined.height == 200
    assert (joined.get_column("split") == joined.get_column("split_before")).all()
    assert second.result.summary["new_rows"] == 40


def test_flagged_rows_follow_the_policy_and_split_frames_publish_lists() -> None:
    spec = _spec()
    valid = _frame()
    out = make_multilabel_splits(valid, spec=spec, run_id="r1", previous=None,
                                 flagged_ids=pl.Series(valid.get_column("id")), dups=None,
                                 names=TAGS)
    # drop_from_test: every test row is flagged, so test is empty; the others are kept
    assert out.kept.filter(pl.col("split") == "test").height == 0
    test_rows = out.result.assignments.filter(pl.col("split") == "test").height
    assert out.excluded.height == test_rows > 0
    frames = split_frames(out.kept, spec=spec)
    assert frames["train"].columns == ["id", "text", "tags", "group", "flagged"]
    assert frames["train"].schema["tags"] == pl.List(pl.String)


def _planted(seed: int, n: int = 600) -> tuple[list[str], np.ndarray[Any, Any],
                                                np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Texts whose words give their tags, with tags added to or removed from 8% of rows."""
    rng = np.random.default_rng(seed)
    vocab = {t: [f"{t}{k}" for k in range(6)] for t in TAGS}
    y = np.zeros((n, len(TAGS)), dtype=np.int8)
    texts = []
    for i in range(n):
        k = rng.choice([1, 2, 2, 3])
        chosen = rng.choice(len(TAGS), size=k, replace=False)
        y[i, chosen] = 1
        words = [w for j in chosen for w in rng.choice(vocab[TAGS[j]], 3)]
        words += [f"filler{rng.integers(50)}" for _ in range(4)]
        rng.shuffle(words)
        texts.append(" ".join(words))
    noisy = y.copy()
    planted = rng.random(n) < 0.08
    for r in np.flatnonzero(planted):
        j = int(rng.integers(len(TAGS)))
        if noisy[r, j] and noisy[r].sum() == 1:
            j = int((j + 1) % len(TAGS))
        noisy[r, j] ^= 1
    return texts, y, noisy, planted


def test_label_issues_find_planted_tag_errors() -> None:
    texts, _, noisy, planted = _planted(5)
    probs, modelled = out_of_fold_probabilities(texts, noisy, folds=5, seed=1)
    assert modelled.all()
    issues = find_tag_issues(noisy, probs, tags=TAGS, modelled=modelled)
    flagged = issues.table.get_column("is_label_issue").to_numpy()
    tp = int((flagged & planted).sum())
    precision, recall = tp / max(flagged.sum(), 1), tp / planted.sum()
    assert precision > 0.6 and recall > 0.6
    # for a flagged planted row, the flipped tag is named as missing or added
    named = issues.per_tag.select(pl.col("missing").sum() + pl.col("added").sum()).item()
    assert named >= tp


def test_analyze_section_and_metrics() -> None:
    texts, _, noisy, _ = _planted(6, n=300)
    valid = pl.DataFrame({"id": [f"r{i}" for i in range(300)], "text": texts,
                          "group": [None] * 300,
                          "tags": [[TAGS[j] for j in np.flatnonzero(r)] for r in noisy]},
                         schema_overrides={"group": pl.String})
    spec = _spec(issues={"folds": 3, "top": 5})
    ann = pl.DataFrame({"item": ["r0", "r0", "r1", "r1"], "annotator": ["a", "b", "a", "b"],
                        "tags": [json.dumps(["tech"]), json.dumps(["tech"]),
                                 json.dumps(["music"]), json.dumps(["music", "tech"])]})
    spec = parse_spec({**spec.model_dump(mode="json", exclude_none=True),
                       "sources": {"items": {"path": "x.jsonl"},
                                   "annotations": {"path": "a.jsonl"}},
                       "agreement": {"item": "item", "annotator": "annotator",
                                     "label": "tags"}})
    result = analyze(valid, spec=spec, annotations=ann)
    m = result.metrics
    assert m["multilabel.tags"] == 5
    assert m["multilabel.mean_tags_per_row"] == pytest.approx(noisy.sum() / 300)
    assert 0 < m["multilabel.issue_rate"] < 0.3
    assert len(result.section["issues"]["top"]) == 5
    assert result.section["agreement"]["items"] == 2
    assert tag_names(valid, spec=spec) == TAGS
    assert tag_matrix(valid.get_column("tags"), TAGS).sum() == noisy.sum()


@pytest.mark.parametrize(("extra", "message"), [
    ({"columns": {"id": "id", "text": ["text"], "label": "y"}}, "columns.label"),
    ({"columns": {"id": "id"}}, "columns.text"),
    ({"multilabel": {"min_tags": 3, "max_tags": 2}}, "max_tags"),
    ({"multilabel": {"tags": ["a", "a"]}}, "listed twice"),
    ({"label_issues": {}}, "label_issues"),
])
def test_spec_errors(extra: dict[str, Any], message: str) -> None:
    base = {"name": "ml", "task": "multilabel", "sources": {"items": {"path": "x.jsonl"}},
            "columns": {"id": "id", "text": ["text"]}}
    with pytest.raises(Exception, match=message):
        parse_spec({**base, **extra})


def test_multilabel_splits_keep_duplicate_clusters_together() -> None:
    from labelgate.stages.dedup import find_duplicates
    from labelgate.stages.steps import DedupOutcome

    valid = _frame(120, seed=11).with_columns(pl.lit(None, pl.String).alias("group"))
    # every 10th row repeats the text of the row before it: exact duplicates
    texts = valid.get_column("text").to_list()
    for i in range(10, 120, 10):
        texts[i] = texts[i - 1] + " extra words to keep it long enough"
        texts[i - 1] = texts[i]
    valid = valid.with_columns(pl.Series("text", texts))
    dups = find_duplicates(valid, id_column="id", text_columns=["text"], near=False)
    assert dups.clusters.height >= 22
    spec = _spec()
    out = make_multilabel_splits(valid, spec=spec, run_id="r1", previous=None,
                                 flagged_ids=None, dups=DedupOutcome(dups, {}, {}),
                                 names=TAGS)
    split = dict(out.result.assignments.select("key", "split").rows())
    for members in dups.clusters.group_by("cluster_id").agg("id").get_column("id"):
        assert len({split[str(m)] for m in members}) == 1
    assert out.metrics["splits.leakage"] == 0
