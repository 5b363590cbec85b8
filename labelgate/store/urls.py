"""Whether a store is a URL (a remote store) or a local folder: what the CLI asks before a
run starts, without importing the remote store's transfer code (`labelgate.store.remote`)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from labelgate.spec import Spec

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]+://")  # 2+ letters: `C://` is a drive


def is_remote(store: str | os.PathLike[str]) -> bool:
    """True for a URL string ``proto://...`` (file:// included); False for a local path."""
    return isinstance(store, str) and _URL.match(store) is not None


def store_url(spec: Spec, override: str | Path | None = None) -> str | None:
    """The store URL when the run's store (`--store`, else the spec's `store:`) is remote."""
    store = override if override is not None else spec.store
    return str(store) if is_remote(store) else None
