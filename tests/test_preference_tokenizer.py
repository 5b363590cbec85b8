"""`preference.tokenizer` (issue 24): a Hugging Face tokenizer.json counts the tokens of
the budget checks and the length-bias report instead of whitespace."""

from __future__ import annotations

import builtins
import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml

from labelgate.errors import SpecError
from labelgate.stages.preference import PreferenceSpec, check_judgments, pairs, to_judgments
from labelgate.stages.preference.tokens import _load, load_tokenizer

tokenizers = pytest.importorskip("tokenizers")


@pytest.fixture
def char_tokenizer(tmp_path: Path) -> Path:
    """A tokenizer.json whose tokens are single characters (spaces dropped): its counts
    differ from whitespace tokens on every multi-letter word."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {c: i for i, c in enumerate(["[UNK]", *"abcdefghijklmnopqrstuvwxyz.,!?"])}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    path = tmp_path / "chars" / "tokenizer.json"
    path.parent.mkdir()
    tok.save(str(path))
    return path


def judgments(rows: list[tuple[Any, ...]]) -> pl.DataFrame:
    df = pl.DataFrame(rows, schema=["prompt", "response_a", "response_b", "preference",
                                    "annotator"], orient="row")
    return to_judgments(df, shape="judgments", value_map=PreferenceSpec().value_map())


def test_counts_equal_the_library_encoding(char_tokenizer: Path) -> None:
    from tokenizers import Tokenizer

    tok = load_tokenizer(char_tokenizer)
    texts = ["hello world", "", "a, b!", None]
    want = [len(Tokenizer.from_file(str(char_tokenizer)).encode(t or "").ids) for t in texts]
    assert want == [10, 0, 4, 0]
    assert [len(i) for i in tok.ids(texts)] == want


def test_budget_counts_the_tokenizer_tokens(char_tokenizer: Path) -> None:
    tok = load_tokenizer(char_tokenizer)
    df = judgments([("p", "abcdefgh", "xy", "a", "u"), ("p", "ab", "cd", "a", "u")])
    by_words = check_judgments(df, max_tokens=5, near_threshold=None)
    assert by_words.valid.height == 2  # one whitespace token each
    by_chars = check_judgments(df, max_tokens=5, near_threshold=None, tokenizer=tok)
    q = by_chars.quarantine.filter(pl.col("check") == "response_over_budget")
    assert q.select("id", "column", "failure_value").rows() == [("row-1", "response_a", "8")]
    assert "8 tokens of chars/tokenizer.json" in q.get_column("reason")[0]
    assert by_chars.valid.get_column("id").to_list() == ["row-2"]


def test_truncation_compares_the_tokenizer_heads(char_tokenizer: Path) -> None:
    tok = load_tokenizer(char_tokenizer)
    df = judgments([("p", "abcdefx", "abcdefy", "a", "u"),  # same first 6 characters
                    ("p", "abzdefx", "abcdefy", "a", "u")])
    result = check_judgments(df, max_tokens=6, near_threshold=None, tokenizer=tok)
    cut = result.quarantine.filter(pl.col("check") == "identical_after_truncation")
    assert cut.get_column("id").to_list() == ["row-1"]
    assert "6 tokens of chars/tokenizer.json" in cut.get_column("reason")[0]
    words = check_judgments(df, max_tokens=6, near_threshold=None)
    assert words.valid.height == 2  # within 6 whitespace tokens: no truncation


def test_length_bias_counts_the_tokenizer_tokens(char_tokenizer: Path) -> None:
    tok = load_tokenizer(char_tokenizer)
    # the chosen response has fewer words but more characters
    keyed = pairs.with_pair_keys(judgments([("p", "abcdefgh", "a b c", "a", "u")]))
    by_words, _, diff_words = pairs.length_bias(keyed)
    by_chars, _, diff_chars = pairs.length_bias(keyed, tok)
    assert by_words["longer_share_tokens"] == 0.0 and diff_words.to_list() == [-2]
    assert by_chars["longer_share_tokens"] == 1.0 and diff_chars.to_list() == [5]


def _spec_file(tmp_path: Path, tokenizer: str) -> Path:
    (tmp_path / "a.jsonl").write_text(json.dumps(
        {"id": "1", "prompt": "p", "response_a": "abcdefgh", "response_b": "xy",
         "preference": "a", "annotator": "u"}) + "\n")
    spec = {"name": "pref", "task": "preference", "store": "store",
            "sources": {"items": {"path": "a.jsonl"}},
            "columns": {"id": "id"},
            "preference": {"max_tokens": 5, "tokenizer": tokenizer}}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_spec_resolves_the_path_against_its_folder(tmp_path: Path, char_tokenizer: Path
                                                   ) -> None:
    from labelgate.spec import load_spec
    from labelgate.stages.preference.stage import preference_tokenizer

    spec = load_spec(_spec_file(tmp_path, "chars/tokenizer.json"))
    tok = preference_tokenizer(spec)
    assert tok is not None and tok.path == char_tokenizer.resolve()


@pytest.mark.parametrize(("write", "says"), [
    (None, "is not a file"),
    ("{not json", "is not a tokenizer.json"),
])
def test_check_refuses_a_bad_tokenizer_naming_the_key(tmp_path: Path, write: str | None,
                                                      says: str) -> None:
    from typer.testing import CliRunner

    from flows.cli import app

    if write is not None:
        (tmp_path / "tok.json").write_text(write)
    path = _spec_file(tmp_path, "tok.json")
    result = CliRunner().invoke(app, ["check", str(path)])
    assert result.exit_code == 2, result.output
    flat = " ".join(result.output.split())
    assert "preference.tokenizer" in flat and says in flat
    assert not (tmp_path / "store").exists()


def test_without_the_library_the_message_says_what_to_install(
        tmp_path: Path, char_tokenizer: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = builtins.__import__

    def no_tokenizers(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.split(".")[0] == "tokenizers":
            raise ImportError(name)
        return real(name, *args, **kwargs)

    _load.cache_clear()
    monkeypatch.setattr(builtins, "__import__", no_tokenizers)
    with pytest.raises(SpecError, match=r"preference.tokenizer: .*labelgate\[tokenizer\]"):
        load_tokenizer(char_tokenizer)
    _load.cache_clear()
