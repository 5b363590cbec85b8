"""Package names imported on first use, so that importing one submodule of a package (the
spec model imports `labelgate.stages.preference.settings`) does not import the others and
their libraries."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def exports(package: str, names: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for `package`: ``names`` maps each public name to the module
    that defines it (absolute); any other name raises AttributeError, so that
    ``from package import submodule`` still imports the submodule."""

    def getattr_(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module), name)

    return getattr_
