"""The docs site's generated pages: references that cannot drift from the code.

Three pages are built from the code each time the site is built, never written into
docs/ and never committed:

- ``reference/spec.md``: every spec section and key with its type, default and
  description, nested, from the spec's JSON Schema (`labelgate.spec.json_schema`); the
  gate checks from their registry (`labelgate.gate.GATE_CHECKS`);
- ``reference/cli.md``: every command of the typer app (`flows.cli:app`) with its
  arguments, options and help texts, by walking the click command tree;
- ``reference/stages.md``: the stage declaration (`labelgate.dag.STAGES`): what each
  stage does, when it runs, what it reads and gives, and its task;
- ``reference/warehouse.md``: the DuckDB warehouse's tables and columns, from a warehouse
  the store code creates in a temporary folder;
- ``reference/code.md``: every module of the packages with the first line of its
  docstring (read with `ast`, nothing imported).

Two ways to use it:

- as an MkDocs hook (``hooks: [scripts/gen_docs.py]`` in mkdocs.yml): `on_files` adds
  the pages to the build, `on_config` lists every page under docs/benchmarks/ in the nav
  (pages other people add appear without editing mkdocs.yml) and `on_page_markdown`
  links such pages from the benchmarks index;
- as a script, to read the pages: ``.venv/bin/python scripts/gen_docs.py OUTDIR``.
"""

from __future__ import annotations

import ast
import inspect
import json
import re
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = "benchmarks"
SPEC_PAGE, CLI_PAGE, STAGES_PAGE = "reference/spec.md", "reference/cli.md", "reference/stages.md"
CODE_PAGE = "reference/code.md"
WAREHOUSE_PAGE = "reference/warehouse.md"
REPORT_PAGE = "reference/report-json.md"
# one line per warehouse table (a table missing here is listed without one)
TABLES = {
    "runs": "one row per run: status, row counts, gate verdict, report folder",
    "batches": "every lake batch: source, file, content hash, rows",
    "run_batches": "which batches each run read",
    "quarantine": "rows the contract (and the SFT checks) quarantined: column, check, reason",
    "gate_results": "each gate check of each run: observed, threshold, passed, message",
    "metrics_history": "every metric of every run (the gate's inputs, the report's trends)",
    "metric_details": "whom a metric's value belongs to (a class, an annotator)",
    "label_issues": "per row: given and suggested label, label quality, flagged, rank",
    "duplicates": "duplicate clusters: member ids, exact or near, similarity",
    "split_assignments": "the sticky record: each split unit's split since its first run",
    "exclusions": "rows left out of the published splits, with the policy and reason",
    "published": "published versions: number, folder, rows",
    "conflicting_responses": "instruction data: prompts with different responses",
    "agreement_metrics": "agreement coefficients (with the bootstrap interval of alpha)",
    "annotator_stats": "per annotator: labels, agreement, gold accuracy, flags",
    "agreement_pairs": "per annotator pair: shared items, percent agreement, Cohen's kappa",
    "consensus": "per item: majority and Dawid-Skene labels, the chosen training label",
}
PACKAGES = {  # the code map's packages, in reading order
    "flows": "the Prefect flows and the `labelgate` command line",
    "tasks": "one module per stage: the Prefect tasks over the store",
    "labelgate": "the library (no Prefect)",
    "checks": "the contract and the SFT checks",
}

# the hand-written page of each stage (reference/stages.md links them; a stage missing
# here is listed without a link)
STAGE_PAGES = {
    "ingest": "stages/ingest.md",
    "canonicalize": "stages/instruction-data.md",
    "enforce-contract": "stages/contract.md",
    "corrections": "stages/review.md",
    "agreement": "stages/agreement.md",
    "consensus-label": "stages/agreement.md",
    "store": "stages/contract.md",
    "label-issues": "stages/label-issues.md",
    "dedup": "stages/dedup.md",
    "splits": "stages/splits.md",
    "metrics": "stages/gate.md",
    "gate": "stages/gate.md",
    "publish": "stages/publish.md",
    "report": "stages/report.md",
}

GENERATED_NOTE = (
    "!!! note \"Generated\"\n"
    "    This page is generated from {source} each time the site is built "
    "(`make docs`, `scripts/gen_docs.py`), so it matches the code it documents.\n"
)


# ------------------------------------------------------------------------ Markdown helpers


