"""Ingest: every SOURCE a newsroom has (CMS exports, HTML pages, feeds, sitemaps, live sites) read into
validated articles, as clean text with full timestamps, absolute URLs and a language."""

from recommender.ingest.fetch import FetchSettings, is_url
from recommender.ingest.fields import parse_field_map
from recommender.ingest.language import detect_language
from recommender.ingest.records import IngestOptions, Loaded, Record, parse_timezone, to_record
from recommender.ingest.sources import Source, check_sources, detect_format, read_source

__all__ = [
    "FetchSettings",
    "IngestOptions",
    "Loaded",
    "Record",
    "Source",
    "check_sources",
    "detect_format",
    "detect_language",
    "is_url",
    "parse_field_map",
    "parse_timezone",
    "read_source",
    "to_record",
]
