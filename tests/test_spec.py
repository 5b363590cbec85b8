from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from labelgate.errors import SpecError
from labelgate.gate import GATE_CHECKS
from labelgate.spec import json_schema, load_spec, parse_spec
from tests.conftest import spec_dict

REPO = Path(__file__).resolve().parents[1]


def test_demo_spec_is_valid() -> None:
    spec = load_spec(REPO / "data/examples/tweets/spec.yaml")
    assert spec.name == "tweets-sentiment"
    assert spec.columns.text == ["text"]
    assert spec.store_dir() == (REPO / "data/store").resolve()
    assert spec.gate["max_quarantine_rate"] == 0.02
    assert spec.label_issues is not None and spec.label_issues.folds == 5
    assert spec.splits is not None and spec.splits.flagged == "drop_from_test"
    assert spec.publish is not None and spec.publish.jsonl.style == "alpaca"


def test_paths_resolve_against_the_spec_file(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    path = tmp_path / "sub" / "spec.yaml"
    path.write_text(yaml.safe_dump(spec_dict()))
    spec = load_spec(path)
    assert spec.base_dir == (tmp_path / "sub").resolve()
    assert spec.store_dir() == (tmp_path / "sub" / "store").resolve()
    assert spec.store_dir(tmp_path / "elsewhere") == (tmp_path / "elsewhere").resolve()


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        ({"nmae": "x"}, "nmae: unknown key; valid keys: name, task"),
        ({"columns": {"id": "a", "label": "b", "txt": ["c"]}}, "columns.txt: unknown key"),
        ({"contract": {"text": {"dtype": "str", "max_len": 3}}},
         "contract.text.max_len: unknown key; valid keys: dtype, nullable"),
        ({"gate": {"max_quarantine": 0.1}}, "unknown gate check 'max_quarantine'; valid checks:"),
        ({"gate": {"max_quarantine_rate": 1.5}}, "gate.max_quarantine_rate must be between 0"),
        ({"task": "regression"}, "task: Input should be 'classification'"),
        ({"contract": {"text": {"dtype": "string"}}}, "contract.text.dtype"),
        ({"contract": {"text": {"regex": "(unclosed"}}}, "invalid regular expression"),
        ({"name": "bad name; drop"}, "name: String should match pattern"),
        ({"name": "../../etc"}, "name: String should match pattern"),  # no path escape
        ({"splits": {"fractions": {"train": 0.8, "test": 0.1}}},
         "splits.fractions: Value error, fractions must sum to 1, got 0.9"),
        ({"splits": {"fractions": {"train": 1.2, "test": -0.2}}}, "must be in [0, 1]"),
        ({"splits": {"fractions": {"train": 0.9, "dev": 0.1}}}, "splits.fractions.dev"),
        ({"publish": {}}, "publish: needs a splits section"),
        ({"columns": {"id": "a", "label": "a", "text": "t"}}, "named in more than one role"),
        ({"columns": {"id": "a", "label": "b"}}, "name at least one input column"),
    ],
)
def test_bad_spec_names_the_key(patch: dict[str, object], expected: str) -> None:
    data = spec_dict()
    data.update(patch)
    with pytest.raises(SpecError) as info:
        parse_spec(data, source="my.yaml")
    assert "my.yaml" in str(info.value)
    assert expected in str(info.value)


def test_missing_section_is_named() -> None:
    data = spec_dict()
    del data["sources"]
    with pytest.raises(SpecError, match="sources: required key is missing"):
        parse_spec(data)


