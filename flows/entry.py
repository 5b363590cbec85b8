"""The `labelgate` console entry: starts Prefect's temporary server first, then the CLI.

`labelgate run` without a Prefect API waits for Prefect's temporary server, whose boot
(about 2.5 s of Prefect's own imports in its process) is the command's critical path. This
module imports only the standard library and `flows.server`, so `run` launches the server
at the process's first moment, before the CLI imports typer, polars and the spec model
(about 0.4 s); `flows.cli` takes the server over once it knows it needs one (no
`PREFECT_API_URL` in Prefect's settings) and stops it otherwise. Any other command, and
`run --help` or `run --dask` (which needs a server of its own), starts nothing.

The CLI's imports run with Python's cyclic garbage collector off: they build long-lived
objects and next to no garbage, which the collector would scan again and again. Any
command but `run` turns it on once the CLI is imported; `run` keeps it off while it loads
the flow's modules and turns it on before the flow starts (`flows.cli._load_stages`).
"""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Sequence


def needs_server(argv: Sequence[str], environ: dict[str, str] | None = None) -> bool:
    """Whether the command line `argv` (without the program name) is a `run` that will want
    Prefect's temporary server: no `PREFECT_API_URL` in the environment, no `--dask`, no
    help."""
    env = os.environ if environ is None else environ
    if not argv or argv[0] != "run" or env.get("PREFECT_API_URL"):
        return False
    return not any(arg in ("--help", "-h") or arg.startswith("--dask") for arg in argv[1:])


def main() -> None:  # pragma: no cover - console entry point (tests/test_cli_entry.py)
    """The `labelgate` command (`flows.cli.main`), the temporary server launched first."""
    argv = sys.argv[1:]
    if needs_server(argv):
        from flows import server

        server.launch_early()
    gc.disable()
    from flows.cli import main as cli_main

    if argv[:1] != ["run"]:  # `run` turns it on after loading the flow's modules
        gc.enable()
    cli_main()
