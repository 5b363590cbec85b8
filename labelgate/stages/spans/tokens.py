"""Tokens with character offsets, and BIO tags to and from character spans.

A span is ``(start, end, label)`` over a text, ``end`` exclusive (Python slicing, spaCy's
``char_span``, Label Studio's ``value.start``/``value.end``). Tokens are runs of word
characters or single other non-space characters (``re`` ``\\w+|[^\\w\\s]``), so
punctuation is its own token, as in CoNLL files.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

Span = tuple[int, int, str]
Token = tuple[int, int]
_TOKEN = re.compile(r"\w+|[^\w\s]")


def tokenize(text: str) -> list[Token]:
    """(start, end) of each token of ``text``."""
    return [(m.start(), m.end()) for m in _TOKEN.finditer(text)]


def spans_to_bio(tokens: Sequence[Token], spans: Sequence[Span]) -> list[str]:
    """BIO tags (``O``, ``B-TYPE``, ``I-TYPE``) of ``tokens`` for non-overlapping
    ``spans``: a token is inside a span when it overlaps it (so a span boundary inside a
    token takes the whole token); where spans overlap, the earlier-starting one wins."""
    tags = ["O"] * len(tokens)
    for start, end, label in sorted(spans):
        first = True
        for i, (ts, te) in enumerate(tokens):
            if te <= start or ts >= end:
                continue
            if tags[i] != "O":
                first = False
                continue
            tags[i] = ("B-" if first else "I-") + label
            first = False
    return tags


def bio_to_spans(tokens: Sequence[Token], tags: Sequence[str]) -> list[Span]:
    """Character spans of BIO (or IOB1) ``tags`` over ``tokens``: an ``I-X`` after ``O``
    or after another type starts a span, as conlleval reads it."""
    out: list[Span] = []
    cur: list[int | str] | None = None
    for (ts, te), tag in zip(tokens, tags, strict=True):
        kind, _, label = tag.partition("-")
        if tag == "O" or kind not in ("B", "I") or not label:
            if cur is not None:
                out.append((int(cur[0]), int(cur[1]), str(cur[2])))
            cur = None
            continue
        if kind == "B" or cur is None or cur[2] != label:
            if cur is not None:
                out.append((int(cur[0]), int(cur[1]), str(cur[2])))
            cur = [ts, te, label]
        else:
            cur[1] = te
    if cur is not None:
        out.append((int(cur[0]), int(cur[1]), str(cur[2])))
    return out


def join_tokens(words: Sequence[str]) -> tuple[str, list[Token]]:
    """A CoNLL sentence's words as one text (single spaces) and each word's offsets."""
    offsets: list[Token] = []
    pos = 0
    for w in words:
        offsets.append((pos, pos + len(w)))
        pos += len(w) + 1
    return " ".join(words), offsets
