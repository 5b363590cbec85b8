"""Stages: one module or subpackage per stage (pure; no Prefect)."""
