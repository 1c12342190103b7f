"""Checkpoints: a watcher's position kept in a database table (SQLite, Postgres)."""