def test_load_spec_errors(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="spec file not found"):
        load_spec(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- a\n- b\n")
    with pytest.raises(SpecError, match="expected a mapping"):
        load_spec(listy)


def test_role_defaults_and_overrides() -> None:
    spec = parse_spec(spec_dict(contract={"tweet_id": {"unique": False}}))
    assert spec.contract_for("tweet_id").nullable is False
    assert spec.contract_for("tweet_id").unique is False  # explicit beats the default
    assert spec.contract_for("sentiment").nullable is False
    assert spec.contract_for("other").nullable is None


def test_fingerprint_ignores_key_order() -> None:
    a = spec_dict()
    b = dict(reversed(list(spec_dict().items())))
    assert parse_spec(a).fingerprint() == parse_spec(b).fingerprint()
    assert parse_spec(a).fingerprint() != parse_spec(spec_dict(name="other")).fingerprint()


def test_json_schema_lists_sections_and_gate_checks() -> None:
    schema = json_schema()
    assert {"name", "sources", "columns", "contract", "gate"} <= set(schema["properties"])
    gate = schema["properties"]["gate"]
    assert gate["propertyNames"]["enum"] == sorted([*GATE_CHECKS, "dimensions"])
    per_dimension = gate["properties"]["dimensions"]["additionalProperties"]
    assert "min_krippendorff_alpha" in per_dimension["propertyNames"]["enum"]
    assert schema["additionalProperties"] is False


@pytest.mark.parametrize("example", sorted((REPO / "data/examples").glob("*/spec.yaml")),
                         ids=lambda p: p.parent.name)
def test_example_specs_are_valid_under_the_json_schema(example: Path) -> None:
    """Editors check the example specs against the schema: their shorthands
    (`embeddings: true`) must be valid there too, not only in the spec model."""
    import jsonschema

    jsonschema.validate(yaml.safe_load(example.read_text()), json_schema())
    bad = {**yaml.safe_load(example.read_text()), "label_issues": {"embeddings": 5}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, json_schema())


def instruction_dict(**overrides: object) -> dict[str, object]:
    data: dict[str, object] = {
        "name": "chat",
        "task": "instruction",
        "sources": {"items": {"path": "items.jsonl", "style": "chat"}},
        "columns": {"id": "id", "label": "quality", "group": "conv"},
        "sft": {"min_response_chars": 2, "max_response_chars": 1000},
        "splits": {},
        "publish": {"filter": "quality >= 4 and topic != 'spam'"},
    }
    data.update(overrides)
    return data


def test_chitchat_example_spec_is_valid() -> None:
    spec = load_spec(REPO / "data/examples/chitchat/spec.yaml")
    assert spec.is_instruction and spec.sources.items.style == "chat"
    assert spec.instruction_columns().messages == "messages"
    assert spec.sft_rules().max_response_chars == 1000
    assert spec.text_columns() == ["prompt", "response"]
    assert spec.dedup_columns() == ["prompt"]
    assert spec.publish_formats() == ["parquet", "alpaca", "chat"]
    assert [str(c) for c in spec.publish.filter_clauses()] == ["quality >= 4"]  # type: ignore[union-attr]


def test_instruction_spec_keys() -> None:
    spec = parse_spec(instruction_dict())
    assert spec.columns.label == "quality"
    assert [(c.column, c.op, c.value) for c in spec.publish.filter_clauses()] == [  # type: ignore[union-attr]
        ("quality", ">=", 4), ("topic", "!=", "spam")
    ]
    assert spec.keep_columns() == ["quality", "conv", "topic"]
    assert spec.notes()[0].startswith("instruction data, style chat")
    cols = {"id": "id", "instruction": {"instruction": "q", "input": None, "output": "a"}}
    alpaca = parse_spec(instruction_dict(
        sources={"items": {"path": "x.csv", "style": "alpaca"}}, columns=cols, publish=None,
        splits=None,
    ))
    assert alpaca.columns.label is None and alpaca.instruction_columns().output == "a"
    assert any("no columns.label: skipping label issues" in n for n in alpaca.notes())
    # classification specs are unchanged
    classic = parse_spec(spec_dict())
    assert classic.text_columns() == ["text"] and classic.sft is None


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        ({"sources": {"items": {"path": "x.jsonl", "stlye": "chat"}}},
         "sources.items.stlye: unknown key; valid keys: path, encoding, separator, "
         "max_line_bytes, format, style"),
        ({"sources": {"items": {"path": "x.jsonl", "style": "sharegpt"}}},
         "sources.items.style: Input should be 'alpaca', 'chat' or 'prompt_response'"),
        ({"sources": {"items": {"path": "x.jsonl"}}}, "sources.items.style: required for task "
         "instruction"),
        ({"sft": {"max_respose_chars": 3}}, "sft.max_respose_chars: unknown key; valid keys: "
         "allowed_roles"),
        ({"columns": {"id": "id", "instruction": {"mesages": "m"}}},
         "columns.instruction.mesages: unknown key; valid keys: instruction, input"),
        ({"columns": {"id": "id", "text": ["t"]}}, "columns.text/features: not used by task "
         "instruction"),
        ({"columns": {"id": "id", "label": "prompt"}}, "columns.label 'prompt': clash with the "
         "canonical columns"),
        ({"publish": {"filter": "quality => 4"}}, "publish.filter: Value error, filter "
         "'quality => 4': expected `column op value` at character 1"),
        ({"publish": {"filter": "quality >= 4 or quality < 2"}},
         "expected `and` or the end at character 14"),
        ({"publish": {"filter": "topic == spam"}}, "quote text values ('spam')"),
        ({"publish": {"fliter": "quality >= 4"}}, "publish.fliter: unknown key"),
        ({"label_issues": {}, "columns": {"id": "id"}}, "label_issues: needs columns.label"),
        ({"sft": {"min_response_chars": 5, "max_response_chars": 2}},
         "min_response_chars 5 > max_response_chars 2"),
    ],
)
def test_bad_instruction_spec_names_the_key(patch: dict[str, object], expected: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(instruction_dict(**patch), source="chat.yaml")
    assert "chat.yaml" in str(info.value)
    assert expected in str(info.value)


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        ({"sft": {}}, "sft: apply to task instruction only"),
        ({"sources": {"items": {"path": "x.csv", "style": "chat"}}},
         "sources.items.style: apply to task instruction only"),
        ({"columns": {"id": "a", "text": ["t"]}},
         "columns.label: required for task classification"),
        ({"splits": {}, "publish": {"formats": ["alpaca"]}}, "publish.formats alpaca: apply to"),
    ],
)
def test_classification_rejects_instruction_keys(patch: dict[str, object], expected: str) -> None:
    with pytest.raises(SpecError, match=expected):
        parse_spec(spec_dict(**patch))


