"""Rebuild the bundled VADER sample from the lexicon shipped in the `vaderSentiment` wheel.

    .venv/bin/pip install --no-deps vaderSentiment==3.3.2
    .venv/bin/python data/examples/make_vader_sample.py

`vaderSentiment/vader_lexicon.txt` has one line per token: token, mean rating, standard
deviation, and the list of the 10 raw human ratings (-4 = extremely negative .. +4 =
extremely positive). We give every token a stable id from its line number
(`vader-0001` is the first line), draw 1,500 tokens with seed 13 and write:

- `vader/items.csv`: word_id, token, mean_rating, std_rating, sentiment, where sentiment is
  the class of the mean: negative if mean < -0.5, positive if mean > 0.5, else neutral;
- `vader/ratings.csv` (long format): word_id, rater, rating, with rater `rater_1` ..
  `rater_10` = the rating's position in the list. The raters are anonymous: position k is
  not known to be the same person on every word.
"""

from __future__ import annotations

import ast
import importlib.metadata
from pathlib import Path

import polars as pl

LEXICON = "vaderSentiment/vader_lexicon.txt"
OUT = Path(__file__).parent / "vader"
SAMPLE = 1500
SEED = 13
NEUTRAL_BAND = 0.5  # |mean| <= 0.5 is neutral


def lexicon_path() -> Path:
    files = importlib.metadata.files("vaderSentiment") or []
    return Path(str(next(f.locate() for f in files if str(f).endswith(LEXICON))))


def read_lexicon() -> tuple[pl.DataFrame, pl.DataFrame]:
    """(items, long ratings) for the whole lexicon."""
    items: list[dict[str, object]] = []
    ratings: list[dict[str, object]] = []
    lines = lexicon_path().read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        token, mean, std, raw = line.split("\t")
        word_id = f"vader-{number:04d}"
        values = ast.literal_eval(raw)
        m = float(mean)
        sentiment = ("negative" if m < -NEUTRAL_BAND
                     else "positive" if m > NEUTRAL_BAND else "neutral")
        items.append({"word_id": word_id, "token": token, "mean_rating": m,
                      "std_rating": float(std), "sentiment": sentiment})
        ratings += [{"word_id": word_id, "rater": f"rater_{k}", "rating": int(v)}
                    for k, v in enumerate(values, start=1)]
    return pl.DataFrame(items), pl.DataFrame(ratings)


def main() -> None:
    items, ratings = read_lexicon()
    sample = items.sample(n=SAMPLE, seed=SEED, shuffle=False)
    sample_ratings = ratings.join(sample.select("word_id"), on="word_id", how="semi")
    OUT.mkdir(parents=True, exist_ok=True)
    sample.write_csv(OUT / "items.csv")
    sample_ratings.write_csv(OUT / "ratings.csv")
    print(f"wrote {sample.height} words and {sample_ratings.height} ratings to {OUT} "
          f"(lexicon: {items.height} words)")


if __name__ == "__main__":
    main()
