"""task multilabel: several tags per row.

- `settings`: the spec's `multilabel:` section;
- `tags`: the tags column read as lists, and the tag checks (quarantine with reasons);
- `issues`: out-of-fold one-vs-rest probabilities and cleanlab's multi-label issue finding;
- `agreement`: Krippendorff's alpha with the MASI distance and per-tag Cohen's kappa;
- `stratify`: iterative stratification of split units over the tags;
- `stage`: the spec glue the tasks in `tasks/multilabel.py` call.

Imports stay inside the submodules: the spec model imports `settings`.
"""
