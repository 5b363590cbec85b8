"""Benchmark: the whole pipeline at N rows against the 1 M-row run and the polars floor.

    make bench-scale ROWS=10000000
    .venv/bin/python bench/bench_scale.py --rows 10000000 [--base 1000000]

For N rows and for `--base` rows (bench_ingest's generator: resampled real tweets, unique
ids, 0.5% broken rows) it runs the flow in a fresh process with a temporary Prefect server
(`bench_pipeline.run_flow`, every stage: label issues, dedup, splits, publish, report) and
times the floor, plain polars CSV -> Parquet of the same file, in a fresh process too.
Prints per run: wall time, peak RSS, seconds per stage (with the RSS at each stage's
start and its peak in the stage); then N's ratios to the base run
(time and memory; rows are N / base times as many) and to the floor. The base runs first:
a process's children's peak RSS is the largest so far, so N must be larger than the base.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "data" / "examples"))

FLOOR = r"""
import json, resource, sys, time
import polars as pl
t = time.perf_counter()
pl.read_csv(sys.argv[1]).write_parquet(sys.argv[2])
print(json.dumps({"wall": time.perf_counter() - t,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def floor(csv: Path) -> dict[str, float]:
    """Plain polars CSV -> Parquet of `csv` in a fresh process: wall s, peak RSS MiB."""
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run([sys.executable, "-c", FLOOR, str(csv), f"{tmp}/out.parquet"],
                             check=True, capture_output=True, text=True)
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def pipeline(rows: int) -> dict[str, object]:
    """The whole flow on `rows` generated rows (bench_pipeline's spec and child process)."""
    from bench_ingest import generate
    from bench_pipeline import run_flow, spec_for

    csv = generate(rows)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "in").mkdir()
        (work / "in" / "part-0.csv").symlink_to(csv)
        spec = work / "spec.yaml"
        spec.write_text(yaml.safe_dump(spec_for(str(work / "in" / "*.csv"))))
        result = run_flow(spec, work / "store", work / "home")
    result["floor"] = floor(csv)
    return result


def show(rows: int, r: dict[str, object]) -> None:
    stages, fl = r["stages"], r["floor"]
    assert isinstance(stages, dict) and isinstance(fl, dict)
    wall, peak = float(r["wall"]), float(r["peak_rss_mib"])  # type: ignore[arg-type]
    print(f"\n{rows:,} rows: {r['state']}, wall {wall:.1f} s (the flow call, the temporary "
          f"server's start included), peak RSS {peak:,.0f} MiB; floor (polars CSV -> "
          f"Parquet) {fl['wall']:.1f} s, {fl['peak_rss_mib']:,.0f} MiB")
    memory = r.get("memory")
    mem = memory if isinstance(memory, dict) else {}
    print(f"  {'stage':<18}{'seconds':>9}   {'RSS at start':>12} {'peak in stage':>13}")
    for name, sec in stages.items():
        start, top = mem.get(name, (None, None))
        rss = f"{start:>10,.0f} MiB {top:>9,.0f} MiB" if start is not None else ""
        print(f"  {name:<18}{sec:>9.2f} s {rss}")
    print(f"  {'sum of stages':<18}{sum(stages.values()):>9.2f} s")


def ratios(rows: int, big: dict[str, object], base_rows: int, base: dict[str, object]
           ) -> None:
    def f(r: dict[str, object], key: str) -> float:
        return float(r[key])  # type: ignore[arg-type]

    fl = big["floor"]
    assert isinstance(fl, dict)
    print(f"\n{rows:,} rows against {base_rows:,} ({rows / base_rows:.0f}x the rows): "
          f"time {f(big, 'wall') / f(base, 'wall'):.1f}x, peak RSS "
          f"{f(big, 'peak_rss_mib') / f(base, 'peak_rss_mib'):.1f}x; against the floor: "
          f"time {f(big, 'wall') / fl['wall']:.1f}x, peak RSS "
          f"{f(big, 'peak_rss_mib') / fl['peak_rss_mib']:.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--base", type=int, default=1_000_000)
    args = parser.parse_args()
    if args.rows < args.base:
        parser.error("--rows must be at least --base (peak RSS is read after the base run)")
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else []
    print(f"load average at the start: {' '.join(load)}")
    t = time.perf_counter()
    base = pipeline(args.base)
    show(args.base, base)
    big = pipeline(args.rows) if args.rows != args.base else base
    if args.rows != args.base:
        show(args.rows, big)
    ratios(args.rows, big, args.base, base)
    end = Path("/proc/loadavg").read_text().split()[:3] if load else []
    print(f"({time.perf_counter() - t:.0f} s in all; load average at the end: {' '.join(end)}; "
          f"this process's children peaked at "
          f"{resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024:,.0f} MiB)")


if __name__ == "__main__":
    main()
