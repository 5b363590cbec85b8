"""labelgate: a declarative data-quality pipeline for labeled datasets that feed fine-tunes.

This package is the library layer: pure functions over polars, DuckDB and Arrow, with no
Prefect import, so every stage is usable and testable without an orchestrator.
"""

__version__ = "0.1.0"
