"""What the reliability battery (bench/battery.py, issue 27) found and the library now does:
a warehouse held open by another process is refused naming it; zstd input; a JSONL line
over `max_line_bytes` rejected with its line number; a CSV header too wide refused."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from labelgate.errors import InputError, LabelgateError
from labelgate.spec import SourceSpec
from labelgate.stages.ingest import readers
from labelgate.store import warehouse

ROWS = [{"id": f"r{i}", "text": f"text {i}", "label": "a"} for i in range(5)]


def test_a_warehouse_held_open_elsewhere_is_refused_naming_the_holder(tmp_path: Path) -> None:
    path = tmp_path / "warehouse.duckdb"
    with warehouse.connect(path):
        pass
    code = ("import duckdb, sys; c = duckdb.connect(sys.argv[1], read_only=True); "
            "print('held', flush=True); sys.stdin.read()")
    holder = subprocess.Popen([sys.executable, "-c", code, str(path), "notebook"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"held\n"
        with pytest.raises(warehouse.WarehouseBusyError) as info, warehouse.connect(
                path, lock_timeout=0):
            pass
    finally:
        holder.kill()
        holder.wait()
    assert isinstance(info.value, LabelgateError)  # the CLI's exit 2, not an internal error
    message = str(info.value)
    assert f"PID {holder.pid} (" in message and "notebook" in message  # its command line
    assert str(path) in message and warehouse.LOCK_TIMEOUT_ENV in message


def test_zstd_input_is_read_and_a_truncated_one_named(tmp_path: Path) -> None:
    raw = ("id,text,label\n" + "".join(f"{r['id']},{r['text']},a\n" for r in ROWS)).encode()
    packed = pa.Codec("zstd").compress(raw, asbytes=True)
    good, cut = tmp_path / "a.csv.zst", tmp_path / "b.csv.zst"
    good.write_bytes(packed)
    cut.write_bytes(packed[: len(packed) // 2])
    source = SourceSpec(path="*.zst")
    result = readers.read_file(good, fmt="csv", source=source)
    assert result.rows.get_column("id").to_list() == [r["id"] for r in ROWS]
    with pytest.raises(InputError, match=r"b\.csv\.zst: zstd stream is truncated or corrupt"):
        readers.read_file(cut, fmt="csv", source=source)


def test_jsonl_line_over_max_line_bytes_is_rejected_with_its_line(tmp_path: Path) -> None:
    lines = [json.dumps(r) for r in ROWS]
    lines[2] = json.dumps({"id": "big", "text": "x" * 5000, "label": "a"})
    path = tmp_path / "a.jsonl"
    path.write_text("\n".join(lines) + "\n")
    result = readers.read_file(path, fmt="jsonl", source=SourceSpec(path="a.jsonl",
                                                                     max_line_bytes=1000))
    assert result.rows.get_column("_row").to_list() == [1, 2, 4, 5]
    [reject] = result.rejects.to_dicts()
    assert reject["_row"] == 3
    assert reject["reason"].startswith("line 3 is 5,") and "max_line_bytes (1,000)" in \
        reject["reason"]
    assert reject["raw"].startswith('{"id": "big"') and len(reject["raw"]) == 200


@pytest.mark.parametrize("chunk", [7, 64, 1 << 20])
def test_cap_lines_holds_no_long_line_whatever_the_chunks(
        monkeypatch: pytest.MonkeyPatch, chunk: int) -> None:
    monkeypatch.setattr(readers, "_CHUNK", chunk)
    data = b"short\n" + b"y" * 300 + b"\nok\n" + b"z" * 40
    out, rejects = readers._cap_lines(io.BytesIO(data), 30, setting="limit")
    assert out == b"short\n\nok\n"
    assert [(r["_row"], r["raw"]) for r in rejects] == [(2, "y" * 200), (4, "z" * 40)]


def test_csv_header_wider_than_the_limit_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "wide.csv"
    names = ",".join(f"c{i}" for i in range(readers.MAX_COLUMNS + 1))
    path.write_text(names + os.linesep + "," * readers.MAX_COLUMNS + os.linesep)
    with pytest.raises(InputError, match=r"wide\.csv: the header \(line 1\) has 10,001 columns"):
        readers.read_file(path, fmt="csv", source=SourceSpec(path="wide.csv"))


@pytest.mark.parametrize("link", ["published", "lake/tiny", "warehouse.duckdb", "locks"])
def test_a_store_link_out_of_the_store_is_refused(tmp_path: Path, link: str) -> None:
    from labelgate.store.locking import refuse_links_out

    store, outside = tmp_path / "store", tmp_path / "elsewhere"
    (store / "lake").mkdir(parents=True)
    outside.mkdir()
    (store / link).symlink_to(outside)
    with pytest.raises(InputError, match=rf"{link} is a symlink to {outside}, outside the"):
        refuse_links_out(store, "tiny")


def test_links_inside_the_store_are_fine(tmp_path: Path) -> None:
    from labelgate.store.locking import refuse_links_out

    store = tmp_path / "store"
    (store / "disk2").mkdir(parents=True)
    (store / "lake").symlink_to(store / "disk2")
    (store / "published" / "tiny" / "v1").mkdir(parents=True)
    (store / "published" / "tiny" / "current").symlink_to("v1")
    refuse_links_out(store, "tiny")


def test_a_repeated_header_name_is_refused_on_the_fast_path_too(tmp_path: Path) -> None:
    path = tmp_path / "dup.csv"
    path.write_text("id,text,label,text\n" + "".join(f"r{i},t,a,u\n" for i in range(3)))
    with pytest.raises(InputError, match=r"dup\.csv: duplicate column name\(s\) \['text'\]"):
        readers.read_file(path, fmt="csv", source=SourceSpec(path="dup.csv"))


def test_a_yaml_alias_bomb_is_refused_before_validation(tmp_path: Path) -> None:
    from labelgate.errors import SpecError
    from labelgate.spec import load_spec

    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 12)]
    path = tmp_path / "spec.yaml"
    path.write_text("\n".join(lines) + "\nname: *a11\n")  # 10^12 strings expanded
    with pytest.raises(SpecError, match=r"spec\.yaml: the spec expands to more than 100,000"):
        load_spec(path)


def test_report_text_carries_no_control_character_from_the_data() -> None:
    from labelgate.report.text import visible_controls

    shown = visible_controls("\x1b[31mred\x1b]0;pwned\x07 tab\there\nnext\x9b\x7f")
    assert shown == "␛[31mred␛]0;pwned␇ tab\there\nnext\ufffd␡"
