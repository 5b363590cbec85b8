"""The reliability battery (issue 27): every malformed input, fault and hostile input of
docs/reliability.md through the real `labelgate run`, with nothing lost.

    .venv/bin/python bench/battery.py [--jobs 2] [--only SUBSTRING] [--no-docs] [--keep]

One real Prefect server on 127.0.0.1 (its own PREFECT_HOME, analytics off) serves every
run (PREFECT_API_URL) and is stopped by its PID at the end; cases run `--jobs` at a time
(2 at most on a 2-core machine), each in a copy of a base project whose store published
v1. Each case checks the exit code and the message, accounts for every record of its input
(valid, quarantined with a reason, rejected with its line, or refused with the file
named), checks that the published version is untouched by a run that did not pass, and
that the next clean run passes. Prints the table (case, outcome, rows in, accounted for,
lost) and writes it into docs/reliability.md between the battery markers. Exit 1 when a
case fails or a row is lost.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.battery_cases import faults, hostile, inputs  # noqa: E402
from bench.battery_cases.cases import run_input_case, run_shared_input_cases  # noqa: E402
from bench.battery_cases.harness import (  # noqa: E402
    Outcome,
    make_base,
    start_server,
    timed,
    workdir,
)
from bench.battery_cases.report import markdown, print_table, write_docs  # noqa: E402

DOC = ROOT / "docs" / "reliability.md"
GROUPS = ["CSV", "JSONL", "Parquet", "compressed", "annotations", "kill", "disk full",
          "concurrency", "remote", "hostile"]


def _plan(bases: dict[str, Path], work: Path, api_url: str, only: str | None
          ) -> list[tuple[str, Callable[[], list[Outcome]]]]:
    """(what runs, the call that runs it: outcomes in the table's order) for every case
    whose name contains `only`; the cases that share a run first."""
    cases = [c for c in [*inputs.CASES, *hostile.INPUT_CASES] if only is None or only in c.name]
    shared = [c for c in cases if c.shares_a_run]
    plan: list[tuple[str, Callable[[], list[Outcome]]]] = []
    if shared:
        plan.append((f"{len(shared)} input cases in one run", partial(
            run_shared_input_cases, shared, base=bases["light"], work=work, api_url=api_url)))
    plan += [(c.name, _one(partial(run_input_case, c, base=bases["light"], work=work,
                                   api_url=api_url)))
             for c in cases if not c.shares_a_run]
    plan += [(name, partial(fn, bases=bases, work=work, api_url=api_url))
             for name, fn in faults.CHAINS if only is None or only in "SIGKILL at"]
    plan += [(name, _one(partial(fn, bases=bases, work=work, api_url=api_url)))
             for name, fn in [*faults.CASES, *hostile.CASES] if only is None or only in name]
    return _longest_first(plan)


def _longest_first(plan: list[tuple[str, Callable[[], list[Outcome]]]]
                   ) -> list[tuple[str, Callable[[], list[Outcome]]]]:
    """The kill sequences (a dozen runs each) start first, so that the two workers finish
    together; the table keeps the order of `_plan`."""
    return sorted(plan, key=lambda item: not item[0].startswith("kills from"))


def _one(fn: Callable[[], Outcome]) -> Callable[[], list[Outcome]]:
    return lambda: [timed(fn)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2, help="cases at a time (default 2)")
    parser.add_argument("--only", default=None, help="run the cases whose name contains this")
    parser.add_argument("--no-docs", action="store_true", help="do not write the docs table")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    work = workdir()
    started = time.monotonic()
    load_before = os.getloadavg()
    server = start_server(work)
    try:
        with ThreadPoolExecutor(max_workers=max(1, min(args.jobs, 2))) as pool:
            light = pool.submit(make_base, work, "base-light", server.url)
            full = pool.submit(make_base, work, "base-full", server.url, full=True)
            bases = {"light": light.result(), "full": full.result()}
            plan = _plan(bases, work, server.url, args.only)
            futures = [pool.submit(fn) for _, fn in plan]
            outcomes: list[Outcome] = []
            for future in futures:
                for outcome in future.result():
                    outcomes.append(outcome)
                    mark = "ok  " if outcome.passed else "FAIL"
                    print(f"{mark} {outcome.case} ({outcome.seconds:.0f} s)", flush=True)
    finally:
        server.stop()
    seconds = time.monotonic() - started
    load_after = os.getloadavg()
    outcomes.sort(key=lambda o: GROUPS.index(o.group) if o.group in GROUPS else len(GROUPS))
    print_table(outcomes)
    context = (f"`make battery` on {datetime.now(UTC):%Y-%m-%d}, {platform.node()} "
               f"({os.cpu_count()} cores, {platform.machine()}, Python "
               f"{platform.python_version()}), --jobs {args.jobs}: {seconds:.0f} s; "
               f"load average {load_before[0]:.1f} before, {load_after[0]:.1f} after")
    print(context)
    if not args.no_docs and args.only is None:
        write_docs(DOC, markdown(outcomes, context=context))
    if args.keep:
        print(f"work folder kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    failed = [o for o in outcomes if not o.passed]
    for o in failed:
        print(f"FAILED {o.case}: lost {o.lost}; " + "; ".join(o.problems))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
