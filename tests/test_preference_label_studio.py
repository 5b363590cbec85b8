"""Label Studio exports as a preference spec's items (issue 24): `sources.items.format:
label-studio` with the data fields in `preference.columns`; ingest keeps one task per row,
read-pairs reads them as judgments or rankings. Small inline exports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from pydantic import ValidationError

from labelgate.errors import InputError
from labelgate.spec import Spec
from labelgate.stages.ingest.readers import read_file
from labelgate.stages.preference.stage import check_batches, read_batch


def _task(tid: int, data: dict[str, Any], *annotations: tuple[int, Any, str, Any],
          cancelled: tuple[int, ...] = ()) -> dict[str, Any]:
    """A task with (annotation id, completed_by, result type, value) annotations, and
    cancelled ones."""
    anns = [{"id": aid, "completed_by": who, "was_cancelled": False,
             "result": [{"from_name": "x", "type": kind, "value": value}]}
            for aid, who, kind, value in annotations]
    anns += [{"id": aid, "completed_by": 9, "was_cancelled": True, "result": []}
             for aid in cancelled]
    return {"id": tid, "data": data, "annotations": anns}


def _spec(**preference: Any) -> Spec:
    return Spec.model_validate({
        "name": "ls", "task": "preference", "columns": {"id": "id"},
        "sources": {"items": {"path": "export.json", "format": "label-studio"}},
        "preference": preference})


def _batch(tmp_path: Path, tasks: list[dict[str, Any]], spec: Spec) -> pl.DataFrame:
    """What ingest puts in the lake for the export (one task per row), as a batch."""
    path = tmp_path / "export.json"
    path.write_text(json.dumps(tasks))
    read = read_file(path, fmt="label-studio", source=spec.sources.items, key="items")
    assert read.rows.columns == ["_row", "task"] and read.rejects.height == 0
    return read.rows.with_columns(pl.lit("b1").alias("_batch"))


PAIRWISE = [
    _task(7, {"question": "Which is kinder?", "left": "Thank you!", "right": "Go away."},
          (70, 1, "pairwise", {"selected": "left"}), (71, {"id": 2}, "pairwise",
                                                      {"selected": "right"}),
          cancelled=(72,)),
    _task(8, {"question": [{"role": "user", "content": "Say hi"}], "left": "hi",
              "right": "hello"}, (80, 1, "pairwise", {"selected": "right"})),
    _task(9, {"question": "unjudged", "left": "a", "right": "b"}),
]


def test_pairwise_export_read_with_the_spec_fields(tmp_path: Path) -> None:
    spec = _spec(columns={"prompt": "question", "response_a": "left", "response_b": "right"})
    judgments, skipped = read_batch(_batch(tmp_path, PAIRWISE, spec), spec=spec,
                                    where="export.json")
    got = judgments.select("id", "prompt", "response_a", "response_b", "preference",
                           "annotator", "shape", "_row", "_batch").rows()
    assert got == [
        ("7-70", "Which is kinder?", "Thank you!", "Go away.", "a", "1", "judgments", 1, "b1"),
        ("7-71", "Which is kinder?", "Thank you!", "Go away.", "b", "2", "judgments", 1, "b1"),
        ("8-80", "Say hi", "hi", "hello", "b", "1", "judgments", 2, "b1"),
    ]
    assert judgments.get_column("prompt_messages")[2].to_list() == [
        {"role": "user", "content": "Say hi"}]  # a chat prompt in the task data
    assert skipped == {"tasks": 3, "annotations": 3, "cancelled": 1, "without_pairwise": 0,
                       "tasks_without_judgment": 1}
    checked = check_batches([judgments], spec=spec)
    assert checked.rows_input == 3 and checked.valid.height == 3


def test_pairwise_fields_default_to_the_label_studio_template(tmp_path: Path) -> None:
    """Columns left unset read Label Studio's Pairwise template names (answer1, answer2)."""
    tasks = [_task(1, {"prompt": "p", "answer1": "L", "answer2": "R"},
                   (11, 5, "pairwise", {"selected": "left"}))]
    spec = _spec()
    judgments, _ = read_batch(_batch(tmp_path, tasks, spec), spec=spec, where="export.json")
    assert judgments.select("response_a", "response_b", "preference").row(0) == ("L", "R", "a")


def test_ranker_export_read_with_the_spec_fields(tmp_path: Path) -> None:
    items = [{"id": "x", "text": "first"}, {"id": "y", "text": "second"},
             {"id": "z", "text": "third"}]
    tasks = [_task(4, {"prompt": "rank these", "candidates": items},
                   (40, 3, "ranker", {"ranker": {"best": ["y"], "rest": ["x", "z"]}}))]
    spec = _spec(shape="rankings", columns={"responses": "candidates", "item_text": "text"})
    judgments, skipped = read_batch(_batch(tmp_path, tasks, spec), spec=spec,
                                    where="export.json")
    got = {(r["id"], r["response_a"], r["response_b"], r["preference"])
           for r in judgments.iter_rows(named=True)}
    assert got == {("4-40:0-1", "first", "second", "b"), ("4-40:0-2", "first", "third", "tie"),
                   ("4-40:1-2", "second", "third", "a")}
    assert skipped["tasks"] == 1 and skipped["annotations"] == 1


