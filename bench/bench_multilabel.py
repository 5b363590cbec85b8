"""Probable tag errors on real multi-label text with planted tag additions and removals
(task multilabel, issue 25).

Data: the bundled example (data/examples/multilabel/items.jsonl: Debian package names and
one-line descriptions with their debtags, 23 tags), the rows that pass its tag checks. For
each seed and noise rate, that share of rows gets one planted error: a tag it lacks is
added, or (half the time, when the row has two tags or more) one it has is removed.

Two detectors, both on five out-of-fold folds:

- ``labelgate``: the stage's code (`out_of_fold_probabilities`: TF-IDF per fold,
  iteratively stratified folds; `find_tag_issues`: cleanlab's multi-label filter);
- ``recipe``: the hand-written cleanlab recipe: one TF-IDF on all rows, sklearn's
  ``cross_val_predict`` of ``OneVsRestClassifier(LogisticRegression())`` over shuffled
  KFold, ``cleanlab.multilabel_classification.filter.find_label_issues`` with defaults.

Row-level precision, recall and F1 of the flagged rows against the planted rows; "tag
named": of the planted rows flagged by labelgate, the share whose planted tag is the one
named missing (a removal) or added (an addition). "P@k": the share of planted rows among
the k rows of lowest label quality, k the number planted (a ranking measure, no
threshold). The data's own errors (debtags are incomplete) count against precision: the
"flagged clean" column shows the rate on the unplanted data.

Run: ``.venv/bin/python bench/bench_multilabel.py [--seeds 1 2 3] [--rates 0.05 0.1]``.
Figures: docs/benchmarks/multilabel.md.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import yaml

from labelgate.stages.multilabel.issues import find_tag_issues, out_of_fold_probabilities
from labelgate.stages.multilabel.tags import check_tags, tag_matrix

ROOT = Path(__file__).resolve().parent.parent
ITEMS = ROOT / "data/examples/multilabel/items.jsonl"


def load() -> tuple[list[str], np.ndarray[Any, Any], list[str]]:
    rows = pl.read_ndjson(ITEMS)
    spec = yaml.safe_load((ITEMS.parent / "spec.yaml").read_text())["multilabel"]
    valid = check_tags(rows, column="tags", id_column="id", allowed=spec["tags"],
                       min_tags=spec["min_tags"], max_tags=spec["max_tags"]).valid
    tags = sorted({t for ts in valid.get_column("tags").to_list() for t in ts})
    texts = (valid.get_column("package") + " \n " + valid.get_column("text")).to_list()
    return texts, tag_matrix(valid.get_column("tags"), tags), tags


def plant(y: np.ndarray[Any, Any], rate: float, seed: int
          ) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """(noisy y, planted row mask, planted tag index per row (-1: none))."""
    rng = np.random.default_rng(seed)
    noisy = y.copy()
    n = len(y)
    rows = rng.choice(n, size=round(rate * n), replace=False)
    which = np.full(n, -1)
    for i in rows:
        have = np.flatnonzero(noisy[i])
        if len(have) >= 2 and rng.random() < 0.5:
            j = int(rng.choice(have))
        else:
            j = int(rng.choice(np.flatnonzero(noisy[i] == 0)))
        noisy[i, j] ^= 1
        which[i] = j
    return noisy, which >= 0, which


def recipe(texts: list[str], y: np.ndarray[Any, Any], seed: int
           ) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    from cleanlab.multilabel_classification.filter import find_label_issues
    from cleanlab.multilabel_classification.rank import get_label_quality_scores
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import KFold, cross_val_predict
    from sklearn.multiclass import OneVsRestClassifier

    x = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True).fit_transform(texts)
    probs = cross_val_predict(OneVsRestClassifier(LogisticRegression(max_iter=1000)), x, y,
                              cv=KFold(5, shuffle=True, random_state=seed),
                              method="predict_proba")
    labels = [list(np.flatnonzero(r)) for r in y]
    return (np.asarray(find_label_issues(labels=labels, pred_probs=probs, n_jobs=1), dtype=bool),
            np.asarray(get_label_quality_scores(labels, probs)))


def scores(flagged: np.ndarray[Any, Any], planted: np.ndarray[Any, Any],
           quality: np.ndarray[Any, Any]) -> dict[str, float]:
    k = int(planted.sum())
    top = np.argsort(quality, kind="stable")[:k]  # the k lowest label qualities
    tp = int((flagged & planted).sum())
    p = tp / max(int(flagged.sum()), 1)
    r = tp / max(int(planted.sum()), 1)
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0,
            "flagged": int(flagged.sum()),
            "flagged_clean": float(flagged[~planted].mean()),
            "precision_at_k": float(planted[top].mean()) if k else float("nan")}


def tag_named(issues: Any, which: np.ndarray[Any, Any], y_noisy: np.ndarray[Any, Any],
              tags: list[str]) -> float:
    table = issues.table
    flagged = table.get_column("is_label_issue").to_numpy()
    missing = table.get_column("likely_missing").to_list()
    added = table.get_column("likely_added").to_list()
    hits = total = 0
    for i in np.flatnonzero(flagged & (which >= 0)):
        tag = tags[which[i]]
        total += 1
        # planted addition: the row now has the tag -> it should be named "added"
        hits += tag in (added[i] if y_noisy[i, which[i]] else missing[i])
    return hits / total if total else float("nan")


def run(seeds: list[int], rates: list[float]) -> list[dict[str, Any]]:
    texts, y, tags = load()
    out = []
    for rate in rates:
        for seed in seeds:
            noisy, planted, which = plant(y, rate, seed)
            t0 = time.perf_counter()
            probs, modelled = out_of_fold_probabilities(texts, noisy, folds=5, seed=seed)
            issues = find_tag_issues(noisy, probs, tags=tags, modelled=modelled)
            t1 = time.perf_counter()
            ours = issues.table.get_column("is_label_issue").to_numpy()
            ours_q = issues.table.get_column("label_quality").to_numpy()
            theirs, theirs_q = recipe(texts, noisy, seed)
            t2 = time.perf_counter()
            for name, flagged, quality, secs in (("labelgate", ours, ours_q, t1 - t0),
                                                 ("recipe", theirs, theirs_q, t2 - t1)):
                row = {"rate": rate, "seed": seed, "method": name, "rows": len(y),
                       "seconds": secs, **scores(flagged, planted, quality)}
                if name == "labelgate":
                    row["tag_named"] = tag_named(issues, which, noisy, tags)
                out.append(row)
                print(row, flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--rates", type=float, nargs="+", default=[0.05, 0.1])
    args = ap.parse_args()
    rows = pl.DataFrame(run(args.seeds, args.rates))
    summary = rows.group_by("rate", "method").agg(
        pl.col("precision", "recall", "f1", "flagged_clean", "precision_at_k",
               "seconds").mean(),
        pl.col("f1").std().alias("f1_sd"), pl.col("tag_named").mean(),
    ).sort("rate", "method")
    with pl.Config(tbl_rows=50, tbl_cols=20, float_precision=3):
        print(summary)


if __name__ == "__main__":
    main()
