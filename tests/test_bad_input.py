"""Issue 9, bad input: every case ends as an `InputError`/`SpecError` naming the file and the
row, column or key, or as rows quarantined with reasons; input = valid + quarantined.

Each test runs the pure path a run takes: `ingest_source` (reader + lake) → `load_batches`
→ `enforce_contract`.
"""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from checks.contract import ContractResult, enforce_contract
from labelgate.errors import InputError, SpecError
from labelgate.spec import SourceSpec, parse_spec
from labelgate.store.lake import Batch, ingest_source, load_batches
from tests.conftest import item_rows, spec_dict, write_csv

HEADER = "tweet_id,text,sentiment,confidence"


def _ingest(tmp_path: Path, pattern: str, **opts: Any) -> list[Batch]:
    return ingest_source(
        SourceSpec(path=pattern, **opts),
        key="items", dataset="ds", store=tmp_path / "store", base_dir=tmp_path,
    )


def _run(tmp_path: Path, pattern: str, *, spec: dict[str, Any] | None = None,
         **opts: Any) -> tuple[list[Batch], ContractResult]:
    """Ingest, load and enforce; asserts the row identity against the batches' counts."""
    batches = _ingest(tmp_path, pattern, **opts)
    rows, rejects = load_batches(batches)
    result = enforce_contract(rows, spec=parse_spec(spec or spec_dict()), rejects=rejects)
    n_input = sum(b.rows + b.rejected for b in batches)
    assert result.rows_input == n_input
    assert result.rows_input == result.rows_valid + result.rows_quarantined
    assert result.quarantine.get_column("row").n_unique() <= result.rows_quarantined
    return batches, result


def _csv(lines: list[str], *, eol: str = "\n", final_eol: bool = True) -> bytes:
    return (eol.join(lines) + (eol if final_eol else "")).encode()


def _good(i: int) -> str:
    r = item_rows(i + 1)[i]
    return f"{r['tweet_id']},\"{r['text']}\",{r['sentiment']},{r['confidence']}"


def _parse_rejects(result: ContractResult) -> list[tuple[int, str]]:
    q = result.quarantine.filter(pl.col("check") == "parse")
    return list(zip(q.get_column("row").to_list(), q.get_column("reason").to_list(), strict=True))


# --- files ------------------------------------------------------------------------------


def test_empty_file_is_an_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "empty.csv").write_bytes(b"")
    with pytest.raises(InputError, match=r"empty\.csv: file is empty \(0 bytes\)"):
        _ingest(tmp_path, "empty.csv")


@pytest.mark.parametrize("final_eol", [True, False])
def test_header_only_is_zero_rows(tmp_path: Path, final_eol: bool) -> None:
    (tmp_path / "h.csv").write_bytes(_csv([HEADER], final_eol=final_eol))
    [batch], result = _run(tmp_path, "h.csv")
    assert (batch.rows, batch.rejected) == (0, 0)
    assert (result.rows_input, result.rows_valid, result.rows_quarantined) == (0, 0, 0)


def test_missing_file_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"sources\.items\.path: file not found: .*gone\.csv"):
        _ingest(tmp_path, "gone.csv")


def test_folder_instead_of_file(tmp_path: Path) -> None:
    (tmp_path / "dir.csv").mkdir()
    with pytest.raises(InputError, match=r"dir\.csv is a folder"):
        _ingest(tmp_path, "dir.csv")
    with pytest.raises(InputError, match=r"dir\.csv: is a folder"):
        from labelgate.stages.ingest.readers import read_file

        read_file(tmp_path / "dir.csv", fmt="csv", source=SourceSpec(path="x"))


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="running as root: file permissions do not stop reads")
def test_unreadable_file_names_it(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "locked.csv", item_rows(3))
    path.chmod(0)
    try:
        with pytest.raises(InputError, match=r"locked\.csv: cannot read: Permission denied"):
            _ingest(tmp_path, "locked.csv")
    finally:
        path.chmod(0o644)


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("lines.csv", "\n".join(json.dumps(r) for r in item_rows(3)).encode(),
         r"lines\.csv: line 1 looks like JSON .* set sources\.items\.format: jsonl"),
        ("table.jsonl", _csv([HEADER, _good(0), _good(1)]),
         r"table\.jsonl: no line is a JSON object \(line 1: not valid JSON"),
        ("fake.parquet", _csv([HEADER, _good(0)]), r"fake\.parquet: cannot read as Parquet"),
        ("plain.csv.gz", _csv([HEADER, _good(0)]), r"plain\.csv\.gz: named \.gz but is not gzip"),
        ("cut.csv.gz", gzip.compress(_csv([HEADER, _good(0)]))[:-12],
         r"cut\.csv\.gz: gzip stream is truncated or corrupt"),
    ],
)
def test_wrong_content_for_the_name_is_an_error(tmp_path: Path, name: str, content: bytes,
                                                expected: str) -> None:
    (tmp_path / name).write_bytes(content)
    with pytest.raises(InputError, match=expected):
        _ingest(tmp_path, name)