def cell(text: object) -> str:
    """Text for a Markdown table cell: one line, pipes outside code spans escaped."""
    flat = " ".join(str(text).split())
    parts = re.split(r"(`[^`]*`)", flat)
    return "".join(p if p.startswith("`") else p.replace("|", r"\|") for p in parts)


def code(value: str) -> str:
    """`value` as a code span (a value holding a backtick gets a double one)."""
    return f"`` {value} ``" if "`" in value else f"`{value}`"


def table(headers: list[str], rows: Iterable[Iterable[object]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def anchor(path: str) -> str:
    """A heading id for a dotted spec path (`label_issues.embeddings`)."""
    return re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-")


# ------------------------------------------------------------------------ spec reference


def _flow_yaml(value: Any) -> str:
    """A default as the spec would write it (YAML flow style, one line)."""
    import yaml

    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False) if value == "" else value
    text: str = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True,
                               width=10_000, sort_keys=False)
    return text.strip().removesuffix("\n...").strip()


class SpecReference:
    """Markdown for the spec's JSON Schema, section by section."""

    def __init__(self, schema: Mapping[str, Any]) -> None:
        self.schema = schema
        self.defs: Mapping[str, Any] = schema.get("$defs", {})
        self.models = _model_classes()
        self.rendered: dict[str, str] = {}  # $def name -> the path it is documented under
        self.out: list[str] = []

    def ref_name(self, node: Mapping[str, Any]) -> str | None:
        ref = node.get("$ref")
        return ref.rsplit("/", 1)[-1] if isinstance(ref, str) else None

    def object_of(self, node: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]] | None:
        """The model (name, schema) a property holds, directly or in an anyOf."""
        options = [node, *node.get("anyOf", [])]
        for option in options:
            name = self.ref_name(option)
            if name is not None:
                return name, self.defs[name]
        return None

    def item_object(self, node: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]] | None:
        """The model a list property holds per item (`sft.extra_patterns`)."""
        for option in [node, *node.get("anyOf", [])]:
            items = option.get("items")
            if isinstance(items, Mapping) and self.ref_name(items):
                name = self.ref_name(items)
                assert name is not None
                return name, self.defs[name]
        return None

    def type_of(self, node: Mapping[str, Any], path: str) -> str:
        if "anyOf" in node:
            kinds = [self.type_of(option, path) for option in node["anyOf"]]
            return " or ".join(dict.fromkeys(kinds))
        name = self.ref_name(node)
        if name is not None:
            target = self.rendered.get(name, path)
            return f"[{name}](#{anchor(target)})"
        if "enum" in node:
            return "one of " + ", ".join(code(str(v)) for v in node["enum"])
        kind = node.get("type")
        if kind == "array":
            items = node.get("items", {})
            text = f"list of {self.type_of(items, path + '[]')}" if items else "list"
            if node.get("minItems"):
                text += f" (at least {node['minItems']})"
            return text
        if kind == "object":
            keys = node.get("propertyNames", {}).get("enum")
            values = node.get("additionalProperties")
            value = self.type_of(values, path) if isinstance(values, Mapping) else "value"
            if keys and len(keys) > 6:
                key = "name (listed below)"
            else:
                key = ("key " + ", ".join(code(k) for k in keys)) if keys else "any key"
            return f"map: {key} → {value}"
        names = {"string": "text", "integer": "integer", "number": "number",
                 "boolean": "true/false", "null": "null"}
        text = names.get(str(kind), str(kind))
        bounds = self.bounds(node)
        return f"{text} ({bounds})" if bounds else text

    @staticmethod
    def bounds(node: Mapping[str, Any]) -> str:
        out = []
        if "minimum" in node:
            out.append(f"≥ {node['minimum']}")
        if "exclusiveMinimum" in node:
            out.append(f"> {node['exclusiveMinimum']}")
        if "maximum" in node:
            out.append(f"≤ {node['maximum']}")
        if "exclusiveMaximum" in node:
            out.append(f"< {node['exclusiveMaximum']}")
        if node.get("minLength") is not None and node.get("minLength") == node.get("maxLength"):
            n = node["minLength"]
            out.append(f"exactly {n} character" + ("" if n == 1 else "s"))
        else:
            if "minLength" in node:
                out.append(f"length ≥ {node['minLength']}")
            if "maxLength" in node:
                out.append(f"length ≤ {node['maxLength']}")
        if "pattern" in node:
            out.append(f"matches {code(node['pattern'])}")
        return ", ".join(out)

    def default_of(self, model: str, key: str, node: Mapping[str, Any],
                   required: bool) -> str:
        if required:
            return "required"
        if "default" in node:
            value = node["default"]
        else:  # a default_factory: the model's own default, built
            cls = self.models.get(model)
            field = cls.model_fields.get(key) if cls is not None else None
            if field is None:
                return "—"
            value = field.get_default(call_default_factory=True)
            if hasattr(value, "model_dump"):  # the keys it sets (nulls are "off")
                value = {k: v for k, v in value.model_dump(mode="json").items()
                         if v is not None}
            elif isinstance(value, list) and value and hasattr(value[0], "model_dump"):
                return f"{len(value)} built in (below)"
        if value is None:  # a section left out is off; other nulls: see the description
            return "null (off)" if self.object_of(node) else "null"
        if value in ({}, []):
            return "empty"
        return code(_flow_yaml(value))

    def section(self, path: str, model: str, node: Mapping[str, Any], level: int) -> None:
        """One model's keys as a table under a heading (the root: none), then its nested
        models."""
        self.rendered.setdefault(model, path)
        if path:
            self.out.append(f"{'#' * min(level, 6)} `{path}` {{#{anchor(path)}}}\n")
            if node.get("description"):
                self.out.append(" ".join(str(node["description"]).split()) + "\n")
        props: Mapping[str, Any] = node.get("properties", {})
        required = set(node.get("required", []))
        rows = []
        nested: list[tuple[str, str, Mapping[str, Any]]] = []
        for key, prop in props.items():
            sub = f"{path}.{key}" if path else key
            target = self.object_of(prop) or self.item_object(prop)
            if target is None and isinstance(prop.get("additionalProperties"), Mapping):
                target = self.object_of(prop["additionalProperties"])
                if target is not None:
                    sub = f"{sub}.<column>"
            if target is not None and target[0] not in self.rendered:
                self.rendered[target[0]] = sub
                nested.append((sub, target[0], target[1]))
            described = prop.get("description") or (target[1].get("description", "")
                                                    if target else "")
            if key == "gate" and not path:
                described = "Thresholds by check name: see [the gate checks](#gate-checks)."
            rows.append([f"`{key}`", self.type_of(prop, sub),
                         self.default_of(model, key, prop, key in required),
                         " ".join(str(described).split())])
        self.out.append(table(["key", "type", "default", "description"], rows))
        for key, prop in props.items():  # built-in lists of models (sft.patterns)
            if "default" in prop or self.item_object(prop) is None:
                continue
            cls = self.models.get(model)
            field = cls.model_fields.get(key) if cls is not None else None
            value = field.get_default(call_default_factory=True) if field else None
            if isinstance(value, list) and value and hasattr(value[0], "model_dump"):
                dumped = [v.model_dump(mode="json") for v in value]
                self.out.append(f"Built-in `{path}.{key}`:\n")
                headers = list(dumped[0])
                self.out.append(table(headers, [[code(str(d[h])) if h == "regex" else d[h]
                                                 for h in headers] for d in dumped]))
        for sub, name, target_node in nested:
            self.section(sub, name, target_node, level + 1)

    def render(self) -> str:
        root_model = "Spec"
        self.out = [
            "# Spec reference\n",
            GENERATED_NOTE.format(source="the spec's JSON Schema "
                                  "(`labelgate.spec.json_schema`) and the gate registry "
                                  "(`labelgate.gate.GATE_CHECKS`)"),
            " ".join(str(self.schema.get("description", "")).split()) + " "
            "Unknown keys are refused everywhere, with the valid keys of that section "
            "listed; `labelgate check SPEC` validates a spec (and its files' headers), and "
            "`labelgate schema` prints this schema for editor completion.\n",
            "For a worked example see [Bring your own dataset](../your-dataset.md).\n",
        ]
        self.out.append("## Top level\n")
        self.section("", root_model, self.schema, 2)
        self.out.append(gate_checks())
        return "\n".join(self.out)


