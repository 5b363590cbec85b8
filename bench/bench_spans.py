"""Probable span errors on real text with planted type swaps and boundary shifts (task
spans, issue 25).

Data: the bundled span example (data/examples/spans/items.jsonl: Debian package
descriptions with gazetteer-marked LANG/UI/FORMAT spans). These are silver labels (every
gazetteer match, no human judgement): no real span-annotated text installs offline, so
this measures the detector's machinery on real text, not on human annotation. The rows
planted by the example (planted.json) are left out. For each seed, 10% of the spans are
picked, alternately for a type swap (another type) and a boundary shift (the span takes in
the next token; a span at the end of the text or before another span is left as it is),
at most one error per row.

Detector: the stage's code (`out_of_fold_token_probabilities`, 5 folds grouped by source
package; `find_token_issues`: cleanlab's token classification filter). A planted span is
found when a token it covers (a swap) or the token the shift added or cut (a shift) is
flagged. Row level: precision, recall and F1 of the rows with a flagged token against
the rows with a planted error.

Run: ``.venv/bin/python bench/bench_spans.py [--seeds 1 2 3] [--rate 0.05]``.
Figures: docs/benchmarks/spans.md.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path
from typing import Any

import polars as pl

from labelgate.stages.spans.issues import find_token_issues, out_of_fold_token_probabilities
from labelgate.stages.spans.tokens import spans_to_bio, tokenize

ROOT = Path(__file__).resolve().parent.parent
HERE = ROOT / "data/examples/spans"
TYPES = ["LANG", "UI", "FORMAT"]
CLASSES = ["O", *TYPES]


def load() -> list[dict[str, Any]]:
    planted = json.loads((HERE / "planted.json").read_text())
    skip = {i for ids in planted.values() for i in ids}
    rows = [json.loads(line) for line in (HERE / "items.jsonl").open()]
    return [r for r in rows if r["id"] not in skip]


def plant(rows: list[dict[str, Any]], rate: float, seed: int
          ) -> tuple[list[dict[str, Any]], dict[int, tuple[str, int]]]:
    """Rows with planted errors, and row -> (kind, token index the error shows at)."""
    rng = random.Random(seed)
    out = json.loads(json.dumps(rows))
    spans = [(i, k) for i, r in enumerate(out) for k in range(len(r["spans"]))]
    picked = rng.sample(spans, round(2 * rate * len(spans)))
    truth: dict[int, tuple[str, int]] = {}
    for n, (i, k) in enumerate(picked):
        if i in truth:
            continue
        r, s = out[i], out[i]["spans"][k]
        toks = tokenize(r["text"])
        if n % 2 == 0:
            s["label"] = rng.choice([t for t in TYPES if t != s["label"]])
            at = next(j for j, (a, b) in enumerate(toks) if a < s["end"] and b > s["start"])
            truth[i] = ("swap", at)
            continue
        after = [j for j, (a, _) in enumerate(toks) if a >= s["end"]]
        if after and not any(o["start"] < toks[after[0]][1] and o["end"] > toks[after[0]][0]
                             for o in r["spans"]):
            s["end"] = toks[after[0]][1]
            truth[i] = ("shift", after[0])
    return out, truth


def run(seed: int, rate: float) -> dict[str, Any]:
    rows, truth = plant(load(), rate, seed)
    words, labels, groups = [], [], []
    for r in rows:
        toks = tokenize(r["text"])
        bio = spans_to_bio(toks, [(s["start"], s["end"], s["label"]) for s in r["spans"]])
        words.append([r["text"][a:b] for a, b in toks])
        labels.append([CLASSES.index(t.partition("-")[2] or "O") for t in bio])
        groups.append(r["source"])
    t0 = time.perf_counter()
    probs = out_of_fold_token_probabilities(words, labels, groups=groups,
                                            n_classes=len(CLASSES), folds=5, seed=seed)
    issues = find_token_issues(words, labels, probs, classes=CLASSES)
    secs = time.perf_counter() - t0
    flagged = {(r["sentence"], r["token"]) for r in issues.tokens.to_dicts()}
    rows_flagged = {s for s, _ in flagged}
    found = {kind: sum((i, at) in flagged for i, (k, at) in truth.items() if k == kind)
             for kind in ("swap", "shift")}
    total = {kind: sum(k == kind for k, _ in truth.values()) for kind in ("swap", "shift")}
    tp = len(rows_flagged & set(truth))
    p = tp / max(len(rows_flagged), 1)
    r_ = tp / max(len(truth), 1)
    return {"seed": seed, "rows": len(rows), "tokens": sum(map(len, words)),
            "planted_rows": len(truth), "flagged_tokens": len(flagged),
            "swap_recall": found["swap"] / max(total["swap"], 1),
            "shift_recall": found["shift"] / max(total["shift"], 1),
            "row_precision": p, "row_recall": r_,
            "row_f1": 2 * p * r_ / (p + r_) if p + r_ else 0.0, "seconds": secs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--rate", type=float, default=0.05)
    args = ap.parse_args()
    out = []
    for seed in args.seeds:
        row = run(seed, args.rate)
        print(row, flush=True)
        out.append(row)
    with pl.Config(tbl_cols=20, float_precision=3):
        print(pl.DataFrame(out))


if __name__ == "__main__":
    main()
