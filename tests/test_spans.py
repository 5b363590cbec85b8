"""Entity spans' library (issue 25): BIO round trips, the readers (rows, Label Studio,
CoNLL), the span checks on planted cases, span agreement (F1 by hand, token kappa against
sklearn), the published formats, and token issues on planted type swaps."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import polars as pl
import pytest

from labelgate.stages.spans.agreement import span_agreement
from labelgate.stages.spans.checks import check_spans
from labelgate.stages.spans.formats import bio_names, hf_token_columns, spacy_records
from labelgate.stages.spans.issues import find_token_issues, out_of_fold_token_probabilities
from labelgate.stages.spans.read import SPAN_SCHEMA, from_conll, from_label_studio, from_rows
from labelgate.stages.spans.tokens import bio_to_spans, join_tokens, spans_to_bio, tokenize

TEXT = "Ada Lovelace met Charles Babbage in London."


def test_bio_round_trip_and_boundaries() -> None:
    tokens = tokenize(TEXT)
    spans = [(0, 12, "PER"), (17, 32, "PER"), (36, 42, "LOC")]
    tags = spans_to_bio(tokens, spans)
    assert tags == ["B-PER", "I-PER", "O", "B-PER", "I-PER", "O", "B-LOC", "O"]
    assert bio_to_spans(tokens, tags) == spans
    # IOB1: an I- after O starts a span; a type change starts a new one
    assert bio_to_spans(tokens[:3], ["I-PER", "I-ORG", "O"]) == [(0, 3, "PER"), (4, 12, "ORG")]


def test_from_rows_and_label_studio() -> None:
    rows = pl.DataFrame({"id": [1], "text": [TEXT],
                         "spans": ['[{"start": 0, "end": 12, "label": "PER", '
                                   '"text": "Ada Lovelace"}]']})
    docs, spans = from_rows(rows, id_column="id", text_column="text", spans_column="spans")
    assert docs.row(0) == ("1", TEXT, "1")
    assert spans.select("start", "end", "label", "recorded").row(0) == (0, 12, "PER",
                                                                         "Ada Lovelace")
    tasks = [{"id": 7, "data": {"text": TEXT}, "annotations": [
        {"completed_by": 3, "result": [
            {"type": "labels", "value": {"start": 36, "end": 42, "text": "London",
                                         "labels": ["LOC"]}},
            {"type": "choices", "value": {"choices": ["x"]}}]},
        {"completed_by": {"email": "b@x"}, "result": [
            {"type": "labels", "value": {"start": 36, "end": 42, "labels": ["GPE"]}}]}]}]
    docs, spans = from_label_studio(tasks)
    assert docs.get_column("doc").to_list() == ["7"]
    assert spans.select("annotator", "label").rows() == [("3", "LOC"), ("b@x", "GPE")]


def test_from_conll_documents_and_sentences() -> None:
    text = ("-DOCSTART- -X- O O\n\nEU NNP B-ORG\nrejects VBZ O\nGerman JJ B-MISC\n\n"
            "Peter NNP B-PER\nBlackburn NNP I-PER\n\n-DOCSTART- -X- O O\n\nBonn NNP B-LOC\n")
    docs, spans = from_conll(text, name="t")
    assert docs.rows() == [("t:1", "EU rejects German", "t:doc1"),
                           ("t:2", "Peter Blackburn", "t:doc1"), ("t:3", "Bonn", "t:doc2")]
    assert spans.select("doc", "start", "end", "label").rows() == [
        ("t:1", 0, 2, "ORG"), ("t:1", 11, 17, "MISC"), ("t:2", 0, 15, "PER"),
        ("t:3", 0, 4, "LOC")]
    assert join_tokens(["a", "bc"]) == ("a bc", [(0, 1), (2, 4)])


def _spans(rows: list[tuple[Any, ...]]) -> pl.DataFrame:
    return pl.DataFrame(
        [dict(zip(["doc", "span", "start", "end", "label", "recorded", "annotator"], r,
                  strict=True)) for r in rows], schema=SPAN_SCHEMA)


@pytest.mark.parametrize(("span", "check", "reason"), [
    (("d", 0, 30, 50, "PER", None, None), "span_offsets", "outside the text (0..43)"),
    (("d", 0, 5, 5, "PER", None, None), "span_offsets", "start is not before end"),
    (("d", 0, None, 5, "PER", None, None), "span_offsets", "a missing start or end"),
    (("d", 0, 0, 12, "PER", "Ada Lovelacе", None), "span_text", "but the text there is"),
    (("d", 0, 0, 12, "PERSON", None, None), "unknown_type", "type 'PERSON' is not one of"),
])
def test_check_spans_quarantines_with_reasons(span: tuple[Any, ...], check: str,
                                              reason: str) -> None:
    docs = pl.DataFrame({"doc": ["d"], "text": [TEXT]})
    good = ("d", 1, 36, 42, "LOC", "London", None)
    r = check_spans(docs, _spans([span, good]), types=["PER", "LOC"])
    assert r.valid.get_column("span").to_list() == [1]
    assert r.counts == {check: 1}
    assert reason in r.failures.get_column("reason").item()
    assert r.failures.get_column("doc").item() == "d"


@pytest.mark.parametrize(("mode", "flagged"), [("forbid", [1, 2]), ("nested", [2]),
                                               ("allow", [])])
def test_overlaps_by_policy(mode: Any, flagged: list[int]) -> None:
    docs = pl.DataFrame({"doc": ["d"], "text": [TEXT]})
    spans = _spans([("d", 0, 0, 12, "PER", None, "a"), ("d", 1, 4, 12, "PER", None, "a"),
                    ("d", 2, 8, 20, "PER", None, "a"), ("d", 3, 4, 12, "PER", None, "b")])
    r = check_spans(docs, spans, types=["PER"], overlap=mode)
    assert sorted(r.failures.get_column("span").to_list()) == flagged
    assert r.valid.height + r.failures.height == 4


def test_span_agreement_f1_and_token_kappa() -> None:
    from sklearn.metrics import cohen_kappa_score

    texts = {"d": TEXT}
    spans = _spans([("d", 0, 0, 12, "PER", None, "a"), ("d", 1, 17, 32, "PER", None, "a"),
                    ("d", 2, 36, 42, "LOC", None, "a"),
                    ("d", 0, 0, 3, "PER", None, "b"), ("d", 1, 17, 32, "PER", None, "b"),
                    ("d", 2, 36, 42, "ORG", None, "b")])
    ag = span_agreement(texts, spans)
    per = {r["type"]: r for r in ag.per_type.to_dicts()}
    assert per["PER"]["exact_f1"] == pytest.approx(2 * 1 / 4)   # one of two PER exact
    assert per["PER"]["overlap_f1"] == pytest.approx(2 * 2 / 4)
    assert per["LOC"]["exact_f1"] == 0.0 and per["ORG"]["overlap_f1"] == 0.0
    assert ag.exact_f1 == pytest.approx(2 / 6) and ag.pairs == 1
    a = ["PER", "PER", "O", "PER", "PER", "O", "LOC", "O"]
    b = ["PER", "O", "O", "PER", "PER", "O", "ORG", "O"]
    assert ag.token_kappa == pytest.approx(cohen_kappa_score(a, b))
    # an annotator who marked nothing in a document still counts there
    texts2 = {"d": TEXT, "e": "Nothing here ."}
    spans2 = pl.concat([spans, _spans([("e", 0, 0, 7, "PER", None, "a")])])
    annotated = pl.DataFrame({"doc": ["d", "d", "e", "e"], "annotator": ["a", "b", "a", "b"]})
    with_e = span_agreement(texts2, spans2, annotated=annotated)
    assert with_e.per_type.filter(pl.col("type") == "PER").get_column("spans").item() == 5
    assert span_agreement(texts2, spans2).per_type.filter(
        pl.col("type") == "PER").get_column("spans").item() == 4


def test_formats() -> None:
    docs = pl.DataFrame({"doc": ["d"], "text": [TEXT], "document": ["d"]})
    spans = _spans([("d", 0, 36, 42, "LOC", None, None), ("d", 1, 0, 12, "PER", None, None)])
    sp = spacy_records(docs, spans).row(0, named=True)
    assert sp["spans"] == [{"start": 0, "end": 12, "label": "PER"},
                           {"start": 36, "end": 42, "label": "LOC"}]
    hf = hf_token_columns(docs, spans, types=["PER", "LOC"]).row(0, named=True)
    names = bio_names(["PER", "LOC"])
    assert names == ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    assert hf["tokens"] == ["Ada", "Lovelace", "met", "Charles", "Babbage", "in", "London",
                            "."]
    assert [names[i] for i in hf["ner_tags"]] == ["B-PER", "I-PER", "O", "O", "O", "O",
                                                  "B-LOC", "O"]


def _corpus(seed: int, n: int = 300) -> tuple[list[list[str]], list[list[int]], list[str]]:
    rng = random.Random(seed)
    first = ["Anna", "Marek", "Lena", "Otto", "Ines", "Pavel"]
    cities = ["Paris", "Berlin", "Oslo", "Lima", "Quito", "Cairo"]
    sents, labels, groups = [], [], []
    for i in range(n):
        p, c = rng.choice(first), rng.choice(cities)
        words = [p, "travelled", "to", c, "on", "monday", "."]
        sents.append(words)
        labels.append([1, 0, 0, 2, 0, 0, 0])  # 0 O, 1 PER, 2 LOC
        groups.append(f"doc{i // 5}")
    return sents, labels, groups


def test_token_issues_find_planted_type_swaps() -> None:
    sents, labels, groups = _corpus(2)
    noisy = [list(lab) for lab in labels]
    planted = set(range(0, 300, 25))
    for s in planted:
        noisy[s][3] = 1  # the city tagged as a person
    probs = out_of_fold_token_probabilities(sents, noisy, groups=groups, n_classes=3,
                                            folds=5, seed=1)
    assert len(probs) == 300 and probs[0].shape == (7, 3)
    issues = find_token_issues(sents, noisy, probs, classes=["O", "PER", "LOC"])
    found = {(r["sentence"], r["token"]) for r in issues.tokens.to_dicts()}
    # cleanlab's per-class thresholds sit near 1 on such easy text: it flags only the
    # planted tokens, and not all of them; the ranking puts every one of them first
    assert found <= {(s, 3) for s in planted} and len(found) >= 4
    assert set(issues.tokens.select("given", "suggested").rows()) == {("PER", "LOC")}
    worst = issues.sentences.sort("quality").head(len(planted))
    assert set(worst.get_column("sentence").to_list()) == planted
    assert np.isclose(probs[1].sum(axis=1), 1.0).all()


def test_convert_conll_and_label_studio(tmp_path: Any) -> None:
    import json as _json

    from labelgate.stages.spans.convert import convert

    conll = tmp_path / "a.conll"
    conll.write_text("-DOCSTART- O\n\nEU B-ORG\nrejects O\n\nBonn B-LOC\n")
    assert convert(conll, tmp_path / "a.jsonl") == 2
    rows = [_json.loads(x) for x in (tmp_path / "a.jsonl").read_text().splitlines()]
    assert rows[0] == {"id": "a:1", "document": "a:doc1", "text": "EU rejects",
                       "spans": [{"start": 0, "end": 2, "label": "ORG", "text": "EU"}]}
    ls = tmp_path / "b.json"
    ls.write_text(_json.dumps([{"id": 1, "data": {"text": TEXT}, "annotations": [
        {"completed_by": 1, "result": [{"type": "labels", "value": {
            "start": 36, "end": 42, "labels": ["LOC"]}}]},
        {"completed_by": 2, "result": []}]}]))
    assert convert(ls, tmp_path / "b.jsonl", annotations=tmp_path / "ann.jsonl") == 1
    ann = [_json.loads(x) for x in (tmp_path / "ann.jsonl").read_text().splitlines()]
    assert ann == [{"item": "1", "annotator": "1",
                    "spans": [{"start": 36, "end": 42, "label": "LOC"}]},
                   {"item": "1", "annotator": "2", "spans": []}]  # marked nothing


def _spans_spec(**spans: Any) -> Any:
    from labelgate.spec import parse_spec

    return parse_spec({
        "name": "sp", "task": "spans",
        "sources": {"items": {"path": "x.jsonl"}, "predictions": {"path": "p.jsonl"}},
        "columns": {"id": "id", "text": ["text"]},
        "spans": {"types": ["PER", "LOC"], "issues": {"min_rows": 10}, **spans}})


def test_analyze_reads_a_predictions_file_and_names_bad_rows() -> None:
    from labelgate.errors import InputError
    from labelgate.stages.spans.stage import analyze

    sents, _, _ = _corpus(4, n=40)
    texts = [" ".join(w) for w in sents]
    spans_col, probs = [], []
    for i, (w, text) in enumerate(zip(sents, texts, strict=True)):
        at = text.index(w[3])
        label = "PER" if i == 7 else "LOC"  # row 7: the city tagged as a person
        spans_col.append([{"start": 0, "end": len(w[0]), "label": "PER"},
                          {"start": at, "end": at + len(w[3]), "label": label}])
        rows = [[0.01, 0.98, 0.01]] + [[0.98, 0.01, 0.01]] * 2 + [[0.01, 0.01, 0.98]] \
            + [[0.98, 0.01, 0.01]] * 3
        probs.append(rows)
    valid = pl.DataFrame({"id": [f"r{i}" for i in range(40)], "text": texts,
                          "spans": spans_col})
    preds = pl.DataFrame({"id": [f"r{i}" for i in range(40)], "probs": probs})
    result = analyze(valid, spec=_spans_spec(), predictions=preds)
    flagged = result.tokens.select("id", "word", "given", "suggested").rows()
    assert flagged == [("r7", sents[7][3], "PER", "LOC")]
    assert result.section["issues"]["model"] == "the predictions file"
    with pytest.raises(InputError, match=r"1 row\(s\) without probabilities.*r0"):
        analyze(valid, spec=_spans_spec(), predictions=preds.with_columns(
            pl.when(pl.col("id") == "r0").then(pl.lit(None)).otherwise(pl.col("probs"))
            .alias("probs")))
