"""Drawn plots kept between runs: a plot whose inputs have not changed is read, not drawn.

Drawing is most of the HTML report's cost (matplotlib's layout and SVG writing), and a
rerun on unchanged data draws the same plots from the same inputs again: the rows per
class, the noise matrix, the quality histogram, the split mix. Within `kept_in(folder)`,
`draw` keys each plot by a hash of its function, its arguments and what decides how it is
drawn (`labelgate.report.plots`' and `labelgate.report.text`'s source, the matplotlib and
numpy versions, matplotlib's settings), reads ``<key>.svg`` from the folder when it is
there, and else draws it and writes it. A plot's SVG is the same bytes for the same inputs
(`labelgate.report.plots` salts its ids per plot and writes no date), so a page with kept
plots is the page a fresh drawing gives.

When the block ends, the SVGs it did not use are removed: the folder holds one page's
plots (the report keeps its dataset's latest, the reports index its own). Arguments that
cannot be pickled are drawn every time; a folder that cannot be written is not used.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache
from pathlib import Path
from typing import Any

_KEPT: ContextVar[tuple[Path, set[str]] | None] = ContextVar("labelgate_plot_cache",
                                                            default=None)
_HERE = Path(__file__).parent


@lru_cache(maxsize=1)
def _drawing() -> bytes:
    """What decides how a plot is drawn, besides its arguments.

    matplotlib's settings are read as stored (``dict.items``), and ``backend`` is left out:
    the plots are drawn by the SVG backend whatever it says, and reading it through
    ``rcParams[...]`` resolves the automatic backend, which imports pyplot."""
    import matplotlib
    import numpy

    parts = [(_HERE / name).read_bytes() for name in ("plots.py", "text.py")]
    parts.append(f"{matplotlib.__version__} {numpy.__version__}".encode())
    settings = sorted((k, repr(v)) for k, v in dict.items(matplotlib.rcParams) if k != "backend")
    parts.append(repr(settings).encode())
    return b"\0".join(parts)


def key(kind: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> str | None:
    """The hash of a plot's function, arguments and drawing (`_drawing`); None when the
    arguments cannot be pickled."""
    try:
        data = pickle.dumps((kind, args, sorted(kwargs.items())), protocol=4)
    except (pickle.PicklingError, TypeError, AttributeError):
        return None
    return hashlib.sha256(_drawing() + b"\0" + data).hexdigest()


@contextmanager
def kept_in(folder: Path) -> Iterator[None]:
    """Within: `draw` reads and keeps plots in `folder`; afterwards the SVGs not used in
    the block are removed (not when it raised)."""
    used: set[str] = set()
    token = _KEPT.set((folder, used))
    try:
        yield
    finally:
        _KEPT.reset(token)
    if folder.is_dir():
        for path in folder.glob("*.svg"):
            if path.stem not in used:
                path.unlink(missing_ok=True)


def draw(kind: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> str:
    """``labelgate.report.plots.<kind>(*args, **kwargs)``, read from the folder of the
    enclosing `kept_in` when drawn before with the same inputs (and kept there if not)."""
    kept = _KEPT.get()
    name = key(kind, args, kwargs) if kept is not None else None
    if kept is None or name is None:
        return _draw(kind, args, kwargs)
    folder, used = kept
    used.add(name)
    path = folder / f"{name}.svg"
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        pass
    svg = _draw(kind, args, kwargs)
    _keep(path, svg)
    return svg


def _draw(kind: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> str:
    from labelgate.report import plots

    svg: str = getattr(plots, kind)(*args, **kwargs)
    return svg


def _keep(path: Path, svg: str) -> None:
    """Write `svg` to `path` whole or not at all (temp file, rename); a folder that cannot
    be written is skipped."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".plot-", suffix=".tmp", dir=path.parent)
    except OSError:
        return
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(svg)
        os.chmod(tmp, 0o644)  # as the report's own files
        os.replace(tmp, path)
    except OSError:
        Path(tmp).unlink(missing_ok=True)
