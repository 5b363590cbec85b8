"""Malformed input: CSV, JSONL, Parquet, annotations and compressed files (issue 27).

Each writer puts one bad file beside the base project's clean `items/part1.csv` (ids
`b0000`.. so they never collide with the base's `t0000`..) and returns the records it
meant to write: the rows in, which the run must account for.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa

from bench.battery_cases.cases import InputCase
from bench.battery_cases.harness import HEADER, Outcome, Project, csv_lines, rows

N = 60
HEAD = ",".join(HEADER)


def _write_lines(path: Path, lines: list[str], *, end: str = "\n", final: bool = True,
                 prefix: bytes = b"") -> None:
    text = end.join(lines) + (end if final else "")
    path.write_bytes(prefix + text.encode())


def _broken(position: str, kind: str) -> InputCase:
    """A quote left open (`unclosed`) or a stray quote inside a quoted field (`stray`) on
    the first, middle or last record."""
    at = {"start": 0, "middle": N // 2, "end": N - 1}[position]

    def write(path: Path, prefix: str) -> int:
        records = rows(N, prefix=prefix)
        lines = csv_lines(records)
        tid, text, label, conf = (str(v) for v in records[at].values())
        lines[at] = (f'{tid},"{text},{label},{conf}' if kind == "unclosed"
                     else f'{tid},"{text[:12]} "quoted" {text[12:]}",{label},{conf}')
        _write_lines(path, [HEAD, *lines], final=position != "end")
        return N

    return InputCase(f"csv {kind} quote at {position}", "CSV", "items/bad.csv", write)


def _embedded_newlines(path: Path, prefix: str) -> int:
    records = rows(N, prefix=prefix)
    lines = csv_lines(records)
    for i in range(0, N, 10):
        tid, text, label, conf = (str(v) for v in records[i].values())
        lines[i] = f'{tid},"{text[:20]}\n{text[20:]}\r\nend",{label},{conf}'
    _write_lines(path, [HEAD, *lines])
    return N


def _bom_crlf(path: Path, prefix: str) -> int:
    _write_lines(path, [HEAD, *csv_lines(rows(N, prefix=prefix))], end="\r\n",
                 prefix=b"\xef\xbb\xbf")
    return N


def _bare_cr(path: Path, prefix: str) -> int:
    _write_lines(path, [HEAD, *csv_lines(rows(N, prefix=prefix))], end="\r")
    return N


def _nul(path: Path, prefix: str) -> int:
    lines = csv_lines(rows(N, prefix=prefix))
    lines[6] = lines[6].replace("flight", "fli\x00ght")
    lines[8] = lines[8] + "\x00"
    _write_lines(path, [HEAD, *lines])
    return N


def _bad_utf8(path: Path, prefix: str) -> int:
    data = ("\n".join([HEAD, *csv_lines(rows(N, prefix=prefix))]) + "\n").encode()
    data = data.replace(b"three hours", b"three h\xf6urs", 1)  # Latin-1 o-umlaut
    data = data.replace(b"mood lighting", b"mood \xff\xfe lighting", 1)
    path.write_bytes(data)
    return N


def _ragged(path: Path, prefix: str) -> int:
    lines = csv_lines(rows(N, prefix=prefix))
    lines[3] = lines[3].rsplit(",", 1)[0]  # a field short (the last field has no comma)
    lines[4] = lines[4] + ",extra"  # a field too many
    lines[5] = lines[5] + ",,,"
    _write_lines(path, [HEAD, *lines])
    return N


def _wrong_delimiter(path: Path, prefix: str) -> int:
    _write_lines(path, [HEAD.replace(",", ";"), *csv_lines(rows(N, prefix=prefix), sep=";")])
    return N


def _header_only(path: Path, prefix: str) -> int:
    _write_lines(path, [HEAD])
    return 0


def _duplicate_header(path: Path, prefix: str) -> int:
    lines = csv_lines(rows(N, prefix=prefix))
    _write_lines(path, [HEAD + ",text", *(f"{line},again" for line in lines)])
    return N


def _ten_mb_field(path: Path, prefix: str) -> int:
    records = rows(N, prefix=prefix)
    lines = csv_lines(records)
    tid, _, label, conf = (str(v) for v in records[10].values())
    lines[10] = f"{tid},{'x' * (10 << 20)},{label},{conf}"
    _write_lines(path, [HEAD, *lines])
    return N


WIDE = 100_000


def _wide(path: Path, prefix: str) -> int:
    extra = [f"c{i}" for i in range(WIDE - len(HEADER))]
    filler = "," * len(extra)
    lines = [line + filler for line in csv_lines(rows(5, prefix=prefix))]
    _write_lines(path, [HEAD + "," + ",".join(extra), *lines])
    return 5


CSV = [
    *(_broken(p, k) for k in ("unclosed", "stray") for p in ("start", "middle", "end")),
    InputCase("csv embedded newlines in quoted fields", "CSV", "items/bad.csv",
              _embedded_newlines),
    InputCase("csv UTF-8 BOM and CRLF line ends", "CSV", "items/bad.csv", _bom_crlf),
    InputCase("csv bare CR line ends", "CSV", "items/bad.csv", _bare_cr, codes=(0, 2)),
    InputCase("csv NUL bytes", "CSV", "items/bad.csv", _nul),
    InputCase("csv invalid UTF-8 under utf8", "CSV", "items/bad.csv", _bad_utf8),
    InputCase("csv ragged rows", "CSV", "items/bad.csv", _ragged),
    InputCase("csv wrong delimiter", "CSV", "items/bad.csv", _wrong_delimiter, codes=(2,)),
    InputCase("csv header only", "CSV", "items/bad.csv", _header_only),
    InputCase("csv duplicate header names", "CSV", "items/bad.csv", _duplicate_header,
              codes=(2,), names=("duplicate",)),
    InputCase("csv a 10 MB field", "CSV", "items/bad.csv", _ten_mb_field),
    InputCase(f"csv {WIDE:,} columns", "CSV", "items/bad.csv", _wide, codes=(0, 2)),
]


# ---------------------------------------------------------------- JSONL

def _jsonl(records: list[dict[str, Any]]) -> list[str]:
    return [json.dumps(r) for r in records]


def _truncated_jsonl(path: Path, prefix: str) -> int:
    lines = _jsonl(rows(N, prefix=prefix))
    lines[-1] = lines[-1][: len(lines[-1]) // 2]
    _write_lines(path, lines, final=False)
    return N


def _not_object(path: Path, prefix: str) -> int:
    lines = _jsonl(rows(N, prefix=prefix))
    lines[9] = "[1, 2, 3]"
    lines[20] = '"just a string"'
    _write_lines(path, lines)
    return N


def _nested(path: Path, prefix: str) -> int:
    records = rows(N, prefix=prefix)
    records[4]["text"] = {"body": "nested", "lang": "en"}
    records[5]["text"] = ["a", "list"]
    _write_lines(path, _jsonl(records))
    return N


def _long_line(path: Path, prefix: str) -> int:
    """Line 7 is 64 MiB, over the spec's max_line_bytes (1 MiB): written in pieces."""
    lines = _jsonl(rows(N, prefix=prefix))
    with path.open("w") as fh:
        fh.write("\n".join(lines[:6]) + "\n")
        fh.write('{"tweet_id": "huge", "text": "')
        for _ in range(64):
            fh.write("y" * (1 << 20))
        fh.write('", "sentiment": "neutral", "confidence": 0.5}\n')
        fh.write("\n".join(lines[7:]) + "\n")
    return N


