"""A model directory's weight files and the sha256 that pins them."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..errors import InputError
from ..io.artifacts import sha256_file

# Weight files in the order transformers prefers them; a sharded model lists its shards in an index.
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
SHARD_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")


def weight_files(directory: Path, key: str) -> tuple[Path, ...]:
    """The weights transformers would load from ``directory``; ``key`` names the config key in the error."""
    for name in WEIGHT_FILES:
        if (directory / name).is_file():
            return (directory / name,)
    for name in SHARD_INDEXES:
        index = directory / name
        if index.is_file():
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
            return tuple(directory / shard for shard in shards)
    raise InputError(
        f"{directory}: no weights ({', '.join(WEIGHT_FILES)} or a sharded index). "
        f"Fix: point config '{key}' at a complete Hugging Face model directory."
    )


def weights_sha256(files: tuple[Path, ...], known: dict[str, str] | None = None) -> str:
    """sha256 of the one weight file; for shards, of their ``"<name> <sha256>"`` lines. ``known``: file
    name → sha256 already verified (a download's), so that a 14 GB model is not read again."""
    known = known or {}
    digests = [known.get(path.name) or sha256_file(path) for path in files]
    if len(files) == 1:
        return digests[0]
    lines = "".join(f"{path.name} {digest}\n" for path, digest in zip(files, digests))
    return hashlib.sha256(lines.encode()).hexdigest()
