"""End-to-end benchmark: the whole flow on N text rows made from the real tweets corpus.

    .venv/bin/python bench/bench_pipeline.py --rows 1000000 [--rows 5000000] [--again]
        [--incremental 10000] [--keep DIR] [--night-from DIR --nights 3] [--profile FILE]

For each size: generate the dataset (bench_ingest's generator: resampled real tweets, unique
ids, 0.5% broken rows), write a spec with every stage (label issues, dedup, splits,
publish), run the Prefect flow in a fresh process (temporary server) and print wall time
per stage (from the Prefect task runs), its CPU seconds (the flow process's, every thread,
sampled every 50 ms: steadier than wall seconds on a shared machine), total, and the
process's peak RSS.
`--incremental N` then adds a batch of N new rows and runs again (the nightly case).
`--keep DIR` works in DIR (kept) and copies the store after the full run to DIR/store-full;
`--night-from DIR` then runs only the night, ``--nights`` times, each from a fresh copy of
that store (the same night measured again). `--profile FILE` writes cProfile's statistics of
the last flow run to FILE.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "data" / "examples"))

# the flow in a fresh process; argv: spec, store, Dask scheduler address or "" (in process)
CHILD = r"""
import json, os, sys, threading, time
# the process's resident memory every 50 ms, to read each stage's peak (issue 26), and its
# CPU seconds (every thread's, user + system), to read each stage's: on a shared machine
# these move less with the load than the stage's wall seconds
PAGE, samples = os.sysconf("SC_PAGE_SIZE"), []
def cpu():
    t = os.times()
    return t.user + t.system
def sample():
    while True:
        with open("/proc/self/statm") as fh:
            samples.append((time.time(), int(fh.read().split()[1]) * PAGE, cpu()))
        time.sleep(0.05)
threading.Thread(target=sample, daemon=True).start()
from flows.pipeline import quality_pipeline
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
flow = quality_pipeline
if sys.argv[3]:
    from tasks.partition import dask_runner
    flow = quality_pipeline.with_options(task_runner=dask_runner(sys.argv[3]))
profile = None
if os.environ.get("BENCH_PROFILE"):
    import cProfile
    profile = cProfile.Profile()
    profile.enable()
t0, c0 = time.perf_counter(), cpu()
state = flow(sys.argv[1], sys.argv[2], return_state=True)
wall, flow_cpu = time.perf_counter() - t0, cpu() - c0
if profile is not None:
    profile.disable()
    profile.dump_stats(os.environ["BENCH_PROFILE"])
with get_client(sync_client=True) as client:
    runs = client.read_task_runs(flow_run_filter=FlowRunFilter(
        id=FlowRunFilterId(any_=[state.state_details.flow_run_id])))
stages, parts, memory, cpus = {}, {}, {}, {}
for t in sorted(runs, key=lambda t: t.start_time or t.expected_start_time):
    name = t.name.rsplit("-", 1)[0]
    sec = t.total_run_time.total_seconds()
    if t.task_key.startswith("part"):
        parts.setdefault(name, []).append(sec)
    else:
        stages[name] = sec
        if t.start_time and t.end_time:  # MiB at the stage's start, and its peak
            a, b = t.start_time.timestamp(), t.end_time.timestamp()
            before = [r for ts, r, _ in samples if ts <= a] or [0]
            during = [r for ts, r, _ in samples if a <= ts <= b] or before[-1:]
            memory[name] = [before[-1] / 2**20, max(during) / 2**20]
            # CPU from the last sample before the start to the first after the end
            start = [c for ts, _, c in samples if ts <= a] or [c0]
            end = [c for ts, _, c in samples if ts >= b] or [cpu()]
            cpus[name] = end[0] - start[-1]
report = state.result(raise_on_failure=False)
rows = report.get("rows") if isinstance(report, dict) else None
# whether the stages that can build on an earlier run did (issue 26)
modes = {}
if isinstance(report, dict):
    li = (report.get("label_issues") or {}).get("refresh") or {}
    if li:
        modes["label issues"] = f"{li.get('mode')} ({li.get('reason')})"
    dup = (report.get("duplicates") or {}).get("refresh")
    if dup:
        modes["dedup"] = dup
print("RESULT " + json.dumps({"state": state.type.value, "wall": wall, "stages": stages,
                              "flow_run_id": str(state.state_details.flow_run_id),
                              "parts": parts, "rows": rows, "modes": modes,
                              "memory": memory, "cpu": cpus, "flow_cpu": flow_cpu}))