JSONL = [
    InputCase("jsonl a 64 MiB line over max_line_bytes (1 MiB)", "JSONL", "items/bad.jsonl",
              _long_line),
    InputCase("jsonl truncated last line", "JSONL", "items/bad.jsonl", _truncated_jsonl),
    InputCase("jsonl a line that is not an object", "JSONL", "items/bad.jsonl", _not_object),
    InputCase("jsonl nested values where text is expected", "JSONL", "items/bad.jsonl",
              _nested, codes=(0, 2)),
]


# ---------------------------------------------------------------- Parquet

def _corrupt_footer(path: Path, prefix: str) -> int:
    pl.DataFrame(rows(N, prefix=prefix)).write_parquet(path)
    data = path.read_bytes()
    path.write_bytes(data[:-12] + b"\x00" * 8 + b"PAR1")  # footer length and metadata gone
    return N


def _type_drift(path: Path, prefix: str) -> int:
    path.mkdir(parents=True, exist_ok=True)
    pl.DataFrame(rows(N // 2, prefix=prefix)).write_parquet(path / "a.parquet")
    drifted = pl.DataFrame(rows(N // 2, prefix=prefix, start=N // 2)).with_columns(
        pl.col("confidence").cast(pl.String), pl.col("tweet_id").cast(pl.Categorical))
    drifted.write_parquet(path / "b.parquet")
    return N


def _drift_spec(spec: dict[str, Any]) -> dict[str, Any]:
    spec["sources"]["items"]["path"] = "items/**/*"
    return spec


PARQUET = [
    InputCase("parquet corrupt footer", "Parquet", "items/bad.parquet", _corrupt_footer,
              codes=(2,)),
    InputCase("parquet column types drift between batches", "Parquet", "items/drift",
              _type_drift, spec=_drift_spec),
]


# ---------------------------------------------------------------- compressed

def _csv_bytes(prefix: str) -> bytes:
    return ("\n".join([HEAD, *csv_lines(rows(N, prefix=prefix))]) + "\n").encode()


def _gzip(path: Path, prefix: str) -> int:
    path.write_bytes(gzip.compress(_csv_bytes(prefix)))
    return N


def _truncated_gzip(path: Path, prefix: str) -> int:
    data = gzip.compress(_csv_bytes(prefix))
    path.write_bytes(data[: len(data) * 2 // 3])
    return N


def _truncated_zstd(path: Path, prefix: str) -> int:
    data = pa.Codec("zstd").compress(_csv_bytes(prefix), asbytes=True)
    path.write_bytes(data[: len(data) * 2 // 3])
    return N


def _zstd(path: Path, prefix: str) -> int:
    path.write_bytes(pa.Codec("zstd").compress(_csv_bytes(prefix), asbytes=True))
    return N


COMPRESSED = [
    InputCase("gzip", "compressed", "items/good.csv.gz", _gzip),
    InputCase("gzip truncated", "compressed", "items/bad.csv.gz", _truncated_gzip, codes=(2,)),
    InputCase("zstd", "compressed", "items/good.csv.zst", _zstd),
    InputCase("zstd truncated", "compressed", "items/bad.csv.zst", _truncated_zstd,
              codes=(2,)),
]

# ---------------------------------------------------------------- annotations

def _export(items: list[str], *, annotators: int = 3) -> list[dict[str, Any]]:
    return [{"id": i, "data": {"tweet_id": item, "text": "t"}, "annotations": [
        {"id": i * 10 + a, "completed_by": a, "was_cancelled": False,
         "created_at": "2026-12-01T10:00:00Z",
         "result": [{"from_name": "sentiment", "to_name": "text", "type": "choices",
                     "value": {"choices": [("negative", "neutral", "positive")[(i + a) % 3]]}}]}
        for a in range(annotators)]} for i, item in enumerate(items)]


def _missing_fields(path: Path, prefix: str) -> int:
    tasks = _export([f"t{i:04d}" for i in range(20)])
    del tasks[7]["data"]  # no data (the item id)
    del tasks[12]["annotations"][1]["result"][0]["value"]  # a result without a value
    path.write_text(json.dumps(tasks))
    return 20 * 3


UNKNOWN = 5


def _unknown_items(path: Path, prefix: str) -> int:
    items = [f"t{i:04d}" for i in range(20)] + [f"{prefix}ghost{i}" for i in range(UNKNOWN)]
    path.write_text(json.dumps(_export(items)))
    return len(items) * 3


def _with_annotations(spec: dict[str, Any]) -> dict[str, Any]:
    spec["sources"]["annotations"] = {"path": "ann/export.json", "item_field": "tweet_id"}
    return spec


def _annotations_accounted(project: Project, out: Outcome) -> None:
    """Every annotation of the export is in its lake batch; the unknown items counted."""
    report = project.latest_report()
    if not out.expect(report is not None, "no report.json"):
        return
    assert report is not None
    entry = next((s for s in report["sources"] if s["file"].endswith("export.json")), None)
    if not out.expect(entry is not None, "report.json does not list the export"):
        return
    assert entry is not None
    out.accounted = entry["rows"] + entry["rejected"]
    unknown = report["agreement"]["n_rows_not_in_items"]
    out.expect(unknown == UNKNOWN * 3, f"{unknown} annotation rows on unknown items, "
                                       f"expected {UNKNOWN * 3}")
    out.outcome = (f"passed: {entry['rows']} annotations read, {unknown} of them on items "
                   f"the run does not have (counted, named in the report)")


ANNOTATIONS = [
    InputCase("Label Studio export with missing fields", "annotations", "ann/export.json",
              _missing_fields, codes=(2,), spec=_with_annotations),
    InputCase("annotations on unknown items", "annotations", "ann/export.json",
              _unknown_items, spec=_with_annotations, check=_annotations_accounted),
]

CASES = [*CSV, *JSONL, *PARQUET, *COMPRESSED, *ANNOTATIONS]
