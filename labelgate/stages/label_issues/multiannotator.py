"""CROWDLAB for the multiannotator method.

``_crowdlab`` runs cleanlab's ``get_label_quality_multiannotator`` on the items with an
annotation: a consensus label, its quality and the annotators' agreement per item
(``_Crowdlab``), and statistics per annotator. The annotation matrix and the majority vote
it starts from are in `labelgate.stages.label_issues.labels`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from labelgate.stages.label_issues.arrays import FloatArray, IntArray
from labelgate.stages.label_issues.labels import _Labels


@dataclass(frozen=True)
class _Crowdlab:
    """CROWDLAB's verdict per item (shapes (n,)) and per annotator."""

    consensus: IntArray  # class codes; the judged label where an item has no annotation
    quality: npt.NDArray[np.float64]  # consensus quality (0..1); self-confidence elsewhere
    agreement: npt.NDArray[np.float64]  # annotator agreement, NaN without annotations
    n_annotations: IntArray
    annotators: pl.DataFrame | None  # annotator, quality, agreement_with_consensus, n_labels


def _crowdlab(
    labels: _Labels,
    mat: npt.NDArray[np.float64],
    probs: FloatArray,
    *,
    quality: npt.NDArray[np.float64],
    calibrate_probs: bool,
) -> _Crowdlab:
    """CROWDLAB (``get_label_quality_multiannotator``) on the items with an annotation.

    Parameters
    ----------
    labels : _Labels
        The classes, judged labels and annotator names.
    mat : ndarray of float64, shape (n, annotators)
        Annotation class codes, NaN where the annotator did not label the item.
    probs : FloatArray, shape (n, k)
        Out-of-fold probabilities.
    quality : ndarray of float64, shape (n,)
        Self-confidence label quality, kept for items without an annotation.
    calibrate_probs : bool
        Passed to CROWDLAB.

    Returns
    -------
    _Crowdlab
        Per-item consensus, quality and agreement; per-annotator statistics (None when no
        item has an annotation).
    """
    from cleanlab.multiannotator import get_label_quality_multiannotator

    keep = np.flatnonzero(~np.isnan(mat).all(axis=1))
    n_ann = (~np.isnan(mat)).sum(axis=1)
    agreement = np.full(len(labels.judged), np.nan)
    consensus = labels.judged.copy()
    quality = quality.copy()
    if not (len(keep) and mat.shape[1] >= 1):
        return _Crowdlab(consensus, quality, agreement, n_ann.astype(np.int64), None)
    out = get_label_quality_multiannotator(
        _labels_frame(mat[keep], labels.annotators), probs[keep], verbose=False,
        return_detailed_quality=False, calibrate_probs=calibrate_probs,
    )
    lq = out["label_quality"]
    consensus[keep] = lq["consensus_label"].to_numpy().astype(np.int64)
    quality[keep] = np.clip(lq["consensus_quality_score"].to_numpy(), 0.0, 1.0)
    agreement[keep] = lq["annotator_agreement"].to_numpy()
    return _Crowdlab(consensus, quality, agreement, n_ann.astype(np.int64),
                     _annotator_frame(out["annotator_stats"]))


def _labels_frame(sub: npt.NDArray[np.float64], names: Sequence[str]) -> Any:
    """CROWDLAB's input: a pandas frame of the annotators who labelled any of these items.

    Parameters
    ----------
    sub : ndarray of float64, shape (m, annotators)
        Annotation class codes of the annotated items, NaN where not labelled.
    names : sequence of str, length annotators
        The annotators' names.

    Returns
    -------
    pandas.DataFrame, shape (m, annotators with a label here)
        Columns named by annotator.
    """
    import pandas as pd

    live = np.flatnonzero(~np.isnan(sub).all(axis=0))
    return pd.DataFrame(sub[:, live], columns=[names[int(j)] for j in live])


def _annotator_frame(stats: Any) -> pl.DataFrame:
    """CROWDLAB's annotator statistics, best annotator first.

    Parameters
    ----------
    stats : pandas.DataFrame
        ``annotator_stats`` of ``get_label_quality_multiannotator``, indexed by annotator.

    Returns
    -------
    pl.DataFrame
        One row per annotator: annotator, quality, agreement_with_consensus, n_labels;
        sorted by quality descending, then name.
    """
    return pl.DataFrame(
        {
            "annotator": [str(a) for a in stats.index],
            "quality": stats["annotator_quality"].to_numpy().astype(np.float64),
            "agreement_with_consensus": stats["agreement_with_consensus"]
            .to_numpy()
            .astype(np.float64),
            "n_labels": stats["num_examples_labeled"].to_numpy().astype(np.int64),
        }
    ).sort(["quality", "annotator"], descending=[True, False])