@pytest.mark.parametrize(("tasks", "preference", "message"), [
    ([_task(5, {"prompt": "p", "answer1": "L"}, (50, 1, "pairwise", {"selected": "left"}))],
     {}, r"export.json: task 5 \(row 1\): data has no field 'answer2' "
         r"\(preference.columns.response_b\); it has \['answer1', 'prompt'\]"),
    ([_task(1, {"q": "p", "a": "L", "b": "R"}), _task(6, {"prompt": "p"},
                                                      (60, 1, "pairwise", {"selected": "up"}))],
     {}, r"export.json: task 6 \(row 2\), annotation 60: pairwise value selected is 'up'"),
    ([_task(3, {"prompt": "p", "items": [{"id": "a", "body": "x"}, {"id": "b"}]},
            (30, 1, "ranker", {"ranker": {"r": ["a", "b"]}}))],
     {"shape": "rankings"}, r"export.json: task 3 \(row 1\): item 1 of 'items' has no field "
                            r"'body' \(preference.columns.item_text\)"),
    ([_task(3, {"prompt": "p", "items": [{"id": "a", "body": "x"}, {"id": "b", "body": "y"}]},
            (30, 1, "ranker", {"ranker": {"r": ["a"]}}))],
     {"shape": "rankings"}, r"export.json: task 3 \(row 1\), annotation 30: items \['b'\] are "
                            r"not ranked"),
    ([_task(1, {"prompt": "p", "answer1": "L", "answer2": "R"})],
     {"shape": "binarized"}, r"export.json: a Label Studio export is a Pairwise project"),
])
def test_errors_name_the_file_task_row_and_field(tmp_path: Path, tasks: list[dict[str, Any]],
                                                 preference: dict[str, Any],
                                                 message: str) -> None:
    spec = _spec(**preference)
    with pytest.raises(InputError, match=message):
        read_batch(_batch(tmp_path, tasks, spec), spec=spec, where="export.json")


def test_a_file_that_is_not_an_export_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "export.json"
    path.write_text('{"not": "a list"}')
    with pytest.raises(InputError, match=r"export.json: a Label Studio JSON export is a list"):
        read_file(path, fmt="label-studio", source=_spec().sources.items, key="items")


def test_label_studio_is_no_format_for_gold_or_predictions() -> None:
    with pytest.raises(ValidationError, match=r"sources\.gold is a table"):
        Spec.model_validate({
            "name": "ls", "columns": {"id": "id", "text": ["t"], "label": "y"},
            "sources": {"items": {"path": "a.csv"}, "annotations": {"path": "b.json"},
                        "gold": {"path": "g.json", "format": "label-studio"}}})


def test_records_the_reader_could_not_parse_are_quarantined_and_counted(tmp_path: Path
                                                                        ) -> None:
    """A broken JSON line of a judgments file: quarantined (check parse) and input."""
    from checks.contract import reject_records
    from labelgate.stages.ingest.readers import read_file as read

    path = tmp_path / "j.jsonl"
    good = {"id": "1", "prompt": "p", "response_a": "x", "response_b": "y", "preference": "a"}
    path.write_text(json.dumps(good) + "\n" + '{"prompt": "cut off\n')
    spec = Spec.model_validate({"name": "j", "task": "preference", "columns": {"id": "id"},
                                "sources": {"items": {"path": "j.jsonl"}}})
    got = read(path, fmt="jsonl", source=spec.sources.items, key="items")
    rows = got.rows.with_columns(pl.lit("b1").alias("_batch"))
    rejects = reject_records(got.rejects.with_columns(pl.lit("b1").alias("_batch")),
                             source="items")
    judgments, _ = read_batch(rows, spec=spec, where=str(path))
    checked = check_batches([judgments], spec=spec, rejects=rejects)
    assert (checked.rows_input, checked.valid.height, checked.rows_quarantined) == (2, 1, 1)
    assert checked.counts == {"parse": 1}
    assert checked.quarantine.select("row", "check").rows() == [(2, "parse")]


@pytest.mark.parametrize(("extra", "message"), [
    ({"task": "classification", "columns": {"id": "id", "text": ["t"], "label": "y"}},
     "label-studio items are read by task preference only"),
    ({"preference": {"shape": "binarized"}}, "not binarized pairs"),
])
def test_spec_refuses_label_studio_items_that_cannot_be_read(extra: dict[str, Any],
                                                             message: str) -> None:
    from labelgate.errors import SpecError
    from labelgate.spec.load import parse_spec

    data = {"name": "ls", "task": "preference", "columns": {"id": "id"},
            "sources": {"items": {"path": "export.json", "format": "label-studio"}}, **extra}
    with pytest.raises(SpecError, match=rf"sources.items.format: .*{message}"):
        parse_spec(data)
    parse_spec({**data, "task": "preference", "columns": {"id": "id"},
                "preference": {"shape": "rankings"}})  # fits
