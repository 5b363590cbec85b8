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
on unchanged data does (`--fresh`: every run on a new copy with a new store, so every run
fits its models and draws its plots, as a dataset's first run does). Prints each run's
wall time and CPU seconds (the command's and its temporary server's, which are less
sensitive to other load), then min and median.

`--phases`: afterwards, one more run of each kind with timestamps (seconds since the
process started, and the command's CPU seconds) at its steps: the server launched (by
`flows.entry`, before the CLI's imports), the CLI imported, the spec loaded and checked,
Prefect imported (up to the flow's imports), the flow's imports and set-ups done
(`flows.warm`), the temporary server answering (with the CPU seconds its process took to
get there), the flow run (up to the stage table; then how many times the run opened the
warehouse file and the seconds in `duckdb.connect`), the stage table.

The commands run with Python's bytecode cache written and read, as in a user's shell: the
bench drops PYTHONDONTWRITEBYTECODE from their environment (`--no-bytecode` keeps it; then
every command compiles the project's modules a run imports again; see
docs/benchmarks/throughput.md).

`--against TREE`: also run the `labelgate` of another checkout (say `git worktree add
/tmp/old <commit>`) with the same venv, alternating with this one run by run, so that both
see the same load; each side runs its own console entry (its pyproject's
`[project.scripts]`) from its own folder on PYTHONPATH. `--tree TREE` runs another
checkout in place of the installed `labelgate` (both: two checkouts side by side, say the
same commit with and without a change).
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import resource
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


def _command(tree: Path | None) -> tuple[list[str], dict[str, str]]:
    """The `labelgate` command of `tree` (its console entry, its folder first on the path),
    or the installed one (None), and the environment it needs."""
    if tree is None:
        return [str(BIN / "labelgate")], {}
    text = (tree / "pyproject.toml").read_text(encoding="utf-8")
    found = re.search(r'^labelgate\s*=\s*"([\w.]+):(\w+)"', text, re.MULTILINE)
    if found is None:
        raise SystemExit(f"{tree}/pyproject.toml names no labelgate entry")
    module, fn = found.groups()
    code = f"import sys; sys.argv[0] = 'labelgate'; from {module} import {fn}; sys.exit({fn}())"
    return [sys.executable, "-c", code], {"PYTHONPATH": str(tree)}


def _time_runs(folder: Path, rows: int, env: dict[str, str], repeats: int, kind: str,
               against: Path | None = None, tree: Path | None = None,
               fresh: bool = False) -> tuple[dict[str, list[float]], Path]:
    """`repeats` runs of the command, on a dataset of its own in `folder`; with `against`,
    each one after a run of that tree's (on another copy of the dataset); with `fresh`,
    each run on a copy of its own (a new store: nothing kept from an earlier run). Returns
    the times by side, and the spec of this tree's runs."""
    sides = {"": tree} if against is None else {"old ": against, "new ": tree}
    specs = {name: _dataset(folder / (name.strip() or "this"), rows) for name in sides}
    times: dict[str, list[float]] = {name: [] for name in sides}
    cpus: dict[str, list[float]] = {name: [] for name in sides}
    for i in range(repeats):
        for name, tree in sides.items():
            argv, extra = _command(tree)
            spec = specs[name]
            if fresh:
                spec = _dataset(folder / f"{name.strip() or 'this'}-run{i + 1}", rows)
            start, cpu = time.perf_counter(), _children_cpu()
            done = subprocess.run([*argv, "run", str(spec)], env={**env, **extra},
                                  cwd=spec.parent, capture_output=True, text=True, check=False)
            times[name].append(time.perf_counter() - start)
            cpus[name].append(_children_cpu() - cpu)
            if done.returncode != 0:
                raise SystemExit(f"{name}{kind} run {i + 1} exited {done.returncode}:\n"
                                 f"{done.stderr}")
            print(f"  {name}{kind:<17} run {i + 1}: {times[name][-1]:.2f} s  "
                  f"(CPU {cpus[name][-1]:.2f} s; load {os.getloadavg()[0]:.2f})", flush=True)
    for name, values in cpus.items():
        print(f"  {name}{kind:<17} CPU (the command and its server) min {min(values):.2f} s  "
              f"median {statistics.median(values):.2f} s", flush=True)
    return {f"{name}{kind}": values for name, values in times.items()}, specs[list(sides)[-1]]


def _children_cpu() -> float:
    """CPU seconds of the finished child processes so far (with the servers they waited
    for)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


_PHASES = """
import gc, os, sys, time
start = float(sys.argv[1])
def mark(what):
    print(f"phase {time.time() - start:6.2f} s  (CPU {time.process_time():5.2f} s)  {what}",
          file=sys.stderr, flush=True)
def server_cpu(server):  # the server process's CPU seconds so far (Linux)
    fields = open(f"/proc/{server.process.pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
mark("python started")
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
if hasattr(flows.server, "launch_early"):
    import flows.entry as entry
else:  # an older checkout (`--against`): the CLI launches the server
    entry = None
timed(flows.server.TemporaryServer, "launch", "launching the temporary server")
timed(flows.server.TemporaryServer, "wait", "waiting for the temporary server")
waited = flows.server.TemporaryServer.wait
def wait(self, timeout):
    waited(self, timeout)
    mark(f"(the server answers after {server_cpu(self):.2f} s of CPU in its process)")
flows.server.TemporaryServer.wait = wait
argv = ["run", sys.argv[2]]
if entry is not None and entry.needs_server(argv):  # as flows.entry.main
    flows.server.launch_early()
if entry is not None:  # as flows.entry.main: on again once the flow's modules are loaded
    gc.disable()
import flows.cli as cli
mark("CLI imported")
import labelgate.store.warehouse as wh
opened = [0, 0.0]
connect = wh._open
def counted(*args, **kwargs):  # each time the run opens the warehouse file
    begin = time.perf_counter()
    try:
        return connect(*args, **kwargs)
    finally:
        opened[0] += 1
        opened[1] += time.perf_counter() - begin
wh._open = counted
try:  # the stage table's module; an older checkout (`--against`) has it in the CLI
    import flows.stage_table as table_owner
    table_name = "print_stage_times"
except ImportError:
    table_owner, table_name = cli, "_print_stage_times"
stage_table = getattr(table_owner, table_name)
def opens_then_table(*args, **kwargs):
    mark(f"(the warehouse file opened {opened[0]} times: {opened[1]:.2f} s in duckdb.connect)")
    return stage_table(*args, **kwargs)
setattr(table_owner, table_name, opens_then_table)
timed(cli, "_load", "loading the spec")
timed(cli, "_load_stages", "the flow's imports and set-ups")
timed(table_owner, table_name, "the stage table")
sys.argv = ["labelgate", *argv]
cli.main()
"""


def _phases(spec: Path, env: dict[str, str], kind: str, tree: Path | None = None) -> None:
    """One run with timestamps at its phases (`_PHASES` wraps the CLI's steps), of `tree`
    (its folder first on the path) or of this checkout."""
    extra = {} if tree is None else {"PYTHONPATH": str(tree)}
    done = subprocess.run([sys.executable, "-c", _PHASES, repr(time.time()), str(spec)],
                          env={**env, **extra}, cwd=tree or ROOT, capture_output=True,
                          text=True, check=False)
    print(f"{kind}{'' if tree is None else f' ({tree})'}: exit {done.returncode}")
    if done.returncode not in (0, 1):
        print(done.stderr[-2000:])
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
    ap.add_argument("--against", type=Path, default=None, metavar="TREE",
                    help="alternate each run with one of the labelgate checked out in TREE")
    ap.add_argument("--tree", type=Path, default=None, metavar="TREE",
                    help="run the labelgate checked out in TREE (default: the installed one)")
    ap.add_argument("--fresh", action="store_true",
                    help="each run on a new copy of the dataset with a new store (no models, "
                    "plots or history kept from an earlier run)")
    ap.add_argument("--no-bytecode", action="store_true",
                    help="keep PYTHONDONTWRITEBYTECODE if set (each command compiles the "
                    "project's modules again)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="labelgate-fixed-cost-") as tmp:
        env = {**os.environ, "PREFECT_HOME": f"{tmp}/prefect",
               "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
        env.pop("PREFECT_API_URL", None)
        if not args.no_bytecode:  # as a user's shell: compiled modules cached once
            env.pop("PYTHONDONTWRITEBYTECODE", None)
        print(f"{args.rows:,} rows, {args.repeats} runs each; load {os.getloadavg()[0]:.2f}; "
              f"bytecode {'not ' if 'PYTHONDONTWRITEBYTECODE' in env else ''}cached")
        results, spec_a = _time_runs(Path(tmp) / "a", args.rows, env, args.repeats,
                                     "temporary server", args.against, args.tree, args.fresh)
        server, url = _server(env)
        try:
            running, spec_b = _time_runs(Path(tmp) / "b", args.rows,
                                         {**env, "PREFECT_API_URL": url}, args.repeats,
                                         "running server", args.against, args.tree, args.fresh)
            results |= running
            for tree in ([args.against, args.tree] if args.against else [args.tree]):
                if args.phases:
                    _phases(spec_a, env, "temporary server", tree)
                    _phases(spec_b, {**env, "PREFECT_API_URL": url}, "running server", tree)
        finally:
            server.terminate()
            server.wait(timeout=30)
    for kind, times in results.items():
        print(f"{kind:<21} min {min(times):.2f} s  median {statistics.median(times):.2f} s")
    print(f"load at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
