"""Streaming readers for raw dumps (JSON arrays, JSON lines, Parquet; plain, .gz or .zst)."""