def _model_classes() -> dict[str, Any]:
    """The pydantic models the spec is made of, by class name (the schema's $def names),
    found by walking the field annotations from `Spec` (wherever the classes live)."""
    import typing

    from pydantic import BaseModel

    from labelgate.spec import Spec

    found: dict[str, Any] = {}
    todo: list[Any] = [Spec]
    while todo:
        obj = todo.pop()
        if inspect.isclass(obj) and issubclass(obj, BaseModel):
            if obj.__name__ in found:
                continue
            found[obj.__name__] = obj
            todo += [f.annotation for f in obj.model_fields.values()]
        else:
            todo += list(typing.get_args(obj))
    return found


def gate_checks() -> str:
    from labelgate import dag
    from labelgate.gate import GATE_CHECKS

    rows = []
    for check in GATE_CHECKS.values():
        op = "≤" if check.kind == "max" else "≥"
        stage = dag.stage_of_metric(check.metric)
        low, high = check.lower, check.upper
        allowed = (f"{low:g}..{high:g}" if high != float("inf") else f"≥ {low:g}")
        rows.append([f"`{check.name}`", f"`{check.metric}`", f"observed {op} threshold",
                     allowed, stage.name if stage else "metrics",
                     check.description])
    return (
        "## Gate checks {#gate-checks}\n\n"
        "`gate:` maps a check name to its threshold. A check whose metric was not computed "
        "in the run (its stage did not run) fails; `labelgate check` warns about such a "
        "check before a run.\n\n"
        + table(["check", "metric", "passes when", "threshold", "stage", "what it is"],
                rows)
    )


