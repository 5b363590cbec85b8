"""Issue 23, fourth round: neighbour agreement. For each row, its k nearest neighbours
(cosine, itself excluded) in a text representation, and the similarity-weighted share of
them carrying each (given) class; combined with labelgate's out-of-fold probabilities and fed
to labelgate's default flagger and label quality (self-confidence), as the levers of
bench_text_truth.py's `LEVERS` are.

Run: .venv/bin/python bench/bench_text_truth.py --from-cache --knn [--split tuning|held-out]
     [--only NAME ...]   (or this file with the same arguments)
     .venv/bin/python bench/truth_levers_knn.py --cost ROWS [--k K]
     .venv/bin/python bench/truth_levers_knn.py --train --only NAME ... [--seeds S ...]

The out-of-fold probabilities come from data/bench/truth-probs/ (saved by a ``--levers``
run), or where there are none from data/bench/truth-probs/labelgate-only/, which ``--train``
fills (labelgate's default only, no recipe: half the training, for the held-out corpora
under a deadline); the texts are loaded again (the same seeded sample and flips; the labels
are checked against the saved ones). The neighbours come from cleanlab's ``features_to_knn``
(``cleanlab.internal.neighbor``: sklearn ``NearestNeighbors``, brute-force cosine on the
sparse matrix), ``kneighbors()`` without a query, which leaves each row out of its own list.

Representations: ``tfidf``, the default model's own matrix (`text_matrix`: hashed word 1-2
grams + char_wb 2-5 grams, sublinear TF-IDF, unit rows); ``svd``, a 200-component
TruncatedSVD of it (rows renormalised; `SVD_LEVERS`, left out). ``--cost ROWS`` times the
text matrix and the neighbour search on ROWS CrowdFlower tweets (resampled), both
representations.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import polars as pl
import scipy.sparse as sp
from bench_label_issues import plant_flips, prf
from bench_text_truth import (
    CORPORA,
    FLIP_RATE,
    PROBS_DIR,
    UNSURE_BELOW,
    Cell,
    FloatArray,
    _codes,
    _lever_flags,
    _sample,
    auroc,
)

IntArray = npt.NDArray[np.int64]
SVD_COMPONENTS = 200


@dataclass(frozen=True)
class KnnLever:
    """``weight`` of the neighbours' class shares against labelgate's probabilities (1 -
    ``weight``), ``how``: "mean" (arithmetic) or "geo" (weighted geometric, renormalised)."""

    rep: str  # "tfidf" or "svd"
    k: int
    weight: float
    how: str = "mean"


KNN_LEVERS: dict[str, KnnLever] = {
    "knn-10-w0.25": KnnLever("tfidf", 10, 0.25),
    "knn-10-w0.5": KnnLever("tfidf", 10, 0.5),
    "knn-30-w0.25": KnnLever("tfidf", 30, 0.25),
    "knn-30-w0.5": KnnLever("tfidf", 30, 0.5),
    "knn-10-geo0.25": KnnLever("tfidf", 10, 0.25, "geo"),
}
# tried on sms, drugs (seed 1) and vader-crowd (seeds 1-2), then left out: the SVD took 40-60 s
# per corpus and seed at load 3-12 and moved nothing (docs/benchmarks/detection.md)
SVD_LEVERS: dict[str, KnnLever] = {"svd-knn-10-w0.25": KnnLever("svd", 10, 0.25)}


def representation(texts: list[str], rep: str, *, seed: int) -> sp.csr_matrix | FloatArray:
    """The rows the neighbours are searched in (module docstring)."""
    from labelgate.stages.label_issues.text_features import text_matrix

    x = text_matrix(pl.Series(texts), char_ngrams=True, seed=seed)
    if rep == "tfidf":
        return x
    from sklearn.decomposition import TruncatedSVD

    z = TruncatedSVD(min(SVD_COMPONENTS, x.shape[1] - 1), random_state=seed).fit_transform(x)
    norms = np.linalg.norm(z, axis=1, keepdims=True)
    return np.asarray(z / np.where(norms == 0, 1.0, norms), dtype=np.float64)


def neighbours(x: sp.csr_matrix | FloatArray, k: int) -> tuple[FloatArray, IntArray]:
    """Cosine similarity and index of each row's ``k`` nearest other rows."""
    from cleanlab.internal.neighbor import features_to_knn

    knn = features_to_knn(x, n_neighbors=k, metric="cosine", algorithm="brute", n_jobs=1)
    dist, idx = knn.kneighbors()  # no query: each row is left out of its own neighbours
    return np.clip(1.0 - dist, 0.0, None), np.asarray(idx, dtype=np.int64)


