"""What a run's flow will import and set up anyway, done before the flow starts.

`labelgate run` calls `warm(spec)` while Prefect's temporary server boots in its own
process (`flows.server`): the command's core would otherwise wait idle, and each module
loaded here is one the flow does not load after the server answers. Only what the flow of
*this* spec certainly uses: Prefect's flow and task engines, the tasks of the stages the
spec runs (`labelgate.dag`), and the libraries those stages import when they run
(`RUNTIME`). Nothing speculative: a model library that only a fit would need (a rerun on
unchanged data reuses its label issues, a night scores with kept models) is loaded only
when the fit is certain: the dataset's first run in its store (`FIT`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from pathlib import Path

from labelgate import dag
from labelgate.spec import Spec
from labelgate.store.runs import reports_root

# imported by every flow call: Prefect's engines, FastAPI's encoder (the flow's
# parameters), the flow module and Prefect's flow-graph helpers; then `run`'s live display
FLOW = ("prefect.flow_engine", "prefect.task_engine", "fastapi.encoders", "flows.pipeline",
        "prefect.utilities.visualization")
COMMAND = ("flows.live",)


def _report() -> None:
    from labelgate.report import plots, render

    plots.warm()
    render.warm()


# what a stage imports or sets up when it runs, beyond its task module: modules to import
# and set-ups to call (module:function), by stage name; tests/test_fixed_cost.py checks that
# a run of each stage does import these
RUNTIME: Mapping[str, tuple[str, ...]] = {
    # clusters: connected components; the warehouse's rows go in through Arrow
    "dedup": ("scipy.sparse.csgraph", "pyarrow"),
    "splits": ("scipy.sparse.csgraph", "pyarrow"),  # units: connected components over links
    "report": ("labelgate.report.plots",),  # matplotlib, its SVG backend
}
SETUP: Mapping[str, Callable[[], None]] = {
    "report": _report,  # fonts loaded, one plot drawn; the templates compiled
}


# what the label-issue stage's training run imports (scikit-learn's folds and linear
# models, cleanlab's counts and filters): warmed only for a dataset's first run in a store,
# which has nothing to reuse or score with, and only when no external predictions replace
# the model
FIT = ("sklearn.model_selection", "sklearn.linear_model", "cleanlab.filter")


def first_fit(spec: Spec, store: Path | None) -> bool:
    """Whether a run of `spec` into `store` certainly trains the label-issue models: the
    stage runs, no predictions source replaces them, and the store holds no run of the
    dataset yet (no reports folder). False when the store is unknown (a remote URL)."""
    if store is None or spec.sources.predictions is not None:
        return False
    runs = any(s.name == "label-issues" and s.when(spec) for s in dag.STAGES)
    return runs and not reports_root(store, spec.name).exists()


def modules_for(spec: Spec, store: Path | None = None) -> list[str]:
    """The modules `warm` imports for `spec` run into `store` (None: not known), in order,
    each once."""
    names = [*FLOW, *COMMAND]
    for stage in dag.STAGES:
        if stage.when(spec):
            names.append(stage.task.partition(":")[0])
            names.extend(RUNTIME.get(stage.name, ()))
    if first_fit(spec, store):
        names.extend(FIT)
    return list(dict.fromkeys(names))


def warm(spec: Spec, store: Path | None = None) -> list[str]:
    """Import what the flow of `spec` into `store` will import (`modules_for`) and run the
    set-ups of its stages (`SETUP`); returns the modules' names."""
    names = modules_for(spec, store)
    for name in names:
        importlib.import_module(name)
    for stage in dag.STAGES:
        setup = SETUP.get(stage.name)
        if setup is not None and stage.when(spec):
            setup()
    return names
