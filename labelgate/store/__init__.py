"""The store layer: the lake, the DuckDB warehouse, caches, published versions, the
remote store, run context and locks.

- `labelgate.store.run_store.RunStore` (also `labelgate.store.RunStore`): the one object
  the tasks get; `open_run` starts a run with the dataset's lock held.
- `lake`: content-addressed batches of the input files, and cached stage results.
- `warehouse`: DuckDB tables (runs, quarantine, per-row results, metric history).
- `assignments`: sticky split assignments; `corrections`: reviewer overlays.
- `reuse`: saved label-issue results; `remote`: an fsspec store synced with a local copy;
  `locking`: one run per dataset; `runs`: a run's identity and folders.

Submodules are imported on first use, so importing one (e.g. `labelgate.store.lake`)
does not import the others.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from labelgate.store.run_store import RunStore, open_run

__all__ = ["RunStore", "open_run"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from labelgate.store import run_store

        return getattr(run_store, name)
    raise AttributeError(f"module 'labelgate.store' has no attribute {name!r}")