def test_parquet_named_csv_is_an_error(tmp_path: Path) -> None:
    pl.DataFrame(item_rows(3)).write_parquet(tmp_path / "p.csv")
    with pytest.raises(InputError, match=r"p\.csv: is a Parquet file, not csv"):
        _ingest(tmp_path, "p.csv")


def test_unknown_extension_is_a_spec_error(tmp_path: Path) -> None:
    write_csv(tmp_path / "a.dat", item_rows(2))
    with pytest.raises(
        SpecError, match=r"a\.dat: cannot infer the format .* sources\.items\.format to one of csv"
    ):
        _ingest(tmp_path, "a.dat")


@pytest.mark.parametrize("name", ["a.csv.gz", "a.jsonl.gz", "a.parquet.gz"])
def test_gzip_input(tmp_path: Path, name: str) -> None:
    rows = item_rows(5)
    if name.startswith("a.csv"):
        raw = pl.DataFrame(rows).write_csv().encode()
    elif name.startswith("a.jsonl"):
        raw = "\n".join(json.dumps(r) for r in rows).encode() + b"\n"
    else:
        pl.DataFrame(rows).write_parquet(tmp_path / "tmp.parquet")
        raw = (tmp_path / "tmp.parquet").read_bytes()
    (tmp_path / name).write_bytes(gzip.compress(raw))
    [batch], result = _run(tmp_path, name)
    assert batch.format == name.split(".")[1]
    assert (batch.rows, result.rows_valid) == (5, 5)
    assert result.valid.get_column("tweet_id").to_list() == [r["tweet_id"] for r in rows]
    [again] = _ingest(tmp_path, name)  # the hash is over the compressed bytes: a no-op
    assert again.reused and again.batch == batch.batch


def test_gzip_with_a_bad_record_quarantines_it(tmp_path: Path) -> None:
    content = _csv([HEADER, _good(0), "t9,too,many,fields,here", _good(2)])
    (tmp_path / "a.csv.gz").write_bytes(gzip.compress(content))
    _, result = _run(tmp_path, "a.csv.gz")
    assert result.rows_valid == 2 and [r for r, _ in _parse_rejects(result)] == [2]


def test_utf8_bom_is_not_part_of_the_first_column(tmp_path: Path) -> None:
    (tmp_path / "bom.csv").write_bytes(b"\xef\xbb\xbf" + _csv([HEADER, _good(0), _good(1)]))
    _, result = _run(tmp_path, "bom.csv")
    assert result.valid.columns[:2] == ["_row", "tweet_id"] and result.rows_valid == 2
    # the BOM also goes on the by-record path (a short record sends the file there)
    (tmp_path / "bom2.csv").write_bytes(b"\xef\xbb\xbf" + _csv([HEADER, _good(0), "t1,x"]))
    _, result = _run(tmp_path, "bom2.csv")
    assert result.valid.columns[:2] == ["_row", "tweet_id"] and result.rows_valid == 1