def spec_reference() -> str:
    from labelgate.spec import json_schema

    return SpecReference(json_schema()).render()


# ------------------------------------------------------------------------ CLI reference


def _is_group(cmd: Any) -> bool:
    return hasattr(cmd, "list_commands")


def _context(cmd: Any, name: str, parent: Any) -> Any:
    """A context for `cmd` (typer ships its own click: use the command's context class)."""
    return cmd.context_class(cmd, info_name=name, parent=parent)


def _params(cmd: Any, ctx: Any) -> list[Any]:
    return [p for p in cmd.get_params(ctx) if "--help" not in p.opts]


def _usage(cmd: Any, path: list[str], ctx: Any) -> str:
    pieces = [*path]
    params = _params(cmd, ctx)
    if any(p.param_type_name == "option" for p in params):
        pieces.append("[OPTIONS]")
    for p in params:
        if p.param_type_name == "argument":
            arg = p.name.upper() + ("..." if p.nargs == -1 else "")
            pieces.append(arg if p.required else f"[{arg}]")
    if _is_group(cmd):
        pieces.append("COMMAND")
    return " ".join(pieces)


def _param_row(param: Any, ctx: Any) -> list[str]:
    record = param.get_help_record(ctx)
    name, help_text = (record[0], record[1]) if record else (param.name, param.help or "")
    kind = param.param_type_name + (", repeatable" if param.multiple or param.nargs == -1
                                    else "")
    return [code(name), kind, help_text]


def _command_section(cmd: Any, path: list[str], level: int, parent: Any) -> list[str]:
    ctx = _context(cmd, path[-1], parent)
    title = " ".join(path)
    out = [f"{'#' * level} `{title}` {{#{anchor(title)}}}\n",
           f"```\n{_usage(cmd, path, ctx)}\n```\n"]
    if cmd.help:
        out.append(inspect.cleandoc(cmd.help) + "\n")
    params = _params(cmd, ctx)
    if params:
        out.append(table(["name", "kind", "help"], [_param_row(p, ctx) for p in params]))
    if _is_group(cmd):
        for name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                out += _command_section(sub, [*path, name], level + 1, ctx)
    return out


def _command_rows(cmd: Any, path: list[str], parent: Any) -> list[list[str]]:
    rows: list[list[str]] = []
    ctx = _context(cmd, path[-1], parent)
    for name in cmd.list_commands(ctx):
        sub = cmd.get_command(ctx, name)
        if sub is None or sub.hidden:
            continue
        full = [*path, name]
        if _is_group(sub):
            rows += _command_rows(sub, full, ctx)
        else:
            sub_ctx = _context(sub, name, ctx)
            title = " ".join(full)
            rows.append([f"[`{_usage(sub, full, sub_ctx)}`](#{anchor(title)})",
                         sub.get_short_help_str(limit=300)])
    return rows


