"""The HTTP API (FastAPI): a thin adapter over :mod:`cutru.services.guard`."""
