"""The top-level spec model, `Spec`: one dataset's sources, columns, contract, stage
sections and gate, with the checks that span sections and the helpers stages call."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import ConfigDict, Field, PrivateAttr, field_validator, model_validator

from labelgate.gate import DIMENSION_PREFIX, GATE_CHECKS, dimension_checks, gate_check
from labelgate.spec.base import _Model
from labelgate.spec.contract import ColumnContract, Columns
from labelgate.spec.sources import Sources
from labelgate.spec.stages import (
    _INSTRUCTION_FORMATS,
    _PUBLISH_FORMATS,
    AgreementSpec,
    DedupSpec,
    LabelIssuesSpec,
    PublishFormat,
    PublishSpec,
    SplitsSpec,
)
from labelgate.stages.dimensions.settings import DimensionSpec, check_dimensions
from labelgate.stages.instructions import CANONICAL_SCHEMA, InstructionColumns, SftRules
from labelgate.stages.multilabel.settings import MultilabelSpec
from labelgate.stages.preference.settings import PreferenceSpec
from labelgate.stages.spans.settings import SpansSpec


def _gate_schema(schema: dict[str, Any]) -> None:
    schema["propertyNames"] = {"enum": sorted([*GATE_CHECKS, "dimensions"])}
    schema["properties"] = {"dimensions": {
        "type": "object", "description": "task dimensions: thresholds per label dimension "
        "(a name under labels), by check name",
        "additionalProperties": {"type": "object", "additionalProperties": {"type": "number"},
                                 "propertyNames": {"enum": dimension_checks()}}}}
    schema["description"] = "Gate thresholds by check name: " + "; ".join(
        f"{c.name}: {c.description}" for c in GATE_CHECKS.values()
    ) + ". task dimensions: `dimensions: {<dimension>: {<check>: threshold}}` sets " \
        "checks per label dimension (" + ", ".join(dimension_checks()) + ")."


def _flat_gate(gate: Any) -> Any:
    """``gate.dimensions.<dimension>.<check>`` as the flat key
    ``dimensions.<dimension>.<check>`` (what `labelgate.gate.gate_check` reads)."""
    if not isinstance(gate, dict) or not isinstance(gate.get("dimensions"), dict):
        return gate
    out = {k: v for k, v in gate.items() if k != "dimensions"}
    for dimension, checks in gate["dimensions"].items():
        if not isinstance(checks, dict):
            raise ValueError(f"gate.dimensions.{dimension}: a mapping of check name to "
                             f"threshold, got {checks!r}")
        out |= {f"{DIMENSION_PREFIX}{dimension}.{name}": v for name, v in checks.items()}
    return out


class Spec(_Model):
    """One dataset: where it is, what it must look like, and when it is good enough."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="labelgate spec")

    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$",
        description="Dataset name; lake, report and published paths use it.",
    )
    task: Literal["classification", "instruction", "preference", "multilabel", "spans",
                  "dimensions"] = Field(
        default="classification",
        description="classification | instruction (instruction-response pairs for SFT) | "
        "preference (pairwise judgments, binarized pairs or rankings for RLHF/DPO; the "
        "preference section says how they are read) | multilabel (several tags per row; the "
        "multilabel section names the tags column) | spans (entity spans over a text; the "
        "spans section names the spans column) | dimensions (several label columns, each "
        "nominal, ordinal or interval: the labels section names them).",
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
    preference: PreferenceSpec | None = Field(
        default=None,
        description="task preference: the shape and columns of the judgments, their checks, "
        "the swapped-pair model and what is published for TRL (defaults apply when absent).",
    )
    multilabel: MultilabelSpec | None = Field(
        default=None,
        description="task multilabel: the tags column, the allowed tags and how many a row "
        "may have, label issues and stratified splits (defaults apply when absent).",
    )
    spans: SpansSpec | None = Field(
        default=None,
        description="task spans: the spans column, allowed entity types and overlaps, the "
        "token model and the published formats (defaults apply when absent).",
    )
    labels: dict[str, DimensionSpec] = Field(
        default_factory=dict,
        description="task dimensions: the label columns by name, each with its kind "
        "(nominal, ordinal, interval), values or range, error model and flagged-row policy.",
    )
    gate: dict[str, float] = Field(
        default_factory=dict, json_schema_extra=_gate_schema, description="Gate thresholds."
    )

    _base_dir: Path = PrivateAttr(default_factory=Path.cwd)

    @field_validator("gate")
    @classmethod
    def _known_checks(cls, value: dict[str, float]) -> dict[str, float]:
        for name, threshold in value.items():
            check = gate_check(name)
            if check is None and name.startswith(DIMENSION_PREFIX):
                dimension, _, check_name = name[len(DIMENSION_PREFIX):].rpartition(".")
                raise ValueError(
                    f"gate.dimensions.{dimension}: unknown check {check_name!r}; checks per "
                    f"dimension: {', '.join(dimension_checks())}")
            if check is None:
                raise ValueError(
                    f"unknown gate check {name!r}; valid checks: {', '.join(sorted(GATE_CHECKS))}"
                )
            check.validate_threshold(threshold)
        return value

    @model_validator(mode="before")
    @classmethod
    def _gate_dimensions(cls, data: Any) -> Any:
        if isinstance(data, dict) and "gate" in data:
            return {**data, "gate": _flat_gate(data["gate"])}
        return data

    @model_validator(mode="before")
    @classmethod
    def _label_from_consensus(cls, data: Any) -> Any:
        """Classification whose labels come only from annotations (`agreement.apply: true`,
        no columns.label): the consensus is the label, named as the annotations' label."""
        if not isinstance(data, dict) or data.get("task", "classification") != "classification":
            return data
        cols, agreement, sources = data.get("columns"), data.get("agreement"), data.get("sources")
        if not isinstance(cols, dict) or cols.get("label") is not None:
            return data
        if not (isinstance(sources, dict) and sources.get("annotations") is not None
                and isinstance(agreement, dict) and agreement.get("apply") is True):
            return data
        name = agreement.get("label") or "label"
        return {**data, "columns": {**cols, "label": name, "label_from_consensus": True}}

    @model_validator(mode="after")
    def _consensus_label(self) -> Spec:
        cols = self.columns
        if not cols.label_from_consensus:
            return self
        if self.sources.annotations is None or not self.agreement_settings().apply:
            raise ValueError(
                "columns.label_from_consensus: needs sources.annotations and agreement.apply: "
                "true (the consensus is the label)"
            )
        if cols.label in self.contract:
            raise ValueError(
                f"contract.{cols.label}: the label comes from the annotators' consensus, after "
                "the contract; declare the allowed labels in agreement.categories"
            )
        return self

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
        dims = sorted({k.split(".")[1] for k in self.gate if k.startswith(DIMENSION_PREFIX)})
        if self.task != "dimensions" and (self.labels or dims):
            raise ValueError(("labels" if self.labels else "gate.dimensions")
                             + ": applies to task dimensions only")
        if self.task == "preference":
            return self._preference_keys(formats)
        if self.preference is not None:
            raise ValueError("preference: applies to task preference only")
        if self.task == "multilabel":
            return self._multilabel_keys(formats)
        if self.multilabel is not None:
            raise ValueError("multilabel: applies to task multilabel only")
        if self.task == "spans":
            return self._spans_keys(formats)
        if self.spans is not None:
            raise ValueError("spans: applies to task spans only")
        if self.task == "dimensions":
            return self._dimensions_keys(formats)
        if self.task == "classification":
            if cols.label is None:
                raise ValueError(
                    "columns.label: required for task classification (or leave it out and "
                    "set sources.annotations with agreement.apply: true: the annotators' "
                    "consensus is then the label)"
                )
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

    @property
    def is_preference(self) -> bool:
        return self.task == "preference"

    def preference_settings(self) -> PreferenceSpec:
        """task preference: the `preference` section, or its defaults."""
        return self.preference if self.preference is not None else PreferenceSpec()

    def _preference_keys(self, formats: list[PublishFormat]) -> Spec:
        """task preference: the preference section names the data's columns; no label."""
        cols = self.columns
        named = (("columns.label", cols.label), ("columns.instruction", cols.instruction),
                 ("sources.items.style", self.sources.items.style), ("sft", self.sft),
                 ("sources.annotations", self.sources.annotations),
                 ("agreement", self.agreement), ("label_issues", self.label_issues),
                 ("columns.text", cols.text or None), ("columns.features", cols.features or None))
        extra = [k for k, v in named if v is not None]
        extra += [f"publish.formats {f}" for f in formats if f != "parquet"]
        if extra:
            raise ValueError(
                f"{', '.join(extra)}: not used by task preference (the judgments carry their "
                "annotators and the preference section names their columns; the TRL files are "
                "preference.publish.formats)")
        if self.splits is not None and self.dedup is None:
            raise ValueError(
                "splits: task preference needs a dedup section (a prompt and its "
                "near-duplicates are one split unit): add `dedup: {}`")
        if self.dedup is not None and self.dedup.keep != "all":
            raise ValueError("dedup.keep: task preference keeps every judgment of a prompt "
                             "(all); duplicates group the prompts into split units")
        return self

    def _not_used(self, formats: list[PublishFormat], allowed: tuple[str, ...]) -> list[str]:
        """The single-label and instruction keys set in a multilabel, spans or dimensions
        spec, and the publish formats outside `allowed`."""
        cols = self.columns
        named = (("columns.label", cols.label), ("columns.instruction", cols.instruction),
                 ("sources.items.style", self.sources.items.style), ("sft", self.sft),
                 ("label_issues", self.label_issues))
        extra = [k for k, v in named if v is not None]
        return extra + [f"publish.formats {f}" for f in formats if f not in allowed]

    def _multilabel_keys(self, formats: list[PublishFormat]) -> Spec:
        """task multilabel: the tags column is multilabel.column; the text is columns.text."""
        cols = self.columns
        extra = self._not_used(formats, ("parquet", "jsonl"))
        if extra:
            raise ValueError(
                f"{', '.join(extra)}: not used by task multilabel (the tags column is "
                "multilabel.column; label issues are multilabel.issues)")
        if not cols.text:
            raise ValueError("columns.text: task multilabel needs the text the tags are about")
        ann = self.sources.annotations
        if ann is not None and ann.is_label_studio():
            raise ValueError("sources.annotations: task multilabel reads long annotations "
                             "(item, annotator, tags), not a label-studio export")
        return self

    def _spans_keys(self, formats: list[PublishFormat]) -> Spec:
        """task spans: the offsets index the one text column; the spans are spans.column."""
        cols = self.columns
        extra = self._not_used(formats, ("parquet",))
        if extra:
            raise ValueError(
                f"{', '.join(extra)}: not used by task spans (the spans column is "
                "spans.column; label issues are spans.issues; the span files are "
                "spans.formats)")
        if len(cols.text) != 1:
            raise ValueError("columns.text: task spans needs exactly one text column (the "
                             f"one the offsets index), got {cols.text}")
        ann = self.sources.annotations
        if ann is not None and ann.is_label_studio():
            raise ValueError("sources.annotations: task spans reads rows (item, annotator, "
                             "spans); convert a Label Studio export with "
                             "`python -m labelgate.stages.spans.convert`")
        return self

    def _dimensions_keys(self, formats: list[PublishFormat]) -> Spec:
        """task dimensions: the label columns are the labels section; the text is
        columns.text; gate.dimensions names only those columns."""
        cols = self.columns
        extra = self._not_used(formats, ("parquet", "jsonl"))
        if self.publish is not None and self.publish.filter:
            extra.append("publish.filter")
        if extra:
            raise ValueError(
                f"{', '.join(extra)}: not used by task dimensions (the label columns are the "
                "labels section; each dimension's label issues are labels.<name>.issues)")
        labels = self.dimension_settings()
        check_dimensions(labels)
        relabel = [n for n, d in labels.items() if d.flagged is None]
        if self.splits is not None and self.splits.flagged == "relabel" and relabel:
            raise ValueError(f"labels.{relabel[0]}: splits.flagged relabel is for single "
                             "labels; give each dimension its own flagged: drop, "
                             "drop_from_test or keep")
        if not cols.text:
            raise ValueError("columns.text: task dimensions needs the text the labels are about")
        clash = [d for d in labels if d in (cols.id, cols.group, *cols.text, *cols.features)]
        if clash:
            raise ValueError(f"labels: {clash} also named in columns")
        unknown = sorted({k[len(DIMENSION_PREFIX):].rpartition(".")[0] for k in self.gate
                          if k.startswith(DIMENSION_PREFIX)} - set(labels))
        if unknown:
            raise ValueError(f"gate.dimensions: {unknown} not under labels (the dimensions "
                             f"are {sorted(labels)})")
        ann = self.sources.annotations
        if ann is not None and (ann.is_label_studio() or ann.wide is not None):
            raise ValueError("sources.annotations: task dimensions reads long annotations "
                             "(item, annotator, one column per dimension)")
        return self

    def dimension_settings(self) -> dict[str, DimensionSpec]:
        """task dimensions: the `labels` section (label column -> its settings)."""
        return dict(self.labels)

    @property
    def is_dimensions(self) -> bool:
        return self.task == "dimensions"

    def spans_settings(self) -> SpansSpec:
        """task spans: the `spans` section, or its defaults."""
        return self.spans if self.spans is not None else SpansSpec()

    @property
    def is_spans(self) -> bool:
        return self.task == "spans"

    def multilabel_settings(self) -> MultilabelSpec:
        """task multilabel: the `multilabel` section, or its defaults."""
        return self.multilabel if self.multilabel is not None else MultilabelSpec()

    @property
    def is_multilabel(self) -> bool:
        return self.task == "multilabel"

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
        if self.is_preference:
            return ["prompt"]
        return self.columns.text or self.columns.features

    def model_text_columns(self) -> list[str]:
        """The text columns the label-issue model reads (none: a features-only model)."""
        return self.text_columns() if self.is_instruction else list(self.columns.text)

    def dedup_columns(self) -> list[str]:
        """What duplicates are found on: prompts for instruction data (a near-duplicate
        prompt is one split unit: no paraphrase of a test prompt in train)."""
        return ["prompt"] if self.is_instruction or self.is_preference else self.text_columns()

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
        if self.columns.label_from_consensus:
            out.append(
                f"no label column in the items: the label {self.columns.label!r} is the "
                f"annotators' {self.agreement_settings().consensus} consensus; items without "
                "one are quarantined"
            )
        if self.is_multilabel:
            ml = self.multilabel_settings()
            how = f"delimited by {ml.delimiter!r}" if ml.delimiter else "a list or JSON array"
            out.append(f"multi-label data, tags column {ml.column!r} ({how}): tag checks, "
                       + ("probable tag errors, " if ml.issues.enabled else "")
                       + ("splits stratified over the tags" if ml.stratify else "splits"))
        if self.is_spans:
            sp = self.spans_settings()
            model = ("the predictions file" if self.sources.predictions is not None
                     else "the built-in token model")
            out.append(f"entity spans, column {sp.column!r}: span checks (overlaps "
                       f"{sp.overlap}), " + (f"probable span errors from {model}"
                                            if sp.issues.enabled else "no span-error model"))
        if self.is_dimensions:
            dims = self.dimension_settings()
            out.append("label dimensions: " + ", ".join(
                f"{n} ({d.kind}{', probable errors' if d.issues.enabled else ''})"
                for n, d in dims.items()) + "; a row flagged on one follows that "
                "dimension's flagged policy")
        if self.is_preference:
            pref = self.preference_settings()
            out.append(f"preference data, shape {pref.shape}: checks, agreement, biases, "
                       "consistency" + (", swapped pairs" if pref.swaps.enabled else ""))
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
        dimension = self.dimension_settings().get(column) if self.is_dimensions else None
        if dimension is not None:
            defaults = _dimension_contract(dimension)
        explicit = self.contract.get(column)
        if explicit is not None:
            defaults.update(explicit.model_dump(exclude_none=True))
        return ColumnContract(**defaults)

    def contracted_columns(self) -> list[str]:
        """Role columns first, then other contracted columns, each once."""
        if self.is_preference:  # the shape's columns (the id column may be absent)
            return self.preference_settings().source_columns()
        cols = self.columns.required()
        if self.is_multilabel:
            cols = [*cols, self.multilabel_settings().column]
        if self.is_spans:
            cols = [*cols, self.spans_settings().column]
        if self.is_dimensions:
            cols = [*cols, *self.dimension_settings()]
        return cols + [c for c in self.contract if c not in cols]

    def fingerprint(self) -> str:
        """Hash of the spec's content (key order and formatting do not matter)."""
        data = self.model_dump(mode="json")
        if not data.get("labels"):  # a spec without label dimensions hashes as before them
            data.pop("labels", None)
        blob = json.dumps(data, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def _dimension_contract(dimension: DimensionSpec) -> dict[str, Any]:
    """The contract a label dimension implies: nulls only when nullable; the values (nominal,
    ordinal) or the range (interval), as the column's dtype."""
    out: dict[str, Any] = {"nullable": dimension.nullable}
    if dimension.kind == "interval":
        out["dtype"] = "float"
        out |= {k: v for k, v in (("min", dimension.min), ("max", dimension.max))
                if v is not None}
    elif dimension.values is not None:
        out["dtype"] = "int" if isinstance(dimension.values[0], int) else "str"
        out["isin"] = list(dimension.values)
    return out
