"""Ingest: every SOURCE a newsroom has (exports, HTML pages, feeds) read into validated articles."""

from recommender.ingest.sources import Loaded, Record, check_sources, detect_format, read_source

__all__ = ["Loaded", "Record", "check_sources", "detect_format", "read_source"]