"""


def spec_for(csv_glob: str) -> dict[str, object]:
    return {
        "name": "bench-pipeline",
        "sources": {"items": {"path": csv_glob}},
        "columns": {"id": "tweet_id", "text": ["text"], "label": "sentiment"},
        "contract": {
            "tweet_id": {"dtype": "str", "unique": True},
            "text": {"dtype": "str", "str_length": {"min": 1, "max": 1000}},
            "sentiment": {"dtype": "str", "isin": ["negative", "neutral", "positive"]},
            "confidence": {"dtype": "float", "nullable": True, "min": 0, "max": 1},
        },
        "label_issues": {"method": "cross_validated", "folds": 5},
        "dedup": {"near": {"threshold": 0.9}},
        "splits": {"fractions": {"train": 0.8, "validation": 0.1, "test": 0.1}},
        "publish": {"formats": ["parquet", "jsonl"]},
        "gate": {"max_quarantine_rate": 0.05, "max_split_leakage": 0},
    }


def run_flow(spec: Path, store: Path, home: Path, profile: str | None = None
             ) -> dict[str, object]:
    env = {**os.environ, **({"BENCH_PROFILE": profile} if profile else {}),
           "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_LOGGING_LEVEL": "WARNING",
           "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120"}
    env.pop("PREFECT_API_URL", None)
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    proc = subprocess.run([sys.executable, "-c", CHILD, str(spec), str(store), ""], cwd=ROOT,
                          env=env, capture_output=True, text=True, check=False)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if line is None:
        raise SystemExit(f"flow failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    result: dict[str, object] = json.loads(line[len("RESULT "):])
    # ru_maxrss of children is the max over all waited children: exact for the first run
    result["peak_rss_mib"] = max(peak, before) / 1024
    return result


def show(title: str, r: dict[str, object]) -> None:
    stages = r["stages"]
    assert isinstance(stages, dict)
    print(f"\n{title}: {r['state']}, wall {float(r['wall']):.1f} s (incl. ~7-15 s Prefect "  # type: ignore[arg-type]
          f"server start), peak RSS {float(r['peak_rss_mib']):.0f} MiB; rows {r['rows']}")  # type: ignore[arg-type]
    memory = r.get("memory")
    mem = memory if isinstance(memory, dict) else {}
    cpus = r.get("cpu")
    cpu = cpus if isinstance(cpus, dict) else {}
    print(f"  {'stage':<18}{'seconds':>9}   {'CPU s':>7}   {'RSS at start':>12} "
          f"{'peak in stage':>13}")
    for name, sec in stages.items():
        start, peak = mem.get(name, (None, None))
        rss = f"{start:>10,.0f} MiB {peak:>9,.0f} MiB" if start is not None else ""
        used = f"{cpu[name]:>7.2f} s" if name in cpu else f"{'':>9}"
        print(f"  {name:<18}{sec:>9.2f} s {used} {rss}")
    print(f"  {'sum of stages':<18}{sum(stages.values()):>9.2f} s "
          f"{sum(cpu.values()):>7.2f} s")
    if isinstance(r.get("flow_cpu"), float):
        print(f"  CPU of the flow call (this process, not the server's): "
              f"{float(r['flow_cpu']):.1f} s")  # type: ignore[arg-type]
    modes = r.get("modes")
    for name, mode in (modes.items() if isinstance(modes, dict) else []):
        print(f"  {name}: {mode}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, action="append")
    parser.add_argument("--incremental", type=int, default=0)
    parser.add_argument("--again", action="store_true",
                        help="run once more with no new data (the reuse path)")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep the full "
                        "run's store in DIR/store-full")
    parser.add_argument("--night-from", type=Path, help="a --keep folder: run only its night")
    parser.add_argument("--nights", type=int, default=1)
    parser.add_argument("--profile", help="cProfile statistics of the last run to this file")
    args = parser.parse_args()
    if args.night_from:
        for i in range(args.nights):
            nights(args.night_from, profile=args.profile if i == args.nights - 1 else None)
        return
    from bench_ingest import generate

    for rows in args.rows or [1_000_000]:
        csv = generate(rows)
        with tempfile.TemporaryDirectory() as tmp:
            work = args.keep or Path(tmp)
            (work / "in").mkdir(parents=True)
            os.symlink(csv, work / "in" / "part-0.csv")
            spec = work / "spec.yaml"
            spec.write_text(yaml.safe_dump(spec_for(str(work / "in" / "*.csv"))))
            t = time.perf_counter()
            show(f"{rows:,} rows", run_flow(spec, work / "store", work / "home"))
            if args.again:
                show("same inputs again (nothing new tonight)",
                     run_flow(spec, work / "store", work / "home"))
            if args.keep:
                shutil.copytree(work / "store", work / "store-full", symlinks=True)
            if args.incremental:
                extra = pl.read_csv(csv, n_rows=args.incremental, infer_schema=False)
                extra = extra.with_columns(pl.format("n-{}", pl.col("tweet_id")).alias("tweet_id"))
                extra.write_csv(work / "in" / "part-1.csv")
                show(f"+ {args.incremental:,} new rows (nightly)",
                     run_flow(spec, work / "store", work / "home", args.profile))
            print(f"  (both runs {time.perf_counter() - t:.0f} s)")


def nights(work: Path, *, profile: str | None) -> None:
    """The night of a --keep folder again, from a fresh copy of the full run's store."""
    shutil.rmtree(work / "store", ignore_errors=True)
    shutil.copytree(work / "store-full", work / "store", symlinks=True)
    show("night again (from the full run's store)",
         run_flow(work / "spec.yaml", work / "store", work / "home", profile))


if __name__ == "__main__":
    main()
