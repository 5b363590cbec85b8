"""Ingest: readers for CSV, JSONL, Parquet and Label Studio exports."""
