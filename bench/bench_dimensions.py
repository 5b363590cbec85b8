"""Probable label errors per dimension on real text with planted errors (task dimensions,
issue 25 part 2).

Data: the bundled example (data/examples/dimensions/items.jsonl: Debian package names and
one-line descriptions; section, size class, log10 installed size), with the example's own
planted errors undone (planted.json keeps the true values) and its contract failures left
out: 2,992 rows. For each seed, disjoint shares of rows get one planted error each:

- section (nominal): another section, uniformly;
- size_class (ordinal): moved ``--steps`` classes (up when there is room, else down);
- size (interval): moved ``--shift`` decades (up below 3.5, else down).

Each dimension goes through the stage's code (`labelgate.stages.dimensions.stage`:
nominal and ordinal through the single-label text model + cleanlab, interval through
cleanlab's regression CleanLearning), five folds, as the example's spec sets them.
Row-level precision, recall and F1 of the flagged rows against the planted rows, and the
share of unplanted rows flagged ("flagged clean": the data's own disagreements count
there, Debian's sections are not always what the description suggests).

With ``--variants``, the size class is also scored two order-aware ways that the stage
does not use (measured, not kept): ``ordinal-as-interval`` (the class positions 0..3
through the interval path) and ``classes, expected >= 1 away`` (the classification
path's flags, kept only where the expected position under the out-of-fold probabilities
is at least one class from the given one).

Run: ``.venv/bin/python bench/bench_dimensions.py [--seeds 1 2 3] [--rate 0.02]
[--steps 2] [--shift 2.0] [--variants]``. Figures: docs/benchmarks/dimensions.md.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from labelgate.spec import Spec, load_spec
from labelgate.stages.dimensions.interval import interval_issues
from labelgate.stages.dimensions.stage import analyze_dimension, texts
from labelgate.stages.label_issues.detect import find_label_issues

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "data/examples/dimensions"
CLASSES = ["tiny", "small", "medium", "large"]


def clean_rows() -> list[dict[str, Any]]:
    """The example's rows with its planted label errors undone and its contract failures
    left out."""
    planted = json.loads((EXAMPLE / "planted.json").read_text())
    rows = {r["id"]: r for r in map(json.loads, (EXAMPLE / "items.jsonl").open())}
    for key, column in (("section_swap", "section"), ("size_class_shift", "size_class"),
                        ("size_error", "size")):
        for p in planted[key]:
            rows[p["id"]][column] = p["true"]
    bad = {p["id"] for p in planted["contract"]}
    return [r for i, r in rows.items() if i not in bad]


def plant(rows: list[dict[str, Any]], *, seed: int, rate: float, steps: int, shift: float,
          sections: list[str]) -> dict[str, set[str]]:
    rng = random.Random(seed)
    n = round(rate * len(rows))
    picks = rng.sample(range(len(rows)), 3 * n)
    out: dict[str, set[str]] = {"section": set(), "size_class": set(), "size": set()}
    for k, i in enumerate(picks):
        row = rows[i]
        if k < n:
            row["section"] = rng.choice([s for s in sections if s != row["section"]])
            out["section"].add(row["id"])
        elif k < 2 * n:
            c = CLASSES.index(row["size_class"])
            row["size_class"] = CLASSES[c + steps if c + steps < len(CLASSES) else c - steps]
            out["size_class"].add(row["id"])
        else:
            row["size"] = round(row["size"] + shift if row["size"] < 3.5 else
                                row["size"] - shift, 2)
            out["size"].add(row["id"])
    return out


def score(flagged: set[str], planted: set[str], n: int) -> dict[str, float]:
    hit = len(flagged & planted)
    p = hit / len(flagged) if flagged else 0.0
    r = hit / len(planted) if planted else 0.0
    return {"flagged": len(flagged), "precision": p, "recall": r,
            "f1": 2 * p * r / (p + r) if p + r else 0.0,
            "flagged_clean": len(flagged - planted) / (n - len(planted))}


def ordinal_variants(frame: pl.DataFrame, spec: Spec) -> dict[str, set[str]]:
    """The size class's flags by the two order-aware variants (module docstring)."""
    text = texts(frame, spec=spec)
    pos = frame.get_column("size_class").replace_strict(
        {c: i for i, c in enumerate(CLASSES)}, return_dtype=pl.Int64).to_numpy()
    as_interval = interval_issues(text.to_list(), pos.astype(np.float64), folds=5, seed=13)
    found = find_label_issues(
        frame.select("id", text.alias("_t"), pl.col("size_class").alias("_l")),
        id_column="id", label_column="_l", text_columns=["_t"], classes=CLASSES, n_jobs=1)
    assert found.probabilities is not None
    expected = found.probabilities @ np.arange(len(CLASSES))
    near = found.table.get_column("is_label_issue").to_numpy() & (np.abs(expected - pos) >= 1)
    ids = frame.get_column("id")
    return {"ordinal-as-interval": set(ids.filter(as_interval["is_label_issue"]).to_list()),
            "classes, expected >= 1 away": set(ids.filter(pl.Series(near)).to_list())}


def row(seed: int, name: str, planted: set[str], flagged: set[str], n: int,
        took: float) -> str:
    s = score(flagged, planted, n)
    return (f"| {seed} | {name} | {len(planted)} | {s['flagged']} | {s['precision']:.3f} | "
            f"{s['recall']:.3f} | {s['f1']:.3f} | {s['flagged_clean']:.3f} | {took:.1f} |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--rate", type=float, default=0.02)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--shift", type=float, default=2.0)
    ap.add_argument("--variants", action="store_true")
    args = ap.parse_args()
    spec = load_spec(EXAMPLE / "spec.yaml")
    sections = [str(v) for v in spec.dimension_settings()["section"].values or []]
    print("| seed | dimension | planted | flagged | precision | recall | F1 | flagged clean "
          "| s |\n|---|---|---|---|---|---|---|---|---|")
    for seed in args.seeds:
        rows = clean_rows()
        planted = plant(rows, seed=seed, rate=args.rate, steps=args.steps, shift=args.shift,
                        sections=sections)
        frame = pl.DataFrame(rows)
        for name in ("section", "size_class", "size"):
            start = time.perf_counter()
            issues, _, _ = analyze_dimension(frame, name, spec=spec)
            took = time.perf_counter() - start
            flagged = set(issues.filter(pl.col("is_label_issue")).get_column("id").to_list())
            print(row(seed, name, planted[name], flagged, frame.height, took), flush=True)
        if args.variants:
            start = time.perf_counter()
            for name, flagged in ordinal_variants(frame, spec).items():
                print(row(seed, f"size_class ({name})", planted["size_class"], flagged,
                          frame.height, time.perf_counter() - start), flush=True)


if __name__ == "__main__":
    main()
