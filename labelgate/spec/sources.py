"""The spec's `sources` section: the input files and how their format is found.

`SourceSpec` (items, gold, predictions), `AnnotationSourceSpec` (multi-annotator labels,
long, wide or a Label Studio export) and `Sources`; a file's format is declared or
inferred from its extension (`_format_from_suffix`, checked at parse time by
`_suffix_problem`).
"""

from __future__ import annotations

import glob
from pathlib import Path, PurePath
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from labelgate.errors import SpecError
from labelgate.spec.base import _Model
from labelgate.stages.instructions import Style

Format = Literal["csv", "jsonl", "parquet"]
AnnotationFormat = Literal["csv", "jsonl", "parquet", "label-studio"]
ReadFormat = AnnotationFormat

_FORMAT_BY_SUFFIX: dict[str, Format] = {
    ".csv": "csv",
    ".tsv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}
_LABEL_STUDIO_SUFFIX: dict[str, ReadFormat] = {".json": "label-studio"}
_COMPRESSION_SUFFIXES = (".gz", ".zst")  # read through; the extension before it names the format


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
    max_line_bytes: int | None = Field(
        default=None, gt=0,
        description="JSON Lines: a line longer than this many bytes is rejected (quarantined "
        "with its line number) without being read into memory; unset: no limit.",
    )


class SourceSpec(_FileSource):
    """One input: a file path or a glob, relative to the spec file."""

    format: ReadFormat | None = Field(
        default=None,
        description="csv | jsonl | parquet, inferred from the extension if absent; "
        "label-studio (sources.items of task preference only): a Label Studio JSON export "
        "of a Pairwise or Ranker project, its data fields named by preference.columns.",
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

    @field_validator("gold", "predictions")
    @classmethod
    def _not_label_studio(cls, value: SourceSpec | None, info: ValidationInfo
                          ) -> SourceSpec | None:
        if value is not None and value.format == "label-studio":
            raise ValueError(f"format label-studio: sources.{info.field_name} is a table "
                             "(csv, jsonl, parquet); a Label Studio export is read as "
                             "sources.annotations, or as sources.items by task preference")
        return value

    @model_validator(mode="after")
    def _gold_needs_annotations(self) -> Sources:
        if self.gold is not None and self.annotations is None:
            raise ValueError("gold needs sources.annotations (gold scores the annotators)")
        return self
