"""Probable span errors: out-of-fold token probabilities and cleanlab's token
classification issue finding.

The built-in token model is a logistic regression over each token's simple features
(the word lower-cased, its shape, prefixes and suffixes, the words around it), hashed;
the folds are grouped by document, so a token is scored by a model that saw none of its
document. The tags are the types (``O`` or the span's type) of the BIO tags, as
cleanlab's token classification expects one class per token. Or the probabilities come
from a larger model's predictions (a list of (tokens, types) arrays per sentence).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

FloatArray = npt.NDArray[np.float64]


def _shape(word: str) -> str:
    out: list[str] = []
    for ch in word[:6]:
        c = "X" if ch.isupper() else "x" if ch.islower() else "d" if ch.isdigit() else ch
        if not out or out[-1] != c:
            out.append(c)
    return "".join(out)


def token_features(words: Sequence[str]) -> list[dict[str, float]]:
    """One feature dict per word of a sentence (its own and its neighbours' cues)."""
    out = []
    for i, w in enumerate(words):
        low = w.lower()
        f = {f"w={low}": 1.0, f"shape={_shape(w)}": 1.0, f"pre3={low[:3]}": 1.0,
             f"suf3={low[-3:]}": 1.0, f"suf2={low[-2:]}": 1.0, "title": float(w.istitle()),
             "upper": float(w.isupper()), "first": float(i == 0)}
        for d in (-2, -1, 1, 2):
            j = i + d
            f[f"w{d:+d}={words[j].lower() if 0 <= j < len(words) else '<pad>'}"] = 1.0
        f[f"shape-1={_shape(words[i - 1]) if i else '<s>'}"] = 1.0
        out.append(f)
    return out


@dataclass(frozen=True)
class TokenIssues:
    """``tokens``: one row per flagged token: sentence, token, word, given, suggested,
    quality (lowest first); ``sentences``: sentence, quality (cleanlab's sentence score,
    the lowest token's), flagged tokens."""

    tokens: pl.DataFrame
    sentences: pl.DataFrame


def out_of_fold_token_probabilities(
    sentences: Sequence[Sequence[str]], labels: Sequence[Sequence[int]], *, groups:
    Sequence[str], n_classes: int, folds: int = 5, seed: int = 13,
) -> list[FloatArray]:
    """P(type) per token (a (tokens, n_classes) array per sentence), out of fold, folds
    grouped by ``groups`` (the sentence's document)."""
    from sklearn.feature_extraction import FeatureHasher
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold

    feats = [token_features(list(s)) for s in sentences]
    flat = [f for fs in feats for f in fs]
    y = np.concatenate([np.asarray(lab, dtype=np.int64) for lab in labels]) if flat else \
        np.zeros(0, dtype=np.int64)
    sent_of = np.repeat(np.arange(len(sentences)), [len(s) for s in sentences])
    x = FeatureHasher(n_features=2**18, alternate_sign=False).transform(flat)
    probs = np.zeros((len(y), n_classes))
    k = min(folds, len(set(groups)))
    splitter = GroupKFold(n_splits=k, shuffle=True, random_state=seed)
    for train_s, test_s in splitter.split(np.zeros(len(sentences)), groups=list(groups)):
        train = np.isin(sent_of, train_s)
        test = np.isin(sent_of, test_s)
        seen = np.unique(y[train])
        if len(seen) < 2:
            probs[np.ix_(test, seen)] = 1.0
            continue
        model = LogisticRegression(max_iter=300, C=1.0)
        model.fit(x[train], y[train])
        probs[np.ix_(test, model.classes_)] = model.predict_proba(x[test])
    bounds = np.cumsum([0, *[len(s) for s in sentences]])
    return [probs[bounds[i]:bounds[i + 1]] for i in range(len(sentences))]


def find_token_issues(
    sentences: Sequence[Sequence[str]], labels: Sequence[Sequence[int]],
    pred_probs: Sequence[FloatArray], *, classes: Sequence[str],
) -> TokenIssues:
    """cleanlab's token-classification issues; ``classes`` names the label ids."""
    from cleanlab.token_classification.filter import find_label_issues
    from cleanlab.token_classification.rank import get_label_quality_scores

    labs = [np.asarray(lab, dtype=np.int64) for lab in labels]
    issues: list[Any] = find_label_issues(labs, list(pred_probs), n_jobs=1) if labs else []
    sent_scores, token_scores = (get_label_quality_scores(labs, list(pred_probs))
                                 if labs else (np.zeros(0), []))
    rows = []
    for s, t in issues:
        rows.append({"sentence": int(s), "token": int(t), "word": sentences[s][t],
                     "given": classes[labs[s][t]],
                     "suggested": classes[int(np.argmax(pred_probs[s][t]))],
                     "quality": float(np.asarray(token_scores[s])[t])})
    tokens = pl.DataFrame(rows, schema={"sentence": pl.Int64, "token": pl.Int64,
                                        "word": pl.String, "given": pl.String,
                                        "suggested": pl.String, "quality": pl.Float64})
    per = tokens.group_by("sentence").len().rename({"len": "flagged_tokens"})
    sentences_frame = pl.DataFrame({"sentence": np.arange(len(labs), dtype=np.int64),
                                    "quality": np.asarray(sent_scores, dtype=np.float64)}
                                   ).join(per, on="sentence", how="left").with_columns(
        pl.col("flagged_tokens").fill_null(0).cast(pl.Int64))
    return TokenIssues(tokens.sort("quality", "sentence", "token"), sentences_frame)
