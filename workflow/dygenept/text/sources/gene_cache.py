"""Per-gene answers of the network text sources, kept on disk so that a killed run redoes only missing genes.

One SQLite file (WAL journal) holds one row per (source, query settings, Entrez id): the raw texts the
source gave for that gene, ``[]`` when it has none. Each batch's answers commit as they arrive; a
committed row survives SIGKILL. A failed fetch writes nothing, so the next run asks again. The settings
key is the sha256 of the canonical JSON of what shapes the answer (URL, fields, query), so a changed
query never reads an old answer.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ...io.artifacts import canonical_json, sha256_text

log = logging.getLogger(__name__)

CACHE_FILE = "gene_text.sqlite"
_SQL_CHUNK = 500  # stays under SQLite's limit on bound parameters
_SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    source TEXT NOT NULL,
    settings TEXT NOT NULL,
    entrez_id TEXT NOT NULL,
    answer TEXT NOT NULL,
    fetched_utc TEXT NOT NULL,
    PRIMARY KEY (source, settings, entrez_id)
)
"""


def settings_key(settings: dict[str, Any]) -> str:
    return sha256_text(canonical_json(settings))[:16]


class GeneCache:
    """Answers keyed by (source, settings key, Entrez id); safe to share between threads."""

    def __init__(self, directory: str | Path):
        self.path = Path(directory) / CACHE_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            self.path, timeout=60, check_same_thread=False, isolation_level=None
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "PRAGMA synchronous=NORMAL"
        )  # with WAL: a commit survives the process being killed
        self._db.execute(_SCHEMA)

    def get_many(
        self, source: str, settings: str, entrez_ids: Iterable[str]
    ) -> dict[str, list[dict[str, str]]]:
        ids = list(dict.fromkeys(entrez_ids))
        found: dict[str, list[dict[str, str]]] = {}
        with self._lock:
            for start in range(0, len(ids), _SQL_CHUNK):
                chunk = ids[start : start + _SQL_CHUNK]
                rows = self._db.execute(
                    f"SELECT entrez_id, answer FROM answers WHERE source = ? AND settings = ? "
                    f"AND entrez_id IN ({','.join('?' * len(chunk))})",
                    [source, settings, *chunk],
                )
                found.update((entrez_id, json.loads(answer)) for entrez_id, answer in rows)
        return found

    def put_many(
        self, source: str, settings: str, answers: dict[str, list[dict[str, str]]]
    ) -> None:
        """Store one batch's answers in one transaction."""
        now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        rows = [
            (source, settings, entrez_id, json.dumps(answer, ensure_ascii=False), now)
            for entrez_id, answer in answers.items()
        ]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany("INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?, ?)", rows)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def cached_ids(self, source: str, settings: str | None = None) -> set[str]:
        query, args = "SELECT entrez_id FROM answers WHERE source = ?", [source]
        if settings is not None:
            query, args = query + " AND settings = ?", args + [settings]
        with self._lock:
            return {row[0] for row in self._db.execute(query, args)}

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> GeneCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
