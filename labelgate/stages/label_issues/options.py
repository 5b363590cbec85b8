"""The label-issue stage's option values, in a module that imports nothing heavy (the
report and the spec read them without loading the model libraries)."""

from __future__ import annotations

METHODS = ("cross_validated", "predictions", "multiannotator")
# How the confident joint (counts of given label i, true label j) is scaled to the dataset
# (`detect.find_label_issues`'s ``joint_calibration``)
JOINT_CALIBRATIONS = ("auto", "per_class", "posterior", "cleanlab")
COUNTING_CALIBRATIONS = ("per_class", "posterior")
# filters that cut a ranking (with per_class or posterior: as many rows as the joint says are
# mislabelled)
RANKED_FILTERS = ("low_self_confidence", "low_normalized_margin")
# filters whose number of flags comes from the joint (per-pair pruning or a ranked cut)
JOINT_COUNTED_FILTERS = ("both", "prune_by_noise_rate", "prune_by_class", *RANKED_FILTERS)
FILTERS = ("auto", "prune_by_noise_rate", "prune_by_class", "both", "confident_learning",
           "predicted_neq_given", "low_self_confidence", "low_normalized_margin")
