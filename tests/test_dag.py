"""The stage declaration (`labelgate.dag`): one list that the flow walks, the CLI lists and
the report's sections follow. A toy stage added as one module plus one declaration line
runs, is listed and reaches the report, with no other file touched."""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from flows.cli import app
from labelgate import dag
from labelgate.spec import parse_spec
from tests.conftest import SpecFactory, spec_dict

TOY_MODULE = '''
"""A toy stage: counts the valid rows whose text is longer than a threshold."""
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from tasks.common import stage_task


@dataclass(frozen=True)
class LongTexts:
    count: int
    metrics: dict[str, float] = field(default_factory=dict)

    def sections(self) -> dict[str, Any]:
        return {"long_texts": {"count": self.count, "threshold": 40}}


@stage_task("count-long-texts")
def count_long_texts(spec, store, contract):
    n = contract.valid.filter(pl.col("text").str.len_chars() > 40).height
    return LongTexts(n, {"long_texts.count": float(n)})
'''


def _with_toy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dag.Stage:
    (tmp_path / "toy_stage.py").write_text(textwrap.dedent(TOY_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    toy = dag.Stage(
        "count-long-texts", "toy_stage:count_long_texts", ("contract",), ("long_texts",),
        doc="rows whose text is over 40 characters", metric_prefix="long_texts",
        summary=lambda report: f"{report['long_texts']['count']} long",
    )
    stages = list(dag.STAGES)
    stages.insert([s.name for s in stages].index("metrics"), toy)
    dag.validate(stages)
    monkeypatch.setattr(dag, "STAGES", stages)
    return toy


def test_the_declaration_is_consistent() -> None:
    dag.validate(dag.STAGES)
    names = [s.name for s in dag.STAGES]
    assert names.index("enforce-contract") < names.index("label-issues") < names.index("splits")
    assert names.index("gate") < names.index("publish") < names.index("report")


def test_validate_refuses_an_input_no_earlier_stage_gives() -> None:
    bad = [dag.Stage("a", "m:f", ("nothing",), ("x",))]
    with pytest.raises(ValueError, match=r"stage 'a' reads \['nothing'\], which no earlier"):
        dag.validate(bad)
    with pytest.raises(ValueError, match="declared twice"):
        dag.validate([dag.Stage("a", "m:f"), dag.Stage("a", "m:g")])


@pytest.mark.parametrize(
    ("overrides", "on", "off"),
    [
        ({}, ["ingest", "enforce-contract", "gate", "report"],
         ["canonicalize", "agreement", "label-issues", "dedup", "splits", "publish"]),
        ({"dedup": {}, "splits": {}}, ["dedup", "splits"], ["label-issues", "publish"]),
    ],
)
def test_stages_of_follows_the_spec(tmp_path: Path, overrides: dict[str, object],
                                    on: list[str], off: list[str]) -> None:
    runs = dag.stages_of(parse_spec(spec_dict(**overrides), base_dir=tmp_path))
    assert list(runs) == [s.name for s in dag.STAGES]
    assert all(runs[n] for n in on) and not any(runs[n] for n in off)


def test_arguments_skip_a_stage_whose_required_input_is_missing() -> None:
    stage = dag.Stage("s", "m:f", ("a", "b?"), ("c",))
    assert stage.arguments({"a": 1}) == {"a": 1, "b": None}
    assert stage.arguments({"b": 2}) is None


@pytest.mark.flow
@pytest.mark.usefixtures("prefect_server")
def test_a_toy_stage_runs_is_listed_and_reports(
    make_spec: SpecFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.pipeline import quality_pipeline

    _with_toy(tmp_path, monkeypatch)
    spec = make_spec()
    checked = CliRunner().invoke(app, ["check", str(spec)])
    assert checked.exit_code == 0, checked.output
    assert "store → count-long-texts → metrics" in checked.output

    report = quality_pipeline(str(spec))
    assert report["long_texts"] == {"count": 60, "threshold": 40}
    assert report["metrics"]["long_texts.count"] == 60.0
    folder = Path(report["paths"]["report"])
    assert json.loads((folder / "report.json").read_text())["long_texts"]["count"] == 60
    md = (folder / "report.md").read_text()
    # its section comes where its stage is declared: after the fixed part, before the
    # metrics; shown by the generic view (no renderer was written for it)
    assert md.index("## Classes") < md.index("## long texts") < md.index("## All metrics")
    assert "- count: 60" in md.split("## long texts", 1)[1]
    html = (folder / "report.html").read_text()
    assert "long texts" in html and ">60<" in html.split("long texts", 1)[1]


def test_releases_keep_each_value_until_its_last_reader(tmp_path: Path) -> None:
    spec = parse_spec(spec_dict(label_issues={"method": "cross_validated"}, dedup={},
                                splits={}, publish={}), base_dir=tmp_path)
    rel = dag.releases(spec)
    # dedup is the last to read the contract in full (the splits read it in brief: publish
    # reads the texts from the lake); the splits the last to read the label issues (in
    # brief) and the dedup clusters; the metrics and report the contract and results in brief
    assert rel["dedup"].to_brief == {"contract"}
    assert rel["splits"].to_brief == {"dedup"}
    assert rel["splits"].to_drop == {"dedup", "label_issues"}
    assert rel["label-issues"].to_brief == {"label_issues"}
    assert rel["gate"].to_drop == {"metric_details"}
    # a value no stage reads (its brief is in `results`) goes right after its stage
    assert rel["publish"].to_drop == {"splits", "published"}
    assert rel["report"].to_drop == {"batches", "metrics", "stored", "abandoned"}
    # what the flow reads itself stays to the end
    dropped = set().union(*(r.to_drop for r in rel.values()))
    assert not dropped & dag.FLOW_READS
    assert set(rel) == {n for n, on in dag.stages_of(spec).items() if on}


def test_releases_follow_the_stages_a_spec_runs(tmp_path: Path) -> None:
    spec = parse_spec(spec_dict(dedup={}), base_dir=tmp_path)  # no splits, no publish
    rel = dag.releases(spec)
    assert rel["dedup"].to_brief == {"contract", "dedup"}
    assert rel["dedup"].to_drop == {"dedup"}
    assert "splits" not in rel
    extra = dag.Stage("late", "m:f", ("contract", "stored"), ("late",),
                      in_brief=("stored",))
    stages = [*dag.STAGES]
    stages.insert([s.name for s in stages].index("report"), extra)
    rel = dag.releases(spec, stages)
    assert rel["late"].to_brief == {"contract", "late"} and "late" in rel["late"].to_drop
    assert "contract" not in rel["dedup"].to_brief


@dataclass(frozen=True)
class _Rows:
    """A toy stage result with per-row data and a brief without it."""

    rows: tuple[int, ...]
    metrics: dict[str, float]

    def sections(self) -> dict[str, Any]:
        return {"toy": {"n": len(self.rows)}}

    def brief(self) -> _Rows:
        return _Rows((), self.metrics)


SEEN: dict[str, Any] = {}


def _give(spec: Any, store: Any) -> _Rows:
    return _Rows((1, 2, 3), {"toy.n": 3.0})


def _read_full(spec: Any, store: Any, x: _Rows) -> int:
    SEEN["full"] = x.rows
    return len(x.rows)


def _read_brief(spec: Any, store: Any, x: _Rows, results: dict[str, Any]) -> str:
    SEEN["brief"] = x.rows
    SEEN["results"] = {k: (v.rows, v.metrics) for k, v in results.items()}
    return "done"


def test_the_flow_hands_each_stage_what_it_reads_and_lets_the_rest_go(tmp_path: Path) -> None:
    from flows.pipeline import run_stages

    here = __name__  # the module pytest imported (its SEEN)
    stages = [
        dag.Stage("give", f"{here}:_give", (), ("x",)),
        dag.Stage("full", f"{here}:_read_full", ("x",), ("n",)),
        dag.Stage("brief", f"{here}:_read_brief", ("x", "results"), ("report",),
                  in_brief=("x",)),
    ]
    dag.validate(stages)
    spec = parse_spec(spec_dict(), base_dir=tmp_path)
    SEEN.clear()
    values = run_stages(spec, None, stages, abandoned=[])  # type: ignore[arg-type]
    assert SEEN["full"] == (1, 2, 3)  # its last full reader gets every row
    assert SEEN["brief"] == ()  # a reader in brief comes after: the rows are gone
    assert SEEN["results"] == {"x": ((), {"toy.n": 3.0})}
    # n and x have no reader left; the report is the flow's own, abandoned the flow gave
    assert values == {"abandoned": [], "report": "done"}