def test_publish_filter_expression() -> None:
    import polars as pl

    from labelgate.errors import InputError
    from labelgate.stages.publish import filter_expr, parse_filter

    df = pl.DataFrame({"quality": [5, 3, None, 4], "topic": ["a", "a", "a", "spam"]})
    keep, reason = filter_expr(parse_filter("quality >= 4 and topic != 'spam'"), df.schema)
    out = df.select(keep.alias("keep"), reason.alias("reason"))
    assert out.get_column("keep").to_list() == [True, False, False, False]
    assert out.get_column("reason").to_list() == [
        None,
        "quality is 3: fails publish.filter quality >= 4",
        "quality is null: fails publish.filter quality >= 4",
        'topic is spam: fails publish.filter topic != "spam"',
    ]
    with pytest.raises(InputError, match="column 'qualty' not in the rows"):
        filter_expr(parse_filter("qualty >= 4"), df.schema)
    with pytest.raises(InputError, match=r"compares 'topic' .* with a number"):
        filter_expr(parse_filter("topic >= 4"), df.schema)
    assert parse_spec(spec_dict(splits={}, publish={})).publish_formats() == ["parquet", "jsonl"]


def test_empty_spec_file_and_yaml_errors_name_the_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(SpecError, match=r"empty\.yaml: the spec is empty"):
        load_spec(empty)
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [a\n")
    with pytest.raises(
        SpecError, match=r'(?s)broken\.yaml: not valid YAML: .*in ".*broken\.yaml", line 1'
    ):
        load_spec(broken)
