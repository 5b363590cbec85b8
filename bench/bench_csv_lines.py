"""Benchmark: the cost of accounting for every physical CSV line (issue 20) at 1 M rows.

    .venv/bin/python bench/bench_csv_lines.py [--rows 1000000] [--repeats 5]

On the 1 M-row tweets file of bench_ingest.py (real text, 0.5% bad rows) it times
`read_file` three ways, min and median of `--repeats` runs in this process:
  fast          the polars path with the line arithmetic (bytes counted, values' line
                breaks counted): what every clean CSV pays
  fast, no check  the same read with the line arithmetic switched off (the cost's baseline)
  broken quote  the same file with one quote left open in the middle: polars fails, the
                file is read record by record and exactly one line is rejected
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_ingest import generate  # noqa: E402

from labelgate.spec import SourceSpec  # noqa: E402
from labelgate.stages.ingest import readers as lio  # noqa: E402


def _time(path: Path, repeats: int) -> tuple[float, float, lio.ReadResult]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = lio.read_file(path, fmt="csv", source=SourceSpec(path=path.name))
        times.append(time.perf_counter() - start)
    assert result is not None
    return min(times), statistics.median(times), result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    clean = generate(args.rows)
    lines = clean.read_bytes().split(b"\n")
    middle = len(lines) // 2
    lines[middle] = lines[middle].replace(b',"', b',"broken ', 1).replace(b'",', b" ", 1)
    broken = clean.with_name(f"broken-{clean.name}")
    broken.write_bytes(b"\n".join(lines))

    lo, med, r = _time(clean, args.repeats)
    print(f"fast            min {lo:.3f} s  median {med:.3f} s  rows {r.rows.height:,}")
    real = lio._fast_line_counts
    lio._fast_line_counts = lambda data, df: lio.LineCounts(  # type: ignore[assignment]
        total=df.height + 1, header=1, records=df.height, record_lines=df.height)
    lo0, med0, _ = _time(clean, args.repeats)
    lio._fast_line_counts = real  # type: ignore[assignment]
    print(f"fast, no check  min {lo0:.3f} s  median {med0:.3f} s  "
          f"(the check: +{lo - lo0:.3f} s min, +{med - med0:.3f} s median)")
    lo2, med2, r2 = _time(broken, max(1, args.repeats // 2))
    assert r2.lines is not None
    print(f"broken quote    min {lo2:.3f} s  median {med2:.3f} s  rows {r2.rows.height:,}, "
          f"rejected {r2.rejects.height} at line(s) {list(r2.lines.rejected)}")


if __name__ == "__main__":
    main()
