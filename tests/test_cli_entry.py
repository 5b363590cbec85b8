"""The `labelgate` console entry (`flows.entry:main`) in a process of its own: exit codes and
output survive its quick end, and the temporary Prefect server it starts
(`flows.server`) answers and is stopped."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import SpecFactory

REPO = Path(__file__).parents[1]
ENTRY = "from flows.entry import main; main()"  # pyproject's console script


def _labelgate(*args: str, home: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run the console entry in a new process group; afterwards, whatever is left in that
    group (a server that was not stopped) is killed and the test fails."""
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    proc = subprocess.Popen([sys.executable, "-c", ENTRY, *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    out, err = proc.communicate(timeout=timeout)
    left = True
    try:
        os.killpg(proc.pid, 0)
    except ProcessLookupError:
        left = False
    if left:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert not left, "the command left a process running (its Prefect server?)"
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_long_output_is_complete_and_exit_code_kept(tmp_path: Path) -> None:
    schema = _labelgate("schema", home=tmp_path)
    assert schema.returncode == 0, schema.stderr
    assert json.loads(schema.stdout)["title"]  # all of it, flushed before the quick end
    missing = _labelgate("check", str(tmp_path / "nope.yaml"), home=tmp_path)
    assert missing.returncode == 2
    assert "nope.yaml" in missing.stderr


@pytest.mark.slow
def test_run_starts_and_stops_its_own_server(make_spec: SpecFactory, tmp_path: Path) -> None:
    spec = make_spec()
    done = _labelgate("run", str(spec), home=tmp_path / "prefect")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "gate PASSED" in done.stdout
    assert "prepare-run" in done.stdout  # the stage table: read back from the server
    # real task runs, recorded by the server with their states
    rows = [line for line in done.stdout.splitlines() if "Completed" in line]
    assert {"prepare-run", "ingest", "enforce-contract", "report"} <= {
        line.strip("│ ").split()[0] for line in rows}
    runs = list((tmp_path / "store" / "reports" / "tiny-tweets").glob("2*/report.json"))
    assert len(runs) == 1
    # the second run's server finds its database at the newest migration and skips them
    failing = make_spec(gate={"min_rows_per_class": 1000})
    failed = _labelgate("run", str(failing), home=tmp_path / "prefect")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "min_rows_per_class" in failed.stdout + failed.stderr


@pytest.mark.slow
def test_temporary_server_answers_then_stops(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.server import TemporaryServer

    monkeypatch.setenv("PREFECT_HOME", str(tmp_path))
    server = TemporaryServer()
    server.launch()
    try:
        server.wait(120)
        assert httpx.get(f"{server.api_url}/health").json() is True
        process = server.process
        assert process is not None
    finally:
        server.stop()
    assert process.poll() is not None
    assert server.process is None
