"""Faults a cache file meets on a bad day, made in real SQLite files: garbage over the header, and bytes
overwritten inside stored values that leave the database itself sound (``PRAGMA integrity_check``: ok),
so only the store's own checksums can tell."""

from __future__ import annotations

import random
import sqlite3
from contextlib import closing
from pathlib import Path

# float16 little-endian: NaN (0x7fff), 65,184 (0x7bf5): the values the issue found in a facet tensor
NAN_AND_HUGE = b"\xff\x7f\xf5\x7b" * 4
LETTERS = b"XXXX"  # inside a JSON string: still valid JSON, different text


def garble_header(path: Path) -> None:
    """Garbage over the first 128 bytes: SQLite answers 'file is not a database'."""
    with open(path, "r+b") as handle:
        handle.write(b"\x00garbage" * 16)


def overwrite_inside_values(path: Path, count: int, patch: bytes, seed: int = 0) -> list[str]:
    """Overwrite ``patch`` into the middle of ``count`` stored values, in the file's bytes; their keys.

    Values whose bytes are not found once in the file (spread over overflow pages, or shared) are
    passed over.
    """
    with closing(sqlite3.connect(path)) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        rows = db.execute("SELECT key, value FROM entries ORDER BY key").fetchall()
    random.Random(seed).shuffle(rows)
    data = bytearray(path.read_bytes())
    hit = []
    for key, value in rows:
        at = data.find(value)
        if len(value) < 2 * len(patch) or at < 0 or data.find(value, at + 1) >= 0:
            continue
        middle = at + len(value) // 2
        if data[middle : middle + len(patch)] == patch:
            continue
        data[middle : middle + len(patch)] = patch
        hit.append(key)
        if len(hit) == count:
            break
    assert len(hit) == count, f"only {len(hit)} values could be overwritten in {path}"
    path.write_bytes(data)
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    return hit