def cli_reference() -> str:
    import typer

    import flows.cli

    root = typer.main.get_command(flows.cli.app)
    ctx = _context(root, "labelgate", None)
    module_doc = inspect.cleandoc(flows.cli.__doc__ or "")
    out = [
        "# Command line reference\n",
        GENERATED_NOTE.format(source="the `labelgate` typer app (`flows.cli:app`)"),
        (root.help or "").strip() + "\n",
        "## Exit codes\n",
        re.sub(r"^Exit codes:\s*", "", module_doc.split("\n\n", 1)[-1]) + "\n",
        "## Commands\n",
        table(["command", "what it does"], _command_rows(root, ["labelgate"], None)),
    ]
    for name in root.list_commands(ctx):
        sub = root.get_command(ctx, name)
        if sub is not None and not sub.hidden:
            out += _command_section(sub, ["labelgate", name], 3, ctx)
    return "\n".join(out)


# ------------------------------------------------------------------------ stages


def _runs_when(stage: Any) -> str:
    parts = [stage.needs] if stage.needs else ["always"]
    if stage.needs_rows:
        parts.append("the contract left at least one valid row")
    if stage.needs_pass:
        parts.append("the gate passed")
    return "; ".join(parts)


def _inputs(names: Iterable[str]) -> str:
    out = []
    for n in names:
        out.append(f"`{n.rstrip('?')}` (optional)" if n.endswith("?") else f"`{n}`")
    return ", ".join(out) or "—"


def stages_reference() -> str:
    from labelgate import dag

    rows = []
    for s in dag.STAGES:
        page = STAGE_PAGES.get(s.name)
        name = f"[`{s.name}`](../{page})" if page else f"`{s.name}`"
        rows.append([name, s.doc, _runs_when(s), _inputs(s.inputs),
                     _inputs(s.outputs), f"`{s.task}`"])
    order = " → ".join(s.name if s.when is dag.always else f"[{s.name}]" for s in dag.STAGES)
    return "\n".join([
        "# Stages\n",
        GENERATED_NOTE.format(source="the stage declaration (`labelgate.dag.STAGES`)"),
        "The flow walks this list in order and runs each stage whose conditions hold "
        "(brackets: only when the spec asks for it):\n",
        f"{order}\n",
        "A stage's inputs are values earlier stages gave, by name; `results` (every stage "
        "result so far) and `abandoned` (runs a killed process left) come from the flow. "
        "How to add one: [Adding a stage](../adding-a-stage.md).\n",
        table(["stage", "what it does", "runs when", "inputs", "outputs", "task"], rows),
    ])


# ------------------------------------------------------------------------ code map


def _summary(path: Path) -> str:
    """The first paragraph of a module's docstring, on one line."""
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    return " ".join(doc.split("\n\n", 1)[0].split())


def code_reference(root: Path = REPO) -> str:
    out = [
        "# Code map\n",
        GENERATED_NOTE.format(source="the modules' own docstrings"),
        "Every module, with what its docstring says it is. How the parts fit: "
        "[Architecture](../architecture.md).\n",
    ]
    for package, what in PACKAGES.items():
        base = root / package
        if not base.is_dir():
            continue
        rows = []
        for path in sorted(base.rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            rel = path.relative_to(root).as_posix()
            summary = _summary(path)
            if path.name == "__init__.py" and not summary:
                continue
            rows.append([f"`{rel}`", summary])
        out.append(f"## `{package}/`\n")
        out.append(what[0].upper() + what[1:] + ".\n")
        out.append(table(["module", "what it is"], rows))
    return "\n".join(out)


# ------------------------------------------------------------------------ warehouse


def warehouse_reference() -> str:
    import tempfile

    from labelgate.store import assignments, warehouse

    with (tempfile.TemporaryDirectory() as tmp,
          warehouse.connect(Path(tmp) / warehouse.WAREHOUSE_FILE) as con):
        assignments.load_assignments(con, dataset="docs")  # creates its table
        columns = con.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'main' ORDER BY table_name, ordinal_position"
        ).fetchall()
    tables: dict[str, list[str]] = {}
    for name, column, kind in columns:
        tables.setdefault(name, []).append(f"{column} ({kind.lower()})")
    ordered = [t for t in TABLES if t in tables] + sorted(set(tables) - set(TABLES))
    return "\n".join([
        "# Warehouse tables\n",
        GENERATED_NOTE.format(source="a warehouse the store code "
                              "(`labelgate.store.warehouse`) creates"),
        "`STORE/warehouse.duckdb` holds every dataset of the store: each row carries "
        "`dataset` (and `run_id` where it belongs to a run). Per dataset, a schema named "
        "after it has the views `items_raw` (every lake batch), `contract_valid` (the "
        "latest run's rows that passed the contract) and `valid` (those less the run's "
        "exclusions: what is published). Open it with `duckdb STORE/warehouse.duckdb`; "
        "examples: [Getting started](../getting-started.md#what-a-run-leaves-behind-store).\n",
        table(["table", "what it holds", "columns"],
              [[f"`{t}`", TABLES.get(t, ""), ", ".join(tables[t])] for t in ordered]),
    ])