def class_shares(sim: FloatArray, idx: IntArray, y: IntArray, n_classes: int, k: int
                 ) -> FloatArray:
    """Similarity-weighted share of the first ``k`` neighbours in each given class (a row
    whose neighbours have no similarity at all gets the uniform share)."""
    s, i = sim[:, :k], idx[:, :k]
    out = np.zeros((len(y), n_classes))
    np.add.at(out, (np.repeat(np.arange(len(y)), k), y[i].ravel()), s.ravel())
    total = out.sum(axis=1, keepdims=True)
    return np.where(total > 0, out / np.where(total > 0, total, 1.0), 1.0 / n_classes)


def combine(probs: FloatArray, shares: FloatArray, lever: KnnLever) -> FloatArray:
    w = lever.weight
    if lever.how == "mean":
        return (1 - w) * probs + w * shares
    # geometric: the shares smoothed so a class no neighbour carries does not zero a row
    smooth = (shares + 0.05) / (1 + 0.05 * shares.shape[1])
    g = np.exp((1 - w) * np.log(np.clip(probs, 1e-12, None)) + w * np.log(smooth))
    return np.asarray(g / g.sum(axis=1, keepdims=True), dtype=np.float64)


def score(y: IntArray, target: npt.NDArray[np.bool_], natural: bool, probs: FloatArray
          ) -> float:
    """AUROC of 1 - self-confidence (natural noise) or F1 of the default flagger's flags."""
    q = probs[np.arange(len(y)), y]
    if natural:
        return auroc(1 - q, target)
    return prf(_lever_flags(y, probs, q), target)[2]


def _seed_texts(name: str, base: pl.DataFrame, seed: int, y_saved: IntArray) -> list[str]:
    """The texts of ``name``'s sample for ``seed``, checked against the saved labels."""
    corpus = CORPORA[name]
    df = _sample(base, corpus.rows, seed)
    if not corpus.natural:
        df = df.with_columns(plant_flips(df.get_column("label"), rate=FLIP_RATE, seed=seed)[0])
    if not np.array_equal(_codes(df), y_saved):
        raise SystemExit(f"{name} seed {seed}: labels differ from the saved probabilities")
    return df.get_column("text").to_list()


def score_corpus(name: str, seeds: list[int]) -> dict[str, Cell]:
    """Default and every `KNN_LEVERS` on one corpus's saved probabilities, per seed."""
    base = CORPORA[name].load()
    assert base is not None
    cells = {k: Cell([], []) for k in ["default", *KNN_LEVERS]}
    for seed in seeds:
        d = np.load(_saved(name, seed))
        y, target, lg = d["y"], d["target"], d["labelgate"].astype(np.float64)
        texts = _seed_texts(name, base, seed, y)
        natural = CORPORA[name].natural
        cells["default"].values.append(score(y, target, natural, lg))
        found: dict[str, tuple[FloatArray, IntArray, float]] = {}
        for rep in sorted({lv.rep for lv in KNN_LEVERS.values()}):
            t0 = time.perf_counter()
            kmax = max(lv.k for lv in KNN_LEVERS.values() if lv.rep == rep)
            sim, idx = neighbours(representation(texts, rep, seed=seed), min(kmax, len(y) - 1))
            found[rep] = (sim, idx, time.perf_counter() - t0)
        for key, lever in KNN_LEVERS.items():
            sim, idx, secs = found[lever.rep]
            shares = class_shares(sim, idx, y, lg.shape[1], min(lever.k, idx.shape[1]))
            cells[key].values.append(score(y, target, natural, combine(lg, shares, lever)))
            cells[key].seconds.append(secs)
        print(f"  {name} seed {seed}: " + ", ".join(
            f"{k} {c.values[-1]:.3f}" for k, c in cells.items()), file=sys.stderr, flush=True)
    return cells


