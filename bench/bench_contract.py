"""Benchmark: the contract's pre-filter against plain pandera, on 1 M generated rows.

    .venv/bin/python bench/bench_contract.py                  # 1,000,000 rows, 11 x 5 runs
    .venv/bin/python bench/bench_contract.py --rows 200000 --repeat 3

`checks.contract.enforce_contract` sends pandera only the rows that can fail
(`_rows_to_validate`: one polars pass that proves the other rows pass every check).
Two variants, each producing the same quarantine and valid rows (checked here):

  prefilter  `enforce_contract` as it is
  plain      `enforce_contract` with `_rows_to_validate` replaced by the identity (as
             tests/test_contract.py does): pandera validates every row with lazy=True and
             its failure cases are joined back to the rows by position

The data is bench/bench_ingest.py's (the real CrowdFlower tweets resampled, with 1.5% of
rows broken on purpose), ingested once; its rows and rejects are written to Parquet and
each measurement reads them in a fresh Python process, so its peak RSS is its own. A
process warms up (pandera's lazy imports) on 2,000 rows, then times `--inner` calls on
every row; its peak RSS is read after the first (later calls reuse the allocator's
pages), and the pre-filter and pandera's `validate` are timed on their own. The
variants alternate, the first one swapping each round, so a busy neighbour slows both
alike; min-of-N is the figure to compare on a shared machine.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "data" / "examples"))

# bench/bench_ingest.py's dataset (imported by name: mypy does not follow it into
# data/examples, which is not a package)
_INGEST = importlib.import_module("bench_ingest")
SPEC: dict[str, Any] = _INGEST.SPEC
generate: Callable[[int], Path] = _INGEST.generate
VARIANTS = ("prefilter", "plain")


def prepare(csv: Path, out: Path) -> tuple[Path, Path]:
    """Ingest `csv` once; its rows and rejects as Parquet files in `out`."""
    from labelgate.spec import parse_spec
    from labelgate.store.lake import ingest_source, load_batches

    spec = parse_spec({**SPEC, "sources": {"items": {"path": str(csv)}}})
    batches = ingest_source(
        spec.sources.items, key="items", dataset=spec.name, store=out / "store", base_dir=ROOT,
    )
    rows, rejects = load_batches(batches)
    paths = out / "rows.parquet", out / "rejects.parquet"
    rows.write_parquet(paths[0])
    rejects.write_parquet(paths[1])
    return paths


def _digest(frame: pl.DataFrame) -> str:
    """Order-sensitive fingerprint of a frame's values and schema."""
    h = hashlib.sha256(str(frame.schema).encode())
    h.update(frame.hash_rows(seed=0).to_numpy().tobytes())
    return h.hexdigest()[:16]


def _timed(fn: Callable[..., Any], log: list[tuple[float, Any]]) -> Callable[..., Any]:
    """`fn`, logging (seconds, result) of each call."""

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            out = fn(*args, **kwargs)
        except Exception as exc:
            log.append((time.perf_counter() - t0, exc))
            raise
        log.append((time.perf_counter() - t0, out))
        return out

    return wrapped


def _instrument(contract: Any, variant: str) -> dict[str, list[tuple[float, Any]]]:
    """Swap in `variant`'s `_rows_to_validate`; time it and pandera's `validate` calls."""
    logs: dict[str, list[tuple[float, Any]]] = {"filter": [], "pandera": []}
    keep = contract._rows_to_validate if variant == "prefilter" else (lambda df, spec: df)
    contract._rows_to_validate = _timed(keep, logs["filter"])
    build = contract.build_schema

    def build_timed(*args: Any, **kwargs: Any) -> Any:
        schema = build(*args, **kwargs)
        schema.validate = _timed(schema.validate, logs["pandera"])
        return schema

    contract.build_schema = build_timed
    return logs


def measure(variant: str, data: Path, inner: int) -> dict[str, Any]:
    """Time `inner` contract runs of `variant` on the prepared rows (this process)."""
    # imports first: pandera imports its polars checks (and hypothesis) on first use
    import pandera.backends.polars.builtin_checks  # noqa: F401

    import checks.contract as contract
    from labelgate.spec import parse_spec

    rows = pl.read_parquet(data / "rows.parquet")
    rejects = pl.read_parquet(data / "rejects.parquet")
    spec = parse_spec({**SPEC, "sources": {"items": {"path": "unused.csv"}}})
    logs = _instrument(contract, variant)
    contract.enforce_contract(rows.head(2000), spec=spec, rejects=rejects)  # warm-up
    loaded_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for log in logs.values():
        log.clear()
    seconds, cpu = [], []
    peak_mib = 0.0
    result = None
    for i in range(inner):
        result = None  # free the previous result before the next run
        t0, c0 = time.perf_counter(), time.process_time()
        result = contract.enforce_contract(rows, spec=spec, rejects=rejects)
        seconds.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        if i == 0:  # later runs reuse (or add to) the allocator's pages: peak of the first
            peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    assert result is not None
    return {
        "variant": variant,
        "seconds": seconds,
        "cpu_s": cpu,
        "filter_s": [t for t, _ in logs["filter"]],
        "pandera_s": [t for t, _ in logs["pandera"]],
        "peak_rss_mib": peak_mib,
        "peak_rss_all_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "loaded_rss_mib": loaded_mib,
        "rows_to_pandera": logs["filter"][-1][1].height,
        "rows_valid": result.rows_valid,
        "rows_quarantined": result.rows_quarantined,
        "records": result.quarantine.height,
        "digest": _digest(result.quarantine) + "/" + _digest(result.valid),
        "load": os.getloadavg(),
    }


