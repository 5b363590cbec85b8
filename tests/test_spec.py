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
    assert gate["propertyNames"]["enum"] == sorted(GATE_CHECKS)
    assert schema["additionalProperties"] is False
