"""The `labelgate` command line.

Exit codes: 0 = gate passed (or command succeeded), 1 = gate failed, 2 = spec, usage or
input error (the message names the file and the key, row or column), 3 = internal error.
Prefect is imported only by `run`, so `check`, `schema`, `gate` and `report` are quick.
What only some commands need (the report package, the warehouse) is imported by them. The
console entry is `flows.entry`, which launches Prefect's temporary server for `run` before
this module is even imported (`flows.server`); `run` takes it over.
"""

from __future__ import annotations

import atexit
import gc
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Annotated, Any

import polars as pl
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from flows.history_view import HISTORY_METRICS, did_you_mean, history_table, short_name
from flows.issues_cli import issues
from flows.review_cli import review_app
from labelgate import dag
from labelgate.errors import GateFailedError, LabelgateError
from labelgate.gate import GateVerdict, evaluate_gate, gate_check
from labelgate.spec import Spec, json_schema, load_spec
from labelgate.store.locking import ensure_store_dir
from labelgate.store.urls import is_remote, store_url

EXIT_PASS, EXIT_GATE_FAILED, EXIT_INPUT, EXIT_INTERNAL = 0, 1, 2, 3

app = typer.Typer(
    name="labelgate",
    help="Declarative data-quality pipeline for labeled datasets that feed fine-tunes.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

SpecArg = Annotated[Path, typer.Argument(help="The dataset spec (YAML).", show_default=False)]
StoreOpt = Annotated[
    str | None,
    typer.Option(
        "--store",
        help="Store folder or fsspec URL such as s3://bucket/prefix (overrides the spec's "
        "`store`).",
        show_default=False,
    ),
]


def _store(s: Spec, store: str | None) -> Path:
    """The local folder to read: the store, or a remote store's working copy brought up to
    date first (exit 2 when the URL cannot be opened)."""
    from labelgate.store.remote import working_store

    try:
        return working_store(s, store)
    except LabelgateError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(EXIT_INPUT) from None


def _absolute_store(store: str | None) -> str | None:
    """`--store` for a deployment's parameters: a URL as given, a folder made absolute."""
    if store is None or is_remote(store):
        return store
    return str(Path(store).expanduser().resolve())


def _load(spec_path: Path) -> Spec:
    try:
        return load_spec(spec_path)
    except LabelgateError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(EXIT_INPUT) from None


def _verdict_table(verdict: GateVerdict) -> Table:
    table = Table("check", "observed", "threshold", "passed", title="gate")
    for c in verdict.checks:
        observed = "—" if c.observed is None else f"{c.observed:.4g}"
        passed = "yes" if c.passed else "[red]NO[/red]"
        table.add_row(c.name, observed, f"{c.threshold:.4g}", passed)
    return table


DaskOpt = Annotated[
    str | None,
    typer.Option(
        "--dask",
        help="Run the stages' parts (contract per batch, model per fold, MinHash per shard) "
        "on the Dask cluster at this scheduler address (tcp://HOST:PORT). Needs "
        "PREFECT_API_URL: a Prefect server the Dask workers can reach.",
        show_default=False,
    ),
]


class _ExpectedErrorsWithoutTraceback(logging.Filter):
    """On a console log handler: Prefect logs a task's or flow's exception with its
    traceback (`Task run failed with exception: ...`, `Encountered exception during
    execution: ...`). For labelgate's expected errors (`LabelgateError`: spec, input, lock;
    `GateFailedError`) the traceback is noise: the CLI prints the message as `error: ...`.
    This keeps the one-line message and drops the traceback; any other exception (a bug)
    keeps it. The record is changed in place (Python 3.11 filters cannot return a copy):
    handlers that see it later, e.g. pytest's, get it without the traceback too; Prefect's
    API handler (the UI's logs) sits on the run loggers and has already formatted it."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, LabelgateError | GateFailedError):
            record.exc_info = None
            record.exc_text = None  # the API handler's formatting cached the traceback here
        return True


class _VisibleControls(logging.Filter):
    """On a console log handler: control characters in a log message (a label or column
    name from the data holding a terminal escape sequence) are shown as symbols instead of
    acting on the terminal (`labelgate.report.text.visible_controls`; issue 27)."""

    def filter(self, record: logging.LogRecord) -> bool:
        from labelgate.report.text import visible_controls

        message = record.getMessage()
        safe = visible_controls(message)
        if safe != message:
            record.msg, record.args = safe, None
        return True


def _quiet_expected_errors() -> None:
    """Install `_ExpectedErrorsWithoutTraceback` on the console handlers that Prefect's
    run loggers reach (its logging.yml: the root logger's `console` handler), once. Call
    after importing Prefect, which configures its logging at import."""
    loggers = [logging.getLogger(name) for name in
               ("", "prefect", "prefect.flow_runs", "prefect.task_runs")]
    for handler in {h for lg in loggers for h in lg.handlers}:
        if isinstance(handler, logging.StreamHandler) and not any(
            isinstance(f, _ExpectedErrorsWithoutTraceback) for f in handler.filters
        ):
            handler.addFilter(_ExpectedErrorsWithoutTraceback())
            handler.addFilter(_VisibleControls())


def _check_store(spec: Path, s: Spec, store: str | None) -> None:
    """A local store that is a file, or whose folder cannot be created: exit 2 naming it
    and where it was set, before Prefect starts (created here otherwise, as the run would)."""
    if store_url(s, store) is not None:
        return
    where = "--store" if store is not None else f"`store:` in {spec}"
    try:
        ensure_store_dir(s.store_dir(store), setting=where)
    except LabelgateError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(EXIT_INPUT) from None


def _check_environment(spec: Path, s: Spec) -> None:
    """What the run needs that the spec names (an embedding model, a tokenizer): exit 2
    before Prefect starts, naming the spec."""
    li = s.label_issues
    pref = s.preference_settings() if s.is_preference else None
    if ((li is None or li.embeddings is None)
            and (pref is None or (pref.swaps.embeddings is None and pref.tokenizer is None))):
        return  # nothing to check: spare the model libraries' import
    from labelgate.stages.steps import check_environment

    try:
        check_environment(s, notice=lambda line: err.print(escape(line), soft_wrap=True))
    except LabelgateError as exc:
        err.print(f"[red]error:[/red] {escape(f'{spec}: {exc}')}", soft_wrap=True)
        raise typer.Exit(EXIT_INPUT) from None


@app.command()
def run(spec: SpecArg, store: StoreOpt = None, dask: DaskOpt = None) -> None:
    """Run the pipeline once for SPEC; exit 0 if the gate passed, 1 if not, 2 on bad input."""
    store = store or None
    s = _load(spec)  # a wrong spec fails here, before Prefect starts
    _check_environment(spec, s)  # and a missing embedding model
    _check_store(spec, s, store)  # and a store that cannot be a folder (created here)
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # a fresh PREFECT_HOME migrates its database first, which can outlast the default limit
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
    # the flow and the stage table share one API; its server starts while the stages load
    with _prefect_api(warm=lambda: _load_stages(s, store)):
        from flows.pipeline import quality_pipeline

        _quiet_expected_errors()  # after Prefect's import configured its logging

        flow = quality_pipeline
        if dask:
            flow = quality_pipeline.with_options(task_runner=_dask_runner(dask))
        from flows.live import live_progress

        with live_progress(err):
            state = flow(str(spec), store, return_state=True)
        report: dict[str, Any] | None = None
        if state.is_completed():
            report = state.result()
        exc = None if report is not None else state.result(raise_on_failure=False)
        if isinstance(exc, GateFailedError):
            from labelgate.report import read_latest
            from labelgate.store.remote import working_store

            found = read_latest(working_store(s, store, pull_first=False), s.name)
            report = found[1] if found else None
        from flows.stage_table import print_stage_times

        print_stage_times(out, err, state.state_details.flow_run_id, s, report)
    if report is not None:
        _print_summary(report)
    if exc is None:
        raise typer.Exit(EXIT_PASS)
    if isinstance(exc, GateFailedError):
        err.print(f"[red]{escape(str(exc))}[/red]", soft_wrap=True)
        raise typer.Exit(EXIT_GATE_FAILED)
    if isinstance(exc, LabelgateError):
        err.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(EXIT_INPUT)
    err.print(f"[red]internal error:[/red] {escape(str(state.message))}", soft_wrap=True)
    raise typer.Exit(EXIT_INTERNAL)


def _load_stages(s: Spec, store: str | None = None) -> None:
    """Import what the flow of `s` will import (Prefect's engines, the tasks of the stages
    `s` runs, the libraries they use) and set up the report's plots and templates
    (`flows.warm`). When `flows.entry` turned Python's garbage collector off for the
    command's imports, turn it on again, with what was loaded so far frozen out of its
    scans (the flow's collections then skip the libraries' objects)."""
    from flows.warm import warm

    where = store if store is not None else s.store
    warm(s, None if "://" in where else s.store_dir(store))  # a remote store: not looked at
    if not gc.isenabled():
        gc.enable()
        gc.freeze()


@contextmanager
def _prefect_api(warm: Callable[[], None] | None = None) -> Iterator[None]:
    """One Prefect API for the whole command: `PREFECT_API_URL` when it is set (a running
    server is reused), else Prefect's temporary local server, started once here. Without
    this, the flow stops its temporary server when it ends and reading the stage table
    starts a second one. The server is launched first (`flows.server`, without importing
    Prefect's server package; by `flows.entry` when the command came from the console) and
    boots in its own process while ``warm`` (the flow's imports) runs here; it stops when
    the process exits, after Prefect's log and event workers drain."""
    from flows import server as servers

    server = servers.take_launched()  # `flows.entry` launched it at the process's start
    if server is None and not _api_url_set():
        server = servers.TemporaryServer()
        server.launch()
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
        temporary_settings,
    )

    if server is not None and PREFECT_API_URL.value():  # set by the active profile
        server.stop()
        server = None
    if warm is not None:
        warm()
    if server is None:
        yield
        return
    timeout = float(os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90"))
    # no heartbeats: nothing outlives this server to watch them, and the flow's end waits
    # up to a second for the heartbeat thread's sleep; the settings are built (a second's
    # fraction) while the server boots, again only if it had to move to another port
    with ExitStack() as settings:
        url = server.api_url
        settings.enter_context(temporary_settings(updates={
            PREFECT_API_URL: url, PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}))
        server.wait(timeout)
        if server.api_url != url:
            settings.enter_context(temporary_settings(updates={
                PREFECT_API_URL: server.api_url}))
        yield


def _api_url_set() -> bool:
    """Whether an API URL is known before Prefect's settings are imported: the environment,
    or Prefect's settings when something (a test harness) has already loaded them."""
    if os.environ.get("PREFECT_API_URL"):
        return True
    if "prefect.settings" in sys.modules:
        from prefect.settings import PREFECT_API_URL

        return bool(PREFECT_API_URL.value())
    return False


def _dask_runner(address: str) -> Any:
    """prefect-dask's runner for an existing cluster, after checking that the scheduler
    answers and that the workers will report to a real Prefect server (exit 2 otherwise)."""
    from tasks.partition import check_dask, dask_runner

    if not os.environ.get("PREFECT_API_URL"):
        err.print(
            "[red]error:[/red] --dask needs a Prefect server the Dask workers can reach "
            "(without one, each worker starts its own temporary server): start one "
            "(`prefect server start`) and set PREFECT_API_URL"
        )
        raise typer.Exit(EXIT_INPUT)
    try:
        workers = check_dask(address)
    except LabelgateError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(EXIT_INPUT) from None
    out.print(f"Dask cluster {address}: {workers} worker(s)")
    return dask_runner(address)


def _print_summary(report: dict[str, Any]) -> None:
    rows = report["rows"]
    gate = report["gate"]
    status = "[green]PASSED[/green]" if gate["passed"] else "[red]FAILED[/red]"
    out.print(f"{report['dataset']} run {report['run_id']}: gate {status}")
    out.print(
        f"rows: input {rows['input']} = valid {rows['valid']} + quarantined "
        f"{rows['quarantined']} + excluded {rows['excluded']}"
    )
    for c in gate["checks"]:
        mark = "ok " if c["passed"] else "[red]BAD[/red]"
        out.print(f"  {mark} {c['message']}")
    folder = Path(report["paths"]["report"])
    out.print(f"report: {folder / 'report.html'}  (also report.md, report.json)", soft_wrap=True)


@app.command()
def check(spec: SpecArg) -> None:
    """Validate SPEC and its sources' files and headers (no data read); say which stages
    will run. Exit 2 naming the file, key or column that is wrong."""
    from labelgate.stages.ingest.preflight import check_sources

    s = _load(spec)
    _check_environment(spec, s)
    sources = check_sources(s)
    problems = [p for c in sources for p in c.problems]
    for problem in problems:
        err.print(f"[red]error:[/red] {escape(problem)}", soft_wrap=True)
    if problems:
        raise typer.Exit(EXIT_INPUT)
    out.print(
        f"{spec}: ok — dataset {s.name!r}, task {s.task}, "
        f"{len(s.contract)} contracted column(s), {len(s.gate)} gate check(s)",
        soft_wrap=True,
    )
    out.print("sources: " + ", ".join(f"{c.key} {len(c.files)} file(s)" for c in sources)
              + " (headers have the columns the spec names)", soft_wrap=True)
    runs = dag.stages_of(s)
    out.print("stages: " + " → ".join(name for name, on in runs.items() if on), soft_wrap=True)
    if s.sources.annotations is not None and s.is_dimensions:
        item, annotator, _, _ = s.annotation_columns()
        out.print(f"agreement per dimension, columns item={item} annotator={annotator} and "
                  + ", ".join(f"{n}={d.annotation_column(n)} ({d.kind})"
                              for n, d in s.dimension_settings().items()), soft_wrap=True)
    elif s.sources.annotations is not None:
        ag = s.agreement_settings()
        item, annotator, label, _ = s.annotation_columns()
        out.print(
            f"agreement: level {ag.level}, columns item={item} annotator={annotator} "
            f"label={label}, consensus {ag.consensus}"
            + (", with gold" if s.sources.gold is not None else "")
        )
    li = s.label_issues
    if li is not None:
        emb = li.embeddings
        out.print(
            f"label issues: method {li.method}, {li.folds} folds"
            + (f", with {emb.model} sentence embeddings" if emb is not None
               and li.method != "predictions" else ""),
            soft_wrap=True,
        )
    elif s.columns.label is not None:
        out.print("label issues: off; add a `label_issues:` section (`label_issues: {}` for "
                  "the defaults) to find probable label errors", soft_wrap=True)
    for note in s.notes():
        out.print(f"note: {note}", soft_wrap=True)
    for name in s.gate:
        check = gate_check(name)
        stage = dag.stage_of_metric(check.metric, spec=s) if check is not None else None
        if stage is not None and not runs[stage.name]:
            err.print(
                f"warning: gate.{name} needs the {stage.name} stage, which this spec does not "
                f"run ({stage.needs}); it will fail as not computed",
                soft_wrap=True,
            )


@app.command()
def schema(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file instead of stdout.")
    ] = None,
) -> None:
    """Print the spec's JSON Schema (for editor completion)."""
    text = json.dumps(json_schema(), indent=2) + "\n"
    if output:
        output.write_text(text)
    else:
        sys.stdout.write(text)


@app.command()
def gate(spec: SpecArg, store: StoreOpt = None) -> None:
    """Re-evaluate the latest run's gate with SPEC's thresholds: exit 0 pass, 1 fail."""
    from labelgate.store import warehouse

    s = _load(spec)
    path = _store(s, store) / warehouse.WAREHOUSE_FILE
    try:
        with warehouse.connect(path, read_only=True) as con:
            last = warehouse.latest_run(con, s.name)
            metrics = warehouse.run_metrics(con, last.run_id) if last else {}
            details = warehouse.run_details(con, last.run_id) if last else {}
            published = con.execute(
                "SELECT version, run_id FROM published WHERE dataset = ? "
                "ORDER BY version DESC LIMIT 1", [s.name],
            ).fetchone()
    except FileNotFoundError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(EXIT_INPUT) from None
    if last is None:
        err.print(f"[red]error:[/red] no finished run of {s.name!r} in {path}; run `labelgate run`")
        raise typer.Exit(EXIT_INPUT)
    verdict = evaluate_gate(metrics, s.gate, details=details)
    finished = (last.finished_at.isoformat(timespec="seconds")
                if last.finished_at is not None else "unfinished")
    out.print(f"{s.name} run {last.run_id} ({finished}): {verdict.summary()}", soft_wrap=True)
    if verdict.checks:
        out.print(_verdict_table(verdict))
    if s.publish is not None and (published is None or published[1] != last.run_id):
        # the verdict is about this run's data; what a fine-tune reads is `current`
        where = (f"published `current` is v{published[0]} from run {published[1]}"
                 if published is not None else "nothing is published yet")
        out.print(f"note: run {last.run_id} was not published ({last.status}); {where}",
                  soft_wrap=True)
    raise typer.Exit(EXIT_PASS if verdict.passed else EXIT_GATE_FAILED)


@app.command()
def report(spec: SpecArg, store: StoreOpt = None) -> None:
    """Print where the latest report of SPEC is, and its summary."""
    from labelgate.report import read_latest

    s = _load(spec)
    root = _store(s, store)
    found = read_latest(root, s.name)
    if found is None:
        err.print(f"[red]error:[/red] no report for {s.name!r} in {root}")
        raise typer.Exit(EXIT_INPUT)
    folder, content = found
    out.print(f"latest report: {folder}", soft_wrap=True)
    _print_summary(content)


@app.command()
def history(
    spec: SpecArg,
    store: StoreOpt = None,
    metric: Annotated[
        list[str] | None,
        typer.Option("--metric", "-m", help="Metric(s) to show (repeatable); default: key ones."),
    ] = None,
    last: Annotated[int, typer.Option("--last", "-n", min=1, help="How many runs.")] = 10,
) -> None:
    """Print metrics over the last runs of SPEC (one row per run, oldest first)."""
    from labelgate.store import warehouse

    s = _load(spec)
    path = _store(s, store) / warehouse.WAREHOUSE_FILE
    try:
        with warehouse.connect(path, read_only=True) as con:
            frame = warehouse.metric_history(con, s.name, last_runs=last)
    except FileNotFoundError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(EXIT_INPUT) from None
    if frame.is_empty():
        err.print(f"[red]error:[/red] no runs of {s.name!r} recorded in {path}")
        raise typer.Exit(EXIT_INPUT)
    known = set(frame.get_column("metric").unique().to_list())
    wanted = metric or [m for m in HISTORY_METRICS if m in known]
    unknown = [m for m in wanted if m not in known]
    if unknown:
        err.print(
            f"[red]error:[/red] no metric {', '.join(map(repr, unknown))} recorded for "
            f"{s.name!r}{did_you_mean(unknown, known)}; recorded: {', '.join(sorted(known))}",
            soft_wrap=True,
        )
        raise typer.Exit(EXIT_INPUT)
    runs = frame.group_by("run_id", maintain_order=True).agg(
        [pl.col("value").filter(pl.col("metric") == m).first().alias(m) for m in wanted]
    )
    out.print(f"{s.name}: last {runs.height} run(s)", soft_wrap=True)
    out.print(history_table(runs, wanted))
    out.print("  ".join(f"{short_name(m)}={m}" for m in wanted if short_name(m) != m),
              soft_wrap=False, style="dim")


@app.command()
def serve(
    specs: Annotated[list[Path], typer.Argument(help="Dataset spec(s) to schedule.")],
    cron: Annotated[
        str, typer.Option(help="Cron schedule (default: 02:30 every night).")
    ] = "30 2 * * *",
    timezone: Annotated[str, typer.Option(help="Time zone of the cron schedule.")] = "UTC",
    interval: Annotated[
        int | None,
        typer.Option(help="Run every N seconds instead of the cron schedule.", min=1),
    ] = None,
    store: StoreOpt = None,
) -> None:
    """Schedule SPEC(s) in this process (no work pool or worker needed); Ctrl-C stops.

    Needs a Prefect server with its scheduler: set PREFECT_API_URL (for example
    `prefect server start` on this machine). One deployment per spec, named after the dataset.
    """
    loaded = [(path, _load(path)) for path in specs]
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    if not os.environ.get("PREFECT_API_URL"):
        err.print(
            "[red]error:[/red] labelgate serve needs a Prefect server for its schedules: "
            "start one (`prefect server start`) and set PREFECT_API_URL"
        )
        raise typer.Exit(EXIT_INPUT)
    from prefect import serve as prefect_serve
    from prefect.deployments.runner import RunnerDeployment
    from prefect.schedules import Cron, Interval

    from flows.pipeline import quality_pipeline

    schedule = Interval(interval) if interval else Cron(cron, timezone=timezone)
    deployments: list[RunnerDeployment] = [
        RunnerDeployment.from_flow(
            quality_pipeline,
            name=f"{s.name}-serve",
            schedules=[schedule],
            # one run at a time: a tick while a run is still going waits for it (a second
            # run would only fail on the dataset's run lock)
            concurrency_limit=1,
            parameters={"spec_path": str(path.resolve()),
                        "store": _absolute_store(store)},
            tags=["labelgate"],
        )
        for path, s in loaded
    ]
    when = f"every {interval} s" if interval else f"cron '{cron}' ({timezone})"
    out.print(f"serving {len(deployments)} dataset(s) on {when}: "
              + ", ".join(s.name for _, s in loaded))
    prefect_serve(*deployments)


publish_app = typer.Typer(help="Published versions of a dataset's splits.", no_args_is_help=True)
app.add_typer(publish_app, name="publish")
app.add_typer(review_app, name="review")
app.command("issues")(issues)


def _shown(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _print_frame(frame: pl.DataFrame, *, title: str) -> None:
    table = Table(title=title)
    for name in frame.columns:  # a narrow terminal wraps values instead of cutting them
        table.add_column(name, overflow="fold")
    for row in frame.iter_rows():
        table.add_row(*(_shown(v) for v in row))
    out.print(table)


def _published_root(s: Spec, store: str | None) -> Path:
    root = _store(s, store) / "published" / s.name
    if not root.is_dir():
        err.print(f"[red]error:[/red] nothing published for {s.name!r} in {root.parent}")
        raise typer.Exit(EXIT_INPUT)
    return root


@publish_app.command("ls")
def publish_ls(spec: SpecArg, store: StoreOpt = None) -> None:
    """List published versions with row counts, gate verdicts and which is current."""
    from labelgate.stages.publish import list_versions

    s = _load(spec)
    frame = list_versions(_published_root(s, store))
    shown = frame.drop("content_hash", "spec_hash", strict=False)
    _print_frame(shown, title=f"{s.name}: published")


@app.command()
def diff(
    spec: SpecArg,
    a: Annotated[str, typer.Argument(help="A version: v3, 3 or current.")],
    b: Annotated[str, typer.Argument(help="Another version.")],
    store: StoreOpt = None,
) -> None:
    """Rows added, removed and relabeled per split between two published versions."""
    from labelgate.errors import InputError
    from labelgate.stages.publish import diff_versions

    s = _load(spec)
    root = _published_root(s, store)
    try:
        frame = diff_versions(root, a, b, key_column=s.columns.id, label_column=s.columns.label)
    except (InputError, FileNotFoundError, ValueError) as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(EXIT_INPUT) from None
    _print_frame(frame, title=f"{s.name}: {a} → {b}")


def main() -> None:  # pragma: no cover - console entry point
    """The `labelgate` command. Once the command has ended and the exit handlers have run
    (Prefect's: its log and event workers drain, the temporary server stops), the process
    ends without Python's teardown of the loaded libraries, which takes about a second."""
    code: list[int] = [EXIT_INTERNAL]
    # registered before Prefect's handlers, so it runs after them; it stops the temporary
    # server itself (one that `flows.entry` launched registered its handler even earlier)
    atexit.register(_end_now, code)
    try:
        app()
    except SystemExit as exc:
        code[0] = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        raise


def _end_now(code: list[int]) -> None:
    servers = sys.modules.get("flows.server")
    if servers is not None:  # the exit handlers above ran: Prefect's workers have drained
        servers.stop_all()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code[0])
