"""The battery's machinery: one Prefect server, project copies, `labelgate run` processes,
published-version snapshots and the row accounting read from report.json and the warehouse.

A case gets a `Project` (a copy of a base project whose store already published v1),
changes its input or environment, runs the real CLI (`Project.run`) and returns an
`Outcome`: what happened, rows in, rows accounted for, and the problems found (an
unexpected exit code, a message that does not name the file, a changed published version,
a next clean run that fails). A case passes when it has no problem and loses no row.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import yaml

ROOT = Path(__file__).resolve().parents[2]
DATASET = "tiny-tweets"
TEXTS = [
    "@united my flight was delayed three hours and nobody told us why",
    "@SouthwestAir thanks for the quick rebooking, great crew today",
    "@AmericanAir what time does the lounge open at DFW terminal D",
    "@JetBlue lost my bag again, this is the second time this month",
    "@VirginAmerica loved the mood lighting and the snacks on board",
    "@USAirways is the 6pm to Boston still on schedule tonight",
]
LABELS = ["negative", "positive", "neutral", "negative", "positive", "neutral"]
MAX_LINE_BYTES = 1 << 20  # JSON Lines: the base spec's line limit
HEADER = ["tweet_id", "text", "sentiment", "confidence"]
# the child process: the battery's fault hooks (inert unless LABELGATE_BATTERY_FAULT is
# set), then the real CLI
CHILD = (f"import sys; sys.path.insert(0, {str(ROOT)!r}); "
         "from bench.battery_cases import inject; inject.install(); "
         "from flows.cli import app; app()")


def rows(n: int, *, prefix: str = "b", start: int = 0) -> list[dict[str, Any]]:
    """`n` clean rows with ids `<prefix>NNNN` (the base file uses `t`)."""
    return [
        {"tweet_id": f"{prefix}{i:04d}", "text": f"{TEXTS[i % 6]} #{i}",
         "sentiment": LABELS[i % 6], "confidence": round(0.5 + (i % 5) / 10, 2)}
        for i in range(start, start + n)
    ]


def csv_fields(record: dict[str, Any]) -> list[str]:
    """A record's CSV fields, the text quoted (it may hold the separator)."""
    return [f'"{v}"' if c == "text" else str(v) for c, v in
            ((c, record[c]) for c in HEADER)]


def csv_lines(records: list[dict[str, Any]], *, sep: str = ",") -> list[str]:
    """Records as CSV lines (the text quoted; the texts hold no quote)."""
    return [sep.join(csv_fields(r)) for r in records]


def spec_dict(**overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": DATASET,
        "task": "classification",
        "store": "store",
        "sources": {"items": {"path": "items/*", "max_line_bytes": MAX_LINE_BYTES}},
        "columns": {"id": "tweet_id", "text": ["text"], "label": "sentiment"},
        "contract": {
            "tweet_id": {"dtype": "str", "unique": True},
            "text": {"dtype": "str", "str_length": {"min": 1, "max": 500}},
            "sentiment": {"dtype": "str", "isin": ["negative", "neutral", "positive"]},
            "confidence": {"dtype": "float", "min": 0, "max": 1},
        },
        "splits": {"fractions": {"train": 0.8, "validation": 0.1, "test": 0.1}},
        "publish": {"formats": ["parquet", "jsonl"]},
        "gate": {"max_quarantine_rate": 0.5, "min_rows_per_class": 5},
    }
    spec.update(overrides)
    return spec


# every stage, for the kill cases: label issues and near-duplicates too
FULL_STAGES: dict[str, Any] = {
    "label_issues": {"method": "cross_validated", "folds": 3},
    "dedup": {"near": {"threshold": 0.9}},
}


@dataclass
class Run:
    """One finished `labelgate run` process."""

    rc: int
    output: str
    seconds: float