def byte_bounds(data: Path, repeat: int) -> dict[str, float]:
    """min seconds of `str.len_bytes` and `str.len_chars` over the text column (the
    pre-filter bounds `str_length` by bytes)."""
    text = pl.read_parquet(data / "rows.parquet", columns=["text"]).get_column("text")
    out = {}
    for name, fn in (("len_bytes", text.str.len_bytes), ("len_chars", text.str.len_chars)):
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        out[name] = min(times)
    return out


def _run(variant: str, data: Path, inner: int) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, __file__, "--measure", variant, "--data", str(data),
         "--inner", str(inner)],
        check=True, capture_output=True, text=True,
    )
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def report(runs: dict[str, list[dict[str, Any]]], rows: int) -> None:
    """Print min / median seconds and peak RSS per variant, and the win."""
    print(f"{'variant':<11}{'runs':>6}{'min s':>8}{'median s':>10}{'min CPU s':>11}"
          f"{'filter s':>10}{'pandera s':>11}{'to pandera':>12}{'peak RSS MiB':>14}"
          f"{'above load':>12}")
    best: dict[str, float] = {}
    best_cpu: dict[str, float] = {}
    for variant in VARIANTS:
        rs = runs[variant]
        secs = [s for r in rs for s in r["seconds"]]
        cpu = min(s for r in rs for s in r["cpu_s"])
        filt = min(s for r in rs for s in r["filter_s"])
        pandera = min(s for r in rs for s in r["pandera_s"])
        peak = statistics.median(r["peak_rss_mib"] for r in rs)
        extra = statistics.median(r["peak_rss_mib"] - r["loaded_rss_mib"] for r in rs)
        best[variant] = min(secs)
        best_cpu[variant] = cpu
        print(f"{variant:<11}{len(secs):>6}{min(secs):>8.3f}{statistics.median(secs):>10.3f}"
              f"{cpu:>11.3f}{filt:>10.3f}{pandera:>11.3f}{rs[0]['rows_to_pandera']:>12,}"
              f"{peak:>14.0f}{extra:>12.0f}")
    print("(min s, median s: enforce_contract wall time; min CPU s: its CPU time, all "
          "threads, steadier when neighbours compete for the cores; filter s, pandera s: "
          "min of its parts; peak RSS: after a process's first run, median over processes; "
          "above load: that peak minus the RSS once the data is read)")
    first = runs[VARIANTS[0]][0]
    print(f"valid {first['rows_valid']:,}, quarantined {first['rows_quarantined']:,} rows "
          f"({first['records']:,} records); same result in every run: "
          f"{len({r['digest'] for rs in runs.values() for r in rs}) == 1}")
    win = best["plain"] - best["prefilter"]
    print(f"pre-filter saves {win:+.3f} s per {rows:,} rows (min vs min; negative: it costs): "
          f"plain / prefilter = {best['plain'] / best['prefilter']:.2f}x; CPU time "
          f"{best_cpu['plain'] - best_cpu['prefilter']:+.3f} s, "
          f"{best_cpu['plain'] / best_cpu['prefilter']:.2f}x")
    loads = [r["load"][0] for rs in runs.values() for r in rs]
    print(f"1-min load average during the runs: {min(loads):.2f} .. {max(loads):.2f} "
          f"({os.cpu_count()} CPUs)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=11, help="processes per variant")
    parser.add_argument("--inner", type=int, default=5, help="timed runs per process")
    parser.add_argument("--measure", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.data, args.inner)))
        return

    csv = generate(args.rows)
    print(f"dataset: {csv.relative_to(ROOT)} ({args.rows:,} rows); load average at start "
          f"{os.getloadavg()}")
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        prepare(csv, data)
        runs: dict[str, list[dict[str, Any]]] = {v: [] for v in VARIANTS}
        for i in range(args.repeat):
            order = VARIANTS if i % 2 == 0 else VARIANTS[::-1]
            for variant in order:
                runs[variant].append(_run(variant, data, args.inner))
        bounds = byte_bounds(data, args.repeat)
    report(runs, args.rows)
    print(f"str_length pre-check on the text column: len_bytes {bounds['len_bytes']:.4f} s, "
          f"len_chars {bounds['len_chars']:.4f} s "
          f"({bounds['len_chars'] / bounds['len_bytes']:.1f}x)")
    print(f"load average at end {os.getloadavg()}")


if __name__ == "__main__":
    main()
