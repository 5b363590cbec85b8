"""Publishing the clean splits as a new version (only after a passing gate)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl
from prefect import get_run_logger

from labelgate.gate import GateVerdict
from labelgate.spec import Spec
from labelgate.stages import split_step, steps
from labelgate.stages.publish import PublishedVersion, current_version, publish_version
from labelgate.store import RunStore, lake
from labelgate.store.lake import Batch
from tasks import faults
from tasks.common import stage_task


@dataclass(frozen=True)
class PublishOutcome:
    """The version published: its number, folder, rows and splits."""

    section: dict[str, Any]
    metrics: dict[str, float] = field(default_factory=dict)

    def sections(self) -> dict[str, Any]:
        return {"published": self.section}


# no retries: a retry after the rename would publish a second version
@stage_task("publish")
def publish(
    spec: Spec,
    store: RunStore,
    splits: split_step.SplitOutcome,
    verdict: GateVerdict,
    metrics: dict[str, float],
    batches: list[Batch],
) -> PublishOutcome:
    """Write published/<dataset>/v<N>/ and move `current` (only called when the gate passed).

    A write error (disk full, read-only store) leaves no new version folder (publish_version
    removes its temporary folder) and `current` where it was; the error says where it is."""
    root = store.published_root
    try:
        version = _publish_version(spec, store, splits, verdict, metrics, batches)
    except OSError as exc:  # disk full, read-only store...: say what was kept
        now = current_version(root)
        raise OSError(
            exc.errno,
            f"{store.dataset}: publishing failed ({exc}); `current` "
            + (f"points to v{now}" if now is not None else "absent (no version published yet)")
            + ", earlier versions untouched",
        ) from exc
    rows = int(version.manifest["rows"])
    if version.unchanged:
        get_run_logger().info("published content unchanged, current stays v%s (%s)",
                              version.version, version.path)
    else:
        store.record_rows("published", pl.DataFrame(
            {"version": [version.version], "path": [str(version.path)], "rows": [rows]}))
        get_run_logger().info("published v%s at %s", version.version, version.path)
    return PublishOutcome({"version": version.version, "path": str(version.path),
                           "current": str(version.path.parent / "current"), "rows": rows,
                           "splits": version.manifest["splits"],
                           "unchanged": version.unchanged})


def _publish_version(
    spec: Spec, store: RunStore, splits: split_step.SplitOutcome, verdict: GateVerdict,
    metrics: dict[str, float], batches: list[Batch],
) -> PublishedVersion:
    pub = spec.publish
    if pub is None:
        raise ValueError("publish stage called without a publish section")
    return publish_version(
        split_step.split_frames(  # the kept rows' texts and features read back from the lake
            splits.kept, spec=spec, rows=pl.scan_parquet(store.run.curated_dir / "items.parquet")),
        root=store.published_root,
        key_column=spec.columns.id,
        label_column=spec.columns.label,
        run_id=store.run.run_id,
        spec_hash=store.run.spec_hash,
        gate_passed=verdict.passed,
        formats=spec.publish_formats(),
        jsonl_style=steps.jsonl_style(pub.jsonl),
        gate=verdict.to_dict(),
        metrics=metrics,
        lineage=[b.batch for b in batches],
        before_switch=lambda _: faults.fault_point("publish", "switch"),
        card={"name": spec.name, "license": pub.license, "description": pub.description},
        row_prints=lake.cache_dir(store.root, store.dataset, "publish", "row_prints"),
    )


def write_version(
    spec: Spec, store: RunStore, frames: Mapping[str, pl.DataFrame], *, verdict: GateVerdict,
    metrics: dict[str, float], batches: list[Batch], key_column: str,
    formats: Sequence[str] = ("parquet",), extras: Mapping[str, Any] | None = None,
    extra_files: Sequence[tuple[str, pl.DataFrame]] = (),
) -> PublishedVersion:
    """`publish_version` for a task's own publish stage (task preference): the spec's
    card, the gate, the lineage and the crash tests' switch point as `publish` passes them;
    a write error says what was kept; a new version is recorded in the warehouse."""
    pub = spec.publish
    if pub is None:
        raise ValueError("publish stage called without a publish section")
    root = store.published_root
    try:
        version = publish_version(
            frames, root=root, key_column=key_column, label_column=None,
            run_id=store.run.run_id, spec_hash=store.run.spec_hash, gate_passed=verdict.passed,
            formats=formats, gate=verdict.to_dict(), metrics=metrics,
            lineage=[b.batch for b in batches], extras=extras, extra_files=extra_files,
            before_switch=lambda _: faults.fault_point("publish", "switch"),
            card={"name": spec.name, "license": pub.license, "description": pub.description},
        )
    except OSError as exc:  # disk full, read-only store...: say what was kept
        now = current_version(root)
        raise OSError(exc.errno, f"{store.dataset}: publishing failed ({exc}); `current` "
                      + (f"points to v{now}" if now is not None else "absent")
                      + ", earlier versions untouched") from exc
    if not version.unchanged:
        store.record_rows("published", pl.DataFrame(
            {"version": [version.version], "path": [str(version.path)],
             "rows": [int(version.manifest["rows"])]}))
    return version
