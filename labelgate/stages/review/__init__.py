"""The review loop: pick the items worth a human's time, export them, take corrections back.

1. ``review_queue`` ranks items for review. Reasons, in priority order:
   ``label_issue`` (flagged by the label-issue stage, lowest label quality first), then
   ``low_label_quality`` (unflagged items whose given label is not the model's top class,
   lowest label quality first: ranked by the out-of-fold probability that the given label
   is wrong, not by margin; both share ``MixRule.label_issue``),
   ``consensus_disagreement`` (majority vote and Dawid-Skene disagree),
   ``low_agreement`` (annotators agree on fewer than ``MixRule.low_agreement_below``),
   ``uncertain`` (active learning: unflagged items whose label the model does pick, with
   the smallest margin of the out-of-fold probabilities, or the highest entropy). Each
   item appears once, under its first reason.
   ``MixRule`` gives each reason a share of the budget; a reason with too few candidates
   passes its unused share down the list. Gold items (known answers) can be mixed in at
   ``gold_rate`` at seeded random positions, to measure reviewer accuracy.
2. ``to_label_studio`` / ``to_csv`` / ``to_jsonl`` write the queue for reviewers; the Label
   Studio tasks carry the given and the suggested label as predictions, and
   ``labeling_config`` is the XML for the dataset's classes.
3. ``read_corrections`` reads a Label Studio export or a CSV/JSONL of (id, label, reviewer
   [, timestamp]); rows with an empty label were not answered: skipped, and
   ``read_corrections_file`` says which, for the import to report; ``validate_corrections``
   splits it into applied / rejected (with reasons) / gold answers; ``store_corrections``
   writes the applied ones to the lake as an overlay batch
   (``lake/<dataset>/corrections/batch=<hash>/``: who, when, old label, new label;
   never an in-place edit); ``load_corrections`` reads every batch back and
   ``apply_corrections`` gives the next run's labels (latest correction per id wins).
4. ``reviewer_accuracy`` scores reviewers on the gold items they were shown.

Scores in the queue are "lower = review first", all in 0..1: label quality for label issues,
annotator agreement for the consensus reasons, the margin (or 1 - normalized entropy) of the
model's probabilities for uncertain items.

Modules: ``queue`` (``MixRule``, ``review_queue``, ``uncertainty_scores``), ``export``
(``labeling_config``, ``to_label_studio``, ``to_csv``, ``to_jsonl``), ``corrections``
(reading, validating and applying corrections, ``reviewer_accuracy``), ``common`` (shared
helpers); the overlay's storage is ``labelgate.store.corrections``, re-exported here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from labelgate import lazy

if TYPE_CHECKING:
    from labelgate.stages.review.common import ID_FIELD
    from labelgate.stages.review.corrections import (
        CorrectionsFile,
        CorrectionStats,
        ValidatedCorrections,
        apply_corrections,
        latest_corrections,
        read_corrections,
        read_corrections_file,
        reviewer_accuracy,
        validate_corrections,
    )
    from labelgate.stages.review.export import (
        labeling_config,
        to_csv,
        to_jsonl,
        to_label_studio,
    )
    from labelgate.stages.review.queue import (
        QUEUE_SCHEMA,
        REASONS,
        MixRule,
        review_queue,
    )
    from labelgate.stages.review.queue import uncertainty_scores as uncertainty_scores
    from labelgate.store.corrections import (
        CORRECTIONS_SOURCE,
        load_corrections,
        load_gold_answers,
        store_corrections,
    )
    from labelgate.store.corrections import OVERLAY_SCHEMA as OVERLAY_SCHEMA

# imported on first use: every `labelgate` command imports this package (`labelgate
# review`'s options), and the pipeline's stages import it for `apply_corrections`
_CORRECTIONS = "labelgate.stages.review.corrections"
_QUEUE = "labelgate.stages.review.queue"
_OVERLAY = "labelgate.store.corrections"
__getattr__ = lazy.exports(__name__, {
    "ID_FIELD": "labelgate.stages.review.common",
    **dict.fromkeys(["CorrectionsFile", "CorrectionStats", "ValidatedCorrections",
                     "apply_corrections", "latest_corrections", "read_corrections",
                     "read_corrections_file", "reviewer_accuracy", "validate_corrections"],
                    _CORRECTIONS),
    **dict.fromkeys(["labeling_config", "to_csv", "to_jsonl", "to_label_studio"],
                    "labelgate.stages.review.export"),
    **dict.fromkeys(["QUEUE_SCHEMA", "REASONS", "MixRule", "review_queue",
                     "uncertainty_scores"], _QUEUE),
    **dict.fromkeys(["CORRECTIONS_SOURCE", "load_corrections", "load_gold_answers",
                     "store_corrections", "OVERLAY_SCHEMA"], _OVERLAY),
})

__all__ = [
    "CORRECTIONS_SOURCE",
    "ID_FIELD",
    "QUEUE_SCHEMA",
    "REASONS",
    "CorrectionStats",
    "CorrectionsFile",
    "MixRule",
    "ValidatedCorrections",
    "apply_corrections",
    "labeling_config",
    "latest_corrections",
    "load_corrections",
    "load_gold_answers",
    "read_corrections",
    "read_corrections_file",
    "review_queue",
    "reviewer_accuracy",
    "store_corrections",
    "to_csv",
    "to_jsonl",
    "to_label_studio",
    "validate_corrections",
]
