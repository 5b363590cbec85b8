"""Specs that cannot run fail to parse (at `check` and at `run`), naming the key.

A contract regex polars cannot compile, a range with min above max, `isin` values that
cannot be of the column's dtype, and a source path whose extension names no format.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml
from typer.testing import CliRunner

from checks.contract import enforce_contract
from labelgate.errors import SpecError
from labelgate.spec import parse_spec
from labelgate.store.lake import ingest_source
from tests.conftest import item_rows, spec_dict, write_csv


def _contract(column: str, rule: dict[str, Any]) -> dict[str, Any]:
    contract = dict(spec_dict()["contract"])
    contract[column] = rule
    return spec_dict(contract=contract)


def _error(data: dict[str, Any]) -> str:
    with pytest.raises(SpecError) as info:
        parse_spec(data)
    return str(info.value)


# --------------------------------------------------------------------------- regex


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("(?=cf-)cf-[0-9]{5}", "look-around"),
        (r"cf-\d+(?!x)", "look-around"),
        ("(?<=a)b", "look-around"),
        ("a)(b", "unopened group"),  # compiles once wrapped in ^(?:...)$: checked alone too
        ("[0-9", "unclosed character class"),
        (r"(a)\1", "backreferences"),
    ],
)
def test_regex_polars_cannot_compile_names_the_key(pattern: str, reason: str) -> None:
    msg = _error(_contract("tweet_id", {"dtype": "str", "regex": pattern}))
    line = next(ln for ln in msg.splitlines() if "contract.tweet_id.regex" in ln)
    assert repr(pattern) in line and reason in line


@pytest.mark.parametrize("pattern", [r"\p{L}+", "cf-[0-9]{5}", "(?i)CF-\\d{5}", "(?P<n>a)b"])
def test_rust_regex_syntax_is_accepted(pattern: str) -> None:
    # \p{L} is valid Rust regex (what the run uses) though Python's `re` rejects it
    spec = parse_spec(_contract("tweet_id", {"dtype": "str", "regex": pattern}))
    assert spec.contract["tweet_id"].regex == pattern


def test_accepted_regex_runs_in_the_contract() -> None:
    spec = parse_spec(_contract("tweet_id", {"dtype": "str", "regex": r"t\p{Nd}{4}"}))
    rows = pl.DataFrame(item_rows(3)).with_columns(pl.Series("_row", [1, 2, 3]),
                                                   pl.lit("b").alias("_batch"))
    rows = rows.with_columns(pl.col("tweet_id").cast(pl.String))
    rows = rows.with_columns(
        pl.when(pl.col("_row") == 2).then(pl.lit("x1")).otherwise("tweet_id").alias("tweet_id")
    )
    result = enforce_contract(rows, spec=spec)
    assert result.quarantine.filter(pl.col("check") == "regex").get_column("id").to_list() == [
        "x1"
    ]


# --------------------------------------------------------------------------- ranges


def test_min_above_max_names_the_key() -> None:
    msg = _error(_contract("confidence", {"dtype": "float", "min": 1, "max": 0}))
    assert "contract.confidence.max: Value error, max 0 is below min 1" in msg


def test_str_length_min_above_max_names_the_key() -> None:
    msg = _error(_contract("text", {"dtype": "str", "str_length": {"min": 5, "max": 2}}))
    assert "contract.text.str_length.max: Value error, max 2 is below min 5" in msg


def test_str_length_without_bounds_names_the_key() -> None:
    # pandera raised a bare ValueError (a traceback) when the contract was built
    msg = _error(_contract("text", {"dtype": "str", "str_length": {}}))
    assert "contract.text.str_length: Value error, give min, max or both" in msg


def test_equal_bounds_and_one_sided_ranges_are_fine() -> None:
    spec = parse_spec(spec_dict(contract={
        "confidence": {"dtype": "float", "min": 0.5, "max": 0.5},
        "text": {"str_length": {"min": 3, "max": 3}},
        "other": {"min": 10},
        "more": {"str_length": {"max": 0}},
    }))
    assert spec.contract["confidence"].min == spec.contract["confidence"].max == 0.5


# --------------------------------------------------------------------------- isin vs dtype


@pytest.mark.parametrize("dtype", ["int", "float"])
def test_string_isin_for_a_numeric_dtype_names_the_key(dtype: str) -> None:
    msg = _error(_contract("confidence", {"dtype": dtype, "isin": ["low", "high"]}))
    line = next(ln for ln in msg.splitlines() if "contract.confidence.isin" in ln)
    assert f"must be of dtype {dtype}" in line and "'low'" in line and "'high'" in line


@pytest.mark.parametrize(
    ("rule", "bad"),
    [
        ({"dtype": "int", "isin": [1, 2.5]}, "2.5"),
        ({"dtype": "int", "isin": [1, True]}, "True"),
        ({"dtype": "bool", "isin": [True, "maybe"]}, "'maybe'"),
        ({"dtype": "str", "isin": ["a", 1.5]}, "1.5 is not a str; quote it"),
    ],
)
def test_isin_values_that_cannot_be_the_dtype(rule: dict[str, Any], bad: str) -> None:
    msg = _error(_contract("confidence", rule))
    assert "contract.confidence.isin" in msg and bad in msg


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ({"dtype": "int", "isin": [1, "2", 3.0]}, [1, 2, 3]),
        ({"dtype": "float", "isin": [0, 1, "0.5"]}, [0.0, 1.0, 0.5]),
        ({"dtype": "str", "isin": [0, 1, "x"]}, ["0", "1", "x"]),
        ({"dtype": "bool", "isin": [True, "no"]}, [True, False]),
        ({"isin": ["a", 1]}, ["a", 1]),  # no dtype: left as written
    ],
)
def test_isin_values_are_cast_to_the_dtype(rule: dict[str, Any], expected: list[Any]) -> None:
    isin = parse_spec(_contract("confidence", rule)).contract_for("confidence").isin
    assert isin == expected
    assert [type(v) for v in isin or []] == [type(v) for v in expected]


def test_float_isin_written_as_integers_runs() -> None:
    # `is_in` needs like types: before, [0, 1] on a float column failed the run
    spec = parse_spec(_contract("confidence", {"dtype": "float", "isin": [0, 1]}))
    rows = pl.DataFrame({
        "tweet_id": ["a", "b", "c"], "text": ["x", "y", "z"],
        "sentiment": ["negative", "neutral", "positive"], "confidence": ["0", "1", "0.5"],
        "_row": [1, 2, 3], "_batch": ["b", "b", "b"],
    })
    result = enforce_contract(rows, spec=spec)
    assert (result.rows_valid, result.rows_quarantined) == (2, 1)
    assert result.quarantine.get_column("check").to_list() == ["isin"]


# --------------------------------------------------------------------------- source formats


@pytest.mark.parametrize(
    ("key", "path", "shown"),
    [
        ("items", "items/*.xlsx", "'.xlsx'"),
        ("items", "items/part-[0-9].xlsx", "'.xlsx'"),
        ("items", "data.gz", "'.gz'"),
        ("gold", "gold.json", "'.json'"),  # only annotations read Label Studio exports
        ("predictions", "probs.txt", "'.txt'"),
    ],
)
def test_unknown_extension_names_the_source_key(key: str, path: str, shown: str) -> None:
    sources: dict[str, Any] = {"items": {"path": "items/*.csv"}}
    if key == "gold":
        sources["annotations"] = {"path": "a.csv"}
    sources[key] = {"path": path}
    msg = _error(spec_dict(sources=sources))
    line = next(ln for ln in msg.splitlines() if ln.startswith(f"  sources.{key}:"))
    assert shown in line and f"set sources.{key}.format to one of csv, jsonl, parquet" in line


@pytest.mark.parametrize(
    "path",
    ["items/*.csv", "items/*.TSV", "a.jsonl.gz", "a.csv.gz", "x/*.gz", "x/*", "x/**/*.parquet",
     "x/*.*", "a.pq", "a.ndjson", "x/part-*.csv", "dated.2026-01-01.csv", "a.csv.bak",
     "items", "data/"],  # no extension: a folder? the run says (is a folder / format)
)
def test_inferable_or_open_paths_are_accepted(path: str) -> None:
    assert parse_spec(spec_dict(sources={"items": {"path": path}})).sources.items.path == path


def test_explicit_format_and_label_studio_annotations_are_accepted() -> None:
    spec = parse_spec(spec_dict(sources={
        "items": {"path": "items/*.xlsx", "format": "csv"},
        "annotations": {"path": "export.json"},
    }))
    assert spec.sources.annotations is not None and spec.sources.annotations.is_label_studio()
    ann = {"path": "export.txt"}
    msg = _error(spec_dict(sources={"items": {"path": "a.csv"}, "annotations": ann}))
    assert "set sources.annotations.format to one of csv, jsonl, label-studio, parquet" in msg


def test_open_glob_with_unknown_files_still_fails_at_ingest(tmp_path: Path) -> None:
    # `*` cannot be judged at parse time; the file it matches is judged when read
    write_csv(tmp_path / "in" / "a.dat", item_rows(2))
    spec = parse_spec(spec_dict(sources={"items": {"path": "in/*"}}), base_dir=tmp_path)
    with pytest.raises(SpecError, match=r"a\.dat: cannot infer the format"):
        ingest_source(spec.sources.items, key="items", dataset="ds",
                      store=tmp_path / "store", base_dir=tmp_path)


# --------------------------------------------------------------------------- CLI


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"sources": {"items": {"path": "items/*.xlsx"}}}, "sources.items"),
        ({"contract": {"tweet_id": {"regex": "(?=t)t[0-9]+"}}}, "contract.tweet_id.regex"),
        ({"contract": {"confidence": {"min": 1, "max": 0}}}, "contract.confidence.max"),
        ({"contract": {"confidence": {"dtype": "int", "isin": ["x"]}}},
         "contract.confidence.isin"),
    ],
)
def test_cli_check_and_run_refuse_the_spec(tmp_path: Path, overrides: dict[str, Any],
                                            key: str) -> None:
    from flows.cli import app

    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec_dict(**overrides)))
    runner = CliRunner()
    for command in ("check", "run"):
        res = runner.invoke(app, [command, str(path)])
        assert res.exit_code == 2, (command, res.output)
        assert f"  {key}: " in res.output and "ok" not in res.output.split()


# --------------------------------------------------------------------------- label issues


def test_label_issue_passes_other_than_one_or_two_name_the_key() -> None:
    msg = _error(spec_dict(label_issues={"method": "cross_validated", "passes": 3}))
    assert "label_issues.passes: Input should be less than or equal to 2" in msg
    assert "label_issues.passes" in _error(spec_dict(label_issues={"passes": True}))
    assert "label_issues.passes" in _error(spec_dict(label_issues={"passes": 2.0}))
    assert parse_spec(spec_dict(label_issues={"passes": 1})).label_issues.passes == 1  # type: ignore[union-attr]
    assert parse_spec(spec_dict(label_issues={})).label_issues.passes == 2  # type: ignore[union-attr]
