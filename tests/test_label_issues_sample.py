"""The text model above ``label_issues.train_max_rows``: fold models trained on a bounded,
stratified sample, every row scored out of fold in chunks
(labelgate.stages.label_issues.sampled)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import polars as pl
import pytest

from labelgate.errors import InputError, SpecError
from labelgate.progress import Tick, reporting
from labelgate.spec import parse_spec
from labelgate.stages.label_issues.detect import find_label_issues
from labelgate.stages.label_issues.incremental import score_with_kept
from labelgate.stages.label_issues.models import (
    FoldJob,
    FoldResult,
    _sparse_tabular,
    assign_folds,
    fold_model_probabilities,
    out_of_fold,
)
from labelgate.stages.label_issues.sampled import TabularEncoder, stratified_sample
from labelgate.stages.label_issues.text_features import joined_text, transform_text
from tests.conftest import spec_dict

N, CAP, FOLDS, SEED = 3000, 300, 5, 13


def _texts(n: int = N, *, seed: int = 0) -> tuple[pl.DataFrame, np.ndarray]:
    """n rows of three classes (60/30/10%): each text four of its class's 20 words and eight
    of 200 shared ones; 8% of the labels moved to another class."""
    rng = np.random.default_rng(seed)
    truth = rng.choice(3, size=n, p=[0.6, 0.3, 0.1])
    words = [[f"c{c}w{i}" for i in range(20)] for c in range(3)]
    common = [f"s{i}" for i in range(200)]
    texts = [" ".join([*rng.choice(words[c], 4), *rng.choice(common, 8)]) for c in truth]
    y = truth.copy()
    flip = rng.random(n) < 0.08
    y[flip] = (truth[flip] + rng.integers(1, 3, size=int(flip.sum()))) % 3
    df = pl.DataFrame({"id": [f"r{i}" for i in range(n)], "text": texts,
                       "label": [["neg", "neu", "pos"][c] for c in y],
                       "length": [len(t) for t in texts],
                       "source": rng.choice(["a", "b", "c"], size=n).tolist()})
    return df, y


def _leave_out(y: np.ndarray) -> Callable[..., np.ndarray]:
    """Leave out rows whose given label has probability < 0.2 (of ``rows``, when given)."""

    def leave_out(probs: np.ndarray, *, rows: np.ndarray | None = None) -> np.ndarray:
        given = y if rows is None else y[rows]
        return probs[np.arange(len(given)), given] < 0.2

    return leave_out


class _Recorder:
    """A mapper that runs the parts here and keeps every (name, job, result)."""

    def __init__(self) -> None:
        self.parts: list[tuple[str, FoldJob, FoldResult]] = []

    def __call__(self, fn: Callable[[Any], Any], items: Sequence[Any], *, name: str) -> list[Any]:
        out = [fn(x) for x in items]
        self.parts.extend((name, job, res) for job, res in zip(items, out, strict=True))
        return out


@pytest.fixture(scope="module")
def sampled() -> tuple[pl.DataFrame, np.ndarray, Any, _Recorder]:
    df, y = _texts()
    rec = _Recorder()
    fitted = out_of_fold(df, y, text_columns=["text"], folds=FOLDS, seed=SEED, mapper=rec,
                         leave_out=_leave_out(y), keep_models=True, train_max_rows=CAP,
                         score_chunk_rows=700)
    return df, y, fitted, rec


def test_no_row_is_scored_by_a_model_that_trained_on_it(sampled: Any) -> None:
    df, y, fitted, rec = sampled
    fold_of = assign_folds(y, folds=FOLDS, seed=SEED)
    sample = fitted.sample
    assert [name for name, _, _ in rec.parts] == ["fold"] * FOLDS + ["refold"] * FOLDS
    assert fitted.left_out > 0
    for _, job, _res in rec.parts:
        # the parts get the sample's rows only (what a Dask worker receives is bounded)
        assert job.x.shape[0] == len(sample) == len(job.y) == len(job.fold_of)
        np.testing.assert_array_equal(job.fold_of, fold_of[sample])
        train = job.fold_of != job.fold
        exclude = job.params.get("exclude")
        if exclude is not None:
            train &= ~exclude
        trained_on = set(sample[train].tolist())
        scored = set(np.flatnonzero(fold_of == job.fold).tolist())
        assert len(trained_on) > 100
        assert not trained_on & scored
    # every row's probabilities are its own fold's kept models', the two passes averaged
    kept = fitted.kept
    assert kept is not None and len(kept.passes) == 2
    for p, models in enumerate(kept.passes):
        for f, model in enumerate(models):
            np.testing.assert_array_equal(model.coef, rec.parts[p * FOLDS + f][2].model.coef)
    rows = np.array([0, 1, 2, 500, 1234, 2999, *sample[:5].tolist()])
    x = transform_text(joined_text(df[rows], ["text"]), kept.vocabulary)
    want = np.zeros((len(rows), 3))
    for i, r in enumerate(rows):
        for models in kept.passes:
            model = models[fold_of[r]]
            want[i, model.classes] += fold_model_probabilities(model, x[i])[0] / 2
    np.testing.assert_allclose(fitted.probabilities[rows], want, atol=1e-6)


def test_every_row_gets_probabilities_that_sum_to_one(sampled: Any) -> None:
    _, y, fitted, _ = sampled
    probs = fitted.probabilities
    assert probs.shape == (N, 3) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    # the models learnt something: most rows' largest probability is their true class
    assert (probs.argmax(axis=1) == y).mean() > 0.7


def test_the_sample_is_stratified_bounded_and_seeded() -> None:
    rng = np.random.default_rng(5)
    y = np.concatenate([np.zeros(7000), np.ones(2500), np.full(497, 2), np.full(3, 3)])
    y = rng.permutation(y).astype(np.int64)
    fold_of = assign_folds(y, folds=FOLDS, seed=1)
    sample = stratified_sample(y, fold_of, size=1000, seed=2)
    assert len(sample) == 1000 and len(np.unique(sample)) == 1000
    assert np.all(np.diff(sample) > 0)
    counts = np.bincount(y[sample], minlength=4)
    assert counts[3] == 3  # a class of three rows in three folds keeps all three
    for c, n_c in enumerate(np.bincount(y)[:3]):
        assert abs(counts[c] - 1000 * n_c / len(y)) <= 2 * FOLDS
    # every (class, fold) pair with rows has rows in the sample
    pairs = set(zip(y.tolist(), fold_of.tolist(), strict=True))
    assert set(zip(y[sample].tolist(), fold_of[sample].tolist(), strict=True)) == pairs
    np.testing.assert_array_equal(stratified_sample(y, fold_of, size=1000, seed=2), sample)
    assert not np.array_equal(stratified_sample(y, fold_of, size=1000, seed=3), sample)
    np.testing.assert_array_equal(stratified_sample(y, fold_of, size=len(y), seed=2),
                                  np.arange(len(y)))
    with pytest.raises(InputError, match=r"label_issues.train_max_rows: got 10, expected at "
                                         r"least 18"):
        stratified_sample(y, fold_of, size=10, seed=2)


def test_at_or_below_the_cap_the_result_is_the_uncapped_one() -> None:
    df, y = _texts(800, seed=4)
    options: dict[str, Any] = {"text_columns": ["text"], "leave_out": _leave_out(y),
                               "keep_models": True}
    free = out_of_fold(df, y, **options)
    at_cap = out_of_fold(df, y, train_max_rows=800, **options)
    assert at_cap.sample is None and free.sample is None
    np.testing.assert_array_equal(at_cap.probabilities, free.probabilities)
    assert at_cap.left_out == free.left_out > 0
    res = find_label_issues(df, id_column="id", label_column="label", text_columns=["text"],
                            train_max_rows=800)
    plain = find_label_issues(df, id_column="id", label_column="label", text_columns=["text"])
    assert res.trained_rows is None
    assert res.table.equals(plain.table)


def test_find_label_issues_says_how_many_rows_trained() -> None:
    df, _ = _texts(2000, seed=6)
    res = find_label_issues(df, id_column="id", label_column="label", text_columns=["text"],
                            train_max_rows=500)
    assert res.trained_rows == 500
    assert res.table.height == 2000 and res.passes == 2
    assert 0 < res.table.get_column("is_label_issue").sum() < 400


def test_text_with_feature_columns_is_sampled_and_encoded_as_fitted() -> None:
    df, y = _texts(1500, seed=8)
    fitted = out_of_fold(df, y, text_columns=["text"], feature_columns=["length", "source"],
                         train_max_rows=400, score_chunk_rows=600, leave_out=_leave_out(y),
                         keep_models=True)
    assert fitted.kept is None  # feature columns: the models are not kept
    assert fitted.sample is not None and len(fitted.sample) == 400
    np.testing.assert_allclose(fitted.probabilities.sum(axis=1), 1.0, atol=1e-5)
    # fitted and applied to the same rows, the encoder is the full fit's feature block
    part = df.head(300)
    enc = TabularEncoder.fit(part, ["length", "source"])
    full = _sparse_tabular(part, ["length", "source"])
    assert (enc.transform(part) != full).nnz == 0
    # a category the fit did not see sets no column; numbers use the fitted mean and std
    other = pl.DataFrame({"length": [part.get_column("length").mean()], "source": ["zzz"]})
    np.testing.assert_array_equal(enc.transform(other).toarray(), [[0.0, 0.0, 0.0, 0.0]])


def test_the_kept_sample_models_score_new_rows(sampled: Any) -> None:
    _, _, fitted, _ = sampled
    new, _ = _texts(50, seed=9)
    probs = score_with_kept(new, fitted.kept, ids=new.get_column("id"),
                            text_columns=["text"])
    assert probs.shape == (50, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_scoring_reports_chunks() -> None:
    df, y = _texts(1000, seed=10)
    ticks: list[Tick] = []
    with reporting(ticks.append, stage="label-issues"):
        out_of_fold(df, y, text_columns=["text"], train_max_rows=300, score_chunk_rows=400,
                    leave_out=_leave_out(y))
    scored = [(t.done, t.total) for t in ticks if t.step == "rows scored"]
    assert scored == [(400, 1000), (800, 1000), (1000, 1000)]
    assert [t.done for t in ticks if t.step in ("fold", "refold")] == [1, 2, 3, 4, 5] * 2


def test_the_spec_option_validates() -> None:
    spec = parse_spec(spec_dict(label_issues={}))
    assert spec.label_issues is not None and spec.label_issues.train_max_rows == 500_000
    for bad in (999, 2.5, "many"):
        with pytest.raises(SpecError) as info:
            parse_spec(spec_dict(label_issues={"train_max_rows": bad}))
        assert "label_issues.train_max_rows" in str(info.value)
    free = parse_spec(spec_dict(label_issues={"train_max_rows": None}))
    assert free.label_issues is not None and free.label_issues.train_max_rows is None


def test_word_counts_are_sklearn_ngrams_hashed() -> None:
    """`_word_chunk` (one lazy query, unigrams and bigrams hashed apart) counts what sklearn's
    word 1-2 gram analyzer yields, each n-gram in the column its polars hash picks."""
    from sklearn.feature_extraction.text import CountVectorizer

    from labelgate.stages.label_issues.text_features import _hashed_word_counts

    texts = ["The cat sat", "", "cat cat THE sat on the mat", "a b", "ok... ok, ok!", "mat"]
    mat = _hashed_word_counts(pl.Series(texts), seed=3, n_features=2**10, chunk_rows=4)
    analyzer = CountVectorizer(ngram_range=(1, 2)).build_analyzer()
    for i, text in enumerate(texts):
        grams = analyzer(text)
        want: dict[int, float] = {}
        if grams:
            cols = (pl.Series(grams).hash(3) % 2**10).to_list()
            for c in cols:
                want[c] = want.get(c, 0.0) + 1.0
        row = mat[i]
        assert dict(zip(row.indices.tolist(), row.data.tolist(), strict=True)) == want
    assert mat[0].sum() == 5 and mat[1].nnz == 0 and mat[3].nnz == 0


def test_the_stage_says_how_many_rows_trained() -> None:
    """The spec's train_max_rows reaches the model; the report's model line and the gate's
    metrics say how many rows trained (nothing is said when every row trained)."""
    from labelgate.stages import steps

    df, _ = _texts(2500, seed=11)
    valid = df.select(pl.col("id").alias("tweet_id"), "text",
                      pl.col("label").replace({"neg": "negative", "neu": "neutral",
                                               "pos": "positive"}).alias("sentiment"))
    capped = parse_spec(spec_dict(label_issues={"train_max_rows": 1000}))
    outcome = steps.detect_label_issues(valid, spec=capped)
    assert outcome.result.trained_rows == 1000
    assert outcome.section["model"].endswith(", trained on a 1,000-row sample")
    assert outcome.metrics["label_issues.trained_rows"] == 1000.0
    free = steps.detect_label_issues(valid, spec=parse_spec(spec_dict(label_issues={})))
    assert free.result.trained_rows is None
    assert "sample" not in free.section["model"]
    assert "label_issues.trained_rows" not in free.metrics


@pytest.mark.parametrize("feature_columns", [[], ["length", "source"]])
def test_the_sample_rows_scored_from_the_fit_matrix_as_if_transformed_again(
    feature_columns: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sample's rows are scored from the matrix the fit built, the coefficients read in
    Fortran order: the same bits as transforming every row and scoring it with sklearn's
    C-ordered coefficients (the path before)."""
    import labelgate.stages.label_issues.sampled as sampled_module

    df, y = _texts(1500, seed=11)

    def run() -> np.ndarray:
        return out_of_fold(df, y, text_columns=["text"], feature_columns=feature_columns,
                           train_max_rows=400, score_chunk_rows=350, leave_out=_leave_out(y),
                           keep_models=True).probabilities

    fast = run()
    score_rows, score_by_fold = sampled_module.score_rows, sampled_module.score_by_fold

    def every_row_transformed(*args: Any, trained: Any = None, **kwargs: Any) -> np.ndarray:
        return score_rows(*args, **kwargs)

    def c_ordered(models: Any, *args: Any, **kwargs: Any) -> np.ndarray:
        c = [replace(m, coef=np.ascontiguousarray(m.coef)) for m in models]
        assert all(m.coef.flags.c_contiguous for m in c)
        return score_by_fold(c, *args, **kwargs)

    monkeypatch.setattr(sampled_module, "score_rows", every_row_transformed)
    monkeypatch.setattr(sampled_module, "score_by_fold", c_ordered)
    np.testing.assert_array_equal(fast, run())


