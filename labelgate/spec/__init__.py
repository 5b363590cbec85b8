"""The dataset spec: one YAML file, parsed by a strict pydantic v2 model.

A wrong spec fails before any data is read, with the file, the path to the bad key and
what was expected (`SpecError`). Paths in a spec are relative to the spec file.

Modules: ``model`` (`Spec`, the top level), ``sources`` (the `sources` section),
``contract`` (`columns` and `contract`), ``stages`` (agreement, label issues, dedup,
splits, publish), ``load`` (`load_spec`, `parse_spec`, error messages, `json_schema`),
``base`` (the sections' common pydantic base). Every public name is re-exported here.
"""

from __future__ import annotations

from labelgate.spec.contract import ColumnContract, Columns, DType, StrLength
from labelgate.spec.load import json_schema, load_spec, parse_spec
from labelgate.spec.model import Spec
from labelgate.spec.sources import (
    AnnotationFormat,
    AnnotationSourceSpec,
    AnySource,
    Format,
    ReadFormat,
    Sources,
    SourceSpec,
)
from labelgate.spec.stages import (
    AgreementSpec,
    Bootstrap,
    DedupSpec,
    EmbeddingsSpec,
    JsonlSpec,
    LabelIssueFilter,
    LabelIssuesSpec,
    Level,
    NearDupSpec,
    PublishFormat,
    PublishSpec,
    SplitName,
    SplitsSpec,
)

__all__ = [
    "AgreementSpec",
    "AnnotationFormat",
    "AnnotationSourceSpec",
    "AnySource",
    "Bootstrap",
    "ColumnContract",
    "Columns",
    "DType",
    "DedupSpec",
    "EmbeddingsSpec",
    "Format",
    "JsonlSpec",
    "LabelIssueFilter",
    "LabelIssuesSpec",
    "Level",
    "NearDupSpec",
    "PublishFormat",
    "PublishSpec",
    "ReadFormat",
    "SourceSpec",
    "Sources",
    "Spec",
    "SplitName",
    "SplitsSpec",
    "StrLength",
    "json_schema",
    "load_spec",
    "parse_spec",
]
