"""Prometheus metrics of one app: requests, latency, shedding, index size and version."""

from __future__ import annotations


class Metrics:
    """Prometheus metrics in a registry of this app's own (several apps can live in one process)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter(
            "recommender_http_requests_total", "HTTP requests", ["method", "route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "recommender_http_request_seconds",
            "HTTP request latency",
            ["method", "route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=self.registry,
        )
        self.articles = Gauge("recommender_index_articles", "Articles in the index", registry=self.registry)
        self.index_bytes = Gauge("recommender_index_bytes", "Size of the saved FAISS file", registry=self.registry)
        self.version = Gauge(
            "recommender_index_info",
            "Index version (label) and model",
            ["index_version", "model"],
            registry=self.registry,
        )
        self.events = Counter(
            "recommender_events_total", "Impressions and clicks stored", ["type"], registry=self.registry
        )
        self.events_refused = Counter(
            "recommender_events_refused_total",
            "Event requests or events refused, by reason",
            ["reason"],
            registry=self.registry,
        )
        self.shed = Counter(
            "recommender_http_shed_total",
            "Requests refused because too many were in flight (from one client, or overall)",
            ["limit"],
            registry=self.registry,
        )
