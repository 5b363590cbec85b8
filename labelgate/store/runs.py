"""A run's identity and where its outputs go in the store."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from labelgate.store.warehouse import WAREHOUSE_FILE


@dataclass(frozen=True)
class RunContext:
    """Everything a stage needs to know about the run it is part of."""

    run_id: str
    dataset: str
    spec_path: str
    spec_hash: str
    store: str  # the local folder the stages read and write
    started_at: datetime
    remote: str | None = None  # the store URL `store` is the working copy of, if remote

    @property
    def store_dir(self) -> Path:
        return Path(self.store)

    @property
    def warehouse(self) -> Path:
        return self.store_dir / WAREHOUSE_FILE

    @property
    def report_dir(self) -> Path:
        return reports_root(self.store_dir, self.dataset) / self.run_id

    @property
    def curated_dir(self) -> Path:
        return self.store_dir / "curated" / self.dataset / f"run={self.run_id}"


def reports_root(store: Path, dataset: str) -> Path:
    return store / "reports" / dataset


def new_run(
    *, dataset: str, spec_path: str, spec_hash: str, store: Path, remote: str | None = None
) -> RunContext:
    """A new run id: UTC timestamp (sorts by time) and a random suffix (unique)."""
    now = datetime.now(UTC)
    run_id = now.strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)
    return RunContext(
        run_id=run_id,
        dataset=dataset,
        spec_path=spec_path,
        spec_hash=spec_hash,
        store=str(store),
        started_at=now,
        remote=remote,
    )
