"""The spec's `columns` and `contract` sections: column roles and per-column rules.

`Columns` says which column is the id, text, features, label, group; `ColumnContract` is
what one column must look like (dtype, nulls, uniqueness, allowed values, range, length,
regex), its values checked against the dtype the way the contract casts CSV text.
"""

from __future__ import annotations

import functools
from typing import Any, Literal

import polars as pl
from pydantic import Field, ValidationInfo, field_validator, model_validator

from labelgate.spec.base import _Model
from labelgate.stages.instructions import InstructionColumns

DType = Literal["str", "int", "float", "bool"]


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
    label_from_consensus: bool = Field(
        default=False,
        description="The label is the annotators' consensus, not a column of the items: "
        "needs sources.annotations and agreement.apply: true. Set for you when columns.label "
        "is left out of such a spec (the label is then named as agreement.label). Items "
        "without a consensus are quarantined (check `consensus`).",
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
        """Every column the items must have, in a stable order (a label that comes from the
        annotators' consensus is not one of them)."""
        label = None if self.label_from_consensus else self.label
        cols = [self.id, *self.text, *self.features]
        return cols + [c for c in (label, self.group) if c is not None]


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
