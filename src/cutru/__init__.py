"""cutru: Vietnam's residence database, with confidential use, backup and restore."""

__version__ = "0.1.0"