def report_reference() -> str:
    """report.json's JSON Schema (`labelgate.report.model.report_json_schema`): its top
    level as a table, then the whole schema."""
    import json

    from labelgate.report.model import report_json_schema

    schema = report_json_schema()
    required = set(schema.get("required", []))
    rows = [[f"`{name}`", "yes" if name in required else "",
             cell(prop.get("description") or prop.get("title") or "")]
            for name, prop in schema.get("properties", {}).items()]
    return "\n".join([
        "# report.json\n",
        GENERATED_NOTE.format(source="the report model (`labelgate.report.model`)"),
        "Every run writes `report.json` beside report.md and report.html; both are rendered "
        "from the same content. A stage's own section sits under its key, in the order of "
        "the stage declaration; keys not listed here are allowed (a new stage's section).\n",
        table(["key", "always", "what it holds"], rows), "",
        "## The JSON Schema\n",
        "```json\n" + json.dumps(schema, indent=2) + "\n```",
    ])


def pages() -> dict[str, str]:
    """Every generated page, by its path under docs/."""
    return {SPEC_PAGE: spec_reference(), CLI_PAGE: cli_reference(),
            STAGES_PAGE: stages_reference(), WAREHOUSE_PAGE: warehouse_reference(),
            CODE_PAGE: code_reference(), REPORT_PAGE: report_reference()}


# ------------------------------------------------------------------------ MkDocs hooks


def _benchmark_pages(docs_dir: Path) -> list[str]:
    folder = docs_dir / BENCHMARKS
    return sorted(f"{BENCHMARKS}/{p.name}" for p in folder.glob("*.md") if p.name != "index.md")


def _nav_paths(items: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(items, str):
        found.add(items)
    elif isinstance(items, list):
        for item in items:
            found |= _nav_paths(item)
    elif isinstance(items, dict):
        for value in items.values():
            found |= _nav_paths(value)
    return found


def on_config(config: Any) -> Any:
    """List every page under docs/benchmarks/ in the Benchmarks nav section."""
    nav = config.get("nav") or []
    listed = _nav_paths(nav)
    for item in nav:
        if isinstance(item, dict) and isinstance(item.get("Benchmarks"), list):
            item["Benchmarks"] += [p for p in _benchmark_pages(Path(config["docs_dir"]))
                                   if p not in listed]
    return config


def on_files(files: Any, config: Any) -> Any:
    """Add the generated reference pages to the build."""
    from mkdocs.structure.files import File

    for path, text in pages().items():
        files.append(File.generated(config, path, content=text))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """The benchmarks index links every benchmark page, also those added later."""
    if page.file.src_uri != f"{BENCHMARKS}/index.md":
        return markdown
    missing = [p for p in _benchmark_pages(Path(config["docs_dir"]))
               if p.split("/", 1)[1] not in markdown]
    if not missing:
        return markdown
    lines = ["", "## More measured figures", ""]
    for p in missing:
        text = (Path(config["docs_dir"]) / p).read_text(encoding="utf-8")
        title = next((ln[2:].strip() for ln in text.splitlines() if ln.startswith("# ")),
                     p)
        lines.append(f"- [{title}]({p.split('/', 1)[1]})")
    return markdown.rstrip() + "\n" + "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: gen_docs.py OUTDIR  (writes the generated pages there)", file=sys.stderr)
        return 2
    out = Path(argv[0])
    for path, text in pages().items():
        target = out / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        print(target)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    raise SystemExit(main(sys.argv[1:]))
