"""Scheduling against a real Prefect server: prefect.yaml → deploy → worker → completed run.

Starts `prefect server start` on 127.0.0.1 (free port, temp PREFECT_HOME), creates a
process work pool, deploys the deployments labelgate ships in the repo's prefect.yaml (by
name: a deployment a user adds there, perhaps for a work pool of their own, is left alone),
checks their schedules, triggers one run with a temp store, and runs a worker until the run
completes. Everything started is stopped by PID (process group) at the end.
$LABELGATE_PREFECT_YAML points the test at another copy of prefect.yaml.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PREFECT_YAML = Path(os.environ.get("LABELGATE_PREFECT_YAML") or REPO / "prefect.yaml")
pytestmark = pytest.mark.slow

# The deployments prefect.yaml ships, and what each must say. Users may add their own.
SHIPPED: dict[str, dict[str, Any]] = {
    "tweets-sentiment-nightly": {
        "cron": "30 2 * * *",
        "entrypoint": "flows/pipeline.py:quality_pipeline",
        "parameters": {"spec_path": "data/examples/tweets/spec.yaml"},
    },
    "all-datasets-nightly": {
        "cron": "0 3 * * *",
        "entrypoint": "flows/nightly.py:nightly",
        "parameters": {"spec_dir": "data/examples", "pattern": "*/spec.yaml"},
    },
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGINT the process group (twice: the worker ignores the first), then SIGKILL."""
    for sig in (signal.SIGINT, signal.SIGINT, signal.SIGTERM):
        if proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            continue
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


