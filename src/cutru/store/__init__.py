"""Storage: the SQLAlchemy Core schema, engines for SQLite and PostgreSQL, the journal's
persistence, row writing with before/after images, and projection queries."""
