"""A kept linear fold model's probabilities without scikit-learn or scipy.special (a night
imports neither)."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["ovr_probabilities"]


def ovr_probabilities(x: Any, coef: npt.NDArray[np.float64],
                      intercept: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """sklearn's ``SGDClassifier(loss="log_loss").predict_proba`` of fitted ``coef`` (c, d)
    and ``intercept`` (c,) on ``x`` (m, d), the same operations in the same order (so the
    same bits): the decision function ``x @ coef.T + intercept``, its logistic (expit), then
    two columns for one coefficient row (two classes) or the rows normalised to sum 1
    (one-vs-rest; an all-zero row uniform). The logistic is scipy's ``expit`` for float64,
    ``1 / (1 + exp(-x))``, in NumPy: importing scipy.special costs a night 0.1-0.2 s."""
    coef = np.asarray(coef, dtype=np.float64)
    scores = np.asarray(x @ coef.T) + np.asarray(intercept, dtype=np.float64)
    if scores.ndim > 1 and scores.shape[1] == 1:
        scores = scores.reshape(-1)
    prob: npt.NDArray[np.float64] = _expit(np.asarray(scores, dtype=np.float64))
    if prob.ndim == 1:
        return np.stack([1 - prob, prob], axis=1)
    prob_sum = prob.sum(axis=1)
    all_zero = prob_sum == 0
    if np.any(all_zero):
        prob[all_zero, :] = 1
        prob_sum[all_zero] = prob.shape[1]
    prob /= np.reshape(prob_sum, (prob.shape[0], -1))
    return prob


def _expit(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """``scipy.special.expit`` of float64 ``x`` (the same operations: 1 / (1 + exp(-x))),
    in place."""
    np.negative(x, out=x)
    with np.errstate(over="ignore"):  # exp(-x) = inf for x < -709: expit 0, as scipy's
        np.exp(x, out=x)
    x += 1.0
    return np.divide(1.0, x, out=x)
