"""Research code: calibrations of the confident joint that are still being evaluated.

As cleanlab keeps ``cleanlab.experimental``, this module holds code whose method (not its
correctness) is under study: its defaults were tuned on a handful of benchmark sets and may
change between releases. What was measured lives in ``docs/benchmarks/label-issues.md``.

The stable entry points stay in `labelgate.stages.label_issues.detect`, which re-exports the names
here
(``posterior_joint``, ``POSTERIOR_SHARPEN``, ``POSTERIOR_MAX_ITER``);
`labelgate.stages.label_issues.flags` uses `posterior_joint` for
``joint_calibration="posterior"``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from labelgate.errors import InputError
from labelgate.stages.label_issues.arrays import FloatArray, IntArray

__all__ = ["POSTERIOR_MAX_ITER", "POSTERIOR_SHARPEN", "posterior_joint"]

Float64Array = npt.NDArray[np.float64]

POSTERIOR_SHARPEN = 2.0  # probabilities are squared (then renormalised) in `posterior_joint`
POSTERIOR_MAX_ITER = 1000
# keeps every transition possible in the EM (a zero would stay zero)
_TRANSITION_FLOOR = 1e-3
# the EM stops once no cell of the joint moves by this many rows
_CONVERGED_ROWS = 0.01


def posterior_joint(
    labels: IntArray, probs: FloatArray, joint: IntArray, *, sharpen: float = POSTERIOR_SHARPEN
) -> IntArray:
    """The joint of (given, true) labels as the sum of each row's posterior over its true class.

    Under confident learning's class-conditional noise model, P(true = j | x, given = i) is
    proportional to q_j(x) * T[i, j], where T[i, j] = P(given = i | true = j). T starts from
    ``joint`` (e.g. `labelgate.stages.label_issues.detect.estimate_confident_joint`'s) and is
    re-estimated
    from the posteriors until no cell of the joint moves by 0.01 rows (EM). ``q`` are the
    probabilities raised to ``sharpen`` and renormalised: the default 2 suits the built-in
    small-table ensemble (extra trees + logistic regression, averaged), which is
    under-confident; calibrated probabilities want ``sharpen=1`` (2 over-counts them).

    A confident-joint count only counts the rows above a class's threshold and scales them up,
    so it has the sampling error of a thinned count; the posterior sums over every row.
    Classes that no row is given are left out (no row is counted as truly of them).

    Parameters
    ----------
    labels : IntArray, shape (n,)
        Given class codes 0..k-1.
    probs : FloatArray, shape (n, k)
        Predicted probabilities (out of fold); every value must be finite.
    joint : IntArray, shape (k, k)
        Starting joint counts (given label i, true label j).
    sharpen : float
        Exponent applied to ``probs`` before renormalising.

    Returns
    -------
    IntArray, shape (k, k)
        Joint counts whose row i sums to the number of rows given label i, like cleanlab's
        calibrated joint.

    Raises
    ------
    InputError
        If ``probs`` holds a NaN or inf.
    """
    from cleanlab.internal.util import round_preserving_row_totals

    labels = np.asarray(labels, dtype=np.int64)
    q = _sharpened(labels, probs, sharpen=sharpen)
    soft = _em_joint(labels, q, joint)
    return np.asarray(round_preserving_row_totals(soft), dtype=np.int64)


def _sharpened(labels: IntArray, probs: FloatArray, *, sharpen: float) -> Float64Array:
    """Probabilities raised to ``sharpen``, zero on classes no row is given, rows renormalised.

    Parameters
    ----------
    labels : IntArray, shape (n,)
        Given class codes 0..k-1.
    probs : FloatArray, shape (n, k)
        Predicted probabilities.
    sharpen : float
        Exponent.

    Returns
    -------
    Float64Array, shape (n, k)
        Rows summing to 1.

    Raises
    ------
    InputError
        If ``probs`` holds a NaN or inf.
    """
    k = probs.shape[1]
    p = np.asarray(probs, dtype=np.float64)
    if not np.isfinite(p).all():
        raise InputError("label_issues: probabilities must be finite (a NaN or inf was given)")
    seen = np.bincount(labels, minlength=k) > 0
    q = np.clip(p, 1e-12, None) ** sharpen
    q[:, ~seen] = 0.0
    q /= q.sum(axis=1, keepdims=True)
    return q


def _em_joint(labels: IntArray, q: Float64Array, joint: IntArray) -> Float64Array:
    """EM over the transition matrix T[i, j] = P(given = i | true = j), started from ``joint``.

    Parameters
    ----------
    labels : IntArray, shape (n,)
        Given class codes 0..k-1.
    q : Float64Array, shape (n, k)
        Sharpened probabilities (`_sharpened`).
    joint : IntArray, shape (k, k)
        Starting joint counts.

    Returns
    -------
    Float64Array, shape (k, k)
        The soft joint: cell (i, j) sums the posterior of true class j over the rows given i.
    """
    k = q.shape[1]
    eps = _TRANSITION_FLOOR
    t = np.asarray(joint, dtype=np.float64) + eps
    t /= t.sum(axis=0, keepdims=True)
    soft: Float64Array = np.zeros((k, k))
    for _ in range(POSTERIOR_MAX_ITER):
        post = q * t[labels, :]
        post /= post.sum(axis=1, keepdims=True)
        new = np.stack([np.bincount(labels, weights=post[:, j], minlength=k) for j in range(k)],
                       axis=1).astype(np.float64)
        moved = np.abs(new - soft).max()
        soft = new
        t = (soft + eps) / (soft + eps).sum(axis=0, keepdims=True)
        if moved < _CONVERGED_ROWS:
            break
    return soft
