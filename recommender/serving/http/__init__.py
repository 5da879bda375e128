"""The HTTP API (FastAPI): schemas, middleware, routes, and the worker processes that run it."""