class Server:
    def __init__(self, tmp: Path) -> None:
        self.port = _free_port()
        self.api = f"http://127.0.0.1:{self.port}/api"
        self.home = tmp / "prefect-home"
        self.home.mkdir()
        self.logs = tmp / "logs"
        self.logs.mkdir()
        self.env = {
            **os.environ,
            "PREFECT_HOME": str(self.home),
            "PREFECT_API_URL": self.api,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_CLI_PROMPT": "false",
            "PWD": str(REPO),
        }
        self.procs: list[subprocess.Popen[bytes]] = []

    def spawn(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        out = (self.logs / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            [str(BIN / "prefect"), *args], cwd=REPO, env=self.env, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True,
        )
        self.procs.append(proc)
        return proc

    def cli(self, *args: str, timeout: float = 120) -> str:
        result = subprocess.run(
            [str(BIN / "prefect"), *args], cwd=REPO, env=self.env, capture_output=True,
            text=True, timeout=timeout,
        )
        assert result.returncode == 0, (
            f"prefect {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
        )
        return result.stdout

    def get(self, path: str) -> object:
        return self._call(urllib.request.Request(self.api + path))

    def post(self, path: str, body: dict[str, object]) -> object:
        return self._call(urllib.request.Request(
            self.api + path, data=json.dumps(body).encode(), method="POST",
            headers={"Content-Type": "application/json"},
        ))

    @staticmethod
    def _call(req: urllib.request.Request) -> object:
        """One API call; a 503 (the server's database busy, seen once in CI while the worker
        and the flow run wrote to it) is retried as Prefect's own client retries it."""
        for attempt in range(5):
            try:
                with urllib.request.urlopen(req, timeout=10) as resp:
                    return json.loads(resp.read())
            except urllib.error.HTTPError as exc:
                if exc.code != 503 or attempt == 4:
                    raise
                time.sleep(1 + attempt)
        raise AssertionError("unreachable")

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")[-4000:]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = Server(tmp_path)
    proc = srv.spawn(
        "server", "server", "start", "--host", "127.0.0.1", "--port", str(srv.port),
        "--analytics-off",
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                srv.get("/health")
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"prefect server did not start:\n{srv.log('server')}")
                time.sleep(0.5)
        yield srv
    finally:
        for p in reversed(srv.procs):
            _stop(p)


def test_deploy_from_prefect_yaml_and_run_with_a_worker(server: Server, tmp_path: Path) -> None:
    if not shutil.which("prefect", path=str(BIN)):
        pytest.fail("prefect CLI missing from the virtualenv")
    server.cli("work-pool", "create", "local-process", "--type", "process")
    names = [arg for name in SHIPPED for arg in ("--name", name)]
    server.cli("--no-prompt", "deploy", "--prefect-file", str(PREFECT_YAML), *names)

    deployments = server.post("/deployments/filter", {})
    assert isinstance(deployments, list)
    by_name = {d["name"]: d for d in deployments}
    assert set(SHIPPED) <= set(by_name), sorted(by_name)
    for name, want in SHIPPED.items():
        deployment = by_name[name]
        [schedule] = deployment["schedules"]
        assert schedule["schedule"]["cron"] == want["cron"], name
        assert schedule["schedule"]["timezone"] == "Europe/Berlin", name
        assert schedule["active"] is True, name
        assert deployment["entrypoint"] == want["entrypoint"], name
        assert deployment["work_pool_name"] == "local-process", name
        assert deployment["global_concurrency_limit"]["limit"] == 1, name  # one run at a time
        assert want["parameters"].items() <= deployment["parameters"].items(), name
    nightly = by_name["tweets-sentiment-nightly"]

    store = tmp_path / "store"
    run = server.post(
        f"/deployments/{nightly['id']}/create_flow_run",
        {"parameters": {"spec_path": "data/examples/tweets/spec.yaml", "store": str(store)}},
    )
    assert isinstance(run, dict)
    run_id = run["id"]

    server.spawn("worker", "worker", "start", "--pool", "local-process", "--type", "process")
    deadline = time.monotonic() + 240
    state = None
    while time.monotonic() < deadline:
        flow_run = server.get(f"/flow_runs/{run_id}")
        assert isinstance(flow_run, dict)
        state = flow_run["state"]["type"]
        if state in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
            break
        time.sleep(1)
    assert state == "COMPLETED", f"flow run ended {state}:\n{server.log('worker')}"

    report = json.loads(
        (store / "reports/tweets-sentiment/latest/report.json").read_text()
    )
    assert report["gate"]["passed"] is True
    assert report["rows"]["input"] == 3000
    assert report["rows"]["balanced"] is True


def test_labelgate_serve_runs_on_its_schedule(server: Server, tmp_path: Path) -> None:
    """`labelgate serve SPEC --interval 5`: one process schedules and runs the flow."""
    store = tmp_path / "serve-store"
    out = (server.logs / "serve.log").open("wb")
    proc = subprocess.Popen(
        [str(BIN / "labelgate"), "serve", "data/examples/tweets/spec.yaml", "--interval", "5",
         "--store", str(store)],
        cwd=REPO, env=server.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
    )
    server.procs.append(proc)
    report = store / "reports/tweets-sentiment/latest/report.json"
    deadline = time.monotonic() + 240
    while not report.is_file() and time.monotonic() < deadline:
        assert proc.poll() is None, server.log("serve")
        time.sleep(1)
    assert report.is_file(), f"no scheduled run finished:\n{server.log('serve')}"
    assert json.loads(report.read_text())["gate"]["passed"] is True
    deployments = server.post("/deployments/filter", {})
    assert isinstance(deployments, list)
    assert [d["name"] for d in deployments] == ["tweets-sentiment-serve"]
    assert deployments[0]["global_concurrency_limit"]["limit"] == 1
    # a run takes longer than the 5 s interval: the ticks meanwhile waited for it (without
    # the limit they started and failed on the dataset's run lock)
    # the report is written before the flow run is marked COMPLETED: wait for the state
    states: list[str] = []
    while time.monotonic() < deadline:
        runs = server.post("/flow_runs/filter", {})
        assert isinstance(runs, list)
        states = [r["state"]["type"] for r in runs]
        if "COMPLETED" in states:
            break
        time.sleep(1)
    assert len(states) >= 2
    assert "COMPLETED" in states, states
    assert not {"FAILED", "CRASHED"} & set(states), states


def test_labelgate_serve_needs_a_server(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    result = subprocess.run(
        [str(BIN / "labelgate"), "serve", "data/examples/tweets/spec.yaml"], cwd=REPO, env=env,
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert "needs a Prefect server" in result.stderr
