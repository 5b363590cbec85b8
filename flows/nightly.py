"""The `nightly` flow: run every dataset spec in a folder, one sub-flow each.

One failing dataset (gate failed, bad input, crash) does not stop the others; after all
have run, the parent fails with the list of datasets that did not pass, so a nightly
alert names them.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger

from flows.pipeline import quality_pipeline


@flow(name="nightly")
def nightly(
    spec_dir: str = "data/examples",
    pattern: str = "*/spec.yaml",
    store: str | None = None,
    dask_address: str | None = None,
) -> dict[str, str]:
    """Run `quality_pipeline` for each spec matching `spec_dir/pattern` (their parts on the
    Dask cluster at `dask_address`, if given); return name -> status."""
    specs = sorted(Path(spec_dir).glob(pattern))
    if not specs:
        raise FileNotFoundError(f"nightly: no spec matches {spec_dir}/{pattern}")
    log = get_run_logger()
    outcome: dict[str, str] = {}
    for spec in specs:
        state = quality_pipeline(str(spec), store, dask_address, return_state=True)
        outcome[str(spec)] = state.type.value.lower()
        log.info("%s: %s %s", spec, state.type.value, state.message or "")
    failed = [s for s, status in outcome.items() if status != "completed"]
    if failed:
        raise RuntimeError(
            f"nightly: {len(failed)} of {len(specs)} dataset(s) did not pass: {', '.join(failed)}"
        )
    return outcome
