"""``key → bytes`` in one SQLite file: the per-gene and per-text caches of the offline stages.

The key is a sha256 of everything that shapes the value (the caller's ``context`` plus the item), so a
changed setting, input or code never reads an old value, and a grown gene list finds what it shares with
an old one. Each ``put_many`` is one committed transaction in a WAL journal: a killed run keeps every
batch it finished, and the next run computes only the rest. Not a pipeline output: delete it to recompute.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .artifacts import canonical_json, sha256_text

_SQL_CHUNK = 500  # stays under SQLite's limit on bound parameters


def item_key(context: str, item: Any) -> str:
    """The key of one item (a gene's text record, a facet text) under a context digest."""
    return sha256_text(canonical_json([context, item]))


def context_digest(settings: dict[str, Any]) -> str:
    """sha256 of what every item's value depends on: settings, input digests, the stage's code."""
    return sha256_text(canonical_json(settings))


def without_locations(params: dict[str, Any]) -> dict[str, Any]:
    """``params`` less every ``cache_dir`` (at any depth): where a cache lives shapes no value."""
    return {
        key: without_locations(value) if isinstance(value, dict) else value
        for key, value in params.items()
        if key != "cache_dir"
    }


class KeyedStore:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "PRAGMA synchronous=NORMAL"
        )  # with WAL: a commit survives a killed process
        self._db.execute("CREATE TABLE IF NOT EXISTS entries (key TEXT PRIMARY KEY, value BLOB)")

    def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        keys = list(dict.fromkeys(keys))
        found: dict[str, bytes] = {}
        for start in range(0, len(keys), _SQL_CHUNK):
            chunk = keys[start : start + _SQL_CHUNK]
            rows = self._db.execute(
                f"SELECT key, value FROM entries WHERE key IN ({','.join('?' * len(chunk))})", chunk
            )
            found.update(rows)
        return found

    def put_many(self, entries: dict[str, bytes]) -> None:
        if not entries:
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.executemany(
                "INSERT OR REPLACE INTO entries VALUES (?, ?)", list(entries.items())
            )
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> KeyedStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
