"""Serving: the long-lived service over one index, its HTTP API and widget, and the static export."""
