"""The shape of an input case and how every input case runs.

An `InputCase` writes bad input next to a base project's clean file (and may change the
spec), runs `labelgate run`, and checks: the exit code is one it allows; a refused run's
message names the file (and `names`); every record of the bad file is valid, quarantined
with a reason (a rejected record with its line) or refused with the file named; the
published version is untouched when the run did not pass; with the bad input removed, the
next run passes.
"""

from __future__ import annotations

import copy
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.battery_cases.harness import Outcome, Project, batch_accounting, project_copy

# writes the file (ids start with the prefix); returns the records it meant to write
Writer = Callable[[Path, str], int]
SpecChange = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class InputCase:
    """One malformed or hostile input."""

    name: str
    group: str
    file: str  # the bad file, relative to the project
    write: Writer
    codes: tuple[int, ...] = (0,)
    names: tuple[str, ...] = ()  # the output must contain these (beyond the file's name)
    spec: SpecChange | None = None
    check: Callable[[Project, Outcome], None] | None = None  # extra checks after the run

    @property
    def shares_a_run(self) -> bool:
        """A case whose records are all kept or quarantined (the run passes) runs with the
        other such cases, one file each, in one run: each file is accounted for alone."""
        return self.codes == (0,) and self.spec is None and self.check is None


def run_input_case(case: InputCase, *, base: Path, work: Path, api_url: str) -> Outcome:
    out = Outcome(case.name, case.group)
    with project_copy(base, work, case.name, api_url) as project:
        before = project.snapshot()
        original = project.read_spec()
        bad = project.root / case.file
        bad.parent.mkdir(parents=True, exist_ok=True)
        out.rows_in = case.write(bad, "b")
        if case.spec is not None:
            project.write_spec(case.spec(copy.deepcopy(original)))
        run = project.run()
        out.expect(run.rc in case.codes, f"exit {run.rc}, expected {case.codes}: "
                                         f"{_tail(run.output)}")
        if run.rc in (0, 1):
            report = project.latest_report()
            if out.expect(report is not None, "no report.json"):
                assert report is not None
                files = sorted(f for f in bad.rglob("*") if f.is_file()) if bad.is_dir() \
                    else [bad]
                counts = [batch_accounting(project, report, f, out) for f in files]
                out.accounted = sum(c.total for c in counts)
                out.outcome = ("passed: " if run.rc == 0 else "gate failed: ") + "; ".join(
                    c.text() for c in counts)
        elif run.rc == 2:
            named = out.expect(bad.name in run.output or any(
                f.name in run.output for f in bad.rglob("*")), f"the message does not name "
                                                        f"{bad.name}: {_tail(run.output)}")
            out.accounted = out.rows_in if named else 0
            out.outcome = "refused, exit 2: " + _error_line(run.output, bad.name)
        else:
            out.outcome = f"exit {run.rc}"
        for text in case.names:
            out.expect(text in run.output, f"the output does not say {text!r}")
        if run.rc != 0:
            out.expect(project.snapshot() == before, "the published version changed")
        if case.check is not None:
            case.check(project, out)
        _remove(bad)
        project.write_spec(original)
        again = project.run()
        out.expect(again.rc == 0, f"next clean run: exit {again.rc}: {_tail(again.output)}")
    return out


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _tail(text: str, n: int = 600) -> str:
    return text[-n:].replace("\n", " | ")


def _error_line(output: str, name: str) -> str:
    """The `error:` line naming the file, shortened (paths cut to the file name)."""
    for line in output.splitlines():
        if line.startswith("error:"):
            text = line.removeprefix("error:").strip()
            _, sep, rest = text.partition(name)
            if sep:
                text = name + rest
            return text[:110] + ("…" if len(text) > 110 else "")
    return "(no error line)"


def run_shared_input_cases(cases: list[InputCase], *, base: Path, work: Path, api_url: str
                           ) -> list[Outcome]:
    """Cases whose run should pass, in one run: each writes its own file (its own ids);
    the run must pass, each file's records are accounted for alone, and with the files
    removed the next run passes."""
    outs = [Outcome(c.name, c.group) for c in cases]
    with project_copy(base, work, "shared-input-cases", api_url) as project:
        files = []
        for i, (case, out) in enumerate(zip(cases, outs, strict=True)):
            path = project.root / "items" / f"case{i:02d}{''.join(Path(case.file).suffixes)}"
            out.rows_in = case.write(path, f"c{i:02d}-")
            files.append(path)
        run = project.run()
        report = project.latest_report() if run.rc == 0 else None
        for case, out, path in zip(cases, outs, files, strict=True):
            if out.expect(run.rc == 0 and report is not None,
                          f"exit {run.rc}, expected 0: {_tail(run.output)}"):
                assert report is not None
                counts = batch_accounting(project, report, path, out)
                out.accounted = counts.total
                out.outcome = "passed: " + counts.text()
            for text in case.names:
                out.expect(text in run.output, f"the output does not say {text!r}")
            path.unlink()
        again = project.run()
        for out in outs:
            out.expect(again.rc == 0, f"next clean run: exit {again.rc}: {_tail(again.output)}")
            out.seconds = run.seconds + again.seconds
    return outs