def run(names: list[str], split: str, seeds: list[int]) -> None:
    print(f"neighbour agreement (issue 23): F1 (planted flips) or AUROC vs crowd confidence < "
          f"{UNSURE_BELOW} (natural); mean ± sd over seeds {seeds}; seconds: neighbour search")
    cols = ["default", *KNN_LEVERS]
    print("| corpus | split | metric | " + " | ".join(cols) + " | seconds (neighbours) |")
    print("|---|---|---|" + "---|" * (len(cols) + 1))
    for name, corpus in CORPORA.items():
        if (names and name not in names) or split not in ("all", corpus.split):
            continue
        if not _saved(name, seeds[0]).exists():
            print(f"| {name} | no saved probabilities (run --levers) |")
            continue
        cells = score_corpus(name, seeds)
        secs = f"{np.mean(cells['knn-10-w0.25'].seconds):.1f}"
        print(f"| {name} | {corpus.split} | {'AUROC' if corpus.natural else 'F1'} | "
              + " | ".join(cells[k].text() for k in cols) + f" | {secs} |", flush=True)


LABELGATE_ONLY = PROBS_DIR / "labelgate-only"


def _saved(name: str, seed: int) -> Path:
    path = PROBS_DIR / f"{name}-{seed}.npz"
    return path if path.exists() else LABELGATE_ONLY / path.name


def train(names: list[str], seeds: list[int]) -> None:
    """--train: labelgate's default out-of-fold probabilities, saved to `LABELGATE_ONLY`."""
    from bench_text_truth import _LAST_PROBS, labelgate

    LABELGATE_ONLY.mkdir(parents=True, exist_ok=True)
    for name in names:
        corpus = CORPORA[name]
        base = corpus.load()
        assert base is not None
        for seed in seeds:
            df = _sample(base, corpus.rows, seed)
            if corpus.natural:
                target = (df.get_column("confidence") < UNSURE_BELOW).to_numpy()
            else:
                labels, target = plant_flips(df.get_column("label"), rate=FLIP_RATE, seed=seed)
                df = df.with_columns(labels)
            t0 = time.perf_counter()
            labelgate(df, seed=seed)
            np.savez_compressed(LABELGATE_ONLY / f"{name}-{seed}.npz", y=_codes(df),
                                target=target, labelgate=_LAST_PROBS["labelgate"])
            print(f"  {name} seed {seed}: labelgate {time.perf_counter() - t0:.0f} s",
                  file=sys.stderr, flush=True)


def cost(rows: int, k: int) -> None:
    """Seconds (wall, CPU) of the text matrix and the neighbour search at ``rows`` rows."""
    base = CORPORA["crowd-tweets"].load()
    assert base is not None
    drawn = base.sample(rows, with_replacement=rows > base.height, seed=0)
    # resampled copies are exact repeats: make each row distinct, as a real corpus's are
    texts = [f"{t} r{i}" for i, t in enumerate(drawn.get_column("text").to_list())]
    for rep in ("tfidf", "svd"):
        t0, c0 = time.perf_counter(), time.process_time()
        x = representation(texts, rep, seed=1)
        t1, c1 = time.perf_counter(), time.process_time()
        neighbours(x, k)
        t2, c2 = time.perf_counter(), time.process_time()
        print(f"{rows:,} rows, {rep}: matrix{' + svd' if rep == 'svd' else ''} "
              f"{t1 - t0:.1f} s wall / {c1 - c0:.1f} s CPU; neighbours (k={k}) "
              f"{t2 - t1:.1f} s wall / {c2 - c1:.1f} s CPU", flush=True)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", choices=["tuning", "held-out", "all"], default="tuning")
    ap.add_argument("--only", nargs="*", default=None)
    ap.add_argument("--seeds", type=int, nargs="*", default=[1, 2, 3])
    ap.add_argument("--cost", type=int, default=None, help="time the search at this many rows")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--train", action="store_true", help="save labelgate's probabilities only")
    args = ap.parse_args(argv)
    if args.train:
        train(args.only or [], args.seeds)
    elif args.cost:
        cost(args.cost, args.k)
    else:
        run(args.only or [], args.split, args.seeds)


if __name__ == "__main__":
    main()