def test_latin1_bytes_in_utf8_file_quarantine_only_those_rows(tmp_path: Path) -> None:
    lines = [HEADER.encode(), _good(0).encode(), "t0001,caf\xe9 au lait,positive,0.6".encode(
        "latin-1"), _good(2).encode(), "t0003,na\xefve,neutral,0.7".encode("latin-1")]
    (tmp_path / "mixed.csv").write_bytes(b"\n".join(lines) + b"\n")
    [batch], result = _run(tmp_path, "mixed.csv")
    assert (batch.rows, batch.rejected) == (2, 2)
    assert result.valid.get_column("_row").to_list() == [1, 3]
    rejected = _parse_rejects(result)
    assert [r for r, _ in rejected] == [2, 4]
    reason = rejected[0][1]
    assert "column 'text'" in reason and "line 3" in reason
    assert "sources.items.encoding: latin1" in reason and "utf8-lossy" in reason
    raw = result.quarantine.filter(pl.col("row") == 2).get_column("failure_value")[0]
    assert "caf\\xe9" in raw  # the bad byte is shown, not lost
    # the two options: latin1 reads every row (mis-decoding the UTF-8 ones is the user's
    # call), utf8-lossy keeps every row with U+FFFD for the bad bytes
    _, lossy = _run(tmp_path, "mixed.csv", encoding="utf8-lossy")
    assert lossy.rows_valid == 4 and "caf\ufffd au lait" in lossy.valid.get_column("text")[1]
    _, latin = _run(tmp_path, "mixed.csv", encoding="latin1")
    assert latin.rows_valid == 4 and latin.valid.get_column("text")[1] == "café au lait"


def test_windows_line_endings_leave_no_carriage_return(tmp_path: Path) -> None:
    lines = [HEADER, _good(0), _good(1), "t0002,\"two\r\nlines\",neutral,0.7"]
    (tmp_path / "crlf.csv").write_bytes(_csv(lines, eol="\r\n"))
    (tmp_path / "crlf_short.csv").write_bytes(_csv([*lines, "t0003,short"], eol="\r\n"))
    for name in ("crlf.csv", "crlf_short.csv"):  # the fast path and the by-record path
        _, result = _run(tmp_path, name, spec=spec_dict(sources={"items": {"path": name}}))
        assert result.rows_valid == 3
        for column in ("tweet_id", "sentiment", "confidence"):
            assert not result.valid.get_column(column).cast(pl.String).str.contains("\r").any()
        assert result.valid.get_column("confidence").to_list() == [0.5, 0.6, 0.7]
        assert result.valid.get_column("text")[2] == "two\r\nlines"  # quoted: the value's own


