"""The ``cutru`` command: a thin adapter over :mod:`cutru.services`."""
