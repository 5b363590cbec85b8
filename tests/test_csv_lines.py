"""Every physical line of a CSV file is accounted for: a quote left open no longer swallows
the lines after it (issue 20).

A malformed record that spans lines, whose second line reads as a record of its own, is a
broken quote: its first line is rejected alone, naming the line and the column, and the
following lines are read as records. A quoted value that really spans lines (closed
later) is still one record.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
import yaml

from labelgate.spec import SourceSpec
from labelgate.stages.ingest.readers import read_file
from labelgate.store.lake import ingest_source

HEADER = "id,text,label"


def _fine(i: int) -> str:
    return f"q{i},fine text number {i},a"


def _write(tmp_path: Path, lines: list[str], *, name: str = "f.csv", eol: str = "\n") -> Path:
    path = tmp_path / name
    path.write_bytes((eol.join(lines) + eol).encode())
    return path


def _read(path: Path) -> tuple[list[str], list[tuple[int, str]], tuple[int, ...], int]:
    """ids of parsed rows, (record, reason) of rejects, rejected line numbers, lines."""
    r = read_file(path, fmt="csv", source=SourceSpec(path=path.name))
    assert r.lines is not None and r.lines.balanced()
    assert r.lines.records == r.rows.height + r.rejects.height
    rejects = list(zip(r.rejects.get_column("_row").to_list(),
                       r.rejects.get_column("reason").to_list(), strict=True))
    return r.rows.get_column("id").to_list(), rejects, r.lines.rejected, r.lines.total


def test_the_reported_case_keeps_the_lines_after_the_broken_quote(tmp_path: Path) -> None:
    lines = [HEADER, _fine(1), _fine(2), 'q3,"broken text 3,b', *[_fine(i) for i in range(4, 8)]]
    ids, rejects, rejected, total = _read(_write(tmp_path, lines))
    assert ids == ["q1", "q2", "q4", "q5", "q6", "q7"]
    [(record, reason)] = rejects
    assert record == 3 and rejected == (4,) and total == 8
    assert "line 4" in reason and "column 'text'" in reason and "broken quote" in reason


@pytest.mark.parametrize(
    ("broken_at", "column"),
    [(0, "id"), (3, "text"), (8, "label")],  # start, middle, next-to-last record
)
def test_one_broken_quote_anywhere_rejects_its_line_only(tmp_path: Path, broken_at: int,
                                                         column: str) -> None:
    records = [_fine(i) for i in range(10)]
    bad = records[broken_at].split(",")
    bad[["id", "text", "label"].index(column)] = '"' + bad[["id", "text", "label"].index(column)]
    records[broken_at] = ",".join(bad)
    ids, rejects, rejected, total = _read(_write(tmp_path, [HEADER, *records]))
    assert ids == [f"q{i}" for i in range(10) if i != broken_at]
    assert rejected == (broken_at + 2,) and total == 11
    [(_, reason)] = rejects
    assert f"column {column!r}" in reason and f"line {broken_at + 2} " in reason


def test_an_unclosed_quote_on_the_last_line_is_that_line(tmp_path: Path) -> None:
    ids, rejects, rejected, _ = _read(_write(tmp_path, [HEADER, _fine(1), 'q2,"cut off']))
    assert ids == ["q1"] and rejected == (3,)
    assert "not closed before the end of the file" in rejects[0][1]


def test_several_broken_quotes(tmp_path: Path) -> None:
    lines = [HEADER, 'q1,"open one,a', _fine(2), 'q3,"open two,a', 'q4,"open three,a',
             _fine(5), _fine(6)]
    ids, rejects, rejected, _ = _read(_write(tmp_path, lines))
    assert ids == ["q2", "q5", "q6"]
    assert rejected == (2, 4, 5) and [r for r, _ in rejects] == [1, 3, 4]


def test_broken_quote_then_a_real_multiline_value(tmp_path: Path) -> None:
    lines = [HEADER, 'q1,"never closed,a', _fine(2), 'q3,"a real value\nwith two lines",b',
             _fine(4)]
    path = _write(tmp_path, lines)
    ids, _, rejected, total = _read(path)
    assert ids == ["q2", "q3", "q4"] and rejected == (2,) and total == 6
    rows = read_file(path, fmt="csv", source=SourceSpec(path="f.csv")).rows
    assert rows.filter(pl.col("id") == "q3").get_column("text").item() == (
        "a real value\nwith two lines")


@pytest.mark.parametrize("eol", ["\n", "\r\n"])
def test_a_real_multiline_value_whose_lines_look_like_records_stays_whole(
        tmp_path: Path, eol: str) -> None:
    # the inner line "x,y,z" and the last one (a comma inside) read as 3 fields on their
    # own, but the record is well-formed: one value, not a broken quote
    lines = [HEADER, _fine(1), f'q2,"Dear all,{eol}x,y,z{eol}thanks, bye",a', _fine(3)]
    path = _write(tmp_path, lines, eol=eol)
    ids, rejects, rejected, total = _read(path)
    assert ids == ["q1", "q2", "q3"] and rejects == [] and rejected == () and total == 6
    text = read_file(path, fmt="csv", source=SourceSpec(path="f.csv")).rows.get_column("text")
    assert text[1] == f"Dear all,{eol}x,y,z{eol}thanks, bye"


def test_a_malformed_multiline_record_is_read_line_by_line(tmp_path: Path) -> None:
    # malformed (a field missing) and spanning lines: its first line is rejected alone and
    # the next is read on its own (here ragged, so rejected too), never a whole record
    lines = [HEADER, 'q1,"two\nlines"', _fine(2)]
    ids, rejects, rejected, _ = _read(_write(tmp_path, lines))
    assert ids == ["q2"] and rejected == (2, 3)
    assert "the record it starts is malformed" in rejects[0][1]
    assert rejects[1][1].startswith("1 field(s), the header has 3 (line 3)")


def test_blank_lines_are_counted(tmp_path: Path) -> None:
    path = _write(tmp_path, [HEADER, _fine(1), "", 'q2,"open,a', _fine(3), ""])
    r = read_file(path, fmt="csv", source=SourceSpec(path="f.csv"))
    assert r.lines is not None
    assert (r.lines.total, r.lines.header, r.lines.record_lines, r.lines.blank) == (6, 1, 3, 2)


def test_the_lake_batch_carries_the_line_numbers(tmp_path: Path) -> None:
    _write(tmp_path, [HEADER, _fine(1), 'q2,"open,a', _fine(3)])
    [batch] = ingest_source(SourceSpec(path="f.csv"), key="items", dataset="ds",
                            store=tmp_path / "store", base_dir=tmp_path)
    assert (batch.rows, batch.rejected, batch.lines, batch.rejected_lines) == (2, 1, 4, 1)
    assert batch.rejected_at == (3,)
    [again] = ingest_source(SourceSpec(path="f.csv"), key="items", dataset="ds",
                            store=tmp_path / "store", base_dir=tmp_path)
    assert again.reused and again.rejected_at == (3,) and again.lines == 4


@pytest.mark.slow
def test_a_million_rows_with_one_broken_quote(tmp_path: Path) -> None:
    n, broken = 1_000_000, 500_000
    ids = pl.int_range(0, n, eager=True).cast(pl.String)
    df = pl.DataFrame({"id": "r" + ids, "text": "some text " + ids, "label": ["a"] * n})
    path = tmp_path / "big.csv"
    df.write_csv(path)
    data = path.read_bytes().split(b"\n")
    data[broken + 1] = data[broken + 1].replace(b",some", b',"some')  # header is line 0
    path.write_bytes(b"\n".join(data))
    r = read_file(path, fmt="csv", source=SourceSpec(path="big.csv"))
    assert r.rows.height == n - 1 and r.rejects.height == 1
    assert r.lines is not None and r.lines.rejected == (broken + 2,)
    assert r.rejects.get_column("_row").item() == broken + 1
    assert f"r{broken}" not in set(r.rows.get_column("id").to_list())


@pytest.mark.flow
@pytest.mark.usefixtures("prefect_server")
def test_the_run_reports_the_lines_and_the_gate_can_refuse_them(tmp_path: Path) -> None:
    from flows.pipeline import quality_pipeline
    from labelgate.errors import GateFailedError

    lines = [HEADER, _fine(1), _fine(2), 'q3,"broken text 3,b', *[_fine(i) for i in range(4, 8)]]
    _write(tmp_path, lines, name="items.csv")
    spec = {
        "name": "quotes", "task": "classification", "store": "store",
        "sources": {"items": {"path": "items.csv"}},
        "columns": {"id": "id", "text": ["text"], "label": "label"},
        "contract": {"id": {"dtype": "str", "unique": True},
                     "text": {"dtype": "str", "str_length": {"min": 1, "max": 100000}},
                     "label": {"dtype": "str", "isin": ["a", "b"]}},
        "gate": {"max_rejected_lines": 0},
    }
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    state = quality_pipeline(str(path), return_state=True)
    exc = state.result(raise_on_failure=False)
    assert isinstance(exc, GateFailedError)
    assert "rejected_lines 1 > gate.max_rejected_lines 0" in str(exc)
    report_dir = tmp_path / "store/reports/quotes/latest"
    report = json.loads((report_dir / "report.json").read_text())
    assert report["rows"] == {"input": 7, "valid": 6, "quarantined": 1, "excluded": 0,
                              "balanced": True}
    [source] = report["sources"]
    assert (source["lines"], source["rejected_lines"], source["rejected_at"]) == (8, 1, [4])
    sentence = "items.csv: 8 lines = 1 header + 7 in 7 records + 0 blank"
    for name in ("report.md", "report.html"):
        text = (report_dir / name).read_text()
        assert sentence in text and "line(s): 4" in text


def test_a_value_that_swallows_the_next_line_is_rejected_not_read(tmp_path: Path) -> None:
    """A quoted value opened on line 4 that polars would run into line 5 (a review found a
    separator count passing this file as 3 clean rows): both lines are rejects, with their
    line numbers, and rows 1-2 keep their null cells."""
    path = tmp_path / "f.csv"
    path.write_bytes(b',1,2,3\n"",,"""""",""\n,,"",\n,"",,""""""""1"\n"')
    r = read_file(path, fmt="csv", source=SourceSpec(path=path.name))
    assert r.lines is not None and r.lines.balanced()
    assert r.rows.get_column("_row").to_list() == [1, 2]
    assert r.rows.row(1)[1:] == (None, None, None, None)
    assert r.lines.rejected == (4, 5)
    reasons = r.rejects.get_column("reason").to_list()
    assert "line 4" in reasons[0] and "line 5" in reasons[1]
