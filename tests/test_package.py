"""The library's shape: a curated top-level API, no Prefect below flows/ and tasks/."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import labelgate

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", labelgate.__all__)
def test_every_exported_name_resolves(name: str) -> None:
    assert getattr(labelgate, name) is not None


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        labelgate.nope  # noqa: B018


@pytest.mark.parametrize("layer", ["labelgate", "checks"])
def test_the_library_layers_never_import_prefect(layer: str) -> None:
    hits = [str(p.relative_to(ROOT)) for p in (ROOT / layer).rglob("*.py")
            if any(line.lstrip().startswith(("import prefect", "from prefect"))
                   for line in p.read_text().splitlines())]
    assert hits == []


def test_importing_the_library_and_running_a_stage_loads_no_prefect() -> None:
    code = ("import sys, polars as pl; from labelgate.stages.dedup import find_duplicates; "
            "find_duplicates(pl.DataFrame({'id': ['a', 'b'], 'text': ['x y', 'x y']}), "
            "id_column='id', text_columns=['text']); "
            "print('prefect' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    assert out.stdout.strip() == "False"
