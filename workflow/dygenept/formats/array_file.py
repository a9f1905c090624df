"""Named arrays with JSON metadata in one safetensors file, written byte-stable and atomically.

safetensors serialises its metadata map in hash-map order, which changes from process to process, so a
file with several metadata keys has different bytes each time it is written. Here the metadata is one
key, ``dygenept``, holding canonical JSON: the same arrays and metadata give the same bytes, on any
machine, which lets a cluster run and a local run be compared file by file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file, safe_open, save_file

from ..io.artifacts import atomic_path, canonical_json

METADATA_KEY = "dygenept"


def write_arrays(path: str | Path, arrays: dict[str, np.ndarray], metadata: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        save_file(arrays, str(tmp), metadata={METADATA_KEY: canonical_json(metadata)})


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The file's metadata alone (its arrays are not read)."""
    with safe_open(str(path), framework="numpy") as handle:
        stored = handle.metadata() or {}
    if METADATA_KEY not in stored:
        raise ValueError(
            f"{path}: no '{METADATA_KEY}' metadata; it was written by an older DyGenePT or another "
            "tool. Delete it and rerun the stage that writes it."
        )
    return json.loads(stored[METADATA_KEY])


def read_arrays(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    metadata = read_metadata(path)
    return load_file(str(path)), metadata
