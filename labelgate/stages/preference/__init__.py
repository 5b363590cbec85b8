"""Preference data (task preference): pairwise judgments, binarized pairs and rankings,
checked, agreed on, scored for consistency and swaps, and written for TRL.

No Prefect here: `tasks/preference.py` wraps these for the flow.

- `read`: the three shapes and Label Studio exports -> one judgment frame;
- `checks`: empty, identical (exact, normalised, MinHash near), out-of-set preference,
  over-budget and identical-after-truncation pairs, quarantined with reasons;
- `pairs`: pair keys, consensus, Krippendorff's alpha, percent agreement, leave-one-out
  annotator agreement, position and length bias;
- `consistency`: contradictions, intransitive cycles, Bradley-Terry scores;
- `swaps`: out-of-fold model + cleanlab: probably swapped pairs;
- `analyze`: all of the above for the stage, with metrics and the report section;
- `trl`: the policies for ties and flagged pairs, and TRL's dataset formats;
- `settings`: the spec's `preference:` section.
"""

from __future__ import annotations

import sys
import types
from typing import TYPE_CHECKING, Any

from labelgate import lazy

if TYPE_CHECKING:
    from labelgate.stages.preference.analyze import PreferenceAnalysis, analyze
    from labelgate.stages.preference.checks import PairCheckResult, check_judgments
    from labelgate.stages.preference.read import (
        JUDGMENT_SCHEMA,
        read_label_studio_pairwise,
        read_label_studio_ranker,
        to_judgments,
    )
    from labelgate.stages.preference.settings import PreferenceSpec
    from labelgate.stages.preference.trl import published_pairs, trl_records

# The names below are imported on first use: the spec model imports `settings`, which
# runs this file, and a spec of another task must not pay for scipy (`swaps`, `pairs`).
_EXPORTS = {
    "PreferenceAnalysis": "analyze", "analyze": "analyze",
    "PairCheckResult": "checks", "check_judgments": "checks",
    "JUDGMENT_SCHEMA": "read", "read_label_studio_pairwise": "read",
    "read_label_studio_ranker": "read", "to_judgments": "read",
    "PreferenceSpec": "settings", "published_pairs": "trl", "trl_records": "trl",
}
__getattr__ = lazy.exports(__name__, {k: f"{__name__}.{v}" for k, v in _EXPORTS.items()})

__all__ = [
    "JUDGMENT_SCHEMA", "PairCheckResult", "PreferenceAnalysis", "PreferenceSpec", "analyze",
    "check_judgments", "published_pairs", "read_label_studio_pairwise",
    "read_label_studio_ranker", "to_judgments", "trl_records",
]


class _Package(types.ModuleType):
    """This package's module: `analyze` stays the function when the submodule of that
    name is imported (the import system sets the package's attribute to the submodule),
    as it did when this file imported the function eagerly."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "analyze" and isinstance(value, types.ModuleType):
            value = value.analyze
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
