"""One validated answer per gene in SQLite, keyed by what produced it.

The key is the sha256 of the canonical JSON of {backend, model id + revision, engine version, rendered
messages, sampling parameters (seed included), answer schema}: a changed prompt, facet list, model or
setting changes every key, and a new gene list finds the genes it shares with an old one. Only
validated answers are stored; each batch is committed as it finishes, so a killed run resumes.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from pathlib import Path

from ...io.artifacts import canonical_json, sha256_text


def cache_key(identity: dict, messages: list[dict[str, str]], sampling: dict, schema: dict) -> str:
    """``identity``: backend, model, revision and engine version, as the engine reports them."""
    return sha256_text(
        canonical_json({**identity, "messages": messages, "sampling": sampling, "schema": schema})
    )


class AnswerCache:
    """``key → (entrez_id, answer)`` in ``<cache_dir>/facets_llm.sqlite``; safe to reopen after a kill."""

    def __init__(self, cache_dir: str | Path):
        path = Path(cache_dir)
        path.mkdir(parents=True, exist_ok=True)
        self.path = path / "facets_llm.sqlite"
        self.db = sqlite3.connect(self.path)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, entrez_id TEXT NOT NULL, "
            "answer TEXT NOT NULL, attempts INTEGER NOT NULL)"
        )
        self.db.commit()

    def get_many(self, keys: Iterable[str]) -> dict[str, dict[str, str]]:
        found = {}
        keys = list(keys)
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            rows = self.db.execute(
                f"SELECT key, answer FROM answers WHERE key IN ({','.join('?' * len(chunk))})",
                chunk,
            )
            found.update({key: json.loads(answer) for key, answer in rows})
        return found

    def put_many(self, rows: Iterable[tuple[str, str, dict[str, str], int]]) -> None:
        """(key, entrez_id, validated answer, attempts) rows, committed together."""
        with self.db:
            self.db.executemany(
                "INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?)",
                [
                    (key, entrez, json.dumps(answer), attempts)
                    for key, entrez, answer, attempts in rows
                ],
            )

    def __len__(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM answers").fetchone()[0]

    def close(self) -> None:
        self.db.close()
