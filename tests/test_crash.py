"""Crashes: a run SIGKILLed at a stage boundary, and a disk that fills up while publishing.

Invariant 3: a run that fails, or is killed, leaves the previous published version intact.
The killed runs are real `labelgate run` processes (fresh PREFECT_HOME, PREFECT_API_URL the
session's Prefect server, as `make battery` runs its cases: no temporary server to boot per
kill; whatever a run leaves in its process group is killed after it) with the test hook
`LABELGATE_FAULT=<stage>:<point>` (tasks/faults.py). The run after a crash runs in this
process, under the same server. Whether a run was abandoned is the warehouse's record (the
runs table and the lock), not the server's.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from flows.cli import app
from labelgate.stages.publish import MANIFEST, current_version
from labelgate.store import locking, warehouse
from tests.conftest import item_rows, spec_dict, write_csv

pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_server")]

DATASET = "tiny-tweets"
STAGES: dict[str, Any] = {
    "label_issues": {"method": "cross_validated", "folds": 3},
    "dedup": {"near": {"threshold": 0.9}},
    "splits": {"fractions": {"train": 0.8, "validation": 0.1, "test": 0.1}},
    "publish": {"formats": ["parquet", "jsonl"]},
    "gate": {"max_split_leakage": 0, "min_rows_per_class": 5},
}


def _write_project(root: Path) -> Path:
    write_csv(root / "items" / "part1.csv", item_rows(90))
    spec = root / "spec.yaml"
    spec.write_text(yaml.safe_dump(spec_dict(**STAGES), sort_keys=False))
    return spec


def _add_rows(root: Path) -> None:
    """New input for the run that gets killed: a second file of 30 new rows."""
    write_csv(root / "items" / "part2.csv",
              [dict(r, tweet_id=f"n{i:04d}") for i, r in enumerate(item_rows(30))])


def verify_version(folder: Path) -> dict[str, Any]:
    """Every file the manifest lists has its sha256; no unlisted data file. The manifest."""
    manifest: dict[str, Any] = json.loads((folder / MANIFEST).read_text())
    for name, info in manifest["files"].items():
        digest = hashlib.sha256((folder / name).read_bytes()).hexdigest()
        assert digest == info["sha256"], f"{folder / name}: content changed"
    extra = {p.name for p in folder.iterdir()} - set(manifest["files"]) - {
        MANIFEST, "published_at.txt", "README.md"}  # the metadata: manifest, time, card
    assert not extra, f"{folder}: files not in the manifest: {extra}"
    return manifest


def _published(spec: Path) -> Path:
    return spec.parent / "store" / "published" / DATASET


@pytest.fixture(scope="module")
def base_project(tmp_path_factory: pytest.TempPathFactory, prefect_server: None) -> Path:
    """A store with one passing run that published v1 (copied for each case)."""
    from flows.pipeline import quality_pipeline

    root = tmp_path_factory.mktemp("crash-base")
    spec = _write_project(root)
    report = quality_pipeline(str(spec))
    assert report["gate"]["passed"] and report["published"]["version"] == 1
    return root


@pytest.fixture(scope="module")
def prefect_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One fresh PREFECT_HOME for the killed processes (their settings and logs)."""
    return tmp_path_factory.mktemp("prefect-home")


def run_cli_killed(spec: Path, fault: str, prefect_home: Path) -> int:
    """`labelgate run SPEC` in a new process group with LABELGATE_FAULT set, against the
    session's Prefect server; returns the exit status. Afterwards kills what the process
    left in its group."""
    from prefect.settings import get_current_settings

    api_url = get_current_settings().api.url
    assert api_url, "the session's Prefect server (prefect_server fixture) is not up"
    env = {**os.environ, "PREFECT_HOME": str(prefect_home), "PREFECT_API_URL": api_url,
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "LABELGATE_FAULT": fault}
    code = "from flows.cli import app; app()"
    log = spec.parent / f"killed-{fault.replace(':', '-')}.log"
    # output to a file, not a pipe: an orphaned child would hold a pipe open
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", code, "run", str(spec)], env=env,
            cwd=Path(__file__).parents[1], stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            proc.wait(timeout=300)
        finally:
            with contextlib.suppress(ProcessLookupError):  # anything the killed run left
                os.killpg(proc.pid, signal.SIGKILL)
    if proc.returncode != -signal.SIGKILL:
        print(log.read_text(errors="replace"))
    return proc.returncode


