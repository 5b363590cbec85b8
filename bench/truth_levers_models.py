"""Model levers of issue 23's fifth round, for bench/bench_text_truth.py ``--variants``.

Each lever is a context manager that swaps one piece of the text model in
`labelgate.stages.label_issues.models` for the run of one variant (the stage's code is not
changed): the fold model (`models._linear_model`) or the matrix and parameters the folds get
(`models._text_inputs`). Only the in-process path the corpora take is covered (no training
sample, no kept models).

* ``bag-K``: K SGD models per fold, seeds seed..seed+K-1 (other shuffles), probabilities
  averaged (K times the training);
* ``word-member``: a second SGD model per fold (same settings) on the recipe's features,
  TfidfVectorizer(sublinear_tf=True, min_df=2) word unigrams fitted on all rows' text (no
  labels), its probabilities averaged with the default model's (~1.3-1.5x the training);
* ``word-weight-W``: the word block of the default matrix weighted W and the char block
  1 - W before the rows are normalised again (the default weighs both blocks equally: W =
  0.5); same cost;
* ``three-passes``: a third pass over the folds, its models not trained on the rows the
  default flagger flags on the first two passes' average; the three passes averaged (1.5x
  the training);
* ``softmax``: the default model's probabilities as the softmax of its one-vs-rest decision
  scores instead of the normalised logistic of each (no extra training).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from labelgate.stages.label_issues import models

FloatArray = npt.NDArray[np.float64]


class _Averaged:
    """Several SGD logistic regressions, each fitted on (its block of) the same rows; the
    probabilities averaged. ``blocks``: column ranges of x, one per member (None: all)."""

    def __init__(self, members: list[Any], blocks: list[slice | None]) -> None:
        self.members, self.blocks = members, blocks

    def fit(self, x: Any, y: Any) -> _Averaged:
        for m, b in zip(self.members, self.blocks, strict=True):
            m.fit(x if b is None else x[:, b], y)
        self.classes_ = self.members[0].classes_
        return self

    def predict_proba(self, x: Any) -> FloatArray:
        probs = [m.predict_proba(x if b is None else x[:, b])
                 for m, b in zip(self.members, self.blocks, strict=True)]
        return np.asarray(sum(probs) / len(probs), dtype=np.float64)


class _Softmax:
    """The default SGD model, its probabilities the softmax of the decision scores."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def fit(self, x: Any, y: Any) -> _Softmax:
        self.model.fit(x, y)
        self.classes_ = self.model.classes_
        return self

    def predict_proba(self, x: Any) -> FloatArray:
        from scipy.special import softmax

        scores = np.asarray(self.model.decision_function(x), dtype=np.float64)
        if scores.ndim == 1:  # two classes: one score for the second
            scores = np.stack([np.zeros_like(scores), scores], axis=1)
        return np.asarray(softmax(scores, axis=1), dtype=np.float64)


def _swapped(name: str, value: object) -> Any:
    return mock.patch.object(models, name, value)


def _model_factory(make: Callable[..., Any]) -> Callable[..., Any]:
    default = models._linear_model

    def build(*, seed: int, alpha: float, epochs: int, n_jobs: int) -> Any:
        def one(s: int) -> Any:
            return default(seed=s, alpha=alpha, epochs=epochs, n_jobs=n_jobs)
        return make(one, seed)
    return build


@contextmanager
def bagged(k: int) -> Iterator[None]:
    build = _model_factory(lambda one, seed: _Averaged([one(seed + i) for i in range(k)],
                                                       [None] * k))
    with _swapped("_linear_model", build):
        yield


@contextmanager
def softmaxed() -> Iterator[None]:
    with _swapped("_linear_model", _model_factory(lambda one, seed: _Softmax(one(seed)))):
        yield


def _scale_rows(mat: sp.csr_matrix) -> sp.csr_matrix:
    norms = np.sqrt(np.asarray(mat.multiply(mat).sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    return sp.csr_matrix(sp.diags(1.0 / norms) @ mat)


@contextmanager
def word_member() -> Iterator[None]:
    """The default matrix with the recipe's word unigrams appended; a member on each."""
    inputs = models._text_inputs
    width: list[int] = []

    def text_inputs(features: Any, text_columns: Any, *args: Any, **kwargs: Any) -> Any:
        from sklearn.feature_extraction.text import TfidfVectorizer

        x, params, vocabulary = inputs(features, text_columns, *args, **kwargs)
        text = models.joined_text(features, text_columns).to_list()
        words = TfidfVectorizer(sublinear_tf=True, min_df=2).fit_transform(text)
        width[:] = [x.shape[1]]
        return sp.hstack([x, words], format="csr"), params, vocabulary

    build = _model_factory(lambda one, seed: _Averaged(
        [one(seed), one(seed)], [slice(0, width[0]), slice(width[0], None)]))
    with _swapped("_text_inputs", text_inputs), _swapped("_linear_model", build):
        yield


@contextmanager
def word_weight(w: float) -> Iterator[None]:
    """The word block weighted ``w``, the char block ``1 - w``, rows normalised again."""
    inputs = models._text_inputs

    def text_inputs(*args: Any, **kwargs: Any) -> Any:
        x, params, vocabulary = inputs(*args, **kwargs)
        if vocabulary.char_columns is None:
            return x, params, vocabulary
        d = len(vocabulary.word_columns)
        scale = np.full(x.shape[1], 1.0 - w)
        scale[:d] = w
        return _scale_rows(sp.csr_matrix(x @ sp.diags(scale))), params, vocabulary

    with _swapped("_text_inputs", text_inputs):
        yield


@contextmanager
def three_passes() -> Iterator[None]:
    """`models._passes`, then a third pass without the rows flagged on the first two's
    average; the three averaged."""
    passes = models._passes

    def run(jobs: Any, y: Any, fold_of: Any, *, n_classes: int, mapper: Any,
            leave_out: Any, average: bool) -> Any:
        from dataclasses import replace

        from threadpoolctl import threadpool_limits

        out, kept = passes(jobs, y, fold_of, n_classes=n_classes, mapper=mapper,
                           leave_out=leave_out, average=average)
        if leave_out is None or not average or out.left_out == 0:
            return out, kept
        drop = models.keep_every_class(y, fold_of, np.asarray(leave_out(out.probabilities)))
        with threadpool_limits(limits=1, user_api="blas"):
            third, more = models._run_folds(jobs, mapper=mapper, shape=(len(y), n_classes),
                                            exclude=drop)
        probs = ((2 * out.probabilities.astype(np.float64) + third) / 3).astype(np.float32)
        return replace(out, probabilities=probs), [*kept, more]

    with _swapped("_passes", run):
        yield


MODEL_LEVERS: dict[str, Callable[[], Any]] = {
    "bag-3": lambda: bagged(3),
    "word-member": word_member,
    "word-weight-0.35": lambda: word_weight(0.35),
    "word-weight-0.65": lambda: word_weight(0.65),
    "softmax": softmaxed,
    "three-passes": three_passes,
}