@dataclass
class Outcome:
    """A case's result: one row of the table."""

    case: str
    group: str
    outcome: str = ""
    rows_in: int = 0
    accounted: int = 0
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def lost(self) -> int:
        return self.rows_in - self.accounted

    @property
    def passed(self) -> bool:
        return not self.problems and self.lost == 0

    def expect(self, ok: bool, problem: str) -> bool:
        if not ok:
            self.problems.append(problem)
        return ok


@dataclass
class Server:
    """A real Prefect server on loopback, shared by every run of the battery."""

    url: str
    proc: subprocess.Popen[bytes]
    home: Path

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(work: Path) -> Server:
    """`prefect server start` on 127.0.0.1 with its own PREFECT_HOME; waits for health."""
    home = work / "prefect-home"
    home.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    log = (work / "prefect-server.log").open("wb")
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("prefect")), "server", "start", "--host",
         "127.0.0.1", "--port", str(port), "--analytics-off"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    server = Server(f"http://127.0.0.1:{port}/api", proc, home)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"prefect server exited {proc.returncode}; see {log.name}")
        with (contextlib.suppress(OSError),
              urllib.request.urlopen(f"{server.url}/health", timeout=2) as resp):
            if resp.status == 200:
                return server
        time.sleep(0.5)
    server.stop()
    raise RuntimeError("prefect server did not answer /api/health within 120 s")


@dataclass
class Project:
    """A project folder (spec.yaml, items/, store/) of one case."""

    root: Path
    api_url: str
    env: dict[str, str] = field(default_factory=dict)

    @property
    def spec(self) -> Path:
        return self.root / "spec.yaml"

    @property
    def store(self) -> Path:
        return self.root / "store"

    @property
    def published(self) -> Path:
        return self.store / "published" / DATASET

    def read_spec(self) -> dict[str, Any]:
        data: dict[str, Any] = yaml.safe_load(self.spec.read_text())
        return data

    def write_spec(self, spec: dict[str, Any]) -> None:
        self.spec.write_text(yaml.safe_dump(spec, sort_keys=False))

    def popen(self, *, spec: Path | None = None, env: dict[str, str] | None = None,
              args: tuple[str, ...] = ()) -> tuple[subprocess.Popen[bytes], Path]:
        """Start `labelgate run SPEC` (output to a log file); the process and its log."""
        full = {**os.environ, **self.env, **(env or {}), "PREFECT_API_URL": self.api_url,
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "COLUMNS": "200",
                "LABELGATE_CACHE_DIR": str(self.root / "remote-cache")}
        logs = self.root / "logs"
        logs.mkdir(exist_ok=True)
        log = logs / f"run-{len(list(logs.iterdir())) + 1}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-c", CHILD, "run", str(spec or self.spec), *args],
                cwd=self.root, env=full, stdout=out, stderr=subprocess.STDOUT)
        return proc, log

    def run(self, *, spec: Path | None = None, env: dict[str, str] | None = None,
            args: tuple[str, ...] = ()) -> Run:
        """`labelgate run SPEC` to its end (at most 5 minutes)."""
        start = time.monotonic()
        proc, log = self.popen(spec=spec, env=env, args=args)
        try:
            proc.wait(timeout=300)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        return Run(proc.returncode, log.read_text(errors="replace"),
                   time.monotonic() - start)

    def snapshot(self) -> dict[str, str]:
        """Every file under published/<dataset> by sha256, and where `current` points."""
        return snapshot(self.published)

    def latest_report(self) -> dict[str, Any] | None:
        path = self.store / "reports" / DATASET / "latest" / "report.json"
        return json.loads(path.read_text()) if path.is_file() else None


