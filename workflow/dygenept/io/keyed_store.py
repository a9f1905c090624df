"""``key → bytes`` in one SQLite file: the one store under every cache of the pipeline.

Each cache is a key scheme over it — what its key hashes, how its value is encoded and checked:
network answers per source and gene (``text/sources/gene_cache.py``), a gene's facets
(``facet_backends/cached.py``), a facet text's vector (``text_encoders/vector_cache.py``) and a
validated LLM answer (``facet_backends/llm/cache.py``). A key is a sha256 of everything that shapes the value (the
caller's ``context`` plus the item), so a changed setting, input or code never reads an old value, and a
grown gene list finds what it shares with an old one. Each ``put_many`` is one committed transaction in
a WAL journal: a killed run keeps every batch it finished, and the next run computes only the rest.

The store hands back only values it can vouch for. Every value is stored with its sha256; a read checks
it, and the scheme's ``decode`` checks the value itself (it raises ``ValueError`` on, say, a non-finite
vector). A row failing either is deleted, logged with the file's name and left out of the answer, so the
caller computes it again. A file SQLite cannot read (garbage over its header, a malformed page) is moved
aside to ``<file>.unreadable-<UTC time>`` with a warning naming both, and the cache starts empty. Not a
pipeline output: delete it to recompute.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import logging
import os
import sqlite3
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from .artifacts import canonical_json, sha256_text

log = logging.getLogger(__name__)

T = TypeVar("T")
S = TypeVar("S", bound="KeyedStore")
_SQL_CHUNK = 500  # stays under SQLite's limit on bound parameters
_SIDE_FILES = ("", "-wal", "-shm")  # the database and its WAL journal


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


def checksum(value: bytes) -> str:
    return hashlib.sha256(value).hexdigest()


@dataclass(frozen=True)
class FormerTable:
    """A cache's table from before the one store: its rows move into the store on first open, taken
    as they are (with their checksums from then on; ``decode`` still checks them on every read).

    ``select`` yields ``(key, value)`` in the scheme's current keys, the value as a non-null BLOB.
    """

    name: str
    select: str


def unreadable(error: sqlite3.DatabaseError) -> bool:
    """'file is not a database' or 'database disk image is malformed'; not 'database is locked'."""
    return type(error) is sqlite3.DatabaseError


def _inode(path: Path) -> int | None:
    try:
        return path.stat().st_ino
    except FileNotFoundError:
        return None


def _create(db: sqlite3.Connection, former: FormerTable | None) -> int:
    """Create the table, bringing in a former layout's rows once; how many were brought in.

    The store's own rows from before checksums are dropped instead: their keys (facets, vectors) hold
    the digest of the code that wrote them, which no later code computes.
    """
    columns = {row[1] for row in db.execute("PRAGMA table_info(entries)")}
    if columns and "sha256" not in columns:
        db.execute("DROP TABLE entries")
    db.execute(
        "CREATE TABLE IF NOT EXISTS entries "
        "(key TEXT PRIMARY KEY, value BLOB NOT NULL, sha256 TEXT NOT NULL)"
    )
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if former is None or former.name not in tables:
        return 0
    rows = db.execute(former.select).fetchall()
    db.executemany(
        "INSERT OR REPLACE INTO entries (key, value, sha256) VALUES (?, ?, ?)",
        [(key, value, checksum(value)) for key, value in rows],
    )
    db.execute(f"DROP TABLE {former.name}")
    return len(rows)


def _connect(path: Path, former: FormerTable | None) -> sqlite3.Connection:
    db = sqlite3.connect(path, timeout=60, isolation_level=None, check_same_thread=False)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")  # with WAL: a commit survives a killed process
        db.execute("BEGIN IMMEDIATE")  # one process at a time checks the layout
        adopted = _create(db, former)
        db.execute("COMMIT")
    except BaseException:
        db.close()
        raise
    if adopted:
        log.info("%s: %d entries of the cache's former table taken in", path, adopted)
    return db


class KeyedStore:
    """``key → bytes``, each value verified on read; safe to share between threads."""

    def __init__(self, path: str | Path, former: FormerTable | None = None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._former = former
        self._lock = threading.Lock()
        self._db = self._open()

    def _open(self) -> sqlite3.Connection:
        seen = _inode(self.path)
        try:
            return _connect(self.path, self._former)
        except sqlite3.DatabaseError as error:
            if not unreadable(error):
                raise
            if _inode(self.path) == seen:  # else another process has already moved it aside
                self._move_aside(str(error))
        return _connect(self.path, self._former)

    def _move_aside(self, reason: str) -> None:
        stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
        aside = self.path.with_name(f"{self.path.name}.unreadable-{stamp}")
        for suffix in _SIDE_FILES:
            with_suffix = Path(f"{self.path}{suffix}")
            if with_suffix.exists():
                os.replace(with_suffix, f"{aside}{suffix}")
        log.warning(
            "%s: SQLite cannot read this cache (%s); moved it aside to %s and started an empty "
            "cache, so its values are computed again. Fix: nothing to do; delete %s once you no "
            "longer need it.",
            self.path,
            reason,
            aside,
            aside,
        )

    def _run(self, operation: Callable[[sqlite3.Connection], T]) -> T:
        """``operation`` on the database; on a file found unreadable mid-run, once more on a fresh one."""
        with self._lock:
            try:
                return operation(self._db)
            except sqlite3.DatabaseError as error:
                if not unreadable(error):
                    raise
                self._db.close()
                self._move_aside(str(error))
            self._db = _connect(self.path, self._former)
            return operation(self._db)

    def get_many(self, keys: Iterable[str], decode: Callable[[bytes], T] = bytes) -> dict[str, T]:
        """The decoded value of every key the store holds and can vouch for.

        A row whose checksum differs, or whose value ``decode`` refuses with ``ValueError``, is deleted
        and logged, and left out: the caller computes it again.
        """
        keys = list(dict.fromkeys(keys))

        def read(db: sqlite3.Connection) -> list[tuple[str, bytes, str]]:
            rows = []
            for start in range(0, len(keys), _SQL_CHUNK):
                chunk = keys[start : start + _SQL_CHUNK]
                rows += db.execute(
                    "SELECT key, value, sha256 FROM entries "
                    f"WHERE key IN ({','.join('?' * len(chunk))})",
                    chunk,
                ).fetchall()
            return rows

        found: dict[str, T] = {}
        bad: dict[str, str] = {}
        for key, value, digest in self._run(read):
            if checksum(value) != digest:
                bad[key] = "checksum differs"
                continue
            try:
                found[key] = decode(value)
            except ValueError as error:
                bad[key] = str(error)
        if bad:
            self._drop(bad)
        return found

    def _drop(self, bad: dict[str, str]) -> None:
        reasons = "; ".join(
            f"{count} × {reason}" for reason, count in Counter(bad.values()).most_common(3)
        )
        log.warning(
            "%s: %d cached values failed verification (%s); dropped, they are computed again",
            self.path,
            len(bad),
            reasons,
        )
        self._write("DELETE FROM entries WHERE key = ?", [(key,) for key in bad])

    def put_many(self, entries: dict[str, bytes]) -> None:
        """Store ``entries`` with their checksums in one transaction."""
        self._write(
            "INSERT OR REPLACE INTO entries (key, value, sha256) VALUES (?, ?, ?)",
            [(key, value, checksum(value)) for key, value in entries.items()],
        )

    def _write(self, statement: str, rows: list[tuple]) -> None:
        if not rows:
            return

        def write(db: sqlite3.Connection) -> None:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany(statement, rows)
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

        self._run(write)

    def __len__(self) -> int:
        return self._run(lambda db: db.execute("SELECT count(*) FROM entries").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self: S) -> S:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
