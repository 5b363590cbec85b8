"""Benchmark: the fixed cost of one `labelgate run` (issue 22), on 1,000 bundled tweets.

    .venv/bin/python bench/bench_fixed_cost.py [--rows 1000] [--repeats 5]

Copies the first `--rows` rows of the demo's tweets into a temporary folder with the demo's
spec (label issues, dedup, splits, publish, report) and times the whole command,
`labelgate run spec.yaml`, in a fresh process each time, two ways:
  temporary server  no PREFECT_API_URL: the command starts Prefect's temporary server and
                    stops it at the end (what a first-time user gets)
  running server    PREFECT_API_URL set to a `prefect server start` started here once (what
                    a nightly worker or a developer who keeps a server running gets)
The first run of each kind fits the label-issue models; later runs reuse them, as a rerun
on unchanged data does. Prints each run's wall time, then min and median per kind.

`--phases`: afterwards, one more run of each kind with timestamps (seconds since the
process started) at its steps: the CLI imported, the spec loaded and checked, the server
launched, Prefect imported (up to the stages' imports), the stages imported, the temporary
server answering, the flow run (up to the stage table), the stage table.
"""

from __future__ import annotations

import argparse
import csv
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DEMO = ROOT / "data" / "examples" / "tweets"


def _dataset(folder: Path, rows: int) -> Path:
    """The first `rows` tweets and the demo spec with its store inside `folder`."""
    records: list[list[str]] = []
    header: list[str] = []
    for path in sorted((DEMO / "items").glob("*.csv")):
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            header = next(reader)
            records.extend(reader)
    (folder / "items").mkdir(parents=True)
    with (folder / "items" / "part.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(records[:rows])
    spec = (DEMO / "spec.yaml").read_text(encoding="utf-8")
    spec = spec.replace("store: ../../store", "store: ./store")
    spec = spec.replace("min_rows_per_class: 50", "min_rows_per_class: 5")
    spec = spec.replace("min_test_rows_per_class: 20", "min_test_rows_per_class: 2")
    (folder / "spec.yaml").write_text(spec, encoding="utf-8")
    return folder / "spec.yaml"


def _time_runs(spec: Path, env: dict[str, str], repeats: int, kind: str) -> list[float]:
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        done = subprocess.run([str(BIN / "labelgate"), "run", str(spec)], env=env,
                              capture_output=True, text=True, check=False)
        times.append(time.perf_counter() - start)
        if done.returncode != 0:
            raise SystemExit(f"{kind} run {i + 1} exited {done.returncode}:\n{done.stderr}")
        print(f"  {kind:<17} run {i + 1}: {times[-1]:.2f} s", flush=True)
    return times


_PHASES = """
import sys, time
start = float(sys.argv[1])
def mark(what):
    print(f"phase {time.time() - start:6.2f} s  {what}", file=sys.stderr, flush=True)
mark("python started")
import flows.cli as cli
mark("CLI imported")
def timed(owner, name, label):
    fn = getattr(owner, name)
    def run(*args, **kwargs):
        mark(label + " ...")
        try:
            return fn(*args, **kwargs)
        finally:
            mark("... " + label)
    setattr(owner, name, run)
import flows.server
timed(cli, "_load", "loading the spec")
timed(flows.server.TemporaryServer, "launch", "launching the temporary server")
timed(cli, "_load_stages", "importing the stages")
timed(flows.server.TemporaryServer, "wait", "waiting for the temporary server")
timed(cli, "_print_stage_times", "the stage table")
sys.argv = ["labelgate", "run", sys.argv[2]]
cli.main()
"""


def _phases(spec: Path, env: dict[str, str], kind: str) -> None:
    """One run with timestamps at its phases (`_PHASES` wraps the CLI's steps)."""
    done = subprocess.run([sys.executable, "-c", _PHASES, repr(time.time()), str(spec)],
                          env=env, cwd=ROOT, capture_output=True, text=True, check=False)
    print(f"{kind}: exit {done.returncode}")
    for line in done.stderr.splitlines():
        if line.startswith("phase "):
            print("  " + line.removeprefix("phase "))


def _server(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1",
                             "--port", str(port)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/api"
    for _ in range(600):
        try:
            if httpx.get(f"{url}/health").status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("prefect server start did not answer within 60 s")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--phases", action="store_true",
                    help="then one run of each kind with timestamps at its phases")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="labelgate-fixed-cost-") as tmp:
        env = {**os.environ, "PREFECT_HOME": f"{tmp}/prefect",
               "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
        env.pop("PREFECT_API_URL", None)
        print(f"{args.rows:,} rows, {args.repeats} runs each; load {os.getloadavg()[0]:.2f}")
        spec_a, spec_b = _dataset(Path(tmp) / "a", args.rows), _dataset(Path(tmp) / "b", args.rows)
        results = {"temporary server": _time_runs(spec_a, env, args.repeats, "temporary server")}
        server, url = _server(env)
        try:
            results["running server"] = _time_runs(
                spec_b, {**env, "PREFECT_API_URL": url}, args.repeats, "running server")
            if args.phases:
                _phases(spec_a, env, "temporary server")
                _phases(spec_b, {**env, "PREFECT_API_URL": url}, "running server")
        finally:
            server.terminate()
            server.wait(timeout=30)
    for kind, times in results.items():
        print(f"{kind:<17} min {min(times):.2f} s  median {statistics.median(times):.2f} s")
    print(f"load at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
