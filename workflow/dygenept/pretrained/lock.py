"""The model lock file (config ``models.lock``): what each fetched model resolved to.

One JSON object keyed by the model's Hub id (or URL): the commit a null ``revision`` resolved to, when and
from which branch, and the sha256 of the weights. A later fetch of a model whose config revision is null
uses the locked commit instead of asking the Hub again, and checks the weights against the locked hash
when config pins none: the run is reproducible, and the workflow prints what it runs. Delete an entry (or
the file) to move to the repository's current commit. Standard library only: ``rules/common.smk`` reads it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from ..io.artifacts import write_json_atomic


@dataclass(frozen=True)
class LockEntry:
    key: str  # the config section that names the model
    revision: str | None  # the commit (Hub models)
    resolved_from: str | None  # the branch a null revision was resolved from, else None
    resolved_at: str | None  # when (UTC, ISO 8601)
    weights_sha256: str


def read_lock(path: str | Path) -> dict[str, LockEntry]:
    """The entries of the lock file (none when it does not exist)."""
    path = Path(path)
    if not path.is_file():
        return {}
    return {name: LockEntry(**entry) for name, entry in json.loads(path.read_text()).items()}


def describe(name: str, entry: LockEntry, path: str | Path) -> str:
    """The line the workflow prints for a model whose revision comes from the lock."""
    return (
        f"config '{entry.key}': {name} is locked to commit {entry.revision} (resolved from "
        f"{entry.resolved_from} at {entry.resolved_at}; weights sha256 {entry.weights_sha256}) by "
        f"{path}; delete its entry there to fetch the current commit."
    )


@contextlib.contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``<path>.flock``: fetch jobs running side by side write one file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".flock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def record(path: str | Path, name: str, entry: LockEntry) -> None:
    """Write (or replace) ``name``'s entry, keeping the others; atomic."""
    path = Path(path)
    with _exclusive(path):
        entries = {key: asdict(value) for key, value in read_lock(path).items()}
        entries[name] = asdict(entry)
        write_json_atomic(path, entries)
