"""Property-based tests (hypothesis) for ingest and the contract (issue 9).

- The contract over generated frames raises nothing but the project's own errors, and
  input rows = valid + quarantined, every quarantined row with a reason.
- Generated CSV / JSONL content (odd unicode, quotes, separators, newlines in values)
  comes back from the reader with the same values, on the fast path and on the
  record-by-record path (a ragged record appended forces it), with record numbers.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from checks.contract import enforce_contract
from labelgate.errors import LabelgateError
from labelgate.spec import SourceSpec, parse_spec
from labelgate.stages.ingest.readers import read_file
from tests.conftest import spec_dict

PROPERTY = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])
LABELS = ["negative", "neutral", "positive"]

# --- the contract over generated frames -------------------------------------------------

cell = st.one_of(
    st.none(),
    st.sampled_from(["", " ", "nan", "NaN", "inf", "-inf", "1e309", "0", "1", "-1", "0.5",
                     "yes", "no", "t0001", "Positive ", "NEUTRAL", "x" * 600, "1_000",
                     "\x00", "\ufeff", "\u202e", 'a"; DROP TABLE runs; --']),
    st.sampled_from(LABELS),
    st.text(max_size=12),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
)
column_contract = st.fixed_dictionaries(
    {},
    optional={
        "dtype": st.sampled_from(["str", "int", "float", "bool"]),
        "nullable": st.booleans(),
        "unique": st.booleans(),
        "min": st.floats(-10, 10, allow_nan=False),
        "max": st.floats(-10, 10, allow_nan=False),
        "str_length": st.fixed_dictionaries({"min": st.integers(0, 3)},
                                            optional={"max": st.integers(3, 500)}),
        "regex": st.sampled_from(["t[0-9]{4}", ".*", "[a-z]+"]),
    },
)


@st.composite
def frames_and_contracts(draw: st.DrawFn) -> tuple[pl.DataFrame, dict[str, Any]]:
    n = draw(st.integers(0, 25))
    columns = ["tweet_id", "text", "sentiment", "extra", 'a"; DROP TABLE runs; --']
    data = {c: draw(st.lists(cell, min_size=n, max_size=n)) for c in columns}
    frame = pl.DataFrame(data, schema=dict.fromkeys(columns, pl.String)).with_columns(
        pl.Series("_batch", draw(st.lists(st.sampled_from(["b1", "b2"]), min_size=n,
                                          max_size=n)), dtype=pl.String),
        pl.Series("_row", range(1, n + 1), dtype=pl.Int64),
    )
    contract: dict[str, dict[str, Any]] = {"sentiment": {"dtype": "str", "isin": LABELS}}
    for name in draw(st.lists(st.sampled_from(columns), unique=True, max_size=4)):
        c: dict[str, Any] = draw(column_contract)
        if "min" in c and "max" in c and c["min"] > c["max"]:
            c["min"], c["max"] = c["max"], c["min"]
        if c.get("dtype") in ("int", "float", "bool") or ("min" in c or "max" in c):
            c.pop("str_length", None)
            c.pop("regex", None)
        if c.get("dtype") in ("str", "bool"):
            c.pop("min", None)
            c.pop("max", None)
        contract[name] = c
    return frame, contract


@PROPERTY
@given(frames_and_contracts())
def test_contract_loses_no_row_and_raises_only_its_own_errors(
    case: tuple[pl.DataFrame, dict[str, Any]],
) -> None:
    frame, contract = case
    try:
        spec = parse_spec(spec_dict(contract=contract))
    except LabelgateError:
        return  # a contract the spec model refuses (e.g. min on a str column)
    rejects = pl.DataFrame({"_row": [frame.height + 1], "reason": ["not valid JSON"],
                            "raw": ["{"], "_batch": ["b1"]})
    try:
        result = enforce_contract(frame, spec=spec, rejects=rejects)
    except LabelgateError:
        return
    assert result.rows_input == frame.height + 1
    assert result.rows_input == result.rows_valid + result.rows_quarantined
    q = result.quarantine
    assert q.get_column("reason").null_count() == 0
    assert q.select("batch", "row").n_unique() == result.rows_quarantined
    kept = set(result.valid.select("_batch", "_row").rows())
    assert kept.isdisjoint(q.select("batch", "row").rows())


# --- ingest round trip ------------------------------------------------------------------

value = st.one_of(
    st.text(min_size=1, max_size=30),
    st.text(alphabet=st.sampled_from(list(',"\n\r\t ;\\\'ab\u00e9\u4e2d\U0001f600\u200b\ufeff')),
            min_size=1, max_size=12),
)
records = st.lists(st.tuples(value, value, value), min_size=0, max_size=20)
HEAD = ["id", "text", "label"]


def _csv_bytes(rows: list[tuple[str, str, str]], *, crlf: bool) -> bytes:
    out = io.StringIO()
    # Python's writer quotes only the line terminator's characters: with "\n" endings a
    # bare "\r" would go out unquoted (and read back as a line ending by any reader).
    lone_cr = not crlf and any("\r" in v for r in rows for v in r)
    writer = csv.writer(out, lineterminator="\r\n" if crlf else "\n",
                        quoting=csv.QUOTE_ALL if lone_cr else csv.QUOTE_MINIMAL)
    writer.writerow(HEAD)
    writer.writerows(rows)
    return out.getvalue().encode()


def _expected(rows: list[tuple[str, str, str]]) -> list[tuple[str | None, ...]]:
    return [tuple(v if v != "" else None for v in r) for r in rows]


@PROPERTY
@given(records, st.booleans(), st.booleans())
def test_csv_round_trip(tmp_path: Path, rows: list[tuple[str, str, str]], crlf: bool,
                        ragged: bool) -> None:
    path = tmp_path / "rt.csv"
    content = _csv_bytes(rows, crlf=crlf)
    if ragged:  # one short record at the end sends the file down the record-by-record path
        content += b"only-one-field\n"
    path.write_bytes(content)
    result = read_file(path, fmt="csv", source=SourceSpec(path="rt.csv"))
    assert result.rows.select(HEAD).rows() == _expected(rows)
    assert result.rows.get_column("_row").to_list() == list(range(1, len(rows) + 1))
    assert result.rejects.get_column("_row").to_list() == ([len(rows) + 1] if ragged else [])


@PROPERTY
@given(records, st.booleans())
def test_jsonl_round_trip(tmp_path: Path, rows: list[tuple[str, str, str]], bad_line: bool) -> None:
    path = tmp_path / "rt.jsonl"
    lines = [json.dumps(dict(zip(HEAD, r, strict=True)), ensure_ascii=False) for r in rows]
    if bad_line:
        lines.insert(len(lines) // 2, "[1, 2]")
    if not lines or (bad_line and not rows):
        return  # nothing or only a non-object: an InputError, covered in test_bad_input
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = read_file(path, fmt="jsonl", source=SourceSpec(path="rt.jsonl"))
    assert [tuple(r) for r in result.rows.select(HEAD).rows()] == rows
    assert result.rejects.height == int(bad_line)
    assert result.rows.height + result.rejects.height == len(lines)
