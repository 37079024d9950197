"""Durable storage: WAL segments, the SQLite backend, snapshots, the data-dir lock."""
