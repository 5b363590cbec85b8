"""Benchmark of task preference (issue 24): swapped-pair detection on real text pairs with a
known share swapped, and the wall time of a 100,000-pair `labelgate run`.

Run: .venv/bin/python bench/bench_preference.py [--sizes N ...] [--shares S ...]
     [--seeds S ...] [--embeddings] [--run-pairs N] [--skip-detection] [--skip-run]

Data (an installed package, no network): the BYU PCC Chit-Chat Challenge conversations in
`chitchat-dataset==0.9.0` (MIT; `pip install --no-deps chitchat-dataset==0.9.0`): 131,569
context -> reply pairs (a turn's utterances joined by newlines; the context is the turn
before). A preference pair is (context, the human reply that followed it, the reply of
another pair drawn at random): real text on both sides, the preferred side known.

Detection: a seeded share of the pairs is recorded reversed (chosen and rejected swapped);
the pairs go through `find_swapped_pairs` (the preference stage's out-of-fold model, folds
grouped by prompt, and cleanlab's `find_label_issues`). Precision, recall and F1 of the
flagged pairs against the swapped ones, per size, share and seed. `--embeddings` adds the
sentence-embedding features (`preference.swaps.embeddings: true`, all-MiniLM-L6-v2; needs
the embeddings extra; vectors cached in data/bench/preference/embeddings).

Run time: N pairs as judgments (one annotator each of five, display order random, the
human reply preferred with probability 0.9; a fifth of the pairs judged by a second
annotator) through `labelgate run` on a spec with the checks, the analysis, dedup on
prompts, splits and publishing of every TRL format; the wall time of the command (its
own Prefect server included) and the stage table it prints, with the machine's load.
Outputs go to data/bench/preference (not tracked). Figures: docs/benchmarks/preference.md.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from labelgate.stages.preference import pairs, to_judgments  # noqa: E402
from labelgate.stages.preference.swaps import find_swapped_pairs  # noqa: E402

OUT = ROOT / "data" / "bench" / "preference"
DATASET = "chitchat_dataset/dataset.json"


def chitchat_pairs() -> list[tuple[str, str]]:
    """(context, reply) of every turn after the first, in dataset order."""
    files = importlib.metadata.files("chitchat-dataset") or []
    path = Path(str(next(f.locate() for f in files if str(f).endswith(DATASET))))
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    out = []
    for convo in data.values():
        turns = convo["messages"]
        for k in range(1, len(turns)):
            out.append(("\n".join(u["text"] for u in turns[k - 1]),
                        "\n".join(u["text"] for u in turns[k])))
    return out


def sample(base: list[tuple[str, str]], n: int, seed: int) -> list[dict[str, str]]:
    """`n` pairs (prompt, good, other): other = the reply of another drawn pair."""
    rng = random.Random(seed)
    picked = rng.sample(base, n)
    return [{"prompt": p, "good": r, "other": picked[(i + 1 + rng.randrange(n - 1)) % n][1]}
            for i, (p, r) in enumerate(picked)]


def encoder() -> Any:
    from labelgate.stages.label_issues.embeddings import embed_texts

    def embed(texts: Any) -> Any:
        return embed_texts(texts, cache=OUT / "embeddings")

    return embed


def detection(base: list[tuple[str, str]], *, n: int, share: float, seed: int,
              embed: Any = None) -> dict[str, Any]:
    rows = sample(base, n, seed)
    rng = np.random.default_rng(seed)
    swap = rng.random(n) < share
    frame = pl.DataFrame({
        "id": [f"p{i:06d}" for i in range(n)],
        "prompt": [r["prompt"] for r in rows],
        "chosen": [r["other"] if s else r["good"] for r, s in zip(rows, swap, strict=True)],
        "rejected": [r["good"] if s else r["other"] for r, s in zip(rows, swap, strict=True)],
    })
    t0 = time.perf_counter()
    table = pairs.pair_table(pairs.with_pair_keys(to_judgments(frame, shape="binarized")))
    result = find_swapped_pairs(table, folds=5, seed=seed, embed=embed)
    seconds = time.perf_counter() - t0
    flagged = set(table.join(result.table.filter("swapped"), on="pair_key")
                  .get_column("pair_id").to_list())
    planted = {f"p{i:06d}" for i in np.flatnonzero(swap)}
    hit = len(flagged & planted)
    p = hit / len(flagged) if flagged else 0.0
    r = hit / len(planted) if planted else 0.0
    return {"model": "tf-idf + embeddings" if embed else "tf-idf", "pairs": n,
            "share": share, "seed": seed, "swapped": len(planted),
            "flagged": len(flagged), "precision": p, "recall": r,
            "f1": 2 * p * r / (p + r) if p + r else 0.0, "seconds": seconds}


def run_data(base: list[tuple[str, str]], n: int, folder: Path) -> Path:
    """N pairs as judgments in folder/judgments.parquet and its spec; returns the spec."""
    rows = sample(base, n, 0)
    rng = random.Random(0)
    annotators = [f"ann-{k}" for k in range(5)]
    out: list[dict[str, Any]] = []
    for i, r in enumerate(rows):
        judges = rng.sample(annotators, 2 if i % 5 == 0 else 1)
        for who in judges:
            first_good = rng.random() < 0.5
            a, b = (r["good"], r["other"]) if first_good else (r["other"], r["good"])
            good_wins = rng.random() < 0.9
            out.append({"id": f"j{len(out):07d}", "prompt": r["prompt"], "response_a": a,
                        "response_b": b, "annotator": who,
                        "preference": "a" if first_good == good_wins else "b"})
    folder.mkdir(parents=True, exist_ok=True)
    pl.DataFrame(out).write_parquet(folder / "judgments.parquet")
    spec = {
        "name": f"bench-preference-{n}", "task": "preference", "store": "store",
        "sources": {"items": {"path": "judgments.parquet"}}, "columns": {"id": "id"},
        "preference": {"shape": "judgments", "max_tokens": 200,
                       "publish": {"formats": ["dpo", "dpo_conversational", "reward",
                                               "kto"]}},
        "dedup": {}, "splits": {}, "publish": {},
        "gate": {"max_identical_pair_rate": 0.05},
    }
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def timed_run(spec: Path) -> dict[str, Any]:
    store = spec.parent / "store"
    shutil.rmtree(store, ignore_errors=True)
    env = {**os.environ, "PREFECT_HOME": str(spec.parent / ".prefect"),
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    load = os.getloadavg()
    t0 = time.perf_counter()
    proc = subprocess.run([str(ROOT / ".venv/bin/labelgate"), "run", str(spec)], env=env,
                          capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    table = [ln for ln in proc.stdout.splitlines() if ln.startswith("│")]
    return {"exit": proc.returncode, "wall_seconds": wall, "load_before": load,
            "load_after": os.getloadavg(), "stages": table,
            "tail": proc.stdout.splitlines()[-12:] + proc.stderr.splitlines()[-5:]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[20_000, 100_000])
    ap.add_argument("--shares", type=float, nargs="+", default=[0.05, 0.10, 0.20])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--embeddings", action="store_true")
    ap.add_argument("--run-pairs", type=int, default=100_000)
    ap.add_argument("--skip-detection", action="store_true")
    ap.add_argument("--skip-run", action="store_true")
    args = ap.parse_args()
    base = chitchat_pairs()
    print(f"chitchat: {len(base):,} context -> reply pairs; cpus {os.cpu_count()}, "
          f"load {os.getloadavg()}")
    results = []
    if not args.skip_detection:
        for n in args.sizes:
            for share in args.shares:
                for seed in args.seeds:
                    r = detection(base, n=n, share=share, seed=seed,
                                  embed=encoder() if args.embeddings else None)
                    results.append(r)
                    print(f"{r['model']}: pairs {n:>7,} swapped {share:>4.0%} seed {seed}: "
                          f"flagged {r['flagged']:>6,} of {r['swapped']:>6,} swapped  "
                          f"P {r['precision']:.3f}  R {r['recall']:.3f}  F1 {r['f1']:.3f}  "
                          f"({r['seconds']:.1f} s)", flush=True)
        summary = (pl.DataFrame(results).group_by("model", "pairs", "share")
                   .agg(pl.col("precision", "recall", "f1").mean(), pl.col("f1").std()
                        .alias("f1_sd"), pl.col("seconds").mean())
                   .sort("model", "pairs", "share"))
        print(summary)
    run = None
    if not args.skip_run:
        spec = run_data(base, args.run_pairs, OUT / f"run-{args.run_pairs}")
        run = timed_run(spec)
        print(f"labelgate run, {args.run_pairs:,} pairs: exit {run['exit']}, wall "
              f"{run['wall_seconds']:.1f} s, load {run['load_before']} -> {run['load_after']}")
        print("\n".join(run["stages"] + run["tail"]))
    OUT.mkdir(parents=True, exist_ok=True)
    name = "results-embeddings.json" if args.embeddings else "results.json"
    (OUT / name).write_text(json.dumps({"detection": results, "run": run}, indent=2,
                                       default=str))


if __name__ == "__main__":
    main()