def test_truncated_last_line_without_newline(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_bytes(_csv([HEADER, _good(0), _good(1)], final_eol=False))
    _, result = _run(tmp_path, "t.csv")
    assert result.rows_valid == 2 and result.valid.get_column("confidence").to_list() == [0.5, 0.6]


def test_truncated_last_line_inside_quotes(tmp_path: Path) -> None:
    lines = [HEADER, _good(0), _good(1), 't0002,"the file was cut off in the mi']
    (tmp_path / "t.csv").write_bytes(_csv(lines, final_eol=False))
    [batch], result = _run(tmp_path, "t.csv")
    assert (batch.rows, batch.rejected) == (2, 1)
    [(row, reason)] = _parse_rejects(result)
    assert row == 3 and "line 4" in reason and "quoted field is not closed" in reason


def test_truncated_last_line_with_missing_fields(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_bytes(_csv([HEADER, _good(0), "t0001,half a li"], final_eol=False))
    _, result = _run(tmp_path, "t.csv")
    assert result.rows_valid == 1
    [(row, reason)] = _parse_rejects(result)
    assert row == 2 and reason.startswith("2 field(s), the header has 4 (line 3)")


def test_jsonl_bad_lines_are_quarantined_with_line_numbers(tmp_path: Path) -> None:
    lines = [json.dumps(r) for r in item_rows(4)]
    lines[1] = '{"tweet_id": "t0001", "text": '
    lines[2] = json.dumps(list(item_rows(3)[2].values()))
    (tmp_path / "a.jsonl").write_text("\n".join(lines) + "\n")
    [batch], result = _run(tmp_path, "a.jsonl", spec=spec_dict(sources={"items": {"path": "a"}}))
    assert (batch.rows, batch.rejected) == (2, 2)
    assert [(r, why.split(":")[0]) for r, why in _parse_rejects(result)] == [
        (2, "not valid JSON"), (3, "expected a JSON object per line, got list")
    ]


@pytest.mark.parametrize(
    ("bad", "fields"),
    [("t0001,too,many,fields,here", 5), ("t0001,too few", 2), ('t0001,"x"y,positive,0.5', 0)],
)
def test_ragged_csv_row_is_quarantined_and_the_rest_kept(tmp_path: Path, bad: str,
                                                         fields: int) -> None:
    (tmp_path / "r.csv").write_bytes(_csv([HEADER, _good(0), bad, _good(2), _good(3)]))
    [batch], result = _run(tmp_path, "r.csv")
    assert (batch.rows, batch.rejected) == (3, 1)
    assert result.valid.get_column("_row").to_list() == [1, 3, 4]
    assert result.valid.get_column("confidence").to_list() == [0.5, 0.7, 0.8]
    [(row, reason)] = _parse_rejects(result)
    assert row == 2 and "line 3" in reason
    if fields:
        assert reason.startswith(f"{fields} field(s), the header has 4")
    else:
        assert reason.startswith("malformed CSV at line 3")


def test_blank_lines_are_not_records(tmp_path: Path) -> None:
    (tmp_path / "b.csv").write_bytes(_csv([HEADER, _good(0), "", _good(1), "", ""]))
    [batch], result = _run(tmp_path, "b.csv")
    assert (batch.rows, batch.rejected) == (2, 0)
    assert result.valid.get_column("_row").to_list() == [1, 2]


def test_quoted_newlines_keep_record_numbers(tmp_path: Path) -> None:
    lines = [HEADER, 't0000,"first\nsecond\nthird",negative,0.5', _good(1),
             't0002,"a ""quoted"", with comma",neutral,0.7', "t0003,bad"]
    (tmp_path / "q.csv").write_bytes(_csv(lines))
    (tmp_path / "q_ok.csv").write_bytes(_csv(lines[:-1]))
    _, fast = _run(tmp_path, "q_ok.csv")
    _, slow = _run(tmp_path, "q.csv")  # the short last record: the by-record path
    for result in (fast, slow):
        assert result.valid.get_column("_row").to_list() == [1, 2, 3]
        assert result.valid.get_column("text").to_list()[::2] == [
            "first\nsecond\nthird", 'a "quoted", with comma'
        ]
    [(row, reason)] = _parse_rejects(slow)
    assert row == 4 and "(line 7)" in reason  # record 4 starts on physical line 7


# --- values -----------------------------------------------------------------------------


def test_wrong_types_and_nulls_are_quarantined(tmp_path: Path) -> None:
    rows = item_rows(6)
    rows[1]["confidence"] = "high"
    rows[2]["tweet_id"] = None
    rows[3]["sentiment"] = None
    write_csv(tmp_path / "items" / "a.csv", rows)
    _, result = _run(tmp_path, "items/*.csv")
    got = result.quarantine.select("row", "column", "check").rows()
    assert got == [(2, "confidence", "dtype"), (3, "tweet_id", "not_nullable"),
                   (4, "sentiment", "not_nullable")]


def test_jsonl_mixed_types_in_a_column(tmp_path: Path) -> None:
    rows: list[dict[str, Any]] = item_rows(4)
    rows[1]["confidence"] = "high"
    rows[2]["confidence"] = None  # nullable: contract.confidence says nothing else
    rows[3]["tweet_id"] = 3  # a number where the others are text
    (tmp_path / "m.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    _, result = _run(tmp_path, "m.jsonl")
    assert result.quarantine.select("row", "column", "check").rows() == [
        (2, "confidence", "dtype")
    ]
    assert result.valid.get_column("tweet_id").to_list() == ["t0000", "t0002", "3"]


def test_duplicate_ids_within_and_across_batches_keep_the_first(tmp_path: Path) -> None:
    first = item_rows(4)
    first[3]["tweet_id"] = "t0000"  # within the first file
    second = [*item_rows(6)[4:], dict(item_rows(2)[1], text="a later copy")]  # t0001 again
    write_csv(tmp_path / "items" / "a.csv", first)
    write_csv(tmp_path / "items" / "b.csv", second)
    batches, result = _run(tmp_path, "items/*.csv")
    q = result.quarantine
    assert q.select("batch", "row", "id", "check").rows() == [
        (batches[0].batch, 4, "t0000", "unique"), (batches[1].batch, 3, "t0001", "unique")
    ]
    kept = result.valid.filter(pl.col("tweet_id") == "t0001")
    assert kept.get_column("_batch").to_list() == [batches[0].batch]  # the first file wins
    assert kept.get_column("text")[0] == first[1]["text"]


def test_unknown_and_near_miss_labels(tmp_path: Path) -> None:
    rows = item_rows(6)
    rows[0]["sentiment"] = "angry"
    rows[1]["sentiment"] = "Positive "
    rows[2]["sentiment"] = "NEUTRAL"
    write_csv(tmp_path / "items" / "a.csv", rows)
    _, result = _run(tmp_path, "items/*.csv")
    reasons = result.quarantine.sort("row").get_column("reason").to_list()
    assert reasons[0] == (
        "'angry' is not one of contract.sentiment.isin ['negative', 'neutral', 'positive']")
    assert reasons[1].endswith("'Positive ' differs from 'positive' only in case/whitespace")
    assert reasons[2].endswith("'NEUTRAL' differs from 'neutral' only in case/whitespace")


def test_a_10_mb_text_field(tmp_path: Path) -> None:
    rows = item_rows(3)
    rows[1]["text"] = "ok " * 3_500_000
    write_csv(tmp_path / "items" / "a.csv", rows)
    _, result = _run(tmp_path, "items/*.csv")
    [record] = result.quarantine.rows(named=True)
    assert (record["row"], record["check"]) == (2, "str_length")
    assert record["reason"] == "length 10500000 outside contract.text.str_length [1, 500]"
    assert len(record["failure_value"]) <= 120


@pytest.mark.parametrize(
    ("bounds", "quarantined"),
    [
        ({"min": 0, "max": 1}, {1: "nan", 2: "max", 3: "min", 4: "nan"}),
        ({"min": 0}, {1: "nan", 3: "min", 4: "nan"}),  # inf >= 0 is in range
        ({"max": 1}, {1: "nan", 2: "max", 4: "nan"}),
        ({}, {}),  # no range: NaN and inf are floats like any other
    ],
)
def test_nan_and_inf_in_a_float_column(tmp_path: Path, bounds: dict[str, float],
                                       quarantined: dict[int, str]) -> None:
    rows = item_rows(6)
    for i, value in enumerate(["nan", "inf", "-inf", "NaN"]):
        rows[i]["confidence"] = value
    write_csv(tmp_path / "items" / "a.csv", rows)
    contract = {**spec_dict()["contract"], "confidence": {"dtype": "float", **bounds}}
    _, result = _run(tmp_path, "items/*.csv", spec=spec_dict(contract=contract))
    assert dict(result.quarantine.select("row", "check").rows()) == quarantined
    if 1 in quarantined:
        reason = result.quarantine.filter(pl.col("row") == 1).get_column("reason")[0]
        assert reason.startswith("NaN is not a number in range (contract.confidence.")


def test_nan_in_jsonl_probabilities(tmp_path: Path) -> None:
    lines = [json.dumps(r) for r in item_rows(3)]
    lines[1] = lines[1].replace('"confidence": 0.6', '"confidence": NaN')
    lines[2] = lines[2].replace('"confidence": 0.7', '"confidence": Infinity')
    (tmp_path / "p.jsonl").write_text("\n".join(lines) + "\n")
    _, result = _run(tmp_path, "p.jsonl")
    assert result.quarantine.select("row", "check").rows() == [(2, "nan"), (3, "max")]


# --- hostile names ----------------------------------------------------------------------

HOSTILE = 'a"; DROP TABLE runs; --'


def test_hostile_column_name_flows_through_contract_and_quarantine(tmp_path: Path) -> None:
    rows = [dict(r, **{HOSTILE: "x"}) for r in item_rows(4)]
    rows[1][HOSTILE] = "y"
    rows[2][HOSTILE] = None
    write_csv(tmp_path / "items" / "a.csv", rows)
    contract = {**spec_dict()["contract"],
                HOSTILE: {"dtype": "str", "nullable": False, "isin": ["x"]}}
    _, result = _run(tmp_path, "items/*.csv", spec=spec_dict(contract=contract))
    assert result.quarantine.select("row", "column", "check").rows() == [
        (2, HOSTILE, "isin"), (3, HOSTILE, "not_nullable")
    ]
    assert f"contract.{HOSTILE}.isin" in result.quarantine.get_column("reason")[0]
    assert result.valid.get_column(HOSTILE).to_list() == ["x", "x"]
