"""The README's "What it survives" table, from the reliability tests' own results.

`pytest` (tests/conftest.py) records every case of the reliability batteries
(tests/test_bad_input.py, test_properties.py, test_crash.py, test_concurrency.py) with its
outcome in build/survival.json; this script turns that file into Markdown:

    .venv/bin/python -m pytest -q tests/test_bad_input.py tests/test_properties.py \
        tests/test_crash.py tests/test_concurrency.py
    .venv/bin/python scripts/survival_report.py [build/survival.json] > survival.md

"Rows lost" is 0 for a case that passed: each of these tests asserts that every input row
is valid, quarantined with a reason or excluded by a named policy (or that the input is
refused with an error naming it, nothing written), and the crash tests that a published
version's rows match its manifest. A case that did not pass shows "not verified".
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any

DEFAULT = Path(__file__).resolve().parents[1] / "build" / "survival.json"
BATTERY_ORDER = ["bad input", "bad input (properties)", "crashes", "concurrency"]


def _variant(case: str, test: str) -> str | None:
    return case[len(test) + 1:-1] if case.startswith(test + "[") else None


def _variants(ids: list[str]) -> str:
    """The parametrize ids when short and readable, else how many there are."""
    if not ids:
        return "—"
    readable = all(
        len(i) <= 45 and not re.search(r'[\\,"]', i)
        and not any(re.fullmatch(r"[a-z_]+[0-9]+", part) for part in i.split("-"))
        for i in ids
    )
    if readable:
        return ", ".join(ids)
    return f"{len(ids)} variants"


def _title(test: str) -> str:
    return test.removeprefix("test_").replace("_", " ")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render(cases: list[dict[str, Any]]) -> str:
    """A summary line and one table row per test function (its variants listed)."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for c in cases:
        groups.setdefault((c["battery"], c["module"], c["test"]), []).append(c)
    order = {b: i for i, b in enumerate(BATTERY_ORDER)}
    outcomes = Counter(c["outcome"] for c in cases)
    passed = outcomes.get("passed", 0)
    skipped = outcomes.get("skipped", 0)
    failed = len(cases) - passed - skipped
    lines = [
        f"{len(cases)} cases (a hypothesis property counts once) in {len(groups)} tests: "
        f"{passed} passed, {failed} failed, {skipped} skipped; rows lost: "
        + ("0" if failed == 0 else "not verified for the failed cases") + ".",
        "",
        "| battery | case | variants | outcome | rows lost |",
        "|---|---|---|---|---|",
    ]
    for (battery, _, test), members in sorted(
        groups.items(), key=lambda kv: (order.get(kv[0][0], 99), kv[0][1])
    ):
        variants = [v for v in (_variant(m["case"], test) for m in members) if v]
        ok = sum(m["outcome"] == "passed" for m in members)
        skip = sum(m["outcome"] == "skipped" for m in members)
        if ok == len(members):
            outcome, lost = "survives", "0"
        elif ok + skip == len(members):
            outcome, lost = f"{skip} skipped", "0" if ok else "—"
        else:
            outcome, lost = f"FAILS ({len(members) - ok - skip} of {len(members)})", \
                "not verified"
        lines.append(
            f"| {battery} | {_cell(_title(test))} | {_cell(_variants(variants))} | "
            f"{outcome} | {lost} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    path = Path(argv[0]) if argv else DEFAULT
    if not path.is_file():
        print(f"error: {path}: no results; run the reliability tests first (see --help)",
              file=sys.stderr)
        return 2
    if argv and argv[0] in {"-h", "--help"}:
        print(__doc__)
        return 0
    data = json.loads(path.read_text(encoding="utf-8"))
    sys.stdout.write(render(data["cases"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
