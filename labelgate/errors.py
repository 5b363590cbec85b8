"""Error types users see. Every message says what was observed, what was expected, and where."""

from __future__ import annotations


class LabelgateError(Exception):
    """Base class: a problem with the spec or the input data (CLI exit code 2)."""


class SpecError(LabelgateError):
    """The spec file is malformed: names the file and the key path."""


class InputError(LabelgateError):
    """An input file cannot be used: names the file and the row or column."""


class GateFailedError(Exception):
    """The quality gate failed (CLI exit code 1). Not a LabelgateError: the input was usable."""


class RunLockedError(LabelgateError):
    """Another run of the same dataset holds its lock (CLI exit code 2): names the holder."""
