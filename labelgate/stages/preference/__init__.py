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

__all__ = [
    "JUDGMENT_SCHEMA", "PairCheckResult", "PreferenceAnalysis", "PreferenceSpec", "analyze",
    "check_judgments", "published_pairs", "read_label_studio_pairwise",
    "read_label_studio_ranker", "to_judgments", "trl_records",
]