def test_sgd_epochs_halve_above_six_classes_past_100k_rows() -> None:
    from labelgate.stages.label_issues.models import auto_epochs

    for classes in (2, 3, 6, 7, 15, 40):
        assert auto_epochs(100_000, classes) == 10  # up to 100k rows: 10, whatever the classes
    # up to 6 classes: ~1M example updates per fold and binary model, as before
    assert [auto_epochs(n, 6) for n in (200_000, 500_000, 1_000_000, 3_000_000)] == [5, 2, 1, 1]
    assert auto_epochs(500_000) == auto_epochs(500_000, 3) == 2
    # above 6 classes (a binary model per class) half that, at least one epoch
    assert [auto_epochs(n, 7) for n in (200_000, 500_000, 1_000_000)] == [2, 1, 1]
    assert auto_epochs(150_000, 15) == 3


@pytest.mark.parametrize("cap", [None, 400])
def test_the_epochs_count_the_classes(cap: int | None, monkeypatch: pytest.MonkeyPatch) -> None:
    import labelgate.stages.label_issues.models as models_module
    import labelgate.stages.label_issues.sampled as sampled_module

    df, y = _texts(1000, seed=12)
    calls: list[tuple[int, int]] = []

    def recorded(n_rows: int, n_classes: int = 2) -> int:
        calls.append((n_rows, n_classes))
        return 3

    monkeypatch.setattr(models_module, "auto_epochs", recorded)
    monkeypatch.setattr(sampled_module, "auto_epochs", recorded)
    rec = _Recorder()
    out_of_fold(df, y, text_columns=["text"], n_classes=4, train_max_rows=cap, mapper=rec)
    assert calls == [(cap or 1000, 4)]
    assert {job.params["epochs"] for _, job, _ in rec.parts} == {3}


def test_kept_coefficients_are_made_fortran_in_place() -> None:
    """The sampled path's models get Fortran-order coefficients in the caller's own lists
    (each original replaced, so it can be freed), with the same values; `score_rows` then
    multiplies by them without another copy."""
    from labelgate.stages.label_issues.models import FoldModel
    from labelgate.stages.label_issues.sampled import _fortran_in_place

    rng = np.random.default_rng(0)
    coefs = [rng.normal(size=(15, 40)) for _ in range(3)]
    models = [FoldModel(classes=np.arange(15), coef=c, intercept=np.zeros(15)) for c in coefs]
    passes = [models[:2], models[2:]]
    lists = [id(p) for p in passes]
    _fortran_in_place(passes)
    assert [id(p) for p in passes] == lists
    got = [m.coef for p in passes for m in p]
    assert all(c.flags.f_contiguous and not c.flags.c_contiguous for c in got)
    assert all(np.array_equal(a, b) for a, b in zip(got, coefs, strict=True))
    assert not any(np.shares_memory(a, b) for a, b in zip(got, coefs, strict=True))
    again = [np.asfortranarray(c) for c in got]
    assert all(np.shares_memory(a, b) for a, b in zip(again, got, strict=True))
