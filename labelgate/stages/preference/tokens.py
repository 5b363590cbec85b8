"""Token counts of responses: whitespace tokens, or a configured Hugging Face tokenizer.

- `Tokenizer`: a `tokenizers` tokenizer loaded from a ``tokenizer.json`` file (the file a
  Hugging Face model folder ships; `preference.tokenizer` in the spec names it). Counts
  exclude special tokens, so a count is what the response adds to a training sequence.
- `load_tokenizer`: that file loaded, or a `SpecError` (exit 2) naming the spec key.
- `count_tokens` / `head_tokens`: polars expressions for a text column's token count and
  its first n tokens as a comparable string; without a tokenizer, whitespace tokens (runs
  of non-whitespace).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl

from labelgate.errors import SpecError

TOKENIZER_KEY = "preference.tokenizer"


class Tokenizer:
    """A Hugging Face fast tokenizer read from a ``tokenizer.json`` file."""

    def __init__(self, path: Path, backend: Any) -> None:
        self.path = path
        self._backend = backend

    @property
    def name(self) -> str:
        """How the report and reasons name it: the file's folder and name."""
        return f"{self.path.parent.name}/{self.path.name}"

    def ids(self, texts: Sequence[str | None]) -> list[list[int]]:
        """Token ids of each text without special tokens; None reads as ''."""
        out = self._backend.encode_batch([t or "" for t in texts], add_special_tokens=False)
        return [e.ids for e in out]


@functools.lru_cache(maxsize=8)
def _load(path: str) -> Tokenizer:
    try:
        from tokenizers import Tokenizer as Backend
    except ImportError:
        raise SpecError(
            f"{TOKENIZER_KEY}: the tokenizers library is not installed; "
            "pip install 'labelgate[tokenizer]' (or leave the key out for whitespace "
            "tokens)") from None
    p = Path(path)
    if not p.is_file():
        raise SpecError(f"{TOKENIZER_KEY}: {p} is not a file (give a Hugging Face "
                        "tokenizer.json, relative to the spec's folder)")
    try:
        backend = Backend.from_file(str(p))
    except Exception as exc:  # the Rust side raises a bare Exception on a bad file
        raise SpecError(f"{TOKENIZER_KEY}: {p} is not a tokenizer.json the tokenizers "
                        f"library reads: {str(exc).splitlines()[0][:200]}") from None
    backend.no_truncation()
    backend.no_padding()
    return Tokenizer(p, backend)


def load_tokenizer(path: Path) -> Tokenizer:
    """The tokenizer in `path` (a ``tokenizer.json``), loaded once per process.

    Raises
    ------
    SpecError
        The library is missing, the file is missing, or it is not a tokenizer file; the
        message names `preference.tokenizer`.
    """
    return _load(str(path.resolve()))


def count_tokens(text: pl.Expr, tokenizer: Tokenizer | None = None) -> pl.Expr:
    """The token count of each text (0 for null): whitespace tokens without a tokenizer."""
    if tokenizer is None:
        return text.str.count_matches(r"\S+").fill_null(0)
    return text.map_batches(
        lambda s: pl.Series([len(i) for i in tokenizer.ids(s.to_list())], dtype=pl.Int64),
        return_dtype=pl.Int64).fill_null(0)


def head_tokens(text: pl.Expr, n: int, tokenizer: Tokenizer | None = None) -> pl.Expr:
    """The first `n` tokens of each text as a string two texts can be compared by:
    the words joined by spaces, or the token ids joined by spaces with a tokenizer."""
    if tokenizer is None:
        return text.str.extract_all(r"\S+").list.head(n).list.join(" ")
    return text.map_batches(
        lambda s: pl.Series([" ".join(map(str, i[:n])) for i in tokenizer.ids(s.to_list())],
                            dtype=pl.String),
        return_dtype=pl.String)


def describe(tokenizer: Tokenizer | None) -> str:
    """'whitespace tokens' or 'tokens of <folder>/tokenizer.json', for reasons and reports."""
    return "whitespace tokens" if tokenizer is None else f"tokens of {tokenizer.name}"
