from __future__ import annotations

import duckdb
import pytest

from labelgate.errors import InputError
from tasks.common import _transient


class _State:
    def __init__(self, exc: BaseException | None) -> None:
        self.exc = exc

    def result(self) -> None:
        if self.exc is not None:
            raise self.exc


@pytest.mark.parametrize(
    ("exc", "retry"),
    [
        (OSError("disk busy"), True),
        (duckdb.IOException("could not set lock on file"), True),
        (InputError("a.csv: missing column(s)"), False),
        (ValueError("a bug"), False),
        (None, False),
    ],
)
def test_only_transient_io_errors_are_retried(exc: BaseException | None, retry: bool) -> None:
    assert _transient(None, None, _State(exc)) is retry