def snapshot(folder: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    if not folder.exists():
        return out
    for path in sorted(folder.rglob("*")):
        rel = str(path.relative_to(folder))
        if path.is_symlink():
            out[rel] = "-> " + os.readlink(path)
        elif path.is_file():
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def make_base(work: Path, name: str, api_url: str, *, full: bool = False) -> Path:
    """A project with 90 clean rows whose first run published v1 (copied per case)."""
    root = work / name
    (root / "items").mkdir(parents=True)
    pl.DataFrame(rows(90, prefix="t")).write_csv(root / "items" / "part1.csv")
    project = Project(root, api_url)
    project.write_spec(spec_dict(**(FULL_STAGES if full else {})))
    first = project.run()
    if first.rc != 0 or not (project.published / "v1").is_dir():
        raise RuntimeError(f"base project {name}: first run exit {first.rc}\n{first.output}")
    shutil.rmtree(root / "logs")
    return root


@contextlib.contextmanager
def project_copy(base: Path, work: Path, case: str, api_url: str) -> Iterator[Project]:
    root = work / "cases" / case
    shutil.copytree(base, root, symlinks=True)
    yield Project(root, api_url)


def warehouse_rows(store: Path, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
    """A read-only query of the store's warehouse (no run may hold it then)."""
    con = duckdb.connect(str(store / "warehouse.duckdb"), read_only=True)
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


@dataclass(frozen=True)
class Counts:
    """One input file's records in a run."""

    valid: int
    quarantined: int
    rejected_at: tuple[int, ...]

    @property
    def total(self) -> int:
        return self.valid + self.quarantined

    def text(self) -> str:
        lines = ", ".join(map(str, self.rejected_at[:3])) + (
            ", …" if len(self.rejected_at) > 3 else "")
        where = f" (rejected: line {lines})" if self.rejected_at else ""
        return f"{self.valid} valid, {self.quarantined} quarantined{where}"


def batch_accounting(project: Project, report: dict[str, Any], file: Path,
                     outcome: Outcome) -> Counts:
    """Records of `file`'s batch in this run: valid (the run's curated rows) + quarantined
    (distinct rows in the warehouse's quarantine, each with a reason; a rejected record's
    reason must name its line). Checks a CSV batch's physical-line arithmetic on the way.
    (The light base runs no label issues, so no row is excluded by a policy.)"""
    entries = [s for s in report["sources"] if Path(s["file"]).name == file.name]
    if not outcome.expect(len(entries) == 1, f"report.json lists {file.name} "
                                             f"{len(entries)} times"):
        return Counts(0, 0, ())
    entry = entries[0]
    batch = entry["batch"]
    if entry.get("lines") is not None:
        outcome.expect(
            entry["lines"] >= 1 + entry["record_lines"] + entry["blank_lines"],
            f"{file.name}: line arithmetic does not add up ({entry})")
    curated = project.store / "curated" / DATASET / f"run={report['run_id']}" / "items.parquet"
    valid = (pl.scan_parquet(curated).filter(pl.col("_batch") == batch).select(pl.len())
             .collect().item() if curated.is_file() else 0)
    # a rejected CSV record's reason names its physical lines; a JSONL record's row is
    # its line number
    is_csv = entry.get("lines") is not None
    quarantined, reasonless, unlined = warehouse_rows(
        project.store,
        "SELECT count(DISTINCT \"row\"), count(*) FILTER (WHERE coalesce(reason, '') = ''),"
        " count(*) FILTER (WHERE \"check\" = 'parse' AND ((? AND reason NOT ILIKE '%line%')"
        " OR (NOT ? AND \"row\" IS NULL))) FROM quarantine WHERE run_id = ? AND batch = ?",
        [is_csv, is_csv, report["run_id"], batch])[0]
    outcome.expect(reasonless == 0, f"{reasonless} quarantined row(s) without a reason")
    outcome.expect(unlined == 0, f"{unlined} rejected record(s) whose reason names no line")
    return Counts(int(valid), int(quarantined), tuple(entry.get("rejected_at") or ()))


def timed(fn: Callable[[], Outcome]) -> Outcome:
    start = time.monotonic()
    out = fn()
    out.seconds = time.monotonic() - start
    return out


def workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="labelgate-battery-"))
