"""Reading a spec: `load_spec` (a YAML file), `parse_spec` (a mapping), `json_schema`;
validation errors formatted with the path to the bad key and, for an unknown key, the
keys its section accepts."""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from labelgate.errors import SpecError
from labelgate.spec.model import Spec


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
    problem = _label_studio_items(spec)
    if problem is not None:
        raise SpecError(f"{source}: invalid spec\n  sources.items.format: {problem}")
    spec._base_dir = (base_dir or Path.cwd()).resolve()
    return spec


def _label_studio_items(spec: Spec) -> str | None:
    """Why `sources.items.format: label-studio` does not fit the spec's task or shape."""
    if spec.sources.items.format != "label-studio":
        return None
    if not spec.is_preference:
        return (f"label-studio items are read by task preference only (a Pairwise or Ranker "
                f"export), not task {spec.task}; a classification export is read as "
                "sources.annotations")
    if spec.preference_settings().shape == "binarized":
        return ("a Label Studio export is a Pairwise project (preference.shape: judgments) or "
                "a Ranker project (rankings), not binarized pairs")
    return None


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
    _refuse_expansion(data, source=str(p))
    return parse_spec(data, source=str(p), base_dir=p.resolve().parent)


MAX_SPEC_VALUES = 100_000


def _refuse_expansion(data: Any, *, source: str) -> None:
    """`SpecError` when the loaded YAML holds more than `MAX_SPEC_VALUES` values counted
    with aliases expanded: PyYAML shares an aliased value instead of copying it, but
    validating or printing it walks every copy (an alias bomb of 10^12 strings took 23 GB
    before the kernel killed the run). The count stops at the limit."""
    seen, stack = 0, [data]
    while stack:
        value = stack.pop()
        seen += 1
        if seen > MAX_SPEC_VALUES:
            raise SpecError(
                f"{source}: the spec expands to more than {MAX_SPEC_VALUES:,} values once its "
                f"YAML aliases (*name) are expanded (an alias bomb?); refused unread")
        if isinstance(value, dict):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)


def json_schema() -> dict[str, Any]:
    """The spec's JSON Schema, for editors (`labelgate schema > labelgate.schema.json`)."""
    return Spec.model_json_schema()
