"""SFT data: canonical frame (Alpaca / chat / prompt-response), SFT checks, conflicts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from pydantic import ValidationError

from checks.contract import QUARANTINE_SCHEMA
from checks.sft import (
    CONFLICT_SCHEMA,
    SftPattern,
    SftRules,
    check_names,
    check_sft,
    conflicting_responses,
)
from labelgate.errors import InputError
from labelgate.spec import SourceSpec
from labelgate.stages.ingest.readers import read_file
from labelgate.stages.instructions import (
    CANONICAL_SCHEMA,
    AlpacaRecord,
    ChatRecord,
    InstructionColumns,
    from_canonical,
    to_canonical,
    write_jsonl,
)

EXAMPLE = Path(__file__).parents[1] / "data" / "examples" / "chitchat"
Msg = dict[str, str]


def u(text: str) -> Msg:
    return {"role": "user", "content": text}


def a(text: str) -> Msg:
    return {"role": "assistant", "content": text}


def s(text: str) -> Msg:
    return {"role": "system", "content": text}


GOOD = [u("What is the capital of France?"), a("Paris is the capital of France.")]


def _chat(*conversations: list[Msg], **extra: list[Any]) -> pl.DataFrame:
    n = len(conversations)
    data: dict[str, Any] = {
        "id": [f"c{i}" for i in range(n)],
        "messages": list(conversations),
        "_batch": ["b1"] * n,
        "_row": list(range(1, n + 1)),
        **extra,
    }
    schema = {"messages": pl.List(pl.Struct({"role": pl.String, "content": pl.String}))}
    return to_canonical(pl.DataFrame(data, schema_overrides=schema), style="chat")


def _checks(q: pl.DataFrame, row_id: str) -> list[str]:
    return q.filter(pl.col("id") == row_id).get_column("check").to_list()


def _alpaca(rows: list[tuple[str, str, str]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "id": [f"a{i}" for i in range(len(rows))],
            "instruction": [r[0] for r in rows],
            "input": [r[1] for r in rows],
            "output": [r[2] for r in rows],
        }
    )


# --- canonical frame --------------------------------------------------------------------


def test_alpaca_to_canonical_shape_and_values() -> None:
    df = _alpaca([("Add the numbers.", "2 and 3", "5"), ("Say hi.", "", "Hi!")]).with_columns(
        pl.Series("topic", ["math", "chat"])
    )
    c = to_canonical(df, style="alpaca", keep=["topic"])
    assert c.columns == [*CANONICAL_SCHEMA, "topic"]
    assert dict(c.select(list(CANONICAL_SCHEMA)).schema) == CANONICAL_SCHEMA
    first = c.row(0, named=True)
    assert first["messages"] == [u("Add the numbers.\n\n2 and 3"), a("5")]
    assert first["prompt"] == "Add the numbers.\n\n2 and 3"
    assert first["response"] == "5"
    assert c.get_column("topic").to_list() == ["math", "chat"]


def test_chat_to_canonical_prompt_excludes_system_and_final_turn() -> None:
    c = _chat([s("Be brief."), u("hi"), a("hello"), u("how are you?"), a("Fine.")])
    row = c.row(0, named=True)
    assert row["prompt"] == "hi\n\nhello\n\nhow are you?"
    assert row["response"] == "Fine."
    assert c.columns[-2:] == ["_batch", "_row"]


def test_prompt_response_with_system_column() -> None:
    df = pl.DataFrame({"id": [1, 2], "q": ["p1", "p2"], "r": ["r1", "r2"], "sys": ["S", ""]})
    cols = InstructionColumns(prompt="q", response="r", system="sys")
    c = to_canonical(df, style="prompt_response", columns=cols)
    assert c.get_column("messages").to_list() == [[s("S"), u("p1"), a("r1")], [u("p2"), a("r2")]]
    assert c.get_column("id").to_list() == ["1", "2"]


def test_sharegpt_fields_and_role_map() -> None:
    df = pl.DataFrame(
        {
            "id": ["x"],
            "conversations": [[{"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"}]],
        }
    )
    cols = InstructionColumns(
        messages="conversations",
        role_field="from",
        content_field="value",
        role_map={"human": "user", "gpt": "assistant"},
    )
    c = to_canonical(df, style="chat", columns=cols)
    assert c.get_column("messages").to_list() == [[u("hi"), a("yo")]]


def test_messages_as_json_text_and_bad_json_names_row() -> None:
    good = json.dumps([u("q"), a("r")])
    c = to_canonical(pl.DataFrame({"id": ["1"], "messages": [good]}), style="chat")
    assert c.get_column("response").to_list() == ["r"]
    bad = pl.DataFrame({"id": ["1", "2"], "_row": [7, 8], "messages": [good, '[{"role":']})
    with pytest.raises(InputError, match=r"row 8, column 'messages' \(columns.messages\)"):
        to_canonical(bad, style="chat")


@pytest.mark.parametrize(
    ("style", "frame", "match"),
    [
        ("alpaca", {"id": ["1"], "instruction": ["x"]}, r"'output' \(columns.output\)"),
        ("chat", {"id": ["1"], "text": ["x"]}, r"'messages' \(columns.messages\)"),
        ("prompt_response", {"id": ["1"], "prompt": ["x"]}, r"'response' \(columns.response\)"),
        ("chat", {"id": ["1"], "messages": [[{"role": "user"}]]}, r"lack field\(s\) \['content'\]"),
    ],
)
def test_missing_columns_name_the_column(style: Any, frame: dict[str, Any], match: str) -> None:
    with pytest.raises(InputError, match=match):
        to_canonical(pl.DataFrame(frame), style=style, where="sources.items")


def test_alpaca_round_trip_jsonl(tmp_path: Path) -> None:
    df = _alpaca([("Add the numbers.", "2 and 3", "5"), ("Say hi.", "", "Hi!")])
    rows = from_canonical(to_canonical(df, style="alpaca"), style="alpaca")
    path = write_jsonl(rows, tmp_path / "train.jsonl")
    records = [json.loads(line) for line in path.read_text().splitlines()]
    parsed = [AlpacaRecord.model_validate(r) for r in records]  # extra keys are rejected
    assert [p.model_dump() for p in parsed] == df.drop("id").to_dicts()


def test_chat_round_trip_jsonl(tmp_path: Path) -> None:
    conversations = [[s("Be brief."), u("hi"), a("hello")], GOOD]
    rows = from_canonical(_chat(*conversations), style="chat")
    path = write_jsonl(rows, tmp_path / "train.jsonl")
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [ChatRecord.model_validate(r).model_dump() for r in records] == [
        {"messages": m} for m in conversations
    ]


def test_chat_to_alpaca_puts_context_in_input_or_refuses() -> None:
    c = _chat([s("Be brief."), u("hi"), a("hello"), u("and you?"), a("Fine.")], GOOD)
    rows = from_canonical(c, style="alpaca").to_dicts()
    assert rows[0] == {
        "instruction": "and you?",
        "input": "system: Be brief.\nuser: hi\nassistant: hello",
        "output": "Fine.",
    }
    assert rows[1] == {"instruction": GOOD[0]["content"], "input": "", "output": GOOD[1]["content"]}
    with pytest.raises(InputError, match=r"1 row\(s\) have more than one user turn.*c0"):
        from_canonical(c, style="alpaca", multi_turn="error")


def test_publish_refuses_rows_without_response() -> None:
    with pytest.raises(InputError, match="no final assistant turn"):
        from_canonical(_chat([u("hi")]), style="chat")


# --- SFT checks -------------------------------------------------------------------------


def test_clean_rows_pass() -> None:
    q = check_sft(_chat(GOOD, [s("sys"), *GOOD], [*GOOD, u("more?"), a("No.")]))
    assert q.height == 0
    assert dict(q.schema) == QUARANTINE_SCHEMA


@pytest.mark.parametrize(
    ("conversation", "check", "column", "reason"),
    [
        ([u("   "), a("Paris.")], "empty_prompt", "prompt", "empty or whitespace only"),
        ([u("Capital of France?"), a(" \n")], "empty_response", "response", "empty or"),
        ([], "chat_empty", "messages", "no messages"),
        ([s("You are helpful.")], "chat_ends_with_assistant", "messages", "'system'"),
        ([a("Hello!"), u("hi"), a("Bye.")], "chat_first_turn", "messages", "first non-system"),
        ([u("q"), a("r."), a("s.")], "chat_user_before_assistant", "messages", "turn 3"),
        (
            [u("q"), u("again?"), a("r.")],
            "chat_alternation",
            "messages",
            "sft.allow_consecutive_user_turns",
        ),
        ([u("q"), a("r."), u("and?")], "chat_ends_with_assistant", "messages", "'user'"),
        (
            [u("q"), a(""), u("and?"), a("r.")],
            "chat_empty_content",
            "messages",
            "message 2 (assistant) has empty content",
        ),
        (
            [{"role": "bot", "content": "q"}, a("r.")],
            "chat_role",
            "messages",
            "message 1 has role 'bot', not one of sft.allowed_roles",
        ),
        ([u("q"), s("late"), a("r.")], "chat_system_position", "messages", "position 2"),
        (
            [u("Say hello"), a("say  HELLO ")],
            "response_echoes_prompt",
            "response",
            "sft.reject_echo",
        ),
    ],
)
def test_each_check_quarantines_with_reason(
    conversation: list[Msg], check: str, column: str, reason: str
) -> None:
    q = check_sft(_chat(GOOD, conversation))
    bad = q.filter(pl.col("id") == "c1")
    assert check in bad.get_column("check").to_list(), bad
    rec = bad.filter(pl.col("check") == check).row(0, named=True)
    assert rec["column"] == column
    assert reason in rec["reason"]
    assert (rec["source"], rec["batch"], rec["row"]) == ("items", "b1", 2)
    assert _checks(q, "c0") == []


def test_system_only_and_trailing_user_are_not_double_reported_as_empty_response() -> None:
    q = check_sft(_chat([s("You are helpful.")], [u("q"), a("r."), u("and?")]))
    assert _checks(q, "c0") == ["empty_prompt", "chat_ends_with_assistant"]
    assert _checks(q, "c1") == ["chat_ends_with_assistant"]


def test_consecutive_user_turns_allowed_by_rule() -> None:
    conv = [u("q"), u("again?"), a("r.")]
    assert _checks(check_sft(_chat(conv)), "c0") == ["chat_alternation"]
    rules = SftRules(allow_consecutive_user_turns=True)
    assert check_sft(_chat(conv), rules=rules).height == 0
    # two assistant turns in a row stay an error: a user turn must come before each
    two = [u("q"), a("r."), a("s.")]
    assert _checks(check_sft(_chat(two), rules=rules), "c0") == ["chat_user_before_assistant"]


def test_allowed_roles_rule() -> None:
    rules = SftRules(allowed_roles=["user", "assistant"])
    q = check_sft(_chat([s("sys"), *GOOD]), rules=rules)
    assert _checks(q, "c0") == ["chat_role"]
    assert "'system'" in q.get_column("reason")[0]


@pytest.mark.parametrize(
    ("rule", "value", "conversation", "column"),
    [
        ("min_prompt_chars", 10, [u("hi?"), a("Hello there.")], "prompt"),
        ("max_prompt_chars", 5, [u("a long question?"), a("Yes.")], "prompt"),
        ("min_response_chars", 5, [u("hi?"), a("Yo.")], "response"),
        ("max_response_chars", 5, [u("hi?"), a("Hello there.")], "response"),
        ("min_prompt_tokens", 3, [u("hi there"), a("Hello there.")], "prompt"),
        ("max_prompt_tokens", 2, [u("one two\n three"), a("Hello there.")], "prompt"),
        ("min_response_tokens", 3, [u("hi?"), a("Hello\tthere.")], "response"),
        ("max_response_tokens", 1, [u("hi?"), a("Hello there.")], "response"),
    ],
)
def test_length_bounds(rule: str, value: int, conversation: list[Msg], column: str) -> None:
    rules = SftRules.model_validate({rule: value})
    q = check_sft(_chat(GOOD, conversation), rules=rules)
    assert _checks(q, "c1") == [rule]
    rec = q.filter(pl.col("id") == "c1").row(0, named=True)
    assert rec["column"] == column
    assert f"sft.{rule} {value}" in rec["reason"]


@pytest.mark.parametrize(
    ("text", "where", "check"),
    [
        ("Dear {customer_name}, thanks.", "response", "pattern:unfilled_placeholder"),
        ("Hello {{ name }}.", "response", "pattern:unfilled_placeholder"),
        ("Translate {text} to French.", "prompt", "pattern:unfilled_placeholder"),
        ("As an AI language model, I cannot.", "response", "pattern:ai_disclaimer"),
        ("Sure.<|im_end|>", "response", "pattern:chat_template_token"),
        ("The answer is [truncated]", "response", "pattern:truncation_marker"),
    ],
)
def test_default_patterns(text: str, where: str, check: str) -> None:
    conv = [u(text), a("Fine.")] if where == "prompt" else [u("Question?"), a(text)]
    q = check_sft(_chat(conv))
    assert _checks(q, "c0") == [check]
    rec = q.row(0, named=True)
    assert rec["column"] == where
    assert f"sft.patterns.{check.split(':')[1]}" in rec["reason"]


def test_extra_pattern_and_bad_regex() -> None:
    rules = SftRules(extra_patterns=[SftPattern(name="todo", regex=r"(?i)\bTODO\b")])
    q = check_sft(_chat([u("q?"), a("todo: write this.")]), rules=rules)
    assert _checks(q, "c0") == ["pattern:todo"]
    assert "sft.extra_patterns.todo" in q.get_column("reason")[0]
    with pytest.raises(ValidationError, match="invalid regex"):
        SftPattern(name="bad", regex="(unclosed")
    with pytest.raises(ValidationError, match="extra"):
        SftRules.model_validate({"max_response_char": 5})
    with pytest.raises(ValidationError, match="min_response_chars 9 > max_response_chars 5"):
        SftRules(min_response_chars=9, max_response_chars=5)


def test_truncated_at_the_length_limit() -> None:
    rules = SftRules(truncation_chars=20)
    cut = [u("Tell me a story?"), a("Once upon a time there was a")]
    ended = [u("Tell me a story?"), a("Once upon a time it ended.")]
    short = [u("Tell me a story?"), a("Once upon a")]
    q = check_sft(_chat(cut, ended, short), rules=rules)
    assert _checks(q, "c0") == ["truncated"]
    assert "sft.truncation_chars 20" in q.get_column("reason")[0]
    assert _checks(q, "c1") == [] and _checks(q, "c2") == []
    by_tokens = check_sft(_chat(cut), rules=SftRules(truncation_tokens=7))
    assert _checks(by_tokens, "c0") == ["truncated"]


def test_alpaca_echo_and_empty_output() -> None:
    df = _alpaca([("Repeat after me", "", "repeat after me"), ("Name a color.", "", "")])
    q = check_sft(to_canonical(df, style="alpaca"))
    assert q.select("id", "check").rows() == [
        ("a0", "response_echoes_prompt"),
        ("a1", "empty_response"),
    ]
    assert q.get_column("row").to_list() == [1, 2]  # no _row: the 1-based position
    assert q.get_column("batch").to_list() == [None, None]


def test_check_sft_needs_canonical_columns() -> None:
    with pytest.raises(InputError, match=r"missing \['messages'\]"):
        check_sft(pl.DataFrame({"id": ["1"], "prompt": ["p"], "response": ["r"]}))


def test_check_names_lists_registered_checks() -> None:
    names = check_names(SftRules(max_response_chars=10, quarantine_conflicts=True))
    assert names[:2] == ["empty_prompt", "empty_response"]
    assert {"chat_alternation", "max_response_chars", "conflicting_response"} <= set(names)


# --- conflicting responses --------------------------------------------------------------


def test_conflicting_responses_report_and_rule() -> None:
    c = _chat(
        [u("What is 2+2?"), a("4.")],
        [u("what is  2+2? "), a("Five.")],
        [u("What is 2+2?"), a("4.")],
        [u("Capital of Peru?"), a("Lima.")],
        [u("Capital of Peru?"), a("lima.")],  # same answer after normalizing: no conflict
    )
    report = conflicting_responses(c)
    assert dict(report.schema) == CONFLICT_SCHEMA
    assert report.select("conflict", "id", "row", "group_rows", "group_responses").rows() == [
        (1, "c0", 1, 3, 2),
        (1, "c1", 2, 3, 2),
        (1, "c2", 3, 3, 2),
    ]
    assert check_sft(c).height == 0  # a report, not a quarantine, by default
    q = check_sft(c, rules=SftRules(quarantine_conflicts=True))
    assert q.get_column("id").to_list() == ["c0", "c1", "c2"]
    assert set(q.get_column("check")) == {"conflicting_response"}
    assert "2 different responses" in q.get_column("reason")[0]


def test_conflicts_match_exotic_whitespace() -> None:
    c = _chat([u("hello\u00a0there"), a("Hi.")], [u("Hello there"), a("Hey.")])
    assert conflicting_responses(c).height == 2


# --- the bundled example ----------------------------------------------------------------


def test_chitchat_example_parses_and_is_mostly_clean() -> None:
    path = EXAMPLE / "items.jsonl"
    read = read_file(path, fmt="jsonl", source=SourceSpec(path=str(path)))
    assert read.rejects.height == 0
    assert read.rows.height == 2000
    c = to_canonical(read.rows, style="chat", keep=["conversation_id", "quality", "topic"])
    assert c.get_column("id").is_unique().all()
    assert set(c.get_column("quality").unique()) <= {1, 2, 3, 4, 5}
    roles = c.get_column("messages").list.eval(pl.element().struct.field("role")).explode()
    assert set(roles.drop_nulls()) == {"user", "assistant"}
    import yaml

    spec = yaml.safe_load((EXAMPLE / "spec.yaml").read_text())
    q = check_sft(c, rules=SftRules.model_validate(spec["sft"]))
    assert 0 < q.get_column("row").n_unique() <= 0.02 * c.height
    # every pair's context starts with the other participant and alternates
    assert not q.get_column("check").str.starts_with("chat_").any()
