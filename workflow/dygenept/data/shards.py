"""Genes split into shards, for the jobs that run one shard each (config ``shards``).

A gene's shard is a hash of its Entrez id: it never depends on the other genes, so a grown gene list
moves no gene to another shard, and the shards are about equal in size. A gathered artifact keeps the
order of its input, not of the shards. A gathering stage gets the shards' outputs as inputs
``part_0`` … ``part_<n-1>``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

PART = re.compile(r"^part_(\d+)$")


def shard_of(entrez_id: str, shards: int) -> int:
    return int(hashlib.sha256(entrez_id.encode()).hexdigest()[:12], 16) % shards


def in_shard(items: Sequence[T], entrez_of: Callable[[T], str], shard: int, shards: int) -> list[T]:
    """The items whose gene falls in ``shard`` of ``shards``, in their order."""
    if not 0 <= shard < shards:
        raise ValueError(f"shard {shard} of {shards}")
    return [item for item in items if shard_of(entrez_of(item), shards) == shard]


def part_inputs(inputs: Mapping[str, Path]) -> list[Path]:
    """The shards' outputs among a gathering stage's inputs, in shard order (none: it runs unsharded)."""
    found = {
        int(match.group(1)): path for name, path in inputs.items() if (match := PART.match(name))
    }
    if sorted(found) != list(range(len(found))):
        raise ValueError(f"shard outputs {sorted(found)}: some shard is missing")
    return [found[number] for number in sorted(found)]
