"""Streaming readers for raw dumps and atomic Parquet writers."""
