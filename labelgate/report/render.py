"""Rendering the report's sections as text: the jinja2 environment over
``labelgate/report/templates`` and the Markdown filters it registers.

``render_template("report.md.j2" | "report.html.j2", ...)`` renders the `Section` list of
``labelgate.report.sections.build_sections``; ``report.html.j2`` is autoescaped, the
Markdown template escapes every value through the filters here (`md_row`, `md_rule`,
`md_code` and ``md``, which is `labelgate.report.view.md_cell`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from contextlib import suppress
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from jinja2.bccache import Bucket, BytecodeCache, FileSystemBytecodeCache

from labelgate.report.text import visible_controls
from labelgate.report.view import CELL_MAX, Cell, md_cell


def md_row(cells: Sequence[Cell | str]) -> str:
    """A Markdown table row; cells are escaped, and cut to `CELL_MAX` characters unless
    they are identifiers or paths (css class ``mono``, already bounded by the builder)."""
    texts = [md_cell(c.text, max_len=None if "mono" in c.cls else CELL_MAX)
             if isinstance(c, Cell) else md_cell(c) for c in cells]
    return "| " + " | ".join(texts) + " |"


def md_rule(headers: Sequence[str], numeric: frozenset[int]) -> str:
    """The Markdown row under the header: numeric columns right-aligned."""
    return "|" + "".join("---:|" if i in numeric else "---|" for i in range(len(headers)))


def md_code(text: str) -> str:
    """`text` as an indented Markdown code block, HTML-escaped (nothing can end the block)."""
    safe = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return "\n".join("    " + line for line in safe.splitlines())


class _KeptCompiled(FileSystemBytecodeCache):
    """The templates compiled once per user, not once per process: jinja2's own cache of
    compiled templates in the temp folder (``_jinja2-cache-<uid>``, the user's alone), each
    used only with the template source and the environment settings (this module's
    source) it was compiled from, by the same jinja2 and Python (loading a compiled
    template is much cheaper than compiling it). A cache that cannot be read or written
    is not used."""

    def __init__(self, settings: bytes, directory: str | None = None) -> None:
        super().__init__(directory, pattern="__labelgate_%s.cache")
        self.settings = settings + b"\0"

    def get_source_checksum(self, source: str) -> str:
        return hashlib.sha256(self.settings + source.encode("utf-8")).hexdigest()

    def load_bytecode(self, bucket: Bucket) -> None:
        try:
            super().load_bytecode(bucket)
        except (OSError, EOFError, ValueError, TypeError):
            bucket.reset()

    def dump_bytecode(self, bucket: Bucket) -> None:
        with suppress(OSError):
            super().dump_bytecode(bucket)


def _compiled_cache() -> BytecodeCache | None:
    """`_KeptCompiled` in jinja2's default folder, keyed also by this module's source (the
    environment's settings) and jinja2's release; None when there is no safe folder or the
    source cannot be read."""
    try:
        import jinja2  # its release too: a cache in the temp folder outlives a venv

        return _KeptCompiled(Path(__file__).read_bytes() + jinja2.__version__.encode())
    except (OSError, RuntimeError):
        return None


@lru_cache(maxsize=1)
def _environment() -> Environment:
    """The templates' jinja2 environment: HTML autoescaped, the Markdown filters registered,
    the compiled templates kept between processes (`_KeptCompiled`)."""
    env = Environment(
        loader=PackageLoader("labelgate.report", "templates"),
        bytecode_cache=_compiled_cache(),
        autoescape=select_autoescape(enabled_extensions=("html.j2",), default=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(md=lambda v: md_cell(v, max_len=None), md_row=md_row, md_rule=md_rule,
                       md_code=md_code)
    return env


def render_template(name: str, **context: Any) -> str:
    """Render one of the report templates (``report.html.j2`` is autoescaped; the Markdown
    template escapes through its ``md`` filters).

    Parameters
    ----------
    name
        The template's file name in ``labelgate/report/templates``.
    **context
        The template's variables.

    Returns
    -------
    str
        The rendered text, with no control character from the data (`visible_controls`).
    """
    return visible_controls(_environment().get_template(name).render(**context))


def warm() -> None:
    """Compile every report template now (jinja2 keeps them), so that the first report
    rendered in this process does not pay for it (`flows.warm`: while Prefect's server
    boots)."""
    env = _environment()
    for name in env.list_templates(extensions=["j2"]):
        env.get_template(name)