def _runs(spec: Path) -> dict[str, tuple[str, Any, str | None]]:
    with warehouse.connect(spec.parent / "store" / warehouse.WAREHOUSE_FILE,
                           read_only=True) as con:
        rows = con.execute("SELECT run_id, status, finished_at, message FROM runs").fetchall()
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


# (fault point, the version `current` must point to after the kill)
KILL_POINTS = [
    pytest.param("ingest:after", 1, id="after-ingest"),
    pytest.param("label-issues:after", 1, id="after-label-issues"),
    pytest.param("splits:after", 1, id="after-splits"),
    pytest.param("publish:switch", 1, id="publish-version-written-current-not-moved"),
    pytest.param("report:before", 2, id="after-publish-before-report"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("fault", "current_after_kill"), KILL_POINTS)
def test_killed_run_leaves_store_usable_and_is_reported_abandoned(
    base_project: Path, prefect_home: Path, tmp_path: Path, fault: str,
    current_after_kill: int,
) -> None:
    """SIGKILL at a stage boundary: the warehouse opens, `current` is the last passing
    version with intact files, the lock is free, the next run passes and reports the
    killed run as abandoned; no row lost."""
    from flows.pipeline import quality_pipeline

    root = tmp_path / "project"
    shutil.copytree(base_project, root, symlinks=True)
    spec = root / "spec.yaml"
    _add_rows(root)
    before = set(_runs(spec))

    assert run_cli_killed(spec, fault, prefect_home) == -signal.SIGKILL

    runs = _runs(spec)  # the warehouse opens
    killed = [r for r in runs if r not in before]
    assert len(killed) == 1 and runs[killed[0]][0] == "running"
    published = _published(spec)
    assert current_version(published) == current_after_kill
    verify_version(published / f"v{current_after_kill}")
    for folder in published.glob("v*"):  # any version folder is whole (none half-written)
        verify_version(folder)
    with locking.acquire(spec.parent / "store", DATASET, run_id="probe"):
        pass  # the dead process's lock went with it

    report = quality_pipeline(str(spec))

    assert report["gate"]["passed"]
    assert report["previous_runs_abandoned"]["count"] == 1
    assert [r["run_id"] for r in report["previous_runs_abandoned"]["runs"]] == killed
    status, finished_at, message = _runs(spec)[killed[0]]
    assert status == "abandoned" and finished_at is not None
    assert message is not None and report["run_id"] in message
    rows = report["rows"]
    assert rows["input"] == 120 and rows["balanced"]
    assert rows["input"] == rows["valid"] + rows["quarantined"] + rows["excluded"]
    version = report["published"]["version"]
    assert version == len(list(published.glob("v*")))
    assert current_version(published) == version
    manifest = verify_version(published / f"v{version}")
    assert manifest["rows"] == rows["valid"]  # every kept row is published
    assert not list(published.glob(".tmp-*"))


def test_disk_full_while_publishing_keeps_the_previous_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write error (ENOSPC) mid-publish: exit 3 with the error and where `current` is,
    v1 intact, no v2 or temporary folder, the run recorded as error; the next run
    publishes v2."""
    from labelgate.stages import publish

    spec = _write_project(tmp_path)
    runner = CliRunner()
    first = runner.invoke(app, ["run", str(spec)])
    assert first.exit_code == 0, first.output
    published = _published(spec)
    v1 = verify_version(published / "v1")
    _add_rows(tmp_path)

    def disk_full(df: Any, path: Path) -> None:
        path.write_bytes(b"{")  # a partial file, then the disk is full
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(publish, "_write_jsonl", disk_full)
    failed = runner.invoke(app, ["run", str(spec)])

    assert failed.exit_code == 3, failed.output
    assert "No space left on device" in failed.output
    assert "`current` points to v1" in failed.output
    assert current_version(published) == 1
    assert verify_version(published / "v1") == v1
    assert sorted(p.name for p in published.iterdir()) == ["current", "v1"]
    errors = [(s, m) for s, _, m in _runs(spec).values() if s == "error"]
    assert len(errors) == 1 and "No space left on device" in str(errors[0][1])

    monkeypatch.undo()
    again = runner.invoke(app, ["run", str(spec)])
    assert again.exit_code == 0, again.output
    assert current_version(published) == 2
    assert verify_version(published / "v2")["rows"] >= v1["rows"]

