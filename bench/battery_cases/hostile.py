"""Hostile input (issue 27): a YAML alias bomb, paths that leave the spec's folder or the
store, and column and label names that are SQL, HTML, Markdown table syntax or terminal
escape sequences."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import polars as pl

from bench.battery_cases.cases import InputCase
from bench.battery_cases.harness import (
    CHILD,
    DATASET,
    Outcome,
    Project,
    project_copy,
    rows,
    warehouse_rows,
)

SQL = 'x"); DROP TABLE runs; --'
HTML = "<script>alert(1)</script>"
MARKDOWN = "a | b |\n|---|"
TERMINAL = "\x1b[31mred\x1b]0;pwned\x07"
HOSTILE = [SQL, HTML, MARKDOWN, TERMINAL]
N = 60


def _bomb(levels: int = 12) -> str:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        refs = ",".join(f"*a{i - 1}" for _ in range(10))
        lines.append(f"a{i}: &a{i} [{refs}]")
    return "\n".join(lines) + f"\nname: *a{levels - 1}\n"


def alias_bomb(*, bases: dict[str, Path], work: Path, api_url: str) -> Outcome:
    """10^12 strings if expanded: refused at once, memory bounded."""
    out = Outcome("YAML alias bomb in the spec", "hostile")
    with project_copy(bases["light"], work, "alias-bomb", api_url) as project:
        before = project.snapshot()
        original = project.spec.read_text()
        project.spec.write_text(_bomb())
        env = {**os.environ, "PREFECT_API_URL": api_url}
        start = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-c", CHILD, "run", str(project.spec)],
                                cwd=project.root, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)
        output = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.monotonic() - start
        rc = os.waitstatus_to_exitcode(status)
        peak_mib = usage.ru_maxrss / 1024
        out.expect(rc == 2, f"exit {rc}, expected 2: {output[-300:]}")
        out.expect("spec.yaml" in output, "the message does not name the spec")
        out.expect(peak_mib < 1024, f"peak memory {peak_mib:.0f} MiB")
        out.expect(project.snapshot() == before, "the published version changed")
        project.spec.write_text(original)
        again = project.run()
        out.expect(again.rc == 0, f"next clean run: exit {again.rc}")
        out.outcome = (f"refused, exit 2, in {seconds:.1f} s (process start included), "
                       f"peak {peak_mib:.0f} MiB")
    return out


def store_link_out(*, bases: dict[str, Path], work: Path, api_url: str) -> Outcome:
    """`store/cache` is a symlink to a folder outside the store: the run is refused."""
    out = Outcome("a symlink in the store leading out of it", "hostile")
    with project_copy(bases["light"], work, "store-link", api_url) as project:
        before = project.snapshot()
        outside = project.root / "outside"
        outside.mkdir()
        cache = project.store / "cache"
        shutil.move(cache, project.root / "cache-saved")
        cache.symlink_to(outside)
        run = project.run()
        out.expect(run.rc == 2, f"exit {run.rc}, expected 2: {run.output[-300:]}")
        out.expect("is a symlink to" in run.output and "outside the store" in run.output,
                   "the message does not name the link")
        out.expect(not any(outside.iterdir()), "the run wrote through the link")
        out.expect(project.snapshot() == before, "the published version changed")
        cache.unlink()
        shutil.move(project.root / "cache-saved", cache)
        again = project.run()
        out.expect(again.rc == 0, f"next run: exit {again.rc}")
        out.outcome = "refused, exit 2, naming the link and its target; nothing written there"
    return out


def _outside(path: Path, prefix: str) -> int:
    pl.DataFrame(rows(N, prefix=prefix)).write_csv(path)
    return N


def _read_outside(spec: dict[str, Any]) -> dict[str, Any]:
    spec["sources"]["items"]["path"] = "../outside-the-spec-folder/*.csv"
    return spec


def _names_the_file(project: Project, out: Outcome) -> None:
    report = project.latest_report()
    files = [s["file"] for s in report["sources"]] if report else []
    out.expect(any(Path(f).is_absolute() and "outside-the-spec-folder" in f for f in files),
               f"report.json does not name the outside file absolutely: {files}")


# ------------------------------------------------------------------ hostile names

def _hostile_rows(path: Path, prefix: str) -> int:
    records = rows(N, prefix=prefix)
    for i, r in enumerate(records):
        for j, name in enumerate(HOSTILE):
            r[name] = f"{name} value {i}" if (i + j) % 7 else None
        if i % 10 == 3:
            r["sentiment"] = HOSTILE[(i // 10) % 4]  # not an allowed label: quarantined
        elif i % 10 in (5, 6):
            r["sentiment"] = HTML if i % 10 == 5 else TERMINAL  # allowed, hostile labels
    pl.DataFrame(records).write_csv(path)
    return N


def _hostile_spec(spec: dict[str, Any]) -> dict[str, Any]:
    spec["sources"]["items"]["path"] = "items/hostile.csv"  # the base file lacks the columns
    spec["contract"]["sentiment"]["isin"] = ["negative", "neutral", "positive", HTML,
                                             TERMINAL]
    for name in HOSTILE:
        spec["contract"][name] = {"dtype": "str", "nullable": False}
    spec["gate"]["max_quarantine_rate"] = 1.0
    return spec


def _table_widths(markdown: str) -> list[str]:
    """Lines of Markdown tables whose unescaped pipe count differs from the table's first
    line (a name that broke out of its cell)."""
    bad: list[str] = []
    width = None
    for line in markdown.splitlines():
        if not line.startswith("|"):
            width = None
            continue
        n = len(re.findall(r"(?<!\\)\|", line))
        width = n if width is None else width
        if n != width:
            bad.append(line)
    return bad


def _harmless(project: Project, out: Outcome) -> None:
    report = project.latest_report()
    if not out.expect(report is not None, "no report.json"):
        return
    assert report is not None
    folder = Path(report["paths"]["report"])
    html = (folder / "report.html").read_text()
    md = (folder / "report.md").read_text()
    out.expect(HTML not in html, "report.html holds the raw <script> tag")
    out.expect("\x1b" not in html and "\x1b" not in md, "an ESC byte in the report")
    logs = sorted((project.root / "logs").glob("run-*.log"), key=lambda p: p.stat().st_mtime)
    terminal = logs[-1].read_text(errors="replace") if logs else ""
    out.expect(bool(terminal) and "\x1b" not in terminal, "an ESC byte on the terminal")
    broken = _table_widths(md)
    out.expect(not broken, f"report.md tables broken by a name: {broken[:1]}")
    tables = [r[0] for r in warehouse_rows(project.store, "SELECT table_name FROM "
                                           "information_schema.tables", [])]
    out.expect("runs" in tables, "the runs table is gone")
    found = warehouse_rows(project.store, 'SELECT count(*) FROM quarantine WHERE "column" = ?',
                           [SQL])[0][0]
    out.expect(found > 0, "the SQL-named column's nulls are not quarantined under its name")
    artifact = _artifact(project.api_url, f"labelgate-{DATASET}-report")
    out.expect(artifact is not None and "\x1b" not in artifact and HTML not in artifact,
               "the Prefect markdown artifact is missing or holds a raw tag/ESC")


def _artifact(api_url: str, key: str) -> str | None:
    try:
        with urllib.request.urlopen(f"{api_url}/artifacts/{key}/latest", timeout=10) as resp:
            data = json.load(resp).get("data")
    except OSError:
        return None
    return data if isinstance(data, str) else json.dumps(data)


INPUT_CASES = [
    InputCase("source path outside the spec folder (../)", "hostile",
              "../outside-the-spec-folder/extra.csv", _outside, spec=_read_outside,
              check=_names_the_file),
    InputCase("names: SQL, HTML, Markdown, terminal escapes", "hostile", "items/hostile.csv",
              _hostile_rows, codes=(0, 1), spec=_hostile_spec, check=_harmless),
]
CASES = [
    ("YAML alias bomb", alias_bomb),
    ("symlink out of the store", store_link_out),
]
